//! Login throttling: exponential backoff per client address and per account name.
//!
//! The first few failures cost nothing (people mistype); after that each failure doubles the
//! wait before the next attempt is even checked, up to 15 minutes. Account names are tracked
//! whether or not the account exists, so throttling reveals nothing about which names are
//! real. State is in memory and bounded: a restart forgives everyone, and a flood of names
//! evicts the oldest entries rather than growing without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before any waiting.
const FREE_FAILURES: u32 = 3;
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Entries forgotten after this long without a failure.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
const MAX_ENTRIES: usize = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    Address(IpAddr),
    Account(String),
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// When the next attempt may be checked.
    fn next_allowed(&self) -> Instant {
        self.last + delay_after(self.count)
    }
}

/// The wait imposed after `failures` consecutive failures.
pub fn delay_after(failures: u32) -> Duration {
    if failures <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let exponent = (failures - FREE_FAILURES - 1).min(20);
    Duration::from_secs(1u64 << exponent).min(MAX_DELAY)
}

#[derive(Default)]
pub struct Throttle {
    entries: Mutex<HashMap<Key, Failures>>,
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle::default()
    }

    fn keys(address: IpAddr, account: &str) -> [Key; 2] {
        [Key::Address(address), Key::Account(account.to_lowercase())]
    }

    /// `Err(wait)` if this address or account must wait before trying again.
    pub fn check(&self, address: IpAddr, account: &str, now: Instant) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let wait = Self::keys(address, account)
            .iter()
            .filter_map(|k| entries.get(k))
            .map(|f| f.next_allowed().saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    pub fn failed(&self, address: IpAddr, account: &str, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if entries.len() >= MAX_ENTRIES {
                if let Some(oldest) = entries.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| k.clone()) {
                    entries.remove(&oldest);
                }
            }
        }
        for key in Self::keys(address, account) {
            let entry = entries.entry(key).or_insert(Failures { count: 0, last: now });
            if now.duration_since(entry.last) >= FORGET_AFTER {
                entry.count = 0;
            }
            entry.count += 1;
            entry.last = now;
        }
    }

    /// A successful login clears both counters.
    pub fn succeeded(&self, address: IpAddr, account: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for key in Self::keys(address, account) {
            entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 5));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 9));

    #[test]
    fn delays_double_after_the_free_failures() {
        let delays: Vec<u64> = (0..8).map(|n| delay_after(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 0, 1, 2, 4, 8]);
        assert_eq!(delay_after(100), MAX_DELAY);
    }

    #[test]
    fn throttles_by_address_and_by_account() {
        let throttle = Throttle::new();
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(throttle.check(HOME, "ann", t0).is_ok());
            throttle.failed(HOME, "ann", t0);
        }
        assert_eq!(throttle.check(HOME, "ann", t0), Err(Duration::from_secs(1)));
        assert!(throttle.check(HOME, "bob", t0).is_err(), "the address is throttled for every name");
        assert!(throttle.check(OTHER, "ANN", t0).is_err(), "the account is throttled from everywhere");
        assert!(throttle.check(OTHER, "bob", t0).is_ok());
        assert!(throttle.check(HOME, "ann", t0 + Duration::from_secs(1)).is_ok());
        throttle.succeeded(HOME, "ann");
        assert!(throttle.check(HOME, "ann", t0).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let throttle = Throttle::new();
        let t0 = Instant::now();
        for i in 0..(MAX_ENTRIES + 50) {
            throttle.failed(HOME, &format!("user{i}"), t0 + Duration::from_millis(i as u64));
        }
        assert!(throttle.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
