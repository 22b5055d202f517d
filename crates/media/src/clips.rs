//! Making media files with GStreamer, for tests and demos that need real recordings of a given
//! shape (container, codecs, audio tracks, size, rotation) without committing media files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::MediaError;

/// Runs a gst-launch description until end-of-stream, e.g. an encoder writing a file.
///
/// Fails with GStreamer's error, or when it has not ended within `timeout`. Missing elements
/// are named with their Debian package.
pub fn run_to_eos(description: &str, timeout: Duration) -> Result<(), MediaError> {
    crate::init()?;
    let pipeline = crate::pipeline::Plan::parse(description)?;
    let bus = pipeline.bus().ok_or_else(|| MediaError::Pipeline {
        message: "pipeline without bus".into(),
        description: description.into(),
    })?;
    let _ = pipeline.set_state(gst::State::Playing);
    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_mseconds(ms),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| (m, m.view())) {
        Some((_, gst::MessageView::Eos(_))) => Ok(()),
        Some((m, gst::MessageView::Error(e))) => Err(MediaError::Gst {
            element: m
                .src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_default(),
            message: e.error().to_string(),
            debug: e.debug().map(|d| d.to_string()).unwrap_or_default(),
        }),
        _ => Err(MediaError::Pipeline {
            message: format!("did not end within {timeout:?}"),
            description: description.into(),
        }),
    }
}

/// The shared library that provides `element`, if it is registered.
pub fn plugin_file(element: &str) -> Option<PathBuf> {
    crate::init().ok()?;
    gst::ElementFactory::find(element)?.plugin()?.filename()
}

/// Writes the display rotation of every video track of an MP4/MOV file into its track header
/// (`tkhd`) matrix, as phones and body cameras do for footage shot in portrait. GStreamer's
/// muxers do not write this matrix, so tests that need rotated recordings patch it in.
///
/// `degrees` is the clockwise rotation a player applies for display: 0, 90, 180 or 270.
/// Returns how many video tracks were patched.
pub fn set_mp4_rotation(path: &Path, degrees: u32) -> Result<usize, MediaError> {
    let err = |reason: String| MediaError::File {
        path: path.to_path_buf(),
        reason,
    };
    // 16.16 fixed point; the last column (u, v, w) stays 0, 0, 1.0 in 2.30.
    const ONE: u32 = 0x0001_0000;
    const MINUS_ONE: u32 = 0xFFFF_0000;
    let (a, b, c, d) = match degrees {
        0 => (ONE, 0, 0, ONE),
        90 => (0, ONE, MINUS_ONE, 0),
        180 => (MINUS_ONE, 0, 0, MINUS_ONE),
        270 => (0, MINUS_ONE, ONE, 0),
        other => return Err(err(format!("rotation {other} is not 0, 90, 180 or 270"))),
    };
    let matrix = [a, b, 0, c, d, 0, 0, 0, 0x4000_0000];
    let mut bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let mut patched = 0;
    for offset in video_matrix_offsets(&bytes) {
        for (i, v) in matrix.iter().enumerate() {
            bytes[offset + 4 * i..offset + 4 * i + 4].copy_from_slice(&v.to_be_bytes());
        }
        patched += 1;
    }
    if patched == 0 {
        return Err(err("no video track header (tkhd) found".into()));
    }
    std::fs::write(path, &bytes).map_err(|e| err(format!("cannot write: {e}")))?;
    Ok(patched)
}

/// A recording of a given shape that a site may have, made with GStreamer encoders and muxers.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Short name, e.g. `mp4-h264-aac-moov-end`.
    pub name: &'static str,
    /// File name, with the extension the container usually has.
    pub file: &'static str,
    /// gst-launch descriptions writing to `{out}`; several are concatenated byte by byte (a
    /// recording whose stream changes part-way, as when a camera's resolution is changed).
    pub segments: Vec<String>,
    /// Display rotation written into the MP4 track header afterwards, clockwise degrees.
    pub rotation: Option<u32>,
    /// Size of the first decoded frame once the rotation is applied (no scaling).
    pub size: (u32, u32),
    /// Size of the frames after a mid-stream change, when the clip has one.
    pub size_after: Option<(u32, u32)>,
    /// Position of the video stream the agent must take among the file's streams.
    pub video_stream: usize,
    /// Elements the clip needs to be written (not to be read).
    pub needs: Vec<&'static str>,
}

/// Two seconds of a moving test pattern (people-free, so only decoding is exercised).
fn video(width: u32, height: u32, fps: u32, pattern: &str) -> String {
    video_frames(width, height, fps, pattern, 2 * fps, "I420")
}

