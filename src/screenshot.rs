//! Screenshots: `<stream url>/pic` answers with the stream's most recent picture.
//!
//! The picture is decoded by an ffmpeg-like program from the stream's cached header and newest
//! whole pictures since a keyframe, so nobody waits for the next keyframe while the stream
//! runs; an idle stream is started and its first pictures are used. For MJPEG and MPJPEG a
//! default-quality JPEG is the last whole picture itself (no process). Requests for the same
//! picture that arrive together share one decode: a wall of cameras polled every second must
//! not start a decoder per viewer. Audio-only streams have no picture (415). voyandz decodes
//! nothing itself, as the spec asks.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::container::{Container, jpeg};
use crate::fanout::hub::{BATCH_CHUNKS_MAX, Event, Hub};
use crate::fanout::join::{BadParameter, Join, parameters};
use crate::fanout::pipe::write_batch;
use crate::lifecycle::Tasks;
use crate::process::child::{self, Child, StderrBudget};
use crate::stream::Stream;
use tokio_util::task::AbortOnDropHandle;

/// The spec's default JPEG quality, in percent.
pub const DEFAULT_QUALITY: u8 = 85;
/// How long a request waits for an idle stream's first whole picture: a camera and its
/// encoder take a moment to start, and a GOP can be seconds long.
const FIRST_PICTURE_WAIT: Duration = Duration::from_secs(10);
/// How long a decoder started ahead of need may wait for its picture: past that, nobody is
/// polling the stream any more, and it is replaced (or, at shutdown, killed).
const STANDBY_MAX_AGE: Duration = Duration::from_secs(30);
/// How long a request waits for the first picture of a GOP that has just begun (a frame or
/// two) rather than decoding the whole previous GOP, which is older and slower to decode.
const FRESH_PICTURE_WAIT: Duration = Duration::from_millis(100);
/// The longest a decode may take before the client is told so.
const DECODE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest picture kept from a decoder's output (a 4K PNG is ~25 MiB).
const PICTURE_BYTES_MAX: u64 = 64 << 20;

/// Picture formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JPEG at a quality in percent; `explicit` when the client asked for that quality.
    Jpeg {
        /// 1..=100.
        quality: u8,
        /// Whether `quality` came from the URL (a cached JPEG can only serve the default).
        explicit: bool,
    },
    /// PNG.
    Png,
}

impl Format {
    /// The Content-Type of the picture.
    pub fn mimetype(self) -> &'static str {
        match self {
            Format::Jpeg { .. } => "image/jpeg",
            Format::Png => "image/png",
        }
    }
}

/// The picture path suffixes: `/pic` (JPEG unless `?format=png`), `/pic.jpg`, `/pic.png`.
pub fn split_picture_path(path: &str) -> Option<(&str, Option<Format>)> {
    let default_jpeg = Format::Jpeg {
        quality: DEFAULT_QUALITY,
        explicit: false,
    };
    [
        ("/pic", None),
        ("/pic.jpg", Some(default_jpeg)),
        ("/pic.jpeg", Some(default_jpeg)),
        ("/pic.png", Some(Format::Png)),
    ]
    .into_iter()
    .find_map(|(suffix, format)| Some((path.strip_suffix(suffix)?, format)))
}

/// The format a picture request asks for: the path's suffix, then `format=` and `quality=`.
pub fn format_from_query(
    from_path: Option<Format>,
    query: Option<&str>,
) -> Result<Format, BadParameter> {
    let mut format = from_path.unwrap_or(Format::Jpeg {
        quality: DEFAULT_QUALITY,
        explicit: false,
    });
    let bad = |name: &str, value: &str, expected| BadParameter {
        name: name.to_string(),
        value: value.to_string(),
        expected,
    };
    let mut quality = None;
    for (name, value) in parameters(query, &["format", "quality"])? {
        let (name, value) = (name.as_ref(), value.as_deref().unwrap_or_default());
        match name {
            "format" => {
                format = match value.to_ascii_lowercase().as_str() {
                    "png" => Format::Png,
                    "jpg" | "jpeg" => format_jpeg(format),
                    _ => return Err(bad(name, value, "png or jpeg")),
                }
            }
            "quality" => match value.parse::<u8>() {
                Ok(percent @ 1..=100) => quality = Some(percent),
                _ => return Err(bad(name, value, "a whole number from 1 to 100")),
            },
            _ => {}
        }
    }
    if let (Some(quality), Format::Jpeg { .. }) = (quality, format) {
        format = Format::Jpeg {
            quality,
            explicit: true,
        };
    }
    Ok(format)
}

fn format_jpeg(current: Format) -> Format {
    match current {
        Format::Jpeg { .. } => current,
        Format::Png => Format::Jpeg {
            quality: DEFAULT_QUALITY,
            explicit: false,
        },
    }
}

