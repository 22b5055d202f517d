//! The lists' policies: what each list may cost in false candidates per passer-by. Owns `watchlist_policies`.
//! An administrator sets them in the UI; until then `hub.toml [watchlist]` holds. The hub turns a policy into
//! the operating point for the list's current size (the same calibration the agents apply) and shows what it
//! costs, so a list that outgrows the model is visible before it misses people.

use checkpoint_openset::ListPolicy;
use checkpoint_protocol::watchlist::{Policies, Thresholds};
use checkpoint_protocol::ListKind;
use serde::{Deserialize, Serialize};

use crate::db::{now_ms, Db, DbError};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("unknown list '{0}': wanted or missing")]
    UnknownList(String),
    #[error(transparent)]
    Invalid(#[from] checkpoint_openset::PolicyError),
    #[error("recording the change for the agents: {0}")]
    Revision(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for PolicyError {
    fn from(e: sqlx::Error) -> Self {
        PolicyError::Db(e.into())
    }
}

/// A list as the watchlist page shows it.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ListOverview {
    /// `wanted` or `missing`
    pub list: String,
    /// Active entries (not withdrawn, not expired), over every site.
    pub entries: u64,
    /// Their templates: the comparisons each passer-by makes with the list, which the threshold scales with.
    pub templates: u64,
    pub target_fpir: f64,
    pub max_fnir: f64,
    /// Who set the policy last and when (none: the hub.toml default holds).
    pub updated_by: Option<String>,
    pub updated_ms: Option<i64>,
    /// The similarity the agents match this list at for its size (the floor when that is stricter).
    pub threshold: f32,
    pub floor: f32,
    /// Expected false candidates per 1,000 passers-by, and expected share of listed people missed (per
    /// single face; tracks that fuse several faces miss fewer).
    pub false_per_1000: f64,
    pub expected_fnir: f64,
    /// Entries the list can hold before the expected miss rate passes `max_fnir` (none: over a million).
    pub capacity: Option<u64>,
    /// The threshold lies beyond what the calibration measured.
    pub extrapolated: bool,
    /// The list has outgrown its policy: the expected miss rate is above `max_fnir`.
    pub over_target: bool,
}

/// A policy change as the API takes it.
#[derive(Clone, Copy, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    /// Share of passers-by not on the list who may raise a candidate (e.g. 0.001).
    pub target_fpir: f64,
    /// Share of listed people the list may miss before the hub warns (e.g. 0.10).
    pub max_fnir: f64,
}

/// The policies in force: the administrator's where set, `defaults` (hub.toml) otherwise.
pub async fn current(db: &Db, defaults: Policies) -> Result<Policies, PolicyError> {
    let mut out = defaults;
    let set: Vec<(String, f64, f64)> =
        sqlx::query_as("SELECT list, target_fpir, max_fnir FROM watchlist_policies")
            .fetch_all(&db.pool)
            .await?;
    for (list, target_fpir, max_fnir) in set {
        let policy = ListPolicy {
            target_fpir,
            max_fnir,
        };
        match list.as_str() {
            "wanted" => out.wanted = policy,
            "missing" => out.missing = policy,
            _ => {}
        }
    }
    Ok(out)
}

/// Sets a list's policy.
pub async fn set(db: &Db, list: &str, change: PolicyChange, by: &str) -> Result<(), PolicyError> {
    let kind = ListKind::parse(list).ok_or_else(|| PolicyError::UnknownList(list.to_string()))?;
    let policy = ListPolicy {
        target_fpir: change.target_fpir,
        max_fnir: change.max_fnir,
    };
    policy.validate()?;
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM watchlist_policies WHERE list = $1")
        .bind(kind.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO watchlist_policies (list, target_fpir, max_fnir, updated_by, updated_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(kind.as_str())
    .bind(policy.target_fpir)
    .bind(policy.max_fnir)
    .bind(by)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    crate::watchlists::revise_policies(&mut tx)
        .await
        .map_err(|e| PolicyError::Revision(e.to_string()))?;
    tx.commit().await?;
    Ok(())
}

/// Each list with its size, policy and what the policy costs at that size.
pub async fn overview(
    db: &Db,
    defaults: Policies,
    floors: Thresholds,
) -> Result<Vec<ListOverview>, PolicyError> {
    let cal = checkpoint_vision::manifest::embedder_calibration();
    let policies = current(db, defaults).await?;
    let now = now_ms();
    let mut out = Vec::new();
    for list in [ListKind::Wanted, ListKind::Missing] {
        let name = list.as_str();
        // The threshold scales with comparisons: an entry is compared by each of its templates (its own
        // photos and, when linked, its identity record's).
        let (entries, templates) = crate::watchlists::active_size(db, name, now).await?;
        let set_by: Option<(String, i64)> =
            sqlx::query_as("SELECT updated_by, updated_ms FROM watchlist_policies WHERE list = $1")
                .bind(name)
                .fetch_optional(&db.pool)
                .await?;
        let policy = *policies.for_list(list);
        let floor = floors.for_list(list);
        let point = cal.map(|c| policy.operating_point(c, templates as usize, floor));
        let expected_fnir = point.map_or(f64::NAN, |p| p.expected_fnir);
        out.push(ListOverview {
            list: name.to_string(),
            entries,
            templates,
            target_fpir: policy.target_fpir,
            max_fnir: policy.max_fnir,
            updated_by: set_by.as_ref().map(|(by, _)| by.clone()),
            updated_ms: set_by.as_ref().map(|(_, at)| *at),
            threshold: point.map_or(floor, |p| p.threshold),
            floor,
            false_per_1000: point.map_or(f64::NAN, |p| p.false_per_1000()),
            expected_fnir,
            capacity: cal
                .and_then(|c| policy.capacity(c, floor))
                .map(|n| n as u64),
            extrapolated: point.is_some_and(|p| p.extrapolated),
            over_target: expected_fnir > policy.max_fnir,
        });
    }
    Ok(out)
}
