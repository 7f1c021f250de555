//! Icecast 2.4, the fan-out rows' reference peer (issue 18): started on a private config
//! ([`config`]) in a directory of its own inside the bench's scratch directory, listening on
//! loopback only, as an unprivileged user when the bench runs as root (Icecast refuses to run
//! as root), fed the same stamped packets as voyandz's feeds through an HTTP `PUT` source
//! ([`source`]) and read by the same clients. Like the voyandz server, Icecast and its feed are
//! [`OwnedChild`]ren: stopped on every path, Ctrl-C and panics included.
//!
//! The stamping feed writes straight into the source connection: it is spawned with the
//! connected socket as its stdout, so each packet is one `write(2)` into Icecast's source at
//! its stamp time, as each is one `write(2)` into the pipe of a voyandz feed. A copy loop in the
//! bench would cost the load generator's one thread two syscalls per packet on the Icecast rows
//! only (in `CPU gen`), and add that thread's scheduling lag to every Icecast latency.

pub mod config;
mod source;

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::child::{OwnedChild, Stopped};
use crate::client::Request;
use crate::procstat;
use crate::server::http_status;

/// The one mount, read by every client as voyandz's clients read `/stream/direct`.
pub const MOUNT: &str = "/stream";
/// How long Icecast may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the source's connect and Icecast's answer to it may take.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the mount may take to serve listeners once its source is accepted (Icecast starts
/// the source's thread after it has sent the `200`).
const MOUNT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Icecast may take to exit after SIGTERM before it is killed: it joins its threads
/// first, which takes it 1–2 s here.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Icecast binds its port itself (it cannot be handed a socket as voyandz is), so the bench
/// picks a free port and another process may take it first: try a few.
const PORT_TRIES: usize = 3;
/// Icecast 2.4's listen backlog, compiled in (`ICECAST_LISTEN_QUEUE` in its `global.h`): a
/// burst of more connects than this overflows it, the kernel drops the SYNs, and each dropped
/// client retries 1, 3, 7 s later (measured: 13 of 200 clients connecting 64 at a time missed
/// the clients' 10 s limit for a response head).
pub const LISTEN_BACKLOG: usize = 5;
/// Who runs Icecast when the bench is root: every Linux system has this user.
const RUN_AS: &str = "nobody";

/// Why the Icecast peer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum IcecastError {
    /// No binary on PATH.
    #[error(
        "icecast is not installed (no icecast2 or icecast on PATH): run scripts/setup-bench.sh, as make bench does"
    )]
    NotInstalled,
    /// Root, and nobody to run it as.
    #[error(
        "the bench runs as root and there is no user {RUN_AS:?} to run icecast as (it refuses to run as root)"
    )]
    NoUser,
    /// A file, socket or spawn failed.
    #[error("{what}: {source}")]
    Io {
        /// What the bench was doing.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// It exited before it served.
    #[error("icecast exited at start ({status}); log tail: {log}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Its last log lines.
        log: String,
    },
    /// It did not answer HTTP in time.
    #[error("icecast did not answer HTTP on {addr} within {READY_TIMEOUT:?}; log tail: {log}")]
    NotReady {
        /// Where it should listen.
        addr: SocketAddr,
        /// Its last log lines.
        log: String,
    },
    /// It refused the `PUT` source.
    #[error("icecast refused the source: {0}")]
    Refused(String),
    /// The mount never served a listener.
    #[error(
        "the mount {MOUNT} did not serve within {MOUNT_TIMEOUT:?} of its source; log tail: {log}"
    )]
    NoMount {
        /// Its last log lines.
        log: String,
    },
}

/// An `Io` error for `what`.
fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> IcecastError {
    let what = what.into();
    move |source| IcecastError::Io { what, source }
}

/// A running Icecast with its feed connected as the source of [`MOUNT`].
pub struct Icecast {
    server: OwnedChild,
    feed: OwnedChild,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Icecast {
    /// `icecast2` (Debian's name) or `icecast` on PATH.
    pub fn locate() -> Result<PathBuf, IcecastError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .flat_map(|d| [d.join("icecast2"), d.join("icecast")])
            .find(|p| p.is_file())
            .ok_or(IcecastError::NotInstalled)
    }

    /// Starts `bin` on a private config in `scratch/name/` for a stream of `rate_bps`, waits
    /// until it serves, then connects `feed` (the stamping feed's command, whose stdout is
    /// set here) as the source of [`MOUNT`] and waits until the mount serves.
    pub fn start(
        bin: &Path,
        scratch: &Path,
        name: &str,
        rate_bps: u64,
        mut feed: Command,
    ) -> Result<Icecast, IcecastError> {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let user = run_as()?;
        if let Some((uid, gid)) = user {
            // Icecast, as that user, writes its logs here.
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(io(format!("chown {} to {RUN_AS}", dir.display())))?;
        }
        // Anyone on this machine could reach a loopback port: a password of this run only.
        let password = format!("bench{:x}", voyandz_bench::clock::now_ns());
        let mut tries = 0;
        let (server, addr) = loop {
            tries += 1;
            let port = free_port()?;
            let settings = config::Settings {
                port,
                mount: MOUNT,
                password: &password,
                rate_bps,
                dir: &dir,
            };
            match launch(bin, &dir, &settings, user) {
                Ok(server) => break (server, SocketAddr::from(([127, 0, 0, 1], port))),
                // Most likely the port was taken meanwhile.
                Err(IcecastError::Exited { .. }) if tries < PORT_TRIES => continue,
                Err(e) => return Err(e),
            }
        };
        let socket = connect_source(addr, &password)?;
        feed.stdout(Stdio::from(OwnedFd::from(socket)))
            .stdin(Stdio::null());
        let feed = OwnedChild::spawn(&mut feed).map_err(io("spawn the stamping feed"))?;
        let icecast = Icecast {
            server,
            feed,
            addr,
            dir,
        };
        icecast.wait_mount()?;
        Ok(icecast)
    }

