//! Rules 5 and 6: pacing ("send at T", never a refusal) and prices recorded in the ledger.

use wagate_rules::price::unix_day;
use wagate_rules::registry::RegistryError;
use wagate_rules::{Category, DeferReason, EngineConfig, Msisdn, Profile, Timestamp};
use wagate_test_support::*;

#[test]
fn pair_rate_allows_a_burst_then_one_message_per_six_seconds() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        f.inbound(ana, "hi");
        for i in 0..45 {
            assert!(f.send_text(ana, "burst").is_accepted(), "message {i}");
        }
        let (until, reason) = f.send_text(ana, "one too many").deferral().unwrap();
        assert_eq!(reason, DeferReason::PairRate);
        assert_eq!(reason.meta_code(), Some(131_056));
        assert_eq!(until.unix_secs() - f.engine.now().unix_secs(), 6);
        f.inbound(person(2), "hello");
        assert!(f
            .send_text(person(2), "others are not paced by Ana")
            .is_accepted());
        f.clock.set(until).unwrap();
        assert!(f.send_text(ana, "after six seconds").is_accepted());
    }
}

#[test]
fn throughput_books_slots_and_defers_past_the_horizon() {
    for profile in profiles() {
        let mut config = EngineConfig::new(profile);
        config.schedule_horizon_secs = 1;
        let mut f = Fixture::with_config(config);
        f.engine.registry().set_throughput(NUMBER, 80).unwrap();
        let now = f.engine.now();
        let mut slots = Vec::new();
        for i in 0..200u64 {
            f.inbound(person(i), "hi");
            let decision = f.send_text(person(i), "reply");
            match decision.accepted() {
                Some(accepted) => slots.push(accepted.send_at),
                None => {
                    let (until, reason) = decision.deferral().unwrap();
                    assert_eq!(reason, DeferReason::Throughput);
                    assert!(until > now);
                    break;
                }
            }
        }
        // 80/s with a one-second horizon: slots 0..=1 s ahead, 12.5 ms apart, 81 of them.
        assert_eq!(slots.len(), 81, "{}", f.profile_name());
        assert!(slots.windows(2).all(|w| w[1].0 - w[0].0 == 12_500));
        let first_second = slots.iter().filter(|s| s.0 < now.0 + 1_000_000).count();
        assert_eq!(
            first_second, 80,
            "no second holds more than the number's throughput"
        );
    }
}

#[test]
fn throughput_is_configurable_up_to_the_profile_maximum() {
    let f = Fixture::new(Profile::whatsapp_2021());
    assert!(f.engine.registry().set_throughput(NUMBER, 1_000).is_ok());
    assert!(matches!(
        f.engine.registry().set_throughput(NUMBER, 1_001),
        Err(RegistryError::ThroughputOutOfRange { .. })
    ));
}

#[test]
fn marketing_cap_defers_the_third_marketing_message_in_24_hours() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        f.opt_in(ana);
        let first = f.engine.now();
        assert!(f.send_template(ana, "promo").is_accepted());
        f.advance(HOUR);
        assert!(f.send_template(ana, "promo").is_accepted());
        f.advance(HOUR);
        let (until, reason) = f.send_template(ana, "promo").deferral().unwrap();
        assert_eq!(reason, DeferReason::MarketingCap);
        assert_eq!(until, Timestamp::from_secs(first.secs() + DAY as u32));
        assert!(
            f.send_template(ana, "order_update").is_accepted(),
            "utility is not capped"
        );
        f.clock.set(until).unwrap();
        assert!(f.send_template(ana, "promo").is_accepted());
    }
    let mut config = EngineConfig::new(Profile::whatsapp_2021());
    config.marketing_cap_per_day = 0;
    let mut f = Fixture::with_config(config);
    f.opt_in(person(1));
    for _ in 0..5 {
        assert!(f.send_template(person(1), "promo").is_accepted());
        f.advance(60);
    }
}

#[test]
fn whatsapp_2021_charges_five_cents_outside_the_window_only() {
    let mut f = Fixture::new(Profile::whatsapp_2021());
    let (ana, ben) = (person(1), person(2));
    f.opt_in(ana);
    f.inbound(ben, "hi");
    assert_eq!(
        f.send_template(ana, "promo")
            .accepted()
            .unwrap()
            .price_micros,
        50_000
    );
    assert_eq!(
        f.send_template(ana, "order_update")
            .accepted()
            .unwrap()
            .price_micros,
        50_000
    );
    assert_eq!(
        f.send_template(ben, "promo")
            .accepted()
            .unwrap()
            .price_micros,
        0
    );
    assert_eq!(f.send_text(ben, "free").accepted().unwrap().price_micros, 0);
    let ledger = f.engine.ledger();
    let today = unix_day(f.now_secs());
    let marketing = ledger.sum(Some(NUMBER), Some(Category::Marketing), Some(today));
    assert_eq!((marketing.messages, marketing.micros), (2, 50_000));
    let all = ledger.sum(Some(NUMBER), None, Some(today));
    assert_eq!((all.messages, all.micros), (4, 100_000));
}

