//! Events: motion, doorbell presses and whatever a camera or webhook reports, with when,
//! how strong, where in the frame, and a thumbnail.
//!
//! [`Events`] owns the `events` table (its own SQLite connection) and a broadcast channel:
//! every start, end or instant event is stored first and then announced as a [`Notice`] to
//! the web UI's live feed and the MQTT publisher. Thumbnails are JPEGs encrypted to the hub's
//! age recipient like clips, so they too are unreadable without the passphrase. Events have
//! their own retention (`events.retention_days`), independent of the clips around them.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::crypto::Recipient;
use crate::motion::detector::BoundingBox;

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("event kinds are 1-32 characters of a-z, 0-9 and _")]
    BadKind,
}

impl From<rusqlite::Error> for EventError {
    fn from(e: rusqlite::Error) -> Self {
        EventError::Db(e.into())
    }
}

/// `motion`, `doorbell`, or another short name a device reports.
pub fn valid_kind(kind: &str) -> bool {
    (1..=32).contains(&kind.len()) && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// One stored event.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Event {
    pub id: i64,
    pub camera: String,
    pub kind: String,
    /// Who reported it: `motion` (our detector), `webhook`, `onvif`.
    pub source: String,
    pub start_us: i64,
    /// None while it is going on.
    pub end_us: Option<i64>,
    pub score: f32,
    pub bbox: Option<[f32; 4]>,
    pub has_thumbnail: bool,
}

/// What is announced as it happens.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Notice {
    pub id: i64,
    pub camera: String,
    pub kind: String,
    /// `start`, `end`, or `instant` (a doorbell press has no duration).
    pub phase: &'static str,
    pub time_us: i64,
    pub score: f32,
}

/// Which events to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub cameras: Option<Vec<String>>,
    pub kind: Option<String>,
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: usize,
}

pub struct Events {
    conn: Mutex<Connection>,
    recipient: Recipient,
    notices: broadcast::Sender<Notice>,
}

fn bbox_text(bbox: Option<BoundingBox>) -> Option<String> {
    bbox.map(|b| format!("{:.4},{:.4},{:.4},{:.4}", b.x, b.y, b.width, b.height))
}

fn parse_bbox(text: Option<String>) -> Option<[f32; 4]> {
    let values: Vec<f32> = text?.split(',').filter_map(|v| v.parse().ok()).collect();
    values.try_into().ok()
}

