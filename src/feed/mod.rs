//! Feeds: the inputs (a command's stdout, a file or a named pipe) that streams read.
//!
//! A feed has one hub and one supervisor however many streams use it: the spec's "when more
//! than one stream needs a single feed, this single feed must be used for all streams". Its
//! lifecycle (on-demand, timeout, continuous, resurrection) is [`crate::lifecycle`]'s.

pub mod source;

use std::path::Path;
use std::sync::Arc;

use crate::config::{FeedConfig, FeedInput};
use crate::fanout::hub::Hub;
use crate::lifecycle::{Input, Job, Kind};
use crate::process::child::StderrBudget;

/// The supervisor job of a feed; `parent` is the hub of the feed piped into its stdin.
pub fn job(config: &FeedConfig, parent: Option<Arc<Hub>>, logdir: Option<&Path>) -> Job {
    Job {
        kind: Kind::Feed,
        name: config.name.clone(),
        input: match &config.input {
            FeedInput::Command(command) => Input::Command {
                argv: command.argv.clone(),
                stdin: parent,
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
