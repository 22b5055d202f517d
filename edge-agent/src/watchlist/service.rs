//! The agent's side of watchlist sync: messages from the hub in, the held version reported back.
//!
//! The MQTT thread only verifies and parses ([`SyncInbox::handle`]): a flood of garbage costs a signature
//! check or a JSON parse per message and a counter, never a disk write, and never reaches the store. Only
//! messages signed by one of the hub keys in the agent's configuration, for this agent, get past it. Valid messages queue for the agent's
//! main loop ([`WatchlistService::tick`]), which applies them one at a time, purges expired entries, and
//! emits a `watchlist_status` event after every change or refusal so the hub knows what each agent holds.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint_protocol::signed::{self, HubKey, SignatureError};
use checkpoint_protocol::{EventKind, WatchlistStatus};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use time::OffsetDateTime;

use super::{
    parse_sync, ExactIndex, FaissIndex, ListKind, SyncError, SyncMessage, WatchlistError,
    WatchlistHandle, WatchlistStore,
};
use crate::config::{IndexChoice, WatchlistSection};
use crate::events::EventSink;
use crate::metrics::Metrics;

/// Valid sync messages waiting for the main loop. Only the hub can publish valid ones, and it sends a handful
/// per change; when the queue is full the MQTT thread waits, which holds back the broker rather than
/// dropping a list update.
const QUEUE: usize = 64;
/// Refusals logged one by one before the log switches to one line per this many.
const LOG_EACH_FIRST: u64 = 20;
const LOG_EVERY: u64 = 1000;
/// The status is repeated this often even without a change, so a hub that lost it catches up.
const STATUS_EVERY: Duration = Duration::from_secs(600);

/// Short reason label for metrics.
pub fn reason(e: &WatchlistError) -> &'static str {
    match e {
        WatchlistError::Invalid(s) => match s {
            SyncError::TooLarge { .. } => "too_large",
            SyncError::Malformed(_) => "malformed",
            SyncError::InvalidEntry { .. } => "invalid_entry",
            SyncError::InvalidThresholds(_) => "invalid_thresholds",
            SyncError::DuplicateId(_) => "duplicate_id",
            SyncError::Conflict(_) => "conflict",
            SyncError::VersionNotIncreasing { .. } => "version_not_increasing",
            SyncError::ImpossibleVersion(_) => "impossible_version",
        },
        WatchlistError::VersionGap { .. } => "version_gap",
        WatchlistError::Stale { .. } => "stale",
        WatchlistError::Io { .. } => "io",
        WatchlistError::Corrupt { .. } => "corrupt",
        WatchlistError::Locked(_) => "locked",
    }
}

/// Metric label of a refused signature.
pub fn signature_reason(e: &SignatureError) -> &'static str {
    match e {
        SignatureError::Unsigned => "unsigned",
        SignatureError::Malformed(_) => "malformed",
        SignatureError::UnknownKey(_) => "unknown_key",
        SignatureError::WrongDestination { .. } => "wrong_destination",
        SignatureError::BadSignature => "bad_signature",
        SignatureError::BadKey(_) => "bad_key",
    }
}

/// Whose sync messages the agent applies: signed by one of `keys`, addressed to this `site`/`agent`.
#[derive(Clone)]
pub struct SyncTrust {
    pub keys: Vec<HubKey>,
    pub site: String,
    pub agent: String,
}

impl SyncTrust {
    /// The sync message inside a signed envelope, if it verifies.
    pub fn open(&self, payload: &[u8]) -> Result<String, (&'static str, String)> {
        if self.keys.is_empty() {
            return Err((
                "no_hub_key",
                "no hub key is configured ([watchlist] hub_public_keys), so no sync is trusted"
                    .into(),
            ));
        }
        signed::verify(payload, &self.keys, &self.site, &self.agent)
            .map_err(|e| (signature_reason(&e), e.to_string()))
    }
}

/// Shared between the MQTT thread and the main loop.
#[derive(Default)]
struct Refusals {
    count: AtomicU64,
    last: Mutex<Option<String>>,
    needs_full: AtomicBool,
    changed: AtomicBool,
}

