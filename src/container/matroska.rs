//! Matroska/WebM framing, for live streams as ffmpeg writes them to a pipe (Segment of unknown
//! size; Clusters of unknown or known size). The header is the EBML header, a Segment header
//! rewritten to unknown size, and the Info, Tracks and Tags elements before the first Cluster;
//! SeekHead, Cues, Chapters, Attachments and Void are dropped (their positions and contents mean
//! nothing to a joiner). Each Cluster is marked at its start: a [`MarkKind::Keyframe`] when its
//! first video block (SimpleBlock with the key flag, or a BlockGroup without ReferenceBlock) is
//! a keyframe, otherwise a [`MarkKind::Boundary`]. Audio blocks that come first (ffmpeg puts
//! audio ahead of the video keyframe at equal timestamps) are passed over, so a Cluster's mark
//! is reported once its first video block header is in (audio-only: its first block).
//! Element IDs and sizes are read, nothing else is decoded; lacing, encryption and
//! content compression are not looked at. After garbage it resynchronises on the next
//! EBML header or Cluster ID.

use bytes::Bytes;

use super::{Container, Demarcator, Mark, MarkKind};

/// Level 0 and 1 element IDs (Matroska spec, RFC 9559).
const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const CLUSTER: u32 = 0x1F43_B675;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const TAGS: u32 = 0x1254_C367;
/// Level 1 elements a joiner does not need.
const DROPPED: [u32; 4] = [0x114D_9B74, 0x1C53_BB6B, 0x1043_A770, 0x1941_A469];
/// Void and CRC-32 may appear in any master element.
const ANYWHERE: [u32; 2] = [0xEC, 0xBF];
/// Cluster children: Timestamp, SilentTracks, Position, PrevSize, EncryptedBlock (skipped).
const CLUSTER_SKIPPED: [u32; 5] = [0xE7, 0x5854, 0xA7, 0xAB, 0xAF];
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
/// BlockGroup children besides Block and ReferenceBlock (skipped).
const GROUP_SKIPPED: [u32; 8] = [0xA2, 0x75A1, 0x9B, 0xFA, 0xFD, 0xA4, 0x75A2, 0x8E];
const BLOCK: u32 = 0xA1;
const REFERENCE_BLOCK: u32 = 0xFB;
/// Tracks children.
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;
const TRACK_TYPE_VIDEO: u64 = 1;
/// SimpleBlock/Block flags bit: the frame is a keyframe.
const KEY_FLAG: u8 = 0x80;
/// Segment ID with an 8-byte "unknown" size: what a joiner's Segment header says.
const SEGMENT_UNKNOWN_SIZE: [u8; 12] = [
    0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
];
/// Element header: up to 4 ID bytes and 8 size bytes.
const ELEMENT_HEADER_MAX_BYTES: usize = 12;
/// Block header: track number (up to 8 bytes), timecode (2), flags (1).
const BLOCK_HEADER_MAX_BYTES: usize = 11;
/// Cap on the kept header elements (Info, Tracks, Tags are a few KiB; codec private data for
/// some codecs a few more): bounded memory, as the issue asks.
const HEADER_MAX_BYTES: usize = 256 * 1024;
/// Elements other than Segment, Cluster and blocks larger than this are not skipped by size
/// but scanned for the next Cluster: a corrupt size then costs a scan, not a lost stream.
const SKIP_MAX_BYTES: u64 = 64 * 1024;
/// A block larger than this is taken for a corrupt size (a 4K keyframe is a few MiB).
const BLOCK_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Video tracks remembered (more than one is rare; the rest count as non-video).
const MAX_VIDEO_TRACKS: usize = 8;

/// Which master element the next element header is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// After the EBML header, before the Segment.
    Top,
    Segment,
    Cluster,
    Group,
}

/// What the parser is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Scanning for an EBML header or Cluster ID; `window` holds the last 4 bytes.
    Resync { window: u32 },
    /// Reading an element header into `head`.
    Element,
    /// Skipping an element body.
    Skip { left: u64 },
    /// Copying a header element's body into `pending`.
    Keep { left: u64, id: u32, from: usize },
    /// Reading a block's header into `block` (`left` body bytes in all).
    Block { left: u64, in_group: bool },
}

