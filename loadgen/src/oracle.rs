//! The compliance oracle: Meta's rules applied to what reaches the Cloud API stand-in, written
//! from Meta's documentation and not from wagate's code, so that a load run can count every
//! violation and every duplicate wagate let through.
//!
//! Rules (docs/rules.md and the platform notes): 80 messages per second per number (130429);
//! per (number, person) one message per 6 s with a burst of 45 (131056); free-form only inside
//! the 24 h window the person's last message opened (131047); templates must exist and be
//! approved (132001, 132015 paused, 132016 disabled); business-initiated sends to at most the
//! tier's number of unique people in any rolling 24 h (counted as a violation with code 0, as
//! Meta reports it by restricting the number). A duplicate is the same content to the same
//! person from the same number twice.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use serde::Deserialize;

const SECOND_US: u64 = 1_000_000;
const DAY_US: u64 = 86_400 * SECOND_US;

#[derive(Debug, Clone)]
pub struct OracleConfig {
    pub messages_per_second: u32,
    /// Pair rate: one message per `pair_interval_us`, with `pair_burst` allowed at once.
    pub pair_interval_us: u64,
    pub pair_burst: u32,
    /// Unique people per rolling 24 h for business-initiated sends, per number.
    pub tier_limit: u32,
    /// Numbers whose throughput or tier differ from the defaults above (upgraded numbers), by
    /// phone number id.
    pub numbers: HashMap<String, NumberLimits>,
    /// Meta raising a number's tier from its use (none: tiers never move).
    pub upgrade: Option<UpgradeRule>,
}

/// Meta raising a number's tier from its use (mock-meta never lowers the quality, so the
/// quality condition always holds). Before October 2025: unique recipients of
/// business-initiated messages over the last 7 days reaching twice the limit move the number
/// to the next tier 24 hours later. Since: half the limit, 6 hours later, from 2K up; the step
/// from 250 to 2K comes from 2,000 unique people delivered to in 30 days and Meta's review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRule {
    /// The tiers' limits, lowest first.
    pub ladder: Vec<u32>,
    /// The unique recipients needed: the current limit times `numerator / denominator`.
    pub numerator: u32,
    pub denominator: u32,
    pub window_us: u64,
    pub delay_us: u64,
    /// The lowest limit from which usage lifts the tier.
    pub usage_from: u32,
    pub delivery_path: Option<DeliveryPath>,
    /// The webhook Meta tells a new tier by.
    pub announce: Announce,
}

/// The way up from the lowest tiers without usage: `unique` people delivered to within
/// `window_us`, then Meta's review (`review_us`) grants the limit `grants`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPath {
    pub unique: u32,
    pub window_us: u64,
    pub review_us: u64,
    pub grants: u32,
}

/// How Meta tells of a new tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// `phone_number_quality_update` with `event: UPGRADE`, naming the number.
    NumberQualityUpdate,
    /// `business_capability_update`, naming the number's business account.
    BusinessCapabilityUpdate,
}

impl UpgradeRule {
    /// The 2021 rule over Meta's tiers of then (1K, 10K, 100K, unlimited).
    pub fn whatsapp_2021() -> UpgradeRule {
        UpgradeRule {
            ladder: vec![250, 1_000, 10_000, 100_000, u32::MAX],
            numerator: 2,
            denominator: 1,
            window_us: 7 * DAY_US,
            delay_us: DAY_US,
            usage_from: 0,
            delivery_path: None,
            announce: Announce::NumberQualityUpdate,
        }
    }

    /// The rule since October 2025, with Meta's review taking `review_us` (it publishes no
    /// figure).
    pub fn whatsapp_2025(review_us: u64) -> UpgradeRule {
        UpgradeRule {
            ladder: vec![250, 2_000, 10_000, 100_000, u32::MAX],
            numerator: 1,
            denominator: 2,
            window_us: 7 * DAY_US,
            delay_us: 6 * 3_600 * SECOND_US,
            usage_from: 2_000,
            delivery_path: Some(DeliveryPath {
                unique: 2_000,
                window_us: 30 * DAY_US,
                review_us,
                grants: 2_000,
            }),
            announce: Announce::BusinessCapabilityUpdate,
        }
    }

    fn next(&self, limit: u32) -> Option<u32> {
        self.ladder.iter().copied().find(|&l| l > limit)
    }

