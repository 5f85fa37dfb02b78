//! Line reading: the inputs of a run cut into chunks of whole lines (decompressed, fingerprinted as read), the
//! non-blank lines of a chunk with their numbers, and what dedupe reads from a documents line (id, text
//! length, key text) by the rules every reader of the toolkit follows.
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::config::Mode;
use super::document;
use super::files::{decoder, hash_rest, read_error, ContentHash, HashingFile, MAX_READ};
use super::jsonpath::JsonPath;
use super::pipeline::FileJob;
use super::{io_err, DedupeError, Result};

/// Decompressed whole lines of one file, as read.
pub(crate) struct RawChunk {
    /// Index of the file in the run's jobs.
    pub(crate) file: usize,
    pub(crate) data: Vec<u8>,
    /// Line number (1-based) of the first line of `data`.
    pub(crate) first_line: u64,
    /// The file ends with this chunk (every other chunk ends with a newline).
    pub(crate) last: bool,
    /// Size of the file on disk.
    pub(crate) input_bytes: u64,
    /// The file's fingerprint, on its last chunk.
    pub(crate) fingerprint: u128,
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
pub(crate) struct ChunkReader<'a> {
    jobs: &'a [FileJob],
    budget: usize,
    next_file: usize,
    current: Option<OpenInput>,
    failed: bool,
    /// Buffers of chunks already processed, reused for the next ones (no fresh pages to fault in and clear).
    spare: Vec<Vec<u8>>,
}

impl<'a> ChunkReader<'a> {
    pub(crate) fn new(jobs: &'a [FileJob], budget: usize) -> Self {
        ChunkReader { jobs, budget: budget.max(1), next_file: 0, current: None, failed: false, spare: Vec::new() }
    }

