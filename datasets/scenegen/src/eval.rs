//! Scoring a counter against a scene's truth, at any analysis rate, with or without a real detector.
//!
//! * [`analysed_frames`]: which frames an agent analyses at a given `analysis_fps` (the same rule as the
//!   media layer's sampler: by timestamp, evenly).
//! * [`Target`]: what a detector in a given mode sees of an actor (the face box, or the whole cut-out as a
//!   person detector boxes it) and which point of it a counter tests against the line.
//! * [`synthetic_detections`]: detections derived from the truth with a detector's faults (box jitter, runs
//!   of missed frames, false positives), seeded, for tests that must run without models.
//! * [`score_crossings`]: matches counted crossings to the truth's, per direction, and lists what was missed
//!   and what was counted that did not happen (double and false counts).
//! * [`IdAudit`]: id switches, from the boxes a tracker reported.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::truth::{Direction, Truth, TruthActor};

/// Frames analysed at `rate` frames per second from a `fps` video of `frames` frames, starting at frame
/// `phase`. Mirrors `checkpoint-media`'s sampler: a frame is kept when its timestamp reaches the next due
/// time (with an eighth of an interval of slack), and the due time steps by exactly one interval, so the
/// average rate is exact and the gaps are even (at 2 fps from 25: alternately 12 and 13 frames).
pub fn analysed_frames(frames: u64, fps: u32, rate: f64, phase: u64) -> Vec<u64> {
    let fps = f64::from(fps.max(1));
    if !(rate.is_finite() && rate > 0.0) || rate >= fps {
        return (phase..frames).collect();
    }
    let interval_ns = (1e9 / rate) as u64;
    let slack = interval_ns / 8;
    let mut out = Vec::new();
    let mut due: Option<u64> = None;
    for k in phase..frames {
        let p = (k as f64 / fps * 1e9).round() as u64;
        match due {
            Some(d) if p + slack < d => continue,
            Some(d) => {
                let next = d + interval_ns;
                due = Some(if next <= p { p + interval_ns } else { next });
            }
            None => due = Some(p + interval_ns),
        }
        out.push(k);
    }
    out
}

/// What a detector boxes and which point of the box is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Face boxes (a face detector), counted at the box centre: the agent's faces mode.
    Faces,
    /// Person boxes (the cut-out, clipped to the picture as a person detector boxes what it sees), counted
    /// at the bottom centre: the agent's people mode.
    People,
}

impl Target {
    /// The box a perfect detector would report for `actor` at `frame`, if it would report one: a face only
    /// when wholly inside the picture (YuNet misses faces cut by the border), a person when at least half of
    /// the cut-out is inside.
    pub fn visible_box(self, truth: &Truth, actor: &TruthActor, frame: u64) -> Option<[f32; 4]> {
        let (w, h) = (truth.width as f32, truth.height as f32);
        match self {
            Target::Faces => {
                let b = actor.box_at(frame)?;
                (b[0] >= 0.0 && b[1] >= 0.0 && b[0] + b[2] <= w && b[1] + b[3] <= h).then_some(b)
            }
            Target::People => {
                let b = actor.cutout_at(frame)?;
                let x0 = b[0].max(0.0);
                let y0 = b[1].max(0.0);
                let x1 = (b[0] + b[2]).min(w);
                let y1 = (b[1] + b[3]).min(h);
                if x1 <= x0 || y1 <= y0 {
                    return None;
                }
                let inside = (x1 - x0) * (y1 - y0) / (b[2] * b[3]);
                (inside >= 0.5).then_some([x0, y0, x1 - x0, y1 - y0])
            }
        }
    }

    /// The counted point of a box `[x, y, w, h]`.
    pub fn anchor(self, b: [f32; 4]) -> [f32; 2] {
        match self {
            Target::Faces => [b[0] + b[2] / 2.0, b[1] + b[3] / 2.0],
            Target::People => [b[0] + b[2] / 2.0, b[1] + b[3]],
        }
    }

