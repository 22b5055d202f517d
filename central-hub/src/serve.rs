//! `central-hub serve`: the hub's own broker (unless an external one is configured), the database, ingest,
//! the periodic jobs and the HTTP server, until Ctrl-C or SIGTERM.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::Row;

use crate::api::{self, AppState};
use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::config::HubConfig;
use crate::db::{now_ms, Db};
use crate::ingest::{self, IngestState};
use crate::metrics::Metrics;

/// The hub's own broker: on `[mqtt] listen`, its files in `<data_dir>/broker`.
fn broker_settings(cfg: &HubConfig) -> Result<crate::broker::managed::Settings> {
    Ok(crate::broker::managed::Settings {
        bin: cfg.mqtt.broker_bin.clone(),
        listen: cfg.mqtt.listen.parse().context("mqtt.listen")?,
        dir: std::path::absolute(cfg.data_dir.join("broker"))
            .context("the data directory's absolute path")?,
        // Room for the largest event, with its MQTT framing.
        max_packet_bytes: cfg.mqtt.max_event_bytes * 4,
        hub_user: cfg.mqtt.client_id.clone(),
    })
}

/// The watchlist pusher's connection: the hub's login with `-sync` appended (allowed to publish only on the
/// agents' sync topics), same password.
fn sync_mqtt_options(cfg: &HubConfig) -> Result<rumqttc::MqttOptions> {
    let mut o = ingest::mqtt_options(cfg)?;
    if let Some(user) = &cfg.mqtt.username {
        let sync_user = crate::broker::mosquitto::sync_username(user);
        o.set_client_id(sync_user.clone());
        o.set_credentials(sync_user, cfg.mqtt_password()?.unwrap_or_default());
    }
    Ok(o)
}

/// Marks agents that went silent and raises a health alert for each, once.
pub async fn mark_stale_agents(db: &Db, stale_after_ms: i64) -> Result<Vec<(String, String)>> {
    let now = now_ms();
    let rows = sqlx::query(
        "SELECT site, agent, last_seen_ms FROM agents WHERE state = 'online' AND last_seen_ms < $1",
    )
    .bind(now - stale_after_ms)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let site: String = r.try_get("site")?;
        let agent: String = r.try_get("agent")?;
        let last: i64 = r.try_get("last_seen_ms")?;
        let mut tx = db.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE agents SET state = 'stale', state_since_ms = $1 \
             WHERE site = $2 AND agent = $3 AND state = 'online' AND last_seen_ms = $4",
        )
        .bind(now)
        .bind(&site)
        .bind(&agent)
        .bind(last)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            sqlx::query(
                "INSERT INTO system_alerts (id, kind, site, agent, detail, raised_ms, cleared_ms) \
                 VALUES ($1, 'stale_agent', $2, $3, $4, $5, NULL)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&site)
            .bind(&agent)
            .bind(format!("no event for {} s", (now - last) / 1000))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            out.push((site.clone(), agent.clone()));
        }
        tx.commit().await?;
        if changed == 1 {
            tracing::warn!(%site, %agent, silent_s = (now - last) / 1000, "agent went silent");
        }
    }
    Ok(out)
}

/// Deletes what the retention policy says must go: snapshots of unconfirmed alerts, old raw events,
/// refused-message records, expired sessions. Returns (snapshots, events) deleted.
pub async fn retention(db: &Db, cfg: &HubConfig) -> Result<(u64, u64)> {
    let now = now_ms();
    let snap_cutoff = now - cfg.retention.snapshot_hours as i64 * 3_600_000;
    // Confirmed alerts follow their case's retention and are not touched here.
    let snaps = sqlx::query(
        "UPDATE alerts SET snapshot = NULL, snapshot_deleted_ms = $1 \
         WHERE snapshot IS NOT NULL AND status <> 'confirmed' AND ts_ms < $2",
    )
    .bind(now)
    .bind(snap_cutoff)
    .execute(&db.pool)
    .await?
    .rows_affected();
    // Confirmed alerts keep their snapshot for their case's retention (365 days if the entry is gone).
    let snaps = snaps
        + sqlx::query(
            "UPDATE alerts SET snapshot = NULL, snapshot_deleted_ms = $1 \
             WHERE snapshot IS NOT NULL AND status = 'confirmed' AND ts_ms < $1 - 86400000 * \
             COALESCE((SELECT w.case_retention_days FROM watchlist_entries w WHERE w.id = alerts.entry_id), 365)",
        )
        .bind(now)
        .execute(&db.pool)
        .await?
        .rows_affected();
    let ev_cutoff = now - cfg.retention.event_days as i64 * 86_400_000;
    let events = sqlx::query("DELETE FROM events WHERE ts_ms < $1")
        .bind(ev_cutoff)
        .execute(&db.pool)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM ingest_rejects WHERE received_ms < $1")
        .bind(ev_cutoff)
        .execute(&db.pool)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE expires_ms <= $1")
        .bind(now)
        .execute(&db.pool)
        .await?;
    crate::occupancy::prune(db, ev_cutoff).await?;
    Ok((snaps, events))
}

