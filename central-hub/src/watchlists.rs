//! Watchlists: wanted and missing-person entries, their photos and templates, versions, and the push of
//! each agent's list over MQTT.
//!
//! Every change (an entry added, withdrawn or expired) is a revision with the next version number
//! (milliseconds since the epoch, at least one above the last, the numbering agents also use for local
//! enrolment). An agent reports the version it holds in `watchlist_status`; the pusher sends it a delta from
//! that version when it can and the full set for its site otherwise, until the reported version matches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint_protocol::signed::SyncSigner;
use checkpoint_protocol::watchlist::{
    Policies, SyncMessage, Thresholds, WatchlistEntry, MAX_VERSION,
};
use checkpoint_protocol::{watchlist_sync_topic, ListKind};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::db::{now_ms, Db, DbError};
use crate::faces::{from_bytes, to_bytes, FaceEngine};

#[derive(Debug, thiserror::Error)]
pub enum WatchlistError {
    #[error("{0}")]
    Invalid(String),
    #[error("no watchlist entry {0}")]
    NotFound(String),
    /// A photo that could not be used before any face was looked for; `code` names why for the API.
    #[error("photo {index}: {reason}")]
    Photo {
        index: usize,
        reason: String,
        code: &'static str,
    },
    /// A photo whose face cannot be enrolled (none, several, too small, turned away, too large to read).
    #[error("photo {index}: {error}")]
    Face {
        index: usize,
        error: checkpoint_vision::enrol::EnrolError,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for WatchlistError {
    fn from(e: sqlx::Error) -> Self {
        WatchlistError::Db(e.into())
    }
}

/// A new entry as the API takes it.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewEntry {
    /// `wanted` or `missing`
    pub list: String,
    /// Link to an identity record; its enrolled templates are used along with any photos given here.
    pub person_cccd: Option<String>,
    pub label: String,
    pub case_ref: String,
    /// The legal instrument allowing the match (warrant, missing-person report); required.
    pub legal_basis: String,
    pub issued_by: String,
    /// When the entry stops matching, ms since the epoch; at most 2 years ahead.
    pub expires_ms: i64,
    /// Sites whose agents hold the entry; empty or `["*"]` for every site.
    #[serde(default)]
    pub sites: Vec<String>,
    /// How long snapshots of confirmed alerts of this case are kept, days (default 365).
    pub case_retention_days: Option<i64>,
    /// Face photos, JPEG or PNG, base64; each must show one usable face.
    #[serde(default)]
    pub photos_jpeg_b64: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Entry {
    pub id: String,
    pub list: String,
    pub person_cccd: Option<String>,
    pub label: String,
    pub case_ref: String,
    pub legal_basis: String,
    pub issued_by: String,
    pub expires_ms: i64,
    pub sites: Vec<String>,
    pub case_retention_days: i64,
    pub created_by: String,
    pub created_ms: i64,
    /// Set once withdrawn or expired.
    pub withdrawn_ms: Option<i64>,
    pub photo_ids: Vec<String>,
    pub templates: i64,
}

const MAX_EXPIRY_MS: i64 = 2 * 366 * 86_400_000;

fn text(field: &str, v: &str, max: usize) -> Result<String, WatchlistError> {
    let t = v.trim();
    if t.is_empty() || t.len() > max || t.chars().any(char::is_control) {
        return Err(WatchlistError::Invalid(format!(
            "{field} must be 1-{max} characters without control characters"
        )));
    }
    Ok(t.to_string())
}

/// The next version after `last`: now in ms, or one above `last` if the clock is behind it. Saturates at
/// [`MAX_VERSION`] rather than wrap (no version near it is ever accepted: see [`plausible_version`]).
pub fn next_version(last: i64) -> i64 {
    now_ms().max(last.saturating_add(1)).min(MAX_VERSION as i64)
}

/// How far ahead of the hub's clock an agent's version may be and still be followed: a local enrolment on an
/// agent whose clock runs a little fast.
const VERSION_SLACK_MS: i64 = 86_400_000;

/// Whether `version` could have been issued by now, by this hub or by an agent's local enrolment.
pub fn plausible_version(version: i64) -> bool {
    (0..=now_ms().saturating_add(VERSION_SLACK_MS)).contains(&version)
}

fn key_for(site: &str, agent: &str) -> (String, String) {
    (site.to_string(), agent.to_string())
}

pub async fn current_version(db: &Db) -> Result<i64, WatchlistError> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT version FROM watchlist_revisions ORDER BY version DESC LIMIT 1")
            .fetch_optional(&db.pool)
            .await?;
    Ok(last.unwrap_or(0))
}

async fn revise(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entry_id: &str,
    op: &str,
) -> Result<i64, WatchlistError> {
    revise_above(tx, entry_id, op, 0).await
}

/// A revision that changes no entry but the lists' policies, so agents already in sync get a delta that
/// carries the new policies (its entry id is empty, so no entry is touched).
pub(crate) async fn revise_policies(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<i64, WatchlistError> {
    revise(tx, "", "policy").await
}

/// A new revision numbered above both the last one and `floor`.
async fn revise_above(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entry_id: &str,
    op: &str,
    floor: i64,
) -> Result<i64, WatchlistError> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT version FROM watchlist_revisions ORDER BY version DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    let last = last.unwrap_or(0);
    let v = next_version(last.max(floor));
    sqlx::query(
        "INSERT INTO watchlist_revisions (version, entry_id, op, at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(v)
    .bind(entry_id)
    .bind(op)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(v)
}

/// Validates, enrols every photo (all must pass before anything is stored) and stores the entry.
pub async fn create(
    db: &Db,
    faces: Option<&Arc<FaceEngine>>,
    req: NewEntry,
    created_by: &str,
) -> Result<(Entry, i64), WatchlistError> {
    let list = req.list.trim().to_string();
    if ListKind::parse(&list).is_none() {
        return Err(WatchlistError::Invalid(
            "list must be `wanted` or `missing`".into(),
        ));
    }
    let label = text("label", &req.label, 200)?;
    let case_ref = text("case_ref", &req.case_ref, 100)?;
    let legal_basis = text("legal_basis", &req.legal_basis, 500)?;
    let issued_by = text("issued_by", &req.issued_by, 200)?;
    let now = now_ms();
    if req.expires_ms <= now || req.expires_ms > now + MAX_EXPIRY_MS {
        return Err(WatchlistError::Invalid(
            "expires_ms must be in the future and at most two years ahead".into(),
        ));
    }
    let sites: Vec<String> = req
        .sites
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "*")
        .collect();
    let retention = req.case_retention_days.unwrap_or(365);
    if !(1..=3650).contains(&retention) {
        return Err(WatchlistError::Invalid(
            "case_retention_days must be 1-3650".into(),
        ));
    }
    let mut person_templates = Vec::new();
    if let Some(cccd) = &req.person_cccd {
        crate::records::get(db, cccd)
            .await
            .map_err(|e| WatchlistError::Invalid(e.to_string()))?;
        person_templates = crate::records::templates_of(db, cccd)
            .await
            .map_err(|e| WatchlistError::Invalid(e.to_string()))?;
    }
    let mut photos = Vec::new();
    for (i, b64) in req.photos_jpeg_b64.iter().enumerate() {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim().as_bytes())
            .map_err(|e| WatchlistError::Photo {
                index: i,
                reason: format!("not base64: {e}"),
                code: "unreadable_image",
            })?;
        let engine = faces.ok_or_else(|| WatchlistError::Photo {
            index: i,
            reason: "face models are not loaded on this hub".into(),
            code: "faces_unavailable",
        })?;
        let enrolled = engine
            .enrol(bytes.clone())
            .await
            .map_err(|error| WatchlistError::Face { index: i, error })?;
        photos.push((bytes, enrolled.embedding.0));
    }
    if photos.is_empty() && person_templates.is_empty() {
        return Err(WatchlistError::Invalid(
            "an entry needs at least one usable face: give photos, or link a record that has one"
                .into(),
        ));
    }
    if photos.len() + person_templates.len()
        > checkpoint_protocol::watchlist::MAX_TEMPLATES_PER_ENTRY
    {
        return Err(WatchlistError::Invalid(format!(
            "at most {} templates per entry",
            checkpoint_protocol::watchlist::MAX_TEMPLATES_PER_ENTRY
        )));
    }
    let id = format!("WL-{}", uuid::Uuid::now_v7().simple());
    let sites_json = if sites.is_empty() {
        "*".to_string()
    } else {
        serde_json::to_string(&sites).unwrap_or_else(|_| "*".into())
    };
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO watchlist_entries (id, list, person_cccd, label, case_ref, legal_basis, issued_by, expires_ms, \
         sites, case_retention_days, created_by, created_ms, withdrawn_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)",
    )
    .bind(&id)
    .bind(&list)
    .bind(req.person_cccd.clone())
    .bind(&label)
    .bind(&case_ref)
    .bind(&legal_basis)
    .bind(&issued_by)
    .bind(req.expires_ms)
    .bind(&sites_json)
    .bind(retention)
    .bind(created_by)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for (bytes, emb) in &photos {
        sqlx::query(
            "INSERT INTO watchlist_photos (id, entry_id, jpeg, embedding, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&id)
        .bind(bytes.clone())
        .bind(to_bytes(emb))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let version = revise(&mut tx, &id, "add").await?;
    tx.commit().await?;
    Ok((get(db, &id).await?, version))
}

/// Withdraws an entry (the case closed, a court order lifted); agents drop it at the next sync.
pub async fn withdraw(db: &Db, id: &str, op: &str) -> Result<i64, WatchlistError> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE watchlist_entries SET withdrawn_ms = $1 WHERE id = $2 AND withdrawn_ms IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(WatchlistError::NotFound(id.into()));
    }
    let v = revise(&mut tx, id, op).await?;
    tx.commit().await?;
    Ok(v)
}

