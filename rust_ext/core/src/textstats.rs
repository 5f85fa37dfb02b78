//! Text statistics for the rule-based quality taggers (Gopher and C4 rules).
//!
//! Every statistic follows Python's string semantics, because the attribute values must equal those of
//! the reference toolkit (which computes them with `str.split()`, `str.isalpha()`, `str.strip()` and
//! `str.lower()`): words are runs of non-whitespace where whitespace is Python's `str.isspace` set,
//! lengths count code points, "alphabetic" means a letter category (L*). One document is scanned once for
//! all the statistics a tagger needs; batches run in parallel with rayon and keep input order, so results
//! never depend on the thread count.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;
use unicode_general_category::{get_general_category, GeneralCategory};

/// Python's `str.isspace()`: Unicode White_Space plus the four ASCII separators U+001C..U+001F.
pub fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.isalpha()` for one character: general category Lu, Ll, Lt, Lm or Lo.
pub fn py_is_alpha(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        GeneralCategory::UppercaseLetter
            | GeneralCategory::LowercaseLetter
            | GeneralCategory::TitlecaseLetter
            | GeneralCategory::ModifierLetter
            | GeneralCategory::OtherLetter
    )
}

/// Python's `str.split()` with no argument: the non-empty runs of non-whitespace.
pub fn py_split_whitespace(text: &str) -> impl Iterator<Item = &str> {
    text.split(py_is_space).filter(|w| !w.is_empty())
}

/// Python's `str.strip()` with no argument.
pub fn py_strip(text: &str) -> &str {
    text.trim_matches(py_is_space)
}

/// A small, fast, deterministic hasher for in-memory tables of word ids (not persisted anywhere).
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(buf));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxBuild = BuildHasherDefault<FxHasher>;

/// The stop words the Gopher rules require ("required_word_count"), matched exactly (case-sensitive).
pub const GOPHER_STOP_WORDS: [&str; 8] = ["the", "be", "to", "of", "and", "that", "have", "with"];

/// Document statistics of the Gopher quality rules (`gopher_v1` / `gopher_v2`).
///
/// N-gram entries are `None` when the document has fewer words than `n` (the tagger then omits the key).
#[derive(Debug, Clone, PartialEq)]
pub struct GopherStats {
    /// Characters (summed word lengths) of the most frequent 2-, 3-, 4-gram times its count, over the
    /// characters of all words (can exceed 1 for overlapping repeats; ties go to the first n-gram seen).
    pub top_ngram_char_fraction: [Option<f64>; 3],
    /// For n = 5..=10: characters of all n-gram occurrences whose n-gram occurs more than once, over the
    /// characters of all n-gram occurrences.
    pub dup_ngram_char_fraction: [Option<f64>; 6],
    pub character_count: f64,
    pub word_count: f64,
    pub median_word_length: f64,
    /// Words containing `#` or `…`, per word.
    pub symbol_to_word_ratio: f64,
    pub fraction_of_words_with_alpha_character: f64,
    pub required_word_count: f64,
    pub fraction_of_lines_starting_with_bullet_point: f64,
    pub fraction_of_lines_ending_with_ellipsis: f64,
    pub fraction_of_duplicate_lines: f64,
    /// Characters of the lines that occur more than once, over the characters of all words (at least 1).
    pub fraction_of_characters_in_duplicate_lines: f64,
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// How the Gopher rules cut a document into lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GopherLines {
    /// v1: every `\n` ends a line (`text.split("\n")`).
    EveryNewline,
    /// v2: runs of `\n` end a line (`re.split("\n+", text)`), so blank lines vanish except at the ends.
    NewlineRuns,
}

fn gopher_lines(text: &str, mode: GopherLines) -> Vec<&str> {
    let pieces: Vec<&str> = text.split('\n').collect();
    match mode {
        GopherLines::EveryNewline => pieces,
        GopherLines::NewlineRuns => {
            let last = pieces.len() - 1;
            pieces
                .into_iter()
                .enumerate()
                .filter(|(i, p)| !p.is_empty() || *i == 0 || *i == last)
                .map(|(_, p)| p)
                .collect()
        }
    }
}

