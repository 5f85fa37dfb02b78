//! Shingles: the set a document's MinHash signature summarises.
//!
//! - `words` (default): the text is lower-cased (Unicode full lower-case mapping, `str::to_lowercase`; on
//!   ASCII text the same as `to_ascii_lowercase`), then split at Unicode word boundaries (UAX #29, as the
//!   `unicode-segmentation` crate's `unicode_words`: the segments between word boundaries that contain at
//!   least one alphabetic or numeric character, so whitespace and punctuation are dropped; segmented by the
//!   dedupe module's `words_with`, which gives the crate's boundaries with a fast path for ASCII and for the
//!   characters whose word-break class the ASCII rules cover). A shingle is `n` consecutive words joined by
//!   one space.
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
use crate::dedupe::wordclass;

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
    /// The lower-cased text (non-ASCII texts only: ASCII ones are lower-cased in `joined`).
    lower: String,
    /// The units joined by single spaces: every shingle is a slice of it.
    joined: Vec<u8>,
    /// Byte bounds of the units in `joined` (words: start and end; chars: start of every code point).
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
        let ShingleBuf { lower, joined, bounds } = buf;
        joined.clear();
        bounds.clear();
        // ASCII text is segmented as it is and lower-cased once joined (ASCII letters keep their word-break
        // class and their case only changes in place). So is other text whose characters all lower-case to one
        // character of the same word-break class and UTF-8 length (the usual case; not capital sigma): its
        // words are then those of the lower-cased text, lower-cased in place once joined. Other text is lower-cased first (the final
        // sigma rule and the characters whose lower case is several code points need the whole text).
        let ascii = text.is_ascii();
        let as_is =
            ascii || (self.tokenizer == Tokenizer::Words && wordclass::all_non_ascii(text, wordclass::LOWERS_SIMPLY));
        let source = if as_is {
            text
        } else {
            lowercase_into(text, lower);
            lower.as_str()
        };
        match self.tokenizer {
            Tokenizer::Words => {
                let keep = |word: &str| {
                    // Most words start with a letter or digit; a one-byte segment that does not is ASCII
                    // punctuation or `_`.
                    let first = word.as_bytes().first().copied().unwrap_or(b' ');
                    if first.is_ascii_alphanumeric() || (word.len() > 1 && has_alphanumeric(word)) {
                        if !joined.is_empty() {
                            joined.push(b' ');
                        }
                        bounds.push((joined.len(), joined.len() + word.len()));
                        joined.extend_from_slice(word.as_bytes());
                    }
                };
                if ascii {
                    crate::dedupe::text::ascii_words_with(source, keep);
                } else if as_is {
                    crate::dedupe::text::known_words_with(source, keep);
                } else {
                    crate::dedupe::text::words_with(source, keep);
                }
                if ascii {
                    joined.make_ascii_lowercase();
                } else if as_is {
                    wordclass::lowercase_simply(joined);
                }
                if bounds.is_empty() {
                    return 0;
                }
                let n = self.ngram.min(bounds.len());
                for (i, &(start, _)) in bounds[..=bounds.len() - n].iter().enumerate() {
                    emit(&joined[start..bounds[i + n - 1].1]);
                }
                bounds.len() - n + 1
            }
            Tokenizer::Chars => {
                for word in source.split_whitespace() {
                    if !joined.is_empty() {
                        joined.push(b' ');
                    }
                    joined.extend_from_slice(word.as_bytes());
                }
                if ascii {
                    joined.make_ascii_lowercase();
                }
                if joined.is_empty() {
                    return 0;
                }
                // Byte offset of every code point (every byte that is not a UTF-8 continuation byte), plus
                // the end.
                bounds.extend(joined.iter().enumerate().filter(|&(_, &b)| b & 0xC0 != 0x80).map(|(i, _)| (i, 0)));
                bounds.push((joined.len(), 0));
                let chars = bounds.len() - 1;
                let n = self.ngram.min(chars);
                for i in 0..=chars - n {
                    emit(&joined[bounds[i].0..bounds[i + n].0]);
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
    word.chars().any(|c| match c {
        c if c.is_ascii() => c.is_ascii_alphanumeric(),
        c if c <= '\u{FFFF}' => wordclass::flags(c) & wordclass::ALNUM != 0,
        c => c.is_alphanumeric(),
    })
}

/// `text.to_lowercase()` into `out`, with ASCII stretches copied and lower-cased in bulk.
///
/// `str::to_lowercase` maps every character after the first non-ASCII one on its own, which is slow on the
/// usual text that is mostly ASCII. Every character but capital sigma lower-cases without context (to
/// `char::to_lowercase`), so a text without one is mapped stretch by stretch; a text with one goes to
/// `to_lowercase` whole (the final sigma rule looks at the neighbouring characters).
fn lowercase_into(text: &str, out: &mut String) {
    out.clear();
    if text.contains('\u{3A3}') {
        out.push_str(&text.to_lowercase());
        return;
    }
    let mut rest = text;
    while !rest.is_empty() {
        let ascii = rest.bytes().position(|b| b >= 0x80).unwrap_or(rest.len());
        let start = out.len();
        out.push_str(&rest[..ascii]);
        out[start..].make_ascii_lowercase();
        rest = &rest[ascii..];
        let other = rest.bytes().position(|b| b < 0x80).unwrap_or(rest.len());
        out.extend(rest[..other].chars().flat_map(char::to_lowercase));
        rest = &rest[other..];
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

    /// The rules of the module documentation, written plainly: lower-case the whole text, then
    /// `unicode_words` (words) or whitespace runs to one space (chars), then every window of `n` units.
    fn reference(tokenizer: Tokenizer, n: usize, text: &str) -> Vec<String> {
        use unicode_segmentation::UnicodeSegmentation;
        let lower = text.to_lowercase();
        let units: Vec<String> = match tokenizer {
            Tokenizer::Words => lower.unicode_words().map(String::from).collect(),
            Tokenizer::Chars => {
                lower.split_whitespace().collect::<Vec<_>>().join(" ").chars().map(String::from).collect()
            }
        };
        let sep = if tokenizer == Tokenizer::Words { " " } else { "" };
        if units.is_empty() {
            return Vec::new();
        }
        let n = n.min(units.len());
        units.windows(n).map(|w| w.join(sep)).collect()
    }

    #[test]
    fn fast_paths_match_the_plain_rules_on_generated_texts() {
        // Units of the generated texts: ASCII letters, digits, the punctuation the word rules look at and
        // whitespace; Latin-1 letters, Greek with capital and final sigma, Turkish dotted and dotless i, German
        // sharp s (both cases), Cyrillic, CJK, emoji, combining marks, ZWJ and non-ASCII spaces; a few whole
        // words so that sigmas land inside and at the end of words.
        let ascii = [
            "a", "b", "Z", "Q", "x", "0", "7", "'", ".", ",", ":", ";", "_", "-", "@", "/", " ", " ", "\t", "\n",
            "\r", "!", "Hello", "WORLD",
        ];
        let other = [
            "\u{a0}", "\u{3000}", "é", "É", "ü", "Ü", "ñ", "Σ", "σ", "ς", "Α", "ω", "Ω", "ΟΔΟΣ", "ΣΑΣ", "İ", "ı",
            "I\u{307}", "ß", "ẞ", "Д", "д", "Ё", "日", "本", "の", "カ", "🙂", "👍🏽", "\u{301}", "\u{308}", "\u{200d}",
            "\u{2019}", "\u{85}", "ǅ", "Ⅻ", "\u{212a}", "\u{2126}",
        ];
        // Characters whose lower case is one character of the same word-break class and UTF-8 length: texts
        // made of them and ASCII take the path that segments the text as it is.
        let simple = [
            "é", "É", "ü", "Ü", "ñ", "σ", "ς", "Α", "ω", "Ω", "Д", "д", "Ё", "Ж", "日", "本", "の", "한", "ǅ", "Ⅻ",
            "ß", "ı", "\u{a0}", "\u{3000}", "\u{2019}", "\u{201c}", "\u{2014}", "\u{2026}", "\u{b7}", "\u{663}",
            "\u{203f}", "\u{ff0c}", "\u{ff0e}", "\u{ff11}", "\u{ff21}",
        ];
        let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) as usize
        };
        let mut buf = ShingleBuf::default();
        let (mut non_ascii, mut as_is) = (0, 0);
        for round in 0..4000 {
            let len = next() % 40;
            let text: String = (0..len)
                .map(|_| {
                    let pick = next();
                    // Every other text is ASCII only; the rest mix in a non-ASCII unit every third pick, one text
                    // in four from the characters that lower-case simply.
                    if round % 4 == 3 && pick % 3 == 0 {
                        simple[(pick / 3) % simple.len()]
                    } else if round % 2 == 1 && pick % 3 == 0 {
                        other[(pick / 3) % other.len()]
                    } else {
                        ascii[pick % ascii.len()]
                    }
                })
                .collect();
            non_ascii += usize::from(!text.is_ascii());
            as_is += usize::from(!text.is_ascii() && wordclass::all_non_ascii(&text, wordclass::LOWERS_SIMPLY));
            let mut lower = String::new();
            lowercase_into(&text, &mut lower);
            assert_eq!(lower, text.to_lowercase(), "{text:?}");
            for tokenizer in [Tokenizer::Words, Tokenizer::Chars] {
                for n in [1, 2, 5] {
                    let shingler = Shingler::new(tokenizer, n).unwrap();
                    let mut got = Vec::new();
                    let count =
                        shingler.for_each(&text, &mut buf, |s| got.push(String::from_utf8(s.to_vec()).unwrap()));
                    assert_eq!(got, reference(tokenizer, n, &text), "{tokenizer:?} {n} {text:?}");
                    assert_eq!(count, got.len());
                }
            }
        }
        assert!(non_ascii > 1500 && as_is > 700, "{non_ascii} {as_is}");
    }

    #[test]
    fn rejects_bad_ngram() {
        assert!(Shingler::new(Tokenizer::Words, 0).is_err());
        assert!(Shingler::new(Tokenizer::Chars, MAX_NGRAM + 1).is_err());
    }
}
