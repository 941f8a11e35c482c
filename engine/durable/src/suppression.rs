//! The suppression list: people erased from a business, kept only as a salted hash so that a
//! re-import cannot silently opt them back in, while nothing on disk says who they were.
//!
//! The hash is HMAC-SHA-256 over (business, person) under a 32-byte salt drawn from the
//! operating system once per data directory (kept in the `meta` family), cut to 16 bytes.
//! Without the salt, a phone number cannot be tried against the list; with the data directory
//! whole, it can (as any keyed hash of a number could): the salt protects exports and backups
//! of the list, not a stolen disk.

use std::collections::HashMap;
use std::io::Read;
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wagate_rules::ids::{AccountId, Msisdn};
use wagate_store::keys::registry_kind;
use wagate_store::{Batch, Family, Store, StoreError};

use crate::family_scan::everything;

const SALT_KEY: &[u8] = b"suppression_salt";
const SALT_LEN: usize = 32;
/// The stored hash's length: 128 bits, no collision among any number of people on Earth.
pub(crate) const HASH_LEN: usize = 16;

pub(crate) type PersonHash = [u8; HASH_LEN];

pub(crate) struct Suppression {
    salt: [u8; SALT_LEN],
    /// Hash to the erasure's Unix seconds.
    erased: RwLock<HashMap<PersonHash, u64>>,
}

fn fresh_salt() -> Result<[u8; SALT_LEN], StoreError> {
    let mut salt = [0u8; SALT_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut salt))
        .map_err(|e| StoreError::Io(format!("cannot draw the suppression salt: {e}")))?;
    Ok(salt)
}

fn list_key(hash: &PersonHash) -> [u8; 1 + HASH_LEN] {
    let mut key = [0u8; 1 + HASH_LEN];
    key[0] = registry_kind::SUPPRESSED;
    key[1..].copy_from_slice(hash);
    key
}

impl Suppression {
    /// The list in `store` (its salt drawn and kept on first use).
    pub(crate) fn load(store: &dyn Store) -> Result<Suppression, StoreError> {
        let salt = match store.get(Family::Meta, SALT_KEY)? {
            Some(bytes) => bytes.as_slice().try_into().map_err(|_| {
                StoreError::Corrupt(format!("suppression salt has {} bytes", bytes.len()))
            })?,
            None => {
                let salt = fresh_salt()?;
                let mut batch = Batch::default();
                batch.put(Family::Meta, SALT_KEY, salt);
                store.write(&batch, true)?;
                salt
            }
        };
        let mut erased = HashMap::new();
        everything(store, Family::Registry, |key, value| {
            if key.len() == 1 + HASH_LEN && key[0] == registry_kind::SUPPRESSED {
                let at = value.try_into().map_or(0, u64::from_be_bytes);
                erased.insert(key[1..].try_into().expect("16 bytes"), at);
            }
        })?;
        Ok(Suppression {
            salt,
            erased: RwLock::new(erased),
        })
    }

    pub(crate) fn hash(&self, account: AccountId, person: Msisdn) -> PersonHash {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.salt).expect("any key length");
        mac.update(&account.0.to_be_bytes());
        mac.update(&person.digits().to_be_bytes());
        mac.finalize().into_bytes()[..HASH_LEN]
            .try_into()
            .expect("16 of 32 bytes")
    }

    /// When `person` was erased from `account`, if they are on the list.
    pub(crate) fn erased_at(&self, account: AccountId, person: Msisdn) -> Option<u64> {
        let erased = self.erased.read().unwrap_or_else(|e| e.into_inner());
        if erased.is_empty() {
            return None;
        }
        erased.get(&self.hash(account, person)).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.erased.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Puts `hash` on the list in `batch`; [`Suppression::note`] once it is durable.
    pub(crate) fn write(batch: &mut Batch, hash: &PersonHash, at: u64) {
        batch.put(Family::Registry, list_key(hash), at.to_be_bytes());
    }

    /// Takes `hash` off the list in `batch` (a fresh opt-in); [`Suppression::forget`] once
    /// durable.
    pub(crate) fn write_lift(batch: &mut Batch, hash: &PersonHash) {
        batch.delete(Family::Registry, list_key(hash));
    }

    pub(crate) fn note(&self, hash: PersonHash, at: u64) {
        let mut erased = self.erased.write().unwrap_or_else(|e| e.into_inner());
        erased.insert(hash, at);
    }

    pub(crate) fn forget(&self, hash: &PersonHash) {
        let mut erased = self.erased.write().unwrap_or_else(|e| e.into_inner());
        erased.remove(hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_store::MemoryStore;

    #[test]
    fn the_list_survives_a_reload_under_the_same_salt_and_names_no_one() {
        let store = MemoryStore::default();
        let list = Suppression::load(&store).unwrap();
        let (business, person) = (AccountId(7), Msisdn::parse("+16505550001").unwrap());
        let hash = list.hash(business, person);
        assert_ne!(hash, list.hash(AccountId(8), person), "per business");
        let mut batch = Batch::default();
        Suppression::write(&mut batch, &hash, 1_000);
        store.write(&batch, true).unwrap();
        list.note(hash, 1_000);
        assert_eq!(list.erased_at(business, person), Some(1_000));

        let again = Suppression::load(&store).unwrap();
        assert_eq!(again.erased_at(business, person), Some(1_000));
        let mut stored = Vec::new();
        everything(&store, Family::Registry, |key, _| stored.push(key.to_vec())).unwrap();
        let digits = person.digits().to_be_bytes();
        assert!(stored
            .iter()
            .all(|key| !key.windows(digits.len()).any(|w| w == digits)));

        let other = MemoryStore::default();
        assert_ne!(
            Suppression::load(&other).unwrap().hash(business, person),
            hash,
            "each data directory draws its own salt"
        );
    }
}
