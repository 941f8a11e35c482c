//! Rule 4: the messaging limit. Unique recipients of business-initiated messages per rolling
//! 24 h, exact at the limit; upgrades from the 7-day count; flags, downgrades and restrictions.

use wagate_rules::registry::RegistryError;
use wagate_rules::{
    DeferReason, EngineConfig, PhoneNumberId, PortfolioId, Profile, Quality, Timestamp,
};
use wagate_test_support::*;

/// Opts in and sends one utility template to persons `from..to`, a millisecond apart.
fn campaign(f: &mut Fixture, from: u64, to: u64) -> (u64, u64) {
    let (mut accepted, mut deferred) = (0, 0);
    for i in from..to {
        f.opt_in(person(i));
        let decision = f.send_template(person(i), "order_update");
        match decision.deferral() {
            Some((_, DeferReason::TierLimit)) => deferred += 1,
            None if decision.is_accepted() => accepted += 1,
            other => panic!("unexpected {other:?} / {decision:?}"),
        }
        f.clock.advance_micros(1_000);
    }
    (accepted, deferred)
}

#[test]
fn exactly_at_the_limit_new_recipients_wait_and_repeats_still_go() {
    for profile in profiles() {
        let limit = u64::from(profile.tier_limit(profile.initial_tier).unwrap());
        let mut f = Fixture::new(profile);
        let start = f.engine.now();
        assert_eq!(
            campaign(&mut f, 0, limit),
            (limit, 0),
            "{}",
            f.profile_name()
        );
        assert_eq!(f.engine.usage(NUMBER).unwrap().used_24h as u64, limit);

        f.opt_in(person(limit));
        let (until, reason) = f
            .send_template(person(limit), "order_update")
            .deferral()
            .unwrap();
        assert_eq!(reason, DeferReason::TierLimit);
        // Capacity frees when the first recipient's send is 24 h old.
        assert_eq!(until, Timestamp::from_secs(start.secs() + DAY as u32));

        let repeat = f.send_template(person(0), "order_update");
        let repeat = repeat
            .accepted()
            .expect("a repeat recipient never costs capacity");
        assert!(repeat.business_initiated && !repeat.new_unique_recipient);
        assert_eq!(
            f.engine.usage(NUMBER).unwrap().used_24h as u64,
            limit,
            "overshoot is zero"
        );
    }
}

#[test]
fn capacity_frees_exactly_24_hours_after_the_oldest_send() {
    for profile in profiles() {
        let limit = u64::from(profile.tier_limit(profile.initial_tier).unwrap());
        let mut f = Fixture::new(profile);
        f.opt_in(person(0));
        let first = f.send_template(person(0), "order_update");
        assert!(first.accepted().unwrap().new_unique_recipient);
        f.advance(HOUR);
        campaign(&mut f, 1, limit);
        f.opt_in(person(limit));
        f.advance(DAY - HOUR - 1);
        // One second short of 24 h after the first send: still full.
        let waiting = f.send_template(person(limit), "order_update");
        assert_eq!(
            waiting.deferral().map(|d| d.1),
            Some(DeferReason::TierLimit)
        );
        f.advance(1);
        let admitted = f.send_template(person(limit), "order_update");
        assert!(
            admitted.accepted().unwrap().new_unique_recipient,
            "{}",
            f.profile_name()
        );
        assert_eq!(f.engine.usage(NUMBER).unwrap().used_24h as u64, limit);
    }
}

#[test]
fn a_repeat_inside_24_hours_counts_once_and_renews_the_recipient() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        f.opt_in(ana);
        assert!(
            f.send_template(ana, "order_update")
                .accepted()
                .unwrap()
                .new_unique_recipient
        );
        f.advance(12 * HOUR);
        assert!(
            !f.send_template(ana, "promo")
                .accepted()
                .unwrap()
                .new_unique_recipient
        );
        assert_eq!(f.engine.usage(NUMBER).unwrap().used_24h, 1);
        // 24 h after the first send Ana is still counted: the repeat renewed her.
        f.advance(12 * HOUR);
        assert_eq!(f.engine.usage(NUMBER).unwrap().used_24h, 1);
        f.advance(12 * HOUR);
        assert_eq!(f.engine.usage(NUMBER).unwrap().used_24h, 0);
        assert!(
            f.send_template(ana, "order_update")
                .accepted()
                .unwrap()
                .new_unique_recipient
        );
    }
}

