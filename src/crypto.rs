//! Keys and encryption: the hub's age key pair, passphrases, and the encrypting and
//! decrypting streams every clip passes through.
//!
//! The hub records with the **public** key only ([`Recipient`]). The private key
//! ([`UnlockedIdentity`]) exists on disk solely as `identity.age`, itself age-encrypted with the
//! owner's passphrase (scrypt), and in memory only while the owner has unlocked playback. So a
//! stolen SD card or disk yields ciphertext and nothing else.
//!
//! [`EncryptingFile`] wraps age's STREAM writer and keeps count of plaintext bytes, because age
//! only writes a 64 KiB chunk to disk once the next byte arrives: the clip writer uses
//! [`EncryptingFile::flush_padding_len`] to pad with an MP4 `free` box just past a chunk
//! boundary, which pushes every real byte to disk and bounds what a crash can lose.
//! [`open_clip`] and [`AuthenticatedPrefix`] read clips back; the latter turns "the file ends
//! early or a chunk fails to authenticate" into a clean end of stream, which is exactly what
//! crash recovery needs: every chunk that authenticates, nothing else.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};

/// age's STREAM chunk size: plaintext is encrypted and authenticated in units of this many bytes.
pub const CHUNK_SIZE: u64 = 64 * 1024;

/// The name systemd's `LoadCredential=` gives the passphrase inside `$CREDENTIALS_DIRECTORY`.
pub const PASSPHRASE_CREDENTIAL: &str = "hearth-passphrase";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("no passphrase available: set HEARTH_PASSPHRASE_FILE, provide the `{PASSPHRASE_CREDENTIAL}` systemd credential, or run from a terminal")]
    NoPassphrase,
    #[error("cannot read passphrase file {path}: {source}")]
    PassphraseFile { path: PathBuf, source: io::Error },
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("wrong passphrase for {0}")]
    WrongPassphrase(PathBuf),
    #[error("identity file {path}: {message}")]
    BadIdentity { path: PathBuf, message: String },
    #[error("the identity does not match the configured recipient; was identity.age replaced?")]
    RecipientMismatch,
    #[error("`{0}` is not an age X25519 recipient")]
    BadRecipient(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: cannot decrypt: {message}")]
    Decrypt { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CryptoError + '_ {
    move |source| CryptoError::Io { path: path.to_owned(), source }
}

/// The public key clips are encrypted to.
#[derive(Clone)]
pub struct Recipient(age::x25519::Recipient);

impl Recipient {
    pub fn parse(text: &str) -> Result<Recipient, CryptoError> {
        text.parse().map(Recipient).map_err(|_| CryptoError::BadRecipient(text.to_owned()))
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The private key, decrypted. Lives in memory only; never printed.
pub struct UnlockedIdentity(age::x25519::Identity);

impl std::fmt::Debug for UnlockedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnlockedIdentity(<secret>)")
    }
}

impl UnlockedIdentity {
    /// Wraps an identity already in memory (tests, and keys decrypted elsewhere).
    pub fn from_identity(identity: age::x25519::Identity) -> UnlockedIdentity {
        UnlockedIdentity(identity)
    }

    pub fn recipient(&self) -> Recipient {
        Recipient(self.0.to_public())
    }
}

/// Encrypts a small in-memory blob (an event thumbnail) to `recipient`.
pub fn encrypt_bytes(plaintext: &[u8], recipient: &Recipient) -> Result<Vec<u8>, CryptoError> {
    let fail = |e: String| CryptoError::Io { path: PathBuf::from("<memory>"), source: io::Error::other(e) };
    let encryptor = age::Encryptor::with_recipients(std::iter::once(&recipient.0 as &dyn age::Recipient))
        .map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::with_capacity(plaintext.len() + 256);
    let mut writer = encryptor.wrap_output(&mut out).map_err(|e| fail(e.to_string()))?;
    writer.write_all(plaintext).map_err(|e| fail(e.to_string()))?;
    writer.finish().map_err(|e| fail(e.to_string()))?;
    Ok(out)
}

/// Decrypts what [`encrypt_bytes`] made.
pub fn decrypt_bytes(ciphertext: &[u8], identity: &UnlockedIdentity) -> Result<Vec<u8>, CryptoError> {
    let fail = |e: String| CryptoError::Decrypt { path: PathBuf::from("<memory>"), message: e };
    let decryptor = age::Decryptor::new(ciphertext).map_err(|e| fail(e.to_string()))?;
    let mut reader =
        decryptor.decrypt(std::iter::once(&identity.0 as &dyn age::Identity)).map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::new();
    io::Read::read_to_end(&mut reader, &mut out).map_err(|e| fail(e.to_string()))?;
    Ok(out)
}

/// Creates a fresh key pair and writes the private half, encrypted with `passphrase`, to
/// `identity_file` (mode 0600, never overwriting). Returns the recipient for the config.
pub fn create_identity(identity_file: &Path, passphrase: &SecretString) -> Result<Recipient, CryptoError> {
    if passphrase.expose_secret().is_empty() {
        return Err(CryptoError::EmptyPassphrase);
    }
    let identity = age::x25519::Identity::generate();
    let recipient = Recipient(identity.to_public());
    let mut plaintext =
        format!("# hearth identity, created {}\n# public key: {}\n", chrono::Utc::now().to_rfc3339(), recipient);
    plaintext.push_str(identity.to_string().expose_secret());
    plaintext.push('\n');

    let encryptor = age::Encryptor::with_user_passphrase(passphrase.clone());
    let file = create_private_file(identity_file)?;
    let mut writer = encryptor.wrap_output(file).map_err(io_err(identity_file))?;
    writer.write_all(plaintext.as_bytes()).map_err(io_err(identity_file))?;
    let file = writer.finish().map_err(io_err(identity_file))?;
    file.sync_all().map_err(io_err(identity_file))?;
    Ok(recipient)
}

fn create_private_file(path: &Path) -> Result<File, CryptoError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_err(path))
}

