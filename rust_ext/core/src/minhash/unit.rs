// Longer than 400 lines because it is one file format: the writer, the reader and the checks that keep them in step.
//! The band-key file of one documents file: its documents' line numbers, shingle counts, signatures, band-key
//! records and (optionally) shingle hash sets, in one checked file written atomically, so that a run that is
//! killed resumes by skipping the files whose band-key file exists.
//!
//! Format, version 2, all integers little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"DOLMAMHK"` |
//! | 8 | 4 | version (1) |
//! | 12 | 4 | flags: bit 0 = shingle sets present |
//! | 16 | 8 | parameter fingerprint (`config::Signer::fingerprint`) |
//! | 24 | 4 | file index (position of the documents file in the run's stable order) |
//! | 28 | 4 | num_perm |
//! | 32 | 4 | bands |
//! | 36 | 4 | rows |
//! | 40 | 8 | documents `D` |
//! | 48 | 8 | lines read (documents, blank and skipped bad lines) |
//! | 56 | 8 | bad lines skipped |
//! | 64 | 8 | documents with at least one shingle |
//! | 72 | 8 | band-key records `R` |
//! | 80 | 8 | shingle hashes `S` (0 without shingle sets) |
//! | 88 | 4 | length `L` of the source path |
//! | 92 | 4 | zero |
//! | 96 | 8 | size in bytes of the documents file when it was signed |
//! | 104 | 8 | version stamp of the documents file when it was signed (the caller's: mtime or ETag hash) |
//! | 112 | 8 | bytes `I` of the document ids |
//! | 120 | 8 | bytes read from the documents file (decompressed, every line and its newline) |
//! | 128 | L | source path (UTF-8), then zero padding to a multiple of 8 |
//!
//! Then the sections, each padded with zeros to a multiple of 8 bytes: `D` line numbers (`u64`, strictly
//! increasing); `D` shingle counts (`u32`); `D x num_perm` signature values (`u32`, row-major); `R` records
//! of 12 bytes (`u64` band key, `u32` document index in this file), in document order, `bands` per document
//! that has shingles; with shingle sets, `D + 1` offsets (`u64`) into the `S` sorted 64-bit shingle hashes
//! that follow; `D` text lengths (`u64`, code points of each document's `text`, what its attribute spans
//! cover); `D + 1` offsets (`u64`) into the `I` bytes of the document ids (UTF-8) that follow. Last, a `u64`
//! checksum: XXH3-64 of every byte before it. With the ids, lengths and the documents file's size and stamp,
//! the mark pass writes attribute files without reading the documents again (version 1 had none of them).

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use xxhash_rust::xxh3::Xxh3Default;

use super::config::Signer;
use super::signature::SignBuf;
use super::{config_err, format_err, io_err, Result};

pub const MAGIC: [u8; 8] = *b"DOLMAMHK";
pub const VERSION: u32 = 2;
const HEADER_LEN: u64 = 128;
pub const RECORD_LEN: u64 = 12;
const MAX_SOURCE_LEN: u32 = 1 << 16;
const FLAG_SETS: u32 = 1;

fn pad8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

/// What a band-key file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitHeader {
    pub fingerprint: u64,
    pub file_index: u32,
    pub num_perm: u32,
    pub bands: u32,
    pub rows: u32,
    pub documents: u64,
    pub lines: u64,
    pub bad_lines: u64,
    pub keyed: u64,
    pub records: u64,
    pub set_hashes: u64,
    pub shingle_sets: bool,
    pub source: String,
    pub source_stamp: SourceStamp,
    pub id_bytes: u64,
    pub bytes_read: u64,
}

/// What identified the documents file when it was signed: its size and a version stamp chosen by the caller
/// (mtime for a local file, an ETag hash on S3). A mark pass compares it with the file's current one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStamp {
    pub size: u64,
    pub version: u64,
}

/// Byte offsets of the sections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub lines: u64,
    pub counts: u64,
    pub signatures: u64,
    pub records: u64,
    pub set_offsets: u64,
    pub set_hashes: u64,
    pub lengths: u64,
    pub id_offsets: u64,
    pub ids: u64,
    pub checksum: u64,
}

