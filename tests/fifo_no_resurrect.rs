//! A named-pipe feed with `no-resurrect: true` ends when its writer leaves (its clients get
//! the end of the stream), but still waits for a writer that comes after the client; without
//! `no-resurrect` a later writer goes on feeding the same clients (tests/file_feed.rs).

mod common;

use std::time::Duration;

use common::{Server, holds_for, mkfifo, write_fifo};

const START: Duration = Duration::from_secs(20);

#[test]
fn no_resurrect_fifo_waits_for_a_late_writer_and_ends_when_it_leaves() {
    let server = Server::start(
        "feeds:\n  pipe:\n    file: {tmp}/in.fifo\n    no-resurrect: true\n\
         streams:\n  s:\n    feed: pipe\n    mimetype: text/plain\n",
    );
    let fifo = server.dir().join("in.fifo");
    mkfifo(&fifo);
    let mut client = server.open("/stream/s");
    assert_eq!(client.status, 200);
    assert!(server.wait_log("opened", START), "{}", server.log_text());
    // No writer yet: the feed must neither end nor deliver anything.
    assert!(
        holds_for(
            || client.read_for(Duration::from_millis(50)).is_empty() && !client.is_finished(),
            Duration::from_secs(1)
        ),
        "the feed ended before any writer came:\n{}",
        server.log_text()
    );

    let writer = write_fifo(fifo, "late-writer\n", Duration::from_millis(500));
    let body = client.read_at_least(24, START);
    assert!(String::from_utf8_lossy(&body).contains("late-writer\n"));
    assert!(writer.join().expect("writer") > 0);
    // The writer left: the stream ends (its body ends with a clean close).
    assert!(
        client.wait_closed(Duration::from_secs(10)),
        "the client's stream went on after the writer left:\n{}",
        server.log_text()
    );
    assert!(server.wait_log("not resurrected", Duration::from_secs(5)));
}
