"""Decontamination with MinHash (`dedupe.minhash.eval_documents`): query-only lookups of training documents
against the signatures of an evaluation set.

Unlike the dedupe run, nothing is clustered: the evaluation documents form a read-only index (their band keys and
signatures, built once on the driver; they are never inserted among the training documents and never keepers),
and each training documents file is one `Job` unit that signs its documents, looks their band keys up in the index
and marks a document near an evaluation document with `<attribute_name>: [[0, len(text), similarity]]` (the best
similarity to a candidate: estimated from the signatures, or exact with `verify: exact`). Training documents are
not compared with each other, so each file is independent and the output does not depend on processes or order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from dolma import atomic, io
from dolma import minhash as mh
from dolma.documents import Document, ReadStats, read_records
from dolma.errors import ConfigError
from dolma.executors import make_executor
from dolma.executors.base import CompletionRecord, Job, Progress, Unit, UnitStats
from dolma.minhash_attributes import attribute_row, marked_file_stats, write_id_rows
from dolma.paths import check_outputs

if TYPE_CHECKING:
    from dolma.dedupe.config import DedupeConfig
    from dolma.dedupe_minhash import MinHashDedupe, MinHashPlan

# Training documents signed at once (bounded in characters, so memory does not depend on the file).
BATCH_CHARS = 8 << 20


class EvalIndex:
    """Band keys (sorted, with the evaluation document of each) and signatures of the evaluation documents that
    have shingles; with `verify: exact` also their shingle sets."""

    def __init__(self, keys: np.ndarray, owners: np.ndarray, sigs: np.ndarray, sets: list[frozenset[str]] | None):
        self.keys = keys
        self.owners = owners
        self.sigs = sigs
        self.sets = sets

    @property
    def documents(self) -> int:
        return len(self.sigs)


def _field(key: tuple[str | int, ...]):
    def text_of(doc: Document, raw: bytes) -> str:
        if key == ("text",):
            return doc.text
        return mh.text_at(msgspec.json.decode(raw), key)

    return text_of


_document = msgspec.json.Decoder(Document)


def _decoder(key: tuple[str | int, ...]) -> Callable[[bytes], tuple[Document, str]]:
    """A line -> (document, its text at `key`)."""
    text_of = _field(key)

    def decode(line: bytes) -> tuple[Document, str]:
        doc = _document.decode(line)
        return doc, text_of(doc, line)

    return decode


def _documents(path: str, key: tuple[str | int, ...], skip_bad_lines: bool, stats: ReadStats):
    """(document, text at `key`) of every good line of `path` (None for a skipped bad line)."""
    for _, pair, _ in read_records(path, _decoder(key), skip_bad_lines=skip_bad_lines, stats=stats):
        yield pair


def _sign(params: mh.MinHashParams, texts: list[str], threads: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(signatures (n, num_perm) uint32, whether each text has shingles)."""
    values, counts = mh.signer(params).signatures(texts, threads=threads)
    sigs = np.frombuffer(values, dtype="<u4").reshape(len(texts), params.num_perm)
    return sigs, np.asarray(counts, dtype=np.uint32) > 0


def build_index(
    files: list[str], params: mh.MinHashParams, key: tuple[str | int, ...], skip_bad_lines: bool
) -> EvalIndex:
    texts: list[str] = []
    for path in files:
        for pair in _documents(path, key, skip_bad_lines, ReadStats()):
            if pair is not None:
                texts.append(pair[1])
    sigs, keyed = _sign(params, texts, None)
    sigs = np.ascontiguousarray(sigs[keyed])
    kept = [t for t, k in zip(texts, keyed) if k]
    keys = mh.band_keys(sigs, params) if len(sigs) else np.zeros((0, params.band_rows()[0]), dtype=np.uint64)
    flat = keys.reshape(-1)
    owners = np.repeat(np.arange(len(sigs), dtype=np.int64), keys.shape[1])
    order = np.argsort(flat, kind="stable")
    sets = (
        [frozenset(mh.shingles(t, params.ngram, params.tokenizer)) for t in kept] if params.verify == "exact" else None
    )
    return EvalIndex(flat[order], owners[order], sigs, sets)


