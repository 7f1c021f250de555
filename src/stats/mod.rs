//! Per feed, stream and client counters and states, and the plain views the status readers
//! (status page, JSON API, metrics, D-Bus) get of them.
//!
//! The data path only ever adds to an atomic here: bytes read ([`RunStats::bytes_in`]) and
//! bytes sent to a client ([`ClientEntry::sent`]). States change under a short lock at the
//! rare moments a supervisor changes what it does (a start, an exit, a backoff), never per
//! chunk. This module decides nothing: [`crate::lifecycle`] sets the states,
//! [`crate::registry`] assembles the views.

mod clients;
mod run;
mod traffic;
mod view;

use std::time::Duration;

pub use clients::{ClientEntry, ClientInfo, ClientStats, ClientView, Clients};
pub use run::{RunStats, State};
pub use traffic::{OpenConnection, Traffic, TrafficView};
pub use view::{FramingView, RunView, RuntimeState, StreamView};

/// A duration in whole milliseconds, as every view gives durations.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
