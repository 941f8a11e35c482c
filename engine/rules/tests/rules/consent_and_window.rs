//! Rules 1 and 2: consent for business-initiated messages, and the 24-hour customer-service
//! window, in both profiles.

use wagate_rules::contact_events::FailureEffect;
use wagate_rules::{ConsentChange, ConsentSource, DeferReason, Refusal};
use wagate_test_support::*;

#[test]
fn a_template_outside_the_window_needs_a_recorded_opt_in() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        assert_eq!(
            f.send_template(ana, "order_update").refusal(),
            Some(&Refusal::NoOptIn),
            "{}",
            f.profile_name()
        );
        assert!(
            f.engine.contact(NUMBER, ana).is_none(),
            "a refusal creates nothing"
        );
        f.opt_in(ana);
        let view = f.engine.contact(NUMBER, ana).unwrap();
        assert!(view.opted_in);
        assert_eq!(view.consent_source, ConsentSource::Api);
        assert_eq!(
            view.consent_changed_at,
            Some(f.engine.now()).map(|t| wagate_rules::Timestamp::from_secs(t.secs()))
        );
        let decision = f.send_template(ana, "order_update");
        assert!(
            decision.accepted().unwrap().business_initiated,
            "{}",
            f.profile_name()
        );
    }
}

#[test]
fn stop_withdraws_every_template_inside_the_window_too_until_start() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        f.opt_in(ana);
        f.inbound(ana, "  stop ");
        assert!(f.engine.contact(NUMBER, ana).unwrap().opted_out);
        // The STOP opened a window: a free-form reply to it still goes, a template does not.
        f.advance(1);
        assert!(f.send_text(ana, "You are unsubscribed.").is_accepted());
        for template in ["promo", "order_update", "login_code"] {
            assert_eq!(
                f.send_template(ana, template).refusal(),
                Some(&Refusal::OptedOut),
                "{template} inside the window, {}",
                f.profile_name()
            );
        }
        f.advance(DAY);
        for template in ["promo", "order_update", "login_code"] {
            assert_eq!(
                f.send_template(ana, template).refusal(),
                Some(&Refusal::OptedOut)
            );
        }
        f.inbound(ana, "START");
        f.advance(DAY);
        let view = f.engine.contact(NUMBER, ana).unwrap();
        assert!(view.opted_in && !view.opted_out);
        assert_eq!(view.consent_source, ConsentSource::Keyword);
        assert!(
            f.send_template(ana, "promo").is_accepted(),
            "{}",
            f.profile_name()
        );
    }
}

