//! The lodging (ASM) module end to end: the real `central-hub` binary (embedded broker; SQLite, or PostgreSQL
//! on 127.0.0.1:5432) and its HTTP API as the desk software and the police would use it: establishments and
//! their staff, check-in by CCCD QR and by passport, the per-establishment rule, police search without
//! diacritics, tourism statistics, check-out, and a wanted person's check-in raising a candidate alert that the
//! desk cannot see. Every lodging route refuses requests without a session (401) and from a wrong role (403).

use std::collections::BTreeSet;
use std::process::Command;

use checkpoint_e2e::hub::{pg_schema, Hub};
use checkpoint_e2e::mqtt::{free_port, unique_site};
use serde_json::{json, Value};

/// Nguyễn Văn An, male, born 02/03/1985 in Hà Nội (province 001, digit 4 = 0: male born 1900-1999, 85).
const AN_QR: &str = "001085012345|123456789|Nguyễn Văn An|02031985|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021\r\n";
/// Trần Thị Thu Hà, female, born 17/11/1995 in TP. Hồ Chí Minh (079, digit 4 = 1: female born 1900-1999).
const HA_QR: &str = "079195004321||Trần Thị Thu Hà|17111995|Nữ|12 Nguyễn Huệ, Bến Nghé, Quận 1, TP. Hồ Chí Minh|03042022";

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn post(hub: &Hub, path: &str, token: Option<&str>, body: &Value) -> (u16, String) {
    hub.request("POST", path, token, Some(&body.to_string()))
}

