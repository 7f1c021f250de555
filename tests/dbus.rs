//! D-Bus control driven with `busctl` on a private system bus with the shipped policy
//! ([`common::dbus::SystemBus`]), as root (polkit's part is `tests/polkit.rs`): the objects
//! and their properties, the methods acting on real processes and real clients, reloads
//! adding and removing objects, screenshots, names that are not path-safe, and a server
//! that finds no bus.

mod common;

use std::time::Duration;

use common::dbus::{SystemBus, succeeded};
use common::{Server, wait_until};

const SERVICE: &str = "org.voyandz.Voyandz1";
const MANAGER: &str = "org.voyandz.Voyandz1.Manager";
const FEED: &str = "org.voyandz.Voyandz1.Feed";
const STREAM: &str = "org.voyandz.Voyandz1.Stream";
const ROOT: &str = "/org/voyandz/Voyandz1";
/// Bound of every wait for a process or a state.
const WAIT: Duration = Duration::from_secs(15);
const FFMPEG: &str = "ffmpeg -hide_banner -loglevel error -nostdin";

/// A line every 50 ms, for ever: a feed that delivers without decoding anything.
const TICKER: &str = "sh -c 'while :; do echo tick; sleep 0.05; done'";

fn property(bus: &SystemBus, path: &str, interface: &str, name: &str) -> String {
    let out = bus.busctl(&["get-property", SERVICE, path, interface, name]);
    succeeded(&out).trim().to_owned()
}

fn call(bus: &SystemBus, path: &str, interface: &str, method: &str) -> String {
    succeeded(&bus.busctl(&["call", SERVICE, path, interface, method]))
}

fn wait_property(bus: &SystemBus, path: &str, interface: &str, name: &str, wanted: &str) {
    let mut last = String::new();
    let reached = wait_until(
        || {
            last = property(bus, path, interface, name);
            last == wanted
        },
        WAIT,
    );
    assert!(reached, "{path} {name} is {last}, never {wanted}");
}

#[test]
fn feeds_and_streams_are_objects_under_the_manager() {
    let bus = SystemBus::start();
    let server = bus.start_server(&format!(
        "feeds:\n  cam:\n    command: {TICKER}\nstreams:\n  raw:\n    feed: cam\n    mimetype: text/plain\n"
    ));
    let tree = succeeded(&bus.busctl(&["--no-pager", "tree", SERVICE]));
    assert!(tree.contains("/org/voyandz/Voyandz1/feed/cam"), "{tree}");
    assert!(tree.contains("/org/voyandz/Voyandz1/stream/raw"), "{tree}");
    let feed = "/org/voyandz/Voyandz1/feed/cam";
    assert_eq!(property(&bus, feed, FEED, "State"), "s \"idle\"");
    assert_eq!(property(&bus, feed, FEED, "Mode"), "s \"on-demand\"");
    assert_eq!(property(&bus, feed, FEED, "Pid"), "u 0");
    let stream = "/org/voyandz/Voyandz1/stream/raw";
    assert_eq!(
        property(&bus, stream, STREAM, "Urls"),
        "as 1 \"/stream/raw\""
    );
    let config = property(&bus, ROOT, MANAGER, "ConfigPath");
    assert_eq!(config, format!("s \"{}\"", server.config_path().display()));
    let version = property(&bus, ROOT, MANAGER, "Version");
    assert_eq!(version, format!("s \"{}\"", env!("CARGO_PKG_VERSION")));
    assert_eq!(server.status_json()["server"]["dbus"], "system");
    let listed = call(&bus, ROOT, MANAGER, "ListStreams");
    assert_eq!(
        listed.trim(),
        "a(sos) 1 \"raw\" \"/org/voyandz/Voyandz1/stream/raw\" \"idle\""
    );
    // A client makes the on-demand feed run: its pid and state follow.
    let mut client = server.open("/stream/raw");
    client.read_at_least(10, WAIT);
    wait_property(&bus, feed, FEED, "State", "s \"running\"");
    assert_ne!(property(&bus, feed, FEED, "Pid"), "u 0");
    assert_eq!(property(&bus, stream, STREAM, "Clients"), "u 1");
}

