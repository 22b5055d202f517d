//! `checkpoint-bench`: measurements, not pass/fail tests.
//!
//! - `models`: latency per model call (YuNet at 320 and 640, SFace per face at batch 1 and 8 and with its graph
//!   as stored, NanoDet 416).
//! - `pipeline`: whole-pipeline frames per second (decode, detect, track, count, embed) on a 720p file, for
//!   1..N parallel streams.
//!
//! Run with `cargo run --release -p checkpoint-bench -- all` (see the README).

mod cameras;
mod compare;
mod counting_rates;
mod faiss;
mod ingest;
mod legacy_track;
mod watchlist;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use checkpoint_media::{
    frame_channel, CameraSource, RecvTimeoutError, SourceConfig, SourceKind, SourceState,
};
use checkpoint_vision::{
    geometry::resize_bilinear, manifest, BgrImage, FaceDetector, FaceDetectorOptions, FaceEmbedder,
    GraphEdit, PersonDetector, PersonDetectorOptions, Provider, Runtime, RuntimeOptions,
};
use clap::{Parser, Subcommand};
use edge_agent::analysis::{CameraAnalyzer, CameraSetup, LineConfig, Mode, Models};
use edge_agent::count::Side;
use edge_agent::metrics::Metrics;
use plotters::style::RGBColor;