/// Finds Matroska/WebM header elements and Cluster starts.
pub struct Parser {
    state: State,
    /// Absolute offset of the next byte pushed.
    pos: u64,
    level: Level,
    head: [u8; ELEMENT_HEADER_MAX_BYTES],
    head_len: usize,
    block: [u8; BLOCK_HEADER_MAX_BYTES],
    block_len: usize,
    /// Absolute ends of the current known-size Cluster and BlockGroup.
    cluster_end: Option<u64>,
    group_end: u64,
    /// Start of the current Cluster while its kind is still unknown.
    cluster: Option<u64>,
    /// The Cluster's first video block is in the current BlockGroup (decided at its end).
    group_video: bool,
    group_referenced: bool,
    /// Header elements since the last EBML header, while `collecting` (capped).
    pending: Vec<u8>,
    collecting: bool,
    too_big: bool,
    /// Where the EBML header ends in `pending` (0: not yet complete).
    ebml_end: usize,
    tracks_known: bool,
    video: [u64; MAX_VIDEO_TRACKS],
    video_count: usize,
    header: Option<Bytes>,
}

impl Parser {
    /// A parser at the start of a stream (it skips to the first EBML header or Cluster).
    pub fn new() -> Self {
        Self {
            state: State::Resync { window: 0 },
            pos: 0,
            level: Level::Segment,
            head: [0; ELEMENT_HEADER_MAX_BYTES],
            head_len: 0,
            block: [0; BLOCK_HEADER_MAX_BYTES],
            block_len: 0,
            cluster_end: None,
            group_end: 0,
            cluster: None,
            group_video: false,
            group_referenced: false,
            pending: Vec::new(),
            collecting: false,
            too_big: false,
            ebml_end: 0,
            tracks_known: false,
            video: [0; MAX_VIDEO_TRACKS],
            video_count: 0,
            header: None,
        }
    }

    /// Bytes held internally (bounded by the header cap).
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Handles a complete element header (`head`), starting at `start`; returns the next state.
    fn element(&mut self, start: u64, marks: &mut Vec<Mark>) -> Option<State> {
        let (id, size, len) = element_header(&self.head[..self.head_len]).ok()??;
        let end = size.and_then(|s| (start + len as u64).checked_add(s));
        if self.level == Level::Group && (start >= self.group_end || !in_group(id)) {
            self.group_over(marks);
            self.level = Level::Cluster;
        }
        if self.level == Level::Cluster && self.cluster_end.is_some_and(|e| start >= e) {
            self.cluster_over(marks);
            self.level = Level::Segment;
        }
        let parent_end = match self.level {
            Level::Group => Some(self.group_end),
            Level::Cluster => self.cluster_end,
            _ => None,
        };
        // A child past its parent's end means a corrupt size (an EBML header restarts all).
        if id != EBML
            && end
                .zip(parent_end)
                .is_some_and(|(end, parent)| end > parent)
        {
            return None;
        }
        let level1 = matches!(id, CLUSTER | INFO | TRACKS | TAGS) || DROPPED.contains(&id);
        if id == EBML || (level1 && self.level == Level::Cluster) {
            self.cluster_over(marks);
            self.level = Level::Segment;
        }
        let skip = |max: u64| {
            size.filter(|&s| s <= max && end.is_some())
                .map(|left| State::Skip { left })
        };
        match (self.level, id) {
            (_, EBML) => {
                self.collecting = true;
                self.too_big = false;
                self.ebml_end = 0;
                self.tracks_known = false;
                self.video_count = 0;
                self.pending.clear();
                self.level = Level::Top;
                self.keep(id, size?)
            }
            (Level::Top, SEGMENT) => {
                self.level = Level::Segment;
                Some(State::Element)
            }
            (Level::Segment, CLUSTER) => {
                if self.collecting {
                    self.finish_header();
                }
                self.cluster = Some(start);
                self.cluster_end = end;
                self.level = Level::Cluster;
                Some(State::Element)
            }
            (Level::Segment, INFO | TRACKS | TAGS) if self.collecting => self.keep(id, size?),
            (Level::Segment, _) if level1 => skip(SKIP_MAX_BYTES),
            (Level::Cluster, SIMPLE_BLOCK) | (Level::Group, BLOCK) => {
                let left = size.filter(|&s| (4..=BLOCK_MAX_BYTES).contains(&s))?;
                self.block_len = 0;
                Some(State::Block {
                    left,
                    in_group: id == BLOCK,
                })
            }
            (Level::Cluster, BLOCK_GROUP) => {
                self.group_end = end?;
                self.group_video = false;
                self.group_referenced = false;
                self.level = Level::Group;
                Some(State::Element)
            }
            (Level::Cluster, id) if CLUSTER_SKIPPED.contains(&id) => skip(BLOCK_MAX_BYTES),
            (Level::Group, REFERENCE_BLOCK) => {
                self.group_referenced = true;
                skip(SKIP_MAX_BYTES)
            }
            (Level::Group, id) if GROUP_SKIPPED.contains(&id) => skip(BLOCK_MAX_BYTES),
            (_, id) if ANYWHERE.contains(&id) => skip(SKIP_MAX_BYTES),
            _ => None,
        }
    }

