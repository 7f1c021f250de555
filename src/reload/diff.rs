//! What a reload changes: which feeds and streams of the running config carry over untouched.
//!
//! Pure: two configs in, a [`Diff`] out. A feed is kept when its definition is the same and
//! so is the feed it reads (a chain restarts from the first changed link down); a stream is
//! kept when its definition is the same and every feed it reads is kept. Everything else of
//! the new config starts afresh, and everything of the old one that is not kept stops.

use std::collections::BTreeSet;

use crate::config::Config;
use crate::lifecycle::Kind;

/// The feeds and streams a reload keeps, and what it changes, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diff {
    /// Feeds carried over as they run.
    pub kept_feeds: BTreeSet<String>,
    /// Streams carried over as they run, with their clients.
    pub kept_streams: BTreeSet<String>,
    /// In both configs but started afresh (their definition or a feed they read changed).
    pub restarted: BTreeSet<String>,
    /// Only in the new config.
    pub added: BTreeSet<String>,
    /// Only in the old config.
    pub removed: BTreeSet<String>,
}

impl Diff {
    /// What going from `old` to `new` keeps and changes.
    pub fn between(old: &Config, new: &Config) -> Self {
        let mut diff = Diff::default();
        for name in new.feeds.keys() {
            if feed_kept(old, new, name, &mut Vec::new()) {
                diff.kept_feeds.insert(name.clone());
            }
        }
        for (name, stream) in &new.streams {
            let same = old.streams.get(name) == Some(stream);
            if same
                && stream
                    .feeds
                    .iter()
                    .all(|feed| diff.kept_feeds.contains(feed))
            {
                diff.kept_streams.insert(name.clone());
            }
        }
        let names = |keys: &mut dyn Iterator<Item = &String>| -> BTreeSet<String> {
            keys.cloned().collect()
        };
        let sections = [
            (
                names(&mut old.feeds.keys()),
                names(&mut new.feeds.keys()),
                &diff.kept_feeds,
                "feed",
            ),
            (
                names(&mut old.streams.keys()),
                names(&mut new.streams.keys()),
                &diff.kept_streams,
                "stream",
            ),
        ];
        let (mut restarted, mut added, mut removed) = (Vec::new(), Vec::new(), Vec::new());
        for (old_names, new_names, kept, noun) in sections {
            for name in &new_names {
                let named = format!("{noun} {name}");
                match (old_names.contains(name), kept.contains(name)) {
                    (true, true) => {}
                    (true, false) => restarted.push(named),
                    (false, _) => added.push(named),
                }
            }
            removed.extend((old_names.difference(&new_names)).map(|name| format!("{noun} {name}")));
        }
        diff.restarted = restarted.into_iter().collect();
        diff.added = added.into_iter().collect();
        diff.removed = removed.into_iter().collect();
        diff
    }

    /// Whether the reload keeps the running feed or stream `name`.
    pub fn keeps(&self, kind: Kind, name: &str) -> bool {
        match kind {
            Kind::Feed => self.kept_feeds.contains(name),
            Kind::Stream => self.kept_streams.contains(name),
        }
    }

    /// Whether it changes nothing that runs.
    pub fn is_empty(&self) -> bool {
        self.restarted.is_empty() && self.added.is_empty() && self.removed.is_empty()
    }
}

/// Whether feed `name` of `new` is the same, down its chain, as in `old`.
fn feed_kept<'a>(old: &Config, new: &'a Config, name: &'a str, seen: &mut Vec<&'a str>) -> bool {
    let (Some(before), Some(after)) = (old.feeds.get(name), new.feeds.get(name)) else {
        return false;
    };
    if before != after || seen.contains(&name) {
        return false;
    }
    seen.push(name);
    after
        .feed
        .as_deref()
        .is_none_or(|parent| feed_kept(old, new, parent, seen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::loaded;

    const BASE: &str = "feeds:\n  a:\n    command: cat\n  b:\n    command: cat\n    feed: a\n\
                        \x20 c:\n    command: cat\nstreams:\n  sa:\n    feed: a\n  sb:\n    feed: b\n\
                        \x20 sc:\n    feed: c\n    command: cat\n";

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    #[test]
    fn the_same_config_keeps_everything() {
        let diff = Diff::between(&loaded(BASE), &loaded(BASE));
        assert_eq!(names(&diff.kept_feeds), ["a", "b", "c"]);
        assert_eq!(names(&diff.kept_streams), ["sa", "sb", "sc"]);
        assert!(diff.is_empty());
    }

    #[test]
    fn a_changed_feed_restarts_its_chain_and_its_streams_only() {
        let changed = BASE.replacen("  a:\n    command: cat", "  a:\n    command: cat -u", 1);
        let diff = Diff::between(&loaded(BASE), &loaded(&changed));
        assert_eq!(names(&diff.kept_feeds), ["c"]);
        assert_eq!(names(&diff.kept_streams), ["sc"]);
        assert_eq!(
            names(&diff.restarted),
            ["feed a", "feed b", "stream sa", "stream sb"]
        );
        assert!(!diff.keeps(Kind::Feed, "a") && diff.keeps(Kind::Stream, "sc"));
    }

    #[test]
    fn added_and_removed_entries_are_named() {
        let new = BASE.replace(
            "  sc:\n    feed: c\n    command: cat\n",
            "  sd:\n    feed: c\n",
        );
        let diff = Diff::between(&loaded(BASE), &loaded(&new));
        assert_eq!(names(&diff.added), ["stream sd"]);
        assert_eq!(names(&diff.removed), ["stream sc"]);
        assert_eq!(names(&diff.kept_streams), ["sa", "sb"]);
    }
}
