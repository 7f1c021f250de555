//! A container parser that panics must not take the server down (issue 17, item 2), with
//! the real binary, real TCP and real ffmpeg.
//!
//! The debug binary the tests run has a fault hook: `VOYANDZ_TEST_PANIC_PARSER=<name>:<file>`
//! makes the parser of stream `<name>` panic once, at the first chunk after `<file>` exists.
//! Before the fix, the parse ran under the hub's lock: the panic poisoned it, every client of
//! the stream then panicked on the lock, and the unwinding through a subscriber's drop
//! aborted the whole process.

mod common;

use std::time::Duration;

use common::Server;

/// A live H.264 test picture in MPEG-TS: tiny (160x120, 10 fps), paced as a camera.
const COMMAND: &str = "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi \
    -i testsrc2=size=160x120:rate=10 -c:v libx264 -preset ultrafast -tune zerolatency -g 10 \
    -pix_fmt yuv420p -f mpegts -";
/// Bound for anything that starts a process (ffmpeg, a stream): the suite runs many ffmpegs
/// on 2 cores.
const START: Duration = Duration::from_secs(15);
/// How long each client must keep receiving after the panic, in slices that must each bring
/// bytes (a stream of 10 frames a second has some in every slice).
const AFTER_PANIC: Duration = Duration::from_secs(5);
const SLICE: Duration = Duration::from_millis(500);
/// The log message of a caught parser panic.
const PANIC_LINE: &str = "container parser panicked";

#[test]
fn a_parser_panic_leaves_the_server_and_every_client_running() {
    let trigger_dir = tempfile::tempdir().expect("temporary directory");
    let trigger = trigger_dir.path().join("panic-now");
    let hook = format!("cam:{}", trigger.display());
    let server = Server::spawn_with_env(
        &format!("streams:\n  cam:\n    command: {COMMAND}\n    mimetype: video/mp2t\n"),
        &[],
        &[("VOYANDZ_TEST_PANIC_PARSER", &hook)],
    );
    server.wait_ready();
    let mut first = server.open("/stream/cam");
    let mut second = server.open("/stream/cam?keyframe");
    for client in [&mut first, &mut second] {
        assert_eq!(client.status, 200);
        client.read_at_least(1, START);
    }

    std::fs::write(&trigger, b"").expect("arm the fault hook");
    let mut after = Vec::new();
    assert!(
        common::wait_until(
            || {
                // Keep both clients reading meanwhile, as players do.
                after.extend(first.read_for(Duration::from_millis(50)));
                second.read_for(Duration::from_millis(50));
                server.log_lines().iter().any(|l| l.contains(PANIC_LINE))
            },
            START
        ),
        "no parser panic logged; log:\n{}",
        server.log_text()
    );
    after.clear();

    let slices = AFTER_PANIC.as_millis() / SLICE.as_millis();
    for slice in 0..slices {
        for (name, client) in [("first", &mut first), ("second", &mut second)] {
            let bytes = client.read_for(SLICE);
            assert!(
                !bytes.is_empty(),
                "{name} client got nothing in slice {slice} after the panic; log:\n{}",
                server.log_text()
            );
            if name == "first" {
                after.extend(bytes);
            }
        }
    }
    assert!(server.is_running(), "log:\n{}", server.log_text());
    // Relayed as opaque bytes, the stream is still the stream.
    let streams = common::probe_streams(&after);
    assert!(
        streams.iter().any(|s| s == "h264,video"),
        "{streams:?} after the panic"
    );

    // New clients get bytes: joins no longer wait for marks the broken parser cannot give.
    for path in ["/stream/cam", "/stream/cam?keyframe"] {
        let mut late = server.open(path);
        assert_eq!(late.status, 200, "{path}");
        late.read_at_least(1000, START);
    }
    assert_eq!(server.get("/").status, 200);

    let log = server.log_lines();
    let errors: Vec<&String> = log.iter().filter(|l| l.contains(" ERROR ")).collect();
    assert_eq!(errors.len(), 1, "one error line, the panic's: {errors:#?}");
    let line = errors[0];
    for expected in [
        PANIC_LINE,
        "stream=cam",
        "injected by VOYANDZ_TEST_PANIC_PARSER",
    ] {
        assert!(line.contains(expected), "{expected:?} missing from {line}");
    }
    assert!(
        line.contains("backtrace="),
        "the backtrace is in the line: {line}"
    );
}
