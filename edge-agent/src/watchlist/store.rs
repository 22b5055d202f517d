//! The agent's copy of the watchlist: applied atomically, persisted before use, published to the cameras as
//! immutable snapshots.
//!
//! One [`WatchlistStore`] owns the directory and is the only writer (the sync task). Camera threads hold a
//! [`WatchlistHandle`] and take an `Arc` of the current [`WatchlistSnapshot`] per decision, so a sync never
//! waits for matching and matching never sees half a set.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{error, info, warn};

use super::index::{ExactIndex, IndexBuilder, TemplateIndex};
use super::SyncMessage;
use super::WatchlistError;
use super::{ListKind, Thresholds, WatchlistEntry, WatchlistSet};
use checkpoint_openset::{Calibration, OperatingPoint};

const FILE_NAME: &str = "watchlist.json";
const TMP_NAME: &str = "watchlist.json.tmp";
/// Layout of the persisted file; bumped on incompatible changes so an old file is refused, not misread.
const FILE_FORMAT: u32 = 1;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersistedFile {
    format: u32,
    set: WatchlistSet,
}

/// The same layout, borrowed for writing so a large set is not copied.
#[derive(Serialize)]
struct PersistedFileRef<'a> {
    format: u32,
    set: &'a WatchlistSet,
}

/// How one list is matched.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Operating {
    pub threshold: f32,
    /// The calibrated point of the list's policy at its size; `None` without a policy (a hub that predates
    /// policies) or without a calibration for the embedding model.
    pub point: Option<OperatingPoint>,
}

impl Operating {
    fn of(set: &WatchlistSet, list: ListKind) -> Self {
        let floor = set.thresholds.for_list(list);
        let point = set.policies.as_ref().and_then(|p| {
            let cal = checkpoint_vision::manifest::embedder_calibration()?;
            // Per comparison: an entry with two templates gives a stranger two chances.
            Some(
                p.for_list(list)
                    .operating_point(cal, set.templates(list), floor),
            )
        });
        Self {
            // The operating point already never goes below the floor.
            threshold: point.map_or(floor, |p| p.threshold),
            point,
        }
    }
}

/// A set together with its search index. Immutable: a change builds a new snapshot.
pub struct WatchlistSnapshot {
    set: WatchlistSet,
    /// Per list, the threshold applied: the set's floor, raised to the operating point of the list's policy
    /// for the entries held (wanted, missing).
    operating: [Operating; 2],
    index: Box<dyn TemplateIndex>,
    /// Entry (position in `set.entries`) of each template row of `index`.
    row_entry: Vec<usize>,
    max_templates: usize,
}

impl std::fmt::Debug for WatchlistSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print templates: they are biometric data.
        f.debug_struct("WatchlistSnapshot")
            .field("version", &self.set.version)
            .field("entries", &self.set.entries.len())
            .field("templates", &self.row_entry.len())
            .finish()
    }
}

impl WatchlistSnapshot {
    /// `set` must have been validated.
    fn build(set: WatchlistSet, builder: &IndexBuilder) -> Self {
        let mut rows = Vec::new();
        let mut row_entry = Vec::new();
        for (i, e) in set.entries.iter().enumerate() {
            for t in &e.templates {
                rows.push(t.clone());
                row_entry.push(i);
            }
        }
        let max_templates = set
            .entries
            .iter()
            .map(|e| e.templates.len())
            .max()
            .unwrap_or(0);
        let operating = [ListKind::Wanted, ListKind::Missing].map(|l| Operating::of(&set, l));
        Self {
            index: builder(&rows),
            set,
            operating,
            row_entry,
            max_templates,
        }
    }

    /// The embedding model's calibration, when the manifest has one.
    pub fn calibration(&self) -> Option<&'static Calibration> {
        checkpoint_vision::manifest::embedder_calibration()
    }

    /// The threshold each list is matched at, and the operating point behind it.
    pub fn operating(&self, list: ListKind) -> &Operating {
        &self.operating[usize::from(list == ListKind::Missing)]
    }

    pub fn version(&self) -> u64 {
        self.set.version
    }

    pub fn entries(&self) -> &[WatchlistEntry] {
        &self.set.entries
    }

    /// The thresholds applied (floors raised by the lists' policies for their sizes).
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            wanted: self.operating(ListKind::Wanted).threshold,
            missing: self.operating(ListKind::Missing).threshold,
        }
    }

    pub fn set(&self) -> &WatchlistSet {
        &self.set
    }

    pub fn len(&self) -> usize {
        self.set.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.entries.is_empty()
    }

    pub fn entry(&self, id: &str) -> Option<&WatchlistEntry> {
        self.set.entries.iter().find(|e| e.id == id)
    }

    pub fn templates(&self) -> usize {
        self.row_entry.len()
    }

    pub(crate) fn index(&self) -> &dyn TemplateIndex {
        self.index.as_ref()
    }

    /// Position in [`Self::entries`] of the entry that owns a template row.
    pub(crate) fn entry_of_row(&self, row: usize) -> Option<usize> {
        self.row_entry.get(row).copied()
    }

    pub(crate) fn max_templates(&self) -> usize {
        self.max_templates
    }
}

