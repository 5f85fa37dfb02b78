//! Shingles: the set a document's MinHash signature summarises.
//!
//! - `words` (default): the text is lower-cased (Unicode full lower-case mapping, `str::to_lowercase`; on
//!   ASCII text the same as `to_ascii_lowercase`), then split at Unicode word boundaries (UAX #29, as the
//!   `unicode-segmentation` crate's `unicode_words`: the segments between word boundaries that contain at
//!   least one alphabetic or numeric character, so whitespace and punctuation are dropped; segmented by the
//!   dedupe module's `words_into`, which gives the crate's boundaries with a fast path for ASCII). A shingle
//!   is `n` consecutive words joined by one space.
//! - `chars`: the text is lower-cased and every run of Unicode whitespace becomes one space (leading and
//!   trailing whitespace removed); a shingle is `n` consecutive code points of that normalised text.
//!   Punctuation is kept.
//!
//! A text with fewer than `n` units (words or code points) but at least one has exactly one shingle: all of
//! its units (so two identical short texts are still duplicates of each other, and a short text can never
//! match a part of a longer one). A text with no unit at all (empty, only whitespace or, in `words` mode,
//! only punctuation) has no shingles, and a document without shingles is never a duplicate.
//!
//! Shingles are handed out as UTF-8 bytes, in text order, repeats included (MinHash ignores repeats).

use super::{config_err, Result};

/// Largest shingle size accepted (longer shingles make every document unique and cost time).
pub const MAX_NGRAM: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tokenizer {
    Words,
    Chars,
}

impl Tokenizer {
    pub fn code(self) -> u8 {
        match self {
            Tokenizer::Words => 1,
            Tokenizer::Chars => 2,
        }
    }
}

/// Cuts texts into shingles; see the module documentation for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shingler {
    tokenizer: Tokenizer,
    ngram: usize,
}

/// Buffers reused from one text to the next (one per thread).
#[derive(Default)]
pub struct ShingleBuf {
    lower: String,
    joined: String,
    bounds: Vec<(usize, usize)>,
}

impl Shingler {
    pub fn new(tokenizer: Tokenizer, ngram: usize) -> Result<Self> {
        if ngram == 0 || ngram > MAX_NGRAM {
            return Err(config_err("ngram", format!("must be between 1 and {MAX_NGRAM}, got {ngram}")));
        }
        Ok(Shingler { tokenizer, ngram })
    }

    pub fn tokenizer(&self) -> Tokenizer {
        self.tokenizer
    }

    pub fn ngram(&self) -> usize {
        self.ngram
    }

    /// Calls `emit` with the bytes of every shingle of `text`, in order; returns how many there were.
    pub fn for_each(&self, text: &str, buf: &mut ShingleBuf, mut emit: impl FnMut(&[u8])) -> usize {
        lowercase_into(text, &mut buf.lower);
        let ShingleBuf { lower, joined, bounds } = buf;
        bounds.clear();
        match self.tokenizer {
            Tokenizer::Words => {
                // The words, joined by single spaces into `joined` once: every shingle is then a slice of it.
                let mut words = Vec::new();
                crate::dedupe::text::words_into(lower, &mut words);
                joined.clear();
                for word in words.into_iter().filter(|w| has_alphanumeric(w)) {
                    if !joined.is_empty() {
                        joined.push(' ');
                    }
                    bounds.push((joined.len(), joined.len() + word.len()));
                    joined.push_str(word);
                }
                if bounds.is_empty() {
                    return 0;
                }
                let n = self.ngram.min(bounds.len());
                for (i, &(start, _)) in bounds[..=bounds.len() - n].iter().enumerate() {
                    emit(&joined.as_bytes()[start..bounds[i + n - 1].1]);
                }
                bounds.len() - n + 1
            }
            Tokenizer::Chars => {
                joined.clear();
                for (i, word) in lower.split_whitespace().enumerate() {
                    if i > 0 {
                        joined.push(' ');
                    }
                    joined.push_str(word);
                }
                if joined.is_empty() {
                    return 0;
                }
                // Byte offset of every code point, plus the end.
                bounds.extend(joined.char_indices().map(|(i, _)| (i, 0)));
                bounds.push((joined.len(), 0));
                let chars = bounds.len() - 1;
                let n = self.ngram.min(chars);
                for i in 0..=chars - n {
                    emit(&joined.as_bytes()[bounds[i].0..bounds[i + n].0]);
                }
                chars - n + 1
            }
        }
    }

