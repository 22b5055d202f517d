//! Prometheus metrics for the hub, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
    /// `new` or `duplicate` (a QoS 1 redelivery, ignored).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Which login limit refused an attempt: `account_address`, `address` or `account`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabel {
    pub scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabel {
    pub site: String,
}

/// An alert's review status: `candidate` (no confirmation yet) or `confirmed_once` (waiting for a second person).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub status: String,
}

pub struct Metrics {
    registry: Registry,
    pub events: Family<KindLabel, Counter>,
    pub rejected: Family<ReasonLabel, Counter>,
    pub ingest_errors: Counter,
    pub ingest_batch_seconds: Histogram,
    /// From an event's timestamp (the agent's clock) to its commit here.
    pub ingest_lag_seconds: Histogram,
    /// 1 on the hub that runs the jobs that must run once (`cluster::Leadership`).
    pub leader: Gauge,
    /// Live hints from other hubs (PostgreSQL NOTIFY) passed on to this hub's pages.
    pub live_relayed: Counter,
    pub mqtt_connected: Gauge,
    pub agents: Family<ReasonLabel, Gauge>,
    /// Alerts waiting for a reviewer, by status.
    pub alerts_awaiting_review: Family<StatusLabel, Gauge>,
    /// How long the oldest of them has waited, seconds (0 when none waits).
    pub alerts_awaiting_review_oldest_seconds: Family<StatusLabel, Gauge>,
    pub http_requests: Family<RouteLabel, Counter>,
    /// By reason: bad_credentials, throttled, too_long, agent_account, busy.
    pub logins_refused: Family<ReasonLabel, Counter>,
    pub logins_throttled: Family<ScopeLabel, Counter>,
    pub password_hashes_in_flight: Gauge,
    pub live_clients: Gauge,
    pub broker_logins_refused: Counter,
    pub broker_up: Gauge,
    pub broker_restarts: Counter,
    pub audit_checkpoints: Counter,
    pub audit_checkpoint_errors: Counter,
    pub audit_checkpoint_seq: Gauge,
    /// People on site, computed at the hub (src/occupancy.rs); absent while a site is not set up or its
    /// count is faulty.
    pub site_occupancy: Family<SiteLabel, Gauge>,
    /// 1 while a site's occupancy is negative: a counting fault.
    pub site_occupancy_fault: Family<SiteLabel, Gauge>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("checkpoint_hub");
        let m = Self {
            events: Family::default(),
            rejected: Family::default(),
            ingest_errors: Counter::default(),
            ingest_batch_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            ingest_lag_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            leader: Gauge::default(),
            live_relayed: Counter::default(),
            mqtt_connected: Gauge::default(),
            agents: Family::default(),
            alerts_awaiting_review: Family::default(),
            alerts_awaiting_review_oldest_seconds: Family::default(),
            http_requests: Family::default(),
            logins_refused: Family::default(),
            logins_throttled: Family::default(),
            password_hashes_in_flight: Gauge::default(),
            live_clients: Gauge::default(),
            broker_logins_refused: Counter::default(),
            broker_up: Gauge::default(),
            broker_restarts: Counter::default(),
            audit_checkpoints: Counter::default(),
            audit_checkpoint_errors: Counter::default(),
            audit_checkpoint_seq: Gauge::default(),
            site_occupancy: Family::default(),
            site_occupancy_fault: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events",
            "Events ingested, by kind and outcome",
            m.events.clone(),
        );
        registry.register(
            "ingest_lag_seconds",
            "Seconds from an event's timestamp (the agent's clock) to its commit at this hub",
            m.ingest_lag_seconds.clone(),
        );
        registry.register(
            "leader",
            "1 on the hub that runs the jobs that must run once (retention, watchlist push, stale agents, audit checkpoints)",
            m.leader.clone(),
        );
        registry.register(
            "live_relayed",
            "Live hints received from the database's notifications (all hubs' commits) and passed to this hub's pages",
            m.live_relayed.clone(),
        );
        registry.register(
            "events_rejected",
            "Messages refused at ingest, by reason",
            m.rejected.clone(),
        );
        registry.register(
            "ingest_errors",
            "Database errors while storing a batch (the batch is retried)",
            m.ingest_errors.clone(),
        );
        registry.register(
            "ingest_batch_seconds",
            "Time to validate, store and acknowledge one batch",
            m.ingest_batch_seconds.clone(),
        );
        registry.register(
            "mqtt_connected",
            "1 while ingest is connected to the broker",
            m.mqtt_connected.clone(),
        );
        registry.register("agents", "Agents by state", m.agents.clone());
        registry.register(
            "alerts_awaiting_review",
            "Candidate alerts waiting for a reviewer: status candidate (none yet) or confirmed_once (a second person needed)",
            m.alerts_awaiting_review.clone(),
        );
        registry.register(
            "alerts_awaiting_review_oldest_seconds",
            "Seconds the oldest alert of each review status has waited (0 when none waits)",
            m.alerts_awaiting_review_oldest_seconds.clone(),
        );
        registry.register(
            "live_clients",
            "Open live-update streams (web UI pages)",
            m.live_clients.clone(),
        );
        registry.register(
            "broker_logins_refused",
            "MQTT logins the hub's own broker refused",
            m.broker_logins_refused.clone(),
        );
        registry.register(
            "broker_up",
            "1 while the hub's own broker (Mosquitto, [mqtt] embedded) runs",
            m.broker_up.clone(),
        );
        registry.register(
            "broker_restarts",
            "Times the hub restarted its own broker after it stopped",
            m.broker_restarts.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by status code",
            m.http_requests.clone(),
        );
        registry.register(
            "logins_refused",
            "Logins refused, by reason (bad_credentials, throttled, too_long, agent_account, busy)",
            m.logins_refused.clone(),
        );
        registry.register(
            "audit_checkpoints",
            "Checkpoints of the audit chain's head written",
            m.audit_checkpoints.clone(),
        );
        registry.register(
            "audit_checkpoint_errors",
            "Audit checkpoints that could not be written (file or database error)",
            m.audit_checkpoint_errors.clone(),
        );
        registry.register(
            "audit_checkpoint_seq",
            "Last audit entry sealed by a checkpoint",
            m.audit_checkpoint_seq.clone(),
        );
        registry.register(
            "logins_throttled",
            "Logins refused by a login limit before their password was checked, by the limit's scope",
            m.logins_throttled.clone(),
        );
        registry.register(
            "password_hashes_in_flight",
            "Argon2 password hashes running now (bounded by [http] password_hash_threads)",
            m.password_hashes_in_flight.clone(),
        );
        registry.register(
            "site_occupancy",
            "People on site: starting occupancy plus entries minus exits over the boundary lines since the last reset, computed at the hub (absent while the site is not set up or its count is faulty)",
            m.site_occupancy.clone(),
        );
        registry.register(
            "site_occupancy_fault",
            "1 while the site's occupancy comes out negative: a counting fault (the dashboard names the lines)",
            m.site_occupancy_fault.clone(),
        );
        Self { registry, ..m }
    }

    pub fn ingested(&self, kind: &str, new: bool) {
        self.events
            .get_or_create(&KindLabel {
                kind: kind.into(),
                outcome: if new { "new" } else { "duplicate" }.into(),
            })
            .inc();
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn login_refused(&self, reason: &str) {
        self.logins_refused
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
