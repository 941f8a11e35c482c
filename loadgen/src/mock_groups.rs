//! mock-meta's groups, kept as Meta's Groups API keeps them: created asynchronously (the
//! answer carries a request id; `group_lifecycle_update` brings the group id and its invite
//! link), joined only through the invite link (at once, or by a join request the business
//! approves or rejects when the group asks for approval), up to the participants the rules
//! allow ([`GroupLimits`]: Meta's 8, or the seeds' 1,024 with people added by the business),
//! people leaving or removed by the business, the link reset, the group deleted. Each change
//! gives the webhook Meta sends for it (its field and the item of its `groups` list) for
//! mock-meta to sign and post; the shapes follow Meta's Groups webhooks reference. Sends to a
//! group are judged as Meta judges them (its group, the message types a group takes, the
//! group's service window) and reach every participant.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Participants a group holds (Meta's Groups API).
pub const MAX_PARTICIPANTS: usize = 8;
/// A group's service window, opened by a participant's message.
const GROUP_WINDOW_SECS: u64 = 86_400;
/// The message types a group takes.
const GROUP_TYPES: [&str; 7] = [
    "text", "image", "video", "document", "audio", "sticker", "template",
];

/// The rules mock-meta keeps groups by: Meta's Groups API (the default), or the seeds' (1,024
/// participants, people added by the business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    pub max_participants: usize,
    /// Whether the business may add people (`POST /{group}/participants`).
    pub direct_add: bool,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            max_participants: MAX_PARTICIPANTS,
            direct_add: false,
        }
    }
}
/// Groups one business number may have.
pub const MAX_GROUPS_PER_NUMBER: usize = 10_000;
/// The longest subject Meta takes (characters, after trimming).
const MAX_SUBJECT_CHARS: usize = 128;
const MAX_DESCRIPTION_CHARS: usize = 2_048;

struct Group {
    number: String,
    subject: String,
    description: String,
    approval_required: bool,
    invite_link: String,
    participants: Vec<String>,
    /// (join request id, person, when).
    join_requests: Vec<(String, String, u64)>,
    /// When a participant last wrote in the group (Unix seconds; 0: never).
    last_inbound: u64,
}

/// A webhook Meta sends for a change: the business number it concerns, its field and the item
/// of its `groups` list.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupNews {
    pub number: String,
    pub field: &'static str,
    pub item: Value,
}

/// A call Meta refuses: HTTP status, Meta's code and words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

fn refused(status: u16, code: u32, message: impl Into<String>) -> Refused {
    Refused {
        status,
        code,
        message: message.into(),
    }
}

#[derive(Default)]
pub struct Groups {
    groups: BTreeMap<String, Group>,
    next: u64,
    limits: GroupLimits,
}

impl Groups {
    pub fn new(limits: GroupLimits) -> Groups {
        Groups {
            limits,
            ..Groups::default()
        }
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{:012}", self.next)
    }

    pub fn is_group(&self, id: &str) -> bool {
        self.groups.contains_key(id)
    }