impl Refusals {
    fn record(&self, metrics: &Metrics, outcome: &str, message: String) {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        metrics.watchlist_outcome(outcome);
        if n <= LOG_EACH_FIRST {
            tracing::warn!(reason = outcome, error = %message, "watchlist sync message refused");
        } else if n.is_multiple_of(LOG_EVERY) {
            tracing::warn!(refused = n, last = %message, "watchlist sync messages keep being refused");
        }
        *self.last.lock() = Some(message);
        self.changed.store(true, Ordering::Relaxed);
    }
}

/// Takes messages from the agent's watchlist topics. Cheap to clone; safe to call from any thread.
#[derive(Clone)]
pub struct SyncInbox {
    sync_topic: String,
    trust: Arc<SyncTrust>,
    max_bytes: usize,
    tx: Sender<SyncMessage>,
    refusals: Arc<Refusals>,
    metrics: Arc<Metrics>,
}

impl SyncInbox {
    /// One MQTT message on `checkpoint/<site>/<agent>/watchlist/#`. Never panics, whatever the bytes.
    pub fn handle(&self, topic: &str, payload: &[u8]) {
        if topic != self.sync_topic {
            self.refusals.record(
                &self.metrics,
                "unknown_topic",
                format!("no watchlist message is expected on {topic}"),
            );
            return;
        }
        if payload.len() > self.max_bytes {
            let e = WatchlistError::from(SyncError::TooLarge {
                size: payload.len(),
                max: self.max_bytes,
            });
            self.refusals
                .record(&self.metrics, reason(&e), e.to_string());
            return;
        }
        let inner = match self.trust.open(payload) {
            Ok(inner) => inner,
            Err((label, message)) => {
                self.refusals.record(&self.metrics, label, message);
                return;
            }
        };
        match parse_sync(inner.as_bytes(), self.max_bytes) {
            Ok(msg) => {
                if self.tx.send(msg).is_err() {
                    tracing::warn!(
                        "watchlist sync arrived while the agent stops; the hub resends it"
                    );
                }
            }
            Err(e) => {
                let e = WatchlistError::from(e);
                self.refusals
                    .record(&self.metrics, reason(&e), e.to_string());
            }
        }
    }
}

/// The agent's watchlist: the store, the queue of messages to apply, and the status it reports.
pub struct WatchlistService {
    store: WatchlistStore,
    rx: Receiver<SyncMessage>,
    refusals: Arc<Refusals>,
    metrics: Arc<Metrics>,
    purge_every: Duration,
    next_purge: Instant,
    next_status: Instant,
}

impl WatchlistService {
    /// Opens the store in `cfg.dir`. A persisted file that cannot be used is moved aside (kept for
    /// inspection, never deleted) and the agent starts empty and asks for a full sync.
    pub fn open(
        cfg: &WatchlistSection,
        trust: SyncTrust,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, SyncInbox), WatchlistError> {
        if trust.keys.is_empty() {
            tracing::warn!(
                "no hub key in [watchlist] hub_public_keys: syncs from the hub are refused; only lists enrolled \
                 here match (add the key `central-hub agent add` printed)"
            );
        }
        let sync_topic = checkpoint_protocol::watchlist_sync_topic(&trust.site, &trust.agent);
        let store = match WatchlistStore::open(&cfg.dir) {
            Ok(s) => s,
            Err(WatchlistError::Corrupt { path, reason }) => {
                let aside = set_aside(&path)?;
                tracing::error!(
                    file = %path.display(), moved_to = %aside.display(), %reason,
                    "persisted watchlist unusable; moved aside, starting empty until the hub's full sync"
                );
                WatchlistStore::open(&cfg.dir)?
            }
            Err(e) => return Err(e),
        };
        let store = match cfg.index {
            IndexChoice::Faiss => store.with_index_builder(FaissIndex::builder()),
            IndexChoice::Exact => store.with_index_builder(ExactIndex::builder()),
        };
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let refusals = Arc::new(Refusals::default());
        // Nothing held yet: ask the hub for everything at the first report.
        refusals
            .needs_full
            .store(store.version() == 0, Ordering::Relaxed);
        let inbox = SyncInbox {
            sync_topic,
            trust: Arc::new(trust),
            max_bytes: cfg.max_sync_bytes,
            tx,
            refusals: refusals.clone(),
            metrics: metrics.clone(),
        };
        let now = Instant::now();
        let svc = Self {
            store,
            rx,
            refusals,
            metrics,
            purge_every: Duration::from_secs_f64(cfg.purge_interval_s),
            next_purge: now,
            next_status: now,
        };
        svc.mirror_metrics();
        Ok((svc, inbox))
    }