/// Ids of the n-grams one word longer: the n-gram at `i` is (the shorter n-gram at `i`, word `i + n - 1`), so
/// each level is one integer-pair lookup per position and n-grams are compared exactly. Returns the new ids
/// (one per position) and how often each id occurs.
fn extend_ngrams(prev: &[u32], words: &[u32], n: usize) -> (Vec<u32>, Vec<u32>) {
    let positions = words.len() + 1 - n;
    let mut table: HashMap<u64, u32, FxBuild> = HashMap::with_capacity_and_hasher(positions, FxBuild::default());
    let mut counts: Vec<u32> = Vec::with_capacity(positions);
    let ids = (0..positions)
        .map(|i| {
            let key = (u64::from(prev[i]) << 32) | u64::from(words[i + n - 1]);
            let next = counts.len() as u32;
            let id = *table.entry(key).or_insert(next);
            if id == next {
                counts.push(0);
            }
            counts[id as usize] += 1;
            id
        })
        .collect();
    (ids, counts)
}

/// All Gopher statistics of one document, in one pass over its words and one over its lines.
pub fn gopher_stats(text: &str, lines_mode: GopherLines) -> GopherStats {
    let words: Vec<&str> = py_split_whitespace(text).collect();
    let lengths: Vec<usize> = words.iter().map(|w| w.chars().count()).collect();
    let total_chars: usize = lengths.iter().sum();
    let word_count = words.len();

    // Word ids, so n-grams are compared as integer slices.
    let mut vocab: HashMap<&str, u32, FxBuild> = HashMap::with_capacity_and_hasher(word_count, FxBuild::default());
    let ids: Vec<u32> = words
        .iter()
        .map(|w| {
            let next = vocab.len() as u32;
            *vocab.entry(w).or_insert(next)
        })
        .collect();
    // prefix[i] = characters of words[..i], so an n-gram's characters are prefix[i + n] - prefix[i].
    let mut prefix = Vec::with_capacity(word_count + 1);
    prefix.push(0usize);
    for &len in &lengths {
        prefix.push(prefix[prefix.len() - 1] + len);
    }

    let mut top = [None; 3];
    let mut dup = [None; 6];
    let mut grams = ids.clone();
    // Once every n-gram is distinct, every longer one is too: no need to build them.
    let mut all_distinct = false;
    for n in 2..=10usize {
        if word_count < n {
            break;
        }
        let positions = word_count + 1 - n;
        let chars = |i: usize| prefix[i + n] - prefix[i];
        let counts_at: Vec<u32> = if all_distinct {
            vec![1; positions]
        } else {
            let (next, counts) = extend_ngrams(&grams, &ids, n);
            all_distinct = counts.len() == positions;
            let at = next.iter().map(|&id| counts[id as usize]).collect();
            grams = next;
            at
        };
        if n <= 4 {
            let best = counts_at.iter().copied().max().unwrap_or(0);
            if let Some(first) = counts_at.iter().position(|&c| c == best) {
                top[n - 2] = Some(ratio(best as f64 * chars(first) as f64, total_chars as f64));
            }
        } else {
            let (mut dup_chars, mut all_chars) = (0usize, 0usize);
            for (i, &c) in counts_at.iter().enumerate() {
                all_chars += chars(i);
                if c > 1 {
                    dup_chars += chars(i);
                }
            }
            dup[n - 5] = Some(ratio(dup_chars as f64, all_chars as f64));
        }
    }

    let median = if word_count == 0 {
        0.0
    } else {
        let mut sorted = lengths.clone();
        sorted.sort_unstable();
        let mid = word_count / 2;
        if word_count % 2 == 1 {
            sorted[mid] as f64
        } else {
            (sorted[mid - 1] + sorted[mid]) as f64 / 2.0
        }
    };
    let symbols = words.iter().filter(|w| w.contains('#') || w.contains('\u{2026}')).count();
    let alpha = words.iter().filter(|w| w.chars().any(py_is_alpha)).count();
    let required = words.iter().filter(|w| GOPHER_STOP_WORDS.contains(w)).count();

    let lines = gopher_lines(text, lines_mode);
    let line_count = lines.len() as f64;
    let bullets = lines.iter().filter(|l| l.starts_with('*') || l.starts_with('-')).count();
    let ellipses = lines.iter().filter(|l| l.ends_with('\u{2026}')).count();
    let mut line_counts: HashMap<&str, u32, FxBuild> =
        HashMap::with_capacity_and_hasher(lines.len(), FxBuild::default());
    for line in &lines {
        *line_counts.entry(line).or_insert(0) += 1;
    }
    let (mut dup_lines, mut dup_line_chars) = (0usize, 0usize);
    for line in &lines {
        if line_counts.get(line).copied().unwrap_or(0) > 1 {
            dup_lines += 1;
            dup_line_chars += line.chars().count();
        }
    }

    let wc = word_count as f64;
    GopherStats {
        top_ngram_char_fraction: top,
        dup_ngram_char_fraction: dup,
        character_count: text.chars().count() as f64,
        word_count: wc,
        median_word_length: median,
        symbol_to_word_ratio: ratio(symbols as f64, wc),
        fraction_of_words_with_alpha_character: ratio(alpha as f64, wc),
        required_word_count: required as f64,
        fraction_of_lines_starting_with_bullet_point: ratio(bullets as f64, line_count),
        fraction_of_lines_ending_with_ellipsis: ratio(ellipses as f64, line_count),
        fraction_of_duplicate_lines: ratio(dup_lines as f64, line_count),
        fraction_of_characters_in_duplicate_lines: dup_line_chars as f64 / total_chars.max(1) as f64,
    }
}

