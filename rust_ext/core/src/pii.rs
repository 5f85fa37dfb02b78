//! PII detection for the `pii_regex_*` taggers: e-mail addresses, US-style phone numbers, IPv4 addresses.
//!
//! The taggers' Python implementation (taggers/pii.py, kept there as the specification) uses Python `re`
//! on `str`; this module gives the same spans. Rust's `regex` crate has the same leftmost-first preference
//! as Python's backtracking engine (alternation order, greedy and lazy repeats), and `find_iter` has the same
//! non-overlapping semantics as `finditer` (none of the patterns can match the empty string). What differs are
//! the Unicode classes, so the patterns spell them out: `\s` is Python's `str.isspace` set (which includes
//! U+001C..U+001F, unlike Unicode White_Space) and `\d` is the decimal digits (category Nd) of Unicode 14.0,
//! the database of Python 3.11, unless [`set_digit_ranges`] gives the running Python's set first (taggers/pii.py
//! does when its Unicode database is another version; tests/taggers/test_pii.py checks both sets against the running
//! Python, code point by code point). Offsets returned are code-point offsets, as Python reports them.

use std::sync::{LazyLock, OnceLock};

use rayon::prelude::*;
use regex::Regex;

/// Python's `\s` (`str.isspace`), as the inside of a character class.
const PY_SPACE: &str =
    r"\t\n\x0B\x0C\r\x1C-\x20\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}";

/// First code point of each run of decimal digits (Unicode 14.0 category Nd); every run has 10 digits
/// except the mathematical digits at U+1D7CE, which have 50.
const DIGIT_RUNS: [u32; 62] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6, 0xE50, 0xED0,
    0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620,
    0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0,
    0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60,
    0x16AC0, 0x16B50, 0x1D7CE, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// Whether `c` is in Python's `\s` (the same set as `str.isspace()`).
pub fn is_py_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\u{1c}'..='\u{20}' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}')
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

/// The Unicode version of the built-in `\d` set ([`DIGIT_RUNS`]).
pub const DIGITS_UNICODE_VERSION: &str = "14.0.0";

/// The inclusive code-point ranges `\d` stands for in this process (fixed at the first scan).
static DIGIT_RANGES: OnceLock<Vec<(u32, u32)>> = OnceLock::new();

/// The built-in `\d` ranges (Unicode 14.0 decimal digits).
pub fn default_digit_ranges() -> Vec<(u32, u32)> {
    DIGIT_RUNS.iter().map(|&start| (start, start + if start == 0x1D7CE { 49 } else { 9 })).collect()
}

/// The `\d` ranges in use (the built-in ones unless [`set_digit_ranges`] came first).
pub fn digit_ranges() -> &'static [(u32, u32)] {
    DIGIT_RANGES.get_or_init(default_digit_ranges)
}

/// Makes `\d` the given inclusive code-point ranges (a Python with another Unicode database passes its own
/// set). Must come before the first scan of the process; setting the same set again is allowed.
pub fn set_digit_ranges(ranges: Vec<(u32, u32)>) -> Result<(), String> {
    for &(start, end) in &ranges {
        let valid = |c: u32| char::from_u32(c).is_some();
        if start > end || !valid(start) || !valid(end) || (start < 0xE000 && end >= 0xD800) {
            return Err(format!("invalid digit range U+{start:04X}..U+{end:04X}"));
        }
    }
    if DIGIT_RANGES.set(ranges.clone()).is_err() && DIGIT_RANGES.get() != Some(&ranges) {
        return Err("the PII digit set is already in use with other ranges (set it before the first scan)".into());
    }
    Ok(())
}

fn digit_class() -> String {
    let mut class = String::new();
    for &(start, end) in digit_ranges() {
        class.push_str(&format!("\\x{{{start:X}}}-\\x{{{end:X}}}"));
    }
    class
}

fn compile(pattern: &str) -> Regex {
    // The patterns are fixed; a failure here is a bug caught by the unit tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("invalid built-in PII pattern {pattern}: {e}"))
}

/// E-mail: optional leading punctuation/whitespace, "local@domain" (group 1, domain lazy), an optional
/// punctuation character, then a mandatory whitespace character.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    let s = PY_SPACE;
    compile(&format!(r"[.{s}@,?!;:)(]*([^{s}@]+@[^{s}@,?!;:)(]+?)[.{s}@,?!;:)(]?[{s}]"))
});

