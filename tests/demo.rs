//! `config/demo.yaml` works as the README says: each stream carries what its name promises
//! (checked with ffprobe, the muxed `dub` too), and each feed runs once for all of them.

mod common;

use std::time::Duration;

use common::{Server, probe_streams};

const START: Duration = Duration::from_secs(30);

#[test]
fn demo_streams_carry_what_they_promise() {
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.yaml"))
        .expect("read config/demo.yaml");
    // The socket comes from the helper (fd 3): the demo's fixed port is not used.
    let server = Server::start(&yaml);

    let mut ts = server.open("/stream/ts");
    assert_eq!(ts.header("content-type"), Some("video/mp2t"));
    let mut mjpeg = server.open("/stream/mjpeg");
    assert_eq!(
        mjpeg.header("content-type"),
        Some("multipart/x-mixed-replace;boundary=voyandz")
    );
    let mut mp3 = server.open("/stream/mp3");
    assert_eq!(mp3.header("content-type"), Some("audio/mpeg"));

    let ts_bytes = ts.read_at_least(300_000, START);
    let mut probed = probe_streams(&ts_bytes);
    probed.sort();
    assert_eq!(probed, ["aac,audio", "h264,video"], "ts stream");

    let mjpeg_bytes = mjpeg.read_at_least(100_000, START);
    assert!(
        mjpeg_bytes.windows(9).any(|w| w == b"--voyandz"),
        "mpjpeg boundary"
    );
    assert!(
        mjpeg_bytes.windows(3).any(|w| w == [0xff, 0xd8, 0xff]),
        "JPEG frames"
    );

    let mp3_bytes = mp3.read_at_least(20_000, START);
    assert_eq!(probe_streams(&mp3_bytes), ["mp3,audio"], "mp3 stream");

    // Two feeds muxed: the video of `testsrc`, the audio of `mic`.
    let mut dub = server.open("/stream/dub");
    let dub_bytes = dub.read_at_least(300_000, START);
    assert_eq!(
        probe_streams(&dub_bytes),
        ["h264,video", "aac,audio"],
        "dub stream"
    );
    assert_eq!(server.count_procs("sine=frequency=660"), 1, "one mic feed");

    let shot = server.get("/stream/shot");
    assert_eq!(shot.status, 200);
    assert_eq!(shot.header("content-type"), Some("image/png"));
    assert_eq!(&shot.body[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(probe_streams(&shot.body), ["png,video"]);

    assert_eq!(
        server.count_procs("testsrc2=size=640x360"),
        1,
        "one feed for all streams"
    );
    assert_eq!(
        server.request("HEAD", "/demo.ts").status,
        200,
        "the ts stream's url alias"
    );
}
