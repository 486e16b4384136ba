//! The video half of the API: live view over WebSocket (fed by the camera's [`LiveFeed`]),
//! snapshots, clip playback with HTTP ranges, and export.
//!
//! [`LiveFeed`]: crate::live::LiveFeed

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use tokio::sync::broadcast::error::RecvError;

use super::api::TimeRange;
use super::guard::Me;
use super::{ApiError, AppState};
use crate::audit::{Action, Event};
use crate::auth::Permission;
use crate::db::ClipState;
use crate::live::{LiveItem, StreamHeader, Subscription};
use crate::playback::{self, range::RangeRequest};

/// Snapshots are for tiles and thumbnails: no wider than this.
const SNAPSHOT_MAX_WIDTH: u32 = 1280;
/// How often a live stream re-checks that its session and grant still stand: a revoked
/// session or a changed password cuts the video within this (and the next request anyway).
const LIVE_RECHECK: std::time::Duration = std::time::Duration::from_millis(250);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cameras/{name}/live", get(live))
        .route("/cameras/{name}/snapshot.jpg", get(snapshot))
        .route("/cameras/{name}/export.mp4", get(export))
        .route("/clips/{file}", get(clip))
}

async fn live(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Path(name): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let feed = state.camera_for(&me, &name, Permission::Live)?.live.clone();
    Ok(upgrade.on_upgrade(move |socket| async move {
        tracing::info!(camera = %name, user = %me.caller.name, "live viewer connected");
        state.audit.log(Action::LiveStart, me.event().camera(&name));
        let (mut socket, end) = stream_live(socket, &feed, &state, &me, &name).await;
        // The row is written before the viewer is told, so whoever sees the stream end
        // finds it in the audit log already.
        state.audit.log(Action::LiveStop, Event { result: end.as_str().to_owned(), ..me.event().camera(&name) });
        if let Some(frame) = end.close_frame() {
            let _ = socket.send(Message::Close(frame)).await;
        }
        tracing::info!(camera = %name, user = %me.caller.name, reason = end.as_str(), "live viewer left");
    }))
}

/// Why a live stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LiveEnd {
    ViewerLeft,
    Revoked,
    HearthStopped,
    CameraGone,
}

impl LiveEnd {
    fn as_str(self) -> &'static str {
        match self {
            LiveEnd::ViewerLeft => "ok",
            LiveEnd::Revoked => "revoked",
            LiveEnd::HearthStopped => "hearth_stopped",
            LiveEnd::CameraGone => "camera_gone",
        }
    }

    /// The close frame hearth still owes the viewer, if the viewer did not leave by itself.
    fn close_frame(self) -> Option<Option<axum::extract::ws::CloseFrame>> {
        match self {
            LiveEnd::ViewerLeft => None,
            // 4401: an application close code (4000-4999) the page reads as "log in again".
            LiveEnd::Revoked => {
                Some(Some(axum::extract::ws::CloseFrame { code: 4401, reason: "session ended".into() }))
            }
            LiveEnd::HearthStopped | LiveEnd::CameraGone => Some(None),
        }
    }
}

/// Whether the viewer's session still exists and still grants live view of `camera`.
async fn still_allowed(state: &AppState, me: &Me, camera: &str) -> bool {
    let accounts = state.accounts.clone();
    let id = me.caller.session_id;
    match tokio::task::spawn_blocking(move || accounts.session_by_id(id, crate::time::now_us())).await {
        Ok(Ok(Some(caller))) => caller.may(camera, Permission::Live),
        Ok(Ok(None)) => false,
        // A database hiccup is not a revocation; the next check decides.
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot re-check a live viewer's session");
            true
        }
        Err(_) => true,
    }
}

/// Sends header, backlog, then every new item, until the viewer leaves, their session or
/// grant goes, or hearth stops; hands the socket back with why it ended, so the caller can
/// record that before closing. A viewer that falls too far behind is resynchronised from
/// the next keyframe.
async fn stream_live(
    mut socket: WebSocket,
    feed: &crate::live::LiveFeed,
    state: &AppState,
    me: &Me,
    camera: &str,
) -> (WebSocket, LiveEnd) {
    let mut shutdown = state.shutdown.clone();
    let mut recheck = tokio::time::interval(LIVE_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut subscription = feed.subscribe();
    if send_start(&mut socket, &subscription).await.is_err() {
        return (socket, LiveEnd::ViewerLeft);
    }
    // The backlog, when there is one, starts with a keyframe; otherwise wait for the next.
    let mut waiting_for_keyframe = subscription.backlog.is_empty();
    loop {
        let item = tokio::select! {
            item = subscription.items.recv() => item,
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return (socket, LiveEnd::ViewerLeft),
                Some(Ok(_)) => continue,
            },
            _ = recheck.tick() => {
                if still_allowed(state, me, camera).await {
                    continue;
                }
                return (socket, LiveEnd::Revoked);
            }
            _ = shutdown.recv() => return (socket, LiveEnd::HearthStopped),
        };
        let sent = match item {
            Ok(LiveItem::Header(header)) => {
                waiting_for_keyframe = true;
                send_header(&mut socket, &header).await
            }
            Ok(LiveItem::Fragment { bytes, keyframe }) => {
                if waiting_for_keyframe && !keyframe {
                    continue;
                }
                waiting_for_keyframe = false;
                socket.send(Message::Binary(bytes)).await
            }
            Err(RecvError::Lagged(_)) => {
                subscription = feed.subscribe();
                waiting_for_keyframe = subscription.backlog.is_empty();
                send_start(&mut socket, &subscription).await
            }
            Err(RecvError::Closed) => return (socket, LiveEnd::CameraGone),
        };
        if sent.is_err() {
            return (socket, LiveEnd::ViewerLeft);
        }
    }
}

