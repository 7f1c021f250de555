//! Fan-out, voyandz beside Icecast 2.4 (issue 18). Each server runs the same scenarios on
//! its own, one after the other, with the same stamping feed, the same clients and the same
//! measurement; their rows are then printed next to each other, and side by side with the
//! ratios in a table of their own:
//! - 4 Mbit/s × 10 clients (voyandz: p99 ≤ 0.5 ms, no loss), then × 200 (voyandz's p99 and
//!   server CPU below Icecast's);
//! - 1 Mbit/s at 100 … 3200 clients (`--fanout-steps`), each step judged on p99 ≤ 50 ms with
//!   no loss. A server that fails a step is not stepped further (a larger step would only fail
//!   again, and take time): its later rows say so.
//!
//! A server serves every step of a rate from one start, the clients of a step staying for the
//! next, as they would on a real server whose audience grows. Summary rows: each server's
//! capacity (the most clients with p99 ≤ 50 ms and no loss; for voyandz ≥ 1600) and their
//! ratio (≥ 2×), the ratios of p99 and server CPU at 4 Mbit/s × 200 and 1 Mbit/s × 400, the
//! capacity at p99 ≤ 10 ms, and memory per client (≤ 64 KiB).

mod peer;

use std::time::{Duration, Instant};

use super::{Clients, Ctx, Window, fill, lossless, measure, server_error};
use crate::client::Pace;
use crate::plot::{Point, Series};
use crate::procstat::CpuSnap;
use crate::report::{Row, Table, Verdict};
use peer::{Peer, Running};

const PAIR_RATE_BPS: u64 = 4_000_000;
const PAIR_CLIENTS: [usize; 2] = [LIGHT_CLIENTS, HEAVY_CLIENTS];
const LIGHT_CLIENTS: usize = 10;
/// The target at 4 Mbit/s × 10: what voyandz achieves when idle must not change.
const LIGHT_P99_NS: u64 = 500_000;
const LIGHT_TARGET: &str = "p99 ≤ 0.5 ms, no loss";
const HEAVY_CLIENTS: usize = 200;
const LADDER_RATE_BPS: u64 = 1_000_000;
const P99_OK_NS: u64 = 50_000_000;
const P99_TIGHT_NS: u64 = 10_000_000;
const STEP_TARGET: &str = "p99 ≤ 50 ms, no loss";
/// The ladder's step where the issue compares server CPU and p99.
const COMPARED_STEP: usize = 400;
const CAPACITY_TARGET: usize = 1600;
/// The issue: voyandz's capacity "at least twice Icecast's".
const CAPACITY_RATIO_MIN: f64 = 2.0;
const PER_CLIENT_TARGET_KIB: f64 = 64.0;
/// The target column of a row measured for comparison only.
const PEER_TARGET: &str = "(peer)";
/// How long a step's new clients may take to connect and get their response heads: Icecast
/// takes them 4 at a time (see `peer.rs`), 150 to 350 a second here.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// The side-by-side table's columns: each cell but the first is `voyandz / icecast`.
const TABLE_HEAD: [&str; 7] = [
    "scenario",
    "p99",
    "loss",
    "CPU srv",
    "CPU gen",
    "gen lag p99",
    "reads/client/s",
];
/// Plot colours (colour-blind safe pair), in [`Peer::BOTH`] order.
const COLORS: [&str; 2] = ["#0072b2", "#e69f00"];

/// What one server gave in one measured step.
#[derive(Debug, Clone)]
struct Outcome {
    p99: Option<u64>,
    /// Server CPU, % of one core.
    cpu: Option<f64>,
    /// The load generator's CPU, % of one core.
    gen_cpu: f64,
    /// The load generator's own lag p99, ns: how late a ready socket may have been read, a
    /// share of `p99` that is not the server's.
    gen_lag: u64,
    /// As the row's loss column says it.
    loss: String,
    /// `read(2)` calls per client per second (see [`reads_per_client_s`]).
    reads: f64,
    /// No packet lost, no client cut or failed, packets seen.
    lossless: bool,
    /// RSS growth since the idle server, per client, KiB.
    per_client_kib: Option<f64>,
}

impl Outcome {
    fn within(&self, p99_max: u64) -> bool {
        self.lossless && self.p99.is_some_and(|p| p <= p99_max)
    }
}

/// One step of one server: its row (not judged yet when measured), and what it measured.
struct Step {
    clients: usize,
    row: Row,
    /// `Err` when the step was not measured: why, in a few words for the side-by-side table.
    outcome: Result<Outcome, String>,
}

