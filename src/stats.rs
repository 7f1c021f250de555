//! Per feed, stream and client counters and states, and the plain views the status readers
//! (status page, JSON API, metrics, D-Bus) get of them.
//!
//! The data path only ever adds to an atomic here: bytes read ([`RunStats::bytes_in`]) and
//! bytes sent to a client ([`ClientEntry::sent`]). States change under a short lock at the
//! rare moments a supervisor changes what it does (a start, an exit, a backoff), never per
//! chunk. The bit rate is worked out when somebody reads the state, from the byte counter
//! and the time since the previous read, so that a server nobody watches pays nothing for
//! it. This module decides nothing: [`crate::lifecycle`] sets the states, [`crate::registry`]
//! assembles the views.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local};
use serde::{Serialize, Serializer};

use crate::container::Container;
use crate::fanout::framing::FramingInfo;
use crate::fanout::join::Join;
use crate::process::exit::Exit;

/// How far back the bit rate looks: an exponentially weighted average with this time
/// constant follows a change within a few seconds and smooths the burstiness of GOPs.
const RATE_TIME_CONSTANT: Duration = Duration::from_secs(2);
/// Reads of the state closer together than this reuse the last rate: many readers (a page
/// refreshing every second in many browsers) must not turn the average into noise.
const RATE_SAMPLE_MIN: Duration = Duration::from_millis(250);

/// What a feed or stream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not running, waiting for its first client (on-demand and timeout modes).
    Idle,
    /// Its process was started and has not delivered a byte yet.
    Starting,
    /// Delivering bytes.
    Running,
    /// Timeout mode: running on with no client, until its time is up or a client comes.
    Lingering,
    /// It died and is being resurrected after a backoff (see `retry_at`).
    Restarting,
    /// It failed and is not resurrected (`no-resurrect`).
    Failed,
    /// Stopped by a command; it stays stopped until started again.
    Stopped,
    /// Its input ended, or it ended and is not resurrected.
    Ended,
}

impl State {
    /// Every state, in the order a run goes through them: what a reader that shows one
    /// line per state (a metric per state label) lists.
    pub const ALL: [State; 8] = [
        State::Idle,
        State::Starting,
        State::Running,
        State::Lingering,
        State::Restarting,
        State::Failed,
        State::Stopped,
        State::Ended,
    ];

    /// Its name, as the status views spell it.
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Starting => "starting",
            State::Running => "running",
            State::Lingering => "lingering",
            State::Restarting => "restarting",
            State::Failed => "failed",
            State::Stopped => "stopped",
            State::Ended => "ended",
        }
    }
}

/// The state of one feed or stream, shared by its supervisor (writer) and the readers.
#[derive(Debug)]
pub struct RunStats {
    /// Bytes read from its process or file and published, over every run.
    pub bytes_in: AtomicU64,
    status: Mutex<Status>,
    rate: Mutex<Rate>,
}

#[derive(Debug)]
struct Status {
    state: State,
    retry_at: Option<(Instant, DateTime<Local>)>,
    pid: Option<u32>,
    started: Option<(Instant, DateTime<Local>)>,
    /// `bytes_in` when the current run started: more means it delivered.
    run_base: u64,
    restarts: u64,
    last_exit: Option<Exit>,
}

#[derive(Debug)]
struct Rate {
    at: Instant,
    bytes: u64,
    bits_per_second: f64,
}

impl Default for RunStats {
    fn default() -> Self {
        Self {
            bytes_in: AtomicU64::new(0),
            status: Mutex::new(Status {
                state: State::Idle,
                retry_at: None,
                pid: None,
                started: None,
                run_base: 0,
                restarts: 0,
                last_exit: None,
            }),
            rate: Mutex::new(Rate {
                at: Instant::now(),
                bytes: 0,
                bits_per_second: 0.0,
            }),
        }
    }
}

