//! Verification of the whole log: the chain recomputed under each epoch's rule, the epochs' own tags, and
//! every checkpoint of the head.

use std::collections::{HashMap, HashSet};

use super::{
    checkpoint_mac, entry_hash, epoch_tag, epochs, keyed_entry_hash, AuditEntry, AuditError,
    AuditLog, ChainCheck, Checkpoint, Epoch, GENESIS,
};
use crate::db::DbError;

impl AuditLog {
    /// Walks the whole chain in order, in pages, recomputing every hash under the rule of its epoch, then
    /// compares it with every checkpoint in the checkpoint file.
    pub async fn verify(&self) -> Result<ChainCheck, AuditError> {
        let eps = epochs(&self.db).await?;
        let (checkpoints, bad_line) = self.read_checkpoints()?;
        let wanted: HashSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
        let mut at_checkpoints: HashMap<i64, String> = HashMap::from([(0, GENESIS.to_string())]);
        let mut check = ChainCheck {
            entries: 0,
            ok: true,
            first_bad_seq: None,
            problem: None,
            head: GENESIS.to_string(),
            keyed_from_seq: eps.first().map(|e| e.from_seq),
            checkpoints: checkpoints.len(),
            last_checkpoint: checkpoints.last().cloned(),
        };
        let fail = |mut c: ChainCheck, seq: Option<i64>, problem: String| {
            c.ok = false;
            c.first_bad_seq = seq;
            c.problem = Some(problem);
            c
        };
        if let Some(problem) = bad_line {
            return Ok(fail(check, None, problem));
        }
        if let Some(problem) = self.check_epochs(&eps) {
            return Ok(fail(check, eps.first().map(|e| e.from_seq), problem));
        }
        let mut prev_hash = GENESIS.to_string();
        let mut expect_seq = 1i64;
        loop {
            let rows: Vec<AuditEntry> = sqlx::query_as(
                "SELECT seq, ts_ms, actor, action, target, detail, prev_hash, hash FROM audit_log \
                 WHERE seq >= $1 ORDER BY seq LIMIT 1000",
            )
            .bind(expect_seq)
            .fetch_all(&self.db.pool)
            .await
            .map_err(DbError::from)?;
            if rows.is_empty() {
                break;
            }
            for e in rows {
                if e.seq != expect_seq {
                    let p = format!("entry {expect_seq} is missing (next is {})", e.seq);
                    return Ok(fail(check, Some(expect_seq), p));
                }
                if e.prev_hash != prev_hash {
                    let p = format!("entry {} does not link to entry {}", e.seq, e.seq - 1);
                    return Ok(fail(check, Some(e.seq), p));
                }
                let epoch = eps.iter().rev().find(|ep| ep.from_seq <= e.seq);
                let h = match epoch {
                    None => entry_hash(
                        &e.prev_hash,
                        e.seq,
                        e.ts_ms,
                        &e.actor,
                        &e.action,
                        &e.target,
                        &e.detail,
                    ),
                    Some(ep) => match self.key_by_id(&ep.key_id) {
                        Some(k) => keyed_entry_hash(
                            k,
                            &e.prev_hash,
                            e.seq,
                            e.ts_ms,
                            &e.actor,
                            &e.action,
                            &e.target,
                            &e.detail,
                        ),
                        None => {
                            let p = format!(
                                "entry {} is keyed with audit key {}, which this hub does not have",
                                e.seq, ep.key_id
                            );
                            return Ok(fail(check, Some(e.seq), p));
                        }
                    },
                };
                if h != e.hash {
                    let p = format!(
                        "entry {} was altered: its content does not match its hash",
                        e.seq
                    );
                    return Ok(fail(check, Some(e.seq), p));
                }
                if wanted.contains(&e.seq) {
                    at_checkpoints.insert(e.seq, e.hash.clone());
                }
                prev_hash = e.hash;
                expect_seq += 1;
                check.entries += 1;
            }
        }
        check.head = prev_hash;
        let entries = check.entries;
        let keyed_from = check.keyed_from_seq.unwrap_or(0);
        for c in &checkpoints {
            let when =
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(c.at_ms) * 1_000_000)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| c.at_ms.to_string());
            if c.seq > entries {
                let p = format!(
                    "the log ends at entry {entries} but the checkpoint of {when} sealed entry {}: \
                     {} entries were deleted from the tail",
                    c.seq,
                    c.seq - entries
                );
                return Ok(fail(check, Some(entries + 1), p));
            }
            if at_checkpoints.get(&c.seq) != Some(&c.head) {
                let p = format!(
                    "entry {} does not match the checkpoint of {when}: the chain was rewritten",
                    c.seq
                );
                return Ok(fail(check, Some(c.seq), p));
            }
            if c.keyed_from_seq != 0 && c.keyed_from_seq != keyed_from {
                let p = format!(
                    "the checkpoint of {when} has the chain keyed from entry {}, the database from {}: \
                     the switch-over record was changed",
                    c.keyed_from_seq,
                    if keyed_from == 0 { "nowhere".to_string() } else { keyed_from.to_string() }
                );
                return Ok(fail(check, Some(c.keyed_from_seq), p));
            }
        }
        Ok(check)
    }

    /// Each epoch's tag must verify under its own key, and epochs must start at increasing rows.
    fn check_epochs(&self, eps: &[Epoch]) -> Option<String> {
        let mut prev_from = 0;
        for ep in eps {
            let Some(k) = self.key_by_id(&ep.key_id) else {
                return Some(format!(
                    "key epoch {} uses audit key {}, which this hub does not have",
                    ep.epoch, ep.key_id
                ));
            };
            if epoch_tag(k, ep.epoch, ep.from_seq) != ep.tag || ep.from_seq <= prev_from {
                return Some(format!(
                    "the record of key epoch {} (keyed from entry {}) was altered",
                    ep.epoch, ep.from_seq
                ));
            }
            prev_from = ep.from_seq;
        }
        None
    }

    /// Every checkpoint in the file, or the first line that is not a valid, sealed checkpoint.
    fn read_checkpoints(&self) -> Result<(Vec<Checkpoint>, Option<String>), AuditError> {
        let Some(path) = &self.checkpoint_file else {
            return Ok((Vec::new(), None));
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(AuditError::Checkpoints {
                    path: path.clone(),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let bad = |why: &str| Some(format!("{} line {}: {why}", path.display(), i + 1));
            let Ok(c) = serde_json::from_str::<Checkpoint>(line) else {
                return Ok((out, bad("not a checkpoint")));
            };
            let Some(k) = self.key_by_id(&c.key_id) else {
                return Ok((
                    out,
                    bad(&format!("sealed with unknown audit key {}", c.key_id)),
                ));
            };
            if checkpoint_mac(k, &c) != c.mac {
                return Ok((
                    out,
                    bad("its seal does not match: the checkpoint was forged or edited"),
                ));
            }
            out.push(c);
        }
        Ok((out, None))
    }
}
