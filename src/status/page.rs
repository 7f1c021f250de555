//! The status page (`/stat` by default): the [`StatusView`] as plain server-rendered HTML.
//!
//! The spec asks for "a status page, describing its general configuration, configured feeds
//! and streams together with their parameters, current statuses and traffic statistics". The
//! page is complete without JavaScript: every value is in the HTML, every stream has its links
//! (the plain URL, `?header&keyframe`, `?keyframe=last` and, for video, `/pic`). A small inline
//! script, present only when the status API is on, refreshes the cells that change (marked
//! `data-field` inside rows marked `data-list`/`data-name`) from the API once a second,
//! without reloading the page: with scripting off only that refresh is lost. The page loads
//! nothing else (inline CSS, no fonts, no images) and its tables scroll sideways on a phone.
//! maud escapes every value, so names and user agents holding HTML show as text. This module
//! renders; it does not gather the view ([`super`]) nor route (`http::routes`).

use std::fmt;

use chrono::{DateTime, Datelike, Local, Timelike};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::StatusView;
use crate::config::{Config, Mode, StreamKind};
use crate::http::url::encode_path;
use crate::stats::{RunView, StreamView};

/// The page's `Content-Type`.
pub const MIMETYPE: &str = "text/html; charset=utf-8";

/// The page's style: small and inline, as the page loads nothing else.
const STYLE: &str = include_str!("page.css");
/// The refresh script: it reads the API path from `data-api` on `<body>`.
const SCRIPT: &str = include_str!("page.js");

/// The status page of `view`, under the configuration it was taken from.
pub fn render(view: &StatusView, config: &Config) -> String {
    page(view, config).into_string()
}

fn page(view: &StatusView, config: &Config) -> Markup {
    let server = &view.server;
    let api = config.status.api.as_deref().map(encode_path);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (server.name) " status" }
                style { (PreEscaped(STYLE)) }
            }
            body data-api=[api.as_deref()] {
                h1 { (server.name) " " (server.version) }
                (general(view, config))
                h2 { "Feeds" }
                (feeds(view, config))
                h2 { "Streams" }
                (streams(view, config))
                h2 { "Clients" }
                (clients(view))
                @if api.is_some() {
                    script { (PreEscaped(SCRIPT)) }
                }
            }
        }
    }
}

/// The server and its general configuration, as a two-column table.
fn general(view: &StatusView, config: &Config) -> Markup {
    let server = &view.server;
    let listening = (server.listening.iter())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let paths = (config.pages())
        .map(|(page, path)| format!("{} {path}", page.key()))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        div.scroll { table.general { tbody data-list="server" {
            tr { th { "Server time" } td id="server-time" data-field="time" { (time(server.time)) } }
            tr { th { "Started" } td { (time(server.started_at)) } }
            tr { th { "Uptime" } td data-field="uptime_ms" { (duration_ms(server.uptime_ms)) } }
            tr { th { "Listening on" } td { (listening) } }
            tr { th { "Config file" } td { (server.config_path.display()) } }
            tr { th { "Last reload" } td {
                @match &server.last_reload {
                    Some(reload) => (reload.summary()),
                    None => "none since the start",
                }
            } }
            tr { th { "D-Bus" } td {
                @match server.dbus {
                    Some(bus) => (format!("{} on the {bus} bus", crate::control::SERVICE)),
                    None => "off",
                }
            } }
            tr { th { "Log dir" } td {
                @match &server.logdir {
                    Some(dir) => (dir.display()),
                    None => "none (children's stderr goes to the log only)",
                }
            } }
            tr { th { "Pages" } td { (paths) } }
            tr { th { "Clients list" } td {
                @if server.clients_shown { "shown (status.clients)" }
                @else { "hidden (status.clients)" }
            } }
        } } }
    }
}

fn feeds(view: &StatusView, config: &Config) -> Markup {
    html! {
        div.scroll { table { thead { tr {
            th { "Feed" } th { "Mode" } th { "Input from" } (run_headings())
        } } tbody {
            @for feed in &view.state.feeds {
                @let feed_config = config.feeds.get(&feed.name);
                tr data-list="feeds" data-name=(feed.name) {
                    th { (feed.name) }
                    td { (feed_config.map(|feed| mode(feed.mode)).unwrap_or_default()) }
                    td { (feed_config.and_then(|feed| feed.feed.as_deref()).unwrap_or("-")) }
                    (run_cells(feed))
                }
            }
        } } }
    }
}

