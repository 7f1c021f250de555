//! The one helper module of the integration tests: it starts the real `voyandz` binary on a
//! config written to a temporary directory, talks plain HTTP/1.1 to it over real TCP, and
//! looks at its processes through `/proc`.
//!
//! The helper binds `127.0.0.1:0` itself and hands the socket to the daemon as fd 3 with
//! `LISTEN_FDS=1` (systemd socket activation), so tests never race for a port, all run in
//! parallel, and the socket-activation path is exercised by every test. The port is known
//! before the config is written, so a config can name it (`{port}`, for self-connecting
//! streams) and temporary paths (`{tmp}`).
//!
//! The journald tests run the daemon inside a private mount namespace with a journald of its
//! own ([`JournalNamespace`]), since the daemon writes to journald's fixed socket path.
//!
//! Everything here is synchronous std code: threads and blocking sockets with deadlines.
//! Every wait polls a condition until a deadline; nothing sleeps a fixed time and hopes.
//! It does not: parse HTTP beyond what the tests need (status line, headers, chunked or
//! length-delimited or close-delimited bodies), nor retry anything on its own.

#![allow(dead_code)] // each test file uses a different part of the helper

pub mod dbus;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};

/// The daemon under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_voyandz");

/// How long the daemon may take to answer its first HTTP request. Generous: the suite runs
/// many daemons and ffmpegs in parallel on 2 cores.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound for a short (non-streaming) response such as a 404 or a shot.
pub const SHORT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);
/// SIGTERM must stop the daemon within 2 s (INTERFACE.md); allow scheduling noise on top.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often `wait_until` re-checks its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A running `voyandz` with its config in a temporary directory. Dropping it kills the daemon
/// (SIGKILL) and every process that descended from it, so no test leaks processes.
pub struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    config: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    /// Descendants seen so far (pid, start time), killed on drop if they are still alive.
    seen: Mutex<Vec<(u32, u64)>>,
    status: Option<ExitStatus>,
}

impl Server {
    /// Writes `yaml` to a temporary directory, starts the daemon on it with a socket bound
    /// here, and waits until it answers HTTP. `{port}` and `{tmp}` in `yaml` are replaced by
    /// the port and the temporary directory.
    pub fn start(yaml: &str) -> Server {
        let server = Server::spawn(yaml);
        server.wait_ready();
        server
    }

    /// Like [`Server::start`], but does not wait for the daemon to serve (for configs it
    /// must refuse, see [`Server::wait_exit`]).
    pub fn spawn(yaml: &str) -> Server {
        Server::spawn_with(yaml, &[])
    }

    /// [`Server::spawn`] with extra command-line arguments for the daemon.
    pub fn spawn_with(yaml: &str, args: &[&str]) -> Server {
        Server::spawn_with_env(yaml, args, &[])
    }

    /// [`Server::spawn_with`] with extra environment variables for the daemon (`RUST_LOG`).
    /// `{stderr}` in a value is replaced by `<device>:<inode>` of the daemon's stderr pipe,
    /// as systemd writes it in `JOURNAL_STREAM`.
    pub fn spawn_with_env(yaml: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::launch(Command::new(BIN), yaml, args, env, Vec::new())
    }

    /// Starts the daemon as systemd would with several sockets: the helper's own at fd 3 and
    /// `extra` at fds 4, 5, ... (`LISTEN_FDS` counts them all); waits until it serves.
    pub fn start_with_sockets(yaml: &str, extra: Vec<TcpListener>) -> Server {
        let server = Server::launch(Command::new(BIN), yaml, &[], &[], extra);
        server.wait_ready();
        server
    }

    /// [`Server::start`] inside `namespace` (see [`JournalNamespace`]), with extra arguments
    /// and environment as in [`Server::spawn_with_env`].
    pub fn start_in(
        namespace: &JournalNamespace,
        yaml: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let server = Server::launch(namespace.command(BIN), yaml, args, env, Vec::new());
        server.wait_ready();
        server
    }

    /// Runs `program` (the daemon, or a command that execs it in place, keeping its pid) on a
    /// config written from `yaml`, with a listener bound here as fd 3 and `extra` as fds 4,
    /// 5, ...
    fn launch(
        mut program: Command,
        yaml: &str,
        args: &[&str],
        env: &[(&str, &str)],
        extra: Vec<TcpListener>,
    ) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("voyandz-test-")
            .tempdir()
            .expect("create a temporary directory");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let config = dir.path().join("voyandz.yaml");
        std::fs::write(&config, expand(yaml, port, dir.path())).expect("write the config");
        // A pipe made here rather than by `Stdio::piped`, so that its inode is known before
        // the daemon starts (`{stderr}`).
        let (stderr, stderr_writer) = io::pipe().expect("a pipe for the daemon's stderr");
        let stderr_writer = std::fs::File::from(OwnedFd::from(stderr_writer));
        let stderr_id = {
            use std::os::unix::fs::MetadataExt;
            let metadata = stderr_writer.metadata().expect("fstat the stderr pipe");
            format!("{}:{}", metadata.dev(), metadata.ino())
        };

