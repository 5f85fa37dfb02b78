//! A blocked Bloom filter for deduplication whose answers are stable across builds, machines and thread counts.
//!
//! The bits live in 64-byte blocks of `AtomicU64` words so one filter can be shared by many threads (`&self`
//! everywhere, insertion is a `fetch_or`). Batch calls that mix lookups and inserts run their bit operations in
//! input order, so their results do not depend on the thread count.
//!
//! # Layout and hashing (frozen: part of the file format)
//!
//! All `k` bits of a key lie in one 512-bit block (one cache line), so a lookup costs one cache miss instead of
//! `k`. For a key, `h = xxh3_128(key, seed1)`, `lo` = its low 64 bits, `hi` = its high 64 bits XOR `seed2`.
//! With `B = num_bits / 512` blocks:
//!
//! ```text
//! block   = (lo * B) >> 64                      (128-bit product: a uniform block index in 0..B)
//! x_0     = hi;   x_{t+1} = x_t * 6364136223846793005 + 1442695040888963407   (mod 2^64)
//! bits    = the first k distinct values of x_t >> 55 for t = 1, 2, ...   (bit positions 0..512 in the block)
//! ```
//!
//! So the `k` positions are distinct and depend on all 64 bits of `hi` (two keys in one block share all
//! their bits only if their `hi` are equal). Bit `j` of a block is bit `j % 64` (least significant
//! first) of the block's word `j / 64`; blocks follow each other in the file. Both seeds are written to the
//! file, so a filter keeps its answers even if [`derive_seeds`] ever changes.
//!
//! A blocked filter needs somewhat more bits than the textbook filter for the same false-positive rate,
//! because blocks fill unevenly; [`BloomFilter::optimal_params`] sizes it with the blocked formula
//! ([`expected_false_positive_rate`]) so the configured rate holds.
//!
//! # File format, version 3 (all integers little-endian)
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

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use rayon::prelude::*;
use xxhash_rust::xxh3::{xxh3_128_with_seed, Xxh3Default};

/// First eight bytes of every filter file.
pub const MAGIC: [u8; 8] = *b"DOLMABLF";
/// The file format version this build writes and reads.
pub const VERSION: u32 = 3;
/// Bits per block: all bits of one key lie in one block (one 64-byte cache line).
pub const BLOCK_BITS: u64 = 512;
/// Bytes per block; filter sizes are rounded up to whole blocks.
pub const BLOCK_BYTES: usize = 64;
const BLOCK_WORDS: usize = 8;
/// Upper bound on the number of hash functions: more costs time and barely lowers the error rate.
pub const MAX_HASHES: u32 = 32;
/// Size of the fixed file header in bytes.
pub const HEADER_LEN: usize = 56;
/// Size of the checksum that ends the file.
pub const TRAILER_LEN: usize = 8;
/// Largest manifest accepted (4 GiB): far more than any input list, and a bound for a corrupt length field.
pub const MAX_MANIFEST_LEN: u64 = 1 << 32;
/// Largest filter accepted (64 PiB); keeps every bit index and byte count far from overflow.
pub const MAX_SIZE_IN_BYTES: u64 = 1 << 56;

/// Odd constant (2^64 / golden ratio) mixed into the user seed to get the second hash seed.
const SEED2_MIX: u64 = 0x9E37_79B9_7F4A_7C15;
/// Below this many keys per rayon task, the scheduling overhead outweighs the work.
const PAR_MIN_LEN: usize = 4096;
/// Words handled per chunk when streaming the bit data to or from a file (1 MiB).
const IO_CHUNK_WORDS: usize = 1 << 17;
const IO_CHUNK_BLOCKS: usize = IO_CHUNK_WORDS / BLOCK_WORDS;

/// One cache line of bits.
#[repr(C, align(64))]
#[derive(Default)]
struct Block([AtomicU64; BLOCK_WORDS]);

pub type Result<T> = std::result::Result<T, BloomError>;

/// Everything that can go wrong building, loading or saving a [`BloomFilter`].
#[derive(Debug, thiserror::Error)]
pub enum BloomError {
    /// The operating system refused a read or write (or memory ran out); `path` names the file if any.
    #[error("{}", describe_io(.path.as_deref(), .source))]
    Io { path: Option<PathBuf>, source: io::Error },
    /// The bytes are not a valid filter: bad magic, unsupported version, or corrupt content.
    #[error("{0}")]
    Format(String),
    /// A caller-supplied parameter is out of range.
    #[error("{0}")]
    InvalidParameter(String),
}

