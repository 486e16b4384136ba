//! The index: listing one day of a camera that has a year of one-minute clips (525,600 rows),
//! through `Index::clips` as the web UI's timeline and clip list do. Goal: < 10 ms whatever
//! the day. Also prints the query plans (`EXPLAIN QUERY PLAN`, lines starting `PLAN`) of that
//! query and of a bounded alternative, and times the alternative, so a schema or query change
//! can be judged on numbers.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rusqlite::{params, Connection};
use std::hint::black_box;

use hearth::db::{ClipFilter, ClipState, Index};

mod common;

const MINUTE_US: i64 = 60_000_000;
const DAY_US: i64 = 24 * 60 * MINUTE_US;
const CLIPS: i64 = 365 * 24 * 60;
/// Under `cargo test`: enough for every queried day to exist.
const TEST_CLIPS: i64 = 366 * 24 * 60 / 30;
/// 2025-01-01T00:00:00Z.
const YEAR_START_US: i64 = 1_735_689_600_000_000;
const CAMERA: &str = "front-door";

/// The WHERE clause of `Index::clips` (src/db.rs), for EXPLAIN; keep the two in step.
/// `Index::clips` for one camera now runs the bounded query below (kept as a separate text here
/// for the query plan); the archive-wide scan it replaced walked every clip before the day.
const CLIPS_SQL: &str = BOUNDED_SQL;

/// The same rows for a camera's clips, which never overlap one another: those starting in the
/// range, plus the last clip that starts before it and may run into (or touch) it. Both halves are
/// range scans of `clips_camera_start`, so the cost follows the rows returned, not the day.
const BOUNDED_SQL: &str = "SELECT c.id, k.name, c.start_us, c.end_us, c.duration_90k, c.bytes, c.frames, c.keyframes,
        c.codec, c.width, c.height, c.has_audio, c.path, c.state
     FROM clips c JOIN cameras k ON k.id = c.camera_id
     WHERE c.camera_id = (SELECT id FROM cameras WHERE name = ?1) AND c.state = ?2
       AND c.start_us < ?4 AND c.end_us >= ?3
       AND c.start_us >= COALESCE(
           (SELECT p.start_us FROM clips p
            WHERE p.camera_id = (SELECT id FROM cameras WHERE name = ?1) AND p.start_us < ?3
            ORDER BY p.start_us DESC LIMIT 1), ?3)
     ORDER BY c.start_us, c.id";

/// A year of contiguous one-minute clips for one camera, inserted in one transaction.
fn build_index(path: &Path, clips: i64) -> Index {
    let index = Index::open(path).unwrap();
    let camera_id = index.camera_id(CAMERA).unwrap();
    let mut conn = Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO clips (camera_id, start_us, end_us, duration_90k, bytes, frames, keyframes, codec,
                     width, height, has_audio, path, state)
                 VALUES (?1, ?2, ?3, 5400000, 30000000, 1500, 30, 'avc1.640028', 1920, 1080, 0, ?4, 'closed')",
            )
            .unwrap();
        // Under `cargo test`, one clip every 30 minutes: the same span, a 30th of the rows.
        let step = if clips == CLIPS { 1 } else { 30 };
        for i in 0..clips {
            let start = YEAR_START_US + i * step * MINUTE_US;
            insert
                .execute(params![camera_id, start, start + MINUTE_US, format!("clips/{CAMERA}/{i}.mp4.age")])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    conn.execute_batch("ANALYZE").unwrap();
    index
}

fn explain(conn: &Connection, name: &str, sql: &str, day_start: i64) {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = stmt
        .query_map(params![CAMERA, "closed", day_start, day_start + DAY_US], |row| row.get::<_, String>(3))
        .unwrap();
    for detail in rows {
        println!("PLAN {name}: {}", detail.unwrap());
    }
}

fn bench_index(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite3");
    let started = std::time::Instant::now();
    let clips = if common::measuring() { CLIPS } else { TEST_CLIPS };
    let index = build_index(&path, clips);
    println!("index: {clips} clips inserted in {:.1} s", started.elapsed().as_secs_f64());
    let conn = Connection::open(&path).unwrap();
    explain(&conn, "Index::clips", CLIPS_SQL, YEAR_START_US);
    explain(&conn, "bounded", BOUNDED_SQL, YEAR_START_US);

    let mut group = c.benchmark_group("index");
    for day in [0i64, 182, 364] {
        let start_us = YEAR_START_US + day * DAY_US;
        let filter =
            ClipFilter { camera: Some(CAMERA), state: Some(ClipState::Closed), start_us, end_us: start_us + DAY_US };
        let found = index.clips(&filter).unwrap().len();
        println!("index: day {day}: {found} clips");
        group.bench_with_input(BenchmarkId::new("list_day", format!("day{day}")), &filter, |b, filter| {
            b.iter(|| black_box(index.clips(filter).unwrap()))
        });
        let mut stmt = conn.prepare(BOUNDED_SQL).unwrap();
        let bounded_ids: Vec<i64> = stmt
            .query_map(params![CAMERA, "closed", start_us, start_us + DAY_US], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(bounded_ids.len(), found, "the bounded query must return the same clips");
        group.bench_with_input(BenchmarkId::new("list_day_bounded", format!("day{day}")), &start_us, |b, &start_us| {
            b.iter(|| {
                let mut stmt = conn.prepare_cached(BOUNDED_SQL).unwrap();
                let rows = stmt
                    .query_map(params![CAMERA, "closed", start_us, start_us + DAY_US], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(12)?))
                    })
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                black_box(rows)
            })
        });
    }
    group.finish();
}

criterion_group! { name = benches; config = common::config(); targets = bench_index }
criterion_main!(benches);
