//! Cross-checks of a converted config: what no single value shows on its own.
//!
//! Errors: a `feed:` naming no feed, feed cycles, two streams at one URL path, a `url` that is
//! a built-in page, a direct relay (no `command`) asked to run something, and a `mode` where
//! one process per request or per client leaves nothing to keep running. Warnings: paths that
//! do not exist on this machine (`logdir`, `file:` feeds, `/dev/...` words in commands), so that
//! `--check` works on a machine without the camera, and feeds that nothing uses.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::problem::Report;
use super::{ClientMode, CommandLine, Config, FeedInput, Mode, StreamKind};

/// URL paths of the built-in pages. A stream's `url` may not take one even while the page is
/// off, so that turning a page on never hides a stream.
pub const RESERVED_PATHS: [&str; 4] = ["/", "/stat", "/stat.json", "/config"];

/// Adds every cross-check error and warning of `config` to `report`.
pub(crate) fn check(config: &Config, report: &mut Report) {
    feeds_exist(config, report);
    feed_cycles(config, report);
    stream_rules(config, report);
    urls(config, report);
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
        match &stream.feed {
            Some(parent) if missing(parent) => {
                let key = format!("streams.{}.feed", stream.name);
                report.error(&key, format!("no feed named \"{parent}\""));
            }
            _ => {}
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
        if stream.command.is_none() {
            if stream.feed.is_none() {
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
        .chain(config.streams.values().filter_map(|s| s.feed.as_ref()))
        .collect();
    for feed in config.feeds.values() {
        if feed.mode != Mode::Continuous && !used.contains(&feed.name) {
            let message = "no stream or feed uses this feed, so it never runs";
            report.warn(&format!("feeds.{}", feed.name), message);
        }
    }
}

#[cfg(test)]
mod tests {}
