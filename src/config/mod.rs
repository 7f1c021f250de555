//! Configuration: the final, resolved form the rest of the program sees.
//!
//! `load` reads a YAML file (a superset of upstream voyandz 0.3.1's format) into these
//! types (`raw` is the file's shape, `expand` applies its templates and sets, with
//! `placeholder` filling their text, and `convert` and `values` parse it); `validate` cross-checks
//! them; `render` prints the final form back as YAML (for `/config` and `--check`). Every
//! problem carries the file, line, column and key path (`problem`). Nothing outside this
//! module sees raw YAML.

mod convert;
mod expand;
mod load;
mod placeholder;
mod problem;
mod raw;
mod render;
mod validate;
mod values;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(test)]
pub(crate) use load::loaded;
pub use load::{
    DEFAULT_LISTEN_ADDR, DEFAULT_LISTEN_PORT, DEFAULT_METRICS, DEFAULT_MIMETYPE, DEFAULT_PAGES,
    DEFAULT_STATUS_API, DEFAULT_STATUS_PAGE, Loaded, load_file, load_str,
};
pub use problem::{ConfigError, Problem};
pub use render::render_yaml;
pub use values::MAX_TIMEOUT;

/// The spec's default config path (`-f` overrides it, then `$VOYANDZ_CONFFILE`).
pub const SPEC_DEFAULT_PATH: &str = "/etc/voyandz.ini";
/// Upstream voyandz 0.3.1's default path, tried when the spec's one does not exist.
pub const UPSTREAM_DEFAULT_PATH: &str = "/etc/voyandz";
/// Upstream's environment variable naming the config file.
pub const CONFFILE_ENV: &str = "VOYANDZ_CONFFILE";
/// The path of the home page (`pages.home`), as upstream.
pub const HOME_PATH: &str = "/";
/// The path of the config page (`pages.config`), as upstream.
pub const CONFIG_PATH: &str = "/config";

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from (for messages and reload).
    pub path: PathBuf,
    /// `listenaddr` as written: an IP address or a host name.
    pub listen_addr: String,
    /// The addresses `listenaddr` gave when the config was loaded (one for an IP address, each
    /// one a name resolves to, such as 127.0.0.1 and ::1 for localhost); never empty. The
    /// server listens on all of them when not socket-activated.
    pub listen_ips: Vec<IpAddr>,
    /// `listenport`.
    pub listen_port: u16,
    /// `logdir`: where each child's stderr is also appended, one file per feed/stream.
    pub logdir: Option<PathBuf>,
    /// Feeds by name, in name order.
    pub feeds: BTreeMap<String, FeedConfig>,
    /// Streams by name, in name order.
    pub streams: BTreeMap<String, StreamConfig>,
    /// Which of the fixed pages are served.
    pub pages: Pages,
    /// Where the status page, the status API and the metrics are served, if at all.
    pub status: Status,
}

/// `pages:` toggles, as upstream. Upstream's `pages.stat` is folded into [`Status`]: `false`
/// turns the status page, the status API and the metrics off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pages {
    /// `/`: a list of streams (default on).
    pub home: bool,
    /// `/config`: the final config (default off: it shows commands).
    pub config: bool,
}

/// `status:`: the URL path of each status view, `None` when it is off.
///
/// Paths are in decoded form, like stream `url`s, with one leading `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `status.page`: the HTML status page (default `/stat`, as the spec says).
    pub page: Option<String>,
    /// `status.api`: the same information as JSON (default `/stat.json`, as the spec says).
    pub api: Option<String>,
    /// `status.metrics`: Prometheus metrics (default `/metrics`, Prometheus' own default).
    pub metrics: Option<String>,
    /// `status.clients`: list the connected clients on the page and in the API (default off:
    /// the spec wants it off, as it shows every viewer's address).
    pub clients: bool,
}

/// A page voyandz serves besides its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `/`: the list of streams.
    Home,
    /// `/config`: the final config.
    Config,
    /// The HTML status page.
    Status,
    /// The status API (JSON).
    StatusApi,
    /// Prometheus metrics.
    Metrics,
}

