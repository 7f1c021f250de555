//! Frame synchronisation for audio streams made of self-delimiting frames (MPEG audio, ADTS):
//! find a run of consecutive valid frame headers, then follow the frame lengths, marking every
//! frame start as a [`MarkKind::Boundary`]. One generic [`Parser`] serves `mp3` and `adts`,
//! which only say how to read one header ([`FrameFormat`]) and alias `Parser<TheirFormat>`.
//! ID3v2 tags in front of (or between) frames are skipped. The stream needs no header: every
//! frame is a valid start. It checks no CRC and decodes nothing; a frame is trusted once its
//! header fits the run.

use std::marker::PhantomData;

use bytes::Bytes;

use super::{Container, Demarcator, Mark, MarkKind};

/// What a frame header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Whole frame length in bytes, header included (never 0).
    pub len: usize,
    /// The fields every frame of one stream shares (version, layer, sample rate...): a header
    /// whose fingerprint differs from the run's is garbage or a new stream.
    pub fingerprint: u32,
}

/// One frame format: which container it is, how long its header is and how to read it.
pub trait FrameFormat: Send {
    /// The container a [`Parser`] of this format reports.
    const CONTAINER: Container;
    /// Bytes needed to read a header (at most [`HEAD_BYTES`]).
    const HEADER_BYTES: usize;
    /// The longest frame a valid header can announce.
    const MAX_FRAME_BYTES: usize;
    /// The frame announced by `header` (`HEADER_BYTES` long), if it is a valid header.
    fn parse(header: &[u8]) -> Option<Frame>;
}

/// Room for the longest header we read: an ID3v2 tag header (10 bytes).
const HEAD_BYTES: usize = 10;
/// Headers in a row that must agree before a frame is trusted while searching: one valid-looking
/// header in garbage is a 1-in-a-few-thousand event, three in a row at the right distances are not.
const CONFIRM_HEADERS: usize = 3;
/// ID3v2 tag header: "ID3", version (2), flags, syncsafe size (4).
const ID3_HEADER_BYTES: usize = 10;
/// ID3v2 flag: a 10-byte footer follows the tag.
const ID3_FOOTER_FLAG: u8 = 0x10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for `CONFIRM_HEADERS` consistent headers in `search`.
    Search,
    /// In sync: the next header is expected at `next`.
    Synced,
    /// Skipping the rest of an ID3v2 tag (`skip` bytes).
    SkipTag,
}

/// Finds the frames of one [`FrameFormat`] in a live stream, incrementally.
pub struct Parser<F> {
    state: State,
    /// Absolute offset of the next byte pushed.
    pos: u64,
    /// Synced: absolute offset of the next frame header.
    next: u64,
    /// Synced: the bytes of the next header seen so far (`head_len` of them).
    head: [u8; HEAD_BYTES],
    head_len: usize,
    /// Synced: the fingerprint of the run being followed.
    fingerprint: u32,
    /// SkipTag: bytes still to skip.
    skip: u64,
    /// Search: the bytes not yet ruled out, starting at absolute offset `search_at`. Its
    /// capacity is fixed at construction (enough to confirm a run of the longest frames), so
    /// it never grows.
    search: Vec<u8>,
    search_at: u64,
    format: PhantomData<F>,
}

/// What a candidate header at some offset of the search buffer turned out to be.
enum Candidate {
    /// The start of a run of `CONFIRM_HEADERS` consistent frames.
    Run,
    /// An ID3v2 tag of this many bytes.
    Tag(u64),
    /// Undecidable until more bytes arrive.
    NeedMore,
    /// Not a frame start.
    No,
}

impl<F: FrameFormat> Parser<F> {
    /// The search buffer's fixed size: a candidate at its start can always be decided.
    pub(super) const SEARCH_BYTES: usize = (CONFIRM_HEADERS - 1) * F::MAX_FRAME_BYTES + HEAD_BYTES;

    /// A parser at the start of a stream (which may begin with garbage or a tag).
    pub fn new() -> Self {
        Self {
            state: State::Search,
            pos: 0,
            next: 0,
            head: [0; HEAD_BYTES],
            head_len: 0,
            fingerprint: 0,
            skip: 0,
            search: Vec::with_capacity(Self::SEARCH_BYTES),
            search_at: 0,
            format: PhantomData,
        }
    }

    /// Bytes held internally (bounded by [`Self::SEARCH_BYTES`]).
    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        self.search.len()
    }

    /// Looks for a confirmed run in the search buffer and follows it as far as the buffer goes.
    fn scan(&mut self, marks: &mut Vec<Mark>) {
        let mut i = 0;
        while i < self.search.len() {
            match candidate::<F>(&self.search[i..]) {
                Candidate::No => i += 1,
                Candidate::NeedMore => break,
                Candidate::Tag(len) => {
                    let available = (self.search.len() - i) as u64;
                    if len <= available {
                        i += len as usize; // `len` <= the buffer's length here
                        continue;
                    }
                    self.state = State::SkipTag;
                    self.skip = len - available;
                    self.search.clear();
                    return;
                }
                Candidate::Run => match self.follow(i, marks) {
                    Some(lost) => i = lost,
                    None => return,
                },
            }
        }
        self.search.drain(..i);
        self.search_at += i as u64;
    }

    /// Follows frames from `start` in the search buffer, marking each one; switches to Synced
    /// when the next header is past the buffer's end. Returns where sync was lost, if it was.
    fn follow(&mut self, start: usize, marks: &mut Vec<Mark>) -> Option<usize> {
        let buf = &self.search;
        let Some(first) = F::parse(&buf[start..start + F::HEADER_BYTES]) else {
            return Some(start + 1); // unreachable: the candidate was a run
        };
        let mut at = start;
        while at + F::HEADER_BYTES <= buf.len() {
            match F::parse(&buf[at..at + F::HEADER_BYTES]) {
                Some(frame) if frame.fingerprint == first.fingerprint => {
                    marks.push(boundary(self.search_at + at as u64));
                    at += frame.len;
                }
                _ => return Some(at),
            }
        }
        let partial = buf.len().saturating_sub(at);
        self.head[..partial].copy_from_slice(&buf[at.min(buf.len())..]);
        self.head_len = partial;
        self.next = self.search_at + at as u64;
        self.fingerprint = first.fingerprint;
        self.state = State::Synced;
        self.search.clear();
        None
    }
}