fn video_frames(
    width: u32,
    height: u32,
    fps: u32,
    pattern: &str,
    frames: u32,
    format: &str,
) -> String {
    format!(
        "videotestsrc num-buffers={frames} pattern={pattern} \
           ! video/x-raw,format={format},width={width},height={height},framerate={fps}/1"
    )
}

const X264: &str = "x264enc speed-preset=ultrafast key-int-max=25 threads=1 ! h264parse";
/// Two seconds of a beeping tone, as a camera microphone would record.
const AUDIO: &str = "audiotestsrc num-buffers=90 wave=ticks ! audioconvert ! audioresample";

/// The recordings the agent must open: containers (MP4 with `moov` first and last, fragmented
/// MP4, MKV, WebM, MOV, AVI, MPEG-TS, raw H.264), codecs (H.264, H.265, MPEG-4 Part 2, MJPEG,
/// VP8), audio
/// tracks (AAC, Opus, PCM; before or after the video track), several video tracks, odd sizes,
/// rotation metadata, variable frame rate and a resolution change part-way.
pub fn corpus() -> Vec<Clip> {
    let v = video(320, 240, 25, "ball");
    let clip = |name, file, segments: Vec<String>, needs: Vec<&'static str>| Clip {
        name,
        file,
        segments,
        rotation: None,
        size: (320, 240),
        size_after: None,
        video_stream: 0,
        needs,
    };
    vec![
        clip(
            "mp4-h264-aac-moov-end",
            "phone.mp4",
            vec![format!(
                "{v} ! {X264} ! mp4mux name=m ! filesink location={{out}} \
                 {AUDIO} ! avenc_aac ! m."
            )],
            vec!["x264enc", "avenc_aac", "mp4mux"],
        ),
        clip(
            "mp4-h264-aac-faststart",
            "faststart.mp4",
            vec![format!(
                "{v} ! {X264} ! mp4mux faststart=true name=m ! filesink location={{out}} \
                 {AUDIO} ! voaacenc ! m."
            )],
            vec!["x264enc", "voaacenc", "mp4mux"],
        ),
        clip(
            "mp4-h264-opus",
            "opus.mp4",
            vec![format!(
                "{v} ! {X264} ! mp4mux name=m ! filesink location={{out}} {AUDIO} ! opusenc ! m."
            )],
            vec!["x264enc", "opusenc", "mp4mux"],
        ),
        clip(
            "mp4-fragmented-h264-aac",
            "fragmented.mp4",
            vec![format!(
                "{v} ! {X264} ! mp4mux fragment-duration=500 name=m ! filesink location={{out}} \
                 {AUDIO} ! avenc_aac ! m."
            )],
            vec!["x264enc", "avenc_aac", "mp4mux"],
        ),
        clip(
            "mov-h264-aac",
            "camera.mov",
            vec![format!(
                "{v} ! {X264} ! qtmux name=m ! filesink location={{out}} {AUDIO} ! avenc_aac ! m."
            )],
            vec!["x264enc", "avenc_aac", "qtmux"],
        ),
        clip(
            "mkv-h264-opus",
            "recording.mkv",
            vec![format!(
                "{v} ! {X264} ! matroskamux name=m ! filesink location={{out}} \
                 {AUDIO} ! opusenc ! m."
            )],
            vec!["x264enc", "opusenc", "matroskamux"],
        ),
        // The audio track is track 1 of the file. parsebin sorts the streams it exposes (video
        // first), so the video stream is still the first one the agent sees.
        clip(
            "mkv-aac-track-before-h264",
            "audio-first.mkv",
            vec![format!(
                "{AUDIO} ! avenc_aac ! m.audio_0 {v} ! {X264} ! m.video_0 \
                 matroskamux name=m ! filesink location={{out}}"
            )],
            vec!["x264enc", "avenc_aac", "matroskamux"],
        ),
        clip(
            "mkv-two-video-tracks",
            "two-video.mkv",
            vec![format!(
                "{v} ! {X264} ! matroskamux name=m ! filesink location={{out}} \
                 {small} ! {X264} ! m.",
                small = video(160, 120, 25, "snow")
            )],
            vec!["x264enc", "matroskamux"],
        ),
        clip(
            "avi-mjpeg-pcm",
            "dvr-mjpeg.avi",
            vec![format!(
                "{v} ! jpegenc ! avimux name=m ! filesink location={{out}} \
                 {AUDIO} ! audio/x-raw,format=S16LE ! m."
            )],
            vec!["jpegenc", "avimux"],
        ),
        clip(
            "avi-mpeg4-part2-aac",
            "dvr-mpeg4.avi",
            vec![format!(
                "{v} ! avenc_mpeg4 ! avimux name=m ! filesink location={{out}} \
                 {AUDIO} ! avenc_aac ! m."
            )],
            vec!["avenc_mpeg4", "avenc_aac", "avimux"],
        ),
        clip(
            "webm-vp8-opus",
            "browser.webm",
            vec![format!(
                "{v} ! vp8enc deadline=1 cpu-used=8 ! webmmux name=m ! filesink location={{out}} \
                 {AUDIO} ! opusenc ! m."
            )],
            vec!["vp8enc", "opusenc", "webmmux"],
        ),
        clip(
            "ts-h264-aac",
            "broadcast.ts",
            vec![format!(
                "{v} ! {X264} ! mpegtsmux name=m ! filesink location={{out}} \
                 {AUDIO} ! avenc_aac ! aacparse ! m."
            )],
            vec!["x264enc", "avenc_aac", "mpegtsmux"],
        ),
        clip(
            "mp4-h265-aac",
            "hevc.mp4",
            vec![format!(
                "{v} ! x265enc speed-preset=ultrafast key-int-max=25 ! h265parse \
                 ! mp4mux name=m ! filesink location={{out}} {AUDIO} ! avenc_aac ! m."
            )],
            vec!["x265enc", "avenc_aac", "mp4mux"],
        ),
        Clip {
            size: (1918, 1078),
            ..clip(
                "mp4-h264-1918x1078",
                "odd-1918x1078.mp4",
                vec![format!(
                    "{} ! {X264} ! mp4mux ! filesink location={{out}}",
                    video(1918, 1078, 5, "ball")
                )],
                vec!["x264enc", "mp4mux"],
            )
        },
        Clip {
            size: (321, 241),
            // x264 refuses odd sizes in 4:2:0; 4:4:4 (High 4:4:4 profile) takes them.
            ..clip(
                "mp4-h264-yuv444-321x241",
                "odd-321x241.mp4",
                vec![format!(
                    "{} ! {X264} ! mp4mux ! filesink location={{out}}",
                    video_frames(321, 241, 25, "ball", 50, "Y444")
                )],
                vec!["x264enc", "mp4mux"],
            )
        },
        Clip {
            size: (321, 241),
            ..clip(
                "avi-mjpeg-321x241",
                "odd-321x241.avi",
                vec![format!(
                    "{} ! jpegenc ! avimux ! filesink location={{out}}",
                    video(321, 241, 25, "ball")
                )],
                vec!["jpegenc", "avimux"],
            )
        },
        Clip {
            rotation: Some(90),
            size: (240, 320),
            ..clip(
                "mp4-h264-aac-rotated-90",
                "portrait.mp4",
                vec![format!(
                    "{v} ! {X264} ! mp4mux name=m ! filesink location={{out}} \
                     {AUDIO} ! avenc_aac ! m."
                )],
                vec!["x264enc", "avenc_aac", "mp4mux"],
            )
        },
        clip(
            "mp4-h264-variable-frame-rate",
            "vfr.mp4",
            // Dropping frames at random before the encoder leaves gaps of 40, 80, 120 ms...
            // between timestamps, as phones do when light is low.
            vec![format!(
                "{} ! identity drop-probability=0.5 ! {X264} ! mp4mux ! filesink location={{out}}",
                video_frames(320, 240, 25, "ball", 100, "I420")
            )],
            vec!["x264enc", "mp4mux"],
        ),
        Clip {
            size_after: Some((640, 360)),
            ..clip(
                "ts-h264-resolution-change",
                "resized.ts",
                vec![
                    format!("{v} ! {X264} ! mpegtsmux ! filesink location={{out}}"),
                    format!(
                        "{} ! {X264} ! mpegtsmux ! filesink location={{out}}",
                        video(640, 360, 25, "ball")
                    ),
                ],
                vec!["x264enc", "mpegtsmux"],
            )
        },
        Clip {
            size_after: Some((640, 360)),
            ..clip(
                "h264-bytestream-resolution-change",
                "resized.h264",
                vec![
                    format!(
                        "{v} ! {X264} ! video/x-h264,stream-format=byte-stream \
                         ! filesink location={{out}}"
                    ),
                    format!(
                        "{} ! {X264} ! video/x-h264,stream-format=byte-stream \
                         ! filesink location={{out}}",
                        video(640, 360, 25, "ball")
                    ),
                ],
                vec!["x264enc"],
            )
        },
    ]
}

