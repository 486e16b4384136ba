//! The gate every request passes before any handler: network, `Host`, CSRF, session.
//!
//! Order matters and is fixed here: a client outside `allowed_networks` or using a foreign
//! `Host` name is refused (and audited) before anything else is looked at; under `/api/`,
//! state-changing requests and WebSocket upgrades must come from our own origin; and every
//! API route but `POST /api/login` needs a valid session, looked up in the database on every
//! request, so a revoked session or a changed password takes effect on the very next one.
//! Handlers receive the result as a [`Me`] extension and decide grants with
//! [`AppState::camera_for`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::audit::{Action, Event};
use crate::auth::{Caller, Permission};
use crate::camera::CameraHandle;

pub const SESSION_COOKIE: &str = "hearth_session";

/// The logged-in caller and where the request came from.
#[derive(Clone, Debug)]
pub struct Me {
    pub caller: Arc<Caller>,
    pub address: IpAddr,
}

impl Me {
    /// An audit event carrying this caller's name and address.
    pub fn event(&self) -> Event {
        Event::ok().user(&self.caller.name).address(self.address)
    }

    pub fn require_admin(&self, state: &AppState, what: &str) -> Result<(), ApiError> {
        if self.caller.is_admin() {
            return Ok(());
        }
        state.audit.log(Action::Denied, Event { result: "admin_only".into(), ..self.event() }.target(what));
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only an admin may do that"))
    }
}

impl AppState {
    /// The camera `name` if `me` may use `permission` on it. A viewer without the grant gets
    /// the same 403 whether or not the camera exists, so grants leak no camera names.
    pub fn camera_for(&self, me: &Me, name: &str, permission: Permission) -> Result<&CameraHandle, ApiError> {
        self.authorize(me, name, permission)?;
        self.camera(name)
    }

    /// Whether `me` may use `permission` on camera `name`'s recordings (denials audited).
    pub fn authorize(&self, me: &Me, name: &str, permission: Permission) -> Result<(), ApiError> {
        if me.caller.may(name, permission) {
            return Ok(());
        }
        let event = Event { result: "no_grant".into(), ..me.event() }.camera(name).target(permission_name(permission));
        self.audit.log(Action::Denied, event);
        Err(forbidden_camera())
    }

    /// Like [`AppState::camera_for`], for recordings: a camera taken out of the config keeps
    /// its recordings until retention removes them, and they stay listable and playable.
    /// 404 only for a name that is neither configured nor recorded.
    pub async fn recordings_for(&self, me: &Me, name: &str, permission: Permission) -> Result<(), ApiError> {
        self.authorize(me, name, permission)?;
        let Err(not_configured) = self.camera(name) else { return Ok(()) };
        let (index, owned) = (self.index.clone(), name.to_owned());
        match super::blocking(move || index.last_clip_end(&owned)).await? {
            Some(_) => Ok(()),
            None => Err(not_configured),
        }
    }
}

pub fn forbidden_camera() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", "you have no access to that camera")
}

fn permission_name(permission: Permission) -> &'static str {
    match permission {
        Permission::Live => "live",
        Permission::Playback => "playback",
        Permission::Download => "download",
    }
}

/// The middleware. See the module docs for the order of checks.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let address = peer_address(&request);
    let path = request.uri().path().to_owned();
    if !state.access.allows_peer(address) {
        let event = Event::failed("network_not_allowed").address(address).target(&path);
        state.audit.log(Action::Denied, event);
        tracing::warn!(%address, "request from outside allowed_networks refused");
        return forbidden("forbidden_network", "this hub only serves its own network").into_response();
    }
    let host = request_host(&request);
    if !state.access.allows_host(&host) {
        let event = Event::failed("foreign_host").address(address).target(format!("{host}{path}"));
        state.audit.log(Action::Denied, event);
        return forbidden("bad_host", "this hub does not answer to that name (add it to web.hostnames)")
            .into_response();
    }
    if !path.starts_with("/api/") {
        return next.run(request).await;
    }
    if let Err(error) = check_same_origin(request.method(), request.headers(), &host) {
        state.audit.log(Action::Denied, Event::failed("cross_origin").address(address).target(&path));
        return error.into_response();
    }
    // Login has no session yet; a webhook authenticates with its camera's token instead.
    if path == "/api/login" || path.starts_with("/api/hooks/") {
        return next.run(request).await;
    }
    let caller = match session_of(&state, request.headers()).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return unauthenticated(state.config.web.uses_tls()),
        Err(e) => return e.into_response(),
    };
    if caller.enroll_only && !enrolment_path(&path) {
        return forbidden("totp_enrolment_required", "set up two-factor authentication first (account page)")
            .into_response();
    }
    request.extensions_mut().insert(Me { caller: Arc::new(caller), address });
    next.run(request).await
}

