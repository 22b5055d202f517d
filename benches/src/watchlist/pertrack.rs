//! Per-track figures: people walking past a camera in generated scenes, analysed by the agent's own
//! analyser, decided by the agent's rule.

use std::collections::HashMap;
use std::path::Path;

use crate::watchlist::corpus::Photo;
use crate::watchlist::gallery::{Rng, Roles};
use crate::watchlist::tracks::Walker;

/// Stranger walkers: enough for FPIR steps of a quarter of a percent per gallery, within about 25 minutes
/// of scene generation and analysis on 2 cores (cached afterwards).
pub const STRANGER_WALKERS: usize = 440;

/// Who walks: every mated person with their *second* photo (the first is enrolled), and a fixed draw of
/// non-mated identities with their first photo. Returns the walkers and, per identity, its role: `Some(m)`
/// for mated person `m`, `None` for a stranger.
pub fn walkers(photos: &[Photo], roles: &Roles, shared: &Path) -> Walkers {
    let path = |i: usize| {
        let p = &photos[i];
        shared
            .join("datasets/faces")
            .join(format!("lfw_{}", p.set))
            .join(&p.person)
            .join(&p.file)
    };
    let usable = |i: usize| {
        let p = &photos[i];
        checkpoint_scenegen::usable_photo(&format!("{}/{}", p.person, p.file))
    };
    let mut out = Vec::new();
    let mut role = HashMap::new();
    let mut walk_photo = HashMap::new();
    for (m, v) in roles.mated.iter().enumerate() {
        // Any photo but the enrolled one that the scene generator can render alone.
        let Some(&walk) = v[1..].iter().find(|&&i| usable(i)) else {
            continue;
        };
        out.push(Walker {
            identity: photos[walk].person.clone(),
            photo: path(walk),
        });
        role.insert(photos[walk].person.clone(), Some(m));
        walk_photo.insert(m, walk);
    }
    let mut others: Vec<usize> = (0..roles.others.len()).collect();
    Rng(0x57A6_6E25).shuffle(&mut others);
    let strangers: Vec<usize> = others
        .into_iter()
        .filter(|&o| usable(roles.others[o][0]))
        .take(STRANGER_WALKERS)
        .collect();
    for &o in &strangers {
        let first = roles.others[o][0];
        out.push(Walker {
            identity: photos[first].person.clone(),
            photo: path(first),
        });
        role.insert(photos[first].person.clone(), None);
    }
    Walkers {
        walkers: out,
        role,
        strangers,
        walk_photo,
    }
}

pub struct Walkers {
    pub walkers: Vec<Walker>,
    /// Per identity: `Some(m)` for mated person `m`, `None` for a stranger.
    pub role: HashMap<String, Option<usize>>,
    /// The non-mated identities that walk.
    pub strangers: Vec<usize>,
    /// Per mated person, the photo they walk with.
    pub walk_photo: HashMap<usize, usize>,
}

/// How listed people are enrolled in a gallery.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Enrolment {
    /// Photos per entry: the first, and with 2 also another that is not the one they walk with.
    pub photos: usize,
    /// Only people who have such another photo are listed (so one and two photos compare like for like).
    pub only_with_extra: bool,
}

pub const ONE_PHOTO: Enrolment = Enrolment {
    photos: 1,
    only_with_extra: false,
};

/// Per-track decision scores against one gallery, by the agent's rule: after each face the analyser keeps,
/// its best three faces (by quality) are fused into a mean; an entry is a candidate at threshold `t` when the
/// mean's similarity and at least `MIN_FACES` individual faces reach `t`. So a track's score for an entry is
/// the best, over its life, of min(mean similarity, the `MIN_FACES`-th best face similarity), and the track
/// alerts at `t` exactly when that score reaches `t`.
pub fn track_scores(faces: &[(f32, Vec<f32>)], gallery: &[Vec<f32>]) -> Option<(usize, f32)> {
    let owner: Vec<usize> = (0..gallery.len()).collect();
    track_scores_multi(faces, gallery, &owner, gallery.len())
}

