//! Frames as the models want them: packed 8-bit BGR, the channel order both YuNet and NanoDet were trained on
//! and the one GStreamer's `videoconvert` can hand over without a second conversion.

use crate::VisionError;

/// Most pixels an encoded image may declare. Photos of faces need far less (a 24 MP camera is 6000x4000),
/// and the decoded BGR copy of this many pixels is 120 MB: a hostile header cannot ask for more.
pub const MAX_IMAGE_PIXELS: u64 = 40_000_000;
/// Most bytes any one decoder may allocate at once (16-bit RGBA of `MAX_IMAGE_PIXELS` would be 320 MB).
pub const MAX_DECODE_ALLOC: u64 = 384 << 20;
/// Largest encoded file `BgrImage::open` reads.
pub const MAX_ENCODED_BYTES: u64 = 64 << 20;

/// Refuses dimensions over [`MAX_IMAGE_PIXELS`] before any pixel buffer exists.
pub(crate) fn check_dimensions(width: u64, height: u64) -> Result<(), VisionError> {
    if width == 0 || height == 0 {
        return Err(VisionError::BadImage(format!(
            "empty {width}x{height} image"
        )));
    }
    if width.saturating_mul(height) > MAX_IMAGE_PIXELS {
        return Err(VisionError::TooLarge {
            width,
            height,
            max_pixels: MAX_IMAGE_PIXELS,
        });
    }
    Ok(())
}

/// Decodes a non-JPEG image through the `image` crate: dimensions from the header first, then the decode
/// under the same caps, so the size check does not rely on each decoder honouring `Limits`.
fn decode_other(bytes: &[u8]) -> Result<image::RgbImage, VisionError> {
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| VisionError::BadImage(e.to_string()))
    };
    let (w, h) = reader()?
        .into_dimensions()
        .map_err(|e| VisionError::BadImage(e.to_string()))?;
    check_dimensions(u64::from(w), u64::from(h))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let mut r = reader()?;
    r.limits(limits);
    let img = r
        .decode()
        .map_err(|e| VisionError::BadImage(e.to_string()))?;
    Ok(img.into_rgb8())
}

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

    /// Decodes a JPEG or PNG file (at most [`MAX_ENCODED_BYTES`]).
    pub fn open(path: &std::path::Path) -> Result<Self, VisionError> {
        use std::io::Read;
        let file = std::fs::File::open(path)
            .map_err(|e| VisionError::BadImage(format!("{}: {e}", path.display())))?;
        let mut bytes = Vec::new();
        // Read one byte past the cap so a larger file is refused without reading it all.
        file.take(MAX_ENCODED_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| VisionError::BadImage(format!("{}: {e}", path.display())))?;
        if bytes.len() as u64 > MAX_ENCODED_BYTES {
            return Err(VisionError::BadImage(format!(
                "{}: file larger than {MAX_ENCODED_BYTES} bytes",
                path.display()
            )));
        }
        Self::decode(&bytes).map_err(|e| match e {
            VisionError::BadImage(m) => VisionError::BadImage(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Decodes an encoded image held in memory (JPEG or PNG). Every byte from outside that becomes pixels
    /// comes through here: the declared size is checked against [`MAX_IMAGE_PIXELS`] before anything is
    /// allocated for it ([`VisionError::TooLarge`]).
    ///
    /// JPEG goes through libjpeg-turbo rather than a pure-Rust decoder: IDCT and chroma upsampling then match
    /// OpenCV's `imread` bit for bit, and detections on near-tied anchors agree with OpenCV's reference results.
    pub fn decode(bytes: &[u8]) -> Result<Self, VisionError> {
        if bytes.starts_with(&[0xFF, 0xD8]) {
            return crate::jpeg::decode_bgr(bytes);
        }
        Ok(Self::from_rgb(&decode_other(bytes)?))
    }

    #[inline]
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A PNG that declares `w`x`h` 8-bit RGB pixels and carries only `idat` as data: the header is what a
    /// hostile upload controls.
    fn png_header(w: u32, h: u32, idat: &[u8]) -> Vec<u8> {
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [
            (&b"IHDR"[..], ihdr),
            (b"IDAT", idat.to_vec()),
            (b"IEND", vec![]),
        ] {
            png.extend((data.len() as u32).to_be_bytes());
            let mut chunk = kind.to_vec();
            chunk.extend(&data);
            png.extend(&chunk);
            png.extend(crc32(&chunk).to_be_bytes());
        }
        png
    }

    #[test]
    fn a_huge_png_is_refused_from_its_header() {
        let err = BgrImage::decode(&png_header(9000, 9000, &[0x78, 0x01])).unwrap_err();
        assert!(
            matches!(
                err,
                VisionError::TooLarge {
                    width: 9000,
                    height: 9000,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!("image too large: 9000x9000, at most {MAX_IMAGE_PIXELS} pixels")
        );
        // One dimension alone is enough to refuse.
        let err = BgrImage::decode(&png_header(1, 50_000_000, &[])).unwrap_err();
        assert!(matches!(err, VisionError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn a_huge_jpeg_is_refused_with_the_same_error() {
        // SOI, then a baseline SOF0 frame header declaring 9000x9000, 3 components.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
        jpeg.extend(9000u16.to_be_bytes());
        jpeg.extend(9000u16.to_be_bytes());
        jpeg.extend([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        // Start of scan: libjpeg-turbo reads the header up to here.
        jpeg.extend([0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0]);
        let err = BgrImage::decode(&jpeg).unwrap_err();
        assert!(
            matches!(
                err,
                VisionError::TooLarge {
                    width: 9000,
                    height: 9000,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn ordinary_images_still_decode() {
        let img = image::RgbImage::from_pixel(64, 48, image::Rgb([10, 20, 30]));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let bgr = BgrImage::decode(&png).unwrap();
        assert_eq!((bgr.width, bgr.height), (64, 48));
        assert_eq!(bgr.pixel(0, 0), [30, 20, 10]);
    }
}
