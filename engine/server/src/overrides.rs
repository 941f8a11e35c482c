//! Key-by-key overrides of a TOML table (`http.listen=127.0.0.1:9000`), from the command line
//! or the environment.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OverrideError {
    #[error("override '{0}': the key is empty")]
    EmptyKey(String),
    #[error("override '{key}': '{part}' is not a table")]
    NotATable { key: String, part: String },
}

/// Sets `key` (dotted) to `value`, read as a TOML value when it parses as one (numbers,
/// booleans, arrays, inline tables) and as a string otherwise.
pub(crate) fn apply_override(
    table: &mut toml::Table,
    key: &str,
    value: &str,
) -> Result<(), OverrideError> {
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(OverrideError::EmptyKey(key.to_string()));
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let (last, path) = parts.split_last().expect("at least one part");
    let mut current = table;
    for part in path {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| OverrideError::NotATable {
                key: key.to_string(),
                part: part.to_string(),
            })?;
    }
    current.insert(last.to_string(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed_when_they_parse_and_strings_otherwise() {
        let mut table = toml::Table::new();
        apply_override(&mut table, "http.listen", "127.0.0.1:9000").unwrap();
        apply_override(&mut table, "storage.sync", "false").unwrap();
        apply_override(&mut table, "engine.shards", "4").unwrap();
        assert_eq!(table["http"]["listen"].as_str(), Some("127.0.0.1:9000"));
        assert_eq!(table["storage"]["sync"].as_bool(), Some(false));
        assert_eq!(table["engine"]["shards"].as_integer(), Some(4));
    }

    #[test]
    fn a_path_through_a_value_is_refused() {
        let mut table: toml::Table = "http = 3".parse().unwrap();
        assert!(matches!(
            apply_override(&mut table, "http.listen", "x"),
            Err(OverrideError::NotATable { .. })
        ));
        assert!(matches!(
            apply_override(&mut table, "a..b", "x"),
            Err(OverrideError::EmptyKey(_))
        ));
    }
}
