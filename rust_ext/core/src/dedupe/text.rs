// Longer than 400 lines because of its unit tests (the code above them is about 280 lines, with a few test-only
// reference functions).
//! Text units of deduplication: paragraphs with code-point offsets, words at Unicode word boundaries, and
//! the keys hashed into the Bloom filter.

use unicode_segmentation::UnicodeSegmentation;

use super::wordclass;

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
    // A one-byte separator (the usual "\n") splits with memchr instead of the general substring search.
    let split: Box<dyn Iterator<Item = &'a str> + '_> = match separator.as_bytes() {
        &[byte] => Box::new(text.split(char::from(byte))),
        _ => Box::new(text.split(separator)),
    };
    let mut parts = split.peekable();
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

/// Appends the [`words`] of `text` to `out`, with the same result; ASCII stretches take a fast path.
pub fn words_into<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    words_with(text, |word| out.push(word));
}

/// Hands the [`words`] of `text` to `emit`, in order; ASCII stretches take a fast path.
///
/// The text can be cut before every ASCII character other than a space that follows a space: UAX #29 always
/// breaks there (no rule joins a space to a following ASCII non-space, and no rule looks across a space), so
/// the pieces segment independently. Only the pieces that hold a non-ASCII character need the Unicode rules:
/// those whose characters all have a word-break class the ASCII rules cover ([`wordclass`]: Latin, Greek and
/// Cyrillic letters, Hangul, ideographs, the usual punctuation and spaces) are scanned by those rules, the
/// others segmented by the crate; the ASCII stretches between them are split in one go.
pub fn words_with<'a>(text: &'a str, emit: impl FnMut(&'a str)) {
    pieces_with(text, false, emit);
}

/// [`words_with`] for a text whose characters all have a known word-break class
/// ([`wordclass::all_non_ascii`] with [`wordclass::KNOWN`], checked by the caller).
pub fn known_words_with<'a>(text: &'a str, emit: impl FnMut(&'a str)) {
    pieces_with(text, true, emit);
}

/// [`words_with`]; with `all_known`, no piece is checked for characters of an unknown class.
fn pieces_with<'a>(text: &'a str, all_known: bool, mut emit: impl FnMut(&'a str)) {
    let bytes = text.as_bytes();
    let is_cut = |i: usize| bytes[i] < 0x80 && bytes[i] != b' ' && bytes[i - 1] == b' ';
    // Everything before `done` has been handed out.
    let mut done = 0;
    while let Some(k) = first_non_ascii(bytes, done) {
        let start = (done + 1..k).rev().find(|&i| is_cut(i)).unwrap_or(done);
        let end = (k + 1..bytes.len()).find(|&i| is_cut(i)).unwrap_or(bytes.len());
        ascii_words_with(&text[done..start], &mut emit);
        let piece = &text[start..end];
        if all_known || wordclass::all_non_ascii(piece, wordclass::KNOWN) {
            known_piece_with(piece, &mut emit);
        } else {
            words(piece).for_each(&mut emit);
        }
        done = end;
    }
    ascii_words_with(&text[done..], emit);
}

