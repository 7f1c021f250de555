//! Feeds read from a file or a named pipe (`file: PATH`), reopened when the writer goes
//! away (SPEC: resurrection "also applies when the input comes from a file or a named pipe").

mod common;

use std::time::{Duration, Instant};

use common::{Server, mkfifo, write_fifo};

const START: Duration = Duration::from_secs(20);

#[test]
fn named_pipe_feed_is_read_and_reopened_after_the_writer_leaves() {
    let server = Server::start(
        "feeds:\n  pipe:\n    file: {tmp}/in.fifo\nstreams:\n  s:\n    feed: pipe\n    mimetype: text/plain\n",
    );
    let fifo = server.dir().join("in.fifo");
    mkfifo(&fifo);

    let first = write_fifo(fifo.clone(), "first-writer\n", Duration::from_secs(1));
    let mut client = server.open("/stream/s");
    assert_eq!(client.status, 200);
    let body = client.read_at_least(100, START);
    assert!(String::from_utf8_lossy(&body).contains("first-writer\n"));
    assert!(first.join().expect("writer") > 0);

    // The writer closed its end (EOF for the server): the feed is reopened and a new
    // writer's bytes reach the same client.
    let second = write_fifo(fifo, "second-writer\n", Duration::from_secs(2));
    let deadline = Instant::now() + START;
    let mut seen = String::new();
    while !seen.contains("second-writer\n") && Instant::now() < deadline {
        seen.push_str(&String::from_utf8_lossy(
            &client.read_for(Duration::from_millis(200)),
        ));
        assert!(!client.is_finished(), "the client's stream ended at EOF");
    }
    assert!(seen.contains("second-writer\n"), "got {seen:?}");
    assert!(second.join().expect("writer") > 0);
}

#[test]
fn regular_file_feed_is_read_from_the_start() {
    let server = Server::start(
        "feeds:\n  file:\n    file: {tmp}/data.txt\nstreams:\n  s:\n    feed: file\n    command: cat\n    mimetype: text/plain\n",
    );
    let mut content = String::new();
    for i in 0..2000 {
        content.push_str(&format!("record {i:05}\n"));
    }
    std::fs::write(server.dir().join("data.txt"), &content).expect("write the file");
    let mut client = server.open("/stream/s");
    assert_eq!(client.status, 200);
    let body = client.read_at_least(content.len(), START);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.starts_with("record 00000\n"),
        "starts at the file's start"
    );
    assert!(text.contains("record 01999\n"));
}
