//! Feed and stream lifecycle, counted in processes: one feed and one stream process however
//! many clients; on-demand start and stop; timeout mode; continuous and autostart; feed
//! chains; `client: exclusive`.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{Server, holds_for, ticker, wait_until};

/// Long enough for ffmpeg to start on a busy 2-core machine.
const START: Duration = Duration::from_secs(20);
/// On-demand processes stop once the last client is gone: allow for the server noticing
/// the closed socket at its next write and for the SIGTERM → exit of the child.
const STOP: Duration = Duration::from_secs(5);

#[test]
fn two_clients_get_identical_bytes_from_one_feed_and_one_stream_process() {
    let server = Server::start(
        r#"feeds:
  cam:
    command: ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=160x120:rate=25 -c:v mjpeg -q:v 10 -f mjpeg -
streams:
  shared:
    feed: cam
    command: ffmpeg -hide_banner -loglevel error -probesize 32 -analyzeduration 0 -f mjpeg -i - -c:v copy -f mpjpeg -boundary_tag twoclients -
    mimetype: multipart/x-mixed-replace;boundary=twoclients
"#,
    );
    let mut first = server.open("/stream/shared");
    assert_eq!(first.status, 200);
    first.read_at_least(10_000, START);
    let mut second = server.open("/stream/shared");
    assert_eq!(second.status, 200);
    // Both read at the same time for 3 s.
    let reader = thread::spawn(move || {
        let data = second.read_for(Duration::from_secs(3));
        (second, data)
    });
    let a = first.read_for(Duration::from_secs(3));
    let (second, b) = reader.join().expect("second client thread");
    assert!(b.len() > 20_000, "second client got {} bytes", b.len());

    // The second client joined later: its bytes are a stretch of the first client's. Find
    // where a window from its middle sits in the first client's bytes, then compare all the
    // overlap byte for byte.
    let mid = b.len() / 2;
    let window = &b[mid..mid + 2048];
    let pos = a
        .windows(window.len())
        .position(|w| w == window)
        .expect("the second client's bytes appear in the first client's");
    let offset = pos as isize - mid as isize; // a[i + offset] == b[i]
    let start = (-offset).max(0) as usize;
    let end = b.len().min((a.len() as isize - offset) as usize);
    assert!(
        end - start > b.len() * 8 / 10,
        "overlap {} of {} bytes",
        end - start,
        b.len()
    );
    for i in start..end {
        assert_eq!(
            b[i],
            a[(i as isize + offset) as usize],
            "byte {i} of the second client differs"
        );
    }

    assert_eq!(server.count_procs("testsrc2=size=160x120:rate=25"), 1);
    assert_eq!(server.count_procs("boundary_tag twoclients"), 1);
    drop(second);
}

#[test]
fn on_demand_starts_with_first_client_and_stops_after_last() {
    let server = Server::start(&format!(
        "feeds:\n  f:\n    command: {}\nstreams:\n  s:\n    feed: f\n    command: cat\n    mimetype: text/plain\n",
        ticker("ondemandfeed")
    ));
    let cat = || {
        server
            .descendants()
            .iter()
            .filter(|(_, cmd)| cmd == "cat")
            .count()
    };
    assert!(
        holds_for(
            || server.count_procs("ondemandfeed") == 0 && cat() == 0,
            Duration::from_millis(500)
        ),
        "nothing runs before the first client: {:?}",
        server.descendants()
    );

    let mut one = server.open("/stream/s");
    one.read_at_least(50, START);
    assert_eq!(server.count_procs("ondemandfeed"), 1);
    assert_eq!(cat(), 1);

    let mut two = server.open("/stream/s");
    two.read_at_least(50, START);
    one.close();
    assert!(
        holds_for(
            || server.count_procs("ondemandfeed") == 1 && cat() == 1,
            Duration::from_secs(1)
        ),
        "one client left, one remains: both processes keep running"
    );
    two.read_at_least(50, Duration::from_secs(5));

    two.close();
    assert!(
        wait_until(
            || server.count_procs("ondemandfeed") == 0 && cat() == 0,
            STOP
        ),
        "feed and stream stop after the last client: {:?}",
        server.descendants()
    );

    // And start again with a new client.
    let mut three = server.open("/stream/s");
    let body = three.read_at_least(50, START);
    assert!(String::from_utf8_lossy(&body).contains("ondemandfeed"));
    assert_eq!(server.count_procs("ondemandfeed"), 1);
}

