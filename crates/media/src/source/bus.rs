//! Reading one pipeline's bus with timed pops, and the watchdog: turns errors, end of stream,
//! missing plugins and silence into the [`Outcome`] the supervisor acts on.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use tracing::{debug, warn};

use super::supervisor::Outcome;
use super::{AttemptCtx, Inner};
use crate::config::{CodecHint, DecoderPreference, SourceKind};
use crate::pipeline::Attempt;
use crate::MediaError;

/// Runs the bus and the watchdog until the pipeline ends, fails or is stopped.
pub(super) fn watch(
    inner: &Arc<Inner>,
    attempt: &Attempt,
    pipeline: &gst::Pipeline,
    ctx: &Arc<AttemptCtx>,
) -> Outcome {
    let Some(bus) = pipeline.bus() else {
        return Outcome::Fatal("pipeline has no bus".into());
    };
    let cfg = &inner.cfg;
    let watchdog = Duration::from_millis(cfg.watchdog_ms);
    // Connecting and waiting for the first keyframe takes longer than the gap between frames.
    let startup_grace = watchdog * 2;
    let looping = matches!(&cfg.source, SourceKind::File(f) if f.looping);
    let mut missing_plugin: Option<String> = None;

    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        // The bus holds the reason; keep going to read it.
        debug!(camera = %inner.camera_id, error = %e, "set_state(Playing) failed");
    }
    loop {
        if inner.stop.is_set() {
            return Outcome::Stopped;
        }
        if inner.no_receiver.load(Ordering::SeqCst) {
            return Outcome::Fatal("the frame receiver was dropped".into());
        }
        let had_frames = ctx.frames.load(Ordering::Relaxed) > 0;
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            use gst::MessageView;
            match msg.view() {
                MessageView::Error(e) => {
                    let err = MediaError::Gst {
                        element: msg
                            .src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_else(|| "?".into()),
                        message: e.error().to_string(),
                        debug: e.debug().map(|d| d.to_string()).unwrap_or_default(),
                    };
                    if let Some(o) = codec_outcome(inner, attempt, ctx) {
                        return o;
                    }
                    if let Some(hint) = missing_plugin.take() {
                        return Outcome::Fatal(format!("{hint}; {err}"));
                    }
                    let from_decoder = pipeline.by_name("decoder").is_some_and(|d| {
                        msg.src().is_some_and(|s| {
                            s == d.upcast_ref::<gst::Object>() || s.has_as_ancestor(&d)
                        })
                    });
                    let hw = attempt.decoder.as_ref().is_some_and(|d| d.hardware);
                    if from_decoder && hw && cfg.decoder == DecoderPreference::Auto {
                        return Outcome::Rebuild {
                            codec: None,
                            avoid_hw: true,
                            why: format!("hardware decoder failed, falling back to libav: {err}"),
                        };
                    }
                    return Outcome::Lost {
                        reason: err.to_string(),
                        had_frames,
                    };
                }
                MessageView::Eos(_) => {
                    if inner.live {
                        return Outcome::Lost {
                            reason: "end of stream".into(),
                            had_frames,
                        };
                    }
                    if !looping {
                        return Outcome::Ended;
                    }
                    inner.timeline.lock().new_segment();
                    if let Err(e) = pipeline.seek_simple(
                        gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                        gst::ClockTime::ZERO,
                    ) {
                        return Outcome::Fatal(format!("cannot loop: seek to start failed: {e}"));
                    }
                    debug!(camera = %inner.camera_id, "looped file to the start");
                }
                MessageView::Element(el) => {
                    if let Some(s) = el.structure().filter(|s| s.name() == "missing-plugin") {
                        missing_plugin = Some(match s.get::<gst::Caps>("detail") {
                            Ok(caps) => {
                                let place = match &cfg.source {
                                    SourceKind::File(f) => f.path.display().to_string(),
                                    _ => format!("camera {}", inner.camera_id),
                                };
                                crate::error::missing_codec(&caps, &place).to_string()
                            }
                            Err(_) => format!(
                                "no GStreamer plugin handles {}: install the Debian package {}",
                                s.get::<String>("detail").unwrap_or_default(),
                                crate::error::debian_package("")
                            ),
                        });
                    }
                }
                MessageView::Warning(w) => {
                    warn!(camera = %inner.camera_id, warning = %w.error(), debug = ?w.debug(), "GStreamer warning");
                }
                MessageView::Latency(_) => {
                    let _ = pipeline.recalculate_latency();
                }
                MessageView::ClockLost(_) => {
                    // Standard recovery: a new clock is selected on the way back to PLAYING.
                    let _ = pipeline.set_state(gst::State::Paused);
                    let _ = pipeline.set_state(gst::State::Playing);
                }
                _ => {}
            }
        }
        if inner.live {
            let limit = if had_frames { watchdog } else { startup_grace };
            let idle = ctx.idle();
            if idle > limit {
                return Outcome::Lost {
                    reason: format!(
                        "no frame for {} ms (watchdog {} ms)",
                        idle.as_millis(),
                        limit.as_millis()
                    ),
                    had_frames,
                };
            }
        }
    }
}

/// The camera sends another codec than the pipeline was built for.
fn codec_outcome(inner: &Inner, attempt: &Attempt, ctx: &AttemptCtx) -> Option<Outcome> {
    let found = (*ctx.detected_codec.lock())?;
    if Some(found) == attempt.codec {
        return None;
    }
    let SourceKind::Rtsp(r) = &inner.cfg.source else {
        return None;
    };
    Some(if r.codec == CodecHint::Auto {
        Outcome::Rebuild {
            codec: Some(found),
            avoid_hw: false,
            why: format!("camera sends {found:?}"),
        }
    } else {
        Outcome::Fatal(format!(
            "camera sends {found:?} but the config says codec = {:?}; set codec = \"auto\"",
            r.codec
        ))
    })
}
