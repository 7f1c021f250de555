//! MPEG transport stream framing: 188-byte packets, PAT and PMT as the header, a keyframe at
//! each video PES that starts a random-access point. The PAT names the first program's PMT
//! PID; the PMT names the video PID (the first video stream) and, for audio-only programs, the
//! first audio PID. A packet on the video PID that starts a PES (PUSI) is a
//! [`MarkKind::Keyframe`] when its adaptation field sets `random_access_indicator`, or, since
//! ffmpeg does not always set it, when the start of its PES payload (this packet only) holds an
//! H.264 IDR/SPS, an HEVC IRAP/VPS/SPS, or an MPEG-2 sequence/GOP header or I picture; any
//! other PES start on the video PID is a [`MarkKind::Boundary`]. Audio-only programs get a
//! boundary at each PES start on the first audio PID. Marks are reported in the push that
//! completes the packet.
//!
//! The header is the latest PAT packet(s) and PMT packet(s), as received, kept while their
//! sections (CRC-checked) stay the same: repeated tables do not rebuild it. Each PID counts its
//! packets in a 4-bit continuity counter, and a player checks that the live PAT and PMT packets
//! after the header continue the header's counts (VLC logs `TS discontinuity`, ffmpeg a failed
//! continuity check). So a join gets the header with the counters of the last PAT and PMT
//! packets before its start point (read from the first ones after it, or the newest ones parsed
//! when none follows yet): a copy of its few packets per join, never per chunk.
//!
//! Not handled: 192- and 204-byte packets (M2TS, FEC), multi-section PATs, a PSI section that
//! starts in the same packet where the previous one on that PID ends (the older one is
//! dropped), and programs other than the first. After garbage the parser resynchronises on
//! three sync bytes a packet apart.

use bytes::Bytes;

use super::{Container, Demarcator, HeaderView, Mark, MarkKind};

/// A transport stream packet (ISO/IEC 13818-1).
const PACKET_BYTES: usize = 188;
/// First byte of every packet.
const SYNC: u8 = 0x47;
/// Resynchronising needs a sync byte at k, k+188 and k+376: one chance in 65536 that garbage
/// passes, against one in 256 for a single byte.
const HUNT_BYTES: usize = 3 * PACKET_BYTES;
/// The PAT's PID.
const PAT_PID: u16 = 0;
/// PSI table IDs.
const PAT_TABLE: u8 = 0x00;
const PMT_TABLE: u8 = 0x02;
/// A PAT or PMT section is at most 1024 bytes (section_length ≤ 1021, plus 3).
const SECTION_MAX_BYTES: usize = 1024;
/// Packets a 1024-byte section can span (184 payload bytes each, less the pointer field).
const SECTION_MAX_PACKETS: usize = 6;
/// Smallest PAT/PMT section: 8 bytes of header and the 4-byte CRC.
const SECTION_MIN_BYTES: usize = 12;
/// `adaptation_field` flag: the packet starts a random-access point.
const RANDOM_ACCESS: u8 = 0x40;
/// Byte 3 of a packet: the continuity counter, and the flag of a payload (only a packet with
/// a payload advances the counter).
const COUNTER: u8 = 0x0F;
const HAS_PAYLOAD: u8 = 0x10;
/// Byte 1 of a packet: the transport error flag (its counter cannot be trusted either).
const TRANSPORT_ERROR: u8 = 0x80;

/// CRC-32/MPEG-2 (poly 0x04C11DB7, no reflection, no final xor): over a whole section
/// including its CRC it gives 0. Garbage that looks like a PAT or PMT must not replace them.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The PID of a packet (at least 3 bytes of it).
fn pid_of(p: &[u8]) -> u16 {
    u16::from(p[1] & 0x1F) << 8 | u16::from(p[2])
}

fn crc32(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize]
    })
}

/// Whether `first` starts a transport stream: a sync byte at every packet start it holds,
/// at least two of them (needs 189 bytes; `false` before).
pub fn sniff(first: &[u8]) -> bool {
    // A muxer writing packet by packet (ffmpeg with -flush_packets 1) gives a first read of
    // exactly one packet: that must be enough.
    first.len() >= PACKET_BYTES && first.iter().step_by(PACKET_BYTES).all(|&b| b == SYNC)
}

/// How a video codec's random-access points are recognised in a PES payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    H264,
    Hevc,
    Mpeg2,
    /// Other video (MPEG-4 part 2, VC-1, ...): only `random_access_indicator` tells.
    Other,
}