class DecontaminateJob(Job):
    """A training documents file -> its attributes file (documents near an evaluation document marked)."""

    def __init__(
        self, index: EvalIndex, params: mh.MinHashParams, key: tuple, attribute: str, run_key: str, skip: bool
    ):
        self.index = index
        self.params = params
        self.key = key
        self.attribute = attribute
        self.run_key = run_key
        self.skip_bad_lines = skip

    def _scores(self, texts: list[str]) -> list[float | None]:
        """The best similarity of each text to an evaluation document that shares a band with it (None: none
        shares one, or, with verification, none reaches the threshold)."""
        index, params = self.index, self.params
        sigs, keyed = _sign(params, texts, 1)
        out: list[float | None] = [None] * len(texts)
        if not index.documents or not keyed.any():
            return out
        keys = mh.band_keys(np.ascontiguousarray(sigs), params)
        lo = np.searchsorted(index.keys, keys, side="left")
        hi = np.searchsorted(index.keys, keys, side="right")
        for row in np.nonzero(keyed & (hi > lo).any(axis=1))[0]:
            candidates = np.unique(np.concatenate([index.owners[a:b] for a, b in zip(lo[row], hi[row]) if b > a]))
            if index.sets is not None:
                mine = frozenset(mh.shingles(texts[row], params.ngram, params.tokenizer))
                best = max(len(mine & index.sets[c]) / len(mine | index.sets[c]) for c in candidates)
            else:
                best = float((index.sigs[candidates] == sigs[row]).mean(axis=1).max())
            if params.verify == "none" or best >= params.threshold:
                out[row] = round(best, 6)
        return out

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        """Signs the file's documents in batches of about BATCH_CHARS characters and writes a row per document."""
        stats = ReadStats()
        ids: list[str] = []
        rows: dict[int, bytes] = {}
        batch: list[tuple[Document, str]] = []
        chars = 0

        def flush() -> None:
            for (doc, _), score in zip(batch, self._scores([text for _, text in batch])):
                if score is not None:
                    rows[len(ids)] = attribute_row(doc.id, {self.attribute: [[0, len(doc.text), score]]})
                ids.append(doc.id)
            batch.clear()

        for pair in _documents(unit.input, self.key, self.skip_bad_lines, stats):
            if pair is None:
                continue
            batch.append(pair)
            chars += len(pair[1])
            if chars >= BATCH_CHARS:
                flush()
                chars = 0
        flush()
        written = write_id_rows(unit.outputs[0], ids, rows)
        assert unit.record is not None
        atomic.write_bytes(unit.record, msgspec.json.encode(CompletionRecord(completed=[self.run_key])))
        progress(stats.documents, stats.bytes)
        return marked_file_stats(stats, written, len(rows), "documents marked (near an evaluation document)")


def run(config: DedupeConfig, plan_: MinHashPlan, section: MinHashDedupe, title: str, started: Any) -> int:
    document_dir = config.dedupe.document_dir
    evals = sorted(set(io.expand_documents(section.eval_documents, "dedupe.minhash.eval_documents")))
    both = sorted(set(evals) & set(plan_.inputs))
    if both:
        raise ConfigError(
            f"dedupe.minhash.eval_documents: {both[0]} is also a training documents file; evaluation documents are "
            "only looked up, never marked"
        )
    check_outputs("dedupe", evals, plan_.outputs, dirs=[plan_.work_dir], document_dir=document_dir)
    params = section.params()
    infos = [io.info(path) for path in evals]
    what = {
        "inputs": plan_.inputs,
        "eval": [[path, info.size, info.mtime_ns, info.etag] for path, info in zip(evals, infos)],
        "fingerprint": mh.signer(params).fingerprint,
        "verify": params.verify,
        "threshold": params.threshold,
        "key": list(plan_.key),
        "attribute": section.attribute_name,
    }
    run_key = hashlib.sha256(msgspec.json.encode(what)).hexdigest()[:32]
    index = build_index(evals, params, plan_.key, config.skip_bad_lines)
    units = [
        Unit(input=p, outputs=(plan_.outputs[i],), record=plan_.record_file(i), needs=(run_key,))
        for i, p in enumerate(plan_.inputs)
    ]
    job = DecontaminateJob(index, params, plan_.key, section.attribute_name, run_key, config.skip_bad_lines)
    summary = make_executor(config, f"minhash decontaminate {plan_.attribute_set}").run(job, units)
    summary.stats.counters["evaluation documents (with shingles)"] = index.documents
    from dolma.dedupe_minhash import finish  # the module that imports this one

    finish(config, plan_, summary, title + " (decontamination)", started)
    return 0 if summary.ok else 1
