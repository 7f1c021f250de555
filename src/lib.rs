//! voyandz: a real-time audio/video HTTP streaming server.
//!
//! Bytes take one path: a child's stdout (or a file, or a named pipe) is read by
//! [`feed::source`], published into a [`fanout::hub::Hub`] as shared `Bytes`, and written by
//! [`http`] to every client's socket ([`http::body`]), or piped into the stdin of a stream's
//! command ([`fanout::pipe`]) whose own output goes through a hub of its own.
//! Everything else is control around that path: [`config`] loads and validates the YAML file;
//! [`registry`] owns the running [`feed`]s and [`stream`]s; [`lifecycle`] starts, stops and
//! resurrects each of them as demand comes and goes; [`process`] spawns and reaps children;
//! [`systemd`] takes the listening socket; [`logging`] formats every line; [`panics`] keeps a
//! panicking container parser from taking its stream down; [`cli`] is the command line; and
//! [`app`] wires it all together and owns shutdown.

pub mod app;
pub mod cli;
pub mod config;
pub mod container;
pub mod fanout;
pub mod feed;
pub mod http;
pub mod lifecycle;
pub mod logging;
pub mod panics;
pub mod process;
pub mod registry;
pub mod screenshot;
pub mod stream;
pub mod systemd;
