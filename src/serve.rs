//! The recording service: what `hearth serve` (and `hearth demo`) run.
//!
//! [`Service::start`] opens the index, unlocks the identity if a passphrase is available
//! non-interactively (so interrupted clips can be recovered at once), reconciles the index
//! with the files on disk, enforces retention, and then starts, per camera, an ingest task on
//! the runtime and a clip-writer thread. [`Service::stop`] asks every camera to close its
//! clip, waits for the writers to finish, and returns — nothing is left half-written on a
//! clean stop.
//!
//! Under systemd it also reports to the service manager ([`crate::notify`]): `READY=1` once
//! everything runs, `STOPPING=1` on stop, and `WATCHDOG=1` only while the recorders are
//! healthy — every clip-writer thread alive and none stuck inside one event for longer than
//! [`WRITER_STUCK_AFTER`]. A camera that is merely offline is not a hub fault: its writer is
//! idle, not stuck, so it never stops the watchdog.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::camera::{self, CameraHandle, CameraStatus};
use crate::clip::{ClipWriter, FreeSpace};
use crate::config::Config;
use crate::crypto::{CryptoError, PassphraseSource, Recipient, UnlockedIdentity};
use crate::db::{DbError, Index};
use crate::gate::{Gate, RecordMode};
use crate::live::LiveFeed;
use crate::notify::Notifier;
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
/// A clip writer busy with one event for this long is stuck (a hung disk, a lock never
/// released): the watchdog stops being petted and systemd restarts hearth. Generous, because a
/// full disk legitimately holds a write for the ~10 s retention needs to free space.
pub const WRITER_STUCK_AFTER: Duration = Duration::from_secs(60);

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
    notifier: Option<Arc<Notifier>>,
}

/// What the watchdog knows about the recorders: one [`WriterHealth`] per camera.
#[derive(Debug, Default)]
pub struct Health {
    writers: Vec<Arc<WriterHealth>>,
}

/// One clip-writer thread: whether it still runs, and since when it has been busy with the
/// event in hand.
#[derive(Debug)]
pub struct WriterHealth {
    camera: String,
    epoch: Instant,
    alive: AtomicBool,
    /// 0: idle; else milliseconds since `epoch`, plus one.
    busy_since: AtomicU64,
}

impl Health {
    fn add_writer(&mut self, camera: &str) -> Arc<WriterHealth> {
        let writer = Arc::new(WriterHealth {
            camera: camera.to_owned(),
            epoch: Instant::now(),
            alive: AtomicBool::new(true),
            busy_since: AtomicU64::new(0),
        });
        self.writers.push(writer.clone());
        writer
    }

    /// Why the recorders are unhealthy at `now`, or `None` when they are fine.
    pub fn problem(&self, now: Instant) -> Option<String> {
        self.writers.iter().find_map(|writer| writer.problem(now))
    }
}

impl WriterHealth {
    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64 + 1
    }

    fn begin(&self, at: Instant) {
        self.busy_since.store(self.millis(at), Ordering::Relaxed);
    }

    fn end(&self) {
        self.busy_since.store(0, Ordering::Relaxed);
    }

    fn problem(&self, now: Instant) -> Option<String> {
        if !self.alive.load(Ordering::Relaxed) {
            return Some(format!("the clip writer of camera {} has stopped", self.camera));
        }
        let since = self.busy_since.load(Ordering::Relaxed);
        let busy = Duration::from_millis(self.millis(now).saturating_sub(since));
        (since != 0 && busy >= WRITER_STUCK_AFTER)
            .then(|| format!("the clip writer of camera {} is stuck for {} s", self.camera, busy.as_secs()))
    }
}

