//! Logging in and out, and what every user may do to their own account: change the
//! password, set up or remove two-factor authentication, see and end their sessions.

use std::time::Instant;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::guard::{clear_cookie, session_cookie, Me};
use super::{blocking, ApiError, AppState, BodyExt, JsonBody};
use crate::audit::{Action, Event};
use crate::auth::{totp, AuthError, Grant, Login, Role, SessionInfo};
use crate::time::now_us;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/account", get(account))
        .route("/account/password", post(change_password))
        .route("/account/totp", post(start_totp))
        .route("/account/totp/confirm", post(confirm_totp))
        .route("/account/totp/disable", post(disable_totp))
        .route("/sessions", get(sessions))
        .route("/sessions/{id}", delete(revoke_session))
}

/// One message for every refused login, so it tells nothing about which part was wrong.
const LOGIN_REFUSED: &str = "wrong user name, password or code";

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

#[derive(Serialize)]
struct LoginReply {
    user: String,
    role: Role,
    must_enroll_totp: bool,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let request = body.into_inner()?;
    let address = crate::lan::canonical(peer.ip());
    let name = request.username.trim().to_owned();
    let refused_event = |result: &str| Event::failed(result).user(&name).address(address);
    if let Err(wait) = state.throttle.check(address, &name, Instant::now()) {
        state.audit.log(Action::LoginFailed, refused_event("throttled"));
        tracing::warn!(%address, user = %name, wait_s = wait.as_secs_f64().ceil(), "login throttled");
        let seconds = wait.as_secs_f64().ceil() as u64;
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed attempts; try again in {seconds} s"),
        )
        .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        return Ok(response);
    }
    let refuse = |result: &str| {
        state.throttle.failed(address, &name, Instant::now());
        state.audit.log(Action::LoginFailed, refused_event(result));
        tracing::warn!(%address, user = %name, reason = result, "login refused");
        ApiError::new(StatusCode::UNAUTHORIZED, "login_failed", LOGIN_REFUSED)
    };
    let accounts = state.accounts.clone();
    let (check_name, password) = (name.clone(), request.password.clone());
    let login = blocking(move || accounts.check_password(&check_name, &password)).await?;
    let Login::Ok { user_id, totp_enabled } = login else { return Err(refuse("wrong_credentials")) };
    if totp_enabled {
        let Some(code) = request.totp.filter(|c| !c.trim().is_empty()) else {
            // The password was right: asking for the code reveals only what the user knows.
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "totp_required",
                "enter the code from your authenticator app",
            ));
        };
        let accounts = state.accounts.clone();
        if !blocking(move || accounts.check_second_factor(user_id, &code, now_us())).await? {
            return Err(refuse("wrong_code"));
        }
    }
    let accounts = state.accounts.clone();
    let enroll_only = !totp_enabled && blocking(move || accounts.require_2fa()).await?;
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let accounts = state.accounts.clone();
    let address_text = address.to_string();
    let (token, session_id) =
        blocking(move || accounts.create_session(user_id, &address_text, &user_agent, now_us())).await?;
    state.throttle.succeeded(address, &name);
    let accounts = state.accounts.clone();
    let caller = blocking(move || accounts.session_by_id(session_id, now_us()))
        .await?
        .ok_or_else(|| ApiError::internal("login failed", "the new session vanished"))?;
    state
        .audit
        .log(Action::Login, Event::ok().user(&caller.name).address(address).target(format!("session:{session_id}")));
    tracing::info!(user = %caller.name, %address, "logged in");
    let web = &state.config.web;
    let cookie = session_cookie(&token.0, web.session_lifetime, web.uses_tls());
    let reply = LoginReply { user: caller.name, role: caller.role, must_enroll_totp: enroll_only };
    Ok(([(header::SET_COOKIE, cookie)], Json(reply)).into_response())
}

async fn logout(State(state): State<AppState>, Extension(me): Extension<Me>) -> Result<Response, ApiError> {
    let accounts = state.accounts.clone();
    let id = me.caller.session_id;
    let _ = blocking(move || accounts.revoke_session(id)).await;
    state.audit.log(Action::Logout, me.event().target(format!("session:{id}")));
    Ok(([(header::SET_COOKIE, clear_cookie(state.config.web.uses_tls()))], StatusCode::NO_CONTENT).into_response())
}

#[derive(Serialize)]
struct AccountView {
    name: String,
    role: Role,
    totp_enabled: bool,
    must_enroll_totp: bool,
    require_2fa: bool,
    session_id: i64,
    grants: Vec<Grant>,
}

