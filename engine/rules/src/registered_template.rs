//! A registered template: its definition, what a send must supply, and its lifecycle.
//!
//! The status is read on every send, so it is mirrored in an atomic; transitions (rare) take a
//! mutex. Time-driven transitions (a pause running out, a flag not recovered in time) are
//! applied lazily by whoever reads the status after the deadline.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Mutex;

use crate::clock::Secs;
use crate::decision::Refusal;
use crate::hash::mix64;
use crate::profile::{RedQualityAction, TemplateRules};
use crate::quality::Quality;
use crate::template::model::{
    parameter_names, ButtonParamValue, ButtonSpec, Category, HeaderParam, HeaderSpec,
    ParameterFormat, TemplateDefinition, TemplateSend,
};
use crate::template::status::TemplateStatus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template cannot go from {} to {} under this profile", from.name(), to.name())]
pub struct TransitionError {
    pub from: TemplateStatus,
    pub to: TemplateStatus,
}

/// How many of its latest changes a template keeps.
pub const HISTORY_LEN: usize = 16;

/// One change of a template's status or quality: when, and what it was then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TemplateChange {
    pub at: Secs,
    pub status: TemplateStatus,
    pub quality: Quality,
}

#[derive(Debug, Clone, Copy, Default)]
struct Lifecycle {
    flagged_since: Secs,
    paused_until: Secs,
    pauses: u8,
    quality: u8,
    /// The latest changes, oldest first (`None` past the last).
    history: [Option<TemplateChange>; HISTORY_LEN],
}

impl Lifecycle {
    fn record(&mut self, change: TemplateChange) {
        if self.history.iter().all(Option::is_some) {
            self.history.rotate_left(1);
            self.history[HISTORY_LEN - 1] = None;
        }
        if let Some(slot) = self.history.iter_mut().find(|c| c.is_none()) {
            *slot = Some(change);
        }
    }

    fn history(&self) -> Vec<TemplateChange> {
        self.history.iter().flatten().copied().collect()
    }
}

/// A template's lifecycle as persisted beside its definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LifecycleSnapshot {
    pub status: TemplateStatus,
    pub flagged_since: Secs,
    pub paused_until: Secs,
    pub pauses: u8,
    pub quality: Quality,
    /// Its latest status and quality changes, oldest first (none in records written before).
    #[serde(default)]
    pub history: Vec<TemplateChange>,
}

/// The identity hash of (account, name, language), used by caches and the registry.
pub fn template_key_hash(account: u64, name: &str, language: &str) -> u64 {
    let mut hash = mix64(account);
    for byte in name.bytes().chain([0xff]).chain(language.bytes()) {
        hash = mix64(hash ^ u64::from(byte));
    }
    hash
}

#[derive(Debug)]
pub struct Template {
    pub definition: TemplateDefinition,
    pub key_hash: u64,
    body_parameters: Vec<String>,
    header_parameters: usize,
    status: AtomicU8,
    /// When a lazy transition is due (pause end, flag expiry); 0 if none.
    deadline: AtomicU32,
    lifecycle: Mutex<Lifecycle>,
}

impl Template {
    pub fn new(definition: TemplateDefinition) -> Template {
        let body_parameters = parameter_names(&definition.body);
        let header_parameters = definition
            .headers
            .iter()
            .map(|h| match h {
                HeaderSpec::Text(text) => parameter_names(text).len(),
                _ => 0,
            })
            .sum();
        Template {
            key_hash: template_key_hash(
                definition.account.0,
                &definition.name,
                &definition.language,
            ),
            definition,
            body_parameters,
            header_parameters,
            status: AtomicU8::new(TemplateStatus::Submitted as u8),
            deadline: AtomicU32::new(0),
            lifecycle: Mutex::new(Lifecycle::default()),
        }
    }

    /// A template as it was persisted; time-driven transitions apply at the next read.
    pub fn restored(definition: TemplateDefinition, snapshot: &LifecycleSnapshot) -> Template {
        let template = Template::new(definition);
        let mut lifecycle = Lifecycle {
            flagged_since: snapshot.flagged_since,
            paused_until: snapshot.paused_until,
            pauses: snapshot.pauses,
            quality: snapshot.quality as u8,
            history: [None; HISTORY_LEN],
        };
        for change in snapshot.history.iter().rev().take(HISTORY_LEN).rev() {
            lifecycle.record(*change);
        }
        template.store(&lifecycle, snapshot.status);
        *template.lock() = lifecycle;
        template
    }

