//! The operator console's sessions (`console`) and live streams: who signed in (the admin
//! token, or the read-only operator token), their CSRF token, and until when. Kept in memory
//! (a restart signs everyone out), at most [`MAX_SESSIONS`], each for [`SESSION_TTL`] of real
//! time; the ids and CSRF tokens are 32 random bytes from the operating system.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sessions kept at once; the oldest goes first beyond it.
pub(crate) const MAX_SESSIONS: usize = 1_000;
/// How long a sign-in lasts.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3_600);

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Everything the admin API allows.
    Admin,
    /// Read only.
    Operator,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) role: Role,
    pub(crate) csrf: String,
    opened: Instant,
}

/// The console's state in the server: its sessions and its live streams.
#[derive(Default)]
pub(crate) struct Console {
    pub(crate) sessions: Sessions,
    /// Live streams open now (at most the console's `live::MAX_STREAMS`).
    pub(crate) live_streams: AtomicUsize,
}

impl Console {
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        self.sessions.get(id)
    }
}

#[derive(Default)]
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes from the operating system, as hex.
fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens a session for `role`: its id (the cookie's value) and the session.
    pub(crate) fn open(&self, role: Role) -> std::io::Result<(String, Session)> {
        let (id, csrf) = (random_hex()?, random_hex()?);
        let session = Session {
            role,
            csrf,
            opened: Instant::now(),
        };
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.opened.elapsed() < SESSION_TTL);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.opened)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The live session `id` names.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let mut sessions = self.lock();
        match sessions.get(id) {
            Some(session) if session.opened.elapsed() < SESSION_TTL => Some(session.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    pub(crate) fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_closed_and_sessions_stay_bounded() {
        let sessions = Sessions::default();
        let (id, session) = sessions.open(Role::Operator).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        assert_eq!(sessions.get(&id).map(|s| s.role), Some(Role::Operator));
        assert!(sessions.get("forged").is_none());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
        for _ in 0..MAX_SESSIONS + 5 {
            sessions.open(Role::Admin).unwrap();
        }
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
    }
}
