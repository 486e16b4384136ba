//! `hearth doctor`: checks that a hub is set up to record reliably and privately, and says how
//! to fix what is not.
//!
//! Each check does the real thing, against this machine and the configured cameras only: the
//! config loads; the key is the owner's and not the example's; the data dir is writable, has
//! room, is not on the SD card, and takes a 64 MiB write-and-fsync fast enough for the camera
//! count; every camera's host:port accepts a TCP connection within 2 s (nothing else is ever
//! contacted); the clock is synchronised; the TLS certificate is not about to expire; and the
//! web UI is not exposed on an address reachable from outside the LAN (read from the
//! interfaces with `getifaddrs`, no traffic). Each check prints one line — `ok`, `warn` or
//! `FAIL` — plus a fix when it is not ok. The exit status is 1 if anything failed.

use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::config::{self, CameraConfig, Config, ConfigError};

/// How long a camera gets to accept a TCP connection.
pub const CAMERA_TIMEOUT: Duration = Duration::from_secs(2);
/// Below this much free space in the data dir, warn.
pub const LOW_SPACE: u64 = 10 << 30;
/// What the write test writes (and removes).
pub const WRITE_TEST_BYTES: usize = 64 << 20;
/// The sustained write rate one camera needs, with room for a busy scene (bytes/s).
pub const PER_CAMERA_RATE: f64 = 0.5e6;
/// Warn when the certificate expires sooner than this.
pub const CERT_WARN: Duration = Duration::from_secs(30 * 86_400);

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        })
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub level: Level,
    /// What was checked: `config`, `camera front-door`, …
    pub check: String,
    pub message: String,
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding { level: Level::Ok, check: check.into(), message: message.into(), fix: None }
    }

    fn warn(check: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { level: Level::Warn, check: check.into(), message: message.into(), fix: Some(fix.into()) }
    }

    fn fail(check: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { level: Level::Fail, check: check.into(), message: message.into(), fix: Some(fix.into()) }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<5} {:<18} {}", self.level.to_string(), self.check, self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n{:<24} fix: {fix}", "")?;
        }
        Ok(())
    }
}

/// Runs every check for the config at `config_path`, printing each finding as it comes.
/// Exit status 0 when nothing failed (warnings allowed), 1 otherwise.
pub fn run(config_path: &Path) -> ExitCode {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "hearth doctor: checking {}", config_path.display());
    let findings = check_all(config_path, &mut |finding| {
        let _ = writeln!(out, "{finding}");
        let _ = out.flush();
    });
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    let (warnings, failures) = (count(Level::Warn), count(Level::Fail));
    let _ = writeln!(out, "{warnings} warning(s), {failures} failure(s)");
    if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Every check, in order; `report` sees each finding as soon as it is known.
pub fn check_all(config_path: &Path, report: &mut dyn FnMut(&Finding)) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut add = |finding: Finding, findings: &mut Vec<Finding>| {
        report(&finding);
        findings.push(finding);
    };
    let config = match check_config(config_path) {
        Ok((finding, config)) => {
            add(finding, &mut findings);
            config
        }
        Err(finding) => {
            add(finding, &mut findings);
            return findings;
        }
    };
    add(check_key(&config, config_path), &mut findings);
    let data_dir_ok = {
        let finding = check_data_dir(&config);
        let ok = finding.level != Level::Fail;
        add(finding, &mut findings);
        ok
    };
    if data_dir_ok {
        add(check_disk_space(&config), &mut findings);
        add(check_write_speed(&config), &mut findings);
    }
    for finding in check_cameras(&config.cameras) {
        add(finding, &mut findings);
    }
    add(check_media_helper(&config, &crate::media::Media::locate()), &mut findings);
    add(check_clock(), &mut findings);
    add(check_certificate(&config, SystemTime::now()), &mut findings);
    add(check_exposure(config.web.listen, &interface_addresses()), &mut findings);
    findings
}

