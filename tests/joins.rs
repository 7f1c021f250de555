//! Where a client, or a command's stdin, starts in a live stream (issue 16, items 10, 11, 12
//! and 14), with the real binary, real TCP and real ffmpeg:
//!
//! - a command reading a feed from its first byte gets the feed's bytes from byte 0 (a `cat`
//!   of a TS file gives the file, SDT included);
//! - the plain URL of a container that cannot be decoded without its header (WebM, fMP4, FLV,
//!   Ogg) starts with the header and a keyframe; `?header=0&keyframe=0` still gives raw bytes;
//! - a join sends the response head and the cached header at once, before the next unit;
//! - a feed that shows no header and no keyframe (null TS packets) does not hold a join back.
//!
//! Streams are tiny (160x120, 10 fps) and paced with `-re`, as a live camera.

mod common;

use std::time::{Duration, Instant};

use common::{Keeper, Server, assert_clean_start};

/// The common start of every test command: quiet, no stdin.
const FFMPEG: &str = "ffmpeg -hide_banner -loglevel error -nostdin";
/// 160x120 test picture at 10 fps, in real time.
const VIDEO_IN: &str = "-re -f lavfi -i testsrc2=size=160x120:rate=10";
/// A 440 Hz tone in real time.
const AUDIO_IN: &str = "-re -f lavfi -i sine=frequency=440:sample_rate=48000";
/// H.264 with a keyframe every second and no encoder delay.
const H264: &str = "-c:v libx264 -preset ultrafast -tune zerolatency -g 10 -pix_fmt yuv420p";
/// How long a stream runs before the clients under test join: past its header and first
/// keyframe, so that they really join mid-stream.
const RUN_BEFORE_JOIN: Duration = Duration::from_millis(1500);
/// How long a joining client reads: two keyframe intervals.
const JOIN_READ: Duration = Duration::from_millis(2000);
/// Bound for anything that starts a process (ffmpeg, a feed): generous, the suite runs many
/// ffmpegs on 2 cores.
const START: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// Item 10: a command's stdin that joins at its feed's first byte starts at byte 0
// ---------------------------------------------------------------------------------------

#[test]
fn a_cat_of_a_ts_file_feed_gives_the_file_from_its_first_byte() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("clip.ts");
    // ffmpeg's TS muxer writes the SDT first, then PAT and PMT: the packets a join at the
    // header boundary would lose.
    let made = common::run_bounded(
        std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10"])
            .args([
                "-t",
                "1",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-f",
                "mpegts",
            ])
            .arg(&file),
        None,
        START,
    );
    assert!(made.status.success(), "ffmpeg: {made:?}");
    let expected = std::fs::read(&file).expect("read the clip");
    assert_eq!(
        expected
            .get(..4)
            .map(|b| (b[0], u16::from_be_bytes([b[1], b[2]]) & 0x1FFF)),
        Some((0x47, 0x11)),
        "the clip starts with its SDT (PID 0x11)"
    );
    let server = Server::start(&format!(
        "feeds:\n  clip:\n    file: {}\nstreams:\n  s:\n    feed: clip\n    command: cat\n    mimetype: video/mp2t\n",
        file.display()
    ));
    let mut client = server.open("/stream/s");
    assert_eq!(client.status, 200);
    let got = client.read_at_least(expected.len(), START);
    assert!(
        got[..expected.len()] == expected[..],
        "the client's bytes are not the file from byte 0: first packet PID {:#x}, file's {:#x}",
        u16::from_be_bytes([got[1], got[2]]) & 0x1FFF,
        u16::from_be_bytes([expected[1], expected[2]]) & 0x1FFF,
    );
}

// ---------------------------------------------------------------------------------------
// Item 11: the plain URL of a header-needing container plays
// ---------------------------------------------------------------------------------------

/// One stream whose plain URL must play in any player.
struct Case {
    /// The stream's `command:`.
    command: String,
    /// The stream's `mimetype:`.
    mimetype: &'static str,
    /// `codec_name,codec_type` lines ffprobe must find in a joined client's bytes.
    streams: &'static [&'static str],
    /// Whether it carries video (then the first frame must be a keyframe).
    video: bool,
    /// Whether bytes start with the container's header.
    is_header: fn(&[u8]) -> bool,
}

