use super::*;
use crate::db::testing;

fn files(dir: &Path) -> AuditFiles {
    AuditFiles {
        key_file: dir.join("keys/audit.key"),
        checkpoint_file: dir.join("audit-checkpoints.jsonl"),
    }
}

async fn fill(log: &AuditLog, n: usize) {
    for i in 0..n {
        log.append("alice", "alert.view", &format!("alert-{i}"), "{}")
            .await
            .unwrap();
    }
}

async fn entries(db: &Db) -> Vec<AuditEntry> {
    sqlx::query_as("SELECT * FROM audit_log ORDER BY seq")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

/// What an attacker with write access to the database does after an edit: recomputes every hash from
/// row `from` on with `rule`, so each row links to the one before.
async fn recompute_from(db: &Db, from: i64, rule: impl Fn(&AuditEntry) -> String) {
    let mut prev = GENESIS.to_string();
    for mut e in entries(db).await {
        if e.seq >= from {
            e.prev_hash = prev.clone();
            e.hash = rule(&e);
            sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3")
                .bind(&e.prev_hash)
                .bind(&e.hash)
                .bind(e.seq)
                .execute(&db.pool)
                .await
                .unwrap();
        }
        prev = e.hash;
    }
}

fn unkeyed(e: &AuditEntry) -> String {
    entry_hash(
        &e.prev_hash,
        e.seq,
        e.ts_ms,
        &e.actor,
        &e.action,
        &e.target,
        &e.detail,
    )
}

async fn tamper_cases(db: Db) {
    let log = AuditLog::with_key(db.clone(), AuditKey::generate().unwrap())
        .await
        .unwrap();
    fill(&log, 5).await;
    let ok = log.verify().await.unwrap();
    assert!(ok.ok && ok.entries == 5, "{ok:?}");
    assert_eq!(ok.keyed_from_seq, Some(1));
    assert_eq!(
        log.list(Some("alice"), Some("alert."), None, 10)
            .await
            .unwrap()
            .len(),
        5
    );

    // Editing a row's content.
    sqlx::query("UPDATE audit_log SET target = 'alert-x' WHERE seq = 3")
        .execute(&db.pool)
        .await
        .unwrap();
    let bad = log.verify().await.unwrap();
    assert!(!bad.ok);
    assert_eq!(bad.first_bad_seq, Some(3));
    assert!(bad.problem.unwrap().contains("altered"));

    // Finding 10: recomputing the chain after the edit, as anyone without the key can, does not help.
    recompute_from(&db, 3, unkeyed).await;
    let bad = log.verify().await.unwrap();
    assert!(!bad.ok, "{bad:?}");
    assert_eq!(bad.first_bad_seq, Some(3), "{bad:?}");
    // Deleting a row.
    sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&db.pool)
        .await
        .unwrap();
    let bad = log.verify().await.unwrap();
    assert_eq!(bad.first_bad_seq, Some(2), "{bad:?}");
    assert!(bad.problem.unwrap().contains("missing"));

    // Recomputing with a key of one's own does not help either.
    let other = AuditKey::generate().unwrap();
    recompute_from(&db, 1, |e| {
        keyed_entry_hash(
            &other,
            &e.prev_hash,
            e.seq,
            e.ts_ms,
            &e.actor,
            &e.action,
            &e.target,
            &e.detail,
        )
    })
    .await;
    let bad = log.verify().await.unwrap();
    assert_eq!(bad.first_bad_seq, Some(1), "{bad:?}");
}

#[tokio::test]
async fn tampering_is_detected_on_sqlite() {
    let (db, _dir) = testing::sqlite().await;
    tamper_cases(db).await;
}

#[tokio::test]
async fn tampering_is_detected_on_postgres() {
    if let Some(db) = testing::postgres().await {
        tamper_cases(db).await;
    }
}

/// Finding 10: rows deleted from the tail leave a valid, shorter chain; the checkpoints tell.
async fn truncation_cases(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(db.clone(), &files(dir.path()))
        .await
        .unwrap();
    fill(&log, 5).await;
    let c = log.checkpoint().await.unwrap().expect("a checkpoint");
    assert_eq!(c.seq, 5);
    assert!(
        log.checkpoint().await.unwrap().is_none(),
        "same head, no new line"
    );
    fill(&log, 1).await;
    log.checkpoint()
        .await
        .unwrap()
        .expect("a second checkpoint");
    let ok = log.verify().await.unwrap();
    assert!(ok.ok && ok.checkpoints == 2, "{ok:?}");

    sqlx::query("DELETE FROM audit_log WHERE seq >= 5")
        .execute(&db.pool)
        .await
        .unwrap();
    let bad = AuditLog::for_verify(db.clone(), &files(dir.path()))
        .unwrap()
        .verify()
        .await
        .unwrap();
    assert!(!bad.ok, "{bad:?}");
    assert_eq!(bad.first_bad_seq, Some(5));
    assert!(
        bad.problem
            .as_deref()
            .unwrap()
            .contains("deleted from the tail"),
        "{bad:?}"
    );

    // A forged checkpoint line is refused as such.
    let path = files(dir.path()).checkpoint_file;
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"seq\":5", "\"seq\":4", 1)).unwrap();
    let bad = log.verify().await.unwrap();
    assert!(
        bad.problem
            .as_deref()
            .unwrap()
            .contains("seal does not match"),
        "{bad:?}"
    );
}