fn video_codec(stream_type: u8) -> Option<Codec> {
    match stream_type {
        0x1B => Some(Codec::H264),
        0x24 => Some(Codec::Hevc),
        0x01 | 0x02 => Some(Codec::Mpeg2),
        0x10 | 0x20 | 0x33 | 0x42 | 0xD1 | 0xEA => Some(Codec::Other),
        _ => None,
    }
}

/// MPEG audio, AAC (ADTS, LATM, raw), LPCM, AC-3, DTS, TrueHD, E-AC-3 (ATSC/Blu-ray types).
fn is_audio(stream_type: u8) -> bool {
    matches!(
        stream_type,
        0x03 | 0x04 | 0x0F | 0x11 | 0x1C | 0x80..=0x87 | 0x8A | 0xA1 | 0xA2
    )
}

/// One PSI section being reassembled from its packets, with the raw packets kept for the
/// header.
struct Section {
    data: [u8; SECTION_MAX_BYTES],
    len: usize,
    /// Section length once known; 0 while no section is being assembled.
    want: usize,
    raw: [u8; PACKET_BYTES * SECTION_MAX_PACKETS],
    raw_len: usize,
}

impl Section {
    fn new() -> Self {
        Self {
            data: [0; SECTION_MAX_BYTES],
            len: 0,
            want: 0,
            raw: [0; PACKET_BYTES * SECTION_MAX_PACKETS],
            raw_len: 0,
        }
    }

    /// Adds a packet of this section's PID; returns the section's length once it is complete
    /// (in `data`) and its CRC is right.
    fn feed(&mut self, packet: &[u8], payload: &[u8], start: bool) -> Option<usize> {
        let bytes = if start {
            self.want = 0;
            let pointer = usize::from(*payload.first()?);
            let section = payload.get(1 + pointer..)?;
            let length = section.get(1..3)?;
            let want = 3 + (usize::from(length[0] & 0x0F) << 8 | usize::from(length[1]));
            if !(SECTION_MIN_BYTES..=SECTION_MAX_BYTES).contains(&want) {
                return None;
            }
            (self.want, self.len, self.raw_len) = (want, 0, 0);
            section
        } else if self.want > 0 && self.raw_len < self.raw.len() {
            payload
        } else {
            self.want = 0;
            return None;
        };
        self.raw[self.raw_len..self.raw_len + PACKET_BYTES].copy_from_slice(packet);
        self.raw_len += PACKET_BYTES;
        let take = bytes.len().min(self.want - self.len);
        self.data[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
        if self.len < self.want {
            return None;
        }
        let len = self.want;
        self.want = 0;
        (crc32(&self.data[..len]) == 0).then_some(len)
    }

    fn raw(&self) -> &[u8] {
        &self.raw[..self.raw_len]
    }
}

/// What the PAT and PMT say, and the header built from them: everything but the byte
/// staging, so a packet can be read straight from the staging buffer.
struct Tables {
    pat: Section,
    pmt: Section,
    /// CRCs of the sections in use: a repeated table with the same CRC changes nothing.
    pat_crc: Option<u32>,
    pmt_crc: Option<u32>,
    /// The PAT and PMT packets in use (allocated only when a table changes).
    pat_raw: Vec<u8>,
    pmt_raw: Vec<u8>,
    program: u16,
    pmt_pid: Option<u16>,
    video: Option<(u16, Codec)>,
    audio: Option<u16>,
    header: Option<Bytes>,
    /// Continuity counters of the newest PAT and PMT packets parsed.
    pat_counter: u8,
    pmt_counter: u8,
}

impl Tables {
    fn packet(&mut self, p: &[u8], at: u64, marks: &mut Vec<Mark>) {
        let (error, start) = (p[1] & TRANSPORT_ERROR != 0, p[1] & 0x40 != 0);
        let pid = pid_of(p);
        let control = p[3] >> 4 & 0x3;
        if error || control & 1 == 0 {
            return; // damaged, or no payload (adaptation field only / reserved)
        }
        let (payload_at, random_access) = if control & 2 != 0 {
            let length = usize::from(p[4]);
            (5 + length, length > 0 && p[5] & RANDOM_ACCESS != 0)
        } else {
            (4, false)
        };
        let Some(payload) = p.get(payload_at..) else {
            return;
        };
        if let Some((video, codec)) = self.video {
            if pid == video && start {
                let key = random_access || starts_random_access(payload, codec);
                let kind = if key {
                    MarkKind::Keyframe
                } else {
                    MarkKind::Boundary
                };
                marks.push(Mark { offset: at, kind });
                return;
            }
        } else if start && self.audio == Some(pid) {
            marks.push(Mark {
                offset: at,
                kind: MarkKind::Boundary,
            });
            return;
        }
        if pid == PAT_PID {
            self.pat_counter = p[3] & COUNTER;
            if let Some(len) = self.pat.feed(p, payload, start) {
                self.read_pat(len);
            }
        } else if Some(pid) == self.pmt_pid {
            self.pmt_counter = p[3] & COUNTER;
            if let Some(len) = self.pmt.feed(p, payload, start) {
                self.read_pmt(len);
            }
        }
    }

