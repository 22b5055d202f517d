//! `central-hub`: receives agents' events, holds identity records and runs the review workflow.
//!
//! Not built yet: this milestone delivers the edge agent. The binary exists so the workspace shows the product's
//! two deployables, and it says plainly that it cannot serve anything yet instead of pretending to.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "central-hub",
    version,
    about = "Checkpoint central hub (not yet built)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and MQTT (not available yet).
    Serve,
}

fn main() -> std::process::ExitCode {
    let _ = Cli::parse();
    eprintln!(
        "central-hub: not implemented yet; this build contains the edge agent only (see README.md)"
    );
    std::process::ExitCode::from(2)
}
