//! Ogg page framing (RFC 3533). The header a joiner needs is the run of pages from the
//! beginning-of-stream (BOS) pages through each logical stream's header pages, i.e. every page
//! until the first one whose granule position is neither 0 nor -1 (Opus: OpusHead and
//! OpusTags; Vorbis: its three header packets; several multiplexed streams work the same way).
//! After it, every page that does not continue a packet from the previous page is a
//! [`MarkKind::Boundary`]: a joiner there gets whole packets only. A new BOS page after data (a
//! chained stream, e.g. a restarted feed) starts a new header. Theora makes the stream not
//! audio-only, but its keyframes are not looked for (every page is a Boundary). CRCs are not
//! checked; garbage is skipped up to the next `OggS` capture pattern.

use bytes::Bytes;

use super::{Container, Demarcator, Mark, MarkKind};

/// Capture pattern at the start of every page.
const CAPTURE: [u8; 4] = *b"OggS";
/// Fixed part of a page header, before the segment table.
const FIXED_HEADER_BYTES: usize = 27;
/// Longest page header: the fixed part and a full segment table.
const MAX_HEADER_BYTES: usize = FIXED_HEADER_BYTES + 255;
/// Header type flags: continued packet, beginning of stream, end of stream; others must be 0.
const CONTINUED: u8 = 0x01;
const BOS: u8 = 0x02;
const KNOWN_FLAGS: u8 = 0x07;
/// Cap on the header pages kept: Opus/Vorbis headers are a few KiB, but comment packets may
/// carry cover art; a header larger than this is not kept (joiners then get none).
const HEADER_MAX_BYTES: usize = 256 * 1024;
/// Logical streams followed through their header pages (audio + video + subtitles fits).
const MAX_STREAMS: usize = 8;
/// Bytes that prove a page start: the capture pattern, version 0 and a valid flags byte.
const PAGE_START_BYTES: usize = 6;
/// First bytes of a Theora identification header packet.
const THEORA_ID: &[u8] = b"\x80theora";

/// What the parser is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for a page start.
    Resync,
    /// Reading a page header into `head`.
    Header,
    /// Skipping (or, for header pages, keeping) a page body.
    Body { left: u64, keep: bool },
}