/// Runs both rates on both servers, with their summary rows and the side-by-side table.
pub async fn run(ctx: &mut Ctx) {
    let mut table = pairs(ctx).await;
    table.extend(ladder(ctx).await);
    ctx.tables.push(Table {
        title: "Fan-out, side by side: voyandz / Icecast 2.4 (ratio)".into(),
        note: "Each server in turn, alone on the machine with the same stamping feed and the \
               same clients. gen lag p99: how late the load generator, which shares the cores, \
               may have read a ready socket: part of p99 is its, not the server's; while it is \
               small, reads/client/s is the server's writes per client per second."
            .into(),
        head: TABLE_HEAD.map(String::from).to_vec(),
        rows: table,
    });
}

/// 4 Mbit/s × 10 and × 200 on each server: their rows and the ratio row at 200; returns
/// their lines of the side-by-side table.
async fn pairs(ctx: &mut Ctx) -> Vec<Vec<String>> {
    let mut table = Vec::new();
    for pair in climb_both(ctx, PAIR_RATE_BPS, &PAIR_CLIENTS, None).await {
        table.push(side_by_side(PAIR_RATE_BPS, &pair));
        let [v, ic] = pair;
        let mut v_row = v.row;
        if let Ok(o) = &v.outcome {
            if v.clients == LIGHT_CLIENTS {
                v_row.judge(LIGHT_TARGET, o.within(LIGHT_P99_NS));
            } else {
                v_row.target = "(see the ratio row)".into();
            }
        }
        ctx.push(v_row);
        ctx.push(ic.row);
        if v.clients == HEAVY_CLIENTS {
            let o = [v.outcome.as_ref().ok(), ic.outcome.as_ref().ok()];
            ctx.push(ratio_row("fan-out 4 Mbit/s", HEAVY_CLIENTS, o, false));
        }
    }
    table
}

/// The 1 Mbit/s steps on each server: their rows, the plot's points and the summary rows;
/// returns their lines of the side-by-side table.
async fn ladder(ctx: &mut Ctx) -> Vec<Vec<String>> {
    let mut table = Vec::new();
    let steps = ctx.opts.fanout_steps.clone();
    let ladder = climb_both(ctx, LADDER_RATE_BPS, &steps, Some(P99_OK_NS)).await;
    let mut best = [0usize; 2];
    let mut best_tight = [0usize; 2];
    let mut per_client_at_best: [Option<f64>; 2] = [None; 2];
    let mut worst_per_client = [0f64; 2];
    let mut compared = [None, None];
    let mut points: [Vec<Point>; 2] = Default::default();
    for pair in &ladder {
        for (i, step) in pair.iter().enumerate() {
            let mut row = step.row.clone();
            if let Ok(o) = &step.outcome {
                let (n, ok) = (step.clients, o.within(P99_OK_NS));
                match Peer::BOTH[i] {
                    Peer::Voyandz => row.judge(STEP_TARGET, ok),
                    Peer::Icecast => row.add_note(if ok {
                        "within p99 ≤ 50 ms, no loss"
                    } else {
                        "over p99 ≤ 50 ms, no loss"
                    }),
                }
                if ok {
                    best[i] = best[i].max(n);
                    per_client_at_best[i] = o.per_client_kib;
                }
                if o.within(P99_TIGHT_NS) {
                    best_tight[i] = best_tight[i].max(n);
                }
                if let Some(p) = o.per_client_kib {
                    worst_per_client[i] = worst_per_client[i].max(p);
                }
                if let (Some(p99), Some(cpu)) = (o.p99, o.cpu) {
                    points[i].push(Point {
                        clients: n,
                        p99_ms: p99 as f64 / 1e6,
                        cpu_pct: cpu,
                        ok,
                    });
                }
                if n == COMPARED_STEP {
                    compared[i] = Some(o);
                }
            }
            ctx.push(row);
        }
        table.push(side_by_side(LADDER_RATE_BPS, pair));
    }
    ctx.fanout_plot = Peer::BOTH
        .into_iter()
        .zip(points)
        .zip(COLORS)
        .map(|((peer, points), color)| Series {
            label: peer.name().into(),
            color,
            points,
        })
        .collect();
    let top = steps.iter().copied().max().unwrap_or(0);
    for (i, peer) in Peer::BOTH.into_iter().enumerate() {
        let mut r = Row::new(
            "fanout",
            format!("fan-out capacity: p99 ≤ 50 ms, no loss — {}", peer.name()),
        );
        r.clients = best[i].to_string();
        if best[i] == top && top > 0 {
            r.add_note("every step passed: at least this many");
        }
        match peer {
            Peer::Voyandz => r.judge(
                format!("≥ {CAPACITY_TARGET} clients"),
                best[i] >= CAPACITY_TARGET,
            ),
            Peer::Icecast => r.target = PEER_TARGET.into(),
        }
        ctx.push(r);
    }
    let capacity = capacity_row(best, top);
    let mut line = vec![
        "capacity at 1 Mbit/s: p99 ≤ 50 ms, no loss".into(),
        format!("{} / {} clients", best[0], best[1]) + &ratio_text(capacity.1),
    ];
    line.resize(TABLE_HEAD.len(), String::new());
    table.push(line);
    ctx.push(capacity.0);
    if steps.contains(&COMPARED_STEP) {
        ctx.push(ratio_row("fan-out 1 Mbit/s", COMPARED_STEP, compared, true));
    }
    let mut r = Row::new("fanout", "fan-out capacity: p99 ≤ 10 ms, no loss");
    r.clients = best_tight[0].to_string();
    r.target = "(reported)".into();
    r.add_note(format!("icecast: {}", best_tight[1]));
    ctx.push(r);
    let mut r = Row::new("fanout", "fan-out memory per client");
    let voyandz_at_best = per_client_at_best[0];
    if let Some(p) = voyandz_at_best {
        r.clients = best[0].to_string();
        r.add_note(format!("{p:.1} KiB/client at {} clients", best[0]));
    }
    r.add_note(format!("worst step {:.1} KiB/client", worst_per_client[0]));
    if let Some(p) = per_client_at_best[1] {
        r.add_note(format!("icecast {p:.1} KiB/client at {}", best[1]));
    }
    match voyandz_at_best {
        Some(p) => r.judge(
            format!("≤ {PER_CLIENT_TARGET_KIB} KiB/client"),
            p <= PER_CLIENT_TARGET_KIB,
        ),
        None => r.verdict = Verdict::Error("no step passed".into()),
    }
    ctx.push(r);
    table
}

