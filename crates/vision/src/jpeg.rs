//! JPEG decoding through libjpeg-turbo's TurboJPEG API.
//!
//! OpenCV's `imread` decodes with libjpeg-turbo (accurate integer IDCT, fancy chroma upsampling). A pure-Rust
//! decoder differs by a few grey levels on many pixels, which is enough to flip near-tied YuNet anchors and
//! move a box by 2 px against OpenCV's reference results. The TurboJPEG 2.x calls below exist unchanged in
//! libjpeg-turbo 2.0 through 3.x (Debian 12 ships 2.1), so we bind them directly.

use std::ffi::{c_char, c_int, c_uchar, c_ulong, c_void, CStr};

use crate::{BgrImage, VisionError};

const TJPF_BGR: c_int = 1;
const TJFLAG_ACCURATEDCT: c_int = 4096;

#[link(name = "turbojpeg")]
extern "C" {
    fn tjInitDecompress() -> *mut c_void;
    fn tjDecompressHeader3(
        handle: *mut c_void,
        jpeg_buf: *const c_uchar,
        jpeg_size: c_ulong,
        width: *mut c_int,
        height: *mut c_int,
        subsamp: *mut c_int,
        colorspace: *mut c_int,
    ) -> c_int;
    fn tjDecompress2(
        handle: *mut c_void,
        jpeg_buf: *const c_uchar,
        jpeg_size: c_ulong,
        dst_buf: *mut c_uchar,
        width: c_int,
        pitch: c_int,
        height: c_int,
        pixel_format: c_int,
        flags: c_int,
    ) -> c_int;
    fn tjGetErrorStr2(handle: *mut c_void) -> *mut c_char;
    fn tjDestroy(handle: *mut c_void) -> c_int;
}

struct Handle(*mut c_void);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tjInitDecompress and is destroyed once.
        unsafe {
            tjDestroy(self.0);
        }
    }
}

impl Handle {
    fn error(&self) -> String {
        // SAFETY: tjGetErrorStr2 returns a NUL-terminated string owned by the library (thread-local or per handle).
        unsafe {
            let p = tjGetErrorStr2(self.0);
            if p.is_null() {
                "unknown libjpeg-turbo error".into()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }
}

pub fn decode_bgr(bytes: &[u8]) -> Result<BgrImage, VisionError> {
    // SAFETY: plain C calls on a buffer we own; sizes are checked before the output buffer is written.
    unsafe {
        let h = tjInitDecompress();
        if h.is_null() {
            return Err(VisionError::BadImage(
                "cannot initialise libjpeg-turbo".into(),
            ));
        }
        let handle = Handle(h);
        let (mut w, mut ht, mut ss, mut cs) = (0, 0, 0, 0);
        if tjDecompressHeader3(
            h,
            bytes.as_ptr(),
            bytes.len() as c_ulong,
            &mut w,
            &mut ht,
            &mut ss,
            &mut cs,
        ) != 0
        {
            return Err(VisionError::BadImage(format!(
                "JPEG header: {}",
                handle.error()
            )));
        }
        // The same cap as every other format, before the output buffer exists.
        crate::image::check_dimensions(w.max(0) as u64, ht.max(0) as u64)?;
        let pitch = w as usize * 3;
        let mut data = vec![0u8; pitch * ht as usize];
        let rc = tjDecompress2(
            h,
            bytes.as_ptr(),
            bytes.len() as c_ulong,
            data.as_mut_ptr(),
            w,
            pitch as c_int,
            ht,
            TJPF_BGR,
            TJFLAG_ACCURATEDCT,
        );
        if rc != 0 {
            return Err(VisionError::BadImage(format!(
                "JPEG data: {}",
                handle.error()
            )));
        }
        BgrImage::new(w as u32, ht as u32, data)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn garbage_is_an_error_not_a_crash() {
        assert!(super::decode_bgr(&[0xFF, 0xD8, 0xFF, 0x00, 1, 2, 3]).is_err());
        assert!(super::decode_bgr(&[]).is_err());
    }
}