#[test]
fn start_and_stop_run_and_end_an_on_demand_feeds_process() {
    let bus = SystemBus::start();
    let server = bus.start_server(
        "feeds:\n  idle:\n    command: sleep 4242\nstreams:\n  relay:\n    feed: idle\n    mimetype: text/plain\n",
    );
    let feed = "/org/voyandz/Voyandz1/feed/idle";
    assert_eq!(server.count_procs("sleep 4242"), 0, "on demand: not yet");
    call(&bus, feed, FEED, "Start");
    assert!(wait_until(|| server.count_procs("sleep 4242") == 1, WAIT));
    wait_property(&bus, feed, FEED, "State", "s \"starting\"");
    call(&bus, feed, FEED, "Stop");
    // Stop returns once it is done: the process is gone and clients are refused.
    assert_eq!(property(&bus, feed, FEED, "State"), "s \"stopped\"");
    assert!(wait_until(|| server.count_procs("sleep 4242") == 0, WAIT));
    assert_eq!(server.get("/stream/relay").status, 503);
    call(&bus, feed, FEED, "Start");
    assert!(wait_until(|| server.count_procs("sleep 4242") == 1, WAIT));
}

#[test]
fn a_stopped_feeds_streams_end_their_clients_and_serve_again_once_it_is_started() {
    let bus = SystemBus::start();
    let server = bus.start_server(&format!(
        "feeds:\n  ticks:\n    command: {TICKER}\nstreams:\n  copy:\n    feed: ticks\n    command: cat\n    mimetype: text/plain\n    mode: continuous\n"
    ));
    let feed = format!("{ROOT}/feed/ticks");
    let mut client = server.open("/stream/copy");
    client.read_at_least(10, WAIT);
    call(&bus, &feed, FEED, "Stop");
    assert!(
        client.wait_closed(WAIT),
        "the stream's client ends with its feed"
    );
    assert_eq!(server.get("/stream/copy").status, 503);
    // The continuous stream neither failed nor ended for good: it waits for its feed.
    call(&bus, &feed, FEED, "Start");
    let mut again = server.open("/stream/copy");
    assert_eq!(again.status, 200);
    again.read_at_least(10, WAIT);
    let stream = format!("{ROOT}/stream/copy");
    wait_property(&bus, &stream, STREAM, "State", "s \"running\"");
}

#[test]
fn a_stopped_stream_ends_its_clients_and_refuses_new_ones_until_started() {
    let bus = SystemBus::start();
    let server = bus.start_server(&format!(
        "feeds:\n  ticks:\n    command: {TICKER}\nstreams:\n  copy:\n    feed: ticks\n    command: cat\n    mimetype: text/plain\n  relay:\n    feed: ticks\n    mimetype: text/plain\n"
    ));
    // A stream with a process of its own, and a relay, which has none.
    for name in ["copy", "relay"] {
        let (url, path) = (format!("/stream/{name}"), format!("{ROOT}/stream/{name}"));
        let mut client = server.open(&url);
        client.read_at_least(10, WAIT);
        call(&bus, &path, STREAM, "Stop");
        assert!(client.wait_closed(WAIT), "{name}: the client is closed");
        assert_eq!(property(&bus, &path, STREAM, "State"), "s \"stopped\"");
        assert_eq!(server.get(&url).status, 503, "{name}");
        call(&bus, &path, STREAM, "Start");
        let mut again = server.open(&url);
        assert_eq!(again.status, 200, "{name}");
        again.read_at_least(10, WAIT);
    }
    // A relay has no process to restart: the answer says what to do instead.
    let refused = bus.busctl(&[
        "call",
        SERVICE,
        &format!("{ROOT}/stream/relay"),
        STREAM,
        "Restart",
    ]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("relays feed \"ticks\""), "{message}");
}