impl Clip {
    /// Writes the clip into `dir` and returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, MediaError> {
        crate::init()?;
        for e in &self.needs {
            crate::error::require_element(e)?;
        }
        let path = dir.join(self.file);
        let mut bytes = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            let part = dir.join(format!("{}.part{i}", self.file));
            let location =
                crate::pipeline::quote(part.to_str().ok_or_else(|| MediaError::File {
                    path: part.clone(),
                    reason: "path is not valid UTF-8".into(),
                })?)?;
            run_to_eos(
                &segment.replace("{out}", &location),
                Duration::from_secs(120),
            )?;
            let read = std::fs::read(&part).map_err(|e| MediaError::File {
                path: part.clone(),
                reason: format!("cannot read: {e}"),
            })?;
            bytes.extend_from_slice(&read);
            let _ = std::fs::remove_file(&part);
        }
        std::fs::write(&path, &bytes).map_err(|e| MediaError::File {
            path: path.clone(),
            reason: format!("cannot write: {e}"),
        })?;
        if let Some(degrees) = self.rotation {
            set_mp4_rotation(&path, degrees)?;
        }
        Ok(path)
    }
}

/// One ISO BMFF box: its type and the byte range of its content.
struct Mp4Box {
    kind: [u8; 4],
    content: std::ops::Range<usize>,
}

