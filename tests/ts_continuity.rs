//! MPEG-TS continuity counters across a join (issue 16, item 13): a client that joins a
//! running TS stream with `?header`, `?keyframe` or `keyframe=last` gets the cached PAT and PMT
//! packets with counters that the live PAT and PMT packets after them continue, so a player
//! sees no discontinuity (VLC logged `TS discontinuity` on every join when the header kept the
//! counters it was cached with).
//!
//! The bytes are checked packet by packet: for PID 0 and the PMT PID, every packet with a
//! payload carries the previous packet's counter plus one (mod 16), from the header into the
//! live packets.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{Server, StreamReader, running_stream};

/// A transport stream packet.
const PACKET_BYTES: usize = 188;
/// How long the stream runs before the joins: its counters have moved on from the cached
/// header's (ffmpeg sends PAT and PMT about every 100 ms).
const RUN_BEFORE_JOIN: Duration = Duration::from_millis(1500);
/// PAT packets a joined client must get after the header before its bytes are checked: the
/// header's and two live ones.
const PATS_TO_CHECK: usize = 3;
/// Enough for a keyframe join (a keyframe every second) and three PATs after it.
const JOIN_READ_MAX: Duration = Duration::from_secs(6);
/// Joins per policy, one after another: each lands at another counter value.
const ROUNDS: usize = 3;

/// H.264 at 10 fps with a keyframe every second, in TS written packet by packet.
const TS_COMMAND: &str = "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=160x120:rate=10 -c:v libx264 -preset ultrafast -tune zerolatency -g 10 -pix_fmt yuv420p -f mpegts -muxdelay 0 -flush_packets 1 -";

fn pid_of(packet: &[u8]) -> u16 {
    u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2])
}

/// The PMT PID the first program of a PAT packet names.
fn pmt_pid(pat: &[u8]) -> u16 {
    assert_eq!(pat[3] & 0x30, 0x10, "a PAT packet without adaptation field");
    let section = 5 + usize::from(pat[4]);
    let programs = &pat[section + 8..];
    let entry = programs
        .chunks_exact(4)
        .find(|e| e[..2] != [0, 0])
        .expect("a program in the PAT");
    u16::from(entry[2] & 0x1F) << 8 | u16::from(entry[3])
}

/// The counters of `pid`'s packets in `bytes`, with whether each had a payload.
fn counters(bytes: &[u8], pid: u16) -> Vec<(u8, bool)> {
    bytes
        .chunks_exact(PACKET_BYTES)
        .filter(|p| pid_of(p) == pid)
        .map(|p| (p[3] & 0x0F, p[3] & 0x10 != 0))
        .collect()
}

/// The places where `pid`'s counter does not continue (packet index, previous, got).
fn jumps(bytes: &[u8], pid: u16) -> Vec<(usize, u8, u8)> {
    counters(bytes, pid)
        .windows(2)
        .enumerate()
        .filter(|(_, w)| (w[0].0 + u8::from(w[1].1)) & 0x0F != w[1].0)
        .map(|(i, w)| (i + 1, w[0].0, w[1].0))
        .collect()
}

/// Reads `client` until its bytes hold [`PATS_TO_CHECK`] PAT packets.
fn read_pats(client: &mut StreamReader, what: &str) -> Vec<u8> {
    let deadline = Instant::now() + JOIN_READ_MAX;
    let mut bytes = Vec::new();
    while counters(&bytes, 0).len() < PATS_TO_CHECK {
        assert!(
            Instant::now() < deadline,
            "{what}: {PATS_TO_CHECK} PAT packets not received within {JOIN_READ_MAX:?} ({} bytes)",
            bytes.len()
        );
        bytes.extend(client.read_for(Duration::from_millis(100)));
    }
    bytes
}

fn check_join(server: &Server, query: &str) {
    let what = format!("/stream/ts{query}");
    let mut client = server.open(&what);
    assert_eq!(client.status, 200, "GET {what}");
    let bytes = read_pats(&mut client, &what);
    drop(client);
    let packets = bytes.len() / PACKET_BYTES;
    assert!(
        bytes
            .chunks(PACKET_BYTES)
            .take(packets)
            .all(|p| p[0] == 0x47),
        "{what}: not whole packets from the first byte"
    );
    assert_eq!(pid_of(&bytes), 0, "{what}: does not start with the PAT");
    let pmt = pmt_pid(&bytes);
    for (pid, name) in [(0, "PAT"), (pmt, "PMT")] {
        assert!(
            counters(&bytes, pid).len() >= 2,
            "{what}: no live {name} packet after the header"
        );
        let found = jumps(&bytes, pid);
        assert!(
            found.is_empty(),
            "{what}: {name} (pid {pid}) continuity counter jumps (packet, was, got): {found:?}; \
             counters {:?}",
            counters(&bytes, pid)
        );
    }
}

#[test]
fn joins_continue_the_pat_and_pmt_counters() {
    let (server, keeper) = running_stream("ts", TS_COMMAND, "video/mp2t", RUN_BEFORE_JOIN);
    for _ in 0..ROUNDS {
        // The three policies at once: each waits for its own start point.
        thread::scope(|scope| {
            for query in ["?header", "?keyframe", "?keyframe=last"] {
                let server = &server;
                scope.spawn(move || check_join(server, query));
            }
        });
    }
    assert!(keeper.finish() > 0, "the keeping client got nothing");
}
