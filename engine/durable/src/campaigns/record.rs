//! A campaign's record: what it sends, to how many, its plan, where its feed stands and what
//! came of it so far. Small and rewritten whole on each change (JSON, so that fields can be
//! added without a format step: a missing field reads as its default).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Its audience is being uploaded.
    Uploading,
    /// Uploaded and planned; nothing sent until it is started.
    Planned,
    /// Fed to the rules from its start time on.
    Running,
    /// Not fed until resumed (by the operator, or by itself when what paused it passes).
    Paused,
    Cancelled,
    /// Every person of its audience was fed.
    Done,
}

impl CampaignState {
    pub const ALL: [CampaignState; 6] = [
        CampaignState::Uploading,
        CampaignState::Planned,
        CampaignState::Running,
        CampaignState::Paused,
        CampaignState::Cancelled,
        CampaignState::Done,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CampaignState::Uploading => "uploading",
            CampaignState::Planned => "planned",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Cancelled => "cancelled",
            CampaignState::Done => "done",
        }
    }

    /// Nothing more will be sent.
    pub fn is_over(self) -> bool {
        matches!(self, CampaignState::Cancelled | CampaignState::Done)
    }
}

/// Why a campaign is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseCause {
    Operator,
    /// Meta restricted the number.
    NumberRestricted,
    /// Meta's quality rating of the number fell below what it was when the campaign went on.
    QualityDropped,
    /// Meta paused (or disabled) the template.
    TemplatePaused,
}

impl PauseCause {
    pub fn name(self) -> &'static str {
        match self {
            PauseCause::Operator => "operator",
            PauseCause::NumberRestricted => "number_restricted",
            PauseCause::QualityDropped => "quality_dropped",
            PauseCause::TemplatePaused => "template_paused",
        }
    }
}

/// The plan made when the upload finished: sends per day from the start, and the day the
/// next tier is earned (a projection: Meta's word decides).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedDays {
    pub sends: Vec<u64>,
    pub tiers: Vec<String>,
    /// Each day's unique-recipient limit (`None`: unlimited).
    #[serde(default)]
    pub limits: Vec<Option<u32>>,
    pub upgrade_day: Option<u32>,
    pub upgrade_to: Option<String>,
    pub unplaced: u64,
}

/// What a campaign is asked to do, as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignSpec {
    /// The tenant that owns it.
    pub tenant: String,
    pub name: String,
    pub number: u64,
    pub template: String,
    pub language: String,
    /// Not fed before this instant (Unix seconds).
    pub start_at: u64,
    /// At most this many accepted on one day of the campaign.
    pub daily_cap: Option<u64>,
    /// Resume by itself when what paused it (Meta's word) passes; the operator's pause waits
    /// for the operator either way.
    pub auto_resume: bool,
    /// The campaign's own quiet hours: its sends go only from the first to the second minute
    /// after midnight in each person's local time (held to the next allowed minute, queued).
    #[serde(default)]
    pub quiet_hours: Option<[u16; 2]>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: u64,
    pub spec: CampaignSpec,
    pub state: CampaignState,
    #[serde(default)]
    pub paused_by: Option<PauseCause>,
    pub created_at: u64,
    #[serde(default)]
    pub started_at: Option<u64>,
    #[serde(default)]
    pub finished_at: Option<u64>,
    /// The quality rating (`Quality as u8`) when it last went on: a lower one pauses it.
    #[serde(default)]
    pub quality_floor: u8,
    /// Lines uploaded, and of those the people kept (eligible when screened).
    #[serde(default)]
    pub received: u64,
    #[serde(default)]
    pub audience: u64,
    /// People left out at the upload, by reason (`no_opt_in`, `opted_out`, `invalid`, ...).
    #[serde(default)]
    pub excluded: BTreeMap<String, u64>,
    /// The audience's price at the upload's prices (micro-dollars).
    #[serde(default)]
    pub estimated_cost_micros: u64,
    #[serde(default)]
    pub plan: PlannedDays,
    /// The next audience position to feed.
    #[serde(default)]
    pub cursor: u64,
    #[serde(default)]
    pub accepted: u64,
    /// Fed and queued by the rules (a person's own wait: quiet hours, pacing): sent when due.
    #[serde(default)]
    pub queued: u64,
    /// Refused by the rules when fed, by reason.
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    /// Accepted on each day of the campaign (day 0 from `started_at`).
    #[serde(default)]
    pub days: Vec<u64>,
    /// The accepted sends' price as decided (micro-dollars).
    #[serde(default)]
    pub accepted_cost_micros: u64,
    /// Events told to the tenant so far (each callback's identity).
    #[serde(default)]
    pub events: u32,
}

impl Campaign {
    /// The day of the campaign `now` falls on (0 before it started).
    pub fn day_at(&self, now: u64) -> usize {
        self.started_at
            .map_or(0, |at| (now.saturating_sub(at) / 86_400) as usize)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a campaign serializes")
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Campaign> {
        serde_json::from_slice(bytes).ok()
    }
}
