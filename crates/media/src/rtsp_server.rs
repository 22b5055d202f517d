//! In-process RTSP server for end-to-end tests and demos.
//!
//! The server runs its own GLib `MainContext`/`MainLoop` on its own thread. [`RtspTestServer::stop`]
//! really closes the listening socket and disconnects every client, so a test can make a camera
//! vanish; [`RtspTestServer::restart`] binds the same port again with the same mounts.
//!
//! Factories are *not* shared: every client gets its own media pipeline that starts from the
//! beginning (and from a keyframe). A camera that reconnects therefore always sees the stream
//! again, whereas a shared media could be left in EOS or mid-teardown by the previous client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use parking_lot::Mutex;
use tracing::{debug, info, warn};

use crate::error::require_element;
use crate::pipeline::{probe_file, quote, VideoCodec};
use crate::MediaError;

#[derive(Debug, Clone)]
enum MountSpec {
    File {
        path: PathBuf,
        loop_forever: bool,
        reencode: bool,
    },
    TestPattern {
        width: u32,
        height: u32,
        fps: u32,
        codec: VideoCodec,
        audio: Option<RtspAudio>,
    },
}

/// Audio a test mount sends beside its video, as IP cameras with a microphone do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtspAudio {
    /// AAC (`mpeg4-generic`), the usual choice of IP cameras.
    Aac,
    /// G.711 mu-law (`PCMU`), common on older cameras.
    Pcmu,
    /// Opus.
    Opus,
}

impl RtspAudio {
    /// Encoder and payloader fragment, the payloader named `name`.
    fn fragment(self, name: &str) -> String {
        let src = "audiotestsrc is-live=true wave=ticks ! audioconvert ! audioresample";
        match self {
            Self::Aac => format!(
                "{src} ! audio/x-raw,rate=16000,channels=1 ! avenc_aac ! rtpmp4gpay name={name} pt=97"
            ),
            Self::Pcmu => format!(
                "{src} ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name={name}"
            ),
            Self::Opus => format!("{src} ! opusenc ! rtpopuspay name={name} pt=98"),
        }
    }

    fn elements(self) -> &'static [&'static str] {
        match self {
            Self::Aac => &["audiotestsrc", "avenc_aac", "rtpmp4gpay"],
            Self::Pcmu => &["audiotestsrc", "mulawenc", "rtppcmupay"],
            Self::Opus => &["audiotestsrc", "opusenc", "rtpopuspay"],
        }
    }
}

struct Running {
    server: rtsp::RTSPServer,
    ctx: glib::MainContext,
    main_loop: glib::MainLoop,
    source: Option<glib::SourceId>,
    thread: JoinHandle<()>,
}

struct State {
    bind: String,
    port: u16,
    mounts: Vec<(String, MountSpec)>,
    running: Option<Running>,
}

/// An RTSP server on its own GLib main loop thread.
pub struct RtspTestServer {
    state: Mutex<State>,
}

impl RtspTestServer {
    /// Binds `bind:port` (port 0 = ephemeral) and starts serving. Mounts can be added before or
    /// after; they survive [`stop`](Self::stop)/[`restart`](Self::restart).
    pub fn start(bind: &str, port: u16) -> Result<Self, MediaError> {
        crate::init()?;
        for e in ["rtph264pay", "x264enc", "videotestsrc"] {
            require_element(e)?;
        }
        let running = launch(bind, port, &[])?;
        let port = bound_port(&running.server)?;
        info!(bind, port, "RTSP test server listening");
        Ok(Self {
            state: Mutex::new(State {
                bind: bind.into(),
                port,
                mounts: Vec::new(),
                running: Some(running),
            }),
        })
    }

    /// The TCP port the server listens (or listened) on.
    pub fn port(&self) -> u16 {
        self.state.lock().port
    }

    /// Whether the server is currently accepting connections.
    pub fn is_running(&self) -> bool {
        self.state.lock().running.is_some()
    }

    /// `rtsp://bind:port/mount`.
    pub fn url(&self, mount: &str) -> String {
        let st = self.state.lock();
        let mount = if mount.starts_with('/') {
            mount.to_string()
        } else {
            format!("/{mount}")
        };
        format!("rtsp://{}:{}{}", st.bind, st.port, mount)
    }

