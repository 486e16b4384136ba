//! Playback: serving recorded clips to the owner, decrypted on the fly and never to disk.
//!
//! This module owns reading a byte range of one clip ([`ClipBody`], blocking) and the async
//! adapters the web layer puts into HTTP bodies ([`open_clip_stream`], [`open_stream`],
//! [`OpenedClip`]). [`range`] turns `Range` headers into byte ranges; [`export`] stitches
//! clips into one continuous fragmented MP4.
//!
//! age encrypts in 64 KiB chunks, each authenticated on its own, so a seek decrypts only the
//! chunk it lands in: a browser seeking to the end of a long clip costs one or two chunks, not
//! the whole file. The plaintext length comes from age too (it authenticates the last chunk to
//! compute it), so `Content-Length` is known before the first byte is sent. Blocking file
//! I/O and decryption run on tokio's blocking pool and reach the response through a bounded
//! channel of [`STREAM_QUEUE`] chunks: memory per response is bounded whatever the clip's size
//! or the client's speed, and a client that goes away stops the decryption at the next chunk.

pub mod export;
pub mod range;

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

use crate::crypto::{self, ClipReader, CryptoError, UnlockedIdentity};
use crate::mux::MuxError;
use range::{ByteRange, RangeRequest};

/// Plaintext bytes handed to the HTTP body at a time.
pub const CHUNK_LEN: usize = 256 * 1024;
/// Chunks a response may have decrypted ahead of the client: with [`CHUNK_LEN`], 1 MiB.
pub const STREAM_QUEUE: usize = 4;

/// A response body: plaintext chunks, or the I/O error that cut the response short.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send + 'static>>;

/// Everything that can go wrong serving a clip or an export.
#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),

    #[error("reading a clip: {0}")]
    Io(#[from] io::Error),

    #[error(transparent)]
    Mux(#[from] MuxError),

    /// The caller asked for bytes the clip does not have; [`range::parse_range`] never does.
    #[error("byte range {range} is outside the clip's {len} bytes")]
    RangeOutOfBounds { range: ByteRange, len: u64 },

    #[error("export range is empty: start {start_us} µs is not before end {end_us} µs")]
    EmptyTimeRange { start_us: i64, end_us: i64 },

    /// No closed clip in the range has a key frame to start from.
    #[error("nothing recorded between {start_us} µs and {end_us} µs can be exported")]
    NothingToExport { start_us: i64, end_us: i64 },

    /// A decode time or sequence number does not fit its MP4 field (a corrupt clip, or an
    /// export of more than 4 billion fragments).
    #[error("{0} does not fit in the exported MP4")]
    Overflow(&'static str),

    /// An async adapter was called outside a tokio runtime.
    #[error("playback needs a tokio runtime")]
    NoRuntime,

    /// The blocking task died (panicked or was cancelled at shutdown).
    #[error("playback worker failed: {0}")]
    Worker(String),
}

impl PlaybackError {
    /// For HTTP bodies, whose streams carry `io::Error`s.
    fn into_io(self) -> io::Error {
        match self {
            PlaybackError::Io(error) => error,
            other => io::Error::other(other),
        }
    }
}

/// One clip's plaintext, ready to be read by range. `R` is the decrypting reader: a
/// [`ClipReader`] in production, anything seekable in tests.
pub struct ClipBody<R = ClipReader> {
    reader: R,
    len: u64,
}

impl ClipBody<ClipReader> {
    /// Opens and authenticates the clip at `path` (blocking: it reads the header and the
    /// last chunk).
    pub fn open(path: &Path, identity: &UnlockedIdentity) -> Result<Self, PlaybackError> {
        ClipBody::from_reader(crypto::open_clip(path, identity)?)
    }
}

impl<R: Read + Seek> ClipBody<R> {
    /// Learns the plaintext length by seeking to the end. For age that authenticates the last
    /// chunk, so a truncated or tampered file fails here rather than halfway through a response.
    pub fn from_reader(mut reader: R) -> Result<Self, PlaybackError> {
        let len = reader.seek(SeekFrom::End(0))?;
        reader.seek(SeekFrom::Start(0))?;
        Ok(ClipBody { reader, len })
    }

    /// Plaintext bytes in the clip.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes of `range`, `chunk` bytes at a time (the last chunk may be shorter). A range
    /// outside the clip yields one [`PlaybackError::RangeOutOfBounds`]; after any error the
    /// iterator ends.
    pub fn read_range(self, range: ByteRange, chunk: usize) -> RangeChunks<R> {
        let state = if range.end() < self.len { ChunksState::Unpositioned } else { ChunksState::OutOfBounds(self.len) };
        RangeChunks { reader: self.reader, range, next: range.start(), chunk: chunk.max(1), state }
    }
}

/// Iterator over a range of a clip; see [`ClipBody::read_range`].
pub struct RangeChunks<R> {
    reader: R,
    range: ByteRange,
    /// Position of the next byte to yield.
    next: u64,
    chunk: usize,
    state: ChunksState,
}

enum ChunksState {
    /// The seek is deferred to the first `next()`, so building the iterator does no I/O.
    Unpositioned,
    Reading,
    OutOfBounds(u64),
    Done,
}

impl<R: Read + Seek> RangeChunks<R> {
    fn read_chunk(&mut self) -> Result<Vec<u8>, PlaybackError> {
        if matches!(self.state, ChunksState::Unpositioned) {
            self.reader.seek(SeekFrom::Start(self.next))?;
            self.state = ChunksState::Reading;
        }
        // `next <= end` here, and `end < len <= u64::MAX`, so this cannot overflow.
        let remaining = (self.range.end() - self.next).saturating_add(1);
        let len = usize::try_from(remaining).map_or(self.chunk, |remaining| remaining.min(self.chunk));
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf)?;
        self.next = self.next.saturating_add(len as u64);
        Ok(buf)
    }
}

impl<R: Read + Seek> Iterator for RangeChunks<R> {
    type Item = Result<Vec<u8>, PlaybackError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.state {
            ChunksState::Done => return None,
            ChunksState::OutOfBounds(len) => {
                self.state = ChunksState::Done;
                return Some(Err(PlaybackError::RangeOutOfBounds { range: self.range, len }));
            }
            ChunksState::Unpositioned | ChunksState::Reading => {}
        }
        if self.next > self.range.end() {
            self.state = ChunksState::Done;
            return None;
        }
        let result = self.read_chunk();
        if result.is_err() {
            self.state = ChunksState::Done;
        }
        Some(result)
    }
}

