//! Cross-checks of a converted config: what no single value shows on its own.
//!
//! Errors: a `feed:` naming no feed, a multi-feed stream whose command does not read each of
//! its feeds (or names one it does not list), feed cycles, two streams at one URL path, a `url` that is
//! a built-in page, a page (`/`, `/config`, the status paths) at a path already served, a
//! direct relay (no `command`) asked to run something, and a `mode` where
//! one process per request or per client leaves nothing to keep running. Warnings: paths that
//! do not exist on this machine (`logdir`, `file:` feeds, `/dev/...` words in commands), so that
//! `--check` works on a machine without the camera, and feeds that nothing uses.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::problem::Report;
use super::{
    CONFIG_PATH, ClientMode, CommandLine, Config, FeedInput, HOME_PATH, Mode, Page, StreamConfig,
    StreamKind,
};
use crate::screenshot;

/// URL paths of the fixed built-in pages. A stream's `url` may not take one even while the
/// page is off, so that turning a page on never hides a stream. The status paths can be
/// moved instead, so they are checked where they are ([`page_paths`]).
const RESERVED_PATHS: [&str; 2] = [HOME_PATH, CONFIG_PATH];

/// Adds every cross-check error and warning of `config` to `report`.
pub(crate) fn check(config: &Config, report: &mut Report) {
    feeds_exist(config, report);
    feed_cycles(config, report);
    stream_rules(config, report);
    urls(config, report);
    page_paths(config, report);
    paths_exist(config, report);
    unused_feeds(config, report);
}

fn feeds_exist(config: &Config, report: &mut Report) {
    let missing = |parent: &String| !config.feeds.contains_key(parent);
    for feed in config.feeds.values() {
        let Some(parent) = &feed.feed else { continue };
        let key = format!("feeds.{}.feed", feed.name);
        if missing(parent) {
            report.error(&key, format!("no feed named \"{parent}\""));
        } else if matches!(feed.input, FeedInput::File(_)) {
            report.error(&key, "a file feed has no stdin to take a feed");
        }
    }
    for stream in config.streams.values() {
        for (index, parent) in stream.feeds.iter().enumerate() {
            if missing(parent) {
                let key = feed_key(stream, index, report);
                report.error(&key, format!("no feed named \"{parent}\""));
            }
        }
    }
}

/// The key path of a stream's `index`th feed: `feed` or `feeds.N`, as written.
fn feed_key(stream: &StreamConfig, index: usize, report: &Report) -> String {
    let feeds = format!("streams.{}.feeds", stream.name);
    if report.spans.has(&feeds) {
        format!("{feeds}.{index}")
    } else {
        format!("streams.{}.feed", stream.name)
    }
}

/// A stream with several feeds: each must reach its command, once, where it names it.
fn feed_routes(stream: &StreamConfig, report: &mut Report) {
    let command_key = format!("streams.{}.command", stream.name);
    if stream.command.is_none() {
        if stream.feeds.len() > 1 {
            let message = "a stream without a command relays one feed: muxing several needs a \
                           command that reads them";
            report.error(&feed_key(stream, 1, report), message);
        }
        return;
    }
    if stream.kind == StreamKind::Shot && stream.feeds.len() > 1 {
        report.error(
            &feed_key(stream, 1, report),
            "a shot reads one feed, on its stdin",
        );
        return;
    }
    if stream.kind == StreamKind::Shot && !stream.named_feeds().is_empty() {
        let message = "a shot reads its feed on stdin: write - (or {input}) where it reads it";
        report.error(&command_key, message);
        return;
    }
    for named in stream.named_feeds() {
        if !stream.feeds.iter().any(|feed| feed == named) {
            let message = format!("the command reads feed {named}, which is not in its feeds");
            report.error(&command_key, message);
        }
    }
    let routed = stream.feed_routes();
    for (index, feed) in stream.feeds.iter().enumerate() {
        let key = feed_key(stream, index, report);
        if stream.feeds[..index].contains(feed) {
            report.error(&key, format!("feed {feed} is listed twice"));
        } else if !routed.iter().any(|(name, _)| name == feed) {
            let message = format!(
                "the command does not read feed {feed}: only the first feed goes to stdin, \
                 so put {{feed:{feed}}} (or {{feed-path:{feed}}}) where it reads it"
            );
            report.error(&key, message);
        }
    }
}

