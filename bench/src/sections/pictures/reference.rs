//! The decoder reference for the picture rows: the server's screenshot decoder command line
//! (`ffmpeg … -vf reverse -frames:v 1 …`, as in its screenshot module) run by the bench itself
//! on a 25-frame GOP file, from spawn to exit. What ffmpeg costs on this machine without the
//! server; the picture rows' notes give it beside the server's figure.

use std::path::Path;

use super::{HEIGHT, WIDTH};
use crate::report::{Row, ms};
use voyandz_bench::clock::now_ns;

/// Frames in the reference GOP: the average position of the newest picture in a 50-frame GOP.
const REFERENCE_FRAMES: &str = "25";
/// Timed runs of the decoder on the reference file.
const REFERENCE_RUNS: usize = 5;

/// `ffmpeg` that prints only errors and never reads the terminal.
fn quiet_ffmpeg() -> std::process::Command {
    let mut cmd = std::process::Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"]);
    cmd
}

/// Encodes the reference: 25 frames (1 s) of the feed's picture and codec settings, one GOP.
pub(super) fn make_reference(path: &Path) -> Result<(), String> {
    let out = quiet_ffmpeg()
        .args(["-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={WIDTH}x{HEIGHT}:rate=25"))
        .args([
            "-frames:v",
            REFERENCE_FRAMES,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args([
            "-tune",
            "zerolatency",
            "-g",
            "50",
            "-f",
            "mpegts",
            "-muxdelay",
            "0",
        ])
        .arg(path)
        .output()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The reference for a picture row: the server's decoder command line (as in its
/// screenshot module) run by the bench on a 25-frame GOP file, from spawn to exit. What
/// ffmpeg itself costs here, without the server.
pub(super) fn add_reference(row: &mut Row, made: &Result<(), String>, file: &Path, codec: &[&str]) {
    if let Err(e) = made {
        row.add_note(format!("no decoder reference: {e}"));
        return;
    }
    let mut times = Vec::new();
    for i in 0..=REFERENCE_RUNS {
        let Ok(input) = std::fs::File::open(file) else {
            return;
        };
        let t0 = now_ns();
        let out = quiet_ffmpeg()
            .args(["-f", "mpegts"])
            .args(["-i", "pipe:0", "-an", "-vf", "reverse", "-frames:v", "1"])
            .args(["-f", "image2pipe"])
            .args(codec)
            .arg("pipe:1")
            .stdin(input)
            .output();
        match out {
            Ok(o) if o.status.success() && !o.stdout.is_empty() => {
                if i > 0 {
                    times.push(now_ns() - t0);
                }
            }
            _ => {
                row.add_note("decoder reference failed");
                return;
            }
        }
    }
    times.sort_unstable();
    row.add_note(format!(
        "ffmpeg alone on a {REFERENCE_FRAMES}-frame GOP file: median {}",
        ms(times[times.len() / 2])
    ));
}