    /// Read access for the camera threads' matchers.
    pub fn handle(&self) -> WatchlistHandle {
        self.store.handle()
    }

    pub fn version(&self) -> u64 {
        self.store.version()
    }

    /// Applies queued messages, purges expired entries when due, and reports the status when something
    /// changed (or when it is due anyway) through `sink`.
    pub fn tick(&mut self, now: OffsetDateTime, sink: &EventSink) {
        let mut changed = self.refusals.changed.swap(false, Ordering::Relaxed);
        while let Ok(msg) = self.rx.try_recv() {
            changed = true;
            match self.store.apply(msg, now) {
                Ok(_) => {
                    self.metrics.watchlist_outcome("applied");
                    self.refusals.needs_full.store(false, Ordering::Relaxed);
                }
                Err(e) => {
                    if e.needs_full_sync() {
                        self.refusals.needs_full.store(true, Ordering::Relaxed);
                    }
                    self.refusals
                        .record(&self.metrics, reason(&e), e.to_string());
                    // `record` marked a change that this report already covers.
                    self.refusals.changed.store(false, Ordering::Relaxed);
                }
            }
        }
        let mut expired = Vec::new();
        if Instant::now() >= self.next_purge {
            self.next_purge = Instant::now() + self.purge_every;
            expired = self.store.purge_expired(now);
            changed |= !expired.is_empty();
        }
        if changed || Instant::now() >= self.next_status {
            self.report(expired, sink);
        }
    }

    fn report(&mut self, expired: Vec<String>, sink: &EventSink) {
        self.next_status = Instant::now() + STATUS_EVERY;
        self.mirror_metrics();
        let snap = self.store.snapshot();
        let (mut wanted, mut missing) = (0, 0);
        for e in snap.entries() {
            match e.list {
                ListKind::Wanted => wanted += 1,
                ListKind::Missing => missing += 1,
            }
        }
        sink.emit(EventKind::WatchlistStatus(WatchlistStatus {
            version: snap.version(),
            wanted,
            missing,
            templates: snap.templates() as u64,
            needs_full_sync: self.refusals.needs_full.load(Ordering::Relaxed),
            last_error: self.refusals.last.lock().clone(),
            rejected: self.refusals.count.load(Ordering::Relaxed),
            expired,
        }));
    }

    fn mirror_metrics(&self) {
        let snap = self.store.snapshot();
        self.metrics.watchlist_version.set(snap.version() as i64);
        for list in [ListKind::Wanted, ListKind::Missing] {
            let n = snap.entries().iter().filter(|e| e.list == list).count();
            self.metrics
                .watchlist_entries
                .get_or_create(&crate::metrics::ListLabel {
                    list: list_name(list).into(),
                })
                .set(n as i64);
        }
    }
}

pub fn list_name(list: ListKind) -> &'static str {
    list.as_str()
}

