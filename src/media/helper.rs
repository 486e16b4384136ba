//! The `hearth-media` process: reads one job's messages on stdin, answers on stdout, logs on
//! stderr (the journal, under systemd). This is the only code that calls into libav; it runs
//! here so that the hub never loads it (see [`super`]).

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

use super::{wire, Job, SnapshotConfig};

#[derive(Debug, thiserror::Error)]
enum HelperError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("expected {0} from the hub")]
    Expected(&'static str),
    #[error("bad job settings: {0}")]
    Config(#[from] serde_json::Error),
    #[error("{0}")]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("{0}")]
    Demo(#[from] crate::demo::DemoError),
}

/// `hearth-media JOB`: the helper's whole life.
pub fn main() -> ExitCode {
    init_logging();
    let argument = std::env::args().nth(1);
    if argument.as_deref() == Some("--version") {
        // Reaching this line proves the dynamic loader found every libav library (`hearth doctor`).
        println!("{}", version());
        return ExitCode::SUCCESS;
    }
    let job = argument.as_deref().and_then(Job::from_name);
    let Some(job) = job else {
        eprintln!("usage: hearth-media snapshot|motion|pattern\n(started by hearth; it speaks a binary protocol on stdin and stdout)");
        return ExitCode::from(2);
    };
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    let result = match job {
        Job::Snapshot => snapshot(&mut input, &mut output),
        Job::Motion => motion(&mut input, &mut output),
        Job::Pattern => pattern(&mut input, &mut output),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The hub reads the reason from the pipe; the journal gets it too.
            tracing::warn!(job = job.name(), error = %e, "media job failed");
            let _ = wire::write(&mut output, wire::ERROR, e.to_string().as_bytes());
            let _ = output.flush();
            ExitCode::FAILURE
        }
    }
}

/// What `hearth-media --version` prints; `hearth doctor` expects its own version there.
pub fn version() -> String {
    format!("{} {}", super::PROGRAM, env!("CARGO_PKG_VERSION"))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env(super::LOG_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).with_ansi(false);
    if journal {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

fn expect(input: &mut impl Read, tag: u8, what: &'static str) -> Result<Vec<u8>, HelperError> {
    match wire::read(input)? {
        Some((t, payload)) if t == tag => Ok(payload),
        _ => Err(HelperError::Expected(what)),
    }
}

fn snapshot(input: &mut impl Read, output: &mut impl Write) -> Result<(), HelperError> {
    let config: SnapshotConfig = serde_json::from_slice(&expect(input, wire::CONFIG, "settings")?)?;
    let sample_entry = expect(input, wire::SAMPLE_ENTRY, "a sample entry")?;
    let frame = expect(input, wire::FRAME, "a frame")?;
    let (_, _, sample) = wire::parse_frame(frame).ok_or(HelperError::Expected("a well-formed frame"))?;
    let jpeg = crate::snapshot::keyframe_to_jpeg(&sample_entry, &sample, config.max_width)?;
    wire::write(output, wire::JPEG, &jpeg)?;
    Ok(output.flush()?)
}

fn pattern(input: &mut impl Read, output: &mut impl Write) -> Result<(), HelperError> {
    let options: crate::demo::PatternOptions = serde_json::from_slice(&expect(input, wire::CONFIG, "settings")?)?;
    options.validate()?;
    let encoded = crate::demo::pattern::encode_loop(&options)?;
    let header = super::PatternHeader { fps: encoded.fps, width: encoded.width, height: encoded.height };
    wire::write(output, wire::PATTERN_HEADER, &serde_json::to_vec(&header)?)?;
    wire::write(output, wire::SPS, &encoded.sps)?;
    wire::write(output, wire::PPS, &encoded.pps)?;
    for frame in &encoded.frames {
        wire::write(output, wire::PICTURE, &wire::picture_payload(frame.is_keyframe, &frame.nals))?;
    }
    Ok(output.flush()?)
}

/// Frames in, motion reports out, until the hub closes the pipe.
fn motion(input: &mut impl Read, output: &mut impl Write) -> Result<(), HelperError> {
    let job: crate::motion::MotionJob = serde_json::from_slice(&expect(input, wire::CONFIG, "settings")?)?;
    let mut worker = crate::motion::Worker::new(job.camera, job.config)?;
    let mut sample_entry: Option<Arc<Vec<u8>>> = None;
    while let Some((tag, payload)) = wire::read(input)? {
        let reports = match tag {
            wire::SAMPLE_ENTRY => {
                sample_entry = Some(Arc::new(payload));
                continue;
            }
            wire::FRAME => {
                let (time_us, keyframe, data) =
                    wire::parse_frame(payload).ok_or(HelperError::Expected("a well-formed frame"))?;
                let entry = sample_entry.clone().ok_or(HelperError::Expected("a sample entry before frames"))?;
                worker.offer(crate::motion::Frame { sample_entry: entry, data, keyframe, time_us })
            }
            _ => return Err(HelperError::Expected("a sample entry or a frame")),
        };
        send_reports(output, &reports)?;
    }
    send_reports(output, &worker.finish())
}

fn send_reports(output: &mut impl Write, reports: &[crate::motion::Report]) -> Result<(), HelperError> {
    if reports.is_empty() {
        return Ok(());
    }
    for report in reports {
        wire::write(output, wire::REPORT, &serde_json::to_vec(report)?)?;
    }
    Ok(output.flush()?)
}
