//! A send's payload (Meta's request JSON, as the caller wrote it) packed for a queued send's
//! record: the pieces of Meta's send request every send repeats (`{"messaging_product":
//! "whatsapp",`, `"type":"template","template":{"name":"`, `"components":[`, ...) stored as
//! one byte each.
//!
//! A bulk upload queues most of its sends, and each record is written twice (the log, then
//! the table file) by a kernel copy that is a quarter of the bulk path's CPU: the record's
//! bytes are its cost. The codes are control bytes, which JSON never carries raw (outside a
//! string only whitespace may be one, and inside a string each is escaped), so a packed
//! payload is read back exactly; a payload that holds one of them anyway (a caller's own
//! bytes, through the embedding API) is kept as written, and the record says which it is.

/// The pieces, each replaced by its code ([`CODES`], same place). Where two start alike the
/// longer comes first: the first that matches is taken.
const PIECES: [&[u8]; 24] = [
    br#"{"messaging_product":"whatsapp","#,
    br#""messaging_product":"whatsapp""#,
    br#""recipient_type":"individual","#,
    br#""to":""#,
    br#"","type":"template","template":{"name":""#,
    br#""type":"template","template":{"name":""#,
    br#""template":{"name":""#,
    br#"","language":{"code":""#,
    br#""language":{"code":""#,
    br#""},"components":[{"type":"body","parameters":["#,
    br#""components":[{"type":"body","parameters":["#,
    br#""components":["#,
    br#""parameters":["#,
    br#"{"type":"text","text":""#,
    br#"},{"type":"text","text":""#,
    br#""type":"body""#,
    br#""type":"header""#,
    br#""type":"button","sub_type":""#,
    br#"","type":"text","text":{"#,
    br#""preview_url":false,"body":""#,
    br#""body":""#,
    br#""}]}]}}"#,
    br#""}]}"#,
    br#""type":""#,
];

/// The code of each piece: control bytes other than JSON's whitespace (tab, line feed,
/// carriage return), never raw in JSON.
const CODES: [u8; 24] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0b, 0x0c, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13,
    0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
];

/// The piece a byte codes for, if it is a code.
fn piece_of(byte: u8) -> Option<&'static [u8]> {
    CODES
        .iter()
        .position(|&code| code == byte)
        .map(|slot| PIECES[slot])
}

/// Appends `payload` packed to `out`, if it can be (it holds no code byte): whether it was.
/// When it was not, nothing is appended.
pub(crate) fn pack_into(payload: &[u8], out: &mut Vec<u8>) -> bool {
    if payload.iter().any(|&b| piece_of(b).is_some()) {
        return false;
    }
    out.reserve(payload.len());
    let mut rest = payload;
    while let Some(&first) = rest.first() {
        // Every piece starts with `{`, `"` or `}`: other bytes are copied up to the next one.
        if !matches!(first, b'{' | b'"' | b'}') {
            let run = rest
                .iter()
                .position(|b| matches!(b, b'{' | b'"' | b'}'))
                .unwrap_or(rest.len());
            out.extend_from_slice(&rest[..run]);
            rest = &rest[run..];
            continue;
        }
        match PIECES.iter().position(|piece| rest.starts_with(piece)) {
            Some(slot) => {
                out.push(CODES[slot]);
                rest = &rest[PIECES[slot].len()..];
            }
            None => {
                out.push(first);
                rest = &rest[1..];
            }
        }
    }
    true
}

/// A packed payload as it was written.
pub(crate) fn unpack(packed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(packed.len() * 3);
    for &byte in packed {
        match piece_of(byte) {
            Some(piece) => out.extend_from_slice(piece),
            None => out.push(byte),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(payload: &[u8]) -> Option<usize> {
        let mut packed = Vec::new();
        if !pack_into(payload, &mut packed) {
            assert!(packed.is_empty());
            return None;
        }
        assert_eq!(
            unpack(&packed),
            payload,
            "{}",
            String::from_utf8_lossy(payload)
        );
        Some(packed.len())
    }

    #[test]
    fn meta_s_documented_requests_pack_to_a_fraction_and_read_back_exactly() {
        let template = br#"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234","type":"template","template":{"name":"order_update","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"text","text":"Ana"},{"type":"text","text":"No. 123"}]}]}}"#;
        let packed = round_trip(template).unwrap();
        assert!(
            packed * 3 < template.len(),
            "{packed} of {}",
            template.len()
        );
        let text = br#"{"messaging_product":"whatsapp","to":"16505551234","type":"text","text":{"preview_url":false,"body":"Your order shipped"}}"#;
        let packed = round_trip(text).unwrap();
        assert!(packed * 2 < text.len(), "{packed} of {}", text.len());
        // Keys in another order, spaces, escapes, other types: exact, if packed less.
        for other in [
            &br#"{ "to": "1", "messaging_product": "whatsapp", "type": "template" }"#[..],
            br#"{"type":"image","image":{"link":"https://x/y.png"},"to":"1","messaging_product":"whatsapp"}"#,
            br#"{"text":{"body":"a \"quoted\" \u0001 {\"type\":\"} and \\"},"to":"1"}"#,
            b"",
            b"{",
            b"\"",
            br#""}]}]}"#,
        ] {
            assert!(round_trip(other).is_some());
        }
    }

    #[test]
    fn a_payload_holding_a_code_byte_is_kept_as_written() {
        for raw in [
            &b"{\"x\":\"\x01\"}"[..],
            b"\x1b",
            b"\x02\"to\":\"",
            b"\xff\x0b",
        ] {
            assert_eq!(round_trip(raw), None);
        }
        // Whitespace is no code: it packs.
        assert!(round_trip(b"{\t\"to\":\"1\"\r\n}").is_some());
    }

    #[test]
    fn any_bytes_read_back_exactly_or_stay_as_written() {
        // A deterministic walk over short byte strings built from the pieces' own bytes,
        // codes and plain bytes: every one packs and reads back, or is refused whole.
        let alphabet: Vec<u8> = b"{}\":,[]atx \x01\x1b\xff".to_vec();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut payload = Vec::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = (state % 40) as usize;
            let mut word = state;
            for i in 0..length {
                if i % 9 == 0 {
                    word = word.rotate_left(23) ^ 0xa076_1d64_78bd_642f;
                }
                if word & 7 == 0 {
                    payload.extend_from_slice(PIECES[(word >> 3) as usize % PIECES.len()]);
                } else {
                    payload.push(alphabet[(word >> 3) as usize % alphabet.len()]);
                }
                word >>= 5;
            }
            let holds_code = payload.iter().any(|&b| piece_of(b).is_some());
            assert_eq!(round_trip(&payload).is_none(), holds_code);
        }
    }

    #[test]
    fn codes_are_control_bytes_other_than_json_whitespace_and_each_piece_is_listed_once() {
        for (code, piece) in CODES.iter().zip(PIECES) {
            assert!(*code < 0x20 && !b"\t\n\r".contains(code));
            assert!(
                matches!(piece[0], b'{' | b'"' | b'}'),
                "the scan stops there"
            );
        }
        let mut codes = CODES.to_vec();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), CODES.len());
        // A piece whose longer form starts alike comes after it (the first match is taken).
        for (i, piece) in PIECES.iter().enumerate() {
            for longer in &PIECES[i + 1..] {
                assert!(
                    !(longer.starts_with(piece) && longer.len() > piece.len()),
                    "{} shadows {}",
                    String::from_utf8_lossy(piece),
                    String::from_utf8_lossy(longer)
                );
            }
        }
    }
}