    /// Starts copying element `id` (header in `head`, body of `size`) into `pending`; if the
    /// header would outgrow its cap, gives up on it (the caller then scans for a Cluster).
    fn keep(&mut self, id: u32, size: u64) -> Option<State> {
        let fits =
            self.pending.len() as u64 + self.head_len as u64 + size <= HEADER_MAX_BYTES as u64;
        self.too_big |= !fits;
        if self.too_big {
            return None;
        }
        self.pending.extend_from_slice(&self.head[..self.head_len]);
        Some(State::Keep {
            left: size,
            id,
            from: self.pending.len(),
        })
    }

    /// A kept element is complete.
    fn kept(&mut self, id: u32, from: usize) {
        if id == EBML {
            self.ebml_end = self.pending.len();
        } else if id == TRACKS {
            self.video_count = 0;
            for (child, entry) in Elements(&self.pending[from..]) {
                let mut number = None;
                let mut video = false;
                for (field, value) in Elements(entry).filter(|_| child == TRACK_ENTRY) {
                    match field {
                        TRACK_NUMBER => number = Some(uint(value)),
                        TRACK_TYPE => video = uint(value) == TRACK_TYPE_VIDEO,
                        _ => {}
                    }
                }
                if let (Some(number), true) = (number, video)
                    && self.video_count < MAX_VIDEO_TRACKS
                {
                    self.video[self.video_count] = number;
                    self.video_count += 1;
                }
            }
            self.tracks_known = true;
        }
    }

    /// The first Cluster: publish the header (if complete, within the cap, and changed).
    fn finish_header(&mut self) {
        self.collecting = false;
        if !self.too_big && self.ebml_end > 0 && self.tracks_known {
            let (ebml, rest) = self.pending.split_at(self.ebml_end);
            let same = self.header.as_ref().is_some_and(|h| {
                h.len() == ebml.len() + SEGMENT_UNKNOWN_SIZE.len() + rest.len()
                    && h.starts_with(ebml)
                    && h.ends_with(rest)
            });
            if !same {
                self.header = Some(Bytes::from(
                    [ebml, &SEGMENT_UNKNOWN_SIZE[..], rest].concat(),
                ));
            }
        }
        self.pending = Vec::new();
    }

    /// A block header is in: decide the Cluster's kind if this block settles it.
    fn block_header(&mut self, in_group: bool, marks: &mut Vec<Mark>) {
        let Some(start) = self.cluster else { return };
        let Ok(Some((track, len))) = vint(&self.block[..self.block_len]) else {
            return;
        };
        let flags = self.block[len + 2];
        let video = self.video[..self.video_count].contains(&track);
        if !self.tracks_known || self.video_count == 0 {
            self.mark(start, MarkKind::Boundary, marks);
        } else if video && in_group {
            self.group_video = true;
        } else if video {
            let kind = if flags & KEY_FLAG != 0 {
                MarkKind::Keyframe
            } else {
                MarkKind::Boundary
            };
            self.mark(start, kind, marks);
        }
    }

    fn group_over(&mut self, marks: &mut Vec<Mark>) {
        if let (true, Some(start)) = (self.group_video, self.cluster) {
            let kind = if self.group_referenced {
                MarkKind::Boundary
            } else {
                MarkKind::Keyframe
            };
            self.mark(start, kind, marks);
        }
        self.group_video = false;
    }

    /// The Cluster ended without a video block: still a clean place to join audio.
    fn cluster_over(&mut self, marks: &mut Vec<Mark>) {
        if self.level == Level::Group {
            self.group_over(marks);
        }
        if let Some(start) = self.cluster {
            self.mark(start, MarkKind::Boundary, marks);
        }
    }

    fn mark(&mut self, offset: u64, kind: MarkKind, marks: &mut Vec<Mark>) {
        marks.push(Mark { offset, kind });
        self.cluster = None;
    }