fn describe_io(path: Option<&Path>, source: &io::Error) -> String {
    match path {
        Some(path) => format!("{}: {source}", path.display()),
        None => format!("I/O error: {source}"),
    }
}

impl From<io::Error> for BloomError {
    fn from(source: io::Error) -> Self {
        BloomError::Io { path: None, source }
    }
}

impl BloomError {
    /// Attaches the file a load failed on, so the message tells the user which file is bad.
    fn at_path(self, path: &Path) -> Self {
        match self {
            BloomError::Io { path: None, source } => BloomError::Io { path: Some(path.to_path_buf()), source },
            BloomError::Format(msg) => BloomError::Format(format!("{}: {msg}", path.display())),
            other => other,
        }
    }
}

fn invalid(msg: String) -> BloomError {
    BloomError::InvalidParameter(msg)
}

fn corrupt(msg: String) -> BloomError {
    BloomError::Format(format!("corrupt bloom filter file: {msg}"))
}

/// The two recorded hash seeds derived from one user seed: `seed` itself and a SplitMix64-style mix of it.
pub fn derive_seeds(seed: u64) -> (u64, u64) {
    let mut z = seed ^ SEED2_MIX;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (seed, z ^ (z >> 31))
}

/// Whether this process may use rayon's global pool.
///
/// That pool does not survive `fork()`: a forked child (a multiprocessing worker, say) that inherits an
/// initialised pool waits forever on threads that no longer exist. So parallel paths run only in the process
/// that first took them; anywhere else the same work runs sequentially, with identical results.
fn parallel_allowed() -> bool {
    static OWNER: OnceLock<u32> = OnceLock::new();
    let pid = std::process::id();
    *OWNER.get_or_init(|| pid) == pid
}

/// `f(key)` for every key, in parallel where allowed; the output is in input order either way.
fn map_keys<K, T, F>(keys: &[K], f: F) -> Vec<T>
where
    K: AsRef<[u8]> + Sync,
    T: Send,
    F: Fn(&[u8]) -> T + Sync + Send,
{
    if parallel_allowed() {
        keys.par_iter().with_min_len(PAR_MIN_LEN).map(|key| f(key.as_ref())).collect()
    } else {
        keys.iter().map(|key| f(key.as_ref())).collect()
    }
}

/// Where a key's bits are: its block and the seed of its positions inside the block.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    block: usize,
    state: u64,
}

impl Probe {
    /// The index of the block that holds the key's bits (`0..num_blocks`).
    #[inline]
    pub fn block(&self) -> usize {
        self.block
    }
}

const LCG_MUL: u64 = 6_364_136_223_846_793_005;
const LCG_ADD: u64 = 1_442_695_040_888_963_407;

/// `LCG_JUMPS[i]` = `(a, c)` such that the `(i + 1)`-th step of the LCG from `x` is `a * x + c`: the first
/// `MAX_HASHES` states of a probe's sequence computed independently of each other (no dependency chain).
const LCG_JUMPS: [(u64, u64); MAX_HASHES as usize] = {
    let mut jumps = [(0u64, 0u64); MAX_HASHES as usize];
    let (mut a, mut c) = (LCG_MUL, LCG_ADD);
    let mut i = 0;
    while i < MAX_HASHES as usize {
        jumps[i] = (a, c);
        a = a.wrapping_mul(LCG_MUL);
        c = c.wrapping_mul(LCG_MUL).wrapping_add(LCG_ADD);
        i += 1;
    }
    jumps
};

/// Number of blocks for a user-given size in bytes (rounded up to whole blocks).
fn blocks_for_size(size_in_bytes: usize) -> Result<usize> {
    if size_in_bytes == 0 {
        return Err(invalid("size_in_bytes must be positive, got 0".to_string()));
    }
    if size_in_bytes as u64 > MAX_SIZE_IN_BYTES {
        return Err(invalid(format!(
            "size_in_bytes {size_in_bytes} exceeds the maximum of {MAX_SIZE_IN_BYTES} bytes"
        )));
    }
    Ok(size_in_bytes.div_ceil(BLOCK_BYTES))
}

fn check_num_hashes(num_hashes: u32) -> Result<()> {
    if (1..=MAX_HASHES).contains(&num_hashes) {
        Ok(())
    } else {
        Err(invalid(format!("num_hashes must be between 1 and {MAX_HASHES}, got {num_hashes}")))
    }
}

fn check_expected_items(expected_items: u64) -> Result<()> {
    if expected_items == 0 {
        Err(invalid("expected number of items must be positive, got 0".to_string()))
    } else {
        Ok(())
    }
}

