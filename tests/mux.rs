//! Multi-feed streams with real ffmpeg: a video-only feed (H.264 in MPEG-TS) and an audio-only
//! feed (AAC in ADTS) muxed into MPEG-TS and WebM, each feed on its own pipe (`{feed:NAME}`).
//! Both outputs carry a video and an audio stream; each feed runs once for two muxing streams
//! and five clients; a killed audio feed is resurrected and the muxed stream goes on without
//! its process being restarted. An input the command never reads holds back no other.

mod common;

use std::time::Duration;

use common::{Server, Signal, probe_streams, rss_kib, send_signal, ticker, wait_until};

const FFMPEG: &str = "ffmpeg -hide_banner -loglevel error -nostdin";
/// Marks the video feed's command line.
const VIDEO_MARK: &str = "testsrc2=size=160x120:rate=10";
/// Marks the audio feed's command line.
const AUDIO_MARK: &str = "sine=frequency=441";
/// How the muxing commands read their two inputs: short probing, no input buffering.
const MUX_IN: &str = "-fflags nobuffer -probesize 32768 -analyzeduration 1000000 \
                      -f mpegts -i {feed:cam} -f aac -i {feed:mic} -map 0:v -map 1:a";
/// Enough of a stream for ffprobe to see both its streams: two seconds at these rates.
const PROBE_BYTES: usize = 24_000;
const START: Duration = Duration::from_secs(20);

fn config() -> String {
    format!(
        "feeds:\n\
         \x20 cam:\n    command: {FFMPEG} -re -f lavfi -i {VIDEO_MARK} -c:v libx264 -preset ultrafast \
         -tune zerolatency -g 10 -pix_fmt yuv420p -f mpegts -\n\
         \x20 mic:\n    command: {FFMPEG} -re -f lavfi -i {AUDIO_MARK}:sample_rate=48000 -c:a aac \
         -b:a 64k -f adts -\n\
         streams:\n\
         \x20 ts:\n    feeds: [cam, mic]\n    mimetype: video/mp2t\n    command: {FFMPEG} {MUX_IN} \
         -c copy -f mpegts -\n\
         \x20 webm:\n    feeds: [cam, mic]\n    mimetype: video/webm\n    command: {FFMPEG} {MUX_IN} \
         -c:v libvpx -deadline realtime -cpu-used 8 -b:v 200k -c:a libopus -f webm -\n"
    )
}

#[test]
fn two_feeds_mux_into_ts_and_webm_and_each_feed_runs_once() {
    let server = Server::start(&config());
    let mut clients: Vec<_> = ["/stream/ts", "/stream/ts", "/stream/ts", "/stream/webm"]
        .into_iter()
        .chain(["/stream/webm"])
        .map(|path| server.open(path))
        .collect();
    for client in &clients {
        assert_eq!(client.status, 200);
    }
    let ts = clients[0].read_at_least(PROBE_BYTES, START);
    let webm = clients[3].read_at_least(PROBE_BYTES, START);
    assert_eq!(probe_streams(&ts), ["h264,video", "aac,audio"]);
    assert_eq!(probe_streams(&webm), ["vp8,video", "opus,audio"]);
    for client in &mut clients {
        assert!(!client.read_at_least(1000, START).is_empty());
    }
    assert_eq!(
        server.count_procs(VIDEO_MARK),
        1,
        "{:?}",
        server.descendants()
    );
    assert_eq!(
        server.count_procs(AUDIO_MARK),
        1,
        "{:?}",
        server.descendants()
    );
    assert_eq!(
        server.count_procs("-map 1:a"),
        2,
        "{:?}",
        server.descendants()
    );
}

#[test]
fn a_killed_audio_feed_is_resurrected_and_the_mux_goes_on() {
    let server = Server::start(&config());
    let mut client = server.open("/stream/ts");
    client.read_at_least(PROBE_BYTES, START);
    let mux = server.children("-map 1:a");
    let mic = server.children(AUDIO_MARK);
    assert_eq!((mux.len(), mic.len()), (1, 1), "{:?}", server.descendants());

    send_signal(mic[0], Signal::Kill);
    assert!(
        wait_until(
            || server
                .children(AUDIO_MARK)
                .first()
                .is_some_and(|pid| *pid != mic[0]),
            Duration::from_secs(5)
        ),
        "the audio feed was not resurrected: {:?}",
        server.descendants()
    );
    let after = client.read_at_least(PROBE_BYTES, START);
    assert_eq!(probe_streams(&after), ["h264,video", "aac,audio"]);
    assert_eq!(
        server.children("-map 1:a"),
        mux,
        "the muxing process was restarted"
    );
}

#[test]
fn an_input_the_command_never_reads_holds_back_no_other() {
    // `flood` fills its pipe (fd 3) at once and is never read; `tick` (fd 4) must go on.
    let server = Server::start(&format!(
        "feeds:\n  flood:\n    command: sh -c 'while :; do head -c 65536 /dev/zero; sleep 0.01; done'\n\
         \x20 tick:\n    command: {}\n\
         streams:\n  s:\n    feeds: [flood, tick]\n    mimetype: text/plain\n\
         \x20   command: sh -c 'exec cat \"$1\"' unread {{feed-path:tick}} {{feed:flood}}\n",
        ticker("muxtick")
    ));
    let mut client = server.open("/stream/s");
    assert_eq!(client.status, 200);
    client.read_at_least(1, START);
    // The flood's hub keeps up to 4 MiB for late readers (hub::LAG_BYTES_MAX), and the
    // allocator keeps what it freed in per-thread arenas: both level off within seconds. From
    // then on nothing more may be kept; kept, the flood would add about 6.5 MB a second.
    std::thread::sleep(Duration::from_millis(2500));
    let rss_before = rss_kib(server.pid()).expect("the server runs");
    // Four seconds later (about 26 MB more of `flood`) the ticks still arrive, one every
    // 50 ms: nothing waits on `flood`, and what it wrote is not kept.
    std::thread::sleep(Duration::from_secs(3));
    let late = client.read_for(Duration::from_secs(1));
    let ticks = String::from_utf8_lossy(&late).matches("muxtick").count();
    assert!(ticks >= 10, "{ticks} ticks in a second: {late:?}");
    let grown = rss_kib(server.pid())
        .expect("the server runs")
        .saturating_sub(rss_before);
    assert!(grown < 6 * 1024, "the server grew by {grown} KiB in 4 s");
}
