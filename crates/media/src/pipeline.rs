//! Pipeline templates, placeholder substitution, decoder choice and file probing.
//!
//! The templates live as text files in the workspace's `pipelines/` folder (see its README) and
//! are embedded with `include_str!`, so the binary runs from any directory. Lines starting with
//! `#` are comments. Placeholders are `{name}` with `name` made of `[a-z0-9_]`; anything else in
//! braces (such as caps lists `{ I420, NV12 }`) is left alone.
//!
//! Values from the config that are free text (URL, path, device) are substituted as quoted
//! gst-launch strings, and after parsing the crate reads the property back from the element named
//! `src` and refuses the pipeline if it differs: a URL containing spaces, `!` or quotes can
//! therefore never add elements.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use parking_lot::Mutex;

use crate::config::{CodecHint, DecoderPreference, RtspTransport, SourceConfig, SourceKind};
use crate::error::{debian_package, require_element};
use crate::MediaError;

/// Built-in template for `kind = "rtsp"`.
pub const RTSP_TEMPLATE: &str = include_str!("../../../pipelines/rtsp.pipeline");
/// Built-in template for `kind = "file"`.
pub const FILE_TEMPLATE: &str = include_str!("../../../pipelines/file.pipeline");
/// Built-in template for `kind = "v4l2"`.
pub const V4L2_TEMPLATE: &str = include_str!("../../../pipelines/v4l2.pipeline");
/// Built-in template for `kind = "test"`.
pub const TEST_TEMPLATE: &str = include_str!("../../../pipelines/test.pipeline");

/// Video codecs the crate picks decoders for itself; anything else goes through `decodebin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}

impl VideoCodec {
    fn from_caps_name(name: &str) -> Option<Self> {
        match name {
            "video/x-h264" => Some(Self::H264),
            "video/x-h265" => Some(Self::H265),
            _ => None,
        }
    }

    fn from_encoding_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "H264" => Some(Self::H264),
            "H265" => Some(Self::H265),
            _ => None,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::H264 => "H.264",
            Self::H265 => "H.265",
        }
    }

    fn depay(self) -> &'static str {
        match self {
            Self::H264 => "rtph264depay",
            Self::H265 => "rtph265depay",
        }
    }

    fn parse(self) -> &'static str {
        match self {
            Self::H264 => "h264parse",
            Self::H265 => "h265parse",
        }
    }
}