/// voyandz's capacity over Icecast's, as a row, and the ratio (when Icecast passed a step).
fn capacity_row(best: [usize; 2], top: usize) -> (Row, Option<f64>) {
    let mut r = Row::new("fanout", "fan-out capacity: voyandz / icecast");
    r.clients = format!("{} / {}", best[0], best[1]);
    let target = format!("≥ {CAPACITY_RATIO_MIN}×");
    if best[1] == 0 {
        r.target = target;
        r.verdict = Verdict::Error("icecast passed no step".into());
        return (r, None);
    }
    let ratio = best[0] as f64 / best[1] as f64;
    r.add_note(format!("{ratio:.2}×"));
    if best[1] == top {
        r.add_note("icecast passed every step: add larger --fanout-steps to compare");
    }
    r.judge(target, ratio >= CAPACITY_RATIO_MIN);
    (r, Some(ratio))
}

/// ` (0.50×)`, or nothing without a ratio.
fn ratio_text(ratio: Option<f64>) -> String {
    ratio.map(|r| format!(" ({r:.2}×)")).unwrap_or_default()
}

/// One line of the side-by-side table: a step of both servers.
fn side_by_side(rate_bps: u64, pair: &[Step; 2]) -> Vec<String> {
    use crate::report::ms;
    let [v, ic] = pair.each_ref().map(|s| s.outcome.as_ref());
    // A step not measured says why in its p99 cell, and nothing in the others.
    let both = |f: &dyn Fn(&Outcome) -> String, why: bool| -> String {
        let cell = |o: Result<&Outcome, &String>| match o {
            Ok(o) => f(o),
            Err(e) if why => e.clone(),
            Err(_) => "-".into(),
        };
        format!("{} / {}", cell(v), cell(ic))
    };
    let ratio = |f: &dyn Fn(&Outcome) -> Option<f64>| match (v, ic) {
        (Ok(a), Ok(b)) => f(a).zip(f(b)).map(|(a, b)| a / b.max(1e-9)),
        _ => None,
    };
    let pct = |p: Option<f64>| p.map_or_else(|| "-".into(), |p| format!("{p:.0}%"));
    vec![
        format!("{} Mbit/s × {}", rate_bps / 1_000_000, pair[0].clients),
        both(&|o| o.p99.map_or_else(|| "-".into(), ms), true)
            + &ratio_text(ratio(&|o| o.p99.map(|p| p as f64))),
        both(&|o| o.loss.clone(), false),
        both(&|o| pct(o.cpu), false) + &ratio_text(ratio(&|o| o.cpu)),
        both(&|o| pct(Some(o.gen_cpu)), false),
        both(&|o| ms(o.gen_lag), false),
        both(&|o| format!("{:.0}", o.reads), false),
    ]
}