#[test]
fn a_withdrawn_topic_blocks_its_templates_from_every_number_inside_the_window_too() {
    for profile in profiles() {
        let mut config = wagate_rules::EngineConfig::new(profile);
        config.topics = vec!["newsletter".into()];
        let mut f = Fixture::with_config(config);
        let other = wagate_rules::PhoneNumberId(106_540_352_242_923);
        f.register(other, wagate_rules::PortfolioId(1));
        let mut weekly = wagate_rules::TemplateDefinition::new(
            ACCOUNT,
            "weekly",
            "en_US",
            wagate_rules::Category::Utility,
            "This week, {{1}}.",
        );
        weekly.topic = Some("newsletter".into());
        f.approve(weekly);
        let ana = person(1);
        f.opt_in(ana);
        let topics = |f: &Fixture, names: &[&str]| {
            f.engine
                .registry()
                .topic_names()
                .topics(names.iter().copied())
                .unwrap()
        };
        let newsletter = topics(&f, &["newsletter"]);
        f.engine
            .consent(
                other,
                ana,
                ConsentChange::TopicsOptOut(newsletter),
                ConsentSource::Api,
            )
            .unwrap();
        f.inbound(ana, "hello");
        // Inside the window, from this number: the newsletter's template is withdrawn, the
        // other utility and marketing ones are not.
        assert_eq!(
            f.send_template(ana, "weekly").refusal(),
            Some(&Refusal::TopicOptedOut),
            "{}",
            f.profile_name()
        );
        assert!(f.send_template(ana, "order_update").is_accepted());
        assert!(f.send_template(ana, "promo").is_accepted());
        // Withdrawing utility withdraws the newsletter's template too (its category).
        f.engine
            .consent(
                NUMBER,
                ana,
                ConsentChange::TopicsOptIn(newsletter),
                ConsentSource::Api,
            )
            .unwrap();
        assert!(f.send_template(ana, "weekly").is_accepted());
        let utility = topics(&f, &["utility"]);
        f.engine
            .consent(
                NUMBER,
                ana,
                ConsentChange::TopicsOptOut(utility),
                ConsentSource::Api,
            )
            .unwrap();
        assert_eq!(
            f.send_template_from(other, ana, "weekly").refusal(),
            Some(&Refusal::TopicOptedOut)
        );
        assert!(f.send_template(ana, "login_code").is_accepted());
        // START resumes every topic; after a STOP, an opt-in naming a topic consents to it
        // alone.
        f.inbound(ana, "START");
        assert!(f.send_template(ana, "weekly").is_accepted());
        f.inbound(ana, "STOP");
        f.engine
            .consent(
                NUMBER,
                ana,
                ConsentChange::TopicsOptIn(newsletter.union(utility)),
                ConsentSource::Api,
            )
            .unwrap();
        assert!(f.send_template(ana, "weekly").is_accepted());
        assert_eq!(
            f.send_template(ana, "promo").refusal(),
            Some(&Refusal::MarketingOptedOut)
        );
        assert_eq!(
            f.send_template(ana, "login_code").refusal(),
            Some(&Refusal::TopicOptedOut)
        );
        let view = f.engine.contact(other, ana).unwrap();
        assert_eq!(
            f.engine
                .registry()
                .topic_names()
                .names(view.withdrawn_topics),
            ["marketing", "authentication"]
        );
        // A template naming a topic nobody named is refused at creation.
        let mut stray = wagate_rules::TemplateDefinition::new(
            ACCOUNT,
            "stray",
            "en_US",
            wagate_rules::Category::Utility,
            "Hi {{1}}.",
        );
        stray.topic = Some("sports".into());
        assert!(f
            .engine
            .registry()
            .submit_template(stray, f.now_secs())
            .is_err());
    }
}

#[test]
fn metas_marketing_stop_reaches_numbers_whose_consent_is_their_own() {
    for profile in profiles() {
        let (own, later) = (
            wagate_rules::PhoneNumberId(106_540_352_242_923),
            wagate_rules::PhoneNumberId(106_540_352_242_924),
        );
        let mut config = wagate_rules::EngineConfig::new(profile);
        config.consent_per_number = vec![own, later];
        let mut f = Fixture::with_config(config);
        f.register(own, wagate_rules::PortfolioId(1));
        let ana = person(1);
        f.opt_in(ana);
        f.engine
            .consent(own, ana, ConsentChange::OptIn, ConsentSource::Api)
            .unwrap();
        let meta = |f: &mut Fixture, number, change| {
            f.engine
                .consent(number, ana, change, ConsentSource::UserPreferences)
                .unwrap()
        };
        // Meta's stop through the business's number reaches the number of its own...
        meta(&mut f, NUMBER, ConsentChange::MarketingOptOut);
        f.advance(DAY);
        assert_eq!(
            f.send_template_from(own, ana, "promo").refusal(),
            Some(&Refusal::MarketingOptedOut),
            "{}",
            f.profile_name()
        );
        // ...Meta's resume through that one reaches the business's...
        meta(&mut f, own, ConsentChange::MarketingOptIn);
        f.advance(DAY);
        assert!(f.send_template(ana, "promo").is_accepted());
        // ...and a number of its own registered later starts under Meta's stop.
        meta(&mut f, own, ConsentChange::MarketingOptOut);
        f.register(later, wagate_rules::PortfolioId(1));
        f.engine
            .consent(later, ana, ConsentChange::OptIn, ConsentSource::Api)
            .unwrap();
        f.advance(DAY);
        assert_eq!(
            f.send_template_from(later, ana, "promo").refusal(),
            Some(&Refusal::MarketingOptedOut)
        );
        assert_eq!(
            f.send_template(ana, "promo").refusal(),
            Some(&Refusal::MarketingOptedOut)
        );
        // The per-number opt-ins stay their own: the later number's did not opt in the first.
        assert!(f.send_template_from(own, ana, "order_update").is_accepted());
    }
}

