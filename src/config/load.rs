//! Reads a config file: YAML text → raw structs with locations → [`Config`] → cross-checks.
//!
//! Unknown keys and wrong values are all reported at once, each with file, line, column and key
//! path (`raw::unknown_keys`, and the `convert` and `validate` modules find them). A file that
//! is not YAML of the right shape (a syntax error, a list where a mapping belongs) stops at the
//! first such problem, which serde-saphyr locates and `raw::key_at` names; the unknown keys
//! before it are reported with it. This module does not expand templates nor start anything.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use serde_saphyr::{DefaultMessageFormatter, Error as YamlError, MessageFormatter};

use super::convert::convert;
use super::problem::Report;
use super::raw::{self, RawConfig};
use super::{Config, ConfigError, Pages, Problem, validate};

/// `listenaddr` when not set: loopback only, as upstream.
pub const DEFAULT_LISTEN_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// `listenport` when not set, as upstream.
pub const DEFAULT_LISTEN_PORT: u16 = 8090;
/// `mimetype` of a stream when not set: says nothing about the bytes.
pub const DEFAULT_MIMETYPE: &str = "application/octet-stream";
/// `pages` when not set: home on, config off (it shows every command).
pub const DEFAULT_PAGES: Pages = Pages {
    home: true,
    config: false,
};
/// `status.page` when not set: the spec's path.
pub const DEFAULT_STATUS_PAGE: &str = "/stat";
/// `status.api` when not set: the spec's path.
pub const DEFAULT_STATUS_API: &str = "/stat.json";
/// `status.metrics` when not set: where Prometheus scrapes by default.
pub const DEFAULT_METRICS: &str = "/metrics";

/// A config that loaded, and what is worth a warning in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// Problems that do not stop the server (a device or a logdir missing on this machine).
    pub warnings: Vec<Problem>,
}

/// Reads, converts and validates the config file at `path`.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(path, &text)
}

/// Converts and validates `text` as if read from `path` (for messages and relative paths), so
/// that reload can read the file once, compare it and then parse it.
pub fn load_str(path: &Path, text: &str) -> Result<Loaded, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let mut report = Report::new(path);
    for key in raw::unknown_keys(text) {
        report.errors.push(unknown_key_problem(path, key));
    }
    // An empty file (or one with only comments, as upstream's `minimal`) is an empty config.
    let raw: Option<RawConfig> = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(error) => {
            report.errors.push(yaml_problem(path, text, &error));
            return Err(invalid(report.errors));
        }
    };
    let config = convert(path, raw.unwrap_or_default(), &mut report);
    // Wrong values were replaced by defaults or stand-ins, so this reports other problems
    // rather than the consequences of those.
    validate::check(&config, &mut report);
    if report.errors.is_empty() {
        Ok(Loaded {
            config,
            warnings: report.warnings,
        })
    } else {
        Err(invalid(report.errors))
    }
}

/// A problem serde-saphyr found, with the key path it is about.
fn yaml_problem(path: &Path, text: &str, error: &YamlError) -> Problem {
    let error = error.without_snippet();
    let location = error.location().filter(|at| at.line() > 0);
    let key = location.and_then(|at| raw::key_at(text, at.line(), at.column()));
    // An error met through an alias (`*name`) is located at the alias; say what it is.
    let error = match error {
        YamlError::AliasError { error, .. } => error.without_snippet(),
        error => error,
    };
    let message = match error {
        YamlError::Unexpected { expected, .. } if expected.contains("mapping") => {
            "expected a mapping (indented `key: value` lines)".to_owned()
        }
        YamlError::DuplicateMappingKey { key: Some(key), .. } => format!("duplicate key `{key}`"),
        YamlError::NonFiniteFloat { value, .. } => format!("expected a finite number, not {value}"),
        other => DefaultMessageFormatter.format_message(other).into_owned(),
    };
    Problem {
        file: path.to_path_buf(),
        line: location.and_then(|at| usize::try_from(at.line()).ok()),
        column: location.and_then(|at| usize::try_from(at.column()).ok()),
        key: key.unwrap_or_default(),
        message: one_line(&message),
        via: Vec::new(),
    }
}

