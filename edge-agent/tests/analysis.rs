//! The analysis paths on real models: people mode (NanoDet tracks with faces attached) and faces mode, the
//! per-track best face, and the privacy rule that a track's face data dies with the track.

use std::path::PathBuf;
use std::sync::Arc;

use checkpoint_vision::{
    manifest, BgrImage, FaceDetector, FaceDetectorOptions, FaceEmbedder, PersonDetector,
    PersonDetectorOptions, Runtime,
};
use edge_agent::analysis::{AnalysisOptions, CameraAnalyzer, CameraSetup, Mode, Models};
use edge_agent::metrics::Metrics;

fn shared() -> PathBuf {
    std::env::var_os("CHECKPOINT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

fn analyzer(mode: Mode) -> (CameraAnalyzer, Models) {
    let rt = Runtime::get_or_default().expect("ONNX Runtime (scripts/setup)");
    let dir = manifest::default_dir();
    let models = Models {
        faces: FaceDetector::load(
            rt,
            &manifest::resolve("yunet", None, &dir).unwrap(),
            FaceDetectorOptions::default(),
        )
        .unwrap(),
        embedder: Some(
            FaceEmbedder::load(rt, &manifest::resolve("sface", None, &dir).unwrap()).unwrap(),
        ),
        people: (mode == Mode::People).then(|| {
            PersonDetector::load(
                rt,
                &manifest::resolve("nanodet", None, &dir).unwrap(),
                PersonDetectorOptions::default(),
            )
            .unwrap()
        }),
    };
    (
        CameraAnalyzer::new(
            CameraSetup::new("cam", mode, vec![]),
            Arc::new(Metrics::new()),
        ),
        models,
    )
}

#[test]
fn people_mode_tracks_people_keeps_their_best_face_and_forgets_it_when_they_leave() {
    let img = BgrImage::open(&shared().join("datasets/faces/ageitgey/two_people.jpg")).unwrap();
    let (mut a, mut m) = analyzer(Mode::People);
    let mut last = None;
    for i in 0..5 {
        last = Some(a.process(&mut m, &img, i as f64 * 0.1).unwrap());
    }
    let out = last.unwrap();
    assert_eq!(out.people, 2, "two people in the photo");
    assert_eq!(out.tracks, 2, "both confirmed as tracks");
    assert_eq!(
        a.tracks_with_faces(),
        2,
        "each person track got its face attached and embedded"
    );
    // The same photo every frame: the kept face is the same person, so its embeddings agree.
    for id in [1, 2] {
        let faces = a.track_faces(id);
        assert!(!faces.is_empty() && faces.len() <= AnalysisOptions::default().faces_per_track);
        assert!(
            faces.windows(2).all(|w| w[0].quality >= w[1].quality),
            "best first"
        );
        assert!(faces
            .iter()
            .all(|f| f.embedding.cosine(&faces[0].embedding) > 0.99));
    }
    // The two tracks hold different people.
    assert!(
        a.track_faces(1)[0]
            .embedding
            .cosine(&a.track_faces(2)[0].embedding)
            < 0.363
    );

    // An empty scene for longer than the lost timeout ends both tracks and drops their faces.
    let empty = BgrImage::new(img.width, img.height, vec![0; img.data.len()]).unwrap();
    let mut ended = Vec::new();
    for i in 5..30 {
        ended.extend(a.process(&mut m, &empty, i as f64 * 0.1).unwrap().ended);
    }
    ended.sort();
    assert_eq!(ended, vec![1, 2]);
    assert_eq!(a.tracks_with_faces(), 0, "no face data outlives its track");
    assert!(a.track_faces(1).is_empty());
}

#[test]
fn faces_mode_tracks_faces_directly_and_finish_drops_everything() {
    let img = BgrImage::open(&shared().join("datasets/faces/ageitgey/two_people.jpg")).unwrap();
    let (mut a, mut m) = analyzer(Mode::Faces);
    for i in 0..4 {
        a.process(&mut m, &img, i as f64 * 0.1).unwrap();
    }
    assert_eq!(a.tracks_with_faces(), 2);
    let mut ended = a.finish();
    ended.sort();
    assert_eq!(ended, vec![1, 2]);
    assert_eq!(a.tracks_with_faces(), 0);
}

#[test]
fn a_frame_of_noise_is_analysed_without_error_or_detections() {
    let (mut a, mut m) = analyzer(Mode::People);
    let data: Vec<u8> = (0..320u32 * 240 * 3)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let img = BgrImage::new(320, 240, data).unwrap();
    let out = a.process(&mut m, &img, 0.0).unwrap();
    assert_eq!(out.tracks, 0);
}
