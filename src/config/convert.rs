//! Raw structs → [`Config`]: each value parsed, defaults filled in, wrong values reported.
//!
//! Every key that was written is remembered with its location (in [`Report::spans`]) so that
//! `validate` can point at it too. A wrong value is reported at its key path and replaced by
//! its default, so that all wrong values are found in one pass; the config is then discarded.
//! Cross-checks between entries (does that feed exist?) are `validate`'s job.

use std::path::Path;

use serde_saphyr::Spanned;

use super::expand::{self, Entry, Sections};
use super::load::{
    DEFAULT_LISTEN_ADDR, DEFAULT_LISTEN_PORT, DEFAULT_METRICS, DEFAULT_MIMETYPE, DEFAULT_PAGES,
    DEFAULT_STATUS_API, DEFAULT_STATUS_PAGE,
};
use super::problem::Report;
use super::raw::{RawConfig, RawEntry, RawStatus, Value};
use super::values::{
    address, boolean, client, command, is_bad_in_url, kind, mimetype, mode, path, port, program,
    reference, stand_in, status_path, url,
};
use super::{
    ClientMode, Config, FeedConfig, FeedInput, Mode, Pages, Status, StreamConfig, StreamKind,
};

/// Remembers where `key` was written and parses its value; a wrong value is reported at `key`.
fn field<S, T>(
    report: &mut Report,
    key: &str,
    value: Option<Spanned<S>>,
    parse: impl FnOnce(S) -> Result<T, String>,
) -> Option<T> {
    let value = value?;
    report.spans.mark(key, &value.referenced);
    parse(value.value)
        .map_err(|message| report.error(key, message))
        .ok()
}

/// The final config of `raw`, read from `path`; wrong values are in `report`.
pub(crate) fn convert(path: &Path, raw: RawConfig, report: &mut Report) -> Config {
    // Relative `file:` and `logdir` are relative to the config file, not to the daemon's cwd.
    let base = path.parent().unwrap_or(Path::new(""));
    let logdir = field(report, "logdir", raw.logdir, |text| {
        Ok((!text.is_empty()).then(|| base.join(text)))
    });
    let pages = raw.pages.map(|pages| pages.value).unwrap_or_default();
    let stat = field(report, "pages.stat", pages.stat, boolean);
    let status = convert_status(report, raw.status.map(|s| s.value), stat);
    let pages = Pages {
        home: field(report, "pages.home", pages.home, boolean).unwrap_or(DEFAULT_PAGES.home),
        config: field(report, "pages.config", pages.config, boolean)
            .unwrap_or(DEFAULT_PAGES.config),
    };
    let (listen_addr, listen_ips) = field(report, "listenaddr", raw.listenaddr, address)
        .unwrap_or_else(|| (DEFAULT_LISTEN_ADDR.to_string(), vec![DEFAULT_LISTEN_ADDR]));
    let mut config = Config {
        path: path.to_path_buf(),
        listen_addr,
        listen_ips,
        listen_port: field(report, "listenport", raw.listenport, port)
            .unwrap_or(DEFAULT_LISTEN_PORT),
        logdir: logdir.flatten(),
        feeds: Default::default(),
        streams: Default::default(),
        pages,
        status,
    };
    let sections = Sections {
        templates: raw.templates,
        sets: raw.sets,
        feeds: raw.feeds,
        streams: raw.streams,
    };
    let expanded = expand::expand(sections, report);
    for Entry { name, body } in expanded.feeds {
        let key = entry_key(report, "feeds", &name);
        let feed = convert_feed(report, &key, name.value, body, base);
        config.feeds.insert(feed.name.clone(), feed);
    }
    for Entry { name, body } in expanded.streams {
        let key = entry_key(report, "streams", &name);
        let stream = convert_stream(report, &key, name.value, body);
        config.streams.insert(stream.name.clone(), stream);
    }
    config
}

/// `feeds.NAME`, located at the name.
fn entry_key(report: &mut Report, section: &str, name: &Spanned<String>) -> String {
    let key = format!("{section}.{}", name.value);
    report.spans.mark(&key, &name.referenced);
    key
}

