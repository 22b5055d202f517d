//! The track corpus: the given people walk through generated scenes, the agent's own per-camera analyser
//! watches them, and every face it kept for a track is recorded with the actor the track followed. A
//! watchlist decision on a track sees exactly these faces, so policies can be tried on them in seconds.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use checkpoint_media::{
    frame_channel, CameraSource, FileSource, RecvTimeoutError, SourceConfig, SourceKind,
    SourceState,
};
use checkpoint_scenegen::{SceneSpec, Truth, TRUTH_FILE};
use checkpoint_vision::{
    manifest, BgrImage, FaceDetector, FaceDetectorOptions, FaceEmbedder, Rect, Runtime,
};
use edge_agent::analysis::{CameraAnalyzer, CameraSetup, FaceSample, FrameOutcome, Mode, Models};
use edge_agent::config::DetectionConfig;
use edge_agent::metrics::Metrics;
use serde::{Deserialize, Serialize};

/// Scenes stay a few minutes long, so one failed scene costs little and the temporary video stays small.
const MAX_ACTORS_PER_SCENE: usize = 60;
/// The rate the agent analyses at in its documented configuration (`analysis_fps = 10`).
const ANALYSIS_FPS: f64 = 10.0;
/// A kept face belongs to the truth actor whose face box overlaps it at least this much.
const MIN_IOU: f32 = 0.3;
/// Below this share of walkers with a tied track the scenes or the analysis are broken, not the matcher.
const MIN_TIED_FRACTION: f64 = 0.8;
/// Part of the cache key: bump it when the scene parameters or the recording below change.
const CACHE_VERSION: u32 = 2;

/// One person who walks through a scene.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Walker {
    /// LFW identity (folder name).
    pub identity: String,
    /// Absolute path of the one photo this person walks with.
    pub photo: PathBuf,
}

/// A face the analyser kept for a track.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeptFace {
    pub quality: f32,
    /// Shorter side of the face box, pixels.
    pub face_px: f32,
    /// Detector score.
    pub score: f32,
    /// SFace embedding (128 values, unit length).
    pub embedding: Vec<f32>,
    /// The same face embedded without its mirror image (the agent before flip fusion), for the
    /// before/after comparison.
    pub plain: Vec<f32>,
}

/// Everything the analyser kept for one track.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrackFaces {
    /// LFW identity (folder name) of the person this track follows, from the scene truth; `None` if the track
    /// could not be tied to one actor.
    pub identity: Option<String>,
    /// The photo file the scene used for this actor (e.g. `Aaron_Pena_0001.jpg`).
    pub photo: Option<String>,
    /// Every face the analyser kept for this track over its life, in the order it kept them.
    pub faces: Vec<KeptFace>,
    /// Index of the scene the track comes from.
    pub scene: u32,
}

/// What the cached tracks were computed from; stored whole, so a hash collision cannot return wrong tracks.
#[derive(PartialEq, Serialize, Deserialize)]
struct CacheKey {
    version: u32,
    sface_sha256: String,
    yunet_sha256: String,
    seed: u64,
    walkers: Vec<Walker>,
}

#[derive(Serialize, Deserialize)]
struct Cache {
    key: CacheKey,
    tracks: Vec<TrackFaces>,
}

