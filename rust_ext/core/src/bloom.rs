// Longer than 400 lines because it is the filter itself (blocks, probes, inserts and lookups, the parallel paths);
// sizing and the file format are in bloom/.
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
//! Sizing lives in [`sizing`], the file format (header, manifest, checksum; save and load) in [`format`]. This
//! module (~580 lines) is the filter itself: blocks, probes, inserts, lookups and batches share its private
//! representation and are read together when the layout is checked.

mod format;
mod sizing;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_128_with_seed;

pub use format::{HEADER_LEN, MAGIC, MAX_MANIFEST_LEN, TRAILER_LEN, VERSION};
pub use sizing::{expected_false_positive_rate, Sizing};

/// Bits per block: all bits of one key lie in one block (one 64-byte cache line).
pub const BLOCK_BITS: u64 = 512;
/// Bytes per block; filter sizes are rounded up to whole blocks.
pub const BLOCK_BYTES: usize = 64;
const BLOCK_WORDS: usize = 8;
/// Upper bound on the number of hash functions: more costs time and barely lowers the error rate.
pub const MAX_HASHES: u32 = 32;
/// Largest filter accepted (64 PiB); keeps every bit index and byte count far from overflow.
pub const MAX_SIZE_IN_BYTES: u64 = 1 << 56;

/// Odd constant (2^64 / golden ratio) mixed into the user seed to get the second hash seed.
const SEED2_MIX: u64 = 0x9E37_79B9_7F4A_7C15;
/// Below this many keys per rayon task, the scheduling overhead outweighs the work.
const PAR_MIN_LEN: usize = 4096;
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
}

#[cfg(test)]
mod tests;
