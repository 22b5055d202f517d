//! The Checkpoint edge agent as a library, so the binary, the benchmarks and the end-to-end tests share it.
pub mod agent;
pub mod analysis;
pub mod config;
pub mod count;
pub mod delivery;
pub mod events;
pub mod faces;
pub mod http;
pub mod load;
pub mod metrics;
pub mod outbox;
pub mod publish;
pub mod tally;
pub mod track;
pub mod watchlist;
