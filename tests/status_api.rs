//! The status API (`/stat.json`, issue 17 item 4) through the real binary with real ffmpeg:
//! its headers and switches, every field the README's schema table documents present in a
//! live answer, the clients list only when `status.clients` is on, HTML in names and user
//! agents as plain JSON strings, and the state following reality: a feed killed from outside
//! is shown restarting with more restarts, an on-demand feed goes idle after its last client,
//! a failing command shows its exit status and stderr tail, and the byte counters rise while a
//! client reads.

mod common;

use std::time::Duration;

use common::{Keeper, Server, Signal, send_signal, wait_until};
use serde_json::Value;

/// A live MPEG-TS feed command; `testsrc2` in its command line finds its process.
const TS_FEED: &str = "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i \
                       testsrc2=size=160x120:rate=10 -c:v mpeg2video -g 10 -f mpegts -";
/// A command that fails at once, saying why on stderr.
const FAILING: &str = "sh -c 'echo boom >&2; exit 3'";
/// A stream name as hostile to an HTML page as the config allows (no '/' or ' ' in names).
const HOSTILE_NAME: &str = r#"<script>alert("1")<\script>&amp;"#;
/// [`HOSTILE_NAME`]'s URL path, percent-encoded.
const HOSTILE_PATH: &str = "/stream/%3Cscript%3Ealert(%221%22)%3C%5Cscript%3E%26amp;";
/// How long a state change may take to show: ffmpeg start-up on 2 busy cores, backoffs.
const STATE_TIMEOUT: Duration = Duration::from_secs(20);

/// The answer of `path` parsed, after checking it is a JSON 200.
fn status_at(server: &Server, path: &str) -> Value {
    let resp = server.get(path);
    assert_eq!(resp.status, 200, "GET {path}: {}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {}", resp.text()))
}

/// The answer at the default path.
fn status(server: &Server) -> Value {
    status_at(server, "/stat.json")
}

/// The entry named `name` in the list `list` (`feeds`, `streams`) of `json`.
fn named<'a>(json: &'a Value, list: &str, name: &str) -> &'a Value {
    (json[list].as_array())
        .and_then(|items| items.iter().find(|item| item["name"] == name))
        .unwrap_or_else(|| panic!("no {list} entry {name:?} in {json}"))
}

/// Polls the status until `cond` holds for it; returns that answer, or panics with the last.
fn wait_status(server: &Server, what: &str, mut cond: impl FnMut(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let held = wait_until(
        || {
            last = status(server);
            cond(&last)
        },
        STATE_TIMEOUT,
    );
    assert!(
        held,
        "{what}: not within {STATE_TIMEOUT:?}; last answer:\n{last:#}"
    );
    last
}

/// The dotted field paths of the README's schema table (the rows of the first table under
/// "## Status API"), such as `feeds[].last_exit.kind`.
fn documented_fields() -> Vec<String> {
    let readme = include_str!("../README.md");
    let section = readme
        .split_once("\n## Status API\n")
        .expect("README has a Status API section")
        .1;
    let table = section.split("\n#").next().expect("split yields one part");
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|row| row.split_once('`'))
        .map(|(field, _)| field.to_string())
        .collect()
}

/// Whether `path` (split at dots; `name[]` is every element of an array) leads to a key in
/// `value`: a key may hold `null`, an array must have an element that has the rest.
fn has_field(value: &Value, path: &[&str]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return true;
    };
    let (key, array) = match first.strip_suffix("[]") {
        Some(key) => (key, true),
        None => (*first, false),
    };
    let Some(child) = value.as_object().and_then(|object| object.get(key)) else {
        return false;
    };
    if array {
        (child.as_array()).is_some_and(|items| items.iter().any(|item| has_field(item, rest)))
    } else {
        rest.is_empty() || has_field(child, rest)
    }
}

