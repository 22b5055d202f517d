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

mod config;
mod format;
#[cfg(test)]
mod tests;

pub use config::{FsyncPolicy, OutboxConfig, MIN_SEGMENT_BYTES};

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use format::{
    encode_frame, frame_len, Frame, HeaderError, SegReader, SegmentHeader, FLAG_COMPACTED,
    FORMAT_VERSION, HEADER_LEN, MAX_FRAME,
};

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

// ---------------------------------------------------------------------------------------------

const ACK_FILE: &str = "acks";
const ACK_TMP: &str = "acks.tmp";
const LOCK_FILE: &str = "LOCK";
const SEG_EXT: &str = "seg";
const TMP_EXT: &str = "tmp";
const ACK_VERSION: u32 = 1;

/// Per-record index entry; topic and payload stay on disk.
#[derive(Clone, Copy, Debug)]
struct Entry {
    seq: u64,
    offset: u64,
    len: u32,
    class: Class,
    flags: u8,
    /// Not acknowledged, dropped, compacted away or found corrupt.
    live: bool,
}

impl Entry {
    /// Counts towards what compaction can still gain.
    fn raw_count(&self) -> bool {
        self.class == Class::Count && self.flags & FLAG_COMPACTED == 0
    }
}

struct Segment {
    id: u64,
    base_seq: u64,
    path: PathBuf,
    size: u64,
    entries: Vec<Entry>,
    live: usize,
    live_bytes: u64,
    /// Live count records never offered to the aggregator.
    raw_count_bytes: u64,
    /// Live status/other records.
    droppable_bytes: u64,
    /// Every entry before this index is dead; saves rescanning acked prefixes.
    first_live: usize,
}

impl Segment {
    fn new(id: u64, base_seq: u64, path: PathBuf, size: u64) -> Segment {
        Segment {
            id,
            base_seq,
            path,
            size,
            entries: Vec::new(),
            live: 0,
            live_bytes: 0,
            raw_count_bytes: 0,
            droppable_bytes: 0,
            first_live: 0,
        }
    }

    fn push(&mut self, e: Entry) {
        if e.live {
            self.count_live(&e, true);
        }
        self.entries.push(e);
    }

    fn count_live(&mut self, e: &Entry, add: bool) {
        let len = u64::from(e.len);
        let apply = |v: &mut u64| {
            if add {
                *v += len
            } else {
                *v -= len
            }
        };
        apply(&mut self.live_bytes);
        if e.raw_count() {
            apply(&mut self.raw_count_bytes);
        }
        if e.class.droppable() {
            apply(&mut self.droppable_bytes);
        }
        if add {
            self.live += 1;
        } else {
            self.live -= 1;
        }
    }

    /// Marks an entry dead; false if it already was.
    fn kill(&mut self, idx: usize) -> bool {
        let e = self.entries[idx];
        if !e.live {
            return false;
        }
        self.entries[idx].live = false;
        self.count_live(&e, false);
        true
    }

    fn find(&self, seq: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&seq, |e| e.seq).ok()
    }

    fn last_seq(&self) -> Option<u64> {
        self.entries.last().map(|e| e.seq)
    }

    fn oldest_live(&mut self) -> Option<usize> {
        while self.first_live < self.entries.len() && !self.entries[self.first_live].live {
            self.first_live += 1;
        }
        (self.first_live < self.entries.len()).then_some(self.first_live)
    }
}

#[derive(Default)]
struct Counters {
    dropped: u64,
    compacted: u64,
    corrupt: u64,
    truncated_tail_bytes: u64,
    rejected: u64,
    fsyncs: u64,
}

/// The ack file's first line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckState {
    version: u32,
    next_seq: u64,
    watermark: u64,
    acked: Vec<u64>,
}

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

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.{SEG_EXT}"))
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

