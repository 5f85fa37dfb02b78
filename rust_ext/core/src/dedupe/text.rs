//! Text units of deduplication: paragraphs with code-point offsets, words at Unicode word boundaries, and
//! the keys hashed into the Bloom filter.

use unicode_segmentation::UnicodeSegmentation;

/// First byte of an n-gram key. Paragraph and document keys are text (valid UTF-8, which never contains
/// 0xFE or 0xFF), so n-gram keys can never collide with them.
const NGRAM_TAG: u8 = 0xFE;
/// Joins the words of an n-gram key.
const WORD_JOIN: u8 = 0xFF;

/// One paragraph: its text (without the separator) and its span in code points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph<'a> {
    pub text: &'a str,
    /// Span start and end (exclusive) in code points; the separator after the paragraph is included.
    pub start: u64,
    pub end: u64,
    /// UTF-8 bytes of the paragraph plus its separator (for statistics).
    pub bytes: u64,
}

fn char_count(s: &str, ascii: bool) -> u64 {
    if ascii {
        s.len() as u64
    } else {
        s.chars().count() as u64
    }
}

/// Splits `text` at every `separator` and gives each part its span in code points.
///
/// A span covers the paragraph and the separator that follows it, except at the very end of the text: a
/// final separator belongs to no span (the reference toolkit does the same on ASCII text), so the last
/// non-empty paragraph of "a\nb\n" is `[2, 3)` and the empty paragraph after the final newline is `[3, 3)`.
/// Spans therefore never pass the end of the text, on any Unicode input.
pub fn paragraphs<'a>(text: &'a str, separator: &str) -> Vec<Paragraph<'a>> {
    let ascii = text.is_ascii();
    let sep_chars = char_count(separator, separator.is_ascii());
    let total = char_count(text, ascii);
    let limit = if !text.is_empty() && text.ends_with(separator) { total - sep_chars } else { total };
    let mut out = Vec::new();
    let mut pos = 0u64;
    let mut parts = text.split(separator).peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let len = char_count(part, ascii);
        let end = pos + len + if last { 0 } else { sep_chars };
        out.push(Paragraph {
            text: part,
            start: pos.min(limit),
            end: end.min(limit),
            bytes: part.len() as u64 + if last { 0 } else { separator.len() as u64 },
        });
        pos = end;
    }
    out
}

/// Words at Unicode word boundaries (UAX #29), whitespace runs dropped; punctuation marks count as words.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split_word_bounds().filter(|w| !w.chars().all(char::is_whitespace))
}

pub fn word_count(text: &str) -> u64 {
    words(text).count() as u64
}

/// Whether the text is empty after trimming whitespace.
pub fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// Length in code points.
pub fn chars(text: &str) -> u64 {
    char_count(text, text.is_ascii())
}

/// Start indices of the n-gram windows that are looked up for a paragraph of `num_words` words.
///
/// All windows with `stride` 1; otherwise the first window and every `stride`-th one after the second
/// (windows 0, 1, 1 + stride, 1 + 2 * stride, ...), which is the sampling the reference toolkit uses.
pub fn ngram_windows(num_words: usize, n: usize, stride: usize) -> impl Iterator<Item = usize> {
    let count = if num_words >= n { num_words - n + 1 } else { 0 };
    (0..count).filter(move |&j| j == 0 || j % stride == 1 % stride)
}

/// The Bloom filter key of the n-gram `words` (written into `buf`, which is cleared first).
pub fn ngram_key<'b>(words: &[&str], buf: &'b mut Vec<u8>) -> &'b [u8] {
    buf.clear();
    buf.push(NGRAM_TAG);
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            buf.push(WORD_JOIN);
        }
        buf.extend_from_slice(w.as_bytes());
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str, sep: &str) -> Vec<(u64, u64)> {
        paragraphs(text, sep).iter().map(|p| (p.start, p.end)).collect()
    }

    #[test]
    fn paragraph_spans_match_reference_on_ascii() {
        // Expected values observed from the reference toolkit (dolma 1.2.1) on the same texts.
        assert_eq!(spans("aa\nbb\n", "\n"), vec![(0, 3), (3, 5), (5, 5)]);
        assert_eq!(spans("aa\nbb", "\n"), vec![(0, 3), (3, 5)]);
        assert_eq!(spans("aa\nbb\n\n", "\n"), vec![(0, 3), (3, 6), (6, 6), (6, 6)]);
        assert_eq!(spans("aa\n\nbb\ncc\n", "\n"), vec![(0, 3), (3, 4), (4, 7), (7, 9), (9, 9)]);
        assert_eq!(spans("\naa\nbb", "\n"), vec![(0, 1), (1, 4), (4, 6)]);
        assert_eq!(spans("a", "\n"), vec![(0, 1)]);
    }

    #[test]
    fn paragraph_spans_count_code_points() {
        // "Café über naïve" is 15 code points and 18 bytes.
        let text = "Café über naïve\nCafé über naïve\n";
        assert_eq!(spans(text, "\n"), vec![(0, 16), (16, 31), (31, 31)]);
        assert_eq!(spans("日本語\nab\ncd", "\n"), vec![(0, 4), (4, 7), (7, 9)]);
        assert_eq!(spans("aa||bb||", "||"), vec![(0, 4), (4, 6), (6, 6)]);
        for text in ["é\n", "\n\n", "ü\näbc", "🙂\n🙂", ""] {
            let n = text.chars().count() as u64;
            assert!(spans(text, "\n").iter().all(|&(s, e)| s <= e && e <= n), "{text:?}");
        }
    }

    #[test]
    fn words_follow_unicode_boundaries() {
        assert_eq!(words("a, b").collect::<Vec<_>>(), vec!["a", ",", "b"]);
        assert_eq!(word_count("3.5 x"), 2);
        assert_eq!(word_count("日本語"), 3);
        assert_eq!(word_count("  \t "), 0);
    }

    #[test]
    fn windows_sample_like_the_reference() {
        assert_eq!(ngram_windows(12, 3, 1).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        assert_eq!(ngram_windows(12, 3, 2).collect::<Vec<_>>(), vec![0, 1, 3, 5, 7, 9]);
        assert_eq!(ngram_windows(12, 3, 3).collect::<Vec<_>>(), vec![0, 1, 4, 7]);
        assert_eq!(ngram_windows(2, 3, 1).count(), 0);
    }
}
