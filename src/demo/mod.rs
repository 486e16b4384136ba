//! The built-in demo camera: a local RTSP server streaming a synthetic,
//! moving H.264 test pattern with a burned-in clock, so `hearth demo` (and
//! the test suite) can show hearth recording with no hardware. This module
//! owns the public face ([`DemoCamera`], [`DemoOptions`], [`DemoError`]) and
//! the server's lifecycle; `pattern` draws and encodes the loop, `rtsp`
//! serves it, `message` and `rtp` do the wire formats, `font` the digits.

mod font;
mod message;
pub mod pattern;
mod rtp;
mod rtsp;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use pattern::{EncodedFrame, EncodedLoop, PatternOptions};

/// Everything that can go wrong starting the demo camera. Once running it
/// does not fail: client misbehaviour is handled per connection.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("invalid demo camera options: {0}")]
    InvalidOptions(String),
    #[error("the {0} encoder is not available in this ffmpeg build")]
    EncoderNotFound(&'static str),
    #[error("encoding the demo test pattern failed: {0}")]
    Encode(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// How to run the demo camera.
#[derive(Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Picture, frame rate, loop length and bit rate.
    pub pattern: PatternOptions,
    /// URL path of the stream, e.g. `/demo` (a leading `/` is optional).
    pub path: String,
    /// When set, every request but OPTIONS needs HTTP Basic credentials.
    pub credentials: Option<(String, String)>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions { pattern: PatternOptions::default(), path: "/demo".to_owned(), credentials: None }
    }
}

/// Hand-written so that logging options never prints the password.
impl fmt::Debug for DemoOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoOptions")
            .field("pattern", &self.pattern)
            .field("path", &self.path)
            .field("credentials", &self.credentials.as_ref().map(|(u, _)| (u, "<redacted>")))
            .finish()
    }
}

impl DemoOptions {
    /// The path in canonical form: one leading `/`, no trailing `/`, and only
    /// characters that need no URL escaping, so string comparison is enough.
    fn normalized_path(&self) -> Result<String, DemoError> {
        let trimmed = self.path.trim_matches('/');
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-._~/".contains(c);
        if trimmed.is_empty() || !trimmed.chars().all(ok_char) || trimmed.contains("//") {
            return Err(DemoError::InvalidOptions(format!(
                "path {:?} must be non-empty and use only letters, digits, '-', '.', '_', '~', '/'",
                self.path
            )));
        }
        Ok(format!("/{trimmed}"))
    }

    fn check_credentials(&self) -> Result<(), DemoError> {
        match &self.credentials {
            Some((user, _)) if user.is_empty() || user.contains(':') => Err(DemoError::InvalidOptions(
                "username must be non-empty and must not contain ':' (HTTP Basic)".to_owned(),
            )),
            _ => Ok(()),
        }
    }
}

/// Draws and encodes the test pattern on a blocking thread (it takes a
/// couple of CPU-seconds at the defaults). Exposed so that callers starting
/// several cameras, such as tests, can encode once and share the loop.
pub async fn encode_pattern(opts: PatternOptions) -> Result<Arc<EncodedLoop>, DemoError> {
    opts.validate()?;
    tokio::task::spawn_blocking(move || pattern::encode_loop(&opts))
        .await
        .map_err(|e| DemoError::Encode(format!("encoder thread failed: {e}")))?
        .map(Arc::new)
}

/// A running demo camera. Stops on [`DemoCamera::shutdown`] or when dropped.
pub struct DemoCamera {
    local_addr: SocketAddr,
    path: String,
    encoded: Arc<EncodedLoop>,
    /// Dropping this tells the server and every connection to stop.
    stop: Option<watch::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for DemoCamera {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoCamera").field("url", &self.url()).finish_non_exhaustive()
    }
}

impl DemoCamera {
    /// Binds `bind` (port 0 picks a free port), encodes the pattern described
    /// by `opts.pattern`, and starts serving it at `opts.path`.
    pub async fn start(bind: SocketAddr, opts: DemoOptions) -> Result<DemoCamera, DemoError> {
        opts.pattern.validate()?;
        let bound = bind_checked(bind, &opts).await?;
        let encoded = encode_pattern(opts.pattern.clone()).await?;
        Self::serve(bound, opts, encoded)
    }

