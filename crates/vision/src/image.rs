//! Frames as the models want them: packed 8-bit BGR, the channel order both YuNet and NanoDet were trained on
//! and the one GStreamer's `videoconvert` can hand over without a second conversion.

use crate::VisionError;

/// A packed BGR image, 3 bytes per pixel, rows without padding.
#[derive(Clone, PartialEq, Eq)]
pub struct BgrImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for BgrImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BgrImage({}x{})", self.width, self.height)
    }
}

impl BgrImage {
    /// Wraps packed BGR bytes; the length must be exactly `width * height * 3`.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, VisionError> {
        let want = width as usize * height as usize * 3;
        if width == 0 || height == 0 || data.len() != want {
            return Err(VisionError::BadImage(format!(
                "BGR buffer of {} bytes does not hold a {width}x{height} image ({want} bytes)",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Copies rows out of a buffer whose rows are `stride` bytes apart (GStreamer pads rows to 4 bytes).
    pub fn from_strided(
        width: u32,
        height: u32,
        stride: usize,
        src: &[u8],
    ) -> Result<Self, VisionError> {
        let row = width as usize * 3;
        if width == 0 || height == 0 {
            return Err(VisionError::BadImage(format!(
                "empty {width}x{height} image"
            )));
        }
        if stride < row || src.len() < stride * (height as usize - 1) + row {
            return Err(VisionError::BadImage(format!(
                "strided buffer of {} bytes (stride {stride}) too small for {width}x{height} BGR",
                src.len()
            )));
        }
        let mut data = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            data.extend_from_slice(&src[y * stride..y * stride + row]);
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    pub fn from_rgb(img: &image::RgbImage) -> Self {
        let mut data = img.as_raw().clone();
        for px in data.chunks_exact_mut(3) {
            px.swap(0, 2);
        }
        Self {
            width: img.width(),
            height: img.height(),
            data,
        }
    }

    pub fn to_rgb(&self) -> image::RgbImage {
        let mut data = self.data.clone();
        for px in data.chunks_exact_mut(3) {
            px.swap(0, 2);
        }
        image::RgbImage::from_raw(self.width, self.height, data)
            .expect("length checked at construction")
    }

    /// Decodes a JPEG or PNG file.
    pub fn open(path: &std::path::Path) -> Result<Self, VisionError> {
        let bytes = std::fs::read(path)
            .map_err(|e| VisionError::BadImage(format!("{}: {e}", path.display())))?;
        Self::decode(&bytes).map_err(|e| match e {
            VisionError::BadImage(m) => VisionError::BadImage(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Decodes an encoded image held in memory (JPEG or PNG).
    ///
    /// JPEG goes through libjpeg-turbo rather than a pure-Rust decoder: IDCT and chroma upsampling then match
    /// OpenCV's `imread` bit for bit, and detections on near-tied anchors agree with OpenCV's reference results.
    pub fn decode(bytes: &[u8]) -> Result<Self, VisionError> {
        if bytes.starts_with(&[0xFF, 0xD8]) {
            return crate::jpeg::decode_bgr(bytes);
        }
        let img = image::load_from_memory(bytes)
            .map_err(|e| VisionError::BadImage(e.to_string()))?
            .to_rgb8();
        Ok(Self::from_rgb(&img))
    }

    #[inline]
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}
