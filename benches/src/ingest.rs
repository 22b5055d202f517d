//! `ingest` subcommand: how many agent events per second the hub stores, on SQLite and PostgreSQL.
//!
//! Runs the hub's own path (validation through the protocol crate, the idempotent insert, the hourly and
//! daily rollups, health updates) on a realistic mix: per-line `count` events, `line_crossing`s and some
//! `camera_status`, from many sites and agents, in the hub's batch size. A second table runs the whole
//! path: events published over MQTT (QoS 1) by one agent's login to the hub's own broker (the Mosquitto it
//! runs, with its ACL), read by the hub's ingest task, stored and acknowledged, timed until the last one is in
//! the database.

use std::time::Instant;

use anyhow::{Context, Result};
use central_hub::db::Db;
use central_hub::ingest::{check, store_batch, Checked};
use checkpoint_protocol::{
    CameraState, CameraStatus, Count, Direction, Envelope, EventKind, LineCrossing,
};
use time::OffsetDateTime;

fn events(n: usize, start: OffsetDateTime) -> Vec<Checked> {
    envelopes(n, start)
        .into_iter()
        .map(|env| {
            let topic = checkpoint_protocol::topic(&env.site, &env.agent, env.kind());
            check(&topic, env.to_json().as_bytes(), 1 << 20).expect("valid event")
        })
        .collect()
}

fn envelopes(n: usize, start: OffsetDateTime) -> Vec<Envelope> {
    (0..n)
        .map(|i| {
            let site = format!("site-{}", i % 20);
            let agent = format!("agent-{}", i % 3);
            let t = start + time::Duration::seconds(i as i64 / 60);
            let event = match i % 10 {
                0..=5 => EventKind::Count(Count {
                    camera: format!("cam-{}", i % 4),
                    line: "gate".into(),
                    interval_start: t,
                    interval_end: t + time::Duration::seconds(10),
                    entries: (i % 7) as u64,
                    exits: (i % 5) as u64,
                    total_entries: i as u64,
                    total_exits: i as u64 / 2,
                    occupancy: (i / 2) as i64,
                }),
                6..=8 => EventKind::LineCrossing(LineCrossing {
                    camera: format!("cam-{}", i % 4),
                    line: "gate".into(),
                    direction: if i % 2 == 0 {
                        Direction::In
                    } else {
                        Direction::Out
                    },
                    track_id: i as u64,
                    stream_time_s: i as f64 * 0.1,
                    site_boundary: Some(true),
                }),
                _ => EventKind::CameraStatus(CameraStatus {
                    camera: format!("cam-{}", i % 4),
                    state: CameraState::Up,
                    fps: Some(10.0),
                    detail: None,
                    ..Default::default()
                }),
            };
            Envelope::new(&site, &agent, t, event)
        })
        .collect()
}

async fn run_one(name: &str, db: &Db, total: usize, batch: usize, writers: usize) -> Result<()> {
    let evs = events(total, OffsetDateTime::now_utc());
    let secs = store_all(db, &evs, batch, writers).await?;
    // A redelivery of everything: the cost of duplicates (QoS 1 after a hub restart).
    let dup = store_all(db, &evs, batch, writers).await?;
    println!(
        "| {name} | {total} | {batch} | {writers} | {:.0} | {:.2} | {:.0} |",
        total as f64 / secs,
        secs * 1000.0 / (total as f64 / batch as f64),
        total as f64 / dup
    );
    Ok(())
}