    fn resync(&mut self) -> State {
        self.cluster = None;
        self.group_video = false;
        self.level = Level::Segment;
        State::Resync { window: 0 }
    }
}

/// Whether `id` may appear directly in a BlockGroup.
fn in_group(id: u32) -> bool {
    id == BLOCK || id == REFERENCE_BLOCK || GROUP_SKIPPED.contains(&id) || ANYWHERE.contains(&id)
}

/// Reads a variable-length integer (size or track number): `Ok(None)` if `b` is too short,
/// `Err` if its first byte is 0. Returns the value and its length.
fn vint(b: &[u8]) -> Result<Option<(u64, usize)>, ()> {
    let first = *b.first().ok_or(())?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return Err(());
    }
    let Some(bytes) = b.get(..len) else {
        return Ok(None);
    };
    let marker = (0x80u16 >> (len - 1)) as u8;
    let value = bytes[1..]
        .iter()
        .fold(u64::from(first & marker.wrapping_sub(1)), |v, &x| {
            (v << 8) | u64::from(x)
        });
    Ok(Some((value, len)))
}

/// An element's ID, size (`None`: unknown) and header length.
type ElementHeader = (u32, Option<u64>, usize);

/// Parses an element header: `Ok(None)` while incomplete, `Err` if invalid.
fn element_header(h: &[u8]) -> Result<Option<ElementHeader>, ()> {
    let Some(&first) = h.first() else {
        return Ok(None);
    };
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 || first == 0xFF {
        return Err(());
    }
    let Some(id_bytes) = h.get(..id_len) else {
        return Ok(None);
    };
    let id = id_bytes.iter().fold(0u32, |v, &x| (v << 8) | u32::from(x));
    if h.len() == id_len {
        return Ok(None);
    }
    let Some((size, size_len)) = vint(&h[id_len..])? else {
        return Ok(None);
    };
    let unknown = size == (1u64 << (7 * size_len)) - 1;
    Ok(Some((id, (!unknown).then_some(size), id_len + size_len)))
}

/// The child elements of a complete master element body, as (ID, body); stops at anything
/// malformed.
struct Elements<'a>(&'a [u8]);

impl<'a> Iterator for Elements<'a> {
    type Item = (u32, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (id, size, len) =
            element_header(&self.0[..self.0.len().min(ELEMENT_HEADER_MAX_BYTES)]).ok()??;
        let end = len.checked_add(usize::try_from(size?).ok()?)?;
        let body = self.0.get(len..end)?;
        self.0 = &self.0[end..];
        Some((id, body))
    }
}

