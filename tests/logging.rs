//! The log (stderr): every line starts with `YYYY-mm-dd hh:mm:ss.sss `, the first line
//! names the program and its version, connections and their ends are logged with peer,
//! path and user agent, and children's stderr lines carry the feed or stream name.

mod common;

use std::time::Duration;

use common::{Server, has_timestamp};

const START: Duration = Duration::from_secs(20);

#[test]
fn timestamp_matcher_works() {
    assert!(has_timestamp("2026-11-24 18:47:51.756 INFO voyandz 0.1.0"));
    assert!(!has_timestamp("2026-11-24 18:47:51 INFO no millis"));
    assert!(!has_timestamp("INFO 2026-11-24 18:47:51.756"));
}

#[test]
fn every_line_has_the_timestamp_and_the_first_names_the_version() {
    let mut server = Server::start(
        "feeds:\n  noisy:\n    command: sh -c 'echo feed-stderr-line >&2; while :; do echo x; sleep 0.05; done'\nstreams:\n  s:\n    feed: noisy\n    command: sh -c 'echo stream-stderr-line >&2; exec cat'\n    mimetype: text/plain\n  gone:\n    command: voyandz-test-no-such-command\n    mimetype: text/plain\n",
    );
    let mut client = server.open("/stream/s");
    client.read_at_least(20, START);
    assert_eq!(server.get("/nope").status, 404);
    assert_eq!(server.get("/stream/gone").status, 502);
    assert!(server.wait_log("feed-stderr-line", Duration::from_secs(5)));
    assert!(server.wait_log("stream-stderr-line", Duration::from_secs(5)));
    client.close();
    assert!(server.wait_log("client disconnected", Duration::from_secs(5)));
    server.stop();

    let lines = server.log_lines();
    let first = lines.first().expect("a log");
    assert!(
        first.contains("voyandz") && first.contains(env!("CARGO_PKG_VERSION")),
        "first line names the program and version: {first}"
    );
    let bad: Vec<&String> = lines.iter().filter(|l| !has_timestamp(l)).collect();
    assert!(
        bad.is_empty(),
        "lines without the timestamp prefix: {bad:#?}"
    );
    // One space between the timestamp and the level, which is one word.
    for line in &lines {
        let level = line[24..].split(' ').next().unwrap_or_default();
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
            "level {level:?} in {line}"
        );
    }
}

#[test]
fn connections_and_their_ends_are_logged() {
    let server = Server::start(
        "streams:\n  s:\n    command: sh -c 'while :; do echo x; sleep 0.05; done'\n    mimetype: text/plain\n",
    );
    let mut client = server.open("/stream/s");
    client.read_at_least(20, START);
    client.close();
    assert!(server.wait_log("client disconnected", Duration::from_secs(5)));
    let lines = server.log_lines();
    let connected = lines
        .iter()
        .find(|l| l.contains("client connected") && l.contains("path=/stream/s"))
        .expect("a `client connected` line for /stream/s");
    assert!(connected.contains("peer=127.0.0.1:"), "{connected}");
    assert!(
        connected.contains("voyandz-tests"),
        "user agent: {connected}"
    );
    let ended = lines
        .iter()
        .find(|l| l.contains("client disconnected") && l.contains("path=/stream/s"))
        .expect("a `client disconnected` line");
    assert!(ended.contains("peer=127.0.0.1:"), "{ended}");
    assert!(ended.contains("bytes="), "bytes sent: {ended}");
    assert!(ended.contains("duration="), "duration: {ended}");
    assert!(ended.contains("reason="), "why it ended: {ended}");
}

#[test]
fn child_stderr_lines_name_their_feed_or_stream() {
    let server = Server::start(
        "feeds:\n  chatty:\n    command: sh -c 'echo hello-from-feed >&2; while :; do echo x; sleep 0.05; done'\nstreams:\n  s:\n    feed: chatty\n    command: sh -c 'echo hello-from-stream >&2; exec cat'\n    mimetype: text/plain\n",
    );
    let mut client = server.open("/stream/s");
    client.read_at_least(20, START);
    assert!(server.wait_log("hello-from-feed", Duration::from_secs(5)));
    assert!(server.wait_log("hello-from-stream", Duration::from_secs(5)));
    let lines = server.log_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("hello-from-feed") && l.contains("feed=chatty")),
        "feed stderr with feed=chatty"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("hello-from-stream") && l.contains("stream=s")),
        "stream stderr with stream=s"
    );
}

#[test]
fn logdir_gets_a_file_per_child() {
    let server = Server::start(
        "logdir: {tmp}/logs\nfeeds:\n  chatty:\n    command: sh -c 'echo to-logdir >&2; while :; do echo x; sleep 0.05; done'\nstreams:\n  s:\n    feed: chatty\n    mimetype: text/plain\n",
    );
    let mut client = server.open("/stream/s");
    client.read_at_least(20, START);
    let logs = server.dir().join("logs");
    assert!(
        common::wait_until(
            || std::fs::read_dir(&logs).is_ok_and(|entries| entries.flatten().any(|e| {
                std::fs::read_to_string(e.path()).is_ok_and(|s| s.contains("to-logdir"))
            })),
            Duration::from_secs(5)
        ),
        "a file under logdir holds the feed's stderr"
    );
}
