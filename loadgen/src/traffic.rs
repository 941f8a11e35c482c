//! What the network driver's i-th send is: the traffic model of a load run.
//!
//! Each send is planned from its number alone (a generator seeded by the run's seed and i), so
//! any worker can plan any send and a run repeats exactly. Recipients are picked by a Zipf law
//! over their ranks (or round robin when the exponent is 0): a few people get much of the
//! traffic and meet the pair rate, the long tail is reached once. A share of sends are free-form
//! replies to people who wrote (the driver makes `repliers` people write through mock-meta
//! before the run, which opens their windows in wagate), a share are free-form sends to people
//! who did not write (wagate refuses them, 131047), and a share repeat an earlier send with its
//! idempotency key (wagate answers it again and sends nothing new); the rest are templates.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

#[derive(Debug, Clone)]
pub struct TrafficModel {
    /// People `+1650` followed by 7 digits of their rank, below this.
    pub recipients: u64,
    /// The first number; send i goes from one of `numbers` after it (by its recipient).
    pub number: u64,
    pub numbers: u64,
    pub template: String,
    /// Zipf exponent of recipient popularity; 0 picks recipients round robin.
    pub zipf: f64,
    /// People (the top ranks) who write before the run: the ones replies go to.
    pub repliers: u64,
    /// Shares of all sends (the rest are templates).
    pub reply_share: f64,
    pub cold_share: f64,
    pub retry_share: f64,
    pub seed: u64,
}

/// What a send is, for the counts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Template,
    Reply,
    Cold,
    Retry,
}

/// One send as the driver makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSend {
    pub kind: Kind,
    pub number: u64,
    pub to: String,
    /// Meta's send request JSON.
    pub body: String,
    /// The idempotency key, when the model retries (a retry carries the key of the send it
    /// repeats); without retries, sends carry none, like most senders.
    pub key: Option<String>,
}

pub fn recipient(rank: u64) -> String {
    format!("+1650{rank:07}")
}

impl TrafficModel {
    /// Round robin templates over `recipients` from one number: the plain model.
    pub fn plain(number: u64, numbers: u64, recipients: u64, template: &str) -> TrafficModel {
        TrafficModel {
            recipients,
            number,
            numbers,
            template: template.to_string(),
            zipf: 0.0,
            repliers: 0,
            reply_share: 0.0,
            cold_share: 0.0,
            retry_share: 0.0,
            seed: 1,
        }
    }

    /// The number a person is messaged from: always the same one, so that each number has
    /// its own people (opted in to it).
    pub fn number_of(&self, rank: u64) -> u64 {
        self.number + rank % self.numbers.max(1)
    }

    fn rank(&self, rng: &mut SmallRng, i: u64, among: u64) -> u64 {
        let among = among.max(1);
        if self.zipf <= 0.0 {
            return i % among;
        }
        let zipf = Zipf::new(among as f64, self.zipf).expect("valid Zipf parameters");
        (zipf.sample(rng) as u64).saturating_sub(1).min(among - 1)
    }

    pub fn plan(&self, i: u64) -> PlannedSend {
        let mut rng = SmallRng::seed_from_u64(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i);
        let roll: f64 = rng.random();
        if roll < self.retry_share && i > 0 {
            let earlier = i - 1 - rng.random_range(0..i.min(1_000));
            let mut again = self.plan(earlier);
            again.kind = Kind::Retry;
            return again;
        }
        let roll = roll - self.retry_share;
        let (kind, rank) = if roll < self.reply_share && self.repliers > 0 {
            (Kind::Reply, self.rank(&mut rng, i, self.repliers))
        } else if roll < self.reply_share + self.cold_share && self.recipients > self.repliers {
            let cold = self.rank(&mut rng, i, self.recipients - self.repliers);
            (Kind::Cold, self.repliers + cold)
        } else {
            (Kind::Template, self.rank(&mut rng, i, self.recipients))
        };
        let to = recipient(rank);
        let body = match kind {
            Kind::Template | Kind::Retry => format!(
                r#"{{"messaging_product":"whatsapp","to":"{to}","type":"template","template":{{"name":"{}","language":{{"code":"en_US"}},"components":[{{"type":"body","parameters":[{{"type":"text","text":"order {i}"}}]}}]}}}}"#,
                self.template
            ),
            Kind::Reply | Kind::Cold => format!(
                r#"{{"messaging_product":"whatsapp","to":"{to}","type":"text","text":{{"body":"reply {i}"}}}}"#
            ),
        };
        PlannedSend {
            kind,
            number: self.number_of(rank),
            to,
            body,
            key: (self.retry_share > 0.0).then(|| format!("lg-{}-{i}", self.seed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> TrafficModel {
        TrafficModel {
            zipf: 1.1,
            repliers: 100,
            reply_share: 0.3,
            cold_share: 0.05,
            retry_share: 0.1,
            ..TrafficModel::plain(7, 10, 10_000, "order_update")
        }
    }

    #[test]
    fn the_mix_and_the_popularity_follow_the_parameters() {
        let model = model();
        let plans: Vec<PlannedSend> = (0..20_000).map(|i| model.plan(i)).collect();
        let share = |kind| plans.iter().filter(|p| p.kind == kind).count() as f64 / 20_000.0;
        assert!((share(Kind::Retry) - 0.1).abs() < 0.01);
        assert!((share(Kind::Reply) - 0.3).abs() < 0.02);
        assert!((share(Kind::Cold) - 0.05).abs() < 0.01);
        // Replies only to people who wrote; cold sends only to people who did not.
        for plan in &plans {
            let rank: u64 = plan.to[5..].parse().unwrap();
            match plan.kind {
                Kind::Reply => assert!(rank < 100),
                Kind::Cold => assert!(rank >= 100),
                _ => {}
            }
            assert_eq!(plan.number, 7 + rank % 10);
        }
        // Zipf: the most popular person gets far more than an even share.
        let top = plans
            .iter()
            .filter(|p| p.to == recipient(0) && p.kind == Kind::Template)
            .count();
        assert!(top > 20_000 / 10_000 * 50, "{top}");
    }

    #[test]
    fn a_plan_repeats_and_a_retry_is_an_earlier_send_with_its_key() {
        let model = model();
        assert_eq!(model.plan(1_234), model.plan(1_234));
        let retry = (1..5_000)
            .map(|i| model.plan(i))
            .find(|p| p.kind == Kind::Retry)
            .unwrap();
        let key = retry.key.clone().unwrap();
        let index: u64 = key.rsplit('-').next().unwrap().parse().unwrap();
        let original = model.plan(index);
        assert_eq!((original.body, original.to), (retry.body, retry.to));
        // Round robin in the plain model.
        let plain = TrafficModel::plain(7, 1, 3, "t");
        assert_eq!(plain.plan(0).key, None);
        let to: Vec<String> = (0..4).map(|i| plain.plan(i).to).collect();
        assert_eq!(to, [recipient(0), recipient(1), recipient(2), recipient(0)]);
    }
}
