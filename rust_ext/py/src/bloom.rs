//! The Bloom filter (`dolma_core::bloom`) as `dolma._rust.BloomFilter`, and `xxh3_64`, its stable hash.

use std::path::PathBuf;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use dolma_core::bloom::{self, BloomError, BloomFilter};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple, PyType};

use crate::errors::bloom_err;

/// The bytes of one key: `bytes` as is, `str` as UTF-8.
fn key_bytes<'a>(key: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    if let Ok(bytes) = key.cast::<PyBytes>() {
        Ok(bytes.as_bytes())
    } else if let Ok(text) = key.cast::<PyString>() {
        Ok(text.to_str()?.as_bytes())
    } else {
        Err(PyTypeError::new_err(format!("keys must be bytes or str, not {}", type_name(key))))
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "unknown".to_string())
}

/// A batch of keys copied out of Python objects into one buffer, so the work can run without the GIL.
struct OwnedKeys {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl OwnedKeys {
    fn extract(keys: &Bound<'_, PyAny>) -> PyResult<Self> {
        if keys.is_instance_of::<PyBytes>() || keys.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(format!(
                "expected a sequence of keys, got a single {}; wrap it in a list",
                type_name(keys)
            )));
        }
        let mut owned = OwnedKeys { data: Vec::new(), ends: Vec::with_capacity(keys.len().unwrap_or(0)) };
        if let Ok(list) = keys.cast::<PyList>() {
            for key in list.iter() {
                owned.push(key_bytes(&key)?);
            }
        } else {
            for key in keys.try_iter()? {
                owned.push(key_bytes(&key?)?);
            }
        }
        Ok(owned)
    }

    fn push(&mut self, key: &[u8]) {
        self.data.extend_from_slice(key);
        self.ends.push(self.data.len());
    }

    fn slices(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let key = &self.data[start..end];
                start = end;
                key
            })
            .collect()
    }
}

// The argument checks give core errors, which `bloom_err` maps (a BloomFilterError) like the core's own.

fn positive(name: &str, value: i64) -> Result<u64, BloomError> {
    u64::try_from(value)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| BloomError::InvalidParameter(format!("{name} must be a positive integer, got {value}")))
}

fn hash_count(value: i64) -> Result<u32, BloomError> {
    u32::try_from(value).ok().filter(|k| (1..=bloom::MAX_HASHES).contains(k)).ok_or_else(|| {
        BloomError::InvalidParameter(format!("num_hashes must be between 1 and {}, got {value}", bloom::MAX_HASHES))
    })
}

/// Rate used by the constructor when it sizes a filter from `estimated_doc_count` alone.
const DEFAULT_RATE: f64 = 0.001;

/// The sizing arguments as Python passes them, range-checked into a [`bloom::Sizing`].
fn sizing_args(
    size_in_bytes: Option<i64>,
    num_hashes: Option<i64>,
    estimated_doc_count: Option<i64>,
    desired_false_positive_rate: Option<f64>,
    min_size_in_bytes: u64,
) -> Result<bloom::Sizing, BloomError> {
    Ok(bloom::Sizing {
        size_in_bytes: size_in_bytes.map(|n| positive("size_in_bytes", n)).transpose()?,
        num_hashes: num_hashes.map(hash_count).transpose()?,
        estimated_doc_count: estimated_doc_count.map(|n| positive("estimated_doc_count", n)).transpose()?,
        desired_false_positive_rate,
        min_size_in_bytes,
    })
}

fn size_arg(value: i64) -> Result<usize, BloomError> {
    let size = positive("size_in_bytes", value)?;
    usize::try_from(size).map_err(|_| BloomError::InvalidParameter(format!("size_in_bytes {size} is too large")))
}

/// A Bloom filter with stable xxh3 hashing, shareable across threads, that saves to a checked file format.
///
/// Size it explicitly (`size_in_bytes`, `num_hashes`) or from `estimated_doc_count` and
/// `desired_false_positive_rate`; given `size_in_bytes` and `estimated_doc_count` only, the hash count is
/// chosen for that size. Keys are `bytes` or `str` (hashed as UTF-8).
#[pyclass(name = "BloomFilter", module = "dolma._rust", frozen)]
pub struct PyBloomFilter {
    pub(crate) inner: BloomFilter,
    /// Inserts hold this shared (the bits are atomics, so they may run together); `save` and `to_bytes` hold
    /// it exclusively so a snapshot never mixes in a half-done batch. Only ever taken while detached or for
    /// an instant, and never while waiting for the interpreter, so it cannot deadlock with the GIL.
    gate: RwLock<()>,
}

