//! The status page and API under load (issue 17):
//! - `/stat` and `/stat.json` render time with 100 feeds, 100 streams and 1000 connected
//!   clients listed (`status: {clients: true}`, the worst case): sequential requests on one
//!   keep-alive connection, each timed from its `write(2)` to its last byte. Target p99 ≤ 5 ms.
//! - Stream latency while `/stat.json` is loaded at a fixed 200 requests/s for the whole
//!   window: the 4 Mbit/s 10-client direct relay, measured as the latency section does.
//!   Target p99 ≤ 1 ms, no loss, and every load request answered 200.
//!
//! The timed requests run on threads of their own, so the stream clients on the bench's
//! runtime keep reading meanwhile. An answer other than 200 (the page not built yet, or
//! turned off) fails the row with its status code in the note.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Clients, Ctx, fill, loss_text, lossless, measure, server_error, stream_req};
use crate::client::keepalive::KeepAlive;
use crate::client::{Pace, rated};
use crate::procstat::{self, CpuSnap};
use crate::report::{Row, ms};
use crate::server::{Server, yaml_str};
use voyandz_bench::hist::Histogram;

/// Feeds (and streams, one direct relay each) of the render rows.
const FEEDS: usize = 100;
/// Clients reading each stream of the render rows: 1000 in all, every one listed.
const CLIENTS_PER_STREAM: usize = 10;
/// Each render-row feed's rate: ~11 packets/s, so 100 feeds and 1000 clients stay cheap and
/// the page is rendered beside a live but light data path.
const FEED_RATE_BPS: u64 = 16_000;
/// Untimed requests first (connection, allocator and page cache warm-up).
const RENDER_WARMUP_REQUESTS: usize = 20;
/// Timed requests per page: a p99 resting on its 2 worst.
const RENDER_REQUESTS: usize = 200;
/// How long one status request may take before the row gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The render-time target for each page, at its p99.
const RENDER_TARGET_NS: u64 = 5_000_000;
const RENDER_TARGET: &str = "p99 ≤ 5 ms";

/// The loaded latency row: the latency section's 4 Mbit/s 10-client direct relay.
const LATENCY_RATE_BPS: u64 = 4_000_000;
const LATENCY_CLIENTS: usize = 10;
/// The fixed rate of `/stat.json` requests.
const LOAD_PER_SECOND: u64 = 200;
/// Keep-alive connections sharing the load, as a few dashboards polling at once would.
const LOAD_CONNECTIONS: usize = 4;
/// The stream-latency target under the load: the latency section's, kept.
const LATENCY_TARGET_NS: u64 = 1_000_000;
const LATENCY_TARGET: &str = "p99 ≤ 1 ms, no loss, load all 200";

/// The status switches of both configs: every URL at its default, the clients listed.
const STATUS_YAML: &str = "status:\n  clients: true\n";

/// Runs the three rows.
pub async fn run(ctx: &mut Ctx) {
    render(ctx).await;
    loaded_latency(ctx).await;
}

/// 100 stamp feeds, each relayed directly by one stream `sNNN` of `video/mp2t`.
fn many_yaml(ctx: &Ctx) -> String {
    let stamp = yaml_str(&ctx.stamp_cmd(FEED_RATE_BPS, super::FeedLooks::MpegTs));
    let mut yaml = format!("listenaddr: 127.0.0.1\n{STATUS_YAML}feeds:\n");
    for i in 0..FEEDS {
        yaml.push_str(&format!("  f{i:03}:\n    command: {stamp}\n"));
    }
    yaml.push_str("streams:\n");
    for i in 0..FEEDS {
        yaml.push_str(&format!(
            "  s{i:03}:\n    feed: f{i:03}\n    mimetype: video/mp2t\n"
        ));
    }
    yaml
}