    /// Takes the PAT just completed in `self.pat` (`len` bytes) when it is new.
    fn read_pat(&mut self, len: usize) {
        let s = &self.pat.data[..len];
        let crc = u32::from_be_bytes([s[len - 4], s[len - 3], s[len - 2], s[len - 1]]);
        if s[0] != PAT_TABLE || s[5] & 1 == 0 || self.pat_crc == Some(crc) {
            return; // not a PAT, not yet applicable, or the one in use
        }
        let program = s[8..len - 4]
            .chunks_exact(4)
            .map(|e| {
                (
                    u16::from_be_bytes([e[0], e[1]]),
                    u16::from_be_bytes([e[2], e[3]]),
                )
            })
            .find(|&(number, _)| number != 0); // program 0 is the network PID
        let Some((number, pid)) = program else {
            return;
        };
        self.pat_crc = Some(crc);
        self.pat_raw = self.pat.raw().to_vec();
        let pid = pid & 0x1FFF;
        if self.pmt_pid != Some(pid) || self.program != number {
            (self.pmt_pid, self.program, self.pmt_crc) = (Some(pid), number, None);
            (self.video, self.audio, self.header) = (None, None, None);
        } else if self.header.is_some() {
            // Same program, new PAT bytes: keep the PMT packets, swap the PAT ones.
            self.header = Some([&self.pat_raw[..], &self.pmt_raw[..]].concat().into());
        }
    }

    /// Takes the PMT just completed in `self.pmt` (`len` bytes) when it is new.
    fn read_pmt(&mut self, len: usize) {
        let s = &self.pmt.data[..len];
        let crc = u32::from_be_bytes([s[len - 4], s[len - 3], s[len - 2], s[len - 1]]);
        let number = u16::from_be_bytes([s[3], s[4]]);
        if s[0] != PMT_TABLE || s[5] & 1 == 0 || number != self.program {
            return;
        }
        if self.pmt_crc == Some(crc) {
            return;
        }
        let info = usize::from(s[10] & 0x0F) << 8 | usize::from(s[11]);
        let (mut video, mut audio, mut private) = (None, None, None);
        let mut i = 12 + info;
        while i + 5 <= len - 4 {
            let stream_type = s[i];
            let pid = u16::from(s[i + 1] & 0x1F) << 8 | u16::from(s[i + 2]);
            if let Some(codec) = video_codec(stream_type) {
                video = video.or(Some((pid, codec)));
            } else if is_audio(stream_type) {
                audio = audio.or(Some(pid));
            } else if stream_type == 0x06 {
                // PES private data: Opus, DVB AC-3... or subtitles; an audio PID of last resort.
                private = private.or(Some(pid));
            }
            i += 5 + (usize::from(s[i + 3] & 0x0F) << 8 | usize::from(s[i + 4]));
        }
        self.pmt_crc = Some(crc);
        (self.video, self.audio) = (video, audio.or(private));
        self.pmt_raw = self.pmt.raw().to_vec();
        self.header = Some([&self.pat_raw[..], &self.pmt_raw[..]].concat().into());
    }
}

/// Whether a PES starting in `payload` (this packet's part of it) begins a random-access
/// access unit, judged from the NAL units or start codes found there.
fn starts_random_access(payload: &[u8], codec: Codec) -> bool {
    // PES header: start code prefix, stream_id, length (2), flags (2), header_data_length.
    if payload.len() < 9 || payload[..3] != [0, 0, 1] {
        return false;
    }
    let Some(es) = payload.get(9 + usize::from(payload[8])..) else {
        return false;
    };
    let mut i = 0;
    while i + 4 <= es.len() {
        if es[i + 2] > 1 {
            i += 3; // no start code can begin at i, i+1 or i+2
            continue;
        }
        if es[i..i + 3] != [0, 0, 1] {
            i += 1;
            continue;
        }
        let unit = es[i + 3];
        let verdict = match codec {
            Codec::H264 => match unit & 0x1F {
                5 | 7 => Some(true),  // IDR slice, SPS
                1..=4 => Some(false), // a non-IDR slice comes first
                _ => None,            // AUD, SEI, PPS...: look further
            },
            Codec::Hevc => match unit >> 1 & 0x3F {
                16..=21 | 32 | 33 => Some(true), // IRAP slice, VPS, SPS
                0..=15 => Some(false),
                _ => None,
            },
            Codec::Mpeg2 => match unit {
                0xB3 | 0xB8 => Some(true), // sequence header, GOP header
                // picture header: picture_coding_type 1 is an I picture
                0x00 => Some(es.get(i + 5).is_some_and(|b| b >> 3 & 0x7 == 1)),
                _ => None,
            },
            Codec::Other => Some(false),
        };
        if let Some(key) = verdict {
            return key;
        }
        i += 4;
    }
    false
}

/// The PAT and PMT PIDs and the continuity counters of their newest packets parsed: what a
/// join's copy of the header must count up to when the bytes after it hold no such packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuity {
    pids: [u16; 2],
    counters: [u8; 2],
}

