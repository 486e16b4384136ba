//! The media helper: every use of libav (ffmpeg-next) — decoding frames for motion detection,
//! turning keyframes into JPEG snapshots and thumbnails, encoding the demo camera's test
//! pattern — runs in a separate process, `hearth-media`, which the hub starts when it needs
//! one and talks to over pipes ([`wire`]). The `hearth` binary itself does not link libav at
//! all (the packaging test checks its ELF `NEEDED` list).
//!
//! Why a process, not a thread:
//! - memory: libavcodec and the ~90 libraries it pulls in cost ~15 MiB of resident memory the
//!   moment they are loaded. A hub that only records never needs them, and recording is what a
//!   Raspberry Pi must fit as many cameras as possible into;
//! - isolation: a decoder parses bytes that come straight from a camera, the classic attack
//!   surface of media software. In its own process, with an empty environment and nothing but
//!   two pipes, a decoder crash costs one snapshot or restarts motion detection; it never
//!   takes the recordings, the index, the sessions or the unlocked key with it.
//!
//! Jobs: `snapshot` (one keyframe in, one JPEG out) and `pattern` (settings in, encoded test
//! pattern out) are one process per call, bounded by [`Media`]'s job limit and a timeout;
//! `motion` is one long-lived process per camera, supervised by [`crate::motion`].

pub mod helper;
pub mod wire;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::demo::{EncodedFrame, EncodedLoop, PatternOptions};

/// The helper's file name, installed next to `hearth` or in `../libexec/hearth/`.
pub const PROGRAM: &str = "hearth-media";
/// Overrides where the helper is looked for (packagers, tests).
pub const PROGRAM_ENV: &str = "HEARTH_MEDIA";
/// The log filter, shared with `hearth`.
pub const LOG_ENV: &str = "HEARTH_LOG";
/// A snapshot is one keyframe: far less than this even at 4K on a Pi.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(15);
/// Encoding the demo's test pattern takes seconds; minutes on a Pi at 1080p.
const PATTERN_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("cannot start the media helper {program}: {source} (it is installed with hearth; set {PROGRAM_ENV} to its path)")]
    Start { program: PathBuf, source: std::io::Error },
    #[error("talking to the media helper: {0}")]
    Io(#[from] std::io::Error),
    #[error("the media helper did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Failed(String),
    #[error("the media helper sent {0}")]
    Protocol(&'static str),
}

/// How the hub reaches its media helper. Cheap to clone; one per service.
#[derive(Clone, Debug)]
pub struct Media {
    program: Arc<PathBuf>,
    /// Bounds the short-lived helpers running at once (a grid of snapshots, a burst of events).
    jobs: Arc<Semaphore>,
}

/// Which helper job to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    Snapshot,
    Motion,
    Pattern,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Snapshot => "snapshot",
            Job::Motion => "motion",
            Job::Pattern => "pattern",
        }
    }

    pub fn from_name(name: &str) -> Option<Job> {
        [Job::Snapshot, Job::Motion, Job::Pattern].into_iter().find(|j| j.name() == name)
    }
}