        let cmd = &mut program;
        cmd.arg("-f")
            .arg(&config)
            .args(args)
            .env("LISTEN_FDS", (1 + extra.len()).to_string())
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .env_remove("VOYANDZ_CONFFILE")
            // After the removals: a test may set any of them (NOTIFY_SOCKET, WATCHDOG_USEC).
            .envs((env.iter()).map(|(name, value)| (name, value.replace("{stderr}", &stderr_id))))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr_writer);
        let sockets = std::iter::once(listener).chain(extra);
        cmd.fd_mappings(
            (sockets.zip(3..))
                .map(|(listener, child_fd)| FdMapping {
                    parent_fd: OwnedFd::from(listener),
                    child_fd,
                })
                .collect(),
        )
        .expect("map the listeners to fds 3, 4, ...");
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        // `program` still owns our copies of the listeners and of the pipe's write end: drop
        // them, so that the ports stop answering when the daemon dies instead of queueing
        // connections for nobody, and its stderr ends with it.
        drop(program);

        Server::adopt(child, stderr, port, dir, config)
    }

    /// Runs the daemon under `systemd-socket-activate` on a free port of 127.0.0.1, as
    /// systemd's socket activation does: the tool listens, and starts the daemon (passing it
    /// the socket as fd 3, named `http`) only when the first connection arrives. Does not
    /// wait: the first client is the one that starts it.
    pub fn spawn_socket_activated(yaml: &str) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("voyandz-test-")
            .tempdir()
            .expect("create a temporary directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|probe| probe.local_addr())
            .expect("a free port")
            .port();
        let config = dir.path().join("voyandz.yaml");
        std::fs::write(&config, expand(yaml, port, dir.path())).expect("write the config");
        let mut activator = Command::new("systemd-socket-activate");
        activator
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg("--fdname=http")
            .arg(BIN);
        let server = Server::run_unactivated(activator, port, dir, config);
        // A probe connection would start the daemon: wait for the tool's own line instead.
        assert!(
            wait_until(|| server.log_text().contains("Listening on"), START_TIMEOUT),
            "systemd-socket-activate did not listen; log:\n{}",
            server.log_text()
        );
        server
    }

    /// Polls with a tiny HTTP request until the daemon answers (any status), or panics with
    /// its log if it exits or stays silent for [`START_TIMEOUT`].
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let answer = try_request(
                self.port,
                "GET",
                "/.voyandz-test-ready",
                Duration::from_secs(2),
            );
            if answer.is_some_and(|resp| resp.status > 0) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "voyandz did not answer HTTP within {START_TIMEOUT:?}; log:\n{}",
                    self.log_text()
                );
            }
            if !self.is_running() {
                panic!("voyandz exited before serving; log:\n{}", self.log_text());
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Rewrites its config file in place (as `>` or an editor without a backup does), with
    /// `{port}` and `{tmp}` expanded.
    pub fn write_config(&self, yaml: &str) {
        std::fs::write(&self.config, expand(yaml, self.port, self.dir.path()))
            .expect("write the config");
    }

    /// Replaces its config file by a rename, as editors' atomic saves and `sed -i` do.
    pub fn replace_config(&self, yaml: &str) {
        let temporary = self.dir.path().join(".voyandz.yaml.new");
        std::fs::write(&temporary, expand(yaml, self.port, self.dir.path()))
            .expect("write the new config");
        std::fs::rename(&temporary, &self.config).expect("rename it over the config");
    }

    /// `/stat.json`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let answer = self.get("/stat.json");
        assert_eq!(answer.status, 200, "GET /stat.json");
        serde_json::from_slice(&answer.body).expect("/stat.json is JSON")
    }

    /// The port the daemon listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory holding the config (and whatever a test puts there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file the daemon was started with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// GET of a short response (error pages, shots), read to its end. Panics if it does not
    /// end within [`SHORT_RESPONSE_TIMEOUT`].
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path)
    }

    /// Any method on a short response, read to its end (see [`Server::get`]).
    pub fn request(&self, method: &str, path: &str) -> Response {
        match try_request(self.port, method, path, SHORT_RESPONSE_TIMEOUT) {
            Some(resp) => resp,
            None => panic!(
                "{method} {path}: no complete response within {SHORT_RESPONSE_TIMEOUT:?}; log:\n{}",
                self.log_text()
            ),
        }
    }

    /// Opens a streaming GET: returns once the status line and headers have arrived (or
    /// panics after [`START_TIMEOUT`]); the body is then read with the reader's methods.
    pub fn open(&self, path: &str) -> StreamReader {
        StreamReader::open(self.port, path, START_TIMEOUT)
            .unwrap_or_else(|e| panic!("GET {path}: {e}; log:\n{}", self.log_text()))
    }

    /// Sends `request` (a whole raw request head, e.g. without `Connection: close`) and
    /// returns once the response head arrived (panics after [`START_TIMEOUT`]).
    pub fn send_raw(&self, request: &str) -> StreamReader {
        StreamReader::open_raw(self.port, request, START_TIMEOUT)
            .unwrap_or_else(|e| panic!("{request:?}: {e}; log:\n{}", self.log_text()))
    }

    /// Every stderr line of the daemon so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// The log as one text, for assertion messages.
    pub fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    /// Waits until some log line contains `needle`; false at the deadline.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_log_line(|l| l.contains(needle), timeout)
    }

    /// Waits until some log line satisfies `wanted`; false at the deadline. The daemon's
    /// stderr is read on another thread, so a line it wrote before answering may not be
    /// here yet when the answer is.
    pub fn wait_log_line(&self, mut wanted: impl FnMut(&str) -> bool, timeout: Duration) -> bool {
        wait_until(|| self.log_lines().iter().any(|l| wanted(l)), timeout)
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the daemon process is still running (not exited).
    pub fn is_running(&self) -> bool {
        // `try_wait` needs `&mut`; /proc tells the same without reaping.
        matches!(proc_state(self.pid()), Some(state) if state != 'Z' && state != 'X')
    }

    /// Every live (non-zombie) process descending from the daemon: children, grandchildren,
    /// ... as (pid, command line with spaces between the arguments).
    pub fn descendants(&self) -> Vec<(u32, String)> {
        let procs = descendants_of(self.pid());
        let mut seen = self.seen.lock().expect("seen lock");
        for p in &procs {
            if !seen
                .iter()
                .any(|&(pid, start)| pid == p.pid && start == p.start_time)
            {
                seen.push((p.pid, p.start_time));
            }
        }
        procs
            .into_iter()
            .filter(|p| p.state != 'Z' && p.state != 'X')
            .map(|p| (p.pid, p.cmdline))
            .collect()
    }

    /// How many descendants run a command line containing `needle`, counting a process
    /// whose parent also matches as part of its parent: a shell's fork (before it execs
    /// `sleep`, or the subshell of a pipeline) keeps the shell's command line for a moment,
    /// and is not a second feed.
    pub fn count_procs(&self, needle: &str) -> usize {
        let procs: Vec<ProcInfo> = descendants_of(self.pid())
            .into_iter()
            .filter(|p| p.state != 'Z' && p.state != 'X' && p.cmdline.contains(needle))
            .collect();
        procs
            .iter()
            .filter(|p| !procs.iter().any(|parent| parent.pid == p.ppid))
            .count()
    }

    /// Pids of the daemon's direct children (not zombies) whose command line contains
    /// `needle`.
    pub fn children(&self, needle: &str) -> Vec<u32> {
        descendants_of(self.pid())
            .into_iter()
            .filter(|p| p.ppid == self.pid() && p.state != 'Z' && p.state != 'X')
            .filter(|p| p.cmdline.contains(needle))
            .map(|p| p.pid)
            .collect()
    }

    /// Zombie children of the daemon (exited but not reaped).
    pub fn zombies(&self) -> Vec<u32> {
        descendants_of(self.pid())
            .into_iter()
            .filter(|p| p.state == 'Z' && p.ppid == self.pid())
            .map(|p| p.pid)
            .collect()
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: Signal) {
        send_signal(self.pid(), signal);
    }

    /// SIGTERM, then waits (bounded by [`STOP_TIMEOUT`]) for the exit; panics if the
    /// daemon is still running then.
    pub fn stop(&mut self) -> ExitStatus {
        // Remember the children, so that Drop can clean up after a daemon that leaks them.
        let _ = self.descendants();
        self.signal(Signal::Term);
        match self.wait_exit(STOP_TIMEOUT) {
            Some(status) => status,
            None => panic!(
                "voyandz still running {STOP_TIMEOUT:?} after SIGTERM; log:\n{}",
                self.log_text()
            ),
        }
    }

    /// Waits for the daemon to exit by itself; `None` if it is still running at the deadline.
    /// Once it has exited, the whole of its stderr is in [`Server::log_lines`].
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.status {
            return Some(status);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for voyandz") {
                self.status = Some(status);
                self.join_reader();
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits (bounded) until the stderr reader has seen the end of the daemon's stderr.
    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            // Children may still hold the stderr pipe (a leak the tests report elsewhere):
            // do not hang on them.
            let deadline = Instant::now() + Duration::from_secs(2);
            while !reader.is_finished() && Instant::now() < deadline {
                thread::sleep(POLL_INTERVAL);
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.descendants();
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Whatever descended from the daemon and is still alive (same pid *and* start time,
        // so a recycled pid is never hit) would outlive the test: kill it.
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()));
        for (pid, start) in seen {
            if proc_stat(pid).is_some_and(|p| p.start_time == start && p.state != 'Z') {
                send_signal(pid, Signal::Kill);
            }
        }
    }
}