/// Finds Ogg pages, keeps the header pages, marks page boundaries.
pub struct Parser {
    state: State,
    /// Absolute offset of the next byte pushed.
    pos: u64,
    /// The last bytes seen while resynchronising or skipping a body, newest lowest.
    window: u64,
    head: [u8; MAX_HEADER_BYTES],
    head_len: usize,
    /// Header pages of the stream being started, while `collecting`.
    pending: Vec<u8>,
    collecting: bool,
    /// The header pages did not fit in `HEADER_MAX_BYTES` (or had too many streams).
    too_big: bool,
    /// Serial numbers of the logical streams still in their header pages.
    streams: [u32; MAX_STREAMS],
    stream_count: usize,
    /// Where the current BOS page's body starts in `pending` (to spot Theora).
    bos_body: Option<usize>,
    video: bool,
    header: Option<Bytes>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self {
            state: State::Resync,
            window: 0,
            pos: 0,
            head: [0; MAX_HEADER_BYTES],
            head_len: 0,
            pending: Vec::new(),
            collecting: false,
            too_big: false,
            streams: [0; MAX_STREAMS],
            stream_count: 0,
            bos_body: None,
            video: false,
            header: None,
        }
    }

    /// Bytes held internally (bounded by the header cap).
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Handles a complete page header that starts at `start`.
    fn page(&mut self, start: u64, marks: &mut Vec<Mark>) {
        let h = &self.head[..self.head_len];
        let flags = h[5];
        let granule = i64::from_le_bytes(h[6..14].try_into().expect("8 bytes"));
        let serial = u32::from_le_bytes(h[14..18].try_into().expect("4 bytes"));
        let body: u64 = h[FIXED_HEADER_BYTES..].iter().map(|&s| u64::from(s)).sum();
        if flags & BOS != 0 && !self.collecting {
            self.collecting = true;
            self.too_big = false;
            self.stream_count = 0;
            self.video = false;
            self.pending.clear();
        }
        let known = self.streams[..self.stream_count].contains(&serial);
        if flags & BOS != 0 && !known {
            if self.stream_count < MAX_STREAMS {
                self.streams[self.stream_count] = serial;
                self.stream_count += 1;
            } else {
                self.too_big = true;
            }
        }
        let header_page =
            self.collecting && (flags & BOS != 0 || (known && (granule == 0 || granule == -1)));
        if !header_page {
            self.finish_header();
            if flags & CONTINUED == 0 {
                marks.push(Mark {
                    offset: start,
                    kind: MarkKind::Boundary,
                });
            }
            self.state = State::Body {
                left: body,
                keep: false,
            };
            self.window = 0;
            return;
        }
        let fits = self.pending.len() + self.head_len + body as usize <= HEADER_MAX_BYTES;
        self.too_big |= !fits;
        if !self.too_big {
            self.pending.extend_from_slice(&self.head[..self.head_len]);
            self.bos_body = (flags & BOS != 0).then_some(self.pending.len());
        }
        self.state = State::Body {
            left: body,
            keep: !self.too_big,
        };
        self.window = 0;
    }

    /// Called when a page body has been read.
    fn body_done(&mut self) {
        if let Some(at) = self.bos_body.take() {
            self.video |= self
                .pending
                .get(at..)
                .is_some_and(|b| b.starts_with(THEORA_ID));
        }
    }

    /// The header pages are over: publish them (if they changed and fit), free the buffer.
    fn finish_header(&mut self) {
        if !self.collecting {
            return;
        }
        self.collecting = false;
        if !self.too_big
            && !self.pending.is_empty()
            && self.header.as_deref() != Some(&self.pending[..])
        {
            self.header = Some(Bytes::copy_from_slice(&self.pending));
        }
        self.pending = Vec::new();
    }

    /// The page header being read is not one: look for the next page start inside it.
    fn reject_head(&mut self) {
        let h = &self.head[..self.head_len];
        match h.windows(PAGE_START_BYTES).skip(1).position(page_start) {
            Some(at) => {
                self.head.copy_within(at + 1..self.head_len, 0);
                self.head_len -= at + 1;
            }
            None => {
                let tail = &h[h.len().saturating_sub(PAGE_START_BYTES - 1)..];
                self.window = tail.iter().fold(0, |w, &b| (w << 8) | u64::from(b));
                self.state = State::Resync;
                self.head_len = 0;
            }
        }
    }

    /// Scans `data` for a page start (possibly begun in earlier bytes); on one, makes it the
    /// page header being read and returns how many bytes of `data` it took.
    fn find_page(&mut self, data: &[u8]) -> Option<usize> {
        for (i, &b) in data.iter().enumerate() {
            self.window = (self.window << 8) | u64::from(b);
            let w = self.window.to_be_bytes();
            if page_start(&w[8 - PAGE_START_BYTES..]) {
                self.head[..PAGE_START_BYTES].copy_from_slice(&w[8 - PAGE_START_BYTES..]);
                self.head_len = PAGE_START_BYTES;
                self.window = 0;
                self.state = State::Header;
                return Some(i + 1);
            }
        }
        None
    }

    /// Validates the fixed header fields once they are in; returns the full header length.
    fn needed(&self) -> Option<usize> {
        let h = &self.head[..self.head_len];
        if h.len() < FIXED_HEADER_BYTES {
            return Some(FIXED_HEADER_BYTES);
        }
        let valid = h[..4] == CAPTURE && h[4] == 0 && h[5] & !KNOWN_FLAGS == 0;
        valid.then(|| FIXED_HEADER_BYTES + usize::from(h[26]))
    }
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Demarcator for Parser {
    fn container(&self) -> Container {
        Container::Ogg
    }

    fn push(&mut self, mut data: &[u8], marks: &mut Vec<Mark>) {
        while !data.is_empty() {
            let taken = match self.state {
                State::Resync => self.find_page(data).unwrap_or(data.len()),
                State::Header => {
                    let need = self.needed().unwrap_or(FIXED_HEADER_BYTES);
                    let n = need.saturating_sub(self.head_len).min(data.len());
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&data[..n]);
                    self.head_len += n;
                    n
                }
                State::Body { left, keep } => {
                    let n = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
                    // A page start inside a body means this page was cut short (a restarted
                    // feed) or its length was corrupt: resynchronise there rather than
                    // swallow up to 64 KiB of good pages. Random data holds such a 6-byte
                    // pattern once in 2^43 bytes.
                    if let Some(taken) = self.find_page(&data[..n]) {
                        self.collecting = false;
                        self.pending = Vec::new();
                        self.bos_body = None;
                        self.pos += taken as u64;
                        data = &data[taken..];
                        continue;
                    }
                    if keep {
                        self.pending.extend_from_slice(&data[..n]);
                    }
                    self.state = State::Body {
                        left: left - n as u64,
                        keep,
                    };
                    n
                }
            };
            self.pos += taken as u64;
            data = &data[taken..];
            // Settle the header being read: reject it, wait for more, or take the page.
            while self.state == State::Header {
                match self.needed() {
                    None => self.reject_head(),
                    Some(need) if self.head_len >= need => {
                        let start = self.pos - self.head_len as u64;
                        self.page(start, marks);
                        self.head_len = 0;
                    }
                    Some(_) => break,
                }
            }
            if let State::Body { left: 0, .. } = self.state {
                self.body_done();
                self.state = State::Header;
            }
        }
    }

    fn header(&self) -> Option<&Bytes> {
        self.header.as_ref()
    }

    fn audio_only(&self) -> bool {
        !self.video
    }
}