/// Withdraws entries past their expiry; returns their ids.
pub async fn expire_due(db: &Db) -> Result<Vec<String>, WatchlistError> {
    let due: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM watchlist_entries WHERE withdrawn_ms IS NULL AND expires_ms <= $1",
    )
    .bind(now_ms())
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for id in due {
        match withdraw(db, &id, "expire").await {
            Ok(_) => out.push(id),
            Err(WatchlistError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

macro_rules! entry_select {
    () => {
        "SELECT id, list, person_cccd, label, case_ref, legal_basis, issued_by, expires_ms, sites, \
         case_retention_days, created_by, created_ms, withdrawn_ms FROM watchlist_entries "
    };
}

/// A `watchlist_entries` row as [`entry_select`] reads it.
#[derive(sqlx::FromRow)]
struct EntryRow {
    id: String,
    list: String,
    person_cccd: Option<String>,
    label: String,
    case_ref: String,
    legal_basis: String,
    issued_by: String,
    expires_ms: i64,
    /// `*` or a JSON array of site ids.
    sites: String,
    case_retention_days: i64,
    created_by: String,
    created_ms: i64,
    withdrawn_ms: Option<i64>,
}

fn parse_sites(s: &str) -> Vec<String> {
    if s == "*" {
        return vec!["*".into()];
    }
    serde_json::from_str(s).unwrap_or_default()
}

/// The entry with its photos' ids and its number of templates (its photos and its linked record's).
async fn full_entry(db: &Db, r: EntryRow) -> Result<Entry, WatchlistError> {
    let photo_ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM watchlist_photos WHERE entry_id = $1 ORDER BY id")
            .bind(&r.id)
            .fetch_all(&db.pool)
            .await?;
    let person_templates = match &r.person_cccd {
        Some(c) => crate::records::templates_of(db, c)
            .await
            .map(|t| t.len() as i64)
            .unwrap_or(0),
        None => 0,
    };
    Ok(Entry {
        id: r.id,
        list: r.list,
        person_cccd: r.person_cccd,
        label: r.label,
        case_ref: r.case_ref,
        legal_basis: r.legal_basis,
        issued_by: r.issued_by,
        expires_ms: r.expires_ms,
        sites: parse_sites(&r.sites),
        case_retention_days: r.case_retention_days,
        created_by: r.created_by,
        created_ms: r.created_ms,
        withdrawn_ms: r.withdrawn_ms,
        templates: photo_ids.len() as i64 + person_templates,
        photo_ids,
    })
}

pub async fn get(db: &Db, id: &str) -> Result<Entry, WatchlistError> {
    let r: EntryRow = sqlx::query_as(concat!(entry_select!(), "WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| WatchlistError::NotFound(id.into()))?;
    full_entry(db, r).await
}

/// Entries, active ones only unless `all`.
pub async fn list(db: &Db, all: bool) -> Result<Vec<Entry>, WatchlistError> {
    let rows: Vec<EntryRow> = sqlx::query_as(concat!(
        entry_select!(),
        "WHERE ($1 = 1 OR withdrawn_ms IS NULL) ORDER BY created_ms DESC"
    ))
    .bind(i64::from(all))
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(full_entry(db, r).await?);
    }
    Ok(out)
}

pub async fn photo(db: &Db, entry_id: &str, photo_id: &str) -> Result<Vec<u8>, WatchlistError> {
    sqlx::query_scalar("SELECT jpeg FROM watchlist_photos WHERE id = $1 AND entry_id = $2")
        .bind(photo_id)
        .bind(entry_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| WatchlistError::NotFound(format!("{entry_id}/{photo_id}")))
}

/// An entry's label, if the entry exists.
pub async fn label(db: &Db, id: &str) -> Result<Option<String>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT label FROM watchlist_entries WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?,
    )
}

/// Who enrolled a watchlist entry (`None` for an entry no longer on file).
pub(crate) async fn enrolled_by(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entry_id: &str,
) -> Result<Option<String>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT created_by FROM watchlist_entries WHERE id = $1")
            .bind(entry_id)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

/// The active wanted entries for a CCCD number at `now`, by id.
pub(crate) async fn wanted_for_cccd(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    cccd: &str,
    now: i64,
) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM watchlist_entries WHERE list = 'wanted' AND person_cccd = $1 \
         AND withdrawn_ms IS NULL AND expires_ms > $2 ORDER BY id",
    )
    .bind(cccd)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?)
}