#[test]
fn the_limit_is_per_number_in_2021_and_per_portfolio_in_2025() {
    for profile in profiles() {
        let shared = profile.name == "whatsapp-2025";
        let mut f = Fixture::new(profile);
        let second = PhoneNumberId(2);
        f.register(second, PortfolioId(1));
        let ana = person(1);
        f.opt_in(ana);
        f.engine
            .consent(
                second,
                ana,
                wagate_rules::ConsentChange::OptIn,
                wagate_rules::ConsentSource::Api,
            )
            .unwrap();
        assert!(
            f.send_template(ana, "order_update")
                .accepted()
                .unwrap()
                .new_unique_recipient
        );
        let from_second = f.send_template_from(second, ana, "order_update");
        // The same person from a second number of the same portfolio counts once under 2025.
        assert_eq!(
            from_second.accepted().unwrap().new_unique_recipient,
            !shared
        );
        // Under 2021 each number counts Ana once on its own; under 2025 both numbers report
        // the one portfolio count, also 1.
        assert_eq!(f.engine.usage(second).unwrap().used_24h, 1);
        assert_eq!(f.engine.usage(NUMBER).unwrap().used_24h, 1);
    }
}

#[test]
fn the_message_that_completes_the_upgrade_projects_it_and_only_meta_applies_it_under_2021() {
    let mut f = Fixture::new(Profile::whatsapp_2021());
    assert_eq!(campaign(&mut f, 0, 1_000), (1_000, 0));
    f.advance(DAY);
    let mut projected = None;
    for i in 1_000..2_100u64 {
        if i == 2_000 {
            // The day's 1,000 are used: the next people go the day after.
            assert_eq!(
                campaign(&mut f, 5_000, 5_001),
                (0, 1),
                "the limit is still Meta's 1K"
            );
            f.advance(DAY);
        }
        f.opt_in(person(i));
        let before = f.engine.usage(NUMBER).unwrap();
        assert!(f.send_template(person(i), "order_update").is_accepted());
        let after = f.engine.usage(NUMBER).unwrap();
        if after.projected_upgrade_at.is_some() {
            // The message whose 7-day count reaches 2x the limit projects the upgrade; Meta
            // applies it about a day later; nothing admits more meanwhile.
            assert!(before.unique_7d_estimate < 2_000 && after.unique_7d_estimate >= 2_000);
            assert_eq!(after.projected_tier.as_deref(), Some("TIER_10K"));
            assert_eq!(
                after.projected_upgrade_at,
                Some(Timestamp::from_secs(f.now_secs() + DAY as u32))
            );
            assert_eq!((after.tier.as_str(), after.limit), ("TIER_1K", Some(1_000)));
            projected = Some(i + 1);
            break;
        }
    }
    let uniques = projected.expect("projected within 2,100 unique recipients");
    assert!(
        (1_980..=2_020).contains(&uniques),
        "projected after {uniques} uniques (sketch error < 1 %)"
    );
    // Its time passes without Meta's word: still Meta's tier.
    f.advance(2 * DAY);
    let usage = f.engine.usage(NUMBER).unwrap();
    assert_eq!((usage.tier.as_str(), usage.upgraded_at), ("TIER_1K", None));
    assert_eq!(usage.projected_tier.as_deref(), Some("TIER_10K"));
    // Meta's word raises it, and usage says when.
    let now = f.now_secs();
    f.engine
        .registry()
        .set_tier(NUMBER, "TIER_10K", now)
        .unwrap();
    let usage = f.engine.usage(NUMBER).unwrap();
    assert_eq!(
        (usage.tier.as_str(), usage.limit, usage.upgraded_at),
        ("TIER_10K", Some(10_000), Some(Timestamp::from_secs(now)))
    );
    assert_eq!(
        (usage.projected_tier, usage.projected_upgrade_at),
        (None, None)
    );
}

