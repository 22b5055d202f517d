//! Site-wide counts: per line per interval, running totals, and occupancy (entries minus exits over the
//! lines that bound the site, e.g. the gangway of an island pier).

use std::collections::BTreeMap;

use checkpoint_protocol::{Count, Direction};
use time::OffsetDateTime;

#[derive(Default, Clone, Copy)]
struct LineTally {
    entries: u64,
    exits: u64,
    total_entries: u64,
    total_exits: u64,
    boundary: bool,
}

pub struct SiteTally {
    lines: BTreeMap<(String, String), LineTally>,
    interval_start: OffsetDateTime,
    occupancy: i64,
}

impl SiteTally {
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            lines: BTreeMap::new(),
            interval_start: now,
            occupancy: 0,
        }
    }

    /// Registers a line so it reports even before anyone crosses it.
    pub fn add_line(&mut self, camera: &str, line: &str, boundary: bool) {
        self.lines
            .entry((camera.to_string(), line.to_string()))
            .or_insert(LineTally {
                boundary,
                ..Default::default()
            });
    }

    pub fn record(&mut self, camera: &str, line: &str, direction: Direction, boundary: bool) {
        let t = self
            .lines
            .entry((camera.to_string(), line.to_string()))
            .or_insert(LineTally {
                boundary,
                ..Default::default()
            });
        match direction {
            Direction::In => {
                t.entries += 1;
                t.total_entries += 1;
                if t.boundary {
                    self.occupancy += 1;
                }
            }
            Direction::Out => {
                t.exits += 1;
                t.total_exits += 1;
                if t.boundary {
                    self.occupancy -= 1;
                }
            }
        }
    }

    pub fn occupancy(&self) -> i64 {
        self.occupancy
    }

    /// Totals per (camera, line): (entries, exits).
    pub fn totals(&self) -> Vec<(String, String, u64, u64)> {
        self.lines
            .iter()
            .map(|((c, l), t)| (c.clone(), l.clone(), t.total_entries, t.total_exits))
            .collect()
    }

    /// Closes the interval: one `Count` per line, zeros included (the hub rolls counts up per hour and day and
    /// must tell "nobody passed" from "no report"), then starts a new one.
    pub fn flush(&mut self, now: OffsetDateTime) -> Vec<Count> {
        let start = self.interval_start;
        self.interval_start = now;
        let occupancy = self.occupancy;
        self.lines
            .iter_mut()
            .map(|((camera, line), t)| {
                let c = Count {
                    camera: camera.clone(),
                    line: line.clone(),
                    interval_start: start,
                    interval_end: now,
                    entries: t.entries,
                    exits: t.exits,
                    total_entries: t.total_entries,
                    total_exits: t.total_exits,
                    occupancy,
                };
                t.entries = 0;
                t.exits = 0;
                c
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_reset_totals_persist_and_occupancy_uses_boundaries_only() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut s = SiteTally::new(t0);
        s.add_line("pier", "gangway", true);
        s.add_line("hall", "inner", false);
        s.record("pier", "gangway", Direction::In, true);
        s.record("pier", "gangway", Direction::In, true);
        s.record("pier", "gangway", Direction::Out, true);
        s.record("hall", "inner", Direction::In, false);
        assert_eq!(s.occupancy(), 1);
        let c = s.flush(t0 + time::Duration::seconds(60));
        assert_eq!(c.len(), 2);
        let g = c.iter().find(|c| c.line == "gangway").unwrap();
        assert_eq!(
            (g.entries, g.exits, g.total_entries, g.occupancy),
            (2, 1, 2, 1)
        );
        s.record("pier", "gangway", Direction::In, true);
        let c = s.flush(t0 + time::Duration::seconds(120));
        assert_eq!(c.len(), 2, "every line reports, a quiet one with zeros");
        let g = c.iter().find(|c| c.line == "gangway").unwrap();
        assert_eq!((g.entries, g.total_entries, g.occupancy), (1, 3, 2));
        let h = c.iter().find(|c| c.line == "inner").unwrap();
        assert_eq!((h.entries, h.exits, h.total_entries), (0, 0, 1));
    }
}