/// Runs one SQL statement behind the hub's back (the test stands in for the watchlist owner's tools).
fn run_sql(database_url: &str, sql: &str) {
    let status = if database_url.starts_with("postgres") {
        let (base, schema) = database_url
            .split_once("?options=-c%20search_path%3D")
            .unwrap();
        Command::new("psql")
            .args([base, "-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("SET search_path = {schema}; {sql}"))
            .status()
    } else {
        let path = database_url.trim_start_matches("sqlite://");
        let path = path.split('?').next().unwrap();
        Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=30); c.execute(sys.argv[2]); c.commit()",
            ])
            .arg(path)
            .arg(sql)
            .status()
    };
    assert!(status.unwrap().success(), "{sql}");
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn scenario(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let hub = Hub::start(
        dir.path(),
        &format!("[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{port}\""),
        database_url,
    );
    let admin = hub.bootstrap_admin();
    let [op, sup, desk, desk_b, exam] = hub
        .add_users(
            &admin,
            &[
                ("op1", "operator"),
                ("sup1", "supervisor"),
                ("desk.songhan", "lodging_staff"),
                ("desk.hoian", "lodging_staff"),
                ("thi1", "exam_staff"),
            ],
        )
        .try_into()
        .unwrap();

    // Establishments: admin and supervisor create, an operator may not.
    let site = unique_site("da-nang");
    let other_site = unique_site("hoi-an");
    let hotel = json!({"name": "Khách sạn Sông Hàn", "kind": "hotel", "site": site,
                       "address": "36 Bạch Đằng, Hải Châu, Đà Nẵng"});
    assert_eq!(
        post(&hub, "/api/lodging/establishments", Some(&op), &hotel).0,
        403
    );
    let (st, body) = post(&hub, "/api/lodging/establishments", Some(&admin), &hotel);
    assert_eq!(st, 201, "{body}");
    let a = parse(&body)["id"].as_str().unwrap().to_string();
    let (st, body) = post(
        &hub,
        "/api/lodging/establishments",
        Some(&sup),
        &json!({"name": "Homestay Phố Cổ", "kind": "homestay", "site": other_site,
                "address": "45 Trần Phú, Minh An, Hội An"}),
    );
    assert_eq!(st, 201, "{body}");
    let b = parse(&body)["id"].as_str().unwrap().to_string();
    let (st, body) = post(
        &hub,
        "/api/lodging/establishments",
        Some(&admin),
        &json!({"name": "Tàu", "kind": "spaceship", "site": site, "address": "Vịnh Hạ Long"}),
    );
    assert_eq!(st, 400, "{body}");
    let (st, body) = hub.get("/api/lodging/establishments", Some(&op));
    assert_eq!(st, 200);
    assert!(
        body.contains("Khách sạn Sông Hàn") && body.contains("Homestay Phố Cổ"),
        "{body}"
    );

    // Staff accounts: admin links lodging_staff users only.
    let link = |est: &str, user: &str, token: &str| {
        post(
            &hub,
            &format!("/api/lodging/establishments/{est}/staff"),
            Some(token),
            &json!({ "username": user }),
        )
    };
    assert_eq!(link(&a, "desk.songhan", &sup).0, 403);
    let (st, body) = link(&a, "desk.songhan", &admin);
    assert_eq!(st, 200, "{body}");
    assert_eq!(link(&b, "desk.hoian", &admin).0, 200);
    let (st, body) = link(&a, "op1", &admin);
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("lodging_staff"), "{body}");
    assert_eq!(link(&a, "nobody", &admin).0, 400);
    assert_eq!(link("no-such-establishment", "desk.songhan", &admin).0, 404);
    // Staff see their own establishment only.
    let (st, body) = hub.get("/api/lodging/establishments", Some(&desk));
    assert_eq!(st, 200);
    let own = parse(&body);
    assert_eq!(own.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(own[0]["id"], a.as_str());

    // Check-in by the CCCD card's QR code.
    let (st, body) = post(
        &hub,
        "/api/lodging/stays",
        Some(&desk),
        &json!({"establishment_id": a, "room": "301", "qr": AN_QR}),
    );
    assert_eq!(st, 201, "{body}");
    let an = parse(&body);
    assert_eq!(an["full_name"], "Nguyễn Văn An");
    assert_eq!(an["cccd"], "001085012345");
    assert_eq!(an["guest_kind"], "citizen");
    assert_eq!(an["nationality"], "VNM");
    assert_eq!(an["date_of_birth"], "1985-03-02");
    assert!(an["checkout_ms"].is_null());
    let an_id = an["id"].as_str().unwrap().to_string();

    // ... and by passport, for a foreign guest.
    let (st, body) = post(
        &hub,
        "/api/lodging/stays",
        Some(&desk),
        &json!({"establishment_id": a, "room": "502", "passport": {"number": "M12345678",
                "nationality": "KOR", "full_name": "Kim Min-jun", "date_of_birth": "1990-04-12",
                "gender": "male"}}),
    );
    assert_eq!(st, 201, "{body}");
    let kim = parse(&body);
    assert_eq!(kim["guest_kind"], "foreign");
    assert_eq!(kim["nationality"], "KOR");
    assert_eq!(kim["passport_number"], "M12345678");

    // Already checked in: 409. Bad cards and passports: 400 with the reason.
    let (st, body) = post(
        &hub,
        "/api/lodging/stays",
        Some(&desk),
        &json!({"establishment_id": a, "qr": AN_QR}),
    );
    assert_eq!(st, 409, "{body}");
    let (st, body) = post(
        &hub,
        "/api/lodging/stays",
        Some(&desk),
        &json!({"establishment_id": a, "qr": AN_QR.replace("|Nam|", "|Nữ|")}),
    );
    assert_eq!(st, 400);
    assert!(
        body.contains("digit 4 says male, record says female"),
        "{body}"
    );
    let (st, body) = post(
        &hub,
        "/api/lodging/stays",
        Some(&desk),
        &json!({"establishment_id": a, "qr": "001085012345|Nguyễn Văn An"}),
    );
    assert_eq!(st, 400);
    assert!(body.contains("field(s)"), "{body}");
    let (st, body) = post(
        &hub,
        "/api/lodging/stays",
        Some(&desk),
        &json!({"establishment_id": a, "passport": {"number": "M12345678", "nationality": "XYZ",
                "full_name": "Kim Min-jun", "date_of_birth": "1990-04-12", "gender": "male"}}),
    );
    assert_eq!(st, 400);
    assert!(body.contains("nationality"), "{body}");
    assert_eq!(
        hub.request("POST", "/api/lodging/stays", Some(&desk), Some("{not json"))
            .0,
        400
    );
    assert_eq!(
        post(
            &hub,
            "/api/lodging/stays",
            Some(&admin),
            &json!({"establishment_id": "no-such-establishment", "qr": AN_QR}),
        )
        .0,
        404
    );

    // Staff of another establishment may not act here.
    let (st, body) = post(
        &hub,
        "/api/lodging/stays",
        Some(&desk_b),
        &json!({"establishment_id": a, "qr": HA_QR}),
    );
    assert_eq!(st, 403, "{body}");
    assert_eq!(
        hub.get(
            &format!("/api/lodging/establishments/{a}/guests"),
            Some(&desk_b)
        )
        .0,
        403
    );
    assert_eq!(
        hub.request(
            "POST",
            &format!("/api/lodging/stays/{an_id}/checkout"),
            Some(&desk_b),
            None
        )
        .0,
        403
    );

    // Current guests.
    let (st, body) = hub.get(
        &format!("/api/lodging/establishments/{a}/guests"),
        Some(&desk),
    );
    assert_eq!(st, 200);
    assert_eq!(parse(&body).as_array().unwrap().len(), 2, "{body}");
    assert_eq!(
        hub.get(
            &format!("/api/lodging/establishments/{a}/guests"),
            Some(&sup)
        )
        .0,
        200
    );

    // The police search by name typed without diacritics.
    let (st, body) = hub.get("/api/lodging/stays?name=nguyen+van+an", Some(&op));
    assert_eq!(st, 200, "{body}");
    let found = parse(&body);
    assert_eq!(found.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(found[0]["id"], an_id.as_str());
    assert_eq!(found[0]["establishment_name"], "Khách sạn Sông Hàn");
    let (st, body) = hub.get("/api/lodging/stays?passport=m12345678", Some(&sup));
    assert_eq!(st, 200);
    assert!(body.contains("Kim Min-jun"), "{body}");
    let (st, body) = hub.get(
        &format!("/api/lodging/stays?cccd=001085012345&establishment={a}"),
        Some(&op),
    );
    assert_eq!(st, 200);
    assert_eq!(parse(&body).as_array().unwrap().len(), 1);
    assert_eq!(hub.get("/api/lodging/stays", Some(&op)).0, 400);
    assert_eq!(hub.get("/api/lodging/stays?cccd=12345", Some(&op)).0, 400);

    // Tourism statistics: one domestic and one foreign guest on the site (summed over days, in case the test
    // runs across local midnight).
    let (st, body) = hub.get(&format!("/api/lodging/stats?site={site}"), Some(&op));
    assert_eq!(st, 200, "{body}");
    let rows = parse(&body);
    let sum = |k: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r[k].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!(
        (sum("checkins"), sum("domestic"), sum("foreign")),
        (2, 1, 1),
        "{body}"
    );
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["site"] == site.as_str()));

    // Check-out, twice.
    let (st, body) = hub.request(
        "POST",
        &format!("/api/lodging/stays/{an_id}/checkout"),
        Some(&desk),
        None,
    );
    assert_eq!(st, 200, "{body}");
    assert!(parse(&body)["checkout_ms"].as_i64().unwrap() >= an["checkin_ms"].as_i64().unwrap());
    let (st, body) = hub.request(
        "POST",
        &format!("/api/lodging/stays/{an_id}/checkout"),
        Some(&desk),
        None,
    );
    assert_eq!(st, 409, "{body}");
    assert_eq!(
        hub.request(
            "POST",
            "/api/lodging/stays/no-such-stay/checkout",
            Some(&sup),
            None
        )
        .0,
        404
    );
    let (_, body) = hub.get(
        &format!("/api/lodging/establishments/{a}/guests"),
        Some(&desk),
    );
    assert_eq!(parse(&body).as_array().unwrap().len(), 1, "{body}");

    // A wanted person checks in: the desk sees an ordinary check-in, the operators a candidate alert.
    let entry = format!("wanted-{}", unique_site("e"));
    run_sql(
        database_url,
        &format!(
            "INSERT INTO watchlist_entries (id, list, person_cccd, label, case_ref, legal_basis, issued_by, \
             expires_ms, sites, case_retention_days, created_by, created_ms, withdrawn_ms) VALUES \
             ('{entry}', 'wanted', '079195004321', 'Đối tượng truy nã', 'QĐTN-45/2025', 'Điều 231 BLTTHS 2015', \
             'Công an TP. Đà Nẵng', 4102444800000, '*', 365, 'sup1', 0, NULL)"
        ),
    );
    let (st, body) = post(
        &hub,
        "/api/lodging/stays",
        Some(&desk),
        &json!({"establishment_id": a, "room": "207", "qr": HA_QR}),
    );
    assert_eq!(st, 201, "{body}");
    let ha = parse(&body);
    assert_eq!(keys(&ha), keys(&an), "same answer as any check-in: {body}");
    assert_eq!(ha["full_name"], "Trần Thị Thu Hà");
    for word in ["alert", "wanted", "watchlist", &entry] {
        assert!(
            !body.contains(word),
            "the desk's answer mentions {word}: {body}"
        );
    }
    assert_eq!(hub.get("/api/alerts?status=candidate", Some(&desk)).0, 403);
    let (st, body) = hub.get("/api/alerts?status=candidate", Some(&op));
    assert_eq!(st, 200, "{body}");
    let alerts = parse(&body);
    let alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["entry_id"] == entry.as_str())
        .unwrap_or_else(|| panic!("a lodging alert for {entry}: {body}"));
    assert_eq!(alert["list"], "wanted");
    assert_eq!(alert["site"], site.as_str());
    assert_eq!(alert["camera"], a.as_str());
    assert_eq!(alert["status"], "candidate");
    assert_eq!(alert["has_snapshot"], false);

    // The audit log has every check-in, check-out, search and the hit, without guests' names.
    let (st, body) = hub.get("/api/audit?action=lodging.&limit=1000", Some(&sup));
    assert_eq!(st, 200);
    let audit = parse(&body);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let count = |a: &str| actions.iter().filter(|x| **x == a).count();
    assert_eq!(count("lodging.checkin"), 3, "{actions:?}");
    assert_eq!(count("lodging.checkout"), 1, "{actions:?}");
    assert_eq!(count("lodging.search"), 3, "{actions:?}");
    assert_eq!(count("lodging.wanted_hit"), 1, "{actions:?}");
    assert_eq!(count("lodging.staff_link"), 2, "{actions:?}");
    assert_eq!(count("lodging.establishment_create"), 2, "{actions:?}");
    for e in audit.as_array().unwrap() {
        if e["action"] == "lodging.checkin" {
            let d = e["detail"].as_str().unwrap();
            assert!(
                !d.contains("Nguy") && !d.contains("Kim") && !d.contains("Trần"),
                "{d}"
            );
        }
    }
    let (_, body) = hub.get("/api/audit/verify", Some(&sup));
    assert!(body.contains("\"ok\":true"), "{body}");

    // Every lodging route: 401 without a session or with a forged token, 403 for a role that may not use it.
    let routes: Vec<(&str, String, Value)> = vec![
        ("GET", "/api/lodging/establishments".into(), Value::Null),
        ("POST", "/api/lodging/establishments".into(), hotel.clone()),
        (
            "POST",
            format!("/api/lodging/establishments/{a}/staff"),
            json!({"username": "desk.songhan"}),
        ),
        (
            "GET",
            format!("/api/lodging/establishments/{a}/guests"),
            Value::Null,
        ),
        (
            "POST",
            "/api/lodging/stays".into(),
            json!({"establishment_id": a, "qr": AN_QR}),
        ),
        ("GET", "/api/lodging/stays?name=nguyen".into(), Value::Null),
        (
            "POST",
            format!(
                "/api/lodging/stays/{}/checkout",
                kim["id"].as_str().unwrap()
            ),
            Value::Null,
        ),
        ("GET", "/api/lodging/stats".into(), Value::Null),
    ];
    for (method, path, body) in &routes {
        let body = (!body.is_null()).then(|| body.to_string());
        let send = |token: Option<&str>| hub.request(method, path, token, body.as_deref()).0;
        assert_eq!(send(None), 401, "{method} {path} without a session");
        assert_eq!(
            send(Some("not-a-token")),
            401,
            "{method} {path} with a forged token"
        );
        assert_eq!(send(Some(&exam)), 403, "{method} {path} as exam staff");
    }
    // Desk staff do not search or read statistics; operators do not work desks or manage staff.
    assert_eq!(
        hub.get("/api/lodging/stays?name=nguyen", Some(&desk)).0,
        403
    );
    assert_eq!(hub.get("/api/lodging/stats", Some(&desk)).0, 403);
    assert_eq!(
        post(&hub, "/api/lodging/establishments", Some(&desk), &hotel).0,
        403
    );
    assert_eq!(
        post(
            &hub,
            "/api/lodging/stays",
            Some(&op),
            &json!({"establishment_id": a, "qr": AN_QR})
        )
        .0,
        403
    );
    assert_eq!(
        hub.get(
            &format!("/api/lodging/establishments/{a}/guests"),
            Some(&op)
        )
        .0,
        403
    );
    assert_eq!(
        hub.request(
            "POST",
            &format!(
                "/api/lodging/stays/{}/checkout",
                kim["id"].as_str().unwrap()
            ),
            Some(&op),
            None
        )
        .0,
        403
    );
    // None of those refused requests changed anything: Kim is still checked in.
    let (_, body) = hub.get(
        &format!("/api/lodging/establishments/{a}/guests"),
        Some(&sup),
    );
    assert!(body.contains("Kim Min-jun"), "{body}");

    // The OpenAPI document lists the routes, protected, with their error answers.
    let (st, api) = hub.get("/api/openapi.json", None);
    assert_eq!(st, 200);
    let api = parse(&api);
    for (path, method, codes) in [
        (
            "/api/lodging/establishments",
            "get",
            &["200", "401", "403"][..],
        ),
        (
            "/api/lodging/establishments",
            "post",
            &["201", "400", "401", "403"],
        ),
        (
            "/api/lodging/establishments/{id}/staff",
            "post",
            &["200", "400", "401", "403", "404"],
        ),
        (
            "/api/lodging/establishments/{id}/guests",
            "get",
            &["200", "401", "403", "404"],
        ),
        (
            "/api/lodging/stays",
            "post",
            &["200", "201", "400", "401", "403", "404", "409"],
        ),
        ("/api/lodging/stays", "get", &["200", "400", "401", "403"]),
        (
            "/api/lodging/stays/{id}/checkout",
            "post",
            &["200", "401", "403", "404", "409"],
        ),
        ("/api/lodging/stats", "get", &["200", "400", "401", "403"]),
    ] {
        let op = &api["paths"][path][method];
        assert!(op.is_object(), "OpenAPI lists {method} {path}");
        assert!(op["security"].is_array(), "{method} {path} is protected");
        for c in codes {
            assert!(
                op["responses"][c].is_object(),
                "{method} {path} documents {c}"
            );
        }
    }
    offline_replays(&hub, &desk, &a);
    let search_params = api["paths"]["/api/lodging/stays"]["get"]["parameters"].to_string();
    assert!(
        search_params.contains("\"in\":\"query\""),
        "{search_params}"
    );
}

