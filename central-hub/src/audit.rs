//! The audit log: every read of biometric data, every search, enrolment and review decision, append-only
//! and hash-chained. Row `n` stores `hash = HMAC-SHA256(key, prev_hash, seq, ts_ms, actor, action, target,
//! detail)` with `prev_hash` the hash of row `n - 1` (64 zeros for the first), so changing, deleting or
//! re-ordering any row breaks every hash after it, which `verify` reports with the first bad sequence number.
//!
//! The key lives in a file outside the database (`[audit] key_file`, 0600, made on first use): someone who
//! can write to the database, which may be a PostgreSQL server on another machine, cannot recompute the
//! chain after an edit. Rows written by hubs before the key existed keep the unkeyed rule
//! (`sha256(...)` of the same fields) up to the switch-over recorded in `audit_epochs`, whose rows are
//! themselves tagged with the key. Deleting rows from the tail leaves a valid but shorter chain, so the hub
//! also writes checkpoints of the head (sequence number, hash, time), sealed with an HMAC under the same key,
//! to an append-only file and to the log; `verify` compares the chain with every checkpoint.
//!
//! Why an HMAC and not an Ed25519 signature for checkpoints: verifying the chain needs the secret key anyway,
//! and a signature only adds value where the public key is pinned somewhere an attacker cannot change it,
//! which is one more secret to manage; the HMAC is unforgeable without the key, the same trust as the chain.
//!
//! Owns `audit_log` and `audit_epochs`; the verification of the whole log is in `verify`.

mod verify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::db::{now_ms, Db, DbError};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("audit checkpoint file {path}: {source}")]
    Checkpoints {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the audit chain is keyed with key {chain}, but the key file holds key {file}: restore the key file \
         that belongs to this database, or see docs/security.md on rotating the audit key"
    )]
    WrongKey { chain: String, file: String },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for AuditError {
    fn from(e: sqlx::Error) -> Self {
        AuditError::Db(e.into())
    }
}

fn mac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut m = hmac::Hmac::<sha2_v011::Sha256>::new_from_slice(key)
        .expect("HMAC accepts keys of any length");
    m.update(msg);
    let tag = m.finalize().into_bytes();
    let mut out = [0u8; 32];
    out.copy_from_slice(&tag);
    out
}

/// The secret behind the chain and the checkpoints. Two sub-keys are derived from it so a chain hash can
/// never be replayed as a checkpoint seal; its id (public) names it in epochs and checkpoints.
pub struct AuditKey {
    id: String,
    chain: [u8; 32],
    seal: [u8; 32],
}

impl AuditKey {
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self {
            id: hex::encode(&mac(secret, b"checkpoint audit key id v1")[..8]),
            chain: mac(secret, b"checkpoint audit chain v1"),
            seal: mac(secret, b"checkpoint audit checkpoint v1"),
        }
    }

    /// A fresh random key, held in memory only.
    pub fn generate() -> Result<Self, AuditError> {
        Ok(Self::from_secret(&random_secret(Path::new("(memory)"))?))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads the key file, refusing one that others can read.
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        use std::os::unix::fs::PermissionsExt;
        let err = |message: String| AuditError::Key {
            path: path.into(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "readable by others (mode {mode:o}): run chmod 600 on it"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let bytes = hex::decode(text.trim()).map_err(|_| err("not a hex key".into()))?;
        let secret: [u8; 32] = bytes
            .try_into()
            .map_err(|_| err("must hold 32 bytes (64 hex digits)".into()))?;
        Ok(Self::from_secret(&secret))
    }

    /// Reads the key file, or makes it (0600) when there is none; `true` when it was made now.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), AuditError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        let secret = random_secret(path)?;
        match write_new_key(path, &secret) {
            Ok(()) => Ok((Self::from_secret(&secret), true)),
            // Another hub process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok((Self::load(path)?, false))
            }
            Err(e) => Err(AuditError::Key {
                path: path.into(),
                message: e.to_string(),
            }),
        }
    }
}

fn random_secret(path: &Path) -> Result<[u8; 32], AuditError> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|e| AuditError::Key {
        path: path.into(),
        message: format!("no randomness from the system: {e}"),
    })?;
    Ok(secret)
}

/// Writes a new key file atomically: a private temporary file, then a hard link that fails if the name is
/// taken, so two processes starting at once never read a half-written key.
fn write_new_key(path: &Path, secret: &[u8; 32]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("{}\n", hex::encode(secret)).as_bytes())?;
    f.sync_all()?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// Keys retired by `central-hub audit rotate-key`, kept beside the key file as `<name>.<id>.retired` so
