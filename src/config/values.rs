//! One value of the file → its final form: modes, commands, URLs, ports and the like.
//!
//! Each function takes the value as written and returns it parsed, or a message saying what
//! was expected (lower case, no key: `convert` adds the key path and location). Nothing here
//! looks at other entries or at the file system; `listenaddr` asks the resolver.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::Scalar;
use super::{ClientMode, CommandLine, Mode, StreamKind};

/// Takes the place of a wrong command while the rest is checked. It never runs: a config
/// with an error is never used.
pub(super) fn stand_in() -> CommandLine {
    CommandLine {
        text: String::new(),
        argv: Vec::new(),
    }
}

/// Characters that would make a URL path unreachable or ambiguous as written.
pub(super) fn is_bad_in_url(c: char) -> bool {
    c.is_whitespace() || c.is_control() || c == '?' || c == '#'
}

/// `listenaddr`: an IP address, or a host name resolved now (as upstream's Flask did when it
/// started), as written and with every address it gives, in the resolver's order.
pub(super) fn address(text: String) -> Result<(String, Vec<IpAddr>), String> {
    let host = text.trim();
    if host.is_empty() {
        return Err(
            "expected an ip address or a host name such as 127.0.0.1, :: or \
                    localhost, not nothing"
                .to_owned(),
        );
    }
    if let Ok(ip) = host.parse() {
        return Ok((host.to_owned(), vec![ip]));
    }
    let resolved = (host, 0)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve \"{host}\": {error}"))?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in resolved.map(|address| address.ip()) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if ips.is_empty() {
        return Err(format!("\"{host}\" resolves to no address"));
    }
    Ok((host.to_owned(), ips))
}

/// `listenport`: 1 to 65535.
pub(super) fn port(value: Scalar) -> Result<u16, String> {
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

/// `no-resurrect`, `pages:` and `status.clients` toggles: a YAML boolean (`yes`/`on` included, as upstream).
pub(super) fn boolean(value: Scalar) -> Result<bool, String> {
    match value {
        Scalar::Bool(b) => Ok(b),
        other => Err(format!("expected true or false, not {other}")),
    }
}

/// The longest `mode:` timeout. Longer ones are surely typos for `continuous`, and a timer
/// that far off would overflow the clock (`Instant + Duration` panics).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// `on-demand`, `continuous`, `autostart` or a positive number of seconds.
pub(super) fn mode(value: Scalar) -> Result<Mode, String> {
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
    match seconds {
        Some(after) if after > MAX_TIMEOUT => Err(format!(
            "a timeout is at most {} seconds (a year): use continuous",
            MAX_TIMEOUT.as_secs()
        )),
        Some(after) => Ok(Mode::Timeout(after)),
        None => Err(format!("{ACCEPTED}, not {value}")),
    }
}

/// A command line as written, and split as a POSIX shell would (no shell runs).
pub(super) fn command(text: String) -> Result<CommandLine, String> {
    // Folded YAML (`>`) ends with a newline that is not part of the command.
    let text = text.trim_end().to_owned();
    match shlex::split(&text) {
        None => Err("unbalanced quote or trailing backslash in command".to_owned()),
        Some(argv) if argv.is_empty() => Err("empty command".to_owned()),
        Some(argv) => Ok(CommandLine { text, argv }),
    }
}

/// A feed's name in `feed:`; whether it exists is `validate`'s job.
pub(super) fn reference(text: String) -> Result<String, String> {
    if text.is_empty() {
        Err("expected a feed name, not nothing".to_owned())
    } else {
        Ok(text)
    }
}

/// `file:`, relative to `base`: the config file's directory.
pub(super) fn path(text: String, base: &Path) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("expected a path, not nothing".to_owned());
    }
    Ok(base.join(text))
}

/// `type:` of a stream.
pub(super) fn kind(text: String) -> Result<StreamKind, String> {
    match text.as_str() {
        "stream" => Ok(StreamKind::Stream),
        "shot" => Ok(StreamKind::Shot),
        _ => Err(format!("expected stream or shot, not \"{text}\"")),
    }
}

/// `client:` of a stream.
pub(super) fn client(text: String) -> Result<ClientMode, String> {
    match text.as_str() {
        "shared" => Ok(ClientMode::Shared),
        "exclusive" => Ok(ClientMode::Exclusive),
        _ => Err(format!("expected shared or exclusive, not \"{text}\"")),
    }
}

/// `mimetype:`, sent as Content-Type as written, so it must be a valid header value.
pub(super) fn mimetype(text: String) -> Result<String, String> {
    match text.trim() {
        "" => Err("expected a mime type such as video/mp2t, not nothing".to_owned()),
        mimetype if http::HeaderValue::from_str(mimetype).is_err() => Err(format!(
            "a mime type is sent as an HTTP header: it cannot hold line breaks or other \
             control characters, not {:?}",
            mimetype
        )),
        mimetype => Ok(mimetype.to_owned()),
    }
}

/// `decoder:` one program name or path.
pub(super) fn program(text: String) -> Result<String, String> {
    match text.trim() {
        "" => Err("expected a program such as ffmpeg, not nothing".to_owned()),
        program if program.contains(char::is_whitespace) => Err(format!(
            "expected one program, not a command line: {program:?}"
        )),
        program => Ok(program.to_owned()),
    }
}

