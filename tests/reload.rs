//! Live reload: an edit in place, a replacement by rename and SIGHUP each apply a new config;
//! a client of an unchanged stream sees no gap over 100 ms across ten reloads in a row; a
//! broken config changes nothing and shows in `/stat.json` with its line; a deleted config is
//! logged and changes nothing, and its re-creation reloads; a changed listen port is rebound;
//! a changed MPEG-TS stream keeps its client, which goes on with the new process; a changed
//! status switch takes effect; a config that is a link is followed to the file it leads to.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, Signal, send_signal, wait_until};

/// How long a reload may take to show: the debounce (200 ms) and a loaded machine.
const APPLIED: Duration = Duration::from_secs(10);
/// The longest pause a client of an unchanged stream may see across reloads.
const GAP_MAX: Duration = Duration::from_millis(100);

/// A feed ticking every 20 ms, relayed by `steady`, and `extra` streams named as given.
fn config(extra: &[&str]) -> String {
    let mut yaml = String::from(
        "feeds:\n  tick:\n    command: sh -c 'while :; do echo tick; sleep 0.02; done' reloadtick\n\
         streams:\n  steady:\n    feed: tick\n    mimetype: text/plain\n",
    );
    for name in extra {
        yaml.push_str(&format!(
            "  {name}:\n    feed: tick\n    command: cat\n    mimetype: text/plain\n"
        ));
    }
    yaml
}

/// Whether `/stream/NAME` is served (HEAD answers what GET would).
fn served(server: &Server, name: &str) -> bool {
    server.request("HEAD", &format!("/stream/{name}")).status == 200
}

fn wait_served(server: &Server, name: &str, wanted: bool) {
    assert!(
        wait_until(|| served(server, name) == wanted, APPLIED),
        "/stream/{name} served: expected {wanted}; log:\n{}",
        server.log_text()
    );
}

#[test]
fn an_edit_a_rename_and_sighup_each_apply_a_change() {
    let server = Server::start(&config(&[]));
    server.write_config(&config(&["edited"]));
    wait_served(&server, "edited", true);

    server.replace_config(&config(&["renamed"]));
    wait_served(&server, "renamed", true);
    wait_served(&server, "edited", false);

    // SIGHUP comes before the file watch's debounce is over: the signal applies the change.
    server.write_config(&config(&["signalled"]));
    send_signal(server.pid(), Signal::Hup);
    wait_served(&server, "signalled", true);
    let reload = &server.status_json()["server"]["last_reload"];
    assert_eq!(reload["ok"], true, "{reload}");
    assert!(server.is_running());
    assert!(
        server.wait_log("trigger=Signal", Duration::from_secs(1)),
        "{}",
        server.log_text()
    );
}

/// Reads `client` on a thread and keeps the longest pause between two reads.
struct GapMeter {
    longest: Arc<Mutex<Duration>>,
    done: Arc<AtomicBool>,
    thread: thread::JoinHandle<u64>,
}

impl GapMeter {
    fn start(mut client: common::StreamReader) -> Self {
        let longest = Arc::new(Mutex::new(Duration::ZERO));
        let done = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let (longest, done) = (Arc::clone(&longest), Arc::clone(&done));
            move || {
                let mut total = 0u64;
                let mut last = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    match client.try_read_at_least(1, Duration::from_millis(500)) {
                        Ok(bytes) => total += bytes.len() as u64,
                        Err(rest) if client.is_finished() => {
                            total += rest.len() as u64;
                            return total;
                        }
                        Err(rest) => total += rest.len() as u64,
                    }
                    let now = Instant::now();
                    let mut worst = longest.lock().expect("gap lock");
                    *worst = (*worst).max(now - last);
                    last = now;
                }
                total
            }
        });
        Self {
            longest,
            done,
            thread,
        }
    }

    /// The longest pause so far.
    fn longest(&self) -> Duration {
        *self.longest.lock().expect("gap lock")
    }

    /// Stops reading; the bytes read.
    fn finish(self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().expect("reader thread")
    }
}

#[test]
fn a_client_of_an_unchanged_stream_sees_no_gap_across_ten_reloads() {
    let server = Server::start(&config(&[]));
    let mut client = server.open("/stream/steady");
    client.read_at_least(1, Duration::from_secs(10));
    let meter = GapMeter::start(client);
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    for round in 0..10 {
        let name = format!("extra{round}");
        server.write_config(&config(&[&name]));
        wait_served(&server, &name, true);
    }
    let took = started.elapsed();
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.count_procs("reloadtick"),
        1,
        "the feed ran once throughout"
    );
    let longest = meter.longest();
    let bytes = meter.finish();
    println!("ten reloads in {took:?}: longest pause of the unchanged stream's client {longest:?}");
    assert!(longest <= GAP_MAX, "a pause of {longest:?}");
    assert!(bytes > 100, "the client went on receiving: {bytes} bytes");
}

