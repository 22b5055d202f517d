//! Argon2 away from the async workers. One hash takes tens of milliseconds of CPU and 19 MiB: run inline it
//! stalls every request on that worker (`/healthz` included), and run unbounded a login burst would take
//! every core and gigabytes. Hashes run on the blocking pool, at most `permits` at once; a request that
//! cannot get a turn within [`QUEUE_WAIT`] is refused as busy instead of queueing without end.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OnceCell, Semaphore};

use crate::auth::{hash_password, verify_password, AuthError};

/// Longest a request waits for a hashing turn.
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);

pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Hashes running now (a Prometheus gauge, shared with the metrics registry).
    pub in_flight: Gauge,
    /// Password verifications done, real or dummy.
    pub verifications: Counter,
    /// A hash of a password nobody has, checked when the username is unknown so that an unknown name costs
    /// the same as a wrong password.
    dummy: OnceCell<String>,
}

/// Hashing threads when the configuration leaves it to the hub: half the cores, at least one, so a burst
/// leaves the other half to the async workers.
pub fn default_permits() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .max(1)
}

impl Hasher {
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            in_flight: Gauge::default(),
            verifications: Counter::default(),
            dummy: OnceCell::new(),
        }
    }

    /// Runs `job` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| AuthError::Busy)?
            .map_err(|_| AuthError::Busy)?;
        let gauge = self.in_flight.clone();
        // The permit and the gauge live in the blocking task: a request dropped mid-hash (client gone) must
        // not free a turn while its hash still runs.
        tokio::task::spawn_blocking(move || {
            gauge.inc();
            let out = job();
            gauge.dec();
            drop(permit);
            out
        })
        .await
        .map_err(|e| AuthError::Hash(format!("hashing task failed: {e}")))
    }

    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let password = password.to_string();
        self.run(move || hash_password(&password)).await?
    }

    /// Checks `password` against `phc`, or against the dummy hash when there is no user: the same work
    /// either way.
    pub async fn verify(&self, password: &str, phc: Option<String>) -> Result<bool, AuthError> {
        let (phc, real) = match phc {
            Some(p) => (p, true),
            None => (self.dummy().await?.clone(), false),
        };
        let password = password.to_string();
        let ok = self.run(move || verify_password(&password, &phc)).await?;
        self.verifications.inc();
        Ok(ok && real)
    }

    async fn dummy(&self) -> Result<&String, AuthError> {
        self.dummy
            .get_or_try_init(|| async {
                let secret = uuid::Uuid::new_v4().simple().to_string();
                self.hash(&secret).await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn the_async_thread_runs_other_tasks_while_a_password_is_checked() {
        // One async thread: a hash computed on it would leave `probe` no chance to run until it finished.
        let h = Arc::new(Hasher::new(1));
        let phc = hash_password("correct horse battery").unwrap();
        let check = {
            let h = h.clone();
            tokio::spawn(async move { h.verify("wrong guess here", Some(phc)).await })
        };
        let probe = {
            let h = h.clone();
            tokio::spawn(async move {
                loop {
                    if h.in_flight.get() > 0 {
                        return true;
                    }
                    if h.verifications.get() > 0 {
                        return false;
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        assert!(
            probe.await.unwrap(),
            "another task ran while the hash was in flight"
        );
        assert!(!check.await.unwrap().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_permits_hashes_run_at_once() {
        let h = Arc::new(Hasher::new(2));
        let phc = hash_password("correct horse battery").unwrap();
        let peak = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let watcher = {
            let (h, peak) = (h.clone(), peak.clone());
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(h.in_flight.get(), std::sync::atomic::Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        let checks: Vec<_> = (0..8)
            .map(|_| {
                let (h, phc) = (h.clone(), phc.clone());
                tokio::spawn(async move { h.verify("nope nope nope", Some(phc)).await })
            })
            .collect();
        for c in checks {
            assert!(!c.await.unwrap().unwrap());
        }
        watcher.abort();
        let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
        assert!((1..=2).contains(&peak), "peak {peak}");
        assert_eq!(h.verifications.get(), 8);
    }

    #[tokio::test]
    async fn an_unknown_user_costs_one_real_verification_and_never_passes() {
        let h = Hasher::new(1);
        assert!(!h.verify("anything at all", None).await.unwrap());
        assert_eq!(h.verifications.get(), 1);
        // Not even the dummy's own password could pass: it is random and thrown away.
    }
}