    /// Serves a local video file as H.264 RTP. H.264 files are only demuxed, parsed and
    /// payloaded (no re-encode); other codecs are decoded and encoded with x264
    /// (`tune=zerolatency`). With `loop_forever` the file restarts seamlessly at its end; without,
    /// clients get end-of-stream.
    pub fn mount_file(
        &self,
        path: &Path,
        mount: &str,
        loop_forever: bool,
    ) -> Result<(), MediaError> {
        let probe = probe_file(path)?;
        let reencode = probe.codec != Some(VideoCodec::H264);
        if reencode {
            info!(path = %path.display(), video = %probe.video_caps, "file is not H.264: re-encoding with x264");
        }
        self.add_mount(
            mount,
            MountSpec::File {
                path: path.to_path_buf(),
                loop_forever,
                reencode,
            },
        )
    }

    /// Serves a live `videotestsrc` ball pattern encoded with x264.
    pub fn mount_test_pattern(
        &self,
        mount: &str,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<(), MediaError> {
        self.mount_test_pattern_with_codec(mount, width, height, fps, VideoCodec::H264)
    }

    /// Like [`mount_test_pattern`](Self::mount_test_pattern) in H.264 or H.265 (x265), for testing
    /// codec detection.
    pub fn mount_test_pattern_with_codec(
        &self,
        mount: &str,
        width: u32,
        height: u32,
        fps: u32,
        codec: VideoCodec,
    ) -> Result<(), MediaError> {
        if width == 0 || height == 0 || fps == 0 {
            return Err(MediaError::RtspServer(
                "test pattern needs width, height and fps > 0".into(),
            ));
        }
        self.mount_pattern(mount, width, height, fps, codec, None)
    }

    /// Like [`mount_test_pattern`](Self::mount_test_pattern) with an audio stream as well. The
    /// audio stream comes first in the SDP, so a client that took the first stream would get
    /// audio: the camera must pick the video stream itself.
    pub fn mount_test_pattern_with_audio(
        &self,
        mount: &str,
        width: u32,
        height: u32,
        fps: u32,
        audio: RtspAudio,
    ) -> Result<(), MediaError> {
        self.mount_pattern(mount, width, height, fps, VideoCodec::H264, Some(audio))
    }

    fn mount_pattern(
        &self,
        mount: &str,
        width: u32,
        height: u32,
        fps: u32,
        codec: VideoCodec,
        audio: Option<RtspAudio>,
    ) -> Result<(), MediaError> {
        if width == 0 || height == 0 || fps == 0 {
            return Err(MediaError::RtspServer(
                "test pattern needs width, height and fps > 0".into(),
            ));
        }
        if codec == VideoCodec::H265 {
            require_element("x265enc")?;
            require_element("rtph265pay")?;
        }
        for e in audio.map(RtspAudio::elements).unwrap_or_default() {
            require_element(e)?;
        }
        self.add_mount(
            mount,
            MountSpec::TestPattern {
                width,
                height,
                fps,
                codec,
                audio,
            },
        )
    }

    fn add_mount(&self, mount: &str, spec: MountSpec) -> Result<(), MediaError> {
        if !mount.starts_with('/')
            || mount.len() < 2
            || mount.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(MediaError::RtspServer(format!(
                "mount {mount:?} must look like /name"
            )));
        }
        let factory = make_factory(&spec)?;
        let mut st = self.state.lock();
        st.mounts.retain(|(m, _)| m != mount);
        st.mounts.push((mount.to_string(), spec));
        if let Some(points) = st.running.as_ref().and_then(|r| r.server.mount_points()) {
            points.add_factory(mount, factory);
        }
        Ok(())
    }

    /// Closes the listening socket, disconnects every client and ends the main loop thread.
    /// Idempotent.
    pub fn stop(&self) {
        let running = self.state.lock().running.take();
        let Some(mut r) = running else { return };
        let (server, main_loop, ctx) = (r.server.clone(), r.main_loop.clone(), r.ctx.clone());
        let source = r.source.take();
        // Done on the loop's own thread: the RTSP objects are driven from there.
        r.ctx.invoke(move || {
            if let Some(src) = source.as_ref().and_then(|id| ctx.find_source_by_id(id)) {
                // Destroying the source drops the last reference to the listening socket.
                src.destroy();
            }
            let clients = server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
            debug!(
                clients = clients.len(),
                "RTSP test server disconnected clients"
            );
            if let Some(pool) = server.session_pool() {
                pool.filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
            }
            main_loop.quit();
        });
        if r.thread.join().is_err() {
            warn!("RTSP test server thread panicked");
        }
        info!("RTSP test server stopped");
    }

