//! External sort of `(band key, document ordinal)` records within a memory budget.
//!
//! Records collect in a buffer of at most `budget / 16` records; a full buffer is sorted (in parallel) and
//! written to a run file (12 bytes a record, little-endian `u64` key then `u32` ordinal) in a private spill
//! directory. At the end the runs are merged with a heap; when there are more runs than the budget can give a
//! read buffer of [`MIN_READ_BUFFER`] bytes each, groups of runs are first merged into longer runs (several
//! passes if needed). Records compare by key, then ordinal: a total order, so the output is the same for any
//! budget and any thread count. The spill directory is removed when the sorter or its output is dropped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use super::{config_err, io_err, Result};

/// Bytes of memory one record takes in the sort buffer.
pub const RECORD_MEMORY: usize = 16;
const RECORD_DISK: usize = 12;
/// Smallest read buffer per run during a merge (the fan-in is the budget divided by this).
pub const MIN_READ_BUFFER: usize = 4096;
/// Most runs merged at once (open files).
const MAX_FAN_IN: usize = 256;
/// Smallest budget accepted.
pub const MIN_BUDGET: usize = 1024;

static SPILL_COUNTER: AtomicU64 = AtomicU64::new(0);

#[inline]
fn pack(key: u64, ordinal: u32) -> u128 {
    (u128::from(key) << 32) | u128::from(ordinal)
}

#[inline]
fn unpack(r: u128) -> (u64, u32) {
    ((r >> 32) as u64, r as u32)
}

/// A private directory for run files, removed with everything in it when the last user drops it.
#[derive(Debug)]
struct SpillDir {
    path: PathBuf,
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// What the sort did (for reports and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortStats {
    pub records: u64,
    /// Sorted runs written to disk (0: everything fitted in the budget).
    pub runs: u64,
    /// Intermediate merge passes before the final merge.
    pub merge_passes: u64,
    pub bytes_spilled: u64,
}

pub struct ExternalSorter {
    cap: usize,
    budget: usize,
    parent: PathBuf,
    dir: Option<Arc<SpillDir>>,
    buffer: Vec<u128>,
    runs: Vec<PathBuf>,
    stats: SortStats,
}

impl ExternalSorter {
    /// `budget_bytes`: memory for the sort buffer and, later, the merge's read buffers. Runs go to a new
    /// directory inside `spill_parent`, created only if the records do not fit.
    pub fn new(budget_bytes: usize, spill_parent: &Path) -> Result<Self> {
        if budget_bytes < MIN_BUDGET {
            return Err(config_err(
                "memory_budget",
                format!("must be at least {MIN_BUDGET} bytes, got {budget_bytes}"),
            ));
        }
        Ok(ExternalSorter {
            cap: budget_bytes / RECORD_MEMORY,
            budget: budget_bytes,
            parent: spill_parent.to_path_buf(),
            dir: None,
            buffer: Vec::new(),
            runs: Vec::new(),
            stats: SortStats::default(),
        })
    }

    pub fn push(&mut self, key: u64, ordinal: u32) -> Result<()> {
        if self.buffer.len() == self.buffer.capacity() {
            if self.buffer.len() >= self.cap {
                self.spill()?;
            }
            let want = (self.buffer.capacity() * 2).max(1024).min(self.cap.max(1));
            self.buffer.reserve_exact(want.saturating_sub(self.buffer.len()));
        }
        self.buffer.push(pack(key, ordinal));
        self.stats.records += 1;
        Ok(())
    }

    fn spill_dir(&mut self) -> Result<Arc<SpillDir>> {
        if let Some(dir) = &self.dir {
            return Ok(dir.clone());
        }
        let n = SPILL_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.parent.join(format!(".dolma-minhash-sort-{}-{n}", std::process::id()));
        fs::create_dir_all(&path).map_err(|e| io_err(&path, e))?;
        let dir = Arc::new(SpillDir { path });
        self.dir = Some(dir.clone());
        Ok(dir)
    }

    fn new_run(&mut self) -> Result<PathBuf> {
        let dir = self.spill_dir()?;
        let path = dir.path.join(format!("run-{:06}", self.stats.runs));
        self.stats.runs += 1;
        Ok(path)
    }

    fn spill(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.buffer.par_sort_unstable();
        let path = self.new_run()?;
        let mut w = BufWriter::with_capacity(1 << 16, File::create(&path).map_err(|e| io_err(&path, e))?);
        for &r in &self.buffer {
            let (key, ordinal) = unpack(r);
            w.write_all(&key.to_le_bytes())
                .and_then(|()| w.write_all(&ordinal.to_le_bytes()))
                .map_err(|e| io_err(&path, e))?;
        }
        w.into_inner().map_err(|e| io_err(&path, e.into_error()))?;
        self.stats.bytes_spilled += (self.buffer.len() * RECORD_DISK) as u64;
        self.buffer.clear();
        self.runs.push(path);
        Ok(())
    }

