//! The final config as YAML: every default filled in, for the `/config` page and `--check`.
//!
//! The output loads back (with [`load_str`](super::load_str), from the same directory) to an
//! equal [`Config`], so it is also a normalised copy of the file. Modes print as `on-demand`,
//! `continuous` or seconds; commands as their text, not as split words. Comments and the
//! order of entries in the file are not kept (entries print in name order). A `listenaddr`
//! host name prints as written, under a comment with the addresses it gave. Upstream's
//! `pages.stat` prints as the `status` paths it stands for.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ClientMode, Config, FeedInput, Mode, StreamKind};

/// `config` as YAML that loads back to an equal config.
pub fn render_yaml(config: &Config) -> String {
    let out = Out {
        listenaddr: config.listen_addr.clone(),
        listenport: config.listen_port,
        logdir: config.logdir.as_ref().map(|dir| dir.display().to_string()),
        feeds: (config.feeds.iter())
            .map(|(name, feed)| {
                let (command, file) = match &feed.input {
                    FeedInput::Command(command) => (Some(command.text.as_str()), None),
                    FeedInput::File(path) => (None, Some(path.display().to_string())),
                };
                let out = OutFeed {
                    command,
                    file,
                    mode: OutMode::from(feed.mode),
                    feed: feed.feed.as_deref(),
                    no_resurrect: !feed.resurrect,
                };
                (name.as_str(), out)
            })
            .collect(),
        streams: (config.streams.iter())
            .map(|(name, stream)| {
                let out = OutStream {
                    command: stream.command.as_ref().map(|command| command.text.as_str()),
                    kind: match stream.kind {
                        StreamKind::Stream => "stream",
                        StreamKind::Shot => "shot",
                    },
                    mimetype: &stream.mimetype,
                    feed: match stream.feeds.as_slice() {
                        [one] => Some(one.as_str()),
                        _ => None,
                    },
                    feeds: (stream.feeds.len() > 1).then_some(stream.feeds.as_slice()),
                    client: match stream.client {
                        ClientMode::Shared => "shared",
                        ClientMode::Exclusive => "exclusive",
                    },
                    url: stream.url.as_deref(),
                    mode: OutMode::from(stream.mode),
                    decoder: stream.decoder.as_deref(),
                };
                (name.as_str(), out)
            })
            .collect(),
        pages: OutPages {
            home: config.pages.home,
            config: config.pages.config,
        },
        status: OutStatus {
            page: OutPath::from(&config.status.page),
            api: OutPath::from(&config.status.api),
            metrics: OutPath::from(&config.status.metrics),
            clients: config.status.clients,
        },
    };
    let yaml = serde_saphyr::to_string(&out)
        .expect("maps of strings, numbers and booleans always serialize");
    let is_name = config.listen_addr.parse::<std::net::IpAddr>().is_err();
    if is_name {
        let ips: Vec<String> = config.listen_ips.iter().map(ToString::to_string).collect();
        format!(
            "# listenaddr {} is {}\n{yaml}",
            config.listen_addr,
            ips.join(", ")
        )
    } else {
        yaml
    }
}

#[derive(Serialize)]
struct Out<'a> {
    listenaddr: String,
    listenport: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    logdir: Option<String>,
    feeds: BTreeMap<&'a str, OutFeed<'a>>,
    streams: BTreeMap<&'a str, OutStream<'a>>,
    pages: OutPages,
    status: OutStatus<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct OutFeed<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    mode: OutMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    feed: Option<&'a str>,
    no_resurrect: bool,
}

#[derive(Serialize)]
struct OutStream<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    mimetype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    feed: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    feeds: Option<&'a [String]>,
    client: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    mode: OutMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    decoder: Option<&'a str>,
}

/// Upstream's `stat` is not printed: `status` says the same, path by path.
#[derive(Serialize)]
struct OutPages {
    home: bool,
    config: bool,
}

#[derive(Serialize)]
struct OutStatus<'a> {
    page: OutPath<'a>,
    api: OutPath<'a>,
    metrics: OutPath<'a>,
    clients: bool,
}

/// A status path as written in the file: the path, or `false` when it is off.
#[derive(Serialize)]
#[serde(untagged)]
enum OutPath<'a> {
    Path(&'a str),
    Off(bool),
}

impl<'a> From<&'a Option<String>> for OutPath<'a> {
    fn from(path: &'a Option<String>) -> Self {
        path.as_deref().map_or(OutPath::Off(false), OutPath::Path)
    }
}

