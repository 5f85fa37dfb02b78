//! The commit stage of [`Deduper::run`]: the one place that touches the Bloom filter, walking documents in
//! input order (file, line, then slot), and the attribute lines of the committed documents.
use rayon::prelude::*;

use super::{Deduper, FileJob, ParsedChunk, ParsedDoc, RunStats};
use crate::bloom::{BloomFilter, Probe};
use crate::dedupe::files::AtomicWriter;
use crate::dedupe::format::{push_attribute_line, quoted_attribute, DocMarks};
use crate::dedupe::{DedupeError, Result};

/// How many key lookups ahead the commit stage prefetches filter blocks.
const PREFETCH_DISTANCE: usize = 16;
/// With several threads, a commit of at least this many keys splits the lookups by filter block range.
const SPLIT_MIN_PROBES: usize = 4096;

impl Deduper {
    /// Looks up (and unless read-only inserts) every key of the documents in order; returns the marks per
    /// document (`None`: no attribute key in the output).
    pub(super) fn commit(
        &self,
        filter: &BloomFilter,
        read_only: bool,
        docs: &[ParsedDoc],
        stats: &mut RunStats,
    ) -> Vec<DocMarks> {
        let mut out = Vec::with_capacity(docs.len());
        let parts = rayon::current_num_threads();
        let split = parts > 1 && docs.iter().flat_map(|doc| &doc.keys).nth(SPLIT_MIN_PROBES).is_some();
        let hits = if split {
            let probes: Vec<Probe> = docs.iter().flat_map(|doc| doc.keys.iter().copied()).collect();
            lookup_split(filter, read_only, &probes, parts)
        } else {
            Vec::new()
        };
        let mut next_hit = 0usize;
        // Prefetch the blocks of the keys PREFETCH_DISTANCE lookups ahead, walking the same sequence of probes
        // as the loop below, so that their cache misses overlap with the work on the current keys.
        let mut ahead = docs.iter().flat_map(|doc| doc.keys.iter().copied());
        if !split {
            for probe in ahead.by_ref().take(PREFETCH_DISTANCE) {
                filter.prefetch_probed(probe);
            }
        }
        // Every probe in slot order goes through `seen`, which tests-and-inserts it (or, after a split
        // lookup, reads the result); `need` is false for a key that is only inserted.
        let mut seen = |probe: Probe, need: bool| -> bool {
            if split {
                let hit = hits[next_hit / 64] >> (next_hit % 64) & 1 == 1;
                next_hit += 1;
                return hit;
            }
            if let Some(next) = ahead.next() {
                filter.prefetch_probed(next);
            }
            if read_only {
                need && filter.contains_probed(probe)
            } else {
                filter.insert_probed_exclusive(probe)
            }
        };
        for doc in docs {
            let mut keys = doc.keys.iter();
            let judged = self.plan.judge(&doc.units, doc.text_bytes, |need| match keys.next() {
                Some(&probe) => seen(probe, need),
                None => false,
            });
            stats.documents += 1;
            stats.bytes += doc.text_bytes;
            stats.paragraphs += judged.looked_up;
            stats.paragraphs_marked += judged.marked();
            stats.bytes_marked += judged.bytes_marked;
            stats.documents_marked += u64::from(judged.marked() > 0);
            out.push(judged.marks);
        }
        out
    }
}

/// The commit stage's state: the output of the file being committed and the statistics.
pub(super) struct Committer<'a> {
    deduper: &'a Deduper,
    filter: &'a BloomFilter,
    read_only: bool,
    jobs: &'a [FileJob],
    attribute: String,
    /// The attributes file of the current file (open from its first chunk to its last).
    output: Option<AtomicWriter>,
    /// Statistics of the current file, added to `stats` when it completes.
    file_stats: RunStats,
    /// Statistics of the completed files.
    pub(super) stats: RunStats,
    /// Reused buffer for a chunk's attribute lines.
    body: Vec<u8>,
}

impl<'a> Committer<'a> {
    pub(super) fn new(deduper: &'a Deduper, filter: &'a BloomFilter, read_only: bool, jobs: &'a [FileJob]) -> Self {
        let attribute = quoted_attribute(deduper.mode.attribute());
        Committer {
            deduper,
            filter,
            read_only,
            jobs,
            attribute,
            output: None,
            file_stats: RunStats::default(),
            stats: RunStats::default(),
            body: Vec::new(),
        }
    }

