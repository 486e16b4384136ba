//! What only admins may do: manage users and their per-camera grants, change hub-wide
//! settings, read (and export) the audit log, and see every outbound connection.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::guard::Me;
use super::{blocking, ApiError, AppState, BodyExt, JsonBody};
use crate::audit::{self, Action, Filter};
use crate::auth::{Grant, Role, User};
use crate::time::{format_us, now_us};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(users).post(add_user))
        .route("/users/{name}", get(user).patch(change_user).delete(remove_user))
        .route("/users/{name}/grants", axum::routing::put(set_grants))
        .route("/settings", get(settings).put(change_settings))
        .route("/audit", get(audit_log))
        .route("/audit/verify", get(audit_verify))
        .route("/connections", get(connections))
}

#[derive(Serialize)]
struct UserView {
    #[serde(flatten)]
    user: User,
    created: String,
}

fn view(user: User) -> UserView {
    UserView { created: format_us(user.created_us), user }
}

async fn users(State(state): State<AppState>, Extension(me): Extension<Me>) -> Result<Json<Vec<UserView>>, ApiError> {
    me.require_admin(&state, "users")?;
    let accounts = state.accounts.clone();
    Ok(Json(blocking(move || accounts.users()).await?.into_iter().map(view).collect()))
}

async fn user(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    me.require_admin(&state, "users")?;
    let accounts = state.accounts.clone();
    Ok(Json(view(blocking(move || accounts.user(&name)).await?)))
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
    password: String,
    #[serde(default = "viewer")]
    role: Role,
    #[serde(default)]
    grants: Vec<Grant>,
}

fn viewer() -> Role {
    Role::Viewer
}

fn check_grant_cameras(state: &AppState, grants: &[Grant]) -> Result<(), ApiError> {
    for grant in grants {
        if !state.cameras.iter().any(|c| c.name == grant.camera) {
            return Err(ApiError::bad_request("no_such_camera", format!("no camera named `{}`", grant.camera)));
        }
    }
    Ok(())
}

async fn add_user(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    body: JsonBody<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    me.require_admin(&state, "users")?;
    let request = body.into_inner()?;
    check_grant_cameras(&state, &request.grants)?;
    let accounts = state.accounts.clone();
    let name = request.name.clone();
    let user = blocking(move || {
        accounts.add_user(&request.name, &request.password, request.role, now_us())?;
        accounts.set_grants(&request.name, &request.grants)?;
        accounts.user(&request.name)
    })
    .await?;
    state.audit.log(Action::UserAdd, me.event().target(format!("user:{name}")));
    Ok((StatusCode::CREATED, Json(view(user))))
}

#[derive(Deserialize)]
struct UserChange {
    role: Option<Role>,
    disabled: Option<bool>,
    /// A new password set by the admin (ends every session of the user).
    password: Option<String>,
    /// Removes the user's second factor (a lost phone); they enrol again.
    #[serde(default)]
    reset_totp: bool,
}

async fn change_user(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Path(name): Path<String>,
    body: JsonBody<UserChange>,
) -> Result<Json<UserView>, ApiError> {
    me.require_admin(&state, "users")?;
    let change = body.into_inner()?;
    let accounts = state.accounts.clone();
    let target = format!("user:{name}");
    let password_changed = change.password.is_some();
    let keep = (name.eq_ignore_ascii_case(&me.caller.name)).then_some(me.caller.session_id);
    let user = blocking(move || {
        if let Some(role) = change.role {
            accounts.set_role(&name, role)?;
        }
        if let Some(disabled) = change.disabled {
            accounts.set_disabled(&name, disabled)?;
        }
        if let Some(password) = &change.password {
            accounts.set_password(&name, password, keep, now_us())?;
        }
        if change.reset_totp {
            let id = accounts.user(&name)?.id;
            accounts.remove_totp(id)?;
        }
        accounts.user(&name)
    })
    .await?;
    let action = if password_changed { Action::PasswordChange } else { Action::UserChange };
    state.audit.log(action, me.event().target(target));
    Ok(Json(view(user)))
}

async fn remove_user(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    me.require_admin(&state, "users")?;
    let accounts = state.accounts.clone();
    let target = format!("user:{name}");
    blocking(move || accounts.remove_user(&name)).await?;
    state.audit.log(Action::UserRm, me.event().target(target));
    Ok(StatusCode::NO_CONTENT)
}

async fn set_grants(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Path(name): Path<String>,
    body: JsonBody<Vec<Grant>>,
) -> Result<Json<UserView>, ApiError> {
    me.require_admin(&state, "grants")?;
    let grants = body.into_inner()?;
    check_grant_cameras(&state, &grants)?;
    let summary = grants
        .iter()
        .map(|g| {
            let rights: Vec<&str> = [("live", g.live), ("playback", g.playback), ("download", g.download)]
                .iter()
                .filter(|(_, on)| *on)
                .map(|(n, _)| *n)
                .collect();
            format!("{}={}", g.camera, if rights.is_empty() { "none".into() } else { rights.join("+") })
        })
        .collect::<Vec<_>>()
        .join(" ");
    let accounts = state.accounts.clone();
    let target = format!("user:{name} {summary}");
    let user = blocking(move || {
        accounts.set_grants(&name, &grants)?;
        accounts.user(&name)
    })
    .await?;
    state.audit.log(Action::GrantChange, me.event().target(target.trim_end()));
    Ok(Json(view(user)))
}

