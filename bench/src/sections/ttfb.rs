//! On-demand time to first byte: a stream whose command is the stamping feed at 1 Mbit/s (no
//! feed, no client yet, so nothing runs) is requested; the time from `connect()` to the first
//! body byte is compared with the time the same command takes from fork+exec to its first
//! stdout byte when the bench runs it itself. Target: median difference ≤ 5 ms.
//!
//! Between tries the bench waits until the server has stopped the stream's process, so that
//! every try is a cold on-demand start.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Ctx, server_error};
use crate::client::oneshot::{connect, first_body, write_get};
use crate::procstat;
use crate::report::{Row, ms};
use voyandz_bench::clock::now_ns;

const RATE_BPS: u64 = 1_000_000;
const TARGET_NS: u64 = 5_000_000;
const TARGET: &str = "median − direct ≤ 5 ms";
/// Longest we wait for the server to stop an unused on-demand stream between tries.
const STOP_WAIT: Duration = Duration::from_secs(5);
const TRY_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the row.
pub async fn run(ctx: &mut Ctx) {
    let name = "on-demand TTFB (stream command = stamp 1 Mbit/s)";
    let tries = ctx.opts.ttfb_tries;
    // Direct: fork+exec to first stdout byte (one untimed try first: page cache, binary).
    let mut direct = Vec::new();
    for i in 0..=tries {
        match direct_once(ctx) {
            Ok(t) if i > 0 => direct.push(t),
            Ok(_) => {}
            Err(e) => {
                return ctx.push(Row::error("ttfb", name, TARGET, format!("direct run: {e}")));
            }
        }
    }
    let yaml = format!(
        "listenaddr: 127.0.0.1\nstreams:\n  od:\n    command: {}\n    mimetype: video/mp2t\n",
        crate::server::yaml_str(&ctx.stamp_cmd(RATE_BPS, super::FeedLooks::MpegTs))
    );
    let server = match ctx.start_server("ttfb", &yaml) {
        Ok(s) => s,
        Err(e) => return ctx.push(server_error("ttfb", name, TARGET, &e)),
    };
    let mut via = Vec::new();
    let mut heads = Vec::new();
    let mut stops = Vec::new();
    let mut errors = Vec::new();
    let mut warm_tries = 0;
    for i in 0..=tries {
        let was_running = !procstat::descendants(server.pid).is_empty();
        match server_once(server.addr) {
            Ok((head, body)) if i > 0 => {
                if was_running {
                    warm_tries += 1;
                }
                heads.push(head);
                via.push(body);
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
        // Wait for the on-demand stream to stop before the next (cold) try.
        let t0 = Instant::now();
        while !procstat::descendants(server.pid)
            .iter()
            .all(|p| p.state == 'Z')
            && t0.elapsed() < STOP_WAIT
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        stops.push(t0.elapsed().as_nanos() as u64);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut row = Row::new("ttfb", name);
    row.clients = "1".into();
    let med = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    };
    let d = med(&mut direct);
    let v = med(&mut via);
    let h = med(&mut heads);
    stops.sort_unstable();
    if let (Some(d), Some(v)) = (d, v) {
        row.p50 = Some(v);
        row.p99 = via
            .get((via.len() * 99).div_ceil(100).saturating_sub(1))
            .copied();
        row.max = via.last().copied();
        let diff = v as i64 - d as i64;
        row.add_note(format!(
            "direct fork+exec→first byte median {} (max {}); difference {}{}",
            ms(d),
            ms(direct.last().copied().unwrap_or(0)),
            if diff < 0 { "-" } else { "" },
            ms(diff.unsigned_abs())
        ));
        if let Some(h) = h {
            row.add_note(format!("response head median {}", ms(h)));
        }
        row.add_note(format!("{} tries", via.len()));
        row.judge(TARGET, diff <= TARGET_NS as i64 && errors.is_empty());
    } else {
        row.verdict = crate::report::Verdict::Error(format!(
            "no successful try: {}",
            errors.first().cloned().unwrap_or_default()
        ));
    }
    if !errors.is_empty() {
        row.add_note(format!("{} failed tries: {}", errors.len(), errors[0]));
    }
    if warm_tries > 0 {
        row.add_note(format!("{warm_tries} tries found the stream still running"));
    }
    if let Some(s) = stops.get(stops.len() / 2) {
        row.add_note(format!(
            "stream stopped {} after the client left (median)",
            ms(*s)
        ));
    }
    if stops
        .last()
        .is_some_and(|s| *s >= STOP_WAIT.as_nanos() as u64)
    {
        ctx.note(format!(
            "ttfb: the on-demand stream was still running {STOP_WAIT:?} after its only client left"
        ));
    }
    ctx.push(row);
    ctx.stop_server(server);
}

/// fork+exec of the stamp command to its first stdout byte, ns.
fn direct_once(ctx: &Ctx) -> Result<u64, String> {
    let t0 = now_ns();
    let mut child = Command::new(&ctx.stamp)
        .arg("--rate-bps")
        .arg(RATE_BPS.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut b = [0u8; 1];
    let r = out.read(&mut b);
    let t1 = now_ns();
    let _ = child.kill();
    let _ = child.wait();
    match r {
        Ok(1) => Ok(t1 - t0),
        Ok(_) => Err("no output".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// connect → GET → response head and first body byte, ns (both from before `connect`).
fn server_once(addr: std::net::SocketAddr) -> Result<(u64, u64), String> {
    let t0 = now_ns();
    let mut s = connect(addr, TRY_TIMEOUT)?;
    write_get(&mut s, "/stream/od")?;
    let first = first_body(&mut s, &mut [0u8; 4096])?;
    Ok((first.head_at - t0, first.body_at - t0))
}
