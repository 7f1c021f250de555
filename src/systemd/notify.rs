//! sd-notify: tells systemd, when it started the server with `NOTIFY_SOCKET`, that the server
//! is ready, reloading or stopping, what it is doing (`STATUS=`), and that it is alive
//! (`WATCHDOG=1`). Without `NOTIFY_SOCKET` every call does nothing.
//!
//! The watchdog ping is not sent from a timer of its own: the server's main loop sends it
//! ([`Watchdog::due`]) after reading the runtime state the way a request does, so a server
//! whose runtime or registry hangs stops pinging and systemd restarts it.

use std::time::Duration;

use sd_notify::NotifyState;

/// Sends `states`; a failure is only a debug line, never fatal (systemd may be gone during
/// shutdown, and a lost status line harms nobody).
fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::debug!(%error, "cannot notify systemd");
    }
}

/// `READY=1` with the first status line: the config is loaded and the sockets serve.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1` with the monotonic clock, as systemd (253 and later) requires.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// `READY=1` after a reload, with the new status line.
pub fn reloaded(status: &str) {
    ready(status);
}

/// `STOPPING=1`: the server is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// `STATUS=`: one line for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// The watchdog systemd asked for (`WatchdogSec=`, passed as `WATCHDOG_USEC`).
#[derive(Debug, Clone, Copy)]
pub struct Watchdog {
    /// How often to ping: half of systemd's timeout, as sd_watchdog_enabled(3) advises.
    pub interval: Duration,
}

impl Watchdog {
    /// The watchdog of this process, if systemd set one.
    pub fn from_env() -> Option<Self> {
        let timeout = sd_notify::watchdog_enabled()?;
        Some(Self {
            interval: (timeout / 2).max(Duration::from_millis(1)),
        })
    }

    /// `WATCHDOG=1`: the main loop has just proven it runs.
    pub fn ping(&self) {
        send(&[NotifyState::Watchdog]);
    }
}
