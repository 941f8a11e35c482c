//! A send's own options beyond Meta's body: its consent topic, when it may go (`send_at`, or
//! `remind_before` an `event_at`) and until when (`expire_at`, or `valid_for` seconds from
//! now). The single endpoint reads them from headers (`X-Wagate-Topic`, `X-Wagate-Send-At`,
//! ...), a bulk line and gRPC from fields of the same names; one reading serves all three.
//! Instants are Unix seconds or RFC 3339 with its offset (`2026-12-10T15:00:00+01:00`).

use std::borrow::Cow;

use super::headers::Headers;
use super::state::App;
use wagate_cloud_api::error::ApiError;
use wagate_rules::clock::{days_of_date, Timestamp};
use wagate_rules::decision::SendOptions;
use wagate_rules::topics::TopicSet;

/// How far ahead a send may be scheduled, or valid: a bound on what the queue holds.
const MAX_AHEAD_SECS: u64 = 400 * 86_400;

/// The options as a caller wrote them (absent or empty: not asked).
#[derive(Debug, Default)]
pub(crate) struct AskedOptions<'a> {
    pub topic: Option<Cow<'a, str>>,
    pub send_at: Option<Cow<'a, str>>,
    pub remind_before: Option<Cow<'a, str>>,
    pub event_at: Option<Cow<'a, str>>,
    pub expire_at: Option<Cow<'a, str>>,
    pub valid_for: Option<Cow<'a, str>>,
    /// The person's own UTC offset (`+05:30`, `-04:00`, `Z`), for quiet hours.
    pub time_zone: Option<Cow<'a, str>>,
}

impl<'a> AskedOptions<'a> {
    /// The options the single endpoint's headers name (`X-Wagate-<Name>`).
    pub(crate) fn of_headers<H: Headers + ?Sized>(headers: &'a H) -> Result<Self, ApiError> {
        // Header names written out whole: no allocation per request on the send path.
        let field = |header: &'static str| -> Result<Option<Cow<'a, str>>, ApiError> {
            match headers.text(header) {
                None => Ok(None),
                Some(Some(text)) => Ok(Some(Cow::Borrowed(text))),
                Some(None) => Err(ApiError::invalid_parameter(format!(
                    "{header} must be visible ASCII"
                ))),
            }
        };
        Ok(AskedOptions {
            topic: field("x-wagate-topic")?,
            send_at: field("x-wagate-send-at")?,
            remind_before: field("x-wagate-remind-before")?,
            event_at: field("x-wagate-event-at")?,
            expire_at: field("x-wagate-expire-at")?,
            valid_for: field("x-wagate-valid-for")?,
            time_zone: field("x-wagate-time-zone")?,
        })
    }
}

/// A bulk line's time field: Unix seconds as a number, or text.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum Field<'a> {
    Number(u64),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

impl<'a> Field<'a> {
    pub(crate) fn text(field: Option<Field<'a>>) -> Option<Cow<'a, str>> {
        field.map(|field| match field {
            Field::Number(n) => Cow::Owned(n.to_string()),
            Field::Text(text) => text,
        })
    }
}

fn present<'b>(field: &'b Option<Cow<'_, str>>) -> Option<&'b str> {
    field.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

/// The options asked, checked; `now` is the engine's clock.
pub(crate) fn send_options(
    app: &App,
    asked: &AskedOptions,
    now: Timestamp,
) -> Result<SendOptions, ApiError> {
    let wrong = |name: &str, why: String| ApiError::invalid_parameter(format!("{name}: {why}"));
    let topic = send_topic(app, present(&asked.topic))?;
    let seconds = |name: &str, field: &Option<Cow<'_, str>>| -> Result<Option<u64>, ApiError> {
        present(field)
            .map(|text| {
                text.parse::<u64>()
                    .ok()
                    .filter(|secs| (1..=MAX_AHEAD_SECS).contains(secs))
                    .ok_or_else(|| wrong(name, format!("whole seconds, 1 to {MAX_AHEAD_SECS}")))
            })
            .transpose()
    };
    let instant = |name: &str, field: &Option<Cow<'_, str>>| {
        present(field)
            .map(|text| parse_instant(text).map_err(|why| wrong(name, why)))
            .transpose()
    };
    let send_at = match (
        instant("send_at", &asked.send_at)?,
        seconds("remind_before", &asked.remind_before)?,
        instant("event_at", &asked.event_at)?,
    ) {
        (None, None, None) => None,
        (Some(at), None, None) => Some(at),
        (None, Some(before), Some(event)) => {
            Some(Timestamp(event.0.saturating_sub(before * 1_000_000)))
        }
        (None, Some(_), None) | (None, None, Some(_)) => {
            return Err(ApiError::invalid_parameter(
                "remind_before and event_at go together",
            ))
        }
        (Some(_), _, _) => {
            return Err(ApiError::invalid_parameter(
                "send_at, or remind_before an event_at: not both",
            ))
        }
    };
    let expire_at = match (
        instant("expire_at", &asked.expire_at)?,
        seconds("valid_for", &asked.valid_for)?,
    ) {
        (None, None) => None,
        (Some(at), None) => Some(at),
        (None, Some(secs)) => Some(Timestamp(now.0 + secs * 1_000_000)),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_parameter(
                "expire_at or valid_for: not both",
            ))
        }
    };
    let horizon = Timestamp(now.0 + MAX_AHEAD_SECS * 1_000_000);
    if send_at.is_some_and(|at| at > horizon) {
        return Err(wrong(
            "send_at",
            format!("at most {MAX_AHEAD_SECS} s ahead"),
        ));
    }
    if let (Some(send_at), Some(expire_at)) = (send_at, expire_at) {
        if expire_at <= send_at {
            return Err(wrong(
                "expire_at",
                "the send would expire before it may go".into(),
            ));
        }
    }
    let utc_offset_minutes = present(&asked.time_zone)
        .map(|text| {
            parse_offset(text).ok_or_else(|| {
                wrong(
                    "time_zone",
                    format!("'{text}' is not an offset like +05:30"),
                )
            })
        })
        .transpose()?;
    Ok(SendOptions {
        topic,
        // A time already past is now.
        send_at: send_at.filter(|at| *at > now),
        expire_at,
        utc_offset_minutes,
        // The sender (a number or a pool) is not an option of the body: set by its reader.
        pool: None,
    })
}

