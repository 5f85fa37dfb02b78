//! Bindings for the dedupe pipeline: `Deduper.run` processes files end to end (read, parse, hash,
//! test-and-insert in input order, write attributes) with the interpreter released, on its own thread pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use dolma_core::dedupe::jsonpath::{JsonPath, Step};
use dolma_core::dedupe::{fingerprint_file, DedupeConfig, DedupeError, Deduper, FileJob, RunStats};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyDict};

use crate::bloom::PyBloomFilter;
use crate::errors::{dedupe_err, dedupe_run_err, stopped, Class, Progress};

fn stats_dict<'py>(py: Python<'py>, stats: &RunStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("files", stats.files)?;
    d.set_item("documents", stats.documents)?;
    d.set_item("documents_marked", stats.documents_marked)?;
    d.set_item("paragraphs", stats.paragraphs)?;
    d.set_item("paragraphs_marked", stats.paragraphs_marked)?;
    d.set_item("bytes", stats.bytes)?;
    d.set_item("bytes_marked", stats.bytes_marked)?;
    d.set_item("bad_lines", stats.bad_lines)?;
    d.set_item("input_bytes", stats.input_bytes)?;
    let fingerprints: Vec<String> = stats.fingerprints.iter().map(|f| fingerprint_hex(*f)).collect();
    d.set_item("fingerprints", fingerprints)?;
    Ok(d)
}

/// A content fingerprint as text: 32 lowercase hex digits.
fn fingerprint_hex(fingerprint: u128) -> String {
    format!("{fingerprint:032x}")
}

type RunResult = (RunStats, Option<DedupeError>);

/// The slot a run thread reports its result in: `Some(Some(result))`, or `Some(None)` when the thread ended
/// without one (a panic); `None` while it runs.
struct Finish<'a>(&'a (Mutex<Option<Option<RunResult>>>, Condvar));

impl Finish<'_> {
    fn set(self, result: RunResult) {
        let mut slot = (self.0).0.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(Some(result));
    }
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let mut slot = (self.0).0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert(None);
        (self.0).1.notify_all();
    }
}

/// Deduplicates documents files against a Bloom filter, given the JSON of the `dedupe` config section.
#[pyclass(name = "Deduper", module = "dolma._rust", frozen)]
struct PyDeduper {
    inner: Deduper,
}

#[pymethods]
impl PyDeduper {
    #[new]
    /// `chunk_bytes`: decompressed bytes read per chunk of a file (memory and pipeline granularity only;
    /// results never depend on it). Default: 4 MiB.
    #[pyo3(signature = (config_json, *, skip_bad_lines=false, chunk_bytes=None))]
    fn new(py: Python<'_>, config_json: &str, skip_bad_lines: bool, chunk_bytes: Option<usize>) -> PyResult<Self> {
        let config = DedupeConfig::from_json(config_json).map_err(|e| dedupe_err(py, e))?;
        let mut inner = Deduper::new(config, skip_bad_lines).map_err(|e| dedupe_err(py, e))?;
        if let Some(n) = chunk_bytes {
            if n == 0 {
                return Err(PyValueError::new_err("chunk_bytes must be positive"));
            }
            inner = inner.with_chunk_bytes(n);
        }
        Ok(PyDeduper { inner })
    }

    /// The attribute key written for marked spans.
    #[getter]
    fn attribute(&self) -> String {
        self.inner.mode().attribute().to_string()
    }

    /// The settings that decide which keys a document gives, as JSON text: an object keyed by dotted
    /// configuration field (e.g. `dedupe.paragraphs.by_ngram.ngram_length`), plus `mode` and `key_format`.
    #[getter]
    fn key_settings(&self, py: Python<'_>) -> PyResult<String> {
        self.inner.key_settings().map_err(|e| dedupe_err(py, e))
    }

