//! Screenshots and `keyframe=last` on a live 1280x720 H.264 stream (issue 13).
//!
//! One server, one continuous feed: ffmpeg encoding `testsrc2` at 1280x720, 25 fps, x264
//! ultrafast/zerolatency with a keyframe every 50 frames (2 s), muxed as MPEG-TS, relayed
//! directly as `video/mp2t` stream `cam`. After a 3 s warm-up, four rows:
//! - JPEG screenshot time: sequential `GET /stream/cam/pic` spaced 0.3 s apart, from before
//!   `connect()` to the last byte of the picture (target p50 ≤ 150 ms);
//! - the same with `?format=png` (reported);
//! - `keyframe=last` time to first byte: from before `connect()` to the first de-chunked
//!   body byte (target median ≤ 10 ms);
//! - 16 concurrent `/pic` requests written at once: all 200, identical bytes, and the number
//!   of decoder processes (the server's descendants with `reverse` in their command line)
//!   seen during the batch (target: one decode).
//!
//! It does not judge picture quality: it checks the format's magic and the 1280x720 size.

mod fetch;
mod reference;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use super::{Ctx, server_error};
use crate::client::oneshot::{connect, write_get};
use crate::procstat::{self, CpuSnap, MachineTicks};
use crate::report::{Row, Verdict, ms};
use crate::server::yaml_str;
use fetch::{Reply, check_picture, first_body_byte, get, read_reply};
use reference::{add_reference, make_reference};
use voyandz_bench::clock::now_ns;

/// The feed: a 2 s keyframe interval (`-g 50` at 25 fps), so a cached GOP holds up
/// to 50 pictures that the decoder must decode to reach the newest one.
const FEED_COMMAND: &str = "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi \
     -i testsrc2=size=1280x720:rate=25 -c:v libx264 -preset ultrafast -tune zerolatency \
     -g 50 -f mpegts -muxdelay 0 -flush_packets 1 -";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
/// The feed runs this long before the first request (the brief's warm-up: a GOP is cached).
const FEED_WARMUP: Duration = Duration::from_secs(3);
/// Gap between sequential picture requests: a camera wall polling, not a hammer.
const PIC_SPACING: Duration = Duration::from_millis(300);
/// Gap between `keyframe=last` tries (each one makes the server send a whole GOP).
const TTFB_SPACING: Duration = Duration::from_millis(50);
/// Requests in the concurrent batch.
const BATCH: usize = 16;
/// Longest a single request may take (the server's own decode timeout is 10 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the decoder census reads /proc during the batch.
const CENSUS_PERIOD: Duration = Duration::from_millis(2);
const PIC_TARGET_NS: u64 = 150_000_000;
const PIC_TARGET: &str = "p50 ≤ 150 ms";
const TTFB_TARGET_NS: u64 = 10_000_000;
const TTFB_TARGET: &str = "p50 ≤ 10 ms";
const BATCH_TARGET: &str = "16×200, same bytes, 1 decode";
/// The server's log line for one decode.
const DECODED: &str = "picture decoded";

