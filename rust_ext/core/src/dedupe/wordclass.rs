//! Word-break classes of non-ASCII characters for the fast word scanner of [`super::text`], learnt from
//! `unicode-segmentation` itself.
//!
//! On text without Extend, Format or ZWJ characters, Hebrew letters, regional indicators or line separators,
//! UAX #29 reduces to the rules the ASCII scanner applies, plus one for katakana: runs of letters, digits and
//! connectors never break, nor do runs of katakana and connectors (a katakana next to a letter or digit
//! does), a single mid-word character joins two letters or two digits, whitespace is dropped and every other
//! character is a word of its own. Which of those roles a character has is its word-break class, which the
//! crate keeps private; so the class of a character is found by segmenting it in a fixed set of short
//! contexts (the probes) with the crate and comparing the result with that of a representative of each role
//! (an ASCII character, or U+30A2 for katakana). A character that segments like none of them (one of the classes above) is unknown, and the pieces of
//! text that hold one are segmented by the crate. The classes are learnt lazily, 128 code points at a time,
//! for the Basic Multilingual Plane; characters above it are unknown.
//!
//! The segmentation depends only on the classes (and, after a ZWJ, on the Extended_Pictographic property, so
//! no probe puts a ZWJ before the character), so a character that segments like a representative in every
//! probe has its class, provided the probes tell every class apart from the representatives' ones: the tests
//! check that for an example of every class, and compare the scanner with the crate on every character.

use std::sync::OnceLock;

use unicode_segmentation::UnicodeSegmentation;

/// Runs of letters, digits and connectors, or of katakana and connectors (no break inside).
pub const RUN: u16 = 1;
/// A letter (ALetter): joined to a letter by a [`MID_LETTER`] character.
pub const LETTER: u16 = 2;
/// A digit (Numeric): joined to a digit by a [`MID_NUM`] character.
pub const DIGIT: u16 = 4;
/// Joins two letters (MidLetter, MidNumLet, Single_Quote).
pub const MID_LETTER: u16 = 8;
/// Joins two digits (MidNum, MidNumLet, Single_Quote).
pub const MID_NUM: u16 = 16;
/// Whitespace that is never part of a word (dropped).
pub const SPACE: u16 = 32;
/// `char::is_alphanumeric`.
pub const ALNUM: u16 = 64;
/// The character has one of the roles above (or none: a word of its own), not a class of its own.
pub const KNOWN: u16 = 128;
/// Known, and its lower case is one character with the same flags and UTF-8 length (so lower-casing keeps
/// the words and can be done in place).
pub const LOWERS_SIMPLY: u16 = 256;
/// A katakana (Katakana): in a [`RUN`], joined to katakana and connectors, not to letters or digits.
pub const KATAKANA: u16 = 512;

/// The representatives of the roles and their flags.
const REPRESENTATIVES: [(char, u16); 9] = [
    ('a', RUN | LETTER),
    ('1', RUN | DIGIT),
    ('_', RUN),
    ('.', MID_LETTER | MID_NUM),
    (':', MID_LETTER),
    (',', MID_NUM),
    ('%', 0),
    (' ', SPACE),
    ('\u{30A2}', RUN | KATAKANA),
];

/// The contexts a character is segmented in (`X` stands for it): next to representatives and to examples of
/// the classes the scanner does not handle (Extend U+0301, Format U+00AD, Hebrew letter U+05D0, double quote,
/// katakana U+30A2, regional indicator U+1F1E6, ideographic space U+3000). Eleven of them tell every class
/// from the representatives' (the first test); a few more are kept as a margin.
const PROBES: [&str; 18] = [
    "aXa",
    "1X1",
    "X,1",
    "X\u{AD}",
    "\u{5D0}X",
    "X\u{5D0}",
    "\u{5D0}X\u{5D0}",
    "X\"\u{5D0}",
    "X\u{30A2}",
    "X\u{1F1E6}",
    "X\u{3000}",
    "XX",
    "aX",
    "Xa",
    "1X",
    "X1",
    "_X",
    "X\u{301}",
];

/// How `c` segments in every probe: the length in code points of each segment, probe after probe (0 ends a
/// probe).
fn signature(c: char) -> Vec<u8> {
    let mut out = Vec::with_capacity(PROBES.len() * 3);
    let mut text = String::with_capacity(16);
    for probe in PROBES {
        text.clear();
        text.extend(probe.chars().map(|p| if p == 'X' { c } else { p }));
        out.extend(text.split_word_bounds().map(|s| s.chars().count() as u8));
        out.push(0);
    }
    out
}