/// A check-in the desk queued offline, sent when the network returns, and sent again because the answer to
/// the first try was lost: one stay, at the time the desk recorded it.
fn offline_replays(hub: &Hub, desk: &str, establishment: &str) {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let recorded = now_ms - 2 * 3600 * 1000;
    let lee = json!({"number": "K7654321", "nationality": "KOR", "full_name": "Lee Ji-eun",
                     "date_of_birth": "1993-05-16", "gender": "female"});
    let body = json!({"establishment_id": establishment, "room": "B7", "passport": lee,
                      "client_id": "0192c0de-6f2a-7c55-a1b4-1234567890ab", "recorded_ms": recorded});
    let (st, first) = post(hub, "/api/lodging/stays", Some(desk), &body);
    assert_eq!(st, 201, "{first}");
    let first = parse(&first);
    assert_eq!(
        first["checkin_ms"], recorded,
        "the time the desk recorded it"
    );
    let (st, again) = post(hub, "/api/lodging/stays", Some(desk), &body);
    assert_eq!(st, 200, "a replay answers with the stay it made: {again}");
    assert_eq!(parse(&again)["id"], first["id"]);
    let (_, list) = hub.get(
        &format!("/api/lodging/establishments/{establishment}/guests"),
        Some(desk),
    );
    let lees = parse(&list)
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["passport_number"] == "K7654321")
        .count();
    assert_eq!(lees, 1, "one stay for two tries: {list}");
    // The same id for another guest is a client's bug: refused, not merged.
    let mut other = body.clone();
    other["passport"]["number"] = json!("K0000001");
    let (st, text) = post(hub, "/api/lodging/stays", Some(desk), &other);
    assert_eq!(st, 409, "{text}");
    assert!(text.contains("client_id"), "{text}");
    // Ids that are not ids, and times a desk cannot have recorded: 400 with the reason.
    let mut bad = body.clone();
    bad["client_id"] = json!("x'; --");
    let (st, text) = post(hub, "/api/lodging/stays", Some(desk), &bad);
    assert_eq!(st, 400, "{text}");
    for (at, why) in [
        (now_ms - 8 * 24 * 3600 * 1000, "7 days"),
        (now_ms + 3600 * 1000, "future"),
    ] {
        let mut late = body.clone();
        late["client_id"] = json!("0192c0de-6f2a-7c55-a1b4-aaaaaaaaaaaa");
        late["recorded_ms"] = json!(at);
        let (st, text) = post(hub, "/api/lodging/stays", Some(desk), &late);
        assert_eq!(st, 400, "{text}");
        assert!(text.contains(why), "{text}");
    }
}

#[test]
fn lodging_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("hub.db").display()
    ));
}

#[test]
fn lodging_on_postgres() {
    scenario(&pg_schema());
}
