//! The edges of HTTP (issue 16, items 4, 5 and 7): HEAD answers with the status and headers
//! GET would get and never sends or keeps a body; error answers (415 above all, as the spec
//! asks) close their connection; and every accepted connection's end is logged with its peer
//! and why, including those hyper ends before a request reaches the routes.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Server, ticker, wait_until};

const FFMPEG: &str = "ffmpeg -hide_banner -loglevel error -nostdin";
/// Bound for one raw exchange: past the server's 10 s header read timeout.
const EXCHANGE_MAX: Duration = Duration::from_secs(20);
/// Bound for a log line to appear.
const LOG_WAIT: Duration = Duration::from_secs(5);

/// Connects, sends `request` (then half-closes when `finish`), and reads until the server
/// closes or [`EXCHANGE_MAX`]: every byte received, and our address (the server's `peer`).
fn exchange(server: &Server, request: &[u8], finish: bool) -> (Vec<u8>, SocketAddr) {
    let mut socket = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    let local = socket.local_addr().expect("local address");
    // The server may answer and close before it read everything (431): a failed write is
    // part of the exchange, not an error of the test.
    let _ = socket.write_all(request);
    if finish {
        let _ = socket.shutdown(Shutdown::Write);
    }
    let deadline = Instant::now() + EXCHANGE_MAX;
    let mut received = Vec::new();
    let mut buf = [0; 16 << 10];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("set a read timeout");
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
    (received, local)
}

/// The status codes of the responses in `bytes`, in order (heads only: bodies here are text
/// that never starts with `HTTP/1.`).
fn statuses(bytes: &[u8]) -> Vec<u16> {
    String::from_utf8_lossy(bytes)
        .split("HTTP/1.")
        .skip(1)
        .filter_map(|rest| rest.get(2..5)?.parse().ok())
        .collect()
}

/// Makes one [`exchange`] and finds the `connection closed` line of its connection, which
/// must give `reason`: the bytes received and the line.
fn logged_end(server: &Server, request: &[u8], finish: bool, reason: &str) -> (Vec<u8>, String) {
    let (bytes, local) = exchange(server, request, finish);
    let peer = format!("peer={local}");
    let find = || {
        server.log_lines().into_iter().find(|line| {
            line.contains("connection closed") && line.split(' ').any(|field| field == peer)
        })
    };
    wait_until(|| find().is_some(), LOG_WAIT);
    let line = find().unwrap_or_else(|| {
        panic!(
            "no `connection closed` line for {local}; log:\n{}",
            server.log_text()
        )
    });
    assert!(line.contains(&format!("reason=\"{reason}\"")), "{line}");
    (bytes, line)
}

fn errors_config() -> String {
    format!(
        "streams:\n  s:\n    command: {}\n    mimetype: text/plain\n  gone:\n    command: voyandz-test-no-such-command\n    mimetype: video/mp2t\n  dud:\n    command: sh -c 'exit 3'\n    mimetype: video/mp2t\n  mp3:\n    command: {}\n    mimetype: audio/mpeg\n",
        ticker("edgetick"),
        ticker("edgemp3")
    )
}

#[test]
fn head_gets_the_status_and_headers_of_get() {
    let server = Server::start(&errors_config());
    for (path, status) in [
        ("/stream/gone", 502),
        ("/stream/dud", 502),
        ("/stream/mp3/pic", 415),
        ("/stream/s?mpjpeg", 415),
        ("/nope", 404),
        ("/stream/s?header=maybe", 400),
        ("/stream/s", 200),
    ] {
        let head = server.request("HEAD", path);
        let get = if status == 200 {
            let client = server.open(path);
            (client.status, client.headers.clone())
        } else {
            let resp = server.get(path);
            (resp.status, resp.headers)
        };
        assert_eq!(
            (head.status, get.0),
            (status, status),
            "HEAD and GET {path}"
        );
        for name in ["content-type", "connection", "cache-control"] {
            assert_eq!(
                head.header(name),
                get.1.get(name).map(String::as_str),
                "HEAD {path}: {name}"
            );
        }
    }
}