impl<F: FrameFormat> Default for Parser<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: FrameFormat> Demarcator for Parser<F> {
    fn container(&self) -> Container {
        F::CONTAINER
    }

    /// Appends a Boundary mark for every frame start the bytes prove.
    fn push(&mut self, mut data: &[u8], marks: &mut Vec<Mark>) {
        while !data.is_empty() {
            let taken = match self.state {
                State::SkipTag => {
                    let n = usize::try_from(self.skip).map_or(data.len(), |s| s.min(data.len()));
                    self.skip -= n as u64;
                    if self.skip == 0 {
                        self.state = State::Search;
                        self.search.clear();
                        self.search_at = self.pos + n as u64;
                    }
                    n
                }
                State::Synced if self.head_len == 0 && self.pos < self.next => {
                    usize::try_from(self.next - self.pos).map_or(data.len(), |g| g.min(data.len()))
                }
                State::Synced => {
                    let n = (F::HEADER_BYTES - self.head_len).min(data.len());
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&data[..n]);
                    self.head_len += n;
                    if self.head_len == F::HEADER_BYTES {
                        self.head_len = 0;
                        match F::parse(&self.head[..F::HEADER_BYTES]) {
                            Some(frame) if frame.fingerprint == self.fingerprint => {
                                marks.push(boundary(self.next));
                                self.next += frame.len as u64;
                            }
                            _ => {
                                // Lost sync: search again from this header's first byte.
                                self.state = State::Search;
                                self.search.clear();
                                self.search.extend_from_slice(&self.head[..F::HEADER_BYTES]);
                                self.search_at = self.next;
                            }
                        }
                    }
                    n
                }
                State::Search => {
                    if self.search.len() == Self::SEARCH_BYTES {
                        // Cannot happen (a full buffer always decides its first candidate);
                        // dropping a byte keeps this loop finite whatever `F` says.
                        self.search.drain(..1);
                        self.search_at += 1;
                    }
                    let n = (Self::SEARCH_BYTES - self.search.len()).min(data.len());
                    self.search.extend_from_slice(&data[..n]);
                    n
                }
            };
            self.pos += taken as u64;
            data = &data[taken..];
            if self.state == State::Search {
                self.scan(marks);
            }
        }
    }

    /// Always `None`: a decoder can start at any frame, each header carries what it needs.
    fn header(&self) -> Option<&Bytes> {
        None
    }

    fn audio_only(&self) -> bool {
        true
    }
}

/// Whether `first` starts with a frame header of format `F` and, if `first` is long enough, a
/// second consistent one right after the first frame.
pub(super) fn sniff<F: FrameFormat>(first: &[u8]) -> bool {
    let Some(frame) = first.get(..F::HEADER_BYTES).and_then(F::parse) else {
        return false;
    };
    match first.get(frame.len..frame.len + F::HEADER_BYTES) {
        Some(next) => F::parse(next).is_some_and(|n| n.fingerprint == frame.fingerprint),
        None => true,
    }
}

/// What the bytes at the start of `buf` are.
fn candidate<F: FrameFormat>(buf: &[u8]) -> Candidate {
    if buf.first() == Some(&b'I') {
        return match id3_len(buf) {
            Some(len) => Candidate::Tag(len),
            None if buf.len() < ID3_HEADER_BYTES
                && b"ID3".starts_with(&buf[..buf.len().min(3)]) =>
            {
                Candidate::NeedMore
            }
            None => Candidate::No,
        };
    }
    let mut at = 0;
    let mut fingerprint = None;
    for _ in 0..CONFIRM_HEADERS {
        let Some(header) = buf.get(at..at + F::HEADER_BYTES) else {
            return Candidate::NeedMore;
        };
        match F::parse(header) {
            Some(frame) if fingerprint.is_none_or(|f| f == frame.fingerprint) => {
                fingerprint = Some(frame.fingerprint);
                at += frame.len;
            }
            _ => return Candidate::No,
        }
    }
    Candidate::Run
}

/// The whole length of the ID3v2 tag starting `buf`, if its 10-byte header is complete and valid.
fn id3_len(buf: &[u8]) -> Option<u64> {
    let h = buf.get(..ID3_HEADER_BYTES)?;
    let valid =
        &h[..3] == b"ID3" && h[3] != 0xFF && h[4] != 0xFF && h[6..].iter().all(|b| b & 0x80 == 0);
    if !valid {
        return None;
    }
    let size = h[6..]
        .iter()
        .fold(0u64, |size, &b| (size << 7) | u64::from(b));
    let footer = if h[5] & ID3_FOOTER_FLAG != 0 {
        ID3_HEADER_BYTES
    } else {
        0
    };
    Some((ID3_HEADER_BYTES + footer) as u64 + size)
}

fn boundary(offset: u64) -> Mark {
    Mark {
        offset,
        kind: MarkKind::Boundary,
    }
}
