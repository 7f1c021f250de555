//! JPEG streams: raw MJPEG (one JPEG after another, ffmpeg's `-f mjpeg`) and MPJPEG
//! (`multipart/x-mixed-replace`, ffmpeg's `-f mpjpeg`). Every picture is a
//! [`MarkKind::Keyframe`] and neither needs a header. Raw MJPEG is followed marker by marker
//! (segment lengths, entropy-coded data with its `FF 00` stuffing and restart markers), so a
//! JPEG starts at the SOI after the previous EOI, never at bytes inside the scan data. MPJPEG
//! marks each part at its `--boundary` line, skipping the body by its `Content-Length` when the
//! part gives one (ffmpeg does), so the boundary text inside a picture cannot fool it; bare
//! `\n` line ends are accepted. Nothing is decoded; [`first_jpeg`] finds a complete picture in
//! a cached part (for screenshots).

use bytes::Bytes;

use super::{Container, Demarcator, Mark, MarkKind};

/// JPEG marker codes (ITU T.81 table B.1).
const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
/// TEM and RST0..RST7 stand alone (no length); so do SOI/EOI.
const TEM: u8 = 0x01;
const RST: std::ops::RangeInclusive<u8> = 0xD0..=0xD7;
/// Cap on one MPJPEG header line kept for reading (the rest of a longer line is skipped).
const LINE_KEEP_BYTES: usize = 64;
/// Cap on a part's header block: past it, the "part" is garbage and the delimiter is sought.
const PART_HEADERS_MAX_BYTES: usize = 16 * 1024;
/// Cap on whitespace after a delimiter before its line end (RFC 2046 transport padding).
const DELIMITER_PADDING_MAX_BYTES: usize = 64;

/// Where a raw JPEG scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Between pictures: `window` holds the last bytes, looking for `FF D8 FF` + marker.
    Seek { window: u32 },
    /// Expecting the `FF` that starts a marker.
    MarkerStart,
    /// After `FF`: expecting a marker code (more `FF`s are fill).
    MarkerCode,
    /// Reading a segment length (`hi` once its first byte is in) for `marker`.
    Length { marker: u8, hi: Option<u8> },
    /// Skipping a segment body; SOS continues with scan data.
    Skip { left: u16, then_scan: bool },
    /// Entropy-coded data; `ff` when the previous byte was `FF`.
    Entropy { ff: bool },
}

/// What a scanner step found.
enum Event {
    /// A picture starts at this absolute offset.
    Start(u64),
    /// A picture ended just before this absolute offset.
    End(u64),
}

/// Follows raw JPEG pictures, one after another.
struct Scanner {
    scan: Scan,
    pos: u64,
}

impl Scanner {
    fn new() -> Self {
        Self {
            scan: Scan::Seek { window: 0 },
            pos: 0,
        }
    }

    /// Consumes `data` up to and including the first picture start or end in it; returns the
    /// bytes consumed and the event, if any.
    fn step(&mut self, data: &[u8]) -> (usize, Option<Event>) {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            i += 1;
            let at = self.pos + i as u64; // absolute offset just after `b`
            self.scan = match self.scan {
                Scan::Seek { window } => {
                    let window = (window << 8) | u32::from(b);
                    let [ff1, soi, ff2, code] = window.to_be_bytes();
                    let opens = (0xC0..=0xFE).contains(&code)
                        && !RST.contains(&code)
                        && code != SOI
                        && code != EOI;
                    if ff1 == 0xFF && soi == SOI && ff2 == 0xFF && opens {
                        self.scan = Scan::Length {
                            marker: code,
                            hi: None,
                        };
                        self.pos += i as u64;
                        return (i, Some(Event::Start(at - 4)));
                    }
                    Scan::Seek { window }
                }
                Scan::MarkerStart if b == 0xFF => Scan::MarkerCode,
                Scan::MarkerStart => Scan::Seek {
                    window: u32::from(b),
                },
                Scan::MarkerCode | Scan::Entropy { ff: true } => match b {
                    0xFF => self.scan,
                    0x00 if self.scan == (Scan::Entropy { ff: true }) => {
                        Scan::Entropy { ff: false }
                    }
                    EOI => {
                        self.scan = Scan::Seek { window: 0 };
                        self.pos += i as u64;
                        return (i, Some(Event::End(at)));
                    }
                    // A SOI before the EOI: the picture was cut; the next one starts here.
                    SOI => Scan::Seek { window: 0xFFD8 },
                    code if RST.contains(&code) => match self.scan {
                        Scan::Entropy { .. } => Scan::Entropy { ff: false },
                        _ => Scan::MarkerStart,
                    },
                    TEM => Scan::MarkerStart,
                    0x00 => Scan::Seek { window: 0 },
                    marker => Scan::Length { marker, hi: None },
                },
                Scan::Length { marker, hi: None } => Scan::Length {
                    marker,
                    hi: Some(b),
                },
                Scan::Length {
                    marker,
                    hi: Some(hi),
                } => match u16::from_be_bytes([hi, b]) {
                    len @ 2.. => Scan::Skip {
                        left: len - 2,
                        then_scan: marker == SOS,
                    },
                    _ => Scan::Seek {
                        window: u32::from(b),
                    },
                },
                Scan::Skip { left, then_scan } => {
                    // Skip the body in one go rather than byte by byte.
                    let n = usize::from(left).min(data.len() - i + 1);
                    i += n - 1;
                    match left - n as u16 {
                        0 if then_scan => Scan::Entropy { ff: false },
                        0 => Scan::MarkerStart,
                        left => Scan::Skip { left, then_scan },
                    }
                }
                Scan::Entropy { ff: false } => {
                    // Scan data holds no unstuffed FF: jump to the next one.
                    let skip = data[i - 1..].iter().position(|&x| x == 0xFF);
                    match skip {
                        Some(k) => {
                            i += k;
                            Scan::Entropy { ff: true }
                        }
                        None => {
                            i = data.len();
                            Scan::Entropy { ff: false }
                        }
                    }
                }
            };
            if let Scan::Skip { left: 0, then_scan } = self.scan {
                self.scan = if then_scan {
                    Scan::Entropy { ff: false }
                } else {
                    Scan::MarkerStart
                };
            }
        }
        self.pos += i as u64;
        (i, None)
    }
}

