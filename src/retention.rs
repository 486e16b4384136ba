//! Retention: which clips to delete so the archive stays inside its budgets, and deleting them
//! in a crash-safe order.
//!
//! Budgets are the global `storage.max_bytes`, each camera's optional `max_bytes`, and the age
//! limits: `storage.max_age_days` for continuous footage, `storage.event_max_age_days` for
//! clips holding an event (see [`crate::gate`]). [`choose`] is the pure decision (oldest first;
//! under a byte budget, clips without events before any event clip); [`Retention`]
//! carries it out: mark the row `deleting`, remove the file, delete the row. A crash between
//! any two steps leaves a `deleting` row that start-up recovery finishes, so no clip is ever
//! listed whose file was removed. Budgets are enforced with a **reserve** for the clips still
//! being written (one clip's worth per recording camera), so the total including open clips
//! stays under the budget rather than overshooting it until the next close.
//!
//! A full disk is the one case where budgets did not prevent trouble (another program filled
//! it, or the budget is larger than the disk). Deleting then needs the index, and SQLite needs
//! a few pages of free space to record anything — so the data dir keeps a small **space
//! reserve** file ([`SpaceReserve`]): on ENOSPC it is released first, the oldest clip is
//! deleted in the usual crash-safe order, and the reserve is taken again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::clip::{part_path, remove_if_exists, ClipError};
use crate::db::{ClipState, DbError, Index, RetentionRow};

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Clip(#[from] ClipError),
}

/// The limits in force.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    pub max_bytes: u64,
    pub per_camera: HashMap<String, u64>,
    /// Age limit of clips holding no event.
    pub max_age_us: i64,
    /// Age limit of clips holding an event.
    pub event_max_age_us: i64,
}

/// Bytes not in closed clips that still count: clips being written, per camera.
pub type Reserved = HashMap<String, u64>;

/// Picks the clips to delete, given closed clips **oldest first**. Clips past their age limit
/// go first; then, per camera over its own budget, its oldest; then, while the archive is over
/// the global budget, the oldest of all. Under a byte budget, event clips go only once every
/// clip without an event (of that camera, or at all) is gone: they are what the owner keeps
/// footage for.
pub fn choose(rows: &[RetentionRow], budget: &Budget, reserved: &Reserved, now_us: i64) -> Vec<i64> {
    let mut deleted = vec![false; rows.len()];
    let cutoff = now_us.saturating_sub(budget.max_age_us);
    let event_cutoff = now_us.saturating_sub(budget.event_max_age_us);
    for (i, row) in rows.iter().enumerate() {
        if row.end_us < if row.event { event_cutoff } else { cutoff } {
            deleted[i] = true;
        }
    }
    let by_preference: Vec<usize> =
        (0..rows.len()).filter(|&i| !rows[i].event).chain((0..rows.len()).filter(|&i| rows[i].event)).collect();

    let mut per_camera: HashMap<&str, u64> = HashMap::new();
    for (camera, bytes) in reserved {
        *per_camera.entry(camera.as_str()).or_default() += bytes;
    }
    for (i, row) in rows.iter().enumerate() {
        if !deleted[i] {
            *per_camera.entry(row.camera.as_str()).or_default() += row.bytes.max(0) as u64;
        }
    }
    for (camera, limit) in &budget.per_camera {
        let Some(used) = per_camera.get_mut(camera.as_str()) else { continue };
        for &i in &by_preference {
            let row = &rows[i];
            if *used <= *limit {
                break;
            }
            if !deleted[i] && row.camera == *camera {
                deleted[i] = true;
                *used -= row.bytes.max(0) as u64;
            }
        }
    }

    let mut total: u64 = per_camera.values().sum();
    for &i in &by_preference {
        if total <= budget.max_bytes {
            break;
        }
        if !deleted[i] {
            deleted[i] = true;
            total -= rows[i].bytes.max(0) as u64;
        }
    }
    rows.iter().zip(deleted).filter(|(_, d)| *d).map(|(row, _)| row.id).collect()
}