    fn wait_mount(&self) -> Result<(), IcecastError> {
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        while Instant::now() < deadline {
            if http_status(self.addr, MOUNT, Duration::from_millis(500)).is_ok_and(|c| c == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(IcecastError::NoMount {
            log: log_tail(&self.dir, 10),
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The pid of its feed (the bench's child, not Icecast's).
    pub fn feed_pid(&self) -> u32 {
        self.feed.pid()
    }

    /// The request a client makes for the stream.
    pub fn request(&self, http10: bool) -> Request {
        Request {
            addr: self.addr,
            path: MOUNT.to_string(),
            http10,
        }
    }

    /// VmRSS of the Icecast process, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        procstat::rss_kib(self.pid())
    }

    /// Are Icecast and its feed still running?
    pub fn alive(&mut self) -> bool {
        self.server.exited().is_none() && self.feed.exited().is_none()
    }

    /// Stops the feed, then Icecast (SIGTERM, killed after [`STOP_GRACE`]). Returns what was
    /// wrong, if anything.
    pub fn stop(self) -> Vec<String> {
        let Icecast {
            server, feed, dir, ..
        } = self;
        drop(feed);
        match server.stop(STOP_GRACE) {
            Stopped::Exited(..) => Vec::new(),
            Stopped::Already(status) => vec![format!(
                "icecast had exited ({status}) before the bench stopped it; log tail: {}",
                log_tail(&dir, 5)
            )],
            Stopped::Killed => vec![format!(
                "icecast still running {STOP_GRACE:?} after SIGTERM (killed)"
            )],
        }
    }
}

/// The user and group to run Icecast as: `None` when the bench is not root (Icecast then runs
/// as the bench's own user).
fn run_as() -> Result<Option<(u32, u32)>, IcecastError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new(RUN_AS).expect("no NUL in a literal");
    // SAFETY: getpwnam reads the user database and returns NULL or a pointer to a static
    // record; its fields are copied out before any other call could overwrite it (the bench
    // calls it from its one thread).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(IcecastError::NoUser);
    }
    // SAFETY: non-null, as checked.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, IcecastError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("bind 127.0.0.1:0"))?;
    let port = listener.local_addr().map_err(io("local address"))?.port();
    Ok(port)
}

/// Writes the config into `dir`, starts Icecast on it and waits until it answers HTTP.
fn launch(
    bin: &Path,
    dir: &Path,
    settings: &config::Settings,
    user: Option<(u32, u32)>,
) -> Result<OwnedChild, IcecastError> {
    let cfg = dir.join("icecast.xml");
    std::fs::write(&cfg, config::render(settings))
        .map_err(io(format!("write {}", cfg.display())))?;
    let out_path = dir.join("stderr.log");
    let out = File::create(&out_path).map_err(io(format!("create {}", out_path.display())))?;
    let err = out.try_clone().map_err(io("dup stderr.log"))?;
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    let mut server = OwnedChild::spawn(&mut cmd).map_err(io(format!("spawn {}", bin.display())))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], settings.port));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = server.exited() {
            let log = log_tail(dir, 10);
            return Err(IcecastError::Exited { status, log });
        }
        // Any HTTP answer (a 404 for `/`: no web pages) means it serves.
        if http_status(addr, "/", Duration::from_millis(500)).is_ok() {
            return Ok(server);
        }
        if Instant::now() > deadline {
            let log = log_tail(dir, 10);
            return Err(IcecastError::NotReady { addr, log });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects to `addr`, sends the `PUT` head and waits for Icecast to accept the source.
fn connect_source(addr: SocketAddr, password: &str) -> Result<TcpStream, IcecastError> {
    let mut s = TcpStream::connect_timeout(&addr, SOURCE_TIMEOUT)
        .map_err(io(format!("connect the source to {addr}")))?;
    // Each packet leaves as the feed writes it, one segment per `write(2)`: Nagle's algorithm
    // would hold a packet back while the previous one is unacknowledged.
    s.set_nodelay(true).map_err(io("TCP_NODELAY"))?;
    s.set_read_timeout(Some(SOURCE_TIMEOUT))
        .map_err(io("SO_RCVTIMEO"))?;
    s.write_all(source::put_head(MOUNT, password).as_bytes())
        .map_err(io("send the source's request"))?;
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).map_err(io("read icecast's answer"))?;
        if n == 0 {
            return Err(IcecastError::Refused(format!(
                "connection closed after {:?}",
                String::from_utf8_lossy(&received)
            )));
        }
        received.extend_from_slice(&buf[..n]);
        match source::answer(&received) {
            source::Answer::Incomplete => continue,
            source::Answer::Accepted => break,
            source::Answer::Refused(status) => return Err(IcecastError::Refused(status)),
        }
    }
    // The feed inherits the socket: no timeout of ours on it.
    s.set_read_timeout(None).map_err(io("SO_RCVTIMEO"))?;
    Ok(s)
}

/// The last `n` lines of Icecast's error log and of its stderr.
fn log_tail(dir: &Path, n: usize) -> String {
    let mut lines = Vec::new();
    for file in ["stderr.log", "error.log"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        lines.extend(
            all[all.len().saturating_sub(n)..]
                .iter()
                .map(|l| l.to_string()),
        );
    }
    lines.join(" | ")
}