/// The boxes directly inside `range` of `bytes`; stops at the first malformed header.
fn boxes(bytes: &[u8], range: std::ops::Range<usize>) -> Vec<Mp4Box> {
    let mut out = Vec::new();
    let mut at = range.start;
    while at + 8 <= range.end {
        let size32 = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let kind = [bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]];
        let (header, size) = match size32 {
            0 => (8, range.end - at),
            1 if at + 16 <= range.end => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes[at + 8..at + 16]);
                (
                    16,
                    usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX),
                )
            }
            n => (8, n as usize),
        };
        if size < header || at.saturating_add(size) > range.end {
            break;
        }
        out.push(Mp4Box {
            kind,
            content: at + header..at + size,
        });
        at += size;
    }
    out
}

/// Offsets of the `tkhd` matrix of every track whose handler is `vide`.
fn video_matrix_offsets(bytes: &[u8]) -> Vec<usize> {
    let find = |range: std::ops::Range<usize>, kind: [u8; 4]| {
        boxes(bytes, range)
            .into_iter()
            .filter(move |b| b.kind == kind)
    };
    let mut out = Vec::new();
    for moov in find(0..bytes.len(), *b"moov") {
        for trak in find(moov.content, *b"trak") {
            let is_video = find(trak.content.clone(), *b"mdia").any(|mdia| {
                find(mdia.content, *b"hdlr").any(|h| {
                    // version/flags (4), pre_defined (4), handler_type (4).
                    let t = h.content.start + 8;
                    t + 4 <= h.content.end && &bytes[t..t + 4] == b"vide"
                })
            });
            if !is_video {
                continue;
            }
            for tkhd in find(trak.content.clone(), *b"tkhd") {
                // Version 1 has 64-bit times; the matrix follows times, ids, layer and volume.
                let version = bytes.get(tkhd.content.start).copied();
                let matrix = tkhd.content.start + if version == Some(1) { 52 } else { 40 };
                if matrix + 36 <= tkhd.content.end {
                    out.push(matrix);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_is_written_into_the_video_track_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("av.mp4");
        let description = format!(
            "videotestsrc num-buffers=5 ! video/x-raw,width=64,height=48,framerate=10/1 \
               ! x264enc speed-preset=ultrafast ! h264parse ! mp4mux name=m \
               ! filesink location={} \
             audiotestsrc num-buffers=5 ! audioconvert ! avenc_aac ! m.",
            crate::pipeline::quote(path.to_str().expect("utf-8")).expect("quote")
        );
        run_to_eos(&description, Duration::from_secs(30)).expect("write clip");
        let before = std::fs::read(&path).expect("read");
        assert_eq!(video_matrix_offsets(&before).len(), 1, "one video track");
        assert_eq!(set_mp4_rotation(&path, 90).expect("patch"), 1);
        let after = std::fs::read(&path).expect("read");
        let at = video_matrix_offsets(&after)[0];
        let words: Vec<u32> = after[at..at + 36]
            .chunks(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(words, [0, 0x10000, 0, 0xFFFF_0000, 0, 0, 0, 0, 0x4000_0000]);
        // Only the matrix changed: the audio track and the media data are untouched.
        let changed = before.iter().zip(&after).filter(|(x, y)| x != y).count();
        assert!(changed <= 36, "{changed} bytes changed");
        assert!(set_mp4_rotation(&path, 45).is_err());
        let not_mp4 = dir.path().join("x.mp4");
        std::fs::write(&not_mp4, b"not an mp4 at all").expect("write");
        assert!(set_mp4_rotation(&not_mp4, 90).is_err());
    }
}