/// A file of real (allocated, not sparse) bytes held back for when the disk fills up.
pub struct SpaceReserve {
    path: PathBuf,
}

impl SpaceReserve {
    /// Enough for SQLite to record several deletions.
    pub const SIZE: u64 = 1 << 20;

    pub fn new(data_dir: &std::path::Path) -> SpaceReserve {
        SpaceReserve { path: data_dir.join(".space-reserve") }
    }

    /// Allocates the reserve if it is missing. Failing (the disk is full already) is not an
    /// error: the next purge will try again.
    pub fn take(&self) -> bool {
        use std::os::unix::io::AsRawFd;
        if std::fs::metadata(&self.path).map(|m| m.len() >= Self::SIZE).unwrap_or(false) {
            return true;
        }
        let Ok(file) = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&self.path) else {
            return false;
        };
        // posix_fallocate really allocates blocks (set_len would make a sparse file that
        // frees nothing when removed).
        let result = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, Self::SIZE as libc::off_t) };
        if result != 0 {
            drop(file);
            let _ = std::fs::remove_file(&self.path);
            return false;
        }
        true
    }

    /// Frees the reserve's space.
    pub fn release(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What a purge did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PurgeReport {
    pub clips: usize,
    pub bytes: u64,
}

/// Carries out retention for one data dir. Shared by the periodic task, the clip writers (on
/// ENOSPC) and `hearth check`.
pub struct Retention {
    index: Arc<Index>,
    data_dir: PathBuf,
    budget: Budget,
    /// Open clip sizes, reported by the writers, used as the reserve.
    reserved: Mutex<Reserved>,
    /// Purges must not interleave (ENOSPC on several cameras at once).
    running: Mutex<()>,
    reserve: SpaceReserve,
}

impl Retention {
    pub fn new(index: Arc<Index>, data_dir: PathBuf, budget: Budget) -> Retention {
        let reserve = SpaceReserve::new(&data_dir);
        if !reserve.take() {
            tracing::warn!("disk nearly full: cannot set aside the space reserve");
        }
        Retention { index, data_dir, budget, reserved: Mutex::new(HashMap::new()), running: Mutex::new(()), reserve }
    }

    /// Records how much camera `name` expects its open clip to take (its last clip's size).
    pub fn reserve(&self, camera: &str, bytes: u64) {
        self.reserved.lock().unwrap_or_else(|p| p.into_inner()).insert(camera.to_owned(), bytes);
    }

    /// Deletes whatever the budgets require.
    pub fn enforce(&self, now_us: i64) -> Result<PurgeReport, RetentionError> {
        let _guard = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let rows = self.index.retention_candidates()?;
        let reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let chosen = choose(&rows, &self.budget, &reserved, now_us);
        let report = self.delete(&rows, &chosen)?;
        let oldest_kept = now_us.saturating_sub(self.budget.max_age_us.max(self.budget.event_max_age_us));
        self.index.delete_gaps_before(oldest_kept)?;
        if report.clips > 0 {
            tracing::info!(clips = report.clips, bytes = report.bytes, "retention deleted the oldest clips");
        }
        Ok(report)
    }

    /// The disk is full: delete the single oldest closed clip whatever the budget says.
    /// Returns whether anything was freed.
    pub fn free_oldest(&self) -> bool {
        let _guard = self.running.lock().unwrap_or_else(|p| p.into_inner());
        // Give SQLite room to record the deletion; taken back once the clip is gone.
        self.reserve.release();
        let result = self.index.retention_candidates().map_err(RetentionError::from).and_then(|rows| {
            let oldest: Vec<i64> = rows.first().map(|r| r.id).into_iter().collect();
            self.delete(&rows, &oldest)
        });
        match result {
            Ok(report) if report.clips > 0 => {
                tracing::warn!(bytes = report.bytes, "disk full: deleted the oldest clip");
                self.reserve.take();
                true
            }
            Ok(_) => {
                // The released reserve is all the room there is now.
                tracing::error!("disk full and no closed clip left to delete");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "disk full and purging failed");
                false
            }
        }
    }

    fn delete(&self, rows: &[RetentionRow], ids: &[i64]) -> Result<PurgeReport, RetentionError> {
        let mut report = PurgeReport::default();
        for row in rows.iter().filter(|r| ids.contains(&r.id)) {
            delete_clip(&self.index, &self.data_dir, row.id, &row.path)?;
            report.clips += 1;
            report.bytes += row.bytes.max(0) as u64;
        }
        Ok(report)
    }
}

