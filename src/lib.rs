//! voyandz: a real-time audio/video HTTP streaming server.
//!
//! Bytes take one path: a child's stdout (or a file, or a named pipe) is read by
//! [`feed::source`], published into a [`fanout::hub::Hub`] as shared `Bytes`, and written by
//! [`http`] to every client's socket ([`http::body`]), or piped into the stdin of a stream's
//! command ([`fanout::pipe`]) whose own output goes through a hub of its own.
//! Everything else is control around that path: [`config`] loads and validates the YAML file;
//! [`registry`] owns the running [`feed`]s and [`stream`]s as a snapshot swapped atomically;
//! [`lifecycle`] starts, stops and resurrects each of them as demand comes and goes, in one
//! owner task per feed or stream that also takes commands; [`stats`] keeps their states and
//! counters and those of every client, read as one plain view; [`process`] spawns and reaps
//! children and says why they ended; [`status`] gathers what the status page, API and
//! metrics show; [`panics`] keeps a panicking container parser from
//! taking its stream down; [`systemd`] takes the listening socket and writes to the journal;
//! [`logging`] formats every line and sends it to stderr or the journal; [`control`] puts the
//! server on D-Bus, and [`ctl`] is `voyandzctl`, its client there; [`cli`] is the command
//! line; and [`app`] wires it all together and owns shutdown.

pub mod app;
pub mod cli;
pub mod config;
pub mod container;
pub mod control;
pub mod ctl;
pub mod fanout;
pub mod feed;
pub mod http;
pub mod lifecycle;
pub mod logging;
pub mod panics;
pub mod process;
pub mod registry;
pub mod reload;
pub mod screenshot;
pub mod stats;
pub mod status;
pub mod stream;
pub mod systemd;
