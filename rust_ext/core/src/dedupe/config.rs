//! The `dedupe` section of the configuration, decoded from the JSON the Python config struct encodes to.
//! Unknown fields are errors, so the Python and Rust definitions cannot drift apart silently.

use serde::Deserialize;

use super::jsonpath::JsonPath;
use super::{DedupeError, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentsConfig {
    pub attribute_name: String,
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NgramConfig {
    #[serde(default = "default_ngram_length")]
    pub ngram_length: usize,
    #[serde(default = "one")]
    pub stride: usize,
    #[serde(default = "default_threshold")]
    pub overlap_threshold: f64,
    #[serde(default)]
    pub skip_short_paragraphs: bool,
}

fn default_ngram_length() -> usize {
    5
}

fn one() -> usize {
    1
}

fn default_threshold() -> f64 {
    1.0
}

fn newline() -> String {
    "\n".to_string()
}

fn documents_dir() -> String {
    "documents".to_string()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParagraphsConfig {
    pub attribute_name: String,
    #[serde(default = "newline")]
    pub paragraph_separator: String,
    #[serde(default)]
    pub by_ngram: Option<NgramConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    pub name: String,
    #[serde(default)]
    pub documents: Option<DocumentsConfig>,
    #[serde(default)]
    pub paragraphs: Option<ParagraphsConfig>,
    #[serde(default)]
    pub skip_empty: bool,
    #[serde(default)]
    pub min_length: u64,
    #[serde(default)]
    pub min_words: u64,
    #[serde(default = "one_u64")]
    pub num_partitions: u64,
    #[serde(default)]
    pub partition_index: u64,
    #[serde(default)]
    pub file_partition: bool,
    #[serde(default = "documents_dir")]
    pub document_dir: String,
}

fn one_u64() -> u64 {
    1
}

/// What is deduplicated, with its options checked and parsed.
#[derive(Debug, Clone)]
pub enum Mode {
    Documents { attribute: String, key: JsonPath },
    Paragraphs { attribute: String, separator: String },
    Ngrams { attribute: String, separator: String, n: usize, stride: usize, threshold: f64, skip_short: bool },
}

impl DedupeConfig {
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| DedupeError::Config(format!("invalid dedupe configuration: {e}")))
    }

    /// Validates the options and returns the mode they select.
    pub fn mode(&self) -> Result<Mode> {
        let bad = |msg: String| Err(DedupeError::Config(msg));
        if self.num_partitions == 0 {
            return bad("dedupe.num_partitions must be at least 1".to_string());
        }
        if self.partition_index >= self.num_partitions {
            return bad(format!(
                "dedupe.partition_index must be in [0, {}), got {}",
                self.num_partitions, self.partition_index
            ));
        }
        match (&self.documents, &self.paragraphs) {
            (Some(_), Some(_)) => bad("give only one of dedupe.documents and dedupe.paragraphs".to_string()),
            (None, None) => bad("one of dedupe.documents or dedupe.paragraphs is required".to_string()),
            (Some(docs), None) => {
                if docs.attribute_name.is_empty() {
                    return bad("dedupe.documents.attribute_name must not be empty".to_string());
                }
                let key = JsonPath::parse(&docs.key)
                    .map_err(|e| DedupeError::Config(format!("dedupe.documents.key: {e}")))?;
                Ok(Mode::Documents { attribute: docs.attribute_name.clone(), key })
            }
            (None, Some(paras)) => {
                if paras.attribute_name.is_empty() {
                    return bad("dedupe.paragraphs.attribute_name must not be empty".to_string());
                }
                if paras.paragraph_separator.is_empty() {
                    return bad("dedupe.paragraphs.paragraph_separator must not be empty".to_string());
                }
                let attribute = paras.attribute_name.clone();
                let separator = paras.paragraph_separator.clone();
                match &paras.by_ngram {
                    None => Ok(Mode::Paragraphs { attribute, separator }),
                    Some(ng) => {
                        if ng.ngram_length == 0 {
                            return bad("dedupe.paragraphs.by_ngram.ngram_length must be at least 1".to_string());
                        }
                        if ng.stride == 0 {
                            return bad("dedupe.paragraphs.by_ngram.stride must be at least 1".to_string());
                        }
                        if !(0.0..=1.0).contains(&ng.overlap_threshold) {
                            return bad(format!(
                                "dedupe.paragraphs.by_ngram.overlap_threshold must be in [0, 1], got {}",
                                ng.overlap_threshold
                            ));
                        }
                        Ok(Mode::Ngrams {
                            attribute,
                            separator,
                            n: ng.ngram_length,
                            stride: ng.stride,
                            threshold: ng.overlap_threshold,
                            skip_short: ng.skip_short_paragraphs,
                        })
                    }
                }
            }
        }
    }
}

impl Mode {
    pub fn attribute(&self) -> &str {
        match self {
            Mode::Documents { attribute, .. }
            | Mode::Paragraphs { attribute, .. }
            | Mode::Ngrams { attribute, .. } => attribute,
        }
    }
}
