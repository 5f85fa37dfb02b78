// Longer than 400 lines because its unit tests (the code above them is about 320 lines).
//! File-level dedupe: read (gzip / zstd / plain) in bounded chunks, parse and hash in parallel,
//! test-and-insert in input order, stream the attribute files through their compressor and rename them into
//! place when complete.
//!
//! [`Deduper::run`] takes files in their stable order and cuts them into chunks of whole lines (about
//! `chunk_bytes` of decompressed text each; a chunk never spans two files). Three stages run at once on
//! consecutive chunks: the next chunk is read and decompressed, the current one is parsed and hashed (lines
//! in parallel), and the previous one is committed: the commit stage walks documents in file order, then
//! line order, and is the only place that touches the Bloom filter, so the first occurrence of a key is
//! always the same one whatever the thread count or chunk size. It then appends the chunk's attribute lines
//! to the file's compressed output. Memory is bounded by a few chunks, whatever the size of the files.
//! On a single thread the same steps run interleaved line by line instead (see `run_single_thread`).
mod commit;

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use commit::Committer;

use super::config::{DedupeConfig, Mode};
use super::keys::{KeyHasher, KeyPlan, Units};
use super::lines::{read_line, split_lines, ChunkReader, LineKey, RawChunk};
use super::text;
use super::{DedupeError, Result};
use crate::bloom::{BloomFilter, Probe};

/// Lines parsed per parallel task.
const LINES_PER_TASK: usize = 256;
/// Single-thread runs commit lines this many lines after parsing them (while their blocks are loaded).
const SINGLE_THREAD_LAG: usize = 1;
/// Default budget of decompressed bytes per chunk (a chunk holds whole lines, so it can be longer by one line
/// and by one read).
pub const DEFAULT_CHUNK_BYTES: usize = 4 << 20;

/// One documents file and the attributes file to write for it.
#[derive(Debug, Clone)]
pub struct FileJob {
    pub input: String,
    pub output: String,
}

/// Counts reported at the end of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    pub files: u64,
    pub documents: u64,
    pub documents_marked: u64,
    /// Paragraphs looked up (documents mode: keys looked up).
    pub paragraphs: u64,
    pub paragraphs_marked: u64,
    /// UTF-8 bytes of text seen, and inside marked spans.
    pub bytes: u64,
    pub bytes_marked: u64,
    pub bad_lines: u64,
    /// Bytes read from the input files (compressed size).
    pub input_bytes: u64,
    /// The content fingerprint of each completed file, in order: [`fingerprint_file`] of its bytes as stored,
    /// computed while it was read (so a caller can record exactly which content went into the filter).
    pub fingerprints: Vec<u128>,
    /// Set when a run failed inside a file after some of that file's keys were inserted: the filter then
    /// holds part of a file that is not complete, so it must not be checkpointed as "files before it done".
    pub partial_file: bool,
}

impl RunStats {
    pub fn add(&mut self, other: &RunStats) {
        self.files += other.files;
        self.documents += other.documents;
        self.documents_marked += other.documents_marked;
        self.paragraphs += other.paragraphs;
        self.paragraphs_marked += other.paragraphs_marked;
        self.bytes += other.bytes;
        self.bytes_marked += other.bytes_marked;
        self.bad_lines += other.bad_lines;
        self.input_bytes += other.input_bytes;
        self.fingerprints.extend_from_slice(&other.fingerprints);
        self.partial_file |= other.partial_file;
    }
}

#[derive(Debug)]
struct ParsedDoc {
    /// The `id` value as JSON text, copied to the output unchanged.
    id: String,
    text_bytes: u64,
    units: Units,
    /// The probes of the document's keys, in slot order ([`KeyPlan`]).
    keys: Vec<Probe>,
}

/// The parsed documents of a [`RawChunk`].
struct ParsedChunk {
    file: usize,
    docs: Vec<ParsedDoc>,
    bad_lines: u64,
    last: bool,
    input_bytes: u64,
    fingerprint: u128,
}

/// The keys of the local run: Bloom-filter probes (n-grams as the hashes of their words, in their own key
/// space, so a paragraph's words are hashed once whatever the number of its n-grams).
struct ProbeKeys<'f, 't> {
    filter: &'f BloomFilter,
    words: Vec<&'t str>,
    hashes: Vec<u8>,
}

