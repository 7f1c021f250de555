//! Who may change the server over D-Bus, decided by a real polkitd with the shipped action
//! and rule ([`common::dbus::Polkit`]), called with `busctl` as root, as a member of
//! `voyandz-admin` and as a user outside it; the session bus's rule instead of polkit (only
//! the server's own user); and the shipped action file itself.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::dbus::{
    ADMIN_GROUP, ALICE, CALL_TIMEOUT, MALLORY, NOBODY, Polkit, SystemBus, succeeded,
};
use common::{Server, wait_until};

/// A feed nobody watches: it stays `idle` until someone stops it.
const YAML: &str = "feeds:\n  cam:\n    command: cat /dev/zero\nstreams:\n  raw:\n    feed: cam\n    mimetype: application/octet-stream\n";
const SERVICE: &str = "org.voyandz.Voyandz1";
const FEED_PATH: &str = "/org/voyandz/Voyandz1/feed/cam";
const FEED: &str = "org.voyandz.Voyandz1.Feed";
/// How long the server may take to log a denial or show a new state.
const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `busctl` arguments that stop the feed `cam`.
const STOP: [&str; 5] = ["call", SERVICE, FEED_PATH, FEED, "Stop"];
/// `voyandzctl` arguments that stop the feed `cam`.
const STOP_CTL: [&str; 3] = ["stop", "feed", "cam"];
/// `busctl` arguments that read the feed's state.
const GET_STATE: [&str; 5] = ["get-property", SERVICE, FEED_PATH, FEED, "State"];

/// The feed's `State` as `busctl` prints it (`s "idle"`), read as root.
fn state(bus: &SystemBus) -> String {
    succeeded(&bus.busctl(&GET_STATE)).trim().to_owned()
}

/// Asserts that `output` is busctl's answer to a call that `server` refused, and that the
/// server logged the denial with the caller's `uid` and a reason containing `reason`.
fn assert_denied(server: &Server, output: &Output, uid: u32, reason: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("Access denied"),
        "not denied ({}): {stderr}",
        output.status
    );
    let logged = |line: &str| {
        line.contains("D-Bus call denied")
            && line.contains(&format!("uid={uid}"))
            && line.contains(reason)
    };
    assert!(
        server.wait_log_line(logged, EFFECT_TIMEOUT),
        "no denial of uid {uid} because {reason}: {}",
        server.log_text()
    );
}

#[test]
fn a_user_outside_the_admin_group_is_denied_and_the_denial_logged() {
    let polkit = Polkit::start();
    let bus = polkit.bus();
    let server = polkit.start_server(YAML);
    // No agent can ask for the administrator's password that the action's auth_admin wants.
    let reason = "polkit asks for authentication";
    assert_denied(&server, &bus.busctl_as(MALLORY, &STOP), MALLORY, reason);
    assert_eq!(state(bus), "s \"idle\"", "a denied Stop stopped the feed");
}

#[test]
fn a_call_that_lets_no_password_be_asked_is_told_one_would_do() {
    let polkit = Polkit::start();
    let bus = polkit.bus();
    let server = polkit.start_server(YAML);
    let no_interaction = [&["--allow-interactive-authorization=no"][..], &STOP].concat();
    let output = bus.busctl_as(MALLORY, &no_interaction);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Only an InteractiveAuthorizationRequired answer says so.
    assert!(
        !output.status.success() && stderr.contains("call again allowing interactive"),
        "{stderr}"
    );
    let logged = |line: &str| line.contains("D-Bus call denied") && line.contains("call again");
    assert!(
        server.wait_log_line(logged, EFFECT_TIMEOUT),
        "{}",
        server.log_text()
    );
    assert_eq!(state(bus), "s \"idle\"");
}

#[test]
fn a_member_of_the_admin_group_is_allowed() {
    let polkit = Polkit::start();
    let bus = polkit.bus();
    let server = polkit.start_server(YAML);
    succeeded(&bus.busctl_in_groups(ALICE, &[ADMIN_GROUP], &STOP));
    assert!(
        wait_until(|| state(bus) == "s \"stopped\"", EFFECT_TIMEOUT),
        "the feed is {}: {}",
        state(bus),
        server.log_text()
    );
}

#[test]
fn root_is_allowed() {
    let polkit = Polkit::start();
    let bus = polkit.bus();
    let _server = polkit.start_server(YAML);
    let reload = [
        "call",
        SERVICE,
        "/org/voyandz/Voyandz1",
        "org.voyandz.Voyandz1.Manager",
        "Reload",
    ];
    let answer = succeeded(&bus.busctl(&reload));
    assert!(answer.starts_with("s \""), "{answer}");
}

#[test]
fn reading_properties_needs_no_authorisation() {
    let polkit = Polkit::start();
    let bus = polkit.bus();
    let _server = polkit.start_server(YAML);
    assert_eq!(
        succeeded(&bus.busctl_as(MALLORY, &GET_STATE)).trim(),
        "s \"idle\""
    );
}

#[test]
fn without_polkit_only_root_may_change_things() {
    let bus = SystemBus::start();
    let server = bus.start_server(YAML);
    let reason = "polkit cannot be asked";
    assert_denied(&server, &bus.busctl_as(NOBODY, &STOP), NOBODY, reason);
    succeeded(&bus.busctl(&STOP));
}

/// At a terminal voyandzctl starts polkit's text agent, which registers for the user's login
/// session; here there is none (no logind), so nothing can ask for the password: the call is
/// refused with polkit's reason, and voyandzctl neither hangs nor fails otherwise. (The prompt
/// itself, in a real login session, is `make e2e`'s `password` check.)
#[test]
fn at_a_terminal_outside_a_login_session_a_call_that_needs_a_password_is_refused() {
    let polkit = Polkit::start();
    let bus = polkit.bus();
    let server = polkit.start_server(YAML);
    for args in [
        &STOP_CTL[..],
        &[&["--no-ask-password"][..], &STOP_CTL].concat(),
    ] {
        let shown = bus.ctl_at_terminal(MALLORY, args);
        let terminal = String::from_utf8_lossy(&shown.stdout);
        assert_eq!(shown.status.code(), Some(4), "{args:?}: {terminal}");
        assert!(
            terminal.contains("polkit asks for authentication"),
            "{args:?}: {terminal}"
        );
    }
    assert_eq!(state(bus), "s \"idle\"", "a denied Stop stopped the feed");
    assert!(server.wait_log("D-Bus call denied", EFFECT_TIMEOUT));
}

#[test]
fn on_a_session_bus_only_the_servers_own_user_may_change_things() {
    let bus = SystemBus::start();
    let server = bus.start_session_server(YAML);
    assert_eq!(server.status_json()["server"]["dbus"], "session");
    let reason = "only the server's own user may change it on a session bus";
    assert_denied(&server, &bus.busctl_as(NOBODY, &STOP), NOBODY, reason);
    assert_eq!(state(&bus), "s \"idle\"", "a denied Stop stopped the feed");
    // The server runs as root here: its own user.
    succeeded(&bus.busctl(&STOP));
    assert_eq!(state(&bus), "s \"stopped\"");
}

#[test]
fn the_shipped_action_is_valid_against_polkits_dtd() {
    let policy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/polkit/org.voyandz.Voyandz1.policy"
    );
    let output = common::run_bounded(
        Command::new("xmllint").args([
            "--noout",
            "--dtdvalid",
            "/usr/share/polkit-1/policyconfig-1.dtd",
            policy,
        ]),
        None,
        CALL_TIMEOUT,
    );
    succeeded(&output);
}