/// Builds scenes where the walkers are the given people, runs the real analyser on each, and returns one
/// [`TrackFaces`] per track that kept a face. Cached under `out`, so a second call is instant.
pub fn collect(rt: &Runtime, out: &Path, walkers: &[Walker], seed: u64) -> Result<Vec<TrackFaces>> {
    check_walkers(walkers)?;
    let key = cache_key(walkers, seed)?;
    let cache = out.join(format!(
        "tracks-{:016x}.json",
        fnv1a(&serde_json::to_vec(&key)?)
    ));
    if let Some(tracks) = load_cache(&cache, &key) {
        return Ok(tracks);
    }
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    // Videos go next to the cache rather than to /tmp, which may be small; removed on drop.
    let scratch = tempfile::Builder::new()
        .prefix("tracks-scratch-")
        .tempdir_in(out)
        .with_context(|| format!("scratch directory in {}", out.display()))?;
    let mut tracks = Vec::new();
    for (i, group) in scene_groups(walkers).into_iter().enumerate() {
        let scene_seed = seed.wrapping_add(i as u64);
        tracks.extend(run_scene(rt, scratch.path(), i as u32, group, scene_seed)?);
    }
    check_tied(walkers.len(), &tracks)?;
    let done = Cache { key, tracks };
    std::fs::write(&cache, serde_json::to_vec(&done)?)
        .with_context(|| cache.display().to_string())?;
    Ok(done.tracks)
}

/// The generator gives every actor a distinct identity and picks it from folder names, so a walker must be
/// a plain folder name and appear once.
fn check_walkers(walkers: &[Walker]) -> Result<()> {
    ensure!(!walkers.is_empty(), "no walkers given");
    let mut seen = HashSet::new();
    for w in walkers {
        let plain = !w.identity.is_empty()
            && !w.identity.starts_with('.')
            && !w.identity.contains(['/', '\\']);
        ensure!(
            plain,
            "walker identity {:?} is not a folder name",
            w.identity
        );
        ensure!(
            seen.insert(w.identity.as_str()),
            "walker {} appears twice: every person walks once, with one photo",
            w.identity
        );
    }
    Ok(())
}

fn cache_key(walkers: &[Walker], seed: u64) -> Result<CacheKey> {
    let dir = manifest::default_dir();
    let sha = |name: &str| -> Result<String> {
        let path = manifest::resolve(name, None, &dir)?;
        manifest::sha256_file(&path).with_context(|| path.display().to_string())
    };
    Ok(CacheKey {
        version: CACHE_VERSION,
        sface_sha256: sha("sface")?,
        // The detector decides which faces exist and where, so it changes the tracks as much as SFace does.
        yunet_sha256: sha("yunet")?,
        seed,
        walkers: walkers.to_vec(),
    })
}

/// 64-bit FNV-1a: stable across Rust versions, unlike `DefaultHasher`, so cache names stay valid.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn load_cache(path: &Path, key: &CacheKey) -> Option<Vec<TrackFaces>> {
    let cache: Cache = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    (cache.key == *key).then_some(cache.tracks)
}

/// Splits the walkers into the fewest scenes of at most [`MAX_ACTORS_PER_SCENE`], of nearly equal size.
fn scene_groups(walkers: &[Walker]) -> Vec<&[Walker]> {
    let scenes = walkers.len().div_ceil(MAX_ACTORS_PER_SCENE);
    walkers.chunks(walkers.len().div_ceil(scenes)).collect()
}

/// Generates one scene with exactly these walkers, analyses it and ties its tracks to the walkers.
fn run_scene(
    rt: &Runtime,
    scratch: &Path,
    scene: u32,
    walkers: &[Walker],
    seed: u64,
) -> Result<Vec<TrackFaces>> {
    let dir = scratch.join(format!("scene-{scene}"));
    let faces_dir = dir.join("faces");
    link_faces(&faces_dir, walkers)?;
    let spec = SceneSpec {
        width: 1280,
        height: 720,
        fps: 25,
        duration_s: None, // just long enough for everyone
        seed,
        actors: walkers.len(),
        non_crossers: 0,
        max_concurrent: 4,
        face_height_px: (64.0, 110.0),
        faces_dir: faces_dir.clone(),
        ..SceneSpec::default()
    };
    let started = Instant::now();
    checkpoint_scenegen::generate(&spec, &dir).with_context(|| {
        format!(
            "scene {scene}: generating from {} (only .jpg/.jpeg/.png photos not on the generator's \
             reject list are usable)",
            faces_dir.display()
        )
    })?;
    let generated_s = started.elapsed().as_secs_f64();
    let truth = Truth::load(&dir.join(TRUTH_FILE)).context("reading the scene truth")?;
    check_cast(&truth, walkers, scene)?;

    let started = Instant::now();
    let (recorded, frames) = analyse(rt, &dir.join(&truth.video), scene)?;
    check_frames(&truth, frames, scene)?;
    let tracks = tie_tracks(&recorded, &truth, scene);
    let analysed_s = started.elapsed().as_secs_f64();
    print_summary(&truth, &tracks, scene, frames, generated_s, analysed_s);
    // Tens of MB per scene: drop it before the next one rather than at the end.
    std::fs::remove_dir_all(&dir).with_context(|| dir.display().to_string())?;
    Ok(tracks)
}

