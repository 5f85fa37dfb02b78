"""Verification for `tokens`: every shard's array and index checked, and decoded back against its source line."""

from __future__ import annotations

import csv
import io as _pyio
import random
from dataclasses import dataclass, field

import msgspec
import numpy as np

from dolma import io
from dolma.errors import BadInputError, DolmaError
from mixers.tokenizer import Tokenizer

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
