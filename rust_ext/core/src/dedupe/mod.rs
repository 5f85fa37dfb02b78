//! The deduplication pipeline behind `dolma dedupe`: read documents files, split them into keys (whole
//! documents, paragraphs or word n-grams), test-and-insert the keys in a Bloom filter in a stable order, and
//! write attribute files that mark the repeats.
//!
//! Work is split in two so results never depend on the thread count: parsing and hashing run in parallel
//! (files and lines), while the Bloom filter is consulted in one thread in input order (sorted files, then
//! lines). See [`pipeline`].

pub mod config;
pub(crate) mod document;
pub mod files;
pub(crate) mod format;
pub use format::attribute_rows;
pub mod jsonpath;
pub(crate) mod keys;
pub(crate) mod lines;
pub mod pipeline;
pub mod spark_keys;
pub mod text;
pub mod wordclass;

pub use config::DedupeConfig;
pub use files::fingerprint_file;
pub use pipeline::{Deduper, FileJob, RunStats};

use std::io;

use crate::bloom::BloomError;

/// Everything that can go wrong in a dedupe run; each variant names what the user has to fix.
#[derive(Debug, thiserror::Error)]
pub enum DedupeError {
    /// An invalid configuration value.
    #[error("{0}")]
    Config(String),
    /// A documents line that cannot be used (bad JSON, missing or mistyped field).
    #[error("{path}:{line}: field '{field}': {reason}")]
    BadLine { path: String, line: u64, field: String, reason: String },
    /// A good document without the value of the JSONPath dedupe key. Not a bad line: it cannot be skipped, since
    /// the attribute files must have a row for every good line.
    #[error("{path}:{line}: field '{field}': missing (the dedupe key must be present in every document)")]
    MissingKey { path: String, line: u64, field: String },
    /// A file that cannot be read, decompressed or written.
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(transparent)]
    Bloom(#[from] BloomError),
    /// The run was asked to stop (`Deduper::run_until`).
    #[error("stopped before the end of the run")]
    Stopped,
}

pub type Result<T> = std::result::Result<T, DedupeError>;

pub(crate) fn io_err(path: &str, source: io::Error) -> DedupeError {
    DedupeError::Io { path: path.to_string(), source }
}
