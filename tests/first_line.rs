//! The first log line (issue 16, item 6): the spec wants "the name of the program and its
//! version in the first line of the log" on "each start", so no level hides it: not
//! `--log-level error`, not `RUST_LOG=error`.

mod common;

use std::time::Duration;

use common::{Server, ticker};

fn assert_first_line(server: &Server) {
    // The log is read on a thread of the helper: the line may reach it after the daemon
    // answered HTTP.
    server.wait_log_line(|line| line.contains(" starting"), Duration::from_secs(5));
    let lines = server.log_lines();
    let first = lines.first().map(String::as_str).unwrap_or_default();
    let version = format!(" INFO voyandz {} starting", env!("CARGO_PKG_VERSION"));
    assert!(
        first
            .get(23..)
            .is_some_and(|rest| rest.starts_with(&version)),
        "the first line names the program and its version: {first:?}; log:\n{}",
        server.log_text()
    );
}

fn config() -> String {
    format!(
        "streams:\n  s:\n    command: {}\n    mimetype: text/plain\n",
        ticker("firstline")
    )
}

#[test]
fn first_line_survives_log_level_error() {
    let server = Server::spawn_with_env(&config(), &["--log-level", "error"], &[]);
    server.wait_ready();
    assert_first_line(&server);
    // The level still applies to everything else: a 404 logs nothing at `error`.
    assert_eq!(server.get("/nope").status, 404);
    assert!(
        !server.log_text().contains("client connected"),
        "{}",
        server.log_text()
    );
}

#[test]
fn first_line_survives_rust_log_error() {
    let server = Server::spawn_with_env(&config(), &[], &[("RUST_LOG", "error")]);
    server.wait_ready();
    assert_first_line(&server);
}
