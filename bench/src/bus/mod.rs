//! A private D-Bus system bus for the `dbus` section: a real `dbus-daemon` on the host's own
//! system bus config (Debian's `/usr/share/dbus-1/system.conf`: its default-deny policy, its
//! limits, the host's `system.d` policies) plus the repo's policy for voyandz
//! (`dbus/org.voyandz.Voyandz1.conf`, compiled into the bench), listening on a socket in the
//! bench's scratch directory instead of `/run/dbus`. The server and the poller ([`poller`])
//! find it through `DBUS_SYSTEM_BUS_ADDRESS`, so nothing on the host changes.
//!
//! One difference from the host's bus: the daemon stays the bench's user (root) instead of
//! switching to `messagebus`, because a change of user would clear the parent-death signal
//! that makes it an [`OwnedChild`] (never left running, whatever way the bench ends). The
//! policy depends on who the callers are, not on the daemon's own user.

pub mod poller;

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::OwnedChild;

/// The host's system bus config (Debian's dbus-system-bus-common).
const SYSTEM_CONF: &str = "/usr/share/dbus-1/system.conf";
/// The bus policy voyandz installs (who may own its name, who may call it).
const POLICY: &str = include_str!("../../../dbus/org.voyandz.Voyandz1.conf");
/// How long the daemon may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// What `make bench` installs for this bus.
const INSTALL: &str = "run scripts/setup-bench.sh, as make bench does";

/// A running private system bus; dropping it kills the daemon.
pub struct SystemBus {
    daemon: OwnedChild,
    address: String,
}

impl SystemBus {
    /// Writes the bus's config into `dir/bus/`, starts `dbus-daemon` on it and waits until its
    /// socket accepts connections; on failure, why.
    pub fn start(dir: &Path) -> Result<SystemBus, String> {
        if !Path::new(SYSTEM_CONF).exists() {
            return Err(format!("{SYSTEM_CONF} is missing: {INSTALL}"));
        }
        let home = dir.join("bus");
        let policies = home.join("system.d");
        let io = |what: &str, e: std::io::Error| format!("{what} in {}: {e}", home.display());
        std::fs::create_dir_all(&policies).map_err(|e| io("mkdir", e))?;
        std::fs::write(policies.join("org.voyandz.Voyandz1.conf"), POLICY)
            .map_err(|e| io("write the policy", e))?;
        let config = home.join("bus.conf");
        let text = format!(
            "<busconfig>\n  <include>{SYSTEM_CONF}</include>\n  <user>root</user>\n  <includedir>{}</includedir>\n</busconfig>\n",
            policies.display()
        );
        std::fs::write(&config, text).map_err(|e| io("write bus.conf", e))?;
        let socket = home.join("system_bus_socket");
        let log = home.join("dbus-daemon.log");
        let log_file = std::fs::File::create(&log).map_err(|e| io("create the log", e))?;
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg(format!("--config-file={}", config.display()))
            .arg(format!("--address=unix:path={}", socket.display()))
            .args(["--nofork", "--nopidfile", "--nosyslog"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        let mut daemon = OwnedChild::spawn(&mut cmd).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("dbus-daemon is not installed: {INSTALL}"),
            _ => format!("spawn dbus-daemon: {e}"),
        })?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while UnixStream::connect(&socket).is_err() {
            let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(status) = daemon.exited() {
                return Err(format!(
                    "dbus-daemon exited at start ({status}): {}",
                    log_text()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "dbus-daemon does not accept connections within {READY_TIMEOUT:?}: {}",
                    log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(SystemBus {
            daemon,
            address: format!("unix:path={}", socket.display()),
        })
    }

    /// `DBUS_SYSTEM_BUS_ADDRESS` of this bus.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The daemon's pid (its CPU is measured beside the server's).
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }
}
