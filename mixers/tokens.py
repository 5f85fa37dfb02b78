"""Tokenize documents into training shards: flat token-id arrays plus a document index, and verify them.

Output (compatible with AllenAI's Dolma toolkit): `part-<group>-<NNNNN>.npy` holding raw little-endian token
ids (no NumPy header: open with `np.memmap(path, dtype, mode="r")`) and `part-<group>-<NNNNN>.csv.gz` with one
row per document, `start,end,id,src,loc` (token offsets into the array, end exclusive; document id; source
file; 1-based line). Each document is `[BOS] ids EOS`; texts are stripped of surrounding whitespace first and
documents that are empty after that are skipped (both as the reference does).

The unit of work is a *group*: the sorted input files cut into consecutive runs of `files_per_group`. Groups
do not depend on the number of processes, and each group is shuffled with a seed derived from (seed, group),
so 1 and N processes write byte-identical shards. Within a group, documents are drawn at random from a ring
of `ring_size` open files and pass through a shuffle window of `shuffle_window` documents (memory is bounded
by the window), so consecutive documents in a shard come from different files in random order.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io as _pyio
import logging
import math
import os
import random
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from dolma import io
from dolma.documents import ReadStats, read_records
from dolma.errors import BadInputError, ConfigError, DolmaError, PathSafetyError
from dolma.executors.summary import is_run_summary
from dolma.paths import claim_dir, remove_claimed_dir
from mixers.tokenizer import Tokenizer

log = logging.getLogger("dolma")

DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
CSV_FLUSH_ROWS = 4096


def part_name(group: int, part: int) -> str:
    return f"part-{group}-{part:05d}"


def done_marker(destination: str, group: int) -> str:
    """Hidden file written after every shard of a group is published: a rerun skips the group."""
    return io.join(destination, f".part-{group}.done")


def journal_path(destination: str, group: int) -> str:
    """Hidden file listing every shard a running group may have created (see `ShardLedger`)."""
    return io.join(destination, f".part-{group}.journal")


# ----------------------------------------------------------------------------------------------------------
# Which files in a destination are ours
# ----------------------------------------------------------------------------------------------------------
#
# `dolma tokens` deletes only shards it can prove it wrote: the ones a marker (`.part-<g>.done`,
# `.shuffle.done`) or a journal (`.part-<g>.journal`, `.shuffle.journal`) in the same directory lists. A
# journal is rewritten before each new shard is opened, so whatever a killed run left is listed somewhere;
# a rerun takes the old names over and removes those it does not write again, after it has written the new
# ones. Anything else in a destination is refused at planning (`foreign_entries`), never removed.

SHARD_NAME = re.compile(r"part-\d+-\d{5}\.(?:npy|csv\.gz)")
GROUP_RECORD = re.compile(r"\.part-\d+\.(?:done|journal)")
# Temporaries named before they carried their host (`.<name>.tmp-<pid>-<8 hex>`): still a tokens writer's.
_LEGACY_TEMP = re.compile(r"\.(?P<name>.+)\.tmp-\d+-[0-9a-f]{8}")


def listed_outputs(path: str) -> set[str]:
    """Shard names a marker or journal lists (empty when it does not exist).

    Markers of earlier versions have no `outputs` list; their names follow from their group and shard count.
    Every name must be a shard name (a marker cannot make tokens delete anything else).
    """
    if not io.exists(path):
        return set()
    try:
        data = msgspec.json.decode(io.read_bytes(path))
    except msgspec.DecodeError:
        data = None
    if not isinstance(data, dict):
        raise DolmaError(f"{path}: unreadable dolma tokens marker; move it away (and the shards it covers) by hand")
    names = data.get("outputs")
    if names is None:
        group, shards = data.get("group", 0), data.get("shards", 0)
        if not isinstance(group, int) or not isinstance(shards, int):
            raise DolmaError(f"{path}: unreadable dolma tokens marker (group {group!r}, shards {shards!r})")
        names = [f"{part_name(group, p)}{ext}" for p in range(shards) for ext in (".npy", ".csv.gz")]
    if not isinstance(names, list) or not all(isinstance(n, str) and SHARD_NAME.fullmatch(n) for n in names):
        raise DolmaError(f"{path}: its 'outputs' must be a list of part-<group>-<NNNNN>.npy / .csv.gz names")
    return set(names)


def _is_record(name: str) -> bool:
    return bool(GROUP_RECORD.fullmatch(name)) or name in (SHUFFLE_MARKER, SHUFFLE_JOURNAL)


def foreign_entries(directory: str) -> list[str]:
    """Entries of a tokens destination that no marker or journal of `dolma tokens` accounts for."""
    entries = io.listdir(directory)
    owned: set[str] = set()
    for name in entries:
        if _is_record(name):
            owned |= listed_outputs(io.join(directory, name))

    def ours(name: str) -> bool:
        if name in owned or _is_record(name) or name in (UNSHUFFLED_DIR, SCRATCH_DIR) or is_run_summary(name):
            return True
        legacy = _LEGACY_TEMP.fullmatch(name)
        target = io.temp_target(name) or (legacy["name"] if legacy else None)
        return target is not None and (bool(SHARD_NAME.fullmatch(target)) or _is_record(target))

    return [name for name in entries if not ours(name)]


def check_destination_owned(directory: str) -> None:
    """Refuse a destination holding files `dolma tokens` did not write (it would mix with or delete them)."""
    foreign = foreign_entries(directory)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise PathSafetyError(
            f"tokens: the destination {directory} holds {shown}, which dolma tokens did not write (no "
            ".part-<group>.done marker or journal there lists it); tokens writes its part-* shards only into a "
            "directory of its own and removes only what it wrote: move those files away or choose an empty "
            "destination"
        )


class ShardLedger:
    """The shard names one writer (a group, or the global shuffle) owns in its directory, kept in a journal.

    `begin` journals the names of the earlier run (its marker, its journal and any `absorbed` records) and
    only then drops the old marker; `opening` adds each new shard's names before the shard is created;
    `finish`, after every shard is written, removes the earlier shards not written again, writes the marker
    listing exactly the new ones and drops the journal.
    """

    def __init__(self, directory: str, marker: str, journal: str, absorbed: list[str] | None = None):
        self.directory = directory
        self.marker = marker
        self.journal = journal
        self.absorbed = list(absorbed or [])
        self.before: set[str] = set()
        for path in (marker, journal, *self.absorbed):
            self.before |= listed_outputs(path)
        self.new: list[str] = []

    def _write_journal(self) -> None:
        names = sorted(self.before | set(self.new))
        io.write_bytes(self.journal, msgspec.json.encode({"outputs": names}))

    def begin(self) -> None:
        self._write_journal()
        io.remove(self.marker)
        for path in self.absorbed:
            io.remove(path)

    def opening(self, names: list[str]) -> None:
        self.new.extend(names)
        self._write_journal()

    def finish(self, summary: dict[str, Any]) -> None:
        for name in sorted(self.before - set(self.new)):
            io.remove(io.join(self.directory, name))
        io.write_bytes(self.marker, msgspec.json.encode({**summary, "outputs": self.new}))
        io.remove(self.journal)


def drop_recorded(directory: str) -> None:
    """Remove every shard the group markers / journals in `directory` list, then those records, then the
    directory itself when nothing else is left (the staged groups of a finished global shuffle)."""
    for name in io.listdir(directory):
        if GROUP_RECORD.fullmatch(name):
            record = io.join(directory, name)
            for shard in sorted(listed_outputs(record)):
                io.remove(io.join(directory, shard))
            io.remove(record)
    if not io.is_s3(directory):
        leftover = io.listdir(directory)
        if leftover:
            log.warning("%s: left in place, it holds files dolma tokens did not record: %s", directory, leftover[:5])
        else:
            with contextlib.suppress(OSError):
                os.rmdir(directory)


def check_dtype(dtype: str, tokenizer: Tokenizer, special_ids: list[int | None]) -> np.dtype:
    """The numpy dtype for `dtype`, refusing one too small for the vocabulary or a special token id."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype: '{dtype}' is not supported (use one of {', '.join(DTYPES)})")
    np_dtype = DTYPES[dtype]
    limit = int(np.iinfo(np_dtype).max) + 1
    largest = max([tokenizer.vocab_size - 1, *[i for i in special_ids if i is not None]])
    if largest >= limit:
        raise ConfigError(
            f"dtype: {dtype} holds ids below {limit:,} but the tokenizer {tokenizer.name_or_path} has a vocabulary "
            f"of {tokenizer.vocab_size:,} (largest id {largest:,}); use uint32"
        )
    return np_dtype


