//! Errors of the media crate.

use std::path::PathBuf;

/// Everything that can go wrong while building or running a video source.
///
/// The `Display` text is what ends up in [`crate::SourceState::Down`], so every variant carries
/// enough context (GStreamer's message and debug text, the element, the Debian package) for an
/// operator to act without reading logs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MediaError {
    /// `gst::init()` failed (broken installation, no plugin registry).
    #[error("GStreamer initialisation failed: {0}")]
    Init(String),

    /// The camera configuration is invalid.
    #[error("invalid camera config: {0}")]
    Config(String),

    /// A GStreamer element the pipeline needs is not installed.
    #[error(
        "GStreamer element `{element}` is not installed: install the Debian package {package}"
    )]
    MissingPlugin {
        /// Element factory name, e.g. `avdec_h264`.
        element: String,
        /// Debian package(s) that ship it.
        package: &'static str,
    },

    /// A file needs a demuxer or decoder that is not installed: names the format, the element
    /// and the Debian package, so the operator knows what to install without reading logs.
    #[error("cannot {what}: {}", install_hint(element, package))]
    MissingCodec {
        /// What could not be done, e.g. `decode MPEG-4 Part 2 video (video/x-divx) in /x.avi`.
        what: String,
        /// Element factory name that would do it, e.g. `avdec_mpeg4`; empty for a format the
        /// crate does not know an element for.
        element: String,
        /// Debian package that ships it.
        package: &'static str,
    },

    /// The pipeline description could not be parsed or assembled.
    #[error("cannot build pipeline: {message}; description: {description}")]
    Pipeline {
        /// What went wrong.
        message: String,
        /// The description after placeholder substitution.
        description: String,
    },

    /// GStreamer posted an error while running.
    #[error("GStreamer error from {element}: {message} (debug: {debug})")]
    Gst {
        /// Path of the element that posted the error.
        element: String,
        /// GStreamer's error message.
        message: String,
        /// GStreamer's debug text (usually the source file and the reason).
        debug: String,
    },

    /// A local video file is missing, unreadable or holds no video.
    #[error("video file {path}: {reason}")]
    File {
        /// The configured path.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },

    /// The in-process RTSP test server failed.
    #[error("RTSP test server: {0}")]
    RtspServer(String),

    /// A thread could not be spawned.
    #[error("cannot spawn thread: {0}")]
    Thread(String),
}

fn install_hint(element: &str, package: &str) -> String {
    if element.is_empty() {
        format!("no installed GStreamer element handles it: install the Debian packages {package}")
    } else {
        format!(
            "GStreamer element `{element}` is not installed: install the Debian package {package}"
        )
    }
}

/// Debian package that ships a GStreamer element, for "install X" hints (Debian 12 packaging).
pub fn debian_package(element: &str) -> &'static str {
    match element {
        "rtspsrc" | "rtph264depay" | "rtph265depay" | "rtph264pay" | "rtph265pay" | "rtpmp4gpay"
        | "rtpmp4gdepay" | "rtpmp4apay" | "rtppcmupay" | "rtppcmudepay" | "qtdemux" | "qtmux"
        | "mp4mux" | "matroskademux" | "matroskamux" | "avidemux" | "avimux" | "flvdemux"
        | "v4l2src" | "jpegdec" | "jpegenc" | "pngdec" | "vp8dec" | "vp9dec" | "videoflip"
        | "taginject" | "mulawenc" | "v4l2h264dec" | "v4l2h265dec" => {
            "gstreamer1.0-plugins-good"
        }
        "h264parse" | "h265parse" | "mpeg4videoparse" | "mpegvideoparse" | "jpegparse"
        | "tsdemux" | "mpegtsmux" | "mpegpsdemux" | "av1dec" | "dav1ddec" | "voaacenc"
        | "opusparse" | "nvh264dec" | "nvh265dec" | "vah264dec" | "vah265dec"
        | "videoparsersbad" => "gstreamer1.0-plugins-bad",
        "vaapih264dec" | "vaapih265dec" => "gstreamer1.0-vaapi",
        "nvv4l2decoder" | "nvvidconv" => "nvidia-l4t-gstreamer (NVIDIA JetPack)",
        "x264enc" | "mpeg2dec" => "gstreamer1.0-plugins-ugly",
        "x265enc" => "gstreamer1.0-plugins-bad",
        "videoconvert" | "videoscale" | "videotestsrc" | "audiotestsrc" | "audioconvert"
        | "audioresample" | "appsink" | "appsrc" | "parsebin" | "decodebin" | "typefind"
        | "videorate" | "oggdemux" | "theoradec" | "opusenc" | "opusdec" | "rtpopuspay" => {
            "gstreamer1.0-plugins-base"
        }
        "filesrc" | "filesink" | "identity" | "queue" | "fakesink" | "capsfilter" => {
            "libgstreamer1.0-0"
        }
        e if e.starts_with("avdec_") || e.starts_with("avenc_") || e.starts_with("avdemux_") => {
            "gstreamer1.0-libav"
        }
        _ => {
            "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav"
        }
    }
}