/// Makes an LFW-layout directory with one link per walker, under its original file name so the
/// generator's fold-1 face table still finds the photo by relative path.
fn link_faces(faces_dir: &Path, walkers: &[Walker]) -> Result<()> {
    for w in walkers {
        let src = w
            .photo
            .canonicalize()
            .with_context(|| format!("photo of {}: {}", w.identity, w.photo.display()))?;
        let name = w
            .photo
            .file_name()
            .with_context(|| format!("photo of {} has no file name", w.identity))?;
        let person = faces_dir.join(&w.identity);
        std::fs::create_dir_all(&person).with_context(|| person.display().to_string())?;
        std::os::unix::fs::symlink(&src, person.join(name))
            .with_context(|| format!("linking {} into {}", src.display(), person.display()))?;
    }
    Ok(())
}

/// The generator draws identities from the directory; it holds exactly these walkers, so the cast must be
/// exactly them, each with their photo.
fn check_cast(truth: &Truth, walkers: &[Walker], scene: u32) -> Result<()> {
    let want: BTreeSet<(String, String)> = walkers
        .iter()
        .map(|w| {
            let file = w.photo.file_name().unwrap_or_default().to_string_lossy();
            (w.identity.clone(), format!("{}/{file}", w.identity))
        })
        .collect();
    let got: BTreeSet<(String, String)> = truth
        .actors
        .iter()
        .map(|a| (a.identity.clone(), a.photo.clone()))
        .collect();
    if want != got || truth.actors.len() != walkers.len() {
        bail!(
            "scene {scene}: the generator's cast is not the walkers ({} actors for {} walkers); missing {:?}, \
             unexpected {:?}",
            truth.actors.len(),
            walkers.len(),
            want.difference(&got).collect::<Vec<_>>(),
            got.difference(&want).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// A face the analyser kept, with what tying it to an actor needs.
struct Recorded {
    bbox: Rect,
    stream_time_s: f64,
    face: KeptFace,
}

impl Recorded {
    fn new(s: &FaceSample, plain: Vec<f32>) -> Self {
        Self {
            bbox: s.face.bbox,
            stream_time_s: s.stream_time_s,
            face: KeptFace {
                quality: s.quality,
                face_px: s.face.bbox.w.min(s.face.bbox.h),
                score: s.face.score,
                embedding: s.embedding.0.clone(),
                plain,
            },
        }
    }

    /// The analyser keeps at most one face per track and frame, so time and quality identify a sample.
    fn same_as(&self, s: &FaceSample) -> bool {
        self.stream_time_s == s.stream_time_s && self.face.quality == s.quality
    }
}

/// Runs the agent's per-camera analyser in faces mode on the video, fed by the agent's own file source at
/// the agent's analysis rate. Returns every face each track ever kept (by track id) and the frames analysed.
fn analyse(rt: &Runtime, video: &Path, scene: u32) -> Result<(BTreeMap<u64, Vec<Recorded>>, u64)> {
    let camera = format!("tracks-scene-{scene}");
    // No counting lines: only the faces matter here.
    let setup = CameraSetup::new(&camera, Mode::Faces, Vec::new());
    let mut models = load_models(rt)?;
    let mut analyzer = CameraAnalyzer::new(setup, Arc::new(Metrics::new()));
    let mut cfg = SourceConfig::new(SourceKind::File(FileSource {
        path: video.to_path_buf(),
        realtime: false,
        looping: false,
    }));
    cfg.analysis_fps = Some(ANALYSIS_FPS);
    let (tx, rx) = frame_channel();
    let source = CameraSource::spawn(&camera, cfg, tx)
        .with_context(|| format!("opening {}", video.display()))?;
    let mut recorded: BTreeMap<u64, Vec<Recorded>> = BTreeMap::new();
    let mut frames = 0u64;
    let mut plain = FaceEmbedder::load(
        rt,
        &manifest::resolve("sface", None, &manifest::default_dir())?,
    )?;
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(f) => {
                let outcome = analyzer
                    .process(&mut models, &f.image, f.pts_s)
                    .with_context(|| {
                        format!("analysing {} at {:.2} s", video.display(), f.pts_s)
                    })?;
                record(&analyzer, &outcome, &mut recorded, &f.image, &mut plain)?;
                frames += 1;
            }
            Err(RecvTimeoutError::Timeout) => match source.state() {
                SourceState::Ended if rx.is_empty() => break,
                SourceState::Down { reason } => bail!("decoding {}: {reason}", video.display()),
                _ => {}
            },
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let SourceState::Down { reason } = source.state() {
        bail!("decoding {}: {reason}", video.display());
    }
    // Ends the tracks still open at the end of the file; their faces are recorded already.
    analyzer.finish();
    Ok((recorded, frames))
}

/// YuNet and SFace with the agent's default detection settings.
fn load_models(rt: &Runtime) -> Result<Models> {
    let dir = manifest::default_dir();
    let detection = DetectionConfig::default();
    let options = FaceDetectorOptions {
        score_threshold: detection.face_score,
        nms_threshold: detection.face_nms,
        ..Default::default()
    };
    Ok(Models {
        faces: FaceDetector::load(rt, &manifest::resolve("yunet", None, &dir)?, options)?,
        embedder: Some(FaceEmbedder::load(
            rt,
            &manifest::resolve("sface", None, &dir)?,
        )?),
        people: None,
    })
}

/// Records the faces kept for the tracks this frame updated. The analyser replaces its worst face when a
/// better one comes, so reading after every update sees each face it ever kept.
fn record(
    analyzer: &CameraAnalyzer,
    outcome: &FrameOutcome,
    recorded: &mut BTreeMap<u64, Vec<Recorded>>,
    image: &BgrImage,
    plain: &mut FaceEmbedder,
) -> Result<()> {
    for (id, _) in &outcome.face_updates {
        let seen = recorded.entry(*id).or_default();
        for s in analyzer.track_faces(*id) {
            if !seen.iter().any(|r| r.same_as(s)) {
                let e = plain.embed(image, &s.face.landmarks)?;
                seen.push(Recorded::new(s, e.0));
            }
        }
    }
    Ok(())
}

/// A file cut short would quietly lose the actors at its end.
fn check_frames(truth: &Truth, frames: u64, scene: u32) -> Result<()> {
    let expected = (truth.frames as f64 * ANALYSIS_FPS / truth.fps as f64).floor() as u64;
    ensure!(
        frames as f64 >= 0.95 * expected as f64,
        "scene {scene}: analysed {frames} frames, expected about {expected} ({} frames at {} fps, analysed at {ANALYSIS_FPS})",
        truth.frames,
        truth.fps
    );
    Ok(())
}

/// One [`TrackFaces`] per track that kept a face, tied to the actor most of its faces overlap.
fn tie_tracks(
    recorded: &BTreeMap<u64, Vec<Recorded>>,
    truth: &Truth,
    scene: u32,
) -> Vec<TrackFaces> {
    recorded
        .values()
        .filter(|faces| !faces.is_empty())
        .map(|faces| {
            let actor = majority_actor(faces, truth).map(|a| &truth.actors[a]);
            TrackFaces {
                identity: actor.map(|a| a.identity.clone()),
                // The truth names `Person/Person_0001.jpg`; the file name alone identifies the photo.
                photo: actor.map(|a| a.photo.rsplit('/').next().unwrap_or(&a.photo).to_string()),
                faces: faces.iter().map(|r| r.face.clone()).collect(),
                scene,
            }
        })
        .collect()
}

/// The actor (index into `truth.actors`) most of the faces belong to; ties go to the larger summed overlap.
fn majority_actor(faces: &[Recorded], truth: &Truth) -> Option<usize> {
    let mut votes: BTreeMap<usize, (u32, f32)> = BTreeMap::new();
    for r in faces {
        let frame = (r.stream_time_s * truth.fps as f64).round() as u64;
        if let Some((actor, overlap)) = best_actor(&r.bbox, truth, frame) {
            let v = votes.entry(actor).or_default();
            v.0 += 1;
            v.1 += overlap;
        }
    }
    votes
        .into_iter()
        .max_by(|(_, a), (_, b)| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(actor, _)| actor)
}

/// The actor whose truth face box at `frame` overlaps `bbox` most, if by at least [`MIN_IOU`].
fn best_actor(bbox: &Rect, truth: &Truth, frame: u64) -> Option<(usize, f32)> {
    truth
        .actors
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.box_at(frame).map(|b| (i, iou(bbox, b))))
        .filter(|(_, o)| *o >= MIN_IOU)
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

fn iou(a: &Rect, b: [f32; 4]) -> f32 {
    let w = (a.x + a.w).min(b[0] + b[2]) - a.x.max(b[0]);
    let h = (a.y + a.h).min(b[1] + b[3]) - a.y.max(b[1]);
    let inter = w.max(0.0) * h.max(0.0);
    let union = a.w * a.h + b[2] * b[3] - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

fn print_summary(
    truth: &Truth,
    tracks: &[TrackFaces],
    scene: u32,
    frames: u64,
    generated_s: f64,
    analysed_s: f64,
) {
    let mut per_actor: BTreeMap<&str, usize> = BTreeMap::new();
    for id in tracks.iter().filter_map(|t| t.identity.as_deref()) {
        *per_actor.entry(id).or_default() += 1;
    }
    let missed: Vec<&str> = truth
        .actors
        .iter()
        .map(|a| a.identity.as_str())
        .filter(|id| !per_actor.contains_key(id))
        .collect();
    eprintln!(
        "tracks: scene {scene}: {} actors, {} tracks with faces, {} tied to an actor ({} actors with 2+ tracks), \
         {} actors with no track{}; {frames} frames analysed; generated in {generated_s:.1} s, analysed in \
         {analysed_s:.1} s",
        truth.actors.len(),
        tracks.len(),
        per_actor.values().sum::<usize>(),
        per_actor.values().filter(|n| **n > 1).count(),
        missed.len(),
        if missed.is_empty() {
            String::new()
        } else {
            format!(" ({})", missed.join(", "))
        },
    );
}

/// Self-check: most walkers must end up with a tied track, else the scenes or the analysis are broken.
fn check_tied(walkers: usize, tracks: &[TrackFaces]) -> Result<()> {
    let tied: HashSet<&str> = tracks
        .iter()
        .filter_map(|t| t.identity.as_deref())
        .collect();
    let untied = tracks.iter().filter(|t| t.identity.is_none()).count();
    ensure!(
        tied.len() as f64 >= MIN_TIED_FRACTION * walkers as f64,
        "only {} of {walkers} walkers got a track tied to them ({untied} tracks tied to no one): expected at \
         least {:.0}%",
        tied.len(),
        MIN_TIED_FRACTION * 100.0
    );
    Ok(())
}