fn expand(yaml: &str, port: u16, tmp: &Path) -> String {
    yaml.replace("{port}", &port.to_string())
        .replace("{tmp}", tmp.to_str().expect("temporary path is UTF-8"))
}

fn collect_lines(stderr: impl Read, log: &Mutex<Vec<String>>) {
    let mut reader = io::BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match io::BufRead::read_until(&mut reader, b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                // Shown by the test harness only when the test fails.
                eprintln!("[voyandz] {text}");
                log.lock().expect("log lock").push(text);
            }
        }
    }
}

/// Whether `line` starts with the spec's timestamp and one space:
/// `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ` without a regex crate.
pub fn has_timestamp(line: &str) -> bool {
    const PATTERN: &[u8] = b"dddd-dd-dd dd:dd:dd.ddd ";
    let bytes = line.as_bytes();
    bytes.len() > PATTERN.len()
        && PATTERN.iter().zip(bytes).all(|(&p, &b)| match p {
            b'd' => b.is_ascii_digit(),
            other => other == b,
        })
}

/// Polls `cond` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Checks `cond` every 20 ms for all of `duration`: true if it held every time.
pub fn holds_for(mut cond: impl FnMut() -> bool, duration: Duration) -> bool {
    let deadline = Instant::now() + duration;
    loop {
        if !cond() {
            return false;
        }
        if Instant::now() > deadline {
            return true;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code (200, 404, ...).
    pub status: u16,
    /// The HTTP version of the status line (`HTTP/1.1`).
    pub version: String,
    /// Header names are lower-cased; a repeated header keeps its last value.
    pub headers: HashMap<String, String>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request with `Connection: close`, read to its end; `None` on any failure or timeout.
fn try_request(port: u16, method: &str, path: &str, timeout: Duration) -> Option<Response> {
    let deadline = Instant::now() + timeout;
    let mut reader = StreamReader::open_method(port, method, path, timeout).ok()?;
    if method == "HEAD" || reader.status == 204 || reader.status == 304 {
        reader.body = BodyKind::Length(0);
    }
    let body = reader.read_to_end(deadline).ok()?;
    Some(Response {
        status: reader.status,
        version: reader.version.clone(),
        headers: reader.headers.clone(),
        body,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BodyKind {
    /// `Content-Length: n`: that many bytes remain.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkState),
    /// Neither: the body ends when the server closes the connection.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ChunkState {
    /// Expecting a `size[;ext]\r\n` line.
    Size,
    /// In a chunk's data: bytes remaining.
    Data(u64),
    /// Expecting the `\r\n` after a chunk's data.
    DataEnd,
    /// After the last (zero) chunk: trailer lines up to an empty one.
    Trailer,
}

/// A streaming HTTP/1.1 GET over a raw `TcpStream`: status and headers parsed, the body
/// de-chunked as it arrives. Dropping it closes the connection (a client leaving).
pub struct StreamReader {
    stream: TcpStream,
    /// Status code.
    pub status: u16,
    /// HTTP version of the status line.
    pub version: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    body: BodyKind,
    /// Raw bytes received but not yet decoded.
    raw: Vec<u8>,
    /// The server ended the body (or closed the connection).
    finished: bool,
    /// Decoded body bytes received so far (all of them, for [`StreamReader::total`]).
    total: u64,
}

impl StreamReader {
    fn open(port: u16, path: &str, timeout: Duration) -> io::Result<StreamReader> {
        Self::open_method(port, "GET", path, timeout)
    }

    fn open_method(
        port: u16,
        method: &str,
        path: &str,
        timeout: Duration,
    ) -> io::Result<StreamReader> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: voyandz-tests\r\nConnection: close\r\n\r\n"
        );
        Self::open_raw(port, &request, timeout)
    }

    /// GET `path` from `host` (an address such as `::1`) at `port`; panics on failure.
    pub fn connect(host: &str, port: u16, path: &str) -> StreamReader {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: voyandz\r\nUser-Agent: voyandz-tests\r\nConnection: close\r\n\r\n"
        );
        Self::open_raw_to(host, port, &request, START_TIMEOUT)
            .unwrap_or_else(|e| panic!("GET {path} from {host} port {port}: {e}"))
    }

    fn open_raw(port: u16, request: &str, timeout: Duration) -> io::Result<StreamReader> {
        Self::open_raw_to("127.0.0.1", port, request, timeout)
    }

    fn open_raw_to(
        host: &str,
        port: u16,
        request: &str,
        timeout: Duration,
    ) -> io::Result<StreamReader> {
        let deadline = Instant::now() + timeout;
        let mut stream = TcpStream::connect((host, port))?;
        stream.set_nodelay(true)?;
        stream.write_all(request.as_bytes())?;
        let mut reader = StreamReader {
            stream,
            status: 0,
            version: String::new(),
            headers: HashMap::new(),
            body: BodyKind::UntilClose,
            raw: Vec::new(),
            finished: false,
            total: 0,
        };
        let head_end = loop {
            if let Some(pos) = find(&reader.raw, b"\r\n\r\n") {
                break pos;
            }
            if reader.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection ended before the response head ({} bytes: {:?})",
                        reader.raw.len(),
                        String::from_utf8_lossy(&reader.raw)
                    ),
                ));
            }
        };
        let head = String::from_utf8_lossy(&reader.raw[..head_end]).into_owned();
        reader.raw.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        reader.version = parts.next().unwrap_or_default().to_string();
        reader.status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                reader
                    .headers
                    .insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let chunked = reader
            .headers
            .get("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        reader.body = if chunked {
            BodyKind::Chunked(ChunkState::Size)
        } else if let Some(len) = reader.headers.get("content-length") {
            BodyKind::Length(len.parse().map_err(io::Error::other)?)
        } else {
            BodyKind::UntilClose
        };
        Ok(reader)
    }

    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Whether the server has ended the body (or closed the connection).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Body bytes received so far over the whole life of this reader.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Reads raw bytes until `deadline`; returns how many arrived (0 at EOF or deadline).
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(0);
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            self.stream.set_read_timeout(Some(wait))?;
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.finished = true;
                    return Ok(0);
                }
                Ok(n) => {
                    self.raw.extend_from_slice(&buf[..n]);
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    self.finished = true;
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves decodable bytes from `raw` into `out`.
    fn decode(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let before = out.len();
        match self.body {
            BodyKind::UntilClose => out.append(&mut self.raw),
            BodyKind::Length(remaining) => {
                let n = remaining.min(self.raw.len() as u64) as usize;
                out.extend(self.raw.drain(..n));
                self.body = BodyKind::Length(remaining - n as u64);
                if remaining == n as u64 {
                    self.finished = true;
                }
            }
            BodyKind::Chunked(_) => self.decode_chunked(out)?,
        }
        self.total += (out.len() - before) as u64;
        Ok(())
    }

    fn decode_chunked(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let BodyKind::Chunked(state) = self.body else {
                unreachable!("decode_chunked on a non-chunked body")
            };
            match state {
                ChunkState::Size => {
                    let Some(end) = find(&self.raw, b"\r\n") else {
                        return Ok(());
                    };
                    let line = String::from_utf8_lossy(&self.raw[..end]).into_owned();
                    self.raw.drain(..end + 2);
                    let hex = line.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(hex, 16)
                        .map_err(|_| io::Error::other(format!("bad chunk size line {line:?}")))?;
                    self.body = BodyKind::Chunked(if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    });
                }
                ChunkState::Data(remaining) => {
                    if self.raw.is_empty() {
                        return Ok(());
                    }
                    let n = remaining.min(self.raw.len() as u64) as usize;
                    out.extend(self.raw.drain(..n));
                    self.body = BodyKind::Chunked(if remaining == n as u64 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(remaining - n as u64)
                    });
                }
                ChunkState::DataEnd => {
                    if self.raw.len() < 2 {
                        return Ok(());
                    }
                    if &self.raw[..2] != b"\r\n" {
                        return Err(io::Error::other("chunk data not followed by CRLF"));
                    }
                    self.raw.drain(..2);
                    self.body = BodyKind::Chunked(ChunkState::Size);
                }
                ChunkState::Trailer => {
                    let Some(end) = find(&self.raw, b"\r\n") else {
                        return Ok(());
                    };
                    self.raw.drain(..end + 2);
                    if end == 0 {
                        self.finished = true;
                        return Ok(());
                    }
                }
            }
        }
    }

    fn body_done(&self) -> bool {
        match self.body {
            BodyKind::Length(0) => true,
            BodyKind::Chunked(_) | BodyKind::Length(_) | BodyKind::UntilClose => self.finished,
        }
    }

    /// Reads the body until it ends; an error if it has not ended by `deadline`.
    fn read_to_end(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            self.decode(&mut out)?;
            if self.body_done() {
                return Ok(out);
            }
            if self.fill(deadline)? == 0 && !self.finished {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "response did not end in time",
                ));
            }
        }
    }

    /// Every body byte that arrives within `duration` (less if the body ends first).
    pub fn read_for(&mut self, duration: Duration) -> Vec<u8> {
        let deadline = Instant::now() + duration;
        let mut out = Vec::new();
        loop {
            self.decode(&mut out).expect("decode the body");
            if self.body_done() || Instant::now() >= deadline {
                return out;
            }
            self.fill(deadline).expect("read from the socket");
        }
    }

    /// Reads until at least `n` body bytes arrived, and returns them (maybe a few more);
    /// panics if they do not arrive within `timeout` or the body ends before.
    pub fn read_at_least(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        match self.try_read_at_least(n, timeout) {
            Ok(out) => out,
            Err(out) => panic!(
                "got {} of {n} body bytes within {timeout:?} (body ended: {})",
                out.len(),
                self.body_done()
            ),
        }
    }

    /// Like [`StreamReader::read_at_least`], but returns what arrived as an error instead of
    /// panicking.
    pub fn try_read_at_least(&mut self, n: usize, timeout: Duration) -> Result<Vec<u8>, Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            self.decode(&mut out).expect("decode the body");
            if out.len() >= n {
                return Ok(out);
            }
            if self.body_done() || Instant::now() >= deadline {
                return Err(out);
            }
            self.fill(deadline).expect("read from the socket");
        }
    }

    /// Waits until the server ends the body or closes the connection; true if it did
    /// within `timeout`. Body bytes read meanwhile are dropped.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut sink = Vec::new();
        loop {
            sink.clear();
            if self.decode(&mut sink).is_err() || self.body_done() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if self.fill(deadline).is_err() {
                return true;
            }
        }
    }

    /// Closes the connection now (as a client that leaves).
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A client kept reading in a thread so its stream runs while a test does other things;
/// dropping it stops the reading.
pub struct Keeper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Keeper {
    /// Reads `client` in a thread until [`Keeper::finish`] (or its stream ends).
    pub fn start(mut client: StreamReader) -> Keeper {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && !client.is_finished() {
                    client.read_for(Duration::from_millis(50));
                }
                client.total()
            })
        };
        Keeper {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops reading; returns how many body bytes were read.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("finished once")
            .join()
            .expect("keeper thread")
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// The signals the tests send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: stop nicely.
    Term,
    /// SIGKILL: no chance to clean up.
    Kill,
    /// SIGINT.
    Int,
    /// SIGSTOP.
    Stop,
    /// SIGCONT.
    Cont,
    /// SIGHUP: reload the config.
    Hup,
}