#[test]
fn head_sends_no_body_and_keeps_no_stream_running() {
    let server = Server::start(&errors_config());
    // A HEAD on a live stream, then a second request on the same connection: the answer to
    // the HEAD is a head only, followed at once by the next response.
    let (bytes, _) = exchange(
        &server,
        b"HEAD /stream/s HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        false,
    );
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(statuses(&bytes), [200, 404], "{text}");
    let second = text.find("HTTP/1.1 404").expect("the second response");
    assert!(
        text[..second].ends_with("\r\n\r\n"),
        "nothing but the head before the next response: {text:?}"
    );
    assert!(!text.contains("edgetick"), "no stream bytes: {text:?}");
    // The HEAD started the stream (as GET would, to know its status) and let it go with
    // its answer.
    assert!(
        server.wait_log_line(
            |l| l.contains(" started pid=") && l.contains("stream=s"),
            LOG_WAIT
        ),
        "{}",
        server.log_text()
    );
    assert!(
        wait_until(|| server.count_procs("edgetick") == 0, LOG_WAIT),
        "the stream stops after a HEAD; log:\n{}",
        server.log_text()
    );
}

#[test]
fn head_of_a_picture_has_its_length_and_no_body() {
    let server = Server::start(&format!(
        "streams:\n  cam:\n    command: {FFMPEG} -re -f lavfi -i testsrc2=size=160x120:rate=10 -c:v mjpeg -q:v 10 -f mpjpeg -boundary_tag ffmpeg -flush_packets 1 -\n    mimetype: multipart/x-mixed-replace;boundary=ffmpeg\n"
    ));
    let (bytes, _) = exchange(
        &server,
        b"HEAD /stream/cam/pic HTTP/1.1\r\nHost: x\r\n\r\n",
        false,
    );
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(statuses(&bytes), [200], "{text}");
    assert!(text.ends_with("\r\n\r\n"), "a head only: {text:?}");
    let length: usize = text
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("a picture's HEAD has its Content-Length: {text:?}"));
    assert!(length > 100, "the picture's length: {length}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: image/jpeg"),
        "{text}"
    );
}

#[test]
fn error_answers_close_the_connection() {
    let server = Server::start(&errors_config());
    for request in [
        "GET /stream/mp3/pic HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /stream/s?mpjpeg HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /stream/s?header=maybe HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /stream/s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    ] {
        // No `Connection: close` from us, no half-close: the server must close by itself.
        let started = Instant::now();
        let (bytes, _) = exchange(&server, request.as_bytes(), false);
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{request:?}: the server closed the connection ({:?}): {text}",
            started.elapsed()
        );
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{request:?}: {text}"
        );
    }
}

#[test]
fn a_connection_that_sends_nothing_is_logged() {
    let server = Server::start(&errors_config());
    let (_, line) = logged_end(&server, b"", true, "closed before a request");
    assert!(line.contains("requests=0"), "{line}");
    assert!(line.contains(" INFO "), "{line}");
    // A served connection names its requests.
    let request = b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (_, line) = logged_end(&server, request, false, "closed");
    assert!(line.contains("requests=1"), "{line}");
}

#[test]
fn a_garbage_request_is_logged() {
    let server = Server::start(&errors_config());
    let (bytes, _) = logged_end(&server, b"HELLO THERE\r\n\r\n", false, "bad request");
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(statuses(&bytes), [400], "{text}");
}

#[test]
fn a_partial_request_line_is_logged() {
    let server = Server::start(&errors_config());
    let reason = "closed in the middle of a request";
    logged_end(&server, b"GET /stream/s HT", true, reason);
}

#[test]
fn an_over_long_request_is_logged() {
    let server = Server::start(&errors_config());
    let request = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20_000));
    logged_end(&server, request.as_bytes(), false, "headers too large");
}

#[test]
fn the_header_read_timeout_is_logged() {
    let server = Server::start(&errors_config());
    let request = b"GET /stream/s HTTP/1.1\r\n";
    logged_end(&server, request, false, "header read timeout");
}