    /// Like [`DemoCamera::start`] but serves an already-encoded loop
    /// (`opts.pattern` is then ignored).
    pub async fn start_with_loop(
        bind: SocketAddr,
        opts: DemoOptions,
        encoded: Arc<EncodedLoop>,
    ) -> Result<DemoCamera, DemoError> {
        if encoded.frames.is_empty() || encoded.fps == 0 || encoded.sps.len() < 4 || encoded.pps.is_empty() {
            return Err(DemoError::InvalidOptions("encoded loop is empty or lacks parameter sets".to_owned()));
        }
        let bound = bind_checked(bind, &opts).await?;
        Self::serve(bound, opts, encoded)
    }

    fn serve(
        (listener, local_addr): (TcpListener, SocketAddr),
        opts: DemoOptions,
        encoded: Arc<EncodedLoop>,
    ) -> Result<DemoCamera, DemoError> {
        let path = opts.normalized_path()?;
        let config = rtsp::ServerConfig { encoded: encoded.clone(), path: path.clone(), credentials: opts.credentials };
        let (stop, stop_rx) = watch::channel(());
        let task = tokio::spawn(rtsp::serve(listener, Arc::new(config), stop_rx));
        let camera = DemoCamera { local_addr, path, encoded, stop: Some(stop), task: Some(task) };
        tracing::info!("demo camera serving {}", camera.url());
        Ok(camera)
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The stream URL without credentials, e.g. `rtsp://127.0.0.1:8554/demo`.
    /// An unspecified bind address (0.0.0.0, ::) is reported as loopback,
    /// which is always connectable from this machine.
    pub fn url(&self) -> String {
        let ip = match self.local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("rtsp://{}{}", SocketAddr::new(ip, self.local_addr.port()), self.path)
    }

    /// The loop being served (dimensions, frame rate, parameter sets).
    pub fn encoded(&self) -> &Arc<EncodedLoop> {
        &self.encoded
    }

    /// Stops accepting, closes every client connection, and waits for that.
    pub async fn shutdown(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DemoCamera {
    fn drop(&mut self) {
        // Dropping the sender alone would stop everything at the next poll;
        // aborting also covers a runtime that is itself shutting down.
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Validates the non-pattern options and binds, so bad input or a busy port
/// fails before seconds are spent encoding.
/// Returns the listener with its real address (the chosen port if 0 was asked).
async fn bind_checked(bind: SocketAddr, opts: &DemoOptions) -> Result<(TcpListener, SocketAddr), DemoError> {
    opts.normalized_path()?;
    opts.check_credentials()?;
    let listener = TcpListener::bind(bind).await.map_err(|source| DemoError::Bind { addr: bind, source })?;
    let local = listener.local_addr().map_err(|source| DemoError::Bind { addr: bind, source })?;
    Ok((listener, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_normalisation() {
        let with = |p: &str| DemoOptions { path: p.to_owned(), ..Default::default() }.normalized_path();
        assert_eq!(with("/demo").unwrap(), "/demo");
        assert_eq!(with("demo/").unwrap(), "/demo");
        assert_eq!(with("cams/front-door").unwrap(), "/cams/front-door");
        for bad in ["", "/", "a b", "a//b", "x?y", "caf\u{e9}"] {
            assert!(matches!(with(bad), Err(DemoError::InvalidOptions(_))), "{bad:?}");
        }
    }

    #[test]
    fn credentials_validation_and_redaction() {
        let o = DemoOptions { credentials: Some(("a:b".into(), "pw".into())), ..Default::default() };
        assert!(o.check_credentials().is_err());
        let o = DemoOptions { credentials: Some(("admin".into(), "hunter2".into())), ..Default::default() };
        assert!(o.check_credentials().is_ok());
        let dbg = format!("{o:?}");
        assert!(dbg.contains("admin") && !dbg.contains("hunter2"), "{dbg}");
    }
}
