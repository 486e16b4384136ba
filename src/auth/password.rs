//! Password hashing and the password policy.
//!
//! Hashes are argon2id PHC strings (`$argon2id$v=19$m=…`), so the parameters travel with each
//! hash and can be raised later without invalidating old ones. The parameters are sized for
//! a Raspberry Pi 4: about 100 ms and 19 MiB per hash there (a few tens of ms on a desktop),
//! which makes offline guessing of a stolen index expensive while a login stays instant.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted: long passphrases beat complexity rules.
pub const MIN_LENGTH: usize = 12;
/// Longest password accepted (a bound on hashing work per request, far above any real one).
pub const MAX_LENGTH: usize = 1024;

const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_LENGTH} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_LENGTH} characters long")]
    TooLong,
    #[error("stored password hash is malformed: {0}")]
    BadHash(String),
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks the policy: length only, counted in characters (not bytes).
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if length > MAX_LENGTH {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// Hashes a password that passed [`check_policy`] with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_policy(password)?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::BadHash(e.to_string()))
}

/// Whether `password` matches `stored`. The comparison inside argon2 is constant-time.
pub fn verify(password: &str, stored: &str) -> Result<bool, PasswordError> {
    if password.len() > MAX_LENGTH * 4 {
        return Ok(false);
    }
    let parsed = PasswordHash::new(stored).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    // Verify with the parameters stored in the hash, whatever today's defaults are.
    Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Spends the same time as a real verification, for logins naming an unknown user, so
/// response time does not tell which user names exist.
pub fn verify_dummy(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("not a real password, only for timing").expect("valid policy"));
    let _ = verify(password, stored);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_salts_differ() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify("correct horse battery", &a).unwrap());
        assert!(!verify("correct horse battery!", &a).unwrap());
        assert!(!verify("", &a).unwrap());
    }

    #[test]
    fn policy_counts_characters() {
        assert_eq!(check_policy("short"), Err(PasswordError::TooShort));
        assert_eq!(check_policy("ééééééééééé"), Err(PasswordError::TooShort), "11 characters, 22 bytes");
        assert!(check_policy("éééééééééééé").is_ok());
        assert!(check_policy(&"x".repeat(128)).is_ok(), "no maximum below 128");
        assert_eq!(check_policy(&"x".repeat(MAX_LENGTH + 1)), Err(PasswordError::TooLong));
        assert_eq!(hash("short"), Err(PasswordError::TooShort));
    }

    #[test]
    fn malformed_hash_is_an_error_not_a_match() {
        assert!(matches!(verify("whatever whatever", "plain"), Err(PasswordError::BadHash(_))));
    }
}
