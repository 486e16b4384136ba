//! Shared by the criterion benches: one short configuration, so `make bench` stays within its
//! time budget. `HEARTH_BENCH_SECONDS` sets criterion's measurement time per benchmark
//! (default 2 s); results land in `target/criterion/`, where scripts/bench.py reads them.

use std::time::Duration;

use criterion::Criterion;

pub fn config() -> Criterion {
    let seconds = std::env::var("HEARTH_BENCH_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(2.0);
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs_f64((seconds / 2.0).max(0.1)))
        .measurement_time(Duration::from_secs_f64(seconds.max(0.1)))
}

/// False under `cargo test` (which runs each benchmark once, as a check that it still works):
/// benches then build smaller fixtures, so CI stays quick.
#[allow(dead_code)] // not every bench needs it
pub fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}
