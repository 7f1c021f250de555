//! The Prometheus metrics (`/metrics`): the [`StatusView`] and the server's [`TrafficView`]
//! as metric families, encoded by the Prometheus project's own `prometheus-client` crate.
//!
//! A registry is built for each scrape from the view, rather than kept for the server's life
//! with its own counters: the view already holds every number (the data path counts once,
//! in [`crate::stats`]), a scrape is a few hundred series every few seconds, and a feed or
//! stream that a reload removes is gone from the next scrape instead of lingering as a stale
//! series. Counters are the totals since the server started (a restart resets them, which
//! `rate()` expects).
//!
//! Two formats share that registry: OpenMetrics 1.0 for a scraper that asks for it in its
//! `Accept` header (Prometheus does), and the classic Prometheus text format 0.0.4 for
//! everyone else (`curl`, `promtool check metrics`, older scrapers), whose parser does not
//! know OpenMetrics' `_total` suffix rule and would read every counter as an untyped series
//! without help. This module only renders; routing is [`crate::http::routes`]'s job.

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::StatusView;
use crate::stats::{RunView, State, StreamView, TrafficView};

/// Every metric's name starts with this (`voyandz_...`).
const PREFIX: &str = "voyandz";
/// The `Content-Type` of OpenMetrics text, the version `prometheus-client` writes.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A counter of every feed and of every stream: name after `feed_` or `stream_`, help with
/// `{kind}` for `feed` or `stream`, unit, and its value in the run's view.
type RunCounter = (
    &'static str,
    &'static str,
    Option<Unit>,
    fn(&RunView) -> u64,
);
/// The counters [`runs`] shows of each feed and stream.
const RUN_COUNTERS: [RunCounter; 3] = [
    (
        "restarts",
        "Times the {kind} was resurrected",
        None,
        |run| run.restarts,
    ),
    (
        "received",
        "Bytes read from the {kind}'s process or file",
        Some(Unit::Bytes),
        |run| run.bytes_in,
    ),
    (
        "sent",
        "Bytes sent to the {kind}'s HTTP clients",
        Some(Unit::Bytes),
        |run| run.bytes_out,
    ),
];

/// A counter of every stream: name, help and its value in the stream's view.
type StreamCounter = (&'static str, &'static str, fn(&StreamView) -> u64);
/// The counters shown of each stream only (what its HTTP clients did).
const STREAM_COUNTERS: [StreamCounter; 4] = [
    (
        "stream_skips",
        "Times the stream's clients fell behind live and skipped ahead to a keyframe",
        |stream| stream.skips,
    ),
    (
        "stream_clients_cut",
        "Clients of the stream cut off for falling too far behind live",
        |stream| stream.clients_cut,
    ),
    (
        "stream_screenshot_requests",
        "Requests for a picture of the stream (/pic)",
        |stream| stream.screenshot_requests,
    ),
    (
        "stream_screenshot_decodes",
        "Decoder runs for pictures of the stream (concurrent requests share one)",
        |stream| stream.screenshot_decodes,
    ),
];

/// A metric's labels: `feed` or `stream` with its name, and for some a second one.
type Labels = Vec<(&'static str, String)>;

/// The exposition format of one scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Prometheus,
}