impl PyBloomFilter {
    fn wrap(inner: BloomFilter) -> Self {
        PyBloomFilter { inner, gate: RwLock::new(()) }
    }

    pub(crate) fn mutating(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn snapshotting(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn snapshot_bytes(&self, py: Python<'_>) -> Vec<u8> {
        py.detach(|| {
            let _guard = self.snapshotting();
            self.inner.to_bytes()
        })
    }
}

#[pymethods]
impl PyBloomFilter {
    #[new]
    #[pyo3(signature = (
        size_in_bytes=None,
        num_hashes=None,
        *,
        estimated_doc_count=None,
        desired_false_positive_rate=None,
        seed=0,
    ))]
    fn new(
        py: Python<'_>,
        size_in_bytes: Option<i64>,
        num_hashes: Option<i64>,
        estimated_doc_count: Option<i64>,
        desired_false_positive_rate: Option<f64>,
        seed: u64,
    ) -> PyResult<Self> {
        // The constructor's one convenience: sized from a count alone, the rate is DEFAULT_RATE.
        let rate = match (size_in_bytes, estimated_doc_count) {
            (None, Some(_)) => desired_false_positive_rate.or(Some(DEFAULT_RATE)),
            _ => desired_false_positive_rate,
        };
        let sizing =
            sizing_args(size_in_bytes, num_hashes, estimated_doc_count, rate, 0).map_err(|e| bloom_err(py, e))?;
        let inner = py.detach(|| BloomFilter::with_sizing(&sizing, seed)).map_err(|e| bloom_err(py, e))?;
        Ok(Self::wrap(inner))
    }

    /// `(size_in_bytes, num_hashes)` of a new filter from what a user gave: the one sizing table (a derived
    /// size is never below `min_size_in_bytes`; see the stub).
    #[staticmethod]
    #[pyo3(signature = (
        size_in_bytes=None,
        num_hashes=None,
        *,
        estimated_doc_count=None,
        desired_false_positive_rate=None,
        min_size_in_bytes=0,
    ))]
    fn choose_params(
        py: Python<'_>,
        size_in_bytes: Option<i64>,
        num_hashes: Option<i64>,
        estimated_doc_count: Option<i64>,
        desired_false_positive_rate: Option<f64>,
        min_size_in_bytes: u64,
    ) -> PyResult<(usize, u32)> {
        sizing_args(size_in_bytes, num_hashes, estimated_doc_count, desired_false_positive_rate, min_size_in_bytes)
            .and_then(|sizing| sizing.resolve())
            .map_err(|e| bloom_err(py, e))
    }

    /// `(size_in_bytes, num_hashes)` for the expected count at the desired false-positive rate.
    #[staticmethod]
    fn optimal_params(
        py: Python<'_>,
        estimated_doc_count: i64,
        desired_false_positive_rate: f64,
    ) -> PyResult<(usize, u32)> {
        positive("estimated_doc_count", estimated_doc_count)
            .and_then(|count| BloomFilter::optimal_params(count, desired_false_positive_rate))
            .map_err(|e| bloom_err(py, e))
    }

    /// Best `num_hashes` for a filter of `size_in_bytes` (rounded up to 64-byte blocks) holding the count.
    #[staticmethod]
    fn optimal_num_hashes(py: Python<'_>, size_in_bytes: i64, estimated_doc_count: i64) -> PyResult<u32> {
        let count = positive("estimated_doc_count", estimated_doc_count).map_err(|e| bloom_err(py, e))?;
        size_arg(size_in_bytes)
            .and_then(|size| BloomFilter::optimal_num_hashes(size, count))
            .map_err(|e| bloom_err(py, e))
    }

    /// Expected false-positive rate of a (blocked) filter of this size and hash count after `count` inserts.
    #[staticmethod]
    fn expected_false_positive_rate(py: Python<'_>, size_in_bytes: i64, num_hashes: i64, count: u64) -> PyResult<f64> {
        (|| bloom::expected_false_positive_rate(size_arg(size_in_bytes)?, hash_count(num_hashes)?, count))()
            .map_err(|e| bloom_err(py, e))
    }

    /// Whether the key is (probably) present; never False for an inserted key.
    fn contains(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.contains(key_bytes(key)?))
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.contains(key)
    }

    /// Adds the key; returns whether it was (probably) present already.
    fn insert(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_bytes(key)?;
        let _guard = self.mutating();
        Ok(self.inner.insert(key))
    }

    /// Same as `insert`: returns whether the key was present, and inserts it.
    fn contains_or_insert(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.insert(key)
    }

    /// `contains` for each key, computed in parallel without the GIL.
    fn contains_batch(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<bool>> {
        let keys = OwnedKeys::extract(keys)?;
        Ok(py.detach(|| self.inner.contains_batch(&keys.slices())))
    }

    /// Inserts every key (without the GIL); returns how many were new.
    fn insert_batch(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<usize> {
        let keys = OwnedKeys::extract(keys)?;
        Ok(py.detach(|| {
            let _guard = self.mutating();
            self.inner.insert_batch(&keys.slices())
        }))
    }

    /// For each key in order: was it present, then insert it. A repeat within the batch reports True.
    fn contains_or_insert_batch(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<bool>> {
        let keys = OwnedKeys::extract(keys)?;
        Ok(py.detach(|| {
            let _guard = self.mutating();
            self.inner.contains_or_insert_batch(&keys.slices())
        }))
    }

    /// Writes the filter atomically (temporary file, then rename).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| {
            let _guard = self.snapshotting();
            self.inner.save(&path)
        })
        .map_err(|e| bloom_err(py, e))
    }

    /// Reads a filter written by `save`, validating header and checksum.
    #[classmethod]
    fn load(_cls: &Bound<'_, PyType>, py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| BloomFilter::load(&path)).map_err(|e| bloom_err(py, e))?;
        Ok(Self::wrap(inner))
    }

    /// The filter in the file format.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.snapshot_bytes(py))
    }

    /// Parses `to_bytes` output (a classmethod, so pickles can refer to it by name).
    #[classmethod]
    fn from_bytes(_cls: &Bound<'_, PyType>, py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let inner = py.detach(|| BloomFilter::from_bytes(data)).map_err(|e| bloom_err(py, e))?;
        Ok(Self::wrap(inner))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let from_bytes = slf.get_type().getattr("from_bytes")?;
        let data = PyBytes::new(py, &slf.get().snapshot_bytes(py));
        Ok((from_bytes, PyTuple::new(py, [data])?))
    }

    /// Text recorded with the filter and saved with it (under the file's checksum); empty unless set.
    #[getter]
    fn manifest(&self) -> String {
        self.inner.manifest()
    }

    /// Records the text saved with the filter (`dolma dedupe` stores the inputs and settings it holds).
    fn set_manifest(&self, py: Python<'_>, manifest: String) -> PyResult<()> {
        self.inner.set_manifest(manifest).map_err(|e| bloom_err(py, e))
    }

    #[getter]
    fn size_in_bytes(&self) -> usize {
        self.inner.size_in_bytes()
    }

    #[getter]
    fn num_bits(&self) -> u64 {
        self.inner.num_bits()
    }

    #[getter]
    fn num_hashes(&self) -> u32 {
        self.inner.num_hashes()
    }

    /// The two recorded hash seeds.
    #[getter]
    fn seeds(&self) -> (u64, u64) {
        self.inner.seeds()
    }

    /// How many inserts added a new key.
    #[getter]
    fn inserted(&self) -> u64 {
        self.inner.inserted()
    }

    /// Number of bits set to one.
    fn bits_set(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.inner.bits_set())
    }

    /// `(bits_set / num_bits) ** num_hashes`: the false-positive chance at the current fill.
    fn estimated_false_positive_rate(&self, py: Python<'_>) -> f64 {
        py.detach(|| self.inner.estimated_false_positive_rate())
    }

    /// Resets every bit and the insert counter.
    fn clear(&self, py: Python<'_>) {
        py.detach(|| {
            let _guard = self.mutating();
            self.inner.clear()
        })
    }

    fn __len__(&self) -> usize {
        usize::try_from(self.inner.inserted()).unwrap_or(usize::MAX)
    }

    /// Always true, even when empty: a filter object is a configured resource, not a plain container.
    fn __bool__(&self) -> bool {
        true
    }

    fn __repr__(&self) -> String {
        let (seed1, seed2) = self.inner.seeds();
        format!(
            "BloomFilter(size_in_bytes={}, num_hashes={}, seeds=({seed1}, {seed2}), inserted={})",
            self.inner.size_in_bytes(),
            self.inner.num_hashes(),
            self.inner.inserted()
        )
    }
}

/// XXH3-64 of `data` (str is hashed as UTF-8): the stable hash the Bloom filter uses.
#[pyfunction]
#[pyo3(signature = (data, seed=0))]
fn xxh3_64(data: &Bound<'_, PyAny>, seed: u64) -> PyResult<u64> {
    Ok(dolma_core::xxh3_64(key_bytes(data)?, seed))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBloomFilter>()?;
    m.add_function(wrap_pyfunction!(xxh3_64, m)?)?;
    m.add("MAX_HASHES", bloom::MAX_HASHES)?;
    m.add("BLOOM_FORMAT_VERSION", bloom::VERSION)?;
    Ok(())
}
