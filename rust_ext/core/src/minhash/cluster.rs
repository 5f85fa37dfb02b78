// Longer than 400 lines because the bucket walk, the verification, the union-find and the result writing are one
// pass over the sorted records.
//! Clustering: band-key files in, one result file per documents file out.
//!
//! 1. Every band-key file is opened and verified; file `i` of the list must say it is file `i` (the stable
//!    order), and all must share one parameter fingerprint. A document's ordinal is its position among all
//!    documents: the documents of the files before it, plus its index in its file.
//! 2. All `(band key, ordinal)` records go through an external sort ([`super::sort`]) within the memory
//!    budget, which yields each bucket (records with an equal key) in ordinal order.
//! 3. Buckets become unions. Without verification every member joins the bucket's first member (enough for
//!    connected components). With verification a member is compared with the bucket's anchors (its first
//!    [`MAX_ANCHORS`] members in ordinal order) that precede it, in order, and joins the first one whose
//!    similarity reaches the threshold; a member that joins none stays apart. The edges of a bucket are thus
//!    a function of its members and their sketches alone (not of what other buckets united), which is what
//!    lets Spark compute the same edges bucket by bucket (`dolma/spark_minhash.py`). Similarity is the
//!    fraction of equal signature values (`signature`) or the Jaccard index of the 64-bit shingle hash sets
//!    (`exact`, exact up to hash collisions).
//! 4. Union-find over ordinals (`u32` parent per document, the smaller root always wins, so each root is its
//!    cluster's smallest ordinal: the keeper). Memory beyond the sort budget: 4 bytes + 1 bit per document.
//! 5. For each file, in order: a record for every document in a cluster of two or more, with its similarity
//!    to the keeper (computed the same way, or estimated from signatures without verification).
//!
//! Buckets are processed in key order, one at a time, so the result depends only on the records: not on the
//! thread count, the memory budget, or how documents were split into files of the same stable order.

use std::fs::File;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Deserialize;

use super::results::{write_results, ResultHeader, ResultRecord};
use super::signature::{estimated_jaccard, exact_jaccard};
use super::sort::{ExternalSorter, SortStats};
use super::unit::UnitFile;
use super::{config_err, format_err, Result};

/// Most earlier bucket members a member is compared with (bounds the work on large buckets of documents
/// that share a band but are not similar).
pub const MAX_ANCHORS: usize = 32;
/// Band-key files kept open at once for random reads.
const MAX_OPEN_FILES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    None,
    Signature,
    Exact,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterOptions {
    pub verify: Verify,
    /// Jaccard threshold for verification.
    pub threshold: f64,
    /// Bytes for the external sort (buffer, then merge read buffers).
    pub memory_budget: usize,
    /// Where sorted runs are spilled (a private subdirectory is created and removed).
    pub spill_dir: PathBuf,
}

impl ClusterOptions {
    pub fn from_json(json: &str) -> Result<Self> {
        let o: ClusterOptions =
            serde_json::from_str(json).map_err(|e| config_err("cluster", format!("invalid options: {e}")))?;
        if !(o.threshold > 0.0 && o.threshold <= 1.0) {
            return Err(config_err("threshold", format!("must be in (0, 1], got {}", o.threshold)));
        }
        Ok(o)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStats {
    pub files: u64,
    pub documents: u64,
    /// Documents with at least one shingle (the others are never duplicates).
    pub keyed: u64,
    /// Buckets with two or more distinct documents.
    pub buckets: u64,
    /// Candidate pairs from the buckets: each member after the first, paired with the first.
    pub candidate_pairs: u64,
    /// Similarity computations made by verification, and how many fell below the threshold.
    pub comparisons: u64,
    pub rejected: u64,
    /// Clusters of two or more documents, and documents in them that are not keepers.
    pub clusters: u64,
    pub duplicates: u64,
    pub sort: SortStats,
}

/// Parent pointers over ordinals; the smaller root always becomes the parent.
pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: u32) -> Self {
        UnionFind { parent: (0..n).collect() }
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    pub fn union(&mut self, a: u32, b: u32) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[hi as usize] = lo;
        true
    }
}

/// Opened band-key files and random reads from them.
struct Corpus {
    units: Vec<UnitFile>,
    /// Ordinal of the first document of each file, plus the total at the end.
    offsets: Vec<u64>,
    handles: Vec<(usize, File)>,
    next_evict: usize,
}

impl Corpus {
    /// (file, index in file) of an ordinal.
    fn locate(&self, ordinal: u32) -> (usize, u32) {
        let file = self.offsets.partition_point(|&o| o <= ordinal as u64) - 1;
        (file, (ordinal as u64 - self.offsets[file]) as u32)
    }