/// Joins the running stream three ways: no parameter and `?header` must get the header and
/// decode from a keyframe; `?header=0&keyframe=0` must get raw live bytes (no header).
fn plain_url_plays(case: Case) {
    let server = Server::start(&format!(
        "streams:\n  s:\n    command: {}\n    mimetype: {}\n",
        case.command, case.mimetype
    ));
    let mut keeper = server.open("/stream/s");
    assert_eq!(keeper.status, 200);
    keeper.read_at_least(1, START);
    keeper.read_for(RUN_BEFORE_JOIN);
    let keeper = Keeper::start(keeper);

    let mut plain = server.open("/stream/s");
    let mut header = server.open("/stream/s?header");
    let mut raw = server.open("/stream/s?header=0&keyframe=0");
    let plain_bytes = plain.read_for(JOIN_READ);
    let header_bytes = header.read_for(Duration::from_millis(500));
    let raw_bytes = raw.read_at_least(16, START);
    for (what, bytes) in [("plain URL", &plain_bytes), ("?header", &header_bytes)] {
        assert!(
            (case.is_header)(bytes),
            "{what} of {}: bytes do not start with the header ({:02x?})",
            case.mimetype,
            &bytes[..bytes.len().min(16)]
        );
        assert_clean_start(what, bytes, case.streams, case.video);
    }
    assert!(
        !(case.is_header)(&raw_bytes),
        "?header=0&keyframe=0 got the header: it forces raw live bytes"
    );
    assert!(keeper.finish() > 0, "the keeping client got nothing");
}

#[test]
fn plain_url_of_webm_starts_with_the_header_and_a_keyframe() {
    plain_url_plays(Case {
        command: format!(
            "{FFMPEG} {VIDEO_IN} {AUDIO_IN} -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -lag-in-frames 0 -g 10 -b:v 300k -c:a libopus -b:a 32k -f webm -cluster_time_limit 100 -flush_packets 1 -"
        ),
        mimetype: "video/webm",
        streams: &["vp9,video", "opus,audio"],
        video: true,
        is_header: |b| b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]),
    });
}

#[test]
fn plain_url_of_sniffed_fmp4_starts_with_the_header_and_a_keyframe() {
    // The mimetype names no container: the hub learns it from the first bytes, and the
    // default join must follow what it learned.
    plain_url_plays(Case {
        command: format!(
            "{FFMPEG} {VIDEO_IN} {H264} -an -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof -flush_packets 1 -"
        ),
        mimetype: "application/octet-stream",
        streams: &["h264,video"],
        video: true,
        is_header: |b| b.get(4..8) == Some(b"ftyp"),
    });
}

#[test]
fn plain_url_of_flv_starts_with_the_header_and_a_keyframe() {
    plain_url_plays(Case {
        command: format!(
            "{FFMPEG} {VIDEO_IN} {AUDIO_IN} {H264} -c:a aac -b:a 64k -f flv -flush_packets 1 -"
        ),
        mimetype: "video/x-flv",
        streams: &["h264,video", "aac,audio"],
        video: true,
        is_header: |b| b.starts_with(b"FLV"),
    });
}

#[test]
fn plain_url_of_ogg_starts_with_the_header_pages() {
    plain_url_plays(Case {
        command: format!(
            "{FFMPEG} {AUDIO_IN} -c:a libopus -b:a 32k -page_duration 20000 -f ogg -flush_packets 1 -"
        ),
        mimetype: "audio/ogg",
        streams: &["opus,audio"],
        video: false,
        is_header: |b| b.starts_with(b"OggS\0\x02"),
    });
}

#[test]
fn plain_url_of_mpegts_stays_raw_live_bytes() {
    let server = Server::start(&format!(
        "streams:\n  s:\n    command: {FFMPEG} {VIDEO_IN} {H264} -f mpegts -muxdelay 0 -flush_packets 1 -\n    mimetype: video/mp2t\n"
    ));
    let mut keeper = server.open("/stream/s");
    keeper.read_at_least(1, START);
    keeper.read_for(RUN_BEFORE_JOIN);
    let keeper = Keeper::start(keeper);
    let started = Instant::now();
    let mut plain = server.open("/stream/s");
    let bytes = plain.read_at_least(188, START);
    // Live bytes come with the next read of the feed (a frame is 100 ms), never a GOP later.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "a raw TS client waited {:?} for its first bytes",
        started.elapsed()
    );
    assert_eq!(bytes[0], 0x47, "TS bytes start at a packet");
    keeper.finish();
}

// ---------------------------------------------------------------------------------------
// Item 12: the response head and the cached header go out at once
// ---------------------------------------------------------------------------------------

/// The acceptance bound for the response head and the whole header of a join on a running
/// stream: what a request on an idle loopback costs, far less than one fragment (2 s).
const HEADER_AT_ONCE_MAX: Duration = Duration::from_millis(300);

/// Length of the leading `ftyp` and `moov` boxes once both arrived whole.
fn ftyp_moov_len(bytes: &[u8]) -> Option<usize> {
    let size = |at: usize| -> Option<usize> {
        let word = bytes.get(at..at + 4)?;
        Some(u32::from_be_bytes(word.try_into().ok()?) as usize)
    };
    let ftyp = size(0)?;
    (bytes.get(ftyp + 4..ftyp + 8)? == b"moov").then_some(())?;
    let end = ftyp + size(ftyp)?;
    (bytes.len() >= end).then_some(end)
}

