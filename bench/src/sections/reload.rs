//! The reload gap: the longest pause a client of an *unchanged* stream sees while the server
//! applies ten reloads in a row. The stream is the latency section's 4 Mbit/s direct relay
//! (same config, feed, 10 clients and measurement); each reload changes something else:
//! a continuous feed `side` is restarted every time, and a stream `extra` on it is added,
//! altered, removed in turn. Target: no pause longer than the stream's own packet interval
//! plus 1 ms, no loss. "The stream's own packet interval" is, for each pause, how far apart
//! the feed wrote those two packets (at least the nominal interval): a pause the feed itself
//! made (the machine did not schedule it) is the stream's, not the server's; the note gives
//! the longest pause as measured too.
//!
//! The reloads are triggered the way an operator's edit is: the bench rewrites the config file
//! the server was started on, in place (`std::fs::write`), and the server's file watch
//! (inotify on the directory, debounced 200 ms) picks it up. Each reload is waited for (its
//! `reloaded:` line in the server's log) before the next one is written. The window stays
//! open from the first write until [`TAIL`] after the last reload, then the same clients are
//! measured for as long again without any reload: the reference that says how much of the
//! pause is this machine and the load generator rather than the reload.
//!
//! To tell the two apart in the reload window too, every pause over the limit is kept with its
//! time: merged over the clients into moments, each is set beside the applies (the server's
//! `reloading the configuration` → `reloaded:` lines, placed on CLOCK_MONOTONIC) and beside
//! the load generator's own worst stall; the feed's share of the longest pause is its two
//! packets' write stamps apart.

use std::time::Duration;

use super::{Ctx, Window, fill, lossless, measure, measure_during, server_error, warm_clients};
use crate::client::{Pause, Stats};
use crate::report::{Row, Verdict, ms};
use crate::server::Server;
use voyandz_bench::clock::now_ns;
use voyandz_bench::packet::PACKET_LEN;

/// The latency section's 4 Mbit/s direct relay.
const RATE_BPS: u64 = 4_000_000;
const STREAM: &str = "direct";
const CLIENTS: usize = 10;
const RELOADS: usize = 10;
/// Pause allowed on top of the stream's own packet interval.
const SLACK_NS: u64 = 1_000_000;
/// Longest wait for one reload to be applied: the debounce (200 ms) on a loaded machine.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server's log is read for the reload's line.
const POLL: Duration = Duration::from_millis(5);
/// The window stays open this long after the last reload: what the reload stopped (the
/// replaced `side` process) goes after its `reloaded:` line.
const TAIL: Duration = Duration::from_millis(500);
/// A pause this close to an apply (the server's log lines around it) counts as at the apply:
/// the log's millisecond resolution, and what follows the line (the replaced `side` process
/// stopped, the new one started).
const APPLY_MARGIN: Duration = Duration::from_millis(5);
/// Between the reload window and the reference window: the last reload's aftermath settles.
const SETTLE: Duration = Duration::from_secs(1);
/// What each applied reload logs (`src/reload/mod.rs`), and each refused one.
const APPLIED_LINE: &str = "reloaded: ";
const RELOADING_LINE: &str = "reloading the configuration";
const FAILED_LINE: &str = "reload failed";

/// The interval between two packets of the stamping feed at `rate` bits/s, ns.
fn packet_interval_ns(rate: u64) -> u64 {
    PACKET_LEN as u64 * 8 * 1_000_000_000 / rate
}

/// The relay config, version `k` (0 at start, then one per reload): the continuous feed
/// `side` (`sleep`, which costs nothing but a process) has a new command each time, so each
/// reload stops one process and starts another; the stream `extra` on it is added (k ≡ 1
/// mod 3), altered (its mimetype, k ≡ 2), removed (k ≡ 0). `direct`, `cat`, `opaque` and
/// their feeds `f`, `g` stay as they are.
fn yaml(ctx: &Ctx, k: usize) -> String {
    let side = format!(
        "  side:\n    command: sleep {}\n    mode: continuous\n",
        3600 + k
    );
    let extra = match k % 3 {
        1 => "  extra:\n    feed: side\n    mimetype: video/mp2t\n",
        2 => "  extra:\n    feed: side\n    mimetype: text/plain\n",
        _ => "",
    };
    ctx.relay_yaml_with(RATE_BPS, &side, extra)
}

