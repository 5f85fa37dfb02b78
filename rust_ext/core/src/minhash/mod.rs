//! MinHash-LSH near-duplicate detection: the engine behind a `minhash` dedupe mode.
//!
//! The work is split in two phases so that the first one runs per input file (a unit that any executor can
//! schedule, retry and resume) and the second one needs memory bounded by a budget, not by corpus size:
//!
//! 1. [`unit::UnitWriter`]: shingles ([`shingle`]), MinHash signatures ([`signature`]) and LSH band keys
//!    ([`lsh`]) of every document of one input file, written as one checked binary file ([`unit`]).
//! 2. [`cluster::cluster`]: an external sort of all `(band key, document ordinal)` records ([`sort`]) that
//!    groups equal keys, candidate pairs from each bucket, optional verification, connected components by
//!    union-find, and one result file per input file ([`results`]).
//!
//! Every result depends only on the documents and their stable order (input file order, then line): never on
//! thread counts, on how files were cut into batches, or on the memory budget.

pub mod cluster;
pub mod config;
pub mod lsh;
pub mod read;
pub mod results;
pub mod shingle;
pub mod signature;
pub mod sort;
pub mod unit;

#[cfg(test)]
mod tests;

use std::io;
use std::path::Path;

pub use cluster::{cluster, ClusterOptions, ClusterStats, Verify};
pub use config::{MinHashConfig, Signer};
pub use lsh::Bands;
pub use shingle::{Shingler, Tokenizer};
pub use signature::{HashKind, MinHasher, Scheme};

/// Everything that can go wrong in the MinHash engine; each variant names what the user has to fix.
#[derive(Debug, thiserror::Error)]
pub enum MinHashError {
    /// An invalid parameter (names the field).
    #[error("{field}: {reason}")]
    Config { field: String, reason: String },
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    /// A file that is not one of ours, from another version or configuration, or damaged.
    #[error("{path}: {reason}")]
    Format { path: String, reason: String },
    /// The caller asked the work to stop (a signal arrived while it ran without the interpreter).
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T> = std::result::Result<T, MinHashError>;

pub(crate) fn config_err(field: &str, reason: impl Into<String>) -> MinHashError {
    MinHashError::Config { field: field.to_string(), reason: reason.into() }
}

pub(crate) fn io_err(path: &Path, source: io::Error) -> MinHashError {
    MinHashError::Io { path: path.display().to_string(), source }
}

pub(crate) fn format_err(path: &Path, reason: impl Into<String>) -> MinHashError {
    MinHashError::Format { path: path.display().to_string(), reason: reason.into() }
}