#[test]
fn a_number_with_per_number_consent_keeps_its_people_s_consent_its_own() {
    for profile in profiles() {
        let own = wagate_rules::PhoneNumberId(106_540_352_242_923);
        let mut config = wagate_rules::EngineConfig::new(profile);
        config.consent_per_number = vec![own];
        let mut f = Fixture::with_config(config);
        f.register(own, wagate_rules::PortfolioId(1));
        let ana = person(1);
        f.opt_in(ana);
        // The business's opt-in is not the own number's, and its STOP stays its own.
        assert_eq!(
            f.send_template_from(own, ana, "order_update").refusal(),
            Some(&Refusal::NoOptIn),
            "{}",
            f.profile_name()
        );
        f.engine
            .consent(own, ana, ConsentChange::OptIn, ConsentSource::Api)
            .unwrap();
        f.engine
            .inbound(&wagate_rules::InboundMessage {
                number: own,
                from: ana,
                content: wagate_rules::InboundContent::Text("STOP".into()),
                referral: false,
            })
            .unwrap();
        f.advance(DAY);
        assert!(f.send_template(ana, "order_update").is_accepted());
        assert_eq!(
            f.send_template_from(own, ana, "order_update").refusal(),
            Some(&Refusal::OptedOut)
        );
        // And the business's STOP does not reach it.
        f.inbound(ana, "STOP");
        f.engine
            .consent(own, ana, ConsentChange::OptIn, ConsentSource::Api)
            .unwrap();
        f.advance(DAY);
        assert!(f.send_template_from(own, ana, "order_update").is_accepted());
        assert_eq!(
            f.send_template(ana, "order_update").refusal(),
            Some(&Refusal::OptedOut)
        );
    }
}

#[test]
fn consent_belongs_to_the_business_across_its_numbers() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let other = wagate_rules::PhoneNumberId(106_540_352_242_923);
        f.register(other, wagate_rules::PortfolioId(1));
        let ana = person(1);
        f.opt_in(ana);
        // STOP to the other number of the business: no template from this one either.
        f.engine
            .inbound(&wagate_rules::InboundMessage {
                number: other,
                from: ana,
                content: wagate_rules::InboundContent::Text("STOP".into()),
                referral: false,
            })
            .unwrap();
        f.advance(DAY);
        assert_eq!(
            f.send_template(ana, "order_update").refusal(),
            Some(&Refusal::OptedOut),
            "{}",
            f.profile_name()
        );
        // START to this number: templates from the other are welcome again. The window stays
        // the number's: open with this one, not with the other.
        f.inbound(ana, "START");
        assert!(f
            .engine
            .contact(NUMBER, ana)
            .unwrap()
            .window_open_until
            .is_some());
        let through_other = f.engine.contact(other, ana).unwrap();
        assert!(through_other.opted_in && through_other.window_open_until.is_none());
        f.advance(DAY);
        assert!(f
            .send_template_from(other, ana, "order_update")
            .is_accepted());
        // A third number registered later: Ana's consent is the business's there too.
        let third = wagate_rules::PhoneNumberId(106_540_352_242_924);
        f.register(third, wagate_rules::PortfolioId(1));
        assert!(f
            .send_template_from(third, ana, "order_update")
            .is_accepted());
        f.engine
            .consent(third, ana, ConsentChange::OptOut, ConsentSource::Api)
            .unwrap();
        for number in [NUMBER, other, third] {
            assert_eq!(
                f.send_template_from(number, ana, "order_update").refusal(),
                Some(&Refusal::OptedOut)
            );
        }
    }
}

