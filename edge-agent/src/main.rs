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
    /// Inspect or change the watchlist held on this machine (stop the agent first; sites with a hub get
    /// their lists from it).
    Watchlist {
        #[command(subcommand)]
        action: WatchlistCmd,
    },
}

#[derive(Subcommand)]
enum WatchlistCmd {
    /// List the entries held (ids, lists, labels, expiry; never templates).
    Show {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Add (or replace) an entry from one or more photos of the person.
    #[command(alias = "enroll")]
    Enrol {
        #[arg(long, short)]
        config: PathBuf,
        /// Entry id, unique on this site.
        #[arg(long)]
        id: String,
        /// `wanted` or `missing`.
        #[arg(long)]
        list: String,
        /// Name or description the operator sees.
        #[arg(long)]
        label: String,
        #[arg(long)]
        case_ref: String,
        /// The legal instrument that allows matching this person (required).
        #[arg(long)]
        legal_basis: String,
        /// Issuing officer or unit.
        #[arg(long)]
        issued_by: String,
        /// When the entry stops matching, RFC 3339 (e.g. 2027-01-31T00:00:00Z).
        #[arg(long, conflicts_with = "days")]
        expires: Option<String>,
        /// Or: days from now until it stops matching.
        #[arg(long)]
        days: Option<u32>,
        #[arg(required = true)]
        photos: Vec<PathBuf>,
    },
    /// Remove entries by id.
    Remove {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Decide the faces of still images against the list held, by the rule the agent applies to one face.
    Match {
        #[arg(long, short)]
        config: PathBuf,
        /// One JSON object per image per line.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Apply a sync message from a file, e.g. carried to an offline site: the signed message
    /// `central-hub watchlist export` writes for this agent, checked against `[watchlist] hub_public_keys`.
    Import {
        #[arg(long, short)]
        config: PathBuf,
        /// Accept a plain, unsigned sync message (logged as such): for sites without a hub.
        #[arg(long)]
        unsigned: bool,
        file: PathBuf,
    },
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHECKPOINT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files, journald or a shipper's input.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
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
        Command::Watchlist { action } => watchlist_cmd(action),
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

fn watchlist_cmd(action: WatchlistCmd) -> Result<std::process::ExitCode> {
    use edge_agent::watchlist::{
        enrol, list_name, parse_sync, ListKind, SyncMessage, WatchlistEntry, WatchlistStore,
    };
    let open = |config: &PathBuf| -> Result<(Config, WatchlistStore)> {
        let cfg = Config::load(config)?;
        let store = WatchlistStore::open(&cfg.watchlist.dir)
            .with_context(|| format!("opening the watchlist in {}", cfg.watchlist.dir.display()))?;
        Ok((cfg, store))
    };
    let now = time::OffsetDateTime::now_utc();
    let report = |o: edge_agent::watchlist::ApplyOutcome| {
        println!(
            "watchlist version {} -> {}: {} added, {} replaced, {} removed, {} expired; {} entries held",
            o.previous_version,
            o.version,
            o.added.len(),
            o.replaced.len(),
            o.removed.len() + o.expired.len(),
            o.dropped_expired.len(),
            o.entries
        );
    };
    match action {
        WatchlistCmd::Show { config } => {
            let (cfg, store) = open(&config)?;
            let t = store.thresholds();
            println!(
                "{}: version {}, {} entries (thresholds: wanted {}, missing {})",
                cfg.watchlist.dir.display(),
                store.version(),
                store.len(),
                t.wanted,
                t.missing
            );
            for e in store.entries() {
                println!(
                    "  {:<16} {:<8} {:<32} case {:<16} expires {} ({} template(s))",
                    e.id,
                    list_name(e.list),
                    e.label,
                    e.case_ref,
                    e.expires_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    e.templates.len()
                );
            }
        }
        WatchlistCmd::Match {
            config,
            json,
            images,
        } => {
            let cfg = Config::load(&config)?;
            // Read without the store's lock: a running agent keeps its list, and this only reads it.
            let handle = WatchlistStore::read_only(&cfg.watchlist.dir).with_context(|| {
                format!("reading the watchlist in {}", cfg.watchlist.dir.display())
            })?;
            let rt = checkpoint_vision::Runtime::init(cfg.runtime.clone())?;
            let models = edge_agent::agent::load_models(&cfg, false, rt)?;
            let (mut det, mut emb) = (models.faces, models.embedder);
            let emb = emb.as_mut().context(
                "detection.embed_faces is off in this config: matching needs the face embedder",
            )?;
            let failed = edge_agent::watchlist::stills::run(
                &images,
                json,
                handle,
                &mut det,
                emb,
                &mut std::io::stdout().lock(),
            )?;
            if failed > 0 {
                // Every image got its line; the status tells scripts that some could not be read.
                return Ok(std::process::ExitCode::from(1));
            }
        }
        WatchlistCmd::Enrol {
            config,
            id,
            list,
            label,
            case_ref,
            legal_basis,
            issued_by,
            expires,
            days,
            photos,
        } => {
            let (cfg, mut store) = open(&config)?;
            let Some(list) = ListKind::parse(&list) else {
                anyhow::bail!("--list must be `wanted` or `missing`, not `{list}`")
            };
            let expires_at = match (expires, days) {
                (Some(s), _) => {
                    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                        .with_context(|| format!("--expires {s}: not an RFC 3339 time"))?
                }
                (None, Some(d)) => now + time::Duration::days(d.into()),
                (None, None) => {
                    anyhow::bail!("an entry needs an expiry: --expires RFC3339 or --days N")
                }
            };
            let rt = checkpoint_vision::Runtime::init(cfg.runtime.clone())?;
            let agent_models = edge_agent::agent::load_models(&cfg, false, rt)?;
            let (mut det, mut emb) = (agent_models.faces, agent_models.embedder);
            let emb = emb.as_mut().context(
                "detection.embed_faces is off in this config: enrolment needs the face embedder",
            )?;
            let mut templates = Vec::new();
            let mut failed = Vec::new();
            for p in &photos {
                match enrol::template_from_photo(p, &mut det, emb) {
                    Ok(t) => templates.push(t),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            for f in &failed {
                eprintln!("edge-agent: photo refused: {f}");
            }
            if !failed.is_empty() {
                anyhow::bail!(
                    "{} of {} photo(s) refused; nothing was enrolled",
                    failed.len(),
                    photos.len()
                );
            }
            let version = store.version();
            let o = store.apply(
                SyncMessage::Delta {
                    base_version: version,
                    version: enrol::next_version(version, now),
                    add: vec![WatchlistEntry {
                        id,
                        list,
                        label,
                        case_ref,
                        legal_basis,
                        issued_by,
                        expires_at,
                        templates,
                    }],
                    remove: vec![],
                    expire: vec![],
                    // A list kept on site alone still holds its false-alert target as it grows: the
                    // default policies, unless a hub's sync set others.
                    policies: Some(store.snapshot().set().policies.unwrap_or_default()),
                    thresholds: None,
                },
                now,
            )?;
            report(o);
        }
        WatchlistCmd::Remove { config, ids } => {
            let (_, mut store) = open(&config)?;
            let version = store.version();
            let o = store.apply(
                SyncMessage::Delta {
                    base_version: version,
                    version: enrol::next_version(version, now),
                    add: vec![],
                    remove: ids,
                    expire: vec![],
                    policies: None,
                    thresholds: None,
                },
                now,
            )?;
            report(o);
        }
        WatchlistCmd::Import {
            config,
            unsigned,
            file,
        } => {
            let (cfg, mut store) = open(&config)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            if bytes.len() > cfg.watchlist.max_sync_bytes {
                anyhow::bail!(
                    "{}: {} bytes, over [watchlist] max_sync_bytes ({})",
                    file.display(),
                    bytes.len(),
                    cfg.watchlist.max_sync_bytes
                );
            }
            let inner = if unsigned {
                tracing::warn!(file = %file.display(), "importing an UNSIGNED watchlist (--unsigned): its origin is not checked");
                bytes
            } else {
                let trust = edge_agent::watchlist::SyncTrust {
                    keys: cfg.watchlist.hub_keys(),
                    site: cfg.site.id.clone(),
                    agent: cfg.agent.id.clone(),
                };
                trust
                    .open(&bytes)
                    .map_err(|(_, why)| {
                        anyhow::anyhow!("{}: {why} (a plain file needs --unsigned)", file.display())
                    })?
                    .into_bytes()
            };
            let msg = parse_sync(&inner, cfg.watchlist.max_sync_bytes)
                .with_context(|| format!("{}", file.display()))?;
            report(store.apply(msg, now)?);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
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