    /// Listens again on the same port with the same mounts (after [`stop`](Self::stop)).
    pub fn restart(&self) -> Result<(), MediaError> {
        let mut st = self.state.lock();
        if st.running.is_some() {
            return Ok(());
        }
        let mounts: Vec<(String, rtsp::RTSPMediaFactory)> = st
            .mounts
            .iter()
            .map(|(m, spec)| make_factory(spec).map(|f| (m.clone(), f)))
            .collect::<Result<_, _>>()?;
        // The old socket may linger briefly in the kernel; gst-rtsp-server binds with
        // SO_REUSEADDR, but retry a few times in case the previous loop thread is still closing.
        let mut last_err = None;
        for _ in 0..20 {
            match launch(&st.bind, st.port, &mounts) {
                Ok(r) => {
                    st.running = Some(r);
                    info!(port = st.port, "RTSP test server restarted");
                    return Ok(());
                }
                Err(e) => {
                    last_err = Some(e);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| MediaError::RtspServer("restart failed".into())))
    }
}

impl Drop for RtspTestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bound_port(server: &rtsp::RTSPServer) -> Result<u16, MediaError> {
    u16::try_from(server.bound_port())
        .map_err(|_| MediaError::RtspServer("server is not bound".into()))
}

fn launch(
    bind: &str,
    port: u16,
    mounts: &[(String, rtsp::RTSPMediaFactory)],
) -> Result<Running, MediaError> {
    let server = rtsp::RTSPServer::new();
    server.set_address(bind);
    server.set_service(&port.to_string());
    if let Some(points) = server.mount_points() {
        for (m, f) in mounts {
            points.add_factory(m, f.clone());
        }
    }
    let ctx = glib::MainContext::new();
    let main_loop = glib::MainLoop::new(Some(&ctx), false);
    // attach() creates and binds the listening socket right here, so a busy port fails now.
    let source = server
        .attach(Some(&ctx))
        .map_err(|e| MediaError::RtspServer(format!("cannot listen on {bind}:{port}: {e}")))?;
    let (thread_ctx, thread_loop) = (ctx.clone(), main_loop.clone());
    let thread = std::thread::Builder::new()
        .name("rtsp-test-server".into())
        .spawn(move || {
            // Clients attach to the thread-default context of the thread that accepts them.
            let _ = thread_ctx.with_thread_default(|| thread_loop.run());
        })
        .map_err(|e| MediaError::Thread(e.to_string()))?;
    Ok(Running {
        server,
        ctx,
        main_loop,
        source: Some(source),
        thread,
    })
}

fn make_factory(spec: &MountSpec) -> Result<rtsp::RTSPMediaFactory, MediaError> {
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_shared(false);
    factory.set_stop_on_disconnect(true);
    let pay = "rtph264pay name=pay0 pt=96 config-interval=-1";
    let launch = match spec {
        MountSpec::TestPattern {
            width,
            height,
            fps,
            codec,
            audio,
        } => {
            // Payloaders are numbered in SDP order; audio, when present, takes pay0.
            let (video_pay, audio_branch) = match audio {
                Some(a) => ("pay1", a.fragment("pay0")),
                None => ("pay0", String::new()),
            };
            let enc = match codec {
                VideoCodec::H264 => format!(
                    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} threads=1 \
                     ! rtph264pay name={video_pay} pt=96 config-interval=-1"
                ),
                VideoCodec::H265 => format!(
                    "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} \
                     ! rtph265pay name={video_pay} pt=96 config-interval=-1"
                ),
            };
            format!(
                "( {audio_branch} videotestsrc is-live=true pattern=ball \
                   ! video/x-raw,format=I420,width={width},height={height},framerate={fps}/1 ! {enc} )"
            )
        }
        MountSpec::File { path, reencode, .. } => {
            let location = quote(path.to_str().ok_or_else(|| {
                MediaError::RtspServer(format!("path {} is not valid UTF-8", path.display()))
            })?)?;
            if *reencode {
                format!(
                    "( filesrc location={location} ! decodebin ! videoconvert name=loopfix \
                       ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 threads=2 \
                       ! {pay} )"
                )
            } else {
                format!(
                    "( filesrc location={location} ! parsebin ! h264parse name=loopfix ! {pay} )"
                )
            }
        }
    };
    factory.set_launch(&launch);
    if let MountSpec::File {
        loop_forever: true, ..
    } = spec
    {
        factory.connect_media_configure(|_, media| install_loop(&media.element()));
    }
    Ok(factory)
}