/// [`track_scores`] for entries with several templates: `rows[r]` belongs to entry `owner[r]`, and an entry
/// scores by its best template, for the mean and for each face, as the agent's matcher does.
pub fn track_scores_multi(
    faces: &[(f32, Vec<f32>)],
    rows: &[Vec<f32>],
    owner: &[usize],
    entries: usize,
) -> Option<(usize, f32)> {
    if faces.len() < MIN_FACES {
        return None;
    }
    // Per face, its similarity to every template: the mean's similarity follows from these and the norm of
    // the sum, so each face is compared with the gallery once.
    let dots: Vec<Vec<f32>> = faces
        .iter()
        .map(|(_, f)| rows.iter().map(|g| dot(f, g)).collect())
        .collect();
    let mut best = vec![f32::NEG_INFINITY; entries];
    for step in MIN_FACES..=faces.len() {
        let mut kept: Vec<usize> = (0..step).collect();
        kept.sort_by(|&a, &b| faces[b].0.total_cmp(&faces[a].0));
        kept.truncate(FACES_PER_TRACK);
        let mut sum = vec![0.0f32; faces[0].1.len()];
        for &k in &kept {
            sum.iter_mut().zip(&faces[k].1).for_each(|(s, x)| *s += x);
        }
        let norm = dot(&sum, &sum).sqrt().max(1e-12);
        let mut mean = vec![f32::NEG_INFINITY; entries];
        let mut each = vec![vec![f32::NEG_INFINITY; entries]; kept.len()];
        for (r, &e) in owner.iter().enumerate() {
            let m = kept.iter().map(|&k| dots[k][r]).sum::<f32>() / norm;
            mean[e] = mean[e].max(m);
            for (i, &k) in kept.iter().enumerate() {
                each[i][e] = each[i][e].max(dots[k][r]);
            }
        }
        for (e, b) in best.iter_mut().enumerate() {
            let mut faces_e: Vec<f32> = each.iter().map(|f| f[e]).collect();
            faces_e.sort_by(|a, b| b.total_cmp(a));
            *b = b.max(mean[e].min(faces_e[MIN_FACES - 1]));
        }
    }
    best.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(g, s)| (g, *s))
}

/// A track's faces in the order kept: (quality, unit embedding).
type QualityFaces = Vec<(f32, Vec<f32>)>;

/// The agent's defaults: `[watchlist.match] min_faces` and the analyser's `faces_per_track`.
pub const MIN_FACES: usize = 2;
pub const FACES_PER_TRACK: usize = 3;

use crate::watchlist::gallery::dot;

use crate::watchlist::det::Scores;
use crate::watchlist::gallery::{fused, plain, unit, FillerModel};
use crate::watchlist::stills::Feature;
use crate::watchlist::tracks::TrackFaces;

pub struct TrackRun {
    pub scores: Scores,
    /// Templates per gallery (entries plus second photos): the comparisons a face makes.
    pub templates: usize,
    pub real_fillers: usize,
    pub synthetic_fillers: usize,
}

pub struct TrackSetup<'a> {
    pub photos: &'a [Photo],
    pub roles: &'a Roles,
    pub tracks: &'a [TrackFaces],
    pub role: &'a HashMap<String, Option<usize>>,
    /// Non-mated identities that walk: never fillers.
    pub walking_strangers: &'a [usize],
    pub walk_photo: &'a HashMap<usize, usize>,
    pub splits: usize,
}

