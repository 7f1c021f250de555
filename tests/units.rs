//! The systemd files of `systemd/`, checked by systemd's own tools (no systemd as PID 1 is
//! needed): `systemd-analyze verify` finds nothing to say about the units,
//! `systemd-analyze security` rates the service's sandbox at most 2.0 ("OK"), and
//! `systemd-sysusers` makes the `voyandz` user in the device groups.
//!
//! Running them under a real systemd (socket activation, reload, watchdog, journal, stop) is
//! `make e2e` (scripts/systemd-e2e.sh), which needs root and a container.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{run_bounded, unit_copies};

/// `systemd-analyze` loads the unit set of the host; a few seconds on 2 busy cores.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// The highest exposure the service may have, in `--threshold`'s unit. systemd 252 takes an
/// integer on the 0-100 scale of which it prints a tenth: 20 is the printed "2.0" (and
/// `--threshold=2.0` does not parse: `Failed to parse threshold: 2.0`).
const EXPOSURE_MAX: u32 = 20;

/// stdout and stderr together, as a person at a terminal would see them.
fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `systemd-analyze verify --man=no` of the units, bounded.
fn verify(units: &[&Path]) -> Output {
    run_bounded(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(units),
        None,
        TOOL_TIMEOUT,
    )
}

#[test]
fn verify_says_nothing_about_the_units() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (socket, service) = unit_copies(dir.path());
    let out = verify(&[&socket, &service]);
    // verify exits 0 on a unit it had to partly ignore ("Unknown key ... ignoring"), so any
    // output at all is a failure. `User=voyandz` does not exist on a build machine, and 252
    // does not mind: no line is filtered.
    let text = all_output(&out);
    assert!(
        out.status.success() && text.is_empty(),
        "systemd-analyze verify: exit {:?}, output:\n{text}",
        out.status.code()
    );
}

#[test]
fn verify_would_report_a_broken_unit() {
    // The check above is only worth something if verify speaks up on this machine: a typo
    // in the service type, which it ignores with a message and exit 0.
    let dir = tempfile::tempdir().expect("temporary directory");
    let (socket, service) = unit_copies(dir.path());
    let text = std::fs::read_to_string(&service).expect("read the copy");
    std::fs::write(&service, text.replace("Type=notify", "Type=notifyy")).expect("write");
    let out = verify(&[&socket, &service]);
    let text = all_output(&out);
    assert!(
        text.contains("notifyy"),
        "verify reports the bad Type=: exit {:?}, output:\n{text}",
        out.status.code()
    );
}

#[test]
fn security_rates_the_service_at_most_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (_, service) = unit_copies(dir.path());
    let out = run_bounded(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--threshold={EXPOSURE_MAX}"))
            .arg(&service),
        None,
        TOOL_TIMEOUT,
    );
    let text = all_output(&out);
    let overall = text
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{text}"));
    println!("{overall}");
    let findings: Vec<&str> = text.lines().filter(|l| l.starts_with('✗')).collect();
    println!("open findings:\n{}", findings.join("\n"));
    assert!(
        out.status.success(),
        "exposure above {EXPOSURE_MAX} (exit {:?}):\n{text}",
        out.status.code()
    );
    // The printed figure agrees with the exit code (a tool update changing the scale shows).
    let score: f64 = overall
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {overall:?}"));
    assert!(score <= f64::from(EXPOSURE_MAX) / 10.0, "{overall}");
}

#[test]
fn sysusers_makes_a_system_user_in_the_device_groups() {
    // A root of its own with Debian's device groups, so the host's users stay untouched.
    let root = tempfile::tempdir().expect("temporary directory");
    let etc = root.path().join("etc");
    std::fs::create_dir(&etc).expect("etc");
    std::fs::write(etc.join("group"), "root:x:0:\naudio:x:29:\nvideo:x:44:\n").expect("group");
    std::fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/bash\n").expect("passwd");
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/voyandz.sysusers");
    let out = run_bounded(
        Command::new("systemd-sysusers")
            .arg(format!("--root={}", root.path().display()))
            .arg(&conf),
        None,
        TOOL_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "systemd-sysusers:\n{}",
        all_output(&out)
    );

    let passwd = std::fs::read_to_string(etc.join("passwd")).expect("passwd");
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("voyandz:"))
        .unwrap_or_else(|| panic!("no voyandz user in:\n{passwd}"))
        .split(':')
        .collect();
    let uid: u32 = user[2].parse().expect("uid");
    assert!(uid > 0 && uid < 1000, "a system uid: {user:?}");
    assert_eq!(user[5], "/var/lib/voyandz", "home = StateDirectory");
    assert!(user[6].ends_with("nologin"), "no login shell: {user:?}");

    let groups = std::fs::read_to_string(etc.join("group")).expect("group");
    for group in ["video", "audio", "render", "voyandz"] {
        let line = groups
            .lines()
            .find(|l| l.starts_with(&format!("{group}:")))
            .unwrap_or_else(|| panic!("no group {group} in:\n{groups}"));
        if group != "voyandz" {
            let members = line.rsplit(':').next().unwrap_or_default();
            assert!(
                members.split(',').any(|m| m == "voyandz"),
                "voyandz is in {group}: {line}"
            );
        }
    }
    // The groups that existed keep their IDs (the device nodes' groups).
    assert!(groups.contains("video:x:44:voyandz") && groups.contains("audio:x:29:voyandz"));
}

#[test]
fn only_the_socket_starts_the_service() {
    // Design, not syntax (verify is happy either way): an [Install] section would let
    // `systemctl enable voyandz.service` start the daemon and its feeds at boot for nobody.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let service = std::fs::read_to_string(dir.join("voyandz.service")).expect("service");
    assert!(
        !service.lines().any(|line| line.trim() == "[Install]"),
        "voyandz.service has no [Install]"
    );
    let socket = std::fs::read_to_string(dir.join("voyandz.socket")).expect("socket");
    assert!(socket.contains("\n[Install]\nWantedBy=sockets.target\n"));
    assert!(socket.contains("\nFileDescriptorName=http\n"));
}
