//! FLV framing (Adobe FLV 10.1, and enhanced FLV's extended video/audio headers): the
//! header is the 9-byte file header and PreviousTagSize0, the `onMetaData` script tag, the
//! latest video sequence header (AVC/HEVC `AVCPacketType` 0, enhanced `SequenceStart`) and the
//! latest audio sequence header (AAC `AACPacketType` 0, enhanced `SequenceStart`), each with
//! its trailing PreviousTagSize. A video tag with FrameType 1 that is not a sequence header is
//! a [`MarkKind::Keyframe`]; every other audio or video tag is a [`MarkKind::Boundary`] (the
//! only marks of an audio-only stream). Marks are reported once the tag header and the first
//! two data bytes are in; script tags and sequence headers are not marked (they are header).
//!
//! Only the first bytes of each tag are read; codec data is never parsed. Script tags other
//! than `onMetaData` are passed over. A file header whose data offset is not 9 is treated as
//! garbage. After garbage the parser scans for a plausible tag (type 8/9/18, stream ID 0,
//! a PreviousTagSize before it that a tag could have written) or a new file header; a tag
//! whose size is corrupt is cut short where its real PreviousTagSize shows up.

use bytes::Bytes;

use super::{Container, Demarcator, Mark, MarkKind};

/// "FLV", version 1, flags, data offset (9), then PreviousTagSize0.
const FILE_HEADER_BYTES: usize = 13;
/// Tag header: type, data size (3), timestamp (3 + 1), stream ID (3).
const TAG_HEADER_BYTES: usize = 11;
/// Data bytes read before deciding what a tag is: codec/frame type, then packet type.
const PEEK_BYTES: usize = 2;
/// Trailing PreviousTagSize of each tag.
const TRAILER_BYTES: u64 = 4;
/// Tag types (lower 5 bits of the first header byte).
const AUDIO: u8 = 8;
const VIDEO: u8 = 9;
const SCRIPT: u8 = 18;
/// File header flags.
const HAS_AUDIO: u8 = 0x04;
const HAS_VIDEO: u8 = 0x01;
/// Header tags (metadata, sequence headers) are kept up to this size; larger ones are passed
/// over (a sequence header is tens of bytes, `onMetaData` about a KiB).
pub const PIECE_MAX_BYTES: usize = 64 * 1024;
/// Plausible tag starts remembered while hunting (between two real tags there are rarely more
/// than one or two fake ones).
const RECENT_TAGS: usize = 8;
/// AMF0 string "onMetaData", as a script tag's data starts.
const ON_METADATA: &[u8; 13] = b"\x02\x00\x0aonMetaData";

/// Whether `first` starts an FLV stream.
pub fn sniff(first: &[u8]) -> bool {
    first.starts_with(b"FLV\x01")
}

/// What the parser is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The file header, into `head`.
    FileHead,
    /// A tag header and its first data bytes, into `head`.
    TagHead,
    /// The rest of a tag, up to this absolute offset: kept (a header piece) or passed over.
    Body { end: u64, keep: Option<Piece> },
    /// Scanning for a tag or a file header; `window` holds the last 15 bytes.
    Hunt,
}

/// The header pieces a joiner needs after the file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Metadata = 0,
    Video = 1,
    Audio = 2,
}

