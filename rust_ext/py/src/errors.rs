//! Every core error becomes the Python exception a caller expects: the one place that maps them.

use std::ffi::OsStr;

use dolma_core::bloom::BloomError;
use dolma_core::dedupe::DedupeError;
use dolma_core::minhash::MinHashError;
use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyOSError, PyValueError};
use pyo3::prelude::*;

create_exception!(
    dolma._rust,
    BloomFilterError,
    PyValueError,
    "Invalid Bloom filter parameters or data (a ValueError)."
);
create_exception!(
    dolma._rust,
    BloomFilterFormatError,
    BloomFilterError,
    "Bytes or a file that are not a valid dolma Bloom filter: bad magic, unsupported version or corrupt."
);
create_exception!(dolma._rust, DedupeConfigError, PyValueError, "An invalid dedupe configuration (a ValueError).");
create_exception!(
    dolma._rust,
    DedupeInputError,
    PyValueError,
    "A documents line that cannot be deduplicated; args are (message, path, line, field, reason)."
);

/// `OSError(errno, strerror, filename)`, which picks the right subclass (FileNotFoundError, ...); a plain
/// `OSError("<path>: <error>")` when the error has no OS error number.
fn os_error(py: Python<'_>, path: &OsStr, source: &std::io::Error) -> PyErr {
    match source.raw_os_error() {
        Some(errno) => {
            let text = source.to_string();
            let strerror = text.strip_suffix(&format!(" (os error {errno})")).unwrap_or(&text).to_string();
            match py.get_type::<PyOSError>().call1((errno, strerror, path)) {
                Ok(exc) => PyErr::from_value(exc),
                Err(e) => e,
            }
        }
        None => PyOSError::new_err(format!("{}: {source}", std::path::Path::new(path).display())),
    }
}

/// An instance of one of the toolkit's own error classes (`dolma.errors`).
fn toolkit_error<'py>(py: Python<'py>, name: &str, args: impl pyo3::call::PyCallArgs<'py>) -> PyErr {
    let made = py.import("dolma.errors").and_then(|m| m.getattr(name)).and_then(|cls| cls.call1(args));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

pub fn bloom_err(py: Python<'_>, err: BloomError) -> PyErr {
    match err {
        BloomError::Format(msg) => BloomFilterFormatError::new_err(msg),
        BloomError::InvalidParameter(msg) => BloomFilterError::new_err(msg),
        BloomError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::OutOfMemory => {
            PyMemoryError::new_err(source.to_string())
        }
        BloomError::Io { path: Some(path), source } => os_error(py, path.as_os_str(), &source),
        BloomError::Io { path: None, .. } => PyOSError::new_err(err.to_string()),
    }
}

pub fn dedupe_err(py: Python<'_>, err: DedupeError) -> PyErr {
    let message = err.to_string();
    match err {
        DedupeError::Config(_) => DedupeConfigError::new_err(message),
        DedupeError::BadLine { path, line, field, reason } => {
            DedupeInputError::new_err((message, path, line, field, reason))
        }
        DedupeError::MissingKey { path, line, field } => {
            let reason = "missing (the dedupe key must be present in every document)";
            DedupeInputError::new_err((message, path, line, field, reason))
        }
        DedupeError::Io { .. } => PyOSError::new_err(message),
        DedupeError::Bloom(e) => bloom_err(py, e),
        DedupeError::Stopped => PyKeyboardInterrupt::new_err(message),
    }
}

/// `ConfigError` for a bad parameter, `CorruptFileError(path, reason)` for a file that is not a valid band-key
/// or result file, `OSError` for a file that cannot be read or written.
pub fn minhash_err(py: Python<'_>, err: MinHashError) -> PyErr {
    let message = err.to_string();
    match err {
        MinHashError::Config { .. } => toolkit_error(py, "ConfigError", (format!("minhash.{message}"),)),
        MinHashError::Format { path, reason } => toolkit_error(py, "CorruptFileError", (path, reason)),
        MinHashError::Io { path, source } => os_error(py, OsStr::new(&path), &source),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("BloomFilterError", py.get_type::<BloomFilterError>())?;
    m.add("BloomFilterFormatError", py.get_type::<BloomFilterFormatError>())?;
    m.add("DedupeConfigError", py.get_type::<DedupeConfigError>())?;
    m.add("DedupeInputError", py.get_type::<DedupeInputError>())?;
    Ok(())
}
