//! RIFF WAVE framing. The header is everything from `RIFF` through the `data` chunk's 8-byte
//! header, kept exactly as the feed wrote it: ffmpeg writing to a pipe puts 0xFFFFFFFF (or 0)
//! in the RIFF and data sizes, which players read as "until the end". After the header, PCM is
//! only cut on sample-frame boundaries: each push marks (as a [`MarkKind::Boundary`]) the first
//! `block_align`-aligned offset it holds, at most one per push: a mark per sample frame would be
//! absurd, and one per piece read is as fine-grained as the hub cuts anyway. Compressed WAVE
//! formats are framed the same way (by `block_align`). A new `RIFF....WAVE` inside the data
//! (a restarted feed) starts a new header; a data chunk of known size ends the marks until the
//! next RIFF header. RF64 is not understood.

use bytes::Bytes;

use super::{Container, Demarcator, Mark, MarkKind};

/// `RIFF` + size + `WAVE`.
const RIFF_HEADER_BYTES: usize = 12;
/// A chunk header: four-character id and little-endian size.
const CHUNK_HEADER_BYTES: usize = 8;
/// Cap on the header (all chunks before `data`): PCM headers are under 100 bytes, with
/// metadata a few KiB; anything larger is not a header we keep.
const HEADER_MAX_BYTES: usize = 64 * 1024;
/// Data sizes meaning "unknown" (a live writer cannot know the length).
const UNKNOWN_SIZES: [u32; 2] = [0, u32::MAX];
/// Offset of `block_align` (u16) in the `fmt ` chunk body, and the body's minimum size.
const BLOCK_ALIGN_AT: usize = 12;
const FMT_MIN_BYTES: usize = 16;

/// What the parser is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for `RIFF....WAVE`.
    Resync,
    /// Reading the header into `head`; the next chunk header starts at `chunk_at`.
    Header { chunk_at: usize },
    /// In the data chunk: `left` bytes remain (`None`: unknown size, until the end).
    Data { left: Option<u64> },
}

/// Finds the WAV header and sample-frame boundaries.
pub struct Parser {
    state: State,
    /// Absolute offset of the next byte pushed.
    pos: u64,
    /// The last 12 bytes seen while resynchronising or in data, newest lowest.
    window: u128,
    head: Vec<u8>,
    /// Sample-frame size from `fmt ` (1 when unknown).
    block_align: u64,
    /// Absolute offset of the first data byte.
    data_start: u64,
    header: Option<Bytes>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self {
            state: State::Resync,
            pos: 0,
            window: 0,
            head: Vec::new(),
            block_align: 1,
            data_start: 0,
            header: None,
        }
    }

    /// Bytes held internally (bounded by the header cap).
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.head.len()
    }

    /// Scans `data` for a `RIFF....WAVE` start; on one, makes it the header being read and
    /// returns how many bytes of `data` it took.
    fn find_riff(&mut self, data: &[u8]) -> Option<usize> {
        for (i, &b) in data.iter().enumerate() {
            self.window = (self.window << 8) | u128::from(b);
            let w = self.window.to_be_bytes();
            let riff = &w[16 - RIFF_HEADER_BYTES..];
            if riff.starts_with(b"RIFF") && riff.ends_with(b"WAVE") {
                self.head.clear();
                self.head.extend_from_slice(riff);
                self.window = 0;
                self.block_align = 1;
                self.state = State::Header {
                    chunk_at: RIFF_HEADER_BYTES,
                };
                return Some(i + 1);
            }
        }
        None
    }

    /// Walks the chunks read so far from `chunk_at`: moves to Data when the `data` chunk
    /// header is in, to Resync when the header outgrows its cap, and otherwise returns how
    /// many more bytes the next step needs (never 0 while still in Header).
    fn settle(&mut self, chunk_at: usize) -> usize {
        let mut chunk_at = chunk_at;
        loop {
            let end = chunk_at + CHUNK_HEADER_BYTES;
            if end > HEADER_MAX_BYTES {
                self.state = State::Resync;
                self.head = Vec::new();
                return 0;
            }
            let Some(chunk) = self.head.get(chunk_at..end) else {
                self.state = State::Header { chunk_at };
                return end - self.head.len();
            };
            let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if &chunk[..4] == b"data" {
                let header = &self.head[..end];
                if self.header.as_deref() != Some(header) {
                    self.header = Some(Bytes::copy_from_slice(header));
                }
                self.head = Vec::new();
                self.data_start = self.pos;
                let left = (!UNKNOWN_SIZES.contains(&size)).then_some(u64::from(size));
                self.state = State::Data { left };
                return 0;
            }
            // Chunks are padded to an even length.
            let body_end = end.saturating_add(size as usize + (size as usize & 1));
            if body_end > HEADER_MAX_BYTES {
                self.state = State::Resync;
                self.head = Vec::new();
                return 0;
            }
            if self.head.len() < body_end {
                self.state = State::Header { chunk_at };
                return body_end - self.head.len();
            }
            if &chunk[..4] == b"fmt " && size as usize >= FMT_MIN_BYTES {
                let at = end + BLOCK_ALIGN_AT;
                let align = u16::from_le_bytes([self.head[at], self.head[at + 1]]);
                self.block_align = u64::from(align.max(1));
            }
            chunk_at = body_end;
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
        Container::Wav
    }

    fn push(&mut self, mut data: &[u8], marks: &mut Vec<Mark>) {
        while !data.is_empty() {
            let taken = match self.state {
                State::Resync => self.find_riff(data).unwrap_or(data.len()),
                State::Header { chunk_at } => {
                    let need = self.settle(chunk_at);
                    if let State::Header { .. } = self.state {
                        let n = need.min(data.len());
                        self.head.extend_from_slice(&data[..n]);
                        n
                    } else {
                        0
                    }
                }
                State::Data { left } => {
                    let room = left
                        .and_then(|l| usize::try_from(l).ok())
                        .map_or(data.len(), |l| l.min(data.len()));
                    let found = self.find_riff(&data[..room]);
                    let n = found.map_or(room, |at| at - RIFF_HEADER_BYTES.min(at));
                    let into = (self.pos - self.data_start) % self.block_align;
                    let first = self.pos + (self.block_align - into) % self.block_align;
                    if first < self.pos + n as u64 {
                        marks.push(Mark {
                            offset: first,
                            kind: MarkKind::Boundary,
                        });
                    }
                    let used = found.unwrap_or(room);
                    if let State::Data { left: Some(l) } = self.state {
                        let l = l - used as u64;
                        self.state = if l == 0 {
                            State::Resync
                        } else {
                            State::Data { left: Some(l) }
                        };
                    }
                    used
                }
            };
            self.pos += taken as u64;
            data = &data[taken..];
        }
    }

    fn header(&self) -> Option<&Bytes> {
        self.header.as_ref()
    }

    fn audio_only(&self) -> bool {
        true
    }
}

