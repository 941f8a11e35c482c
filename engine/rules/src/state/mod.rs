//! Shard-owned state: contact records, their table, and the expiry queues of the 24 h count.

pub mod contact;
pub mod contact_table;
pub mod expiry;
