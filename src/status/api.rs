//! The status API (`/stat.json`): the [`StatusView`] as JSON, for programs.
//!
//! Every value comes out as a program wants it, without parsing prose: times in RFC 3339
//! with their UTC offset, durations in milliseconds (`_ms`), byte counts and rates as
//! integers, states, join policies and containers as lower-case strings, addresses as
//! strings, and the last exit as an object with a `kind`, its fields and the `message` the
//! log prints. The clients list is there only when `status.clients` shows it, so that a
//! program tells "not shown" from "nobody connected". The schema is documented in the
//! README's "Status API" section and versioned by [`super::SCHEMA_VERSION`]. This module
//! neither gathers the view ([`super`] does) nor routes (`http::routes` does).

use bytes::Bytes;
use serde::Serialize;

use super::StatusView;
use crate::stats::ClientView;

/// The answer's `Content-Type`.
pub const MIMETYPE: &str = "application/json";

/// Why the status could not be rendered as JSON.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// serde_json refused a value.
    #[error("cannot render the status as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The whole answer: the view, and the clients when they are shown.
#[derive(Serialize)]
struct Answer<'a> {
    #[serde(flatten)]
    view: &'a StatusView,
    #[serde(skip_serializing_if = "Option::is_none")]
    clients: Option<&'a [ClientView]>,
}

/// The JSON body of `/stat.json` for `view`: one compact line and a newline (for `curl`).
pub fn render(view: &StatusView) -> Result<Bytes, ApiError> {
    let answer = Answer {
        view,
        clients: (view.server.clients_shown).then_some(view.state.clients.as_slice()),
    };
    let mut json = serde_json::to_vec(&answer)?;
    json.push(b'\n');
    Ok(Bytes::from(json))
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;
    use std::sync::Arc;

    use serde_json::Value;

    use super::*;
    use crate::fanout::join::Join;
    use crate::process::exit::Exit;
    use crate::stats::{ClientInfo, Clients, RunStats, RuntimeState};
    use crate::status::{SCHEMA_VERSION, ServerFacts, ServerView};

    /// A view of one failed feed and one client, with the clients list shown or not.
    fn parsed(clients_shown: bool) -> Value {
        let stats = RunStats::default();
        stats.exited(Exit::Status {
            code: 3,
            stderr_tail: "boom".into(),
        });
        let clients = Arc::new(Clients::default());
        let _entry = clients.register(ClientInfo {
            peer: "[::1]:5000".parse().expect("address"),
            stream: "<script>alert(1)</script>".into(),
            join: Join::LastKeyframe,
            user_agent: "<b>x</b>\"".into(),
        });
        let facts = ServerFacts::now(vec!["127.0.0.1:80".parse().expect("address")]);
        let view = StatusView {
            schema: SCHEMA_VERSION,
            server: ServerView {
                name: "voyandz",
                version: "0",
                time: facts.started_at,
                started_at: facts.started_at,
                uptime_ms: 0,
                listening: facts.listening(),
                config_path: std::ffi::OsStr::from_bytes(b"/etc/\xffv.yaml").into(),
                logdir: None,
                clients_shown,
                last_reload: None,
                dbus: None,
            },
            state: RuntimeState {
                taken_at: facts.started_at,
                feeds: vec![stats.view("f", 0, 0)],
                streams: Vec::new(),
                clients: clients.views(),
            },
        };
        let json = render(&view).expect("renders");
        assert!(json.ends_with(b"}\n"));
        serde_json::from_slice(&json).expect("valid JSON")
    }

    #[test]
    fn values_are_what_a_program_wants() {
        let json = parsed(true);
        let exit = &json["feeds"][0]["last_exit"];
        assert_eq!(exit["kind"], "status");
        assert_eq!(exit["code"], 3);
        assert_eq!(exit["message"], "exit status: 3: boom");
        assert_eq!(json["feeds"][0]["state"], "idle");
        let client = &json["clients"][0];
        assert_eq!(client["peer"], "[::1]:5000");
        assert_eq!(client["join"], "last_keyframe");
        assert_eq!(client["stream"], "<script>alert(1)</script>");
        assert_eq!(client["user_agent"], "<b>x</b>\"");
        let time = json["server"]["time"].as_str().expect("a string");
        chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339 with an offset");
        assert_eq!(json["server"]["config_path"], "/etc/\u{fffd}v.yaml");
        assert_eq!(json["server"]["logdir"], Value::Null);
    }

    #[test]
    fn the_clients_list_is_absent_unless_shown() {
        assert!(parsed(true)["clients"].is_array());
        assert!(parsed(false).get("clients").is_none());
    }
}
