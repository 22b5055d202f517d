//! Per-track matching: one decision from several face attempts, one alert per (track, entry).
//!
//! A single frame's face is a weak witness (blur, pose, a passing resemblance), so a candidate needs both:
//! - the track's **mean face** (mean of its best embeddings, re-normalised) reaches the entry's list threshold
//!   against the entry's best template, and
//! - at least `min_faces` of the **individual faces** reach that threshold on their own (the vote).
//!
//! The mean is searched against every template through the [`super::TemplateIndex`]; the `top_k` entries it
//! proposes are then scored exactly, so an approximate index cannot distort a reported similarity.

use std::collections::HashMap;

use checkpoint_vision::{Embedding, EMBEDDING_DIM};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{debug, warn};

use super::store::{WatchlistHandle, WatchlistSnapshot};
use super::{ListKind, WatchlistEntry};

/// Faces per decision at most (the best by quality); the analyser keeps only a few per track anyway.
const MAX_FACES_PER_DECISION: usize = 16;
/// Alerts one track may raise at most. A track that matches this many different people is a defect
/// (a garbage embedding, a template of a poster), and more alerts would only flood the reviewers.
const MAX_RAISED_PER_TRACK: usize = 8;

/// `[watchlist.match]`-style tunables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchConfig {
    /// Faces that must each reach the threshold before a track can match (values below 1 count as 1).
    pub min_faces: usize,
    /// Entries proposed by the index and scored per decision.
    pub top_k: usize,
    /// Tracks with raised candidates remembered at most; beyond it the one least recently matched is
    /// forgotten, so memory stays bounded even if `track_ended` calls are missed. A forgotten track that is
    /// still alive would raise its candidates again, so keep this above the tracks a camera can hold.
    pub max_tracks: usize,
}

impl Default for MatchConfig {
    fn default() -> Self {
        Self {
            min_faces: 2,
            top_k: 5,
            max_tracks: 4096,
        }
    }
}

/// A track that may be a listed person: for people to review, never a verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub track_id: u64,
    pub entry_id: String,
    pub list: ListKind,
    /// The entry's label, copied so an alert can be shown after the entry has gone.
    pub label: String,
    /// Cosine of the track's mean embedding to the entry's best template.
    pub similarity: f32,
    /// The list threshold the decision used.
    pub threshold: f32,
    /// 1 for the best of the entries this track matches in this decision (counting entries already raised).
    pub rank: u32,
    /// Individual faces at or above the threshold.
    pub votes: u32,
    /// Faces that went into the decision.
    pub faces_used: u32,
    /// Watchlist version matched against.
    pub watchlist_version: u64,
    /// Mean quality of the faces that went into the decision.
    pub face_quality: f32,
    /// The next most similar entry proposed for this track (whatever its score), for the reviewers.
    pub second: Option<(String, f32)>,
    /// Entries on the matched list.
    pub list_entries: usize,
    /// The list's calibrated operating point, when it has a policy.
    pub operating: Option<checkpoint_openset::OperatingPoint>,
    /// Chance that one comparison with a stranger scores at least `similarity` (model calibration).
    pub score_fmr: Option<f64>,
}

struct TrackState {
    raised: Vec<String>,
    last_seen: u64,
    /// Whether the per-track cap has been reported, so it is logged once.
    capped: bool,
}

/// Matching state of one camera. Holds only the ids of entries already raised per track, never faces.
pub struct TrackMatcher {
    watchlist: WatchlistHandle,
    config: MatchConfig,
    tracks: HashMap<u64, TrackState>,
    clock: u64,
}

impl TrackMatcher {
    pub fn new(watchlist: WatchlistHandle, config: MatchConfig) -> Self {
        Self {
            watchlist,
            config,
            tracks: HashMap::new(),
            clock: 0,
        }
    }

    pub fn config(&self) -> &MatchConfig {
        &self.config
    }