/// [`words`] of a text whose characters all have a known word-break class ([`wordclass::KNOWN`]): the rules of
/// [`ascii_words_with`], character by character.
fn known_piece_with<'a>(text: &'a str, emit: &mut impl FnMut(&'a str)) {
    use wordclass::{DIGIT, KATAKANA, LETTER, MID_LETTER, MID_NUM, RUN, SPACE};
    let bytes = text.as_bytes();
    let n = bytes.len();
    // The flags and UTF-8 length of the character at byte `i`.
    let at = |i: usize| -> (u16, usize) {
        match bytes[i] {
            b if b < 0x80 => (FLAGS[b as usize] as u16, 1),
            _ => text[i..].chars().next().map_or((0, 1), |c| (wordclass::flags(c), c.len_utf8())),
        }
    };
    let mut i = 0;
    while i < n {
        let (class, len) = at(i);
        if class & RUN != 0 {
            let (start, mut before) = (i, class);
            i += len;
            while i < n {
                let (mid, mid_len) = at(i);
                // Katakana and letters or digits do not join each other; connectors join both.
                let apart = |k: u16, l: u16| k & KATAKANA != 0 && l & (LETTER | DIGIT) != 0;
                if mid & RUN != 0 && !apart(before, mid) && !apart(mid, before) {
                    (before, i) = (mid, i + mid_len);
                    continue;
                }
                if i + mid_len < n && mid & (MID_LETTER | MID_NUM) != 0 {
                    let (after, after_len) = at(i + mid_len);
                    let joins = (before & after & LETTER != 0 && mid & MID_LETTER != 0)
                        || (before & after & DIGIT != 0 && mid & MID_NUM != 0);
                    if joins {
                        (before, i) = (after, i + mid_len + after_len);
                        continue;
                    }
                }
                break;
            }
            emit(&text[start..i]);
        } else if class & SPACE != 0 {
            i += len;
        } else {
            emit(&text[i..i + len]);
            i += len;
        }
    }
}

/// The flags of an ASCII character in [`wordclass`]'s terms (every ASCII character's class is known: the
/// ones the scanner has no role for, such as the quotes, are words of their own as long as no Hebrew letter
/// is near, and a Hebrew letter is unknown).
pub(super) fn ascii_flags(b: u8) -> u16 {
    let alnum = if b.is_ascii_alphanumeric() { wordclass::ALNUM } else { 0 };
    FLAGS[(b & 0x7F) as usize] as u16 | alnum | wordclass::KNOWN
}

/// The index of the first byte at or after `from` that is not ASCII, eight bytes at a time.
pub(super) fn first_non_ascii(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    if rest.first()? >= &0x80 {
        return Some(from);
    }
    let mut chunks = rest.chunks_exact(8);
    let mut offset = from;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        if word & 0x8080_8080_8080_8080 != 0 {
            return chunk.iter().position(|&b| b >= 0x80).map(|i| offset + i);
        }
        offset += 8;
    }
    chunks.remainder().iter().position(|&b| b >= 0x80).map(|i| offset + i)
}

pub fn word_count(text: &str) -> u64 {
    if text.is_ascii() {
        let mut out = Vec::new();
        ascii_words(text, &mut out);
        out.len() as u64
    } else {
        words(text).count() as u64
    }
}

/// UAX #29 word-break classes of the ASCII characters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wb {
    Cr,
    Lf,
    Newline,
    Space,
    Letter,
    Numeric,
    ExtendNumLet,
    /// MidNumLet (`.`) and Single_Quote (`'`): the rules treat them alike outside Hebrew.
    MidNumLetQ,
    MidLetter,
    MidNum,
    Other,
}

/// The class of every ASCII byte (the pairwise rules of the tests).
#[cfg(test)]
const WB_TABLE: [Wb; 128] = {
    let mut table = [Wb::Other; 128];
    let mut i = 0;
    while i < 128 {
        table[i] = wb_of(i as u8);
        i += 1;
    }
    table
};

#[cfg(test)]
fn wb(b: u8) -> Wb {
    WB_TABLE[(b & 0x7F) as usize]
}

/// Bits of [`FLAGS`]: letters, digits and `_` (runs that never break), letters, digits, what joins two
/// letters (`.`, `'`, `:`), what joins two digits (`.`, `'`, `,`, `;`), and whitespace.
const F_RUN: u8 = 1;
const F_LETTER: u8 = 2;
const F_DIGIT: u8 = 4;
const F_MID_LETTER: u8 = 8;
const F_MID_NUM: u8 = 16;
const F_SPACE: u8 = 32;

/// The word-break flags of every byte, looked up in the hot loop (non-ASCII bytes have none: the ASCII
/// scanner never sees them).
const FLAGS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 128 {
        table[i] = match wb_of(i as u8) {
            Wb::Letter => F_RUN | F_LETTER,
            Wb::Numeric => F_RUN | F_DIGIT,
            Wb::ExtendNumLet => F_RUN,
            Wb::MidNumLetQ => F_MID_LETTER | F_MID_NUM,
            Wb::MidLetter => F_MID_LETTER,
            Wb::MidNum => F_MID_NUM,
            Wb::Cr | Wb::Lf | Wb::Newline | Wb::Space | Wb::Other => 0,
        };
        // White_Space in ASCII: tab, LF, VT, FF, CR and space.
        if matches!(i as u8, b'\t'..=b'\r' | b' ') {
            table[i] = F_SPACE;
        }
        i += 1;
    }
    table
};