/// What a stream format is and which element reads it, for the message when that element is
/// missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatInfo {
    /// Human name, e.g. `MP4/MOV container`, `MPEG-4 Part 2 video`.
    pub label: &'static str,
    /// Whether this is a container (needs a demuxer) rather than an elementary stream.
    pub container: bool,
    /// The element Debian 12 ships for it (the one to name when nothing handles the format).
    pub element: &'static str,
}

/// Names the format of `caps` and the element that handles it, for containers (demuxers) and
/// video codecs (decoders). `None` for formats not listed; callers then give a generic hint.
pub fn format_info(caps: &gstreamer::CapsRef) -> Option<FormatInfo> {
    let s = caps.structure(0)?;
    let int = |field: &str| s.get::<i32>(field).ok();
    let container = |label, element| FormatInfo {
        label,
        container: true,
        element,
    };
    let codec = |label, element| FormatInfo {
        label,
        container: false,
        element,
    };
    Some(match s.name().as_str() {
        "video/quicktime" => container("MP4/MOV container", "qtdemux"),
        "video/x-matroska" | "video/webm" => container("Matroska/WebM container", "matroskademux"),
        "video/x-msvideo" => container("AVI container", "avidemux"),
        "video/mpegts" => container("MPEG-TS container", "tsdemux"),
        "video/x-flv" => container("FLV container", "flvdemux"),
        "application/ogg" => container("Ogg container", "oggdemux"),
        "video/mpeg" if s.get::<bool>("systemstream").unwrap_or(false) => {
            container("MPEG-PS container", "mpegpsdemux")
        }
        "video/x-h264" => codec("H.264 video", "avdec_h264"),
        "video/x-h265" => codec("H.265 video", "avdec_h265"),
        "video/mpeg" => match int("mpegversion") {
            Some(4) => codec("MPEG-4 Part 2 video", "avdec_mpeg4"),
            _ => codec("MPEG-1/2 video", "mpeg2dec"),
        },
        "video/x-divx" | "video/x-xvid" => codec("MPEG-4 Part 2 video", "avdec_mpeg4"),
        "video/x-h263" => codec("H.263 video", "avdec_h263"),
        "video/x-msmpeg" => codec("MS-MPEG-4 video", "avdec_msmpeg4"),
        "video/x-wmv" => codec("Windows Media video", "avdec_wmv3"),
        "image/jpeg" => codec("Motion JPEG video", "jpegdec"),
        "image/png" => codec("PNG video", "pngdec"),
        "video/x-vp8" => codec("VP8 video", "vp8dec"),
        "video/x-vp9" => codec("VP9 video", "vp9dec"),
        "video/x-av1" => codec("AV1 video", "av1dec"),
        "video/x-theora" => codec("Theora video", "theoradec"),
        "video/x-prores" => codec("ProRes video", "avdec_prores"),
        "video/x-dv" => codec("DV video", "avdec_dvvideo"),
        "video/x-cineform" => codec("CineForm video", "avdec_cfhd"),
        _ => return None,
    })
}

