//! The file format of a [`BloomFilter`], version 3 (all integers little-endian), and its save and load.
//!
//! | offset      | size | field                                                           |
//! |------------:|-----:|-----------------------------------------------------------------|
//! |           0 |    8 | magic `b"DOLMABLF"`                                             |
//! |           8 |    4 | `u32` format version (= 3)                                      |
//! |          12 |    4 | `u32` num_hashes, `1..=MAX_HASHES`                              |
//! |          16 |    8 | `u64` num_bits, a non-zero multiple of 512                      |
//! |          24 |    8 | `u64` seed1                                                     |
//! |          32 |    8 | `u64` seed2                                                     |
//! |          40 |    8 | `u64` inserted (count of inserts that added a new key)          |
//! |          48 |    8 | `u64` manifest length `l`, at most [`MAX_MANIFEST_LEN`]         |
//! |          56 |    l | manifest: UTF-8 text recorded by the caller (what went in)      |
//! |      56 + l |  m/8 | bit data, `m / 64` little-endian `u64` words                    |
//! | 56 + l + m/8|    8 | `u64` xxh3_64 (seed 0) of every byte before it                  |
//!
//! The checksum covers the header and the manifest as well as the bits, so a flipped bit anywhere (the hash
//! count or a seed included) is an error on load, never a filter that silently gives other answers. Version 2
//! checksummed only the bits and had no manifest; version 1 was the unblocked layout. Both are refused with a
//! message that says how to rebuild. The manifest is opaque here: `dolma dedupe` stores the inputs and
//! settings a filter holds in it.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use xxhash_rust::xxh3::Xxh3Default;

use super::{
    corrupt, reserve_blocks, Block, BloomError, BloomFilter, Result, BLOCK_BITS, BLOCK_BYTES, BLOCK_WORDS, MAX_HASHES,
    MAX_SIZE_IN_BYTES,
};

/// First eight bytes of every filter file.
pub const MAGIC: [u8; 8] = *b"DOLMABLF";
/// The file format version this build writes and reads.
pub const VERSION: u32 = 3;
/// Size of the fixed file header in bytes.
pub const HEADER_LEN: usize = 56;
/// Size of the checksum that ends the file.
pub const TRAILER_LEN: usize = 8;
/// Largest manifest accepted (4 GiB): far more than any input list, and a bound for a corrupt length field.
pub const MAX_MANIFEST_LEN: u64 = 1 << 32;
/// Words handled per chunk when streaming the bit data to or from a file (1 MiB).
pub(super) const IO_CHUNK_WORDS: usize = 1 << 17;
pub(super) const IO_CHUNK_BLOCKS: usize = IO_CHUNK_WORDS / BLOCK_WORDS;

/// Reads until `buf` is full or the reader is exhausted; returns how many bytes were read.
pub(super) fn read_fully<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

pub(super) fn le_u32(bytes: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(bytes);
    u32::from_le_bytes(a)
}

pub(super) fn le_u64(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes);
    u64::from_le_bytes(a)
}

/// The fixed-size file header (everything but the magic and version, which are constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) num_hashes: u32,
    pub(super) num_bits: u64,
    pub(super) seed1: u64,
    pub(super) seed2: u64,
    pub(super) inserted: u64,
    pub(super) manifest_len: u64,
}

impl Header {
    pub(super) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.num_hashes.to_le_bytes());
        out[16..24].copy_from_slice(&self.num_bits.to_le_bytes());
        out[24..32].copy_from_slice(&self.seed1.to_le_bytes());
        out[32..40].copy_from_slice(&self.seed2.to_le_bytes());
        out[40..48].copy_from_slice(&self.inserted.to_le_bytes());
        out[48..56].copy_from_slice(&self.manifest_len.to_le_bytes());
        out
    }

    /// Decodes a header and checks every field the reader relies on before it allocates anything; the
    /// checksum at the end of the file then vouches for the values.
    pub(super) fn decode(buf: &[u8; HEADER_LEN]) -> Result<Header> {
        if buf[0..8] != MAGIC {
            return Err(BloomError::Format("not a dolma bloom filter file (bad magic bytes)".to_string()));
        }
        let version = le_u32(&buf[8..12]);
        if version != VERSION {
            return Err(BloomError::Format(version_message(version)));
        }
        let header = Header {
            num_hashes: le_u32(&buf[12..16]),
            num_bits: le_u64(&buf[16..24]),
            seed1: le_u64(&buf[24..32]),
            seed2: le_u64(&buf[32..40]),
            inserted: le_u64(&buf[40..48]),
            manifest_len: le_u64(&buf[48..56]),
        };
        if !(1..=MAX_HASHES).contains(&header.num_hashes) {
            return Err(corrupt(format!("num_hashes {} is outside 1..={MAX_HASHES}", header.num_hashes)));
        }
        if header.num_bits == 0 || !header.num_bits.is_multiple_of(BLOCK_BITS) {
            return Err(corrupt(format!("num_bits {} is not a positive multiple of {BLOCK_BITS}", header.num_bits)));
        }
        if header.num_bits / 8 > MAX_SIZE_IN_BYTES {
            return Err(corrupt(format!(
                "num_bits {} exceeds the maximum of {} bits",
                header.num_bits,
                MAX_SIZE_IN_BYTES * 8
            )));
        }
        if header.manifest_len > MAX_MANIFEST_LEN {
            return Err(corrupt(format!(
                "manifest length {} exceeds the maximum of {MAX_MANIFEST_LEN} bytes",
                header.manifest_len
            )));
        }
        Ok(header)
    }

    /// Bytes of bit data in the file.
    fn data_len(&self) -> u64 {
        self.num_bits / 8
    }

    /// Length of the whole file: header, manifest, bits and checksum.
    fn total_len(&self) -> u64 {
        HEADER_LEN as u64 + self.manifest_len + self.data_len() + TRAILER_LEN as u64
    }

    /// Checks a known total input size (file length, buffer length) before any large allocation.
    fn check_total_len(&self, total_len: u64) -> Result<()> {
        let expected = self.total_len();
        if total_len == expected {
            return Ok(());
        }
        let what = if total_len < expected { "truncated" } else { "trailing data" };
        Err(corrupt(format!(
            "{what}: expected {expected} bytes ({HEADER_LEN}-byte header + {}-byte manifest + {} bytes of bit data + \
             {TRAILER_LEN}-byte checksum), found {total_len}",
            self.manifest_len,
            self.data_len()
        )))
    }
}

