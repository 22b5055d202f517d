//! Acknowledgements: marking records delivered, deleting segments with nothing left to deliver,
//! and the `acks` file that carries the ack state across restarts (format in [`super`]'s docs).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{io_err, sync_dir, FsyncPolicy, Inner, OutboxError};

pub(super) const ACK_FILE: &str = "acks";
const ACK_TMP: &str = "acks.tmp";
const ACK_VERSION: u32 = 1;

/// The ack file's first line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AckState {
    pub(super) version: u32,
    pub(super) next_seq: u64,
    pub(super) watermark: u64,
    pub(super) acked: Vec<u64>,
}

/// Reads the ack file. A missing or corrupt one means "nothing acknowledged": records are
/// re-sent rather than lost.
pub(super) fn load_acks(dir: &Path) -> Result<Option<AckState>, OutboxError> {
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
    /// Marks `seq` delivered in the index; false when it was not pending.
    pub(super) fn mark_acked(&mut self, seq: u64) -> bool {
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
    pub(super) fn reap(&mut self) {
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

    /// Writes the ack state if it changed and the policy says so; `now` skips the interval
    /// wait, `hard` fsyncs even with `fsync = "never"`.
    pub(super) fn persist_acks(&mut self, now: bool, hard: bool) -> Result<(), OutboxError> {
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
}
