//! Meta's webhook authentication: the GET verification handshake and the `X-Hub-Signature-256`
//! header, an HMAC-SHA256 of the raw body with the app secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("the X-Hub-Signature-256 header is not \"sha256=<64 hex digits>\"")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?))
        .collect()
}

/// Checks `header` (`sha256=<hex>`) against the HMAC of the exact `body` bytes, in constant time.
pub fn verify(app_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex)
        .filter(|d| d.len() == 32)
        .ok_or(SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value for `body`: what Meta sends, and what wagate sends to a tenant's callback.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut header = String::with_capacity(7 + 64);
    header.push_str("sha256=");
    for byte in digest {
        header.push_str(&format!("{byte:02x}"));
    }
    header
}

/// The GET handshake: the challenge to echo when mode and token match, else `None` (403).
pub fn handshake<'a>(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&'a str>,
    verify_token: &str,
) -> Option<&'a str> {
    (mode == Some("subscribe") && token == Some(verify_token))
        .then_some(challenge)
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_4231_test_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let header = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            header,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            verify(b"Jefe", b"what do ya want for nothing?", Some(&header)),
            Ok(())
        );
    }

    #[test]
    fn refuses_missing_malformed_and_wrong_signatures() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let good = sign(b"secret", body);
        assert_eq!(verify(b"secret", body, None), Err(SignatureError::Missing));
        assert_eq!(
            verify(b"secret", body, Some("sha1=abc")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"secret", body, Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"other", body, Some(&good)),
            Err(SignatureError::Mismatch)
        );
        // One byte changed in the body, or re-serialised JSON, no longer matches.
        assert_eq!(
            verify(
                b"secret",
                br#"{"object": "whatsapp_business_account"}"#,
                Some(&good)
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                b"secret",
                body,
                Some(&good.to_uppercase().replace("SHA256=", "sha256="))
            ),
            Ok(())
        );
    }

    #[test]
    fn handshake_echoes_the_challenge_only_for_the_right_token() {
        assert_eq!(
            handshake(Some("subscribe"), Some("t0k"), Some("1158201444"), "t0k"),
            Some("1158201444")
        );
        assert_eq!(
            handshake(Some("subscribe"), Some("wrong"), Some("1158201444"), "t0k"),
            None
        );
        assert_eq!(
            handshake(Some("unsubscribe"), Some("t0k"), Some("1158201444"), "t0k"),
            None
        );
    }
}
