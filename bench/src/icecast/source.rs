//! The source side of the Icecast peer: the `PUT` request that makes the bench's stamping feed
//! Icecast's source, and Icecast's answer to it. Pure; [`super`] does the I/O.
//!
//! Icecast 2.4 takes a source as `PUT /mount` with basic auth `source:<password>` and a
//! `Content-Type`, answers `HTTP/1.0 200 OK` with an empty head as soon as the mount is
//! taken (a `100 Continue` first if the request asked for one), and from then on reads every
//! byte after the request head as the stream, until the connection closes. It neither needs
//! a `Content-Length` nor decodes a chunked body (2.4 has no chunked request bodies): the
//! body must be the raw bytes, unframed. The request says HTTP/1.1, as ffmpeg's `icecast://`
//! output does; it asks for no `100 Continue`, since the `200` comes before any body byte
//! anyway, and waiting for it is how the bench knows the mount is there.

/// The `Content-Type` the source announces: the stamp packets are MPEG-TS packets. Icecast
/// 2.4.4 has no handler of its own for it (it logs "Unsupported or legacy stream type") and
/// relays it with its generic one, the MP3 handler without metadata: it parses nothing, and
/// queues the bytes in blocks of 1400 (its `format_mp3.c`), each sent to a listener in one
/// `send(2)`. `audio/mpeg` or `application/octet-stream` would take the same path.
pub const CONTENT_TYPE: &str = "video/mp2t";

/// The request head for a source of `mount` with password `password`.
pub fn put_head(mount: &str, password: &str) -> String {
    let auth = base64(format!("source:{password}").as_bytes());
    format!(
        "PUT {mount} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: {CONTENT_TYPE}\r\nIce-Public: 0\r\nIce-Name: voyandz-bench\r\n\
         User-Agent: voyandz-bench\r\n\r\n"
    )
}

/// What the bytes received so far say about the source request.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// No final answer yet: read more.
    Incomplete,
    /// `200`: the mount is the source's; stream.
    Accepted,
    /// Anything else, with its status line (`401` for a wrong password, `403` for a mount in
    /// use or a refused content type).
    Refused(String),
}

/// Reads Icecast's answer from the start of `received`, skipping any `100 Continue` head.
pub fn answer(mut received: &[u8]) -> Answer {
    loop {
        let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Answer::Incomplete;
        };
        let head = String::from_utf8_lossy(&received[..end]);
        let status = head.lines().next().unwrap_or("").trim().to_string();
        match status.split(' ').nth(1) {
            Some("100") => received = &received[end + 4..],
            Some("200") => return Answer::Accepted,
            _ => return Answer::Refused(status),
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4), for the basic-auth header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("source:hackme", "c291cmNlOmhhY2ttZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded, "{plain:?}");
        }
    }

    #[test]
    fn put_head_authenticates_the_source_and_frames_no_body() {
        let head = put_head("/stream", "hackme");
        assert!(head.starts_with("PUT /stream HTTP/1.1\r\n"));
        assert!(head.contains("\r\nAuthorization: Basic c291cmNlOmhhY2ttZQ==\r\n"));
        assert!(head.contains("\r\nContent-Type: video/mp2t\r\n"));
        assert!(head.contains("\r\nIce-Public: 0\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
        assert_eq!(head.matches("\r\n\r\n").count(), 1);
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("content-length") && !lower.contains("transfer-encoding"));
        assert!(!lower.contains("expect"));
    }

    #[test]
    fn answer_waits_for_a_final_status_past_any_100_continue() {
        assert_eq!(answer(b"HTTP/1.0 200 OK\r\n"), Answer::Incomplete);
        assert_eq!(answer(b"HTTP/1.0 200 OK\r\n\r\n"), Answer::Accepted);
        let cont = b"HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(answer(cont), Answer::Incomplete);
        assert_eq!(
            answer(&[&cont[..], b"HTTP/1.0 200 OK\r\n\r\n"].concat()),
            Answer::Accepted
        );
        assert_eq!(
            answer(b"HTTP/1.0 403 Forbidden\r\nContent-Type: text/html\r\n\r\nMountpoint in use"),
            Answer::Refused("HTTP/1.0 403 Forbidden".into())
        );
    }
}