fn check_config(path: &Path) -> Result<(Finding, Config), Finding> {
    let init = format!("sudo hearth --config {} init --data-dir /var/lib/hearth", path.display());
    if config::is_uninitialised_example(path) {
        return Err(Finding::fail(
            "config",
            format!("{} is still the example config: its key is not yours", path.display()),
            format!("create your key and config with `{init}`"),
        ));
    }
    match Config::load(path) {
        Ok(config) => {
            let message = format!(
                "{} loads: {} camera(s), data dir {}",
                path.display(),
                config.cameras.len(),
                config.data_dir.display()
            );
            Ok((Finding::ok("config", message), config))
        }
        Err(ConfigError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => Err(Finding::fail(
            "config",
            format!("{} does not exist", path.display()),
            format!("create it with `{init}`, or point --config at yours"),
        )),
        Err(e) => Err(Finding::fail(
            "config",
            one_line(&e.to_string()),
            format!("edit {} (every key is explained in docs/reference/config.md)", path.display()),
        )),
    }
}

/// A multi-line parse error (TOML draws the line with a caret under the key) as one line.
fn one_line(text: &str) -> String {
    let is_drawing = |line: &str| {
        let line = line.trim_start();
        line.starts_with('|') || line.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start().starts_with('|')
    };
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !is_drawing(l)).collect::<Vec<_>>().join(": ")
}

fn check_key(config: &Config, config_path: &Path) -> Finding {
    let identity = &config.crypto.identity_file;
    if config.crypto.recipient == config::EXAMPLE_RECIPIENT {
        return Finding::fail(
            "key",
            "crypto.recipient is the example key from config.example.toml: recordings would be encrypted to a key you do not hold",
            format!("sudo hearth --config {} init --data-dir {}", config_path.display(), config.data_dir.display()),
        );
    }
    match std::fs::metadata(identity) {
        Ok(meta) if meta.is_file() => Finding::ok(
            "key",
            format!(
                "recordings are encrypted to {}; private key in {}",
                short_key(&config.crypto.recipient),
                identity.display()
            ),
        ),
        Ok(_) => Finding::fail(
            "key",
            format!("{} is not a file", identity.display()),
            "restore identity.age from your backup",
        ),
        Err(e) => Finding::fail(
            "key",
            format!("cannot read the private key {}: {e}", identity.display()),
            "restore identity.age from your backup (without it nobody can watch recordings); \
             recording still works with the public key alone",
        ),
    }
}

fn short_key(recipient: &str) -> String {
    let head: String = recipient.chars().take(12).collect();
    let tail: String = recipient.chars().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{head}…{tail}")
}

fn check_data_dir(config: &Config) -> Finding {
    let dir = &config.data_dir;
    let chown = format!("sudo chown -R hearth:hearth {}", dir.display());
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Finding::fail("data dir", format!("{} is not a directory", dir.display()), "fix data_dir"),
        Err(e) => {
            return Finding::fail(
                "data dir",
                format!("{}: {e}", dir.display()),
                format!("create it with `sudo hearth init --data-dir {}`, or fix data_dir", dir.display()),
            )
        }
    }
    match tempfile::Builder::new().prefix(".doctor-").tempfile_in(dir) {
        Ok(_) => Finding::ok("data dir", format!("{} exists and is writable", dir.display())),
        Err(e) => Finding::fail(
            "data dir",
            format!("cannot write in {}: {e}", dir.display()),
            format!("{chown} (and run doctor as the user the service runs as)"),
        ),
    }
}

