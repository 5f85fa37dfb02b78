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

/// Version of the way keys are derived from documents (hashing, splitting, n-grams); recorded with the
/// settings so that a filter filled by another derivation is never consulted as if it were compatible.
pub const KEY_FORMAT: u64 = 1;

impl DedupeConfig {
    /// The settings that decide which keys a document gives, as one JSON object keyed by the dotted
    /// configuration field (sorted keys, so equal settings give equal text). A filter records them: keys made
    /// under other settings would never match, so comparing them is how a rerun knows a filter can be used.
    /// The attribute name, `overlap_threshold` (what is marked, not what is inserted) and the output layout are
    /// not part of it.
    pub fn key_settings(&self) -> Result<String> {
        let mode = self.mode()?;
        let mut out = serde_json::Map::new();
        let mut put = |name: &str, value: serde_json::Value| {
            out.insert(name.to_string(), value);
        };
        put("key_format", KEY_FORMAT.into());
        match &mode {
            Mode::Documents { key, .. } => {
                put("mode", "documents".into());
                put("dedupe.documents.key", key.canonical().into());
            }
            Mode::Paragraphs { separator, .. } => {
                put("mode", "paragraphs".into());
                put("dedupe.paragraphs.paragraph_separator", separator.as_str().into());
            }
            Mode::Ngrams { separator, n, stride, skip_short, .. } => {
                put("mode", "paragraphs.by_ngram".into());
                put("dedupe.paragraphs.paragraph_separator", separator.as_str().into());
                put("dedupe.paragraphs.by_ngram.ngram_length", (*n as u64).into());
                put("dedupe.paragraphs.by_ngram.stride", (*stride as u64).into());
                put("dedupe.paragraphs.by_ngram.skip_short_paragraphs", (*skip_short).into());
            }
        }
        put("dedupe.skip_empty", self.skip_empty.into());
        put("dedupe.min_length", self.min_length.into());
        put("dedupe.min_words", self.min_words.into());
        // Key partitions pick the keys a filter holds; file partitions only pick the inputs.
        let (partitions, index) =
            if self.file_partition { (1, 0) } else { (self.num_partitions, self.partition_index) };
        put("dedupe.num_partitions", partitions.into());
        put("dedupe.partition_index", index.into());
        serde_json::to_string(&out).map_err(|e| DedupeError::Config(format!("cannot encode the key settings: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> serde_json::Value {
        let text = DedupeConfig::from_json(json).unwrap().key_settings().unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn key_settings_hold_what_decides_the_keys() {
        let ngrams = settings(
            r#"{"name": "a", "paragraphs": {"attribute_name": "x", "by_ngram": {"ngram_length": 6, "stride": 3,
                "overlap_threshold": 0.5}}, "min_words": 2}"#,
        );
        assert_eq!(ngrams["mode"], "paragraphs.by_ngram");
        assert_eq!(ngrams["dedupe.paragraphs.by_ngram.ngram_length"], 6);
        assert_eq!(ngrams["dedupe.paragraphs.by_ngram.stride"], 3);
        assert_eq!(ngrams["dedupe.min_words"], 2);
        assert_eq!(ngrams["key_format"], KEY_FORMAT);
        // Names, attribute names, the threshold (what is marked) and file partitions do not change the keys.
        let other = settings(
            r#"{"name": "b", "paragraphs": {"attribute_name": "y", "by_ngram": {"ngram_length": 6, "stride": 3,
                "overlap_threshold": 0.9}}, "min_words": 2, "num_partitions": 2, "partition_index": 1,
                "file_partition": true, "document_dir": "docs"}"#,
        );
        assert_eq!(ngrams, other);
        // Key partitions do, and spellings of one JSONPath are one key.
        let part = settings(r#"{"name": "a", "paragraphs": {"attribute_name": "x"}, "num_partitions": 3}"#);
        assert_eq!((part["dedupe.num_partitions"].as_u64(), part["mode"].as_str()), (Some(3), Some("paragraphs")));
        let a = settings(r#"{"name": "a", "documents": {"attribute_name": "x", "key": "$.metadata.url"}}"#);
        let b = settings(r#"{"name": "a", "documents": {"attribute_name": "x", "key": "$['metadata'][\"url\"]"}}"#);
        assert_eq!(a, b);
        assert_eq!(a["dedupe.documents.key"], "$.metadata.url");
    }
}
