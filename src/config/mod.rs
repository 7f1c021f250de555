//! Configuration: the final, resolved form the rest of the program sees.
//!
//! `load` reads a YAML file (a superset of upstream voyandz 0.3.1's format) into these
//! types (`raw` is the file's shape, `convert` and `values` parse it); `validate` cross-checks
//! them; `render` prints the final form back as YAML (for `/config` and `--check`). Every
//! problem carries the file, line, column and key path (`problem`). Nothing outside this
//! module sees raw YAML.

mod convert;
mod load;
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

pub use load::{
    DEFAULT_LISTEN_ADDR, DEFAULT_LISTEN_PORT, DEFAULT_MIMETYPE, DEFAULT_PAGES, Loaded, load_file,
    load_str,
};
pub use problem::{ConfigError, Problem};
pub use render::render_yaml;
pub use validate::RESERVED_PATHS;
pub use values::MAX_TIMEOUT;

/// The spec's default config path (`-f` overrides it, then `$VOYANDZ_CONFFILE`).
pub const SPEC_DEFAULT_PATH: &str = "/etc/voyandz.ini";
/// Upstream voyandz 0.3.1's default path, tried when the spec's one does not exist.
pub const UPSTREAM_DEFAULT_PATH: &str = "/etc/voyandz";
/// Upstream's environment variable naming the config file.
pub const CONFFILE_ENV: &str = "VOYANDZ_CONFFILE";

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
    /// Which extra pages are served.
    pub pages: Pages,
}

/// `pages:` toggles, as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pages {
    /// `/`: a list of streams (default on).
    pub home: bool,
    /// `/stat` and `/stat.json` (default on).
    pub stat: bool,
    /// `/config`: the final config (default off: it shows commands).
    pub config: bool,
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
    /// `feed:`: the feed piped into the command's stdin.
    pub feed: Option<String>,
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

impl Config {
    /// The URL paths each stream is served at: `/stream/<name>` and its `url`, if any.
    pub fn stream_paths(stream: &StreamConfig) -> impl Iterator<Item = String> + '_ {
        std::iter::once(format!("/stream/{}", stream.name)).chain(stream.url.clone())
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
    /// Home and stat on, config off, as upstream.
    fn default() -> Self {
        DEFAULT_PAGES
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
