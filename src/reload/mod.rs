//! Live reload: the config file is read again (on SIGHUP, or when [`watch`] sees it change),
//! validated in full, and applied as a [`diff`] on the running registry. Feeds and streams
//! whose definition did not change keep running with their clients; changed ones start
//! afresh; removed ones stop and their clients are closed; new ones start. A config with an
//! error changes nothing: its problems are logged and shown in the status views
//! ([`ReloadLog`]), and the running config stays in force. A deleted config file is logged
//! and changes nothing; its re-creation reloads.

pub mod diff;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Local};
use serde::Serialize;

use crate::config::{self, ConfigError};
use crate::registry::Registry;
use diff::Diff;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// SIGHUP (`systemctl reload`).
    Signal,
    /// The file changed (inotify).
    FileChanged,
    /// A D-Bus `Reload()` (`voyandzctl reload`).
    Bus,
}

/// How the last reload went, for the status views and `systemctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastReload {
    /// When it ran.
    pub at: DateTime<Local>,
    /// What asked for it.
    pub trigger: Trigger,
    /// Whether the new config is in force.
    pub ok: bool,
    /// One line: what changed, or the first problem (`FILE:LINE:COL: KEY: MESSAGE`) and how
    /// many more there are.
    pub message: String,
}

impl LastReload {
    /// `ok at 12:00:03` or `failed at 12:00:03: …`, for a status line.
    pub fn summary(&self) -> String {
        let at = self.at.format("%H:%M:%S");
        if self.ok {
            format!("ok at {at}")
        } else {
            format!("failed at {at}: {}", self.message)
        }
    }
}

/// The last reload, shared with the status views.
#[derive(Debug, Default)]
pub struct ReloadLog {
    last: Mutex<Option<LastReload>>,
}

impl ReloadLog {
    /// The last reload, if there was one.
    pub fn last(&self) -> Option<LastReload> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, reload: LastReload) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(reload);
    }
}

/// Reloads one config file into one registry.
pub struct Reloader {
    path: PathBuf,
    /// The text of the config in force, to skip events that changed nothing (a `touch`).
    applied: Mutex<Option<String>>,
}

impl Reloader {
    /// A reloader of `path`, whose config in force was read from `text`.
    pub fn new(path: &Path, text: Option<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            applied: Mutex::new(text),
        }
    }

    /// Reads the file again and applies it to `registry`; returns how it went, or `None` when
    /// nothing was tried (the file is gone, or a change event left its text as it was).
    pub fn reload(
        &self,
        trigger: Trigger,
        registry: &Registry,
        log: &ReloadLog,
    ) -> Option<LastReload> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    config = %self.path.display(),
                    "the config file is gone: the running config stays in force until it is back"
                );
                return None;
            }
            Err(source) => {
                let error = ConfigError::Read {
                    path: self.path.clone(),
                    source,
                };
                return Some(self.failed(trigger, error, log));
            }
        };
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        if trigger == Trigger::FileChanged && applied.as_deref() == Some(text.as_str()) {
            return None;
        }
        crate::systemd::notify::reloading();
        tracing::info!(config = %self.path.display(), ?trigger, "reloading the configuration");
        let loaded = config::load_str(&self.path, &text).and_then(|loaded| {
            create_logdir(&loaded.config)?;
            Ok(loaded)
        });
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => return Some(self.failed(trigger, error, log)),
        };
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        let previous = registry.load();
        let diff = Diff::between(&previous.config, &loaded.config);
        registry.swap(loaded.config, &|kind, name| diff.keeps(kind, name));
        previous.retire(&registry.load());
        *applied = Some(text);
        let message = describe(&diff);
        tracing::info!(
            kept = diff.kept_feeds.len() + diff.kept_streams.len(),
            restarted = diff.restarted.len(),
            added = diff.added.len(),
            removed = diff.removed.len(),
            "reloaded: {message}"
        );
        let reload = LastReload {
            at: Local::now(),
            trigger,
            ok: true,
            message,
        };
        log.record(reload.clone());
        Some(reload)
    }

    /// A reload that changed nothing because of `error`.
    fn failed(&self, trigger: Trigger, error: ConfigError, log: &ReloadLog) -> LastReload {
        let lines: Vec<String> = error.to_string().lines().map(str::to_owned).collect();
        for line in &lines {
            tracing::error!("{line}");
        }
        tracing::error!(config = %self.path.display(), "reload failed: the running config stays in force");
        let first = lines.first().cloned().unwrap_or_default();
        let message = match lines.len() {
            0 | 1 => first,
            n => format!("{first} (and {} more)", n - 1),
        };
        let reload = LastReload {
            at: Local::now(),
            trigger,
            ok: false,
            message,
        };
        log.record(reload.clone());
        reload
    }
}

/// Creates the config's `logdir`, as the start does.
fn create_logdir(config: &config::Config) -> Result<(), ConfigError> {
    let Some(logdir) = &config.logdir else {
        return Ok(());
    };
    std::fs::create_dir_all(logdir).map_err(|error| ConfigError::Invalid {
        path: config.path.clone(),
        problems: vec![config::Problem {
            file: config.path.clone(),
            line: None,
            column: None,
            key: "logdir".to_owned(),
            message: format!("cannot create {}: {error}", logdir.display()),
            via: Vec::new(),
        }],
    })
}

/// `restarted: feed a; added: stream b` or `nothing changed`.
fn describe(diff: &Diff) -> String {
    let parts: Vec<String> = [
        ("restarted", &diff.restarted),
        ("added", &diff.added),
        ("removed", &diff.removed),
    ]
    .into_iter()
    .filter(|(_, names)| !names.is_empty())
    .map(|(what, names)| {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        format!("{what}: {}", names.join(", "))
    })
    .collect();
    if parts.is_empty() {
        "nothing that runs changed".to_owned()
    } else {
        parts.join("; ")
    }
}
