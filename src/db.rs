//! The index: a SQLite database (WAL) of cameras, clips and gaps.
//!
//! The index is the source of truth for *what exists*; the encrypted files are the source of
//! truth for *what was recorded*. Crash safety rests on the ordering between the two:
//! a clip row is inserted `open` **before** its file is created, and marked `closed` only
//! **after** the file is finished, fsynced and renamed into place. Deletion runs the other
//! way round: the row is marked `deleting`, then the file is removed, then the row goes. So
//! at every crash point a row tells start-up recovery what to look for, and a file on disk
//! without a row can only be a leftover of a deletion or of a clip that never got its row.
//!
//! Times are stored as integer microseconds since the Unix epoch (UTC); sizes in bytes.
//! Migrations are numbered by `PRAGMA user_version` and applied in one transaction each.
//! [`Index`] serialises access behind a mutex: every statement here is short, and callers on
//! the async runtime use `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("index database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("index database {path} has schema version {found}, newer than this hearth ({supported}); upgrade hearth")]
    TooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("no clip with id {0}")]
    NoSuchClip(i64),
}

impl DbError {
    /// SQLite could not write because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DiskFull)
    }
}

/// Where a clip is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipState {
    /// Being written (or interrupted by a crash, until recovery).
    Open,
    /// Finished, renamed into place, playable.
    Closed,
    /// Chosen by retention; the file may or may not still exist.
    Deleting,
}

impl ClipState {
    fn as_str(self) -> &'static str {
        match self {
            ClipState::Open => "open",
            ClipState::Closed => "closed",
            ClipState::Deleting => "deleting",
        }
    }

    fn parse(text: &str) -> rusqlite::Result<ClipState> {
        match text {
            "open" => Ok(ClipState::Open),
            "closed" => Ok(ClipState::Closed),
            "deleting" => Ok(ClipState::Deleting),
            other => Err(rusqlite::Error::InvalidColumnType(0, other.to_owned(), rusqlite::types::Type::Text)),
        }
    }
}

/// One row of `clips`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Clip {
    pub id: i64,
    pub camera: String,
    pub start_us: i64,
    pub end_us: i64,
    /// Exact media duration in 90 kHz units (the end time is rounded to µs).
    pub duration_90k: i64,
    /// Size of the encrypted file on disk.
    pub bytes: i64,
    pub frames: i64,
    pub keyframes: i64,
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub codec: String,
    pub width: i64,
    pub height: i64,
    pub has_audio: bool,
    /// Path relative to the data dir.
    pub path: String,
    pub state: ClipState,
    /// Holds (part of) an event: kept for the event retention period.
    pub event: bool,
}

/// What a finished (or recovered) clip contains, written when it closes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClipStats {
    pub end_us: i64,
    pub duration_90k: i64,
    pub bytes: i64,
    pub frames: i64,
    pub keyframes: i64,
}

/// What is known when a clip starts.
#[derive(Clone, Debug)]
pub struct NewClip<'a> {
    pub camera: &'a str,
    pub start_us: i64,
    pub codec: &'a str,
    pub width: u32,
    pub height: u32,
    pub has_audio: bool,
    pub event: bool,
}

/// A span with no recording, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gap {
    pub id: i64,
    pub camera: String,
    pub start_us: i64,
    pub end_us: i64,
    pub reason: String,
}

/// How much a camera (or the whole archive) holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    pub bytes: i64,
    pub clips: i64,
    pub oldest_start_us: Option<i64>,
}

