//! The config file's shape as written: YAML → these structs, every value kept with its location.
//!
//! Unknown keys are skipped by the structs and found by [`unknown_keys`], a walk over every
//! key of the file, so that a typo such as `comand` is an error (rather than a silently
//! missing command) reported together with every other problem of the file. Values are not
//! checked here: text fields take any scalar's text and the others take a [`Scalar`], so that
//! `load` can give every wrong value its key path and report all of them at once. [`key_at`]
//! finds the key path of an error that serde-saphyr raised itself (it knows the line and
//! column, not the key).

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
#[derive(Debug, Clone)]
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

/// A section of entries (`feeds:`, `streams:`, `templates:`, a set's `feeds:`).
pub(crate) type Section = Option<Spanned<Entries<RawEntry>>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawConfig {
    pub(crate) listenaddr: Text,
    pub(crate) listenport: Value,
    pub(crate) logdir: Text,
    pub(crate) feeds: Section,
    pub(crate) streams: Section,
    pub(crate) pages: Option<Spanned<RawPages>>,
    pub(crate) status: Option<Spanned<RawStatus>>,
    pub(crate) templates: Section,
    pub(crate) sets: Option<Spanned<Entries<RawSet>>>,
}

/// One entry of `feeds:`, `streams:` or `templates:`: every key any of them accepts, so that
/// a template is a partial entry that merges key by key. Which keys each section accepts is
/// [`FEED_KEYS`] and [`STREAM_KEYS`]; a template accepts all of them.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RawEntry {
    pub(crate) command: Text,
    pub(crate) file: Text,
    pub(crate) mode: Value,
    pub(crate) feed: Text,
    pub(crate) feeds: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) no_resurrect: Value,
    #[serde(rename = "type")]
    pub(crate) kind: Text,
    pub(crate) mimetype: Text,
    pub(crate) client: Text,
    pub(crate) url: Text,
    pub(crate) decoder: Text,
    pub(crate) template: Text,
    pub(crate) args: Text,
    pub(crate) values: Option<Spanned<Entries<String>>>,
}

/// The keys a feed accepts.
pub(crate) const FEED_KEYS: &[&str] = &[
    "command",
    "file",
    "mode",
    "feed",
    "no-resurrect",
    "template",
    "args",
    "values",
];

/// The keys a stream accepts.
pub(crate) const STREAM_KEYS: &[&str] = &[
    "command", "type", "mimetype", "feed", "feeds", "client", "url", "mode", "decoder", "template",
    "args", "values",
];

impl RawEntry {
    /// `self`, with every key it does not set taken from `base`.
    pub(crate) fn over(self, base: RawEntry) -> RawEntry {
        RawEntry {
            command: self.command.or(base.command),
            file: self.file.or(base.file),
            mode: self.mode.or(base.mode),
            feed: self.feed.or(base.feed),
            feeds: self.feeds.or(base.feeds),
            no_resurrect: self.no_resurrect.or(base.no_resurrect),
            kind: self.kind.or(base.kind),
            mimetype: self.mimetype.or(base.mimetype),
            client: self.client.or(base.client),
            url: self.url.or(base.url),
            decoder: self.decoder.or(base.decoder),
            template: self.template.or(base.template),
            args: self.args.or(base.args),
            values: self.values.or(base.values),
        }
    }

    /// Every text value it sets, with its key (`values` entries as `values.NAME`), and the
    /// feeds it lists as `feeds.0`, `feeds.1`, ...: what placeholders can be written in.
    pub(crate) fn texts_mut(&mut self) -> Vec<(String, &mut Spanned<String>)> {
        let mut texts: Vec<(String, &mut Spanned<String>)> = [
            ("command", &mut self.command),
            ("file", &mut self.file),
            ("feed", &mut self.feed),
            ("type", &mut self.kind),
            ("mimetype", &mut self.mimetype),
            ("client", &mut self.client),
            ("url", &mut self.url),
            ("decoder", &mut self.decoder),
            ("template", &mut self.template),
            ("args", &mut self.args),
        ]
        .into_iter()
        .filter_map(|(key, text)| text.as_mut().map(|text| (key.to_owned(), text)))
        .collect();
        if let Some(feeds) = &mut self.feeds {
            for (index, feed) in feeds.value.iter_mut().enumerate() {
                texts.push((format!("feeds.{index}"), feed));
            }
        }
        if let Some(values) = &mut self.values {
            for (name, value) in &mut values.value.0 {
                if let Some(value) = value {
                    texts.push((format!("values.{}", name.value), value));
                }
            }
        }
        texts
    }

