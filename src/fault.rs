//! Crash points for the power-cut tests (issue #8): with `HEARTH_CRASH_AT=<point>` in the
//! environment, the process aborts — as abruptly as `kill -9`: no destructor, no flush, no
//! fsync — the first time execution reaches [`crash_point`]`("<point>")`;
//! `HEARTH_CRASH_AT=<point>:<n>` waits for the n-th time. The points sit between the steps of
//! the crash-safe sequences (docs/design/crash-safety.md), where a random `kill -9` rarely
//! lands. Without the variable (always, outside tests) a point costs one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Every point, for tests and `HEARTH_CRASH_AT` validation.
pub const POINTS: &[&str] = &[
    // clip.rs: the row is `open`, the `.part` file does not exist yet.
    "clip-row-inserted",
    // clip.rs: the age stream is finished and fsynced, not yet renamed.
    "clip-finished",
    // clip.rs: renamed to `.mp4.age` and the directory fsynced; the row is still `open`.
    "clip-renamed",
    // retention.rs: the row is `deleting`, the file still exists.
    "purge-marked",
    // retention.rs: the file is gone, the row is still `deleting`.
    "purge-file-removed",
];

struct Armed {
    point: String,
    remaining: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("HEARTH_CRASH_AT").ok()?;
            let (point, n) = match spec.split_once(':') {
                Some((point, n)) => (point.to_owned(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            if !POINTS.contains(&point.as_str()) {
                tracing::error!(%point, "HEARTH_CRASH_AT names no crash point; ignored");
                return None;
            }
            tracing::warn!(%point, n, "crash point armed: hearth will abort there");
            Some(Armed { point, remaining: AtomicU64::new(n.max(1)) })
        })
        .as_ref()
}

/// Aborts the process here if `HEARTH_CRASH_AT` names this point (and its count is reached).
pub fn crash_point(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "unlisted crash point {name}");
    let Some(armed) = armed() else { return };
    if armed.point == name && armed.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
        eprintln!("hearth: crash point {name} reached: aborting");
        std::process::abort();
    }
}
