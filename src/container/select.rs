//! Which container a stream carries: from its configured `mimetype`, or, when that says
//! nothing useful (`application/octet-stream`, a typo), from its first bytes.

use super::Container;

/// The container a mimetype names, `None` when it names none voyandz understands.
pub fn from_mimetype(mimetype: &str) -> Option<Container> {
    let essence = mimetype
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let container = match essence.as_str() {
        "video/mp2t" | "video/ts" | "video/mpegts" | "video/mpeg-ts" | "video/x-mpegts"
        | "application/x-mpegts" => Container::MpegTs,
        "video/webm" | "audio/webm" | "video/x-matroska" | "audio/x-matroska"
        | "video/matroska" | "audio/matroska" => Container::Matroska,
        "video/mp4" | "audio/mp4" | "video/iso.segment" => Container::FragmentedMp4,
        "video/x-flv" | "video/flv" => Container::Flv,
        "multipart/x-mixed-replace" => Container::Mpjpeg,
        "video/x-motion-jpeg" | "video/x-mjpeg" | "video/mjpeg" | "image/mjpeg" => {
            Container::Mjpeg
        }
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
        assert_eq!(from_mimetype("video/webm; codecs=vp9"), Some(Container::Matroska));
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