const MIGRATIONS: &[&str] = &[
    // 1: the recording core.
    r#"
    CREATE TABLE cameras (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE clips (
        id INTEGER PRIMARY KEY,
        camera_id INTEGER NOT NULL REFERENCES cameras(id),
        start_us INTEGER NOT NULL,
        end_us INTEGER NOT NULL,
        duration_90k INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        frames INTEGER NOT NULL DEFAULT 0,
        keyframes INTEGER NOT NULL DEFAULT 0,
        codec TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        has_audio INTEGER NOT NULL,
        path TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('open', 'closed', 'deleting'))
    );
    -- Listing a camera's clips for a time range, and retention's oldest-first scan.
    CREATE INDEX clips_camera_start ON clips (camera_id, start_us);
    CREATE INDEX clips_start ON clips (start_us);
    CREATE TABLE gaps (
        id INTEGER PRIMARY KEY,
        camera_id INTEGER NOT NULL REFERENCES cameras(id),
        start_us INTEGER NOT NULL,
        end_us INTEGER NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX gaps_camera_start ON gaps (camera_id, start_us);
    "#,
    // 2: accounts, sessions, settings and the audit log (see auth/ and audit.rs).
    r#"
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
        disabled INTEGER NOT NULL DEFAULT 0,
        totp_secret BLOB,
        totp_pending BLOB,
        totp_last_step INTEGER,
        created_us INTEGER NOT NULL,
        password_changed_us INTEGER NOT NULL
    );
    -- A viewer's rights on one camera; admins need none.
    CREATE TABLE grants (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        camera TEXT NOT NULL,
        live INTEGER NOT NULL DEFAULT 0,
        playback INTEGER NOT NULL DEFAULT 0,
        download INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, camera)
    );
    CREATE TABLE recovery_codes (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        code_hash TEXT NOT NULL,
        PRIMARY KEY (user_id, code_hash)
    );
    -- Only the SHA-256 of each session token is stored: a copy of the index logs nobody in.
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        token_hash BLOB NOT NULL UNIQUE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_us INTEGER NOT NULL,
        last_seen_us INTEGER NOT NULL,
        address TEXT NOT NULL,
        user_agent TEXT NOT NULL
    );
    CREATE INDEX sessions_user ON sessions (user_id);
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- Append-only: each row's hash covers the previous row's hash and its own fields.
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        time_us INTEGER NOT NULL,
        user TEXT,
        address TEXT,
        action TEXT NOT NULL,
        camera TEXT,
        target TEXT,
        result TEXT NOT NULL,
        hash BLOB NOT NULL
    );
    CREATE INDEX audit_time ON audit (time_us);
    CREATE INDEX audit_user ON audit (user, time_us);
    CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // 3: events (motion, doorbell presses, webhooks); see events.rs.
    r#"
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        camera TEXT NOT NULL,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        start_us INTEGER NOT NULL,
        end_us INTEGER,
        score REAL NOT NULL DEFAULT 0,
        bbox TEXT,
        thumbnail BLOB
    );
    CREATE INDEX events_camera_start ON events (camera, start_us);
    CREATE INDEX events_start ON events (start_us);
    "#,
    // 4: recording modes: clips holding an event are kept for the event retention period.
    r#"
    ALTER TABLE clips ADD COLUMN event INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// The index database.
pub struct Index {
    conn: Mutex<Connection>,
}

impl Index {
    /// Opens (creating if needed) and migrates the index at `path`.
    pub fn open(path: &Path) -> Result<Index, DbError> {
        Ok(Index { conn: Mutex::new(open_connection(path)?) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection itself intact (SQLite rolls back
        // an unfinished transaction), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The id of camera `name`, creating its row on first use.
    pub fn camera_id(&self, name: &str) -> Result<i64, DbError> {
        let conn = self.conn();
        conn.execute("INSERT OR IGNORE INTO cameras (name) VALUES (?1)", [name])?;
        Ok(conn.query_row("SELECT id FROM cameras WHERE name = ?1", [name], |row| row.get(0))?)
    }

    /// Inserts an `open` clip row and returns its id; the caller then derives the path from
    /// the id with `path_for` and stores it with `set_clip_path` — both in one transaction.
    pub fn insert_open_clip(
        &self,
        clip: &NewClip<'_>,
        path_for: impl FnOnce(i64) -> String,
    ) -> Result<(i64, String), DbError> {
        let camera_id = self.camera_id(clip.camera)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO clips (camera_id, start_us, end_us, codec, width, height, has_audio, path, state, event)
             VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, '', 'open', ?7)",
            params![camera_id, clip.start_us, clip.codec, clip.width, clip.height, clip.has_audio, clip.event],
        )?;
        let id = tx.last_insert_rowid();
        let path = path_for(id);
        tx.execute("UPDATE clips SET path = ?1 WHERE id = ?2", params![path, id])?;
        tx.commit()?;
        Ok((id, path))
    }

    /// Records what a clip turned out to contain and marks it closed.
    pub fn close_clip(&self, id: i64, stats: &ClipStats) -> Result<(), DbError> {
        let changed = self.conn().execute(
            "UPDATE clips SET end_us = ?2, duration_90k = ?3, bytes = ?4, frames = ?5, keyframes = ?6,
                 state = 'closed'
             WHERE id = ?1",
            params![id, stats.end_us, stats.duration_90k, stats.bytes, stats.frames, stats.keyframes],
        )?;
        if changed == 0 {
            return Err(DbError::NoSuchClip(id));
        }
        Ok(())
    }

    /// Updates an open clip's progress so the timeline shows it growing and so an interrupted
    /// clip's span is known even before recovery can decrypt it.
    pub fn update_open_clip(&self, id: i64, stats: &ClipStats) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE clips SET end_us = ?2, duration_90k = ?3, bytes = ?4, frames = ?5, keyframes = ?6
             WHERE id = ?1 AND state = 'open'",
            params![id, stats.end_us, stats.duration_90k, stats.bytes, stats.frames, stats.keyframes],
        )?;
        Ok(())
    }

