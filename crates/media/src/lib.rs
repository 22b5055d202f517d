//! GStreamer video ingest for Checkpoint.
//!
//! Every camera (RTSP, file, V4L2 or test pattern) runs its own GStreamer pipeline, supervised by
//! its own thread: there is no shared GLib main loop, so one camera that hangs or vanishes cannot
//! wedge the others. Frames arrive as packed BGR [`Frame`]s through a [`FrameReceiver`] that
//! keeps a small bounded lane per camera; [`DropPolicy`] decides whether a full lane blocks the
//! camera (files) or evicts its oldest frame (live sources).
//!
//! Pipelines come from the text templates in the workspace's `pipelines/` folder, embedded at
//! build time; see [`pipeline`].
//!
//! [`rtsp_server`] holds an in-process RTSP server for end-to-end tests and demos.

pub mod clips;
pub mod config;
pub mod error;
pub mod pipeline;
pub mod queue;
pub mod rtsp_server;
pub mod source;

pub use config::{
    CodecHint, DecoderPreference, DropPolicy, FileSource, ReconnectConfig, RtspSource,
    RtspTransport, SourceConfig, SourceKind, TestSource, V4l2Source,
};
pub use error::MediaError;
pub use pipeline::{available_decoders, probe_file, require_decoder, FileProbe, VideoCodec};
pub use queue::{
    frame_channel, Claimed, Frame, FrameReceiver, FrameSender, RecvError, RecvTimeoutError,
};
pub use source::{
    CameraEvent, CameraHandle, CameraSource, SourceState, SourceStats, StatsSnapshot,
};

use std::sync::OnceLock;

/// Initialises GStreamer once per process; later calls return the first outcome.
///
/// Every public entry point of this crate calls it, so callers only need it to pay the plugin
/// scan (about 0.7 s on a fresh machine) at a moment of their choosing.
pub fn init() -> Result<(), MediaError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gstreamer::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(MediaError::Init)
}
