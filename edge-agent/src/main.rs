//! `edge-agent`: the Checkpoint edge agent.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use edge_agent::config::Config;
use edge_agent::metrics::Metrics;

#[derive(Parser)]
#[command(
    name = "edge-agent",
    version,
    about = "Checkpoint edge agent: cameras in, counts and face matches out"
)]
struct Cli {
    /// Log format: `text` for people, `json` for log shippers.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent on the cameras of a site configuration.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a site configuration and exit (0 when valid).
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Detect and embed faces in still images (enrolment tooling, debugging).
    Faces {
        /// One JSON object per image per line.
        #[arg(long)]
        json: bool,
        /// Execution provider: cpu, cuda, tensorrt or auto.
        #[arg(long, default_value = "cpu")]
        provider: String,
        /// Folder with the model weights (default: models/weights found upwards).
        #[arg(long)]
        models: Option<PathBuf>,
        /// Minimum face score.
        #[arg(long, default_value_t = 0.6)]
        score: f32,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHECKPOINT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edge-agent: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn real_main(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Check { config } => {
            let cfg = Config::load(&config)?;
            println!(
                "{}: valid ({} camera(s))",
                config.display(),
                cfg.cameras.len()
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Faces {
            json,
            provider,
            models,
            score,
            images,
        } => {
            let rt = checkpoint_vision::Runtime::init(checkpoint_vision::RuntimeOptions {
                provider: provider.parse()?,
                ..Default::default()
            })?;
            let dir = models.unwrap_or_else(checkpoint_vision::manifest::default_dir);
            let mut det = checkpoint_vision::FaceDetector::load(
                rt,
                &checkpoint_vision::manifest::resolve("yunet", None, &dir)?,
                checkpoint_vision::FaceDetectorOptions {
                    score_threshold: score,
                    ..Default::default()
                },
            )?;
            let mut emb = checkpoint_vision::FaceEmbedder::load(
                rt,
                &checkpoint_vision::manifest::resolve("sface", None, &dir)?,
            )?;
            let failed = edge_agent::faces::run(
                &images,
                json,
                &mut det,
                &mut emb,
                &mut std::io::stdout().lock(),
            )?;
            // Every image gets its line; the exit status tells scripts whether any of them failed.
            Ok(if failed == 0 {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            })
        }
        Command::Run { config } => {
            let cfg = Config::load(&config)?;
            let metrics = Arc::new(Metrics::new());
            let stop = Arc::new(AtomicBool::new(false));
            let http =
                edge_agent::http::serve(&cfg.agent.metrics_listen, metrics.clone(), stop.clone())
                    .context("starting the metrics endpoint")?;
            if let Some(addr) = &http {
                tracing::info!(%addr, "metrics on http://{addr}/metrics");
            }
            let s = stop.clone();
            ctrlc_handler(move || s.store(true, Ordering::Relaxed))?;
            edge_agent::agent::run(cfg, stop, metrics)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// SIGINT and SIGTERM request a clean stop (counts flushed, offline status sent); a second one exits at once.
fn ctrlc_handler(f: impl Fn() + Send + 'static) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot watch SIGTERM");
                            return;
                        }
                    };
                for n in 0.. {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = term.recv() => {},
                    }
                    if n > 0 {
                        std::process::exit(130);
                    }
                    tracing::info!("stopping (again to force)");
                    f();
                }
            });
        })?;
    Ok(())
}
