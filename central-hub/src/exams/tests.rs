use super::*;
use crate::db::testing;
use crate::faces::to_bytes;

const HUB_DEFAULT: f32 = 0.363;

fn session_req() -> NewSession {
    NewSession {
        venue_kind: "school".into(),
        venue: "THPT Chu Văn An".into(),
        subject: "Toán".into(),
        shift: "Ca 1 (7:30)".into(),
        starts_ms: 1_782_000_000_000,
        verify_threshold: None,
        live_capture_required: false,
    }
}

/// A person row and, with `template`, one template row, written directly.
async fn person(db: &Db, cccd: &str, name: &str, dob: &str, gender: &str, template: bool) {
    sqlx::query(
        "INSERT INTO persons (cccd, full_name, name_folded, date_of_birth, gender, address, photo, \
         created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7)",
    )
    .bind(cccd)
    .bind(name)
    .bind(checkpoint_identity::fold_for_search(name))
    .bind(dob)
    .bind(gender)
    .bind("Hà Nội")
    .bind(now_ms())
    .execute(&db.pool)
    .await
    .unwrap();
    if template {
        let mut v = vec![0f32; 128];
        v[0] = 1.0;
        sqlx::query(
            "INSERT INTO person_templates (id, cccd, embedding, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(cccd)
        .bind(to_bytes(&v))
        .bind(now_ms())
        .execute(&db.pool)
        .await
        .unwrap();
    }
}

fn entry(cccd: &str, no: &str) -> CandidateEntry {
    CandidateEntry {
        cccd: cccd.into(),
        candidate_no: no.into(),
    }
}

fn face(result: Outcome, similarity: f32, by: &str) -> NewDecision {
    NewDecision {
        result,
        method: Method::Face,
        similarity: Some(similarity),
        threshold: Some(HUB_DEFAULT),
        reason: None,
        decided_by: by.into(),
    }
}

const AN: &str = "001085012345";
const BINH: &str = "079190000123";
const CHI: &str = "001305004321";
const DUNG: &str = "001200000777";

async fn sessions_are_checked_and_stored(db: Db) {
    for (spoil, want) in [
        (
            NewSession {
                venue_kind: "market".into(),
                ..session_req()
            },
            "venue_kind",
        ),
        (
            NewSession {
                venue: "  ".into(),
                ..session_req()
            },
            "venue is required",
        ),
        (
            NewSession {
                subject: "".into(),
                ..session_req()
            },
            "subject",
        ),
        (
            NewSession {
                shift: "Ca 1\n(7:30)".into(),
                ..session_req()
            },
            "control",
        ),
        (
            NewSession {
                starts_ms: 0,
                ..session_req()
            },
            "starts_ms",
        ),
        (
            NewSession {
                verify_threshold: Some(0.1),
                ..session_req()
            },
            "0.2",
        ),
        (
            NewSession {
                verify_threshold: Some(0.99),
                ..session_req()
            },
            "0.95",
        ),
        (
            NewSession {
                verify_threshold: Some(f32::NAN),
                ..session_req()
            },
            "verify_threshold",
        ),
    ] {
        let e = create_session(&db, &spoil, "sup1", HUB_DEFAULT)
            .await
            .unwrap_err();
        assert!(matches!(e, ExamError::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains(want), "{e} should mention {want}");
    }

    let plain = create_session(&db, &session_req(), "sup1", HUB_DEFAULT)
        .await
        .unwrap();
    assert_eq!(plain.venue_kind, VenueKind::School);
    assert_eq!(plain.verify_threshold, None);
    assert_eq!(plain.threshold, HUB_DEFAULT);
    assert_eq!(plain.created_by, "sup1");
    assert_eq!(plain.candidates, 0);
    let strict = create_session(
        &db,
        &NewSession {
            venue_kind: "driving_centre".into(),
            venue: " Trung tâm sát hạch Sóc Sơn ".into(),
            subject: "Lý thuyết hạng B".into(),
            starts_ms: session_req().starts_ms + 3_600_000,
            verify_threshold: Some(0.5),
            live_capture_required: true,
            ..session_req()
        },
        "admin",
        HUB_DEFAULT,
    )
    .await
    .unwrap();
    assert_eq!(strict.venue, "Trung tâm sát hạch Sóc Sơn");
    assert_eq!(strict.verify_threshold, Some(0.5));
    assert_eq!(strict.threshold, 0.5);
    assert!(strict.live_capture_required);
    assert!(!plain.live_capture_required);
    // The hub's default is applied when read, so changing the setting applies to sessions without their own.
    assert_eq!(
        get_session(&db, &plain.id, 0.4).await.unwrap().threshold,
        0.4
    );
    assert_eq!(
        get_session(&db, &strict.id, 0.4).await.unwrap().threshold,
        0.5
    );
    assert!(matches!(
        get_session(&db, "nope", HUB_DEFAULT).await,
        Err(ExamError::SessionNotFound(_))
    ));
    let all = list_sessions(&db, None, None, 10, HUB_DEFAULT, None)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [strict.id.as_str(), plain.id.as_str()],
        "latest start first"
    );
    let early = list_sessions(&db, None, Some(strict.starts_ms), 10, HUB_DEFAULT, None)
        .await
        .unwrap();
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].id, plain.id);
}

