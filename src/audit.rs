//! The audit log: who watched, downloaded, changed or was refused what, and when.
//!
//! It is the owner's answer to "who saw my nursery camera?": every login (and failed one),
//! live view, clip view, export, snapshot, account change, unlock and refused request is one
//! row in the append-only `audit` table. Rows are tamper-evident: each row's `hash` is
//! SHA-256 over the previous row's hash and the row's own fields, so editing, deleting or
//! reordering any row breaks the chain from there on, and [`AuditLog::verify`] (`hearth audit
//! verify`, the UI) names the first broken row. (Anyone able to rewrite the database could
//! recompute the whole chain; the chain catches edits, not a full forgery.)
//!
//! Retention deletes the oldest rows and keeps the hash of the last deleted one as the chain's
//! anchor, so pruning does not look like tampering. The hub keeps its own logs minimal too.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

impl From<rusqlite::Error> for AuditError {
    fn from(e: rusqlite::Error) -> Self {
        AuditError::Db(e.into())
    }
}

/// What happened. The names are the ones stored and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Login,
    LoginFailed,
    Logout,
    LiveStart,
    LiveStop,
    ClipView,
    Export,
    Snapshot,
    UserAdd,
    UserRm,
    UserChange,
    PasswordChange,
    TotpChange,
    SessionRevoke,
    GrantChange,
    Unlock,
    Lock,
    SettingsChange,
    Denied,
}

