//! Decoder choice: which H.264/H.265 decoder (hardware family or libav) a camera gets, which
//! decoders are installed, and whether any decoder takes a probed file's codec.

use std::path::Path;
use std::str::FromStr;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{FileProbe, VideoCodec};
use crate::config::DecoderPreference;
use crate::error::{debian_package, require_element};
use crate::MediaError;

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

#[cfg(test)]
mod tests {
    use super::*;

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
