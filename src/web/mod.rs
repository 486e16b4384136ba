//! The web server: the JSON API under `/api/`, live video over WebSocket, and the static UI.
//!
//! Every handler receives the single [`AppState`]; there are no globals. Every error a handler
//! can return is an [`ApiError`], which maps to a status code and a JSON body
//! `{error, message}` in one place ([`IntoResponse`]), so nothing answers with an HTML error
//! page or a bare 500. The identity for playback is held in [`Unlock`]: unlocked with the
//! passphrase, in memory only, dropped on lock or after `web.auto_lock_hours`.
//!
//! Who may ask is decided before any handler by [`guard`]: allowed networks, our own `Host`
//! names, same-origin for state changes, and a valid session for everything under `/api/`
//! but login. Handlers then check per-camera grants and write the audit log.

mod account;
mod admin;
mod api;
mod assets;
mod events;
pub mod guard;
pub mod tls;
mod video;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::audit::AuditLog;
use crate::auth::throttle::Throttle;
use crate::auth::{Accounts, AuthError};
use crate::camera::CameraHandle;
use crate::config::Config;
use crate::crypto::{Recipient, UnlockedIdentity};
use crate::db::Index;
use crate::shutdown::Shutdown;

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub index: Arc<Index>,
    pub cameras: Arc<Vec<CameraHandle>>,
    pub unlock: Arc<Unlock>,
    pub accounts: Arc<Accounts>,
    pub audit: Arc<AuditLog>,
    pub throttle: Arc<Throttle>,
    pub access: Arc<crate::lan::AccessPolicy>,
    pub egress: crate::egress::Connections,
    pub events: Arc<crate::events::Events>,
    /// The helper process that decodes snapshots and thumbnails.
    pub media: crate::media::Media,
    /// Collapses repeated views (snapshot refreshes, range requests) into one audit row.
    pub views: Arc<crate::audit::Debounce>,
    /// Long-lived responses (live streams) end when this fires.
    pub shutdown: Shutdown,
}

impl AppState {
    fn camera(&self, name: &str) -> Result<&CameraHandle, ApiError> {
        self.cameras
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ApiError::not_found("no_such_camera", format!("no camera named `{name}`")))
    }
}

/// The playback key, when the owner has unlocked it.
pub struct Unlock {
    recipient: Recipient,
    auto_lock: Option<Duration>,
    state: RwLock<Option<(Arc<UnlockedIdentity>, Instant)>>,
}

impl Unlock {
    pub fn new(recipient: Recipient, auto_lock: Option<Duration>, identity: Option<Arc<UnlockedIdentity>>) -> Unlock {
        Unlock { recipient, auto_lock, state: RwLock::new(identity.map(|i| (i, Instant::now()))) }
    }

    /// The identity, unless locked (or the auto-lock time has passed, which locks it).
    pub fn identity(&self) -> Option<Arc<UnlockedIdentity>> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let (identity, since) = state.as_ref()?;
        if self.auto_lock.is_some_and(|limit| since.elapsed() >= limit) {
            drop(state);
            self.lock();
            return None;
        }
        Some(identity.clone())
    }

    pub fn set(&self, identity: UnlockedIdentity) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Some((Arc::new(identity), Instant::now()));
    }

    pub fn lock(&self) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn recipient(&self) -> &Recipient {
        &self.recipient
    }
}

