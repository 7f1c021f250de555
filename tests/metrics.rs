//! Prometheus metrics at `/metrics` (issue 17, item 5), through the real binary: Debian's
//! `promtool check metrics` accepts what a plain client gets (the classic text format), a
//! real Prometheus server scrapes it (OpenMetrics, as it asks) and finds `up == 1` and the
//! test stream's series, counters rise while a client reads, pictures and slow clients cut
//! are counted per stream, and `status.metrics: false` turns the path off.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Server, StreamReader, get_at, run_bounded, wait_until};

/// A small MPEG-TS feed (H.264, a keyframe a second) and `live`, a stream relaying it: the
/// metrics have a feed and a stream.
const CONFIG: &str = "feeds:\n  cam:\n    command: ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=160x120:rate=10 -c:v libx264 -preset ultrafast -tune zerolatency -g 10 -pix_fmt yuv420p -f mpegts -muxdelay 0 -flush_packets 1 -\nstreams:\n  live:\n    feed: cam\n    mimetype: video/mp2t\n";
/// How long Prometheus gets to start and scrape (it scrapes every second).
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(40);
/// How long counters get to show what a client did.
const COUNT_TIMEOUT: Duration = Duration::from_secs(15);

/// The value of the sample `series` (name and labels as written) in a classic text body.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// A server on [`CONFIG`] and a client reading `live`, which has received its first bytes.
fn reading() -> (Server, StreamReader) {
    let server = Server::start(CONFIG);
    let mut client = server.open("/stream/live");
    assert_eq!(client.status, 200);
    client.read_at_least(1, Duration::from_secs(15));
    (server, client)
}

/// `/metrics` as a plain client (no `Accept`) gets it: the classic text format.
fn scrape(server: &Server) -> String {
    scrape_at(server, "/metrics")
}