    /// Commits a chunk and appends its attribute lines; completes the file after its last chunk.
    pub(super) fn commit_chunk(&mut self, chunk: Result<ParsedChunk>) -> Result<()> {
        let chunk = chunk?;
        self.commit_docs(chunk.file, &chunk.docs)?;
        self.end_chunk(chunk.bad_lines, chunk.last, chunk.input_bytes, chunk.fingerprint)
    }

    /// Commits documents of file `file` (the next ones in input order) and appends their attribute lines.
    pub(super) fn commit_docs(&mut self, file: usize, docs: &[ParsedDoc]) -> Result<()> {
        let output = match &mut self.output {
            Some(output) => output,
            None => self.output.insert(AtomicWriter::create(&self.jobs[file].output)?),
        };
        if docs.is_empty() {
            return Ok(());
        }
        let marks = self.deduper.commit(self.filter, self.read_only, docs, &mut self.file_stats);
        if !self.read_only {
            self.file_stats.partial_file = true;
        }
        self.body.clear();
        for (doc, doc_marks) in docs.iter().zip(&marks) {
            push_attribute_line(&mut self.body, &doc.id, &self.attribute, doc_marks.as_deref());
        }
        output.write_all(&self.body)
    }

    /// Ends a chunk of the current file; after its last chunk, completes the file.
    pub(super) fn end_chunk(&mut self, bad_lines: u64, last: bool, input_bytes: u64, fingerprint: u128) -> Result<()> {
        self.file_stats.bad_lines += bad_lines;
        if last {
            if let Some(output) = self.output.take() {
                output.finish()?;
            }
            let mut done = std::mem::take(&mut self.file_stats);
            done.partial_file = false;
            done.files = 1;
            done.input_bytes = input_bytes;
            done.fingerprints = vec![fingerprint];
            self.stats.add(&done);
        }
        Ok(())
    }

    /// The result of a run that stopped at `error`: the completed files' statistics, flagged when the failing
    /// file's keys were partly inserted. The failing file's unfinished output is removed.
    pub(super) fn fail(mut self, error: DedupeError) -> (RunStats, Option<DedupeError>) {
        self.output = None;
        self.stats.partial_file = self.file_stats.partial_file;
        (self.stats, Some(error))
    }
}

/// Looks up (and unless read-only inserts) `probes` with the filter's blocks split into `parts` ranges, one
/// thread each: every thread walks the probes of its range in order, so each block sees its keys in the same
/// order as in a sequential run and the results and the filter are the same; the cache and TLB misses of the
/// lookups are spread over the threads. Returns the hits as a bit set indexed like `probes`.
fn lookup_split(filter: &BloomFilter, read_only: bool, probes: &[Probe], parts: usize) -> Vec<u64> {
    let blocks = filter.num_blocks();
    let all = || probes.iter().copied();
    let results: Vec<(Vec<u64>, u64)> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let (lo, hi) = (blocks * part / parts, blocks * (part + 1) / parts);
            let mine = |probe: &Probe| (lo..hi).contains(&probe.block());
            let mut ahead = all().filter(mine);
            for probe in ahead.by_ref().take(PREFETCH_DISTANCE) {
                filter.prefetch_probed(probe);
            }
            let mut bits = Vec::new();
            let mut inserted = 0u64;
            for (i, probe) in all().enumerate() {
                if i % 64 == 0 {
                    bits.push(0u64);
                }
                if !mine(&probe) {
                    continue;
                }
                if let Some(next) = ahead.next() {
                    filter.prefetch_probed(next);
                }
                let hit = if read_only {
                    filter.contains_probed(probe)
                } else {
                    let present = filter.insert_probed_exclusive_uncounted(probe);
                    inserted += u64::from(!present);
                    present
                };
                bits[i / 64] |= u64::from(hit) << (i % 64);
            }
            (bits, inserted)
        })
        .collect();
    let mut hits: Vec<u64> = Vec::new();
    let mut inserted = 0;
    for (bits, count) in results {
        if hits.is_empty() {
            hits = bits;
        } else {
            hits.iter_mut().zip(bits).for_each(|(h, b)| *h |= b);
        }
        inserted += count;
    }
    if !read_only {
        filter.add_inserted(inserted);
    }
    hits
}
