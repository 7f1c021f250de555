//! ADTS (AAC in Audio Data Transport Stream frames) framing: every frame start is a
//! [`MarkKind::Boundary`]. Each ADTS frame carries its own configuration, so the stream needs
//! no header ([`Demarcator::header`] is `None`). ID3v2 tags (which some muxers put first) are
//! skipped. CRCs are not checked.

use bytes::Bytes;

use super::framesync::{Frame, FrameFormat, FrameSync};
use super::{Container, Demarcator, Mark};

/// Sampling-frequency indexes 13..=15 are reserved (ISO 14496-3, 1.6.3.4).
const MAX_RATE_INDEX: u8 = 12;
/// Header bytes without / with the optional CRC: a frame is never shorter than its header.
const HEADER_BYTES_NO_CRC: usize = 7;
const HEADER_BYTES_CRC: usize = 9;

/// Reads ADTS frame headers.
struct Adts;

impl FrameFormat for Adts {
    const HEADER_BYTES: usize = HEADER_BYTES_NO_CRC;
    /// The 13-bit frame length field's maximum.
    const MAX_FRAME_BYTES: usize = 8191;

    fn parse(h: &[u8]) -> Option<Frame> {
        let &[b0, b1, b2, b3, b4, b5, _] = h else {
            return None;
        };
        // 12-bit sync, then the 2-bit layer, always 0.
        if b0 != 0xFF || b1 & 0xF6 != 0xF0 {
            return None;
        }
        let rate_index = (b2 >> 2) & 0xF;
        let len = usize::from(b3 & 3) << 11 | usize::from(b4) << 3 | usize::from(b5 >> 5);
        let header = if b1 & 1 == 1 {
            HEADER_BYTES_NO_CRC
        } else {
            HEADER_BYTES_CRC
        };
        if rate_index > MAX_RATE_INDEX || len < header {
            return None;
        }
        // MPEG version, profile, sampling frequency and channel configuration never change
        // within one stream.
        let channels = (b2 & 1) << 2 | b3 >> 6;
        let fingerprint =
            u32::from(b1 & 0x08) << 16 | u32::from(b2 & 0xFC) << 8 | u32::from(channels);
        Some(Frame { len, fingerprint })
    }
}

/// Finds ADTS frames in a live AAC stream.
pub struct Parser {
    frames: FrameSync<Adts>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self {
            frames: FrameSync::new(),
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
        Container::Adts
    }

    fn push(&mut self, data: &[u8], marks: &mut Vec<Mark>) {
        self.frames.push(data, marks);
    }

    /// Always `None`: every frame header carries the configuration.
    fn header(&self) -> Option<&Bytes> {
        None
    }

    fn audio_only(&self) -> bool {
        true
    }
}

/// Whether `first` starts with an ADTS frame header (and, if `first` is long enough, a second
/// consistent one right after the first frame).
pub fn sniff(first: &[u8]) -> bool {
    let Some(frame) = first.get(..HEADER_BYTES_NO_CRC).and_then(Adts::parse) else {
        return false;
    };
    match first.get(frame.len..frame.len + HEADER_BYTES_NO_CRC) {
        Some(next) => Adts::parse(next).is_some_and(|n| n.fingerprint == frame.fingerprint),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::MarkKind;
    use crate::container::conformance::{ffprobe, hostile, marks_of, packets};

    const FIXTURE: &[u8] = include_bytes!("../../tests/data/containers/sine.aac");

    #[test]
    fn every_frame_ffprobe_sees_is_a_boundary() {
        let marks = marks_of(&mut Parser::new(), FIXTURE);
        assert!(marks.iter().all(|m| m.kind == MarkKind::Boundary));
        let offsets: Vec<u64> = marks.iter().map(|m| m.offset).collect();
        let expected: Vec<u64> = packets(FIXTURE, None, None).iter().map(|p| p.0).collect();
        assert_eq!(offsets, expected);
        assert!(
            sniff(FIXTURE) && !sniff(b"ID3\x04\0\0\0\0\0\0") && !sniff(&[0xFF, 0xFB, 0x90, 0x64])
        );
    }

    #[test]
    fn a_joiner_from_any_mark_decodes() {
        let marks = marks_of(&mut Parser::new(), FIXTURE);
        let from = marks[marks.len() / 3].offset as usize;
        ffprobe(&FIXTURE[from..], &["-show_packets"]);
    }

    #[test]
    fn hostile_input() {
        hostile(Parser::new, FIXTURE, false, |p| {
            p.frames.buffered() <= FrameSync::<Adts>::SEARCH_BYTES
        });
    }
}
