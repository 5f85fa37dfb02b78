// Longer than 400 lines because its unit tests (the code above them is about 320 lines).
//! MinHash signatures, bit-compatible with `datasketch.MinHash`.
//!
//! A signature has `num_perm` values. Every shingle is hashed once to a 32-bit value `h` (the base hash),
//! then each permutation `i` maps it to `p_i(h)`; value `i` of the signature is the minimum of `p_i(h)` over
//! the shingles, or `u32::MAX` when there are none (datasketch's empty MinHash).
//!
//! Base hashes:
//! - `sha1`: the first 4 bytes of the SHA-1 digest of the shingle's UTF-8 bytes, little-endian
//!   (datasketch's `sha1_hash32`).
//! - `xxh3` (the default: ~20x cheaper than SHA-1): the low 32 bits of XXH3-64 of the bytes with seed
//!   [`XXH3_SEED`].
//!
//! Permutation schemes (datasketch's names; the parameters `a`, `b` are those datasketch draws from
//! `numpy.random.RandomState(seed)`, handed in by the caller):
//! - `affine32` (datasketch >= 2.0 default): `h' = fmix32(h)` (MurmurHash3's finaliser), then
//!   `p_i(h) = a_i * h' + b_i mod 2^32` with odd `a_i`.
//! - `legacy` (datasketch < 2.0): `p_i(h) = ((a_i * h + b_i) mod 2^64 mod (2^61 - 1)) mod 2^32`, with the
//!   wrapping 64-bit product numpy computes.
//!
//! Both keep every value below 2^32, so signatures are stored as `u32` whatever the scheme.

use rayon::prelude::*;
use sha1::{Digest, Sha1};

use super::shingle::{ShingleBuf, Shingler};
use super::{config_err, Result};

/// Seed of the `xxh3` base hash (recorded: changing it changes every signature).
pub const XXH3_SEED: u64 = 0x6D69_6E68_6173_6831; // "minhash1"
/// Seed of the 64-bit shingle hashes kept for exact Jaccard verification.
pub const SHINGLE_SET_SEED: u64 = 0x7368_696E_676C_6573; // "shingles"
/// datasketch's Mersenne prime for the legacy scheme.
const MERSENNE_PRIME: u64 = (1 << 61) - 1;
/// Largest `num_perm` accepted.
pub const MAX_PERM: usize = 1 << 16;
/// Permutations processed together (kept in registers across all shingles of a document).
const LANES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashKind {
    Xxh3,
    Sha1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Affine32,
    Legacy,
}

impl HashKind {
    pub fn code(self) -> u8 {
        match self {
            HashKind::Xxh3 => 1,
            HashKind::Sha1 => 2,
        }
    }
}

impl Scheme {
    pub fn code(self) -> u8 {
        match self {
            Scheme::Affine32 => 1,
            Scheme::Legacy => 2,
        }
    }
}

/// Computes signatures; cheap to share between threads.
#[derive(Debug, Clone)]
pub struct MinHasher {
    shingler: Shingler,
    hash: HashKind,
    scheme: Scheme,
    a: Vec<u64>,
    b: Vec<u64>,
    /// `a` and `b` as `u32` (affine32), padded with `a = 0, b = u32::MAX` to a multiple of [`LANES`].
    a32: Vec<u32>,
    b32: Vec<u32>,
}

/// Per-thread scratch space.
#[derive(Default)]
pub struct SignBuf {
    shingles: ShingleBuf,
    hashes: Vec<u32>,
    padded: Vec<u32>,
}

