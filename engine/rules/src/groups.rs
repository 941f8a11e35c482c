//! Groups' rules as profile data: how many people a group holds, how many groups a number
//! keeps, how people come in (by invite link only, or also added by the business with their
//! recorded opt-in for groups), what may be sent to a group, the group's own service window,
//! and the pricing category a group send is billed under. Every check here answers before
//! anything goes to Meta; the engine keeps no other group rule.

use serde::Deserialize;

use crate::template::model::Category;

/// How people come into a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Joining {
    /// They join through the group's invite link (with the business's approval if it asks):
    /// nobody is added by the business (Meta's Groups API).
    InviteLink,
    /// The business may also add people, each with a recorded opt-in for the groups topic
    /// (the seeds' rule: explicit consent before anyone is added).
    AddedWithOptIn,
}

/// The `[groups]` section of a policy profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRules {
    /// Participants a group holds at most (the business not counted).
    pub max_participants: u32,
    /// Groups one business number keeps at once (those being created counted).
    pub max_groups_per_number: u32,
    pub joining: Joining,
    /// The consent topic a person must have opted in to before being added (`added_with_opt_in`).
    #[serde(default)]
    pub opt_in_topic: Option<String>,
    /// A group's own customer-service window, opened by each message a participant writes in
    /// it: free-form messages only inside it, templates at any time.
    pub service_window_secs: u32,
    /// Meta's message `type`s a group takes.
    pub message_types: Vec<String>,
    /// The template categories a group takes (authentication templates are not among them).
    pub template_categories: Vec<Category>,
    /// The pricing category of a group send, by the category it would have had one to one.
    pub pricing_categories: GroupPricingCategories,
    /// Longest subject and description Meta takes.
    pub max_subject_chars: u32,
    pub max_description_chars: u32,
}

/// Meta's group pricing categories (`group_marketing`, `group_utility`, `group_service`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPricingCategories {
    pub marketing: String,
    pub utility: String,
    pub service: String,
}

/// Why a group call or send cannot go to Meta as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupRefusal {
    #[error("the group has {participants} participants and may hold at most {cap}: {joining} more would be too many")]
    Full {
        cap: u32,
        participants: usize,
        joining: usize,
    },
    #[error("the number keeps {groups} groups and may keep at most {cap}")]
    TooManyGroups { cap: u32, groups: usize },
    #[error("people join a group through its invite link: the business cannot add them")]
    InviteOnly,
    #[error(
        "{person} has no recorded opt-in for '{topic}': nobody is added to a group without it"
    )]
    NoGroupOptIn { person: String, topic: String },
    #[error("a group does not take messages of type '{0}'")]
    MessageType(String),
    #[error("a group does not take {} templates", .0.name())]
    TemplateCategory(Category),
    #[error("read marks are not taken for messages in a group")]
    ReadMark,
    #[error(
        "more than {0} seconds since anyone last wrote in the group: only a template may be sent"
    )]
    OutsideGroupWindow(u32),
    #[error("{0} of the group's participants withdrew consent for this message: nothing goes to the group while they are in it")]
    ParticipantWithdrew(usize),
    #[error("{field} has {got} characters; at most {limit}")]
    TooLong {
        field: &'static str,
        limit: u32,
        got: usize,
    },
    #[error("group {0} is not one of the number's groups")]
    UnknownGroup(String),
    #[error("a send to a group is decided when it is asked, with its participants' consent then: it cannot be scheduled or queued")]
    NotLater,
}

impl GroupRefusal {
    /// Meta's code for the same condition where it has one (100: invalid parameter).
    pub fn meta_code(&self) -> u32 {
        match self {
            GroupRefusal::OutsideGroupWindow(_) => 131_047,
            GroupRefusal::MessageType(_) => 131_051,
            _ => 100,
        }
    }

