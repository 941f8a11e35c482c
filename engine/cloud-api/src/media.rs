//! The files Meta takes for upload and send (platform doc, section 4.6): each MIME type's kind
//! and the largest file of that kind. Checked before an upload goes to Meta, so a file Meta
//! would refuse is refused at once, before its bytes cross the network twice.

/// A kind of file, as Meta names it in a send (`"type": "image"`, ...). (A template header's
/// media is `wagate_rules::template::model::MediaKind`, a narrower set.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Image => "image",
            FileKind::Video => "video",
            FileKind::Audio => "audio",
            FileKind::Document => "document",
            FileKind::Sticker => "sticker",
        }
    }

    /// The largest file of this kind Meta takes, in bytes (an animated sticker's 500 KB: the
    /// upload does not say whether a WebP is animated, Meta checks the static 100 KB at send).
    pub fn max_bytes(self) -> u64 {
        const MB: u64 = 1024 * 1024;
        match self {
            FileKind::Image => 5 * MB,
            FileKind::Video | FileKind::Audio => 16 * MB,
            FileKind::Document => 100 * MB,
            FileKind::Sticker => 500 * 1024,
        }
    }
}

/// The MIME types Meta takes, with their kinds.
const TYPES: &[(&str, FileKind)] = &[
    ("image/jpeg", FileKind::Image),
    ("image/png", FileKind::Image),
    ("video/mp4", FileKind::Video),
    ("video/3gpp", FileKind::Video),
    ("audio/aac", FileKind::Audio),
    ("audio/amr", FileKind::Audio),
    ("audio/mpeg", FileKind::Audio),
    ("audio/mp4", FileKind::Audio),
    ("audio/ogg", FileKind::Audio),
    ("text/plain", FileKind::Document),
    ("application/pdf", FileKind::Document),
    ("application/msword", FileKind::Document),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        FileKind::Document,
    ),
    ("application/vnd.ms-excel", FileKind::Document),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        FileKind::Document,
    ),
    ("application/vnd.ms-powerpoint", FileKind::Document),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        FileKind::Document,
    ),
    ("image/webp", FileKind::Sticker),
];

/// The kind of a MIME type Meta takes (parameters such as `; codecs=opus` ignored, case
/// folded), or `None` for a type Meta refuses.
pub fn file_kind(mime: &str) -> Option<FileKind> {
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
        assert_eq!(file_kind("image/jpeg"), Some(FileKind::Image));
        assert_eq!(file_kind("IMAGE/PNG"), Some(FileKind::Image));
        assert_eq!(file_kind("audio/ogg; codecs=opus"), Some(FileKind::Audio));
        assert_eq!(file_kind("image/gif"), None);
        assert_eq!(file_kind("application/x-msdownload"), None);
        assert_eq!(
            file_kind("image/jpeg").map(FileKind::max_bytes),
            Some(5 << 20)
        );
        assert_eq!(
            file_kind("image/webp").map(FileKind::max_bytes),
            Some(500 << 10)
        );
        assert_eq!(
            file_kind("application/pdf").map(FileKind::max_bytes),
            Some(MAX_MEDIA_BYTES)
        );
    }
}