    /// The limit `track` earns by now at `limit`, and when it applies.
    fn earned(&self, track: &mut NumberTrack, limit: u32, now: u64) -> Option<(u64, u32)> {
        let week = track.week.uniques(now, self.window_us);
        let needed = u64::from(limit) * u64::from(self.numerator) / u64::from(self.denominator);
        if limit >= self.usage_from && week as u64 >= needed {
            return self.next(limit).map(|next| (now + self.delay_us, next));
        }
        let path = self.delivery_path?;
        let delivered = track.delivered.uniques(now, path.window_us);
        (limit < path.grants && delivered as u64 >= u64::from(path.unique))
            .then_some((now + path.review_us, path.grants))
    }
}

/// Meta's name of a tier by its limit (`TIER_1K`, ..., `TIER_UNLIMITED`).
pub fn tier_name(limit: u32) -> String {
    match limit {
        u32::MAX => "TIER_UNLIMITED".into(),
        l if l >= 1_000 && l % 1_000 == 0 => format!("TIER_{}K", l / 1_000),
        l => format!("TIER_{l}"),
    }
}

/// One number's own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberLimits {
    pub messages_per_second: u32,
    pub tier_limit: u32,
}

impl OracleConfig {
    fn limits(&self, number: &str) -> NumberLimits {
        self.numbers.get(number).copied().unwrap_or(NumberLimits {
            messages_per_second: self.messages_per_second,
            tier_limit: self.tier_limit,
        })
    }
}

impl Default for OracleConfig {
    fn default() -> Self {
        OracleConfig {
            messages_per_second: 80,
            pair_interval_us: 6 * SECOND_US,
            pair_burst: 45,
            tier_limit: 1_000,
            numbers: HashMap::new(),
            upgrade: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateState {
    Approved,
    Paused,
    Disabled,
}

impl TemplateState {
    /// Meta's word for it (`APPROVED`, `PAUSED`, `DISABLED`).
    pub fn name(self) -> &'static str {
        match self {
            TemplateState::Approved => "APPROVED",
            TemplateState::Paused => "PAUSED",
            TemplateState::Disabled => "DISABLED",
        }
    }

    pub fn parse(text: &str) -> Option<TemplateState> {
        [
            TemplateState::Approved,
            TemplateState::Paused,
            TemplateState::Disabled,
        ]
        .into_iter()
        .find(|state| state.name().eq_ignore_ascii_case(text))
    }
}

/// Meta's answer to one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Meta's error code (0: a rule Meta enforces by restricting rather than answering).
    Violation(u32),
}

/// What a run reached Meta with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub sends: u64,
    pub accepted: u64,
    /// Violations by Meta's code.
    pub violations: BTreeMap<u32, u64>,
    pub duplicates: u64,
    /// Sends accepted in each second (Unix seconds).
    pub accepted_by_second: BTreeMap<u64, u64>,
}

impl Report {
    /// Sends accepted per second, from the first second with one to the last; empty past a
    /// day of them (a run on a test's clock over days: the series would be mostly zeros).
    pub fn accepted_per_second(&self) -> Vec<u64> {
        let (Some((&first, _)), Some((&last, _))) = (
            self.accepted_by_second.first_key_value(),
            self.accepted_by_second.last_key_value(),
        ) else {
            return Vec::new();
        };
        if last - first > 86_400 {
            return Vec::new();
        }
        (first..=last)
            .map(|s| self.accepted_by_second.get(&s).copied().unwrap_or(0))
            .collect()
    }

    pub fn violation_count(&self) -> u64 {
        self.violations.values().sum()
    }
}

/// Unique people over a rolling window: (time, person) oldest first, the latest per person
/// counting.
#[derive(Default)]
struct RollingUniques {
    seen: VecDeque<(u64, Id)>,
    latest: HashMap<Id, u64>,
}

impl RollingUniques {
    /// Unique people in the `window_us` before `now`.
    fn uniques(&mut self, now: u64, window_us: u64) -> usize {
        while let Some((at, person)) = self.seen.front() {
            if at + window_us > now {
                break;
            }
            if self.latest.get(person) == Some(at) {
                self.latest.remove(person);
            }
            self.seen.pop_front();
        }
        self.latest.len()
    }

    fn contains(&self, person: Id) -> bool {
        self.latest.contains_key(&person)
    }

    fn add(&mut self, now: u64, person: Id) {
        self.seen.push_back((now, person));
        self.latest.insert(person, now);
    }
}