/// Deletes one clip in the crash-safe order: row marked, file removed, row deleted.
pub fn delete_clip(index: &Index, data_dir: &std::path::Path, id: i64, rel_path: &str) -> Result<(), RetentionError> {
    index.set_clip_state(id, ClipState::Deleting)?;
    crate::fault::crash_point("purge-marked");
    let path = data_dir.join(rel_path);
    remove_if_exists(&path)?;
    remove_if_exists(&part_path(&path))?;
    crate::fault::crash_point("purge-file-removed");
    index.delete_clip_row(id)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(id: i64, camera: &str, start_s: i64, bytes: i64) -> RetentionRow {
        RetentionRow {
            id,
            camera: camera.into(),
            start_us: start_s * 1_000_000,
            end_us: (start_s + 60) * 1_000_000,
            bytes,
            path: format!("clips/{camera}/{id}.mp4.age"),
            event: false,
        }
    }

    fn budget(max_bytes: u64) -> Budget {
        Budget { max_bytes, per_camera: HashMap::new(), max_age_us: i64::MAX / 2, event_max_age_us: i64::MAX / 2 }
    }

    #[test]
    fn oldest_go_first_until_under_budget() {
        let rows = vec![row(1, "a", 0, 100), row(2, "b", 60, 100), row(3, "a", 120, 100), row(4, "b", 180, 100)];
        assert_eq!(choose(&rows, &budget(250), &Reserved::new(), 1000 * 1_000_000), vec![1, 2]);
        assert_eq!(choose(&rows, &budget(400), &Reserved::new(), 1000 * 1_000_000), Vec::<i64>::new());
    }

    #[test]
    fn reserve_for_open_clips_counts() {
        let rows = vec![row(1, "a", 0, 100), row(2, "a", 60, 100)];
        let reserved = Reserved::from([("a".to_owned(), 100)]);
        assert_eq!(choose(&rows, &budget(250), &reserved, 0), vec![1]);
    }

    #[test]
    fn per_camera_budget_only_touches_that_camera() {
        let rows = vec![row(1, "a", 0, 100), row(2, "b", 60, 100), row(3, "b", 120, 100), row(4, "b", 180, 100)];
        let mut b = budget(10_000);
        b.per_camera.insert("b".into(), 150);
        assert_eq!(choose(&rows, &b, &Reserved::new(), 0), vec![2, 3]);
    }

    #[test]
    fn age_limit_deletes_old_clips_regardless_of_size() {
        let rows = vec![row(1, "a", 0, 1), row(2, "a", 10_000, 1)];
        let b = Budget {
            max_bytes: u64::MAX,
            per_camera: HashMap::new(),
            max_age_us: 5_000 * 1_000_000,
            event_max_age_us: 5_000 * 1_000_000,
        };
        assert_eq!(choose(&rows, &b, &Reserved::new(), 12_000 * 1_000_000), vec![1]);
    }

    fn event_row(id: i64, camera: &str, start_s: i64, bytes: i64) -> RetentionRow {
        RetentionRow { event: true, ..row(id, camera, start_s, bytes) }
    }

    #[test]
    fn event_clips_outlive_continuous_ones() {
        // A week of continuous footage, a month of events; the clock is at day 10.
        let day = 86_400;
        let rows = vec![row(1, "a", 0, 1), event_row(2, "a", day, 1), row(3, "a", 2 * day, 1), row(4, "a", 9 * day, 1)];
        let b = Budget {
            max_bytes: u64::MAX,
            per_camera: HashMap::new(),
            max_age_us: 7 * day * 1_000_000,
            event_max_age_us: 30 * day * 1_000_000,
        };
        assert_eq!(choose(&rows, &b, &Reserved::new(), 10 * day * 1_000_000), vec![1, 3]);
        assert_eq!(choose(&rows, &b, &Reserved::new(), 32 * day * 1_000_000), vec![1, 2, 3, 4]);
    }

    #[test]
    fn under_a_byte_budget_event_clips_go_last() {
        let rows =
            vec![event_row(1, "a", 0, 10), row(2, "a", 60, 10), event_row(3, "a", 120, 10), row(4, "a", 180, 10)];
        assert_eq!(choose(&rows, &budget(25), &Reserved::new(), 0), vec![2, 4]);
        assert_eq!(choose(&rows, &budget(15), &Reserved::new(), 0), vec![1, 2, 4]);
        let mut b = budget(u64::MAX);
        b.per_camera.insert("a".into(), 25);
        assert_eq!(choose(&rows, &b, &Reserved::new(), 0), vec![2, 4]);
    }

    proptest! {
        #[test]
        fn result_fits_the_budget_and_deletes_a_prefix_per_camera(
            sizes in proptest::collection::vec((0usize..3, 1i64..1000), 0..40),
            max_bytes in 0u64..20_000,
        ) {
            let cameras = ["a", "b", "c"];
            let rows: Vec<RetentionRow> = sizes.iter().enumerate()
                .map(|(i, (cam, bytes))| row(i as i64, cameras[*cam], i as i64 * 60, *bytes)).collect();
            let chosen = choose(&rows, &budget(max_bytes), &Reserved::new(), 0);
            let kept: i64 = rows.iter().filter(|r| !chosen.contains(&r.id)).map(|r| r.bytes).sum();
            prop_assert!(kept as u64 <= max_bytes);
            // Oldest first: everything deleted is older than everything kept.
            let newest_deleted = chosen.iter().max();
            let oldest_kept = rows.iter().map(|r| r.id).filter(|id| !chosen.contains(id)).min();
            if let (Some(d), Some(k)) = (newest_deleted, oldest_kept) {
                prop_assert!(d < &k);
            }
        }

        #[test]
        fn event_clips_go_only_after_every_other_clip(
            clips in proptest::collection::vec((1i64..1000, any::<bool>()), 0..40),
            max_bytes in 0u64..20_000,
        ) {
            let rows: Vec<RetentionRow> = clips.iter().enumerate().map(|(i, (bytes, event))| {
                RetentionRow { event: *event, ..row(i as i64, "a", i as i64 * 60, *bytes) }
            }).collect();
            let chosen = choose(&rows, &budget(max_bytes), &Reserved::new(), 0);
            let kept = |r: &&RetentionRow| !chosen.contains(&r.id);
            prop_assert!(rows.iter().filter(kept).map(|r| r.bytes).sum::<i64>() as u64 <= max_bytes);
            let an_event_clip_went = rows.iter().any(|r| r.event && chosen.contains(&r.id));
            let a_plain_clip_stayed = rows.iter().filter(kept).any(|r| !r.event);
            prop_assert!(!(an_event_clip_went && a_plain_clip_stayed));
            // Within each kind, oldest first.
            for kind in [false, true] {
                let newest_deleted = chosen.iter().filter(|id| rows[**id as usize].event == kind).max();
                let oldest_kept = rows.iter().filter(kept).filter(|r| r.event == kind).map(|r| r.id).min();
                if let (Some(d), Some(k)) = (newest_deleted, oldest_kept) {
                    prop_assert!(*d < k);
                }
            }
        }
    }
}