/// An FLV [`Demarcator`].
pub struct Parser {
    /// Absolute offset of the next byte.
    at: u64,
    state: State,
    head: [u8; TAG_HEADER_BYTES + PEEK_BYTES],
    head_len: usize,
    /// Absolute offset where the tag being read starts.
    tag_start: u64,
    /// The last bytes read (the last 15 while hunting, the last 4 in a tag body).
    window: u128,
    /// Bytes in `window` while hunting.
    seen: usize,
    /// While hunting, where the last plausible tags started: a tag is only taken when its
    /// PreviousTagSize points at one of them (a lone plausible header is too easy to fake:
    /// an AVC tag's header and zero composition time look like one at some timestamps).
    recent: [u64; RECENT_TAGS],
    recent_next: usize,
    file_header: Option<[u8; FILE_HEADER_BYTES]>,
    /// Metadata, video and audio sequence header tags, each with its PreviousTagSize.
    pieces: [Vec<u8>; 3],
    /// The tag being kept.
    collect: Vec<u8>,
    header: Option<Bytes>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self {
            at: 0,
            state: State::FileHead,
            head: [0; TAG_HEADER_BYTES + PEEK_BYTES],
            head_len: 0,
            tag_start: 0,
            window: 0,
            seen: 0,
            recent: [u64::MAX; RECENT_TAGS],
            recent_next: 0,
            file_header: None,
            pieces: [Vec::new(), Vec::new(), Vec::new()],
            collect: Vec::new(),
            header: None,
        }
    }

    /// Bytes held for header pieces (bounded by 4 × [`PIECE_MAX_BYTES`]).
    pub fn buffered(&self) -> usize {
        self.collect.len() + self.pieces.iter().map(Vec::len).sum::<usize>()
    }

    /// Starts scanning; the bytes in `head` count as scanned, so a tag starting among them
    /// is still found.
    fn hunt(&mut self) {
        self.window = 0;
        for &b in &self.head[..self.head_len] {
            self.window = self.window << 8 | u128::from(b);
        }
        self.seen = self.head_len;
        self.head_len = 0;
        self.recent = [u64::MAX; RECENT_TAGS];
        self.state = State::Hunt;
    }

    fn rebuild_header(&mut self) {
        let Some(file) = self.file_header else {
            return;
        };
        let mut header = file.to_vec();
        for piece in &self.pieces {
            header.extend_from_slice(piece);
        }
        self.header = Some(header.into());
    }

    /// Acts on a complete file header in `head`.
    fn open_file(&mut self) {
        let h = &self.head[..FILE_HEADER_BYTES];
        if &h[..4] != b"FLV\x01" || h[4] & !(HAS_AUDIO | HAS_VIDEO) != 0 || h[5..9] != [0, 0, 0, 9]
        {
            self.hunt();
            return;
        }
        // A new file header: a restarted feed, whose sequence headers come again.
        self.file_header = h.try_into().ok();
        self.pieces.iter_mut().for_each(Vec::clear);
        self.rebuild_header();
        self.head_len = 0;
        self.state = State::TagHead;
    }

    /// Acts on a tag header (and its first data bytes) in `head`; `None` while more are needed.
    fn open_tag(&mut self, marks: &mut Vec<Mark>) -> Option<()> {
        let h = &self.head;
        if self.head_len < TAG_HEADER_BYTES {
            return None;
        }
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        if self.head_len < TAG_HEADER_BYTES + size.min(PEEK_BYTES) {
            return None;
        }
        if h[..4] == *b"FLV\x01" && self.head_len >= FILE_HEADER_BYTES {
            self.open_file(); // a restarted feed
            return Some(());
        }
        if !plausible_tag(h) {
            self.hunt();
            return Some(());
        }
        let data = &h[TAG_HEADER_BYTES..TAG_HEADER_BYTES + size.min(PEEK_BYTES)];
        let (first, second) = (data.first().copied(), data.get(1).copied());
        let (piece, mark) = match (h[0] & 0x1F, first) {
            (SCRIPT, _) => (Some(Piece::Metadata), None),
            (VIDEO, Some(b)) if b & 0x80 != 0 => {
                // Enhanced FLV: IsExHeader, FrameType (3 bits), PacketType (4 bits).
                let (frame, packet) = (b >> 4 & 0x07, b & 0x0F);
                match packet {
                    0 | 5 if frame != 5 => (Some(Piece::Video), None), // SequenceStart
                    2 => (None, None),                                 // SequenceEnd
                    _ if frame == 1 => (None, Some(MarkKind::Keyframe)),
                    _ => (None, Some(MarkKind::Boundary)),
                }
            }
            (VIDEO, Some(b)) => {
                // FrameType (4 bits), CodecID (4 bits): AVC 7, HEVC 12 (the common extension).
                let avc = matches!(b & 0x0F, 7 | 12);
                match (b >> 4, second) {
                    (_, Some(0)) if avc => (Some(Piece::Video), None),
                    (_, Some(2)) if avc => (None, None), // end of sequence: no frame
                    (1, _) => (None, Some(MarkKind::Keyframe)),
                    _ => (None, Some(MarkKind::Boundary)),
                }
            }
            // SoundFormat 10 (AAC) with AACPacketType 0, or 9 (enhanced) with SequenceStart.
            (AUDIO, Some(b)) if (b >> 4 == 10 && second == Some(0)) || b == 0x90 => {
                (Some(Piece::Audio), None)
            }
            _ => (None, Some(MarkKind::Boundary)),
        };
        if let Some(kind) = mark {
            marks.push(Mark {
                offset: self.tag_start,
                kind,
            });
        }
        let total = TAG_HEADER_BYTES + size + TRAILER_BYTES as usize;
        let keep = piece.filter(|_| total <= PIECE_MAX_BYTES);
        if keep.is_some() {
            self.collect.clear();
            self.collect.extend_from_slice(&self.head[..self.head_len]);
        }
        self.window = u128::from(u32::from_be_bytes(
            self.head[self.head_len - 4..self.head_len]
                .try_into()
                .unwrap_or_default(),
        ));
        self.state = State::Body {
            end: self.tag_start + total as u64,
            keep,
        };
        self.head_len = 0;
        Some(())
    }

    /// Keeps a complete header piece in `collect` if its PreviousTagSize is right and it
    /// changed.
    fn close_piece(&mut self, piece: Piece) {
        let tag = &self.collect;
        let Some((body, trailer)) = tag.split_last_chunk::<4>() else {
            return;
        };
        if u32::from_be_bytes(*trailer) as usize != body.len()
            || (piece == Piece::Metadata && !body[TAG_HEADER_BYTES..].starts_with(ON_METADATA))
            || self.pieces[piece as usize] == *tag
        {
            return;
        }
        self.pieces[piece as usize].clone_from(tag);
        self.rebuild_header();
    }
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