#[test]
fn timeout_mode_keeps_the_feed_for_its_seconds() {
    let server = Server::start(&format!(
        "feeds:\n  f:\n    command: {}\n    mode: 3\nstreams:\n  s:\n    feed: f\n    mimetype: text/plain\n",
        ticker("timeoutfeed")
    ));
    assert!(
        holds_for(
            || server.count_procs("timeoutfeed") == 0,
            Duration::from_millis(500)
        ),
        "a timeout-mode feed is on-demand: not running before a client"
    );
    let mut client = server.open("/stream/s");
    client.read_at_least(50, START);
    client.close();
    let left = Instant::now();
    // Still alive well before the 3 s are over...
    assert!(
        holds_for(
            || server.count_procs("timeoutfeed") == 1,
            Duration::from_secs(2)
        ),
        "feed died {:?} after the last client left, before its 3 s timeout",
        left.elapsed()
    );
    // ...and gone after them.
    assert!(
        wait_until(
            || server.count_procs("timeoutfeed") == 0,
            Duration::from_secs(3) + STOP
        ),
        "feed still running {:?} after the last client left (timeout 3 s)",
        left.elapsed()
    );
    assert!(
        left.elapsed() >= Duration::from_millis(2900),
        "stopped after {:?}, before its timeout",
        left.elapsed()
    );
}

#[test]
fn client_returning_within_timeout_reuses_the_feed() {
    let server = Server::start(&format!(
        "feeds:\n  f:\n    command: {}\n    mode: 5\nstreams:\n  s:\n    feed: f\n    mimetype: text/plain\n",
        ticker("timeoutreuse")
    ));
    let mut client = server.open("/stream/s");
    client.read_at_least(50, START);
    let pid = server.children("timeoutreuse");
    assert_eq!(pid.len(), 1);
    client.close();
    // The server has seen the client leave: the feed is now only kept by its timeout.
    assert!(server.wait_log("client disconnected", Duration::from_secs(5)));
    let mut again = server.open("/stream/s");
    again.read_at_least(50, START);
    assert_eq!(
        server.children("timeoutreuse"),
        pid,
        "the same feed process serves the returning client"
    );
}

#[test]
fn continuous_and_autostart_run_before_any_client_and_for_ever() {
    let server = Server::start(&format!(
        "feeds:\n  c:\n    command: {}\n    mode: continuous\n  a:\n    command: {}\n    mode: autostart\nstreams:\n  s:\n    feed: c\n    mimetype: text/plain\n",
        ticker("contfeed"),
        ticker("autofeed")
    ));
    assert!(
        wait_until(
            || server.count_procs("contfeed") == 1 && server.count_procs("autofeed") == 1,
            START
        ),
        "continuous and autostart feeds start with the server: {:?}",
        server.descendants()
    );
    let mut client = server.open("/stream/s");
    client.read_at_least(50, START);
    client.close();
    assert!(
        holds_for(
            || server.count_procs("contfeed") == 1 && server.count_procs("autofeed") == 1,
            Duration::from_secs(2)
        ),
        "they keep running after the last client left"
    );
}

#[test]
fn feed_chain_pipes_one_feed_into_the_next() {
    let server = Server::start(&format!(
        "feeds:\n  raw:\n    command: {}\n  upper:\n    feed: raw\n    command: sed -u s/chain/CHAIN/\nstreams:\n  s:\n    feed: upper\n    mimetype: text/plain\n",
        ticker("chainfeed")
    ));
    let mut client = server.open("/stream/s");
    let body = client.read_at_least(100, START);
    assert!(String::from_utf8_lossy(&body).contains("CHAINfeed\n"));
    assert_eq!(server.count_procs("chainfeed"), 1);
    assert_eq!(server.count_procs("sed -u s/chain/CHAIN/"), 1);
    client.close();
    assert!(
        wait_until(
            || server.count_procs("chainfeed") == 0 && server.count_procs("sed -u") == 0,
            STOP
        ),
        "both feeds of the chain stop with the last client: {:?}",
        server.descendants()
    );
}

#[test]
fn exclusive_clients_each_get_their_own_process() {
    let server = Server::start(&format!(
        "streams:\n  x:\n    command: {}\n    mimetype: text/plain\n    client: exclusive\n",
        ticker("exclusivestream")
    ));
    let mut one = server.open("/stream/x");
    one.read_at_least(50, START);
    let mut two = server.open("/stream/x");
    two.read_at_least(50, START);
    assert_eq!(server.count_procs("exclusivestream"), 2);
    one.close();
    assert!(
        wait_until(|| server.count_procs("exclusivestream") == 1, STOP),
        "the first client's process ends with it"
    );
    two.read_at_least(50, Duration::from_secs(5));
}

#[test]
fn shared_stream_of_one_feed_by_two_streams_runs_the_feed_once() {
    let server = Server::start(&format!(
        "feeds:\n  f:\n    command: {}\nstreams:\n  a:\n    feed: f\n    command: cat\n    mimetype: text/plain\n  b:\n    feed: f\n    command: sed -u s/two/TWO/\n    mimetype: text/plain\n",
        ticker("twostreams")
    ));
    let mut a = server.open("/stream/a");
    let mut b = server.open("/stream/b");
    assert!(String::from_utf8_lossy(&a.read_at_least(50, START)).contains("twostreams"));
    assert!(String::from_utf8_lossy(&b.read_at_least(100, START)).contains("TWOstreams"));
    assert_eq!(
        server.count_procs("twostreams"),
        1,
        "SPEC: the new stream cannot open a duplicate feed"
    );
}