#[test]
fn every_documented_field_is_in_a_live_answer() {
    let fields = documented_fields();
    assert!(
        fields.len() > 50,
        "the schema table was not found: {fields:?}"
    );
    let server = Server::start(&format!(
        "feeds:\n  cam:\n    command: {TS_FEED}\n    mode: continuous\n  bad:\n    command: \
         {FAILING}\n    mode: continuous\nstreams:\n  s:\n    feed: cam\n    mimetype: \
         video/mp2t\n  broken:\n    feed: bad\n    mimetype: text/plain\nstatus:\n  clients: \
         true\n"
    ));
    let client = Keeper::start(server.open("/stream/s"));
    send_signal(server.pid(), Signal::Hup);
    // Every optional object filled in: a client listed, the container known, an exit seen,
    // a reload done.
    let json = wait_status(
        &server,
        "a client, framing, a last exit, a reload",
        |json| {
            json["server"]["last_reload"].is_object()
                && json["clients"].as_array().is_some_and(|c| !c.is_empty())
                && named(json, "streams", "s")["framing"].is_object()
                && named(json, "streams", "broken")["last_exit"].is_object()
                && named(json, "feeds", "bad")["last_exit"].is_object()
        },
    );
    let missing: Vec<&String> = (fields.iter())
        .filter(|field| !has_field(&json, &field.split('.').collect::<Vec<_>>()))
        .collect();
    assert!(
        missing.is_empty(),
        "documented but missing: {missing:?} in\n{json:#}"
    );
    assert_eq!(json["schema"], 1);
    drop(client);
}

#[test]
fn the_api_is_json_not_cached_at_its_configured_path() {
    let server = Server::start(&format!(
        "feeds:\n  cam:\n    command: {TS_FEED}\nstreams:\n  s:\n    feed: cam\n    mimetype: \
         video/mp2t\n"
    ));
    let get = server.get("/stat.json");
    assert_eq!(get.status, 200, "{}", get.text());
    assert_eq!(get.header("content-type"), Some("application/json"));
    assert_eq!(get.header("cache-control"), Some("no-store"));
    let json: Value = serde_json::from_slice(&get.body).expect("JSON");
    assert_eq!(named(&json, "feeds", "cam")["state"], "idle");
    assert_eq!(named(&json, "streams", "s")["paths"][0], "/stream/s");
    assert_eq!(
        named(&json, "streams", "s")["framing"],
        Value::Null,
        "its container is not known before its first bytes"
    );
    let head = server.request("HEAD", "/stat.json");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for name in ["content-type", "cache-control"] {
        assert_eq!(head.header(name), get.header(name), "{name}");
    }
    // Moved, and off.
    let server = Server::start("status:\n  api: /api/żółw.json\n");
    status_at(&server, "/api/%C5%BC%C3%B3%C5%82w.json");
    assert_eq!(server.get("/stat.json").status, 404);
    let server = Server::start("status:\n  api: false\n");
    assert_eq!(server.get("/stat.json").status, 404);
}

/// A server with the hostile stream and `clients` as given, and one client of that stream
/// whose user agent holds HTML, reading.
fn hostile(clients: bool) -> (Server, Keeper) {
    let server = Server::start(&format!(
        "streams:\n  '{HOSTILE_NAME}':\n    command: {TS_FEED}\n    mimetype: video/mp2t\n\
         status:\n  clients: {clients}\n"
    ));
    let client = server.send_raw(&format!(
        "GET {HOSTILE_PATH} HTTP/1.1\r\nHost: x\r\nUser-Agent: <b>x</b>\r\n\r\n"
    ));
    assert_eq!(client.status, 200, "{}", server.log_text());
    (server, Keeper::start(client))
}

#[test]
fn the_clients_list_is_there_only_when_on_and_html_stays_plain_strings() {
    let (server, _client) = hostile(true);
    let json = wait_status(&server, "the client listed", |json| {
        json["clients"].as_array().is_some_and(|c| c.len() == 1)
    });
    assert_eq!(json["server"]["clients_shown"], true);
    let client = &json["clients"][0];
    assert_eq!(client["stream"], HOSTILE_NAME);
    assert_eq!(client["user_agent"], "<b>x</b>");
    assert_eq!(client["join"], "plain");
    assert!(
        client["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:"))
    );
    assert_eq!(named(&json, "streams", HOSTILE_NAME)["clients"], 1);

    let (server, _client) = hostile(false);
    let json = wait_status(&server, "the client counted", |json| {
        named(json, "streams", HOSTILE_NAME)["clients"] == 1
    });
    assert_eq!(json["server"]["clients_shown"], false);
    assert!(
        json.get("clients").is_none(),
        "no clients list when off:\n{json:#}"
    );
}