/// Where an MPJPEG parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Matching `\n--boundary`; `matched` bytes of it so far.
    Delimiter { matched: usize },
    /// After the delimiter text, before its line end (`padding` bytes of whitespace so far).
    DelimiterLine { start: u64, padding: usize },
    /// In the part's header lines.
    Headers {
        total: usize,
        line: usize,
        length: Option<u64>,
    },
    /// Skipping a body of known length.
    Body { left: u64 },
}

/// Finds pictures in raw MJPEG or MPJPEG streams.
pub struct Parser {
    /// MPJPEG: `\n--` and the boundary; empty for raw MJPEG.
    delimiter: Vec<u8>,
    scanner: Scanner,
    part: Part,
    pos: u64,
    /// The start of the header line being read (MPJPEG).
    line: [u8; LINE_KEEP_BYTES],
}

impl Parser {
    /// A parser for raw MJPEG: JPEG after JPEG.
    pub fn mjpeg() -> Self {
        Self::with_delimiter(Vec::new())
    }

    /// A parser for `multipart/x-mixed-replace` parts separated by `--boundary` lines
    /// (`boundary` as in the mimetype's parameter, unquoted; ffmpeg uses `ffmpeg`).
    pub fn mpjpeg(boundary: &str) -> Self {
        // A line break cannot be part of a boundary (RFC 2046 5.1.1); dropping it also keeps
        // `\n` unique to the pattern's first byte, which the matcher relies on.
        let text = boundary.bytes().filter(|&b| b != b'\r' && b != b'\n');
        Self::with_delimiter(b"\n--".iter().copied().chain(text).collect())
    }

    fn with_delimiter(delimiter: Vec<u8>) -> Self {
        Self {
            delimiter,
            scanner: Scanner::new(),
            // The stream's start counts as a line start.
            part: Part::Delimiter { matched: 1 },
            pos: 0,
            line: [0; LINE_KEEP_BYTES],
        }
    }