async fn send_start(socket: &mut WebSocket, subscription: &Subscription) -> Result<(), axum::Error> {
    if let Some(header) = &subscription.header {
        send_header(socket, header).await?;
        for fragment in &subscription.backlog {
            socket.send(Message::Binary(fragment.clone())).await?;
        }
    }
    Ok(())
}

async fn send_header(socket: &mut WebSocket, header: &StreamHeader) -> Result<(), axum::Error> {
    let text = serde_json::json!({ "codec": header.codec, "mime": header.mime }).to_string();
    socket.send(Message::Text(text.into())).await?;
    socket.send(Message::Binary(header.init.clone())).await
}

async fn snapshot(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let keyframe = state
        .camera_for(&me, &name, Permission::Live)?
        .live
        .keyframe()
        .ok_or_else(|| ApiError::not_found("no_frame", format!("no picture from `{name}` yet")))?;
    let jpeg = state.media.keyframe_to_jpeg(&keyframe.sample_entry, &keyframe.data, SNAPSHOT_MAX_WIDTH).await?;
    if state.views.first_in_window(format!("{} snapshot {name}", me.caller.session_id), std::time::Instant::now()) {
        state.audit.log(Action::Snapshot, me.event().camera(&name));
    }
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-store")], jpeg).into_response())
}

async fn clip(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id: i64 = file
        .strip_suffix(".mp4")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ApiError::not_found("no_such_clip", "clip URLs look like /api/clips/42.mp4"))?;
    let index = state.index.clone();
    let clip = tokio::task::spawn_blocking(move || index.clip(id))
        .await
        .map_err(|e| ApiError::internal("clip lookup failed", e))??
        .filter(|c| c.state == ClipState::Closed);
    let Some(clip) = clip else {
        // A viewer learns nothing from ids: missing and not-granted look the same.
        if !me.caller.is_admin() {
            return Err(super::guard::forbidden_camera());
        }
        return Err(ApiError::not_found("no_such_clip", format!("no clip {id}")));
    };
    state.authorize(&me, &clip.camera, Permission::Playback)?;
    let identity = state.unlock.identity().ok_or_else(ApiError::locked)?;
    if state.views.first_in_window(format!("{} clip {id}", me.caller.session_id), std::time::Instant::now()) {
        state.audit.log(Action::ClipView, me.event().camera(&clip.camera).target(format!("clip:{id}")));
    }
    let path = state.config.data_dir.join(&clip.path);
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (total, range, stream) = playback::open_clip_stream(path, identity, range_header)
        .await
        .map_err(|e| ApiError::internal("cannot open clip", e))?;
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, max-age=3600");
    match range {
        RangeRequest::Unsatisfiable => {
            return Ok(Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, playback::range::unsatisfied_content_range(total))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"error":"bad_range","message":"the requested range is outside the clip"}"#))
                .map_err(|e| ApiError::internal("response", e))?);
        }
        RangeRequest::Partial(r) => {
            response = response
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, r.content_range(total))
                .header(header::CONTENT_LENGTH, r.len());
        }
        RangeRequest::Full | RangeRequest::Ignored => {
            response = response.status(StatusCode::OK).header(header::CONTENT_LENGTH, total);
        }
    }
    response.body(Body::from_stream(stream)).map_err(|e| ApiError::internal("response", e))
}

async fn export(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Path(name): Path<String>,
    Query(range): Query<TimeRange>,
) -> Result<Response, ApiError> {
    state.recordings_for(&me, &name, Permission::Download).await?;
    let (start_us, end_us) = range.bounds()?;
    if start_us == i64::MIN || end_us == i64::MAX {
        return Err(ApiError::bad_request("bad_range", "export needs both `start` and `end`"));
    }
    let identity = state.unlock.identity().ok_or_else(ApiError::locked)?;
    let index = state.index.clone();
    let camera = name.clone();
    let clips = tokio::task::spawn_blocking(move || {
        index.clips(&crate::db::ClipFilter { camera: Some(&camera), state: Some(ClipState::Closed), start_us, end_us })
    })
    .await
    .map_err(|e| ApiError::internal("export query failed", e))??;
    if clips.is_empty() {
        return Err(ApiError::not_found("empty_range", "nothing was recorded in that range"));
    }
    let span = format!("{}/{}", crate::time::format_us(start_us), crate::time::format_us(end_us));
    state.audit.log(Action::Export, me.event().camera(&name).target(span));
    let stream =
        playback::export::spawn_export_stream(state.config.data_dir.clone(), clips, identity, start_us, end_us);
    let filename = format!("{name}-{}.mp4", crate::time::format_us(start_us).replace(':', "-"));
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\""))
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal("response", e))?)
}
