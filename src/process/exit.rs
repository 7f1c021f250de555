//! Why a run of a feed or stream ended, as a type: the log, the clients waiting for a first
//! byte and the status readers all render it from here instead of passing strings around.
//!
//! This module only describes an end; deciding what to do about it (resurrect, give up) is
//! [`crate::lifecycle`]'s and [`super::restart`]'s job.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use serde::Serialize;

/// How one run of a feed or stream ended by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Exit {
    /// The command could not be started.
    Spawn {
        /// The command line.
        command: String,
        /// Why (the OS error).
        error: String,
    },
    /// The command exited with a status code.
    Status {
        /// Its exit code.
        code: i32,
        /// The last lines of its stderr (joined by " | "), empty when it wrote none.
        stderr_tail: String,
    },
    /// The command was killed by a signal.
    Signal {
        /// The signal number.
        signal: i32,
        /// How the OS describes the end (`signal: 9 (SIGKILL)`).
        status: String,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// Its input ended: the end of a file feed, or the feed piped into a stream ended for good.
    InputEnded {
        /// What ended (a path, or the feed).
        what: String,
    },
    /// Reading or waiting for it failed.
    Io {
        /// What was being done (`cannot open /dev/video0`).
        action: String,
        /// The OS error.
        error: String,
    },
}

impl Exit {
    /// A child's end from its wait status and the tail of its stderr.
    pub fn from_status(status: std::io::Result<ExitStatus>, stderr_tail: String) -> Self {
        match status {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Status { code, stderr_tail },
                (None, signal) => Exit::Signal {
                    signal: signal.unwrap_or(0),
                    status: status.to_string(),
                    stderr_tail,
                },
            },
            Err(error) => Exit::Io {
                action: "could not be waited for".to_string(),
                error: error.to_string(),
            },
        }
    }

    /// An I/O failure while doing `action`.
    pub fn io(action: String, error: &std::io::Error) -> Self {
        Exit::Io {
            action,
            error: error.to_string(),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let with_tail =
            |f: &mut std::fmt::Formatter<'_>, what: &dyn std::fmt::Display, tail: &str| {
                if tail.is_empty() {
                    write!(f, "{what}")
                } else {
                    write!(f, "{what}: {tail}")
                }
            };
        match self {
            Exit::Spawn { command, error } => write!(f, "cannot run {command}: {error}"),
            Exit::Status { code, stderr_tail } => {
                with_tail(f, &format_args!("exit status: {code}"), stderr_tail)
            }
            Exit::Signal {
                status,
                stderr_tail,
                ..
            } => with_tail(f, status, stderr_tail),
            Exit::InputEnded { what } => write!(f, "reached the end of {what}"),
            Exit::Io { action, error } => write!(f, "{action}: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_as_before_with_its_stderr_tail() {
        let exited = Exit::from_status(Ok(ExitStatus::from_raw(1 << 8)), "boom".into());
        assert_eq!(
            exited,
            Exit::Status {
                code: 1,
                stderr_tail: "boom".into()
            }
        );
        assert_eq!(exited.to_string(), "exit status: 1: boom");
    }

    #[test]
    fn a_signal_is_its_own_kind() {
        let killed = Exit::from_status(Ok(ExitStatus::from_raw(9)), String::new());
        assert!(matches!(killed, Exit::Signal { signal: 9, .. }));
        assert_eq!(killed.to_string(), "signal: 9 (SIGKILL)");
    }

    #[test]
    fn it_serializes_with_a_kind_tag() {
        let ended = Exit::InputEnded { what: "/x".into() };
        let yaml = serde_saphyr::to_string(&ended).expect("serializable");
        assert!(yaml.contains("kind: input_ended"), "{yaml}");
    }
}
