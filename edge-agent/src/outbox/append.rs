//! Appending: writing a record at the end of the active segment, starting a new segment when
//! it is full, and the data fsync policy.

use std::io::Write;
use std::time::Instant;

use super::format::{encode_frame, frame_len, SegmentHeader, HEADER_LEN, MAX_FRAME};
use super::segment::{create_segment, Entry};
use super::{io_err, now_ms, Class, FsyncPolicy, Inner, OutboxError};

impl Inner {
    /// Whether the policy fsyncs at all (anything but `fsync = "never"`).
    pub(super) fn sync_policy(&self) -> bool {
        self.cfg.fsync != FsyncPolicy::Never
    }

    /// Writes one record; see [`Outbox::append`](super::Outbox::append).
    pub(super) fn append(
        &mut self,
        class: Class,
        topic: &str,
        payload: &[u8],
    ) -> Result<u64, OutboxError> {
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

    /// Closes the active segment and starts a new one.
    pub(super) fn rotate(&mut self) -> Result<(), OutboxError> {
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
    pub(super) fn sync_data(&mut self, force: bool) -> Result<(), OutboxError> {
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
}
