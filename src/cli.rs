//! The daemon's command line.

use std::path::PathBuf;

use clap::Parser;

use crate::control::BusChoice;
use crate::logging::Output;

/// voyandz: serves live audio and video over HTTP with minimal latency.
#[derive(Debug, Parser)]
#[command(name = "voyandz", version, about)]
pub struct Cli {
    /// Configuration file (default: $VOYANDZ_CONFFILE, /etc/voyandz.ini, /etc/voyandz).
    #[arg(short = 'f', value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print it in its final form and exit (0 when valid).
    #[arg(long)]
    pub check: bool,
    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides it).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: tracing::Level,
    /// Where to log: the journal when systemd connected stderr to it (auto), stderr, or the
    /// journal (natively, with priorities and FEED, STREAM, CLIENT, CHILD_PID fields).
    #[arg(long = "log", value_name = "OUTPUT", value_enum, default_value_t = Output::Auto)]
    pub log: Output,
    /// D-Bus control (org.voyandz.Voyandz1, for voyandzctl and busctl): the system bus when
    /// systemd started the server (auto), system, session, or none.
    #[arg(long, value_name = "BUS", value_enum, default_value_t = BusChoice::Auto)]
    pub bus: BusChoice,
}
