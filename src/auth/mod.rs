//! Accounts, roles, per-camera grants, server-side sessions and second factors.
//!
//! [`Accounts`] owns the `users`, `grants`, `recovery_codes`, `sessions` and `settings`
//! tables (schema in `db.rs`'s migrations) through its own SQLite connection, so checking a
//! session never waits behind the recorder's writes. The web layer asks it one question per
//! request — [`Accounts::session`]: whose is this token, and is it still good? — and because
//! the answer always comes from the database, a password change, a removed or disabled user or
//! a revoked session takes effect on the very next request, whether the change came from the
//! web UI or from `hearth user …` in a shell. Live streams ask again every quarter second.
//!
//! Passwords are argon2id ([`password`]); second factors are TOTP or one-time recovery codes
//! ([`totp`]); failed logins are slowed down by [`throttle`].

pub mod password;
pub mod throttle;
pub mod totp;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use password::PasswordError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("no user named `{0}`")]
    NoSuchUser(String),
    #[error("a user named `{0}` already exists")]
    UserExists(String),
    #[error("user names are 1-64 characters of letters, digits and . _ - @")]
    BadName,
    #[error("that would leave no enabled admin: make another admin first")]
    LastAdmin,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("the code is wrong or expired")]
    WrongCode,
    #[error("no two-factor enrolment is in progress; start one first")]
    NoEnrolment,
    #[error("no such session")]
    NoSuchSession,
}

impl From<rusqlite::Error> for AuthError {
    fn from(e: rusqlite::Error) -> Self {
        AuthError::Db(e.into())
    }
}

/// What a user may do: `admin` everything; `viewer` only what their grants say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    fn parse(text: &str) -> Role {
        if text == "admin" {
            Role::Admin
        } else {
            Role::Viewer
        }
    }
}

/// One right on one camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Live,
    Playback,
    Download,
}

/// A viewer's rights on one camera.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub camera: String,
    #[serde(default)]
    pub live: bool,
    #[serde(default)]
    pub playback: bool,
    #[serde(default)]
    pub download: bool,
}

impl Grant {
    pub fn allows(&self, permission: Permission) -> bool {
        match permission {
            Permission::Live => self.live,
            Permission::Playback => self.playback,
            Permission::Download => self.download,
        }
    }
}

/// An account as admins see it (never the hash or the TOTP secret).
#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub totp_enabled: bool,
    pub created_us: i64,
    pub password_changed_us: i64,
    pub grants: Vec<Grant>,
}

/// Who is behind a valid session: enough to decide every permission.
#[derive(Clone, Debug)]
pub struct Caller {
    pub session_id: i64,
    pub user_id: i64,
    pub name: String,
    pub role: Role,
    pub grants: Vec<Grant>,
    /// 2FA is required (now, whatever it was at login) and this user has none yet: the
    /// session may only enrol a second factor.
    pub enroll_only: bool,
    pub totp_enabled: bool,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this caller may use `permission` on `camera`.
    pub fn may(&self, camera: &str, permission: Permission) -> bool {
        self.is_admin() || self.grants.iter().any(|g| g.camera == camera && g.allows(permission))
    }

    /// Whether this caller may know `camera` exists at all (any grant on it).
    pub fn sees(&self, camera: &str) -> bool {
        self.is_admin() || self.grants.iter().any(|g| g.camera == camera && (g.live || g.playback || g.download))
    }
}

/// One row of the sessions page.
#[derive(Clone, Debug, Serialize)]
pub struct SessionInfo {
    pub id: i64,
    pub user: String,
    pub created_us: i64,
    pub last_seen_us: i64,
    pub address: String,
    pub user_agent: String,
}

/// The result of checking a user name and password.
pub enum Login {
    /// Right password, enabled account.
    Ok { user_id: i64, totp_enabled: bool },
    /// Anything else; deliberately without saying which part was wrong.
    Refused,
}

/// Users, grants, sessions and settings in the index database.
pub struct Accounts {
    conn: Mutex<Connection>,
    idle: Duration,
    lifetime: Duration,
}

/// A session token: 256 random bits, base64url, given to the browser once.
pub struct Token(pub String);

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

const REQUIRE_2FA: &str = "require_2fa";
/// A session's last-seen time is written at most this often (not on every request).
const LAST_SEEN_GRANULARITY_US: i64 = 30_000_000;

