//! The recording service: what `hearth serve` (and `hearth demo`) run.
//!
//! [`Service::start`] opens the index, unlocks the identity if a passphrase is available
//! non-interactively (so interrupted clips can be recovered at once), reconciles the index
//! with the files on disk, enforces retention, and then starts, per camera, an ingest task on
//! the runtime and a clip-writer thread. [`Service::stop`] asks every camera to close its
//! clip, waits for the writers to finish, and returns — nothing is left half-written on a
//! clean stop.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::camera::{self, CameraHandle, CameraStatus};
use crate::clip::{ClipWriter, FreeSpace};
use crate::config::Config;
use crate::crypto::{CryptoError, PassphraseSource, Recipient, UnlockedIdentity};
use crate::db::{DbError, Index};
use crate::live::LiveFeed;
use crate::recorder::{ClipEvent, Recorder};
use crate::recovery::{self, DataDirLock, RecoveryError};
use crate::retention::{Budget, Retention};
use crate::shutdown::{self, ShutdownTrigger};
use crate::web::{AppState, Unlock, WebServer};

/// Clip events buffered between a camera and its writer: ~4 minutes of 1 s fragments, so a
/// slow SD card can lag behind briefly without stalling the camera connection.
const WRITER_QUEUE: usize = 256;
/// How often retention runs besides after every clip (for `max_age_days`).
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// How often expired sessions and old audit rows are deleted.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(3600);
/// Repeated views within this window are one audit row.
const VIEW_DEBOUNCE: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error(transparent)]
    Accounts(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Events(#[from] crate::events::EventError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot listen on web.listen = {address}: {source}")]
    Listen { address: std::net::SocketAddr, source: std::io::Error },
}

/// A running recorder and its web UI.
pub struct Service {
    pub config: Arc<Config>,
    pub index: Arc<Index>,
    pub web: WebServer,
    _lock: DataDirLock,
    trigger: ShutdownTrigger,
    ingest: JoinSet<()>,
    writers: Vec<JoinHandle<()>>,
}

/// Unlocks the identity from a non-interactive passphrase source, if there is one.
pub async fn unlock_with(
    config: &Config,
    source: Option<PassphraseSource>,
) -> Result<Option<Arc<UnlockedIdentity>>, CryptoError> {
    let Some(source) = source else { return Ok(None) };
    let identity_file = config.crypto.identity_file.clone();
    let recipient = Recipient::parse(&config.crypto.recipient)?;
    let identity = tokio::task::spawn_blocking(move || {
        let passphrase = source.read("")?;
        crate::crypto::unlock_identity(&identity_file, &passphrase, &recipient)
    })
    .await
    .map_err(|e| CryptoError::Io { path: PathBuf::from("<unlock>"), source: std::io::Error::other(e) })??;
    Ok(Some(Arc::new(identity)))
}

impl Service {
    /// Starts recording. `passphrase` (usually [`PassphraseSource::from_environment`]) lets
    /// interrupted clips be recovered at once; without it they wait for an unlock.
    pub async fn start(config: Config, passphrase: Option<PassphraseSource>) -> Result<Service, ServeError> {
        let config = Arc::new(config);
        std::fs::create_dir_all(config.clips_dir())
            .map_err(|source| ServeError::DataDir { path: config.clips_dir(), source })?;
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let index = Arc::new(Index::open(&config.db_path())?);
        let recipient = Recipient::parse(&config.crypto.recipient)?;
        let identity = unlock_with(&config, passphrase).await?;

        let report = {
            let (index, data_dir, identity, recipient) =
                (index.clone(), config.data_dir.clone(), identity.clone(), recipient.clone());
            tokio::task::spawn_blocking(move || recovery::reconcile(&index, &data_dir, identity.as_deref(), &recipient))
                .await
                .expect("reconcile does not panic")?
        };
        report.log();

        let retention = Arc::new(Retention::new(index.clone(), config.data_dir.clone(), budget(&config)));
        if let Err(e) = retention.enforce(crate::time::now_us()) {
            tracing::error!(error = %e, "retention failed");
        }

        let web = &config.web;
        let accounts =
            Arc::new(crate::auth::Accounts::open(&config.db_path(), web.session_idle, web.session_lifetime)?);
        let audit = Arc::new(crate::audit::AuditLog::open(&config.db_path())?);
        if accounts.user_count()? == 0 {
            tracing::warn!("no accounts yet: nobody can log in; create one with `hearth user add NAME --admin`");
        }
        let egress = crate::egress::Connections::new();
        let events = Arc::new(crate::events::Events::open(&config.db_path(), recipient.clone())?);
        let dangling = events.close_dangling()?;
        if dangling > 0 {
            tracing::info!(events = dangling, "closed events left open by the last stop");
        }

        let (trigger, shutdown) = shutdown::channel();
        let mut ingest = JoinSet::new();
        let mut writers = Vec::new();
        let mut cameras = Vec::new();
        for camera in &config.cameras {
            let (events_tx, events_rx) = mpsc::channel(WRITER_QUEUE);
            let (status_tx, status_rx) = watch::channel(CameraStatus::default());
            let free_space: FreeSpace = {
                let retention = retention.clone();
                Arc::new(move || retention.free_oldest())
            };
            let writer = ClipWriter::new(
                &camera.name,
                &config.data_dir,
                index.clone(),
                recipient.clone(),
                config.storage.flush_seconds,
                free_space,
            );
            writers.push(spawn_writer(camera.name.clone(), writer, events_rx, retention.clone())?);
            let last_end = index.last_clip_end(&camera.name)?;
            let recorder = Recorder::new(config.storage.clip_seconds, last_end);
            let live = Arc::new(LiveFeed::default());
            let motion = match &camera.motion {
                Some(motion) => {
                    let (sink, worker) = crate::motion::spawn(camera.name.clone(), motion.clone(), events.clone())
                        .map_err(ServeError::Thread)?;
                    writers.push(worker);
                    Some(sink)
                }
                None => None,
            };
            ingest.spawn(camera::run(
                camera.clone(),
                recorder,
                events_tx,
                status_tx,
                live.clone(),
                egress.clone(),
                motion,
                shutdown.clone(),
            ));
            cameras.push(CameraHandle { name: camera.name.clone(), status: status_rx, live });
        }
        ingest.spawn(retention_loop(retention, shutdown.clone()));
        ingest.spawn(housekeeping_loop(
            accounts.clone(),
            audit.clone(),
            events.clone(),
            Retentions { audit_days: config.audit.retention_days, events_days: config.events.retention_days },
            shutdown.clone(),
        ));
        tracing::info!(cameras = config.cameras.len(), data_dir = %config.data_dir.display(), "recording");

        let auto_lock = config.web.auto_lock_hours.map(|h| Duration::from_secs(u64::from(h) * 3600));
        let state = AppState {
            config: config.clone(),
            index: index.clone(),
            cameras: Arc::new(cameras),
            unlock: Arc::new(Unlock::new(recipient, auto_lock, identity)),
            accounts,
            audit,
            throttle: Arc::new(crate::auth::throttle::Throttle::new()),
            access: Arc::new(crate::lan::AccessPolicy::from_config(&config.web)),
            egress,
            events,
            views: Arc::new(crate::audit::Debounce::new(VIEW_DEBOUNCE)),
            shutdown: shutdown.clone(),
        };
        let web = crate::web::serve(state, shutdown)
            .await
            .map_err(|source| ServeError::Listen { address: config.web.listen, source })?;
        Ok(Service { config, index, web, _lock: lock, trigger, ingest, writers })
    }

    /// Closes every open clip and waits for the files to be finished.
    pub async fn stop(mut self) {
        self.trigger.trigger();
        while self.ingest.join_next().await.is_some() {}
        self.web.stopped().await;
        let writers = std::mem::take(&mut self.writers);
        let _ = tokio::task::spawn_blocking(move || {
            for writer in writers {
                let _ = writer.join();
            }
        })
        .await;
        tracing::info!("all clips closed");
    }
}

fn budget(config: &Config) -> Budget {
    Budget {
        max_bytes: config.storage.max_bytes.0,
        per_camera: config.cameras.iter().filter_map(|c| Some((c.name.clone(), c.max_bytes?.0))).collect(),
        max_age_us: i64::from(config.storage.max_age_days) * 86_400 * 1_000_000,
    }
}

fn spawn_writer(
    camera: String,
    mut writer: ClipWriter,
    mut events: mpsc::Receiver<ClipEvent>,
    retention: Arc<Retention>,
) -> Result<JoinHandle<()>, ServeError> {
    let name = format!("writer-{camera}");
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || {
            let mut failing = false;
            while let Some(event) = events.blocking_recv() {
                match writer.handle(event) {
                    Ok(Some(closed)) => {
                        failing = false;
                        // The clip now being written will be about as big; leave room for it
                        // with a margin for a busier scene.
                        retention.reserve(&camera, closed.bytes.saturating_mul(3) / 2);
                        if let Err(e) = retention.enforce(crate::time::now_us()) {
                            tracing::error!(error = %e, "retention failed");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        if !failing {
                            tracing::error!(camera = %camera, error = %e, "cannot write clip; it will be recovered at next start");
                        }
                        failing = true;
                        writer.abandon();
                    }
                }
            }
            writer.abandon();
        })
        .map_err(|source| ServeError::DataDir { path: PathBuf::from("<writer thread>"), source })
}

#[derive(Clone, Copy)]
struct Retentions {
    audit_days: u32,
    events_days: u32,
}

/// Deletes expired sessions, and audit rows and events past their retention, hourly.
async fn housekeeping_loop(
    accounts: Arc<crate::auth::Accounts>,
    audit: Arc<crate::audit::AuditLog>,
    events: Arc<crate::events::Events>,
    retentions: Retentions,
    mut shutdown: shutdown::Shutdown,
) {
    const DAY_US: i64 = 86_400 * 1_000_000;
    loop {
        let (accounts, audit, events) = (accounts.clone(), audit.clone(), events.clone());
        let result = tokio::task::spawn_blocking(move || {
            let now = crate::time::now_us();
            let sessions = accounts.prune_sessions(now).map_err(|e| e.to_string())?;
            let rows = audit.prune(now - i64::from(retentions.audit_days) * DAY_US).map_err(|e| e.to_string())?;
            let old_events =
                events.prune(now - i64::from(retentions.events_days) * DAY_US).map_err(|e| e.to_string())?;
            Ok::<_, String>((sessions, rows, old_events))
        })
        .await;
        match result {
            Ok(Ok((sessions, rows, old_events))) if sessions + rows + old_events > 0 => {
                tracing::info!(sessions, audit_rows = rows, events = old_events, "expired data deleted")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "housekeeping failed"),
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(HOUSEKEEPING_INTERVAL) => {}
            _ = shutdown.recv() => return,
        }
    }
}

async fn retention_loop(retention: Arc<Retention>, mut shutdown: shutdown::Shutdown) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_INTERVAL) => {}
            _ = shutdown.recv() => return,
        }
        let retention = retention.clone();
        let result = tokio::task::spawn_blocking(move || retention.enforce(crate::time::now_us())).await;
        if let Ok(Err(e)) = result {
            tracing::error!(error = %e, "retention failed");
        }
    }
}
