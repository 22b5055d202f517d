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