    /// When `actor`'s counted point made its last crossing of the line, over the frames in which the
    /// detector would see it: from the last frame it was more than `band_px` from the line on the side it
    /// came from, to the first frame it was more than `band_px` from the line on the side it went to (a
    /// counter with that hysteresis counts at the latter; someone who stops on the line for six seconds
    /// takes six seconds to cross). Seconds; `None` if it never crosses in view.
    pub fn crossing_span(
        self,
        truth: &Truth,
        actor: &TruthActor,
        band_px: f32,
    ) -> Option<(f64, f64)> {
        // (frame, signed distance) of every frame outside the band.
        let outside: Vec<(u64, f32)> = (actor.first_frame..=actor.last_frame)
            .filter_map(|k| {
                let b = self.visible_box(truth, actor, k)?;
                let s = truth.line.side(self.anchor(b));
                (s.abs() > band_px).then_some((k, s))
            })
            .collect();
        let j = (1..outside.len())
            .rev()
            .find(|&j| (outside[j].1 > 0.0) != (outside[j - 1].1 > 0.0))?;
        let fps = truth.fps as f64;
        Some((outside[j - 1].0 as f64 / fps, outside[j].0 as f64 / fps))
    }
}

/// A detector's faults, for [`synthetic_detections`]. Rates are per analysed frame, so a "run of 1-3 missed
/// frames" is 40-120 ms at 25 fps and 0.5-1.5 s at 2 fps: the low rates get the harder case.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorNoise {
    /// Standard deviation of each box edge's position, as a fraction of the box height.
    pub jitter: f32,
    /// Probability per analysed frame that a visible person starts a run of missed detections.
    pub miss_rate: f64,
    /// Longest run of missed frames (each run is 1..=this long, uniformly).
    pub max_miss_run: u32,
    /// Mean number of false detections per analysed frame (each lasts one frame, at a random place, of a
    /// size like the real ones).
    pub false_per_frame: f64,
    /// Scores of real detections are drawn uniformly from this range.
    pub score: (f32, f32),
    /// Scores of false detections.
    pub false_score: (f32, f32),
}

impl Default for DetectorNoise {
    /// Worse than the real detectors on the generated scenes (`checkpoint-bench counting-rates` measures
    /// YuNet finding every wholly visible face with 0.001 false boxes per frame): 3% jitter, a run of 1-3
    /// missed frames starting in 3% of frames (about 6% of sightings lost, in runs that at 2 fps hide a
    /// person for up to 1.5 s), and a false box at a random place every 50 frames.
    fn default() -> Self {
        Self {
            jitter: 0.03,
            miss_rate: 0.03,
            max_miss_run: 3,
            false_per_frame: 0.02,
            score: (0.65, 0.95),
            false_score: (0.6, 0.75),
        }
    }
}

/// One synthetic detection: a box `[x, y, w, h]`, a score, and the actor it shows (`None`: false positive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticDetection {
    pub bbox: [f32; 4],
    pub score: f32,
    pub actor: Option<u32>,
}

