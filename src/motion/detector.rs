//! The motion detector proper: grayscale frames in, motion events out. Pure logic, no I/O.
//!
//! Built for outdoor cameras, where the scene is never still:
//! - **background model with slow adaptation**: a running average per pixel, so swaying
//!   leaves and slow shadows fade into the background rather than triggering forever;
//! - **per-pixel threshold** on the difference from the background, after removing the
//!   frame's **global brightness shift** (a cloud, dusk, auto-exposure): a uniform change moves
//!   every pixel alike and is subtracted out. While the light is changing, the background
//!   follows it quickly and clipped pixels (black or white, which cannot follow) do not count;
//! - **stopped objects and ghosts**: only pixels that differ from the background *and* changed
//!   since the previous analysed frame are motion. A parked car, or the spot a visitor just
//!   left (whose old look lingers in the background), differs but does not change: it is not
//!   motion, and it is learnt into the background quickly. So an event ends when the movement
//!   ends, not when the slow average catches up;
//! - **abrupt global changes** (the camera switching to infrared, lights on): when most of the
//!   region changes at once, the background is re-learnt from this frame and nothing fires;
//! - **minimum changed area**, so noise and insects do not count;
//! - **zones and masks**: only pixels inside a zone (all, if none) and outside every mask count;
//! - **hysteresis**: an event starts after `start_frames` frames with motion and ends after
//!   `end_frames` frames without, so one event covers one visitor.

/// A point in normalised frame coordinates: (0, 0) top left, (1, 1) bottom right.
pub type Point = (f32, f32);

/// Detector settings; see `[camera.motion]` in the config reference.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DetectorConfig {
    /// Per-pixel difference (0-255) from the background that counts as changed.
    pub threshold: u8,
    /// Fraction of the watched region that must change for a frame to have motion.
    pub min_area: f32,
    /// Background learning rate per frame (0-1): how fast changes become background.
    pub learning_rate: f32,
    /// Fraction of the region changing at once that means "the light changed", not motion.
    pub global_change: f32,
    pub start_frames: u32,
    pub end_frames: u32,
    /// Polygons to watch (none: the whole frame).
    pub zones: Vec<Vec<Point>>,
    /// Polygons to ignore (a road, a tree, a neighbour's window).
    pub masks: Vec<Vec<Point>>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            threshold: 25,
            min_area: 0.004,
            learning_rate: 0.03,
            global_change: 0.6,
            start_frames: 2,
            end_frames: 10,
            zones: Vec::new(),
            masks: Vec::new(),
        }
    }
}

/// A bounding box in normalised coordinates.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoundingBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl BoundingBox {
    fn union(self, other: BoundingBox) -> BoundingBox {
        if self.width == 0.0 || self.height == 0.0 {
            return other;
        }
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        let right = (self.x + self.width).max(other.x + other.width);
        let bottom = (self.y + self.height).max(other.y + other.height);
        BoundingBox { x, y, width: right - x, height: bottom - y }
    }
}

/// What one frame changed about the current event.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// Motion began at `time_us` (the first frame of the streak that started it).
    Started { time_us: i64, score: f32, bbox: BoundingBox },
    /// Motion ended at `time_us` (the last frame with motion); `peak` is the largest changed
    /// fraction seen, `bbox` the union of every frame's box.
    Ended { time_us: i64, peak: f32, bbox: BoundingBox },
}

/// What a single frame looked like (for tests and tuning).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FrameAnalysis {
    /// Fraction of the watched region that is moving: differs from the background and
    /// changed since the previous analysed frame.
    pub changed: f32,
    pub bbox: BoundingBox,
    /// The frame was treated as a global lighting change.
    pub global: bool,
    /// Mean brightness difference from the background (the lighting drift).
    pub shift: f32,
}

/// A mean shift beyond this many levels means the light is changing.
const LIGHT_CHANGING: f32 = 3.0;
/// Background learning rate while the light changes: keep up with it.
const FAST_LEARNING: f32 = 0.5;
/// Pixel values this close to black or white are clipped: they cannot follow a light change.
const CLIPPED: u8 = 8;
/// Learning rate for changed pixels that did not change since the previous analysed frame:
/// about two seconds at 5 fps to absorb a stopped object or a ghost.
const STILL_LEARNING: f32 = 0.35;

