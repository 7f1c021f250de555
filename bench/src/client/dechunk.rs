//! Incremental HTTP/1.1 chunked-body decoding: bytes arrive cut anywhere, body runs come out.

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug, Default)]
pub struct Dechunker {
    state: ChunkState,
    size: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    #[default]
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Done,
}

impl Dechunker {
    /// Feeds raw bytes; calls `f` with each run of body bytes. Errors on a malformed framing.
    pub fn feed(&mut self, mut data: &[u8], mut f: impl FnMut(&[u8])) -> Result<(), String> {
        use ChunkState::*;
        while !data.is_empty() {
            match self.state {
                Data => {
                    let n = (self.size.min(data.len() as u64)) as usize;
                    f(&data[..n]);
                    data = &data[n..];
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                Done => return Ok(()),
                _ => {}
            }
            let b = data[0];
            data = &data[1..];
            self.state = match (self.state, b) {
                (Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    let d = (b as char).to_digit(16).expect("hex digit") as u64;
                    self.size = self.size.checked_mul(16).ok_or("chunk size overflow")? + d;
                    Size
                }
                (Size | Ext, b';') | (Ext, _) if b != b'\r' && b != b'\n' => Ext,
                (Size | Ext, b'\r') => SizeLf,
                (Size | Ext | SizeLf, b'\n') => {
                    if self.size == 0 {
                        Done
                    } else {
                        Data
                    }
                }
                (DataCr, b'\r') => DataLf,
                (DataCr | DataLf, b'\n') => {
                    self.size = 0;
                    Size
                }
                (s, b) => return Err(format!("bad chunked framing: byte {b:#04x} in state {s:?}")),
            };
        }
        Ok(())
    }

    /// The terminating zero-size chunk was seen.
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_across_any_cut() {
        let raw = b"5\r\nhello\r\n3;ext=1\r\n, w\r\nA\r\norld!!!!!!\r\n0\r\n\r\n";
        for piece in 1..raw.len() {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            for c in raw.chunks(piece) {
                d.feed(c, |b| out.extend_from_slice(b)).unwrap();
            }
            assert_eq!(out, b"hello, world!!!!!!");
            assert!(d.done());
        }
    }
}
