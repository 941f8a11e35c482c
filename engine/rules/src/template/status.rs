//! The states of a template's lifecycle.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateStatus {
    Submitted = 0,
    InReview = 1,
    Approved = 2,
    Rejected = 3,
    Flagged = 4,
    Paused = 5,
    Disabled = 6,
    /// Meta deleted it (or is deleting or archived it): never sendable again under this name.
    Deleted = 7,
    /// Meta locked it (`LOCKED`, `LIMIT_EXCEEDED`): not sendable until Meta says otherwise.
    Locked = 8,
}

impl TemplateStatus {
    pub const ALL: [TemplateStatus; 9] = [
        TemplateStatus::Submitted,
        TemplateStatus::InReview,
        TemplateStatus::Approved,
        TemplateStatus::Rejected,
        TemplateStatus::Flagged,
        TemplateStatus::Paused,
        TemplateStatus::Disabled,
        TemplateStatus::Deleted,
        TemplateStatus::Locked,
    ];

    pub fn from_u8(value: u8) -> TemplateStatus {
        Self::ALL[usize::from(value).min(Self::ALL.len() - 1)]
    }

    pub fn parse(text: &str) -> Option<TemplateStatus> {
        match text.trim().to_ascii_lowercase().as_str() {
            "submitted" | "pending" => Some(TemplateStatus::Submitted),
            "in_review" => Some(TemplateStatus::InReview),
            "approved" | "reinstated" => Some(TemplateStatus::Approved),
            "rejected" => Some(TemplateStatus::Rejected),
            "flagged" => Some(TemplateStatus::Flagged),
            "paused" => Some(TemplateStatus::Paused),
            "disabled" => Some(TemplateStatus::Disabled),
            "deleted" | "pending_deletion" | "archived" => Some(TemplateStatus::Deleted),
            "locked" | "limit_exceeded" => Some(TemplateStatus::Locked),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TemplateStatus::Submitted => "submitted",
            TemplateStatus::InReview => "in_review",
            TemplateStatus::Approved => "approved",
            TemplateStatus::Rejected => "rejected",
            TemplateStatus::Flagged => "flagged",
            TemplateStatus::Paused => "paused",
            TemplateStatus::Disabled => "disabled",
            TemplateStatus::Deleted => "deleted",
            TemplateStatus::Locked => "locked",
        }
    }

    /// Only approved templates, and flagged ones while they may still recover, can be sent.
    pub fn is_sendable(self) -> bool {
        matches!(self, TemplateStatus::Approved | TemplateStatus::Flagged)
    }
}
