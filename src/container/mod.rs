//! Container framing: where a stream's header ends and where a client may start.
//!
//! voyandz never decodes codecs, but to serve the spec's `header` and `keyframe` URL
//! parameters, keep the last group of pictures for an instant start, and resynchronise a slow
//! client, it must know two things about the *container* it relays: the bytes a decoder needs
//! before anything else (the header), and the offsets where a client can begin (a keyframe, or
//! for audio a frame or page boundary). A [`Demarcator`] finds them, incrementally: bytes
//! arrive in arbitrary pieces, the hot path allocates nothing, and garbage never panics (the
//! parser resynchronises at the next recognisable unit).
//!
//! This module is pure: no I/O, no clock, no async. The hub cuts chunks at the marks
//! (zero-copy `Bytes::slice`) and keeps the header and the cached keyframe.

pub mod select;

/// A place in the stream where a client may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Absolute offset (bytes since the parser was made) where the unit starts. It may lie in
    /// an earlier piece when the unit's start was only recognisable later (a header split
    /// across two reads); it is never before a mark already reported. It may equal the number
    /// of bytes pushed so far: a unit is known to start next (raw MJPEG: right after an EOI),
    /// which lets a client get the end of a frame without waiting for the next one.
    pub offset: u64,
    /// What starts there.
    pub kind: MarkKind,
}

/// What starts at a [`Mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// A unit a video decoder can start from (an IDR/IRAP access unit, a keyframe cluster, a
    /// sync-sample fragment, a JPEG): `?keyframe` joins here, `keyframe=last` replays from here.
    Keyframe,
    /// A clean unit boundary that is not a keyframe (a non-key PES/cluster/fragment/tag, or
    /// an audio frame or page): `?header` joins here; for audio-only containers every
    /// boundary is as good as a keyframe.
    Boundary,
}

/// The container formats voyandz understands; anything else is relayed as opaque bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    /// MPEG transport stream (`video/mp2t`, `video/MP2T`, `video/ts`).
    MpegTs,
    /// Matroska or WebM.
    Matroska,
    /// Fragmented MP4.
    FragmentedMp4,
    /// Flash video.
    Flv,
    /// `multipart/x-mixed-replace` JPEGs (MPJPEG).
    Mpjpeg,
    /// Raw MJPEG: JPEG after JPEG with nothing in between.
    Mjpeg,
    /// MPEG audio layer III frames.
    Mp3,
    /// AAC in ADTS frames.
    Adts,
    /// Ogg pages (Opus, Vorbis, FLAC...).
    Ogg,
    /// RIFF WAVE with PCM data.
    Wav,
    /// Not understood: relayed as is, no header, no marks.
    Opaque,
}

/// The name people know the container by (the status page's; the API uses the snake_case
/// variant names).
impl std::fmt::Display for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Container::MpegTs => "MPEG-TS",
            Container::Matroska => "Matroska/WebM",
            Container::FragmentedMp4 => "fragmented MP4",
            Container::Flv => "FLV",
            Container::Mpjpeg => "MPJPEG",
            Container::Mjpeg => "MJPEG",
            Container::Mp3 => "MP3",
            Container::Adts => "ADTS AAC",
            Container::Ogg => "Ogg",
            Container::Wav => "WAV",
            Container::Opaque => "opaque",
        })
    }
}

impl Container {
    /// Whether a decoder must get the header before any unit. Matroska, MP4 and FLV name
    /// their tracks and codec setup only there, Ogg's header pages set up the codec, and
    /// WAV's PCM without its RIFF header has no sample format (a player plays noise or
    /// nothing). TS repeats its PAT/PMT in band, MPJPEG, MJPEG, MP3 and ADTS frames stand on
    /// their own, and opaque bytes are not understood: those play from any boundary.
    pub fn needs_header(self) -> bool {
        matches!(
            self,
            Container::Matroska
                | Container::FragmentedMp4
                | Container::Flv
                | Container::Ogg
                | Container::Wav
        )
    }

    /// Whether its parser marks keyframes. Ogg's does not (it finds pages, not Theora's
    /// keyframes): a keyframe join there starts at the next page, rather than waiting for a
    /// keyframe mark that never comes.
    pub fn marks_keyframes(self) -> bool {
        self != Container::Ogg
    }

    /// Whether a join's header can only be built once its start point is known: a TS
    /// client's PAT/PMT carry continuity counters that the live packets after its start point
    /// must continue (a TS header join waits at most a frame for that point).
    pub fn header_depends_on_start(self) -> bool {
        self == Container::MpegTs
    }
}

/// Finds header and unit boundaries in one stream's bytes.
pub trait Demarcator: Send {
    /// Which container this parser reads.
    fn container(&self) -> Container;

    /// Consumes the next piece of the stream (any size, possibly one byte) and appends the
    /// marks recognised so far, in increasing offset order, to `marks`. A mark is reported as
    /// soon as the bytes pushed prove it (latency: never wait for the unit's end). Never
    /// panics, whatever the bytes; after garbage it resynchronises.
    fn push(&mut self, data: &[u8], marks: &mut Vec<Mark>);

    /// The bytes a client must receive before the first unit it is sent (TS: the latest
    /// PAT+PMT packets; Matroska: EBML header, Segment start, Info, Tracks; fMP4: ftyp+moov;
    /// FLV: file header, onMetaData, sequence headers; Ogg: the header pages; WAV: the RIFF
    /// header with unknown sizes). `None` while not (yet) known, or when none is needed.
    /// Builds the header only when it changes (allocation off the hot path).
    fn header(&self) -> Option<&bytes::Bytes>;

    /// What a join's header is built from, as of the bytes pushed so far (see
    /// [`HeaderView`]). The hub copies it out after each push, so that joins read it under the
    /// hub's lock while the parser itself runs outside it. Most headers do not depend on what
    /// follows, so the default is [`Demarcator::header`] alone.
    fn header_view(&self) -> HeaderView {
        HeaderView {
            header: self.header().cloned(),
            continuity: None,
        }
    }

    /// Whether the stream carries no video (keyframe requests are then ignored).
    fn audio_only(&self) -> bool;
}

/// A parser's header facts, copied out after each push: cheap (a shared `Bytes` and a few
/// numbers, no allocation), and consistent with the bytes the hub holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderView {
    /// The current header (see [`Demarcator::header`]).
    pub header: Option<bytes::Bytes>,
    /// MPEG-TS: where the header's packets must count from (see [`HeaderView::before`]).
    pub continuity: Option<mpegts::Continuity>,
}

impl HeaderView {
    /// The header for a client whose bytes after it are those `next` yields, in order: from
    /// its start point (a mark, or the start of a run) up to the newest byte pushed. An
    /// MPEG-TS header carries continuity counters that must lead into the packets that
    /// follow, or players report a discontinuity on every join: it is rebuilt (a copy of a
    /// few packets per join, never per chunk) when the cached counters do not fit.
    pub fn before(&self, next: &mut dyn Iterator<Item = &[u8]>) -> Option<bytes::Bytes> {
        let header = self.header.as_ref()?;
        Some(match &self.continuity {
            Some(continuity) => continuity.header_before(header, next),
            None => header.clone(),
        })
    }
}

pub mod adts;
#[cfg(test)]
mod conformance;
pub mod flv;
mod framesync;
pub mod jpeg;
pub mod matroska;
pub mod mp3;
pub mod mp4;
pub mod mpegts;
pub mod ogg;
#[cfg(test)]
pub(crate) mod testing;
pub mod wav;
