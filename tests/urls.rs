//! Percent-encoded URLs (issue 16, item 1): paths and query parameters are decoded once at the
//! edge, as browsers and players encode them (`/kamera/%C5%BC%C3%B3%C5%82w.ts` for a stream
//! whose `url` is `/kamera/żółw.ts`); a path that does not decode cleanly is 400 with a text
//! body; the links on `/` are percent-encoded.

mod common;

use std::time::Duration;

use common::{Server, ticker};

const FFMPEG: &str = "ffmpeg -hide_banner -loglevel error -nostdin";
const READ: Duration = Duration::from_secs(10);
/// `żółw` percent-encoded as UTF-8.
const TURTLE: &str = "%C5%BC%C3%B3%C5%82w";

fn config() -> String {
    format!(
        "streams:\n  ts:\n    command: {}\n    mimetype: text/plain\n  turtle:\n    command: {}\n    mimetype: text/plain\n    url: /kamera/żółw.ts\n  żółw:\n    command: {}\n    mimetype: text/plain\n",
        ticker("urlplain"),
        ticker("urlbyurl"),
        ticker("urlbyname")
    )
}

/// Opens `path` and returns the first bytes of its stream as text.
fn first_text(server: &Server, path: &str) -> String {
    let mut client = server.open(path);
    assert_eq!(
        client.status,
        200,
        "GET {path}; log:\n{}",
        server.log_text()
    );
    let text = String::from_utf8_lossy(&client.read_at_least(20, READ)).into_owned();
    client.close();
    text
}

#[test]
fn encoded_paths_reach_their_streams() {
    let server = Server::start(&config());
    let byurl = first_text(&server, &format!("/kamera/{TURTLE}.ts"));
    assert!(byurl.contains("urlbyurl"), "{byurl:?}");
    let byname = first_text(&server, &format!("/stream/{TURTLE}"));
    assert!(byname.contains("urlbyname"), "{byname:?}");
    let plain = first_text(&server, "/stream/t%73");
    assert!(plain.contains("urlplain"), "{plain:?}");
    // The log names the decoded path.
    assert!(
        server.wait_log("path=/kamera/żółw.ts", Duration::from_secs(5)),
        "{}",
        server.log_text()
    );
}

#[test]
fn undecodable_paths_and_queries_are_400_with_text() {
    let server = Server::start(&config());
    for path in [
        "/stream/t%2Fs",
        "/stream/t%2fs",
        "/stream/ts%00",
        "/stream/%C5",
        "/stream/t%7",
        "/stream/t%zz",
        "/stream/ts%0A",
        "/stream/ts?header=%C5",
        "/stream/ts?keyframe=%zz",
    ] {
        let resp = server.get(path);
        assert_eq!(resp.status, 400, "GET {path}: {}", resp.text());
        assert!(
            resp.header("content-type")
                .is_some_and(|ct| ct.starts_with("text/plain")),
            "GET {path}: {:?}",
            resp.header("content-type")
        );
        assert!(!resp.body.is_empty(), "GET {path}: a 400 says why");
    }
    // None of them started a stream.
    assert_eq!(server.count_procs("urlplain"), 0);
}

#[test]
fn encoded_query_values_are_decoded() {
    let server = Server::start(&format!(
        "streams:\n  cam:\n    command: {FFMPEG} -re -f lavfi -i testsrc2=size=160x120:rate=10 -c:v mjpeg -q:v 10 -f mpjpeg -boundary_tag ffmpeg -flush_packets 1 -\n    mimetype: multipart/x-mixed-replace;boundary=ffmpeg\n"
    ));
    let resp = server.get("/stream/cam/pic?quality=%35%30");
    assert_eq!(
        resp.status,
        200,
        "{}; log:\n{}",
        resp.text(),
        server.log_text()
    );
    assert_eq!(resp.header("content-type"), Some("image/jpeg"));
    assert!(resp.body.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");
    // Names are decoded too, and `+` is a space (form encoding): `format=png+` is not `png`.
    let resp = server.get("/stream/cam/pic?%66ormat=p%6Eg");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("image/png"));
    let resp = server.get("/stream/cam/pic?format=png+");
    assert_eq!(resp.status, 400, "{}", resp.text());
    // Parameters nobody reads are not decoded: a page's own, in another encoding, is no error.
    let resp = server.get("/stream/cam/pic?title=%E9t%E9&t=100%&%zz");
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn home_page_links_are_percent_encoded() {
    let server = Server::start(&config());
    let home = server.get("/").text();
    assert!(
        home.contains(&format!("href=\"/kamera/{TURTLE}.ts\"")),
        "{home}"
    );
    assert!(
        home.contains(&format!("href=\"/stream/{TURTLE}\"")),
        "{home}"
    );
    // The link text is the name as written.
    assert!(home.contains(">żółw</a>"), "{home}");
}