impl UnitHeader {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN as usize + self.source.len() + 8);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(if self.shingle_sets { FLAG_SETS } else { 0 }).to_le_bytes());
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        for v in [self.file_index, self.num_perm, self.bands, self.rows] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.documents, self.lines, self.bad_lines, self.keyed, self.records, self.set_hashes] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.source.len() as u32).to_le_bytes());
        out.resize(96, 0);
        for v in [self.source_stamp.size, self.source_stamp.version, self.id_bytes, self.bytes_read] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.resize(HEADER_LEN as usize, 0);
        out.extend_from_slice(self.source.as_bytes());
        out.resize(pad8(out.len() as u64) as usize, 0);
        out
    }

    fn decode(path: &Path, head: &[u8; HEADER_LEN as usize], source: &[u8]) -> Result<Self> {
        let u32_at = |o: usize| u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let flags = u32_at(12);
        if flags & !FLAG_SETS != 0 {
            return Err(format_err(path, format!("unknown flags {flags:#x} in the band-key file header")));
        }
        let source = std::str::from_utf8(source)
            .map_err(|_| format_err(path, "the source path in the band-key file header is not UTF-8"))?;
        Ok(UnitHeader {
            shingle_sets: flags & FLAG_SETS != 0,
            fingerprint: u64_at(16),
            file_index: u32_at(24),
            num_perm: u32_at(28),
            bands: u32_at(32),
            rows: u32_at(36),
            documents: u64_at(40),
            lines: u64_at(48),
            bad_lines: u64_at(56),
            keyed: u64_at(64),
            records: u64_at(72),
            set_hashes: u64_at(80),
            source: source.to_string(),
            source_stamp: SourceStamp { size: u64_at(96), version: u64_at(104) },
            id_bytes: u64_at(112),
            bytes_read: u64_at(120),
        })
    }

    /// Section offsets, or None when the counts overflow (a damaged header).
    pub(crate) fn layout(&self) -> Option<Layout> {
        let d = self.documents;
        let lines = HEADER_LEN + pad8(self.source.len() as u64);
        let counts = lines.checked_add(d.checked_mul(8)?)?;
        let signatures = counts.checked_add(pad8(d.checked_mul(4)?))?;
        let records = signatures.checked_add(pad8(d.checked_mul(self.num_perm as u64)?.checked_mul(4)?))?;
        let set_offsets = records.checked_add(pad8(self.records.checked_mul(RECORD_LEN)?))?;
        let (set_hashes, lengths) = if self.shingle_sets {
            let hashes = set_offsets.checked_add(d.checked_add(1)?.checked_mul(8)?)?;
            (hashes, hashes.checked_add(self.set_hashes.checked_mul(8)?)?)
        } else {
            (set_offsets, set_offsets)
        };
        let id_offsets = lengths.checked_add(d.checked_mul(8)?)?;
        let ids = id_offsets.checked_add(d.checked_add(1)?.checked_mul(8)?)?;
        let checksum = ids.checked_add(pad8(self.id_bytes))?;
        Some(Layout {
            lines,
            counts,
            signatures,
            records,
            set_offsets,
            set_hashes,
            lengths,
            id_offsets,
            ids,
            checksum,
        })
    }
}

