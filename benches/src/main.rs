//! `checkpoint-bench`: measurements, not pass/fail tests.
//!
//! - `models`: latency per model call (YuNet at 320 and 640, SFace per face at batch 1 and 8 and with its graph
//!   as stored, NanoDet 416).
//! - `pipeline`: whole-pipeline frames per second (decode, detect, track, count, embed) on a 720p file, for
//!   1..N parallel streams, both modes, with the time per stage; plots in `target/bench`.
//! - `compare`: the pipeline beside the OpenCV-Python reference in `benches/reference`.
//! - `cameras`: many real-time cameras through the real agent binary.
//! - `counting-rates`, `watchlist`, `faiss`, `ingest`: accuracy and the hub's and search's figures.
//!
//! Run with `cargo run --release -p checkpoint-bench -- all` (see the README); results in `benches/RESULTS.md`.

mod cameras;
mod compare;
mod counting_rates;
mod faiss;
mod ingest;
mod legacy_track;
mod models;
mod pipeline;
mod plot;
mod watchlist;

use std::path::PathBuf;

use anyhow::Result;
use checkpoint_vision::{Provider, Runtime, RuntimeOptions};
use clap::{Parser, Subcommand};

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
        /// Modes to measure: faces, people (both by default).
        #[arg(long, default_value = "faces,people", value_delimiter = ',')]
        mode: Vec<String>,
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
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        #[arg(long, default_value = "500,2000,5000", value_delimiter = ',')]
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
        Cmd::Models { iterations } => models::run(rt, iterations),
        Cmd::Pipeline {
            file,
            streams,
            seconds,
            mode,
        } => pipeline::run(rt, file, &streams, seconds, &mode),
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
                    None => pipeline::bench_video()?,
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
            models::run(rt, 50)?;
            pipeline::run(
                rt,
                None,
                &[1, 2, 4],
                20.0,
                &["faces".into(), "people".into()],
            )
        }
    }
}

fn shared_dir() -> PathBuf {
    std::env::var_os("CHECKPOINT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}
