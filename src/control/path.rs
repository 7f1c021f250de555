//! Object paths of feeds and streams. A name may hold any UTF-8, an object path element only
//! `[A-Za-z0-9_]`: every other byte, and `_` itself, is written `_xx` (two lowercase hex
//! digits), as systemd writes unit names into its paths, so that every name has exactly one
//! path and the path gives the name back.

use zbus::OwnedObjectPath;

use super::ROOT;

/// Where feed `name` is.
pub fn feed(name: &str) -> OwnedObjectPath {
    under("feed", name)
}

/// Where stream `name` is.
pub fn stream(name: &str) -> OwnedObjectPath {
    under("stream", name)
}

fn under(kind: &str, name: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{ROOT}/{kind}/{}", escape(name)))
        .expect("an escaped name is a valid path element")
}

/// `name` as one object path element.
pub fn escape(name: &str) -> String {
    if name.is_empty() {
        return "_".into();
    }
    let mut escaped = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("_{byte:02x}"));
        }
    }
    escaped
}

/// The name an element made by [`escape`] stands for; `None` for anything else.
pub fn unescape(element: &str) -> Option<String> {
    if element == "_" {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(element.len());
    let mut rest = element.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'_' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else if first.is_ascii_alphanumeric() {
            bytes.push(first);
            rest = tail;
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_makes_a_valid_path_that_gives_it_back() {
        for name in [
            "cam", "cam_1", "żółw", "a b/c.d", "", "_", "x\u{0}y", "1080p", "😀",
        ] {
            let path = stream(name);
            let element = path.as_str().rsplit('/').next().expect("an element");
            assert!(
                (element.bytes()).all(|byte| byte.is_ascii_alphanumeric() || byte == b'_'),
                "{name:?} -> {path}"
            );
            assert_eq!(unescape(element).as_deref(), Some(name), "{path}");
        }
    }

    #[test]
    fn distinct_names_get_distinct_paths() {
        // `_` is escaped too: otherwise "a_2e" and "a." would share a path.
        assert_ne!(escape("a_2e"), escape("a."));
        assert_eq!(escape("a."), "a_2e");
        assert_eq!(escape("a_2e"), "a_5f2e");
        assert_eq!(feed("cam").as_str(), "/org/voyandz/Voyandz1/feed/cam");
    }

    #[test]
    fn what_escape_cannot_make_is_no_name() {
        for element in ["_4", "_zz", "a-b", "_ff", "_c3"] {
            assert_eq!(unescape(element), None, "{element}");
        }
    }
}