/// [`gopher_stats`] for many documents, in parallel, in input order.
pub fn gopher_stats_batch<S: AsRef<str> + Sync>(texts: &[S], lines_mode: GopherLines) -> Vec<GopherStats> {
    texts.par_iter().map(|t| gopher_stats(t.as_ref(), lines_mode)).collect()
}

/// A list of "naughty" words and phrases, matched case-insensitively on whole whitespace-split words of
/// one line (a phrase matches consecutive words of the same line).
#[derive(Debug, Clone, Default)]
pub struct NaughtyWords {
    phrases: HashSet<String>,
    max_words: usize,
}

impl NaughtyWords {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(phrases: I) -> Self {
        let mut out = NaughtyWords::default();
        for phrase in phrases {
            let words: Vec<String> = py_split_whitespace(phrase.as_ref()).map(str::to_lowercase).collect();
            if words.is_empty() {
                continue;
            }
            out.max_words = out.max_words.max(words.len());
            out.phrases.insert(words.join(" "));
        }
        out
    }

    pub fn len(&self) -> usize {
        self.phrases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Whether the (already lower-cased, split) words contain a listed word or phrase.
    fn matches(&self, words: &[&str]) -> bool {
        if self.phrases.is_empty() {
            return false;
        }
        let mut buf = String::new();
        for start in 0..words.len() {
            buf.clear();
            for (k, word) in words[start..].iter().take(self.max_words).enumerate() {
                if k > 0 {
                    buf.push(' ');
                }
                buf.push_str(word);
                if self.phrases.contains(buf.as_str()) {
                    return true;
                }
            }
        }
        false
    }
}

/// One line of a document as the C4 rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct C4Line {
    /// Code-point offsets; the span covers the line's `\n` (the last line has none).
    pub start: usize,
    pub end: usize,
    /// The same span measured on the lower-cased text, as c4_v2 writes it (`"İ".lower()` is two code
    /// points, so its offsets drift after such characters).
    pub lower_start: usize,
    pub lower_end: usize,
    /// The stripped line does not end with `.`, `!`, `?` or `"`.
    pub no_ending_punctuation: bool,
    /// The line has fewer than 3 words.
    pub too_few_words: bool,
}

