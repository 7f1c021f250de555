//! Paused clients (issue 16, item 2): a client of a container-aware stream that stops reading
//! for longer than the hub keeps data is not disconnected; when it reads again it skips to
//! the newest keyframe the hub keeps, so what it gets is current and starts on a clean
//! picture. Dead peers are left to the kernel: every accepted socket has TCP keepalive. A
//! paused client of an opaque stream, which has nowhere clean to resume, is cut when it reads
//! again (the documented choice; it was so before this change too).
//!
//! "Current" is measured in the stream's own clock: the video PTS of the packets the client
//! received (ffprobe) against the time it spent paused.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Server, ffprobe_with_errors, wait_until};

/// About 400 kbit/s of H.264 in MPEG-TS at 10 fps, a keyframe every second, in real time:
/// a paused client's kernel buffers hold a few seconds of it, far less than the pause.
const COMMAND: &str = "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=160x120:rate=10 -c:v libx264 -preset ultrafast -tune zerolatency -g 10 -pix_fmt yuv420p -b:v 400k -minrate 400k -maxrate 400k -bufsize 100k -x264-params nal-hrd=cbr -f mpegts -muxdelay 0 -flush_packets 1 -";
/// Longer than the old 8 s stall limit, and far longer than the hub keeps data (2 s).
const PAUSE: Duration = Duration::from_secs(15);
/// How long the client reads after its pause: enough to drain what the kernel still held
/// from before the pause and then receive from the keyframe it skipped to.
const RESUMED_READ: Duration = Duration::from_secs(4);
/// How far behind the stream's clock the resumed client may be: the hub's 2 s bound plus a
/// GOP and some slack for a loaded CI machine.
const BEHIND_MAX_SECONDS: f64 = 4.0;
/// The skip's log line.
const SKIP_LINE: &str = "client too slow or paused: skipping ahead to a keyframe";

/// (PTS in seconds, is a keyframe) of every video packet ffprobe finds in `bytes`, in order.
fn video_packets(bytes: &[u8]) -> Vec<(f64, bool)> {
    let (out, _) = ffprobe_with_errors(
        bytes,
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
        ],
    );
    out.lines()
        .filter_map(|line| {
            let (pts, flags) = line.trim().split_once(',')?;
            Some((pts.parse().ok()?, flags.contains('K')))
        })
        .collect()
}

#[test]
fn a_paused_client_is_kept_and_resumes_at_a_current_keyframe() {
    let server = Server::start(&format!(
        "streams:\n  ts:\n    command: {COMMAND}\n    mimetype: video/mp2t\n"
    ));
    let mut client = server.open("/stream/ts?header&keyframe");
    assert_eq!(client.status, 200);
    let mut body = client.read_at_least(20_000, Duration::from_secs(15));
    body.extend(client.read_for(Duration::from_secs(1)));
    let before = video_packets(&body);
    let paused_at = before.last().expect("video before the pause").0;
    let paused_wall = Instant::now();

    // Take nothing from the socket: the kernel's buffers fill and the server's writes wait.
    std::thread::sleep(PAUSE);
    assert!(
        !client.is_finished(),
        "the stream ended during the pause: {:?}",
        server.log_lines()
    );
    let resumed = client.read_for(RESUMED_READ);
    assert!(
        !client.is_finished(),
        "a paused client was disconnected: {:?}",
        server
            .log_lines()
            .iter()
            .filter(|line| line.contains("client disconnected"))
            .collect::<Vec<_>>()
    );
    assert!(
        wait_until(
            || server.log_text().contains(SKIP_LINE),
            Duration::from_secs(2)
        ),
        "the skip was not logged: {:?}",
        server.log_lines()
    );

    // Where the packets' clock jumps forward, the client skipped: it lands on a keyframe.
    body.extend(&resumed);
    let packets = video_packets(&body);
    let jump = packets
        .windows(2)
        .position(|pair| pair[1].0 - pair[0].0 > PAUSE.as_secs_f64() / 2.0)
        .map(|index| index + 1)
        .unwrap_or_else(|| panic!("no skip ahead in the stream's clock: {packets:?}"));
    assert!(
        packets[jump].1,
        "the client resumed on a packet that is not a keyframe: {:?}",
        &packets[jump.saturating_sub(2)..(jump + 3).min(packets.len())]
    );
    // And what it has is current: the stream's clock ran on while it was paused.
    let newest = packets.last().expect("packets").0;
    let live = paused_at + paused_wall.elapsed().as_secs_f64();
    eprintln!(
        "paused at PTS {paused_at:.1} s, resumed on a keyframe at {:.1} s (after {:.1} s), \
         newest {newest:.1} s, live about {live:.1} s",
        packets[jump].0,
        packets[jump - 1].0
    );
    assert!(
        newest >= live - BEHIND_MAX_SECONDS,
        "after the pause the client is {:.1} s behind the stream (newest PTS {newest:.1} s)",
        live - newest
    );

    // A client that leaves frees its stream: the on-demand command stops.
    client.close();
    assert!(
        wait_until(
            || server.count_procs("testsrc2") == 0,
            Duration::from_secs(10)
        ),
        "the stream's command still runs after its only client left"
    );
}

#[test]
fn accepted_sockets_have_keepalive_so_dead_peers_are_found() {
    // A stream that says nothing: its client's connection is quiet, which is when the kernel
    // probes the peer.
    let server = Server::start(
        "streams:\n  quiet:\n    command: sleep 60\n    mimetype: application/octet-stream\n",
    );
    let client = std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    let client_port = client.local_addr().expect("address").port();
    (&client)
        .write_all(b"GET /stream/quiet HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send the request");
    // /proc/net/tcp: the server's end of this connection, and its timer ("tr" 2: keepalive).
    let local = format!(":{:04X}", server.port());
    let remote = format!(":{client_port:04X}");
    let timer = || {
        std::fs::read_to_string("/proc/net/tcp")
            .expect("read /proc/net/tcp")
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|fields| {
                fields.len() > 5 && fields[1].ends_with(&local) && fields[2].ends_with(&remote)
            })
            .map(|fields| fields[5].to_string())
    };
    assert!(
        wait_until(
            || timer().is_some_and(|timer| timer.starts_with("02:")),
            Duration::from_secs(5)
        ),
        "no keepalive timer on the server's socket (tr:when = {:?})",
        timer()
    );
    drop(client);
}

#[test]
fn a_paused_client_of_an_opaque_stream_is_cut_when_it_reads_again() {
    // Raw pixels: no container to resume in, about 190 kB/s.
    let server = Server::start(
        "streams:\n  raw:\n    command: ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=160x120:rate=10 -f rawvideo -pix_fmt gray -\n    mimetype: application/octet-stream\n",
    );
    let mut client = server.open("/stream/raw");
    assert_eq!(client.status, 200);
    client.read_at_least(20_000, Duration::from_secs(15));
    // Longer than the hub keeps data (2 s), far shorter than the stall limit.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        client.wait_closed(Duration::from_secs(10)),
        "a client that paused on an opaque stream was not cut when it read again"
    );
    assert!(
        wait_until(
            || server
                .log_text()
                .contains("reason=\"too slow: fell behind live\""),
            Duration::from_secs(2)
        ),
        "not cut for falling behind: {:?}",
        server.log_lines()
    );
}