#[test]
fn a_broken_config_keeps_the_running_one_and_says_where_it_is_wrong() {
    let server = Server::start(&config(&["kept"]));
    let mut client = server.open("/stream/steady");
    client.read_at_least(1, Duration::from_secs(10));
    // Line 10 is `kept`'s command key, misspelt.
    server.write_config(&config(&["kept"]).replace("    command: cat", "    comand: cat"));
    assert!(
        wait_until(
            || server.status_json()["server"]["last_reload"]["ok"] == false,
            APPLIED
        ),
        "no failed reload in /stat.json; log:\n{}",
        server.log_text()
    );
    let reload = &server.status_json()["server"]["last_reload"];
    let message = reload["message"].as_str().expect("a message");
    assert!(
        message.contains("voyandz.yaml:10:5: streams.kept.comand: unknown key"),
        "{message}"
    );
    assert!(served(&server, "kept"), "the running config stays in force");
    assert!(
        !client.read_at_least(1, APPLIED).is_empty(),
        "serving goes on"
    );
    assert!(server.log_text().contains("reload failed"));
}

#[test]
fn a_deleted_config_changes_nothing_and_its_return_reloads() {
    let server = Server::start(&config(&["kept"]));
    std::fs::remove_file(server.config_path()).expect("remove the config");
    assert!(
        server.wait_log("the config file is gone", APPLIED),
        "{}",
        server.log_text()
    );
    assert!(served(&server, "kept") && served(&server, "steady"));
    server.write_config(&config(&["back"]));
    wait_served(&server, "back", true);
    wait_served(&server, "kept", false);
}

#[test]
fn a_config_that_is_a_link_reloads_when_the_file_it_leads_to_is_edited() {
    let server = Server::start(&config(&[]));
    // The admin moves the config into the appliance's own tree and links it back.
    let elsewhere = tempfile::tempdir().expect("temporary directory");
    let target = elsewhere.path().join("cameras.yaml");
    std::fs::write(&target, config(&["linked"])).expect("write the target");
    let link = server.config_path().with_extension("new");
    std::os::unix::fs::symlink(&target, &link).expect("link");
    std::fs::rename(&link, server.config_path()).expect("rename the link over the config");
    wait_served(&server, "linked", true);
    std::fs::write(&target, config(&["followed"])).expect("edit the target in place");
    wait_served(&server, "followed", true);
    wait_served(&server, "linked", false);
}

#[test]
fn a_changed_listen_port_is_rebound() {
    let yaml = "listenport: {port}\nstreams:\n  s:\n    command: cat\n    mimetype: text/plain\n";
    let server = Server::start_binding(yaml);
    let new_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .expect("a free port")
        .port();
    server.write_config(&yaml.replace("{port}", &new_port.to_string()));
    let answers = |port: u16| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    assert!(
        wait_until(|| answers(new_port) && !answers(server.port()), APPLIED),
        "not moved to port {new_port}; log:\n{}",
        server.log_text()
    );
    let mut answer = common::StreamReader::connect("127.0.0.1", new_port, "/stat.json");
    let status: serde_json::Value =
        serde_json::from_slice(&answer.read_for(Duration::from_secs(5))).expect("JSON");
    let listening = &status["server"]["listening"];
    assert!(
        listening.to_string().contains(&format!(":{new_port}")),
        "{listening}"
    );
}

/// A feed-less MPEG-TS stream of the test picture at `size`.
fn ts_config(size: &str) -> String {
    format!(
        "streams:\n  cam:\n    mimetype: video/mp2t\n    command: ffmpeg -hide_banner -loglevel error \
         -nostdin -re -f lavfi -i testsrc2=size={size}:rate=10 -c:v libx264 -preset ultrafast \
         -tune zerolatency -g 10 -pix_fmt yuv420p -f mpegts -\n"
    )
}

#[test]
fn a_changed_ts_streams_client_goes_on_with_the_new_process() {
    let server = Server::start(&ts_config("160x120"));
    let mut client = server.open("/stream/cam");
    client.read_at_least(10_000, APPLIED);
    server.write_config(&ts_config("176x144"));
    assert!(
        wait_until(
            || server.count_procs("size=176x144") == 1 && server.count_procs("size=160x120") == 0,
            APPLIED
        ),
        "the new process did not replace the old one: {:?}\n{}",
        server.descendants(),
        server.log_text()
    );
    // Past what was sent before the change: the new process's pictures, on the same connection.
    client.read_for(Duration::from_millis(500));
    let after = client.read_at_least(20_000, APPLIED);
    let probed = common::ffprobe(
        &after,
        &["-show_entries", "stream=width,height", "-of", "csv=p=0"],
    );
    assert!(probed.contains("176,144"), "{probed:?}");
    assert!(!client.is_finished(), "the client was kept");
    assert!(
        server
            .log_text()
            .contains("its clients go on with the new definition")
    );
}

#[test]
fn a_changed_status_switch_takes_effect() {
    let server = Server::start(&config(&[]));
    assert_eq!(server.get("/stat.json").status, 200);
    server.write_config(&format!("status:\n  api: /state.json\n{}", config(&[])));
    assert!(
        wait_until(
            || server.get("/state.json").status == 200 && server.get("/stat.json").status == 404,
            APPLIED
        ),
        "the status API did not move; log:\n{}",
        server.log_text()
    );
}
