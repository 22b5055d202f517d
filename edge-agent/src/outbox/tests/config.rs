//! The fsync policies' effect on syncs and durability, and the configuration's TOML shapes.

use super::*;

#[test]
fn fsync_policies() {
    // Always: every append and ack is synced.
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), cfg(FsyncPolicy::Always, 1 << 20, 4096));
    let base = ob.stats().fsyncs_total;
    let s = append_n(&ob, 5);
    assert!(ob.stats().fsyncs_total >= base + 5);
    let f = ob.stats().fsyncs_total;
    ob.ack(s[0]).unwrap();
    assert!(ob.stats().fsyncs_total > f);
    drop(ob);
    assert_eq!(seqs(&open(tmp.path(), roomy())), s[1..].to_vec());

    // Never: no fsync at all, yet records and acks survive the process.
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), cfg(FsyncPolicy::Never, 1 << 20, 1024));
    let s = append_n(&ob, 50);
    ob.ack(s[0]).unwrap();
    ob.tick().unwrap();
    assert_eq!(ob.stats().fsyncs_total, 0);
    drop(ob);
    assert_eq!(seqs(&open(tmp.path(), roomy())), s[1..].to_vec());

    // Interval: at most one data sync per interval; tick() catches up.
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(
        FsyncPolicy::Interval(Duration::from_millis(300)),
        1 << 20,
        4096,
    );
    let ob = open(tmp.path(), c);
    let opened = ob.stats().fsyncs_total;
    let s = append_n(&ob, 20);
    ob.ack(s[0]).unwrap();
    let quick = ob.stats().fsyncs_total;
    // Even on a slow machine 20 appends span at most a couple of intervals.
    assert!(quick - opened <= 2, "{quick} fsyncs for 20 quick appends");
    std::thread::sleep(Duration::from_millis(350));
    ob.tick().unwrap();
    assert!(ob.stats().fsyncs_total > quick, "tick synced data and acks");
    let after_tick = ob.stats().fsyncs_total;
    ob.tick().unwrap();
    assert_eq!(
        ob.stats().fsyncs_total,
        after_tick,
        "nothing dirty, nothing synced"
    );
    ob.append(Class::Status, "t/x", b"x").unwrap();
    ob.sync().unwrap();
    assert!(ob.stats().fsyncs_total > after_tick, "explicit sync");
    drop(ob);
    assert_eq!(open(tmp.path(), roomy()).stats().pending, 20);
}

#[test]
fn config_toml_shapes() {
    let parse = |s: &str| toml::from_str::<OutboxConfig>(s);
    let d = parse("").unwrap();
    assert_eq!(d, OutboxConfig::default());
    assert_eq!(d.fsync, FsyncPolicy::Always);
    assert_eq!(
        parse(r#"fsync = "never""#).unwrap().fsync,
        FsyncPolicy::Never
    );
    let ms = |n| FsyncPolicy::Interval(Duration::from_millis(n));
    assert_eq!(
        parse("fsync = { interval_ms = 250 }").unwrap().fsync,
        ms(250)
    );
    assert_eq!(
        parse(r#"fsync = "interval_ms = 50""#).unwrap().fsync,
        ms(50)
    );
    let full = parse(
        r#"
        fsync = "always"
        max_bytes = 1048576
        segment_bytes = 65536
        "#,
    )
    .unwrap();
    assert_eq!((full.max_bytes, full.segment_bytes), (1 << 20, 1 << 16));
    for bad in [
        r#"fsync = "sometimes""#,
        "fsync = { interval = 5 }",
        "fsync = { interval_ms = -1 }",
        "fsync = {}",
        "max_byte = 5",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    // Serialises back to the canonical shape.
    let c = OutboxConfig {
        fsync: ms(200),
        ..OutboxConfig::default()
    };
    let text = toml::to_string(&c).unwrap();
    assert!(text.contains("interval_ms = 200"), "{text}");
    assert_eq!(parse(&text).unwrap(), c);
    assert_eq!(
        serde_json::to_string(&FsyncPolicy::Never).unwrap(),
        r#""never""#
    );

    let tmp = tempfile::tempdir().unwrap();
    for bad in [
        cfg(FsyncPolicy::Never, 1 << 20, 100),
        cfg(FsyncPolicy::Never, 4096, 4096),
    ] {
        assert!(matches!(
            Outbox::open(tmp.path(), bad),
            Err(OutboxError::Config(_))
        ));
    }
}
