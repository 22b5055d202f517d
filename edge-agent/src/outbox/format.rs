//! On-disk format: segment headers, record frames, and the recovery scan.
//!
//! All integers are little-endian. See the module docs of [`super`] for the layout.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use super::Class;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"CPOUTSEG";
/// Bumped on any incompatible change; a newer file is refused rather than misread.
pub const FORMAT_VERSION: u16 = 1;
/// Size of the segment header; the first record starts here.
pub const HEADER_LEN: u64 = 48;
/// Start of every record frame. Not ASCII, so JSON payloads rarely contain it, which keeps
/// resynchronisation after a corrupt length field cheap (the CRC makes false matches harmless).
pub const RECORD_MAGIC: [u8; 4] = [0xF0, 0x0B, 0x0C, 0x5A];
/// magic + body length + crc.
pub const FRAME_PREFIX: u64 = 12;
/// seq + ts_ms + class + flags + topic length.
pub const BODY_FIXED: u64 = 20;
/// Bytes a record costs on top of its topic and payload.
pub const FRAME_OVERHEAD: u64 = FRAME_PREFIX + BODY_FIXED;
/// Largest accepted frame. Also bounds what a corrupt length field can make the scan read.
pub const MAX_FRAME: u64 = 16 * 1024 * 1024;

/// Record flag: written by compaction (an aggregate, not an original count).
pub const FLAG_COMPACTED: u8 = 1;

/// The fixed header at the start of each segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Same as the number in the file name; orders segments.
    pub id: u64,
    /// A compacted segment replaces every segment with an id in `covers_from..id`: if a crash
    /// left some of those behind, they are deleted on open instead of being replayed twice.
    pub covers_from: u64,
    /// `next_seq` when the segment was created: keeps seqs increasing after every record
    /// before it has been acknowledged and deleted.
    pub base_seq: u64,
}

/// Why a header could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than a header: a crash while the segment was being created.
    Short,
    /// Bad magic or checksum.
    Corrupt,
    /// Intact, but written by a newer format.
    Version(u16),
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut b = [0u8; HEADER_LEN as usize];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        b[16..24].copy_from_slice(&self.id.to_le_bytes());
        b[24..32].copy_from_slice(&self.covers_from.to_le_bytes());
        b[32..40].copy_from_slice(&self.base_seq.to_le_bytes());
        let crc = crc32fast::hash(&b[0..40]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if b.len() < HEADER_LEN as usize {
            return Err(HeaderError::Short);
        }
        if b[0..8] != SEGMENT_MAGIC || le_u32(&b[40..44]) != crc32fast::hash(&b[0..40]) {
            return Err(HeaderError::Corrupt);
        }
        let version = le_u16(&b[8..10]);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        Ok(SegmentHeader {
            id: le_u64(&b[16..24]),
            covers_from: le_u64(&b[24..32]),
            base_seq: le_u64(&b[32..40]),
        })
    }
}

/// One decoded record frame.
#[derive(Clone, Debug)]
pub struct Frame {
    pub seq: u64,
    pub ts_ms: u64,
    pub class: Class,
    pub flags: u8,
    pub topic: String,
    pub payload: Vec<u8>,
    /// Bytes the frame takes on disk.
    pub frame_len: u32,
}

/// Size of the frame for a record with this topic and payload.
pub fn frame_len(topic: &str, payload: &[u8]) -> u64 {
    FRAME_OVERHEAD + topic.len() as u64 + payload.len() as u64
}

/// Serialises one record frame. The caller has checked the sizes (`frame_len <= MAX_FRAME`,
/// topic shorter than 64 KiB).
pub fn encode_frame(
    seq: u64,
    ts_ms: u64,
    class: Class,
    flags: u8,
    topic: &str,
    payload: &[u8],
) -> Vec<u8> {
    let body_len = BODY_FIXED as usize + topic.len() + payload.len();
    let mut b = Vec::with_capacity(FRAME_PREFIX as usize + body_len);
    b.extend_from_slice(&RECORD_MAGIC);
    b.extend_from_slice(&(body_len as u32).to_le_bytes());
    b.extend_from_slice(&[0u8; 4]); // crc, filled below
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&ts_ms.to_le_bytes());
    b.push(class.code());
    b.push(flags);
    b.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend_from_slice(payload);
    let crc = frame_crc(&b[4..8], &b[12..]);
    b[8..12].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The checksum covers the length field too, so a flipped length bit is caught instead of
/// silently shifting every later frame.
fn frame_crc(len_bytes: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_bytes);
    h.update(body);
    h.finalize()
}

fn le_u16(b: &[u8]) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[..2]);
    u16::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Buffered positional reads of one segment file.
pub struct SegReader {
    r: BufReader<File>,
    /// Where the underlying reader is, so sequential reads do not discard the buffer.
    pos: u64,
    len: u64,
}