/// A clip opened for streaming: its length is known, no byte has been sent yet.
pub struct OpenedClip<R = ClipReader> {
    body: ClipBody<R>,
}

impl OpenedClip<ClipReader> {
    /// Opens the clip on the blocking pool (opening reads and authenticates its last chunk).
    pub async fn open(path: PathBuf, identity: Arc<UnlockedIdentity>) -> Result<Self, PlaybackError> {
        let body = run_blocking(move || ClipBody::open(&path, &identity)).await?;
        Ok(OpenedClip { body })
    }
}

impl<R: Read + Seek + Send + 'static> OpenedClip<R> {
    pub fn from_body(body: ClipBody<R>) -> Self {
        OpenedClip { body }
    }

    /// Plaintext length: `Content-Length` of a 200, the total of a `Content-Range`.
    pub fn len(&self) -> u64 {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Streams `range` (everything when `None`). A range outside the clip is refused here,
    /// before any header has gone out.
    pub fn stream(self, range: Option<ByteRange>) -> Result<ByteStream, PlaybackError> {
        let len = self.body.len();
        let range = match range {
            Some(range) if range.end() >= len => return Err(PlaybackError::RangeOutOfBounds { range, len }),
            Some(range) => range,
            None => match ByteRange::whole(len) {
                Some(range) => range,
                None => return Ok(Box::pin(futures::stream::empty())),
            },
        };
        let chunks = self.body.read_range(range, CHUNK_LEN);
        spawn_producer(move |sink| {
            for chunk in chunks {
                sink.send(chunk.map(Bytes::from))?;
            }
            Some(())
        })
    }
}

/// Opens a clip and streams `range` of it (all of it when `None`): the plaintext length,
/// known before the first byte, and the body.
pub async fn open_stream(
    path: PathBuf,
    identity: Arc<UnlockedIdentity>,
    range: Option<ByteRange>,
) -> Result<(u64, ByteStream), PlaybackError> {
    let clip = OpenedClip::open(path, identity).await?;
    let len = clip.len();
    Ok((len, clip.stream(range)?))
}

