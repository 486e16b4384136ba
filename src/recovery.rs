//! Crash recovery and verification: making the index and the files on disk agree again.
//!
//! [`reconcile`] runs at every start, before recording. It resolves each row that is not
//! `closed` (see the ordering rules in `db.rs`): a `deleting` row finishes its deletion; an
//! `open` row whose file was already renamed is closed; an `open` row with a `.part` file is
//! **recovered** — every age chunk that authenticates is decrypted, every complete fragment in
//! it is re-encrypted into a new, properly finished clip, and the loss is logged; an `open`
//! row with no file at all is dropped. Files the index does not know are moved to
//! `data_dir/orphans/` (never deleted: they may be someone's only copy).
//!
//! Recovery needs the private key. Without it, interrupted clips stay `open` and are
//! reported; `hearth check` (or a later unlock) recovers them.
//!
//! [`check`] is `hearth check`: reconcile, then decrypt and parse every closed clip, repair
//! what can be repaired (a damaged tail is cut back to the last complete fragment) and report
//! what cannot.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::clip::{create_dir_durable, part_path, remove_if_exists, sync_dir, with_suffix, ClipError};
use crate::crypto::{AuthenticatedPrefix, CryptoError, EncryptingFile, Recipient, UnlockedIdentity};
use crate::db::{Clip, ClipState, ClipStats, DbError, Index};
use crate::mux::{FragmentScanner, MuxError, ScanStep};
use crate::recorder::VIDEO_TIMESCALE;
use crate::retention::{delete_clip, RetentionError};

/// The suffix of a recovered clip being written, before it replaces the original.
const RECOVER_SUFFIX: &str = ".recover";

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Clip(#[from] ClipError),
    #[error(transparent)]
    Retention(#[from] RetentionError),
    #[error("clip {id}: {source}")]
    Mux { id: i64, source: MuxError },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0} is in use by another hearth (is `hearth serve` running? stop it first)")]
    Busy(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RecoveryError + '_ {
    move |source| RecoveryError::Io { path: path.to_owned(), source }
}

/// Exclusive use of a data dir: `hearth serve` and `hearth check` each hold it, so a check
/// never "recovers" a clip a running recorder is still writing. Released on drop (and by the
/// kernel if the process dies: it is an `flock`).
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, RecoveryError> {
        use std::os::unix::io::AsRawFd;
        let path = data_dir.join("hearth.lock");
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(RecoveryError::Busy(data_dir.to_owned()));
        }
        Ok(DataDirLock { _file: file })
    }
}

/// What reconciliation did.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// (clip id, seconds kept) for each interrupted clip recovered.
    pub recovered: Vec<(i64, f64)>,
    /// Interrupted clips with nothing complete in them, removed.
    pub empty_removed: usize,
    /// Clips renamed into place whose rows were still `open`.
    pub closed_after_rename: usize,
    /// `open` rows whose file never appeared.
    pub rows_without_files: usize,
    pub deletions_finished: usize,
    /// Files moved to `orphans/`.
    pub orphans: Vec<PathBuf>,
    /// Interrupted clips left for when the key is available.
    pub waiting_for_key: usize,
}

impl ReconcileReport {
    pub fn log(&self) {
        for (id, seconds) in &self.recovered {
            tracing::info!(clip = id, seconds = format!("{seconds:.2}"), "recovered interrupted clip");
        }
        if self.waiting_for_key > 0 {
            tracing::warn!(
                clips = self.waiting_for_key,
                "interrupted clips need the passphrase to be recovered; run `hearth check` or unlock"
            );
        }
        for orphan in &self.orphans {
            tracing::warn!(path = %orphan.display(), "file unknown to the index moved to orphans/");
        }
        if self.rows_without_files + self.empty_removed + self.closed_after_rename + self.deletions_finished > 0 {
            tracing::info!(
                rows_without_files = self.rows_without_files,
                empty_removed = self.empty_removed,
                closed_after_rename = self.closed_after_rename,
                deletions_finished = self.deletions_finished,
                "index reconciled with files"
            );
        }
    }
}