/// Statistics of the C4 rules (`c4_v1` / `c4_v2`) for one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C4Stats {
    pub lines: Vec<C4Line>,
    pub has_naughty_word: bool,
    /// Some lower-cased word is exactly "javascript" (c4_v1).
    pub has_javascript: bool,
    /// The lower-cased text contains "javascript" anywhere (c4_v2).
    pub has_javascript_substring: bool,
    pub has_lorem_ipsum: bool,
    pub has_curly_brace: bool,
}

/// Minimum number of words of a line that the C4 rules keep.
pub const C4_MIN_WORDS: usize = 3;

/// All C4 statistics of one document in one pass over its lines.
pub fn c4_stats(text: &str, naughty: &NaughtyWords) -> C4Stats {
    let pieces: Vec<&str> = text.split('\n').collect();
    let last = pieces.len() - 1;
    let mut lines = Vec::with_capacity(pieces.len());
    let mut pos = 0usize;
    let mut lower_pos = 0usize;
    let mut has_naughty_word = false;
    let mut has_javascript = false;
    for (i, line) in pieces.iter().enumerate() {
        let end = pos + line.chars().count() + usize::from(i < last);
        let stripped = py_strip(line);
        let no_ending_punctuation = !stripped.ends_with(['.', '!', '?', '"']);
        let too_few_words = py_split_whitespace(stripped).take(C4_MIN_WORDS).count() < C4_MIN_WORDS;
        let lower = line.to_lowercase();
        let lower_end = lower_pos + lower.chars().count() + usize::from(i < last);
        if !(has_naughty_word && has_javascript) {
            let words: Vec<&str> = py_split_whitespace(&lower).collect();
            has_naughty_word = has_naughty_word || naughty.matches(&words);
            has_javascript = has_javascript || words.contains(&"javascript");
        }
        lines.push(C4Line {
            start: pos,
            end,
            lower_start: lower_pos,
            lower_end,
            no_ending_punctuation,
            too_few_words,
        });
        pos = end;
        lower_pos = lower_end;
    }
    let lower = text.to_lowercase();
    C4Stats {
        lines,
        has_naughty_word,
        has_javascript,
        has_javascript_substring: lower.contains("javascript"),
        has_lorem_ipsum: lower.contains("lorem ipsum"),
        has_curly_brace: text.contains('{'),
    }
}