/// Free space (statvfs, for an unprivileged user) of the filesystem holding `dir`.
pub fn free_space(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated; statvfs fills the buffer we own and it is read only on success.
    if unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0.
    let stat = unsafe { stat.assume_init() };
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Bytes of regular files below `dir` (0 if it does not exist).
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => tree_size(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn size(bytes: u64) -> String {
    config::ByteSize(bytes).to_string()
}

fn check_disk_space(config: &Config) -> Finding {
    let dir = &config.data_dir;
    let free = match free_space(dir) {
        Ok(free) => free,
        Err(e) => {
            return Finding::fail(
                "disk space",
                format!("cannot read free space of {}: {e}", dir.display()),
                "check the mount",
            )
        }
    };
    let archive = tree_size(&config.clips_dir());
    let budget = config.storage.max_bytes.0;
    let usable = free.saturating_add(archive);
    let summary =
        format!("{} free, recordings use {}, storage.max_bytes = {}", size(free), size(archive), size(budget));
    if free < LOW_SPACE {
        return Finding::warn(
            "disk space",
            format!("only {summary}"),
            "record to a bigger disk (a USB SSD: docs/guide/raspberry-pi.md), or lower storage.max_bytes so retention keeps room",
        );
    }
    if usable < budget {
        // Leave a few GB for the index, the clip being written and the system.
        let fits = usable.saturating_sub(LOW_SPACE / 2) / 1_000_000_000;
        return Finding::warn(
            "disk space",
            format!("the budget does not fit: {summary}"),
            format!("set storage.max_bytes = \"{fits}GB\" so retention, not a full disk, decides what goes"),
        );
    }
    if is_sd_card(dir) {
        return Finding::warn(
            "disk space",
            format!("{} is on the SD card ({summary})", dir.display()),
            "SD cards wear out under continuous writes: put data_dir on a USB SSD (docs/guide/raspberry-pi.md)",
        );
    }
    Finding::ok("disk space", summary)
}

/// Whether `dir` is on an MMC/SD device (block major 179).
fn is_sd_card(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    const MMC_BLOCK_MAJOR: u64 = 179;
    std::fs::metadata(dir).is_ok_and(|m| libc::major(m.dev()) as u64 == MMC_BLOCK_MAJOR)
}

fn check_write_speed(config: &Config) -> Finding {
    let dir = &config.data_dir;
    if free_space(dir).unwrap_or(0) < 2 * WRITE_TEST_BYTES as u64 {
        return Finding::warn("write speed", "not measured: the disk is too full", "free some space first");
    }
    let rate = match measure_write_speed(dir, WRITE_TEST_BYTES) {
        Ok(rate) => rate,
        Err(e) => {
            return Finding::fail("write speed", format!("writing a test file failed: {e}"), "check the disk (dmesg)")
        }
    };
    let cameras = config.cameras.len().max(1);
    let need = cameras as f64 * PER_CAMERA_RATE;
    let message = format!(
        "{:.1} MB/s written and fsynced; {} camera(s) need about {:.1} MB/s",
        rate / 1e6,
        config.cameras.len(),
        need / 1e6
    );
    let fix = "use a faster disk: a USB SSD on a USB 3 port rather than the SD card (docs/guide/raspberry-pi.md)";
    if rate < need {
        Finding::fail("write speed", format!("too slow: {message}"), fix)
    } else if rate < 2.0 * need {
        Finding::warn("write speed", format!("little headroom: {message}"), fix)
    } else {
        Finding::ok("write speed", message)
    }
}

/// Writes `bytes` of incompressible data to a temporary file in `dir`, fsyncs it, removes it,
/// and returns bytes per second.
pub fn measure_write_speed(dir: &Path, bytes: usize) -> io::Result<f64> {
    use rand::RngCore;
    let mut block = vec![0u8; 1 << 20];
    rand::thread_rng().fill_bytes(&mut block);
    let mut file = tempfile::Builder::new().prefix(".doctor-write-test-").tempfile_in(dir)?;
    let started = Instant::now();
    let mut written = 0;
    while written < bytes {
        let n = block.len().min(bytes - written);
        file.write_all(&block[..n])?;
        written += n;
    }
    file.as_file().sync_all()?;
    let elapsed = started.elapsed().as_secs_f64().max(1e-6);
    file.close()?;
    Ok(written as f64 / elapsed)
}

/// One TCP connection attempt per configured camera, in parallel, each within
/// [`CAMERA_TIMEOUT`]. Only the cameras' own host:port are contacted.
pub fn check_cameras(cameras: &[CameraConfig]) -> Vec<Finding> {
    if cameras.is_empty() {
        return vec![Finding::warn(
            "cameras",
            "no [[camera]] configured: nothing is recorded",
            "add your cameras (docs/guide/cameras.md lists the RTSP URLs of common brands)",
        )];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = cameras.iter().map(|camera| scope.spawn(move || check_camera(camera))).collect();
        handles.into_iter().map(|h| h.join().expect("camera check does not panic")).collect()
    })
}

fn check_camera(camera: &CameraConfig) -> Finding {
    let check = format!("camera {}", camera.name);
    let host = camera.url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = camera.url.port().unwrap_or(554);
    let target = format!("{host}:{port}");
    let addresses: Vec<SocketAddr> = match (host.as_str(), port).to_socket_addrs() {
        Ok(addresses) => addresses.collect(),
        Err(e) => {
            return Finding::fail(
                check,
                format!("cannot resolve {host}: {e}"),
                "use the camera's IP address (give it a fixed one with a DHCP reservation on the router)",
            )
        }
    };
    if let Some(public) = addresses.iter().find(|a| !is_lan(a.ip())) {
        return Finding::fail(
            check,
            format!("{target} is {}, not a LAN address: hearth's unit (IPAddressDeny=) refuses it", public.ip()),
            "cameras belong on your LAN: use the camera's local address (docs/guide/cameras.md)",
        );
    }
    let started = Instant::now();
    let mut last_error = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, CAMERA_TIMEOUT) {
            Ok(_) => {
                return Finding::ok(
                    check,
                    format!("{target} accepts connections ({} ms)", started.elapsed().as_millis()),
                );
            }
            Err(e) => last_error = Some(e),
        }
    }
    let error = last_error.map_or_else(|| "no address".to_owned(), |e| e.to_string());
    Finding::fail(
        check,
        format!("{target} unreachable within {} s: {error}", CAMERA_TIMEOUT.as_secs()),
        "check the camera is powered and on the network, and the URL's host and port (RTSP is usually 554)",
    )
}

