//! The Checkpoint central hub: receives the edge agents' events over MQTT, stores them (SQLite by default,
//! PostgreSQL at scale), and serves operators through an HTTP API with roles and an audit log.
//!
//! Modules follow the domain: `ingest` (broker to database, exactly once in effect), `auth` (users, roles,
//! sessions), `audit` (hash-chained log), `api` (HTTP), `web` (the operators' UI, built in), `serve` (wiring,
//! periodic jobs), `broker` (agent accounts, the hub's own Mosquitto), `keys` (the watchlist-signing key).

pub mod api;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod config;
pub mod db;
pub mod exams;
pub mod faces;
pub mod ingest;
pub mod keys;
pub mod lodging;
pub mod metrics;
pub mod policies;
pub mod records;
pub mod review;
pub mod serve;
pub mod text;
pub mod watchlists;
pub mod web;