/// A big-endian unsigned integer element value (at most 8 bytes are read).
fn uint(b: &[u8]) -> u64 {
    b.iter().take(8).fold(0, |v, &x| (v << 8) | u64::from(x))
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Demarcator for Parser {
    fn container(&self) -> Container {
        Container::Matroska
    }

    fn push(&mut self, mut data: &[u8], marks: &mut Vec<Mark>) {
        while !data.is_empty() {
            let (taken, next) = match self.state {
                State::Resync { mut window } => {
                    let mut next = None;
                    let mut taken = data.len();
                    for (i, &b) in data.iter().enumerate() {
                        window = (window << 8) | u32::from(b);
                        if window == EBML || window == CLUSTER {
                            self.head[..4].copy_from_slice(&window.to_be_bytes());
                            self.head_len = 4;
                            (taken, next) = (i + 1, Some(State::Element));
                            break;
                        }
                    }
                    (taken, next.unwrap_or(State::Resync { window }))
                }
                State::Element => {
                    self.head[self.head_len] = data[0];
                    self.head_len += 1;
                    (1, State::Element)
                }
                State::Skip { left } | State::Keep { left, .. } => {
                    let n = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
                    let left = left - n as u64;
                    let next = match self.state {
                        State::Keep { id, from, .. } => {
                            self.pending.extend_from_slice(&data[..n]);
                            State::Keep { left, id, from }
                        }
                        _ => State::Skip { left },
                    };
                    (n, next)
                }
                State::Block { left, in_group } => {
                    self.block[self.block_len] = data[0];
                    self.block_len += 1;
                    match vint(&self.block[..self.block_len]) {
                        Ok(Some((_, len))) if self.block_len == len + 3 => {
                            self.block_header(in_group, marks);
                            (
                                1,
                                State::Skip {
                                    left: left - self.block_len as u64,
                                },
                            )
                        }
                        Ok(_) if (self.block_len as u64) < left => {
                            (1, State::Block { left, in_group })
                        }
                        _ => (1, self.resync()),
                    }
                }
            };
            self.pos += taken as u64;
            data = &data[taken..];
            self.state = next;
            if self.state == State::Element {
                match element_header(&self.head[..self.head_len]) {
                    Ok(None) => {}
                    Ok(Some(_)) => {
                        let start = self.pos - self.head_len as u64;
                        self.state = self.element(start, marks).unwrap_or_else(|| self.resync());
                        self.head_len = 0;
                    }
                    Err(()) => {
                        self.state = self.resync();
                        self.head_len = 0;
                    }
                }
            }
            match self.state {
                State::Keep { left: 0, id, from } => {
                    self.kept(id, from);
                    self.state = State::Element;
                }
                State::Skip { left: 0 } => self.state = State::Element,
                _ => {}
            }
        }
    }

    fn header(&self) -> Option<&Bytes> {
        self.header.as_ref()
    }

    fn audio_only(&self) -> bool {
        self.tracks_known && self.video_count == 0
    }
}

/// Whether `first` starts with an EBML header (Matroska or WebM).
pub fn sniff(first: &[u8]) -> bool {
    first.starts_with(&EBML.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::conformance::{
        check_audio_only, check_join, hostile, marks_of, offsets, packets,
    };

    const VP9_OPUS: &[u8] = include_bytes!("../../tests/data/containers/vp9-opus.webm");
    const VP9_CLUSTERS: &[u8] = include_bytes!("../../tests/data/containers/vp9-clusters.mkv");
    const OPUS: &[u8] = include_bytes!("../../tests/data/containers/opus.webm");

    /// A plain walk of a well-formed file: where its level-1 elements start, by ID.
    fn level1(file: &[u8]) -> Vec<(u32, usize, usize)> {
        let mut found = Vec::new();
        let mut at = 0;
        while let Ok(Some((id, size, len))) = element_header(&file[at..file.len().min(at + 12)]) {
            let end = at
                + len
                + if id == SEGMENT {
                    0
                } else {
                    size.expect("known size") as usize
                };
            found.push((id, at, end));
            at = end;
        }
        found
    }

    /// Marks match the file's Clusters (the last one maybe not: if it has no video block, its
    /// kind is only known at its end, which the parser has not seen),
    /// and each mark's kind matches the first video packet ffprobe finds in that Cluster.
    fn check_marks(file: &[u8], video: Option<usize>) -> Vec<Mark> {
        let marks = marks_of(&mut Parser::new(), file);
        let clusters: Vec<(usize, usize)> = level1(file)
            .iter()
            .filter(|e| e.0 == CLUSTER)
            .map(|e| (e.1, e.2))
            .collect();
        let found = offsets(&marks);
        let expected: Vec<u64> = clusters.iter().map(|c| c.0 as u64).collect();
        assert!(found.len() + 1 >= expected.len());
        assert_eq!(found, expected[..found.len()]);
        let packets = packets(file, None, video);
        for (mark, (start, end)) in marks.iter().zip(&clusters) {
            let first = packets
                .iter()
                .find(|p| (*start..*end).contains(&(p.0 as usize)));
            let key = video.is_some() && first.is_some_and(|p| p.1);
            assert_eq!(mark.kind == MarkKind::Keyframe, key, "cluster at {start}");
        }
        marks
    }

    #[test]
    fn webm_vp9_opus_clusters_start_with_audio_then_a_keyframe() {
        let marks = check_marks(VP9_OPUS, Some(0));
        assert!(marks.len() >= 3 && marks.iter().all(|m| m.kind == MarkKind::Keyframe));
        let mut parser = Parser::new();
        marks_of(&mut parser, VP9_OPUS);
        assert!(!parser.audio_only() && sniff(VP9_OPUS));
        // Header: EBML header, unknown-size Segment, then Info, Tracks, Tags (no SeekHead, Void).
        let elements = level1(VP9_OPUS);
        let mut expected = VP9_OPUS[..elements[0].2].to_vec();
        expected.extend_from_slice(&SEGMENT_UNKNOWN_SIZE);
        for (id, start, end) in &elements {
            if [INFO, TRACKS, TAGS].contains(id) {
                expected.extend_from_slice(&VP9_OPUS[*start..*end]);
            }
        }
        let header = parser.header().expect("header");
        assert_eq!(header[..], expected[..]);
        check_join(VP9_OPUS, header, marks[1]);
    }

    #[test]
    fn matroska_clusters_without_a_leading_keyframe_are_boundaries() {
        let marks = check_marks(VP9_CLUSTERS, Some(0));
        let keyframes = marks
            .iter()
            .filter(|m| m.kind == MarkKind::Keyframe)
            .count();
        assert!(keyframes >= 1 && keyframes < marks.len());
        let mut parser = Parser::new();
        marks_of(&mut parser, VP9_CLUSTERS);
        check_join(VP9_CLUSTERS, parser.header().expect("header"), marks[0]);
    }

    #[test]
    fn audio_only_webm_clusters_are_boundaries() {
        let (marks, header) = check_audio_only(Parser::new(), OPUS);
        let clusters: Vec<u64> = level1(OPUS)
            .iter()
            .filter(|e| e.0 == CLUSTER)
            .map(|e| e.1 as u64)
            .collect();
        assert_eq!(offsets(&marks), clusters);
        assert!(header.is_some());
    }

    #[test]
    fn a_restarted_feed_gets_a_new_header_and_its_clusters_found() {
        let twice = [VP9_CLUSTERS, VP9_OPUS].concat();
        let mut parser = Parser::new();
        let marks = marks_of(&mut parser, &twice);
        let second = marks_of(&mut Parser::new(), VP9_OPUS);
        let mut alone = Parser::new();
        marks_of(&mut alone, VP9_OPUS);
        assert_eq!(parser.header(), alone.header());
        let shifted: Vec<Mark> = second
            .iter()
            .map(|m| Mark {
                offset: m.offset + VP9_CLUSTERS.len() as u64,
                ..*m
            })
            .collect();
        assert!(marks.ends_with(&shifted));
    }

    #[test]
    fn unknown_size_clusters_give_the_same_marks() {
        // Every Cluster size rewritten as "unknown" of the same length, so offsets stay.
        let mut file = VP9_OPUS.to_vec();
        for (id, start, _) in level1(VP9_OPUS) {
            if id == CLUSTER {
                let size = start + 4;
                let len = file[size].leading_zeros() as usize + 1;
                file[size] = 0xFF >> (len - 1);
                file[size + 1..size + len].fill(0xFF);
            }
        }
        assert_eq!(
            marks_of(&mut Parser::new(), &file),
            marks_of(&mut Parser::new(), VP9_OPUS)
        );
    }

    #[test]
    fn block_groups_are_keyframes_unless_they_reference_another_block() {
        fn element(id: &[u8], body: &[u8]) -> Vec<u8> {
            let size = (body.len() as u64).to_be_bytes();
            [id, &[0x01], &size[1..], body].concat()
        }
        let mut header = Parser::new();
        marks_of(&mut header, VP9_CLUSTERS);
        let mut file = header.header().expect("header").to_vec();
        // Track 1 is the video track; Block: track vint, timecode, flags, frame.
        let block = element(&[0xA1], &[0x81, 0, 0, 0, 1, 2, 3]);
        let simple = |flags| element(&[0xA3], &[0x81, 0, 0, flags, 1, 2, 3]);
        let audio = element(&[0xA3], &[0x82, 0, 0, 0x80, 1]);
        let clusters = [
            element(&[0xA0], &block),
            element(&[0xA0], &[&block[..], &element(&[0xFB], &[0xFF])].concat()),
            [audio.clone(), simple(0x80)].concat(),
            simple(0),
            audio,
        ];
        let mut starts = Vec::new();
        for body in &clusters {
            starts.push(file.len() as u64);
            file.extend_from_slice(&[
                0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            ]);
            file.extend_from_slice(&element(&[0xE7], &[0]));
            file.extend_from_slice(body);
        }
        file.extend_from_slice(&element(&[0x1C, 0x53, 0xBB, 0x6B], &[])); // Cues end the last
        let (k, b) = (MarkKind::Keyframe, MarkKind::Boundary);
        let expected: Vec<Mark> = starts
            .iter()
            .zip([k, b, k, b, b])
            .map(|(&offset, kind)| Mark { offset, kind })
            .collect();
        assert_eq!(marks_of(&mut Parser::new(), &file), expected);
    }

    #[test]
    fn hostile_input() {
        for fixture in [VP9_OPUS, VP9_CLUSTERS, OPUS] {
            hostile(Parser::new, fixture, false, |p| {
                p.buffered() <= HEADER_MAX_BYTES
            });
        }
    }
}