/// Whether an address belongs to this network rather than the internet: loopback, private
/// IPv4, link-local, IPv6 unique local, carrier-grade NAT (100.64/10, used by VPNs), multicast.
pub fn is_lan(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_lan(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || v6.is_multicast() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The helper that runs libav (motion, snapshots, thumbnails): present, loadable, same version.
fn check_media_helper(config: &Config, media: &crate::media::Media) -> Finding {
    let check = "media helper";
    let motion = config.cameras.iter().any(|c| c.motion.is_some());
    let uses = if motion { "motion detection, snapshots and thumbnails" } else { "snapshots and thumbnails" };
    let fix = format!(
        "reinstall hearth (it ships {} in /usr/libexec/hearth), or set {} to its path",
        crate::media::PROGRAM,
        crate::media::PROGRAM_ENV
    );
    let expected = crate::media::helper::version();
    match run_with_timeout(Command::new(media.program()).arg("--version"), Duration::from_secs(10)) {
        Ok(version) if version.trim() == expected => {
            Finding::ok(check, format!("{} ({uses})", media.program().display()))
        }
        Ok(version) => Finding::fail(
            check,
            format!("{} is `{}`, this hearth expects `{expected}`", media.program().display(), version.trim()),
            fix,
        ),
        Err(e) if motion => Finding::fail(check, format!("{e}: no {uses}"), fix),
        Err(e) => Finding::warn(check, format!("{e}: no {uses}"), fix),
    }
}

fn check_clock() -> Finding {
    // A Pi has no battery-backed clock: until NTP answers it may believe it is years ago.
    let year = chrono::Utc::now().format("%Y").to_string().parse::<u32>().unwrap_or(0);
    if year < 2025 {
        return Finding::fail(
            "clock",
            format!("the system clock says {}: clips would get wrong timestamps", chrono::Utc::now().format("%Y-%m-%d %H:%M")),
            "enable time sync: `sudo timedatectl set-ntp true` (the router must let the hub reach an NTP server, or serve time itself)",
        );
    }
    let output = run_with_timeout(
        Command::new("timedatectl").args(["show", "-p", "NTPSynchronized", "--value"]),
        Duration::from_secs(5),
    );
    match output {
        Ok(text) if text.trim() == "yes" => Finding::ok("clock", "synchronised (NTP)"),
        Ok(text) if text.trim() == "no" => Finding::warn(
            "clock",
            "not synchronised: clip timestamps may drift",
            "`sudo timedatectl set-ntp true`, and check `timedatectl timesync-status`",
        ),
        Ok(text) => Finding::warn("clock", format!("timedatectl said {:?}", text.trim()), "check `timedatectl status`"),
        Err(e) => Finding::warn(
            "clock",
            format!("cannot tell whether the clock is synchronised: {e}"),
            "on a systemd machine, `timedatectl` tells; make sure some NTP client runs",
        ),
    }
}

/// Runs `command`, returning its stdout if it exits 0 within `timeout`.
fn run_with_timeout(command: &mut Command, timeout: Duration) -> Result<String, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not answer within {} s", timeout.as_secs()));
            }
            Err(e) => return Err(format!("{program}: {e}")),
        }
    }
    let output = child.wait_with_output().map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!("{program}: {}", stderr.lines().next().unwrap_or("failed").trim()))
    }
}