/// The two render rows on one server with 1000 clients connected.
async fn render(ctx: &mut Ctx) {
    let clients_n = FEEDS * CLIENTS_PER_STREAM;
    let names = ["/stat", "/stat.json"].map(|path| {
        (
            path,
            format!("{path} render: {FEEDS} feeds, {FEEDS} streams, {clients_n} clients"),
        )
    });
    let yaml = many_yaml(ctx);
    let server = match ctx.start_server("status-render", &yaml) {
        Ok(s) => s,
        Err(e) => {
            for (_, name) in &names {
                ctx.push(server_error("status", name, RENDER_TARGET, &e));
            }
            return;
        }
    };
    let mut clients = Clients::new();
    for i in 0..FEEDS {
        let req = stream_req(&server, &format!("s{i:03}"), ctx.opts.http10);
        clients.spawn(&req, Pace::Fast, CLIENTS_PER_STREAM);
    }
    clients.wait_started(Duration::from_secs(30)).await;
    tokio::time::sleep(super::WARMUP + Duration::from_millis(200)).await;
    let connected = clients.board.connected.get();
    for (path, name) in names {
        clients.board.open_window();
        let cpu0 = CpuSnap::take(server.pid);
        let addr = server.addr;
        let timed = tokio::task::spawn_blocking(move || time_requests(addr, path)).await;
        let cpu1 = CpuSnap::take(server.pid);
        let stream_stats = clients.board.close_window();
        let mut row = Row::new("status", name);
        row.clients = connected.to_string();
        row.rss_kib = procstat::rss_kib(server.pid);
        if let (Some(a), Some(b)) = (cpu0, cpu1) {
            row.cpu_srv = Some(a.until(&b).own_pct);
        }
        let ok = match timed {
            Ok(Ok(t)) => t.fill(&mut row),
            Ok(Err(e)) => {
                row.add_note(e);
                false
            }
            Err(e) => {
                row.add_note(format!("request thread: {e}"));
                false
            }
        };
        row.loss = loss_text(&stream_stats);
        row.add_note(format!(
            "stream clients meanwhile: {} pkts",
            stream_stats.packets
        ));
        let all_in = connected as usize == clients_n;
        if !all_in {
            row.add_note(format!(
                "only {connected} of {clients_n} clients connected: {}",
                clients.first_fail_reason()
            ));
        }
        row.judge(RENDER_TARGET, ok && all_in);
        ctx.push(row);
    }
    finish(ctx, server, clients, "during the render rows").await;
}

/// Closes the clients and stops the server, noting if it died `when`.
async fn finish(ctx: &mut Ctx, mut server: Server, clients: Clients, when: &str) {
    if !server.alive() {
        ctx.note(format!("status: server died {when}"));
    }
    drop(clients);
    super::settle().await;
    ctx.stop_server(server);
}

/// The timed requests of one page.
struct Timed {
    /// Write to last byte of each 200 answer, ns.
    times: Histogram,
    /// Answers other than 200, as `(status, count)`.
    refused: Option<(u16, usize)>,
    /// Body size of the last answer.
    body_bytes: usize,
    /// Connections used (1 unless the server closed one).
    connects: u64,
}

impl Timed {
    /// Fills the row's time columns and notes; true when every answer was a 200.
    fn fill(&self, row: &mut Row) -> bool {
        if self.times.count() > 0 {
            row.p50 = Some(self.times.quantile(0.5));
            row.p99 = Some(self.times.quantile(0.99));
            row.max = Some(self.times.max());
        }
        let mut note = format!(
            "{} requests after {RENDER_WARMUP_REQUESTS} untimed, body {:.1} KB",
            RENDER_REQUESTS,
            self.body_bytes as f64 / 1e3
        );
        if self.connects > 1 {
            note.push_str(&format!(", {} connections", self.connects));
        }
        row.add_note(note);
        if let Some((status, n)) = self.refused {
            row.add_note(format!("answered {status} ({n} of {RENDER_REQUESTS})"));
        }
        self.refused.is_none()
            && self.times.count() == RENDER_REQUESTS as u64
            && self.times.quantile(0.99) <= RENDER_TARGET_NS
    }
}

