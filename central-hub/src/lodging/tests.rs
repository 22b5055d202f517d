use super::*;
use crate::db::testing;
use sqlx::Row;
use time::macros::date;

const AN: &str = "001085012345|123456789|Nguyễn Văn An|02031985|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021\r\n";
const HA: &str = "079195004321||Trần Thị Thu Hà|17111995|Nữ|12 Nguyễn Huệ, Bến Nghé, Quận 1, TP. Hồ Chí Minh|03042022";
const TODAY: Date = date!(2025 - 06 - 01);
/// 2025-06-01 10:00 in Vietnam (UTC+7).
const T0: i64 = 1_748_746_800_000;

fn kim() -> PassportGuest {
    PassportGuest {
        number: "m12345678".into(),
        nationality: "KR".into(),
        full_name: "Kim Min-jun".into(),
        date_of_birth: "1990-04-12".into(),
        gender: "male".into(),
    }
}

async fn add_user(db: &Db, username: &str, role: &str) {
    sqlx::query(
        "INSERT INTO users (id, username, display_name, password_hash, role, active, created_ms) \
         VALUES ($1, $2, $2, 'x', $3, 1, 0)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(username)
    .bind(role)
    .execute(&db.pool)
    .await
    .unwrap();
}

async fn audit_actions(db: &Db, action: &str) -> Vec<(String, String, String)> {
    sqlx::query("SELECT actor, target, detail FROM audit_log WHERE action = $1 ORDER BY seq")
        .bind(action)
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get("actor").unwrap(),
                r.try_get("target").unwrap(),
                r.try_get("detail").unwrap(),
            )
        })
        .collect()
}