/// Tag type 8, 9 or 18 (the filter bit allowed, reserved bits clear) and stream ID 0.
fn plausible_tag(h: &[u8]) -> bool {
    h[0] & 0xC0 == 0 && matches!(h[0] & 0x1F, AUDIO | VIDEO | SCRIPT) && h[8..11] == [0, 0, 0]
}

/// What the last 15 bytes scanned start, if anything: `Some(true)` a tag (after a
/// PreviousTagSize a tag could have written), `Some(false)` a file header in the last 13.
fn plausible_start(window: u128, seen: usize) -> Option<bool> {
    let bytes = window.to_be_bytes();
    let last15 = &bytes[1..];
    let previous = u32::from_be_bytes([last15[0], last15[1], last15[2], last15[3]]);
    let previous_ok = previous == 0 || (11..=11 + 0xFF_FFFF).contains(&previous);
    if seen >= 15 && previous_ok && plausible_tag(&last15[4..]) {
        return Some(true);
    }
    let file = &bytes[3..];
    let file_ok = &file[..4] == b"FLV\x01"
        && file[4] & !(HAS_AUDIO | HAS_VIDEO) == 0
        && file[5..] == [0, 0, 0, 9, 0, 0, 0, 0];
    (seen >= FILE_HEADER_BYTES && file_ok).then_some(false)
}

impl Demarcator for Parser {
    fn container(&self) -> Container {
        Container::Flv
    }

