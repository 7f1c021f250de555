//! Resurrection: a feed killed while in use comes back at once and its clients keep
//! receiving; `no-resurrect` stays dead; a crash-looping feed neither burns CPU nor floods
//! the log, and the server stays up.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Signal, holds_for, send_signal, ticker, wait_until};

const START: Duration = Duration::from_secs(20);

#[test]
fn feed_killed_is_resurrected_and_clients_keep_receiving() {
    let server = Server::start(&format!(
        "feeds:\n  f:\n    command: {}\nstreams:\n  s:\n    feed: f\n    command: cat\n    mimetype: text/plain\n",
        ticker("resfeed")
    ));
    let mut client = server.open("/stream/s");
    client.read_at_least(100, START);
    let feed_pid = |server: &Server| server.children("resfeed").first().copied();
    let old = feed_pid(&server).expect("the feed runs");

    send_signal(old, Signal::Kill);
    let killed = Instant::now();
    assert!(
        wait_until(
            || feed_pid(&server).is_some_and(|pid| pid != old),
            Duration::from_secs(5)
        ),
        "no new feed process {:?} after SIGKILL: {:?}",
        killed.elapsed(),
        server.descendants()
    );
    // At once (no backoff): it had been running fine before it was killed.
    assert!(
        killed.elapsed() < Duration::from_secs(2),
        "resurrected only after {:?}",
        killed.elapsed()
    );
    // The same client connection goes on receiving the new feed's bytes.
    let after = client.read_at_least(200, Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&after).contains("resfeed\n"));
    assert!(!client.is_finished(), "the client connection survived");
}

#[test]
fn ffmpeg_feed_killed_is_resurrected_for_an_mpjpeg_client() {
    let server = Server::start(&format!(
        "feeds:\n  cam:\n    command: {}\nstreams:\n  s:\n    feed: cam\n    mimetype: multipart/x-mixed-replace;boundary=ffmpeg\n",
        common::MPJPEG_SRC
    ));
    let mut client = server.open("/stream/s");
    client.read_at_least(5_000, START);
    let find = |server: &Server| server.children("testsrc2=size=160x120").first().copied();
    let old = find(&server).expect("the feed runs");
    send_signal(old, Signal::Kill);
    assert!(
        wait_until(
            || find(&server).is_some_and(|pid| pid != old),
            Duration::from_secs(5)
        ),
        "feed not resurrected: {:?}",
        server.descendants()
    );
    let after = client.read_at_least(20_000, START);
    assert!(
        after.windows(8).any(|w| w == b"--ffmpeg"),
        "mpjpeg parts keep coming"
    );
}

#[test]
fn no_resurrect_feed_is_not_started_again() {
    let server = Server::start(
        "feeds:\n  once:\n    command: sh -c 'echo run >> {tmp}/once; echo data; sleep 0.3'\n    mode: continuous\n    no-resurrect: true\n  again:\n    command: sh -c 'echo run >> {tmp}/again; echo data; sleep 0.3'\n    mode: continuous\nstreams:\n  s:\n    feed: once\n    mimetype: text/plain\n",
    );
    let runs = |name: &str| {
        std::fs::read_to_string(server.dir().join(name))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    assert!(
        wait_until(|| runs("again") >= 3, Duration::from_secs(15)),
        "the feed without no-resurrect keeps being resurrected ({} runs)",
        runs("again")
    );
    assert_eq!(runs("once"), 1, "no-resurrect: started once only");
    assert!(holds_for(|| runs("once") == 1, Duration::from_secs(1)));
}

/// SPEC: "There should be no limit to resurrection attempts, however repeated failures
/// should have limited error logging." The issue's bound: ≤ 20 log lines a minute after the
/// first failure, and little CPU. Checked here over 10 s (the benchmark checks 30 s).
#[test]
fn crash_looping_feed_is_bounded_in_cpu_and_log_lines() {
    let server = Server::start(
        "feeds:\n  crashy:\n    command: sh -c 'echo x >> {tmp}/attempts; echo boom >&2; exit 1'\n    mode: continuous\nstreams:\n  s:\n    feed: crashy\n    mimetype: text/plain\n",
    );
    assert!(
        server.wait_log("boom", Duration::from_secs(10)),
        "the first failure is logged with the feed's stderr"
    );
    let first = server.log_lines().len();
    let attempts = || {
        std::fs::read_to_string(server.dir().join("attempts"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let attempts_before = attempts();
    let cpu_before = server_cpu(&server);
    let window = Duration::from_secs(10);
    let started = Instant::now();
    // Meanwhile the server answers as usual.
    while started.elapsed() < window {
        assert_eq!(server.get("/nope").status, 404);
        std::thread::sleep(Duration::from_millis(500));
    }
    let cpu = server_cpu(&server) - cpu_before;
    let lines: Vec<String> = server.log_lines()[first..]
        .iter()
        .filter(|l| l.contains("crashy") || l.contains("boom"))
        .cloned()
        .collect();
    // ≤ 20 a minute cannot hold if 10 s after the first failure already had more than 20.
    assert!(
        lines.len() <= 20,
        "{} log lines about the crash loop in {window:?} after the first:\n{}",
        lines.len(),
        lines.join("\n")
    );
    // < 1 % of a core is the benchmark's bound over 30 s; over these 10 s of a debug build
    // allow 3 % (300 ms of CPU time), including the reaped children.
    assert!(
        cpu <= Duration::from_millis(300),
        "server + children used {cpu:?} of CPU in {window:?}"
    );
    assert!(server.is_running());
    // It never gives up (SPEC: "no limit to resurrection attempts"), only slows down.
    assert!(
        attempts() >= attempts_before + 2,
        "{} attempts before the window, {} after it",
        attempts_before,
        attempts()
    );
}

/// The daemon's own CPU time plus that of its reaped children (utime+stime, cutime+cstime).
fn server_cpu(server: &Server) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).expect("stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().expect("number"))
        .collect();
    let ticks: u64 = fields.iter().sum();
    Duration::from_millis(ticks * 10)
}
