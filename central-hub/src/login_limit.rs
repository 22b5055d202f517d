//! How many password guesses a login may cost before the hub makes the guesser wait.
//!
//! Three counters, each a streak of failures: per account from one address (a guesser at one machine),
//! per address over all accounts (one machine spraying many names) and per account over all addresses (many
//! machines on one name). Each allows some free failures, then doubles the wait after every further one,
//! up to a cap; a streak is forgotten once it has been quiet for [`WINDOW`] past its wait. There is no hard
//! lock: a guesser elsewhere can delay an account for at most the cap, and an address that has signed in to an
//! account before skips that account's all-addresses counter, so an attack on an admin's name from other
//! machines does not keep the admin out.
//!
//! An attempt is counted as a failure *before* its password is checked ([`LoginLimiter::begin`]), under one
//! lock: concurrent guesses cannot all read the same count and all be checked. A success clears the
//! account's counters.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A streak of failures is forgotten this long after the wait it earned has passed.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The first wait after the free failures; each further failure doubles it.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// Streaks kept per counter at most, so a flood of made-up names cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;
/// Addresses remembered per account as having signed in before.
const KNOWN_PER_ACCOUNT: usize = 8;

/// Free failures before waits begin, and the longest wait.
#[derive(Clone, Copy, Debug)]
pub struct LoginLimits {
    pub per_account_address: u32,
    pub per_address: u32,
    pub per_account: u32,
    pub max_wait: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_account_address: 5,
            per_address: 20,
            per_account: 50,
            max_wait: WINDOW,
        }
    }
}

/// Which counter refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    AccountAddress,
    Address,
    Account,
}

impl Scope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::AccountAddress => "account_address",
            Scope::Address => "address",
            Scope::Account => "account",
        }
    }
}

/// Why an attempt may not be checked yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub scope: Scope,
    pub retry_after: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Streak {
    failures: u32,
    last: Instant,
}

impl Streak {
    /// The wait this streak has earned, counted from its last failure.
    fn wait(&self, free: u32, max_wait: Duration) -> Duration {
        if self.failures < free {
            return Duration::ZERO;
        }
        let doublings = (self.failures - free).min(31);
        FIRST_WAIT.saturating_mul(1 << doublings).min(max_wait)
    }

    fn forgotten(&self, free: u32, max_wait: Duration, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= self.wait(free, max_wait) + WINDOW
    }
}

/// One counter: streaks by key.
struct Counter<K> {
    free: u32,
    streaks: HashMap<K, Streak>,
}

impl<K: Eq + Hash + Clone> Counter<K> {
    fn new(free: u32) -> Self {
        Self {
            free,
            streaks: HashMap::new(),
        }
    }

    /// How long `key` must still wait, if at all.
    fn refusal(&mut self, key: &K, max_wait: Duration, now: Instant) -> Option<Duration> {
        let s = *self.streaks.get(key)?;
        if s.forgotten(self.free, max_wait, now) {
            self.streaks.remove(key);
            return None;
        }
        let until = s.last + s.wait(self.free, max_wait);
        (until > now).then(|| until - now)
    }

    fn fail(&mut self, key: &K, max_wait: Duration, now: Instant) {
        if !self.streaks.contains_key(key) && self.streaks.len() >= MAX_KEYS {
            self.make_room(max_wait, now);
        }
        let s = self.streaks.entry(key.clone()).or_insert(Streak {
            failures: 0,
            last: now,
        });
        s.failures = s.failures.saturating_add(1);
        s.last = now;
    }

    /// Drops forgotten streaks, else the stalest one: under a flood of names the counter stays bounded and
    /// keeps the streaks most likely to matter.
    fn make_room(&mut self, max_wait: Duration, now: Instant) {
        let free = self.free;
        self.streaks
            .retain(|_, s| !s.forgotten(free, max_wait, now));
        if self.streaks.len() >= MAX_KEYS {
            if let Some(k) = self
                .streaks
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
            {
                self.streaks.remove(&k);
            }
            tracing::warn!("login limiter full: dropped its stalest streak");
        }
    }