#[test]
fn a_header_join_of_fmp4_gets_the_head_and_header_at_once() {
    // A keyframe, and so a fragment, every 2 s.
    let server = Server::start(&format!(
        "streams:\n  s:\n    command: {FFMPEG} {VIDEO_IN} -c:v libx264 -preset ultrafast -tune zerolatency -g 20 -pix_fmt yuv420p -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof -flush_packets 1 -\n    mimetype: video/mp4\n"
    ));
    let mut keeper = server.open("/stream/s");
    assert_eq!(keeper.status, 200);
    // Join right after a fragment began: the next one is a whole fragment away.
    let deadline = Instant::now() + START;
    let (mut seen, mut fragments) = (Vec::new(), 0);
    while fragments < 2 {
        assert!(
            Instant::now() < deadline,
            "no second fragment within {START:?}"
        );
        let tail = seen.len().saturating_sub(3);
        seen.extend(keeper.read_for(Duration::from_millis(10)));
        fragments += seen[tail..].windows(4).filter(|w| w == b"moof").count();
        seen.drain(..seen.len().saturating_sub(3));
    }
    let keeper = Keeper::start(keeper);

    let asked = Instant::now();
    let mut client = server.open("/stream/s?header");
    let head_took = asked.elapsed();
    assert_eq!(client.status, 200);
    let mut got = Vec::new();
    while ftyp_moov_len(&got).is_none() && asked.elapsed() < START {
        got.extend(client.read_for(Duration::from_millis(10)));
    }
    let took = asked.elapsed();
    assert!(
        head_took <= HEADER_AT_ONCE_MAX && took <= HEADER_AT_ONCE_MAX,
        "?header: response head after {head_took:?}, ftyp+moov ({:?} bytes) after {took:?} \
         (max {HEADER_AT_ONCE_MAX:?})",
        ftyp_moov_len(&got)
    );
    got.extend(client.read_for(Duration::from_millis(2500)));
    assert_clean_start(
        "?header after the early header",
        &got,
        &["h264,video"],
        true,
    );
    keeper.finish();
}

#[test]
fn a_keyframe_join_of_a_running_ts_stream_gets_its_response_head_at_once() {
    // A keyframe every 2 s: the data waits for it, the response head does not.
    let server = Server::start(&format!(
        "streams:\n  s:\n    command: {FFMPEG} {VIDEO_IN} -c:v libx264 -preset ultrafast -tune zerolatency -g 20 -pix_fmt yuv420p -f mpegts -\n    mimetype: video/mp2t\n"
    ));
    let mut keeper = server.open("/stream/s");
    assert_eq!(keeper.status, 200);
    keeper.read_at_least(1, START);
    let keeper = Keeper::start(keeper);

    let asked = Instant::now();
    let mut client = server.open("/stream/s?keyframe");
    let head_took = asked.elapsed();
    assert_eq!(client.status, 200);
    assert!(
        head_took <= HEADER_AT_ONCE_MAX,
        "?keyframe on TS: response head after {head_took:?} (max {HEADER_AT_ONCE_MAX:?})"
    );
    // Past the next keyframe, with frames after it.
    let got = client.read_for(Duration::from_millis(3500));
    assert_clean_start("?keyframe after an early head", &got, &["h264,video"], true);
    keeper.finish();
}

// ---------------------------------------------------------------------------------------
// Item 14: a feed with no header and no keyframe does not hold its commands back
// ---------------------------------------------------------------------------------------

/// The first byte bound of the issue for a relayed stream of a markless feed.
const MARKLESS_FIRST_BYTE_MAX: Duration = Duration::from_secs(1);

/// A shell command writing 7 MPEG-TS null packets (PID 0x1FFF) every 20 ms, for ever.
fn null_packets_feed() -> String {
    let packet = format!("\\107\\037\\377\\020{}", "\\377".repeat(184));
    format!("sh -c 'p=\"{packet}\"; while :; do printf \"$p$p$p$p$p$p$p\"; sleep 0.02; done'")
}

#[test]
fn a_cat_of_a_feed_without_header_or_marks_starts_at_once() {
    let server = Server::start(&format!(
        "feeds:\n  nulls:\n    command: {}\n    mode: continuous\nstreams:\n  s:\n    feed: nulls\n    command: cat\n    mimetype: video/mp2t\n",
        null_packets_feed()
    ));
    // The feed runs before anyone asks: `cat` joins it mid-run.
    assert!(
        server.wait_log("started", START),
        "the feed did not start: {:?}",
        server.log_lines()
    );
    let asked = Instant::now();
    let mut client = server.open("/stream/s");
    assert_eq!(client.status, 200);
    let first = client
        .try_read_at_least(188, START)
        .unwrap_or_else(|got| panic!("got {} bytes within {START:?}", got.len()));
    let took = asked.elapsed();
    assert!(
        took <= MARKLESS_FIRST_BYTE_MAX,
        "first bytes after {took:?} (max {MARKLESS_FIRST_BYTE_MAX:?})"
    );
    assert_eq!(
        &first[..4],
        &[0x47, 0x1F, 0xFF, 0x10],
        "null packets relayed"
    );
}
