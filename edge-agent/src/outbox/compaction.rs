//! Making room when the disk bound is reached (the full-disk policy of [`super`]'s docs):
//! choosing which oldest segments to rewrite, and rewriting them into one segment with
//! acknowledged records gone, counts aggregated and status/other records dropped.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use super::format::{
    encode_frame, frame_len, Frame, SegReader, SegmentHeader, FLAG_COMPACTED, HEADER_LEN, MAX_FRAME,
};
use super::segment::{Entry, Segment};
use super::{io_err, sync_dir, Class, Inner, OutboxError, Record, SEG_EXT, TMP_EXT};

impl Inner {
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
    pub(super) fn make_room(&mut self, needed: u64, class: Class) -> Result<(), OutboxError> {
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

        let mut out = RewriteOut {
            w: BufWriter::new(File::create(&tmp_path).map_err(io_err(&tmp_path))?),
            seg: Segment::new(header.id, header.base_seq, final_path.clone(), HEADER_LEN),
            path: tmp_path.clone(),
        };
        let tally = match self.write_merged(upto, compact, drop_budget, &header, &mut out) {
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
        self.commit_rewrite(upto, new_seg, tally);
        Ok(())
    }

    /// Writes the merged segment of `rewrite` into `out` and fsyncs it: the header, then every
    /// live record of `segs[..upto]` that is neither dropped nor aggregated, and the aggregates,
    /// in seq order.
    fn write_merged(
        &self,
        upto: usize,
        compact: bool,
        drop_budget: u64,
        header: &SegmentHeader,
        out: &mut RewriteOut,
    ) -> Result<RewriteTally, OutboxError> {
        let chunk_cap = self.cfg.segment_bytes.clamp(1 << 20, 16 << 20);
        out.w
            .write_all(&header.encode())
            .map_err(io_err(&out.path))?;
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
                    self.flush_chunk(&mut chunk, &mut held, out, &mut tally)?;
                    chunk_bytes = 0;
                }
            }
        }
        self.flush_chunk(&mut chunk, &mut held, out, &mut tally)?;
        out.w.flush().map_err(io_err(&out.path))?;
        // Always fsync here whatever the policy: the originals may already be durable, and
        // the rename must not make them disappear before their replacement is on disk.
        out.w.get_ref().sync_all().map_err(io_err(&out.path))?;
        Ok(tally)
    }

    /// Puts the renamed merged segment in place of `segs[..upto]`: deletes the files it
    /// replaces, updates the index and counters, and logs what the rewrite did.
    fn commit_rewrite(&mut self, upto: usize, new_seg: Segment, tally: RewriteTally) {
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
        // Aggregates take the seqs (and append times) of the oldest records they replace.
        let replaced: Vec<Frame> = match self.aggregate(chunk) {
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
        write_in_seq_order(replaced, held, out)
    }

    /// What the aggregator makes of a chunk of counts; `None` when there is none, or it
    /// panicked or broke its contract (more records than it got, or oversized ones).
    fn aggregate(&self, chunk: &[Frame]) -> Option<Vec<Record>> {
        let inputs: Vec<Record> = chunk
            .iter()
            .map(|f| Record {
                seq: f.seq,
                class: f.class,
                topic: f.topic.clone(),
                payload: f.payload.clone(),
            })
            .collect();
        self.aggregator
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
            })
    }
}

/// Writes the chunk's replacements and the records `held` back while it was open, merged by
/// seq (both are in seq order).
fn write_in_seq_order(
    replaced: Vec<Frame>,
    held: &mut Vec<Frame>,
    out: &mut RewriteOut,
) -> Result<(), OutboxError> {
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
