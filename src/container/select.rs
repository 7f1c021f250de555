//! Which container a stream carries: from its configured `mimetype`, or, when that says
//! nothing useful (`application/octet-stream`, a typo), from its first bytes.

use std::sync::Arc;

use super::{Container, Demarcator, adts, flv, jpeg, matroska, mp3, mp4, mpegts, ogg, wav};

/// Makes the parser for one run of a stream from the run's first bytes; `None` relays the run
/// as opaque bytes.
pub type ParserFactory = Arc<dyn Fn(&[u8]) -> Option<Box<dyn Demarcator>> + Send + Sync>;

/// The parser factory for a stream with `mimetype`: the container it names, unless the first
/// bytes clearly are another one (a multipart mimetype over raw MJPEG, a typo), or, when it
/// names none, whatever the first bytes are. `None` for pictures and text (nothing to frame).
pub fn parser_factory(mimetype: &str) -> Option<ParserFactory> {
    let essence = mimetype.trim().to_ascii_lowercase();
    if essence.starts_with("image/") && !essence.starts_with("image/mjpeg")
        || essence.starts_with("text/")
    {
        return None;
    }
    let configured = from_mimetype(mimetype);
    let boundary = multipart_boundary(mimetype).unwrap_or("ffmpeg").to_string();
    Some(Arc::new(move |first: &[u8]| {
        let container = match configured {
            Some(container) if sniff_as(container, first) => container,
            _ => sniff(first).or(configured)?,
        };
        let boundary = jpeg::sniff_mpjpeg(first).unwrap_or(&boundary);
        Some(parser(container, boundary))
    }))
}

/// The parser factory for a feed (which has no mimetype): whatever its first bytes clearly
/// show. Formats recognised by a frame sync alone (MP3, ADTS) are left out: raw video or PCM
/// can look like them by chance.
pub fn sniffing_factory() -> ParserFactory {
    Arc::new(|first: &[u8]| {
        let container = sniff(first).filter(|c| !matches!(c, Container::Mp3 | Container::Adts))?;
        Some(parser(
            container,
            jpeg::sniff_mpjpeg(first).unwrap_or("ffmpeg"),
        ))
    })
}

/// The container the first bytes of a stream show, if they are clear enough.
pub fn sniff(first: &[u8]) -> Option<Container> {
    [
        Container::MpegTs,
        Container::Matroska,
        Container::FragmentedMp4,
        Container::Flv,
        Container::Ogg,
        Container::Wav,
        Container::Mjpeg,
        Container::Mpjpeg,
        Container::Mp3,
        Container::Adts,
    ]
    .into_iter()
    .find(|container| sniff_as(*container, first))
}

fn sniff_as(container: Container, first: &[u8]) -> bool {
    match container {
        Container::MpegTs => mpegts::sniff(first),
        Container::Matroska => matroska::sniff(first),
        Container::FragmentedMp4 => mp4::sniff(first),
        Container::Flv => flv::sniff(first),
        Container::Mpjpeg => jpeg::sniff_mpjpeg(first).is_some(),
        Container::Mjpeg => jpeg::sniff(first),
        Container::Mp3 => mp3::sniff(first),
        Container::Adts => adts::sniff(first),
        Container::Ogg => ogg::sniff(first),
        Container::Wav => wav::sniff(first),
        Container::Opaque => false,
    }
}

/// A parser for `container`; `boundary` is the multipart boundary of MPJPEG.
pub fn parser(container: Container, boundary: &str) -> Box<dyn Demarcator> {
    match container {
        Container::MpegTs => Box::new(mpegts::Parser::new()),
        Container::Matroska => Box::new(matroska::Parser::new()),
        Container::FragmentedMp4 => Box::new(mp4::Parser::new()),
        Container::Flv => Box::new(flv::Parser::new()),
        Container::Mpjpeg => Box::new(jpeg::Parser::mpjpeg(boundary)),
        Container::Mjpeg => Box::new(jpeg::Parser::mjpeg()),
        Container::Mp3 => Box::new(mp3::Parser::new()),
        Container::Adts => Box::new(adts::Parser::new()),
        Container::Ogg => Box::new(ogg::Parser::new()),
        Container::Wav => Box::new(wav::Parser::new()),
        Container::Opaque => Box::new(Opaque),
    }
}