impl Action {
    pub const ALL: [Action; 19] = [
        Action::Login,
        Action::LoginFailed,
        Action::Logout,
        Action::LiveStart,
        Action::LiveStop,
        Action::ClipView,
        Action::Export,
        Action::Snapshot,
        Action::UserAdd,
        Action::UserRm,
        Action::UserChange,
        Action::PasswordChange,
        Action::TotpChange,
        Action::SessionRevoke,
        Action::GrantChange,
        Action::Unlock,
        Action::Lock,
        Action::SettingsChange,
        Action::Denied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::LoginFailed => "login_failed",
            Action::Logout => "logout",
            Action::LiveStart => "live_start",
            Action::LiveStop => "live_stop",
            Action::ClipView => "clip_view",
            Action::Export => "export",
            Action::Snapshot => "snapshot",
            Action::UserAdd => "user_add",
            Action::UserRm => "user_rm",
            Action::UserChange => "user_change",
            Action::PasswordChange => "password_change",
            Action::TotpChange => "totp_change",
            Action::SessionRevoke => "session_revoke",
            Action::GrantChange => "grant_change",
            Action::Unlock => "unlock",
            Action::Lock => "lock",
            Action::SettingsChange => "settings_change",
            Action::Denied => "denied",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// One event to record.
#[derive(Clone, Debug, Default)]
pub struct Event {
    pub user: Option<String>,
    pub address: Option<String>,
    pub camera: Option<String>,
    pub target: Option<String>,
    /// `ok`, or why not (`wrong_password`, `no_grant`, `revoked`, …).
    pub result: String,
}

impl Event {
    pub fn ok() -> Event {
        Event { result: "ok".into(), ..Event::default() }
    }

    pub fn failed(result: impl Into<String>) -> Event {
        Event { result: result.into(), ..Event::default() }
    }

    pub fn user(mut self, user: impl Into<String>) -> Event {
        self.user = Some(user.into());
        self
    }

    pub fn address(mut self, address: impl ToString) -> Event {
        self.address = Some(address.to_string());
        self
    }

    pub fn camera(mut self, camera: impl Into<String>) -> Event {
        self.camera = Some(camera.into());
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Event {
        self.target = Some(target.into());
        self
    }
}

/// One stored row.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub id: i64,
    pub time_us: i64,
    pub user: Option<String>,
    pub address: Option<String>,
    pub action: String,
    pub camera: Option<String>,
    pub target: Option<String>,
    pub result: String,
}

/// Which rows to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub user: Option<String>,
    pub camera: Option<String>,
    pub action: Option<String>,
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
    /// Rows older than this id (paging backwards from the newest).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// What [`AuditLog::verify`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub rows: u64,
    /// The first row whose hash does not follow from its predecessor and its own fields.
    pub first_broken_id: Option<i64>,
}

const ANCHOR_KEY: &str = "audit_anchor";

pub struct AuditLog {
    conn: Mutex<Connection>,
}

fn chain_hash(previous: &[u8], time_us: i64, action: &str, event: &Event) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(time_us.to_be_bytes());
    for field in [
        event.user.as_deref(),
        event.address.as_deref(),
        Some(action),
        event.camera.as_deref(),
        event.target.as_deref(),
        Some(event.result.as_str()),
    ] {
        // Length-prefixed, with absence distinct from empty, so fields cannot shift into each other.
        match field {
            None => hasher.update([0u8]),
            Some(text) => {
                hasher.update([1u8]);
                hasher.update((text.len() as u64).to_be_bytes());
                hasher.update(text.as_bytes());
            }
        }
    }
    hasher.finalize().to_vec()
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        Ok(AuditLog { conn: Mutex::new(crate::db::open_connection(path)?) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn anchor(conn: &Connection) -> Result<Vec<u8>, AuditError> {
        let hex: Option<String> =
            conn.query_row("SELECT value FROM settings WHERE key = ?1", [ANCHOR_KEY], |r| r.get(0)).optional()?;
        Ok(hex.and_then(|h| decode_hex(&h)).unwrap_or_else(|| vec![0; 32]))
    }

    /// Appends one row. An immediate transaction makes read-last-hash-then-insert atomic even
    /// with `hearth user …` writing from another process.
    pub fn record(&self, action: Action, event: Event, time_us: i64) -> Result<(), AuditError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let previous: Option<Vec<u8>> =
            tx.query_row("SELECT hash FROM audit ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).optional()?;
        let previous = match previous {
            Some(hash) => hash,
            None => Self::anchor(&tx)?,
        };
        let hash = chain_hash(&previous, time_us, action.as_str(), &event);
        tx.execute(
            "INSERT INTO audit (time_us, user, address, action, camera, target, result, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                time_us,
                event.user,
                event.address,
                action.as_str(),
                event.camera,
                event.target,
                event.result,
                hash
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records, logging rather than failing: a full disk must not turn a view into an error
    /// page, but it must not pass silently either.
    pub fn log(&self, action: Action, event: Event) {
        if let Err(e) = self.record(action, event, crate::time::now_us()) {
            tracing::error!(error = %e, action = action.as_str(), "cannot write the audit log");
        }
    }

    /// Rows matching `filter`, newest first.
    pub fn list(&self, filter: &Filter) -> Result<Vec<Entry>, AuditError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT id, time_us, user, address, action, camera, target, result FROM audit
             WHERE (?1 IS NULL OR user = ?1 COLLATE NOCASE) AND (?2 IS NULL OR camera = ?2)
               AND (?3 IS NULL OR action = ?3) AND (?4 IS NULL OR time_us >= ?4)
               AND (?5 IS NULL OR time_us < ?5) AND (?6 IS NULL OR id < ?6)
             ORDER BY id DESC LIMIT ?7",
        )?;
        let rows = statement
            .query_map(
                params![
                    filter.user,
                    filter.camera,
                    filter.action,
                    filter.start_us,
                    filter.end_us,
                    filter.before_id,
                    filter.limit as i64
                ],
                |r| {
                    Ok(Entry {
                        id: r.get(0)?,
                        time_us: r.get(1)?,
                        user: r.get(2)?,
                        address: r.get(3)?,
                        action: r.get(4)?,
                        camera: r.get(5)?,
                        target: r.get(6)?,
                        result: r.get(7)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Walks the chain from the anchor and reports the first row that does not follow.
    pub fn verify(&self) -> Result<Verification, AuditError> {
        let conn = self.conn();
        let mut previous = Self::anchor(&conn)?;
        let mut statement = conn.prepare(
            "SELECT id, time_us, user, address, action, camera, target, result, hash FROM audit ORDER BY id",
        )?;
        let mut rows = statement.query([])?;
        let mut count = 0;
        while let Some(r) = rows.next()? {
            count += 1;
            let id: i64 = r.get(0)?;
            let action: String = r.get(4)?;
            let event =
                Event { user: r.get(2)?, address: r.get(3)?, camera: r.get(5)?, target: r.get(6)?, result: r.get(7)? };
            let stored: Vec<u8> = r.get(8)?;
            let expected = chain_hash(&previous, r.get(1)?, &action, &event);
            if stored != expected {
                return Ok(Verification { rows: count, first_broken_id: Some(id) });
            }
            previous = stored;
        }
        Ok(Verification { rows: count, first_broken_id: None })
    }

    /// Deletes rows older than `cutoff_us` (all rows up to the newest such row, so the chain
    /// stays contiguous) and keeps the last deleted hash as the new anchor.
    pub fn prune(&self, cutoff_us: i64) -> Result<usize, AuditError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT id, hash FROM audit WHERE id = (SELECT max(id) FROM audit WHERE time_us < ?1)",
                [cutoff_us],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((last_id, last_hash)) = last else { return Ok(0) };
        tx.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![ANCHOR_KEY, encode_hex(&last_hash)],
        )?;
        let deleted = tx.execute("DELETE FROM audit WHERE id <= ?1", [last_id])?;
        tx.commit()?;
        Ok(deleted)
    }
}

/// Repeats of one viewing — a grid tile refreshing its snapshot, a player fetching byte
/// ranges of the clip it is playing — are recorded once per `window`, so the log says who
/// watched what without burying it in thousands of identical rows.
pub struct Debounce {
    window: std::time::Duration,
    seen: Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl Debounce {
    pub fn new(window: std::time::Duration) -> Debounce {
        Debounce { window, seen: Mutex::new(std::collections::HashMap::new()) }
    }

    /// Whether `key` (session, action and target) should be recorded now.
    pub fn first_in_window(&self, key: String, now: std::time::Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 4096 {
            seen.retain(|_, at| now.duration_since(*at) < self.window);
        }
        match seen.get(&key) {
            Some(at) if now.duration_since(*at) < self.window => false,
            _ => {
                seen.insert(key, now);
                true
            }
        }
    }
}

/// Rows as CSV (RFC 4180), for the owner's spreadsheet.
pub fn to_csv(entries: &[Entry]) -> String {
    fn field(text: &str) -> String {
        // A leading = + - @ would make a spreadsheet evaluate the cell; a quote defuses it.
        let defused = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_owned() };
        if defused.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", defused.replace('"', "\"\""))
        } else {
            defused
        }
    }
    let mut out = String::from("id,time,user,address,action,camera,target,result\r\n");
    for e in entries {
        let cells = [
            e.id.to_string(),
            crate::time::format_us(e.time_us),
            e.user.clone().unwrap_or_default(),
            e.address.clone().unwrap_or_default(),
            e.action.clone(),
            e.camera.clone().unwrap_or_default(),
            e.target.clone().unwrap_or_default(),
            e.result.clone(),
        ];
        out.push_str(&cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("index.sqlite3")).unwrap();
        (dir, log)
    }

    fn fill(log: &AuditLog, n: i64) {
        for i in 0..n {
            let event = Event::ok().user("ann").address("192.168.1.5").camera("doorbell").target(format!("clip:{i}"));
            log.record(Action::ClipView, event, 1_000 + i).unwrap();
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (_dir, log) = log();
        fill(&log, 5);
        assert_eq!(log.verify().unwrap(), Verification { rows: 5, first_broken_id: None });
    }

    #[test]
    fn edits_and_deletions_break_the_chain_where_they_happen() {
        let (dir, log) = log();
        fill(&log, 6);
        let raw = Connection::open(dir.path().join("index.sqlite3")).unwrap();
        let update = raw.execute("UPDATE audit SET user = 'mallory' WHERE id = 3", []);
        assert!(update.is_err(), "the trigger refuses updates");
        // A determined editor drops the trigger first; the chain still tells.
        raw.execute_batch("DROP TRIGGER audit_append_only; UPDATE audit SET user = 'mallory' WHERE id = 3;").unwrap();
        assert_eq!(log.verify().unwrap().first_broken_id, Some(3));
        raw.execute("UPDATE audit SET user = 'ann' WHERE id = 3", []).unwrap();
        assert_eq!(log.verify().unwrap().first_broken_id, None, "restoring the row restores the chain");
        raw.execute("DELETE FROM audit WHERE id = 4", []).unwrap();
        assert_eq!(log.verify().unwrap().first_broken_id, Some(5), "a gap breaks the next row");
    }

    #[test]
    fn pruning_keeps_the_rest_verifiable() {
        let (_dir, log) = log();
        fill(&log, 10);
        assert_eq!(log.prune(1_004).unwrap(), 4);
        assert_eq!(log.verify().unwrap(), Verification { rows: 6, first_broken_id: None });
        fill(&log, 2);
        assert_eq!(log.verify().unwrap().first_broken_id, None);
        assert_eq!(log.prune(0).unwrap(), 0);
    }

    #[test]
    fn filters_select_rows_newest_first() {
        let (_dir, log) = log();
        fill(&log, 3);
        log.record(Action::Login, Event::ok().user("bob"), 2_000).unwrap();
        log.record(Action::LiveStart, Event::ok().user("bob").camera("nursery"), 2_001).unwrap();
        let all = log.list(&Filter { limit: 100, ..Filter::default() }).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].action, "live_start");
        let bob = log.list(&Filter { user: Some("BOB".into()), limit: 100, ..Filter::default() }).unwrap();
        assert_eq!(bob.len(), 2);
        let nursery = log.list(&Filter { camera: Some("nursery".into()), limit: 100, ..Filter::default() }).unwrap();
        assert_eq!(nursery.len(), 1);
        let views = log
            .list(&Filter { action: Some("clip_view".into()), start_us: Some(1_001), limit: 100, ..Filter::default() })
            .unwrap();
        assert_eq!(views.len(), 2);
        let page = log.list(&Filter { before_id: Some(3), limit: 1, ..Filter::default() }).unwrap();
        assert_eq!(page[0].id, 2);
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let entry = Entry {
            id: 1,
            time_us: 0,
            user: Some("=cmd".into()),
            address: None,
            action: "login".into(),
            camera: None,
            target: Some("a,\"b\"".into()),
            result: "ok".into(),
        };
        let csv = to_csv(&[entry]);
        assert_eq!(csv.lines().nth(1).unwrap(), "1,1970-01-01T00:00:00.000Z,'=cmd,,login,,\"a,\"\"b\"\"\",ok");
    }

    #[test]
    fn debounce_records_once_per_window() {
        let debounce = Debounce::new(std::time::Duration::from_secs(600));
        let t0 = std::time::Instant::now();
        assert!(debounce.first_in_window("1 snapshot doorbell".into(), t0));
        assert!(!debounce.first_in_window("1 snapshot doorbell".into(), t0 + std::time::Duration::from_secs(5)));
        assert!(debounce.first_in_window("2 snapshot doorbell".into(), t0), "another session");
        assert!(debounce.first_in_window("1 snapshot doorbell".into(), t0 + std::time::Duration::from_secs(601)));
    }

    #[test]
    fn actions_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
    }
}
