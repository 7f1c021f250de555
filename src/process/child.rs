//! Spawns one feed, stream or shot command and owns it until it is reaped.
//!
//! Each child runs in its own process group so that stopping it also stops whatever it
//! started (`sh -c 'a | b'`), and gets `PR_SET_PDEATHSIG` so that it dies with the server even
//! when the server is SIGKILLed. Its stderr is logged in the owner's span, appended to a file in
//! `logdir` when one is set, and its last lines are kept for failure messages. This module does
//! not read stdout: the feed or stream that owns the child does.
#![allow(unsafe_code)] // `pre_exec` is the only way to set PDEATHSIG between fork and exec.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rustix::process::{Pid, Signal};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::{ChildStdin, ChildStdout, Command};
use tracing::Instrument;

/// How long a child gets between SIGTERM and SIGKILL: ffmpeg finishes its output within
/// milliseconds, and the whole server must be stopped within 2 s.
pub const STOP_GRACE: Duration = Duration::from_millis(600);
/// Lines of stderr kept for the message that reports a failure.
const STDERR_TAIL_LINES: usize = 6;
/// Stderr lines an owner may log at once before rate limiting starts: ffmpeg prints a banner
/// and then progress twice a second, which must not flood the journal, also when it is
/// resurrected again and again.
const STDERR_LOG_BURST: u32 = 10;
/// After the burst, one line per this interval is logged (the logdir file gets every line).
const STDERR_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Variables that belong to the server's own systemd contract and would confuse a child.
const PRIVATE_ENV: [&str; 6] = [
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// Why a command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The command line has no words (validated configs never have this).
    #[error("empty command")]
    Empty,
    /// exec or fork failed.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program (first word).
        program: String,
        /// The OS error (e.g. not found, permission denied).
        source: io::Error,
    },
}

/// Why a command's whole output could not be had.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// It did not finish in time.
    #[error("command did not finish within {0:?}")]
    Timeout(Duration),
    /// Reading its output failed.
    #[error("cannot read the command's output: {0}")]
    Read(io::Error),
    /// It ran but wrote nothing (its exit status and the end of its stderr).
    #[error("command wrote nothing: {0}")]
    Empty(String),
}

/// What a child is spawned with.
pub struct Spec<'a> {
    /// The words of the command; the first is the program.
    pub argv: &'a [String],
    /// Give the child a stdin pipe (a feed is piped in) instead of /dev/null.
    pub stdin: bool,
    /// Give the child a pipe to read on each of these file descriptors (3, 4, ...: the feeds
    /// of a multi-feed stream), besides stdin.
    pub pipes: &'a [i32],
    /// Also append stderr to this file.
    pub stderr_file: Option<PathBuf>,
    /// The owner's log budget, shared by all its children over resurrections.
    pub stderr_budget: StderrBudget,
}

/// A token bucket limiting how many stderr lines of one feed or stream reach the log.
#[derive(Clone)]
pub struct StderrBudget(Arc<Mutex<Bucket>>);

struct Bucket {
    tokens: u32,
    refill_at: tokio::time::Instant,
    suppressed: u64,
}

impl Default for StderrBudget {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Bucket {
            tokens: STDERR_LOG_BURST,
            refill_at: tokio::time::Instant::now() + STDERR_LOG_INTERVAL,
            suppressed: 0,
        })))
    }
}

impl StderrBudget {
    /// Takes a token: `Some(lines suppressed since the last logged one)` when the line may be
    /// logged, `None` when it must be dropped.
    fn take(&self) -> Option<u64> {
        let mut bucket = self.0.lock().expect("stderr budget lock poisoned");
        let now = tokio::time::Instant::now();
        while now >= bucket.refill_at && bucket.tokens < STDERR_LOG_BURST {
            bucket.tokens += 1;
            bucket.refill_at += STDERR_LOG_INTERVAL;
        }
        if now >= bucket.refill_at {
            bucket.refill_at = now + STDERR_LOG_INTERVAL;
        }
        if bucket.tokens == 0 {
            bucket.suppressed += 1;
            return None;
        }
        bucket.tokens -= 1;
        Some(std::mem::take(&mut bucket.suppressed))
    }
}

