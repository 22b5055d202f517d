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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::Row;
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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug)]
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
    let rows = sqlx::query("SELECT epoch, from_seq, key_id, tag FROM audit_epochs ORDER BY epoch")
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Epoch {
                epoch: r.try_get("epoch")?,
                from_seq: r.try_get("from_seq")?,
                key_id: r.try_get("key_id")?,
                tag: r.try_get("tag")?,
            })
        })
        .collect()
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
    Ok(
        match sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&db.pool)
            .await?
        {
            Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
            None => (0, GENESIS.to_string()),
        },
    )
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
        // SQLite refuses, without waiting, a transaction that read and then wants to write while another
        // connection (ingest, or a `central-hub` command in another process) is writing: try again shortly.
        let mut wait = std::time::Duration::from_millis(20);
        for _ in 0..12 {
            match self.try_append(actor, action, target, detail).await {
                Err(e) if crate::db::is_busy(&e) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(1));
                }
                other => return other,
            }
        }
        self.try_append(actor, action, target, detail).await
    }

    async fn try_append(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<AuditEntry, DbError> {
        let mut tx = self.db.pool.begin().await?;
        let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (prev_seq, prev_hash) = match last {
            Some(r) => (r.try_get::<i64, _>("seq")?, r.try_get::<String, _>("hash")?),
            None => (0, GENESIS.to_string()),
        };
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
        let rows = sqlx::query(
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
        .await?;
        rows.iter().map(row_entry).collect()
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
            let rows = sqlx::query(
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
            for r in &rows {
                let e = row_entry(r)?;
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

fn row_entry(r: &sqlx::any::AnyRow) -> Result<AuditEntry, DbError> {
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        ts_ms: r.try_get("ts_ms")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        detail: r.try_get("detail")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    fn files(dir: &Path) -> AuditFiles {
        AuditFiles {
            key_file: dir.join("keys/audit.key"),
            checkpoint_file: dir.join("audit-checkpoints.jsonl"),
        }
    }

    async fn fill(log: &AuditLog, n: usize) {
        for i in 0..n {
            log.append("alice", "alert.view", &format!("alert-{i}"), "{}")
                .await
                .unwrap();
        }
    }

    async fn entries(db: &Db) -> Vec<AuditEntry> {
        sqlx::query("SELECT * FROM audit_log ORDER BY seq")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| row_entry(r).unwrap())
            .collect()
    }

    /// What an attacker with write access to the database does after an edit: recomputes every hash from
    /// row `from` on with `rule`, so each row links to the one before.
    async fn recompute_from(db: &Db, from: i64, rule: impl Fn(&AuditEntry) -> String) {
        let mut prev = GENESIS.to_string();
        for mut e in entries(db).await {
            if e.seq >= from {
                e.prev_hash = prev.clone();
                e.hash = rule(&e);
                sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3")
                    .bind(&e.prev_hash)
                    .bind(&e.hash)
                    .bind(e.seq)
                    .execute(&db.pool)
                    .await
                    .unwrap();
            }
            prev = e.hash;
        }
    }

    fn unkeyed(e: &AuditEntry) -> String {
        entry_hash(
            &e.prev_hash,
            e.seq,
            e.ts_ms,
            &e.actor,
            &e.action,
            &e.target,
            &e.detail,
        )
    }

    async fn tamper_cases(db: Db) {
        let log = AuditLog::with_key(db.clone(), AuditKey::generate().unwrap())
            .await
            .unwrap();
        fill(&log, 5).await;
        let ok = log.verify().await.unwrap();
        assert!(ok.ok && ok.entries == 5, "{ok:?}");
        assert_eq!(ok.keyed_from_seq, Some(1));
        assert_eq!(
            log.list(Some("alice"), Some("alert."), None, 10)
                .await
                .unwrap()
                .len(),
            5
        );

        // Editing a row's content.
        sqlx::query("UPDATE audit_log SET target = 'alert-x' WHERE seq = 3")
            .execute(&db.pool)
            .await
            .unwrap();
        let bad = log.verify().await.unwrap();
        assert!(!bad.ok);
        assert_eq!(bad.first_bad_seq, Some(3));
        assert!(bad.problem.unwrap().contains("altered"));

        // Finding 10: recomputing the chain after the edit, as anyone without the key can, does not help.
        recompute_from(&db, 3, unkeyed).await;
        let bad = log.verify().await.unwrap();
        assert!(!bad.ok, "{bad:?}");
        assert_eq!(bad.first_bad_seq, Some(3), "{bad:?}");
        // Deleting a row.
        sqlx::query("DELETE FROM audit_log WHERE seq = 2")
            .execute(&db.pool)
            .await
            .unwrap();
        let bad = log.verify().await.unwrap();
        assert_eq!(bad.first_bad_seq, Some(2), "{bad:?}");
        assert!(bad.problem.unwrap().contains("missing"));

        // Recomputing with a key of one's own does not help either.
        let other = AuditKey::generate().unwrap();
        recompute_from(&db, 1, |e| {
            keyed_entry_hash(
                &other,
                &e.prev_hash,
                e.seq,
                e.ts_ms,
                &e.actor,
                &e.action,
                &e.target,
                &e.detail,
            )
        })
        .await;
        let bad = log.verify().await.unwrap();
        assert_eq!(bad.first_bad_seq, Some(1), "{bad:?}");
    }

    #[tokio::test]
    async fn tampering_is_detected_on_sqlite() {
        let (db, _dir) = testing::sqlite().await;
        tamper_cases(db).await;
    }

    #[tokio::test]
    async fn tampering_is_detected_on_postgres() {
        if let Some(db) = testing::postgres().await {
            tamper_cases(db).await;
        }
    }

    /// Finding 10: rows deleted from the tail leave a valid, shorter chain; the checkpoints tell.
    async fn truncation_cases(db: Db) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(db.clone(), &files(dir.path()))
            .await
            .unwrap();
        fill(&log, 5).await;
        let c = log.checkpoint().await.unwrap().expect("a checkpoint");
        assert_eq!(c.seq, 5);
        assert!(
            log.checkpoint().await.unwrap().is_none(),
            "same head, no new line"
        );
        fill(&log, 1).await;
        log.checkpoint()
            .await
            .unwrap()
            .expect("a second checkpoint");
        let ok = log.verify().await.unwrap();
        assert!(ok.ok && ok.checkpoints == 2, "{ok:?}");

        sqlx::query("DELETE FROM audit_log WHERE seq >= 5")
            .execute(&db.pool)
            .await
            .unwrap();
        let bad = AuditLog::for_verify(db.clone(), &files(dir.path()))
            .unwrap()
            .verify()
            .await
            .unwrap();
        assert!(!bad.ok, "{bad:?}");
        assert_eq!(bad.first_bad_seq, Some(5));
        assert!(
            bad.problem
                .as_deref()
                .unwrap()
                .contains("deleted from the tail"),
            "{bad:?}"
        );

        // A forged checkpoint line is refused as such.
        let path = files(dir.path()).checkpoint_file;
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"seq\":5", "\"seq\":4", 1)).unwrap();
        let bad = log.verify().await.unwrap();
        assert!(
            bad.problem
                .as_deref()
                .unwrap()
                .contains("seal does not match"),
            "{bad:?}"
        );
    }

    #[tokio::test]
    async fn truncation_is_detected_on_sqlite() {
        let (db, _dir) = testing::sqlite().await;
        truncation_cases(db).await;
    }

    #[tokio::test]
    async fn truncation_is_detected_on_postgres() {
        if let Some(db) = testing::postgres().await {
            truncation_cases(db).await;
        }
    }

    /// A database written by an older hub: its rows keep the unkeyed rule up to the switch-over, which
    /// cannot be moved without the key.
    async fn legacy_cases(db: Db) {
        let mut prev = GENESIS.to_string();
        for seq in 1..=3 {
            let h = entry_hash(&prev, seq, 1000 + seq, "old", "alert.view", "a", "");
            sqlx::query(
                "INSERT INTO audit_log (seq, ts_ms, actor, action, target, detail, prev_hash, hash) \
                 VALUES ($1, $2, 'old', 'alert.view', 'a', '', $3, $4)",
            )
            .bind(seq)
            .bind(1000 + seq)
            .bind(&prev)
            .bind(&h)
            .execute(&db.pool)
            .await
            .unwrap();
            prev = h;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(db.clone(), &files(dir.path()))
            .await
            .unwrap();
        fill(&log, 3).await;
        log.checkpoint().await.unwrap();
        let ok = log.verify().await.unwrap();
        assert!(ok.ok, "{ok:?}");
        assert_eq!((ok.entries, ok.keyed_from_seq), (6, Some(4)));
        // Reopening with the same key changes nothing; another key is refused.
        AuditLog::open(db.clone(), &files(dir.path()))
            .await
            .unwrap();
        assert!(matches!(
            AuditLog::with_key(db.clone(), AuditKey::generate().unwrap()).await,
            Err(AuditError::WrongKey { .. })
        ));

        // Moving the switch-over so that keyed rows fall under the unkeyed rule, then recomputing them.
        sqlx::query("UPDATE audit_epochs SET from_seq = 100")
            .execute(&db.pool)
            .await
            .unwrap();
        recompute_from(&db, 4, unkeyed).await;
        let bad = log.verify().await.unwrap();
        assert!(
            bad.problem.as_deref().unwrap().contains("key epoch 1"),
            "{bad:?}"
        );
        // Deleting the switch-over record instead: the checkpoint remembers it.
        sqlx::query("DELETE FROM audit_epochs")
            .execute(&db.pool)
            .await
            .unwrap();
        let bad = log.verify().await.unwrap();
        assert!(!bad.ok, "{bad:?}");
    }

    #[tokio::test]
    async fn legacy_rows_then_keyed_rows_on_sqlite() {
        let (db, _dir) = testing::sqlite().await;
        legacy_cases(db).await;
    }

    #[tokio::test]
    async fn legacy_rows_then_keyed_rows_on_postgres() {
        if let Some(db) = testing::postgres().await {
            legacy_cases(db).await;
        }
    }

    #[tokio::test]
    async fn the_key_file_is_private_and_rotation_keeps_old_rows_verifiable() {
        use std::os::unix::fs::PermissionsExt;
        let (db, dir) = testing::sqlite().await;
        let f = files(dir.path());
        let log = AuditLog::open(db.clone(), &f).await.unwrap();
        let mode = std::fs::metadata(&f.key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fill(&log, 2).await;
        let again = AuditKey::load(&f.key_file).unwrap();
        assert_eq!(again.id(), log.key.id());
        let new_id = AuditLog::rotate_key(db.clone(), &f).await.unwrap();
        assert_ne!(new_id, log.key.id());
        let log = AuditLog::open(db.clone(), &f).await.unwrap();
        fill(&log, 2).await;
        log.checkpoint().await.unwrap();
        let ok = AuditLog::for_verify(db.clone(), &f)
            .unwrap()
            .verify()
            .await
            .unwrap();
        assert!(ok.ok && ok.entries == 4, "{ok:?}");
        std::fs::set_permissions(&f.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            AuditKey::load(&f.key_file),
            Err(AuditError::Key { .. })
        ));
    }

    #[tokio::test]
    async fn append_waits_out_another_writer_on_sqlite() {
        let (db, dir) = testing::sqlite().await;
        let key = AuditKey::generate().unwrap();
        let log = AuditLog::with_key(db.clone(), key).await.unwrap();
        log.append("alice", "seed", "", "").await.unwrap();
        // Another connection, as a `central-hub` command in another process, holds the write lock a moment.
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
        let other = Db::open(&url, 1).await.unwrap();
        let mut conn = other.pool.acquire().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO ingest_rejects (id, topic, reason, bytes, received_ms) VALUES ('x', 't', 'r', 1, 1)",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        let log = Arc::new(log);
        let writer = log.clone();
        let waiting =
            tokio::spawn(async move { writer.append("bob", "alert.view", "a1", "").await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();
        let e = waiting.await.unwrap().unwrap();
        assert_eq!(e.seq, 2);
        assert!(log.verify().await.unwrap().ok);
    }

    #[test]
    fn fields_are_length_prefixed() {
        assert_ne!(
            entry_hash(GENESIS, 1, 0, "ab", "c", "", ""),
            entry_hash(GENESIS, 1, 0, "a", "bc", "", "")
        );
    }
}
