//! Issue #8, the API against its own OpenAPI document: schemathesis (PyPI, installed by
//! `make deps` into .venv/) generates requests for every operation of `/api/openapi.json` on a
//! live hub, logged in as an admin, and checks that no answer is a 5xx, and that every status,
//! content type and body is one the document declares. Bounded: `HEARTH_SCHEMATHESIS_EXAMPLES`
//! examples per operation (default 20); about two minutes.
//!
//! Left out: the operations that would end the test's own access (log out, lock playback,
//! revoke sessions, change the settings or users — e.g. `allowed_networks = []`); their input
//! validation is covered by tests/hostile_http.rs and tests/accounts.rs.

mod common;
mod hostile;
mod hub;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn schemathesis() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv");
    std::fs::read_dir(&venv)
        .ok()
        .and_then(|entries| entries.flatten().map(|e| e.path().join("bin/schemathesis")).find(|p| p.exists()))
        .unwrap_or_else(|| panic!("schemathesis is not installed in {}: run `make deps`", venv.display()))
}

#[test]
fn the_api_answers_as_its_openapi_document_says_and_never_5xx() {
    let bin = schemathesis();
    let (_camera, mut hub, url) = hostile::serving_hub(2);
    let client = hub.login(&url);
    let examples = std::env::var("HEARTH_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "20".into());
    let started = Instant::now();
    let out = common::output_with_timeout(
        Command::new(&bin)
            .arg("run")
            .arg(format!("{url}api/openapi.json"))
            .args(["--url", url.trim_end_matches('/')])
            .args(["-H", &format!("Cookie: {}", client.cookie)])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--max-examples", &examples])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--workers", "2"])
            .args(["--exclude-path", "/api/logout", "--exclude-path", "/api/lock", "--exclude-path", "/api/settings"])
            // One regex: a second --exclude-path-regex replaces the first.
            .args(["--exclude-path-regex", "^/api/(sessions/.*|users/\\{name\\})$"])
            .args(["--generation-database", "none", "--generation-with-security-parameters", "false"])
            .arg("--no-color")
            .current_dir(hub.dir.path()) // its cache, not in the source tree
            .env("SCHEMATHESIS_TELEMETRY", "false"),
        Duration::from_secs(300),
    )
    .expect("schemathesis ran");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let log = hub.log();
    hub.stop();
    eprintln!("schemathesis ({examples} examples per operation) in {:?}:\n{report}", started.elapsed());
    assert!(!log.contains("panicked"), "{log}");
    assert!(out.status.success(), "schemathesis found problems (above)");
}