#[test]
fn no_upgrade_while_flagged_and_seven_flagged_days_cost_a_tier() {
    let mut f = Fixture::new(Profile::whatsapp_2021());
    let registry = f.engine.registry();
    registry.set_tier(NUMBER, "TIER_10K", 1).unwrap();
    registry
        .set_number_quality(NUMBER, Quality::Red, f.now_secs())
        .unwrap();
    let usage = f.engine.usage(NUMBER).unwrap();
    assert!(usage.flagged_since.is_some());
    assert_eq!(
        usage.downgrade_at,
        Some(Timestamp::from_secs(f.now_secs() + 7 * DAY as u32))
    );
    f.advance(7 * DAY - 1);
    assert_eq!(f.engine.usage(NUMBER).unwrap().tier, "TIER_10K");
    f.advance(1);
    let usage = f.engine.usage(NUMBER).unwrap();
    assert_eq!(
        (usage.tier.as_str(), usage.flagged_since),
        ("TIER_1K", None)
    );

    // While flagged, even twice the limit in 7 days earns nothing.
    f.engine
        .registry()
        .set_number_quality(NUMBER, Quality::Red, f.now_secs())
        .unwrap();
    campaign(&mut f, 0, 1_000);
    f.advance(DAY);
    campaign(&mut f, 1_000, 2_100);
    assert_eq!(f.engine.usage(NUMBER).unwrap().tier, "TIER_1K");
}

#[test]
fn a_flag_recovered_within_seven_days_keeps_the_tier() {
    let mut f = Fixture::new(Profile::whatsapp_2021());
    f.engine
        .registry()
        .set_tier(NUMBER, "TIER_10K", f.now_secs())
        .unwrap();
    f.engine
        .registry()
        .set_number_quality(NUMBER, Quality::Red, f.now_secs())
        .unwrap();
    f.advance(6 * DAY);
    f.engine
        .registry()
        .set_number_quality(NUMBER, Quality::Yellow, f.now_secs())
        .unwrap();
    f.advance(2 * DAY);
    let usage = f.engine.usage(NUMBER).unwrap();
    assert_eq!(
        (usage.tier.as_str(), usage.flagged_since),
        ("TIER_10K", None)
    );
}

/// A 2025 portfolio verified to 2K with good quality, 1,101 unique recipients in: the
/// upgrade to 10K is projected from `earned`.
fn projected_under_2025(config: EngineConfig) -> (Fixture, Timestamp) {
    let mut f = Fixture::with_config(config);
    assert_eq!(
        f.engine.usage(NUMBER).unwrap().upgrade_threshold,
        None,
        "250 -> 2K is by verification"
    );
    f.engine
        .registry()
        .verify_business(PortfolioId(1), f.now_secs())
        .unwrap();
    assert_eq!(f.engine.usage(NUMBER).unwrap().tier, "TIER_2K");
    // RED does not qualify; GREEN does (as a number not rated yet would).
    f.engine
        .registry()
        .set_number_quality(NUMBER, Quality::Red, f.now_secs())
        .unwrap();
    campaign(&mut f, 0, 1_100);
    assert!(f
        .engine
        .usage(NUMBER)
        .unwrap()
        .projected_upgrade_at
        .is_none());
    f.engine
        .registry()
        .set_number_quality(NUMBER, Quality::Green, f.now_secs())
        .unwrap();
    let earned = f.engine.now();
    campaign(&mut f, 1_100, 1_101);
    (f, earned)
}

