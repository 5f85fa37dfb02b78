//! Dedupe keys for a distributed run (Spark): the keys of every document of a file, exactly as the local
//! deduper ([`crate::dedupe::Deduper`]) looks them up, and the attribute file it would write once the
//! duplicate keys are known.
//!
//! The local deduper walks keys in a stable order (file, line, then key within the document) and asks a
//! Bloom filter "seen before?". A distributed run answers the same question exactly: every key occurrence
//! gets a position (file index, line, slot), occurrences are grouped by key hash, and every occurrence but
//! the earliest is a duplicate. [`KeyMaker::scan`] parses a file, whose [`FileScan`] gives the (hash,
//! position) pairs, and [`KeyMaker::write_attributes`] turns the duplicate positions of a file into its
//! attributes file.
//!
//! Slots follow the order in which the local commit stage touches the filter: documents mode one slot;
//! paragraphs mode one per looked-up paragraph; n-gram mode one per n-gram looked up, and for a short
//! paragraph its whole text then (with exactly n words) its one n-gram, which is only inserted. Parsing and
//! filtering (JSONPath, id and text checks, paragraph splitting, `skip_empty` / `min_length` / `min_words`)
//! use the same core functions and rules as the local pipeline; the output lines are byte-identical.

use std::collections::HashSet;

mod skeleton;

use crate::dedupe::config::{DedupeConfig, Mode};
use crate::dedupe::files::{decompress_into, write_atomic};
use crate::dedupe::format::{push_attribute_line, quoted_attribute};
use crate::dedupe::keys::{KeyHasher, KeyPlan, Units};
use crate::dedupe::lines::{read_line, LineKey};
use crate::dedupe::text;
use crate::dedupe::{DedupeError, Result};

/// Seed of the 64-bit key hashes (collisions are far rarer than a Bloom filter's false positives).
pub const KEY_SEED: u64 = 0x0D01_DEDE_5A4B;
/// Bits of a packed position: file index (high), 1-based line, slot within the document (low).
pub const LINE_BITS: u32 = 40;
pub const SLOT_BITS: u32 = 24;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const LINE_MASK: u64 = (1 << LINE_BITS) - 1;

/// One sortable integer for a key occurrence (file index above 64 bits); `None` when line or slot do not fit.
pub fn pack_position(file_index: u64, line: u64, slot: u64) -> Option<u128> {
    if slot > SLOT_MASK || line > LINE_MASK {
        return None;
    }
    Some((u128::from(file_index) << (LINE_BITS + SLOT_BITS)) | u128::from((line << SLOT_BITS) | slot))
}

/// (file index, line, slot) of a packed position.
pub fn unpack_position(pos: u128) -> (u64, u64, u64) {
    let low = pos as u64;
    ((pos >> (LINE_BITS + SLOT_BITS)) as u64, (low >> SLOT_BITS) & LINE_MASK, low & SLOT_MASK)
}

/// Bytes of one (key hash, position) record in a shuffle blob: u64 then u128, little-endian.
pub const KEY_RECORD: usize = 24;
/// Bytes of one position in a duplicates blob (u128, little-endian).
pub const POSITION_RECORD: usize = 16;

/// Groups (hash, position) pairs by owner partition (`hash % partitions`) into one blob per partition, so a
/// distributed run shuffles a few large byte strings instead of millions of small records.
pub fn blobs_by_partition(keys: &[(u64, u128)], partitions: u64) -> Vec<(u64, Vec<u8>)> {
    let partitions = partitions.max(1);
    let mut blobs: std::collections::BTreeMap<u64, Vec<u8>> = std::collections::BTreeMap::new();
    // hashes spread evenly: about keys / partitions records each (+ slack), so blobs rarely reallocate
    let expected = (keys.len() as u64 / partitions + 16 + keys.len() as u64 / partitions / 16) as usize * KEY_RECORD;
    for &(key, pos) in keys {
        let blob = blobs.entry(key % partitions).or_insert_with(|| Vec::with_capacity(expected));
        blob.extend_from_slice(&key.to_le_bytes());
        blob.extend_from_slice(&pos.to_le_bytes());
    }
    blobs.into_iter().collect()
}

