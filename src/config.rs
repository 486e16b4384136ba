//! The configuration file: its TOML shape, defaults, and validation.
//!
//! `Config::load` is the only way in. It rejects unknown keys and every invalid value with a
//! [`ConfigError`] that names the offending key (`camera[1].url`, `storage.max_bytes`, …), so a
//! homeowner editing `/etc/hearth/config.toml` by hand learns exactly what to fix. Paths that
//! are relative in the file are resolved against `data_dir` (the identity) or the config file's
//! directory (secrets), and camera passwords are read from their secret files here, once, so
//! nothing downstream touches secret files or risks logging them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::gate::{GateConfig, RecordMode};

/// What can be wrong with a config file. Every variant says which key is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), message: message.into() }
    }
}

/// A byte count written as `"200GB"`, `"512 MiB"`, or a plain integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses decimal (kB, MB, GB, TB) and binary (KiB, MiB, GiB, TiB) suffixes; `B` or no
    /// suffix means bytes. Decimal units follow disk vendors, so "200GB" fits a "200 GB" disk.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().map_err(|_| format!("`{text}` is not a size like \"200GB\" or \"512MiB\""))?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "m" | "mb" => 1_000_000,
            "g" | "gb" => 1_000_000_000,
            "t" | "tb" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            other => return Err(format!("unknown size unit `{other}` (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)")),
        };
        let bytes = number * multiplier as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(format!("`{text}` is out of range"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] =
            [("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("kB", 1_000)];
        for (unit, size) in UNITS {
            if self.0 >= size {
                return write!(f, "{:.1}{unit}", self.0 as f64 / size as f64);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// How RTP travels from the camera. TCP (interleaved in the RTSP connection) is the default
/// because it survives Wi-Fi packet loss and NAT without a single dropped slice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

/// The whole configuration, as loaded and validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the file was read from; secrets paths are relative to its directory.
    pub path: PathBuf,
    pub data_dir: PathBuf,
    pub storage: StorageConfig,
    pub crypto: CryptoConfig,
    pub web: WebConfig,
    pub audit: AuditConfig,
    pub events: EventsConfig,
    /// The household's MQTT broker, when configured.
    pub mqtt: Option<MqttConfig>,
    pub cameras: Vec<CameraConfig>,
}

/// `[mqtt]`: where events are published (see `mqtt.rs`).
#[derive(Clone, PartialEq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS, verified against `ca_file` (PEM) or the system's roots.
    pub tls: bool,
    pub ca_pem: Option<Vec<u8>>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub topic_prefix: String,
    /// Home Assistant discovery prefix; `None` turns discovery off.
    pub discovery_prefix: Option<String>,
    /// Publish a JPEG of the moment with each event (and a camera entity for it).
    pub snapshots: bool,
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("topic_prefix", &self.topic_prefix)
            .field("discovery_prefix", &self.discovery_prefix)
            .field("snapshots", &self.snapshots)
            .finish()
    }
}

/// Motion, doorbell and webhook events.
#[derive(Clone, Debug, PartialEq)]
pub struct EventsConfig {
    /// Events (and their thumbnails) older than this are deleted.
    pub retention_days: u32,
}

/// The viewer audit log.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditConfig {
    /// Entries older than this are deleted: the hub keeps its own logs minimal too.
    pub retention_days: u32,
}

/// The networks a home hub serves by default: loopback, the RFC 1918 private ranges,
/// link-local, and IPv6 unique-local. An owner's VPN subnet is added in the config.
pub const DEFAULT_ALLOWED_NETWORKS: [&str; 8] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "fe80::/10",
    "fc00::/7",
];

/// The web UI and API.
#[derive(Clone, Debug, PartialEq)]
pub struct WebConfig {
    /// Address to listen on: loopback, a LAN address, or `0.0.0.0`; requests are still
    /// accepted only from `allowed_networks`.
    pub listen: std::net::SocketAddr,
    /// Client networks a request may come from; anything else gets 403 before any handler.
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// Extra names the hub answers to in the `Host` header (its hostname, `<hostname>.local`,
    /// `localhost` and IP literals are always accepted). Other names are refused, which
    /// defeats DNS rebinding.
    pub hostnames: Vec<String>,
    /// A session ends after this long without a request.
    pub session_idle: std::time::Duration,
    /// A session ends this long after login, however active.
    pub session_lifetime: std::time::Duration,
    /// Lock playback again this many hours after an unlock (none: stay unlocked).
    pub auto_lock_hours: Option<u32>,
    pub tls: TlsMode,
    /// Certificate and key (PEM), absolute after loading.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
}

/// When the web server speaks HTTPS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// HTTPS unless listening on loopback only (where nothing crosses a network).
    #[default]
    Auto,
    On,
    /// Plain HTTP: only for an owner's own reverse proxy, which then does TLS.
    Off,
}

