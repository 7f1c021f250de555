//! Fragmented MP4 framing (ISO/IEC 14496-12), as ffmpeg writes it to a pipe with
//! `-movflags frag_keyframe+empty_moov`: top-level boxes are walked by size; `ftyp` + `moov`
//! make the header; each `moof` is a [`MarkKind::Keyframe`] at its start when the first sample
//! of the video track's first `trun` is a sync sample (its flags from the `trun`, else the
//! `tfhd` default, else the `trex` default in `moov`), otherwise a [`MarkKind::Boundary`].
//! A `moof` is buffered (up to [`MOOF_MAX_BYTES`]) and its mark reported once it is complete;
//! for audio-only streams (no `vide` handler in `moov`) each `moof` is a boundary reported as
//! soon as its box header is in. `mdat`, `styp`, `sidx`, `emsg` and other boxes are skipped
//! by size, never buffered.
//!
//! Not handled: progressive (non-fragmented) MP4 (no marks), `moof`s whose `tfhd` carries an
//! absolute `base_data_offset` (fine for marks, but the `mdat` size cannot be cross-checked).
//! After garbage, or a box type that cannot be at the top level, the parser scans for the next
//! `moof`, `ftyp`, `styp` or `moov` header with a plausible size.

use bytes::Bytes;

use super::{Container, Demarcator, Mark, MarkKind};

/// A box header: 32-bit size and type, then a 64-bit size when the 32-bit one is 1.
const HEADER_BYTES: usize = 8;
const LARGE_HEADER_BYTES: usize = 16;
/// `ftyp` and `styp` list a few brands: anything larger is a corrupt size.
const FTYP_MAX_BYTES: u64 = 4096;
/// A live stream's `moov` describes a few tracks in a few KiB; a larger one is not kept.
const MOOV_MAX_BYTES: u64 = 1024 * 1024;
/// `moof`s are buffered up to this size (a few hundred bytes per track and second of samples).
pub const MOOF_MAX_BYTES: u64 = 64 * 1024;
/// A `moof` larger than this is taken for a corrupt size, not skipped.
const MOOF_SKIP_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// An `mdat` larger than this is taken for a corrupt size (a 4K fragment is a few MiB).
const MDAT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Other boxes (`sidx`, `emsg`, `free`, `mfra`...) larger than this are taken for garbage.
const OTHER_MAX_BYTES: u64 = 1024 * 1024;
/// `moof` holds at least its 16-byte `mfhd`.
const MOOF_MIN_BYTES: u64 = 8 + 16;
/// `sample_is_non_sync_sample` in sample flags.
const NON_SYNC: u32 = 0x0001_0000;
/// Box types that may appear at the top level of a fragmented MP4 stream.
const TOP_LEVEL: [&[u8; 4]; 17] = [
    b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"sidx", b"ssix", b"emsg", b"prft", b"free",
    b"skip", b"meta", b"mfra", b"uuid", b"pdin", b"wide", b"udta",
];

/// Whether `first` starts an MP4 stream (its first box is `ftyp`, `styp`, `moov` or `moof`).
pub fn sniff(first: &[u8]) -> bool {
    first
        .get(4..8)
        .is_some_and(|t| [b"ftyp", b"styp", b"moov", b"moof"].iter().any(|k| t == *k))
}

/// What the parser is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A box header, into `head`.
    Head,
    /// A box kept whole (`ftyp`, `moov`, `moof`) into `collect`, up to this absolute offset.
    Collect(u64),
    /// A box passed over, up to this absolute offset (`None`: to the end of the stream).
    Skip(Option<u64>),
    /// Scanning for a box header; `window` holds the last 8 bytes, `seen` how many there are.
    Hunt { window: u64, seen: u8 },
}

