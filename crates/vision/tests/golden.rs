//! Agreement with OpenCV's own YuNet + SFace pipeline on real photos (`shared/datasets/golden`).

mod common;

use checkpoint_vision::{BgrImage, Embedding, FaceDetector, FaceDetectorOptions, FaceEmbedder};

#[derive(serde::Deserialize)]
struct Golden {
    image: String,
    faces: Vec<GoldenFace>,
}

#[derive(serde::Deserialize)]
struct GoldenFace {
    box_xywh: [f32; 4],
    landmarks: [[f32; 2]; 5],
    score: f32,
    embedding: Vec<f32>,
}

#[test]
fn yunet_and_sface_match_opencv_golden_results() {
    let shared = common::shared_dir();
    let rt = common::runtime();
    let mut det =
        FaceDetector::load(rt, &common::model("yunet"), FaceDetectorOptions::default()).unwrap();
    let mut emb = FaceEmbedder::load(rt, &common::model("sface")).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(shared.join("datasets/golden"))
        .expect("golden folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the golden files, found {}",
        files.len()
    );
    let (mut faces_checked, mut worst_box, mut worst_cos) = (0usize, 0f32, 1f32);
    for file in &files {
        let g: Golden = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let img = BgrImage::open(&shared.join(&g.image)).unwrap();
        let found = det.detect(&img).unwrap();
        assert_eq!(
            found.len(),
            g.faces.len(),
            "{}: face count differs from OpenCV",
            g.image
        );
        for gf in &g.faces {
            let gr = checkpoint_vision::Rect {
                x: gf.box_xywh[0],
                y: gf.box_xywh[1],
                w: gf.box_xywh[2],
                h: gf.box_xywh[3],
            };
            let f = found
                .iter()
                .max_by(|a, b| a.bbox.iou(&gr).total_cmp(&b.bbox.iou(&gr)))
                .unwrap();
            let d = [
                f.bbox.x - gr.x,
                f.bbox.y - gr.y,
                f.bbox.w - gr.w,
                f.bbox.h - gr.h,
            ]
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()));
            worst_box = worst_box.max(d);
            assert!(
                d <= 1.0,
                "{}: box {:?} vs OpenCV {:?} (max diff {d:.3} px)",
                g.image,
                f.bbox,
                gf.box_xywh
            );
            for k in 0..5 {
                let dl = (f.landmarks[k][0] - gf.landmarks[k][0])
                    .abs()
                    .max((f.landmarks[k][1] - gf.landmarks[k][1]).abs());
                assert!(dl <= 1.0, "{}: landmark {k} off by {dl:.3} px", g.image);
            }
            assert!(
                (f.score - gf.score).abs() < 0.01,
                "{}: score {} vs {}",
                g.image,
                f.score,
                gf.score
            );
            let e = emb.embed(&img, &gf.landmarks).unwrap();
            let cos = e.cosine(&Embedding::from_raw(&gf.embedding));
            worst_cos = worst_cos.min(cos);
            assert!(
                cos >= 0.995,
                "{}: embedding cosine {cos:.5} against OpenCV's",
                g.image
            );
            // Our own landmarks must give an equally good embedding.
            let e2 = emb.embed(&img, &f.landmarks).unwrap();
            assert!(
                e2.cosine(&Embedding::from_raw(&gf.embedding)) >= 0.99,
                "{}: own-landmark embedding",
                g.image
            );
            faces_checked += 1;
        }
    }
    eprintln!("golden: {} files, {faces_checked} faces, worst box diff {worst_box:.3} px, worst cosine {worst_cos:.5}", files.len());
}

/// The CPU graph edit (PRelu written as Relu/Sub/Mul/Add, `graph_edit`) must not change a single bit of any
/// embedding: checked on every golden face, and on the mirrored crops the agent also embeds.
#[test]
fn sface_with_vectorised_prelu_gives_the_same_bits_as_the_stored_graph() {
    let shared = common::shared_dir();
    let rt = common::runtime();
    let model = common::model("sface");
    let rewritten = checkpoint_vision::graph_edit::vectorise_prelu(&std::fs::read(&model).unwrap())
        .unwrap()
        .map(|(_, n)| n);
    assert_eq!(
        rewritten,
        Some(27),
        "SFace's 27 PRelu nodes are what the edit is for"
    );
    let mut edited = FaceEmbedder::load(rt, &model).unwrap();
    let mut stored =
        FaceEmbedder::load_with(rt, &model, checkpoint_vision::GraphEdit::AsStored).unwrap();
    let mut compared = 0;
    for entry in std::fs::read_dir(shared.join("datasets/golden"))
        .unwrap()
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let g: Golden = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let img = BgrImage::open(&shared.join(&g.image)).unwrap();
        let crops: Vec<BgrImage> = g
            .faces
            .iter()
            .map(|f| FaceEmbedder::align(&img, &f.landmarks))
            .collect();
        let a = edited.embed_aligned_fused(&crops).unwrap();
        let b = stored.embed_aligned_fused(&crops).unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            let same =
                x.0.iter()
                    .zip(&y.0)
                    .all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{}: embeddings differ after the graph edit", g.image);
            compared += 1;
        }
    }
    assert!(compared >= 10, "only {compared} faces compared");
}