fn set_aside(path: &Path) -> Result<std::path::PathBuf, WatchlistError> {
    let stamp = OffsetDateTime::now_utc().unix_timestamp();
    let aside = path.with_extension(format!("json.unusable-{stamp}"));
    std::fs::rename(path, &aside).map_err(|source| WatchlistError::Io {
        op: "move aside",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchlist::testutil::entry;
    use crate::watchlist::{Thresholds, DEFAULT_MAX_SYNC_BYTES};

    struct Harness {
        svc: WatchlistService,
        inbox: SyncInbox,
        events: tempfile::NamedTempFile,
        sink: EventSink,
    }

    const TOPIC: &str = "checkpoint/s/a/watchlist/sync";

    /// The hub's key in these tests.
    fn hub() -> signed::SyncSigner {
        signed::SyncSigner::from_secret(&[7; 32])
    }

    fn signed_for(site: &str, agent: &str, msg: &SyncMessage) -> Vec<u8> {
        hub().sign(site, agent, serde_json::to_string(msg).unwrap())
    }

    fn sealed(msg: &SyncMessage) -> Vec<u8> {
        signed_for("s", "a", msg)
    }

    impl Harness {
        fn tick(&mut self) {
            self.svc.tick(OffsetDateTime::now_utc(), &self.sink);
        }
    }

    fn service(dir: &Path) -> Harness {
        let events = tempfile::NamedTempFile::new().unwrap();
        let sink = EventSink::open("s", "a", &events.path().display().to_string()).unwrap();
        let cfg = WatchlistSection {
            dir: dir.to_path_buf(),
            purge_interval_s: 3600.0,
            ..Default::default()
        };
        let trust = SyncTrust {
            keys: vec![HubKey::parse(&hub().public_key()).unwrap()],
            site: "s".into(),
            agent: "a".into(),
        };
        let (svc, inbox) = WatchlistService::open(&cfg, trust, Arc::new(Metrics::new())).unwrap();
        Harness {
            svc,
            inbox,
            events,
            sink,
        }
    }

    fn statuses(events: &tempfile::NamedTempFile) -> Vec<WatchlistStatus> {
        std::fs::read_to_string(events.path())
            .unwrap()
            .lines()
            .filter_map(|l| checkpoint_protocol::Envelope::from_json(l.as_bytes()).ok())
            .filter_map(|e| match e.event {
                EventKind::WatchlistStatus(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn sync_applies_in_the_main_loop_and_refusals_are_counted_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = service(dir.path());
        h.tick();
        let first = statuses(&h.events);
        assert_eq!(first.len(), 1);
        assert!(first[0].needs_full_sync && first[0].version == 0);

        let full = SyncMessage::Full {
            version: 5,
            entries: vec![
                entry("w1", ListKind::Wanted, 1),
                entry("m1", ListKind::Missing, 9),
            ],
            thresholds: Thresholds::default(),
            policies: None,
        };
        h.inbox.handle(TOPIC, &sealed(&full));
        // Parsed but not applied until the main loop runs.
        assert_eq!(h.svc.version(), 0);
        for i in 0..1000u32 {
            h.inbox
                .handle("checkpoint/s/a/watchlist/sync", &i.to_le_bytes());
        }
        h.inbox.handle("checkpoint/s/a/watchlist/other", b"{}");
        h.inbox.handle(
            "checkpoint/s/a/watchlist/sync",
            &vec![b' '; DEFAULT_MAX_SYNC_BYTES + 1],
        );
        h.tick();
        assert_eq!(h.svc.version(), 5);
        let last = statuses(&h.events).pop().unwrap();
        assert_eq!((last.version, last.wanted, last.missing), (5, 1, 1));
        assert_eq!(last.templates, 4);
        assert!(!last.needs_full_sync);
        assert_eq!(last.rejected, 1002);
        assert!(last.last_error.unwrap().contains("limit"));
        let text = h.svc.metrics.encode();
        assert!(
            text.contains("checkpoint_watchlist_sync_messages_total{outcome=\"malformed\"} 1000"),
            "{text}"
        );
        assert!(text.contains("outcome=\"unknown_topic\"} 1"), "{text}");
        assert!(text.contains("outcome=\"applied\"} 1"), "{text}");
        assert!(text.contains("checkpoint_watchlist_version 5"), "{text}");

        // A delta from a version the agent does not hold asks for a full sync.
        let gap = SyncMessage::Delta {
            base_version: 7,
            version: 8,
            add: vec![],
            remove: vec!["w1".into()],
            expire: vec![],
            policies: None,
            thresholds: None,
        };
        h.inbox.handle(TOPIC, &sealed(&gap));
        h.tick();
        let last = statuses(&h.events).pop().unwrap();
        assert!(last.needs_full_sync);
        assert_eq!(last.version, 5);
        assert!(last.last_error.unwrap().contains("full sync"));

        // The set survives a restart.
        drop(h);
        let h = service(dir.path());
        assert_eq!(h.svc.version(), 5);
        assert_eq!(h.svc.handle().snapshot().len(), 2);
    }

    /// Issue 12, finding 2: a retained, unsigned `full` with no entries, thresholds 1.0 and version u64::MAX
    /// was applied and saved, and every real sync was refused as stale from then on.
    #[test]
    fn only_syncs_the_hub_signed_for_this_agent_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = service(dir.path());
        let real = SyncMessage::Full {
            version: 1_800_000_000_000,
            entries: vec![entry("w1", ListKind::Wanted, 1)],
            thresholds: Thresholds::default(),
            policies: None,
        };
        h.inbox.handle(TOPIC, &sealed(&real));
        h.tick();
        assert_eq!(h.svc.version(), 1_800_000_000_000);

        let forged = br#"{"type":"full","version":18446744073709551615,"entries":[],"thresholds":{"wanted":1.0,"missing":1.0}}"#;
        h.inbox.handle(TOPIC, forged);
        // The same message signed by a key the agent does not trust.
        let stranger = signed::SyncSigner::from_secret(&[9; 32]);
        h.inbox.handle(
            TOPIC,
            &stranger.sign("s", "a", String::from_utf8_lossy(forged).into()),
        );
        // A genuine sync of the hub for another agent, replayed here.
        let newer = SyncMessage::Full {
            version: 1_800_000_000_500,
            entries: vec![],
            thresholds: Thresholds::default(),
            policies: None,
        };
        h.inbox.handle(TOPIC, &signed_for("s", "other", &newer));
        // Signed by the hub, but impossible: a version past MAX_VERSION, and blinding thresholds.
        let mut bad = newer.clone();
        if let SyncMessage::Full { version, .. } = &mut bad {
            *version = u64::MAX;
        }
        h.inbox.handle(TOPIC, &sealed(&bad));
        let mut blind = newer.clone();
        if let SyncMessage::Full { thresholds, .. } = &mut blind {
            *thresholds = Thresholds {
                wanted: 1.0,
                missing: 1.0,
            };
        }
        h.inbox.handle(TOPIC, &sealed(&blind));
        // An old signed full set, replayed: stale.
        let old = SyncMessage::Full {
            version: 1_700_000_000_000,
            entries: vec![],
            thresholds: Thresholds::default(),
            policies: None,
        };
        h.inbox.handle(TOPIC, &sealed(&old));
        h.tick();
        assert_eq!(h.svc.version(), 1_800_000_000_000);
        assert_eq!(
            h.svc.handle().snapshot().len(),
            1,
            "the real list still holds"
        );
        let text = h.svc.metrics.encode();
        for outcome in [
            "unsigned",
            "unknown_key",
            "wrong_destination",
            "impossible_version",
            "invalid_thresholds",
            "stale",
        ] {
            assert!(
                text.contains(&format!("outcome=\"{outcome}\"}} 1")),
                "{outcome}: {text}"
            );
        }
        // The hub's next real sync still applies.
        h.inbox.handle(TOPIC, &sealed(&newer));
        h.tick();
        assert_eq!(h.svc.version(), 1_800_000_000_500);
    }

    #[test]
    fn without_a_hub_key_no_sync_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = WatchlistSection {
            dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let trust = SyncTrust {
            keys: vec![],
            site: "s".into(),
            agent: "a".into(),
        };
        let (mut svc, inbox) =
            WatchlistService::open(&cfg, trust, Arc::new(Metrics::new())).unwrap();
        let full = SyncMessage::Full {
            version: 5,
            entries: vec![entry("w1", ListKind::Wanted, 1)],
            thresholds: Thresholds::default(),
            policies: None,
        };
        inbox.handle(TOPIC, &sealed(&full));
        let events = tempfile::NamedTempFile::new().unwrap();
        let sink = EventSink::open("s", "a", &events.path().display().to_string()).unwrap();
        svc.tick(OffsetDateTime::now_utc(), &sink);
        assert_eq!(svc.version(), 0);
        assert!(svc.metrics.encode().contains("outcome=\"no_hub_key\"} 1"));
    }

    #[test]
    fn an_unusable_file_is_moved_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("watchlist.json"),
            b"{ this is not a watchlist",
        )
        .unwrap();
        let h = service(dir.path());
        assert_eq!(h.svc.version(), 0);
        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("unusable"))
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            std::fs::read(kept[0].path()).unwrap(),
            b"{ this is not a watchlist"
        );
    }
}