/// Brings the index and the files back in step. See the module docs.
pub fn reconcile(
    index: &Index,
    data_dir: &Path,
    identity: Option<&UnlockedIdentity>,
    recipient: &Recipient,
) -> Result<ReconcileReport, RecoveryError> {
    let mut report = ReconcileReport::default();
    for clip in index.all_clips()? {
        match clip.state {
            ClipState::Closed => {}
            ClipState::Deleting => {
                delete_clip(index, data_dir, clip.id, &clip.path)?;
                report.deletions_finished += 1;
            }
            ClipState::Open => reconcile_open(index, data_dir, &clip, identity, recipient, &mut report)?,
        }
    }
    quarantine_orphans(index, data_dir, &mut report)?;
    Ok(report)
}

fn reconcile_open(
    index: &Index,
    data_dir: &Path,
    clip: &Clip,
    identity: Option<&UnlockedIdentity>,
    recipient: &Recipient,
    report: &mut ReconcileReport,
) -> Result<(), RecoveryError> {
    let final_path = data_dir.join(&clip.path);
    let part = part_path(&final_path);
    remove_if_exists(&with_suffix(&final_path, RECOVER_SUFFIX))?; // an interrupted recovery
    if final_path.exists() {
        // Renamed but not marked closed. The file is finished; learn its contents if we can.
        let stats = match identity {
            Some(identity) => match read_complete_prefix(&final_path, identity, clip.id)? {
                Some(summary) => stats_for(clip, &summary, &final_path)?,
                None => return Ok(()),
            },
            None => ClipStats { bytes: file_len(&final_path)?, ..stats_from_row(clip) },
        };
        remove_if_exists(&part)?;
        index.close_clip(clip.id, &stats)?;
        report.closed_after_rename += 1;
    } else if part.exists() {
        let Some(identity) = identity else {
            report.waiting_for_key += 1;
            return Ok(());
        };
        match rewrite_complete_prefix(&part, &final_path, identity, recipient, clip.id)? {
            Some(summary) => {
                remove_if_exists(&part)?;
                sync_parent(&final_path)?;
                let stats = stats_for(clip, &summary, &final_path)?;
                index.close_clip(clip.id, &stats)?;
                report.recovered.push((clip.id, summary.video_duration_90k as f64 / 90_000.0));
            }
            None => {
                delete_clip(index, data_dir, clip.id, &clip.path)?;
                report.empty_removed += 1;
            }
        }
    } else {
        index.delete_clip_row(clip.id)?;
        report.rows_without_files += 1;
    }
    Ok(())
}

/// What the complete part of a clip holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContentSummary {
    pub fragments: u64,
    pub video_frames: i64,
    pub video_keyframes: i64,
    pub video_duration_90k: i64,
    /// Why the stream stopped early (crash, damage), if it did.
    pub damage: Option<String>,
}

/// Decrypts and scans a clip without keeping its data. `None` if the file cannot even be
/// opened as an age stream for this key or its init segment is incomplete.
fn read_complete_prefix(
    path: &Path,
    identity: &UnlockedIdentity,
    id: i64,
) -> Result<Option<ContentSummary>, RecoveryError> {
    scan_into(path, identity, id, None)
}

/// The recovery of one interrupted clip on its own, without an index: what start-up recovery
/// does to a `.part` file. For the fuzz target `age_recovery` (fuzz/), which feeds it
/// truncated and corrupted age streams.
pub fn recover_file(
    source: &Path,
    destination: &Path,
    identity: &UnlockedIdentity,
    recipient: &Recipient,
) -> Result<Option<ContentSummary>, RecoveryError> {
    rewrite_complete_prefix(source, destination, identity, recipient, 0)
}

/// Re-encrypts every complete fragment of `source` into `destination` (via a temporary file
/// renamed into place). `None` when nothing complete was found.
fn rewrite_complete_prefix(
    source: &Path,
    destination: &Path,
    identity: &UnlockedIdentity,
    recipient: &Recipient,
    id: i64,
) -> Result<Option<ContentSummary>, RecoveryError> {
    let temp = with_suffix(destination, RECOVER_SUFFIX);
    if let Some(dir) = destination.parent() {
        create_dir_durable(dir).map_err(io_err(dir))?;
    }
    let mut out = EncryptingFile::create(&temp, recipient)?;
    let summary = scan_into(source, identity, id, Some(&mut out))?;
    match summary {
        Some(summary) if summary.fragments > 0 => {
            out.finish()?;
            std::fs::rename(&temp, destination).map_err(io_err(destination))?;
            sync_parent(destination)?;
            Ok(Some(summary))
        }
        _ => {
            drop(out);
            remove_if_exists(&temp)?;
            Ok(None)
        }
    }
}

