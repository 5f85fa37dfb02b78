//! File-level dedupe: read (gzip / zstd / plain), parse and hash in parallel, test-and-insert in input order,
//! write attribute files atomically.
//!
//! [`Deduper::run`] takes files in their stable order. It parses a window of files (one per thread) while
//! the previous window is committed: the commit stage walks documents in file order, then line order, and is
//! the only place that touches the Bloom filter, so the first occurrence of a key is always the same one
//! whatever the thread count. Only two windows of parsed files are held in memory.

use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::config::{DedupeConfig, Mode};
use super::jsonpath::JsonPath;
use super::text::{self, Paragraph};
use super::{io_err, DedupeError, Result};
use crate::bloom::{BloomFilter, Probe};

/// Seed of the hash that assigns keys to partitions (independent of the Bloom filter's seeds).
const PARTITION_SEED: u64 = 0x005E_ED0F_9A27;
/// How many key lookups ahead the commit stage prefetches filter blocks.
const PREFETCH_DISTANCE: usize = 16;
/// Lines parsed per parallel task.
const LINES_PER_TASK: usize = 256;

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
    }
}

/// The score of a marked span: 1 for an exact repeat, the overlap fraction in n-gram mode.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Score {
    One,
    Fraction(f32),
}

#[derive(Debug)]
enum ParaAction {
    /// Not looked up (empty, too short, or in another partition).
    Skip,
    Exact(Probe),
    /// N-gram mode, a paragraph with at most `ngram_length` words: looked up as a whole; with exactly
    /// `ngram_length` words its one n-gram is inserted too.
    Short {
        whole: Probe,
        ngram: Option<Probe>,
    },
    Ngrams(Vec<Probe>),
}

#[derive(Debug)]
struct Para {
    start: u64,
    end: u64,
    bytes: u64,
    action: ParaAction,
}

#[derive(Debug)]
enum Units {
    /// No attribute key in the output (paragraph modes: empty text; documents mode: another partition).
    NoKey,
    /// Documents mode, key too short / empty: an empty list in the output.
    SkippedDoc,
    Doc {
        probe: Probe,
        len: u64,
    },
    Paras(Vec<Para>),
}

/// The marks of one document: `None` writes no attribute key, `Some` a (possibly empty) list.
type DocMarks = Option<Vec<(u64, u64, Score)>>;

#[derive(Debug)]
struct ParsedDoc {
    /// The `id` value as JSON text, copied to the output unchanged.
    id: String,
    text_bytes: u64,
    units: Units,
}

struct ParsedFile {
    docs: Vec<ParsedDoc>,
    bad_lines: u64,
    input_bytes: u64,
}

/// The fields every mode needs, borrowed from the line where possible.
#[derive(Deserialize)]
struct LineFields<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