impl MinHasher {
    /// Checks the permutation parameters against the scheme (datasketch's ranges).
    pub fn new(shingler: Shingler, hash: HashKind, scheme: Scheme, a: Vec<u64>, b: Vec<u64>) -> Result<Self> {
        let num_perm = a.len();
        if num_perm == 0 || num_perm > MAX_PERM {
            return Err(config_err("num_perm", format!("must be between 1 and {MAX_PERM}, got {num_perm}")));
        }
        if b.len() != num_perm {
            return Err(config_err(
                "permutations",
                format!("{} 'a' parameters but {} 'b' parameters", num_perm, b.len()),
            ));
        }
        let ok = match scheme {
            Scheme::Affine32 => {
                a.iter().all(|&x| x <= u32::MAX as u64 && x % 2 == 1) && b.iter().all(|&x| x <= u32::MAX as u64)
            }
            Scheme::Legacy => {
                a.iter().all(|&x| (1..MERSENNE_PRIME).contains(&x)) && b.iter().all(|&x| x < MERSENNE_PRIME)
            }
        };
        if !ok {
            return Err(config_err("permutations", format!("parameters out of range for the {scheme:?} scheme")));
        }
        let padded = num_perm.div_ceil(LANES) * LANES;
        let mut a32: Vec<u32> = a.iter().map(|&x| x as u32).collect();
        let mut b32: Vec<u32> = b.iter().map(|&x| x as u32).collect();
        a32.resize(padded, 0);
        b32.resize(padded, u32::MAX);
        Ok(MinHasher { shingler, hash, scheme, a, b, a32, b32 })
    }

    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    pub fn shingler(&self) -> &Shingler {
        &self.shingler
    }

