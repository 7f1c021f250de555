//! Child processes: each in its own process group; none outlives the server, even when
//! the server is killed with SIGKILL (PR_SET_PDEATHSIG for children, closed pipes for the
//! grandchildren of `sh -c 'a | b'`); SIGTERM stops everything within 2 s; no zombies.

mod common;

use std::time::{Duration, Instant};

use common::{ProcInfo, Server, Signal, descendants_of, proc_stat, ticker, wait_until};

const START: Duration = Duration::from_secs(20);

/// A config with a continuous pipeline feed (`sh` with two grandchildren), an on-demand
/// ffmpeg stream and a `cat` stream on the pipeline.
fn config() -> String {
    format!(
        r#"feeds:
  pipeline:
    command: sh -c 'while :; do echo pipeline; sleep 0.05; done | cat' pipelinefeed
    mode: continuous
streams:
  text:
    feed: pipeline
    command: cat
    mimetype: text/plain
  video:
    command: {}
    mimetype: multipart/x-mixed-replace;boundary=ffmpeg
"#,
        common::MPJPEG_SRC
    )
}

/// True when the process is gone, or a zombie (dead; reaping is its new parent's job).
fn dead(p: &ProcInfo) -> bool {
    proc_stat(p.pid).is_none_or(|now| now.start_time != p.start_time || now.state == 'Z')
}

#[test]
fn no_child_or_grandchild_survives_sigkill_of_the_server() {
    let mut server = Server::start(&config());
    let mut text = server.open("/stream/text");
    text.read_at_least(50, START);
    let mut video = server.open("/stream/video");
    video.read_at_least(1000, START);
    let procs = descendants_of(server.pid());
    let cmds: Vec<&str> = procs.iter().map(|p| p.cmdline.as_str()).collect();
    assert!(
        procs.iter().any(|p| p.cmdline.contains("pipelinefeed"))
            && procs
                .iter()
                .any(|p| p.cmdline == "cat" && p.ppid != server.pid())
            && procs.iter().any(|p| p.cmdline.contains("testsrc2")),
        "feed sh, its grandchildren and the ffmpeg stream run: {cmds:?}"
    );

    server.signal(Signal::Kill);
    assert!(server.wait_exit(Duration::from_secs(5)).is_some());
    let killed = Instant::now();
    assert!(
        wait_until(|| procs.iter().all(dead), Duration::from_secs(5)),
        "still alive {:?} after SIGKILL of the server: {:?}",
        killed.elapsed(),
        procs
            .iter()
            .filter(|p| !dead(p))
            .map(|p| format!("{} {}", p.pid, p.cmdline))
            .collect::<Vec<_>>()
    );
}

#[test]
fn sigterm_stops_everything_within_two_seconds() {
    let mut server = Server::start(&config());
    let mut video = server.open("/stream/video");
    video.read_at_least(1000, START);
    let procs = descendants_of(server.pid());
    assert!(!procs.is_empty());

    let started = Instant::now();
    let status = server.stop();
    let took = started.elapsed();
    assert!(status.success(), "exit status {status:?}");
    // INTERFACE.md: within 2 s; the extra 0.5 s is for polling and a busy machine.
    assert!(
        took < Duration::from_millis(2500),
        "SIGTERM → exit took {took:?}"
    );
    assert!(
        wait_until(|| procs.iter().all(dead), Duration::from_secs(2)),
        "children left after SIGTERM: {:?}",
        procs
            .iter()
            .filter(|p| !dead(p))
            .map(|p| &p.cmdline)
            .collect::<Vec<_>>()
    );
    assert!(
        server
            .log_lines()
            .last()
            .is_some_and(|l| l.contains("stopped")),
        "the last log line says the server stopped"
    );
}

#[test]
fn sigint_stops_the_server_too() {
    let mut server = Server::start(&config());
    server.signal(Signal::Int);
    let status = server
        .wait_exit(Duration::from_secs(3))
        .expect("exits on SIGINT");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn each_child_runs_in_its_own_process_group() {
    let server = Server::start(&config());
    // `>= 1`: the forked subshell of the `while` loop keeps the same command line.
    assert!(wait_until(
        || server.count_procs("pipelinefeed") >= 1,
        START
    ));
    let own = proc_stat(server.pid()).expect("server").pgid;
    let children: Vec<ProcInfo> = descendants_of(server.pid())
        .into_iter()
        .filter(|p| p.ppid == server.pid())
        .collect();
    assert!(!children.is_empty());
    for child in children {
        assert_eq!(
            child.pgid, child.pid,
            "{} leads its own group",
            child.cmdline
        );
        assert_ne!(
            child.pgid, own,
            "{} is not in the server's group",
            child.cmdline
        );
    }
}

#[test]
fn stopped_children_are_reaped() {
    let server = Server::start(&format!(
        "streams:\n  s:\n    command: {}\n    mimetype: text/plain\n",
        ticker("reapme")
    ));
    for _ in 0..3 {
        let mut client = server.open("/stream/s");
        client.read_at_least(20, START);
        client.close();
        assert!(wait_until(
            || server.count_procs("reapme") == 0,
            Duration::from_secs(5)
        ));
    }
    assert!(
        wait_until(|| server.zombies().is_empty(), Duration::from_secs(2)),
        "zombies: {:?}",
        server.zombies()
    );
}
