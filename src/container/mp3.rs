//! MPEG audio (MP3, and layers I/II) framing: every frame start is a
//! [`MarkKind::Boundary`](super::MarkKind::Boundary), so a client can join at any frame. The
//! stream needs no header: ffmpeg's `mp3` muxer writes an ID3v2 tag first (and, to a seekable
//! file only, a Xing/Info frame), but a decoder starts fine without them (the tag is metadata;
//! the Info frame only carries a seek table and gapless info, meaningless for a live joiner), so
//! [`Demarcator::header`](super::Demarcator::header) is always `None`. The tag is skipped; an
//! Info frame is an ordinary (silent) frame and marked like the others. Free-format bitrates are
//! not supported (their frames have no length field). The frame following is `framesync`'s;
//! this file only reads an MPEG audio header.

use super::Container;
use super::framesync::{self, Frame, FrameFormat};

/// Bitrates in kbit/s by [version is MPEG-1][layer I, II, III][index 1..=14] (ISO 11172-3,
/// 13818-3); index 0 (free format) and 15 (forbidden) are rejected before the lookup.
const BITRATES_KBPS: [[[u16; 14]; 3]; 2] = [
    [
        [
            32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
        [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
        [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ],
    [
        [
            32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        [
            32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
    ],
];
/// MPEG-1 sample rates in Hz by index; MPEG-2 halves them and MPEG-2.5 quarters them.
const SAMPLE_RATES_HZ: [u32; 3] = [44100, 48000, 32000];
/// Version field values (2 bits after the sync).
const VERSION_2_5: u8 = 0;
const VERSION_RESERVED: u8 = 1;
const VERSION_1: u8 = 3;
/// Layer field values: 1 = III, 2 = II, 3 = I (0 is reserved).
const LAYER_III: u8 = 1;
const LAYER_I: u8 = 3;

/// Reads MPEG audio frame headers.
pub struct Mpeg;

impl FrameFormat for Mpeg {
    const CONTAINER: Container = Container::Mp3;
    const HEADER_BYTES: usize = 4;
    /// Layer II, MPEG-1, 384 kbit/s at 32 kHz, padded: 144 * 384000 / 32000 + 1.
    const MAX_FRAME_BYTES: usize = 1729;

    fn parse(h: &[u8]) -> Option<Frame> {
        let &[b0, b1, b2, b3] = h else { return None };
        let version = (b1 >> 3) & 3;
        let layer = (b1 >> 1) & 3;
        let bitrate_index = usize::from(b2 >> 4);
        let rate_index = usize::from((b2 >> 2) & 3);
        let sync = b0 == 0xFF && b1 & 0xE0 == 0xE0;
        // MPEG-2.5 only defines layer III; emphasis 2 is reserved.
        if !sync
            || version == VERSION_RESERVED
            || layer == 0
            || (version == VERSION_2_5 && layer != LAYER_III)
            || !(1..15).contains(&bitrate_index)
            || rate_index == 3
            || b3 & 3 == 2
        {
            return None;
        }
        let mpeg1 = version == VERSION_1;
        let kbps = BITRATES_KBPS[usize::from(mpeg1)][usize::from(3 - layer)][bitrate_index - 1];
        let bits_per_s = u32::from(kbps) * 1000;
        let shift = match version {
            VERSION_1 => 0,
            VERSION_2_5 => 2,
            _ => 1,
        };
        let rate = SAMPLE_RATES_HZ[rate_index] >> shift;
        let padding = u32::from((b2 >> 1) & 1);
        let len = match layer {
            LAYER_I => (12 * bits_per_s / rate + padding) * 4,
            LAYER_III if !mpeg1 => 72 * bits_per_s / rate + padding,
            _ => 144 * bits_per_s / rate + padding,
        };
        // Version, layer and sample rate never change within one stream.
        let fingerprint = u32::from(b1 & 0x1E) << 8 | rate_index as u32;
        Some(Frame {
            len: len as usize,
            fingerprint,
        })
    }
}

/// Finds MPEG audio frames in a live MP3 stream.
pub type Parser = framesync::Parser<Mpeg>;

/// Whether `first` looks like the start of an MP3 stream: an ID3v2 tag, or two consecutive
/// frame headers (one, if `first` is too short to hold the second).
pub fn sniff(first: &[u8]) -> bool {
    first.starts_with(b"ID3") || framesync::sniff::<Mpeg>(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::conformance::{check_audio_only, hostile, packet_marks};

    const FIXTURE: &[u8] = include_bytes!("../../tests/data/containers/sine.mp3");

    #[test]
    fn every_frame_ffprobe_sees_is_a_boundary_and_a_join() {
        let (marks, header) = check_audio_only(Parser::new(), FIXTURE);
        // ffmpeg writes no Xing/Info frame to a pipe, so ffprobe sees every frame we mark.
        assert_eq!(marks, packet_marks(FIXTURE, None, None));
        assert!(header.is_none());
        let first = marks[0].offset as usize;
        assert!(sniff(FIXTURE) && sniff(&FIXTURE[first..]));
        assert!(!sniff(b"RIFF\0\0\0\0WAVE") && !sniff(&[0xFF, 0xF1, 0x50, 0x80]));
    }

    #[test]
    fn no_frame_is_longer_than_the_maximum() {
        for b1 in [0xE2, 0xE4, 0xE6, 0xF2, 0xF4, 0xF6, 0xFA, 0xFC, 0xFE] {
            for b2 in 0..=255u8 {
                if let Some(frame) = Mpeg::parse(&[0xFF, b1, b2, 0]) {
                    assert!(
                        (4..=Mpeg::MAX_FRAME_BYTES).contains(&frame.len),
                        "{b1:x} {b2:x}"
                    );
                }
            }
        }
    }

    #[test]
    fn hostile_input() {
        hostile(Parser::new, FIXTURE, false, |p| {
            p.buffered() <= Parser::SEARCH_BYTES
        });
    }
}
