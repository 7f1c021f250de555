//! Templates and sets → plain feeds and streams, as if the user had copied and pasted them.
//!
//! Pure: raw entries in, raw entries out, problems into the [`Report`]. The rest of the
//! config module (and the running server) only ever sees the final entries. Text keeps the
//! location where it was written (in the template or the set definition), and every key of an
//! instantiated entry records what instantiated it ([`Report::vias`]), so that a problem found
//! later in that text names both places.
//!
//! - A **template** is a partial entry: an entry with `template: NAME` takes every key it does
//!   not set itself from the template (which may name a template in turn). In the template's
//!   text, `{input}` and `{output}` are `-` (the entry's stdin and stdout), `{args}` is the
//!   entry's `args` (or nothing) and any other `{NAME}` a value from `values:` (the entry's,
//!   over the template's).
//! - A **set** instantiates its feeds and streams once per item; `{FIELD}` in their names and
//!   text is the item's field (nothing for an item that lacks a field another item has).
//!   Placeholders are substituted once: a value's own braces are kept as written.

use std::collections::{BTreeSet, HashMap};

use serde_saphyr::{Location, Spanned};

use super::placeholder;
use super::problem::{Report, Via};
use super::raw::{Entries, FEED_KEYS, RawEntry, RawSet, STREAM_KEYS, Section};

/// The section an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Feed,
    Stream,
}

impl Kind {
    fn section(self) -> &'static str {
        match self {
            Kind::Feed => "feeds",
            Kind::Stream => "streams",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Feed => "feed",
            Kind::Stream => "stream",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Feed => FEED_KEYS,
            Kind::Stream => STREAM_KEYS,
        }
    }
}

/// A plain entry: no template, set or placeholder of either left in it.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Its final name, located where it was written.
    pub(crate) name: Spanned<String>,
    /// Its keys.
    pub(crate) body: RawEntry,
}

/// Every feed and stream of a file, templates applied and sets instantiated.
#[derive(Debug, Default)]
pub(crate) struct Expanded {
    /// Feeds, in file order (sets' after the plain ones).
    pub(crate) feeds: Vec<Entry>,
    /// Streams, in file order (sets' after the plain ones).
    pub(crate) streams: Vec<Entry>,
}

/// The placeholders a template's text always has, besides `{args}` and its values.
const STDIO: [&str; 2] = ["input", "output"];

/// The sections of a file that expansion reads.
pub(crate) struct Sections {
    pub(crate) templates: Section,
    pub(crate) sets: Option<Spanned<Entries<RawSet>>>,
    pub(crate) feeds: Section,
    pub(crate) streams: Section,
}

/// Applies templates and instantiates sets; problems go to `report`.
pub(crate) fn expand(sections: Sections, report: &mut Report) -> Expanded {
    let templates = entries(sections.templates)
        .map(|(name, body)| (name.value, body))
        .collect();
    let mut expander = Expander {
        templates,
        report,
        seen: HashMap::new(),
        out: Expanded::default(),
    };
    for (name, body) in entries(sections.feeds) {
        let written = format!("feeds.{}", name.value);
        expander.add(Kind::Feed, name, body, &written, Vec::new());
    }
    for (name, body) in entries(sections.streams) {
        let written = format!("streams.{}", name.value);
        expander.add(Kind::Stream, name, body, &written, Vec::new());
    }
    let sets = sections.sets.map(|sets| sets.value.0).unwrap_or_default();
    for (name, set) in sets {
        let set = set.map(|set| set.value).unwrap_or_default();
        expander.set(&name, set);
    }
    expander.out
}

/// The entries of a section, an empty one (`cam0:`) as an entry with no keys.
fn entries(section: Section) -> impl Iterator<Item = (Spanned<String>, RawEntry)> {
    let entries = section.map(|section| section.value.0).unwrap_or_default();
    (entries.into_iter()).map(|(name, body)| (name, body.map(|b| b.value).unwrap_or_default()))
}

struct Expander<'a> {
    templates: HashMap<String, RawEntry>,
    report: &'a mut Report,
    /// Where each final name was first defined, per section.
    seen: HashMap<(Kind, String), Location>,
    out: Expanded,
}