    /// Sorts what is left and returns the records in order.
    pub fn finish(mut self) -> Result<(Sorted, SortStats)> {
        if self.runs.is_empty() {
            self.buffer.par_sort_unstable();
            let stats = self.stats.clone();
            return Ok((Sorted(SortedInner::Memory { records: std::mem::take(&mut self.buffer), next: 0 }), stats));
        }
        self.spill()?;
        self.buffer = Vec::new();
        let fan_in = (self.budget / MIN_READ_BUFFER).clamp(2, MAX_FAN_IN);
        while self.runs.len() > fan_in {
            self.stats.merge_passes += 1;
            let runs = std::mem::take(&mut self.runs);
            for group in runs.chunks(fan_in) {
                let out = self.new_run()?;
                let mut merge = Merge::open(group, self.budget / (group.len() + 1))?;
                let mut w = BufWriter::with_capacity(
                    self.budget / (group.len() + 1),
                    File::create(&out).map_err(|e| io_err(&out, e))?,
                );
                while let Some((key, ordinal)) = merge.next()? {
                    w.write_all(&key.to_le_bytes())
                        .and_then(|()| w.write_all(&ordinal.to_le_bytes()))
                        .map_err(|e| io_err(&out, e))?;
                }
                w.into_inner().map_err(|e| io_err(&out, e.into_error()))?;
                for run in group {
                    let _ = fs::remove_file(run);
                }
                self.stats.bytes_spilled += merge.records * RECORD_DISK as u64;
                self.runs.push(out);
            }
        }
        let merge = Merge::open(&self.runs, self.budget / self.runs.len())?;
        let stats = self.stats.clone();
        Ok((Sorted(SortedInner::Runs { merge, _dir: self.spill_dir()? }), stats))
    }
}

struct RunReader {
    path: PathBuf,
    reader: BufReader<File>,
}

impl RunReader {
    fn next(&mut self) -> Result<Option<u128>> {
        let mut rec = [0u8; RECORD_DISK];
        let mut filled = 0;
        while filled < RECORD_DISK {
            match self.reader.read(&mut rec[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => {
                    let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "run file ends inside a record");
                    return Err(io_err(&self.path, e));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(&self.path, e)),
            }
        }
        let mut key = [0u8; 8];
        key.copy_from_slice(&rec[..8]);
        Ok(Some(pack(u64::from_le_bytes(key), u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]))))
    }
}

/// A k-way merge of sorted run files.
struct Merge {
    readers: Vec<RunReader>,
    heap: BinaryHeap<Reverse<(u128, usize)>>,
    records: u64,
}

impl Merge {
    fn open(runs: &[PathBuf], buffer_bytes: usize) -> Result<Self> {
        let mut readers = Vec::with_capacity(runs.len());
        for path in runs {
            let file = File::open(path).map_err(|e| io_err(path, e))?;
            let capacity = buffer_bytes.max(RECORD_DISK * 4);
            readers.push(RunReader { path: path.clone(), reader: BufReader::with_capacity(capacity, file) });
        }
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(rec) = r.next()? {
                heap.push(Reverse((rec, i)));
            }
        }
        Ok(Merge { readers, heap, records: 0 })
    }

    fn next(&mut self) -> Result<Option<(u64, u32)>> {
        let Some(Reverse((rec, i))) = self.heap.pop() else { return Ok(None) };
        if let Some(next) = self.readers[i].next()? {
            self.heap.push(Reverse((next, i)));
        }
        self.records += 1;
        Ok(Some(unpack(rec)))
    }
}

/// The sorted records.
pub struct Sorted(SortedInner);

enum SortedInner {
    Memory { records: Vec<u128>, next: usize },
    Runs { merge: Merge, _dir: Arc<SpillDir> },
}

impl Sorted {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(u64, u32)>> {
        match &mut self.0 {
            SortedInner::Memory { records, next } => {
                let r = records.get(*next).copied();
                *next += 1;
                Ok(r.map(unpack))
            }
            SortedInner::Runs { merge, .. } => merge.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(records: &[(u64, u32)], budget: usize, dir: &Path) -> (Vec<(u64, u32)>, SortStats) {
        let mut s = ExternalSorter::new(budget, dir).unwrap();
        for &(k, o) in records {
            s.push(k, o).unwrap();
        }
        let (mut out, stats) = s.finish().unwrap();
        let mut all = Vec::new();
        while let Some(r) = out.next().unwrap() {
            all.push(r);
        }
        (all, stats)
    }

    #[test]
    fn any_budget_gives_the_same_order_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut x = 7u64;
        let records: Vec<(u64, u32)> = (0..5000u32)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x % 97, i % 1000)
            })
            .collect();
        let mut want = records.clone();
        want.sort();
        let (big, stats) = sorted(&records, 1 << 20, dir.path());
        assert_eq!(big, want);
        assert_eq!(stats.runs, 0);
        for budget in [1024, 4096, 9000, 65536] {
            let (small, stats) = sorted(&records, budget, dir.path());
            assert_eq!(small, want, "budget {budget}");
            assert!(stats.runs > 1, "budget {budget} should spill");
            if budget <= 4096 {
                assert!(stats.merge_passes > 0, "budget {budget} should need intermediate passes");
            }
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "spill directories left behind");
        let (empty, _) = sorted(&[], 1024, dir.path());
        assert!(empty.is_empty());
        assert!(ExternalSorter::new(100, dir.path()).is_err());
    }
}
