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
use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde_json::Value;
use xxhash_rust::xxh3::Xxh3Default;

use super::config::{DedupeConfig, Mode};
use super::document;
use super::format::{push_attribute_line, quoted_attribute, DocMarks};
use super::jsonpath::JsonPath;
use super::keys::{KeyHasher, KeyPlan, Units};
use super::text;
use super::{io_err, DedupeError, Result};
use crate::bloom::{BloomFilter, Probe};

/// How many key lookups ahead the commit stage prefetches filter blocks.
const PREFETCH_DISTANCE: usize = 16;
/// With several threads, a commit of at least this many keys splits the lookups by filter block range.
const SPLIT_MIN_PROBES: usize = 4096;
/// Lines parsed per parallel task.
const LINES_PER_TASK: usize = 256;
/// Single-thread runs commit lines this many lines after parsing them (while their blocks are loaded).
const SINGLE_THREAD_LAG: usize = 1;
/// Default budget of decompressed bytes per chunk (a chunk holds whole lines, so it can be longer by one line
/// and by one read).
pub const DEFAULT_CHUNK_BYTES: usize = 4 << 20;
/// Largest single read from a decompressor into a chunk.
const MAX_READ: usize = 1 << 20;
/// Output is handed to the compressor in pieces of exactly this size (a multiple of 32 KiB, the piece size
/// that makes the gzip stream independent of how the output was cut into chunks) and a final remainder.
const FEED_BYTES: usize = 1 << 20;

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

/// Decompressed whole lines of one file, as read.
struct RawChunk {
    /// Index of the file in the run's jobs.
    file: usize,
    data: Vec<u8>,
    /// Line number (1-based) of the first line of `data`.
    first_line: u64,
    /// The file ends with this chunk (every other chunk ends with a newline).
    last: bool,
    /// Size of the file on disk.
    input_bytes: u64,
    /// The file's fingerprint, on its last chunk.
    fingerprint: u128,
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

/// What dedupe reads from a documents line: the `id` (as JSON text, written unchanged), the UTF-8 length of
/// `text`, and the text the keys come from: the document key in documents mode, the text in the paragraph
/// modes.
pub(crate) struct LineKey<'a> {
    pub id: String,
    pub text_bytes: u64,
    pub key: Cow<'a, str>,
}

/// Parses one documents line by the deduper's rules (shared by the Bloom-filter run and the key path of a
/// distributed run), with errors naming the file, the 1-based line and the field.
///
/// Which lines are bad, and the words that say why, are those of every reader of the toolkit
/// ([`document`]), so a line skipped with `skip_bad_lines` is skipped by taggers and the mixer too. A good
/// line whose JSONPath dedupe key is missing is an error that cannot be skipped: skipping it would leave its
/// attribute row out of a file that must mirror the good lines.
pub(crate) fn read_line<'a>(mode: &Mode, path: &str, lineno: u64, line: &'a [u8]) -> Result<LineKey<'a>> {
    let bad = |(reason, field): (String, Option<String>)| DedupeError::BadLine {
        path: path.to_string(),
        line: lineno,
        field: field.unwrap_or_else(|| "(line)".to_string()),
        reason,
    };
    let key_path = match mode {
        Mode::Documents { key, .. } => Some(key),
        _ => None,
    };
    let good =
        std::str::from_utf8(line).ok().and_then(|text| document::parse(text, key_path.and_then(|k| k.first_field())));
    let Some(good) = good else { return Err(bad(document::explain(line))) };
    // Validated strings: these decodings cannot fail (an error would still be reported, not panic).
    let text: Cow<str> = serde_json::from_str(good.text.get()).map_err(|_| bad(document::explain(line)))?;
    let text_bytes = text.len() as u64;
    let id = good.id.get().to_string();
    let key = match key_path {
        None => text,
        Some(key) if key.single_field() == Some("text") => text,
        Some(key) if key.single_field() == Some("id") => {
            Cow::Owned(serde_json::from_str::<String>(&id).map_err(|_| bad(document::explain(line)))?)
        }
        Some(key) => {
            let top = key.first_field().and_then(|name| good.get(name));
            let value: Option<Value> = top.and_then(|raw| serde_json::from_str(raw.get()).ok());
            match value.as_ref().and_then(|v| key.select_in_first_field(v)) {
                None | Some(Value::Null) => {
                    return Err(DedupeError::MissingKey {
                        path: path.to_string(),
                        line: lineno,
                        field: path_field(key),
                    })
                }
                Some(Value::String(s)) => Cow::Owned(s.clone()),
                Some(other) => Cow::Owned(other.to_string()),
            }
        }
    };
    Ok(LineKey { id, text_bytes, key })
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

    // ------------------------------------------------------------------------------------------------------
    // Commit (sequential, input order)
    // ------------------------------------------------------------------------------------------------------

    /// Looks up (and unless read-only inserts) every key of the documents in order; returns the marks per
    /// document (`None`: no attribute key in the output).
    fn commit(
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
struct Committer<'a> {
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
    stats: RunStats,
    /// Reused buffer for a chunk's attribute lines.
    body: Vec<u8>,
}