impl Continuity {
    /// `header` with counters that lead into the first PAT and PMT packets of `next` (or,
    /// when `next` holds none, follow the newest ones parsed).
    pub fn header_before(&self, header: &Bytes, next: &mut dyn Iterator<Item = &[u8]>) -> Bytes {
        let [pat, pmt] = counters_before(next, self.pids);
        let counters = [
            pat.unwrap_or(self.counters[0]),
            pmt.unwrap_or(self.counters[1]),
        ];
        with_counters(header, self.pids, counters)
    }
}

/// For each of `pids`, the continuity counter of the packet before the first one of that PID
/// in `next` (back-to-back packets from a packet start): that packet's counter, less one when
/// it has a payload. `None` when `next` holds no such packet before its end, or before it
/// loses packet sync (garbage).
fn counters_before(next: &mut dyn Iterator<Item = &[u8]>, pids: [u16; 2]) -> [Option<u8>; 2] {
    let mut found = [None; 2];
    let mut head = [0u8; 4];
    let mut at = 0; // offset in the current packet
    for piece in next {
        let mut i = 0;
        while i < piece.len() {
            if at >= head.len() {
                let skip = (PACKET_BYTES - at).min(piece.len() - i);
                i += skip;
                at = (at + skip) % PACKET_BYTES;
                continue;
            }
            head[at] = piece[i];
            (at, i) = (at + 1, i + 1);
            if at < head.len() {
                continue;
            }
            if head[0] != SYNC {
                return found;
            }
            let pid = pid_of(&head);
            for (slot, &wanted) in found.iter_mut().zip(&pids) {
                if slot.is_none() && pid == wanted && head[1] & TRANSPORT_ERROR == 0 {
                    let step = u8::from(head[3] & HAS_PAYLOAD != 0);
                    *slot = Some(head[3].wrapping_sub(step) & COUNTER);
                }
            }
            if found.iter().all(Option::is_some) {
                return found;
            }
        }
    }
    found
}

/// A copy of `header` whose packets of `pids[i]` count up to `counters[i]` (its last one of
/// that PID carries it).
fn with_counters(header: &[u8], pids: [u16; 2], counters: [u8; 2]) -> Bytes {
    let mut copy = header.to_vec();
    let mut after = [0u8; 2]; // packets of each PID after the current one
    for p in copy.chunks_exact_mut(PACKET_BYTES).rev() {
        if let Some(i) = pids.iter().position(|&pid| pid == pid_of(p)) {
            p[3] = p[3] & !COUNTER | (counters[i].wrapping_sub(after[i]) & COUNTER);
            after[i] = after[i].wrapping_add(1);
        }
    }
    copy.into()
}

/// An MPEG-TS [`Demarcator`].
pub struct Parser {
    /// A packet split across pushes, or (while resynchronising) the bytes being searched.
    stage: [u8; HUNT_BYTES],
    stage_len: usize,
    /// Absolute offset of `stage[0]` (of the next byte when the stage is empty).
    stage_at: u64,
    /// Whether the stage starts on a packet boundary.
    synced: bool,
    tables: Box<Tables>,
}