/// ffmpeg's mjpeg encoder quantiser (2 best .. 31 worst) for a quality in percent.
pub fn jpeg_qscale(quality: u8) -> u8 {
    let quality = u32::from(quality.clamp(1, 100));
    (2 + ((100 - quality) * 29 + 49) / 99) as u8
}

/// Why there is no picture.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScreenshotError {
    /// The stream carries no video (415).
    #[error("stream \"{0}\" is audio only: it has no picture")]
    AudioOnly(String),
    /// Its container is not understood, so its pictures cannot be found (415).
    #[error("stream \"{0}\" has no container voyandz understands, so no picture")]
    Opaque(String),
    /// The stream could not start (502).
    #[error("{0}")]
    Failed(String),
    /// No whole picture arrived in time (504).
    #[error("stream \"{0}\" gave no whole picture within {1:?}")]
    NoPicture(String, Duration),
    /// The decoder failed (502).
    #[error("decoding a picture of stream \"{0}\" failed: {1}")]
    Decode(String, String),
}

/// Shares concurrent decodes of the same picture.
#[derive(Default)]
pub struct Screenshots {
    flights: Mutex<HashMap<(String, Format), Flight>>,
    /// At most one waiting decoder per stream (a client cycling through qualities must not
    /// start a decoder per quality).
    standby: Arc<Mutex<HashMap<String, Standby>>>,
    budget: StderrBudget,
}

type Flight = watch::Receiver<Option<Result<Bytes, ScreenshotError>>>;

impl Screenshots {
    /// The most recent picture of `stream` in `format`.
    pub async fn take(
        &self,
        stream: &Stream,
        format: Format,
        tasks: &Tasks,
    ) -> Result<Bytes, ScreenshotError> {
        stream.clients().screenshot_requested();
        let key = (stream.config.name.clone(), format);
        let joined = {
            let mut flights = self.flights.lock().expect("screenshot lock poisoned");
            match flights.get(&key) {
                Some(flight) => Err(flight.clone()),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    flights.insert(key.clone(), receiver);
                    Ok(sender)
                }
            }
        };
        match joined {
            Err(mut flight) => {
                let result = flight.wait_for(Option::is_some).await;
                match result.as_deref() {
                    Ok(Some(picture)) => picture.clone(),
                    _ => Err(ScreenshotError::NoPicture(key.0, FIRST_PICTURE_WAIT)),
                }
            }
            Ok(sender) => {
                let picture = self.capture(stream, format, tasks).await;
                self.flights
                    .lock()
                    .expect("screenshot lock poisoned")
                    .remove(&key);
                sender.send_replace(Some(picture.clone()));
                picture
            }
        }
    }

    async fn capture(
        &self,
        stream: &Stream,
        format: Format,
        tasks: &Tasks,
    ) -> Result<Bytes, ScreenshotError> {
        let name = &stream.config.name;
        if stream
            .config
            .mimetype
            .trim()
            .to_ascii_lowercase()
            .starts_with("audio/")
        {
            return Err(ScreenshotError::AudioOnly(name.clone()));
        }
        // Holding a subscription keeps an on-demand stream running until the picture is taken.
        let mut subscriber = stream.subscribe(Join::Keyframe, tasks);
        let hub = Arc::clone(subscriber.hub());
        let asked = tokio::time::Instant::now();
        let waited = tokio::time::timeout(FIRST_PICTURE_WAIT, async {
            let mut batch = VecDeque::new();
            loop {
                let mut patience = FIRST_PICTURE_WAIT;
                if let Some(found) = pictures(&hub, name)? {
                    // A new GOP has just begun: its first picture is a frame away, and it is
                    // both newer and far quicker to decode than the whole previous GOP.
                    patience = FRESH_PICTURE_WAIT.saturating_sub(asked.elapsed());
                    if found.current || found.is_jpeg() || patience.is_zero() {
                        return Ok(found);
                    }
                }
                batch.clear();
                let next = subscriber.next(&mut batch, BATCH_CHUNKS_MAX);
                match tokio::time::timeout(patience, next).await {
                    Ok(Event::Closed | Event::Ended) => {
                        return Err(ScreenshotError::NoPicture(name.clone(), FIRST_PICTURE_WAIT));
                    }
                    Ok(Event::Failed(reason)) => {
                        return Err(ScreenshotError::Failed(reason.to_string()));
                    }
                    // Data, or the freshness wait is over: look again.
                    Ok(Event::Data | Event::Skipped | Event::Lagged) | Err(_) => {}
                }
            }
        })
        .await;
        let found =
            waited.map_err(|_| ScreenshotError::NoPicture(name.clone(), FIRST_PICTURE_WAIT))??;
        drop(subscriber);
        if found.is_jpeg()
            && format
                == (Format::Jpeg {
                    quality: DEFAULT_QUALITY,
                    explicit: false,
                })
            && let Some(jpeg) = whole_jpeg(&found.units)
        {
            return Ok(jpeg);
        }
        let program = decoder_program(stream);
        let argv = decoder_argv(&program, found.container, format);
        let started = tokio::time::Instant::now();
        stream.clients().screenshot_decoding();
        let decoded = match self.decoder(name, &argv) {
            Ok(child) => decode(child, found.header, found.units).await,
            Err(error) => Err(error),
        };
        if let Ok(picture) = &decoded {
            tracing::info!(
                stream = %name,
                format = format.mimetype(),
                bytes = picture.len(),
                took = ?started.elapsed(),
                "picture decoded"
            );
        }
        // Whoever polls a picture once polls it again (a wall of cameras): be ready.
        self.prepare(name.clone(), argv);
        decoded
            .map_err(|reason| ScreenshotError::Decode(name.clone(), format!("{program}: {reason}")))
    }
}

