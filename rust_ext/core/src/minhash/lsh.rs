//! LSH banding: `bands` bands of `rows` consecutive signature values each (band `i` covers values
//! `i * rows .. (i + 1) * rows`, as datasketch's `MinHashLSH` cuts them; values past `bands * rows` are not
//! used). Two documents are candidates when any band is equal in both.
//!
//! A band key is XXH3-64, seed [`BAND_SEED`], of the band index (`u32`) followed by the band's values (`u32`
//! each), all little-endian. The band index in the key keeps equal values in different bands apart, so all
//! keys share one key space. (Two different bands collide with probability 2^-64 per pair: far below the LSH
//! false-positive rate, and verification removes such pairs anyway.) Bands and rows are given explicitly:
//! choosing them from a threshold is done once, at configuration time, by datasketch's own optimiser.

use super::{config_err, Result};

/// Seed of the band-key hash (recorded: changing it changes every key).
pub const BAND_SEED: u64 = 0x6C73_685F_6261_6E64; // "lsh_band"

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bands {
    bands: u32,
    rows: u32,
}

impl Bands {
    pub fn new(bands: u32, rows: u32, num_perm: usize) -> Result<Self> {
        if bands == 0 || rows == 0 {
            return Err(config_err("bands", format!("bands and rows must be positive, got {bands} x {rows}")));
        }
        if (bands as u64) * (rows as u64) > num_perm as u64 {
            return Err(config_err(
                "bands",
                format!("bands x rows = {bands} x {rows} needs more than num_perm = {num_perm} values"),
            ));
        }
        Ok(Bands { bands, rows })
    }

    pub fn bands(&self) -> u32 {
        self.bands
    }

    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Appends the `bands` keys of `signature` to `out`; `scratch` is reused between calls.
    pub fn keys(&self, signature: &[u32], scratch: &mut Vec<u8>, out: &mut Vec<u64>) {
        let rows = self.rows as usize;
        for band in 0..self.bands {
            let start = band as usize * rows;
            scratch.clear();
            scratch.extend_from_slice(&band.to_le_bytes());
            for v in &signature[start..start + rows] {
                scratch.extend_from_slice(&v.to_le_bytes());
            }
            out.push(xxhash_rust::xxh3::xxh3_64_with_seed(scratch, BAND_SEED));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bands: &Bands, sig: &[u32]) -> Vec<u64> {
        let mut out = Vec::new();
        bands.keys(sig, &mut Vec::new(), &mut out);
        out
    }

    #[test]
    fn equal_bands_give_equal_keys_and_only_them() {
        let b = Bands::new(3, 2, 7).unwrap();
        let x = [1, 2, 3, 4, 5, 6, 99];
        let y = [1, 2, 0, 4, 5, 6, 42]; // band 1 differs, the unused last value too
        let (kx, ky) = (keys(&b, &x), keys(&b, &y));
        assert_eq!(kx.len(), 3);
        assert_eq!(kx[0], ky[0]);
        assert_ne!(kx[1], ky[1]);
        assert_eq!(kx[2], ky[2]);
        // The same values in another band give another key.
        let z = [5, 6, 1, 2, 3, 4, 0];
        assert_ne!(keys(&b, &z)[0], kx[2]);
    }

    #[test]
    fn key_is_the_documented_hash() {
        let b = Bands::new(1, 2, 2).unwrap();
        let mut bytes = Vec::new();
        for v in [0u32, 7, 9] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(keys(&b, &[7, 9]), [xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, BAND_SEED)]);
    }

    #[test]
    fn rejects_bands_that_do_not_fit() {
        assert!(Bands::new(0, 4, 128).is_err());
        assert!(Bands::new(9, 15, 128).is_err());
        assert!(Bands::new(8, 16, 128).is_ok());
    }
}