/// Random galleries of `n` entries (mated people enrolled from their first photo, at most half the
/// gallery; fillers from non-mated identities that do not walk, synthetic beyond those), every track
/// decided against each.
pub fn evaluate(s: &TrackSetup, n: usize, feature: Feature, enrol: Enrolment) -> TrackRun {
    let embed = |p: &Photo| match feature {
        Feature::Plain => plain(p),
        Feature::Fused => fused(p),
    };
    let walking: std::collections::HashSet<usize> = s.walking_strangers.iter().copied().collect();
    let pool: Vec<usize> = (0..s.roles.others.len())
        .filter(|o| !walking.contains(o))
        .collect();
    let pool_vecs: Vec<Vec<f32>> = pool
        .iter()
        .map(|&o| embed(&s.photos[s.roles.others[o][0]]))
        .collect();
    let model = FillerModel::fit(&pool_vecs).expect("covariance of real templates");
    let track_faces: Vec<Option<(Option<usize>, QualityFaces)>> = s
        .tracks
        .iter()
        .map(|t| {
            let who = *s.role.get(t.identity.as_ref()?)?;
            let faces = t
                .faces
                .iter()
                .map(|f| {
                    let v = match feature {
                        Feature::Plain => unit(f.plain.clone()),
                        Feature::Fused => unit(f.embedding.clone()),
                    };
                    (f.quality, v)
                })
                .collect();
            Some((who, faces))
        })
        .collect();
    let mut rng = Rng(0x7AC5_0000 + n as u64);
    let mut synth_rng = Rng(0x7AC5_F111 + n as u64);
    let mut out = Scores::default();
    let (mut real_used, mut synth_used) = (0, 0);
    // Another photo than the enrolled first one and the one the person walks with.
    let extra = |m: usize| {
        let walk = s.walk_photo.get(&m).copied();
        s.roles.mated[m][1..]
            .iter()
            .copied()
            .find(|&i| Some(i) != walk)
    };
    let mut templates = 0;
    for _ in 0..s.splits {
        let mut mated: Vec<usize> = (0..s.roles.mated.len())
            .filter(|&m| !enrol.only_with_extra || extra(m).is_some())
            .collect();
        rng.shuffle(&mut mated);
        mated.truncate((n / 2).min(mated.len()));
        let mut order: Vec<usize> = (0..pool.len()).collect();
        rng.shuffle(&mut order);
        let (mut gallery, mut owner) = (Vec::new(), Vec::new());
        for (e, &m) in mated.iter().enumerate() {
            gallery.push(embed(&s.photos[s.roles.mated[m][0]]));
            owner.push(e);
            if let Some(x) = extra(m).filter(|_| enrol.photos >= 2) {
                gallery.push(embed(&s.photos[x]));
                owner.push(e);
            }
        }
        let mut entries = mated.len();
        let real = (n - entries).min(pool.len());
        for &k in &order[..real] {
            gallery.push(pool_vecs[k].clone());
            owner.push(entries);
            entries += 1;
        }
        real_used += real;
        templates = gallery.len() + (n - entries);
        while entries < n {
            gallery.push(model.sample(&mut synth_rng));
            owner.push(entries);
            entries += 1;
            synth_used += 1;
        }
        let position: HashMap<usize, usize> =
            mated.iter().enumerate().map(|(p, &m)| (m, p)).collect();
        for (who, faces) in track_faces.iter().flatten() {
            let Some((at, score)) = track_scores_multi(faces, &gallery, &owner, entries) else {
                // Too few faces for any decision: a stranger raises nothing, a listed person is missed.
                match who.and_then(|m| position.get(&m)) {
                    Some(_) => out.mated.push(f32::NEG_INFINITY),
                    None => out.nonmated.push(f32::NEG_INFINITY),
                }
                continue;
            };
            match who.and_then(|m| position.get(&m)) {
                Some(&pos) => out
                    .mated
                    .push(if at == pos { score } else { f32::NEG_INFINITY }),
                None => out.nonmated.push(score),
            }
        }
    }
    TrackRun {
        scores: out,
        templates,
        real_fillers: real_used / s.splits.max(1),
        synthetic_fillers: synth_used / s.splits.max(1),
    }
}