/// Decrypts `identity_file` with `passphrase` and checks it matches the configured recipient.
/// Slow on purpose (scrypt): call it from a blocking context.
pub fn unlock_identity(
    identity_file: &Path,
    passphrase: &SecretString,
    expected: &Recipient,
) -> Result<UnlockedIdentity, CryptoError> {
    let file = File::open(identity_file).map_err(io_err(identity_file))?;
    let bad = |message: String| CryptoError::BadIdentity { path: identity_file.to_owned(), message };
    let decryptor = age::Decryptor::new(BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
    if !decryptor.is_scrypt() {
        return Err(bad("is not passphrase-encrypted".into()));
    }
    let scrypt = age::scrypt::Identity::new(passphrase.clone());
    let mut reader = decryptor.decrypt(std::iter::once(&scrypt as &dyn age::Identity)).map_err(|e| match e {
        age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
            CryptoError::WrongPassphrase(identity_file.to_owned())
        }
        other => bad(other.to_string()),
    })?;
    let mut text = String::new();
    reader.read_to_string(&mut text).map_err(|e| bad(e.to_string()))?;
    let key_line = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(|| bad("contains no AGE-SECRET-KEY line".into()))?;
    let identity: age::x25519::Identity = key_line.parse().map_err(|e: &str| bad(e.to_owned()))?;
    if identity.to_public().to_string() != expected.to_string() {
        return Err(CryptoError::RecipientMismatch);
    }
    Ok(UnlockedIdentity(identity))
}

/// Where a passphrase may come from, in order of preference.
pub enum PassphraseSource {
    /// `HEARTH_PASSPHRASE_FILE`: scripts and tests.
    File(PathBuf),
    /// systemd `LoadCredential=hearth-passphrase:…`.
    Credential(PathBuf),
    /// An interactive terminal.
    Terminal,
}

impl PassphraseSource {
    /// The non-interactive source available in this environment, if any.
    pub fn from_environment() -> Option<PassphraseSource> {
        if let Some(path) = std::env::var_os("HEARTH_PASSPHRASE_FILE") {
            return Some(PassphraseSource::File(path.into()));
        }
        let credential = Path::new(&std::env::var_os("CREDENTIALS_DIRECTORY")?).join(PASSPHRASE_CREDENTIAL);
        credential.exists().then_some(PassphraseSource::Credential(credential))
    }

    /// A non-interactive source, else the terminal when stdin is one.
    pub fn any() -> Option<PassphraseSource> {
        use std::io::IsTerminal;
        Self::from_environment().or_else(|| io::stdin().is_terminal().then_some(PassphraseSource::Terminal))
    }

