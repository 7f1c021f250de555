//! Lifecycle of one feed or stream: start it when it is wanted, stop it when it is not,
//! resurrect it when it dies.
//!
//! A hub's *demand* (its number of subscribers: clients, or the stdin pipes of commands that
//! read it) drives everything. On-demand producers start with their first subscriber and stop
//! when the last one leaves; timeout mode waits that long first; continuous ones run for ever.
//! Because a stream's command subscribes to its feed only while it runs, demand propagates
//! along feed chains by itself. Each step is recorded in the feed's or stream's
//! [`RunStats`]; the owner task that runs this loop and takes commands is [`owner`]'s. This
//! module does not know about HTTP.

pub mod owner;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tracing::Instrument;

use crate::config::Mode;
use crate::fanout::hub::Hub;
use crate::fanout::join::Join;
use crate::fanout::pipe::{PipeEnd, pipe_into};
use crate::feed::source::{self, WriterGone};
use crate::process::child::{self, SpawnError, StderrBudget};
use crate::process::exit::Exit;
use crate::process::restart::{LogAs, Resurrection};
use crate::stats::{RunStats, State};

/// How often a run whose feed an admin stopped looks whether it was started again: a Start
/// is a person's act, and a tenth of a second is at once to them.
const HALTED_INPUT_POLL: Duration = Duration::from_millis(100);

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
        /// The feeds piped into other file descriptors (3, 4, ...), by descriptor.
        pipes: Vec<(i32, Arc<Hub>)>,
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
        /// Why, for the log, the status and clients waiting for a first byte.
        exit: Exit,
        /// Bytes it delivered.
        produced: u64,
        /// What became of the feeds it reads.
        input: InputEnd,
    },
}

/// What became of the feeds a run reads, the worst of them (a feed that ended outweighs one
/// an admin stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum InputEnd {
    /// They are there (or it reads none).
    Open,
    /// An admin stopped one: it may start again.
    Halted,
    /// One ended for good.
    Ended,
}

