//! Pure-Rust kernels of the dolma toolkit.
//!
//! This crate has no Python dependency so it can be tested with a plain `cargo test`; the `dolma-py`
//! crate wraps it as the Python module `dolma._rust`.

pub mod bloom;
pub mod dedupe;
pub mod minhash;

pub use bloom::{BloomError, BloomFilter};

/// The stable 64-bit hash used throughout the toolkit (XXH3-64), exposed so callers can seed other
/// deterministic choices the same way on every machine.
pub fn xxh3_64(data: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(data, seed)
}
pub mod pii;
pub mod tempname;
pub mod textstats;