const ACTIVE_ENTRIES: &str = "SELECT COUNT(*) AS n FROM watchlist_entries WHERE list = $1 \
     AND withdrawn_ms IS NULL AND expires_ms > $2";
const ACTIVE_PHOTOS: &str =
    "SELECT COUNT(*) AS n FROM watchlist_photos p JOIN watchlist_entries e \
     ON e.id = p.entry_id WHERE e.list = $1 AND e.withdrawn_ms IS NULL AND e.expires_ms > $2";
// Reads `person_templates` (records') to count the templates of the records the entries link.
const ACTIVE_RECORD_TEMPLATES: &str = "SELECT COUNT(*) AS n FROM person_templates t \
     JOIN watchlist_entries e ON e.person_cccd = t.cccd \
     WHERE e.list = $1 AND e.withdrawn_ms IS NULL AND e.expires_ms > $2";

async fn count(db: &Db, sql: &'static str, list: &str, now: i64) -> Result<u64, DbError> {
    let n: i64 = sqlx::query_scalar(sql)
        .bind(list)
        .bind(now)
        .fetch_one(&db.pool)
        .await?;
    Ok(n.max(0) as u64)
}

/// A list's active entries (not withdrawn, not expired at `now`) over every site, and their templates: its
/// own photos and, when linked, its identity record's.
pub async fn active_size(db: &Db, list: &str, now: i64) -> Result<(u64, u64), DbError> {
    let entries = count(db, ACTIVE_ENTRIES, list, now).await?;
    let templates = count(db, ACTIVE_PHOTOS, list, now).await?
        + count(db, ACTIVE_RECORD_TEMPLATES, list, now).await?;
    Ok((entries, templates))
}