/// Why a file of another format version cannot be read, and what to do about it.
pub(super) fn version_message(version: u32) -> String {
    if version < VERSION {
        format!(
            "bloom filter file format version {version} was written by an earlier version of this toolkit; this \
             build reads version {VERSION}, which checksums the whole file and records the inputs and settings a \
             filter holds. Rebuild the filter from its inputs: rerun `dolma dedupe` over them with \
             --ignore_existing (or delete the file)"
        )
    } else {
        format!("unsupported bloom filter file version {version} (this build reads version {VERSION}: a newer build?)")
    }
}

/// Reads and validates the header; a short input is reported as such (or as a foreign file).
pub(super) fn read_header<R: Read>(reader: &mut R) -> Result<([u8; HEADER_LEN], Header)> {
    let mut buf = [0u8; HEADER_LEN];
    let n = read_fully(reader, &mut buf)?;
    if n < HEADER_LEN {
        if n >= MAGIC.len() && buf[..MAGIC.len()] != MAGIC {
            return Err(BloomError::Format("not a dolma bloom filter file (bad magic bytes)".to_string()));
        }
        return Err(corrupt(format!("truncated header: expected {HEADER_LEN} bytes, found {n}")));
    }
    let header = Header::decode(&buf)?;
    Ok((buf, header))
}

impl BloomFilter {
    fn header(&self, manifest_len: usize) -> Header {
        Header {
            num_hashes: self.num_hashes,
            num_bits: self.num_bits,
            seed1: self.seed1,
            seed2: self.seed2,
            inserted: self.inserted(),
            manifest_len: manifest_len as u64,
        }
    }

    /// Calls `f` with the bit data as little-endian bytes, one chunk at a time.
    fn for_each_data_chunk<F: FnMut(&[u8]) -> io::Result<()>>(&self, mut f: F) -> io::Result<()> {
        let mut buf = Vec::with_capacity(IO_CHUNK_BLOCKS.min(self.blocks.len()) * BLOCK_BYTES);
        for chunk in self.blocks.chunks(IO_CHUNK_BLOCKS) {
            buf.clear();
            for word in chunk.iter().flat_map(|b| b.0.iter()) {
                buf.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
            }
            f(&buf)?;
        }
        Ok(())
    }

    /// Writes header, manifest and bits in one pass, hashing everything written, then the checksum.
    fn write_io<W: Write>(&self, writer: &mut W) -> io::Result<()> {
        let manifest = self.manifest();
        let mut hasher = Xxh3Default::new();
        let mut put = |bytes: &[u8]| {
            hasher.update(bytes);
            writer.write_all(bytes)
        };
        put(&self.header(manifest.len()).encode())?;
        put(manifest.as_bytes())?;
        self.for_each_data_chunk(&mut put)?;
        writer.write_all(&hasher.digest().to_le_bytes())
    }

    /// Writes the filter in the versioned file format.
    ///
    /// Inserts running concurrently with a write can make the bits and the `inserted` count disagree: callers
    /// must not insert while writing.
    pub fn write_to<W: Write>(&self, mut writer: W) -> Result<()> {
        Ok(self.write_io(&mut writer)?)
    }

    /// Reads a filter written by [`BloomFilter::write_to`], validating header and checksum. Bytes after the
    /// checksum are left unread (use [`BloomFilter::from_bytes`] or [`BloomFilter::load`] to refuse them).
    pub fn read_from<R: Read>(mut reader: R) -> Result<Self> {
        let (raw, header) = read_header(&mut reader)?;
        Self::read_body(&mut reader, &raw, &header)
    }