/// All (hash, position) records of one key slice -> the positions of every occurrence but the earliest of
/// each key, grouped by file index (one blob of positions per file, in no particular order).
pub fn find_repeats(blobs: &[&[u8]]) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut records: Vec<(u64, u128)> = Vec::with_capacity(blobs.iter().map(|b| b.len() / KEY_RECORD).sum());
    for blob in blobs {
        if !blob.len().is_multiple_of(KEY_RECORD) {
            return Err(DedupeError::Config(format!("corrupt key blob of {} bytes", blob.len())));
        }
        for rec in blob.chunks_exact(KEY_RECORD) {
            let key = u64::from_le_bytes(rec[..8].try_into().unwrap_or_default());
            let pos = u128::from_le_bytes(rec[8..].try_into().unwrap_or_default());
            records.push((key, pos));
        }
    }
    records.sort_unstable();
    let mut out: std::collections::BTreeMap<u64, Vec<u8>> = std::collections::BTreeMap::new();
    for (i, &(key, pos)) in records.iter().enumerate() {
        // Sorted by (key, position): the first record of a key is its earliest occurrence.
        if i > 0 && records[i - 1].0 == key {
            out.entry(unpack_position(pos).0).or_default().extend_from_slice(&pos.to_le_bytes());
        }
    }
    Ok(out.into_iter().collect())
}

/// The positions of a duplicates blob (concatenated blobs of `find_repeats`).
pub fn decode_positions(blob: &[u8]) -> Result<Vec<u128>> {
    if !blob.len().is_multiple_of(POSITION_RECORD) {
        return Err(DedupeError::Config(format!("corrupt positions blob of {} bytes", blob.len())));
    }
    Ok(blob.chunks_exact(POSITION_RECORD).map(|c| u128::from_le_bytes(c.try_into().unwrap_or_default())).collect())
}

fn hash(key: &[u8]) -> u64 {
    crate::xxh3_64(key, KEY_SEED)
}

/// The keys of a distributed run: 64-bit hashes of the key text (n-grams: of their words, tagged and joined).
#[derive(Default)]
struct HashKeys<'t> {
    words: Vec<&'t str>,
    buf: Vec<u8>,
}

impl<'t> KeyHasher<'t> for HashKeys<'t> {
    type Key = u64;

    fn text(&mut self, text: &'t str) -> u64 {
        hash(text.as_bytes())
    }

    fn words(&mut self, text: &'t str) -> usize {
        self.words.clear();
        self.words.extend(text::words(text));
        self.words.len()
    }

    fn ngram(&mut self, first: usize, n: usize) -> u64 {
        hash(text::ngram_key(&self.words[first..first + n], &mut self.buf))
    }
}

#[derive(Debug)]
struct DocKeys {
    line: u64,
    /// The `id` as JSON text, written unchanged.
    id: String,
    units: Units,
    /// Number of keys (slots) of the document; their hashes are in [`FileScan::keys`], in slot order.
    nkeys: u64,
}

/// A parsed documents file: what its attributes file needs (ids, spans, slots; no text) and the hashes of
/// all its keys in (line, slot) order. [`FileScan::encode`] packs the first part into a compact "skeleton"
/// so a distributed run can write the attributes later without reading and parsing the file again.
#[derive(Debug)]
pub struct FileScan {
    docs: Vec<DocKeys>,
    keys: Vec<u64>,
    bad_lines: u64,
    /// Decompressed size of the file.
    bytes: u64,
}

/// Counts for one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyStats {
    pub documents: u64,
    pub documents_marked: u64,
    pub keys: u64,
    pub keys_marked: u64,
    pub bad_lines: u64,
    /// Decompressed bytes of the file.
    pub bytes: u64,
}