impl RunStats {
    fn status(&self) -> MutexGuard<'_, Status> {
        // A panic elsewhere cannot leave a status half-written: every write is one assignment.
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.status().state
    }

    /// Sets the state (the retry time is only kept while restarting).
    pub fn set_state(&self, state: State) {
        let mut status = self.status();
        status.state = state;
        status.retry_at = None;
    }

    /// A run started (`pid` for a command, none for a file).
    pub fn started(&self, pid: Option<u32>) {
        let mut status = self.status();
        status.state = State::Starting;
        status.retry_at = None;
        status.pid = pid;
        status.started = Some((Instant::now(), Local::now()));
        status.run_base = self.bytes_in.load(Ordering::Relaxed);
    }

    /// The run ended by itself.
    pub fn exited(&self, exit: Exit) {
        let mut status = self.status();
        status.pid = None;
        status.last_exit = Some(exit);
    }

    /// The run was stopped (no more demand, a command, the server stopping).
    pub fn stopped(&self, state: State) {
        let mut status = self.status();
        status.pid = None;
        status.state = state;
        status.retry_at = None;
    }

    /// It is resurrected after `delay`.
    pub fn restarting(&self, delay: Duration) {
        let mut status = self.status();
        status.state = State::Restarting;
        status.restarts += 1;
        let delay_wall = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        status.retry_at = Some((Instant::now() + delay, Local::now() + delay_wall));
    }

    /// Its view, named `name`, with what the caller counted: bytes sent to its clients and
    /// its subscribers.
    pub fn view(&self, name: &str, bytes_out: u64, subscribers: usize) -> RunView {
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        let now = Instant::now();
        let status = self.status();
        let delivered = bytes_in > status.run_base;
        let state = match status.state {
            State::Starting if delivered => State::Running,
            state => state,
        };
        let running = matches!(state, State::Starting | State::Running | State::Lingering);
        let started = status.started.filter(|_| running);
        let view = RunView {
            name: name.to_string(),
            state,
            retry_at: status.retry_at.map(|(_, wall)| wall),
            retry_in_ms: (status.retry_at).map(|(at, _)| millis(at.saturating_duration_since(now))),
            pid: status.pid,
            started_at: started.map(|(_, wall)| wall),
            uptime_ms: started.map(|(at, _)| millis(now - at)),
            restarts: status.restarts,
            last_exit: status.last_exit.clone(),
            bytes_in,
            bytes_out,
            bitrate_bps: 0,
            subscribers,
        };
        drop(status);
        RunView {
            bitrate_bps: self.bit_rate(bytes_in, now),
            ..view
        }
    }

    /// The input bit rate: an exponentially weighted average over [`RATE_TIME_CONSTANT`],
    /// brought up to date with the bytes read since the previous read of the state. A long
    /// gap between two reads gives the average over the gap, which is what a reader that
    /// looks once a minute (a metrics scraper) wants.
    fn bit_rate(&self, bytes: u64, now: Instant) -> u64 {
        let mut rate = self
            .rate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let elapsed = now.saturating_duration_since(rate.at);
        if elapsed >= RATE_SAMPLE_MIN {
            let seconds = elapsed.as_secs_f64();
            let current = (bytes.saturating_sub(rate.bytes) * 8) as f64 / seconds;
            let weight = 1.0 - (-seconds / RATE_TIME_CONSTANT.as_secs_f64()).exp();
            rate.bits_per_second += weight * (current - rate.bits_per_second);
            rate.at = now;
            rate.bytes = bytes;
        }
        rate.bits_per_second.round() as u64
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// An [`Exit`] with its `kind` and fields and, for a reader that wants one line, the
/// `message` the log prints for it.
fn exit_with_message<S: Serializer>(exit: &Option<Exit>, serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Described<'a> {
        #[serde(flatten)]
        exit: &'a Exit,
        message: String,
    }
    (exit.as_ref())
        .map(|exit| Described {
            exit,
            message: exit.to_string(),
        })
        .serialize(serializer)
}

/// The connected clients of one stream, and what its clients did in total (bytes, skips and
/// cuts of those that left too, pictures asked for): counters only ever rise, as a metrics
/// scraper expects.
#[derive(Debug, Default)]
pub struct Clients {
    list: Mutex<HashMap<u64, Arc<ClientStats>>>,
    departed_bytes: AtomicU64,
    departed_skips: AtomicU64,
    cut: AtomicU64,
    screenshot_requests: AtomicU64,
    screenshot_decodes: AtomicU64,
}

/// Gives every client of the server its own id.
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Who a client is, as the status shows it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Its address.
    pub peer: SocketAddr,
    /// The stream it watches.
    pub stream: String,
    /// How it joined.
    pub join: Join,
    /// Its `User-Agent`, `-` when it sent none.
    pub user_agent: String,
}

/// One client's counters, shared by its body (writer) and the list (readers).
#[derive(Debug)]
pub struct ClientStats {
    id: u64,
    info: ClientInfo,
    started: (Instant, DateTime<Local>),
    sent: AtomicU64,
    skips: AtomicU64,
}

