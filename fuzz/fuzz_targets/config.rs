//! The config file parser: any text is a `Config` or a `ConfigError` naming the key, never a
//! panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(config) = hearth::config::Config::parse(text, std::path::Path::new("/fuzz/config.toml")) {
        // What `serve` derives from a config at start must not panic either.
        let _ = config.clips_dir();
        let _ = config.db_path();
        let _ = config.web.uses_tls();
    }
});