pub struct Detector {
    config: DetectorConfig,
    width: usize,
    height: usize,
    background: Vec<f32>,
    /// The previous analysed frame, and which of its pixels differed from the background.
    previous: Vec<u8>,
    foreground: Vec<bool>,
    /// Pixels that count (inside a zone, outside every mask).
    watched: Vec<bool>,
    watched_count: usize,
    streak: u32,
    streak_start_us: i64,
    quiet: u32,
    active: bool,
    last_motion_us: i64,
    peak: f32,
    bbox: BoundingBox,
}

impl Detector {
    pub fn new(config: DetectorConfig, width: usize, height: usize) -> Detector {
        let watched = region(&config, width, height);
        let watched_count = watched.iter().filter(|w| **w).count().max(1);
        Detector {
            config,
            width,
            height,
            background: Vec::new(),
            previous: Vec::new(),
            foreground: vec![false; width * height],
            watched,
            watched_count,
            streak: 0,
            streak_start_us: 0,
            quiet: 0,
            active: false,
            last_motion_us: 0,
            peak: 0.0,
            bbox: BoundingBox::default(),
        }
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Feeds one grayscale frame (`width × height` bytes, row-major) taken at `time_us`.
    pub fn process(&mut self, gray: &[u8], time_us: i64) -> (FrameAnalysis, Option<Update>) {
        assert_eq!(gray.len(), self.width * self.height, "frame size does not match the detector");
        if self.background.is_empty() {
            self.background = gray.iter().map(|&p| f32::from(p)).collect();
            self.previous = gray.to_vec();
            return (FrameAnalysis::default(), None);
        }
        let analysis = self.analyse(gray);
        self.learn(gray, analysis);
        self.previous.copy_from_slice(gray);
        let moving = !analysis.global && analysis.changed >= self.config.min_area;
        (analysis, self.advance(moving, analysis, time_us))
    }

    fn analyse(&mut self, gray: &[u8]) -> FrameAnalysis {
        // The global brightness shift: mean difference over the watched region.
        let mut sum = 0.0f64;
        for (i, &p) in gray.iter().enumerate() {
            if self.watched[i] {
                sum += f64::from(p) - f64::from(self.background[i]);
            }
        }
        let shift = (sum / self.watched_count as f64) as f32;
        let light_changing = shift.abs() > LIGHT_CHANGING;
        let threshold = f32::from(self.config.threshold);
        let still = threshold / 2.0;
        let mut differing = 0usize;
        let (mut changed, mut min_x, mut min_y, mut max_x, mut max_y) = (0usize, usize::MAX, usize::MAX, 0, 0);
        for y in 0..self.height {
            for x in 0..self.width {
                let i = y * self.width + x;
                let clipped = gray[i] <= CLIPPED || gray[i] >= 255 - CLIPPED;
                let differs = (f32::from(gray[i]) - self.background[i] - shift).abs() > threshold;
                self.foreground[i] = differs;
                if light_changing && clipped || !self.watched[i] || !differs {
                    continue;
                }
                differing += 1;
                let moved = (f32::from(gray[i]) - f32::from(self.previous[i])).abs() > still;
                if moved {
                    changed += 1;
                    min_x = min_x.min(x);
                    min_y = min_y.min(y);
                    max_x = max_x.max(x);
                    max_y = max_y.max(y);
                }
            }
        }
        let fraction = changed as f32 / self.watched_count as f32;
        let bbox = if changed == 0 {
            BoundingBox::default()
        } else {
            BoundingBox {
                x: min_x as f32 / self.width as f32,
                y: min_y as f32 / self.height as f32,
                width: (max_x - min_x + 1) as f32 / self.width as f32,
                height: (max_y - min_y + 1) as f32 / self.height as f32,
            }
        };
        let global = differing as f32 / self.watched_count as f32 >= self.config.global_change;
        FrameAnalysis { changed: fraction, bbox, global, shift }
    }

    fn learn(&mut self, gray: &[u8], analysis: FrameAnalysis) {
        if analysis.global {
            // A new lighting regime: start over from what the camera sees now.
            for (b, &p) in self.background.iter_mut().zip(gray) {
                *b = f32::from(p);
            }
            return;
        }
        let base = if analysis.shift.abs() > LIGHT_CHANGING { FAST_LEARNING } else { self.config.learning_rate };
        let still = f32::from(self.config.threshold) / 2.0;
        for i in 0..gray.len() {
            let p = f32::from(gray[i]);
            let unmoved = (p - f32::from(self.previous[i])).abs() <= still;
            let rate = if self.foreground[i] && unmoved { base.max(STILL_LEARNING) } else { base };
            self.background[i] += (p - self.background[i]) * rate;
        }
    }

    fn advance(&mut self, moving: bool, analysis: FrameAnalysis, time_us: i64) -> Option<Update> {
        if moving {
            if self.streak == 0 {
                self.streak_start_us = time_us;
            }
            self.streak += 1;
            self.quiet = 0;
            self.last_motion_us = time_us;
            self.peak = self.peak.max(analysis.changed);
            self.bbox = self.bbox.union(analysis.bbox);
            if !self.active && self.streak >= self.config.start_frames {
                self.active = true;
                return Some(Update::Started { time_us: self.streak_start_us, score: self.peak, bbox: self.bbox });
            }
            return None;
        }
        self.streak = 0;
        if !self.active {
            self.peak = 0.0;
            self.bbox = BoundingBox::default();
            return None;
        }
        self.quiet += 1;
        if self.quiet < self.config.end_frames {
            return None;
        }
        self.active = false;
        let ended = Update::Ended { time_us: self.last_motion_us, peak: self.peak, bbox: self.bbox };
        self.peak = 0.0;
        self.bbox = BoundingBox::default();
        Some(ended)
    }
}

/// Which pixels are watched: inside any zone (or all, with none) and outside every mask,
/// judged at each pixel's centre.
fn region(config: &DetectorConfig, width: usize, height: usize) -> Vec<bool> {
    let mut watched = vec![false; width * height];
    for y in 0..height {
        for x in 0..width {
            let point = ((x as f32 + 0.5) / width as f32, (y as f32 + 0.5) / height as f32);
            let in_zone = config.zones.is_empty() || config.zones.iter().any(|z| inside(z, point));
            watched[y * width + x] = in_zone && !config.masks.iter().any(|m| inside(m, point));
        }
    }
    watched
}

/// Even-odd point-in-polygon test.
pub fn inside(polygon: &[Point], (px, py): Point) -> bool {
    let mut result = false;
    let n = polygon.len();
    for i in 0..n {
        let (xi, yi) = polygon[i];
        let (xj, yj) = polygon[(i + n - 1) % n];
        if (yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi {
            result = !result;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 64;
    const H: usize = 36;
    const FRAME_US: i64 = 200_000;

    /// A textured static scene, brightened by `brightness`, with a bright square at `square`.
    fn scene(brightness: i32, square: Option<(usize, usize)>) -> Vec<u8> {
        let mut frame: Vec<u8> = (0..W * H)
            .map(|i| {
                let base = 60 + ((i % W) * 3 + (i / W) * 5) % 80;
                (base as i32 + brightness).clamp(0, 255) as u8
            })
            .collect();
        if let Some((sx, sy)) = square {
            for y in sy..(sy + 6).min(H) {
                for x in sx..(sx + 6).min(W) {
                    frame[y * W + x] = 250;
                }
            }
        }
        frame
    }

    fn run(detector: &mut Detector, frames: impl IntoIterator<Item = Vec<u8>>) -> Vec<(usize, Update)> {
        let mut updates = Vec::new();
        for (i, frame) in frames.into_iter().enumerate() {
            if let (_, Some(update)) = detector.process(&frame, i as i64 * FRAME_US) {
                updates.push((i, update));
            }
        }
        updates
    }

    #[test]
    fn a_moving_object_starts_and_ends_one_event() {
        let mut detector = Detector::new(DetectorConfig::default(), W, H);
        let frames =
            (0..60).map(|i| if (20..35).contains(&i) { scene(0, Some((2 * (i - 20), 10))) } else { scene(0, None) });
        let updates = run(&mut detector, frames);
        assert_eq!(updates.len(), 2, "{updates:?}");
        let (start_frame, Update::Started { time_us, bbox, .. }) = &updates[0] else { panic!("{updates:?}") };
        assert_eq!(*start_frame, 21, "starts after two frames with motion");
        assert_eq!(*time_us, 20 * FRAME_US, "dated from the first frame with motion");
        assert!(bbox.y > 0.2 && bbox.y < 0.35, "{bbox:?}");
        let (end_frame, Update::Ended { time_us, peak, bbox }) = &updates[1] else { panic!("{updates:?}") };
        // The square leaves a ghost in the background for a frame; the event ends within a
        // couple of frames of the truth, plus the hysteresis.
        assert!((*time_us - 35 * FRAME_US).abs() <= 2 * FRAME_US, "ended at {time_us}");
        assert!(*end_frame <= 35 + 10 + 2);
        assert!(*peak > 0.01);
        assert!(bbox.width > 0.4, "the union of the path: {bbox:?}");
    }

    #[test]
    fn an_object_that_stops_ends_its_event_and_leaves_no_ghost() {
        let mut detector = Detector::new(DetectorConfig::default(), W, H);
        // Moves for 10 frames, stands still for 20 (a parcel put down), then is taken away.
        let frames = (0..80).map(|i| match i {
            0..10 => scene(0, None),
            10..20 => scene(0, Some((2 * (i - 10), 10))),
            20..40 => scene(0, Some((20, 10))),
            40..50 => scene(0, Some((20 + 2 * (i - 40), 10))),
            _ => scene(0, None),
        });
        let updates = run(&mut detector, frames);
        let kinds: Vec<(usize, bool)> =
            updates.iter().map(|(i, u)| (*i, matches!(u, Update::Started { .. }))).collect();
        assert_eq!(kinds.len(), 4, "two events, each ended: {updates:?}");
        assert!(kinds[1].0 < 40, "the first ends while the parcel stands still: {kinds:?}");
        let Update::Ended { time_us, .. } = updates[3].1 else { panic!() };
        assert!(time_us <= 51 * FRAME_US, "no ghost keeps the second going: {updates:?}");
    }

    #[test]
    fn a_static_scene_and_a_brightness_ramp_are_quiet() {
        let mut detector = Detector::new(DetectorConfig::default(), W, H);
        // Sunset in 10 s: brightness falls by 100 levels, 2 a frame; the darkest parts of the
        // scene clip at black on the way.
        let frames = (0..50).map(|i| scene(-2 * i, None)).chain((0..20).map(|_| scene(-100, None)));
        assert_eq!(run(&mut detector, frames), vec![]);
    }

    #[test]
    fn motion_during_a_light_change_is_still_seen() {
        let mut detector = Detector::new(DetectorConfig::default(), W, H);
        let frames = (0..40).map(|i| scene(-i, if (10..30).contains(&i) { Some((2 * i as usize, 10)) } else { None }));
        let updates = run(&mut detector, frames);
        assert!(matches!(updates.first(), Some((11, Update::Started { .. }))), "{updates:?}");
    }

    #[test]
    fn a_sudden_global_change_is_not_motion() {
        let mut detector = Detector::new(DetectorConfig::default(), W, H);
        // The camera switches to infrared: the texture's contrast inverts at once.
        let ir: Vec<u8> = scene(0, None).iter().map(|p| 255 - p).collect();
        let frames = (0..10).map(|_| scene(0, None)).chain((0..20).map(|_| ir.clone()));
        assert_eq!(run(&mut detector, frames), vec![]);
    }

    #[test]
    fn zones_and_masks_limit_what_counts() {
        let left_half = vec![(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)];
        let moving_right = |i: usize| scene(0, Some((40 + (i % 3) * 4, 10)));
        let zoned = DetectorConfig { zones: vec![left_half.clone()], ..DetectorConfig::default() };
        let frames = (0..30).map(|i| if i >= 5 { moving_right(i) } else { scene(0, None) });
        assert_eq!(run(&mut Detector::new(zoned, W, H), frames.clone()), vec![], "outside the zone");
        let masked = DetectorConfig {
            masks: vec![vec![(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]],
            ..DetectorConfig::default()
        };
        assert_eq!(run(&mut Detector::new(masked, W, H), frames.clone()), vec![], "masked");
        let plain = run(&mut Detector::new(DetectorConfig::default(), W, H), frames);
        assert!(matches!(plain.first(), Some((_, Update::Started { .. }))), "without them it is motion");
    }

    #[test]
    fn point_in_polygon() {
        let triangle = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)];
        assert!(inside(&triangle, (0.2, 0.2)));
        assert!(!inside(&triangle, (0.8, 0.8)));
        assert!(!inside(&[], (0.5, 0.5)));
    }
}
