//! Lifecycle of one feed or stream: start it when it is wanted, stop it when it is not,
//! resurrect it when it dies.
//!
//! A hub's *demand* (its number of subscribers: clients, or the stdin pipes of commands that
//! read it) drives everything. On-demand producers start with their first subscriber and stop
//! when the last one leaves; timeout mode waits that long first; continuous ones run for ever.
//! Because a stream's command subscribes to its feed only while it runs, demand propagates
//! along feed chains by itself. This module does not know about HTTP.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tracing::Instrument;

use crate::config::Mode;
use crate::fanout::hub::Hub;
use crate::fanout::join::Join;
use crate::fanout::pipe::{PipeEnd, pipe_into};
use crate::feed::source::{self, WriterGone};
use crate::process::child::{self, StderrBudget};
use crate::process::restart::{LogAs, Resurrection};

/// Where feed, stream and client tasks run, and how they are all told to stop.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    /// Every task is spawned here, so that shutdown can wait for all of them.
    pub tracker: TaskTracker,
    /// Cancelled when the server stops.
    pub cancel: CancellationToken,
}

/// What produces the bytes.
#[derive(Debug, Clone)]
pub enum Input {
    /// A command writing to stdout, optionally reading another hub on stdin.
    Command {
        /// The command's words.
        argv: Vec<String>,
        /// The feed piped into its stdin.
        stdin: Option<Arc<Hub>>,
    },
    /// A file or named pipe.
    File(PathBuf),
}

/// What a supervisor runs, for log lines and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A feed.
    Feed,
    /// A stream.
    Stream,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Feed => "feed",
            Kind::Stream => "stream",
        })
    }
}

/// Everything a supervisor needs to run one feed or stream.
#[derive(Clone)]
pub struct Job {
    /// A feed or a stream.
    pub kind: Kind,
    /// The feed's or stream's name.
    pub name: String,
    /// What produces the bytes.
    pub input: Input,
    /// When it runs.
    pub mode: Mode,
    /// Start it again when it dies while wanted.
    pub resurrect: bool,
    /// Exit for good once it is no longer wanted (one process per client).
    pub once: bool,
    /// Where the command's stderr is also written.
    pub stderr_file: Option<PathBuf>,
    /// The log budget of its stderr, shared by every process of the same feed or stream.
    pub stderr_budget: StderrBudget,
}

/// How one run ended.
enum RunEnd {
    /// The server is stopping.
    Cancelled,
    /// Nobody wants it any more; it was stopped.
    Idle,
    /// It ended by itself.
    Exited {
        /// Why, for the log and for clients waiting for a first byte.
        reason: String,
        /// Bytes it delivered.
        produced: u64,
        /// Its input (the feed on its stdin) ended for good.
        input_ended: bool,
    },
}

/// Runs `job` into `hub` until `cancel` fires. Never returns early because of a failure.
pub async fn supervise(job: Job, hub: Arc<Hub>, cancel: CancellationToken) {
    let mut demand = hub.demand();
    let mut resurrection = Resurrection::default();
    loop {
        if job.mode != Mode::Continuous {
            if *demand.borrow() == 0 {
                // Idle: the next client starts a fresh run, whose failure (if any) it must
                // hear of, not an old one.
                hub.forget_failure();
            }
            if !wait_for_demand(&mut demand, &cancel).await {
                return;
            }
        }
        let started = Instant::now();
        let end = run_once(&job, &hub, &mut demand, &cancel, &resurrection).await;
        let (reason, produced, input_ended) = match end {
            RunEnd::Cancelled => return,
            RunEnd::Idle => {
                hub.reset();
                resurrection = Resurrection::default();
                if job.once {
                    return;
                }
                continue;
            }
            RunEnd::Exited {
                reason,
                produced,
                input_ended,
            } => (reason, produced, input_ended),
        };
        if produced == 0 {
            hub.fail(format!("{} \"{}\" {reason}", job.kind, job.name));
        }
        if input_ended || !job.resurrect {
            if produced == 0 {
                tracing::warn!(%reason, "failed; not resurrected");
            } else {
                tracing::info!(%reason, "ended for good; not resurrected");
            }
            hub.end();
            // A continuous producer ran because the server started, and that happens once;
            // an on-demand one starts afresh for the next client after the current ones left.
            if job.mode == Mode::Continuous {
                cancel.cancelled().await;
                return;
            }
            if !wait_for_no_demand(&mut demand, &cancel).await || job.once {
                return;
            }
            continue;
        }
        let now = Instant::now();
        let verdict = resurrection.record_exit(now - started, produced, now);
        match verdict.log {
            Some(LogAs::First) => tracing::warn!(
                %reason,
                retry_in = ?verdict.delay,
                "died; resurrecting"
            ),
            Some(LogAs::Summary { failures }) => tracing::warn!(
                %reason,
                failures,
                retry_in = ?verdict.delay,
                "still failing; resurrecting"
            ),
            None => {}
        }
        if !sleep_while_wanted(verdict.delay, &job, &mut demand, &cancel).await {
            return;
        }
    }
}

