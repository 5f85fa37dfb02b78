//! Bindings for the MinHash-LSH engine (`dolma_core::minhash`). Texts are borrowed from their Python
//! strings (no copy), the work runs detached from the interpreter on a rayon pool (of `threads` threads when
//! given), and errors become the toolkit's own exception types (errors.rs).

use std::path::PathBuf;

use dolma_core::dedupe::jsonpath::Step;
use dolma_core::minhash::cluster::{cluster, ClusterOptions, ClusterStats};
use dolma_core::minhash::read::sign_documents;
use dolma_core::minhash::results::read_result_bytes;
use dolma_core::minhash::shingle::{Shingler, Tokenizer};
use dolma_core::minhash::unit::{SourceStamp, UnitFile, UnitHeader, UnitWriter};
use dolma_core::minhash::{MinHashConfig, Signer};
use std::sync::atomic::AtomicBool;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyDict, PyList, PyType};

use crate::errors::minhash_err;
use crate::signals::until_signal;

/// A pool of `threads` threads, or None for rayon's global pool.
fn pool(threads: Option<usize>) -> PyResult<Option<rayon::ThreadPool>> {
    match threads {
        None => Ok(None),
        Some(0) => Err(PyValueError::new_err("threads must be positive")),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map(Some)
            .map_err(|e| PyOSError::new_err(format!("cannot start {n} threads: {e}"))),
    }
}

/// Runs `f` detached from the interpreter, on `pool` (the global pool when None).
fn detached_on<T: Send>(py: Python<'_>, pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        None => py.detach(f),
        Some(pool) => py.detach(|| pool.install(f)),
    }
}

/// Runs `f` on a pool of `threads` threads (the global pool when None), detached from the interpreter.
fn detached<T: Send>(py: Python<'_>, threads: Option<usize>, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    Ok(detached_on(py, pool(threads)?.as_ref(), f))
}

fn tokenizer(name: &str) -> PyResult<Tokenizer> {
    match name {
        "words" => Ok(Tokenizer::Words),
        "chars" => Ok(Tokenizer::Chars),
        other => Err(PyValueError::new_err(format!("tokenizer must be 'words' or 'chars', got '{other}'"))),
    }
}

/// The shingles of `text` (see the `shingle` module of the core crate for the rules).
#[pyfunction]
#[pyo3(signature = (text, *, ngram, tokenizer="words"))]
fn minhash_shingles(py: Python<'_>, text: &str, ngram: usize, tokenizer: &str) -> PyResult<Vec<String>> {
    let shingler = Shingler::new(self::tokenizer(tokenizer)?, ngram).map_err(|e| minhash_err(py, e))?;
    Ok(shingler.shingles(text))
}

/// Signatures and band keys of texts, for one validated configuration (JSON of `MinHashParams.engine_json`).
#[pyclass(name = "MinHashSigner", module = "dolma._rust", frozen)]
struct PyMinHashSigner {
    signer: Signer,
    config_json: String,
}

#[pymethods]
impl PyMinHashSigner {
    #[new]
    fn new(py: Python<'_>, config_json: String) -> PyResult<Self> {
        let config = MinHashConfig::from_json(&config_json).map_err(|e| minhash_err(py, e))?;
        let signer = config.build().map_err(|e| minhash_err(py, e))?;
        Ok(PyMinHashSigner { signer, config_json })
    }

    /// `(values, shingle_counts)`: `num_perm` little-endian `u32` values per text, row-major.
    #[pyo3(signature = (texts, *, threads=None))]
    fn signatures<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        threads: Option<usize>,
    ) -> PyResult<(Bound<'py, PyBytes>, Vec<u32>)> {
        let (values, counts) = detached(py, threads, || self.signer.hasher.sign_batch(&texts))?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok((PyBytes::new(py, &bytes), counts))
    }

    /// Per text, its shingle set for `verify: exact`: sorted, distinct little-endian `u64` hashes.
    #[pyo3(signature = (texts, *, threads=None))]
    fn shingle_sets<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        threads: Option<usize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let sets = detached(py, threads, || self.signer.hasher.shingle_sets(&texts))?;
        let bytes = |set: &Vec<u64>| set.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        Ok(sets.iter().map(|set| PyBytes::new(py, &bytes(set))).collect())
    }

    /// Band keys of signatures (`num_perm` little-endian `u32` values per row): `bands` little-endian `u64`
    /// keys per row.
    fn band_keys<'py>(&self, py: Python<'py>, signatures: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let n = self.signer.hasher.num_perm() * 4;
        if !signatures.len().is_multiple_of(n) {
            return Err(PyValueError::new_err(format!("signature bytes are not a multiple of {n}")));
        }
        let keys = py.detach(|| {
            let (mut keys, mut scratch, mut sig) = (Vec::new(), Vec::new(), Vec::new());
            for row in signatures.chunks_exact(n) {
                sig.clear();
                sig.extend(row.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
                self.signer.bands.keys(&sig, &mut scratch, &mut keys);
            }
            keys.iter().flat_map(|k| k.to_le_bytes()).collect::<Vec<u8>>()
        });
        Ok(PyBytes::new(py, &keys))
    }

    #[getter]
    fn fingerprint(&self) -> u64 {
        self.signer.fingerprint
    }

    #[getter]
    fn num_perm(&self) -> usize {
        self.signer.hasher.num_perm()
    }

    #[getter]
    fn config_json(&self) -> &str {
        &self.config_json
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyType>, (String,))> {
        Ok((slf.get_type(), (slf.get().config_json.clone(),)))
    }
}

