// Longer than 400 lines because of its unit tests (the code above them is about 370 lines).
//! Signing a local documents file read in Rust: lines split, numbered and judged by the rules of the toolkit's
//! one reader (`dolma.documents.read_records`, which the Bloom dedupe's reader follows too: the same bad lines).
//!
//! A thread decompresses the file into chunks of whole lines. Each chunk is a task on the rayon pool, which
//! parses and signs its lines in parallel (texts and ids without JSON escapes are borrowed from the chunk, not
//! copied); a few chunks are in flight at once, so a thread that has finished its share of one chunk goes on
//! with the next instead of waiting for the chunk's slowest document. The calling thread adds the signed
//! chunks to the band-key file in file order, so the file is the one the Python-read path writes whatever the
//! chunk size or thread count. Bad lines are handed back as read, for the caller to explain with the Python
//! reader's own words (`dolma.documents.explain_bad_line`).

use std::any::Any;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::Duration;

use rayon::prelude::*;
use serde_json::value::RawValue;
use serde_json::Value;

use super::config::Signer;
use super::unit::{sign_doc, SignScratch, SignedBatch, UnitWriter};
use super::{format_err, io_err, MinHashError, Result};
use crate::dedupe::document;
use crate::dedupe::files::decoder;
use crate::dedupe::jsonpath::Step;

/// A bad line: its 1-based number and its bytes (without the newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub bytes: Vec<u8>,
}

/// What was read: every line (blank and bad ones too) and its bytes with its newline, as the Python reader
/// counts them; the bad lines skipped, or (`stopped`) the one bad line that ended the read without skipping.
/// Skipped bad lines are kept for the caller to explain up to [`KEPT_BAD_LINES`] lines and [`KEPT_BAD_BYTES`]
/// bytes a file (a damaged file must not fill the memory); the others are only counted (`unkept`), with the
/// number of the first of them.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub lines: u64,
    pub bytes: u64,
    pub bad: Vec<BadLine>,
    pub kept_bytes: usize,
    pub unkept: u64,
    pub first_unkept: u64,
    pub stopped: bool,
}

/// Most skipped bad lines kept (with their bytes) per file, and most bytes of them.
pub const KEPT_BAD_LINES: usize = 1000;
pub const KEPT_BAD_BYTES: usize = 16 << 20;

impl ReadOutcome {
    /// Keeps a skipped bad line within the limits, or counts it.
    fn skipped(&mut self, line: u64, bytes: Vec<u8>) {
        if self.bad.len() < KEPT_BAD_LINES && self.kept_bytes + bytes.len() <= KEPT_BAD_BYTES {
            self.kept_bytes += bytes.len();
            self.bad.push(BadLine { line, bytes });
        } else {
            if self.unkept == 0 {
                self.first_unkept = line;
            }
            self.unkept += 1;
        }
    }
}

/// A document's text to sign, its id and the length of its `text` in code points.
type Parsed<'a> = (Cow<'a, str>, Cow<'a, str>, u64);

/// A read error: damaged or truncated compressed data is a damaged file (`CorruptFileError`, as the Python
/// reader says), anything else an I/O error.
fn read_err(path: &str, e: std::io::Error) -> MinHashError {
    use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
    match e.kind() {
        InvalidData | InvalidInput | UnexpectedEof => format_err(Path::new(path), format!("cannot decompress: {e}")),
        _ => io_err(Path::new(path), e),
    }
}

/// Python's `bytes.isspace()` (ASCII space, \t, \n, \r, \x0b, \x0c): such a line is blank, not a document.
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

/// The string at `key` (steps after the first field) in `value`; "" when missing or not a string, as
/// `dolma.minhash.text_at`.
fn text_at<'v>(value: &'v Value, steps: &[Step]) -> &'v str {
    let mut current = value;
    for step in steps {
        let next = match (step, current) {
            (Step::Field(name), Value::Object(map)) => map.get(name),
            (Step::Index(i), Value::Array(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(v) => current = v,
            None => return "",
        }
    }
    current.as_str().unwrap_or("")
}

/// The value of a JSON string already checked by [`document::parse`]: without a backslash its bytes between
/// the quotes are the value (a checked string holds no control character), so it is borrowed; with escapes it
/// is decoded.
fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(s).ok().map(Cow::Owned)
}

