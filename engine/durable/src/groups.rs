//! wagate's mirror of the groups of its numbers (Meta's Groups API), as Meta last said: each
//! group's number, subject, description, join approval mode, invite link, participants and
//! open join requests, when a participant last wrote (the group's service window), and the
//! creations Meta has not completed yet. Meta's webhooks are the facts it is built from, each
//! applied once (a group remembers the identities of its latest changes); what a call's answer
//! says (a new invite link, a new subject) is applied too. Every change is written (synced)
//! before it is answered; the whole mirror is read at start.
//!
//! Also here: what each participant's status of a group message is (`recipient_participant_id`).
//!
//! Keys in [`Family::Groups`]: `g` + group id (a group), `c` + request id (a creation under
//! way), `s` + Meta's message id + `/` + participant (a participant's status), `i` + Meta's id
//! of a message a participant wrote in a group.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::early_status::StatusWrites;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wagate_rules::ids::PhoneNumberId;
use wagate_store::{Batch, Family, Store, StoreError};

/// How long a creation Meta has not completed counts toward the number's groups: Meta
/// completes one within seconds; one it never completed stops counting after this.
pub const CREATION_SECS: u64 = 86_400;
/// How long the ids of messages written in groups are kept (for refusing read marks of them):
/// Meta takes no read mark of a message older than this.
pub const GROUP_MESSAGE_SECS: u64 = 30 * 86_400;

/// The changes a group remembers, to apply a retry of Meta's once: groups change seldom, and
/// Meta retries for days, not thousands of changes later.
const REMEMBERED_CHANGES: usize = 256;

/// A group as Meta last said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub number: u64,
    pub subject: String,
    #[serde(default)]
    pub description: String,
    pub join_approval_mode: String,
    #[serde(default)]
    pub invite_link: Option<String>,
    /// Participants by WhatsApp id.
    pub participants: BTreeSet<String>,
    /// Open join requests: request id to the person asking.
    #[serde(default)]
    pub join_requests: BTreeMap<String, String>,
    /// Meta's word on the group's state (`group_status_update`), if it said one.
    #[serde(default)]
    pub status: Option<String>,
    /// When a participant last wrote in the group (Unix seconds; 0: never).
    #[serde(default)]
    pub last_inbound: u64,
    /// The latest changes applied (their identities), newest last.
    #[serde(default)]
    applied: VecDeque<u64>,
}

impl Group {
    pub fn number(&self) -> PhoneNumberId {
        PhoneNumberId(self.number)
    }
}

/// A creation asked of Meta and not completed yet (`group_lifecycle_update` completes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creating {
    pub request_id: String,
    pub number: u64,
    pub subject: String,
    pub description: String,
    pub join_approval_mode: String,
    /// When it was asked (Unix seconds).
    pub at: u64,
}

/// What a group webhook's item came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupApplied {
    Applied,
    /// Applied before (Meta's retry).
    Repeat,
    /// About no group wagate knows (another number's, or one deleted), or of no kind it keeps.
    Ignored,
}

#[derive(Default)]
struct Book {
    groups: HashMap<String, Group>,
    creating: HashMap<String, Creating>,
}

/// The mirror (see the module's documentation).
pub struct GroupBook {
    store: Arc<dyn Store>,
    book: Mutex<Book>,
}

fn key(prefix: u8, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + id.len());
    key.push(prefix);
    key.extend_from_slice(id.as_bytes());
    key
}

