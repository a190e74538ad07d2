//! Failed logins are counted per username and per client address in a fixed window; past the
//! limit (0: no limit), logins for that key are refused with 429 and `Retry-After` until the
//! window ends, so passwords cannot be guessed at speed. The counts live in this instance's memory, bounded:
//! expired windows are dropped when the table grows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many tracked keys, expired windows are swept before adding another.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    per_username: u32,
    per_address: u32,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginLimiter {
    pub fn new(window: Duration, per_username: u32, per_address: u32) -> LoginLimiter {
        LoginLimiter { window, per_username, per_address, failures: Mutex::new(HashMap::new()) }
    }

    fn keys(username: &str, address: Option<IpAddr>) -> impl Iterator<Item = String> {
        std::iter::once(format!("user {username}")).chain(address.map(|a| format!("address {a}")))
    }

    fn limit_of(&self, key: &str) -> u32 {
        if key.starts_with("user ") {
            self.per_username
        } else {
            self.per_address
        }
    }

    /// `Err(wait)` while `username` or `address` has used up its failures.
    pub(crate) fn check(&self, username: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        let failures = self.failures.lock().expect("login limiter lock");
        let now = Instant::now();
        let wait = Self::keys(username, address)
            .filter_map(|key| {
                let (started, count) = failures.get(&key)?;
                let (ends, limit) = (*started + self.window, self.limit_of(&key));
                (limit > 0 && now < ends && *count >= limit).then(|| ends - now)
            })
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failed login against `username` and `address`.
    pub fn failed(&self, username: &str, address: Option<IpAddr>) {
        let mut failures = self.failures.lock().expect("login limiter lock");
        let now = Instant::now();
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, (started, _)| now < *started + self.window);
        }
        for key in Self::keys(username, address) {
            let entry = failures.entry(key).or_insert((now, 0));
            if now >= entry.0 + self.window {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_limit_wait_for_the_window_per_username_and_address() {
        let limiter = LoginLimiter::new(Duration::from_millis(200), 3, 5);
        let (here, there) = (Some("10.0.0.1".parse().unwrap()), Some("10.0.0.2".parse().unwrap()));
        for _ in 0..3 {
            assert!(limiter.check("ann", here).is_ok());
            limiter.failed("ann", here);
        }
        let wait = limiter.check("ann", there).unwrap_err();
        assert!(wait <= Duration::from_millis(200) && wait > Duration::ZERO);
        assert!(limiter.check("bob", here).is_ok(), "another name from the same address");
        limiter.failed("bob", here);
        limiter.failed("cy", here);
        assert!(limiter.check("dee", here).is_err(), "the address used up its five failures");
        assert!(limiter.check("dee", there).is_ok());
        std::thread::sleep(Duration::from_millis(210));
        assert!(limiter.check("ann", here).is_ok(), "a new window");
        let unlimited = LoginLimiter::new(Duration::from_secs(60), 0, 0);
        (0..100).for_each(|_| unlimited.failed("ann", here));
        assert!(unlimited.check("ann", here).is_ok(), "0 turns a limit off");
    }
}