/// The last lines a child wrote to stderr, shared with its stderr reader.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().expect("stderr tail lock poisoned");
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines joined by " | ", or an empty string.
    pub fn text(&self) -> String {
        let lines = self.0.lock().expect("stderr tail lock poisoned");
        lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// A running child with its pipes; stop it with [`Child::stop`] or reap it with [`Child::wait`].
pub struct Child {
    inner: tokio::process::Child,
    pid: Pid,
    /// The child's stdout, for its owner to read.
    pub stdout: Option<ChildStdout>,
    /// The child's stdin, when [`Spec::stdin`] asked for one.
    pub stdin: Option<ChildStdin>,
    /// The writing ends of the pipes [`Spec::pipes`] asked for.
    pub pipes: Vec<InputPipe>,
    tail: StderrTail,
    stderr_done: tokio::task::JoinHandle<()>,
    /// Whether its exit was collected; a child dropped before that is killed with its group.
    reaped: bool,
}

/// Starts `spec` in its own process group, tied to the server's life.
pub fn spawn(spec: &Spec<'_>) -> Result<Child, SpawnError> {
    let (program, args) = spec.argv.split_first().ok_or(SpawnError::Empty)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Backstop only: the owner stops the whole group and reaps it explicitly.
        .kill_on_drop(true);
    for name in PRIVATE_ENV {
        command.env_remove(name);
    }
    let spawn_error = |source| SpawnError::Spawn {
        program: program.clone(),
        source,
    };
    let (readers, writers) = extra_pipes(spec.pipes).map_err(spawn_error)?;
    let targets: Vec<(i32, i32)> = (readers.iter().map(AsRawFd::as_raw_fd))
        .zip(spec.pipes.iter().copied())
        .collect();
    let server_pid = std::process::id();
    // SAFETY: the closure only makes async-signal-safe syscalls (prctl, getppid, dup2).
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // The server may have died between fork and prctl: then nobody would kill us.
            if rustix::process::getppid().map(Pid::as_raw_pid) != Some(server_pid as i32) {
                return Err(io::Error::other("server exited during spawn"));
            }
            for &(from, to) in &targets {
                // Every `from` is above every `to` (see `extra_pipes`), so no dup2 overwrites
                // a pipe still to be placed; the copy at `to` is not close-on-exec.
                let from = BorrowedFd::borrow_raw(from);
                let mut to = std::mem::ManuallyDrop::new(OwnedFd::from_raw_fd(to));
                rustix::io::dup2(from, &mut to)?;
            }
            Ok(())
        });
    }
    let mut inner = command.spawn().map_err(spawn_error)?;
    // The child has its copies: ours must go, or the child would never see the end of input.
    drop(readers);
    let pid = inner
        .id()
        .and_then(|id| Pid::from_raw(id as i32))
        .expect("a just-spawned child has a pid");
    let tail = StderrTail::default();
    let stderr = inner.stderr.take().expect("stderr was piped");
    let stderr_done = tokio::spawn(
        log_stderr(
            stderr,
            pid,
            tail.clone(),
            spec.stderr_file.clone(),
            spec.stderr_budget.clone(),
        )
        .in_current_span(),
    );
    Ok(Child {
        stdout: inner.stdout.take(),
        stdin: inner.stdin.take(),
        pipes: writers,
        inner,
        pid,
        tail,
        stderr_done,
        reaped: false,
    })
}

/// The writing end of a pipe a child reads on the descriptor it is paired with.
pub type InputPipe = (i32, pipe::Sender);

/// A pipe for each descriptor of `targets`: the reading ends (close-on-exec, numbered above
/// every target) and the writing ends, non-blocking, by target.
fn extra_pipes(targets: &[i32]) -> io::Result<(Vec<OwnedFd>, Vec<InputPipe>)> {
    let above = targets.iter().copied().max().map_or(0, |max| max + 1);
    let (mut readers, mut writers) = (Vec::new(), Vec::new());
    for &target in targets {
        let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let reader = rustix::io::fcntl_dupfd_cloexec(&reader, above)?;
        readers.push(reader);
        writers.push((target, pipe::Sender::from_owned_fd(writer)?));
    }
    Ok((readers, writers))
}