impl Parser {
    /// A parser at the start of a stream (offset 0 is taken for a packet start).
    pub fn new() -> Self {
        Self {
            stage: [0; HUNT_BYTES],
            stage_len: 0,
            stage_at: 0,
            synced: true,
            tables: Box::new(Tables {
                pat: Section::new(),
                pmt: Section::new(),
                pat_crc: None,
                pmt_crc: None,
                pat_raw: Vec::new(),
                pmt_raw: Vec::new(),
                program: 0,
                pmt_pid: None,
                video: None,
                audio: None,
                header: None,
                pat_counter: 0,
                pmt_counter: 0,
            }),
        }
    }

    /// Drops the first `n` staged bytes.
    fn consume(&mut self, n: usize) {
        self.stage.copy_within(n..self.stage_len, 0);
        self.stage_len -= n;
        self.stage_at += n as u64;
    }

    /// Reads the whole packets in the stage, or searches it for sync.
    fn drain(&mut self, marks: &mut Vec<Mark>) {
        loop {
            let len = self.stage_len;
            if self.synced {
                if len < PACKET_BYTES {
                    return;
                }
                if self.stage[0] != SYNC {
                    self.synced = false;
                    continue;
                }
                let at = self.stage_at;
                self.tables.packet(&self.stage[..PACKET_BYTES], at, marks);
                self.consume(PACKET_BYTES);
                continue;
            }
            let s = &self.stage[..len];
            let checked = len.saturating_sub(2 * PACKET_BYTES);
            let found = (0..checked).find(|&k| {
                s[k] == SYNC && s[k + PACKET_BYTES] == SYNC && s[k + 2 * PACKET_BYTES] == SYNC
            });
            if let Some(k) = found {
                self.consume(k);
                self.synced = true;
                continue;
            }
            // Starts before `checked` failed; later ones wait for more bytes.
            let keep = (checked..len).find(|&k| s[k] == SYNC).unwrap_or(len);
            self.consume(keep);
            return;
        }
    }
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Demarcator for Parser {
    fn container(&self) -> Container {
        Container::MpegTs
    }

    fn push(&mut self, mut data: &[u8], marks: &mut Vec<Mark>) {
        while !data.is_empty() {
            if self.synced && self.stage_len == 0 {
                // Hot path: whole packets straight from the caller's bytes, no copy.
                let mut at = self.stage_at;
                while data.len() >= PACKET_BYTES && data[0] == SYNC {
                    self.tables.packet(&data[..PACKET_BYTES], at, marks);
                    data = &data[PACKET_BYTES..];
                    at += PACKET_BYTES as u64;
                }
                self.stage_at = at;
                match data.first() {
                    None => return,
                    Some(&b) => self.synced = b == SYNC,
                }
            }
            let room = if self.synced {
                PACKET_BYTES - self.stage_len
            } else {
                HUNT_BYTES - self.stage_len
            };
            let take = room.min(data.len());
            self.stage[self.stage_len..self.stage_len + take].copy_from_slice(&data[..take]);
            self.stage_len += take;
            data = &data[take..];
            self.drain(marks);
        }
    }

    fn header(&self) -> Option<&Bytes> {
        self.tables.header.as_ref()
    }

    fn header_view(&self) -> HeaderView {
        let tables = &self.tables;
        HeaderView {
            header: tables.header.clone(),
            continuity: tables.pmt_pid.map(|pmt_pid| Continuity {
                pids: [PAT_PID, pmt_pid],
                counters: [tables.pat_counter, tables.pmt_counter],
            }),
        }
    }

    fn audio_only(&self) -> bool {
        self.tables.pmt_crc.is_some() && self.tables.video.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::conformance::{
        check_audio_only, check_join, hostile, keyframes, marks_of, offsets, packet_marks,
    };
    use crate::container::testing::{Rng, push_in_pieces};

    const H264_AAC: &[u8] = include_bytes!("../../tests/data/containers/h264_aac.ts");
    const HEVC_AAC: &[u8] = include_bytes!("../../tests/data/containers/hevc_aac.ts");
    const AAC: &[u8] = include_bytes!("../../tests/data/containers/aac.ts");

    /// The marks are ffprobe's video packets (stream 0): each PES start, `K` ones keyframes.
    fn check_video_marks(file: &[u8]) -> Vec<Mark> {
        let marks = marks_of(&mut Parser::new(), file);
        assert_eq!(marks, packet_marks(file, Some(0), Some(0)));
        assert!(keyframes(&marks).len() >= 3);
        marks
    }

    /// The file's first PAT and PMT packets, found by PID (the PMT PID read from the PAT).
    fn first_tables(file: &[u8]) -> Vec<u8> {
        let pid = |p: &[u8]| u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
        let mut packets = file.chunks_exact(PACKET_BYTES);
        let pat = packets.find(|p| pid(p) == PAT_PID).expect("a PAT");
        let pmt_pid = u16::from(pat[15] & 0x1F) << 8 | u16::from(pat[16]);
        let pmt = packets.find(|p| pid(p) == pmt_pid).expect("a PMT");
        [pat, pmt].concat()
    }

    #[test]
    fn h264_keyframes_and_header_match_ffprobe() {
        let marks = check_video_marks(H264_AAC);
        let mut parser = Parser::new();
        marks_of(&mut parser, H264_AAC);
        assert!(sniff(H264_AAC) && !parser.audio_only());
        let header = parser.header().expect("header");
        assert_eq!(header[..], first_tables(H264_AAC)[..]);
        check_join(H264_AAC, header, keyframes(&marks)[1]);
    }

    #[test]
    fn hevc_keyframes_match_ffprobe() {
        let marks = check_video_marks(HEVC_AAC);
        let mut parser = Parser::new();
        marks_of(&mut parser, HEVC_AAC);
        check_join(
            HEVC_AAC,
            parser.header().expect("header"),
            keyframes(&marks)[2],
        );
    }

    #[test]
    fn keyframes_are_found_without_the_random_access_indicator() {
        for file in [H264_AAC, HEVC_AAC] {
            let reference = marks_of(&mut Parser::new(), file);
            let mut stripped = file.to_vec();
            for p in stripped.chunks_exact_mut(PACKET_BYTES) {
                if p[3] & 0x20 != 0 && p[4] > 0 {
                    p[5] &= !RANDOM_ACCESS;
                }
            }
            assert_eq!(marks_of(&mut Parser::new(), &stripped), reference);
        }
    }

    #[test]
    fn audio_only_streams_mark_each_audio_pes() {
        let (marks, header) = check_audio_only(Parser::new(), AAC);
        let starts: Vec<u64> = AAC
            .chunks_exact(PACKET_BYTES)
            .enumerate()
            .filter(|(_, p)| {
                p[1] & 0x40 != 0 && (u16::from(p[1] & 0x1F) << 8 | u16::from(p[2])) == 0x100
            })
            .map(|(i, _)| (i * PACKET_BYTES) as u64)
            .collect();
        assert!(starts.len() >= 5);
        assert_eq!(offsets(&marks), starts);
        assert!(header.is_some());
    }

    #[test]
    fn a_lone_packet_yields_its_mark_in_the_same_push() {
        let reference = marks_of(&mut Parser::new(), H264_AAC);
        let mut parser = Parser::new();
        let mut marks = Vec::new();
        for (i, packet) in H264_AAC.chunks_exact(PACKET_BYTES).enumerate() {
            marks.clear();
            parser.push(packet, &mut marks);
            let expected: Vec<Mark> = reference
                .iter()
                .filter(|m| m.offset == (i * PACKET_BYTES) as u64)
                .copied()
                .collect();
            assert_eq!(marks, expected, "packet {i}");
        }
    }

    #[test]
    fn marks_do_not_depend_on_piece_sizes() {
        for file in [H264_AAC, HEVC_AAC, AAC] {
            let mut whole = Parser::new();
            let reference = marks_of(&mut whole, file);
            for (seed, max_piece) in [(1, 1), (2, 4096), (3, 200), (4, 187)] {
                let mut parser = Parser::new();
                let marks = push_in_pieces(&mut parser, file, &mut Rng::new(seed), max_piece);
                assert_eq!(marks, reference);
                assert_eq!(parser.header(), whole.header());
            }
        }
    }

    /// A copy of the PMT packet with a new version number and CRC.
    fn new_pmt_version(pmt: &[u8]) -> Vec<u8> {
        let mut packet = pmt.to_vec();
        let section = 5 + usize::from(packet[4]);
        let len =
            3 + (usize::from(packet[section + 1] & 0x0F) << 8 | usize::from(packet[section + 2]));
        packet[section + 5] = (packet[section + 5] & 0xC1) | ((packet[section + 5] + 2) & 0x3E);
        let crc = crc32(&packet[section..section + len - 4]).to_be_bytes();
        packet[section + len - 4..section + len].copy_from_slice(&crc);
        packet
    }

    #[test]
    fn the_header_changes_only_with_the_tables() {
        let mut parser = Parser::new();
        let mut marks = Vec::new();
        let mut seen = Vec::new();
        for packet in H264_AAC.chunks_exact(PACKET_BYTES) {
            parser.push(packet, &mut marks);
            if let Some(header) = parser.header()
                && seen
                    .last()
                    .is_none_or(|last: &Bytes| last.as_ptr() != header.as_ptr())
            {
                seen.push(header.clone());
            }
        }
        assert_eq!(seen.len(), 1, "repeated PAT/PMT rebuilt the header");
        let tables = first_tables(H264_AAC);
        let pmt = new_pmt_version(&tables[PACKET_BYTES..]);
        parser.push(&pmt, &mut marks);
        let header = parser.header().expect("header").clone();
        assert_eq!(header[..], [&tables[..PACKET_BYTES], &pmt[..]].concat()[..]);
        // A damaged copy (bad CRC) of a new PMT changes nothing.
        let mut damaged = new_pmt_version(&pmt);
        damaged[20] ^= 0xFF;
        parser.push(&damaged, &mut marks);
        assert_eq!(parser.header().map(|h| h.as_ptr()), Some(header.as_ptr()));
    }

    /// Counter jumps on `pid` in back-to-back packets: a packet with a payload whose counter
    /// is not the one of the packet before (of that PID) plus one.
    fn counter_jumps(bytes: &[u8], pid: u16) -> usize {
        let mut last: Option<u8> = None;
        let mut jumps = 0;
        for p in bytes
            .chunks_exact(PACKET_BYTES)
            .filter(|p| pid_of(p) == pid)
        {
            let step = u8::from(p[3] & HAS_PAYLOAD != 0);
            let counter = p[3] & COUNTER;
            jumps += usize::from(last.is_some_and(|l| (l + step) & COUNTER != counter));
            last = Some(counter);
        }
        jumps
    }

    #[test]
    fn a_joins_header_continues_into_the_packets_after_it() {
        let file = H264_AAC;
        let marks = marks_of(&mut Parser::new(), file);
        let mut cached_header_jumps = 0;
        for start in keyframes(&marks).iter().map(|k| k.offset as usize) {
            // The parser has read up to the start point, a few packets past it, or everything:
            // the packets after the start point it has seen must be the ones that decide.
            for end in [
                start,
                start + 3 * PACKET_BYTES,
                start + 40 * PACKET_BYTES,
                file.len(),
            ] {
                let end = end.min(file.len());
                let mut parser = Parser::new();
                parser.push(&file[..end], &mut Vec::new());
                let pmt_pid = parser.tables.pmt_pid.expect("a PMT PID");
                let header = parser
                    .header_view()
                    .before(&mut file[start..end].chunks(100))
                    .expect("header");
                let joined = [&header[..], &file[start..]].concat();
                let live_pats = file[start..]
                    .chunks_exact(PACKET_BYTES)
                    .filter(|p| pid_of(p) == PAT_PID)
                    .count();
                assert!(live_pats > 0, "no PAT after offset {start} to check");
                for pid in [PAT_PID, pmt_pid] {
                    assert_eq!(
                        counter_jumps(&joined, pid),
                        0,
                        "pid {pid} at {start}..{end}"
                    );
                }
                let cached = parser.header().expect("header");
                assert_eq!(header.len(), cached.len());
                let stale = [&cached[..], &file[start..]].concat();
                cached_header_jumps += counter_jumps(&stale, PAT_PID);
            }
        }
        assert!(
            cached_header_jumps > 0,
            "the fixture does not show the jump a header as cached makes"
        );
    }

    #[test]
    fn hostile_input() {
        const BOUND: usize = 2 * PACKET_BYTES * SECTION_MAX_PACKETS;
        for fixture in [H264_AAC, HEVC_AAC, AAC] {
            hostile(Parser::new, fixture, false, |p| {
                p.header().is_none_or(|h| h.len() <= BOUND) && p.stage_len <= HUNT_BYTES
            });
        }
    }
}