/// Runs the dedupe of one configuration over files.
pub struct Deduper {
    config: DedupeConfig,
    mode: Mode,
    skip_bad_lines: bool,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Deduper {
    pub fn new(config: DedupeConfig, skip_bad_lines: bool) -> Result<Self> {
        let mode = config.mode()?;
        Ok(Deduper { config, mode, skip_bad_lines })
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Dedupes `jobs` in order against `filter` (only looked up, never changed, when `read_only`) and writes
    /// one attributes file per job. Runs on the current rayon pool.
    ///
    /// Unless `read_only`, the run must be the only writer of `filter` while it runs (it inserts with
    /// [`BloomFilter::insert_probed_exclusive`]); readers elsewhere are fine.
    ///
    /// Returns the statistics of the files completed and, if a file failed, the error: the files before it
    /// are complete (their keys inserted, their attributes written), none after it is.
    pub fn run(&self, filter: &BloomFilter, read_only: bool, jobs: &[FileJob]) -> (RunStats, Option<DedupeError>) {
        let window = rayon::current_num_threads().max(1);
        let mut stats = RunStats::default();
        let mut pending: Option<(&[FileJob], Vec<Result<ParsedFile>>)> = None;
        for chunk in jobs.chunks(window) {
            let ((committed, error), parsed) = rayon::join(
                || match pending.take() {
                    Some((done_jobs, files)) => self.commit_and_write(filter, read_only, done_jobs, files),
                    None => (RunStats::default(), None),
                },
                || chunk.par_iter().map(|job| self.parse_file(filter, job)).collect::<Vec<_>>(),
            );
            stats.add(&committed);
            if error.is_some() {
                return (stats, error);
            }
            pending = Some((chunk, parsed));
        }
        if let Some((done_jobs, files)) = pending {
            let (committed, error) = self.commit_and_write(filter, read_only, done_jobs, files);
            stats.add(&committed);
            return (stats, error);
        }
        (stats, None)
    }

    fn commit_and_write(
        &self,
        filter: &BloomFilter,
        read_only: bool,
        jobs: &[FileJob],
        files: Vec<Result<ParsedFile>>,
    ) -> (RunStats, Option<DedupeError>) {
        let mut stats = RunStats::default();
        let mut outputs = Vec::with_capacity(files.len());
        let mut failure = None;
        for (job, parsed) in jobs.iter().zip(files) {
            match parsed {
                Ok(file) => {
                    let marks = self.commit(filter, read_only, &file, &mut stats);
                    outputs.push((job, file, marks));
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let written: Vec<Result<()>> =
            outputs.par_iter().map(|(job, file, marks)| self.write_attributes(job, file, marks)).collect();
        // Files count as done up to the first one whose attributes could not be written.
        for ((_, file, _), result) in outputs.iter().zip(written) {
            if let Err(e) = result {
                return (stats, Some(e));
            }
            stats.files += 1;
            stats.bad_lines += file.bad_lines;
            stats.input_bytes += file.input_bytes;
        }
        (stats, failure)
    }

    // ------------------------------------------------------------------------------------------------------
    // Parse and hash (parallel)
    // ------------------------------------------------------------------------------------------------------

    fn parse_file(&self, filter: &BloomFilter, job: &FileJob) -> Result<ParsedFile> {
        let (data, input_bytes) = read_input(&job.input)?;
        let mut lines: Vec<(u64, &[u8])> = Vec::new();
        let mut start = 0usize;
        let mut lineno = 0u64;
        for end in memchr::memchr_iter(b'\n', &data).chain(std::iter::once(data.len())) {
            if start > data.len() {
                break;
            }
            lineno += 1;
            let line = &data[start..end];
            start = end + 1;
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            lines.push((lineno, line));
        }
        let chunks: Vec<Result<(Vec<ParsedDoc>, u64)>> = lines
            .par_chunks(LINES_PER_TASK)
            .map(|chunk| {
                let mut docs = Vec::with_capacity(chunk.len());
                let mut bad = 0u64;
                for &(lineno, line) in chunk {
                    match self.parse_line(filter, &job.input, lineno, line) {
                        Ok(doc) => docs.push(doc),
                        Err(e @ DedupeError::BadLine { .. }) if self.skip_bad_lines => {
                            let _ = e;
                            bad += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok((docs, bad))
            })
            .collect();
        let mut docs = Vec::with_capacity(lines.len());
        let mut bad_lines = 0;
        for chunk in chunks {
            let (mut part, bad) = chunk?;
            docs.append(&mut part);
            bad_lines += bad;
        }
        Ok(ParsedFile { docs, bad_lines, input_bytes })
    }

    fn parse_line(&self, filter: &BloomFilter, path: &str, lineno: u64, line: &[u8]) -> Result<ParsedDoc> {
        let bad = |field: &str, reason: String| DedupeError::BadLine {
            path: path.to_string(),
            line: lineno,
            field: field.to_string(),
            reason,
        };
        let line = std::str::from_utf8(line).map_err(|e| bad("(line)", format!("invalid UTF-8 ({e})")))?;
        match &self.mode {
            Mode::Documents { key, .. } if key.single_field() != Some("text") && key.single_field() != Some("id") => {
                let value: Value =
                    serde_json::from_str(line).map_err(|e| bad("(line)", format!("invalid JSON ({e})")))?;
                let obj = value.as_object().ok_or_else(|| bad("(line)", "expected a JSON object".to_string()))?;
                let id = match obj.get("id") {
                    Some(v @ Value::String(_)) => v.to_string(),
                    Some(other) => return Err(bad("id", format!("expected a string, got {}", json_type(other)))),
                    None => return Err(bad("id", "missing required field".to_string())),
                };
                let text_bytes = match obj.get("text") {
                    Some(Value::String(s)) => s.len() as u64,
                    _ => 0,
                };
                let selected = key.select(&value);
                let key_text: Cow<str> = match selected {
                    None | Some(Value::Null) => {
                        return Err(bad(&path_field(key), "missing (the dedupe key must be present)".to_string()))
                    }
                    Some(Value::String(s)) => Cow::Borrowed(s.as_str()),
                    Some(other) => Cow::Owned(other.to_string()),
                };
                let units = self.doc_units(filter, &key_text);
                Ok(ParsedDoc { id, text_bytes, units })
            }
            _ => {
                let fields: LineFields =
                    serde_json::from_str(line).map_err(|e| bad("(line)", format!("invalid JSON ({e})")))?;
                let id = match fields.id {
                    Some(raw) if raw.get().starts_with('"') => raw.get().to_string(),
                    Some(raw) => return Err(bad("id", format!("expected a string, got {}", raw.get()))),
                    None => return Err(bad("id", "missing required field".to_string())),
                };
                let raw_text = fields.text.ok_or_else(|| bad("text", "missing required field".to_string()))?;
                let text: Cow<str> = serde_json::from_str(raw_text.get())
                    .map_err(|_| bad("text", format!("expected a string, got {}", truncate(raw_text.get()))))?;
                let text_bytes = text.len() as u64;
                let units = match &self.mode {
                    Mode::Documents { key, .. } => {
                        if key.single_field() == Some("id") {
                            let id_text: Cow<str> = serde_json::from_str(&id).unwrap_or(Cow::Borrowed(""));
                            self.doc_units(filter, &id_text)
                        } else {
                            self.doc_units(filter, &text)
                        }
                    }
                    Mode::Paragraphs { separator, .. } => self.paragraph_units(filter, &text, separator, None),
                    Mode::Ngrams { separator, n, stride, skip_short, .. } => {
                        self.paragraph_units(filter, &text, separator, Some((*n, *stride, *skip_short)))
                    }
                };
                Ok(ParsedDoc { id, text_bytes, units })
            }
        }
    }

    fn in_partition(&self, key: &[u8]) -> bool {
        let cfg = &self.config;
        cfg.num_partitions <= 1
            || cfg.file_partition
            || crate::xxh3_64(key, PARTITION_SEED) % cfg.num_partitions == cfg.partition_index
    }

    /// Whether a text is too short or empty to be looked up (`skip_empty`, `min_length`, `min_words`).
    fn too_small(&self, text: &str) -> bool {
        let cfg = &self.config;
        (cfg.skip_empty && text::is_blank(text))
            || (cfg.min_length > 0 && text::chars(text) < cfg.min_length)
            || (cfg.min_words > 0 && text::word_count(text) < cfg.min_words)
    }

    fn doc_units(&self, filter: &BloomFilter, key: &str) -> Units {
        if self.too_small(key) {
            Units::SkippedDoc
        } else if !self.in_partition(key.as_bytes()) {
            Units::NoKey
        } else {
            Units::Doc { probe: filter.probe_of(key.as_bytes()), len: text::chars(key) }
        }
    }

    fn paragraph_units(
        &self,
        filter: &BloomFilter,
        text: &str,
        separator: &str,
        ngram: Option<(usize, usize, bool)>,
    ) -> Units {
        if text.is_empty() {
            return Units::NoKey;
        }
        let mut hashes = Vec::new();
        let mut words: Vec<&str> = Vec::new();
        let paras = text::paragraphs(text, separator)
            .into_iter()
            .map(|p: Paragraph| {
                let action = if self.too_small(p.text) || !self.in_partition(p.text.as_bytes()) {
                    ParaAction::Skip
                } else {
                    match ngram {
                        None => ParaAction::Exact(filter.probe_of(p.text.as_bytes())),
                        Some((n, stride, skip_short)) => {
                            words.clear();
                            text::words_into(p.text, &mut words);
                            let ngram_probe = |hashes: &[u8], j: usize| {
                                filter.probe_of_in(&hashes[8 * j..8 * (j + n)], text::NGRAM_DOMAIN)
                            };
                            // Like the reference: with skip_short_paragraphs, fewer than n words are skipped and
                            // exactly n words form one n-gram; without it, up to n words are compared whole.
                            if skip_short && words.len() < n {
                                ParaAction::Skip
                            } else if !skip_short && words.len() <= n {
                                let ngram = (words.len() == n).then(|| {
                                    text::word_hashes(&words, &mut hashes);
                                    ngram_probe(&hashes, 0)
                                });
                                ParaAction::Short { whole: filter.probe_of(p.text.as_bytes()), ngram }
                            } else {
                                text::word_hashes(&words, &mut hashes);
                                let probes = text::ngram_windows(words.len(), n, stride)
                                    .map(|j| ngram_probe(&hashes, j))
                                    .collect();
                                ParaAction::Ngrams(probes)
                            }
                        }
                    }
                };
                Para { start: p.start, end: p.end, bytes: p.bytes, action }
            })
            .collect();
        Units::Paras(paras)
    }

    // ------------------------------------------------------------------------------------------------------
    // Commit (sequential, input order)
    // ------------------------------------------------------------------------------------------------------

    /// Looks up (and unless read-only inserts) every key of the file in order; returns the marks per document
    /// (`None`: no attribute key in the output).
    fn commit(&self, filter: &BloomFilter, read_only: bool, file: &ParsedFile, stats: &mut RunStats) -> Vec<DocMarks> {
        let threshold = match &self.mode {
            Mode::Ngrams { threshold, .. } => *threshold,
            _ => 1.0,
        };
        let mut out = Vec::with_capacity(file.docs.len());
        // Prefetch the blocks of the keys PREFETCH_DISTANCE lookups ahead, walking the same sequence of probes
        // as the loop below, so that their cache misses overlap with the work on the current keys.
        let mut ahead = file.docs.iter().flat_map(|doc| unit_probes(&doc.units));
        for probe in ahead.by_ref().take(PREFETCH_DISTANCE) {
            filter.prefetch_probed(probe);
        }
        let mut advance = || {
            if let Some(probe) = ahead.next() {
                filter.prefetch_probed(probe);
            }
        };
        let seen = |probe: Probe, advance: &mut dyn FnMut()| {
            advance();
            if read_only {
                filter.contains_probed(probe)
            } else {
                filter.insert_probed_exclusive(probe)
            }
        };
        for doc in &file.docs {
            stats.documents += 1;
            stats.bytes += doc.text_bytes;
            let marks = match &doc.units {
                Units::NoKey => None,
                Units::SkippedDoc => Some(Vec::new()),
                Units::Doc { probe, len } => {
                    stats.paragraphs += 1;
                    if seen(*probe, &mut advance) {
                        stats.paragraphs_marked += 1;
                        stats.documents_marked += 1;
                        stats.bytes_marked += doc.text_bytes;
                        Some(vec![(0, *len, Score::One)])
                    } else {
                        None
                    }
                }
                Units::Paras(paras) => {
                    let mut marks = Vec::new();
                    for para in paras {
                        let score = match &para.action {
                            ParaAction::Skip => continue,
                            ParaAction::Exact(probe) => seen(*probe, &mut advance).then_some(Score::One),
                            ParaAction::Short { whole, ngram } => {
                                let hit = seen(*whole, &mut advance);
                                if let Some(p) = ngram {
                                    advance();
                                    if !read_only {
                                        filter.insert_probed_exclusive(*p);
                                    }
                                }
                                let score = if hit { 1.0f32 } else { 0.0 };
                                (f64::from(score) >= threshold).then_some(Score::Fraction(score))
                            }
                            ParaAction::Ngrams(probes) => {
                                let hits = probes.iter().filter(|&&p| seen(p, &mut advance)).count();
                                let score = hits as f32 / probes.len() as f32;
                                (f64::from(score) >= threshold).then_some(Score::Fraction(score))
                            }
                        };
                        stats.paragraphs += 1;
                        if let Some(score) = score {
                            stats.paragraphs_marked += 1;
                            stats.bytes_marked += para.bytes;
                            marks.push((para.start, para.end, score));
                        }
                    }
                    if !marks.is_empty() {
                        stats.documents_marked += 1;
                    }
                    Some(marks)
                }
            };
            out.push(marks);
        }
        out
    }

    // ------------------------------------------------------------------------------------------------------
    // Write (parallel over files)
    // ------------------------------------------------------------------------------------------------------

    fn write_attributes(&self, job: &FileJob, file: &ParsedFile, marks: &[DocMarks]) -> Result<()> {
        let attribute = serde_json::to_string(self.mode.attribute()).unwrap_or_else(|_| "\"dedupe\"".to_string());
        let mut body = Vec::with_capacity(file.docs.len() * 48);
        for (doc, doc_marks) in file.docs.iter().zip(marks) {
            push_attribute_line(&mut body, &doc.id, &attribute, doc_marks.as_deref());
        }
        write_atomic(&job.output, &body)
    }
}

/// Appends one attribute line, `{"id":<id>,"attributes":{<attribute>:[[start,end,score],...]}}`, where `id` is
/// the raw JSON of the document's id and `attribute` the JSON-quoted attribute name; no marks -> `{}`.
pub(crate) fn push_attribute_line(body: &mut Vec<u8>, id: &str, attribute: &str, marks: Option<&[(u64, u64, Score)]>) {
    body.extend_from_slice(b"{\"id\":");
    body.extend_from_slice(id.as_bytes());
    body.extend_from_slice(b",\"attributes\":{");
    if let Some(list) = marks {
        body.extend_from_slice(attribute.as_bytes());
        body.extend_from_slice(b":[");
        for (i, (start, end, score)) in list.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            let score = match score {
                Score::One => "1".to_string(),
                Score::Fraction(f) => serde_json::to_string(&f64::from(*f)).unwrap_or_else(|_| "0.0".to_string()),
            };
            body.extend_from_slice(format!("[{start},{end},{score}]").as_bytes());
        }
        body.push(b']');
    }
    body.extend_from_slice(b"}}\n");
}

/// The probes of a document in the order the commit stage looks them up.
fn unit_probes(units: &Units) -> impl Iterator<Item = Probe> + '_ {
    let (single, paras): (Option<Probe>, &[Para]) = match units {
        Units::Doc { probe, .. } => (Some(*probe), &[]),
        Units::Paras(paras) => (None, paras),
        Units::NoKey | Units::SkippedDoc => (None, &[]),
    };
    single.into_iter().chain(paras.iter().flat_map(|para| {
        let (first, second, many): (Option<Probe>, Option<Probe>, &[Probe]) = match &para.action {
            ParaAction::Skip => (None, None, &[]),
            ParaAction::Exact(p) => (Some(*p), None, &[]),
            ParaAction::Short { whole, ngram } => (Some(*whole), *ngram, &[]),
            ParaAction::Ngrams(probes) => (None, None, probes),
        };
        first.into_iter().chain(second).chain(many.iter().copied())
    }))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= 40 {
        s.to_string()
    } else {
        let mut end = 40;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
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

/// The whole decompressed file and its size on disk. A truncated or corrupt file is an error naming it.
fn read_input(path: &str) -> Result<(Vec<u8>, u64)> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let size = file.metadata().map_err(|e| io_err(path, e))?.len();
    let reader = BufReader::with_capacity(1 << 20, file);
    Ok((decode(path, reader, size)?, size))
}

/// Replaces `out` with the decompressed content of `raw`, a whole file's bytes as stored (compression from
/// `path`'s extension); `out`'s allocation is reused.
pub(crate) fn decompress_into(path: &str, raw: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    decode_into(path, raw, raw.len() as u64, out)
}

fn decode<R: std::io::BufRead>(path: &str, reader: R, stored_size: u64) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    decode_into(path, reader, stored_size, &mut data)?;
    Ok(data)
}

fn decode_into<R: std::io::BufRead>(path: &str, reader: R, stored_size: u64, data: &mut Vec<u8>) -> Result<()> {
    let want = usize::try_from(stored_size.saturating_mul(4)).unwrap_or(0).min(1 << 30);
    data.reserve(want.saturating_sub(data.len()));
    let result = match compression_of(path) {
        Compression::Gzip => flate2::bufread::MultiGzDecoder::new(reader).read_to_end(data),
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(reader) {
            Ok(mut dec) => dec.read_to_end(data),
            Err(e) => Err(e),
        },
        Compression::Plain => { reader }.read_to_end(data),
    };
    result.map_err(|e| io_err(path, std::io::Error::new(e.kind(), format!("cannot read or decompress: {e}"))))?;
    Ok(())
}

/// Writes `body` (compressed by the file's extension) under a hidden temporary name, then renames it.
pub fn write_atomic(path: &str, body: &[u8]) -> Result<()> {
    let target = Path::new(path);
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io_err(path, e))?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp =
        dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| -> std::io::Result<()> {
        let file = File::create(&temp)?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        match compression_of(path) {
            Compression::Gzip => {
                // mtime 0 and no file name: the same content gives the same bytes on every run.
                let mut enc = flate2::GzBuilder::new().mtime(0).write(&mut writer, flate2::Compression::new(1));
                enc.write_all(body)?;
                enc.finish()?;
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(&mut writer, 3)?;
                enc.write_all(body)?;
                enc.finish()?;
            }
            Compression::Plain => writer.write_all(body)?,
        }
        // No fsync: the rename already guarantees that a killed process leaves no partial file, and the
        // filter checkpoint (which is synced) is what a resumed run relies on; files after it are redone.
        writer.flush()?;
        drop(writer);
        fs::rename(&temp, target)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(io_err(path, e));
    }
    Ok(())
}
