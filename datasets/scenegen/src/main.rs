//! `checkpoint-scenes`: builds counting-test videos with known ground truth. See datasets/README.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use checkpoint_scenegen::{generate, snapshot, Line, SceneSpec, Truth, TRUTH_FILE, VIDEO_FILE};
use clap::{Args, Parser, Subcommand};

/// Test videos for the people counter: real face photos crossing a counting line, with ground truth.
#[derive(Parser)]
#[command(name = "checkpoint-scenes", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Render a scene into DIR/scene.mp4 (H.264/MP4) and write DIR/truth.json.
    ///
    /// "in" = the face centre moves to the side the line's normal (-(b-a).y, (b-a).x) points to; with the
    /// default horizontal line from (0,H/2) to (W,H/2): moving down the picture.
    Generate(GenerateArgs),
    /// Decode frames of a video to PNG, optionally with the truth (line, face and cut-out boxes) drawn on.
    Snapshot(SnapshotArgs),
    /// Serve a video file over RTSP (H.264 passes through, other codecs are re-encoded) as a stand-in camera
    /// for demos and manual tests, until interrupted.
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Video file to serve.
    file: PathBuf,
    /// Address to listen on (loopback by default: this is a test camera, not a streaming server).
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// TCP port (0 = any free port).
    #[arg(long, default_value_t = 8554)]
    port: u16,
    /// Mount point, e.g. /gate.
    #[arg(long, default_value = "/scene")]
    mount: String,
    /// Restart the file at its end instead of ending the stream.
    #[arg(long = "loop")]
    looping: bool,
}

fn run_serve(a: ServeArgs) -> anyhow::Result<()> {
    if !a.file.is_file() {
        anyhow::bail!("{} is not a file", a.file.display());
    }
    let server = checkpoint_media::rtsp_server::RtspTestServer::start(&a.bind, a.port)?;
    server.mount_file(&a.file, &a.mount, a.looping)?;
    println!("serving {} at {}", a.file.display(), server.url(&a.mount));
    loop {
        std::thread::park();
    }
}

#[derive(Args)]
struct GenerateArgs {
    /// Output directory (created if missing; scene.mp4 and truth.json are overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Start from a named scene (standard, fast, crowd, stop: see datasets/README.md); the options below
    /// change it [default: standard].
    #[arg(long)]
    preset: Option<String>,
    /// Seed: the same seed and options give the same truth [default: 7].
    #[arg(long)]
    seed: Option<u64>,
    /// People crossing the line (about half each way), each a distinct LFW identity [default: 16].
    #[arg(long)]
    actors: Option<usize>,
    /// People walking parallel to the line without crossing it [default: 2].
    #[arg(long)]
    non_crossers: Option<usize>,
    /// Length in seconds; 0 = just long enough for everyone [default: 60].
    #[arg(long)]
    duration: Option<f64>,
    /// [default: 1280]
    #[arg(long)]
    width: Option<u32>,
    /// [default: 720]
    #[arg(long)]
    height: Option<u32>,
    /// Video frame rate (the counter usually analyses 10 fps of it) [default: 25].
    #[arg(long)]
    fps: Option<u32>,
    /// LFW-layout faces directory [default: $CHECKPOINT_ASSETS/datasets/faces/lfw_fold1, else
    /// <repo>/../shared/datasets/faces/lfw_fold1].
    #[arg(long)]
    faces: Option<PathBuf>,
    /// Counting line as X1,Y1,X2,Y2 [default: horizontal across the middle, left to right].
    #[arg(long, value_parser = parse_line, allow_hyphen_values = true)]
    line: Option<Line>,
    /// Fraction of crossers who stop on the line [default: 0.2].
    #[arg(long)]
    pause_fraction: Option<f64>,
    /// Shortest stop on the line, seconds [default: 1].
    #[arg(long)]
    pause_min: Option<f32>,
    /// Longest stop on the line, seconds [default: 3].
    #[arg(long)]
    pause_max: Option<f32>,
    /// Fraction of crossers who step back and forth across the line before going on [default: 0.2].
    #[arg(long)]
    jitter_fraction: Option<f64>,
    /// At most this many people in the picture at once [default: 4].
    #[arg(long)]
    max_concurrent: Option<usize>,
    /// Smallest face height, pixels [default: 64].
    #[arg(long)]
    face_min: Option<f32>,
    /// Largest face height, pixels [default: 110].
    #[arg(long)]
    face_max: Option<f32>,
    /// Slowest walking speed, pixels per second [default: 100].
    #[arg(long)]
    speed_min: Option<f32>,
    /// Fastest walking speed, pixels per second [default: 170].
    #[arg(long)]
    speed_max: Option<f32>,
    /// H.264 bitrate in kbit/s [default: 0.1 bit per pixel].
    #[arg(long)]
    bitrate: Option<u32>,
    /// x264 threads (1 = reproducible stream, 0 = automatic) [default: 1].
    #[arg(long)]
    encoder_threads: Option<u32>,
    /// Per-frame sensor noise amplitude in 8-bit levels (0 = none) [default: 2].
    #[arg(long)]
    noise: Option<u8>,
    /// Do not paint the line on the floor.
    #[arg(long)]
    no_line_marking: bool,
    /// Leave the per-frame face boxes out of truth.json.
    #[arg(long)]
    no_boxes: bool,
}