#[derive(Parser)]
#[command(
    name = "checkpoint-bench",
    about = "Checkpoint benchmarks: model latency and pipeline throughput"
)]
struct Cli {
    /// Execution provider: cpu, cuda, tensorrt, auto.
    #[arg(long, default_value = "cpu", global = true)]
    provider: String,
    /// ONNX Runtime threads per session (0 = runtime default).
    #[arg(long, default_value_t = 0, global = true)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Per-model latency.
    Models {
        #[arg(long, default_value_t = 50)]
        iterations: usize,
    },
    /// Whole-pipeline frames per second on a 720p video, for each stream count.
    Pipeline {
        /// Video to analyse; by default a 720p ground-truth scene is generated into target/bench.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Stream counts to measure, e.g. 1,2,4.
        #[arg(long, default_value = "1,2,4", value_delimiter = ',')]
        streams: Vec<usize>,
        /// Seconds of video per stream.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// people or faces.
        #[arg(long, default_value = "faces")]
        mode: String,
    },
    /// The agent's pipeline beside the OpenCV-Python reference (benches/reference) on the same file, rounds
    /// alternating, with the ratios.
    Compare {
        /// Video to analyse; by default the 720p ground-truth scene of `pipeline`.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Seconds of video per run.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// People mode (NanoDet added on both sides).
        #[arg(long)]
        people: bool,
        /// Where the reference's venv lives (created on first use).
        #[arg(long, default_value = "target/bench/reference-venv")]
        venv: PathBuf,
    },
    /// Many live cameras through the real agent binary: analysed rate, drops, counts and memory.
    Cameras {
        #[arg(long, default_value_t = 8)]
        cameras: usize,
        /// analysis_fps of every camera.
        #[arg(long, default_value_t = 5.0)]
        fps: f64,
        /// After the one-pass run, loop the scene this long and follow the agent's memory.
        #[arg(long, default_value_t = 0.0)]
        soak_minutes: f64,
        #[arg(long, default_value = "target/bench/cameras")]
        out: PathBuf,
    },
    /// Both.
    All,
    /// Counting accuracy of the agent's tracker and counter at each analysis rate, per scene and mode
    /// (detections computed once per frame and cached, then replayed at each rate).
    CountingRates {
        /// Scenes (`checkpoint_scenegen::SceneSpec::preset` names); `none` for real footage only.
        #[arg(
            long,
            default_value = "standard,fast,crowd,stop",
            value_delimiter = ','
        )]
        scenes: Vec<String>,
        /// faces, people.
        #[arg(long, default_value = "faces,people", value_delimiter = ',')]
        modes: Vec<String>,
        /// Analysis rates, frames per second.
        #[arg(long, default_value = "25,10,5,2.5,2", value_delimiter = ',')]
        rates: Vec<f64>,
        /// Starting frames per rate.
        #[arg(long, default_value_t = 4)]
        phases: usize,
        /// Where the scenes and the detection caches go.
        #[arg(long, default_value = "target/bench/counting-rates")]
        out: PathBuf,
        /// Debugging: print one actor's frames (at the first rate) in each scene and mode.
        #[arg(long)]
        trace: Option<u32>,
        /// Skip the real-footage sweep (people mode on ../shared/datasets/mot and the labelled videos).
        #[arg(long)]
        no_real_footage: bool,
    },
    /// Hub ingest: events per second stored on SQLite and PostgreSQL.
    Ingest {
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        #[arg(long, default_value = "100,500", value_delimiter = ',')]
        batches: Vec<usize>,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        postgres: String,
    },
    /// Vector search (faiss): build time, latency and recall on random unit 128-d vectors.
    Faiss {
        /// Collection sizes, comma-separated.
        #[arg(long, default_value = "10000,100000,1000000", value_delimiter = ',')]
        sizes: Vec<usize>,
        /// Queries per size (latency samples and recall ground truth).
        #[arg(long, default_value_t = 200)]
        queries: usize,
    },
    /// Watchlist decisions (open-set 1:N): FPIR and FNIR per list size and policy, on stills and tracks.
    Watchlist {
        /// Where caches, tables and the plot go.
        #[arg(long, default_value = "target/bench/watchlist")]
        out: PathBuf,
        /// Random galleries drawn per list size.
        #[arg(long, default_value_t = 10)]
        splits: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Cmd::Faiss { sizes, queries } = &cli.cmd {
        return faiss::run(sizes, *queries); // needs no ONNX Runtime
    }
    if let Cmd::Ingest {
        events,
        batches,
        postgres,
    } = &cli.cmd
    {
        return ingest::run(*events, batches, postgres);
    }
    let provider: Provider = cli.provider.parse()?;
    let rt = Runtime::init(RuntimeOptions {
        provider,
        intra_threads: cli.threads,
        ..Default::default()
    })?;
    println!("# checkpoint-bench");
    println!(
        "ONNX Runtime: {} ({:?} requested; offered {:?})",
        rt.library().display(),
        provider,
        rt.available_providers()
    );
    println!(
        "CPU threads available: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    match cli.cmd {
        Cmd::Models { iterations } => bench_models(rt, iterations),
        Cmd::Pipeline {
            file,
            streams,
            seconds,
            mode,
        } => bench_pipeline(rt, file, &streams, seconds, &mode),
        Cmd::Compare {
            file,
            seconds,
            rounds,
            people,
            venv,
        } => compare::run(
            rt,
            &compare::Options {
                file: match file {
                    Some(f) => f,
                    None => bench_video()?,
                },
                seconds,
                rounds: rounds.max(1),
                people,
                venv,
            },
        ),
        Cmd::Cameras {
            cameras,
            fps,
            soak_minutes,
            out,
        } => cameras::run(&cameras::Options {
            cameras,
            fps,
            soak_minutes,
            out,
        }),
        Cmd::Faiss { sizes, queries } => faiss::run(&sizes, queries),
        Cmd::Watchlist { out, splits } => watchlist::run(rt, &shared_dir(), &out, splits),
        Cmd::Ingest { .. } => Ok(()),
        Cmd::CountingRates {
            scenes,
            modes,
            rates,
            phases,
            out,
            trace,
            no_real_footage,
        } => counting_rates::run(
            rt,
            &counting_rates::Options {
                scenes,
                modes,
                rates,
                phases,
                out,
                trace,
                shared: (!no_real_footage).then(shared_dir),
            },
        ),
        Cmd::All => {
            bench_models(rt, 50)?;
            bench_pipeline(rt, None, &[1, 2, 4], 20.0, "faces")?;
            bench_pipeline(rt, None, &[1], 20.0, "people")
        }
    }
}