fn lock_dir(dir: &Path) -> Result<File, OutboxError> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(OutboxError::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

fn create_segment(
    dir: &Path,
    header: SegmentHeader,
    sync: bool,
    counters: &mut Counters,
) -> Result<(Segment, File), OutboxError> {
    let path = seg_path(dir, header.id);
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    f.write_all(&header.encode()).map_err(io_err(&path))?;
    if sync {
        f.sync_all().map_err(io_err(&path))?;
        sync_dir(dir).map_err(io_err(dir))?;
        counters.fsyncs += 2;
    }
    let seg = Segment::new(header.id, header.base_seq, path, HEADER_LEN);
    Ok((seg, f))
}

/// Reads the ack file. A missing or corrupt one means "nothing acknowledged": records are
/// re-sent rather than lost.
fn load_acks(dir: &Path) -> Result<Option<AckState>, OutboxError> {
    let path = dir.join(ACK_FILE);
    let text = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let parsed = (|| {
        let text = std::str::from_utf8(&text).ok()?;
        let (line, rest) = text.split_once('\n')?;
        let crc = u32::from_str_radix(rest.trim(), 16).ok()?;
        if crc != crc32fast::hash(line.as_bytes()) {
            return None;
        }
        serde_json::from_str::<AckState>(line).ok()
    })();
    match parsed {
        Some(s) if s.version != ACK_VERSION => Err(OutboxError::UnsupportedVersion {
            path,
            version: u64::from(s.version),
            supported: u64::from(ACK_VERSION),
        }),
        Some(s) => Ok(Some(s)),
        None => {
            tracing::error!(path = %path.display(), "outbox ack file is corrupt; delivered records still on disk will be re-sent");
            Ok(None)
        }
    }
}

impl Inner {
    fn open(dir: &Path, cfg: OutboxConfig) -> Result<Inner, OutboxError> {
        cfg.validate()?;
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = lock_dir(dir)?;
        let sync = cfg.fsync != FsyncPolicy::Never;
        let mut counters = Counters::default();

        // Leftovers of interrupted compactions or ack writes: the originals are intact.
        let mut listed: Vec<(u64, PathBuf)> = Vec::new();
        for ent in fs::read_dir(dir).map_err(io_err(dir))? {
            let ent = ent.map_err(io_err(dir))?;
            let path = ent.path();
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(&format!(".{TMP_EXT}")) {
                tracing::info!(path = %path.display(), "removing unfinished outbox temporary file");
                if let Err(e) = fs::remove_file(&path) {
                    // Harmless: temporary files are never read.
                    tracing::warn!(path = %path.display(), error = %e, "could not remove outbox temporary file");
                }
            } else if let Some(stem) = name.strip_suffix(&format!(".{SEG_EXT}")) {
                if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                    if let Ok(id) = stem.parse::<u64>() {
                        listed.push((id, path));
                    }
                }
            }
        }
        listed.sort_by_key(|(id, _)| *id);
        let acks = load_acks(dir)?;

        // Headers first: a compacted segment may supersede older files a crash left behind.
        struct Found {
            id: u64,
            path: PathBuf,
            header: Option<SegmentHeader>,
            short: bool,
        }
        let mut found: Vec<Found> = Vec::new();
        for (id, path) in listed {
            let f = File::open(&path).map_err(io_err(&path))?;
            let mut r = SegReader::new(f).map_err(io_err(&path))?;
            let (header, short) = match r.header().map_err(io_err(&path))? {
                Ok(h) if h.id == id && h.covers_from <= id => (Some(h), false),
                Ok(h) => {
                    tracing::error!(path = %path.display(), header_id = h.id, "outbox segment header does not match its file name; using the name");
                    (None, false)
                }
                Err(HeaderError::Short) => (None, true),
                Err(HeaderError::Corrupt) => {
                    tracing::error!(path = %path.display(), "outbox segment header is corrupt; scanning its records anyway");
                    (None, false)
                }
                Err(HeaderError::Version(v)) => {
                    return Err(OutboxError::UnsupportedVersion {
                        path,
                        version: u64::from(v),
                        supported: u64::from(FORMAT_VERSION),
                    })
                }
            };
            found.push(Found {
                id,
                path,
                header,
                short,
            });
        }
        let covers: Vec<(u64, u64)> = found
            .iter()
            .filter_map(|f| f.header)
            .filter(|h| h.covers_from < h.id)
            .map(|h| (h.covers_from, h.id))
            .collect();
        let mut kept = Vec::with_capacity(found.len());
        let mut leftovers = Vec::new();
        for f in found {
            if covers.iter().any(|&(from, to)| (from..to).contains(&f.id)) {
                // Never read it, even if it cannot be deleted: its records live on in the
                // merged segment, and reading both would replay them twice.
                tracing::warn!(path = %f.path.display(), "removing outbox segment already merged by an interrupted compaction");
                if let Err(e) = fs::remove_file(&f.path) {
                    tracing::error!(path = %f.path.display(), error = %e, "could not remove merged outbox segment; retrying later");
                    leftovers.push(f.path);
                }
            } else {
                kept.push(f);
            }
        }
        let next_id = kept.last().map_or(1, |f| f.id + 1);

        let (watermark, acked_set) = match &acks {
            Some(a) => (
                a.watermark,
                a.acked
                    .iter()
                    .copied()
                    .filter(|&s| s > a.watermark)
                    .collect::<BTreeSet<u64>>(),
            ),
            None => (0, BTreeSet::new()),
        };

        let n_kept = kept.len();
        let mut segs: Vec<Segment> = Vec::with_capacity(n_kept);
        let mut last_seq = 0u64;
        let mut max_base = 0u64;
        let mut last_header_ok = false;
        for (i, f) in kept.into_iter().enumerate() {
            let is_last = i + 1 == n_kept;
            if f.short {
                // Crash while creating it: it cannot hold records.
                tracing::warn!(path = %f.path.display(), "removing outbox segment with an incomplete header");
                if let Err(e) = fs::remove_file(&f.path) {
                    tracing::warn!(path = %f.path.display(), error = %e, "could not remove empty outbox segment");
                }
                continue;
            }
            let file = File::open(&f.path).map_err(io_err(&f.path))?;
            let mut r = SegReader::new(file).map_err(io_err(&f.path))?;
            let scan = format::scan(&mut r, last_seq).map_err(io_err(&f.path))?;
            let mut size = r.len();
            if scan.corrupt > 0 {
                counters.corrupt += scan.corrupt;
                tracing::error!(path = %f.path.display(), records = scan.corrupt, bytes = scan.corrupt_bytes, "outbox segment has corrupt records; skipped them, later records kept");
            }
            if let Some(at) = scan.truncate_at {
                let cut = size - at;
                if is_last {
                    tracing::warn!(path = %f.path.display(), bytes = cut, "outbox: truncating torn tail of the active segment (interrupted write)");
                } else {
                    tracing::error!(path = %f.path.display(), bytes = cut, "outbox: truncating corrupt tail of a closed segment");
                    counters.corrupt += 1;
                }
                let wf = OpenOptions::new()
                    .write(true)
                    .open(&f.path)
                    .map_err(io_err(&f.path))?;
                wf.set_len(at).map_err(io_err(&f.path))?;
                if sync {
                    wf.sync_all().map_err(io_err(&f.path))?;
                    counters.fsyncs += 1;
                }
                counters.truncated_tail_bytes += cut;
                size = at;
            }
            let base_seq = f.header.map_or(0, |h| h.base_seq);
            max_base = max_base.max(base_seq);
            let mut seg = Segment::new(f.id, base_seq, f.path, size);
            for s in scan.records {
                last_seq = s.seq;
                seg.push(Entry {
                    seq: s.seq,
                    offset: s.offset,
                    len: s.frame_len,
                    class: s.class,
                    flags: s.flags,
                    live: s.seq > watermark && !acked_set.contains(&s.seq),
                });
            }
            last_header_ok = f.header.is_some();
            segs.push(seg);
        }

        let next_seq = [
            1,
            last_seq + 1,
            max_base,
            acks.as_ref().map_or(0, |a| a.next_seq),
            watermark.saturating_add(1),
        ]
        .into_iter()
        .max()
        .unwrap_or(1);

        // The last segment becomes the active one, unless it is full or its header cannot be
        // trusted (new records then go to a fresh segment rather than behind a bad header).
        let reuse_last = last_header_ok && segs.last().is_some_and(|s| s.size < cfg.segment_bytes);
        let (active, next_id) = if reuse_last {
            let last = segs.last().map(|s| s.path.clone()).unwrap_or_default();
            let f = OpenOptions::new()
                .append(true)
                .open(&last)
                .map_err(io_err(&last))?;
            (f, next_id)
        } else {
            let header = SegmentHeader {
                id: next_id,
                covers_from: next_id,
                base_seq: next_seq,
            };
            let (seg, f) = create_segment(dir, header, sync, &mut counters)?;
            segs.push(seg);
            (f, next_id + 1)
        };

        let mut inner = Inner {
            dir: dir.to_path_buf(),
            cfg,
            _lock: lock,
            segs,
            active,
            active_broken: false,
            next_seq,
            next_id,
            acked_above: acked_set,
            ack_dirty: false,
            last_ack_persist: Instant::now(),
            data_dirty: false,
            last_data_sync: Instant::now(),
            cursor: 0,
            handed_out: 0,
            aggregator: None,
            counters,
            age_cache: None,
            leftovers,
        };
        inner.reap();
        let st = inner.stats();
        tracing::info!(
            dir = %inner.dir.display(),
            pending = st.pending,
            segments = st.segments,
            disk_bytes = st.disk_bytes,
            next_seq = inner.next_seq,
            "outbox opened"
        );
        Ok(inner)
    }

    fn sync_policy(&self) -> bool {
        self.cfg.fsync != FsyncPolicy::Never
    }

    fn disk_bytes(&self) -> u64 {
        self.segs.iter().map(|s| s.size).sum()
    }

    fn append(&mut self, class: Class, topic: &str, payload: &[u8]) -> Result<u64, OutboxError> {
        if topic.len() > usize::from(u16::MAX) {
            return Err(OutboxError::InvalidRecord(format!(
                "topic of {} bytes is longer than 65535",
                topic.len()
            )));
        }
        let len = frame_len(topic, payload);
        if len > MAX_FRAME {
            return Err(OutboxError::InvalidRecord(format!(
                "record of {len} bytes is larger than {MAX_FRAME}"
            )));
        }
        let needs_rotation = |s: &Inner| {
            let active = s.active_seg();
            s.active_broken
                || (!active.entries.is_empty() && active.size + len > s.cfg.segment_bytes)
        };
        // A new segment's header counts against the bound too.
        let needed = len + if needs_rotation(self) { HEADER_LEN } else { 0 };
        if self.disk_bytes() + needed > self.cfg.max_bytes {
            self.make_room(needed, class)?;
        }
        if needs_rotation(self) {
            self.rotate()?;
        }

        // The seq is used up even if the write fails: a partly written frame must never share
        // its seq with a later record.
        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = encode_frame(seq, now_ms(), class, 0, topic, payload);
        let offset = self.active_seg().size;
        if let Err(e) = self.active.write_all(&frame) {
            let path = self.active_seg().path.clone();
            // Undo a partial frame so later records are not written behind garbage; if that
            // fails too, move on to a new segment (recovery then truncates the garbage).
            if self.active.set_len(offset).is_err() {
                self.active_broken = true;
            }
            tracing::error!(path = %path.display(), error = %e, "outbox append failed");
            return Err(io_err(&path)(e));
        }
        let seg = self.active_seg_mut();
        seg.size += len;
        seg.push(Entry {
            seq,
            offset,
            len: len as u32,
            class,
            flags: 0,
            live: true,
        });
        self.data_dirty = true;
        // Already in the page cache: a failed fsync is reported, but the record stays indexed
        // (a caller retrying would make a duplicate, which QoS 1 tolerates; losing it would not be).
        self.sync_data(false)?;
        Ok(seq)
    }

    fn active_seg(&self) -> &Segment {
        // `segs` is never empty: open creates an active segment and nothing removes the last.
        &self.segs[self.segs.len() - 1]
    }

    fn active_seg_mut(&mut self) -> &mut Segment {
        let n = self.segs.len();
        &mut self.segs[n - 1]
    }

    /// Closes the active segment and starts a new one.
    fn rotate(&mut self) -> Result<(), OutboxError> {
        if self.sync_policy() && self.data_dirty {
            // A closed segment is no longer what `tick`/`sync` flush: flush it now.
            self.sync_data(true)?;
        }
        if self.active_broken {
            let path = self.active_seg().path.clone();
            let len = self.active.metadata().map_err(io_err(&path))?.len();
            self.active_seg_mut().size = len;
        }
        let header = SegmentHeader {
            id: self.next_id,
            covers_from: self.next_id,
            base_seq: self.next_seq,
        };
        let sync = self.sync_policy();
        let (seg, file) = create_segment(&self.dir, header, sync, &mut self.counters)?;
        self.next_id += 1;
        self.segs.push(seg);
        self.active = file;
        self.active_broken = false;
        self.data_dirty = false;
        tracing::debug!(
            id = header.id,
            base_seq = header.base_seq,
            "outbox segment rotated"
        );
        self.reap();
        Ok(())
    }

    /// fsyncs the active segment if the policy (or `force`) says so.
    fn sync_data(&mut self, force: bool) -> Result<(), OutboxError> {
        if !self.data_dirty {
            return Ok(());
        }
        let due = force
            || match self.cfg.fsync {
                FsyncPolicy::Always => true,
                FsyncPolicy::Never => false,
                FsyncPolicy::Interval(d) => self.last_data_sync.elapsed() >= d,
            };
        if !due {
            return Ok(());
        }
        let path = self.active_seg().path.clone();
        self.active.sync_data().map_err(io_err(&path))?;
        self.counters.fsyncs += 1;
        self.data_dirty = false;
        self.last_data_sync = Instant::now();
        Ok(())
    }

    /// Where `seq` is in the index.
    fn locate(&self, seq: u64) -> Option<(usize, usize)> {
        // Segments hold disjoint, increasing seq ranges. A linear walk (a few dozen segments)
        // stays correct even if an empty segment could not be deleted.
        let si = self
            .segs
            .iter()
            .position(|s| s.last_seq().is_some_and(|l| l >= seq))?;
        self.segs[si].find(seq).map(|ei| (si, ei))
    }

    fn mark_acked(&mut self, seq: u64) -> bool {
        let Some((si, ei)) = self.locate(seq) else {
            tracing::debug!(
                seq,
                "outbox ack for a record it does not hold (already acked, compacted or dropped)"
            );
            return false;
        };
        if !self.segs[si].kill(ei) {
            return false;
        }
        self.acked_above.insert(seq);
        self.ack_dirty = true;
        true
    }

    /// Deletes closed segments with nothing left to deliver.
    fn reap(&mut self) {
        self.leftovers.retain(|p| match fs::remove_file(p) {
            Ok(()) => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(_) => true,
        });
        // Never the active (last) segment: its header carries `next_seq` across restarts.
        let mut i = 0;
        while i + 1 < self.segs.len() {
            if self.segs[i].live == 0 {
                let path = self.segs[i].path.clone();
                match fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::debug!(path = %path.display(), "outbox segment fully delivered, deleted");
                        self.segs.remove(i);
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.segs.remove(i);
                        continue;
                    }
                    Err(e) => {
                        // Harmless to keep: its records are all acknowledged. Retried later.
                        tracing::warn!(path = %path.display(), error = %e, "could not delete delivered outbox segment");
                    }
                }
            }
            i += 1;
        }
    }

    fn oldest_live_seq(&mut self) -> Option<(usize, usize)> {
        for (si, seg) in self.segs.iter_mut().enumerate() {
            if seg.live > 0 {
                if let Some(ei) = seg.oldest_live() {
                    return Some((si, ei));
                }
            }
        }
        None
    }

    /// Writes the ack state if it changed and the policy says so; `now` skips the interval
    /// wait, `hard` fsyncs even with `fsync = "never"`.
    fn persist_acks(&mut self, now: bool, hard: bool) -> Result<(), OutboxError> {
        if !self.ack_dirty {
            return Ok(());
        }
        let due = now
            || match self.cfg.fsync {
                FsyncPolicy::Always | FsyncPolicy::Never => true,
                FsyncPolicy::Interval(d) => self.last_ack_persist.elapsed() >= d,
            };
        if !due {
            return Ok(());
        }
        // Everything below the oldest pending record is delivered, whatever the gaps left by
        // compaction and drops; only acks above it need listing.
        let watermark = match self.oldest_live_seq() {
            Some((si, ei)) => self.segs[si].entries[ei].seq - 1,
            None => self.next_seq - 1,
        };
        self.acked_above = self.acked_above.split_off(&(watermark + 1));
        let state = AckState {
            version: ACK_VERSION,
            next_seq: self.next_seq,
            watermark,
            acked: self.acked_above.iter().copied().collect(),
        };
        let line = serde_json::to_string(&state).map_err(|e| OutboxError::Io {
            path: self.dir.join(ACK_FILE),
            source: io::Error::other(e),
        })?;
        let text = format!("{line}\n{:08x}\n", crc32fast::hash(line.as_bytes()));
        let tmp = self.dir.join(ACK_TMP);
        let dst = self.dir.join(ACK_FILE);
        let sync = self.sync_policy() || hard;
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
            if sync {
                f.sync_data().map_err(io_err(&tmp))?;
                self.counters.fsyncs += 1;
            }
        }
        fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
        if sync {
            sync_dir(&self.dir).map_err(io_err(&self.dir))?;
            self.counters.fsyncs += 1;
        }
        self.ack_dirty = false;
        self.last_ack_persist = Instant::now();
        Ok(())
    }

    fn read_after(&mut self, after: u64, limit: usize) -> Result<Vec<Record>, OutboxError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for si in 0..self.segs.len() {
            let seg = &self.segs[si];
            if seg.live == 0 || seg.last_seq().is_none_or(|l| l <= after) {
                continue;
            }
            let start = seg
                .entries
                .partition_point(|e| e.seq <= after)
                .max(seg.first_live);
            let path = seg.path.clone();
            let mut reader: Option<SegReader> = None;
            for ei in start..self.segs[si].entries.len() {
                let e = self.segs[si].entries[ei];
                if !e.live {
                    continue;
                }
                if reader.is_none() {
                    let f = match File::open(&path) {
                        Ok(f) => f,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            // Deleted behind our back: failing every read from now on would
                            // block delivery of everything after it.
                            self.segment_lost(si);
                            break;
                        }
                        Err(e) => return Err(io_err(&path)(e)),
                    };
                    reader = Some(SegReader::new(f).map_err(io_err(&path))?);
                }
                let Some(r) = reader.as_mut() else { break };
                match r.frame_at(e.offset).map_err(io_err(&path))? {
                    Some(f) if f.seq == e.seq => out.push(Record {
                        seq: f.seq,
                        class: f.class,
                        topic: f.topic,
                        payload: f.payload,
                    }),
                    _ => self.corrupt_at_read(si, ei),
                }
                if out.len() >= limit {
                    break;
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        if let Some(last) = out.last() {
            self.handed_out = self.handed_out.max(last.seq);
        }
        Ok(out)
    }

    /// A segment file vanished (removed by hand?): its records are gone; say so and move on.
    fn segment_lost(&mut self, si: usize) {
        let seg = &mut self.segs[si];
        let mut lost = 0;
        for ei in 0..seg.entries.len() {
            if seg.kill(ei) {
                lost += 1;
            }
        }
        tracing::error!(path = %seg.path.display(), records = lost, "outbox segment file disappeared; its records are lost");
        self.counters.corrupt += lost;
    }

    /// A record that was intact on open no longer is (bit rot since): skip it for good.
    fn corrupt_at_read(&mut self, si: usize, ei: usize) {
        let seg = &mut self.segs[si];
        let seq = seg.entries[ei].seq;
        tracing::error!(path = %seg.path.display(), seq, "outbox record is corrupt on disk; skipped");
        seg.kill(ei);
        self.counters.corrupt += 1;
    }

    fn stats(&mut self) -> OutboxStats {
        let oldest_pending_age = self.oldest_live_seq().and_then(|(si, ei)| {
            let e = self.segs[si].entries[ei];
            let ts = match self.age_cache {
                Some((seq, ts)) if seq == e.seq => ts,
                _ => {
                    let path = &self.segs[si].path;
                    let f = File::open(path).ok()?;
                    let frame = SegReader::new(f).ok()?.frame_at(e.offset).ok()??;
                    self.age_cache = Some((e.seq, frame.ts_ms));
                    frame.ts_ms
                }
            };
            Some(Duration::from_millis(now_ms().saturating_sub(ts)))
        });
        let disk_bytes = self.disk_bytes();
        OutboxStats {
            pending: self.segs.iter().map(|s| s.live as u64).sum(),
            pending_bytes: self.segs.iter().map(|s| s.live_bytes).sum(),
            oldest_pending_age,
            dropped_total: self.counters.dropped,
            compacted_total: self.counters.compacted,
            corrupt_skipped_total: self.counters.corrupt,
            truncated_tail_bytes_total: self.counters.truncated_tail_bytes,
            rejected_total: self.counters.rejected,
            fsyncs_total: self.counters.fsyncs,
            disk_bytes,
            max_bytes: self.cfg.max_bytes,
            over_limit: disk_bytes > self.cfg.max_bytes,
            segments: self.segs.len() as u64,
        }
    }

    // --- full-disk policy -------------------------------------------------------------------

    /// Count bytes compaction may take from `seg`: live, never compacted, not handed out.
    fn eligible_count_bytes(&self, seg: &Segment) -> u64 {
        match (seg.entries.first(), seg.entries.last()) {
            (Some(first), Some(_)) if first.seq > self.handed_out => seg.raw_count_bytes,
            (Some(_), Some(last)) if last.seq > self.handed_out => seg
                .entries
                .iter()
                .filter(|e| e.live && e.raw_count() && e.seq > self.handed_out)
                .map(|e| u64::from(e.len))
                .sum(),
            _ => 0,
        }
    }

    /// How many segments from the oldest are needed to reach `target` of `per_seg` bytes (all
    /// closed ones when the total falls short). Closes the active segment first when it holds
    /// some of those bytes, since only closed segments are rewritten.
    fn prefix_for(
        &mut self,
        target: u64,
        per_seg: impl Fn(&Inner, &Segment) -> u64,
    ) -> Result<usize, OutboxError> {
        let find = |s: &Inner| {
            let mut acc = 0;
            for (i, seg) in s.segs.iter().enumerate() {
                acc += per_seg(s, seg);
                if acc >= target {
                    return i + 1;
                }
            }
            s.segs.len()
        };
        let mut upto = find(self);
        if upto == self.segs.len() && per_seg(self, self.active_seg()) > 0 {
            self.rotate()?;
            // Rotation may have deleted delivered segments: count again.
            upto = find(self);
        }
        Ok(upto.min(self.segs.len() - 1))
    }

    /// Compacts counts, then drops status/other, to make `needed` bytes fit; decides whether
    /// the append may go ahead. See the module docs for the policy.
    fn make_room(&mut self, needed: u64, class: Class) -> Result<(), OutboxError> {
        let max = self.cfg.max_bytes;
        let low_water = max - max / 8;
        // A rewrite costs up to the whole outbox: only do one when it frees a worthwhile amount,
        // or a full outbox would be rewritten on every append to free a few bytes.
        let min_gain = max / 32;
        let over = |s: &Self| (s.disk_bytes() + needed).saturating_sub(max);
        let to_low_water = |s: &Self| (s.disk_bytes() + needed).saturating_sub(low_water);

        if self.aggregator.is_some() {
            let eligible: u64 = self.segs.iter().map(|s| self.eligible_count_bytes(s)).sum();
            if eligible >= min_gain.max(over(self)) {
                let target = to_low_water(self);
                let upto = self.prefix_for(target, |s: &Inner, seg: &Segment| {
                    s.eligible_count_bytes(seg)
                })?;
                if upto > 0 {
                    if let Err(e) = self.rewrite(upto, true, 0) {
                        tracing::error!(error = %e, "outbox compaction failed; originals kept");
                    }
                }
            }
        }

        let over_now = over(self);
        if over_now > 0 {
            let droppable: u64 = self.segs.iter().map(|s| s.droppable_bytes).sum();
            // Dropping only pays off when it makes the record fit.
            if droppable >= min_gain.max(over_now) {
                let budget = to_low_water(self).min(droppable);
                let upto =
                    self.prefix_for(budget, |_: &Inner, seg: &Segment| seg.droppable_bytes)?;
                if upto > 0 {
                    if let Err(e) = self.rewrite(upto, false, budget) {
                        tracing::error!(error = %e, "outbox could not drop old records; originals kept");
                    }
                }
            }
        }

        let disk_bytes = self.disk_bytes();
        if disk_bytes + needed <= max {
            return Ok(());
        }
        if class == Class::Alert {
            tracing::error!(
                disk_bytes,
                max_bytes = max,
                needed,
                "outbox is full of alerts and unsendable counts; accepting the alert beyond max_bytes"
            );
            return Ok(());
        }
        self.counters.rejected += 1;
        tracing::warn!(%class, disk_bytes, max_bytes = max, needed, "outbox full; record rejected");
        Err(OutboxError::Full {
            class,
            needed,
            disk_bytes,
            max_bytes: max,
        })
    }

    /// Rewrites closed segments `segs[..upto]` into one: acknowledged records go, eligible
    /// counts are aggregated when `compact`, and status/other records are dropped oldest first
    /// until `drop_budget` bytes are gone. Crash-safe: see the module docs.
    fn rewrite(&mut self, upto: usize, compact: bool, drop_budget: u64) -> Result<(), OutboxError> {
        debug_assert!(upto > 0 && upto < self.segs.len());
        let first = &self.segs[0];
        let last = &self.segs[upto - 1];
        let header = SegmentHeader {
            id: last.id,
            covers_from: first.id,
            base_seq: first.base_seq,
        };
        let final_path = last.path.clone();
        let tmp_path = self
            .dir
            .join(format!("{:020}.{SEG_EXT}.{TMP_EXT}", header.id));
        let chunk_cap = self.cfg.segment_bytes.clamp(1 << 20, 16 << 20);

        let mut out = RewriteOut {
            w: BufWriter::new(File::create(&tmp_path).map_err(io_err(&tmp_path))?),
            seg: Segment::new(header.id, header.base_seq, final_path.clone(), HEADER_LEN),
            path: tmp_path.clone(),
        };
        let result = (|| -> Result<RewriteTally, OutboxError> {
            out.w
                .write_all(&header.encode())
                .map_err(io_err(&tmp_path))?;
            let mut tally = RewriteTally::default();
            let mut chunk: Vec<Frame> = Vec::new();
            let mut held: Vec<Frame> = Vec::new();
            let mut chunk_bytes = 0u64;
            let mut dropped_bytes = 0u64;
            for si in 0..upto {
                if self.segs[si].live == 0 {
                    continue;
                }
                let path = self.segs[si].path.clone();
                let f = File::open(&path).map_err(io_err(&path))?;
                let mut r = SegReader::new(f).map_err(io_err(&path))?;
                let start = self.segs[si].first_live;
                for ei in start..self.segs[si].entries.len() {
                    let e = self.segs[si].entries[ei];
                    if !e.live {
                        continue;
                    }
                    let frame = match r.frame_at(e.offset).map_err(io_err(&path))? {
                        Some(f) if f.seq == e.seq => f,
                        _ => {
                            tally.corrupt.push((si, ei));
                            continue;
                        }
                    };
                    if dropped_bytes < drop_budget && frame.class.droppable() {
                        dropped_bytes += u64::from(frame.frame_len);
                        tally.dropped += 1;
                        continue;
                    }
                    if compact && frame.class == Class::Count && frame.seq > self.handed_out {
                        chunk_bytes += u64::from(frame.frame_len);
                        chunk.push(frame);
                    } else if chunk.is_empty() {
                        out.write(&frame)?;
                    } else {
                        chunk_bytes += u64::from(frame.frame_len);
                        held.push(frame);
                    }
                    if chunk_bytes >= chunk_cap {
                        self.flush_chunk(&mut chunk, &mut held, &mut out, &mut tally)?;
                        chunk_bytes = 0;
                    }
                }
            }
            self.flush_chunk(&mut chunk, &mut held, &mut out, &mut tally)?;
            out.w.flush().map_err(io_err(&tmp_path))?;
            // Always fsync here whatever the policy: the originals may already be durable, and
            // the rename must not make them disappear before their replacement is on disk.
            out.w.get_ref().sync_all().map_err(io_err(&tmp_path))?;
            Ok(tally)
        })();
        let tally = match result {
            Ok(t) => t,
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                return Err(e);
            }
        };
        self.counters.fsyncs += 1;
        let RewriteOut { seg: new_seg, .. } = out;
        fs::rename(&tmp_path, &final_path).map_err(|e| {
            let _ = fs::remove_file(&tmp_path);
            io_err(&final_path)(e)
        })?;

        // Committed: from here the merged file is the truth, whatever fails next.
        if let Err(e) = sync_dir(&self.dir) {
            tracing::error!(error = %e, "outbox: fsync of the directory after compaction failed");
        } else {
            self.counters.fsyncs += 1;
        }
        for seg in &self.segs[..upto - 1] {
            if let Err(e) = fs::remove_file(&seg.path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::error!(path = %seg.path.display(), error = %e, "outbox: could not delete a compacted-away segment; retrying later");
                    self.leftovers.push(seg.path.clone());
                }
            }
        }
        for &(si, ei) in &tally.corrupt {
            self.corrupt_at_read(si, ei);
        }
        let old_disk = self.disk_bytes();
        self.segs.splice(..upto, [new_seg]);
        self.counters.dropped += tally.dropped;
        self.counters.compacted += tally.compacted;
        self.age_cache = None;
        tracing::info!(
            segments = upto,
            dropped = tally.dropped,
            counts_in = tally.counts_in,
            counts_out = tally.counts_out,
            freed_bytes = old_disk.saturating_sub(self.disk_bytes()),
            disk_bytes = self.disk_bytes(),
            "outbox compacted to stay within max_bytes"
        );
        if tally.dropped > 0 {
            tracing::warn!(
                dropped = tally.dropped,
                "outbox full: dropped oldest status/other records"
            );
        }
        self.reap();
        Ok(())
    }

    /// Aggregates the counts of one chunk and writes them, with the records held back while
    /// the chunk was open, in seq order.
    fn flush_chunk(
        &self,
        chunk: &mut Vec<Frame>,
        held: &mut Vec<Frame>,
        out: &mut RewriteOut,
        tally: &mut RewriteTally,
    ) -> Result<(), OutboxError> {
        if chunk.is_empty() {
            for f in held.drain(..) {
                out.write(&f)?;
            }
            return Ok(());
        }
        let inputs: Vec<Record> = chunk
            .iter()
            .map(|f| Record {
                seq: f.seq,
                class: f.class,
                topic: f.topic.clone(),
                payload: f.payload.clone(),
            })
            .collect();
        let outputs = self
            .aggregator
            .as_ref()
            .and_then(|agg| match catch_unwind(AssertUnwindSafe(|| agg(&inputs))) {
                Ok(v) => Some(v),
                Err(_) => {
                    tracing::error!("outbox aggregator panicked; counts kept as they are");
                    None
                }
            })
            .filter(|v| {
                let ok = v.len() <= inputs.len()
                    && v.iter().all(|r| {
                        r.topic.len() <= usize::from(u16::MAX)
                            && frame_len(&r.topic, &r.payload) <= MAX_FRAME
                    });
                if !ok {
                    tracing::error!(
                        inputs = inputs.len(),
                        outputs = v.len(),
                        "outbox aggregator returned more records than it got, or oversized ones; counts kept as they are"
                    );
                }
                ok
            });
        // Aggregates take the seqs (and append times) of the oldest records they replace.
        let replaced: Vec<Frame> = match outputs {
            Some(outs) => {
                tally.counts_in += chunk.len() as u64;
                tally.counts_out += outs.len() as u64;
                tally.compacted += (chunk.len() - outs.len()) as u64;
                chunk
                    .iter()
                    .zip(outs)
                    .map(|(orig, r)| Frame {
                        seq: orig.seq,
                        ts_ms: orig.ts_ms,
                        class: Class::Count,
                        flags: FLAG_COMPACTED,
                        frame_len: frame_len(&r.topic, &r.payload) as u32,
                        topic: r.topic,
                        payload: r.payload,
                    })
                    .collect()
            }
            None => chunk
                .iter()
                .cloned()
                .map(|mut f| {
                    // Mark as seen so a failing aggregator is not retried on every append.
                    f.flags |= FLAG_COMPACTED;
                    f
                })
                .collect(),
        };
        chunk.clear();
        let mut a = replaced.into_iter().peekable();
        let mut b = held.drain(..).peekable();
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.seq < y.seq,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let f = if take_a { a.next() } else { b.next() };
            if let Some(f) = f {
                out.write(&f)?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct RewriteTally {
    dropped: u64,
    compacted: u64,
    counts_in: u64,
    counts_out: u64,
    /// Entries that failed their checksum while being copied.
    corrupt: Vec<(usize, usize)>,
}

/// The segment being written by a rewrite.
struct RewriteOut {
    w: BufWriter<File>,
    seg: Segment,
    path: PathBuf,
}

impl RewriteOut {
    fn write(&mut self, f: &Frame) -> Result<(), OutboxError> {
        let bytes = encode_frame(f.seq, f.ts_ms, f.class, f.flags, &f.topic, &f.payload);
        self.w.write_all(&bytes).map_err(io_err(&self.path))?;
        let offset = self.seg.size;
        self.seg.size += bytes.len() as u64;
        self.seg.push(Entry {
            seq: f.seq,
            offset,
            len: bytes.len() as u32,
            class: f.class,
            flags: f.flags,
            live: true,
        });
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
