//! Slow clients on a container-aware stream (issue 13): a client that reads far slower than
//! the stream is not disconnected; it skips ahead to the next keyframe (logged, with its
//! count of skips), what it gets keeps decoding, and it stays a few seconds behind live at
//! most. A fast client of the same stream meanwhile receives without a pause.
//!
//! "Behind live" is measured in the stream's own clock: both clients' bytes are mapped to
//! video PTS by ffprobe (packet byte positions), and at each moment the newest PTS the slow
//! client has is compared with the newest PTS the fast one has.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, ffprobe_with_errors};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// About 2 Mbit/s of H.264 in MPEG-TS (CBR with filler), a keyframe every second.
const COMMAND: &str = "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=320x240:rate=25 -c:v libx264 -preset ultrafast -tune zerolatency -g 25 -pix_fmt yuv420p -b:v 2M -minrate 2M -maxrate 2M -bufsize 500k -x264-params nal-hrd=cbr -f mpegts -muxdelay 0 -flush_packets 1 -";
/// The slow client's pace.
const SLOW_BYTES_PER_SECOND: usize = 10_000;
/// Its receive buffer, set before connecting (the kernel doubles it for bookkeeping).
const SLOW_RECV_BUFFER: usize = 4096;
/// How long both clients read.
const READ_TIME: Duration = Duration::from_secs(8);
/// From when on the slow client must be close to live: it needs a moment to fall behind
/// and skip for the first time.
const SETTLE: Duration = Duration::from_secs(2);
/// "A few seconds behind live" at most.
const BEHIND_MAX_SECONDS: f64 = 5.0;
/// The fast client's longest allowed pause between two reads (25 fps: 40 ms per frame).
const FAST_GAP_MAX: Duration = Duration::from_millis(500);

/// What a client received: all body bytes and, per read, (when, body bytes so far).
struct Received {
    body: Vec<u8>,
    progress: Vec<(Instant, usize)>,
}

impl Received {
    /// Body bytes received by `at`.
    fn bytes_by(&self, at: Instant) -> usize {
        self.progress
            .iter()
            .take_while(|(when, _)| *when <= at)
            .last()
            .map_or(0, |&(_, total)| total)
    }
}

/// A client with a small receive buffer that reads at [`SLOW_BYTES_PER_SECOND`], over
/// HTTP/1.0 so the body is close-delimited (no chunk framing to undo).
fn slow_client(port: u16, path: &str, until: Instant) -> Received {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket
        .set_recv_buffer_size(SLOW_RECV_BUFFER)
        .expect("SO_RCVBUF");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    socket
        .connect_timeout(&SockAddr::from(addr), Duration::from_secs(5))
        .expect("connect");
    let mut stream: TcpStream = socket.into();
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: slow-test\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("send the request");
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let started = Instant::now();
    let mut raw = Vec::new();
    let mut head_len = None;
    let mut progress = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < until {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => panic!("slow client read: {e}"),
        }
        if head_len.is_none()
            && let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1."), "status line: {head}");
            assert!(head.contains(" 200 "), "slow client: {head}");
            assert!(
                !head.contains("transfer-encoding"),
                "an HTTP/1.0 body is close-delimited: {head}"
            );
            head_len = Some(end + 4);
        }
        if let Some(head_len) = head_len {
            progress.push((Instant::now(), raw.len().saturating_sub(head_len)));
        }
        // Pace: never ahead of SLOW_BYTES_PER_SECOND since the start.
        let due =
            started + Duration::from_secs_f64(raw.len() as f64 / SLOW_BYTES_PER_SECOND as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait.min(until.saturating_duration_since(Instant::now())));
        }
    }
    let head_len = head_len.expect("the slow client got a response head");
    Received {
        body: raw.split_off(head_len),
        progress,
    }
}

/// (byte position, PTS in seconds) of every video packet ffprobe finds in `bytes`.
fn video_packets(what: &str, bytes: &[u8]) -> Vec<(usize, f64)> {
    let (out, _) = ffprobe_with_errors(
        bytes,
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pos,pts_time",
            "-of",
            "csv=p=0",
        ],
    );
    let packets: Vec<(usize, f64)> = out
        .lines()
        .filter_map(|line| {
            // `pts_time,pos,` (ffprobe's field order, and a trailing comma).
            let mut fields = line.trim().split(',');
            let pts = fields.next()?.parse().ok()?;
            let pos = fields.next()?.parse().ok()?;
            Some((pos, pts))
        })
        .collect();
    assert!(
        !packets.is_empty(),
        "{what}: ffprobe found no video packets"
    );
    packets
}

/// The newest PTS among the packets whose start is within the first `bytes` bytes.
fn newest_pts(packets: &[(usize, f64)], bytes: usize) -> Option<f64> {
    packets
        .iter()
        .filter(|(pos, _)| pos + 188 <= bytes)
        .map(|&(_, pts)| pts)
        .reduce(f64::max)
}