#[derive(Default)]
struct NumberTrack {
    second: u64,
    in_second: u32,
    /// Business-initiated sends over 24 h (the tier's limit).
    recipients: RollingUniques,
    /// The same over the upgrade rule's window and its delivery path's (only with a rule:
    /// mock-meta delivers whatever it accepts).
    week: RollingUniques,
    delivered: RollingUniques,
    /// When the next tier comes, and its limit.
    upgrade_at: Option<(u64, u32)>,
}

/// A phone number or number id as a number (digits only), so tracking a send allocates nothing.
type Id = u128;

#[derive(Default)]
pub struct Oracle {
    config: OracleConfig,
    numbers: HashMap<Id, NumberTrack>,
    /// GCRA theoretical arrival time per (number, person).
    pairs: HashMap<(Id, Id), u64>,
    /// Window end per (number, person).
    windows: HashMap<(Id, Id), u64>,
    templates: Vec<(String, String, TemplateState)>,
    /// A 128-bit hash of (number, person, request body) per send taken.
    seen: HashSet<u128>,
    report: Report,
}

/// What the oracle reads of a send request; the rest is not its business.
#[derive(Deserialize)]
struct SendBody<'a> {
    #[serde(borrow, default)]
    to: Cow<'a, str>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    template: Option<TemplateRef<'a>>,
}

#[derive(Deserialize)]
struct TemplateRef<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    language: Option<Language<'a>>,
}

#[derive(Deserialize)]
struct Language<'a> {
    #[serde(borrow, default)]
    code: Cow<'a, str>,
}

impl Oracle {
    pub fn new(config: OracleConfig) -> Oracle {
        Oracle {
            config,
            ..Oracle::default()
        }
    }

    /// The templates Meta has, with their states.
    pub fn templates(&self) -> &[(String, String, TemplateState)] {
        &self.templates
    }

    pub fn set_template(&mut self, name: &str, language: &str, state: TemplateState) {
        self.templates
            .retain(|(n, l, _)| (n.as_str(), l.as_str()) != (name, language));
        self.templates
            .push((name.to_string(), language.to_string(), state));
    }