impl<'t> KeyHasher<'t> for ProbeKeys<'_, 't> {
    type Key = Probe;

    fn text(&mut self, text: &'t str) -> Probe {
        self.filter.probe_of(text.as_bytes())
    }

    fn words(&mut self, text: &'t str) -> usize {
        text::hash_words(text, &mut self.words, &mut self.hashes)
    }

    fn ngram(&mut self, first: usize, n: usize) -> Probe {
        self.filter.probe_of_in(&self.hashes[8 * first..8 * (first + n)], text::NGRAM_DOMAIN)
    }
}

/// Runs the dedupe of one configuration over files.
pub struct Deduper {
    config: DedupeConfig,
    mode: Mode,
    plan: KeyPlan,
    skip_bad_lines: bool,
    chunk_bytes: usize,
}

impl Deduper {
    pub fn new(config: DedupeConfig, skip_bad_lines: bool) -> Result<Self> {
        let mode = config.mode()?;
        let plan = KeyPlan::new(&config, &mode);
        Ok(Deduper { config, mode, plan, skip_bad_lines, chunk_bytes: DEFAULT_CHUNK_BYTES })
    }

    /// Sets the budget of decompressed bytes per chunk (at least 1; results never depend on it, only memory
    /// and the granularity of the pipeline do).
    pub fn with_chunk_bytes(mut self, chunk_bytes: usize) -> Self {
        self.chunk_bytes = chunk_bytes.max(1);
        self
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The settings that decide the keys ([`DedupeConfig::key_settings`]), as JSON text.
    pub fn key_settings(&self) -> Result<String> {
        self.config.key_settings()
    }

    /// Dedupes `jobs` in order against `filter` (only looked up, never changed, when `read_only`) and writes
    /// one attributes file per job. Runs on the current rayon pool.
    ///
    /// Unless `read_only`, the run must be the only writer of `filter` while it runs (it inserts with
    /// [`BloomFilter::insert_probed_exclusive`]); readers elsewhere are fine.
    ///
    /// Returns the statistics of the files completed and, if a file failed, the error: the files before it
    /// are complete (their keys inserted, their attributes written), none after it is. The failing file
    /// itself may have had its first chunks inserted (not its attributes written): then
    /// [`RunStats::partial_file`] is set.
    pub fn run(&self, filter: &BloomFilter, read_only: bool, jobs: &[FileJob]) -> (RunStats, Option<DedupeError>) {
        self.run_until(filter, read_only, jobs, &AtomicBool::new(false))
    }

    /// [`Deduper::run`] that stops between chunks once `stop` is set (a user's Ctrl-C or SIGTERM), with
    /// [`DedupeError::Stopped`]: the files before the current one are complete, the current one's output is
    /// removed, as after any other error.
    pub fn run_until(
        &self,
        filter: &BloomFilter,
        read_only: bool,
        jobs: &[FileJob],
        stop: &AtomicBool,
    ) -> (RunStats, Option<DedupeError>) {
        if rayon::current_num_threads() <= 1 {
            return self.run_single_thread(filter, read_only, jobs, stop);
        }
        let mut reader = ChunkReader::new(jobs, self.chunk_bytes);
        let mut committer = Committer::new(self, filter, read_only, jobs);
        let mut raw = reader.next_chunk();
        let mut parsed: Option<Result<ParsedChunk>> = None;
        while raw.is_some() || parsed.is_some() {
            if stop.load(Ordering::Relaxed) {
                return committer.fail(DedupeError::Stopped);
            }
            let to_parse = raw.take();
            let to_commit = parsed.take();
            let (next_raw, (next_parsed, committed)) = rayon::join(
                || reader.next_chunk(),
                || {
                    rayon::join(
                        || to_parse.map(|chunk| chunk.and_then(|c| self.parse_chunk(filter, jobs, c))),
                        || to_commit.map(|chunk| committer.commit_chunk(chunk)),
                    )
                },
            );
            if let Some(Err(e)) = committed {
                return committer.fail(e);
            }
            raw = next_raw;
            parsed = next_parsed.map(|result| {
                result.map(|(chunk, buffer)| {
                    reader.recycle(buffer);
                    chunk
                })
            });
        }
        (committer.stats, None)
    }

    // ------------------------------------------------------------------------------------------------------
    // Parse and hash (parallel)
    // ------------------------------------------------------------------------------------------------------

    /// Parses a chunk; returns its documents and its buffer for reuse.
    fn parse_chunk(&self, filter: &BloomFilter, jobs: &[FileJob], chunk: RawChunk) -> Result<(ParsedChunk, Vec<u8>)> {
        let path = &jobs[chunk.file].input;
        let lines = split_lines(&chunk);
        let parts: Vec<Result<(Vec<ParsedDoc>, u64)>> =
            lines.par_chunks(LINES_PER_TASK).map(|part| self.parse_lines(filter, path, part)).collect();
        let mut docs = Vec::with_capacity(lines.len());
        let mut bad_lines = 0;
        for part in parts {
            let (mut part, bad) = part?;
            docs.append(&mut part);
            bad_lines += bad;
        }
        drop(lines);
        let parsed = ParsedChunk {
            file: chunk.file,
            docs,
            bad_lines,
            last: chunk.last,
            input_bytes: chunk.input_bytes,
            fingerprint: chunk.fingerprint,
        };
        Ok((parsed, chunk.data))
    }

    /// Parses lines in order: the documents and the number of bad lines skipped.
    fn parse_lines(&self, filter: &BloomFilter, path: &str, lines: &[(u64, &[u8])]) -> Result<(Vec<ParsedDoc>, u64)> {
        let mut docs = Vec::with_capacity(lines.len());
        let mut bad = 0u64;
        for &(lineno, line) in lines {
            match self.parse_line(filter, path, lineno, line) {
                Ok(doc) => docs.push(doc),
                Err(DedupeError::BadLine { .. }) if self.skip_bad_lines => bad += 1,
                Err(e) => return Err(e),
            }
        }
        Ok((docs, bad))
    }

    /// [`Deduper::run`] on a single thread: parsing and committing alternate line by line, and the blocks of a
    /// line's keys are prefetched as soon as it is parsed, so their cache misses overlap with the parsing of
    /// the next line instead of stalling the commit.
    fn run_single_thread(
        &self,
        filter: &BloomFilter,
        read_only: bool,
        jobs: &[FileJob],
        stop: &AtomicBool,
    ) -> (RunStats, Option<DedupeError>) {
        let mut reader = ChunkReader::new(jobs, self.chunk_bytes);
        let mut committer = Committer::new(self, filter, read_only, jobs);
        while let Some(chunk) = reader.next_chunk() {
            if stop.load(Ordering::Relaxed) {
                return committer.fail(DedupeError::Stopped);
            }
            let result = chunk.and_then(|chunk| {
                let path = &jobs[chunk.file].input;
                let lines = split_lines(&chunk);
                let mut behind = Vec::new();
                let mut bad_lines = 0;
                for part in lines.chunks(SINGLE_THREAD_LAG) {
                    let (docs, bad) = self.parse_lines(filter, path, part)?;
                    // Start loading the blocks of these documents' keys; they are committed after the next
                    // lines are parsed, by which time the cache misses are over.
                    for &probe in docs.iter().flat_map(|doc| &doc.keys) {
                        filter.prefetch_probed(probe);
                    }
                    bad_lines += bad;
                    committer.commit_docs(chunk.file, &behind)?;
                    behind = docs;
                }
                committer.commit_docs(chunk.file, &behind)?;
                drop(lines);
                committer.end_chunk(bad_lines, chunk.last, chunk.input_bytes, chunk.fingerprint)?;
                Ok(chunk.data)
            });
            let result = result.map(|buffer| reader.recycle(buffer));
            if let Err(e) = result {
                return committer.fail(e);
            }
        }
        (committer.stats, None)
    }

    fn parse_line(&self, filter: &BloomFilter, path: &str, lineno: u64, line: &[u8]) -> Result<ParsedDoc> {
        let LineKey { id, text_bytes, key } = read_line(&self.mode, path, lineno, line)?;
        let mut hasher = ProbeKeys { filter, words: Vec::new(), hashes: Vec::new() };
        let mut keys = Vec::new();
        if self.plan.ngrams() {
            hasher.hashes.reserve(key.len() * 2);
            keys.reserve(key.len() / 6);
        }
        let units = self.plan.units(&key, &mut hasher, &mut keys);
        Ok(ParsedDoc { id, text_bytes, units, keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::spark_keys::{unpack_position, KeyMaker};

    const SECTIONS: [&str; 4] = [
        r#"{"name":"x","documents":{"attribute_name":"d","key":"$.text"},"skip_empty":true}"#,
        r#"{"name":"x","paragraphs":{"attribute_name":"p"},"min_words":2}"#,
        r#"{"name":"x","paragraphs":{"attribute_name":"p","by_ngram":{"ngram_length":2,"overlap_threshold":0.4}}}"#,
        r#"{"name":"x","paragraphs":{"attribute_name":"p","by_ngram":{"ngram_length":3,"skip_short_paragraphs":true}}}"#,
    ];

    fn files() -> Vec<String> {
        let doc =
            |i: usize, text: &str| format!("{{\"id\":\"d{i}\",\"text\":{}}}\n", serde_json::to_string(text).unwrap());
        let texts = ["a b c\n\nb c d\na b", "x y\na b c", "a b c\n\nb c d\na b", "", " ", "é t é\nx y", "x y"];
        let mut out = Vec::new();
        for f in 0..3 {
            out.push((0..20).map(|i| doc(i, texts[(i * 3 + f) % texts.len()])).collect::<String>() + "\n  \n");
        }
        out
    }

    /// The attributes the Spark key path writes: every key occurrence but the earliest is a duplicate.
    fn spark_outputs(section: &str, files: &[String]) -> Vec<Vec<u8>> {
        let maker = KeyMaker::new(crate::dedupe::config::test_config(section), false).unwrap();
        let scans: Vec<_> = files.iter().map(|f| maker.scan("f", f.as_bytes(), false).unwrap()).collect();
        let mut all: Vec<(u64, u128)> = Vec::new();
        for (i, scan) in scans.iter().enumerate() {
            all.extend(scan.positions("f", i as u64).unwrap());
        }
        all.sort_unstable();
        let dups: Vec<u128> = all.windows(2).filter(|w| w[0].0 == w[1].0).map(|w| w[1].1).collect();
        scans
            .iter()
            .enumerate()
            .map(|(i, scan)| {
                let mine: Vec<u128> = dups.iter().copied().filter(|&p| unpack_position(p).0 == i as u64).collect();
                maker.attributes_of(scan, &mine).0
            })
            .collect()
    }

    fn local_outputs(section: &str, files: &[String], threads: usize, chunk_bytes: usize) -> (Vec<Vec<u8>>, RunStats) {
        let dir = tempfile::tempdir().unwrap();
        let jobs: Vec<FileJob> = files
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let input = dir.path().join(format!("in{i}.jsonl"));
                std::fs::write(&input, body).unwrap();
                let output = dir.path().join(format!("out/{i}.jsonl.gz"));
                FileJob { input: input.to_str().unwrap().to_string(), output: output.to_str().unwrap().to_string() }
            })
            .collect();
        let deduper =
            Deduper::new(crate::dedupe::config::test_config(section), false).unwrap().with_chunk_bytes(chunk_bytes);
        let filter = BloomFilter::new(1 << 16, 5, 7).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (stats, error) = pool.install(|| deduper.run(&filter, false, &jobs));
        assert!(error.is_none(), "{error:?}");
        let outputs = jobs
            .iter()
            .map(|job| {
                let mut out = Vec::new();
                let raw = std::fs::read(&job.output).unwrap();
                crate::dedupe::files::decompress_into(&job.output, &raw, &mut out).unwrap();
                out
            })
            .collect();
        (outputs, stats)
    }

    #[test]
    fn local_run_writes_what_the_spark_key_path_writes() {
        let files = files();
        for section in SECTIONS {
            let want = spark_outputs(section, &files);
            assert!(want.iter().any(|f| f.windows(3).any(|w| w == b"[[0")), "some marks: {section}");
            let mut first_stats = None;
            for (threads, chunk_bytes) in [(1, 1 << 20), (1, 50), (2, 1), (2, 333), (2, 1 << 20)] {
                let (got, stats) = local_outputs(section, &files, threads, chunk_bytes);
                assert_eq!(got, want, "{section}, {threads} threads, chunks of {chunk_bytes}");
                assert_eq!(stats.files, 3);
                assert_eq!(stats.documents, 60);
                let stats = RunStats { fingerprints: Vec::new(), ..stats };
                assert_eq!(first_stats.get_or_insert(stats.clone()), &stats, "{section}");
            }
        }
    }
}
