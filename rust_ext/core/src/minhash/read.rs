//! Signing a local documents file read in Rust: lines split, numbered and judged by the rules of the toolkit's
//! one reader (`dolma.documents.read_records`, which the Bloom dedupe's reader follows too: the same bad lines),
//! read and parsed in a second thread while the calling thread signs the previous batch, so reading overlaps
//! signing. The band-key file is the one the Python-read path writes. Bad lines are handed back as read, for
//! the caller to explain with the Python reader's own words (`dolma.documents.explain_bad_line`).

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::time::Duration;

use serde_json::Value;

use super::unit::UnitWriter;
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
#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub lines: u64,
    pub bytes: u64,
    pub bad: Vec<BadLine>,
    pub stopped: bool,
}

#[derive(Default)]
struct Batch {
    lines: Vec<u64>,
    texts: Vec<String>,
    ids: Vec<String>,
    lengths: Vec<u64>,
    /// UTF-8 bytes of signed text (a batch's size: counting characters would walk every text once more).
    size: usize,
}

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

/// (text to sign, id, length of `text` in code points) of a line; None for a bad line.
fn parse_line(line: &[u8], key: &[Step]) -> Option<(String, String, u64)> {
    let first = match key.first() {
        Some(Step::Field(name)) => Some(name.as_str()),
        _ => None,
    };
    let good = document::parse(std::str::from_utf8(line).ok()?, first)?;
    let text: Cow<str> = serde_json::from_str(good.text.get()).ok()?;
    let id: String = serde_json::from_str(good.id.get()).ok()?;
    let length = text.chars().count() as u64;
    let signed = match (first, key.len()) {
        (Some("text"), 1) => text.into_owned(),
        (Some(name), _) => match good.get(name).map(|raw| serde_json::from_str::<Value>(raw.get())) {
            Some(Ok(value)) => text_at(&value, &key[1..]).to_string(),
            _ => String::new(),
        },
        (None, _) => String::new(),
    };
    Some((signed, id, length))
}

/// Reads `lines` into batches of about `batch_chars` bytes of signed text, sent to `tx` in order.
fn produce(
    reader: impl Read,
    path: &str,
    key: &[Step],
    skip_bad_lines: bool,
    batch_chars: usize,
    tx: &SyncSender<Result<Batch>>,
) -> ReadOutcome {
    let mut out = ReadOutcome::default();
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut line = Vec::new();
    let mut batch = Batch::default();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(read_err(path, e)));
                return out;
            }
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        out.lines += 1;
        out.bytes += line.len() as u64 + 1;
        if line.is_empty() || is_blank(&line) {
            continue;
        }
        match parse_line(&line, key) {
            Some((text, id, length)) => {
                batch.size += text.len();
                batch.lines.push(out.lines);
                batch.texts.push(text);
                batch.ids.push(id);
                batch.lengths.push(length);
                if batch.size >= batch_chars && tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                    return out;
                }
            }
            None => {
                out.bad.push(BadLine { line: out.lines, bytes: line.clone() });
                if !skip_bad_lines {
                    out.stopped = true;
                    break;
                }
            }
        }
    }
    if !batch.lines.is_empty() && !out.stopped {
        let _ = tx.send(Ok(batch));
    }
    out
}

/// Reads the local documents file `path` (decompressed by its extension) and adds its documents to `writer`:
/// the text at `key` (JSONPath steps; missing or not a string: "") is signed, each document's id and the length
/// of its `text` are recorded. Bad lines are skipped and returned, or, without `skip_bad_lines`, the first one
/// ends the read (`stopped`): the caller raises it and abandons the writer. Batches keep their order, so the
/// band-key file does not depend on `batch_chars` or threads.
///
/// `interrupt` is polled between batches (and while waiting for one): once set, the read is abandoned with
/// [`MinHashError::Interrupted`] and the writer must be aborted. The reading thread is then left to end by
/// itself (it stops at its next batch; a read blocked on a pipe must not hold up a signal's effect).
pub fn sign_documents(
    writer: &mut UnitWriter,
    path: &str,
    key: &[Step],
    skip_bad_lines: bool,
    batch_chars: usize,
    interrupt: &AtomicBool,
) -> Result<ReadOutcome> {
    let file = File::open(path).map_err(|e| io_err(Path::new(path), e))?;
    let reader = decoder(path, BufReader::with_capacity(1 << 20, file)).map_err(|e| read_err(path, e))?;
    let (tx, rx) = sync_channel::<Result<Batch>>(2);
    let (owned_path, owned_key) = (path.to_string(), key.to_vec());
    let producer = std::thread::Builder::new()
        .name("minhash-reader".into())
        .spawn(move || produce(reader, &owned_path, &owned_key, skip_bad_lines, batch_chars.max(1), &tx))
        .map_err(|e| io_err(Path::new(path), e))?;
    let mut failed = None;
    loop {
        if interrupt.load(Ordering::Relaxed) {
            return Err(MinHashError::Interrupted);
        }
        match rx.recv_timeout(POLL) {
            Ok(batch) => {
                if let Err(e) = batch.and_then(|b| writer.add(&b.lines, &b.texts, &b.ids, &b.lengths)) {
                    failed = Some(e);
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(rx); // a producer still sending stops
    let outcome = producer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    match failed {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

/// How often a read waiting for its next batch looks at the interrupt flag.
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
        assert_eq!((signed.as_str(), id.as_str(), length), ("h😀", "é", 2));
        let body = [Step::Field("metadata".into()), Step::Field("body".into())];
        let line = br#"{"id": "1", "text": "abc", "metadata": {"body": "the body"}}"#;
        assert_eq!(parse_line(line, &body).unwrap(), ("the body".into(), "1".into(), 3));
        assert_eq!(parse_line(br#"{"id": "b", "text": 5}"#, &text), None);
        assert_eq!(parse_line(b"{\"id\": \"b\", \"text\": \"\xff\"}", &text), None);
        assert!(is_blank(b" \t\x0b\x0c\r") && !is_blank(b" x"));
    }
}