/// (text to sign, id, length of `text` in code points) of a line; None for a bad line.
fn parse_line<'a>(line: &'a [u8], key: &[Step]) -> Option<Parsed<'a>> {
    let first = match key.first() {
        Some(Step::Field(name)) => Some(name.as_str()),
        _ => None,
    };
    let good = document::parse(std::str::from_utf8(line).ok()?, first)?;
    let text = json_str(good.text)?;
    let id = json_str(good.id)?;
    let length = text.chars().count() as u64;
    let signed = match (first, key.len()) {
        (Some("text"), 1) => text,
        (Some(name), _) => match good.get(name).map(|raw| serde_json::from_str::<Value>(raw.get())) {
            Some(Ok(value)) => Cow::Owned(text_at(&value, &key[1..]).to_string()),
            _ => Cow::Borrowed(""),
        },
        (None, _) => Cow::Borrowed(""),
    };
    Some((signed, id, length))
}

/// Decompresses `reader` into chunks of whole lines, sent to `tx` in order: `chunk_bytes` are read (more while
/// no newline was read) and cut after their last newline, the rest starts the next chunk. All chunks but the
/// last end with a newline. The first chunks are smaller (an eighth of `chunk_bytes`, then twice as much each
/// time), so that signing starts soon after the file is opened, not once a whole chunk is inflated.
fn produce(mut reader: impl Read, path: &str, full_chunk_bytes: usize, tx: &SyncSender<Result<Vec<u8>>>) {
    let mut carry: Vec<u8> = Vec::new();
    let mut chunk_bytes = (full_chunk_bytes / 8).max(1);
    loop {
        let mut chunk = Vec::with_capacity(carry.len() + chunk_bytes + (chunk_bytes >> 4));
        chunk.append(&mut carry);
        let (mut eof, mut searched) = (false, 0);
        let end = loop {
            // Up to `chunk_bytes`, then (a line longer than that) `chunk_bytes` more at a time.
            let want = if chunk.len() < chunk_bytes { chunk_bytes - chunk.len() } else { chunk_bytes } as u64;
            match (&mut reader).take(want).read_to_end(&mut chunk) {
                Ok(0) => eof = true,
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(read_err(path, e)));
                    return;
                }
            }
            if eof {
                break chunk.len();
            }
            if chunk.len() >= chunk_bytes {
                match memchr::memrchr(b'\n', &chunk[searched..]) {
                    Some(i) => break searched + i + 1,
                    None => searched = chunk.len(),
                }
            }
        };
        carry.extend_from_slice(&chunk[end..]);
        chunk.truncate(end);
        if !chunk.is_empty() && tx.send(Ok(chunk)).is_err() {
            return;
        }
        if eof {
            return;
        }
        chunk_bytes = (chunk_bytes * 2).min(full_chunk_bytes);
    }
}

/// What a chunk became: its documents signed (line numbers counted from the chunk's first line, 1-based), its
/// bad lines (line in the chunk, bytes of the chunk up to and with that line, the line) and its size.
#[derive(Default)]
struct Prepared {
    lines: u64,
    bytes: u64,
    numbers: Vec<u64>,
    ids: Vec<String>,
    lengths: Vec<u64>,
    signed: SignedBatch,
    bad: Vec<(u64, u64, Vec<u8>)>,
}

/// What parsing and signing made of one line.
enum LineOut {
    Blank,
    Bad,
    Doc(String, u64, super::unit::SignedDoc),
}

