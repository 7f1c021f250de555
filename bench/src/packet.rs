//! The stamped 188-byte packet and the scanner that finds it in a byte stream.
//!
//! Layout (an MPEG-TS packet on PID 0x0100 with a valid continuity counter, so a container-aware
//! server sees well-formed TS and never a reason to drop or rewrite it):
//!
//! | bytes   | content                                                   |
//! |---------|-----------------------------------------------------------|
//! | 0       | sync byte 0x47                                            |
//! | 1..4    | TS header: PID 0x0100, payload only, continuity counter   |
//! | 4..12   | magic `VYZSTAMP`                                          |
//! | 12..20  | sequence number, u64 little-endian, from 0                |
//! | 20..28  | CLOCK_MONOTONIC ns just before the packet's `write(2)`    |
//! | 28..36  | CLOCK_MONOTONIC ns the packet was due (absolute pacing)   |
//! | 36..188 | 0xFF stuffing                                             |
//!
//! Latency is measured from the write stamp (bytes 20..28): that is when the bytes entered the
//! pipe. The due stamp shows how late the feed itself was (its own scheduling, or a server that
//! stopped reading the pipe and so blocked the write).

/// TS packet size: one `write(2)` per packet.
pub const PACKET_LEN: usize = 188;
/// MPEG-TS sync byte.
pub const SYNC: u8 = 0x47;
/// Marks a stamped packet; 8 bytes right after the 4-byte TS header.
pub const MAGIC: &[u8; 8] = b"VYZSTAMP";
const MAGIC_AT: usize = 4;
const MAGIC_END: usize = MAGIC_AT + MAGIC.len();

/// One decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Sequence number, from 0, +1 per packet.
    pub seq: u64,
    /// CLOCK_MONOTONIC ns just before the write.
    pub written_ns: u64,
    /// CLOCK_MONOTONIC ns the packet was due.
    pub due_ns: u64,
}

/// Fills `buf` with the packet for `stamp`.
pub fn encode(buf: &mut [u8; PACKET_LEN], stamp: Stamp) {
    buf[0] = SYNC;
    buf[1] = 0x01; // PID 0x0100, high bits
    buf[2] = 0x00;
    buf[3] = 0x10 | (stamp.seq & 0x0f) as u8; // payload only, continuity counter
    buf[MAGIC_AT..MAGIC_END].copy_from_slice(MAGIC);
    buf[12..20].copy_from_slice(&stamp.seq.to_le_bytes());
    buf[20..28].copy_from_slice(&stamp.written_ns.to_le_bytes());
    buf[28..36].copy_from_slice(&stamp.due_ns.to_le_bytes());
    buf[36..].fill(0xff);
}

fn is_packet_start(buf: &[u8]) -> bool {
    buf.len() >= MAGIC_END && buf[0] == SYNC && &buf[MAGIC_AT..MAGIC_END] == MAGIC
}

fn decode(p: &[u8]) -> Stamp {
    let u = |r: std::ops::Range<usize>| u64::from_le_bytes(p[r].try_into().expect("8 bytes"));
    Stamp {
        seq: u(12..20),
        written_ns: u(20..28),
        due_ns: u(28..36),
    }
}

/// Finds packets in a byte stream cut at arbitrary places (HTTP reads, chunks).
///
/// It aligns on the first sync byte followed by the magic, then takes 188-byte packets; a packet
/// that does not start with sync + magic loses alignment and the scanner searches again
/// (counted in `resyncs`).
#[derive(Debug, Default)]
pub struct Scanner {
    carry: Vec<u8>,
    aligned: bool,
    ever_aligned: bool,
    /// Times alignment was lost after it had been found (torn or corrupted data).
    pub resyncs: u64,
    /// Bytes skipped while searching for alignment.
    pub skipped: u64,
}

impl Scanner {
    /// Scans `data`, calling `f` for each whole packet found.
    pub fn feed(&mut self, data: &[u8], mut f: impl FnMut(Stamp)) {
        if self.carry.is_empty() && self.aligned {
            let used = self.scan(data, &mut f);
            self.carry.extend_from_slice(&data[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(data);
            let used = self.scan(&buf, &mut f);
            buf.drain(..used);
            self.carry = buf;
        }
    }

    /// Scans `buf`; returns how many leading bytes are consumed (the rest is kept for later).
    fn scan(&mut self, buf: &[u8], f: &mut impl FnMut(Stamp)) -> usize {
        let mut i = 0;
        loop {
            if !self.aligned {
                let found = buf[i..].windows(MAGIC_END).position(is_packet_start);
                match found {
                    Some(j) => {
                        self.skipped += j as u64;
                        i += j;
                        self.aligned = true;
                        if self.ever_aligned {
                            self.resyncs += 1;
                        }
                        self.ever_aligned = true;
                    }
                    None => {
                        // Keep the tail that may be the start of a packet cut in two.
                        let keep_from = buf.len().saturating_sub(MAGIC_END - 1).max(i);
                        self.skipped += (keep_from - i) as u64;
                        return keep_from;
                    }
                }
            }
            if buf.len() - i < PACKET_LEN {
                return i;
            }
            let p = &buf[i..i + PACKET_LEN];
            if !is_packet_start(p) {
                self.aligned = false;
                i += 1;
                self.skipped += 1;
                continue;
            }
            f(decode(p));
            i += PACKET_LEN;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in 0..n {
            let mut p = [0u8; PACKET_LEN];
            encode(
                &mut p,
                Stamp {
                    seq,
                    written_ns: seq * 10,
                    due_ns: seq * 10 - seq.min(1),
                },
            );
            out.extend_from_slice(&p);
        }
        out
    }

    #[test]
    fn finds_every_packet_whatever_the_cut() {
        let data = stream(50);
        for piece in [1, 2, 7, 11, 187, 188, 189, 1000, 10_000] {
            let mut s = Scanner::default();
            let mut seqs = Vec::new();
            // Start mid-packet, as a client joining a live stream does.
            for chunk in data[100..].chunks(piece) {
                s.feed(chunk, |st| seqs.push(st.seq));
            }
            assert_eq!(seqs, (1..50).collect::<Vec<_>>(), "piece {piece}");
            assert_eq!(s.resyncs, 0);
        }
    }

    #[test]
    fn resyncs_after_garbage() {
        let mut data = stream(10);
        data.splice(188 * 3 + 5..188 * 3 + 5, [0x47u8, 1, 2, 3].iter().copied());
        let mut s = Scanner::default();
        let mut seqs = Vec::new();
        for chunk in data.chunks(33) {
            s.feed(chunk, |st| seqs.push(st.seq));
        }
        assert_eq!(seqs, vec![0, 1, 2, 4, 5, 6, 7, 8, 9]);
        assert_eq!(s.resyncs, 1);
    }
}