impl WebConfig {
    pub fn uses_tls(&self) -> bool {
        match self.tls {
            TlsMode::On => true,
            TlsMode::Off => false,
            TlsMode::Auto => !self.listen.ip().is_loopback(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StorageConfig {
    /// A new clip starts at the first keyframe after this many seconds.
    pub clip_seconds: u32,
    /// Budget for the whole archive; the oldest clips go first.
    pub max_bytes: ByteSize,
    /// Nothing is kept longer than this, whatever the budget (clips holding no event).
    pub max_age_days: u32,
    /// Clips holding an event (with its pre- and post-roll) are kept this long instead.
    pub event_max_age_days: u32,
    /// Upper bound, in seconds, on recorded video a crash or power cut may lose.
    pub flush_seconds: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CryptoConfig {
    /// The age X25519 recipient every clip is encrypted to (public key only).
    pub recipient: String,
    /// The passphrase-encrypted identity, absolute after loading.
    pub identity_file: PathBuf,
}

/// One camera. `password` holds the secret after loading, whether it came from the config or
/// from `password_file`; it is never printed by `Debug`.
#[derive(Clone, PartialEq)]
pub struct CameraConfig {
    pub name: String,
    pub url: url::Url,
    /// A low-resolution second stream of the same camera, used for motion detection only.
    pub sub_url: Option<url::Url>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub transport: Transport,
    pub audio: bool,
    pub max_bytes: Option<ByteSize>,
    /// Motion detection on this camera's stream, when enabled.
    pub motion: Option<crate::motion::MotionConfig>,
    /// Secret a device presents to `POST /api/hooks/{camera}/{kind}` (none: no webhook).
    pub hook_token: Option<String>,
    /// The camera's ONVIF event service, when it has one (motion and doorbell events).
    pub onvif: Option<OnvifConfig>,
    /// What is recorded: continuously, around events only, or both (`record`, pre-/post-roll).
    pub record: GateConfig,
}

/// `[camera.onvif]`: where to subscribe to a camera's own events (PullPoint).
#[derive(Clone, PartialEq)]
pub struct OnvifConfig {
    /// The device service, e.g. `http://192.168.1.20/onvif/device_service`.
    pub url: url::Url,
    /// WS-Security UsernameToken credentials (default: the camera's RTSP ones).
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for OnvifConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnvifConfig")
            .field("url", &redacted_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl fmt::Debug for CameraConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CameraConfig")
            .field("name", &self.name)
            .field("url", &redacted_url(&self.url))
            .field("sub_url", &self.sub_url.as_ref().map(redacted_url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("transport", &self.transport)
            .field("audio", &self.audio)
            .field("max_bytes", &self.max_bytes)
            .field("motion", &self.motion)
            .field("hook_token", &self.hook_token.as_ref().map(|_| "<redacted>"))
            .field("onvif", &self.onvif)
            .field("record", &self.record)
            .finish()
    }
}

/// The URL without any credentials embedded in it, safe for logs and the UI.
pub fn redacted_url(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

// --- The file as written. Separate from the validated types so that serde enforces the shape
// (unknown keys are errors) and validation can name keys precisely.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    #[serde(default)]
    storage: RawStorage,
    crypto: Option<RawCrypto>,
    #[serde(default)]
    web: RawWeb,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    events: RawEvents,
    mqtt: Option<RawMqtt>,
    #[serde(default)]
    camera: Vec<RawCamera>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    #[serde(default = "default_listen")]
    listen: String,
    auto_lock_hours: Option<u32>,
    #[serde(default)]
    tls: TlsMode,
    #[serde(default = "default_tls_cert")]
    tls_cert: PathBuf,
    #[serde(default = "default_tls_key")]
    tls_key: PathBuf,
    #[serde(default = "default_allowed_networks")]
    allowed_networks: Vec<String>,
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default = "default_session_idle_hours")]
    session_idle_hours: u32,
    #[serde(default = "default_session_max_days")]
    session_max_days: u32,
}

fn default_allowed_networks() -> Vec<String> {
    DEFAULT_ALLOWED_NETWORKS.iter().map(|s| (*s).to_owned()).collect()
}
fn default_session_idle_hours() -> u32 {
    24 * 7
}
fn default_session_max_days() -> u32 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    #[serde(default = "default_audit_retention_days")]
    retention_days: u32,
}

impl Default for RawAudit {
    fn default() -> Self {
        RawAudit { retention_days: default_audit_retention_days() }
    }
}

fn default_audit_retention_days() -> u32 {
    365
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    #[serde(default = "default_events_retention_days")]
    retention_days: u32,
}

impl Default for RawEvents {
    fn default() -> Self {
        RawEvents { retention_days: default_events_retention_days() }
    }
}

fn default_events_retention_days() -> u32 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_topic_prefix")]
    topic_prefix: String,
    #[serde(default = "yes")]
    discovery: bool,
    #[serde(default = "default_discovery_prefix")]
    discovery_prefix: String,
    #[serde(default = "yes")]
    snapshots: bool,
}

fn default_topic_prefix() -> String {
    "hearth".into()
}
fn default_discovery_prefix() -> String {
    "homeassistant".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMotion {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "default_motion_fps")]
    fps: f32,
    #[serde(default = "default_threshold")]
    threshold: u8,
    /// Percent of the watched area.
    #[serde(default = "default_min_area_percent")]
    min_area_percent: f32,
    #[serde(default)]
    zones: Vec<Vec<(f32, f32)>>,
    #[serde(default)]
    masks: Vec<Vec<(f32, f32)>>,
}

fn yes() -> bool {
    true
}
fn default_motion_fps() -> f32 {
    5.0
}
fn default_threshold() -> u8 {
    25
}
fn default_min_area_percent() -> f32 {
    0.4
}

impl Default for RawWeb {
    fn default() -> Self {
        RawWeb {
            listen: default_listen(),
            auto_lock_hours: None,
            tls: TlsMode::default(),
            tls_cert: default_tls_cert(),
            tls_key: default_tls_key(),
            allowed_networks: default_allowed_networks(),
            hostnames: Vec::new(),
            session_idle_hours: default_session_idle_hours(),
            session_max_days: default_session_max_days(),
        }
    }
}

fn default_tls_cert() -> PathBuf {
    PathBuf::from("tls/cert.pem")
}

fn default_tls_key() -> PathBuf {
    PathBuf::from("tls/key.pem")
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    #[serde(default = "default_clip_seconds")]
    clip_seconds: u32,
    #[serde(default = "default_max_bytes")]
    max_bytes: ByteSize,
    #[serde(default = "default_max_age_days")]
    max_age_days: u32,
    event_max_age_days: Option<u32>,
    #[serde(default = "default_flush_seconds")]
    flush_seconds: u32,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            clip_seconds: default_clip_seconds(),
            max_bytes: default_max_bytes(),
            max_age_days: default_max_age_days(),
            event_max_age_days: None,
            flush_seconds: default_flush_seconds(),
        }
    }
}

