//! A private D-Bus system bus for the D-Bus tests: a real `dbus-daemon` with the system bus's
//! default-deny policy, the host's `/usr/share/dbus-1/system.d` (polkit's own policy) and the
//! shipped `dbus/org.voyandz.Voyandz1.conf`, listening on a socket in a temporary directory.
//! Clients find it through `DBUS_SYSTEM_BUS_ADDRESS`, which the daemon (zbus), `busctl`,
//! `voyandzctl` and polkitd all honour (SYSTEM-TESTS.md), so nothing on the host changes.
//! [`Polkit`] adds a real polkitd with the shipped action and rule, and test users, in a
//! private mount namespace.

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
        SystemBus::launch(Command::new("dbus-daemon"))
    }

    /// [`SystemBus::start`] with `daemon`: `dbus-daemon`, or a command that execs it in place
    /// (so that the spawned child is the bus).
    fn launch(mut daemon: Command) -> SystemBus {
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
        // Its complaints, and those of a command that execs it (`unshare`).
        let log = dir.path().join("dbus-daemon.log");
        let daemon = spawn_daemon(
            daemon
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
        self.start_server_by(Command::new(super::BIN), yaml)
    }

    /// [`SystemBus::start_server`], the daemon taking this bus for its session bus (`--bus
    /// session`): a bus anyone may connect to, where the session bus's rule (only the
    /// server's own user may change things) is all that stands between a caller and a Stop.
    pub fn start_session_server(&self, yaml: &str) -> Server {
        self.launch_server(Command::new(super::BIN), yaml, "session")
    }

    /// [`SystemBus::start_server`] by `program` (the daemon, or a command that execs it).
    fn start_server_by(&self, program: Command, yaml: &str) -> Server {
        self.launch_server(program, yaml, "system")
    }

    /// Starts `program` on `yaml` with `--bus kind` (`system` or `session`) on this bus, and
    /// waits until it owns its name.
    fn launch_server(&self, program: Command, yaml: &str, kind: &str) -> Server {
        let variable = format!("DBUS_{}_BUS_ADDRESS", kind.to_uppercase());
        let env = [(variable.as_str(), self.address())];
        let server = Server::launch(program, yaml, &["--bus", kind], &env, Vec::new());
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
        self.busctl_in_groups(uid, &[], args)
    }

    /// `busctl --system ARGS` on this bus, as user `uid` (its group: the same number) with
    /// the supplementary `groups`.
    pub fn busctl_in_groups(&self, uid: u32, groups: &[u32], args: &[&str]) -> Output {
        self.run_as(
            Some((uid, groups)),
            "busctl",
            &[&["--system"], args].concat(),
        )
    }

    /// `voyandzctl ARGS` on this bus, as user `uid` at a terminal of its own (`script` gives
    /// it a pseudo-terminal) with nothing typed there; what the terminal showed is stdout.
    pub fn ctl_at_terminal(&self, uid: u32, args: &[&str]) -> Output {
        let command_line: Vec<&str> = std::iter::once(CTL).chain(args.iter().copied()).collect();
        let script = [
            "--quiet",
            "--return",
            "--command",
            &command_line.join(" "),
            "/dev/null",
        ];
        self.run_as(Some((uid, &[])), "script", &script)
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

/// Debian's polkitd (not on PATH).
const POLKITD: &str = "/usr/lib/polkit-1/polkitd";
/// How long polkitd may take to own its name on the bus (0.13 s measured).
const POLKIT_START_TIMEOUT: Duration = Duration::from_secs(10);
/// polkit's well-known name.
const POLKIT_NAME: &str = "org.freedesktop.PolicyKit1";
/// A test user in [`ADMIN_GROUP`] (only in the copied `/etc/passwd` of [`Polkit`]).
pub const ALICE: u32 = 1501;
/// A test user in no group of polkit's rules (only in the copied `/etc/passwd` of [`Polkit`]).
pub const MALLORY: u32 = 1502;
/// `voyandz-admin`, the group that `polkit/50-voyandz.rules` lets manage the server; its
/// only member is [`ALICE`].
pub const ADMIN_GROUP: u32 = 1601;
/// `voyandz`, the user the daemon runs as under systemd (`User=voyandz`), in [`Polkit`]'s
/// user database: the bus policy lets it own the name, and polkit only answers it about
/// other users' calls because the action names it as its owner.
pub const SERVICE_USER: u32 = 1500;

/// Run as `sh -c AS_SERVICE_USER DAEMON -f CONFIG ...`: lets the service user into the
/// config's directory, then becomes that user and execs the daemon in place (same pid).
const AS_SERVICE_USER: &str = r#"chmod 0755 "$(dirname "$2")" && exec setpriv --reuid=1500 --regid=1500 --clear-groups -- "$0" "$@""#;

/// Run as `sh -c SETUP sh DIR DAEMON...`: bind-mounts the copies in `DIR` over polkit's
/// fixed dirs (the shipped action alone; the shipped rule alone; no vendor rules, so the
/// host's admin rule does not count) and over the user database, then execs the bus.
const POLKIT_NAMESPACE_SETUP: &str = r#"set -e
dir=$1
shift
mount --bind "$dir/actions" /usr/share/polkit-1/actions
mount --bind "$dir/rules.d" /etc/polkit-1/rules.d
mount --bind "$dir/vendor-rules.d" /usr/share/polkit-1/rules.d
mount --bind "$dir/passwd" /etc/passwd
mount --bind "$dir/group" /etc/group
exec "$@"
"#;

/// A real polkitd answering for the shipped action (`polkit/org.voyandz.Voyandz1.policy`)
/// and rule (`polkit/50-voyandz.rules`) on a private system bus that knows the test users
/// [`ALICE`] and [`MALLORY`]. Needs root (`unshare --mount`).
///
/// polkitd reads actions, rules and users only from fixed paths, so the bus is started in
/// a private mount namespace where copies are bind-mounted over them, and polkitd joins it
/// with `nsenter`. The bus must be in there too: dbus-daemon drops a connection whose uid
/// it cannot find in the user database (it looks up the user's groups for its policy).
/// Callers (`busctl_as`, `ctl_as`) and the daemon under test run on the host. Nothing on
/// the host changes. Dropping this stops polkitd, then the bus, and the namespace ends
/// with it.
pub struct Polkit {
    polkitd: Child,
    bus: SystemBus,
    /// The copies the namespace mounts, and polkitd's stderr.
    files: tempfile::TempDir,
}

impl Polkit {
    /// Starts the bus in its namespace, then polkitd, and waits until polkitd owns its name.
    pub fn start() -> Polkit {
        let files = tempfile::tempdir().expect("a temporary directory");
        let dir = files.path();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (name, shipped) in [
            ("actions", Some("org.voyandz.Voyandz1.policy")),
            ("rules.d", Some("50-voyandz.rules")),
            ("vendor-rules.d", None),
        ] {
            let copy = dir.join(name);
            std::fs::create_dir(&copy).expect("mkdir in the temporary directory");
            if let Some(file) = shipped {
                std::fs::copy(repo.join("polkit").join(file), copy.join(file))
                    .expect("copy a shipped polkit file");
            }
        }
        // The test users, added to the host's (root, nobody, and `polkitd`, whom polkitd
        // switches to when started as root). polkit's `isInGroup` looks groups up here, not
        // in the caller's process.
        extend(
            dir,
            "passwd",
            &format!(
                "alice:x:{ALICE}:{ALICE}::/nonexistent:/usr/sbin/nologin\n\
                 mallory:x:{MALLORY}:{MALLORY}::/nonexistent:/usr/sbin/nologin\n\
                 voyandz:x:{SERVICE_USER}:{SERVICE_USER}::/nonexistent:/usr/sbin/nologin\n"
            ),
        );
        extend(
            dir,
            "group",
            &format!(
                "alice:x:{ALICE}:\nmallory:x:{MALLORY}:\nvoyandz-admin:x:{ADMIN_GROUP}:alice\n\
                 voyandz:x:{SERVICE_USER}:\n"
            ),
        );

        let mut unshare = Command::new("unshare");
        unshare
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .args([POLKIT_NAMESPACE_SETUP, "sh"])
            .arg(dir)
            .arg("dbus-daemon");
        let bus = SystemBus::launch(unshare);
        let log = dir.join("polkitd.log");
        let polkitd = spawn_daemon(
            Command::new("nsenter")
                .args(["--target", &bus.daemon.id().to_string(), "--mount", "--"])
                .args([POLKITD, "--no-debug"])
                .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address()),
            &log,
        );
        let polkit = Polkit {
            polkitd,
            bus,
            files,
        };
        let on_bus = || {
            let names = polkit.bus.busctl(&["--no-pager", "list"]);
            String::from_utf8_lossy(&names.stdout).contains(POLKIT_NAME)
        };
        let what = "polkitd did not join the bus";
        wait_started(on_bus, POLKIT_START_TIMEOUT, what, &log);
        polkit
    }

    /// The bus polkitd serves.
    pub fn bus(&self) -> &SystemBus {
        &self.bus
    }

    /// Starts the daemon on `yaml` as [`SERVICE_USER`], as `voyandz.service` runs it, with
    /// D-Bus control on this bus; waits until it owns its name.
    pub fn start_server(&self, yaml: &str) -> Server {
        let mut program = Command::new("sh");
        program.args(["-c", AS_SERVICE_USER, super::BIN]);
        self.bus.start_server_by(program, yaml)
    }
}

impl Drop for Polkit {
    fn drop(&mut self) {
        let _ = self.polkitd.kill();
        let _ = self.polkitd.wait();
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

/// Copies the host's `/etc/NAME` into `dir` with `lines` added.
fn extend(dir: &Path, name: &str, lines: &str) {
    let host = std::fs::read_to_string(Path::new("/etc").join(name)).expect("read the host's file");
    std::fs::write(dir.join(name), host + lines).expect("write the copy");
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