async fn account(State(state): State<AppState>, Extension(me): Extension<Me>) -> Result<Json<AccountView>, ApiError> {
    let accounts = state.accounts.clone();
    let require_2fa = blocking(move || accounts.require_2fa()).await?;
    let c = &me.caller;
    Ok(Json(AccountView {
        name: c.name.clone(),
        role: c.role,
        totp_enabled: c.totp_enabled,
        must_enroll_totp: c.enroll_only,
        require_2fa,
        session_id: c.session_id,
        grants: c.grants.clone(),
    }))
}

#[derive(Deserialize)]
struct PasswordChange {
    current: String,
    new: String,
}

async fn change_password(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    body: JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let request = body.into_inner()?;
    let accounts = state.accounts.clone();
    let caller = me.caller.clone();
    let result =
        blocking(move || accounts.change_own_password(&caller, &request.current, &request.new, now_us())).await;
    match result {
        Ok(()) => {
            state.audit.log(Action::PasswordChange, me.event().target(format!("user:{}", me.caller.name)));
            tracing::info!(user = %me.caller.name, "password changed; other sessions ended");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e) => {
            if matches!(e, ApiError { code: "wrong_password", .. }) {
                let event = Event { result: "wrong_password".into(), ..me.event() };
                state.audit.log(Action::PasswordChange, event.target(format!("user:{}", me.caller.name)));
            }
            Err(e)
        }
    }
}

#[derive(Serialize)]
struct TotpEnrolment {
    secret: String,
    uri: String,
    qr_svg: String,
}

async fn start_totp(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
) -> Result<Json<TotpEnrolment>, ApiError> {
    let accounts = state.accounts.clone();
    let user_id = me.caller.user_id;
    let secret = blocking(move || accounts.start_totp(user_id)).await?;
    let uri = totp::otpauth_uri("hearth", &me.caller.name, &secret);
    let qr_svg = totp::qr_svg(&uri).map_err(|e| ApiError::internal("QR code", e))?;
    Ok(Json(TotpEnrolment { secret: totp::base32(&secret), uri, qr_svg }))
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

#[derive(Serialize)]
struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

async fn confirm_totp(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    body: JsonBody<Code>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let Code { code } = body.into_inner()?;
    let accounts = state.accounts.clone();
    let user_id = me.caller.user_id;
    let codes = blocking(move || accounts.confirm_totp(user_id, &code, now_us())).await?;
    state.audit.log(Action::TotpChange, me.event().target("enabled"));
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}

#[derive(Deserialize)]
struct PasswordOnly {
    password: String,
}

async fn disable_totp(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    body: JsonBody<PasswordOnly>,
) -> Result<StatusCode, ApiError> {
    let PasswordOnly { password } = body.into_inner()?;
    let accounts = state.accounts.clone();
    if blocking(move || accounts.require_2fa()).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "totp_required",
            "an admin requires two-factor authentication",
        ));
    }
    let accounts = state.accounts.clone();
    let user_id = me.caller.user_id;
    if !blocking(move || accounts.verify_own_password(user_id, &password)).await? {
        return Err(AuthError::WrongPassword.into());
    }
    let accounts = state.accounts.clone();
    blocking(move || accounts.remove_totp(user_id)).await?;
    state.audit.log(Action::TotpChange, me.event().target("disabled"));
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct SessionsQuery {
    #[serde(default)]
    all: bool,
}

#[derive(Serialize)]
struct SessionView {
    #[serde(flatten)]
    session: SessionInfo,
    created: String,
    last_seen: String,
    current: bool,
}

/// The caller's own sessions; an admin may ask for everyone's with `?all=true`.
async fn sessions(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Query(query): Query<SessionsQuery>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    if query.all {
        me.require_admin(&state, "sessions")?;
    }
    let accounts = state.accounts.clone();
    let whose = (!query.all).then_some(me.caller.user_id);
    let list = blocking(move || accounts.sessions(whose)).await?;
    Ok(Json(
        list.into_iter()
            .map(|session| SessionView {
                created: crate::time::format_us(session.created_us),
                last_seen: crate::time::format_us(session.last_seen_us),
                current: session.id == me.caller.session_id,
                session,
            })
            .collect(),
    ))
}

async fn revoke_session(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let accounts = state.accounts.clone();
    let owner = blocking(move || accounts.session_owner(id)).await?;
    if owner != me.caller.user_id && !me.caller.is_admin() {
        // Someone else's session: indistinguishable from one that does not exist.
        return Err(AuthError::NoSuchSession.into());
    }
    let accounts = state.accounts.clone();
    blocking(move || accounts.revoke_session(id)).await?;
    state.audit.log(Action::SessionRevoke, me.event().target(format!("session:{id}")));
    if id == me.caller.session_id {
        return Ok(
            ([(header::SET_COOKIE, clear_cookie(state.config.web.uses_tls()))], StatusCode::NO_CONTENT).into_response()
        );
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
