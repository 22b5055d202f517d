//! `ingest` subcommand: how many agent events per second the hub stores, on SQLite and PostgreSQL.
//!
//! Runs the hub's own path (validation through the protocol crate, the idempotent insert, the hourly and
//! daily rollups, health updates) on a realistic mix: per-line `count` events, `line_crossing`s and some
//! `camera_status`, from many sites and agents, in the hub's batch size. The MQTT hop is not included: it
//! is measured by the broker figures in STACK.md and costs far less than the database.

use std::time::Instant;

use anyhow::{Context, Result};
use central_hub::db::Db;
use central_hub::ingest::{check, store_batch, Checked};
use checkpoint_protocol::{
    CameraState, CameraStatus, Count, Direction, Envelope, EventKind, LineCrossing,
};
use time::OffsetDateTime;

fn events(n: usize, start: OffsetDateTime) -> Vec<Checked> {
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
                }),
                _ => EventKind::CameraStatus(CameraStatus {
                    camera: format!("cam-{}", i % 4),
                    state: CameraState::Up,
                    fps: Some(10.0),
                    detail: None,
                }),
            };
            let env = Envelope::new(&site, &agent, t, event);
            let topic = checkpoint_protocol::topic(&env.site, &env.agent, env.kind());
            check(&topic, env.to_json().as_bytes(), 1 << 20).expect("valid event")
        })
        .collect()
}

async fn run_one(name: &str, db: &Db, total: usize, batch: usize) -> Result<()> {
    let evs = events(total, OffsetDateTime::now_utc());
    let started = Instant::now();
    for chunk in evs.chunks(batch) {
        store_batch(db, chunk, 7).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    // A redelivery of everything: the cost of duplicates (QoS 1 after a hub restart).
    let dup_started = Instant::now();
    for chunk in evs.chunks(batch) {
        store_batch(db, chunk, 7).await?;
    }
    let dup = dup_started.elapsed().as_secs_f64();
    println!(
        "| {name} | {total} | {batch} | {:.0} | {:.2} | {:.0} |",
        total as f64 / secs,
        secs * 1000.0 / (total as f64 / batch as f64),
        total as f64 / dup
    );
    Ok(())
}

pub fn run(total: usize, batches: &[usize], postgres_url: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!("\n## Hub ingest (validate, store idempotently, roll up), events per second\n");
        println!(
            "| database | events | batch | events/s new | ms per batch | events/s duplicates |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for &batch in batches {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
            let db = Db::open(&url, 4).await.context("SQLite")?;
            run_one("SQLite (file, WAL)", &db, total, batch).await?;
        }
        for &batch in batches {
            let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(postgres_url)
                .await
                .with_context(|| format!("PostgreSQL at {postgres_url}"))?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&admin)
                .await?;
            let sep = if postgres_url.contains('?') { '&' } else { '?' };
            let url = format!("{postgres_url}{sep}options=-c%20search_path%3D{schema}");
            let db = Db::open(&url, 8).await?;
            run_one("PostgreSQL 15 (local)", &db, total, batch).await?;
            db.pool.close().await;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await?;
        }
        Ok(())
    })
}
