//! Idle server memory, and a crash-looping feed (`sh -c 'exit 1'`, continuous mode, so it is
//! restarted for ever with no client): server CPU over 30 s (< 1 % of a core, its children's
//! fork+exec included) and log lines per minute after the first failure (≤ 20).

use std::time::{Duration, Instant};

use super::{Ctx, server_error};
use crate::procstat::{self, CpuSnap};
use crate::report::{Row, Verdict};

const IDLE_RSS_KIB: u64 = 10 * 1024;
const CPU_TARGET_PCT: f64 = 1.0;
const LINES_PER_MIN: f64 = 20.0;
/// How long the first failure may take to show in the log.
const FIRST_FAILURE_WAIT: Duration = Duration::from_secs(10);

/// Runs the three rows.
pub async fn run(ctx: &mut Ctx) {
    idle(ctx).await;
    crash_loop(ctx).await;
}

async fn idle(ctx: &mut Ctx) {
    let name = "idle server RSS (feeds configured, none running)";
    let yaml = ctx.relay_yaml(4_000_000);
    let server = match ctx.start_server("idle", &yaml) {
        Ok(s) => s,
        Err(e) => return ctx.push(server_error("crash", name, "≤ 10 MiB", &e)),
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut row = Row::new("crash", name);
    row.clients = "0".into();
    row.rss_kib = server.rss_kib();
    let threads = std::fs::read_to_string(format!("/proc/{}/status", server.pid))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Threads:"))
                .map(|l| l[8..].trim().to_string())
        });
    if let Some(t) = threads {
        row.add_note(format!("{t} threads"));
    }
    match row.rss_kib {
        Some(r) => row.judge("≤ 10 MiB", r <= IDLE_RSS_KIB),
        None => row.verdict = Verdict::Error("no RSS reading".into()),
    }
    ctx.push(row);
    ctx.stop_server(server);
}

async fn crash_loop(ctx: &mut Ctx) {
    let secs = ctx.opts.crash_window.as_secs_f64();
    let cpu_name = format!("crash-looping feed: CPU over {secs:.0} s");
    // Each attempt leaves a line in a file: restarts after the first failure are logged only
    // in the periodic summary, so the log cannot count them.
    let attempts_file = ctx.dir.join("crash-attempts");
    let yaml = format!(
        "listenaddr: 127.0.0.1\nfeeds:\n  bad:\n    command: \"sh -c 'echo x >> {}; exit 1'\"\n    mode: continuous\nstreams:\n  bad:\n    feed: bad\n    mimetype: video/mp2t\n",
        attempts_file.display()
    );
    let attempts = || {
        std::fs::read_to_string(&attempts_file)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    };
    let mut server = match ctx.start_server("crash", &yaml) {
        Ok(s) => s,
        Err(e) => return ctx.push(server_error("crash", &cpu_name, "< 1 % of a core", &e)),
    };
    // The first failure: the first WARN/ERROR line that names the feed.
    let t0 = Instant::now();
    let first = loop {
        let log = server.log_text();
        if let Some(i) = log.lines().position(is_failure) {
            break Some(i);
        }
        if t0.elapsed() > FIRST_FAILURE_WAIT {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let Some(first_line) = first else {
        let mut row = Row::error(
            "crash",
            cpu_name,
            "< 1 % of a core",
            "no WARN/ERROR line about feed \"bad\" within 10 s",
        );
        row.note = server.log_tail(5).replace('\n', " ⏎ ");
        ctx.push(row);
        return ctx.stop_server(server);
    };
    let attempts0 = attempts();
    let snap0 = CpuSnap::take(server.pid);
    let rss0 = server.rss_kib();
    let mut zombies_max = 0;
    let end = Instant::now() + ctx.opts.crash_window;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let z = procstat::descendants(server.pid)
            .iter()
            .filter(|p| p.state == 'Z')
            .count();
        zombies_max = zombies_max.max(z);
    }
    let snap1 = CpuSnap::take(server.pid);
    let log = server.log_text();
    let lines: Vec<&str> = log.lines().collect();
    let after = &lines[first_line..];
    let starts = attempts() - attempts0;

    let mut row = Row::new("crash", cpu_name);
    row.clients = "0".into();
    match (snap0, snap1) {
        (Some(a), Some(b)) => {
            let c = a.until(&b);
            row.cpu_srv = Some(c.own_pct);
            row.cpu_kids = Some(c.kids_pct);
            row.add_note(format!(
                "server + children {:.2}% of a core",
                c.own_pct + c.kids_pct
            ));
            row.judge(
                "< 1 % of a core (server + children)",
                c.own_pct + c.kids_pct < CPU_TARGET_PCT,
            );
        }
        _ => row.verdict = Verdict::Error("server gone".into()),
    }
    if starts == 0 {
        // Nothing crash-looped: a low CPU figure would prove nothing.
        let why = format!(
            "feed \"bad\" (continuous) was not restarted in {secs:.0} s after its first failure"
        );
        row.verdict = Verdict::Error(why.clone());
        ctx.note(format!(
            "crash loop: {why}; the issue wants continuous feeds resurrected for ever"
        ));
    }
    row.add_note(format!("{starts} restarts in the window"));
    row.rss_kib = server.rss_kib();
    if let (Some(a), Some(b)) = (rss0, row.rss_kib) {
        row.add_note(format!("RSS {:+} KiB over the run", b as i64 - a as i64));
    }
    row.add_note(format!("{starts} restarts logged"));
    if zombies_max > 1 {
        row.add_note(format!("up to {zombies_max} zombie children"));
        ctx.note(format!(
            "crash loop: up to {zombies_max} zombie children of the server at once"
        ));
    }
    ctx.push(row);

    let mut row = Row::new("crash", "crash-looping feed: log lines per minute");
    row.clients = "0".into();
    // From the first failure line to the end of the window.
    let per_min = after.len() as f64 * 60.0 / secs;
    row.add_note(format!(
        "{per_min:.1} lines/min: {} lines in {secs:.0} s after the first failure",
        after.len()
    ));
    if let Some(l) = after.get(1).or(after.first()) {
        row.add_note(format!("e.g. {}", l.chars().take(160).collect::<String>()));
    }
    row.judge("≤ 20 lines/min", per_min <= LINES_PER_MIN);
    if starts == 0 {
        row.verdict = Verdict::Error("no crash loop to measure (feed not restarted)".into());
    }
    if !server.alive() {
        row.add_note("server died");
    }
    ctx.push(row);
    ctx.stop_server(server);
}

fn is_failure(line: &str) -> bool {
    (line.contains(" WARN ") || line.contains(" ERROR ")) && line.contains("bad")
}
