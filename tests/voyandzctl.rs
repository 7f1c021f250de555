//! `voyandzctl`, the real binary, against a real server on a private system bus with the
//! shipped policy ([`common::dbus::SystemBus`]): listings as JSON, start and stop of feeds
//! and streams seen in the processes and on HTTP, reload, screenshots decoded by ffprobe,
//! `watch`, and the exit status of each kind of failure.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::dbus::{CTL, NOBODY, SystemBus, succeeded};
use common::{ticker, video_size, wait_until};

/// How long a feed's process may take to appear or go after a command.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to see its connection end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `watch` may take to say it watches, and then to print a change.
const WATCH_TIMEOUT: Duration = Duration::from_secs(20);

/// A feed that runs only on demand, `ctlfeed` in its command line, and a stream of it.
fn ticker_config() -> String {
    format!(
        "feeds:\n  cam:\n    command: {}\nstreams:\n  s:\n    feed: cam\n    mimetype: text/plain\n",
        ticker("ctlfeed")
    )
}

/// Exit status and stderr of a run, for failures.
fn failure(output: &Output) -> (Option<i32>, String) {
    let stderr = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_owned();
    (output.status.code(), stderr)
}

fn json(output: &Output) -> serde_json::Value {
    let stdout = succeeded(output);
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// The names in a `feeds --json` or `streams --json` list.
fn names(list: &serde_json::Value) -> Vec<&str> {
    let list = list.as_array().expect("a JSON array");
    list.iter()
        .filter_map(|item| item["name"].as_str())
        .collect()
}

/// The state of feed or stream `name` in a `feeds --json` or `streams --json` list.
fn state<'a>(list: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    let list = list.as_array()?;
    let item = list.iter().find(|item| item["name"] == name)?;
    item["state"].as_str()
}

