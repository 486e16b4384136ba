//! The JSON half of the API: cameras, clips, timeline, storage, unlock/lock, and the OpenAPI
//! document that describes all of it (`/api/openapi.json`, checked against the router in a
//! test so the two cannot drift apart).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::guard::Me;
use super::{ApiError, AppState};
use crate::audit::{Action, Event};
use crate::auth::Permission;
use crate::camera::Connection;
use crate::crypto::{self, CryptoError};
use crate::db::{ClipFilter, ClipState};
use crate::time::{format_us, parse_rfc3339};

/// The OpenAPI 3 document, kept by hand next to the handlers it describes.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/status", get(status))
        .route("/cameras", get(cameras))
        .route("/cameras/{name}/timeline", get(timeline))
        .route("/clips", get(clips))
        .route("/storage", get(storage))
        .route("/unlock", post(unlock))
        .route("/lock", post(lock))
        .route("/openapi.json", get(|| async { ([("content-type", "application/json")], OPENAPI) }))
        .fallback(|| async { ApiError::not_found("no_such_route", "no such API endpoint") })
}

#[derive(Serialize)]
struct Status {
    locked: bool,
    version: &'static str,
    cameras: usize,
}

async fn status(State(state): State<AppState>, Extension(me): Extension<Me>) -> Json<Status> {
    Json(Status {
        locked: state.unlock.identity().is_none(),
        version: env!("CARGO_PKG_VERSION"),
        // Only the cameras this caller may know of.
        cameras: state.cameras.iter().filter(|c| me.caller.sees(&c.name)).count(),
    })
}

#[derive(Serialize)]
struct CameraView {
    name: String,
    status: Connection,
    last_error: Option<String>,
    last_frame: Option<String>,
    last_frame_us: Option<i64>,
    codec: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    bitrate_bps: u64,
    fps: f64,
}

/// The cameras this caller may see at all; a viewer learns nothing of the others.
async fn cameras(State(state): State<AppState>, Extension(me): Extension<Me>) -> Json<Vec<CameraView>> {
    let views = state
        .cameras
        .iter()
        .filter(|camera| me.caller.sees(&camera.name))
        .map(|camera| {
            let s = camera.status.borrow().clone();
            CameraView {
                name: camera.name.clone(),
                status: s.connection,
                last_error: s.last_error,
                last_frame: s.last_frame_us.map(format_us),
                last_frame_us: s.last_frame_us,
                codec: s.codec,
                width: s.width,
                height: s.height,
                bitrate_bps: s.bitrate_bps,
                fps: s.fps,
            }
        })
        .collect();
    Json(views)
}

/// An optional RFC 3339 query parameter (`name` is for the error message); empty means absent.
pub(super) fn optional_time(name: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| {
            parse_rfc3339(v)
                .ok_or_else(|| ApiError::bad_request("bad_time", format!("`{name}` must be an RFC 3339 time")))
        })
        .transpose()
}