/// A stream's newest whole pictures, as a decoder needs them.
struct Pictures {
    container: Container,
    header: Option<Bytes>,
    /// From a keyframe on, whole units only.
    units: Vec<Bytes>,
    /// From the current GOP (else from the previous, older one).
    current: bool,
}

impl Pictures {
    /// Each unit is a whole JPEG: no GOP to wait for, and possibly no decoder at all.
    fn is_jpeg(&self) -> bool {
        matches!(self.container, Container::Mjpeg | Container::Mpjpeg)
    }
}

/// The container, header and newest whole pictures of a hub, once there are some.
fn pictures(hub: &Hub, name: &str) -> Result<Option<Pictures>, ScreenshotError> {
    let Some(info) = hub.framing_info() else {
        return Err(ScreenshotError::Opaque(name.to_string()));
    };
    if info.audio_only {
        return Err(ScreenshotError::AudioOnly(name.to_string()));
    }
    Ok(hub
        .last_pictures()
        .map(|(header, units, current)| Pictures {
            container: info.container,
            header,
            units,
            current,
        }))
}

/// The program that decodes `stream`'s pictures: `decoder:`, else the stream's own program
/// when it is an ffmpeg, else `ffmpeg`.
fn decoder_program(stream: &Stream) -> String {
    if let Some(decoder) = &stream.config.decoder {
        return decoder.clone();
    }
    stream
        .config
        .command
        .as_ref()
        .and_then(|command| command.argv.first())
        .filter(|program| {
            program
                .rsplit('/')
                .next()
                .is_some_and(|name| name.contains("ffmpeg"))
        })
        .cloned()
        .unwrap_or_else(|| "ffmpeg".to_string())
}

/// ffmpeg's demuxer for a container.
fn demuxer(container: Container) -> Option<&'static str> {
    Some(match container {
        Container::MpegTs => "mpegts",
        Container::Matroska => "matroska",
        Container::FragmentedMp4 => "mp4",
        Container::Flv => "flv",
        Container::Mpjpeg => "mpjpeg",
        Container::Mjpeg => "mjpeg",
        _ => return None,
    })
}

/// The first whole JPEG (SOI to EOI) in `units`, copied into one buffer.
fn whole_jpeg(units: &[Bytes]) -> Option<Bytes> {
    let all = units.concat();
    jpeg::first_jpeg(&all).map(Bytes::copy_from_slice)
}

/// Runs `program` on header + units and returns the last picture it decodes.
/// The decoder's command line: the newest picture of `container` bytes on stdin, in `format`.
fn decoder_argv(program: &str, container: Container, format: Format) -> Vec<String> {
    let mut argv: Vec<String> = [program, "-hide_banner", "-loglevel", "error", "-nostdin"]
        .map(String::from)
        .to_vec();
    if let Some(demuxer) = demuxer(container) {
        argv.extend(["-f".to_string(), demuxer.to_string()]);
    }
    // `reverse` holds the decoded GOP and hands the newest picture first: one encode only.
    argv.extend(
        [
            "-i",
            "pipe:0",
            "-an",
            "-vf",
            "reverse",
            "-frames:v",
            "1",
            "-f",
            "image2pipe",
        ]
        .map(String::from),
    );
    match format {
        Format::Jpeg { quality, .. } => argv.extend([
            "-c:v".into(),
            "mjpeg".into(),
            "-q:v".into(),
            jpeg_qscale(quality).to_string(),
        ]),
        Format::Png => argv.extend(["-c:v".into(), "png".into()]),
    }
    argv.push("pipe:1".into());
    argv
}

/// A decoder started ahead of need: it waits on its stdin, so the next picture of the same
/// kind does not pay ffmpeg's start-up (some 60 ms of loading its libraries here).
struct Standby {
    argv: Vec<String>,
    child: Child,
    born: tokio::time::Instant,
}

