//! [`Servers`]: the addresses an agent may connect to, and which one it tries next.
//!
//! The configured addresses (`--server a,b,c`) come first, then the nodes the cluster told the
//! agent about ([`ServerFrame::Nodes`](coflux_core::protocol::agent::ServerFrame::Nodes)),
//! without repeats. The agent stays on the address that works; when a connection attempt fails
//! it moves to the next one, and backs off only once a whole round failed.

/// The agent's server addresses, as WebSocket URLs of the agent endpoint.
#[derive(Debug, Clone)]
pub struct Servers {
    configured: Vec<String>,
    learned: Vec<String>,
    /// Index into the configured addresses followed by the learned ones.
    current: usize,
    /// Failed attempts since the last success (a full round is `len()` of them).
    failures: usize,
}

impl Servers {
    /// The configured addresses (at least one), already agent endpoint URLs.
    pub fn new(configured: Vec<String>) -> Self {
        let mut servers = Self {
            configured: Vec::new(),
            learned: Vec::new(),
            current: 0,
            failures: 0,
        };
        for url in configured {
            if !servers.configured.contains(&url) {
                servers.configured.push(url);
            }
        }
        servers
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        self.configured.iter().chain(&self.learned)
    }

    /// How many addresses there are.
    fn len(&self) -> usize {
        self.configured.len() + self.learned.len()
    }

    /// The address to try now.
    pub fn current(&self) -> Option<&str> {
        self.all().nth(self.current).map(String::as_str)
    }

    /// The learned addresses (those not configured).
    #[cfg(test)]
    fn learned(&self) -> &[String] {
        &self.learned
    }

    /// A connection to the current address worked: stay on it.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// An attempt on the current address failed: move to the next one. Returns whether a
    /// whole round has now failed (then back off before the next attempt).
    pub fn failed(&mut self) -> bool {
        let len = self.len().max(1);
        self.current = (self.current + 1) % len;
        self.failures += 1;
        if self.failures >= len {
            self.failures = 0;
            return true;
        }
        false
    }

    /// Replaces the learned addresses (a new session's list of live nodes), keeping the current
    /// address current if it is still listed.
    pub fn learn(&mut self, urls: impl IntoIterator<Item = String>) {
        let current = self.current().map(str::to_owned);
        self.learned.clear();
        for url in urls {
            if !self.configured.contains(&url) && !self.learned.contains(&url) {
                self.learned.push(url);
            }
        }
        self.current = current
            .and_then(|c| self.all().position(|u| *u == c))
            .unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(urls: &[&str]) -> Servers {
        Servers::new(urls.iter().map(|u| u.to_string()).collect())
    }

    #[test]
    fn tries_each_address_in_turn_and_backs_off_after_a_full_round() {
        let mut s = servers(&["ws://a/agent", "ws://b/agent", "ws://a/agent"]);
        assert_eq!(s.len(), 2, "repeated addresses are dropped");
        assert_eq!(s.current(), Some("ws://a/agent"));
        assert!(!s.failed());
        assert_eq!(s.current(), Some("ws://b/agent"));
        assert!(s.failed(), "both failed: a full round");
        assert_eq!(s.current(), Some("ws://a/agent"));
    }

    #[test]
    fn stays_on_the_address_that_works() {
        let mut s = servers(&["ws://a/agent", "ws://b/agent"]);
        assert!(!s.failed());
        s.succeeded();
        assert_eq!(s.current(), Some("ws://b/agent"));
        // After a success the round starts again from there.
        assert!(!s.failed());
        assert_eq!(s.current(), Some("ws://a/agent"));
        assert!(s.failed());
    }

    #[test]
    fn learned_nodes_follow_the_configured_ones_without_repeats() {
        let mut s = servers(&["ws://a/agent"]);
        s.learn(
            [
                "ws://a/agent",
                "ws://b/agent",
                "ws://c/agent",
                "ws://b/agent",
            ]
            .map(String::from),
        );
        assert_eq!(s.learned(), ["ws://b/agent", "ws://c/agent"]);
        assert_eq!(s.current(), Some("ws://a/agent"));
        // The configured node dies: the learned ones are tried next, then a round is over.
        assert!(!s.failed());
        assert_eq!(s.current(), Some("ws://b/agent"));
        assert!(!s.failed());
        assert_eq!(s.current(), Some("ws://c/agent"));
        assert!(s.failed());
        assert_eq!(s.current(), Some("ws://a/agent"));
    }

    #[test]
    fn a_new_list_replaces_the_learned_one_and_keeps_the_current_address() {
        let mut s = servers(&["ws://a/agent"]);
        s.learn(["ws://b/agent", "ws://c/agent"].map(String::from));
        s.failed();
        s.failed();
        s.succeeded();
        assert_eq!(s.current(), Some("ws://c/agent"));
        // Node b left the cluster, d joined: c stays current.
        s.learn(["ws://d/agent", "ws://c/agent"].map(String::from));
        assert_eq!(s.learned(), ["ws://d/agent", "ws://c/agent"]);
        assert_eq!(s.current(), Some("ws://c/agent"));
        // The current node is no longer listed: start again from the configured ones.
        s.learn(["ws://d/agent".to_owned()]);
        assert_eq!(s.current(), Some("ws://a/agent"));
    }
}