/// A key the file's shape has no place for, with the keys accepted there.
fn unknown_key_problem(path: &Path, key: raw::UnknownKey) -> Problem {
    Problem {
        file: path.to_path_buf(),
        line: usize::try_from(key.at.0).ok(),
        column: usize::try_from(key.at.1).ok(),
        message: one_line(&unknown_key_message(&key)),
        key: key.path,
        via: Vec::new(),
    }
}

fn unknown_key_message(key: &raw::UnknownKey) -> String {
    if key.name == "sets" && key.path.starts_with("sets.") {
        return "sets cannot be nested: list every combination as an item of one set".to_owned();
    }
    format!(
        "unknown key `{}`, expected one of: {}",
        key.name,
        key.expected.join(", ")
    )
}

/// `text` with control characters escaped: it may quote the file, and a problem is one line.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// Loads `yaml` as `t.yaml`; the errors, or the warnings if it loaded, as displayed.
#[cfg(test)]
pub(crate) fn problems(yaml: &str) -> Result<Vec<String>, Vec<String>> {
    let shown = |problems: Vec<Problem>| problems.iter().map(Problem::to_string).collect();
    match load_str(Path::new("t.yaml"), yaml) {
        Ok(loaded) => Ok(shown(loaded.warnings)),
        Err(ConfigError::Invalid { problems, .. }) => Err(shown(problems)),
        Err(error) => Err(vec![error.to_string()]),
    }
}