fn default_clip_seconds() -> u32 {
    60
}
fn default_max_bytes() -> ByteSize {
    ByteSize(200_000_000_000)
}
fn default_max_age_days() -> u32 {
    30
}
fn default_flush_seconds() -> u32 {
    2
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrypto {
    recipient: Option<String>,
    #[serde(default = "default_identity_file")]
    identity_file: PathBuf,
}

fn default_identity_file() -> PathBuf {
    PathBuf::from("identity.age")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    name: Option<String>,
    url: Option<String>,
    sub_url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default)]
    transport: Transport,
    #[serde(default)]
    audio: bool,
    max_bytes: Option<ByteSize>,
    motion: Option<RawMotion>,
    hook_token: Option<String>,
    hook_token_file: Option<PathBuf>,
    onvif: Option<RawOnvif>,
    record: Option<String>,
    pre_roll_seconds: Option<u32>,
    post_roll_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnvif {
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
}

impl Config {
    /// Reads, parses and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses config text as if it were read from `path` (used for resolving relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string().trim_end().to_owned() })?;
        let config_dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        validate(raw, path, &config_dir)
    }

    pub fn clips_dir(&self) -> PathBuf {
        self.data_dir.join("clips")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("index.sqlite3")
    }
}

fn validate(raw: RawConfig, path: &Path, config_dir: &Path) -> Result<Config, ConfigError> {
    if raw.data_dir.as_os_str().is_empty() {
        return Err(ConfigError::invalid("data_dir", "must not be empty"));
    }
    let data_dir = if raw.data_dir.is_absolute() { raw.data_dir } else { config_dir.join(raw.data_dir) };
    let storage = validate_storage(raw.storage, raw.events.retention_days)?;
    let crypto = validate_crypto(raw.crypto, &data_dir)?;
    let web = validate_web(raw.web, &data_dir)?;
    if !(1..=3650).contains(&raw.audit.retention_days) {
        return Err(ConfigError::invalid("audit.retention_days", "must be between 1 and 3650"));
    }
    let audit = AuditConfig { retention_days: raw.audit.retention_days };
    if !(1..=3650).contains(&raw.events.retention_days) {
        return Err(ConfigError::invalid("events.retention_days", "must be between 1 and 3650"));
    }
    let events = EventsConfig { retention_days: raw.events.retention_days };
    let mqtt = raw.mqtt.map(|m| validate_mqtt(m, config_dir)).transpose()?;
    let mut cameras: Vec<CameraConfig> = Vec::with_capacity(raw.camera.len());
    for (i, raw_camera) in raw.camera.into_iter().enumerate() {
        let camera = validate_camera(i, raw_camera, config_dir)?;
        if cameras.iter().any(|c| c.name == camera.name) {
            return Err(ConfigError::invalid(
                format!("camera[{i}].name"),
                format!("`{}` is used by another camera; names must be unique", camera.name),
            ));
        }
        cameras.push(camera);
    }
    Ok(Config { path: path.to_owned(), data_dir, storage, crypto, web, audit, events, mqtt, cameras })
}

/// Event clips are kept, unless configured, as long as the longer of continuous footage and
/// the events themselves: never shorter than the clips around them, nor than their marks.
fn validate_storage(raw: RawStorage, events_retention_days: u32) -> Result<StorageConfig, ConfigError> {
    if !(1..=3600).contains(&raw.clip_seconds) {
        return Err(ConfigError::invalid("storage.clip_seconds", "must be between 1 and 3600"));
    }
    if raw.max_bytes.0 < 1_000_000 {
        return Err(ConfigError::invalid("storage.max_bytes", "must be at least 1MB"));
    }
    if raw.max_age_days == 0 {
        return Err(ConfigError::invalid("storage.max_age_days", "must be at least 1"));
    }
    if !(1..=60).contains(&raw.flush_seconds) {
        return Err(ConfigError::invalid("storage.flush_seconds", "must be between 1 and 60"));
    }
    let event_max_age_days = raw.event_max_age_days.unwrap_or(raw.max_age_days.max(events_retention_days));
    if event_max_age_days == 0 {
        return Err(ConfigError::invalid("storage.event_max_age_days", "must be at least 1"));
    }
    Ok(StorageConfig {
        clip_seconds: raw.clip_seconds,
        max_bytes: raw.max_bytes,
        max_age_days: raw.max_age_days,
        event_max_age_days,
        flush_seconds: raw.flush_seconds,
    })
}

fn validate_crypto(raw: Option<RawCrypto>, data_dir: &Path) -> Result<CryptoConfig, ConfigError> {
    let raw =
        raw.ok_or_else(|| ConfigError::invalid("crypto.recipient", "missing: run `hearth init` to create a key"))?;
    let recipient = raw
        .recipient
        .ok_or_else(|| ConfigError::invalid("crypto.recipient", "missing: run `hearth init` to create a key"))?;
    if recipient.parse::<age::x25519::Recipient>().is_err() {
        return Err(ConfigError::invalid("crypto.recipient", "is not an age X25519 recipient (it starts with `age1`)"));
    }
    let identity_file =
        if raw.identity_file.is_absolute() { raw.identity_file } else { data_dir.join(raw.identity_file) };
    Ok(CryptoConfig { recipient, identity_file })
}

