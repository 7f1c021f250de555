//! Test-only checks shared by every container parser: ffprobe as the oracle for where units
//! start and for what a joiner receives, and the hostile-input battery of the
//! parser-robustness acceptance (random bytes, truncated and corrupted fixtures, random piece
//! sizes, resynchronisation).

use std::io::Write;
use std::process::Command;

use bytes::Bytes;

use super::testing::{Rng, corrupt, push_in_pieces};
use super::{Demarcator, Mark, MarkKind};

/// How much clean stream a parser may misread after garbage before it is back in step: a
/// corrupt length can send it past one unit (at most 64 KiB for Ogg pages and JPEG segments).
const RESYNC_SPAN_BYTES: usize = 128 * 1024;

/// Runs `ffprobe -v error ARGS FILE` on `bytes` and returns its stdout; fails the test on any
/// error output, so "ffprobe reads it without errors" is what passing means.
pub fn ffprobe(bytes: &[u8], args: &[&str]) -> String {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(bytes).expect("write temp file");
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(file.path())
        .output()
        .expect("ffprobe runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffprobe: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The positions of the packets ffprobe finds in `bytes` (of stream `stream`, if given), with
/// whether each is a keyframe.
pub fn packets(bytes: &[u8], format: Option<&str>, stream: Option<usize>) -> Vec<(u64, bool)> {
    packet_rows(bytes, format)
        .into_iter()
        .filter(|&(index, ..)| stream.is_none_or(|s| s == index))
        .map(|(_, pos, key)| (pos, key))
        .collect()
}

/// The marks ffprobe's packets in `bytes` call for: one at each packet of stream `marked` (of
/// every stream if `None`), a keyframe where stream `video` (if any) has a key packet, else a
/// boundary.
pub fn packet_marks(bytes: &[u8], marked: Option<usize>, video: Option<usize>) -> Vec<Mark> {
    let rows = packet_rows(bytes, None);
    let video_key = |pos| {
        rows.iter()
            .any(|&(index, p, key)| key && p == pos && Some(index) == video)
    };
    rows.iter()
        .filter(|&&(index, ..)| marked.is_none_or(|s| s == index))
        .map(|&(_, offset, _)| Mark {
            offset,
            kind: if video_key(offset) {
                MarkKind::Keyframe
            } else {
                MarkKind::Boundary
            },
        })
        .collect()
}

/// Every packet ffprobe finds in `bytes`: (stream index, position, keyframe).
fn packet_rows(bytes: &[u8], format: Option<&str>) -> Vec<(usize, u64, bool)> {
    let mut args = vec![
        "-show_entries",
        "packet=stream_index,pos,flags",
        "-of",
        "csv=p=0",
    ];
    if let Some(format) = format {
        args.extend(["-f", format]);
    }
    let out = ffprobe(bytes, &args);
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            let index: usize = fields.next()?.parse().ok()?;
            let pos: u64 = fields.next()?.parse().ok()?;
            let key = fields.next()?.starts_with('K');
            Some((index, pos, key))
        })
        .collect()
}

/// Parses the whole audio-only `file` with `parser` and checks what every audio-only stream
/// shares: the parser says it is audio-only, every mark is a boundary, and a client joining at
/// the middle mark (after the header, if any) decodes. Returns the marks and the header.
pub fn check_audio_only(mut parser: impl Demarcator, file: &[u8]) -> (Vec<Mark>, Option<Bytes>) {
    let marks = marks_of(&mut parser, file);
    assert!(parser.audio_only(), "not audio-only");
    assert!(marks.len() > 1 && marks.iter().all(|m| m.kind == MarkKind::Boundary));
    let header = parser.header().cloned();
    decoded_join(
        file,
        header.as_deref().unwrap_or(&[]),
        marks[marks.len() / 2],
    );
    (marks, header)
}

/// Where `marks` are.
pub fn offsets(marks: &[Mark]) -> Vec<u64> {
    marks.iter().map(|m| m.offset).collect()
}

/// The keyframe marks among `marks`.
pub fn keyframes(marks: &[Mark]) -> Vec<Mark> {
    marks
        .iter()
        .filter(|m| m.kind == MarkKind::Keyframe)
        .copied()
        .collect()
}

