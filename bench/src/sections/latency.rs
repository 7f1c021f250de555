//! Latency at 4 Mbit/s and 32 kbit/s with 10 clients: the pipe floor (stamp | reader, no
//! server), a direct-relay stream and a `cat` stream, and at 4 Mbit/s a multi-feed stream
//! whose command reads its second feed on a descriptor of its own. Target: p99 ≤ 1 ms through
//! the server.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdout, Command};

use super::{
    Clients, Ctx, FeedLooks, Window, fill, floor_ratio, lossless, measure, server_error,
    stream_req, warm_clients,
};
use crate::client::{Pace, Request, Tracker};
use crate::report::Row;

/// Clients of every row (the `dbus` row measures the same).
pub const CLIENTS: usize = 10;
/// Pipes in the floor row: one at high rates (ten feeds at 4 Mbit/s would load the cores with
/// 26,600 wake-ups a second, more than the server rows' single feed); ten at low rates, where
/// ten feeds cost nothing and one would give too few samples for a p99 (21 packets a second).
fn floor_pipes(rate: u64) -> usize {
    if rate < 1_000_000 { CLIENTS } else { 1 }
}
const RATES: [(u64, &str); 2] = [(4_000_000, "4 Mbit/s"), (32_000, "32 kbit/s")];
/// The target for both server paths (and the `dbus` row's, which must keep it).
pub const P99_TARGET_NS: u64 = 1_000_000;
const TARGET: &str = "p99 ≤ 1 ms, no loss";

/// A row through the server: 10 clients of one stream of the relay config.
struct Via {
    /// The stream the clients read.
    stream: &'static str,
    /// What the row calls it, after the rate.
    what: &'static str,
    /// Entries added under `feeds:` of [`Ctx::relay_yaml`] for it ([`Ctx::relay_yaml_with`]).
    feeds: &'static str,
    /// Entries added under its `streams:`.
    streams: &'static str,
    /// The lowest rate it runs at.
    min_rate: u64,
}

/// The rows through the server, at each rate of [`RATES`] from their `min_rate`. `mux2` is
/// `cat` with the feed on descriptor 3 instead of stdin: the stamp `f` is its second feed,
/// which its command names (`cat /dev/fd/3`), and the first, `quiet` (a `sleep` that writes
/// nothing, so it costs nothing), goes to its stdin, unread. Same framing (`video/mp2t`) as
/// `cat`, so the two rows differ only in how the feed reaches the command; at 4 Mbit/s only,
/// since the rate does not change that.
const VIAS: [Via; 3] = [
    Via {
        stream: "direct",
        what: "direct relay",
        feeds: "",
        streams: "",
        min_rate: 0,
    },
    Via {
        stream: "cat",
        what: "cat stream",
        feeds: "",
        streams: "",
        min_rate: 0,
    },
    Via {
        stream: "mux2",
        what: "multi-feed stream (2nd feed's fd → stdout)",
        feeds: "  quiet:\n    command: sleep 3600\n",
        streams: "  mux2:\n    feeds: [quiet, f]\n    command: \"cat {feed-path:f}\"\n    mimetype: video/mp2t\n",
        min_rate: 1_000_000,
    },
];

/// The measured window: a 32 kbit/s stream has 21 packets a second, so it gets a longer one
/// for its p99 to rest on more than a handful of samples.
fn window(ctx: &Ctx, rate: u64) -> std::time::Duration {
    if rate < 1_000_000 {
        ctx.opts.window * 2
    } else {
        ctx.opts.window
    }
}

/// Starts the stamping feed at `rate` as a child of the bench (killed when dropped), with its
/// stdout.
fn spawn_stamp(ctx: &Ctx, rate: u64) -> Result<(Child, ChildStdout), String> {
    let mut child = Command::from(ctx.stamp_command(rate, FeedLooks::MpegTs))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn stamp: {e}"))?;
    let out = child.stdout.take().expect("stdout is piped");
    Ok((child, out))
}

/// Measures a floor row's window after the warm-up: the feeds are the bench's own children.
async fn measure_floor(ctx: &Ctx, clients: &Clients, rate: u64) -> Window {
    tokio::time::sleep(super::WARMUP + Duration::from_millis(200)).await;
    measure(
        &[&clients.board],
        Some(std::process::id()),
        window(ctx, rate),
    )
    .await
}

/// Runs the nine rows.
pub async fn run(ctx: &mut Ctx) {
    for (rate, label) in RATES {
        floor(ctx, rate, label).await;
        tcp_floor(ctx, rate, label).await;
        for via in VIAS.iter().filter(|via| rate >= via.min_rate) {
            through_server(ctx, rate, label, via).await;
        }
    }
}