/// [`c4_stats`] for many documents, in parallel, in input order.
pub fn c4_stats_batch<S: AsRef<str> + Sync>(texts: &[S], naughty: &NaughtyWords) -> Vec<C4Stats> {
    texts.par_iter().map(|t| c4_stats(t.as_ref(), naughty)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn whitespace_and_alpha_follow_python() {
        assert!(py_is_space('\u{1c}') && py_is_space('\u{a0}') && py_is_space('\u{3000}'));
        assert!(!py_is_space('\u{200b}') && !py_is_space('x'));
        assert!(py_is_alpha('é') && py_is_alpha('東') && py_is_alpha('ʰ'));
        // Combining marks and letter numbers are Alphabetic in Unicode but not str.isalpha().
        assert!(!py_is_alpha('\u{301}') && !py_is_alpha('Ⅻ') && !py_is_alpha('1'));
        let words: Vec<&str> = py_split_whitespace("\u{1c}a\u{a0}b  c\n").collect();
        assert_eq!(words, ["a", "b", "c"]);
        assert_eq!(py_strip(" \t x y \u{3000}"), "x y");
    }

    #[test]
    fn gopher_empty_document() {
        let s = gopher_stats("", GopherLines::EveryNewline);
        assert_eq!(s.word_count, 0.0);
        assert_eq!(s.top_ngram_char_fraction, [None; 3]);
        assert_eq!(s.dup_ngram_char_fraction, [None; 6]);
        assert_eq!(s.fraction_of_duplicate_lines, 0.0);
    }

    #[test]
    fn gopher_repeated_word() {
        // Six "a": the 2-gram "a a" occurs 5 times with 2 characters each, over 6 characters.
        let s = gopher_stats("a a a a a a", GopherLines::EveryNewline);
        assert!(close(s.top_ngram_char_fraction[0].unwrap_or(-1.0), 10.0 / 6.0));
        assert_eq!(s.dup_ngram_char_fraction[0], Some(1.0));
        assert_eq!(s.dup_ngram_char_fraction[1], Some(0.0));
        assert_eq!(s.dup_ngram_char_fraction[2], None);
        assert_eq!(s.median_word_length, 1.0);
    }

    #[test]
    fn gopher_lines_modes() {
        let text = "ab\n\n\nab\n";
        let v1 = gopher_stats(text, GopherLines::EveryNewline);
        // Lines: ab, "", "", ab, "": every line repeats.
        assert_eq!(v1.fraction_of_duplicate_lines, 1.0);
        assert_eq!(v1.fraction_of_characters_in_duplicate_lines, 1.0);
        let v2 = gopher_stats(text, GopherLines::NewlineRuns);
        // Lines: ab, ab, "".
        assert!(close(v2.fraction_of_duplicate_lines, 2.0 / 3.0));
        let b = gopher_stats("* a\n- b\n• c\nd…", GopherLines::EveryNewline);
        assert_eq!(b.fraction_of_lines_starting_with_bullet_point, 0.5);
        assert_eq!(b.fraction_of_lines_ending_with_ellipsis, 0.25);
        assert!(close(b.symbol_to_word_ratio, 1.0 / 7.0));
    }

    #[test]
    fn c4_lines_and_flags() {
        let naughty = NaughtyWords::new(["badword", "two words"]);
        let s = c4_stats("One two three.\nshort\nTWO Words here!\n", &naughty);
        let flags: Vec<(usize, usize, bool, bool)> =
            s.lines.iter().map(|l| (l.start, l.end, l.no_ending_punctuation, l.too_few_words)).collect();
        assert_eq!(flags, [(0, 15, false, false), (15, 21, true, true), (21, 37, false, false), (37, 37, true, true)]);
        assert!(s.has_naughty_word);
        assert!(!s.has_javascript && !s.has_curly_brace);
        // A phrase split across lines does not match; punctuation glued to a word prevents a match.
        assert!(!c4_stats("two\nwords", &naughty).has_naughty_word);
        assert!(!c4_stats("a badword, b", &naughty).has_naughty_word);
        let t = c4_stats("xLorem Ipsumx { JavaScript", &naughty);
        assert!(t.has_lorem_ipsum && t.has_javascript && t.has_curly_brace);
        // "javascript" must be a whole word; "lorem ipsum" may be inside words.
        let js = c4_stats("Enable JavaScript.", &naughty);
        assert!(!js.has_javascript && js.has_javascript_substring);
    }

    #[test]
    fn batches_keep_order() {
        let texts = ["a b c", "", "x y z. w"];
        let batch = gopher_stats_batch(&texts, GopherLines::EveryNewline);
        for (t, s) in texts.iter().zip(&batch) {
            assert_eq!(*s, gopher_stats(t, GopherLines::EveryNewline));
        }
        let naughty = NaughtyWords::new(["z."]);
        let c4 = c4_stats_batch(&texts, &naughty);
        assert_eq!(c4.iter().map(|s| s.has_naughty_word).collect::<Vec<_>>(), [false, false, true]);
    }
}

/// One repeated substring: code-point `[start, end)` and the number of copies (at least 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repetition {
    pub start: usize,
    pub end: usize,
    pub copies: usize,
}