/// Reports each cycle once, at the `feed:` of its first feed in name order.
fn feed_cycles(config: &Config, report: &mut Report) {
    for start in config.feeds.keys() {
        let mut chain = vec![start.as_str()];
        let mut at = start;
        while let Some(next) = config.feeds.get(at).and_then(|feed| feed.feed.as_ref()) {
            if let Some(first) = chain.iter().position(|name| name == next) {
                let smallest = chain[first..].iter().all(|name| *name >= start.as_str());
                if first == 0 && smallest {
                    let cycle = format!("{} -> {start}", chain.join(" -> "));
                    report.error(
                        &format!("feeds.{start}.feed"),
                        format!("feed cycle: {cycle}"),
                    );
                }
                break;
            }
            chain.push(next);
            at = next;
        }
    }
}

fn stream_rules(config: &Config, report: &mut Report) {
    for stream in config.streams.values() {
        let key = |field: &str| format!("streams.{}.{field}", stream.name);
        let on_demand = stream.mode == Mode::OnDemand;
        feed_routes(stream, report);
        if stream.command.is_none() {
            if stream.feeds.is_empty() {
                report.error(
                    &format!("streams.{}", stream.name),
                    "a stream without a command relays its feed, so it needs feed",
                );
            }
            if stream.kind == StreamKind::Shot {
                report.error(
                    &key("type"),
                    "a shot needs a command: a direct relay runs nothing",
                );
            }
            if stream.client == ClientMode::Exclusive {
                let message = "client: exclusive needs a command: a direct relay runs nothing";
                report.error(&key("client"), message);
            }
            if !on_demand {
                let message = "a direct relay runs nothing, so mode must be on-demand \
                               (set the mode of its feed instead)";
                report.error(&key("mode"), message);
            }
        } else if stream.kind == StreamKind::Shot && !on_demand {
            let message = "a shot runs once per request, so mode must be on-demand";
            report.error(&key("mode"), message);
        } else if stream.client == ClientMode::Exclusive && !on_demand {
            let message =
                "client: exclusive runs one process per client, so mode must be on-demand";
            report.error(&key("mode"), message);
        }
    }
}

/// Each stream is served at `/stream/NAME` and at its `url`: no two may share a path.
fn urls(config: &Config, report: &mut Report) {
    let mut served: HashMap<String, &str> = HashMap::new();
    for stream in config.streams.values() {
        if let Some(path) = Config::stream_paths(stream).next() {
            served.insert(path, &stream.name);
        }
    }
    for stream in config.streams.values() {
        let Some(url) = &stream.url else { continue };
        let key = format!("streams.{}.url", stream.name);
        warn_percent(url, &key, report);
        if RESERVED_PATHS.contains(&url.as_str()) {
            report.error(&key, format!("{url} is the path of a built-in page"));
            continue;
        }
        match served.get(url) {
            // `url: /stream/NAME` on stream NAME only says it twice.
            Some(other) if *other == stream.name => {}
            Some(other) => {
                report.error(
                    &key,
                    format!("{url} is already served by stream \"{other}\""),
                );
            }
            None => {
                served.insert(url.clone(), &stream.name);
            }
        }
    }
}

/// Requests are matched once percent-decoded, as every browser and player encodes: a `%`
/// written in a path is almost surely an encoded character meant as itself.
fn warn_percent(path: &str, key: &str, report: &mut Report) {
    if path.contains('%') {
        let message = format!(
            "{path} is matched against decoded request paths: write the characters \
             themselves (a '%' is reached only as %25)"
        );
        report.warn(key, message);
    }
}

/// Each page that is on needs a path of its own: not a stream's, not another page's. A clash
/// is reported at the key that was written: the status path when the file sets it, else the
/// stream's `url` that took the status path's default.
fn page_paths(config: &Config, report: &mut Report) {
    let mut taken: Vec<(Page, &str)> = Vec::new();
    for (page, path) in config.pages() {
        let key = page.key();
        if let Some((other, _)) = taken.iter().find(|(_, other)| *other == path) {
            let message = format!(
                "{path} is already served by {} ({})",
                other.title(),
                other.key()
            );
            report.error(key, message);
            continue;
        }
        taken.push((page, path));
        // Streams never take `/` or `/config` (`urls` reports that): only status paths move.
        if matches!(page, Page::Home | Page::Config) {
            continue;
        }
        let written = report.spans.has(key);
        if written {
            warn_percent(path, key, report);
        }
        for stream in config.streams.values() {
            let picture = screenshot::split_picture_path(path)
                .map(|(base, _)| base)
                .filter(|_| stream.kind == StreamKind::Stream);
            let Some(served) = Config::stream_paths(stream)
                .find(|served| served == path || picture == Some(served.as_str()))
            else {
                continue;
            };
            let name = &stream.name;
            let what = if served == path {
                "already served by"
            } else {
                "the picture path of"
            };
            if written || stream.url.as_deref() != Some(path) {
                report.error(key, format!("{path} is {what} stream \"{name}\""));
            } else {
                let message = format!(
                    "{path} is the path of {} ({key}): set another path there, or false",
                    page.title()
                );
                report.error(&format!("streams.{name}.url"), message);
            }
        }
    }
    let status = &config.status;
    if status.clients && status.page.is_none() && status.api.is_none() {
        let message = "the status page and the status API are off, so no clients list is shown";
        report.warn("status.clients", message);
    }
}