/// Computes keys and writes attributes for one dedupe configuration (the `dedupe` section as JSON).
pub struct KeyMaker {
    mode: Mode,
    plan: KeyPlan,
    skip_bad_lines: bool,
    /// Decompression buffer kept between files (up to [`KEEP_BUFFER`] bytes): a fresh buffer per file
    /// costs a page fault per 4 KiB, as much as a third of the inflate time.
    buffer: std::sync::Mutex<Vec<u8>>,
    /// The same for the file's bytes as stored ([`KeyMaker::scan_file`]).
    raw_buffer: std::sync::Mutex<Vec<u8>>,
}

/// Largest decompression buffer a [`KeyMaker`] keeps for the next file (the reserve for a file is at most
/// 1 GiB, see `decompress_into`, so files of usual shard sizes all reuse it).
const KEEP_BUFFER: usize = 1 << 30;

impl KeyMaker {
    pub fn new(config: DedupeConfig, skip_bad_lines: bool) -> Result<Self> {
        let mode = config.mode()?;
        if config.num_partitions > 1 && !config.file_partition {
            return Err(DedupeError::Config(
                "dedupe.num_partitions / partition_index select a key slice: not used by a distributed run, \
                 which partitions keys itself"
                    .to_string(),
            ));
        }
        Ok(KeyMaker {
            plan: KeyPlan::new(&config, &mode),
            mode,
            skip_bad_lines,
            buffer: std::sync::Mutex::new(Vec::new()),
            raw_buffer: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Parses a file: `raw` is its content as stored (compressed by `path`'s extension) when `compressed`,
    /// else already decompressed.
    pub fn scan(&self, path: &str, raw: &[u8], compressed: bool) -> Result<FileScan> {
        if !compressed {
            return self.scan_text(path, raw);
        }
        let mut data = take_buffer(&self.buffer);
        decompress_into(path, raw, &mut data)?;
        let scan = self.scan_text(path, &data);
        keep_buffer(&self.buffer, data);
        scan
    }

    /// Parses the local file `path` (compressed by its extension), read into a buffer kept between files.
    pub fn scan_file(&self, path: &str) -> Result<FileScan> {
        let mut raw = take_buffer(&self.raw_buffer);
        raw.clear();
        std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut raw))
            .map_err(|e| crate::dedupe::io_err(path, e))?;
        let scan = self.scan(path, &raw, true);
        keep_buffer(&self.raw_buffer, raw);
        scan
    }

    fn scan_text(&self, path: &str, data: &[u8]) -> Result<FileScan> {
        let mut keys = Vec::new();
        let (docs, bad_lines) = self.parse(path, data, &mut keys)?;
        Ok(FileScan { docs, keys, bad_lines, bytes: data.len() as u64 })
    }

    /// Writes the attributes file of a scanned file (or a decoded skeleton) to `output` (atomically,
    /// compressed by its extension) given the packed positions of its duplicate key occurrences (any
    /// order; the file index part is ignored).
    pub fn write_attributes(&self, scan: &FileScan, duplicates: &[u128], output: &str) -> Result<KeyStats> {
        let (body, stats) = self.attributes_of(scan, duplicates);
        write_atomic(output, &body)?;
        Ok(stats)
    }

    /// The attributes file content (uncompressed) of a scanned file, in the local deduper's serialization.
    pub fn attributes_of(&self, scan: &FileScan, duplicates: &[u128]) -> (Vec<u8>, KeyStats) {
        let dup: HashSet<(u64, u64)> = duplicates
            .iter()
            .map(|&p| {
                let (_f, line, slot) = unpack_position(p);
                (line, slot)
            })
            .collect();
        let attribute = quoted_attribute(self.mode.attribute());
        let mut stats = scan.stats();
        let mut body = Vec::with_capacity(scan.docs.len() * 48);
        for doc in &scan.docs {
            let mut slot = 0u64;
            let judged = self.plan.judge(&doc.units, 0, |need| {
                slot += 1;
                need && dup.contains(&(doc.line, slot - 1))
            });
            stats.keys_marked += judged.marked();
            stats.documents_marked += u64::from(judged.marked() > 0);
            push_attribute_line(&mut body, &doc.id, &attribute, judged.marks.as_deref());
        }
        (body, stats)
    }

    // ------------------------------------------------------------------------------------------------------
    // Parsing: the same line rules as the local pipeline (blank lines ignored, 1-based line numbers).
    // ------------------------------------------------------------------------------------------------------

    fn parse(&self, path: &str, data: &[u8], keys: &mut Vec<u64>) -> Result<(Vec<DocKeys>, u64)> {
        let mut docs = Vec::new();
        let mut bad_lines = 0u64;
        let mut start = 0usize;
        let mut lineno = 0u64;
        for end in memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len())) {
            if start > data.len() {
                break;
            }
            lineno += 1;
            let line = &data[start..end];
            start = end + 1;
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let before = keys.len();
            match self.parse_line(path, lineno, line, keys) {
                Ok(doc) => docs.push(doc),
                Err(DedupeError::BadLine { .. }) if self.skip_bad_lines => {
                    keys.truncate(before);
                    bad_lines += 1
                }
                Err(e) => return Err(e),
            }
        }
        Ok((docs, bad_lines))
    }