/// Runs the four rows on one server.
pub async fn run(ctx: &mut Ctx) {
    let quick = ctx.opts.window < Duration::from_secs(8);
    let tries = if quick { 8 } else { 20 };
    let yaml = format!(
        "listenaddr: 127.0.0.1\nfeeds:\n  camfeed:\n    command: {}\n    mode: continuous\nstreams:\n  cam:\n    feed: camfeed\n    mimetype: video/mp2t\n",
        yaml_str(FEED_COMMAND)
    );
    let jpeg_name = "screenshot JPEG 1280x720 H.264, GOP 2 s";
    let png_name = "screenshot PNG 1280x720 H.264, GOP 2 s";
    let ttfb_name = "keyframe=last time to first byte";
    let batch_name = "16 concurrent screenshots";
    let server = match ctx.start_server("pictures", &yaml) {
        Ok(s) => s,
        Err(e) => {
            for (name, target) in [
                (jpeg_name, PIC_TARGET),
                (png_name, "(reported)"),
                (ttfb_name, TTFB_TARGET),
                (batch_name, BATCH_TARGET),
            ] {
                ctx.push(server_error("pictures", name, target, &e));
            }
            return;
        }
    };
    tokio::time::sleep(FEED_WARMUP).await;
    let addr = server.addr;
    let pid = server.pid;

    let reference = ctx.dir.join("gop25.ts");
    let have_reference = make_reference(&reference);
    let mut row = sequential(ctx, addr, pid, jpeg_name, "/stream/cam/pic", tries).await;
    add_reference(
        &mut row,
        &have_reference,
        &reference,
        &["-c:v", "mjpeg", "-q:v", "6"],
    );
    let jpeg_ok = row.p50.is_some_and(|p| p <= PIC_TARGET_NS) && row.verdict != Verdict::Fail;
    if !matches!(row.verdict, Verdict::Error(_)) {
        row.judge(PIC_TARGET, jpeg_ok);
    }
    ctx.push(row);

    let mut row = sequential(
        ctx,
        addr,
        pid,
        png_name,
        "/stream/cam/pic?format=png",
        tries / 2,
    )
    .await;
    add_reference(&mut row, &have_reference, &reference, &["-c:v", "png"]);
    // Reported only; a failed request still fails the row.
    row.target = "(reported)".into();
    ctx.push(row);

    let row = last_keyframe(addr, pid, ttfb_name, tries).await;
    ctx.push(row);

    // The server logs one "picture decoded" line per decode: the count during the batch is
    // the number of decodes (decoder processes alone also show the one waiting for the next
    // request, started ahead of need).
    let decodes = |server: &crate::server::Server| server.log_text().matches(DECODED).count();
    let before = decodes(&server);
    let mut row = concurrent(addr, pid, batch_name);
    let during = decodes(&server) - before;
    row.add_note(format!(
        "{during} decode{} logged",
        if during == 1 { "" } else { "s" }
    ));
    if during != 1 && !matches!(row.verdict, Verdict::Error(_)) {
        row.judge(BATCH_TARGET, false);
    }
    ctx.push(row);

    let mut server = server;
    if !server.alive() {
        ctx.note("pictures: the server died during the section");
    }
    ctx.stop_server(server);
}

/// CPU counters at the start of a series of requests.
struct CpuStart {
    tree: Option<CpuSnap>,
    bench: Option<CpuSnap>,
    machine: Option<MachineTicks>,
    at_ns: u64,
}

fn cpu_start(pid: u32) -> CpuStart {
    CpuStart {
        tree: CpuSnap::take(pid),
        bench: CpuSnap::take(std::process::id()),
        machine: procstat::machine_ticks(),
        at_ns: now_ns(),
    }
}

/// Fills the CPU and RSS columns from `start` to now, as `measure` does for stream rows.
fn cpu_fill(row: &mut Row, start: &CpuStart, pid: u32) {
    let secs = (now_ns() - start.at_ns) as f64 / 1e9;
    let (Some(t0), Some(t1)) = (start.tree.as_ref(), CpuSnap::take(pid)) else {
        return;
    };
    let tree = t0.until(&t1);
    let bench = match (start.bench.as_ref(), CpuSnap::take(std::process::id())) {
        (Some(a), Some(b)) => a.until(&b).own_pct,
        _ => 0.0,
    };
    row.cpu_srv = Some(tree.own_pct);
    row.cpu_kids = Some(tree.kids_pct);
    row.cpu_gen = Some(bench);
    if let (Some(a), Some(b)) = (start.machine, procstat::machine_ticks()) {
        let busy = b.busy.saturating_sub(a.busy) as f64 / procstat::clk_tck() as f64 / secs * 100.0;
        row.cpu_other = Some((busy - tree.own_pct - tree.kids_pct - bench).max(0.0));
    }
    row.rss_kib = procstat::rss_kib(pid);
}

