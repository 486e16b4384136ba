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
        self.map(|Json(body)| body).map_err(|e| ApiError::bad_request("bad_body", e.body_text()))
    }
}

/// Builds the whole application.
pub fn router(state: AppState) -> axum::Router {
    let api =
        api::routes().merge(video::routes()).merge(account::routes()).merge(admin::routes()).merge(events::routes());
    axum::Router::new()
        .nest("/api", api)
        .merge(assets::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(state)
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
pub async fn serve(state: AppState, mut shutdown: Shutdown) -> std::io::Result<WebServer> {
    let web = state.config.web.clone();
    let listener = std::net::TcpListener::bind(web.listen)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let scheme = if web.uses_tls() { "https" } else { "http" };
    let task = if web.uses_tls() {
        tls::install_crypto_provider();
        let config =
            axum_server::tls_rustls::RustlsConfig::from_pem_file(&web.tls_cert, &web.tls_key).await.map_err(|e| {
                std::io::Error::other(format!(
                    "TLS certificate {} / key {}: {e}",
                    web.tls_cert.display(),
                    web.tls_key.display()
                ))
            })?;
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.recv().await;
            stopper.graceful_shutdown(Some(Duration::from_secs(5)));
        });
        let server = axum_server::from_tcp_rustls(listener, config).handle(handle);
        tokio::spawn(async move {
            if let Err(e) = server.serve(app).await {
                tracing::error!(error = %e, "web server failed");
            }
        })
    } else {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(async move {
            let result = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.recv().await }).await;
            if let Err(e) = result {
                tracing::error!(error = %e, "web server failed");
            }
        })
    };
    let url = format!("{scheme}://{local}/");
    tracing::info!(%url, "web UI listening");
    Ok(WebServer { url, task })
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
    fn errors_are_json_with_their_status() {
        let response = ApiError::locked().into_response();
        assert_eq!(response.status(), StatusCode::LOCKED);
        assert_eq!(response.headers()["content-type"], "application/json");
    }
}
