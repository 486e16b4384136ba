//! End-to-end checks against ffmpeg's demuxer and decoders: real H.264 and AAC, encoded by the
//! ffmpeg CLI and muxed here, must probe and decode as what they are. Skipped, with a message,
//! where `ffmpeg`/`ffprobe` are not installed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::test_support::{audio_sample_entry, visual_sample_entry, wrap_box};
use super::*;

const VIDEO_TIMESCALE: u32 = 90_000;
const FRAME_DURATION: u32 = 3600; // 25 fps
const FRAMES: usize = 75;
const AUDIO_RATE: u32 = 48_000;
const AAC_FRAME_DURATION: u32 = 1024;

fn tools_available() -> bool {
    let works = |tool: &str| Command::new(tool).arg("-version").output().is_ok_and(|output| output.status.success());
    if works("ffmpeg") && works("ffprobe") {
        return true;
    }
    println!("skipped: ffmpeg/ffprobe not installed");
    false
}

/// A scratch directory removed when the test ends, pass or fail, unless
/// `HEARTH_KEEP_TEST_FILES` is set (to inspect the muxed files by hand).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hearth-mux-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::env::var_os("HEARTH_KEEP_TEST_FILES").is_some() {
            println!("kept {}", self.0.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs a command that must succeed and print nothing on stderr (`-v error` prints only
/// problems); returns its stdout.
fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.trim().is_empty(), "{command:?} failed: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

fn ffmpeg(args: &[&str]) -> String {
    run(Command::new("ffmpeg").args(["-v", "error", "-nostdin", "-y"]).args(args))
}

/// Options written as one string, then the paths (which may contain spaces) after them.
fn options_then<'a>(options: &'a str, paths: &[&'a Path]) -> Vec<&'a str> {
    let paths = paths.iter().map(|path| path.to_str().unwrap());
    options.split_whitespace().chain(paths).collect()
}

fn ffprobe(path: &Path, args: &[&str]) -> String {
    run(Command::new("ffprobe").args(["-v", "error"]).args(args).arg(path))
}

/// 3 s of 320x240 test pattern at 25 fps, one key frame a second, as an Annex B stream. No
/// B-frames, because the muxer writes zero composition offsets (decode order = display order).
fn encode_h264(dir: &ScratchDir) -> PathBuf {
    let path = dir.path("in.h264");
    let args = "-f lavfi -i testsrc=size=320x240:rate=25 -t 3 -c:v libx264 -preset veryfast -g 25 -bf 0 \
                -pix_fmt yuv420p -bsf:v h264_mp4toannexb -f h264";
    ffmpeg(&options_then(args, &[&path]));
    path
}

/// 3 s of a 440 Hz tone as AAC-LC in ADTS frames.
fn encode_aac(dir: &ScratchDir) -> PathBuf {
    let path = dir.path("in.aac");
    let args = "-f lavfi -i sine=frequency=440:sample_rate=48000 -t 3 -ac 2 -c:a aac -f adts";
    ffmpeg(&options_then(args, &[&path]));
    path
}

/// NAL units of an Annex B stream, without start codes.
fn split_nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    for (index, &start) in starts.iter().enumerate() {
        let mut end = starts.get(index + 1).map_or(stream.len(), |&next| next - 3);
        // A 4-byte start code's leading zero (and any trailing zero bytes) belong to no NAL.
        while end > start && stream[end - 1] == 0 {
            end -= 1;
        }
        units.push(&stream[start..end]);
    }
    units
}

struct H264 {
    sps: Vec<u8>,
    pps: Vec<u8>,
    /// Access units with 4-byte length prefixes, and whether each is an IDR picture.
    access_units: Vec<(Vec<u8>, bool)>,
}

/// Groups NAL units into access units: a new one starts at an AUD, SPS, PPS or SEI, or at a
/// slice whose first_mb_in_slice is 0 (top bit of the byte after the header), once the
/// current one has a slice. Parameter sets go to the sample entry, not the samples.
fn parse_h264(stream: &[u8]) -> H264 {
    let mut parsed = H264 { sps: vec![], pps: vec![], access_units: vec![] };
    let mut current: Vec<u8> = Vec::new();
    let (mut has_slice, mut is_idr) = (false, false);
    for nal in split_nal_units(stream) {
        let nal_type = nal[0] & 0x1f;
        let is_slice = matches!(nal_type, 1 | 5);
        let starts_picture = is_slice && nal.get(1).is_some_and(|byte| byte & 0x80 != 0);
        if has_slice && (matches!(nal_type, 6..=9) || starts_picture) {
            parsed.access_units.push((std::mem::take(&mut current), is_idr));
            (has_slice, is_idr) = (false, false);
        }
        match nal_type {
            7 if parsed.sps.is_empty() => parsed.sps = nal.to_vec(),
            8 if parsed.pps.is_empty() => parsed.pps = nal.to_vec(),
            7..=9 => {}
            _ => {
                current.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                current.extend_from_slice(nal);
                has_slice |= is_slice;
                is_idr |= nal_type == 5;
            }
        }
    }
    if has_slice {
        parsed.access_units.push((current, is_idr));
    }
    parsed
}

fn avc1_sample_entry(h264: &H264, width: u16, height: u16) -> Vec<u8> {
    let (sps, pps) = (&h264.sps, &h264.pps);
    let mut avcc = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1]; // 4-byte lengths, 1 SPS
    avcc.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(sps);
    avcc.push(1);
    avcc.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(pps);
    visual_sample_entry(b"avc1", width, height, &wrap_box(b"avcC", &avcc))
}

struct Aac {
    audio_specific_config: [u8; 2],
    channels: u16,
    frames: Vec<Vec<u8>>,
}

/// Splits ADTS frames and derives the AudioSpecificConfig from the first header.
fn parse_adts(stream: &[u8]) -> Aac {
    let mut frames = Vec::new();
    let mut at = 0;
    let mut config = None;
    while at + 7 <= stream.len() {
        let header = &stream[at..at + 7];
        assert!(header[0] == 0xff && header[1] & 0xf0 == 0xf0, "ADTS sync lost at {at}");
        let header_len = if header[1] & 1 == 1 { 7 } else { 9 };
        let frame_len =
            (usize::from(header[3] & 3) << 11) | (usize::from(header[4]) << 3) | usize::from(header[5] >> 5);
        let object_type = (header[2] >> 6) + 1;
        let rate_index = (header[2] >> 2) & 0x0f;
        let channels = ((header[2] & 1) << 2) | (header[3] >> 6);
        config.get_or_insert((object_type, rate_index, channels));
        frames.push(stream[at + header_len..at + frame_len].to_vec());
        at += frame_len;
    }
    let (object_type, rate_index, channels) = config.unwrap();
    let asc = (u16::from(object_type) << 11) | (u16::from(rate_index) << 7) | (u16::from(channels) << 3);
    Aac { audio_specific_config: asc.to_be_bytes(), channels: channels.into(), frames }
}

/// `mp4a` with an `esds` whose descriptors are all short enough for 1-byte lengths.
fn mp4a_sample_entry(aac: &Aac) -> Vec<u8> {
    let decoder_specific = [&[0x05, 2][..], &aac.audio_specific_config].concat();
    let mut decoder_config = vec![0x40, 0x15, 0, 0, 0]; // MPEG-4 audio, audio stream, buffer size
    decoder_config.extend_from_slice(&128_000u32.to_be_bytes()); // max bitrate
    decoder_config.extend_from_slice(&128_000u32.to_be_bytes()); // average bitrate
    decoder_config.extend_from_slice(&decoder_specific);
    let mut es = vec![0, 1, 0]; // ES id, flags
    es.extend_from_slice(&[0x04, decoder_config.len() as u8]);
    es.extend_from_slice(&decoder_config);
    es.extend_from_slice(&[0x06, 1, 2]); // SL config: predefined MP4
    let esds = [&[0, 0, 0, 0, 0x03, es.len() as u8][..], &es].concat();
    audio_sample_entry(b"mp4a", aac.channels, AUDIO_RATE as u16, &wrap_box(b"esds", &esds))
}

struct MuxOptions {
    with_audio: bool,
    /// Pad with `free` boxes to multiples of this many bytes after the init and each fragment.
    pad_to: Option<u64>,
    composition_offset: i32,
}

/// Muxes one fragment per second of video, carrying the audio frames that start in that second.
fn mux(h264: &H264, aac: &Aac, options: &MuxOptions) -> Vec<u8> {
    let mut tracks = vec![TrackConfig {
        kind: TrackKind::Video { width: 320, height: 240 },
        timescale: VIDEO_TIMESCALE,
        sample_entry: avc1_sample_entry(h264, 320, 240),
    }];
    if options.with_audio {
        tracks.push(TrackConfig {
            kind: TrackKind::Audio { channels: aac.channels, sample_rate: AUDIO_RATE },
            timescale: AUDIO_RATE,
            sample_entry: mp4a_sample_entry(aac),
        });
    }
    let mut out = init_segment(&tracks).unwrap();
    pad(&mut out, options.pad_to);
    let seconds = h264.access_units.len().div_ceil(25);
    for second in 0..seconds {
        let video = &h264.access_units[(second * 25)..((second + 1) * 25).min(h264.access_units.len())];
        let audio_range = audio_frames_in_second(second, seconds, aac.frames.len());
        let video_samples: Vec<Sample> = video
            .iter()
            .map(|(data, is_idr)| Sample {
                duration: FRAME_DURATION,
                size: data.len() as u32,
                is_sync: *is_idr,
                composition_offset: options.composition_offset,
            })
            .collect();
        let audio_samples: Vec<Sample> = aac.frames[audio_range.clone()]
            .iter()
            .map(|data| Sample {
                duration: AAC_FRAME_DURATION,
                size: data.len() as u32,
                is_sync: true,
                composition_offset: 0,
            })
            .collect();
        let mut runs = vec![TrackRun {
            track_id: 1,
            base_decode_time: (second * 25) as u64 * u64::from(FRAME_DURATION),
            samples: &video_samples,
        }];
        if options.with_audio {
            runs.push(TrackRun {
                track_id: 2,
                base_decode_time: audio_range.start as u64 * u64::from(AAC_FRAME_DURATION),
                samples: &audio_samples,
            });
        }
        let mut payload: Vec<&[u8]> = video.iter().map(|(data, _)| &data[..]).collect();
        if options.with_audio {
            payload.extend(aac.frames[audio_range].iter().map(|data| &data[..]));
        }
        let payload_len = payload.iter().map(|data| data.len()).sum();
        out.extend_from_slice(&fragment(second as u32 + 1, &runs, payload_len).unwrap());
        payload.iter().for_each(|data| out.extend_from_slice(data));
        pad(&mut out, options.pad_to);
    }
    out
}

fn audio_frames_in_second(second: usize, seconds: usize, frame_count: usize) -> std::ops::Range<usize> {
    let first_frame_at = |second: usize| (second * AUDIO_RATE as usize).div_ceil(AAC_FRAME_DURATION as usize);
    let end = if second + 1 == seconds { frame_count } else { first_frame_at(second + 1).min(frame_count) };
    first_frame_at(second).min(end)..end
}

fn pad(out: &mut Vec<u8>, boundary: Option<u64>) {
    if let Some(len) = boundary.and_then(|boundary| padding_to_boundary(out.len() as u64, boundary)) {
        out.extend_from_slice(&free_box(len).unwrap());
    }
}

/// Every value of `"key": value` in ffprobe's JSON, in order, quotes stripped.
fn json_values(json: &str, key: &str) -> Vec<String> {
    let pattern = format!("\"{key}\":");
    json.match_indices(&pattern)
        .map(|(at, _)| {
            let rest = json[at + pattern.len()..].trim_start();
            let end = rest.find([',', '\n', '}']).unwrap_or(rest.len());
            rest[..end].trim().trim_matches('"').to_owned()
        })
        .collect()
}

fn stream_info(path: &Path) -> String {
    ffprobe(path, &["-show_entries", "stream=codec_name,width,height,nb_read_frames", "-count_frames", "-of", "json"])
}

fn video_pts_times(path: &Path) -> Vec<f64> {
    ffprobe(path, &["-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .lines()
        .map(|line| line.trim().trim_end_matches(',').parse().unwrap())
        .collect()
}

/// One MD5 per decoded video frame: equal lists mean every sample reached the decoder intact.
fn frame_md5s(path: &Path) -> Vec<String> {
    ffmpeg(&["-i", path.to_str().unwrap(), "-map", "0:v", "-f", "framemd5", "-"])
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit(',').next().map(|md5| md5.trim().to_owned()))
        .collect()
}

struct Inputs {
    dir: ScratchDir,
    h264_path: PathBuf,
    aac_path: PathBuf,
    h264: H264,
    aac: Aac,
}

fn inputs(label: &str) -> Option<Inputs> {
    if !tools_available() {
        return None;
    }
    let dir = ScratchDir::new(label);
    let h264_path = encode_h264(&dir);
    let aac_path = encode_aac(&dir);
    let h264 = parse_h264(&fs::read(&h264_path).unwrap());
    let aac = parse_adts(&fs::read(&aac_path).unwrap());
    assert_eq!(h264.access_units.len(), FRAMES, "the test's own access unit grouping is off");
    Some(Inputs { dir, h264_path, aac_path, h264, aac })
}

fn write_muxed(inputs: &Inputs, name: &str, options: &MuxOptions) -> PathBuf {
    let path = inputs.dir.path(name);
    fs::write(&path, mux(&inputs.h264, &inputs.aac, options)).unwrap();
    path
}

#[test]
fn muxed_h264_probes_as_75_frames_at_320x240_and_decodes_bit_exact() {
    let Some(inputs) = inputs("h264") else { return };
    let options = MuxOptions { with_audio: false, pad_to: None, composition_offset: 0 };
    let path = write_muxed(&inputs, "video.mp4", &options);

    let info = stream_info(&path);
    assert_eq!(json_values(&info, "codec_name"), ["h264"], "{info}");
    assert_eq!(json_values(&info, "width"), ["320"]);
    assert_eq!(json_values(&info, "height"), ["240"]);
    assert_eq!(json_values(&info, "nb_read_frames"), ["75"]);

    let pts = video_pts_times(&path);
    assert_eq!(pts.len(), FRAMES);
    assert!(pts.windows(2).all(|pair| pair[0] < pair[1]), "pts not increasing: {pts:?}");
    assert_eq!(frame_md5s(&path), frame_md5s(&inputs.h264_path));

    let summary = summarize(fs::File::open(&path).unwrap()).unwrap();
    assert_eq!((summary.fragment_count, summary.truncated_at), (3, None));
    assert_eq!((summary.tracks[0].sample_count, summary.tracks[0].sync_sample_count), (75, 3));
    assert_eq!(summary.tracks[0].end_time, Some(75 * u64::from(FRAME_DURATION)));
}

#[test]
fn video_and_audio_in_one_file_probe_and_decode_cleanly() {
    let Some(inputs) = inputs("av") else { return };
    let options = MuxOptions { with_audio: true, pad_to: None, composition_offset: 0 };
    let path = write_muxed(&inputs, "av.mp4", &options);

    let info = stream_info(&path);
    assert_eq!(json_values(&info, "codec_name"), ["h264", "aac"], "{info}");
    let audio_frames = inputs.aac.frames.len().to_string();
    assert_eq!(json_values(&info, "nb_read_frames"), ["75", audio_frames.as_str()]);
    // Decoding everything catches a data offset pointing at the other track's bytes.
    ffmpeg(&["-i", path.to_str().unwrap(), "-f", "null", "-"]);
    assert_eq!(frame_md5s(&path), frame_md5s(&inputs.h264_path));

    let summary = summarize(fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(summary.tracks[1].sample_count, inputs.aac.frames.len() as u64);
    assert_eq!(summary.tracks[1].total_duration, inputs.aac.frames.len() as u64 * 1024);
}

#[test]
fn free_padding_between_fragments_probes_the_same() {
    let Some(inputs) = inputs("padded") else { return };
    let plain = MuxOptions { with_audio: true, pad_to: None, composition_offset: 0 };
    let padded = MuxOptions { pad_to: Some(4096), ..plain };
    let plain_path = write_muxed(&inputs, "plain.mp4", &plain);
    let padded_path = write_muxed(&inputs, "padded.mp4", &padded);
    assert_eq!(fs::metadata(&padded_path).unwrap().len() % 4096, 0);

    assert_eq!(stream_info(&padded_path), stream_info(&plain_path));
    assert_eq!(video_pts_times(&padded_path), video_pts_times(&plain_path));
    assert_eq!(frame_md5s(&padded_path), frame_md5s(&inputs.h264_path));
    let padded_summary = summarize(fs::File::open(&padded_path).unwrap()).unwrap();
    let plain_summary = summarize(fs::File::open(&plain_path).unwrap()).unwrap();
    assert_eq!(padded_summary.tracks, plain_summary.tracks);
}

#[test]
fn composition_offsets_reach_the_demuxer() {
    let Some(inputs) = inputs("cto") else { return };
    let options = MuxOptions { with_audio: false, pad_to: None, composition_offset: FRAME_DURATION as i32 };
    let path = write_muxed(&inputs, "shifted.mp4", &options);
    let pts = video_pts_times(&path);
    assert_eq!(pts.len(), FRAMES);
    assert!((pts[0] - 0.04).abs() < 1e-6, "first pts {}", pts[0]);
    assert!(pts.windows(2).all(|pair| pair[0] < pair[1]));
}

/// The reader isn't only for hearth's own files: ffmpeg's fragmented MP4 (tfhd defaults,
/// different box order) must scan too.
#[test]
fn the_scanner_reads_ffmpegs_own_fragmented_mp4() {
    let Some(inputs) = inputs("ffmpeg-fmp4") else { return };
    let path = inputs.dir.path("ffmpeg.mp4");
    let (h264, aac) = (inputs.h264_path.to_str().unwrap(), inputs.aac_path.to_str().unwrap());
    let options = "-map 0:v -map 1:a -c copy -bsf:a aac_adtstoasc \
                   -movflags frag_keyframe+empty_moov+default_base_moof -f mp4";
    ffmpeg(&[&["-i", h264, "-i", aac][..], &options_then(options, &[&path])].concat());
    let summary = summarize(fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(summary.truncated_at, None);
    let video =
        summary.tracks.iter().find(|track| track.sample_count > 0 && track.sync_sample_count < track.sample_count);
    let video = video.expect("a track with key and non-key frames");
    assert_eq!((video.sample_count, video.sync_sample_count), (75, 3));
    let audio = summary.tracks.iter().find(|track| track.track_id != video.track_id).unwrap();
    assert_eq!(audio.sample_count, inputs.aac.frames.len() as u64);
    let handlers: Vec<_> = summary.init.tracks.iter().map(|track| track.handler).collect();
    assert_eq!(handlers, [*b"vide", *b"soun"]);
    assert_eq!(summary.init.tracks[0].sample_entry_fourcc, *b"avc1");
    assert_eq!((summary.init.tracks[0].width, summary.init.tracks[0].height), (320, 240));
}