fn streams(view: &StatusView, config: &Config) -> Markup {
    html! {
        div.scroll { table { thead { tr {
            th { "Stream" } th { "Links" } th { "Feed" } th { "Mode" } th { "Client" }
            th { "Mimetype" } th { "Container" } (run_headings()) th { "Clients" }
            th { "Skips" } th { "Cut" } th { "Pictures" } th { "Decodes" }
        } } tbody {
            @for stream in &view.state.streams {
                @let stream_config = config.streams.get(&stream.run.name);
                tr data-list="streams" data-name=(stream.run.name) {
                    th { (stream.run.name) }
                    td.links { (links(stream, stream_config.map(|s| s.kind))) }
                    td { (if stream.feeds.is_empty() { "-".to_owned() } else { stream.feeds.join(", ") }) }
                    td { (stream_config.map(|s| mode(s.mode)).unwrap_or_default()) }
                    td { (stream.client) }
                    td { (stream.mimetype) }
                    td { (container(stream)) }
                    (run_cells(&stream.run))
                    td.num data-field="clients" { (stream.clients) }
                    td.num data-field="skips" { (stream.skips) }
                    td.num data-field="clients_cut" { (stream.clients_cut) }
                    td.num data-field="screenshot_requests" { (stream.screenshot_requests) }
                    td.num data-field="screenshot_decodes" { (stream.screenshot_decodes) }
                }
            }
        } } }
    }
}

/// A stream's links, percent-encoded: each of its paths, the join variants of its first
/// path and its picture. A shot has no joins and no picture (it is one), nor has a stream
/// known to carry no video.
fn links(stream: &StreamView, kind: Option<StreamKind>) -> Markup {
    let continuous = kind == Some(StreamKind::Stream);
    let audio = stream
        .mimetype
        .trim()
        .to_ascii_lowercase()
        .starts_with("audio/")
        || stream.framing.as_ref().is_some_and(|f| f.audio_only);
    let main = stream.paths.first().map(|path| encode_path(path));
    html! {
        @for path in &stream.paths {
            a href=(encode_path(path)) { (path) } " "
        }
        @if let (Some(main), true) = (main, continuous) {
            a href={ (main) "?header&keyframe" } { "?header&keyframe" } " "
            a href={ (main) "?keyframe=last" } { "?keyframe=last" } " "
            @if !audio {
                a href={ (main) "/pic" } { "/pic" }
            }
        }
    }
}

fn container(stream: &StreamView) -> Markup {
    match &stream.framing {
        None => html! { "-" },
        Some(framing) => html! {
            (framing.container)
            @if framing.audio_only { ", audio only" }
            @if framing.header_bytes > 0 { ", header " (bytes(framing.header_bytes as u64)) }
            @if let Some(interval) = framing.keyframe_interval_ms {
                ", keyframes every " (duration_ms(interval))
            }
        },
    }
}

fn run_headings() -> Markup {
    html! {
        th { "State" } th { "Pid" } th { "Started" } th { "Up" } th { "Restarts" }
        th { "Last exit" } th { "In" } th { "Out" } th { "Bit rate" } th { "Subscribers" }
    }
}

/// The cells of a feed's or stream's run; those that change carry the API's field name.
fn run_cells(run: &RunView) -> Markup {
    html! {
        td data-field="state" class={ "state " (run.state.name()) } { (state(run)) }
        td.num data-field="pid" { (optional(run.pid)) }
        td data-field="started_at" { (optional(run.started_at.map(time))) }
        td data-field="uptime_ms" { (optional(run.uptime_ms.map(duration_ms))) }
        td.num data-field="restarts" { (run.restarts) }
        td.exit data-field="last_exit" { (optional(run.last_exit.as_ref())) }
        td.num data-field="bytes_in" { (bytes(run.bytes_in)) }
        td.num data-field="bytes_out" { (bytes(run.bytes_out)) }
        td.num data-field="bitrate_bps" { (bit_rate(run.bitrate_bps)) }
        td.num data-field="subscribers" { (run.subscribers) }
    }
}

fn clients(view: &StatusView) -> Markup {
    if !view.server.clients_shown {
        return html! { p { "hidden (status.clients)" } };
    }
    html! {
        div.scroll { table { thead { tr {
            th { "Id" } th { "Peer" } th { "Stream" } th { "Join" } th { "User agent" }
            th { "Since" } th { "For" } th { "Sent" } th { "Skips" }
        } } tbody {
            // Inline, not a partial: a row rendered into a String of its own and copied is an
            // allocation per client, and a page lists a thousand.
            @for client in &view.state.clients {
                tr data-list="clients" data-name=(client.id) {
                    td.num { (client.id) }
                    td { (client.peer) }
                    td { (client.stream) }
                    td { (client.join) }
                    td { (client.user_agent) }
                    td { (time(client.started_at)) }
                    td data-field="duration_ms" { (duration_ms(client.duration_ms)) }
                    td.num data-field="bytes_sent" { (bytes(client.bytes_sent)) }
                    td.num data-field="skips" { (client.skips) }
                }
            }
        } } }
        @if view.state.clients.is_empty() { p { "none connected" } }
    }
}

fn state(run: &RunView) -> String {
    match run.retry_in_ms {
        Some(ms) => format!("{} (retry in {})", run.state.name(), duration_ms(ms)),
        None => run.state.name().to_string(),
    }
}

