//! Login rate limiting per username and per client address (governor's GCRA).
//!
//! Failures consume quota; a key whose quota runs out is blocked until governor says it may
//! try again. Blocking is checked *before* the password is verified, so a correct password
//! during a lockout gets the same 429 and an attacker learns nothing from the answer.
//!
//! An attempt is reserved before it is verified: [`LoginLimiter::attempt`] holds the username's
//! and the address's turn until the verdict is recorded, so attempts on one key are judged one
//! after another and a burst of parallel guesses gets no more tries than a sequential attacker
//! (60 concurrent guesses: 5 verified, 55 refused). Only attempts on the same key wait: the
//! username's turn always, the address's only once it has failed within the window, so a clean
//! address behind which many people log in (a NAT, a load test) is never serialised.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct LoginLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    blocked: Mutex<HashMap<String, Instant>>,
    /// One turn per key: who is being verified now.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Keys with a failure in the last window (their attempts take turns).
    failed: Mutex<HashMap<String, Instant>>,
    window: Duration,
}

/// A reserved attempt: the keys' turns, held until the verdict is recorded (dropped).
pub struct Attempt {
    _turns: Vec<tokio::sync::OwnedMutexGuard<()>>,
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
            turns: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            window,
        }
    }

    /// Reserve an attempt for this username and address: waits while another attempt on the
    /// same key is being verified. Check [`blocked_for`](Self::blocked_for) and record the
    /// failure while holding it.
    pub async fn attempt(&self, username: &str, ip: Option<IpAddr>) -> Attempt {
        let mut turns = vec![];
        // Always in the same order (username, then address): no two attempts deadlock.
        let now = Instant::now();
        let keys = Self::keys(username, ip);
        let takes_turns: Vec<String> = {
            let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            keys.into_iter()
                .enumerate()
                .filter(|(i, k)| *i == 0 || failed.get(k).is_some_and(|at| *at > now))
                .map(|(_, k)| k)
                .collect()
        };
        for key in takes_turns {
            let turn = self
                .turns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default()
                .clone();
            turns.push(turn.lock_owned().await);
        }
        Attempt { _turns: turns }
    }

    fn keys(username: &str, ip: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![format!("user:{}", username.trim().to_lowercase())];
        if let Some(ip) = ip {
            keys.push(format!("ip:{ip}"));
        }
        keys
    }

    /// How many attempts for this username hold or wait for its turn now.
    pub fn attempts_in_flight(&self, username: &str) -> usize {
        let key = &Self::keys(username, None)[0];
        self.turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .map_or(0, |t| Arc::strong_count(t) - 1)
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
        let until = Instant::now() + self.window;
        for key in Self::keys(username, ip) {
            self.failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), until);
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
        // A turn nobody holds or waits for is only held by the map.
        self.turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, turn| Arc::strong_count(turn) > 1);
        let now = Instant::now();
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, until| *until > now);
    }
}