fn validate_web(raw: RawWeb, data_dir: &Path) -> Result<WebConfig, ConfigError> {
    let listen: std::net::SocketAddr = raw.listen.parse().map_err(|_| {
        ConfigError::invalid("web.listen", format!("`{}` is not an address like 127.0.0.1:8080", raw.listen))
    })?;
    let mut allowed_networks = Vec::with_capacity(raw.allowed_networks.len());
    for (i, text) in raw.allowed_networks.iter().enumerate() {
        let network = parse_network(text).ok_or_else(|| {
            ConfigError::invalid(
                format!("web.allowed_networks[{i}]"),
                format!("`{text}` is not a network like \"192.168.1.0/24\" or \"fd00::/8\""),
            )
        })?;
        allowed_networks.push(network);
    }
    for (i, name) in raw.hostnames.iter().enumerate() {
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid {
            return Err(ConfigError::invalid(format!("web.hostnames[{i}]"), format!("`{name}` is not a host name")));
        }
    }
    if raw.session_idle_hours == 0 {
        return Err(ConfigError::invalid("web.session_idle_hours", "must be at least 1"));
    }
    if !(1..=365).contains(&raw.session_max_days) {
        return Err(ConfigError::invalid("web.session_max_days", "must be between 1 and 365"));
    }
    if raw.auto_lock_hours == Some(0) {
        return Err(ConfigError::invalid("web.auto_lock_hours", "must be at least 1 (or left out)"));
    }
    let absolute = |p: PathBuf| if p.is_absolute() { p } else { data_dir.join(p) };
    Ok(WebConfig {
        listen,
        allowed_networks,
        hostnames: raw.hostnames.iter().map(|h| h.trim_end_matches('.').to_ascii_lowercase()).collect(),
        session_idle: std::time::Duration::from_secs(u64::from(raw.session_idle_hours) * 3600),
        session_lifetime: std::time::Duration::from_secs(u64::from(raw.session_max_days) * 86400),
        auto_lock_hours: raw.auto_lock_hours,
        tls: raw.tls,
        tls_cert: absolute(raw.tls_cert),
        tls_key: absolute(raw.tls_key),
    })
}

fn validate_onvif(
    key: &str,
    raw: RawOnvif,
    camera_username: &Option<String>,
    camera_password: &Option<String>,
    config_dir: &Path,
) -> Result<OnvifConfig, ConfigError> {
    let text = raw.url.ok_or_else(|| {
        ConfigError::invalid(format!("{key}.url"), "missing (e.g. \"http://192.168.1.20/onvif/device_service\")")
    })?;
    let url = url::Url::parse(&text)
        .map_err(|e| ConfigError::invalid(format!("{key}.url"), format!("not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(format!("{key}.url"), "must be an http:// or https:// URL with a host"));
    }
    let password = match (raw.password, raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                format!("{key}.password_file"),
                "set either password or password_file, not both",
            ))
        }
        (Some(p), None) => Some(p),
        (None, Some(file)) => Some(read_secret_file(&format!("{key}.password_file"), &file, config_dir)?),
        (None, None) => None,
    };
    // The camera's own RTSP credentials are the usual ONVIF ones too.
    let (username, password) = match (raw.username, password) {
        (Some(u), p) => (Some(u), p),
        (None, Some(_)) => {
            return Err(ConfigError::invalid(format!("{key}.username"), "missing, but a password is set"))
        }
        (None, None) => (camera_username.clone(), camera_password.clone()),
    };
    Ok(OnvifConfig { url, username, password })
}