fn mode(mode: Mode) -> String {
    match mode {
        Mode::OnDemand => "on-demand".into(),
        Mode::Continuous => "continuous".into(),
        Mode::Timeout(linger) => {
            let ms = u64::try_from(linger.as_millis()).unwrap_or(u64::MAX);
            format!("timeout {}", duration_ms(ms))
        }
    }
}

fn optional(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".into(), |value| value.to_string())
}

/// Local time to the second, as the log writes it.
fn time(at: DateTime<Local>) -> LocalTime {
    LocalTime(at)
}

/// A local time written field by field: chrono's `format` parses its pattern and allocates
/// on every call, a thousand times a page.
struct LocalTime(DateTime<Local>);

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = &self.0;
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            at.year(),
            at.month(),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        )
    }
}

/// `850 ms`, `12.3 s`, `5m 07s`, `3h 02m`, `2d 04h`: two units at most, enough to see
/// that something moves.
fn duration_ms(ms: u64) -> DurationMs {
    DurationMs(ms)
}

/// A duration in milliseconds, written as [`duration_ms`] says (no allocation).
struct DurationMs(u64);

impl fmt::Display for DurationMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        let seconds = ms / 1000;
        let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
        match ms {
            0..1000 => write!(f, "{ms} ms"),
            1000..60_000 => write!(f, "{:.1} s", ms as f64 / 1000.0),
            _ if hours == 0 => write!(f, "{minutes}m {:02}s", seconds % 60),
            _ if days == 0 => write!(f, "{hours}h {:02}m", minutes % 60),
            _ => write!(f, "{days}d {:02}h", hours % 24),
        }
    }
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `12.0 MiB`.
fn bytes(count: u64) -> ByteCount {
    ByteCount(count)
}

/// A byte count, written as [`bytes()`] says (no allocation).
struct ByteCount(u64);

impl fmt::Display for ByteCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        let count = self.0;
        if count < 1024 {
            return write!(f, "{count} B");
        }
        let mut value = count as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

/// A bit rate in kbit/s, the unit encoders are set in.
fn bit_rate(bps: u64) -> String {
    format!("{} kbit/s", (bps + 500) / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::RunStats;

    fn stream(name: &str, mimetype: &str, url: Option<&str>) -> StreamView {
        StreamView {
            run: RunStats::default().view(name, 0, 0),
            feed: None,
            feeds: Vec::new(),
            paths: std::iter::once(format!("/stream/{name}"))
                .chain(url.map(str::to_string))
                .collect(),
            mimetype: mimetype.to_string(),
            client: "shared",
            clients: 0,
            skips: 0,
            clients_cut: 0,
            screenshot_requests: 0,
            screenshot_decodes: 0,
            framing: None,
        }
    }

    #[test]
    fn links_are_encoded_escaped_and_only_where_they_answer() {
        let video = stream("<a&\"", "video/mp2t", Some("/x/<b>"));
        let html = links(&video, Some(StreamKind::Stream)).into_string();
        assert_eq!(
            html,
            "<a href=\"/stream/%3Ca&amp;%22\">/stream/&lt;a&amp;&quot;</a> \
             <a href=\"/x/%3Cb%3E\">/x/&lt;b&gt;</a> \
             <a href=\"/stream/%3Ca&amp;%22?header&amp;keyframe\">?header&amp;keyframe</a> \
             <a href=\"/stream/%3Ca&amp;%22?keyframe=last\">?keyframe=last</a> \
             <a href=\"/stream/%3Ca&amp;%22/pic\">/pic</a>"
        );
        let audio = links(&stream("mp3", "audio/mpeg", None), Some(StreamKind::Stream));
        assert!(!audio.into_string().contains("/pic"));
        let shot = links(&stream("shot", "image/png", None), Some(StreamKind::Shot));
        assert_eq!(
            shot.into_string(),
            "<a href=\"/stream/shot\">/stream/shot</a> "
        );
    }

    #[test]
    fn units_are_human() {
        assert_eq!(bytes(0).to_string(), "0 B");
        assert_eq!(bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(bytes(12 * 1024 * 1024).to_string(), "12.0 MiB");
        assert_eq!(bit_rate(4_000_400), "4000 kbit/s");
        assert_eq!(bit_rate(499), "0 kbit/s");
        assert_eq!(duration_ms(850).to_string(), "850 ms");
        assert_eq!(duration_ms(12_345).to_string(), "12.3 s");
        assert_eq!(duration_ms(307_000).to_string(), "5m 07s");
        assert_eq!(duration_ms(3 * 3_600_000 + 120_000).to_string(), "3h 02m");
        assert_eq!(
            duration_ms(2 * 86_400_000 + 4 * 3_600_000).to_string(),
            "2d 04h"
        );
    }
}
