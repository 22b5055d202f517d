//! Opening an outbox: taking the directory's lock, clearing what interrupted writes left, reading
//! segment headers (a compacted segment may supersede older files), scanning every frame
//! (skipping corrupt ones, truncating torn tails), applying the ack file, and choosing the
//! active segment. [`Inner::open`] runs these steps in order; each is one function below.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::acks::{load_acks, AckState};
use super::format::{self, HeaderError, SegReader, SegmentHeader, FORMAT_VERSION};
use super::segment::{create_segment, Entry, Segment};
use super::{io_err, Counters, FsyncPolicy, Inner, OutboxConfig, OutboxError, SEG_EXT, TMP_EXT};

const LOCK_FILE: &str = "LOCK";

impl Inner {
    /// Opens (creating if needed) the outbox in `dir`; see [`Outbox::open`](super::Outbox::open).
    pub(super) fn open(dir: &Path, cfg: OutboxConfig) -> Result<Inner, OutboxError> {
        cfg.validate()?;
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = lock_dir(dir)?;
        let sync = cfg.fsync != FsyncPolicy::Never;
        let mut counters = Counters::default();

        let listed = list_segments(dir)?;
        let acks = load_acks(dir)?;
        let found = read_headers(listed)?;
        let (kept, leftovers) = remove_superseded(found);
        let next_id = kept.last().map_or(1, |f| f.id + 1);
        let delivered = Delivered::from_acks(acks.as_ref());
        let mut index = index_segments(kept, &delivered, sync, &mut counters)?;
        let next_seq = first_unused_seq(&index, acks.as_ref(), delivered.watermark);
        let (active, next_id) = open_active(
            dir,
            &cfg,
            &mut index,
            next_id,
            next_seq,
            sync,
            &mut counters,
        )?;

        let mut inner = Inner {
            dir: dir.to_path_buf(),
            cfg,
            _lock: lock,
            segs: index.segs,
            active,
            active_broken: false,
            next_seq,
            next_id,
            acked_above: delivered.above,
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
}

/// Takes the directory's advisory lock (one outbox per directory), held by the returned file.
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

/// The segment files in `dir` by ascending id, after removing the temporary files of
/// interrupted compactions or ack writes (whose originals are intact).
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, OutboxError> {
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
    Ok(listed)
}

/// A segment file found on open, with what its header says.
struct Found {
    id: u64,
    path: PathBuf,
    /// `None` when the header is corrupt or names another id: the file name is used.
    header: Option<SegmentHeader>,
    /// Shorter than a header: a crash while the segment was being created.
    short: bool,
}

/// Reads every segment's header. Headers come first: a compacted segment may supersede older
/// files a crash left behind.
fn read_headers(listed: Vec<(u64, PathBuf)>) -> Result<Vec<Found>, OutboxError> {
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
    Ok(found)
}

/// Deletes the segments a compacted segment's `covers_from` says it replaces (a crash came
/// between its rename and their deletion). Returns the segments to read, and the superseded
/// files that could not be deleted (retried later).
fn remove_superseded(found: Vec<Found>) -> (Vec<Found>, Vec<PathBuf>) {
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
    (kept, leftovers)
}

/// What the ack file says was delivered.
struct Delivered {
    /// Every seq up to it is delivered.
    watermark: u64,
    /// Delivered seqs above the watermark (acknowledged out of order).
    above: BTreeSet<u64>,
}

impl Delivered {
    /// Nothing delivered without an ack file (records are then re-sent, never lost).
    fn from_acks(acks: Option<&AckState>) -> Delivered {
        match acks {
            Some(a) => Delivered {
                watermark: a.watermark,
                above: a
                    .acked
                    .iter()
                    .copied()
                    .filter(|&s| s > a.watermark)
                    .collect::<BTreeSet<u64>>(),
            },
            None => Delivered {
                watermark: 0,
                above: BTreeSet::new(),
            },
        }
    }

    fn contains(&self, seq: u64) -> bool {
        seq <= self.watermark || self.above.contains(&seq)
    }
}

/// The index rebuilt from the segment files.
struct Index {
    segs: Vec<Segment>,
    /// Highest seq of any intact record (0 when none).
    last_seq: u64,
    /// Highest `base_seq` of any segment header.
    max_base: u64,
    /// The newest segment's header was intact (a new record may go behind it).
    last_header_ok: bool,
}

/// Scans the kept segments oldest first and indexes their records; deletes segments with an
/// incomplete header.
fn index_segments(
    kept: Vec<Found>,
    delivered: &Delivered,
    sync: bool,
    counters: &mut Counters,
) -> Result<Index, OutboxError> {
    let n_kept = kept.len();
    let mut index = Index {
        segs: Vec::with_capacity(n_kept),
        last_seq: 0,
        max_base: 0,
        last_header_ok: false,
    };
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
        let header_ok = f.header.is_some();
        let seg = index_segment(f, is_last, &mut index.last_seq, delivered, sync, counters)?;
        index.max_base = index.max_base.max(seg.base_seq);
        index.last_header_ok = header_ok;
        index.segs.push(seg);
    }
    Ok(index)
}

/// Checks every frame of one segment (records must come after `last_seq`, which it advances),
/// counts corrupt ones, truncates a bad tail, and indexes the intact records; those in
/// `delivered` are indexed as dead.
fn index_segment(
    f: Found,
    is_last: bool,
    last_seq: &mut u64,
    delivered: &Delivered,
    sync: bool,
    counters: &mut Counters,
) -> Result<Segment, OutboxError> {
    let file = File::open(&f.path).map_err(io_err(&f.path))?;
    let mut r = SegReader::new(file).map_err(io_err(&f.path))?;
    let scan = format::scan(&mut r, *last_seq).map_err(io_err(&f.path))?;
    let mut size = r.len();
    if scan.corrupt > 0 {
        counters.corrupt += scan.corrupt;
        tracing::error!(path = %f.path.display(), records = scan.corrupt, bytes = scan.corrupt_bytes, "outbox segment has corrupt records; skipped them, later records kept");
    }
    if let Some(at) = scan.truncate_at {
        truncate_tail(&f.path, size, at, is_last, sync, counters)?;
        size = at;
    }
    let base_seq = f.header.map_or(0, |h| h.base_seq);
    let mut seg = Segment::new(f.id, base_seq, f.path, size);
    for s in scan.records {
        *last_seq = s.seq;
        seg.push(Entry {
            seq: s.seq,
            offset: s.offset,
            len: s.frame_len,
            class: s.class,
            flags: s.flags,
            live: !delivered.contains(s.seq),
        });
    }
    Ok(seg)
}

/// Cuts the segment at `path` (of `size` bytes) back to its last intact frame, ending at `at`.
/// In the active (last) segment that is a torn write; in a closed one, corruption.
fn truncate_tail(
    path: &Path,
    size: u64,
    at: u64,
    is_last: bool,
    sync: bool,
    counters: &mut Counters,
) -> Result<(), OutboxError> {
    let cut = size - at;
    if is_last {
        tracing::warn!(path = %path.display(), bytes = cut, "outbox: truncating torn tail of the active segment (interrupted write)");
    } else {
        tracing::error!(path = %path.display(), bytes = cut, "outbox: truncating corrupt tail of a closed segment");
        counters.corrupt += 1;
    }
    let wf = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    wf.set_len(at).map_err(io_err(path))?;
    if sync {
        wf.sync_all().map_err(io_err(path))?;
        counters.fsyncs += 1;
    }
    counters.truncated_tail_bytes += cut;
    Ok(())
}

/// The next seq to issue: above every record found, every segment's `base_seq` and what the
/// ack file remembers, so seqs never go back even when everything was delivered and deleted.
fn first_unused_seq(index: &Index, acks: Option<&AckState>, watermark: u64) -> u64 {
    [
        1,
        index.last_seq + 1,
        index.max_base,
        acks.map_or(0, |a| a.next_seq),
        watermark.saturating_add(1),
    ]
    .into_iter()
    .max()
    .unwrap_or(1)
}

/// Opens the active segment for appending and returns it with the next segment id.
fn open_active(
    dir: &Path,
    cfg: &OutboxConfig,
    index: &mut Index,
    next_id: u64,
    next_seq: u64,
    sync: bool,
    counters: &mut Counters,
) -> Result<(File, u64), OutboxError> {
    // The last segment becomes the active one, unless it is full or its header cannot be
    // trusted (new records then go to a fresh segment rather than behind a bad header).
    let reuse_last = index.last_header_ok
        && index
            .segs
            .last()
            .is_some_and(|s| s.size < cfg.segment_bytes);
    if reuse_last {
        let last = index
            .segs
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_default();
        let f = OpenOptions::new()
            .append(true)
            .open(&last)
            .map_err(io_err(&last))?;
        Ok((f, next_id))
    } else {
        let header = SegmentHeader {
            id: next_id,
            covers_from: next_id,
            base_seq: next_seq,
        };
        let (seg, f) = create_segment(dir, header, sync, counters)?;
        index.segs.push(seg);
        Ok((f, next_id + 1))
    }
}