    pub fn hash(&self) -> HashKind {
        self.hash
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn permutations(&self) -> (&[u64], &[u64]) {
        (&self.a, &self.b)
    }

    /// The base hash of one shingle.
    pub fn base_hash(&self, shingle: &[u8]) -> u32 {
        match self.hash {
            HashKind::Xxh3 => xxhash_rust::xxh3::xxh3_64_with_seed(shingle, XXH3_SEED) as u32,
            HashKind::Sha1 => {
                let digest = Sha1::digest(shingle);
                u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
            }
        }
    }

    /// Writes the signature of `text` into `out` (`num_perm` values) and returns its shingle count. With
    /// `set`, also fills it with the sorted, distinct 64-bit hashes of the shingles (exact verification).
    pub fn sign(&self, text: &str, buf: &mut SignBuf, out: &mut [u32], mut set: Option<&mut Vec<u64>>) -> usize {
        let SignBuf { shingles, hashes, padded } = buf;
        hashes.clear();
        if let Some(set) = set.as_deref_mut() {
            set.clear();
        }
        let count = self.shingler.for_each(text, shingles, |s| {
            hashes.push(self.base_hash(s));
            if let Some(set) = set.as_deref_mut() {
                set.push(xxhash_rust::xxh3::xxh3_64_with_seed(s, SHINGLE_SET_SEED));
            }
        });
        if let Some(set) = set {
            set.sort_unstable();
            set.dedup();
        }
        match self.scheme {
            Scheme::Affine32 => {
                for h in hashes.iter_mut() {
                    *h = fmix32(*h);
                }
                padded.clear();
                padded.resize(self.a32.len(), u32::MAX);
                apply_affine32(&self.a32, &self.b32, hashes, padded);
                out.copy_from_slice(&padded[..out.len()]);
            }
            Scheme::Legacy => {
                out.fill(u32::MAX);
                for &h in hashes.iter() {
                    for ((v, &a), &b) in out.iter_mut().zip(&self.a).zip(&self.b) {
                        let p = (a.wrapping_mul(h as u64).wrapping_add(b) % MERSENNE_PRIME) as u32;
                        *v = (*v).min(p);
                    }
                }
            }
        }
        count
    }

    /// The shingle sets of many texts (sorted, distinct 64-bit hashes each: what `verify: exact` compares),
    /// computed in parallel on the current rayon pool, in the order of `texts`.
    pub fn shingle_sets<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<Vec<u64>> {
        let n = self.num_perm();
        texts
            .par_iter()
            .map_init(
                || (SignBuf::default(), vec![0u32; n]),
                |(buf, sig), text| {
                    let mut set = Vec::new();
                    self.sign(text.as_ref(), buf, sig, Some(&mut set));
                    set
                },
            )
            .collect()
    }

    /// Signatures of many texts (row-major, `num_perm` values per text) and their shingle counts, computed
    /// in parallel on the current rayon pool; the result does not depend on the thread count.
    pub fn sign_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> (Vec<u32>, Vec<u32>) {
        let n = self.num_perm();
        let mut sigs = vec![0u32; texts.len() * n];
        let mut counts = vec![0u32; texts.len()];
        if n == 0 {
            return (sigs, counts);
        }
        sigs.par_chunks_mut(n).zip(counts.par_iter_mut()).zip(texts.par_iter()).for_each_init(
            SignBuf::default,
            |buf, ((sig, count), text)| {
                *count = u32::try_from(self.sign(text.as_ref(), buf, sig, None)).unwrap_or(u32::MAX);
            },
        );
        (sigs, counts)
    }
}

/// MurmurHash3's 32-bit finaliser (datasketch applies it before the affine32 permutations).
#[inline]
pub fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// `out[i] = min(out[i], min over h of a[i] * h + b[i])`, [`LANES`] permutations at a time so that the
/// running minima stay in vector registers while the hashes stream by.
fn apply_affine32(a: &[u32], b: &[u32], hashes: &[u32], out: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { apply_affine32_avx512(a, b, hashes, out) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { apply_affine32_avx2(a, b, hashes, out) };
            return;
        }
    }
    apply_affine32_generic(a, b, hashes, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn apply_affine32_avx2(a: &[u32], b: &[u32], hashes: &[u32], out: &mut [u32]) {
    apply_affine32_generic(a, b, hashes, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn apply_affine32_avx512(a: &[u32], b: &[u32], hashes: &[u32], out: &mut [u32]) {
    apply_affine32_generic(a, b, hashes, out);
}

#[inline(always)]
fn apply_affine32_generic(a: &[u32], b: &[u32], hashes: &[u32], out: &mut [u32]) {
    for ((a, b), out) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)).zip(out.chunks_exact_mut(LANES)) {
        let a: [u32; LANES] = a.try_into().unwrap_or([0; LANES]);
        let b: [u32; LANES] = b.try_into().unwrap_or([u32::MAX; LANES]);
        let mut acc: [u32; LANES] = out.try_into().unwrap_or([u32::MAX; LANES]);
        for &h in hashes {
            for i in 0..LANES {
                acc[i] = acc[i].min(a[i].wrapping_mul(h).wrapping_add(b[i]));
            }
        }
        out.copy_from_slice(&acc);
    }
}

/// Estimated Jaccard similarity of two signatures: the fraction of equal values.
pub fn estimated_jaccard(x: &[u32], y: &[u32]) -> f64 {
    if x.is_empty() || x.len() != y.len() {
        return 0.0;
    }
    let equal = x.iter().zip(y).filter(|(p, q)| p == q).count();
    equal as f64 / x.len() as f64
}

/// Jaccard similarity of two sorted, distinct hash sets.
pub fn exact_jaccard(x: &[u64], y: &[u64]) -> f64 {
    if x.is_empty() && y.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f64 / (x.len() + y.len() - common) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minhash::shingle::Tokenizer;

    fn hasher(hash: HashKind, scheme: Scheme, num_perm: usize) -> MinHasher {
        // Arbitrary valid parameters (the real ones come from numpy in Python).
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..num_perm {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            match scheme {
                Scheme::Affine32 => {
                    a.push((x >> 32) | 1);
                    b.push(x & 0xFFFF_FFFF);
                }
                Scheme::Legacy => {
                    a.push((x % (MERSENNE_PRIME - 1)) + 1);
                    b.push(x.rotate_left(17) % MERSENNE_PRIME);
                }
            }
        }
        MinHasher::new(Shingler::new(Tokenizer::Words, 2).unwrap(), hash, scheme, a, b).unwrap()
    }

    #[test]
    fn sha1_base_hash_is_datasketch_sha1_hash32() {
        let h = hasher(HashKind::Sha1, Scheme::Affine32, 4);
        // struct.unpack("<I", hashlib.sha1(b"abc").digest()[:4])[0] == 0x363e99a9
        assert_eq!(h.base_hash(b"abc"), 0x363e_99a9);
        assert_eq!(h.base_hash(b""), 0xeea3_39da);
    }

    #[test]
    fn signature_is_min_over_shingles_of_each_permutation() {
        for scheme in [Scheme::Affine32, Scheme::Legacy] {
            for n in [1, 7, 16, 33] {
                let h = hasher(HashKind::Xxh3, scheme, n);
                let text = "one two three two three four";
                let mut sig = vec![0u32; n];
                let count = h.sign(text, &mut SignBuf::default(), &mut sig, None);
                assert_eq!(count, 5);
                let (a, b) = h.permutations();
                for i in 0..n {
                    let want = h
                        .shingler()
                        .shingles(text)
                        .iter()
                        .map(|s| {
                            let x = h.base_hash(s.as_bytes());
                            match scheme {
                                Scheme::Affine32 => (a[i] as u32).wrapping_mul(fmix32(x)).wrapping_add(b[i] as u32),
                                Scheme::Legacy => {
                                    (a[i].wrapping_mul(x as u64).wrapping_add(b[i]) % MERSENNE_PRIME) as u32
                                }
                            }
                        })
                        .min()
                        .unwrap();
                    assert_eq!(sig[i], want, "{scheme:?} n={n} i={i}");
                }
            }
        }
    }

    #[test]
    fn empty_text_gives_the_empty_signature() {
        let h = hasher(HashKind::Sha1, Scheme::Affine32, 8);
        let mut sig = vec![0u32; 8];
        assert_eq!(h.sign(" ... ", &mut SignBuf::default(), &mut sig, None), 0);
        assert!(sig.iter().all(|&v| v == u32::MAX));
    }

    #[test]
    fn batch_is_independent_of_thread_count() {
        let h = hasher(HashKind::Xxh3, Scheme::Affine32, 20);
        let texts: Vec<String> = (0..200).map(|i| format!("doc {i} has words {} and more", i * 7 % 13)).collect();
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| h.sign_batch(&texts));
        let four = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap().install(|| h.sign_batch(&texts));
        assert_eq!(one, four);
        let mut single = vec![0u32; 20];
        h.sign(&texts[17], &mut SignBuf::default(), &mut single, None);
        assert_eq!(&one.0[17 * 20..18 * 20], &single[..]);
    }

    #[test]
    fn shingle_sets_and_jaccard() {
        let h = hasher(HashKind::Xxh3, Scheme::Affine32, 8);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut sig = vec![0u32; 8];
        h.sign("a b c d e", &mut SignBuf::default(), &mut sig, Some(&mut x));
        h.sign("a b c d x a b", &mut SignBuf::default(), &mut sig, Some(&mut y));
        // {ab, bc, cd, de} vs {ab, bc, cd, dx, xa}: 3 common of 6.
        assert_eq!((x.len(), y.len()), (4, 5));
        assert!((exact_jaccard(&x, &y) - 0.5).abs() < 1e-12);
        assert_eq!(exact_jaccard(&x, &x), 1.0);
        assert_eq!(exact_jaccard(&[], &[]), 0.0);
        assert_eq!(estimated_jaccard(&[1, 2, 3, 4], &[1, 2, 0, 4]), 0.75);
    }

    #[test]
    fn rejects_bad_permutations() {
        let s = Shingler::new(Tokenizer::Words, 2).unwrap();
        assert!(MinHasher::new(s, HashKind::Xxh3, Scheme::Affine32, vec![2], vec![0]).is_err()); // even a
        assert!(MinHasher::new(s, HashKind::Xxh3, Scheme::Affine32, vec![1 << 33 | 1], vec![0]).is_err());
        assert!(MinHasher::new(s, HashKind::Xxh3, Scheme::Legacy, vec![0], vec![0]).is_err());
        assert!(MinHasher::new(s, HashKind::Xxh3, Scheme::Affine32, vec![1, 3], vec![0]).is_err());
        assert!(MinHasher::new(s, HashKind::Xxh3, Scheme::Affine32, vec![], vec![]).is_err());
    }
}