    /// The shingles of `text` as strings (for tests and for callers that feed another MinHash library).
    pub fn shingles(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each(text, &mut ShingleBuf::default(), |s| out.push(String::from_utf8_lossy(s).into_owned()));
        out
    }
}

/// `unicode_words`' rule: a segment is a word when it has a character that is alphabetic or numeric.
fn has_alphanumeric(word: &str) -> bool {
    if word.is_ascii() {
        word.bytes().any(|b| b.is_ascii_alphanumeric())
    } else {
        word.chars().any(char::is_alphanumeric)
    }
}

fn lowercase_into(text: &str, out: &mut String) {
    out.clear();
    if text.is_ascii() {
        out.push_str(text);
        out.make_ascii_lowercase();
    } else {
        // `to_lowercase` on the whole text: the final sigma rule needs the context of the word.
        out.push_str(&text.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize, text: &str) -> Vec<String> {
        Shingler::new(Tokenizer::Words, n).unwrap().shingles(text)
    }

    fn chars(n: usize, text: &str) -> Vec<String> {
        Shingler::new(Tokenizer::Chars, n).unwrap().shingles(text)
    }

    #[test]
    fn word_shingles_lowercase_and_drop_punctuation() {
        assert_eq!(
            words(3, "The quick, brown Fox -- jumps!"),
            ["the quick brown", "quick brown fox", "brown fox jumps"]
        );
        // UAX #29 keeps apostrophes and decimal points inside words.
        assert_eq!(words(2, "Don't pay 3.50 now."), ["don't pay", "pay 3.50", "3.50 now"]);
        assert_eq!(words(1, "a a b"), ["a", "a", "b"]);
    }

    #[test]
    fn short_texts_have_one_shingle_and_empty_texts_none() {
        assert_eq!(words(5, "Only three words"), ["only three words"]);
        assert_eq!(words(3, "exactly three words"), ["exactly three words"]);
        for empty in ["", "   \n\t", "... !!! ---", "\u{3000}"] {
            assert!(words(5, empty).is_empty(), "{empty:?}");
        }
        assert!(chars(5, " \n ").is_empty());
        assert_eq!(chars(5, " Hi! "), ["hi!"]);
    }

    #[test]
    fn non_latin_scripts() {
        // Greek: lower-cased with the final sigma rule; Cyrillic; Han characters are one word each in UAX #29.
        assert_eq!(words(2, "ΟΔΟΣ ΚΑΛΟΣ"), ["οδο\u{3c2} καλο\u{3c2}"]);
        assert_eq!(words(2, "Привет, Мир"), ["привет мир"]);
        assert_eq!(words(2, "我爱北京"), ["我 爱", "爱 北", "北 京"]);
        assert_eq!(chars(2, "Ab  Ç"), ["ab", "b ", " ç"]);
    }

    #[test]
    fn char_shingles_count_code_points() {
        assert_eq!(chars(3, "abcd"), ["abc", "bcd"]);
        assert_eq!(chars(3, "a\u{00e9}\u{4e2d}x"), ["a\u{00e9}\u{4e2d}", "\u{00e9}\u{4e2d}x"]);
        assert_eq!(chars(2, "a \t\n b"), ["a ", " b"]);
    }

    #[test]
    fn count_matches_emitted_shingles() {
        let s = Shingler::new(Tokenizer::Words, 4).unwrap();
        let mut buf = ShingleBuf::default();
        for text in ["", "one", "one two three four five six", "x y"] {
            let mut seen = 0;
            let count = s.for_each(text, &mut buf, |_| seen += 1);
            assert_eq!(count, seen, "{text}");
        }
    }

    #[test]
    fn rejects_bad_ngram() {
        assert!(Shingler::new(Tokenizer::Words, 0).is_err());
        assert!(Shingler::new(Tokenizer::Chars, MAX_NGRAM + 1).is_err());
    }
}