async fn refresh_agent_gauges(db: &Db, metrics: &Metrics) -> Result<()> {
    let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM agents GROUP BY state")
        .fetch_all(&db.pool)
        .await?;
    for state in ["online", "offline", "stale"] {
        let n = rows
            .iter()
            .find(|r| r.try_get::<String, _>("state").ok().as_deref() == Some(state))
            .and_then(|r| r.try_get::<i64, _>("n").ok())
            .unwrap_or(0);
        metrics
            .agents
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: state.into(),
            })
            .set(n);
    }
    Ok(())
}

/// Runs everything until a shutdown signal.
pub async fn serve(cfg: HubConfig) -> Result<()> {
    secure_data_dir(&cfg.data_dir)?;
    let tls = load_tls(&cfg.http)?;
    let mut cfg = cfg;
    let metrics = Arc::new(Metrics::new());
    let url = cfg.database_url();
    let db = Db::open(&url, cfg.database.max_connections)
        .await
        .context("opening the database")?;
    tracing::info!(database = %crate::db::redact(&url), backend = ?db.backend, "database ready");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let broker = if cfg.mqtt.embedded {
        let b = crate::broker::managed::start(
            db.clone(),
            broker_settings(&cfg)?,
            metrics.clone(),
            stop_rx.clone(),
        )
        .await?;
        cfg.mqtt.username = Some(b.hub_user.clone());
        cfg.mqtt.password = Some(b.password.clone());
        cfg.mqtt.password_file = None;
        Some(b)
    } else {
        None
    };
    let signer =
        Arc::new(crate::keys::load_or_create(&cfg.data_dir).context("the watchlist signing key")?);
    tracing::info!(key_id = signer.key_id(), public_key = %signer.public_key(), "watchlist syncs are signed with this key");
    let mut auth = Auth::with_limits(
        db.clone(),
        cfg.http.session_hours,
        cfg.http.login_limits(),
        cfg.http.password_hash_threads(),
    );
    auth.hasher.in_flight = metrics.password_hashes_in_flight.clone();
    let auth = Arc::new(auth);
    let audit = Arc::new(
        AuditLog::open(db.clone(), &cfg.audit_files())
            .await
            .context("opening the audit log")?,
    );
    let refused_logins = Arc::new(crate::login_audit::RefusedLogins::default());
    if auth.user_count().await? == 0 {
        tracing::warn!(
            "no users yet: create the first admin with `central-hub user add --role admin --username NAME`"
        );
    }
    let ingest_state = Arc::new(IngestState::default());
    let checkpoints = crate::audit::spawn_checkpoints(
        audit.clone(),
        Duration::from_secs(cfg.audit.checkpoint_interval_s),
        metrics.clone(),
        stop_rx.clone(),
    );

    let ingest_task = tokio::spawn(ingest::run(
        cfg.clone(),
        db.clone(),
        metrics.clone(),
        ingest_state.clone(),
        stop_rx.clone(),
    ));

    // Periodic jobs: stale agents and expired watchlist entries every 10 s, retention (and expired sessions) on its
    // interval.
    let pusher = crate::watchlists::Pusher::start(
        db.clone(),
        sync_mqtt_options(&cfg)?,
        signer,
        cfg.watchlist.rules(),
        stop_rx.clone(),
    );
    let jobs = {
        let (db, cfg, metrics, st, wake, auth) = (
            db.clone(),
            cfg.clone(),
            metrics.clone(),
            ingest_state.clone(),
            pusher.wake.clone(),
            auth.clone(),
        );
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            let mut last_retention = std::time::Instant::now() - Duration::from_secs(86_400);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                metrics
                    .mqtt_connected
                    .set(i64::from(st.connected.load(Ordering::Relaxed)));
                if let Err(e) = mark_stale_agents(&db, cfg.stale_agent_s as i64 * 1000).await {
                    tracing::error!(error = %e, "stale-agent check");
                }
                match crate::watchlists::expire_due(&db).await {
                    Ok(ids) if !ids.is_empty() => {
                        tracing::info!(?ids, "watchlist entries expired and withdrawn");
                        wake.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "watchlist expiry"),
                }
                if let Err(e) = refresh_agent_gauges(&db, &metrics).await {
                    tracing::error!(error = %e, "agent gauges");
                }
                if let Err(e) = crate::occupancy::refresh_gauges(
                    &db,
                    &metrics,
                    i64::from(cfg.utc_offset_hours) * 60,
                )
                .await
                {
                    tracing::error!(error = %e, "occupancy gauges");
                }
                if last_retention.elapsed() >= Duration::from_secs(cfg.retention.interval_s) {
                    last_retention = std::time::Instant::now();
                    match retention(&db, &cfg).await {
                        Ok((s, e)) if s + e > 0 => {
                            tracing::info!(snapshots = s, events = e, "retention: deleted")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "retention job"),
                    }
                    match auth.purge_expired_sessions().await {
                        Ok(n) if n > 0 => {
                            tracing::info!(sessions = n, "retention: expired sessions deleted")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "expired-session purge"),
                    }
                }
            }
        })
    };

    let faces = match crate::faces::FaceEngine::load(
        cfg.faces.models_dir.clone(),
        cfg.faces.runtime.clone(),
    ) {
        Ok(f) => Some(Arc::new(f)),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "face models not loaded: enrolment and 1:1 verification are unavailable");
            None
        }
    };
    let state = AppState {
        watchlist_push: pusher.wake.clone(),
        faces,
        db: db.clone(),
        auth,
        audit,
        metrics,
        ingest: ingest_state,
        cfg: Arc::new(cfg.clone()),
        refused_logins: refused_logins.clone(),
    };
    let login_audit = refused_logins.spawn_flusher(
        state.audit.clone(),
        Duration::from_secs(cfg.http.login_audit_interval_s),
        stop_rx.clone(),
    );
    let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
        .await
        .with_context(|| format!("HTTP cannot listen on {}", cfg.http.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, "HTTP on {scheme}://{addr}/ (health /healthz, metrics /metrics, API /api/openapi.json)");
    let mut stop = stop_rx.clone();
    let opts = crate::http_server::HttpOptions {
        header_read_timeout: Duration::from_secs(cfg.http.header_read_timeout_s),
        tls,
        drain: Duration::from_secs(10),
    };
    crate::http_server::serve(listener, api::router(state), opts, async move {
        shutdown_signal(&mut stop).await;
    })
    .await?;
    let _ = stop_tx.send(true);
    let _ = jobs.await;
    let _ = checkpoints.await;
    let _ = login_audit.await;
    match tokio::time::timeout(Duration::from_secs(10), ingest_task).await {
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "ingest stopped with an error"),
        Err(_) => tracing::warn!("ingest did not stop within 10 s"),
        _ => {}
    }
    if let Some(b) = broker {
        b.stopped().await;
    }
    db.pool.close().await;
    tracing::info!("hub stopped");
    Ok(())
}

