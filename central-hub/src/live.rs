//! Live hints: "something changed" messages for the web UI's stream (`GET /api/live`), sent after the
//! change is committed. Pages then ask the API, where roles and auditing apply, so a hint carries no data
//! beyond what names the change.
//!
//! One hub (SQLite) passes hints straight to its own pages. Hubs sharing PostgreSQL send them with
//! `NOTIFY` inside the transaction that made the change, so a hint is delivered exactly when the change is
//! visible, to every hub (itself included) through [`relay`]: an alert ingested by hub A appears live on
//! a page served by hub B. A hub whose listening connection dropped tells its pages to `resync`, since
//! notifications sent meanwhile are lost.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use tokio::sync::broadcast;

use crate::db::{Backend, Db, DbError};
use crate::ingest::IngestState;
use crate::metrics::Metrics;

/// A hint that something changed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, Hash)]
pub struct Live {
    /// `alert` (a new watchlist match), `review` (an alert's status changed), `count`, `agent`, `camera`,
    /// or `resync` (hints may have been missed: reload what is shown).
    pub kind: &'static str,
    pub site: String,
    pub agent: String,
    /// The alert's id for `alert` and `review`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The kinds a hint may have; a notification naming any other is ignored.
const KINDS: [&str; 6] = ["alert", "review", "count", "agent", "camera", "resync"];

#[derive(Deserialize)]
struct Wire {
    kind: String,
    site: String,
    agent: String,
    #[serde(default)]
    id: Option<String>,
}

impl Live {
    fn resync() -> Live {
        Live {
            kind: "resync",
            site: String::new(),
            agent: String::new(),
            id: None,
        }
    }

    fn from_wire(w: Wire) -> Option<Live> {
        let kind = KINDS.into_iter().find(|k| *k == w.kind)?;
        Some(Live {
            kind,
            site: w.site,
            agent: w.agent,
            id: w.id,
        })
    }
}

/// This hub's pages' hints, in two queues: alerts, reviews and `resync` (few, and what an operator must not
/// miss) apart from counts and statuses (thousands a second at scale, in bursts after a broker restart), so a
/// flood of the second cannot push the first out of a slow page's queue. A page that falls behind on either
/// queue is told to `resync`.
pub struct LiveBus {
    urgent: broadcast::Sender<Live>,
    bulk: broadcast::Sender<Live>,
}

impl Default for LiveBus {
    fn default() -> Self {
        Self {
            urgent: broadcast::channel(1024).0,
            bulk: broadcast::channel(1024).0,
        }
    }
}

impl LiveBus {
    pub fn subscribe(&self) -> LiveReceiver {
        LiveReceiver {
            urgent: self.urgent.subscribe(),
            bulk: self.bulk.subscribe(),
        }
    }

    /// Whether any page listens (hints are not worth building otherwise).
    pub fn has_listeners(&self) -> bool {
        self.urgent.receiver_count() > 0
    }