/// rows and checkpoints of earlier epochs stay verifiable.
fn retired_keys(key_file: &Path) -> Vec<AuditKey> {
    let (Some(dir), Some(name)) = (key_file.parent(), key_file.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && n.ends_with(".retired")
        })
        .filter_map(|e| match AuditKey::load(&e.path()) {
            Ok(k) => Some(k),
            Err(err) => {
                tracing::warn!(error = %err, "retired audit key not usable");
                None
            }
        })
        .collect()
}

/// Length-prefixed fields, so ("ab", "c") and ("a", "bc") hash differently.
fn message(
    prev_hash: &str,
    seq: i64,
    ts_ms: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(128 + detail.len());
    for f in [
        prev_hash.as_bytes(),
        &seq.to_be_bytes(),
        &ts_ms.to_be_bytes(),
        actor.as_bytes(),
        action.as_bytes(),
        target.as_bytes(),
        detail.as_bytes(),
    ] {
        m.extend((f.len() as u64).to_be_bytes());
        m.extend(f);
    }
    m
}

/// The unkeyed rule of rows written before the switch-over.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    ts_ms: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> String {
    hex::encode(Sha256::digest(message(
        prev_hash, seq, ts_ms, actor, action, target, detail,
    )))
}

/// The keyed rule.
#[allow(clippy::too_many_arguments)]
pub fn keyed_entry_hash(
    key: &AuditKey,
    prev_hash: &str,
    seq: i64,
    ts_ms: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> String {
    hex::encode(mac(
        &key.chain,
        &message(prev_hash, seq, ts_ms, actor, action, target, detail),
    ))
}

/// One audited action.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub ts_ms: i64,
    /// Username, or `agent:<site>/<agent>`, or `system`.
    pub actor: String,
    /// e.g. `alert.view`, `alert.review`, `person.search`, `watchlist.enrol`, `user.create`.
    pub action: String,
    pub target: String,
    /// Free text or JSON with the specifics (never biometric data itself).
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// One key epoch: rows from `from_seq` on are keyed with `key_id`.
#[derive(Clone, Debug, sqlx::FromRow)]
struct Epoch {
    epoch: i64,
    from_seq: i64,
    key_id: String,
    tag: String,
}

fn epoch_tag(key: &AuditKey, epoch: i64, from_seq: i64) -> String {
    hex::encode(mac(
        &key.seal,
        format!("epoch|v1|{epoch}|{from_seq}|{}", key.id).as_bytes(),
    ))
}

async fn epochs(db: &Db) -> Result<Vec<Epoch>, DbError> {
    Ok(
        sqlx::query_as("SELECT epoch, from_seq, key_id, tag FROM audit_epochs ORDER BY epoch")
            .fetch_all(&db.pool)
            .await?,
    )
}

/// Starts epoch `epoch` for `key` at the row after the current last one.
async fn add_epoch(db: &Db, key: &AuditKey, epoch: i64) -> Result<(), DbError> {
    let (last, _) = head(db).await?;
    let from_seq = last + 1;
    sqlx::query(
        "INSERT INTO audit_epochs (epoch, from_seq, key_id, tag, created_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (epoch) DO NOTHING",
    )
    .bind(epoch)
    .bind(from_seq)
    .bind(&key.id)
    .bind(epoch_tag(key, epoch, from_seq))
    .bind(now_ms())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Makes sure the chain is keyed with `key` from now on: records the switch-over on a database that has
/// none, and refuses a key other than the latest epoch's.
async fn ensure_epoch(db: &Db, key: &AuditKey) -> Result<(), AuditError> {
    if epochs(db).await?.is_empty() {
        add_epoch(db, key, 1).await?;
        tracing::info!(key_id = %key.id, "audit chain keyed from now on");
    }
    let eps = epochs(db).await?;
    match eps.last() {
        Some(e) if e.key_id == key.id => Ok(()),
        Some(e) => Err(AuditError::WrongKey {
            chain: e.key_id.clone(),
            file: key.id.clone(),
        }),
        None => Err(AuditError::Refused(
            "the audit key epoch could not be recorded".into(),
        )),
    }
}

/// The last row's sequence number and hash, or (0, GENESIS) for an empty log.
async fn head(db: &Db) -> Result<(i64, String), DbError> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&db.pool)
            .await?;
    Ok(last.unwrap_or_else(|| (0, GENESIS.to_string())))
}

/// A sealed record of the chain's head at one moment, one JSON line in the checkpoint file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// Last row (the log holds rows 1..=seq).
    pub seq: i64,
    /// That row's hash.
    pub head: String,
    /// First keyed row (0: none yet).
    pub keyed_from_seq: i64,
    pub key_id: String,
    pub at_ms: i64,
    /// HMAC-SHA256 of the fields above under the audit key.
    pub mac: String,
}