/// Loads `yaml` as `/etc/voyandz/t.yaml` and returns the config; panics with the problems.
#[cfg(test)]
pub(crate) fn loaded(yaml: &str) -> Config {
    load_str(Path::new("/etc/voyandz/t.yaml"), yaml)
        .map(|Loaded { config, .. }| config)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The problems of a config that must not load, one per line.
#[cfg(test)]
pub(crate) fn errors(yaml: &str) -> String {
    problems(yaml).expect_err("should not load").join("\n")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::{FeedInput, Mode};

    /// The 14 example configs of upstream voyandz 0.3.1, unchanged.
    const UPSTREAM: [&str; 14] = [
        "4x4",
        "4x4_only",
        "4x4_with_audio",
        "camera_to_mpjpeg",
        "camera_to_mpjpeg_with_feed_continuous",
        "camera_to_mpjpeg_with_feed_ondemand",
        "camera_to_mpjpeg_with_feed_timeout",
        "custom_url",
        "feed_autostart",
        "feed_chain",
        "full_stack",
        "minimal",
        "zerolatency_libx264_camera",
        "zerolatency_nvenc_camera",
    ];

    pub(crate) fn upstream(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/upstream")
            .join(name)
    }

    fn error(yaml: &str) -> String {
        problems(yaml).expect_err("should not load").join("\n")
    }

    #[test]
    fn every_upstream_config_loads() {
        for name in UPSTREAM {
            let loaded = load_file(&upstream(name));
            assert!(loaded.is_ok(), "{name}: {}", loaded.unwrap_err());
        }
    }

    #[test]
    fn upstream_values_come_through() {
        let chain = load_file(&upstream("feed_chain")).expect("loads").config;
        assert_eq!(
            chain.feeds["vidfeed_source"].mode,
            Mode::Timeout(Duration::from_secs(5))
        );
        assert_eq!(chain.feeds["vidfeed_continuous"].mode, Mode::Continuous);
        assert_eq!(
            chain.feeds["vidfeed_ondemand"].feed.as_deref(),
            Some("vidfeed_source")
        );
        let autostart = load_file(&upstream("feed_autostart"))
            .expect("loads")
            .config;
        assert_eq!(autostart.feeds["vidfeed_source"].mode, Mode::Continuous);
        assert_eq!(autostart.logdir, Some(PathBuf::from("/var/log/voyandz")));
        let urls = load_file(&upstream("custom_url")).expect("loads").config;
        assert_eq!(urls.streams["vid1"].url.as_deref(), Some("/scary/vid"));
        let any = load_file(&upstream("camera_to_mpjpeg_with_feed_continuous")).expect("loads");
        assert_eq!(any.config.listen_addr, "0.0.0.0");
        assert!(any.config.streams["camera_pic"].command.is_some());
    }

    #[test]
    fn folded_commands_keep_their_text_and_split_into_words() {
        let config = load_file(&upstream("4x4")).expect("loads").config;
        let command = config.streams["4x4"]
            .command
            .clone()
            .expect("has a command");
        assert!(
            command.text.starts_with("ffmpeg -an -r 4 "),
            "{}",
            command.text
        );
        assert!(!command.text.ends_with('\n'));
        let filter = command
            .argv
            .iter()
            .position(|w| w == "-filter_complex")
            .expect("word");
        let graph = &command.argv[filter + 1];
        assert!(
            graph.starts_with("nullsrc=size=704x576 [base]; [base][0:v] overlay"),
            "{graph}"
        );
        assert_eq!(command.argv.last().map(String::as_str), Some("-"));
        let FeedInput::Command(feed) = &config.feeds["vid1"].input else {
            panic!("vid1 is a command feed");
        };
        assert_eq!(
            feed.text,
            "ffmpeg -re -stream_loop -1 -i /opt/vid/vid1.ts -f mjpeg -qmin 1 -qmax 6 -"
        );
    }

    #[test]
    fn an_empty_or_comment_only_file_is_the_default_config() {
        let minimal = load_file(&upstream("minimal")).expect("loads");
        assert!(minimal.warnings.is_empty());
        let config = minimal.config;
        assert_eq!(
            (config.listen_ips, config.listen_port),
            (vec![DEFAULT_LISTEN_ADDR], 8090)
        );
        assert_eq!(
            config.pages,
            Pages {
                home: true,
                config: false
            }
        );
        assert_eq!(config.status, crate::config::Status::default());
        assert!(config.feeds.is_empty() && config.streams.is_empty() && config.logdir.is_none());
        assert_eq!(
            load_str(Path::new("x"), "")
                .map(|l| l.config.listen_port)
                .ok(),
            Some(8090)
        );
        assert_eq!(problems("---\n# nothing\n"), Ok(vec![]));
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let error = load_file(Path::new("/nonexistent/voyandz.ini")).expect_err("missing");
        assert!(matches!(error, ConfigError::Read { .. }));
        assert!(
            error
                .to_string()
                .starts_with("cannot read config /nonexistent/voyandz.ini: "),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_at_its_key_path() {
        assert_eq!(
            error("feeds:\n  cam0:\n    comand: cat\n"),
            "t.yaml:3:5: feeds.cam0.comand: unknown key `comand`, \
             expected one of: command, file, mode, feed, no-resurrect, template, args, values\n\
             t.yaml:2:3: feeds.cam0: a feed needs a command or a file"
        );
        assert_eq!(
            error("listenport: 1\nlistenadr: '::'\n"),
            "t.yaml:2:1: listenadr: unknown key `listenadr`, \
             expected one of: listenaddr, listenport, logdir, feeds, streams, pages, status, \
             templates, sets"
        );
    }

    #[test]
    fn a_wrong_listenport_names_listenport() {
        assert_eq!(
            error("listenport: 99999\n"),
            "t.yaml:1:13: listenport: expected a port number from 1 to 65535, not 99999"
        );
        assert_eq!(
            error("listenport: abc\n"),
            "t.yaml:1:13: listenport: expected a port number from 1 to 65535, not \"abc\""
        );
        assert_eq!(
            error("listenport: [80]\n"),
            "t.yaml:1:1: listenport: invalid type: sequence, expected a single value"
        );
        assert_eq!(problems("listenport: '8091'\n"), Ok(vec![]));
    }

    #[test]
    fn a_boolean_mode_is_an_error_that_says_what_is_accepted() {
        assert_eq!(
            error("feeds:\n  cam0:\n    command: cat\n    mode: yes\n"),
            "t.yaml:4:11: feeds.cam0.mode: expected on-demand, continuous, autostart or a \
             positive number of seconds, not the boolean true (yes, no, on and off are \
             booleans in YAML)"
        );
    }

    #[test]
    fn shape_errors_name_their_key() {
        assert_eq!(
            error("feeds:\n  cam0: cat\n"),
            "t.yaml:2:9: feeds.cam0: expected a mapping (indented `key: value` lines)"
        );
        assert_eq!(
            error("streams:\n  a:\n    mimetype: x\n  a:\n    mimetype: y\n"),
            "t.yaml:4:3: streams.a: duplicate key `a`"
        );
        assert_eq!(
            error("feeds:\n  a: &f\n    command: cat\n    no-resurrect: true\nstreams:\n  s: *f\n"),
            "t.yaml:6:6: streams.s.no-resurrect: unknown key `no-resurrect`, \
             expected one of: command, type, mimetype, feed, feeds, client, url, mode, decoder, \
             template, args, values"
        );
        assert_eq!(
            error("streams:\n  s:\n    command: cat\n    mode: .inf\n"),
            "t.yaml:4:11: streams.s.mode: expected a finite number, not .inf"
        );
        let syntax = error("listenport: 5\n  bad: indent\n");
        assert!(syntax.starts_with("t.yaml:2:6: listenport: "), "{syntax}");
    }

    #[test]
    fn all_wrong_values_are_reported_at_once() {
        let yaml = "listenaddr: ''\nlistenport: 0\npages:\n  stat: maybe\n";
        assert_eq!(
            problems(yaml).expect_err("invalid"),
            [
                "t.yaml:4:9: pages.stat: expected true or false, not \"maybe\"",
                "t.yaml:1:13: listenaddr: expected an ip address or a host name such as \
                 127.0.0.1, :: or localhost, not nothing",
                "t.yaml:2:13: listenport: expected a port number from 1 to 65535, not 0",
            ]
        );
    }

    #[test]
    fn wrong_values_are_reported_with_cross_check_errors_but_not_their_consequences() {
        let yaml = "feeds:\n  cam0:\n    command: 'a \"b'\n  f2:\n    file: ''\n\
                    streams:\n  s:\n    command: \"x '\"\n    client: exclusive\n\
                    \x20 r:\n    feed: cam0\n  q:\n    feed: f2\n    url: /stat\n";
        assert_eq!(
            problems(yaml).expect_err("invalid"),
            [
                "t.yaml:3:14: feeds.cam0.command: unbalanced quote or trailing backslash in command",
                "t.yaml:5:11: feeds.f2.file: expected a path, not nothing",
                "t.yaml:8:14: streams.s.command: unbalanced quote or trailing backslash in command",
                "t.yaml:14:10: streams.q.url: /stat is the path of the status page (status.page): set \
                 another path there, or false",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_reported_with_every_other_problem() {
        let yaml = "feeds:\n  cam0:\n    comand: cat\n    command: cat\n    mode: yes\n\
                    streams:\n  s:\n    feed: nope\n    type: bogus\n    command: cat\n";
        assert_eq!(
            problems(yaml).expect_err("invalid"),
            [
                "t.yaml:3:5: feeds.cam0.comand: unknown key `comand`, \
                 expected one of: command, file, mode, feed, no-resurrect, template, args, values",
                "t.yaml:5:11: feeds.cam0.mode: expected on-demand, continuous, autostart or a \
                 positive number of seconds, not the boolean true (yes, no, on and off are \
                 booleans in YAML)",
                "t.yaml:9:11: streams.s.type: expected stream or shot, not \"bogus\"",
                "t.yaml:8:11: streams.s.feed: no feed named \"nope\"",
            ]
        );
        let syntax = problems("listenadr: x\nlistenport: 5\n  bad: indent\n").expect_err("bad");
        assert_eq!(syntax.len(), 2, "{syntax:?}");
        assert!(
            syntax[0].starts_with("t.yaml:1:1: listenadr: unknown key"),
            "{syntax:?}"
        );
    }

    #[test]
    fn anchors_and_merge_keys_share_settings() {
        let yaml = "feeds:\n  cam:\n    command: cat\nstreams:\n  a: &relay\n    feed: cam\n\
                    \x20   mimetype: video/mp2t\n  b:\n    <<: *relay\n    url: /b\n";
        let config = load_str(Path::new("t.yaml"), yaml).expect("loads").config;
        assert_eq!(config.streams["b"].mimetype, "video/mp2t");
        assert_eq!(config.streams["b"].feeds, ["cam"]);
        assert_eq!(config.streams["b"].url.as_deref(), Some("/b"));
    }
}