/// Marks its writer dead when the thread ends, however it ends (a panic included).
struct AliveGuard(Arc<WriterHealth>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Relaxed);
    }
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
        let media = crate::media::Media::locate();
        if !media.is_installed() {
            tracing::warn!(helper = %media.program().display(), "media helper not installed: no motion detection, snapshots or thumbnails");
        }
        let dangling = events.close_dangling()?;
        if dangling > 0 {
            tracing::info!(events = dangling, "closed events left open by the last stop");
        }

        let (trigger, shutdown) = shutdown::channel();
        let mut ingest = JoinSet::new();
        let mut writers = Vec::new();
        let mut health = Health::default();
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
            let writer_health = health.add_writer(&camera.name);
            writers.push(spawn_writer(camera.name.clone(), writer, events_rx, retention.clone(), writer_health)?);
            let last_end = index.last_clip_end(&camera.name)?;
            let recorder = Recorder::new(config.storage.clip_seconds, last_end);
            let live = Arc::new(LiveFeed::default());
            let motion = match &camera.motion {
                Some(motion) => {
                    let (sink, worker) =
                        crate::motion::spawn(camera.name.clone(), motion.clone(), events.clone(), media.clone())
                            .map_err(ServeError::Thread)?;
                    writers.push(worker);
                    Some(sink)
                }
                None => None,
            };
            // With a sub-stream, motion watches it instead of the main stream (far cheaper).
            let motion = match (&camera.sub_url, motion) {
                (Some(sub_url), Some(sink)) => {
                    let task =
                        camera::run_substream(camera.clone(), sub_url.clone(), sink, egress.clone(), shutdown.clone());
                    ingest.spawn(task);
                    None
                }
                (_, motion) => motion,
            };
            let notices = (camera.record.mode != RecordMode::Continuous)
                .then(|| camera::EventFeed { notices: events.subscribe(), events: events.clone() });
            let pipeline = camera::Pipeline {
                recorder,
                gate: Gate::new(camera.record),
                writer: events_tx,
                live: live.clone(),
                notices,
            };
            ingest.spawn(camera::run(camera.clone(), pipeline, status_tx, egress.clone(), motion, shutdown.clone()));
            if let Some(onvif) = &camera.onvif {
                ingest.spawn(crate::onvif::run(
                    camera.name.clone(),
                    onvif.clone(),
                    events.clone(),
                    egress.clone(),
                    shutdown.clone(),
                ));
            }
            cameras.push(CameraHandle { name: camera.name.clone(), status: status_rx, live });
        }
        ingest.spawn(retention_loop(retention, shutdown.clone()));
        let cameras = Arc::new(cameras);
        if let Some(mqtt) = &config.mqtt {
            ingest.spawn(crate::mqtt::run(
                mqtt.clone(),
                cameras.clone(),
                events.clone(),
                media.clone(),
                egress.clone(),
                shutdown.clone(),
            ));
        }
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
            cameras,
            unlock: Arc::new(Unlock::new(recipient, auto_lock, identity)),
            accounts,
            audit,
            throttle: Arc::new(crate::auth::throttle::Throttle::new()),
            access: Arc::new(crate::lan::AccessPolicy::from_config(&config.web)),
            egress,
            events,
            media,
            views: Arc::new(crate::audit::Debounce::new(VIEW_DEBOUNCE)),
            shutdown: shutdown.clone(),
        };
        let web = crate::web::serve(state, shutdown.clone())
            .await
            .map_err(|source| ServeError::Listen { address: config.web.listen, source })?;

        let health = Arc::new(health);
        let notifier = match Notifier::from_environment() {
            Ok(notifier) => notifier.map(Arc::new),
            Err(e) => {
                tracing::warn!(error = %e, "cannot talk to systemd; no readiness or watchdog");
                None
            }
        };
        if let Some(notifier) = &notifier {
            let status = format!("recording {} camera(s); web UI at {}", config.cameras.len(), web.url());
            if let Err(e) = notifier.ready(&status) {
                tracing::warn!(error = %e, "cannot tell systemd we are ready");
            }
            if let Some(interval) = crate::notify::watchdog_interval() {
                tracing::debug!(interval_ms = interval.as_millis() as u64, "petting the systemd watchdog");
                ingest.spawn(watchdog_loop(notifier.clone(), interval, health, shutdown));
            }
        }
        Ok(Service { config, index, web, _lock: lock, trigger, ingest, writers, notifier })
    }

    /// Closes every open clip and waits for the files to be finished.
    pub async fn stop(mut self) {
        if let Some(notifier) = &self.notifier {
            let _ = notifier.stopping();
        }
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
        event_max_age_us: i64::from(config.storage.event_max_age_days) * 86_400 * 1_000_000,
    }
}

fn spawn_writer(
    camera: String,
    mut writer: ClipWriter,
    mut events: mpsc::Receiver<ClipEvent>,
    retention: Arc<Retention>,
    health: Arc<WriterHealth>,
) -> Result<JoinHandle<()>, ServeError> {
    let name = format!("writer-{camera}");
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || {
            let _alive = AliveGuard(health.clone());
            let mut failing = false;
            while let Some(event) = events.blocking_recv() {
                health.begin(Instant::now());
                let result = writer.handle(event);
                health.end();
                match result {
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

/// Pets the watchdog every `interval` while the recorders are healthy; logs once when they
/// stop being healthy (systemd then restarts hearth) and once if they recover in time.
async fn watchdog_loop(
    notifier: Arc<Notifier>,
    interval: Duration,
    health: Arc<Health>,
    mut shutdown: shutdown::Shutdown,
) {
    let mut unhealthy = false;
    loop {
        match health.problem(Instant::now()) {
            None => {
                if unhealthy {
                    tracing::info!("recorders healthy again; petting the watchdog");
                    unhealthy = false;
                }
                if let Err(e) = notifier.watchdog() {
                    tracing::warn!(error = %e, "cannot pet the systemd watchdog");
                }
            }
            Some(problem) if !unhealthy => {
                tracing::error!(%problem, "recorders unhealthy: no longer petting the systemd watchdog, which will restart hearth");
                unhealthy = true;
            }
            Some(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_until_a_writer_is_stuck_or_gone() {
        let mut health = Health::default();
        let door = health.add_writer("door");
        let yard = health.add_writer("yard");
        let t0 = Instant::now() + Duration::from_secs(5);
        assert_eq!(health.problem(t0), None, "idle writers (offline cameras) are healthy");

        door.begin(t0);
        assert_eq!(health.problem(t0 + Duration::from_secs(10)), None, "a slow write is not a stuck one");
        let stuck = health.problem(t0 + WRITER_STUCK_AFTER).expect("stuck");
        assert!(stuck.contains("door") && stuck.contains("stuck"), "{stuck}");
        door.end();
        assert_eq!(health.problem(t0 + WRITER_STUCK_AFTER * 2), None, "it recovered");

        drop(AliveGuard(yard));
        let gone = health.problem(t0).expect("gone");
        assert!(gone.contains("yard") && gone.contains("stopped"), "{gone}");
    }

    #[test]
    fn a_panicking_writer_thread_counts_as_gone() {
        let mut health = Health::default();
        let writer = health.add_writer("door");
        let thread = std::thread::spawn(move || {
            let _alive = AliveGuard(writer);
            panic!("simulated writer panic");
        });
        assert!(thread.join().is_err());
        assert!(health.problem(Instant::now()).is_some());
    }
}