/// The error for a format no installed element can handle in `place` (a file path, a camera),
/// naming the element to install.
pub fn missing_codec(caps: &gstreamer::CapsRef, place: &str) -> MediaError {
    let name = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| caps.to_string());
    match format_info(caps) {
        Some(f) => MediaError::MissingCodec {
            what: format!(
                "{} {} ({name}) in {place}",
                if f.container { "demux" } else { "decode" },
                f.label,
            ),
            element: f.element.into(),
            package: debian_package(f.element),
        },
        None => MediaError::MissingCodec {
            what: format!("decode {name} in {place}"),
            element: String::new(),
            package: debian_package(""),
        },
    }
}

/// Makes sure an element factory is registered, naming the package to install when it is not.
pub(crate) fn require_element(element: &str) -> Result<(), MediaError> {
    if gstreamer::ElementFactory::find(element).is_some() {
        Ok(())
    } else {
        Err(MediaError::MissingPlugin {
            element: element.to_string(),
            package: debian_package(element),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn caps(s: &str) -> gstreamer::Caps {
        crate::init().expect("gst init");
        gstreamer::Caps::from_str(s).expect("caps")
    }

    #[test]
    fn formats_map_to_the_element_and_package_debian_ships() {
        let cases = [
            (
                "video/quicktime, variant=(string)iso",
                "qtdemux",
                "gstreamer1.0-plugins-good",
                true,
            ),
            (
                "video/x-matroska",
                "matroskademux",
                "gstreamer1.0-plugins-good",
                true,
            ),
            (
                "video/x-msvideo",
                "avidemux",
                "gstreamer1.0-plugins-good",
                true,
            ),
            (
                "video/mpegts, systemstream=(boolean)true",
                "tsdemux",
                "gstreamer1.0-plugins-bad",
                true,
            ),
            (
                "video/mpeg, mpegversion=(int)2, systemstream=(boolean)true",
                "mpegpsdemux",
                "gstreamer1.0-plugins-bad",
                true,
            ),
            (
                "video/x-h264, stream-format=(string)avc",
                "avdec_h264",
                "gstreamer1.0-libav",
                false,
            ),
            ("video/x-h265", "avdec_h265", "gstreamer1.0-libav", false),
            (
                "video/mpeg, mpegversion=(int)4, systemstream=(boolean)false",
                "avdec_mpeg4",
                "gstreamer1.0-libav",
                false,
            ),
            (
                "video/x-divx, divxversion=(int)5",
                "avdec_mpeg4",
                "gstreamer1.0-libav",
                false,
            ),
            (
                "video/mpeg, mpegversion=(int)2, systemstream=(boolean)false",
                "mpeg2dec",
                "gstreamer1.0-plugins-ugly",
                false,
            ),
            ("image/jpeg", "jpegdec", "gstreamer1.0-plugins-good", false),
            ("video/x-vp9", "vp9dec", "gstreamer1.0-plugins-good", false),
            ("video/x-av1", "av1dec", "gstreamer1.0-plugins-bad", false),
        ];
        for (c, element, package, container) in cases {
            let info = format_info(&caps(c)).unwrap_or_else(|| panic!("{c} not mapped"));
            assert_eq!(info.element, element, "{c}");
            assert_eq!(info.container, container, "{c}");
            assert_eq!(debian_package(info.element), package, "{c}");
        }
        assert!(format_info(&caps("audio/mpeg, mpegversion=(int)4")).is_none());
    }

    #[test]
    fn missing_codec_message_names_format_element_and_package() {
        let path = "/rec/door.avi";
        let text = missing_codec(&caps("video/x-divx, divxversion=(int)5"), path).to_string();
        assert_eq!(
            text,
            "cannot decode MPEG-4 Part 2 video (video/x-divx) in /rec/door.avi: GStreamer element \
             `avdec_mpeg4` is not installed: install the Debian package gstreamer1.0-libav"
        );
        let text = missing_codec(&caps("video/quicktime"), path).to_string();
        assert!(text.starts_with("cannot demux MP4/MOV container"), "{text}");
        assert!(
            text.contains("`qtdemux`") && text.contains("gstreamer1.0-plugins-good"),
            "{text}"
        );
        let text = missing_codec(&caps("video/x-fancy"), path).to_string();
        assert!(
            text.starts_with("cannot decode video/x-fancy in /rec/door.avi: no installed")
                && text.contains("gstreamer1.0-libav"),
            "{text}"
        );
    }
}
