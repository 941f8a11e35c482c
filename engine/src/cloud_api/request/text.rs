//! Reading the request's fields: required text with Meta's code for its absence, and the
//! shared readers of `json_text` under the names the request's parts use.

use std::fmt;

use crate::cloud_api::error::ApiError;
pub(super) use crate::json_text::{read_part as part, text, Text};

/// The text of the field `key` of `path`, which Meta requires; its absence is code 131008.
pub(super) fn required<'b>(
    field: &'b Option<Text<'_>>,
    path: impl fmt::Display,
    key: &str,
) -> Result<&'b str, ApiError> {
    text(field).ok_or_else(|| ApiError::missing_parameter(format!("{path}.{key} is required")))
}