    /// The keys it sets, with where each was written.
    pub(crate) fn written(&self) -> Vec<(&'static str, serde_saphyr::Location)> {
        let at = |key, location: Option<serde_saphyr::Location>| location.map(|l| (key, l));
        [
            at("command", self.command.as_ref().map(|v| v.referenced)),
            at("file", self.file.as_ref().map(|v| v.referenced)),
            at("mode", self.mode.as_ref().map(|v| v.referenced)),
            at("feed", self.feed.as_ref().map(|v| v.referenced)),
            at("feeds", self.feeds.as_ref().map(|v| v.referenced)),
            at(
                "no-resurrect",
                self.no_resurrect.as_ref().map(|v| v.referenced),
            ),
            at("type", self.kind.as_ref().map(|v| v.referenced)),
            at("mimetype", self.mimetype.as_ref().map(|v| v.referenced)),
            at("client", self.client.as_ref().map(|v| v.referenced)),
            at("url", self.url.as_ref().map(|v| v.referenced)),
            at("decoder", self.decoder.as_ref().map(|v| v.referenced)),
            at("template", self.template.as_ref().map(|v| v.referenced)),
            at("args", self.args.as_ref().map(|v| v.referenced)),
            at("values", self.values.as_ref().map(|v| v.referenced)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// One `sets:` entry: a list of items, and feeds and streams written once for all of them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawSet {
    pub(crate) items: Option<Spanned<Vec<Spanned<Entries<String>>>>>,
    pub(crate) feeds: Section,
    pub(crate) streams: Section,
}

/// `pages:`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawPages {
    pub(crate) home: Value,
    pub(crate) stat: Value,
    pub(crate) config: Value,
}

/// `status:`: each path a string, or a boolean (`false` turns it off).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawStatus {
    pub(crate) page: Value,
    pub(crate) api: Value,
    pub(crate) metrics: Value,
    pub(crate) clients: Value,
}

/// A key the file's shape has no place for (a typo such as `comand`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownKey {
    /// 1-based line and column of the key (of the alias, when it came through one).
    pub(crate) at: (u64, u64),
    /// Its key path, such as `feeds.cam0.comand`.
    pub(crate) path: String,
    /// The key itself, such as `comand`.
    pub(crate) name: String,
    /// The keys accepted where it was written.
    pub(crate) expected: &'static [&'static str],
}

/// Every key of `text` that its section does not accept, in file order.
///
/// The structs above skip such keys, so that serde-saphyr goes on and every wrong value is
/// found too; this walk reports them. The keys accepted are the structs' own (`keys_of`), so
/// the two cannot disagree.
pub(crate) fn unknown_keys(text: &str) -> Vec<UnknownKey> {
    let accepted = |path: &[String]| -> Option<&'static [&'static str]> {
        match path {
            [_] => Some(keys_of::<RawConfig>()),
            [section, _, _] if section == "feeds" => Some(FEED_KEYS),
            [section, _, _] if section == "streams" => Some(STREAM_KEYS),
            [section, _, _] if section == "templates" => Some(keys_of::<RawEntry>()),
            [section, _, _] if section == "sets" => Some(keys_of::<RawSet>()),
            [section, _, part, _, _] if section == "sets" && part == "feeds" => Some(FEED_KEYS),
            [section, _, part, _, _] if section == "sets" && part == "streams" => Some(STREAM_KEYS),
            [section, _] if section == "pages" => Some(keys_of::<RawPages>()),
            [section, _] if section == "status" => Some(keys_of::<RawStatus>()),
            // Deeper keys sit where a single value belongs: serde-saphyr reports that.
            _ => None,
        }
    };
    let mut unknown = Vec::new();
    // A mapping inside a list has no place in the file at all: serde-saphyr reports that.
    for Key { at, path, .. } in keys(text).into_iter().filter(|key| !key.in_list) {
        let (Some(expected), Some(key)) = (accepted(&path), path.last()) else {
            continue;
        };
        if !expected.contains(&key.as_str()) {
            let name = key.clone();
            let path = path.join(".");
            unknown.push(UnknownKey {
                at,
                path,
                name,
                expected,
            });
        }
    }
    unknown
}

/// The keys serde accepts for `T` (its fields as renamed), read from its `Deserialize`.
fn keys_of<T: de::DeserializeOwned>() -> &'static [&'static str] {
    let mut keys: &'static [&'static str] = &[];
    // The probe always fails: it only records what the struct asked for.
    let _ = T::deserialize(KeysProbe(&mut keys));
    keys
}

/// A deserializer that records the field names a struct asks for, and gives nothing.
struct KeysProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for KeysProbe<'_> {
    type Error = de::value::Error;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only structs are probed"))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The key path of the last key written at or before `line`:`column` (1-based), if any.
