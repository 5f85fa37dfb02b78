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

This module holds the output's names, which entries of a destination are ours, and the groups; reading,
writing (one group), verifying and the global shuffle are `mixers/tokens_read.py`, `tokens_write.py`,
`tokens_verify.py` and `tokens_shuffle.py`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import re
from typing import Any

import msgspec
import numpy as np

from dolma import atomic, io
from dolma.errors import ConfigError, DolmaError, PathSafetyError
from dolma.executors.summary import is_run_summary
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
        target = atomic.temp_target(name) or (legacy["name"] if legacy else None)
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
        atomic.write_bytes(self.journal, msgspec.json.encode({"outputs": names}))

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
        atomic.write_bytes(self.marker, msgspec.json.encode({**summary, "outputs": self.new}))
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


# The global shuffle's records and scratch space (`mixers/tokens_shuffle.py`).

SHUFFLE_MARKER = ".shuffle.done"
SHUFFLE_JOURNAL = ".shuffle.journal"
UNSHUFFLED_DIR = ".unshuffled"
SCRATCH_DIR = ".shuffle-work"