impl Clients {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<ClientStats>>> {
        // Entries are inserted and removed whole: a poisoned map is still a consistent one.
        self.list
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lists a new client until the returned entry is dropped.
    pub fn register(self: &Arc<Self>, info: ClientInfo) -> ClientEntry {
        let stats = Arc::new(ClientStats {
            id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
            info,
            started: (Instant::now(), Local::now()),
            sent: AtomicU64::new(0),
            skips: AtomicU64::new(0),
        });
        self.lock().insert(stats.id, Arc::clone(&stats));
        ClientEntry {
            clients: Arc::clone(self),
            stats,
        }
    }

    /// How many clients are connected.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Bytes sent to every client, connected or gone.
    pub fn bytes_sent(&self) -> u64 {
        let connected: u64 = (self.lock().values())
            .map(|client| client.sent.load(Ordering::Relaxed))
            .sum();
        connected + self.departed_bytes.load(Ordering::Relaxed)
    }

    /// Skips of every client, connected or gone.
    pub fn skips(&self) -> u64 {
        let connected: u64 = (self.lock().values())
            .map(|client| client.skips.load(Ordering::Relaxed))
            .sum();
        connected + self.departed_skips.load(Ordering::Relaxed)
    }

    /// Clients cut off because they fell too far behind live.
    pub fn cut(&self) -> u64 {
        self.cut.load(Ordering::Relaxed)
    }

    /// Counts a request for a picture of the stream (`/pic`).
    pub fn screenshot_requested(&self) {
        self.screenshot_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a decoder run for a picture (requests that share one count once).
    pub fn screenshot_decoding(&self) {
        self.screenshot_decodes.fetch_add(1, Ordering::Relaxed);
    }

    /// Pictures asked for and decoder runs, in that order.
    pub fn screenshots(&self) -> (u64, u64) {
        (
            self.screenshot_requests.load(Ordering::Relaxed),
            self.screenshot_decodes.load(Ordering::Relaxed),
        )
    }

    /// The views of the connected clients, oldest first.
    pub fn views(&self) -> Vec<ClientView> {
        let now = Instant::now();
        let mut views: Vec<ClientView> = (self.lock().values())
            .map(|client| ClientView {
                id: client.id,
                peer: client.info.peer,
                stream: client.info.stream.clone(),
                join: client.info.join,
                user_agent: client.info.user_agent.clone(),
                started_at: client.started.1,
                duration_ms: millis(now - client.started.0),
                bytes_sent: client.sent.load(Ordering::Relaxed),
                skips: client.skips.load(Ordering::Relaxed),
            })
            .collect();
        views.sort_by_key(|view| view.id);
        views
    }
}

/// A listed client; dropping it takes the client off the list.
#[derive(Debug)]
pub struct ClientEntry {
    clients: Arc<Clients>,
    stats: Arc<ClientStats>,
}

impl ClientEntry {
    /// Counts bytes handed to the client's connection: one atomic add, no lock.
    pub fn sent(&self, bytes: u64) {
        self.stats.sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records how many times the client skipped ahead so far.
    pub fn skipped(&self, skips: u64) {
        self.stats.skips.store(skips, Ordering::Relaxed);
    }

    /// Counts the client as cut off for falling too far behind live.
    pub fn cut(&self) {
        self.clients.cut.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for ClientEntry {
    fn drop(&mut self) {
        let sent = self.stats.sent.load(Ordering::Relaxed);
        let skips = self.stats.skips.load(Ordering::Relaxed);
        let removed = self.clients.lock().remove(&self.stats.id);
        // Added after the removal: a reader summing in between may miss the bytes for a
        // moment, but never counts them twice.
        if removed.is_some() {
            let clients = &self.clients;
            clients.departed_bytes.fetch_add(sent, Ordering::Relaxed);
            clients.departed_skips.fetch_add(skips, Ordering::Relaxed);
        }
    }
}

/// The HTTP status codes [`Traffic`] counts: 100 to 599, every code HTTP defines.
const STATUS_CODES: std::ops::Range<u16> = 100..600;

/// Server-wide counters: connections accepted and open, and requests by the status code of
/// their answer. One atomic add per connection and per request, no lock.
#[derive(Debug)]
pub struct Traffic {
    accepted: AtomicU64,
    closed: AtomicU64,
    /// Answers by status code, indexed from the first of [`STATUS_CODES`].
    answers: [AtomicU64; STATUS_CODES.end as usize - STATUS_CODES.start as usize],
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            accepted: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            answers: [const { AtomicU64::new(0) };
                STATUS_CODES.end as usize - STATUS_CODES.start as usize],
        }
    }
}

impl Traffic {
    /// Counts an accepted connection, open until the returned guard is dropped.
    pub fn accepted(self: &Arc<Self>) -> OpenConnection {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(self))
    }