#[test]
fn a_feed_killed_from_outside_is_shown_restarting_with_more_restarts() {
    let server = Server::start(&format!(
        "feeds:\n  cam:\n    command: {TS_FEED}\n    mode: continuous\n"
    ));
    let json = wait_status(&server, "the feed running", |json| {
        named(json, "feeds", "cam")["state"] == "running"
    });
    let feed = named(&json, "feeds", "cam");
    let old = feed["pid"].as_u64().expect("a running feed has a pid") as u32;
    assert_eq!(
        server.children("testsrc2"),
        vec![old],
        "the pid shown is the feed's"
    );
    assert_eq!(feed["restarts"], 0);

    send_signal(old, Signal::Kill);
    let json = wait_status(&server, "the kill noticed", |json| {
        let feed = named(json, "feeds", "cam");
        feed["restarts"].as_u64() >= Some(1)
            && feed["pid"].as_u64() != Some(u64::from(old))
            && ["restarting", "starting", "running"].contains(&feed["state"].as_str().unwrap_or(""))
    });
    let exit = &named(&json, "feeds", "cam")["last_exit"];
    assert_eq!(exit["kind"], "signal", "{json:#}");
    assert_eq!(exit["signal"], 9);
    // And it runs again, as a new process that the answer names.
    let json = wait_status(&server, "the feed running again", |json| {
        let feed = named(json, "feeds", "cam");
        feed["state"] == "running"
            && feed["pid"]
                .as_u64()
                .is_some_and(|pid| pid != u64::from(old))
    });
    let new = named(&json, "feeds", "cam")["pid"].as_u64().expect("pid") as u32;
    assert_eq!(server.children("testsrc2"), vec![new]);
}

#[test]
fn an_on_demand_feed_goes_idle_after_its_last_client() {
    let server = Server::start(&format!(
        "feeds:\n  cam:\n    command: {TS_FEED}\nstreams:\n  s:\n    feed: cam\n    mimetype: \
         video/mp2t\n"
    ));
    assert_eq!(named(&status(&server), "feeds", "cam")["state"], "idle");
    let mut client = server.open("/stream/s");
    client.read_at_least(1000, STATE_TIMEOUT);
    let json = wait_status(&server, "the feed running for its client", |json| {
        named(json, "feeds", "cam")["state"] == "running"
    });
    assert_eq!(named(&json, "feeds", "cam")["subscribers"], 1);
    client.close();
    let json = wait_status(&server, "the feed idle", |json| {
        let feed = named(json, "feeds", "cam");
        feed["state"] == "idle" && feed["pid"].is_null() && feed["subscribers"] == 0
    });
    assert_eq!(
        named(&json, "streams", "s")["state"],
        "idle",
        "a relay shows its feed"
    );
    assert!(
        wait_until(|| server.children("testsrc2").is_empty(), STATE_TIMEOUT),
        "idle means no process: {:?}",
        server.descendants()
    );
}

#[test]
fn a_failing_command_shows_its_exit_status_and_stderr_tail() {
    let server = Server::start(&format!(
        "feeds:\n  bad:\n    command: {FAILING}\n    mode: continuous\n"
    ));
    let json = wait_status(&server, "the failure shown", |json| {
        named(json, "feeds", "bad")["last_exit"].is_object()
    });
    let feed = named(&json, "feeds", "bad");
    let exit = &feed["last_exit"];
    assert_eq!(exit["kind"], "status", "{json:#}");
    assert_eq!(exit["code"], 3);
    assert_eq!(exit["stderr_tail"], "boom");
    let message = exit["message"].as_str().expect("a message");
    assert_eq!(message, "exit status: 3: boom");
    assert!(
        server.wait_log(&format!("reason={message}"), STATE_TIMEOUT),
        "the message is what the log prints:\n{}",
        server.log_text()
    );
    wait_status(&server, "restarts counted", |json| {
        named(json, "feeds", "bad")["restarts"].as_u64() >= Some(2)
    });
}

#[test]
fn byte_counters_rise_while_a_client_reads() {
    let server = Server::start(&format!(
        "feeds:\n  cam:\n    command: {TS_FEED}\nstreams:\n  s:\n    feed: cam\n    mimetype: \
         video/mp2t\nstatus:\n  clients: true\n"
    ));
    let _client = Keeper::start(server.open("/stream/s"));
    let counters = |json: &Value| {
        let feed = named(json, "feeds", "cam");
        let stream = named(json, "streams", "s");
        [
            feed["bytes_in"].as_u64(),
            feed["bytes_out"].as_u64(),
            stream["bytes_out"].as_u64(),
            json["clients"][0]["bytes_sent"].as_u64(),
        ]
    };
    let first = wait_status(&server, "bytes sent", |json| {
        counters(json)
            .iter()
            .all(|count| count.is_some_and(|n| n > 0))
    });
    let before = counters(&first);
    let later = wait_status(&server, "every counter risen", |json| {
        counters(json)
            .iter()
            .zip(&before)
            .all(|(now, then)| now > then)
    });
    assert!(
        named(&later, "feeds", "cam")["bitrate_bps"].as_u64() > Some(0),
        "{later:#}"
    );
}