/// Runs the agent's own `TrackMatcher` on every track against one 1,000-entry wanted list with the default
/// policy, feeding faces as the analyser kept them, and checks it raises candidates on exactly the tracks the
/// scores above predict: the figures are the product's rule, not a model of it.
pub fn agent_agrees(s: &TrackSetup, cal: &checkpoint_openset::Calibration) -> anyhow::Result<()> {
    use checkpoint_protocol::watchlist::{
        Policies, Thresholds, WatchlistEntry, WatchlistSet, MIN_THRESHOLD,
    };
    use checkpoint_protocol::ListKind;
    use checkpoint_vision::Embedding;
    use edge_agent::watchlist::{MatchConfig, TrackMatcher, WatchlistHandle};

    const N: usize = 1_000;
    let one = TrackSetup { splits: 1, ..*s };
    let mut gallery_rng = Rng(0x7AC5_0000 + N as u64);
    // The same first gallery `evaluate` draws: mated first, then real fillers in the same order.
    let mut mated: Vec<usize> = (0..s.roles.mated.len()).collect();
    gallery_rng.shuffle(&mut mated);
    mated.truncate((N / 2).min(mated.len()));
    let walking: std::collections::HashSet<usize> = s.walking_strangers.iter().copied().collect();
    let pool: Vec<usize> = (0..s.roles.others.len())
        .filter(|o| !walking.contains(o))
        .collect();
    let mut order: Vec<usize> = (0..pool.len()).collect();
    gallery_rng.shuffle(&mut order);
    let mut templates: Vec<Vec<f32>> = mated
        .iter()
        .map(|&m| fused(&s.photos[s.roles.mated[m][0]]))
        .collect();
    templates.extend(
        order
            .iter()
            .take(N - templates.len())
            .map(|&k| fused(&s.photos[s.roles.others[pool[k]][0]])),
    );
    anyhow::ensure!(templates.len() == N, "need {N} real templates");
    let expires_at = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let entries = templates
        .iter()
        .enumerate()
        .map(|(i, t)| WatchlistEntry {
            id: format!("g{i}"),
            list: ListKind::Wanted,
            label: format!("gallery {i}"),
            case_ref: "bench".into(),
            legal_basis: "benchmark".into(),
            issued_by: "checkpoint-bench".into(),
            expires_at,
            templates: vec![t.clone()],
        })
        .collect();
    let set = WatchlistSet {
        version: 1,
        entries,
        thresholds: Thresholds {
            wanted: MIN_THRESHOLD,
            missing: MIN_THRESHOLD,
        },
        policies: Some(Policies::default()),
    };
    let t = Policies::default()
        .wanted
        .operating_point(cal, N, MIN_THRESHOLD)
        .threshold;
    let mut matcher = TrackMatcher::new(WatchlistHandle::from_set(set)?, MatchConfig::default());
    let now = time::OffsetDateTime::now_utc();
    let (mut agree, mut differ, mut alerts) = (0usize, 0usize, 0usize);
    for (id, tr) in one.tracks.iter().enumerate() {
        let Some(_) = tr.identity.as_ref().and_then(|i| s.role.get(i)) else {
            continue;
        };
        let faces: Vec<(f32, Embedding)> = tr
            .faces
            .iter()
            .map(|f| (f.quality, Embedding(f.embedding.clone())))
            .collect();
        let mut raised = Vec::new();
        for step in 1..=faces.len() {
            let mut kept: Vec<&(f32, Embedding)> = faces[..step].iter().collect();
            kept.sort_by(|a, b| b.0.total_cmp(&a.0));
            kept.truncate(FACES_PER_TRACK);
            raised.extend(matcher.observe(id as u64, kept.iter().map(|(q, e)| (*q, e)), now));
        }
        matcher.track_ended(id as u64);
        alerts += raised.len();
        let unit_faces: Vec<(f32, Vec<f32>)> = tr
            .faces
            .iter()
            .map(|f| (f.quality, unit(f.embedding.clone())))
            .collect();
        let predicted = track_scores(&unit_faces, &templates).filter(|(_, sc)| *sc >= t);
        let agent_top = raised
            .iter()
            .max_by(|a, b| a.similarity.total_cmp(&b.similarity))
            .and_then(|c| c.entry_id.trim_start_matches('g').parse::<usize>().ok());
        // Same decision: both silent, or both raise the same best entry.
        let same = match (predicted, agent_top) {
            (None, None) => true,
            (Some((g, _)), Some(a)) => {
                g == a || raised.iter().any(|c| c.entry_id == format!("g{g}"))
            }
            _ => false,
        };
        if same {
            agree += 1
        } else {
            differ += 1
        }
    }
    println!(
        "\nCheck against the agent's own TrackMatcher (1,000-entry wanted list, default policy, threshold {t:.3}): \
         {agree} tracks decided the same as the scores above, {differ} differently; {alerts} candidates raised."
    );
    anyhow::ensure!(
        differ == 0,
        "the benchmark's scores disagree with the agent's matcher on {differ} tracks"
    );
    Ok(())
}
