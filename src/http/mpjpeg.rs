//! Built-in MPJPEG: a raw MJPEG stream (JPEG after JPEG, as `ffmpeg -f mjpeg` writes it)
//! served as `multipart/x-mixed-replace` for a browser `<img>`, the spec's optional goal.
//!
//! A browser shows a part only once the next boundary arrives, so the boundary and the next
//! part's headers are sent right after each picture's end (EOI), not before the next picture:
//! the picture is shown when it arrives, not one picture late. The pictures themselves are
//! passed on as they are (slices of the shared chunks, no copy); only the end of each picture
//! is looked for, at memchr speed.

use bytes::Bytes;

/// The boundary voyandz uses for the parts it makes.
pub const BOUNDARY: &str = "voyandz";
/// The Content-Type of built-in MPJPEG.
pub const MIMETYPE: &str = "multipart/x-mixed-replace;boundary=voyandz";
/// What opens every part.
const PART_START: &[u8] = b"--voyandz\r\nContent-Type: image/jpeg\r\n\r\n";
/// What closes a part and opens the next one, sent the moment a picture ends.
const PART_NEXT: &[u8] = b"\r\n--voyandz\r\nContent-Type: image/jpeg\r\n\r\n";

/// Wraps one client's raw MJPEG bytes into parts. The client must join at a picture start.
#[derive(Debug, Default)]
pub struct Wrapper {
    started: bool,
    /// The previous chunk ended with 0xFF (an EOI may be split across chunks).
    pending_ff: bool,
}

impl Wrapper {
    /// Appends `chunk` to `out`, cut after each picture end with a part boundary in between.
    pub fn wrap(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) {
        if !self.started {
            self.started = true;
            out.push(Bytes::from_static(PART_START));
        }
        let mut from = 0;
        if self.pending_ff && chunk.first() == Some(&0xD9) {
            out.push(Bytes::from_static(b"\xD9"));
            out.push(Bytes::from_static(PART_NEXT));
            from = 1;
        }
        let mut search = from;
        while let Some(at) = memchr_ff_d9(&chunk[search..]) {
            let end = search + at + 2;
            out.push(chunk.slice(from..end));
            out.push(Bytes::from_static(PART_NEXT));
            from = end;
            search = end;
        }
        self.pending_ff = chunk.last() == Some(&0xFF) && from < chunk.len();
        if from < chunk.len() {
            out.push(chunk.slice(from..));
        }
    }
}

/// The index of the next `FF D9` (EOI) in `data`. Inside entropy-coded data a 0xFF is always
/// followed by 0x00 or a restart marker, so `FF D9` only ends a picture.
fn memchr_ff_d9(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|pair| pair == [0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(chunks: &[&'static [u8]]) -> Vec<u8> {
        let mut wrapper = Wrapper::default();
        let mut out = Vec::new();
        for chunk in chunks {
            wrapper.wrap(Bytes::from_static(chunk), &mut out);
        }
        out.concat()
    }

    #[test]
    fn each_picture_is_followed_at_once_by_the_next_boundary() {
        let two = b"\xFF\xD8ab\xFF\xD9\xFF\xD8cd\xFF\xD9";
        let expected = [
            PART_START,
            b"\xFF\xD8ab\xFF\xD9",
            PART_NEXT,
            b"\xFF\xD8cd\xFF\xD9",
            PART_NEXT,
        ]
        .concat();
        assert_eq!(wrapped(&[two]), expected);
        assert_eq!(
            wrapped(&[b"\xFF\xD8ab\xFF", b"\xD9\xFF\xD8cd\xFF\xD9"]),
            expected,
            "an EOI split across chunks"
        );
        let one_byte_chunks: Vec<&'static [u8]> = two.iter().map(std::slice::from_ref).collect();
        assert_eq!(wrapped(&one_byte_chunks), expected);
    }
}