    /// Marks one clip as holding an event.
    pub fn mark_event_clip(&self, id: i64) -> Result<(), DbError> {
        self.conn().execute("UPDATE clips SET event = 1 WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Marks camera `name`'s clips overlapping `[start_us, end_us)` as holding an event;
    /// returns how many changed.
    pub fn mark_event_clips(&self, name: &str, start_us: i64, end_us: i64) -> Result<usize, DbError> {
        Ok(self.conn().execute(
            "UPDATE clips SET event = 1
             WHERE camera_id = (SELECT id FROM cameras WHERE name = ?1) AND event = 0
               AND start_us < ?3 AND end_us > ?2 AND state != 'deleting'",
            params![name, start_us, end_us],
        )?)
    }

    pub fn set_clip_state(&self, id: i64, state: ClipState) -> Result<(), DbError> {
        self.conn().execute("UPDATE clips SET state = ?2 WHERE id = ?1", params![id, state.as_str()])?;
        Ok(())
    }

    pub fn delete_clip_row(&self, id: i64) -> Result<(), DbError> {
        self.conn().execute("DELETE FROM clips WHERE id = ?1", [id])?;
        Ok(())
    }

    pub fn clip(&self, id: i64) -> Result<Option<Clip>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("{CLIP_SELECT} WHERE c.id = ?1"))?;
        Ok(stmt.query_row([id], clip_from_row).optional()?)
    }