/// An API error: status, a stable machine-readable code, and a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn locked() -> ApiError {
        ApiError::new(StatusCode::LOCKED, "locked", "recordings are locked: unlock them with the passphrase")
    }

    /// Something failed on our side; the details go to the log, not to the client.
    pub fn internal(what: &str, error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "{what}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("{what}; see the hub's log"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code, message: &self.message };
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::media::MediaError> for ApiError {
    fn from(e: crate::media::MediaError) -> Self {
        ApiError::internal("snapshot failed", e)
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::internal("index query failed", e)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use crate::auth::password::PasswordError;
        let message = e.to_string();
        match e {
            AuthError::Db(e) => ApiError::internal("account query failed", e),
            AuthError::Password(PasswordError::BadHash(_)) => ApiError::internal("password check failed", message),
            AuthError::Password(_) => ApiError::bad_request("weak_password", message),
            AuthError::BadName => ApiError::bad_request("bad_name", message),
            AuthError::NoSuchUser(_) => ApiError::not_found("no_such_user", message),
            AuthError::NoSuchSession => ApiError::not_found("no_such_session", message),
            AuthError::UserExists(_) => ApiError::new(StatusCode::CONFLICT, "user_exists", message),
            AuthError::LastAdmin => ApiError::new(StatusCode::CONFLICT, "last_admin", message),
            AuthError::NoEnrolment => ApiError::new(StatusCode::CONFLICT, "no_enrolment", message),
            AuthError::WrongPassword => ApiError::new(StatusCode::FORBIDDEN, "wrong_password", message),
            AuthError::WrongCode => ApiError::bad_request("wrong_code", message),
        }
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> Self {
        ApiError::internal("audit log query failed", e)
    }
}

/// Runs database (or hashing) work off the async runtime.
pub(crate) async fn blocking<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal("background task failed", e))?
        .map_err(Into::into)
}

/// A JSON body whose rejection (bad JSON, wrong content type) becomes our JSON error.
pub(crate) type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

pub(crate) trait BodyExt<T> {
    fn into_inner(self) -> Result<T, ApiError>;
}

impl<T> BodyExt<T> for JsonBody<T> {
    fn into_inner(self) -> Result<T, ApiError> {
        self.map(|Json(body)| body).map_err(|e| match e.status() {
            // Over `MAX_API_BODY`: the size is the problem, not the JSON.
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(e.status(), "too_large", e.body_text()),
            _ => ApiError::bad_request("bad_body", e.body_text()),
        })
    }
}

/// Builds the whole application.
pub fn router(state: AppState) -> axum::Router {
    let api = api::routes()
        .merge(video::routes())
        .merge(account::routes())
        .merge(admin::routes())
        .merge(events::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY))
        .layer(axum::middleware::from_fn(refuse_bad_requests));
    axum::Router::new()
        .nest("/api", api)
        .merge(assets::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(state)
}

/// Refuses, before any handler: a query string that percent-decodes to invalid UTF-8 (axum's
/// `Query` would decode it lossily, turning garbage into U+FFFD that a filter then matches
/// against), and a body announced larger than [`MAX_API_BODY`], before a byte of it is read
/// (`DefaultBodyLimit` alone would wait for the first 64 KiB to arrive).
async fn refuse_bad_requests(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.uri().query().is_some_and(|query| !decodes_to_utf8(query)) {
        return ApiError::bad_request("bad_query", "the query string is not valid UTF-8").into_response();
    }
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_API_BODY as u64) {
        let message = format!("request bodies are limited to {} KiB", MAX_API_BODY / 1024);
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message).into_response();
    }
    next.run(request).await
}

/// Whether every `application/x-www-form-urlencoded` name and value in `query` decodes to
/// UTF-8.
fn decodes_to_utf8(query: &str) -> bool {
    query.split('&').flat_map(|pair| pair.split('=')).all(|part| {
        let bytes = part.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (b'%', Some(high), Some(low)) => {
                    decoded.push((high * 16 + low) as u8);
                    i += 3;
                }
                (byte, _, _) => {
                    decoded.push(byte);
                    i += 1;
                }
            }
        }
        std::str::from_utf8(&decoded).is_ok()
    })
}

/// axum's own rejections (a path segment that is not UTF-8, a query of the wrong type, a
/// wrong method, a body too large) are plain text; under `/api/` every error is JSON, so they
/// are rewrapped here, next to the one place that decides what errors look like.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_api || !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_owned();
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "bad_content_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if message.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { message };
    ApiError { status, code, message }.into_response()
}