/// p50, p99 (nearest rank) and max of `v` into the row.
fn percentiles(row: &mut Row, v: &mut [u64]) {
    v.sort_unstable();
    if v.is_empty() {
        return;
    }
    row.p50 = Some(v[(v.len() - 1) / 2]);
    row.p99 = Some(v[(v.len() * 99).div_ceil(100) - 1]);
    row.max = v.last().copied();
}

/// `tries` sequential requests for `path` (after one untimed one), spaced [`PIC_SPACING`].
async fn sequential(
    ctx: &mut Ctx,
    addr: SocketAddr,
    pid: u32,
    name: &str,
    path: &str,
    tries: usize,
) -> Row {
    let mut row = Row::new("pictures", name);
    row.clients = "1".into();
    if let Err(e) = get(addr, path).and_then(|r| check_picture(&r)) {
        return Row::error("pictures", name, PIC_TARGET, format!("first picture: {e}"));
    }
    let cpu = cpu_start(pid);
    let (mut times, mut sizes, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..tries {
        tokio::time::sleep(PIC_SPACING).await;
        match get(addr, path) {
            Ok(r) => match check_picture(&r) {
                Ok(()) => {
                    times.push(r.total_ns);
                    sizes.push(r.body.len());
                }
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(e),
        }
    }
    cpu_fill(&mut row, &cpu, pid);
    percentiles(&mut row, &mut times);
    row.loss = errors.len().to_string();
    row.add_note(format!("{} pictures", times.len()));
    if !sizes.is_empty() {
        sizes.sort_unstable();
        row.add_note(format!(
            "median size {} KiB",
            sizes[sizes.len() / 2].div_ceil(1024)
        ));
    }
    row.add_note("connect → last byte; CPU kids includes the feed's x264 encode");
    if let Some(e) = errors.first() {
        row.add_note(format!("{} failed: {e}", errors.len()));
        row.verdict = Verdict::Fail;
    }
    if times.is_empty() {
        row.verdict = Verdict::Error("no picture".into());
        ctx.note(format!("pictures: {name}: every request failed"));
    }
    row
}

/// `keyframe=last` TTFB: `tries` requests (after one untimed), each closed at its first body byte.
async fn last_keyframe(addr: SocketAddr, pid: u32, name: &str, tries: usize) -> Row {
    let path = "/stream/cam?keyframe=last";
    let mut row = Row::new("pictures", name);
    row.clients = "1".into();
    let _ = first_body_byte(addr, path);
    let cpu = cpu_start(pid);
    let (mut from_connect, mut from_write, mut first_read) = (Vec::new(), Vec::new(), Vec::new());
    let (mut errors, mut not_pat) = (Vec::new(), 0);
    for _ in 0..tries {
        tokio::time::sleep(TTFB_SPACING).await;
        match first_body_byte(addr, path) {
            Ok((c, w, body)) => {
                from_connect.push(c);
                from_write.push(w);
                first_read.push(body.len());
                // The header comes first: a TS packet on PID 0 (the PAT).
                let pat = body.len() >= 3 && body[0] == 0x47 && body[1] & 0x1F == 0 && body[2] == 0;
                if !pat {
                    not_pat += 1;
                }
            }
            Err(e) => errors.push(e),
        }
    }
    cpu_fill(&mut row, &cpu, pid);
    percentiles(&mut row, &mut from_connect);
    row.loss = errors.len().to_string();
    if from_connect.is_empty() {
        row.verdict = Verdict::Error(format!(
            "no try succeeded: {}",
            errors.first().cloned().unwrap_or_default()
        ));
        return row;
    }
    from_write.sort_unstable();
    first_read.sort_unstable();
    row.add_note(format!(
        "connect → first body byte; from request write: median {}",
        ms(from_write[(from_write.len() - 1) / 2])
    ));
    row.add_note(format!(
        "median first read {} KiB",
        first_read[first_read.len() / 2].div_ceil(1024)
    ));
    if not_pat > 0 {
        row.add_note(format!("{not_pat} did not start with the PAT"));
    }
    if let Some(e) = errors.first() {
        row.add_note(format!("{} failed: {e}", errors.len()));
    }
    let ok = row.p50.is_some_and(|p| p <= TTFB_TARGET_NS) && errors.is_empty() && not_pat == 0;
    row.judge(TTFB_TARGET, ok);
    row
}

/// Whether `pid`'s command line has `reverse` as one argument (the screenshot decoder).
fn is_decoder(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"reverse"))
}