    /// Decides on a track from its current faces, `(quality, embedding)` — e.g.
    /// `track_faces(id).iter().map(|f| (f.quality, &f.embedding))`. Returns the candidates not raised
    /// before for this track, best first. Call it whenever the track's faces change; repeated calls raise
    /// nothing new for entries already raised.
    pub fn observe<'e, I>(&mut self, track_id: u64, faces: I, now: OffsetDateTime) -> Vec<Candidate>
    where
        I: IntoIterator<Item = (f32, &'e Embedding)>,
    {
        let snap = self.watchlist.snapshot();
        if snap.is_empty() {
            return Vec::new();
        }
        let need = self.config.min_faces.max(1);
        let (faces, face_quality) = usable_faces(faces);
        if faces.len() < need {
            return Vec::new();
        }
        let Some(mean) = mean_direction(&faces) else {
            return Vec::new();
        };
        let hits = self.decide(&snap, &faces, &mean, need, now);
        if hits.is_empty() {
            return Vec::new();
        }
        self.clock += 1;
        let clock = self.clock;
        if !self.tracks.contains_key(&track_id) {
            self.make_room();
        }
        let state = self.tracks.entry(track_id).or_insert_with(|| TrackState {
            raised: Vec::new(),
            last_seen: clock,
            capped: false,
        });
        state.last_seen = clock;
        let mut out = Vec::new();
        for (rank, hit) in hits.into_iter().enumerate() {
            let entry = &snap.entries()[hit.entry];
            if state.raised.contains(&entry.id) {
                continue;
            }
            if state.raised.len() >= MAX_RAISED_PER_TRACK {
                if !state.capped {
                    warn!(
                        track_id,
                        cap = MAX_RAISED_PER_TRACK,
                        "track matches too many watchlist entries; further candidates suppressed"
                    );
                    state.capped = true;
                }
                break;
            }
            state.raised.push(entry.id.clone());
            debug!(
                track_id,
                entry = %entry.id,
                similarity = hit.similarity,
                votes = hit.votes,
                "watchlist candidate"
            );
            let operating = snap.operating(entry.list);
            out.push(Candidate {
                track_id,
                entry_id: entry.id.clone(),
                list: entry.list,
                label: entry.label.clone(),
                similarity: hit.similarity,
                threshold: hit.threshold,
                rank: rank as u32 + 1,
                votes: hit.votes as u32,
                faces_used: faces.len() as u32,
                watchlist_version: snap.version(),
                face_quality,
                second: hit.second.map(|(e, s)| (snap.entries()[e].id.clone(), s)),
                list_entries: snap.set().count(entry.list),
                operating: operating.point,
                score_fmr: snap.calibration().map(|c| c.fmr(hit.similarity)),
            });
        }
        out
    }

    /// Forgets a track: its alerts may be raised again only by a new track.
    pub fn track_ended(&mut self, track_id: u64) {
        self.tracks.remove(&track_id);
    }

    /// Tracks for which state is held (only tracks that have raised a candidate).
    pub fn tracks_held(&self) -> usize {
        self.tracks.len()
    }

    /// Entries that pass both tests, best first.
    fn decide(
        &self,
        snap: &WatchlistSnapshot,
        faces: &[Vec<f32>],
        mean: &[f32],
        need: usize,
        now: OffsetDateTime,
    ) -> Vec<Hit> {
        let top_k = self.config.top_k.max(1);
        // Enough rows that `top_k` distinct entries appear even if the best ones contribute every template.
        let rows = top_k
            .saturating_mul(snap.max_templates().max(1))
            .min(snap.templates());
        let mut proposed: Vec<usize> = Vec::with_capacity(top_k);
        for (row, _) in snap.index().search(mean, rows) {
            match snap.entry_of_row(row) {
                Some(e) if !proposed.contains(&e) => proposed.push(e),
                _ => {}
            }
            if proposed.len() == top_k {
                break;
            }
        }
        let thresholds = snap.thresholds();
        let scored: Vec<(usize, f32)> = proposed
            .into_iter()
            .filter(|&ei| !snap.entries()[ei].is_expired(now))
            .map(|ei| (ei, best_cosine(&snap.entries()[ei], mean)))
            .collect();
        // For each entry, the best other proposed entry: the look-alike a reviewer should weigh it against.
        let runner_up = |ei: usize| {
            scored
                .iter()
                .filter(|(e, _)| *e != ei)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .copied()
        };
        let mut hits: Vec<Hit> = scored
            .iter()
            .filter_map(|&(ei, similarity)| {
                let entry = &snap.entries()[ei];
                let threshold = thresholds.for_list(entry.list);
                if similarity < threshold {
                    return None;
                }
                let votes = faces
                    .iter()
                    .filter(|f| best_cosine(entry, f) >= threshold)
                    .count();
                (votes >= need).then_some(Hit {
                    entry: ei,
                    similarity,
                    threshold,
                    votes,
                    second: runner_up(ei),
                })
            })
            .collect();
        hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        hits
    }

    /// Forgets the least recently matched track when the table is full.
    fn make_room(&mut self) {
        if self.tracks.len() < self.config.max_tracks.max(1) {
            return;
        }
        if let Some(oldest) = self
            .tracks
            .iter()
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(id, _)| *id)
        {
            warn!(
                track_id = oldest,
                max_tracks = self.config.max_tracks,
                "watchlist matcher full; forgetting the oldest track (is track_ended being called?)"
            );
            self.tracks.remove(&oldest);
        }
    }
}

