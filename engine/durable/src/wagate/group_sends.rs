//! What a send to a group must pass before the shards decide it: the group is one of the
//! number's (as Meta last said), the group takes its message type, a free-form message goes
//! only inside the group's service window, and nobody in the group withdrew what it carries
//! (an opt-out means stop: every participant gets a group's message). The shards then pace,
//! price and keep it like any send.

use super::Wagate;
use crate::submission::Submission;
use wagate_rules::decision::Message;
use wagate_rules::groups::GroupRefusal;
use wagate_rules::ids::Msisdn;
use wagate_rules::template::model::Category;
use wagate_rules::topics::TopicSet;

impl Wagate {
    /// Refuses a group send that breaks a group rule (nothing is written for it).
    pub(crate) fn screen_group(&self, submission: &Submission) -> Result<(), GroupRefusal> {
        let request = &submission.request;
        let payload: serde_json::Value =
            serde_json::from_slice(&submission.payload).unwrap_or_default();
        let id = payload["to"].as_str().unwrap_or_default();
        let group = self
            .groups
            .group(id)
            .filter(|g| g.number() == request.number)
            .ok_or_else(|| GroupRefusal::UnknownGroup(id.to_string()))?;
        let rules = &self.registry().profile().groups;
        rules.check_message_type(payload["type"].as_str().unwrap_or("text"))?;
        let now = self.clock.now().unix_secs();
        // What a participant may have withdrawn: every template carries its category's topic
        // (and the one it names); free-form messages inside the window carry none.
        let (category, topics) = match &request.message {
            Message::Template(send) => {
                let account = self.registry().number(request.number).map(|n| n.account);
                let template =
                    account.and_then(|a| self.registry().template(a, &send.name, &send.language));
                match template {
                    Some(template) => {
                        let category = template.category();
                        let named = template
                            .definition
                            .topic
                            .as_deref()
                            .and_then(|topic| self.registry().topic_names().topic(topic).ok());
                        let topics = TopicSet::of_category(category)
                            .union(named.unwrap_or_default())
                            .union(request.options.topic);
                        (Some(category), topics)
                    }
                    // The shard refuses a template it does not know.
                    None => return Ok(()),
                }
            }
            _ => {
                let window = u64::from(rules.service_window_secs);
                if group.last_inbound == 0 || now >= group.last_inbound + window {
                    return Err(GroupRefusal::OutsideGroupWindow(rules.service_window_secs));
                }
                (None, TopicSet(0))
            }
        };
        let mut withdrew = 0;
        for person in &group.participants {
            let Ok(person) = Msisdn::parse(person) else {
                continue;
            };
            let Ok(Some(view)) = self.contact(request.number, person) else {
                continue;
            };
            let marketing = category == Some(Category::Marketing)
                && (view.marketing_opted_out || view.meta_marketing_stopped);
            if view.opted_out || marketing || view.withdrawn_topics.intersects(topics) {
                withdrew += 1;
            }
        }
        if withdrew > 0 {
            return Err(GroupRefusal::ParticipantWithdrew(withdrew));
        }
        Ok(())
    }
}
