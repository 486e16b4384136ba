//! The `hearth` binary: command-line parsing and the edge where module errors become
//! `anyhow` messages for a human. Each subcommand is a small function over the library.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

mod cli {
    pub mod accounts;
}
use clap::{Parser, Subcommand};

use hearth::config::Config;
use hearth::crypto::{self, PassphraseSource, Recipient};
use hearth::db::{ClipFilter, Index};

#[derive(Parser)]
#[command(
    name = "hearth",
    version,
    about = "A privacy-respecting home NVR: your cameras, recorded encrypted, on your own hub."
)]
struct Cli {
    /// The config file [default: /etc/hearth/config.toml; for `init`: DATA_DIR/config.toml].
    #[arg(long, global = true, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data dir, a key pair (the private key passphrase-encrypted) and a config.
    Init {
        #[arg(long)]
        data_dir: PathBuf,
        /// Read the new passphrase from this file instead of asking on the terminal.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// The owner's (first admin's) user name.
        #[arg(long, default_value = "owner")]
        owner: String,
        /// Read the owner's password from this file instead of asking on the terminal.
        #[arg(long)]
        owner_password_file: Option<PathBuf>,
    },
    /// Record every configured camera until SIGTERM or SIGINT.
    Serve,
    /// Record a built-in synthetic camera: no hardware needed.
    Demo {
        /// Keep recordings here instead of a temporary dir removed at exit.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
        /// Clip length, seconds.
        #[arg(long, default_value_t = 10)]
        clip_seconds: u32,
    },
    /// Serve only the synthetic demo camera (for benchmarks and trying clients).
    #[command(hide = true)]
    DemoCamera {
        #[arg(long, default_value = "127.0.0.1:8554")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value_t = 640)]
        width: u32,
        #[arg(long, default_value_t = 360)]
        height: u32,
        /// Bits per second.
        #[arg(long, default_value_t = 1_000_000)]
        bitrate: u64,
        /// Length of the encoded loop.
        #[arg(long, default_value_t = 20)]
        seconds: u32,
    },
    /// List and export recorded clips.
    Clips {
        #[command(subcommand)]
        command: ClipsCommand,
    },
    /// Verify every indexed clip decrypts and parses; recover and repair what can be.
    Check,
    /// Manage accounts (also possible in the web UI, for admins).
    User {
        #[command(subcommand)]
        command: cli::accounts::UserCommand,
    },
    /// Check or print the viewer audit log.
    Audit {
        #[command(subcommand)]
        command: cli::accounts::AuditCommand,
    },
    /// Check this hub's setup (config, disk, cameras, clock, certificate, exposure); suggest fixes.
    Doctor,
}