/// Creates the data directory if needed and makes it and everything in it private (0700 / 0600).
fn secure_data_dir(dir: &std::path::Path) -> Result<()> {
    let changed = crate::private_files::secure_tree(dir).with_context(|| {
        format!(
            "making the data directory {} private (0700, files 0600)",
            dir.display()
        )
    })?;
    if changed > 0 {
        tracing::warn!(
            dir = %dir.display(),
            changed,
            "the data directory had files or folders others could read; now only the hub's user can"
        );
    }
    Ok(())
}

/// The TLS configuration from `[http] tls_cert` and `tls_key`, or None for plain HTTP.
fn load_tls(
    http: &crate::config::HttpConfig,
) -> Result<Option<Arc<tokio_rustls::rustls::ServerConfig>>> {
    match (&http.tls_cert, &http.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(crate::tls::server_config(cert, key)?)),
        _ => Ok(None),
    }
}

async fn shutdown_signal(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
        _ = stop.changed() => {},
    }
    tracing::info!("stopping");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    #[tokio::test]
    async fn silent_agents_go_stale_once_and_come_back() {
        let (db, _d) = testing::sqlite().await;
        let old = now_ms() - 600_000;
        sqlx::query(
            "INSERT INTO agents (site, agent, state, version, cameras, last_seen_ms, state_since_ms, \
             watchlist_version, watchlist_needs_full) VALUES ('pier', 'a1', 'online', '1', '[]', $1, $1, 0, 0)",
        )
        .bind(old)
        .execute(&db.pool)
        .await
        .unwrap();
        let stale = mark_stale_agents(&db, 120_000).await.unwrap();
        assert_eq!(stale, vec![("pier".to_string(), "a1".to_string())]);
        assert!(mark_stale_agents(&db, 120_000).await.unwrap().is_empty());
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM system_alerts WHERE kind = 'stale_agent' AND cleared_ms IS NULL",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get("n");
        assert_eq!(n, 1);
    }

    async fn retention_case(db: Db) {
        let now = now_ms();
        let old = now - 100 * 3_600_000;
        for (id, status, ts) in [
            ("fresh", "candidate", now),
            ("old-candidate", "candidate", old),
            ("old-dismissed", "dismissed", old),
            ("old-confirmed", "confirmed", old),
            ("ancient-confirmed", "confirmed", now - 400 * 86_400_000),
        ] {
            sqlx::query(
                "INSERT INTO alerts (id, site, agent, camera, track_id, list, entry_id, similarity, threshold, votes, \
                 faces_used, watchlist_version, ts_ms, stream_time_s, models, snapshot, status, created_ms) \
                 VALUES ($1, 's', 'a', 'c', 1, 'wanted', 'gone', 0.5, 0.43, 2, 2, 1, $2, 0, '[]', $3, $4, $2)",
            )
            .bind(id)
            .bind(ts)
            .bind(vec![0xFFu8, 0xD8, 0xFF])
            .bind(status)
            .execute(&db.pool)
            .await
            .unwrap();
        }
        let cfg = HubConfig::default();
        let (snaps, _) = retention(&db, &cfg).await.unwrap();
        assert_eq!(snaps, 3);
        let kept: Vec<String> =
            sqlx::query("SELECT id FROM alerts WHERE snapshot IS NOT NULL ORDER BY id")
                .fetch_all(&db.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("id"))
                .collect();
        assert_eq!(kept, vec!["fresh", "old-confirmed"]);
    }

    #[tokio::test]
    async fn retention_deletes_unconfirmed_snapshots_after_72h_on_sqlite() {
        let (db, _d) = testing::sqlite().await;
        retention_case(db).await;
    }

    #[tokio::test]
    async fn retention_deletes_unconfirmed_snapshots_after_72h_on_postgres() {
        if let Some(db) = testing::postgres().await {
            retention_case(db).await;
        }
    }

    #[tokio::test]
    async fn a_taken_port_is_a_clear_error() {
        let (db, d) = testing::sqlite().await;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut cfg = HubConfig::default();
        cfg.mqtt.listen = l.local_addr().unwrap().to_string();
        cfg.data_dir = d.path().to_path_buf();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let e = crate::broker::managed::start(
            db,
            broker_settings(&cfg).unwrap(),
            Arc::new(Metrics::new()),
            rx,
        )
        .await
        .err()
        .unwrap();
        assert!(e.to_string().contains("embedded = false"), "{e}");
    }
}
