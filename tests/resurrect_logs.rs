//! Resurrection is logged: each death of a feed that was running fine and each start of its
//! new process is a log line, however often it happens (only failures at start are
//! rate-limited: tests/resurrect.rs).

mod common;

use std::time::{Duration, Instant};

use common::{MPJPEG_SRC, Server, Signal, send_signal, wait_until};

const START: Duration = Duration::from_secs(20);
/// The scenario: two kills this far apart.
const KILL_GAP: Duration = Duration::from_secs(2);

#[test]
fn every_death_and_every_new_start_of_a_killed_feed_is_logged() {
    let server = Server::start(&format!(
        "feeds:\n  cam:\n    command: {MPJPEG_SRC}\nstreams:\n  s:\n    feed: cam\n    \
         mimetype: multipart/x-mixed-replace;boundary=ffmpeg\n"
    ));
    let mut client = server.open("/stream/s");
    client.read_at_least(5_000, START);
    let feed_pid = || server.children("testsrc2").first().copied();
    let mut killed_at = None;
    for kill in 0..2 {
        if let Some(at) = killed_at {
            // The scenario waits; the feed's new process is running meanwhile.
            std::thread::sleep(KILL_GAP.saturating_sub(Instant::elapsed(&at)));
        }
        let old = feed_pid().expect("the feed runs");
        send_signal(old, Signal::Kill);
        killed_at = Some(Instant::now());
        assert!(
            wait_until(
                || feed_pid().is_some_and(|pid| pid != old),
                Duration::from_secs(5)
            ),
            "kill {kill}: no new feed process: {:?}",
            server.descendants()
        );
        client.read_at_least(5_000, START);
    }
    let count = |needle: &str| {
        server
            .log_lines()
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    };
    let logged = wait_until(
        || count("died; resurrecting") == 2 && count(" started") == 3,
        Duration::from_secs(10),
    );
    assert!(
        logged,
        "{} death lines and {} started lines:\n{}",
        count("died; resurrecting"),
        count(" started"),
        server.log_text()
    );
}