def make_groups(files: list[str], files_per_group: int) -> list[list[str]]:
    """Consecutive runs of the sorted input files (deterministic, independent of the process count)."""
    files = sorted(files)
    size = max(1, files_per_group)
    return [files[i : i + size] for i in range(0, len(files), size)]


def default_files_per_group(n_files: int, ring_size: int, max_groups: int = 16) -> int:
    """At least a ring's worth of files per group (for mixing), and at most `max_groups` groups."""
    return max(1, ring_size, math.ceil(n_files / max_groups))


def group_rng(seed: int, group: int) -> random.Random:
    return random.Random(f"dolma-tokens:{seed}:{group}")


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class SourceDoc:
    text: str
    id: str
    src: str
    loc: int


def _doc_decoder(text_field: str, id_field: str) -> msgspec.json.Decoder:
    """Decode only the two fields we need (others are skipped by the parser, not materialized)."""
    struct = msgspec.defstruct(
        "TokensInput",
        [("text", str), ("id", str | int)],
        rename={"text": text_field, "id": id_field},
    )
    return msgspec.json.Decoder(struct)


def read_source(
    path: str, decoder: msgspec.json.Decoder, fields: tuple[str, str], skip_bad_lines: bool, stats: ReadStats
) -> Iterator[SourceDoc]:
    """Documents of one file with their 1-based line (the one reader: bad lines raise or are counted)."""
    text_field, id_field = fields
    rules = ((text_field, (str,), True), (id_field, (str, int), True))
    for lineno, obj, _ in read_records(path, decoder.decode, rules, skip_bad_lines=skip_bad_lines, stats=stats):
        if obj is not None:
            yield SourceDoc(text=obj.text, id=str(obj.id), src=path, loc=lineno)