    /// `POST /{number}/groups`: the answer (a request id) and the lifecycle webhook that
    /// completes it.
    pub fn create(
        &mut self,
        number: &str,
        body: &Value,
        now: u64,
    ) -> Result<(Value, GroupNews), Refused> {
        let subject = body["subject"].as_str().map(str::trim).unwrap_or("");
        if subject.is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS {
            return Err(refused(
                400,
                100,
                "subject is required, at most 128 characters",
            ));
        }
        let description = body["description"].as_str().unwrap_or("");
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(refused(400, 100, "description is at most 2,048 characters"));
        }
        let approval_required = match body["join_approval_mode"].as_str() {
            None | Some("auto_approve") => false,
            Some("approval_required") => true,
            Some(_) => return Err(refused(400, 100, "join_approval_mode is unknown")),
        };
        if self.groups.values().filter(|g| g.number == number).count() >= MAX_GROUPS_PER_NUMBER {
            return Err(refused(
                400,
                131_000,
                "the number has the most groups it may have",
            ));
        }
        let (request, id, link) = (
            self.next_id("REQ"),
            self.next_id("GROUP"),
            self.next_id("https://chat.whatsapp.com/LINK"),
        );
        self.groups.insert(
            id.clone(),
            Group {
                number: number.to_string(),
                subject: subject.to_string(),
                description: description.to_string(),
                approval_required,
                invite_link: link.clone(),
                participants: Vec::new(),
                join_requests: Vec::new(),
                last_inbound: 0,
            },
        );
        let mode = if approval_required {
            "approval_required"
        } else {
            "auto_approve"
        };
        let news = GroupNews {
            number: number.to_string(),
            field: "group_lifecycle_update",
            item: json!({ "timestamp": now.to_string(), "group_id": id, "type": "group_create",
                          "request_id": request, "subject": subject, "invite_link": link,
                          "join_approval_mode": mode }),
        };
        Ok((
            json!({ "messaging_product": "whatsapp", "request_id": request }),
            news,
        ))
    }

    /// `GET /{group}`: what Meta says of a group.
    pub fn info(&self, id: &str) -> Option<Value> {
        let g = self.groups.get(id)?;
        let participants: Vec<Value> = g
            .participants
            .iter()
            .map(|p| json!({ "wa_id": p }))
            .collect();
        Some(
            json!({ "id": id, "subject": g.subject, "description": g.description,
                     "participants": participants,
                     "total_participant_count": g.participants.len(),
                     "join_approval_mode": if g.approval_required { "approval_required" } else { "auto_approve" } }),
        )
    }

    /// Every group with its invite link and participants (mock-meta's `GET /mock/groups`).
    pub fn all(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|(id, g)| {
                json!({ "id": id, "phone_number_id": g.number, "invite_link": g.invite_link,
                        "participants": g.participants })
            })
            .collect();
        json!({ "data": groups })
    }

    /// `GET /{group}/invite_link`, or with `reset` (`POST`) a new link in place of the old.
    pub fn invite_link(&mut self, id: &str, reset: bool) -> Option<Value> {
        let link = if reset {
            Some(self.next_id("https://chat.whatsapp.com/LINK"))
        } else {
            None
        };
        let g = self.groups.get_mut(id)?;
        if let Some(link) = link {
            g.invite_link = link;
        }
        Some(json!({ "messaging_product": "whatsapp", "invite_link": g.invite_link }))
    }

    /// A person taps the group's invite link (mock-meta's own call, `POST /mock/group_join`):
    /// they join, or ask to when the group wants approval; full groups take nobody.
    pub fn tap_link(&mut self, link: &str, person: &str, now: u64) -> Result<GroupNews, Refused> {
        let request = self.next_id("JR");
        let (id, g) = self
            .groups
            .iter_mut()
            .find(|(_, g)| g.invite_link == link)
            .ok_or_else(|| refused(404, 100, "no group has this invite link"))?;
        if g.participants.iter().any(|p| p == person) {
            return Err(refused(400, 100, "already a participant"));
        }
        if g.participants.len() >= self.limits.max_participants {
            return Err(refused(400, 131_000, "the group is full"));
        }
        let item = if g.approval_required {
            g.join_requests
                .push((request.clone(), person.to_string(), now));
            json!({ "timestamp": now.to_string(), "group_id": id, "type": "group_join_request_created",
                    "join_request_id": request, "wa_id": person })
        } else {
            g.participants.push(person.to_string());
            added(id, person, now)
        };
        Ok(GroupNews {
            number: g.number.clone(),
            field: "group_participants_update",
            item,
        })
    }

    /// `GET /{group}/join_requests`.
    pub fn join_requests(&self, id: &str) -> Option<Value> {
        let g = self.groups.get(id)?;
        let data: Vec<Value> = g
            .join_requests
            .iter()
            .map(|(request, person, at)| {
                json!({ "join_request_id": request, "wa_id": person, "creation_timestamp": at })
            })
            .collect();
        Some(json!({ "data": data }))
    }

    /// `POST` (approve) or `DELETE` (reject) `/{group}/join_requests`: the answer and a
    /// webhook per person who joined.
    pub fn answer_join_requests(
        &mut self,
        id: &str,
        requests: &[String],
        approve: bool,
        now: u64,
    ) -> Option<(Value, Vec<GroupNews>)> {
        let g = self.groups.get_mut(id)?;
        let (mut done, mut failed, mut news) = (Vec::new(), Vec::new(), Vec::new());
        for request in requests {
            let Some(at) = g.join_requests.iter().position(|(r, _, _)| r == request) else {
                failed.push(json!({ "join_request_id": request,
                                    "errors": [{ "code": 100, "message": "no such join request" }] }));
                continue;
            };
            if approve && g.participants.len() >= self.limits.max_participants {
                failed.push(json!({ "join_request_id": request,
                                    "errors": [{ "code": 131_000, "message": "the group is full" }] }));
                continue;
            }
            let (_, person, _) = g.join_requests.remove(at);
            if approve {
                g.participants.push(person.clone());
                news.push(GroupNews {
                    number: g.number.clone(),
                    field: "group_participants_update",
                    item: added(id, &person, now),
                });
            }
            done.push(json!(request));
        }
        let key = if approve {
            "approved_join_requests"
        } else {
            "rejected_join_requests"
        };
        Some((
            json!({ "messaging_product": "whatsapp", key: done, "failed_join_requests": failed }),
            news,
        ))
    }

    /// `DELETE /{group}/participants`: the business removes people.
    pub fn remove(&mut self, id: &str, people: &[String], now: u64) -> Option<(Value, GroupNews)> {
        let g = self.groups.get_mut(id)?;
        let removed: Vec<&String> = people
            .iter()
            .filter(|p| g.participants.contains(p))
            .collect();
        g.participants.retain(|p| !people.contains(p));
        let list: Vec<Value> = removed.iter().map(|p| json!({ "wa_id": p })).collect();
        let news = GroupNews {
            number: g.number.clone(),
            field: "group_participants_update",
            item: json!({ "timestamp": now.to_string(), "group_id": id,
                          "type": "group_participants_remove", "removed_participants": list }),
        };
        Some((json!({ "success": true }), news))
    }

    /// `POST /{group}/participants`: the business adds people, where the rules let it (the
    /// seeds'; Meta's Groups API takes nobody this way).
    pub fn add(
        &mut self,
        id: &str,
        people: &[String],
        now: u64,
    ) -> Result<(Value, GroupNews), Refused> {
        let limits = self.limits;
        let g = self
            .groups
            .get_mut(id)
            .ok_or_else(|| refused(400, 100, "no such group"))?;
        if !limits.direct_add {
            return Err(refused(400, 100, "people join a group by its invite link"));
        }
        let new: Vec<&String> = people
            .iter()
            .filter(|p| !g.participants.contains(p))
            .collect();
        if g.participants.len() + new.len() > limits.max_participants {
            return Err(refused(400, 131_000, "the group is full"));
        }
        g.participants.extend(new.iter().map(|p| p.to_string()));
        let list: Vec<Value> = new
            .iter()
            .map(|p| json!({ "input": p, "wa_id": p }))
            .collect();
        let news = GroupNews {
            number: g.number.clone(),
            field: "group_participants_update",
            item: json!({ "timestamp": now.to_string(), "group_id": id, "type": "group_participants_add",
                          "reason": "added", "added_participants": list }),
        };
        Ok((json!({ "success": true }), news))
    }

    /// A participant leaves (mock-meta's own call, `POST /mock/group_leave`).
    pub fn leave(&mut self, id: &str, person: &str, now: u64) -> Option<GroupNews> {
        let g = self.groups.get_mut(id)?;
        let at = g.participants.iter().position(|p| p == person)?;
        g.participants.remove(at);
        Some(GroupNews {
            number: g.number.clone(),
            field: "group_participants_update",
            item: json!({ "timestamp": now.to_string(), "group_id": id,
                          "type": "group_participants_remove", "initiated_by": "participant",
                          "removed_participants": [{ "wa_id": person }] }),
        })
    }

    /// A participant writes in the group (mock-meta's own call, `POST /mock/group_message`):
    /// the group's number, if they are in it.
    pub fn inbound(&mut self, id: &str, person: &str, now: u64) -> Option<String> {
        let g = self.groups.get_mut(id)?;
        if !g.participants.iter().any(|p| p == person) {
            return None;
        }
        g.last_inbound = now;
        Some(g.number.clone())
    }

    /// A send of `number` to a group, judged as Meta judges it: the participants it reaches,
    /// or Meta's error code.
    pub fn send(&self, number: &str, body: &Value, now: u64) -> Result<Vec<String>, u32> {
        let id = body["to"].as_str().unwrap_or("");
        let g = self
            .groups
            .get(id)
            .filter(|g| g.number == number)
            .ok_or(100_u32)?;
        let kind = body["type"].as_str().unwrap_or("text");
        if !GROUP_TYPES.contains(&kind) {
            return Err(131_051);
        }
        if kind != "template" && (g.last_inbound == 0 || now >= g.last_inbound + GROUP_WINDOW_SECS)
        {
            return Err(131_047);
        }
        Ok(g.participants.clone())
    }

    /// `POST /{group}`: a new subject or description.
    pub fn settings(
        &mut self,
        id: &str,
        body: &Value,
        now: u64,
    ) -> Result<(Value, GroupNews), Refused> {
        let g = self
            .groups
            .get_mut(id)
            .ok_or_else(|| refused(400, 100, "no such group"))?;
        let mut item = json!({ "timestamp": now.to_string(), "group_id": id, "type": "group_settings_update" });
        if let Some(subject) = body["subject"].as_str() {
            if subject.trim().is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS {
                return Err(refused(400, 100, "subject is at most 128 characters"));
            }
            g.subject = subject.trim().to_string();
            item["subject"] = json!(g.subject);
        }
        if let Some(description) = body["description"].as_str() {
            if description.chars().count() > MAX_DESCRIPTION_CHARS {
                return Err(refused(400, 100, "description is at most 2,048 characters"));
            }
            g.description = description.to_string();
            item["description"] = json!(g.description);
        }
        let news = GroupNews {
            number: g.number.clone(),
            field: "group_settings_update",
            item,
        };
        Ok((json!({ "success": true }), news))
    }

    /// `DELETE /{group}`.
    pub fn delete(&mut self, id: &str, now: u64) -> Option<(Value, GroupNews)> {
        let g = self.groups.remove(id)?;
        let request = self.next_id("REQ");
        let news = GroupNews {
            number: g.number,
            field: "group_lifecycle_update",
            item: json!({ "timestamp": now.to_string(), "group_id": id, "type": "group_delete",
                          "request_id": request }),
        };
        Some((json!({ "success": true }), news))
    }
}

