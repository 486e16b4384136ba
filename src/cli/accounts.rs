//! `hearth user …` and `hearth audit …`: managing accounts and checking the audit log from a
//! shell on the hub (as root or the hearth user), for first setup and for recovering from a
//! lost admin password. Changes take effect in a running `hearth serve` on its next request,
//! because every request reads sessions and users from the database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use hearth::audit::{Action, AuditLog, Event, Filter};
use hearth::auth::{Accounts, Role};
use hearth::config::Config;
use hearth::time::{format_us, now_us};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account (a viewer unless --admin).
    Add {
        name: String,
        #[arg(long)]
        admin: bool,
        /// Read the password from this file instead of asking on the terminal.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Set a new password; every session of the user ends.
    Passwd {
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Remove an account; its sessions end at once.
    Rm { name: String },
    /// List accounts.
    Ls,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exit 1 and name the first broken row if it was tampered with.
    Verify,
    /// Print the newest entries.
    Ls {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

fn open(config: &Config) -> Result<(Accounts, AuditLog)> {
    let web = &config.web;
    let accounts = Accounts::open(&config.db_path(), web.session_idle, web.session_lifetime)?;
    Ok((accounts, AuditLog::open(&config.db_path())?))
}

/// What a shell user's changes are recorded as in the audit log.
fn shell_event() -> Event {
    let who = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    Event::ok().user(format!("shell:{who}")).address("local")
}

pub fn user(config: &Config, command: UserCommand) -> Result<ExitCode> {
    let (accounts, audit) = open(config)?;
    match command {
        UserCommand::Add { name, admin, password_file } => {
            let password =
                read_new_password(password_file.as_deref(), "--password-file", &format!("Password for {name}: "))?;
            let role = if admin { Role::Admin } else { Role::Viewer };
            accounts.add_user(&name, &password, role, now_us())?;
            audit.record(Action::UserAdd, shell_event().target(format!("user:{name}")), now_us())?;
            println!("created {} `{name}`", if admin { "admin" } else { "viewer" });
            if !admin {
                println!("  a viewer sees no camera until an admin grants some (web UI → Users)");
            }
        }
        UserCommand::Passwd { name, password_file } => {
            let password =
                read_new_password(password_file.as_deref(), "--password-file", &format!("New password for {name}: "))?;
            accounts.set_password(&name, &password, None, now_us())?;
            audit.record(Action::PasswordChange, shell_event().target(format!("user:{name}")), now_us())?;
            println!("password changed; every session of `{name}` has ended");
        }
        UserCommand::Rm { name } => {
            accounts.remove_user(&name)?;
            audit.record(Action::UserRm, shell_event().target(format!("user:{name}")), now_us())?;
            println!("removed `{name}`; their sessions have ended");
        }
        UserCommand::Ls => {
            for user in accounts.users()? {
                let flags = [(user.disabled, " disabled"), (user.totp_enabled, " 2fa")]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, f)| *f)
                    .collect::<String>();
                let role = if user.role == Role::Admin { "admin" } else { "viewer" };
                println!("{:<24} {role:<6}{flags}", user.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit(config: &Config, command: AuditCommand) -> Result<ExitCode> {
    let (_, audit) = open(config)?;
    match command {
        AuditCommand::Verify => {
            let report = audit.verify()?;
            match report.first_broken_id {
                None => {
                    println!("audit log intact: {} rows, hash chain verified", report.rows);
                    Ok(ExitCode::SUCCESS)
                }
                Some(id) => {
                    println!("audit log TAMPERED: the chain breaks at row {id} (rows before it are intact)");
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCommand::Ls { limit } => {
            for e in audit.list(&Filter { limit, ..Filter::default() })? {
                println!(
                    "{} {:<16} {:<14} {:<16} {} {} {}",
                    format_us(e.time_us),
                    e.user.unwrap_or_default(),
                    e.address.unwrap_or_default(),
                    e.action,
                    e.camera.unwrap_or_default(),
                    e.target.unwrap_or_default(),
                    e.result
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A new password from a file (first line) or typed twice on the terminal.
pub fn read_new_password(file: Option<&Path>, file_flag: &str, prompt: &str) -> Result<String> {
    use std::io::IsTerminal;
    let password = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            text.lines().next().unwrap_or("").to_owned()
        }
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("no terminal to ask for a password: use {file_flag}");
            }
            let first = rpassword::prompt_password(prompt)?;
            let second = rpassword::prompt_password("Repeat it: ")?;
            if first != second {
                bail!("the passwords differ");
            }
            first
        }
    };
    hearth::auth::password::check_policy(&password)?;
    Ok(password)
}