/// One template of a chain, with its name.
struct Link {
    name: String,
    body: RawEntry,
}

impl Expander<'_> {
    /// Adds one entry, written at key path `written` and instantiated through `via`.
    fn add(
        &mut self,
        kind: Kind,
        name: Spanned<String>,
        body: RawEntry,
        written: &str,
        via: Vec<Via>,
    ) {
        let key = format!("{}.{}", kind.section(), name.value);
        if let Some(first) = self.seen.get(&(kind, name.value.clone())) {
            let message = format!(
                "a {} named \"{}\" is defined already, at line {}, column {}",
                kind.noun(),
                name.value,
                first.line(),
                first.column()
            );
            self.report.error_at(&key, &name.referenced, via, message);
            return;
        }
        self.seen
            .insert((kind, name.value.clone()), name.referenced);
        let body = if body.template.is_some() {
            self.apply(kind, &key, body, written, &via)
        } else {
            for (field, location) in body.written() {
                if matches!(field, "args" | "values") {
                    let message =
                        format!("{field} only fills a template's placeholders: set template too");
                    self.report.error_at(
                        &format!("{written}.{field}"),
                        &location,
                        via.clone(),
                        message,
                    );
                }
            }
            body
        };
        if !via.is_empty() {
            self.report.vias.insert(key, via);
        }
        self.out_mut(kind).push(Entry { name, body });
    }

    fn out_mut(&mut self, kind: Kind) -> &mut Vec<Entry> {
        match kind {
            Kind::Feed => &mut self.out.feeds,
            Kind::Stream => &mut self.out.streams,
        }
    }

    /// `entry` with its template chain applied; `key` is its final key path and `written`
    /// where it was written.
    fn apply(
        &mut self,
        kind: Kind,
        key: &str,
        mut entry: RawEntry,
        written: &str,
        via: &[Via],
    ) -> RawEntry {
        let template = entry
            .template
            .take()
            .expect("apply is called with a template");
        let (args, values) = (entry.args.take(), entry.values.take());
        if let Some(command) = &entry.command {
            let message = "set either template or command, not both";
            self.report.error_at(
                &format!("{written}.command"),
                &command.referenced,
                via.to_vec(),
                message,
            );
            return entry;
        }
        let mut use_via: Vec<Via> = Via::at(format!("{written}.template"), &template.referenced)
            .into_iter()
            .collect();
        use_via.extend_from_slice(via);
        let Some(chain) = self.chain(&template, written, via) else {
            return entry;
        };
        let head = &chain[0].name;
        // Which template wrote each key: the nearest one that sets it.
        let mut merged = RawEntry::default();
        let mut origin: HashMap<&'static str, &str> = HashMap::new();
        for link in chain.iter().rev() {
            for (field, _) in link.body.written() {
                origin.insert(field, &link.name);
            }
            merged = link.body.clone().over(merged);
        }
        // The values the text can use: the entry's over the templates'.
        let mut scope: HashMap<String, (String, String, Location)> = HashMap::new();
        for (owner, values) in (chain.iter().rev())
            .map(|link| (format!("templates.{}", link.name), link.body.values.clone()))
            .chain([(written.to_owned(), values)])
        {
            for (name, value) in values.map(|v| v.value.0).unwrap_or_default() {
                let text = value.map(|v| v.value).unwrap_or_default();
                let at = format!("{owner}.values.{}", name.value);
                scope.insert(name.value, (text, at, name.referenced));
            }
        }
        let args_text = (args.as_ref().or(merged.args.as_ref())).map(|a| a.value.clone());
        merged.template = None;
        merged.args = None;
        merged.values = None;
        for (field, location) in merged.written() {
            if !kind.keys().contains(&field) {
                let message = format!(
                    "a {} has no {field} (template {head} is used by {key})",
                    kind.noun()
                );
                let at = format!("templates.{}.{field}", origin[field]);
                self.report
                    .error_at(&at, &location, use_via.clone(), message);
            }
        }
        let own: BTreeSet<&'static str> = entry.written().into_iter().map(|(f, _)| f).collect();
        for (field, _) in merged.written() {
            if !own.contains(field) {
                self.report
                    .vias
                    .insert(format!("{key}.{field}"), use_via.clone());
            }
        }
        let mut used = BTreeSet::new();
        for (field, text) in merged.texts_mut() {
            let top = field.split('.').next().unwrap_or_default();
            if own.contains(top) {
                continue;
            }
            let mut lookup = |name: &str| {
                used.insert(name.to_owned());
                if STDIO.contains(&name) {
                    Some("-".to_owned())
                } else if name == "args" {
                    Some(args_text.clone().unwrap_or_default())
                } else {
                    scope.get(name).map(|(value, _, _)| value.clone())
                }
            };
            if let Err(error) = fill(text, &mut lookup) {
                let owner = origin.get(top).copied().unwrap_or(head.as_str());
                let at = format!("templates.{owner}.{field}");
                self.report
                    .error_at(&at, &text.referenced, use_via.clone(), error.to_string());
            }
        }
        if let Some(args) = args.filter(|_| !used.contains("args")) {
            let message = format!("args is not used: template {head} has no {{args}}");
            self.report.error_at(
                &format!("{written}.args"),
                &args.referenced,
                via.to_vec(),
                message,
            );
        }
        for (name, (_, at, location)) in &scope {
            if !used.contains(name) {
                let message =
                    format!("value {name} is not used: template {head} has no {{{name}}}");
                self.report.error_at(at, location, via.to_vec(), message);
            }
        }
        entry.over(merged)
    }

    /// The templates `template` names, nearest first; `None` (reported) when one is missing
    /// or the chain loops.
    fn chain(
        &mut self,
        template: &Spanned<String>,
        written: &str,
        via: &[Via],
    ) -> Option<Vec<Link>> {
        let mut chain: Vec<Link> = Vec::new();
        let (mut next, mut referrer) = (template.clone(), format!("{written}.template"));
        loop {
            if chain.iter().any(|link| link.name == next.value) {
                let names: Vec<&str> = chain.iter().map(|link| link.name.as_str()).collect();
                let message = format!(
                    "template {} refers to itself: {} -> {}",
                    next.value,
                    names.join(" -> "),
                    next.value
                );
                self.report
                    .error_at(&referrer, &next.referenced, via.to_vec(), message);
                return None;
            }
            let Some(body) = self.templates.get(&next.value).cloned() else {
                let message = format!("no template named \"{}\"", next.value);
                self.report
                    .error_at(&referrer, &next.referenced, via.to_vec(), message);
                return None;
            };
            let name = next.value.clone();
            if let (Some(command), Some(_)) = (&body.command, &body.template) {
                let message = "set either template or command, not both";
                self.report.error_at(
                    &format!("templates.{name}.command"),
                    &command.referenced,
                    via.to_vec(),
                    message,
                );
            }
            let further = body.template.clone();
            referrer = format!("templates.{name}.template");
            chain.push(Link { name, body });
            match further {
                Some(further) => next = further,
                None => return Some(chain),
            }
        }
    }

    /// Instantiates every feed and stream of set `name` once per item.
    fn set(&mut self, name: &Spanned<String>, set: RawSet) {
        let set_key = format!("sets.{}", name.value);
        self.report.spans.mark(&set_key, &name.referenced);
        let definitions: Vec<(Kind, Spanned<String>, RawEntry)> = (entries(set.feeds)
            .map(|(n, b)| (Kind::Feed, n, b)))
        .chain(entries(set.streams).map(|(n, b)| (Kind::Stream, n, b)))
        .collect();
        let items = set.items.map(|items| items.value).unwrap_or_default();
        if items.is_empty() {
            self.report
                .warn(&set_key, "the set has no items, so it defines nothing");
            return;
        }
        // Every field any item has: an item that lacks one gets nothing for it.
        let fields: BTreeSet<String> = (items.iter())
            .flat_map(|item| item.value.0.iter().map(|(field, _)| field.value.clone()))
            .collect();
        let mut used = BTreeSet::new();
        for (_, def_name, body) in &definitions {
            used.extend(placeholder::names(&def_name.value));
            for (_, text) in body.clone().texts_mut() {
                used.extend(placeholder::names(&text.value));
            }
        }
        for (index, item) in items.iter().enumerate() {
            for (field, _) in &item.value.0 {
                if !used.contains(&field.value) {
                    let key = format!("{set_key}.items.{index}.{}", field.value);
                    let message = format!(
                        "{} is not used by any feed or stream of the set",
                        field.value
                    );
                    self.report
                        .error_at(&key, &field.referenced, Vec::new(), message);
                }
            }
        }
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{set_key}.items.{index}");
            let via: Vec<Via> = Via::at(item_key.clone(), &item.referenced)
                .into_iter()
                .collect();
            let value = |field: &str| -> Option<Option<String>> {
                let found = item.value.0.iter().find(|(name, _)| name.value == field);
                match found {
                    Some((_, value)) => Some(Some(
                        value.as_ref().map(|v| v.value.clone()).unwrap_or_default(),
                    )),
                    None if fields.contains(field) => Some(None),
                    None if STDIO.contains(&field) => Some(Some("-".to_owned())),
                    None => None,
                }
            };
            for (kind, def_name, body) in &definitions {
                let written = format!("{set_key}.{}.{}", kind.section(), def_name.value);
                let mut final_name = def_name.clone();
                let mut missing = Vec::new();
                let named = fill(&mut final_name, &mut |field| {
                    value(field).map(|found| {
                        found.unwrap_or_else(|| {
                            missing.push(field.to_owned());
                            String::new()
                        })
                    })
                });
                if let Err(error) = named {
                    self.report.error_at(
                        &written,
                        &def_name.referenced,
                        Vec::new(),
                        error.to_string(),
                    );
                    continue;
                }
                if !missing.is_empty() {
                    let message = format!(
                        "the item has no {}, which the name {} needs",
                        missing.join(", "),
                        def_name.value
                    );
                    self.report
                        .error_at(&item_key, &item.referenced, Vec::new(), message);
                    continue;
                }
                let mut body = body.clone();
                let mut failed = false;
                for (field, text) in body.texts_mut() {
                    let mut lookup = |name: &str| value(name).map(Option::unwrap_or_default);
                    if let Err(error) = fill(text, &mut lookup) {
                        let key = format!("{written}.{field}");
                        self.report
                            .error_at(&key, &text.referenced, Vec::new(), error.to_string());
                        failed = true;
                    }
                }
                if !failed {
                    self.add(*kind, final_name, body, &written, via.clone());
                }
            }
        }
    }
}

