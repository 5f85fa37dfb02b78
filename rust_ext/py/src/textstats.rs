//! Bindings for the quality-rule text statistics (`dolma_core::textstats`): batch calls that copy the texts
//! out of Python, then compute without the GIL (rayon inside), keeping input order.

use dolma_core::textstats::{self, GopherLines, NaughtyWords};
use pyo3::prelude::*;

/// Gopher statistics per document, as a 19-element list in the order of `GOPHER_STAT_NAMES`; n-gram
/// entries are None when the document has fewer words than n.
#[pyfunction]
#[pyo3(signature = (texts, *, v2=false))]
fn gopher_stats_batch(py: Python<'_>, texts: Vec<String>, v2: bool) -> Vec<Vec<Option<f64>>> {
    let mode = if v2 { GopherLines::NewlineRuns } else { GopherLines::EveryNewline };
    py.detach(|| {
        textstats::gopher_stats_batch(&texts, mode)
            .into_iter()
            .map(|s| {
                let mut row: Vec<Option<f64>> = Vec::with_capacity(19);
                row.extend(s.top_ngram_char_fraction);
                row.extend(s.dup_ngram_char_fraction);
                row.extend(
                    [
                        s.character_count,
                        s.word_count,
                        s.median_word_length,
                        s.symbol_to_word_ratio,
                        s.fraction_of_words_with_alpha_character,
                        s.required_word_count,
                        s.fraction_of_lines_starting_with_bullet_point,
                        s.fraction_of_lines_ending_with_ellipsis,
                        s.fraction_of_duplicate_lines,
                        s.fraction_of_characters_in_duplicate_lines,
                    ]
                    .map(Some),
                );
                row
            })
            .collect()
    })
}

type Spans = Vec<(usize, usize)>;
type C4Row = (Spans, Spans, usize, bool, bool, bool, bool, bool);

/// C4 statistics per document: `(no_ending_punctuation, too_few_words, line_count, has_naughty_word,
/// has_javascript (whole word), has_lorem_ipsum, has_curly_brace, has_javascript (anywhere))`; the first two
/// are the flagged lines as `(start, end)` code-point spans (measured on the lower-cased text with
/// `lowercase_offsets`, as the reference's c4_v2 does).
#[pyfunction]
#[pyo3(signature = (texts, naughty_words, *, lowercase_offsets=false))]
fn c4_stats_batch(
    py: Python<'_>,
    texts: Vec<String>,
    naughty_words: Vec<String>,
    lowercase_offsets: bool,
) -> Vec<C4Row> {
    py.detach(|| {
        let naughty = NaughtyWords::new(&naughty_words);
        textstats::c4_stats_batch(&texts, &naughty)
            .into_iter()
            .map(|s| {
                let span = |l: &textstats::C4Line| {
                    if lowercase_offsets {
                        (l.lower_start, l.lower_end)
                    } else {
                        (l.start, l.end)
                    }
                };
                let no_punct = s.lines.iter().filter(|l| l.no_ending_punctuation).map(span).collect();
                let few = s.lines.iter().filter(|l| l.too_few_words).map(span).collect();
                (
                    no_punct,
                    few,
                    s.lines.len(),
                    s.has_naughty_word,
                    s.has_javascript,
                    s.has_lorem_ipsum,
                    s.has_curly_brace,
                    s.has_javascript_substring,
                )
            })
            .collect()
    })
}

/// Repeated substrings per document as `(start, end, copies)` code-point spans (see `repetitions_v1`).
#[pyfunction]
#[pyo3(signature = (texts, *, per_paragraph=false))]
fn repetitions_batch(py: Python<'_>, texts: Vec<String>, per_paragraph: bool) -> Vec<Vec<(usize, usize, usize)>> {
    py.detach(|| {
        textstats::repetitions_batch(&texts, per_paragraph)
            .into_iter()
            .map(|found| found.iter().map(|r| (r.start, r.end, r.copies)).collect())
            .collect()
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(repetitions_batch, m)?)?;
    m.add_function(wrap_pyfunction!(gopher_stats_batch, m)?)?;
    m.add_function(wrap_pyfunction!(c4_stats_batch, m)?)?;
    Ok(())
}