#[test]
fn whatsapp_2025_charges_by_category_and_recipient_country() {
    let mut f = Fixture::new(Profile::whatsapp_2025());
    let brazil = Msisdn::from_digits(5_511_987_654_321).unwrap();
    let us = Msisdn::from_digits(16_505_551_234).unwrap();
    f.opt_in(brazil);
    f.opt_in(us);
    let price =
        |f: &mut Fixture, who, name| f.send_template(who, name).accepted().unwrap().price_micros;
    assert_eq!(price(&mut f, brazil, "promo"), 62_500);
    assert_eq!(price(&mut f, brazil, "order_update"), 6_800);
    assert_eq!(price(&mut f, brazil, "login_code"), 6_800);
    assert_eq!(price(&mut f, us, "order_update"), 3_400);
    f.inbound(us, "hi");
    assert_eq!(
        price(&mut f, us, "order_update"),
        0,
        "utility inside the window is free"
    );
    assert_eq!(
        price(&mut f, us, "promo"),
        25_000,
        "marketing is always charged"
    );
    assert_eq!(
        f.send_text(us, "service").accepted().unwrap().price_micros,
        0
    );
    f.advance(DAY);
    assert_eq!(price(&mut f, us, "login_code"), 3_400);
    let ledger = f.engine.ledger();
    let day_one = unix_day(f.now_secs() - DAY as u32);
    assert_eq!(
        ledger.sum(Some(NUMBER), None, Some(day_one)).micros,
        62_500 + 6_800 * 2 + 3_400 + 25_000
    );
    assert_eq!(
        ledger
            .sum(None, Some(Category::Authentication), None)
            .micros,
        6_800 + 3_400
    );
    // Rows per day, category and market: utility to Brazil and to North America apart.
    assert_eq!(ledger.rows().len(), 7);
    let utility_markets: Vec<_> = ledger
        .rows()
        .into_iter()
        .filter(|(key, _)| key.category == Category::Utility)
        .map(|(key, totals)| (key.market, totals.messages))
        .collect();
    assert_eq!(utility_markets.len(), 2, "{utility_markets:?}");
    assert!(utility_markets
        .iter()
        .all(|(market, _)| *market != wagate_rules::volume::MarketId::NONE));
}

/// `who` writes after tapping an ad (Meta's `referral`).
fn writes_from_an_ad(f: &mut Fixture, who: Msisdn) {
    f.engine
        .inbound(&wagate_rules::InboundMessage {
            number: NUMBER,
            from: who,
            content: wagate_rules::InboundContent::Text("I saw your ad".into()),
            referral: true,
        })
        .unwrap();
}

#[test]
fn a_reply_to_an_ads_referral_opens_a_free_entry_point_window_of_72_hours() {
    for profile in [Profile::whatsapp_2021(), Profile::whatsapp_2025()] {
        let mut f = Fixture::new(profile);
        let (ad, plain) = (person(1), person(2));
        for who in [ad, plain] {
            f.opt_in(who);
        }
        writes_from_an_ad(&mut f, ad);
        f.inbound(plain, "hi");
        let price = |f: &mut Fixture, who, name| {
            f.send_template(who, name).accepted().unwrap().price_micros
        };
        // The reply opens it: marketing in it is free, for the person who came from the ad.
        assert_eq!(price(&mut f, ad, "promo"), 0);
        // Past the 24 h window but inside the 72 h: still free (a template, as the window asks).
        f.advance(48 * 3_600);
        assert_eq!(price(&mut f, ad, "promo"), 0);
        assert!(
            price(&mut f, plain, "promo") > 0,
            "no referral, no free window"
        );
        f.advance(25 * 3_600);
        assert!(
            price(&mut f, ad, "promo") > 0,
            "72 h after the reply it ends"
        );
    }
}

#[test]
fn a_referral_the_business_does_not_answer_within_the_window_opens_nothing() {
    let mut f = Fixture::new(Profile::whatsapp_2025());
    let ad = person(1);
    f.opt_in(ad);
    writes_from_an_ad(&mut f, ad);
    f.advance(25 * 3_600);
    let first = f.send_template(ad, "order_update");
    assert!(first.accepted().unwrap().price_micros > 0, "{first:?}");
}