/// Everything a clip response needs from a `Range` header value (absent: `None`): the clip's
/// total length, the decision ([`RangeRequest`]), and the body to send, which is the range
/// for `Partial`, the whole clip for `Full`/`Ignored` and empty for `Unsatisfiable`.
pub async fn open_clip_stream(
    path: PathBuf,
    identity: Arc<UnlockedIdentity>,
    range_header: Option<String>,
) -> Result<(u64, RangeRequest, ByteStream), PlaybackError> {
    let clip = OpenedClip::open(path, identity).await?;
    let len = clip.len();
    let request = range::range_request(range_header.as_deref(), len);
    let stream = match request {
        RangeRequest::Partial(range) => clip.stream(Some(range))?,
        RangeRequest::Full | RangeRequest::Ignored => clip.stream(None)?,
        RangeRequest::Unsatisfiable => Box::pin(futures::stream::empty()),
    };
    Ok((len, request, stream))
}

/// Runs blocking work on tokio's blocking pool.
async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PlaybackError> + Send + 'static,
) -> Result<T, PlaybackError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| PlaybackError::NoRuntime)?;
    handle.spawn_blocking(work).await.map_err(|e| PlaybackError::Worker(e.to_string()))?
}

/// The sending half a blocking producer writes chunks into.
struct ChunkSink(mpsc::Sender<Result<Bytes, io::Error>>);

impl ChunkSink {
    /// Sends a chunk, waiting while the client is [`STREAM_QUEUE`] chunks behind. `None`
    /// means stop: the client has gone, or `item` was an error (which ends the body).
    fn send(&self, item: Result<Bytes, PlaybackError>) -> Option<()> {
        let failed = item.is_err();
        self.0.blocking_send(item.map_err(PlaybackError::into_io)).ok()?;
        (!failed).then_some(())
    }
}

/// Runs `produce` on the blocking pool and returns what it sends as a stream. Dropping the
/// stream closes the channel, so the producer's next `send` returns `None` and it stops.
fn spawn_producer(
    produce: impl FnOnce(&ChunkSink) -> Option<()> + Send + 'static,
) -> Result<ByteStream, PlaybackError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| PlaybackError::NoRuntime)?;
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    handle.spawn_blocking(move || {
        let sink = ChunkSink(tx);
        // A panic would otherwise just close the channel, and a chunked body (an export) would
        // end looking complete: turn it into an error the client sees as a failed download.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| produce(&sink))).is_err() {
            let _ = sink.send(Err(PlaybackError::Worker("the producer panicked".into())));
        }
    });
    Ok(receiver_stream(rx))
}