/// Waits until somebody subscribes; false when cancelled.
async fn wait_for_demand(demand: &mut watch::Receiver<usize>, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        wanted = demand.wait_for(|count| *count > 0) => wanted.is_ok(),
    }
}

/// Waits until every subscriber left; false when cancelled.
async fn wait_for_no_demand(
    demand: &mut watch::Receiver<usize>,
    cancel: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        idle = demand.wait_for(|count| *count == 0) => idle.is_ok(),
    }
}

/// Sleeps `delay` before a resurrection; false when cancelled. Returns early (true) when the
/// demand went away, so the next loop waits for new demand instead.
async fn sleep_while_wanted(
    delay: Duration,
    job: &Job,
    demand: &mut watch::Receiver<usize>,
    cancel: &CancellationToken,
) -> bool {
    let idle = async {
        if job.mode == Mode::Continuous {
            std::future::pending::<()>().await
        } else {
            let _idle = demand.wait_for(|count| *count == 0).await.is_ok();
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
        _ = idle => true,
    }
}

/// Waits until the producer is no longer wanted: no subscriber for the mode's linger time.
async fn unwanted(mode: Mode, demand: &mut watch::Receiver<usize>) {
    let linger = match mode {
        Mode::Continuous => return std::future::pending().await,
        Mode::OnDemand => Duration::ZERO,
        Mode::Timeout(linger) => linger,
    };
    loop {
        let hub_gone = demand.wait_for(|count| *count == 0).await.is_err();
        if hub_gone {
            return std::future::pending().await;
        }
        let deadline = tokio::time::sleep(linger);
        let hub_gone = tokio::select! {
            _ = deadline => return,
            back = demand.wait_for(|count| *count > 0) => back.is_err(),
        };
        if hub_gone {
            return std::future::pending().await;
        }
    }
}

async fn run_once(
    job: &Job,
    hub: &Arc<Hub>,
    demand: &mut watch::Receiver<usize>,
    cancel: &CancellationToken,
    resurrection: &Resurrection,
) -> RunEnd {
    match &job.input {
        Input::File(path) => run_file(job, path, hub, demand, cancel).await,
        Input::Command { argv, stdin } => {
            hub.start_run();
            let spec = child::Spec {
                argv,
                stdin: stdin.is_some(),
                stderr_file: job.stderr_file.clone(),
                stderr_budget: job.stderr_budget.clone(),
            };
            let mut child = match child::spawn(&spec) {
                Ok(child) => child,
                Err(error) => {
                    return RunEnd::Exited {
                        reason: error.to_string(),
                        produced: 0,
                        input_ended: false,
                    };
                }
            };
            if resurrection.failing() {
                tracing::debug!(pid = child.pid(), "started");
            } else {
                tracing::info!(pid = child.pid(), command = %argv.join(" "), "started");
            }
            let stdout = child.stdout.take().expect("stdout is piped");
            // In the run's span: the pump's log lines (a parser's panic) name the stream.
            let mut pump = AbortOnDropHandle::new(tokio::spawn(
                {
                    let hub = Arc::clone(hub);
                    async move { source::pump(stdout, &hub).await }
                }
                .in_current_span(),
            ));
            let mut pipe = match (stdin, child.stdin.take()) {
                (Some(feed), Some(writer)) => {
                    // A clean start for the command's demuxer: the header, then whole units.
                    let subscriber = feed.subscribe_with(Join::Header);
                    let hub = Arc::clone(hub);
                    Some(AbortOnDropHandle::new(tokio::spawn(async move {
                        pipe_into(subscriber, writer, Some(&hub)).await
                    })))
                }
                _ => None,
            };
            let mut input_ended = false;
            let unwanted = unwanted(job.mode, demand);
            tokio::pin!(unwanted);
            let status = loop {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {
                        stop_all(child, pump, pipe).await;
                        return RunEnd::Cancelled;
                    }
                    _ = &mut unwanted => {
                        stop_all(child, pump, pipe).await;
                        tracing::info!("stopped: no more clients");
                        return RunEnd::Idle;
                    }
                    ended = async { pipe.as_mut().expect("guarded").await }, if pipe.is_some() => {
                        pipe = None;
                        input_ended = matches!(ended, Ok(PipeEnd::FeedEnded));
                    }
                    status = child.wait() => break status,
                }
            };
            // The rest of its output is already in the pipe: read it, but never wait on a
            // descendant that escaped the process group and keeps stdout open.
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {}
                _ = &mut pump => {}
                _ = tokio::time::sleep(child::STOP_GRACE) => {}
            };
            drop(pipe);
            RunEnd::Exited {
                reason: describe_exit(status, &child.stderr_tail().text()),
                // From the hub: a read loop cut short still delivered what it published.
                produced: hub.run_bytes(),
                input_ended,
            }
        }
    }
}