impl Page {
    /// The config key that turns it on, moves it or turns it off (`status.api`).
    pub fn key(self) -> &'static str {
        match self {
            Page::Home => "pages.home",
            Page::Config => "pages.config",
            Page::Status => "status.page",
            Page::StatusApi => "status.api",
            Page::Metrics => "status.metrics",
        }
    }

    /// What a message calls it.
    pub fn title(self) -> &'static str {
        match self {
            Page::Home => "the home page",
            Page::Config => "the config page",
            Page::Status => "the status page",
            Page::StatusApi => "the status API",
            Page::Metrics => "the metrics",
        }
    }
}

/// A command line, kept both as written and as split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The text as written in the config (folded YAML already joined).
    pub text: String,
    /// Words split as a POSIX shell would (no shell runs); never empty.
    pub argv: Vec<String>,
}

/// Where a feed's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedInput {
    /// `command:` writes the feed to its stdout.
    Command(CommandLine),
    /// `file:` a regular file or a named pipe, read from the start at each (re)open.
    File(PathBuf),
}

/// When a feed or stream process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Runs while at least one client (or dependent) uses it. The default.
    OnDemand,
    /// Starts with the server and runs for ever (`continuous` and `autostart`).
    Continuous,
    /// On-demand, but kept alive this long after the last user leaves (`mode: 10`).
    Timeout(Duration),
}

/// One `feeds:` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedConfig {
    /// The key under `feeds:`.
    pub name: String,
    /// `command:` or `file:`.
    pub input: FeedInput,
    /// `mode:`.
    pub mode: Mode,
    /// `feed:`: another feed whose bytes are piped into this one's stdin.
    pub feed: Option<String>,
    /// false when `no-resurrect: true` is set.
    pub resurrect: bool,
}

/// `type:` of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A continuous stream fanned out to every client.
    Stream,
    /// A command run per request whose whole output is one response (a screenshot).
    Shot,
}

/// `client:` of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    /// One process for all clients (default).
    Shared,
    /// One process per client.
    Exclusive,
}

/// One `streams:` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// The key under `streams:`; always served at `/stream/<name>`.
    pub name: String,
    /// `command:`; `None` relays the feed's bytes directly (no process, no copy).
    pub command: Option<CommandLine>,
    /// `type:`.
    pub kind: StreamKind,
    /// `mimetype:` sent as Content-Type.
    pub mimetype: String,
    /// `feed:` (one) or `feeds:` (several): the feeds its command reads, each on stdin or on
    /// the pipe its `{feed:NAME}` placeholder names; empty for a command that reads none.
    pub feeds: Vec<String>,
    /// `client:`.
    pub client: ClientMode,
    /// `url:` an extra path it is served at, normalised to start with one `/`.
    pub url: Option<String>,
    /// `mode:` of the stream process itself (default on-demand).
    pub mode: Mode,
    /// `decoder:` the ffmpeg-like program that decodes screenshots (`/pic`); by default the
    /// stream's own program when it is an ffmpeg, else `ffmpeg`.
    pub decoder: Option<String>,
}

/// Where a stream's command reads one of its feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedRoute {
    /// On stdin: the first feed, when its command does not name it with a placeholder.
    Stdin,
    /// On this inherited file descriptor (3, 4, ...), named by `{feed:NAME}` (as `pipe:N`)
    /// or `{feed-path:NAME}` (as `/dev/fd/N`).
    Descriptor(i32),
}

/// The first descriptor a child inherits a feed on, after stdin, stdout and stderr.
const FIRST_FEED_DESCRIPTOR: i32 = 3;

impl StreamConfig {
    /// Where its command reads each of its feeds, in `feeds` order: those its command names
    /// get descriptors 3, 4, ... in that order, and the first otherwise goes on stdin. A feed
    /// that gets neither (an error `validate` reports) is left out.
    pub fn feed_routes(&self) -> Vec<(&str, FeedRoute)> {
        let text = self
            .command
            .as_ref()
            .map_or("", |command| command.text.as_str());
        let named = placeholder::feed_refs(text);
        let mut next = FIRST_FEED_DESCRIPTOR;
        let mut routes = Vec::new();
        for (index, feed) in self.feeds.iter().enumerate() {
            if named.contains(&feed.as_str()) {
                routes.push((feed.as_str(), FeedRoute::Descriptor(next)));
                next += 1;
            } else if index == 0 {
                routes.push((feed.as_str(), FeedRoute::Stdin));
            }
        }
        routes
    }