    /// A stable machine-readable name for wagate's own reason field.
    pub fn name(&self) -> &'static str {
        match self {
            GroupRefusal::Full { .. } => "group_full",
            GroupRefusal::TooManyGroups { .. } => "too_many_groups",
            GroupRefusal::InviteOnly => "group_invite_only",
            GroupRefusal::NoGroupOptIn { .. } => "no_group_opt_in",
            GroupRefusal::MessageType(_) => "group_message_type",
            GroupRefusal::TemplateCategory(_) => "group_template_category",
            GroupRefusal::ReadMark => "group_read_mark",
            GroupRefusal::OutsideGroupWindow(_) => "outside_group_window",
            GroupRefusal::ParticipantWithdrew(_) => "group_participant_withdrew",
            GroupRefusal::TooLong { .. } => "group_text_too_long",
            GroupRefusal::UnknownGroup(_) => "unknown_group",
            GroupRefusal::NotLater => "group_send_not_later",
        }
    }
}

impl GroupRules {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_participants == 0 || self.max_groups_per_number == 0 {
            return Err("groups need max_participants and max_groups_per_number >= 1".into());
        }
        if self.joining == Joining::AddedWithOptIn && self.opt_in_topic.is_none() {
            return Err("groups.joining = added_with_opt_in needs groups.opt_in_topic".into());
        }
        if self.service_window_secs == 0 {
            return Err("groups.service_window_secs is 0".into());
        }
        Ok(())
    }

    /// A new group for a number that keeps `groups` (those being created counted).
    pub fn check_create(&self, groups: usize) -> Result<(), GroupRefusal> {
        if groups >= self.max_groups_per_number as usize {
            return Err(GroupRefusal::TooManyGroups {
                cap: self.max_groups_per_number,
                groups,
            });
        }
        Ok(())
    }

    /// `joining` more people (approved join requests or people added) into a group of
    /// `participants`.
    pub fn check_room(&self, participants: usize, joining: usize) -> Result<(), GroupRefusal> {
        if participants + joining > self.max_participants as usize {
            return Err(GroupRefusal::Full {
                cap: self.max_participants,
                participants,
                joining,
            });
        }
        Ok(())
    }

    /// People added by the business: allowed only where the profile lets the business add,
    /// each with a recorded opt-in for the groups topic (`opted_in` says whether one has it).
    pub fn check_add<'a>(
        &self,
        people: impl IntoIterator<Item = &'a str>,
        mut opted_in: impl FnMut(&str) -> bool,
    ) -> Result<(), GroupRefusal> {
        let topic = match (self.joining, &self.opt_in_topic) {
            (Joining::AddedWithOptIn, Some(topic)) => topic,
            _ => return Err(GroupRefusal::InviteOnly),
        };
        for person in people {
            if !opted_in(person) {
                return Err(GroupRefusal::NoGroupOptIn {
                    person: person.to_string(),
                    topic: topic.clone(),
                });
            }
        }
        Ok(())
    }

    /// A message of Meta's `type` to a group.
    pub fn check_message_type(&self, kind: &str) -> Result<(), GroupRefusal> {
        if !self.message_types.iter().any(|t| t == kind) {
            return Err(GroupRefusal::MessageType(kind.to_string()));
        }
        Ok(())
    }

    /// A template of `category` to a group.
    pub fn check_template_category(&self, category: Category) -> Result<(), GroupRefusal> {
        if !self.template_categories.contains(&category) {
            return Err(GroupRefusal::TemplateCategory(category));
        }
        Ok(())
    }

    /// A subject or description as Meta takes it.
    pub fn check_text(&self, field: &'static str, text: &str) -> Result<(), GroupRefusal> {
        let limit = match field {
            "subject" => self.max_subject_chars,
            _ => self.max_description_chars,
        };
        let got = text.chars().count();
        if got > limit as usize {
            return Err(GroupRefusal::TooLong { field, limit, got });
        }
        Ok(())
    }

    /// The pricing category of a group send that would have been `category` one to one.
    pub fn pricing_category(&self, category: Category) -> &str {
        match category {
            Category::Marketing => &self.pricing_categories.marketing,
            Category::Utility => &self.pricing_categories.utility,
            Category::Authentication | Category::Service => &self.pricing_categories.service,
        }
    }
}