    /// Index in `handles` of an open handle of `file`.
    fn handle(&mut self, file: usize) -> Result<usize> {
        if let Some(pos) = self.handles.iter().position(|(f, _)| *f == file) {
            return Ok(pos);
        }
        let handle = self.units[file].handle()?;
        if self.handles.len() < MAX_OPEN_FILES {
            self.handles.push((file, handle));
            return Ok(self.handles.len() - 1);
        }
        let slot = self.next_evict;
        self.next_evict = (self.next_evict + 1) % MAX_OPEN_FILES;
        self.handles[slot] = (file, handle);
        Ok(slot)
    }

    fn signature(&mut self, ordinal: u32, out: &mut [u32]) -> Result<()> {
        let (file, local) = self.locate(ordinal);
        let h = self.handle(file)?;
        self.units[file].signature_at(&self.handles[h].1, local, out)
    }

    fn set(&mut self, ordinal: u32, out: &mut Vec<u64>) -> Result<()> {
        let (file, local) = self.locate(ordinal);
        let h = self.handle(file)?;
        self.units[file].set_at(&self.handles[h].1, local, out)
    }

    fn line(&mut self, file: usize, local: u32) -> Result<u64> {
        let h = self.handle(file)?;
        self.units[file].line_at(&self.handles[h].1, local)
    }
}

/// What similarity compares for one document.
#[derive(Default, Clone)]
struct Sketch {
    signature: Vec<u32>,
    set: Vec<u64>,
}

struct Similarity {
    exact: bool,
    num_perm: usize,
}

impl Similarity {
    fn load(&self, corpus: &mut Corpus, ordinal: u32, out: &mut Sketch) -> Result<()> {
        if self.exact {
            corpus.set(ordinal, &mut out.set)
        } else {
            out.signature.resize(self.num_perm, 0);
            corpus.signature(ordinal, &mut out.signature)
        }
    }

    fn of(&self, x: &Sketch, y: &Sketch) -> f64 {
        if self.exact {
            exact_jaccard(&x.set, &y.set)
        } else {
            estimated_jaccard(&x.signature, &y.signature)
        }
    }
}