/// Whether `bytes` (at least `PAGE_START_BYTES`) begin a page header.
fn page_start(bytes: &[u8]) -> bool {
    bytes.len() >= PAGE_START_BYTES
        && bytes[..4] == CAPTURE
        && bytes[4] == 0
        && bytes[5] & !KNOWN_FLAGS == 0
}

/// Whether `first` starts with an Ogg page (capture pattern and version 0).
pub fn sniff(first: &[u8]) -> bool {
    first.starts_with(b"OggS\0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::conformance::{ffprobe, hostile, marks_of, packets};

    const OPUS: &[u8] = include_bytes!("../../tests/data/containers/sine-opus.ogg");
    const VORBIS: &[u8] = include_bytes!("../../tests/data/containers/sine-vorbis.ogg");

    /// Header = the pages before the first mark; a joiner at any mark decodes every packet
    /// from there on.
    fn check(fixture: &[u8]) {
        let mut parser = Parser::new();
        let marks = marks_of(&mut parser, fixture);
        let header = parser.header().expect("header pages");
        assert_eq!(header, &fixture[..marks[0].offset as usize]);
        assert!(parser.audio_only() && sniff(fixture) && marks.len() > 10);
        let original = packets(fixture, None, None);
        for mark in [marks[0], marks[marks.len() / 2], marks[marks.len() - 1]] {
            assert_eq!(mark.kind, MarkKind::Boundary);
            let from = mark.offset as usize;
            assert!(fixture[from..].starts_with(&CAPTURE));
            let joined = [&header[..], &fixture[from..]].concat();
            let expected = original.iter().filter(|p| p.0 >= mark.offset).count();
            assert_eq!(
                packets(&joined, None, None).len(),
                expected,
                "joined at {from}"
            );
        }
        ffprobe(fixture, &["-show_packets"]);
    }

    #[test]
    fn opus_header_pages_and_joins() {
        check(OPUS);
    }

    #[test]
    fn vorbis_header_pages_and_joins() {
        check(VORBIS);
    }

    #[test]
    fn hostile_input() {
        for fixture in [OPUS, VORBIS] {
            hostile(Parser::new, fixture, false, |p| {
                p.buffered() <= HEADER_MAX_BYTES
            });
        }
    }
}