/// What a client joining `file` at `mark` receives decodes without errors, and its first video
/// frame is a keyframe.
pub fn check_join(file: &[u8], header: &[u8], mark: Mark) {
    let joined = decoded_join(file, header, mark);
    let first = [
        "-show_frames",
        "-select_streams",
        "v",
        "-read_intervals",
        "%+#1",
        "-show_entries",
        "frame=key_frame",
        "-of",
        "csv=p=0",
    ];
    // The first field: HEVC frames also list their SEI side data.
    let out = ffprobe(&joined, &first);
    assert_eq!(
        out.split([',', '\n']).next(),
        Some("1"),
        "join at {}",
        mark.offset
    );
}

/// What a client joining `file` at `mark` receives (`header`, then the bytes from `mark` on),
/// checked to decode without errors.
fn decoded_join(file: &[u8], header: &[u8], mark: Mark) -> Vec<u8> {
    let joined = [header, &file[mark.offset as usize..]].concat();
    ffprobe(&joined, &["-show_frames"]);
    joined
}

/// Every mark of `data` pushed in one piece.
pub fn marks_of(parser: &mut dyn Demarcator, data: &[u8]) -> Vec<Mark> {
    let mut marks = Vec::new();
    parser.push(data, &mut marks);
    marks
}

/// The robustness battery: the same marks (unless `per_push`: a parser that marks once per
/// piece) and header whatever the piece sizes; no panic and
/// bounded buffering (`bounded`) on random bytes, truncated and corrupted copies of `fixture`;
/// and after any of that garbage followed by `RESYNC_SPAN_BYTES` of clean copies, the next
/// clean copy's second half of marks is found again.
pub fn hostile<P: Demarcator>(
    new: impl Fn() -> P,
    fixture: &[u8],
    per_push: bool,
    bounded: impl Fn(&P) -> bool,
) {
    let mut whole = new();
    let reference = marks_of(&mut whole, fixture);
    assert!(!reference.is_empty(), "the fixture has marks");
    let mut rng = Rng::new(0x5EED_0001);
    for max_piece in [1, 7, 4096] {
        let mut parser = new();
        let marks = push_in_pieces(&mut parser, fixture, &mut rng, max_piece);
        if !per_push {
            assert_eq!(
                marks, reference,
                "marks depend on piece sizes (max {max_piece})"
            );
        }
        assert_eq!(
            parser.header(),
            whole.header(),
            "header depends on piece sizes"
        );
    }
    let later: Vec<Mark> = reference[reference.len() / 2..].to_vec();
    for round in 0..1500 {
        let garbage = match round % 3 {
            0 => {
                let len = rng.below(8192);
                rng.bytes(len)
            }
            1 => fixture[..rng.below(fixture.len())].to_vec(),
            _ => {
                let count = 1 + rng.below(64);
                corrupt(fixture, &mut rng, count)
            }
        };
        let mut parser = new();
        push_in_pieces(&mut parser, &garbage, &mut rng, 4096);
        assert!(bounded(&parser), "unbounded buffering (round {round})");
        if round % 10 != 0 {
            continue; // resynchronisation checked on a tenth of the rounds, for time
        }
        // A corrupt length field may make a parser skip that far before it notices.
        let copies = RESYNC_SPAN_BYTES.div_ceil(fixture.len());
        for _ in 0..copies {
            push_more(&mut parser, fixture, &mut rng);
        }
        // A per-push parser's marks are compared on one whole push.
        let marks = if per_push {
            marks_of(&mut parser, fixture)
        } else {
            push_more(&mut parser, fixture, &mut rng)
        };
        let shift = (garbage.len() + copies * fixture.len()) as u64;
        for mark in &later {
            let again = Mark {
                offset: mark.offset + shift,
                ..*mark
            };
            assert!(
                marks.contains(&again),
                "no resync to {mark:?} (round {round})"
            );
        }
    }
}

/// Pushes `data` in random pieces into a parser that has already consumed other bytes
/// (`push_in_pieces` checks offsets against its own count) and returns the marks.
fn push_more(parser: &mut dyn Demarcator, data: &[u8], rng: &mut Rng) -> Vec<Mark> {
    let mut marks = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let piece = (1 + rng.below(4096)).min(data.len() - at);
        parser.push(&data[at..at + piece], &mut marks);
        at += piece;
    }
    assert!(
        marks.windows(2).all(|w| w[0].offset <= w[1].offset),
        "marks out of order"
    );
    marks
}