/// Stores `evs` in batches of `batch` the way the hub's ingest does: up to `writers` batches at once, each in
/// its own transaction. Returns the seconds it took.
async fn store_all(db: &Db, evs: &[Checked], batch: usize, writers: usize) -> Result<f64> {
    let started = Instant::now();
    let mut writing = std::collections::VecDeque::new();
    for chunk in evs.chunks(batch) {
        while writing.len() >= writers {
            if let Some(w) = writing.pop_front() {
                w.await??;
            }
        }
        let (db, chunk) = (db.clone(), chunk.to_vec());
        writing.push_back(tokio::spawn(
            async move { store_batch(&db, &chunk, 7).await },
        ));
    }
    for w in writing {
        w.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Publishes `total` events to the hub's own broker and times until the hub's ingest has stored them all.
async fn run_mqtt(name: &str, db: &Db, total: usize) -> Result<()> {
    use std::time::Duration;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cfg = central_hub::config::HubConfig::parse(&format!(
        "[mqtt]\nlisten = \"127.0.0.1:{port}\"\nclient_id = \"bench-ingest-{port}\"\n"
    ))
    .map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let broker_dir = tempfile::tempdir()?;
    let broker = central_hub::broker::managed::start(
        db.clone(),
        central_hub::broker::managed::Settings {
            bin: cfg.mqtt.broker_bin.clone(),
            listen: cfg.mqtt.listen.parse()?,
            dir: broker_dir.path().to_path_buf(),
            max_packet_bytes: 1 << 22,
            hub_user: cfg.mqtt.client_id.clone(),
        },
        std::sync::Arc::new(central_hub::metrics::Metrics::new()),
        stop_rx.clone(),
    )
    .await?;
    cfg.mqtt.connection.username = Some(broker.hub_user.clone());
    cfg.mqtt.connection.password = Some(broker.password.clone());
    // One agent's login publishes everything: the broker's ACL lets it publish only as itself.
    let (agent_user, agent_password) =
        central_hub::broker::add_agent(db, "bench", "agent-0").await?;
    tokio::time::sleep(central_hub::broker::managed::RELOAD_EVERY * 2).await;
    let ingest = tokio::spawn(central_hub::ingest::run(
        cfg.clone(),
        db.clone(),
        std::sync::Arc::new(central_hub::metrics::Metrics::new()),
        Default::default(),
        stop_rx,
    ));
    let evs: Vec<Envelope> = envelopes(total, OffsetDateTime::now_utc())
        .into_iter()
        .map(|mut e| {
            e.site = "bench".into();
            e.agent = "agent-0".into();
            e
        })
        .collect();
    let stored = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
            .fetch_one(&db.pool)
            .await
    };
    // Let ingest connect and subscribe before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut opts = rumqttc::MqttOptions::new(format!("bench-pub-{port}"), "127.0.0.1", port);
    opts.set_inflight(200);
    opts.set_credentials(agent_user, agent_password);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 1000);
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let started = Instant::now();
    for env in &evs {
        client
            .publish(
                checkpoint_protocol::topic(&env.site, &env.agent, env.kind()),
                rumqttc::QoS::AtLeastOnce,
                false,
                env.to_json(),
            )
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while stored().await? < total as i64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "ingest did not store {total} events in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("| {name} | {total} | {:.0} |", total as f64 / secs);
    let _ = stop_tx.send(true);
    let _ = ingest.await;
    broker.stopped().await;
    poller.abort();
    Ok(())
}

/// Two hubs (two processes' worth of pools and tasks) storing one stream between them, as a shared
/// subscription splits it, against one hub storing the same amount: the ratio is what a second hub adds.
async fn run_two_hubs(
    postgres_url: &str,
    total: usize,
    batch: usize,
    writers: usize,
) -> Result<()> {
    let (admin, schema, one) = postgres_schema(postgres_url).await?;
    let evs = events(total, OffsetDateTime::now_utc());
    let one_rate = total as f64 / store_all(&one, &evs, batch, writers).await?;
    drop_schema(admin, schema, one).await?;

    let (admin, schema, a) = postgres_schema(postgres_url).await?;
    let b = Db::open(&schema_url(postgres_url, &schema), 8).await?;
    let evs = events(total, OffsetDateTime::now_utc());
    // The broker hands each event to one hub; consecutive batches alternate between them.
    let (mut for_a, mut for_b) = (Vec::new(), Vec::new());
    for (i, chunk) in evs.chunks(batch).enumerate() {
        if i % 2 == 0 {
            for_a.extend_from_slice(chunk);
        } else {
            for_b.extend_from_slice(chunk);
        }
    }
    let started = Instant::now();
    let hub = |db: Db, share: Vec<Checked>| {
        tokio::spawn(async move { store_all(&db, &share, batch, writers).await })
    };
    let (ra, rb) = tokio::join!(hub(a.clone(), for_a), hub(b.clone(), for_b));
    ra??;
    rb??;
    let two_rate = total as f64 / started.elapsed().as_secs_f64();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&a.pool)
        .await?;
    anyhow::ensure!(
        stored == total as i64,
        "two hubs stored {stored} of {total}"
    );
    b.pool.close().await;
    drop_schema(admin, schema, a).await?;
    println!(
        "| PostgreSQL 15 (local) | {total} | {batch} | {writers} | {one_rate:.0} | {two_rate:.0} | {:.2} |",
        two_rate / one_rate
    );
    Ok(())
}

fn schema_url(postgres_url: &str, schema: &str) -> String {
    let sep = if postgres_url.contains('?') { '&' } else { '?' };
    format!("{postgres_url}{sep}options=-c%20search_path%3D{schema}")
}

async fn postgres_schema(postgres_url: &str) -> Result<(sqlx::AnyPool, String, Db)> {
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(postgres_url)
        .await
        .with_context(|| format!("PostgreSQL at {postgres_url}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await?;
    let db = Db::open(&schema_url(postgres_url, &schema), 8).await?;
    Ok((admin, schema, db))
}

async fn drop_schema(admin: sqlx::AnyPool, schema: String, db: Db) -> Result<()> {
    db.pool.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await?;
    Ok(())
}

pub fn run(total: usize, batches: &[usize], postgres_url: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!("\n## Hub ingest (validate, store idempotently, roll up), events per second\n");
        println!(
            "| database | events | batch | writers | events/s new | ms per batch | events/s duplicates |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        // One writer and two (`[ingest] writers`: the hub's default is 2 on PostgreSQL, 1 on SQLite).
        for writers in [1, 2] {
            for &batch in batches {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
                let db = Db::open(&url, 4).await.context("SQLite")?;
                run_one("SQLite (file, WAL)", &db, total, batch, writers).await?;
            }
        }
        for writers in [1, 2] {
            for &batch in batches {
                let (admin, schema, db) = postgres_schema(postgres_url).await?;
                run_one("PostgreSQL 15 (local)", &db, total, batch, writers).await?;
                drop_schema(admin, schema, db).await?;
            }
        }
        println!("\n## Two hubs on one PostgreSQL, each storing half the stream, events per second\n");
        println!("| database | events | batch | writers per hub | one hub | two hubs | ratio |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for writers in [1, 2] {
            for &batch in batches {
                run_two_hubs(postgres_url, total, batch, writers).await?;
            }
        }
        println!("\n## Hub ingest through MQTT (embedded broker, QoS 1, hub's batching), events per second\n");
        println!("| database | events | events/s published to stored |");
        println!("|---|---:|---:|");
        {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
            let db = Db::open(&url, 4).await.context("SQLite")?;
            run_mqtt("SQLite (file, WAL)", &db, total).await?;
        }
        let (admin, schema, db) = postgres_schema(postgres_url).await?;
        run_mqtt("PostgreSQL 15 (local)", &db, total).await?;
        drop_schema(admin, schema, db).await?;
        Ok(())
    })
}