impl Media {
    /// Finds the helper: `$HEARTH_MEDIA` if set (and then only there), else next to the
    /// running binary, else in `../libexec/hearth/` (the packaged layout), else one directory
    /// up (where cargo puts binaries relative to tests and examples). A missing helper is
    /// reported when a job starts.
    pub fn locate() -> Media {
        if let Some(path) = std::env::var_os(PROGRAM_ENV) {
            return Media::at(PathBuf::from(path));
        }
        let exe_dir = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf));
        let mut candidates = Vec::new();
        if let Some(dir) = &exe_dir {
            candidates.push(dir.join(PROGRAM));
            candidates.push(dir.join("../libexec/hearth").join(PROGRAM));
            candidates.push(dir.join("..").join(PROGRAM));
        }
        let program = candidates
            .iter()
            .find(|p| p.is_file())
            .or(candidates.first())
            .cloned()
            .unwrap_or_else(|| PathBuf::from(PROGRAM));
        Media::at(program)
    }

    /// A helper at a known path.
    pub fn at(program: PathBuf) -> Media {
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        Media { program: Arc::new(program), jobs: Arc::new(Semaphore::new(parallel)) }
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    pub fn is_installed(&self) -> bool {
        self.program.is_file()
    }

    /// The helper's command line for `job`: an empty environment (it needs nothing of the
    /// hub's, and must not see a passphrase file path or credentials) but for how to log.
    fn command(&self, job: Job) -> std::process::Command {
        let mut command = std::process::Command::new(self.program.as_path());
        command.arg(job.name()).env_clear();
        for kept in [LOG_ENV, "JOURNAL_STREAM"] {
            if let Some(value) = std::env::var_os(kept) {
                command.env(kept, value);
            }
        }
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        command
    }

    /// Starts a long-lived job (motion); the caller owns the child and its pipes.
    pub fn start(&self, job: Job) -> Result<std::process::Child, MediaError> {
        self.command(job).spawn().map_err(|source| MediaError::Start { program: self.program.to_path_buf(), source })
    }

    /// Runs a one-shot job: writes `input`, returns what the helper wrote (at most `limit`
    /// bytes: a misbehaving helper cannot make the hub buffer without bound).
    async fn run(&self, job: Job, input: Vec<u8>, timeout: Duration, limit: u64) -> Result<Vec<u8>, MediaError> {
        let _permit = self.jobs.acquire().await.map_err(|_| MediaError::Protocol("nothing (shut down)"))?;
        let mut command = tokio::process::Command::from(self.command(job));
        command.kill_on_drop(true);
        let mut child =
            command.spawn().map_err(|source| MediaError::Start { program: self.program.to_path_buf(), source })?;
        let mut stdin = child.stdin.take().ok_or(MediaError::Protocol("no stdin"))?;
        let mut stdout = child.stdout.take().ok_or(MediaError::Protocol("no stdout"))?.take(limit);
        let exchange = async {
            let write = async {
                // A helper that fails early closes its end; its error message says why.
                let _ = stdin.write_all(&input).await;
                drop(stdin);
            };
            let mut output = Vec::new();
            let (_, read) = tokio::join!(write, stdout.read_to_end(&mut output));
            read?;
            if output.len() as u64 >= limit {
                let _ = child.start_kill(); // it would block on a pipe nobody reads
            }
            child.wait().await?;
            Ok::<_, MediaError>(output)
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| MediaError::Timeout(timeout))?
    }

    /// Decodes one keyframe and returns it as a JPEG at most `max_width` pixels wide.
    pub async fn keyframe_to_jpeg(
        &self,
        sample_entry: &[u8],
        sample: &[u8],
        max_width: u32,
    ) -> Result<Vec<u8>, MediaError> {
        let mut input = Vec::with_capacity(sample.len() + sample_entry.len() + 64);
        wire::write(&mut input, wire::CONFIG, &serde_json::to_vec(&SnapshotConfig { max_width }).unwrap_or_default())?;
        wire::write(&mut input, wire::SAMPLE_ENTRY, sample_entry)?;
        wire::write_frame(&mut input, 0, true, sample)?;
        let one_message = wire::MAX_PAYLOAD as u64 + 5;
        let output = self.run(Job::Snapshot, input, SNAPSHOT_TIMEOUT, one_message).await?;
        match wire::read(&mut &output[..])? {
            Some((wire::JPEG, jpeg)) => Ok(jpeg),
            Some((wire::ERROR, reason)) => Err(MediaError::Failed(String::from_utf8_lossy(&reason).into_owned())),
            Some(_) => Err(MediaError::Protocol("an unexpected message")),
            None => Err(MediaError::Protocol("nothing (it exited early)")),
        }
    }

    /// Draws and encodes the demo camera's test pattern.
    pub async fn encode_pattern(&self, options: &PatternOptions) -> Result<Arc<EncodedLoop>, MediaError> {
        options.validate().map_err(|e| MediaError::Failed(e.to_string()))?;
        let mut input = Vec::new();
        wire::write(&mut input, wire::CONFIG, &serde_json::to_vec(options).unwrap_or_default())?;
        // Twice the nominal size: room for the encoder's rate control, still a bound.
        let limit = u64::from(options.seconds) * options.bitrate / 4 + (1 << 20);
        let output = self.run(Job::Pattern, input, PATTERN_TIMEOUT, limit).await?;
        parse_pattern(&output).map(Arc::new)
    }
}

/// The hub's end of a long-lived helper's stdin: each message is written whole, at once (the
/// helper sees a frame as soon as it arrived), and a helper that stops reading for `timeout`
/// is reported as hung (`TimedOut`) rather than blocking its writer forever.
pub struct Pipe {
    stdin: std::process::ChildStdin,
    timeout: Duration,
}

impl Pipe {
    pub fn new(stdin: std::process::ChildStdin, timeout: Duration) -> std::io::Result<Pipe> {
        use std::os::fd::AsRawFd;
        let fd = stdin.as_raw_fd();
        // Only our end of the pipe: the helper still reads blocking.
        // SAFETY: fcntl on a descriptor we own, with flag values from libc.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Pipe { stdin, timeout })
    }

