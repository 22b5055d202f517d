//! The Checkpoint central hub: receives the edge agents' events over MQTT, stores them (SQLite by default,
//! PostgreSQL at scale), and serves operators through an HTTP API with roles and an audit log.
//!
//! Modules follow the domain: `ingest` (broker to database, exactly once in effect), `auth` (users, roles,
//! sessions; `login_limit`, `hashing` and `login_audit` guard sign-in), `audit` (hash-chained log), `api`
//! (HTTP), `http_server` and `tls` (the listener), `web` (the operators' UI, built in), `serve` (wiring,
//! periodic jobs), `broker` (agent accounts, the hub's own Mosquitto), `keys` (the watchlist-signing key),
//! `occupancy` (each site's occupancy from its boundary lines' crossings, with its starting figure and reset),
//! `agents` (agent and camera health), `counts` (per-line counts), `alerts` (candidate alerts; `review` runs
//! their two-person review). Each table has one owning module: the map is in `db`'s documentation.

pub mod agents;
pub mod alerts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod counts;
pub mod db;
pub mod exams;
pub mod faces;
pub mod hashing;
pub mod http_server;
pub mod ingest;
pub mod keys;
pub mod live;
pub mod lodging;
pub mod login_audit;
pub mod login_limit;
pub mod metrics;
pub mod occupancy;
pub mod policies;
pub mod private_files;
pub mod records;
pub mod review;
pub mod serve;
pub mod text;
pub mod tls;
pub mod watchlists;
pub mod web;