/// Clusters the documents of `units` (band-key files in the stable order) and writes `outputs[i]`, the
/// result file of `units[i]`. With `fingerprint`, every file must have been made with those parameters.
pub fn cluster(
    units: &[PathBuf],
    outputs: &[PathBuf],
    fingerprint: Option<u64>,
    options: &ClusterOptions,
) -> Result<ClusterStats> {
    if units.len() != outputs.len() {
        return Err(config_err("outputs", format!("{} outputs for {} band-key files", outputs.len(), units.len())));
    }
    let opened: Vec<Result<UnitFile>> = units.par_iter().map(|p| UnitFile::open(p, fingerprint)).collect();
    let units: Vec<UnitFile> = opened.into_iter().collect::<Result<_>>()?;
    let mut offsets = vec![0u64];
    for (i, unit) in units.iter().enumerate() {
        let h = &unit.header;
        if h.file_index as usize != i {
            return Err(format_err(
                &unit.path,
                format!(
                    "band-key file of file index {} given at position {i}: give one band-key file per documents \
                     file, in the stable order",
                    h.file_index
                ),
            ));
        }
        if h.fingerprint != units[0].header.fingerprint {
            return Err(format_err(
                &unit.path,
                format!("made with other MinHash parameters than {}", units[0].path.display()),
            ));
        }
        if options.verify == Verify::Exact && !h.shingle_sets {
            return Err(format_err(&unit.path, "exact verification needs band-key files made with shingle sets"));
        }
        offsets.push(offsets[i] + h.documents);
    }
    let total = *offsets.last().unwrap_or(&0);
    if total >= u32::MAX as u64 {
        return Err(config_err("documents", format!("{total} documents: at most 2^32 - 2 can be clustered at once")));
    }
    let mut stats = ClusterStats {
        files: units.len() as u64,
        documents: total,
        keyed: units.iter().map(|u| u.header.keyed).sum(),
        ..ClusterStats::default()
    };
    let num_perm = units.first().map_or(0, |u| u.header.num_perm as usize);
    let mut corpus = Corpus { units, offsets, handles: Vec::new(), next_evict: 0 };

    let mut sorter = ExternalSorter::new(options.memory_budget, &options.spill_dir)?;
    let read_buffer = (options.memory_budget / 8).clamp(1024, 1 << 20);
    for (i, unit) in corpus.units.iter().enumerate() {
        let base = corpus.offsets[i] as u32;
        let mut failed = None;
        unit.for_each_record(read_buffer, |key, local| {
            if failed.is_none() {
                if let Err(e) = sorter.push(key, base + local) {
                    failed = Some(e);
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    let (mut sorted, sort_stats) = sorter.finish()?;
    stats.sort = sort_stats;

    let mut uf = UnionFind::new(total as u32);
    let similarity = Similarity { exact: options.verify == Verify::Exact, num_perm };
    let mut bucket = Bucket::default();
    while let Some((key, ordinal)) = sorted.next()? {
        if bucket.key != Some(key) {
            bucket.close(&mut stats);
            bucket.key = Some(key);
        }
        if bucket.last == Some(ordinal) {
            continue;
        }
        bucket.last = Some(ordinal);
        bucket.members += 1;
        match options.verify {
            Verify::None => match bucket.first {
                None => bucket.first = Some(ordinal),
                Some(first) => {
                    uf.union(first, ordinal);
                }
            },
            Verify::Signature | Verify::Exact => {
                bucket.verify_member(ordinal, &mut uf, &mut corpus, &similarity, options.threshold, &mut stats)?
            }
        }
    }
    bucket.close(&mut stats);
    drop(sorted);

    write_all_results(&mut corpus, &mut uf, &similarity, outputs, &mut stats)?;
    Ok(stats)
}

/// The bucket being read.
#[derive(Default)]
struct Bucket {
    key: Option<u64>,
    last: Option<u32>,
    first: Option<u32>,
    members: u64,
    anchors: Vec<(u32, Sketch)>,
    spare: Vec<Sketch>,
}

impl Bucket {
    fn close(&mut self, stats: &mut ClusterStats) {
        if self.members >= 2 {
            stats.buckets += 1;
            stats.candidate_pairs += self.members - 1;
        }
        self.key = None;
        self.last = None;
        self.first = None;
        self.members = 0;
        self.spare.extend(self.anchors.drain(..).map(|(_, s)| s));
    }

    fn verify_member(
        &mut self,
        ordinal: u32,
        uf: &mut UnionFind,
        corpus: &mut Corpus,
        similarity: &Similarity,
        threshold: f64,
        stats: &mut ClusterStats,
    ) -> Result<()> {
        let mut sketch: Option<Sketch> = None;
        for (anchor, anchor_sketch) in &self.anchors {
            let s = match sketch.as_mut() {
                Some(s) => s,
                None => sketch.insert(load(&mut self.spare, corpus, similarity, ordinal)?),
            };
            stats.comparisons += 1;
            if similarity.of(s, anchor_sketch) >= threshold {
                uf.union(*anchor, ordinal);
                break;
            }
            stats.rejected += 1;
        }
        if self.anchors.len() < MAX_ANCHORS {
            let s = match sketch {
                Some(s) => s,
                None => load(&mut self.spare, corpus, similarity, ordinal)?,
            };
            self.anchors.push((ordinal, s));
        } else if let Some(s) = sketch {
            self.spare.push(s);
        }
        Ok(())
    }
}

fn load(spare: &mut Vec<Sketch>, corpus: &mut Corpus, similarity: &Similarity, ordinal: u32) -> Result<Sketch> {
    let mut s = spare.pop().unwrap_or_default();
    similarity.load(corpus, ordinal, &mut s)?;
    Ok(s)
}

fn write_all_results(
    corpus: &mut Corpus,
    uf: &mut UnionFind,
    similarity: &Similarity,
    outputs: &[PathBuf],
    stats: &mut ClusterStats,
) -> Result<()> {
    let total = *corpus.offsets.last().unwrap_or(&0) as u32;
    let mut has_members = vec![0u64; (total as usize).div_ceil(64)];
    for x in 0..total {
        let root = uf.find(x);
        if root != x {
            has_members[(root / 64) as usize] |= 1 << (root % 64);
            stats.duplicates += 1;
        }
    }
    stats.clusters = has_members.iter().map(|w| u64::from(w.count_ones())).sum();
    let (mut mine, mut keeper) = (Sketch::default(), Sketch::default());
    for (i, output) in outputs.iter().enumerate() {
        let lines = corpus.units[i].lines()?;
        let base = corpus.offsets[i] as u32;
        let mut records = Vec::new();
        for (local, &line) in lines.iter().enumerate() {
            let ordinal = base + local as u32;
            let root = uf.find(ordinal);
            let in_cluster = root != ordinal || has_members[(root / 64) as usize] & (1 << (root % 64)) != 0;
            if !in_cluster {
                continue;
            }
            let (keeper_file, keeper_local) = corpus.locate(root);
            let keeper_line = if keeper_file == i {
                lines[keeper_local as usize]
            } else {
                corpus.line(keeper_file, keeper_local)?
            };
            let sim = if root == ordinal {
                1.0
            } else {
                similarity.load(corpus, ordinal, &mut mine)?;
                similarity.load(corpus, root, &mut keeper)?;
                similarity.of(&mine, &keeper)
            };
            records.push(ResultRecord {
                line,
                ordinal: ordinal as u64,
                cluster: root as u64,
                keeper_line,
                keeper_file: keeper_file as u32,
                similarity: sim as f32,
            });
        }
        let unit = &corpus.units[i];
        let header = ResultHeader {
            file_index: i as u32,
            documents: unit.header.documents,
            fingerprint: unit.header.fingerprint,
            source: unit.header.source.clone(),
        };
        write_results(output, &header, &records)?;
    }
    Ok(())
}
