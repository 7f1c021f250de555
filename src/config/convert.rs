//! Raw structs → [`Config`]: each value parsed, defaults filled in, wrong values reported.
//!
//! Every key that was written is remembered with its location (in [`Report::spans`]) so that
//! `validate` can point at it too. A wrong value is reported at its key path and replaced by
//! its default, so that all wrong values are found in one pass; the config is then discarded.
//! Cross-checks between entries (does that feed exist?) are `validate`'s job.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::load::{DEFAULT_LISTEN_ADDR, DEFAULT_LISTEN_PORT, DEFAULT_MIMETYPE, DEFAULT_PAGES};
use super::problem::Report;
use super::raw::{RawConfig, RawFeed, RawStream, Scalar};
use super::{
    ClientMode, CommandLine, Config, FeedConfig, FeedInput, Mode, Pages, StreamConfig, StreamKind,
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
    let pages = Pages {
        home: field(report, "pages.home", pages.home, boolean).unwrap_or(DEFAULT_PAGES.home),
        stat: field(report, "pages.stat", pages.stat, boolean).unwrap_or(DEFAULT_PAGES.stat),
        config: field(report, "pages.config", pages.config, boolean)
            .unwrap_or(DEFAULT_PAGES.config),
    };
    let mut config = Config {
        path: path.to_path_buf(),
        listen_addr: field(report, "listenaddr", raw.listenaddr, address)
            .unwrap_or(DEFAULT_LISTEN_ADDR),
        listen_port: field(report, "listenport", raw.listenport, port)
            .unwrap_or(DEFAULT_LISTEN_PORT),
        logdir: logdir.flatten(),
        feeds: Default::default(),
        streams: Default::default(),
        pages,
    };
    for (name, body) in raw.feeds.map(|feeds| feeds.value.0).unwrap_or_default() {
        let key = entry_key(report, "feeds", &name);
        let body = body.map(|body| body.value).unwrap_or_default();
        if let Some(feed) = convert_feed(report, &key, name.value, body, base) {
            config.feeds.insert(feed.name.clone(), feed);
        }
    }
    for (name, body) in raw.streams.map(|s| s.value.0).unwrap_or_default() {
        let key = entry_key(report, "streams", &name);
        let body = body.map(|body| body.value).unwrap_or_default();
        if let Some(stream) = convert_stream(report, &key, name.value, body) {
            config.streams.insert(stream.name.clone(), stream);
        }
    }
    config
}

/// `feeds.NAME`, located at the name.
fn entry_key(report: &mut Report, section: &str, name: &Spanned<String>) -> String {
    let key = format!("{section}.{}", name.value);
    report.spans.mark(&key, &name.referenced);
    key
}

fn convert_feed(
    report: &mut Report,
    key: &str,
    name: String,
    raw: RawFeed,
    base: &Path,
) -> Option<FeedConfig> {
    let command_key = format!("{key}.command");
    let file_key = format!("{key}.file");
    let written = (raw.command.is_some(), raw.file.is_some());
    let command = field(report, &command_key, raw.command, command);
    let file = field(report, &file_key, raw.file, |text| {
        if text.is_empty() {
            return Err("expected a path, not nothing".to_owned());
        }
        Ok(base.join(text))
    });
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
        ((true, true), _, _) => {
            report.error(&file_key, "set either command or file, not both");
            return None;
        }
        ((false, false), _, _) => {
            report.error(key, "a feed needs a command or a file");
            return None;
        }
        (_, Some(command), _) => FeedInput::Command(command),
        (_, _, Some(file)) => FeedInput::File(file),
        // The value written was wrong and is reported already.
        _ => return None,
    };
    Some(FeedConfig {
        name,
        input,
        mode: mode.unwrap_or(Mode::OnDemand),
        feed,
        resurrect: !no_resurrect.unwrap_or(false),
    })
}

fn convert_stream(
    report: &mut Report,
    key: &str,
    name: String,
    raw: RawStream,
) -> Option<StreamConfig> {
    let sub = |field: &str| format!("{key}.{field}");
    if name.is_empty() {
        report.error(key, "a stream needs a name");
    } else if let Some(bad) = name.chars().find(|c| is_bad_in_url(*c) || *c == '/') {
        // Each stream is served at /stream/NAME: the name is one path segment.
        let bad = bad.escape_debug();
        report.error(key, format!("a stream name cannot contain '{bad}'"));
    }
    let stream = StreamConfig {
        command: field(report, &sub("command"), raw.command, command),
        kind: field(report, &sub("type"), raw.kind, |text| match text.as_str() {
            "stream" => Ok(StreamKind::Stream),
            "shot" => Ok(StreamKind::Shot),
            _ => Err(format!("expected stream or shot, not \"{text}\"")),
        })
        .unwrap_or(StreamKind::Stream),
        mimetype: field(report, &sub("mimetype"), raw.mimetype, |text| {
            match text.trim() {
                "" => Err("expected a mime type such as video/mp2t, not nothing".to_owned()),
                mimetype => Ok(mimetype.to_owned()),
            }
        })
        .unwrap_or_else(|| DEFAULT_MIMETYPE.to_owned()),
        feed: field(report, &sub("feed"), raw.feed, reference),
        client: field(report, &sub("client"), raw.client, |text| {
            match text.as_str() {
                "shared" => Ok(ClientMode::Shared),
                "exclusive" => Ok(ClientMode::Exclusive),
                _ => Err(format!("expected shared or exclusive, not \"{text}\"")),
            }
        })
        .unwrap_or(ClientMode::Shared),
        url: field(report, &sub("url"), raw.url, url).flatten(),
        mode: field(report, &sub("mode"), raw.mode, mode).unwrap_or(Mode::OnDemand),
        name,
    };
    Some(stream)
}