fn check_fp_rate(fp_rate: f64) -> Result<()> {
    if fp_rate > 0.0 && fp_rate < 1.0 {
        Ok(())
    } else {
        Err(invalid(format!("false positive rate must be strictly between 0 and 1, got {fp_rate}")))
    }
}

/// `ln(n!)`: exact summation for small `n`, Stirling's series (error below 1e-10) above.
fn ln_factorial(n: u64) -> f64 {
    if n < 32 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x) - 1.0 / (360.0 * x * x * x)
}

/// Expected false-positive rate of a blocked filter of `num_blocks` 512-bit blocks with `num_hashes` bits
/// per key after `items` distinct inserts.
///
/// The number of keys in a block is Poisson with mean `lambda = items / num_blocks`; a block holding `j` keys
/// (each setting `k` distinct bits of 512) has a given bit set with probability `1 - (1 - k/512)^j`, and a key
/// not inserted is reported present when its `k` bits are all set:
///
/// ```text
/// fpr = sum_j  Poisson(j; lambda) * (1 - (1 - k/512)^j)^k
/// ```
fn blocked_fpr(num_blocks: u64, num_hashes: u32, items: u64) -> f64 {
    if items == 0 {
        return 0.0;
    }
    let lambda = items as f64 / num_blocks.max(1) as f64;
    let k = f64::from(num_hashes);
    let miss = (1.0 - k / BLOCK_BITS as f64).ln();
    let term = |j: u64, log_pmf: f64| log_pmf.exp() * (1.0 - (miss * j as f64).exp()).powf(k);
    // Sum outwards from the mode until the Poisson weights vanish.
    let mode = lambda.floor() as u64;
    let log_mode = mode as f64 * lambda.ln() - lambda - ln_factorial(mode);
    let mut total = term(mode, log_mode);
    let mut log_pmf = log_mode;
    let mut j = mode;
    while j > 0 {
        log_pmf += (j as f64).ln() - lambda.ln();
        j -= 1;
        let t = term(j, log_pmf);
        total += t;
        if log_pmf < -745.0 || (t < total * 1e-17 && (j as f64) < lambda) {
            break;
        }
    }
    let mut log_pmf = log_mode;
    let mut j = mode;
    loop {
        j += 1;
        log_pmf += lambda.ln() - (j as f64).ln();
        let t = term(j, log_pmf);
        total += t;
        if log_pmf < -745.0 || (t < total * 1e-17 && j as f64 > lambda) {
            break;
        }
    }
    total.min(1.0)
}

/// Expected false-positive rate of a filter of `size_in_bytes` (rounded up to whole 64-byte blocks) with
/// `num_hashes` bits per key once `items` distinct keys are in it (see [`blocked_fpr`] for the formula).
pub fn expected_false_positive_rate(size_in_bytes: usize, num_hashes: u32, items: u64) -> Result<f64> {
    let blocks = blocks_for_size(size_in_bytes)?;
    check_num_hashes(num_hashes)?;
    Ok(blocked_fpr(blocks as u64, num_hashes, items))
}

/// The hash count with the lowest expected false-positive rate, and that rate.
fn best_hashes(num_blocks: u64, items: u64) -> (u32, f64) {
    (1..=MAX_HASHES).map(|k| (k, blocked_fpr(num_blocks, k, items))).fold((1, f64::INFINITY), |best, cur| {
        if cur.1 < best.1 {
            cur
        } else {
            best
        }
    })
}

/// What a new filter is sized from, as users give it (`dolma dedupe`'s `bloom_filter` section, the Python
/// constructor): the one decision table, [`Sizing::resolve`]. `None` means not given.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sizing {
    pub size_in_bytes: Option<u64>,
    pub num_hashes: Option<u32>,
    pub estimated_doc_count: Option<u64>,
    pub desired_false_positive_rate: Option<f64>,
    /// A size derived from the count and rate is never below this many bytes (an explicit size is used as
    /// given): an estimate far below the real number of keys would otherwise give a tiny filter that fills up.
    pub min_size_in_bytes: u64,
}