fn checkpoint_mac(key: &AuditKey, c: &Checkpoint) -> String {
    hex::encode(mac(
        &key.seal,
        format!(
            "checkpoint|v1|{}|{}|{}|{}|{}",
            c.seq, c.head, c.keyed_from_seq, c.key_id, c.at_ms
        )
        .as_bytes(),
    ))
}

/// The result of checking the whole chain against its key epochs and every checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ChainCheck {
    pub entries: i64,
    pub ok: bool,
    /// First row whose hash or link does not match (or the first row missing from the tail), when not ok.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
    /// Hash of the last row.
    pub head: String,
    /// First row under the keyed rule (rows before it were written by older hubs); None: not keyed yet.
    pub keyed_from_seq: Option<i64>,
    /// Checkpoints compared with the chain.
    pub checkpoints: usize,
    /// The newest of them.
    pub last_checkpoint: Option<Checkpoint>,
}

/// Where the audit key and the checkpoint file live.
#[derive(Clone, Debug)]
pub struct AuditFiles {
    pub key_file: PathBuf,
    pub checkpoint_file: PathBuf,
}

/// Appends to the chain. One hub process writes the log; the lock keeps its appends in sequence, and the
/// primary key on `seq` makes a second writer fail loudly instead of forking the chain.
pub struct AuditLog {
    db: Db,
    lock: Mutex<()>,
    key: Arc<AuditKey>,
    /// Keys of earlier epochs, by id, for verification.
    retired: HashMap<String, AuditKey>,
    checkpoint_file: Option<PathBuf>,
    /// (seq, head) of the last checkpoint written by this process: an idle hub writes no new lines.
    last_checkpoint: Mutex<Option<(i64, String)>>,
}

impl AuditLog {
    /// The hub's log: loads the key file (made on first use) and keys the chain from the next row on if
    /// it is not keyed yet.
    pub async fn open(db: Db, files: &AuditFiles) -> Result<Self, AuditError> {
        let (key, created) = AuditKey::load_or_create(&files.key_file)?;
        if created {
            tracing::warn!(path = %files.key_file.display(), key_id = %key.id, "audit key created: back it up apart from the database");
        }
        let mut log = Self::with_key(db, key).await?;
        log.retired = retired_keys(&files.key_file)
            .into_iter()
            .map(|k| (k.id.clone(), k))
            .collect();
        log.checkpoint_file = Some(files.checkpoint_file.clone());
        Ok(log)
    }

    /// For `audit verify`: reads the keys and changes nothing in the database or on disk.
    pub fn for_verify(db: Db, files: &AuditFiles) -> Result<Self, AuditError> {
        let key = AuditKey::load(&files.key_file)?;
        Ok(Self {
            db,
            lock: Mutex::new(()),
            key: Arc::new(key),
            retired: retired_keys(&files.key_file)
                .into_iter()
                .map(|k| (k.id.clone(), k))
                .collect(),
            checkpoint_file: Some(files.checkpoint_file.clone()),
            last_checkpoint: Mutex::new(None),
        })
    }

    /// A log keyed with `key`, without files (tests, and tools that bring their own key).
    pub async fn with_key(db: Db, key: AuditKey) -> Result<Self, AuditError> {
        ensure_epoch(&db, &key).await?;
        Ok(Self {
            db,
            lock: Mutex::new(()),
            key: Arc::new(key),
            retired: HashMap::new(),
            checkpoint_file: None,
            last_checkpoint: Mutex::new(None),
        })
    }

    fn key_by_id(&self, id: &str) -> Option<&AuditKey> {
        if self.key.id == id {
            Some(&self.key)
        } else {
            self.retired.get(id)
        }
    }

    pub async fn append(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<AuditEntry, DbError> {
        let _g = self.lock.lock().await;
        let mut tx = self.db.begin_write().await?;
        // The process lock orders this hub's appends; other hubs on the same PostgreSQL append too, and two
        // that read the same head would fork the chain. The transaction lock orders them all (SQLite's
        // `BEGIN IMMEDIATE` already does).
        crate::cluster::lock_for_transaction(
            &mut tx,
            self.db.backend,
            crate::cluster::Lock::AuditChain,
            self.db.scope(),
        )
        .await?;
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (prev_seq, prev_hash) = last.unwrap_or_else(|| (0, GENESIS.to_string()));
        let seq = prev_seq + 1;
        let ts_ms = now_ms();
        let hash = keyed_entry_hash(
            &self.key, &prev_hash, seq, ts_ms, actor, action, target, detail,
        );
        sqlx::query(
            "INSERT INTO audit_log (seq, ts_ms, actor, action, target, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(ts_ms)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AuditEntry {
            seq,
            ts_ms,
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            detail: detail.into(),
            prev_hash,
            hash,
        })
    }