#[tokio::test]
async fn truncation_is_detected_on_sqlite() {
    let (db, _dir) = testing::sqlite().await;
    truncation_cases(db).await;
}

#[tokio::test]
async fn truncation_is_detected_on_postgres() {
    if let Some(db) = testing::postgres().await {
        truncation_cases(db).await;
    }
}

/// A database written by an older hub: its rows keep the unkeyed rule up to the switch-over, which
/// cannot be moved without the key.
async fn legacy_cases(db: Db) {
    let mut prev = GENESIS.to_string();
    for seq in 1..=3 {
        let h = entry_hash(&prev, seq, 1000 + seq, "old", "alert.view", "a", "");
        sqlx::query(
            "INSERT INTO audit_log (seq, ts_ms, actor, action, target, detail, prev_hash, hash) \
             VALUES ($1, $2, 'old', 'alert.view', 'a', '', $3, $4)",
        )
        .bind(seq)
        .bind(1000 + seq)
        .bind(&prev)
        .bind(&h)
        .execute(&db.pool)
        .await
        .unwrap();
        prev = h;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(db.clone(), &files(dir.path()))
        .await
        .unwrap();
    fill(&log, 3).await;
    log.checkpoint().await.unwrap();
    let ok = log.verify().await.unwrap();
    assert!(ok.ok, "{ok:?}");
    assert_eq!((ok.entries, ok.keyed_from_seq), (6, Some(4)));
    // Reopening with the same key changes nothing; another key is refused.
    AuditLog::open(db.clone(), &files(dir.path()))
        .await
        .unwrap();
    assert!(matches!(
        AuditLog::with_key(db.clone(), AuditKey::generate().unwrap()).await,
        Err(AuditError::WrongKey { .. })
    ));

    // Moving the switch-over so that keyed rows fall under the unkeyed rule, then recomputing them.
    sqlx::query("UPDATE audit_epochs SET from_seq = 100")
        .execute(&db.pool)
        .await
        .unwrap();
    recompute_from(&db, 4, unkeyed).await;
    let bad = log.verify().await.unwrap();
    assert!(
        bad.problem.as_deref().unwrap().contains("key epoch 1"),
        "{bad:?}"
    );
    // Deleting the switch-over record instead: the checkpoint remembers it.
    sqlx::query("DELETE FROM audit_epochs")
        .execute(&db.pool)
        .await
        .unwrap();
    let bad = log.verify().await.unwrap();
    assert!(!bad.ok, "{bad:?}");
}

#[tokio::test]
async fn legacy_rows_then_keyed_rows_on_sqlite() {
    let (db, _dir) = testing::sqlite().await;
    legacy_cases(db).await;
}

#[tokio::test]
async fn legacy_rows_then_keyed_rows_on_postgres() {
    if let Some(db) = testing::postgres().await {
        legacy_cases(db).await;
    }
}

#[tokio::test]
async fn the_key_file_is_private_and_rotation_keeps_old_rows_verifiable() {
    use std::os::unix::fs::PermissionsExt;
    let (db, dir) = testing::sqlite().await;
    let f = files(dir.path());
    let log = AuditLog::open(db.clone(), &f).await.unwrap();
    let mode = std::fs::metadata(&f.key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    fill(&log, 2).await;
    let again = AuditKey::load(&f.key_file).unwrap();
    assert_eq!(again.id(), log.key.id());
    let new_id = AuditLog::rotate_key(db.clone(), &f).await.unwrap();
    assert_ne!(new_id, log.key.id());
    let log = AuditLog::open(db.clone(), &f).await.unwrap();
    fill(&log, 2).await;
    log.checkpoint().await.unwrap();
    let ok = AuditLog::for_verify(db.clone(), &f)
        .unwrap()
        .verify()
        .await
        .unwrap();
    assert!(ok.ok && ok.entries == 4, "{ok:?}");
    std::fs::set_permissions(&f.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        AuditKey::load(&f.key_file),
        Err(AuditError::Key { .. })
    ));
}

#[tokio::test]
async fn append_waits_out_another_writer_on_sqlite() {
    let (db, dir) = testing::sqlite().await;
    let key = AuditKey::generate().unwrap();
    let log = AuditLog::with_key(db.clone(), key).await.unwrap();
    log.append("alice", "seed", "", "").await.unwrap();
    // Another connection, as a `central-hub` command in another process, holds the write lock a moment.
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    let other = Db::open(&url, 1).await.unwrap();
    let mut conn = other.pool.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO ingest_rejects (id, topic, reason, bytes, received_ms) VALUES ('x', 't', 'r', 1, 1)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let log = Arc::new(log);
    let writer = log.clone();
    let waiting = tokio::spawn(async move { writer.append("bob", "alert.view", "a1", "").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();
    let e = waiting.await.unwrap().unwrap();
    assert_eq!(e.seq, 2);
    assert!(log.verify().await.unwrap().ok);
}

#[test]
fn fields_are_length_prefixed() {
    assert_ne!(
        entry_hash(GENESIS, 1, 0, "ab", "c", "", ""),
        entry_hash(GENESIS, 1, 0, "a", "bc", "", "")
    );
}