#[test]
fn api_opt_out_and_unsubscribe_button_are_global_opt_outs() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let (ana, ben) = (person(1), person(2));
        f.opt_in(ana);
        f.opt_in(ben);
        f.engine
            .consent(NUMBER, ana, ConsentChange::OptOut, ConsentSource::Api)
            .unwrap();
        f.tap(ben, "UNSUBSCRIBE");
        f.advance(DAY);
        assert_eq!(
            f.send_template(ana, "order_update").refusal(),
            Some(&Refusal::OptedOut)
        );
        assert_eq!(
            f.send_template(ben, "order_update").refusal(),
            Some(&Refusal::OptedOut)
        );
        assert_eq!(
            f.engine.contact(NUMBER, ben).unwrap().consent_source,
            ConsentSource::Button
        );
    }
}

#[test]
fn a_marketing_opt_out_withdraws_marketing_templates_inside_the_window_too() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        f.opt_in(ana);
        f.tap(ana, "STOP_PROMOS");
        for _ in 0..2 {
            let refused = f.send_template(ana, "promo");
            assert_eq!(refused.refusal(), Some(&Refusal::MarketingOptedOut));
            assert_eq!(refusal_code(&refused), Some(131_050));
            assert!(f.send_template(ana, "order_update").is_accepted());
            assert!(f.send_template(ana, "login_code").is_accepted());
            // First inside the window the tap opened, then outside it.
            f.advance(DAY);
        }
        // Meta's resume ends Meta's stop, not the business's own opt-out.
        f.engine
            .consent(
                NUMBER,
                ana,
                ConsentChange::MarketingOptIn,
                ConsentSource::UserPreferences,
            )
            .unwrap();
        assert_eq!(
            f.send_template(ana, "promo").refusal(),
            Some(&Refusal::MarketingOptedOut)
        );
        f.engine
            .consent(
                NUMBER,
                ana,
                ConsentChange::MarketingOptIn,
                ConsentSource::Api,
            )
            .unwrap();
        assert!(
            f.send_template(ana, "promo").is_accepted(),
            "{}",
            f.profile_name()
        );
    }
}

#[test]
fn metas_marketing_stop_holds_inside_the_window_and_ends_only_with_metas_resume() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        f.opt_in(ana);
        f.engine
            .consent(
                NUMBER,
                ana,
                ConsentChange::MarketingOptOut,
                ConsentSource::UserPreferences,
            )
            .unwrap();
        let view = f.engine.contact(NUMBER, ana).unwrap();
        assert!(view.meta_marketing_stopped && !view.marketing_opted_out);
        // She writes (a window opens): Meta still refuses marketing.
        f.inbound(ana, "where is my order?");
        assert_eq!(
            f.send_template(ana, "promo").refusal(),
            Some(&Refusal::MarketingOptedOut)
        );
        assert!(f.send_template(ana, "order_update").is_accepted());
        // The business's START is the business's consent, not Meta's.
        f.inbound(ana, "START");
        f.advance(DAY);
        assert_eq!(
            f.send_template(ana, "promo").refusal(),
            Some(&Refusal::MarketingOptedOut),
            "{}",
            f.profile_name()
        );
        f.engine
            .consent(
                NUMBER,
                ana,
                ConsentChange::MarketingOptIn,
                ConsentSource::UserPreferences,
            )
            .unwrap();
        assert!(f.send_template(ana, "promo").is_accepted());
    }
}

#[test]
fn the_window_opens_on_inbound_and_closes_exactly_24_hours_later() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        assert_eq!(refusal_code(&f.send_text(ana, "hi")), Some(131_047));
        f.inbound(ana, "Does it come in blue?");
        let opened = f.engine.now();
        assert!(f
            .send_text(ana, "Yes, it does.")
            .accepted()
            .is_some_and(|a| !a.business_initiated));
        f.advance(DAY - 1);
        assert!(
            f.send_text(ana, "Still there?").is_accepted(),
            "one second before 24 h"
        );
        f.advance(1);
        assert_eq!(f.engine.now().unix_secs() - opened.unix_secs(), DAY);
        let late = f.send_text(ana, "Hello?");
        assert_eq!(
            late.refusal(),
            Some(&Refusal::OutsideServiceWindow),
            "exactly 24 h"
        );
        assert_eq!(refusal_code(&late), Some(131_047));
    }
}