async fn scenario(db: Db) {
    let audit = AuditLog::with_key(db.clone(), crate::audit::AuditKey::generate().unwrap())
        .await
        .unwrap();
    let hotel = create_establishment(
        &db,
        &audit,
        &NewEstablishment {
            name: "  Khách sạn   Sông Hàn ".into(),
            kind: EstablishmentKind::Hotel,
            site: "da-nang-pier".into(),
            address: "36 Bạch Đằng, Hải Châu, Đà Nẵng".into(),
        },
        "admin",
        T0 - DAY_MS,
    )
    .await
    .unwrap();
    assert_eq!(hotel.name, "Khách sạn Sông Hàn");
    let bus = create_establishment(
        &db,
        &audit,
        &NewEstablishment {
            name: "Xe khách Hoàng Long".into(),
            kind: EstablishmentKind::LongDistanceBus,
            site: "giap-bat".into(),
            address: "Bến xe Giáp Bát, Hà Nội".into(),
        },
        "admin",
        T0 - DAY_MS,
    )
    .await
    .unwrap();
    let bad_site = NewEstablishment {
        name: "X".into(),
        kind: EstablishmentKind::Homestay,
        site: "a/b".into(),
        address: "Hội An".into(),
    };
    assert!(matches!(
        create_establishment(&db, &audit, &bad_site, "admin", T0).await,
        Err(LodgingError::Invalid(_))
    ));
    assert_eq!(
        establishments(&db).await.unwrap(),
        vec![hotel.clone(), bus.clone()]
    );

    // Staff links: only lodging_staff users.
    add_user(&db, "desk.songhan", "lodging_staff").await;
    add_user(&db, "op1", "operator").await;
    link_staff(&db, &audit, &hotel.id, "desk.songhan", "admin", T0)
        .await
        .unwrap();
    assert_eq!(
        staff_establishment(&db, "desk.songhan").await.unwrap(),
        Some(hotel.id.clone())
    );
    let e = link_staff(&db, &audit, &hotel.id, "op1", "admin", T0)
        .await
        .unwrap_err();
    assert!(
        matches!(e, LodgingError::Invalid(ref m) if m.contains("operator")),
        "{e}"
    );
    assert!(matches!(
        link_staff(&db, &audit, &hotel.id, "nobody", "admin", T0).await,
        Err(LodgingError::Invalid(_))
    ));
    assert!(matches!(
        link_staff(&db, &audit, "no-such-id", "desk.songhan", "admin", T0).await,
        Err(LodgingError::NotFound(_))
    ));
    assert_eq!(staff_establishment(&db, "op1").await.unwrap(), None);

    // Check-in by QR.
    let an = parse_guest(Some(AN), None, TODAY).unwrap();
    assert_eq!(an.kind, GuestKind::Citizen);
    let s1 = check_in(&db, &audit, &hotel, &an, Some(" 301 "), "desk.songhan", T0)
        .await
        .unwrap();
    assert_eq!(s1.full_name, "Nguyễn Văn An");
    assert_eq!(s1.cccd.as_deref(), Some("001085012345"));
    assert_eq!(s1.nationality, "VNM");
    assert_eq!(s1.date_of_birth, "1985-03-02");
    assert_eq!(s1.gender, "male");
    assert_eq!(s1.room.as_deref(), Some("301"));
    assert_eq!(stay(&db, &s1.id).await.unwrap().unwrap(), s1);

    // The same guest twice at once: 409; elsewhere (a bus) is fine.
    assert!(matches!(
        check_in(&db, &audit, &hotel, &an, None, "desk.songhan", T0 + 1).await,
        Err(LodgingError::Conflict { .. })
    ));
    let on_bus = check_in(&db, &audit, &bus, &an, Some("A12"), "admin", T0 + 2)
        .await
        .unwrap();

    // Check-in by passport.
    let kim_guest = parse_guest(None, Some(&kim()), TODAY).unwrap();
    assert_eq!(kim_guest.kind, GuestKind::Foreign);
    assert_eq!(kim_guest.nationality, "KOR");
    assert_eq!(kim_guest.passport_number.as_deref(), Some("M12345678"));
    let s2 = check_in(
        &db,
        &audit,
        &hotel,
        &kim_guest,
        Some("502"),
        "desk.songhan",
        T0 + HOUR_MS,
    )
    .await
    .unwrap();
    assert_eq!(s2.guest_kind, GuestKind::Foreign);
    assert!(matches!(
        check_in(
            &db,
            &audit,
            &hotel,
            &kim_guest,
            None,
            "desk.songhan",
            T0 + HOUR_MS
        )
        .await,
        Err(LodgingError::Conflict { .. })
    ));
    // A Vietnamese passport is a citizen's.
    let vn = PassportGuest {
        number: "C1234567".into(),
        nationality: "VNM".into(),
        full_name: "Lê Minh Tuấn".into(),
        date_of_birth: "1979-12-30".into(),
        gender: "Nam".into(),
    };
    assert_eq!(
        parse_guest(None, Some(&vn), TODAY).unwrap().kind,
        GuestKind::Citizen
    );

    // Bad input says what is wrong.
    let forged = AN.replace("|Nam|", "|Nữ|");
    let e = parse_guest(Some(&forged), None, TODAY).unwrap_err();
    assert_eq!(
        e.to_string(),
        "CCCD number does not match the card: digit 4 says male, record says female"
    );
    assert!(matches!(
        parse_guest(Some("garbage"), None, TODAY),
        Err(LodgingError::Invalid(_))
    ));
    assert!(matches!(
        parse_guest(None, None, TODAY),
        Err(LodgingError::Invalid(_))
    ));
    assert!(matches!(
        parse_guest(Some(AN), Some(&kim()), TODAY),
        Err(LodgingError::Invalid(_))
    ));
    for (field, value, says) in [
        ("number", "M-123", "passport number"),
        ("nationality", "XX", "nationality"),
        ("full_name", "K1m", "full name"),
        ("date_of_birth", "1990-02-30", "date of birth"),
        ("date_of_birth", "2030-01-01", "future"),
        ("gender", "x", "gender"),
    ] {
        let mut p = kim();
        match field {
            "number" => p.number = value.into(),
            "nationality" => p.nationality = value.into(),
            "full_name" => p.full_name = value.into(),
            "date_of_birth" => p.date_of_birth = value.into(),
            _ => p.gender = value.into(),
        }
        let e = parse_guest(None, Some(&p), TODAY).unwrap_err();
        assert!(e.to_string().contains(says), "{field}: {e}");
    }

    // Current guests.
    let now_in = current_guests(&db, &hotel.id).await.unwrap();
    assert_eq!(
        now_in.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![s1.id.as_str(), s2.id.as_str()]
    );

    // Police search by folded name, CCCD, passport; a date range; criteria required.
    let found = search(
        &db,
        &audit,
        &StaySearch {
            name: Some("NGUYEN van an".into()),
            ..Default::default()
        },
        "op1",
    )
    .await
    .unwrap();
    assert_eq!(
        found.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![on_bus.id.as_str(), s1.id.as_str()]
    );
    let found = search(
        &db,
        &audit,
        &StaySearch {
            name: Some("văn".into()),
            establishment: Some(hotel.id.clone()),
            ..Default::default()
        },
        "op1",
    )
    .await
    .unwrap();
    assert_eq!(found.len(), 1);
    let by_cccd = StaySearch {
        cccd: Some("001085012345".into()),
        from_ms: Some(T0 + 1),
        ..Default::default()
    };
    assert_eq!(search(&db, &audit, &by_cccd, "op1").await.unwrap().len(), 1);
    let by_passport = StaySearch {
        passport: Some("m12345678".into()),
        ..Default::default()
    };
    assert_eq!(
        search(&db, &audit, &by_passport, "op1").await.unwrap()[0].id,
        s2.id
    );
    // LIKE wildcards typed by the user are literal.
    let wild = StaySearch {
        name: Some("%".into()),
        ..Default::default()
    };
    assert!(search(&db, &audit, &wild, "op1").await.unwrap().is_empty());
    assert!(matches!(
        search(&db, &audit, &StaySearch::default(), "op1").await,
        Err(LodgingError::Invalid(_))
    ));
    let bad = StaySearch {
        cccd: Some("12345".into()),
        ..Default::default()
    };
    assert!(matches!(
        search(&db, &audit, &bad, "op1").await,
        Err(LodgingError::Invalid(_))
    ));
    let searches = audit_actions(&db, "lodging.search").await;
    assert_eq!(searches.len(), 5);
    assert!(
        searches[0].2.contains("\"name\":\"nguyen van an\""),
        "{:?}",
        searches[0]
    );
    assert!(searches[0].2.contains("\"results\":2"), "{:?}", searches[0]);

    // Check-out, twice.
    let out = check_out(&db, &audit, &s1.id, "desk.songhan", T0 + DAY_MS + HOUR_MS)
        .await
        .unwrap();
    assert_eq!(out.checkout_ms, Some(T0 + DAY_MS + HOUR_MS));
    assert_eq!(out.checked_out_by.as_deref(), Some("desk.songhan"));
    assert!(matches!(
        check_out(
            &db,
            &audit,
            &s1.id,
            "desk.songhan",
            T0 + DAY_MS + 2 * HOUR_MS
        )
        .await,
        Err(LodgingError::Conflict { .. })
    ));
    assert!(matches!(
        check_out(&db, &audit, "nope", "desk.songhan", T0).await,
        Err(LodgingError::NotFound(_))
    ));
    assert_eq!(current_guests(&db, &hotel.id).await.unwrap().len(), 1);
    // Checked out, the guest can come back.
    let again = check_in(
        &db,
        &audit,
        &hotel,
        &an,
        None,
        "desk.songhan",
        T0 + 2 * DAY_MS,
    )
    .await
    .unwrap();
    assert_ne!(again.id, s1.id);
    assert_eq!(current_guests(&db, &hotel.id).await.unwrap().len(), 2);

    // Statistics: hotel site, 3 local days from 2025-06-01.
    // An: in day 1 10:00, out day 2 11:00 (1 night), back day 3. Kim: in day 1 11:00, still in.
    let st = stats(
        &db,
        Some("da-nang-pier"),
        T0,
        T0 + 2 * DAY_MS + 1,
        7,
        T0 + 2 * DAY_MS + HOUR_MS,
    )
    .await
    .unwrap();
    let day1 = local_day_start(T0, 7);
    assert_eq!(
        st,
        vec![
            DayStats {
                site: "da-nang-pier".into(),
                day: "2025-06-01".into(),
                day_start_ms: day1,
                checkins: 2,
                domestic: 1,
                foreign: 1,
                overnight: 2,
            },
            DayStats {
                site: "da-nang-pier".into(),
                day: "2025-06-02".into(),
                day_start_ms: day1 + DAY_MS,
                checkins: 0,
                domestic: 0,
                foreign: 0,
                overnight: 1,
            },
            DayStats {
                site: "da-nang-pier".into(),
                day: "2025-06-03".into(),
                day_start_ms: day1 + 2 * DAY_MS,
                checkins: 1,
                domestic: 1,
                foreign: 0,
                overnight: 2,
            },
        ]
    );
    // All sites: the bus boarding is counted on its own site.
    let all = stats(&db, None, T0, T0 + 1, 7, T0 + 3 * DAY_MS)
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!((all[1].site.as_str(), all[1].checkins), ("giap-bat", 1));
    assert!(stats(&db, None, T0, T0, 7, T0).await.is_err());
    assert!(stats(&db, None, 0, T0, 7, T0).await.is_err());

    // A wanted citizen: a candidate alert, the same answer to the desk.
    add_wanted(&db, "w-active", "079195004321", T0 + 30 * DAY_MS, None).await;
    add_wanted(&db, "w-expired", "079195004321", T0 - 1, None).await;
    add_wanted(
        &db,
        "w-withdrawn",
        "079195004321",
        T0 + 30 * DAY_MS,
        Some(T0 - 1),
    )
    .await;
    let ha = parse_guest(Some(HA), None, TODAY).unwrap();
    let s3 = check_in(
        &db,
        &audit,
        &hotel,
        &ha,
        Some("207"),
        "desk.songhan",
        T0 + 3 * DAY_MS,
    )
    .await
    .unwrap();
    assert_eq!(s3.full_name, "Trần Thị Thu Hà");
    let alerts = sqlx::query(
        "SELECT site, agent, camera, list, entry_id, similarity, status, source, detail, snapshot \
         FROM alerts",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.try_get::<String, _>("site").unwrap(), "da-nang-pier");
    assert_eq!(a.try_get::<String, _>("agent").unwrap(), "");
    assert_eq!(a.try_get::<String, _>("camera").unwrap(), hotel.id);
    assert_eq!(a.try_get::<String, _>("list").unwrap(), "wanted");
    assert_eq!(a.try_get::<String, _>("entry_id").unwrap(), "w-active");
    assert_eq!(a.try_get::<f64, _>("similarity").unwrap(), 1.0);
    assert_eq!(a.try_get::<String, _>("status").unwrap(), "candidate");
    assert_eq!(a.try_get::<String, _>("source").unwrap(), "lodging");
    assert_eq!(
        a.try_get::<Option<String>, _>("detail").unwrap().as_deref(),
        Some(s3.id.as_str())
    );
    assert!(a
        .try_get::<Option<Vec<u8>>, _>("snapshot")
        .unwrap()
        .is_none());
    let hits = audit_actions(&db, "lodging.wanted_hit").await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0, "system");
    assert!(hits[0].2.contains(&s3.id) && hits[0].2.contains("w-active"));
    // Nobody else on the list raised anything.
    assert_eq!(
        sqlx::query("SELECT COUNT(*) AS n FROM alerts")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .try_get::<i64, _>("n")
            .unwrap(),
        1
    );

    // The audit trail: ids and kinds, never names or numbers of guests.
    let checkins = audit_actions(&db, "lodging.checkin").await;
    assert_eq!(checkins.len(), 5);
    assert_eq!(checkins[0].1, s1.id);
    for (_, _, detail) in &checkins {
        assert!(
            !detail.contains("Nguy") && !detail.contains("001085012345"),
            "{detail}"
        );
    }
    assert_eq!(audit_actions(&db, "lodging.checkout").await.len(), 1);
    assert!(audit.verify().await.unwrap().ok);
}

