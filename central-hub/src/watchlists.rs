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
use sqlx::Row;
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
    let r = sqlx::query("SELECT version FROM watchlist_revisions ORDER BY version DESC LIMIT 1")
        .fetch_optional(&db.pool)
        .await?;
    Ok(match r {
        Some(r) => r.try_get("version")?,
        None => 0,
    })
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
    let last: i64 =
        match sqlx::query("SELECT version FROM watchlist_revisions ORDER BY version DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?
        {
            Some(r) => r.try_get("version")?,
            None => 0,
        };
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
    let mut tx = db.pool.begin().await?;
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
    let mut tx = db.pool.begin().await?;
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
    let rows = sqlx::query(
        "SELECT id FROM watchlist_entries WHERE withdrawn_ms IS NULL AND expires_ms <= $1",
    )
    .bind(now_ms())
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let id: String = r.try_get("id")?;
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

fn parse_sites(s: &str) -> Vec<String> {
    if s == "*" {
        return vec!["*".into()];
    }
    serde_json::from_str(s).unwrap_or_default()
}

async fn row_entry(db: &Db, r: &sqlx::any::AnyRow) -> Result<Entry, WatchlistError> {
    let id: String = r.try_get("id")?;
    let photos = sqlx::query("SELECT id FROM watchlist_photos WHERE entry_id = $1 ORDER BY id")
        .bind(&id)
        .fetch_all(&db.pool)
        .await?;
    let person_cccd: Option<String> = r.try_get::<Option<String>, _>("person_cccd").ok().flatten();
    let person_templates = match &person_cccd {
        Some(c) => crate::records::templates_of(db, c)
            .await
            .map(|t| t.len() as i64)
            .unwrap_or(0),
        None => 0,
    };
    Ok(Entry {
        list: r.try_get("list")?,
        label: r.try_get("label")?,
        case_ref: r.try_get("case_ref")?,
        legal_basis: r.try_get("legal_basis")?,
        issued_by: r.try_get("issued_by")?,
        expires_ms: r.try_get("expires_ms")?,
        sites: parse_sites(&r.try_get::<String, _>("sites")?),
        case_retention_days: r.try_get("case_retention_days")?,
        created_by: r.try_get("created_by")?,
        created_ms: r.try_get("created_ms")?,
        withdrawn_ms: r.try_get::<Option<i64>, _>("withdrawn_ms").ok().flatten(),
        templates: photos.len() as i64 + person_templates,
        photo_ids: photos
            .iter()
            .filter_map(|p| p.try_get::<String, _>("id").ok())
            .collect(),
        person_cccd,
        id,
    })
}

pub async fn get(db: &Db, id: &str) -> Result<Entry, WatchlistError> {
    let r = sqlx::query(concat!(entry_select!(), "WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| WatchlistError::NotFound(id.into()))?;
    row_entry(db, &r).await
}

/// Entries, active ones only unless `all`.
pub async fn list(db: &Db, all: bool) -> Result<Vec<Entry>, WatchlistError> {
    let rows = sqlx::query(concat!(
        entry_select!(),
        "WHERE ($1 = 1 OR withdrawn_ms IS NULL) ORDER BY created_ms DESC"
    ))
    .bind(i64::from(all))
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(row_entry(db, r).await?);
    }
    Ok(out)
}

pub async fn photo(db: &Db, entry_id: &str, photo_id: &str) -> Result<Vec<u8>, WatchlistError> {
    let r = sqlx::query("SELECT jpeg FROM watchlist_photos WHERE id = $1 AND entry_id = $2")
        .bind(photo_id)
        .bind(entry_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| WatchlistError::NotFound(format!("{entry_id}/{photo_id}")))?;
    Ok(r.try_get("jpeg")?)
}

/// Whether an entry's sites include `site`.
fn covers(sites: &str, site: &str) -> bool {
    sites == "*" || parse_sites(sites).iter().any(|s| s == site)
}

/// The entries an agent at `site` must hold now, in the wire format, with all their templates.
pub async fn wire_entries(db: &Db, site: &str) -> Result<Vec<WatchlistEntry>, WatchlistError> {
    let rows = sqlx::query(concat!(
        entry_select!(),
        "WHERE withdrawn_ms IS NULL AND expires_ms > $1 ORDER BY id"
    ))
    .bind(now_ms())
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let sites: String = r.try_get("sites")?;
        if !covers(&sites, site) {
            continue;
        }
        let id: String = r.try_get("id")?;
        let mut templates: Vec<Vec<f32>> =
            sqlx::query("SELECT embedding FROM watchlist_photos WHERE entry_id = $1 ORDER BY id")
                .bind(&id)
                .fetch_all(&db.pool)
                .await?
                .iter()
                .filter_map(|p| p.try_get::<Vec<u8>, _>("embedding").ok())
                .map(|b| from_bytes(&b))
                .collect();
        if let Some(c) = r.try_get::<Option<String>, _>("person_cccd").ok().flatten() {
            templates.extend(
                crate::records::templates_of(db, &c)
                    .await
                    .unwrap_or_default(),
            );
        }
        let list: String = r.try_get("list")?;
        let expires_ms: i64 = r.try_get("expires_ms")?;
        out.push(WatchlistEntry {
            list: ListKind::parse(&list).unwrap_or(ListKind::Wanted),
            label: r.try_get("label")?,
            case_ref: r.try_get("case_ref")?,
            legal_basis: r.try_get("legal_basis")?,
            issued_by: r.try_get("issued_by")?,
            expires_at: OffsetDateTime::from_unix_timestamp_nanos(expires_ms as i128 * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            templates,
            id,
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
    let revs = sqlx::query(
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
    for r in &revs {
        let id: String = r.try_get("entry_id")?;
        let op: String = r.try_get("op")?;
        let sites: String = r
            .try_get::<Option<String>, _>("sites")
            .ok()
            .flatten()
            .unwrap_or_default();
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
    let agents = sqlx::query(
        "SELECT site, agent, watchlist_version, watchlist_needs_full FROM agents WHERE state = 'online'",
    )
    .fetch_all(&db.pool)
    .await?;
    for a in &agents {
        let site: String = a.try_get("site")?;
        let agent: String = a.try_get("agent")?;
        let held: i64 = a.try_get("watchlist_version")?;
        let needs_full = a.try_get::<i64, _>("watchlist_needs_full")? == 1;
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
            let mut tx = db.pool.begin().await?;
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
mod tests {
    use super::*;
    use crate::db::testing;

    async fn insert_entry(db: &Db, id: &str, sites: &str, expires_ms: i64) {
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO watchlist_entries (id, list, person_cccd, label, case_ref, legal_basis, issued_by, \
             expires_ms, sites, case_retention_days, created_by, created_ms, withdrawn_ms) \
             VALUES ($1, 'wanted', NULL, 'L', 'C', 'Warrant', 'PC01', $2, $3, 365, 't', 0, NULL)",
        )
        .bind(id)
        .bind(expires_ms)
        .bind(sites)
        .execute(&mut *tx)
        .await
        .unwrap();
        let mut v = vec![0f32; 128];
        v[3] = 1.0;
        sqlx::query(
            "INSERT INTO watchlist_photos (id, entry_id, jpeg, embedding, created_ms) VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(format!("p-{id}"))
        .bind(id)
        .bind(vec![0xFFu8, 0xD8])
        .bind(to_bytes(&v))
        .execute(&mut *tx)
        .await
        .unwrap();
        revise(&mut tx, id, "add").await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn versions_and_deltas(db: Db) {
        let far = now_ms() + 86_400_000;
        insert_entry(&db, "A", "*", far).await;
        let v1 = current_version(&db).await.unwrap();
        insert_entry(&db, "B", r#"["pier"]"#, far).await;
        insert_entry(&db, "C", r#"["station"]"#, far).await;
        let v3 = current_version(&db).await.unwrap();
        assert!(v3 > v1);

        // A new agent gets the full set for its site, and the message passes the agent's own validation.
        let m = sync_message(&db, "pier", 0, false, SyncRules::default())
            .await
            .unwrap();
        let json = serde_json::to_vec(&m).unwrap();
        let parsed = checkpoint_protocol::watchlist::parse_sync(&json, 1 << 24).unwrap();
        match parsed {
            SyncMessage::Full {
                version, entries, ..
            } => {
                assert_eq!(version, v3 as u64);
                let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
                assert_eq!(ids, vec!["A", "B"]);
            }
            other => panic!("{other:?}"),
        }
        // An agent at v1 gets a delta adding only what covers its site.
        match sync_message(&db, "pier", v1, false, SyncRules::default())
            .await
            .unwrap()
        {
            SyncMessage::Delta {
                base_version,
                version,
                add,
                remove,
                ..
            } => {
                assert_eq!((base_version, version), (v1 as u64, v3 as u64));
                assert_eq!(
                    add.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
                    vec!["B"]
                );
                assert!(remove.is_empty());
            }
            other => panic!("{other:?}"),
        }
        // Withdrawal and expiry travel as removals.
        withdraw(&db, "B", "remove").await.unwrap();
        sqlx::query("UPDATE watchlist_entries SET expires_ms = 1 WHERE id = 'A'")
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(expire_due(&db).await.unwrap(), vec!["A"]);
        match sync_message(&db, "pier", v3, false, SyncRules::default())
            .await
            .unwrap()
        {
            SyncMessage::Delta {
                add,
                remove,
                expire,
                ..
            } => {
                assert!(add.is_empty());
                assert_eq!(remove, vec!["B"]);
                assert_eq!(expire, vec!["A"]);
            }
            other => panic!("{other:?}"),
        }
        // An agent ahead of the hub (local enrolment) or asking for everything gets the full set.
        assert!(matches!(
            sync_message(&db, "pier", i64::MAX - 1, false, SyncRules::default())
                .await
                .unwrap(),
            SyncMessage::Full { .. }
        ));
        assert!(matches!(
            sync_message(&db, "pier", v3, true, SyncRules::default())
                .await
                .unwrap(),
            SyncMessage::Full { .. }
        ));
        assert!(matches!(
            withdraw(&db, "B", "remove").await,
            Err(WatchlistError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn versions_and_deltas_on_sqlite() {
        let (db, _d) = testing::sqlite().await;
        versions_and_deltas(db).await;
    }

    #[tokio::test]
    async fn versions_and_deltas_on_postgres() {
        if let Some(db) = testing::postgres().await {
            versions_and_deltas(db).await;
        }
    }
}