async fn registration_reports_each_item(db: Db) {
    person(&db, AN, "Nguyễn Văn An", "1985-03-02", "male", true).await;
    person(&db, BINH, "Trần Thị Bình", "1990-07-01", "female", true).await;
    person(&db, CHI, "Lê Minh Chi", "2005-01-09", "female", false).await;
    let s = create_session(&db, &session_req(), "sup1", HUB_DEFAULT)
        .await
        .unwrap();
    let reg = register(
        &db,
        &s.id,
        &[
            entry(AN, "HN-0001"),
            entry(" 079190000123 ", "HN-0002"),
            entry(CHI, "HN-0003"),
            entry("12345", "HN-0004"),
            entry("001085099999", "HN-0005"),
            entry(AN, "HN-0001"),
            entry(AN, "HN-0009"),
            entry(DUNG, "HN-0002"),
            entry(DUNG, " "),
        ],
        "sup1",
    )
    .await
    .unwrap();
    assert_eq!(
        reg.registered
            .iter()
            .map(|c| (c.cccd.as_str(), c.candidate_no.as_str(), c.templates))
            .collect::<Vec<_>>(),
        [
            (AN, "HN-0001", 1),
            (BINH, "HN-0002", 1),
            (CHI, "HN-0003", 0)
        ]
    );
    assert_eq!(reg.registered[1].full_name, "Trần Thị Bình");
    assert_eq!(reg.already_registered.len(), 1);
    assert_eq!(reg.already_registered[0].cccd, AN);
    let failed: Vec<(usize, u16)> = reg.failed.iter().map(|f| (f.index, f.status)).collect();
    // DUNG has no record: 404 before the clash with HN-0002 could matter.
    assert_eq!(failed, [(3, 400), (4, 404), (6, 409), (7, 404), (8, 400)]);
    assert!(
        reg.failed[0].error.contains("12 digits"),
        "{:?}",
        reg.failed[0]
    );
    assert!(
        reg.failed[2].error.contains("HN-0001"),
        "{:?}",
        reg.failed[2]
    );

    // With a record, the taken number is a 409 naming its holder.
    person(&db, DUNG, "Phạm Dũng", "2000-05-05", "male", true).await;
    let again = register(&db, &s.id, &[entry(DUNG, "HN-0002")], "sup1")
        .await
        .unwrap();
    assert_eq!(again.failed.len(), 1);
    assert_eq!(again.failed[0].status, 409);
    assert!(
        again.failed[0].error.contains(BINH),
        "{:?}",
        again.failed[0]
    );

    assert_eq!(
        get_session(&db, &s.id, HUB_DEFAULT)
            .await
            .unwrap()
            .candidates,
        3
    );
    assert!(matches!(
        register(&db, &s.id, &[], "sup1").await,
        Err(ExamError::Invalid(_))
    ));
    assert!(matches!(
        register(&db, "nope", &[entry(AN, "X")], "sup1").await,
        Err(ExamError::SessionNotFound(_))
    ));
    // The same CCCD may sit another session with its own number.
    let other = create_session(&db, &session_req(), "sup1", HUB_DEFAULT)
        .await
        .unwrap();
    let r = register(&db, &other.id, &[entry(AN, "HN-0001")], "sup1")
        .await
        .unwrap();
    assert_eq!(r.registered.len(), 1);
}