impl Child {
    /// The child's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid.as_raw_pid() as u32
    }

    /// The last lines of its stderr.
    pub fn stderr_tail(&self) -> &StderrTail {
        &self.tail
    }

    /// Waits for the child to exit by itself, then for its stderr to be fully logged.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.inner.wait().await?;
        self.reaped = true;
        // The group may live on (a grandchild holding the pipe): end it with its leader.
        self.signal_group(Signal::KILL);
        (&mut self.stderr_done).await.ok();
        Ok(status)
    }

    /// Reads all of stdout (at most `limit` bytes, within `timeout`), then reaps the child.
    pub async fn output(mut self, limit: u64, timeout: Duration) -> Result<Bytes, OutputError> {
        let mut stdout = self.stdout.take().expect("stdout is piped").take(limit);
        let mut output = Vec::new();
        let read = tokio::time::timeout(timeout, stdout.read_to_end(&mut output)).await;
        let read = match read {
            Err(_) => Err(OutputError::Timeout(timeout)),
            Ok(Err(error)) => Err(OutputError::Read(error)),
            Ok(Ok(_)) => Ok(()),
        };
        if let Err(error) = read {
            self.stop().await;
            return Err(error);
        }
        let status = match tokio::time::timeout(STOP_GRACE, self.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => "still running".to_string(),
        };
        let tail = self.tail.text();
        self.stop().await;
        if output.is_empty() {
            return Err(OutputError::Empty(format!("{status}: {tail}")));
        }
        Ok(Bytes::from(output))
    }

    /// Stops the whole process group: SIGTERM, then SIGKILL after [`STOP_GRACE`]; reaps it.
    pub async fn stop(mut self) -> Option<ExitStatus> {
        self.stdin = None;
        self.pipes.clear();
        self.signal_group(Signal::TERM);
        let status = match tokio::time::timeout(STOP_GRACE, self.inner.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                self.signal_group(Signal::KILL);
                self.inner.wait().await.ok()
            }
        };
        self.signal_group(Signal::KILL);
        self.stderr_done.abort();
        self.reaped = true;
        status
    }

    fn signal_group(&self, signal: Signal) {
        // ESRCH only means the group is already gone.
        let _ = rustix::process::kill_process_group(self.pid, signal);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Its owner was dropped mid-way (a client left during a shot): `kill_on_drop` ends the
        // leader and tokio reaps it; the rest of the group must not be left running.
        if !self.reaped {
            self.signal_group(Signal::KILL);
        }
    }
}

/// Logs each stderr line of the child `pid` (split at `\n` and `\r`, as ffmpeg redraws
/// progress with `\r`), rate limited, and appends every line to the logdir file. The pid is
/// on every line, so that the journal's `CHILD_PID` tells which run of a command said it.
async fn log_stderr(
    stderr: tokio::process::ChildStderr,
    pid: Pid,
    tail: StderrTail,
    file: Option<PathBuf>,
    budget: StderrBudget,
) {
    let mut file = match file {
        Some(path) => open_log_file(&path).await,
        None => None,
    };
    let mut reader = BufReader::new(stderr);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match read_line(&mut reader, &mut raw).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some(out) = file.as_mut() {
            let mut entry = raw.clone();
            entry.push(b'\n');
            if out.write_all(&entry).await.is_err() {
                file = None;
            }
        }
        let line = String::from_utf8_lossy(&raw).trim().to_string();
        if line.is_empty() {
            continue;
        }
        if let Some(suppressed) = budget.take() {
            let pid = pid.as_raw_pid();
            if suppressed > 0 {
                tracing::info!(pid, stderr = %line, suppressed, "child stderr (lines before it not logged)");
            } else {
                tracing::info!(pid, stderr = %line, "child stderr");
            }
        }
        tail.push(line);
    }
}

/// Reads up to and excluding the next `\n` or `\r`; returns the bytes consumed (0 at EOF).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    out: &mut Vec<u8>,
) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(consumed);
        }
        match available.iter().position(|b| *b == b'\n' || *b == b'\r') {
            Some(end) => {
                out.extend_from_slice(&available[..end]);
                reader.consume(end + 1);
                return Ok(consumed + end + 1);
            }
            None => {
                let len = available.len();
                out.extend_from_slice(available);
                reader.consume(len);
                consumed += len;
            }
        }
    }
}

async fn open_log_file(path: &Path) -> Option<tokio::fs::File> {
    match tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
    {
        Ok(file) => Some(file),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot open stderr log file");
            None
        }
    }
}