#[derive(Subcommand)]
enum ClipsCommand {
    /// List recorded clips, oldest first.
    Ls {
        #[arg(long)]
        camera: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Decrypt one clip to a playable MP4 file.
    Decrypt {
        id: i64,
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    init_logging();
    let cli = Cli::parse();
    let config = cli.config.clone().unwrap_or_else(|| PathBuf::from("/etc/hearth/config.toml"));
    let result = match cli.command {
        Command::Init { data_dir, passphrase_file, owner, owner_password_file } => {
            init(cli.config.as_deref(), &data_dir, passphrase_file, &owner, owner_password_file.as_deref())
        }
        Command::Serve => runtime().and_then(|rt| rt.block_on(serve(&config))),
        Command::Demo { data_dir, seconds, clip_seconds } => {
            runtime().and_then(|rt| rt.block_on(hearth_demo(data_dir, seconds, clip_seconds)))
        }
        Command::DemoCamera { listen, width, height, bitrate, seconds } => {
            runtime().and_then(|rt| rt.block_on(demo_camera(listen, width, height, bitrate, seconds)))
        }
        Command::Clips { command: ClipsCommand::Ls { camera, json } } => clips_ls(&config, camera.as_deref(), json),
        Command::Clips { command: ClipsCommand::Decrypt { id, output } } => clips_decrypt(&config, id, &output),
        Command::Check => check(&config),
        Command::User { command } => load_config(&config).and_then(|c| cli::accounts::user(&c, command)),
        Command::Audit { command } => load_config(&config).and_then(|c| cli::accounts::audit(&c, command)),
        Command::Doctor => Ok(hearth::doctor::run(&config)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hearth: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that allocates its own malloc arena; with a writer thread per camera
/// that fragments memory into many half-empty arenas. Two are plenty for hearth's allocation
/// pattern (large, short-lived fragment buffers) and keep the resident size down on a Pi.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,retina=warn"));
    // Under systemd, log to the journal natively: levels become priorities, and fields such as
    // camera and clip become journal fields (`journalctl -u hearth CAMERA=front-door`).
    if hearth::notify::stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            use tracing_subscriber::layer::SubscriberExt as _;
            use tracing_subscriber::util::SubscriberInitExt as _;
            tracing_subscriber::registry().with(filter).with(journald.with_field_prefix(None)).init();
            return;
        }
        // No journald socket: plain lines on stderr, which the journal timestamps itself.
        tracing_subscriber::fmt().with_env_filter(filter).without_time().with_ansi(false).init();
        return;
    }
    // Colours only for a person at a terminal; log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn load_config(path: &Path) -> Result<Config> {
    Ok(Config::load(path)?)
}

/// `--config` (or `HEARTH_CONFIG`) given explicitly wins; otherwise the config goes in the data dir.
fn init(
    config_arg: Option<&Path>,
    data_dir: &Path,
    passphrase_file: Option<PathBuf>,
    owner: &str,
    owner_password_file: Option<&Path>,
) -> Result<ExitCode> {
    let config_path = config_arg.map_or_else(|| data_dir.join("config.toml"), Path::to_owned);
    // The example config `make install` and the .deb put in /etc/hearth may be replaced.
    if config_path.exists() && !hearth::config::is_uninitialised_example(&config_path) {
        bail!("{} already exists; not overwriting it", config_path.display());
    }
    if !hearth::auth::valid_user_name(owner) {
        bail!("--owner: user names are 1-64 characters of letters, digits and . _ - @");
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let data_dir = std::fs::canonicalize(data_dir)?;
    let passphrase = match passphrase_file {
        Some(path) => PassphraseSource::File(path).read("")?,
        None => new_passphrase_from_terminal()?,
    };
    // Everything asked before anything is written: a refusal leaves nothing half-made.
    let owner_password = cli::accounts::read_new_password(
        owner_password_file,
        "--owner-password-file",
        &format!("Password for the web UI account `{owner}`: "),
    )?;
    let identity_file = data_dir.join("identity.age");
    let recipient = crypto::create_identity(&identity_file, &passphrase)?;
    let text = hearth::config::initial_config_text(&data_dir, &recipient.to_string());
    hearth::web::tls::create_self_signed(&data_dir.join("tls/cert.pem"), &data_dir.join("tls/key.pem"))?;
    std::fs::write(&config_path, text).with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = Config::load(&config_path).context("the config just written does not load (a bug)")?;
    let web = &config.web;
    hearth::auth::Accounts::open(&config.db_path(), web.session_idle, web.session_lifetime)?.add_user(
        owner,
        &owner_password,
        hearth::auth::Role::Admin,
        hearth::time::now_us(),
    )?;
    println!("created {}", data_dir.display());
    println!("  config:   {}", config_path.display());
    println!("  key:      {} (encrypted with your passphrase; keep the passphrase safe:", identity_file.display());
    println!("            without it, nobody — including you — can watch recordings)");
    println!(
        "  TLS:      {} (self-signed for this hub's names; see README to trust it)",
        data_dir.join("tls/cert.pem").display()
    );
    println!("  account:  `{owner}` (admin) for the web UI; more with `hearth user add`");
    println!("  next:     add a [[camera]] to the config, then `hearth --config {} serve`", config_path.display());
    Ok(ExitCode::SUCCESS)
}

fn new_passphrase_from_terminal() -> Result<age::secrecy::SecretString> {
    use age::secrecy::ExposeSecret;
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for a passphrase: use --passphrase-file");
    }
    let first = PassphraseSource::Terminal.read("New passphrase for recordings: ")?;
    let second = PassphraseSource::Terminal.read("Repeat it: ")?;
    if first.expose_secret() != second.expose_secret() {
        bail!("the passphrases differ");
    }
    if first.expose_secret().chars().count() < 8 {
        bail!("use a passphrase of at least 8 characters");
    }
    Ok(first)
}

async fn serve(config_path: &Path) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    if config.cameras.is_empty() {
        tracing::warn!("no [[camera]] in the config: nothing to record");
    }
    // Handlers first: a SIGTERM during start-up (recovery can take a while) must stop us
    // cleanly too, not kill us with the default action.
    let mut signals = Signals::install()?;
    let service = tokio::select! {
        service = hearth::serve::Service::start(config, PassphraseSource::from_environment()) => service?,
        _ = signals.recv() => {
            tracing::info!("stopped during start-up");
            return Ok(ExitCode::SUCCESS);
        }
    };
    println!("hearth: recording; web UI at {}", service.web.url());
    std::io::stdout().flush()?;
    signals.recv().await;
    tracing::info!("stopping: closing open clips");
    service.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// The demo's own account: created with a random password on first run, remembered in the
/// demo's data dir so a second run with the same `--data-dir` logs in the same way.
fn demo_login(config: &Config) -> Result<(String, String)> {
    const NAME: &str = "demo";
    let file = config.data_dir.join("demo-login.txt");
    if let Ok(password) = std::fs::read_to_string(&file) {
        return Ok((NAME.to_owned(), password.trim().to_owned()));
    }
    let password = format!("demo-{:016x}", rand::random::<u64>());
    let web = &config.web;
    let accounts = hearth::auth::Accounts::open(&config.db_path(), web.session_idle, web.session_lifetime)?;
    accounts.add_user(NAME, &password, hearth::auth::Role::Admin, hearth::time::now_us())?;
    std::fs::write(&file, &password)?;
    Ok((NAME.to_owned(), password))
}

/// SIGTERM (systemd) and SIGINT (Ctrl-C), installed once so none is missed in between.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

async fn hearth_demo(data_dir: Option<PathBuf>, seconds: Option<u64>, clip_seconds: u32) -> Result<ExitCode> {
    use hearth::demo::DemoOptions;
    let mut signals = Signals::install()?;
    let temp = tempfile::Builder::new().prefix("hearth-demo-").tempdir()?;
    let data_dir = data_dir.unwrap_or_else(|| temp.path().join("data"));
    std::fs::create_dir_all(&data_dir)?;
    let data_dir = std::fs::canonicalize(&data_dir)?;

    println!("hearth demo: encoding a synthetic test pattern (a few seconds)…");
    let camera = start_demo_camera("127.0.0.1:0".parse()?, DemoOptions::default()).await?;
    println!("  demo camera: {} (our own RTSP server, 127.0.0.1 only)", camera.url());

    let passphrase_file = data_dir.join("demo-passphrase.txt");
    let config_path = data_dir.join("config.toml");
    if !config_path.exists() {
        let passphrase = format!("demo-{:032x}", rand::random::<u128>());
        std::fs::write(&passphrase_file, &passphrase)?;
        let recipient =
            crypto::create_identity(&data_dir.join("identity.age"), &age::secrecy::SecretString::from(passphrase))?;
        let mut text = hearth::config::initial_config_text(&data_dir, &recipient.to_string());
        text = text.replace("clip_seconds = 60", &format!("clip_seconds = {clip_seconds}"));
        text = text.replace("listen = \"127.0.0.1:8080\"", &format!("listen = \"{}\"", demo_listen_address()));
        text.push_str(&format!("\n[[camera]]\nname = \"demo\"\nurl = \"{}\"\n", camera.url()));
        std::fs::write(&config_path, text)?;
    } else {
        let text = std::fs::read_to_string(&config_path)?;
        let re_pointed: String = text
            .lines()
            .map(|l| {
                if l.starts_with("url = \"rtsp://127.0.0.1") {
                    format!("url = \"{}\"", camera.url())
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&config_path, re_pointed)?;
    }
    let config = load_config(&config_path)?;
    let (login_name, login_password) = demo_login(&config)?;
    println!("  recording into {} (clips every {clip_seconds} s, encrypted)", data_dir.display());
    println!("  list clips:    hearth --config {} clips ls", config_path.display());
    println!(
        "  decrypt one:   HEARTH_PASSPHRASE_FILE={} hearth --config {} clips decrypt ID -o clip.mp4",
        passphrase_file.display(),
        config_path.display()
    );
    // The demo's own throw-away passphrase lets it recover interrupted clips at start, and
    // unlocks playback in the web UI.
    let service = hearth::serve::Service::start(config, Some(PassphraseSource::File(passphrase_file.clone()))).await?;
    println!();
    println!("  open the web UI: {}", service.web.url());
    println!("  log in as `{login_name}` with password `{login_password}` (saved in demo-login.txt)");
    println!();
    println!("  press Ctrl-C to stop");
    std::io::stdout().flush()?;
    match seconds {
        Some(s) => tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(s)) => {}
            _ = signals.recv() => {}
        },
        None => signals.recv().await,
    }
    service.stop().await;
    camera.shutdown().await;
    let index = Index::open(&data_dir.join("index.sqlite3"))?;
    let clips = index.clips(&ClipFilter::default())?;
    println!("hearth demo: recorded {} clip(s)", clips.len());
    for clip in &clips {
        println!("  {}", clip_line(clip));
    }
    Ok(ExitCode::SUCCESS)
}

async fn demo_camera(
    listen: std::net::SocketAddr,
    width: u32,
    height: u32,
    bitrate: u64,
    seconds: u32,
) -> Result<ExitCode> {
    use hearth::demo::{DemoOptions, PatternOptions};
    if !listen.ip().is_loopback() {
        bail!("the demo camera only listens on loopback addresses");
    }
    let mut signals = Signals::install()?;
    let pattern = PatternOptions { width, height, seconds, bitrate, ..PatternOptions::default() };
    let camera = start_demo_camera(listen, DemoOptions { pattern, ..DemoOptions::default() }).await?;
    println!("serving {}", camera.url());
    std::io::stdout().flush()?;
    signals.recv().await;
    camera.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The demo camera, its pattern encoded by the media helper (`hearth` itself has no encoder).
async fn start_demo_camera(
    listen: std::net::SocketAddr,
    options: hearth::demo::DemoOptions,
) -> Result<hearth::demo::DemoCamera> {
    let encoded = hearth::media::Media::locate().encode_pattern(&options.pattern).await?;
    Ok(hearth::demo::DemoCamera::start_with_loop(listen, options, encoded).await?)
}

/// 8080 when it is free (a URL worth remembering), else any free port.
fn demo_listen_address() -> String {
    match std::net::TcpListener::bind("127.0.0.1:8080") {
        Ok(_) => "127.0.0.1:8080".to_owned(),
        Err(_) => "127.0.0.1:0".to_owned(),
    }
}

fn clip_line(clip: &hearth::db::Clip) -> String {
    format!(
        "{:>6}  {:<16} {}  {:>7.2}s  {:>10} B  {}x{} {}{}",
        clip.id,
        clip.camera,
        hearth::time::format_us(clip.start_us),
        clip.duration_90k as f64 / 90_000.0,
        clip.bytes,
        clip.width,
        clip.height,
        clip.codec,
        if clip.has_audio { " +audio" } else { "" },
    )
}

fn open_index(config: &Config) -> Result<Index> {
    let path = config.db_path();
    if !path.exists() {
        bail!("no index at {}: nothing recorded yet (run `hearth serve`)", path.display());
    }
    Ok(Index::open(&path)?)
}

fn clips_ls(config_path: &Path, camera: Option<&str>, json: bool) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let index = open_index(&config)?;
    let clips = index.clips(&ClipFilter { camera, ..ClipFilter::default() })?;
    if json {
        let rows: Vec<serde_json::Value> = clips
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id, "camera": c.camera,
                    "start": hearth::time::format_us(c.start_us), "end": hearth::time::format_us(c.end_us),
                    "start_us": c.start_us, "end_us": c.end_us,
                    "duration_90k": c.duration_90k, "bytes": c.bytes, "frames": c.frames, "keyframes": c.keyframes,
                    "codec": c.codec, "width": c.width, "height": c.height, "has_audio": c.has_audio, "path": c.path,
                    "event": c.event,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if clips.is_empty() {
        println!("no clips{}", camera.map(|c| format!(" for camera {c}")).unwrap_or_default());
    } else {
        println!("{:>6}  {:<16} {:<24}  {:>8}  {:>12}  video", "id", "camera", "start", "length", "size");
        for clip in &clips {
            println!("{}", clip_line(clip));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unlock(config: &Config) -> Result<crypto::UnlockedIdentity> {
    let source = PassphraseSource::any().context("no passphrase: set HEARTH_PASSPHRASE_FILE or run from a terminal")?;
    let passphrase = source.read("Passphrase: ")?;
    let recipient = Recipient::parse(&config.crypto.recipient)?;
    Ok(crypto::unlock_identity(&config.crypto.identity_file, &passphrase, &recipient)?)
}

fn clips_decrypt(config_path: &Path, id: i64, output: &Path) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let index = open_index(&config)?;
    let clip = index.clip(id)?.with_context(|| format!("no clip {id}"))?;
    if clip.state != hearth::db::ClipState::Closed {
        bail!("clip {id} is still {:?}; it becomes available when it closes", clip.state);
    }
    let identity = unlock(&config)?;
    let mut reader = crypto::open_clip(&config.data_dir.join(&clip.path), &identity)?;
    let temp = output.with_extension("mp4.partial");
    let mut file = std::fs::File::create(&temp).with_context(|| format!("cannot create {}", temp.display()))?;
    let bytes = std::io::copy(&mut reader, &mut file).with_context(|| format!("clip {id} did not decrypt"))?;
    file.sync_all()?;
    std::fs::rename(&temp, output)?;
    eprintln!("wrote {} ({bytes} bytes)", output.display());
    Ok(ExitCode::SUCCESS)
}

fn check(config_path: &Path) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let _lock = hearth::recovery::DataDirLock::acquire(&config.data_dir)?;
    let index = Index::open(&config.db_path())?;
    let identity = unlock(&config)?;
    let recipient = Recipient::parse(&config.crypto.recipient)?;
    let report = hearth::recovery::check(&index, &config.data_dir, &identity, &recipient)?;
    println!("{report}");
    Ok(if report.unrepaired.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