/// voyandz / Icecast at one scenario: the ratios of p99 and of server CPU. voyandz must have
/// lost nothing and its p99 be lower; its CPU lower too (`cpu_may_equal`: or no higher).
fn ratio_row(label: &str, clients: usize, o: [Option<&Outcome>; 2], cpu_may_equal: bool) -> Row {
    let cpu_word = if cpu_may_equal { "≤" } else { "<" };
    let target = format!("p99 < icecast's, CPU srv {cpu_word} icecast's, no loss");
    let name = format!("{label} × {clients}: voyandz / icecast");
    let [Some(v), Some(ic)] = o else {
        return Row::error("fanout", name, &target, "a server was not measured");
    };
    let mut r = Row::new("fanout", name);
    r.clients = clients.to_string();
    let p99 = v.p99.zip(ic.p99).map(|(a, b)| a as f64 / b.max(1) as f64);
    let cpu = v.cpu.zip(ic.cpu).map(|(a, b)| a / b.max(0.1));
    match (p99, cpu) {
        (Some(p), Some(c)) => {
            r.add_note(format!("p99 {p:.2}×, CPU srv {c:.2}×"));
            let cpu_ok = if cpu_may_equal { c <= 1.0 } else { c < 1.0 };
            r.judge(target, v.lossless && p < 1.0 && cpu_ok);
        }
        _ => {
            r.target = target;
            r.verdict = Verdict::Error("no p99 or CPU to compare".into());
        }
    }
    r
}

fn row_name(rate_bps: u64, clients: usize, peer: Peer) -> String {
    format!(
        "fan-out {} Mbit/s × {clients} — {}",
        rate_bps / 1_000_000,
        peer.name()
    )
}

/// A step's target: voyandz's own, or none for the peer.
fn target(peer: Peer, own: &str) -> &str {
    match peer {
        Peer::Voyandz => own,
        Peer::Icecast => PEER_TARGET,
    }
}

/// [`climb`] on voyandz, then on Icecast: the steps of both, paired.
async fn climb_both(
    ctx: &mut Ctx,
    rate_bps: u64,
    steps: &[usize],
    give_up_over: Option<u64>,
) -> Vec<[Step; 2]> {
    let v = climb(ctx, Peer::Voyandz, rate_bps, steps, give_up_over).await;
    let ic = climb(ctx, Peer::Icecast, rate_bps, steps, give_up_over).await;
    v.into_iter().zip(ic).map(|(v, ic)| [v, ic]).collect()
}

/// Starts `peer` at `rate_bps` and measures each of `steps` (rising client counts) on it,
/// adding clients from one to the next. With `give_up_over`, after a step with loss or a p99
/// over it the later steps are not run; their rows say so (voyandz's as failed).
async fn climb(
    ctx: &mut Ctx,
    peer: Peer,
    rate_bps: u64,
    steps: &[usize],
    give_up_over: Option<u64>,
) -> Vec<Step> {
    let tag = format!("fanout-{}-{}k", peer.name(), rate_bps / 1000);
    let mut rig = match Rig::start(ctx, peer, rate_bps, &tag).await {
        Ok(rig) => rig,
        Err(e) => {
            let not_started = |&n: &usize| Step {
                clients: n,
                row: server_error(
                    "fanout",
                    &row_name(rate_bps, n, peer),
                    target(peer, "-"),
                    &e,
                ),
                outcome: Err("not started".into()),
            };
            return steps.iter().map(not_started).collect();
        }
    };
    let mut out = Vec::new();
    for (k, &n) in steps.iter().enumerate() {
        let step = rig.step(ctx, &row_name(rate_bps, n, peer), n).await;
        let gave_up =
            give_up_over.is_some_and(|limit| !step.outcome.as_ref().is_ok_and(|o| o.within(limit)));
        out.push(step);
        if gave_up {
            out.extend(
                steps[k + 1..]
                    .iter()
                    .map(|&m| not_run(peer, rate_bps, m, n)),
            );
            break;
        }
    }
    rig.stop(ctx).await;
    out
}

