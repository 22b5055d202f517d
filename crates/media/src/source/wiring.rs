//! What runs on GStreamer's streaming threads for one pipeline: the sampling pad probe, the
//! appsink callback that turns a sample into a [`Frame`], and RTSP stream selection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use checkpoint_vision::BgrImage;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use parking_lot::Mutex;
use tracing::warn;

use super::sampling::{Sampled, Sampler};
use super::{AttemptCtx, Inner, SourceState};
use crate::config::SourceKind;
use crate::pipeline::{codec_from_rtp_caps, link_chosen_stream, Attempt, Plan};
use crate::queue::{Frame, Pushed};

/// Installs the sampling probe, the appsink callbacks and RTSP stream selection.
pub(super) fn wire(
    inner: &Arc<Inner>,
    plan: &Plan,
    attempt: &Attempt,
    pipeline: &gst::Pipeline,
    ctx: &Arc<AttemptCtx>,
) -> Result<(), String> {
    let appsink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| "no appsink named `sink`".to_string())?;
    let realtime_file = matches!(&inner.cfg.source, SourceKind::File(f) if f.realtime);
    if let (Some(n), Some(dec)) = (inner.cfg.decoder_threads, pipeline.by_name("decoder")) {
        // libav's decoders have it; hardware decoders do not and keep their own threads.
        if dec.find_property("max-threads").is_some() {
            dec.set_property("max-threads", i32::try_from(n).unwrap_or(i32::MAX));
        }
    }
    // Live sources are paced by their source; waiting on the clock again would only add latency.
    appsink.set_sync(realtime_file);
    appsink.set_max_buffers(1);
    appsink.set_drop(false);
    appsink.set_enable_last_sample(false);
    appsink.set_property("emit-signals", false);

    // Sample before `videoscale` so skipped frames are never scaled or converted. Custom
    // pipelines without an element named `scale` are sampled at the sink instead.
    let probe_pad = pipeline
        .by_name("scale")
        .and_then(|s| s.static_pad("sink"))
        .or_else(|| appsink.static_pad("sink"))
        .ok_or_else(|| "appsink has no sink pad".to_string())?;
    let sampler = Mutex::new(Sampler::new(
        inner.cfg.sampling_fps(),
        inner.rate_cap.clone(),
    ));
    let (stats, pctx) = (inner.stats.clone(), ctx.clone());
    probe_pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        stats.frames_decoded.fetch_add(1, Ordering::Relaxed);
        pctx.touch();
        let counter = match sampler.lock().keep(buffer.pts()) {
            Sampled::Keep => return gst::PadProbeReturn::Ok,
            Sampled::Skip => &stats.frames_dropped_sampling,
            Sampled::Shed => &stats.frames_dropped_load,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // `Handled` rather than `Drop`: the bindings take the buffer out of the probe info and
        // free it themselves; with `Drop` GStreamer 1.22 then unrefs a NULL item and prints a
        // CRITICAL for every skipped frame.
        gst::PadProbeReturn::Handled
    });

    if let (SourceKind::File(_), Some(caps_name)) = (&inner.cfg.source, &attempt.stream) {
        link_chosen_stream(pipeline, caps_name);
    }

    let (sinner, sctx) = (inner.clone(), ctx.clone());
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| on_sample(&sinner, &sctx, sink))
            .build(),
    );

    if let (SourceKind::Rtsp(_), Some(src)) = (&inner.cfg.source, pipeline.by_name("src")) {
        if src.factory().is_some_and(|f| f.name() == "rtspsrc") && !plan.custom {
            let (expected, cctx) = (attempt.codec, ctx.clone());
            let selected = AtomicBool::new(false);
            src.connect("select-stream", false, move |args| {
                let caps = args.get(2).and_then(|v| v.get::<gst::Caps>().ok());
                let media = caps
                    .as_ref()
                    .and_then(|c| c.structure(0))
                    .and_then(|s| s.get::<String>("media").ok());
                // Only the first video stream: audio or metadata pads would sit unlinked.
                let mut want = media.as_deref().is_none_or(|m| m == "video")
                    && !selected.swap(true, Ordering::SeqCst);
                if want {
                    let found = caps.as_ref().and_then(|c| codec_from_rtp_caps(c));
                    if found.is_some() && found != expected {
                        // Decline the stream instead of tearing the pipeline down from here:
                        // rtspsrc then fails on its own ("no supported stream") at a point
                        // where stopping it is safe, and the error path rebuilds with `found`.
                        *cctx.detected_codec.lock() = found;
                        want = false;
                    }
                }
                Some(want.to_value())
            });
        }
    }
    Ok(())
}

fn on_sample(
    inner: &Inner,
    ctx: &AttemptCtx,
    sink: &gst_app::AppSink,
) -> Result<gst::FlowSuccess, gst::FlowError> {
    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
        warn!(camera = %inner.camera_id, "sample without buffer or caps");
        return Ok(gst::FlowSuccess::Ok);
    };
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| {
        warn!(camera = %inner.camera_id, error = %e, %caps, "unusable caps at appsink");
        gst::FlowError::NotNegotiated
    })?;
    if info.format() != gst_video::VideoFormat::Bgr {
        warn!(camera = %inner.camera_id, format = ?info.format(), "appsink must receive BGR; end the pipeline with videoconvert ! video/x-raw,format=BGR");
        return Err(gst::FlowError::NotNegotiated);
    }
    let image = {
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).map_err(|e| {
                warn!(camera = %inner.camera_id, error = %e, "cannot map frame");
                gst::FlowError::Error
            })?;
        // Rows are padded to 4 bytes; `from_strided` packs them.
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).map_err(|_| gst::FlowError::Error)?;
        BgrImage::from_strided(info.width(), info.height(), stride, data).map_err(|e| {
            warn!(camera = %inner.camera_id, error = %e, "bad frame layout");
            gst::FlowError::Error
        })?
    };
    if !ctx.up_sent.swap(true, Ordering::SeqCst) {
        let fps = info.fps();
        let fps =
            (fps.numer() > 0 && fps.denom() > 0).then(|| fps.numer() as f64 / fps.denom() as f64);
        inner.emit(SourceState::Up {
            width: info.width(),
            height: info.height(),
            fps,
        });
    }
    let pts_s = inner.timeline.lock().map(buffer.pts(), inner.live);
    let frame = Frame {
        camera_id: inner.camera_id.clone(),
        seq: inner.seq.fetch_add(1, Ordering::Relaxed),
        pts_s,
        wall: SystemTime::now(),
        image,
    };
    inner.stats.frames_sampled.fetch_add(1, Ordering::Relaxed);
    match inner.lane.push(frame, &|| {
        ctx.closing.load(Ordering::SeqCst) || inner.stop.is_set()
    }) {
        Pushed::Queued => Ok(gst::FlowSuccess::Ok),
        Pushed::Aborted => Err(gst::FlowError::Flushing),
        Pushed::NoReceiver => {
            inner.no_receiver.store(true, Ordering::SeqCst);
            Err(gst::FlowError::Flushing)
        }
    }
}
