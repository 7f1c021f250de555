//! Feeds: the inputs (a command's stdout, a file or a named pipe) that streams read.
//!
//! A feed has one hub and one supervisor however many streams use it: the spec's "when more
//! than one stream needs a single feed, this single feed must be used for all streams". Its
//! lifecycle (on-demand, timeout, continuous, resurrection) is [`crate::lifecycle`]'s.
//!
//! A feed's container is decided by the feed alone (its config has no mimetype): its hub
//! sniffs each run's first bytes, so that editing a stream that relays it never changes it.

pub mod source;

use std::path::Path;
use std::sync::Arc;

use crate::config::{FeedConfig, FeedInput};
use crate::container::select;
use crate::fanout::hub::Hub;
use crate::lifecycle::owner::{self, Control, Handle};
use crate::lifecycle::{Input, Job, Kind, Tasks};
use crate::process::child::StderrBudget;

/// A running feed: its hub and the owner task that runs it.
#[derive(Debug)]
pub struct Feed {
    /// Where its bytes are published.
    pub hub: Arc<Hub>,
    /// Its owner task (commands, state, counters).
    pub handle: Handle,
}

/// A feed's hub: container-aware whenever its first bytes show a container voyandz
/// understands (a command reading it then starts at a clean boundary).
pub fn hub(config: &FeedConfig) -> Arc<Hub> {
    Hub::framed(&config.name, select::sniffing_factory())
}

impl Feed {
    /// Starts the owner task of `config` into `hub` among `tasks`; `parent` is the hub of
    /// the feed piped into its stdin.
    pub fn start(
        config: &FeedConfig,
        hub: Arc<Hub>,
        parent: Option<Arc<Hub>>,
        logdir: Option<&Path>,
        tasks: &Tasks,
    ) -> Self {
        let control = Control::new(&tasks.cancel);
        let handle = owner::spawn(
            job(config, parent, logdir),
            Arc::clone(&hub),
            tasks,
            control,
        );
        Self { hub, handle }
    }
}

/// The supervisor job of a feed; `parent` is the hub of the feed piped into its stdin.
fn job(config: &FeedConfig, parent: Option<Arc<Hub>>, logdir: Option<&Path>) -> Job {
    Job {
        kind: Kind::Feed,
        name: config.name.clone(),
        input: match &config.input {
            FeedInput::Command(command) => Input::Command {
                argv: command.argv.clone(),
                stdin: parent,
                pipes: Vec::new(),
            },
            FeedInput::File(path) => Input::File(path.clone()),
        },
        mode: config.mode,
        resurrect: config.resurrect,
        once: false,
        stderr_file: logdir.map(|dir| dir.join(format!("feed-{}.log", config.name))),
        stderr_budget: StderrBudget::default(),
    }
}
