//! Exam check-in end to end, with the real `central-hub` binary and its face models: identity records made from
//! LFW photos, a session with three registered candidates; one checks in with a different photo of himself
//! (verified), one sends someone else (rejected by the camera, then let in by a supervisor with a reason), one
//! never comes (absent); a photo without a face is refused and records nothing; the report, history and
//! audit say so; roles and sign-in are enforced on every exam route.

use checkpoint_e2e::hub::{b64, faceless_png, lfw_b64 as lfw, pg_schema, Hub};
use checkpoint_e2e::mqtt::free_port;
use serde_json::{json, Value};

fn call(hub: &Hub, method: &str, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let text = body.to_string();
    let (st, resp) = hub.request(
        method,
        path,
        token,
        (method == "POST").then_some(text.as_str()),
    );
    let v = serde_json::from_str(&resp).unwrap_or(Value::String(resp));
    (st, v)
}

// Candidates (the people are LFW's; the CCCDs agree with the made-up dates of birth and genders).
/// Zico: male, born 1985, registered in Hồ Chí Minh.
const A: &str = "079085001234";
/// Ann Veneman: female, born 1990, Hà Nội.
const B: &str = "001190004567";
/// Barbara Brezigar: female, born 2002, Hà Nội.
const C: &str = "001302000789";

