//! Every core error becomes the Python exception a caller expects: the one place that maps them.
//!
//! The exception classes are Python's (`dolma.errors`), subclasses of the toolkit's error types: each is
//! imported once and called with keyword arguments, so its fields (`path`, `line`, `field`, `reason`,
//! `completed_stats`, `partial_file`, ...) are set by its constructor. `dolma.errors` is their one home: callers
//! import them from there (`dolma._rust` does not re-export them).

use std::ffi::OsStr;
use std::path::Path;

use dolma_core::bloom::BloomError;
use dolma_core::dedupe::DedupeError;
use dolma_core::minhash::MinHashError;
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyOSError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

/// The toolkit's error classes the binding raises.
#[derive(Clone, Copy)]
pub enum Class {
    BloomFilterError,
    BloomFilterFormatError,
    DedupeConfigError,
    DedupeInputError,
    DedupeIOError,
    DedupeStopped,
    ConfigError,
    CorruptFileError,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::BloomFilterError => "BloomFilterError",
            Class::BloomFilterFormatError => "BloomFilterFormatError",
            Class::DedupeConfigError => "DedupeConfigError",
            Class::DedupeInputError => "DedupeInputError",
            Class::DedupeIOError => "DedupeIOError",
            Class::DedupeStopped => "DedupeStopped",
            Class::ConfigError => "ConfigError",
            Class::CorruptFileError => "CorruptFileError",
        }
    }

    /// The class, imported from `dolma.errors` on first use.
    fn get(self, py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
        static CLASSES: [PyOnceLock<Py<PyType>>; 8] = [const { PyOnceLock::new() }; 8];
        CLASSES[self as usize].import(py, "dolma.errors", self.name())
    }

    /// A new exception of this class; `fields` sets its keyword arguments.
    pub fn error<'py>(self, py: Python<'py>, fields: impl FnOnce(&Bound<'py, PyDict>) -> PyResult<()>) -> PyErr {
        let made = (|| {
            let kwargs = PyDict::new(py);
            fields(&kwargs)?;
            self.get(py)?.call((), Some(&kwargs))
        })();
        match made {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        }
    }

    /// A new exception of this class whose only field is `reason`.
    pub fn reason(self, py: Python<'_>, reason: impl AsRef<str>) -> PyErr {
        self.error(py, |kw| kw.set_item("reason", reason.as_ref()))
    }
}

/// What a `Deduper.run` completed before it failed: the statistics (and fingerprints) of the files it
/// finished, and whether the filter holds part of the unfinished file's keys.
pub struct Progress<'py> {
    pub completed_stats: Bound<'py, PyDict>,
    pub partial_file: bool,
}

impl Progress<'_> {
    fn set(&self, kwargs: &Bound<'_, PyDict>) -> PyResult<()> {
        kwargs.set_item("completed_stats", &self.completed_stats)?;
        kwargs.set_item("partial_file", self.partial_file)
    }
}

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
        None => PyOSError::new_err(format!("{}: {source}", Path::new(path).display())),
    }
}

pub fn bloom_err(py: Python<'_>, err: BloomError) -> PyErr {
    match err {
        BloomError::Format(msg) => Class::BloomFilterFormatError.reason(py, msg),
        BloomError::InvalidParameter(msg) => Class::BloomFilterError.reason(py, msg),
        BloomError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::OutOfMemory => {
            PyMemoryError::new_err(source.to_string())
        }
        BloomError::Io { path: Some(path), source } => os_error(py, path.as_os_str(), &source),
        BloomError::Io { path: None, .. } => PyOSError::new_err(err.to_string()),
    }
}

/// A core dedupe error outside a run.
pub fn dedupe_err(py: Python<'_>, err: DedupeError) -> PyErr {
    dedupe_run_err(py, err, None)
}

/// A core dedupe error, with what the run completed when it happened in a `Deduper.run`.
pub fn dedupe_run_err(py: Python<'_>, err: DedupeError, progress: Option<&Progress<'_>>) -> PyErr {
    let with_progress = |kw: &Bound<'_, PyDict>| progress.map_or(Ok(()), |p| p.set(kw));
    let bad_line = |path: String, line: u64, field: String, reason: &str| {
        Class::DedupeInputError.error(py, |kw| {
            kw.set_item("path", path)?;
            kw.set_item("line", line)?;
            // The core names a whole-line problem "(line)": no field.
            kw.set_item("field", (field != "(line)").then_some(field))?;
            kw.set_item("reason", reason)?;
            with_progress(kw)
        })
    };
    match err {
        DedupeError::Config(reason) => Class::DedupeConfigError.error(py, |kw| {
            kw.set_item("reason", reason)?;
            with_progress(kw)
        }),
        DedupeError::BadLine { path, line, field, reason } => bad_line(path, line, field, &reason),
        DedupeError::MissingKey { path, line, field } => {
            bad_line(path, line, field, "missing (the dedupe key must be present in every document)")
        }
        DedupeError::Io { path, source } => Class::DedupeIOError.error(py, |kw| {
            kw.set_item("path", path)?;
            kw.set_item("reason", source.to_string())?;
            with_progress(kw)
        }),
        DedupeError::Bloom(e) => bloom_err(py, e),
        DedupeError::Stopped => stopped(py, PyKeyboardInterrupt::new_err(DedupeError::Stopped.to_string()), progress),
    }
}

/// A run stopped by `signal`, the exception a signal handler raised: a KeyboardInterrupt (Ctrl-C, or SIGTERM's
/// `Terminated`) becomes `DedupeStopped` with what the run completed; anything else is raised as it is.
pub fn stopped(py: Python<'_>, signal: PyErr, progress: Option<&Progress<'_>>) -> PyErr {
    if !signal.is_instance_of::<PyKeyboardInterrupt>(py) {
        return signal;
    }
    Class::DedupeStopped.error(py, |kw| {
        kw.set_item("signal", signal.value(py))?;
        match progress {
            Some(p) => p.set(kw),
            None => {
                kw.set_item("completed_stats", py.None())?;
                kw.set_item("partial_file", false)
            }
        }
    })
}

/// `ConfigError` for a bad parameter, `CorruptFileError(path, reason)` for a file that is not a valid band-key
/// or result file, `OSError` for a file that cannot be read or written.
pub fn minhash_err(py: Python<'_>, err: MinHashError) -> PyErr {
    let message = err.to_string();
    match err {
        MinHashError::Config { .. } => {
            // A ConfigError is its message.
            match Class::ConfigError.get(py).and_then(|cls| cls.call1((format!("minhash.{message}"),))) {
                Ok(exc) => PyErr::from_value(exc),
                Err(e) => e,
            }
        }
        MinHashError::Format { path, reason } => Class::CorruptFileError.error(py, |kw| {
            kw.set_item("path", path)?;
            kw.set_item("reason", reason)
        }),
        MinHashError::Io { path, source } => os_error(py, OsStr::new(&path), &source),
        // Only after a signal, whose own exception the caller raises instead.
        MinHashError::Interrupted => pyo3::exceptions::PyKeyboardInterrupt::new_err(message),
    }
}
