//! The benchmark's sections, run in order; each pushes its rows into the context.
//!
//! To add a section (issue 13 adds screenshots, `keyframe=last` and framing cost): write a
//! `pub async fn run(ctx: &mut Ctx)` in a new file and list it in [`SECTIONS`]. The helpers
//! here (start a server, spawn clients, measure a window) are what every section shares.

pub mod crash;
pub mod dbus;
pub mod fanout;
pub mod framing;
pub mod latency;
pub mod pictures;
pub mod reload;
pub mod slow;
pub mod status;
pub mod ttfb;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::client::{self, Board, Pace, Request, Stats};
use crate::icecast::Icecast;
use crate::plot::Series;
use crate::procstat::{self, CpuSnap, CpuUse};
use crate::report::{Row, Table, text_line};
use crate::server::{Server, sh_quote, yaml_str};

/// Every client ignores its own first 2 s (the warm-up).
pub const WARMUP: Duration = Duration::from_secs(2);
/// Clients connecting at once (the rest wait): keeps the accept backlog from overflowing,
/// which would cost a 1 s SYN retransmit and look like server latency. voyandz's listening
/// socket (bound by the bench, see `server.rs`) has a backlog of 4096; a peer with a smaller
/// one asks for fewer with [`Clients::connecting_at_most`].
pub const CONNECT_CONCURRENCY: usize = 64;
/// Load-generator lag probe period.
const LAG_PROBE: Duration = Duration::from_millis(1);

/// Options the sections read.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Measured window of each latency row.
    pub window: Duration,
    /// Measured window of each fan-out step.
    pub fanout_window: Duration,
    /// Fan-out client counts.
    pub fanout_steps: Vec<usize>,
    /// Slow-client run length.
    pub slow_window: Duration,
    /// Crash-loop run length.
    pub crash_window: Duration,
    /// The status section's loaded latency window (the `/stat.json` load runs all of it).
    pub status_window: Duration,
    /// On-demand TTFB tries.
    pub ttfb_tries: usize,
    /// Clients use HTTP/1.0 (close-delimited bodies).
    pub http10: bool,
}

/// What sections share.
pub struct Ctx {
    /// The server binary, or why there is none.
    pub server_bin: Result<PathBuf, String>,
    /// The stamping feed binary.
    pub stamp: PathBuf,
    /// Scratch directory (configs, logs).
    pub dir: PathBuf,
    /// Options.
    pub opts: Opts,
    /// Results so far.
    pub rows: Vec<Row>,
    /// Suspicious server behaviour seen on the way.
    pub notes: Vec<String>,
    /// Floor p99 by bit rate, for the ratio column.
    pub floor_p99: Vec<(u64, u64)>,
    /// The in-bench TCP relay's p99 by bit rate.
    pub tcp_floor_p99: Vec<(u64, u64)>,
    /// The Icecast binary (the fan-out rows' peer), or why there is none.
    pub icecast_bin: Result<PathBuf, String>,
    /// The fan-out steps at 1 Mbit/s, one series per server, for `--plot`.
    pub fanout_plot: Vec<Series>,
    /// Tables printed below the main one (the fan-out rows side by side).
    pub tables: Vec<Table>,
}

/// What a stamping feed's first bytes show the server, which sniffs them to choose the feed's
/// container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedLooks {
    /// MPEG-TS from the first byte: the feed is framed (keyframe-less TS).
    MpegTs,
    /// A line of text first: no container, the feed is relayed as opaque bytes.
    Opaque,
}

/// A section: its id for `--only` and its entry point.
pub type SectionFn = for<'a> fn(&'a mut Ctx) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

/// All sections, in run order.
pub const SECTIONS: &[(&str, SectionFn)] = &[
    ("latency", |c| Box::pin(latency::run(c))),
    ("fanout", |c| Box::pin(fanout::run(c))),
    ("slow", |c| Box::pin(slow::run(c))),
    ("ttfb", |c| Box::pin(ttfb::run(c))),
    ("crash", |c| Box::pin(crash::run(c))),
    ("pictures", |c| Box::pin(pictures::run(c))),
    ("framing", |c| Box::pin(framing::run(c))),
    ("status", |c| Box::pin(status::run(c))),
    ("reload", |c| Box::pin(reload::run(c))),
    ("dbus", |c| Box::pin(dbus::run(c))),
];