fn validate_mqtt(raw: RawMqtt, config_dir: &Path) -> Result<MqttConfig, ConfigError> {
    let text =
        raw.url.ok_or_else(|| ConfigError::invalid("mqtt.url", "missing (e.g. \"mqtt://192.168.1.10:1883\")"))?;
    let url = url::Url::parse(&text).map_err(|e| ConfigError::invalid("mqtt.url", format!("not a valid URL: {e}")))?;
    let tls = match url.scheme() {
        "mqtt" => false,
        "mqtts" => true,
        _ => return Err(ConfigError::invalid("mqtt.url", "must start with mqtt:// or mqtts://")),
    };
    let host =
        url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| ConfigError::invalid("mqtt.url", "has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    // Nothing leaves the house: a broker on the internet is refused outright.
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        let private = DEFAULT_ALLOWED_NETWORKS
            .iter()
            .filter_map(|n| n.parse::<ipnet::IpNet>().ok())
            .any(|n| n.contains(&crate::lan::canonical(ip)));
        if !private {
            return Err(ConfigError::invalid("mqtt.url", "the broker must be on your own network (a private address)"));
        }
    }
    let password = match (raw.password, raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid("mqtt.password_file", "set either password or password_file, not both"))
        }
        (Some(p), None) => Some(p),
        (None, Some(file)) => Some(read_secret_file("mqtt.password_file", &file, config_dir)?),
        (None, None) => None,
    };
    if password.is_some() && raw.username.is_none() {
        return Err(ConfigError::invalid("mqtt.username", "missing, but a password is set"));
    }
    let ca_pem = match raw.ca_file {
        Some(file) => {
            let path = if file.is_absolute() { file } else { config_dir.join(file) };
            Some(
                std::fs::read(&path)
                    .map_err(|e| ConfigError::invalid("mqtt.ca_file", format!("{}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    if ca_pem.is_some() && !tls {
        return Err(ConfigError::invalid("mqtt.ca_file", "only used with mqtts:// URLs"));
    }
    let valid_prefix = |p: &str| !p.is_empty() && !p.contains(['#', '+']) && !p.starts_with('/') && !p.ends_with('/');
    if !valid_prefix(&raw.topic_prefix) {
        return Err(ConfigError::invalid(
            "mqtt.topic_prefix",
            "must be a topic without wildcards or leading/trailing '/'",
        ));
    }
    if !valid_prefix(&raw.discovery_prefix) {
        return Err(ConfigError::invalid(
            "mqtt.discovery_prefix",
            "must be a topic without wildcards or leading/trailing '/'",
        ));
    }
    Ok(MqttConfig {
        host,
        port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
        tls,
        ca_pem,
        username: raw.username,
        password,
        topic_prefix: raw.topic_prefix,
        discovery_prefix: raw.discovery.then_some(raw.discovery_prefix),
        snapshots: raw.snapshots,
    })
}

fn validate_motion(key: &str, raw: RawMotion) -> Result<crate::motion::MotionConfig, ConfigError> {
    if !(0.5..=30.0).contains(&raw.fps) {
        return Err(ConfigError::invalid(format!("{key}.fps"), "must be between 0.5 and 30"));
    }
    if raw.threshold == 0 {
        return Err(ConfigError::invalid(format!("{key}.threshold"), "must be between 1 and 255"));
    }
    if !(0.01..=50.0).contains(&raw.min_area_percent) {
        return Err(ConfigError::invalid(format!("{key}.min_area_percent"), "must be between 0.01 and 50"));
    }
    for (name, polygons) in [("zones", &raw.zones), ("masks", &raw.masks)] {
        for (i, polygon) in polygons.iter().enumerate() {
            let in_frame = polygon.iter().all(|(x, y)| (0.0..=1.0).contains(x) && (0.0..=1.0).contains(y));
            if polygon.len() < 3 || !in_frame {
                return Err(ConfigError::invalid(
                    format!("{key}.{name}[{i}]"),
                    "must be at least 3 [x, y] points with 0 ≤ x, y ≤ 1 (fractions of the frame)",
                ));
            }
        }
    }
    let detector = crate::motion::detector::DetectorConfig {
        threshold: raw.threshold,
        min_area: raw.min_area_percent / 100.0,
        zones: raw.zones,
        masks: raw.masks,
        ..Default::default()
    };
    Ok(crate::motion::MotionConfig { fps: raw.fps, detector })
}

/// A CIDR network; a bare address means just that host.
fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// Camera names appear in paths and URLs, so they are restricted to a safe alphabet.
pub fn is_valid_camera_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

fn validate_camera(i: usize, raw: RawCamera, config_dir: &Path) -> Result<CameraConfig, ConfigError> {
    let key = |field: &str| format!("camera[{i}].{field}");
    let name = raw.name.ok_or_else(|| ConfigError::invalid(key("name"), "missing"))?;
    if !is_valid_camera_name(&name) {
        return Err(ConfigError::invalid(key("name"), format!("`{name}` must be 1-64 characters of a-z, 0-9 and '-'")));
    }
    let url_text = raw.url.ok_or_else(|| ConfigError::invalid(key("url"), "missing"))?;
    let url =
        url::Url::parse(&url_text).map_err(|e| ConfigError::invalid(key("url"), format!("not a valid URL: {e}")))?;
    if url.scheme() != "rtsp" && url.scheme() != "rtsps" {
        return Err(ConfigError::invalid(key("url"), "must start with rtsp://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(key("url"), "has no host"));
    }
    let sub_url = match raw.sub_url {
        Some(text) => {
            let sub = url::Url::parse(&text)
                .map_err(|e| ConfigError::invalid(key("sub_url"), format!("not a valid URL: {e}")))?;
            if !matches!(sub.scheme(), "rtsp" | "rtsps") || sub.host_str().is_none_or(str::is_empty) {
                return Err(ConfigError::invalid(key("sub_url"), "must be an rtsp:// URL with a host"));
            }
            Some(sub)
        }
        None => None,
    };
    let password = match (raw.password, raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(key("password_file"), "set either password or password_file, not both"))
        }
        (Some(p), None) => Some(p),
        (None, Some(file)) => Some(read_secret_file(&key("password_file"), &file, config_dir)?),
        (None, None) => None,
    };
    if raw.username.is_none() && password.is_some() {
        return Err(ConfigError::invalid(key("username"), "missing, but a password is set"));
    }
    let motion = match raw.motion {
        Some(motion) if motion.enabled => Some(validate_motion(&key("motion"), motion)?),
        _ => None,
    };
    let hook_token = match (raw.hook_token, raw.hook_token_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                key("hook_token_file"),
                "set either hook_token or hook_token_file, not both",
            ))
        }
        (Some(t), None) => Some(t),
        (None, Some(file)) => Some(read_secret_file(&key("hook_token_file"), &file, config_dir)?),
        (None, None) => None,
    };
    if sub_url.is_some() && motion.is_none() {
        return Err(ConfigError::invalid(key("sub_url"), "is only used for motion detection: add [camera.motion]"));
    }
    let onvif = match raw.onvif {
        Some(onvif) => Some(validate_onvif(&key("onvif"), onvif, &raw.username, &password, config_dir)?),
        None => None,
    };
    if hook_token.as_ref().is_some_and(|t| t.len() < 16) {
        return Err(ConfigError::invalid(key("hook_token"), "must be at least 16 characters (it is a password)"));
    }
    let record = validate_record(&key, &raw.record, raw.pre_roll_seconds, raw.post_roll_seconds)?;
    if record.mode == RecordMode::Events && motion.is_none() && onvif.is_none() && hook_token.is_none() {
        return Err(ConfigError::invalid(
            key("record"),
            "\"events\" records only around events, and this camera has no source of them: \
             add [camera.motion], [camera.onvif] or a hook_token",
        ));
    }
    Ok(CameraConfig {
        name,
        url,
        sub_url,
        username: raw.username,
        password,
        transport: raw.transport,
        audio: raw.audio,
        max_bytes: raw.max_bytes,
        motion,
        hook_token,
        onvif,
        record,
    })
}

/// `record`, `pre_roll_seconds`, `post_roll_seconds`.
fn validate_record(
    key: &dyn Fn(&str) -> String,
    mode: &Option<String>,
    pre_roll_seconds: Option<u32>,
    post_roll_seconds: Option<u32>,
) -> Result<GateConfig, ConfigError> {
    let mode = match mode.as_deref() {
        None | Some("continuous") => RecordMode::Continuous,
        Some("events") => RecordMode::Events,
        Some("both") => RecordMode::Both,
        Some(other) => {
            return Err(ConfigError::invalid(
                key("record"),
                format!("`{other}` is not a recording mode: use \"continuous\", \"events\" or \"both\""),
            ))
        }
    };
    let pre_roll = pre_roll_seconds.unwrap_or(DEFAULT_PRE_ROLL_SECONDS);
    if pre_roll > 60 {
        return Err(ConfigError::invalid(key("pre_roll_seconds"), "must be at most 60 (it is held in memory)"));
    }
    let post_roll = post_roll_seconds.unwrap_or(DEFAULT_POST_ROLL_SECONDS);
    if post_roll > 3600 {
        return Err(ConfigError::invalid(key("post_roll_seconds"), "must be at most 3600"));
    }
    Ok(GateConfig {
        mode,
        pre_roll_us: i64::from(pre_roll) * 1_000_000,
        post_roll_us: i64::from(post_roll) * 1_000_000,
    })
}

pub const DEFAULT_PRE_ROLL_SECONDS: u32 = 5;
pub const DEFAULT_POST_ROLL_SECONDS: u32 = 10;

/// Reads a one-line secret. A relative name is looked up first in systemd's
/// `$CREDENTIALS_DIRECTORY` (so `LoadCredential=` works), then next to the config file.
fn read_secret_file(key: &str, file: &Path, config_dir: &Path) -> Result<String, ConfigError> {
    let candidates: Vec<PathBuf> = if file.is_absolute() {
        vec![file.to_owned()]
    } else {
        let mut paths = Vec::new();
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            paths.push(Path::new(&dir).join(file));
        }
        paths.push(config_dir.join(file));
        paths
    };
    let found = candidates.iter().find(|p| p.exists()).ok_or_else(|| {
        ConfigError::invalid(key, format!("secret file {} does not exist", candidates[candidates.len() - 1].display()))
    })?;
    warn_if_readable_by_others(key, found);
    let text = std::fs::read_to_string(found)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", found.display())))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        return Err(ConfigError::invalid(key, format!("{} is empty", found.display())));
    }
    Ok(secret)
}

