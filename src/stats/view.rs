//! The plain, serialisable views of the runtime state that status readers render.

use chrono::{DateTime, Local};
use serde::{Serialize, Serializer};

use super::{ClientView, State, millis};
use crate::container::Container;
use crate::fanout::framing::FramingInfo;
use crate::process::exit::Exit;

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
    /// The feed it reads, if any (the first, for a stream that muxes several).
    pub feed: Option<String>,
    /// Every feed it reads, in its config's order.
    pub feeds: Vec<String>,
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
