//! Files: finding a file's streams without decoding it (which one is the video, with what codec),
//! and linking only that stream when the pipeline runs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use parking_lot::Mutex;

use super::VideoCodec;
use crate::error::require_element;
use crate::MediaError;

/// What [`probe_file`] found in a video file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProbe {
    /// Codec of the first video stream when it is H.264 or H.265.
    pub codec: Option<VideoCodec>,
    /// Caps name of the first video stream (`video/x-h264`, `video/mpeg`, `image/jpeg`, ...).
    pub video_caps: String,
    /// Full caps of the first video stream, as GStreamer prints them.
    pub video_caps_full: String,
    /// Position of that stream among the file's streams (0-based, in the demuxer's order).
    pub video_stream: usize,
    /// Caps names of every elementary stream whose caps were known when probing stopped, in the
    /// demuxer's order (`?` for one still unknown), for logs and error messages.
    pub streams: Vec<String>,
}

/// How long a probe may take before giving up. Probing stops as soon as the first video
/// stream's caps are known, which takes milliseconds on a local disk; this only bounds a
/// stalled network filesystem.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Name of the application message the probe posts once it knows enough.
const PROBE_DONE: &str = "checkpoint-probe-done";

/// What a stream found by the probe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    Video,
    /// A container parsebin could not demux (its demuxer is missing).
    Container,
    Other,
}

fn stream_kind(caps: &gst::CapsRef) -> StreamKind {
    let name = caps.structure(0).map(|s| s.name().to_string());
    match name.as_deref() {
        _ if crate::error::format_info(caps).is_some_and(|f| f.container) => StreamKind::Container,
        Some(n) if n.starts_with("video/") || n.starts_with("image/") => StreamKind::Video,
        _ => StreamKind::Other,
    }
}

/// The stream the probe settles on: the first video stream, once every stream before it is
/// known not to be video (their caps can arrive later than a video stream's, as in MPEG-TS).
fn first_video(kinds: &[Option<StreamKind>]) -> Option<usize> {
    for (i, k) in kinds.iter().enumerate() {
        match k {
            None => return None,
            Some(StreamKind::Video) | Some(StreamKind::Container) => return Some(i),
            Some(StreamKind::Other) => {}
        }
    }
    None
}

#[derive(Default)]
struct ProbeState {
    /// Caps per exposed stream, in pad order; `None` until its caps event.
    streams: Vec<Option<gst::Caps>>,
    /// A buffer reached a sink: parsebin has exposed every stream of the file.
    flowed: bool,
    announced: bool,
}

impl ProbeState {
    fn kinds(&self) -> Vec<Option<StreamKind>> {
        self.streams
            .iter()
            .map(|c| c.as_ref().map(|c| stream_kind(c)))
            .collect()
    }

    /// Posts [`PROBE_DONE`] once, when the chosen stream is known.
    fn maybe_done(&mut self, bus: &gst::Bus) {
        if self.announced || !self.flowed || first_video(&self.kinds()).is_none() {
            return;
        }
        self.announced = true;
        let _ = bus.post(gst::message::Application::new(gst::Structure::new_empty(
            PROBE_DONE,
        )));
    }
}