/// A mode as written in the file: a word, whole seconds, or fractional seconds.
#[derive(Serialize)]
#[serde(untagged)]
enum OutMode {
    Word(&'static str),
    Seconds(u64),
    Fraction(f64),
}

impl From<Mode> for OutMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::OnDemand => OutMode::Word("on-demand"),
            Mode::Continuous => OutMode::Word("continuous"),
            Mode::Timeout(after) if after.subsec_nanos() == 0 => OutMode::Seconds(after.as_secs()),
            Mode::Timeout(after) => OutMode::Fraction(after.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::load::loaded;
    use crate::config::load_str;

    /// Renders `config`, loads the result as if from the same file, and compares.
    fn assert_round_trip(config: &Config) -> String {
        let yaml = render_yaml(config);
        let again = load_str(&config.path, &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(&again.config, config, "{yaml}");
        yaml
    }

    #[test]
    fn every_upstream_config_round_trips() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/upstream");
        let entries = std::fs::read_dir(&dir).expect("tests/data/upstream is readable");
        let mut seen = 0;
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if ["LICENSE", "README"]
                .iter()
                .any(|name| path.ends_with(name))
            {
                continue;
            }
            let loaded = crate::config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_round_trip(&loaded.config);
            seen += 1;
        }
        assert_eq!(seen, 14);
    }

    #[test]
    fn every_value_and_default_is_written_out() {
        let yaml = "listenaddr: '::'\nlistenport: 8091\nlogdir: log\npages:\n  config: yes\n\
                    feeds:\n  'yes':\n    file: in.ts\n    no-resurrect: on\n    mode: 0.1\n\
                    \x20 '010':\n    command: \"ffmpeg -i 'a: b' #x\"\n    feed: 'yes'\n    mode: 2.3333\n\
                    streams:\n  s:\n    feed: '010'\n    url: live\n  p:\n    command: |\n      \
                    ffmpeg\n        -i -\n    type: shot\n    client: exclusive\n    mimetype: image/png\n";
        let config = load_str(Path::new("/srv/v/t.yaml"), yaml)
            .expect("loads")
            .config;
        assert_eq!(
            config.feeds["yes"].mode,
            crate::config::Mode::Timeout(Duration::from_millis(100))
        );
        let rendered = assert_round_trip(&config);
        for line in [
            "listenaddr: \"::\"",
            "logdir: /srv/v/log",
            "    file: /srv/v/in.ts",
            "    mode: 0.1",
            "    mode: on-demand",
            "    no-resurrect: true",
            "    type: stream",
            "    client: shared",
            "    mimetype: application/octet-stream",
            "    url: /live",
            "  home: true",
            "  config: true",
            "status:",
            "  page: /stat",
            "  api: /stat.json",
            "  metrics: /metrics",
            "  clients: false",
        ] {
            assert!(rendered.lines().any(|l| l == line), "{line}\n{rendered}");
        }
    }

    #[test]
    fn status_paths_print_as_paths_or_false() {
        let yaml = "pages:\n  stat: no\n";
        let config = load_str(Path::new("t.yaml"), yaml).expect("loads").config;
        let rendered = assert_round_trip(&config);
        assert!(
            rendered.ends_with(
                "pages:\n  home: true\n  config: false\nstatus:\n  page: false\n  \
                 api: false\n  metrics: false\n  clients: false\n"
            ),
            "{rendered}"
        );
        let yaml = "status:\n  page: /kamera/żółw\n  api: off\n  clients: yes\n";
        let config = load_str(Path::new("t.yaml"), yaml).expect("loads").config;
        let rendered = assert_round_trip(&config);
        assert!(
            rendered.contains(
                "  page: /kamera/żółw\n  api: false\n  metrics: /metrics\n  clients: true\n"
            ),
            "{rendered}"
        );
    }

    #[test]
    fn a_host_name_prints_as_written_with_its_addresses() {
        let config = load_str(Path::new("t.yaml"), "listenaddr: localhost\n")
            .expect("loads")
            .config;
        let yaml = assert_round_trip(&config);
        let ips: Vec<String> = config.listen_ips.iter().map(ToString::to_string).collect();
        let expected = format!(
            "# listenaddr localhost is {}\nlistenaddr: localhost\n",
            ips.join(", ")
        );
        assert!(yaml.starts_with(&expected), "{yaml}");
        assert!(ips.contains(&"127.0.0.1".to_owned()), "{ips:?}");
    }

    #[test]
    fn one_feed_prints_as_feed_and_several_as_feeds() {
        let config = loaded(
            "feeds:\n  a:\n    command: cat\n  b:\n    command: cat\nstreams:\n  one:\n    \
             feeds: [a]\n  mux:\n    feeds: [a, b]\n    command: mux {feed:a} {feed-path:b}\n",
        );
        let rendered = assert_round_trip(&config);
        assert!(rendered.contains("feed: a\n"), "{rendered}");
        assert!(
            rendered.contains("feeds:\n    - a\n    - b\n"),
            "{rendered}"
        );
        assert!(
            rendered.contains("mux {feed:a} {feed-path:b}"),
            "{rendered}"
        );
    }

    #[test]
    fn the_default_config_round_trips() {
        let config = load_str(Path::new("t.yaml"), "").expect("loads").config;
        let yaml = assert_round_trip(&config);
        assert!(
            yaml.starts_with("listenaddr: \"127.0.0.1\"\nlistenport: 8090\n"),
            "{yaml}"
        );
    }
}