/// `stamp | reader` pipes read by this process: what one hop through the kernel and the load
/// generator's runtime costs without any server.
async fn floor(ctx: &mut Ctx, rate: u64, label: &str) {
    let name = format!("{label} floor: stamp | reader");
    let clients = Clients::new();
    let mut children = Vec::new();
    for _ in 0..floor_pipes(rate) {
        let (child, mut out) = match spawn_stamp(ctx, rate) {
            Ok(spawned) => spawned,
            Err(e) => return ctx.push(Row::error("latency", name, "-", e)),
        };
        let mut tracker = Tracker::new(clients.board.clone());
        children.push(child);
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match out.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => tracker.body(&buf[..n], voyandz_bench::clock::now_ns()),
                }
            }
        });
    }
    let w = measure_floor(ctx, &clients, rate).await;
    drop(children);
    let mut row = Row::new("latency", name);
    row.clients = match floor_pipes(rate) {
        1 => "1 pipe".to_string(),
        n => format!("{n} pipes"),
    };
    fill(&mut row, &w, false);
    row.target = "(floor)".into();
    if let Some(p) = row.p99 {
        ctx.floor_p99.push((rate, p));
    }
    ctx.push(row);
}

/// A second reference: the same 10 TCP clients fed by a minimal relay inside the bench (one
/// thread: read the pipe, `write(2)` each read to every socket). What one more kernel hop and
/// 10 loopback sockets cost on this machine, without the server's threads and wake-ups: if
/// this row misses 1 ms too, the machine (a VM's idle wake-ups, other load) is the limit.
async fn tcp_floor(ctx: &mut Ctx, rate: u64, label: &str) {
    let name = format!("{label} floor: stamp | relay → TCP");
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => return ctx.push(Row::error("latency", name, "-", format!("bind: {e}"))),
    };
    let addr = listener.local_addr().expect("bound");
    let mut clients = Clients::new();
    clients.spawn(
        &Request {
            addr,
            path: "/floor".into(),
            http10: true,
        },
        Pace::Fast,
        CLIENTS,
    );
    let mut socks = Vec::new();
    for _ in 0..CLIENTS {
        let Ok(Ok((mut s, _))) =
            tokio::time::timeout(Duration::from_secs(5), listener.accept()).await
        else {
            return ctx.push(Row::error(
                "latency",
                name,
                "-",
                "in-bench relay: clients did not connect",
            ));
        };
        let _ = s.set_nodelay(true);
        let mut req = [0u8; 1024];
        let _ = s.read(&mut req).await;
        if s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\n\r\n")
            .await
            .is_err()
        {
            return ctx.push(Row::error(
                "latency",
                name,
                "-",
                "in-bench relay: write failed",
            ));
        }
        socks.push(s);
    }
    let (child, mut out) = match spawn_stamp(ctx, rate) {
        Ok(spawned) => spawned,
        Err(e) => return ctx.push(Row::error("latency", name, "-", e)),
    };
    let torn = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let torn2 = torn.clone();
    let relay = tokio::task::spawn_local(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = out.read(&mut buf).await {
            for s in &socks {
                if s.try_write(&buf[..n]).map_or(true, |w| w < n) {
                    torn2.set(torn2.get() + 1);
                }
            }
        }
    });
    let w = measure_floor(ctx, &clients, rate).await;
    relay.abort();
    drop(child);
    let mut row = Row::new("latency", name);
    row.clients = CLIENTS.to_string();
    fill(&mut row, &w, false);
    if torn.get() > 0 {
        row.add_note(format!("{} short writes", torn.get()));
    }
    if let Some(r) = floor_ratio(ctx, rate, row.p99) {
        row.add_note(r);
    }
    row.target = "(floor)".into();
    if let Some(p) = row.p99 {
        ctx.tcp_floor_p99.push((rate, p));
    }
    drop(clients);
    ctx.push(row);
}

async fn through_server(ctx: &mut Ctx, rate: u64, label: &str, via: &Via) {
    let (stream, name) = (via.stream, format!("{label} {}", via.what));
    let yaml = ctx.relay_yaml_with(rate, via.feeds, via.streams);
    let server = match ctx.start_server(&format!("latency-{stream}-{rate}"), &yaml) {
        Ok(s) => s,
        Err(e) => return ctx.push(server_error("latency", &name, TARGET, &e)),
    };
    let req = stream_req(&server, stream, ctx.opts.http10);
    let (clients, _) = match warm_clients(&req, CLIENTS, Duration::from_secs(10)).await {
        Ok(warm) => warm,
        Err(why) => return ctx.give_up(server, Row::error("latency", name, TARGET, why)),
    };
    let failed = clients.board.failed.get();
    let w = measure(&[&clients.board], Some(server.pid), window(ctx, rate)).await;
    let mut row = Row::new("latency", name);
    row.clients = CLIENTS.to_string();
    fill(&mut row, &w, true);
    if failed > 0 {
        row.add_note(format!(
            "{failed} clients failed: {}",
            clients.board.fail_reasons.borrow().join(" / ")
        ));
    }
    if let Some(r) = floor_ratio(ctx, rate, row.p99) {
        row.add_note(r);
    }
    if let (Some(p), Some((_, f))) = (row.p99, ctx.tcp_floor_p99.iter().find(|(r, _)| *r == rate)) {
        row.add_note(format!("{:.1}× TCP floor", p as f64 / (*f).max(1) as f64));
    }
    let ok = row.p99.is_some_and(|p| p <= P99_TARGET_NS) && lossless(&w.stats, failed);
    row.judge(TARGET, ok);
    super::finish_row(ctx, row, server, clients).await;
}