#[derive(Args)]
struct SnapshotArgs {
    /// The video.
    #[arg(long)]
    video: PathBuf,
    /// Truth to draw (default: truth.json beside the video, if present).
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Frame numbers, comma-separated (0-based).
    #[arg(long, value_delimiter = ',', required = true)]
    frames: Vec<u64>,
    /// Output directory for frame_NNNNNN.png.
    #[arg(long)]
    out: PathBuf,
}

fn parse_line(s: &str) -> Result<Line, String> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>().map_err(|e| format!("{x:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match v[..] {
        [x1, y1, x2, y2] => Ok(Line {
            a: [x1, y1],
            b: [x2, y2],
        }),
        _ => Err("expected X1,Y1,X2,Y2".into()),
    }
}

fn run_generate(a: GenerateArgs) -> anyhow::Result<()> {
    let spec = spec_of(&a)?;
    let t0 = Instant::now();
    let truth = generate(&spec, &a.out)?;
    let secs = t0.elapsed().as_secs_f64();
    let video = a.out.join(VIDEO_FILE);
    let size = std::fs::metadata(&video)
        .with_context(|| format!("{}", video.display()))?
        .len();
    let paused = truth.actors.iter().filter(|x| x.paused).count();
    let jitter = truth.actors.iter().filter(|x| x.jitter).count();
    println!(
        "video      {} ({:.1} MB, {} kbit/s)",
        video.display(),
        size as f64 / 1e6,
        spec.effective_bitrate_kbps()
    );
    println!("truth      {}", a.out.join(TRUTH_FILE).display());
    println!(
        "frames     {} ({}x{} at {} fps, {:.1} s)",
        truth.frames, truth.width, truth.height, truth.fps, truth.duration_s
    );
    println!(
        "crossings  in {}  out {}  (non-crossers {}; {} paused, {} jitter)",
        truth.totals.in_, truth.totals.out, truth.totals.none, paused, jitter
    );
    println!(
        "at once    at most {} people in the picture",
        truth.max_in_picture()
    );
    println!("faces      {}", spec.faces_dir.display());
    println!("took       {secs:.1} s");
    Ok(())
}

/// The preset (or the standard scene) with the options given on the command line applied.
fn spec_of(a: &GenerateArgs) -> anyhow::Result<SceneSpec> {
    let name = a.preset.as_deref().unwrap_or("standard");
    let Some(mut spec) = SceneSpec::preset(name) else {
        bail!(
            "unknown preset {name:?}: one of {}",
            SceneSpec::PRESETS.join(", ")
        );
    };
    fn set<T: Clone>(field: &mut T, v: &Option<T>) {
        if let Some(v) = v {
            *field = v.clone();
        }
    }
    set(&mut spec.seed, &a.seed);
    set(&mut spec.actors, &a.actors);
    set(&mut spec.non_crossers, &a.non_crossers);
    if let Some(d) = a.duration {
        spec.duration_s = (d > 0.0).then_some(d);
    }
    set(&mut spec.width, &a.width);
    set(&mut spec.height, &a.height);
    set(&mut spec.fps, &a.fps);
    if let Some(f) = &a.faces {
        spec.faces_dir = f.clone();
    }
    if let Some(l) = a.line {
        spec.line = Some(l);
    }
    set(&mut spec.pause_fraction, &a.pause_fraction);
    set(&mut spec.pause_s.0, &a.pause_min);
    set(&mut spec.pause_s.1, &a.pause_max);
    set(&mut spec.jitter_fraction, &a.jitter_fraction);
    set(&mut spec.max_concurrent, &a.max_concurrent);
    set(&mut spec.face_height_px.0, &a.face_min);
    set(&mut spec.face_height_px.1, &a.face_max);
    set(&mut spec.speed_px_s.0, &a.speed_min);
    set(&mut spec.speed_px_s.1, &a.speed_max);
    if a.bitrate.is_some() {
        spec.bitrate_kbps = a.bitrate;
    }
    set(&mut spec.encoder_threads, &a.encoder_threads);
    set(&mut spec.background.sensor_noise, &a.noise);
    if a.no_line_marking {
        spec.background.draw_line = false;
    }
    if a.no_boxes {
        spec.write_boxes = false;
    }
    Ok(spec)
}

fn run_snapshot(a: SnapshotArgs) -> anyhow::Result<()> {
    let truth_path = a.truth.clone().or_else(|| {
        let p = a.video.parent()?.join(TRUTH_FILE);
        p.is_file().then_some(p)
    });
    let truth = match &truth_path {
        Some(p) => Some(Truth::load(p)?),
        None => None,
    };
    let written = snapshot(&a.video, &a.frames, truth.as_ref(), &a.out)?;
    if written.len() != a.frames.len() {
        bail!(
            "wrote {} of {} frames (the video has fewer frames?)",
            written.len(),
            a.frames.len()
        );
    }
    for p in written {
        println!("{}", p.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Generate(a) => run_generate(a),
        Cmd::Snapshot(a) => run_snapshot(a),
        Cmd::Serve(a) => run_serve(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