    fn push(&mut self, mut data: &[u8], marks: &mut Vec<Mark>) {
        while !data.is_empty() {
            match self.state {
                State::FileHead | State::TagHead => {
                    if self.head_len == 0 {
                        self.tag_start = self.at;
                    }
                    let want = match self.state {
                        State::FileHead => FILE_HEADER_BYTES,
                        _ if self.head_len < TAG_HEADER_BYTES => TAG_HEADER_BYTES,
                        _ => {
                            let h = &self.head;
                            let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
                            TAG_HEADER_BYTES + size.min(PEEK_BYTES)
                        }
                    };
                    let take = (want - self.head_len).min(data.len());
                    self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
                    self.head_len += take;
                    self.at += take as u64;
                    data = &data[take..];
                    if self.head_len == want {
                        if self.state == State::FileHead {
                            self.open_file();
                        } else {
                            self.open_tag(marks);
                        }
                    }
                }
                State::Body {
                    end,
                    keep: Some(piece),
                } => {
                    let take = (end - self.at).min(data.len() as u64) as usize;
                    self.collect.extend_from_slice(&data[..take]);
                    self.at += take as u64;
                    data = &data[take..];
                    if self.at == end {
                        self.state = State::TagHead;
                        self.close_piece(piece);
                    }
                }
                State::Body { end, keep: None } => {
                    // Watch for this tag's PreviousTagSize before `end`: a corrupt size.
                    let take = (end - self.at).min(data.len() as u64) as usize;
                    let mut window = self.window as u32;
                    let mut at = self.at;
                    let mut cut = false;
                    for &b in &data[..take] {
                        window = window << 8 | u32::from(b);
                        at += 1;
                        let length = at - self.tag_start;
                        if u64::from(window) + TRAILER_BYTES == length
                            && length >= TAG_HEADER_BYTES as u64 + TRAILER_BYTES
                            && at < end
                        {
                            cut = true;
                            break;
                        }
                    }
                    data = &data[(at - self.at) as usize..];
                    (self.at, self.window) = (at, u128::from(window));
                    if cut || at == end {
                        self.state = State::TagHead;
                    }
                }
                State::Hunt => {
                    let mut found = None;
                    let mut taken = 0;
                    for &b in data {
                        taken += 1;
                        self.window = self.window << 8 | u128::from(b);
                        self.seen += 1;
                        found = plausible_start(self.window, self.seen);
                        if found == Some(true) {
                            // Tag start, and where its PreviousTagSize says the last one was.
                            let start = self.at + taken as u64 - TAG_HEADER_BYTES as u64;
                            let previous = (self.window >> 88) as u32;
                            let before = start.checked_sub(TRAILER_BYTES + u64::from(previous));
                            if previous == 0 || !before.is_some_and(|b| self.recent.contains(&b)) {
                                self.recent[self.recent_next] = start;
                                self.recent_next = (self.recent_next + 1) % RECENT_TAGS;
                                found = None;
                            }
                        }
                        if found.is_some() {
                            break;
                        }
                    }
                    self.at += taken as u64;
                    data = &data[taken..];
                    let bytes = self.window.to_be_bytes();
                    match found {
                        Some(true) => {
                            self.head[..TAG_HEADER_BYTES].copy_from_slice(&bytes[5..]);
                            self.head_len = TAG_HEADER_BYTES;
                            self.tag_start = self.at - TAG_HEADER_BYTES as u64;
                            self.state = State::TagHead;
                            self.open_tag(marks);
                        }
                        Some(false) => {
                            self.head[..FILE_HEADER_BYTES].copy_from_slice(&bytes[3..]);
                            self.head_len = FILE_HEADER_BYTES;
                            self.open_file();
                        }
                        None => {}
                    }
                }
            }
        }
    }

    fn header(&self) -> Option<&Bytes> {
        self.header.as_ref()
    }

