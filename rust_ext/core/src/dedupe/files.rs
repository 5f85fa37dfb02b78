// Longer than 400 lines because its unit tests (the code above them is about 300 lines).
//! Reading and writing the files of a dedupe run: compression by extension (gzip members as `gzip -d` reads
//! them, zstd, plain), the content fingerprint of an input as it is read, and the atomic, compressing writer
//! of the attribute files.
use std::fs::{self, File};
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use xxhash_rust::xxh3::Xxh3Default;

use super::{io_err, DedupeError, Result};

/// Largest single read from a decompressor.
pub(crate) const MAX_READ: usize = 1 << 20;
/// Output is handed to the compressor in pieces of exactly this size (a multiple of 32 KiB, the piece size
/// that makes the gzip stream independent of how the output was cut into chunks) and a final remainder.
const FEED_BYTES: usize = 1 << 20;

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

pub(crate) fn read_error(path: &str, e: io::Error) -> DedupeError {
    io_err(path, io::Error::new(e.kind(), format!("cannot read or decompress: {e}")))
}

/// The running fingerprint of a file's bytes as stored, fed by [`HashingFile`] as the decoder reads them.
#[derive(Default)]
pub(crate) struct ContentHash {
    pub(crate) hasher: Xxh3Default,
    pub(crate) bytes: u64,
}

/// A file that hashes every byte read from it into a shared [`ContentHash`] (the decoder owns the file, the
/// chunk reader keeps the hash).
pub(crate) struct HashingFile {
    pub(crate) file: File,
    pub(crate) hash: Arc<Mutex<ContentHash>>,
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
pub(crate) fn hash_rest<R: Read>(reader: &mut R, hash: &mut ContentHash) -> io::Result<()> {
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
            // Synced before the rename (as the Python writer does): the rename alone keeps a killed process
            // from leaving a partial file, but after a power loss or an OS crash a renamed file whose data was
            // never written out can be empty, while the filter save (also synced) records it as done, so a
            // resumed run would skip it.
            writer.into_inner().map_err(|e| e.into_error())?.sync_all()?;
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

    #[test]
    fn compression_follows_the_last_extension() {
        assert_eq!(compression_of("a.jsonl.gz"), Compression::Gzip);
        assert_eq!(compression_of("a.jsonl.zst"), Compression::Zstd);
        assert_eq!(compression_of("a.zstd"), Compression::Zstd);
        assert_eq!(compression_of("a.gz.jsonl"), Compression::Plain);
        assert_eq!(compression_of("a.json"), Compression::Plain);
    }

    #[test]
    fn zstd_and_plain_decompress_and_truncation_fails() {
        let text = b"{\"id\":1}\n{\"id\":2}\n".repeat(100);
        let zst = zstd::encode_all(&text[..], 3).unwrap();
        let mut out = vec![1, 2, 3];
        decompress_into("f.zst", &zst, &mut out).unwrap();
        assert_eq!(out, text);
        decompress_into("f.jsonl", &text, &mut out).unwrap();
        assert_eq!(out, text);
        decompress_into("f.gz", &gzip(&text), &mut out).unwrap();
        assert_eq!(out, text);
        let err = decompress_into("dir/f.zst", &zst[..zst.len() / 2], &mut out).unwrap_err().to_string();
        assert!(err.starts_with("dir/f.zst: cannot read or decompress"), "{err}");
        assert!(decompress_into("f.gz", &text, &mut out).is_err(), "plain text is not gzip");
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    fn read_back(path: &Path) -> Vec<u8> {
        let raw = fs::read(path).unwrap();
        let mut out = Vec::new();
        decompress_into(path.to_str().unwrap(), &raw, &mut out).unwrap();
        out
    }

    #[test]
    fn atomic_writer_renames_into_place_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        // more than one feed piece, written in uneven pieces: the bytes depend only on the content
        let body: Vec<u8> = (0..(FEED_BYTES * 2 + 12345)).map(|i| b"abcdefgh\n"[i % 9]).collect();
        for name in ["a.jsonl.gz", "a.jsonl.zst", "a.jsonl"] {
            let whole = dir.path().join(format!("whole-{name}"));
            write_atomic(whole.to_str().unwrap(), &body).unwrap();
            let pieces = dir.path().join(format!("pieces-{name}"));
            let mut out = AtomicWriter::create(pieces.to_str().unwrap()).unwrap();
            for piece in body.chunks(FEED_BYTES / 3 + 7) {
                out.write_all(piece).unwrap();
            }
            assert!(!pieces.exists(), "not in place before finish");
            out.finish().unwrap();
            assert_eq!(fs::read(&whole).unwrap(), fs::read(&pieces).unwrap(), "{name}");
            assert_eq!(read_back(&pieces), body, "{name}");
        }
        // gzip output has no timestamp: the same content gives the same bytes on every run
        let again = dir.path().join("again.jsonl.gz");
        write_atomic(again.to_str().unwrap(), &body).unwrap();
        assert_eq!(fs::read(&again).unwrap(), fs::read(dir.path().join("whole-a.jsonl.gz")).unwrap());
        // directories are created; no temporary file is left
        let nested = dir.path().join("x/y/z.jsonl");
        write_atomic(nested.to_str().unwrap(), b"z").unwrap();
        assert_eq!(names(&dir.path().join("x/y")), ["z.jsonl"]);
        assert_eq!(names(dir.path()).len(), 8);
    }

    #[test]
    fn atomic_writer_leaves_no_file_on_drop_or_error() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.jsonl.gz");
        let mut out = AtomicWriter::create(target.to_str().unwrap()).unwrap();
        out.write_all(b"partial\n").unwrap();
        assert_eq!(names(dir.path()).len(), 1, "the temporary file exists while writing");
        drop(out);
        assert!(names(dir.path()).is_empty(), "dropped unfinished: nothing left");
        // the rename fails (the target is a non-empty directory): an error naming the file, no temporary left
        let blocked = dir.path().join("blocked.jsonl");
        fs::create_dir_all(blocked.join("inside")).unwrap();
        let err = write_atomic(blocked.to_str().unwrap(), b"x\n").unwrap_err().to_string();
        assert!(err.contains("blocked.jsonl"), "{err}");
        assert_eq!(names(dir.path()), ["blocked.jsonl"]);
        // a parent that is a file: an error before anything is written
        let under_file = dir.path().join("blocked.jsonl/inside");
        fs::remove_dir(&under_file).unwrap();
        fs::write(&under_file, b"").unwrap();
        assert!(write_atomic(under_file.join("a.jsonl").to_str().unwrap(), b"x").is_err());
        assert_eq!(names(&blocked), ["inside"]);
    }

    #[test]
    fn fingerprint_is_xxh3_128_of_the_stored_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl.gz");
        let raw = gzip(b"{\"id\":1}\n");
        fs::write(&path, &raw).unwrap();
        let want = xxhash_rust::xxh3::xxh3_128_with_seed(&raw, 0);
        assert_eq!(fingerprint_file(path.to_str().unwrap()).unwrap(), want);
        let missing = dir.path().join("missing.gz");
        let err = fingerprint_file(missing.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("missing.gz"), "{err}");
    }
}
