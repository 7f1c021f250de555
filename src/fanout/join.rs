//! Join policies: where a new client's bytes start, from the spec's URL parameters.
//!
//! "Clients should be able to connect at any time, potentially receiving gibberish at the
//! beginning. If client is incapable of accepting gibberish, it should be allowed for this
//! client to specify a parameter in URL query demanding from voyandz to provide a proper
//! header. Another URL query parameter should demand to start streaming from an intra-frame."
//!
//! The spec allows gibberish at the start, it does not require it: a plain URL (no join
//! parameter) gets raw live bytes only where a player can start anywhere, and a clean start
//! where it cannot (see [`Join::resolve`]).

use std::borrow::Cow;

use crate::container::Container;
use crate::http::url::decode_query_part;

/// Where a client's stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Join {
    /// The next byte published (`?header=0&keyframe=0`): lowest latency, possibly mid-unit.
    Live,
    /// No join parameter (the plain URL): what the container needs, once it is known.
    Plain,
    /// `?header`: the container's header, then data from the next unit boundary.
    Header,
    /// `?keyframe`: the header, then data from the next keyframe.
    Keyframe,
    /// `?keyframe=last`: the header and the cached group of pictures at once, then live:
    /// an instant picture, one GOP behind live.
    LastKeyframe,
}

/// The policy as the status API spells it (`live`, `plain`, `header`, `keyframe`,
/// `last_keyframe`).
impl std::fmt::Display for Join {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Join::Live => "live",
            Join::Plain => "plain",
            Join::Header => "header",
            Join::Keyframe => "keyframe",
            Join::LastKeyframe => "last_keyframe",
        })
    }
}

/// A query parameter with a value voyandz does not understand (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad value {value:?} for URL parameter {name:?} (expected {expected})")]
pub struct BadParameter {
    /// The parameter.
    pub name: String,
    /// Its value.
    pub value: String,
    /// What is accepted.
    pub expected: &'static str,
}

impl Join {
    /// Reads `header` and `keyframe` from a URL query; other parameters are left to others
    /// (and ignored here: browsers add cache busters).
    pub fn from_query(query: Option<&str>) -> Result<Self, BadParameter> {
        let mut join = None;
        for (name, value) in parameters(query, &["header", "keyframe"])? {
            let value = value.as_deref();
            let bad = |expected| BadParameter {
                name: name.to_string(),
                value: value.unwrap_or_default().to_string(),
                expected,
            };
            let wanted = match (name.as_ref(), value) {
                ("header", None | Some("1" | "true" | "yes")) => Join::Header,
                ("header", Some("0" | "false" | "no")) => Join::Live,
                ("header", Some(_)) => return Err(bad("nothing, 1 or 0")),
                ("keyframe", None | Some("1" | "true" | "yes" | "next")) => Join::Keyframe,
                ("keyframe", Some("last")) => Join::LastKeyframe,
                ("keyframe", Some("0" | "false" | "no")) => Join::Live,
                ("keyframe", Some(_)) => return Err(bad("nothing, 1, last or 0")),
                _ => continue,
            };
            join = Some(join.map_or(wanted, |join: Join| join.at_least(wanted)));
        }
        Ok(join.unwrap_or(Join::Plain))
    }

    /// The join to make on a run of `container`. A plain URL gets raw live bytes where a
    /// player can start anywhere (TS, MPJPEG, MP3, opaque bytes: no latency added) and the
    /// header and a keyframe where it cannot play without the header (WebM, fMP4, FLV, Ogg,
    /// WAV). There `?header` starts at a keyframe too: ffmpeg and GStreamer fail on VP9 that
    /// starts on inter frames.
    pub fn resolve(self, container: Container) -> Join {
        match self {
            Join::Plain | Join::Header if container.needs_header() => Join::Keyframe,
            Join::Plain => Join::Live,
            join => join,
        }
    }

