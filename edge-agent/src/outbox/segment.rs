//! The in-memory index of the segment files: one [`Entry`] per record (where it is, what class,
//! whether it is still pending) grouped by [`Segment`], with the running totals the full-disk
//! policy decides on; and the questions [`Inner`] answers from it (where a seq is, the oldest
//! pending record, the stats).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::format::{SegReader, SegmentHeader, FLAG_COMPACTED, HEADER_LEN};
use super::{io_err, now_ms, sync_dir, Class, Counters, Inner, OutboxError, OutboxStats, SEG_EXT};

/// Per-record index entry; topic and payload stay on disk.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) seq: u64,
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(super) class: Class,
    pub(super) flags: u8,
    /// Not acknowledged, dropped, compacted away or found corrupt.
    pub(super) live: bool,
}

impl Entry {
    /// Counts towards what compaction can still gain.
    pub(super) fn raw_count(&self) -> bool {
        self.class == Class::Count && self.flags & FLAG_COMPACTED == 0
    }
}

/// The index of one segment file, with running totals over its live entries.
pub(super) struct Segment {
    pub(super) id: u64,
    pub(super) base_seq: u64,
    pub(super) path: PathBuf,
    pub(super) size: u64,
    pub(super) entries: Vec<Entry>,
    pub(super) live: usize,
    pub(super) live_bytes: u64,
    /// Live count records never offered to the aggregator.
    pub(super) raw_count_bytes: u64,
    /// Live status/other records.
    pub(super) droppable_bytes: u64,
    /// Every entry before this index is dead; saves rescanning acked prefixes.
    pub(super) first_live: usize,
}

impl Segment {
    pub(super) fn new(id: u64, base_seq: u64, path: PathBuf, size: u64) -> Segment {
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

    pub(super) fn push(&mut self, e: Entry) {
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
    pub(super) fn kill(&mut self, idx: usize) -> bool {
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

    pub(super) fn last_seq(&self) -> Option<u64> {
        self.entries.last().map(|e| e.seq)
    }

    fn oldest_live(&mut self) -> Option<usize> {
        while self.first_live < self.entries.len() && !self.entries[self.first_live].live {
            self.first_live += 1;
        }
        (self.first_live < self.entries.len()).then_some(self.first_live)
    }
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.{SEG_EXT}"))
}

/// Creates segment file `header.id` holding just its header (durably unless `sync` is false).
pub(super) fn create_segment(
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

impl Inner {
    pub(super) fn active_seg(&self) -> &Segment {
        // `segs` is never empty: open creates an active segment and nothing removes the last.
        &self.segs[self.segs.len() - 1]
    }

    pub(super) fn active_seg_mut(&mut self) -> &mut Segment {
        let n = self.segs.len();
        &mut self.segs[n - 1]
    }

    pub(super) fn disk_bytes(&self) -> u64 {
        self.segs.iter().map(|s| s.size).sum()
    }

    /// Where `seq` is in the index.
    pub(super) fn locate(&self, seq: u64) -> Option<(usize, usize)> {
        // Segments hold disjoint, increasing seq ranges. A linear walk (a few dozen segments)
        // stays correct even if an empty segment could not be deleted.
        let si = self
            .segs
            .iter()
            .position(|s| s.last_seq().is_some_and(|l| l >= seq))?;
        self.segs[si].find(seq).map(|ei| (si, ei))
    }

    pub(super) fn oldest_live_seq(&mut self) -> Option<(usize, usize)> {
        for (si, seg) in self.segs.iter_mut().enumerate() {
            if seg.live > 0 {
                if let Some(ei) = seg.oldest_live() {
                    return Some((si, ei));
                }
            }
        }
        None
    }

    /// Counters and gauges for [`Outbox::stats`](super::Outbox::stats).
    pub(super) fn stats(&mut self) -> OutboxStats {
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
}