#[derive(Serialize, Deserialize)]
struct Settings {
    require_2fa: bool,
}

async fn settings(State(state): State<AppState>, Extension(me): Extension<Me>) -> Result<Json<Settings>, ApiError> {
    me.require_admin(&state, "settings")?;
    let accounts = state.accounts.clone();
    Ok(Json(Settings { require_2fa: blocking(move || accounts.require_2fa()).await? }))
}

async fn change_settings(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    body: JsonBody<Settings>,
) -> Result<Json<Settings>, ApiError> {
    me.require_admin(&state, "settings")?;
    let settings = body.into_inner()?;
    let accounts = state.accounts.clone();
    let required = settings.require_2fa;
    blocking(move || accounts.set_require_2fa(required)).await?;
    state.audit.log(Action::SettingsChange, me.event().target(format!("require_2fa={required}")));
    Ok(Json(settings))
}

#[derive(Deserialize)]
struct AuditQuery {
    user: Option<String>,
    camera: Option<String>,
    action: Option<String>,
    start: Option<String>,
    end: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
    format: Option<String>,
}

#[derive(Serialize)]
struct AuditRow {
    #[serde(flatten)]
    entry: audit::Entry,
    time: String,
}

const AUDIT_PAGE_MAX: usize = 1000;
const AUDIT_CSV_MAX: usize = 100_000;

async fn audit_log(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    me.require_admin(&state, "audit")?;
    let time = super::api::optional_time;
    if let Some(action) = query.action.as_deref().filter(|a| !a.is_empty()) {
        if Action::parse(action).is_none() {
            return Err(ApiError::bad_request("bad_action", format!("unknown action `{action}`")));
        }
    }
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(ApiError::bad_request("bad_format", format!("format `{other}`: use json or csv"))),
    };
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = Filter {
        start_us: time("start", &query.start)?,
        end_us: time("end", &query.end)?,
        user: nonempty(query.user),
        camera: nonempty(query.camera),
        action: nonempty(query.action),
        before_id: query.before,
        limit: query.limit.unwrap_or(if csv { AUDIT_CSV_MAX } else { 200 }).min(if csv {
            AUDIT_CSV_MAX
        } else {
            AUDIT_PAGE_MAX
        }),
    };
    let log = state.audit.clone();
    let entries = blocking(move || log.list(&filter)).await?;
    if csv {
        let body = audit::to_csv(&entries);
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"hearth-audit.csv\""),
            ],
            body,
        )
            .into_response());
    }
    let rows: Vec<AuditRow> =
        entries.into_iter().map(|entry| AuditRow { time: format_us(entry.time_us), entry }).collect();
    Ok(Json(rows).into_response())
}

async fn audit_verify(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
) -> Result<Json<audit::Verification>, ApiError> {
    me.require_admin(&state, "audit")?;
    let log = state.audit.clone();
    Ok(Json(blocking(move || log.verify()).await?))
}

#[derive(Serialize)]
struct ConfiguredCamera {
    name: String,
    address: String,
}

#[derive(Serialize)]
struct Connections {
    /// What the hub holds open right now, from its own bookkeeping.
    open: Vec<crate::egress::Connection>,
    /// The only places it may connect to.
    allowed: Vec<ConfiguredCamera>,
    /// Networks clients may connect from.
    allowed_networks: Vec<String>,
}

async fn connections(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
) -> Result<Json<Connections>, ApiError> {
    me.require_admin(&state, "connections")?;
    let address = |url: &url::Url| {
        let port = url.port_or_known_default().unwrap_or(if url.scheme().starts_with("rtsp") { 554 } else { 80 });
        format!("{}:{}", url.host_str().unwrap_or(""), port)
    };
    let allowed = state
        .config
        .cameras
        .iter()
        .flat_map(|c| {
            std::iter::once(&c.url)
                .chain(c.sub_url.as_ref())
                .chain(c.onvif.as_ref().map(|o| &o.url))
                .map(|url| ConfiguredCamera { name: c.name.clone(), address: address(url) })
        })
        .chain(
            state
                .config
                .mqtt
                .iter()
                .map(|m| ConfiguredCamera { name: "mqtt broker".into(), address: format!("{}:{}", m.host, m.port) }),
        )
        .collect();
    Ok(Json(Connections {
        open: state.egress.list(),
        allowed,
        allowed_networks: state.config.web.allowed_networks.iter().map(|n| n.to_string()).collect(),
    }))
}
