//! `type: shot` streams: the command runs once per request and its whole output (a picture)
//! is the response, as upstream voyandz does for screenshots.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::fanout::hub::Hub;
use crate::fanout::pipe::pipe_into;
use crate::process::child::{self, OutputError, SpawnError, StderrBudget};
use tokio_util::task::AbortOnDropHandle;

/// The longest a shot may take: a decoder waiting for the next keyframe of a slow GOP needs
/// seconds; a stuck command must not hold the client for ever.
pub const SHOT_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest shot kept: far above any still picture, a bound on a runaway command.
pub const SHOT_BYTES_MAX: u64 = 64 << 20;

/// Why a shot produced no picture.
#[derive(Debug, thiserror::Error)]
pub enum ShotError {
    /// The command could not start.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// It gave no picture.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Runs `argv` with `feed` on its stdin and returns everything it wrote to stdout.
pub async fn run(
    argv: &[String],
    feed: Option<Arc<Hub>>,
    stderr_file: Option<PathBuf>,
    stderr_budget: StderrBudget,
) -> Result<Bytes, ShotError> {
    let spec = child::Spec {
        argv,
        stdin: feed.is_some(),
        pipes: &[],
        stderr_file,
        stderr_budget,
    };
    let mut child = child::spawn(&spec)?;
    let pipe = match (feed, child.stdin.take()) {
        (Some(feed), Some(stdin)) => {
            let subscriber = feed.subscribe();
            // Aborted when dropped: a client leaving mid-shot ends the feeding too.
            Some(AbortOnDropHandle::new(tokio::spawn(async move {
                pipe_into(subscriber, stdin, None).await
            })))
        }
        _ => None,
    };
    let output = child.output(SHOT_BYTES_MAX, SHOT_TIMEOUT).await;
    drop(pipe);
    Ok(output?)
}