/// One reload as the bench saw it: when its config was written and when its `reloaded:` line
/// was seen (at most [`POLL`] after the server wrote it), CLOCK_MONOTONIC ns.
struct Reload {
    written_ns: u64,
    seen_ns: u64,
}

/// Writes each config in turn over the server's, waiting for each to be applied.
async fn reload_all(server: &Server, configs: &[String]) -> Result<Vec<Reload>, String> {
    let mut done = Vec::new();
    for (i, text) in configs.iter().enumerate() {
        let written_ns = now_ns();
        std::fs::write(&server.config, text)
            .map_err(|e| format!("write {}: {e}", server.config.display()))?;
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        loop {
            let log = server.log_text();
            if log
                .lines()
                .filter(|l| l.contains(APPLIED_LINE))
                .nth(i)
                .is_some()
            {
                break;
            }
            if let Some(l) = log.lines().find(|l| l.contains(FAILED_LINE)) {
                return Err(format!("reload {} refused: {l}", i + 1));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "reload {} not applied within {APPLY_TIMEOUT:?}",
                    i + 1
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        done.push(Reload {
            written_ns,
            seen_ns: now_ns(),
        });
        if done.len() == configs.len() {
            tokio::time::sleep(TAIL).await;
        }
    }
    Ok(done)
}

/// Whether a `reloaded:` line names the measured stream or its feed as changed (the row would
/// not measure what it says).
fn touches_measured(line: &str) -> bool {
    let said = line.split_once(APPLIED_LINE).map_or("", |(_, m)| m);
    let words: Vec<&str> = said
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .any(|w| w == ["feed", "f"] || w == ["stream", STREAM])
}

/// When the server applied each reload, CLOCK_MONOTONIC ns: from its `reloading the
/// configuration` line to its `reloaded:` line (+ 1 ms: the log shows milliseconds), widened
/// by [`APPLY_MARGIN`] on each side.
fn apply_spans(log: &str, wall_minus_mono: i64) -> Vec<(u64, u64)> {
    let at = |marker: &str| -> Vec<u64> {
        log.lines()
            .filter(|l| l.contains(marker))
            .filter_map(super::slow::parse_local_ts)
            .map(|wall| (wall - wall_minus_mono).max(0) as u64)
            .collect()
    };
    let margin = APPLY_MARGIN.as_nanos() as u64;
    at(RELOADING_LINE)
        .into_iter()
        .zip(at(APPLIED_LINE))
        .map(|(start, end)| (start.saturating_sub(margin), end + 1_000_000 + margin))
        .collect()
}

/// The long pauses of all clients merged into moments (a stall upstream of the clients is one
/// pause at each of them): (start, end, the longest pause in it), in time order.
fn moments(pauses: &[Pause]) -> Vec<(u64, u64, u64)> {
    let mut spans: Vec<(u64, u64, u64)> = pauses
        .iter()
        .map(|p| (p.end_ns - p.len_ns, p.end_ns, p.len_ns))
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64, u64)> = Vec::new();
    for (start, end, len) in spans {
        match merged.last_mut() {
            Some(m) if start <= m.1 => *m = (m.0, m.1.max(end), m.2.max(len)),
            _ => merged.push((start, end, len)),
        }
    }
    merged
}

/// Where the pauses over the limit fell: how many moments, and how many of them at a reload's
/// apply (a pause the reload makes is there, not in the debounce before it).
fn pauses_at_applies(stats: &Stats, spans: &[(u64, u64)], limit: u64) -> String {
    let all = moments(&stats.long_pauses);
    let at_apply: Vec<u64> = all
        .iter()
        .filter(|m| spans.iter().any(|s| m.0 < s.1 && m.1 > s.0))
        .map(|m| m.2)
        .collect();
    let margin = ms(APPLY_MARGIN.as_nanos() as u64);
    let mut text = format!(
        "pauses > {} at {} moments (clients merged), ",
        ms(limit),
        all.len()
    );
    match at_apply.iter().max() {
        None => text.push_str(&format!(
            "none within {margin} of an apply (server log: reloading → reloaded:)"
        )),
        Some(worst) => text.push_str(&format!(
            "{} within {margin} of an apply (server log: reloading → reloaded:), the longest {}",
            at_apply.len(),
            ms(*worst)
        )),
    }
    text
}

/// The most any pause over the limit lasted beyond the stream's own interval between its two
/// packets (the feed's write stamps apart, at least `interval`): what the server added.
fn server_added(stats: &Stats, interval: u64) -> u64 {
    (stats.long_pauses.iter())
        .map(|p| p.len_ns.saturating_sub(p.feed_ns.max(interval)))
        .max()
        .unwrap_or(0)
}

/// Pauses over the limit in a window, as moments.
fn moments_text(stats: &Stats, limit: u64) -> String {
    format!(
        "pauses > {} at {} moments",
        ms(limit),
        moments(&stats.long_pauses).len()
    )
}

/// A window's longest pause, the feed's share of it, and how much of it the load generator's
/// own worst stall (its lag probe's worst tick) covers: a pause the bench's thread made is one
/// no server could avoid.
fn pause_text(w: &Window) -> String {
    let p = w.stats.pause;
    let mut text = format!(
        "longest pause {} (feed wrote the 2 packets {} apart",
        ms(p.len_ns),
        ms(p.feed_ns)
    );
    if p.len_ns > 0 && w.lag_max_at > 0 {
        let (stall_start, stall_end) = (w.lag_max_at.saturating_sub(w.lag_max), w.lag_max_at);
        let covered = p
            .end_ns
            .min(stall_end)
            .saturating_sub((p.end_ns - p.len_ns).max(stall_start));
        text.push_str(&format!(
            "; gen's worst stall, {}, covers {} of it",
            ms(w.lag_max),
            ms(covered)
        ));
    }
    text.push(')');
    text
}

/// The row.
pub async fn run(ctx: &mut Ctx) {
    let interval = packet_interval_ns(RATE_BPS);
    let limit = interval + SLACK_NS;
    let name = format!("4 Mbit/s direct relay across {RELOADS} reloads");
    let target = format!(
        "pause ≤ the feed's own gap (≥ {}) + {}, no loss",
        ms(interval),
        ms(SLACK_NS)
    );
    let configs: Vec<String> = (1..=RELOADS).map(|k| yaml(ctx, k)).collect();
    let server = match ctx.start_server("reload", &yaml(ctx, 0)) {
        Ok(s) => s,
        Err(e) => return ctx.push(server_error("reload", &name, &target, &e)),
    };
    let req = super::stream_req(&server, STREAM, ctx.opts.http10);
    let (clients, all_started) = match warm_clients(&req, CLIENTS, Duration::from_secs(10)).await {
        Ok(warm) => warm,
        Err(why) => return ctx.give_up(server, Row::error("reload", name, &target, why)),
    };
    clients.board.pause_limit_ns.set(limit);
    let (w, reloads) = measure_during(
        &[&clients.board],
        Some(server.pid),
        reload_all(&server, &configs),
    )
    .await;
    tokio::time::sleep(SETTLE).await;
    let quiet = measure(
        &[&clients.board],
        Some(server.pid),
        Duration::from_secs_f64(w.secs),
    )
    .await;

    let failed = clients.board.failed.get() + u64::from(!all_started);
    let log = server.log_text();
    let mut row = Row::new("reload", name);
    row.clients = CLIENTS.to_string();
    fill(&mut row, &w, true);
    row.add_note(format!(
        "{}, packet interval {}",
        pause_text(&w),
        ms(interval)
    ));
    let mut error = None;
    match &reloads {
        Ok(r) => {
            let (first, last) = (r[0].written_ns, r[r.len() - 1].seen_ns);
            row.add_note(format!(
                "{RELOADS} reloads took {} (first write → last `reloaded:` seen; window + {})",
                ms(last - first),
                ms(TAIL.as_nanos() as u64)
            ));
            let spans = apply_spans(&log, super::slow::wall_minus_mono());
            row.add_note(pauses_at_applies(&w.stats, &spans, limit));
        }
        Err(e) => error = Some(e.clone()),
    }
    if let Some(l) = log
        .lines()
        .find(|l| l.contains(APPLIED_LINE) && touches_measured(l))
    {
        error = Some(format!("a reload changed the measured stream: {l}"));
    }
    row.add_note(format!(
        "same clients {:.1} s later without reloads: {}, {}, p99 {}",
        quiet.secs,
        pause_text(&quiet),
        moments_text(&quiet.stats, limit),
        ms(quiet.stats.latency.quantile(0.99)),
    ));
    if failed > 0 {
        row.add_note(format!(
            "{failed} clients failed: {}",
            clients.first_fail_reason()
        ));
    }
    let added = server_added(&w.stats, interval);
    row.add_note(format!(
        "longest pause beyond the feed's own gap between its two packets: {}",
        ms(added)
    ));
    row.judge(target, added <= SLACK_NS && lossless(&w.stats, failed));
    if let Some(e) = error {
        row.verdict = Verdict::Error(e);
    }
    super::finish_row(ctx, row, server, clients).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packet_interval_at_4_mbit_is_376_us() {
        assert_eq!(packet_interval_ns(4_000_000), 376_000);
    }

    fn pause(start_ms: u64, end_ms: u64) -> Pause {
        Pause {
            len_ns: (end_ms - start_ms) * 1_000_000,
            end_ns: end_ms * 1_000_000,
            feed_ns: 376_000,
        }
    }

    #[test]
    fn the_clients_pauses_at_one_stall_are_one_moment() {
        let got = moments(&[pause(10, 13), pause(50, 52), pause(11, 14), pause(12, 13)]);
        assert_eq!(
            got,
            [
                (10_000_000, 14_000_000, 3_000_000),
                (50_000_000, 52_000_000, 2_000_000)
            ]
        );
    }

    #[test]
    fn an_apply_spans_its_log_lines_and_the_margin() {
        let log = "2026-01-01 00:00:01.100 INFO reloading the configuration config=x\n\
                   2026-01-01 00:00:01.102 INFO reloaded: added: stream extra kept=5\n\
                   2026-01-01 00:00:01.302 INFO reloading the configuration config=x\n\
                   2026-01-01 00:00:01.303 INFO reloaded: removed: stream extra kept=5\n";
        let base = super::super::slow::parse_local_ts("2026-01-01 00:00:01.000 x").unwrap();
        let spans = apply_spans(log, base);
        assert_eq!(
            spans,
            [(95_000_000, 108_000_000), (297_000_000, 309_000_000)]
        );
        let stats = Stats {
            long_pauses: vec![pause(107, 109), pause(200, 203)],
            ..Stats::default()
        };
        let text = pauses_at_applies(&stats, &spans, 1_376_000);
        assert!(text.contains("at 2 moments"), "{text}");
        assert!(text.contains("1 within 5.000 ms of an apply"), "{text}");
    }

    #[test]
    fn a_reload_line_naming_the_measured_stream_or_feed_is_seen() {
        let line = "2026-01-01T00:00:00.000 INFO reloaded: restarted: feed side, stream extra; added: stream x kept=5";
        assert!(!touches_measured(line));
        assert!(touches_measured(
            "INFO reloaded: restarted: feed f, feed side kept=4"
        ));
        assert!(touches_measured(
            "INFO reloaded: removed: stream direct kept=4"
        ));
        assert!(!touches_measured("INFO reloaded: added: feed fx kept=5"));
    }
}
