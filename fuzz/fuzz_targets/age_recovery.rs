//! The age chunk recovery path: a valid encrypted clip, truncated and corrupted by the input
//! the way a power cut or a bad SD card would, goes through what start-up recovery does to a
//! `.part` file (keep every authenticated chunk and complete fragment, re-encrypt). Never a
//! panic; whatever is recovered decrypts and scans cleanly.
#![no_main]

mod support;

use std::sync::OnceLock;

use hearth::crypto::{EncryptingFile, Recipient, UnlockedIdentity};

struct Keys {
    identity: UnlockedIdentity,
    recipient: Recipient,
    dir: tempfile::TempDir,
    /// A clip of 50 fragments (~80 KB: two 64 KiB age chunks) encrypted to `recipient`.
    encrypted: Vec<u8>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let identity = UnlockedIdentity::from_identity(age::x25519::Identity::generate());
        let recipient = identity.recipient();
        // /dev/shm when there is one: every run writes two small files.
        let dir = tempfile::Builder::new()
            .prefix("hearth-fuzz-")
            .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" })
            .unwrap();
        let path = dir.path().join("seed.mp4.age");
        let mut file = EncryptingFile::create(&path, &recipient).unwrap();
        // Big enough for two age chunks, so truncation can fall in either or between them.
        file.write_all(&support::clip(50)).unwrap();
        file.finish().unwrap();
        let encrypted = std::fs::read(&path).unwrap();
        Keys { identity, recipient, dir, encrypted }
    })
}

libfuzzer_sys::fuzz_target!(|script: &[u8]| {
    let keys = keys();
    let damaged = support::edit(keys.encrypted.clone(), script);
    let source = keys.dir.path().join("clip.mp4.age.part");
    let destination = keys.dir.path().join("clip.mp4.age");
    std::fs::write(&source, &damaged).unwrap();
    if let Ok(Some(summary)) = hearth::recovery::recover_file(&source, &destination, &keys.identity, &keys.recipient) {
        // What recovery kept is a clean, finished clip.
        let mut reader = hearth::crypto::open_clip(&destination, &keys.identity).expect("recovered clip decrypts");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut plain).expect("recovered clip reads to its end");
        let rescanned = hearth::mux::summarize(std::io::Cursor::new(&plain)).expect("recovered clip scans");
        assert_eq!(rescanned.fragment_count, summary.fragments);
        assert!(!rescanned.is_truncated());
    }
    let _ = std::fs::remove_file(&destination);
});