    /// The person wrote: the window is open for 24 h from `at_us`.
    pub fn inbound(&mut self, number: &str, person: &str, at_us: u64) {
        self.windows
            .insert((id(number), id(person)), at_us + DAY_US);
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    pub fn upgrade_rule(&self) -> Option<&UpgradeRule> {
        self.config.upgrade.as_ref()
    }

    /// The upgrades due by `now_us`, applied in order: (number, its new limit), for Meta's
    /// webhook. Meta judges a new tier at once, so one upgrade may bring the next one due.
    pub fn due_upgrades(&mut self, now_us: u64) -> Vec<(String, u32)> {
        let mut due = Vec::new();
        let Some(rule) = self.config.upgrade.clone() else {
            return due;
        };
        for (number, track) in &mut self.numbers {
            while let Some((at, limit)) = track.upgrade_at.filter(|&(at, _)| at <= now_us) {
                due.push((number.to_string(), limit));
                track.upgrade_at = rule.earned(track, limit, at);
            }
        }
        for (number, limit) in &due {
            let mut limits = self.config.limits(number);
            limits.tier_limit = *limit;
            self.config.numbers.insert(number.clone(), limits);
        }
        due
    }

    /// Counts a send judged elsewhere (a group's) at `at_us`: taken, or refused with `refused`.
    pub fn count_send(&mut self, at_us: u64, refused: Option<u32>) {
        self.report.sends += 1;
        match refused {
            None => {
                self.report.accepted += 1;
                *self
                    .report
                    .accepted_by_second
                    .entry(at_us / SECOND_US)
                    .or_default() += 1;
            }
            Some(code) => *self.report.violations.entry(code).or_default() += 1,
        }
    }

    /// Judges one send request (Meta's JSON, as received) from `number` at `at_us`.
    pub fn send(&mut self, number: &str, body: &[u8], at_us: u64) -> Verdict {
        let verdict = self.judge(number, body, at_us);
        let refused = match verdict {
            Verdict::Accepted => None,
            Verdict::Violation(code) => Some(code),
        };
        self.count_send(at_us, refused);
        verdict
    }

    fn judge(&mut self, number: &str, raw: &[u8], at_us: u64) -> Verdict {
        let Ok(body) = serde_json::from_slice::<SendBody>(raw) else {
            return Verdict::Violation(100);
        };
        let person = id(&body.to);
        let limits = self.config.limits(number);
        let pair = (id(number), person);
        let track = self.numbers.entry(pair.0).or_default();
        let second = at_us / SECOND_US;
        if track.second != second {
            track.second = second;
            track.in_second = 0;
        }
        track.in_second += 1;
        if track.in_second > limits.messages_per_second {
            return Verdict::Violation(130_429);
        }
        let interval = self.config.pair_interval_us;
        let tolerance = interval * u64::from(self.config.pair_burst.saturating_sub(1));
        let tat = self.pairs.get(&pair).copied().unwrap_or(0).max(at_us);
        if tat > at_us + tolerance {
            return Verdict::Violation(131_056);
        }
        self.pairs.insert(pair, tat + interval);
        let in_window = self.windows.get(&pair).is_some_and(|&until| at_us < until);
        if body.kind.as_deref() == Some("template") {
            let template = body.template.as_ref();
            let name = template.map_or("", |t| &t.name);
            let language = template
                .and_then(|t| t.language.as_ref())
                .map_or("", |l| &l.code);
            let state = self
                .templates
                .iter()
                .find(|(n, l, _)| n == name && l == language)
                .map(|(_, _, state)| *state);
            match state {
                None => return Verdict::Violation(132_001),
                Some(TemplateState::Paused) => return Verdict::Violation(132_015),
                Some(TemplateState::Disabled) => return Verdict::Violation(132_016),
                Some(TemplateState::Approved) => {}
            }
            if !in_window {
                let track = self.numbers.get_mut(&pair.0).expect("tracked above");
                let used = track.recipients.uniques(at_us, DAY_US);
                if !track.recipients.contains(person) && used >= limits.tier_limit as usize {
                    return Verdict::Violation(0);
                }
                track.recipients.add(at_us, person);
                if let Some(rule) = &self.config.upgrade {
                    track.week.add(at_us, person);
                    track.delivered.add(at_us, person);
                    if track.upgrade_at.is_none() {
                        track.upgrade_at = rule.earned(track, limits.tier_limit, at_us);
                    }
                }
            }
        } else if !in_window {
            return Verdict::Violation(131_047);
        }
        if !self.seen.insert(content_hash(number, person, raw)) {
            self.report.duplicates += 1;
        }
        Verdict::Accepted
    }
}

/// The digits of a phone number or id as a number (ids longer than 38 digits are hashed).
fn id(text: &str) -> Id {
    let mut value: Id = 0;
    for digit in text.bytes().filter(u8::is_ascii_digit) {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(Id::from(digit - b'0')))
        {
            Some(next) => value = next,
            None => return Id::from(salted_hash(0, &[text.as_bytes()])),
        }
    }
    value
}

fn salted_hash(salt: u64, parts: &[&[u8]]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    salt.hash(&mut hasher);
    for part in parts {
        part.hash(&mut hasher);
    }
    hasher.finish()
}

