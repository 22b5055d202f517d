//! The hub end to end, one test binary: the real `central-hub` binary with its embedded Mosquitto, the
//! machine's Mosquitto and PostgreSQL, agents as real processes or as MQTT clients. Each module was its own
//! binary before; run one with `cargo test -p checkpoint-e2e --test hub MODULE::`.

mod broker_acl;
mod broker_restart;
mod cluster;
mod dashboard;
mod exams;
mod flow;
mod ingest_crash;
mod lodging;
mod occupancy;
mod security_http;
mod security_mqtt;
mod security_review;
mod watchlist;
