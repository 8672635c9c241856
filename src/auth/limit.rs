//! Login rate limiting per username and per client address (governor's GCRA).
//!
//! Failures consume quota; a key whose quota runs out is blocked until governor says it may
//! try again. Blocking is checked *before* the password is verified, so a correct password
//! during a lockout gets the same 429 and an attacker learns nothing from the answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct LoginLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    blocked: Mutex<HashMap<String, Instant>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        let burst = NonZeroU32::new(max_failures.max(1)).expect("max(1) is non-zero");
        let period = window / burst.get();
        let quota = Quota::with_period(period.max(Duration::from_millis(1)))
            .expect("period is non-zero")
            .allow_burst(burst);
        LoginLimiter {
            limiter: RateLimiter::keyed(quota),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    fn keys(username: &str, ip: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![format!("user:{}", username.trim().to_lowercase())];
        if let Some(ip) = ip {
            keys.push(format!("ip:{ip}"));
        }
        keys
    }

    /// Seconds to wait if this username or address is blocked now.
    pub fn blocked_for(&self, username: &str, ip: Option<IpAddr>) -> Option<u64> {
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked.retain(|_, until| *until > now);
        Self::keys(username, ip)
            .iter()
            .filter_map(|k| blocked.get(k))
            .max()
            .map(|until| until.duration_since(now).as_secs().max(1))
    }

    /// Record a failed attempt; returns the wait in seconds when this failure used up a quota.
    pub fn record_failure(&self, username: &str, ip: Option<IpAddr>) -> Option<u64> {
        let clock = DefaultClock::default();
        let mut wait: Option<Duration> = None;
        for key in Self::keys(username, ip) {
            if let Err(not_until) = self.limiter.check_key(&key) {
                let d = not_until.wait_time_from(clock.now());
                wait = Some(wait.map_or(d, |w| w.max(d)));
                self.blocked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, Instant::now() + d);
            }
        }
        wait.map(|d| d.as_secs().max(1))
    }

    /// Drop state of keys that have fully recovered (called periodically).
    pub fn housekeeping(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}