impl Screenshots {
    /// A decoder for `argv`: the waiting one when it matches and is fresh, else a new one.
    fn decoder(&self, stream: &str, argv: &[String]) -> Result<Child, String> {
        let standby = self
            .standby
            .lock()
            .expect("screenshot lock poisoned")
            .remove(stream);
        match standby {
            Some(standby) if standby.argv == argv && standby.born.elapsed() < STANDBY_MAX_AGE => {
                Ok(standby.child)
            }
            // A stale or different one is dropped, which kills it.
            _ => spawn_decoder(argv, &self.budget),
        }
    }

    /// Starts the decoder for the next picture of this kind, and ends it if nobody asks for
    /// one within [`STANDBY_MAX_AGE`].
    fn prepare(&self, stream: String, argv: Vec<String>) {
        let Ok(child) = spawn_decoder(&argv, &self.budget) else {
            return;
        };
        let born = tokio::time::Instant::now();
        let standby = Standby { argv, child, born };
        let waiting = Arc::clone(&self.standby);
        waiting
            .lock()
            .expect("screenshot lock poisoned")
            .insert(stream.clone(), standby);
        tokio::spawn(async move {
            tokio::time::sleep(STANDBY_MAX_AGE).await;
            let mut waiting = waiting.lock().expect("screenshot lock poisoned");
            if waiting
                .get(&stream)
                .is_some_and(|standby| standby.born == born)
            {
                waiting.remove(&stream);
            }
        });
    }
}

fn spawn_decoder(argv: &[String], budget: &StderrBudget) -> Result<Child, String> {
    let spec = child::Spec {
        argv,
        stdin: true,
        pipes: &[],
        stderr_file: None,
        stderr_budget: budget.clone(),
    };
    child::spawn(&spec).map_err(|error| error.to_string())
}

/// Feeds header + units to a decoder and returns the picture it writes.
async fn decode(
    mut child: Child,
    header: Option<Bytes>,
    units: Vec<Bytes>,
) -> Result<Bytes, String> {
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut input: VecDeque<Bytes> = header.into_iter().chain(units).collect();
    let writer = AbortOnDropHandle::new(tokio::spawn(async move {
        // The decoder may stop reading once it has its picture: that is not an error.
        let _ = write_batch(&mut stdin, &mut input).await;
    }));
    let picture = child.output(PICTURE_BYTES_MAX, DECODE_TIMEOUT).await;
    drop(writer);
    picture.map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picture_paths_and_parameters_choose_the_format() {
        let jpeg = |quality, explicit| Format::Jpeg { quality, explicit };
        assert_eq!(
            split_picture_path("/stream/cam/pic"),
            Some(("/stream/cam", None))
        );
        assert_eq!(
            split_picture_path("/video0.ts/pic.png"),
            Some(("/video0.ts", Some(Format::Png)))
        );
        assert_eq!(split_picture_path("/stream/cam"), None);
        assert_eq!(format_from_query(None, None), Ok(jpeg(85, false)));
        assert_eq!(
            format_from_query(None, Some("quality=10")),
            Ok(jpeg(10, true))
        );
        assert_eq!(format_from_query(None, Some("format=png")), Ok(Format::Png));
        assert_eq!(
            format_from_query(Some(Format::Png), Some("t=1")),
            Ok(Format::Png)
        );
        assert!(format_from_query(None, Some("quality=0")).is_err());
        assert!(format_from_query(None, Some("quality=101")).is_err());
        assert!(format_from_query(None, Some("format=gif")).is_err());
        assert_eq!(
            format_from_query(None, Some("quality=%35%30")),
            Ok(jpeg(50, true))
        );
    }

    #[test]
    fn jpeg_quality_maps_onto_the_whole_qscale_range() {
        assert_eq!(jpeg_qscale(100), 2);
        assert_eq!(jpeg_qscale(1), 31);
        assert_eq!(jpeg_qscale(85), 6);
        assert!(jpeg_qscale(10) > jpeg_qscale(95));
    }

    #[test]
    fn a_whole_jpeg_is_found_across_pieces() {
        let mjpeg = include_bytes!("../tests/data/containers/testsrc.mjpeg");
        let picture = jpeg::first_jpeg(mjpeg).expect("the fixture starts with a picture");
        let part = [
            &b"--ffmpeg\r\nContent-Type: image/jpeg\r\n\r\n"[..],
            picture,
        ]
        .concat();
        let (head, tail) = part.split_at(part.len() / 2);
        let units = [Bytes::copy_from_slice(head), Bytes::copy_from_slice(tail)];
        assert_eq!(whole_jpeg(&units).as_deref(), Some(picture));
    }
}
