"""Which inputs of a Bloom filter run are complete: recorded in the filter's manifest under their path and
unchanged with their attributes written, or recorded under another path they were moved from; the inputs that
are recorded but cannot be answered correctly (changed, attributes lost, moved without them) are errors that say
what to do.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

from dolma import atomic, io
from dolma._rust import file_fingerprint
from dolma.dedupe.config import S3_INFO_THREADS
from dolma.dedupe.plan import Plan
from dolma.dedupe.store import FilterInput, _Filter, _Staging
from dolma.errors import DolmaError

log = logging.getLogger("dolma")


def _infos(paths: list[str]) -> list[io.FileInfo]:
    if not any(io.is_s3(p) for p in paths):
        return [io.info(p) for p in paths]
    with ThreadPoolExecutor(S3_INFO_THREADS) as pool:
        return list(pool.map(io.info, paths))


def _exist(paths: list[str]) -> list[bool]:
    if not any(io.is_s3(p) for p in paths):
        return [io.exists(p) for p in paths]
    with ThreadPoolExecutor(S3_INFO_THREADS) as pool:
        return list(pool.map(io.exists, paths))


def _fingerprint(path: str, staging: _Staging) -> str:
    if not io.is_s3(path):
        return file_fingerprint(path)
    local = staging.path("fingerprint-" + io.basename(path))
    atomic.copy(path, local)
    try:
        return file_fingerprint(local)
    finally:
        os.remove(local)


def _unchanged(record: FilterInput, info: io.FileInfo, staging: _Staging) -> bool:
    """Whether an input still has the content whose keys went into the filter."""
    if info.size != record.size:
        return False
    if info.mtime_ns is not None and info.mtime_ns == record.mtime_ns:
        return True
    if info.etag is not None and info.etag == record.etag:
        return True
    return _fingerprint(record.path, staging) == record.fingerprint


def _listing(paths: list[str]) -> str:
    shown = ", ".join(paths[:5])
    return shown + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


def _moved_inputs(
    plan_: Plan, filt: _Filter, recorded: dict[str, FilterInput], infos: list[io.FileInfo], staging: _Staging
) -> dict[int, int]:
    """Inputs not recorded by their path (`recorded`: the manifest's records by path) that have the content of a
    recorded input no longer at its recorded path (moved or renamed): input index -> manifest position. Only inputs
    of a size that a vanished record has are fingerprinted (new files of an incremental batch almost never are)."""
    current = set(plan_.inputs)
    by_size: dict[int, list[int]] = {}
    for k, record in enumerate(filt.manifest.inputs):
        if record.path not in current and record.size > 0:
            by_size.setdefault(record.size, []).append(k)
    candidates = [i for i, path in enumerate(plan_.inputs) if path not in recorded and infos[i].size in by_size]
    if not candidates:
        return {}
    positions = sorted({k for i in candidates for k in by_size[infos[i].size]})
    records = [filt.manifest.inputs[k] for k in positions]
    gone = {k for k, there in zip(positions, _exist([r.path for r in records])) if not there}
    moved: dict[int, int] = {}
    taken: set[int] = set()
    for i in candidates:
        left = [k for k in by_size[infos[i].size] if k in gone and k not in taken]
        if not left:
            continue
        fingerprint = _fingerprint(plan_.inputs[i], staging)
        match = next((k for k in left if filt.manifest.inputs[k].fingerprint == fingerprint), None)
        if match is not None:
            moved[i] = match
            taken.add(match)
    return moved


def _complete_moved(
    plan_: Plan, filt: _Filter, recorded: dict[str, FilterInput], infos: list[io.FileInfo], staging: _Staging
) -> list[int]:
    """Indices of the moved inputs (`_moved_inputs`) whose attributes are at their new place (moved with them):
    complete, and recorded under their new paths when the filter is next saved. An error for the others: deduping
    them would find every one of their own keys."""
    moved = _moved_inputs(plan_, filt, recorded, infos, staging)
    if not moved:
        return []
    there = dict(zip(moved, _exist([plan_.outputs[i] for i in moved])))
    lost = [i for i in moved if not there[i]]
    if lost:
        was = [filt.manifest.inputs[moved[i]].path for i in lost]
        raise DolmaError(
            f"{len(lost)} input file(s) have the same content as files recorded in the Bloom filter {filt.path} at "
            f"paths that no longer exist: {_listing([plan_.inputs[i] for i in lost])} (recorded as {_listing(was)}); "
            "moved or renamed without their attributes. Deduping them again would find every one of their own "
            "keys and mark every document as a repeat. Choose one: move their attribute files along too (to "
            f"{_listing([plan_.outputs[i] for i in lost])}); put the files back where they were; rerun with "
            "--ignore_existing to rebuild the filter from empty and redo every input; point bloom_filter.file at a "
            "new filter; or look them up without inserting (bloom_filter.read_only: true)"
        )
    was = [filt.manifest.inputs[k].path for k in moved.values()]
    for i, k in moved.items():
        record = filt.manifest.inputs[k]
        filt.manifest.inputs[k] = FilterInput(
            path=plan_.inputs[i],
            size=record.size,
            fingerprint=record.fingerprint,
            attributes=plan_.outputs[i],
            mtime_ns=infos[i].mtime_ns,
            etag=infos[i].etag,
        )
    log.info(
        "%d input file(s) recognised by content as moved from %s with their attributes: complete",
        len(moved),
        _listing(was),
    )
    return sorted(moved)


def _complete_inputs(plan_: Plan, filt: _Filter, infos: list[io.FileInfo], staging: _Staging) -> list[int]:
    """Indices of the inputs already in the filter with their attributes written (by path, or by content when
    moved: `_complete_moved`); errors for the inputs that are in the filter but changed or lost their attributes
    (redoing them would mark every key of theirs)."""
    recorded = {r.path: r for r in filt.manifest.inputs}  # before the moved ones are recorded under their new paths
    moved = _complete_moved(plan_, filt, recorded, infos, staging)
    known = [i for i, path in enumerate(plan_.inputs) if path in recorded]
    have_attributes = dict(zip(known, _exist([plan_.outputs[i] for i in known])))
    complete, changed, missing = [], [], []
    for i in known:
        path = plan_.inputs[i]
        if not _unchanged(recorded[path], infos[i], staging):
            changed.append(path)
        elif not have_attributes[i]:
            missing.append(i)
        else:
            complete.append(i)
    if changed:
        raise DolmaError(
            f"{len(changed)} input file(s) changed since their keys went into the Bloom filter {filt.path}: "
            f"{_listing(changed)}. A Bloom filter cannot forget keys, so their old content would still be found. "
            "Restore the original files, or rerun with --ignore_existing to rebuild the filter from empty over the "
            "current inputs (every input is redone)"
        )
    if missing:
        where = [recorded[plan_.inputs[i]].attributes for i in missing]
        raise DolmaError(
            f"{len(missing)} input file(s) are already in the Bloom filter {filt.path} but their attributes are "
            f"missing: {_listing([plan_.inputs[i] for i in missing])} (they were written to {_listing(where)}). "
            "Deduping them again would find every one of their own keys and mark every document as a repeat. "
            "Choose one: restore those attribute files; rerun with --ignore_existing to rebuild the filter from "
            "empty and redo every input; point bloom_filter.file at a new filter; or look them up without "
            "inserting (bloom_filter.read_only: true) to mark what the filter already held"
        )
    return sorted(complete + moved)
