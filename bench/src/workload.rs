//! A seeded workload model: who is messaged, by which number, with what.
//!
//! Persons are ranked by popularity; a Zipf law over the ranks picks each recipient, so a few
//! people get much of the traffic (and meet pair pacing) while the long tail is reached once.
//! Each person belongs to one business number (`rank % numbers`); numbers sit on a spread of
//! tiers. Inbound messages come from Zipf-picked people and open windows; replies go to people
//! who wrote recently; templates go to Zipf-picked people, mostly outside any window; a small
//! share of free-form sends go to people without a window (and are refused, as they should be).

use std::collections::VecDeque;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use wagate::contact_events::InboundContent;
use wagate::workers::Command;
use wagate::{
    AccountId, Category, ConsentChange, ConsentSource, InboundMessage, Message, Msisdn,
    NumberRegistration, PhoneNumberId, PortfolioId, Registry, SendRequest, TemplateDefinition,
    TemplateSend, TemplateStatus, TextParam,
};

pub const ACCOUNT: AccountId = AccountId(42);
/// The templates every workload approves: name and category.
pub const TEMPLATES: [(&str, Category); 3] = [
    ("spring_sale", Category::Marketing),
    ("order_shipped", Category::Utility),
    ("login_code", Category::Authentication),
];

/// Relative weights of the kinds of traffic.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub inbound: u32,
    pub reply: u32,
    pub template: u32,
    pub cold_free_form: u32,
    /// Of templates: marketing, utility, authentication.
    pub template_categories: [u32; 3],
}

impl Default for Mix {
    /// A provider's afternoon: a fifth of the events are people writing in, a third are agents
    /// and bots answering them, a third are templates, and a few free-form sends are misfires.
    fn default() -> Self {
        Mix {
            inbound: 20,
            reply: 35,
            template: 40,
            cold_free_form: 5,
            template_categories: [40, 50, 10],
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub numbers: u32,
    pub contacts: u64,
    pub zipf_exponent: f64,
    /// Shares of contacts opted in and opted out; the rest never gave consent.
    pub opted_in_share: f64,
    pub opted_out_share: f64,
    /// Tier names given to numbers in turn (`number % tiers.len()`).
    pub tiers: Vec<String>,
    pub throughput_mps: u32,
    pub mix: Mix,
    pub seed: u64,
}

impl WorkloadSpec {
    /// The benchmark workload under `whatsapp-2021`: a million contacts over a hundred numbers.
    pub fn million_contacts() -> Self {
        WorkloadSpec {
            numbers: 100,
            contacts: 1_000_000,
            zipf_exponent: 1.0,
            opted_in_share: 0.95,
            opted_out_share: 0.02,
            tiers: ["TIER_1K", "TIER_10K", "TIER_10K", "TIER_100K", "TIER_100K"]
                .iter()
                .map(|t| t.to_string())
                .collect(),
            throughput_mps: 1_000,
            mix: Mix::default(),
            seed: 7,
        }
    }
}

const FIRST_PERSON: u64 = 4_915_100_000_000;
const FIRST_NUMBER: u64 = 100_000_000_000_000;

/// One event of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Inbound {
        number: PhoneNumberId,
        person: Msisdn,
    },
    Reply {
        number: PhoneNumberId,
        person: Msisdn,
    },
    Template {
        number: PhoneNumberId,
        person: Msisdn,
        template: usize,
    },
    ColdFreeForm {
        number: PhoneNumberId,
        person: Msisdn,
    },
}

impl Action {
    /// The engine command for this event.
    pub fn command(&self) -> Command {
        match *self {
            Action::Inbound { number, person } => Command::Inbound(InboundMessage {
                number,
                from: person,
                content: InboundContent::Text("is my order on its way?".into()),
                referral: false,
            }),
            Action::Reply { number, person } | Action::ColdFreeForm { number, person } => {
                Command::Decide(SendRequest {
                    number,
                    to: person,
                    message: Message::text("Yes, it arrives tomorrow before noon."),
                    options: Default::default(),
                })
            }
            Action::Template {
                number,
                person,
                template,
            } => Command::Decide(SendRequest {
                number,
                to: person,
                message: Message::Template(TemplateSend::new(
                    TEMPLATES[template].0,
                    "en_US",
                    vec![TextParam::positional("Ana")],
                )),
                options: Default::default(),
            }),
        }
    }
}

pub struct Workload {
    spec: WorkloadSpec,
    rng: SmallRng,
    zipf: Zipf<f64>,
    /// People who wrote recently: replies go to them.
    recent: VecDeque<u64>,
}

impl Workload {
    pub fn new(spec: WorkloadSpec) -> Workload {
        let zipf =
            Zipf::new(spec.contacts as f64, spec.zipf_exponent).expect("valid Zipf parameters");
        Workload {
            rng: SmallRng::seed_from_u64(spec.seed),
            zipf,
            recent: VecDeque::with_capacity(4_096),
            spec,
        }
    }

    pub fn spec(&self) -> &WorkloadSpec {
        &self.spec
    }

    pub fn person(index: u64) -> Msisdn {
        Msisdn::from_digits(FIRST_PERSON + index).expect("workload numbers are valid E.164")
    }