    pub fn send(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::fd::AsRawFd;
        let deadline = std::time::Instant::now() + self.timeout;
        while !bytes.is_empty() {
            match self.stdin.write(bytes) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(std::io::ErrorKind::TimedOut.into());
                    }
                    let mut fd = libc::pollfd { fd: self.stdin.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&mut fd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Settings of a snapshot job.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SnapshotConfig {
    pub max_width: u32,
}

/// Size and rate of an encoded pattern.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct PatternHeader {
    pub fps: u32,
    pub width: u32,
    pub height: u32,
}

fn parse_pattern(mut output: &[u8]) -> Result<EncodedLoop, MediaError> {
    let mut header: Option<PatternHeader> = None;
    let (mut sps, mut pps, mut frames) = (None, None, Vec::new());
    while let Some((tag, payload)) = wire::read(&mut output)? {
        match tag {
            wire::PATTERN_HEADER => {
                header = Some(serde_json::from_slice(&payload).map_err(|_| MediaError::Protocol("a bad header"))?)
            }
            wire::SPS => sps = Some(bytes::Bytes::from(payload)),
            wire::PPS => pps = Some(bytes::Bytes::from(payload)),
            wire::PICTURE => {
                let (is_keyframe, nals) = wire::parse_picture(&payload).ok_or(MediaError::Protocol("a bad picture"))?;
                frames.push(EncodedFrame { nals, is_keyframe });
            }
            wire::ERROR => return Err(MediaError::Failed(String::from_utf8_lossy(&payload).into_owned())),
            _ => return Err(MediaError::Protocol("an unexpected message")),
        }
    }
    let header = header.ok_or(MediaError::Protocol("no pattern"))?;
    Ok(EncodedLoop {
        sps: sps.ok_or(MediaError::Protocol("no SPS"))?,
        pps: pps.ok_or(MediaError::Protocol("no PPS"))?,
        frames,
        fps: header.fps,
        width: header.width,
        height: header.height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn piped(program: &str, args: &[&str]) -> std::process::Child {
        Command::new(program).args(args).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap()
    }

    #[test]
    fn a_reader_gets_every_byte_and_a_stuck_one_times_out() {
        let megabyte = vec![7u8; 1 << 20];
        let mut reader = piped("cat", &[]);
        let mut pipe = Pipe::new(reader.stdin.take().unwrap(), Duration::from_secs(10)).unwrap();
        pipe.send(&megabyte).unwrap();
        drop(pipe);
        assert!(reader.wait().unwrap().success());

        // `sleep` never reads: the pipe fills, and the writer gives up instead of hanging.
        let mut stuck = piped("sleep", &["30"]);
        let mut pipe = Pipe::new(stuck.stdin.take().unwrap(), Duration::from_millis(300)).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(pipe.send(&megabyte).unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        let _ = stuck.kill();
        let _ = stuck.wait();
    }

    #[test]
    fn a_dead_reader_is_an_error() {
        let mut gone = piped("true", &[]);
        let stdin = gone.stdin.take().unwrap();
        gone.wait().unwrap();
        let mut pipe = Pipe::new(stdin, Duration::from_secs(5)).unwrap();
        // Another test's child, forked before it exec'd, may hold the read end for a moment.
        let error = (0..200).find_map(|_| {
            let sent = pipe.send(b"anyone?");
            std::thread::sleep(Duration::from_millis(10));
            sent.err()
        });
        assert_eq!(error.map(|e| e.kind()), Some(std::io::ErrorKind::BrokenPipe));
    }

    #[tokio::test]
    async fn a_helper_that_never_stops_talking_is_cut_off() {
        // `yes snapshot` answers with an endless stream of text: bounded, refused, killed.
        let started = std::time::Instant::now();
        let err = Media::at("/usr/bin/yes".into()).keyframe_to_jpeg(b"", b"", 320).await.unwrap_err();
        assert!(matches!(err, MediaError::Io(_) | MediaError::Protocol(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    #[test]
    fn jobs_have_names_both_ways() {
        for job in [Job::Snapshot, Job::Motion, Job::Pattern] {
            assert_eq!(Job::from_name(job.name()), Some(job));
        }
        assert_eq!(Job::from_name("transcode"), None);
    }

    #[test]
    fn a_pattern_answer_is_parsed_and_garbage_refused() {
        let mut out = Vec::new();
        let header = PatternHeader { fps: 25, width: 64, height: 64 };
        wire::write(&mut out, wire::PATTERN_HEADER, &serde_json::to_vec(&header).unwrap()).unwrap();
        wire::write(&mut out, wire::SPS, b"\x67\x42\x00\x1e").unwrap();
        wire::write(&mut out, wire::PPS, b"\x68").unwrap();
        wire::write(&mut out, wire::PICTURE, &wire::picture_payload(true, &[bytes::Bytes::from_static(b"\x65")]))
            .unwrap();
        let encoded = parse_pattern(&out).unwrap();
        assert_eq!((encoded.fps, encoded.frames.len(), encoded.frames[0].is_keyframe), (25, 1, true));
        assert!(matches!(parse_pattern(&out[..out.len() - 1]), Err(MediaError::Io(_))));
        assert!(matches!(parse_pattern(&[]), Err(MediaError::Protocol(_))));
        let mut failed = Vec::new();
        wire::write(&mut failed, wire::ERROR, b"libx264 missing").unwrap();
        assert!(matches!(parse_pattern(&failed), Err(MediaError::Failed(m)) if m == "libx264 missing"));
    }
}