/// A fragmented MP4 [`Demarcator`].
pub struct Parser {
    /// Absolute offset of the next byte.
    at: u64,
    state: State,
    head: [u8; LARGE_HEADER_BYTES],
    head_len: usize,
    /// Absolute offset of the box being read.
    box_start: u64,
    /// Type of the box being collected.
    kind: [u8; 4],
    /// The box being collected (capacity kept: no allocation per `moof` once warm).
    collect: Vec<u8>,
    /// The latest `ftyp`, for the header.
    ftyp: Vec<u8>,
    header: Option<Bytes>,
    /// What `moov` says: seen at all, the video track, its `trex` default sample flags.
    moov: bool,
    video: Option<u32>,
    trex_flags: Option<u32>,
    /// Where the `mdat` after the last `moof` must end, by that `moof`'s sample sizes: a
    /// corrupt `mdat` size then costs a scan, not the rest of the stream.
    media_end: Option<u64>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self {
            at: 0,
            state: State::Head,
            head: [0; LARGE_HEADER_BYTES],
            head_len: 0,
            box_start: 0,
            kind: [0; 4],
            collect: Vec::new(),
            ftyp: Vec::new(),
            header: None,
            moov: false,
            video: None,
            trex_flags: None,
            media_end: None,
        }
    }

    /// Bytes held for a box being collected (bounded by `MOOV_MAX_BYTES`).
    pub fn buffered(&self) -> usize {
        self.collect.len() + self.ftyp.len()
    }

    /// Starts scanning for a box header; the last header bytes read count as scanned bytes.
    fn hunt(&mut self) {
        let window = u64::from_be_bytes(self.head[..HEADER_BYTES].try_into().unwrap_or([0; 8]));
        self.state = State::Hunt { window, seen: 8 };
        self.media_end = None;
    }

    /// Acts on the box header in `head` (`head_len` bytes; 8, or 16 for a large size).
    fn open(&mut self, marks: &mut Vec<Mark>) {
        let h = &self.head;
        let kind: [u8; 4] = [h[4], h[5], h[6], h[7]];
        let size = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
            1 if self.head_len < LARGE_HEADER_BYTES => return, // read the 64-bit size first
            1 => Some(u64::from_be_bytes(h[8..16].try_into().unwrap_or([0; 8]))),
            0 => None,
            n => Some(u64::from(n)),
        };
        self.head_len = 0;
        let media_end = self.media_end.take();
        let start = self.box_start;
        let plausible = match (&kind, size) {
            (_, Some(n)) if n < self.at - start => false, // shorter than its own header
            (b"mdat", None) => true,                      // to the end of the stream
            (_, None) => false,
            (b"ftyp" | b"styp", Some(n)) => n <= FTYP_MAX_BYTES,
            (b"moov", Some(n)) => n <= MOOV_MAX_BYTES,
            (b"moof", Some(n)) => (MOOF_MIN_BYTES..=MOOF_SKIP_MAX_BYTES).contains(&n),
            (b"mdat", Some(n)) => n <= MDAT_MAX_BYTES,
            (k, Some(n)) => n <= OTHER_MAX_BYTES && TOP_LEVEL.contains(&k),
        };
        if !plausible {
            self.hunt();
            return;
        }
        let Some(size) = size else {
            self.state = State::Skip(None);
            return;
        };
        let end = start.saturating_add(size);
        let boundary = Mark {
            offset: start,
            kind: MarkKind::Boundary,
        };
        self.state = match &kind {
            b"ftyp" | b"moov" => State::Collect(end),
            b"moof" if self.audio_only() || size > MOOF_MAX_BYTES => {
                marks.push(boundary);
                State::Skip(Some(end))
            }
            b"moof" => State::Collect(end),
            b"mdat" => State::Skip(Some(media_end.map_or(end, |m| m.min(end).max(self.at)))),
            _ => State::Skip(Some(end)),
        };
        if let State::Collect(_) = self.state {
            self.kind = kind;
            self.collect.clear();
            self.collect
                .extend_from_slice(&self.head[..(self.at - start) as usize]);
        }
    }

    /// Acts on the box just collected.
    fn close(&mut self, marks: &mut Vec<Mark>) {
        let body = self.collect.get(HEADER_BYTES..).unwrap_or_default();
        match &self.kind {
            b"ftyp" => self.ftyp.clone_from(&self.collect),
            b"moov" => {
                self.read_moov();
                let same = self.header.as_ref().is_some_and(|h| {
                    h.len() == self.ftyp.len() + self.collect.len()
                        && h[..self.ftyp.len()] == self.ftyp[..]
                        && h[self.ftyp.len()..] == self.collect[..]
                });
                if !same {
                    self.header = Some([&self.ftyp[..], &self.collect[..]].concat().into());
                }
            }
            _ => {
                if let Some((key, media)) = read_moof(body, self.video, self.trex_flags) {
                    let kind = if key {
                        MarkKind::Keyframe
                    } else {
                        MarkKind::Boundary
                    };
                    marks.push(Mark {
                        offset: self.box_start,
                        kind,
                    });
                    self.media_end = media.map(|m| self.box_start.saturating_add(m));
                }
            }
        }
    }

    /// Finds the video track and its `trex` default sample flags in the `moov` just collected.
    fn read_moov(&mut self) {
        let body = self.collect.get(HEADER_BYTES..).unwrap_or_default();
        self.moov = true;
        self.video = Boxes(body)
            .filter(|(t, _)| t == b"trak")
            .find_map(|(_, trak)| {
                let hdlr = child(child(trak, b"mdia")?, b"hdlr")?;
                if hdlr.get(8..12)? != b"vide" {
                    return None;
                }
                let tkhd = child(trak, b"tkhd")?;
                be32(tkhd, if tkhd.first() == Some(&1) { 20 } else { 12 })
            });
        self.trex_flags = child(body, b"mvex").and_then(|mvex| {
            Boxes(mvex)
                .filter(|(t, _)| t == b"trex")
                .find(|(_, trex)| be32(trex, 4) == self.video)
                .and_then(|(_, trex)| be32(trex, 20))
        });
    }
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads a `moof` body: whether the video track's first sample is a sync sample, and where its
/// media data ends relative to the `moof` start (when the sizes say). `None`: not a `moof`.
/// Without a `moov` (joined after garbage) the first track is taken for the video track.
fn read_moof(
    body: &[u8],
    video: Option<u32>,
    trex_flags: Option<u32>,
) -> Option<(bool, Option<u64>)> {
    let mut key = None;
    let mut media_end = Some(0u64);
    let mut trafs = 0;
    for (i, (_, traf)) in Boxes(body).filter(|(t, _)| t == b"traf").enumerate() {
        trafs += 1;
        let tfhd = child(traf, b"tfhd")?;
        let flags = be32(tfhd, 0)? & 0x00FF_FFFF;
        let track = be32(tfhd, 4)?;
        // Optional fields in order: base_data_offset (8), sample_description_index,
        // default_sample_duration, default_sample_size, default_sample_flags (4 each).
        let mut at = 8;
        let absolute = flags & 0x01 != 0;
        at += if absolute { 8 } else { 0 };
        at += if flags & 0x02 != 0 { 4 } else { 0 };
        at += if flags & 0x08 != 0 { 4 } else { 0 };
        let default_size = if flags & 0x10 != 0 {
            at += 4;
            be32(tfhd, at - 4)
        } else {
            None
        };
        let default_flags = if flags & 0x20 != 0 {
            be32(tfhd, at)
        } else {
            None
        };
        // default-base-is-moof, or the first traf without a base: data offsets from the moof.
        let from_moof = !absolute && (flags & 0x02_0000 != 0 || i == 0);
        let mut next = Some(0u64);
        for (_, trun) in Boxes(traf).filter(|(t, _)| t == b"trun") {
            let run = read_trun(trun, default_size)?;
            if key.is_none() && run.count > 0 && video.is_none_or(|v| v == track) {
                let flags = run.first_flags.or(default_flags).or(trex_flags);
                key = Some(flags.is_some_and(|f| f & NON_SYNC == 0));
            }
            let start = run.data_offset.map(|o| o as u64).or(next);
            next = start.zip(run.size).map(|(s, n)| s + n);
        }
        media_end = match (from_moof, next, media_end) {
            (true, Some(end), Some(max)) => Some(max.max(end)),
            _ => None,
        };
    }
    (trafs > 0).then_some((key.unwrap_or(false), media_end.filter(|&e| e > 0)))
}