/// The name the client used: `Host` in HTTP/1.1, the `:authority` of the URI in HTTP/2.
fn request_host(request: &Request) -> String {
    request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default()
}

fn peer_address(request: &Request) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
        .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    crate::lan::canonical(peer)
}

fn forbidden(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// While 2FA is required but not set up, a session may only set it up (or log out).
fn enrolment_path(path: &str) -> bool {
    path == "/api/account" || path.starts_with("/api/account/totp") || path == "/api/logout"
}

/// Cross-site request forgery: browsers say where a request comes from in `Origin` (every
/// cross-origin POST and WebSocket) and `Sec-Fetch-Site`. Together with SameSite=Strict
/// cookies and JSON-only bodies, refusing foreign ones stops a page elsewhere from acting
/// with the owner's session. Requests without either header are not from a browser page.
fn check_same_origin(method: &Method, headers: &HeaderMap, host: &str) -> Result<(), ApiError> {
    let is_websocket = headers.get(header::UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) && !is_websocket;
    if safe {
        return Ok(());
    }
    let refused = || forbidden("cross_origin", "cross-site requests are refused");
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err(refused());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        if origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return Err(refused());
        }
    }
    Ok(())
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

async fn session_of(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let Some(token) = session_token(headers) else { return Ok(None) };
    let accounts = state.accounts.clone();
    tokio::task::spawn_blocking(move || accounts.session(&token, crate::time::now_us()))
        .await
        .map_err(|e| ApiError::internal("session check failed", e))?
        .map_err(|e| ApiError::internal("session check failed", e))
}

fn unauthenticated(tls: bool) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "log in first").into_response();
    if let Ok(value) = clear_cookie(tls).parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The `Set-Cookie` value for a new session: HttpOnly (no script reads it), SameSite=Strict
/// (no other site's page sends it), Secure under TLS.
pub fn session_cookie(token: &str, max_age: std::time::Duration, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", max_age.as_secs())
}

pub fn clear_cookie(tls: bool) -> String {
    session_cookie("", std::time::Duration::ZERO, tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        map
    }

    #[test]
    fn same_origin_rules() {
        let host = ("host", "192.168.1.2:8443");
        let check = |method: &Method, h: &HeaderMap| check_same_origin(method, h, "192.168.1.2:8443");
        assert!(check(&Method::GET, &headers(&[host, ("origin", "https://evil.example")])).is_ok(), "GET is safe");
        assert!(check(&Method::POST, &headers(&[host])).is_ok(), "not a browser");
        assert!(check(&Method::POST, &headers(&[host, ("origin", "https://192.168.1.2:8443")])).is_ok());
        assert!(check(&Method::POST, &headers(&[host, ("origin", "https://evil.example")])).is_err());
        assert!(check(&Method::POST, &headers(&[host, ("origin", "null")])).is_err());
        assert!(check(&Method::DELETE, &headers(&[host, ("sec-fetch-site", "cross-site")])).is_err());
        assert!(check(&Method::POST, &headers(&[host, ("sec-fetch-site", "same-site")])).is_err());
        let ws = [host, ("upgrade", "websocket"), ("origin", "http://evil.example")];
        assert!(check(&Method::GET, &headers(&ws)).is_err(), "WebSocket hijacking");
    }

    #[test]
    fn cookie_parsing_and_attributes() {
        let h = headers(&[("cookie", "a=1; hearth_session=abc_DEF-1; b=2")]);
        assert_eq!(session_token(&h).as_deref(), Some("abc_DEF-1"));
        assert_eq!(session_token(&headers(&[("cookie", "hearth_sessionx=1")])), None);
        let cookie = session_cookie("t", std::time::Duration::from_secs(60), true);
        assert_eq!(cookie, "hearth_session=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure");
        assert!(!session_cookie("t", std::time::Duration::from_secs(60), false).contains("Secure"));
    }
}