/// Copies a repetition needs (the unit plus three more).
pub const MIN_COPIES: usize = 4;

fn unit_at(c: &[char], unit: usize, len: usize, p: usize) -> bool {
    p + len <= c.len() && c[p..p + len] == c[unit..unit + len]
}

/// After `done` further copies ending at `p`: the end and copy count of the repetition, trying at each step
/// "whitespace + unit" before "unit" and backtracking until the minimum is reached, then going on greedily.
fn continue_copies(c: &[char], unit: usize, len: usize, p: usize, done: usize) -> Option<(usize, usize)> {
    if done + 1 >= MIN_COPIES {
        let mut p = p;
        let mut copies = done + 1;
        loop {
            if p < c.len() && py_is_space(c[p]) && unit_at(c, unit, len, p + 1) {
                p += 1 + len;
            } else if unit_at(c, unit, len, p) {
                p += len;
            } else {
                return Some((p, copies));
            }
            copies += 1;
        }
    }
    if p < c.len() && py_is_space(c[p]) && unit_at(c, unit, len, p + 1) {
        if let Some(found) = continue_copies(c, unit, len, p + 1 + len, done + 1) {
            return Some(found);
        }
    }
    if unit_at(c, unit, len, p) {
        return continue_copies(c, unit, len, p + len, done + 1);
    }
    None
}

/// Non-overlapping occurrences of `unit` in `hay`, scanning left to right (Python's `str.count`).
fn count_occurrences(hay: &[char], unit: &[char]) -> usize {
    let (mut count, mut p) = (0, 0);
    while p + unit.len() <= hay.len() {
        if hay[p..p + unit.len()] == *unit {
            count += 1;
            p += unit.len();
        } else {
            p += 1;
        }
    }
    count
}

/// Repetitions in `c`, left to right without overlap, as Python's `re.finditer(r"(.+?)(?:\s?\1){3,}", text)`
/// finds them: at each position the shortest unit (never containing `\n`) that repeats wins.
///
/// A unit of length `len` at `i` can only repeat where its second copy starts with `c[i]`: at `i + len`, or at
/// `i + len + 1` after one whitespace character. Only those lengths are tried, in increasing order, walking the
/// later occurrences of `c[i]` (`next_same`): the lengths every other length would fail at the first character.
fn find_repetitions(c: &[char], offset: usize, out: &mut Vec<Repetition>) {
    let n = c.len();
    let next = next_same(c);
    let mut newline = c.iter().position(|&ch| ch == '\n').unwrap_or(n);
    let mut i = 0;
    while i < n {
        if newline < i {
            newline = c[i..].iter().position(|&ch| ch == '\n').map_or(n, |p| i + p);
        }
        // The unit holds no newline, and MIN_COPIES copies of it must fit in what is left.
        let longest = (newline - i).min((n - i) / MIN_COPIES);
        let mut found = None;
        let mut tried = 0;
        let mut k = next[i];
        'lengths: while k < n {
            let after_space = if k >= i + 2 && py_is_space(c[k - 1]) { k - 1 - i } else { 0 };
            for len in [after_space, k - i] {
                if len == 0 || len <= tried {
                    continue;
                }
                if len > longest {
                    break 'lengths;
                }
                tried = len;
                if let Some(hit) = continue_copies(c, i, len, i + len, 0) {
                    found = Some((hit, len));
                    break 'lengths;
                }
            }
            k = next[k];
        }
        match found {
            Some(((end, _), len)) => {
                // The score is how often the unit occurs in the match, counted like Python's `str.count`
                // (non-overlapping, left to right), which can exceed the copies the pattern itself used.
                let copies = count_occurrences(&c[i..end], &c[i..i + len]);
                out.push(Repetition { start: offset + i, end: offset + end, copies });
                i = end;
            }
            None => i += 1,
        }
    }
}

