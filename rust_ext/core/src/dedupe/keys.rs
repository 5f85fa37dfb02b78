// Longer than 400 lines because its unit tests (the code above them is about 250 lines).
//! The key-extraction plan: which keys a document gives, in which order, and which span each marks. It is the
//! one walk from a document's key text to its keys, shared by the local Bloom-filter run ([`super::pipeline`])
//! and the key path of a distributed run ([`super::spark_keys`]), so the two can never disagree on what is a
//! repeat.
//!
//! [`KeyPlan::units`] turns a key text (the document key in documents mode, the text in the paragraph modes)
//! into [`Units`] (what the attribute line needs: spans and how many keys each has) and appends the keys
//! themselves, in slot order, to a list. What a key *is* (a Bloom-filter probe, a 64-bit hash) is up to the
//! caller's [`KeyHasher`]. [`judge`] walks the same units back, given the answer "seen before?" for each key
//! in slot order, and gives the document's marks.
//!
//! Slot order: documents mode one key; paragraphs mode one per looked-up paragraph; n-gram mode one per
//! n-gram looked up, and for a short paragraph its whole text then (with exactly n words) its one n-gram,
//! which is only inserted, never asked about.

use super::config::{DedupeConfig, Mode};
use super::format::{DocMarks, Score};
use super::text;

/// Seed of the hash that assigns keys to partitions (independent of the Bloom filter's seeds).
const PARTITION_SEED: u64 = 0x005E_ED0F_9A27;

/// What a paragraph gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParaKind {
    /// Not looked up (empty, too short, or in another key partition): no key.
    Skip,
    /// The paragraph's text: one key.
    Exact,
    /// N-gram mode, a paragraph with at most `n` words: its whole text is looked up (one key); with exactly
    /// `n` words its one n-gram is inserted after it (`ngram`: one more key).
    Short { ngram: bool },
    /// N-gram mode: this many n-gram keys.
    Ngrams(usize),
}

/// One paragraph of a document and its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Para {
    /// Span in code points (what is marked).
    pub start: u64,
    pub end: u64,
    /// UTF-8 bytes of the paragraph and its separator, for statistics (0 once read back from a skeleton).
    pub bytes: u64,
    pub kind: ParaKind,
}

/// What a document gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Units {
    /// No attribute key in the output (paragraph modes: empty text; documents mode: another key partition).
    NoKey,
    /// Documents mode, key too short or empty: an empty list in the output.
    SkippedDoc,
    /// Documents mode: one key, marking `[0, len)` (`len`: code points of the key).
    Doc { len: u64 },
    /// The paragraphs, in order.
    Paras(Vec<Para>),
}

