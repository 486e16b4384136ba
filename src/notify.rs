//! Talking to systemd: the `sd_notify` protocol and knowing when stderr is the journal.
//!
//! Under `Type=notify` the service manager hands hearth a datagram socket in `$NOTIFY_SOCKET`
//! (a path, or an abstract socket written `@name`). hearth sends `READY=1` once cameras are
//! started and the web server listens, `WATCHDOG=1` every half `$WATCHDOG_USEC` while its
//! recorders are healthy (the decision is [`crate::serve`]'s), and `STOPPING=1` when it shuts
//! down. Outside systemd nothing is set and every call here is a no-op. The protocol is a few
//! lines, so it is implemented here rather than pulled in as a dependency.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor an abstract socket (@name)")]
    BadAddress(String),
    #[error("cannot create a socket to notify systemd: {0}")]
    Socket(io::Error),
    #[error("cannot notify systemd at {address}: {source}")]
    Send { address: String, source: io::Error },
}

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
    /// `$NOTIFY_SOCKET` as given, for messages.
    display: String,
}

impl Notifier {
    /// The notifier systemd asked for, or `None` when not started by systemd with `Type=notify`.
    pub fn from_environment() -> Result<Option<Notifier>, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(address) if !address.is_empty() => Notifier::connect(&address).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for `address`: an absolute path, or `@name` for a Linux abstract socket.
    pub fn connect(address: &str) -> Result<Notifier, NotifyError> {
        let bad = || NotifyError::BadAddress(address.to_owned());
        let socket_address = if let Some(name) = address.strip_prefix('@') {
            abstract_address(name.as_bytes()).map_err(|_| bad())?
        } else if address.starts_with('/') {
            SocketAddr::from_pathname(address).map_err(|_| bad())?
        } else {
            return Err(bad());
        };
        let socket = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        Ok(Notifier { socket, address: socket_address, display: address.to_owned() })
    }

    /// Sends one notification: newline-separated `KEY=value` assignments.
    pub fn notify(&self, state: &str) -> Result<(), NotifyError> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.address)
            .map(|_| ())
            .map_err(|source| NotifyError::Send { address: self.display.clone(), source })
    }

    /// Start-up is over: systemd considers the unit active from now on.
    pub fn ready(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// Shutdown has begun.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.notify("STOPPING=1\nSTATUS=closing open clips")
    }

    /// "Still healthy": resets the `WatchdogSec=` timer.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.notify("WATCHDOG=1")
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "abstract sockets exist on Linux only"))
}

/// STATUS= must stay on one line: a newline would start another assignment.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// How often to pet the watchdog: half of `$WATCHDOG_USEC`, when the watchdog is meant for
/// this process (`$WATCHDOG_PID` unset or ours). `None` when there is no watchdog.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Whether stderr is connected to the journal (systemd sets `$JOURNAL_STREAM` to the
/// `device:inode` of the stream it hands over; a redirected stderr no longer matches).
pub fn stderr_is_journal() -> bool {
    std::env::var("JOURNAL_STREAM").is_ok_and(|value| is_stream(&value, libc::STDERR_FILENO))
}

/// Whether `fd` is the file `device:inode` names.
fn is_stream(device_inode: &str, fd: std::os::fd::RawFd) -> bool {
    let Some((device, inode)) = device_inode.split_once(':') else { return false };
    let (Ok(device), Ok(inode)) = (device.parse::<u64>(), inode.parse::<u64>()) else { return false };
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `stat` into the buffer we own; it is read only on success.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat returned 0, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    stat.st_dev as u64 == device && stat.st_ino as u64 == inode
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(socket: &UnixDatagram) -> String {
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::connect(path.to_str().unwrap()).unwrap();
        notifier.ready("recording 2 cameras\nsecond line").unwrap();
        assert_eq!(receive(&server), "READY=1\nSTATUS=recording 2 cameras second line");
        notifier.watchdog().unwrap();
        assert_eq!(receive(&server), "WATCHDOG=1");
        notifier.stopping().unwrap();
        assert!(receive(&server).starts_with("STOPPING=1\n"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("hearth-notify-test-{}-{}", std::process::id(), rand::random::<u64>());
        let server = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let notifier = Notifier::connect(&format!("@{name}")).unwrap();
        notifier.watchdog().unwrap();
        assert_eq!(receive(&server), "WATCHDOG=1");
    }

    #[test]
    fn a_vanished_socket_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone");
        let notifier = Notifier::connect(path.to_str().unwrap()).unwrap();
        let err = notifier.watchdog().unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
    }

    #[test]
    fn rejects_relative_addresses() {
        assert!(matches!(Notifier::connect("relative/path"), Err(NotifyError::BadAddress(_))));
        assert!(matches!(Notifier::connect(""), Err(NotifyError::BadAddress(_))));
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout_and_only_for_us() {
        assert_eq!(watchdog_interval_from(Some("30000000"), None, 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("7"), 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, None, 7), None);
    }

    #[test]
    fn recognises_the_stream_systemd_named() {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let file = tempfile::tempfile().unwrap();
        let meta = file.metadata().unwrap();
        let fd = file.as_raw_fd();
        assert!(is_stream(&format!("{}:{}", meta.dev(), meta.ino()), fd));
        assert!(!is_stream(&format!("{}:{}", meta.dev(), meta.ino() + 1), fd));
        assert!(!is_stream("garbage", fd));
    }
}