/// The shared scan: decrypt the authenticated prefix, walk complete fragments, optionally
/// copying init segment and fragments to `sink`.
fn scan_into(
    path: &Path,
    identity: &UnlockedIdentity,
    id: i64,
    mut sink: Option<&mut EncryptingFile>,
) -> Result<Option<ContentSummary>, RecoveryError> {
    let mut reader = match AuthenticatedPrefix::open(path, identity) {
        Ok(reader) => reader,
        Err(CryptoError::Decrypt { message, .. }) => {
            tracing::error!(clip = id, path = %path.display(), %message, "clip does not decrypt");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let mut scanner = match FragmentScanner::new(&mut reader) {
        Ok(scanner) => scanner,
        Err(MuxError::TruncatedInit { .. }) => {
            return Ok(Some(ContentSummary { damage: Some("no complete init segment".into()), ..Default::default() }))
        }
        Err(source) => return Err(RecoveryError::Mux { id, source }),
    };
    let video_track = scanner.init().tracks.iter().find(|t| &t.handler == b"vide").map(|t| (t.track_id, t.timescale));
    let Some((video_id, timescale)) = video_track else {
        return Err(RecoveryError::Mux {
            id,
            source: MuxError::Malformed { offset: 0, what: "no video track".into() },
        });
    };
    if let Some(out) = sink.as_deref_mut() {
        out.write_all(&scanner.init().bytes).map_err(io_err(path))?;
    }
    let mut summary = ContentSummary::default();
    let mut payload = Vec::new();
    let mut duration = 0u64;
    loop {
        let step =
            if sink.is_some() { scanner.next_fragment_with_payload(&mut payload) } else { scanner.next_fragment() };
        match step {
            Ok(ScanStep::Fragment(fragment)) => {
                if let Some(out) = sink.as_deref_mut() {
                    for part in [&fragment.moof_bytes[..], &fragment.mdat_header(), &payload] {
                        out.write_all(part).map_err(io_err(path))?;
                    }
                }
                summary.fragments += 1;
                for traf in fragment.tracks.iter().filter(|t| t.track_id == video_id) {
                    summary.video_frames += traf.samples.len() as i64;
                    summary.video_keyframes += traf.samples.iter().filter(|s| s.is_sync).count() as i64;
                    duration = traf.base_decode_time.saturating_add(traf.duration());
                }
            }
            Ok(ScanStep::End) => break,
            Ok(ScanStep::Truncated { at }) => {
                summary.damage = Some(format!("cut short at byte {at}"));
                break;
            }
            Err(e) => {
                summary.damage = Some(e.to_string());
                break;
            }
        }
    }
    drop(scanner);
    if let Some(reason) = reader.stopped_early() {
        summary.damage.get_or_insert_with(|| reason.to_owned());
    }
    summary.video_duration_90k =
        (u128::from(duration) * u128::from(VIDEO_TIMESCALE) / u128::from(timescale.max(1))) as i64;
    Ok(Some(summary))
}

fn stats_for(clip: &Clip, summary: &ContentSummary, path: &Path) -> Result<ClipStats, RecoveryError> {
    Ok(ClipStats {
        end_us: clip.start_us + summary.video_duration_90k * 1_000_000 / 90_000,
        duration_90k: summary.video_duration_90k,
        bytes: file_len(path)?,
        frames: summary.video_frames,
        keyframes: summary.video_keyframes,
    })
}

fn stats_from_row(clip: &Clip) -> ClipStats {
    ClipStats {
        end_us: clip.end_us,
        duration_90k: clip.duration_90k,
        bytes: clip.bytes,
        frames: clip.frames,
        keyframes: clip.keyframes,
    }
}

fn file_len(path: &Path) -> Result<i64, RecoveryError> {
    Ok(std::fs::metadata(path).map_err(io_err(path))?.len() as i64)
}

fn sync_parent(path: &Path) -> Result<(), RecoveryError> {
    match path.parent() {
        Some(dir) => sync_dir(dir).map_err(io_err(dir)),
        None => Ok(()),
    }
}

/// Moves clip files the index does not know into `data_dir/orphans/`, keeping their layout.
fn quarantine_orphans(index: &Index, data_dir: &Path, report: &mut ReconcileReport) -> Result<(), RecoveryError> {
    let known: HashSet<PathBuf> = index
        .all_clips()?
        .into_iter()
        .flat_map(|c| {
            let path = data_dir.join(&c.path);
            [part_path(&path), path]
        })
        .collect();
    let clips_dir = data_dir.join("clips");
    let mut files = Vec::new();
    walk_files(&clips_dir, &mut files);
    for file in files {
        if known.contains(&file) {
            continue;
        }
        let relative = file.strip_prefix(data_dir).unwrap_or(&file);
        let target = data_dir.join("orphans").join(relative);
        if let Some(dir) = target.parent() {
            create_dir_durable(dir).map_err(io_err(dir))?;
        }
        std::fs::rename(&file, &target).map_err(io_err(&file))?;
        report.orphans.push(target);
    }
    Ok(())
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk_files(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// What `hearth check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub reconcile: ReconcileReport,
    pub checked: usize,
    pub ok: usize,
    /// (clip id, what was wrong and done)
    pub repaired: Vec<(i64, String)>,
    /// (clip id, what is wrong)
    pub unrepaired: Vec<(i64, String)>,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.reconcile;
        writeln!(
            f,
            "recovery: {} interrupted clip(s) recovered, {} empty removed, {} closed after rename, {} index row(s) without file dropped, {} deletion(s) finished, {} orphan file(s) moved",
            r.recovered.len(),
            r.empty_removed,
            r.closed_after_rename,
            r.rows_without_files,
            r.deletions_finished,
            r.orphans.len()
        )?;
        for (id, what) in &self.repaired {
            writeln!(f, "repaired clip {id}: {what}")?;
        }
        for (id, what) in &self.unrepaired {
            writeln!(f, "DAMAGED clip {id}: {what}")?;
        }
        write!(
            f,
            "checked {} clip(s): {} ok, {} repaired, {} damaged beyond repair",
            self.checked,
            self.ok,
            self.repaired.len(),
            self.unrepaired.len()
        )
    }
}

/// `hearth check`: reconcile, then verify every closed clip end to end.
pub fn check(
    index: &Index,
    data_dir: &Path,
    identity: &UnlockedIdentity,
    recipient: &Recipient,
) -> Result<CheckReport, RecoveryError> {
    let mut report =
        CheckReport { reconcile: reconcile(index, data_dir, Some(identity), recipient)?, ..Default::default() };
    let closed = index.clips(&crate::db::ClipFilter::default())?;
    for clip in closed {
        report.checked += 1;
        let path = data_dir.join(&clip.path);
        if !path.exists() {
            index.delete_clip_row(clip.id)?;
            report.unrepaired.push((clip.id, "file is missing; index row removed".into()));
            continue;
        }
        let summary = match read_complete_prefix(&path, identity, clip.id)? {
            Some(summary) => summary,
            None => {
                report.unrepaired.push((clip.id, "does not decrypt with this key".into()));
                continue;
            }
        };
        let consistent = summary.video_frames == clip.frames && summary.video_duration_90k == clip.duration_90k;
        match (&summary.damage, consistent) {
            (None, true) => report.ok += 1,
            (None, false) => {
                let stats = stats_for(&clip, &summary, &path)?;
                index.close_clip(clip.id, &stats)?;
                report.repaired.push((
                    clip.id,
                    format!("index said {} frames, file has {}; index updated", clip.frames, summary.video_frames),
                ));
            }
            (Some(damage), _) => repair_damaged(index, &path, &clip, damage, identity, recipient, &mut report)?,
        }
    }
    Ok(report)
}

fn repair_damaged(
    index: &Index,
    path: &Path,
    clip: &Clip,
    damage: &str,
    identity: &UnlockedIdentity,
    recipient: &Recipient,
    report: &mut CheckReport,
) -> Result<(), RecoveryError> {
    // Keep the damaged original next to the repaired one until the repair is durable.
    let original = with_suffix(path, ".damaged");
    std::fs::rename(path, &original).map_err(io_err(path))?;
    match rewrite_complete_prefix(&original, path, identity, recipient, clip.id)? {
        Some(summary) => {
            let stats = stats_for(clip, &summary, path)?;
            index.close_clip(clip.id, &stats)?;
            remove_if_exists(&original)?;
            report.repaired.push((
                clip.id,
                format!(
                    "{damage}; kept {:.2} s of {:.2} s",
                    summary.video_duration_90k as f64 / 9e4,
                    clip.duration_90k as f64 / 9e4
                ),
            ));
        }
        None => {
            std::fs::rename(&original, path).map_err(io_err(path))?;
            report.unrepaired.push((clip.id, format!("{damage}; nothing complete to keep")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::NewClip;

    fn setup() -> (tempfile::TempDir, Index, Recipient) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.sqlite3")).unwrap();
        let recipient = Recipient::parse("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p").unwrap();
        (dir, index, recipient)
    }

    fn add_clip(index: &Index, data_dir: &Path, start_us: i64, file: bool) -> Clip {
        let new = NewClip {
            camera: "door",
            start_us,
            codec: "avc1.64001f",
            width: 640,
            height: 360,
            has_audio: false,
            event: false,
        };
        let (id, path) = index.insert_open_clip(&new, |id| crate::clip::clip_rel_path("door", start_us, id)).unwrap();
        if file {
            let full = data_dir.join(&path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, b"ciphertext").unwrap();
        }
        index.clip(id).unwrap().unwrap()
    }

    #[test]
    fn only_one_process_may_own_a_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        assert!(matches!(DataDirLock::acquire(dir.path()), Err(RecoveryError::Busy(_))));
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn reconcile_resolves_every_crash_state_without_the_key() {
        let (dir, index, recipient) = setup();
        let data_dir = dir.path();
        // Crash between row insert and file create: the row goes.
        let never_written = add_clip(&index, data_dir, 1_000_000, false);
        // Crash mid-deletion: the deletion is finished.
        let deleting = add_clip(&index, data_dir, 2_000_000, true);
        index.set_clip_state(deleting.id, ClipState::Deleting).unwrap();
        // Crash after rename, before the row was closed: closed with what the row knew.
        let renamed = add_clip(&index, data_dir, 3_000_000, true);
        // Crash while recording: waits for the key.
        let interrupted = add_clip(&index, data_dir, 4_000_000, false);
        let part = part_path(&data_dir.join(&interrupted.path));
        std::fs::create_dir_all(part.parent().unwrap()).unwrap();
        std::fs::write(&part, b"partial ciphertext").unwrap();
        // A file nobody indexed.
        let stray = data_dir.join("clips/door/2020-01-01/999.mp4.age");
        std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
        std::fs::write(&stray, b"?").unwrap();

        let report = reconcile(&index, data_dir, None, &recipient).unwrap();
        assert_eq!(report.rows_without_files, 1);
        assert_eq!(report.deletions_finished, 1);
        assert_eq!(report.closed_after_rename, 1);
        assert_eq!(report.waiting_for_key, 1);
        assert_eq!(report.orphans.len(), 1);
        assert!(index.clip(never_written.id).unwrap().is_none());
        assert!(index.clip(deleting.id).unwrap().is_none());
        assert!(!data_dir.join(&deleting.path).exists());
        assert_eq!(index.clip(renamed.id).unwrap().unwrap().state, ClipState::Closed);
        assert_eq!(index.clip(interrupted.id).unwrap().unwrap().state, ClipState::Open);
        assert!(part.exists(), "an interrupted clip is never discarded without the key");
        assert!(!stray.exists());
        assert!(data_dir.join("orphans/clips/door/2020-01-01/999.mp4.age").exists(), "orphans are kept");

        // Running it again changes nothing.
        let again = reconcile(&index, data_dir, None, &recipient).unwrap();
        assert_eq!((again.rows_without_files, again.deletions_finished, again.orphans.len()), (0, 0, 0));
        assert_eq!(again.waiting_for_key, 1);
    }
}
