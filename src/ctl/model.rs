//! What voyandzctl reads from the server, as types: its feeds and streams (deserialized from
//! their D-Bus properties, named as the interface names them) and the server's status. The
//! same types print as tables ([`super::output`]) and, with their field names, as `--json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A feed, as `org.voyandz.Voyandz1.Feed` shows it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all(deserialize = "PascalCase"))]
pub struct Feed {
    /// Its name in the config.
    pub name: String,
    /// idle, starting, running, lingering, restarting, failed, stopped or ended.
    pub state: String,
    /// `on-demand`, `continuous` or `timeout Ns`.
    pub mode: String,
    /// Its process id while a process runs, 0 otherwise.
    pub pid: u32,
    /// How long its current run has been going, 0 when none runs.
    #[serde(rename(deserialize = "Uptime"))]
    pub uptime_ms: u64,
    /// How many times it was resurrected.
    pub restarts: u64,
    /// HTTP clients and stream commands reading it.
    pub subscribers: u32,
    /// Bytes read from its process or file.
    pub bytes_in: u64,
    /// How its last run ended by itself; empty when none did.
    pub last_exit: String,
}

/// A stream, as `org.voyandz.Voyandz1.Stream` shows it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all(deserialize = "PascalCase"))]
pub struct Stream {
    /// Its name in the config.
    pub name: String,
    /// As a feed's, for its own process; a relay shows its feed's.
    pub state: String,
    /// Connected HTTP clients.
    pub clients: u32,
    /// The container found in it (`MPEG-TS`, ...); empty when unknown.
    pub container: String,
    /// Bytes sent to its clients.
    pub bytes_out: u64,
    /// Its URL paths.
    pub urls: Vec<String>,
    /// Whether it carries no picture.
    pub audio_only: bool,
    /// Milliseconds between its last two keyframes; 0 when unknown.
    #[serde(rename(deserialize = "KeyframeInterval"))]
    pub keyframe_interval_ms: u64,
}

/// The server's own properties (`org.voyandz.Voyandz1.Manager`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Server {
    /// Its version.
    pub version: String,
    /// Milliseconds since it started.
    pub uptime: u64,
    /// The config file it serves.
    pub config_path: String,
    /// When, `ok` or `failed`, and what; three empty strings before the first reload.
    pub last_reload: (String, String, String),
}

/// The server and its feeds and streams counted by state: `voyandzctl status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The server's version.
    pub version: String,
    /// How long it has been running.
    pub uptime_ms: u64,
    /// The config file it serves.
    pub config_path: String,
    /// Its last reload; none before the first.
    pub last_reload: Option<Reload>,
    /// Its feeds.
    pub feeds: Census,
    /// Its streams.
    pub streams: Census,
}

/// A reload of the config.
#[derive(Debug, Clone, Serialize)]
pub struct Reload {
    /// When (RFC 3339).
    pub at: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// What changed, or why it failed.
    pub message: String,
}

/// How many feeds or streams there are, and how many are in each state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Census {
    /// All of them.
    pub total: usize,
    /// By state, for the states any of them is in.
    pub states: BTreeMap<String, usize>,
}

impl Census {
    /// The count of `states`, one per feed or stream.
    pub fn of<'a>(states: impl IntoIterator<Item = &'a str>) -> Census {
        let mut census = Census::default();
        for state in states {
            census.total += 1;
            *census.states.entry(state.to_owned()).or_default() += 1;
        }
        census
    }
}

impl Status {
    /// The status of `server` with `feeds` and `streams`.
    pub fn new(server: Server, feeds: &[Feed], streams: &[Stream]) -> Status {
        let (at, outcome, message) = server.last_reload;
        Status {
            version: server.version,
            uptime_ms: server.uptime,
            config_path: server.config_path,
            last_reload: (!at.is_empty()).then_some(Reload {
                at,
                outcome,
                message,
            }),
            feeds: Census::of(feeds.iter().map(|feed| feed.state.as_str())),
            streams: Census::of(streams.iter().map(|stream| stream.state.as_str())),
        }
    }
}