    /// Newest first, optionally filtered by actor and action prefix.
    pub async fn list(
        &self,
        actor: Option<&str>,
        action_prefix: Option<&str>,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, DbError> {
        Ok(sqlx::query_as(
            "SELECT seq, ts_ms, actor, action, target, detail, prev_hash, hash FROM audit_log \
             WHERE ($1 = '' OR actor = $1) AND ($2 = '' OR action LIKE $3) AND seq < $4 \
             ORDER BY seq DESC LIMIT $5",
        )
        .bind(actor.unwrap_or(""))
        .bind(action_prefix.unwrap_or(""))
        .bind(format!("{}%", action_prefix.unwrap_or("")))
        .bind(before_seq.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.db.pool)
        .await?)
    }

    /// Appends a checkpoint of the current head to the checkpoint file and the log, unless the head is the
    /// one this process sealed last. None when nothing was written.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let Some(path) = &self.checkpoint_file else {
            return Ok(None);
        };
        let (seq, head_hash) = head(&self.db).await?;
        let mut last = self.last_checkpoint.lock().await;
        if last.as_ref() == Some(&(seq, head_hash.clone())) {
            return Ok(None);
        }
        let keyed_from_seq = epochs(&self.db).await?.first().map_or(0, |e| e.from_seq);
        let mut c = Checkpoint {
            seq,
            head: head_hash.clone(),
            keyed_from_seq,
            key_id: self.key.id.clone(),
            at_ms: now_ms(),
            mac: String::new(),
        };
        c.mac = checkpoint_mac(&self.key, &c);
        append_line(path, &c).map_err(|source| AuditError::Checkpoints {
            path: path.clone(),
            source,
        })?;
        tracing::info!(
            seq = c.seq,
            head = %c.head,
            keyed_from_seq = c.keyed_from_seq,
            key_id = %c.key_id,
            at_ms = c.at_ms,
            mac = %c.mac,
            "audit checkpoint"
        );
        *last = Some((seq, head_hash));
        Ok(Some(c))
    }

    /// Retires the current key and keys the chain with a fresh one from the next row on. The chain must
    /// verify first; the old key is kept beside the new one as `<key_file>.<id>.retired`.
    pub async fn rotate_key(db: Db, files: &AuditFiles) -> Result<String, AuditError> {
        let old = Self::for_verify(db.clone(), files)?;
        let check = old.verify().await?;
        if !check.ok {
            return Err(AuditError::Refused(format!(
                "the audit chain does not verify ({}); not rotating its key",
                check.problem.unwrap_or_default()
            )));
        }
        let mut sealed = Self::with_key(db.clone(), AuditKey::load(&files.key_file)?).await?;
        sealed.checkpoint_file = Some(files.checkpoint_file.clone());
        sealed.checkpoint().await?;
        let key_err = |e: std::io::Error| AuditError::Key {
            path: files.key_file.clone(),
            message: e.to_string(),
        };
        let retired = files.key_file.with_file_name(format!(
            "{}.{}.retired",
            files
                .key_file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "audit.key".into()),
            old.key.id
        ));
        std::fs::rename(&files.key_file, &retired).map_err(key_err)?;
        let secret = random_secret(&files.key_file)?;
        write_new_key(&files.key_file, &secret).map_err(key_err)?;
        let new = AuditKey::from_secret(&secret);
        let next = epochs(&db).await?.last().map_or(1, |e| e.epoch + 1);
        add_epoch(&db, &new, next).await?;
        let log = Self::open(db, files).await?;
        log.checkpoint().await?;
        Ok(new.id.clone())
    }
}

/// Appends one JSON line and flushes it to disk: a checkpoint that a crash loses protects nothing.
fn append_line(path: &Path, c: &Checkpoint) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let mut line = serde_json::to_string(c).map_err(std::io::Error::other)?;
    line.push('\n');
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

/// Writes a checkpoint every `every` and one more when the hub stops.
pub fn spawn_checkpoints(
    log: Arc<AuditLog>,
    leadership: crate::cluster::Leadership,
    every: std::time::Duration,
    metrics: Arc<crate::metrics::Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.changed() => true,
            };
            // One hub seals the shared chain (each into its own checkpoint file while it leads).
            if !leadership.is_leader() {
                if stopping {
                    return;
                }
                continue;
            }
            match log.checkpoint().await {
                Ok(Some(c)) => {
                    metrics.audit_checkpoints.inc();
                    metrics.audit_checkpoint_seq.set(c.seq);
                }
                Ok(None) => {}
                Err(e) => {
                    metrics.audit_checkpoint_errors.inc();
                    tracing::error!(error = %e, "audit checkpoint not written");
                }
            }
            if stopping {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests;