fn shared_dir() -> PathBuf {
    std::env::var_os("CHECKPOINT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

struct Stats {
    mean: f64,
    p50: f64,
    p95: f64,
}

fn time_it(iterations: usize, mut f: impl FnMut() -> Result<()>) -> Result<Stats> {
    for _ in 0..3 {
        f()?; // warm-up: first runs allocate arenas and (on GPU) build kernels
    }
    let mut v: Vec<f64> = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    Ok(Stats {
        mean,
        p50: v[v.len() / 2],
        p95: v[(v.len() * 95 / 100).min(v.len() - 1)],
    })
}

fn bench_models(rt: &Runtime, iterations: usize) -> Result<()> {
    let dir = manifest::default_dir();
    let photo = BgrImage::open(&shared_dir().join("datasets/faces/ageitgey/two_people.jpg"))
        .context("benchmark photo from shared/datasets")?;
    let mut det = FaceDetector::load(
        rt,
        &manifest::resolve("yunet", None, &dir)?,
        FaceDetectorOptions::default(),
    )?;
    let mut emb = FaceEmbedder::load(rt, &manifest::resolve("sface", None, &dir)?)?;
    let mut people = PersonDetector::load(
        rt,
        &manifest::resolve("nanodet", None, &dir)?,
        PersonDetectorOptions::default(),
    )?;
    let faces = det.detect(&photo)?;
    let Some(face) = faces.first() else {
        bail!("no face in the benchmark photo")
    };
    let crop = FaceEmbedder::align(&photo, &face.landmarks);
    let batch8: Vec<BgrImage> = (0..8).map(|_| crop.clone()).collect();
    let img320 = resize_bilinear(&photo, 320, 320);
    let img640 = resize_bilinear(&photo, 640, 640);
    let frame720 = resize_bilinear(&photo, 1280, 720);

    println!(
        "\n## Model latency ({iterations} runs after 3 warm-up, provider {:?})\n",
        det.provider()
    );
    println!("| model | input | mean ms | p50 ms | p95 ms | per item ms |");
    println!("|---|---|---:|---:|---:|---:|");
    let row = |name: &str, input: &str, s: Stats, items: usize| {
        println!(
            "| {name} | {input} | {:.2} | {:.2} | {:.2} | {:.2} |",
            s.mean,
            s.p50,
            s.p95,
            s.mean / items as f64
        )
    };
    row(
        "YuNet",
        "320x320",
        time_it(iterations, || {
            det.detect(&img320).map(|_| ()).map_err(Into::into)
        })?,
        1,
    );
    row(
        "YuNet",
        "640x640",
        time_it(iterations, || {
            det.detect(&img640).map(|_| ()).map_err(Into::into)
        })?,
        1,
    );
    row(
        "YuNet (fit 960)",
        "1280x720 frame",
        time_it(iterations, || {
            det.detect_fit(&frame720, 960)
                .map(|_| ())
                .map_err(Into::into)
        })?,
        1,
    );
    // Where a detection's time goes: the pre- and post-processing against the network itself.
    let mut stages = [0.0f64; 3];
    for _ in 0..iterations {
        det.detect_fit(&frame720, 960)?;
        let t = det.last_timings();
        for (acc, v) in stages.iter_mut().zip([t.prepare_ms, t.infer_ms, t.post_ms]) {
            *acc += v / iterations as f64;
        }
    }
    let [prepare, infer, post] = stages;
    println!(
        "| YuNet stages | 1280x720 → 960x544 | scale into tensor {prepare:.2}, network {infer:.2}, \
         outputs+NMS {post:.2} | pre+post {:.0}% of the network | | |",
        100.0 * (prepare + post) / infer
    );
    row(
        "SFace",
        "112x112, batch 1",
        time_it(iterations, || {
            emb.embed_aligned(std::slice::from_ref(&crop))
                .map(|_| ())
                .map_err(Into::into)
        })?,
        1,
    );
    // The same model as stored in its file: ONNX Runtime's scalar PRelu loop (see `graph_edit`).
    let mut stored = FaceEmbedder::load_with(
        rt,
        &manifest::resolve("sface", None, &dir)?,
        GraphEdit::AsStored,
    )?;
    row(
        "SFace, PRelu as stored",
        "112x112, batch 1",
        time_it(iterations, || {
            stored
                .embed_aligned(std::slice::from_ref(&crop))
                .map(|_| ())
                .map_err(Into::into)
        })?,
        1,
    );
    row(
        "SFace",
        "112x112, batch 8",
        time_it(iterations, || {
            emb.embed_aligned(&batch8).map(|_| ()).map_err(Into::into)
        })?,
        8,
    );
    row(
        "NanoDet-Plus",
        "1280x720 → 416",
        time_it(iterations, || {
            people.detect(&frame720).map(|_| ()).map_err(Into::into)
        })?,
        1,
    );
    row(
        "align (5-point)",
        "→ 112x112",
        time_it(iterations, || {
            FaceEmbedder::align(&photo, &face.landmarks);
            Ok(())
        })?,
        1,
    );
    Ok(())
}

fn bench_video() -> Result<PathBuf> {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench/scene720");
    let file = out.join("scene.mp4");
    if file.is_file() {
        return Ok(file);
    }
    println!("generating a 720p test scene into {} ...", out.display());
    let spec = checkpoint_scenegen::SceneSpec {
        // Long enough for everyone to cross; the bench reads only the first `seconds` of it.
        duration_s: None,
        actors: 12,
        seed: 11,
        ..Default::default()
    };
    checkpoint_scenegen::generate(&spec, &out)?;
    Ok(file)
}

fn bench_pipeline(
    rt: &Runtime,
    file: Option<PathBuf>,
    streams: &[usize],
    seconds: f64,
    mode: &str,
) -> Result<()> {
    let mode = match mode {
        "people" => Mode::People,
        "faces" => Mode::Faces,
        m => bail!("unknown mode {m}: people or faces"),
    };
    let file = match file {
        Some(f) => f,
        None => bench_video()?,
    };
    println!(
        "\n## Whole pipeline, {mode:?} mode, {} (decode + detect + track + count + embed, every frame analysed)\n",
        file.display()
    );
    println!("| streams | frames | wall s | total fps | fps per stream | mean frame ms |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let (mut total, mut per) = (Vec::new(), Vec::new());
    for &n in streams {
        let (frames, wall, frame_ms) = run_streams(rt, &file, n, seconds, mode)?;
        println!(
            "| {n} | {frames} | {wall:.1} | {:.1} | {:.1} | {frame_ms:.1} |",
            frames as f64 / wall,
            frames as f64 / wall / n as f64
        );
        total.push((n as f64, frames as f64 / wall));
        per.push((n as f64, frames as f64 / wall / n as f64));
    }
    let name = format!("{mode:?}").to_lowercase();
    let png = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../target/bench/pipeline-{name}.png"));
    watchlist::plot::lines(
        &png,
        &format!("Whole pipeline, {name} mode, every frame analysed"),
        "streams",
        "frames per second",
        &[
            watchlist::plot::Curve {
                label: "all streams together".into(),
                points: total,
                colour: RGBColor(31, 119, 180),
                dashed: false,
            },
            watchlist::plot::Curve {
                label: "per stream".into(),
                points: per,
                colour: RGBColor(214, 39, 40),
                dashed: false,
            },
        ],
    )?;
    println!("\nplot: {}", png.display());
    Ok(())
}

/// Decodes every frame of `file` through the agent's media layer (as fast as they are taken) and hands each
/// to `each` until it returns `false` or the file ends.
pub(crate) fn each_frame(
    name: &str,
    file: &Path,
    mut each: impl FnMut(&checkpoint_media::Frame) -> Result<bool>,
) -> Result<()> {
    let mut cfg = SourceConfig::new(SourceKind::File(checkpoint_media::FileSource {
        path: file.to_path_buf(),
        realtime: false,
        looping: false,
    }));
    cfg.analysis_fps = None;
    let (tx, rx) = frame_channel();
    let handle = CameraSource::spawn(name, cfg, tx)?;
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(f) => {
                if !each(&f)? {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if matches!(
                    handle.state(),
                    SourceState::Ended | SourceState::Down { .. }
                ) && rx.is_empty()
                {
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(())
}

pub(crate) fn run_streams(
    rt: &Runtime,
    file: &Path,
    n: usize,
    seconds: f64,
    mode: Mode,
) -> Result<(u64, f64, f64)> {
    let dir = manifest::default_dir();
    let start = Instant::now();
    let mut workers = Vec::new();
    for i in 0..n {
        let mut models = Models {
            faces: FaceDetector::load(
                rt,
                &manifest::resolve("yunet", None, &dir)?,
                FaceDetectorOptions::default(),
            )?,
            embedder: Some(FaceEmbedder::load(
                rt,
                &manifest::resolve("sface", None, &dir)?,
            )?),
            people: if mode == Mode::People {
                Some(PersonDetector::load(
                    rt,
                    &manifest::resolve("nanodet", None, &dir)?,
                    PersonDetectorOptions::default(),
                )?)
            } else {
                None
            },
        };
        let line = LineConfig {
            id: "main".into(),
            a: [0.0, 0.5],
            b: [1.0, 0.5],
            coords: Default::default(),
            in_side: Side::Right,
            band: None,
            site_boundary: true,
        };
        let mut analyzer = CameraAnalyzer::new(
            CameraSetup::new(&format!("bench-{i}"), mode, vec![line]),
            Arc::new(Metrics::new()),
        );
        let file = file.to_path_buf();
        workers.push(std::thread::spawn(move || -> Result<(u64, f64)> {
            let (mut frames, mut busy) = (0u64, 0.0f64);
            each_frame(&format!("bench-{i}"), &file, |f| {
                if f.pts_s > seconds {
                    return Ok(false);
                }
                let t = Instant::now();
                analyzer.process(&mut models, &f.image, f.pts_s)?;
                busy += t.elapsed().as_secs_f64();
                frames += 1;
                Ok(true)
            })?;
            Ok((frames, busy))
        }));
    }
    let mut total = 0;
    let mut busy = 0.0;
    for w in workers {
        let (f, b) = w
            .join()
            .map_err(|_| anyhow::anyhow!("stream worker panicked"))??;
        total += f;
        busy += b;
    }
    let wall = start.elapsed().as_secs_f64();
    Ok((total, wall, busy * 1000.0 / total.max(1) as f64))
}
