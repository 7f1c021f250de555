//! Screenshots at `<stream url>/pic` (issue 13): JPEG by default with `?quality=`, PNG with
//! `?format=png` or `/pic.png`, from MPEG-TS, WebM and MPJPEG streams and from an idle
//! on-demand feed; 415 for audio-only streams. Every picture is checked with ffprobe (it
//! decodes, it has the stream's size), its response has the right Content-Type and
//! Content-Length, and the connection closes after it. Requests that arrive together share
//! one decoder process.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{Keeper, Server, StreamReader, video_size};

const FFMPEG: &str = "ffmpeg -hide_banner -loglevel error -nostdin";
/// H.264 with a keyframe every second and no encoder delay.
const H264: &str = "-c:v libx264 -preset ultrafast -tune zerolatency -g 10 -pix_fmt yuv420p";
/// The decoder's command line carries this filter (it hands the newest picture first):
/// it tells a decoder apart from the stream's own ffmpeg.
const DECODER_MARK: &str = "-vf reverse";
/// How long a test lets its stream run before asking for pictures (past the first keyframe).
const WARM_UP: Duration = Duration::from_millis(1500);

const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

fn ts_command(size: &str) -> String {
    format!(
        "{FFMPEG} -re -f lavfi -i testsrc2=size={size}:rate=10 {H264} -f mpegts -muxdelay 0 -flush_packets 1 -"
    )
}

/// GETs a picture without `Connection: close` (the server must close by itself) and checks
/// the response: 200, Content-Type, Content-Length = body, the connection closes after it,
/// the picture's magic bytes and its size. Returns the picture.
fn picture(server: &Server, path: &str, mimetype: &str, size: (u32, u32)) -> Vec<u8> {
    let mut client: StreamReader = server.send_raw(&format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: voyandz-tests\r\n\r\n"
    ));
    assert_eq!(
        client.status,
        200,
        "GET {path}; log:\n{}",
        server.log_text()
    );
    assert_eq!(client.header("content-type"), Some(mimetype), "GET {path}");
    let length: usize = client
        .header("content-length")
        .unwrap_or_else(|| panic!("GET {path}: a picture has a Content-Length"))
        .parse()
        .expect("numeric Content-Length");
    let body = client.read_at_least(length, Duration::from_secs(20));
    assert_eq!(
        body.len(),
        length,
        "GET {path}: body length = Content-Length"
    );
    assert!(
        client.wait_closed(Duration::from_secs(5)),
        "GET {path}: the connection closes after the picture"
    );
    let magic = if mimetype == "image/png" {
        PNG_MAGIC
    } else {
        JPEG_MAGIC
    };
    assert!(body.starts_with(magic), "GET {path}: {mimetype} magic");
    assert_eq!(
        video_size(&body),
        Some(size),
        "GET {path}: the picture decodes and has the stream's size"
    );
    body
}

/// GETs the picture at quality 10 and at quality 95 (JPEG) and checks that the second is
/// clearly larger. Returns both, low first.
fn low_and_high(server: &Server, path: &str, size: (u32, u32)) -> (Vec<u8>, Vec<u8>) {
    let low = picture(server, &format!("{path}?quality=10"), "image/jpeg", size);
    let high = picture(server, &format!("{path}?quality=95"), "image/jpeg", size);
    assert!(
        high.len() > low.len() * 2,
        "quality 95 ({} bytes) should be clearly larger than quality 10 ({} bytes)",
        high.len(),
        low.len()
    );
    (low, high)
}

/// Opens `path` and keeps reading it in a thread so the stream runs while pictures are
/// taken; returns once the stream is warm.
fn keep_running(server: &Server, path: &str) -> Keeper {
    let client = server.open(path);
    assert_eq!(client.status, 200);
    let keeper = Keeper::start(client);
    thread::sleep(WARM_UP);
    keeper
}

