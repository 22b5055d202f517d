//! Durable outbox for the events the agent publishes over MQTT.
//!
//! Events must never be lost: while the broker is unreachable they wait here, on disk, and a
//! record leaves only once the broker has acknowledged it (QoS 1 `PUBACK`). Producers on any
//! thread [`append`](Outbox::append); one publisher thread streams records out with
//! [`next_batch`](Outbox::next_batch) and [`ack`](Outbox::ack)s them. All methods take `&self`
//! (one internal mutex), so share the outbox in an `Arc`. Calls are short (one write, one
//! fsync with `fsync = "always"`), except an append that has to compact or drop to make room:
//! it rewrites the oldest segments while holding the lock, so other callers wait for it.
//!
//! # What the publisher does (at-least-once, in order)
//!
//! 1. On every (re)connect: [`reset_cursor`](Outbox::reset_cursor), so everything not yet
//!    acknowledged is re-sent from the oldest record, in seq order.
//! 2. While connected: [`next_batch(n)`](Outbox::next_batch) returns the next unacknowledged
//!    records after the ones already handed out; publish each with QoS 1 in that order,
//!    remembering packet id → `seq`. Take only what the MQTT client's in-flight window has room
//!    for (`n = max_inflight - in_flight`): handed-out records are never compacted (a late
//!    `PUBACK` for a seq must acknowledge exactly what was sent), so streaming the whole backlog
//!    into the client's queue would pin it. When `next_batch` returns nothing, wait (e.g.
//!    100 ms or a wake-up from the producers) and ask again.
//! 3. On `PUBACK`: [`ack(seq)`](Outbox::ack) (or [`ack_many`](Outbox::ack_many) for a burst).
//!    Acks may come in any order.
//! 4. On disconnect: stop taking records (do not queue them into a dead connection: records
//!    that have been handed out are excluded from compaction), then go to 1.
//! 5. With `fsync = { interval_ms = N }`, call [`tick`](Outbox::tick) about every N ms; on
//!    shutdown call [`sync`](Outbox::sync) (dropping the outbox does it too, best effort).
//!
//! Duplicates are possible (QoS 1 allows them): records re-sent after a reconnect, and records
//! acknowledged by the broker whose ack was not yet on disk when the agent died. Consumers
//! should deduplicate on the event id inside the payload. `seq` is the outbox's handle: strictly
//! increasing across restarts for every record that reached the disk, but after a *power loss*
//! with `fsync = "never"`/`interval`, the seqs of records lost from the page cache can be
//! issued again, so it is not a global identity.
//!
//! # Full-disk policy (`max_bytes`)
//!
//! `max_bytes` bounds the bytes of all segment files. When an append would exceed it:
//!
//! 1. **Compact counts.** If an aggregator is set ([`set_aggregator`](Outbox::set_aggregator))
//!    and enough never-compacted count records are waiting (at least `max_bytes / 32`, so the
//!    rewrite cost is amortised), the oldest segments are rewritten: unacknowledged
//!    [`Class::Count`] records that have not been handed to the publisher are passed to the
//!    aggregator, oldest first, in chunks of about `segment_bytes` (1 to 16 MiB). The
//!    records it returns (at most as many as it got; class forced to `Count`) take the seqs
//!    of the **oldest** records they replace, in order, so they are delivered where the data
//!    they summarise began. Other records keep their seqs, so relative order is preserved.
//!    Aggregated records are passed to the aggregator again in later compactions, so it
//!    must accept its own output (e.g. sums of sums).
//! 2. **Drop status/other.** If that is not enough, [`Class::Status`] and [`Class::Other`]
//!    records are dropped oldest first (counted in `dropped_total`, logged), but only when
//!    dropping can make the append fit (otherwise the new record is the one refused).
//! 3. **Alerts are never dropped.** If the outbox is still full: an alert is appended anyway
//!    (the bound is exceeded, logged as an error, `over_limit` in [`OutboxStats`]); any other
//!    class is rejected with [`OutboxError::Full`].
//!
//! Each cleanup frees down to 7/8 of `max_bytes`, and none runs unless it can free at least
//! `max_bytes / 32`, so a full outbox does not rewrite files on every append. Counts are never
//! dropped, only compacted: without an aggregator (or with one that cannot shrink them) they
//! are refused with `Full` like status records once nothing else can go. The one slack in the
//! bound besides alerts: the 48-byte header of a segment started by [`Outbox::open`].
//!
//! # On-disk format
//!
//! A directory with a `LOCK` file (advisory lock: one outbox per directory), `acks` (the ack
//! state), and segment files `{id:020}.seg`, appended to in order; the highest id is the
//! active one. Integers are little-endian.
//!
//! Segment header, 48 bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `CPOUTSEG` |
//! | 8..10 | format version (1) |
//! | 10..12 | header length (48) |
//! | 16..24 | segment id (same as the file name) |
//! | 24..32 | `covers_from`: a compacted segment replaces all segments with ids in `covers_from..id` |
//! | 32..40 | `base_seq`: the next seq when the segment was created |
//! | 40..44 | crc32 of bytes 0..40 |
//!
//! Then record frames, back to back:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `F0 0B 0C 5A` |
//! | 4..8 | body length `n` (everything after the crc) |
//! | 8..12 | crc32 (IEEE) of bytes 4..8 and the body |
//! | 12..20 | seq |
//! | 20..28 | append time, ms since the Unix epoch |
//! | 28 | class: 1 alert, 2 count, 3 status, 4 other |
//! | 29 | flags: bit 0 = has been through compaction |
//! | 30..32 | topic length `t` |
//! | 32..32+t | topic, UTF-8 |
//! | 32+t..12+n | payload |
//!
//! `acks` is two text lines: a JSON object `{"version":1,"next_seq":…,"watermark":…,"acked":[…]}`
//! and the crc32 of that line in hex. Records with `seq <= watermark` or listed in `acked`
//! (out-of-order acks above the watermark) are delivered. It is replaced atomically (write
//! `acks.tmp`, fsync unless `fsync = "never"`, rename, fsync the directory), on every ack
//! (`always`, `never`) or at most once per interval.
//!
//! # Crash safety
//!
//! - A frame is written to the file (opened for append) before `append` returns, so a record
//!   whose `append` returned `Ok` survives `kill -9`; fsync ([`FsyncPolicy`]) decides power
//!   loss. A failed write is cut off again so later records never sit behind half a frame.
//! - On open every frame is checked. A bad stretch followed by intact frames (bit rot) is
//!   skipped, logged and counted in `corrupt_skipped_total`; the records after it are kept. A
//!   bad tail (torn write, garbage) is truncated to the last intact frame.
//! - Compaction writes the merged segment to a temporary file, fsyncs it, renames it over the
//!   newest segment it replaces, fsyncs the directory and only then deletes the older ones.
//!   A crash before the rename leaves the originals; after it, the header's `covers_from`
//!   tells the next open to delete the leftovers instead of replaying them.
//! - A lost or corrupt ack file makes records be re-sent (duplicates), never lost.
//!
//! # Memory
//!
//! Topics and payloads stay on disk. The index holds 24 bytes per record still in a segment
//! file (about 21 MB for 256 MiB of 300-byte records); reads hold one batch, compaction one
//! chunk (about `segment_bytes`).