fn scenario(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let hub = Hub::start(
        dir.path(),
        &format!("[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{port}\""),
        database_url,
    );

    let admin = hub.bootstrap_admin();
    let [sup, gv, op, desk] = hub
        .add_users(
            &admin,
            &[
                ("sup1", "supervisor"),
                ("gv1", "exam_staff"),
                ("op1", "operator"),
                ("desk1", "lodging_staff"),
            ],
        )
        .try_into()
        .unwrap();

    // Identity records with an enrolled photo each.
    for (cccd, name, dob, gender, person, n) in [
        (A, "Nguyễn Văn An", "1985-06-15", "male", "Zico", 1),
        (B, "Trần Thị Bình", "1990-02-20", "female", "Ann_Veneman", 3),
        (
            C,
            "Lê Thị Chi",
            "2002-11-05",
            "female",
            "Barbara_Brezigar",
            1,
        ),
    ] {
        let (st, body) = call(
            &hub,
            "POST",
            "/api/persons",
            Some(&admin),
            &json!({"cccd": cccd, "full_name": name, "date_of_birth": dob, "gender": gender,
                    "address": "Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội", "photo_jpeg_b64": lfw(person, n)}),
        );
        assert_eq!(st, 201, "record {cccd}: {body}");
        assert_eq!(body["templates"], 1, "{body}");
    }

    // A session: only supervisors and admins create one, with a valid threshold.
    let new_session = json!({"venue_kind": "school", "venue": "THPT Chu Văn An", "subject": "Toán",
                             "shift": "Ca 1 (7:30)", "starts_ms": 1_782_000_000_000i64});
    assert_eq!(
        call(&hub, "POST", "/api/exams/sessions", Some(&gv), &new_session).0,
        403
    );
    let mut bad = new_session.clone();
    bad["verify_threshold"] = json!(0.99);
    let (st, body) = call(&hub, "POST", "/api/exams/sessions", Some(&sup), &bad);
    assert_eq!(st, 400, "{body}");
    bad["verify_threshold"] = json!(null);
    bad["venue_kind"] = json!("market");
    assert_eq!(
        call(&hub, "POST", "/api/exams/sessions", Some(&sup), &bad).0,
        400
    );
    let (st, session) = call(
        &hub,
        "POST",
        "/api/exams/sessions",
        Some(&sup),
        &new_session,
    );
    assert_eq!(st, 201, "{session}");
    let id = session["id"].as_str().unwrap().to_string();
    assert_eq!(session["venue_kind"], "school");
    assert_eq!(session["created_by"], "sup1");
    assert!(session["verify_threshold"].is_null());
    let threshold = session["threshold"].as_f64().unwrap();
    assert!((0.2..=0.95).contains(&threshold), "{session}");
    let base = format!("/api/exams/sessions/{id}");

    // Three candidates; a malformed CCCD and one without a record are reported, a repeat is ignored.
    let (st, reg) = call(
        &hub,
        "POST",
        &format!("{base}/candidates"),
        Some(&sup),
        &json!({"candidates": [
            {"cccd": A, "candidate_no": "HN-0001"},
            {"cccd": B, "candidate_no": "HN-0002"},
            {"cccd": C, "candidate_no": "HN-0003"},
            {"cccd": "12345", "candidate_no": "HN-0004"},
            {"cccd": "001085099999", "candidate_no": "HN-0005"},
            {"cccd": A, "candidate_no": "HN-0001"},
            {"cccd": A, "candidate_no": "HN-0009"},
        ]}),
    );
    assert_eq!(st, 200, "{reg}");
    assert_eq!(reg["registered"].as_array().unwrap().len(), 3, "{reg}");
    assert_eq!(reg["registered"][1]["full_name"], "Trần Thị Bình");
    assert_eq!(reg["already_registered"].as_array().unwrap().len(), 1);
    let failed: Vec<(u64, u64)> = reg["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["index"].as_u64().unwrap(), f["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(failed, [(3, 400), (4, 404), (6, 409)], "{reg}");
    assert_eq!(
        call(
            &hub,
            "POST",
            "/api/exams/sessions/no-such-session/candidates",
            Some(&sup),
            &json!({"candidates": [{"cccd": A, "candidate_no": "X"}]})
        )
        .0,
        404
    );

    // Exam staff see the session once a supervisor has assigned them to it.
    let (st, staff) = call(
        &hub,
        "POST",
        &format!("{base}/staff"),
        Some(&sup),
        &json!({"username": "gv1"}),
    );
    assert_eq!(st, 200, "{staff}");
    let (st, list) = call(&hub, "GET", "/api/exams/sessions", Some(&gv), &json!(null));
    assert_eq!(st, 200, "{list}");
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == id.as_str()));
    let (st, one) = call(&hub, "GET", &base, Some(&gv), &json!(null));
    assert_eq!(st, 200);
    assert_eq!(one["candidates"], 3);

    // A checks in with a different photo of himself: verified.
    let checkin = format!("{base}/checkin");
    let (st, a) = call(
        &hub,
        "POST",
        &checkin,
        Some(&gv),
        &json!({"cccd": A, "photo_jpeg_b64": lfw("Zico", 3)}),
    );
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["result"], "verified", "{a}");
    assert_eq!(a["method"], "face");
    assert_eq!(a["decided_by"], "gv1");
    assert_eq!(a["candidate_no"], "HN-0001");
    assert_eq!(a["full_name"], "Nguyễn Văn An");
    assert!(a["similarity"].as_f64().unwrap() >= threshold, "{a}");
    assert!((a["threshold"].as_f64().unwrap() - threshold).abs() < 1e-6);

    // B sends someone else: rejected.
    let (st, b) = call(
        &hub,
        "POST",
        &checkin,
        Some(&gv),
        &json!({"cccd": B, "photo_jpeg_b64": lfw("Akhmed_Zakayev", 2)}),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["result"], "rejected", "{b}");
    assert!(b["similarity"].as_f64().unwrap() < threshold, "{b}");

    // No face in the photo: refused with the enrolment rule's words, nothing recorded for C.
    let (st, e) = call(
        &hub,
        "POST",
        &checkin,
        Some(&gv),
        &json!({"cccd": C, "photo_jpeg_b64": b64(&faceless_png())}),
    );
    assert_eq!(st, 422, "{e}");
    assert!(e["error"].as_str().unwrap().contains("no face"), "{e}");
    assert_eq!(e["code"], "no_face", "{e}");
    // Not registered, not a CCCD, not base64, no such session.
    let (st, e) = call(
        &hub,
        "POST",
        &checkin,
        Some(&gv),
        &json!({"cccd": "001085099999", "photo_jpeg_b64": lfw("Zico", 3)}),
    );
    assert_eq!(st, 404, "{e}");
    for (body, want) in [
        (
            json!({"cccd": "1234", "photo_jpeg_b64": lfw("Zico", 3)}),
            400,
        ),
        (json!({"cccd": A, "photo_jpeg_b64": "not base64!"}), 400),
    ] {
        assert_eq!(
            call(&hub, "POST", &checkin, Some(&gv), &body).0,
            want,
            "{body}"
        );
    }
    assert_eq!(
        call(
            &hub,
            "POST",
            "/api/exams/sessions/no-such-session/checkin",
            Some(&gv),
            &json!({"cccd": A, "photo_jpeg_b64": lfw("Zico", 3)})
        )
        .0,
        403,
        "exam staff get one answer for a session that does not exist and one that is not theirs"
    );

    // B's sister explains, the head of the exam site checks the card and lets her in: a manual decision.
    let decide = format!("{base}/candidates/{B}/decision");
    let manual = json!({"result": "verified", "reason": "twin sister came to pick her up; checked the card and the admission list"});
    assert_eq!(
        call(&hub, "POST", &decide, Some(&op), &manual).0,
        403,
        "an operator does not decide exam check-ins"
    );
    for body in [
        json!({"result": "verified", "reason": "  "}),
        json!({"result": "maybe", "reason": "unsure"}),
    ] {
        assert_eq!(
            call(&hub, "POST", &decide, Some(&sup), &body).0,
            400,
            "{body}"
        );
    }
    assert_eq!(
        call(
            &hub,
            "POST",
            &format!("{base}/candidates/001085099999/decision"),
            Some(&sup),
            &manual
        )
        .0,
        404
    );
    let (st, m) = call(&hub, "POST", &decide, Some(&sup), &manual);
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["method"], "manual");
    assert_eq!(m["result"], "verified");
    assert_eq!(m["decided_by"], "sup1");
    assert_eq!(m["seq"], 2);
    assert!(m["similarity"].is_null());

    // The report: latest decision per candidate.
    let (st, rep) = call(
        &hub,
        "GET",
        &format!("{base}/report"),
        Some(&gv),
        &json!(null),
    );
    assert_eq!(st, 200, "{rep}");
    for (k, want) in [
        ("registered", 3),
        ("present", 2),
        ("verified", 2),
        ("verified_face", 1),
        ("verified_manual", 1),
        ("rejected", 0),
        ("manual", 1),
        ("absent", 1),
    ] {
        assert_eq!(rep[k], want, "{k} in {rep}");
    }
    let line = |cccd: &str| {
        rep["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["cccd"] == cccd)
            .unwrap()
            .clone()
    };
    let (la, lb, lc) = (line(A), line(B), line(C));
    assert_eq!(la["candidate_no"], "HN-0001");
    assert_eq!(la["full_name"], "Nguyễn Văn An");
    assert_eq!(la["status"], "verified");
    assert_eq!(la["method"], "face");
    assert_eq!(la["similarity"], a["similarity"]);
    assert_eq!(la["decided_by"], "gv1");
    assert_eq!(la["at_ms"], a["at_ms"]);
    assert_eq!(lb["status"], "verified");
    assert_eq!(lb["method"], "manual");
    assert_eq!(lb["decided_by"], "sup1");
    assert_eq!(lb["reason"], manual["reason"]);
    assert_eq!(lb["decisions"], 2);
    assert_eq!(lc["status"], "absent");
    assert!(lc["result"].is_null() && lc["at_ms"].is_null());
    assert_eq!(lc["decisions"], 0);

    // B's history keeps the camera's rejection under the manual decision.
    let (st, h) = call(
        &hub,
        "GET",
        &format!("{base}/candidates/{B}/history"),
        Some(&gv),
        &json!(null),
    );
    assert_eq!(st, 200, "{h}");
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (&h[0]["result"], &h[0]["method"]),
        (&json!("rejected"), &json!("face"))
    );
    assert_eq!(
        (&h[1]["result"], &h[1]["method"]),
        (&json!("verified"), &json!("manual"))
    );

    // Every check-in, decision and report read is in the audit chain.
    let (st, log) = call(
        &hub,
        "GET",
        "/api/audit?action=exam.&limit=100",
        Some(&sup),
        &json!(null),
    );
    assert_eq!(st, 200, "{log}");
    let entries = log.as_array().unwrap();
    let of = |action: &str| -> Vec<&Value> {
        entries.iter().filter(|e| e["action"] == action).collect()
    };
    let checkins = of("exam.checkin");
    assert_eq!(checkins.len(), 2, "{log}");
    assert!(checkins.iter().any(|e| e["target"] == A
        && e["detail"]
            .as_str()
            .unwrap()
            .contains("\"result\":\"verified\"")
        && e["detail"].as_str().unwrap().contains("similarity")));
    assert!(checkins.iter().any(|e| e["target"] == B
        && e["detail"]
            .as_str()
            .unwrap()
            .contains("\"result\":\"rejected\"")));
    let decisions = of("exam.decision");
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["actor"], "sup1");
    assert!(decisions[0]["detail"]
        .as_str()
        .unwrap()
        .contains("twin sister"));
    assert_eq!(of("exam.report").len(), 1);
    assert_eq!(of("exam.report")[0]["target"], id.as_str());
    let (st, chain) = call(&hub, "GET", "/api/audit/verify", Some(&sup), &json!(null));
    assert_eq!(st, 200);
    assert_eq!(chain["ok"], true, "{chain}");

    // Roles and sign-in on every exam route.
    let photo = json!({"cccd": A, "photo_jpeg_b64": lfw("Zico", 3)});
    let routes: Vec<(&str, String, Value)> = vec![
        ("POST", "/api/exams/sessions".into(), new_session.clone()),
        ("GET", "/api/exams/sessions".into(), json!(null)),
        ("GET", base.clone(), json!(null)),
        (
            "POST",
            format!("{base}/candidates"),
            json!({"candidates": [{"cccd": A, "candidate_no": "HN-0001"}]}),
        ),
        ("POST", checkin.clone(), photo),
        ("POST", decide.clone(), manual.clone()),
        ("GET", format!("{base}/candidates/{B}/history"), json!(null)),
        ("GET", format!("{base}/report"), json!(null)),
    ];
    for (method, path, body) in &routes {
        assert_eq!(
            call(&hub, method, path, None, body).0,
            401,
            "{method} {path} without a session"
        );
        assert_eq!(
            call(&hub, method, path, Some("not-a-token"), body).0,
            401,
            "{method} {path} with a forged token"
        );
        for (who, token) in [("operator", &op), ("lodging staff", &desk)] {
            assert_eq!(
                call(&hub, method, path, Some(token), body).0,
                403,
                "{method} {path} as {who}"
            );
        }
    }
    // None of the refused calls changed anything.
    let (_, rep2) = call(
        &hub,
        "GET",
        &format!("{base}/report"),
        Some(&sup),
        &json!(null),
    );
    assert_eq!(rep2["present"], 2);
    assert_eq!(rep2["candidates"], rep["candidates"]);

    // The OpenAPI document lists the exam routes.
    let (st, api) = hub.get("/api/openapi.json", None);
    assert_eq!(st, 200);
    let api: Value = serde_json::from_str(&api).unwrap();
    for p in [
        "/api/exams/sessions",
        "/api/exams/sessions/{id}",
        "/api/exams/sessions/{id}/candidates",
        "/api/exams/sessions/{id}/checkin",
        "/api/exams/sessions/{id}/candidates/{cccd}/decision",
        "/api/exams/sessions/{id}/candidates/{cccd}/history",
        "/api/exams/sessions/{id}/report",
    ] {
        assert!(api["paths"][p].is_object(), "OpenAPI lists {p}");
    }
}

#[test]
fn exam_checkin_with_embedded_broker_and_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("hub.db").display()
    ));
}

#[test]
fn exam_checkin_with_postgres() {
    scenario(&pg_schema());
}
