//! A JSON string read without a copy: borrowed from the bytes it was read from when it holds
//! no escapes, owned otherwise. Requests and webhooks are read into typed parts made of these,
//! so reading one allocates only for what wagate keeps; the readers here answer what is
//! malformed or missing with Meta's codes (100, 131008).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error, Visitor};
use serde_json::error::Category;
use serde_json::value::RawValue;

use crate::error::ApiError;

#[derive(Debug)]
pub struct Text<'a>(Cow<'a, str>);

impl<'a> Text<'a> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor(PhantomData))
    }
}

struct TextVisitor<'a>(PhantomData<&'a str>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_borrowed_str<E: Error>(self, text: &'de str) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Owned(text.to_string())))
    }

    fn visit_string<E: Error>(self, text: String) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Owned(text)))
    }
}

/// The text of an optional field, if given.
pub fn text<'b>(field: &'b Option<Text<'_>>) -> Option<&'b str> {
    field.as_ref().map(Text::as_str)
}

/// The text of the field `key` of `path`, which Meta requires; its absence is code 131008.
pub fn required<'b>(
    field: &'b Option<Text<'_>>,
    path: impl fmt::Display,
    key: &str,
) -> Result<&'b str, ApiError> {
    text(field).ok_or_else(|| ApiError::missing_parameter(format!("{path}.{key} is required")))
}

/// Reads a whole body (a send request, a webhook POST) into its typed form: a body that is not
/// JSON, or a value of the wrong shape, is Meta's code 100.
pub fn read_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        Category::Data => ApiError::invalid_parameter(e.to_string()),
        _ => ApiError::invalid_parameter(format!("the body is not valid JSON: {e}")),
    })
}

/// Reads one part kept as written into its typed form; a value of the wrong shape or an
/// unknown key is code 100, named by `path`.
pub fn read_part<'a, T: Deserialize<'a>>(raw: &'a RawValue, path: &str) -> Result<T, ApiError> {
    serde_json::from_str(raw.get()).map_err(|e| ApiError::invalid_parameter(format!("{path}: {e}")))
}