    fn parse_line(&self, path: &str, lineno: u64, line: &[u8], keys: &mut Vec<u64>) -> Result<DocKeys> {
        let before = keys.len();
        let LineKey { id, key, .. } = read_line(&self.mode, path, lineno, line)?;
        let units = self.plan.units(&key, &mut HashKeys::default(), keys);
        Ok(DocKeys { line: lineno, id, units, nkeys: (keys.len() - before) as u64 })
    }
}

// A poisoned lock only means another scan panicked; buffers are cleared before use anyway.
fn take_buffer(slot: &std::sync::Mutex<Vec<u8>>) -> Vec<u8> {
    std::mem::take(&mut *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

fn keep_buffer(slot: &std::sync::Mutex<Vec<u8>>, buffer: Vec<u8>) {
    if buffer.capacity() <= KEEP_BUFFER {
        *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = buffer;
    }
}

impl FileScan {
    /// Counts known before duplicates are: documents, keys, bad lines, bytes.
    pub fn stats(&self) -> KeyStats {
        KeyStats {
            documents: self.docs.len() as u64,
            keys: self.docs.iter().map(|d| d.nkeys).sum(),
            bad_lines: self.bad_lines,
            bytes: self.bytes,
            ..KeyStats::default()
        }
    }

    /// (key hash, packed position) of every key occurrence, in (line, slot) order.
    pub fn positions(&self, path: &str, file_index: u64) -> Result<Vec<(u64, u128)>> {
        let mut out = Vec::with_capacity(self.keys.len());
        let mut next = 0usize;
        for doc in &self.docs {
            let n = doc.nkeys as usize;
            for (slot, &key) in self.keys[next..next + n].iter().enumerate() {
                let pos = pack_position(file_index, doc.line, slot as u64).ok_or_else(|| DedupeError::BadLine {
                    path: path.to_string(),
                    line: doc.line,
                    field: "(line)".to_string(),
                    reason: format!("too many keys in one document or lines in one file (slot {slot})"),
                })?;
                out.push((key, pos));
            }
            next += n;
        }
        Ok(out)
    }

    /// The (key hash, position) records grouped into one blob per owner partition ([`blobs_by_partition`]).
    pub fn blobs(&self, path: &str, file_index: u64, partitions: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        Ok(blobs_by_partition(&self.positions(path, file_index)?, partitions))
    }
}

#[cfg(test)]
mod tests;
