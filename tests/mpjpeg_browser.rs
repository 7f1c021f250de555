//! Built-in MPJPEG (issue 13): a stream of raw MJPEG (`ffmpeg -f mjpeg`, a plain sequence
//! of JPEGs) served as `multipart/x-mixed-replace` by voyandz itself, with `?mpjpeg` or by a
//! multipart mimetype. The bytes parse as multipart with exactly one whole JPEG per part, the
//! next part's boundary follows each picture at once (so a browser shows a frame when it
//! arrives, not one frame late), and a real headless Chromium renders the moving picture in
//! a plain `<img>`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, StreamReader, chromium_screenshot, video_size};

/// Raw MJPEG, 320x240 at 10 fps, paced like a camera.
const MJPEG_COMMAND: &str = "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=320x240:rate=10 -c:v mjpeg -q:v 5 -f mjpeg -flush_packets 1 -";
/// The multipart type voyandz answers with.
const MULTIPART: &str = "multipart/x-mixed-replace;boundary=voyandz";
const BOUNDARY: &[u8] = b"--voyandz";
/// The browser's window; the picture (320x240) sits in its top-left corner.
const WINDOW: (usize, usize) = (400, 300);
const PICTURE: (usize, usize) = (320, 240);

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// The JPEG of every complete part of a multipart body (the last, maybe partial, part is left
/// out), after checking each part's framing: boundary, headers with `image/jpeg`, a blank
/// line, exactly one JPEG from its SOI to its EOI, then CRLF and the next boundary.
fn parts(body: &[u8]) -> Vec<&[u8]> {
    assert!(
        body.starts_with(BOUNDARY),
        "the body starts with the boundary: {:?}",
        String::from_utf8_lossy(&body[..body.len().min(64)])
    );
    let marks = find_all(body, BOUNDARY);
    let mut jpegs = Vec::new();
    for pair in marks.windows(2) {
        let part = &body[pair[0] + BOUNDARY.len()..pair[1]];
        let head_end = find_all(part, b"\r\n\r\n")
            .first()
            .copied()
            .unwrap_or_else(|| panic!("a part without headers: {part:02x?}"));
        let head = String::from_utf8_lossy(&part[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("\r\n"), "boundary line ends with CRLF");
        assert!(
            head.contains("content-type: image/jpeg"),
            "part headers {head:?}"
        );
        let data = &part[head_end + 4..];
        let jpeg = data
            .strip_suffix(b"\r\n")
            .unwrap_or_else(|| panic!("part data not followed by CRLF before the boundary"));
        assert!(
            jpeg.starts_with(&[0xFF, 0xD8, 0xFF]),
            "a part starts with SOI"
        );
        assert!(jpeg.ends_with(&[0xFF, 0xD9]), "a part ends with EOI");
        assert_eq!(
            find_all(jpeg, &[0xFF, 0xD8, 0xFF]).len(),
            1,
            "exactly one JPEG per part"
        );
        jpegs.push(jpeg);
    }
    jpegs
}

/// Reads a multipart client for `duration`; every time the stream pauses (between two
/// pictures at 10 fps), what arrived so far must end with a whole part header: the boundary
/// of the next part was sent right after the last picture. Returns the body and how many
/// pauses were checked.
fn read_checking_pauses(client: &mut StreamReader, duration: Duration) -> (Vec<u8>, usize) {
    let deadline = Instant::now() + duration;
    let mut body = Vec::new();
    let mut pauses = 0;
    while Instant::now() < deadline {
        let got = client.read_for(Duration::from_millis(30));
        if got.is_empty() && !body.is_empty() {
            pauses += 1;
            let last = *find_all(&body, BOUNDARY)
                .last()
                .expect("a boundary was received");
            let tail = &body[last..];
            assert!(
                tail.ends_with(b"\r\n\r\n") && tail.len() < 200,
                "while waiting for the next picture, the client holds the last picture without \
                 the next boundary (a browser would show it one frame late); tail: {:?}",
                String::from_utf8_lossy(&tail[..tail.len().min(120)])
            );
        }
        body.extend(got);
    }
    (body, pauses)
}

fn check_multipart(server: &Server, path: &str) {
    let mut client = server.open(path);
    assert_eq!(client.status, 200, "GET {path}");
    assert_eq!(client.header("content-type"), Some(MULTIPART), "GET {path}");
    let (body, pauses) = read_checking_pauses(&mut client, Duration::from_millis(2000));
    drop(client);
    assert!(pauses >= 5, "only {pauses} pauses seen in 2 s at 10 fps");
    let jpegs = parts(&body);
    assert!(
        jpegs.len() >= 10,
        "{} whole pictures in 2 s at 10 fps",
        jpegs.len()
    );
    for jpeg in [jpegs[0], jpegs[jpegs.len() - 1]] {
        assert_eq!(video_size(jpeg), Some((320, 240)), "a part decodes");
    }
}

#[test]
fn mpjpeg_parameter_on_raw_mjpeg_gives_one_jpeg_per_part() {
    let server = Server::start(&format!(
        "streams:\n  x:\n    command: {MJPEG_COMMAND}\n    mimetype: video/x-motion-jpeg\n"
    ));
    check_multipart(&server, "/stream/x?mpjpeg");
    // Without the parameter the same stream is raw MJPEG.
    let mut raw = server.open("/stream/x");
    assert_eq!(raw.header("content-type"), Some("video/x-motion-jpeg"));
    let bytes = raw.read_at_least(1000, Duration::from_secs(10));
    assert!(!bytes.starts_with(BOUNDARY), "no multipart without ?mpjpeg");
}

#[test]
fn multipart_mimetype_over_raw_mjpeg_is_served_as_multipart() {
    let server = Server::start(&format!(
        "streams:\n  y:\n    command: {MJPEG_COMMAND}\n    mimetype: multipart/x-mixed-replace;boundary=voyandz\n"
    ));
    check_multipart(&server, "/stream/y");
}

/// One headless Chromium run on `page`: its screenshot as gray pixels of the whole window.
fn screenshot(dir: &Path, page: &Path, name: &str) -> Vec<u8> {
    let shot = dir.join(format!("{name}.png"));
    let url = format!("file://{}", page.display());
    let budget = ["--virtual-time-budget=1000"];
    chromium_screenshot(dir, name, &url, WINDOW, &shot, &budget)
}

/// The picture's corner of a window screenshot.
fn picture_area(pixels: &[u8]) -> Vec<u8> {
    pixels
        .chunks_exact(WINDOW.0)
        .take(PICTURE.1)
        .flat_map(|row| &row[..PICTURE.0])
        .copied()
        .collect()
}

fn variance(pixels: &[u8]) -> f64 {
    let n = pixels.len() as f64;
    let mean = pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / n;
    pixels
        .iter()
        .map(|&p| (f64::from(p) - mean).powi(2))
        .sum::<f64>()
        / n
}

#[test]
fn chromium_renders_the_moving_picture_in_an_img() {
    let server = Server::start(&format!(
        "streams:\n  x:\n    command: {MJPEG_COMMAND}\n    mimetype: video/x-motion-jpeg\n"
    ));
    // Keep the stream running between the two browser runs, so the second one sees a later
    // picture of the same run rather than the first picture of a new one.
    let mut keeper = server.open("/stream/x");
    keeper.read_at_least(1, Duration::from_secs(10));
    let stop = Arc::new(AtomicBool::new(false));
    let keeper = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && !keeper.is_finished() {
                keeper.read_for(Duration::from_millis(50));
            }
        })
    };
    let page = server.dir().join("page.html");
    std::fs::write(
        &page,
        format!(
            "<!DOCTYPE html>\n<html><body style=\"margin:0;background:#fff\">\
             <img src=\"{}\"></body></html>\n",
            server.url("/stream/x?mpjpeg")
        ),
    )
    .expect("write the page");

    let first = screenshot(server.dir(), &page, "first");
    // A second apart: 10 pictures later at 10 fps.
    thread::sleep(Duration::from_secs(1));
    let second = screenshot(server.dir(), &page, "second");
    stop.store(true, Ordering::Relaxed);
    keeper.join().expect("keeper");

    // The browser fetched the stream itself.
    assert!(
        server
            .log_lines()
            .iter()
            .any(|l| l.contains("path=/stream/x") && l.contains("HeadlessChrome")),
        "no request from Chromium in the log:\n{}",
        server.log_text()
    );
    let (a, b) = (picture_area(&first), picture_area(&second));
    // testsrc2's colour bars: far from a blank (uniform) area.
    for (name, area) in [("first", &a), ("second", &b)] {
        let v = variance(area);
        assert!(
            v > 500.0,
            "the {name} screenshot shows no picture (gray variance {v:.1})"
        );
    }
    // The moving pattern and the frame counter changed between the two.
    let changed = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.abs_diff(**y) > 16)
        .count();
    assert!(
        changed > a.len() / 200,
        "the two screenshots a second apart are (nearly) the same: {changed} pixels changed"
    );
    // Outside the picture the page stays white: the picture is where the <img> is.
    let outside = &first[(PICTURE.1 + 10) * WINDOW.0..];
    assert!(
        outside.iter().all(|&p| p > 240),
        "the page below the picture is white"
    );
}
