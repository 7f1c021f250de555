//! Slow clients on an opaque stream (its feed's first bytes are text, `voyandz-stamp
//! --opaque`, so the server frames nothing): 4 fast clients at 4 Mbit/s, then 4 slow ones
//! (10 KB/s, small SO_RCVBUF) join for 20 s. Targets: the fast clients' p99 ≤ 1 ms; server RSS grows ≤ 2 MiB; each slow client
//! is cut off ≤ 5 s after it starts falling behind (it falls behind from its first body byte:
//! it reads 50× slower than the stream).
//!
//! The cut-off time is seen two ways: by the slow client's kernel (TCP_INFO leaves ESTABLISHED
//! when the server's FIN/RST arrives, before the client has read what is queued) and by the
//! server's own `client disconnected` log line.

use std::time::Duration;

use super::{Clients, Ctx, fill, lossless, measure, server_error, stream_req};
use crate::client::Pace;
use crate::report::{Row, ms};

const RATE_BPS: u64 = 4_000_000;
const FAST: usize = 4;
const SLOW: usize = 4;
/// 10 KB/s: 1000 bytes every 100 ms.
const SLOW_PACE: Pace = Pace::Slow {
    bytes_per_tick: 1000,
    tick: Duration::from_millis(100),
    rcvbuf: 4096,
};
const P99_TARGET_NS: u64 = 1_000_000;
const RSS_GROWTH_KIB: u64 = 2048;
const CUT_TARGET_NS: u64 = 5_000_000_000;