async fn decisions_and_report(db: Db) {
    person(&db, AN, "Nguyễn Văn An", "1985-03-02", "male", true).await;
    person(&db, BINH, "Trần Thị Bình", "1990-07-01", "female", true).await;
    person(&db, CHI, "Lê Minh Chi", "2005-01-09", "female", true).await;
    person(&db, DUNG, "Phạm Dũng", "2000-05-05", "male", true).await;
    let s = create_session(&db, &session_req(), "sup1", HUB_DEFAULT)
        .await
        .unwrap();
    register(
        &db,
        &s.id,
        &[
            entry(AN, "HN-0001"),
            entry(BINH, "HN-0002"),
            entry(CHI, "HN-0003"),
            entry(DUNG, "HN-0004"),
        ],
        "sup1",
    )
    .await
    .unwrap();

    // Nothing is recorded for someone not registered, or in an unknown session.
    let e = record(
        &db,
        &s.id,
        "001190000001",
        &face(Outcome::Verified, 0.9, "gv1"),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ExamError::NotRegistered { .. }), "{e:?}");
    assert!(matches!(
        record(&db, "nope", AN, &face(Outcome::Verified, 0.9, "gv1")).await,
        Err(ExamError::NotRegistered { .. })
    ));

    // A face decision without its similarity, or a manual one without a reason, is refused.
    for spoilt in [
        NewDecision {
            similarity: None,
            ..face(Outcome::Verified, 0.9, "gv1")
        },
        NewDecision {
            method: Method::Manual,
            ..face(Outcome::Verified, 0.9, "gv1")
        },
    ] {
        assert!(matches!(
            record(&db, &s.id, AN, &spoilt).await,
            Err(ExamError::Invalid(_))
        ));
    }

    // An: rejected by the camera, then verified on a second try: the latest counts, history kept.
    let first = record(&db, &s.id, AN, &face(Outcome::Rejected, 0.21, "gv1"))
        .await
        .unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.similarity, Some(0.21));
    assert_eq!(first.threshold, Some(HUB_DEFAULT));
    let second = record(&db, &s.id, AN, &face(Outcome::Verified, 0.74, "gv2"))
        .await
        .unwrap();
    assert_eq!(second.seq, 2);
    assert_eq!(second.decided_by, "gv2");

    // Binh: rejected by the camera (twin sister?), then verified by hand with a reason.
    record(&db, &s.id, BINH, &face(Outcome::Rejected, 0.30, "gv1"))
        .await
        .unwrap();
    for (result, reason) in [("verified", "  "), ("maybe", "twin")] {
        assert!(matches!(
            decide(&db, &s.id, BINH, result, reason, "sup1").await,
            Err(ExamError::Invalid(_))
        ));
    }
    let manual = decide(
        &db,
        &s.id,
        BINH,
        "verified",
        " twin sister; checked the card ",
        "sup1",
    )
    .await
    .unwrap();
    assert_eq!(manual.method, Method::Manual);
    assert_eq!(manual.result, Outcome::Verified);
    assert_eq!(
        manual.reason.as_deref(),
        Some("twin sister; checked the card")
    );
    assert_eq!(manual.similarity, None);
    assert_eq!(manual.seq, 2);

    // Dung: verified by the camera, then rejected by hand.
    record(&db, &s.id, DUNG, &face(Outcome::Verified, 0.8, "gv1"))
        .await
        .unwrap();
    decide(
        &db,
        &s.id,
        DUNG,
        "rejected",
        "sent the brother in his place",
        "sup1",
    )
    .await
    .unwrap();

    let h = history(&db, &s.id, AN).await.unwrap();
    assert_eq!(h.iter().map(|d| d.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(h[0].result, Outcome::Rejected);
    assert_eq!(h[1], second);
    assert!(history(&db, &s.id, "001190000001").await.is_err());

    let rep = report(&db, &s.id, HUB_DEFAULT).await.unwrap();
    assert_eq!(
        (
            rep.registered,
            rep.present,
            rep.verified,
            rep.verified_face,
            rep.verified_manual,
            rep.rejected,
            rep.manual,
            rep.absent
        ),
        (4, 3, 2, 1, 1, 1, 2, 1)
    );
    assert_eq!(rep.session.id, s.id);
    let line = |c: &str| rep.candidates.iter().find(|l| l.cccd == c).unwrap().clone();
    let an = line(AN);
    assert_eq!(an.candidate_no, "HN-0001");
    assert_eq!(an.full_name.as_deref(), Some("Nguyễn Văn An"));
    assert_eq!(an.status, CandidateStatus::Verified);
    assert_eq!(an.method, Some(Method::Face));
    assert_eq!(an.similarity, Some(0.74));
    assert_eq!(an.decided_by.as_deref(), Some("gv2"));
    assert_eq!(an.at_ms, Some(second.at_ms));
    assert_eq!(an.decisions, 2);
    let binh = line(BINH);
    assert_eq!(binh.method, Some(Method::Manual));
    assert_eq!(
        binh.reason.as_deref(),
        Some("twin sister; checked the card")
    );
    assert_eq!(binh.similarity, None);
    assert_eq!(line(DUNG).status, CandidateStatus::Rejected);
    let chi = line(CHI);
    assert_eq!(chi.status, CandidateStatus::Absent);
    assert_eq!(
        (chi.result, chi.method, chi.at_ms, chi.decisions),
        (None, None, None, 0)
    );
    assert_eq!(
        rep.candidates
            .iter()
            .map(|l| l.candidate_no.as_str())
            .collect::<Vec<_>>(),
        ["HN-0001", "HN-0002", "HN-0003", "HN-0004"]
    );
    assert!(matches!(
        report(&db, "nope", HUB_DEFAULT).await,
        Err(ExamError::SessionNotFound(_))
    ));
}

/// Decisions for one candidate made at the same time all land, each with its own number.
async fn concurrent_decisions_get_distinct_numbers(db: Db) {
    person(&db, AN, "Nguyễn Văn An", "1985-03-02", "male", true).await;
    let s = create_session(&db, &session_req(), "sup1", HUB_DEFAULT)
        .await
        .unwrap();
    register(&db, &s.id, &[entry(AN, "HN-0001")], "sup1")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let db = db.clone();
        let id = s.id.clone();
        tasks.push(tokio::spawn(async move {
            record(
                &db,
                &id,
                AN,
                &face(Outcome::Verified, 0.5, &format!("gv{i}")),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let seqs: Vec<i64> = history(&db, &s.id, AN)
        .await
        .unwrap()
        .iter()
        .map(|d| d.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn exam_sessions_on_sqlite() {
    let (db, _d) = testing::sqlite().await;
    sessions_are_checked_and_stored(db).await;
}

#[tokio::test]
async fn exam_sessions_on_postgres() {
    if let Some(db) = testing::postgres().await {
        sessions_are_checked_and_stored(db).await;
    }
}

#[tokio::test]
async fn exam_registration_on_sqlite() {
    let (db, _d) = testing::sqlite().await;
    registration_reports_each_item(db).await;
}

#[tokio::test]
async fn exam_registration_on_postgres() {
    if let Some(db) = testing::postgres().await {
        registration_reports_each_item(db).await;
    }
}

#[tokio::test]
async fn exam_decisions_and_report_on_sqlite() {
    let (db, _d) = testing::sqlite().await;
    decisions_and_report(db).await;
}

#[tokio::test]
async fn exam_decisions_and_report_on_postgres() {
    if let Some(db) = testing::postgres().await {
        decisions_and_report(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exam_concurrent_decisions_on_sqlite() {
    let (db, _d) = testing::sqlite().await;
    concurrent_decisions_get_distinct_numbers(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exam_concurrent_decisions_on_postgres() {
    if let Some(db) = testing::postgres().await {
        concurrent_decisions_get_distinct_numbers(db).await;
    }
}

#[test]
fn exam_enums_round_trip_as_text() {
    for k in [VenueKind::School, VenueKind::DrivingCentre] {
        assert_eq!(VenueKind::parse(k.as_str()), Some(k));
        assert_eq!(
            serde_json::to_value(k).unwrap(),
            serde_json::json!(k.as_str())
        );
    }
    for o in [Outcome::Verified, Outcome::Rejected] {
        assert_eq!(Outcome::parse(o.as_str()), Some(o));
        assert_eq!(
            serde_json::to_value(o).unwrap(),
            serde_json::json!(o.as_str())
        );
    }
    for m in [Method::Face, Method::Manual] {
        assert_eq!(Method::parse(m.as_str()), Some(m));
        assert_eq!(
            serde_json::to_value(m).unwrap(),
            serde_json::json!(m.as_str())
        );
    }
    assert_eq!(parse_cccd(" 001085012345 ").unwrap(), "001085012345");
    assert!(parse_cccd("999085012345").is_err());
}