    /// Clips in `state`, of one camera or all, overlapping `[start_us, end_us)`, by start time.
    pub fn clips(&self, filter: &ClipFilter<'_>) -> Result<Vec<Clip>, DbError> {
        let conn = self.conn();
        let sql = if filter.camera.is_some() {
            // One camera's clips never overlap, so those meeting the range are the ones starting
            // in it plus the last one starting before it: both are range scans of
            // clips_camera_start, and the cost follows the rows returned, not the archive's
            // age (a year of one-minute clips: under a millisecond for a day).
            format!(
                "{CLIP_SELECT}
                 WHERE c.camera_id = (SELECT id FROM cameras WHERE name = ?1) AND (?2 IS NULL OR c.state = ?2)
                   AND c.start_us < ?4 AND c.end_us >= ?3
                   AND c.start_us >= coalesce(
                       (SELECT p.start_us FROM clips p
                        WHERE p.camera_id = (SELECT id FROM cameras WHERE name = ?1) AND p.start_us < ?3
                        ORDER BY p.start_us DESC LIMIT 1),
                       ?3)
                 ORDER BY c.start_us, c.id"
            )
        } else {
            format!(
                "{CLIP_SELECT}
                 WHERE (?2 IS NULL OR c.state = ?2) AND c.end_us >= ?3 AND c.start_us < ?4
                 ORDER BY c.start_us, c.id"
            )
        };
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![filter.camera, filter.state.map(ClipState::as_str), filter.start_us, filter.end_us],
            clip_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Where camera `name`'s latest closed clip ends, if it has one.
    pub fn last_clip_end(&self, name: &str) -> Result<Option<i64>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT c.end_us FROM clips c JOIN cameras k ON k.id = c.camera_id
             WHERE k.name = ?1 AND c.state = 'closed' ORDER BY c.start_us DESC LIMIT 1",
        )?;
        Ok(stmt.query_row([name], |row| row.get(0)).optional()?)
    }

    /// Every clip row whatever its state, for start-up reconciliation.
    pub fn all_clips(&self) -> Result<Vec<Clip>, DbError> {
        self.clips(&ClipFilter { state: None, ..ClipFilter::default() })
    }

    pub fn insert_gap(&self, camera: &str, start_us: i64, end_us: i64, reason: &str) -> Result<(), DbError> {
        let camera_id = self.camera_id(camera)?;
        self.conn().execute(
            "INSERT INTO gaps (camera_id, start_us, end_us, reason) VALUES (?1, ?2, ?3, ?4)",
            params![camera_id, start_us, end_us, reason],
        )?;
        Ok(())
    }

    pub fn gaps(&self, camera: Option<&str>, start_us: i64, end_us: i64) -> Result<Vec<Gap>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT g.id, k.name, g.start_us, g.end_us, g.reason FROM gaps g JOIN cameras k ON k.id = g.camera_id
             WHERE (?1 IS NULL OR k.name = ?1) AND g.end_us >= ?2 AND g.start_us < ?3
             ORDER BY g.start_us",
        )?;
        let rows = stmt.query_map(params![camera, start_us, end_us], |row| {
            Ok(Gap {
                id: row.get(0)?,
                camera: row.get(1)?,
                start_us: row.get(2)?,
                end_us: row.get(3)?,
                reason: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Gaps are kept only as long as the footage around them.
    pub fn delete_gaps_before(&self, before_us: i64) -> Result<usize, DbError> {
        Ok(self.conn().execute("DELETE FROM gaps WHERE end_us < ?1", [before_us])?)
    }

    /// Closed clips, oldest first, with just what retention needs to choose.
    pub fn retention_candidates(&self) -> Result<Vec<RetentionRow>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT c.id, k.name, c.start_us, c.end_us, c.bytes, c.path, c.event
             FROM clips c JOIN cameras k ON k.id = c.camera_id
             WHERE c.state = 'closed' ORDER BY c.start_us, c.id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(RetentionRow {
                id: row.get(0)?,
                camera: row.get(1)?,
                start_us: row.get(2)?,
                end_us: row.get(3)?,
                bytes: row.get(4)?,
                path: row.get(5)?,
                event: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Disk use per camera (all states: an open clip's bytes are on disk too).
    pub fn usage_by_camera(&self) -> Result<Vec<(String, Usage)>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT k.name, COALESCE(SUM(c.bytes), 0), COUNT(c.id), MIN(c.start_us)
             FROM cameras k LEFT JOIN clips c ON c.camera_id = k.id GROUP BY k.id ORDER BY k.name",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get(0)?, Usage { bytes: row.get(1)?, clips: row.get(2)?, oldest_start_us: row.get(3)? }))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Which clips to list.
#[derive(Clone, Debug)]
pub struct ClipFilter<'a> {
    pub camera: Option<&'a str>,
    pub state: Option<ClipState>,
    pub start_us: i64,
    pub end_us: i64,
}

impl Default for ClipFilter<'_> {
    fn default() -> Self {
        ClipFilter { camera: None, state: Some(ClipState::Closed), start_us: i64::MIN, end_us: i64::MAX }
    }
}

/// A closed clip as retention sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionRow {
    pub id: i64,
    pub camera: String,
    pub start_us: i64,
    pub end_us: i64,
    pub bytes: i64,
    /// Relative to the data dir.
    pub path: String,
    pub event: bool,
}

const CLIP_SELECT: &str = "SELECT c.id, k.name, c.start_us, c.end_us, c.duration_90k, c.bytes, c.frames, c.keyframes,
        c.codec, c.width, c.height, c.has_audio, c.path, c.state, c.event
     FROM clips c JOIN cameras k ON k.id = c.camera_id";

fn clip_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Clip> {
    Ok(Clip {
        id: row.get(0)?,
        camera: row.get(1)?,
        start_us: row.get(2)?,
        end_us: row.get(3)?,
        duration_90k: row.get(4)?,
        bytes: row.get(5)?,
        frames: row.get(6)?,
        keyframes: row.get(7)?,
        codec: row.get(8)?,
        width: row.get(9)?,
        height: row.get(10)?,
        has_audio: row.get(11)?,
        path: row.get(12)?,
        state: ClipState::parse(&row.get::<_, String>(13)?)?,
        event: row.get(14)?,
    })
}

/// A connection to the index at `path` (created if needed), configured and migrated. The
/// recorder's [`Index`], the accounts store and the audit log each hold one.
pub fn open_connection(path: &Path) -> Result<Connection, DbError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL: readers (the web UI, `hearth clips ls`) never block the recorder. NORMAL sync is
    // crash-safe in WAL mode; a power cut can lose the last transactions, which recovery
    // reconciles against the files.
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "normal")?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(DbError::TooNew { path: path.to_owned(), found: version, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "migrated index schema");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_clip(camera: &str, start_us: i64) -> NewClip<'_> {
        NewClip { camera, start_us, codec: "avc1.64001f", width: 640, height: 360, has_audio: false, event: false }
    }

    /// The per-camera query must return exactly what the plain overlap test does.
    #[test]
    fn a_cameras_clips_in_a_range_match_the_overlap_definition() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.sqlite3")).unwrap();
        // Back-to-back 10 s clips from 0 to 100 s, with a gap from 100 to 120 s, then to 150 s.
        let spans: Vec<(i64, i64)> = (0..10).map(|i| (i * 10, i * 10 + 10)).chain([(120, 130), (130, 150)]).collect();
        for (start, end) in &spans {
            for camera in ["door", "yard"] {
                let (id, _) =
                    index.insert_open_clip(&new_clip(camera, start * 1_000_000), |id| format!("clips/{id}")).unwrap();
                let stats = ClipStats { end_us: end * 1_000_000, ..ClipStats::default() };
                index.close_clip(id, &stats).unwrap();
            }
        }
        for (from, to) in
            [(0, 1), (5, 15), (10, 10), (99, 125), (100, 119), (101, 102), (149, 500), (150, 151), (-50, 0)]
        {
            let filter = ClipFilter {
                camera: Some("door"),
                start_us: from * 1_000_000,
                end_us: to * 1_000_000 + 1,
                ..ClipFilter::default()
            };
            let got: Vec<i64> = index.clips(&filter).unwrap().iter().map(|c| c.start_us / 1_000_000).collect();
            let want: Vec<i64> = spans
                .iter()
                .filter(|(start, end)| *end * 1_000_000 >= filter.start_us && *start * 1_000_000 < filter.end_us)
                .map(|(start, _)| *start)
                .collect();
            assert_eq!(got, want, "range {from}..={to}");
        }
    }

    #[test]
    fn clip_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.sqlite3")).unwrap();
        let (id, path) =
            index.insert_open_clip(&new_clip("door", 1_000_000), |id| format!("clips/door/{id}.mp4.age")).unwrap();
        assert_eq!(path, format!("clips/door/{id}.mp4.age"));
        assert!(index.clips(&ClipFilter::default()).unwrap().is_empty(), "open clips are not listed as closed");
        let stats =
            ClipStats { end_us: 61_000_000, duration_90k: 60 * 90_000, bytes: 1234, frames: 1500, keyframes: 30 };
        index.close_clip(id, &stats).unwrap();
        let clips = index.clips(&ClipFilter { camera: Some("door"), ..ClipFilter::default() }).unwrap();
        assert_eq!(clips.len(), 1);
        assert_eq!(clips[0].state, ClipState::Closed);
        assert_eq!(clips[0].frames, 1500);
        assert!(index.clips(&ClipFilter { camera: Some("other"), ..ClipFilter::default() }).unwrap().is_empty());
        // Range overlap: a range inside the clip finds it; one after does not.
        let inside = ClipFilter { start_us: 30_000_000, end_us: 31_000_000, ..ClipFilter::default() };
        assert_eq!(index.clips(&inside).unwrap().len(), 1);
        let after = ClipFilter { start_us: 62_000_000, end_us: 70_000_000, ..ClipFilter::default() };
        assert!(index.clips(&after).unwrap().is_empty());
        assert!(matches!(index.close_clip(999, &stats), Err(DbError::NoSuchClip(999))));
        assert_eq!(index.last_clip_end("door").unwrap(), Some(61_000_000));
        assert_eq!(index.last_clip_end("other").unwrap(), None);
    }

    #[test]
    fn reopening_keeps_data_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite3");
        {
            let index = Index::open(&path).unwrap();
            index.insert_gap("door", 5, 10, "camera offline").unwrap();
        }
        let index = Index::open(&path).unwrap();
        assert_eq!(index.gaps(Some("door"), 0, 100).unwrap().len(), 1);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite3");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(Index::open(&path), Err(DbError::TooNew { found: 99, .. })));
    }
}
