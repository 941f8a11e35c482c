//! # wagate-test-support
//!
//! What wagate's tests set up again and again: a number's registration, the `order_update`
//! template and the statuses that approve it (the rule tests, the durable engine's tests, the
//! crash and full-disk tests and the model all start there); and a fixture for the rule tests:
//! an engine on a manual clock with one number, approved templates of each category, and
//! helpers to build requests.

// Test support: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use wagate_rules::contact_events::{FailedSend, FailureReversal, InboundContent};
use wagate_rules::template::model::{ButtonSpec, HeaderSpec, MediaKind};
use wagate_rules::{
    AccountId, Category, ConsentChange, ConsentSource, Decision, Engine, EngineConfig,
    InboundMessage, ManualClock, Message, Msisdn, NumberRegistration, PhoneNumberId, PortfolioId,
    Profile, SendRequest, TemplateDefinition, TemplateSend, TemplateStatus, TextParam,
};

pub const HOUR: u64 = 3_600;
pub const DAY: u64 = 86_400;
pub const ACCOUNT: AccountId = AccountId(7);
pub const NUMBER: PhoneNumberId = PhoneNumberId(106_540_352_242_922);

/// A number of `account` in portfolio 1, sending 1,000 messages a second, on `tier` (a Meta
/// tier name such as `TIER_1K`; `None`: the tier the profile starts a number at).
pub fn registration(
    id: PhoneNumberId,
    account: AccountId,
    tier: Option<&str>,
) -> NumberRegistration {
    NumberRegistration {
        id,
        account,
        portfolio: PortfolioId(1),
        tier: tier.map(str::to_string),
        throughput_mps: Some(1_000),
        display_phone_number: None,
    }
}

/// The utility template most tests send: `order_update` in `en_US`, "Hi {{1}}, shipped.".
pub fn order_update(account: AccountId) -> TemplateDefinition {
    TemplateDefinition::new(
        account,
        "order_update",
        "en_US",
        Category::Utility,
        "Hi {{1}}, shipped.",
    )
}

/// A send of [`order_update`] (for "Ana") from `number` to `to`.
pub fn order_update_to(number: PhoneNumberId, to: Msisdn) -> SendRequest {
    SendRequest {
        number,
        to,
        message: Message::Template(TemplateSend::new(
            "order_update",
            "en_US",
            vec![TextParam::positional("Ana")],
        )),
        options: Default::default(),
    }
}

/// The statuses a submitted template goes through, in order, to be approved.
pub const TO_APPROVED: [TemplateStatus; 2] = [TemplateStatus::InReview, TemplateStatus::Approved];

pub struct Fixture {
    pub engine: Engine,
    pub clock: ManualClock,
    /// Every accepted send, as a failure of it would be reported.
    pub sent: Vec<FailedSend>,
}

pub fn profiles() -> [Profile; 2] {
    [Profile::whatsapp_2021(), Profile::whatsapp_2025()]
}

pub fn person(i: u64) -> Msisdn {
    Msisdn::from_digits(4_915_100_000_000 + i).unwrap()
}

impl Fixture {
    pub fn new(profile: Profile) -> Fixture {
        Self::with_config(EngineConfig::new(profile))
    }

    pub fn with_config(config: EngineConfig) -> Fixture {
        let clock = ManualClock::at_2026();
        let engine = Engine::new(config, Arc::new(clock.clone())).unwrap();
        let fixture = Fixture {
            engine,
            clock,
            sent: Vec::new(),
        };
        fixture.register(NUMBER, PortfolioId(1));
        for (name, category) in [
            ("promo", Category::Marketing),
            ("order_update", Category::Utility),
            ("login_code", Category::Authentication),
        ] {
            fixture.approve(TemplateDefinition::new(
                ACCOUNT,
                name,
                "en_US",
                category,
                "Hello {{1}}, here is your news.",
            ));
        }
        fixture
    }

    pub fn profile_name(&self) -> String {
        self.engine.profile().name.clone()
    }