#[test]
fn listings_show_the_configs_feeds_and_streams() {
    let bus = SystemBus::start();
    let _server = bus.start_server(
        "feeds:\n  cam:\n    command: cat /dev/zero\n  mic:\n    command: cat /dev/zero\nstreams:\n  raw:\n    feed: cam\n    mimetype: application/octet-stream\n  cam-hd:\n    feed: mic\n    mimetype: application/octet-stream\n",
    );
    let feeds = json(&bus.ctl(&["feeds", "--json"]));
    assert_eq!(names(&feeds), ["cam", "mic"]);
    assert_eq!(feeds[0]["mode"], "on-demand");
    assert_eq!(feeds[0]["state"], "idle");
    let streams = json(&bus.ctl(&["streams", "--json"]));
    assert_eq!(
        names(&streams),
        ["cam-hd", "raw"],
        "escaped in its path, not here"
    );
    assert_eq!(streams[1]["urls"][0], "/stream/raw");

    let status = json(&bus.ctl(&["status", "--json"]));
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["feeds"]["total"], 2);
    assert_eq!(status["feeds"]["states"]["idle"], 2);
    assert_eq!(status["streams"]["total"], 2);
    assert!(status["last_reload"].is_null(), "{status}");

    let table = succeeded(&bus.ctl(&["streams"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{table}");
    assert!(
        lines[2].starts_with("raw ") && lines[2].contains("/stream/raw"),
        "{table}"
    );
    let text = succeeded(&bus.ctl(&["status"]));
    assert!(text.contains("feeds        2 (2 idle)"), "{text}");
}

#[test]
fn start_and_stop_feed_run_and_end_its_process() {
    let bus = SystemBus::start();
    let server = bus.start_server(&ticker_config());
    assert_eq!(server.count_procs("ctlfeed"), 0, "on demand: idle at first");

    for (command, processes, after) in [("start", 1, "running"), ("stop", 0, "stopped")] {
        succeeded(&bus.ctl(&[command, "feed", "cam"]));
        assert!(
            wait_until(
                || server.count_procs("ctlfeed") == processes,
                PROCESS_TIMEOUT
            ),
            "{command} feed: {processes} process(es) with or without clients: {:?}",
            server.descendants()
        );
        let feeds = json(&bus.ctl(&["feeds", "--json"]));
        assert_eq!(state(&feeds, "cam"), Some(after), "{feeds}");
        assert_eq!(
            feeds[0]["pid"].as_u64() > Some(0),
            processes == 1,
            "{feeds}"
        );
    }
}

#[test]
fn disconnect_and_stop_stream_end_its_clients() {
    let bus = SystemBus::start();
    let server = bus.start_server(&ticker_config());
    let mut client = server.open("/stream/s");
    client.read_at_least(10, PROCESS_TIMEOUT);

    let said = succeeded(&bus.ctl(&["disconnect", "s"]));
    assert_eq!(said.trim(), "disconnected 1 client of stream \"s\"");
    assert!(
        client.wait_closed(CLOSE_TIMEOUT),
        "disconnect ends the client"
    );
    let mut client = server.open("/stream/s");
    assert_eq!(client.status, 200, "the stream goes on");
    client.read_at_least(10, PROCESS_TIMEOUT);

    succeeded(&bus.ctl(&["stop", "stream", "s"]));
    assert!(client.wait_closed(CLOSE_TIMEOUT), "stop ends the client");
    assert_eq!(
        server.get("/stream/s").status,
        503,
        "a stopped stream refuses"
    );

    succeeded(&bus.ctl(&["start", "stream", "s"]));
    let mut client = server.open("/stream/s");
    assert_eq!(client.status, 200, "a started stream serves again");
    let body = client.read_at_least(10, PROCESS_TIMEOUT);
    assert!(String::from_utf8_lossy(&body).contains("ctlfeed"));
}

#[test]
fn reload_refuses_a_broken_config_and_applies_a_good_one() {
    let bus = SystemBus::start();
    let server = bus.start_server(&ticker_config());

    server.replace_config("feeds:\n  cam:\n    command: [unclosed\n");
    let refused = bus.ctl(&["reload"]);
    let (code, stderr) = failure(&refused);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with("voyandzctl: ") && stderr.contains(".yaml:"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    server.replace_config(&format!(
        "{}  added:\n    feed: cam\n    mimetype: text/plain\n",
        ticker_config()
    ));
    let said = succeeded(&bus.ctl(&["reload"]));
    assert!(!said.trim().is_empty(), "reload says what changed");
    let streams = json(&bus.ctl(&["streams", "--json"]));
    assert_eq!(names(&streams), ["added", "s"]);
    let status = json(&bus.ctl(&["status", "--json"]));
    assert_eq!(status["last_reload"]["outcome"], "ok", "{status}");
}

#[test]
fn screenshot_writes_a_picture_that_decodes() {
    let bus = SystemBus::start();
    let server = bus.start_server(
        "feeds:\n  cam:\n    command: ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=320x240:rate=25 -c:v libx264 -preset ultrafast -tune zerolatency -g 25 -pix_fmt yuv420p -f mpegts -\nstreams:\n  ts:\n    feed: cam\n    mimetype: video/mp2t\n",
    );
    let codec = |bytes: &[u8]| {
        let args = ["-show_entries", "stream=codec_name", "-of", "csv=p=0"];
        common::ffprobe(bytes, &args).trim().to_owned()
    };
    let jpeg = server.dir().join("shot.jpg");
    let jpeg_path = jpeg.to_str().expect("a UTF-8 path");
    succeeded(&bus.ctl(&["screenshot", "ts", "-o", jpeg_path, "--quality", "60"]));
    let bytes = std::fs::read(&jpeg).expect("the picture was written");
    assert_eq!(codec(&bytes), "mjpeg");
    assert_eq!(video_size(&bytes), Some((320, 240)));

    // stdout is a pipe here, so the picture may go there.
    let png = bus.ctl(&["screenshot", "ts", "--png"]);
    succeeded(&png);
    assert_eq!(codec(&png.stdout), "png");
    assert_eq!(video_size(&png.stdout), Some((320, 240)));
}

/// A running `voyandzctl watch` whose stdout lines arrive on a channel; killed on drop.
struct Watcher {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    /// Starts `voyandzctl watch ARGS` on `bus` and waits until it says it watches.
    fn start(bus: &SystemBus, args: &[&str]) -> Watcher {
        let mut child = Command::new(CTL)
            .arg("watch")
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn voyandzctl watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = spawn_lines(stdout);
        let said = spawn_lines(stderr)
            .recv_timeout(WATCH_TIMEOUT)
            .unwrap_or_default();
        assert!(
            said.starts_with("Watching"),
            "watch says it watches: {said:?}"
        );
        Watcher { child, lines }
    }

    /// The first line within [`WATCH_TIMEOUT`] that `wanted` accepts.
    fn line(&self, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = std::time::Instant::now() + WATCH_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            if wanted(&line) {
                return Some(line);
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

#[test]
fn watch_prints_state_changes_as_they_happen() {
    let bus = SystemBus::start();
    let _server = bus.start_server(&ticker_config());
    let text = Watcher::start(&bus, &[]);
    let json = Watcher::start(&bus, &["--json"]);

    succeeded(&bus.ctl(&["start", "feed", "cam"]));
    let line = text.line(|line| line.contains("feed cam: State ") && line.ends_with("-> running"));
    let line = line.expect("a line for the feed's new state");
    assert!(common::has_timestamp(&line), "{line}");
    let change = json
        .line(|line| line.contains("\"running\""))
        .expect("a JSON line");
    let change: serde_json::Value = serde_json::from_str(&change).expect("one JSON object a line");
    assert_eq!(
        (&change["object"], &change["name"], &change["property"]),
        (&"feed".into(), &"cam".into(), &"State".into()),
        "{change}"
    );
    assert_eq!(change["new"], "running");
}

#[test]
fn watch_sees_a_reload_add_and_remove_objects() {
    let bus = SystemBus::start();
    let server = bus.start_server(&ticker_config());
    let text = Watcher::start(&bus, &[]);
    // `s` goes, `t` comes: InterfacesRemoved and InterfacesAdded from the ObjectManager.
    server.replace_config(&ticker_config().replace("  s:\n", "  t:\n"));
    succeeded(&bus.ctl(&["reload"]));
    // In the order the server makes them: stale objects go before new ones come.
    let removed = text.line(|line| line.ends_with("stream s: removed"));
    assert!(removed.is_some(), "no line for the removed stream");
    let added = text.line(|line| line.ends_with("stream t: added"));
    assert!(added.is_some(), "no line for the added stream");
}

#[test]
fn an_unknown_name_exits_3() {
    let bus = SystemBus::start();
    let _server = bus.start_server(&ticker_config());
    for args in [
        &["stop", "feed", "nope"][..],
        &["start", "stream", "cam"],
        &["disconnect", "nope"],
    ] {
        let (code, stderr) = failure(&bus.ctl(args));
        assert_eq!(code, Some(3), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("voyandzctl: no "), "{args:?}: {stderr}");
        assert!(stderr.contains(args[args.len() - 1]), "{args:?}: {stderr}");
    }
}

#[test]
fn no_server_or_no_bus_exits_5() {
    let bus = SystemBus::start();
    let (code, stderr) = failure(&bus.ctl(&["feeds"]));
    assert_eq!(code, Some(5), "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");

    let missing = bus.dir().join("no_such_socket");
    let output = common::run_bounded(
        Command::new(CTL).arg("status").env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", missing.display()),
        ),
        None,
        common::dbus::CALL_TIMEOUT,
    );
    let (code, stderr) = failure(&output);
    assert_eq!(code, Some(5), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_caller_polkit_cannot_vouch_for_exits_4_and_may_still_read() {
    let bus = SystemBus::start();
    let server = bus.start_server(&ticker_config());
    let (code, stderr) = failure(&bus.ctl_as(NOBODY, &[], &["start", "feed", "cam"]));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("polkit"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(server.count_procs("ctlfeed"), 0, "nothing started");

    let feeds = json(&bus.ctl_as(NOBODY, &[], &["feeds", "--json"]));
    assert_eq!(names(&feeds), ["cam"]);
}