/// Phone: whitespace, then 3 + 3 + 4 digits with optional parentheses and separators.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    let (s, d) = (PY_SPACE, digit_class());
    compile(&format!(r"[{s}]+\(?[{d}]{{3}}\)?[-. ]*[{d}]{{3}}[-. ]?[{d}]{{4}}"))
});

/// IPv4: four octets 0-255 (ASCII digits), alternatives in the order Python tries them.
static IP: LazyLock<Regex> = LazyLock::new(|| {
    let octet = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)";
    compile(&format!(r"(?:{octet}\.){{3}}{octet}"))
});

/// Phone and IP matches with a `#` this many characters before or after them are dropped (whole-text mode).
pub const HASH_WINDOW: usize = 100;

/// The kind of a PII match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PiiKind {
    Email = 0,
    Phone = 1,
    Ip = 2,
}

/// One match: `[start, end)` in code points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiiSpan {
    pub start: usize,
    pub end: usize,
    pub kind: PiiKind,
}

/// The matches of one document plus its number of whitespace-separated words (`len(text.split())`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PiiResult {
    pub spans: Vec<PiiSpan>,
    pub words: usize,
}

/// How a text is scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiMode {
    /// `pii_regex_v1`/`v2`/`with_counts_v2`: the whole text; e-mails accepted when the text after the
    /// match's first `@` (up to the next `@`) has a dot; phone/IP matches dropped near a `#`; words counted.
    Document,
    /// `pii_regex_with_counts_fast_v2`: each line (newline included) on its own; e-mails accepted when the
    /// captured address's domain has a dot; no `#` rule; words not counted (0).
    Lines,
}

/// Converts increasing byte offsets of one text to code-point offsets in one forward pass.
struct CharCursor<'a> {
    bytes: &'a [u8],
    ascii: bool,
    byte: usize,
    chars: usize,
}

impl<'a> CharCursor<'a> {
    fn new(text: &'a str, ascii: bool) -> Self {
        CharCursor { bytes: text.as_bytes(), ascii, byte: 0, chars: 0 }
    }

    /// The code-point offset of byte offset `to` (a char boundary, not before the previous call's).
    fn at(&mut self, to: usize) -> usize {
        if self.ascii {
            return to;
        }
        debug_assert!(to >= self.byte);
        self.chars += self.bytes[self.byte..to].iter().filter(|&&b| (b as i8) >= -0x40).count();
        self.byte = to;
        self.chars
    }
}

/// `len(text.split())` in Python.
pub fn py_word_count(text: &str) -> usize {
    let mut words = 0;
    let mut in_word = false;
    for c in text.chars() {
        let space = is_py_space(c);
        if !space && !in_word {
            words += 1;
        }
        in_word = !space;
    }
    words
}

fn has_dot_after_first_at(s: &str) -> bool {
    match s.find('@') {
        Some(at) => s[at + 1..].split('@').next().is_some_and(|seg| seg.contains('.')),
        None => false,
    }
}

/// E-mail matches of `text`, whose byte offsets are shifted by `base` for the cursor; `whole_match` selects
/// the document rule (dot after the match's first `@`) over the line rule (dot in the address's domain).
fn emails(text: &str, base: usize, whole_match: bool, cursor: &mut CharCursor<'_>, out: &mut Vec<PiiSpan>) {
    if memchr::memchr(b'@', text.as_bytes()).is_none() {
        return;
    }
    if whole_match {
        for m in EMAIL.find_iter(text) {
            if has_dot_after_first_at(m.as_str()) {
                let (start, end) = (cursor.at(base + m.start()), cursor.at(base + m.end()));
                out.push(PiiSpan { start, end, kind: PiiKind::Email });
            }
        }
    } else {
        for caps in EMAIL.captures_iter(text) {
            let (Some(m), Some(address)) = (caps.get(0), caps.get(1)) else { continue };
            if has_dot_after_first_at(address.as_str()) {
                let (start, end) = (cursor.at(base + m.start()), cursor.at(base + m.end()));
                out.push(PiiSpan { start, end, kind: PiiKind::Email });
            }
        }
    }
}