#[test]
fn a_reload_that_changes_a_stopped_stream_starts_it_afresh() {
    let bus = SystemBus::start();
    // MPEG-TS, shared: a changed definition would take its clients over.
    let yaml = |cat: &str| {
        format!(
            "feeds:\n  cam:\n    command: {FFMPEG} -re -f lavfi -i testsrc2=size=160x120:rate=10 -c:v libx264 -preset ultrafast -tune zerolatency -g 10 -pix_fmt yuv420p -f mpegts -muxdelay 0 -flush_packets 1 -\nstreams:\n  ts:\n    feed: cam\n    command: {cat}\n    mimetype: video/mp2t\n"
        )
    };
    let server = bus.start_server(&yaml("cat"));
    let stream = format!("{ROOT}/stream/ts");
    call(&bus, &stream, STREAM, "Stop");
    assert_eq!(server.get("/stream/ts").status, 503);
    server.replace_config(&yaml("cat -u"));
    call(&bus, ROOT, MANAGER, "Reload");
    assert_ne!(property(&bus, &stream, STREAM, "State"), "s \"stopped\"");
    let mut client = server.open("/stream/ts");
    assert_eq!(client.status, 200);
    client.read_at_least(188 * 10, WAIT);
}

#[test]
fn disconnecting_a_streams_clients_ends_them_and_serves_the_next() {
    let bus = SystemBus::start();
    let server = bus.start_server(&format!(
        "feeds:\n  ticks:\n    command: {TICKER}\nstreams:\n  relay:\n    feed: ticks\n    mimetype: text/plain\n"
    ));
    let stream = "/org/voyandz/Voyandz1/stream/relay";
    let mut first = server.open("/stream/relay");
    first.read_at_least(10, WAIT);
    wait_property(&bus, stream, STREAM, "Clients", "u 1");
    let answer = call(&bus, stream, STREAM, "DisconnectClients");
    assert_eq!(answer.trim(), "u 1");
    assert!(first.wait_closed(WAIT), "the client is closed");
    let mut next = server.open("/stream/relay");
    assert_eq!(next.status, 200);
    next.read_at_least(10, WAIT);
}

#[test]
fn a_reload_adds_and_removes_objects_and_a_bad_one_is_refused_with_its_problem() {
    let bus = SystemBus::start();
    let server = bus.start_server(&format!(
        "feeds:\n  ticks:\n    command: {TICKER}\nstreams:\n  old:\n    feed: ticks\n    mimetype: text/plain\n"
    ));
    server.replace_config(&format!(
        "feeds:\n  ticks:\n    command: {TICKER}\nstreams:\n  new:\n    feed: ticks\n    mimetype: text/plain\n"
    ));
    let answer = call(&bus, ROOT, MANAGER, "Reload");
    assert!(answer.starts_with("s \""), "{answer}");
    // Reload() returns with the objects already in step.
    let tree = succeeded(&bus.busctl(&["--no-pager", "tree", SERVICE]));
    assert!(tree.contains("/org/voyandz/Voyandz1/stream/new"), "{tree}");
    assert!(!tree.contains("/org/voyandz/Voyandz1/stream/old"), "{tree}");
    let last = property(&bus, ROOT, MANAGER, "LastReload");
    assert!(
        last.starts_with("(sss) \"20") && last.contains("\"ok\""),
        "{last}"
    );

    server.replace_config("streams:\n  new:\n    feed: nowhere\n");
    let refused = bus.busctl(&["call", SERVICE, ROOT, MANAGER, "Reload"]);
    assert!(!refused.status.success(), "{refused:?}");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("nowhere"),
        "the problem is named: {message}"
    );
    let last = property(&bus, ROOT, MANAGER, "LastReload");
    assert!(last.contains("\"failed\""), "{last}");
    // The running config stays in force.
    let tree = succeeded(&bus.busctl(&["--no-pager", "tree", SERVICE]));
    assert!(tree.contains("/org/voyandz/Voyandz1/stream/new"), "{tree}");
}