    /// Consumes MPJPEG bytes; returns how many were used (at least 1).
    fn part_step(&mut self, data: &[u8], marks: &mut Vec<Mark>) -> usize {
        let b = data[0];
        self.part = match self.part {
            Part::Delimiter { matched: 0 } if b != b'\n' => {
                // Nothing matches before the next line break.
                let skip = data.iter().position(|&x| x == b'\n').unwrap_or(data.len());
                return skip.max(1);
            }
            Part::Delimiter { matched } if self.delimiter.get(matched) == Some(&b) => {
                if matched + 1 < self.delimiter.len() {
                    Part::Delimiter {
                        matched: matched + 1,
                    }
                } else {
                    let start = self.pos + 2 - self.delimiter.len() as u64;
                    Part::DelimiterLine { start, padding: 0 }
                }
            }
            Part::Delimiter { .. } => Part::Delimiter {
                matched: usize::from(b == b'\n'),
            },
            Part::DelimiterLine { start, padding } => match b {
                b'\n' => {
                    marks.push(Mark {
                        offset: start,
                        kind: MarkKind::Keyframe,
                    });
                    Part::Headers {
                        total: 0,
                        line: 0,
                        length: None,
                    }
                }
                b' ' | b'\t' | b'\r' if padding < DELIMITER_PADDING_MAX_BYTES => {
                    Part::DelimiterLine {
                        start,
                        padding: padding + 1,
                    }
                }
                // A close delimiter (`--boundary--`) or a longer word: not a part.
                _ => Part::Delimiter { matched: 0 },
            },
            Part::Headers {
                total,
                line,
                length,
            } if b == b'\n' => {
                let text = self.line[..line.min(LINE_KEEP_BYTES)].trim_ascii();
                if text.is_empty() {
                    match length {
                        Some(left) if left > 0 => Part::Body { left },
                        _ => Part::Delimiter { matched: 0 },
                    }
                } else {
                    let length = length.or_else(|| content_length(text));
                    Part::Headers {
                        total: total + 1,
                        line: 0,
                        length,
                    }
                }
            }
            Part::Headers { total, .. } if total >= PART_HEADERS_MAX_BYTES => {
                Part::Delimiter { matched: 0 }
            }
            Part::Headers {
                total,
                line,
                length,
            } => {
                if let Some(slot) = self.line.get_mut(line) {
                    *slot = b;
                }
                Part::Headers {
                    total: total + 1,
                    line: line + 1,
                    length,
                }
            }
            Part::Body { left } => {
                let n = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
                self.part = match left - n as u64 {
                    0 => Part::Delimiter { matched: 0 },
                    left => Part::Body { left },
                };
                return n;
            }
        };
        1
    }
}