fn header_dict<'py>(py: Python<'py>, h: &UnitHeader) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("file_index", h.file_index)?;
    d.set_item("documents", h.documents)?;
    d.set_item("lines", h.lines)?;
    d.set_item("bad_lines", h.bad_lines)?;
    d.set_item("keyed", h.keyed)?;
    d.set_item("records", h.records)?;
    d.set_item("num_perm", h.num_perm)?;
    d.set_item("bands", h.bands)?;
    d.set_item("rows", h.rows)?;
    d.set_item("shingle_sets", h.shingle_sets)?;
    d.set_item("fingerprint", h.fingerprint)?;
    d.set_item("source", &h.source)?;
    d.set_item("source_size", h.source_stamp.size)?;
    d.set_item("source_stamp", h.source_stamp.version)?;
    d.set_item("bytes_read", h.bytes_read)?;
    Ok(d)
}

/// Writes the band-key file of one documents file from batches of `(line numbers, texts)`.
#[pyclass(name = "MinHashFileWriter", module = "dolma._rust")]
struct PyMinHashFileWriter {
    inner: Option<UnitWriter>,
    pool: Option<rayon::ThreadPool>,
}

#[pymethods]
impl PyMinHashFileWriter {
    #[new]
    #[pyo3(signature = (signer, path, file_index, source, *, source_size, source_stamp, threads=None))]
    #[allow(clippy::too_many_arguments)] // the Python constructor's keyword arguments
    fn new(
        py: Python<'_>,
        signer: &PyMinHashSigner,
        path: PathBuf,
        file_index: u32,
        source: &str,
        source_size: u64,
        source_stamp: u64,
        threads: Option<usize>,
    ) -> PyResult<Self> {
        let stamp = SourceStamp { size: source_size, version: source_stamp };
        let writer = UnitWriter::create(signer.signer.clone(), &path, file_index, source, stamp)
            .map_err(|e| minhash_err(py, e))?;
        Ok(PyMinHashFileWriter { inner: Some(writer), pool: pool(threads)? })
    }

    /// Adds documents: 1-based line numbers (increasing), texts to sign, ids and lengths of their `text`.
    fn add(
        &mut self,
        py: Python<'_>,
        lines: Vec<u64>,
        texts: Vec<PyBackedStr>,
        ids: Vec<PyBackedStr>,
        lengths: Vec<u64>,
    ) -> PyResult<()> {
        let writer =
            self.inner.as_mut().ok_or_else(|| PyValueError::new_err("the band-key file is already finished"))?;
        detached_on(py, self.pool.as_ref(), || writer.add(&lines, &texts, &ids, &lengths))
            .map_err(|e| minhash_err(py, e))
    }

    /// Reads the local documents file `path` in Rust and adds its documents (the text at `key`, JSONPath steps,
    /// is signed): `{lines, bytes, bad: [(line, bytes)], stopped, unkept, first_unkept}` (see
    /// `dolma_core::minhash::read`: skipped bad lines past its limits are only counted).
    #[pyo3(signature = (path, key, *, skip_bad_lines, batch_chars))]
    fn sign_documents<'py>(
        &mut self,
        py: Python<'py>,
        path: &str,
        key: Vec<Bound<'py, PyAny>>,
        skip_bad_lines: bool,
        batch_chars: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let steps = key
            .iter()
            .map(|step| match step.extract::<String>() {
                Ok(name) => Ok(Step::Field(name)),
                Err(_) => step.extract::<usize>().map(Step::Index),
            })
            .collect::<PyResult<Vec<Step>>>()?;
        let writer =
            self.inner.as_mut().ok_or_else(|| PyValueError::new_err("the band-key file is already finished"))?;
        let pool = self.pool.as_ref();
        let interrupt = AtomicBool::new(false);
        let outcome = until_signal(py, &interrupt, || {
            sign_documents(writer, path, &steps, skip_bad_lines, batch_chars, pool, &interrupt)
        })?
        .map_err(|e| minhash_err(py, e))?;
        let d = PyDict::new(py);
        d.set_item("lines", outcome.lines)?;
        d.set_item("bytes", outcome.bytes)?;
        let bad: Vec<(u64, Bound<'py, PyBytes>)> =
            outcome.bad.iter().map(|b| (b.line, PyBytes::new(py, &b.bytes))).collect();
        d.set_item("bad", bad)?;
        d.set_item("stopped", outcome.stopped)?;
        d.set_item("unkept", outcome.unkept)?;
        d.set_item("first_unkept", outcome.first_unkept)?;
        Ok(d)
    }

