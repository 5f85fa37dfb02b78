//! Bindings for the Spark (distributed) dedupe: the keys and attributes of each file, exactly as the local
//! deduper computes them (see `dolma_core::dedupe::spark_keys`); `dolma.spark_dedupe` runs them on the executors.

use dolma_core::dedupe::spark_keys::{decode_positions, find_repeats, FileScan, KeyMaker, KeyStats};
use dolma_core::dedupe::{DedupeConfig, DedupeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::dedupe_err;

fn key_stats_dict<'py>(py: Python<'py>, stats: &KeyStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("documents", stats.documents)?;
    d.set_item("documents_marked", stats.documents_marked)?;
    d.set_item("keys", stats.keys)?;
    d.set_item("keys_marked", stats.keys_marked)?;
    d.set_item("bad_lines", stats.bad_lines)?;
    d.set_item("bytes", stats.bytes)?;
    Ok(d)
}

/// (partition or file index, blob) pairs.
type Blobs<'py> = Vec<(u64, Bound<'py, PyBytes>)>;

/// The dedupe keys of documents files and their attribute files, for a run that finds duplicates itself
/// (every key occurrence but the earliest, in (file, line, slot) order) instead of with a Bloom filter.
#[pyclass(name = "DedupeKeys", module = "dolma._rust", frozen)]
struct PyDedupeKeys {
    inner: KeyMaker,
}

#[pymethods]
impl PyDedupeKeys {
    #[new]
    #[pyo3(signature = (config_json, *, skip_bad_lines=false))]
    fn new(py: Python<'_>, config_json: &str, skip_bad_lines: bool) -> PyResult<Self> {
        let config = DedupeConfig::from_json(config_json).map_err(|e| dedupe_err(py, e))?;
        let inner = KeyMaker::new(config, skip_bad_lines).map_err(|e| dedupe_err(py, e))?;
        Ok(PyDedupeKeys { inner })
    }

    #[getter]
    fn attribute(&self) -> String {
        self.inner.mode().attribute().to_string()
    }

    /// `([(partition, blob), ...], skeleton, stats)` for file `path` given its content `raw` as stored
    /// (decompressed here by the path's extension; `compressed=False` when it already is): the (key hash,
    /// position) records of every key occurrence, one blob per owner partition (`hash % partitions`), and
    /// the skeleton that `write_attributes` turns into the attributes file without the text.
    #[pyo3(signature = (path, raw, file_index, partitions, *, compressed=true))]
    fn keys<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        raw: &[u8],
        file_index: u64,
        partitions: u64,
        compressed: bool,
    ) -> PyResult<(Blobs<'py>, Bound<'py, PyBytes>, Bound<'py, PyDict>)> {
        emit_keys(py, path, file_index, partitions, || self.inner.scan(path, raw, compressed))
    }

    /// `keys` for the local file `path`, read here (into a buffer kept between files).
    fn keys_of_file<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        file_index: u64,
        partitions: u64,
    ) -> PyResult<(Blobs<'py>, Bound<'py, PyBytes>, Bound<'py, PyDict>)> {
        emit_keys(py, path, file_index, partitions, || self.inner.scan_file(path))
    }

    /// Writes the attributes file of a `keys` skeleton to the local path `output` given the blob of its
    /// duplicate positions (concatenated `find_key_repeats` blobs for this file).
    fn write_attributes<'py>(
        &self,
        py: Python<'py>,
        skeleton: &[u8],
        duplicates: &[u8],
        output: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let stats = py
            .detach(|| {
                let positions = decode_positions(duplicates)?;
                self.inner.write_attributes(&FileScan::decode(skeleton)?, &positions, output)
            })
            .map_err(|e| dedupe_err(py, e))?;
        key_stats_dict(py, &stats)
    }
}

/// Scans a file without the GIL and returns `([(partition, key blob), ...], skeleton, stats)`.
fn emit_keys<'py>(
    py: Python<'py>,
    path: &str,
    file_index: u64,
    partitions: u64,
    scan: impl FnOnce() -> Result<FileScan, DedupeError> + Send,
) -> PyResult<(Blobs<'py>, Bound<'py, PyBytes>, Bound<'py, PyDict>)> {
    let (blobs, skeleton, stats) = py
        .detach(|| {
            let scan = scan()?;
            Ok::<_, DedupeError>((scan.blobs(path, file_index, partitions)?, scan.encode(), scan.stats()))
        })
        .map_err(|e| dedupe_err(py, e))?;
    let blobs = blobs.into_iter().map(|(p, blob)| (p, PyBytes::new(py, &blob))).collect();
    Ok((blobs, PyBytes::new(py, &skeleton), key_stats_dict(py, &stats)?))
}

/// The key blobs of one partition -> `[(file index, blob of duplicate positions), ...]`: every occurrence of
/// a key but its earliest (file, line, slot) is a duplicate.
#[pyfunction]
fn find_key_repeats<'py>(py: Python<'py>, blobs: Vec<Vec<u8>>) -> PyResult<Blobs<'py>> {
    let out = py
        .detach(|| {
            let slices: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
            find_repeats(&slices)
        })
        .map_err(|e| dedupe_err(py, e))?;
    Ok(out.into_iter().map(|(f, blob)| (f, PyBytes::new(py, &blob))).collect())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDedupeKeys>()?;
    m.add_function(wrap_pyfunction!(find_key_repeats, m)?)?;
    Ok(())
}