/// The row of a step left out after the server failed at `failed` clients.
fn not_run(peer: Peer, rate_bps: u64, clients: usize, failed: usize) -> Step {
    let mut row = Row::new("fanout", row_name(rate_bps, clients, peer));
    row.clients = clients.to_string();
    row.add_note(format!("not run: failed at {failed} clients"));
    match peer {
        Peer::Voyandz => row.judge(STEP_TARGET, false),
        Peer::Icecast => row.target = PEER_TARGET.into(),
    }
    Step {
        clients,
        row,
        outcome: Err(format!("not run (failed at {failed})")),
    }
}

/// A running server with its clients, grown step by step.
struct Rig {
    running: Running,
    group: Clients,
    /// Its RSS before any client, KiB.
    idle_rss: Option<u64>,
}

impl Rig {
    async fn start(ctx: &mut Ctx, peer: Peer, rate_bps: u64, tag: &str) -> Result<Rig, String> {
        let running = Running::start(ctx, peer, rate_bps, tag)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Rig {
            idle_rss: running.rss_kib(),
            group: Clients::connecting_at_most(running.connect_concurrency()),
            running,
        })
    }

    /// Adds clients up to `clients`, lets the new ones warm up and measures one window; the
    /// row is not judged yet.
    async fn step(&mut self, ctx: &Ctx, name: &str, clients: usize) -> Step {
        let not_measured = |row: Row, why: &str| Step {
            clients,
            row,
            outcome: Err(why.into()),
        };
        let peer_target = target(self.running.peer(), "-");
        if !self.running.alive() {
            return not_measured(
                Row::error("fanout", name, peer_target, "server died"),
                "died",
            );
        }
        let add = clients.saturating_sub(self.group.spawned());
        eprintln!("bench: {name}: connecting {add} more clients");
        let t0 = Instant::now();
        self.group
            .spawn(&self.running.request(ctx.opts.http10), Pace::Fast, add);
        let all_started = self.group.wait_started(CONNECT_TIMEOUT).await;
        let connect_s = t0.elapsed().as_secs_f64();
        let board = &self.group.board;
        let connected = board.connected.get();
        if connected == 0 {
            let why = format!("no client got a stream: {}", self.group.first_fail_reason());
            return not_measured(Row::error("fanout", name, peer_target, why), "error");
        }
        tokio::time::sleep(super::WARMUP + Duration::from_millis(200)).await;
        let feed0 = self.running.foreign_feed().and_then(CpuSnap::take);
        let w = measure(&[board], Some(self.running.pid()), ctx.opts.fanout_window).await;
        let feed1 = self.running.foreign_feed().and_then(CpuSnap::take);
        let failed = board.failed.get();
        let mut row = Row::new("fanout", name);
        row.clients = clients.to_string();
        row.target = peer_target.into();
        fill(&mut row, &w, true);
        if let (Some(a), Some(b)) = (feed0, feed1) {
            row.cpu_kids = Some(a.until(&b).own_pct);
        }
        let reads = reads_per_client_s(&w, connected);
        let per_read = w.stats.bytes as f64 / w.stats.reads.max(1) as f64;
        row.add_note(format!("{reads:.0} reads/client/s of {per_read:.0} B"));
        if !all_started {
            row.add_note(format!("not all clients started in {CONNECT_TIMEOUT:?}"));
        }
        if failed > 0 {
            row.add_note(format!(
                "{failed} clients failed: {}",
                board.fail_reasons.borrow().join(" / ")
            ));
        }
        row.add_note(format!("connect {connect_s:.1} s"));
        let per_client_kib = w
            .rss_end
            .zip(self.idle_rss)
            .map(|(end, idle)| end.saturating_sub(idle) as f64 / clients as f64);
        if let Some(p) = per_client_kib {
            row.add_note(format!("RSS/client {p:.1} KiB"));
        }
        if !self.running.alive() {
            row.add_note("server died");
        }
        let outcome = Outcome {
            p99: row.p99,
            cpu: row.cpu_srv,
            gen_cpu: w.gen_cpu,
            gen_lag: w.lag_p99,
            loss: row.loss.clone(),
            reads,
            lossless: lossless(&w.stats, failed),
            per_client_kib,
        };
        Step {
            clients,
            row,
            outcome: Ok(outcome),
        }
    }

    /// Closes every client, then stops the server.
    async fn stop(self, ctx: &mut Ctx) {
        drop(self.group);
        super::settle().await;
        self.running.stop(ctx);
    }
}

/// The clients' `read(2)` calls per client per second: with clients that read what arrives
/// as it arrives, how often the server delivered to each.
fn reads_per_client_s(w: &Window, clients: u64) -> f64 {
    w.stats.reads as f64 / clients.max(1) as f64 / w.secs.max(1e-9)
}