/// Whether an entry's sites include `site`.
fn covers(sites: &str, site: &str) -> bool {
    sites == "*" || parse_sites(sites).iter().any(|s| s == site)
}

/// The entries an agent at `site` must hold now, in the wire format, with all their templates.
pub async fn wire_entries(db: &Db, site: &str) -> Result<Vec<WatchlistEntry>, WatchlistError> {
    let rows: Vec<EntryRow> = sqlx::query_as(concat!(
        entry_select!(),
        "WHERE withdrawn_ms IS NULL AND expires_ms > $1 ORDER BY id"
    ))
    .bind(now_ms())
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        if !covers(&r.sites, site) {
            continue;
        }
        let embeddings: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT embedding FROM watchlist_photos WHERE entry_id = $1 ORDER BY id",
        )
        .bind(&r.id)
        .fetch_all(&db.pool)
        .await?;
        let mut templates: Vec<Vec<f32>> = embeddings.iter().map(|b| from_bytes(b)).collect();
        if let Some(c) = &r.person_cccd {
            templates.extend(
                crate::records::templates_of(db, c)
                    .await
                    .unwrap_or_default(),
            );
        }
        out.push(WatchlistEntry {
            list: ListKind::parse(&r.list).unwrap_or(ListKind::Wanted),
            label: r.label,
            case_ref: r.case_ref,
            legal_basis: r.legal_basis,
            issued_by: r.issued_by,
            expires_at: OffsetDateTime::from_unix_timestamp_nanos(r.expires_ms as i128 * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            templates,
            id: r.id,
        });
    }
    Ok(out)
}

