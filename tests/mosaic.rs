//! Upstream's `4x4` mosaic example (issue 16, item 2), at a small size: its mosaic stream is
//! an ffmpeg that reads four streams of the same server over HTTP and opens them one after
//! another, probing each, so it reads nothing from its first inputs for seconds. Those inputs
//! must be kept (paused, not dead), so every tile of the mosaic keeps changing.
//!
//! The config is `tests/data/upstream/4x4` with the camera and the video files replaced by
//! lavfi test sources (`testsrc2` moves) at 320x240, tiles of 176x144 in one row (upstream's first row), the full-size and
//! picture streams left out, and the server's port in the mosaic's URLs. As upstream's, each
//! matrix stream needs about 5 s to probe its feed before its first picture, so the mosaic's
//! ffmpeg reads nothing from its first input for some 15 s.

mod common;

use std::time::{Duration, Instant};

use common::{Server, gray_pixels};

/// A feed or the camera: an endless test picture in raw MJPEG, in real time, at the frame
/// rate of the videos upstream reads. `testsrc2` moves; the noise makes the pictures as big
/// as a camera's (about 800 kB/s here, 50 kB/s once scaled to a tile), so that a paused
/// input fills its socket buffers within seconds, as upstream's do. (At much less, ffmpeg 5's
/// format probe of a matrix stream's stdin, up to 1 MiB, would also take minutes instead of
/// the ~5 s a real video gives it.)
const SOURCE: &str = "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=320x240:rate=25,noise=alls=30:allf=t -f mjpeg -qmin 1 -qmax 6";
/// The tile size, the size of the mosaic (one row of four tiles, as upstream lays them out).
const TILE: (usize, usize) = (176, 144);
const MOSAIC_WIDTH: usize = 4 * TILE.0;
/// After this long every tile must still change (the old stall limit was 8 s).
const SETTLE: Duration = Duration::from_secs(20);
/// The mosaic's ffmpeg opens its four inputs one after another, each answering after ~6 s
/// (its matrix stream probes its feed first): its first picture comes after ~20 s, later on
/// a loaded machine.
const FIRST_PICTURE_MAX: Duration = Duration::from_secs(40);
/// Two mosaic pictures compared at least this far apart.
const APART: Duration = Duration::from_millis(1500);
/// A tile whose mean pixel difference between the two pictures is below this is frozen (a
/// frozen tile's JPEG is encoded again from the same pixels, so its difference is ~0).
const CHANGED_MIN: f64 = 1.0;

fn config() -> String {
    let matrix = |feed: &str| {
        format!(
            "  {feed}_matrix:\n    command: ffmpeg -i - -f mjpeg -qmin 1 -qmax 6 -s 176x144 -r 4 -\n    type: stream\n    mimetype: video/x-motion-jpeg\n    feed: {feed}\n"
        )
    };
    let input = |stream: &str| {
        format!(
            "      -an -r 4 -analyzeduration 10 -probesize 512 -f mjpeg -i http://127.0.0.1:{{port}}/stream/{stream}\n"
        )
    };
    let mut yaml = String::from("feeds:\n");
    for feed in ["vid1", "vid2", "bbb"] {
        yaml += &format!("  {feed}:\n    command: {SOURCE} -\n    mode: continuous\n");
    }
    yaml += "streams:\n";
    yaml += &format!(
        "  camera_matrix:\n    command: {SOURCE} -s 176x144 -r 4 -\n    type: stream\n    mimetype: video/x-motion-jpeg\n"
    );
    for feed in ["vid1", "vid2", "bbb"] {
        yaml += &matrix(feed);
    }
    yaml += "  4x4:\n    command: >-\n      ffmpeg -hide_banner -loglevel error -nostdin\n";
    for stream in ["camera_matrix", "vid1_matrix", "vid2_matrix", "bbb_matrix"] {
        yaml += &input(stream);
    }
    yaml += &format!(
        "      -filter_complex\n      \"nullsrc=size={MOSAIC_WIDTH}x{h} [base];\n      [base][0:v] overlay=repeatlast=1 [m1];\n      [m1][1:v] overlay=repeatlast=1:x={x1} [m2];\n      [m2][2:v] overlay=repeatlast=1:x={x2} [m3];\n      [m3][3:v] overlay=repeatlast=1:x={x3}\"\n      -f mpjpeg -qmin 1 -qmax 6 -r 4 -boundary_tag ffmpeg -\n    type: stream\n    mimetype: multipart/x-mixed-replace;boundary=ffmpeg\n",
        h = TILE.1,
        x1 = TILE.0,
        x2 = 2 * TILE.0,
        x3 = 3 * TILE.0,
    );
    yaml
}

/// The last whole JPEG picture in `bytes` (the parts of an MPJPEG body).
fn last_jpeg(bytes: &[u8]) -> Option<&[u8]> {
    let end = bytes.windows(2).rposition(|pair| pair == [0xFF, 0xD9])? + 2;
    let start = bytes[..end]
        .windows(2)
        .rposition(|pair| pair == [0xFF, 0xD8])?;
    Some(&bytes[start..end])
}

/// Mean absolute difference of each tile between two gray mosaic pictures.
fn tile_differences(a: &[u8], b: &[u8]) -> Vec<f64> {
    (0..4)
        .map(|tile| {
            let mut sum = 0u64;
            for y in 0..TILE.1 {
                for x in tile * TILE.0..(tile + 1) * TILE.0 {
                    let at = y * MOSAIC_WIDTH + x;
                    sum += u64::from(a[at].abs_diff(b[at]));
                }
            }
            sum as f64 / (TILE.0 * TILE.1) as f64
        })
        .collect()
}

#[test]
fn every_tile_of_upstreams_4x4_mosaic_keeps_changing() {
    let server = Server::start(&config());
    let mut client = server.open("/stream/4x4");
    assert_eq!(client.status, 200, "{:?}", server.log_lines());
    let opened = Instant::now();
    // Read (as a player does) until the mosaic's first picture, then until SETTLE.
    let mut first = Vec::new();
    while last_jpeg(&first).is_none() {
        assert!(
            opened.elapsed() < FIRST_PICTURE_MAX && !client.is_finished(),
            "no picture of the mosaic within {FIRST_PICTURE_MAX:?}: {:?}",
            server.log_lines()
        );
        first.extend(client.read_for(Duration::from_millis(200)));
    }
    client.read_for(SETTLE.saturating_sub(opened.elapsed()));
    assert!(
        !client.is_finished(),
        "the mosaic ended: {:?}",
        server.log_lines()
    );
    let mut pictures = Vec::new();
    for (index, wait) in [Duration::from_millis(500), APART].into_iter().enumerate() {
        let body = client.read_for(wait);
        let jpeg = last_jpeg(&body).unwrap_or_else(|| {
            panic!(
                "no picture of the mosaic {:?} after it opened: {:?}",
                opened.elapsed(),
                server.log_lines()
            )
        });
        let path = server.dir().join(format!("mosaic{index}.jpg"));
        std::fs::write(&path, jpeg).expect("write the picture");
        let gray = gray_pixels(&path);
        assert_eq!(gray.len(), MOSAIC_WIDTH * TILE.1, "the mosaic's size");
        pictures.push(gray);
    }
    let differences = tile_differences(&pictures[0], &pictures[1]);
    let cut: Vec<String> = server
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("client disconnected"))
        .collect();
    assert!(
        differences
            .iter()
            .all(|&difference| difference >= CHANGED_MIN),
        "frozen tiles after {SETTLE:?} (mean pixel change per tile: {differences:.2?}); \
         clients cut: {cut:#?}"
    );
}