/// `status:`. Upstream's `pages.stat: false` turns the page, the API and the metrics off;
/// a `status:` path written with it contradicts it, and is an error rather than a guess.
fn convert_status(report: &mut Report, raw: Option<RawStatus>, stat: Option<bool>) -> Status {
    let raw = raw.unwrap_or_default();
    let on = stat.unwrap_or(true);
    let mut view = |key: &str, value: Value, default: &str| {
        if value.is_none() {
            return on.then(|| default.to_owned());
        }
        let path = field(report, key, value, |value| status_path(value, default)).flatten();
        if let Some(path) = path.as_deref().filter(|_| !on) {
            let message = format!(
                "{path} is on, but pages.stat: false turns the status page, the status API and \
                 the metrics off (remove one of the two)"
            );
            report.error(key, message);
        }
        path
    };
    Status {
        page: view("status.page", raw.page, DEFAULT_STATUS_PAGE),
        api: view("status.api", raw.api, DEFAULT_STATUS_API),
        metrics: view("status.metrics", raw.metrics, DEFAULT_METRICS),
        clients: field(report, "status.clients", raw.clients, boolean).unwrap_or(false),
    }
}

fn convert_feed(
    report: &mut Report,
    key: &str,
    name: String,
    raw: RawEntry,
    base: &Path,
) -> FeedConfig {
    let command_key = format!("{key}.command");
    let file_key = format!("{key}.file");
    let written = (raw.command.is_some(), raw.file.is_some());
    let command = field(report, &command_key, raw.command, command);
    let file = field(report, &file_key, raw.file, |text| path(text, base));
    let mode = field(report, &format!("{key}.mode"), raw.mode, mode);
    let feed = field(report, &format!("{key}.feed"), raw.feed, reference);
    let no_resurrect = field(
        report,
        &format!("{key}.no-resurrect"),
        raw.no_resurrect,
        boolean,
    );
    if name.is_empty() {
        report.error(key, "a feed needs a name");
    }
    let input = match (written, command, file) {
        ((true, true), command, file) => {
            report.error(&file_key, "set either command or file, not both");
            command
                .map(FeedInput::Command)
                .or(file.map(FeedInput::File))
        }
        ((false, false), _, _) => {
            report.error(key, "a feed needs a command or a file");
            None
        }
        (_, Some(command), _) => Some(FeedInput::Command(command)),
        (_, _, Some(file)) => Some(FeedInput::File(file)),
        // The value written was wrong and is reported already.
        _ => None,
    };
    // A stand-in keeps the feed, so that `validate` does not also report "no feed named".
    let input = input.unwrap_or_else(|| FeedInput::Command(stand_in()));
    FeedConfig {
        name,
        input,
        mode: mode.unwrap_or(Mode::OnDemand),
        feed,
        resurrect: !no_resurrect.unwrap_or(false),
    }
}