fn paths_exist(config: &Config, report: &mut Report) {
    if let Some(logdir) = &config.logdir {
        if !logdir.exists() {
            let message = format!("{} does not exist; it will be created", logdir.display());
            report.warn("logdir", message);
        } else if !logdir.is_dir() {
            report.error("logdir", format!("{} is not a directory", logdir.display()));
        }
    }
    for feed in config.feeds.values() {
        let key = format!("feeds.{}", feed.name);
        match &feed.input {
            FeedInput::File(path) if !path.exists() => {
                let message = format!("{} does not exist", path.display());
                report.warn(&format!("{key}.file"), message);
            }
            FeedInput::File(path) if path.is_dir() => {
                let message = format!("{} is a directory", path.display());
                report.error(&format!("{key}.file"), message);
            }
            FeedInput::File(_) => {}
            FeedInput::Command(command) => {
                devices_exist(command, &format!("{key}.command"), report)
            }
        }
    }
    for stream in config.streams.values() {
        if let Some(command) = &stream.command {
            let key = format!("streams.{}.command", stream.name);
            devices_exist(command, &key, report);
        }
    }
}

/// Warns about each `/dev/...` word of `command` that is not on this machine.
fn devices_exist(command: &CommandLine, key: &str, report: &mut Report) {
    let devices: BTreeSet<&str> = command
        .argv
        .iter()
        .map(String::as_str)
        .filter(|word| word.starts_with("/dev/"))
        .collect();
    for device in devices {
        if !Path::new(device).exists() {
            report.warn(key, format!("device {device} does not exist"));
        }
    }
}

