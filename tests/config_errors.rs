//! Config checks: every problem of a file is reported at once, with its line, by `--check`
//! (exit 1) and by the daemon (exit 78); `listenaddr` takes a host name and the server listens
//! on every address it gives; a `mimetype` that cannot be an HTTP header value is an error.

mod common;

use std::net::ToSocketAddrs;
use std::time::Duration;

use common::{Server, check_yaml};

/// A typo'd key, a missing feed, a boolean mode and a wrong stream type: four problems, on
/// lines 3, 5, 8 and 9.
const FOUR_ERRORS: &str = "feeds:\n  cam:\n    comand: cat\n    command: cat\n    mode: yes\n\
                           streams:\n  s:\n    feed: nope\n    type: bogus\n    command: cat\n";

/// `FILE:LINE:COL: KEY: ` of each of the four problems.
fn expected_heads(file: &str) -> [String; 4] {
    [
        (3, 5, "feeds.cam.comand"),
        (5, 11, "feeds.cam.mode"),
        (9, 11, "streams.s.type"),
        (8, 11, "streams.s.feed"),
    ]
    .map(|(line, column, key)| format!("{file}:{line}:{column}: {key}: "))
}

#[test]
fn check_reports_every_problem_of_a_file_with_its_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (path, out) = check_yaml(dir.path(), "four.yaml", FOUR_ERRORS);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let heads = expected_heads(&path.display().to_string());
    assert_eq!(lines.len(), 4, "{stderr}");
    for (line, head) in lines.iter().zip(&heads) {
        assert!(
            line.starts_with(head.as_str()),
            "{line:?} should start with {head:?}"
        );
    }
    assert!(lines[0].contains("unknown key `comand`"), "{stderr}");
    assert!(lines[3].contains("no feed named \"nope\""), "{stderr}");
}

#[test]
fn the_daemon_logs_every_problem_and_exits_78() {
    let mut server = Server::spawn(FOUR_ERRORS);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon exits on a bad config");
    assert_eq!(status.code(), Some(78));
    let file = server.config_path().display().to_string();
    let log = server.log_lines();
    for head in expected_heads(&file) {
        assert!(
            log.iter().any(|line| line.contains(&head)),
            "no {head:?} in\n{}",
            log.join("\n")
        );
    }
}

#[test]
fn listenaddr_localhost_is_served_on_every_address_it_gives() {
    let server = Server::start_binding("listenaddr: localhost\nlistenport: {port}\n");
    assert_eq!(server.get("/").status, 200, "127.0.0.1 is served");
    let addresses: Vec<_> = ("localhost", server.port())
        .to_socket_addrs()
        .expect("localhost resolves")
        .collect();
    assert!(!addresses.is_empty());
    for address in addresses {
        let mut socket = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{address} is not served: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        std::io::Write::write_all(
            &mut socket,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .expect("send");
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut socket, &mut answer);
        assert!(answer.starts_with("HTTP/1.1 200 "), "{address}: {answer:?}");
    }
    let listening = server
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("listening"))
        .count();
    assert!(listening >= 1, "{}", server.log_text());
}

#[test]
fn check_prints_a_host_name_as_written() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (_, out) = check_yaml(dir.path(), "name.yaml", "listenaddr: localhost\n");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\nlistenaddr: localhost\n"), "{stdout}");
    assert!(
        stdout.starts_with("# listenaddr localhost is 127.0.0.1"),
        "{stdout}"
    );
    let (path, out) = check_yaml(dir.path(), "bad.yaml", "listenaddr: no-such-host.invalid\n");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let head = format!("{}:1:13: listenaddr: cannot resolve", path.display());
    assert!(stderr.starts_with(&head), "{stderr}");
}

#[test]
fn a_mimetype_that_cannot_be_a_header_value_fails_check() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let yaml = "streams:\n  s:\n    command: cat\n    mimetype: \"video/mp2t\\r\\nX-Evil: 1\"\n";
    let (path, out) = check_yaml(dir.path(), "mime.yaml", yaml);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let head = format!("{}:4:15: streams.s.mimetype: ", path.display());
    assert!(stderr.starts_with(&head), "{stderr}");
}