    fn audio_only(&self) -> bool {
        self.file_header
            .is_some_and(|h| h[4] & HAS_VIDEO == 0 && h[4] & HAS_AUDIO != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::conformance::{
        check_audio_only, check_join, hostile, keyframes, marks_of, packet_marks,
    };

    const H264_AAC: &[u8] = include_bytes!("../../tests/data/containers/h264_aac.flv");
    const AAC: &[u8] = include_bytes!("../../tests/data/containers/aac.flv");

    /// A plain walk of a well-formed file's tags: (type, start, end including PreviousTagSize).
    fn tags(file: &[u8]) -> Vec<(u8, usize, usize)> {
        let mut found = Vec::new();
        let mut at = FILE_HEADER_BYTES;
        while at + TAG_HEADER_BYTES <= file.len() {
            let size = u32::from_be_bytes([0, file[at + 1], file[at + 2], file[at + 3]]) as usize;
            let end = at + TAG_HEADER_BYTES + size + 4;
            found.push((file[at], at, end));
            at = end;
        }
        found
    }

    #[test]
    fn video_keyframe_tags_and_header_match_ffprobe() {
        let mut parser = Parser::new();
        let marks = marks_of(&mut parser, H264_AAC);
        assert!(sniff(H264_AAC) && !parser.audio_only());
        // ffprobe's packets (every stream) are the marks: video (stream 0) `K` ones keyframes.
        assert_eq!(marks, packet_marks(H264_AAC, None, Some(0)));
        let keys = keyframes(&marks);
        assert_eq!(keys.len(), 3);
        // File header, onMetaData, AVC and AAC sequence headers: the tags before the first
        // keyframe but the audio frames.
        let all = tags(H264_AAC);
        assert_eq!(
            all.iter().take(3).map(|t| t.0).collect::<Vec<_>>(),
            [SCRIPT, VIDEO, AUDIO]
        );
        let header = parser.header().expect("header");
        assert_eq!(header[..], H264_AAC[..all[2].2]);
        check_join(H264_AAC, header, keys[1]);
    }

    #[test]
    fn audio_only_tags_are_boundaries() {
        let (marks, header) = check_audio_only(Parser::new(), AAC);
        assert_eq!(marks, packet_marks(AAC, None, None));
        assert!(marks.len() > 50);
        assert_eq!(header.expect("header")[..], AAC[..tags(AAC)[1].2]);
    }

    #[test]
    fn the_header_changes_only_with_a_header_tag() {
        let mut parser = Parser::new();
        let mut marks = Vec::new();
        let mut seen: Vec<Bytes> = Vec::new();
        for (_, start, end) in tags(H264_AAC) {
            if start == FILE_HEADER_BYTES {
                parser.push(&H264_AAC[..start], &mut marks);
            }
            parser.push(&H264_AAC[start..end], &mut marks);
            let header = parser.header().expect("header").clone();
            if seen
                .last()
                .is_none_or(|last| last.as_ptr() != header.as_ptr())
            {
                seen.push(header);
            }
        }
        // File header (with the first tag), AVC sequence header, AAC sequence header.
        assert_eq!(seen.len(), 3);
        // The same sequence header again: no rebuild; a new one: the header follows.
        let all = tags(H264_AAC);
        let avc = &H264_AAC[all[1].1..all[1].2];
        parser.push(avc, &mut marks);
        assert_eq!(
            parser.header().map(|h| h.as_ptr()),
            seen.last().map(|h| h.as_ptr())
        );
        let mut changed = avc.to_vec();
        *changed.last_mut().expect("trailer") ^= 0; // same size; change a data byte
        changed[TAG_HEADER_BYTES + 8] ^= 0x01;
        parser.push(&changed, &mut marks);
        let header = parser.header().expect("header");
        assert!(header.windows(changed.len()).any(|w| w == &changed[..]));
        assert!(!header.windows(avc.len()).any(|w| w == avc));
    }

    #[test]
    fn enhanced_flv_video_tags_are_read() {
        let mut parser = Parser::new();
        let mut marks = Vec::new();
        parser.push(&H264_AAC[..FILE_HEADER_BYTES], &mut marks);
        // Enhanced video tags: IsExHeader | FrameType << 4 | PacketType, then FourCC "hvc1".
        let tag = |first: u8| {
            let data = [first, b'h', b'v', b'c', b'1', 0, 0, 0];
            let mut tag = vec![VIDEO, 0, 0, data.len() as u8, 0, 0, 0, 0, 0, 0, 0];
            tag.extend_from_slice(&data);
            tag.extend_from_slice(&((TAG_HEADER_BYTES + data.len()) as u32).to_be_bytes());
            tag
        };
        let start = tag(0x80 | 0x10); // keyframe, SequenceStart
        let key = tag(0x80 | 0x10 | 0x01); // keyframe, CodedFrames
        let inter = tag(0x80 | 0x20 | 0x03); // inter frame, CodedFramesX
        for t in [&start, &key, &inter] {
            parser.push(t, &mut marks);
        }
        let at = FILE_HEADER_BYTES as u64 + start.len() as u64;
        assert_eq!(
            marks,
            [
                Mark {
                    offset: at,
                    kind: MarkKind::Keyframe
                },
                Mark {
                    offset: at + key.len() as u64,
                    kind: MarkKind::Boundary
                },
            ]
        );
        assert!(parser.header().expect("header").ends_with(&start));
    }

    #[test]
    fn a_corrupt_tag_size_is_cut_at_its_previous_tag_size() {
        let reference = marks_of(&mut Parser::new(), H264_AAC);
        let all = tags(H264_AAC);
        let keyframe = all
            .iter()
            .find(|t| t.0 == VIDEO && H264_AAC[t.1 + 11] == 0x17 && H264_AAC[t.1 + 12] == 1);
        let at = keyframe.expect("a keyframe tag").1;
        let mut file = H264_AAC.to_vec();
        file[at + 1] = 0x7F; // 8 MiB
        assert_eq!(marks_of(&mut Parser::new(), &file), reference);
    }

    #[test]
    fn hostile_input() {
        for fixture in [H264_AAC, AAC] {
            hostile(Parser::new, fixture, false, |p| {
                p.buffered() <= 4 * PIECE_MAX_BYTES
            });
        }
    }
}