/// The metrics at `path` as a plain client gets them.
fn scrape_at(server: &Server, path: &str) -> String {
    let resp = server.get(path);
    assert_eq!(resp.status, 200, "GET {path}: {}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    resp.text()
}

/// Waits until `series` is at least `min` on `/metrics`; returns the last body.
fn wait_sample(server: &Server, series: &str, min: f64) -> String {
    let mut body = String::new();
    let reached = wait_until(
        || {
            body = scrape(server);
            sample(&body, series).is_some_and(|value| value >= min)
        },
        COUNT_TIMEOUT,
    );
    assert!(reached, "{series} did not reach {min}:\n{body}");
    body
}

#[test]
fn promtool_accepts_the_metrics() {
    let (server, mut client) = reading();
    client.read_at_least(10_000, Duration::from_secs(15));
    let body = wait_sample(
        &server,
        "voyandz_feed_received_bytes_total{feed=\"cam\"}",
        1.0,
    );
    for series in [
        "voyandz_build_info{version=\"0.1.0\"}",
        "voyandz_feed_state{feed=\"cam\",state=\"running\"}",
        "voyandz_stream_clients{stream=\"live\"}",
        "voyandz_stream_sent_bytes_total{stream=\"live\"}",
        "voyandz_http_requests_total{code=\"200\"}",
        "voyandz_connections_total",
    ] {
        assert!(sample(&body, series).is_some(), "no {series} in\n{body}");
    }
    let out = run_bounded(
        Command::new("promtool").args(["check", "metrics"]),
        Some(body.clone().into_bytes()),
        Duration::from_secs(20),
    );
    let problems = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && problems.trim().is_empty(),
        "promtool check metrics: {:?}\n{problems}\non:\n{body}",
        out.status
    );

    // A scraper that asks for OpenMetrics gets it, whole (`# EOF` last).
    let mut reader = server.send_raw(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        reader.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let openmetrics =
        String::from_utf8_lossy(&reader.read_for(Duration::from_secs(2))).into_owned();
    assert!(
        openmetrics.contains("# TYPE voyandz_stream_sent_bytes counter\n")
            && openmetrics.ends_with("# EOF\n"),
        "{openmetrics}"
    );
}

/// A Prometheus server scraping `target` every second from a temporary directory; killed
/// (and reaped) when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: u16) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("voyandz-prometheus-")
            .tempdir()
            .expect("temporary directory");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - \
                 job_name: voyandz\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        // A free port: bound here and released for Prometheus (it binds by itself).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (scripts/setup-debian.sh installs it)");
        Prometheus { child, port, dir }
    }

    /// The JSON answer of an instant query (`query` must need no URL escaping).
    fn query(&self, query: &str) -> String {
        get_at(self.port, &format!("/api/v1/query?query={query}"))
            .filter(|resp| resp.status == 200)
            .map(|resp| resp.text())
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_metrics() {
    let (server, _client) = reading();
    let prometheus = Prometheus::start(server.port());
    let mut up = String::new();
    let scraped = wait_until(
        || {
            up = prometheus.query("up");
            up.contains("\"job\":\"voyandz\"") && up.contains(",\"1\"]")
        },
        PROMETHEUS_TIMEOUT,
    );
    assert!(
        scraped,
        "Prometheus does not see the target up: {up}\nlog:\n{}",
        prometheus.log()
    );
    let mut series = String::new();
    let found = wait_until(
        || {
            series = prometheus.query("voyandz_stream_sent_bytes_total");
            series.contains("\"stream\":\"live\"")
        },
        PROMETHEUS_TIMEOUT,
    );
    assert!(found, "no voyandz_ series for the stream: {series}");
    // OpenMetrics' info metric arrives under its sample's name.
    assert!(
        prometheus
            .query("voyandz_build_info")
            .contains("\"version\":\"0.1.0\""),
        "{}",
        prometheus.query("voyandz_build_info")
    );
}

#[test]
fn counters_rise_while_a_client_reads() {
    let (server, mut client) = reading();
    let sent = "voyandz_stream_sent_bytes_total{stream=\"live\"}";
    let received = "voyandz_feed_received_bytes_total{feed=\"cam\"}";
    let before = scrape(&server);
    let (sent_before, received_before) = (
        sample(&before, sent).expect("sent bytes"),
        sample(&before, received).expect("received bytes"),
    );
    client.read_at_least(20_000, Duration::from_secs(15));
    let body = wait_sample(&server, sent, sent_before + 20_000.0);
    let received_after = sample(&body, received).expect("received bytes");
    assert!(received_after > received_before, "{body}");
    assert_eq!(
        sample(&body, "voyandz_stream_clients{stream=\"live\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "voyandz_stream_state{stream=\"live\",state=\"running\"}"
        ),
        Some(1.0)
    );
    // The stream's answer and the scrapes before this one were 200s, each on its own
    // connection (this scrape's answer is counted once it is rendered).
    let requests = sample(&body, "voyandz_http_requests_total{code=\"200\"}").expect("200s");
    let connections = sample(&body, "voyandz_connections_total").expect("connections");
    assert!(
        requests >= 2.0 && connections > requests,
        "{requests} requests, {connections} connections:\n{body}"
    );
    assert!(server.get("/no/such/page").status == 404);
    wait_sample(&server, "voyandz_http_requests_total{code=\"404\"}", 1.0);
}

#[test]
fn pictures_and_slow_clients_cut_are_counted_per_stream() {
    // `raw`: raw pixels, no container to resume in: a paused client is cut when it reads again.
    let server = Server::start(&format!(
        "{CONFIG}  raw:\n    command: ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=160x120:rate=10 -f rawvideo -pix_fmt gray -\n    mimetype: application/octet-stream\n"
    ));
    let picture = server.get("/stream/live/pic");
    assert_eq!(picture.status, 200, "{}", picture.text());
    let body = scrape(&server);
    assert_eq!(
        sample(
            &body,
            "voyandz_stream_screenshot_requests_total{stream=\"live\"}"
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "voyandz_stream_screenshot_decodes_total{stream=\"live\"}"
        ),
        Some(1.0),
        "{body}"
    );

    let mut paused = server.open("/stream/raw");
    assert_eq!(paused.status, 200);
    paused.read_at_least(20_000, Duration::from_secs(15));
    // The pause itself: longer than the hub keeps data (2 s), far shorter than the stall limit.
    std::thread::sleep(Duration::from_secs(4));
    assert!(paused.wait_closed(Duration::from_secs(10)), "not cut");
    let body = wait_sample(
        &server,
        "voyandz_stream_clients_cut_total{stream=\"raw\"}",
        1.0,
    );
    assert_eq!(
        sample(&body, "voyandz_stream_clients_cut_total{stream=\"live\"}"),
        Some(0.0),
        "{body}"
    );
}

#[test]
fn metrics_false_turns_the_path_off() {
    let server = Server::start(&format!("{CONFIG}status:\n  metrics: false\n"));
    assert_eq!(server.get("/metrics").status, 404);
    let server = Server::start(&format!("{CONFIG}status:\n  metrics: /prometheus\n"));
    assert_eq!(server.get("/metrics").status, 404);
    assert!(scrape_at(&server, "/prometheus").contains("voyandz_build_info"));
}
