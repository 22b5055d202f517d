//! The ground truth written next to the video (`truth.json`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::SceneError;

/// Version of the truth format; bumped on incompatible changes.
pub const TRUTH_VERSION: u32 = 1;

/// Which way an actor crossed the counting line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the side where `(p - a) · in_normal < 0` to the side where it is `> 0`
    /// (default horizontal line: top half to bottom half, moving towards +y).
    In,
    /// The opposite way.
    Out,
    /// A non-crosser: walked parallel to the line and never crossed it.
    None,
}

/// The counting line as the truth states it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthLine {
    /// Segment start, pixels.
    pub a: [f32; 2],
    /// Segment end, pixels.
    pub b: [f32; 2],
    /// Unit normal pointing to the "in" side: `(-(b-a).y, (b-a).x) / |b-a|` (image coordinates, y down).
    pub in_normal: [f32; 2],
    /// Human-readable statement of which side is "in".
    pub in_side: String,
}

impl TruthLine {
    /// Signed distance of `p` from the line in pixels, > 0 on the "in" side. The truth's crossings are
    /// computed with exactly this (f32) formula on the face-box centres ([`box_centre`]).
    pub fn side(&self, p: [f32; 2]) -> f32 {
        (p[0] - self.a[0]) * self.in_normal[0] + (p[1] - self.a[1]) * self.in_normal[1]
    }
}

/// Centre of an `[x, y, w, h]` box.
pub fn box_centre(b: [f32; 4]) -> [f32; 2] {
    [b[0] + b[2] / 2.0, b[1] + b[3] / 2.0]
}

/// One person in the scene.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthActor {
    /// 0-based, in order of first appearance.
    pub actor_id: u32,
    /// LFW identity (folder name); distinct per actor.
    pub identity: String,
    /// Photo, relative to the faces directory (`Person_Name/Person_Name_0001.jpg`).
    pub photo: String,
    pub direction: Direction,
    /// Time (s from the first frame, interpolated between frames) at which the face centre passed the line
    /// for the last time. `None` for non-crossers.
    pub crossing_time_s: Option<f64>,
    /// First frame whose face centre is on the final side for good. `None` for non-crossers.
    pub crossing_frame: Option<u64>,
    /// How many times the face centre changed sides of the line (1 for a plain crossing, 3 or more for
    /// jitter; always odd for crossers, 0 for non-crossers).
    pub line_crossings: u32,
    /// First and last frame in which any part of the cut-out is inside the picture.
    pub first_frame: u64,
    pub last_frame: u64,
    /// First and last frame in which the whole face box is inside the picture.
    pub full_face_frames: Option<[u64; 2]>,
    /// Face box height in pixels (constant: no perspective scaling).
    pub face_height_px: f32,
    /// Stopped on the line (face centre within a few pixels of it) before going on.
    pub paused: bool,
    /// Length of that stop, seconds (0 when not paused).
    pub pause_s: f32,
    /// Stepped back and forth across the line (amplitude < 15 px) before completing the crossing.
    pub jitter: bool,
    /// Lane index along the line for crossers (lanes never overlap); `None` for non-crossers.
    pub lane: Option<u32>,
    /// Base walking speed, pixels per second.
    pub speed_px_s: f32,
    /// The person cut-out's bounding box relative to the face box's top-left corner: `[dx, dy, w, h]`.
    pub cutout: [f32; 4],
    /// Face box `[x, y, w, h]` (pixels, 0.1 px, not clipped to the picture) for every frame from
    /// `first_frame` to `last_frame`; empty when the scene was generated without boxes.
    #[serde(default)]
    pub boxes: Vec<[f32; 4]>,
}

impl TruthActor {
    /// Face box at `frame`, if the actor is in the picture then and boxes were written.
    pub fn box_at(&self, frame: u64) -> Option<[f32; 4]> {
        if frame < self.first_frame || frame > self.last_frame {
            return None;
        }
        self.boxes.get((frame - self.first_frame) as usize).copied()
    }