impl Accounts {
    pub fn open(path: &Path, idle: Duration, lifetime: Duration) -> Result<Accounts, AuthError> {
        let conn = crate::db::open_connection(path)?;
        Ok(Accounts { conn: Mutex::new(conn), idle, lifetime })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    // --- users

    pub fn user_count(&self) -> Result<i64, AuthError> {
        Ok(self.conn().query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
    }

    /// Creates an account. The password is hashed here (about 100 ms on a Pi: call from a
    /// blocking thread).
    pub fn add_user(&self, name: &str, password: &str, role: Role, now_us: i64) -> Result<i64, AuthError> {
        if !valid_user_name(name) {
            return Err(AuthError::BadName);
        }
        let hash = password::hash(password)?;
        let conn = self.conn();
        let result = conn.execute(
            "INSERT INTO users (name, password_hash, role, created_us, password_changed_us) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![name, hash, role.as_str(), now_us],
        );
        match result {
            Ok(_) => Ok(conn.last_insert_rowid()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(AuthError::UserExists(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn user_id(conn: &Connection, name: &str) -> Result<i64, AuthError> {
        conn.query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))
            .optional()?
            .ok_or_else(|| AuthError::NoSuchUser(name.to_owned()))
    }

    /// Refuses a change that would leave no enabled admin (nobody could manage the hub).
    fn ensure_another_admin(conn: &Connection, user_id: i64) -> Result<(), AuthError> {
        let others: i64 = conn.query_row(
            "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?1",
            [user_id],
            |r| r.get(0),
        )?;
        if others == 0 {
            return Err(AuthError::LastAdmin);
        }
        Ok(())
    }

    pub fn users(&self) -> Result<Vec<User>, AuthError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT id, name, role, disabled, totp_secret IS NOT NULL, created_us, password_changed_us
             FROM users ORDER BY name",
        )?;
        let mut users = statement
            .query_map([], |r| {
                Ok(User {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    role: Role::parse(&r.get::<_, String>(2)?),
                    disabled: r.get(3)?,
                    totp_enabled: r.get(4)?,
                    created_us: r.get(5)?,
                    password_changed_us: r.get(6)?,
                    grants: Vec::new(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for user in &mut users {
            user.grants = Self::grants_of(&conn, user.id)?;
        }
        Ok(users)
    }

    pub fn user(&self, name: &str) -> Result<User, AuthError> {
        self.users()?
            .into_iter()
            .find(|u| u.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| AuthError::NoSuchUser(name.to_owned()))
    }

    fn grants_of(conn: &Connection, user_id: i64) -> Result<Vec<Grant>, AuthError> {
        let mut statement = conn
            .prepare_cached("SELECT camera, live, playback, download FROM grants WHERE user_id = ?1 ORDER BY camera")?;
        let grants = statement
            .query_map([user_id], |r| {
                Ok(Grant { camera: r.get(0)?, live: r.get(1)?, playback: r.get(2)?, download: r.get(3)? })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(grants)
    }

    /// Sets a new password and ends every session of the user but `keep` (the one that made
    /// the change, if it was the user themself).
    pub fn set_password(&self, name: &str, new: &str, keep: Option<i64>, now_us: i64) -> Result<(), AuthError> {
        let hash = password::hash(new)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let user_id = Self::user_id(&tx, name)?;
        tx.execute(
            "UPDATE users SET password_hash = ?2, password_changed_us = ?3 WHERE id = ?1",
            params![user_id, hash, now_us],
        )?;
        tx.execute("DELETE FROM sessions WHERE user_id = ?1 AND id IS NOT ?2", params![user_id, keep])?;
        tx.commit()?;
        Ok(())
    }

    /// Checks the current password, then sets the new one (the user's own change).
    pub fn change_own_password(&self, caller: &Caller, current: &str, new: &str, now_us: i64) -> Result<(), AuthError> {
        password::check_policy(new)?;
        let stored: String =
            self.conn().query_row("SELECT password_hash FROM users WHERE id = ?1", [caller.user_id], |r| r.get(0))?;
        if !password::verify(current, &stored)? {
            return Err(AuthError::WrongPassword);
        }
        self.set_password(&caller.name, new, Some(caller.session_id), now_us)
    }

    /// Removes a user; their sessions and grants go with them (foreign keys cascade).
    pub fn remove_user(&self, name: &str) -> Result<(), AuthError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let user_id = Self::user_id(&tx, name)?;
        let role: String = tx.query_row("SELECT role FROM users WHERE id = ?1", [user_id], |r| r.get(0))?;
        if role == "admin" {
            Self::ensure_another_admin(&tx, user_id)?;
        }
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
        tx.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
        tx.commit()?;
        Ok(())
    }

    /// Disables (ending every session at once) or re-enables an account.
    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), AuthError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let user_id = Self::user_id(&tx, name)?;
        if disabled {
            Self::ensure_another_admin(&tx, user_id).or_else(|e| {
                let role: String = tx.query_row("SELECT role FROM users WHERE id = ?1", [user_id], |r| r.get(0))?;
                if role == "admin" {
                    Err(e)
                } else {
                    Ok(())
                }
            })?;
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
        }
        tx.execute("UPDATE users SET disabled = ?2 WHERE id = ?1", params![user_id, disabled])?;
        tx.commit()?;
        Ok(())
    }

    pub fn set_role(&self, name: &str, role: Role) -> Result<(), AuthError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let user_id = Self::user_id(&tx, name)?;
        if role == Role::Viewer {
            let current: String = tx.query_row("SELECT role FROM users WHERE id = ?1", [user_id], |r| r.get(0))?;
            if current == "admin" {
                Self::ensure_another_admin(&tx, user_id)?;
            }
        }
        tx.execute("UPDATE users SET role = ?2 WHERE id = ?1", params![user_id, role.as_str()])?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces all of a user's grants.
    pub fn set_grants(&self, name: &str, grants: &[Grant]) -> Result<(), AuthError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let user_id = Self::user_id(&tx, name)?;
        tx.execute("DELETE FROM grants WHERE user_id = ?1", [user_id])?;
        for grant in grants.iter().filter(|g| g.live || g.playback || g.download) {
            tx.execute(
                "INSERT OR REPLACE INTO grants (user_id, camera, live, playback, download) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![user_id, grant.camera, grant.live, grant.playback, grant.download],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    // --- logging in

    /// Checks a user name and password in the same time whether or not the user exists.
    pub fn check_password(&self, name: &str, password: &str) -> Result<Login, AuthError> {
        let row: Option<(i64, String, bool, bool)> = self
            .conn()
            .query_row(
                "SELECT id, password_hash, disabled, totp_secret IS NOT NULL FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((user_id, stored, disabled, totp_enabled)) = row else {
            password::verify_dummy(password);
            return Ok(Login::Refused);
        };
        if password::verify(password, &stored)? && !disabled {
            Ok(Login::Ok { user_id, totp_enabled })
        } else {
            Ok(Login::Refused)
        }
    }

    /// Checks a second factor: a TOTP code (each time step usable once) or an unused
    /// recovery code (consumed).
    pub fn check_second_factor(&self, user_id: i64, code: &str, now_us: i64) -> Result<bool, AuthError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if totp::is_recovery_code(code) {
            let used = tx.execute(
                "DELETE FROM recovery_codes WHERE user_id = ?1 AND code_hash = ?2",
                params![user_id, totp::recovery_code_hash(code)],
            )?;
            tx.commit()?;
            return Ok(used == 1);
        }
        let (secret, last_step): (Option<Vec<u8>>, Option<i64>) =
            tx.query_row("SELECT totp_secret, totp_last_step FROM users WHERE id = ?1", [user_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let Some(secret) = secret else { return Ok(false) };
        let Some(step) = totp::verify(&secret, code, now_us / 1_000_000, last_step) else { return Ok(false) };
        tx.execute("UPDATE users SET totp_last_step = ?2 WHERE id = ?1", params![user_id, step])?;
        tx.commit()?;
        Ok(true)
    }

    /// Starts (or restarts) TOTP enrolment: a new secret, pending until confirmed with a code.
    pub fn start_totp(&self, user_id: i64) -> Result<Vec<u8>, AuthError> {
        let secret = totp::new_secret();
        self.conn().execute("UPDATE users SET totp_pending = ?2 WHERE id = ?1", params![user_id, secret])?;
        Ok(secret)
    }

    /// Confirms enrolment with a code from the app; returns fresh recovery codes (shown once).
    pub fn confirm_totp(&self, user_id: i64, code: &str, now_us: i64) -> Result<Vec<String>, AuthError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let pending: Option<Vec<u8>> =
            tx.query_row("SELECT totp_pending FROM users WHERE id = ?1", [user_id], |r| r.get(0))?;
        let pending = pending.ok_or(AuthError::NoEnrolment)?;
        let step = totp::verify(&pending, code, now_us / 1_000_000, None).ok_or(AuthError::WrongCode)?;
        tx.execute(
            "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?2 WHERE id = ?1",
            params![user_id, step],
        )?;
        tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
        let codes = totp::new_recovery_codes();
        for code in &codes {
            tx.execute(
                "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?1, ?2)",
                params![user_id, totp::recovery_code_hash(code)],
            )?;
        }
        tx.commit()?;
        Ok(codes)
    }

    /// Turns TOTP off for a user (their own choice with their password, or an admin's reset).
    pub fn remove_totp(&self, user_id: i64) -> Result<(), AuthError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL WHERE id = ?1",
            [user_id],
        )?;
        conn.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
        Ok(())
    }

    pub fn verify_own_password(&self, user_id: i64, password: &str) -> Result<bool, AuthError> {
        let stored: String =
            self.conn().query_row("SELECT password_hash FROM users WHERE id = ?1", [user_id], |r| r.get(0))?;
        Ok(password::verify(password, &stored)?)
    }

    // --- sessions

    /// Starts a session and returns its token; only the token's hash is stored.
    pub fn create_session(
        &self,
        user_id: i64,
        address: &str,
        user_agent: &str,
        now_us: i64,
    ) -> Result<(Token, i64), AuthError> {
        use base64::Engine;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let user_agent: String = user_agent.chars().take(200).collect();
        let conn = self.conn();
        conn.execute(
            "INSERT INTO sessions (token_hash, user_id, created_us, last_seen_us, address, user_agent)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
            params![token_hash(&token), user_id, now_us, address, user_agent],
        )?;
        Ok((Token(token), conn.last_insert_rowid()))
    }

    /// The caller behind `token`, if the session exists, its user is enabled, and it has
    /// neither idled out nor outlived its lifetime (expired sessions are deleted here).
    pub fn session(&self, token: &str, now_us: i64) -> Result<Option<Caller>, AuthError> {
        self.lookup("s.token_hash = ?1", rusqlite::types::Value::Blob(token_hash(token)), now_us, true)
    }

    /// The same check by session id, for long-lived responses (live streams) to re-ask.
    pub fn session_by_id(&self, session_id: i64, now_us: i64) -> Result<Option<Caller>, AuthError> {
        self.lookup("s.id = ?1", rusqlite::types::Value::Integer(session_id), now_us, false)
    }

    fn lookup(
        &self,
        condition: &str,
        key: rusqlite::types::Value,
        now_us: i64,
        touch: bool,
    ) -> Result<Option<Caller>, AuthError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT s.id, s.user_id, u.name, u.role, s.created_us, s.last_seen_us,
                    u.totp_secret IS NULL
                        AND coalesce((SELECT value FROM settings WHERE key = 'require_2fa'), '') = 'true',
                    u.totp_secret IS NOT NULL
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE {condition} AND u.disabled = 0"
        );
        let row = conn
            .prepare_cached(&sql)?
            .query_row([key], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, bool>(6)?,
                    r.get::<_, bool>(7)?,
                ))
            })
            .optional()?;
        let Some((session_id, user_id, name, role, created_us, last_seen_us, enroll_only, totp_enabled)) = row else {
            return Ok(None);
        };
        let idle_us = self.idle.as_micros() as i64;
        let lifetime_us = self.lifetime.as_micros() as i64;
        if now_us - last_seen_us > idle_us || now_us - created_us > lifetime_us {
            conn.execute("DELETE FROM sessions WHERE id = ?1", [session_id])?;
            return Ok(None);
        }
        if touch && now_us - last_seen_us > LAST_SEEN_GRANULARITY_US {
            conn.execute("UPDATE sessions SET last_seen_us = ?2 WHERE id = ?1", params![session_id, now_us])?;
        }
        let grants = Self::grants_of(&conn, user_id)?;
        Ok(Some(Caller { session_id, user_id, name, role: Role::parse(&role), grants, enroll_only, totp_enabled }))
    }

    /// Sessions of one user, or of everyone (`None`), newest first.
    pub fn sessions(&self, user_id: Option<i64>) -> Result<Vec<SessionInfo>, AuthError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT s.id, u.name, s.created_us, s.last_seen_us, s.address, s.user_agent
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE ?1 IS NULL OR s.user_id = ?1 ORDER BY s.last_seen_us DESC",
        )?;
        let sessions = statement
            .query_map([user_id], |r| {
                Ok(SessionInfo {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    created_us: r.get(2)?,
                    last_seen_us: r.get(3)?,
                    address: r.get(4)?,
                    user_agent: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(sessions)
    }

    /// The user id owning session `id`.
    pub fn session_owner(&self, id: i64) -> Result<i64, AuthError> {
        self.conn()
            .query_row("SELECT user_id FROM sessions WHERE id = ?1", [id], |r| r.get(0))
            .optional()?
            .ok_or(AuthError::NoSuchSession)
    }

    pub fn revoke_session(&self, id: i64) -> Result<(), AuthError> {
        if self.conn().execute("DELETE FROM sessions WHERE id = ?1", [id])? == 0 {
            return Err(AuthError::NoSuchSession);
        }
        Ok(())
    }

    /// Deletes sessions that idled out or outlived their lifetime.
    pub fn prune_sessions(&self, now_us: i64) -> Result<usize, AuthError> {
        Ok(self.conn().execute(
            "DELETE FROM sessions WHERE last_seen_us < ?1 OR created_us < ?2",
            params![now_us - self.idle.as_micros() as i64, now_us - self.lifetime.as_micros() as i64],
        )?)
    }

    // --- settings

    /// Whether every account must use a second factor.
    pub fn require_2fa(&self) -> Result<bool, AuthError> {
        let value: Option<String> = self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [REQUIRE_2FA], |r| r.get(0))
            .optional()?;
        Ok(value.as_deref() == Some("true"))
    }

    pub fn set_require_2fa(&self, required: bool) -> Result<(), AuthError> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![REQUIRE_2FA, if required { "true" } else { "false" }],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000_000;
    const HOUR_US: i64 = 3_600_000_000;

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let accounts =
            Accounts::open(&dir.path().join("index.sqlite3"), Duration::from_secs(3600), Duration::from_secs(86400))
                .unwrap();
        (dir, accounts)
    }

    #[test]
    fn password_change_ends_other_sessions_only() {
        let (_dir, accounts) = accounts();
        accounts.add_user("ann", "first password!", Role::Admin, NOW).unwrap();
        let Login::Ok { user_id, .. } = accounts.check_password("ann", "first password!").unwrap() else { panic!() };
        let (laptop, _) = accounts.create_session(user_id, "192.168.1.5", "laptop", NOW).unwrap();
        let (phone, _) = accounts.create_session(user_id, "192.168.1.6", "phone", NOW).unwrap();
        let me = accounts.session(&laptop.0, NOW).unwrap().unwrap();
        accounts.change_own_password(&me, "first password!", "second password!", NOW).unwrap();
        assert!(accounts.session(&laptop.0, NOW).unwrap().is_some(), "the session that changed it stays");
        assert!(accounts.session(&phone.0, NOW).unwrap().is_none(), "every other session ends");
        assert!(matches!(accounts.check_password("ann", "first password!").unwrap(), Login::Refused));
        assert!(matches!(
            accounts.change_own_password(&me, "wrong", "third password!", NOW),
            Err(AuthError::WrongPassword)
        ));
    }

    #[test]
    fn sessions_idle_out_and_expire() {
        let (_dir, accounts) = accounts();
        let id = accounts.add_user("ann", "first password!", Role::Viewer, NOW).unwrap();
        let (token, _) = accounts.create_session(id, "::1", "", NOW).unwrap();
        assert!(accounts.session(&token.0, NOW + HOUR_US / 2).unwrap().is_some());
        assert!(accounts.session(&token.0, NOW + HOUR_US).unwrap().is_some(), "touched at half an hour");
        assert!(accounts.session(&token.0, NOW + 3 * HOUR_US).unwrap().is_none(), "idle for two hours");
        let (token, _) = accounts.create_session(id, "::1", "", NOW).unwrap();
        for hour in 1..24 {
            assert!(accounts.session(&token.0, NOW + hour * HOUR_US).unwrap().is_some());
        }
        assert!(accounts.session(&token.0, NOW + 25 * HOUR_US).unwrap().is_none(), "lifetime is a day");
        assert!(accounts.session("not a token", NOW).unwrap().is_none());
    }

    #[test]
    fn removing_or_disabling_ends_sessions_and_keeps_an_admin() {
        let (_dir, accounts) = accounts();
        accounts.add_user("owner", "owner password", Role::Admin, NOW).unwrap();
        let bob = accounts.add_user("bob", "bob's password", Role::Viewer, NOW).unwrap();
        let (token, _) = accounts.create_session(bob, "::1", "", NOW).unwrap();
        accounts.set_disabled("bob", true).unwrap();
        assert!(accounts.session(&token.0, NOW).unwrap().is_none());
        assert!(matches!(accounts.check_password("bob", "bob's password").unwrap(), Login::Refused));
        accounts.set_disabled("bob", false).unwrap();
        let (token, _) = accounts.create_session(bob, "::1", "", NOW).unwrap();
        accounts.remove_user("bob").unwrap();
        assert!(accounts.session(&token.0, NOW).unwrap().is_none());
        assert!(matches!(accounts.remove_user("owner"), Err(AuthError::LastAdmin)));
        assert!(matches!(accounts.set_disabled("owner", true), Err(AuthError::LastAdmin)));
        assert!(matches!(accounts.set_role("owner", Role::Viewer), Err(AuthError::LastAdmin)));
        assert!(matches!(
            accounts.add_user("OWNER", "another password", Role::Viewer, NOW),
            Err(AuthError::UserExists(_))
        ));
        assert!(matches!(accounts.add_user("a b", "another password", Role::Viewer, NOW), Err(AuthError::BadName)));
    }

    #[test]
    fn grants_decide_per_camera_and_permission() {
        let (_dir, accounts) = accounts();
        let id = accounts.add_user("neighbour", "neighbour password", Role::Viewer, NOW).unwrap();
        accounts
            .set_grants(
                "neighbour",
                &[
                    Grant { camera: "doorbell".into(), live: true, playback: false, download: false },
                    Grant { camera: "nursery".into(), live: false, playback: false, download: false },
                ],
            )
            .unwrap();
        let (token, _) = accounts.create_session(id, "::1", "", NOW).unwrap();
        let caller = accounts.session(&token.0, NOW).unwrap().unwrap();
        assert!(caller.may("doorbell", Permission::Live));
        assert!(!caller.may("doorbell", Permission::Playback));
        assert!(!caller.may("nursery", Permission::Live));
        assert!(caller.sees("doorbell") && !caller.sees("nursery"), "an all-false grant is no grant");
        assert_eq!(accounts.user("neighbour").unwrap().grants.len(), 1);
    }

    #[test]
    fn totp_enrolment_login_and_recovery_codes() {
        let (_dir, accounts) = accounts();
        let id = accounts.add_user("ann", "first password!", Role::Admin, NOW).unwrap();
        assert!(matches!(accounts.confirm_totp(id, "123456", NOW), Err(AuthError::NoEnrolment)));
        let secret = accounts.start_totp(id).unwrap();
        let step = totp::step_at(NOW / 1_000_000);
        assert!(matches!(accounts.confirm_totp(id, "000000x", NOW), Err(AuthError::WrongCode)));
        let codes = accounts.confirm_totp(id, &format!("{:06}", totp::hotp(&secret, step as u64)), NOW).unwrap();
        assert_eq!(codes.len(), totp::RECOVERY_CODES);
        let later = NOW + 60_000_000;
        let code = format!("{:06}", totp::hotp(&secret, totp::step_at(later / 1_000_000) as u64));
        assert!(accounts.check_second_factor(id, &code, later).unwrap());
        assert!(!accounts.check_second_factor(id, &code, later).unwrap(), "no replay");
        assert!(accounts.check_second_factor(id, &codes[3], later).unwrap());
        assert!(!accounts.check_second_factor(id, &codes[3], later).unwrap(), "recovery codes are one-time");
        accounts.remove_totp(id).unwrap();
        assert!(!accounts.check_second_factor(id, &codes[4], later).unwrap());
    }

    #[test]
    fn required_2fa_applies_to_open_sessions_at_once() {
        let (_dir, accounts) = accounts();
        assert!(!accounts.require_2fa().unwrap());
        let id = accounts.add_user("ann", "first password!", Role::Viewer, NOW).unwrap();
        let (token, _) = accounts.create_session(id, "::1", "", NOW).unwrap();
        assert!(!accounts.session(&token.0, NOW).unwrap().unwrap().enroll_only);
        accounts.set_require_2fa(true).unwrap();
        assert!(accounts.require_2fa().unwrap());
        assert!(accounts.session(&token.0, NOW).unwrap().unwrap().enroll_only, "an open session is restricted too");
        accounts.set_require_2fa(false).unwrap();
        assert!(!accounts.session(&token.0, NOW).unwrap().unwrap().enroll_only, "and released when lifted");
    }
}