/// Splits `chunk` into lines, and parses and signs them in parallel on the current rayon pool.
fn prepare(chunk: &[u8], key: &[Step], signer: &Signer) -> Prepared {
    let mut spans = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', chunk).chain((chunk.last() != Some(&b'\n')).then_some(chunk.len())) {
        spans.push((start, end));
        start = end + 1;
    }
    let n = signer.hasher.num_perm();
    let mut sigs = vec![0u32; spans.len() * n];
    let outs: Vec<LineOut> = sigs
        .par_chunks_mut(n)
        .zip(spans.par_iter())
        .map_init(SignScratch::default, |scratch, (sig, &(start, end))| {
            let bytes = &chunk[start..end];
            if bytes.is_empty() || is_blank(bytes) {
                return LineOut::Blank;
            }
            match parse_line(bytes, key) {
                Some((text, id, length)) => {
                    LineOut::Doc(id.into_owned(), length, sign_doc(signer, &text, scratch, sig))
                }
                None => LineOut::Bad,
            }
        })
        .collect();
    let mut out = Prepared { lines: spans.len() as u64, ..Prepared::default() };
    for (i, (line, (start, end))) in outs.into_iter().zip(spans).enumerate() {
        out.bytes += (end - start) as u64 + 1;
        match line {
            LineOut::Blank => {}
            LineOut::Bad => out.bad.push((i as u64 + 1, out.bytes, chunk[start..end].to_vec())),
            LineOut::Doc(id, length, doc) => {
                out.numbers.push(i as u64 + 1);
                out.ids.push(id);
                out.lengths.push(length);
                out.signed.sigs.extend_from_slice(&sigs[i * n..(i + 1) * n]);
                out.signed.docs.push(doc);
            }
        }
    }
    out
}

/// Adds a prepared chunk (the next one in file order) to `writer` and counts its lines in `out`; false when a
/// bad line stopped the read (nothing of the chunk is added then).
fn commit(writer: &mut UnitWriter, chunk: Prepared, skip_bad_lines: bool, out: &mut ReadOutcome) -> Result<bool> {
    let base = out.lines;
    let mut bad = chunk.bad.into_iter();
    if !skip_bad_lines {
        if let Some((line, bytes, raw)) = bad.next() {
            out.lines += line;
            out.bytes += bytes;
            out.bad.push(BadLine { line: base + line, bytes: raw });
            out.stopped = true;
            return Ok(false);
        }
    }
    for (line, _, bytes) in bad {
        out.skipped(base + line, bytes);
    }
    let numbers: Vec<u64> = chunk.numbers.iter().map(|line| base + line).collect();
    writer.commit(&numbers, &chunk.ids, &chunk.lengths, chunk.signed)?;
    out.lines += chunk.lines;
    out.bytes += chunk.bytes;
    Ok(true)
}
/// Reads the local documents file `path` (decompressed by its extension) and adds its documents to `writer`:
/// the text at `key` (JSONPath steps; missing or not a string: "") is signed, each document's id and the length
/// of its `text` are recorded. Bad lines are skipped and returned, or, without `skip_bad_lines`, the first one
/// ends the read (`stopped`): the caller raises it and abandons the writer. Chunks are about `chunk_bytes` of
/// the decompressed file; they are signed on `pool` (default: rayon's global pool) while this thread adds them
/// in order, so the band-key file depends neither on `chunk_bytes` nor on threads.
///
/// `interrupt` is polled between chunks (and while waiting for one): once set, the read is abandoned with
/// [`MinHashError::Interrupted`] (after the chunks being signed, a few milliseconds of work) and the writer must
/// be aborted. The decompressing thread is then left to end by itself (it stops at its next chunk; a read
/// blocked on a pipe must not hold up a signal's effect).
pub fn sign_documents(
    writer: &mut UnitWriter,
    path: &str,
    key: &[Step],
    skip_bad_lines: bool,
    chunk_bytes: usize,
    pool: Option<&rayon::ThreadPool>,
    interrupt: &AtomicBool,
) -> Result<ReadOutcome> {
    let file = File::open(path).map_err(|e| io_err(Path::new(path), e))?;
    let reader = decoder(path, BufReader::with_capacity(1 << 20, file)).map_err(|e| read_err(path, e))?;
    let (tx, rx) = sync_channel::<Result<Vec<u8>>>(2);
    let owned_path = path.to_string();
    let producer = std::thread::Builder::new()
        .name("minhash-reader".into())
        .spawn(move || produce(reader, &owned_path, chunk_bytes.max(1), &tx))
        .map_err(|e| io_err(Path::new(path), e))?;
    let signer = writer.signer().clone();
    let stop = AtomicBool::new(false);
    let pipeline = Pipeline { key, signer: &signer, stop: &stop, skip_bad_lines, interrupt };
    let result = match pool {
        Some(pool) => pool.in_place_scope(|scope| pipeline.run(scope, writer, &rx)),
        None => rayon::in_place_scope(|scope| pipeline.run(scope, writer, &rx)),
    };
    drop(rx); // a producer still sending stops
    if !matches!(result, Err(MinHashError::Interrupted)) {
        producer.join().unwrap_or_else(|panic| resume_unwind(panic));
    }
    result
}

