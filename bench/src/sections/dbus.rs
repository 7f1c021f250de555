//! The cost of D-Bus on the data path (issue 21): the latency section's 4 Mbit/s direct relay
//! with 10 clients, on a server that is on a private system bus ([`crate::bus`], `--bus
//! system`) with several feeds and streams, measured twice in one run on the same server and
//! clients: first with nobody asking the bus anything, then while a client polls every property
//! of every object ten times a second ([`crate::bus::poller`]). Target for the polled window:
//! the latency row's, p99 ≤ 1 ms and no loss, with the poller keeping its rate; the row gives
//! its p99 as a multiple of the quiet window's.

use std::time::Duration;

use super::latency::{CLIENTS, P99_TARGET_NS};
use super::{
    Clients, Ctx, Window, fill, floor_ratio, lossless, measure, server_error, stream_req,
    warm_clients,
};
use crate::bus::SystemBus;
use crate::bus::poller::{PERIOD, Poll, Poller, Report};
use crate::procstat::CpuSnap;
use crate::report::{Row, ms};
use crate::server::Server;
use voyandz_bench::clock::now_ns;
use voyandz_bench::hist::Histogram;

/// The latency section's 4 Mbit/s direct relay.
const RATE_BPS: u64 = 4_000_000;
const STREAM: &str = "direct";
/// Idle feeds (`sleep`, on demand: nothing runs) and a stream on each, besides the relay
/// config's two feeds and three streams: objects whose properties are polled like the rest.
const IDLE: usize = 4;
const QUIET: &str = "4 Mbit/s direct relay on D-Bus, no poller";
const POLLED: &str = "4 Mbit/s direct relay, D-Bus polled 10×/s";
const REFERENCE: &str = "(no poller)";
const TARGET: &str = "p99 ≤ 1 ms, no loss, 10 polls/s";
/// The share of its due polls the poller must make in the window for the row to measure what
/// it says.
const POLLS_KEPT: f64 = 0.95;
/// How long the server may take to join the bus once it serves HTTP.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);
/// What the server logs when it owns its name on the bus, and when it gives up (`src/app.rs`).
const JOINED_LINE: &str = "on D-Bus";
const NOT_JOINED_LINE: &str = "no D-Bus control";

/// The relay config with [`IDLE`] more feeds and streams.
fn yaml(ctx: &Ctx) -> String {
    let (mut feeds, mut streams) = (String::new(), String::new());
    for i in 1..=IDLE {
        feeds.push_str(&format!("  quiet{i}:\n    command: sleep 3600\n"));
        streams.push_str(&format!(
            "  idle{i}:\n    feed: quiet{i}\n    mimetype: video/mp2t\n"
        ));
    }
    ctx.relay_yaml_with(RATE_BPS, &feeds, &streams)
}

/// Both rows as ERRORs, for a run that measured nothing.
fn error_rows(ctx: &mut Ctx, why: &str) {
    ctx.push(server_error("dbus", QUIET, REFERENCE, why));
    ctx.push(server_error("dbus", POLLED, TARGET, why));
}