fn identity(field: &str, item: &Value) -> u64 {
    // serde_json's maps are ordered: the same item always prints the same.
    let text = format!("{field}:{item}");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn people(list: &Value) -> impl Iterator<Item = String> + '_ {
    list.as_array().into_iter().flatten().filter_map(|p| {
        p["wa_id"]
            .as_str()
            .or_else(|| p.as_str())
            .map(str::to_string)
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl GroupBook {
    /// Reads the mirror from `store` at `now` (Unix seconds), forgetting what has lapsed:
    /// creations older than [`CREATION_SECS`], group messages' ids older than
    /// [`GROUP_MESSAGE_SECS`].
    pub fn load(store: Arc<dyn Store>, now: u64) -> Result<GroupBook, StoreError> {
        let mut book = Book::default();
        let mut lapsed = Batch::default();
        store.scan(Family::Groups, b"c", b"d", &mut |key, value| {
            match serde_json::from_slice::<Creating>(value) {
                Ok(creating) if creating.at + CREATION_SECS > now => {
                    book.creating.insert(creating.request_id.clone(), creating);
                }
                _ => lapsed.delete(Family::Groups, key),
            }
            true
        })?;
        store.scan(Family::Groups, b"i", b"j", &mut |key, value| {
            let at = value.try_into().map_or(0, u64::from_be_bytes);
            if at + GROUP_MESSAGE_SECS <= now {
                lapsed.delete(Family::Groups, key);
            }
            true
        })?;
        if !lapsed.is_empty() {
            store.write(&lapsed, true)?;
        }
        store.scan(Family::Groups, b"g", b"h", &mut |_, value| {
            if let Ok(group) = serde_json::from_slice::<Group>(value) {
                book.groups.insert(group.id.clone(), group);
            }
            true
        })?;
        Ok(GroupBook {
            store,
            book: Mutex::new(book),
        })
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The group, as Meta last said.
    pub fn group(&self, id: &str) -> Option<Group> {
        self.book().groups.get(id).cloned()
    }

    /// The groups of `number` and the creations under way for it at `now` (Unix seconds; one
    /// Meta never completed stops counting after [`CREATION_SECS`]).
    pub fn count_of(&self, number: PhoneNumberId, now: u64) -> usize {
        let book = self.book();
        book.groups
            .values()
            .filter(|g| g.number == number.0)
            .count()
            + book
                .creating
                .values()
                .filter(|c| c.number == number.0 && c.at + CREATION_SECS > now)
                .count()
    }

    /// The groups of `number`, by id.
    pub fn groups_of(&self, number: PhoneNumberId) -> Vec<Group> {
        let mut groups: Vec<Group> = (self.book().groups.values())
            .filter(|g| g.number == number.0)
            .cloned()
            .collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        groups
    }

    /// Notes a creation Meta accepted (its answer's `request_id`).
    pub fn creating(&self, creating: Creating) -> Result<(), StoreError> {
        let mut book = self.book();
        let mut batch = Batch::default();
        batch.put(
            Family::Groups,
            key(b'c', &creating.request_id),
            encode(&creating),
        );
        self.store.write(&batch, true)?;
        book.creating.insert(creating.request_id.clone(), creating);
        Ok(())
    }

    /// Changes the group with `change` and writes it (nothing when the group is unknown).
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Group) -> bool,
    ) -> Result<bool, StoreError> {
        let mut book = self.book();
        let Some(group) = book.groups.get(id) else {
            return Ok(false);
        };
        let mut next = group.clone();
        if !change(&mut next) {
            return Ok(false);
        }
        let mut batch = Batch::default();
        batch.put(Family::Groups, key(b'g', id), encode(&next));
        self.store.write(&batch, true)?;
        book.groups.insert(id.to_string(), next);
        Ok(true)
    }

    /// A participant wrote in the group at `at` (Unix seconds) the message Meta knows as
    /// `wamid`: the group's service window opens, and the message is noted as a group's
    /// (read marks are not taken for it).
    pub fn inbound(&self, id: &str, at: u64, wamid: &str) -> Result<bool, StoreError> {
        if !wamid.is_empty() && self.book().groups.contains_key(id) {
            let mut batch = Batch::default();
            batch.put(Family::Groups, key(b'i', wamid), at.to_be_bytes());
            self.store.write(&batch, true)?;
        }
        self.update(id, |group| {
            let later = at > group.last_inbound;
            group.last_inbound = group.last_inbound.max(at);
            later
        })
    }

    /// Whether Meta's message `wamid` was written in one of the groups.
    pub fn is_group_message(&self, wamid: &str) -> Result<bool, StoreError> {
        Ok(self.store.get(Family::Groups, &key(b'i', wamid))?.is_some())
    }

    /// Applies one item of a Groups API webhook about a group of `number`.
    pub fn apply(
        &self,
        number: PhoneNumberId,
        field: &str,
        item: &Value,
    ) -> Result<GroupApplied, StoreError> {
        let identity = identity(field, item);
        let Some(id) = item["group_id"].as_str() else {
            return Ok(GroupApplied::Ignored);
        };
        let kind = item["type"].as_str().unwrap_or("");
        let mut book = self.book();
        let mut batch = Batch::default();
        if field == "group_lifecycle_update" && kind == "group_create" {
            // Completes a creation asked through wagate (or made elsewhere for this number).
            if book.groups.contains_key(id) {
                return Ok(GroupApplied::Repeat);
            }
            let request = item["request_id"].as_str().unwrap_or("");
            let creating = book.creating.remove(request);
            batch.delete(Family::Groups, key(b'c', request));
            if item.get("errors").is_some() {
                self.store.write(&batch, true)?;
                return Ok(GroupApplied::Applied);
            }
            let text = |name: &str, asked: Option<&str>| {
                item[name]
                    .as_str()
                    .or(asked)
                    .unwrap_or_default()
                    .to_string()
            };
            let group = Group {
                id: id.to_string(),
                number: number.0,
                subject: text("subject", creating.as_ref().map(|c| c.subject.as_str())),
                description: text(
                    "description",
                    creating.as_ref().map(|c| c.description.as_str()),
                ),
                join_approval_mode: text(
                    "join_approval_mode",
                    creating.as_ref().map(|c| c.join_approval_mode.as_str()),
                ),
                invite_link: item["invite_link"].as_str().map(str::to_string),
                participants: BTreeSet::new(),
                join_requests: BTreeMap::new(),
                status: None,
                last_inbound: 0,
                applied: VecDeque::from([identity]),
            };
            batch.put(Family::Groups, key(b'g', id), encode(&group));
            self.store.write(&batch, true)?;
            book.groups.insert(id.to_string(), group);
            tracing::info!(group = id, number = number.0, "Meta created a group");
            return Ok(GroupApplied::Applied);
        }
        let Some(group) = book.groups.get(id).filter(|g| g.number == number.0) else {
            return Ok(GroupApplied::Ignored);
        };
        if group.applied.contains(&identity) {
            return Ok(GroupApplied::Repeat);
        }
        let mut next = group.clone();
        match (field, kind) {
            ("group_lifecycle_update", "group_delete") => {
                batch.delete(Family::Groups, key(b'g', id));
                self.store.write(&batch, true)?;
                book.groups.remove(id);
                tracing::info!(group = id, number = number.0, "Meta deleted a group");
                return Ok(GroupApplied::Applied);
            }
            ("group_participants_update", "group_participants_add") => {
                for person in people(&item["added_participants"]) {
                    next.join_requests.retain(|_, asking| *asking != person);
                    next.participants.insert(person);
                }
            }
            ("group_participants_update", "group_participants_remove") => {
                for person in people(&item["removed_participants"]) {
                    next.participants.remove(&person);
                }
            }
            ("group_participants_update", "group_join_request_created") => {
                if let (Some(request), Some(person)) =
                    (item["join_request_id"].as_str(), item["wa_id"].as_str())
                {
                    next.join_requests
                        .insert(request.to_string(), person.to_string());
                }
            }
            ("group_participants_update", "group_join_request_revoked")
            | ("group_participants_update", "group_join_request_rejected") => {
                if let Some(request) = item["join_request_id"].as_str() {
                    next.join_requests.remove(request);
                }
            }
            ("group_settings_update", _) => {
                for (name, field) in [
                    ("subject", &mut next.subject),
                    ("description", &mut next.description),
                    ("join_approval_mode", &mut next.join_approval_mode),
                ] {
                    if let Some(text) = item[name].as_str() {
                        *field = text.to_string();
                    }
                }
            }
            ("group_status_update", _) => {
                next.status = item["status"].as_str().or(Some(kind)).map(str::to_string);
            }
            _ => return Ok(GroupApplied::Ignored),
        }
        next.applied.push_back(identity);
        if next.applied.len() > REMEMBERED_CHANGES {
            next.applied.pop_front();
        }
        batch.put(Family::Groups, key(b'g', id), encode(&next));
        self.store.write(&batch, true)?;
        book.groups.insert(id.to_string(), next);
        Ok(GroupApplied::Applied)
    }

    /// Records a participant's status of the group message Meta knows as `wamid`, with the
    /// other statuses of a webhook group (`writes`, written together), if it moves it forward
    /// (sent, delivered, read; failed stands). True when it moved.
    pub(crate) fn participant_status(
        &self,
        writes: &mut StatusWrites,
        wamid: &str,
        participant: &str,
        status: &str,
    ) -> Result<bool, StoreError> {
        let rank = |status: &[u8]| match status {
            b"sent" => 1,
            b"delivered" => 2,
            b"read" | b"played" => 3,
            b"failed" => 4,
            _ => 0,
        };
        let key = key(b's', &format!("{wamid}/{participant}"));
        let now = writes.participant_status(self.store.as_ref(), &key)?;
        if now.is_some_and(|now| rank(&now) >= rank(status.as_bytes())) {
            return Ok(false);
        }
        writes.set_participant_status(key, status.as_bytes().to_vec());
        Ok(true)
    }

    /// Each participant's status of the group message Meta knows as `wamid`.
    pub fn participant_statuses(&self, wamid: &str) -> Result<Vec<(String, String)>, StoreError> {
        let start = key(b's', &format!("{wamid}/"));
        let end = key(b's', &format!("{wamid}0"));
        let mut out = Vec::new();
        self.store
            .scan(Family::Groups, &start, &end, &mut |key, value| {
                let participant = String::from_utf8_lossy(&key[start.len()..]).into_owned();
                out.push((participant, String::from_utf8_lossy(value).into_owned()));
                true
            })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn book() -> (Arc<dyn Store>, GroupBook) {
        let store: Arc<dyn Store> = Arc::new(wagate_store::MemoryStore::default());
        let book = GroupBook::load(store.clone(), 1).unwrap();
        (store, book)
    }

    #[test]
    fn a_group_is_built_from_meta_s_webhooks_each_once_and_read_back_after_a_restart() {
        let (store, book) = book();
        let number = PhoneNumberId(1001);
        book.creating(Creating {
            request_id: "R1".into(),
            number: 1001,
            subject: "Buyers".into(),
            description: "d".into(),
            join_approval_mode: "approval_required".into(),
            at: 1,
        })
        .unwrap();
        assert_eq!(book.count_of(number, 2), 1);
        assert_eq!(
            book.count_of(number, 1 + CREATION_SECS),
            0,
            "never completed: lapsed"
        );
        let created = json!({ "group_id": "G1", "type": "group_create", "request_id": "R1",
                              "invite_link": "https://chat.whatsapp.com/L1" });
        let field = "group_lifecycle_update";
        assert_eq!(
            book.apply(number, field, &created).unwrap(),
            GroupApplied::Applied
        );
        assert_eq!(
            book.apply(number, field, &created).unwrap(),
            GroupApplied::Repeat
        );
        assert_eq!(book.count_of(number, 2), 1, "the creation became the group");
        let participants = "group_participants_update";
        let add = json!({ "group_id": "G1", "type": "group_participants_add",
                          "added_participants": [{ "wa_id": "1650" }] });
        let remove = json!({ "group_id": "G1", "type": "group_participants_remove",
                             "removed_participants": [{ "wa_id": "1650" }] });
        assert_eq!(
            book.apply(number, participants, &add).unwrap(),
            GroupApplied::Applied
        );
        assert_eq!(
            book.apply(number, participants, &remove).unwrap(),
            GroupApplied::Applied
        );
        // Meta's retry of the add, after the removal, does not bring them back.
        assert_eq!(
            book.apply(number, participants, &add).unwrap(),
            GroupApplied::Repeat
        );
        assert!(book.group("G1").unwrap().participants.is_empty());
        // Another number's webhook about the group changes nothing.
        let other = json!({ "group_id": "G1", "type": "group_participants_add",
                            "added_participants": [{ "wa_id": "1651" }] });
        assert_eq!(
            book.apply(PhoneNumberId(7), participants, &other).unwrap(),
            GroupApplied::Ignored
        );
        book.apply(number, participants, &other).unwrap();
        book.inbound("G1", 50, "wamid.in").unwrap();
        assert!(book.is_group_message("wamid.in").unwrap());
        assert!(!book.is_group_message("wamid.other").unwrap());
        let reopened = GroupBook::load(store.clone(), 60).unwrap();
        let group = reopened.group("G1").unwrap();
        assert_eq!(group.subject, "Buyers");
        assert_eq!(group.join_approval_mode, "approval_required");
        assert_eq!(group.participants, BTreeSet::from(["1651".to_string()]));
        assert_eq!(group.last_inbound, 50);
        let status = json!({ "group_id": "G1", "type": "group_suspend", "status": "SUSPENDED" });
        assert_eq!(
            reopened
                .apply(number, "group_status_update", &status)
                .unwrap(),
            GroupApplied::Applied
        );
        let settings =
            json!({ "group_id": "G1", "type": "group_settings_update", "subject": "Sellers" });
        reopened
            .apply(number, "group_settings_update", &settings)
            .unwrap();
        let group = reopened.group("G1").unwrap();
        assert_eq!(
            (group.status.as_deref(), group.subject.as_str()),
            (Some("SUSPENDED"), "Sellers")
        );
        let delete = json!({ "group_id": "G1", "type": "group_delete" });
        assert_eq!(
            reopened.apply(number, field, &delete).unwrap(),
            GroupApplied::Applied
        );
        assert_eq!(reopened.group("G1"), None);
        assert_eq!(reopened.count_of(number, 61), 0);
        // A month on, the group message's id and a creation never completed are forgotten.
        reopened
            .creating(Creating {
                request_id: "R2".into(),
                number: 1001,
                subject: "Later".into(),
                description: String::new(),
                join_approval_mode: "auto_approve".into(),
                at: 100,
            })
            .unwrap();
        let month = GroupBook::load(store, 50 + GROUP_MESSAGE_SECS).unwrap();
        assert!(!month.is_group_message("wamid.in").unwrap());
        assert!(month.book().creating.is_empty());
    }

    #[test]
    fn a_participant_s_status_only_moves_forward() {
        let (store, book) = book();
        let cards = wagate_rules::profile::Profile::whatsapp_2025().rate_cards;
        let mut writes = StatusWrites::new(cards.clone());
        assert!(book
            .participant_status(&mut writes, "w1", "1650", "delivered")
            .unwrap());
        assert!(!book
            .participant_status(&mut writes, "w1", "1650", "sent")
            .unwrap());
        writes.flush(store.as_ref()).unwrap();
        let mut writes = StatusWrites::new(cards);
        assert!(!book
            .participant_status(&mut writes, "w1", "1650", "sent")
            .unwrap());
        assert!(book
            .participant_status(&mut writes, "w1", "1650", "read")
            .unwrap());
        assert!(book
            .participant_status(&mut writes, "w1", "1651", "delivered")
            .unwrap());
        assert!(book
            .participant_status(&mut writes, "w10", "1652", "sent")
            .unwrap());
        writes.flush(store.as_ref()).unwrap();
        assert_eq!(
            book.participant_statuses("w1").unwrap(),
            [
                ("1650".to_string(), "read".to_string()),
                ("1651".to_string(), "delivered".to_string())
            ]
        );
    }
}