async fn add_wanted(db: &Db, id: &str, cccd: &str, expires_ms: i64, withdrawn_ms: Option<i64>) {
    sqlx::query(
        "INSERT INTO watchlist_entries (id, list, person_cccd, label, case_ref, legal_basis, issued_by, \
         expires_ms, sites, case_retention_days, created_by, created_ms, withdrawn_ms) \
         VALUES ($1, 'wanted', $2, 'Đối tượng truy nã', 'QĐ-123/2025', 'Điều 231 BLTTHS', \
         'Công an TP. Đà Nẵng', $3, '*', 365, 'sup1', 0, $4)",
    )
    .bind(id)
    .bind(cccd)
    .bind(expires_ms)
    .bind(withdrawn_ms)
    .execute(&db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn lodging_on_sqlite() {
    let (db, _dir) = testing::sqlite().await;
    scenario(db).await;
}

#[tokio::test]
async fn lodging_on_postgres() {
    if let Some(db) = testing::postgres().await {
        scenario(db).await;
    }
}

#[test]
fn local_days_follow_the_offset() {
    // 2025-06-01 23:30 in Vietnam is 16:30 UTC the same day.
    let t = T0 + 13 * HOUR_MS + 30 * 60_000;
    assert_eq!(local_date(t, 7), date!(2025 - 06 - 01));
    assert_eq!(local_date(t + HOUR_MS, 7), date!(2025 - 06 - 02));
    assert_eq!(local_day_start(t, 7), T0 - 10 * HOUR_MS);
    assert_eq!(
        local_day_start(t, 0),
        local_day_start(t, 0) / DAY_MS * DAY_MS
    );
}
