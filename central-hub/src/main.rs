//! `central-hub`: the Checkpoint central hub.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use central_hub::audit::AuditLog;
use central_hub::auth::{Auth, Role};
use central_hub::config::HubConfig;
use central_hub::db::Db;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "central-hub",
    version,
    about = "Checkpoint central hub: events, records, watchlists, review, audit"
)]
struct Cli {
    /// Log format: `text` for people, `json` for log shippers.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// hub.toml; without it: embedded broker on 127.0.0.1:1883, SQLite in ./data, HTTP on 127.0.0.1:8080.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and MQTT until Ctrl-C.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserCmd,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// Broker accounts of edge agents.
    Agent {
        #[command(subcommand)]
        action: AgentCmd,
    },
    /// Citizen records.
    Person {
        #[command(subcommand)]
        action: PersonCmd,
    },
    /// Write Mosquitto's password_file (`passwd`) and acl_file (`acl`) for the agents' accounts and the hub's
    /// own ([mqtt] username/password in hub.toml) into a folder.
    BrokerFiles {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AgentCmd {
    /// Create an agent's broker account (username `<site>.<agent>`) or give it a new password. The password is
    /// printed once: put it in the agent's `[mqtt] password_file`.
    Add {
        #[arg(long)]
        site: String,
        #[arg(long)]
        agent: String,
    },
    /// Turn an agent's broker account off (its `active` flag; the row stays, and `agent add` turns it on
    /// again with a new password). Regenerate Mosquitto's files with `broker-files` afterwards.
    Deactivate {
        #[arg(long)]
        site: String,
        #[arg(long)]
        agent: String,
    },
}

#[derive(Subcommand)]
enum PersonCmd {
    /// Import a CSV of citizen records (columns cccd, full_name, date_of_birth, gender, address and
    /// optionally photo). With --photos, each row's photo file under that folder is enrolled too. Prints one
    /// line per refused row or photo; exit status 1 when any was refused.
    Import {
        #[arg(long)]
        csv: PathBuf,
        /// Folder the `photo` column's file names are in.
        #[arg(long)]
        photos: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user. The password is read from --password-file, else $CHECKPOINT_PASSWORD, else the first
    /// line of standard input.
    Add {
        #[arg(long)]
        username: String,
        /// admin, supervisor, operator, lodging_staff or exam_staff (agents: `central-hub agent add`).
        #[arg(long)]
        role: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recompute the hash chain; exit status 1 when it is broken.
    Verify,
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHECKPOINT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files, journald or a shipper's input.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("central-hub: error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match rt.block_on(real_main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("central-hub: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn real_main(cli: Cli) -> Result<std::process::ExitCode> {
    let cfg = HubConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => {
            central_hub::serve::serve(cfg).await?;
        }
        Command::Migrate => {
            let url = cfg.database_url();
            Db::open(&url, 1).await?;
            println!("{}: schema up to date", central_hub::db::redact(&url));
        }
        Command::User {
            action:
                UserCmd::Add {
                    username,
                    role,
                    display_name,
                    password_file,
                },
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!(
                    "--role {role}: use admin, supervisor, operator, lodging_staff or exam_staff"
                )
            })?;
            let password = match (password_file, std::env::var("CHECKPOINT_PASSWORD")) {
                (Some(f), _) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
                (None, Ok(p)) => p,
                (None, Err(_)) => {
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if password.is_empty() {
                bail!(
                    "no password given (--password-file, $CHECKPOINT_PASSWORD or standard input)"
                );
            }
            let db = Db::open(&cfg.database_url(), 1).await?;
            let auth = Auth::new(db.clone(), cfg.http.session_hours, cfg.http.login_attempts);
            let user = auth
                .create_user(
                    &username,
                    display_name.as_deref().unwrap_or(&username),
                    &password,
                    role,
                )
                .await?;
            AuditLog::new(db)
                .append("cli", "user.create", &user.username, role.as_str())
                .await?;
            println!("user {} ({}) created", user.username, role.as_str());
        }
        Command::Agent {
            action: AgentCmd::Add { site, agent },
        } => {
            let db = Db::open(&cfg.database_url(), 1).await?;
            let (user, password) = central_hub::broker::add_agent(&db, &site, &agent)
                .await
                .context("--site and --agent must be the agent's ids (a-z, 0-9, '-', '_')")?;
            AuditLog::new(db)
                .append("cli", "agent.credentials", &user, "")
                .await?;
            println!("username {user}");
            println!("password {password}");
            eprintln!(
                "(shown once; run `central-hub broker-files` again when the broker is Mosquitto)"
            );
        }
        Command::Agent {
            action: AgentCmd::Deactivate { site, agent },
        } => {
            let db = Db::open(&cfg.database_url(), 1).await?;
            let user = central_hub::broker::agent_username(&site, &agent);
            if !central_hub::auth::set_agent_active(&db, &user, false).await? {
                bail!("no agent account {user} (see `central-hub agent add`)");
            }
            AuditLog::new(db)
                .append("cli", "agent.deactivate", &user, "")
                .await?;
            println!("agent account {user} deactivated");
            eprintln!("(run `central-hub broker-files` again when the broker is Mosquitto)");
        }
        Command::Person {
            action: PersonCmd::Import { csv, photos },
        } => {
            let text = std::fs::read(&csv).with_context(|| format!("reading {}", csv.display()))?;
            let faces = match &photos {
                Some(_) => Some(std::sync::Arc::new(
                    central_hub::faces::FaceEngine::load(
                        cfg.faces.models_dir.clone(),
                        cfg.faces.runtime.clone(),
                    )
                    .context("--photos needs the face models (python3 models/fetch.py)")?,
                )),
                None => None,
            };
            let db = Db::open(&cfg.database_url(), 2).await?;
            let out =
                central_hub::records::import_csv(&db, faces.as_ref(), &text, photos.as_deref())
                    .await?;
            if let Some(e) = &out.error {
                bail!("{}: {e}", csv.display());
            }
            AuditLog::new(db)
                .append(
                    "cli",
                    "person.import",
                    &csv.display().to_string(),
                    &format!(
                        "{} imported, {} updated, {} photos, {} refused",
                        out.imported,
                        out.updated,
                        out.photos,
                        out.rejected.len()
                    ),
                )
                .await?;
            for r in &out.rejected {
                println!("line {}: {}", r.line, r.reason);
            }
            println!(
                "{} imported, {} updated, {} photos enrolled, {} refused",
                out.imported,
                out.updated,
                out.photos,
                out.rejected.len()
            );
            if !out.rejected.is_empty() {
                return Ok(std::process::ExitCode::from(1));
            }
        }
        Command::BrokerFiles { out } => {
            let hub_user = cfg.mqtt.username.clone().context(
                "hub.toml needs [mqtt] username and password (or password_file): the hub's own broker account",
            )?;
            let hub_password = cfg
                .mqtt_password()?
                .context("hub.toml needs [mqtt] password or password_file")?;
            let db = Db::open(&cfg.database_url(), 1).await?;
            let (passwd, acl) =
                central_hub::broker::mosquitto_files(&db, &hub_user, &hub_password).await?;
            std::fs::create_dir_all(&out)?;
            write_private(&out.join("passwd"), &passwd)?;
            std::fs::write(out.join("acl"), acl)?;
            println!(
                "wrote {} and {}; point Mosquitto's password_file and acl_file at them and reload it",
                out.join("passwd").display(),
                out.join("acl").display()
            );
        }
        Command::Audit {
            action: AuditCmd::Verify,
        } => {
            let db = Db::open(&cfg.database_url(), 1).await?;
            let check = AuditLog::new(db).verify().await?;
            if check.ok {
                println!(
                    "audit chain intact: {} entries, head {}",
                    check.entries, check.head
                );
            } else {
                println!(
                    "audit chain BROKEN at entry {}: {} ({} entries verified before it)",
                    check.first_bad_seq.unwrap_or(0),
                    check.problem.unwrap_or_default(),
                    check.entries
                );
                return Ok(std::process::ExitCode::from(1));
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Writes a file only its owner can read (it holds password hashes).
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