impl<'a> Committer<'a> {
    fn new(deduper: &'a Deduper, filter: &'a BloomFilter, read_only: bool, jobs: &'a [FileJob]) -> Self {
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
    fn commit_chunk(&mut self, chunk: Result<ParsedChunk>) -> Result<()> {
        let chunk = chunk?;
        self.commit_docs(chunk.file, &chunk.docs)?;
        self.end_chunk(chunk.bad_lines, chunk.last, chunk.input_bytes, chunk.fingerprint)
    }

    /// Commits documents of file `file` (the next ones in input order) and appends their attribute lines.
    fn commit_docs(&mut self, file: usize, docs: &[ParsedDoc]) -> Result<()> {
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
    fn end_chunk(&mut self, bad_lines: u64, last: bool, input_bytes: u64, fingerprint: u128) -> Result<()> {
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
    fn fail(mut self, error: DedupeError) -> (RunStats, Option<DedupeError>) {
        self.output = None;
        self.stats.partial_file = self.file_stats.partial_file;
        (self.stats, Some(error))
    }
}

/// The non-blank lines of a chunk with their line numbers.
fn split_lines(chunk: &RawChunk) -> Vec<(u64, &[u8])> {
    let data = &chunk.data;
    let mut lines = Vec::new();
    let mut start = 0usize;
    let mut lineno = chunk.first_line;
    // Every chunk but a file's last ends with a newline: the empty piece after it is the next chunk's.
    let tail = chunk.last.then_some(data.len());
    for end in memchr::memchr_iter(b'\n', data).chain(tail) {
        if start > data.len() {
            break;
        }
        let line = &data[start..end];
        start = end + 1;
        lineno += 1;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        lines.push((lineno - 1, line));
    }
    lines
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

fn path_field(path: &JsonPath) -> String {
    let text = path.to_string();
    text.strip_prefix("$.").map(str::to_string).unwrap_or(text)
}

/// Compression from the last extension, as everywhere in the toolkit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    Plain,
}

pub fn compression_of(path: &str) -> Compression {
    if path.ends_with(".gz") {
        Compression::Gzip
    } else if path.ends_with(".zst") || path.ends_with(".zstd") {
        Compression::Zstd
    } else {
        Compression::Plain
    }
}

/// Replaces `out` with the decompressed content of `raw`, a whole file's bytes as stored (compression from
/// `path`'s extension); `out`'s allocation is reused.
pub(crate) fn decompress_into(path: &str, raw: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    out.reserve(raw.len().saturating_mul(4).min(1 << 30));
    decoder(path, raw).and_then(|mut reader| reader.read_to_end(out)).map_err(|e| read_error(path, e))?;
    Ok(())
}

/// A reader of the decompressed content of `inner`, by the compression of `path`'s extension. An empty file is
/// empty content whatever its extension, as for the Python readers.
pub(crate) fn decoder<'r, R: BufRead + Send + 'r>(path: &str, mut inner: R) -> io::Result<Box<dyn Read + Send + 'r>> {
    if inner.fill_buf()?.is_empty() {
        return Ok(Box::new(io::empty()));
    }
    Ok(match compression_of(path) {
        Compression::Gzip => Box::new(GzipMembers::new(inner)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(inner)?),
        Compression::Plain => Box::new(inner),
    })
}

/// The content of concatenated gzip members, read as `gzip -d` reads a file (and as the Python readers do): an
/// empty file is empty, and zero bytes after the last member (block or tape padding) are ignored; anything
/// else after a member must be another member.
struct GzipMembers<R: BufRead> {
    state: GzipState<R>,
    members: u64,
}

enum GzipState<R: BufRead> {
    Between(R),
    Member(Box<flate2::bufread::GzDecoder<R>>),
    Done,
    Failed,
}

impl<R: BufRead> GzipMembers<R> {
    fn new(inner: R) -> Self {
        GzipMembers { state: GzipState::Between(inner), members: 0 }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match std::mem::replace(&mut self.state, GzipState::Failed) {
                GzipState::Member(mut member) => {
                    let n = member.read(buf)?;
                    if n > 0 || buf.is_empty() {
                        self.state = GzipState::Member(member);
                        return Ok(n);
                    }
                    self.state = GzipState::Between(member.into_inner());
                }
                GzipState::Between(mut inner) => {
                    let next = inner.fill_buf()?;
                    if next.is_empty() {
                        self.state = GzipState::Done;
                        return Ok(0);
                    }
                    if next[0] == 0 && self.members > 0 {
                        loop {
                            let padding = inner.fill_buf()?;
                            if padding.is_empty() {
                                break;
                            }
                            if padding.iter().any(|&b| b != 0) {
                                return Err(io::Error::new(
                                    io::ErrorKind::InvalidData,
                                    "data after the zero padding that follows the last gzip member",
                                ));
                            }
                            let n = padding.len();
                            inner.consume(n);
                        }
                        self.state = GzipState::Done;
                        return Ok(0);
                    }
                    self.members += 1;
                    self.state = GzipState::Member(Box::new(flate2::bufread::GzDecoder::new(inner)));
                }
                GzipState::Done => {
                    self.state = GzipState::Done;
                    return Ok(0);
                }
                GzipState::Failed => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "the gzip stream failed earlier"));
                }
            }
        }
    }
}

