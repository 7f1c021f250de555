//! The private Icecast config the bench writes for each run: loopback only, one mount, every
//! path inside the run's own directory, and limits chosen so that the comparison with voyandz
//! is fair (each choice is a named constant with its reason). Pure text; [`super`] writes it.

use std::path::Path;

/// `<clients>` and `<sources>`: far above the bench's largest step (3200 clients, plus its
/// readiness probes), so that no limit of Icecast's decides a row. `<sources>` only counts
/// source connections (the bench uses one), raised all the same.
pub const CONNECTIONS_MAX: u32 = 10_000;

/// How far behind live, in seconds, a listener may fall before Icecast drops it: voyandz cuts
/// (or, on a framed stream, resynchronises) a client that falls `LAG_MAX` = 2 s behind
/// (src/fanout/hub.rs), so `<queue-size>` is set to 2 s of the stream's bytes, and a client
/// lost by either server has fallen as far behind. Icecast's default (512 KiB) would be 4 s at
/// 1 Mbit/s but only 1 s at 4 Mbit/s.
pub const LAG_MAX_S: u64 = 2;

/// `<burst-size>` and `<burst-on-connect>`: none. With a burst, a new listener first gets up to
/// that many old bytes at once (64 KiB by default, half a second at 1 Mbit/s); voyandz's direct
/// relay starts a client at live (the stamp packets carry no keyframe to rewind to). Joins are
/// then comparable, and 3200 joins do not cost Icecast 3200 bursts.
pub const BURST_BYTES: u64 = 0;

/// Icecast's log level 3 ("info"), the level voyandz logs at by default: both log each client
/// that comes and goes, and neither does while a window is measured (clients join before it).
const LOG_LEVEL: u8 = 3;

/// What a run's config says.
pub struct Settings<'a> {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// The one mount, e.g. `/stream`.
    pub mount: &'a str,
    /// The password of user `source`.
    pub password: &'a str,
    /// Bit rate of the stream the source sends, for the queue size.
    pub rate_bps: u64,
    /// Directory for the logs (and nothing else: no web pages are served).
    pub dir: &'a Path,
}

/// The `<queue-size>` for a stream of `rate_bps`: [`LAG_MAX_S`] of its bytes.
pub fn queue_bytes(rate_bps: u64) -> u64 {
    rate_bps / 8 * LAG_MAX_S
}

/// The config file's text.
pub fn render(s: &Settings) -> String {
    let dir = xml_text(&s.dir.to_string_lossy());
    let queue = queue_bytes(s.rate_bps);
    let (mount, password) = (xml_text(s.mount), xml_text(s.password));
    format!(
        "<icecast>
  <location>voyandz-bench</location>
  <admin>voyandz-bench@localhost</admin>
  <hostname>127.0.0.1</hostname>
  <fileserve>0</fileserve>
  <limits>
    <clients>{CONNECTIONS_MAX}</clients>
    <sources>{CONNECTIONS_MAX}</sources>
    <queue-size>{queue}</queue-size>
    <burst-on-connect>0</burst-on-connect>
    <burst-size>{BURST_BYTES}</burst-size>
  </limits>
  <authentication>
    <source-password>{password}</source-password>
    <admin-user>admin</admin-user>
    <admin-password>{password}</admin-password>
  </authentication>
  <listen-socket>
    <port>{port}</port>
    <bind-address>127.0.0.1</bind-address>
  </listen-socket>
  <mount>
    <mount-name>{mount}</mount-name>
    <queue-size>{queue}</queue-size>
    <burst-size>{BURST_BYTES}</burst-size>
  </mount>
  <paths>
    <basedir>{dir}</basedir>
    <logdir>{dir}</logdir>
    <webroot>{dir}</webroot>
    <adminroot>{dir}</adminroot>
  </paths>
  <logging>
    <errorlog>error.log</errorlog>
    <accesslog>access.log</accesslog>
    <loglevel>{LOG_LEVEL}</loglevel>
  </logging>
</icecast>
",
        port = s.port,
    )
}

/// `s` as XML character data.
fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> Settings<'_> {
        Settings {
            port: 41234,
            mount: "/stream",
            password: "pw",
            rate_bps: 1_000_000,
            dir,
        }
    }

    #[test]
    fn listens_on_loopback_only_with_limits_far_above_the_steps() {
        let text = render(&settings(Path::new("/tmp/run")));
        assert!(text.contains("<port>41234</port>"));
        assert!(text.contains("<bind-address>127.0.0.1</bind-address>"));
        assert_eq!(text.matches("<listen-socket>").count(), 1);
        assert!(text.contains("<clients>10000</clients>"));
        assert!(text.contains("<mount-name>/stream</mount-name>"));
        assert!(text.contains("<source-password>pw</source-password>"));
    }

    #[test]
    fn queue_is_two_seconds_of_the_stream_and_there_is_no_burst() {
        assert_eq!(queue_bytes(1_000_000), 250_000);
        assert_eq!(queue_bytes(4_000_000), 1_000_000);
        let text = render(&settings(Path::new("/tmp/run")));
        assert_eq!(text.matches("<queue-size>250000</queue-size>").count(), 2);
        assert_eq!(text.matches("<burst-size>0</burst-size>").count(), 2);
        assert!(text.contains("<burst-on-connect>0</burst-on-connect>"));
    }

    #[test]
    fn every_path_is_the_run_directory_escaped() {
        let text = render(&settings(Path::new("/tmp/a&b")));
        assert!(text.contains("<logdir>/tmp/a&amp;b</logdir>"));
        assert!(!text.contains("/var/"));
        assert!(!text.contains("/tmp/a&b"));
    }
}