impl Sizing {
    /// `(size_in_bytes, num_hashes)` of a new filter:
    ///
    /// | given                                  | size                                   | hashes                         |
    /// |----------------------------------------|----------------------------------------|--------------------------------|
    /// | `size_in_bytes`                        | as given (whole 64-byte blocks)        | best for `estimated_doc_count`, else `round(-log2 rate)` |
    /// | `estimated_doc_count` and the rate     | [`BloomFilter::optimal_params`]        | from the same                  |
    /// | ... when that is below the floor       | `min_size_in_bytes`                    | the one that holds the most keys at the rate |
    ///
    /// `num_hashes`, when given, always wins. Anything else is an error naming what to add.
    pub fn resolve(&self) -> Result<(usize, u32)> {
        if let Some(k) = self.num_hashes {
            check_num_hashes(k)?;
        }
        if let Some(count) = self.estimated_doc_count {
            if count == 0 {
                return Err(invalid("estimated_doc_count must be positive, got 0".to_string()));
            }
        }
        if let Some(rate) = self.desired_false_positive_rate {
            if !(rate > 0.0 && rate < 1.0) {
                return Err(invalid(format!(
                    "desired_false_positive_rate must be strictly between 0 and 1, got {rate}"
                )));
            }
        }
        let (size, derived_k) =
            match (self.size_in_bytes, self.estimated_doc_count, self.desired_false_positive_rate) {
                (Some(size), count, rate) => {
                    let size =
                        usize::try_from(size).map_err(|_| invalid(format!("size_in_bytes {size} is too large")))?;
                    let blocks = blocks_for_size(size)?;
                    let k = match (count, rate) {
                        (Some(count), _) => Some(best_hashes(blocks as u64, count).0),
                        (None, Some(rate)) => Some(hashes_for_rate(rate)),
                        (None, None) => None,
                    };
                    (blocks * BLOCK_BYTES, k)
                }
                (None, Some(count), Some(rate)) => {
                    let (size, k) = BloomFilter::optimal_params(count, rate)?;
                    let floor = blocks_for_size(usize::try_from(self.min_size_in_bytes.max(1)).unwrap_or(usize::MAX))?;
                    if size < floor * BLOCK_BYTES {
                        (floor * BLOCK_BYTES, Some(floor_hashes(floor as u64, count, rate)))
                    } else {
                        (size, Some(k))
                    }
                }
                (None, Some(_), None) => return Err(invalid(
                    "estimated_doc_count needs desired_false_positive_rate to size the filter (or give size_in_bytes)"
                        .to_string(),
                )),
                (None, None, _) => {
                    return Err(invalid(
                        "either size_in_bytes or estimated_doc_count is required (estimated_doc_count with \
                     desired_false_positive_rate)"
                            .to_string(),
                    ))
                }
            };
        match self.num_hashes.or(derived_k) {
            Some(k) => Ok((size, k)),
            None => Err(invalid(
                "size_in_bytes alone does not choose the hash count: also give estimated_doc_count or \
                 desired_false_positive_rate (or num_hashes)"
                    .to_string(),
            )),
        }
    }
}

/// The hash count of a filter filled to its design rate `rate`: `round(-log2 rate)`, within `1..=MAX_HASHES`.
fn hashes_for_rate(rate: f64) -> u32 {
    (-rate.log2()).round().clamp(1.0, f64::from(MAX_HASHES)) as u32
}

/// The hash count for a filter of `num_blocks` that is bigger than `items` keys at `rate` need (a size floor):
/// the best one for the largest number of keys the filter holds at `rate`, so that it stays within the rate
/// for as many keys beyond the estimate as possible.
fn floor_hashes(num_blocks: u64, items: u64, rate: f64) -> u32 {
    let fits = |n: u64| best_hashes(num_blocks, n).1 <= rate;
    if !fits(items) {
        return best_hashes(num_blocks, items).0;
    }
    let (mut lo, mut hi) = (items, num_blocks.saturating_mul(BLOCK_BITS));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    best_hashes(num_blocks, lo).0
}

/// Allocates `num_blocks` zeroed blocks, reporting an allocation failure as an error instead of aborting.
fn zeroed_blocks(num_blocks: usize) -> Result<Vec<Block>> {
    let mut blocks = Vec::new();
    reserve_blocks(&mut blocks, num_blocks)?;
    blocks.resize_with(num_blocks, Block::default);
    Ok(blocks)
}

