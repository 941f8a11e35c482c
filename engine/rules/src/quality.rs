//! Quality ratings as Meta reports them for phone numbers and templates.

use serde::{Deserialize, Serialize};

/// `quality_rating` / `quality_score`: GREEN (high), YELLOW (medium), RED (low), or no data yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    #[default]
    Unknown = 0,
    Green = 1,
    Yellow = 2,
    Red = 3,
}

impl Quality {
    pub fn from_u8(value: u8) -> Quality {
        match value {
            1 => Quality::Green,
            2 => Quality::Yellow,
            3 => Quality::Red,
            _ => Quality::Unknown,
        }
    }

    /// Meta's wire names: `GREEN`, `YELLOW`, `RED`, and `UNKNOWN` (also `NA`).
    pub fn parse_meta(text: &str) -> Option<Quality> {
        match text.to_ascii_uppercase().as_str() {
            "GREEN" | "HIGH" => Some(Quality::Green),
            "YELLOW" | "MEDIUM" => Some(Quality::Yellow),
            "RED" | "LOW" => Some(Quality::Red),
            "UNKNOWN" | "NA" => Some(Quality::Unknown),
            _ => None,
        }
    }

    pub fn meta_name(self) -> &'static str {
        match self {
            Quality::Green => "GREEN",
            Quality::Yellow => "YELLOW",
            Quality::Red => "RED",
            Quality::Unknown => "UNKNOWN",
        }
    }
}
