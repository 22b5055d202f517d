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
//!
//! - `template`: the templates, placeholder substitution and the per-camera `Plan`;
//! - `decoder`: decoder choice and what is installed;
//! - `probe`: a file's streams, and linking the chosen one.

mod decoder;
mod probe;
mod template;

use gstreamer as gst;

pub use decoder::{
    available_decoders, choose_decoder, decoder_for, require_decoder, DecoderChoice,
};
pub(crate) use probe::link_chosen_stream;
pub use probe::{probe_file, FileProbe};
pub use template::{
    quote, scale_caps, strip_comments, substitute, FILE_TEMPLATE, RTSP_TEMPLATE, TEST_TEMPLATE,
    V4L2_TEMPLATE,
};
pub(crate) use template::{Attempt, Plan};

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

/// Reads the codec from rtspsrc's per-stream caps (`encoding-name`).
pub(crate) fn codec_from_rtp_caps(caps: &gst::CapsRef) -> Option<VideoCodec> {
    caps.structure(0)
        .and_then(|s| s.get::<&str>("encoding-name").ok())
        .and_then(VideoCodec::from_encoding_name)
}