/// Detections for each of `frames` (analysed frames, in order) as a `target`-mode detector with `noise`
/// would report them. Deterministic for a given seed.
pub fn synthetic_detections(
    truth: &Truth,
    target: Target,
    frames: &[u64],
    noise: &DetectorNoise,
    seed: u64,
) -> Vec<Vec<SyntheticDetection>> {
    let mut rng = Rng::stream(seed, 0xDE7, frames.len() as u64);
    // Per actor: analysed frames of missed detection left in the current run, and whether the previous
    // frame ended a run (runs are separated by at least one detection: "missed for 1-3 frames", not for 6).
    let mut missing = vec![0u32; truth.actors.len()];
    let mut just_ended = vec![false; truth.actors.len()];
    let typical = truth
        .actors
        .iter()
        .filter_map(|a| {
            let k = a.full_face_frames?[0];
            target.visible_box(truth, a, k)
        })
        .next()
        .unwrap_or([0.0, 0.0, 64.0, 80.0]);
    let (w, h) = (truth.width as f32, truth.height as f32);
    frames
        .iter()
        .map(|&k| {
            let mut out = Vec::new();
            for (i, a) in truth.actors.iter().enumerate() {
                let Some(b) = target.visible_box(truth, a, k) else {
                    missing[i] = 0;
                    just_ended[i] = false;
                    continue;
                };
                if missing[i] > 0 {
                    missing[i] -= 1;
                    just_ended[i] = missing[i] == 0;
                    continue;
                }
                if !std::mem::take(&mut just_ended[i]) && rng.chance(noise.miss_rate) {
                    missing[i] = rng.below(noise.max_miss_run.max(1) as usize) as u32;
                    just_ended[i] = missing[i] == 0;
                    continue;
                }
                let s = noise.jitter as f64 * b[3] as f64;
                let mut e = || (gaussian(&mut rng) * s) as f32;
                let (x0, y0) = (b[0] + e(), b[1] + e());
                let (x1, y1) = (b[0] + b[2] + e(), b[1] + b[3] + e());
                if x1 - x0 < 2.0 || y1 - y0 < 2.0 {
                    continue;
                }
                out.push(SyntheticDetection {
                    bbox: [x0, y0, x1 - x0, y1 - y0],
                    score: rng.range(noise.score.0 as f64, noise.score.1 as f64) as f32,
                    actor: Some(a.actor_id),
                });
            }
            let mut fp = noise.false_per_frame;
            while fp > 0.0 && rng.chance(fp.min(1.0)) {
                fp -= 1.0;
                let scale = rng.range(0.7, 1.3) as f32;
                let (bw, bh) = (typical[2] * scale, typical[3] * scale);
                out.push(SyntheticDetection {
                    bbox: [
                        rng.range(0.0, (w - bw).max(1.0) as f64) as f32,
                        rng.range(0.0, (h - bh).max(1.0) as f64) as f32,
                        bw,
                        bh,
                    ],
                    score: rng.range(noise.false_score.0 as f64, noise.false_score.1 as f64) as f32,
                    actor: None,
                });
            }
            // A detector reports in no particular order; neither must the tracker rely on one.
            rng.shuffle(&mut out);
            out
        })
        .collect()
}

/// Actors whose final crossing the detections show: a detection of theirs with its counted point more than
/// `band_px` from the line on the side they came from, and a later one beyond the band on the side they went
/// to. When a detector misses someone all the way from the picture's edge to the line, no tracker can know
/// which way they crossed; a fair test expects only what was observable. `dets[i]` are the detections of
/// analysed frame `frames[i]`, as [`synthetic_detections`] returns them.
pub fn observable_crossers(
    truth: &Truth,
    target: Target,
    dets: &[Vec<SyntheticDetection>],
    band_px: f32,
) -> Vec<u32> {
    truth
        .actors
        .iter()
        .filter(|a| a.direction != Direction::None)
        .filter(|a| {
            // The side the actor ends on, +1 = the line's "in" side.
            let dest = if a.direction == Direction::In {
                1.0
            } else {
                -1.0
            };
            let mut seen_origin = false;
            for frame in dets {
                for d in frame.iter().filter(|d| d.actor == Some(a.actor_id)) {
                    let s = truth.line.side(target.anchor(d.bbox));
                    if s.abs() <= band_px {
                        continue;
                    }
                    if s * dest < 0.0 {
                        seen_origin = true;
                    } else if seen_origin {
                        return true;
                    }
                }
            }
            false
        })
        .map(|a| a.actor_id)
        .collect()
}