impl Ctx {
    /// Records a row and prints it at once.
    pub fn push(&mut self, row: Row) {
        println!("{}", text_line(&row, self.rows.is_empty()));
        self.rows.push(row);
    }

    /// Records an observation about the server.
    pub fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        eprintln!("bench: note: {s}");
        self.notes.push(s);
    }

    /// The stamping feed's arguments at `rate_bps`, its first bytes showing `looks`.
    fn stamp_args(rate_bps: u64, looks: FeedLooks) -> Vec<String> {
        let mut args = vec!["--rate-bps".to_string(), rate_bps.to_string()];
        if looks == FeedLooks::Opaque {
            args.push("--opaque".into());
        }
        args
    }

    /// The stamping feed command line at `rate_bps` whose first bytes show `looks`, quoted
    /// for the config.
    pub fn stamp_cmd(&self, rate_bps: u64, looks: FeedLooks) -> String {
        let mut words = vec![sh_quote(&self.stamp.to_string_lossy())];
        words.extend(Self::stamp_args(rate_bps, looks));
        words.join(" ")
    }

    /// The same feed as a command the bench runs itself (the pipe floor, Icecast's source).
    pub fn stamp_command(&self, rate_bps: u64, looks: FeedLooks) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.stamp);
        cmd.args(Self::stamp_args(rate_bps, looks));
        cmd
    }

    /// Starts a server on `yaml`; on failure returns the reason.
    pub fn start_server(&mut self, name: &str, yaml: &str) -> Result<Server, String> {
        self.start_server_with(name, yaml, &[], &[])
    }

    /// [`Ctx::start_server`] with more arguments after `-f CONFIG` and more environment.
    pub fn start_server_with(
        &mut self,
        name: &str,
        yaml: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, String> {
        let bin = self.server_bin.clone()?;
        eprintln!("bench: starting server {name}");
        Server::start(&bin, &self.dir, name, yaml, args, env)
    }

    /// Starts Icecast for a stream of `rate_bps`, fed by the stamping feed; on failure
    /// returns the reason.
    pub fn start_icecast(&mut self, name: &str, rate_bps: u64) -> Result<Icecast, String> {
        let bin = self.icecast_bin.clone()?;
        eprintln!("bench: starting icecast {name}");
        let feed = self.stamp_command(rate_bps, FeedLooks::MpegTs);
        Icecast::start(&bin, &self.dir, name, rate_bps, feed).map_err(|e| e.to_string())
    }

    /// Stops Icecast and keeps what went wrong as notes.
    pub fn stop_icecast(&mut self, icecast: Icecast) {
        for p in icecast.stop() {
            self.note(p);
        }
    }

    /// Stops a server and keeps what went wrong as notes.
    pub fn stop_server(&mut self, server: Server) {
        for p in server.stop() {
            self.note(p);
        }
    }

    /// Records a row that could not be measured on `server` (an ERROR) and stops it.
    pub fn give_up(&mut self, server: Server, row: Row) {
        self.push(row);
        self.stop_server(server);
    }

    /// The config with feed `f` (stamp at `rate_bps`), a direct-relay stream `direct` and a
    /// `cat` stream on it (both `video/mp2t`: the server frames them as MPEG-TS), and
    /// `opaque`, a direct relay of its own feed `g`, the same stamp with `--opaque` (bytes
    /// only: a slow client is cut off rather than resynchronised at a keyframe). A feed's
    /// container is sniffed from its own first bytes, whatever the streams relaying it say,
    /// so `opaque` needs a feed of its own whose first bytes are no container.
    pub fn relay_yaml(&self, rate_bps: u64) -> String {
        self.relay_yaml_with(rate_bps, "", "")
    }

    /// [`Ctx::relay_yaml`] with more entries under `feeds:` and under `streams:` (YAML lines
    /// indented by two, each ending in a newline), for a row whose stream needs more than the
    /// usual ones without adding them to every other section's server.
    pub fn relay_yaml_with(&self, rate_bps: u64, feeds: &str, streams: &str) -> String {
        let ts = yaml_str(&self.stamp_cmd(rate_bps, FeedLooks::MpegTs));
        let opaque = yaml_str(&self.stamp_cmd(rate_bps, FeedLooks::Opaque));
        format!(
            "listenaddr: 127.0.0.1\nfeeds:\n  f:\n    command: {ts}\n  g:\n    command: {opaque}\n{feeds}streams:\n  direct:\n    feed: f\n    mimetype: video/mp2t\n  cat:\n    command: cat\n    feed: f\n    mimetype: video/mp2t\n  opaque:\n    feed: g\n    mimetype: text/plain\n{streams}",
        )
    }
}

