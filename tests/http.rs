//! HTTP behaviour over real TCP: status codes (404, 405, 502), stream and shot responses,
//! the `/stream/<name>` and `url` paths, direct relay and self-connecting streams.

mod common;

use std::time::{Duration, Instant};

use common::{MPJPEG_SRC, Server, probe_streams, ticker};

#[test]
fn unknown_path_is_404() {
    let server = Server::start(&format!(
        "streams:\n  s:\n    command: {}\n    mimetype: text/plain\n",
        ticker("http404")
    ));
    for path in ["/nope", "/stream/", "/stream/other", "/stream/s/extra"] {
        let resp = server.get(path);
        assert_eq!(resp.status, 404, "GET {path}");
    }
    // A 404 never starts anything.
    assert_eq!(server.count_procs("http404"), 0);
}

#[test]
fn other_methods_are_405_with_allow() {
    let server = Server::start(&format!(
        "streams:\n  s:\n    command: {}\n    mimetype: text/plain\n",
        ticker("http405")
    ));
    for method in ["POST", "PUT", "DELETE"] {
        let resp = server.request(method, "/stream/s");
        assert_eq!(resp.status, 405, "{method} /stream/s");
        let allow = resp.header("allow").unwrap_or_default().to_string();
        assert!(
            allow.contains("GET") && allow.contains("HEAD"),
            "Allow: {allow:?}"
        );
    }
}

#[test]
fn command_not_found_is_502_with_text_quickly() {
    let server = Server::start(
        "streams:\n  missing:\n    command: voyandz-test-no-such-command --flag\n    mimetype: video/mp2t\n",
    );
    let started = Instant::now();
    let resp = server.get("/stream/missing");
    let took = started.elapsed();
    assert_eq!(resp.status, 502, "body: {}", resp.text());
    assert!(
        !resp.body.is_empty(),
        "a 502 explains itself in a text body"
    );
    assert!(
        resp.header("content-type")
            .is_some_and(|ct| ct.starts_with("text/plain")),
        "content-type {:?}",
        resp.header("content-type")
    );
    assert!(took < Duration::from_secs(3), "502 took {took:?}");
    // The server is still fine.
    assert_eq!(server.get("/nope").status, 404);
}