/// Two independent 64-bit hashes: a collision among billions of sends is out of reach.
fn content_hash(number: &str, person: Id, body: &[u8]) -> u128 {
    let person = person.to_be_bytes();
    let parts: [&[u8]; 3] = [number.as_bytes(), &person, body];
    u128::from(salted_hash(1, &parts)) << 64 | u128::from(salted_hash(2, &parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(to: &str, name: &str) -> Vec<u8> {
        json!({ "messaging_product": "whatsapp", "to": to, "type": "template",
                "template": { "name": name, "language": { "code": "en_US" } } })
        .to_string()
        .into_bytes()
    }

    fn text(to: &str, body: &str) -> Vec<u8> {
        json!({ "messaging_product": "whatsapp", "to": to, "type": "text", "text": { "body": body } })
            .to_string()
            .into_bytes()
    }

    fn oracle(config: OracleConfig) -> Oracle {
        let mut oracle = Oracle::new(config);
        oracle.set_template("hello", "en_US", TemplateState::Approved);
        oracle.set_template("paused", "en_US", TemplateState::Paused);
        oracle
    }

    #[test]
    fn twice_the_limit_in_seven_days_earns_the_next_tier_a_day_later() {
        let mut o = oracle(OracleConfig {
            tier_limit: 10,
            messages_per_second: 1_000,
            upgrade: Some(UpgradeRule {
                ladder: vec![10, 100],
                ..UpgradeRule::whatsapp_2021()
            }),
            ..OracleConfig::default()
        });
        let send = |o: &mut Oracle, i: u64, at: u64| {
            o.send("1", &template(&format!("+1650555{i:04}"), "hello"), at)
        };
        for i in 0..10 {
            assert_eq!(send(&mut o, i, 0), Verdict::Accepted);
        }
        assert_eq!(
            send(&mut o, 10, 1),
            Verdict::Violation(0),
            "the limit holds"
        );
        for i in 11..21 {
            assert_eq!(send(&mut o, i, DAY_US), Verdict::Accepted);
        }
        assert!(
            o.due_upgrades(2 * DAY_US - 1).is_empty(),
            "not before a day passed"
        );
        assert_eq!(o.due_upgrades(2 * DAY_US), [("1".to_string(), 100)]);
        assert!(o.due_upgrades(3 * DAY_US).is_empty(), "once");
        for i in 30..60 {
            assert_eq!(
                send(&mut o, i, 2 * DAY_US),
                Verdict::Accepted,
                "the new limit"
            );
        }
        assert_eq!(tier_name(1_000), "TIER_1K");
        assert_eq!(tier_name(250), "TIER_250");
        assert_eq!(tier_name(u32::MAX), "TIER_UNLIMITED");
    }

    #[test]
    fn under_2025_deliveries_earn_2k_after_the_review_then_half_the_limit_lifts_it() {
        let mut o = oracle(OracleConfig {
            tier_limit: 250,
            messages_per_second: 1_000_000,
            upgrade: Some(UpgradeRule::whatsapp_2025(DAY_US)),
            ..OracleConfig::default()
        });
        let mut next = 0;
        let mut day = |o: &mut Oracle, n: u64, at: u64| {
            for _ in 0..n {
                let to = format!("+1650{next:07}");
                next += 1;
                assert_eq!(o.send("1", &template(&to, "hello"), at), Verdict::Accepted);
            }
        };
        // 250 a day: usage never lifts 250 (only the deliveries do), 2,000 people by day 7.
        for d in 0..8 {
            day(&mut o, 250, d * DAY_US);
            assert!(
                o.due_upgrades(d * DAY_US + DAY_US - 1).is_empty(),
                "day {d}"
            );
        }
        assert_eq!(o.due_upgrades(8 * DAY_US), [("1".to_string(), 2_000)]);
        // Judged at once on 2K: the week's 1,500 people (half is 1,000) lift it 6 hours on.
        let six_hours = 6 * 3_600 * SECOND_US;
        assert!(o.due_upgrades(8 * DAY_US + six_hours - 1).is_empty());
        assert_eq!(
            o.due_upgrades(8 * DAY_US + six_hours),
            [("1".to_string(), 10_000)]
        );
        // On 10K, 5,000 people within the week (days 3 to 7 hold 1,250): 3,750 more.
        day(&mut o, 3_749, 9 * DAY_US);
        let later = 9 * DAY_US + six_hours;
        assert!(o.due_upgrades(later).is_empty());
        day(&mut o, 1, later);
        assert!(o.due_upgrades(later + six_hours - 1).is_empty());
        assert_eq!(
            o.due_upgrades(later + six_hours),
            [("1".to_string(), 100_000)]
        );
    }

    #[test]
    fn throughput_counts_per_number_and_second() {
        let mut o = oracle(OracleConfig {
            messages_per_second: 3,
            ..OracleConfig::default()
        });
        for i in 0..3 {
            assert_eq!(
                o.send("1", &template(&format!("+1650555000{i}"), "hello"), 10),
                Verdict::Accepted
            );
        }
        assert_eq!(
            o.send("1", &template("+16505550009", "hello"), 20),
            Verdict::Violation(130_429)
        );
        assert_eq!(
            o.send("2", &template("+16505550009", "hello"), 30),
            Verdict::Accepted
        );
        assert_eq!(
            o.send("1", &template("+16505550008", "hello"), SECOND_US),
            Verdict::Accepted
        );
        assert_eq!(o.report().accepted_per_second(), vec![4, 1]);
    }

    #[test]
    fn an_upgraded_number_has_its_own_throughput_and_tier() {
        let mut config = OracleConfig {
            messages_per_second: 1,
            tier_limit: 1,
            ..OracleConfig::default()
        };
        config.numbers.insert(
            "7".into(),
            NumberLimits {
                messages_per_second: 2,
                tier_limit: 2,
            },
        );
        let mut o = oracle(config);
        for (number, person, verdict) in [
            ("7", "+16505550001", Verdict::Accepted),
            ("7", "+16505550002", Verdict::Accepted),
            ("7", "+16505550003", Verdict::Violation(130_429)),
            ("1", "+16505550001", Verdict::Accepted),
            ("1", "+16505550002", Verdict::Violation(130_429)),
        ] {
            assert_eq!(o.send(number, &template(person, "hello"), 10), verdict);
        }
        // A new second: number 7 is at its tier of two people, number 1 at its one.
        assert_eq!(
            o.send("7", &template("+16505550003", "hello"), SECOND_US),
            Verdict::Violation(0)
        );
        assert_eq!(
            o.send("1", &template("+16505550002", "hello"), SECOND_US),
            Verdict::Violation(0)
        );
    }

    #[test]
    fn the_pair_rate_allows_a_burst_then_one_per_interval() {
        let mut o = oracle(OracleConfig {
            pair_burst: 2,
            ..OracleConfig::default()
        });
        let to = "+16505550001";
        o.inbound("1", to, 0);
        assert_eq!(o.send("1", &text(to, "a"), 0), Verdict::Accepted);
        assert_eq!(o.send("1", &text(to, "b"), 1), Verdict::Accepted);
        assert_eq!(o.send("1", &text(to, "c"), 2), Verdict::Violation(131_056));
        assert_eq!(
            o.send("1", &text(to, "d"), 6 * SECOND_US),
            Verdict::Accepted
        );
    }

    #[test]
    fn free_form_needs_the_window_and_templates_must_be_approved() {
        let mut o = oracle(OracleConfig::default());
        let to = "+16505550001";
        assert_eq!(o.send("1", &text(to, "hi"), 0), Verdict::Violation(131_047));
        o.inbound("1", to, 10 * SECOND_US);
        assert_eq!(
            o.send("1", &text(to, "hi"), 20 * SECOND_US),
            Verdict::Accepted
        );
        assert_eq!(
            o.send("1", &text(to, "late"), 10 * SECOND_US + DAY_US),
            Verdict::Violation(131_047)
        );
        assert_eq!(
            o.send("1", &template(to, "nope"), 2 * DAY_US),
            Verdict::Violation(132_001)
        );
        assert_eq!(
            o.send("1", &template(to, "paused"), 3 * DAY_US),
            Verdict::Violation(132_015)
        );
        assert_eq!(o.report().violation_count(), 4);
    }

    #[test]
    fn the_tier_limit_counts_unique_people_in_a_rolling_day() {
        let mut o = oracle(OracleConfig {
            tier_limit: 2,
            ..OracleConfig::default()
        });
        let at = |s: u64| s * SECOND_US;
        assert_eq!(
            o.send("1", &template("+16505550001", "hello"), at(0)),
            Verdict::Accepted
        );
        assert_eq!(
            o.send("1", &template("+16505550002", "hello"), at(10)),
            Verdict::Accepted
        );
        // A person already counted costs nothing more; a third person is over the limit.
        assert_eq!(
            o.send(
                "1",
                json!({ "to": "+16505550001", "type": "template",
            "template": { "name": "hello", "language": { "code": "en_US" } }, "x": 1 })
                .to_string()
                .as_bytes(),
                at(20)
            ),
            Verdict::Accepted
        );
        assert_eq!(
            o.send("1", &template("+16505550003", "hello"), at(30)),
            Verdict::Violation(0)
        );
        // The first person's sends age out after 24 h: room for one more.
        assert_eq!(
            o.send("1", &template("+16505550003", "hello"), at(86_421)),
            Verdict::Accepted
        );
    }

    #[test]
    fn the_same_content_to_the_same_person_twice_is_a_duplicate() {
        let mut o = oracle(OracleConfig::default());
        let to = "+16505550001";
        o.send("1", &template(to, "hello"), 0);
        o.send("1", &template(to, "hello"), 7 * SECOND_US);
        o.send("2", &template(to, "hello"), 14 * SECOND_US);
        assert_eq!(o.report().duplicates, 1);
        // Not JSON at all: Meta's invalid parameter, and not taken.
        assert_eq!(o.send("1", b"{", 21 * SECOND_US), Verdict::Violation(100));
        assert_eq!(o.report().accepted, 3);
    }
}