/// What a `trun` says that matters here.
struct Run {
    count: u32,
    data_offset: Option<i32>,
    first_flags: Option<u32>,
    /// Total sample bytes, when known.
    size: Option<u64>,
}

fn read_trun(trun: &[u8], default_size: Option<u32>) -> Option<Run> {
    let flags = be32(trun, 0)? & 0x00FF_FFFF;
    let count = be32(trun, 4)?;
    let mut at = 8;
    let data_offset = if flags & 0x01 != 0 {
        at += 4;
        Some(be32(trun, at - 4)? as i32)
    } else {
        None
    };
    let mut first_flags = if flags & 0x04 != 0 {
        at += 4;
        Some(be32(trun, at - 4)?)
    } else {
        None
    };
    // Per-sample fields: duration, size, flags, composition offset (4 bytes each if present).
    let fields = [0x100, 0x200, 0x400, 0x800].map(|f| flags & f != 0);
    let stride = 4 * fields.iter().filter(|&&f| f).count();
    let samples = trun.get(at..at.checked_add(stride.checked_mul(count as usize)?)?)?;
    let size_at = if fields[0] { 4 } else { 0 };
    let flags_at = size_at + if fields[1] { 4 } else { 0 };
    if fields[2] && count > 0 && first_flags.is_none() {
        first_flags = be32(samples, flags_at);
    }
    let size = if fields[1] {
        let sizes = samples
            .chunks_exact(stride)
            .map(|s| be32(s, size_at).unwrap_or(0));
        Some(sizes.map(u64::from).sum())
    } else {
        default_size.map(|d| u64::from(d) * u64::from(count))
    };
    Some(Run {
        count,
        data_offset,
        first_flags,
        size,
    })
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// The child boxes in a box body, as (type, body); ends at the first malformed one.
struct Boxes<'a>(&'a [u8]);

