//! The switches and URLs of the status views (issue 17, item 6), through the real binary:
//! the status page, the status API and the metrics answer at their default paths, `status:`
//! moves each one or turns it off, upstream's `pages: {stat: false}` turns all three off, a
//! status path that another page or a stream already serves is a config error naming both, the
//! home page links to the configured status page, and `--check` prints the status section,
//! `clients` included.

mod common;

use std::time::Duration;

use common::{Server, check_yaml};

/// Two streams that never run in these tests (only the home page lists them).
const STREAMS: &str = "streams:\n  cam:\n    command: cat\n    url: /live/cam.ts\n  mic:\n    \
                       command: cat\n";

/// Asserts that each of `paths` answers the status page (`tests/status_page.rs` checks what
/// it shows).
fn assert_status_page(server: &Server, paths: &[&str]) {
    for path in paths {
        let resp = server.get(path);
        assert_eq!(resp.status, 200, "GET {path}: {}", resp.text());
        assert!(
            resp.text().contains("<title>voyandz status</title>"),
            "GET {path}: {}",
            resp.text()
        );
    }
}

/// Asserts that each of `paths` answers 404.
fn assert_not_found(server: &Server, paths: &[&str]) {
    for path in paths {
        let resp = server.get(path);
        assert_eq!(resp.status, 404, "GET {path}: {}", resp.text());
    }
}

#[test]
fn the_status_views_answer_at_their_default_paths() {
    let server = Server::start(STREAMS);
    assert_status_page(&server, &["/stat"]);
    assert_eq!(server.request("HEAD", "/stat").status, 200);
    assert_eq!(server.get("/metrics").status, 200);
    assert_eq!(server.request("HEAD", "/metrics").status, 200);
    assert_not_found(&server, &["/config", "/stat/", "/stats"]);
}

#[test]
fn status_paths_move_the_views_and_false_turns_one_off() {
    let yaml = format!(
        "{STREAMS}status:\n  page: status\n  api: /api/żółw.json\n  metrics: false\n  \
         clients: yes\n"
    );
    let server = Server::start(&yaml);
    // Requests are matched once decoded, as for stream urls.
    assert_status_page(&server, &["/status", "/%73tatus"]);
    assert_not_found(&server, &["/stat", "/stat.json", "/metrics"]);
}

#[test]
fn upstream_pages_stat_false_turns_all_three_off() {
    let server = Server::start(&format!("{STREAMS}pages:\n  stat: false\n"));
    assert_not_found(&server, &["/stat", "/stat.json", "/metrics"]);
    let home = server.get("/");
    assert_eq!(home.status, 200);
    assert!(
        !home.text().contains("status"),
        "no status link when it is off:\n{}",
        home.text()
    );
    // `pages.stat: true` (every upstream example writes it) keeps the defaults.
    let server = Server::start(&format!("{STREAMS}pages:\n  stat: true\n  config: true\n"));
    assert_status_page(&server, &["/stat"]);
    assert_eq!(server.get("/metrics").status, 200);
    assert_eq!(server.get("/config").status, 200);
}

#[test]
fn the_home_page_links_to_the_configured_status_page() {
    for (page, href) in [
        ("/stat", "/stat"),
        ("/stan/żółw&co", "/stan/%C5%BC%C3%B3%C5%82w&amp;co"),
    ] {
        let server = Server::start(&format!("{STREAMS}status:\n  page: '{page}'\n"));
        let home = server.get("/");
        assert_eq!(home.status, 200);
        let html = home.text();
        let link = format!("<a href=\"{href}\">");
        assert!(html.contains(&link), "{link} in\n{html}");
        for stream in ["/live/cam.ts", "/stream/mic"] {
            assert!(html.contains(&format!("<a href=\"{stream}\">")), "{html}");
        }
        // The link leads to the page (a browser un-escapes `&amp;` before requesting).
        assert_status_page(&server, &[&href.replace("&amp;", "&")]);
    }
}

#[test]
fn paths_already_served_are_config_errors_naming_both() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let yaml = format!(
        "{STREAMS}pages:\n  config: yes\nstatus:\n  page: /live/cam.ts\n  api: /stream/mic\n  \
         metrics: /config\n  clients: maybe\n"
    );
    let (path, out) = check_yaml(dir.path(), "clash.yaml", &yaml);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let file = path.display();
    let expected = [
        format!("{file}:13:12: status.clients: expected true or false, not \"maybe\""),
        format!("{file}:10:9: status.page: /live/cam.ts is already served by stream \"cam\""),
        format!("{file}:11:8: status.api: /stream/mic is already served by stream \"mic\""),
        format!(
            "{file}:12:12: status.metrics: /config is already served by the config page \
             (pages.config)"
        ),
    ];
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected, "{stderr}");

    // A stream's url on a default status path: the stream's url is what was written.
    let yaml = "streams:\n  cam:\n    command: cat\n    url: /metrics\n";
    let (path, out) = check_yaml(dir.path(), "default.yaml", yaml);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "{}:4:10: streams.cam.url: /metrics is the path of the metrics (status.metrics): \
             set another path there, or false",
            path.display()
        )
    );

    // Upstream's switch and a status path together contradict each other.
    let yaml = "pages:\n  stat: no\nstatus:\n  api: /j\n";
    let (path, out) = check_yaml(dir.path(), "both.yaml", yaml);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "{}:4:8: status.api: /j is on, but pages.stat: false",
            path.display()
        )),
        "{stderr}"
    );

    // The daemon refuses such a config with EX_CONFIG.
    let mut server = Server::spawn("status:\n  page: /stream/x\n  api: /stream/x\n");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon exits on a bad config");
    assert_eq!(status.code(), Some(78), "{}", server.log_text());
    assert!(
        server
            .log_text()
            .contains("status.api: /stream/x is already served by the status page (status.page)"),
        "{}",
        server.log_text()
    );
}

#[test]
fn check_prints_the_status_section() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let yaml = "status:\n  page: /s\n  metrics: off\n  clients: yes\n";
    let (_, out) = check_yaml(dir.path(), "status.yaml", yaml);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.ends_with(
            "status:\n  page: /s\n  api: /stat.json\n  metrics: false\n  clients: true\n"
        ),
        "{stdout}"
    );
    // Upstream's `pages.stat: false` prints as the three paths it turns off.
    let (_, out) = check_yaml(dir.path(), "stat.yaml", "pages:\n  stat: false\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.ends_with(
            "pages:\n  home: true\n  config: false\nstatus:\n  page: false\n  api: false\n  \
             metrics: false\n  clients: false\n"
        ),
        "{stdout}"
    );
    // The printed config loads back as it is.
    let (_, again) = check_yaml(dir.path(), "again.yaml", &stdout);
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);
}