fn representative_signatures() -> &'static [Vec<u8>; 9] {
    static SIGNATURES: OnceLock<[Vec<u8>; 9]> = OnceLock::new();
    SIGNATURES.get_or_init(|| REPRESENTATIVES.map(|(c, _)| signature(c)))
}

/// The flags of `c` found by probing (without [`LOWERS_SIMPLY`]).
fn probe(c: char) -> u16 {
    if c.is_ascii() {
        return super::text::ascii_flags(c as u8);
    }
    let alnum = if c.is_alphanumeric() { ALNUM } else { 0 };
    let sig = signature(c);
    let role = representative_signatures().iter().position(|s| *s == sig).map(|i| REPRESENTATIVES[i].1);
    match role {
        // Whitespace that is a word of its own (segments like `%`) is dropped like a space; whitespace that
        // joins words (the narrow no-break space is a connector) is left to the crate, whose words are
        // dropped when they are all whitespace.
        Some(0) if c.is_whitespace() => SPACE | KNOWN,
        Some(flags) if c.is_whitespace() && flags != SPACE => alnum,
        Some(flags) => flags | alnum | KNOWN,
        None => alnum,
    }
}

/// The table entry of a character that is not ASCII: its flags, including [`LOWERS_SIMPLY`], in the low
/// [`FLAG_BITS`] bits, and its lower case above them (itself when it does not lower-case simply).
fn learn(c: char) -> u32 {
    let flags = probe(c);
    let mut lower = c.to_lowercase();
    let simple = match (lower.next(), lower.next()) {
        // Capital sigma lower-cases by its context (final sigma).
        _ if c == '\u{3A3}' => None,
        (Some(l), None) if l == c => Some(l),
        // Of the same UTF-8 length too, so that words can be lower-cased in place.
        (Some(l), None) if l.len_utf8() == c.len_utf8() && probe(l) == flags => Some(l),
        _ => None,
    };
    match simple {
        Some(l) if flags & KNOWN != 0 => (flags | LOWERS_SIMPLY) as u32 | (l as u32) << FLAG_BITS,
        _ => flags as u32 | (c as u32) << FLAG_BITS,
    }
}

const FLAG_BITS: u32 = 11;
const BLOCK: usize = 128;
static BLOCKS: [OnceLock<[u32; BLOCK]>; 0x10000 / BLOCK] = [const { OnceLock::new() }; 0x10000 / BLOCK];

/// The table entry of a character that is not ASCII (learnt with the rest of its block on first use); 0 for
/// one above the Basic Multilingual Plane.
#[inline]
fn entry(c: char) -> u32 {
    let code = c as usize;
    let Some(block) = BLOCKS.get(code / BLOCK) else {
        return 0;
    };
    block.get_or_init(|| {
        let base = code / BLOCK * BLOCK;
        std::array::from_fn(|i| char::from_u32((base + i) as u32).map_or(0, learn))
    })[code % BLOCK]
}

/// The flags of a character that is not ASCII.
#[inline]
pub fn flags(c: char) -> u16 {
    (entry(c) & ((1 << FLAG_BITS) - 1)) as u16
}

/// Lower-cases in place the characters of `text` (UTF-8) that have [`LOWERS_SIMPLY`] (ASCII ones included);
/// the others are left as they are.
pub fn lowercase_simply(text: &mut [u8]) {
    text.make_ascii_lowercase();
    let mut i = 0;
    while let Some(k) = super::text::first_non_ascii(text, i) {
        // The code point of a two- or three-byte sequence (the Basic Multilingual Plane); longer ones have no
        // entry.
        let (len, code) = match text[k..] {
            [a @ 0xC0..=0xDF, b, ..] => (2, (a as u32 & 0x1F) << 6 | (b as u32 & 0x3F)),
            [a @ 0xE0..=0xEF, b, c, ..] => (3, (a as u32 & 0x0F) << 12 | (b as u32 & 0x3F) << 6 | (c as u32 & 0x3F)),
            _ => (4, 0),
        };
        if let Some(c) = char::from_u32(code).filter(|_| len < 4) {
            let e = entry(c);
            if e & LOWERS_SIMPLY as u32 != 0 {
                if let Some(l) = char::from_u32(e >> FLAG_BITS) {
                    l.encode_utf8(&mut text[k..k + len]);
                }
            }
        }
        i = k + len;
    }
}