/// Whether `first` starts with a RIFF WAVE header.
pub fn sniff(first: &[u8]) -> bool {
    first.len() >= RIFF_HEADER_BYTES && first.starts_with(b"RIFF") && &first[8..12] == b"WAVE"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::conformance::{ffprobe, hostile, marks_of, packets};
    use crate::container::testing::{Rng, push_in_pieces};

    const FIXTURE: &[u8] = include_bytes!("../../tests/data/containers/sine.wav");

    #[test]
    fn header_is_everything_before_the_samples() {
        let mut parser = Parser::new();
        let marks = marks_of(&mut parser, FIXTURE);
        let data_start = packets(FIXTURE, None, None)[0].0;
        let header = parser.header().expect("header");
        assert_eq!(header, &FIXTURE[..data_start as usize]);
        assert_eq!(
            marks,
            [Mark {
                offset: data_start,
                kind: MarkKind::Boundary
            }]
        );
        assert!(sniff(FIXTURE) && !sniff(b"RIFF\0\0\0\0AVI LIST"));
    }

    #[test]
    fn marks_are_sample_frame_aligned_one_per_push_and_joins_decode() {
        let mut parser = Parser::new();
        let mut rng = Rng::new(7);
        let marks = push_in_pieces(&mut parser, FIXTURE, &mut rng, 1000);
        let data_start = parser.header().expect("header").len() as u64;
        // 16-bit stereo: 4-byte sample frames.
        assert!(
            marks
                .iter()
                .all(|m| (m.offset - data_start).is_multiple_of(4))
        );
        assert!(marks.len() > FIXTURE.len() / 1000);
        let from = marks[marks.len() / 2].offset as usize;
        let joined = [&parser.header().expect("header")[..], &FIXTURE[from..]].concat();
        ffprobe(&joined, &["-show_packets"]);
    }

    #[test]
    fn a_restarted_feed_starts_a_new_header() {
        let mut parser = Parser::new();
        let twice = [&FIXTURE[..FIXTURE.len() - 3], FIXTURE].concat();
        let marks = marks_of(&mut parser, &twice);
        let second = (FIXTURE.len() - 3) as u64;
        let data_start = parser.header().expect("header").len() as u64;
        assert_eq!(marks.last().map(|m| m.offset), Some(second + data_start));
    }

    #[test]
    fn hostile_input() {
        hostile(Parser::new, FIXTURE, true, |p| {
            p.buffered() <= HEADER_MAX_BYTES
        });
    }
}