    fn read_body<R: Read>(reader: &mut R, raw_header: &[u8; HEADER_LEN], header: &Header) -> Result<Self> {
        let mut hasher = Xxh3Default::new();
        hasher.update(raw_header);
        // The length was bounded by decode (and by the input size where known); read it without trusting it
        // for an up-front allocation.
        let mut manifest = Vec::new();
        reader.take(header.manifest_len).read_to_end(&mut manifest)?;
        if (manifest.len() as u64) < header.manifest_len {
            return Err(corrupt(format!(
                "truncated manifest: expected {} bytes, found {}",
                header.manifest_len,
                manifest.len()
            )));
        }
        hasher.update(&manifest);
        let data_len = header.data_len();
        let num_blocks = usize::try_from(header.num_bits / BLOCK_BITS)
            .map_err(|_| corrupt(format!("num_bits {} does not fit in memory", header.num_bits)))?;
        let mut blocks = Vec::new();
        reserve_blocks(&mut blocks, num_blocks)?;
        let mut buf = vec![0u8; IO_CHUNK_BLOCKS.min(num_blocks) * BLOCK_BYTES];
        let mut found: u64 = 0;
        while found < data_len {
            // Both data_len and buf.len() are multiples of 64, so every chunk holds whole blocks.
            let want = buf.len().min(usize::try_from(data_len - found).unwrap_or(usize::MAX));
            let n = read_fully(reader, &mut buf[..want])?;
            found += n as u64;
            if n < want {
                return Err(corrupt(format!("truncated bit data: expected {data_len} bytes, found {found}")));
            }
            hasher.update(&buf[..n]);
            blocks.extend(buf[..n].chunks_exact(BLOCK_BYTES).map(|bytes| {
                let block = Block::default();
                for (word, b) in block.0.iter().zip(bytes.chunks_exact(8)) {
                    word.store(le_u64(b), Ordering::Relaxed);
                }
                block
            }));
        }
        let mut trailer = [0u8; TRAILER_LEN];
        let n = read_fully(reader, &mut trailer)?;
        if n < TRAILER_LEN {
            return Err(corrupt(format!("truncated checksum: expected {TRAILER_LEN} bytes, found {n}")));
        }
        let (stored, actual) = (le_u64(&trailer), hasher.digest());
        if actual != stored {
            return Err(corrupt(format!(
                "checksum mismatch (the file says {stored:#018x}, its contents hash to {actual:#018x}): the header, \
                 manifest or bits were damaged"
            )));
        }
        let manifest = String::from_utf8(manifest).map_err(|_| corrupt("the manifest is not UTF-8".to_string()))?;
        Ok(BloomFilter {
            blocks,
            num_bits: header.num_bits,
            num_hashes: header.num_hashes,
            seed1: header.seed1,
            seed2: header.seed2,
            inserted: AtomicU64::new(header.inserted),
            manifest: Mutex::new(manifest),
        })
    }

    /// The filter in the file format, as one buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(HEADER_LEN + self.manifest_guard().len() + self.size_in_bytes() + TRAILER_LEN);
        // Writing to a Vec cannot fail.
        let _ = self.write_io(&mut out);
        out
    }

    /// Parses [`BloomFilter::to_bytes`] output; the length must match the header exactly.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        let mut reader = data;
        let (raw, header) = read_header(&mut reader)?;
        header.check_total_len(data.len() as u64)?;
        Self::read_body(&mut reader, &raw, &header)
    }

    /// Writes the filter to `path` atomically: to a hidden temporary sibling first (`crate::tempname`), then
    /// renamed over `path`.
    pub fn save<P: AsRef<Path>>(&self, path: P) -> Result<()> {
        let path = path.as_ref();
        let tmp = crate::tempname::temp_path(path);
        self.write_file(&tmp).and_then(|()| fs::rename(&tmp, path)).map_err(|source| {
            let _ = fs::remove_file(&tmp);
            BloomError::Io { path: Some(path.to_path_buf()), source }
        })
    }

    fn write_file(&self, path: &Path) -> io::Result<()> {
        let mut writer = BufWriter::with_capacity(IO_CHUNK_WORDS * 8, File::create(path)?);
        self.write_io(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }

    /// Reads a filter saved with [`BloomFilter::save`]; errors name the file.
    pub fn load<P: AsRef<Path>>(path: P) -> Result<Self> {
        let path = path.as_ref();
        Self::read_file(path).map_err(|e| e.at_path(path))
    }

    fn read_file(path: &Path) -> Result<Self> {
        let file = File::open(path)?;
        let total_len = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(IO_CHUNK_WORDS * 8, file);
        let (raw, header) = read_header(&mut reader)?;
        header.check_total_len(total_len)?;
        Self::read_body(&mut reader, &raw, &header)
    }
}