    /// Writes the file and renames it into place; returns its header as a dict.
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
        lines_read: u64,
        bad_lines: u64,
        bytes_read: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let writer =
            self.inner.take().ok_or_else(|| PyValueError::new_err("the band-key file is already finished"))?;
        let header = py.detach(|| writer.finish(lines_read, bad_lines, bytes_read)).map_err(|e| minhash_err(py, e))?;
        header_dict(py, &header)
    }

    /// Drops the unfinished file (its temporary files are removed).
    fn abort(&mut self) {
        self.inner = None;
    }

    #[getter]
    fn documents(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.documents())
    }
}

/// Opens and fully verifies a band-key file; returns its header. With `fingerprint`, the file must have been
/// made with those parameters.
#[pyfunction]
#[pyo3(signature = (path, fingerprint=None))]
fn minhash_unit_header<'py>(py: Python<'py>, path: PathBuf, fingerprint: Option<u64>) -> PyResult<Bound<'py, PyDict>> {
    let unit = py.detach(|| UnitFile::open(&path, fingerprint)).map_err(|e| minhash_err(py, e))?;
    header_dict(py, &unit.header)
}

/// The documents a verified band-key file records, for writing attributes without the documents file:
/// `(header, line numbers, text lengths, ids)`, numbers as packed little-endian `u64` bytes.
#[pyfunction]
#[pyo3(signature = (path, fingerprint=None))]
#[allow(clippy::type_complexity)] // the tuple handed to Python
fn minhash_unit_documents<'py>(
    py: Python<'py>,
    path: PathBuf,
    fingerprint: Option<u64>,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyList>)> {
    let read = || -> dolma_core::minhash::Result<_> {
        let unit = UnitFile::open(&path, fingerprint)?;
        let lines: Vec<u8> = unit.lines()?.iter().flat_map(|v| v.to_le_bytes()).collect();
        let lengths: Vec<u8> = unit.text_lengths()?.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok((unit.header.clone(), lines, lengths, unit.ids()?))
    };
    let (header, lines, lengths, ids) = py.detach(read).map_err(|e| minhash_err(py, e))?;
    Ok((header_dict(py, &header)?, PyBytes::new(py, &lines), PyBytes::new(py, &lengths), PyList::new(py, ids)?))
}

fn stats_dict<'py>(py: Python<'py>, s: &ClusterStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, value) in [
        ("files", s.files),
        ("documents", s.documents),
        ("keyed", s.keyed),
        ("buckets", s.buckets),
        ("candidate_pairs", s.candidate_pairs),
        ("comparisons", s.comparisons),
        ("rejected", s.rejected),
        ("clusters", s.clusters),
        ("duplicates", s.duplicates),
        ("records", s.sort.records),
        ("sort_runs", s.sort.runs),
        ("merge_passes", s.sort.merge_passes),
        ("bytes_spilled", s.sort.bytes_spilled),
    ] {
        d.set_item(name, value)?;
    }
    Ok(d)
}

/// Clusters the documents of band-key files (in the stable order) and writes one result file per input.
#[pyfunction]
#[pyo3(signature = (units, outputs, options_json, *, fingerprint=None, threads=None))]
fn minhash_cluster<'py>(
    py: Python<'py>,
    units: Vec<PathBuf>,
    outputs: Vec<PathBuf>,
    options_json: &str,
    fingerprint: Option<u64>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let options = ClusterOptions::from_json(options_json).map_err(|e| minhash_err(py, e))?;
    let stats =
        detached(py, threads, || cluster(&units, &outputs, fingerprint, &options))?.map_err(|e| minhash_err(py, e))?;
    stats_dict(py, &stats)
}

/// Reads and verifies a result file: `(header, records)`, records as packed 40-byte little-endian rows.
#[pyfunction]
fn minhash_read_results<'py>(py: Python<'py>, path: PathBuf) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyBytes>)> {
    let (header, bytes) = py.detach(|| read_result_bytes(&path)).map_err(|e| minhash_err(py, e))?;
    let d = PyDict::new(py);
    d.set_item("file_index", header.file_index)?;
    d.set_item("documents", header.documents)?;
    d.set_item("fingerprint", header.fingerprint)?;
    d.set_item("source", header.source)?;
    Ok((d, PyBytes::new(py, &bytes)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMinHashSigner>()?;
    m.add_class::<PyMinHashFileWriter>()?;
    m.add_function(wrap_pyfunction!(minhash_shingles, m)?)?;
    m.add_function(wrap_pyfunction!(minhash_unit_header, m)?)?;
    m.add_function(wrap_pyfunction!(minhash_unit_documents, m)?)?;
    m.add_function(wrap_pyfunction!(minhash_cluster, m)?)?;
    m.add_function(wrap_pyfunction!(minhash_read_results, m)?)?;
    m.add("MINHASH_XXH3_SEED", dolma_core::minhash::signature::XXH3_SEED)?;
    m.add("MINHASH_MAX_ANCHORS", dolma_core::minhash::cluster::MAX_ANCHORS)?;
    m.add("MINHASH_UNIT_VERSION", dolma_core::minhash::unit::VERSION)?;
    m.add("MINHASH_RESULT_VERSION", dolma_core::minhash::results::VERSION)?;
    Ok(())
}