/// Runs the three rows.
pub async fn run(ctx: &mut Ctx) {
    let yaml = ctx.relay_yaml(RATE_BPS);
    let fast_name = "slow clients: 4 fast at 4 Mbit/s beside 4 slow";
    let mut server = match ctx.start_server("slow", &yaml) {
        Ok(s) => s,
        Err(e) => return ctx.push(server_error("slow", fast_name, "fast p99 ≤ 1 ms", &e)),
    };
    // An opaque stream: the issue-12 rule (cut a client that falls too far behind) applies to
    // it, as its feed shows no container; on a framed one the server would skip a slow client
    // ahead to a keyframe instead, and the stamp packets have none.
    let req = stream_req(&server, "opaque", ctx.opts.http10);
    let mut fast = Clients::new();
    fast.spawn(&req, Pace::Fast, FAST);
    fast.wait_started(Duration::from_secs(10)).await;
    tokio::time::sleep(super::WARMUP + Duration::from_millis(200)).await;
    // Wall clock minus monotonic clock, to place the server's log timestamps on our clock.
    let wall_offset = wall_minus_mono();
    let mut slow = Clients::new();
    slow.spawn(&req, SLOW_PACE, SLOW);
    let w = measure(
        &[&fast.board, &slow.board],
        Some(server.pid),
        ctx.opts.slow_window,
    )
    .await;
    let failed = fast.board.failed.get();

    let mut row = Row::new("slow", fast_name);
    row.clients = format!("{FAST}+{SLOW}");
    fill(&mut row, &w, true);
    if failed > 0 {
        row.add_note(format!("{failed} fast clients failed"));
    }
    let ok = row.p99.is_some_and(|p| p <= P99_TARGET_NS) && lossless(&w.stats, failed);
    row.judge("fast p99 ≤ 1 ms, no loss", ok);
    ctx.push(row);

    let mut row = Row::new(
        "slow",
        format!(
            "slow clients: server RSS over {} s",
            ctx.opts.slow_window.as_secs()
        ),
    );
    row.clients = format!("{FAST}+{SLOW}");
    row.rss_kib = w.rss_end;
    match (w.rss_start, w.rss_max) {
        (Some(a), Some(m)) => {
            let growth = m.saturating_sub(a);
            row.add_note(format!(
                "start {:.1} MiB, max {:.1} MiB, growth {:.2} MiB",
                a as f64 / 1024.0,
                m as f64 / 1024.0,
                growth as f64 / 1024.0
            ));
            row.judge("growth ≤ 2 MiB", growth <= RSS_GROWTH_KIB);
        }
        _ => row.verdict = crate::report::Verdict::Error("no RSS reading".into()),
    }
    ctx.push(row);

    let log = server.log_text();
    let skips = log
        .lines()
        .filter(|l| l.contains("too slow") && l.contains("skip"))
        .count();
    if skips > 0 {
        ctx.note(format!("slow: {skips} log lines say a slow client of the opaque stream skips ahead instead of being cut"));
    }
    let results = slow.board.slow.borrow().clone();
    let slow_failed = slow.board.failed.get();
    let mut row = Row::new("slow", "slow clients: time from falling behind to cut-off");
    row.clients = SLOW.to_string();
    let mut worst: Option<u64> = None;
    let mut all_cut = results.len() == SLOW;
    let mut parts = Vec::new();
    let mut drain_max = 0u64;
    for r in &results {
        let Some(first) = r.first_body_ns else {
            all_cut = false;
            parts.push(format!(":{} no body", r.port));
            continue;
        };
        let kernel = r.closed_ns.map(|c| c.saturating_sub(first));
        let logged = log_disconnect(&log, r.port)
            .map(|wall| (wall - wall_offset).max(0) as u64)
            .map(|m| m.saturating_sub(first));
        // Judged on the server's own decision (its log line); the client's kernel sees the
        // FIN only after the bytes the server had already queued, at the client's 10 KB/s.
        let cut = logged.or(kernel);
        if let (Some(k), Some(l)) = (kernel, logged) {
            drain_max = drain_max.max(k.saturating_sub(l));
        }
        match cut {
            Some(c) => worst = Some(worst.map_or(c, |w: u64| w.max(c))),
            None => all_cut = false,
        }
        parts.push(format!(
            ":{} cut {} (client saw FIN at {}), read {} KB, max lag {}",
            r.port,
            logged.map(ms).unwrap_or_else(|| "no log line".into()),
            kernel.map(ms).unwrap_or_else(|| "never".into()),
            r.bytes / 1000,
            ms(r.max_latency_ns)
        ));
    }
    if slow_failed > 0 {
        all_cut = false;
        parts.push(format!(
            "{slow_failed} slow clients failed to start: {}",
            slow.board.fail_reasons.borrow().join(" / ")
        ));
    }
    row.max = worst;
    row.note = parts.join("; ");
    if drain_max > 500_000_000 {
        ctx.note(format!(
            "slow clients: after the server cut a slow client, that client still received data for up to {} \
             (bytes already queued in the kernel at close, drained at 10 KB/s)",
            ms(drain_max)
        ));
    }
    row.judge(
        "each cut ≤ 5 s",
        all_cut && worst.is_some_and(|w| w <= CUT_TARGET_NS),
    );
    ctx.push(row);
    drop((fast, slow));
    super::settle().await;
    if !server.alive() {
        ctx.note("slow: server died during the slow-client run");
    }
    ctx.stop_server(server);
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC, ns: subtracted from a log line's time, it places the
/// line on CLOCK_MONOTONIC.
pub fn wall_minus_mono() -> i64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    wall - voyandz_bench::clock::now_ns() as i64
}

/// The wall-clock time (ns since the epoch) of the server's `client disconnected` line for
/// the peer at local port `port`, from its `YYYY-mm-dd hh:mm:ss.sss` local-time prefix.
fn log_disconnect(log: &str, port: u16) -> Option<i64> {
    let peer = format!("127.0.0.1:{port}");
    let line = log
        .lines()
        .find(|l| l.contains("disconnected") && l.split_whitespace().any(|w| w.ends_with(&peer)))?;
    parse_local_ts(line)
}

/// Parses the log line's local-time prefix into ns since the epoch.
pub fn parse_local_ts(line: &str) -> Option<i64> {
    let (date, rest) = line.split_once(' ')?;
    let time = rest.split_whitespace().next()?;
    let d: Vec<i32> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i32> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let frac_ns: i64 = format!("{frac:0<9}")[..9].parse().ok()?;
    // SAFETY: tm is plain data; mktime reads and normalises it (local time zone).
    let secs = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = d[0] - 1900;
        tm.tm_mon = d[1] - 1;
        tm.tm_mday = d[2];
        tm.tm_hour = t[0];
        tm.tm_min = t[1];
        tm.tm_sec = t[2];
        tm.tm_isdst = -1;
        libc::mktime(&mut tm)
    };
    if secs < 0 {
        return None;
    }
    Some(secs as i64 * 1_000_000_000 + frac_ns)
}