/// Turns key units into the values a consumer looks up. Called in slot order.
pub(crate) trait KeyHasher<'t> {
    type Key;
    /// The key of a whole text: a document key or a paragraph.
    fn text(&mut self, text: &'t str) -> Self::Key;
    /// Splits a paragraph into words for its n-grams; returns the number of words.
    fn words(&mut self, text: &'t str) -> usize;
    /// The key of the n-gram of words `first..first + n` of the paragraph last given to [`KeyHasher::words`].
    fn ngram(&mut self, first: usize, n: usize) -> Self::Key;
}

#[derive(Debug, Clone)]
enum Split {
    Documents,
    Paragraphs { separator: String },
    Ngrams { separator: String, n: usize, stride: usize, skip_short: bool },
}

/// The rules of one dedupe configuration that decide a document's keys.
#[derive(Debug, Clone)]
pub(crate) struct KeyPlan {
    split: Split,
    skip_empty: bool,
    min_length: u64,
    min_words: u64,
    /// `(num_partitions, partition_index)` when keys are partitioned (not file partitions).
    partition: Option<(u64, u64)>,
    /// Mark threshold of n-gram mode (1 otherwise).
    threshold: f64,
}

impl KeyPlan {
    /// The plan of `config`, whose validated mode is `mode`.
    pub(crate) fn new(config: &DedupeConfig, mode: &Mode) -> Self {
        let (split, threshold) = match mode {
            Mode::Documents { .. } => (Split::Documents, 1.0),
            Mode::Paragraphs { separator, .. } => (Split::Paragraphs { separator: separator.clone() }, 1.0),
            Mode::Ngrams { separator, n, stride, skip_short, threshold, .. } => (
                Split::Ngrams { separator: separator.clone(), n: *n, stride: *stride, skip_short: *skip_short },
                *threshold,
            ),
        };
        let partition = (config.num_partitions > 1 && !config.file_partition)
            .then_some((config.num_partitions, config.partition_index));
        KeyPlan {
            split,
            skip_empty: config.skip_empty,
            min_length: config.min_length,
            min_words: config.min_words,
            partition,
            threshold,
        }
    }

    /// Whether the plan makes n-gram keys (callers reserve room for many keys per paragraph).
    pub(crate) fn ngrams(&self) -> bool {
        matches!(self.split, Split::Ngrams { .. })
    }

    fn in_partition(&self, key: &[u8]) -> bool {
        self.partition.is_none_or(|(count, index)| crate::xxh3_64(key, PARTITION_SEED) % count == index)
    }

    /// Whether a text is too short or empty to be looked up (`skip_empty`, `min_length`, `min_words`).
    fn too_small(&self, text: &str) -> bool {
        (self.skip_empty && text::is_blank(text))
            || (self.min_length > 0 && text::chars(text) < self.min_length)
            || (self.min_words > 0 && text::word_count(text) < self.min_words)
    }

    /// The units of a document whose key text is `key`; its keys are appended to `keys` in slot order.
    pub(crate) fn units<'t, H: KeyHasher<'t>>(&self, key: &'t str, hasher: &mut H, keys: &mut Vec<H::Key>) -> Units {
        let (separator, ngram) = match &self.split {
            Split::Documents => {
                return if self.too_small(key) {
                    Units::SkippedDoc
                } else if !self.in_partition(key.as_bytes()) {
                    Units::NoKey
                } else {
                    keys.push(hasher.text(key));
                    Units::Doc { len: text::chars(key) }
                };
            }
            Split::Paragraphs { separator } => (separator, None),
            Split::Ngrams { separator, n, stride, skip_short } => (separator, Some((*n, *stride, *skip_short))),
        };
        if key.is_empty() {
            return Units::NoKey;
        }
        let paras = text::paragraphs(key, separator)
            .into_iter()
            .map(|p| {
                let kind = if self.too_small(p.text) || !self.in_partition(p.text.as_bytes()) {
                    ParaKind::Skip
                } else {
                    match ngram {
                        None => {
                            keys.push(hasher.text(p.text));
                            ParaKind::Exact
                        }
                        Some((n, stride, skip_short)) => {
                            let count = hasher.words(p.text);
                            // Like the reference: with skip_short_paragraphs, fewer than n words are skipped and
                            // exactly n words form one n-gram; without it, up to n words are compared whole.
                            if skip_short && count < n {
                                ParaKind::Skip
                            } else if !skip_short && count <= n {
                                keys.push(hasher.text(p.text));
                                if count == n {
                                    keys.push(hasher.ngram(0, n));
                                }
                                ParaKind::Short { ngram: count == n }
                            } else {
                                let before = keys.len();
                                keys.extend(text::ngram_windows(count, n, stride).map(|j| hasher.ngram(j, n)));
                                ParaKind::Ngrams(keys.len() - before)
                            }
                        }
                    }
                };
                Para { start: p.start, end: p.end, bytes: p.bytes, kind }
            })
            .collect();
        Units::Paras(paras)
    }

    /// The marks of a document given, for each of its keys in slot order, whether it was seen before:
    /// `seen(need)` is called once per key, `need` false for a key that is only inserted (its answer is not
    /// used). `doc_bytes` is what a marked document key counts in [`Judged::bytes_marked`].
    pub(crate) fn judge(&self, units: &Units, doc_bytes: u64, mut seen: impl FnMut(bool) -> bool) -> Judged {
        let mut judged = Judged::default();
        judged.marks = match units {
            Units::NoKey => None,
            Units::SkippedDoc => Some(Vec::new()),
            Units::Doc { len } => {
                judged.looked_up = 1;
                if seen(true) {
                    judged.bytes_marked = doc_bytes;
                    Some(vec![(0, *len, Score::One)])
                } else {
                    None
                }
            }
            Units::Paras(paras) => {
                let mut marks = Vec::new();
                for para in paras {
                    let score = match para.kind {
                        ParaKind::Skip => continue,
                        ParaKind::Exact => seen(true).then_some(Score::One),
                        ParaKind::Short { ngram } => {
                            let hit = seen(true);
                            if ngram {
                                seen(false);
                            }
                            let score = if hit { 1.0f32 } else { 0.0 };
                            (f64::from(score) >= self.threshold).then_some(Score::Fraction(score))
                        }
                        ParaKind::Ngrams(count) => {
                            let hits = (0..count).filter(|_| seen(true)).count();
                            let score = hits as f32 / count as f32;
                            (f64::from(score) >= self.threshold).then_some(Score::Fraction(score))
                        }
                    };
                    judged.looked_up += 1;
                    if let Some(score) = score {
                        judged.bytes_marked += para.bytes;
                        marks.push((para.start, para.end, score));
                    }
                }
                Some(marks)
            }
        };
        judged
    }
}

/// The outcome of [`KeyPlan::judge`] for one document.
#[derive(Debug, Default)]
pub(crate) struct Judged {
    /// `None`: no attribute key in the output; `Some`: a (possibly empty) list of marked spans.
    pub marks: DocMarks,
    /// Units looked up: the document key, or the paragraphs not skipped.
    pub looked_up: u64,
    /// Bytes of the marked units.
    pub bytes_marked: u64,
}

impl Judged {
    /// Number of marked spans.
    pub(crate) fn marked(&self) -> u64 {
        self.marks.as_ref().map_or(0, |m| m.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys as readable strings: a text key is the text, an n-gram key its words joined by '+'.
    #[derive(Default)]
    struct Readable<'t> {
        words: Vec<&'t str>,
    }

    impl<'t> KeyHasher<'t> for Readable<'t> {
        type Key = String;
        fn text(&mut self, text: &'t str) -> String {
            text.to_string()
        }
        fn words(&mut self, text: &'t str) -> usize {
            self.words = text::words(text).collect();
            self.words.len()
        }
        fn ngram(&mut self, first: usize, n: usize) -> String {
            self.words[first..first + n].join("+")
        }
    }

    fn plan(section: &str) -> KeyPlan {
        let config = crate::dedupe::config::test_config(section);
        let mode = config.mode().unwrap();
        KeyPlan::new(&config, &mode)
    }

    fn keys_of(plan: &KeyPlan, text: &str) -> (Units, Vec<String>) {
        let mut keys = Vec::new();
        let units = plan.units(text, &mut Readable::default(), &mut keys);
        (units, keys)
    }

    fn para(start: u64, end: u64, bytes: u64, kind: ParaKind) -> Para {
        Para { start, end, bytes, kind }
    }

    const DOCS: &str = r#"{"name":"x","documents":{"attribute_name":"d","key":"$.text"}"#;
    const PARAS: &str = r#"{"name":"x","paragraphs":{"attribute_name":"p"}"#;

    #[test]
    fn documents_mode_gives_one_key_or_none() {
        let p = plan(&format!("{DOCS}}}"));
        assert_eq!(keys_of(&p, "hé"), (Units::Doc { len: 2 }, vec!["hé".to_string()]));
        // empty and blank keys are keys unless skip_empty
        assert_eq!(keys_of(&p, ""), (Units::Doc { len: 0 }, vec![String::new()]));
        let p = plan(&format!(r#"{DOCS},"skip_empty":true}}"#));
        assert_eq!(keys_of(&p, " \n"), (Units::SkippedDoc, vec![]));
        let p = plan(&format!(r#"{DOCS},"min_length":3}}"#));
        assert_eq!(keys_of(&p, "héé").0, Units::Doc { len: 3 });
        assert_eq!(keys_of(&p, "hé"), (Units::SkippedDoc, vec![]));
        let p = plan(&format!(r#"{DOCS},"min_words":2}}"#));
        assert_eq!(keys_of(&p, "a b").0, Units::Doc { len: 3 });
        assert_eq!(keys_of(&p, "ab "), (Units::SkippedDoc, vec![]));
    }

    #[test]
    fn paragraphs_mode_gives_a_key_per_paragraph_in_order() {
        let p = plan(&format!("{PARAS}}}"));
        let (units, keys) = keys_of(&p, "x\n\ny\n");
        let want = vec![
            para(0, 2, 2, ParaKind::Exact),
            para(2, 3, 1, ParaKind::Exact),
            para(3, 4, 2, ParaKind::Exact),
            para(4, 4, 0, ParaKind::Exact),
        ];
        assert_eq!(units, Units::Paras(want));
        assert_eq!(keys, ["x", "", "y", ""]);
        // empty text: no attribute at all
        assert_eq!(keys_of(&p, ""), (Units::NoKey, vec![]));
        let p = plan(&format!(r#"{PARAS},"skip_empty":true,"min_words":2}}"#));
        let (units, keys) = keys_of(&p, "one two\n \nthree");
        let Units::Paras(paras) = units else { panic!("paragraphs expected") };
        assert_eq!(
            paras.iter().map(|p| p.kind).collect::<Vec<_>>(),
            [ParaKind::Exact, ParaKind::Skip, ParaKind::Skip]
        );
        assert_eq!(keys, ["one two"]);
        let p = plan(&format!(r#"{PARAS},"min_length":4}}"#));
        assert_eq!(keys_of(&p, "abc\nabcd").1, ["abcd"]);
    }

    #[test]
    fn ngram_mode_orders_ngrams_and_short_paragraphs() {
        let p = plan(r#"{"name":"x","paragraphs":{"attribute_name":"p","by_ngram":{"ngram_length":2}}}"#);
        let (units, keys) = keys_of(&p, "a b c\nb c\nz");
        let Units::Paras(paras) = units else { panic!("paragraphs expected") };
        let kinds: Vec<ParaKind> = paras.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [ParaKind::Ngrams(2), ParaKind::Short { ngram: true }, ParaKind::Short { ngram: false }]);
        // a short paragraph: its whole text, then its one n-gram when it has exactly n words
        assert_eq!(keys, ["a+b", "b+c", "b c", "b+c", "z"]);
        let p = plan(
            r#"{"name":"x","paragraphs":{"attribute_name":"p","by_ngram":{"ngram_length":2,"stride":2,"skip_short_paragraphs":true}}}"#,
        );
        let (units, keys) = keys_of(&p, "a b c d e\nb c\nz");
        let Units::Paras(paras) = units else { panic!("paragraphs expected") };
        let kinds: Vec<ParaKind> = paras.iter().map(|p| p.kind).collect();
        // stride 2: windows 0, 1, 3; skip_short: exactly n words is one n-gram, fewer is skipped
        assert_eq!(kinds, [ParaKind::Ngrams(3), ParaKind::Ngrams(1), ParaKind::Skip]);
        assert_eq!(keys, ["a+b", "b+c", "d+e", "b+c"]);
    }

    #[test]
    fn key_partitions_keep_only_their_keys() {
        let texts: Vec<String> = (0..40).map(|i| format!("paragraph {i}")).collect();
        let text = texts.join("\n");
        let mut seen = Vec::new();
        for index in 0..2 {
            let p = plan(&format!(r#"{PARAS},"num_partitions":2,"partition_index":{index}}}"#));
            seen.extend(keys_of(&p, &text).1);
            let p = plan(&format!(r#"{DOCS},"num_partitions":2,"partition_index":{index}}}"#));
            let kept: Vec<bool> = texts.iter().map(|t| keys_of(&p, t).0 != Units::NoKey).collect();
            assert!(kept.contains(&true) && kept.contains(&false), "both partitions get documents");
        }
        seen.sort();
        let mut all = texts.clone();
        all.sort();
        assert_eq!(seen, all, "every paragraph is in exactly one partition");
        // file partitions do not split keys
        let p = plan(&format!(r#"{PARAS},"num_partitions":2,"partition_index":1,"file_partition":true}}"#));
        assert_eq!(keys_of(&p, &text).1.len(), 40);
    }

    #[test]
    fn judge_walks_keys_in_slot_order() {
        let p = plan(
            r#"{"name":"x","paragraphs":{"attribute_name":"p","by_ngram":{"ngram_length":2,"overlap_threshold":0.5}}}"#,
        );
        let (units, keys) = keys_of(&p, "a b c\nb c\nz");
        // answers per slot: n-grams [hit, miss], short [hit, (inserted only)], short [miss]
        let answers = [true, false, true, true, false];
        let mut asked = Vec::new();
        let judged = p.judge(&units, 0, |need| {
            asked.push(need);
            answers[asked.len() - 1]
        });
        assert_eq!(asked, [true, true, true, false, true]);
        assert_eq!(asked.len(), keys.len());
        assert_eq!(judged.looked_up, 3);
        assert_eq!(judged.bytes_marked, 6 + 4);
        let marks: Vec<(u64, u64, f32)> = judged
            .marks
            .unwrap()
            .into_iter()
            .map(|(s, e, score)| (s, e, if let Score::Fraction(f) = score { f } else { 2.0 }))
            .collect();
        assert_eq!(marks, [(0, 6, 0.5), (6, 10, 1.0)]);
    }

    #[test]
    fn judge_of_documents_and_empty_units() {
        let p = plan(&format!("{DOCS}}}"));
        let judged = p.judge(&Units::Doc { len: 4 }, 9, |_| true);
        assert_eq!((judged.looked_up, judged.bytes_marked, judged.marked()), (1, 9, 1));
        assert!(matches!(judged.marks.as_deref(), Some([(0, 4, Score::One)])));
        let judged = p.judge(&Units::Doc { len: 4 }, 9, |_| false);
        assert!(judged.marks.is_none() && judged.looked_up == 1 && judged.bytes_marked == 0);
        let judged = p.judge(&Units::SkippedDoc, 9, |_| panic!("no key to ask about"));
        assert!(matches!(judged.marks.as_deref(), Some([])));
        assert!(p.judge(&Units::NoKey, 9, |_| panic!("no key to ask about")).marks.is_none());
        let p = plan(&format!("{PARAS}}}"));
        let units = Units::Paras(vec![para(0, 2, 2, ParaKind::Skip), para(2, 3, 1, ParaKind::Exact)]);
        let judged = p.judge(&units, 9, |_| true);
        assert!(matches!(judged.marks.as_deref(), Some([(2, 3, Score::One)])));
        assert_eq!((judged.looked_up, judged.bytes_marked), (1, 1));
    }
}