    pub fn snapshot(&self) -> LifecycleSnapshot {
        let lifecycle = self.lock();
        LifecycleSnapshot {
            status: self.current(),
            flagged_since: lifecycle.flagged_since,
            paused_until: lifecycle.paused_until,
            pauses: lifecycle.pauses,
            quality: Quality::from_u8(lifecycle.quality),
            history: lifecycle.history(),
        }
    }

    pub fn category(&self) -> Category {
        self.definition.category
    }

    pub fn is(&self, account: u64, name: &str, language: &str) -> bool {
        self.definition.account.0 == account
            && self.definition.name == name
            && self.definition.language == language
    }

    /// The status at `now`, after any transition whose time has come.
    #[inline]
    pub fn status(&self, rules: &TemplateRules, now: Secs) -> TemplateStatus {
        let deadline = self.deadline.load(Ordering::Acquire);
        if deadline != 0 && now >= deadline {
            let mut lifecycle = self.lock();
            self.apply_deadlines(&mut lifecycle, rules, now);
        }
        TemplateStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    pub fn quality(&self) -> Quality {
        Quality::from_u8(self.lock().quality)
    }

    pub fn pauses(&self) -> u8 {
        self.lock().pauses
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lifecycle> {
        // A panic while holding this lock cannot leave the plain-data lifecycle torn.
        self.lifecycle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> TemplateStatus {
        TemplateStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    /// Moves to `status` at `at`, kept in the history.
    fn set(&self, lifecycle: &mut Lifecycle, status: TemplateStatus, at: Secs) {
        self.store(lifecycle, status);
        lifecycle.record(TemplateChange {
            at,
            status,
            quality: Quality::from_u8(lifecycle.quality),
        });
    }

    fn store(&self, lifecycle: &Lifecycle, status: TemplateStatus) {
        let deadline = match status {
            TemplateStatus::Paused => lifecycle.paused_until,
            TemplateStatus::Flagged => lifecycle.flagged_since,
            _ => 0,
        };
        self.status.store(status as u8, Ordering::Release);
        self.deadline.store(deadline, Ordering::Release);
    }

    fn apply_deadlines(&self, lifecycle: &mut Lifecycle, rules: &TemplateRules, now: Secs) {
        match self.current() {
            // A pause with no end (Meta's pause beyond the profile's ladder) lasts until Meta
            // says otherwise.
            TemplateStatus::Paused
                if lifecycle.paused_until != 0 && now >= lifecycle.paused_until =>
            {
                let at = lifecycle.paused_until;
                self.set(lifecycle, TemplateStatus::Approved, at);
            }
            TemplateStatus::Flagged
                if now
                    >= lifecycle
                        .flagged_since
                        .saturating_add(rules.flag_recovery_secs) =>
            {
                let at = lifecycle
                    .flagged_since
                    .saturating_add(rules.flag_recovery_secs);
                self.set(lifecycle, TemplateStatus::Disabled, at);
            }
            TemplateStatus::Flagged => {
                // The deadline stored for a flag is its start; re-arm it to the real expiry.
                self.deadline.store(
                    lifecycle
                        .flagged_since
                        .saturating_add(rules.flag_recovery_secs),
                    Ordering::Release,
                );
            }
            _ => {}
        }
    }

    /// A status change from review or an operator; only the profile's transitions are legal.
    pub fn transition(
        &self,
        rules: &TemplateRules,
        to: TemplateStatus,
        now: Secs,
    ) -> Result<TemplateStatus, TransitionError> {
        let mut lifecycle = self.lock();
        self.apply_deadlines(&mut lifecycle, rules, now);
        let from = self.current();
        if from == to {
            return Ok(to);
        }
        if !rules.allows(from, to) {
            return Err(TransitionError { from, to });
        }
        let to = match to {
            TemplateStatus::Paused => self.next_pause(&mut lifecycle, rules, now),
            TemplateStatus::Flagged => {
                lifecycle.flagged_since = now;
                to
            }
            _ => to,
        };
        self.set(&mut lifecycle, to, now);
        self.apply_deadlines(&mut lifecycle, rules, now);
        Ok(to)
    }

    /// A status Meta reported (webhook or a read of the template): applied as Meta's state,
    /// whatever the profile's transition table lists, which governs only what an operator may
    /// request. A pause gets the ladder's next length as the projected end (Meta lifts it
    /// then, or says otherwise); past the ladder, no end: the template stays paused until
    /// Meta's next word, never disabled by wagate's count alone. Returns the status now.
    pub fn apply_reported(
        &self,
        rules: &TemplateRules,
        to: TemplateStatus,
        now: Secs,
    ) -> TemplateStatus {
        let mut lifecycle = self.lock();
        self.apply_deadlines(&mut lifecycle, rules, now);
        let from = self.current();
        if from == to {
            return to;
        }
        match to {
            TemplateStatus::Paused => {
                lifecycle.pauses = lifecycle.pauses.saturating_add(1);
                lifecycle.paused_until = rules
                    .pause_secs
                    .get(usize::from(lifecycle.pauses) - 1)
                    .map_or(0, |secs| now.saturating_add(*secs));
            }
            TemplateStatus::Flagged => lifecycle.flagged_since = now,
            _ => {}
        }
        self.set(&mut lifecycle, to, now);
        self.apply_deadlines(&mut lifecycle, rules, now);
        self.current()
    }

    /// Pauses once more: the ladder's next length, or disabled when it runs out.
    fn next_pause(
        &self,
        lifecycle: &mut Lifecycle,
        rules: &TemplateRules,
        now: Secs,
    ) -> TemplateStatus {
        lifecycle.pauses = lifecycle.pauses.saturating_add(1);
        match rules.pause_secs.get(usize::from(lifecycle.pauses) - 1) {
            Some(secs) => {
                lifecycle.paused_until = now.saturating_add(*secs);
                TemplateStatus::Paused
            }
            None => TemplateStatus::Disabled,
        }
    }

    /// Meta reported a new quality score; low quality flags or pauses per the profile, and a
    /// recovery in time returns a flagged template to approved.
    pub fn quality_changed(
        &self,
        rules: &TemplateRules,
        quality: Quality,
        now: Secs,
    ) -> TemplateStatus {
        let mut lifecycle = self.lock();
        self.apply_deadlines(&mut lifecycle, rules, now);
        let quality_moved = lifecycle.quality != quality as u8;
        lifecycle.quality = quality as u8;
        let current = self.current();
        let next = match (quality, current, rules.on_red_quality) {
            (Quality::Red, TemplateStatus::Approved, RedQualityAction::Flag) => {
                lifecycle.flagged_since = now;
                TemplateStatus::Flagged
            }
            (Quality::Red, TemplateStatus::Approved, RedQualityAction::Pause) => {
                self.next_pause(&mut lifecycle, rules, now)
            }
            (Quality::Green | Quality::Yellow, TemplateStatus::Flagged, _) => {
                TemplateStatus::Approved
            }
            _ => current,
        };
        if next != current || quality_moved {
            self.set(&mut lifecycle, next, now);
            self.apply_deadlines(&mut lifecycle, rules, now);
        }
        self.current()
    }

    /// Checks a send against the template: status, then parameters, header and buttons.
    pub fn check_send(
        &self,
        rules: &TemplateRules,
        send: &TemplateSend,
        now: Secs,
    ) -> Result<(), Refusal> {
        match self.status(rules, now) {
            status if status.is_sendable() => {}
            TemplateStatus::Paused => return Err(Refusal::TemplatePaused),
            TemplateStatus::Disabled => return Err(Refusal::TemplateDisabled),
            status => return Err(Refusal::TemplateNotApproved(status)),
        }
        self.check_body(send)?;
        self.check_header(send)?;
        self.check_buttons(send)
    }

    fn check_body(&self, send: &TemplateSend) -> Result<(), Refusal> {
        if send.body.len() != self.body_parameters.len() {
            return Err(Refusal::ParameterCount {
                part: "body",
                expected: self.body_parameters.len(),
                got: send.body.len(),
            });
        }
        match self.definition.parameter_format {
            ParameterFormat::Positional => {
                if let Some(named) = send.body.iter().find_map(|p| p.name.as_ref()) {
                    return Err(Refusal::ParameterFormat(format!(
                        "the template is positional but a parameter is named '{named}'"
                    )));
                }
            }
            ParameterFormat::Named => {
                for parameter in &send.body {
                    match &parameter.name {
                        Some(name) if self.body_parameters.contains(name) => {}
                        Some(name) => {
                            return Err(Refusal::ParameterFormat(format!(
                                "the template has no parameter named '{name}'"
                            )))
                        }
                        None => {
                            return Err(Refusal::ParameterFormat(
                                "the template uses named parameters; parameter_name is missing"
                                    .into(),
                            ))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn check_header(&self, send: &TemplateSend) -> Result<(), Refusal> {
        let expected = self.definition.headers.first();
        match (expected, &send.header) {
            (Some(HeaderSpec::Text(_)), Some(HeaderParam::Text(_)))
                if self.header_parameters == 1 =>
            {
                Ok(())
            }
            (Some(HeaderSpec::Text(_)), None) if self.header_parameters == 1 => {
                Err(Refusal::ParameterCount {
                    part: "header",
                    expected: 1,
                    got: 0,
                })
            }
            (Some(HeaderSpec::Text(_)) | None, None) => Ok(()),
            (Some(HeaderSpec::Text(_)) | None, Some(_)) => Err(Refusal::ParameterCount {
                part: "header",
                expected: self.header_parameters,
                got: 1,
            }),
            (Some(HeaderSpec::Media(kind)), Some(HeaderParam::Media { kind: given, link })) => {
                if kind != given {
                    return Err(Refusal::ParameterFormat(format!(
                        "the header takes {} media, not {}",
                        kind.name(),
                        given.name()
                    )));
                }
                if let Some(link) = link {
                    let path = link.split(['?', '#']).next().unwrap_or(link);
                    let ending = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
                    let allowed = kind.allowed_extensions();
                    if !ending.is_some_and(|e| allowed.contains(&e.as_str())) {
                        return Err(Refusal::MediaType(format!(
                            "{} header media must be one of {}",
                            kind.name(),
                            allowed.join(", ")
                        )));
                    }
                }
                Ok(())
            }
            (Some(HeaderSpec::Media(kind)), _) => Err(Refusal::ParameterFormat(format!(
                "the header needs {} media",
                kind.name()
            ))),
            (Some(HeaderSpec::Location), Some(HeaderParam::Location)) => Ok(()),
            (Some(HeaderSpec::Location), _) => Err(Refusal::ParameterFormat(
                "the header needs a location".into(),
            )),
        }
    }

    fn check_buttons(&self, send: &TemplateSend) -> Result<(), Refusal> {
        let buttons = &self.definition.buttons;
        let mut covered = vec![false; buttons.len()];
        for parameter in &send.buttons {
            let Some(button) = buttons.get(parameter.index) else {
                return Err(Refusal::ButtonParameter(format!(
                    "the template has no button {}",
                    parameter.index
                )));
            };
            if std::mem::replace(&mut covered[parameter.index], true) {
                return Err(Refusal::ButtonParameter(format!(
                    "button {} has more than one parameter",
                    parameter.index
                )));
            }
            let fits = match (button, &parameter.value) {
                (ButtonSpec::QuickReply { .. }, ButtonParamValue::Payload(_)) => true,
                (ButtonSpec::Url { url, .. }, ButtonParamValue::UrlSuffix(_)) => url.contains("{{"),
                (ButtonSpec::CopyCode { .. }, ButtonParamValue::CouponCode(_)) => true,
                _ => false,
            };
            if !fits {
                return Err(Refusal::ButtonParameter(format!(
                    "button {} is a {} button and takes no such parameter",
                    parameter.index,
                    button.kind_name()
                )));
            }
        }
        for (index, button) in buttons.iter().enumerate() {
            let needs = match button {
                ButtonSpec::Url { url, .. } => url.contains("{{"),
                ButtonSpec::CopyCode { .. } => true,
                _ => false,
            };
            if needs && !covered[index] {
                return Err(Refusal::ParameterCount {
                    part: "button",
                    expected: 1,
                    got: 0,
                });
            }
        }
        Ok(())
    }
}
