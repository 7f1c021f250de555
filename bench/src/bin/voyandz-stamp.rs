//! The stamping feed: writes 188-byte stamped packets to stdout at a constant bit rate, one
//! `write(2)` per packet, paced on absolute CLOCK_MONOTONIC deadlines (no drift).
//!
//! A late wake-up (or a write blocked by a full pipe) does not shift the schedule: the packets
//! that fell due meanwhile are written back to back, so the long-run rate stays exact, as a
//! live source's would. It stops on a closed stdout (EPIPE), or after `--seconds`/`--count`.
//!
//! With `--opaque` it first writes one line of text ([`OPAQUE_PREAMBLE`]): the server sniffs a
//! feed's first bytes to choose its container, and text is none, so the feed is relayed as
//! opaque bytes although every packet after it is still MPEG-TS. The clients' scanner skips
//! the line like any unaligned bytes, and it is written before the schedule starts, so no
//! stamp is delayed by it.

use clap::Parser;
use voyandz_bench::clock::{now_ns, sleep_until_ns};
use voyandz_bench::packet::{PACKET_LEN, Stamp, encode};

/// Command line of the stamping feed.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Write stamped 188-byte packets to stdout at a constant rate"
)]
struct Cli {
    /// Bit rate of the output, in bits per second (188-byte packets).
    #[arg(long, default_value_t = 4_000_000)]
    rate_bps: u64,
    /// Stop after this many seconds (default: run until stdout closes).
    #[arg(long)]
    seconds: Option<f64>,
    /// Stop after this many packets.
    #[arg(long)]
    count: Option<u64>,
    /// Write a line of text first, so that the server sniffs no container in the first bytes.
    #[arg(long)]
    opaque: bool,
}

/// What `--opaque` writes first: text no container sniffer recognises (no TS sync byte, no
/// magic number), ending in a newline so a human reading the stream sees what it is.
const OPAQUE_PREAMBLE: &[u8] = b"voyandz-stamp: opaque preamble, stamped packets follow\n";

fn main() {
    let cli = Cli::parse();
    if cli.rate_bps == 0 {
        eprintln!("voyandz-stamp: --rate-bps must be > 0");
        std::process::exit(64);
    }
    // The default 50 µs timer slack would add up to 50 µs of jitter to every deadline.
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes an integer and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    if cli.opaque && write_all(OPAQUE_PREAMBLE).is_err() {
        return; // EPIPE: the reader left before the first packet
    }

    let bits_per_packet = (PACKET_LEN * 8) as u128;
    let start = now_ns();
    let end = cli.seconds.map(|s| start + (s * 1e9) as u64);
    let mut buf = [0u8; PACKET_LEN];
    let mut seq: u64 = 0;
    loop {
        if cli.count.is_some_and(|c| seq >= c) {
            break;
        }
        // Deadline of packet `seq`, computed from the start each time: no accumulated rounding.
        let due =
            start + (seq as u128 * bits_per_packet * 1_000_000_000 / cli.rate_bps as u128) as u64;
        if end.is_some_and(|e| due >= e) {
            break;
        }
        if now_ns() < due {
            sleep_until_ns(due);
        }
        encode(
            &mut buf,
            Stamp {
                seq,
                written_ns: now_ns(),
                due_ns: due,
            },
        );
        if write_all(&buf).is_err() {
            break; // EPIPE: the reader left
        }
        seq += 1;
    }
}

/// One `write(2)` on fd 1 (std's stdout would buffer until a newline or a flush).
fn write_all(buf: &[u8]) -> std::io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: writes from a valid buffer slice to fd 1.
        let n = unsafe { libc::write(1, buf[off..].as_ptr().cast(), buf.len() - off) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        off += n as usize;
    }
    Ok(())
}
