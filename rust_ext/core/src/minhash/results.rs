//! The clustering result of one documents file: one record per document that belongs to a cluster of two or
//! more documents (its keeper included), in line order. Documents not listed are unique.
//!
//! Format, version 1, little-endian: magic `b"DOLMAMHR"`, `u32` version, `u32` zero, `u32` file index, `u32`
//! source path length `L`, `u64` record count `C`, `u64` documents in the file, `u64` parameter fingerprint,
//! 16 zero bytes (64 bytes in all), the source path padded with zeros to a multiple of 8, then `C` records of
//! 40 bytes: `u64` line, `u64` ordinal, `u64` cluster id (= the keeper's ordinal), `u64` keeper's line, `u32`
//! keeper's file index, `f32` similarity to the keeper (1 for the keeper itself); last, a `u64` checksum:
//! XXH3-64 of every byte before it.
//!
//! An ordinal is a document's position (from 0) among all documents of the run in the stable order: input
//! files in order, then lines. The keeper of a cluster is its document of smallest ordinal.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use super::unit::temp_path;
use super::{format_err, io_err, Result};

pub const MAGIC: [u8; 8] = *b"DOLMAMHR";
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
pub const RECORD_LEN: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResultRecord {
    pub line: u64,
    pub ordinal: u64,
    pub cluster: u64,
    pub keeper_line: u64,
    pub keeper_file: u32,
    pub similarity: f32,
}

impl ResultRecord {
    pub fn is_keeper(&self) -> bool {
        self.ordinal == self.cluster
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultHeader {
    pub file_index: u32,
    pub documents: u64,
    pub fingerprint: u64,
    pub source: String,
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Writes a result file atomically (temporary name, then rename).
pub fn write_results(path: &Path, header: &ResultHeader, records: &[ResultRecord]) -> Result<()> {
    let mut out = Vec::with_capacity(HEADER_LEN + pad8(header.source.len()) + records.len() * RECORD_LEN + 8);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&header.file_index.to_le_bytes());
    out.extend_from_slice(&(header.source.len() as u32).to_le_bytes());
    for v in [records.len() as u64, header.documents, header.fingerprint] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(header.source.as_bytes());
    out.resize(pad8(out.len()), 0);
    for r in records {
        for v in [r.line, r.ordinal, r.cluster, r.keeper_line] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&r.keeper_file.to_le_bytes());
        out.extend_from_slice(&r.similarity.to_le_bytes());
    }
    let checksum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let temp = temp_path(path, "tmp");
    let result = File::create(&temp)
        .and_then(|mut f| f.write_all(&out))
        .and_then(|()| fs::rename(&temp, path))
        .map_err(|e| io_err(path, e));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(x)
}

/// Reads and verifies a result file.
pub fn read_results(path: &Path) -> Result<(ResultHeader, Vec<ResultRecord>)> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| io_err(path, e))?;
    if bytes.len() < HEADER_LEN + 8 {
        return Err(format_err(path, "not a MinHash result file (too short)"));
    }
    if bytes[..8] != MAGIC {
        return Err(format_err(path, "not a MinHash result file (bad magic bytes)"));
    }
    let version = u32_at(&bytes, 8);
    if version != VERSION {
        return Err(format_err(
            path,
            format!("unsupported result file version {version} (this build reads version {VERSION})"),
        ));
    }
    let source_len = u32_at(&bytes, 20) as usize;
    let count = u64_at(&bytes, 24);
    let expected =
        (count.checked_mul(RECORD_LEN as u64)).and_then(|r| r.checked_add((HEADER_LEN + pad8(source_len) + 8) as u64));
    if expected != Some(bytes.len() as u64) {
        return Err(format_err(path, "damaged result file (size does not match its header)"));
    }
    let body = bytes.len() - 8;
    if xxhash_rust::xxh3::xxh3_64(&bytes[..body]) != u64_at(&bytes, body) {
        return Err(format_err(path, "damaged result file (checksum mismatch)"));
    }
    let source = std::str::from_utf8(&bytes[HEADER_LEN..HEADER_LEN + source_len])
        .map_err(|_| format_err(path, "damaged result file (source path is not UTF-8)"))?;
    let header = ResultHeader {
        file_index: u32_at(&bytes, 16),
        documents: u64_at(&bytes, 32),
        fingerprint: u64_at(&bytes, 40),
        source: source.to_string(),
    };
    let start = HEADER_LEN + pad8(source_len);
    let records = bytes[start..body]
        .chunks_exact(RECORD_LEN)
        .map(|r| ResultRecord {
            line: u64_at(r, 0),
            ordinal: u64_at(r, 8),
            cluster: u64_at(r, 16),
            keeper_line: u64_at(r, 24),
            keeper_file: u32_at(r, 32),
            similarity: f32::from_le_bytes([r[36], r[37], r[38], r[39]]),
        })
        .collect();
    Ok((header, records))
}

/// The records part of a result file as raw bytes (for zero-copy readers such as numpy), after verification.
pub fn read_result_bytes(path: &Path) -> Result<(ResultHeader, Vec<u8>)> {
    let (header, records) = read_results(path)?;
    let mut out = Vec::with_capacity(records.len() * RECORD_LEN);
    for r in &records {
        for v in [r.line, r.ordinal, r.cluster, r.keeper_line] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&r.keeper_file.to_le_bytes());
        out.extend_from_slice(&r.similarity.to_le_bytes());
    }
    Ok((header, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.mhr");
        let header = ResultHeader { file_index: 2, documents: 9, fingerprint: 77, source: "a/b.jsonl".into() };
        let records = vec![
            ResultRecord { line: 1, ordinal: 4, cluster: 4, keeper_line: 1, keeper_file: 2, similarity: 1.0 },
            ResultRecord { line: 5, ordinal: 6, cluster: 0, keeper_line: 3, keeper_file: 0, similarity: 0.75 },
        ];
        write_results(&path, &header, &records).unwrap();
        assert_eq!(read_results(&path).unwrap(), (header.clone(), records.clone()));
        assert!(records[0].is_keeper() && !records[1].is_keeper());
        assert_eq!(read_result_bytes(&path).unwrap().1.len(), 80);
        let good = fs::read(&path).unwrap();
        let mut bad = good.clone();
        bad[70] ^= 1;
        fs::write(&path, &bad).unwrap();
        assert!(read_results(&path).unwrap_err().to_string().contains("checksum"));
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(read_results(&path).unwrap_err().to_string().contains("size"));
        fs::write(&path, b"DOLMAMHK").unwrap();
        assert!(read_results(&path).unwrap_err().to_string().contains("too short"));
    }
}