/// Standard normal (Box-Muller).
fn gaussian(rng: &mut Rng) -> f64 {
    let u = rng.unit().max(1e-12);
    let v = rng.unit();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A crossing as a counter reported it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Counted {
    /// `Direction::In` or `Direction::Out`.
    pub direction: Direction,
    /// Stream time of the crossing, seconds.
    pub ts: f64,
    /// The counter's track id.
    pub track: u64,
}

/// How a counter did against the truth.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CountScore {
    pub truth_in: usize,
    pub truth_out: usize,
    /// Truth crossings matched by a counted crossing in the same direction.
    pub hit_in: usize,
    pub hit_out: usize,
    /// Counted crossings that match no truth crossing.
    pub extra_in: usize,
    pub extra_out: usize,
    /// Of the extras, those of a track that also has a matched crossing, or in the same direction and near
    /// in time to a matched one: the same person counted twice.
    pub double: usize,
    /// Actor ids of the truth crossings not counted.
    pub missed: Vec<u32>,
    /// Stream times and tracks of the extras.
    pub extras: Vec<(f64, u64)>,
    /// Crossings left out of the expectation because the detections never showed them (see
    /// [`observable_crossers`]) and nothing counted them either.
    pub unobservable: usize,
}

impl CountScore {
    /// Adds another run's figures (for totals over phases or scenes).
    pub fn add(&mut self, o: &CountScore) {
        self.truth_in += o.truth_in;
        self.truth_out += o.truth_out;
        self.hit_in += o.hit_in;
        self.hit_out += o.hit_out;
        self.extra_in += o.extra_in;
        self.extra_out += o.extra_out;
        self.double += o.double;
        self.missed.extend(&o.missed);
        self.unobservable += o.unobservable;
        self.extras.extend(&o.extras);
    }

    /// Share of entries counted (1 when there were none).
    pub fn recall_in(&self) -> f64 {
        ratio(self.hit_in, self.truth_in)
    }

    /// Share of exits counted (1 when there were none).
    pub fn recall_out(&self) -> f64 {
        ratio(self.hit_out, self.truth_out)
    }