fn simple(re: &Regex, kind: PiiKind, text: &str, base: usize, cursor: &mut CharCursor<'_>, out: &mut Vec<PiiSpan>) {
    for m in re.find_iter(text) {
        let (start, end) = (cursor.at(base + m.start()), cursor.at(base + m.end()));
        out.push(PiiSpan { start, end, kind });
    }
}

/// Cheap screen for phone numbers and IP addresses: an ASCII digit, or a non-ASCII byte (other scripts'
/// digits).
fn may_have_digit(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit() || b >= 0x80)
}

/// Scans one text.
pub fn pii_scan(text: &str, mode: PiiMode) -> PiiResult {
    let ascii = text.is_ascii();
    let mut spans = Vec::new();
    match mode {
        PiiMode::Document => {
            emails(text, 0, true, &mut CharCursor::new(text, ascii), &mut spans);
            let first_other = spans.len();
            if may_have_digit(text) {
                simple(&PHONE, PiiKind::Phone, text, 0, &mut CharCursor::new(text, ascii), &mut spans);
                simple(&IP, PiiKind::Ip, text, 0, &mut CharCursor::new(text, ascii), &mut spans);
            }
            if spans.len() > first_other {
                let mut cursor = CharCursor::new(text, ascii);
                let hashes: Vec<usize> = memchr::memchr_iter(b'#', text.as_bytes()).map(|b| cursor.at(b)).collect();
                if !hashes.is_empty() {
                    let mut kept = first_other;
                    for i in first_other..spans.len() {
                        let s = spans[i];
                        let lo = s.start.saturating_sub(HASH_WINDOW);
                        let first = hashes.partition_point(|&h| h < lo);
                        let near = first < hashes.len() && hashes[first] < s.end + HASH_WINDOW;
                        if !near {
                            spans[kept] = s;
                            kept += 1;
                        }
                    }
                    spans.truncate(kept);
                }
            }
            PiiResult { spans, words: py_word_count(text) }
        }
        PiiMode::Lines => {
            let has_at = memchr::memchr(b'@', text.as_bytes()).is_some();
            if !has_at && !may_have_digit(text) {
                return PiiResult::default();
            }
            let mut cursor = CharCursor::new(text, ascii);
            let mut start = 0;
            let bytes = text.as_bytes();
            while start < bytes.len() {
                let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i + 1);
                let line = &text[start..end];
                // Matches within a line come in order e-mail, phone, IP, each increasing; the cursor only
                // moves forward, so each kind restarts from the line's start.
                let chars = cursor.at(start);
                let at_line = || CharCursor { bytes, ascii, byte: start, chars };
                if has_at {
                    emails(line, start, false, &mut at_line(), &mut spans);
                }
                simple(&PHONE, PiiKind::Phone, line, start, &mut at_line(), &mut spans);
                simple(&IP, PiiKind::Ip, line, start, &mut at_line(), &mut spans);
                start = end;
            }
            PiiResult { spans, words: 0 }
        }
    }
}