/// Quotes a value for a gst-launch description so it stays one property value.
pub fn quote(value: &str) -> Result<String, MediaError> {
    if value.chars().any(|c| c.is_control()) {
        return Err(MediaError::Config(format!(
            "value {value:?} contains control characters"
        )));
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// Drops comment lines and joins the rest into one description line.
pub fn strip_comments(template: &str) -> String {
    template
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replaces `{name}` placeholders; an unknown placeholder is an error so a typo in a template
/// fails loudly instead of reaching the GStreamer parser.
pub fn substitute(template: &str, vars: &BTreeMap<&str, String>) -> Result<String, MediaError> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len =
            after.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        match name_len {
            Some(n) if n > 0 && after[n..].starts_with('}') => {
                let name = &after[..n];
                let value = vars.get(name).ok_or_else(|| {
                    MediaError::Config(format!(
                        "pipeline placeholder {{{name}}} is not known for this source kind (known: {})",
                        vars.keys().copied().collect::<Vec<_>>().join(", ")
                    ))
                })?;
                out.push_str(value);
                rest = &after[n + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Caps after `videoscale` that fit the frame inside `max_width` x `max_height` without
/// upscaling and without changing the display aspect ratio.
///
/// Ranges instead of fixed sizes because the input size is unknown until the stream starts;
/// `videoscale` fixates ranges by keeping the input size when it fits and otherwise the largest
/// size in range that keeps the aspect ratio. The format is left open so scaling runs on the
/// decoder's YUV, before the single conversion to BGR.
pub fn scale_caps(max_width: Option<u32>, max_height: Option<u32>) -> String {
    let w = max_width.unwrap_or(i32::MAX as u32).min(i32::MAX as u32);
    let h = max_height.unwrap_or(i32::MAX as u32).min(i32::MAX as u32);
    if max_width.is_none() && max_height.is_none() {
        "video/x-raw".into()
    } else {
        format!("video/x-raw,width=[1,{w}],height=[1,{h}],pixel-aspect-ratio=1/1")
    }
}

/// A decoder picked for a codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderChoice {
    /// Main element factory name.
    pub element: String,
    /// gst-launch fragment substituted for `{decoder}`; its first element is named `decoder`.
    pub fragment: String,
    /// Whether it decodes on dedicated hardware.
    pub hardware: bool,
    /// Why it was chosen, for the logs.
    pub reason: String,
}

struct Candidate {
    element: &'static str,
    family: DecoderPreference,
    /// Extra elements needed after the decoder (Jetson outputs NVMM memory).
    tail: &'static str,
    needs: &'static [&'static str],
}

fn candidates(codec: VideoCodec) -> [Candidate; 5] {
    let (nv, va, vaapi, v4l2) = match codec {
        VideoCodec::H264 => ("nvh264dec", "vah264dec", "vaapih264dec", "v4l2h264dec"),
        VideoCodec::H265 => ("nvh265dec", "vah265dec", "vaapih265dec", "v4l2h265dec"),
    };
    [
        Candidate {
            element: nv,
            family: DecoderPreference::Nvidia,
            tail: "",
            needs: &[],
        },
        Candidate {
            element: "nvv4l2decoder",
            family: DecoderPreference::Nvidia,
            tail: " ! nvvidconv ! video/x-raw",
            needs: &["nvvidconv"],
        },
        Candidate {
            element: va,
            family: DecoderPreference::Vaapi,
            tail: "",
            needs: &[],
        },
        Candidate {
            element: vaapi,
            family: DecoderPreference::Vaapi,
            tail: "",
            needs: &[],
        },
        // Stateful V4L2 memory-to-memory decoders (Raspberry Pi and similar SoCs): only under auto.
        Candidate {
            element: v4l2,
            family: DecoderPreference::Auto,
            tail: "",
            needs: &[],
        },
    ]
}

fn software_decoder(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H264 => "avdec_h264",
        VideoCodec::H265 => "avdec_h265",
    }
}

fn registered(name: &str) -> bool {
    gst::ElementFactory::find(name).is_some()
}

/// Picks the decoder for `codec` according to `pref`. With `avoid_hardware` (set after a
/// hardware decoder failed at run time) `Auto` goes straight to libav.
pub fn choose_decoder(
    codec: VideoCodec,
    pref: DecoderPreference,
    avoid_hardware: bool,
) -> Result<DecoderChoice, MediaError> {
    crate::init()?;
    let sw = software_decoder(codec);
    let software = |reason: String| -> Result<DecoderChoice, MediaError> {
        require_element(sw)?;
        Ok(DecoderChoice {
            element: sw.into(),
            fragment: format!("{sw} name=decoder"),
            hardware: false,
            reason,
        })
    };
    let hw_ok = |c: &Candidate| registered(c.element) && c.needs.iter().all(|n| registered(n));
    let pick = |c: &Candidate, reason: String| DecoderChoice {
        element: c.element.into(),
        fragment: format!("{} name=decoder{}", c.element, c.tail),
        hardware: true,
        reason,
    };
    let all = candidates(codec);
    match pref {
        DecoderPreference::Software => software(format!("decoder = \"software\": libav {sw}")),
        DecoderPreference::Nvidia | DecoderPreference::Vaapi => {
            let family: Vec<&Candidate> = all.iter().filter(|c| c.family == pref).collect();
            match family.iter().find(|c| hw_ok(c)) {
                Some(c) => Ok(pick(
                    c,
                    format!("decoder = {pref:?}: {} is registered", c.element),
                )),
                None => {
                    let first = family.first().map(|c| c.element).unwrap_or(sw);
                    Err(MediaError::MissingPlugin {
                        element: first.into(),
                        package: debian_package(first),
                    })
                }
            }
        }
        DecoderPreference::Auto => {
            if avoid_hardware {
                return software(format!(
                    "auto: hardware {} decoding failed earlier on this camera, using libav {sw}",
                    codec.label()
                ));
            }
            match all.iter().find(|c| hw_ok(c)) {
                Some(c) => Ok(pick(
                    c,
                    format!(
                        "auto: hardware {} decoder {} is registered",
                        codec.label(),
                        c.element
                    ),
                )),
                None => software(format!(
                    "auto: no hardware {} decoder registered (checked {}), using libav {sw}",
                    codec.label(),
                    all.iter().map(|c| c.element).collect::<Vec<_>>().join(", ")
                )),
            }
        }
    }
}

/// Video decoders for H.264/H.265 registered in this GStreamer installation, as
/// `(element, hardware)`, hardware first. Meant for logs and benchmarks.
pub fn available_decoders() -> Vec<(String, bool)> {
    if crate::init().is_err() {
        return Vec::new();
    }
    let wanted = gst::Caps::builder_full()
        .structure(gst::Structure::new_empty("video/x-h264"))
        .structure(gst::Structure::new_empty("video/x-h265"))
        .build();
    let factories = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO,
        gst::Rank::NONE,
    );
    let mut out: Vec<(String, bool)> = factories
        .iter()
        .filter(|f| f.can_sink_any_caps(&wanted))
        .map(|f| {
            let name = f.name().to_string();
            let known_hw = candidates(VideoCodec::H264)
                .iter()
                .chain(candidates(VideoCodec::H265).iter())
                .any(|c| c.element == name);
            (name, known_hw || f.klass().contains("Hardware"))
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.dedup();
    out
}

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

/// Fails at once, naming the element and Debian package, when no installed decoder takes the
/// probed video stream. H.264/H.265 are checked by [`choose_decoder`]; this covers the codecs
/// left to `decodebin` (MPEG-4 Part 2, MJPEG, VP8/9, AV1, ...), which would otherwise only
/// fail once the pipeline runs.
pub fn require_decoder(probe: &FileProbe, path: &Path) -> Result<(), MediaError> {
    crate::init()?;
    if probe.codec.is_some() || probe.video_caps == "video/x-raw" {
        return Ok(());
    }
    let caps = gst::Caps::from_str(&probe.video_caps_full).map_err(|e| MediaError::File {
        path: path.to_path_buf(),
        reason: format!("unreadable caps {}: {e}", probe.video_caps_full),
    })?;
    if decoder_for(&caps).is_some() {
        Ok(())
    } else {
        Err(crate::error::missing_codec(
            &caps,
            &path.display().to_string(),
        ))
    }
}

/// The decoder `decodebin` would plug for `caps`: the highest-ranked one it considers
/// (rank marginal or above).
pub fn decoder_for(caps: &gst::CapsRef) -> Option<String> {
    let factories = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER,
        gst::Rank::MARGINAL,
    );
    factories
        .iter()
        .filter(|f| f.can_sink_all_caps(caps))
        .max_by_key(|f| f.rank())
        .map(|f| f.name().to_string())
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

/// What the supervisor needs to (re)build a camera pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Template text with comments stripped.
    template: String,
    /// Whether the template is the config's own.
    pub custom: bool,
    /// Placeholder values that do not depend on codec/decoder.
    vars: BTreeMap<&'static str, String>,
    /// Property of the element named `src` that must read back unchanged after parsing.
    pub expected_src: Option<(&'static str, String)>,
}

/// Per-attempt choices: the codec and the decoder fragment.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub codec: Option<VideoCodec>,
    pub decoder: Option<DecoderChoice>,
    /// Caps name of the file stream to decode (from the probe), for [`link_chosen_stream`].
    pub stream: Option<String>,
}

impl Plan {
    /// Builds the static part of the plan from the config.
    pub(crate) fn new(cfg: &SourceConfig) -> Result<Self, MediaError> {
        let mut vars: BTreeMap<&'static str, String> = BTreeMap::new();
        vars.insert("scale_caps", scale_caps(cfg.max_width, cfg.max_height));
        let (template, expected_src) = match &cfg.source {
            SourceKind::Rtsp(r) => {
                vars.insert("url", quote(&r.url)?);
                vars.insert("latency", r.latency_ms.to_string());
                vars.insert(
                    "protocols",
                    match r.transport {
                        RtspTransport::Tcp => "tcp",
                        RtspTransport::Udp => "udp",
                        RtspTransport::Auto => "udp+udp-mcast+tcp",
                    }
                    .into(),
                );
                (RTSP_TEMPLATE, Some(("location", r.url.clone())))
            }
            SourceKind::File(f) => {
                let p = f.path.to_str().ok_or_else(|| MediaError::File {
                    path: f.path.clone(),
                    reason: "path is not valid UTF-8".into(),
                })?;
                vars.insert("path", quote(p)?);
                (FILE_TEMPLATE, Some(("location", p.to_string())))
            }
            SourceKind::V4l2(v) => {
                vars.insert("device", quote(&v.device)?);
                let mut fields = String::new();
                if let Some(w) = v.width {
                    fields.push_str(&format!(",width={w}"));
                }
                if let Some(h) = v.height {
                    fields.push_str(&format!(",height={h}"));
                }
                if let Some(f) = v.fps {
                    fields.push_str(&format!(",framerate={f}/1"));
                }
                vars.insert(
                    "src_caps",
                    format!("video/x-raw{fields};image/jpeg{fields}"),
                );
                (V4L2_TEMPLATE, Some(("device", v.device.clone())))
            }
            SourceKind::Test(t) => {
                vars.insert("pattern", t.pattern.clone());
                vars.insert("width", t.width.to_string());
                vars.insert("height", t.height.to_string());
                vars.insert("fps", t.fps.to_string());
                (TEST_TEMPLATE, None)
            }
        };
        let custom = cfg.pipeline.is_some();
        let template = strip_comments(cfg.pipeline.as_deref().unwrap_or(template));
        Ok(Self {
            template,
            custom,
            vars,
            expected_src,
        })
    }

    /// The first codec to try for an RTSP source.
    pub(crate) fn initial_rtsp_codec(hint: CodecHint) -> VideoCodec {
        match hint {
            CodecHint::H265 => VideoCodec::H265,
            CodecHint::H264 | CodecHint::Auto => VideoCodec::H264,
        }
    }

    /// The full description for one attempt.
    pub(crate) fn describe(&self, attempt: &Attempt) -> Result<String, MediaError> {
        let mut vars = self.vars.clone();
        if let Some(codec) = attempt.codec {
            vars.insert("depay", codec.depay().into());
            vars.insert("parse", codec.parse().into());
            vars.insert("demux", "parsebin".into());
        } else {
            // Unknown codec in a file: parsebin demuxes, decodebin autoplugs any decoder.
            vars.insert("parse", "identity".into());
            vars.insert("demux", "parsebin".into());
        }
        let decoder = match &attempt.decoder {
            Some(d) => d.fragment.clone(),
            None => "decodebin name=decoder".into(),
        };
        vars.insert("decoder", decoder);
        substitute(&self.template, &vars)
    }

    /// Parses a description, naming the Debian package of any missing element.
    pub(crate) fn parse(description: &str) -> Result<gst::Pipeline, MediaError> {
        crate::init()?;
        let mut ctx = gst::ParseContext::new();
        let element =
            gst::parse::launch_full(description, Some(&mut ctx), gst::ParseFlags::FATAL_ERRORS)
                .map_err(|e| {
                    if let Some(missing) = ctx.missing_elements().into_iter().next() {
                        let package = debian_package(&missing);
                        MediaError::MissingPlugin {
                            element: missing,
                            package,
                        }
                    } else {
                        MediaError::Pipeline {
                            message: e.to_string(),
                            description: description.into(),
                        }
                    }
                })?;
        let pipeline = element
            .downcast::<gst::Pipeline>()
            .map_err(|_| MediaError::Pipeline {
                message:
                    "description is a single element, not a pipeline ending in `appsink name=sink`"
                        .into(),
                description: description.into(),
            })?;
        Ok(pipeline)
    }

    /// Checks what the config promised: an appsink named `sink` and an unmangled `src` value.
    pub(crate) fn verify(
        &self,
        pipeline: &gst::Pipeline,
        description: &str,
    ) -> Result<(), MediaError> {
        let err = |message: String| MediaError::Pipeline {
            message,
            description: description.into(),
        };
        let sink = pipeline
            .by_name("sink")
            .ok_or_else(|| err("no element named `sink`".into()))?;
        if sink
            .factory()
            .map(|f| f.name() != "appsink")
            .unwrap_or(true)
        {
            return Err(err("the element named `sink` must be an appsink".into()));
        }
        if let Some((prop, want)) = &self.expected_src {
            if let Some(src) = pipeline.by_name("src") {
                if src.find_property(prop).is_some() {
                    let got: Option<String> = src.property(prop);
                    if got.as_deref() != Some(want.as_str()) {
                        return Err(err(format!(
                            "`src` {prop} reads back as {got:?} instead of {want:?}; refusing a value the parser split"
                        )));
                    }
                }
            } else if !self.custom {
                return Err(err("built-in template lost its `src` element".into()));
            }
        }
        Ok(())
    }
}

/// Reads the codec from rtspsrc's per-stream caps (`encoding-name`).
pub(crate) fn codec_from_rtp_caps(caps: &gst::CapsRef) -> Option<VideoCodec> {
    caps.structure(0)
        .and_then(|s| s.get::<&str>("encoding-name").ok())
        .and_then(VideoCodec::from_encoding_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileSource, RtspSource, TestSource};

    #[test]
    fn substitution_replaces_known_and_rejects_unknown() {
        let mut vars = BTreeMap::new();
        vars.insert("a", "x".to_string());
        assert_eq!(
            substitute("p {a} ! caps,format={ I420, NV12 } {a}", &vars)
                .ok()
                .as_deref(),
            Some("p x ! caps,format={ I420, NV12 } x")
        );
        assert!(substitute("p {b}", &vars).is_err());
        assert_eq!(
            strip_comments("# c\n a !\n\n  b # not a comment\n"),
            "a ! b # not a comment"
        );
    }

    #[test]
    fn templates_are_embedded_and_reference_known_placeholders() {
        for kind in [
            SourceKind::Rtsp(RtspSource::new("rtsp://h/x")),
            SourceKind::File(FileSource {
                path: "/tmp/x.mp4".into(),
                realtime: false,
                looping: false,
            }),
            SourceKind::V4l2(crate::config::V4l2Source {
                device: "/dev/video0".into(),
                width: Some(640),
                height: None,
                fps: Some(15),
            }),
            SourceKind::Test(TestSource {
                pattern: "ball".into(),
                width: 64,
                height: 48,
                fps: 5,
            }),
        ] {
            let plan = Plan::new(&SourceConfig::new(kind)).expect("plan");
            let d = plan
                .describe(&Attempt {
                    codec: Some(VideoCodec::H264),
                    decoder: None,
                    stream: None,
                })
                .expect("all placeholders known");
            assert!(d.contains("appsink name=sink"), "{d}");
            assert!(!d.contains('#'), "{d}");
        }
    }

    #[test]
    fn hostile_values_cannot_inject_elements() {
        crate::init().expect("gst init");
        let nasty = r#"rtsp://cam/a b ! fakesink name=evil "quoted" \back\ {url}"#;
        let plan =
            Plan::new(&SourceConfig::new(SourceKind::Rtsp(RtspSource::new(nasty)))).expect("plan");
        let d = plan
            .describe(&Attempt {
                codec: Some(VideoCodec::H264),
                decoder: None,
                stream: None,
            })
            .expect("describe");
        let pipeline = Plan::parse(&d).expect("parses");
        plan.verify(&pipeline, &d)
            .expect("value read back unchanged");
        assert!(pipeline.by_name("evil").is_none());
        assert!(quote("a\nb").is_err());
    }

    #[test]
    fn scale_caps_fit_box_without_upscaling() {
        crate::init().expect("gst init");
        let run = |w: u32, h: u32, mw: Option<u32>, mh: Option<u32>| -> (i32, i32) {
            let d = format!(
                "videotestsrc num-buffers=1 ! video/x-raw,width={w},height={h} ! videoscale ! {} ! fakesink name=out",
                scale_caps(mw, mh)
            );
            let p = Plan::parse(&d).expect("parse");
            p.set_state(gst::State::Paused).expect("pause");
            let _ = p.state(gst::ClockTime::from_seconds(5));
            let caps = p
                .by_name("out")
                .and_then(|s| s.static_pad("sink"))
                .and_then(|pad| pad.current_caps())
                .expect("negotiated");
            let s = caps.structure(0).expect("structure");
            let out = (
                s.get::<i32>("width").unwrap_or(0),
                s.get::<i32>("height").unwrap_or(0),
            );
            let _ = p.set_state(gst::State::Null);
            out
        };
        assert_eq!(run(1920, 1080, Some(640), Some(640)), (640, 360));
        assert_eq!(run(1080, 1920, Some(640), Some(640)), (360, 640));
        assert_eq!(run(320, 240, Some(640), Some(640)), (320, 240));
        assert_eq!(run(1280, 720, Some(640), None), (640, 360));
        assert_eq!(run(1280, 720, None, Some(180)), (320, 180));
    }

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

    #[test]
    fn software_decoder_is_always_an_option() {
        let d = choose_decoder(VideoCodec::H264, DecoderPreference::Software, false)
            .expect("avdec_h264");
        assert_eq!(d.element, "avdec_h264");
        assert!(!d.hardware);
        let auto =
            choose_decoder(VideoCodec::H265, DecoderPreference::Auto, true).expect("avdec_h265");
        assert_eq!(auto.element, "avdec_h265");
        assert_eq!(
            crate::error::debian_package("avdec_h264"),
            "gstreamer1.0-libav"
        );
        assert_eq!(
            crate::error::debian_package("x264enc"),
            "gstreamer1.0-plugins-ugly"
        );
        let list = available_decoders();
        eprintln!("available decoders: {list:?}");
        assert!(
            list.iter().any(|(n, hw)| n == "avdec_h264" && !hw),
            "{list:?}"
        );
    }
}