/// Whether every character of `text` that is not ASCII has all of `wanted`.
pub fn all_non_ascii(text: &str, wanted: u16) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(k) = super::text::first_non_ascii(bytes, i) {
        // The run of characters that are not ASCII at `k`.
        let run = bytes[k..].iter().position(|&b| b < 0x80).map_or(text.len(), |n| k + n);
        if !text[k..run].chars().all(|c| flags(c) & wanted == wanted) {
            return false;
        }
        i = run;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_tell_every_class_from_the_representatives() {
        // An example of every word-break class of UAX #29 (and letters and others that are Extended_Pictographic,
        // which only a preceding ZWJ tells apart), with the representative whose class it has, if any.
        let examples: [(char, Option<char>); 26] = [
            ('b', Some('a')),
            ('\u{2139}', Some('a')), // ALetter, Extended_Pictographic
            ('7', Some('1')),
            ('\u{203F}', Some('_')),
            ('\u{2019}', Some('.')), // MidNumLet
            ('\u{B7}', Some(':')),   // MidLetter
            (';', Some(',')),        // MidNum
            ('@', Some('%')),        // Any
            ('\u{A9}', Some('%')),   // Any, Extended_Pictographic
            ('\u{2000}', Some(' ')), // WSegSpace
            ('\'', None),            // Single_Quote
            ('"', None),             // Double_Quote
            ('\r', None),
            ('\n', None),
            ('\u{B}', None),                // Newline
            ('\u{301}', None),              // Extend
            ('\u{200C}', None),             // Extend (ZWNJ)
            ('\u{AD}', None),               // Format
            ('\u{200D}', None),             // ZWJ
            ('\u{5D0}', None),              // Hebrew_Letter
            ('\u{30A2}', Some('\u{30A2}')), // Katakana
            ('\u{30FC}', Some('\u{30A2}')), // Katakana (prolonged sound mark)
            ('\u{FF71}', Some('\u{30A2}')), // Katakana (halfwidth)
            ('\u{FF9E}', None),             // Extend (halfwidth voiced sound mark)
            ('\u{1F1E6}', None),
            ('\u{2028}', None), // Newline
        ];
        for (c, representative) in examples {
            let found = representative_signatures().iter().position(|s| *s == signature(c));
            assert_eq!(found.map(|i| REPRESENTATIVES[i].0), representative, "{c:?}");
        }
    }

    #[test]
    fn flags_of_common_characters() {
        assert_eq!(flags('é'), RUN | LETTER | ALNUM | KNOWN | LOWERS_SIMPLY);
        assert_eq!(flags('Ж'), RUN | LETTER | ALNUM | KNOWN | LOWERS_SIMPLY);
        assert_eq!(flags('한'), RUN | LETTER | ALNUM | KNOWN | LOWERS_SIMPLY);
        assert_eq!(flags('日'), ALNUM | KNOWN | LOWERS_SIMPLY);
        assert_eq!(flags('\u{A0}'), SPACE | KNOWN | LOWERS_SIMPLY);
        assert_eq!(flags('\u{2019}'), MID_LETTER | MID_NUM | KNOWN | LOWERS_SIMPLY);
        assert_eq!(flags('\u{301}') & KNOWN, 0);
        // Its lower case is two characters.
        assert_eq!(flags('\u{130}') & (KNOWN | LOWERS_SIMPLY), KNOWN);
        assert_eq!(flags('\u{1F600}'), 0);
        assert!(all_non_ascii("Ça va, Жора? 日本", LOWERS_SIMPLY));
        assert!(!all_non_ascii("naïve\u{301}", KNOWN));
        assert!(all_non_ascii("plain", KNOWN));
        assert_eq!(flags('\u{3A3}') & (KNOWN | LOWERS_SIMPLY), KNOWN);
    }

    #[test]
    fn known_characters_segment_as_the_crate_does_in_every_context() {
        // Every character of the Basic Multilingual Plane whose class is known, next to letters, digits,
        // mid-word characters, spaces, itself and other known characters (ASCII and not).
        let contexts = ["aXb", "1X2", "XX", "x X", "éXé", "a.X", "X'a", "X,1", "_X_", "日X", "アXア", "X_ア", "アX1"];
        let mut checked = 0;
        for code in 0x80..0x10000u32 {
            let Some(c) = char::from_u32(code) else { continue };
            if flags(c) & KNOWN == 0 {
                continue;
            }
            for context in contexts {
                let text: String = context.chars().map(|x| if x == 'X' { c } else { x }).collect();
                let mut fast = Vec::new();
                super::super::text::words_into(&text, &mut fast);
                let slow: Vec<&str> = super::super::text::words(&text).collect();
                assert_eq!(fast, slow, "{c:?} in {context:?}");
            }
            if flags(c) & LOWERS_SIMPLY != 0 {
                let mut bytes = c.to_string().into_bytes();
                lowercase_simply(&mut bytes);
                assert_eq!(String::from_utf8(bytes).unwrap(), c.to_lowercase().to_string(), "{c:?}");
            }
            checked += 1;
        }
        // Most of the plane (letters, ideographs, Hangul, punctuation) is known.
        assert!(checked > 50_000, "{checked}");
    }
}