/// Sends `signal` to `pid` (errors, such as the process being gone, are ignored).
pub fn send_signal(pid: u32, signal: Signal) {
    let sig = match signal {
        Signal::Term => rustix::process::Signal::TERM,
        Signal::Kill => rustix::process::Signal::KILL,
        Signal::Int => rustix::process::Signal::INT,
        Signal::Stop => rustix::process::Signal::STOP,
        Signal::Cont => rustix::process::Signal::CONT,
        Signal::Hup => rustix::process::Signal::HUP,
    };
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = rustix::process::kill_process(pid, sig);
}

/// One process as seen in `/proc`.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Process group id.
    pub pgid: u32,
    /// State letter (`R`, `S`, `Z`...).
    pub state: char,
    /// Start time in clock ticks since boot (tells a recycled pid apart).
    pub start_time: u64,
    /// User + system CPU time in clock ticks.
    pub cpu_ticks: u64,
    /// Arguments joined with spaces (empty for a zombie).
    pub cmdline: String,
}

/// Reads `/proc/<pid>/stat` (and `cmdline`); `None` if the process is gone.
pub fn proc_stat(pid: u32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After "(comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    // cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    Some(ProcInfo {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: num(1)? as u32,
        pgid: num(2)? as u32,
        cpu_ticks: num(11)? + num(12)?,
        start_time: num(19)?,
        cmdline,
    })
}

