//! One-shot blocking HTTP/1.1 GETs, each on a fresh connection (the picture and TTFB rows):
//! connect, write the request, parse the response head, read up to the first body bytes.
//! The streaming clients of the other rows are async and live in the parent module.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::Dechunker;
use voyandz_bench::clock::now_ns;

/// A fresh connection to `addr` without Nagle, whose connect and reads give up after `timeout`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// Writes `GET path`.
pub fn write_get(s: &mut TcpStream, path: &str) -> Result<(), String> {
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: voyandz-bench\r\n\r\n")
            .as_bytes(),
    )
    .map_err(|e| format!("write: {e}"))
}

/// Parses a response head: status, content type, chunked, content length.
pub fn parse_head(head: &[u8]) -> (u16, String, bool, Option<usize>) {
    let text = String::from_utf8_lossy(head).to_string();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (mut ctype, mut chunked, mut length) = (String::new(), false, None);
    for l in lines {
        let (k, v) = l.split_once(':').unwrap_or((l, ""));
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
        match k.as_str() {
            "content-type" => ctype = v,
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "content-length" => length = v.parse().ok(),
            _ => {}
        }
    }
    (status, ctype, chunked, length)
}

/// The start of a 200 response: when its head and its first body bytes arrived.
pub struct FirstBody {
    /// When the read that completed the response head returned (CLOCK_MONOTONIC ns).
    pub head_at: u64,
    /// When the first (de-chunked) body bytes arrived (CLOCK_MONOTONIC ns).
    pub body_at: u64,
    /// Those bytes.
    pub body: Vec<u8>,
}

/// Reads the response to a GET already written on `s` up to its first body bytes, with reads
/// of `buf`'s size. Any status but 200 is an error.
pub fn first_body(s: &mut TcpStream, buf: &mut [u8]) -> Result<FirstBody, String> {
    let mut raw = Vec::new();
    let mut head: Option<(u64, bool)> = None;
    let mut dechunk = Dechunker::default();
    loop {
        let n = s.read(buf).map_err(|e| format!("read: {e}"))?;
        let now = now_ns();
        if n == 0 {
            return Err("closed before the first body byte".into());
        }
        let mut data: &[u8] = &buf[..n];
        if head.is_none() {
            raw.extend_from_slice(data);
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let (status, _, chunked, _) = parse_head(&raw[..end]);
            if status != 200 {
                return Err(format!("status {status}"));
            }
            head = Some((now, chunked));
            let start = n - (raw.len() - (end + 4));
            data = &buf[start..n];
        }
        let (head_at, chunked) = head.expect("head parsed");
        let mut body = Vec::new();
        if chunked {
            dechunk.feed(data, |b| body.extend_from_slice(b))?;
        } else {
            body.extend_from_slice(data);
        }
        if !body.is_empty() {
            return Ok(FirstBody {
                head_at,
                body_at: now,
                body,
            });
        }
    }
}