#[test]
fn mpegts_jpeg_quality_and_png() {
    let server = Server::start(&format!(
        "streams:\n  cam:\n    command: {}\n    mimetype: video/mp2t\n    url: /cam.ts\n",
        ts_command("320x240")
    ));
    let keeper = keep_running(&server, "/stream/cam");
    let size = (320, 240);
    let default = picture(&server, "/stream/cam/pic", "image/jpeg", size);
    let (low, high) = low_and_high(&server, "/stream/cam/pic", size);
    assert!(
        default.len() > low.len() && default.len() < high.len(),
        "default quality 85 ({} bytes) lies between 10 ({}) and 95 ({})",
        default.len(),
        low.len(),
        high.len()
    );
    picture(&server, "/stream/cam/pic?format=png", "image/png", size);
    picture(&server, "/stream/cam/pic.png", "image/png", size);
    picture(&server, "/stream/cam/pic.jpg", "image/jpeg", size);
    // The stream's `url` has its pictures too.
    picture(&server, "/cam.ts/pic", "image/jpeg", size);
    for bad in ["quality=0", "quality=101", "quality=x", "format=gif"] {
        let resp = server.get(&format!("/stream/cam/pic?{bad}"));
        assert_eq!(resp.status, 400, "?{bad}: {}", resp.text());
    }
    assert!(keeper.finish() > 0);
}

#[test]
fn webm_jpeg_and_png() {
    let server = Server::start(&format!(
        "streams:\n  cam:\n    command: {FFMPEG} -re -f lavfi -i testsrc2=size=240x180:rate=10 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -lag-in-frames 0 -g 10 -b:v 300k -f webm -cluster_time_limit 100 -flush_packets 1 -\n    mimetype: video/webm\n"
    ));
    let keeper = keep_running(&server, "/stream/cam");
    let size = (240, 180);
    low_and_high(&server, "/stream/cam/pic", size);
    picture(&server, "/stream/cam/pic.png", "image/png", size);
    assert!(keeper.finish() > 0);
}

#[test]
fn mpjpeg_default_jpeg_is_the_last_part_and_png_decodes() {
    let server = Server::start(&format!(
        "streams:\n  cam:\n    command: {FFMPEG} -re -f lavfi -i testsrc2=size=160x120:rate=10 -c:v mjpeg -q:v 10 -f mpjpeg -boundary_tag ffmpeg -flush_packets 1 -\n    mimetype: multipart/x-mixed-replace;boundary=ffmpeg\n"
    ));
    let keeper = keep_running(&server, "/stream/cam");
    let size = (160, 120);
    let jpeg = picture(&server, "/stream/cam/pic", "image/jpeg", size);
    // The part itself, no re-encoding: exactly one JPEG, ending with its EOI.
    assert!(jpeg.ends_with(&[0xFF, 0xD9]), "a whole JPEG");
    // The default JPEG of an MJPEG stream needs no process.
    assert_eq!(
        server.count_procs(DECODER_MARK),
        0,
        "no decoder for the default JPEG of an MJPEG stream"
    );
    low_and_high(&server, "/stream/cam/pic", size);
    picture(&server, "/stream/cam/pic?format=png", "image/png", size);
    assert!(keeper.finish() > 0);
}

#[test]
fn idle_on_demand_feed_is_started_for_a_picture() {
    let server = Server::start(&format!(
        "feeds:\n  cam:\n    command: {}\nstreams:\n  cam:\n    feed: cam\n    mimetype: video/mp2t\n",
        ts_command("200x150")
    ));
    assert_eq!(
        server.count_procs("testsrc2"),
        0,
        "the on-demand feed is idle before the first request"
    );
    let jpeg = picture(&server, "/stream/cam/pic", "image/jpeg", (200, 150));
    assert!(!jpeg.is_empty());
    assert!(
        server.wait_log_line(
            |l| l.contains(" started pid=") && l.contains("feed=cam"),
            Duration::from_secs(5)
        ),
        "the picture request started the feed; log:\n{}",
        server.log_text()
    );
    picture(&server, "/stream/cam/pic.png", "image/png", (200, 150));
}

