//! Where every actor is in every frame: paths, lanes, start times, and the truth derived from them.

use std::f64::consts::{PI, TAU};

use crate::rng::Rng;
use crate::sprite::Sprite;
use crate::truth::{box_centre, Direction, Totals, Truth, TruthActor, TruthLine, TRUTH_VERSION};
use crate::{Line, SceneError, SceneSpec};

/// Largest sideways deviation of a path from its straight base line (tilt + curve + sway), pixels.
pub(crate) const MAX_LATERAL: f64 = 26.0;
/// Minimum free space between two cut-outs, pixels.
pub(crate) const GAP: f64 = 16.0;
/// The first actor enters no earlier than this (seconds).
const LEAD_S: f64 = 0.4;
/// The last actor has left at least this long before the end (seconds).
const TAIL_S: f64 = 0.3;
/// Granularity of the start-time search (seconds).
const STEP_S: f64 = 0.2;
/// Upper bound for scenes whose duration is derived.
const MAX_AUTO_S: f64 = 4.0 * 3600.0;

/// The counting line in pixel space: `p = a + u·d + v·n`, `d` along the line, `n` the unit normal to the
/// "in" side.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub w: f64,
    pub h: f64,
    pub a: [f64; 2],
    pub d: [f64; 2],
    pub n: [f64; 2],
    pub len: f64,
}

impl Geom {
    pub(crate) fn new(line: &Line, w: u32, h: u32) -> Geom {
        let a = [line.a[0] as f64, line.a[1] as f64];
        let b = [line.b[0] as f64, line.b[1] as f64];
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = (dx * dx + dy * dy).sqrt().max(1e-9);
        let d = [dx / len, dy / len];
        Geom {
            w: w as f64,
            h: h as f64,
            a,
            d,
            n: [-d[1], d[0]],
            len,
        }
    }

    pub(crate) fn at(&self, u: f64, v: f64) -> [f64; 2] {
        [
            self.a[0] + u * self.d[0] + v * self.n[0],
            self.a[1] + u * self.d[1] + v * self.n[1],
        ]
    }

    /// Signed distance to the line, > 0 on the "in" side.
    pub(crate) fn side(&self, p: [f64; 2]) -> f64 {
        (p[0] - self.a[0]) * self.n[0] + (p[1] - self.a[1]) * self.n[1]
    }

    /// Position along the line from `a`, pixels.
    pub(crate) fn along(&self, p: [f64; 2]) -> f64 {
        (p[0] - self.a[0]) * self.d[0] + (p[1] - self.a[1]) * self.d[1]
    }

    fn inside(&self, p: [f64; 2]) -> bool {
        p[0] >= 0.0 && p[0] <= self.w && p[1] >= 0.0 && p[1] <= self.h
    }