/// Chunks signed at once (at most): enough that no thread waits for the slowest document of a chunk.
const IN_FLIGHT: u64 = 4;

/// A chunk's result, or the panic that ended its task.
type Outcome = std::result::Result<Prepared, Box<dyn Any + Send>>;

struct Pipeline<'a> {
    key: &'a [Step],
    signer: &'a Signer,
    /// Set when the read ends early: chunk tasks not yet started do nothing.
    stop: &'a AtomicBool,
    skip_bad_lines: bool,
    interrupt: &'a AtomicBool,
}

impl<'a> Pipeline<'a> {
    /// Hands the chunks of `rx` to tasks of `scope` and adds their results to `writer` in order.
    fn run(
        &self,
        scope: &rayon::Scope<'a>,
        writer: &mut UnitWriter,
        rx: &Receiver<Result<Vec<u8>>>,
    ) -> Result<ReadOutcome> {
        let (done_tx, done_rx) = channel::<(u64, Outcome)>();
        let mut out = ReadOutcome::default();
        let mut pending = BTreeMap::new();
        let (mut spawned, mut committed, mut reading) = (0u64, 0u64, true);
        let result = loop {
            if self.interrupt.load(Ordering::Relaxed) {
                break Err(MinHashError::Interrupted);
            }
            pending.extend(done_rx.try_iter());
            match self.commit_ready(&mut pending, &mut committed, writer, &mut out) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
            if !reading && committed == spawned {
                break Ok(());
            }
            if reading && spawned - committed < IN_FLIGHT {
                match rx.recv_timeout(POLL) {
                    Ok(Ok(chunk)) => {
                        self.spawn(scope, chunk, spawned, done_tx.clone());
                        spawned += 1;
                    }
                    Ok(Err(e)) => break Err(e),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => reading = false,
                }
            } else if let Ok((seq, done)) = done_rx.recv_timeout(POLL) {
                pending.insert(seq, done);
            }
        };
        self.stop.store(true, Ordering::Relaxed);
        result.map(|()| out)
    }

    fn spawn(&self, scope: &rayon::Scope<'a>, chunk: Vec<u8>, seq: u64, done: Sender<(u64, Outcome)>) {
        let (key, signer, stop) = (self.key, self.signer, self.stop);
        scope.spawn(move |_| {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let result = catch_unwind(AssertUnwindSafe(|| prepare(&chunk, key, signer)));
            let _ = done.send((seq, result));
        });
    }