fn convert_stream(report: &mut Report, key: &str, name: String, raw: RawEntry) -> StreamConfig {
    let sub = |field: &str| format!("{key}.{field}");
    if name.is_empty() {
        report.error(key, "a stream needs a name");
    } else if let Some(bad) = name.chars().find(|c| is_bad_in_url(*c) || *c == '/') {
        // Each stream is served at /stream/NAME: the name is one path segment.
        let bad = bad.escape_debug();
        report.error(key, format!("a stream name cannot contain '{bad}'"));
    }
    let written = raw.command.is_some();
    // A stand-in for a wrong command, so that `validate` does not take it for a direct relay.
    let command =
        field(report, &sub("command"), raw.command, command).or_else(|| written.then(stand_in));
    let feed = field(report, &sub("feed"), raw.feed, reference);
    let listed = raw.feeds.map(|feeds| {
        report.spans.mark(&sub("feeds"), &feeds.referenced);
        let names = feeds.value.into_iter().enumerate();
        let names = names.filter_map(|(index, name)| {
            field(
                report,
                &sub(&format!("feeds.{index}")),
                Some(name),
                reference,
            )
        });
        names.collect::<Vec<_>>()
    });
    let feeds = match (feed, listed) {
        (Some(feed), Some(_)) => {
            report.error(&sub("feeds"), "set either feed or feeds, not both");
            vec![feed]
        }
        (Some(feed), None) => vec![feed],
        (None, listed) => listed.unwrap_or_default(),
    };
    StreamConfig {
        command,
        feeds,
        kind: field(report, &sub("type"), raw.kind, kind).unwrap_or(StreamKind::Stream),
        mimetype: field(report, &sub("mimetype"), raw.mimetype, mimetype)
            .unwrap_or_else(|| DEFAULT_MIMETYPE.to_owned()),
        client: field(report, &sub("client"), raw.client, client).unwrap_or(ClientMode::Shared),
        url: field(report, &sub("url"), raw.url, url).flatten(),
        mode: field(report, &sub("mode"), raw.mode, mode).unwrap_or(Mode::OnDemand),
        decoder: field(report, &sub("decoder"), raw.decoder, program),
        name,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::load::{errors, loaded};

    #[test]
    fn a_feed_has_a_command_or_a_file() {
        let config = loaded(
            "feeds:\n  f:\n    file: in.ts\n    no-resurrect: true\n  g:\n    command: cat\n    feed: f\n",
        );
        let feed = &config.feeds["f"];
        assert_eq!(
            feed.input,
            FeedInput::File(PathBuf::from("/etc/voyandz/in.ts"))
        );
        assert!(!feed.resurrect && config.feeds["g"].resurrect);
        assert_eq!(
            errors("feeds:\n  f:\n    command: cat\n    file: /x\n"),
            "t.yaml:4:11: feeds.f.file: set either command or file, not both"
        );
        assert_eq!(
            errors("feeds:\n  f:\n"),
            "t.yaml:2:3: feeds.f: a feed needs a command or a file"
        );
        assert_eq!(
            errors("feeds:\n  f:\n    mode: 5\n"),
            "t.yaml:2:3: feeds.f: a feed needs a command or a file"
        );
    }

    #[test]
    fn streams_get_their_defaults() {
        let config = loaded("feeds:\n  f:\n    command: cat\nstreams:\n  s:\n    feed: f\n");
        let stream = &config.streams["s"];
        assert_eq!(stream.command, None);
        assert_eq!(stream.feeds, ["f"]);
        assert_eq!(
            (stream.kind, stream.client),
            (StreamKind::Stream, ClientMode::Shared)
        );
        assert_eq!(stream.mimetype, DEFAULT_MIMETYPE);
        assert_eq!((stream.url.as_deref(), stream.mode), (None, Mode::OnDemand));
        assert_eq!(config.logdir, None);
    }

    #[test]
    fn wrong_words_and_names_are_errors() {
        assert_eq!(
            errors("streams:\n  s:\n    command: cat\n    type: video\n    client: all\n"),
            "t.yaml:4:11: streams.s.type: expected stream or shot, not \"video\"\n\
             t.yaml:5:13: streams.s.client: expected shared or exclusive, not \"all\""
        );
        assert_eq!(
            errors("streams:\n  a/b:\n    command: cat\n"),
            "t.yaml:2:3: streams.a/b: a stream name cannot contain '/'"
        );
        assert_eq!(
            errors("streams:\n  s:\n    command: cat\n    mimetype: ''\n"),
            "t.yaml:4:15: streams.s.mimetype: expected a mime type such as video/mp2t, not nothing"
        );
    }

    #[test]
    fn status_paths_are_paths_or_false_and_clients_are_off_by_default() {
        let status = loaded("").status;
        assert_eq!(
            (status.page, status.api, status.metrics, status.clients),
            (
                Some("/stat".to_owned()),
                Some("/stat.json".to_owned()),
                Some("/metrics".to_owned()),
                false
            )
        );
        let status =
            loaded("status:\n  page: s/page\n  api: false\n  metrics: yes\n  clients: on\n").status;
        assert_eq!(
            (status.page, status.api, status.metrics, status.clients),
            (
                Some("/s/page".to_owned()),
                None,
                Some("/metrics".to_owned()),
                true
            )
        );
        assert_eq!(
            errors("status:\n  page: ''\n  api: 7\n  metrics: /a b\n  clients: /c\n"),
            "t.yaml:2:9: status.page: expected a path such as /stat, or false, not \"\"\n\
             t.yaml:3:8: status.api: expected a path such as /stat.json, or false, not 7\n\
             t.yaml:4:12: status.metrics: a url cannot contain ' '\n\
             t.yaml:5:12: status.clients: expected true or false, not \"/c\""
        );
    }

    #[test]
    fn pages_stat_false_turns_every_status_view_off() {
        let status = loaded("pages:\n  stat: no\nstatus:\n  api: off\n  clients: no\n").status;
        assert_eq!(
            (status.page, status.api, status.metrics),
            (None, None, None)
        );
        assert_eq!(loaded("pages:\n  stat: yes\n").status, Status::default());
        assert_eq!(
            errors("pages:\n  stat: false\nstatus:\n  page: /s\n  metrics: true\n"),
            "t.yaml:4:9: status.page: /s is on, but pages.stat: false turns the status page, \
             the status API and the metrics off (remove one of the two)\n\
             t.yaml:5:12: status.metrics: /metrics is on, but pages.stat: false turns the \
             status page, the status API and the metrics off (remove one of the two)"
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let config = loaded("logdir: logs\n");
        assert_eq!(config.logdir, Some(PathBuf::from("/etc/voyandz/logs")));
        assert_eq!(loaded("logdir: ''\n").logdir, None);
    }
}