def ring_documents(
    files: list[str],
    ring_size: int,
    rng: random.Random,
    reader,
) -> Iterator[SourceDoc]:
    """Draw documents at random from up to `ring_size` open files; a finished file is replaced by the next."""
    pending = list(reversed(files))
    ring: list[Iterator[SourceDoc]] = []
    while pending and len(ring) < max(1, ring_size):
        ring.append(reader(pending.pop()))
    while ring:
        idx = rng.randrange(len(ring))
        try:
            yield next(ring[idx])
        except StopIteration:
            ring[idx] = ring[-1]
            ring.pop()
            if pending:
                ring.append(reader(pending.pop()))


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------


class ShardWriter:
    """Appends documents to `part-<group>-<NNNNN>` shards of at most `max_size` tokens each.

    A document is never split across shards; one longer than `max_size` is written alone in its own shard
    (the reference loops forever on such a document). Both files of a shard are written atomically.
    """

    def __init__(
        self,
        destination: str,
        group: int,
        dtype: np.dtype,
        max_size: int,
        on_open: Callable[[list[str]], None] | None = None,
    ):
        self.destination = destination
        self.on_open = on_open
        self.group = group
        self.dtype = dtype
        self.max_size = max(1, int(max_size))
        self.part = 0
        self.count = 0
        self.shards = 0
        self.oversize = 0
        self.tokens = 0
        self.bytes_written = 0
        self._npy: io.AtomicWriter | None = None
        self._csv: io.AtomicWriter | None = None
        self._rows = _pyio.StringIO()
        self._row_writer = csv.writer(self._rows, lineterminator="\n")
        self._pending_rows = 0

    def paths(self, part: int) -> tuple[str, str]:
        base = io.join(self.destination, part_name(self.group, part))
        return f"{base}.npy", f"{base}.csv.gz"

    def _open(self) -> None:
        npy_path, csv_path = self.paths(self.part)
        if self.on_open is not None:
            self.on_open([io.basename(npy_path), io.basename(csv_path)])
        self._npy = io.AtomicWriter(npy_path, compression=None)
        self._csv = io.AtomicWriter(csv_path, compression="gzip")
        self.count = 0

    def _flush_rows(self) -> None:
        if self._pending_rows and self._csv is not None:
            self._csv.write(self._rows.getvalue().encode("utf-8"))
            self._rows.seek(0)
            self._rows.truncate()
            self._pending_rows = 0

    def _close_part(self) -> None:
        if self._npy is None or self._csv is None:
            return
        self._flush_rows()
        self._npy.close()
        self._csv.close()
        self.bytes_written += self._npy.bytes_written + self._csv.bytes_written
        self._npy = self._csv = None
        self.part += 1
        self.shards += 1

    def add(self, ids: np.ndarray, doc_id: str, src: str, loc: int) -> None:
        n = len(ids)
        if self._npy is not None and self.count + n > self.max_size:
            self._close_part()
        if self._npy is None:
            self._open()
        assert self._npy is not None
        self._npy.write(ids.astype(self.dtype, copy=False).tobytes())
        self._row_writer.writerow((self.count, self.count + n, doc_id, src, loc))
        self._pending_rows += 1
        self.count += n
        self.tokens += n
        if self._pending_rows >= CSV_FLUSH_ROWS:
            self._flush_rows()
        if n > self.max_size:
            self.oversize += 1
            self._close_part()

    def close(self) -> None:
        self._close_part()

    def abort(self) -> None:
        for writer in (self._npy, self._csv):
            if writer is not None:
                writer.abort()
        self._npy = self._csv = None


