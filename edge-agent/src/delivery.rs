//! Glue between events, the durable outbox and the MQTT publisher.
//!
//! Every event is appended to the outbox before anything is sent; the publisher streams the outbox and acks
//! records back only on the broker's PUBACK. When the outbox is full, old `count` records are merged per line
//! (totals stay exact, interval detail is coarsened), status records may go; alerts and line crossings never do
//! (the hub computes site occupancy from the crossings, so a dropped one would shift it for the rest of the day).

use std::collections::BTreeMap;
use std::sync::Arc;

use checkpoint_protocol::{Count, Envelope, EventKind};

use crate::events::EventForward;
use crate::outbox::{Class, Outbox, Record};
use crate::publish::EventQueue;

/// Outbox class of an event, which decides what may be compacted or dropped under pressure.
pub fn class_of(event: &EventKind) -> Class {
    match event {
        EventKind::WatchlistMatch(_) => Class::Alert,
        EventKind::Count(_) => Class::Count,
        EventKind::CameraStatus(_) | EventKind::AgentStatus(_) | EventKind::WatchlistStatus(_) => {
            Class::Status
        }
        // Crossings are what the hub's occupancy is summed from: kept like alerts. They are small (about 250
        // bytes), so even a month offline at 10,000 crossings a day stays under 100 MB.
        EventKind::LineCrossing(_) => Class::Alert,
    }
}

/// Puts events into the outbox and wakes the publisher.
pub struct OutboxForward {
    pub outbox: Arc<Outbox>,
    pub wake: Arc<tokio::sync::Notify>,
}

impl EventForward for OutboxForward {
    fn forward(&self, env: &Envelope, json: &str) {
        let topic = checkpoint_protocol::topic(&env.site, &env.agent, env.kind());
        match self
            .outbox
            .append(class_of(&env.event), &topic, json.as_bytes())
        {
            Ok(_) => self.wake.notify_one(),
            Err(e) => {
                tracing::error!(error = %e, id = %env.id, kind = env.kind(), "event not queued for delivery")
            }
        }
    }
}

/// The outbox as the publisher's queue.
pub struct OutboxQueue(pub Arc<Outbox>);

impl EventQueue for OutboxQueue {
    fn pending_after(&self, after: Option<u64>, limit: usize) -> Vec<(u64, String, Vec<u8>)> {
        let r = match after {
            None => self.0.pending(limit),
            Some(s) => self.0.pending_after(s, limit),
        };
        match r {
            Ok(records) => records
                .into_iter()
                .map(|r| (r.seq, r.topic, r.payload))
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                Vec::new()
            }
        }
    }

    fn ack(&self, seq: u64) {
        if let Err(e) = self.0.ack(seq) {
            tracing::error!(error = %e, seq, "cannot record delivery in the outbox");
        }
    }
}

/// Merges `count` records per (camera, line): entries and exits summed over the merged intervals, totals and
/// occupancy from the newest. Records that do not parse are kept as they are.
pub fn aggregate_counts(records: &[Record]) -> Vec<Record> {
    let mut merged: BTreeMap<(String, String), (Envelope, Count, u64, Record)> = BTreeMap::new();
    let mut keep = Vec::new();
    for r in records {
        let parsed = Envelope::from_json(&r.payload)
            .ok()
            .and_then(|env| match &env.event {
                EventKind::Count(c) => Some((env.clone(), c.clone())),
                _ => None,
            });
        let Some((env, c)) = parsed else {
            keep.push(r.clone());
            continue;
        };
        let key = (c.camera.clone(), c.line.clone());
        match merged.get_mut(&key) {
            None => {
                merged.insert(key, (env, c, r.seq, r.clone()));
            }
            Some((menv, m, _, _)) => {
                m.entries += c.entries;
                m.exits += c.exits;
                m.interval_start = m.interval_start.min(c.interval_start);
                if c.interval_end >= m.interval_end {
                    m.interval_end = c.interval_end;
                    m.total_entries = c.total_entries;
                    m.total_exits = c.total_exits;
                    m.occupancy = c.occupancy;
                    menv.ts = env.ts;
                }
            }
        }
    }
    for (_, (env, c, seq, r)) in merged {
        // A merged record is a new event: it gets a fresh id so the hub does not take it for the first one.
        let out = Envelope::new(&env.site, &env.agent, env.ts, EventKind::Count(c));
        keep.push(Record {
            seq,
            class: r.class,
            topic: r.topic,
            payload: out.to_json().into_bytes(),
        });
    }
    keep.sort_by_key(|r| r.seq);
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    #[test]
    fn crossings_and_alerts_are_never_dropped_under_pressure() {
        let crossing = EventKind::LineCrossing(checkpoint_protocol::LineCrossing {
            camera: "c".into(),
            line: "l".into(),
            direction: checkpoint_protocol::Direction::In,
            track_id: 1,
            stream_time_s: 0.0,
            site_boundary: Some(true),
        });
        assert_eq!(class_of(&crossing), Class::Alert);
    }

    fn count_record(seq: u64, line: &str, entries: u64, total: u64, start: i64) -> Record {
        let t0 = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(start);
        let env = Envelope::new(
            "s",
            "a",
            t0,
            EventKind::Count(Count {
                camera: "c".into(),
                line: line.into(),
                interval_start: t0,
                interval_end: t0 + time::Duration::seconds(10),
                entries,
                exits: 0,
                total_entries: total,
                total_exits: 0,
                occupancy: total as i64,
            }),
        );
        Record {
            seq,
            class: Class::Count,
            topic: "t".into(),
            payload: env.to_json().into_bytes(),
        }
    }

    #[test]
    fn counts_merge_per_line_and_keep_exact_totals() {
        let recs = vec![
            count_record(1, "a", 2, 2, 0),
            count_record(2, "b", 1, 1, 0),
            count_record(3, "a", 3, 5, 10),
            count_record(4, "a", 0, 5, 20),
        ];
        let out = aggregate_counts(&recs);
        assert_eq!(out.len(), 2);
        let a = Envelope::from_json(&out[0].payload).unwrap();
        let EventKind::Count(c) = a.event else {
            panic!()
        };
        assert_eq!((c.line.as_str(), c.entries, c.total_entries), ("a", 5, 5));
        assert_eq!((c.interval_end - c.interval_start).whole_seconds(), 30);
        assert_eq!(out[0].seq, 1);
    }
}