/// A temporary file next to the target, removed when dropped.
struct Spool {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl Spool {
    fn create(target: &Path, tag: &str) -> Result<Self> {
        let path = temp_path(target, tag);
        let file = File::create(&path).map_err(|e| io_err(&path, e))?;
        Ok(Spool { path, writer: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.write_all(bytes).map_err(|e| io_err(&self.path, e)),
            None => Ok(()),
        }
    }

    /// Flushes and reopens the spool for reading.
    fn reader(&mut self) -> Result<File> {
        if let Some(w) = self.writer.take() {
            w.into_inner().map_err(|e| io_err(&self.path, e.into_error()))?;
        }
        File::open(&self.path).map_err(|e| io_err(&self.path, e))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A hidden temporary beside `target`, named by the toolkit's one rule (`crate::tempname`): the file written
/// before its rename is `.<name>.tmp-<host>-<pid>-<hex>`, a spool `.<name>.<tag>.tmp-<host>-<pid>-<hex>`, so
/// a later run can tell a killed process's leftovers from a live one's.
pub(crate) fn temp_path(target: &Path, tag: &str) -> PathBuf {
    if tag == "tmp" {
        return crate::tempname::temp_path(target);
    }
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    crate::tempname::temp_path(&target.with_file_name(format!("{name}.{tag}")))
}

/// A signed document: its shingle count, band keys and (verify: exact) shingle set.
pub(crate) struct SignedDoc {
    count: u32,
    keys: Vec<u64>,
    set: Vec<u64>,
}

/// Documents signed and not yet added to a writer: their signatures (row-major) and what [`sign_doc`] made.
#[derive(Default)]
pub(crate) struct SignedBatch {
    pub sigs: Vec<u32>,
    pub docs: Vec<SignedDoc>,
}

/// Buffers one thread reuses from one document to the next.
#[derive(Default)]
pub(crate) struct SignScratch {
    buf: SignBuf,
    keys: Vec<u8>,
}

/// Signs `text` into `sig` (`num_perm` values) and computes its band keys (a document without shingles has
/// none) and, when the signer keeps them, its shingle set.
pub(crate) fn sign_doc(signer: &Signer, text: &str, scratch: &mut SignScratch, sig: &mut [u32]) -> SignedDoc {
    let mut set = Vec::new();
    let want_set = signer.shingle_sets.then_some(&mut set);
    let count = signer.hasher.sign(text, &mut scratch.buf, sig, want_set);
    let mut keys = Vec::new();
    if count > 0 {
        signer.bands.keys(sig, &mut scratch.keys, &mut keys);
    }
    SignedDoc { count: u32::try_from(count).unwrap_or(u32::MAX), keys, set }
}

/// Writes the band-key file of one documents file from batches of documents, with memory bounded by a batch:
/// signatures, records and shingle sets go to temporary files next to the target, and [`UnitWriter::finish`]
/// assembles the checked file and renames it into place. Dropped unfinished, it leaves nothing behind.
pub struct UnitWriter {
    signer: Signer,
    path: PathBuf,
    file_index: u32,
    source: String,
    stamp: SourceStamp,
    lines: Vec<u64>,
    counts: Vec<u32>,
    lengths: Vec<u64>,
    id_offsets: Vec<u64>,
    id_spool: Spool,
    set_offsets: Vec<u64>,
    keyed: u64,
    records: u64,
    signatures: Spool,
    record_spool: Spool,
    sets: Option<Spool>,
}

impl UnitWriter {
    /// `stamp`: what identifies the documents file `source` as it is read (taken before reading it).
    pub fn create(signer: Signer, path: &Path, file_index: u32, source: &str, stamp: SourceStamp) -> Result<Self> {
        if source.len() > MAX_SOURCE_LEN as usize {
            return Err(config_err("source", format!("path longer than {MAX_SOURCE_LEN} bytes")));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let sets = if signer.shingle_sets { Some(Spool::create(path, "sets")?) } else { None };
        Ok(UnitWriter {
            path: path.to_path_buf(),
            file_index,
            source: source.to_string(),
            stamp,
            lines: Vec::new(),
            counts: Vec::new(),
            lengths: Vec::new(),
            id_offsets: vec![0],
            id_spool: Spool::create(path, "ids")?,
            set_offsets: vec![0],
            keyed: 0,
            records: 0,
            signatures: Spool::create(path, "sigs")?,
            record_spool: Spool::create(path, "keys")?,
            sets,
            signer,
        })
    }

    pub fn documents(&self) -> u64 {
        self.lines.len() as u64
    }

    pub(crate) fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Adds documents: their 1-based line numbers (increasing across calls), the texts to sign, their ids and
    /// the lengths in code points of their `text` fields (the spans of their attributes; not necessarily the
    /// texts signed). Signatures are computed in parallel on the current rayon pool; the file does not depend
    /// on the thread count or on how the documents were cut into batches.
    pub fn add<S: AsRef<str> + Sync, I: AsRef<str>>(
        &mut self,
        lines: &[u64],
        texts: &[S],
        ids: &[I],
        lengths: &[u64],
    ) -> Result<()> {
        if texts.len() != lines.len() {
            return Err(config_err(
                "lines",
                format!("{} line numbers but {} texts: one each per document", lines.len(), texts.len()),
            ));
        }
        let n = self.signer.hasher.num_perm();
        let mut sigs = vec![0u32; texts.len() * n];
        let signer = &self.signer;
        let docs: Vec<SignedDoc> = sigs
            .par_chunks_mut(n)
            .zip(texts.par_iter())
            .map_init(SignScratch::default, |scratch, (sig, text)| sign_doc(signer, text.as_ref(), scratch, sig))
            .collect();
        self.commit(lines, ids, lengths, SignedBatch { sigs, docs })
    }

    /// Adds documents signed by [`sign_doc`] (`batch`, in document order): their line numbers (increasing across
    /// calls), ids and `text` lengths, as [`UnitWriter::add`].
    pub(crate) fn commit<I: AsRef<str>>(
        &mut self,
        lines: &[u64],
        ids: &[I],
        lengths: &[u64],
        batch: SignedBatch,
    ) -> Result<()> {
        let SignedBatch { sigs, docs } = batch;
        if docs.len() != lines.len() || ids.len() != lines.len() || lengths.len() != lines.len() {
            return Err(config_err(
                "lines",
                format!(
                    "{} line numbers, {} texts, {} ids and {} lengths: one each per document",
                    lines.len(),
                    docs.len(),
                    ids.len(),
                    lengths.len()
                ),
            ));
        }
        let mut last = self.lines.last().copied().unwrap_or(0);
        for &line in lines {
            if line <= last {
                return Err(config_err("lines", format!("line {line} after line {last}: lines must increase")));
            }
            last = line;
        }
        if self.lines.len() + lines.len() > u32::MAX as usize {
            return Err(config_err("documents", "more than 2^32 - 1 documents in one file"));
        }
        let mut bytes = Vec::with_capacity(sigs.len() * 4);
        for v in &sigs {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.signatures.write(&bytes)?;
        bytes.clear();
        for (i, doc) in docs.iter().enumerate() {
            let local = (self.lines.len() + i) as u32;
            for key in &doc.keys {
                bytes.extend_from_slice(&key.to_le_bytes());
                bytes.extend_from_slice(&local.to_le_bytes());
            }
            self.records += doc.keys.len() as u64;
            self.keyed += u64::from(doc.count > 0);
        }
        self.record_spool.write(&bytes)?;
        if let Some(spool) = self.sets.as_mut() {
            let mut offset = self.set_offsets.last().copied().unwrap_or(0);
            for doc in &docs {
                bytes.clear();
                for h in &doc.set {
                    bytes.extend_from_slice(&h.to_le_bytes());
                }
                spool.write(&bytes)?;
                offset += doc.set.len() as u64;
                self.set_offsets.push(offset);
            }
        }
        bytes.clear();
        let mut offset = self.id_offsets.last().copied().unwrap_or(0);
        for id in ids {
            bytes.extend_from_slice(id.as_ref().as_bytes());
            offset += id.as_ref().len() as u64;
            self.id_offsets.push(offset);
        }
        self.id_spool.write(&bytes)?;
        self.lengths.extend_from_slice(lengths);
        self.lines.extend_from_slice(lines);
        self.counts.extend(docs.iter().map(|d| d.count));
        Ok(())
    }

    /// Writes the file (`lines_read`: every line of the documents file, `bad_lines`: those skipped,
    /// `bytes_read`: their decompressed bytes) and renames it into place; returns its header.
    pub fn finish(mut self, lines_read: u64, bad_lines: u64, bytes_read: u64) -> Result<UnitHeader> {
        let header = UnitHeader {
            fingerprint: self.signer.fingerprint,
            file_index: self.file_index,
            num_perm: self.signer.hasher.num_perm() as u32,
            bands: self.signer.bands.bands(),
            rows: self.signer.bands.rows(),
            documents: self.lines.len() as u64,
            lines: lines_read,
            bad_lines,
            keyed: self.keyed,
            records: self.records,
            set_hashes: self.set_offsets.last().copied().unwrap_or(0),
            shingle_sets: self.sets.is_some(),
            source: self.source.clone(),
            source_stamp: self.stamp,
            id_bytes: self.id_offsets.last().copied().unwrap_or(0),
            bytes_read,
        };
        let temp = temp_path(&self.path, "tmp");
        let result = self
            .assemble(&header, &temp)
            .and_then(|()| fs::rename(&temp, &self.path).map_err(|e| io_err(&self.path, e)));
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map(|()| header)
    }

    fn assemble(&mut self, header: &UnitHeader, temp: &Path) -> Result<()> {
        let file = File::create(temp).map_err(|e| io_err(temp, e))?;
        let mut out = HashingWriter { inner: BufWriter::with_capacity(1 << 20, file), hasher: Xxh3Default::new() };
        let path = self.path.clone();
        let io = |e| io_err(&path, e);
        out.write_padded(&header.encode()).map_err(io)?;
        let mut bytes: Vec<u8> = self.lines.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.write_padded(&bytes).map_err(io)?;
        bytes = self.counts.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.write_padded(&bytes).map_err(io)?;
        let sig_len = header.documents * header.num_perm as u64 * 4;
        out.copy_padded(&mut self.signatures.reader()?, sig_len).map_err(io)?;
        out.copy_padded(&mut self.record_spool.reader()?, header.records * RECORD_LEN).map_err(io)?;
        if let Some(spool) = self.sets.as_mut() {
            bytes = self.set_offsets.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.write_padded(&bytes).map_err(io)?;
            out.copy_padded(&mut spool.reader()?, header.set_hashes * 8).map_err(io)?;
        }
        bytes = self.lengths.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.write_padded(&bytes).map_err(io)?;
        bytes = self.id_offsets.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.write_padded(&bytes).map_err(io)?;
        out.copy_padded(&mut self.id_spool.reader()?, header.id_bytes).map_err(io)?;
        let checksum = out.hasher.digest();
        let mut inner = out.inner;
        inner.write_all(&checksum.to_le_bytes()).map_err(io)?;
        inner.into_inner().map_err(|e| io(e.into_error()))?;
        Ok(())
    }
}

struct HashingWriter {
    inner: BufWriter<File>,
    hasher: Xxh3Default,
}

impl HashingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)
    }

    fn write_padded(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write(bytes)?;
        let pad = (pad8(bytes.len() as u64) - bytes.len() as u64) as usize;
        self.write(&[0u8; 8][..pad])
    }

    /// Copies exactly `len` bytes of `from`, then pads.
    fn copy_padded(&mut self, from: &mut File, len: u64) -> std::io::Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = (left.min(buf.len() as u64)) as usize;
            from.read_exact(&mut buf[..n])?;
            self.write(&buf[..n])?;
            left -= n as u64;
        }
        let pad = (pad8(len) - len) as usize;
        self.write(&[0u8; 8][..pad])
    }
}

/// A band-key file opened for reading: header checked, size and checksum verified.
#[derive(Debug)]
pub struct UnitFile {
    pub path: PathBuf,
    pub header: UnitHeader,
    pub(crate) layout: Layout,
}

impl UnitFile {
    /// Opens and fully verifies a band-key file; with `fingerprint`, also checks it was made with those
    /// parameters.
    pub fn open(path: &Path, fingerprint: Option<u64>) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| io_err(path, e))?;
        let size = file.metadata().map_err(|e| io_err(path, e))?.len();
        let mut head = [0u8; HEADER_LEN as usize];
        if size < HEADER_LEN + 8 {
            return Err(format_err(path, "not a MinHash band-key file (too short)"));
        }
        file.read_exact(&mut head).map_err(|e| io_err(path, e))?;
        if head[..8] != MAGIC {
            return Err(format_err(path, "not a MinHash band-key file (bad magic bytes)"));
        }
        let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if version != VERSION {
            return Err(format_err(
                path,
                format!("unsupported band-key file version {version} (this build reads version {VERSION})"),
            ));
        }
        let source_len = u32::from_le_bytes([head[88], head[89], head[90], head[91]]);
        if source_len > MAX_SOURCE_LEN || HEADER_LEN + source_len as u64 > size {
            return Err(format_err(path, "damaged band-key file (source path length out of range)"));
        }
        let mut source = vec![0u8; source_len as usize];
        file.read_exact(&mut source).map_err(|e| io_err(path, e))?;
        let header = UnitHeader::decode(path, &head, &source)?;
        let layout = header.layout().ok_or_else(|| format_err(path, "damaged band-key file (counts overflow)"))?;
        if layout.checksum + 8 != size {
            return Err(format_err(
                path,
                format!("damaged band-key file: {size} bytes, the header announces {}", layout.checksum + 8),
            ));
        }
        if header.bands == 0 || header.rows == 0 || header.bands as u64 * header.rows as u64 > header.num_perm as u64 {
            return Err(format_err(path, "damaged band-key file (bands x rows do not fit num_perm)"));
        }
        if header.keyed.checked_mul(header.bands as u64) != Some(header.records) || header.keyed > header.documents {
            return Err(format_err(path, "damaged band-key file (record count does not match the documents)"));
        }
        file.seek(SeekFrom::Start(0)).map_err(|e| io_err(path, e))?;
        let mut hasher = Xxh3Default::new();
        let mut reader = BufReader::with_capacity(1 << 20, file).take(layout.checksum);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(|e| io_err(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let mut stored = [0u8; 8];
        reader.into_inner().read_exact(&mut stored).map_err(|e| io_err(path, e))?;
        if hasher.digest() != u64::from_le_bytes(stored) {
            return Err(format_err(path, "damaged band-key file (checksum mismatch)"));
        }
        if let Some(expected) = fingerprint {
            if header.fingerprint != expected {
                return Err(format_err(
                    path,
                    "band-key file made with other MinHash parameters (num_perm, seed, ngram, tokenizer, hash, \
                     scheme, bands or rows differ); delete it to recompute it",
                ));
            }
        }
        Ok(UnitFile { path: path.to_path_buf(), header, layout })
    }

    pub fn handle(&self) -> Result<File> {
        File::open(&self.path).map_err(|e| io_err(&self.path, e))
    }

    fn read_section(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; len as usize];
        self.handle()?.read_exact_at(&mut bytes, offset).map_err(|e| io_err(&self.path, e))?;
        Ok(bytes)
    }