/// Asks Linux to back the (still untouched) reserved bits with transparent huge pages: every lookup lands on
/// a random block, and with 4 KiB pages nearly every one would also miss the TLB.
fn advise_huge_pages(blocks: &Vec<Block>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = blocks.as_ptr() as usize;
        let end = start + blocks.capacity() * BLOCK_BYTES;
        let (first, last) = (start.div_ceil(HUGE) * HUGE, end / HUGE * HUGE);
        if last > first {
            // SAFETY: the range lies inside this Vec's own allocation; MADV_HUGEPAGE is advice about how to back
            // the pages and never changes their contents. A failure (e.g. THP disabled) is harmless.
            unsafe {
                libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = blocks;
}

fn reserve_blocks(blocks: &mut Vec<Block>, num_blocks: usize) -> Result<()> {
    let reserved = blocks.try_reserve_exact(num_blocks);
    if reserved.is_ok() && num_blocks * BLOCK_BYTES >= 4 << 20 {
        advise_huge_pages(blocks);
    }
    reserved.map_err(|_| {
        let bytes = num_blocks as u128 * BLOCK_BYTES as u128;
        BloomError::Io {
            path: None,
            source: io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("cannot allocate {bytes} bytes for the bloom filter bits"),
            ),
        }
    })
}

/// Reads until `buf` is full or the reader is exhausted; returns how many bytes were read.
fn read_fully<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
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

fn le_u32(bytes: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(bytes);
    u32::from_le_bytes(a)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes);
    u64::from_le_bytes(a)
}

