//! Events over HTTP: the list (with filters), thumbnails, a live feed for the open page
//! (server-sent events), and the webhook a doorbell or sensor calls when pressed.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::Stream;
use serde::{Deserialize, Serialize};

use super::guard::{forbidden_camera, Me};
use super::{blocking, ApiError, AppState};
use crate::audit::{Action, Event as AuditEvent};
use crate::events::{self, Filter};
use crate::time::{format_us, now_us};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events", get(list))
        .route("/events/stream", get(stream))
        .route("/events/{id}/thumbnail.jpg", get(thumbnail))
        .route("/hooks/{camera}/{kind}", post(hook))
}

impl From<events::EventError> for ApiError {
    fn from(e: events::EventError) -> Self {
        match e {
            events::EventError::BadKind => ApiError::bad_request("bad_kind", e.to_string()),
            other => ApiError::internal("event query failed", other),
        }
    }
}

#[derive(Deserialize)]
struct ListQuery {
    camera: Option<String>,
    kind: Option<String>,
    start: Option<String>,
    end: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct EventView {
    #[serde(flatten)]
    event: events::Event,
    start: String,
    end: Option<String>,
}

/// Events of the cameras this caller may see, newest first.
async fn list(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let time = super::api::optional_time;
    let visible: Vec<String> =
        state.cameras.iter().filter(|c| me.caller.sees(&c.name)).map(|c| c.name.clone()).collect();
    let cameras = match query.camera.filter(|c| !c.is_empty()) {
        Some(camera) if visible.contains(&camera) => vec![camera],
        Some(_) if !me.caller.is_admin() => return Err(forbidden_camera()),
        Some(camera) => return Err(ApiError::not_found("no_such_camera", format!("no camera named `{camera}`"))),
        None => visible,
    };
    let filter = Filter {
        cameras: Some(cameras),
        kind: query.kind.filter(|k| !k.is_empty()),
        start_us: time("start", &query.start)?,
        end_us: time("end", &query.end)?,
        before_id: query.before,
        limit: query.limit.unwrap_or(100).clamp(1, 1000),
    };
    let store = state.events.clone();
    let list = blocking(move || store.list(&filter)).await?;
    Ok(Json(
        list.into_iter()
            .map(|event| EventView { start: format_us(event.start_us), end: event.end_us.map(format_us), event })
            .collect(),
    ))
}

async fn thumbnail(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = file.parse().map_err(|_| ApiError::not_found("no_such_event", "event ids are numbers"))?;
    let store = state.events.clone();
    let found = blocking(move || store.thumbnail(id)).await?;
    let Some((camera, sealed)) = found.filter(|(camera, _)| me.caller.sees(camera)) else {
        if !me.caller.is_admin() {
            return Err(forbidden_camera());
        }
        return Err(ApiError::not_found("no_such_event", format!("no thumbnail for event {id}")));
    };
    let identity = state.unlock.identity().ok_or_else(ApiError::locked)?;
    let jpeg = blocking(move || crate::crypto::decrypt_bytes(&sealed, &identity))
        .await
        .map_err(|e| ApiError::internal("thumbnail", e.message))?;
    if state.views.first_in_window(format!("{} event {id}", me.caller.session_id), Instant::now()) {
        state.audit.log(Action::Snapshot, me.event().camera(&camera).target(format!("event:{id}")));
    }
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, max-age=3600")], jpeg).into_response())
}

impl From<crate::crypto::CryptoError> for ApiError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        ApiError::internal("decryption failed", e)
    }
}

/// How often the live event feed re-checks its session.
const STREAM_RECHECK: Duration = Duration::from_secs(1);

/// Server-sent events: one `event` message per notice on a camera the caller may see,
/// until the session ends or hearth stops.
async fn stream(
    State(state): State<AppState>,
    Extension(me): Extension<Me>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let notices = state.events.subscribe();
    let stream = futures::stream::unfold(
        (notices, state, me, Instant::now()),
        |(mut notices, state, me, mut checked)| async move {
            let mut shutdown = state.shutdown.clone();
            loop {
                if checked.elapsed() >= STREAM_RECHECK {
                    checked = Instant::now();
                    let accounts = state.accounts.clone();
                    let id = me.caller.session_id;
                    let alive = tokio::task::spawn_blocking(move || accounts.session_by_id(id, now_us())).await;
                    if !matches!(alive, Ok(Ok(Some(_)))) {
                        return None;
                    }
                }
                let notice = tokio::select! {
                    notice = notices.recv() => notice,
                    _ = tokio::time::sleep(STREAM_RECHECK) => continue,
                    _ = shutdown.recv() => return None,
                };
                match notice {
                    Ok(notice) if me.caller.sees(&notice.camera) => {
                        let data = serde_json::to_string(&notice).unwrap_or_default();
                        return Some((
                            Ok(SseEvent::default().event("event").data(data)),
                            (notices, state, me, checked),
                        ));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct HookQuery {
    token: Option<String>,
}

#[derive(Serialize)]
struct HookReply {
    id: i64,
}

/// `POST /api/hooks/{camera}/{kind}`: a device reports an event (a doorbell press). It
/// authenticates with the camera's `hook_token` (`Authorization: Bearer …`, or `?token=` for
/// devices that can only call a URL). Every refusal looks the same, and wrong tokens are
/// throttled like logins.
async fn hook(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path((camera, kind)): Path<(String, String)>,
    Query(query): Query<HookQuery>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<HookReply>), ApiError> {
    let address = crate::lan::canonical(peer.ip());
    let throttle_key = format!("hook:{camera}");
    if state.throttle.check(address, &throttle_key, Instant::now()).is_err() {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", "too many failed attempts"));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or(query.token)
        .unwrap_or_default();
    let expected = state.config.cameras.iter().find(|c| c.name == camera).and_then(|c| c.hook_token.clone());
    let valid = expected.is_some_and(|token| {
        use subtle::ConstantTimeEq;
        bool::from(token.as_bytes().ct_eq(presented.as_bytes()))
    });
    if !valid {
        state.throttle.failed(address, &throttle_key, Instant::now());
        let event =
            AuditEvent::failed("bad_hook_token").address(address).camera(&camera).target(format!("hook:{kind}"));
        state.audit.log(Action::Denied, event);
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "bad_token", "unknown camera or wrong token"));
    }
    if !events::valid_kind(&kind) {
        return Err(ApiError::bad_request("bad_kind", "event kinds are 1-32 characters of a-z, 0-9 and _"));
    }
    let keyframe = state.camera(&camera)?.live.keyframe();
    let thumbnail = match keyframe {
        Some(k) => state.media.keyframe_to_jpeg(&k.sample_entry, &k.data, 320).await.ok(),
        None => None,
    };
    let store = state.events.clone();
    let id = blocking(move || store.instant(&camera, &kind, "webhook", now_us(), thumbnail.as_deref())).await?;
    Ok((StatusCode::ACCEPTED, Json(HookReply { id })))
}