    /// Every direction at least `min` counted, and nothing counted that did not happen.
    pub fn meets(&self, min: f64) -> bool {
        self.recall_in() >= min
            && self.recall_out() >= min
            && self.extra_in == 0
            && self.extra_out == 0
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Matches `counted` to the truth crossings of `target`'s counted point (see [`Target::crossing_span`],
/// with the counter's hysteresis `band_px`): as many truth crossings as possible each take a counted
/// crossing of their direction within `tolerance_s` of their span (as `tests/counting.rs` does for the
/// real agent); counted crossings left over are extras. Actors whose counted point never crosses in view
/// (possible only in people mode, for a cut-out that never fully shows) are not expected, nor are those
/// outside `observable` when it is given (a counted crossing of theirs is then a hit, not an extra).
pub fn score_crossings(
    truth: &Truth,
    target: Target,
    counted: &[Counted],
    band_px: f32,
    tolerance_s: f64,
    observable: Option<&[u32]>,
) -> CountScore {
    let mut score = CountScore::default();
    // Truth crossings: (actor, direction, span).
    let mut crossings = Vec::new();
    for a in &truth.actors {
        if a.direction == Direction::None {
            continue;
        }
        let Some(span) = target.crossing_span(truth, a, band_px) else {
            continue;
        };
        crossings.push((a.actor_id, a.direction, span));
    }
    let expected = |actor: u32| observable.is_none_or(|o| o.contains(&actor));
    // A maximum matching between truth crossings and counted ones (same direction, within the tolerance
    // of the span): with several people on the line at once, who counted for whom is not knowable, and
    // the fairest score is the most crossings that can be accounted for. Kuhn's augmenting paths, each
    // truth crossing trying its nearest counted crossings first.
    let mut options: Vec<Vec<usize>> = crossings
        .iter()
        .map(|(_, dir, (t0, t1))| {
            let off = |c: &Counted| (t0 - c.ts).max(c.ts - t1).max(0.0);
            let mut js: Vec<usize> = (0..counted.len())
                .filter(|&j| counted[j].direction == *dir && off(&counted[j]) <= tolerance_s)
                .collect();
            js.sort_by(|&x, &y| off(&counted[x]).total_cmp(&off(&counted[y])));
            js
        })
        .collect();
    let mut owner: Vec<Option<usize>> = vec![None; counted.len()];
    for i in 0..crossings.len() {
        let mut seen = vec![false; counted.len()];
        augment(i, &mut options, &mut owner, &mut seen);
    }
    let mut used = vec![false; counted.len()];
    let mut done = vec![false; crossings.len()];
    let mut matched_tracks = Vec::new();
    let mut matched_times = Vec::new();
    for (j, o) in owner.iter().enumerate() {
        let Some(i) = *o else { continue };
        done[i] = true;
        used[j] = true;
        matched_tracks.push(counted[j].track);
        matched_times.push((counted[j].direction, counted[j].ts));
    }
    for (c, d) in crossings.iter().zip(&done) {
        if !*d && !expected(c.0) {
            score.unobservable += 1;
            continue;
        }
        let (truth_n, hit) = match c.1 {
            Direction::In => (&mut score.truth_in, &mut score.hit_in),
            _ => (&mut score.truth_out, &mut score.hit_out),
        };
        *truth_n += 1;
        if *d {
            *hit += 1;
        } else {
            score.missed.push(c.0);
        }
    }
    for (c, _) in counted.iter().zip(&used).filter(|(_, u)| !**u) {
        score.extras.push((c.ts, c.track));
        match c.direction {
            Direction::In => score.extra_in += 1,
            _ => score.extra_out += 1,
        }
        let twice = matched_tracks.contains(&c.track)
            || matched_times
                .iter()
                .any(|(d, t)| *d == c.direction && (t - c.ts).abs() <= tolerance_s);
        if twice {
            score.double += 1;
        }
    }
    score
}

/// One step of Kuhn's algorithm: finds a counted crossing for truth crossing `i`, moving earlier
/// assignments along if that frees one.
fn augment(
    i: usize,
    options: &mut [Vec<usize>],
    owner: &mut [Option<usize>],
    seen: &mut [bool],
) -> bool {
    for k in 0..options[i].len() {
        let j = options[i][k];
        if seen[j] {
            continue;
        }
        seen[j] = true;
        let free = match owner[j] {
            None => true,
            Some(other) => augment(other, options, owner, seen),
        };
        if free {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}

/// Id switches, from what a tracker reported: each reported box is attributed to the actor whose visible
/// box it overlaps most (IoU at least 0.3). A *fragment* is an actor's track id changing (one person, two
/// tracks); a *swap* is a track id moving to another actor (two people, one track: what makes a counter
/// count the wrong person).
#[derive(Debug, Default)]
pub struct IdAudit {
    last_track_of_actor: std::collections::HashMap<u32, u64>,
    last_actor_of_track: std::collections::HashMap<u64, u32>,
    pub fragments: usize,
    pub swaps: usize,
}

impl IdAudit {
    /// Records the boxes reported for `frame` as `(track id, [x, y, w, h])`.
    pub fn observe(
        &mut self,
        truth: &Truth,
        target: Target,
        frame: u64,
        reported: &[(u64, [f32; 4])],
    ) {
        let visible: Vec<(u32, [f32; 4])> = truth
            .actors
            .iter()
            .filter_map(|a| Some((a.actor_id, target.visible_box(truth, a, frame)?)))
            .collect();
        for &(track, b) in reported {
            let best = visible
                .iter()
                .map(|(id, v)| (*id, iou(b, *v)))
                .filter(|(_, o)| *o >= 0.3)
                .max_by(|x, y| x.1.total_cmp(&y.1));
            let Some((actor, _)) = best else {
                continue;
            };
            if let Some(prev) = self.last_track_of_actor.insert(actor, track) {
                if prev != track {
                    self.fragments += 1;
                }
            }
            if let Some(prev) = self.last_actor_of_track.insert(track, actor) {
                if prev != actor {
                    self.swaps += 1;
                }
            }
        }
    }
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let ih = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if iw <= 0.0 || ih <= 0.0 {
        return 0.0;
    }
    let inter = iw * ih;
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_matches_the_media_sampler() {
        // 25 fps to 5: every fifth frame.
        assert_eq!(analysed_frames(26, 25, 5.0, 0), vec![0, 5, 10, 15, 20, 25]);
        // 25 to 2.5: every tenth (the slack lets the second frame come one early, as in the media layer);
        // to 2: alternately 12 and 13 frames apart (12.5 on average).
        assert_eq!(analysed_frames(43, 25, 2.5, 3), vec![3, 12, 22, 32, 42]);
        let f = analysed_frames(1500, 25, 2.0, 0);
        assert!((120..=121).contains(&f.len()), "{}", f.len());
        // The first gap may be one frame short (the slack), then they alternate.
        let gaps: Vec<u64> = f.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g == 12 || *g == 13), "{gaps:?}");
        // At or above the video's rate: every frame.
        assert_eq!(analysed_frames(5, 25, 25.0, 0), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn scoring_matches_each_crossing_once() {
        let truth: Truth = serde_json::from_str(
            r#"{"version":1,"generator":"t","seed":1,"video":"v","width":100,"height":100,"fps":10,
            "frames":40,"duration_s":4.0,"faces_set":"x",
            "line":{"a":[0.0,50.0],"b":[100.0,50.0],"in_normal":[0.0,1.0],"in_side":""},
            "actors":[
              {"actor_id":0,"identity":"a","photo":"a","direction":"in","crossing_time_s":1.05,
               "crossing_frame":11,"line_crossings":1,"first_frame":0,"last_frame":3,
               "full_face_frames":[0,3],"face_height_px":10.0,"paused":false,"pause_s":0.0,"jitter":false,
               "lane":0,"speed_px_s":10.0,"cutout":[0.0,0.0,10.0,10.0],
               "boxes":[[10.0,20.0,10.0,10.0],[10.0,35.0,10.0,10.0],[10.0,50.0,10.0,10.0],[10.0,65.0,10.0,10.0]]}
            ],"totals":{"in":1,"out":0,"none":0}}"#,
        )
        .unwrap();
        // Centre y: 25, 40, 55, 70: outside a 3 px band at frames 1 and 2; a 10 px band: 0 and 3.
        assert_eq!(
            Target::Faces.crossing_span(&truth, &truth.actors[0], 3.0),
            Some((0.1, 0.2))
        );
        assert_eq!(
            Target::Faces.crossing_span(&truth, &truth.actors[0], 10.0),
            Some((0.0, 0.3))
        );
        let c = |direction, ts, track| Counted {
            direction,
            ts,
            track,
        };
        let s = score_crossings(
            &truth,
            Target::Faces,
            &[c(Direction::In, 0.3, 1)],
            3.0,
            1.0,
            None,
        );
        assert_eq!((s.hit_in, s.extra_in, s.double), (1, 0, 0));
        assert!(s.meets(0.98));
        let s = score_crossings(
            &truth,
            Target::Faces,
            &[
                c(Direction::In, 0.3, 1),
                c(Direction::In, 0.5, 2),
                c(Direction::Out, 0.6, 1),
            ],
            3.0,
            1.0,
            None,
        );
        assert_eq!((s.hit_in, s.extra_in, s.extra_out, s.double), (1, 1, 1, 2));
        assert!(!s.meets(0.98));
        let s = score_crossings(
            &truth,
            Target::Faces,
            &[c(Direction::Out, 0.3, 1)],
            3.0,
            1.0,
            None,
        );
        assert_eq!((s.hit_in, s.missed.clone(), s.extra_out), (0, vec![0], 1));
        // Too late: outside the span by more than the tolerance.
        let s = score_crossings(
            &truth,
            Target::Faces,
            &[c(Direction::In, 1.3, 1)],
            3.0,
            1.0,
            None,
        );
        assert_eq!((s.hit_in, s.extra_in), (0, 1));
        // Not observable and not counted: not expected. Not observable but counted: a hit.
        let s = score_crossings(&truth, Target::Faces, &[], 3.0, 1.0, Some(&[]));
        assert_eq!((s.truth_in, s.unobservable, s.missed.len()), (0, 1, 0));
        assert!(s.meets(0.98));
        let s = score_crossings(
            &truth,
            Target::Faces,
            &[c(Direction::In, 0.3, 1)],
            3.0,
            1.0,
            Some(&[]),
        );
        assert_eq!((s.truth_in, s.hit_in, s.unobservable), (1, 1, 0));
        // People: the cut-out (10x10 from the face box's corner) is counted at its bottom centre, 5 px
        // lower: y 30, 45, 60, 75.
        assert_eq!(
            Target::People.crossing_span(&truth, &truth.actors[0], 3.0),
            Some((0.1, 0.2))
        );
        assert_eq!(
            Target::People.crossing_span(&truth, &truth.actors[0], 6.0),
            Some((0.0, 0.2))
        );
    }

    /// One actor walking down across the line of a 200x400 picture for 300 frames.
    fn walker_truth() -> Truth {
        let boxes: Vec<String> = (0..300)
            .map(|k| format!("[90.0,{:.1},20.0,20.0]", 40.0 + k as f32))
            .collect();
        serde_json::from_str(&format!(
            r#"{{"version":1,"generator":"t","seed":1,"video":"v","width":200,"height":400,"fps":25,
            "frames":300,"duration_s":12.0,"faces_set":"x",
            "line":{{"a":[0.0,200.0],"b":[200.0,200.0],"in_normal":[0.0,1.0],"in_side":""}},
            "actors":[{{"actor_id":0,"identity":"a","photo":"a","direction":"in","crossing_time_s":6.0,
               "crossing_frame":150,"line_crossings":1,"first_frame":0,"last_frame":299,
               "full_face_frames":[0,299],"face_height_px":20.0,"paused":false,"pause_s":0.0,"jitter":false,
               "lane":0,"speed_px_s":25.0,"cutout":[0.0,0.0,20.0,20.0],"boxes":[{}]}}],
            "totals":{{"in":1,"out":0,"none":0}}}}"#,
            boxes.join(",")
        ))
        .unwrap()
    }

    #[test]
    fn synthetic_misses_come_in_separate_runs_of_at_most_three() {
        let truth = walker_truth();
        let frames: Vec<u64> = (0..300).collect();
        let noise = DetectorNoise {
            miss_rate: 0.3,
            false_per_frame: 0.0,
            ..DetectorNoise::default()
        };
        let dets = synthetic_detections(&truth, Target::Faces, &frames, &noise, 5);
        assert_eq!(
            dets,
            synthetic_detections(&truth, Target::Faces, &frames, &noise, 5)
        );
        let seen: Vec<bool> = dets.iter().map(|f| !f.is_empty()).collect();
        let mut run = 0;
        let mut runs = 0;
        for &s in &seen {
            if s {
                runs += usize::from(run > 0);
                run = 0;
            } else {
                run += 1;
                assert!(run <= 3, "{seen:?}");
            }
        }
        assert!(runs > 20, "misses happen: {runs}");
        // Jitter keeps boxes near the truth.
        for (k, f) in dets.iter().enumerate() {
            for d in f {
                assert!((d.bbox[1] - (40.0 + k as f32)).abs() < 4.0);
            }
        }
        // Every frame detected: observable; the first 170 frames missing: not.
        let band = 5.0;
        assert_eq!(
            observable_crossers(&truth, Target::Faces, &dets, band),
            vec![0]
        );
        let mut blind = dets.clone();
        for f in blind.iter_mut().take(170) {
            f.clear();
        }
        assert!(observable_crossers(&truth, Target::Faces, &blind, band).is_empty());
    }
}
