//! One-shot HTTP requests of the picture rows, blocking, each on a fresh connection: a whole
//! picture response (Content-Length, chunked or close-delimited) or a stream response up to
//! its first body byte; and the checks that a body is a JPEG or PNG of the stream's size.

use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};

use super::{HEIGHT, REQUEST_TIMEOUT, WIDTH};
use crate::client::Dechunker;
use crate::client::oneshot::{connect, first_body, parse_head, write_get};
use voyandz_bench::clock::now_ns;

/// A picture request's outcome.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) content_type: String,
    pub(super) body: Vec<u8>,
    /// From before `connect()` to the last body byte, ns.
    pub(super) total_ns: u64,
    /// When the request was written (CLOCK_MONOTONIC ns).
    pub(super) written_at: u64,
    /// When the last body byte arrived (CLOCK_MONOTONIC ns).
    pub(super) done_at: u64,
}

/// `GET path` on a fresh connection; reads the whole response (Content-Length, chunked or
/// to the close).
pub(super) fn get(addr: SocketAddr, path: &str) -> Result<Reply, String> {
    let t0 = now_ns();
    let mut s = connect(addr, REQUEST_TIMEOUT)?;
    write_get(&mut s, path)?;
    let written_at = now_ns();
    read_reply(&mut s, t0, written_at)
}

pub(super) fn read_reply(s: &mut TcpStream, t0: u64, written_at: u64) -> Result<Reply, String> {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut head: Option<(u16, String, bool, Option<usize>, usize)> = None;
    let mut body = Vec::new();
    let mut dechunk = Dechunker::default();
    let (status, content_type, done_at) = loop {
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        let now = now_ns();
        if n == 0 {
            let Some((status, content_type, ..)) = head else {
                return Err("closed before the response head".into());
            };
            break (status, content_type, now);
        }
        let mut data: &[u8] = &buf[..n];
        if head.is_none() {
            raw.extend_from_slice(data);
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let (status, ctype, chunked, length) = parse_head(&raw[..end]);
            head = Some((status, ctype, chunked, length, end + 4));
            let start = n - (raw.len() - (end + 4));
            data = &buf[start..n];
        }
        let (status, content_type, chunked, length, _) = head.clone().expect("head parsed");
        if chunked {
            dechunk.feed(data, |b| body.extend_from_slice(b))?;
        } else {
            body.extend_from_slice(data);
        }
        let complete = if chunked {
            dechunk.done()
        } else {
            length.is_some_and(|l| body.len() >= l)
        };
        if complete {
            break (status, content_type, now);
        }
    };
    Ok(Reply {
        status,
        content_type,
        body,
        total_ns: done_at - t0,
        written_at,
        done_at,
    })
}

/// Width and height of a baseline or progressive JPEG (its SOF marker).
pub(super) fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    while i + 9 < b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let m = b[i + 1];
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if (0xC0..=0xCF).contains(&m) && !matches!(m, 0xC4 | 0xC8 | 0xCC) {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]) as u32;
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]) as u32;
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// Width and height from a PNG's IHDR.
pub(super) fn png_size(b: &[u8]) -> Option<(u32, u32)> {
    if b.len() < 24 || !b.starts_with(b"\x89PNG\r\n\x1a\n") || &b[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(b[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(b[20..24].try_into().ok()?);
    Some((w, h))
}

/// Checks a picture reply: 200, an image type, the format's magic and the stream's size.
pub(super) fn check_picture(r: &Reply) -> Result<(), String> {
    if r.status != 200 {
        return Err(format!(
            "status {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(120)]).trim()
        ));
    }
    let size = if r.content_type.contains("png") {
        png_size(&r.body)
    } else {
        jpeg_size(&r.body)
    };
    match size {
        Some((WIDTH, HEIGHT)) => Ok(()),
        Some((w, h)) => Err(format!("picture is {w}x{h}, not {WIDTH}x{HEIGHT}")),
        None => Err(format!(
            "not a {} picture ({} bytes)",
            r.content_type,
            r.body.len()
        )),
    }
}

/// The first body byte of a `keyframe=last` request: (from connect, from request write, the
/// first de-chunked body bytes).
pub(super) fn first_body_byte(addr: SocketAddr, path: &str) -> Result<(u64, u64, Vec<u8>), String> {
    let t0 = now_ns();
    let mut s = connect(addr, REQUEST_TIMEOUT)?;
    write_get(&mut s, path)?;
    let written_at = now_ns();
    let mut buf = vec![0u8; 256 * 1024];
    let first = first_body(&mut s, &mut buf)?;
    Ok((first.body_at - t0, first.body_at - written_at, first.body))
}