/// [`pii_scan`] over many texts in parallel, in input order.
pub fn pii_scan_batch<S: AsRef<str> + Sync>(texts: &[S], mode: PiiMode) -> Vec<PiiResult> {
    texts.par_iter().map(|t| pii_scan(t.as_ref(), mode)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str, mode: PiiMode) -> Vec<(usize, usize, PiiKind)> {
        pii_scan(text, mode).spans.iter().map(|s| (s.start, s.end, s.kind)).collect()
    }

    use PiiKind::{Email, Ip, Phone};
    use PiiMode::{Document, Lines};

    #[test]
    fn ip_addresses() {
        assert_eq!(found("see 192.168.1.1 now", Document), vec![(4, 15, Ip)]);
        assert_eq!(found("a 10.0.0.1 b", Document), vec![(2, 10, Ip)]);
        // leftmost-first alternation: "256" cannot be an octet, so the match starts at "56"
        assert_eq!(found("256.1.1.1", Document), vec![(1, 9, Ip)]);
        assert_eq!(found("1.2.3.456", Document), vec![(0, 8, Ip)]);
    }

    #[test]
    fn phone_numbers_use_python_classes() {
        assert_eq!(found("call 555-123-4567 now", Document), vec![(4, 17, Phone)]);
        assert_eq!(found("call (555) 123-4567", Document), vec![(4, 19, Phone)]);
        // U+001F is whitespace for Python, not for Unicode White_Space
        assert_eq!(found("x\u{1f}5551234567", Document), vec![(1, 12, Phone)]);
        // Arabic-Indic digits are decimal digits; offsets are code points
        assert_eq!(found("é \u{665}\u{665}\u{665}1234567", Document), vec![(1, 12, Phone)]);
        // U+1E4F0 (Nag Mundari, Unicode 15) is not a digit in Python 3.11
        assert_eq!(found(" 555123456\u{1e4f0}", Document), vec![]);
        // no leading whitespace at the start of a line in line mode
        assert_eq!(found("5551234567 x\n 5551234567", Lines), vec![(13, 24, Phone)]);
    }

    #[test]
    fn emails_and_dot_rules() {
        assert_eq!(found("mail a@b.com now", Document), vec![(4, 13, Email)]);
        // no whitespace after the address: no match
        assert_eq!(found("mail a@b.com", Document), vec![]);
        // the document rule looks after the match's first "@": here "" (a leading "@" is consumed first)
        assert_eq!(found("@@a@b.com x", Document), vec![]);
        assert_eq!(found("@@a@b.com x", Lines), vec![(0, 10, Email)]);
        assert_eq!(found("mail ü@b.com\n", Lines), vec![(4, 13, Email)]);
    }

    #[test]
    fn hash_rule_in_document_mode_only() {
        assert_eq!(found("x 1.2.3.4 y # z", Document), vec![]);
        assert_eq!(found("x 1.2.3.4 y # z", Lines), vec![(2, 9, Ip)]);
        let far = format!("# {} 1.2.3.4 y", "w".repeat(98));
        assert_eq!(found(&far, Document), vec![(101, 108, Ip)]);
        let near = format!("# {} 1.2.3.4 y", "w".repeat(97));
        assert_eq!(found(&near, Document), vec![]);
        let after = format!("x 1.2.3.4 {}é#", "w".repeat(97));
        assert_eq!(found(&after, Document), vec![]);
        let after_far = format!("x 1.2.3.4 {}é#", "w".repeat(98));
        assert_eq!(found(&after_far, Document), vec![(2, 9, Ip)]);
        assert_eq!(found("mail a@b.com now #", Document), vec![(4, 13, Email)]);
    }

    #[test]
    fn order_is_emails_then_phones_then_ips() {
        let text = "1.2.3.4 x@y.z  555 123 4567 a";
        assert_eq!(found(text, Document), vec![(7, 15, Email), (13, 27, Phone), (0, 7, Ip)]);
    }

    #[test]
    fn digit_ranges_are_checked() {
        assert_eq!(default_digit_ranges()[0], (0x30, 0x39));
        assert_eq!(default_digit_ranges().iter().map(|(s, e)| e - s + 1).sum::<u32>(), 61 * 10 + 50);
        assert!(set_digit_ranges(vec![(0x39, 0x30)]).is_err());
        assert!(set_digit_ranges(vec![(0xD7FF, 0xE000)]).is_err());
        assert!(set_digit_ranges(vec![(0x30, 0x110000)]).is_err());
        // the scan fixes the set; the same set may be given again, another may not
        let _ = pii_scan("x", Document);
        assert!(set_digit_ranges(digit_ranges().to_vec()).is_ok());
        assert!(set_digit_ranges(vec![(0x30, 0x39)]).is_err());
    }

    #[test]
    fn word_count_matches_str_split() {
        assert_eq!(pii_scan("", Document).words, 0);
        assert_eq!(pii_scan(" \u{1c}a\u{a0}b  c\u{3000}", Document).words, 3);
        assert_eq!(py_word_count("one"), 1);
    }

    #[test]
    fn batch_keeps_order() {
        let texts = ["a 1.2.3.4 b", "none", "x@y.z "];
        let got = pii_scan_batch(&texts, Document);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].spans.len(), 1);
        assert!(got[1].spans.is_empty());
        assert_eq!(got[2].spans[0].kind, Email);
    }
}
