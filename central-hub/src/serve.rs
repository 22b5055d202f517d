//! `central-hub serve`: the embedded broker (unless an external one is configured), the database, ingest,
//! the periodic jobs and the HTTP server, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sqlx::Row;

use crate::api::{self, AppState};
use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::config::HubConfig;
use crate::db::{now_ms, Db};
use crate::ingest::{self, IngestState};
use crate::metrics::Metrics;

/// rumqttd on `listen`, in this process. Fails (instead of running without a broker) when the address is
/// taken, e.g. by a Mosquitto already on 1883: configure `[mqtt] embedded = false` to use that one.
/// With `auth`, every login is checked by it (rumqttd 0.20 has no per-topic authorisation hook, so the
/// per-agent topic ACL needs an external broker: see `central-hub broker-files`).
pub fn start_embedded_broker(
    listen: &str,
    max_payload: usize,
    auth: Option<Arc<crate::broker::BrokerAuth>>,
) -> Result<()> {
    let addr: SocketAddr = listen.parse().context("mqtt.listen")?;
    std::net::TcpListener::bind(addr).with_context(|| {
        format!(
            "the embedded MQTT broker cannot listen on {addr} (another broker running?): free the port, \
             set [mqtt] listen to another address, or use that broker with [mqtt] embedded = false"
        )
    })?;
    let text = format!(
        r#"
id = 0
[router]
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "{addr}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = {max_payload}
max_inflight_count = 1000
dynamic_filters = true
"#
    );
    let mut config: rumqttd::Config = toml::from_str(&text).context("embedded broker config")?;
    if let Some(auth) = auth {
        // The broker runs its own runtime; the check runs on the hub's, where the database pool lives.
        let hub_rt = tokio::runtime::Handle::try_current()
            .context("the embedded broker's login check needs the hub's runtime")?;
        let server = config
            .v4
            .as_mut()
            .and_then(|v4| v4.get_mut("1"))
            .context("embedded broker config has no v4 listener")?;
        server.connections.set_auth_handler(
            move |client_id: String, user: String, pass: String| {
                let (auth, rt) = (auth.clone(), hub_rt.clone());
                async move {
                    rt.spawn(async move { auth.check(&client_id, &user, &pass).await })
                        .await
                        .unwrap_or(false)
                }
            },
        );
    }
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            tracing::info!(%addr, "embedded MQTT broker listening");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the embedded MQTT broker did not start on {addr}")
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
    if cfg.mqtt.embedded {
        let auth = if cfg.embedded_requires_auth() {
            // The hub's own session logs in with a password that lives only in this process.
            let password = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            let user = format!("{}-internal", cfg.mqtt.client_id);
            cfg.mqtt.username = Some(user.clone());
            cfg.mqtt.password = Some(password.clone());
            cfg.mqtt.password_file = None;
            tracing::info!("embedded broker: logins checked against the agent accounts");
            Some(Arc::new(
                crate::broker::BrokerAuth::new(db.clone(), user, password)
                    .counting_refusals(metrics.broker_logins_refused.clone()),
            ))
        } else {
            tracing::info!(
                "embedded broker on loopback takes anonymous clients (set [mqtt] require_auth = true to refuse them)"
            );
            None
        };
        start_embedded_broker(&cfg.mqtt.listen, cfg.mqtt.max_event_bytes * 4, auth)?;
    }
    let mut auth = Auth::with_limits(
        db.clone(),
        cfg.http.session_hours,
        cfg.http.login_limits(),
        cfg.http.password_hash_threads(),
    );
    auth.hasher.in_flight = metrics.password_hashes_in_flight.clone();
    let auth = Arc::new(auth);
    let audit = Arc::new(AuditLog::new(db.clone()));
    let refused_logins = Arc::new(crate::login_audit::RefusedLogins::default());
    if auth.user_count().await? == 0 {
        tracing::warn!(
            "no users yet: create the first admin with `central-hub user add --role admin --username NAME`"
        );
    }
    let ingest_state = Arc::new(IngestState::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let ingest_task = tokio::spawn(ingest::run(
        cfg.clone(),
        db.clone(),
        metrics.clone(),
        ingest_state.clone(),
        stop_rx.clone(),
    ));

    // Periodic jobs: stale agents and expired watchlist entries every 10 s, retention on its interval.
    let pusher = crate::watchlists::Pusher::start(
        db.clone(),
        ingest::mqtt_options(&cfg)?,
        cfg.watchlist.rules(),
        stop_rx.clone(),
    );
    let jobs = {
        let (db, cfg, metrics, st, wake) = (
            db.clone(),
            cfg.clone(),
            metrics.clone(),
            ingest_state.clone(),
            pusher.wake.clone(),
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
                if last_retention.elapsed() >= Duration::from_secs(cfg.retention.interval_s) {
                    last_retention = std::time::Instant::now();
                    match retention(&db, &cfg).await {
                        Ok((s, e)) if s + e > 0 => {
                            tracing::info!(snapshots = s, events = e, "retention: deleted")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "retention job"),
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
    let _ = login_audit.await;
    match tokio::time::timeout(Duration::from_secs(10), ingest_task).await {
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "ingest stopped with an error"),
        Err(_) => tracing::warn!("ingest did not stop within 10 s"),
        _ => {}
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

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let e = start_embedded_broker(&addr, 1 << 20, None).unwrap_err();
        assert!(format!("{e:#}").contains("embedded = false"), "{e:#}");
    }
}