/// `start`/`end` query parameters: RFC 3339 times.
#[derive(Deserialize)]
pub(super) struct TimeRange {
    camera: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

impl TimeRange {
    /// The range in µs; either end open when absent.
    pub(super) fn bounds(&self) -> Result<(i64, i64), ApiError> {
        let parse = |name: &str, value: &Option<String>, default: i64| match value {
            None => Ok(default),
            Some(text) => parse_rfc3339(text).ok_or_else(|| {
                ApiError::bad_request(
                    "bad_time",
                    format!("`{name}` must be an RFC 3339 time like 2026-11-24T10:00:00Z"),
                )
            }),
        };
        let start = parse("start", &self.start, i64::MIN)?;
        let end = parse("end", &self.end, i64::MAX)?;
        if start >= end {
            return Err(ApiError::bad_request("bad_range", "`start` must be before `end`"));
        }
        Ok((start, end))
    }
}

#[derive(Serialize)]
struct ClipView {
    id: i64,
    camera: String,
    start: String,
    end: String,
    start_us: i64,
    end_us: i64,
    bytes: i64,
    frames: i64,
    codec: String,
    width: i64,
    height: i64,
    has_audio: bool,
    /// Holds an event: kept for the event retention period.
    event: bool,
}

async fn clips(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Query(range): Query<TimeRange>,
) -> Result<Json<Vec<ClipView>>, ApiError> {
    let (start_us, end_us) = range.bounds()?;
    if let Some(name) = &range.camera {
        state.recordings_for(&me, name, Permission::Playback).await?;
    }
    let index = state.index.clone();
    let camera = range.camera.clone();
    let clips = tokio::task::spawn_blocking(move || {
        index.clips(&ClipFilter { camera: camera.as_deref(), state: Some(ClipState::Closed), start_us, end_us })
    })
    .await
    .map_err(|e| ApiError::internal("clip listing failed", e))??;
    Ok(Json(
        clips
            .into_iter()
            .filter(|c| me.caller.may(&c.camera, Permission::Playback))
            .map(|c| ClipView {
                id: c.id,
                camera: c.camera,
                start: format_us(c.start_us),
                end: format_us(c.end_us),
                start_us: c.start_us,
                end_us: c.end_us,
                bytes: c.bytes,
                frames: c.frames,
                codec: c.codec,
                width: c.width,
                height: c.height,
                has_audio: c.has_audio,
                event: c.event,
            })
            .collect(),
    ))
}

#[derive(Serialize)]
struct Span {
    id: Option<i64>,
    start_us: i64,
    end_us: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Clips only: whether it holds an event.
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<bool>,
}

#[derive(Serialize)]
struct Timeline {
    clips: Vec<Span>,
    gaps: Vec<Span>,
    /// The clip being recorded now, if any: it grows until it closes.
    recording: Option<Span>,
}

async fn timeline(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Path(name): Path<String>,
    Query(range): Query<TimeRange>,
) -> Result<Json<Timeline>, ApiError> {
    state.recordings_for(&me, &name, Permission::Playback).await?;
    let (start_us, end_us) = range.bounds()?;
    let index = state.index.clone();
    let result = tokio::task::spawn_blocking(move || {
        let filter = ClipFilter { camera: Some(&name), state: None, start_us, end_us };
        let clips = index.clips(&filter)?;
        let gaps = index.gaps(Some(&name), start_us, end_us)?;
        Ok::<_, crate::db::DbError>((clips, gaps))
    })
    .await
    .map_err(|e| ApiError::internal("timeline query failed", e))??;
    let (clips, gaps) = result;
    let mut timeline = Timeline { clips: Vec::new(), gaps: Vec::new(), recording: None };
    for clip in clips {
        let span = Span {
            id: Some(clip.id),
            start_us: clip.start_us,
            end_us: clip.end_us,
            reason: None,
            event: Some(clip.event),
        };
        match clip.state {
            ClipState::Closed => timeline.clips.push(span),
            ClipState::Open => timeline.recording = Some(span),
            ClipState::Deleting => {}
        }
    }
    timeline.gaps = gaps
        .into_iter()
        .map(|g| Span { id: None, start_us: g.start_us, end_us: g.end_us, reason: Some(g.reason), event: None })
        .collect();
    Ok(Json(timeline))
}

#[derive(Serialize)]
struct CameraUsage {
    name: String,
    bytes: i64,
    clips: i64,
    oldest: Option<String>,
    max_bytes: Option<u64>,
}

#[derive(Serialize)]
struct Storage {
    max_bytes: u64,
    used_bytes: i64,
    disk_free_bytes: Option<u64>,
    max_age_days: u32,
    cameras: Vec<CameraUsage>,
}

async fn storage(State(state): State<AppState>, Extension(me): Extension<Me>) -> Result<Json<Storage>, ApiError> {
    me.require_admin(&state, "storage")?;
    let index = state.index.clone();
    let usage = tokio::task::spawn_blocking(move || index.usage_by_camera())
        .await
        .map_err(|e| ApiError::internal("storage query failed", e))??;
    let config = &state.config;
    let cameras: Vec<CameraUsage> = config
        .cameras
        .iter()
        .map(|camera| {
            let used = usage.iter().find(|(name, _)| *name == camera.name).map(|(_, u)| u.clone()).unwrap_or_default();
            CameraUsage {
                name: camera.name.clone(),
                bytes: used.bytes,
                clips: used.clips,
                oldest: used.oldest_start_us.map(format_us),
                max_bytes: camera.max_bytes.map(|b| b.0),
            }
        })
        .collect();
    Ok(Json(Storage {
        max_bytes: config.storage.max_bytes.0,
        used_bytes: usage.iter().map(|(_, u)| u.bytes).sum(),
        disk_free_bytes: disk_free(&config.data_dir),
        max_age_days: config.storage.max_age_days,
        cameras,
    }))
}

fn disk_free(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid out-pointer.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[derive(Deserialize)]
struct UnlockRequest {
    passphrase: String,
}

async fn unlock(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    body: super::JsonBody<UnlockRequest>,
) -> Result<StatusCode, ApiError> {
    me.require_admin(&state, "unlock")?;
    let request = super::BodyExt::into_inner(body)?;
    if request.passphrase.is_empty() {
        return Err(ApiError::bad_request("bad_body", "the passphrase is empty"));
    }
    let identity_file = state.config.crypto.identity_file.clone();
    let recipient = state.unlock.recipient().clone();
    let passphrase = age::secrecy::SecretString::from(request.passphrase);
    let result = tokio::task::spawn_blocking(move || crypto::unlock_identity(&identity_file, &passphrase, &recipient))
        .await
        .map_err(|e| ApiError::internal("unlock failed", e))?;
    match result {
        Ok(identity) => {
            state.unlock.set(identity);
            state.audit.log(Action::Unlock, me.event());
            tracing::info!(user = %me.caller.name, "playback unlocked");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(CryptoError::WrongPassphrase(_)) => {
            state.audit.log(Action::Unlock, Event { result: "wrong_passphrase".into(), ..me.event() });
            tracing::warn!(user = %me.caller.name, "unlock attempt with a wrong passphrase");
            Err(ApiError::new(StatusCode::FORBIDDEN, "wrong_passphrase", "wrong passphrase"))
        }
        Err(e) => Err(ApiError::internal("unlock failed", e)),
    }
}

async fn lock(State(state): State<AppState>, Extension(me): Extension<Me>) -> Result<StatusCode, ApiError> {
    me.require_admin(&state, "lock")?;
    state.unlock.lock();
    state.audit.log(Action::Lock, me.event());
    tracing::info!(user = %me.caller.name, "playback locked");
    Ok(StatusCode::NO_CONTENT)
}
