//! Session tokens (`W<worker>.` and 32 hex digits) and the tokens of sessions that ended.

use std::collections::{HashSet, VecDeque};

use coflux_core::model::WorkerId;

/// How many ended sessions' tokens are remembered.
const ENDED_LIMIT: usize = 4_096;

/// The tokens of the latest sessions that ended on this node (at most [`ENDED_LIMIT`]).
#[derive(Debug, Default)]
pub(super) struct EndedTokens {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl EndedTokens {
    /// Remembers `token`, forgetting the oldest past the limit.
    pub(super) fn insert(&mut self, token: String) {
        if self.set.insert(token.clone()) {
            self.order.push_back(token);
            if self.order.len() > ENDED_LIMIT
                && let Some(oldest) = self.order.pop_front()
            {
                self.set.remove(&oldest);
            }
        }
    }

    /// Whether `token` is remembered.
    pub(super) fn contains(&self, token: &str) -> bool {
        self.set.contains(token)
    }
}

/// A session token: its worker, then 128 random bits (`W….hex`). The worker part lets a
/// restarted server tell which worker an agent's lost session was ([`worker_of`]).
pub(super) fn new_token(worker: WorkerId) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let random: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{worker}.{random}")
}

/// The worker of a session token made by this server (also one from before a restart).
pub fn worker_of(token: &str) -> Option<WorkerId> {
    token.split_once('.')?.0.parse().ok()
}

/// The worker of a well-formed session token (`W<worker>.` and 32 hex digits): one a node
/// that does not hold it may resume (made before a restart, or by the project's former
/// node).
pub fn resumable(token: &str) -> Option<WorkerId> {
    let (_, random) = token.split_once('.')?;
    if random.len() != 32 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    worker_of(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_token_names_its_worker() {
        let token = new_token(WorkerId(123_456));
        assert_eq!(worker_of(&token), Some(WorkerId(123_456)));
        assert_ne!(token, new_token(WorkerId(123_456)), "random");
        assert_eq!(worker_of("0123abcd"), None, "a token of an older server");
        assert_eq!(worker_of("Wzz!.00"), None);
        assert_eq!(resumable(&token), Some(WorkerId(123_456)));
        assert_eq!(resumable("W123456.00"), None, "too short");
        assert_eq!(
            resumable(&format!("W1.{}", "g".repeat(32))),
            None,
            "not hex"
        );
    }

    #[test]
    fn ended_tokens_are_remembered_up_to_the_limit() {
        let mut ended = EndedTokens::default();
        for i in 0..=ENDED_LIMIT {
            ended.insert(format!("t{i}"));
        }
        assert!(!ended.contains("t0"), "the oldest is forgotten");
        assert!(ended.contains("t1") && ended.contains(&format!("t{ENDED_LIMIT}")));
    }
}