fn warn_if_readable_by_others(key: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(key, path = %path.display(), "secret file is readable by other users; chmod 600 it");
        }
    }
}

/// The config `hearth init` writes: the given data dir and recipient, sane defaults, and a
/// commented example camera so the homeowner sees the shape.
pub fn initial_config_text(data_dir: &Path, recipient: &str) -> String {
    format!(
        r#"# hearth configuration. Reference: docs/reference/config.md
data_dir = {data_dir:?}

[storage]
clip_seconds = 60          # a new clip at the first keyframe after this
max_bytes = "200GB"        # whole archive; oldest clips go first
max_age_days = 30          # clips without events
# event_max_age_days = 90  # clips holding an event (default: the longer of max_age_days and events.retention_days)

[crypto]
recipient = "{recipient}"  # public key: recording needs only this
identity_file = "identity.age"   # passphrase-encrypted private key; relative to data_dir

[web]
listen = "127.0.0.1:8080"  # "0.0.0.0:8443" to serve the LAN (log in with the owner account)
tls = "auto"               # HTTPS beyond loopback; "on" always, "off" behind your own proxy
# Who may connect at all (default: loopback, 10/8, 172.16/12, 192.168/16, link-local, fc00::/7).
# Add your VPN's subnet, e.g. "10.8.0.0/24" is already inside 10/8; "100.64.0.0/10" is not.
# allowed_networks = ["127.0.0.0/8", "::1/128", "192.168.0.0/16", "fc00::/7"]
# hostnames = ["nvr.home.arpa"]   # names besides this machine's hostname(.local)
# session_idle_hours = 168   # log out after a week without use
# session_max_days = 30      # and after 30 days regardless
tls_cert = "tls/cert.pem"  # self-signed by `hearth init`; or your own (relative to data_dir)
tls_key = "tls/key.pem"
# auto_lock_hours = 8      # lock playback again this long after an unlock

[audit]
retention_days = 365       # who watched what, kept this long

[events]
retention_days = 30        # motion and doorbell events (and their thumbnails)

# [mqtt]                   # optional: events to your own broker, Home Assistant discovery
# url = "mqtt://192.168.1.10:1883"   # mqtts:// for TLS (with ca_file = "broker-ca.pem")
# username = "hearth"
# password_file = "/etc/hearth/secrets/mqtt"
# snapshots = true         # a JPEG with each event (your broker's users can see it)

# [[camera]]
# name = "front-door"        # [a-z0-9-]+, unique; used in paths and URLs
# url = "rtsp://192.168.1.20:554/stream1"
# username = "admin"
# password_file = "/etc/hearth/secrets/front-door"   # chmod 600
# transport = "tcp"          # or "udp"
# audio = false              # privacy first: off unless you turn it on
# max_bytes = "50GB"         # optional per-camera budget
# hook_token_file = "/etc/hearth/secrets/front-door-hook"  # for POST /api/hooks/front-door/doorbell
# record = "continuous"      # "events": only around events; "both": all, event clips kept longer
# pre_roll_seconds = 5       # with "events": kept in memory, written when an event starts
# post_roll_seconds = 10     # recorded after the last event ends
# [camera.motion]            # motion detection (decodes the stream: costs CPU)
# fps = 5
# threshold = 25             # per-pixel change, 0-255
# min_area_percent = 0.4     # of the watched area
# zones = [[[0.0, 0.4], [1.0, 0.4], [1.0, 1.0], [0.0, 1.0]]]   # watch the lower part only
# masks = []                 # polygons to ignore (a road, a tree)
"#,
        data_dir = data_dir.display().to_string(),
    )
}