/// Sequential `GET path` on one keep-alive connection: the warm-up, then the timed ones.
/// Blocking; runs on a thread of its own.
fn time_requests(addr: SocketAddr, path: &str) -> Result<Timed, String> {
    let mut client = KeepAlive::new(addr, REQUEST_TIMEOUT);
    let mut timed = Timed {
        times: Histogram::default(),
        refused: None,
        body_bytes: 0,
        connects: 0,
    };
    for i in 0..RENDER_WARMUP_REQUESTS + RENDER_REQUESTS {
        let r = client.get(path).map_err(|e| format!("GET {path}: {e}"))?;
        timed.body_bytes = r.body_bytes;
        if i < RENDER_WARMUP_REQUESTS {
            continue;
        }
        if r.status == 200 {
            timed.times.record(r.done_at - r.written_at);
        } else {
            let (_, n) = timed.refused.get_or_insert((r.status, 0));
            *n += 1;
        }
    }
    timed.connects = client.connects;
    Ok(timed)
}

/// The 4 Mbit/s 10-client direct relay with `/stat.json` loaded at a fixed rate meanwhile.
async fn loaded_latency(ctx: &mut Ctx) {
    let window = ctx.opts.status_window;
    let name = format!(
        "4 Mbit/s direct relay, /stat.json at {LOAD_PER_SECOND}/s for {} s",
        window.as_secs()
    );
    let yaml = format!("{}{STATUS_YAML}", ctx.relay_yaml(LATENCY_RATE_BPS));
    let server = match ctx.start_server("status-load", &yaml) {
        Ok(s) => s,
        Err(e) => return ctx.push(server_error("status", &name, LATENCY_TARGET, &e)),
    };
    let mut clients = Clients::new();
    let req = stream_req(&server, "direct", ctx.opts.http10);
    clients.spawn(&req, Pace::Fast, LATENCY_CLIENTS);
    let all_started = clients.wait_started(Duration::from_secs(10)).await;
    tokio::time::sleep(super::WARMUP + Duration::from_millis(200)).await;
    let plan = rated::Plan {
        addr: server.addr,
        path: "/stat.json".into(),
        per_second: LOAD_PER_SECOND,
        connections: LOAD_CONNECTIONS,
        length: window,
    };
    let planned = plan.planned();
    let load = tokio::task::spawn_blocking(move || rated::run(&plan));
    let w = measure(&[&clients.board], Some(server.pid), window).await;
    let load = load.await;
    let failed = clients.board.failed.get() + u64::from(!all_started);
    let mut row = Row::new("status", name);
    row.clients = clients.board.connected.get().to_string();
    fill(&mut row, &w, true);
    if let Some(ratio) = super::floor_ratio(ctx, LATENCY_RATE_BPS, row.p99) {
        row.add_note(ratio);
    }
    let load_ok = match load {
        Ok(report) => {
            row.add_note(load_note(&report, planned));
            report.ok() == planned && report.sent == planned
        }
        Err(e) => {
            row.add_note(format!("load thread: {e}"));
            false
        }
    };
    if failed > 0 {
        row.add_note(format!(
            "{failed} clients failed: {}",
            clients.first_fail_reason()
        ));
    }
    let ok = row.p99.is_some_and(|p| p <= LATENCY_TARGET_NS) && lossless(&w.stats, failed);
    row.judge(LATENCY_TARGET, ok && load_ok);
    ctx.push(row);
    finish(ctx, server, clients, "under the /stat.json load").await;
}

/// What the load did, for the row's note.
fn load_note(r: &rated::Report, planned: u64) -> String {
    let mut note = format!(
        "load: {} of {planned} GET /stat.json sent on {LOAD_CONNECTIONS} keep-alive connections, {} × 200",
        r.sent,
        r.ok()
    );
    let others = r.other_statuses();
    if !others.is_empty() {
        note.push_str(&format!(", answered {others}"));
    }
    if r.from_due.count() > 0 {
        note.push_str(&format!(
            ", due → last byte p50 {} p99 {} max {}",
            ms(r.from_due.quantile(0.5)),
            ms(r.from_due.quantile(0.99)),
            ms(r.from_due.max())
        ));
    }
    if r.late > 0 {
        note.push_str(&format!(", {} sent late", r.late));
    }
    if r.errors > 0 {
        note.push_str(&format!(
            ", {} failed ({})",
            r.errors,
            r.first_error.as_deref().unwrap_or("")
        ));
    }
    if r.connects > LOAD_CONNECTIONS as u64 {
        note.push_str(&format!(", {} connections opened", r.connects));
    }
    note
}