/// Waits until the server says it owns its name on the bus.
async fn joined(server: &Server) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    loop {
        let log = server.log_text();
        if log.lines().any(|l| l.contains(JOINED_LINE)) {
            return Ok(());
        }
        if let Some(l) = log.lines().find(|l| l.contains(NOT_JOINED_LINE)) {
            return Err(format!("the server is not on the bus: {l}"));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the server did not join the bus within {JOIN_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One measured window, with the bus daemon's CPU over it (% of one core) and when it was open
/// (CLOCK_MONOTONIC ns).
struct Measured {
    window: Window,
    daemon_pct: Option<f64>,
    span: (u64, u64),
}

async fn measured(ctx: &Ctx, server: &Server, bus: &SystemBus, clients: &Clients) -> Measured {
    let daemon0 = CpuSnap::take(bus.pid());
    let from = now_ns();
    let window = measure(&[&clients.board], Some(server.pid), ctx.opts.window).await;
    let to = now_ns();
    let daemon_pct = daemon0
        .zip(CpuSnap::take(bus.pid()))
        .map(|(a, b)| a.until(&b).own_pct);
    Measured {
        window,
        daemon_pct,
        span: (from, to),
    }
}

/// A row of one window: the latency columns as the latency section fills them, the bus
/// daemon's CPU taken out of `CPU other` (it is the bench's, not another user's) into a note.
fn row(ctx: &Ctx, name: &str, m: &Measured, failed: u64, clients: &Clients) -> Row {
    let mut row = Row::new("dbus", name);
    row.clients = CLIENTS.to_string();
    fill(&mut row, &m.window, true);
    if let Some(d) = m.daemon_pct {
        row.cpu_other = row.cpu_other.map(|o| (o - d).max(0.0));
        row.add_note(format!("dbus-daemon {d:.1}% (not in CPU other)"));
    }
    if let Some(r) = floor_ratio(ctx, RATE_BPS, row.p99) {
        row.add_note(r);
    }
    if failed > 0 {
        row.add_note(format!(
            "{failed} clients failed: {}",
            clients.first_fail_reason()
        ));
    }
    row
}

/// What the poller did in the window, for the row's note; and whether it kept its rate
/// without an error.
fn poller_note(report: &Report, polls: &[Poll], secs: f64) -> (String, bool) {
    let sum = |f: fn(&Poll) -> u64| polls.iter().map(f).sum::<u64>() as f64 / secs;
    let mut took = Histogram::default();
    for p in polls {
        took.record(p.took_ns);
    }
    let due = secs / PERIOD.as_secs_f64();
    let objects = polls.last().map_or(0, |p| p.objects);
    let mut note = format!(
        "poller: {:.0} property reads/s in {:.0} calls/s, {} polls of {objects} objects ({:.1}/s; \
         GetManagedObjects, then GetAll on each object), a poll took p50 {} p99 {} max {}",
        sum(|p| p.properties),
        sum(|p| p.calls),
        polls.len(),
        polls.len() as f64 / secs,
        ms(took.quantile(0.5)),
        ms(took.quantile(0.99)),
        ms(took.max()),
    );
    if report.errors > 0 {
        note.push_str(&format!(
            ", {} polls failed ({})",
            report.errors,
            report.first_error.as_deref().unwrap_or("")
        ));
    }
    let kept = polls.len() as f64 >= (due * POLLS_KEPT).floor();
    (note, kept && report.errors == 0)
}

/// The two rows.
pub async fn run(ctx: &mut Ctx) {
    let bus = match SystemBus::start(&ctx.dir) {
        Ok(b) => b,
        Err(e) => return error_rows(ctx, &e),
    };
    let env = [("DBUS_SYSTEM_BUS_ADDRESS", bus.address())];
    let server = match ctx.start_server_with("dbus", &yaml(ctx), &["--bus", "system"], &env) {
        Ok(s) => s,
        Err(e) => return error_rows(ctx, &e),
    };
    if let Err(e) = joined(&server).await {
        error_rows(ctx, &e);
        return ctx.stop_server(server);
    }
    let req = stream_req(&server, STREAM, ctx.opts.http10);
    let (clients, all_started) = match warm_clients(&req, CLIENTS, Duration::from_secs(10)).await {
        Ok(warm) => warm,
        Err(why) => {
            error_rows(ctx, &why);
            return ctx.stop_server(server);
        }
    };
    let quiet = measured(ctx, &server, &bus, &clients).await;
    let failed = || clients.board.failed.get() + u64::from(!all_started);
    let mut quiet_row = row(ctx, QUIET, &quiet, failed(), &clients);
    quiet_row.target = REFERENCE.into();
    let quiet_p99 = quiet_row.p99;
    ctx.push(quiet_row);

    let poller = match Poller::start(bus.address()).await {
        Ok(p) => p,
        Err(e) => {
            let row = Row::error("dbus", POLLED, TARGET, format!("no poller: {e}"));
            return super::finish_row(ctx, row, server, clients).await;
        }
    };
    let polled = measured(ctx, &server, &bus, &clients).await;
    let report = poller.stop().await;
    let mut row = row(ctx, POLLED, &polled, failed(), &clients);
    let (note, poller_ok) = match &report {
        Ok(r) => poller_note(
            r,
            r.between(polled.span.0, polled.span.1),
            polled.window.secs,
        ),
        Err(e) => (e.clone(), false),
    };
    row.add_note(note);
    if let (Some(with), Some(without)) = (row.p99, quiet_p99) {
        row.add_note(format!(
            "p99 = {:.2}× no poller",
            with as f64 / without.max(1) as f64
        ));
    }
    let ok = row.p99.is_some_and(|p| p <= P99_TARGET_NS)
        && lossless(&polled.window.stats, failed())
        && poller_ok;
    row.judge(TARGET, ok);
    super::finish_row(ctx, row, server, clients).await;
    drop(bus); // after the server, which leaves the bus as it stops
}