impl SegReader {
    pub fn new(file: File) -> io::Result<SegReader> {
        let len = file.metadata()?.len();
        Ok(SegReader {
            r: BufReader::with_capacity(64 * 1024, file),
            pos: 0,
            len,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    fn seek_to(&mut self, pos: u64) -> io::Result<()> {
        if pos != self.pos {
            let delta = pos as i128 - self.pos as i128;
            match i64::try_from(delta) {
                Ok(d) => self.r.seek_relative(d)?,
                Err(_) => {
                    self.r.seek(SeekFrom::Start(pos))?;
                }
            }
            self.pos = pos;
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.r.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Reads the header; `Err(Short)` when the file is too short for one.
    pub fn header(&mut self) -> io::Result<Result<SegmentHeader, HeaderError>> {
        if self.len < HEADER_LEN {
            return Ok(Err(HeaderError::Short));
        }
        let mut b = [0u8; HEADER_LEN as usize];
        self.seek_to(0)?;
        self.read_exact(&mut b)?;
        Ok(SegmentHeader::decode(&b))
    }

    /// The frame starting at `pos`, or `None` when there is no intact frame there (torn,
    /// corrupt, or not a frame at all). Only I/O failures are errors.
    pub fn frame_at(&mut self, pos: u64) -> io::Result<Option<Frame>> {
        if pos.saturating_add(FRAME_PREFIX + BODY_FIXED) > self.len {
            return Ok(None);
        }
        let mut prefix = [0u8; FRAME_PREFIX as usize];
        self.seek_to(pos)?;
        self.read_exact(&mut prefix)?;
        if prefix[0..4] != RECORD_MAGIC {
            return Ok(None);
        }
        let body_len = u64::from(le_u32(&prefix[4..8]));
        if !(BODY_FIXED..=MAX_FRAME - FRAME_PREFIX).contains(&body_len)
            || pos + FRAME_PREFIX + body_len > self.len
        {
            return Ok(None);
        }
        let mut body = vec![0u8; body_len as usize];
        self.read_exact(&mut body)?;
        if frame_crc(&prefix[4..8], &body) != le_u32(&prefix[8..12]) {
            return Ok(None);
        }
        let Some(class) = Class::from_code(body[16]) else {
            return Ok(None);
        };
        let topic_len = usize::from(le_u16(&body[18..20]));
        let topic_end = BODY_FIXED as usize + topic_len;
        if topic_end > body.len() {
            return Ok(None);
        }
        let Ok(topic) = std::str::from_utf8(&body[BODY_FIXED as usize..topic_end]) else {
            return Ok(None);
        };
        Ok(Some(Frame {
            seq: le_u64(&body[0..8]),
            ts_ms: le_u64(&body[8..16]),
            class,
            flags: body[17],
            topic: topic.to_owned(),
            payload: body[topic_end..].to_vec(),
            frame_len: (FRAME_PREFIX + body_len) as u32,
        }))
    }

    /// After a bad frame at `bad`: where the next intact frame with a seq above `after_seq`
    /// starts, if anywhere.
    fn resync(&mut self, bad: u64, after_seq: u64) -> io::Result<Option<u64>> {
        // Search from the next byte rather than trusting the bad frame's length: a flipped
        // length bit could point past intact records, and skipping them would lose them.
        // Payloads are text in practice, so a frame-shaped false match inside one is not a
        // realistic risk (and would still need a valid checksum and an increasing seq).
        const BLOCK: usize = 64 * 1024;
        let mut block = vec![0u8; BLOCK];
        let mut start = bad + 1;
        while start + FRAME_PREFIX <= self.len {
            let n = (self.len - start).min(BLOCK as u64) as usize;
            self.seek_to(start)?;
            self.read_exact(&mut block[..n])?;
            let hits: Vec<u64> = block[..n]
                .windows(RECORD_MAGIC.len())
                .enumerate()
                .filter(|(_, w)| *w == RECORD_MAGIC)
                .map(|(i, _)| start + i as u64)
                .collect();
            for cand in hits {
                if let Some(f) = self.frame_at(cand)? {
                    if f.seq > after_seq {
                        return Ok(Some(cand));
                    }
                }
            }
            if n < BLOCK {
                break;
            }
            // Overlap so a magic split across blocks is still seen.
            start += (BLOCK - (RECORD_MAGIC.len() - 1)) as u64;
        }
        Ok(None)
    }
}

/// A record found by [`scan`], without its topic and payload (those stay on disk).
#[derive(Clone, Copy, Debug)]
pub struct Scanned {
    pub seq: u64,
    pub offset: u64,
    pub frame_len: u32,
    pub class: Class,
    pub flags: u8,
}

/// What [`scan`] found in one segment.
#[derive(Debug, Default)]
pub struct ScanResult {
    pub records: Vec<Scanned>,
    /// Corrupt stretches skipped with intact records after them (each counts once).
    pub corrupt: u64,
    pub corrupt_bytes: u64,
    /// Where the last intact frame ends when the file has a bad tail, else `None`.
    pub truncate_at: Option<u64>,
}

/// Walks every frame after the header, verifying checksums. Seqs must increase past
/// `after_seq` (the last seq of the segments before); a frame that breaks that is treated as
/// corrupt rather than trusted.
pub fn scan(r: &mut SegReader, after_seq: u64) -> io::Result<ScanResult> {
    let mut out = ScanResult::default();
    let mut last = after_seq;
    let mut pos = HEADER_LEN;
    while pos < r.len() {
        if let Some(f) = r.frame_at(pos)? {
            if f.seq > last {
                out.records.push(Scanned {
                    seq: f.seq,
                    offset: pos,
                    frame_len: f.frame_len,
                    class: f.class,
                    flags: f.flags,
                });
                last = f.seq;
                pos += u64::from(f.frame_len);
                continue;
            }
        }
        match r.resync(pos, last)? {
            Some(next) => {
                out.corrupt += 1;
                out.corrupt_bytes += next - pos;
                pos = next;
            }
            None => {
                out.truncate_at = Some(pos);
                break;
            }
        }
    }
    Ok(out)
}
