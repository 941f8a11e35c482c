//! Request headers as the handlers read them: from hyper's map (the routes axum serves) or
//! from the head the HTTP/1.1 front parsed in place (the send endpoint's own way in), so that
//! both ways run the same checks.

use axum::http::HeaderMap;

/// A request's headers, looked up by lowercase name.
pub trait Headers {
    /// The first value of header `name`, as sent.
    fn header(&self, name: &str) -> Option<&[u8]>;

    /// The value as text, `None` when absent; `Some(None)` when it holds anything but visible
    /// ASCII, spaces and tabs (what hyper's `HeaderValue::to_str` refuses).
    fn text(&self, name: &str) -> Option<Option<&str>> {
        self.header(name).map(|value| {
            value
                .iter()
                .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b))
                .then(|| std::str::from_utf8(value).expect("ASCII is UTF-8"))
        })
    }
}

impl Headers for HeaderMap {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(|value| value.as_bytes())
    }
}

impl Headers for [httparse::Header<'_>] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_find_a_header_by_any_case_and_refuse_the_same_text() {
        let mut map = HeaderMap::new();
        map.insert("authorization", "Bearer t".parse().expect("value"));
        map.insert(
            "idempotency-key",
            axum::http::HeaderValue::from_bytes(b"caf\xc3\xa9").expect("value"),
        );
        let parsed = [
            httparse::Header {
                name: "Authorization",
                value: b"Bearer t",
            },
            httparse::Header {
                name: "IDEMPOTENCY-KEY",
                value: b"caf\xc3\xa9",
            },
        ];
        fn check<H: Headers + ?Sized>(headers: &H) {
            assert_eq!(headers.text("authorization"), Some(Some("Bearer t")));
            assert_eq!(headers.text("idempotency-key"), Some(None));
            assert_eq!(headers.header("idempotency-key"), Some(&b"caf\xc3\xa9"[..]));
            assert_eq!(headers.text("content-type"), None);
        }
        check(&map);
        check(&parsed[..]);
    }
}
