//! The `dedupe` section of the configuration, decoded from the JSON the Python config struct encodes to.
//! Python is the one source of its defaults and sends every field (`dolma.dedupe.plan._rust_config`): a
//! missing field is an error here, as is an unknown one, so the two definitions cannot drift apart silently.
//! (`Option` fields are read with `Option::deserialize` so that serde does not take a missing one for None.)

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
    pub ngram_length: usize,
    pub stride: usize,
    pub overlap_threshold: f64,
    pub skip_short_paragraphs: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParagraphsConfig {
    pub attribute_name: String,
    pub paragraph_separator: String,
    #[serde(deserialize_with = "Option::deserialize")]
    pub by_ngram: Option<NgramConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    pub name: String,
    #[serde(deserialize_with = "Option::deserialize")]
    pub documents: Option<DocumentsConfig>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub paragraphs: Option<ParagraphsConfig>,
    pub skip_empty: bool,
    pub min_length: u64,
    pub min_words: u64,
    pub num_partitions: u64,
    pub partition_index: u64,
    pub file_partition: bool,
    pub document_dir: String,
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

/// Tests: the section `overrides` (partial JSON) completed with every other field at the value Python sends by
/// default, since `from_json` requires them all.
#[cfg(test)]
pub(crate) fn test_config(overrides: &str) -> DedupeConfig {
    use serde_json::{json, Value};
    fn merge(base: &mut Value, over: Value) {
        match (base, over) {
            (Value::Object(base), Value::Object(over)) => {
                for (name, value) in over {
                    merge(base.entry(name).or_insert(Value::Null), value);
                }
            }
            (base, over) => *base = over,
        }
    }
    let over: Value = serde_json::from_str(overrides).expect("test config JSON");
    let mut full = json!({
        "name": "dd", "documents": null, "paragraphs": null, "skip_empty": false, "min_length": 0,
        "min_words": 0, "num_partitions": 1, "partition_index": 0, "file_partition": false,
        "document_dir": "documents",
    });
    if over.get("paragraphs").is_some_and(Value::is_object) {
        full["paragraphs"] = json!({"paragraph_separator": "\n", "by_ngram": null});
        if over["paragraphs"].get("by_ngram").is_some_and(Value::is_object) {
            full["paragraphs"]["by_ngram"] =
                json!({"ngram_length": 5, "stride": 1, "overlap_threshold": 1.0, "skip_short_paragraphs": false});
        }
    }
    merge(&mut full, over);
    DedupeConfig::from_json(&full.to_string()).expect("test config")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> serde_json::Value {
        let text = test_config(json).key_settings().unwrap();
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

    #[test]
    fn every_field_is_required_and_no_other() {
        let full = r#"{"name": "a", "documents": null, "paragraphs": {"attribute_name": "x",
            "paragraph_separator": "\n", "by_ngram": null}, "skip_empty": false, "min_length": 0, "min_words": 0,
            "num_partitions": 1, "partition_index": 0, "file_partition": false, "document_dir": "documents"}"#;
        assert!(DedupeConfig::from_json(full).is_ok());
        // Top-level fields, an Option (documents) and fields of a nested section.
        for (parent, field) in [
            ("", "min_words"),
            ("", "documents"),
            ("/paragraphs", "by_ngram"),
            ("/paragraphs", "paragraph_separator"),
            ("", "document_dir"),
        ] {
            let mut config: serde_json::Value = serde_json::from_str(full).unwrap();
            config.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(field);
            let err = DedupeConfig::from_json(&config.to_string()).unwrap_err().to_string();
            assert!(err.contains(&format!("missing field `{field}`")), "{field}: {err}");
        }
        let unknown = full.replace(r#""min_words": 0"#, r#""min_words": 0, "max_words": 9"#);
        let err = DedupeConfig::from_json(&unknown).unwrap_err().to_string();
        assert!(err.contains("unknown field `max_words`"), "{err}");
    }
}