    /// Adds the finished chunks that come next in file order; false once a bad line stopped the read.
    fn commit_ready(
        &self,
        pending: &mut BTreeMap<u64, Outcome>,
        committed: &mut u64,
        writer: &mut UnitWriter,
        out: &mut ReadOutcome,
    ) -> Result<bool> {
        while let Some(done) = pending.remove(committed) {
            *committed += 1;
            let chunk = done.unwrap_or_else(|panic| {
                self.stop.store(true, Ordering::Relaxed);
                resume_unwind(panic)
            });
            if !commit(writer, chunk, self.skip_bad_lines, out)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// How often the calling thread, waiting for a chunk or a result, looks at the interrupt flag.
const POLL: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_at_follows_the_python_rule() {
        let v: Value = serde_json::from_str(r#"{"a": [{"b": "x"}, 3], "c": 5}"#).unwrap();
        let steps = [Step::Field("a".into()), Step::Index(0), Step::Field("b".into())];
        assert_eq!(text_at(&v, &steps), "x");
        assert_eq!(text_at(&v, &[Step::Field("c".into())]), "");
        assert_eq!(text_at(&v, &[Step::Field("a".into()), Step::Index(5)]), "");
        assert_eq!(text_at(&v, &[Step::Index(0)]), "");
    }

    #[test]
    fn lines_are_parsed_and_judged() {
        let text = [Step::Field("text".into())];
        let (signed, id, length) = parse_line("{\"id\": \"é\", \"text\": \"h😀\"}".as_bytes(), &text).unwrap();
        assert_eq!((signed.as_ref(), id.as_ref(), length), ("h😀", "é", 2));
        assert!(matches!((signed, id), (Cow::Borrowed(_), Cow::Borrowed(_))));
        let (signed, id, length) = parse_line(br#"{"id": "a\"b", "text": "x\ny\u00e9"}"#, &text).unwrap();
        assert_eq!((signed.as_ref(), id.as_ref(), length), ("x\nyé", "a\"b", 4));
        let body = [Step::Field("metadata".into()), Step::Field("body".into())];
        let line = br#"{"id": "1", "text": "abc", "metadata": {"body": "the body"}}"#;
        assert_eq!(parse_line(line, &body).unwrap(), ("the body".into(), "1".into(), 3));
        assert_eq!(parse_line(br#"{"id": "b", "text": 5}"#, &text), None);
        assert_eq!(parse_line(b"{\"id\": \"b\", \"text\": \"\xff\"}", &text), None);
        assert!(is_blank(b" \t\x0b\x0c\r") && !is_blank(b" x"));
    }

    #[test]
    fn skipped_bad_lines_are_kept_within_the_limits() {
        let mut out = ReadOutcome::default();
        for line in 1..=KEPT_BAD_LINES as u64 + 5 {
            out.skipped(line, vec![b'x'; 3]);
        }
        assert_eq!((out.bad.len(), out.unkept, out.first_unkept), (KEPT_BAD_LINES, 5, KEPT_BAD_LINES as u64 + 1));
        let mut out = ReadOutcome::default();
        out.skipped(1, vec![0; KEPT_BAD_BYTES - 10]);
        out.skipped(2, vec![0; 11]);
        out.skipped(3, vec![0; 10]);
        assert_eq!(out.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [1, 3]);
        assert_eq!((out.unkept, out.first_unkept, out.kept_bytes), (1, 2, KEPT_BAD_BYTES));
    }

    /// The chunks `produce` sends for `data` read with `chunk_bytes`.
    fn chunks(data: &[u8], chunk_bytes: usize) -> Vec<Vec<u8>> {
        let (tx, rx) = sync_channel(1000);
        produce(data, "mem", chunk_bytes, &tx);
        drop(tx);
        rx.into_iter().map(|c| c.unwrap()).collect()
    }

    #[test]
    fn chunks_hold_whole_lines() {
        let data = b"aaaa\nbb\n\nccccccccccc\ndd";
        for size in [1, 2, 3, 5, 8, 100] {
            let got = chunks(data, size);
            assert_eq!(got.concat(), data.to_vec(), "size {size}");
            for chunk in &got[..got.len() - 1] {
                assert!(chunk.ends_with(b"\n"), "size {size}: {chunk:?}");
            }
        }
        assert_eq!(chunks(b"x\ny\n", 100), vec![b"x\ny\n".to_vec()]);
        assert!(chunks(b"", 4).is_empty());
        // The first chunks are smaller: 1, 2, 4, then 8 bytes or more (to the next newline).
        let lines = b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\n";
        let sizes: Vec<usize> = chunks(lines, 8).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 4, 8, 8, 8]);
    }
}