/// Read access to the current snapshot, for camera threads. Cheap to clone.
#[derive(Clone)]
pub struct WatchlistHandle {
    current: Arc<RwLock<Arc<WatchlistSnapshot>>>,
}

impl WatchlistHandle {
    /// A handle on a fixed, validated set with an exact index and no store behind it (tests, offline tools).
    pub fn from_set(mut set: WatchlistSet) -> Result<Self, WatchlistError> {
        set.validate()?;
        Ok(Self::new(Arc::new(WatchlistSnapshot::build(
            set,
            &ExactIndex::builder(),
        ))))
    }

    fn new(snap: Arc<WatchlistSnapshot>) -> Self {
        Self {
            current: Arc::new(RwLock::new(snap)),
        }
    }

    /// The set in force now. Hold it for one decision, not longer, so updates reach the matcher.
    pub fn snapshot(&self) -> Arc<WatchlistSnapshot> {
        // A writer cannot panic while holding the lock (it only swaps an Arc), so poisoning carries no
        // half-written state and the value inside is still sound.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn publish(&self, snap: Arc<WatchlistSnapshot>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = snap;
    }
}

/// What applying a sync message did, for the audit log. Ids only, never templates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub full: bool,
    pub previous_version: u64,
    pub version: u64,
    /// Ids new to the set.
    pub added: Vec<String>,
    /// Ids held before and replaced by the message's copy.
    pub replaced: Vec<String>,
    /// Ids the hub withdrew: in a delta's `remove`, or held but absent from a full set.
    pub removed: Vec<String>,
    /// Ids in a delta's `expire` that were held.
    pub expired: Vec<String>,
    /// Ids not kept because they had expired at `now`: entries of the message, and held entries.
    pub dropped_expired: Vec<String>,
    /// Entries held afterwards.
    pub entries: usize,
}

/// The persisted, versioned watchlist. See the module documentation.
pub struct WatchlistStore {
    dir: PathBuf,
    /// Advisory lock on `dir/LOCK` while open: a second writer (`edge-agent watchlist enrol` beside a running
    /// agent) would otherwise overwrite the other's changes with its own copy.
    _lock: File,
    builder: IndexBuilder,
    current: Arc<WatchlistSnapshot>,
    handle: WatchlistHandle,
}

impl std::fmt::Debug for WatchlistStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchlistStore")
            .field("dir", &self.dir)
            .field("current", &self.current)
            .finish()
    }
}

impl WatchlistStore {
    /// Opens the store in `dir` (created, owner-only, if missing) and loads the persisted set; with no file
    /// the agent starts at version 0 with nothing listed and should ask the hub for a full sync. A file that
    /// cannot be read or fails validation is an error: the caller decides whether to move it aside, rather
    /// than this code silently forgetting a watchlist.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, WatchlistError> {
        let dir = dir.as_ref().to_path_buf();
        create_private_dir(&dir).map_err(|source| WatchlistError::Io {
            op: "create directory",
            path: dir.clone(),
            source,
        })?;
        let lock = lock_dir(&dir)?;
        // A temporary file left by a crash mid-write holds templates nobody will read: remove it.
        let tmp = dir.join(TMP_NAME);
        if tmp.exists() {
            if let Err(e) = fs::remove_file(&tmp) {
                warn!(path = %tmp.display(), error = %e, "cannot remove stale temporary watchlist file");
            }
        }
        let path = dir.join(FILE_NAME);
        let set = match fs::read(&path) {
            Ok(bytes) => load(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => WatchlistSet::default(),
            Err(source) => {
                return Err(WatchlistError::Io {
                    op: "read",
                    path,
                    source,
                })
            }
        };
        info!(
            version = set.version,
            entries = set.entries.len(),
            path = %path.display(),
            "watchlist loaded"
        );
        let builder = ExactIndex::builder();
        let current = Arc::new(WatchlistSnapshot::build(set, &builder));
        Ok(Self {
            dir,
            _lock: lock,
            builder,
            handle: WatchlistHandle::new(current.clone()),
            current,
        })
    }