/// An `mpsc::Receiver` as a `Stream` (tokio_stream would do it, but is not a dependency).
fn receiver_stream(rx: mpsc::Receiver<Result<Bytes, io::Error>>) -> ByteStream {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

/// An already-failed body, for adapters that cannot return a `Result`.
fn failed_stream(error: PlaybackError) -> ByteStream {
    Box::pin(futures::stream::once(async move { Err(error.into_io()) }))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! One identity for every playback test: unlocking it costs a second of scrypt.

    use std::sync::{Arc, OnceLock};

    use age::secrecy::SecretString;

    use crate::crypto::{self, Recipient, UnlockedIdentity};

    pub struct TestKey {
        pub identity: Arc<UnlockedIdentity>,
        pub recipient: Recipient,
        /// Holds the identity file's directory for the life of the test binary.
        _dir: tempfile::TempDir,
    }

    pub fn test_key() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("identity.age");
            let passphrase = SecretString::from("playback test passphrase".to_owned());
            let recipient = crypto::create_identity(&path, &passphrase).unwrap();
            let identity = crypto::unlock_identity(&path, &passphrase, &recipient).unwrap();
            TestKey { identity: Arc::new(identity), recipient, _dir: dir }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::test_key;
    use super::*;
    use crate::crypto::{EncryptingFile, Recipient, CHUNK_SIZE};
    use futures::StreamExt;
    use std::fs::File;
    use std::io::BufReader;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    fn pattern(len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect()
    }

    fn encrypt(dir: &Path, name: &str, data: &[u8], recipient: &Recipient) -> PathBuf {
        let path = dir.join(name);
        let mut file = EncryptingFile::create(&path, recipient).unwrap();
        file.write_all(data).unwrap();
        file.finish().unwrap();
        path
    }

    fn read_all<R: Read + Seek>(body: ClipBody<R>, range: ByteRange, chunk: usize) -> Vec<u8> {
        let chunks: Vec<Vec<u8>> = body.read_range(range, chunk).collect::<Result<_, _>>().unwrap();
        assert!(chunks.iter().all(|c| c.len() <= chunk.max(1) && !c.is_empty()));
        chunks.concat()
    }

    #[test]
    fn ranges_of_an_encrypted_clip_decrypt_exactly() {
        let key = test_key();
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(5 * CHUNK_SIZE as usize + 1234);
        let path = encrypt(dir.path(), "clip.mp4.age", &data, &key.recipient);
        let len = data.len() as u64;
        let chunk = CHUNK_SIZE as u64;
        let cases = [
            (0, 99),                      // start
            (0, len - 1),                 // everything
            (chunk - 10, 3 * chunk + 10), // middle, across chunk boundaries
            (2 * chunk, 2 * chunk),       // one byte at a boundary
            (len - 1000, len - 1),        // suffix
            (len - 1, len - 1),           // last byte
        ];
        for (start, end) in cases {
            for read_chunk in [1000, CHUNK_LEN, 7] {
                if read_chunk == 7 && end - start > 100_000 {
                    continue;
                }
                let body = ClipBody::open(&path, &key.identity).unwrap();
                assert_eq!(body.len(), len);
                let got = read_all(body, ByteRange::new(start, end).unwrap(), read_chunk);
                assert_eq!(got, &data[start as usize..=end as usize], "{start}-{end} by {read_chunk}");
            }
        }
    }

    #[test]
    fn ranges_outside_the_clip_are_one_error() {
        let body = ClipBody::from_reader(io::Cursor::new(pattern(100))).unwrap();
        let mut chunks = body.read_range(ByteRange::new(50, 100).unwrap(), 10);
        assert!(matches!(chunks.next(), Some(Err(PlaybackError::RangeOutOfBounds { len: 100, .. }))));
        assert!(chunks.next().is_none());
        let body = ClipBody::from_reader(io::Cursor::new(pattern(100))).unwrap();
        assert_eq!(read_all(body, ByteRange::new(90, 99).unwrap(), 0), pattern(100)[90..], "chunk 0 reads as 1");
    }

    #[test]
    fn a_tampered_last_chunk_fails_at_open() {
        let key = test_key();
        let dir = tempfile::tempdir().unwrap();
        let path = encrypt(dir.path(), "clip", &pattern(100_000), &key.recipient);
        let mut raw = std::fs::read(&path).unwrap();
        let last = raw.len() - 5;
        raw[last] ^= 1;
        std::fs::write(&path, raw).unwrap();
        assert!(ClipBody::open(&path, &key.identity).is_err());
        let missing = dir.path().join("missing");
        assert!(matches!(ClipBody::open(&missing, &key.identity), Err(PlaybackError::Crypto(_))));
    }

    /// Counts ciphertext bytes read, to show seeks don't decrypt from the start.
    struct Counting<R> {
        inner: R,
        read: Arc<AtomicU64>,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.fetch_add(n as u64, Ordering::Relaxed);
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn the_end_of_a_large_clip_is_read_without_decrypting_the_start() {
        let identity = age::x25519::Identity::generate();
        let recipient = Recipient::parse(&identity.to_public().to_string()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(20 * 1024 * 1024);
        let path = encrypt(dir.path(), "big", &data, &recipient);

        let read = Arc::new(AtomicU64::new(0));
        let file = Counting { inner: File::open(&path).unwrap(), read: read.clone() };
        let decryptor = age::Decryptor::new(BufReader::new(file)).unwrap();
        let reader = decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity)).unwrap();
        let body = ClipBody::from_reader(reader).unwrap();
        let len = body.len();
        assert_eq!(len, data.len() as u64);
        let mut chunks = body.read_range(ByteRange::new(len - 1024, len - 1).unwrap(), CHUNK_LEN);
        let first = chunks.next().unwrap().unwrap();
        assert_eq!(first, &data[data.len() - 1024..]);
        assert!(chunks.next().is_none());
        let ciphertext_read = read.load(Ordering::Relaxed);
        assert!(ciphertext_read < 200 * 1024, "read {ciphertext_read} bytes of ciphertext for the last 1 KiB");
    }

    #[tokio::test]
    async fn streams_carry_ranges_and_whole_clips() {
        let key = test_key();
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(3 * CHUNK_LEN + 77);
        let path = encrypt(dir.path(), "clip", &data, &key.recipient);
        let collect = |stream: ByteStream| async move {
            let chunks: Vec<Bytes> = stream.map(|item| item.unwrap()).collect().await;
            assert!(chunks.iter().all(|chunk| chunk.len() <= CHUNK_LEN));
            chunks.concat()
        };

        let (len, stream) = open_stream(path.clone(), key.identity.clone(), None).await.unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(collect(stream).await, data);

        let range = ByteRange::new(CHUNK_LEN as u64 - 3, 2 * CHUNK_LEN as u64 + 5).unwrap();
        let (_, stream) = open_stream(path.clone(), key.identity.clone(), Some(range)).await.unwrap();
        assert_eq!(collect(stream).await, &data[CHUNK_LEN - 3..=2 * CHUNK_LEN + 5]);

        let beyond = ByteRange::new(0, len).unwrap();
        let refused = open_stream(path.clone(), key.identity.clone(), Some(beyond)).await;
        assert!(matches!(refused, Err(PlaybackError::RangeOutOfBounds { .. })));

        let header = Some("bytes=-10".to_owned());
        let (total, request, stream) = open_clip_stream(path.clone(), key.identity.clone(), header).await.unwrap();
        assert_eq!((total, request), (len, RangeRequest::Partial(ByteRange::new(len - 10, len - 1).unwrap())));
        assert_eq!(collect(stream).await, &data[data.len() - 10..]);

        for (header, expected) in [(None, RangeRequest::Full), (Some("pages=1-2".to_owned()), RangeRequest::Ignored)] {
            let (_, request, stream) = open_clip_stream(path.clone(), key.identity.clone(), header).await.unwrap();
            assert_eq!(request, expected);
            assert_eq!(collect(stream).await, data);
        }
        let header = Some(format!("bytes={len}-"));
        let (_, request, stream) = open_clip_stream(path.clone(), key.identity.clone(), header).await.unwrap();
        assert_eq!(request, RangeRequest::Unsatisfiable);
        assert!(collect(stream).await.is_empty());
    }

    #[tokio::test]
    async fn an_empty_clip_streams_nothing() {
        let key = test_key();
        let dir = tempfile::tempdir().unwrap();
        let path = encrypt(dir.path(), "empty", &[], &key.recipient);
        let (len, mut stream) = open_stream(path.clone(), key.identity.clone(), None).await.unwrap();
        assert_eq!(len, 0);
        assert!(stream.next().await.is_none());
        let (_, request, _) = open_clip_stream(path, key.identity.clone(), Some("bytes=0-".into())).await.unwrap();
        assert_eq!(request, RangeRequest::Unsatisfiable);
    }

    /// An endless reader that flags when it is dropped, i.e. when the producer has stopped.
    struct Endless {
        position: u64,
        dropped: Arc<AtomicBool>,
        read: Arc<AtomicU64>,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(7);
            self.read.fetch_add(buf.len() as u64, Ordering::Relaxed);
            self.position += buf.len() as u64;
            Ok(buf.len())
        }
    }

    impl Seek for Endless {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.position = match pos {
                SeekFrom::Start(at) => at,
                SeekFrom::End(_) => u64::MAX / 2,
                SeekFrom::Current(delta) => self.position.saturating_add_signed(delta),
            };
            Ok(self.position)
        }
    }

    impl Drop for Endless {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_client_going_away_stops_the_producer_and_memory_stays_bounded() {
        let dropped = Arc::new(AtomicBool::new(false));
        let read = Arc::new(AtomicU64::new(0));
        let reader = Endless { position: 0, dropped: dropped.clone(), read: read.clone() };
        let clip = OpenedClip::from_body(ClipBody::from_reader(reader).unwrap());
        let mut stream = clip.stream(None).unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap().len(), CHUNK_LEN);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let ahead = read.load(Ordering::Relaxed);
        assert!(ahead <= ((STREAM_QUEUE + 2) * CHUNK_LEN) as u64, "producer ran {ahead} bytes ahead");
        drop(stream);
        for _ in 0..100 {
            if dropped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the producer kept running after the stream was dropped");
    }

    #[test]
    fn adapters_outside_a_runtime_fail_cleanly() {
        let clip = OpenedClip::from_body(ClipBody::from_reader(io::Cursor::new(pattern(10))).unwrap());
        assert!(matches!(clip.stream(None), Err(PlaybackError::NoRuntime)));
    }
}