#[test]
fn audio_only_streams_have_no_picture() {
    let server = Server::start(&format!(
        "streams:\n  mp3:\n    command: {FFMPEG} -re -f lavfi -i sine=frequency=440 -c:a libmp3lame -b:a 64k -f mp3 -flush_packets 1 -\n    mimetype: audio/mpeg\n  tsaudio:\n    command: {FFMPEG} -re -f lavfi -i sine=frequency=440 -c:a aac -b:a 64k -f mpegts -muxdelay 0 -flush_packets 1 -\n    mimetype: video/mp2t\n"
    ));
    // By mimetype: audio/*.
    for path in ["/stream/mp3/pic", "/stream/mp3/pic.png"] {
        let resp = server.get(path);
        assert_eq!(resp.status, 415, "GET {path}: {}", resp.text());
    }
    // By content: a video container that carries no video.
    let resp = server.get("/stream/tsaudio/pic");
    assert_eq!(resp.status, 415, "GET /stream/tsaudio/pic: {}", resp.text());
    assert_eq!(server.count_procs(DECODER_MARK), 0, "no decoder for audio");
}

#[test]
fn concurrent_requests_share_one_decode() {
    const CLIENTS: usize = 16;
    let server = Arc::new(Server::start(&format!(
        "streams:\n  cam:\n    command: {}\n    mimetype: video/mp2t\n",
        ts_command("320x240")
    )));
    let keeper = keep_running(&server, "/stream/cam");

    // Watch the server's descendants for decoders while the requests are in flight.
    let watching = Arc::new(AtomicBool::new(true));
    let most = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (server, watching, most, seen) = (
            Arc::clone(&server),
            Arc::clone(&watching),
            Arc::clone(&most),
            Arc::clone(&seen),
        );
        thread::spawn(move || {
            let mut pids = Vec::new();
            while watching.load(Ordering::Relaxed) {
                let decoders: Vec<u32> = server
                    .descendants()
                    .into_iter()
                    .filter(|(_, cmdline)| cmdline.contains(DECODER_MARK))
                    .map(|(pid, _)| pid)
                    .collect();
                most.fetch_max(decoders.len(), Ordering::Relaxed);
                for pid in decoders {
                    if !pids.contains(&pid) {
                        pids.push(pid);
                    }
                }
                seen.store(pids.len(), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let barrier = Arc::new(Barrier::new(CLIENTS));
    let requests: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (server, barrier) = (Arc::clone(&server), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                server.get("/stream/cam/pic")
            })
        })
        .collect();
    let answers: Vec<_> = requests
        .into_iter()
        .map(|r| r.join().expect("request thread"))
        .collect();
    watching.store(false, Ordering::Relaxed);
    watcher.join().expect("watcher");

    for (i, resp) in answers.iter().enumerate() {
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        assert_eq!(resp.header("content-type"), Some("image/jpeg"));
        assert_eq!(
            resp.header("content-length"),
            Some(resp.body.len().to_string().as_str())
        );
    }
    assert!(
        answers.iter().all(|r| r.body == answers[0].body),
        "the {CLIENTS} concurrent requests got different pictures: more than one decode"
    );
    assert_eq!(video_size(&answers[0].body), Some((320, 240)));
    let most = most.load(Ordering::Relaxed);
    let seen = seen.load(Ordering::Relaxed);
    // One decode: one "picture decoded" line, and at most one decoder at a time. After it a
    // second decoder waits (unfed) for the next request, so up to two pids are seen in all.
    let decodes = server
        .log_lines()
        .iter()
        .filter(|line| line.contains("picture decoded"))
        .count();
    assert_eq!(
        decodes, 1,
        "{CLIENTS} concurrent requests ran {decodes} decodes"
    );
    assert!(
        most == 1 && (1..=2).contains(&seen),
        "{CLIENTS} concurrent requests saw {seen} decoders ({most} at once)"
    );
    assert!(keeper.finish() > 0);
}