    /// Counts a request answered with `status` (a code outside HTTP's range is not counted).
    pub fn answered(&self, status: u16) {
        if let Some(count) = (status.checked_sub(STATUS_CODES.start))
            .and_then(|index| self.answers.get(usize::from(index)))
        {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Its view now.
    pub fn view(&self) -> TrafficView {
        let closed = self.closed.load(Ordering::Relaxed);
        let accepted = self.accepted.load(Ordering::Relaxed);
        TrafficView {
            connections: accepted,
            open_connections: accepted.saturating_sub(closed),
            requests: (STATUS_CODES.zip(&self.answers))
                .map(|(code, count)| (code, count.load(Ordering::Relaxed)))
                .filter(|(_, count)| *count > 0)
                .collect(),
        }
    }
}

/// A connection counted as open by [`Traffic`] until this is dropped.
#[derive(Debug)]
pub struct OpenConnection(Arc<Traffic>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// [`Traffic`] at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficView {
    /// Connections accepted since the server started.
    pub connections: u64,
    /// Connections open now.
    pub open_connections: u64,
    /// Requests answered, by status code (codes never answered are left out).
    pub requests: Vec<(u16, u64)>,
}

/// The whole runtime state at one moment: what status readers render.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeState {
    /// When it was taken.
    pub taken_at: DateTime<Local>,
    /// Every feed, by name.
    pub feeds: Vec<RunView>,
    /// Every stream, by name.
    pub streams: Vec<StreamView>,
    /// Every connected client, oldest first. Not serialised here: the status API adds it
    /// only when `status.clients` shows it (`status::api`).
    #[serde(skip)]
    pub clients: Vec<ClientView>,
}

/// A feed's or stream's state and counters.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// Its name.
    pub name: String,
    /// What it is doing.
    pub state: State,
    /// When a restarting one is started again.
    pub retry_at: Option<DateTime<Local>>,
    /// The same, in milliseconds from now.
    pub retry_in_ms: Option<u64>,
    /// Its process id, while a process runs.
    pub pid: Option<u32>,
    /// When its current run started (wall clock), while it runs.
    pub started_at: Option<DateTime<Local>>,
    /// How long its current run has been going (monotonic clock), in milliseconds.
    pub uptime_ms: Option<u64>,
    /// How many times it was resurrected.
    pub restarts: u64,
    /// How its last run ended by itself; serialised with the `message` the log prints.
    #[serde(serialize_with = "exit_with_message")]
    pub last_exit: Option<Exit>,
    /// Bytes read from its process or file.
    pub bytes_in: u64,
    /// Bytes sent to HTTP clients (a feed: to the clients of streams relaying it).
    pub bytes_out: u64,
    /// The current input bit rate, in bits per second.
    pub bitrate_bps: u64,
    /// Its subscribers: HTTP clients and the commands of streams reading it.
    pub subscribers: usize,
}

/// A stream's view: its run, how clients reach it, and its container facts.
#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    /// Its run (a relay: its feed's run under the stream's name).
    #[serde(flatten)]
    pub run: RunView,
    /// The feed it reads, if any.
    pub feed: Option<String>,
    /// Its URL paths.
    pub paths: Vec<String>,
    /// Its `Content-Type`.
    pub mimetype: String,
    /// `shared` or `exclusive`.
    pub client: &'static str,
    /// Connected HTTP clients.
    pub clients: usize,
    /// Times its clients, connected or gone, fell behind and skipped ahead.
    pub skips: u64,
    /// Clients cut off because they fell too far behind live.
    pub clients_cut: u64,
    /// Requests for a picture of it (`/pic`).
    pub screenshot_requests: u64,
    /// Decoder runs for those pictures (concurrent requests share one).
    pub screenshot_decodes: u64,
    /// What the container parser knows, for a container-aware stream.
    pub framing: Option<FramingView>,
}

/// [`FramingInfo`] as the status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FramingView {
    /// The container.
    pub container: Container,
    /// Size of its header in bytes.
    pub header_bytes: usize,
    /// Time between the last two keyframes, in milliseconds.
    pub keyframe_interval_ms: Option<u64>,
    /// Whether it has no video.
    pub audio_only: bool,
}