#[test]
fn slow_client_skips_to_keyframes_and_stays_near_live_while_fast_client_flows() {
    let server = Server::start(&format!(
        "streams:\n  s:\n    command: {COMMAND}\n    mimetype: video/mp2t\n"
    ));
    let port = server.port();
    let mut fast = server.open("/stream/s?header&keyframe");
    assert_eq!(fast.status, 200);
    let first = fast.read_at_least(1, Duration::from_secs(10));
    let start = Instant::now();
    let until = start + READ_TIME;

    let slow = thread::spawn(move || slow_client(port, "/stream/s?header&keyframe", until));
    let mut fast_received = Received {
        body: first,
        progress: vec![(start, 0)],
    };
    fast_received.progress[0].1 = fast_received.body.len();
    while Instant::now() < until {
        let got = fast.read_for(Duration::from_millis(20));
        if !got.is_empty() {
            fast_received.body.extend(got);
            fast_received
                .progress
                .push((Instant::now(), fast_received.body.len()));
        }
        assert!(!fast.is_finished(), "the fast client's stream ended");
    }
    let slow_received = slow.join().expect("slow client thread");
    drop(fast);

    // The fast client never paused.
    let longest = fast_received
        .progress
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    assert!(
        longest <= FAST_GAP_MAX,
        "the fast client waited {longest:?} between two reads while the slow one lagged"
    );
    let fast_rate = fast_received.body.len() as f64 / READ_TIME.as_secs_f64();
    assert!(
        fast_rate > 150_000.0,
        "the fast client got {fast_rate:.0} B/s of a ~250 kB/s stream"
    );

    // The slow client was not cut: it skipped, and the log says so with its counter.
    let skip_lines: Vec<String> = server
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("client too slow or paused: skipping ahead to a keyframe"))
        .collect();
    assert!(
        !skip_lines.is_empty(),
        "no skip was logged; log:\n{}",
        server.log_text()
    );
    assert!(
        skip_lines
            .iter()
            .all(|l| l.contains("skips=") && l.contains("path=/stream/s")),
        "skip lines: {skip_lines:?}"
    );
    assert!(
        !server
            .log_lines()
            .iter()
            .any(|l| l.contains("too slow: fell behind live")),
        "a client of a framed stream was disconnected for being slow"
    );
    let got_late = slow_received.bytes_by(until) - slow_received.bytes_by(until - SETTLE);
    assert!(
        got_late > SLOW_BYTES_PER_SECOND,
        "the slow client got only {got_late} bytes in the last {SETTLE:?}: it stalled"
    );

    // How far behind live the slow client is, every 250 ms once it had time to fall behind.
    let slow_packets = video_packets("slow client", &slow_received.body);
    let fast_packets = video_packets("fast client", &fast_received.body);
    let mut behind = Vec::new();
    let mut at = start + SETTLE;
    while at <= until {
        let fast_pts = newest_pts(&fast_packets, fast_received.bytes_by(at))
            .expect("the fast client has video by then");
        let slow_pts = newest_pts(&slow_packets, slow_received.bytes_by(at))
            .unwrap_or_else(|| panic!("the slow client has no video {:?} in", at - start));
        behind.push((at - start, fast_pts - slow_pts));
        at += Duration::from_millis(250);
    }
    let summary = format!(
        "slow client: {} bytes, {} skips logged; seconds behind live over time: {:?}",
        slow_received.body.len(),
        skip_lines.len(),
        behind
            .iter()
            .map(|(at, s)| format!("{:.2}s:{s:.2}", at.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    eprintln!("{summary}");

    // What the slow client got decodes: it starts at a keyframe, and every skip lands on one.
    // The test stops reading mid-picture: leave that last, cut picture out.
    let whole = slow_packets.last().map_or(0, |&(pos, _)| pos);
    let (frames, errors) = ffprobe_with_errors(
        &slow_received.body[..whole],
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "frame=key_frame",
            "-of",
            "csv=p=0",
        ],
    );
    let keys: Vec<&str> = frames.lines().map(str::trim).collect();
    assert_eq!(
        keys.first(),
        Some(&"1"),
        "the slow client starts at a keyframe"
    );
    assert!(
        errors.trim().is_empty(),
        "the slow client's {} bytes ({} frames) gave decode errors:\n{errors}",
        slow_received.body.len(),
        keys.len()
    );

    // Never more than a few seconds behind live.
    for (at, seconds) in &behind {
        assert!(
            *seconds <= BEHIND_MAX_SECONDS,
            "{at:?} in, the slow client is {seconds:.2} s behind live (max \
             {BEHIND_MAX_SECONDS} s); {summary}"
        );
    }
    // And it went on past a skip: a later keyframe decodes too.
    assert!(
        keys.iter().filter(|k| **k == "1").count() >= 2,
        "the slow client decoded {} frames, keyframes {:?}: no keyframe after a skip; {summary}",
        keys.len(),
        keys
    );
}