fn check_certificate(config: &Config, now: SystemTime) -> Finding {
    let cert = &config.web.tls_cert;
    let used = config.web.uses_tls();
    if !used && !cert.exists() {
        return Finding::ok("certificate", "not used: the web UI is plain HTTP on loopback");
    }
    let regenerate = format!(
        "make a new one (move {} and {} away, then `hearth init` in a scratch dir and copy its tls/), or set web.tls_cert and web.tls_key to your own",
        cert.display(),
        config.web.tls_key.display()
    );
    let not_after = match certificate_expiry(cert) {
        Ok(t) => t,
        Err(e) if used => return Finding::fail("certificate", e, regenerate),
        Err(e) => return Finding::warn("certificate", format!("{e} (not used now: HTTP on loopback)"), regenerate),
    };
    if used && !config.web.tls_key.exists() {
        return Finding::fail(
            "certificate",
            format!("the key {} is missing", config.web.tls_key.display()),
            regenerate,
        );
    }
    let date = chrono::DateTime::<chrono::Utc>::from(not_after).format("%Y-%m-%d").to_string();
    match not_after.duration_since(now) {
        Err(_) => Finding::fail("certificate", format!("{} expired on {date}", cert.display()), regenerate),
        Ok(left) if left < CERT_WARN => Finding::warn(
            "certificate",
            format!("{} expires on {date}, in {} day(s)", cert.display(), left.as_secs() / 86_400),
            regenerate,
        ),
        Ok(left) => Finding::ok("certificate", format!("valid until {date} ({} days)", left.as_secs() / 86_400)),
    }
}

/// When the first certificate in the PEM file at `path` stops being valid.
pub fn certificate_expiry(path: &Path) -> Result<SystemTime, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?;
    let cert = pem.parse_x509().map_err(|e| format!("{} is not a valid X.509 certificate: {e}", path.display()))?;
    let seconds = cert.validity().not_after.timestamp();
    let seconds = u64::try_from(seconds).map_err(|_| format!("{} expires before 1970", path.display()))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// An address of one of this host's network interfaces.
#[derive(Clone, Debug, PartialEq)]
pub struct InterfaceAddress {
    pub interface: String,
    pub ip: IpAddr,
}

/// The addresses of this host's interfaces (getifaddrs: no traffic).
pub fn interface_addresses() -> Vec<InterfaceAddress> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a linked list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Vec::new();
    }
    let mut addresses = Vec::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let interface = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) }.to_string_lossy().into_owned();
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose family says its real type.
        let ip = unsafe {
            match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    Some(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                    Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                }
                _ => None,
            }
        };
        if let Some(ip) = ip {
            addresses.push(InterfaceAddress { interface, ip });
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    addresses
}