fn proc_state(pid: u32) -> Option<char> {
    proc_stat(pid).map(|p| p.state)
}

/// Every process now on the machine.
pub fn all_procs() -> Vec<ProcInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .collect()
}

/// Every process descending from `root` (not `root` itself), zombies included.
pub fn descendants_of(root: u32) -> Vec<ProcInfo> {
    let procs = all_procs();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in procs.iter().filter(|p| p.ppid == parent) {
            frontier.push(p.pid);
            found.push(p.clone());
        }
    }
    found
}

/// CPU time (user + system) a process has used so far, `None` if it is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let ticks = proc_stat(pid)?.cpu_ticks;
    // USER_HZ is 100 on every Linux architecture (the kernel converts to it for /proc).
    Some(Duration::from_millis(ticks * 10))
}

// ---------------------------------------------------------------------------------------
// --check and ffprobe
// ---------------------------------------------------------------------------------------

/// The resident memory of process `pid` in KiB (`VmRSS`), if it is alive.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The shipped `voyandz.socket` and `voyandz.service` (from `systemd/`), copied into `dir`
/// with the service's `ExecStart=` pointing at the binary under test instead of
/// `/usr/bin/voyandz`: `systemd-analyze verify` fails on a command that is not installed.
/// Returns the paths of the copies (socket, service).
pub fn unit_copies(dir: &Path) -> (PathBuf, PathBuf) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let read = |name: &str| {
        let path = shipped.join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let service = read("voyandz.service");
    let exec = "ExecStart=/usr/bin/voyandz ";
    assert_eq!(
        service.matches(exec).count(),
        1,
        "voyandz.service has one `{exec}...` line"
    );
    let service = service.replace(exec, &format!("ExecStart={BIN} "));
    let socket_path = dir.join("voyandz.socket");
    let service_path = dir.join("voyandz.service");
    std::fs::write(&socket_path, read("voyandz.socket")).expect("write the socket unit");
    std::fs::write(&service_path, service).expect("write the service unit");
    (socket_path, service_path)
}