    pub fn number(&self, index: u64) -> PhoneNumberId {
        PhoneNumberId(FIRST_NUMBER + index % u64::from(self.spec.numbers))
    }

    /// Registers the numbers on their tiers and approves the templates.
    pub fn install(
        &self,
        registry: &Registry,
        now: u32,
    ) -> Result<(), wagate::registry::RegistryError> {
        for n in 0..self.spec.numbers {
            registry.register_number(NumberRegistration {
                id: self.number(u64::from(n)),
                account: ACCOUNT,
                portfolio: PortfolioId(1),
                tier: Some(self.spec.tiers[n as usize % self.spec.tiers.len()].clone()),
                throughput_mps: Some(self.spec.throughput_mps),
                display_phone_number: None,
            })?;
        }
        for (name, category) in TEMPLATES {
            let definition = TemplateDefinition::new(
                ACCOUNT,
                name,
                "en_US",
                category,
                "Hi {{1}}, an update for you.",
            );
            registry.submit_template(definition, now)?;
            for status in [TemplateStatus::InReview, TemplateStatus::Approved] {
                registry.set_template_status(ACCOUNT, name, "en_US", status, now)?;
            }
        }
        Ok(())
    }

    /// Consent commands for every contact, per the spec's shares (deterministic per person).
    pub fn consent_commands(&self) -> impl Iterator<Item = Command> + '_ {
        (0..self.spec.contacts).filter_map(move |index| {
            let draw =
                (wagate::hash::mix64(index ^ self.spec.seed) >> 11) as f64 / (1u64 << 53) as f64;
            let change = if draw < self.spec.opted_in_share {
                ConsentChange::OptIn
            } else if draw < self.spec.opted_in_share + self.spec.opted_out_share {
                ConsentChange::OptOut
            } else {
                return None;
            };
            Some(Command::Consent {
                number: self.number(index),
                person: Self::person(index),
                change,
                source: ConsentSource::Api,
            })
        })
    }

    fn popular(&mut self) -> u64 {
        self.zipf.sample(&mut self.rng) as u64 - 1
    }

    pub fn next_action(&mut self) -> Action {
        let mix = self.spec.mix;
        let total = mix.inbound + mix.reply + mix.template + mix.cold_free_form;
        let mut pick = self.rng.random_range(0..total);
        if pick < mix.inbound {
            let index = self.popular();
            if self.recent.len() == self.recent.capacity() {
                self.recent.pop_front();
            }
            self.recent.push_back(index);
            return Action::Inbound {
                number: self.number(index),
                person: Self::person(index),
            };
        }
        pick -= mix.inbound;
        if pick < mix.reply && !self.recent.is_empty() {
            let index = self.recent[self.rng.random_range(0..self.recent.len())];
            return Action::Reply {
                number: self.number(index),
                person: Self::person(index),
            };
        }
        pick = pick.saturating_sub(mix.reply);
        if pick < mix.template {
            let index = self.popular();
            let categories = mix.template_categories;
            let mut draw = self.rng.random_range(0..categories.iter().sum::<u32>());
            let mut template = 0;
            while draw >= categories[template] {
                draw -= categories[template];
                template += 1;
            }
            return Action::Template {
                number: self.number(index),
                person: Self::person(index),
                template,
            };
        }
        let index = self.rng.random_range(0..self.spec.contacts);
        Action::ColdFreeForm {
            number: self.number(index),
            person: Self::person(index),
        }
    }
}

impl Iterator for Workload {
    type Item = Action;

    fn next(&mut self) -> Option<Action> {
        Some(self.next_action())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> WorkloadSpec {
        WorkloadSpec {
            contacts: 10_000,
            numbers: 10,
            ..WorkloadSpec::million_contacts()
        }
    }

    #[test]
    fn the_mix_and_popularity_follow_the_spec() {
        let actions: Vec<Action> = Workload::new(small()).take(100_000).collect();
        let templates = actions
            .iter()
            .filter(|a| matches!(a, Action::Template { .. }))
            .count();
        assert!((38_000..42_000).contains(&templates), "{templates}");
        let top = Workload::person(0);
        let to_top = actions
            .iter()
            .filter(|a| matches!(a, Action::Template { person, .. } if *person == top))
            .count();
        // Zipf s = 1 over 10,000 ranks: the top person draws about 1/H(10,000) = 10 % of picks.
        assert!((3_000..5_000).contains(&to_top), "{to_top}");
        let again: Vec<Action> = Workload::new(small()).take(1_000).collect();
        assert_eq!(
            &actions[..1_000],
            &again[..],
            "seeded: the same spec gives the same traffic"
        );
    }

    #[test]
    fn consent_shares_follow_the_spec() {
        let workload = Workload::new(small());
        let commands: Vec<Command> = workload.consent_commands().collect();
        let opted_in = commands
            .iter()
            .filter(|c| {
                matches!(
                    c,
                    Command::Consent {
                        change: ConsentChange::OptIn,
                        ..
                    }
                )
            })
            .count();
        assert!((9_300..9_700).contains(&opted_in), "{opted_in}");
        assert!(
            (9_600..9_900).contains(&commands.len()),
            "{}",
            commands.len()
        );
    }
}