# ----------------------------------------------------------------------------------------------------------
# One group
# ----------------------------------------------------------------------------------------------------------


@dataclass
class GroupSettings:
    destination: str
    dtype: np.dtype
    max_size: int
    batch_size: int
    ring_size: int
    shuffle_window: int
    seed: int
    bos_token_id: int | None
    eos_token_id: int | None
    segment_before_tokenization: bool
    text_field: str = "text"
    id_field: str = "id"
    skip_bad_lines: bool = False


@dataclass
class GroupStats:
    read: ReadStats = field(default_factory=ReadStats)
    empty: int = 0
    documents_out: int = 0
    tokens: int = 0
    shards: int = 0
    oversize: int = 0
    bytes_out: int = 0


_PARAGRAPH_END = re.compile(r"(?<=\n)")


def encode_documents(tokenizer: Tokenizer, texts: list[str], segment: bool) -> list[list[int]]:
    """Token ids per text; with `segment`, each line (newline kept) is encoded on its own and concatenated."""
    if not segment:
        return tokenizer.encode_batch(texts)
    pieces: list[str] = []
    bounds: list[int] = []
    for text in texts:
        parts = [p for p in _PARAGRAPH_END.split(text) if p]
        pieces.extend(parts)
        bounds.append(len(parts))
    encoded = tokenizer.encode_batch(pieces)
    out: list[list[int]] = []
    pos = 0
    for count in bounds:
        ids: list[int] = []
        for piece in encoded[pos : pos + count]:
            ids.extend(piece)
        out.append(ids)
        pos += count
    return out


def tokenize_group(
    group: int,
    files: list[str],
    tokenizer: Tokenizer,
    settings: GroupSettings,
    progress=None,
    on_open: Callable[[list[str]], None] | None = None,
) -> GroupStats:
    """Tokenize one group of files into its shards (atomically), mixing documents across its files.

    `on_open` is told the names of each shard before it is created (see `ShardLedger`).
    """
    stats = GroupStats()
    rng = group_rng(settings.seed, group)
    decoder = _doc_decoder(settings.text_field, settings.id_field)
    fields = (settings.text_field, settings.id_field)

    def reader(path: str) -> Iterator[SourceDoc]:
        return read_source(path, decoder, fields, settings.skip_bad_lines, stats.read)

    writer = ShardWriter(settings.destination, group, settings.dtype, settings.max_size, on_open)
    window: list[tuple[np.ndarray, str, str, int]] = []
    window_size = max(0, settings.shuffle_window)
    prefix = [settings.bos_token_id] if settings.bos_token_id is not None else []
    suffix = [settings.eos_token_id] if settings.eos_token_id is not None else []
    dtype = settings.dtype
    last_bytes = 0

    def emit(item: tuple[np.ndarray, str, str, int]) -> None:
        writer.add(*item)

    def process(batch: list[SourceDoc]) -> None:
        nonlocal last_bytes
        encoded = encode_documents(tokenizer, [d.text for d in batch], settings.segment_before_tokenization)
        for doc, ids in zip(batch, encoded):
            arr = np.array(prefix + ids + suffix, dtype=dtype) if (prefix or suffix) else np.array(ids, dtype=dtype)
            window.append((arr, doc.id, doc.src, doc.loc))
            while len(window) > window_size:
                j = rng.randrange(len(window))
                window[j], window[-1] = window[-1], window[j]
                emit(window.pop())
        if progress is not None:
            progress(len(batch), stats.read.bytes - last_bytes)
            last_bytes = stats.read.bytes

    try:
        batch: list[SourceDoc] = []
        for doc in ring_documents(files, settings.ring_size, rng, reader):
            text = doc.text.strip()
            if not text:
                stats.empty += 1
                continue
            doc.text = text
            batch.append(doc)
            if len(batch) >= settings.batch_size:
                process(batch)
                batch = []
        if batch:
            process(batch)
        rng.shuffle(window)
        for item in window:
            emit(item)
        window.clear()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    stats.documents_out = stats.read.documents - stats.empty
    stats.tokens = writer.tokens
    stats.shards = writer.shards
    stats.oversize = writer.oversize
    stats.bytes_out = writer.bytes_written
    return stats