    pub fn read(&self, prompt: &str) -> Result<SecretString, CryptoError> {
        let text = match self {
            PassphraseSource::File(path) | PassphraseSource::Credential(path) => std::fs::read_to_string(path)
                .map_err(|source| CryptoError::PassphraseFile { path: path.clone(), source })?,
            PassphraseSource::Terminal => rpassword::prompt_password(prompt)
                .map_err(|source| CryptoError::PassphraseFile { path: PathBuf::from("/dev/tty"), source })?,
        };
        let trimmed = text.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            return Err(CryptoError::EmptyPassphrase);
        }
        Ok(SecretString::from(trimmed.to_owned()))
    }
}

/// A clip file being written: plaintext in, age ciphertext to disk. `W` is the raw file (or a
/// wrapper around it, such as the clip writer's ENOSPC-retrying one).
pub struct EncryptingFile<W: Write = File> {
    writer: age::stream::StreamWriter<W>,
    /// A second handle to the same open file, so we can fsync while age owns the writer.
    sync_handle: File,
    plaintext_len: u64,
    path: PathBuf,
}

impl EncryptingFile<File> {
    /// Creates `path` (which must not exist) and writes the age header for `recipient`.
    pub fn create(path: &Path, recipient: &Recipient) -> Result<EncryptingFile<File>, CryptoError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o640).open(path).map_err(io_err(path))?;
        let sync_handle = file.try_clone().map_err(io_err(path))?;
        EncryptingFile::new(file, sync_handle, path, recipient)
    }
}

impl<W: Write> EncryptingFile<W> {
    /// Starts an age stream to `recipient` on `inner`; `sync_handle` is the same open file.
    pub fn new(
        inner: W,
        sync_handle: File,
        path: &Path,
        recipient: &Recipient,
    ) -> Result<EncryptingFile<W>, CryptoError> {
        let encryptor = age::Encryptor::with_recipients(std::iter::once(&recipient.0 as &dyn age::Recipient))
            .map_err(|e| CryptoError::Io { path: path.to_owned(), source: io::Error::other(e.to_string()) })?;
        let writer = encryptor.wrap_output(inner).map_err(io_err(path))?;
        Ok(EncryptingFile { writer, sync_handle, plaintext_len: 0, path: path.to_owned() })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.plaintext_len += bytes.len() as u64;
        Ok(())
    }

    /// Plaintext bytes written so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// The length of a padding box that, written next, makes age emit every byte written so
    /// far: it must cross into the next chunk, because age holds a full chunk back until it
    /// knows whether it is the last. 8 bytes spill over, the smallest box header.
    pub fn flush_padding_len(&self) -> usize {
        ((CHUNK_SIZE - self.plaintext_len % CHUNK_SIZE) % CHUNK_SIZE + 8) as usize
    }

    /// Makes everything age has written durable (not the chunk it still buffers).
    pub fn sync_data(&self) -> io::Result<()> {
        self.sync_handle.sync_data()
    }

    /// Ciphertext bytes on disk so far.
    pub fn bytes_written(&self) -> u64 {
        self.sync_handle.metadata().map(|m| m.len()).unwrap_or(0)
    }

