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
    /// For an external Mosquitto: write its password_file (`passwd`), acl_file (`acl`) and the settings that
    /// make them hold (`checkpoint.conf`: its lines go into mosquitto.conf after the `listener` line). Covers the agents'
    /// accounts and the hub's two logins ([mqtt] username and `<username>-sync`, both with [mqtt] password).
    BrokerFiles {
        #[arg(long)]
        out: PathBuf,
    },
    /// The watchlist-signing key agents trust (`[watchlist] hub_public_keys`).
    SyncKey {
        #[command(subcommand)]
        action: SyncKeyCmd,
    },
    /// Watchlist tools.
    Watchlist {
        #[command(subcommand)]
        action: WatchlistCmd,
    },
}

#[derive(Subcommand)]
enum SyncKeyCmd {
    /// Print the current public key (and the staged one, if any).
    Show,
    /// Make the next key and print its public half: add it to every agent's hub_public_keys, then `activate`.
    Stage,
    /// Sign with the staged key from now on (restart the hub). Old syncs stay valid for agents that list the old
    /// key too; remove it from them once every agent is in sync.
    Activate,
}

#[derive(Subcommand)]
enum WatchlistCmd {
    /// Write the signed full watchlist of one agent to a file, to carry to a site the hub cannot reach
    /// (`edge-agent watchlist import` checks the signature).
    Export {
        #[arg(long)]
        site: String,
        #[arg(long)]
        agent: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AgentCmd {
    /// Create an agent's broker account (username `<site>.<agent>`) or give it a new password. Prints the
    /// password once (put it in the agent's `[mqtt] password_file`) and the hub's public key (the agent's
    /// `[watchlist] hub_public_keys`).
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
    /// Recompute the keyed hash chain and compare it with every checkpoint; exit status 1 when it is
    /// broken, edited, recomputed or shortened.
    Verify,
    /// Seal the chain's current head in the checkpoint file now.
    Checkpoint,
    /// Retire the audit key and key the chain with a new one from the next entry (the hub must be stopped).
    RotateKey,
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
            AuditLog::open(db, &cfg.audit_files())
                .await?
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
            AuditLog::open(db, &cfg.audit_files())
                .await?
                .append("cli", "agent.credentials", &user, "")
                .await?;
            let key = central_hub::keys::load_or_create(&cfg.data_dir)?;
            println!("username {user}");
            println!("password {password}");
            println!("hub_public_key {}", key.public_key());
            eprintln!(
                "The password is shown once. In the agent's site.toml:\n\n[mqtt]\nusername = \"{user}\"\n\
                 password_file = \"/etc/checkpoint/mqtt-password\"  # a file holding only the password, mode 0600\n\n\
                 [watchlist]\nhub_public_keys = [\"{}\"]\n\n\
                 The hub's own broker takes the new login within seconds; for an external Mosquitto run \
                 `central-hub broker-files` again and reload it.",
                key.public_key()
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
            AuditLog::open(db, &cfg.audit_files())
                .await?
                .append("cli", "agent.deactivate", &user, "")
                .await?;
            println!("agent account {user} deactivated");
            eprintln!(
                "The hub's own broker drops its login within seconds; for an external Mosquitto run \
                 `central-hub broker-files` again and reload it."
            );
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
            AuditLog::open(db, &cfg.audit_files())
                .await?
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
            let hub_user = cfg.mqtt.connection.username.clone().context(
                "hub.toml needs [mqtt] username and password (or password_file): the hub's own broker account",
            )?;
            let hub_password = cfg
                .mqtt_password()?
                .context("hub.toml needs [mqtt] password or password_file")?;
            use central_hub::broker::mosquitto;
            let db = Db::open(&cfg.database_url(), 1).await?;
            let agents = mosquitto::agent_accounts(&db).await?;
            let sync_user = mosquitto::sync_username(&hub_user);
            let hub = mosquitto::hub_logins(&hub_user, &sync_user, &hub_password);
            std::fs::create_dir_all(&out)?;
            let out = std::path::absolute(&out)?;
            let (passwd, acl) = (out.join("passwd"), out.join("acl"));
            write_private(&passwd, &mosquitto::password_file(&hub, &agents))?;
            write_private(&acl, &mosquitto::acl_file(&hub_user, &sync_user, &agents))?;
            write_private(
                &out.join("checkpoint.conf"),
                &mosquitto::required_settings(
                    &passwd.display().to_string(),
                    &acl.display().to_string(),
                ),
            )?;
            println!(
                "wrote {}, {} and {}: add checkpoint.conf's lines to mosquitto.conf after its `listener` line \
                 (not with include_dir: Mosquitto reads those files before the listener and then opens a default \
                 listener on 1883 too) and reload Mosquitto (SIGHUP); rerun after adding or deactivating agents",
                passwd.display(),
                acl.display(),
                out.join("checkpoint.conf").display()
            );
        }
        Command::SyncKey { action } => {
            let print = |label: &str, k: &checkpoint_protocol::signed::SyncSigner| {
                println!("{label} {} (key id {})", k.public_key(), k.key_id())
            };
            match action {
                SyncKeyCmd::Show => {
                    print(
                        "current",
                        &central_hub::keys::load_or_create(&cfg.data_dir)?,
                    );
                    if let Some(k) = central_hub::keys::staged(&cfg.data_dir)? {
                        print("staged", &k);
                    }
                }
                SyncKeyCmd::Stage => print("staged", &central_hub::keys::stage(&cfg.data_dir)?),
                SyncKeyCmd::Activate => {
                    print("current", &central_hub::keys::activate(&cfg.data_dir)?);
                    eprintln!("restart the hub to sign with it");
                }
            }
        }
        Command::Watchlist {
            action: WatchlistCmd::Export { site, agent, out },
        } => {
            let db = Db::open(&cfg.database_url(), 1).await?;
            let key = central_hub::keys::load_or_create(&cfg.data_dir)?;
            let rules = central_hub::watchlists::SyncRules {
                policies: central_hub::policies::current(&db, cfg.watchlist.policies()).await?,
                ..cfg.watchlist.rules()
            };
            let msg = central_hub::watchlists::sync_message(&db, &site, 0, true, rules).await?;
            let bytes = key.sign(&site, &agent, serde_json::to_string(&msg)?);
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            AuditLog::open(db, &cfg.audit_files())
                .await?
                .append(
                    "cli",
                    "watchlist.export",
                    &format!("{site}/{agent}"),
                    &msg.version().to_string(),
                )
                .await?;
            println!(
                "wrote {} (version {}, {} bytes), signed for {site}/{agent} with key {}",
                out.display(),
                msg.version(),
                bytes.len(),
                key.key_id()
            );
        }
        Command::Audit {
            action: AuditCmd::Verify,
        } => {
            let db = Db::open(&cfg.database_url(), 1).await?;
            let check = AuditLog::for_verify(db, &cfg.audit_files())?
                .verify()
                .await?;
            let sealed = match &check.last_checkpoint {
                Some(c) => format!(
                    "; {} checkpoints, the last sealing entry {}",
                    check.checkpoints, c.seq
                ),
                None => "; no checkpoint yet".to_string(),
            };
            if check.ok {
                println!(
                    "audit chain intact: {} entries, head {}, keyed from entry {}{sealed}",
                    check.entries,
                    check.head,
                    check
                        .keyed_from_seq
                        .map_or("(not keyed yet)".to_string(), |s| s.to_string()),
                );
            } else {
                println!(
                    "audit chain BROKEN at entry {}: {} ({} entries verified before it{sealed})",
                    check
                        .first_bad_seq
                        .map_or("-".to_string(), |s| s.to_string()),
                    check.problem.unwrap_or_default(),
                    check.entries
                );
                return Ok(std::process::ExitCode::from(1));
            }
        }
        Command::Audit {
            action: AuditCmd::Checkpoint,
        } => {
            let db = Db::open(&cfg.database_url(), 1).await?;
            match AuditLog::open(db, &cfg.audit_files())
                .await?
                .checkpoint()
                .await?
            {
                Some(c) => println!("checkpoint written: entry {}, head {}", c.seq, c.head),
                None => println!("nothing to seal"),
            }
        }
        Command::Audit {
            action: AuditCmd::RotateKey,
        } => {
            let db = Db::open(&cfg.database_url(), 1).await?;
            let id = AuditLog::rotate_key(db, &cfg.audit_files()).await?;
            println!(
                "audit key rotated: new key {id}; the old one is kept beside it as {}.<id>.retired",
                cfg.audit_files().key_file.display()
            );
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