fn read_error(path: &str, e: io::Error) -> DedupeError {
    io_err(path, io::Error::new(e.kind(), format!("cannot read or decompress: {e}")))
}

/// The running fingerprint of a file's bytes as stored, fed by [`HashingFile`] as the decoder reads them.
#[derive(Default)]
struct ContentHash {
    hasher: Xxh3Default,
    bytes: u64,
}

/// A file that hashes every byte read from it into a shared [`ContentHash`] (the decoder owns the file, the
/// chunk reader keeps the hash).
struct HashingFile {
    file: File,
    hash: Arc<Mutex<ContentHash>>,
}

impl Read for HashingFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        let mut hash = self.hash.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        hash.hasher.update(&buf[..n]);
        hash.bytes += n as u64;
        Ok(n)
    }
}

/// The content fingerprint of the file at `path`: xxh3-128 (seed 0) of its bytes as stored (compressed).
/// [`Deduper::run`] reports the same value for every file it completes ([`RunStats::fingerprints`]).
pub fn fingerprint_file(path: &str) -> Result<u128> {
    let mut file = File::open(path).map_err(|e| io_err(path, e))?;
    let mut hash = ContentHash::default();
    hash_rest(&mut file, &mut hash).map_err(|e| io_err(path, e))?;
    Ok(hash.hasher.digest128())
}

/// Feeds the rest of `reader` into `hash`.
fn hash_rest<R: Read>(reader: &mut R, hash: &mut ContentHash) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_READ];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                hash.hasher.update(&buf[..n]);
                hash.bytes += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// An input file being read.
struct OpenInput {
    file: usize,
    reader: Box<dyn Read + Send>,
    hash: Arc<Mutex<ContentHash>>,
    size: u64,
    /// The start of a line read after the previous chunk's last newline.
    carry: Vec<u8>,
    next_line: u64,
}

/// Cuts the files of a run, in order, into [`RawChunk`]s of whole lines. After an error it returns nothing.
struct ChunkReader<'a> {
    jobs: &'a [FileJob],
    budget: usize,
    next_file: usize,
    current: Option<OpenInput>,
    failed: bool,
    /// Buffers of chunks already processed, reused for the next ones (no fresh pages to fault in and clear).
    spare: Vec<Vec<u8>>,
}

impl<'a> ChunkReader<'a> {
    fn new(jobs: &'a [FileJob], budget: usize) -> Self {
        ChunkReader { jobs, budget: budget.max(1), next_file: 0, current: None, failed: false, spare: Vec::new() }
    }

    fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.spare.len() < 2 {
            buffer.clear();
            self.spare.push(buffer);
        }
    }

    fn next_chunk(&mut self) -> Option<Result<RawChunk>> {
        if self.failed {
            return None;
        }
        let result = self.read_chunk().transpose();
        if matches!(result, Some(Err(_))) {
            self.failed = true;
            self.current = None;
        }
        result
    }

    fn open(&self, file: usize) -> Result<OpenInput> {
        let path = &self.jobs[file].input;
        let handle = File::open(path).map_err(|e| io_err(path, e))?;
        let size = handle.metadata().map_err(|e| io_err(path, e))?.len();
        let hash = Arc::new(Mutex::new(ContentHash::default()));
        let hashing = HashingFile { file: handle, hash: Arc::clone(&hash) };
        let reader = decoder(path, BufReader::with_capacity(1 << 20, hashing)).map_err(|e| read_error(path, e))?;
        Ok(OpenInput { file, reader, hash, size, carry: Vec::new(), next_line: 1 })
    }

    /// The fingerprint of a file whose content was read to the end: the bytes the decoder consumed plus any it
    /// left after its last frame (read here), so it is always the hash of the whole file.
    fn finish_hash(path: &str, hash: &Mutex<ContentHash>, size: u64) -> Result<u128> {
        let mut hash = hash.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if hash.bytes < size {
            let mut file = File::open(path).map_err(|e| io_err(path, e))?;
            file.seek(SeekFrom::Start(hash.bytes)).map_err(|e| io_err(path, e))?;
            hash_rest(&mut file, &mut hash).map_err(|e| io_err(path, e))?;
        }
        Ok(hash.hasher.digest128())
    }

    fn read_chunk(&mut self) -> Result<Option<RawChunk>> {
        if self.current.is_none() {
            if self.next_file >= self.jobs.len() {
                return Ok(None);
            }
            self.current = Some(self.open(self.next_file)?);
            self.next_file += 1;
        }
        let budget = self.budget;
        let mut data = self.spare.pop().unwrap_or_default();
        let Some(input) = self.current.as_mut() else { return Ok(None) };
        let path = &self.jobs[input.file].input;
        data.extend_from_slice(&input.carry);
        input.carry.clear();
        data.reserve(budget.min(MAX_READ * 64).saturating_sub(data.len()));
        let mut last_newline = memchr::memrchr(b'\n', &data);
        let step = budget.clamp(1, MAX_READ);
        let eof = loop {
            if data.len() >= budget && last_newline.is_some() {
                break false;
            }
            let start = data.len();
            data.resize(start + step, 0);
            let n = loop {
                match input.reader.read(&mut data[start..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(read_error(path, e)),
                }
            };
            data.truncate(start + n);
            if n == 0 {
                break true;
            }
            if let Some(pos) = memchr::memrchr(b'\n', &data[start..]) {
                last_newline = Some(start + pos);
            }
        };
        let first_line = input.next_line;
        let (file, size) = (input.file, input.size);
        let mut fingerprint = 0;
        if !eof {
            let cut = last_newline.map_or(data.len(), |p| p + 1);
            input.carry.extend_from_slice(&data[cut..]);
            data.truncate(cut);
            input.next_line += memchr::memchr_iter(b'\n', &data).count() as u64;
        } else {
            fingerprint = Self::finish_hash(path, &input.hash, size)?;
            self.current = None;
        }
        Ok(Some(RawChunk { file, data, first_line, last: eof, input_bytes: size, fingerprint }))
    }
}

/// A file written under a hidden temporary name next to its target, compressed by the target's extension,
/// and renamed into place by [`AtomicWriter::finish`]; dropped unfinished, the temporary file is removed.
pub(crate) struct AtomicWriter {
    path: String,
    temp: PathBuf,
    target: PathBuf,
    encoder: Option<Encoder>,
    /// Bytes not yet handed to the encoder (less than [`FEED_BYTES`] after each write).
    pending: Vec<u8>,
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
    Plain(BufWriter<File>),
}

