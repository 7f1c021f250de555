//! `voyandz --check`: every shipped config loads (ours and upstream voyandz 0.3.1's
//! examples, unchanged); config errors name file:line:column and the key path, exit 1; the
//! daemon itself exits 78 (EX_CONFIG) on a bad config.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Server, check, check_yaml};

fn shipped(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            !(name.starts_with("LICENSE")
                || name.starts_with("README")
                || name.starts_with("NOTICE")
                || name.ends_with(".md")
                || name.ends_with(".txt"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_upstream_example_config_loads_unchanged() {
    let files = shipped("tests/data/upstream");
    assert_eq!(
        files.len(),
        14,
        "upstream 0.3.1 ships 14 example configs: {files:?}"
    );
    for file in files {
        let out = check(&file);
        assert!(
            out.status.success(),
            "{}: exit {:?}\n{}",
            file.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = String::from_utf8_lossy(&out.stdout);
        assert!(
            yaml.contains("streams:"),
            "{}: final config printed",
            file.display()
        );
    }
}

#[test]
fn shipped_configs_load() {
    let files = shipped("config");
    assert!(files.iter().any(|f| f.ends_with("demo.yaml")));
    for file in files {
        let out = check(&file);
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs --check on `yaml` and asserts exit 1, nothing on stdout, and an error line
/// starting with `FILE:LINE:` (and `FILE:LINE:COL:` when `col` is given) that names `key`.
fn assert_error(yaml: &str, line: u32, col: Option<u32>, key: &str) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (path, out) = check_yaml(dir.path(), "bad.yaml", yaml);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr:\n{stderr}");
    assert!(out.stdout.is_empty(), "no config printed on error");
    let prefix = match col {
        Some(col) => format!("{}:{line}:{col}:", path.display()),
        None => format!("{}:{line}:", path.display()),
    };
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(key)),
        "expected a line starting {prefix:?} naming {key:?}; stderr:\n{stderr}"
    );
}

#[test]
fn boolean_mode_is_an_error_with_location_and_key() {
    // Upstream silently read `mode: yes` as a 1 s timeout.
    assert_error(
        "feeds:\n  cam0:\n    command: cat /dev/zero\n    mode: yes\n",
        4,
        Some(11),
        "feeds.cam0.mode",
    );
}

#[test]
fn unknown_key_is_an_error() {
    assert_error(
        "streams:\n  s:\n    comand: cat\n    mimetype: x/y\n",
        3,
        Some(5),
        "streams.s.comand",
    );
}

#[test]
fn wrong_type_is_an_error() {
    assert_error(
        "listenport: 99999\nstreams:\n  s:\n    command: cat\n    mimetype: x/y\n",
        1,
        None,
        "listenport",
    );
}

#[test]
fn missing_feed_is_an_error() {
    assert_error(
        "streams:\n  s:\n    command: cat\n    feed: nosuchfeed\n    mimetype: x/y\n",
        4,
        None,
        "streams.s.feed",
    );
}

#[test]
fn feed_cycle_is_an_error() {
    assert_error(
        "feeds:\n  a:\n    command: cat\n    feed: b\n  b:\n    command: cat\n    feed: a\n",
        4,
        None,
        "feeds.a.feed",
    );
}

#[test]
fn duplicate_url_is_an_error() {
    assert_error(
        "streams:\n  s:\n    command: cat\n    url: /x\n    mimetype: x/y\n  t:\n    command: cat\n    url: /x\n    mimetype: x/y\n",
        8,
        None,
        "streams.t.url",
    );
}

#[test]
fn daemon_exits_78_on_a_bad_config() {
    let mut server = Server::spawn("feeds:\n  cam0:\n    command: cat\n    mode: yes\n");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon exits on a bad config");
    assert_eq!(status.code(), Some(78), "EX_CONFIG");
    let log = server.log_text();
    assert!(log.contains("feeds.cam0.mode"), "log names the key:\n{log}");
}

#[test]
fn missing_device_is_only_a_warning_for_check() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (_, out) = check_yaml(
        dir.path(),
        "ok.yaml",
        "logdir: /nonexistent/voyandz-test-logs\nstreams:\n  cam:\n    command: ffmpeg -i /dev/video-voyandz-test -f mjpeg -\n    mimetype: video/x-motion-jpeg\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--check` of a shipped config, its stdout (the final config) as text.
fn printed(path: &Path) -> String {
    let out = check(path);
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 config")
}

#[test]
fn templates_and_sets_print_what_their_hand_expanded_twin_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let resolved = printed(&root.join("config/appliance.yaml"));
    let twin = printed(&root.join("tests/data/templates/appliance-expanded.yaml"));
    assert_eq!(resolved, twin);
    for word in ["template", "sets:", "args:", "values:", "{"] {
        assert!(!resolved.contains(word), "{word} left in:\n{resolved}");
    }
    // The printed config is a config too, and loads again to itself.
    let dir = tempfile::tempdir().expect("temporary directory");
    let (_, again) = check_yaml(dir.path(), "again.yaml", &resolved);
    assert_eq!(String::from_utf8_lossy(&again.stdout), resolved);
}

#[test]
fn template_and_set_errors_name_where_they_were_written() {
    let templates =
        "templates:\n  t:\n    command: enc {args} {nope} -\n  loop:\n    template: loop\n";
    let cases = [
        // An unknown template, at the stream that names it.
        (
            format!("{templates}streams:\n  s:\n    template: tt\n"),
            8,
            15,
            "streams.s.template",
        ),
        // An unknown placeholder, in the template (and the stream using it is named too).
        (
            format!("{templates}streams:\n  s:\n    template: t\n"),
            3,
            14,
            "templates.t.command",
        ),
        // A template that refers to itself.
        (
            format!("{templates}streams:\n  s:\n    template: loop\n"),
            5,
            15,
            "templates.loop.template",
        ),
        // template: together with command:.
        (
            format!("{templates}streams:\n  s:\n    template: t\n    command: cat\n"),
            9,
            14,
            "streams.s.command",
        ),
        // An item field no definition uses.
        (
            "sets:\n  s:\n    items:\n      - {id: a, dev: x}\n    feeds:\n      \"{id}\": {command: cat}\n".to_owned(),
            4,
            17,
            "sets.s.items.0.dev",
        ),
        // A set that makes a stream URL twice.
        (
            "feeds:\n  f:\n    command: cat\nsets:\n  s:\n    items: [{id: a}, {id: b}]\n    streams:\n      \"{id}\": {feed: f, url: /x}\n".to_owned(),
            8,
            30,
            "streams.b.url",
        ),
    ];
    for (yaml, line, col, key) in cases {
        assert_error(&yaml, line, Some(col), key);
    }
}