const fn wb_of(b: u8) -> Wb {
    match b {
        b'\r' => Wb::Cr,
        b'\n' => Wb::Lf,
        0x0B | 0x0C => Wb::Newline,
        b' ' => Wb::Space,
        b'A'..=b'Z' | b'a'..=b'z' => Wb::Letter,
        b'0'..=b'9' => Wb::Numeric,
        b'_' => Wb::ExtendNumLet,
        b'.' | b'\'' => Wb::MidNumLetQ,
        b':' => Wb::MidLetter,
        b',' | b';' => Wb::MidNum,
        _ => Wb::Other,
    }
}

/// Whether UAX #29 puts a word boundary between `c[i - 1]` and `c[i]` (ASCII text: no Extend, Format, ZWJ,
/// Katakana, Hebrew or regional indicators, so rules WB4, WB13, WB7a-c and WB15-16 never apply).
#[cfg(test)]
fn ascii_boundary(c: &[u8], i: usize) -> bool {
    use Wb::*;
    let (a, b) = (wb(c[i - 1]), wb(c[i]));
    if a == Letter && b == Letter {
        return false;
    }
    let before = if i >= 2 { Some(wb(c[i - 2])) } else { None };
    let after = c.get(i + 1).map(|&x| wb(x));
    let mid_letter = |x: Wb| x == MidLetter || x == MidNumLetQ;
    let mid_num = |x: Wb| x == MidNum || x == MidNumLetQ;
    match (a, b) {
        (Cr, Lf) => false,                                                   // WB3
        (Cr | Lf | Newline, _) | (_, Cr | Lf | Newline) => true,             // WB3a, WB3b
        (Space, Space) => false,                                             // WB3d
        (Letter, Letter) => false,                                           // WB5
        (Letter, m) if mid_letter(m) && after == Some(Letter) => false,      // WB6
        (m, Letter) if mid_letter(m) && before == Some(Letter) => false,     // WB7
        (Numeric, Numeric) | (Letter, Numeric) | (Numeric, Letter) => false, // WB8, WB9, WB10
        (m, Numeric) if mid_num(m) && before == Some(Numeric) => false,      // WB11
        (Numeric, m) if mid_num(m) && after == Some(Numeric) => false,       // WB12
        (Letter | Numeric | ExtendNumLet, ExtendNumLet) => false,            // WB13a
        (ExtendNumLet, Letter | Numeric) => false,                           // WB13b
        _ => true,                                                           // WB999
    }
}

/// [`words`] for ASCII text, without the Unicode tables, in one pass.
///
/// On ASCII the UAX #29 rules reduce to: runs of letters, digits and `_` never break (WB5, WB8-10, WB13a-b);
/// inside such a run a single `.` or `'` between two letters or two digits, `:` between two letters, and `,`
/// or `;` between two digits do not break either (WB6-7, WB11-12); whitespace never joins anything but
/// whitespace (WB3-3d) and is dropped; every other character is a word of its own. (Checked against
/// [`ascii_boundary`] and `unicode-segmentation` by the tests.)
fn ascii_words<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    ascii_words_with(text, |word| out.push(word));
}

