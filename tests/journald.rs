//! Logging to the journal (issue 20, point 3): under systemd (`JOURNAL_STREAM` names our
//! stderr) or with `--log journal`, every line is a native journal entry whose `MESSAGE`
//! starts with the spec's timestamp, with `PRIORITY` from the level and the fields `FEED`,
//! `STREAM`, `CLIENT`, `CHILD_PID`; nothing goes to stderr then. Without a journal to write
//! to, the lines go to stderr, with one warning. Each test has a journald of its own in a
//! private mount namespace (root), read back with `journalctl`.

mod common;

use std::time::Duration;

use common::{JournalNamespace, START_TIMEOUT, Server, has_timestamp};
use serde_json::{Map, Value};

/// A feed (endless text lines, no ffmpeg, and one line on stderr), a stream piping it
/// through `cat`, and a stream whose command does not exist (a warning when asked for).
const CONFIG: &str = "feeds:
  f:
    command: sh -c 'echo warming up >&2; while :; do echo tick; sleep 0.05; done'
streams:
  s:
    feed: f
    command: cat
    mimetype: text/plain
  gone:
    command: voyandz-test-no-such-command
    mimetype: text/plain
";

/// A field of an entry as a string (`None` if missing; a repeated field fails the test).
fn field<'a>(entry: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    entry.get(name).map(|value| {
        value
            .as_str()
            .unwrap_or_else(|| panic!("{name} is not one string: {value}"))
    })
}

fn message(entry: &Map<String, Value>) -> &str {
    field(entry, "MESSAGE").expect("every entry has a MESSAGE")
}

/// The entry whose MESSAGE, after the timestamp, contains `text` and that `wanted` accepts.
fn find<'a>(
    entries: &'a [Map<String, Value>],
    text: &str,
    wanted: impl Fn(&Map<String, Value>) -> bool,
) -> &'a Map<String, Value> {
    entries
        .iter()
        .find(|entry| message(entry).contains(text) && wanted(entry))
        .unwrap_or_else(|| panic!("no entry with {text:?} among {entries:#?}"))
}

fn first_line() -> String {
    format!(" INFO voyandz {} starting", env!("CARGO_PKG_VERSION"))
}

fn is_pid(value: Option<&str>) -> bool {
    value.is_some_and(|pid| pid.parse::<u32>().is_ok_and(|pid| pid > 1))
}

#[test]
fn entries_carry_the_stamped_line_its_priority_and_the_fields() {
    let journal = JournalNamespace::with_journald();
    let mut server = Server::start_in(&journal, CONFIG, &["--log", "journal"], &[]);
    let mut client = server.open("/stream/s");
    client.read_at_least(10, START_TIMEOUT);
    client.close();
    assert_eq!(server.get("/stream/gone").status, 502);
    server.stop();
    let entries = journal.entries(server.pid());

    assert!(
        message(&entries[0])[23..].starts_with(&first_line()),
        "the first entry names the program and version: {:?}",
        entries[0]
    );
    for entry in &entries {
        let message = message(entry);
        assert!(has_timestamp(message), "MESSAGE {message:?}");
        let level = message[24..].split(' ').next().unwrap_or_default();
        let priority = match level {
            "ERROR" => "3",
            "WARN" => "4",
            "INFO" => "6",
            _ => "7",
        };
        assert_eq!(field(entry, "PRIORITY"), Some(priority), "{message}");
        assert_eq!(field(entry, "SYSLOG_IDENTIFIER"), Some("voyandz"));
    }
    assert!(
        entries.iter().any(|e| field(e, "PRIORITY") == Some("4")),
        "the missing command gives a warning: {entries:#?}"
    );

    let feed = find(&entries, " INFO started ", |e| {
        field(e, "FEED") == Some("f")
    });
    assert!(is_pid(field(feed, "CHILD_PID")), "{feed:?}");
    assert_eq!(field(feed, "STREAM"), None);
    let stream = find(&entries, " INFO started ", |e| {
        field(e, "STREAM") == Some("s")
    });
    assert!(is_pid(field(stream, "CHILD_PID")), "{stream:?}");
    assert_ne!(field(stream, "CHILD_PID"), field(feed, "CHILD_PID"));
    let said = find(&entries, "child stderr", |e| {
        message(e).contains("warming up")
    });
    assert_eq!(field(said, "FEED"), Some("f"), "{said:?}");
    assert_eq!(
        field(said, "CHILD_PID"),
        field(feed, "CHILD_PID"),
        "a child's stderr line names the run that wrote it: {said:?}"
    );
    for text in ["client connected", "client disconnected"] {
        let client = find(&entries, text, |e| message(e).contains("path=/stream/s"));
        let peer = field(client, "CLIENT").unwrap_or_default();
        assert!(peer.starts_with("127.0.0.1:"), "{client:?}");
        assert!(
            message(client).contains(&format!("peer={peer}")),
            "{client:?}"
        );
    }
    let refused = find(&entries, "", |e| {
        field(e, "PRIORITY") == Some("4") && field(e, "STREAM") == Some("gone")
    });
    assert!(message(refused).contains("WARN"), "{refused:?}");

    assert!(
        server.log_lines().is_empty(),
        "with --log journal nothing goes to stderr: {}",
        server.log_text()
    );
}

#[test]
fn journal_stream_naming_our_stderr_selects_the_journal() {
    let journal = JournalNamespace::with_journald();
    // What systemd sets for a service whose stderr is the journal...
    let mut ours = Server::start_in(&journal, CONFIG, &[], &[("JOURNAL_STREAM", "{stderr}")]);
    // ...and what a program started by such a service inherits with another stderr.
    let other = {
        use std::os::unix::fs::MetadataExt;
        let root = std::fs::metadata("/").expect("stat /");
        format!("{}:{}", root.dev(), root.ino())
    };
    let mut inherited = Server::start_in(&journal, CONFIG, &[], &[("JOURNAL_STREAM", &other)]);
    ours.stop();
    inherited.stop();

    let entries = journal.entries(ours.pid());
    assert!(
        entries
            .first()
            .is_some_and(|entry| message(entry)[23..].starts_with(&first_line())),
        "{entries:#?}"
    );
    assert!(ours.log_lines().is_empty(), "{}", ours.log_text());

    assert_eq!(journal.entries(inherited.pid()), []);
    let lines = inherited.log_lines();
    assert!(
        lines
            .first()
            .is_some_and(|line| line[23..].starts_with(&first_line())),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|line| has_timestamp(line)), "{lines:#?}");
}

#[test]
fn without_journald_lines_go_to_stderr_after_one_warning() {
    let namespace = JournalNamespace::without_journald();
    let asked = Server::start_in(&namespace, CONFIG, &["--log", "journal"], &[]);
    let detected = Server::start_in(&namespace, CONFIG, &[], &[("JOURNAL_STREAM", "{stderr}")]);
    for mut server in [asked, detected] {
        assert_eq!(server.get("/nope").status, 404);
        server.stop();
        let lines = server.log_lines();
        assert!(
            lines[0][23..].starts_with(&first_line()),
            "the first line still comes first: {lines:#?}"
        );
        assert!(
            lines[1][23..].starts_with(" WARN cannot log to the journal; logging to stderr"),
            "{lines:#?}"
        );
        let warnings = lines.iter().filter(|l| l.contains("journal")).count();
        assert_eq!(warnings, 1, "{lines:#?}");
        assert!(
            server.wait_log("client connected", Duration::from_secs(5)),
            "the rest of the log is on stderr: {lines:#?}"
        );
    }
}
