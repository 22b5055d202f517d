//! `pipeline`: whole-pipeline frames per second on a 720p file for 1..N parallel streams, in each mode, with
//! where each frame's time goes; and the helpers `compare` and `counting-rates` share with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use checkpoint_media::{
    frame_channel, CameraSource, RecvTimeoutError, SourceConfig, SourceKind, SourceState,
};
use checkpoint_vision::{
    manifest, FaceDetector, FaceDetectorOptions, FaceEmbedder, PersonDetector,
    PersonDetectorOptions, Runtime,
};
use edge_agent::analysis::{CameraAnalyzer, CameraSetup, LineConfig, Mode, Models, StageTimings};
use edge_agent::count::Side;
use edge_agent::metrics::Metrics;
use plotters::style::RGBColor;

use crate::plot;

pub fn bench_video() -> Result<PathBuf> {
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

/// Measures every mode at every stream count, prints a table per mode and the per-stage breakdown, and plots
/// frames/s against streams (`pipeline.png`) and the stacked time per frame (`pipeline-stages.png`) into
/// `target/bench`.
pub fn run(
    rt: &Runtime,
    file: Option<PathBuf>,
    streams: &[usize],
    seconds: f64,
    modes: &[String],
) -> Result<()> {
    let modes = modes
        .iter()
        .map(|m| match m.as_str() {
            "people" => Ok(Mode::People),
            "faces" => Ok(Mode::Faces),
            m => bail!("unknown mode {m}: people or faces"),
        })
        .collect::<Result<Vec<_>>>()?;
    let file = match file {
        Some(f) => f,
        None => bench_video()?,
    }
    .canonicalize()?;
    let progress = Progress::new((modes.len() * streams.len() * 2) as u64, "pipeline");
    let mut curves = Vec::new();
    let mut bars = Vec::new();
    for (mode, colour) in modes.iter().zip(MODE_COLOURS) {
        let name = mode_name(*mode);
        let mut rows = Vec::new();
        for &n in streams {
            progress.step(format!("{name}, {n} stream(s): decode only"));
            let decode_ms = decode_cpu_ms(&file, n, seconds)?;
            progress.step(format!("{name}, {n} stream(s): whole pipeline"));
            let r = run_streams(rt, &file, n, seconds, *mode)?;
            rows.push((n, decode_ms, r));
        }
        println!(
            "\n## Whole pipeline, {name} mode, {} (decode + detect + track + count + embed, every frame analysed)\n",
            file.display()
        );
        println!("| streams | frames | wall s | total fps | fps per stream | mean frame ms |");
        println!("|---:|---:|---:|---:|---:|---:|");
        for (n, _, r) in &rows {
            println!(
                "| {n} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                r.frames,
                r.wall_s,
                r.fps(),
                r.fps() / *n as f64,
                r.frame_ms
            );
        }
        println!("\nWhere a frame's time goes (ms; decode is CPU time per frame in a decode-only run of as many streams, the rest wall time on the analysing thread):\n");
        println!("| streams | {} | total |", STAGES.join(" | "));
        println!("|---:|{}---:|", "---:|".repeat(STAGES.len()));
        for (n, decode_ms, r) in &rows {
            let parts = r.stage_parts(*decode_ms);
            let cells: Vec<String> = parts.iter().map(|v| format!("{v:.2}")).collect();
            println!(
                "| {n} | {} | {:.2} |",
                cells.join(" | "),
                parts.iter().sum::<f64>()
            );
            bars.push(plot::StackedBar {
                label: format!("{name} x{n}"),
                parts: parts.to_vec(),
            });
        }
        curves.push(plot::Curve {
            label: format!("{name} mode, all streams together"),
            points: rows.iter().map(|(n, _, r)| (*n as f64, r.fps())).collect(),
            colour,
            dashed: false,
        });
        curves.push(plot::Curve {
            label: format!("{name} mode, per stream"),
            points: rows
                .iter()
                .map(|(n, _, r)| (*n as f64, r.fps() / *n as f64))
                .collect(),
            colour,
            dashed: true,
        });
    }
    progress.finish();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let fps_png = dir.join("pipeline.png");
    plot::lines(
        &fps_png,
        "Whole pipeline, every frame analysed",
        "streams",
        "frames per second",
        &curves,
    )?;
    let stages_png = dir.join("pipeline-stages.png");
    plot::stacked_bars(
        &stages_png,
        "Time per frame by stage",
        "milliseconds per frame",
        &STAGES,
        &bars,
    )?;
    println!(
        "\nplots: {} and {}",
        fps_png.display(),
        stages_png.display()
    );
    Ok(())
}

const MODE_COLOURS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];

/// The stacked plot's parts, bottom up.
const STAGES: [&str; 8] = [
    "decode + convert",
    "face: scale into tensor",
    "face: network",
    "face: outputs + NMS",
    "person detector",
    "track + count",
    "align + embed",
    "other",
];

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Faces => "faces",
        Mode::People => "people",
    }
}

/// One `run_streams` measurement.
pub struct StreamsRun {
    pub frames: u64,
    pub wall_s: f64,
    /// Mean wall time of one frame's analysis.
    pub frame_ms: f64,
    /// Mean per-stage times of the analysis.
    pub stages: StageTimings,
}

impl StreamsRun {
    pub fn fps(&self) -> f64 {
        self.frames as f64 / self.wall_s
    }