    pub fn register(&self, id: PhoneNumberId, portfolio: PortfolioId) {
        self.engine
            .registry()
            .register_number(NumberRegistration {
                portfolio,
                ..registration(id, ACCOUNT, None)
            })
            .unwrap();
    }

    pub fn now_secs(&self) -> u32 {
        self.engine.now().secs()
    }

    /// Submits a template and walks it to approved through the profile's review states.
    pub fn approve(&self, definition: TemplateDefinition) {
        let (name, language) = (definition.name.clone(), definition.language.clone());
        self.engine
            .registry()
            .submit_template(definition, self.now_secs())
            .unwrap();
        let registry = self.engine.registry();
        for status in TO_APPROVED {
            registry
                .set_template_status(ACCOUNT, &name, &language, status, self.now_secs())
                .unwrap();
        }
    }

    pub fn opt_in(&mut self, who: Msisdn) {
        self.engine
            .consent(NUMBER, who, ConsentChange::OptIn, ConsentSource::Api)
            .unwrap();
    }

    pub fn inbound(&mut self, who: Msisdn, text: &str) {
        self.engine
            .inbound(&InboundMessage {
                number: NUMBER,
                from: who,
                content: InboundContent::Text(text.into()),
                referral: false,
            })
            .unwrap();
    }

    pub fn tap(&mut self, who: Msisdn, payload: &str) {
        self.engine
            .inbound(&InboundMessage {
                number: NUMBER,
                from: who,
                content: InboundContent::Button {
                    payload: payload.into(),
                },
                referral: false,
            })
            .unwrap();
    }

    pub fn send_template(&mut self, who: Msisdn, name: &str) -> Decision {
        self.send_template_from(NUMBER, who, name)
    }

    pub fn send_template_from(
        &mut self,
        number: PhoneNumberId,
        who: Msisdn,
        name: &str,
    ) -> Decision {
        self.decide(SendRequest {
            number,
            to: who,
            message: Message::Template(TemplateSend::new(
                name,
                "en_US",
                vec![TextParam::positional("Ana")],
            )),
            options: Default::default(),
        })
    }

    pub fn send_text(&mut self, who: Msisdn, body: &str) -> Decision {
        self.decide(SendRequest {
            number: NUMBER,
            to: who,
            message: Message::text(body),
            options: Default::default(),
        })
    }

    fn decide(&mut self, request: SendRequest) -> Decision {
        let decision = self.engine.decide(&request);
        if let Decision::Accepted(accepted) = &decision {
            self.sent.push(FailedSend {
                number: request.number,
                to: request.to,
                accepted_at: self.engine.now(),
                accepted: *accepted,
            });
        }
        decision
    }

    /// The last accepted send to `who` failed for good (Meta refused it, or it was never
    /// delivered): what the engine gave back.
    pub fn fail_last_send_to(&mut self, who: Msisdn) -> FailureReversal {
        let failed = *self
            .sent
            .iter()
            .rev()
            .find(|sent| sent.to == who)
            .expect("a send to them");
        self.engine.send_failed(&failed).expect("a known number")
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance_secs(secs);
    }
}

/// A template with an image header, a quick reply and a URL button with a variable.
pub fn rich_template(name: &str) -> TemplateDefinition {
    let mut definition = TemplateDefinition::new(
        ACCOUNT,
        name,
        "en_US",
        Category::Utility,
        "Hi {{1}}, your order {{2}} is ready.",
    );
    definition.headers = vec![HeaderSpec::Media(MediaKind::Image)];
    definition.buttons = vec![
        ButtonSpec::QuickReply {
            text: "Thanks".into(),
        },
        ButtonSpec::Url {
            text: "Track".into(),
            url: "https://shop.example.com/t/{{1}}".into(),
        },
    ];
    definition
}

pub fn accepted(decision: &Decision) -> bool {
    decision.is_accepted()
}

pub fn refusal_code(decision: &Decision) -> Option<u32> {
    decision.refusal().and_then(|r| r.meta_code())
}