/// Substitutes the placeholders of `text` in place.
fn fill(
    text: &mut Spanned<String>,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<(), placeholder::PlaceholderError> {
    text.value = placeholder::substitute(&text.value, lookup)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::load::{errors, loaded, problems};
    use crate::config::{Config, FeedInput};

    fn command(config: &Config, stream: &str) -> String {
        let command = config.streams[stream].command.as_ref().expect("a command");
        command.text.clone()
    }

    const TEMPLATES: &str = "templates:\n  ts:\n    command: enc -i {input} {args} -q {q} {output}\n    mimetype: video/mp2t\n    values: {q: 5}\n";

    #[test]
    fn a_template_fills_in_input_output_args_and_values() {
        let yaml = format!(
            "{TEMPLATES}feeds:\n  cam:\n    command: cat\nstreams:\n  a:\n    template: ts\n    feed: cam\n    args: -s 640x360\n  b:\n    template: ts\n    feed: cam\n    values: {{q: 9}}\n    mimetype: video/x-other\n"
        );
        let config = loaded(&yaml);
        assert_eq!(command(&config, "a"), "enc -i - -s 640x360 -q 5 -");
        assert_eq!(config.streams["a"].mimetype, "video/mp2t");
        assert_eq!(command(&config, "b"), "enc -i -  -q 9 -");
        assert_eq!(
            config.streams["b"].mimetype, "video/x-other",
            "the entry's own key wins"
        );
    }

    #[test]
    fn a_template_may_build_on_another() {
        let yaml = "templates:\n  base:\n    command: enc {args} -f {fmt} -\n    mimetype: video/webm\n  webm:\n    template: base\n    values: {fmt: webm}\nfeeds:\n  f:\n    command: cat\nstreams:\n  s:\n    template: webm\n    feed: f\n    args: -an\n";
        let config = loaded(yaml);
        assert_eq!(command(&config, "s"), "enc -an -f webm -");
        assert_eq!(config.streams["s"].mimetype, "video/webm");
    }

    #[test]
    fn a_feed_may_use_a_template_too() {
        let yaml = "templates:\n  cam:\n    command: grab {device}\n    mode: continuous\nfeeds:\n  c0:\n    template: cam\n    values: {device: /x/0}\n";
        let config = loaded(yaml);
        let FeedInput::Command(command) = &config.feeds["c0"].input else {
            panic!("a command feed");
        };
        assert_eq!(command.argv, ["grab", "/x/0"]);
        assert_eq!(config.feeds["c0"].mode, crate::config::Mode::Continuous);
    }

    const SET: &str = "sets:\n  cams:\n    items:\n      - {id: c0, dev: /x/0}\n      - {id: c1, dev: /x/1, args: -s 1280x720}\n    feeds:\n      \"{id}\": {command: \"grab {dev}\"}\n    streams:\n      \"{id}_ts\": {feed: \"{id}\", url: \"/{id}.ts\"}\n      \"{id}_enc\": {feed: \"{id}\", template: enc, args: \"{args}\"}\ntemplates:\n  enc:\n    command: enc {args} -\n";

    #[test]
    fn a_set_instantiates_its_definitions_per_item() {
        let config = loaded(SET);
        assert_eq!(config.feeds.keys().collect::<Vec<_>>(), ["c0", "c1"]);
        assert_eq!(
            config.streams.keys().collect::<Vec<_>>(),
            ["c0_enc", "c0_ts", "c1_enc", "c1_ts"]
        );
        assert_eq!(config.streams["c1_ts"].url.as_deref(), Some("/c1.ts"));
        assert_eq!(config.streams["c1_ts"].feeds, ["c1"]);
        assert_eq!(command(&config, "c0_enc"), "enc  -");
        assert_eq!(command(&config, "c1_enc"), "enc -s 1280x720 -");
    }

    #[test]
    fn escaped_braces_and_names_that_need_quoting_survive_a_round_trip() {
        let yaml = "sets:\n  s:\n    items:\n      - {id: \"#1: a\"}\n    feeds:\n      \"{id}\": {command: \"x {{id}} '{{}}'\"}\n";
        let config = loaded(yaml);
        let feed = &config.feeds["#1: a"];
        let FeedInput::Command(command) = &feed.input else {
            panic!("a command feed");
        };
        assert_eq!(command.argv, ["x", "{id}", "{}"]);
        let printed = crate::config::render_yaml(&config);
        let again = loaded(&printed);
        assert_eq!(again.feeds, config.feeds, "{printed}");
    }

    #[test]
    fn an_empty_set_is_a_warning() {
        assert_eq!(
            problems("sets:\n  s:\n    items: []\n    feeds:\n      \"{id}\": {command: x}\n"),
            Ok(vec![
                "t.yaml:2:3: sets.s: the set has no items, so it defines nothing".to_owned()
            ])
        );
    }

    #[test]
    fn template_errors_name_the_template_and_its_user() {
        let yaml = format!(
            "{TEMPLATES}feeds:\n  cam:\n    command: cat\nstreams:\n  a:\n    template: nope\n    feed: cam\n  b:\n    template: ts\n    command: x\n    feed: cam\n  c:\n    template: ts\n    feed: cam\n    values: {{q: 1, r: 2}}\n"
        );
        assert_eq!(
            errors(&yaml),
            "t.yaml:11:15: streams.a.template: no template named \"nope\"\n\
             t.yaml:15:14: streams.b.command: set either template or command, not both\n\
             t.yaml:20:20: streams.c.values.r: value r is not used: template ts has no {r}"
        );
        let unknown = "templates:\n  t:\n    command: enc {nope} -\nfeeds:\n  f:\n    command: cat\nstreams:\n  s:\n    template: t\n    feed: f\n";
        assert_eq!(
            errors(unknown),
            "t.yaml:3:14: templates.t.command: unknown placeholder {nope} \
             (via streams.s.template at t.yaml:9:15)"
        );
        let unused_args = "templates:\n  t:\n    command: enc -\nfeeds:\n  f:\n    command: cat\nstreams:\n  s:\n    template: t\n    feed: f\n    args: -an\n";
        assert_eq!(
            errors(unused_args),
            "t.yaml:11:11: streams.s.args: args is not used: template t has no {args}"
        );
        let args_alone = "feeds:\n  f:\n    command: cat\n    args: -an\n";
        assert_eq!(
            errors(args_alone),
            "t.yaml:4:11: feeds.f.args: args only fills a template's placeholders: set template too"
        );
    }

    #[test]
    fn a_template_that_refers_to_itself_is_an_error() {
        let yaml = "templates:\n  a:\n    template: b\n  b:\n    template: a\nfeeds:\n  f:\n    template: a\n";
        assert_eq!(
            errors(yaml),
            "t.yaml:5:15: templates.b.template: template a refers to itself: a -> b -> a\n\
             t.yaml:7:3: feeds.f: a feed needs a command or a file"
        );
    }

    #[test]
    fn a_key_a_feed_does_not_have_is_an_error_where_the_template_wrote_it() {
        let yaml = "templates:\n  t:\n    command: x\n    mimetype: video/mp2t\nfeeds:\n  f:\n    template: t\n";
        assert_eq!(
            errors(yaml),
            "t.yaml:4:15: templates.t.mimetype: a feed has no mimetype (template t is used by \
             feeds.f) (via feeds.f.template at t.yaml:7:15)"
        );
    }

    #[test]
    fn set_errors_name_the_definition_and_the_item() {
        let unused = "sets:\n  s:\n    items:\n      - {id: a, dev: x}\n    feeds:\n      \"{id}\": {command: cat}\n";
        assert_eq!(
            errors(unused),
            "t.yaml:4:17: sets.s.items.0.dev: dev is not used by any feed or stream of the set"
        );
        let unknown = "sets:\n  s:\n    items:\n      - {id: a}\n    feeds:\n      \"{id}\": {command: \"cat {nope}\"}\n";
        assert_eq!(
            errors(unknown),
            "t.yaml:6:25: sets.s.feeds.{id}.command: unknown placeholder {nope}"
        );
        let no_name = "sets:\n  s:\n    items:\n      - {id: a}\n      - {other: b}\n    feeds:\n      \"{id}{other}\": {command: cat}\n";
        assert_eq!(
            errors(no_name),
            "t.yaml:5:9: sets.s.items.1: the item has no id, which the name {id}{other} needs\n\
             t.yaml:4:9: sets.s.items.0: the item has no other, which the name {id}{other} needs"
                .lines()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    #[test]
    fn duplicates_made_by_a_set_are_errors_at_both_places() {
        let yaml = "feeds:\n  a:\n    command: cat\nsets:\n  s:\n    items:\n      - {id: a}\n      - {id: b}\n    feeds:\n      \"{id}\": {command: cat}\n    streams:\n      \"{id}_s\": {feed: \"{id}\", url: /same}\n";
        assert_eq!(
            errors(yaml),
            "t.yaml:10:7: feeds.a: a feed named \"a\" is defined already, at line 2, column 3 \
             (via sets.s.items.0 at t.yaml:7:9)\n\
             t.yaml:12:37: streams.b_s.url: /same is already served by stream \"a_s\" \
             (via sets.s.items.1 at t.yaml:8:9)"
        );
    }

    #[test]
    fn nested_sets_are_an_error() {
        let yaml = "sets:\n  s:\n    items: [{id: a}]\n    sets:\n      t: {}\n";
        assert_eq!(
            errors(yaml),
            "t.yaml:4:5: sets.s.sets: sets cannot be nested: list every combination as an item \
             of one set\n\
             t.yaml:3:14: sets.s.items.0.id: id is not used by any feed or stream of the set"
        );
    }
}