    /// Dedupes `inputs` in this order, writing `outputs[i]` for `inputs[i]`; returns the run's statistics.
    #[pyo3(signature = (filter, inputs, outputs, *, read_only=false, threads=1))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        filter: &Bound<'py, PyBloomFilter>,
        inputs: Vec<String>,
        outputs: Vec<String>,
        read_only: bool,
        threads: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        if inputs.len() != outputs.len() {
            return Err(PyValueError::new_err(format!(
                "{} inputs but {} outputs: give one output per input",
                inputs.len(),
                outputs.len()
            )));
        }
        let jobs: Vec<FileJob> =
            inputs.into_iter().zip(outputs).map(|(input, output)| FileJob { input, output }).collect();
        let bf = filter.get();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("dolma-dedupe-{i}"))
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start dedupe threads: {e}")))?;
        // The run goes on its own thread while this one, every 100 ms, takes the interpreter and runs the
        // signal handlers: Ctrl-C or SIGTERM (a KeyboardInterrupt) then stops the run between chunks, instead of
        // waiting for the whole batch of files.
        let stop = AtomicBool::new(false);
        let done: (Mutex<Option<Option<RunResult>>>, Condvar) = (Mutex::new(None), Condvar::new());
        let mut interrupt: Option<PyErr> = None;
        let (stats, error) = std::thread::scope(|scope| {
            let stop = &stop;
            let jobs = &jobs;
            let pool = &pool;
            let done = &done;
            scope.spawn(move || {
                // A writing run must be the filter's only writer (it inserts without atomic read-modify-writes):
                // take the exclusive side of the filter's gate; a read-only run shares it with other users.
                let _shared;
                let _exclusive;
                if read_only {
                    _shared = bf.mutating();
                } else {
                    _exclusive = bf.snapshotting();
                }
                // Dropped when the run ends, even by a panic: the waiting loop below then stops waiting.
                let finish = Finish(done);
                let result = pool.install(|| self.inner.run_until(&bf.inner, read_only, jobs, stop));
                finish.set(result);
            });
            loop {
                let (result, running) = py.detach(|| {
                    let slot = done.0.lock().unwrap_or_else(PoisonError::into_inner);
                    let (mut slot, _) = done
                        .1
                        .wait_timeout_while(slot, Duration::from_millis(100), |r| r.is_none())
                        .unwrap_or_else(PoisonError::into_inner);
                    match slot.take() {
                        Some(Some(result)) => (Some(result), false),
                        Some(None) => (None, false),
                        None => (None, true),
                    }
                });
                if let Some(result) = result {
                    break result;
                }
                if !running {
                    let lost = DedupeError::Config("the dedupe thread ended without a result".to_string());
                    break (RunStats::default(), Some(lost));
                }
                if interrupt.is_none() {
                    if let Err(e) = py.check_signals() {
                        interrupt = Some(e);
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        });
        // A signal that came in after the last look (while the last chunk finished) is reported here, with the
        // run's statistics: raised later by the interpreter, on its own, it would say nothing of what completed.
        if interrupt.is_none() {
            interrupt = py.check_signals().err();
        }
        match error {
            None => match interrupt {
                None => stats_dict(py, &stats),
                // Every file of the batch completed: the caller records them all before stopping.
                Some(signal) => {
                    let progress = Progress { completed_stats: stats_dict(py, &stats)?, partial_file: false };
                    Err(stopped(py, signal, Some(&progress)))
                }
            },
            Some(e) => {
                // The caller saves the filter with the files that did complete (and their fingerprints) before
                // re-raising, unless the filter holds part of the failing file's keys (`partial_file`). A stop
                // raises the signal's exception (within a `DedupeStopped`).
                let progress = Progress { completed_stats: stats_dict(py, &stats)?, partial_file: stats.partial_file };
                Err(match (e, interrupt) {
                    (DedupeError::Stopped, Some(signal)) => stopped(py, signal, Some(&progress)),
                    (e, _) => dedupe_run_err(py, e, Some(&progress)),
                })
            }
        }
    }
}

/// The content fingerprint of a local file (xxh3-128 of its bytes as stored, as 32 hex digits): the value
/// `Deduper.run` reports in `fingerprints` for each file it completes.
#[pyfunction]
fn file_fingerprint(py: Python<'_>, path: String) -> PyResult<String> {
    let fingerprint = py.detach(|| fingerprint_file(&path)).map_err(|e| dedupe_err(py, e))?;
    Ok(fingerprint_hex(fingerprint))
}

/// The steps of a document key (the JSONPath subset of `dedupe.documents.key`): names as `str`, indexes as
/// `int`, so Python readers select the same value the Rust deduper does. A bad path is a `DedupeConfigError`.
#[pyfunction]
fn json_path_steps(py: Python<'_>, path: &str) -> PyResult<Vec<Py<PyAny>>> {
    let parsed = JsonPath::parse(path).map_err(|reason| Class::DedupeConfigError.reason(py, reason))?;
    parsed
        .steps()
        .iter()
        .map(|step| match step {
            Step::Field(name) => Ok(name.into_pyobject(py)?.into_any().unbind()),
            Step::Index(index) => Ok(index.into_pyobject(py)?.into_any().unbind()),
        })
        .collect()
}

/// The attribute lines of documents `ids`, in order: `rows[i]` where given (a whole line), otherwise
/// `{"id":<id>,"attributes":{}}` (the id escaped as msgspec escapes it), as one bytes object.
#[pyfunction]
fn attribute_rows<'py>(
    py: Python<'py>,
    ids: Vec<PyBackedStr>,
    rows: HashMap<usize, PyBackedBytes>,
) -> Bound<'py, PyBytes> {
    let body = py.detach(|| dolma_core::dedupe::attribute_rows(&ids, &rows));
    PyBytes::new(py, &body)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(attribute_rows, m)?)?;
    m.add_class::<PyDeduper>()?;
    m.add_function(wrap_pyfunction!(file_fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(json_path_steps, m)?)?;
    Ok(())
}
