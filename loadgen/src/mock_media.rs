//! mock-meta's media: files uploaded in Meta's multipart form, kept in memory (bounded) with
//! the number they were uploaded to, their type, size and SHA-256, as Meta answers them.

use std::collections::HashMap;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// All files kept together; past it an upload is refused (Meta's 131053).
const MAX_KEPT_BYTES: usize = 256 << 20;

/// A file Meta keeps.
pub(crate) struct MediaFile {
    pub(crate) number: String,
    pub(crate) mime: String,
    pub(crate) sha256: String,
    pub(crate) bytes: Bytes,
}

/// An uploaded form's file and type.
pub(crate) struct Uploaded {
    mime: String,
    bytes: Bytes,
}

#[derive(Default)]
pub(crate) struct MediaStore {
    files: HashMap<String, MediaFile>,
    kept_bytes: usize,
}

impl MediaStore {
    pub(crate) fn keep(&mut self, id: u64, number: &str, file: Uploaded) -> Result<(), u32> {
        if self.kept_bytes + file.bytes.len() > MAX_KEPT_BYTES {
            return Err(131_053);
        }
        self.kept_bytes += file.bytes.len();
        let sha256 = Sha256::digest(&file.bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.files.insert(
            id.to_string(),
            MediaFile {
                number: number.to_string(),
                mime: file.mime,
                sha256,
                bytes: file.bytes,
            },
        );
        Ok(())
    }

    pub(crate) fn file(&self, id: &str) -> Option<&MediaFile> {
        self.files.get(id)
    }

    pub(crate) fn count(&self) -> usize {
        self.files.len()
    }

    pub(crate) fn delete(&mut self, id: &str) {
        if let Some(file) = self.files.remove(id) {
            self.kept_bytes -= file.bytes.len();
        }
    }
}

/// Reads Meta's upload form: `messaging_product` must be `whatsapp`, `type` names the file's
/// type, `file` holds it. Meta's error code for a form it refuses.
pub(crate) async fn upload(content_type: &str, body: Bytes) -> Result<Uploaded, u32> {
    let boundary = multer::parse_boundary(content_type).map_err(|_| 100u32)?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let (mut product, mut kind, mut file) = (None, None, None);
    while let Some(field) = form.next_field().await.map_err(|_| 100u32)? {
        let name = field.name().unwrap_or("").to_string();
        let bytes = field.bytes().await.map_err(|_| 100u32)?;
        match name.as_str() {
            "messaging_product" => product = Some(bytes),
            "type" => kind = Some(String::from_utf8_lossy(&bytes).into_owned()),
            "file" => file = Some(bytes),
            _ => {}
        }
    }
    match (product.as_deref(), kind, file) {
        (Some(b"whatsapp"), Some(mime), Some(bytes)) => Ok(Uploaded { mime, bytes }),
        _ => Err(100),
    }
}