/// Serves until `shutdown`, over HTTPS when `web.tls` asks for it. Binding and loading the
/// certificate happen before this returns, so a bad address or key is an error at start-up
/// rather than a log line later.
pub async fn serve(state: AppState, shutdown: Shutdown) -> std::io::Result<WebServer> {
    let web = state.config.web.clone();
    let listener = std::net::TcpListener::bind(web.listen)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let scheme = if web.uses_tls() { "https" } else { "http" };
    let tls = if web.uses_tls() {
        tls::install_crypto_provider();
        let config =
            axum_server::tls_rustls::RustlsConfig::from_pem_file(&web.tls_cert, &web.tls_key).await.map_err(|e| {
                std::io::Error::other(format!(
                    "TLS certificate {} / key {}: {e}",
                    web.tls_cert.display(),
                    web.tls_key.display()
                ))
            })?;
        let mut config = (*config.get_inner()).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()]; // HTTP/1.1 is all we serve
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    } else {
        None
    };
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let task = tokio::spawn(serve_connections(listener, tls, router(state), shutdown));
    let url = format!("{scheme}://{local}/");
    tracing::info!(%url, "web UI listening");
    Ok(WebServer { url, task })
}

/// How long a client may take to send a request's headers, from the moment the server waits
/// for them (a new connection, or the next request on a kept-alive one). A LAN client sends
/// them in milliseconds; without a limit, a few hundred connections trickling one byte at a
/// time, or sending nothing at all ("slowloris"), would hold every file descriptor.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body under `/api/`: every API body is a small JSON object.
pub const MAX_API_BODY: usize = 64 * 1024;

/// The accept loop, for HTTP and HTTPS alike: HTTP/1.1 (with upgrades, for live WebSockets)
/// from hyper directly rather than `axum::serve` or axum-server, because both detect the
/// protocol version first by reading with no time limit, and `axum::serve` gives hyper no timer
/// at all, so no header timeout ever applied. Each request carries the peer address as
/// `ConnectInfo`, like `into_make_service_with_connect_info`. On shutdown the listener closes
/// and every connection finishes its current request, then closes.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    mut shutdown: Shutdown,
) {
    let (closing, _) = tokio::sync::watch::channel(());
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, typically: wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a web connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.recv() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (app, tls, closing) = (app.clone(), tls.clone(), closing.subscribe());
        connections.spawn(async move {
            match tls {
                None => serve_connection(stream, peer, app, closing).await,
                Some(tls) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(stream, peer, app, closing).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    drop(closing);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    app: axum::Router,
    mut closing: tokio::sync::watch::Receiver<()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    use tower::ServiceExt as _;
    let service = app.map_request(move |mut request: axum::http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        request.map(axum::body::Body::new)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), hyper_util::service::TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = closing.changed() => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

/// The running server.
pub struct WebServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl WebServer {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits for in-flight requests after shutdown was triggered (bounded: live streams are
    /// closed by the shutdown signal themselves).
    pub async fn stopped(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlock(auto_lock: Option<Duration>) -> Unlock {
        let identity = age::x25519::Identity::generate();
        let recipient = Recipient::parse(&identity.to_public().to_string()).unwrap();
        Unlock::new(recipient, auto_lock, None)
    }

    #[test]
    fn auto_lock_forgets_the_key() {
        let never = unlock(None);
        assert!(never.identity().is_none(), "locked until unlocked");
        let soon = unlock(Some(Duration::from_millis(50)));
        soon.set(UnlockedIdentity::from_identity(age::x25519::Identity::generate()));
        assert!(soon.identity().is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(soon.identity().is_none(), "auto-lock after the configured time");
        soon.set(UnlockedIdentity::from_identity(age::x25519::Identity::generate()));
        soon.lock();
        assert!(soon.identity().is_none());
    }

    #[test]
    fn query_strings_must_decode_to_utf8() {
        for good in ["", "camera=door", "start=2026-11-24T10%3A00%3A00Z&end=x", "q=caf%C3%A9", "a=%", "a=%zz", "a+b=c"]
        {
            assert!(decodes_to_utf8(good), "{good}");
        }
        for bad in ["user=%FF", "%C0%AF=x", "a=b&c=%ED%A0%80", "x=%E2%82"] {
            assert!(!decodes_to_utf8(bad), "{bad}");
        }
    }

    #[test]
    fn errors_are_json_with_their_status() {
        let response = ApiError::locked().into_response();
        assert_eq!(response.status(), StatusCode::LOCKED);
        assert_eq!(response.headers()["content-type"], "application/json");
    }
}