/// What every sync carries besides entries: the lists' floors and policies (from `[watchlist]`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SyncRules {
    pub thresholds: Thresholds,
    pub policies: Policies,
}

/// The message that brings an agent at `site` holding `held` to `version`: a delta when every revision
/// after `held` is known and `held` is one of ours, else the full set.
pub async fn sync_message(
    db: &Db,
    site: &str,
    held: i64,
    needs_full: bool,
    rules: SyncRules,
) -> Result<SyncMessage, WatchlistError> {
    let version = current_version(db).await?;
    let known = held > 0
        && sqlx::query("SELECT version FROM watchlist_revisions WHERE version = $1")
            .bind(held)
            .fetch_optional(&db.pool)
            .await?
            .is_some();
    if needs_full || !known || held >= version {
        return Ok(SyncMessage::Full {
            version: version as u64,
            entries: wire_entries(db, site).await?,
            thresholds: rules.thresholds,
            policies: Some(rules.policies),
        });
    }
    let revs: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT r.entry_id, r.op, e.sites FROM watchlist_revisions r \
         LEFT JOIN watchlist_entries e ON e.id = r.entry_id WHERE r.version > $1 ORDER BY r.version",
    )
    .bind(held)
    .fetch_all(&db.pool)
    .await?;
    let current: HashMap<String, WatchlistEntry> = wire_entries(db, site)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    let mut add = Vec::new();
    let mut remove = Vec::new();
    let mut expire = Vec::new();
    // (entry, operation, the entry's sites: none for a policy revision or an entry gone)
    for (id, op, sites) in revs {
        let sites = sites.unwrap_or_default();
        if !covers(&sites, site) {
            continue;
        }
        add.retain(|e: &WatchlistEntry| e.id != id);
        remove.retain(|x| x != &id);
        expire.retain(|x| x != &id);
        match op.as_str() {
            "add" => {
                if let Some(e) = current.get(&id) {
                    add.push(e.clone());
                }
            }
            "expire" => expire.push(id),
            _ => remove.push(id),
        }
    }
    Ok(SyncMessage::Delta {
        base_version: held as u64,
        version: version as u64,
        add,
        remove,
        expire,
        // Policies travel with every delta, so a changed `[watchlist]` reaches agents without a full sync.
        policies: Some(rules.policies),
        thresholds: None,
    })
}

/// Pushes watchlists to agents whose reported version differs from the hub's, over MQTT.
pub struct Pusher {
    pub wake: Arc<Notify>,
}

