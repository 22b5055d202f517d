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

    fn label(self) -> &'static str {
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
    /// Caps names of every elementary stream, for error messages.
    pub streams: Vec<String>,
}

/// Finds the video streams of a file with `filesrc ! parsebin`, without decoding.
///
/// Gives clear errors for a missing, unreadable, unrecognisable or video-less file.
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

    let streams: Arc<Mutex<Vec<String>>> = Arc::default();
    let pipeline_weak = pipeline.downgrade();
    let found = streams.clone();
    parsebin.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let name = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        found.lock().push(name);
        // Every exposed stream needs a sink or parsebin stops with not-linked.
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        if let Ok(sink) = gst::ElementFactory::make("fakesink")
            .property("sync", false)
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

    let bus = pipeline
        .bus()
        .ok_or_else(|| file_err("pipeline has no bus".into()))?;
    let outcome = (|| -> Result<(), MediaError> {
        let _ = pipeline.set_state(gst::State::Paused);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(file_err("timed out probing the file".into()));
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
            else {
                continue;
            };
            match msg.view() {
                gst::MessageView::AsyncDone(_) => return Ok(()),
                gst::MessageView::Eos(_) => return Ok(()),
                gst::MessageView::Error(e) => {
                    return Err(file_err(format!(
                        "{} (debug: {})",
                        e.error(),
                        e.debug().map(|d| d.to_string()).unwrap_or_default()
                    )))
                }
                _ => {}
            }
        }
    })();
    let _ = pipeline.set_state(gst::State::Null);
    outcome?;

    let streams = streams.lock().clone();
    let video = streams
        .iter()
        .find(|s| s.starts_with("video/") || s.starts_with("image/"));
    match video {
        Some(v) => Ok(FileProbe {
            codec: VideoCodec::from_caps_name(v),
            video_caps: v.clone(),
            streams,
        }),
        None => Err(file_err(if streams.is_empty() {
            "no streams found: not a media file".into()
        } else {
            format!("no video stream (found: {})", streams.join(", "))
        })),
    }
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