    /// How far one can go from `p` along `dir` before leaving the picture.
    fn reach(&self, p: [f64; 2], dir: [f64; 2]) -> f64 {
        let mut t = 0.0;
        while self.inside([p[0] + t * dir[0], p[1] + t * dir[1]]) && t < self.w + self.h {
            t += 1.0;
        }
        t
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Role {
    /// Crosses the line; `dir` = +1 for "in", -1 for "out".
    Cross { dir: f64 },
    /// Walks parallel to the line on the side `band_sign` (+1 "in" side), `forward` = +1 from `a` towards `b`.
    Parallel { band_sign: f64, forward: f64 },
}

#[derive(Clone, Debug)]
pub(crate) struct Jitter {
    /// The walk stops this far before the line.
    approach: f64,
    /// (target progress, speed px/s, hold s) for each step back or forth.
    swings: Vec<(f64, f64, f64)>,
}

/// Everything random about an actor's walk that depends neither on its lane nor on its start time.
#[derive(Clone, Debug)]
pub(crate) struct Draw {
    pub role: Role,
    pub speed: f64,
    /// (progress at which the face centre stops, seconds).
    pub pause: Option<(f64, f64)>,
    pub jitter: Option<Jitter>,
    curve: f64,
    tilt: f64,
    sway_amp: f64,
    sway_freq: f64,
    sway_phase: f64,
    bob_amp: f64,
    bob_freq: f64,
    slack_frac: f64,
    option_start: u64,
}

impl Draw {
    pub(crate) fn new(
        rng: &mut Rng,
        role: Role,
        speed: (f32, f32),
        pause: Option<(f32, f32)>,
        jitter: bool,
    ) -> Draw {
        let speed = rng.range(speed.0 as f64, speed.1 as f64);
        let curve = rng.range(-12.0, 12.0);
        let tilt = rng.range(-10.0, 10.0);
        let sway_amp = rng.range(1.5, 3.5);
        let sway_freq = rng.range(0.7, 1.1);
        let sway_phase = rng.range(0.0, TAU);
        let bob_amp = rng.range(0.8, 1.6);
        let bob_freq = rng.range(1.6, 2.1);
        let slack_frac = rng.range(-1.0, 1.0);
        let option_start = rng.next_u64();
        let pause = pause.map(|(lo, hi)| {
            (
                rng.sign() * rng.range(2.0, 6.0),
                rng.range(lo as f64, hi as f64),
            )
        });
        let jitter = jitter.then(|| {
            let approach = rng.range(5.0, 12.0);
            let m = 3 + rng.below(3);
            let swings = (0..m)
                .map(|i| {
                    let target = if i % 2 == 0 { 1.0 } else { -1.0 } * rng.range(5.0, 13.0);
                    let v = rng.range(25.0, 45.0);
                    let hold = if rng.chance(0.5) {
                        rng.range(0.05, 0.3)
                    } else {
                        0.0
                    };
                    (target, v, hold)
                })
                .collect();
            Jitter { approach, swings }
        });
        Draw {
            role,
            speed,
            pause,
            jitter,
            curve,
            tilt,
            sway_amp,
            sway_freq,
            sway_phase,
            bob_amp,
            bob_freq,
            slack_frac,
            option_start,
        }
    }
}

/// One member of the cast, before placement.
pub(crate) struct Cast {
    pub identity: String,
    pub photo: String,
    pub sprite: Sprite,
    pub draw: Draw,
}

#[derive(Clone, Copy, Debug)]
enum SegKind {
    Walk,
    Hold,
    Ease,
}

#[derive(Clone, Copy, Debug)]
struct Seg {
    t0: f64,
    t1: f64,
    s0: f64,
    s1: f64,
    kind: SegKind,
}

/// Progress along the walking direction as a function of time since the actor's start.
#[derive(Clone, Debug)]
pub(crate) struct Motion {
    segs: Vec<Seg>,
    pub dur: f64,
    s_mid: f64,
    s_half: f64,
    /// Lane position along the line (crossers) or band offset from it (non-crossers).
    base: f64,
    lane: Option<usize>,
}

impl Motion {
    fn build(draw: &Draw, s0: f64, s1: f64, base: f64, lane: Option<usize>) -> Motion {
        let mut segs = Vec::new();
        let mut t = 0.0;
        let mut cur = s0;
        let mut push = |kind: SegKind, to: f64, dt: f64, t: &mut f64, cur: &mut f64| {
            if dt <= 0.0 {
                return;
            }
            segs.push(Seg {
                t0: *t,
                t1: *t + dt,
                s0: *cur,
                s1: to,
                kind,
            });
            *t += dt;
            *cur = to;
        };
        let walk = |to: f64, cur: f64| (to - cur).abs() / draw.speed;
        if let Some((sp, hold)) = draw.pause {
            let dt = walk(sp, cur);
            push(SegKind::Walk, sp, dt, &mut t, &mut cur);
            push(SegKind::Hold, sp, hold, &mut t, &mut cur);
        } else if let Some(j) = &draw.jitter {
            let dt = walk(-j.approach, cur);
            push(SegKind::Walk, -j.approach, dt, &mut t, &mut cur);
            for &(target, v, hold) in &j.swings {
                let dt = (target - cur).abs() / v;
                push(SegKind::Ease, target, dt, &mut t, &mut cur);
                push(SegKind::Hold, target, hold, &mut t, &mut cur);
            }
        }
        let dt = walk(s1, cur);
        push(SegKind::Walk, s1, dt, &mut t, &mut cur);
        Motion {
            segs,
            dur: t,
            s_mid: (s0 + s1) / 2.0,
            s_half: ((s1 - s0) / 2.0).max(1.0),
            base,
            lane,
        }
    }

    fn progress(&self, draw: &Draw, tau: f64) -> f64 {
        let seg = self
            .segs
            .iter()
            .find(|s| tau < s.t1)
            .or(self.segs.last())
            .expect("a motion has segments");
        let x = ((tau - seg.t0) / (seg.t1 - seg.t0)).clamp(0.0, 1.0);
        match seg.kind {
            SegKind::Hold => seg.s0,
            SegKind::Ease => seg.s0 + (seg.s1 - seg.s0) * (1.0 - (PI * x).cos()) / 2.0,
            SegKind::Walk => {
                let dt = (tau - seg.t0).clamp(0.0, seg.t1 - seg.t0);
                let env = (dt / 0.4).min((seg.t1 - seg.t0 - dt) / 0.4).clamp(0.0, 1.0);
                seg.s0
                    + (seg.s1 - seg.s0) * x
                    + draw.bob_amp * (TAU * draw.bob_freq * dt).sin() * env
            }
        }
    }

    /// Face centre (pixels) at `tau` seconds after the actor's start.
    fn face_centre(&self, geom: &Geom, draw: &Draw, tau: f64) -> [f64; 2] {
        let s = self.progress(draw, tau);
        let q = ((s - self.s_mid) / self.s_half).clamp(-1.0, 1.0);
        let lat = draw.tilt * q
            + draw.curve * (1.0 - q * q)
            + draw.sway_amp * (TAU * draw.sway_freq * tau + draw.sway_phase).sin();
        match draw.role {
            Role::Cross { dir } => geom.at(self.base + lat, dir * s),
            Role::Parallel { forward, .. } => {
                geom.at(geom.len / 2.0 + forward * s, self.base + lat)
            }
        }
    }
}

/// Straight-line face centre at progress `s` (no deviations).
fn base_point(geom: &Geom, role: Role, base: f64, s: f64) -> [f64; 2] {
    match role {
        Role::Cross { dir } => geom.at(base, dir * s),
        Role::Parallel { forward, .. } => geom.at(geom.len / 2.0 + forward * s, base),
    }
}

/// Smallest `s >= 0` for which the cut-out at progress `sign * s` is fully outside the picture with
/// `MAX_LATERAL` to spare.
fn off_picture(geom: &Geom, sprite: &Sprite, role: Role, base: f64, sign: f64) -> Option<f64> {
    let fc = sprite.face_centre();
    let m = MAX_LATERAL + 4.0;
    let limit = 4.0 * (geom.w + geom.h);
    let mut s = 0.0;
    while s < limit {
        let c = base_point(geom, role, base, sign * s);
        let (x0, y0) = (c[0] - fc[0], c[1] - fc[1]);
        let (sw, sh) = (sprite.w as f64, sprite.h as f64);
        if x0 + sw < -m || x0 > geom.w + m || y0 + sh < -m || y0 > geom.h + m {
            return Some(s);
        }
        s += 2.0;
    }
    None
}

/// Per-frame placement of one actor, over the frames in which it is in the picture.
#[derive(Clone, Debug)]
pub(crate) struct Track {
    /// First frame in the picture.
    pub k0: u64,
    /// Sprite top-left per frame from `k0`.
    pub pos: Vec<[i32; 2]>,
    /// Sprite size.
    pub size: [i32; 2],
}

impl Track {
    pub(crate) fn k1(&self) -> u64 {
        self.k0 + self.pos.len() as u64 - 1
    }

    pub(crate) fn at(&self, k: u64) -> Option<[i32; 2]> {
        if k < self.k0 {
            return None;
        }
        self.pos.get((k - self.k0) as usize).copied()
    }
}

fn sample(geom: &Geom, cast: &Cast, motion: &Motion, start: f64, fps: f64) -> Option<Track> {
    let fc = cast.sprite.face_centre();
    let (sw, sh) = (cast.sprite.w as i32, cast.sprite.h as i32);
    let k_first = (start * fps - 1e-9).ceil().max(0.0) as u64;
    let k_last = ((start + motion.dur) * fps + 1e-9).floor() as u64;
    let mut k0 = None;
    let mut pos = Vec::new();
    let mut last_visible = 0;
    for k in k_first..=k_last {
        let tau = k as f64 / fps - start;
        let c = motion.face_centre(geom, &cast.draw, tau);
        let p = [(c[0] - fc[0]).round() as i32, (c[1] - fc[1]).round() as i32];
        let visible =
            p[0] < geom.w as i32 && p[0] + sw > 0 && p[1] < geom.h as i32 && p[1] + sh > 0;
        if k0.is_none() {
            if !visible {
                continue;
            }
            k0 = Some(k);
        }
        pos.push(p);
        if visible {
            last_visible = pos.len();
        }
    }
    pos.truncate(last_visible);
    Some(Track {
        k0: k0?,
        pos,
        size: [sw, sh],
    })
}

fn overlaps(a: &Track, b: &Track, gap: i32) -> bool {
    let (lo, hi) = (a.k0.max(b.k0), a.k1().min(b.k1()));
    (lo..=hi.max(lo)).take_while(|_| lo <= hi).any(|k| {
        let (pa, pb) = (a.at(k).unwrap(), b.at(k).unwrap());
        pa[0] < pb[0] + b.size[0] + gap
            && pb[0] < pa[0] + a.size[0] + gap
            && pa[1] < pb[1] + b.size[1] + gap
            && pb[1] < pa[1] + a.size[1] + gap
    })
}

/// A placed actor.
pub(crate) struct Placement {
    pub cast: usize,
    pub lane: Option<usize>,
    pub track: Track,
}

/// The options (lanes, or band sides for non-crossers) an actor may use, as motions.
fn options(
    geom: &Geom,
    cast: &Cast,
    lanes: &Lanes,
    band: &[f64; 2],
) -> Result<Vec<Motion>, SceneError> {
    let draw = &cast.draw;
    let mut out = Vec::new();
    match draw.role {
        Role::Cross { .. } => {
            let ext = extent_along(geom, &cast.sprite);
            let slack = (lanes.pitch - (ext + 2.0 * MAX_LATERAL + GAP)).max(0.0) / 2.0;
            for i in 0..lanes.count {
                let j = (i + (draw.option_start % lanes.count as u64) as usize) % lanes.count;
                let base = lanes.pitch * (j as f64 + 0.5) + draw.slack_frac * slack;
                out.push((base, Some(j)));
            }
        }
        Role::Parallel { band_sign, .. } => {
            let first = if band_sign > 0.0 { band[1] } else { -band[0] };
            let second = if band_sign > 0.0 { -band[0] } else { band[1] };
            out.push((first, None));
            out.push((second, None));
        }
    }
    out.into_iter()
        .map(|(base, lane)| {
            let fit = |sign| off_picture(geom, &cast.sprite, draw.role, base, sign);
            match (fit(-1.0), fit(1.0)) {
                (Some(back), Some(fwd)) => Ok(Motion::build(draw, -back, fwd, base, lane)),
                _ => Err(SceneError::InvalidSpec(
                    "the line's geometry does not let actors walk out of the picture".into(),
                )),
            }
        })
        .collect()
}

/// Extent of a cut-out measured along the line.
fn extent_along(geom: &Geom, s: &Sprite) -> f64 {
    s.w as f64 * geom.d[0].abs() + s.h as f64 * geom.d[1].abs()
}

struct Lanes {
    count: usize,
    pitch: f64,
}

/// Places every actor: lanes along the line, start times spread over the scene, no two cut-outs closer
/// than `GAP`, at most `max_concurrent` in the picture at once. Returns the placements (sorted by first
/// frame) and the number of frames.
pub(crate) fn schedule(
    spec: &SceneSpec,
    geom: &Geom,
    casts: &[Cast],
) -> Result<(Vec<Placement>, u64), SceneError> {
    let fps = spec.fps as f64;
    let crossers: Vec<usize> = (0..casts.len())
        .filter(|&i| matches!(casts[i].draw.role, Role::Cross { .. }))
        .collect();
    let widest = crossers
        .iter()
        .map(|&i| extent_along(geom, &casts[i].sprite))
        .fold(0.0, f64::max);
    let lane_w = widest + 2.0 * MAX_LATERAL + GAP;
    let count = (geom.len / lane_w).floor() as usize;
    if !crossers.is_empty() && count == 0 {
        return Err(SceneError::DoesNotFit(format!(
            "the line ({:.0} px) is shorter than one lane ({lane_w:.0} px): use smaller faces or a longer line",
            geom.len
        )));
    }
    let lanes = Lanes {
        count: count.max(1),
        pitch: geom.len / count.max(1) as f64,
    };
    // Non-crossers walk halfway between the line and the picture's edge (further out if their face would
    // come near the line), on either side; their whole face stays inside the picture.
    let mid = geom.at(geom.len / 2.0, 0.0);
    let reach = [
        geom.reach(mid, [-geom.n[0], -geom.n[1]]),
        geom.reach(mid, geom.n),
    ];
    let mut band = [0.5 * reach[0], 0.5 * reach[1]];
    for c in casts {
        if let Role::Parallel { .. } = c.draw.role {
            let fh = c.sprite.face[3];
            let need = fh + MAX_LATERAL;
            for (b, r) in band.iter_mut().zip(reach) {
                *b = b.max(need);
                if *b + fh / 2.0 + MAX_LATERAL > r {
                    return Err(SceneError::DoesNotFit(format!(
                        "no room for non-crossers: they must walk at least {need:.0} px from the line, \
                         but the picture's edge is {r:.0} px from it"
                    )));
                }
            }
        }
    }
    let motions = casts
        .iter()
        .map(|c| options(geom, c, &lanes, &band))
        .collect::<Result<Vec<_>, _>>()?;

    // Desired start times: spread evenly (fixed duration) or packed (derived duration).
    let n = casts.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::stream(spec.seed, 0x5C, 0);
    rng.shuffle(&mut order);
    let mean_dur = motions.iter().map(|m| m[0].dur).sum::<f64>() / n.max(1) as f64;
    let mut desired = vec![LEAD_S; n];
    match spec.duration_s {
        Some(d) => {
            let spacing = if n > 1 {
                ((d - LEAD_S - TAIL_S - mean_dur) / (n - 1) as f64).max(0.0)
            } else {
                0.0
            };
            for (j, &i) in order.iter().enumerate() {
                let t = LEAD_S + j as f64 * spacing + rng.range(-0.3, 0.3) * spacing;
                desired[i] = t.clamp(LEAD_S, (d - TAIL_S - motions[i][0].dur).max(LEAD_S));
            }
        }
        None => {
            let spacing = mean_dur / spec.max_concurrent.max(1) as f64;
            for (j, &i) in order.iter().enumerate() {
                desired[i] = LEAD_S + j as f64 * spacing;
            }
        }
    }
    let is_parallel = |i: usize| matches!(casts[i].draw.role, Role::Parallel { .. });
    // Non-crossers (who block a whole band) first, then by desired time; if that leaves someone without
    // room, once more with the longest walks first.
    let mut by_time: Vec<usize> = (0..n).collect();
    by_time.sort_by(|&x, &y| {
        is_parallel(y)
            .cmp(&is_parallel(x))
            .then(desired[x].total_cmp(&desired[y]))
            .then(x.cmp(&y))
    });
    let mut by_length: Vec<usize> = (0..n).collect();
    by_length.sort_by(|&x, &y| {
        is_parallel(y)
            .cmp(&is_parallel(x))
            .then(motions[y][0].dur.total_cmp(&motions[x][0].dur))
            .then(x.cmp(&y))
    });
    let end_limit = spec.duration_s.map(|d| d - TAIL_S).unwrap_or(MAX_AUTO_S);
    let place_all = |queue: &[usize]| -> Result<Vec<Placement>, usize> {
        let mut placed: Vec<Placement> = Vec::new();
        let mut occupancy: Vec<u16> = Vec::new();
        for &i in queue {
            let mut done = false;
            let d0 = desired[i];
            // 0, +1, -1, +2, -2, ... steps around the desired time (only forward for derived durations).
            let fixed = spec.duration_s.is_some();
            let candidates = (0..).map_while(|m: i64| {
                if !fixed {
                    let t = d0 + m as f64 * STEP_S;
                    return (t <= end_limit).then_some(Some(t));
                }
                let k = (m + 1) / 2;
                let t = if m % 2 == 1 {
                    d0 + k as f64 * STEP_S
                } else {
                    d0 - k as f64 * STEP_S
                };
                let both_out =
                    d0 + k as f64 * STEP_S > end_limit && d0 - k as f64 * STEP_S < LEAD_S - 1e-9;
                if both_out {
                    None
                } else if t < LEAD_S - 1e-9 || t > end_limit {
                    Some(None)
                } else {
                    Some(Some(t))
                }
            });
            'search: for t in candidates.flatten() {
                for m in &motions[i] {
                    if t + m.dur > end_limit {
                        continue;
                    }
                    let Some(track) = sample(geom, &casts[i], m, t, fps) else {
                        continue;
                    };
                    let k1 = track.k1() as usize;
                    if occupancy.len() <= k1 {
                        occupancy.resize(k1 + 1, 0);
                    }
                    if occupancy[track.k0 as usize..=k1]
                        .iter()
                        .any(|&o| o as usize >= spec.max_concurrent)
                    {
                        continue;
                    }
                    if placed
                        .iter()
                        .any(|p| overlaps(&p.track, &track, GAP as i32))
                    {
                        continue;
                    }
                    for o in &mut occupancy[track.k0 as usize..=k1] {
                        *o += 1;
                    }
                    placed.push(Placement {
                        cast: i,
                        lane: m.lane,
                        track,
                    });
                    done = true;
                    break 'search;
                }
            }
            if !done {
                return Err(i);
            }
        }
        Ok(placed)
    };
    let mut placed =
        match place_all(&by_time) {
            Ok(p) => p,
            Err(i) => place_all(&by_length).map_err(|_| {
                SceneError::DoesNotFit(format!(
                "could not place {} ({} of {n} actors) without overlapping others or exceeding \
                 max_concurrent = {}: give the scene more time, fewer actors or smaller faces",
                casts[i].identity,
                if is_parallel(i) { "a non-crosser" } else { "a crosser" },
                spec.max_concurrent
            ))
            })?,
        };
    placed.sort_by_key(|p| (p.track.k0, p.cast));
    let frames = match spec.duration_s {
        Some(d) => (d * fps).round() as u64,
        None => {
            placed.iter().map(|p| p.track.k1() + 1).max().unwrap_or(0) + (0.5 * fps).round() as u64
        }
    };
    Ok((placed, frames))
}

fn round1(x: f64) -> f32 {
    ((x * 10.0).round() / 10.0) as f32
}

fn describe_in_side(n: [f64; 2]) -> String {
    let towards = if n[1].abs() >= n[0].abs() {
        if n[1] > 0.0 {
            "+y (downwards in the picture)"
        } else {
            "-y (upwards in the picture)"
        }
    } else if n[0] > 0.0 {
        "+x (rightwards in the picture)"
    } else {
        "-x (leftwards in the picture)"
    };
    format!(
        "\"in\" = the face centre passes from the side where (p - a)·in_normal < 0 to the side where it is > 0; \
         in_normal = (-(b-a).y, (b-a).x)/|b-a| points towards {towards}; \"out\" is the reverse"
    )
}

/// The truth of a schedule.
pub(crate) fn truth(
    spec: &SceneSpec,
    line: &Line,
    geom: &Geom,
    casts: &[Cast],
    placed: &[Placement],
    frames: u64,
) -> Truth {
    let fps = spec.fps as f64;
    let mut actors = Vec::with_capacity(placed.len());
    let mut totals = Totals::default();
    let truth_line = TruthLine {
        a: line.a,
        b: line.b,
        // `+ 0.0` turns -0.0 into 0.0.
        in_normal: [geom.n[0] as f32 + 0.0, geom.n[1] as f32 + 0.0],
        in_side: describe_in_side(geom.n),
    };
    for (id, p) in placed.iter().enumerate() {
        let cast = &casts[p.cast];
        let f = cast.sprite.face;
        // Everything below is derived from the published (0.1 px) boxes, with the same f32 arithmetic a
        // consumer of truth.json uses, so that the file is consistent with itself to the last bit.
        let boxes: Vec<[f32; 4]> = p
            .track
            .pos
            .iter()
            .map(|q| {
                [
                    round1(q[0] as f64 + f[0]),
                    round1(q[1] as f64 + f[1]),
                    round1(f[2]),
                    round1(f[3]),
                ]
            })
            .collect();
        let sides: Vec<f32> = boxes
            .iter()
            .map(|&b| truth_line.side(box_centre(b)))
            .collect();
        let mut changes = 0u32;
        let mut last_change = None;
        for j in 1..sides.len() {
            if (sides[j] > 0.0) != (sides[j - 1] > 0.0) {
                changes += 1;
                last_change = Some(j);
            }
        }
        let direction = match cast.draw.role {
            Role::Cross { dir } if dir > 0.0 => Direction::In,
            Role::Cross { .. } => Direction::Out,
            Role::Parallel { .. } => Direction::None,
        };
        match direction {
            Direction::In => totals.in_ += 1,
            Direction::Out => totals.out += 1,
            Direction::None => totals.none += 1,
        }
        let (crossing_time_s, crossing_frame) = match (direction, last_change) {
            (Direction::None, _) | (_, None) => (None, None),
            (_, Some(j)) => {
                let (v0, v1) = (sides[j - 1] as f64, sides[j] as f64);
                let frac = if v0 != v1 { v0 / (v0 - v1) } else { 0.5 };
                let k = p.track.k0 + j as u64;
                let t = ((k - 1) as f64 + frac.clamp(0.0, 1.0)) / fps;
                (Some((t * 1000.0).round() / 1000.0), Some(k))
            }
        };
        let (w, h) = (geom.w as f32, geom.h as f32);
        let full: Vec<u64> = boxes
            .iter()
            .enumerate()
            .filter(|(_, b)| b[0] >= 0.0 && b[1] >= 0.0 && b[0] + b[2] <= w && b[1] + b[3] <= h)
            .map(|(j, _)| p.track.k0 + j as u64)
            .collect();
        let boxes = if spec.write_boxes { boxes } else { Vec::new() };
        actors.push(TruthActor {
            actor_id: id as u32,
            identity: cast.identity.clone(),
            photo: cast.photo.clone(),
            direction,
            crossing_time_s,
            crossing_frame,
            line_crossings: changes,
            first_frame: p.track.k0,
            last_frame: p.track.k1(),
            full_face_frames: full.first().map(|&a| [a, *full.last().unwrap()]),
            face_height_px: round1(f[3]),
            paused: cast.draw.pause.is_some(),
            pause_s: cast.draw.pause.map(|(_, s)| round1(s)).unwrap_or(0.0),
            jitter: cast.draw.jitter.is_some(),
            lane: p.lane.map(|l| l as u32),
            speed_px_s: round1(cast.draw.speed),
            cutout: [
                round1(-f[0]),
                round1(-f[1]),
                cast.sprite.w as f32,
                cast.sprite.h as f32,
            ],
            boxes,
        });
    }
    let faces_set = spec
        .faces_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Truth {
        version: TRUTH_VERSION,
        generator: format!("checkpoint-scenegen {}", env!("CARGO_PKG_VERSION")),
        seed: spec.seed,
        video: crate::VIDEO_FILE.to_string(),
        width: spec.width,
        height: spec.height,
        fps: spec.fps,
        frames,
        duration_s: frames as f64 / fps,
        faces_set,
        line: truth_line,
        actors,
        totals,
    }
}