struct Hit {
    entry: usize,
    similarity: f32,
    threshold: f32,
    votes: usize,
    second: Option<(usize, f32)>,
}

/// The best faces by quality, as unit vectors, and their mean quality; faces of the wrong size or with
/// non-finite values are left out rather than trusted.
fn usable_faces<'e>(faces: impl IntoIterator<Item = (f32, &'e Embedding)>) -> (Vec<Vec<f32>>, f32) {
    let mut ranked: Vec<(f32, Vec<f32>)> = faces
        .into_iter()
        .filter_map(|(q, e)| {
            let v = unit(&e.0)?;
            Some((if q.is_finite() { q } else { f32::MIN }, v))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked.truncate(MAX_FACES_PER_DECISION);
    let quality = if ranked.is_empty() {
        0.0
    } else {
        ranked.iter().map(|(q, _)| q.max(0.0)).sum::<f32>() / ranked.len() as f32
    };
    (ranked.into_iter().map(|(_, v)| v).collect(), quality)
}

fn unit(v: &[f32]) -> Option<Vec<f32>> {
    if v.len() != EMBEDDING_DIM || v.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (n > 1e-6 && n.is_finite()).then(|| v.iter().map(|x| x / n).collect())
}

/// Mean of unit vectors, re-normalised; `None` when they cancel out.
fn mean_direction(faces: &[Vec<f32>]) -> Option<Vec<f32>> {
    let mut sum = vec![0.0f32; EMBEDDING_DIM];
    for f in faces {
        sum.iter_mut().zip(f).for_each(|(s, x)| *s += x);
    }
    unit(&sum)
}

fn best_cosine(entry: &WatchlistEntry, query: &[f32]) -> f32 {
    entry
        .templates
        .iter()
        .map(|t| t.iter().zip(query).map(|(a, b)| a * b).sum::<f32>())
        .fold(f32::NEG_INFINITY, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchlist::store::WatchlistStore;
    use crate::watchlist::testutil::entry;
    use crate::watchlist::SyncMessage;
    use crate::watchlist::{Thresholds, WatchlistSet};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    struct Rng(u64);
    impl Rng {
        fn unit(&mut self) -> Vec<f32> {
            let v: Vec<f32> = (0..EMBEDDING_DIM)
                .map(|_| {
                    self.0 ^= self.0 << 13;
                    self.0 ^= self.0 >> 7;
                    self.0 ^= self.0 << 17;
                    (self.0 % 20_001) as f32 / 10_000.0 - 1.0
                })
                .collect();
            unit(&v).unwrap()
        }

        /// A face whose cosine to `identity` is exactly `cos`, in a random direction off it.
        fn face(&mut self, identity: &[f32], cos: f32) -> Embedding {
            let r = self.unit();
            let along: f32 = r.iter().zip(identity).map(|(a, b)| a * b).sum();
            let off: Vec<f32> = r.iter().zip(identity).map(|(x, u)| x - along * u).collect();
            let off = unit(&off).unwrap();
            let sin = (1.0 - cos * cos).sqrt();
            Embedding(
                identity
                    .iter()
                    .zip(&off)
                    .map(|(u, w)| cos * u + sin * w)
                    .collect(),
            )
        }
    }

    fn listed(id: &str, list: ListKind, identity: &[f32]) -> WatchlistEntry {
        let mut e = entry(id, list, 0);
        e.templates = vec![identity.to_vec()];
        e
    }

    fn matcher(entries: Vec<WatchlistEntry>, config: MatchConfig) -> TrackMatcher {
        let set = WatchlistSet {
            version: 7,
            entries,
            thresholds: Thresholds {
                wanted: 0.50,
                missing: 0.40,
            },
            policies: None,
        };
        TrackMatcher::new(WatchlistHandle::from_set(set).unwrap(), config)
    }

    fn q(faces: &[Embedding]) -> impl Iterator<Item = (f32, &Embedding)> {
        faces
            .iter()
            .enumerate()
            .map(|(i, e)| (1.0 - i as f32 * 0.1, e))
    }

    #[test]
    fn matcher_and_store_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<TrackMatcher>();
        send_sync::<WatchlistHandle>();
        send_sync::<WatchlistStore>();
    }

    #[test]
    fn a_listed_person_raises_one_candidate_per_track_however_often_observed() {
        let mut rng = Rng(1);
        let (alice, bob) = (rng.unit(), rng.unit());
        let mut m = matcher(
            vec![
                listed("alice", ListKind::Wanted, &alice),
                listed("bob", ListKind::Wanted, &bob),
            ],
            MatchConfig::default(),
        );
        let mut raised = Vec::new();
        for _ in 0..50 {
            let faces: Vec<Embedding> = (0..3).map(|_| rng.face(&alice, 0.6)).collect();
            raised.extend(m.observe(11, q(&faces), NOW));
        }
        assert_eq!(raised.len(), 1, "{raised:?}");
        let c = &raised[0];
        assert_eq!(
            (c.track_id, c.entry_id.as_str(), c.list),
            (11, "alice", ListKind::Wanted)
        );
        assert_eq!(
            (c.rank, c.votes, c.faces_used, c.watchlist_version),
            (1, 3, 3, 7)
        );
        assert_eq!(c.label, "Case alice");
        assert_eq!(c.threshold, 0.50);
        // The mean of three faces at 0.6 sits closer to the identity than any one of them.
        assert!(c.similarity > 0.6 && c.similarity < 1.0, "{}", c.similarity);

        // Another track of the same person is a new sighting.
        let faces: Vec<Embedding> = (0..2).map(|_| rng.face(&alice, 0.6)).collect();
        assert_eq!(m.observe(12, q(&faces), NOW).len(), 1);
        assert_eq!(m.tracks_held(), 2);
    }

    #[test]
    fn people_not_listed_never_match() {
        let mut rng = Rng(2);
        let entries: Vec<WatchlistEntry> = (0..200)
            .map(|i| {
                let list = if i % 2 == 0 {
                    ListKind::Wanted
                } else {
                    ListKind::Missing
                };
                listed(&format!("p{i}"), list, &rng.unit())
            })
            .collect();
        let mut m = matcher(entries, MatchConfig::default());
        for track in 0..500 {
            let stranger = rng.unit();
            let faces: Vec<Embedding> = (0..3).map(|_| rng.face(&stranger, 0.7)).collect();
            assert!(m.observe(track, q(&faces), NOW).is_empty());
        }
        assert_eq!(
            m.tracks_held(),
            0,
            "tracks without candidates hold no state"
        );
    }

    #[test]
    fn min_faces_must_each_reach_the_threshold() {
        let mut rng = Rng(3);
        let carol = rng.unit();
        let entries = vec![listed("carol", ListKind::Wanted, &carol)];
        let mut m = matcher(entries.clone(), MatchConfig::default());

        // One face is not enough, however good.
        let one = [rng.face(&carol, 0.9)];
        assert!(m.observe(1, q(&one), NOW).is_empty());
        // Two faces whose mean passes but only one of which passes on its own: no.
        let mixed = [rng.face(&carol, 0.9), rng.face(&carol, 0.45)];
        assert!(m.observe(1, q(&mixed), NOW).is_empty());
        // Two passing faces: yes.
        let two = [rng.face(&carol, 0.55), rng.face(&carol, 0.55)];
        assert_eq!(m.observe(1, q(&two), NOW).len(), 1);

        let mut one_face = matcher(
            entries.clone(),
            MatchConfig {
                min_faces: 1,
                ..Default::default()
            },
        );
        assert_eq!(one_face.observe(1, q(&one), NOW).len(), 1);

        let mut three = matcher(
            entries,
            MatchConfig {
                min_faces: 3,
                ..Default::default()
            },
        );
        assert!(three.observe(1, q(&two), NOW).is_empty());
        // Garbage faces are not counted towards the minimum.
        let junk = [
            two[0].clone(),
            two[1].clone(),
            Embedding(vec![f32::NAN; EMBEDDING_DIM]),
            Embedding(vec![0.0; EMBEDDING_DIM]),
            Embedding(vec![0.1; 12]),
        ];
        assert!(three.observe(1, q(&junk), NOW).is_empty());
    }

    #[test]
    fn missing_and_wanted_lists_use_their_own_thresholds() {
        let mut rng = Rng(4);
        let (dan, eve) = (rng.unit(), rng.unit());
        let mut m = matcher(
            vec![
                listed("dan", ListKind::Wanted, &dan),
                listed("eve", ListKind::Missing, &eve),
            ],
            MatchConfig::default(),
        );
        // Faces at 0.45: above the missing threshold (0.40), below the wanted one (0.50). Two faces that
        // share an offset direction keep the mean at 0.45 too.
        let at = |rng: &mut Rng, who: &[f32]| {
            let f = rng.face(who, 0.45);
            vec![f.clone(), f]
        };
        assert!(m.observe(1, q(&at(&mut rng, &dan)), NOW).is_empty());
        let c = m.observe(2, q(&at(&mut rng, &eve)), NOW);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].list, c[0].threshold), (ListKind::Missing, 0.40));
    }

    #[test]
    fn expired_entries_never_match() {
        let mut rng = Rng(5);
        let fay = rng.unit();
        let mut e = listed("fay", ListKind::Missing, &fay);
        e.expires_at = NOW;
        let mut m = matcher(vec![e], MatchConfig::default());
        let faces = [rng.face(&fay, 0.8), rng.face(&fay, 0.8)];
        assert!(m.observe(1, q(&faces), NOW).is_empty());
        assert_eq!(
            m.observe(1, q(&faces), NOW - time::Duration::seconds(1))
                .len(),
            1
        );
    }

    #[test]
    fn several_entries_are_ranked_by_similarity() {
        let mut rng = Rng(6);
        let gus = rng.unit();
        // Two entries for look-alikes: one at the identity, one a little off it.
        let near = rng.face(&gus, 0.9).0;
        let mut m = matcher(
            vec![
                listed("near", ListKind::Wanted, &near),
                listed("gus", ListKind::Wanted, &gus),
            ],
            MatchConfig::default(),
        );
        let faces: Vec<Embedding> = (0..3).map(|_| rng.face(&gus, 0.8)).collect();
        let c = m.observe(1, q(&faces), NOW);
        let got: Vec<(&str, u32)> = c.iter().map(|c| (c.entry_id.as_str(), c.rank)).collect();
        assert_eq!(got, vec![("gus", 1), ("near", 2)]);
    }

    #[test]
    fn track_ended_frees_the_state_and_memory_stays_bounded() {
        let mut rng = Rng(7);
        let hal = rng.unit();
        let mut m = matcher(
            vec![listed("hal", ListKind::Wanted, &hal)],
            MatchConfig {
                max_tracks: 3,
                ..Default::default()
            },
        );
        let faces = [rng.face(&hal, 0.7), rng.face(&hal, 0.7)];
        assert_eq!(m.observe(1, q(&faces), NOW).len(), 1);
        assert!(m.observe(1, q(&faces), NOW).is_empty());
        assert_eq!(m.tracks_held(), 1);
        m.track_ended(1);
        assert_eq!(m.tracks_held(), 0);
        // Track ids are not reused by the tracker, but if one were, it would be a new sighting.
        assert_eq!(m.observe(1, q(&faces), NOW).len(), 1);

        for t in 100..120 {
            assert_eq!(m.observe(t, q(&faces), NOW).len(), 1);
            assert!(m.tracks_held() <= 3);
        }
        // The most recent tracks are the ones remembered.
        assert!(m.observe(119, q(&faces), NOW).is_empty());
    }

    #[test]
    fn the_matcher_follows_store_updates() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = WatchlistStore::open(dir.path()).unwrap();
        let mut m = TrackMatcher::new(store.handle(), MatchConfig::default());
        let mut rng = Rng(8);
        let ivy = rng.unit();
        let faces = [rng.face(&ivy, 0.7), rng.face(&ivy, 0.7)];
        assert!(m.observe(1, q(&faces), NOW).is_empty());
        store
            .apply(
                SyncMessage::Full {
                    version: 1,
                    entries: vec![listed("ivy", ListKind::Missing, &ivy)],
                    thresholds: Thresholds::default(),
                    policies: None,
                },
                NOW,
            )
            .unwrap();
        let c = m.observe(1, q(&faces), NOW);
        assert_eq!((c.len(), c[0].watchlist_version), (1, 1));
        store
            .apply(
                SyncMessage::Delta {
                    base_version: 1,
                    version: 2,
                    add: vec![],
                    remove: vec!["ivy".into()],
                    expire: vec![],
                    policies: None,
                    thresholds: None,
                },
                NOW,
            )
            .unwrap();
        m.track_ended(1);
        assert!(m.observe(1, q(&faces), NOW).is_empty());
    }
}
