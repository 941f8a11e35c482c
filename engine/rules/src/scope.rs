//! A limit scope: the entity that owns a messaging limit (a number under `whatsapp-2021`, a
//! portfolio under `whatsapp-2025`), shared by all shards without locks.
//!
//! `used` is exact: persons with a counted send in the last 24 h, maintained by the shards'
//! expiry queues. Admission increments it with a compare-and-swap that never passes the limit,
//! so overshoot is zero however many shards admit at once. Tier, quality, flag and projected
//! upgrade are atomics; time-driven changes (a flag expiring into a downgrade) are applied by
//! whoever looks first after their time.
//!
//! The tier that admits is the one Meta confirmed (its webhooks, an operator's word). wagate's
//! own upgrade calculation, from the 7-day sketch, is a projection: shown with the time Meta is
//! expected to apply it (the profile's delay after the criteria are met), and applied by
//! wagate itself only where the operator enabled that, after the delay, on the exact count
//! ([`LimitScope::confirm_projection`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Secs;
use crate::profile::Profile;
use crate::quality::Quality;
use crate::sketch::windowed::WindowSketches;

/// Scope keys of portfolios carry this bit, so they never collide with number indices.
pub const PORTFOLIO_SCOPE_BIT: u32 = 1 << 31;

/// A shard's published next expiry: `(second << 32) | recipients leaving in that second not
/// yet lent` (see [`LimitScope::try_borrow_due`]); this when it has none.
const NO_EXPIRY: u64 = u64::MAX;

#[derive(Debug)]
pub struct LimitScope {
    /// The contact-table scope under which each person's last counted send is kept.
    pub key: u32,
    tier: AtomicU8,
    used: AtomicU32,
    quality: AtomicU8,
    flagged_since: AtomicU32,
    /// When Meta is expected to apply the projected upgrade (0: none projected).
    upgrade_at: AtomicU32,
    /// When the tier last went up (0: never since registration).
    upgraded_at: AtomicU32,
    /// New unique recipients to admit before the (costlier) upgrade estimate is read again.
    upgrade_check_in: AtomicU32,
    /// Per shard: when its oldest counted recipient leaves the 24 h window, and how many of its
    /// recipients leave in that second and are not lent yet (packed, see `NO_EXPIRY`).
    next_expiry: Box<[AtomicU64]>,
    pub sketches: WindowSketches,
    /// Set by every change that must reach the disk (tier, quality, flag, pending upgrade).
    dirty: AtomicBool,
    /// Raised with `dirty`, shared by all scopes of a registry, so that a commit looks for
    /// changed scopes only when there is one.
    any_dirty: Arc<AtomicBool>,
}
/// What of a scope is persisted; the count, the expiry marks and the sketches are rebuilt from
/// the contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSnapshot {
    pub tier: usize,
    pub quality: Quality,
    pub flagged_since: Secs,
    /// The projected upgrade's expected time (see the module's note).
    pub upgrade_at: Secs,
    #[serde(default)]
    pub upgraded_at: Secs,
}

impl LimitScope {
    pub fn new(key: u32, tier: usize, shards: usize) -> LimitScope {
        Self::watched(key, tier, shards, Arc::new(AtomicBool::new(false)))
    }

    /// A scope that also raises `any_dirty` whenever it changes.
    pub fn watched(key: u32, tier: usize, shards: usize, any_dirty: Arc<AtomicBool>) -> LimitScope {
        LimitScope {
            key,
            tier: AtomicU8::new(tier as u8),
            used: AtomicU32::new(0),
            quality: AtomicU8::new(Quality::Unknown as u8),
            flagged_since: AtomicU32::new(0),
            upgrade_at: AtomicU32::new(0),
            upgraded_at: AtomicU32::new(0),
            upgrade_check_in: AtomicU32::new(0),
            next_expiry: (0..shards).map(|_| AtomicU64::new(NO_EXPIRY)).collect(),
            sketches: WindowSketches::default(),
            dirty: AtomicBool::new(false),
            any_dirty,
        }
    }

    pub fn snapshot(&self) -> ScopeSnapshot {
        ScopeSnapshot {
            tier: self.tier(),
            quality: self.quality(),
            flagged_since: self.flagged_since.load(Ordering::Acquire),
            upgrade_at: self.upgrade_at.load(Ordering::Acquire),
            upgraded_at: self.upgraded_at.load(Ordering::Acquire),
        }
    }