/// The value of a `Content-Length` header line, if `line` is one.
fn content_length(line: &[u8]) -> Option<u64> {
    const NAME: &[u8] = b"content-length:";
    let head = line.get(..NAME.len())?;
    if !head.eq_ignore_ascii_case(NAME) {
        return None;
    }
    std::str::from_utf8(&line[NAME.len()..])
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Demarcator for Parser {
    fn container(&self) -> Container {
        if self.delimiter.is_empty() {
            Container::Mjpeg
        } else {
            Container::Mpjpeg
        }
    }

    fn push(&mut self, mut data: &[u8], marks: &mut Vec<Mark>) {
        while !data.is_empty() {
            let used = if self.delimiter.is_empty() {
                let (used, event) = self.scanner.step(data);
                if let Some(Event::Start(offset)) = event {
                    marks.push(Mark {
                        offset,
                        kind: MarkKind::Keyframe,
                    });
                }
                used
            } else {
                self.part_step(data, marks)
            };
            self.pos += used as u64;
            data = &data[used..];
        }
    }

    /// Always `None`: every picture stands alone.
    fn header(&self) -> Option<&Bytes> {
        None
    }

    fn audio_only(&self) -> bool {
        false
    }
}

/// The first complete JPEG (SOI through EOI) in `data`: the picture of a raw MJPEG unit or of
/// an MPJPEG part (whose header lines it skips), e.g. the cached last keyframe for a screenshot.
pub fn first_jpeg(data: &[u8]) -> Option<&[u8]> {
    let mut scanner = Scanner::new();
    let mut start = None;
    let mut at = 0;
    while at < data.len() {
        let (used, event) = scanner.step(&data[at..]);
        at += used;
        match event {
            Some(Event::Start(offset)) => start = Some(offset as usize),
            Some(Event::End(end)) => return start.map(|s| &data[s..end as usize]),
            None => {}
        }
    }
    None
}

/// Whether `first` starts with a JPEG picture (raw MJPEG).
pub fn sniff(first: &[u8]) -> bool {
    first.starts_with(&[0xFF, SOI, 0xFF])
}

/// The boundary of an MPJPEG stream whose first line is `--boundary`, if `first` starts so.
pub fn sniff_mpjpeg(first: &[u8]) -> Option<&str> {
    let line = first.strip_prefix(b"--")?;
    let end = line.iter().position(|&b| b == b'\n')?;
    let boundary = std::str::from_utf8(&line[..end]).ok()?.trim_end();
    let valid = !boundary.is_empty()
        && boundary.len() <= 70
        && boundary.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    valid.then_some(boundary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::conformance::{ffprobe, hostile, marks_of, packets};

    const MJPEG: &[u8] = include_bytes!("../../tests/data/containers/testsrc.mjpeg");
    const MPJPEG: &[u8] = include_bytes!("../../tests/data/containers/testsrc.mpjpeg");

    /// How many pictures ffprobe decodes from `bytes` read as `format`.
    fn pictures(bytes: &[u8], format: &str) -> usize {
        let args = [
            "-f",
            format,
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ];
        ffprobe(bytes, &args).trim().parse().expect("a frame count")
    }

    #[test]
    fn every_mjpeg_picture_is_a_keyframe() {
        let mut parser = Parser::mjpeg();
        let marks = marks_of(&mut parser, MJPEG);
        assert_eq!(marks.len(), pictures(MJPEG, "mjpeg"));
        assert!(
            marks
                .iter()
                .all(|m| m.kind == MarkKind::Keyframe && sniff(&MJPEG[m.offset as usize..]))
        );
        assert!(parser.header().is_none() && !parser.audio_only());
        assert_eq!(parser.container(), Container::Mjpeg);
        // Each unit holds exactly its picture, which decodes on its own.
        let unit = &MJPEG[marks[3].offset as usize..marks[4].offset as usize];
        assert_eq!(first_jpeg(unit), Some(unit));
        assert_eq!(pictures(unit, "mjpeg"), 1);
    }

    #[test]
    fn a_soi_inside_a_segment_is_not_a_picture() {
        let end = first_jpeg(MJPEG).expect("a picture").len();
        // A comment segment whose text is a JPEG start, right after the first SOI.
        let comment = [0xFF, 0xFE, 0x00, 0x06, 0xFF, SOI, 0xFF, 0xE0];
        let doctored = [&MJPEG[..2], &comment[..], &MJPEG[2..]].concat();
        let marks = marks_of(&mut Parser::mjpeg(), &doctored);
        assert_eq!(marks[0].offset, 0);
        assert_eq!(marks[1].offset, (end + comment.len()) as u64);
        assert_eq!(marks.len(), marks_of(&mut Parser::mjpeg(), MJPEG).len());
    }

    #[test]
    fn every_mpjpeg_part_is_a_keyframe_at_its_boundary_line() {
        let mut parser = Parser::mpjpeg("ffmpeg");
        let marks = marks_of(&mut parser, MPJPEG);
        assert_eq!(parser.container(), Container::Mpjpeg);
        let parts = packets(MPJPEG, Some("mpjpeg"), None);
        // ffmpeg writes the next part's boundary line right after each picture, so the file
        // ends with one more boundary line than pictures (a live joiner waits there).
        assert_eq!(marks.len(), parts.len() + 1);
        assert_eq!(
            marks[parts.len()].offset as usize,
            MPJPEG.len() - b"--ffmpeg\r\n".len()
        );
        for (mark, part) in marks.iter().zip(&parts) {
            assert!(MPJPEG[mark.offset as usize..].starts_with(b"--ffmpeg\r\n"));
            assert!(mark.offset < part.0 && mark.kind == MarkKind::Keyframe);
        }
        let from = marks[marks.len() / 2].offset as usize;
        assert_eq!(
            pictures(&MPJPEG[from..], "mpjpeg"),
            parts.len() - marks.len() / 2
        );
        let jpeg = first_jpeg(&MPJPEG[from..]).expect("a picture in the part");
        assert_eq!(pictures(jpeg, "mjpeg"), 1);
        assert_eq!(sniff_mpjpeg(MPJPEG), Some("ffmpeg"));
    }

    #[test]
    fn mpjpeg_without_lengths_or_carriage_returns() {
        let mut reference = marks_of(&mut Parser::mpjpeg("ffmpeg"), MPJPEG);
        let trailer = reference.pop().expect("the trailing boundary line");
        // Drop every Content-length line and turn "\r\n" into "\n" in the part headers.
        let mut plain = Vec::new();
        let mut at = 0;
        let mut offsets = Vec::new();
        for (i, mark) in reference.iter().enumerate() {
            let start = mark.offset as usize;
            let end = reference.get(i + 1).unwrap_or(&trailer).offset as usize;
            let part = &MPJPEG[start..end];
            let body = part
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("headers end")
                + 4;
            offsets.push(plain.len() as u64);
            plain.extend_from_slice(b"--ffmpeg\nContent-Type: image/jpeg\n\n");
            plain.extend_from_slice(&part[body..]);
            at = end;
        }
        assert_eq!(at, trailer.offset as usize);
        let marks = marks_of(&mut Parser::mpjpeg("ffmpeg"), &plain);
        assert_eq!(marks.iter().map(|m| m.offset).collect::<Vec<_>>(), offsets);
        // A close delimiter and a longer word are not parts.
        let tail = b"\r\n--ffmpegx\r\n\r\n--ffmpeg--\r\n";
        assert!(marks_of(&mut Parser::mpjpeg("ffmpeg"), tail).is_empty());
    }

    #[test]
    fn hostile_input() {
        hostile(Parser::mjpeg, MJPEG, false, |_| true);
        hostile(|| Parser::mpjpeg("ffmpeg"), MPJPEG, false, |_| true);
    }
}
