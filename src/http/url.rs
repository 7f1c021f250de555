//! Percent-encoding at the edge: request paths and query parameters are decoded here, once,
//! and the paths that pages print are encoded here.
//!
//! Browsers and players send `/kamera/%C5%BC%C3%B3%C5%82w.ts` for a stream whose `url` is
//! `/kamera/żółw.ts`: the configuration, the routes and the log use the decoded text, and only
//! this module knows the encoded one. Text whose decoding would be ambiguous or unsafe is
//! refused rather than guessed: a broken escape, bytes that are not UTF-8, an encoded NUL, an
//! encoded `/` in a path (two different URLs would name one route) and control characters in a
//! path (they would break the log line that names it). Queries follow HTML form encoding: `+`
//! is a space and `%2B` a plus. This module does not split URIs: hyper has already separated
//! the path from the query.

use std::borrow::Cow;
use std::fmt::Write;

/// Why a path or a query part cannot be decoded (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// A `%` not followed by two hexadecimal digits.
    #[error("malformed percent escape in {0:?}")]
    BadEscape(String),
    /// The decoded bytes are not UTF-8.
    #[error("{0:?} is not UTF-8 once decoded")]
    NotUtf8(String),
    /// An encoded NUL (`%00`).
    #[error("{0:?} holds an encoded NUL (%00)")]
    EncodedNul(String),
    /// An encoded `/` (`%2F`) in a path: it would name the same route as a real `/`.
    #[error("{0:?} holds an encoded \"/\" (%2F)")]
    EncodedSlash(String),
    /// A decoded path holding a control character (a newline, a tab, ...).
    #[error("{0:?} holds a control character once decoded")]
    Control(String),
}

/// Which part of a URL is decoded: they differ in `+` and in what they may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A path: `+` is itself, `%2F` and control characters are refused.
    Path,
    /// A query name or value (HTML form encoding): `+` is a space.
    Query,
}

/// Decodes a request path (`/kamera/%C5%BC%C3%B3%C5%82w.ts` → `/kamera/żółw.ts`).
pub fn decode_path(raw: &str) -> Result<Cow<'_, str>, UrlError> {
    let path = decode(raw, Part::Path)?;
    if path.chars().any(char::is_control) {
        return Err(UrlError::Control(raw.to_string()));
    }
    Ok(path)
}

/// Decodes one name or value of a query string as HTML forms encode it (`+` is a space).
pub fn decode_query_part(raw: &str) -> Result<Cow<'_, str>, UrlError> {
    decode(raw, Part::Query)
}

fn decode(raw: &str, part: Part) -> Result<Cow<'_, str>, UrlError> {
    let plus_is_space = part == Part::Query;
    if !raw
        .bytes()
        .any(|byte| byte == b'%' || plus_is_space && byte == b'+')
    {
        return Ok(Cow::Borrowed(raw));
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'+' if plus_is_space => bytes.push(b' '),
            b'%' => {
                let Some((escape, tail)) = rest.split_first_chunk::<2>() else {
                    return Err(UrlError::BadEscape(raw.to_string()));
                };
                rest = tail;
                let decoded = match (hex_digit(escape[0]), hex_digit(escape[1])) {
                    (Some(high), Some(low)) => high << 4 | low,
                    _ => return Err(UrlError::BadEscape(raw.to_string())),
                };
                if decoded == 0 {
                    return Err(UrlError::EncodedNul(raw.to_string()));
                }
                if part == Part::Path && decoded == b'/' {
                    return Err(UrlError::EncodedSlash(raw.to_string()));
                }
                bytes.push(decoded);
            }
            _ => bytes.push(byte),
        }
    }
    String::from_utf8(bytes)
        .map(Cow::Owned)
        .map_err(|_| UrlError::NotUtf8(raw.to_string()))
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .map(|digit| u8::try_from(digit).expect("a hex digit fits in a byte"))
}

/// Percent-encodes a path for a link (`/kamera/żółw.ts` → `/kamera/%C5%BC%C3%B3%C5%82w.ts`):
/// every byte but RFC 3986's unreserved characters, the sub-delimiters and `:` `@` (what a
/// path segment may hold as it is) and the `/` separators. The result still needs HTML
/// escaping (`&`) to go into a page.
pub fn encode_path(path: &str) -> Cow<'_, str> {
    if path.bytes().all(is_path_safe) {
        return Cow::Borrowed(path);
    }
    let mut encoded = String::with_capacity(path.len() * 3);
    for byte in path.bytes() {
        if is_path_safe(byte) {
            encoded.push(char::from(byte));
        } else {
            write!(encoded, "%{byte:02X}").expect("writing to a String cannot fail");
        }
    }
    Cow::Owned(encoded)
}

/// RFC 3986 `pchar` without `%` (unreserved, sub-delims, `:`, `@`), and `/`.
fn is_path_safe(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_once() {
        assert_eq!(
            decode_path("/kamera/%C5%BC%C3%B3%C5%82w.ts").as_deref(),
            Ok("/kamera/żółw.ts")
        );
        assert_eq!(decode_path("/stream/t%73").as_deref(), Ok("/stream/ts"));
        assert_eq!(decode_path("/a+b").as_deref(), Ok("/a+b"));
        // Decoding once: an encoded `%` stays a `%`.
        assert_eq!(decode_path("/100%2541").as_deref(), Ok("/100%41"));
        assert!(matches!(decode_path("/plain"), Ok(Cow::Borrowed("/plain"))));
    }

    #[test]
    fn unsafe_or_broken_paths_are_refused() {
        for (raw, expected) in [
            ("/a%2Fb", UrlError::EncodedSlash("/a%2Fb".into())),
            ("/a%2fb", UrlError::EncodedSlash("/a%2fb".into())),
            ("/a%00", UrlError::EncodedNul("/a%00".into())),
            ("/a%C5", UrlError::NotUtf8("/a%C5".into())),
            ("/a%zz", UrlError::BadEscape("/a%zz".into())),
            ("/a%4", UrlError::BadEscape("/a%4".into())),
            ("/a%", UrlError::BadEscape("/a%".into())),
            ("/a%0Ab", UrlError::Control("/a%0Ab".into())),
        ] {
            assert_eq!(decode_path(raw), Err(expected), "{raw}");
        }
    }

    #[test]
    fn query_parts_use_form_encoding() {
        assert_eq!(decode_query_part("%35%30").as_deref(), Ok("50"));
        assert_eq!(decode_query_part("a+b%2Bc").as_deref(), Ok("a b+c"));
        assert_eq!(decode_query_part("x%2Fy").as_deref(), Ok("x/y"));
        assert!(decode_query_part("%00").is_err());
        assert!(decode_query_part("%g0").is_err());
    }

    #[test]
    fn encoding_keeps_separators_and_escapes_the_rest() {
        assert_eq!(
            encode_path("/kamera/żółw.ts"),
            "/kamera/%C5%BC%C3%B3%C5%82w.ts"
        );
        assert_eq!(encode_path("/a b?c#d%e\"f<g"), "/a%20b%3Fc%23d%25e%22f%3Cg");
        assert!(matches!(
            encode_path("/stream/cam-0_a.b~(1)"),
            Cow::Borrowed(_)
        ));
        for path in ["/kamera/żółw.ts", "/a b?c#d%e&f+g", "/x:y@z;w"] {
            assert_eq!(decode_path(&encode_path(path)).as_deref(), Ok(path));
        }
    }
}
