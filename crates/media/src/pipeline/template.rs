//! Building a camera's pipeline description: the built-in templates, placeholder substitution with
//! quoted values, and the [`Plan`] that turns a source config plus one attempt's codec and decoder
//! into a parsed, verified pipeline.

use std::collections::BTreeMap;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{DecoderChoice, VideoCodec};
use crate::config::{CodecHint, RtspTransport, SourceConfig, SourceKind};
use crate::error::debian_package;
use crate::MediaError;

/// Built-in template for `kind = "rtsp"`.
pub const RTSP_TEMPLATE: &str = include_str!("../../../../pipelines/rtsp.pipeline");
/// Built-in template for `kind = "file"`.
pub const FILE_TEMPLATE: &str = include_str!("../../../../pipelines/file.pipeline");
/// Built-in template for `kind = "v4l2"`.
pub const V4L2_TEMPLATE: &str = include_str!("../../../../pipelines/v4l2.pipeline");
/// Built-in template for `kind = "test"`.
pub const TEST_TEMPLATE: &str = include_str!("../../../../pipelines/test.pipeline");

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
    ///
    /// [`link_chosen_stream`]: super::link_chosen_stream
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
}
