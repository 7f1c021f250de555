//! voyandzctl's command line, in the library so that the man page and shell completions are
//! generated from it (`tools/docgen`).

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use super::exit;
use crate::control::Bus;
use crate::lifecycle::Kind;

/// Controls a running voyandz over D-Bus.
///
/// It talks to org.voyandz.Voyandz1 on the system bus, or on the user's session bus with
/// --bus session. Reading (status, feeds, streams, watch, screenshot) is open to everyone; changing
/// anything (start, stop, restart, disconnect, reload) is allowed to root and to whom polkit
/// allows org.voyandz.Voyandz1.manage.
#[derive(Debug, Parser)]
#[command(name = "voyandzctl", version, after_help = exit::help())]
pub struct Cli {
    /// Where voyandz is: on the system bus (as systemd runs it) or the user's session bus.
    #[arg(long, value_name = "BUS", value_enum, default_value_t = Bus::System, global = true)]
    pub bus: Bus,
    /// Do not ask for a password: a change that polkit allows only after authentication is
    /// refused instead. Without it, a change asked from a terminal by a user other than root
    /// starts polkit's text agent (pkttyagent), which prompts there if polkit asks.
    #[arg(long, global = true)]
    pub no_ask_password: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// voyandzctl's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Shows the server and how many feeds and streams are in which state.
    ///
    /// Its version, uptime, config file and last reload, and its feeds and streams counted
    /// by state.
    Status(Format),
    /// Lists the feeds.
    ///
    /// Each feed's state, mode, process id, uptime, restarts, subscribers, bytes read, and
    /// how its last run ended.
    Feeds(Format),
    /// Lists the streams.
    ///
    /// Each stream's state, clients, container, bytes sent and URLs.
    Streams(Format),
    /// Starts a feed, or ends a stream's stop.
    ///
    /// A started feed runs, with or without clients, until it is stopped or a reload
    /// changes it.
    Start(Target),
    /// Stops a feed or stream, and keeps it stopped until started.
    ///
    /// Its clients' connections end; new clients get 503.
    Stop(Target),
    /// Replaces a feed's or stream's process; clients stay.
    Restart(Target),
    /// Disconnects every client of a stream and prints how many there were.
    ///
    /// The stream goes on, and serves new clients.
    Disconnect {
        /// The stream's name.
        stream: String,
    },
    /// Reloads the config file, as SIGHUP does, and prints what changed.
    ///
    /// A config with an error is refused with its first problem (exit status 1), and the
    /// running config stays in force.
    Reload,
    /// Writes a picture of a stream, as its /pic URL gives it.
    ///
    /// Without -o the picture goes to stdout, which must then not be a terminal (exit status
    /// 2 otherwise).
    Screenshot(Screenshot),
    /// Prints each change as it happens, until Ctrl-C.
    ///
    /// One line per change, e.g. `2026-12-07 02:40:01.123 feed cam: State idle -> running`:
    /// a property of a feed, stream or the server took a new value, a reload added or
    /// removed a feed or stream, the server stopped or started. Byte counters change at
    /// most once a second. A line on stderr says when it has started watching.
    Watch(Format),
}

/// How to print what was read.
#[derive(Debug, Clone, Copy, Args)]
pub struct Format {
    /// Print JSON for scripts (`watch`: one object per line).
    #[arg(long)]
    pub json: bool,
}

/// A feed or a stream, by name.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// What it is.
    #[arg(value_enum)]
    pub kind: Kind,
    /// Its name in the config.
    pub name: String,
}

/// `feed` or `stream` on the command line.
impl Command {
    /// Whether it changes something, which polkit may allow only after authentication.
    pub fn changes(&self) -> bool {
        matches!(
            self,
            Command::Start(_)
                | Command::Stop(_)
                | Command::Restart(_)
                | Command::Disconnect { .. }
                | Command::Reload
        )
    }
}

impl ValueEnum for Kind {
    fn value_variants<'a>() -> &'a [Self] {
        &[Kind::Feed, Kind::Stream]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Kind::Feed => PossibleValue::new("feed")
                .help("A feed: a command or file whose output streams relay or read"),
            Kind::Stream => {
                PossibleValue::new("stream").help("A stream: what HTTP clients get at its URLs")
            }
        })
    }
}

/// `screenshot`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct Screenshot {
    /// The stream's name.
    pub stream: String,
    /// Write the picture to FILE (`-`: stdout, even a terminal).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// PNG instead of JPEG.
    #[arg(long)]
    pub png: bool,
    /// JPEG quality in percent, 1 to 100 (default: the server's default).
    #[arg(long, value_name = "N", conflicts_with = "png",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub quality: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn targets_read_as_kind_then_name() {
        let cli = Cli::parse_from(["voyandzctl", "stop", "stream", "ts"]);
        let Command::Stop(target) = cli.command else {
            panic!("not a stop: {cli:?}");
        };
        assert_eq!((target.kind, target.name.as_str()), (Kind::Stream, "ts"));
        assert_eq!(cli.bus, Bus::System);
        let quality_with_png = ["voyandzctl", "screenshot", "ts", "--png", "--quality", "50"];
        assert!(Cli::try_parse_from(quality_with_png).is_err());
    }
}