impl Events {
    pub fn open(path: &Path, recipient: Recipient) -> Result<Events, EventError> {
        let (notices, _) = broadcast::channel(64);
        Ok(Events { conn: Mutex::new(crate::db::open_connection(path)?), recipient, notices })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    fn announce(&self, notice: Notice) {
        tracing::info!(camera = %notice.camera, kind = %notice.kind, phase = notice.phase, event = notice.id, "event");
        let _ = self.notices.send(notice); // nobody listening is fine
    }

    fn encrypt(&self, thumbnail: Option<&[u8]>) -> Result<Option<Vec<u8>>, EventError> {
        Ok(thumbnail.map(|jpeg| crate::crypto::encrypt_bytes(jpeg, &self.recipient)).transpose()?)
    }

    /// An event that lasts (motion): stored open, ended later with [`Events::end`].
    pub fn start(
        &self,
        camera: &str,
        kind: &str,
        source: &str,
        start_us: i64,
        score: f32,
        bbox: Option<BoundingBox>,
        thumbnail: Option<&[u8]>,
    ) -> Result<i64, EventError> {
        let id = self.insert(camera, kind, source, start_us, None, score, bbox, thumbnail)?;
        self.announce(Notice {
            id,
            camera: camera.into(),
            kind: kind.into(),
            phase: "start",
            time_us: start_us,
            score,
        });
        Ok(id)
    }

    /// Camera `camera`'s events still going on, as (id, start).
    pub fn open_events(&self, camera: &str) -> Result<Vec<(i64, i64)>, EventError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare_cached("SELECT id, start_us FROM events WHERE camera = ?1 AND end_us IS NULL ORDER BY id")?;
        let rows = statement.query_map([camera], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn end(&self, id: i64, end_us: i64, peak: f32, bbox: Option<BoundingBox>) -> Result<(), EventError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row("SELECT camera, kind FROM events WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((camera, kind)) = row else { return Ok(()) }; // pruned meanwhile
        self.conn().execute(
            "UPDATE events SET end_us = max(?2, start_us), score = max(score, ?3), bbox = coalesce(?4, bbox) WHERE id = ?1",
            params![id, end_us, peak, bbox_text(bbox)],
        )?;
        self.announce(Notice { id, camera, kind, phase: "end", time_us: end_us, score: peak });
        Ok(())
    }

    /// An event without duration (a doorbell press, a webhook call).
    pub fn instant(
        &self,
        camera: &str,
        kind: &str,
        source: &str,
        time_us: i64,
        thumbnail: Option<&[u8]>,
    ) -> Result<i64, EventError> {
        if !valid_kind(kind) {
            return Err(EventError::BadKind);
        }
        let id = self.insert(camera, kind, source, time_us, Some(time_us), 1.0, None, thumbnail)?;
        self.announce(Notice { id, camera: camera.into(), kind: kind.into(), phase: "instant", time_us, score: 1.0 });
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        camera: &str,
        kind: &str,
        source: &str,
        start_us: i64,
        end_us: Option<i64>,
        score: f32,
        bbox: Option<BoundingBox>,
        thumbnail: Option<&[u8]>,
    ) -> Result<i64, EventError> {
        let thumbnail = self.encrypt(thumbnail)?;
        let conn = self.conn();
        conn.execute(
            "INSERT INTO events (camera, kind, source, start_us, end_us, score, bbox, thumbnail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![camera, kind, source, start_us, end_us, score, bbox_text(bbox), thumbnail],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Events matching `filter`, newest first. An event overlaps the range if it started
    /// before its end and had not ended before its start.
    pub fn list(&self, filter: &Filter) -> Result<Vec<Event>, EventError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT id, camera, kind, source, start_us, end_us, score, bbox, thumbnail IS NOT NULL FROM events
             WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR start_us < ?2)
               AND (?3 IS NULL OR coalesce(end_us, start_us) >= ?3) AND (?4 IS NULL OR id < ?4)
             ORDER BY start_us DESC, id DESC",
        )?;
        let rows =
            statement.query_map(params![filter.kind, filter.end_us, filter.start_us, filter.before_id], |r| {
                Ok(Event {
                    id: r.get(0)?,
                    camera: r.get(1)?,
                    kind: r.get(2)?,
                    source: r.get(3)?,
                    start_us: r.get(4)?,
                    end_us: r.get(5)?,
                    score: r.get::<_, f64>(6)? as f32,
                    bbox: parse_bbox(r.get(7)?),
                    has_thumbnail: r.get(8)?,
                })
            })?;
        let mut out = Vec::new();
        for row in rows {
            let event = row?;
            if filter.cameras.as_ref().is_some_and(|cameras| !cameras.contains(&event.camera)) {
                continue;
            }
            out.push(event);
            if out.len() >= filter.limit {
                break;
            }
        }
        Ok(out)
    }

    pub fn get(&self, id: i64) -> Result<Option<Event>, EventError> {
        Ok(self.list(&Filter { limit: usize::MAX, ..Filter::default() })?.into_iter().find(|e| e.id == id))
    }

    /// The encrypted thumbnail of event `id`, with its camera.
    pub fn thumbnail(&self, id: i64) -> Result<Option<(String, Vec<u8>)>, EventError> {
        Ok(self
            .conn()
            .query_row("SELECT camera, thumbnail FROM events WHERE id = ?1 AND thumbnail IS NOT NULL", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    /// Deletes events that started before `cutoff_us`.
    pub fn prune(&self, cutoff_us: i64) -> Result<usize, EventError> {
        Ok(self.conn().execute("DELETE FROM events WHERE start_us < ?1", [cutoff_us])?)
    }

    /// Closes events left open by a crash or a stop, at their start (their true end is unknown).
    pub fn close_dangling(&self) -> Result<usize, EventError> {
        Ok(self.conn().execute("UPDATE events SET end_us = start_us WHERE end_us IS NULL", [])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> (tempfile::TempDir, Events, age::x25519::Identity) {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let recipient = Recipient::parse(&identity.to_public().to_string()).unwrap();
        let events = Events::open(&dir.path().join("index.sqlite3"), recipient).unwrap();
        (dir, events, identity)
    }

    #[test]
    fn lifecycle_listing_and_notices() {
        let (_dir, events, identity) = events();
        let mut notices = events.subscribe();
        let bbox = BoundingBox { x: 0.1, y: 0.2, width: 0.3, height: 0.4 };
        let motion = events.start("door", "motion", "motion", 1_000, 0.05, Some(bbox), Some(b"jpeg")).unwrap();
        let ring = events.instant("door", "doorbell", "webhook", 2_000, None).unwrap();
        events.start("garden", "motion", "motion", 3_000, 0.02, None, None).unwrap();
        events.end(motion, 5_000, 0.09, None).unwrap();
        let phases: Vec<&str> = (0..4).map(|_| notices.try_recv().unwrap().phase).collect();
        assert_eq!(phases, ["start", "instant", "start", "end"]);

        let all = events.list(&Filter { limit: 10, ..Filter::default() }).unwrap();
        assert_eq!(all.iter().map(|e| e.start_us).collect::<Vec<_>>(), [3_000, 2_000, 1_000], "newest first");
        let door = events.list(&Filter { cameras: Some(vec!["door".into()]), limit: 10, ..Filter::default() }).unwrap();
        assert_eq!(door.len(), 2);
        let first = door.iter().find(|e| e.id == motion).unwrap();
        assert_eq!((first.end_us, first.score), (Some(5_000), 0.09));
        assert_eq!(first.bbox, Some([0.1, 0.2, 0.3, 0.4]));
        assert!(first.has_thumbnail);
        let rings = events.list(&Filter { kind: Some("doorbell".into()), limit: 10, ..Filter::default() }).unwrap();
        assert_eq!(rings.iter().map(|e| e.id).collect::<Vec<_>>(), [ring]);
        let window = events
            .list(&Filter { start_us: Some(4_000), end_us: Some(4_500), limit: 10, ..Filter::default() })
            .unwrap();
        let ids: Vec<i64> = window.iter().map(|e| e.id).collect();
        assert!(ids.contains(&motion), "an event spanning the window overlaps it: {ids:?}");
        assert!(!ids.contains(&ring));

        let (camera, sealed) = events.thumbnail(motion).unwrap().unwrap();
        assert_eq!(camera, "door");
        assert!(!sealed.windows(4).any(|w| w == b"jpeg"), "thumbnails are encrypted");
        let unlocked = crate::crypto::UnlockedIdentity::from_identity(identity);
        assert_eq!(crate::crypto::decrypt_bytes(&sealed, &unlocked).unwrap(), b"jpeg");
    }

    #[test]
    fn retention_and_dangling_events() {
        let (_dir, events, _) = events();
        events.start("door", "motion", "motion", 1_000, 0.1, None, None).unwrap();
        events.instant("door", "doorbell", "webhook", 9_000, None).unwrap();
        assert_eq!(events.close_dangling().unwrap(), 1);
        assert_eq!(events.prune(5_000).unwrap(), 1);
        assert_eq!(events.list(&Filter { limit: 10, ..Filter::default() }).unwrap().len(), 1);
        assert!(matches!(events.instant("door", "Door Bell", "webhook", 1, None), Err(EventError::BadKind)));
    }
}