impl From<FramingInfo> for FramingView {
    fn from(info: FramingInfo) -> Self {
        Self {
            container: info.container,
            header_bytes: info.header_bytes,
            keyframe_interval_ms: info.keyframe_interval.map(millis),
            audio_only: info.audio_only,
        }
    }
}

/// One connected client.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    /// Its id, unique while the server runs.
    pub id: u64,
    /// Its address.
    pub peer: SocketAddr,
    /// The stream it watches.
    pub stream: String,
    /// How it joined.
    pub join: Join,
    /// Its `User-Agent`.
    pub user_agent: String,
    /// When it connected.
    pub started_at: DateTime<Local>,
    /// How long it has been connected, in milliseconds.
    pub duration_ms: u64,
    /// Bytes handed to its connection.
    pub bytes_sent: u64,
    /// How many times it fell behind and skipped ahead.
    pub skips: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ClientInfo {
        ClientInfo {
            peer: "127.0.0.1:5000".parse().expect("address"),
            stream: "s".into(),
            join: Join::Plain,
            user_agent: "<b>agent</b>".into(),
        }
    }

    #[test]
    fn a_client_is_listed_until_it_leaves_and_its_bytes_stay_counted() {
        let clients = Arc::new(Clients::default());
        let entry = clients.register(info());
        entry.sent(100);
        entry.skipped(2);
        let views = clients.views();
        assert_eq!(views.len(), 1);
        assert_eq!((views[0].bytes_sent, views[0].skips), (100, 2));
        assert_eq!(clients.bytes_sent(), 100);
        drop(entry);
        assert_eq!(clients.count(), 0);
        assert_eq!(
            (clients.bytes_sent(), clients.skips()),
            (100, 2),
            "a departed client's bytes and skips still count"
        );
    }

    #[test]
    fn a_run_is_running_once_it_delivered() {
        let stats = RunStats::default();
        stats.started(Some(42));
        assert_eq!(stats.view("f", 0, 1).state, State::Starting);
        stats.bytes_in.fetch_add(10, Ordering::Relaxed);
        let view = stats.view("f", 0, 1);
        assert_eq!(
            (view.state, view.pid, view.bytes_in),
            (State::Running, Some(42), 10)
        );
        assert!(view.started_at.is_some());
    }

    #[test]
    fn a_restart_counts_and_says_when() {
        let stats = RunStats::default();
        stats.restarting(Duration::from_secs(5));
        let view = stats.view("f", 0, 0);
        assert_eq!((view.state, view.restarts), (State::Restarting, 1));
        assert!(view.retry_in_ms.is_some_and(|ms| ms > 4000 && ms <= 5000));
    }

    #[test]
    fn the_bit_rate_follows_the_bytes() {
        let stats = RunStats::default();
        let start = Instant::now();
        {
            let mut rate = stats.rate.lock().expect("rate");
            rate.at = start;
        }
        // 10 s of 1000 bytes a second, sampled each second: close to 8000 bit/s.
        let mut bps = 0;
        for second in 1..=10u64 {
            bps = stats.bit_rate(second * 1000, start + Duration::from_secs(second));
        }
        assert!((7000..=8000).contains(&bps), "{bps}");
    }

    #[test]
    fn every_state_is_named_as_it_serializes() {
        for state in State::ALL {
            let yaml = serde_saphyr::to_string(&state).expect("serializable");
            assert_eq!(yaml.trim(), state.name());
        }
    }

    #[test]
    fn traffic_counts_connections_while_open_and_answers_by_code() {
        let traffic = Arc::new(Traffic::default());
        let open = traffic.accepted();
        let _still_open = traffic.accepted();
        drop(open);
        for status in [200, 404, 200, 599, 600, 99] {
            traffic.answered(status);
        }
        let view = traffic.view();
        assert_eq!((view.connections, view.open_connections), (2, 1));
        assert_eq!(view.requests, vec![(200, 2), (404, 1), (599, 1)]);
    }

    #[test]
    fn the_state_serializes_as_plain_values() {
        let stats = RunStats::default();
        let yaml = serde_saphyr::to_string(&stats.view("f", 0, 0)).expect("serializable");
        assert!(yaml.contains("state: idle"), "{yaml}");
    }
}
