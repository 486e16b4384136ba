//! Clip files on disk: where they live, and the writer that turns a camera's [`ClipEvent`]s
//! into encrypted files and index rows, in a crash-safe order.
//!
//! Each camera has one [`ClipWriter`] on its own blocking thread (disk and fsync latency must
//! never stall RTSP reading). For every clip it: inserts the index row `open`; creates
//! `<id>.mp4.age.part` and streams the init segment and fragments through an age encryptor —
//! plaintext never touches the disk; pads with an MP4 `free` box whenever unflushed video gets
//! older than half of `flush_seconds` and fdatasyncs every `flush_seconds`, which bounds what a
//! power cut loses; and at the end finishes the age stream, fsyncs the file, renames it to
//! `<id>.mp4.age`, fsyncs the directory, and only then marks the row `closed`.
//!
//! Running out of space is handled below age: the file handle given to the encryptor retries
//! a write that fails with ENOSPC after asking retention to free space, so the encryptor never
//! sees an error that would leave a corrupt stream behind.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::crypto::{EncryptingFile, Recipient, CHUNK_SIZE};
use crate::db::{ClipStats, DbError, Index, NewClip};
use crate::recorder::{ClipEvent, ClipProgress};

#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ClipError + '_ {
    move |source| ClipError::Io { path: path.to_owned(), source }
}

/// Slack for the once-per-fragment padding check (see `ClipWriter::append`).
const PADDING_CHECK_JITTER: Duration = Duration::from_millis(100);

/// The suffix of a clip still being written.
pub const PART_SUFFIX: &str = ".part";

/// `clips/<camera>/<YYYY-MM-DD>/<id>.mp4.age`, relative to the data dir (UTC date).
pub fn clip_rel_path(camera: &str, start_us: i64, id: i64) -> String {
    let date = chrono::DateTime::from_timestamp_micros(start_us)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "unknown-date".to_owned());
    format!("clips/{camera}/{date}/{id}.mp4.age")
}

pub fn part_path(final_path: &Path) -> PathBuf {
    with_suffix(final_path, PART_SUFFIX)
}

/// `path` with `suffix` appended to its file name (`42.mp4.age` → `42.mp4.age.part`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// fsync a directory so a rename or create inside it survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, syncing each parent so the new entries are durable.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Called when the disk is full; returns whether it freed anything.
pub type FreeSpace = Arc<dyn Fn() -> bool + Send + Sync>;

/// A file that, on ENOSPC, asks for space to be freed and tries again (a bounded number of
/// times), so the age stream above it stays intact.
struct SpaceRetryingFile {
    file: File,
    free_space: FreeSpace,
}

impl SpaceRetryingFile {
    const ATTEMPTS: u32 = 20;
}