/// A UTC offset as RFC 3339 writes it (`Z`, `+05:30`, `-04:00`), in minutes.
fn parse_offset(text: &str) -> Option<i16> {
    if text.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let bytes = text.as_bytes();
    let sign = match bytes.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if bytes.len() != 6 || bytes[3] != b':' {
        return None;
    }
    let hours: i16 = text.get(1..3)?.parse().ok()?;
    let minutes: i16 = text.get(4..6)?.parse().ok()?;
    (hours <= 14 && minutes < 60).then_some(sign * (hours * 60 + minutes))
}

/// The consent topic a caller named for a send: one of the built-in topics or the operator's
/// `consent.topics` (none when not named).
pub(crate) fn send_topic(app: &App, name: Option<&str>) -> Result<TopicSet, ApiError> {
    match name.map(str::trim).filter(|name| !name.is_empty()) {
        None => Ok(TopicSet::default()),
        Some(name) => app
            .wagate
            .registry()
            .topic_names()
            .topic(name)
            .map_err(|e| ApiError::invalid_parameter(format!("topic: {e}"))),
    }
}

/// Unix seconds, or RFC 3339 with its offset (`Z` or `±HH:MM`; fractions of a second kept to
/// the microsecond).
pub(crate) fn parse_instant(text: &str) -> Result<Timestamp, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return secs
            .checked_mul(1_000_000)
            .map(Timestamp)
            .ok_or_else(|| "too far ahead".into());
    }
    let wrong = || format!("'{text}' is neither Unix seconds nor RFC 3339 with an offset");
    let bytes = text.as_bytes();
    let number = |from: usize, len: usize| -> Result<i64, String> {
        let part = text.get(from..from + len).ok_or_else(wrong)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().map_err(|_| wrong())
        } else {
            Err(wrong())
        }
    };
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return Err(wrong());
    }
    // The date's digits are checked here; its days counted by the rules' calendar.
    for (from, len) in [(0, 4), (5, 2), (8, 2)] {
        number(from, len)?;
    }
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    if hour > 23 || minute > 59 || second > 60 {
        return Err(wrong());
    }
    let mut at = 19;
    let mut micros = 0i64;
    if bytes.get(at) == Some(&b'.') {
        let digits = bytes[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return Err(wrong());
        }
        let kept = digits.min(6);
        micros = number(at + 1, kept)? * 10i64.pow((6 - kept) as u32);
        at += 1 + digits;
    }
    let offset_secs = match bytes.get(at) {
        Some(b'Z' | b'z') if at + 1 == bytes.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == bytes.len() && bytes[at + 3] == b':' => {
            let secs = number(at + 1, 2)? * 3_600 + number(at + 4, 2)? * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return Err(wrong()),
    };
    let days = days_of_date(&text[..10]).ok_or_else(wrong)? as i64;
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_secs;
    u64::try_from(secs)
        .ok()
        .and_then(|secs| secs.checked_mul(1_000_000))
        .map(|micros_total| Timestamp(micros_total + micros as u64))
        .ok_or_else(|| "before 1970".into())
}

#[cfg(test)]
mod tests {
    use super::parse_instant;
    use wagate_rules::clock::Timestamp;

    #[test]
    fn instants_read_as_unix_seconds_or_rfc_3339_with_their_offset() {
        let at = |text: &str| parse_instant(text).map(|t| t.0);
        assert_eq!(at("1767225600"), Ok(1_767_225_600_000_000));
        assert_eq!(at("2026-01-01T00:00:00Z"), Ok(1_767_225_600_000_000));
        assert_eq!(at("2026-01-01T01:00:00+01:00"), Ok(1_767_225_600_000_000));
        assert_eq!(at("2025-12-31T19:30:00-04:30"), Ok(1_767_225_600_000_000));
        assert_eq!(at("2026-12-10T15:00:00.25Z"), Ok(1_796_914_800_250_000));
        assert_eq!(
            parse_instant("2024-02-29T12:00:00Z"),
            Ok(Timestamp::from_unix_secs(1_709_208_000))
        );
        for wrong in [
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-01-01 00:00Z",
            "tomorrow",
            "2026-01-01T00:00:00+0100",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(parse_instant(wrong).is_err(), "{wrong}");
        }
    }
}