fn added(group: &str, person: &str, now: u64) -> Value {
    json!({ "timestamp": now.to_string(), "group_id": group, "type": "group_participants_add",
            "reason": "invite_link", "added_participants": [{ "input": person, "wa_id": person }] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_created_joined_by_link_and_approval_emptied_and_deleted_as_meta_tells_it() {
        let mut groups = Groups::default();
        let body = json!({ "messaging_product": "whatsapp", "subject": " Buyers ",
                           "join_approval_mode": "approval_required" });
        let (answer, created) = groups.create("1001", &body, 10).unwrap();
        assert!(answer["request_id"].is_string());
        assert_eq!(created.field, "group_lifecycle_update");
        assert_eq!(created.item["subject"], "Buyers");
        assert_eq!(created.item["request_id"], answer["request_id"]);
        let id = created.item["group_id"].as_str().unwrap().to_string();
        let link = created.item["invite_link"].as_str().unwrap().to_string();
        // Approval required: a tap asks; the business approves; the person is in.
        let asked = groups.tap_link(&link, "16505550001", 11).unwrap();
        assert_eq!(asked.item["type"], "group_join_request_created");
        let request = asked.item["join_request_id"].as_str().unwrap().to_string();
        assert_eq!(
            groups.join_requests(&id).unwrap()["data"][0]["wa_id"],
            "16505550001"
        );
        let (answer, joined) = groups
            .answer_join_requests(&id, std::slice::from_ref(&request), true, 12)
            .unwrap();
        assert_eq!(answer["approved_join_requests"], json!([request]));
        assert_eq!(joined[0].item["type"], "group_participants_add");
        assert_eq!(groups.info(&id).unwrap()["total_participant_count"], 1);
        // A reset link: the old one takes nobody.
        let new = groups.invite_link(&id, true).unwrap()["invite_link"].clone();
        assert_ne!(new, json!(link));
        assert_eq!(
            groups
                .tap_link(&link, "16505550002", 13)
                .unwrap_err()
                .status,
            404
        );
        // Eight at most.
        let new = new.as_str().unwrap().to_string();
        for i in 2..=8 {
            let asked = groups
                .tap_link(&new, &format!("165055500{i:02}"), 14)
                .unwrap();
            let request = asked.item["join_request_id"].as_str().unwrap().to_string();
            groups
                .answer_join_requests(&id, &[request], true, 14)
                .unwrap();
        }
        assert_eq!(
            groups.tap_link(&new, "16505550099", 15).unwrap_err().code,
            131_000
        );
        let (_, removed) = groups.remove(&id, &["16505550001".into()], 16).unwrap();
        assert_eq!(
            removed.item["removed_participants"][0]["wa_id"],
            "16505550001"
        );
        let (_, deleted) = groups.delete(&id, 17).unwrap();
        assert_eq!(deleted.item["type"], "group_delete");
        assert!(!groups.is_group(&id));
        // What Meta refuses.
        assert_eq!(groups.create("1001", &json!({}), 18).unwrap_err().code, 100);
        let long = json!({ "subject": "x".repeat(129) });
        assert_eq!(groups.create("1001", &long, 18).unwrap_err().code, 100);
    }
}
