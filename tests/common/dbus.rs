//! A private D-Bus system bus for the D-Bus tests: a real `dbus-daemon` with the system bus's
//! default-deny policy, the host's `/usr/share/dbus-1/system.d` (polkit's own policy) and the
//! shipped `dbus/org.voyandz.Voyandz1.conf`, listening on a socket in a temporary directory.
//! Clients find it through `DBUS_SYSTEM_BUS_ADDRESS`, which the daemon (zbus), `busctl`,
//! `voyandzctl` and polkitd all honour (SYSTEM-TESTS.md), so nothing on the host changes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{Server, run_bounded, wait_until};

/// How long the bus may take to accept connections.
const BUS_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of one `busctl` or `voyandzctl` run (a screenshot decodes a picture).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the daemon may take to own its name once it serves HTTP.
const NAME_TIMEOUT: Duration = Duration::from_secs(20);
/// `nobody`: a caller that is neither root nor in any group of polkit's rules.
pub const NOBODY: u32 = 65534;

/// The CLI under test.
pub const CTL: &str = env!("CARGO_BIN_EXE_voyandzctl");

/// The system bus config: Debian's `system.conf` policy, a private socket, no fork, no
/// activation helper, no syslog.
const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>{policies}</includedir>
</busconfig>
"#;

/// A running private system bus; dropping it stops the bus.
pub struct SystemBus {
    daemon: Child,
    dir: tempfile::TempDir,
    address: String,
}

impl SystemBus {
    /// Starts a bus with the shipped policy and waits until it answers.
    pub fn start() -> SystemBus {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // Callers of other users (`setpriv`) must reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the bus directory");
        let policies = dir.path().join("system.d");
        std::fs::create_dir(&policies).expect("mkdir system.d");
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("dbus/org.voyandz.Voyandz1.conf");
        std::fs::copy(&shipped, policies.join("org.voyandz.Voyandz1.conf"))
            .expect("copy the shipped bus policy");
        let socket = dir.path().join("system_bus_socket");
        let config = dir.path().join("bus.conf");
        let text = BUS_CONFIG
            .replace("{socket}", &socket.display().to_string())
            .replace("{policies}", &policies.display().to_string());
        std::fs::write(&config, text).expect("write bus.conf");
        let log = dir.path().join("dbus-daemon.log");
        let daemon = spawn_daemon(
            Command::new("dbus-daemon")
                .arg(format!("--config-file={}", config.display()))
                .arg("--nofork"),
            &log,
        );
        let bus = SystemBus {
            daemon,
            address: format!("unix:path={}", socket.display()),
            dir,
        };
        let answers = || bus.busctl(&["--no-pager", "list"]).status.success();
        let what = "the private system bus does not answer";
        wait_started(answers, BUS_START_TIMEOUT, what, &log);
        bus
    }

    /// `DBUS_SYSTEM_BUS_ADDRESS` of this bus.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A temporary directory of this bus's, for test files.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Starts the daemon on `yaml` with D-Bus control on this bus, and waits until it owns
    /// its name.
    pub fn start_server(&self, yaml: &str) -> Server {
        let env = [("DBUS_SYSTEM_BUS_ADDRESS", self.address())];
        let server = Server::spawn_with_env(yaml, &["--bus", "system"], &env);
        server.wait_ready();
        assert!(
            server.wait_log("on D-Bus", NAME_TIMEOUT),
            "the daemon did not join the bus: {}",
            server.log_text()
        );
        server
    }

    /// `busctl --system ARGS` on this bus, as root.
    pub fn busctl(&self, args: &[&str]) -> Output {
        self.run_as(None, "busctl", &[&["--system"], args].concat())
    }

    /// `voyandzctl ARGS` on this bus, as root.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.run_as(None, CTL, args)
    }

    /// `voyandzctl ARGS` on this bus, as user `uid` (its group: the same number) with the
    /// supplementary `groups`.
    pub fn ctl_as(&self, uid: u32, groups: &[u32], args: &[&str]) -> Output {
        self.run_as(Some((uid, groups)), CTL, args)
    }

    /// `busctl --system ARGS` on this bus, as user `uid` with no supplementary group.
    pub fn busctl_as(&self, uid: u32, args: &[&str]) -> Output {
        self.run_as(Some((uid, &[])), "busctl", &[&["--system"], args].concat())
    }

    fn run_as(&self, user: Option<(u32, &[u32])>, program: &str, args: &[&str]) -> Output {
        let mut command = match user {
            None => Command::new(program),
            Some((uid, groups)) => {
                let mut setpriv = Command::new("setpriv");
                setpriv
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"));
                if groups.is_empty() {
                    setpriv.arg("--clear-groups");
                } else {
                    let list: Vec<String> = groups.iter().map(u32::to_string).collect();
                    setpriv.arg(format!("--groups={}", list.join(",")));
                }
                setpriv.arg("--").arg(program);
                setpriv
            }
        };
        command
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.address());
        run_bounded(&mut command, None, CALL_TIMEOUT)
    }
}

impl Drop for SystemBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Spawns a daemon with no stdin or stdout, and its stderr in the new file `log`, which
/// [`wait_started`] shows if the daemon does not start.
fn spawn_daemon(command: &mut Command, log: &Path) -> Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("create a daemon's log"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"))
}

/// Waits until `started`; panics after `timeout` with `what` and the daemon's `log`.
fn wait_started(started: impl FnMut() -> bool, timeout: Duration, what: &str, log: &Path) {
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    assert!(wait_until(started, timeout), "{what}: {}", log());
}

/// stdout of a run that must have succeeded.
pub fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
