//! `appsrc ! videoconvert ! x264enc ! h264parse ! mp4mux ! filesink`, fed frame by frame.

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::SceneError;

/// The Debian package that provides a GStreamer element.
pub(crate) fn package_of(element: &str) -> &'static str {
    match element {
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "h264parse" => "gstreamer1.0-plugins-bad",
        "mp4mux" | "qtdemux" => "gstreamer1.0-plugins-good",
        "avdec_h264" => "gstreamer1.0-libav",
        "appsrc" | "appsink" | "videoconvert" | "decodebin" | "videoscale" => {
            "gstreamer1.0-plugins-base"
        }
        _ => "gstreamer1.0-plugins-base / -good / -bad / -ugly",
    }
}

pub(crate) fn make(element: &str) -> Result<gst::Element, SceneError> {
    gst::ElementFactory::make(element)
        .build()
        .map_err(|_| SceneError::MissingElement {
            element: element.to_string(),
            package: package_of(element),
        })
}

pub(crate) fn init() -> Result<(), SceneError> {
    gst::init().map_err(|e| SceneError::Gst(format!("cannot initialise GStreamer: {e}")))
}

/// Checks that the elements exist before any work is done.
pub(crate) fn check_elements(names: &[&str]) -> Result<(), SceneError> {
    init()?;
    for n in names {
        if gst::ElementFactory::find(n).is_none() {
            return Err(SceneError::MissingElement {
                element: n.to_string(),
                package: package_of(n),
            });
        }
    }
    Ok(())
}

pub(crate) const ENCODER_ELEMENTS: [&str; 6] = [
    "appsrc",
    "videoconvert",
    "x264enc",
    "h264parse",
    "mp4mux",
    "filesink",
];

pub(crate) struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub threads: u32,
}

pub(crate) struct Encoder {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    fps: u64,
    frame_bytes: usize,
    /// RGB row stride GStreamer expects (rows padded to 4 bytes).
    pub stride: usize,
}

fn bus_error(msg: &gst::Message) -> Option<SceneError> {
    match msg.view() {
        gst::MessageView::Error(e) => Some(SceneError::Gst(format!(
            "{} (from {}){}",
            e.error(),
            msg.src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_default(),
            e.debug().map(|d| format!(": {d}")).unwrap_or_default()
        ))),
        _ => None,
    }
}

impl Encoder {
    pub(crate) fn open(path: &Path, s: &EncoderSettings) -> Result<Encoder, SceneError> {
        check_elements(&ENCODER_ELEMENTS)?;
        let gerr = |e: gst::glib::BoolError| SceneError::Gst(e.to_string());
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, s.width, s.height)
            .fps(gst::Fraction::new(s.fps as i32, 1))
            .build()
            .map_err(gerr)?;
        let caps = info.to_caps().map_err(gerr)?;
        let stride = info.stride()[0] as usize;
        let frame_bytes = info.size();
        let appsrc = gst_app::AppSrc::builder()
            .caps(&caps)
            .format(gst::Format::Time)
            .is_live(false)
            .block(false)
            .build();
        let convert = make("videoconvert")?;
        let enc = gst::ElementFactory::make("x264enc")
            .property_from_str("speed-preset", "veryfast")
            .property_from_str("tune", "zerolatency")
            .property("key-int-max", s.fps)
            .property("bitrate", s.bitrate_kbps)
            .property("threads", s.threads)
            .build()
            .map_err(|_| SceneError::MissingElement {
                element: "x264enc".into(),
                package: package_of("x264enc"),
            })?;
        let parse = make("h264parse")?;
        let mux = make("mp4mux")?;
        let sink = make("filesink")?;
        sink.set_property("location", path.to_string_lossy().as_ref());
        let pipeline = gst::Pipeline::new();
        let src_el: &gst::Element = appsrc.upcast_ref();
        pipeline
            .add_many([src_el, &convert, &enc, &parse, &mux, &sink])
            .map_err(gerr)?;
        gst::Element::link_many([src_el, &convert, &enc, &parse, &mux, &sink]).map_err(gerr)?;
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let bus = pipeline.bus().expect("a pipeline has a bus");
            let detail = bus
                .pop_filtered(&[gst::MessageType::Error])
                .as_ref()
                .and_then(bus_error);
            let _ = pipeline.set_state(gst::State::Null);
            return Err(detail.unwrap_or_else(|| {
                SceneError::Gst(format!(
                    "cannot start the encoder for {}: {e}",
                    path.display()
                ))
            }));
        }
        Ok(Encoder {
            pipeline,
            appsrc,
            fps: s.fps as u64,
            frame_bytes,
            stride,
        })
    }

    pub(crate) fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    fn check_bus(&self, wait: Option<gst::ClockTime>) -> Result<(), SceneError> {
        let bus = self.pipeline.bus().expect("a pipeline has a bus");
        let msg = match wait {
            Some(t) => bus.timed_pop_filtered(t, &[gst::MessageType::Error]),
            None => bus.pop_filtered(&[gst::MessageType::Error]),
        };
        match msg.as_ref().and_then(bus_error) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Queues frame `k` (RGB, `stride` bytes per row). Waits while the encoder is more than a few frames
    /// behind, watching the bus for errors meanwhile.
    pub(crate) fn push(&self, k: u64, data: Vec<u8>) -> Result<(), SceneError> {
        debug_assert_eq!(data.len(), self.frame_bytes);
        while self.appsrc.current_level_bytes() > 4 * self.frame_bytes as u64 {
            self.check_bus(Some(gst::ClockTime::from_mseconds(2)))?;
        }
        self.check_bus(None)?;
        let pts = gst::ClockTime::SECOND
            .mul_div_floor(k, self.fps)
            .unwrap_or_default();
        let next = gst::ClockTime::SECOND
            .mul_div_floor(k + 1, self.fps)
            .unwrap_or_default();
        let mut buf = gst::Buffer::from_mut_slice(data);
        {
            let b = buf.get_mut().expect("a new buffer is writable");
            b.set_pts(pts);
            b.set_duration(next - pts);
            b.set_offset(k);
        }
        self.appsrc
            .push_buffer(buf)
            .map_err(|e| match self.check_bus(None) {
                Err(err) => err,
                Ok(()) => SceneError::Gst(format!("appsrc refused a frame: {e:?}")),
            })?;
        Ok(())
    }

    /// Sends EOS and waits until the muxer has finalised the file.
    pub(crate) fn finish(self) -> Result<(), SceneError> {
        let res = (|| {
            self.appsrc
                .end_of_stream()
                .map_err(|e| SceneError::Gst(format!("cannot send EOS: {e:?}")))?;
            let bus = self.pipeline.bus().expect("a pipeline has a bus");
            match bus.timed_pop_filtered(
                gst::ClockTime::from_seconds(300),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            ) {
                Some(m) => match bus_error(&m) {
                    Some(e) => Err(e),
                    None => Ok(()),
                },
                None => Err(SceneError::Gst(
                    "no EOS from the encoder within 300 s".into(),
                )),
            }
        })();
        let _ = self.pipeline.set_state(gst::State::Null);
        res
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
