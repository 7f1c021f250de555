//! The config file's shape as written: YAML → these structs, every value kept with its location.
//!
//! Unknown keys are refused here (`deny_unknown_fields`, so a typo such as `comand` is an error
//! rather than a silently missing command). Values are not checked here: text fields take any
//! scalar's text and the others take a [`Scalar`], so that `load` can give every wrong value
//! its key path and report all of them at once. [`key_at`] finds the key path of an error that
//! serde-saphyr raised itself (it knows the line and column, not the key).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Spanned};

/// A text value with its location; any scalar is read as the text it was written as.
pub(crate) type Text = Option<Spanned<String>>;
/// Any other value with its location.
pub(crate) type Value = Option<Spanned<Scalar>>;

/// A scalar as YAML typed it (YAML 1.1 style: `yes` and `on` are booleans).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    /// `~`, `null` or nothing.
    Null,
    /// `true`, `yes`, `on`, ...
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A float.
    Float(f64),
    /// Anything else (and every quoted scalar).
    Str(String),
}

impl fmt::Display for Scalar {
    /// How a wrong value is quoted in a message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("nothing"),
            Scalar::Bool(b) => write!(f, "the boolean {b}"),
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Str(s) => write!(f, "\"{}\"", s.escape_debug()),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a single value")
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
                i128::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A mapping of names to entries, in file order. A name with an empty value (`cam0:`) has `None`.
#[derive(Debug)]
pub(crate) struct Entries<T>(pub(crate) Vec<(Spanned<String>, Option<Spanned<T>>)>);

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for EntriesVisitor<T> {
            type Value = Entries<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(name) = map.next_key()? {
                    entries.push((name, map.next_value()?));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) listenaddr: Text,
    pub(crate) listenport: Value,
    pub(crate) logdir: Text,
    pub(crate) feeds: Option<Spanned<Entries<RawFeed>>>,
    pub(crate) streams: Option<Spanned<Entries<RawStream>>>,
    pub(crate) pages: Option<Spanned<RawPages>>,
}

/// One `feeds:` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawFeed {
    pub(crate) command: Text,
    pub(crate) file: Text,
    pub(crate) mode: Value,
    pub(crate) feed: Text,
    pub(crate) no_resurrect: Value,
}

/// One `streams:` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStream {
    pub(crate) command: Text,
    #[serde(rename = "type")]
    pub(crate) kind: Text,
    pub(crate) mimetype: Text,
    pub(crate) feed: Text,
    pub(crate) client: Text,
    pub(crate) url: Text,
    pub(crate) mode: Value,
    pub(crate) decoder: Text,
}

/// `pages:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPages {
    pub(crate) home: Value,
    pub(crate) stat: Value,
    pub(crate) config: Value,
}

/// The key path of the last key written at or before `line`:`column` (1-based), if any.
///
/// Keys come before their values in YAML, so this names the key an error is about both when
/// the error points at the key (an unknown key) and when it points at its value (a list where
/// a mapping belongs). The walk records keys as the parser reaches them, so it also works up
/// to a syntax error.
pub(crate) fn key_at(text: &str, line: u64, column: u64) -> Option<String> {
    let mut keys = Vec::new();
    // Visit a repeated key too: it may be the error being explained.
    let options = serde_saphyr::options! { duplicate_keys: DuplicateKeyPolicy::PassThrough };
    // An error here is the syntax error being explained: the keys before it are recorded.
    let _ = serde_saphyr::with_deserializer_from_str_with_options(text, options, |deserializer| {
        KeyWalk {
            prefix: String::new(),
            keys: &mut keys,
        }
        .deserialize(deserializer)
    });
    keys.into_iter()
        .filter(|(at, _)| *at <= (line, column))
        .max_by_key(|(at, _)| *at)
        .map(|(_, path)| path)
}

/// Records every mapping key's location and path, in document order.
struct KeyWalk<'a> {
    prefix: String,
    keys: &'a mut Vec<((u64, u64), String)>,
}

impl KeyWalk<'_> {
    fn child(&mut self, name: &str) -> KeyWalk<'_> {
        let prefix = if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        };
        KeyWalk {
            prefix,
            keys: &mut *self.keys,
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeyWalk<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyWalk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let child = self.child(&key.value);
            let at = (key.referenced.line(), key.referenced.column());
            child.keys.push((at, child.prefix.clone()));
            map.next_value_seed(child)?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let child = self.child(&index.to_string());
            if seq.next_element_seed(child)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "listenport: 1\nfeeds:\n  cam0:\n    comand: x\n  cam1: [1, 2]\npages: {home: yes}\n";

    #[test]
    fn key_at_names_the_key_before_a_location() {
        assert_eq!(key_at(TEXT, 1, 1).as_deref(), Some("listenport"));
        assert_eq!(key_at(TEXT, 1, 13).as_deref(), Some("listenport"));
        assert_eq!(key_at(TEXT, 4, 5).as_deref(), Some("feeds.cam0.comand"));
        assert_eq!(key_at(TEXT, 5, 9).as_deref(), Some("feeds.cam1"));
        assert_eq!(key_at(TEXT, 6, 9).as_deref(), Some("pages.home"));
        assert_eq!(key_at("a: 1\n", 0, 0), None);
    }

    #[test]
    fn key_at_works_up_to_a_syntax_error() {
        let text = "listenport: 1\nstreams:\n  cam:\n    url: [/x\n";
        assert_eq!(key_at(text, 5, 1).as_deref(), Some("streams.cam.url"));
    }

    #[test]
    fn scalars_keep_their_yaml_type() {
        let raw: RawFeed =
            serde_saphyr::from_str("mode: yes\nno-resurrect: 2.5\nfeed: 007\n").expect("valid");
        assert_eq!(raw.mode.map(|s| s.value), Some(Scalar::Bool(true)));
        assert_eq!(raw.no_resurrect.map(|s| s.value), Some(Scalar::Float(2.5)));
        assert_eq!(raw.feed.map(|s| s.value).as_deref(), Some("007"));
    }
}