/// For each index, the next index holding the same character (`c.len()` if none).
fn next_same(c: &[char]) -> Vec<usize> {
    let mut next = vec![c.len(); c.len()];
    let mut last: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
    for (j, &ch) in c.iter().enumerate().rev() {
        if let Some(k) = last.insert(ch, j) {
            next[j] = k;
        }
    }
    next
}

/// Repeated substrings of a document; with `per_paragraph`, searched in each `\n`-separated piece alone.
pub fn repetitions(text: &str, per_paragraph: bool) -> Vec<Repetition> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    if per_paragraph {
        let mut start = 0;
        for piece in chars.split(|&ch| ch == '\n') {
            find_repetitions(piece, start, &mut out);
            start += piece.len() + 1;
        }
    } else {
        find_repetitions(&chars, 0, &mut out);
    }
    out
}

/// [`repetitions`] for many documents, in parallel, in input order.
pub fn repetitions_batch<S: AsRef<str> + Sync>(texts: &[S], per_paragraph: bool) -> Vec<Vec<Repetition>> {
    texts.par_iter().map(|t| repetitions(t.as_ref(), per_paragraph)).collect()
}

#[cfg(test)]
mod repetition_tests {
    use super::*;

    fn found(text: &str, per_paragraph: bool) -> Vec<(usize, usize, usize)> {
        repetitions(text, per_paragraph).iter().map(|r| (r.start, r.end, r.copies)).collect()
    }

    /// The search before `next_same`: every unit length at every position.
    fn every_length(c: &[char]) -> Vec<(usize, usize, usize)> {
        let (n, mut i, mut out) = (c.len(), 0, Vec::new());
        while i < n {
            let mut found = None;
            let mut len = 1;
            while MIN_COPIES * len <= n - i && c[i + len - 1] != '\n' {
                if let Some(hit) = continue_copies(c, i, len, i + len, 0) {
                    found = Some((hit.0, len));
                    break;
                }
                len += 1;
            }
            match found {
                Some((end, len)) => {
                    out.push((i, end, count_occurrences(&c[i..end], &c[i..i + len])));
                    i = end;
                }
                None => i += 1,
            }
        }
        out
    }

    #[test]
    fn only_the_lengths_that_can_repeat_are_tried_with_the_same_result() {
        let alphabets: [&[char]; 4] =
            [&['a', 'b'], &['a', 'b', ' '], &['a', ' ', '\n', '\t'], &['x', 'y', 'z', ' ', '\n']];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for round in 0..20_000 {
            let alphabet = alphabets[round % alphabets.len()];
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 60) as usize;
            let text: Vec<char> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            let mut out = Vec::new();
            find_repetitions(&text, 0, &mut out);
            let got: Vec<_> = out.iter().map(|r| (r.start, r.end, r.copies)).collect();
            assert_eq!(got, every_length(&text), "{:?}", text.iter().collect::<String>());
        }
    }

    #[test]
    fn repetition_rules() {
        assert_eq!(found("abcabcabcabc", false), [(0, 12, 4)]);
        assert_eq!(found("abcabcabc x", false), []);
        assert_eq!(found("hello hello hello hello world", false), [(0, 23, 4)]);
        assert_eq!(found("a  a  a  a", false), []);
        assert_eq!(found("xxxxyxxxxy", false), [(0, 4, 4), (5, 9, 4)]);
        assert_eq!(found("abab abab abab abab", false), [(0, 19, 8)]);
        assert_eq!(found("a\na\na\na", false), [(0, 7, 4)]);
        assert_eq!(found("a\na\na\na", true), []);
        assert_eq!(found("ééééé", true), [(0, 5, 5)]);
        // Unit " ": the match "   \n   " holds six of them.
        assert_eq!(found("spaces   \n   \n", false), [(6, 13, 6)]);
        assert_eq!(found(&"x".repeat(100_000), false), [(0, 100_000, 100_000)]);
    }
}