/// [`ascii_words`], handing each word to `emit`.
#[inline]
pub(crate) fn ascii_words_with<'a>(text: &'a str, mut emit: impl FnMut(&'a str)) {
    let bytes = text.as_bytes();
    let flags = |i: usize| FLAGS[bytes[i] as usize];
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        let class = flags(i);
        if class & F_RUN != 0 {
            let start = i;
            i += 1;
            loop {
                i = run_end(bytes, i);
                if i + 1 < n {
                    let (before, mid, after) = (flags(i - 1), flags(i), flags(i + 1));
                    let joins = (before & after & F_LETTER != 0 && mid & F_MID_LETTER != 0)
                        || (before & after & F_DIGIT != 0 && mid & F_MID_NUM != 0);
                    if joins {
                        i += 2;
                        continue;
                    }
                }
                break;
            }
            emit(&text[start..i]);
        } else if class & F_SPACE != 0 {
            i += 1;
        } else {
            emit(&text[i..i + 1]);
            i += 1;
        }
    }
}

/// The end of the run of letters, digits and `_` at `i` in ASCII `bytes`: eight bytes are classified at once
/// (each byte is below 0x80, so the additions never carry into the next byte), which saves a mispredicted
/// branch per word over a byte loop.
#[inline]
fn run_end(bytes: &[u8], mut i: usize) -> usize {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit of every byte of `x` (all below 0x80) that lies in `lo..=hi`.
    let in_range = |x: u64, lo: u8, hi: u8| (x + LOW * (0x80 - lo) as u64) & !(x + LOW * (0x7F - hi) as u64) & HIGH;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let run = in_range(x | (LOW * 0x20), b'a', b'z') | in_range(x, b'0', b'9') | in_range(x, b'_', b'_');
        let other = !run & HIGH;
        if other != 0 {
            return i + (other.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + bytes[i..].iter().position(|&b| FLAGS[b as usize] & F_RUN == 0).unwrap_or(bytes.len() - i)
}

/// [`ascii_words`] by the pairwise rules of [`ascii_boundary`] (the reference for the tests).
#[cfg(test)]
fn ascii_words_pairwise<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return;
    }
    let mut start = 0;
    for i in 1..=bytes.len() {
        if i == bytes.len() || ascii_boundary(bytes, i) {
            // White_Space in ASCII: tab, LF, VT, FF, CR and space.
            if !bytes[start..i].iter().all(|b| matches!(b, b'\t'..=b'\r' | b' ')) {
                out.push(&text[start..i]);
            }
            start = i;
        }
    }
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

/// Key space of the hashed n-gram keys of [`word_hashes`] (XORed into the filter's seed), apart from the text
/// keys of paragraphs and documents.
pub const NGRAM_DOMAIN: u64 = 0x6E67_7261_6D5F_6B65;

/// The word hashes of an n-gram key: `xxh3_64(word)` of each word, as little-endian bytes, appended to `out`
/// (which is cleared first). The key of the n-gram of words `j..j + n` is `out[8 j..8 (j + n)]`, looked up
/// in [`NGRAM_DOMAIN`]: hashing each word once makes a paragraph's n-gram keys cost no copying of text.
pub fn word_hashes(words: &[&str], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(words.len() * 8);
    for w in words {
        out.extend_from_slice(&crate::xxh3_64(w.as_bytes(), 0).to_le_bytes());
    }
}

/// [`word_hashes`] of the [`words`] of `text`, into `out` (cleared first); returns the number of words. ASCII
/// text is split and hashed in one pass; other text goes through `words` (scratch space).
pub fn hash_words<'a>(text: &'a str, words: &mut Vec<&'a str>, out: &mut Vec<u8>) -> usize {
    out.clear();
    if text.is_ascii() {
        ascii_words_with(text, |word| out.extend_from_slice(&crate::xxh3_64(word.as_bytes(), 0).to_le_bytes()));
        return out.len() / 8;
    }
    words.clear();
    words_into(text, words);
    word_hashes(words, out);
    words.len()
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
    fn ascii_fast_path_matches_unicode_segmentation() {
        let cases = [
            "Hello, world! It's 3.5 o'clock: e.g. a.b c_d 1,000;2 x:y __init__ 'q' \"z\"",
            "a\r\nb\r\r\n\n\x0b\x0c c  d\t\te  \t f",
            "..a..b.. 1..2 a'b' '1'2 a:1 1:a a_1_ _ __ 9_a a9 9a ,1 1, a. .a",
            "caf\u{e9} na\u{ef}ve \u{201c}quoted\u{201d} a \u{301}b  \u{200D}c 日本語 x",
            "",
            " ",
            "\t",
            "x",
            "don't stop-me now!!! (ok) [3] {a} #tag @user $5 100% a/b a\\b ~`^|<>=+*&?",
        ];
        let mut rng: u64 = 0x1234_5678;
        let ascii: Vec<String> = "ab Z09_.':,;\"\t\r\n\x0b\x0c-!?()#\x1f\x7f".chars().map(String::from).collect();
        // Non-ASCII: letters, combining mark (Extend), ZWJ, soft hyphen (Format), emoji, CJK, regional
        // indicators, curly quote, NEL, no-break and ideographic spaces, Hebrew letter, katakana.
        let other: Vec<String> = [
            "é",
            "\u{301}",
            "\u{200D}",
            "\u{AD}",
            "🙂",
            "日",
            "\u{1F1E6}",
            "’",
            "\u{85}",
            "\u{A0}",
            "\u{3000}",
            "א",
            "カ",
            "\u{2019}",
            "\u{FF0E}",
            "Ж",
            "한",
            "\u{B7}",
            "\u{203F}",
            "\u{FF0C}",
            "\u{FF11}",
            "\u{663}",
            "\u{201C}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut random = Vec::new();
        for round in 0..6000 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = (rng >> 58) as usize;
            let s: String = (0..len)
                .map(|_| {
                    rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let pick = (rng >> 33) as usize;
                    if round % 2 == 1 && pick.is_multiple_of(5) {
                        other[(pick / 5) % other.len()].as_str()
                    } else {
                        ascii[pick % ascii.len()].as_str()
                    }
                })
                .collect();
            random.push(s);
        }
        for text in cases.iter().map(|s| s.to_string()).chain(random) {
            let slow: Vec<&str> = words(&text).collect();
            let mut fast = Vec::new();
            words_into(&text, &mut fast);
            assert_eq!(fast, slow, "{text:?}");
            if text.is_ascii() {
                let mut pairwise = Vec::new();
                ascii_words_pairwise(&text, &mut pairwise);
                assert_eq!(pairwise, slow, "{text:?}");
            }
            let (mut expected, mut hashed, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
            word_hashes(&slow, &mut expected);
            assert_eq!(hash_words(&text, &mut scratch, &mut hashed), slow.len(), "{text:?}");
            assert_eq!(hashed, expected, "{text:?}");
            assert_eq!(word_count(&text), slow.len() as u64);
        }
    }

    #[test]
    fn run_end_classifies_every_ascii_byte() {
        // Every ASCII byte at every position of the first two 8-byte chunks and the tail, after a run.
        for b in 0u8..0x80 {
            for pos in 0..20 {
                let mut bytes = vec![b'k'; 20];
                bytes[pos] = b;
                let expected = bytes.iter().position(|&x| !(x.is_ascii_alphanumeric() || x == b'_')).unwrap_or(20);
                assert_eq!(run_end(&bytes, 0), expected, "{b:#x} at {pos}");
                assert_eq!(run_end(&bytes[..pos + 1], 0), expected.min(pos + 1), "{b:#x} at {pos}");
            }
        }
    }

    #[test]
    fn word_hash_keys_are_per_word() {
        let mut a = Vec::new();
        word_hashes(&["x", "yz", "x"], &mut a);
        assert_eq!(a.len(), 24);
        assert_eq!(a[0..8], a[16..24]);
        let mut b = Vec::new();
        word_hashes(&["xy", "z", "x"], &mut b);
        assert_ne!(a[..16], b[..16], "word boundaries are part of the key");
    }

    #[test]
    fn windows_sample_like_the_reference() {
        assert_eq!(ngram_windows(12, 3, 1).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        assert_eq!(ngram_windows(12, 3, 2).collect::<Vec<_>>(), vec![0, 1, 3, 5, 7, 9]);
        assert_eq!(ngram_windows(12, 3, 3).collect::<Vec<_>>(), vec![0, 1, 4, 7]);
        assert_eq!(ngram_windows(2, 3, 1).count(), 0);
    }
}
