//! Bindings for the PII scan (`dolma_core::pii`): one batch call copies the texts out of Python, then
//! scans them without the GIL (rayon inside), keeping input order.

use dolma_core::pii::{self, PiiMode};
use pyo3::prelude::*;

type PiiRow = (Vec<(usize, usize, u8)>, usize);

/// PII matches per document as `([(start, end, kind), ...], words)`: code-point spans, kind 0 = e-mail,
/// 1 = phone number, 2 = IP address, in the order e-mails, phones, IPs. `by_line=False` is the whole-text
/// scan of `pii_regex_v1`/`v2` (phone/IP matches near a `#` dropped; `words` = `len(text.split())`);
/// `by_line=True` is the per-line scan of `pii_regex_with_counts_fast_v2` (`words` = 0).
#[pyfunction]
#[pyo3(signature = (texts, *, by_line=false))]
fn pii_scan_batch(py: Python<'_>, texts: Vec<String>, by_line: bool) -> Vec<PiiRow> {
    let mode = if by_line { PiiMode::Lines } else { PiiMode::Document };
    py.detach(|| {
        pii::pii_scan_batch(&texts, mode)
            .into_iter()
            .map(|r| (r.spans.iter().map(|s| (s.start, s.end, s.kind as u8)).collect(), r.words))
            .collect()
    })
}

/// The inclusive code-point ranges the scan's `\d` stands for (Unicode `PII_DIGITS_UNICODE_VERSION` unless set).
#[pyfunction]
fn pii_digit_ranges() -> Vec<(u32, u32)> {
    pii::digit_ranges().to_vec()
}

/// Makes `\d` the given ranges (the running Python's, when its Unicode database differs); before any scan.
#[pyfunction]
fn pii_set_digit_ranges(ranges: Vec<(u32, u32)>) -> PyResult<()> {
    pii::set_digit_ranges(ranges).map_err(pyo3::exceptions::PyValueError::new_err)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pii_scan_batch, m)?)?;
    m.add_function(wrap_pyfunction!(pii_digit_ranges, m)?)?;
    m.add_function(wrap_pyfunction!(pii_set_digit_ranges, m)?)?;
    m.add("PII_DIGITS_UNICODE_VERSION", pii::DIGITS_UNICODE_VERSION)?;
    Ok(())
}
