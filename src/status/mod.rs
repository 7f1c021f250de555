//! The status views: what the status page (`/stat`), the status API (`/stat.json`) and the
//! metrics (`/metrics`) show, built from one [`StatusView`] of the running server.
//!
//! The spec: "a status page, describing its general configuration, configured feeds and
//! streams together with their parameters, current statuses and traffic statistics. Currently
//! connected clients can be displayed, however this should be configurable and *off* by
//! default." This module gathers that view; it does not render it (each view's own module
//! does) and it does not route (`http::routes` does).

pub mod api;
pub mod metrics;
pub mod page;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use chrono::{DateTime, Local};
use serde::Serialize;

use crate::control::Bus;
use crate::registry::Snapshot;
use crate::reload::{LastReload, ReloadLog};
use crate::stats::RuntimeState;

/// The version of the status API's schema: raised when a field is renamed, removed or changes
/// its meaning (adding a field does not raise it).
pub const SCHEMA_VERSION: u32 = 1;

/// Facts about the running server that no configuration changes: set once at start.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// When the server started (wall clock, for display).
    pub started_at: DateTime<Local>,
    /// When the server started (monotonic, for the uptime).
    pub started: Instant,
    /// The addresses it listens on (inherited sockets or bound ones); a reload may move them.
    pub listening: Arc<Mutex<Vec<SocketAddr>>>,
    /// How the last reload went.
    pub reloads: Arc<ReloadLog>,
    /// The bus the server's D-Bus control is on, once it is.
    pub dbus: Arc<OnceLock<Bus>>,
}

impl ServerFacts {
    /// The addresses it listens on now.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.listening
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Records the addresses it listens on after a reload moved them.
    pub fn set_listening(&self, addresses: Vec<SocketAddr>) {
        *self
            .listening
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = addresses;
    }

    /// The facts of a server starting now on `listening`.
    pub fn now(listening: Vec<SocketAddr>) -> Self {
        Self {
            started_at: Local::now(),
            started: Instant::now(),
            listening: Arc::new(Mutex::new(listening)),
            reloads: Arc::default(),
            dbus: Arc::default(),
        }
    }
}

/// Everything the status views show, as one consistent, serialisable tree.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The server itself and its general configuration.
    pub server: ServerView,
    /// Feeds, streams and (when shown) clients.
    #[serde(flatten)]
    pub state: RuntimeState,
}

/// The server and its general configuration.
#[derive(Debug, Clone, Serialize)]
pub struct ServerView {
    /// `voyandz`.
    pub name: &'static str,
    /// The program's version.
    pub version: &'static str,
    /// The server's current time (when this view was taken).
    pub time: DateTime<Local>,
    /// When the server started.
    pub started_at: DateTime<Local>,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// The addresses it listens on.
    pub listening: Vec<SocketAddr>,
    /// The configuration file.
    #[serde(serialize_with = "lossy_path")]
    pub config_path: PathBuf,
    /// Where children's stderr is also written, if anywhere.
    #[serde(serialize_with = "lossy_optional_path")]
    pub logdir: Option<PathBuf>,
    /// Whether the clients list is shown (`status.clients`; off by default, as the spec says).
    pub clients_shown: bool,
    /// How the last reload went; `null` until the config was reloaded.
    pub last_reload: Option<LastReload>,
    /// The bus its D-Bus control is on; `null` when it has none.
    pub dbus: Option<Bus>,
}

/// A path as a string even when it is not UTF-8 (serde refuses those, which would fail the
/// whole answer for one odd file name): undecodable bytes become U+FFFD.
fn lossy_path<S: serde::Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// [`lossy_path`] of a path that may be unset (`null`).
fn lossy_optional_path<S: serde::Serializer>(
    path: &Option<PathBuf>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match path {
        Some(path) => lossy_path(path, serializer),
        None => serializer.serialize_none(),
    }
}

impl StatusView {
    /// The view of `snapshot` now; its clients list is empty unless the config shows it.
    pub fn take(snapshot: &Snapshot, facts: &ServerFacts) -> Self {
        let mut state = snapshot.state();
        let config = &snapshot.config;
        let clients_shown = config.status.clients;
        if !clients_shown {
            state.clients.clear();
        }
        Self {
            schema: SCHEMA_VERSION,
            server: ServerView {
                name: env!("CARGO_PKG_NAME"),
                version: env!("CARGO_PKG_VERSION"),
                time: state.taken_at,
                started_at: facts.started_at,
                uptime_ms: u64::try_from(facts.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                listening: facts.listening(),
                config_path: config.path.clone(),
                logdir: config.logdir.clone(),
                clients_shown,
                last_reload: facts.reloads.last(),
                dbus: facts.dbus.get().copied(),
            },
            state,
        }
    }
}