impl Format {
    /// The format for a request's `Accept` header: OpenMetrics when it asks for it at least
    /// as much as for plain text (Prometheus asks for both, OpenMetrics first), the classic
    /// text otherwise, also when it asks for nothing in particular.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let (mut openmetrics, mut plain) = (0.0_f32, 0.0_f32);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let quality = parts
                .filter_map(|parameter| parameter.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
                "text/plain" | "text/*" | "*/*" => plain = plain.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= plain {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Self::Prometheus => prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The metrics of `view` and `traffic` in `format`.
pub fn render(view: &StatusView, traffic: &TrafficView, format: Format) -> String {
    let registry = registry(view, traffic);
    let mut body = String::new();
    let encoded = match format {
        Format::OpenMetrics => text::encode(&mut body, &registry),
        Format::Prometheus => prometheus_text::encode(&mut body, &registry),
    };
    encoded.expect("writing to a String cannot fail");
    body
}

fn registry(view: &StatusView, traffic: &TrafficView) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register(
        "build",
        "The running voyandz",
        Info::new(vec![("version", view.server.version.to_string())]),
    );
    let started: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
    started.set(view.server.started_at.timestamp_millis() as f64 / 1000.0);
    registry.register_with_unit(
        "start_time",
        "When the server started, in seconds since the Unix epoch",
        Unit::Seconds,
        started,
    );
    let connections: Counter = Counter::default();
    connections.inc_by(traffic.connections);
    registry.register("connections", "TCP connections accepted", connections);
    let open: Gauge = Gauge::default();
    open.set(i64::try_from(traffic.open_connections).unwrap_or(i64::MAX));
    registry.register("open_connections", "TCP connections open now", open);
    counters(
        &mut registry,
        "http_requests",
        "HTTP requests answered, by status code",
        None,
        (traffic.requests.iter()).map(|(code, count)| (vec![("code", code.to_string())], *count)),
    );

    let feeds: Vec<&RunView> = view.state.feeds.iter().collect();
    runs(&mut registry, "feed", &feeds);
    let streams = &view.state.streams;
    let runs_of_streams: Vec<&RunView> = streams.iter().map(|stream| &stream.run).collect();
    runs(&mut registry, "stream", &runs_of_streams);
    let per_stream = |value: fn(&StreamView) -> u64| {
        (streams.iter())
            .map(move |stream| (vec![("stream", stream.run.name.clone())], value(stream)))
    };
    gauges(
        &mut registry,
        "stream_clients",
        "HTTP clients connected to the stream",
        per_stream(|stream| stream.clients as u64),
    );
    for (name, help, value) in STREAM_COUNTERS {
        counters(&mut registry, name, help, None, per_stream(value));
    }
    registry
}

/// What feeds and streams have in common, each labelled `kind` (`feed` or `stream`) with its
/// name. A relay stream shows its feed's run, as the status views do.
fn runs(registry: &mut Registry, kind: &'static str, runs: &[&RunView]) {
    let named = |run: &RunView| vec![(kind, run.name.clone())];
    gauges(
        registry,
        &format!("{kind}_state"),
        &format!("The {kind}'s state: 1 for the current one, 0 for the others"),
        (runs.iter()).flat_map(|run| {
            State::ALL.map(|state| {
                let mut labels = named(run);
                labels.push(("state", state.name().to_string()));
                (labels, u64::from(run.state == state))
            })
        }),
    );
    for (name, help, unit, value) in RUN_COUNTERS {
        counters(
            registry,
            &format!("{kind}_{name}"),
            &help.replace("{kind}", kind),
            unit,
            runs.iter().map(|run| (named(run), value(run))),
        );
    }
    gauges(
        registry,
        &format!("{kind}_subscribers"),
        &format!("The {kind}'s subscribers: HTTP clients and commands of streams reading it"),
        runs.iter().map(|run| (named(run), run.subscribers as u64)),
    );
}

fn counters(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) {
    let family = Family::<Labels, Counter>::default();
    for (labels, value) in samples {
        family.get_or_create(&labels).inc_by(value);
    }
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, family),
        None => registry.register(name, help, family),
    }
}

fn gauges(
    registry: &mut Registry,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) {
    let family = Family::<Labels, Gauge>::default();
    for (labels, value) in samples {
        family
            .get_or_create(&labels)
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }
    registry.register(name, help, family);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_gets_openmetrics_and_everyone_else_the_classic_text() {
        let prometheus_2 = "application/openmetrics-text;version=1.0.0,\
            application/openmetrics-text;version=0.0.1;q=0.75,\
            text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let prometheus_3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
            text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,*/*;q=0.1";
        for accept in [prometheus_2, prometheus_3] {
            assert_eq!(
                Format::negotiate(Some(accept)),
                Format::OpenMetrics,
                "{accept}"
            );
        }
        for accept in [
            None,
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain, application/openmetrics-text;q=0.5"),
            Some("application/openmetrics-text;q=0"),
        ] {
            assert_eq!(Format::negotiate(accept), Format::Prometheus, "{accept:?}");
        }
    }
}
