//! The files Meta takes for upload and send (platform doc, section 4.6): each MIME type's kind
//! and the largest file of that kind. Checked before an upload goes to Meta, so a file Meta
//! would refuse is refused at once, before its bytes cross the network twice.

/// A kind of media, as Meta names it in a send (`"type": "image"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

impl MediaKind {
    pub fn name(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        }
    }

    /// The largest file of this kind Meta takes, in bytes (an animated sticker's 500 KB: the
    /// upload does not say whether a WebP is animated, Meta checks the static 100 KB at send).
    pub fn max_bytes(self) -> u64 {
        const MB: u64 = 1024 * 1024;
        match self {
            MediaKind::Image => 5 * MB,
            MediaKind::Video | MediaKind::Audio => 16 * MB,
            MediaKind::Document => 100 * MB,
            MediaKind::Sticker => 500 * 1024,
        }
    }
}

/// The MIME types Meta takes, with their kinds.
const TYPES: &[(&str, MediaKind)] = &[
    ("image/jpeg", MediaKind::Image),
    ("image/png", MediaKind::Image),
    ("video/mp4", MediaKind::Video),
    ("video/3gpp", MediaKind::Video),
    ("audio/aac", MediaKind::Audio),
    ("audio/amr", MediaKind::Audio),
    ("audio/mpeg", MediaKind::Audio),
    ("audio/mp4", MediaKind::Audio),
    ("audio/ogg", MediaKind::Audio),
    ("text/plain", MediaKind::Document),
    ("application/pdf", MediaKind::Document),
    ("application/msword", MediaKind::Document),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        MediaKind::Document,
    ),
    ("application/vnd.ms-excel", MediaKind::Document),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        MediaKind::Document,
    ),
    ("application/vnd.ms-powerpoint", MediaKind::Document),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        MediaKind::Document,
    ),
    ("image/webp", MediaKind::Sticker),
];

/// The kind of a MIME type Meta takes (parameters such as `; codecs=opus` ignored, case
/// folded), or `None` for a type Meta refuses.
pub fn media_kind(mime: &str) -> Option<MediaKind> {
    let essence = mime.split(';').next().unwrap_or("").trim();
    TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(essence))
        .map(|&(_, kind)| kind)
}

/// The largest upload of any kind: a body beyond it (and its form's few other fields) is
/// refused from its declared length alone.
pub const MAX_MEDIA_BYTES: u64 = 100 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_meta_takes_has_its_kind_and_limit() {
        assert_eq!(media_kind("image/jpeg"), Some(MediaKind::Image));
        assert_eq!(media_kind("IMAGE/PNG"), Some(MediaKind::Image));
        assert_eq!(media_kind("audio/ogg; codecs=opus"), Some(MediaKind::Audio));
        assert_eq!(media_kind("image/gif"), None);
        assert_eq!(media_kind("application/x-msdownload"), None);
        assert_eq!(
            media_kind("image/jpeg").map(MediaKind::max_bytes),
            Some(5 << 20)
        );
        assert_eq!(
            media_kind("image/webp").map(MediaKind::max_bytes),
            Some(500 << 10)
        );
        assert_eq!(
            media_kind("application/pdf").map(MediaKind::max_bytes),
            Some(MAX_MEDIA_BYTES)
        );
    }
}