mod acks;
mod append;
mod compaction;
mod config;
mod format;
mod read;
mod recovery;
mod segment;
#[cfg(test)]
mod tests;

pub use config::{FsyncPolicy, OutboxConfig, MIN_SEGMENT_BYTES};

use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use segment::Segment;

/// What kind of event a record carries; decides what may happen to it when the disk bound
/// is reached (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Never dropped, never compacted; accepted even past `max_bytes`. Watchlist alerts, and line crossings
    /// (the hub's occupancy is summed from them).
    Alert,
    /// May be merged by the caller's aggregator when the outbox is full.
    Count,
    /// May be dropped, oldest first, when the outbox is full.
    Status,
    /// Treated like `Status`.
    Other,
}

impl Class {
    fn code(self) -> u8 {
        match self {
            Class::Alert => 1,
            Class::Count => 2,
            Class::Status => 3,
            Class::Other => 4,
        }
    }

    fn from_code(code: u8) -> Option<Class> {
        match code {
            1 => Some(Class::Alert),
            2 => Some(Class::Count),
            3 => Some(Class::Status),
            4 => Some(Class::Other),
            _ => None,
        }
    }

    fn droppable(self) -> bool {
        matches!(self, Class::Status | Class::Other)
    }

    /// Lower-case name, as in logs and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Alert => "alert",
            Class::Count => "count",
            Class::Status => "status",
            Class::Other => "other",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event waiting for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Assigned by the outbox; increasing in append order, across restarts. Ignored (and
    /// overwritten) on records returned by an aggregator.
    pub seq: u64,
    /// Decides the full-disk treatment.
    pub class: Class,
    /// MQTT topic.
    pub topic: String,
    /// Opaque bytes; the outbox never parses them.
    pub payload: Vec<u8>,
}

/// Merges count records when the outbox is full (see the module docs). Gets unacknowledged
/// count records in seq order and returns at most as many records. It runs under the
/// outbox's lock: it must not call back into the outbox.
pub type Aggregator = dyn Fn(&[Record]) -> Vec<Record> + Send + 'static;

/// Errors from the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A file operation failed.
    #[error("outbox I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The configuration is inconsistent.
    #[error("invalid outbox config: {0}")]
    Config(String),
    /// Another `Outbox` (in this or another process) has the directory open. Right after
    /// dropping an outbox this can also be transient: a child process being spawned at that
    /// moment briefly shares the lock's file descriptor.
    #[error("outbox directory {0} is already open by another outbox")]
    Locked(PathBuf),
    /// A file was written by a newer, incompatible outbox format.
    #[error("{path}: outbox format version {version}, this build reads version {supported}")]
    UnsupportedVersion {
        path: PathBuf,
        version: u64,
        supported: u64,
    },
    /// The record cannot be stored (topic or payload too large).
    #[error("record rejected: {0}")]
    InvalidRecord(String),
    /// The disk bound is reached and nothing could be compacted or dropped; only alerts are
    /// accepted past it.
    #[error("outbox full: {class} record of {needed} bytes rejected ({disk_bytes} of {max_bytes} bytes used)")]
    Full {
        class: Class,
        needed: u64,
        disk_bytes: u64,
        max_bytes: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Numbers for metrics. Totals count since this process opened the outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Records not yet acknowledged.
    pub pending: u64,
    /// Their size on disk, framing included.
    pub pending_bytes: u64,
    /// How long the oldest unacknowledged record has waited (from its append time; for an
    /// aggregate, the append time of the oldest record it replaced).
    pub oldest_pending_age: Option<Duration>,
    /// Status/other records dropped to stay within `max_bytes`.
    pub dropped_total: u64,
    /// Count records removed by compaction (records in minus records out).
    pub compacted_total: u64,
    /// Corrupt records skipped, on open or when read.
    pub corrupt_skipped_total: u64,
    /// Bytes of torn or garbage tails truncated on open.
    pub truncated_tail_bytes_total: u64,
    /// Appends refused with [`OutboxError::Full`].
    pub rejected_total: u64,
    /// fsync/fdatasync calls made (data, ack state, directories).
    pub fsyncs_total: u64,
    /// Bytes of all segment files.
    pub disk_bytes: u64,
    /// The configured bound.
    pub max_bytes: u64,
    /// `disk_bytes > max_bytes`: only alerts can cause this; an error condition to alert on.
    pub over_limit: bool,
    /// Segment files.
    pub segments: u64,
}

/// A durable, bounded, crash-safe queue of records awaiting broker acknowledgement.
///
/// `Send + Sync`: share it in an `Arc` between producers and the publisher.
pub struct Outbox {
    inner: Mutex<Inner>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Outbox")
            .field("dir", &inner.dir)
            .field("segments", &inner.segs.len())
            .field("next_seq", &inner.next_seq)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `dir`, recovering from whatever a crash left:
    /// torn tails are truncated, corrupt records skipped, half-finished compactions resolved.
    pub fn open(dir: &Path, cfg: OutboxConfig) -> Result<Outbox, OutboxError> {
        Ok(Outbox {
            inner: Mutex::new(Inner::open(dir, cfg)?),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Internal invariants are restored before anything that can panic (the aggregator
        // runs under catch_unwind), and disk is the source of truth; refusing every later
        // call would lose events, so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the function used to merge count records when the outbox is full. Without one,
    /// count records are kept as they are (and rejected when full).
    pub fn set_aggregator<F>(&self, f: F)
    where
        F: Fn(&[Record]) -> Vec<Record> + Send + 'static,
    {
        self.lock().aggregator = Some(Box::new(f));
    }

    /// Stores a record and returns its seq. When this returns `Ok` the record survives the
    /// process being killed; with `fsync = "always"` it also survives power loss.
    ///
    /// May compact or drop older records first, or return [`OutboxError::Full`] (never for
    /// alerts): see the module docs.
    pub fn append(&self, class: Class, topic: &str, payload: &[u8]) -> Result<u64, OutboxError> {
        self.lock().append(class, topic, payload)
    }

    /// Up to `limit` unacknowledged records from the oldest, in seq order. Does not move the
    /// cursor, but counts as handing the records out (see [`Outbox::next_batch`]).
    pub fn pending(&self, limit: usize) -> Result<Vec<Record>, OutboxError> {
        self.pending_after(0, limit)
    }

    /// Up to `limit` unacknowledged records with a seq above `after`, in seq order.
    ///
    /// Records returned by any read are "handed out": they may be on the wire, so compaction
    /// leaves them alone (an ack for their seq must mean exactly that record).
    pub fn pending_after(&self, after: u64, limit: usize) -> Result<Vec<Record>, OutboxError> {
        self.lock().read_after(after, limit)
    }

    /// The publisher's stream: up to `limit` unacknowledged records after the last one this
    /// method returned since the last [`reset_cursor`](Outbox::reset_cursor), and advances
    /// the cursor past them.
    pub fn next_batch(&self, limit: usize) -> Result<Vec<Record>, OutboxError> {
        let mut inner = self.lock();
        let cursor = inner.cursor;
        let out = inner.read_after(cursor, limit)?;
        if let Some(last) = out.last() {
            inner.cursor = last.seq;
        }
        Ok(out)
    }

    /// Rewinds [`next_batch`](Outbox::next_batch) to the oldest unacknowledged record; call
    /// on every (re)connect so unacknowledged records are re-sent in order. Records handed out
    /// before stay excluded from compaction (an ack for them may still arrive, e.g. from the
    /// client library's own retransmission).
    pub fn reset_cursor(&self) {
        self.lock().cursor = 0;
    }

    /// Iterates over all unacknowledged records from the oldest, reading in batches (memory
    /// stays bounded). Records appended meanwhile are included; the lock is not held between
    /// batches.
    pub fn iter_pending(&self) -> PendingIter<'_> {
        PendingIter {
            outbox: self,
            after: 0,
            buf: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Marks `seq` delivered. Returns `false` when it was not pending (unknown, already
    /// acknowledged, compacted or dropped), which is harmless. Fully acknowledged segment
    /// files are deleted.
    pub fn ack(&self, seq: u64) -> Result<bool, OutboxError> {
        self.ack_many([seq]).map(|n| n == 1)
    }

    /// Marks several records delivered, persisting the ack state once. Returns how many were
    /// pending.
    pub fn ack_many<I: IntoIterator<Item = u64>>(&self, seqs: I) -> Result<usize, OutboxError> {
        let mut inner = self.lock();
        let n = seqs.into_iter().filter(|&s| inner.mark_acked(s)).count();
        if n > 0 {
            inner.reap();
            inner.persist_acks(false, false)?;
        }
        Ok(n)
    }

    /// Does the periodic work of `fsync = { interval_ms = N }` (fsync of data and ack state
    /// once the interval has passed). Cheap; call it about every N ms.
    pub fn tick(&self) -> Result<(), OutboxError> {
        let mut inner = self.lock();
        inner.sync_data(false)?;
        inner.persist_acks(false, false)
    }

    /// Forces the active segment and the ack state to disk now, whatever the policy (e.g. on
    /// shutdown). With `fsync = "never"`, earlier segments are left to the kernel.
    pub fn sync(&self) -> Result<(), OutboxError> {
        let mut inner = self.lock();
        inner.sync_data(true)?;
        inner.persist_acks(true, true)
    }

    /// Counters and gauges for metrics.
    pub fn stats(&self) -> OutboxStats {
        self.lock().stats()
    }

    /// Reads every pending record without marking anything handed out.
    #[cfg(test)]
    fn peek_all(&self) -> Vec<Record> {
        let mut inner = self.lock();
        let saved = inner.handed_out;
        let out = inner.read_after(0, usize::MAX).expect("read");
        inner.handed_out = saved;
        out
    }
}

/// Iterator from [`Outbox::iter_pending`].
pub struct PendingIter<'a> {
    outbox: &'a Outbox,
    after: u64,
    buf: std::vec::IntoIter<Record>,
    done: bool,
}

impl Iterator for PendingIter<'_> {
    type Item = Result<Record, OutboxError>;

    fn next(&mut self) -> Option<Self::Item> {
        const BATCH: usize = 256;
        if let Some(r) = self.buf.next() {
            return Some(Ok(r));
        }
        if self.done {
            return None;
        }
        match self.outbox.pending_after(self.after, BATCH) {
            Ok(batch) => {
                if batch.len() < BATCH {
                    self.done = true;
                }
                if let Some(last) = batch.last() {
                    self.after = last.seq;
                }
                self.buf = batch.into_iter();
                self.buf.next().map(Ok)
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

// --- the state behind the lock, and what its operations share ------------------------------

const SEG_EXT: &str = "seg";
const TMP_EXT: &str = "tmp";

/// The totals behind [`OutboxStats`], since this process opened the outbox.
#[derive(Default)]
struct Counters {
    dropped: u64,
    compacted: u64,
    corrupt: u64,
    truncated_tail_bytes: u64,
    rejected: u64,
    fsyncs: u64,
}

/// The state behind [`Outbox`]'s mutex. Its methods are split by operation: `recovery.rs` opens,
/// `append.rs` appends and rotates, `read.rs` reads, `acks.rs` records deliveries, `compaction.rs`
/// makes room when full, and `segment.rs` answers questions from the index.
struct Inner {
    dir: PathBuf,
    cfg: OutboxConfig,
    /// Holds the advisory lock for as long as the outbox is open.
    _lock: File,
    /// Ascending ids; never empty; the last one is the active segment.
    segs: Vec<Segment>,
    /// Append handle of the active segment.
    active: File,
    /// A failed write left unknown bytes at the end of the active segment: start a new one.
    active_broken: bool,
    next_seq: u64,
    next_id: u64,
    /// Acknowledged seqs above the last persisted watermark.
    acked_above: BTreeSet<u64>,
    ack_dirty: bool,
    last_ack_persist: Instant,
    data_dirty: bool,
    last_data_sync: Instant,
    cursor: u64,
    /// Highest seq ever returned by a read: records up to it may be on the wire.
    handed_out: u64,
    aggregator: Option<Box<Aggregator>>,
    counters: Counters,
    /// (seq, append time) of the oldest pending record, to avoid a disk read per `stats()`.
    age_cache: Option<(u64, u64)>,
    /// Files of compacted-away segments whose deletion failed; retried.
    leftovers: Vec<PathBuf>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Makes renames, creations and deletions in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open directories for syncing; NTFS journals metadata anyway.
        let _ = dir;
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort on shutdown: the explicit `sync()` is the one that reports errors.
        if self.sync_policy() {
            if let Err(e) = self.sync_data(true) {
                tracing::error!(error = %e, "outbox: final fsync failed");
            }
        }
        if let Err(e) = self.persist_acks(true, false) {
            tracing::error!(error = %e, "outbox: could not save acknowledgements on close");
        }
    }
}
