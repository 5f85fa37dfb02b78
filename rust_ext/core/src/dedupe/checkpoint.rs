//! Checkpoints: a Bloom filter and the progress that goes with it, in one file written atomically, so a run
//! killed half-way resumes from a filter that holds exactly the keys of the files it says are done.
//!
//! Format (little-endian): magic `b"DOLMADCK"`, `u32` version (= 1), `u64` length of the JSON state, the
//! JSON state, then the filter in its own file format (`bloom` module).

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::{DedupeError, Result};
use crate::bloom::BloomFilter;

pub const MAGIC: [u8; 8] = *b"DOLMADCK";
pub const VERSION: u32 = 1;
const MAX_STATE_LEN: u64 = 64 << 20;

fn bad(path: &Path, reason: impl Into<String>) -> DedupeError {
    DedupeError::Checkpoint { path: path.display().to_string(), reason: reason.into() }
}

/// Writes `filter` and `state` (JSON text) to `path` atomically.
pub fn save(path: &Path, filter: &BloomFilter, state: &str) -> Result<()> {
    let temp = crate::tempname::temp_path(path);
    let result = (|| -> Result<()> {
        let file = File::create(&temp).map_err(|e| bad(path, e.to_string()))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let io = |e: std::io::Error| bad(path, e.to_string());
        w.write_all(&MAGIC).map_err(io)?;
        w.write_all(&VERSION.to_le_bytes()).map_err(io)?;
        w.write_all(&(state.len() as u64).to_le_bytes()).map_err(io)?;
        w.write_all(state.as_bytes()).map_err(io)?;
        filter.write_to(&mut w)?;
        let file = w.into_inner().map_err(|e| bad(path, e.to_string()))?;
        file.sync_all().map_err(io)?;
        fs::rename(&temp, path).map_err(io)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Reads a checkpoint: the filter and the JSON state.
pub fn load(path: &Path) -> Result<(BloomFilter, String)> {
    let file = File::open(path).map_err(|e| bad(path, e.to_string()))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut head = [0u8; 20];
    r.read_exact(&mut head).map_err(|_| bad(path, "not a dedupe checkpoint (file too short)"))?;
    if head[..8] != MAGIC {
        return Err(bad(path, "not a dedupe checkpoint (bad magic bytes)"));
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version != VERSION {
        return Err(bad(path, format!("unsupported checkpoint version {version} (this build reads {VERSION})")));
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&head[12..20]);
    let len = u64::from_le_bytes(len_bytes);
    if len > MAX_STATE_LEN {
        return Err(bad(path, format!("corrupt checkpoint: state length {len}")));
    }
    let mut state = vec![0u8; len as usize];
    r.read_exact(&mut state).map_err(|_| bad(path, "corrupt checkpoint: truncated state"))?;
    let state = String::from_utf8(state).map_err(|_| bad(path, "corrupt checkpoint: state is not UTF-8"))?;
    let filter = BloomFilter::read_from(&mut r).map_err(|e| bad(path, format!("corrupt checkpoint filter: {e}")))?;
    let mut rest = [0u8; 1];
    if r.read(&mut rest).map_err(|e| bad(path, e.to_string()))? != 0 {
        return Err(bad(path, "corrupt checkpoint: trailing data"));
    }
    Ok((filter, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.bin");
        let filter = BloomFilter::new(1024, 3, 7).unwrap();
        assert!(!filter.insert(b"key"));
        save(&path, &filter, "{\"completed\":3}").unwrap();
        let (loaded, state) = load(&path).unwrap();
        assert_eq!(state, "{\"completed\":3}");
        assert!(loaded.contains(b"key") && !loaded.contains(b"other"));
        assert_eq!(loaded.to_bytes(), filter.to_bytes());

        let good = std::fs::read(&path).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            ([b"XXXXXXXX".as_slice(), &good[8..]].concat(), "bad magic"),
            ([&good[..8], &9u32.to_le_bytes(), &good[12..]].concat(), "version 9"),
            (good[..good.len() - 5].to_vec(), "truncated"),
            ([good.as_slice(), b"x"].concat(), "trailing"),
        ];
        for (data, want) in cases {
            std::fs::write(&path, data).unwrap();
            let err = load(&path).expect_err("must be rejected").to_string();
            assert!(err.contains(want) && err.contains("ck.bin"), "{err}");
        }
    }
}