#[test]
fn each_inbound_message_or_button_tap_extends_the_window() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        f.inbound(ana, "hello");
        f.advance(20 * HOUR);
        f.tap(ana, "CONFIRM_123");
        f.advance(20 * HOUR);
        assert!(f.send_text(ana, "still open").is_accepted());
        f.advance(4 * HOUR);
        assert_eq!(
            f.send_text(ana, "closed").refusal(),
            Some(&Refusal::OutsideServiceWindow)
        );
    }
}

#[test]
fn replies_in_the_window_are_free_and_do_not_count() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let ana = person(1);
        f.inbound(ana, "hi");
        let reply = f.send_text(ana, "hello!");
        let accepted = reply.accepted().unwrap();
        assert!(!accepted.business_initiated && !accepted.new_unique_recipient);
        assert_eq!(accepted.price_micros, 0);
        assert_eq!(f.engine.usage(NUMBER).unwrap().used_24h, 0);
    }
}

#[test]
fn delivery_failures_feed_consent_cooldown_and_reachability() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let (ana, ben, cas) = (person(1), person(2), person(3));
        for who in [ana, ben, cas] {
            f.opt_in(who);
        }
        assert_eq!(
            f.engine.delivery_failed(NUMBER, ana, 131_050).unwrap(),
            FailureEffect::MarketingOptedOut
        );
        assert_eq!(
            f.send_template(ana, "promo").refusal(),
            Some(&Refusal::MarketingOptedOut)
        );

        let cooldown = f.engine.delivery_failed(NUMBER, ben, 131_049).unwrap();
        let FailureEffect::MarketingCooldown { until } = cooldown else {
            panic!("{cooldown:?}")
        };
        assert_eq!(
            f.send_template(ben, "promo").deferral(),
            Some((until, DeferReason::MarketingCooldown))
        );
        assert!(
            f.send_template(ben, "order_update").is_accepted(),
            "utility is not marketing"
        );
        f.advance(DAY);
        assert!(f.send_template(ben, "promo").is_accepted());

        f.engine.delivery_failed(NUMBER, cas, 131_026).unwrap();
        assert_eq!(
            refusal_code(&f.send_template(cas, "order_update")),
            Some(131_026)
        );
        f.inbound(cas, "I have WhatsApp now");
        assert!(f.send_template(cas, "order_update").is_accepted());
        assert_eq!(
            f.engine.delivery_failed(NUMBER, cas, 131_000).unwrap(),
            FailureEffect::None
        );
    }
}

#[test]
fn a_person_the_business_blocked_gets_nothing_from_that_number_until_unblocked() {
    for profile in profiles() {
        let mut f = Fixture::new(profile);
        let (ana, ben) = (person(1), person(2));
        for who in [ana, ben] {
            f.opt_in(who);
            f.inbound(who, "hi");
        }
        f.engine.business_block(NUMBER, ana, true).unwrap();
        // Inside the window or not, free-form or template: 130403, as Meta would answer.
        assert_eq!(refusal_code(&f.send_text(ana, "hello")), Some(130_403));
        assert_eq!(
            refusal_code(&f.send_template(ana, "order_update")),
            Some(130_403)
        );
        assert!(
            f.send_text(ben, "hello").is_accepted(),
            "only ana is blocked"
        );
        f.engine.business_block(NUMBER, ana, false).unwrap();
        assert!(f.send_text(ana, "hello again").is_accepted());
        // Meta's own refusal for a block wagate did not know says the same.
        assert_eq!(
            f.engine.delivery_failed(NUMBER, ben, 130_403).unwrap(),
            FailureEffect::Blocked
        );
        assert_eq!(refusal_code(&f.send_text(ben, "hello")), Some(130_403));
    }
}

#[test]
fn unknown_numbers_are_refused_with_code_100() {
    let mut f = Fixture::new(wagate_rules::Profile::whatsapp_2021());
    let decision = f.send_template_from(wagate_rules::PhoneNumberId(1), person(1), "promo");
    assert_eq!(refusal_code(&decision), Some(100));
}
