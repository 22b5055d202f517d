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

/// Debian package that ships a GStreamer element, for "install X" hints.
pub fn debian_package(element: &str) -> &'static str {
    match element {
        "rtspsrc" | "rtph264depay" | "rtph265depay" | "rtph264pay" | "rtph265pay" | "qtdemux"
        | "matroskademux" | "v4l2src" | "jpegdec" | "v4l2h264dec" | "v4l2h265dec" => {
            "gstreamer1.0-plugins-good"
        }
        "h264parse" | "h265parse" | "nvh264dec" | "nvh265dec" | "vah264dec" | "vah265dec"
        | "videoparsersbad" => "gstreamer1.0-plugins-bad",
        "vaapih264dec" | "vaapih265dec" => "gstreamer1.0-vaapi",
        "nvv4l2decoder" | "nvvidconv" => "nvidia-l4t-gstreamer (NVIDIA JetPack)",
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "x265enc" => "gstreamer1.0-plugins-bad",
        "videoconvert" | "videoscale" | "videotestsrc" | "appsink" | "appsrc" | "parsebin"
        | "decodebin" | "typefind" | "videorate" => "gstreamer1.0-plugins-base",
        "filesrc" | "filesink" | "identity" | "queue" | "fakesink" | "capsfilter" => {
            "libgstreamer1.0-0"
        }
        "mp4mux" => "gstreamer1.0-plugins-good",
        e if e.starts_with("avdec_") || e.starts_with("avenc_") => "gstreamer1.0-libav",
        _ => {
            "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav"
        }
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
