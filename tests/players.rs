//! Real players on live streams (the acceptance of issue 16): mpv and GStreamer
//! (`souphttpsrc ! decodebin`) play the plain URL of a TS, WebM, fragmented MP4 and FLV stream
//! that has been running for a few seconds (so they join mid-stream, as any viewer does) for
//! five seconds each, decode frames all along, and print no decoder error.
//!
//! WebM, fMP4 and FLV cannot be decoded without their header, so their plain URL starts with
//! it, at a keyframe: not one error line is allowed. MPEG-TS keeps raw live bytes on its plain
//! URL (the first byte at once; a TS player finds its way in): mpv complains about the slices
//! before the first keyframe, which the spec allows ("gibberish at the start"), but nothing may
//! be reported once it shows pictures.
//!
//! The streams are small and cheap to encode (320x240, 15 fps, a keyframe every second) and
//! paced with `-re` like a camera. Both players of a stream run at once; each run is bounded
//! by `timeout`, so a player that hangs fails the test instead of blocking it.

mod common;

use std::process::{Command, ExitStatus};
use std::thread;
use std::time::Duration;

use common::{run_bounded, running_stream};

/// How long a stream runs before the players come: its header and first keyframe are long
/// gone, so a player gets what it gets mid-stream.
const RUN_BEFORE_PLAY: Duration = Duration::from_secs(3);
/// How long each player plays (seconds, as the players take it).
const PLAY_SECONDS: &str = "5";
/// A player still running after this is stopped (with SIGINT, then SIGKILL 2 s later): its
/// start-up (probing the stream) plus [`PLAY_SECONDS`], with room for a loaded machine.
const PLAYER_SECONDS_MAX: &str = "12";
/// The test's own bound on a player run, past `timeout`'s.
const PLAYER_MAX: Duration = Duration::from_secs(15);
/// Frames a player must decode in its five seconds at 15 fps (75): it may lose up to a
/// second waiting for a keyframe and more probing the stream.
const FRAMES_MIN: u64 = 30;
/// Words of the lines players print when a decoder or demuxer meets data it cannot use
/// (lower case): a stream that starts without its header or between keyframes shows them.
const ERROR_WORDS: &[&str] = &[
    "error",
    "invalid",
    "non-existing pps",
    "decode_slice",
    "no frame",
    "corrupt",
    "could not",
    "missing",
    "broken",
];

/// The common start of every stream command: quiet, no stdin, a moving test picture and a
/// tone paced in real time. A live stream carries sound, and GStreamer needs it in FLV: with
/// no audio tag, flvdemux waits six seconds of video for one before decodebin plays anything.
const SOURCE: &str = "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=320x240:rate=15 -re -f lavfi -i sine=frequency=440:sample_rate=48000";
/// H.264 with a keyframe every second and no encoder delay, and AAC.
const H264_AAC: &str =
    "-c:v libx264 -preset ultrafast -tune zerolatency -g 15 -pix_fmt yuv420p -c:a aac -b:a 64k";
/// A player under test.
struct Player {
    name: &'static str,
    /// Its command line for a URL.
    args: fn(&str) -> Vec<String>,
    /// When `timeout` stops it: mpv stops itself after [`PLAY_SECONDS`], gst-launch-1.0 is
    /// stopped then.
    seconds_max: &'static str,
    /// Environment it runs with.
    env: &'static [(&'static str, &'static str)],
    /// What precedes the count of frames decoded so far in its output.
    frames_label: &'static str,
    /// What it prints once it shows pictures.
    showing: &'static str,
}

const MPV: Player = Player {
    name: "mpv",
    args: |url| {
        [
            "mpv",
            "--no-config",
            "--vo=null",
            "--ao=null",
            &format!("--length={PLAY_SECONDS}"),
            "--term-playing-msg=playing ${width}x${height}",
            // Printed at each status update, even without a terminal.
            "--term-status-msg=frames=${estimated-frame-number}\\n",
            url,
        ]
        .map(String::from)
        .to_vec()
    },
    seconds_max: PLAYER_SECONDS_MAX,
    env: &[],
    frames_label: "frames=",
    showing: "playing ",
};

const GSTREAMER: Player = Player {
    name: "gstreamer",
    args: |url| {
        [
            "gst-launch-1.0",
            // At SIGINT: end of stream, so the pipeline stops cleanly.
            "-e",
            "-v",
            "souphttpsrc",
            &format!("location={url}"),
            "!",
            "decodebin",
            "name=decoded",
            "decoded.",
            "!",
            "video/x-raw",
            "!",
            "queue",
            "!",
            // Prints "rendered: N" every half second with -v.
            "fpsdisplaysink",
            "video-sink=fakesink",
            "text-overlay=false",
            "sync=true",
            "decoded.",
            "!",
            "audio/x-raw",
            "!",
            "queue",
            "!",
            "fakesink",
            "sync=true",
        ]
        .map(String::from)
        .to_vec()
    },
    seconds_max: PLAY_SECONDS,
    // Errors only: decoders (gst-libav relays ffmpeg's errors) and elements.
    env: &[("GST_DEBUG", "1")],
    frames_label: "rendered: ",
    showing: "rendered: ",
};