    /// The set persisted in `dir`, read without taking the store's lock: the file is only ever replaced
    /// whole (written aside, then renamed), so a running agent's list is read as of its last change. For
    /// read-only tools such as `watchlist match`.
    pub fn read_only(dir: impl AsRef<Path>) -> Result<WatchlistHandle, WatchlistError> {
        let path = dir.as_ref().join(FILE_NAME);
        let bytes = fs::read(&path).map_err(|source| WatchlistError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        WatchlistHandle::from_set(load(&path, &bytes)?)
    }

    /// Replaces the index implementation (e.g. faiss for large lists) and rebuilds the current index with it.
    /// Handles taken before this call see the new index too.
    pub fn with_index_builder(mut self, builder: IndexBuilder) -> Self {
        self.builder = builder;
        let snap = Arc::new(WatchlistSnapshot::build(
            self.current.set.clone(),
            &self.builder,
        ));
        self.swap(snap);
        self
    }

    /// Read access for the camera threads.
    pub fn handle(&self) -> WatchlistHandle {
        self.handle.clone()
    }

    pub fn snapshot(&self) -> Arc<WatchlistSnapshot> {
        self.current.clone()
    }

    pub fn version(&self) -> u64 {
        self.current.version()
    }

    pub fn len(&self) -> usize {
        self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    pub fn entries(&self) -> &[WatchlistEntry] {
        self.current.entries()
    }

    pub fn thresholds(&self) -> Thresholds {
        self.current.thresholds()
    }

    /// The persisted file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Applies a sync message: validates all of it, builds the new set and its index, writes it to disk, and
    /// only then makes it current. Any error leaves the held set, version and file as they were. A delta not
    /// based on the held version fails with [`WatchlistError::VersionGap`] (see
    /// [`WatchlistError::needs_full_sync`]).
    pub fn apply(
        &mut self,
        msg: SyncMessage,
        now: OffsetDateTime,
    ) -> Result<ApplyOutcome, WatchlistError> {
        let (set, outcome) = plan(&self.current.set, msg, now)?;
        let snap = Arc::new(WatchlistSnapshot::build(set, &self.builder));
        self.persist(&snap.set)?;
        self.swap(snap);
        info!(
            full = outcome.full,
            from = outcome.previous_version,
            to = outcome.version,
            added = outcome.added.len(),
            replaced = outcome.replaced.len(),
            removed = outcome.removed.len(),
            expired = outcome.expired.len(),
            dropped_expired = outcome.dropped_expired.len(),
            entries = outcome.entries,
            "watchlist sync applied"
        );
        Ok(outcome)
    }

    /// Drops entries that have expired at `now` and persists the result; returns their ids. The version
    /// stays: it is the hub's, and the hub's later `expire` or `remove` of these ids is a no-op here. If the
    /// write fails the entries are still dropped from memory (they could not match anyway) and the error is
    /// logged; the next successful write brings the file in line.
    pub fn purge_expired(&mut self, now: OffsetDateTime) -> Vec<String> {
        let (gone, kept): (Vec<&WatchlistEntry>, Vec<&WatchlistEntry>) = self
            .current
            .set
            .entries
            .iter()
            .partition(|e| e.is_expired(now));
        if gone.is_empty() {
            return Vec::new();
        }
        let ids: Vec<String> = gone.iter().map(|e| e.id.clone()).collect();
        let set = WatchlistSet {
            version: self.current.set.version,
            entries: kept.into_iter().cloned().collect(),
            thresholds: self.current.set.thresholds,
            policies: self.current.set.policies,
        };
        let snap = Arc::new(WatchlistSnapshot::build(set, &self.builder));
        if let Err(e) = self.persist(&snap.set) {
            error!(error = %e, "expired watchlist entries dropped from memory but not from disk");
        }
        self.swap(snap);
        info!(ids = ?ids, "expired watchlist entries purged");
        ids
    }

    fn swap(&mut self, snap: Arc<WatchlistSnapshot>) {
        self.current = snap.clone();
        self.handle.publish(snap);
    }

    /// Writes the set so that a crash at any point leaves either the old file or the new one: temporary file,
    /// fsync, rename over the old one, fsync the directory (which makes the rename itself durable).
    fn persist(&self, set: &WatchlistSet) -> Result<(), WatchlistError> {
        let file = PersistedFileRef {
            format: FILE_FORMAT,
            set,
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| WatchlistError::Io {
            op: "serialise",
            path: self.path(),
            source: std::io::Error::other(e),
        })?;
        let tmp = self.dir.join(TMP_NAME);
        let path = self.path();
        let io = |op: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |source| WatchlistError::Io {
                op,
                path: p,
                source,
            }
        };
        let written = write_private(&tmp, &bytes).map_err(io("write", &tmp));
        if let Err(e) = written {
            // Best effort: the file holds templates and is of no use half-written.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &path).map_err(io("rename into", &path))?;
        // The new file is in place and is what a restart would read, so the new set must now be the one in
        // force; a failed directory fsync only means the rename might not survive a power cut.
        if let Err(e) = sync_dir(&self.dir) {
            warn!(dir = %self.dir.display(), error = %e, "cannot fsync the watchlist directory");
        }
        Ok(())
    }
}

fn lock_dir(dir: &Path) -> Result<File, WatchlistError> {
    let path = dir.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| WatchlistError::Io {
            op: "open",
            path: path.clone(),
            source,
        })?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(WatchlistError::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(source)) => Err(WatchlistError::Io {
            op: "lock",
            path,
            source,
        }),
    }
}