# ----------------------------------------------------------------------------------------------------------
# Verification
# ----------------------------------------------------------------------------------------------------------


class IndexRow(msgspec.Struct, frozen=True):
    start: int
    end: int
    id: str
    src: str
    loc: int


@dataclass
class VerifyReport:
    shards: int = 0
    rows: int = 0
    tokens: int = 0
    decoded: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def load_array(path: str, dtype: np.dtype) -> np.ndarray:
    """The token ids of a shard: memory-mapped locally, read into memory from S3."""
    itemsize = dtype.itemsize
    nbytes = io.size(path)
    if nbytes % itemsize:
        raise DolmaError(f"{path}: {nbytes} bytes is not a multiple of the {dtype.name} item size {itemsize}")
    if nbytes == 0:
        return np.zeros(0, dtype=dtype)
    if io.is_s3(path):
        return np.frombuffer(io.read_bytes(path), dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def read_index(path: str) -> list[IndexRow]:
    rows: list[IndexRow] = []
    text = io.read_text(path)
    for n, rec in enumerate(csv.reader(_pyio.StringIO(text)), start=1):
        if len(rec) != 5:
            raise BadInputError(path, n, f"expected 5 columns start,end,id,src,loc, got {len(rec)}")
        try:
            rows.append(IndexRow(int(rec[0]), int(rec[1]), rec[2], rec[3], int(rec[4])))
        except ValueError as exc:
            raise BadInputError(path, n, f"not an integer offset or line: {exc}") from None
    return rows


def shard_paths(destination: str) -> list[tuple[str, str]]:
    """(array, index) pairs of every shard under `destination`, sorted by name."""
    arrays = [p for p in io.glob(io.join(destination, "part-*.npy"))]
    return [(p, p[: -len(".npy")] + ".csv.gz") for p in arrays]


def verify_shards(
    destination: str,
    tokenizer: Tokenizer,
    dtype: np.dtype,
    bos_token_id: int | None,
    eos_token_id: int | None,
    samples: int = 100,
    seed: int = 0,
    text_field: str = "text",
    id_field: str = "id",
) -> VerifyReport:
    """Check every index row against its array, then decode sampled documents and compare with the source.

    `samples` documents per shard are decoded (all of them when `samples` < 0). The expected text is the source
    text stripped of surrounding whitespace and put through the tokenizer's normalizer (NFC for GPT-NeoX).
    """
    report = VerifyReport()
    pairs = shard_paths(destination)
    if not pairs:
        report.problems.append(f"{destination}: no part-*.npy shards found")
        return report
    rng = random.Random(f"dolma-tokens-verify:{seed}")
    wanted: dict[str, dict[int, list[tuple[str, IndexRow, np.ndarray]]]] = {}
    for npy_path, csv_path in pairs:
        report.shards += 1
        if not io.exists(csv_path):
            report.problems.append(f"{npy_path}: index {csv_path} is missing")
            continue
        arr = load_array(npy_path, dtype)
        rows = read_index(csv_path)
        report.rows += len(rows)
        report.tokens += len(arr)
        expected_start = 0
        for n, row in enumerate(rows, start=1):
            where = f"{csv_path}:{n}"
            if row.start != expected_start:
                report.problems.append(f"{where}: starts at {row.start}, previous row ended at {expected_start}")
            if row.end <= row.start:
                report.problems.append(f"{where}: empty or reversed range [{row.start}, {row.end})")
            if row.end > len(arr):
                report.problems.append(f"{where}: ends at {row.end}, past the array ({len(arr)} tokens)")
                break
            if eos_token_id is not None and arr[row.end - 1] != eos_token_id:
                report.problems.append(f"{where}: last token {arr[row.end - 1]} is not EOS {eos_token_id}")
            if bos_token_id is not None and arr[row.start] != bos_token_id:
                report.problems.append(f"{where}: first token {arr[row.start]} is not BOS {bos_token_id}")
            expected_start = row.end
        if rows and expected_start != len(arr):
            report.problems.append(f"{csv_path}: rows cover {expected_start} tokens, the array has {len(arr)}")
        if len(arr) and int(arr.max()) >= tokenizer.vocab_size:
            report.problems.append(f"{npy_path}: id {int(arr.max())} is outside the vocabulary")
        chosen = rows if samples < 0 or samples >= len(rows) else rng.sample(rows, samples)
        for row in chosen:
            wanted.setdefault(row.src, {}).setdefault(row.loc, []).append((npy_path, row, arr))
    for src, by_line in sorted(wanted.items()):
        _check_decoded(src, by_line, tokenizer, bos_token_id, eos_token_id, (text_field, id_field), report)
    return report


def _check_decoded(src, by_line, tokenizer, bos_token_id, eos_token_id, fields, report) -> None:
    text_field, id_field = fields
    if not io.exists(src):
        report.problems.append(f"{src}: source file of {len(by_line)} indexed document(s) not found")
        return
    found: set[int] = set()
    for lineno, line in io.iter_lines(src):
        entries = by_line.get(lineno)
        if not entries:
            continue
        found.add(lineno)
        obj = msgspec.json.decode(line)
        if not isinstance(obj, dict):
            report.problems.append(f"{src}:{lineno}: not a JSON object")
            continue
        source_text = str(obj.get(text_field, ""))
        source_id = str(obj.get(id_field))
        expected = tokenizer.normalize(source_text.strip())
        for npy_path, row, arr in entries:
            start = row.start + (1 if bos_token_id is not None else 0)
            end = row.end - (1 if eos_token_id is not None else 0)
            decoded = tokenizer.decode([int(x) for x in arr[start:end]])
            report.decoded += 1
            if source_id != row.id:
                report.problems.append(f"{src}:{lineno}: id {source_id!r} != index id {row.id!r} ({npy_path})")
            if decoded != expected:
                report.problems.append(
                    f"{npy_path}: document {row.id} ({src}:{lineno}) decodes to different text "
                    f"({len(decoded)} vs {len(expected)} characters)"
                )
    for lineno in sorted(set(by_line) - found):
        report.problems.append(f"{src}: line {lineno} named in the index does not exist")


# ----------------------------------------------------------------------------------------------------------
# Global shuffle
# ----------------------------------------------------------------------------------------------------------
#
# The unit is the document (one index row): a training loader cuts the concatenated shards into fixed-length
# sequences, so after a global document shuffle every sequence mixes documents drawn from the whole corpus,
# and each index row still names one whole document that decodes back to its source line. The shuffle is
# external, in two passes over local scratch files: (1) every document of the group shards is streamed, in
# order, to one of `fanout` bucket files chosen by a seeded generator; (2) bucket by bucket, the order of its
# documents is permuted and they are written to the output shards. A bucket holding more than `window`
# documents is split the same way again (with a seed derived from its position), so at most `window`
# documents' index rows and offsets are in memory at once; their tokens are read through np.memmap.

SHUFFLE_MARKER = ".shuffle.done"
SHUFFLE_JOURNAL = ".shuffle.journal"
UNSHUFFLED_DIR = ".unshuffled"
SCRATCH_DIR = ".shuffle-work"
MAX_FANOUT = 256


@dataclass
class ShuffleStats:
    documents: int = 0
    tokens: int = 0
    shards: int = 0
    buckets: int = 0
    splits: int = 0
    largest_bucket: int = 0
    bytes_out: int = 0


def shuffle_rng(seed: int, path: tuple[int, ...]) -> np.random.Generator:
    """A generator for one step of the shuffle, from the seed and the step's position (bucket path)."""
    key = f"dolma-tokens-global:{seed}:{'.'.join(map(str, path))}".encode()
    return np.random.Generator(np.random.PCG64(int.from_bytes(hashlib.sha256(key).digest()[:16], "little")))


def shuffle_fanout(documents: int, window: int, max_fanout: int = MAX_FANOUT) -> int:
    """Buckets for `documents`: about half a window each (so few need splitting), at most `max_fanout` files."""
    return max(2, min(max(2, max_fanout), math.ceil(2 * documents / max(1, window))))


class _Bucket:
    """Scratch files of one bucket: `.tok` token ids, `.len` int64 lengths, `.idx` CSV rows (id, src, loc)."""

    def __init__(self, base: str, dtype: np.dtype):
        self.base = base
        self.dtype = dtype
        self.documents = 0
        self.tokens = 0
        self._tok: Any = None
        self._len: Any = None
        self._idx: Any = None
        self._rows: Any = None
        self._lengths = array("q")

    def add(self, ids: np.ndarray, doc_id: str, src: str, loc: str) -> None:
        if self._tok is None:  # the files stay open across calls; close() (or remove()) closes them
            self._tok = open(self.base + ".tok", "wb", buffering=1 << 16)  # noqa: SIM115
            self._len = open(self.base + ".len", "wb")  # noqa: SIM115
            self._idx = open(self.base + ".idx", "w", encoding="utf-8", newline="", buffering=1 << 16)  # noqa: SIM115
            self._rows = csv.writer(self._idx, lineterminator="\n")
        self._tok.write(ids.astype(self.dtype, copy=False).tobytes())
        self._rows.writerow((doc_id, src, loc))
        self._lengths.append(len(ids))
        if len(self._lengths) >= 8192:
            self._lengths.tofile(self._len)
            del self._lengths[:]
        self.documents += 1
        self.tokens += len(ids)

    def close(self) -> None:
        if self._tok is not None:
            self._lengths.tofile(self._len)
            del self._lengths[:]
            for fh in (self._tok, self._len, self._idx):
                fh.close()
            self._tok = self._len = self._idx = self._rows = None

    def documents_iter(self) -> Iterator[tuple[np.ndarray, str, str, str]]:
        """The bucket's documents in the order they were added (tokens through a memory map)."""
        if not self.documents:
            return
        lengths = np.fromfile(self.base + ".len", dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        tokens = self.token_map()
        with open(self.base + ".idx", encoding="utf-8", newline="") as fh:
            for i, (doc_id, src, loc) in enumerate(csv.reader(fh)):
                yield tokens[offsets[i] : offsets[i + 1]], doc_id, src, loc

    def token_map(self) -> np.ndarray:
        if not self.tokens:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.base + ".tok", dtype=self.dtype, mode="r")

    def remove(self) -> None:
        self.close()
        for ext in (".tok", ".len", ".idx"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.base + ext)


def _scatter(
    docs: Iterator[tuple[np.ndarray, str, str, str]], base: str, fanout: int, rng: np.random.Generator, dtype
) -> list[_Bucket]:
    """Stream documents, in order, into `fanout` bucket files, each to a bucket drawn by `rng`."""
    buckets = [_Bucket(f"{base}-{b:03d}", dtype) for b in range(fanout)]
    draws = np.zeros(0, dtype=np.int64)
    pos = 0
    try:
        for doc in docs:
            if pos == len(draws):
                draws, pos = rng.integers(0, fanout, size=4096), 0
            buckets[int(draws[pos])].add(*doc)
            pos += 1
    finally:
        for bucket in buckets:
            bucket.close()
    return buckets


def _emit(
    bucket: _Bucket,
    path: tuple[int, ...],
    writer: ShardWriter,
    seed: int,
    window: int,
    max_fanout: int,
    stats: ShuffleStats,
) -> None:
    """Write a bucket's documents in a random order (splitting it first if it holds more than `window`)."""
    n = bucket.documents
    if n > window:
        stats.splits += 1
        fanout = shuffle_fanout(n, window, max_fanout)
        rng = shuffle_rng(seed, (*path, -1))
        parts = _scatter(bucket.documents_iter(), f"{bucket.base}.", fanout, rng, writer.dtype)
        bucket.remove()
        for b, part in enumerate(parts):
            _emit(part, (*path, b), writer, seed, window, max_fanout, stats)
        return
    stats.buckets += 1
    stats.documents += n
    stats.largest_bucket = max(stats.largest_bucket, n)
    if n:
        lengths = np.fromfile(bucket.base + ".len", dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        with open(bucket.base + ".idx", encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        if len(rows) != n or len(lengths) != n:
            raise DolmaError(f"{bucket.base}: scratch bucket is inconsistent ({len(rows)} rows, {n} documents)")
        tokens = bucket.token_map()
        for j in shuffle_rng(seed, path).permutation(n):
            doc_id, src, loc = rows[j]
            writer.add(tokens[offsets[j] : offsets[j + 1]], doc_id, src, loc)
        del tokens
    bucket.remove()


def count_index_rows(path: str) -> int:
    """Rows of a (local) .csv.gz index (newlines inside quoted fields are counted too: only an estimate)."""
    with gzip.open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))


def _shard_documents(
    pairs: list[tuple[str, str]], dtype: np.dtype, scratch: str
) -> Iterator[tuple[np.ndarray, str, str, str]]:
    """Every document of the shards, in shard and row order; S3 shards are copied to `scratch` one at a time."""
    for npy_path, csv_path in pairs:
        local_npy, local_csv = npy_path, csv_path
        if io.is_s3(npy_path):
            local_npy, local_csv = os.path.join(scratch, "shard.npy"), os.path.join(scratch, "shard.csv.gz")
            io.copy(npy_path, local_npy)
            io.copy(csv_path, local_csv)
        arr = load_array(local_npy, dtype)
        with gzip.open(local_csv, "rt", encoding="utf-8", newline="") as fh:
            for n, rec in enumerate(csv.reader(fh), start=1):
                if len(rec) != 5:
                    raise BadInputError(csv_path, n, f"expected 5 columns start,end,id,src,loc, got {len(rec)}")
                start, end = int(rec[0]), int(rec[1])
                if not 0 <= start < end <= len(arr):
                    raise BadInputError(csv_path, n, f"range [{start}, {end}) is outside the array ({len(arr)})")
                yield arr[start:end], rec[2], rec[3], rec[4]
        del arr
        if io.is_s3(npy_path):
            os.remove(local_npy)
            os.remove(local_csv)


def global_shuffle(
    source: str,
    destination: str,
    dtype: np.dtype,
    max_size: int,
    seed: int,
    window: int,
    scratch: str,
    max_fanout: int = MAX_FANOUT,
    on_open: Callable[[list[str]], None] | None = None,
) -> ShuffleStats:
    """Permute the documents of every shard under `source` into `part-0-<NNNNN>` shards under `destination`.

    Seeded and reproducible (the same shards, seed and window give the same bytes); at most `window` documents'
    rows are held at once; scratch files go to the local directory `scratch`, which is claimed (created with
    an owner marker; a killed run's is emptied first) and removed after. Output shards are written atomically
    (S3: multipart uploads completed on close); `on_open` is told each one's names first.
    """
    if window < 1:
        raise ConfigError("global_shuffle.window must be at least 1 document")
    pairs = shard_paths(source)
    remove_claimed_dir(scratch)
    claim_dir(scratch, "tokens")
    stats = ShuffleStats()
    writer = ShardWriter(destination, 0, dtype, max_size, on_open)
    try:
        documents = 0
        for _npy_path, csv_path in pairs:
            if io.is_s3(csv_path):
                local = os.path.join(scratch, "count.csv.gz")
                io.copy(csv_path, local)
                documents += count_index_rows(local)
                os.remove(local)
            else:
                documents += count_index_rows(csv_path)
        fanout = shuffle_fanout(documents, window, max_fanout)
        docs = _shard_documents(pairs, dtype, scratch)
        buckets = _scatter(docs, os.path.join(scratch, "b"), fanout, shuffle_rng(seed, (-1,)), dtype)
        for b, bucket in enumerate(buckets):
            _emit(bucket, (b,), writer, seed, window, max_fanout, stats)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        remove_claimed_dir(scratch)
    stats.tokens = writer.tokens
    stats.shards = writer.shards
    stats.bytes_out = writer.bytes_written
    return stats