/// No framing: never marks, no header.
struct Opaque;

impl Demarcator for Opaque {
    fn container(&self) -> Container {
        Container::Opaque
    }
    fn push(&mut self, _: &[u8], _: &mut Vec<super::Mark>) {}
    fn header(&self) -> Option<&bytes::Bytes> {
        None
    }
    fn audio_only(&self) -> bool {
        false
    }
}

/// The container a mimetype names, `None` when it names none voyandz understands.
pub fn from_mimetype(mimetype: &str) -> Option<Container> {
    let essence = mimetype
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let container = match essence.as_str() {
        "video/mp2t"
        | "video/ts"
        | "video/mpegts"
        | "video/mpeg-ts"
        | "video/x-mpegts"
        | "application/x-mpegts" => Container::MpegTs,
        "video/webm" | "audio/webm" | "video/x-matroska" | "audio/x-matroska"
        | "video/matroska" | "audio/matroska" => Container::Matroska,
        "video/mp4" | "audio/mp4" | "video/iso.segment" => Container::FragmentedMp4,
        "video/x-flv" | "video/flv" => Container::Flv,
        "multipart/x-mixed-replace" => Container::Mpjpeg,
        "video/x-motion-jpeg" | "video/x-mjpeg" | "video/mjpeg" | "image/mjpeg" => Container::Mjpeg,
        "audio/mpeg" | "audio/mp3" | "audio/mpeg3" | "audio/x-mpeg" | "audio/x-mp3" => {
            Container::Mp3
        }
        "audio/aac" | "audio/aacp" | "audio/x-aac" | "audio/adts" => Container::Adts,
        "audio/ogg" | "audio/opus" | "application/ogg" | "video/ogg" => Container::Ogg,
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => Container::Wav,
        _ => return None,
    };
    Some(container)
}

/// The `boundary` parameter of a `multipart/x-mixed-replace` mimetype (ffmpeg's mpjpeg muxer
/// uses `ffmpeg` unless told otherwise).
pub fn multipart_boundary(mimetype: &str) -> Option<&str> {
    mimetype.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimetypes_of_upstream_configs_and_common_players_are_understood() {
        assert_eq!(from_mimetype("video/mp2t"), Some(Container::MpegTs));
        assert_eq!(from_mimetype("video/MP2T"), Some(Container::MpegTs));
        assert_eq!(from_mimetype("video/ts"), Some(Container::MpegTs));
        assert_eq!(
            from_mimetype("video/webm; codecs=vp9"),
            Some(Container::Matroska)
        );
        assert_eq!(
            from_mimetype("multipart/x-mixed-replace;boundary=ffmpeg"),
            Some(Container::Mpjpeg)
        );
        assert_eq!(from_mimetype("video/x-motion-jpeg"), Some(Container::Mjpeg));
        assert_eq!(from_mimetype("audio/mp3"), Some(Container::Mp3));
        assert_eq!(from_mimetype("audio/wav"), Some(Container::Wav));
        assert_eq!(from_mimetype("application/octet-stream"), None);
        assert_eq!(from_mimetype("image/png"), None);
    }

    #[test]
    fn the_multipart_boundary_is_read_from_the_mimetype() {
        assert_eq!(
            multipart_boundary("multipart/x-mixed-replace;boundary=ffmpeg"),
            Some("ffmpeg")
        );
        assert_eq!(
            multipart_boundary("multipart/x-mixed-replace; Boundary=\"abc\""),
            Some("abc")
        );
        assert_eq!(multipart_boundary("multipart/x-mixed-replace"), None);
    }
}
