//! The skeleton of a scanned file: everything its attributes file needs (ids, line numbers, spans, key
//! counts) without the text or the key hashes, in a compact binary form, so a distributed run writes the
//! attributes without reading and parsing the file again.
use super::{DocKeys, FileScan};
use crate::dedupe::keys::{Para, ParaKind, Units};
use crate::dedupe::{DedupeError, Result};

/// First bytes of an encoded [`FileScan`] (a skeleton); the digit is its format version.
const SKELETON_MAGIC: &[u8; 4] = b"DKS1";

impl FileScan {
    /// The skeleton: everything the attributes file needs (ids, line numbers, spans, slot counts) without
    /// the text or the key hashes, in a compact binary form (LEB128 integers; spans as start and length).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.docs.len() * 32);
        out.extend_from_slice(SKELETON_MAGIC);
        for v in [self.bad_lines, self.bytes, self.docs.len() as u64] {
            put_varint(&mut out, v);
        }
        let mut prev_line = 0u64;
        for doc in &self.docs {
            put_varint(&mut out, doc.line - prev_line);
            prev_line = doc.line;
            put_varint(&mut out, doc.nkeys);
            put_varint(&mut out, doc.id.len() as u64);
            out.extend_from_slice(doc.id.as_bytes());
            match &doc.units {
                Units::NoKey => out.push(0),
                Units::SkippedDoc => out.push(1),
                Units::Doc { len } => {
                    out.push(2);
                    put_varint(&mut out, *len);
                }
                Units::Paras(paras) => {
                    out.push(3);
                    put_varint(&mut out, paras.len() as u64);
                    for para in paras {
                        put_varint(&mut out, para.start);
                        put_varint(&mut out, para.end - para.start);
                        match para.kind {
                            ParaKind::Skip => out.push(0),
                            ParaKind::Exact => out.push(1),
                            ParaKind::Short { ngram: false } => out.push(2),
                            ParaKind::Short { ngram: true } => out.push(3),
                            ParaKind::Ngrams(count) => {
                                out.push(4);
                                put_varint(&mut out, count as u64);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Reads a skeleton written by [`FileScan::encode`] (the key hashes are not in it).
    pub fn decode(blob: &[u8]) -> Result<FileScan> {
        let corrupt = |what: &str| DedupeError::Config(format!("corrupt dedupe skeleton ({what})"));
        let mut r = Cursor { buf: blob, pos: 0 };
        if r.take(SKELETON_MAGIC.len()).ok() != Some(SKELETON_MAGIC.as_slice()) {
            return Err(corrupt("not a skeleton of this version"));
        }
        let (bad_lines, bytes, ndocs) = (r.varint()?, r.varint()?, r.varint()?);
        let mut docs = Vec::with_capacity(usize::try_from(ndocs.min(1 << 24)).unwrap_or(0));
        let mut line = 0u64;
        for _ in 0..ndocs {
            line += r.varint()?;
            let nkeys = r.varint()?;
            let id_len = usize::try_from(r.varint()?).map_err(|_| corrupt("id length"))?;
            let id = std::str::from_utf8(r.take(id_len)?).map_err(|_| corrupt("id"))?.to_string();
            let units = match r.byte()? {
                0 => Units::NoKey,
                1 => Units::SkippedDoc,
                2 => Units::Doc { len: r.varint()? },
                3 => {
                    let n = r.varint()?;
                    let mut paras = Vec::with_capacity(usize::try_from(n.min(1 << 20)).unwrap_or(0));
                    for _ in 0..n {
                        let start = r.varint()?;
                        let end = start.checked_add(r.varint()?).ok_or_else(|| corrupt("span"))?;
                        let kind = match r.byte()? {
                            0 => ParaKind::Skip,
                            1 => ParaKind::Exact,
                            2 => ParaKind::Short { ngram: false },
                            3 => ParaKind::Short { ngram: true },
                            4 => ParaKind::Ngrams(usize::try_from(r.varint()?).map_err(|_| corrupt("count"))?),
                            _ => return Err(corrupt("paragraph kind")),
                        };
                        paras.push(Para { start, end, bytes: 0, kind });
                    }
                    Units::Paras(paras)
                }
                _ => return Err(corrupt("unit kind")),
            };
            docs.push(DocKeys { line, id, units, nkeys });
        }
        if r.pos != blob.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(FileScan { docs, keys: Vec::new(), bad_lines, bytes })
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn truncated() -> DedupeError {
        DedupeError::Config("corrupt dedupe skeleton (truncated)".to_string())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(Self::truncated)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DedupeError::Config("corrupt dedupe skeleton (integer too long)".to_string()))
    }
}