/// Characters that would make a URL path unreachable or ambiguous as written.
fn is_bad_in_url(c: char) -> bool {
    c.is_whitespace() || c.is_control() || c == '?' || c == '#'
}

fn address(text: String) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("expected an ip address such as 127.0.0.1 or ::, not \"{text}\""))
}

fn port(value: Scalar) -> Result<u16, String> {
    let number = match &value {
        Scalar::Int(n) => Some(*n),
        // Upstream took a quoted port too.
        Scalar::Str(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().ok()
        }
        _ => None,
    };
    number
        .and_then(|n| u16::try_from(n).ok())
        .filter(|port| *port > 0)
        .ok_or_else(|| format!("expected a port number from 1 to 65535, not {value}"))
}

fn boolean(value: Scalar) -> Result<bool, String> {
    match value {
        Scalar::Bool(b) => Ok(b),
        other => Err(format!("expected true or false, not {other}")),
    }
}

/// `on-demand`, `continuous`, `autostart` or a positive number of seconds.
fn mode(value: Scalar) -> Result<Mode, String> {
    const ACCEPTED: &str =
        "expected on-demand, continuous, autostart or a positive number of seconds";
    let seconds = match value {
        // Upstream lower-cased the word.
        Scalar::Str(word) => {
            return match word.to_ascii_lowercase().as_str() {
                "on-demand" => Ok(Mode::OnDemand),
                "continuous" | "autostart" => Ok(Mode::Continuous),
                _ => Err(format!("{ACCEPTED}, not \"{word}\"")),
            };
        }
        // Upstream read `mode: yes` as a timeout of 1 s (True == 1 in Python): say so.
        Scalar::Bool(b) => {
            return Err(format!(
                "{ACCEPTED}, not the boolean {b} (yes, no, on and off are booleans in YAML)"
            ));
        }
        Scalar::Int(n) if n > 0 => u64::try_from(n).ok().map(Duration::from_secs),
        Scalar::Float(x) if x > 0.0 => Duration::try_from_secs_f64(x).ok(),
        _ => None,
    };
    seconds
        .map(Mode::Timeout)
        .ok_or_else(|| format!("{ACCEPTED}, not {value}"))
}

/// A command line as written, and split as a POSIX shell would (no shell runs).
fn command(text: String) -> Result<CommandLine, String> {
    // Folded YAML (`>`) ends with a newline that is not part of the command.
    let text = text.trim_end().to_owned();
    match shlex::split(&text) {
        None => Err("unbalanced quote or trailing backslash in command".to_owned()),
        Some(argv) if argv.is_empty() => Err("empty command".to_owned()),
        Some(argv) => Ok(CommandLine { text, argv }),
    }
}

/// A feed's name in `feed:`; whether it exists is `validate`'s job.
fn reference(text: String) -> Result<String, String> {
    if text.is_empty() {
        Err("expected a feed name, not nothing".to_owned())
    } else {
        Ok(text)
    }
}