/// `url:` with exactly one leading `/`; empty means none, as upstream.
pub(super) fn url(text: String) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = text.chars().find(|c| is_bad_in_url(*c)) {
        return Err(format!("a url cannot contain '{}'", bad.escape_debug()));
    }
    Ok(Some(format!("/{}", text.trim_start_matches('/'))))
}

/// `status.page`, `status.api` and `status.metrics`: a path (`false` turns it off, `true`
/// keeps it at `default`), normalised as a stream's `url`.
pub(super) fn status_path(value: Scalar, default: &str) -> Result<Option<String>, String> {
    let expected = || format!("expected a path such as {default}, or false, not {value}");
    match &value {
        Scalar::Bool(false) => Ok(None),
        Scalar::Bool(true) => Ok(Some(default.to_owned())),
        Scalar::Str(text) if !text.is_empty() => url(text.clone()),
        _ => Err(expected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FeedInput;
    use crate::config::load::{errors, loaded, problems};

    fn feed_mode(mode: &str) -> Result<Mode, String> {
        let yaml = format!(
            "feeds:\n  f:\n    command: cat\n    mode: {mode}\nstreams:\n  s:\n    feed: f\n"
        );
        match problems(&yaml) {
            Ok(_) => Ok(loaded(&yaml).feeds["f"].mode),
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
        assert_eq!(
            feed_mode("1e12"),
            Err(
                "t.yaml:4:11: feeds.f.mode: a timeout is at most 31536000 seconds (a year): \
                 use continuous"
                    .to_owned()
            )
        );
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
            loaded("feeds:\n  f:\n    command: >\n      ffmpeg -x 'a b'\n        \"c\\\"d\"\n");
        let FeedInput::Command(command) = &config.feeds["f"].input else {
            panic!("a command feed");
        };
        assert_eq!(command.text, "ffmpeg -x 'a b'\n  \"c\\\"d\"");
        assert_eq!(command.argv, ["ffmpeg", "-x", "a b", "c\"d"]);
        assert_eq!(
            errors("streams:\n  s:\n    command: ffmpeg -i 'x\n"),
            "t.yaml:3:14: streams.s.command: unbalanced quote or trailing backslash in command"
        );
        assert_eq!(
            errors("feeds:\n  f:\n    command: '  '\n"),
            "t.yaml:3:14: feeds.f.command: empty command"
        );
    }

    #[test]
    fn a_decoder_is_one_program() {
        let yaml = "streams:\n  s:\n    command: cat\n    decoder: /opt/ffmpeg/bin/ffmpeg\n";
        assert_eq!(
            loaded(yaml).streams["s"].decoder.as_deref(),
            Some("/opt/ffmpeg/bin/ffmpeg")
        );
        assert_eq!(
            errors("streams:\n  s:\n    command: cat\n    decoder: ffmpeg -v 0\n"),
            "t.yaml:4:14: streams.s.decoder: expected one program, not a command line: \"ffmpeg -v 0\""
        );
    }

    #[test]
    fn a_mimetype_must_be_a_header_value() {
        let yaml = |mimetype: &str| {
            format!("streams:\n  s:\n    command: cat\n    mimetype: {mimetype}\n")
        };
        assert_eq!(
            loaded(&yaml("'video/mp2t; x=\"a b\"'")).streams["s"].mimetype,
            "video/mp2t; x=\"a b\""
        );
        assert_eq!(
            errors(&yaml("\"video/mp2t\\r\\nX-Evil: 1\"")),
            "t.yaml:4:15: streams.s.mimetype: a mime type is sent as an HTTP header: it cannot \
             hold line breaks or other control characters, not \"video/mp2t\\r\\nX-Evil: 1\""
        );
        assert!(errors(&yaml("\"a/b\\x7f\"")).contains("streams.s.mimetype: a mime type"));
    }

    #[test]
    fn listenaddr_takes_addresses_and_host_names() {
        let config = loaded("listenaddr: ' ::1 '\n");
        assert_eq!(
            (config.listen_addr.as_str(), config.listen_ips.as_slice()),
            ("::1", &["::1".parse().expect("ip")][..])
        );
        let config = loaded("listenaddr: localhost\n");
        assert_eq!(config.listen_addr, "localhost");
        assert!(
            config.listen_ips.iter().all(|ip| ip.is_loopback()) && !config.listen_ips.is_empty()
        );
        assert!(
            errors("listenaddr: no-such-host.invalid\n")
                .starts_with("t.yaml:1:13: listenaddr: cannot resolve \"no-such-host.invalid\": "),
        );
    }

    #[test]
    fn urls_get_one_leading_slash_and_empty_means_none() {
        let url = |url: &str| {
            let yaml = format!("streams:\n  s:\n    command: cat\n    url: {url}\n");
            loaded(&yaml).streams["s"].url.clone()
        };
        assert_eq!(url("scary/vid").as_deref(), Some("/scary/vid"));
        assert_eq!(url("///funny/vid").as_deref(), Some("/funny/vid"));
        assert_eq!(url("''"), None);
        assert_eq!(
            errors("streams:\n  s:\n    command: cat\n    url: '/a b'\n"),
            "t.yaml:4:10: streams.s.url: a url cannot contain ' '"
        );
    }
}
