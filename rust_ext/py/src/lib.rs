//! `dolma._rust`: thin PyO3 bindings over `dolma-core`, one file per area of the Python module.
//!
//! Inputs are converted to owned Rust values while attached to the interpreter; the work itself runs
//! detached (`py.detach`) so other Python threads keep going. Every core error maps to a Python exception
//! (errors.rs); nothing here panics on user input.

use pyo3::prelude::*;

mod bloom;
mod dedupe;
mod dedupe_keys;
mod errors;
mod minhash;
mod pii;
mod signals;
mod textstats;

#[pymodule]
fn _rust(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    bloom::register(m)?;
    dedupe::register(m)?;
    dedupe_keys::register(m)?;
    textstats::register(m)?;
    pii::register(m)?;
    minhash::register(m)?;
    Ok(())
}