#[test]
fn under_2025_half_the_limit_with_good_quality_projects_an_upgrade_six_hours_out() {
    assert!(matches!(
        Fixture::new(Profile::whatsapp_2021())
            .engine
            .registry()
            .verify_business(PortfolioId(1), 1),
        Err(RegistryError::NoVerificationPath)
    ));
    let (mut f, earned) = projected_under_2025(EngineConfig::new(Profile::whatsapp_2025()));
    let usage = f.engine.usage(NUMBER).unwrap();
    assert_eq!(usage.upgrade_progress, Some(1.0));
    let expected = usage.projected_upgrade_at.expect("upgrade projected");
    assert_eq!(
        expected,
        Timestamp::from_secs(earned.secs() + 6 * HOUR as u32)
    );
    assert_eq!(usage.projected_tier.as_deref(), Some("TIER_10K"));
    // The expected time passes: without Meta's word the limit stays Meta's.
    f.clock.set(expected).unwrap();
    let usage = f.engine.usage(NUMBER).unwrap();
    assert_eq!((usage.tier.as_str(), usage.limit), ("TIER_2K", Some(2_000)));
}

#[test]
fn where_the_operator_allows_it_wagate_applies_its_projection_on_the_exact_count() {
    let mut config = EngineConfig::new(Profile::whatsapp_2025());
    config.apply_projected_upgrades = true;
    let (mut f, _) = projected_under_2025(config.clone());
    let expected = f
        .engine
        .usage(NUMBER)
        .unwrap()
        .projected_upgrade_at
        .unwrap();
    f.clock
        .set(Timestamp::from_secs(expected.secs() - 1))
        .unwrap();
    assert_eq!(f.engine.usage(NUMBER).unwrap().tier, "TIER_2K");
    f.clock.set(expected).unwrap();
    let usage = f.engine.usage(NUMBER).unwrap();
    assert_eq!(
        (usage.tier.as_str(), usage.limit, usage.upgraded_at),
        ("TIER_10K", Some(10_000), Some(expected))
    );
    assert_eq!(usage.projected_upgrade_at, None);

    // The same, but 150 of the sends failed for good before the projection came due: the
    // sketch still says 1,101, the exact count 951 of the 1,000 needed. Not applied.
    let (mut f, _) = projected_under_2025(config);
    let before = f.engine.usage(NUMBER).unwrap();
    let expected = before.projected_upgrade_at.unwrap();
    assert!(
        before.upgraded_at.is_some(),
        "the verification raised it to 2K"
    );
    for i in 0..150 {
        assert!(f.fail_last_send_to(person(i)).slot_released);
    }
    f.clock.set(expected).unwrap();
    let usage = f.engine.usage(NUMBER).unwrap();
    assert_eq!(
        (usage.tier.as_str(), usage.upgraded_at),
        ("TIER_2K", before.upgraded_at)
    );
    assert_eq!(usage.projected_upgrade_at, None, "the projection is spent");
}

#[test]
fn quality_never_lowers_the_limit_under_2025() {
    let f = Fixture::new(Profile::whatsapp_2025());
    f.engine
        .registry()
        .set_tier(NUMBER, "TIER_10K", f.now_secs())
        .unwrap();
    f.engine
        .registry()
        .set_number_quality(NUMBER, Quality::Red, f.now_secs())
        .unwrap();
    f.advance(30 * DAY);
    let mut f = f;
    let usage = f.engine.usage(NUMBER).unwrap();
    assert_eq!(
        (usage.tier.as_str(), usage.flagged_since),
        ("TIER_10K", None)
    );
}

#[test]
fn a_restriction_blocks_business_initiated_messages_for_24_hours_while_replies_flow() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let (ana, ben) = (person(1), person(2));
        f.opt_in(ana);
        f.inbound(ben, "hi");
        let until = f
            .engine
            .registry()
            .restrict_number(NUMBER, f.now_secs())
            .unwrap();
        assert_eq!(until, f.now_secs() + DAY as u32);
        let blocked = f.send_template(ana, "order_update");
        assert_eq!(
            blocked.deferral(),
            Some((Timestamp::from_secs(until), DeferReason::Restricted))
        );
        assert!(f.send_text(ben, "replies still go").is_accepted());
        assert!(f.engine.usage(NUMBER).unwrap().restricted_until.is_some());
        f.advance(DAY);
        assert!(
            f.send_template(ana, "order_update").is_accepted(),
            "{}",
            f.profile_name()
        );
    }
}