    /// Writes the final chunk and fsyncs the file; returns its size. The caller renames it
    /// into place.
    pub fn finish(self) -> Result<u64, CryptoError> {
        self.writer.finish().map_err(io_err(&self.path))?;
        self.sync_handle.sync_all().map_err(io_err(&self.path))?;
        Ok(self.sync_handle.metadata().map_err(io_err(&self.path))?.len())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A decrypting, seekable reader over a complete clip.
pub type ClipReader = age::stream::StreamReader<BufReader<File>>;

/// Opens a clip for reading with the unlocked identity.
pub fn open_clip(path: &Path, identity: &UnlockedIdentity) -> Result<ClipReader, CryptoError> {
    let file = File::open(path).map_err(io_err(path))?;
    let decrypt_err = |message: String| CryptoError::Decrypt { path: path.to_owned(), message };
    let decryptor = age::Decryptor::new(BufReader::with_capacity(CHUNK_SIZE as usize + 16, file))
        .map_err(|e| decrypt_err(e.to_string()))?;
    decryptor.decrypt(std::iter::once(&identity.0 as &dyn age::Identity)).map_err(|e| decrypt_err(e.to_string()))
}

/// Reads a possibly truncated clip: yields the plaintext of every chunk that authenticates,
/// then ends cleanly. `stopped_early()` tells whether the stream was cut short (a crash) or
/// damaged, rather than properly finished.
pub struct AuthenticatedPrefix {
    inner: ClipReader,
    stop_reason: Option<String>,
}

impl AuthenticatedPrefix {
    pub fn open(path: &Path, identity: &UnlockedIdentity) -> Result<AuthenticatedPrefix, CryptoError> {
        Ok(AuthenticatedPrefix { inner: open_clip(path, identity)?, stop_reason: None })
    }

    /// Why reading stopped before a properly finished end, if it did.
    pub fn stopped_early(&self) -> Option<&str> {
        self.stop_reason.as_deref()
    }
}

impl Read for AuthenticatedPrefix {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop_reason.is_some() {
            return Ok(0);
        }
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) if matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData) => {
                self.stop_reason = Some(e.to_string());
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    fn test_identity() -> (UnlockedIdentity, Recipient) {
        let identity = age::x25519::Identity::generate();
        let recipient = Recipient(identity.to_public());
        (UnlockedIdentity(identity), recipient)
    }

    #[test]
    fn identity_round_trips_through_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.age");
        let passphrase = SecretString::from("correct horse battery staple".to_owned());
        let recipient = create_identity(&path, &passphrase).unwrap();
        let unlocked = unlock_identity(&path, &passphrase, &recipient).unwrap();
        assert_eq!(unlocked.recipient().to_string(), recipient.to_string());

        let raw = std::fs::read(&path).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("AGE-SECRET-KEY"), "private key stored in the clear");
        let wrong = SecretString::from("wrong".to_owned());
        assert!(matches!(unlock_identity(&path, &wrong, &recipient), Err(CryptoError::WrongPassphrase(_))));
        let other = test_identity().1;
        assert!(matches!(unlock_identity(&path, &passphrase, &other), Err(CryptoError::RecipientMismatch)));
        assert!(create_identity(&path, &passphrase).is_err(), "must never overwrite an identity");
    }

    #[test]
    fn flush_padding_pushes_every_byte_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (identity, recipient) = test_identity();
        for len in [1u64, 1000, CHUNK_SIZE - 3, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE - 8] {
            let path = dir.path().join(format!("clip-{len}"));
            let mut file = EncryptingFile::create(&path, &recipient).unwrap();
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            file.write_all(&data).unwrap();
            let padding = vec![0u8; file.flush_padding_len()];
            file.write_all(&padding).unwrap();
            assert_eq!(file.plaintext_len() % CHUNK_SIZE, 8, "padding ends just past a boundary");
            // Simulate a crash: drop without finish; age's buffered chunk is lost.
            drop(file);
            let mut reader = AuthenticatedPrefix::open(&path, &identity).unwrap();
            let mut recovered = Vec::new();
            reader.read_to_end(&mut recovered).unwrap();
            assert!(reader.stopped_early().is_some());
            assert_eq!(&recovered[..data.len()], &data[..], "len {len}");
            assert_eq!(recovered.len() as u64 % CHUNK_SIZE, 0);
        }
    }

    #[test]
    fn finished_files_decrypt_and_seek() {
        let dir = tempfile::tempdir().unwrap();
        let (identity, recipient) = test_identity();
        let path = dir.path().join("clip");
        let mut file = EncryptingFile::create(&path, &recipient).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        file.write_all(&data).unwrap();
        file.finish().unwrap();

        let mut reader = open_clip(&path, &identity).unwrap();
        reader.seek(SeekFrom::Start(200_000)).unwrap();
        let mut tail = Vec::new();
        reader.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, &data[200_000..]);

        let mut prefix = AuthenticatedPrefix::open(&path, &identity).unwrap();
        let mut all = Vec::new();
        prefix.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        assert!(prefix.stopped_early().is_none());
    }

    #[test]
    fn tampered_chunk_ends_the_authenticated_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let (identity, recipient) = test_identity();
        let path = dir.path().join("clip");
        let mut file = EncryptingFile::create(&path, &recipient).unwrap();
        file.write_all(&vec![7u8; 4 * CHUNK_SIZE as usize]).unwrap();
        file.finish().unwrap();
        let mut raw = std::fs::read(&path).unwrap();
        let len = raw.len();
        raw[len - 2 * (CHUNK_SIZE as usize)] ^= 1; // inside the third chunk
        std::fs::write(&path, raw).unwrap();
        let mut reader = AuthenticatedPrefix::open(&path, &identity).unwrap();
        let mut recovered = Vec::new();
        reader.read_to_end(&mut recovered).unwrap();
        assert_eq!(recovered.len() as u64, 2 * CHUNK_SIZE);
        assert!(reader.stopped_early().is_some());
    }
}