impl Write for SpaceRetryingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut attempt = 0;
        loop {
            match self.file.write(buf) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && attempt < Self::ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(attempt, "disk full; purging the oldest clips");
                    if !(self.free_space)() {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The clip currently being written.
struct OpenFile {
    id: i64,
    final_path: PathBuf,
    file: EncryptingFile<SpaceRetryingFile>,
    chunk_started: Instant,
    last_sync: Instant,
    start_us: i64,
    /// The row is marked as holding an event.
    event: bool,
}

/// Writes one camera's clips. See the module docs for the order of operations.
pub struct ClipWriter {
    camera: String,
    data_dir: PathBuf,
    index: Arc<Index>,
    recipient: Recipient,
    flush_interval: Duration,
    free_space: FreeSpace,
    open: Option<OpenFile>,
}

/// A clip this writer finished.
#[derive(Clone, Debug, PartialEq)]
pub struct ClosedClip {
    pub id: i64,
    pub bytes: u64,
}

impl ClipWriter {
    pub fn new(
        camera: &str,
        data_dir: &Path,
        index: Arc<Index>,
        recipient: Recipient,
        flush_seconds: u32,
        free_space: FreeSpace,
    ) -> ClipWriter {
        ClipWriter {
            camera: camera.to_owned(),
            data_dir: data_dir.to_owned(),
            index,
            recipient,
            flush_interval: Duration::from_secs(u64::from(flush_seconds.max(1))),
            free_space,
            open: None,
        }
    }

    /// Applies one event. Returns the clip it closed, if any.
    pub fn handle(&mut self, event: ClipEvent) -> Result<Option<ClosedClip>, ClipError> {
        match event {
            ClipEvent::Start { start_us, codec, width, height, has_audio, init_segment, event } => {
                self.abandon();
                let camera = self.camera.clone();
                let new = NewClip { camera: &camera, start_us, codec: &codec, width, height, has_audio, event };
                self.start(&new, &init_segment)?;
                Ok(None)
            }
            ClipEvent::Fragment { bytes, progress, event, .. } => {
                if event {
                    self.mark_open_clip()?;
                }
                self.append(&bytes, &progress)?;
                Ok(None)
            }
            ClipEvent::MarkEvents { start_us, end_us } => {
                self.retry_if_full(|| self.index.mark_event_clips(&self.camera, start_us, end_us))?;
                Ok(None)
            }
            ClipEvent::End { progress } => self.finish(&progress),
            ClipEvent::Gap { start_us, end_us, reason } => {
                self.retry_if_full(|| self.index.insert_gap(&self.camera, start_us, end_us, &reason))?;
                Ok(None)
            }
        }
    }

    /// The open clip holds an event: one UPDATE, the first time only.
    fn mark_open_clip(&mut self) -> Result<(), ClipError> {
        let Some(id) = self.open.as_ref().filter(|open| !open.event).map(|open| open.id) else { return Ok(()) };
        self.retry_if_full(|| self.index.mark_event_clip(id))?;
        if let Some(open) = self.open.as_mut() {
            open.event = true;
        }
        Ok(())
    }

    fn start(&mut self, new: &NewClip<'_>, init_segment: &[u8]) -> Result<(), ClipError> {
        let camera = self.camera.clone();
        let (id, rel_path) =
            self.retry_if_full(|| self.index.insert_open_clip(new, |id| clip_rel_path(&camera, new.start_us, id)))?;
        crate::fault::crash_point("clip-row-inserted");
        let final_path = self.data_dir.join(&rel_path);
        let dir = final_path.parent().unwrap_or(&self.data_dir).to_owned();
        create_dir_durable(&dir).map_err(io_err(&dir))?;
        let part = part_path(&final_path);
        let raw = std::fs::OpenOptions::new().write(true).create_new(true).open(&part).map_err(io_err(&part))?;
        let sync_handle = raw.try_clone().map_err(io_err(&part))?;
        let retrying = SpaceRetryingFile { file: raw, free_space: self.free_space.clone() };
        let mut file = EncryptingFile::new(retrying, sync_handle, &part, &self.recipient)?;
        file.write_all(init_segment).map_err(io_err(&part))?;
        sync_dir(&dir).map_err(io_err(&dir))?;
        tracing::debug!(camera = %self.camera, clip = id, "clip started");
        let now = Instant::now();
        self.open = Some(OpenFile {
            id,
            final_path,
            file,
            chunk_started: now,
            last_sync: now,
            start_us: new.start_us,
            event: new.event,
        });
        Ok(())
    }

    fn append(&mut self, bytes: &[u8], progress: &ClipProgress) -> Result<(), ClipError> {
        let Some(open) = self.open.as_mut() else { return Ok(()) };
        let part = open.file.path().to_owned();
        let chunks_before = open.file.plaintext_len() / CHUNK_SIZE;
        open.file.write_all(bytes).map_err(io_err(&part))?;
        if open.file.plaintext_len() / CHUNK_SIZE != chunks_before {
            open.chunk_started = Instant::now();
        }
        // Video age holds back in its chunk buffer is lost on a crash: once the oldest of it is
        // half the flush interval old, pad past the chunk boundary to push it out. This runs
        // once per fragment, about once a second — as often as the default threshold — so
        // arrival jitter must not decide it: a fragment missed by a millisecond would otherwise
        // stay in memory a whole second more (measured in tests/power_cut.rs).
        if open.chunk_started.elapsed() + PADDING_CHECK_JITTER >= self.flush_interval / 2 {
            let padding = crate::mux::free_box(open.file.flush_padding_len())
                .map_err(|e| io_err(&part)(io::Error::other(e.to_string())))?;
            open.file.write_all(&padding).map_err(io_err(&part))?;
            open.chunk_started = Instant::now();
        }
        if open.last_sync.elapsed() >= self.flush_interval {
            open.file.sync_data().map_err(io_err(&part))?;
            open.last_sync = Instant::now();
            let (id, stats) = (open.id, stats(progress, open.file.bytes_written()));
            self.retry_if_full(|| self.index.update_open_clip(id, &stats))?;
        }
        Ok(())
    }

    fn finish(&mut self, progress: &ClipProgress) -> Result<Option<ClosedClip>, ClipError> {
        let Some(open) = self.open.take() else { return Ok(None) };
        let part = open.file.path().to_owned();
        if progress.frames == 0 {
            // Nothing worth keeping: remove the row's file, then the row.
            drop(open.file);
            remove_if_exists(&part)?;
            self.index.delete_clip_row(open.id)?;
            return Ok(None);
        }
        let bytes = open.file.finish()?;
        crate::fault::crash_point("clip-finished");
        std::fs::rename(&part, &open.final_path).map_err(io_err(&open.final_path))?;
        let dir = open.final_path.parent().unwrap_or(&self.data_dir);
        sync_dir(dir).map_err(io_err(dir))?;
        crate::fault::crash_point("clip-renamed");
        self.retry_if_full(|| self.index.close_clip(open.id, &stats(progress, bytes)))?;
        tracing::info!(
            camera = %self.camera,
            clip = open.id,
            seconds = format!("{:.2}", progress.duration_90k as f64 / 90_000.0),
            frames = progress.frames,
            bytes,
            start = %crate::time::format_us(open.start_us),
            "clip closed"
        );
        Ok(Some(ClosedClip { id: open.id, bytes }))
    }

    /// Runs an index update, and once more after freeing space if the disk was full.
    fn retry_if_full<T>(&self, op: impl Fn() -> Result<T, DbError>) -> Result<T, DbError> {
        match op() {
            Err(e) if e.is_disk_full() => {
                tracing::warn!(camera = %self.camera, "disk full while updating the index; purging");
                (self.free_space)();
                op()
            }
            other => other,
        }
    }

    /// Drops the open clip without finishing it: its `.part` file and `open` row stay, and
    /// start-up recovery keeps every complete fragment. Used after a write error, and if a
    /// clip is still open when the writer stops (which a clean shutdown never leaves).
    pub fn abandon(&mut self) {
        if let Some(open) = self.open.take() {
            tracing::warn!(camera = %self.camera, clip = open.id, "clip left unfinished for recovery");
        }
    }
}

fn stats(progress: &ClipProgress, bytes: u64) -> ClipStats {
    ClipStats {
        end_us: progress.end_us,
        duration_90k: progress.duration_90k,
        bytes: bytes as i64,
        frames: progress.frames,
        keyframes: progress.keyframes,
    }
}

pub fn remove_if_exists(path: &Path) -> Result<(), ClipError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_documented_layout() {
        // 2026-11-24T10:00:00Z
        let start_us = 1_795_514_400_000_000;
        assert_eq!(clip_rel_path("front-door", start_us, 42), "clips/front-door/2026-11-24/42.mp4.age");
        assert_eq!(part_path(Path::new("/d/42.mp4.age")), Path::new("/d/42.mp4.age.part"));
    }
}