    /// Line numbers of the documents.
    pub fn lines(&self) -> Result<Vec<u64>> {
        let bytes = self.read_section(self.layout.lines, self.header.documents * 8)?;
        let lines: Vec<u64> = bytes.chunks_exact(8).map(le_u64).collect();
        if lines.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format_err(&self.path, "damaged band-key file (line numbers do not increase)"));
        }
        Ok(lines)
    }

    /// Shingle counts of the documents.
    pub fn shingle_counts(&self) -> Result<Vec<u32>> {
        let bytes = self.read_section(self.layout.counts, self.header.documents * 4)?;
        Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Lengths in code points of the documents' `text` fields.
    pub fn text_lengths(&self) -> Result<Vec<u64>> {
        let bytes = self.read_section(self.layout.lengths, self.header.documents * 8)?;
        Ok(bytes.chunks_exact(8).map(le_u64).collect())
    }

    /// The document ids, in document order.
    pub fn ids(&self) -> Result<Vec<String>> {
        let damaged = || format_err(&self.path, "damaged band-key file (document id offsets out of range)");
        let offsets = self.read_section(self.layout.id_offsets, (self.header.documents + 1) * 8)?;
        let offsets: Vec<u64> = offsets.chunks_exact(8).map(le_u64).collect();
        if offsets.first() != Some(&0) || offsets.last() != Some(&self.header.id_bytes) {
            return Err(damaged());
        }
        let bytes = self.read_section(self.layout.ids, self.header.id_bytes)?;
        let mut ids = Vec::with_capacity(self.header.documents as usize);
        for w in offsets.windows(2) {
            let id = bytes.get(w[0] as usize..w[1] as usize).ok_or_else(damaged)?;
            let id = std::str::from_utf8(id)
                .map_err(|_| format_err(&self.path, "damaged band-key file (a document id is not UTF-8)"))?;
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    /// Streams the band-key records `(key, document index)` in file order through a buffer of about
    /// `buffer_bytes`.
    pub fn for_each_record(&self, buffer_bytes: usize, mut f: impl FnMut(u64, u32)) -> Result<()> {
        let mut file = self.handle()?;
        file.seek(SeekFrom::Start(self.layout.records)).map_err(|e| io_err(&self.path, e))?;
        let per = (buffer_bytes / RECORD_LEN as usize).max(1);
        let mut buf = vec![0u8; per * RECORD_LEN as usize];
        let mut left = self.header.records;
        while left > 0 {
            let n = left.min(per as u64) as usize;
            let bytes = &mut buf[..n * RECORD_LEN as usize];
            file.read_exact(bytes).map_err(|e| io_err(&self.path, e))?;
            for rec in bytes.chunks_exact(RECORD_LEN as usize) {
                let local = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]);
                if local as u64 >= self.header.documents {
                    return Err(format_err(&self.path, "damaged band-key file (record of a missing document)"));
                }
                f(le_u64(&rec[..8]), local);
            }
            left -= n as u64;
        }
        Ok(())
    }

    /// The line number of document `local` (read from `handle`, an open handle of this file).
    pub fn line_at(&self, handle: &File, local: u32) -> Result<u64> {
        let mut bytes = [0u8; 8];
        handle.read_exact_at(&mut bytes, self.layout.lines + local as u64 * 8).map_err(|e| io_err(&self.path, e))?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// The signature of document `local` (read from `handle`, an open handle of this file).
    pub fn signature_at(&self, handle: &File, local: u32, out: &mut [u32]) -> Result<()> {
        let n = self.header.num_perm as usize;
        let mut bytes = vec![0u8; n * 4];
        let offset = self.layout.signatures + local as u64 * n as u64 * 4;
        handle.read_exact_at(&mut bytes, offset).map_err(|e| io_err(&self.path, e))?;
        for (v, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }

    /// The sorted shingle hashes of document `local` (needs shingle sets).
    pub fn set_at(&self, handle: &File, local: u32, out: &mut Vec<u64>) -> Result<()> {
        if !self.header.shingle_sets {
            return Err(format_err(&self.path, "band-key file has no shingle sets (exact verification needs them)"));
        }
        let mut range = [0u8; 16];
        handle
            .read_exact_at(&mut range, self.layout.set_offsets + local as u64 * 8)
            .map_err(|e| io_err(&self.path, e))?;
        let (start, end) = (le_u64(&range[..8]), le_u64(&range[8..]));
        if start > end || end > self.header.set_hashes {
            return Err(format_err(&self.path, "damaged band-key file (shingle set offsets out of range)"));
        }
        let mut bytes = vec![0u8; ((end - start) * 8) as usize];
        handle.read_exact_at(&mut bytes, self.layout.set_hashes + start * 8).map_err(|e| io_err(&self.path, e))?;
        out.clear();
        out.extend(bytes.chunks_exact(8).map(le_u64));
        Ok(())
    }
}

fn le_u64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[..8]);
    u64::from_le_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minhash::config::tests::test_config;
    use crate::minhash::signature::exact_jaccard;

    fn write(dir: &Path, texts: &[&str], batch: usize) -> PathBuf {
        let path = dir.join(format!("unit-{batch}.mhk"));
        let signer = test_config(16, 4, 4).build().unwrap();
        let stamp = SourceStamp { size: 1234, version: 99 };
        let mut w = UnitWriter::create(signer, &path, 3, "documents/a.jsonl.gz", stamp).unwrap();
        let lines: Vec<u64> = (0..texts.len() as u64).map(|i| 2 * i + 1).collect();
        let ids: Vec<String> = (0..texts.len()).map(|i| format!("d\u{e9}{i}")).collect();
        let lengths: Vec<u64> = texts.iter().map(|t| t.chars().count() as u64 + 1).collect();
        for (((l, t), i), n) in
            lines.chunks(batch).zip(texts.chunks(batch)).zip(ids.chunks(batch)).zip(lengths.chunks(batch))
        {
            w.add(l, t, i, n).unwrap();
        }
        let header = w.finish(2 * texts.len() as u64, 1, 777).unwrap();
        assert_eq!(header.documents, texts.len() as u64);
        path
    }

    const TEXTS: [&str; 5] = [
        "the cat sat on the mat today",
        "",
        "the cat sat on the mat yesterday",
        "short",
        "something else entirely different here",
    ];

    #[test]
    fn round_trip_and_independent_of_batches() {
        let dir = tempfile::tempdir().unwrap();
        let one = write(dir.path(), &TEXTS, 5);
        let two = write(dir.path(), &TEXTS, 2);
        assert_eq!(fs::read(&one).unwrap(), fs::read(&two).unwrap());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "temporary files left behind: {names:?}");
        let unit = UnitFile::open(&one, Some(test_config(16, 4, 4).build().unwrap().fingerprint)).unwrap();
        let h = &unit.header;
        assert_eq!((h.file_index, h.documents, h.keyed, h.records, h.lines), (3, 5, 4, 16, 10));
        assert_eq!(h.source, "documents/a.jsonl.gz");
        assert_eq!((h.source_stamp, h.bytes_read), (SourceStamp { size: 1234, version: 99 }, 777));
        assert_eq!(unit.ids().unwrap(), ["d\u{e9}0", "d\u{e9}1", "d\u{e9}2", "d\u{e9}3", "d\u{e9}4"]);
        assert_eq!(unit.text_lengths().unwrap(), [29, 1, 33, 6, 39]);
        assert_eq!(unit.lines().unwrap(), [1, 3, 5, 7, 9]);
        assert_eq!(unit.shingle_counts().unwrap(), [5, 0, 5, 1, 3]);
        let mut records = Vec::new();
        unit.for_each_record(24, |k, d| records.push((k, d))).unwrap();
        assert_eq!(records.iter().map(|r| r.1).collect::<Vec<_>>(), [0, 0, 0, 0, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]);
        let handle = unit.handle().unwrap();
        let mut sig = vec![0u32; 16];
        unit.signature_at(&handle, 1, &mut sig).unwrap();
        assert!(sig.iter().all(|&v| v == u32::MAX));
        let (mut x, mut y) = (Vec::new(), Vec::new());
        unit.set_at(&handle, 0, &mut x).unwrap();
        unit.set_at(&handle, 2, &mut y).unwrap();
        assert!((exact_jaccard(&x, &y) - 4.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn damaged_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &TEXTS, 5);
        let good = fs::read(&path).unwrap();
        let expect = |bytes: &[u8], fingerprint: Option<u64>, want: &str| {
            let p = dir.path().join("bad.mhk");
            fs::write(&p, bytes).unwrap();
            let err = UnitFile::open(&p, fingerprint).unwrap_err().to_string();
            assert!(err.contains(want), "{err} does not say {want}");
            assert!(err.contains("bad.mhk"), "{err} does not name the file");
        };
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0x40;
        expect(&flipped, None, "checksum mismatch");
        expect(&good[..good.len() - 3], None, "header announces");
        expect(&good[..20], None, "too short");
        let mut magic = good.clone();
        magic[0] = b'X';
        expect(&magic, None, "bad magic");
        let mut version = good.clone();
        version[8] = 9;
        expect(&version, None, "version 9");
        let mut counts = good.clone();
        counts[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        expect(&counts, None, "damaged");
        expect(&good, Some(12345), "other MinHash parameters");
        assert!(UnitFile::open(&path, None).is_ok());
    }

    #[test]
    fn lines_must_increase() {
        let dir = tempfile::tempdir().unwrap();
        let signer = test_config(16, 4, 4).build().unwrap();
        let mut w = UnitWriter::create(signer, &dir.path().join("x.mhk"), 0, "x", SourceStamp::default()).unwrap();
        w.add(&[1, 2], &["a", "b"], &["1", "2"], &[1, 1]).unwrap();
        assert!(w.add(&[2], &["c"], &["3"], &[1]).is_err());
        assert!(w.add(&[5], &["c", "d"], &["3", "4"], &[1, 1]).is_err());
        assert!(w.add(&[5], &["c"], &["3", "4"], &[1]).is_err());
        assert!(w.add(&[5], &["c"], &["3"], &[]).is_err());
    }
}
