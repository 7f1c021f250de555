//! Fan-out: one 1 Mbit/s direct-relay stream, clients stepping 100 → 2000 on one server.
//! Targets: the most clients with p99 ≤ 50 ms and no loss ≥ 1600; steady-state memory per
//! client ≤ 64 KiB. Also reported: the most clients with p99 ≤ 10 ms.

use std::time::Duration;

use super::{Clients, Ctx, fill, lossless, measure, server_error, stream_req};
use crate::client::Pace;
use crate::report::{Row, Verdict};

const RATE_BPS: u64 = 1_000_000;
const P99_OK_NS: u64 = 50_000_000;
const P99_TIGHT_NS: u64 = 10_000_000;
const CAPACITY_TARGET: usize = 1600;
const PER_CLIENT_TARGET_KIB: f64 = 64.0;
const STEP_TARGET: &str = "p99 ≤ 50 ms, no loss";
/// A step where this share of packets is lost or clients are cut means the server is past
/// saturation: further steps would only take time.
const COLLAPSE_LOSS: f64 = 0.05;

/// Runs the steps and the three summary rows.
pub async fn run(ctx: &mut Ctx) {
    let yaml = ctx.relay_yaml(RATE_BPS);
    let mut server = match ctx.start_server("fanout", &yaml) {
        Ok(s) => s,
        Err(e) => return ctx.push(server_error("fanout", "fan-out 1 Mbit/s", STEP_TARGET, &e)),
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = server.rss_kib().unwrap_or(0);
    let mut clients = Clients::new();
    let req = stream_req(&server, "direct", ctx.opts.http10);
    let (mut best_ok, mut best_tight) = (0usize, 0usize);
    let mut per_client_at_best: Option<f64> = None;
    let mut worst_per_client: f64 = 0.0;
    let steps = ctx.opts.fanout_steps.clone();
    let mut collapsed = false;
    for n in steps {
        let name = format!("fan-out 1 Mbit/s × {n}");
        if collapsed {
            ctx.push(Row::error(
                "fanout",
                name,
                STEP_TARGET,
                "skipped: previous step collapsed",
            ));
            continue;
        }
        if !server.alive() {
            ctx.push(Row::error("fanout", name, STEP_TARGET, "server died"));
            continue;
        }
        let add = n.saturating_sub(clients.spawned());
        eprintln!("bench: fan-out: connecting {add} more clients ({n} in all)");
        let t0 = std::time::Instant::now();
        clients.spawn(&req, Pace::Fast, add);
        let all_started = clients.wait_started(Duration::from_secs(30)).await;
        let connect_s = t0.elapsed().as_secs_f64();
        tokio::time::sleep(super::WARMUP + Duration::from_millis(200)).await;
        let w = measure(&[&clients.board], Some(server.pid), ctx.opts.fanout_window).await;
        let failed = clients.board.failed.get();
        let mut row = Row::new("fanout", name);
        row.clients = n.to_string();
        fill(&mut row, &w, true);
        if !all_started {
            row.add_note("not all clients started in 30 s");
        }
        if failed > 0 {
            row.add_note(format!(
                "{failed} clients failed: {}",
                clients.board.fail_reasons.borrow().join(" / ")
            ));
        }
        row.add_note(format!("connect {connect_s:.1} s"));
        let per_client = w
            .rss_end
            .map(|r| r.saturating_sub(idle_rss) as f64 / n as f64);
        if let Some(p) = per_client {
            row.add_note(format!("RSS/client {p:.1} KiB"));
            worst_per_client = worst_per_client.max(p);
        }
        let ok = row.p99.is_some_and(|p| p <= P99_OK_NS) && lossless(&w.stats, failed);
        if ok {
            best_ok = best_ok.max(n);
            per_client_at_best = per_client;
        }
        if ok && row.p99.is_some_and(|p| p <= P99_TIGHT_NS) {
            best_tight = best_tight.max(n);
        }
        row.judge(STEP_TARGET, ok);
        let lost_share = w.stats.lost as f64 / (w.stats.lost + w.stats.packets).max(1) as f64;
        if lost_share > COLLAPSE_LOSS
            || w.stats.ended as f64 > n as f64 * COLLAPSE_LOSS
            || w.stats.packets == 0
        {
            collapsed = true;
        }
        ctx.push(row);
    }
    drop(clients);
    super::settle().await;
    let mut r = Row::new("fanout", "fan-out capacity: p99 ≤ 50 ms, no loss");
    r.clients = best_ok.to_string();
    r.judge(
        format!("≥ {CAPACITY_TARGET} clients"),
        best_ok >= CAPACITY_TARGET,
    );
    ctx.push(r);
    let mut r = Row::new("fanout", "fan-out capacity: p99 ≤ 10 ms, no loss");
    r.clients = best_tight.to_string();
    r.target = "(reported)".into();
    ctx.push(r);
    let mut r = Row::new("fanout", "fan-out memory per client");
    r.rss_kib = Some(idle_rss);
    r.add_note(format!("idle RSS {:.1} MiB", idle_rss as f64 / 1024.0));
    r.add_note(format!("worst step {worst_per_client:.1} KiB/client"));
    match per_client_at_best {
        Some(p) => {
            r.clients = best_ok.to_string();
            r.add_note(format!("{p:.1} KiB/client at {best_ok} clients"));
            r.judge(
                format!("≤ {PER_CLIENT_TARGET_KIB} KiB/client"),
                p <= PER_CLIENT_TARGET_KIB,
            );
        }
        None => r.verdict = Verdict::Error("no step passed".into()),
    }
    ctx.push(r);
    ctx.stop_server(server);
}