    fn clear(&mut self, key: &K) {
        self.streaks.remove(key);
    }

    /// Takes back the failure counted for an attempt that turned out right.
    fn refund(&mut self, key: &K) {
        if let Some(s) = self.streaks.get_mut(key) {
            s.failures = s.failures.saturating_sub(1);
            if s.failures == 0 {
                self.streaks.remove(key);
            }
        }
    }

    fn len(&self) -> usize {
        self.streaks.len()
    }
}

struct State {
    pair: Counter<(String, IpAddr)>,
    address: Counter<IpAddr>,
    account: Counter<String>,
    /// Addresses that signed in to an account: they skip its all-addresses counter.
    known: HashMap<String, VecDeque<IpAddr>>,
}

pub struct LoginLimiter {
    limits: LoginLimits,
    state: Mutex<State>,
}

/// The address a limit applies to: IPv6 clients by their /64 (one subscriber's usual allocation), IPv4
/// as is, an IPv4-mapped IPv6 address as the IPv4 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(State {
                pair: Counter::new(limits.per_account_address),
                address: Counter::new(limits.per_address),
                account: Counter::new(limits.per_account),
                known: HashMap::new(),
            }),
        }
    }

    /// Admits an attempt and counts it as a failure until [`Self::succeeded`] says otherwise; or says how
    /// long to wait. `account` must already be bounded in length (the caller refuses long names first).
    pub fn begin(&self, account: &str, ip: IpAddr, now: Instant) -> Result<(), Throttled> {
        let ip = address_key(ip);
        let max = self.limits.max_wait;
        let mut st = self.state.lock();
        let pair_key = (account.to_string(), ip);
        let account_key = account.to_string();
        let known = st.known.get(account).is_some_and(|k| k.contains(&ip));
        let refusal = [
            (Scope::AccountAddress, st.pair.refusal(&pair_key, max, now)),
            (Scope::Address, st.address.refusal(&ip, max, now)),
            (
                Scope::Account,
                if known {
                    None
                } else {
                    st.account.refusal(&account_key, max, now)
                },
            ),
        ]
        .into_iter()
        .filter_map(|(scope, wait)| wait.map(|w| (scope, w)))
        .max_by_key(|(_, w)| *w);
        if let Some((scope, retry_after)) = refusal {
            return Err(Throttled { scope, retry_after });
        }
        st.pair.fail(&pair_key, max, now);
        st.address.fail(&ip, max, now);
        if !known {
            st.account.fail(&account_key, max, now);
        }
        Ok(())
    }

    /// The attempt admitted by [`Self::begin`] had the right password: the account's streaks end and the
    /// address is remembered for the account. The address's streak only loses this attempt, so signing in to
    /// one valid account cannot wash a sprayer's record.
    pub fn succeeded(&self, account: &str, ip: IpAddr) {
        let ip = address_key(ip);
        let mut st = self.state.lock();
        st.pair.clear(&(account.to_string(), ip));
        st.account.clear(&account.to_string());
        st.address.refund(&ip);
        if !st.known.contains_key(account) && st.known.len() >= MAX_KEYS {
            return;
        }
        let known = st.known.entry(account.to_string()).or_default();
        if !known.contains(&ip) {
            if known.len() >= KNOWN_PER_ACCOUNT {
                known.pop_front();
            }
            known.push_back(ip);
        }
    }

    /// Streaks held, all counters together.
    pub fn len(&self) -> usize {
        let st = self.state.lock();
        st.pair.len() + st.address.len() + st.account.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            per_account_address: 5,
            per_address: 20,
            per_account: 50,
            max_wait: Duration::from_secs(900),
        })
    }

    #[test]
    fn attempts_are_counted_before_the_check_so_a_burst_gets_only_the_free_ones() {
        let l = limiter();
        let t = Instant::now();
        // 150 guesses at the same instant (as concurrent requests would be): none has finished, so none
        // could have recorded its failure afterwards.
        let admitted = (0..150)
            .filter(|_| l.begin("admin", ip("10.0.0.9"), t).is_ok())
            .count();
        assert_eq!(admitted, 5);
        let refused = l.begin("admin", ip("10.0.0.9"), t).unwrap_err();
        assert_eq!(refused.scope, Scope::AccountAddress);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
    }

    #[test]
    fn waits_double_up_to_the_cap_and_then_the_streak_is_forgotten() {
        let l = limiter();
        let a = ip("10.0.0.9");
        let mut t = Instant::now();
        for _ in 0..5 {
            l.begin("bob", a, t).unwrap();
        }
        let mut waits = Vec::new();
        for _ in 0..12 {
            let w = l.begin("bob", a, t).unwrap_err().retry_after;
            waits.push(w.as_secs());
            t += w;
            l.begin("bob", a, t).unwrap();
        }
        assert_eq!(
            waits,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900],
            "doubling, capped at max_wait"
        );
        // Quiet for the wait plus the window: a fresh start.
        t += Duration::from_secs(900) + WINDOW;
        for _ in 0..5 {
            l.begin("bob", a, t).unwrap();
        }
    }

    #[test]
    fn failures_elsewhere_do_not_lock_the_owner_out() {
        let l = limiter();
        let t = Instant::now();
        let owner = ip("192.0.2.10");
        l.begin("admin", owner, t).unwrap();
        l.succeeded("admin", owner);
        // A botnet: 400 addresses, 5 guesses each at the admin account.
        for i in 0..400u32 {
            let attacker = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            for _ in 0..5 {
                let _ = l.begin("admin", attacker, t);
            }
        }
        let fresh = ip("198.51.100.7");
        assert_eq!(
            l.begin("admin", fresh, t).unwrap_err().scope,
            Scope::Account,
            "unknown addresses wait on the attacked account"
        );
        l.begin("admin", owner, t)
            .expect("the owner's known address is not held back by others' failures");
        // One address guessing one account does not touch others.
        let t2 = t + Duration::from_millis(1);
        let guesser = ip("203.0.113.5");
        for _ in 0..30 {
            let _ = l.begin("carol", guesser, t2);
        }
        l.begin("dave", ip("203.0.113.6"), t2).unwrap();
    }

    #[test]
    fn one_address_spraying_many_names_is_slowed() {
        let l = limiter();
        let t = Instant::now();
        let a = ip("10.1.1.1");
        let admitted = (0..100)
            .filter(|i| l.begin(&format!("user{i}"), a, t).is_ok())
            .count();
        assert_eq!(admitted, 20);
        assert_eq!(l.begin("zed", a, t).unwrap_err().scope, Scope::Address);
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let l = limiter();
        let t = Instant::now();
        let a = ip("10.2.2.2");
        for _ in 0..5 {
            l.begin("erin", a, t).unwrap();
        }
        l.succeeded("erin", a);
        for _ in 0..5 {
            l.begin("erin", a, t).unwrap();
        }
        assert_eq!(
            l.begin("erin", a, t).unwrap_err().scope,
            Scope::AccountAddress
        );
        // 9 failures stand against the address (the right attempt was taken back): 11 more names, then wait.
        for i in 0..11 {
            l.begin(&format!("n{i}"), a, t).unwrap();
        }
        assert_eq!(l.begin("zed", a, t).unwrap_err().scope, Scope::Address);
    }

    #[test]
    fn successful_logins_do_not_count_against_an_office() {
        let l = limiter();
        let t = Instant::now();
        let office = ip("10.3.3.3");
        for i in 0..200 {
            let user = format!("clerk{}", i % 40);
            l.begin(&user, office, t).unwrap();
            l.succeeded(&user, office);
        }
        assert!(l.is_empty());
    }

    #[test]
    fn ipv6_neighbours_share_a_key() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            address_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_eq!(address_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }
}
