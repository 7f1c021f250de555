//! `type: shot` streams: the command runs once per request and its whole output (a picture)
//! is the response, as upstream voyandz does for screenshots.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use crate::fanout::hub::Hub;
use crate::fanout::pipe::pipe_into;
use crate::process::child::{self, SpawnError, StderrBudget};

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
    /// It ran but wrote nothing.
    #[error("command wrote nothing: {0}")]
    Empty(String),
    /// It did not finish in time.
    #[error("command did not finish within {0:?}")]
    Timeout(Duration),
    /// Reading its output failed.
    #[error("cannot read the command's output: {0}")]
    Read(std::io::Error),
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
        stderr_file,
        stderr_budget,
    };
    let mut child = child::spawn(&spec)?;
    let pipe = match (feed, child.stdin.take()) {
        (Some(feed), Some(stdin)) => {
            let subscriber = feed.subscribe();
            Some(tokio::spawn(async move {
                pipe_into(subscriber, stdin, None).await
            }))
        }
        _ => None,
    };
    let mut stdout = child
        .stdout
        .take()
        .expect("stdout is piped")
        .take(SHOT_BYTES_MAX);
    let mut output = Vec::new();
    let read = tokio::time::timeout(SHOT_TIMEOUT, stdout.read_to_end(&mut output)).await;
    if let Some(pipe) = pipe {
        pipe.abort();
    }
    let tail = child.stderr_tail().clone();
    match read {
        Err(_) => {
            child.stop().await;
            Err(ShotError::Timeout(SHOT_TIMEOUT))
        }
        Ok(Err(error)) => {
            child.stop().await;
            Err(ShotError::Read(error))
        }
        Ok(Ok(_)) => {
            let status = tokio::time::timeout(child::STOP_GRACE, child.wait()).await;
            if status.is_err() {
                child.stop().await;
            }
            if output.is_empty() {
                let status = match status {
                    Ok(Ok(status)) => status.to_string(),
                    _ => "still running".to_string(),
                };
                return Err(ShotError::Empty(format!("{status}: {}", tail.text())));
            }
            Ok(Bytes::from(output))
        }
    }
}
