//! `central-hub serve`: the hub's own broker (unless an external one is configured), the database, ingest,
//! the periodic jobs and the HTTP server, until Ctrl-C or SIGTERM.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{self, AppState};
use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::cluster::Leadership;
use crate::config::HubConfig;
use crate::db::{now_ms, Db};
use crate::ingest::{self, IngestState};
use crate::metrics::Metrics;
use anyhow::{Context, Result};

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
    if let Some(user) = &cfg.mqtt.connection.username {
        let sync_user = crate::broker::mosquitto::sync_username(user);
        o.set_client_id(sync_user.clone());
        o.set_credentials(sync_user, cfg.mqtt_password()?.unwrap_or_default());
    }
    Ok(o)
}

/// Deletes what the retention policy says must go: snapshots of unconfirmed alerts, old raw events,
/// refused-message records, occupancy history. Returns (snapshots, events) deleted. Expired sessions are
/// purged next to it, by their owner (`Auth::purge_expired_sessions`).
pub async fn retention(db: &Db, cfg: &HubConfig) -> Result<(u64, u64)> {
    let now = now_ms();
    let snap_cutoff = now - cfg.retention.snapshot_hours as i64 * 3_600_000;
    let snaps = crate::alerts::expire_snapshots(db, now, snap_cutoff).await?;
    let ev_cutoff = now - cfg.retention.event_days as i64 * 86_400_000;
    let events = ingest::prune(db, ev_cutoff).await?;
    crate::occupancy::prune(db, ev_cutoff).await?;
    Ok((snaps, events))
}

async fn refresh_agent_gauges(db: &Db, metrics: &Metrics) -> Result<()> {
    let counts = crate::agents::count_by_state(db).await?;
    for state in ["online", "offline", "stale"] {
        let n = counts
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        metrics
            .agents
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: state.into(),
            })
            .set(n);
    }
    Ok(())
}

async fn refresh_review_gauges(db: &Db, metrics: &Metrics) -> Result<()> {
    let waiting = crate::alerts::awaiting_review(db).await?;
    let now = now_ms();
    for status in ["candidate", "confirmed_once"] {
        let (n, oldest) = waiting
            .iter()
            .find(|(s, _, _)| s == status)
            .map_or((0, now), |(_, n, oldest)| (*n, *oldest));
        let label = crate::metrics::StatusLabel {
            status: status.into(),
        };
        metrics.alerts_awaiting_review.get_or_create(&label).set(n);
        metrics
            .alerts_awaiting_review_oldest_seconds
            .get_or_create(&label)
            .set((now - oldest).max(0) / 1000);
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
        cfg.mqtt.connection.username = Some(b.hub_user.clone());
        cfg.mqtt.connection.password = Some(b.password.clone());
        cfg.mqtt.connection.password_file = None;
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
    // Several hubs on one PostgreSQL: one of them runs the jobs; live hints reach every hub's pages.
    // Released only after the jobs have stopped, so the last round at shutdown (the audit checkpoint) still
    // runs on the hub that led.
    let (release_lead, lead_until) = tokio::sync::watch::channel(false);
    let leadership = Leadership::start(&db, metrics.clone(), lead_until);
    let relay = tokio::spawn(crate::live::relay(
        db.clone(),
        ingest_state.clone(),
        metrics.clone(),
        stop_rx.clone(),
    ));
    let checkpoints = crate::audit::spawn_checkpoints(
        audit.clone(),
        leadership.clone(),
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
        leadership.clone(),
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
        let leadership = leadership.clone();
        let mut took_over = leadership.changes();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            let mut last_retention = std::time::Instant::now() - Duration::from_secs(86_400);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    // A hub that takes over runs the jobs now, not at its next tick.
                    r = took_over.changed() => if r.is_err() || !*took_over.borrow_and_update() { continue },
                    _ = stop.changed() => return,
                }
                metrics
                    .mqtt_connected
                    .set(i64::from(st.connected.load(Ordering::Relaxed)));
                if leadership.is_leader() {
                    run_once_jobs(&db, &cfg, &wake, &auth, &mut last_retention).await;
                }
                if let Err(e) = refresh_agent_gauges(&db, &metrics).await {
                    tracing::error!(error = %e, "agent gauges");
                }
                if let Err(e) = refresh_review_gauges(&db, &metrics).await {
                    tracing::error!(error = %e, "review gauges");
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
    let _ = release_lead.send(true);
    let _ = relay.await;
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

/// The jobs that must run on one hub at a time (the leader, `cluster::Leadership`): stale agents and expired
/// watchlist entries every tick, retention (and expired sessions) on its interval.
async fn run_once_jobs(
    db: &Db,
    cfg: &HubConfig,
    wake: &tokio::sync::Notify,
    auth: &Auth,
    last_retention: &mut std::time::Instant,
) {
    if let Err(e) = crate::agents::mark_stale(db, cfg.stale_agent_s as i64 * 1000).await {
        tracing::error!(error = %e, "stale-agent check");
    }
    match crate::watchlists::expire_due(db).await {
        Ok(ids) if !ids.is_empty() => {
            tracing::info!(?ids, "watchlist entries expired and withdrawn");
            wake.notify_one();
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "watchlist expiry"),
    }
    if last_retention.elapsed() >= Duration::from_secs(cfg.retention.interval_s) {
        *last_retention = std::time::Instant::now();
        match retention(db, cfg).await {
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
    use sqlx::Row;

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
