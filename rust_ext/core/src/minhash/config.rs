//! The parameters of the signature phase, as they cross from Python (JSON, every field required: Python
//! owns the defaults and computes the permutations and bands), and the [`Signer`] built from them.

use serde::Deserialize;

use super::lsh::Bands;
use super::lsh::BAND_SEED;
use super::shingle::{Shingler, Tokenizer};
use super::signature::{HashKind, MinHasher, Scheme, SHINGLE_SET_SEED, XXH3_SEED};
use super::{config_err, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinHashConfig {
    pub num_perm: usize,
    /// The seed the permutations were drawn from (recorded; the permutations themselves are given).
    pub seed: u64,
    pub ngram: usize,
    pub tokenizer: Tokenizer,
    pub hash: HashKind,
    pub scheme: Scheme,
    /// `[a, b]`: `num_perm` parameters each.
    pub permutations: [Vec<u64>; 2],
    pub bands: u32,
    pub rows: u32,
    /// Keep the 64-bit hashes of every document's shingles (needed for exact verification).
    pub shingle_sets: bool,
}

impl MinHashConfig {
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| config_err("minhash", format!("invalid configuration: {e}")))
    }

    pub fn build(self) -> Result<Signer> {
        let [a, b] = self.permutations;
        if a.len() != self.num_perm {
            return Err(config_err(
                "permutations",
                format!("{} parameters given for num_perm = {}", a.len(), self.num_perm),
            ));
        }
        let shingler = Shingler::new(self.tokenizer, self.ngram)?;
        let hasher = MinHasher::new(shingler, self.hash, self.scheme, a, b)?;
        let bands = Bands::new(self.bands, self.rows, self.num_perm)?;
        let fingerprint = fingerprint(&hasher, &bands, self.seed);
        Ok(Signer { hasher, bands, seed: self.seed, shingle_sets: self.shingle_sets, fingerprint })
    }
}

/// Everything the signature phase needs, validated.
#[derive(Debug, Clone)]
pub struct Signer {
    pub hasher: MinHasher,
    pub bands: Bands,
    pub seed: u64,
    pub shingle_sets: bool,
    /// Identifies the parameters that make signatures and band keys comparable (recorded in every file).
    pub fingerprint: u64,
}

/// XXH3-64 of every parameter that changes a signature or a band key, in a fixed little-endian layout.
fn fingerprint(hasher: &MinHasher, bands: &Bands, seed: u64) -> u64 {
    let mut bytes = b"dolma-minhash-1".to_vec();
    bytes.push(hasher.shingler().tokenizer().code());
    bytes.extend_from_slice(&(hasher.shingler().ngram() as u64).to_le_bytes());
    bytes.push(hasher.hash().code());
    bytes.push(hasher.scheme().code());
    for v in [seed, XXH3_SEED, SHINGLE_SET_SEED, BAND_SEED, hasher.num_perm() as u64] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&bands.bands().to_le_bytes());
    bytes.extend_from_slice(&bands.rows().to_le_bytes());
    let (a, b) = hasher.permutations();
    for v in a.iter().chain(b) {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid configuration with arbitrary permutations (tests only).
    pub fn test_config(num_perm: usize, bands: u32, rows: u32) -> MinHashConfig {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let a = (0..num_perm).map(|_| (next() & 0xFFFF_FFFF) | 1).collect();
        let b = (0..num_perm).map(|_| next() & 0xFFFF_FFFF).collect();
        MinHashConfig {
            num_perm,
            seed: 1,
            ngram: 3,
            tokenizer: Tokenizer::Words,
            hash: HashKind::Xxh3,
            scheme: Scheme::Affine32,
            permutations: [a, b],
            bands,
            rows,
            shingle_sets: true,
        }
    }

    #[test]
    fn json_round_and_validation() {
        let json = r#"{"num_perm": 2, "seed": 1, "ngram": 5, "tokenizer": "words", "hash": "sha1",
            "scheme": "affine32", "permutations": [[1, 3], [0, 7]], "bands": 1, "rows": 2, "shingle_sets": false}"#;
        let signer = MinHashConfig::from_json(json).unwrap().build().unwrap();
        assert_eq!(signer.hasher.num_perm(), 2);
        assert!(MinHashConfig::from_json(&json.replace("\"seed\"", "\"sed\"")).is_err());
        assert!(MinHashConfig::from_json(&json.replace("sha1", "md5")).is_err());
        let bad = MinHashConfig::from_json(&json.replace("\"rows\": 2", "\"rows\": 3")).unwrap().build();
        assert!(bad.is_err());
        let bad = MinHashConfig::from_json(&json.replace("\"num_perm\": 2", "\"num_perm\": 3")).unwrap().build();
        assert!(bad.is_err());
    }

    #[test]
    fn fingerprint_changes_with_every_parameter() {
        let base = test_config(8, 2, 4).build().unwrap().fingerprint;
        assert_eq!(base, test_config(8, 2, 4).build().unwrap().fingerprint);
        let mut changed = Vec::new();
        let mut c = test_config(8, 2, 4);
        c.ngram = 4;
        changed.push(c);
        let mut c = test_config(8, 2, 4);
        c.hash = HashKind::Sha1;
        changed.push(c);
        let mut c = test_config(8, 2, 4);
        c.tokenizer = Tokenizer::Chars;
        changed.push(c);
        let mut c = test_config(8, 2, 4);
        c.permutations[1][3] ^= 1;
        changed.push(c);
        changed.push(test_config(8, 4, 2));
        for c in changed {
            assert_ne!(c.build().unwrap().fingerprint, base);
        }
    }
}