    pub fn restore(&self, snapshot: &ScopeSnapshot) {
        self.tier.store(snapshot.tier as u8, Ordering::Release);
        self.quality
            .store(snapshot.quality as u8, Ordering::Release);
        self.flagged_since
            .store(snapshot.flagged_since, Ordering::Release);
        self.upgrade_at
            .store(snapshot.upgrade_at, Ordering::Release);
        self.upgraded_at
            .store(snapshot.upgraded_at, Ordering::Release);
    }

    /// Whether anything persisted changed since the last call.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    fn touch(&self) {
        self.dirty.store(true, Ordering::Release);
        self.any_dirty.store(true, Ordering::Release);
    }

    pub fn tier(&self) -> usize {
        usize::from(self.tier.load(Ordering::Acquire))
    }

    /// Sets the tier (Meta's word, or an operator's); `now` is when, for the record of
    /// upgrades (0 at registration).
    pub fn set_tier(&self, tier: usize, now: Secs) {
        let before = self.tier.swap(tier as u8, Ordering::AcqRel);
        if usize::from(before) < tier && now != 0 {
            self.upgraded_at.store(now, Ordering::Release);
        }
        self.upgrade_at.store(0, Ordering::Release);
        self.upgrade_check_in.store(0, Ordering::Release);
        self.touch();
    }

    /// Unique recipients of counted sends in the last 24 h (exact).
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }

    pub fn quality(&self) -> Quality {
        Quality::from_u8(self.quality.load(Ordering::Acquire))
    }

    pub fn flagged_since(&self) -> Option<Secs> {
        Some(self.flagged_since.load(Ordering::Acquire)).filter(|s| *s != 0)
    }

    /// When Meta is expected to apply the projected upgrade.
    pub fn upgrade_at(&self) -> Option<Secs> {
        Some(self.upgrade_at.load(Ordering::Acquire)).filter(|s| *s != 0)
    }

    /// When the tier last went up.
    pub fn upgraded_at(&self) -> Option<Secs> {
        Some(self.upgraded_at.load(Ordering::Acquire)).filter(|s| *s != 0)
    }

    /// Takes one unit of capacity for a new unique recipient, if the limit allows.
    #[inline]
    pub fn try_admit(&self, limit: Option<u32>) -> bool {
        let Some(limit) = limit else {
            self.used.fetch_add(1, Ordering::AcqRel);
            return true;
        };
        let mut current = self.used.load(Ordering::Acquire);
        loop {
            if current >= limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }

    /// Returns capacity: recipients that aged out, or an admission that was not completed.
    #[inline]
    pub fn release(&self, count: u32) {
        if count > 0 {
            self.used.fetch_sub(count, Ordering::AcqRel);
        }
    }

    /// Publishes when `shard`'s oldest counted recipient leaves the window and how many leave
    /// in that second (`None`: it has none).
    pub fn publish_next_expiry(&self, shard: usize, next: Option<(Secs, u32)>) {
        let packed = next.map_or(NO_EXPIRY, |(at, count)| {
            u64::from(at) << 32 | u64::from(count)
        });
        self.next_expiry[shard].store(packed, Ordering::Release);
    }

    /// The earliest moment any shard's oldest counted recipient leaves the window (one whose
    /// recipients of that second were all lent already says that second still).
    pub fn next_expiry(&self) -> Option<Secs> {
        self.next_expiry
            .iter()
            .map(|a| a.load(Ordering::Acquire))
            .filter(|packed| *packed != NO_EXPIRY)
            .map(|packed| (packed >> 32) as Secs)
            .min()
    }

    /// At the limit, admits a new recipient against one that has already left the 24 h window
    /// on another shard which has not applied that yet (shards expire their own recipients
    /// lazily: when they next work, or every 100 ms when idle). What a shard publishes are
    /// real recipients about to be released (counted only if that mark is the person's latest
    /// counted send, and only their own shard can renew them, after expiring), and each is
    /// lent once, so the true count never passes the limit; `used` is over it only until that
    /// shard releases them. False when no other shard has one due and not lent.
    pub fn try_borrow_due(&self, own_shard: usize, now: Secs) -> bool {
        for (shard, slot) in self.next_expiry.iter().enumerate() {
            if shard == own_shard {
                continue;
            }
            let mut packed = slot.load(Ordering::Acquire);
            while packed != NO_EXPIRY && (packed >> 32) as Secs <= now && packed as u32 > 0 {
                match slot.compare_exchange_weak(
                    packed,
                    packed - 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.used.fetch_add(1, Ordering::AcqRel);
                        return true;
                    }
                    Err(seen) => packed = seen,
                }
            }
        }
        false
    }

    /// Applies what time has made due: a downgrade after a long flag (`whatsapp-2021`). A
    /// projected upgrade is not applied here: only Meta's word or
    /// [`LimitScope::confirm_projection`] raises the tier.
    pub fn apply_due(&self, profile: &Profile, now: Secs) {
        if let Some(rule) = &profile.downgrade {
            let since = self.flagged_since.load(Ordering::Acquire);
            if since != 0
                && now >= since.saturating_add(rule.flagged_secs)
                && self
                    .flagged_since
                    .compare_exchange(since, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                let lower = self.tier().saturating_sub(1);
                self.tier.store(lower as u8, Ordering::Release);
                // A lower tier has a lower threshold: look again at the next new recipient.
                self.upgrade_check_in.store(0, Ordering::Release);
                self.touch();
            }
        }
    }

    /// After a new unique recipient: projects an upgrade once the 7-day estimate reaches the
    /// profile's threshold with an eligible quality and no flag.
    pub fn consider_upgrade(&self, profile: &Profile, now: Secs) {
        let tier = self.tier();
        let Some(threshold) = profile.upgrade_threshold(tier) else {
            return;
        };
        // Each new recipient adds at most one to the true 7-day count, so after an estimate
        // `gap` short of the threshold the next `gap / 2` new recipients cannot reach it. Every
        // new recipient counts down, eligible or not, or one admitted while ineligible would be
        // missed.
        let counted_down = self
            .upgrade_check_in
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| w.checked_sub(1))
            .is_ok();
        if counted_down
            || self.upgrade_at().is_some()
            || self.flagged_since().is_some()
            || !profile.upgrade.qualities.contains(&self.quality())
        {
            return;
        }
        let estimate = self.sketches.week_estimate();
        if estimate >= threshold {
            // Criteria met by the estimate: Meta is expected to raise the tier after the
            // profile's delay. A projection, shown in usage; it admits nobody.
            let delay = profile.upgrade.delay_secs;
            if self
                .upgrade_at
                .compare_exchange(
                    0,
                    now.saturating_add(delay).max(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                self.touch();
            }
        } else {
            let gap = ((threshold - estimate) / 2).min(u64::from(u32::MAX)) as u32;
            self.upgrade_check_in.store(gap, Ordering::Release);
        }
    }

    /// If a projected upgrade's expected time has come: the 7-day unique recipients that earn
    /// it.
    pub fn projection_due(&self, profile: &Profile, now: Secs) -> Option<u64> {
        let at = self.upgrade_at()?;
        if now < at {
            return None;
        }
        profile.upgrade_threshold(self.tier())
    }

    /// Where the operator lets wagate apply its own projections: the projection due now is
    /// applied if the exact count of unique recipients over the last 7 days (`exact_week`,
    /// counted from the contacts) still earns it, with quality eligible and no flag; otherwise
    /// it is dropped (the next new recipient projects again). True if the tier went up.
    pub fn confirm_projection(&self, profile: &Profile, exact_week: u64, now: Secs) -> bool {
        let Some(threshold) = self.projection_due(profile, now) else {
            return false;
        };
        let at = self.upgrade_at.load(Ordering::Acquire);
        if self
            .upgrade_at
            .compare_exchange(at, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.upgrade_check_in.store(0, Ordering::Release);
        self.touch();
        let eligible =
            self.flagged_since().is_none() && profile.upgrade.qualities.contains(&self.quality());
        if !eligible || exact_week < threshold {
            return false;
        }
        let top = profile.tiers.len() - 1;
        let next = (self.tier() + 1).min(top);
        self.set_tier(next, now);
        true
    }

    /// A new quality rating. Where the profile downgrades, low quality flags the scope (no
    /// upgrades, a tier lost after the flag period) and a recovery clears the flag.
    pub fn set_quality(&self, profile: &Profile, quality: Quality, now: Secs) {
        self.apply_due(profile, now);
        self.quality.store(quality as u8, Ordering::Release);
        self.touch();
        if profile.downgrade.is_none() {
            return;
        }
        match quality {
            Quality::Red => {
                if self
                    .flagged_since
                    .compare_exchange(0, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.upgrade_at.store(0, Ordering::Release);
                }
            }
            Quality::Green | Quality::Yellow => {
                self.flagged_since.store(0, Ordering::Release);
            }
            Quality::Unknown => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SECS_PER_DAY;

    #[test]
    fn admission_never_passes_the_limit() {
        let scope = LimitScope::new(0, 0, 1);
        assert!((0..3).all(|_| scope.try_admit(Some(3))));
        assert!(!scope.try_admit(Some(3)));
        assert_eq!(scope.used(), 3);
        scope.release(1);
        assert!(scope.try_admit(Some(3)));
        assert!(scope.try_admit(None));
        assert_eq!(scope.used(), 4);
    }

    #[test]
    fn flag_then_recovery_keeps_the_tier_and_seven_days_of_flag_cost_one() {
        let profile = Profile::whatsapp_2021();
        let scope = LimitScope::new(0, 1, 1);
        let day = 1_000 * SECS_PER_DAY;
        scope.set_quality(&profile, Quality::Red, day);
        assert_eq!(scope.flagged_since(), Some(day));
        scope.set_quality(&profile, Quality::Yellow, day + 6 * SECS_PER_DAY);
        scope.apply_due(&profile, day + 8 * SECS_PER_DAY);
        assert_eq!((scope.tier(), scope.flagged_since()), (1, None));
        scope.set_quality(&profile, Quality::Red, day + 10 * SECS_PER_DAY);
        scope.apply_due(&profile, day + 17 * SECS_PER_DAY - 1);
        assert_eq!(scope.tier(), 1);
        scope.apply_due(&profile, day + 17 * SECS_PER_DAY);
        assert_eq!((scope.tier(), scope.flagged_since()), (0, None));
    }

    #[test]
    fn quality_never_lowers_the_limit_under_2025() {
        let profile = Profile::whatsapp_2025();
        let scope = LimitScope::new(PORTFOLIO_SCOPE_BIT, 2, 1);
        scope.set_quality(&profile, Quality::Red, 100);
        scope.apply_due(&profile, 100 + 30 * SECS_PER_DAY);
        assert_eq!((scope.tier(), scope.flagged_since()), (2, None));
    }

    #[test]
    fn recipients_due_on_another_shard_are_lent_once_each() {
        let scope = LimitScope::new(0, 0, 3);
        assert!(scope.try_admit(Some(2)));
        assert!(scope.try_admit(Some(2)));
        assert!(!scope.try_admit(Some(2)));
        // Shard 1 holds two recipients leaving at 100 and has not expired them yet.
        scope.publish_next_expiry(1, Some((100, 2)));
        assert!(!scope.try_borrow_due(0, 99), "not due yet");
        assert!(!scope.try_borrow_due(1, 100), "a shard expires its own");
        assert!(scope.try_borrow_due(0, 100));
        assert!(scope.try_borrow_due(2, 100));
        assert!(!scope.try_borrow_due(0, 100), "both lent");
        assert_eq!((scope.used(), scope.next_expiry()), (4, Some(100)));
        // Shard 1 expires them and publishes its next one.
        scope.release(2);
        scope.publish_next_expiry(1, Some((500, 1)));
        assert_eq!((scope.used(), scope.next_expiry()), (2, Some(500)));
    }

    #[test]
    fn next_expiry_is_the_minimum_over_shards() {
        let scope = LimitScope::new(0, 0, 3);
        assert_eq!(scope.next_expiry(), None);
        scope.publish_next_expiry(2, Some((500, 1)));
        scope.publish_next_expiry(0, Some((700, 3)));
        assert_eq!(scope.next_expiry(), Some(500));
        scope.publish_next_expiry(2, None);
        assert_eq!(scope.next_expiry(), Some(700));
    }
}