    /// The words its command runs with: feed placeholders replaced by their descriptors.
    pub fn run_argv(&self) -> Vec<String> {
        let routes = self.feed_routes();
        let fd_of = |name: &str| {
            routes.iter().find_map(|(feed, route)| match route {
                FeedRoute::Descriptor(fd) if *feed == name => Some(*fd),
                _ => None,
            })
        };
        let argv = self.command.as_ref().map(|command| command.argv.iter());
        (argv.into_iter().flatten())
            .map(|word| placeholder::fill_feed_refs(word, &fd_of))
            .collect()
    }

    /// The feed names its command's feed placeholders name (for `validate`).
    pub(crate) fn named_feeds(&self) -> Vec<&str> {
        let text = self
            .command
            .as_ref()
            .map_or("", |command| command.text.as_str());
        placeholder::feed_refs(text)
    }
}

impl Config {
    /// The URL paths each stream is served at: `/stream/<name>` and its `url`, if any.
    pub fn stream_paths(stream: &StreamConfig) -> impl Iterator<Item = String> + '_ {
        std::iter::once(format!("/stream/{}", stream.name)).chain(stream.url.clone())
    }

    /// Every page that is on, with the path it is served at, in [`Page`] order. The one
    /// table of the pages: routing and the collision checks both read it.
    pub fn pages(&self) -> impl Iterator<Item = (Page, &str)> {
        let fixed = |page, on: bool, path| on.then_some((page, path));
        let status = &self.status;
        [
            fixed(Page::Home, self.pages.home, HOME_PATH),
            fixed(Page::Config, self.pages.config, CONFIG_PATH),
            status.page.as_deref().map(|path| (Page::Status, path)),
            status.api.as_deref().map(|path| (Page::StatusApi, path)),
            status.metrics.as_deref().map(|path| (Page::Metrics, path)),
        ]
        .into_iter()
        .flatten()
    }

    /// The page served at the decoded request path `path`, if one is.
    pub fn page_at(&self, path: &str) -> Option<Page> {
        self.pages()
            .find(|(_, served)| *served == path)
            .map(|(page, _)| page)
    }
}

/// Picks the config file: `-f`, else `$VOYANDZ_CONFFILE`, else the spec's
/// `/etc/voyandz.ini`, else upstream's `/etc/voyandz`.
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    let env = std::env::var_os(CONFFILE_ENV);
    pick_path(cli, env.as_deref(), |path| path.exists())
}

/// [`resolve_path`] without the environment and the file system, for tests.
fn pick_path(cli: Option<&Path>, env: Option<&OsStr>, exists: impl Fn(&Path) -> bool) -> PathBuf {
    if let Some(path) = cli {
        return path.to_path_buf();
    }
    if let Some(env) = env.filter(|v| !v.is_empty()) {
        return PathBuf::from(env);
    }
    let spec = Path::new(SPEC_DEFAULT_PATH);
    if exists(spec) || !exists(Path::new(UPSTREAM_DEFAULT_PATH)) {
        spec.to_path_buf()
    } else {
        PathBuf::from(UPSTREAM_DEFAULT_PATH)
    }
}

impl Default for Pages {
    /// Home on, config off, as upstream.
    fn default() -> Self {
        DEFAULT_PAGES
    }
}

impl Default for Status {
    /// Everything on at the spec's paths, the clients list off.
    fn default() -> Self {
        Status {
            page: Some(DEFAULT_STATUS_PAGE.to_owned()),
            api: Some(DEFAULT_STATUS_API.to_owned()),
            metrics: Some(DEFAULT_METRICS.to_owned()),
            clients: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_path_is_cli_then_env_then_spec_then_upstream() {
        let cli = Path::new("/tmp/v.yaml");
        let env = Some(OsStr::new("/srv/v.yaml"));
        let all = |_: &Path| true;
        let none = |_: &Path| false;
        let upstream_only = |path: &Path| path == Path::new(UPSTREAM_DEFAULT_PATH);
        assert_eq!(pick_path(Some(cli), env, all), cli);
        assert_eq!(pick_path(None, env, all), Path::new("/srv/v.yaml"));
        assert_eq!(
            pick_path(None, Some(OsStr::new("")), all),
            Path::new(SPEC_DEFAULT_PATH)
        );
        assert_eq!(pick_path(None, None, none), Path::new(SPEC_DEFAULT_PATH));
        assert_eq!(
            pick_path(None, None, upstream_only),
            Path::new(UPSTREAM_DEFAULT_PATH)
        );
        assert_eq!(resolve_path(Some(cli)), cli);
    }
}