/// How a stream's plain URL starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// With the header, at a keyframe: a player prints no decoder error at all.
    Clean,
    /// With raw live bytes (MPEG-TS keeps them, for the first byte at once): the data before
    /// the first keyframe may make a decoder complain ("gibberish at the start", as the spec
    /// allows), but nothing may once the player shows pictures.
    Raw,
}

/// What a player did with a URL.
struct Run {
    /// It ended on its own, or `timeout` stopped it at the end of its time (124): not a
    /// failure to open or decode the stream.
    ended_well: bool,
    /// Its exit status, for the failure message.
    status: ExitStatus,
    /// Frames it decoded.
    frames: u64,
    /// Its stdout and stderr, in the order printed.
    text: String,
}

/// Plays `url` with `player` for [`PLAY_SECONDS`].
fn play(player: &Player, url: &str) -> Run {
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            "exec \"$@\" 2>&1",
            "sh",
            "timeout",
            "-s",
            "INT",
            "-k",
            "2",
        ])
        .arg(player.seconds_max)
        .args((player.args)(url))
        .envs(player.env.iter().copied());
    let output = run_bounded(&mut command, None, PLAYER_MAX);
    let text = String::from_utf8_lossy(&output.stdout).replace('\r', "\n");
    Run {
        ended_well: output.status.success() || output.status.code() == Some(124),
        status: output.status,
        frames: last_number(&text, player.frames_label),
        text,
    }
}

/// The number after the last `label` in `text` (0 when there is none).
fn last_number(text: &str, label: &str) -> u64 {
    text.rsplit_once(label)
        .and_then(|(_, rest)| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or(0)
}

/// The lines of a player's output that report a decoding problem (for a raw start, only
/// those printed once it shows pictures). GStreamer's `-v` output (property changes and
/// caps, lines starting with `/`) names elements, not problems.
fn error_lines<'a>(text: &'a str, player: &Player, start: Start) -> Vec<&'a str> {
    let from = match start {
        Start::Clean => 0,
        Start::Raw => text.find(player.showing).unwrap_or(text.len()),
    };
    text[from..]
        .lines()
        .filter(|line| !line.starts_with('/'))
        .filter(|line| {
            let line = line.to_lowercase();
            ERROR_WORDS.iter().any(|word| line.contains(word))
        })
        .collect()
}

/// Runs `command` as a stream, lets it run, then plays its plain URL in both players at once.
fn check(command: &str, mimetype: &str, start: Start) {
    // The players join the stream mid-stream, not at its first byte.
    let (server, keeper) = running_stream("s", command, mimetype, RUN_BEFORE_PLAY);
    // The plain URL, no join parameter: what a user tries first.
    let url = server.url("/stream/s");
    let failures: Vec<String> = thread::scope(|scope| {
        let runs: Vec<_> = [&MPV, &GSTREAMER]
            .map(|player| {
                let url = &url;
                scope.spawn(move || (player, play(player, url)))
            })
            .into_iter()
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("player thread"))
            .filter_map(|(player, run)| {
                let errors = error_lines(&run.text, player, start);
                let problem = if !run.ended_well {
                    format!("failed ({})", run.status)
                } else if !errors.is_empty() {
                    format!("decoder errors:\n{}", errors.join("\n"))
                } else if run.frames < FRAMES_MIN {
                    let frames = run.frames;
                    format!("{frames} frames in {PLAY_SECONDS} s, {FRAMES_MIN} expected")
                } else {
                    return None;
                };
                let (name, text) = (player.name, &run.text);
                Some(format!(
                    "{name} on {mimetype} {url}: {problem}\n--- output:\n{text}"
                ))
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(keeper.finish() > 0, "the keeping client got nothing");
}

#[test]
fn mpegts_plays_from_its_plain_url() {
    check(
        &format!("{SOURCE} {H264_AAC} -f mpegts -muxdelay 0 -flush_packets 1 -"),
        "video/mp2t",
        Start::Raw,
    );
}

#[test]
fn webm_plays_from_its_plain_url() {
    check(
        &format!(
            "{SOURCE} -c:v libvpx -deadline realtime -cpu-used 8 -lag-in-frames 0 -g 15 -b:v 300k -c:a libopus -b:a 32k -f webm -cluster_time_limit 100 -flush_packets 1 -"
        ),
        "video/webm",
        Start::Clean,
    );
}

#[test]
fn fragmented_mp4_plays_from_its_plain_url() {
    check(
        &format!(
            "{SOURCE} {H264_AAC} -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof -flush_packets 1 -"
        ),
        "video/mp4",
        Start::Clean,
    );
}

#[test]
fn flv_plays_from_its_plain_url() {
    check(
        &format!("{SOURCE} {H264_AAC} -f flv -flush_packets 1 -"),
        "video/x-flv",
        Start::Clean,
    );
}