/// Spawns `n` clients of `req`, waits until each has its stream or has failed (`connect` at
/// the most), then lets them through their warm-up: what every row of a few steady clients
/// does before its window. Why nothing can be measured when no client got its stream; else
/// the clients, and whether every one of them started within `connect`.
pub async fn warm_clients(
    req: &Request,
    n: usize,
    connect: Duration,
) -> Result<(Clients, bool), String> {
    let mut clients = Clients::new();
    clients.spawn(req, Pace::Fast, n);
    let all_started = clients.wait_started(connect).await;
    if clients.board.connected.get() == 0 {
        let why = clients.first_fail_reason();
        return Err(format!("no client got a stream: {why}"));
    }
    tokio::time::sleep(WARMUP + Duration::from_millis(200)).await;
    Ok((clients, all_started))
}

/// A group of clients sharing one board; aborted when dropped.
pub struct Clients {
    /// Their shared statistics.
    pub board: Rc<Board>,
    handles: Vec<JoinHandle<()>>,
    sem: Arc<Semaphore>,
    spawned: usize,
}

impl Clients {
    /// An empty group, with the load-generator lag probe running on its board.
    pub fn new() -> Clients {
        Clients::connecting_at_most(CONNECT_CONCURRENCY)
    }

    /// An empty group whose clients connect at most `concurrency` at a time.
    pub fn connecting_at_most(concurrency: usize) -> Clients {
        let board = Board::new(WARMUP);
        let probe = tokio::task::spawn_local(client::measure_lag(board.clone(), LAG_PROBE));
        Clients {
            board,
            handles: vec![probe],
            sem: Arc::new(Semaphore::new(concurrency)),
            spawned: 0,
        }
    }

    /// Starts `n` more clients of `req`.
    pub fn spawn(&mut self, req: &Request, pace: Pace, n: usize) {
        for _ in 0..n {
            let (board, req, sem, slot) = (
                self.board.clone(),
                req.clone(),
                self.sem.clone(),
                self.spawned,
            );
            self.spawned += 1;
            self.handles.push(tokio::task::spawn_local(async move {
                let permit = sem.acquire_owned().await.ok();
                client::run(board, req, pace, slot, permit).await
            }));
        }
    }