    pub(crate) fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.spare.len() < 2 {
            buffer.clear();
            self.spare.push(buffer);
        }
    }

    pub(crate) fn next_chunk(&mut self) -> Option<Result<RawChunk>> {
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

/// The non-blank lines of a chunk with their line numbers.
pub(crate) fn split_lines(chunk: &RawChunk) -> Vec<(u64, &[u8])> {
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

fn path_field(path: &JsonPath) -> String {
    let text = path.to_string();
    text.strip_prefix("$.").map(str::to_string).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::dedupe::files::fingerprint_file;

    fn mode(section: &str) -> Mode {
        crate::dedupe::config::test_config(section).mode().unwrap()
    }

    /// The non-blank lines of a whole text, numbered from 1.
    fn all_lines(text: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if !line.iter().all(|b| b.is_ascii_whitespace()) {
                out.push((i as u64 + 1, line.to_vec()));
            }
        }
        out
    }

    #[test]
    fn chunks_hold_whole_lines_whatever_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let first: Vec<u8> =
            (0..300).flat_map(|i| format!("line {i} {}\n\n  \n", "x".repeat(i % 37)).into_bytes()).collect();
        let second = b"only\nlines without\na final newline".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
        gz.write_all(&first).unwrap();
        let files = [
            ("a.jsonl.gz", gz.finish().unwrap(), &first),
            ("b.jsonl.zst", zstd::encode_all(&second[..], 3).unwrap(), &second),
            ("c.jsonl", Vec::new(), &Vec::new()),
            ("d.jsonl", first.clone(), &first),
        ];
        let mut jobs = Vec::new();
        for (name, raw, _) in &files {
            let path = dir.path().join(name);
            std::fs::write(&path, raw).unwrap();
            jobs.push(FileJob { input: path.to_str().unwrap().to_string(), output: String::new() });
        }
        for budget in [1, 7, 64, 1000, 1 << 20] {
            let mut reader = ChunkReader::new(&jobs, budget);
            let mut got: Vec<Vec<(u64, Vec<u8>)>> = vec![Vec::new(); jobs.len()];
            let mut data: Vec<Vec<u8>> = vec![Vec::new(); jobs.len()];
            let mut finished = Vec::new();
            while let Some(chunk) = reader.next_chunk() {
                let chunk = chunk.unwrap();
                assert!(chunk.last || chunk.data.ends_with(b"\n"), "a chunk ends at a line end");
                got[chunk.file].extend(split_lines(&chunk).into_iter().map(|(n, l)| (n, l.to_vec())));
                data[chunk.file].extend_from_slice(&chunk.data);
                if chunk.last {
                    assert_eq!(chunk.fingerprint, fingerprint_file(&jobs[chunk.file].input).unwrap());
                    assert_eq!(chunk.input_bytes, files[chunk.file].1.len() as u64);
                    finished.push(chunk.file);
                }
                reader.recycle(chunk.data);
            }
            assert_eq!(finished, [0, 1, 2, 3], "every file ends once, in order (budget {budget})");
            for (i, (_, _, text)) in files.iter().enumerate() {
                assert_eq!(&data[i], *text, "budget {budget}");
                assert_eq!(got[i], all_lines(text), "budget {budget}");
            }
        }
    }

    #[test]
    fn a_bad_file_stops_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl.gz");
        std::fs::write(&path, b"not gzip\n").unwrap();
        let jobs = [
            FileJob { input: path.to_str().unwrap().to_string(), output: String::new() },
            FileJob { input: path.to_str().unwrap().to_string(), output: String::new() },
        ];
        let mut reader = ChunkReader::new(&jobs, 64);
        let err = reader.next_chunk().unwrap().err().unwrap().to_string();
        assert!(err.contains("bad.jsonl.gz: cannot read or decompress"), "{err}");
        assert!(reader.next_chunk().is_none(), "nothing after an error");
    }

    #[test]
    fn read_line_gives_id_text_length_and_key() {
        let paras = mode(r#"{"name":"x","paragraphs":{"attribute_name":"p"}}"#);
        let line = br#"{"id":"a\u00e9","text":"h\u00e9\nb","meta":{"u":"k"}}"#;
        let got = read_line(&paras, "f", 3, line).unwrap();
        assert_eq!((got.id.as_str(), got.text_bytes, &*got.key), (r#""a\u00e9""#, 5, "hé\nb"));
        let by_meta = mode(r#"{"name":"x","documents":{"attribute_name":"d","key":"$.meta.u"}}"#);
        assert_eq!(&*read_line(&by_meta, "f", 3, line).unwrap().key, "k");
        let by_id = mode(r#"{"name":"x","documents":{"attribute_name":"d","key":"$.id"}}"#);
        assert_eq!(&*read_line(&by_id, "f", 3, line).unwrap().key, "aé");
        let by_number = mode(r#"{"name":"x","documents":{"attribute_name":"d","key":"$.n"}}"#);
        assert_eq!(&*read_line(&by_number, "f", 3, br#"{"id":"a","text":"","n":1.5}"#).unwrap().key, "1.5");
    }

    #[test]
    fn read_line_errors_name_file_line_and_field() {
        let paras = mode(r#"{"name":"x","paragraphs":{"attribute_name":"p"}}"#);
        let err = read_line(&paras, "dir/f.jsonl", 7, br#"{"id":"a","text":5}"#).err().unwrap();
        assert!(matches!(&err, DedupeError::BadLine { line: 7, field, .. } if field == "text"), "{err}");
        assert!(err.to_string().starts_with("dir/f.jsonl:7: field 'text': "), "{err}");
        let err = read_line(&paras, "f", 1, b"{not json").err().unwrap();
        assert!(matches!(&err, DedupeError::BadLine { field, .. } if field == "(line)"), "{err}");
        let err = read_line(&paras, "f", 1, b"{\"id\":\"a\",\"text\":\"\xff\"}").err().unwrap();
        assert!(err.to_string().contains("invalid UTF-8"), "{err}");
        let by_meta = mode(r#"{"name":"x","documents":{"attribute_name":"d","key":"$.meta.u"}}"#);
        let err = read_line(&by_meta, "f", 2, br#"{"id":"a","text":"","meta":{"u":null}}"#).err().unwrap();
        assert!(matches!(&err, DedupeError::MissingKey { line: 2, field, .. } if field == "meta.u"), "{err}");
    }

    #[test]
    fn split_lines_skips_blank_lines_and_counts_from_the_chunk_start() {
        let chunk = RawChunk {
            file: 0,
            data: b"a\n \t\n\nb\r\nc".to_vec(),
            first_line: 10,
            last: false,
            input_bytes: 0,
            fingerprint: 0,
        };
        // not the file's last chunk: the piece after the last newline belongs to the next chunk
        let lines: Vec<(u64, &[u8])> = split_lines(&chunk);
        assert_eq!(lines, [(10, &b"a"[..]), (13, &b"b\r"[..])]);
        let last = RawChunk { last: true, ..chunk };
        assert_eq!(split_lines(&last).last(), Some(&(14, &b"c"[..])));
    }
}
