//! Reading pending records for the publisher, and what a read does when a record turned corrupt
//! or its segment file vanished since the outbox was opened.

use std::fs::File;
use std::io;

use super::format::SegReader;
use super::{io_err, Inner, OutboxError, Record};

impl Inner {
    /// Up to `limit` pending records with a seq above `after`, in seq order; marks them handed out.
    pub(super) fn read_after(
        &mut self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Record>, OutboxError> {
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
    pub(super) fn corrupt_at_read(&mut self, si: usize, ei: usize) {
        let seg = &mut self.segs[si];
        let seq = seg.entries[ei].seq;
        tracing::error!(path = %seg.path.display(), seq, "outbox record is corrupt on disk; skipped");
        seg.kill(ei);
        self.counters.corrupt += 1;
    }
}