    /// Waits until every spawned client has its response head or has failed.
    pub async fn wait_started(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while ((self.board.connected.get() + self.board.failed.get()) as usize) < self.spawned {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Why the first client that failed did (empty if none failed).
    pub fn first_fail_reason(&self) -> String {
        self.board
            .fail_reasons
            .borrow()
            .first()
            .cloned()
            .unwrap_or_default()
    }

    /// How many clients started.
    pub fn spawned(&self) -> usize {
        self.spawned
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

/// What one measured window gives.
pub struct Window {
    /// Client statistics.
    pub stats: Stats,
    /// Server (own) and children CPU; for pipe rows, the feeds are the children of the bench.
    pub cpu: Option<CpuUse>,
    /// The bench's own CPU.
    pub gen_cpu: f64,
    /// RSS of the server at the end, KiB.
    pub rss_end: Option<u64>,
    /// Highest RSS sampled, KiB.
    pub rss_max: Option<u64>,
    /// RSS at the start, KiB.
    pub rss_start: Option<u64>,
    /// Load-generator lag p99, ns.
    pub lag_p99: u64,
    /// Load-generator lag, the worst tick, ns.
    pub lag_max: u64,
    /// When that worst tick was handled (its lag ended), CLOCK_MONOTONIC ns; 0 if none.
    pub lag_max_at: u64,
    /// CPU used on the machine by anything but the server, its children and the bench, % of
    /// one core: other users' builds and tests disturb the figures.
    pub other_cpu: Option<f64>,
    /// Hypervisor steal, % of one core.
    pub steal: Option<f64>,
    /// How long the window was open, s.
    pub secs: f64,
}

/// Opens the boards' windows, waits `len` while sampling the server's RSS, closes them.
/// `root` is the process whose tree's CPU is measured (the server, or the bench for pipes).
pub async fn measure(boards: &[&Board], root: Option<u32>, len: Duration) -> Window {
    measure_during(boards, root, tokio::time::sleep(len))
        .await
        .0
}

/// [`measure`] with a window that stays open while `work` runs (a row that does something to
/// the server meanwhile, e.g. reloads it) rather than for a fixed length; also returns what
/// `work` gave.
pub async fn measure_during<T>(
    boards: &[&Board],
    root: Option<u32>,
    work: impl Future<Output = T>,
) -> (Window, T) {
    let me = std::process::id();
    let rss = |p: Option<u32>| p.and_then(procstat::rss_kib);
    let tree0 = root.and_then(CpuSnap::take);
    let gen0 = CpuSnap::take(me);
    let m0 = procstat::machine_ticks();
    let t0 = voyandz_bench::clock::now_ns();
    let rss_start = rss(root.filter(|&p| p != me));
    for b in boards {
        b.open_window();
    }
    let mut rss_max = rss_start;
    let mut sample = || {
        if let Some(r) = rss(root.filter(|&p| p != me)) {
            rss_max = Some(rss_max.map_or(r, |m: u64| m.max(r)));
        }
    };
    tokio::pin!(work);
    let out = loop {
        tokio::select! {
            out = &mut work => break out,
            () = tokio::time::sleep(Duration::from_millis(250)) => sample(),
        }
    };
    sample();
    let mut stats = Stats::default();
    let mut lag = voyandz_bench::hist::Histogram::default();
    let mut lag_max_at = 0;
    for (i, b) in boards.iter().enumerate() {
        let s = b.close_window();
        if b.lag.borrow().max() > lag.max() {
            lag_max_at = b.lag_worst_at.get();
        }
        lag.merge(&b.lag.borrow());
        if i == 0 {
            stats = s;
        }
    }
    let tree1 = root.and_then(CpuSnap::take);
    let gen1 = CpuSnap::take(me);
    let m1 = procstat::machine_ticks();
    let secs = (voyandz_bench::clock::now_ns() - t0) as f64 / 1e9;
    let pct = |ticks: u64| ticks as f64 / procstat::clk_tck() as f64 / secs * 100.0;
    let cpu = match (tree0, tree1) {
        (Some(a), Some(b)) => Some(a.until(&b)),
        _ => None,
    };
    let gen_cpu = match (gen0, gen1) {
        (Some(a), Some(b)) => a.until(&b).own_pct,
        _ => 0.0,
    };
    let (other_cpu, steal) = match (m0, m1) {
        (Some(a), Some(b)) => {
            let ours = gen_cpu
                + cpu.map_or(0.0, |c| {
                    c.kids_pct + if root == Some(me) { 0.0 } else { c.own_pct }
                });
            (
                Some((pct(b.busy.saturating_sub(a.busy)) - ours).max(0.0)),
                Some(pct(b.steal.saturating_sub(a.steal))),
            )
        }
        _ => (None, None),
    };
    let window = Window {
        stats,
        cpu,
        gen_cpu,
        rss_end: rss(root.filter(|&p| p != me)),
        rss_max,
        rss_start,
        lag_p99: lag.quantile(0.99),
        lag_max: lag.max(),
        lag_max_at,
        other_cpu,
        steal,
        secs,
    };
    (window, out)
}

/// Fills a row's latency, loss and resource columns from a window.
pub fn fill(row: &mut Row, w: &Window, server: bool) {
    let s = &w.stats;
    if s.latency.count() > 0 {
        row.p50 = Some(s.latency.quantile(0.5));
        row.p99 = Some(s.latency.quantile(0.99));
        row.max = Some(s.latency.max());
    }
    row.loss = loss_text(s);
    if let Some(c) = w.cpu {
        if server {
            row.cpu_srv = Some(c.own_pct);
        }
        row.cpu_kids = Some(c.kids_pct);
    }
    row.cpu_gen = Some(w.gen_cpu);
    row.cpu_other = w.other_cpu;
    if let Some(st) = w.steal.filter(|&s| s >= 1.0) {
        row.add_note(format!("steal {st:.0}%"));
    }
    if server {
        row.rss_kib = w.rss_end;
    }
    row.add_note(format!("{} pkts", s.packets));
    row.add_note(format!("gen lag p99 {}", crate::report::ms(w.lag_p99)));
    let feed_lag = s.feed_lag.quantile(0.99);
    if feed_lag > 1_000_000 {
        row.add_note(format!(
            "feed wrote late: p99 {} behind schedule",
            crate::report::ms(feed_lag)
        ));
    }
    if s.resyncs > 0 {
        row.add_note(format!("{} resyncs (torn data)", s.resyncs));
    }
    if s.dups > 0 {
        row.add_note(format!("{} dup/reordered", s.dups));
    }
    if let Some(r) = s.end_reasons.first() {
        row.add_note(format!("ended: {r}"));
    }
}

/// "0" when nothing was lost; else lost packets (%) and clients cut off.
pub fn loss_text(s: &Stats) -> String {
    let mut t = if s.lost == 0 {
        "0".to_string()
    } else {
        format!(
            "{} ({:.2}%)",
            s.lost,
            s.lost as f64 * 100.0 / (s.lost + s.packets).max(1) as f64
        )
    };
    if s.ended > 0 {
        t.push_str(&format!(" +{} cut", s.ended));
    }
    t
}

/// Whether the window saw no loss at all.
pub fn lossless(s: &Stats, failed: u64) -> bool {
    s.lost == 0 && s.ended == 0 && failed == 0 && s.packets > 0
}

/// A row for a server that could not be started.
pub fn server_error(section: &'static str, name: &str, target: &str, why: &str) -> Row {
    let first = why.lines().next().unwrap_or(why);
    Row::error(section, name, target, first.to_string())
}

/// Ratio of `p99` to the floor's p99 at `rate`.
pub fn floor_ratio(ctx: &Ctx, rate: u64, p99: Option<u64>) -> Option<String> {
    let f = ctx.floor_p99.iter().find(|(r, _)| *r == rate)?.1;
    Some(format!("p99 = {:.1}× floor", p99? as f64 / f.max(1) as f64))
}

/// An HTTP request for `/stream/<name>`.
pub fn stream_req(server: &Server, name: &str, http10: bool) -> Request {
    Request {
        addr: server.addr,
        path: format!("/stream/{name}"),
        http10,
    }
}

/// Ends a row measured on `server` with `clients`: notes a server that died, lets the
/// clients go, records the row and stops the server.
pub async fn finish_row(ctx: &mut Ctx, mut row: Row, mut server: Server, clients: Clients) {
    if !server.alive() {
        row.add_note("server died");
    }
    drop(clients);
    settle().await;
    ctx.push(row);
    ctx.stop_server(server);
}

/// Lets aborted client tasks run their drop (closing their sockets) before the server is
/// stopped: the runtime is single-threaded, and `abort` only takes effect when it next polls.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}