    /// The stacked plot's parts (see [`STAGES`]), with `decode_ms` first and the unaccounted rest of the frame
    /// time last.
    fn stage_parts(&self, decode_ms: f64) -> [f64; 8] {
        let s = &self.stages;
        let known = [
            s.face_prepare_ms,
            s.face_network_ms,
            s.face_post_ms,
            s.people_ms,
            s.track_ms,
            s.embed_ms,
        ];
        let other = (self.frame_ms - known.iter().sum::<f64>()).max(0.0);
        [
            decode_ms, known[0], known[1], known[2], known[3], known[4], known[5], other,
        ]
    }
}

/// Decodes the first `seconds` of `file` on `n` streams at once, doing nothing else, and returns the process's
/// CPU time per decoded frame.
fn decode_cpu_ms(file: &Path, n: usize, seconds: f64) -> Result<f64> {
    let cpu = process_cpu_s();
    let workers: Vec<_> = (0..n)
        .map(|i| {
            let file = file.to_path_buf();
            std::thread::spawn(move || -> Result<u64> {
                let mut frames = 0;
                each_frame(&format!("decode-{i}"), &file, |f| {
                    frames += 1;
                    Ok(f.pts_s <= seconds)
                })?;
                Ok(frames)
            })
        })
        .collect();
    let mut frames = 0;
    for w in workers {
        frames += w
            .join()
            .map_err(|_| anyhow::anyhow!("decode worker panicked"))??;
    }
    Ok((process_cpu_s() - cpu) * 1e3 / frames.max(1) as f64)
}

/// User + system CPU seconds of this process so far, from `/proc/self/stat` (in USER_HZ, which Linux fixes at
/// 100 for user space).
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line: 0-based 11 and 12 of what follows the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A progress bar on the terminal for runs that take minutes; nothing when stderr is not a terminal, so logs
/// and RESULTS.md captures stay clean.
pub struct Progress(indicatif::ProgressBar);

impl Progress {
    pub fn new(steps: u64, what: &str) -> Self {
        let bar = indicatif::ProgressBar::new(steps);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(what.to_string());
        Self(bar)
    }

    /// Starts the next step, named `msg`.
    pub fn step(&self, msg: String) {
        if self.0.message().is_empty() {
            self.0.set_message(msg);
        } else {
            self.0.inc(1);
            self.0.set_message(msg);
        }
    }

    /// Runs `f` (which prints a line) with the bar hidden, so the line does not tear it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.suspend(f)
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
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

/// YuNet, and NanoDet when `people`, with their default options.
pub(crate) fn detectors(
    rt: &Runtime,
    people: bool,
) -> Result<(FaceDetector, Option<PersonDetector>)> {
    let dir = manifest::default_dir();
    let faces = FaceDetector::load(
        rt,
        &manifest::resolve("yunet", None, &dir)?,
        FaceDetectorOptions::default(),
    )?;
    let people = if people {
        Some(PersonDetector::load(
            rt,
            &manifest::resolve("nanodet", None, &dir)?,
            PersonDetectorOptions::default(),
        )?)
    } else {
        None
    };
    Ok((faces, people))
}

pub(crate) fn run_streams(
    rt: &Runtime,
    file: &Path,
    n: usize,
    seconds: f64,
    mode: Mode,
) -> Result<StreamsRun> {
    let dir = manifest::default_dir();
    let start = Instant::now();
    let mut workers = Vec::new();
    for i in 0..n {
        let (faces, people) = detectors(rt, mode == Mode::People)?;
        let mut models = Models {
            faces,
            embedder: Some(FaceEmbedder::load(
                rt,
                &manifest::resolve("sface", None, &dir)?,
            )?),
            people,
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
        workers.push(std::thread::spawn(
            move || -> Result<(u64, f64, StageTimings)> {
                let (mut frames, mut busy) = (0u64, 0.0f64);
                let mut stages = StageTimings::default();
                each_frame(&format!("bench-{i}"), &file, |f| {
                    if f.pts_s > seconds {
                        return Ok(false);
                    }
                    let t = Instant::now();
                    let out = analyzer.process(&mut models, &f.image, f.pts_s)?;
                    busy += t.elapsed().as_secs_f64();
                    add(&mut stages, &out.timings);
                    frames += 1;
                    Ok(true)
                })?;
                Ok((frames, busy, stages))
            },
        ));
    }
    let (mut total, mut busy, mut stages) = (0, 0.0, StageTimings::default());
    for w in workers {
        let (f, b, st) = w
            .join()
            .map_err(|_| anyhow::anyhow!("stream worker panicked"))??;
        total += f;
        busy += b;
        add(&mut stages, &st);
    }
    let wall_s = start.elapsed().as_secs_f64();
    let n = total.max(1) as f64;
    let mean = |v: f64| v / n;
    Ok(StreamsRun {
        frames: total,
        wall_s,
        frame_ms: busy * 1000.0 / n,
        stages: StageTimings {
            face_prepare_ms: mean(stages.face_prepare_ms),
            face_network_ms: mean(stages.face_network_ms),
            face_post_ms: mean(stages.face_post_ms),
            people_ms: mean(stages.people_ms),
            track_ms: mean(stages.track_ms),
            embed_ms: mean(stages.embed_ms),
        },
    })
}

fn add(sum: &mut StageTimings, t: &StageTimings) {
    sum.face_prepare_ms += t.face_prepare_ms;
    sum.face_network_ms += t.face_network_ms;
    sum.face_post_ms += t.face_post_ms;
    sum.people_ms += t.people_ms;
    sum.track_ms += t.track_ms;
    sum.embed_ms += t.embed_ms;
}