/// Decoder processes seen during the batch.
#[derive(Default)]
struct Census {
    /// Every decoder seen, by pid and start time.
    seen: HashSet<(u32, u64)>,
    /// The most seen in one look.
    at_once: usize,
}

/// 16 connections opened first, then their requests written together; a census thread
/// counts the server's decoder processes meanwhile.
fn concurrent(addr: SocketAddr, pid: u32, name: &str) -> Row {
    let path = "/stream/cam/pic";
    let mut row = Row::new("pictures", name);
    row.clients = BATCH.to_string();
    let cpu = cpu_start(pid);
    let start = Arc::new(Barrier::new(BATCH + 1));
    let mut workers = Vec::new();
    for _ in 0..BATCH {
        let start = start.clone();
        workers.push(std::thread::spawn(move || {
            let conn = connect(addr, REQUEST_TIMEOUT);
            start.wait();
            let mut s = conn?;
            write_get(&mut s, path)?;
            read_reply(&mut s, now_ns(), now_ns())
        }));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Census>> = Arc::default();
    let census = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now: Vec<(u32, u64)> = procstat::descendants(pid)
                    .iter()
                    .filter(|p| p.state != 'Z' && is_decoder(p.pid))
                    .map(|p| (p.pid, p.start))
                    .collect();
                let mut s = seen.lock().expect("census lock");
                s.at_once = s.at_once.max(now.len());
                s.seen.extend(now);
                drop(s);
                std::thread::sleep(CENSUS_PERIOD);
            }
        })
    };
    // Let the census take a first look, then release every request at once.
    std::thread::sleep(Duration::from_millis(20));
    start.wait();
    let t0 = now_ns();
    let replies: Vec<Result<Reply, String>> = workers
        .into_iter()
        .map(|w| w.join().unwrap_or_else(|_| Err("worker panicked".into())))
        .collect();
    let wall = now_ns() - t0;
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Relaxed);
    let _ = census.join();
    cpu_fill(&mut row, &cpu, pid);
    let (distinct, at_once) = {
        let s = seen.lock().expect("census lock");
        (s.seen.len(), s.at_once)
    };
    let mut times = Vec::new();
    let mut errors = Vec::new();
    let mut bodies = HashSet::new();
    let mut last_done = t0;
    for r in &replies {
        match r {
            Ok(r) => {
                if let Err(e) = check_picture(r) {
                    errors.push(e);
                } else {
                    times.push(r.done_at.saturating_sub(r.written_at));
                    bodies.insert(r.body.as_slice());
                }
                last_done = last_done.max(r.done_at);
            }
            Err(e) => errors.push(e.clone()),
        }
    }
    percentiles(&mut row, &mut times);
    row.loss = errors.len().to_string();
    row.add_note(format!(
        "batch wall {} (last byte {})",
        ms(wall),
        ms(last_done - t0)
    ));
    row.add_note(format!("{} × 200", times.len()));
    row.add_note(format!(
        "{} distinct bod{}",
        bodies.len(),
        if bodies.len() == 1 { "y" } else { "ies" }
    ));
    row.add_note(format!(
        "decoders: {distinct} seen, {at_once} at once (/proc every {} ms)",
        CENSUS_PERIOD.as_millis()
    ));
    if let Some(e) = errors.first() {
        row.add_note(format!("{} failed: {e}", errors.len()));
    }
    if distinct == 0 {
        row.verdict = Verdict::Error("no decoder process seen (census missed it?)".into());
        row.target = BATCH_TARGET.into();
        return row;
    }
    // At most one decoder at a time; the census may also see the one started for later.
    let ok = errors.is_empty() && times.len() == BATCH && bodies.len() == 1 && at_once == 1;
    row.judge(BATCH_TARGET, ok);
    row
}