/// `url:` with exactly one leading `/`; empty means none, as upstream.
fn url(text: String) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = text.chars().find(|c| is_bad_in_url(*c)) {
        return Err(format!("a url cannot contain '{}'", bad.escape_debug()));
    }
    Ok(Some(format!("/{}", text.trim_start_matches('/'))))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::load::problems;
    use crate::config::{Loaded, load_str};

    fn load(yaml: &str) -> Config {
        let loaded = load_str(Path::new("/etc/voyandz/t.yaml"), yaml);
        loaded
            .map(|Loaded { config, .. }| config)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(yaml: &str) -> String {
        problems(yaml).expect_err("should not load").join("\n")
    }

    fn feed_mode(mode: &str) -> Result<Mode, String> {
        let yaml = format!(
            "feeds:\n  f:\n    command: cat\n    mode: {mode}\nstreams:\n  s:\n    feed: f\n"
        );
        match problems(&yaml) {
            Ok(_) => Ok(load(&yaml).feeds["f"].mode),
            Err(errors) => Err(errors.join("\n")),
        }
    }

    #[test]
    fn modes_are_words_or_positive_seconds() {
        assert_eq!(feed_mode("on-demand"), Ok(Mode::OnDemand));
        assert_eq!(feed_mode("continuous"), Ok(Mode::Continuous));
        assert_eq!(feed_mode("autostart"), Ok(Mode::Continuous));
        assert_eq!(feed_mode("Continuous"), Ok(Mode::Continuous));
        assert_eq!(feed_mode("10"), Ok(Mode::Timeout(Duration::from_secs(10))));
        assert_eq!(
            feed_mode("1.5"),
            Ok(Mode::Timeout(Duration::from_millis(1500)))
        );
        let accepted = "t.yaml:4:11: feeds.f.mode: expected on-demand, continuous, autostart \
                        or a positive number of seconds, not";
        assert_eq!(feed_mode("0"), Err(format!("{accepted} 0")));
        assert_eq!(feed_mode("-2.5"), Err(format!("{accepted} -2.5")));
        assert_eq!(feed_mode("'10'"), Err(format!("{accepted} \"10\"")));
        assert_eq!(
            feed_mode("sometimes"),
            Err(format!("{accepted} \"sometimes\""))
        );
        assert!(feed_mode("off").is_err_and(|e| e.contains("not the boolean false")));
    }

    #[test]
    fn commands_split_like_a_shell_and_keep_their_text() {
        let config =
            load("feeds:\n  f:\n    command: >\n      ffmpeg -x 'a b'\n        \"c\\\"d\"\n");
        let FeedInput::Command(command) = &config.feeds["f"].input else {
            panic!("a command feed");
        };
        assert_eq!(command.text, "ffmpeg -x 'a b'\n  \"c\\\"d\"");
        assert_eq!(command.argv, ["ffmpeg", "-x", "a b", "c\"d"]);
        assert_eq!(
            error("streams:\n  s:\n    command: ffmpeg -i 'x\n"),
            "t.yaml:3:14: streams.s.command: unbalanced quote or trailing backslash in command"
        );
        assert_eq!(
            error("feeds:\n  f:\n    command: '  '\n"),
            "t.yaml:3:14: feeds.f.command: empty command"
        );
    }

    #[test]
    fn a_feed_has_a_command_or_a_file() {
        let config = load(
            "feeds:\n  f:\n    file: in.ts\n    no-resurrect: true\n  g:\n    command: cat\n    feed: f\n",
        );
        let feed = &config.feeds["f"];
        assert_eq!(
            feed.input,
            FeedInput::File(PathBuf::from("/etc/voyandz/in.ts"))
        );
        assert!(!feed.resurrect && config.feeds["g"].resurrect);
        assert_eq!(
            error("feeds:\n  f:\n    command: cat\n    file: /x\n"),
            "t.yaml:4:11: feeds.f.file: set either command or file, not both"
        );
        assert_eq!(
            error("feeds:\n  f:\n"),
            "t.yaml:2:3: feeds.f: a feed needs a command or a file"
        );
        assert_eq!(
            error("feeds:\n  f:\n    mode: 5\n"),
            "t.yaml:2:3: feeds.f: a feed needs a command or a file"
        );
    }

    #[test]
    fn streams_get_their_defaults() {
        let config = load("feeds:\n  f:\n    command: cat\nstreams:\n  s:\n    feed: f\n");
        let stream = &config.streams["s"];
        assert_eq!(stream.command, None);
        assert_eq!(
            (stream.kind, stream.client),
            (StreamKind::Stream, ClientMode::Shared)
        );
        assert_eq!(stream.mimetype, DEFAULT_MIMETYPE);
        assert_eq!((stream.url.as_deref(), stream.mode), (None, Mode::OnDemand));
        assert_eq!(config.logdir, None);
    }

    #[test]
    fn urls_get_one_leading_slash_and_empty_means_none() {
        let url = |url: &str| {
            let yaml = format!("streams:\n  s:\n    command: cat\n    url: {url}\n");
            load(&yaml).streams["s"].url.clone()
        };
        assert_eq!(url("scary/vid").as_deref(), Some("/scary/vid"));
        assert_eq!(url("///funny/vid").as_deref(), Some("/funny/vid"));
        assert_eq!(url("''"), None);
        assert_eq!(
            error("streams:\n  s:\n    command: cat\n    url: '/a b'\n"),
            "t.yaml:4:10: streams.s.url: a url cannot contain ' '"
        );
    }

    #[test]
    fn wrong_words_and_names_are_errors() {
        assert_eq!(
            error("streams:\n  s:\n    command: cat\n    type: video\n    client: all\n"),
            "t.yaml:4:11: streams.s.type: expected stream or shot, not \"video\"\n\
             t.yaml:5:13: streams.s.client: expected shared or exclusive, not \"all\""
        );
        assert_eq!(
            error("streams:\n  a/b:\n    command: cat\n"),
            "t.yaml:2:3: streams.a/b: a stream name cannot contain '/'"
        );
        assert_eq!(
            error("streams:\n  s:\n    command: cat\n    mimetype: ''\n"),
            "t.yaml:4:15: streams.s.mimetype: expected a mime type such as video/mp2t, not nothing"
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let config = load("logdir: logs\n");
        assert_eq!(config.logdir, Some(PathBuf::from("/etc/voyandz/logs")));
        assert_eq!(load("logdir: ''\n").logdir, None);
    }
}