impl AtomicWriter {
    pub(crate) fn create(path: &str) -> Result<Self> {
        let target = Path::new(path);
        let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| io_err(path, e))?;
        let temp = crate::tempname::temp_path(target);
        let writer = BufWriter::with_capacity(1 << 20, File::create(&temp).map_err(|e| io_err(path, e))?);
        let mut out = AtomicWriter {
            path: path.to_string(),
            temp,
            target: target.to_path_buf(),
            encoder: None,
            pending: Vec::new(),
        };
        out.encoder = Some(match compression_of(path) {
            // mtime 0 and no file name: the same content gives the same bytes on every run.
            Compression::Gzip => {
                Encoder::Gzip(flate2::GzBuilder::new().mtime(0).write(writer, flate2::Compression::new(1)))
            }
            Compression::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(writer, 3).map_err(|e| io_err(path, e))?)
            }
            Compression::Plain => Encoder::Plain(writer),
        });
        Ok(out)
    }

    /// Appends `data` to the file. The compressor sees the same pieces however the content is split among
    /// calls, so the compressed bytes depend only on the content.
    pub(crate) fn write_all(&mut self, mut data: &[u8]) -> Result<()> {
        if self.pending.is_empty() {
            while data.len() >= FEED_BYTES {
                self.feed(&data[..FEED_BYTES])?;
                data = &data[FEED_BYTES..];
            }
            self.pending.extend_from_slice(data);
            return Ok(());
        }
        let take = (FEED_BYTES - self.pending.len()).min(data.len());
        self.pending.extend_from_slice(&data[..take]);
        if self.pending.len() == FEED_BYTES {
            let piece = std::mem::take(&mut self.pending);
            self.feed(&piece)?;
            self.pending = piece;
            self.pending.clear();
            return self.write_all(&data[take..]);
        }
        Ok(())
    }

    fn feed(&mut self, piece: &[u8]) -> Result<()> {
        let result = match &mut self.encoder {
            Some(Encoder::Gzip(enc)) => enc.write_all(piece),
            Some(Encoder::Zstd(enc)) => enc.write_all(piece),
            Some(Encoder::Plain(w)) => w.write_all(piece),
            None => Ok(()),
        };
        result.map_err(|e| io_err(&self.path, e))
    }

    /// Finishes the compressed stream and renames the file into place.
    pub(crate) fn finish(mut self) -> Result<()> {
        let rest = std::mem::take(&mut self.pending);
        self.feed(&rest)?;
        let result = (|| -> io::Result<()> {
            let writer = match self.encoder.take() {
                Some(Encoder::Gzip(enc)) => enc.finish()?,
                Some(Encoder::Zstd(enc)) => enc.finish()?,
                Some(Encoder::Plain(w)) => w,
                None => return Ok(()),
            };
            // No fsync: the rename already guarantees that a killed process leaves no partial file, and the
            // filter save (which is synced) records the files a resumed run skips; files after it are redone.
            writer.into_inner().map_err(|e| e.into_error())?;
            fs::rename(&self.temp, &self.target)
        })();
        result.map_err(|e| io_err(&self.path, e))
    }
}

impl Drop for AtomicWriter {
    fn drop(&mut self) {
        // After a successful rename the temporary name no longer exists and this is a no-op.
        let _ = fs::remove_file(&self.temp);
    }
}

/// Writes `body` (compressed by the file's extension) under a hidden temporary name, then renames it.
pub fn write_atomic(path: &str, body: &[u8]) -> Result<()> {
    let mut out = AtomicWriter::create(path)?;
    out.write_all(body)?;
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn gunzip(raw: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        GzipMembers::new(raw).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn gzip_reads_like_gzip_d() {
        assert_eq!(gunzip(b"").unwrap(), b"");
        let mut two = gzip(b"one\n");
        two.extend(gzip(b"two\n"));
        assert_eq!(gunzip(&two).unwrap(), b"one\ntwo\n");
        let mut padded = two.clone();
        padded.extend([0u8; 5000]);
        assert_eq!(gunzip(&padded).unwrap(), b"one\ntwo\n");
        let mut garbage = padded.clone();
        garbage.push(7);
        assert!(gunzip(&garbage).is_err());
        assert!(gunzip(&[0u8; 64]).is_err(), "zeros alone are not a gzip file");
        assert!(gunzip(&two[..two.len() - 3]).is_err(), "a truncated member is an error");
        let mut out = Vec::new();
        for empty in ["x.jsonl.gz", "x.jsonl.zst", "x.jsonl"] {
            decompress_into(empty, b"", &mut out).unwrap();
            assert!(out.is_empty(), "{empty}");
        }
    }
}