impl<'a> Iterator for Boxes<'a> {
    type Item = ([u8; 4], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let data = std::mem::take(&mut self.0);
        let kind: [u8; 4] = data.get(4..8)?.try_into().ok()?;
        let (start, size) = match be32(data, 0)? {
            1 => (
                16,
                usize::try_from(u64::from_be_bytes(data.get(8..16)?.try_into().ok()?)).ok()?,
            ),
            0 => (8, data.len()),
            n => (8, n as usize),
        };
        let body = data.get(start..size)?;
        self.0 = &data[size..];
        Some((kind, body))
    }
}

fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    Boxes(body).find(|(t, _)| t == kind).map(|(_, b)| b)
}

impl Demarcator for Parser {
    fn container(&self) -> Container {
        Container::FragmentedMp4
    }

    fn push(&mut self, mut data: &[u8], marks: &mut Vec<Mark>) {
        while !data.is_empty() {
            match self.state {
                State::Head => {
                    if self.head_len == 0 {
                        self.box_start = self.at;
                    }
                    let want = if self.head_len >= HEADER_BYTES && self.head[..4] == [0, 0, 0, 1] {
                        LARGE_HEADER_BYTES
                    } else {
                        HEADER_BYTES
                    };
                    let take = (want - self.head_len).min(data.len());
                    self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
                    self.head_len += take;
                    self.at += take as u64;
                    data = &data[take..];
                    if self.head_len == want {
                        self.open(marks);
                    }
                }
                State::Collect(end) => {
                    let take = (end - self.at).min(data.len() as u64) as usize;
                    self.collect.extend_from_slice(&data[..take]);
                    self.at += take as u64;
                    data = &data[take..];
                    if self.at == end {
                        self.state = State::Head;
                        self.close(marks);
                    }
                }
                State::Skip(end) => {
                    let left = end.map_or(u64::MAX, |end| end - self.at);
                    let take = left.min(data.len() as u64) as usize;
                    self.at += take as u64;
                    data = &data[take..];
                    if Some(self.at) == end {
                        self.state = State::Head;
                    }
                }
                State::Hunt {
                    mut window,
                    mut seen,
                } => {
                    let mut found = false;
                    let mut taken = 0;
                    for &b in data {
                        taken += 1;
                        window = window << 8 | u64::from(b);
                        seen = seen.saturating_add(1);
                        if seen >= 8 && plausible_start(window) {
                            found = true;
                            break;
                        }
                    }
                    self.at += taken as u64;
                    data = &data[taken..];
                    if found {
                        self.head[..HEADER_BYTES].copy_from_slice(&window.to_be_bytes());
                        self.head_len = HEADER_BYTES;
                        self.box_start = self.at - HEADER_BYTES as u64;
                        self.state = State::Head;
                        self.open(marks);
                    } else {
                        self.state = State::Hunt { window, seen };
                    }
                }
            }
        }
    }