impl Pusher {
    /// Starts the pushing task with its own MQTT client (see `serve::sync_mqtt_options`); every message is
    /// signed with `signer`.
    pub fn start(
        db: Db,
        mut opts: rumqttc::MqttOptions,
        signer: Arc<SyncSigner>,
        rules: SyncRules,
        leadership: crate::cluster::Leadership,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let w = wake.clone();
        opts.set_clean_session(true);
        opts.set_manual_acks(false);
        if !opts.client_id().ends_with("-sync") {
            let id = format!("{}-sync", opts.client_id());
            opts.set_client_id(id);
        }
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 100);
        tokio::spawn(async move {
            loop {
                if eventloop.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        tokio::spawn(async move {
            // (site, agent) -> (version sent, when): a message is repeated at most every 30 s.
            let mut sent: HashMap<(String, String), (i64, Instant)> = HashMap::new();
            loop {
                tokio::select! {
                    _ = w.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => return,
                }
                // One hub pushes (its 5 s round picks up what an operator changed on another hub).
                if !leadership.is_leader() {
                    sent.clear();
                    continue;
                }
                if let Err(e) = push_once(&db, &client, &signer, rules, &mut sent).await {
                    tracing::error!(error = %e, "watchlist push");
                }
            }
        });
        Self { wake }
    }
}

async fn push_once(
    db: &Db,
    client: &rumqttc::AsyncClient,
    signer: &SyncSigner,
    rules: SyncRules,
    sent: &mut HashMap<(String, String), (i64, Instant)>,
) -> Result<(), WatchlistError> {
    // The administrator's policies override hub.toml's; read each round so a change goes out at once.
    let rules = SyncRules {
        policies: crate::policies::current(db, rules.policies)
            .await
            .map_err(|e| WatchlistError::Invalid(e.to_string()))?,
        ..rules
    };
    let version = current_version(db).await?;
    for a in crate::agents::watchlists_held_online(db).await? {
        let (site, agent, held, needs_full) = (a.site, a.agent, a.version, a.needs_full);
        if held == version && !needs_full {
            sent.remove(&(site, agent));
            continue;
        }
        // An agent ahead of the hub would refuse our full set as stale. A local enrolment numbers its version by
        // the agent's clock, so the hub moves its numbering past such a version; a version the hub could not
        // have issued by now (the agent's clock far ahead, or a status message made up to freeze every site's
        // list at i64::MAX) is never followed: the agent stays out of sync, which the status API shows.
        let version = if held > version {
            if !plausible_version(held) {
                if sent
                    .insert(key_for(&site, &agent), (held, Instant::now()))
                    .is_none()
                {
                    tracing::warn!(%site, %agent, held, hub_version = version,
                        "agent reports a watchlist version the hub could not have issued; not followed (clear the agent's watchlist directory to resync it)");
                }
                continue;
            }
            let mut tx = db.begin_write().await?;
            let v = revise_above(&mut tx, "", "resync", held).await?;
            tx.commit().await?;
            tracing::info!(%site, %agent, held, new_version = v, "agent ahead of the hub's watchlist version; renumbered");
            v
        } else {
            version
        };
        let key = (site.clone(), agent.clone());
        if let Some((v, at)) = sent.get(&key) {
            if *v == version && at.elapsed() < Duration::from_secs(30) {
                continue;
            }
        }
        let msg = sync_message(db, &site, held, needs_full, rules).await?;
        let payload = signer.sign(
            &site,
            &agent,
            serde_json::to_string(&msg).unwrap_or_default(),
        );
        let kind = match &msg {
            SyncMessage::Full { .. } => "full",
            SyncMessage::Delta { .. } => "delta",
        };
        match client
            .publish(
                watchlist_sync_topic(&site, &agent),
                rumqttc::QoS::AtLeastOnce,
                false,
                payload.clone(),
            )
            .await
        {
            Ok(()) => {
                tracing::info!(%site, %agent, from = held, to = version, kind, bytes = payload.len(), "watchlist sent");
                sent.insert(key, (version, Instant::now()));
            }
            Err(e) => tracing::warn!(%site, %agent, error = %e, "watchlist not sent; retrying"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
