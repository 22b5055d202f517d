use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::audit::{AuditKey, AuditLog};
use crate::db::testing;

#[test]
fn lock_keys_are_stable_and_scoped() {
    // Hubs of one deployment built at different times must agree on the key: pinned.
    assert_eq!(Lock::Jobs.key("public"), Lock::Jobs.key("public"));
    assert_eq!(Lock::Jobs.key("public"), -751_482_189_897_518_528);
    assert_ne!(Lock::Jobs.key("public"), Lock::AuditChain.key("public"));
    assert_ne!(Lock::Jobs.key("public"), Lock::Jobs.key("t_other"));
}

#[tokio::test]
async fn sqlite_hub_leads_alone() {
    let (db, _dir) = testing::sqlite().await;
    let (_stop_tx, stop) = watch::channel(false);
    let l = Leadership::start(&db, Arc::new(Metrics::new()), stop);
    assert!(l.is_leader());
}

/// Waits until exactly one of `hubs` leads; returns its index.
async fn one_leader(hubs: &[Leadership], within: Duration) -> usize {
    let start = Instant::now();
    loop {
        let leading: Vec<usize> = (0..hubs.len()).filter(|i| hubs[*i].is_leader()).collect();
        if leading.len() == 1 {
            return leading[0];
        }
        assert!(leading.len() <= 1, "two hubs lead at once: {leading:?}");
        assert!(
            start.elapsed() < within,
            "no hub took the lead within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_of_three_hubs_leads_and_another_takes_over_within_10_s() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    let mut stops = Vec::new();
    let mut hubs = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = watch::channel(false);
        hubs.push(Leadership::start(&db, Arc::new(Metrics::new()), rx));
        stops.push(tx);
    }
    let first = one_leader(&hubs, Duration::from_secs(10)).await;
    // It keeps the lead while it lives: nobody else takes it over several rounds.
    tokio::time::sleep(TRY_EVERY * 3).await;
    assert_eq!(one_leader(&hubs, Duration::from_secs(1)).await, first);

    // The leader stops (its lock connection closes); another leads within 10 s.
    let gone = Instant::now();
    stops[first].send(true).unwrap();
    let second = loop {
        let i = one_leader(&hubs, Duration::from_secs(10)).await;
        if i != first {
            break i;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        gone.elapsed() < Duration::from_secs(10),
        "takeover took {:?}",
        gone.elapsed()
    );
    assert_ne!(second, first);
}

#[tokio::test]
async fn a_killed_leaders_lock_goes_when_its_session_does() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    // A hub killed with SIGKILL closes no connection politely; its backend ends when the socket does.
    // Simulated by terminating the leader's backend from outside, which is what PostgreSQL does then.
    let (_s1, r1) = watch::channel(false);
    let (_s2, r2) = watch::channel(false);
    let a = Leadership::start(&db, Arc::new(Metrics::new()), r1);
    let b = Leadership::start(&db, Arc::new(Metrics::new()), r2);
    let hubs = [a, b];
    let first = one_leader(&hubs, Duration::from_secs(10)).await;
    let key = Lock::Jobs.key(db.scope());
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks \
         WHERE locktype = 'advisory' AND granted \
         AND ((classid::bigint << 32) | objid::bigint) = $1",
    )
    .bind(key)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(killed, 1, "the leader's lock is held by one backend");
    let gone = Instant::now();
    loop {
        if hubs[1 - first].is_leader() {
            break;
        }
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "no takeover in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The old leader noticed its connection was gone and stepped down.
    let t = Instant::now();
    while hubs[first].is_leader() {
        assert!(t.elapsed() < TRY_EVERY * 3, "the old leader still leads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_hubs_appending_at_once_keep_one_audit_chain() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    let secret = [7u8; 32];
    let a = Arc::new(
        AuditLog::with_key(db.clone(), AuditKey::from_secret(&secret))
            .await
            .unwrap(),
    );
    let b = Arc::new(
        AuditLog::with_key(db.clone(), AuditKey::from_secret(&secret))
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for (n, log) in [a.clone(), b.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                log.append(&format!("hub{n}"), "test.append", &i.to_string(), "")
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let check = a.verify().await.unwrap();
    assert!(check.ok, "{:?}", check.problem);
    assert_eq!(check.entries, 80);
}

#[tokio::test]
async fn a_hint_announced_on_one_hub_reaches_the_pages_of_another() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    let (_stop_tx, stop) = watch::channel(false);
    let hub_a = Arc::new(crate::ingest::IngestState::default());
    let hub_b = Arc::new(crate::ingest::IngestState::default());
    let mut page_b = hub_b.live.subscribe();
    tokio::spawn(crate::live::relay(
        db.clone(),
        hub_b.clone(),
        Arc::new(Metrics::new()),
        stop.clone(),
    ));
    // The relay says `resync` once it listens: from then on nothing is missed.
    let first = tokio::time::timeout(Duration::from_secs(10), page_b.recv())
        .await
        .expect("hub B listens")
        .unwrap();
    assert_eq!(first.kind, "resync");
    let hint = crate::live::Live {
        kind: "alert",
        site: "pier".into(),
        agent: "a1".into(),
        id: Some("0192-alert".into()),
    };
    crate::live::announce(&db, &hub_a, hint.clone()).await;
    let got = tokio::time::timeout(Duration::from_secs(10), page_b.recv())
        .await
        .expect("hub B's page got the hint")
        .unwrap();
    assert_eq!(got, hint);
}
