//! Reading the request's fields: optional and required text, and each message type's body
//! into its typed form, with Meta's error codes.

use std::fmt;

use serde::de::Deserialize;
use serde_json::value::RawValue;

use crate::cloud_api::error::ApiError;
pub(super) use crate::json_text::Text;

/// The text of an optional field, if given.
pub(super) fn text<'b>(field: &'b Option<Text<'_>>) -> Option<&'b str> {
    field.as_ref().map(Text::as_str)
}

/// The text of the field `key` of `path`, which Meta requires; its absence is code 131008.
pub(super) fn required<'b>(
    field: &'b Option<Text<'_>>,
    path: impl fmt::Display,
    key: &str,
) -> Result<&'b str, ApiError> {
    text(field).ok_or_else(|| ApiError::missing_parameter(format!("{path}.{key} is required")))
}

/// Reads one part of the request (a message type's body) into its typed form; a value of the
/// wrong shape or an unknown key is code 100, named by its path.
pub(super) fn part<'a, T: Deserialize<'a>>(raw: &'a RawValue, path: &str) -> Result<T, ApiError> {
    serde_json::from_str(raw.get()).map_err(|e| ApiError::invalid_parameter(format!("{path}: {e}")))
}