#[test]
fn command_exiting_at_once_without_output_is_502() {
    let server =
        Server::start("streams:\n  dud:\n    command: sh -c 'exit 3'\n    mimetype: video/mp2t\n");
    let started = Instant::now();
    let resp = server.get("/stream/dud");
    assert_eq!(resp.status, 502, "body: {}", resp.text());
    assert!(!resp.body.is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn stream_response_headers_and_body() {
    let server = Server::start(&format!(
        "streams:\n  s:\n    command: {}\n    mimetype: text/x-test\n",
        ticker("httphdr")
    ));
    let mut client = server.open("/stream/s");
    assert_eq!(client.status, 200);
    assert_eq!(client.header("content-type"), Some("text/x-test"));
    assert_eq!(
        client.header("content-length"),
        None,
        "a live stream has no length"
    );
    // Written straight into the socket: no chunk framing, the body ends with the connection.
    assert_eq!(client.header("transfer-encoding"), None, "not chunked");
    assert_eq!(client.header("connection"), Some("close"));
    let cache = client.header("cache-control").unwrap_or_default();
    assert!(
        cache.contains("no-cache") && cache.contains("no-store"),
        "{cache}"
    );
    let body = client.read_at_least(200, Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&body).contains("httphdr\n"));
}

#[test]
fn head_sends_headers_only() {
    let server = Server::start(&format!(
        "streams:\n  s:\n    command: {}\n    mimetype: text/x-test\n",
        ticker("httphead")
    ));
    let resp = server.request("HEAD", "/stream/s");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/x-test"));
    assert!(resp.body.is_empty());
}

#[test]
fn stream_is_served_at_stream_path_and_url() {
    let server = Server::start(&format!(
        "streams:\n  cam:\n    command: {}\n    mimetype: text/plain\n    url: /live/cam.txt\n",
        ticker("httpurl")
    ));
    for path in ["/stream/cam", "/live/cam.txt"] {
        let mut client = server.open(path);
        assert_eq!(client.status, 200, "GET {path}");
        let body = client.read_at_least(50, Duration::from_secs(10));
        assert!(String::from_utf8_lossy(&body).contains("httpurl"), "{path}");
    }
}

#[test]
fn shot_has_length_png_and_closes() {
    let server = Server::start(
        "streams:\n  pic:\n    type: shot\n    mimetype: image/png\n    command: >-\n      ffmpeg -hide_banner -loglevel error -nostdin -f lavfi -i testsrc2=size=160x120:rate=10\n      -frames:v 1 -c:v png -f image2pipe -\n",
    );
    // No `Connection: close` from the client: the server closes after the one image.
    let mut client = server.send_raw(
        "GET /stream/pic HTTP/1.1\r\nHost: localhost\r\nUser-Agent: voyandz-tests\r\n\r\n",
    );
    assert_eq!(client.status, 200);
    assert_eq!(client.header("content-type"), Some("image/png"));
    let length: usize = client
        .header("content-length")
        .expect("a shot has a Content-Length")
        .parse()
        .expect("numeric Content-Length");
    let body = client.read_at_least(length, Duration::from_secs(20));
    assert_eq!(body.len(), length);
    assert_eq!(&body[..8], b"\x89PNG\r\n\x1a\n", "PNG magic");
    assert_eq!(probe_streams(&body), ["png,video"]);
    assert!(
        client.wait_closed(Duration::from_secs(5)),
        "the connection closes after a shot"
    );
    // Each request runs the command again.
    let again = server.get("/stream/pic");
    assert_eq!(again.status, 200);
    assert_eq!(&again.body[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn direct_relay_stream_runs_no_process() {
    let server = Server::start(&format!(
        "feeds:\n  f:\n    command: {}\nstreams:\n  relay:\n    feed: f\n    mimetype: text/plain\n",
        ticker("relayfeed")
    ));
    let mut client = server.open("/stream/relay");
    assert_eq!(client.status, 200);
    let body = client.read_at_least(100, Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&body).contains("relayfeed\n"));
    // The only child of the server is the feed (its `sleep`s are grandchildren).
    let children: Vec<_> = common::descendants_of(server.pid())
        .into_iter()
        .filter(|p| p.ppid == server.pid() && p.state != 'Z')
        .map(|p| p.cmdline)
        .collect();
    assert_eq!(children.len(), 1, "children: {children:?}");
    assert!(children[0].contains("relayfeed"), "children: {children:?}");
}

#[test]
fn self_connecting_stream_reads_another_stream() {
    // `mosaic` reads `src` over HTTP from the same server, as upstream's 4x4 configs do.
    let server = Server::start(
        r#"streams:
  src:
    command: ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=160x120:rate=10 -c:v mjpeg -q:v 10 -f mjpeg -
    mimetype: video/x-motion-jpeg
  mosaic:
    command: >-
      ffmpeg -hide_banner -loglevel error -nostdin
      -probesize 32 -analyzeduration 0 -f mjpeg -i http://127.0.0.1:{port}/stream/src
      -c:v copy -f mpjpeg -boundary_tag selfconn -
    mimetype: multipart/x-mixed-replace;boundary=selfconn
"#,
    );
    let mut client = server.open("/stream/mosaic");
    assert_eq!(client.status, 200);
    let body = client.read_at_least(20_000, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("--selfconn"), "mpjpeg boundary in the output");
    assert!(
        body.windows(3).any(|w| w == [0xff, 0xd8, 0xff]),
        "JPEG frames in the output"
    );
    assert!(
        server
            .log_lines()
            .iter()
            .any(|l| l.contains("client connected") && l.contains("/stream/src")),
        "the stream's own ffmpeg connected back"
    );
}

#[test]
fn mpjpeg_stream_probes_as_mjpeg() {
    let server = Server::start(&format!(
        "streams:\n  cam:\n    command: {MPJPEG_SRC}\n    mimetype: multipart/x-mixed-replace;boundary=ffmpeg\n"
    ));
    let mut client = server.open("/stream/cam");
    assert_eq!(client.status, 200);
    let body = client.read_at_least(30_000, Duration::from_secs(20));
    let start = body
        .windows(8)
        .position(|w| w == b"--ffmpeg")
        .expect("an mpjpeg boundary");
    let probed = common::ffprobe(
        &body[start..],
        &[
            "-f",
            "mpjpeg",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ],
    );
    assert_eq!(probed.trim(), "mjpeg");
}
