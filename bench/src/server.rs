//! Starts the real `voyandz` binary on a generated config, socket-activated the way
//! doc/INTERFACE.md says: the bench binds 127.0.0.1:0 itself, and the child gets the listening
//! socket as fd 3 with `LISTEN_FDS=1` (no fixed port, no race). Stops it with SIGTERM and
//! checks the contract on the way out (exit within 2 s, no child left behind). The process
//! itself is an [`OwnedChild`]: never left running, whatever way the bench ends.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::{OwnedChild, Stopped};
use crate::procstat;

/// How long the server may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// INTERFACE.md: "SIGTERM / SIGINT: stop every child and exit 0 within 2 s".
const STOP_CONTRACT: Duration = Duration::from_secs(2);
/// How long we wait after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Accept backlog of the socket we hand over: 2000 clients connect in bursts of 64.
const LISTEN_BACKLOG: i32 = 4096;

/// A running server.
pub struct Server {
    child: OwnedChild,
    /// Its pid.
    pub pid: u32,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stderr (the log).
    pub log: PathBuf,
    /// Its config file (a row may rewrite it: the server reloads it).
    pub config: PathBuf,
    name: String,
}

/// Quotes `s` as one word for the server's POSIX word splitting.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A YAML double-quoted scalar.
pub fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn listen_socket() -> std::io::Result<(OwnedFd, SocketAddr)> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind("127.0.0.1:0".parse().expect("literal address"))?;
    let listener = sock.listen(LISTEN_BACKLOG as u32)?.into_std()?;
    listener.set_nonblocking(false)?; // as systemd would hand it over
    let addr = listener.local_addr()?;
    Ok((OwnedFd::from(listener), addr))
}

impl Server {
    /// Writes `yaml` to `dir/NAME.yaml`, starts `bin -f` on it (then `args`, with `env` added
    /// to the bench's environment) and waits until it answers HTTP.
    pub fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        yaml: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, String> {
        let cfg = dir.join(format!("{name}.yaml"));
        std::fs::write(&cfg, yaml).map_err(|e| format!("write {}: {e}", cfg.display()))?;
        let log = dir.join(format!("{name}.log"));
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let (fd, addr) = listen_socket().map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
        let raw = fd.as_raw_fd();
        let mut cmd = Command::new(bin);
        cmd.arg("-f")
            .arg(&cfg)
            .args(args)
            .envs(env.iter().copied())
            .env("LISTEN_FDS", "1")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if raw == 3 {
                    // dup2(3, 3) is a no-op that would leave FD_CLOEXEC set: clear it.
                    let flags = libc::fcntl(3, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child =
            OwnedChild::spawn(&mut cmd).map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        drop(fd); // the server holds the only copy now
        let mut server = Server {
            pid: child.pid(),
            child,
            addr,
            log,
            config: cfg,
            name: name.to_string(),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.exited() {
                return Err(format!(
                    "server exited at start ({status}); log tail:\n{}",
                    self.log_tail(15)
                ));
            }
            if let Ok(code) = http_status(self.addr, "/", Duration::from_millis(500)) {
                let _ = code; // any HTTP answer (200, 404) means it serves
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "server did not answer HTTP on the socket passed as fd 3 within {READY_TIMEOUT:?}; log tail:\n{}",
                    self.log_tail(15)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// VmRSS of the server process, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        procstat::rss_kib(self.pid)
    }

    /// Is the server process still running?
    pub fn alive(&mut self) -> bool {
        self.child.exited().is_none()
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` log lines.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then checks the stop contract. Returns what was wrong, if anything.
    pub fn stop(self) -> Vec<String> {
        let mut problems = Vec::new();
        let kids = procstat::descendants(self.pid);
        match self.child.stop(STOP_TIMEOUT) {
            Stopped::Already(status) => {
                return vec![format!(
                    "{}: server had already exited ({status})",
                    self.name
                )];
            }
            Stopped::Killed => problems.push(format!(
                "{}: server still running {STOP_TIMEOUT:?} after SIGTERM (killed)",
                self.name
            )),
            Stopped::Exited(s, took) => {
                if took > STOP_CONTRACT {
                    problems.push(format!(
                        "{}: server took {:.1} s to exit after SIGTERM (contract: 2 s)",
                        self.name,
                        took.as_secs_f64()
                    ));
                }
                if !s.success() {
                    problems.push(format!(
                        "{}: server exited with {s} after SIGTERM (contract: 0)",
                        self.name
                    ));
                }
            }
        }
        // Give orphans a moment to see their closed pipes, then look for survivors.
        std::thread::sleep(Duration::from_millis(100));
        for k in kids {
            if let Some(s) = procstat::stat(k.pid).filter(|s| s.start == k.start && s.state != 'Z')
            {
                problems.push(format!(
                    "{}: child pid {} outlived the server (killed)",
                    self.name, s.pid
                ));
                // SAFETY: the pid is a process our server started (same start time), still alive.
                unsafe { libc::kill(s.pid as i32, libc::SIGKILL) };
            }
        }
        problems
    }
}

/// One blocking `GET path` (HTTP/1.0), returning the status code.
pub fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: voyandz-bench\r\n\r\n")
            .as_bytes(),
    )?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let r = s.read(&mut buf[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
}
