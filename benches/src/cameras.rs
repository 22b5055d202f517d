//! `cameras`: many live cameras on one box, through the real agent binary.
//!
//! The standard gate scene (8 in, 8 out per 60 s pass, known truth) is played by `--cameras` file cameras in
//! real time (like live cameras) at `--fps` analysed frames per second, faces mode, embedding on, as a small
//! site would run it. Phase one plays it once on every camera and checks what the issue asks of that run:
//! analysed rate per camera, frames dropped for backpressure and load against those sampled, counts against
//! the truth, and the agent's memory. Phase two (`--soak-minutes`) loops the scene and samples the agent's
//! resident memory every 30 s, to show whether it stays flat.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use checkpoint_protocol::{Direction, Envelope, EventKind};
use checkpoint_scenegen::{Direction as TruthDirection, SceneSpec, Truth};

use crate::pipeline::Progress;

pub struct Options {
    pub cameras: usize,
    pub fps: f64,
    pub soak_minutes: f64,
    pub out: PathBuf,
}

pub fn run(o: &Options) -> Result<()> {
    let agent_bin = std::env::current_exe()?
        .parent()
        .map(|d| d.join("edge-agent"))
        .filter(|p| p.is_file())
        .context("edge-agent next to checkpoint-bench: cargo build --release -p edge-agent")?;
    std::fs::create_dir_all(&o.out)?;
    // The agent resolves relative paths in its config from the config's folder.
    let out = o.out.canonicalize()?;
    let o = &Options {
        out,
        cameras: o.cameras,
        fps: o.fps,
        soak_minutes: o.soak_minutes,
    };
    let scene_dir = o.out.join("gate");
    let truth = match std::fs::read(scene_dir.join("truth.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Truth>(&b).ok())
    {
        Some(t) if scene_dir.join(&t.video).is_file() => t,
        _ => checkpoint_scenegen::generate(&SceneSpec::default(), &scene_dir)?,
    };
    let video = scene_dir.join(&truth.video);
    let want_in = truth
        .actors
        .iter()
        .filter(|a| a.direction == TruthDirection::In)
        .count();
    let want_out = truth
        .actors
        .iter()
        .filter(|a| a.direction == TruthDirection::Out)
        .count();

    println!(
        "\n## {} cameras at {} analysed fps on this machine ({} CPU threads), faces mode, embedding on\n",
        o.cameras,
        o.fps,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("Each camera plays {} (1280x720, 25 fps, {want_in} in / {want_out} out per pass) in real time.\n", video.display());

    // Phase one: one pass.
    let run_dir = o.out.join("one-pass");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let (port, config) = write_config(&run_dir, o, &video, &truth, false)?;
    let mut agent = Agent::start(&agent_bin, &config, &run_dir)?;
    let start = Instant::now();
    let mut peak_rss = 0u64;
    let mut metrics = String::new();
    let pass_s = truth.frames as f64 / f64::from(truth.fps);
    let progress = Progress::new(pass_s as u64 / 2 + 10, "one pass");
    while start.elapsed().as_secs_f64() < pass_s + 20.0 {
        progress.step(format!(
            "{:.0} s of {pass_s:.0}",
            start.elapsed().as_secs_f64()
        ));
        std::thread::sleep(Duration::from_secs(2));
        peak_rss = peak_rss.max(rss_bytes(agent.child.id()).unwrap_or(0));
        if let Ok(m) = scrape(port) {
            metrics = m;
        }
        if agent.ended_cameras()? >= o.cameras {
            break;
        }
    }
    progress.finish();
    agent.stop()?;
    let events = agent.events()?;
    println!("| camera | analysed fps | dropped: backpressure / load / of sampled | in counted / truth | out counted / truth |");
    println!("|---|---:|---:|---:|---:|");
    let mut worst_fps = f64::INFINITY;
    let mut worst_drop: f64 = 0.0;
    let mut exact = 0;
    for i in 0..o.cameras {
        let cam = format!("cam-{i}");
        let analysed = metric(
            &metrics,
            &format!("checkpoint_frames_analysed_total{{camera=\"{cam}\"}}"),
        );
        let back = metric(
            &metrics,
            &format!("checkpoint_frames_dropped{{camera=\"{cam}\",reason=\"backpressure\"}}"),
        );
        let load = metric(
            &metrics,
            &format!("checkpoint_frames_dropped{{camera=\"{cam}\",reason=\"load\"}}"),
        );
        let sampled = analysed + back + load;
        let fps = analysed / pass_s;
        let drop = if sampled > 0.0 {
            (back + load) / sampled
        } else {
            0.0
        };
        let (got_in, got_out) = crossings(&events, &cam);
        worst_fps = worst_fps.min(fps);
        worst_drop = worst_drop.max(drop);
        exact += usize::from(got_in == want_in && got_out == want_out);
        println!(
            "| {cam} | {fps:.2} | {back:.0} / {load:.0} / {sampled:.0} ({:.1}%) | {got_in}/{want_in} | {got_out}/{want_out} |",
            100.0 * drop
        );
    }
    println!(
        "\nSlowest camera {worst_fps:.2} fps (target >= {:.2}), worst drop {:.1}% of sampled frames (target <= 1%), \
         counts exact on {exact} of {} cameras, agent peak resident memory {:.0} MB (target <= 1024).",
        o.fps * 0.95,
        100.0 * worst_drop,
        o.cameras,
        peak_rss as f64 / 1e6
    );

    if o.soak_minutes > 0.0 {
        soak(&agent_bin, o, &video, &truth)?;
    }
    Ok(())
}

/// Loops the scene on every camera for `soak_minutes`, printing the agent's memory every 30 s.
fn soak(agent_bin: &Path, o: &Options, video: &Path, truth: &Truth) -> Result<()> {
    let run_dir = o.out.join("soak");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let (port, config) = write_config(&run_dir, o, video, truth, true)?;
    let mut agent = Agent::start(agent_bin, &config, &run_dir)?;
    println!(
        "\n### Memory over {} minutes (scene looping on every camera)\n",
        o.soak_minutes
    );
    println!("| minute | resident MB | slowest camera fps (last 30 s) |");
    println!("|---:|---:|---:|");
    let start = Instant::now();
    let mut last: BTreeMap<String, f64> = BTreeMap::new();
    let mut first_rss = None;
    let mut max_rss = 0u64;
    let progress = Progress::new((o.soak_minutes * 2.0).ceil() as u64, "soak");
    while start.elapsed().as_secs_f64() < o.soak_minutes * 60.0 {
        progress.step(format!(
            "minute {:.1}",
            start.elapsed().as_secs_f64() / 60.0
        ));
        std::thread::sleep(Duration::from_secs(30));
        let rss = rss_bytes(agent.child.id()).unwrap_or(0);
        let m = scrape(port).unwrap_or_default();
        let mut slowest = f64::INFINITY;
        for i in 0..o.cameras {
            let cam = format!("cam-{i}");
            let n = metric(
                &m,
                &format!("checkpoint_frames_analysed_total{{camera=\"{cam}\"}}"),
            );
            let before = last.insert(cam, n).unwrap_or(0.0);
            slowest = slowest.min((n - before) / 30.0);
        }
        let minute = start.elapsed().as_secs_f64() / 60.0;
        // The first sample includes start-up; flatness is judged from the second on.
        if minute > 0.75 && first_rss.is_none() {
            first_rss = Some(rss);
        }
        max_rss = max_rss.max(rss);
        progress.suspend(|| println!("| {minute:.1} | {:.0} | {slowest:.2} |", rss as f64 / 1e6));
    }
    progress.finish();
    agent.stop()?;
    if let Some(f) = first_rss {
        println!(
            "\nResident memory from {:.0} MB (after the first minute) to at most {:.0} MB.",
            f as f64 / 1e6,
            max_rss as f64 / 1e6
        );
    }
    Ok(())
}

fn write_config(
    dir: &Path,
    o: &Options,
    video: &Path,
    truth: &Truth,
    looping: bool,
) -> Result<(u16, PathBuf)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let [ax, ay] = truth.line.a;
    let [bx, by] = truth.line.b;
    let mut text = format!(
        "[site]\nid = \"bench\"\n[agent]\nid = \"a1\"\nevents = \"{}\"\nmetrics_listen = \"127.0.0.1:{port}\"\n\
         count_interval_s = 5\n[outbox]\ndir = \"{}\"\n",
        dir.join("events.jsonl").display(),
        dir.join("outbox").display()
    );
    for i in 0..o.cameras {
        text.push_str(&format!(
            "[[cameras]]\nid = \"cam-{i}\"\nmode = \"faces\"\n[cameras.stream]\nanalysis_fps = {}\n\
             source = {{ kind = \"file\", path = \"{}\", realtime = true, loop = {looping} }}\n\
             [[cameras.lines]]\nid = \"gate\"\ncoords = \"pixels\"\na = [{ax}, {ay}]\nb = [{bx}, {by}]\nin_side = \"right\"\n",
            o.fps,
            video.display()
        ));
    }
    let p = dir.join("site.toml");
    std::fs::write(&p, text)?;
    Ok((port, p))
}

struct Agent {
    child: Child,
    events: PathBuf,
}

impl Agent {
    fn start(bin: &Path, config: &Path, dir: &Path) -> Result<Agent> {
        let log = std::fs::File::create(dir.join("agent.log"))?;
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        Ok(Agent {
            child,
            events: dir.join("events.jsonl"),
        })
    }

    fn events(&self) -> Result<Vec<Envelope>> {
        let Ok(f) = std::fs::File::open(&self.events) else {
            return Ok(Vec::new());
        };
        Ok(BufReader::new(f)
            .lines()
            .map_while(|l| l.ok())
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect())
    }

    fn ended_cameras(&self) -> Result<usize> {
        let mut ended = std::collections::HashSet::new();
        for e in self.events()? {
            if let EventKind::CameraStatus(s) = &e.event {
                if s.state == checkpoint_protocol::CameraState::Ended {
                    ended.insert(s.camera.clone());
                }
            }
        }
        Ok(ended.len())
    }

    fn stop(&mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.child.kill()?;
        bail!("the agent did not stop within 30 s of SIGINT")
    }
}

fn crossings(events: &[Envelope], camera: &str) -> (usize, usize) {
    let mut n = (0, 0);
    for e in events {
        if let EventKind::LineCrossing(c) = &e.event {
            if c.camera == camera {
                match c.direction {
                    Direction::In => n.0 += 1,
                    Direction::Out => n.1 += 1,
                }
            }
        }
    }
    n
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn scrape(port: u16) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