/// The placeholder key in `config.example.toml` (age's documentation example): installing
/// hearth puts that file at `/etc/hearth/config.toml`, and nobody must record to it.
pub const EXAMPLE_RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

/// Whether the file at `path` is a config `hearth init` has not made yet: one whose
/// `crypto.recipient` is still [`EXAMPLE_RECIPIENT`]. `init` may replace such a file.
pub fn is_uninitialised_example(path: &Path) -> bool {
    #[derive(Deserialize)]
    struct Partial {
        crypto: Option<PartialCrypto>,
    }
    #[derive(Deserialize)]
    struct PartialCrypto {
        recipient: Option<String>,
    }
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    let Ok(partial) = toml::from_str::<Partial>(&text) else { return false };
    partial.crypto.and_then(|c| c.recipient).as_deref() == Some(EXAMPLE_RECIPIENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/hearth/config.toml"))
    }

    fn minimal(extra: &str) -> String {
        format!("data_dir = \"/var/lib/hearth\"\n[crypto]\nrecipient = \"{RECIPIENT}\"\n{extra}")
    }

    fn error_key(text: &str) -> String {
        match parse(text).unwrap_err() {
            ConfigError::Invalid { key, .. } => key,
            other => other.to_string(),
        }
    }

    #[test]
    fn sizes_parse_decimal_and_binary_units() {
        assert_eq!(ByteSize::parse("200GB"), Ok(ByteSize(200_000_000_000)));
        assert_eq!(ByteSize::parse("512 MiB"), Ok(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("1.5kB"), Ok(ByteSize(1500)));
        assert_eq!(ByteSize::parse("42"), Ok(ByteSize(42)));
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("GB").is_err());
    }

    #[test]
    fn full_example_parses() {
        let text = minimal(
            r#"
[[camera]]
name = "front-door"
url = "rtsp://192.168.1.20:554/stream1"
username = "admin"
password = "hunter2"
transport = "udp"
audio = true
max_bytes = "50GB"
"#,
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.storage.clip_seconds, 60);
        assert_eq!(config.crypto.identity_file, Path::new("/var/lib/hearth/identity.age"));
        let camera = &config.cameras[0];
        assert_eq!(camera.transport, Transport::Udp);
        assert_eq!(camera.max_bytes, Some(ByteSize(50_000_000_000)));
        assert!(!format!("{camera:?}").contains("hunter2"), "Debug must not print the password");
    }

    #[test]
    fn the_shipped_example_config_parses() {
        // The example points at a secret file that exists on a real install; provide one.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("front-door"), "secret\n").unwrap();
        std::fs::write(dir.path().join("front-door-hook"), "a long webhook token\n").unwrap();
        let text = include_str!("../config.example.toml")
            .replace("/etc/hearth/secrets/", &format!("{}/", dir.path().display()));
        let config = parse(&text).unwrap();
        assert!(!config.cameras.is_empty());
        assert!(config.cameras[0].motion.is_some() && config.cameras[0].hook_token.is_some());
    }

    #[test]
    fn unknown_keys_are_named() {
        let message = parse(&minimal("[storage]\nclip_secs = 5\n")).unwrap_err().to_string();
        assert!(message.contains("clip_secs"), "{message}");
        let message =
            parse(&minimal("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\ncolour = 1\n")).unwrap_err().to_string();
        assert!(message.contains("colour"), "{message}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        assert_eq!(error_key("data_dir = \"/x\"\n"), "crypto.recipient");
        assert_eq!(error_key("data_dir = \"/x\"\n[crypto]\nrecipient = \"nope\"\n"), "crypto.recipient");
        assert_eq!(error_key(&minimal("[[camera]]\nname = \"Front Door\"\nurl = \"rtsp://h/\"\n")), "camera[0].name");
        assert_eq!(error_key(&minimal("[[camera]]\nname = \"a\"\nurl = \"http://h/\"\n")), "camera[0].url");
        assert_eq!(error_key(&minimal("[[camera]]\nname = \"a\"\nurl = \"not a url\"\n")), "camera[0].url");
        assert_eq!(
            error_key(&minimal(
                "[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\n[[camera]]\nname = \"a\"\nurl = \"rtsp://g/\"\n"
            )),
            "camera[1].name"
        );
        assert_eq!(error_key(&minimal("[storage]\nclip_seconds = 0\n")), "storage.clip_seconds");
        assert!(parse(&minimal("[web]\nlisten = \"0.0.0.0:8080\"\n")).is_ok(), "accounts exist: the LAN is fine");
        assert_eq!(
            error_key(&minimal("[web]\nallowed_networks = [\"10.0.0.0/8\", \"nope\"]\n")),
            "web.allowed_networks[1]"
        );
        assert_eq!(error_key(&minimal("[web]\nhostnames = [\"a b\"]\n")), "web.hostnames[0]");
        assert_eq!(error_key(&minimal("[web]\nsession_idle_hours = 0\n")), "web.session_idle_hours");
        assert_eq!(error_key(&minimal("[audit]\nretention_days = 0\n")), "audit.retention_days");
        assert_eq!(error_key(&minimal("[mqtt]\nurl = \"mqtt://8.8.8.8\"\n")), "mqtt.url", "no broker on the internet");
        let sub = "[[camera]]\nname = \"a\"\nurl = \"rtsp://h/main\"\nsub_url = \"rtsp://h/sub\"\n";
        assert_eq!(error_key(&minimal(sub)), "camera[0].sub_url", "a sub-stream without motion is pointless");
        assert!(parse(&minimal(&format!("{sub}[camera.motion]\n"))).unwrap().cameras[0].sub_url.is_some());
        assert_eq!(error_key(&minimal("[mqtt]\nurl = \"http://10.0.0.2\"\n")), "mqtt.url");
        let camera = "[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\n";
        assert_eq!(error_key(&minimal(&format!("{camera}record = \"sometimes\"\n"))), "camera[0].record");
        assert_eq!(
            error_key(&minimal(&format!("{camera}record = \"events\"\n"))),
            "camera[0].record",
            "events mode needs a source of events"
        );
        let hooked = format!("{camera}hook_token = \"sixteen chars at least\"\n");
        assert_eq!(
            error_key(&minimal(&format!("{hooked}record = \"events\"\npre_roll_seconds = 61\n"))),
            "camera[0].pre_roll_seconds"
        );
        let events = parse(&minimal(&format!("{hooked}record = \"events\"\npost_roll_seconds = 20\n"))).unwrap();
        assert_eq!(
            events.cameras[0].record,
            GateConfig { mode: RecordMode::Events, pre_roll_us: 5_000_000, post_roll_us: 20_000_000 }
        );
        assert_eq!(events.storage.event_max_age_days, 30, "the longer of max_age_days and events.retention_days");
        assert_eq!(error_key(&minimal("[storage]\nevent_max_age_days = 0\n")), "storage.event_max_age_days");
        assert_eq!(
            error_key(&minimal("[mqtt]\nurl = \"mqtt://10.0.0.2\"\ntopic_prefix = \"a/#\"\n")),
            "mqtt.topic_prefix"
        );
        let mqtt = parse(&minimal("[mqtt]\nurl = \"mqtts://10.0.0.2\"\ndiscovery = false\n")).unwrap().mqtt.unwrap();
        assert_eq!((mqtt.port, mqtt.tls, mqtt.discovery_prefix), (8883, true, None));
        let web = parse(&minimal("[web]\nallowed_networks = [\"192.168.1.7\", \"fd00::/8\"]\n")).unwrap().web;
        assert_eq!(web.allowed_networks, vec!["192.168.1.7/32".parse().unwrap(), "fd00::/8".parse().unwrap()]);
        let defaults = parse(&minimal("")).unwrap();
        assert_eq!(defaults.web.allowed_networks.len(), DEFAULT_ALLOWED_NETWORKS.len());
        assert_eq!(defaults.audit.retention_days, 365);
        assert_eq!(error_key(&minimal("[web]\nlisten = \"nope\"\n")), "web.listen");
        assert_eq!(
            error_key(&minimal("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\npassword = \"p\"\n")),
            "camera[0].username"
        );
    }

    #[test]
    fn password_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cam.secret"), "s3cret\n").unwrap();
        let text = minimal(
            "[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\nusername = \"u\"\npassword_file = \"cam.secret\"\n",
        );
        let config = Config::parse(&text, &dir.path().join("config.toml")).unwrap();
        assert_eq!(config.cameras[0].password.as_deref(), Some("s3cret"));
        let missing =
            minimal("[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\nusername = \"u\"\npassword_file = \"nope\"\n");
        assert_eq!(
            match Config::parse(&missing, &dir.path().join("config.toml")).unwrap_err() {
                ConfigError::Invalid { key, .. } => key,
                e => e.to_string(),
            },
            "camera[0].password_file"
        );
    }

    #[test]
    fn initial_config_round_trips() {
        let text = initial_config_text(Path::new("/srv/hearth"), RECIPIENT);
        let config = parse(&text).unwrap();
        assert_eq!(config.data_dir, Path::new("/srv/hearth"));
        assert_eq!(config.crypto.recipient, RECIPIENT);
        assert!(config.cameras.is_empty());
    }

    #[test]
    fn the_shipped_example_is_recognised_as_uninitialised() {
        let dir = tempfile::tempdir().unwrap();
        let example = dir.path().join("example.toml");
        std::fs::write(&example, include_str!("../config.example.toml")).unwrap();
        assert!(is_uninitialised_example(&example));
        let real = dir.path().join("real.toml");
        let recipient = "age1z9kvl9xqk6wdlcyq6nuxk8ec0ltqkfyhzjtymvw3zfmctq6nq6nsadd0k0";
        std::fs::write(&real, initial_config_text(dir.path(), recipient)).unwrap();
        assert!(!is_uninitialised_example(&real));
        assert!(!is_uninitialised_example(&dir.path().join("missing.toml")));
    }
}