/// Runs `job` into `hub` until `cancel` fires, recording each step in `stats`. Never returns
/// early because of a failure.
pub async fn supervise(job: Job, hub: Arc<Hub>, cancel: CancellationToken, stats: Arc<RunStats>) {
    let mut demand = hub.demand();
    let mut resurrection = Resurrection::default();
    loop {
        if job.mode != Mode::Continuous {
            if *demand.borrow() == 0 {
                // Idle: the next client starts a fresh run, whose failure (if any) it must
                // hear of, not an old one.
                hub.forget_failure();
                if stats.state() != State::Restarting {
                    stats.set_state(State::Idle);
                }
            }
            if !wait_for_demand(&mut demand, &cancel).await {
                return;
            }
        }
        let started = Instant::now();
        let end = run_once(&job, &hub, &mut demand, &cancel, &resurrection, &stats).await;
        let (reason, produced, input) = match end {
            RunEnd::Cancelled => return,
            RunEnd::Idle => {
                stats.stopped(State::Idle);
                hub.reset();
                resurrection = Resurrection::default();
                if job.once {
                    return;
                }
                continue;
            }
            RunEnd::Exited {
                exit,
                produced,
                input,
            } => (exit, produced, input),
        };
        stats.exited(reason.clone());
        if input == InputEnd::Halted {
            // Its clients end as the stopped feed's own do; it neither failed nor ended, and
            // runs again once that feed is started.
            tracing::info!("a feed it reads was stopped: its clients end until it is started");
            hub.end_current();
            stats.stopped(State::Idle);
            resurrection = Resurrection::default();
            if !wait_for_inputs(&job, &cancel).await || job.once {
                return;
            }
            continue;
        }
        if produced == 0 {
            hub.fail(format!("{} \"{}\" {reason}", job.kind, job.name));
        }
        if input == InputEnd::Ended || !job.resurrect {
            if produced == 0 {
                stats.set_state(State::Failed);
                tracing::warn!(%reason, "failed; not resurrected");
            } else {
                stats.set_state(State::Ended);
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
        stats.restarting(verdict.delay);
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

/// Waits until no feed `job` reads is stopped by an admin any more; false when cancelled.
async fn wait_for_inputs(job: &Job, cancel: &CancellationToken) -> bool {
    let Input::Command { stdin, pipes, .. } = &job.input else {
        return true;
    };
    let halted = || (stdin.iter().chain(pipes.iter().map(|(_, hub)| hub))).any(|hub| hub.halted());
    while halted() {
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep(HALTED_INPUT_POLL) => {}
        }
    }
    true
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

/// Waits until the producer is no longer wanted: no subscriber for the mode's linger time,
/// which it spends [`State::Lingering`].
async fn unwanted(mode: Mode, demand: &mut watch::Receiver<usize>, stats: &RunStats) {
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
        if !linger.is_zero() {
            stats.set_state(State::Lingering);
        }
        let hub_gone = tokio::select! {
            _ = deadline => return,
            back = demand.wait_for(|count| *count > 0) => back.is_err(),
        };
        if !linger.is_zero() {
            // A run lingers only once it delivered: back to what it was doing.
            stats.set_state(State::Running);
        }
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
    stats: &Arc<RunStats>,
) -> RunEnd {
    // Stopped while it waited (a per-client process whose stream an admin stopped): starting
    // a process only to kill it would overwrite the stopped state for nothing.
    if cancel.is_cancelled() {
        return RunEnd::Cancelled;
    }
    match &job.input {
        Input::File(path) => run_file(job, path, hub, demand, cancel, stats).await,
        Input::Command { argv, stdin, pipes } => {
            hub.start_run();
            let targets: Vec<i32> = pipes.iter().map(|(fd, _)| *fd).collect();
            let spec = child::Spec {
                argv,
                stdin: stdin.is_some(),
                pipes: &targets,
                stderr_file: job.stderr_file.clone(),
                stderr_budget: job.stderr_budget.clone(),
            };
            let mut child = match child::spawn(&spec) {
                Ok(child) => child,
                Err(error) => {
                    return RunEnd::Exited {
                        exit: spawn_exit(argv, error),
                        produced: 0,
                        input: InputEnd::Open,
                    };
                }
            };
            stats.started(Some(child.pid()));
            if resurrection.failing() {
                tracing::debug!(pid = child.pid(), "started");
            } else {
                tracing::info!(pid = child.pid(), command = %argv.join(" "), "started");
            }
            let stdout = child.stdout.take().expect("stdout is piped");
            // In the run's span: the pump's log lines (a parser's panic) name the stream.
            let mut pump = AbortOnDropHandle::new(tokio::spawn(
                {
                    let (hub, stats) = (Arc::clone(hub), Arc::clone(stats));
                    async move { source::pump(stdout, &hub, &stats.bytes_in).await }
                }
                .in_current_span(),
            ));
            // Each input on a task of its own: a feed that stalls holds back no other.
            let mut inputs = JoinSet::new();
            if let (Some(feed), Some(writer)) = (stdin, child.stdin.take()) {
                inputs.spawn(feed_into(Arc::clone(feed), writer, Arc::clone(hub)));
            }
            for ((_, feed), (_, writer)) in pipes.iter().zip(child.pipes.drain(..)) {
                inputs.spawn(feed_into(Arc::clone(feed), writer, Arc::clone(hub)));
            }
            let mut input = InputEnd::Open;
            let unwanted = unwanted(job.mode, demand, stats);
            tokio::pin!(unwanted);
            let status = loop {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {
                        stop_all(child, pump, inputs).await;
                        return RunEnd::Cancelled;
                    }
                    _ = &mut unwanted => {
                        stop_all(child, pump, inputs).await;
                        tracing::info!("stopped: no more clients");
                        return RunEnd::Idle;
                    }
                    Some(ended) = inputs.join_next(), if !inputs.is_empty() => {
                        input = input.max(match ended {
                            Ok(PipeEnd::FeedEnded) => InputEnd::Ended,
                            Ok(PipeEnd::FeedHalted) => InputEnd::Halted,
                            _ => InputEnd::Open,
                        });
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
            drop(inputs);
            RunEnd::Exited {
                exit: Exit::from_status(status, child.stderr_tail().text()),
                // From the hub: a read loop cut short still delivered what it published.
                produced: hub.run_bytes(),
                input,
            }
        }
    }
}

/// Stops a run: its input pipe, its process group, and its read loop, which is awaited so
/// that no stale chunk reaches the hub after this returns.
async fn stop_all(
    child: child::Child,
    pump: AbortOnDropHandle<std::io::Result<u64>>,
    inputs: JoinSet<PipeEnd>,
) {
    drop(inputs);
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
    stats: &RunStats,
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
                exit: Exit::io(format!("cannot open {}", path.display()), &error),
                produced: 0,
                input: InputEnd::Open,
            };
        }
    };
    tracing::info!(path = %path.display(), "opened");
    stats.started(None);
    tokio::select! {
        _ = cancel.cancelled() => RunEnd::Cancelled,
        _ = unwanted(job.mode, demand, stats) => RunEnd::Idle,
        read = source::pump(reader, hub, &stats.bytes_in) => RunEnd::Exited {
            exit: match &read {
                Ok(_) => Exit::InputEnded { what: path.display().to_string() },
                Err(error) => Exit::io(format!("cannot read {}", path.display()), error),
            },
            produced: hub.run_bytes(),
            input: InputEnd::Open,
        },
    }
}

/// Pipes `feed` into one input of a command that writes into `hub`.
async fn feed_into<W: AsyncWrite + Unpin>(feed: Arc<Hub>, writer: W, hub: Arc<Hub>) -> PipeEnd {
    // A clean start for the command's demuxer: the header, then whole units.
    let subscriber = feed.subscribe_with(Join::Header);
    pipe_into(subscriber, writer, Some(&hub)).await
}

/// A command that could not be started, with its whole command line.
fn spawn_exit(argv: &[String], error: SpawnError) -> Exit {
    Exit::Spawn {
        command: argv.join(" "),
        error: match error {
            SpawnError::Spawn { source, .. } => source.to_string(),
            empty => empty.to_string(),
        },
    }
}