    fn send(&self, hint: Live) {
        let queue = if matches!(hint.kind, "alert" | "review" | "resync") {
            &self.urgent
        } else {
            &self.bulk
        };
        // No receiver is not an error: nobody is watching.
        let _ = queue.send(hint);
    }
}

/// One page's end of the [`LiveBus`].
pub struct LiveReceiver {
    urgent: broadcast::Receiver<Live>,
    bulk: broadcast::Receiver<Live>,
}

impl LiveReceiver {
    /// The next hint, alerts and reviews before anything else waiting. `Lagged` when this page fell behind
    /// on either queue and missed hints.
    pub async fn recv(&mut self) -> Result<Live, broadcast::error::RecvError> {
        tokio::select! {
            biased;
            r = self.urgent.recv() => r,
            r = self.bulk.recv() => r,
        }
    }
}

/// The hints of a batch without repeats: a thousand counts from one agent refresh its pages once.
pub fn dedupe(hints: impl IntoIterator<Item = Live>) -> Vec<Live> {
    let mut seen = HashSet::new();
    hints
        .into_iter()
        .filter(|h| seen.insert(h.clone()))
        .collect()
}

/// The notification channel of this deployment (channels are server-wide, like advisory locks).
fn channel(scope: &str) -> String {
    let clean: String = scope
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("checkpoint_live_{clean}")
}

/// PostgreSQL refuses a notification payload of 8000 bytes or more; hints travel as JSON arrays below this.
const PAYLOAD_MAX: usize = 7000;

/// JSON arrays of hints, each under [`PAYLOAD_MAX`] bytes.
fn payloads(hints: &[Live]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::from("[");
    for h in hints {
        let Ok(one) = serde_json::to_string(h) else {
            continue;
        };
        // A single hint never nears the limit (ids and names are short), but never send one that would.
        if one.len() + 2 > PAYLOAD_MAX {
            continue;
        }
        if cur.len() + one.len() + 2 > PAYLOAD_MAX {
            cur.push(']');
            out.push(std::mem::replace(&mut cur, String::from("[")));
        }
        if cur.len() > 1 {
            cur.push(',');
        }
        cur.push_str(&one);
    }
    if cur.len() > 1 {
        cur.push(']');
        out.push(cur);
    }
    out
}

/// Sends `hints`, without repeats, to every hub when `tx` commits (PostgreSQL). On SQLite, does nothing
/// (the hints are not even built): the caller passes them to its own pages after the commit ([`send_local`]).
pub async fn notify_in(
    tx: &mut Transaction<'_, Any>,
    db: &Db,
    hints: impl IntoIterator<Item = Live>,
) -> Result<(), DbError> {
    if db.backend != Backend::Postgres {
        return Ok(());
    }
    let chan = channel(db.scope());
    for p in payloads(&dedupe(hints)) {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&chan)
            .bind(p)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Passes hints to this hub's pages (SQLite: the only hub).
pub fn send_local(state: &IngestState, hints: Vec<Live>) {
    if !state.live.has_listeners() {
        return;
    }
    for h in hints {
        state.live.send(h);
    }
}

/// A hint for a change already committed (API handlers): to every hub on PostgreSQL, to this one's pages
/// on SQLite. A failed notification is logged: the change stands, pages see it on their next load.
pub async fn announce(db: &Db, state: &IngestState, hint: Live) {
    if db.backend != Backend::Postgres {
        send_local(state, vec![hint]);
        return;
    }
    let chan = channel(db.scope());
    for p in payloads(&[hint]) {
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&chan)
            .bind(p)
            .execute(&db.pool)
            .await
        {
            tracing::warn!(error = %e, "live hint not sent to the other hubs");
        }
    }
}

/// Receives every hub's hints (PostgreSQL) and passes them to this hub's pages, until `stop`. Returns at
/// once on SQLite.
pub async fn relay(
    db: Db,
    state: Arc<IngestState>,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if db.backend != Backend::Postgres {
        return;
    }
    let chan = channel(db.scope());
    let mut wait = Duration::from_millis(250);
    loop {
        let mut listener = match listen(&db, &chan).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "live hints from other hubs: cannot listen; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
                wait = (wait * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        wait = Duration::from_millis(250);
        // Whatever was sent while we were not listening is lost: pages reload.
        send_local(&state, vec![Live::resync()]);
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                _ = stop.changed() => return,
            };
            match next {
                Ok(Some(n)) => {
                    let hints: Vec<Wire> = match serde_json::from_str(n.payload()) {
                        Ok(h) => h,
                        Err(e) => {
                            tracing::warn!(error = %e, "a live notification that is not hints; ignored");
                            continue;
                        }
                    };
                    let hints: Vec<Live> = hints.into_iter().filter_map(Live::from_wire).collect();
                    metrics.live_relayed.inc_by(hints.len() as u64);
                    send_local(&state, hints);
                }
                Ok(None) => {
                    tracing::warn!(
                        "live hints: the listening connection dropped; pages told to reload"
                    );
                    send_local(&state, vec![Live::resync()]);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live hints: listening failed; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn listen(db: &Db, chan: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut l = sqlx::postgres::PgListener::connect(db.url()).await?;
    l.listen(chan).await?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(kind: &'static str, site: &str, id: Option<&str>) -> Live {
        Live {
            kind,
            site: site.into(),
            agent: "a1".into(),
            id: id.map(Into::into),
        }
    }

    #[test]
    fn payloads_stay_under_the_notification_limit_and_keep_every_hint() {
        let hints: Vec<Live> = (0..500)
            .map(|i| {
                hint(
                    "alert",
                    &format!("site-{i}"),
                    Some(&uuid::Uuid::new_v4().to_string()),
                )
            })
            .collect();
        let ps = payloads(&hints);
        assert!(ps.len() > 1, "500 hints do not fit one notification");
        let mut back = Vec::new();
        for p in &ps {
            assert!(p.len() < PAYLOAD_MAX, "{} bytes", p.len());
            let w: Vec<Wire> = serde_json::from_str(p).unwrap();
            back.extend(w.into_iter().filter_map(Live::from_wire));
        }
        assert_eq!(back, hints);
    }

    #[test]
    fn repeats_collapse_but_distinct_alerts_do_not() {
        let d = dedupe([
            hint("count", "s", None),
            hint("count", "s", None),
            hint("alert", "s", Some("x")),
            hint("alert", "s", Some("y")),
        ]);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn unknown_kinds_are_dropped_and_channels_are_identifiers() {
        let w: Wire =
            serde_json::from_str(r#"{"kind":"drop table","site":"s","agent":"a"}"#).unwrap();
        assert!(Live::from_wire(w).is_none());
        assert_eq!(channel("t_AB-c\"d"), "checkpoint_live_t_ab_c_d");
    }

    #[tokio::test]
    async fn a_flood_of_counts_does_not_push_an_alert_out_of_a_slow_page() {
        let bus = LiveBus::default();
        let mut page = bus.subscribe();
        for i in 0..5000 {
            bus.send(hint("count", &format!("s{i}"), None));
        }
        bus.send(hint("alert", "pier", Some("x")));
        for i in 0..5000 {
            bus.send(hint("camera", &format!("s{i}"), None));
        }
        // The alert comes first, then the page learns it missed counts and must reload.
        assert_eq!(page.recv().await.unwrap(), hint("alert", "pier", Some("x")));
        assert!(matches!(
            page.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