/// An on-demand feed that no stream or feed uses never runs: probably a typo elsewhere.
fn unused_feeds(config: &Config, report: &mut Report) {
    let used: BTreeSet<&String> = (config.feeds.values().filter_map(|feed| feed.feed.as_ref()))
        .chain(config.streams.values().flat_map(|stream| &stream.feeds))
        .collect();
    for feed in config.feeds.values() {
        if feed.mode != Mode::Continuous && !used.contains(&feed.name) {
            let message = "no stream or feed uses this feed, so it never runs";
            report.warn(&format!("feeds.{}", feed.name), message);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load::problems;

    fn errors(yaml: &str) -> Vec<String> {
        problems(yaml).expect_err("should not load")
    }

    fn warnings(yaml: &str) -> Vec<String> {
        problems(yaml).unwrap_or_else(|errors| panic!("{}", errors.join("\n")))
    }

    #[test]
    fn each_feed_of_a_multi_feed_stream_must_reach_its_command() {
        let feeds = "feeds:\n  a:\n    command: cat\n  b:\n    command: cat\n";
        let stream = |body: &str| format!("{feeds}streams:\n  s:\n{body}");
        assert_eq!(
            errors(&stream("    feeds: [a, b]\n    command: mux -\n")),
            [
                "t.yaml:8:16: streams.s.feeds.1: the command does not read feed b: only the first \
              feed goes to stdin, so put {feed:b} (or {feed-path:b}) where it reads it"
            ]
        );
        assert_eq!(
            errors(&stream(
                "    feeds: [a]\n    command: mux {feed:a} {feed:c}\n"
            )),
            ["t.yaml:9:14: streams.s.command: the command reads feed c, which is not in its feeds"]
        );
        assert_eq!(
            errors(&stream(
                "    feeds: [a, b, a]\n    command: mux {feed:b} -\n"
            )),
            ["t.yaml:8:19: streams.s.feeds.2: feed a is listed twice"]
        );
        assert_eq!(
            errors(&stream("    feeds: [a, b]\n")),
            [
                "t.yaml:8:16: streams.s.feeds.1: a stream without a command relays one feed: \
              muxing several needs a command that reads them"
            ]
        );
        assert_eq!(
            errors(&stream(
                "    type: shot\n    feed: a\n    command: grab {feed:a}\n"
            )),
            [
                "t.yaml:10:14: streams.s.command: a shot reads its feed on stdin: write - (or \
              {input}) where it reads it"
            ]
        );
        assert_eq!(
            errors(&stream("    feed: a\n    feeds: [b]\n    command: x\n")),
            ["t.yaml:9:12: streams.s.feeds: set either feed or feeds, not both"]
        );
        warnings(&stream("    feeds: [a, b]\n    command: mux {feed:b} -\n"));
    }

    #[test]
    fn a_feed_must_exist() {
        let yaml = "feeds:\n  a:\n    command: cat\n    feed: nope\n\
                    streams:\n  s:\n    feed: a\n  t:\n    command: cat\n    feed: b\n";
        assert_eq!(
            errors(yaml),
            [
                "t.yaml:4:11: feeds.a.feed: no feed named \"nope\"",
                "t.yaml:10:11: streams.t.feed: no feed named \"b\"",
            ]
        );
        let yaml = "feeds:\n  a:\n    command: cat\n  f:\n    file: /dev/null\n    feed: a\n";
        assert_eq!(
            errors(yaml),
            ["t.yaml:6:11: feeds.f.feed: a file feed has no stdin to take a feed"]
        );
    }

    #[test]
    fn feed_cycles_are_errors_once_each() {
        let yaml = "feeds:\n  b:\n    command: cat\n    feed: a\n  a:\n    command: cat\n    feed: b\n\
                    \x20 c:\n    command: cat\n    feed: a\n  d:\n    command: cat\n    feed: d\n";
        assert_eq!(
            errors(yaml),
            [
                "t.yaml:7:11: feeds.a.feed: feed cycle: a -> b -> a",
                "t.yaml:13:11: feeds.d.feed: feed cycle: d -> d",
            ]
        );
    }

    #[test]
    fn two_streams_cannot_share_a_path() {
        let yaml = "streams:\n  a:\n    command: cat\n    url: /live\n  b:\n    command: cat\n    url: live\n\
                    \x20 c:\n    command: cat\n    url: /stream/a\n  d:\n    command: cat\n    url: /stream/d\n";
        assert_eq!(
            errors(yaml),
            [
                "t.yaml:7:10: streams.b.url: /live is already served by stream \"a\"",
                "t.yaml:10:10: streams.c.url: /stream/a is already served by stream \"a\"",
            ]
        );
    }

    #[test]
    fn a_url_cannot_be_a_built_in_page() {
        for (url, path) in [("/", "/"), ("//config", "/config")] {
            let yaml =
                format!("pages:\n  home: no\nstreams:\n  s:\n    command: cat\n    url: {url}\n");
            assert_eq!(
                errors(&yaml),
                [format!(
                    "t.yaml:6:10: streams.s.url: {path} is the path of a built-in page"
                )]
            );
        }
        for (url, page) in [
            ("stat", "the status page (status.page)"),
            ("/stat.json", "the status API (status.api)"),
            ("metrics", "the metrics (status.metrics)"),
        ] {
            let yaml = format!("streams:\n  s:\n    command: cat\n    url: {url}\n");
            let path = format!("/{}", url.trim_start_matches('/'));
            let key = page.split(['(', ')']).nth(1).expect("a key");
            assert_eq!(
                errors(&yaml),
                [format!(
                    "t.yaml:4:10: streams.s.url: {path} is the path of {page}: set another \
                     path there, or false"
                )]
            );
            // Moved or off, the status path is free for a stream.
            for moved in ["/elsewhere", "false"] {
                let field = key.trim_start_matches("status.");
                let yaml = format!("{yaml}status:\n  {field}: {moved}\n");
                assert_eq!(warnings(&yaml), Vec::<String>::new(), "{yaml}");
            }
        }
    }

    #[test]
    fn status_paths_cannot_take_a_path_already_served() {
        let yaml = "streams:\n  cam:\n    command: cat\n    url: /live\n  shot:\n    command: cat\n\
                    \x20   type: shot\nstatus:\n  page: /live\n  api: /stream/cam\n  metrics: /live\n";
        assert_eq!(
            errors(yaml),
            [
                "t.yaml:9:9: status.page: /live is already served by stream \"cam\"",
                "t.yaml:10:8: status.api: /stream/cam is already served by stream \"cam\"",
                "t.yaml:11:12: status.metrics: /live is already served by the status page \
                 (status.page)",
            ]
        );
        let yaml = "streams:\n  cam:\n    command: cat\n  shot:\n    command: cat\n    type: shot\n\
                    status:\n  page: /stream/cam/pic.png\n  api: /stream/shot/pic\n  metrics: /\n";
        assert_eq!(
            errors(yaml),
            [
                "t.yaml:8:9: status.page: /stream/cam/pic.png is the picture path of stream \"cam\"",
                "t.yaml:10:12: status.metrics: / is already served by the home page (pages.home)",
            ]
        );
        let yaml = "pages:\n  home: no\nstatus:\n  page: /\n  api: /config\n";
        assert_eq!(
            warnings(yaml),
            Vec::<String>::new(),
            "pages that are off free their paths"
        );
        let yaml = "pages:\n  config: yes\nstatus:\n  api: /config\n";
        assert_eq!(
            errors(yaml),
            ["t.yaml:4:8: status.api: /config is already served by the config page (pages.config)"]
        );
    }

    #[test]
    fn a_percent_in_a_status_path_or_a_clients_list_shown_nowhere_is_a_warning() {
        let yaml = "status:\n  page: /a%20b\n  api: false\n  clients: yes\n";
        assert_eq!(
            warnings(yaml),
            [
                "t.yaml:2:9: status.page: /a%20b is matched against decoded request paths: write \
              the characters themselves (a '%' is reached only as %25)"
            ]
        );
        let yaml = "status:\n  page: off\n  api: no\n  clients: yes\n";
        assert_eq!(
            warnings(yaml),
            [
                "t.yaml:4:12: status.clients: the status page and the status API are off, so no \
              clients list is shown"
            ]
        );
    }

    #[test]
    fn a_direct_relay_runs_nothing() {
        let yaml = "feeds:\n  f:\n    command: cat\nstreams:\n  r:\n    type: shot\n    client: exclusive\n\
                    \x20   mode: 5\n    feed: f\n  n:\n    mimetype: video/mp2t\n";
        assert_eq!(
            errors(yaml),
            [
                "t.yaml:10:3: streams.n: a stream without a command relays its feed, so it needs feed",
                "t.yaml:6:11: streams.r.type: a shot needs a command: a direct relay runs nothing",
                "t.yaml:7:13: streams.r.client: client: exclusive needs a command: a direct relay \
                 runs nothing",
                "t.yaml:8:11: streams.r.mode: a direct relay runs nothing, so mode must be \
                 on-demand (set the mode of its feed instead)",
            ]
        );
    }

    #[test]
    fn shots_and_exclusive_streams_run_on_demand() {
        let fine = "streams:\n  s:\n    command: cat\n    type: shot\n    client: exclusive\n";
        assert_eq!(warnings(fine), Vec::<String>::new());
        let yaml = "streams:\n  s:\n    command: cat\n    type: shot\n    mode: continuous\n\
                    \x20 x:\n    command: cat\n    client: exclusive\n    mode: 3\n";
        assert_eq!(
            errors(yaml),
            [
                "t.yaml:5:11: streams.s.mode: a shot runs once per request, so mode must be on-demand",
                "t.yaml:9:11: streams.x.mode: client: exclusive runs one process per client, so \
                 mode must be on-demand",
            ]
        );
    }

    #[test]
    fn missing_paths_and_unused_feeds_are_warnings() {
        let yaml = "logdir: /nonexistent/voyandz/log\nfeeds:\n  f:\n    file: /nonexistent/in.ts\n\
                    \x20 g:\n    command: ffmpeg -i /dev/voyandz-no-such-camera -i /dev/null -\n\
                    streams:\n  s:\n    feed: f\n    command: cat /dev/voyandz-no-such-camera\n";
        assert_eq!(
            warnings(yaml),
            [
                "t.yaml:1:9: logdir: /nonexistent/voyandz/log does not exist; it will be created",
                "t.yaml:4:11: feeds.f.file: /nonexistent/in.ts does not exist",
                "t.yaml:6:14: feeds.g.command: device /dev/voyandz-no-such-camera does not exist",
                "t.yaml:10:14: streams.s.command: device /dev/voyandz-no-such-camera does not exist",
                "t.yaml:5:3: feeds.g: no stream or feed uses this feed, so it never runs",
            ]
        );
        assert_eq!(
            errors("logdir: /dev/null\n"),
            ["t.yaml:1:9: logdir: /dev/null is not a directory"]
        );
    }

    #[test]
    fn a_percent_in_a_url_is_a_warning() {
        let yaml = "streams:\n  s:\n    command: cat\n    url: /a%20b\n";
        assert_eq!(
            warnings(yaml),
            [
                "t.yaml:4:10: streams.s.url: /a%20b is matched against decoded request paths: \
                 write the characters themselves (a '%' is reached only as %25)"
            ]
        );
    }
}