///
/// Keys come before their values in YAML, so this names the key an error is about both when
/// the error points at the key (an unknown key) and when it points at its value (a list where
/// a mapping belongs). The walk records keys as the parser reaches them, so it also works up
/// to a syntax error.
pub(crate) fn key_at(text: &str, line: u64, column: u64) -> Option<String> {
    keys(text)
        .into_iter()
        .filter(|key| key.at <= (line, column))
        .max_by_key(|key| key.at)
        .map(|key| key.path.join("."))
}

/// One mapping key as written.
struct Key {
    /// 1-based line and column (of the alias, when it came through one).
    at: (u64, u64),
    /// The names of the keys (or list indexes) down to it.
    path: Vec<String>,
    /// Whether a list holds it, somewhere up its path.
    in_list: bool,
}

/// Every mapping key of `text`, in document order; up to the first syntax error, if any.
fn keys(text: &str) -> Vec<Key> {
    let mut keys = Vec::new();
    // Visit a repeated key too: it may be the error being explained.
    let options = serde_saphyr::options! { duplicate_keys: DuplicateKeyPolicy::PassThrough };
    // An error here is a syntax error: the keys before it are recorded, and `load` reports it.
    let _ = serde_saphyr::with_deserializer_from_str_with_options(text, options, |deserializer| {
        KeyWalk {
            prefix: Vec::new(),
            in_list: false,
            keys: &mut keys,
        }
        .deserialize(deserializer)
    });
    keys
}

/// Records every mapping key's location and path, in document order.
struct KeyWalk<'a> {
    prefix: Vec<String>,
    in_list: bool,
    keys: &'a mut Vec<Key>,
}

impl KeyWalk<'_> {
    fn child(&mut self, name: &str, in_list: bool) -> KeyWalk<'_> {
        let mut prefix = self.prefix.clone();
        prefix.push(name.to_owned());
        KeyWalk {
            prefix,
            in_list: self.in_list || in_list,
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
            let child = self.child(&key.value, false);
            child.keys.push(Key {
                at: (key.referenced.line(), key.referenced.column()),
                path: child.prefix.clone(),
                in_list: child.in_list,
            });
            map.next_value_seed(child)?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let child = self.child(&index.to_string(), true);
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
    fn unknown_keys_are_found_in_every_section_with_what_is_accepted() {
        let text = "listenadr: x\nfeeds:\n  a.b:\n    comand: x\n    mode: 5\n\
                    streams:\n  s:\n    url: /s\n    typ: shot\npages:\n  stats: no\n\
                    status:\n  json: /j\n";
        let found: Vec<(u64, String)> = unknown_keys(text)
            .into_iter()
            .map(|key| (key.at.0, key.path))
            .collect();
        let paths = [
            "listenadr",
            "feeds.a.b.comand",
            "streams.s.typ",
            "pages.stats",
            "status.json",
        ];
        assert_eq!(
            found,
            [1, 4, 9, 11, 13]
                .into_iter()
                .zip(paths.map(String::from))
                .collect::<Vec<_>>()
        );
        let feed = &unknown_keys(text)[1];
        assert_eq!(feed.expected, FEED_KEYS);
        assert_eq!(unknown_keys(TEXT).len(), 1, "list entries are not keys");
        assert_eq!(
            unknown_keys("feeds:\n- x: 1\n"),
            [],
            "nor mappings in a list"
        );
    }

    #[test]
    fn feeds_and_streams_together_accept_every_key_of_an_entry() {
        let mut both: Vec<&str> = FEED_KEYS.iter().chain(STREAM_KEYS).copied().collect();
        both.sort_unstable();
        both.dedup();
        let mut all = keys_of::<RawEntry>().to_vec();
        all.sort_unstable();
        assert_eq!(both, all);
    }

    #[test]
    fn set_definitions_and_templates_are_checked_for_unknown_keys() {
        let text = "templates:\n  t:\n    comand: x\nsets:\n  s:\n    item: []\n    feeds:\n      \
                    f:\n        url: /x\n    streams:\n      g:\n        values: {any: 1}\n";
        let found: Vec<String> = unknown_keys(text).into_iter().map(|k| k.path).collect();
        assert_eq!(
            found,
            ["templates.t.comand", "sets.s.item", "sets.s.feeds.f.url"]
        );
    }

    #[test]
    fn scalars_keep_their_yaml_type() {
        let raw: RawEntry =
            serde_saphyr::from_str("mode: yes\nno-resurrect: 2.5\nfeed: 007\n").expect("valid");
        assert_eq!(raw.mode.map(|s| s.value), Some(Scalar::Bool(true)));
        assert_eq!(raw.no_resurrect.map(|s| s.value), Some(Scalar::Float(2.5)));
        assert_eq!(raw.feed.map(|s| s.value).as_deref(), Some("007"));
    }
}