#[test]
fn many_shards_admit_exactly_the_limit() {
    for profile in profiles() {
        let limit = u64::from(profile.tier_limit(profile.initial_tier).unwrap());
        let mut config = EngineConfig::new(profile);
        config.shards = 4;
        let mut f = Fixture::with_config(config);
        assert_eq!(campaign(&mut f, 0, limit + 300), (limit, 300));
        f.advance(DAY);
        // Every shard's recipients expired, each on its own shard: all capacity is back.
        assert_eq!(campaign(&mut f, limit + 300, 2 * limit + 300), (limit, 0));
        assert_eq!(f.engine.usage(NUMBER).unwrap().used_24h as u64, limit);
    }
}

#[test]
fn a_send_that_failed_for_good_gives_back_its_price_and_the_slot_it_took() {
    for profile in profiles() {
        let limit = u64::from(profile.tier_limit(profile.initial_tier).unwrap());
        let mut f = Fixture::new(profile);
        assert_eq!(campaign(&mut f, 0, limit), (limit, 0));
        assert_eq!(campaign(&mut f, limit, limit + 1), (0, 1), "at the limit");
        let before = f.engine.ledger().sum(None, None, None);
        let price = f.sent[1].accepted.price_micros;
        assert!(price > 0);

        // Meta refused the send to person 1 (a paused template, say): it reached nobody.
        assert!(f.fail_last_send_to(person(1)).slot_released);
        let after = f.engine.ledger().sum(None, None, None);
        assert_eq!(
            (after.messages, after.micros),
            (before.messages - 1, before.micros - price)
        );
        assert_eq!(f.engine.usage(NUMBER).unwrap().used_24h as u64, limit - 1);
        assert_eq!(
            campaign(&mut f, limit, limit + 1),
            (1, 0),
            "{}: the slot is free again",
            f.profile_name()
        );

        // Person 2 got a second message later: the failure of either keeps the slot (the other
        // may be delivered, and Meta counts it).
        f.advance(10);
        assert!(f.send_template(person(2), "order_update").is_accepted());
        assert!(!f.fail_last_send_to(person(2)).slot_released);
        let first = *f.sent.iter().find(|s| s.to == person(2)).unwrap();
        assert!(!f.engine.send_failed(&first).unwrap().slot_released);
        assert_eq!(f.engine.usage(NUMBER).unwrap().used_24h as u64, limit);
    }
}

#[test]
fn capacity_a_busy_shard_has_not_yet_expired_is_not_refused_elsewhere() {
    // Every counted recipient sits on shard 0; a day later a new person on shard 1 is sent
    // to before shard 0 has looked at its expirations.
    for profile in profiles() {
        let limit = profile.tier_limit(profile.initial_tier).unwrap() as usize;
        let mut config = EngineConfig::new(profile);
        config.shards = 2;
        let mut f = Fixture::with_config(config);
        let on_shard = |shard: usize| {
            (0..)
                .map(person)
                .filter(move |p| wagate_rules::shard_context::shard_for(p.digits(), 2) == shard)
        };
        for who in on_shard(0).take(limit) {
            f.opt_in(who);
            assert!(f.send_template(who, "order_update").is_accepted());
        }
        let newcomers: Vec<_> = on_shard(1).take(2).collect();
        f.opt_in(newcomers[0]);
        f.opt_in(newcomers[1]);
        assert_eq!(
            f.send_template(newcomers[0], "order_update")
                .deferral()
                .map(|d| d.1),
            Some(DeferReason::TierLimit)
        );
        f.advance(DAY);
        for who in newcomers {
            assert!(
                f.send_template(who, "order_update").is_accepted(),
                "{}",
                f.profile_name()
            );
        }
    }
}
