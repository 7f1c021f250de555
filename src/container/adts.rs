//! ADTS (AAC in Audio Data Transport Stream frames) framing: every frame start is a
//! [`MarkKind::Boundary`](super::MarkKind::Boundary). Each ADTS frame carries its own
//! configuration, so the stream needs no header
//! ([`Demarcator::header`](super::Demarcator::header) is `None`). ID3v2 tags (which some muxers
//! put first) are skipped. CRCs are not checked. The frame following is `framesync`'s; this
//! file only reads an ADTS header.

use super::Container;
use super::framesync::{self, Frame, FrameFormat};

/// Sampling-frequency indexes 13..=15 are reserved (ISO 14496-3, 1.6.3.4).
const MAX_RATE_INDEX: u8 = 12;
/// Header bytes without / with the optional CRC: a frame is never shorter than its header.
const HEADER_BYTES_NO_CRC: usize = 7;
const HEADER_BYTES_CRC: usize = 9;

/// Reads ADTS frame headers.
pub struct Adts;

impl FrameFormat for Adts {
    const CONTAINER: Container = Container::Adts;
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
pub type Parser = framesync::Parser<Adts>;

/// Whether `first` starts with an ADTS frame header (and, if `first` is long enough, a second
/// consistent one right after the first frame).
pub fn sniff(first: &[u8]) -> bool {
    framesync::sniff::<Adts>(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::conformance::{check_audio_only, hostile, packet_marks};

    const FIXTURE: &[u8] = include_bytes!("../../tests/data/containers/sine.aac");

    #[test]
    fn every_frame_ffprobe_sees_is_a_boundary_and_a_join() {
        let (marks, header) = check_audio_only(Parser::new(), FIXTURE);
        assert_eq!(marks, packet_marks(FIXTURE, None, None));
        assert!(header.is_none());
        assert!(
            sniff(FIXTURE) && !sniff(b"ID3\x04\0\0\0\0\0\0") && !sniff(&[0xFF, 0xFB, 0x90, 0x64])
        );
    }

    #[test]
    fn hostile_input() {
        hostile(Parser::new, FIXTURE, false, |p| {
            p.buffered() <= Parser::SEARCH_BYTES
        });
    }
}