    fn header(&self) -> Option<&Bytes> {
        self.header.as_ref()
    }

    fn audio_only(&self) -> bool {
        self.moov && self.video.is_none()
    }
}

/// Whether the 8 bytes in `window` are a header worth resynchronising on.
fn plausible_start(window: u64) -> bool {
    let size = window >> 32;
    match &(window as u32).to_be_bytes() {
        b"moof" => (MOOF_MIN_BYTES..=MOOF_SKIP_MAX_BYTES).contains(&size),
        b"ftyp" | b"styp" => (16..=FTYP_MAX_BYTES).contains(&size),
        b"moov" => (16..=MOOV_MAX_BYTES).contains(&size),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::conformance::{
        check_audio_only, check_join, hostile, keyframes, marks_of, offsets, packets,
    };

    const H264_AAC: &[u8] = include_bytes!("../../tests/data/containers/h264_aac.mp4");
    const AAC: &[u8] = include_bytes!("../../tests/data/containers/aac.mp4");

    /// A plain walk of a well-formed file's top-level boxes: (type, start, end).
    fn top_level(file: &[u8]) -> Vec<([u8; 4], usize, usize)> {
        let mut found = Vec::new();
        let mut at = 0;
        while at + 8 <= file.len() {
            let size = be32(file, at).expect("size") as usize;
            found.push((
                file[at + 4..at + 8].try_into().expect("type"),
                at,
                at + size,
            ));
            at += size;
        }
        found
    }

    fn moofs(file: &[u8]) -> Vec<(usize, usize)> {
        let boxes = top_level(file);
        let starts: Vec<usize> = boxes
            .iter()
            .filter(|b| &b.0 == b"moof")
            .map(|b| b.1)
            .collect();
        let ends = starts.iter().skip(1).copied().chain([file.len()]);
        starts.iter().copied().zip(ends).collect()
    }

    #[test]
    fn each_moof_is_marked_keyframe_when_its_first_video_sample_is_one() {
        let mut parser = Parser::new();
        let marks = marks_of(&mut parser, H264_AAC);
        assert!(sniff(H264_AAC) && !parser.audio_only());
        let video = packets(H264_AAC, None, Some(0));
        let expected: Vec<Mark> = moofs(H264_AAC)
            .iter()
            .map(|&(start, end)| {
                let first = video
                    .iter()
                    .find(|p| (start..end).contains(&(p.0 as usize)));
                let key = first.expect("a video sample per fragment").1;
                Mark {
                    offset: start as u64,
                    kind: if key {
                        MarkKind::Keyframe
                    } else {
                        MarkKind::Boundary
                    },
                }
            })
            .collect();
        assert_eq!(marks, expected);
        let keys = keyframes(&marks);
        assert_eq!(keys.len(), 3);
        assert!(keys.len() < marks.len());
        // The header is ftyp + moov, as in the file.
        let boxes = top_level(H264_AAC);
        assert_eq!((&boxes[0].0, &boxes[1].0), (b"ftyp", b"moov"));
        let header = parser.header().expect("header");
        assert_eq!(header[..], H264_AAC[..boxes[1].2]);
        check_join(H264_AAC, header, keys[1]);
    }

    #[test]
    fn audio_only_fragments_are_boundaries() {
        let (marks, header) = check_audio_only(Parser::new(), AAC);
        let expected: Vec<u64> = moofs(AAC).iter().map(|m| m.0 as u64).collect();
        assert!(expected.len() >= 4);
        assert_eq!(offsets(&marks), expected);
        assert!(header.is_some());
    }

    #[test]
    fn the_header_changes_only_with_the_init_segment() {
        let mut parser = Parser::new();
        marks_of(&mut parser, H264_AAC);
        let first = parser.header().expect("header").clone();
        // The same feed restarted: same ftyp + moov, the header is not rebuilt.
        let again = marks_of(&mut parser, H264_AAC);
        assert_eq!(parser.header().map(|h| h.as_ptr()), Some(first.as_ptr()));
        assert_eq!(again.len(), moofs(H264_AAC).len());
        // Another init segment replaces it.
        marks_of(&mut parser, AAC);
        let mut alone = Parser::new();
        marks_of(&mut alone, AAC);
        assert_eq!(parser.header(), alone.header());
        assert!(parser.audio_only());
    }

    #[test]
    fn a_corrupt_mdat_size_loses_no_later_fragment() {
        let reference = marks_of(&mut Parser::new(), H264_AAC);
        let mut file = H264_AAC.to_vec();
        let mdat = top_level(H264_AAC)
            .iter()
            .find(|b| &b.0 == b"mdat")
            .expect("mdat")
            .1;
        file[mdat..mdat + 4].copy_from_slice(&0x00F0_0000u32.to_be_bytes());
        assert_eq!(marks_of(&mut Parser::new(), &file), reference);
    }

    #[test]
    fn sync_flags_come_from_trun_then_tfhd_then_trex() {
        let trun = |flags: u32, first: Option<u32>| {
            let mut body = (flags | first.map_or(0, |_| 0x04)).to_be_bytes().to_vec();
            body.extend_from_slice(&1u32.to_be_bytes());
            if let Some(f) = first {
                body.extend_from_slice(&f.to_be_bytes());
            }
            body
        };
        let boxed = |kind: &[u8; 4], body: &[u8]| {
            [&((body.len() + 8) as u32).to_be_bytes()[..], kind, body].concat()
        };
        let tfhd = |default: Option<u32>| {
            let mut body = default.map_or(0u32, |_| 0x20).to_be_bytes().to_vec();
            body.extend_from_slice(&1u32.to_be_bytes()); // track 1
            if let Some(d) = default {
                body.extend_from_slice(&d.to_be_bytes());
            }
            body
        };
        let moof = |tfhd_default, trun_first| {
            let traf = [
                boxed(b"tfhd", &tfhd(tfhd_default)),
                boxed(b"trun", &trun(0, trun_first)),
            ]
            .concat();
            [boxed(b"mfhd", &[0; 8]), boxed(b"traf", &traf)].concat()
        };
        let key = |body: Vec<u8>, trex| read_moof(&body, Some(1), trex).map(|r| r.0);
        assert_eq!(
            key(moof(None, Some(0x0200_0000)), Some(NON_SYNC)),
            Some(true)
        );
        assert_eq!(key(moof(Some(0), Some(NON_SYNC)), None), Some(false));
        assert_eq!(key(moof(Some(NON_SYNC), None), Some(0)), Some(false));
        assert_eq!(key(moof(Some(0), None), Some(NON_SYNC)), Some(true));
        assert_eq!(key(moof(None, None), Some(0)), Some(true));
        assert_eq!(key(moof(None, None), Some(NON_SYNC)), Some(false));
        assert_eq!(key(boxed(b"mfhd", &[0; 8]), Some(0)), None);
    }

    #[test]
    fn hostile_input() {
        for fixture in [H264_AAC, AAC] {
            hostile(Parser::new, fixture, false, |p| {
                p.buffered() as u64 <= MOOV_MAX_BYTES + FTYP_MAX_BYTES
            });
        }
    }
}