#[test]
fn a_screenshot_over_dbus_is_the_picture_of_the_stream() {
    let bus = SystemBus::start();
    let server = bus.start_server(&format!(
        "streams:\n  cam:\n    command: {FFMPEG} -re -f lavfi -i testsrc2=size=160x120:rate=10 -c:v libx264 -preset ultrafast -tune zerolatency -g 10 -pix_fmt yuv420p -f mpegts -muxdelay 0 -flush_packets 1 -\n    mimetype: video/mp2t\n    mode: continuous\n  tone:\n    command: {FFMPEG} -re -f lavfi -i sine=frequency=440 -c:a libmp3lame -b:a 64k -f mp3 -flush_packets 1 -\n    mimetype: audio/mpeg\n"
    ));
    let cam = "/org/voyandz/Voyandz1/stream/cam";
    wait_property(&bus, cam, STREAM, "State", "s \"running\"");
    let out = bus.busctl(&[
        "--json=short",
        "call",
        SERVICE,
        cam,
        STREAM,
        "Screenshot",
        "su",
        "png",
        "0",
    ]);
    let reply: serde_json::Value =
        serde_json::from_str(&succeeded(&out)).expect("busctl prints JSON");
    let bytes: Vec<u8> = (reply["data"][0]
        .as_array()
        .expect("an array of bytes")
        .iter())
    .map(|byte| u8::try_from(byte.as_u64().expect("a byte")).expect("a byte"))
    .collect();
    let probed = common::ffprobe(
        &bytes,
        &[
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ],
    );
    assert_eq!(probed.trim(), "png,160,120");
    let tone = "/org/voyandz/Voyandz1/stream/tone";
    let refused = bus.busctl(&[
        "call",
        SERVICE,
        tone,
        STREAM,
        "Screenshot",
        "su",
        "jpeg",
        "50",
    ]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("audio only"), "{message}");
    drop(server);
}

#[test]
fn any_utf8_name_has_an_object_whose_name_property_gives_it_back() {
    let bus = SystemBus::start();
    let _server = bus.start_server(&format!(
        "feeds:\n  ticks:\n    command: {TICKER}\nstreams:\n  żółw.kamera_1:\n    feed: ticks\n    mimetype: text/plain\n"
    ));
    let path = "/org/voyandz/Voyandz1/stream/_c5_bc_c3_b3_c5_82w_2ekamera_5f1";
    // busctl prints non-ASCII bytes in octal, except as JSON.
    let out = bus.busctl(&[
        "--json=short",
        "get-property",
        SERVICE,
        path,
        STREAM,
        "Name",
    ]);
    let name: serde_json::Value = serde_json::from_str(&succeeded(&out)).expect("JSON");
    assert_eq!(name["data"], "żółw.kamera_1");
}

#[test]
fn without_a_bus_the_server_says_so_once_and_serves_http() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let nowhere = format!("unix:path={}", dir.path().join("no-bus").display());
    let env = [("DBUS_SYSTEM_BUS_ADDRESS", nowhere.as_str())];
    let server = Server::spawn_with_env(
        &format!(
            "feeds:\n  ticks:\n    command: {TICKER}\nstreams:\n  relay:\n    feed: ticks\n    mimetype: text/plain\n"
        ),
        &["--bus", "system"],
        &env,
    );
    server.wait_ready();
    assert!(
        server.wait_log("no D-Bus control", WAIT),
        "{}",
        server.log_text()
    );
    let mut client = server.open("/stream/relay");
    client.read_at_least(10, WAIT);
    let mentions = (server.log_lines().iter())
        .filter(|line| line.contains("D-Bus"))
        .count();
    assert_eq!(mentions, 1, "{}", server.log_text());
    assert!(server.status_json()["server"]["dbus"].is_null());
}