    /// Cut-out (whole person) box at `frame`.
    pub fn cutout_at(&self, frame: u64) -> Option<[f32; 4]> {
        self.box_at(frame).map(|b| {
            [
                b[0] + self.cutout[0],
                b[1] + self.cutout[1],
                self.cutout[2],
                self.cutout[3],
            ]
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    #[serde(rename = "in")]
    pub in_: u32,
    pub out: u32,
    /// Non-crossers.
    pub none: u32,
}

/// Everything the scene contains, for scoring a counter against it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub version: u32,
    pub generator: String,
    pub seed: u64,
    /// File name of the video next to this file.
    pub video: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u64,
    pub duration_s: f64,
    /// Last component of the faces directory the photos came from (`lfw_fold1`).
    pub faces_set: String,
    pub line: TruthLine,
    pub actors: Vec<TruthActor>,
    pub totals: Totals,
}

impl Truth {
    pub fn load(path: &Path) -> Result<Truth, SceneError> {
        let s = std::fs::read_to_string(path).map_err(|e| SceneError::Io {
            path: path.to_path_buf(),
            err: e,
        })?;
        Ok(serde_json::from_str(&s)?)
    }

    /// Pretty JSON with every number array (a box, a point) kept on one line.
    pub fn to_json(&self) -> Result<String, SceneError> {
        let pretty = serde_json::to_string_pretty(self)?;
        Ok(compact_number_arrays(&pretty))
    }

    pub fn save(&self, path: &Path) -> Result<(), SceneError> {
        let mut s = self.to_json()?;
        s.push('\n');
        std::fs::write(path, s).map_err(|e| SceneError::Io {
            path: path.to_path_buf(),
            err: e,
        })
    }

    /// Crossers going `dir` (for `Direction::None`: the non-crossers).
    pub fn count(&self, dir: Direction) -> usize {
        self.actors.iter().filter(|a| a.direction == dir).count()
    }

    /// Actors in the picture at `frame` with their face boxes.
    pub fn faces_at(&self, frame: u64) -> impl Iterator<Item = (&TruthActor, [f32; 4])> {
        self.actors
            .iter()
            .filter_map(move |a| a.box_at(frame).map(|b| (a, b)))
    }

    /// The most actors in the picture at the same time.
    pub fn max_in_picture(&self) -> usize {
        let len = self.frames as usize + 2;
        let mut delta = vec![0i64; len];
        for a in &self.actors {
            let (k0, k1) = (a.first_frame as usize, a.last_frame as usize);
            if k0 < len {
                delta[k0] += 1;
                delta[(k1 + 1).min(len - 1)] -= 1;
            }
        }
        let mut now = 0i64;
        let mut most = 0i64;
        for d in delta {
            now += d;
            most = most.max(now);
        }
        most as usize
    }

    /// Frames during which at least `n` actors are in the picture.
    pub fn frames_with_at_least(&self, n: usize) -> u64 {
        (0..self.frames)
            .filter(|&k| {
                self.actors
                    .iter()
                    .filter(|a| a.first_frame <= k && k <= a.last_frame)
                    .count()
                    >= n
            })
            .count() as u64
    }
}

/// Collapses `[\n  1,\n  2\n]` (arrays holding only numbers) onto one line.
fn compact_number_arrays(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'[' {
            if let Some(end) = s[i + 1..].find(']').map(|e| e + i + 1) {
                let inner = &s[i + 1..end];
                let numeric = !inner.trim().is_empty()
                    && inner
                        .chars()
                        .all(|c| c.is_ascii_digit() || " \n\r\t,.-+eE".contains(c));
                if numeric {
                    let items: Vec<&str> = inner.split(',').map(str::trim).collect();
                    out.push('[');
                    out.push_str(&items.join(", "));
                    out.push(']');
                    i = end + 1;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_number_arrays_only() {
        let v =
            serde_json::json!({"a": [1.5, 2, -3], "b": [[1, 2], [3, 4]], "c": ["x", "y"], "d": []});
        let s = compact_number_arrays(&serde_json::to_string_pretty(&v).unwrap());
        assert!(s.contains("\"a\": [1.5, 2, -3]"), "{s}");
        assert!(s.contains("[1, 2]") && s.contains("[3, 4]"), "{s}");
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }
}