/// Loops a file inside a running media pipeline without the client noticing.
///
/// The duration is hidden from clients (see the query branch). At the end of the file the EOS is swallowed at `loopfix` (the element right before the encoder
/// or payloader) and a flushing seek to 0 is sent upstream from another thread. The flush events
/// are swallowed at the same pad so the payloader and the RTSP sinks never flush, and the pad
/// offset grows by the length of each pass so running time, and with it RTP timestamps, keeps
/// increasing.
fn install_loop(media_element: &gst::Element) {
    let Some(loopfix) = media_element
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("loopfix"))
    else {
        warn!("media has no loopfix element; file will not loop");
        return;
    };
    let Some(pad) = loopfix.static_pad("src") else {
        return;
    };
    debug!("installing file loop probe");

    #[derive(Default)]
    struct LoopState {
        offset_ns: i64,
        pass_end_ns: u64,
        pass_buffers: u64,
        seeking: bool,
    }
    let state = Arc::new(Mutex::new(LoopState::default()));
    let element = loopfix.downgrade();
    pad.add_probe(
        gst::PadProbeType::BUFFER
            | gst::PadProbeType::EVENT_DOWNSTREAM
            | gst::PadProbeType::EVENT_FLUSH
            | gst::PadProbeType::QUERY_UPSTREAM,
        move |pad, info| {
            // A looping stream has no end: answer "unknown duration" and an open segment (the
            // server derives the SDP range from both) so clients see npt=0-. With the file's
            // real length the client ends the stream itself at that position, whatever the
            // server keeps sending.
            if let Some(query) = info.query_mut() {
                match query.view_mut() {
                    gst::QueryViewMut::Duration(q) if q.format() == gst::Format::Time => {
                        q.set(gst::ClockTime::NONE);
                        return gst::PadProbeReturn::Handled;
                    }
                    gst::QueryViewMut::Segment(q) if q.format() == gst::Format::Time => {
                        q.set(1.0, Some(gst::ClockTime::ZERO), gst::ClockTime::NONE);
                        return gst::PadProbeReturn::Handled;
                    }
                    _ => return gst::PadProbeReturn::Ok,
                }
            }
            let mut st = state.lock();
            if let Some(buffer) = info.buffer() {
                st.seeking = false;
                st.pass_buffers += 1;
                if let Some(pts) = buffer.pts() {
                    let end = pts.nseconds() + buffer.duration().map_or(0, |d| d.nseconds());
                    st.pass_end_ns = st.pass_end_ns.max(end);
                }
                return gst::PadProbeReturn::Ok;
            }
            let Some(event) = info.event() else {
                return gst::PadProbeReturn::Ok;
            };
            match event.type_() {
                gst::EventType::Eos if st.pass_buffers > 0 => {
                    st.offset_ns += st.pass_end_ns as i64;
                    st.pass_end_ns = 0;
                    st.pass_buffers = 0;
                    st.seeking = true;
                    let offset = st.offset_ns;
                    debug!(offset_ns = offset, "file ended: looping");
                    let (pad, element) = (pad.clone(), element.clone());
                    // Seeking from the streaming thread would deadlock on its own stream lock.
                    std::thread::spawn(move || {
                        let Some(element) = element.upgrade() else {
                            return;
                        };
                        pad.set_offset(offset);
                        let seek = gst::event::Seek::new(
                            1.0,
                            gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                            gst::SeekType::Set,
                            gst::ClockTime::ZERO,
                            gst::SeekType::None,
                            gst::ClockTime::NONE,
                        );
                        if !element.send_event(seek) {
                            warn!("loop seek failed; ending the stream");
                            pad.push_event(gst::event::Eos::new());
                        }
                    });
                    // `Handled`, not `Drop`: see the sampling probe in `source.rs`.
                    gst::PadProbeReturn::Handled
                }
                gst::EventType::FlushStart | gst::EventType::FlushStop if st.seeking => {
                    gst::PadProbeReturn::Handled
                }
                _ => gst::PadProbeReturn::Ok,
            }
        },
    );
}

/// Writes a short H.264 MP4 clip of a moving test pattern (`videotestsrc ! x264enc ! mp4mux`),
/// for tests and demos that need a real file.
pub fn write_test_clip(
    path: &Path,
    width: u32,
    height: u32,
    fps: u32,
    frames: u32,
) -> Result<(), MediaError> {
    crate::init()?;
    for e in ["videotestsrc", "x264enc", "h264parse", "mp4mux", "filesink"] {
        require_element(e)?;
    }
    let location = quote(path.to_str().ok_or_else(|| MediaError::File {
        path: path.to_path_buf(),
        reason: "path is not valid UTF-8".into(),
    })?)?;
    let description = format!(
        "videotestsrc num-buffers={frames} pattern=ball \
           ! video/x-raw,format=I420,width={width},height={height},framerate={fps}/1 \
           ! x264enc speed-preset=ultrafast key-int-max={fps} ! h264parse ! mp4mux ! filesink location={location}"
    );
    crate::clips::run_to_eos(&description, Duration::from_secs(30))
}