/// The fixed-size file header (everything but the magic and version, which are constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    num_hashes: u32,
    num_bits: u64,
    seed1: u64,
    seed2: u64,
    inserted: u64,
    manifest_len: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
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
    fn decode(buf: &[u8; HEADER_LEN]) -> Result<Header> {
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
fn version_message(version: u32) -> String {
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
fn read_header<R: Read>(reader: &mut R) -> Result<([u8; HEADER_LEN], Header)> {
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

/// A blocked Bloom filter over byte-string keys with stable, recorded hashing. See the module docs.
pub struct BloomFilter {
    blocks: Vec<Block>,
    num_bits: u64,
    num_hashes: u32,
    seed1: u64,
    seed2: u64,
    inserted: AtomicU64,
    /// Caller-recorded text saved with the bits (see [`BloomFilter::set_manifest`]).
    manifest: Mutex<String>,
}

impl fmt::Debug for BloomFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BloomFilter")
            .field("num_bits", &self.num_bits)
            .field("num_hashes", &self.num_hashes)
            .field("seeds", &(self.seed1, self.seed2))
            .field("inserted", &self.inserted())
            .field("manifest_len", &self.manifest_guard().len())
            .finish()
    }
}

impl BloomFilter {
    /// Size (whole 64-byte blocks, in bytes) and hash count for `expected_items` keys at `fp_rate`.
    ///
    /// The smallest number of blocks whose best hash count (clamped to `1..=MAX_HASHES`) gives an expected
    /// false-positive rate ([`expected_false_positive_rate`]) of at most `fp_rate` after `expected_items`
    /// inserts. The search starts from the textbook size `-n ln p / (ln 2)^2` bits, which a blocked filter
    /// needs a little more than.
    pub fn optimal_params(expected_items: u64, fp_rate: f64) -> Result<(usize, u32)> {
        check_expected_items(expected_items)?;
        check_fp_rate(fp_rate)?;
        let ln2 = std::f64::consts::LN_2;
        let textbook = -(expected_items as f64) * fp_rate.ln() / (ln2 * ln2) / BLOCK_BITS as f64;
        let max_blocks = MAX_SIZE_IN_BYTES / BLOCK_BYTES as u64;
        let too_big = || {
            invalid(format!(
                "{expected_items} items at false positive rate {fp_rate} would need more than the maximum of \
                 {MAX_SIZE_IN_BYTES} bytes"
            ))
        };
        if !textbook.is_finite() || textbook > max_blocks as f64 {
            return Err(too_big());
        }
        let fits = |blocks: u64| best_hashes(blocks, expected_items).1 <= fp_rate;
        let mut lo = (textbook.ceil() as u64).max(1);
        if fits(lo) {
            // The textbook size is already enough (tiny filters): shrink down to the smallest that fits.
            let mut hi = lo;
            lo = 1;
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if fits(mid) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
        } else {
            let mut hi = lo;
            while !fits(hi) {
                if hi >= max_blocks {
                    return Err(too_big());
                }
                lo = hi + 1;
                hi = hi.saturating_add(hi / 8 + 1).min(max_blocks);
            }
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if fits(mid) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
        }
        let size_in_bytes = usize::try_from(lo * BLOCK_BYTES as u64)
            .map_err(|_| invalid(format!("a filter of {lo} blocks does not fit in memory")))?;
        Ok((size_in_bytes, best_hashes(lo, expected_items).0))
    }

    /// Best hash count for a filter of `size_in_bytes` (rounded up to whole blocks) holding `expected_items`.
    pub fn optimal_num_hashes(size_in_bytes: usize, expected_items: u64) -> Result<u32> {
        let blocks = blocks_for_size(size_in_bytes)?;
        check_expected_items(expected_items)?;
        Ok(best_hashes(blocks as u64, expected_items).0)
    }

    /// An empty filter of `size_in_bytes` (rounded up to a multiple of 64) with `num_hashes` bits per key.
    pub fn new(size_in_bytes: usize, num_hashes: u32, seed: u64) -> Result<Self> {
        let (seed1, seed2) = derive_seeds(seed);
        Self::with_seeds(size_in_bytes, num_hashes, seed1, seed2)
    }

    /// Like [`BloomFilter::new`] but with both hash seeds given, e.g. to build a filter compatible with another.
    pub fn with_seeds(size_in_bytes: usize, num_hashes: u32, seed1: u64, seed2: u64) -> Result<Self> {
        let num_blocks = blocks_for_size(size_in_bytes)?;
        check_num_hashes(num_hashes)?;
        Ok(BloomFilter {
            blocks: zeroed_blocks(num_blocks)?,
            num_bits: num_blocks as u64 * BLOCK_BITS,
            num_hashes,
            seed1,
            seed2,
            inserted: AtomicU64::new(0),
            manifest: Mutex::new(String::new()),
        })
    }

    /// An empty filter sized by [`Sizing::resolve`].
    pub fn with_sizing(sizing: &Sizing, seed: u64) -> Result<Self> {
        let (size_in_bytes, num_hashes) = sizing.resolve()?;
        Self::new(size_in_bytes, num_hashes, seed)
    }

    /// An empty filter sized by [`BloomFilter::optimal_params`].
    pub fn with_capacity(expected_items: u64, fp_rate: f64, seed: u64) -> Result<Self> {
        let (size_in_bytes, num_hashes) = Self::optimal_params(expected_items, fp_rate)?;
        Self::new(size_in_bytes, num_hashes, seed)
    }

    pub fn num_bits(&self) -> u64 {
        self.num_bits
    }

    pub fn num_hashes(&self) -> u32 {
        self.num_hashes
    }

    pub fn size_in_bytes(&self) -> usize {
        self.blocks.len() * BLOCK_BYTES
    }

    /// The two recorded hash seeds `(seed1, seed2)`.
    pub fn seeds(&self) -> (u64, u64) {
        (self.seed1, self.seed2)
    }

    /// How many inserts added a key that was not (apparently) present yet.
    pub fn inserted(&self) -> u64 {
        self.inserted.load(Ordering::Relaxed)
    }

    fn block_ones(block: &Block) -> u64 {
        block.0.iter().map(|w| u64::from(w.load(Ordering::Relaxed).count_ones())).sum()
    }

    /// Number of bits set to one.
    pub fn bits_set(&self) -> u64 {
        if parallel_allowed() {
            self.blocks.par_iter().with_min_len(PAR_MIN_LEN).map(Self::block_ones).sum()
        } else {
            self.blocks.iter().map(Self::block_ones).sum()
        }
    }

    /// Chance that a key never inserted is reported present, given the current fill: the mean over blocks of
    /// `(bits set in the block / 512)^k` (a key's bits all fall in one uniformly chosen block).
    pub fn estimated_false_positive_rate(&self) -> f64 {
        let k = self.num_hashes as i32;
        let per_block = |b: &Block| (Self::block_ones(b) as f64 / BLOCK_BITS as f64).powi(k);
        let total: f64 = if parallel_allowed() {
            self.blocks.par_iter().with_min_len(PAR_MIN_LEN).map(per_block).sum()
        } else {
            self.blocks.iter().map(per_block).sum()
        };
        total / self.blocks.len() as f64
    }

    /// Resets every bit and the insert counter.
    pub fn clear(&self) {
        let zero = |b: &Block| b.0.iter().for_each(|w| w.store(0, Ordering::Relaxed));
        if parallel_allowed() {
            self.blocks.par_iter().with_min_len(PAR_MIN_LEN).for_each(zero);
        } else {
            self.blocks.iter().for_each(zero);
        }
        self.inserted.store(0, Ordering::Relaxed);
        self.manifest_guard().clear();
    }

    fn manifest_guard(&self) -> MutexGuard<'_, String> {
        self.manifest.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The text recorded with the filter (empty unless set): saved and loaded with the bits, under the checksum.
    pub fn manifest(&self) -> String {
        self.manifest_guard().clone()
    }

    /// Records `manifest` (what went into the filter, in the caller's terms) to be saved with the bits.
    pub fn set_manifest(&self, manifest: String) -> Result<()> {
        if manifest.len() as u64 > MAX_MANIFEST_LEN {
            return Err(invalid(format!(
                "the manifest is {} bytes; at most {MAX_MANIFEST_LEN} are supported",
                manifest.len()
            )));
        }
        *self.manifest_guard() = manifest;
        Ok(())
    }

    /// The probe of `key` in this filter, computed once so that hashing can run in parallel and the bit
    /// operations later, in a chosen order ([`BloomFilter::contains_probed`], [`BloomFilter::insert_probed`]).
    #[inline]
    pub fn probe_of(&self, key: &[u8]) -> Probe {
        self.probe_of_hash(xxh3_128_with_seed(key, self.seed1))
    }

    /// The probe of `key` hashed in a separate key space `domain` (e.g. n-gram keys apart from text keys):
    /// like [`BloomFilter::probe_of`] with the first seed XOR `domain`.
    #[inline]
    pub fn probe_of_in(&self, key: &[u8], domain: u64) -> Probe {
        self.probe_of_hash(xxh3_128_with_seed(key, self.seed1 ^ domain))
    }

    #[inline]
    fn probe_of_hash(&self, h: u128) -> Probe {
        let lo = h as u64;
        let hi = (h >> 64) as u64 ^ self.seed2;
        // (lo * blocks) >> 64 < blocks, so the index is in bounds.
        let block = ((u128::from(lo) * self.blocks.len() as u128) >> 64) as usize;
        Probe { block, state: hi }
    }

    /// [`BloomFilter::contains`] for a probe from [`BloomFilter::probe_of`] on this filter.
    #[inline]
    pub fn contains_probed(&self, probe: Probe) -> bool {
        self.contains_probe(probe)
    }

    /// Reads the block a probe will test, so that a caller can warm the cache for keys it will look up next:
    /// the loads are independent, so the CPU overlaps their cache misses. Returns the bits read (feed it to
    /// `std::hint::black_box` so the loads are kept).
    #[inline]
    pub fn touch_probed(&self, probe: Probe) -> u64 {
        self.blocks[probe.block].0[0].load(Ordering::Relaxed)
    }

    /// Asks the CPU to start loading the block of a probe that will be looked up soon, without waiting for it:
    /// issued some keys ahead, the cache misses of consecutive lookups overlap.
    #[inline]
    pub fn prefetch_probed(&self, probe: Probe) {
        let block: *const Block = &self.blocks[probe.block];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint; it never faults and does not read into the program (and the
        // address is that of a live block anyway).
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(block.cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        std::hint::black_box(block);
    }

    /// [`BloomFilter::insert`] for a probe from [`BloomFilter::probe_of`] on this filter.
    #[inline]
    pub fn insert_probed(&self, probe: Probe) -> bool {
        self.insert_probe(probe)
    }

    /// [`BloomFilter::insert_probed`] for a caller that is the only one changing the filter meanwhile (other
    /// threads may read it): plain loads and stores instead of atomic read-modify-writes, which would stall
    /// the CPU until each missed cache line arrives and so serialize the lookups' cache misses. Inserts made
    /// concurrently by another thread could be lost, so callers must exclude other writers.
    #[inline]
    pub fn insert_probed_exclusive(&self, probe: Probe) -> bool {
        let present = self.insert_probed_exclusive_uncounted(probe);
        if !present {
            self.add_inserted(1);
        }
        present
    }

    /// [`BloomFilter::insert_probed_exclusive`] without counting the insert: for callers that split the
    /// blocks among threads (each the only writer of its blocks), count the new keys and add them with
    /// [`BloomFilter::add_inserted`] afterwards.
    #[inline(always)]
    pub fn insert_probed_exclusive_uncounted(&self, probe: Probe) -> bool {
        let masks = self.masks(probe);
        let block = &self.blocks[probe.block].0;
        let mut present = true;
        for (cell, mask) in block.iter().zip(masks) {
            let current = cell.load(Ordering::Relaxed);
            if current & mask != mask {
                present = false;
                cell.store(current | mask, Ordering::Relaxed);
            }
        }
        present
    }

    /// Adds `n` to the count of inserted keys (a caller that is the only writer, as for the exclusive inserts).
    #[inline]
    pub fn add_inserted(&self, n: u64) {
        self.inserted.store(self.inserted.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Number of 64-byte blocks.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The bits of a probe inside its block, as one mask per word: the positions are the top 9 bits of the
    /// successive states of an LCG seeded with the probe's state, skipping repeats, until `num_hashes` distinct
    /// bits are set.
    #[inline(always)]
    fn masks(&self, probe: Probe) -> [u64; BLOCK_WORDS] {
        let mut masks = [0u64; BLOCK_WORDS];
        let k = self.num_hashes as usize;
        // The first k states never stop early (at most one new bit per state), so set their bits in any order
        // from independently computed states; continue the sequence only if some of them repeated.
        for &(a, c) in &LCG_JUMPS[..k] {
            let pos = a.wrapping_mul(probe.state).wrapping_add(c) >> 55;
            masks[(pos >> 6) as usize] |= 1u64 << (pos & 63);
        }
        let found: u32 = masks.iter().map(|m| m.count_ones()).sum();
        if found < self.num_hashes {
            let (a, c) = LCG_JUMPS[k - 1];
            self.fill_masks(&mut masks, a.wrapping_mul(probe.state).wrapping_add(c), found);
        }
        masks
    }

    /// Steps the LCG on from state `x`, setting each new bit position, until `num_hashes` bits are set.
    #[inline]
    fn fill_masks(&self, masks: &mut [u64; BLOCK_WORDS], mut x: u64, mut found: u32) {
        while found < self.num_hashes {
            x = x.wrapping_mul(LCG_MUL).wrapping_add(LCG_ADD);
            let pos = x >> 55;
            let (word, bit) = ((pos >> 6) as usize, 1u64 << (pos & 63));
            if masks[word] & bit == 0 {
                masks[word] |= bit;
                found += 1;
            }
        }
    }

    /// [`BloomFilter::masks`] one state after the other (the definition; for the tests).
    #[cfg(test)]
    fn masks_sequential(&self, probe: Probe) -> [u64; BLOCK_WORDS] {
        let mut masks = [0u64; BLOCK_WORDS];
        self.fill_masks(&mut masks, probe.state, 0);
        masks
    }

    #[inline]
    fn contains_probe(&self, probe: Probe) -> bool {
        let masks = self.masks(probe);
        let block = &self.blocks[probe.block].0;
        block.iter().zip(masks).all(|(w, m)| w.load(Ordering::Relaxed) & m == m)
    }

    /// Sets the probed bits; returns whether all were already set.
    #[inline]
    fn insert_probe(&self, probe: Probe) -> bool {
        let masks = self.masks(probe);
        let block = &self.blocks[probe.block].0;
        let mut present = true;
        for (cell, mask) in block.iter().zip(masks) {
            // Reading first avoids dirtying cache lines for bits that are already set.
            if cell.load(Ordering::Relaxed) & mask != mask {
                present = false;
                cell.fetch_or(mask, Ordering::Relaxed);
            }
        }
        if !present {
            self.inserted.fetch_add(1, Ordering::Relaxed);
        }
        present
    }

    /// Whether `key` is (probably) present. Never false for an inserted key.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.contains_probe(self.probe_of(key))
    }

    /// Adds `key`; returns whether it was (probably) present already.
    pub fn insert(&self, key: &[u8]) -> bool {
        self.insert_probe(self.probe_of(key))
    }

    /// [`BloomFilter::contains`] for many keys, in parallel (read-only, so the order does not matter).
    pub fn contains_batch<K: AsRef<[u8]> + Sync>(&self, keys: &[K]) -> Vec<bool> {
        map_keys(keys, |key| self.contains(key))
    }

    fn probes<K: AsRef<[u8]> + Sync>(&self, keys: &[K]) -> Vec<Probe> {
        map_keys(keys, |key| self.probe_of(key))
    }

    /// Inserts many keys; returns how many were new. Hashes in parallel, then sets bits in input order.
    pub fn insert_batch<K: AsRef<[u8]> + Sync>(&self, keys: &[K]) -> usize {
        self.probes(keys).into_iter().filter(|&probe| !self.insert_probe(probe)).count()
    }

    /// For each key in order: was it present, then insert it. Key `i` sees the inserts of keys `< i`, so a
    /// duplicate later in the same batch reports `true` and the result is independent of the thread count.
    pub fn contains_or_insert_batch<K: AsRef<[u8]> + Sync>(&self, keys: &[K]) -> Vec<bool> {
        self.probes(keys).into_iter().map(|probe| self.insert_probe(probe)).collect()
    }

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

#[cfg(test)]
mod tests;