/// Finds the video streams of a file with `filesrc ! parsebin`, without decoding.
///
/// Every stream parsebin exposes (audio, subtitles, further video tracks) goes to its own
/// non-blocking `fakesink` and the pipeline runs in PLAYING: a probe that waits for preroll in
/// PAUSED deadlocks on files with more than one stream, because parsebin has no queues and the
/// first sink to preroll blocks the demuxer's only thread before the second stream gets a buffer.
/// Probing stops as soon as the first video stream's caps are known (milliseconds).
///
/// Gives clear errors for a missing, unreadable, unrecognisable or video-less file, and names
/// the element and Debian package when the container's demuxer is not installed.
pub fn probe_file(path: &Path) -> Result<FileProbe, MediaError> {
    crate::init()?;
    let file_err = |reason: String| MediaError::File {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(file_err("not a regular file".into())),
        Err(e) => return Err(file_err(format!("cannot open: {e}"))),
    }
    std::fs::File::open(path).map_err(|e| file_err(format!("cannot open: {e}")))?;
    let location = path
        .to_str()
        .ok_or_else(|| file_err("path is not valid UTF-8".into()))?;
    for e in ["filesrc", "parsebin", "fakesink"] {
        require_element(e)?;
    }

    let pipeline = gst::Pipeline::new();
    let build = || -> Result<(gst::Element, gst::Element), gst::glib::BoolError> {
        let src = gst::ElementFactory::make("filesrc")
            .property("location", location)
            .build()?;
        let parse = gst::ElementFactory::make("parsebin").build()?;
        Ok((src, parse))
    };
    let (src, parsebin) =
        build().map_err(|e| file_err(format!("cannot create probe elements: {e}")))?;
    pipeline
        .add_many([&src, &parsebin])
        .and_then(|_| {
            src.link(&parsebin)
                .map_err(|e| gst::glib::bool_error!("{e}"))
        })
        .map_err(|e| file_err(format!("cannot assemble probe pipeline: {e}")))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| file_err("pipeline has no bus".into()))?;

    let state: Arc<Mutex<ProbeState>> = Arc::default();
    let (pipeline_weak, pad_state, pad_bus) = (pipeline.downgrade(), state.clone(), bus.clone());
    parsebin.connect_pad_added(move |_, pad| {
        let index = {
            let mut st = pad_state.lock();
            st.streams.push(None);
            st.streams.len() - 1
        };
        // Probe first, then read the current caps, so a caps event between the two is not lost.
        let (probe_state, probe_bus) = (pad_state.clone(), pad_bus.clone());
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                let mut st = probe_state.lock();
                if info.buffer().is_some() {
                    st.flowed = true;
                } else if let Some(gst::EventView::Caps(c)) = info.event().map(|e| e.view()) {
                    st.streams[index] = Some(c.caps_owned());
                }
                st.maybe_done(&probe_bus);
                gst::PadProbeReturn::Ok
            },
        );
        if let Some(caps) = pad.current_caps() {
            let mut st = pad_state.lock();
            st.streams[index].get_or_insert(caps);
            st.maybe_done(&pad_bus);
        }
        // Every exposed stream needs a sink or the demuxer stops with not-linked; `async=false`
        // so no sink waits for preroll.
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        if let Ok(sink) = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("async", false)
            .build()
        {
            if pipeline.add(&sink).is_ok() {
                let _ = sink.sync_state_with_parent();
                if let Some(sinkpad) = sink.static_pad("sink") {
                    let _ = pad.link(&sinkpad);
                }
            }
        }
    });

    let outcome = wait_probe(&pipeline, &bus, path);
    let _ = pipeline.set_state(gst::State::Null);
    let missing = outcome?;

    let st = state.lock();
    let streams: Vec<String> = st
        .streams
        .iter()
        .map(|c| {
            c.as_ref()
                .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
                .unwrap_or_else(|| "?".into())
        })
        .collect();
    let chosen = first_video(&st.kinds()).and_then(|i| Some((i, st.streams[i].clone()?)));
    match chosen {
        Some((_, caps)) if stream_kind(&caps) == StreamKind::Container => Err(
            crate::error::missing_codec(&caps, &path.display().to_string()),
        ),
        Some((index, caps)) => {
            let name = caps
                .structure(0)
                .map(|s| s.name().to_string())
                .unwrap_or_default();
            Ok(FileProbe {
                codec: VideoCodec::from_caps_name(&name),
                video_caps: name,
                video_caps_full: caps.to_string(),
                video_stream: index,
                streams,
            })
        }
        None => Err(match missing {
            Some(caps) => crate::error::missing_codec(&caps, &path.display().to_string()),
            None if streams.is_empty() => file_err("no streams found: not a media file".into()),
            None => file_err(format!("no video stream (found: {})", streams.join(", "))),
        }),
    }
}

/// Runs the probe pipeline until it knows the first video stream, ends, fails or times out.
/// Returns the caps of a format parsebin reported it had no element for, if any.
fn wait_probe(
    pipeline: &gst::Pipeline,
    bus: &gst::Bus,
    path: &Path,
) -> Result<Option<gst::Caps>, MediaError> {
    let file_err = |reason: String| MediaError::File {
        path: path.to_path_buf(),
        reason,
    };
    let mut missing: Option<gst::Caps> = None;
    let _ = pipeline.set_state(gst::State::Playing);
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(file_err(format!(
                "timed out probing the file after {} s (no video stream found)",
                PROBE_TIMEOUT.as_secs()
            )));
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
        else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Application(a)
                if a.structure().is_some_and(|s| s.name() == PROBE_DONE) =>
            {
                return Ok(missing)
            }
            gst::MessageView::Eos(_) => return Ok(missing),
            gst::MessageView::Element(el) => {
                if let Some(caps) = el
                    .structure()
                    .filter(|s| s.name() == "missing-plugin")
                    .and_then(|s| s.get::<gst::Caps>("detail").ok())
                {
                    missing.get_or_insert(caps);
                }
            }
            gst::MessageView::Error(e) => {
                if let Some(caps) = missing {
                    return Err(crate::error::missing_codec(
                        &caps,
                        &path.display().to_string(),
                    ));
                }
                return Err(file_err(format!(
                    "{} (debug: {})",
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                )));
            }
            _ => {}
        }
    }
}