fn load(path: &Path, bytes: &[u8]) -> Result<WatchlistSet, WatchlistError> {
    let corrupt = |reason: String| WatchlistError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let file: PersistedFile = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.format != FILE_FORMAT {
        return Err(corrupt(format!(
            "format {} is not the supported {FILE_FORMAT}",
            file.format
        )));
    }
    let mut set = file.set;
    set.validate().map_err(|e| corrupt(e.to_string()))?;
    Ok(set)
}

/// Builds the set a message leads to, without touching the store.
fn plan(
    current: &WatchlistSet,
    mut msg: SyncMessage,
    now: OffsetDateTime,
) -> Result<(WatchlistSet, ApplyOutcome), WatchlistError> {
    // Version checks first: a gap must produce the error that triggers a full sync, whatever else is wrong.
    match &msg {
        SyncMessage::Full { version, .. } if *version < current.version => {
            return Err(WatchlistError::Stale {
                current: current.version,
                offered: *version,
            });
        }
        SyncMessage::Delta { base_version, .. } if *base_version != current.version => {
            return Err(WatchlistError::VersionGap {
                current: current.version,
                base: *base_version,
            });
        }
        _ => {}
    }
    msg.validate()?;
    let mut out = ApplyOutcome {
        previous_version: current.version,
        version: msg.version(),
        ..Default::default()
    };
    let held: HashSet<&str> = current.entries.iter().map(|e| e.id.as_str()).collect();
    let set = match msg {
        SyncMessage::Full {
            version,
            entries,
            thresholds,
            policies,
        } => {
            out.full = true;
            let offered: HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
            out.removed = current
                .entries
                .iter()
                .filter(|e| !offered.contains(e.id.as_str()))
                .map(|e| e.id.clone())
                .collect();
            let mut kept = Vec::with_capacity(entries.len());
            for e in entries {
                if e.is_expired(now) {
                    out.dropped_expired.push(e.id);
                    continue;
                }
                if held.contains(e.id.as_str()) {
                    out.replaced.push(e.id.clone());
                } else {
                    out.added.push(e.id.clone());
                }
                kept.push(e);
            }
            WatchlistSet {
                version,
                entries: kept,
                thresholds,
                policies,
            }
        }
        SyncMessage::Delta {
            version,
            add,
            remove,
            expire,
            thresholds,
            policies,
            ..
        } => {
            let remove: HashSet<&str> = remove.iter().map(String::as_str).collect();
            let expire: HashSet<&str> = expire.iter().map(String::as_str).collect();
            let slot_of: HashMap<String, usize> = add
                .iter()
                .enumerate()
                .map(|(i, e)| (e.id.clone(), i))
                .collect();
            let mut add: Vec<Option<WatchlistEntry>> = add.into_iter().map(Some).collect();
            let mut entries = Vec::with_capacity(current.entries.len() + add.len());
            for e in &current.entries {
                let id = e.id.as_str();
                let new = slot_of.get(id).and_then(|&i| add[i].take());
                if remove.contains(id) {
                    out.removed.push(e.id.clone());
                } else if expire.contains(id) {
                    out.expired.push(e.id.clone());
                } else if let Some(new) = new {
                    // Replaced in place, so the order of the set stays stable across deltas.
                    if new.is_expired(now) {
                        out.dropped_expired.push(new.id);
                    } else {
                        out.replaced.push(new.id.clone());
                        entries.push(new);
                    }
                } else if e.is_expired(now) {
                    out.dropped_expired.push(e.id.clone());
                } else {
                    entries.push(e.clone());
                }
            }
            // New ids go last, in the order the hub sent them.
            for e in add.into_iter().flatten() {
                if e.is_expired(now) {
                    out.dropped_expired.push(e.id);
                } else {
                    out.added.push(e.id.clone());
                    entries.push(e);
                }
            }
            WatchlistSet {
                version,
                entries,
                thresholds: thresholds.unwrap_or(current.thresholds),
                policies: policies.or(current.policies),
            }
        }
    };
    out.entries = set.entries.len();
    Ok((set, out))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Writes and fsyncs a file readable by the owner only: it holds biometric templates.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