/// Stops a run: its input pipe, its process group, and its read loop, which is awaited so
/// that no stale chunk reaches the hub after this returns.
async fn stop_all(
    child: child::Child,
    pump: AbortOnDropHandle<std::io::Result<u64>>,
    pipe: Option<AbortOnDropHandle<PipeEnd>>,
) {
    drop(pipe);
    child.stop().await;
    pump.abort();
    let _ = pump.await;
}

async fn run_file(
    job: &Job,
    path: &std::path::Path,
    hub: &Arc<Hub>,
    demand: &mut watch::Receiver<usize>,
    cancel: &CancellationToken,
) -> RunEnd {
    hub.start_run();
    // A feed that is not resurrected ends with its writer; one that is waits for the next.
    let writer_gone = if job.resurrect {
        WriterGone::Wait
    } else {
        WriterGone::End
    };
    let reader = match source::open(path, writer_gone).await {
        Ok(reader) => reader,
        Err(error) => {
            return RunEnd::Exited {
                reason: format!("cannot open {}: {error}", path.display()),
                produced: 0,
                input_ended: false,
            };
        }
    };
    tracing::info!(path = %path.display(), "opened");
    tokio::select! {
        _ = cancel.cancelled() => RunEnd::Cancelled,
        _ = unwanted(job.mode, demand) => RunEnd::Idle,
        read = source::pump(reader, hub) => RunEnd::Exited {
            reason: match &read {
                Ok(_) => format!("reached the end of {}", path.display()),
                Err(error) => format!("cannot read {}: {error}", path.display()),
            },
            produced: hub.run_bytes(),
            input_ended: false,
        },
    }
}

fn describe_exit(status: std::io::Result<ExitStatus>, stderr_tail: &str) -> String {
    let status = match status {
        Ok(status) => status.to_string(),
        Err(error) => format!("could not be waited for: {error}"),
    };
    if stderr_tail.is_empty() {
        status
    } else {
        format!("{status}: {stderr_tail}")
    }
}