/// Links the chosen stream of a file to the element named `video_in`, for templates that leave
/// the demuxer (named `demux`) unlinked, as the built-in file template does.
///
/// Done here rather than by gst-launch's delayed linking: that links the first pad whose
/// *possible* caps fit, and a pad exposed before its caps are known (MPEG-TS, AVI) can claim
/// a parser while it really carries audio or data. Here a pad is linked only once its actual
/// caps name the stream the probe chose. Other streams stay unlinked, which demuxers accept
/// while one stream is linked. Returns whether the pipeline has these elements.
pub(crate) fn link_chosen_stream(pipeline: &gst::Pipeline, caps_name: &str) -> bool {
    let (Some(demux), Some(sinkpad)) = (
        pipeline.by_name("demux"),
        pipeline
            .by_name("video_in")
            .and_then(|e| e.static_pad("sink")),
    ) else {
        return false;
    };
    if sinkpad.is_linked() {
        return false;
    }
    let wanted: Arc<str> = caps_name.into();
    // One pad at a time decides, whatever thread its caps arrive on.
    let decide = Arc::new(Mutex::new(()));
    demux.connect_pad_added(move |_, pad| {
        let try_link = {
            let (wanted, sinkpad, decide) = (wanted.clone(), sinkpad.clone(), decide.clone());
            move |pad: &gst::Pad, caps: &gst::CapsRef| {
                let _guard = decide.lock();
                let name_ok = caps.structure(0).is_some_and(|s| s.name().as_str() == &*wanted);
                // After the chosen pad goes away (a new group of streams), the next match links.
                if name_ok && !sinkpad.is_linked() {
                    if let Err(e) = pad.link(&sinkpad) {
                        tracing::warn!(pad = %pad.name(), error = ?e, "cannot link the video stream");
                    }
                }
            }
        };
        if let Some(caps) = pad.current_caps() {
            try_link(pad, &caps);
            return;
        }
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
            match info.event().map(|e| e.view()) {
                Some(gst::EventView::Caps(c)) => {
                    try_link(pad, c.caps());
                    gst::PadProbeReturn::Remove
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
    });
    true
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::pipeline::{quote, Plan};

    #[test]
    fn probe_waits_for_every_stream_before_the_first_video() {
        use StreamKind::{Container, Other, Video};
        assert_eq!(first_video(&[]), None);
        assert_eq!(first_video(&[Some(Video), None]), Some(0));
        // An earlier stream without caps yet may still be the video (MPEG-TS exposes pads
        // before their caps): wait.
        assert_eq!(first_video(&[None, Some(Video)]), None);
        assert_eq!(first_video(&[Some(Other), Some(Video)]), Some(1));
        assert_eq!(first_video(&[Some(Other), Some(Other)]), None);
        assert_eq!(first_video(&[Some(Container)]), Some(0));
        crate::init().expect("gst init");
        let kind = |c: &str| stream_kind(&gst::Caps::from_str(c).expect("caps"));
        assert_eq!(kind("video/x-h264"), Video);
        assert_eq!(kind("image/jpeg"), Video);
        assert_eq!(kind("audio/mpeg, mpegversion=(int)4"), Other);
        assert_eq!(kind("video/quicktime"), Container);
        assert_eq!(kind("video/mpegts, systemstream=(boolean)true"), Container);
    }

    /// Audio pads (even when exposed first and without caps) stay unlinked; the pad whose caps
    /// name the chosen stream is linked.
    #[test]
    fn only_the_chosen_stream_is_linked() {
        crate::init().expect("gst init");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("av.ts");
        let location = quote(path.to_str().expect("utf-8")).expect("quote");
        crate::clips::run_to_eos(
            &format!(
                "audiotestsrc num-buffers=20 ! audioconvert ! avenc_aac ! aacparse ! m. \
                 videotestsrc num-buffers=10 ! video/x-raw,width=64,height=48,framerate=10/1 \
                 ! x264enc speed-preset=ultrafast ! h264parse ! m. \
                 mpegtsmux name=m ! filesink location={location}"
            ),
            Duration::from_secs(30),
        )
        .expect("clip");
        let probe = probe_file(&path).expect("probe");
        assert_eq!(probe.codec, Some(VideoCodec::H264));
        let pipeline = Plan::parse(&format!(
            "filesrc location={location} ! parsebin name=demux \
             identity name=video_in ! fakesink name=out sync=false"
        ))
        .expect("parse");
        assert!(link_chosen_stream(&pipeline, &probe.video_caps));
        let bus = pipeline.bus().expect("bus");
        pipeline.set_state(gst::State::Playing).expect("play");
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let caps = pipeline
            .by_name("out")
            .and_then(|s| s.static_pad("sink"))
            .and_then(|p| p.current_caps());
        let _ = pipeline.set_state(gst::State::Null);
        assert!(
            matches!(
                msg.as_ref().map(|m| m.view()),
                Some(gst::MessageView::Eos(_))
            ),
            "{msg:?}"
        );
        let name = caps.and_then(|c| c.structure(0).map(|s| s.name().to_string()));
        assert_eq!(name.as_deref(), Some("video/x-h264"));
        // Without the named elements nothing is wired.
        let plain = Plan::parse("videotestsrc ! fakesink").expect("parse");
        assert!(!link_chosen_stream(&plain, "video/x-h264"));
    }
}