    /// The stricter of two policies (`?header&keyframe` is a keyframe join).
    pub fn at_least(self, other: Join) -> Join {
        let rank = |join| match join {
            Join::Live => 0,
            Join::Plain => 1,
            Join::Header => 2,
            Join::Keyframe => 3,
            Join::LastKeyframe => 4,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// Whether the switch `name` is on in a query: `name`, `name=1`; `name=0` turns it off.
pub fn flag(query: Option<&str>, name: &str) -> Result<bool, BadParameter> {
    let mut on = false;
    for (key, value) in parameters(query, &[name])? {
        on = match value.as_deref() {
            None | Some("1" | "true" | "yes") => true,
            Some("0" | "false" | "no") => false,
            Some(value) => {
                return Err(BadParameter {
                    name: key.to_string(),
                    value: value.to_string(),
                    expected: "nothing, 1 or 0",
                });
            }
        };
    }
    Ok(on)
}

/// A query parameter's name and value (none for a bare `name`), percent-decoded.
pub type Parameter<'a> = (Cow<'a, str>, Option<Cow<'a, str>>);

/// The `name[=value]` pairs of a query string whose name is one of `read`, in order, decoded
/// once here for every reader of the query: percent escapes, and `+` as a space (HTML form
/// encoding), so `quality=%35%30` is `quality=50`. A value of one of them that does not decode
/// is a bad parameter; pairs with other names are not looked at (a cache buster or a page's
/// own parameter in some other encoding must not make a stream fail).
pub fn parameters<'a>(
    query: Option<&'a str>,
    read: &[&str],
) -> Result<Vec<Parameter<'a>>, BadParameter> {
    let mut found = Vec::new();
    for pair in query.unwrap_or_default().split('&') {
        let (name, value) = match pair.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (pair, None),
        };
        let Ok(decoded) = decode_query_part(name) else {
            continue;
        };
        if !read.contains(&decoded.as_ref()) {
            continue;
        }
        let value = value
            .map(decode_query_part)
            .transpose()
            .map_err(|_| BadParameter {
                name: decoded.to_string(),
                value: value.unwrap_or_default().to_string(),
                expected: "percent-encoded UTF-8",
            })?;
        found.push((decoded, value));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_is_named_as_the_api_spells_it() {
        for join in [
            Join::Live,
            Join::Plain,
            Join::Header,
            Join::Keyframe,
            Join::LastKeyframe,
        ] {
            let api = serde_json::to_string(&join).expect("serialisable");
            assert_eq!(api, format!("\"{join}\""));
        }
    }

    #[test]
    fn parameters_choose_the_join() {
        assert_eq!(Join::from_query(None), Ok(Join::Plain));
        assert_eq!(Join::from_query(Some("t=123")), Ok(Join::Plain));
        assert_eq!(
            Join::from_query(Some("header=0&keyframe=0")),
            Ok(Join::Live)
        );
        assert_eq!(Join::from_query(Some("keyframe=0")), Ok(Join::Live));
        assert_eq!(Join::from_query(Some("header")), Ok(Join::Header));
        assert_eq!(Join::from_query(Some("header=1")), Ok(Join::Header));
        assert_eq!(Join::from_query(Some("keyframe")), Ok(Join::Keyframe));
        assert_eq!(
            Join::from_query(Some("header&keyframe")),
            Ok(Join::Keyframe)
        );
        assert_eq!(
            Join::from_query(Some("keyframe=last")),
            Ok(Join::LastKeyframe)
        );
        assert_eq!(
            Join::from_query(Some("keyframe=last&header")),
            Ok(Join::LastKeyframe)
        );
    }

    #[test]
    fn a_plain_url_gets_a_clean_start_only_where_the_container_needs_its_header() {
        for container in [
            Container::Matroska,
            Container::FragmentedMp4,
            Container::Ogg,
        ] {
            assert_eq!(Join::Plain.resolve(container), Join::Keyframe);
            assert_eq!(Join::Header.resolve(container), Join::Keyframe);
            assert_eq!(Join::Live.resolve(container), Join::Live);
        }
        for container in [Container::MpegTs, Container::Mpjpeg, Container::Opaque] {
            assert_eq!(Join::Plain.resolve(container), Join::Live);
            assert_eq!(Join::Header.resolve(container), Join::Header);
        }
        assert_eq!(
            Join::LastKeyframe.resolve(Container::Flv),
            Join::LastKeyframe
        );
        // A multipart client forces a part boundary on the plain URL.
        assert_eq!(Join::Plain.at_least(Join::Header), Join::Header);
    }

    #[test]
    fn switches_are_on_when_named() {
        assert_eq!(flag(Some("mpjpeg"), "mpjpeg"), Ok(true));
        assert_eq!(flag(Some("a=1&mpjpeg=0"), "mpjpeg"), Ok(false));
        assert_eq!(flag(None, "mpjpeg"), Ok(false));
        assert!(flag(Some("mpjpeg=please"), "mpjpeg").is_err());
    }

    #[test]
    fn bad_values_are_errors_naming_the_parameter() {
        let error = Join::from_query(Some("keyframe=first")).expect_err("bad value");
        assert_eq!(error.name, "keyframe");
        assert!(error.to_string().contains("\"first\""), "{error}");
        assert!(Join::from_query(Some("header=maybe")).is_err());
    }

    #[test]
    fn names_and_values_are_decoded() {
        assert_eq!(
            Join::from_query(Some("%6Beyframe=l%61st")),
            Ok(Join::LastKeyframe)
        );
        assert_eq!(flag(Some("mpjpeg=%31"), "mpjpeg"), Ok(true));
        let decoded = parameters(Some("t=a+b%2Bc&x&y=1"), &["t", "x"]).expect("decodes");
        assert_eq!(
            decoded,
            vec![("t".into(), Some("a b+c".into())), ("x".into(), None)]
        );
        let error = parameters(Some("t=%zz"), &["t"]).expect_err("a broken escape");
        assert_eq!((error.name.as_str(), error.value.as_str()), ("t", "%zz"));
    }

    #[test]
    fn parameters_nobody_reads_are_not_decoded() {
        let query = Some("title=%E9t%E9&x=100%&%zz=1&header");
        assert_eq!(Join::from_query(query), Ok(Join::Header));
        assert_eq!(flag(query, "mpjpeg"), Ok(false));
    }
}