/// Runs `voyandz --check -f path` (bounded) and returns its output.
pub fn check(path: &Path) -> Output {
    run_bounded(
        Command::new(BIN)
            .arg("--check")
            .arg("-f")
            .arg(path)
            .env_remove("VOYANDZ_CONFFILE"),
        None,
        Duration::from_secs(20),
    )
}

/// Writes `yaml` to `dir/name` and runs `--check` on it; returns the path too (for
/// asserting that messages name it).
pub fn check_yaml(dir: &Path, name: &str, yaml: &str) -> (PathBuf, Output) {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write the config");
    let out = check(&path);
    (path, out)
}

/// Runs `ffprobe` on `bytes` (given on stdin) with `args` before the input, bounded to 20 s;
/// returns its stdout. E.g. `ffprobe(&data, &["-show_entries", "stream=codec_name", "-of",
/// "csv=p=0"])`.
pub fn ffprobe(bytes: &[u8], args: &[&str]) -> String {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-hide_banner", "-v", "error"])
        .args(args)
        .args(["-i", "pipe:0"]);
    let out = run_bounded(&mut cmd, Some(bytes.to_vec()), Duration::from_secs(20));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `codec_name,codec_type` (ffprobe's order) of each distinct stream ffprobe finds in `bytes`.
pub fn probe_streams(bytes: &[u8]) -> Vec<String> {
    ffprobe(
        bytes,
        &[
            "-show_entries",
            "stream=codec_type,codec_name",
            "-of",
            "csv=p=0",
        ],
    )
    .lines()
    .map(str::trim)
    .filter(|l| !l.is_empty())
    .fold(Vec::new(), |mut seen: Vec<String>, l| {
        // MPEG-TS streams are listed twice (under their program and on their own).
        if !seen.iter().any(|s| s == l) {
            seen.push(l.to_string());
        }
        seen
    })
}

/// Runs a command with optional stdin bytes; kills it if it runs longer than `timeout`.
pub fn run_bounded(cmd: &mut Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // A reader that stops early (ffprobe has seen enough) gives EPIPE: fine.
        thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        thread::sleep(POLL_INTERVAL);
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// The shell-free words of a test command that produces a cheap, endless MJPEG video:
/// 160x120 at 10 fps, in `mpjpeg` (boundary `ffmpeg`).
pub const MPJPEG_SRC: &str = "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=160x120:rate=10 -c:v mjpeg -q:v 10 -f mpjpeg -boundary_tag ffmpeg -";

/// An endless trickle of text lines, no ffmpeg: for tests where codecs are not the point.
/// `tag` ends up in the process's command line so the test can count it.
pub fn ticker(tag: &str) -> String {
    format!("sh -c 'while :; do echo {tag}; sleep 0.05; done' {tag}")
}

// ---------------------------------------------------------------------------------------
// Containers and pictures (container-aware joins, screenshots)
// ---------------------------------------------------------------------------------------

/// Runs `ffprobe -v error` on `bytes` (stdin) with `args`, bounded to 20 s; returns its stdout
/// and its stderr (which, at `-v error`, holds only errors: empty means clean).
pub fn ffprobe_with_errors(bytes: &[u8], args: &[&str]) -> (String, String) {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-hide_banner", "-v", "error"])
        .args(args)
        .args(["-i", "pipe:0"]);
    let out = run_bounded(&mut cmd, Some(bytes.to_vec()), Duration::from_secs(20));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Width and height of the first video stream ffprobe finds in `bytes` (a picture or a
/// stream), `None` if there is none.
pub fn video_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let out = ffprobe(
        bytes,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ],
    );
    let line = out.lines().next()?.trim();
    let (width, height) = line.split_once(',')?;
    Some((width.parse().ok()?, height.parse().ok()?))
}

/// Decodes a picture file (PNG, JPEG...) with ffmpeg to 8-bit gray pixels, bounded to 20 s.
pub fn gray_pixels(path: &Path) -> Vec<u8> {
    let out = run_bounded(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
            .arg(path)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"]),
        None,
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "ffmpeg could not decode {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

// ---------------------------------------------------------------------------------------
// Named pipes and listening without socket activation (issue 16: config checks, no-resurrect)
// ---------------------------------------------------------------------------------------

/// Makes a named pipe at `path`.
pub fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Opens the FIFO for writing once a reader has it open (polling, so it never blocks past
/// [`START_TIMEOUT`]), then writes `line` every 20 ms for `duration`, then closes it (the
/// writer leaves). Returns the lines written.
pub fn write_fifo(
    path: PathBuf,
    line: &'static str,
    duration: Duration,
) -> thread::JoinHandle<usize> {
    use std::os::unix::fs::OpenOptionsExt;
    thread::spawn(move || {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut fifo = loop {
            // O_NONBLOCK: ENXIO instead of blocking while nobody reads.
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(&path)
            {
                Ok(file) => break file,
                Err(_) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                Err(e) => panic!("no reader opened {} in time: {e}", path.display()),
            }
        };
        let end = Instant::now() + duration;
        let mut written = 0;
        while Instant::now() < end {
            match fifo.write_all(line.as_bytes()) {
                Ok(()) => written += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
            thread::sleep(Duration::from_millis(20));
        }
        written
    })
}

impl Server {
    /// Like [`Server::start`], but without socket activation: the daemon binds `listenaddr`
    /// itself. `{port}` in `yaml` is a port that was free on every address a moment before;
    /// requests of this helper still go to 127.0.0.1.
    pub fn start_binding(yaml: &str) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("voyandz-test-")
            .tempdir()
            .expect("create a temporary directory");
        // The IPv6 wildcard also takes IPv4 (bindv6only is 0): the port is free on both.
        let probe = TcpListener::bind("[::]:0").or_else(|_| TcpListener::bind("127.0.0.1:0"));
        let port = probe
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.path().join("voyandz.yaml");
        std::fs::write(&config, expand(yaml, port, dir.path())).expect("write the config");
        let server = Server::run_unactivated(Command::new(BIN), port, dir, config);
        server.wait_ready();
        server
    }

    /// Runs `program` (the daemon, or a command ending in the daemon's path) with `-f config`
    /// and no socket, notify socket or config variable of its own, and collects its log.
    fn run_unactivated(
        mut program: Command,
        port: u16,
        dir: tempfile::TempDir,
        config: PathBuf,
    ) -> Server {
        let mut child = program
            .arg("-f")
            .arg(&config)
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("VOYANDZ_CONFFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program:?}: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        Server::adopt(child, stderr, port, dir, config)
    }

    /// A server for a just spawned daemon; the lines read from `stderr` (its stderr) are
    /// collected.
    fn adopt(
        child: Child,
        stderr: impl Read + Send + 'static,
        port: u16,
        dir: tempfile::TempDir,
        config: PathBuf,
    ) -> Server {
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let log = Arc::clone(&log);
            thread::spawn(move || collect_lines(stderr, &log))
        };
        Server {
            child,
            port,
            dir,
            config,
            log,
            reader: Some(reader),
            seen: Mutex::new(Vec::new()),
            status: None,
        }
    }
}

// Joins (where a client starts): a clean start a decoder can play
// ---------------------------------------------------------------------------------------

/// ffprobe decodes every frame of `bytes` without one error line, finds the `streams`
/// (`codec_name,codec_type` lines), and (when `video`) the first video frame is a keyframe:
/// what a player needs from the first byte it gets.
pub fn assert_clean_start(what: &str, bytes: &[u8], streams: &[&str], video: bool) {
    assert!(!bytes.is_empty(), "{what}: no bytes");
    let (_, errors) = ffprobe_with_errors(bytes, &["-show_frames", "-of", "csv"]);
    assert!(
        errors.trim().is_empty(),
        "{what}: ffprobe -v error reported errors on {} bytes:\n{errors}",
        bytes.len()
    );
    let found = probe_streams(bytes);
    for expected in streams {
        assert!(
            found.iter().any(|s| s == expected),
            "{what}: expected stream {expected}, ffprobe found {found:?}"
        );
    }
    if !video {
        return;
    }
    let (first, errors) = ffprobe_with_errors(
        bytes,
        &[
            "-show_frames",
            "-select_streams",
            "v",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "frame=key_frame",
            "-of",
            "csv=p=0",
        ],
    );
    assert!(errors.trim().is_empty(), "{what}: {errors}");
    assert_eq!(
        first.lines().next().map(str::trim),
        Some("1"),
        "{what}: the first video frame is not a keyframe (ffprobe: {first:?})"
    );
}

// ---------------------------------------------------------------------------------------
// Running streams (issue 16: players, TS continuity)
// ---------------------------------------------------------------------------------------

/// Starts a server with one stream `name` (`command`, `mimetype`), keeps a client reading it
/// so that it runs, and returns once it has run for `run` since its first byte: a client that
/// comes next joins it mid-stream.
pub fn running_stream(
    name: &str,
    command: &str,
    mimetype: &str,
    run: Duration,
) -> (Server, Keeper) {
    let server = Server::start(&format!(
        "streams:\n  {name}:\n    command: {command}\n    mimetype: {mimetype}\n"
    ));
    let mut keeper = server.open(&format!("/stream/{name}"));
    assert_eq!(keeper.status, 200, "GET /stream/{name}");
    keeper.read_at_least(1, START_TIMEOUT);
    let started = Instant::now();
    let keeper = Keeper::start(keeper);
    thread::sleep(run.saturating_sub(started.elapsed()));
    (server, keeper)
}

// ---------------------------------------------------------------------------------------
// Metrics (issue 17, item 5): other HTTP servers a test starts (Prometheus)
// ---------------------------------------------------------------------------------------

/// GET of a short response from another server on 127.0.0.1:`port`, read to its end; `None`
/// when it does not answer (yet) within [`SHORT_RESPONSE_TIMEOUT`].
pub fn get_at(port: u16, path: &str) -> Option<Response> {
    try_request(port, "GET", path, SHORT_RESPONSE_TIMEOUT)
}

// ---------------------------------------------------------------------------------------
// Headless Chromium (issue 13's MPJPEG test and issue 17's status page)
// ---------------------------------------------------------------------------------------

/// Bound for one Chromium run (it normally takes 1-3 s).
pub const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// A headless Chromium (`/usr/bin/chromium`, installed by the setup script) with a profile
/// of its own in `dir` (named after `name`), HOME there, and nothing that reaches out to
/// the network by itself; the caller adds what to do (`--screenshot`, `--dump-dom`, ...)
/// and the URL.
pub fn chromium(dir: &Path, name: &str) -> Command {
    let mut cmd = Command::new("/usr/bin/chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!(
        "--user-data-dir={}",
        dir.join(format!("{name}-profile")).display()
    ))
    .env("HOME", dir);
    cmd
}

/// A headless Chromium screenshot of `url` in a window of `window` (width, height) pixels,
/// written to `shot`, with `options` (`--virtual-time-budget=...`) added: the gray pixels of
/// the whole window.
pub fn chromium_screenshot(
    dir: &Path,
    name: &str,
    url: &str,
    window: (usize, usize),
    shot: &Path,
    options: &[&str],
) -> Vec<u8> {
    let out = run_bounded(
        chromium(dir, name)
            .args(options)
            .arg(format!("--window-size={},{}", window.0, window.1))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(url),
        None,
        CHROMIUM_TIMEOUT,
    );
    assert!(
        out.status.success() && shot.exists(),
        "chromium failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let pixels = gray_pixels(shot);
    assert_eq!(pixels.len(), window.0 * window.1, "screenshot size");
    pixels
}

// ---------------------------------------------------------------------------------------
// journald (issue 20, point 3): a journal of the test's own
// ---------------------------------------------------------------------------------------

/// The journal daemon, from the `systemd` package (it runs without systemd as PID 1).
const JOURNALD: &str = "/lib/systemd/systemd-journald";
/// voyandz sends journal entries to this fixed path only (as sd_journal_send does).
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// How long a namespace and its journald may take to be ready (0.2 s measured).
pub const JOURNALD_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound for one `journalctl` run.
const JOURNALCTL_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds after which a namespace's first process ends by itself (`timeout`), in case the
/// test process is killed before its `Drop` runs.
const NAMESPACE_LIFETIME_SECS: &str = "300";
/// Mounts the namespace's own tmpfs over journald's runtime dirs (its sockets and its
/// volatile journal; `/var/log/journal` too, though journald writes there only when asked to
/// flush), marks the namespace ready, then runs the program given after the lifetime
/// (`sh -c SETUP sh LIFETIME PROGRAM...`).
const NAMESPACE_SETUP: &str = r#"set -e
lifetime=$1
shift
mkdir -p /run/systemd /run/log
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mount -t tmpfs -o mode=0755 tmpfs /run/log
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=0755 tmpfs /var/log/journal; fi
: > /run/systemd/voyandz-test-namespace
exec timeout "$lifetime" "$@"
"#;

/// A private mount namespace with tmpfs of its own on `/run/systemd`, `/run/log` and
/// `/var/log/journal`, where a systemd-journald of its own may listen at the fixed
/// `/run/systemd/journal/socket` (the host has no journal there, see SYSTEM-TESTS.md). The
/// daemon under test runs inside it ([`Server::start_in`]) and `journalctl` reads its
/// journal back ([`JournalNamespace::entries`]). Needs root (`unshare --mount`).
///
/// The namespace lives as long as its first process (journald, or a `sleep` when there is
/// none): dropping this ends it, and the tmpfs and every file in them go with it. Nothing is
/// written on the host.
pub struct JournalNamespace {
    holder: Child,
    /// The holder's stderr (unshare, mount or journald complaining), shown on failure.
    errors: tempfile::NamedTempFile,
}

impl JournalNamespace {
    /// A namespace with journald listening in it.
    pub fn with_journald() -> JournalNamespace {
        let namespace = JournalNamespace::start(&[JOURNALD]);
        namespace.wait_for(JOURNAL_SOCKET);
        namespace
    }

    /// A namespace where no journald listens (`/run/systemd` is empty).
    pub fn without_journald() -> JournalNamespace {
        JournalNamespace::start(&["sleep", NAMESPACE_LIFETIME_SECS])
    }

    fn start(program: &[&str]) -> JournalNamespace {
        let errors = tempfile::NamedTempFile::new().expect("a temporary file");
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .args([NAMESPACE_SETUP, "sh", NAMESPACE_LIFETIME_SECS])
            .args(program)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errors.reopen().expect("reopen the temporary file"))
            .spawn()
            .expect("spawn unshare");
        let namespace = JournalNamespace { holder, errors };
        namespace.wait_for("/run/systemd/voyandz-test-namespace");
        namespace
    }

    /// Waits until `path` exists inside the namespace; panics after
    /// [`JOURNALD_START_TIMEOUT`].
    fn wait_for(&self, path: &str) {
        let inside = format!("/proc/{}/root{path}", self.holder.id());
        if !wait_until(|| Path::new(&inside).exists(), JOURNALD_START_TIMEOUT) {
            panic!(
                "{path} did not appear in the namespace within {JOURNALD_START_TIMEOUT:?}: {}",
                std::fs::read_to_string(self.errors.path()).unwrap_or_default()
            );
        }
    }

    /// `program` to be run inside the namespace: `nsenter` enters it and execs `program`
    /// in place, so the pid of the spawned child is `program`'s.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["--target", &self.holder.id().to_string(), "--mount", "--"])
            .arg(program);
        cmd
    }

    /// Every entry that process `pid` sent to this namespace's journal, oldest first, once
    /// journald has stored all it received (`journalctl --sync`): the objects of
    /// `journalctl -o json`, field name to value (a string; an array if a field was repeated
    /// in one entry).
    pub fn entries(&self, pid: u32) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let sync = run_bounded(
            self.command("journalctl").arg("--sync"),
            None,
            JOURNALCTL_TIMEOUT,
        );
        assert!(sync.status.success(), "journalctl --sync: {sync:?}");
        let out = run_bounded(
            (self.command("journalctl"))
                // --all: fields over 4 KiB would otherwise print as null.
                .args(["--no-pager", "--all", "--output", "json"])
                .arg(format!("_PID={pid}")),
            None,
            JOURNALCTL_TIMEOUT,
        );
        assert!(out.status.success(), "journalctl: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{e}: journalctl printed {line}"))
            })
            .collect()
    }
}

impl Drop for JournalNamespace {
    fn drop(&mut self) {
        // SIGTERM to `timeout`, which passes it on to journald (SIGKILL would leave
        // journald running, and the namespace with it).
        send_signal(self.holder.id(), Signal::Term);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while matches!(self.holder.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