/// Whether `web.listen` could be reached from beyond the LAN, given this host's addresses.
pub fn check_exposure(listen: SocketAddr, interfaces: &[InterfaceAddress]) -> Finding {
    let fix = "listen on the hub's LAN address only (e.g. web.listen = \"192.168.1.10:8443\"), never forward a port \
               on the router, and reach the hub from outside through WireGuard (docs/guide/remote-access.md)";
    let ip = listen.ip();
    if ip.is_loopback() {
        return Finding::ok("web exposure", format!("{listen} is loopback: only this machine can connect"));
    }
    if !ip.is_unspecified() {
        return if is_lan(ip) {
            Finding::ok("web exposure", format!("{listen} is a LAN address"))
        } else {
            Finding::warn(
                "web exposure",
                format!("{listen} is not a LAN address: the internet may reach the web UI"),
                fix,
            )
        };
    }
    // 0.0.0.0 covers this host's IPv4 addresses; [::] (dual-stack) its IPv6 ones as well.
    let covered = |candidate: &IpAddr| candidate.is_ipv4() || ip.is_ipv6();
    let public: Vec<String> = interfaces
        .iter()
        .filter(|a| covered(&a.ip) && !is_lan(a.ip))
        .map(|a| format!("{} on {}", a.ip, a.interface))
        .collect();
    if public.is_empty() {
        Finding::ok("web exposure", format!("{listen} listens on every interface, and all of them are LAN-only"))
    } else {
        Finding::warn(
            "web exposure",
            format!(
                "{listen} listens on every interface, including the public address {}: only a firewall (and hearth's \
                 unit, IPAddressDeny=) stands between the web UI and the internet",
                public.join(", ")
            ),
            fix,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, ip: &str) -> InterfaceAddress {
        InterfaceAddress { interface: name.to_owned(), ip: ip.parse().unwrap() }
    }

    #[test]
    fn lan_addresses_are_told_from_public_ones() {
        for lan in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.1", "192.168.1.20", "169.254.3.4", "100.64.0.1"]
        {
            assert!(is_lan(lan.parse().unwrap()), "{lan}");
        }
        for lan in ["::1", "fd12:3456::1", "fe80::1", "ff02::fb", "::ffff:192.168.1.2"] {
            assert!(is_lan(lan.parse().unwrap()), "{lan}");
        }
        for public in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1", "::ffff:1.1.1.1"] {
            assert!(!is_lan(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn exposure_depends_on_what_the_host_has() {
        let lan_only = [iface("lo", "127.0.0.1"), iface("eth0", "192.168.1.10"), iface("eth0", "fe80::1")];
        let with_public = [iface("eth0", "192.168.1.10"), iface("ppp0", "203.0.113.7")];
        let with_public_v6 = [iface("eth0", "192.168.1.10"), iface("eth0", "2001:db8::7")];
        let level = |listen: &str, ifaces: &[InterfaceAddress]| check_exposure(listen.parse().unwrap(), ifaces).level;
        assert_eq!(level("127.0.0.1:8080", &with_public), Level::Ok);
        assert_eq!(level("192.168.1.10:8443", &with_public), Level::Ok);
        assert_eq!(level("203.0.113.7:8443", &with_public), Level::Warn);
        assert_eq!(level("0.0.0.0:8443", &lan_only), Level::Ok);
        assert_eq!(level("0.0.0.0:8443", &with_public), Level::Warn);
        assert_eq!(level("0.0.0.0:8443", &with_public_v6), Level::Ok, "0.0.0.0 does not cover IPv6");
        assert_eq!(level("[::]:8443", &with_public_v6), Level::Warn);
        let finding = check_exposure("0.0.0.0:8443".parse().unwrap(), &with_public);
        assert!(finding.message.contains("203.0.113.7 on ppp0"), "{}", finding.message);
        assert!(finding.fix.unwrap().contains("WireGuard"));
    }

    #[test]
    fn reads_this_hosts_interfaces() {
        let addresses = interface_addresses();
        assert!(addresses.iter().any(|a| a.ip.is_loopback()), "{addresses:?}");
    }

    #[test]
    fn measures_write_speed_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let rate = measure_write_speed(dir.path(), 4 << 20).unwrap();
        assert!(rate > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn reads_certificate_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        crate::web::tls::create_self_signed(&cert, &key).unwrap();
        let expiry = certificate_expiry(&cert).unwrap();
        assert!(expiry > SystemTime::now() + CERT_WARN, "a fresh certificate lasts longer than 30 days");
        std::fs::write(&cert, "not a certificate").unwrap();
        assert!(certificate_expiry(&cert).unwrap_err().contains("not a PEM certificate"));
    }

    #[test]
    fn toml_errors_become_one_line() {
        let text = "config file /c.toml: TOML parse error at line 5, column 1\n  |\n5 | clip_secs = 5\n  | ^^^^^^^^^\nunknown field `clip_secs`\n";
        assert_eq!(
            one_line(text),
            "config file /c.toml: TOML parse error at line 5, column 1: unknown field `clip_secs`"
        );
    }

    #[test]
    fn findings_print_one_line_and_a_fix() {
        let finding = Finding::fail("camera door", "192.168.1.20:554 unreachable", "check it");
        let text = finding.to_string();
        assert!(text.starts_with("FAIL  camera door"), "{text}");
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().nth(1).unwrap().trim_start().starts_with("fix: check it"));
    }
}
