"""The filter's checkpoint store: the filter file and its manifest, S3 staging, and which inputs are complete.

An input recorded in the filter's manifest (path, size, content fingerprint) is complete and not redone; the
filter is saved every `checkpoint_interval` seconds and before a failing run stops.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from dolma import atomic, io
from dolma._rust import BloomFilter, file_fingerprint
from dolma.dedupe.config import MANIFEST_FORMAT, S3_INFO_THREADS, SATURATED_FACTOR, SATURATED_RATE, DedupeConfig
from dolma.dedupe.plan import Plan, _expected_fp_rate, _requested_rate, filter_params
from dolma.errors import BloomFilterError, ConfigError, DolmaError
from dolma.executors.base import os_error_text

log = logging.getLogger("dolma")


class FilterInput(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """An input whose keys are in the filter, with what tells whether it is still the same file."""

    path: str
    size: int
    # xxh3-128 of the file's bytes as stored (dolma._rust.file_fingerprint), taken while it was deduped.
    fingerprint: str
    # The attributes file written for it (named in errors when it is missing).
    attributes: str
    # Cheap version stamps: when they are unchanged the content is taken as unchanged without rereading it.
    mtime_ns: int | None = None
    etag: str | None = None


class FilterManifest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a filter file records about its contents (stored in the file, under its checksum)."""

    format: str = MANIFEST_FORMAT
    # The settings that decide the keys (Deduper.key_settings: dotted config fields -> values).
    settings: dict[str, Any]
    # bloom_filter.seed the filter was created with.
    seed: int
    # The false-positive rate requested when the filter was created (saturation warnings compare to it).
    false_positive_rate: float
    # Every input whose keys are in the filter, in the order they went in.
    inputs: list[FilterInput] = msgspec.field(default_factory=list)


class _Filter:
    """The filter of a run: its bits, its manifest and where it is saved."""

    def __init__(self, bf: BloomFilter, manifest: FilterManifest, path: str, created: bool, requested_rate: float):
        self.bf = bf
        self.manifest = manifest
        self.path = path
        self.created = created
        self.requested_rate = requested_rate

    @property
    def bound(self) -> float:
        """Estimated false-positive rate above which the run fails (unless allow_saturated)."""
        return max(SATURATED_RATE, SATURATED_FACTOR * self.requested_rate)

    def record(self, inputs: list[FilterInput]) -> None:
        self.manifest.inputs.extend(inputs)

    def save(self, staging: _Staging) -> None:
        self.bf.set_manifest(msgspec.json.encode(self.manifest).decode())
        _save_filter(self.bf, self.path, staging)


class _Staging:
    """Local copies of S3 files: the Rust pipeline reads and writes local paths only."""

    def __init__(self) -> None:
        self.dir: str | None = None

    def path(self, name: str) -> str:
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="dolma-dedupe-")
        return os.path.join(self.dir, name)

    def close(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _load_filter(path: str, staging: _Staging) -> BloomFilter:
    local = path
    if io.is_s3(path):
        local = staging.path("filter.bin")
        atomic.copy(path, local)
    try:
        return BloomFilter.load(local)
    except BloomFilterError as exc:
        raise DolmaError(f"bloom_filter.file {path}: {exc}") from None
    finally:
        if local != path:
            os.remove(local)


def _save_filter(bf: BloomFilter, path: str, staging: _Staging) -> None:
    if io.is_s3(path):
        local = staging.path("filter-out.bin")
        bf.save(local)
        atomic.copy(local, path)
        os.remove(local)
    else:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        bf.save(path)


def _open_filter(config: DedupeConfig, settings: dict[str, Any], staging: _Staging) -> _Filter:
    """The saved filter with its manifest, checked against this configuration, or a new empty one."""
    cfg = config.bloom_filter
    path = io.normalize(cfg.file)
    if (cfg.read_only or not config.ignore_existing) and io.exists(path):
        return _checked_filter(config, settings, _load_filter(path, staging), path)
    size, hashes = filter_params(cfg)
    try:
        bf = BloomFilter(size, hashes, seed=cfg.seed)
    except (BloomFilterError, MemoryError) as exc:
        raise ConfigError(f"bloom_filter: cannot allocate {size:,} bytes: {exc}") from None
    rate = _requested_rate(cfg, size, hashes)
    manifest = FilterManifest(settings=settings, seed=cfg.seed, false_positive_rate=rate)
    return _Filter(bf, manifest, path, created=True, requested_rate=rate)


def _checked_filter(config: DedupeConfig, settings: dict[str, Any], bf: BloomFilter, path: str) -> _Filter:
    cfg = config.bloom_filter
    if not bf.manifest:
        # Built with the BloomFilter API, not by this command: nothing to check it against.
        log.warning(
            "bloom_filter.file %s records no dedupe settings or inputs (it was not written by `dolma dedupe`): its "
            "keys are used as they are, and this run records its own settings and inputs in it",
            path,
        )
        rate = cfg.desired_false_positive_rate or 1e-3
        manifest = FilterManifest(settings=settings, seed=cfg.seed, false_positive_rate=rate)
        return _Filter(bf, manifest, path, created=False, requested_rate=rate)
    try:
        manifest = msgspec.json.decode(bf.manifest, type=FilterManifest)
    except msgspec.ValidationError as exc:
        raise DolmaError(
            f"bloom_filter.file {path}: its manifest is not one this version writes ({exc}); rebuild the filter "
            "with --ignore_existing"
        ) from None
    except msgspec.DecodeError:
        raise DolmaError(
            f"bloom_filter.file {path}: its manifest is not JSON; rebuild it with --ignore_existing"
        ) from None
    differences = _setting_differences(manifest, settings, cfg.seed)
    if differences:
        fix = (
            "build a separate filter with these settings"
            if cfg.read_only
            else "point bloom_filter.file at another filter, or rerun with --ignore_existing to rebuild this one "
            "from empty over the inputs"
        )
        raise ConfigError(
            f"bloom_filter.file {path} was built with a different configuration: {'; '.join(differences)}. Keys "
            f"made with these settings would not match the ones in the filter, so the marks would be wrong. Use "
            f"the filter's settings, or {fix}"
        )
    rate = cfg.desired_false_positive_rate or manifest.false_positive_rate
    return _Filter(bf, manifest, path, created=False, requested_rate=rate)


def _setting_differences(manifest: FilterManifest, settings: dict[str, Any], seed: int) -> list[str]:
    def show(value: Any) -> str:
        return "unset" if value is None else json.dumps(value)

    old = manifest.settings
    names = ["mode"] if old.get("mode") != settings.get("mode") else sorted(set(old) | set(settings))
    out = [
        f"{name} is {show(old.get(name))} in the filter and {show(settings.get(name))} in this configuration"
        for name in names
        if old.get(name) != settings.get(name)
    ]
    if manifest.seed != seed:
        out.append(f"bloom_filter.seed is {manifest.seed} in the filter and {seed} in this configuration")
    return out


# ----------------------------------------------------------------------------------------------------------
# Which inputs are complete
# ----------------------------------------------------------------------------------------------------------


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


def _moved_inputs(plan_: Plan, filt: _Filter, infos: list[io.FileInfo], staging: _Staging) -> dict[int, int]:
    """Inputs not recorded by their path that have the content of a recorded input no longer at its recorded path
    (moved or renamed): input index -> manifest position. Only inputs of a size that a vanished record has are
    fingerprinted (new files of an incremental batch almost never are)."""
    current = set(plan_.inputs)
    by_size: dict[int, list[int]] = {}
    for k, record in enumerate(filt.manifest.inputs):
        if record.path not in current and record.size > 0:
            by_size.setdefault(record.size, []).append(k)
    recorded = {r.path for r in filt.manifest.inputs}
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


def _complete_moved(plan_: Plan, filt: _Filter, infos: list[io.FileInfo], staging: _Staging) -> list[int]:
    """Indices of the moved inputs (`_moved_inputs`) whose attributes are at their new place (moved with them):
    complete, and recorded under their new paths when the filter is next saved. An error for the others: deduping
    them would find every one of their own keys."""
    moved = _moved_inputs(plan_, filt, infos, staging)
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
    moved = _complete_moved(plan_, filt, infos, staging)
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


def _save_reason(exc: BaseException) -> str:
    return os_error_text(exc) if isinstance(exc, OSError) else str(exc)


def _save_during_run(filt: _Filter, staging: _Staging) -> None:
    """A save between batches (the state a killed run resumes from); a failure (full or read-only disk) stops the
    run with what to do."""
    try:
        filt.save(staging)
    except (OSError, BloomFilterError, DolmaError) as exc:
        raise DolmaError(
            f"cannot save the Bloom filter to {filt.path} ({_save_reason(exc)}); free space or make the location "
            "writable and rerun: the run resumes after the files of the last save"
        ) from None


def _save_before_failing(filt: _Filter, staging: _Staging, saved: int, allow_saturated: bool) -> None:
    """On the way out of a failed or stopped run: save the files completed since the last save, if any. A save
    that fails is logged, and the run's own error is the one reported."""
    if len(filt.manifest.inputs) <= saved or not (_rate_now(filt.bf) <= filt.bound or allow_saturated):
        return
    try:
        filt.save(staging)
    except (OSError, BloomFilterError, DolmaError) as exc:
        log.warning(
            "cannot save the Bloom filter to %s (%s): a rerun resumes after the %d file(s) of the last save",
            filt.path,
            _save_reason(exc),
            saved,
        )


def _save_final_filter(filt: _Filter, staging: _Staging, files: int) -> None:
    """Save the filter after every attribute file is written; a failure (full or read-only disk) says what to do."""
    try:
        filt.save(staging)
    except (OSError, BloomFilterError, DolmaError) as exc:
        raise DolmaError(
            f"cannot save the Bloom filter to {filt.path} ({_save_reason(exc)}). The attributes of all {files} "
            "file(s) are written, but the filter that records which inputs it holds is not: free space or make the "
            "location writable (or point bloom_filter.file elsewhere) and rerun the same command (it redoes the "
            "files after the last save)"
        ) from None


def _records(plan_: Plan, indices: list[int], infos: list[io.FileInfo], fingerprints: list[str]) -> list[FilterInput]:
    """Manifest entries for the first len(fingerprints) files of a batch (the ones the Rust run completed)."""
    return [
        FilterInput(
            path=plan_.inputs[i],
            size=infos[i].size,
            fingerprint=fingerprint,
            attributes=plan_.outputs[i],
            mtime_ns=infos[i].mtime_ns,
            etag=infos[i].etag,
        )
        for i, fingerprint in zip(indices, fingerprints)
    ]


def _rate_now(bf: BloomFilter) -> float:
    """Expected false-positive rate for the keys inserted so far (cheap: no pass over the bits)."""
    return _expected_fp_rate(bf.size_in_bytes, bf.num_hashes, bf.inserted)


def _stage(
    plan_: Plan, indices: list[int], staging: _Staging
) -> tuple[list[str], list[str], dict[int, tuple[str, str]]]:
    """Local input/output paths for a batch; S3 inputs are downloaded, S3 outputs uploaded afterwards (`uploads`:
    input index -> (local file, S3 URL))."""
    inputs: list[str] = []
    outputs: list[str] = []
    uploads: dict[int, tuple[str, str]] = {}
    for i in indices:
        src, dst = plan_.inputs[i], plan_.outputs[i]
        if io.is_s3(src):
            local = staging.path(f"in-{i}-{io.basename(src)}")
            atomic.copy(src, local)
            src = local
        if io.is_s3(dst):
            local = staging.path(f"out-{i}-{io.basename(dst)}")
            uploads[i] = (local, dst)
            dst = local
        inputs.append(src)
        outputs.append(dst)
    return inputs, outputs, uploads


def _upload(uploads: dict[int, tuple[str, str]], indices: list[int]) -> None:
    """Uploads the staged S3 outputs of the files `indices` (written by Rust into the staging directory)."""
    for i in indices:
        if i in uploads:
            local, remote = uploads.pop(i)
            atomic.copy(local, remote)
            os.remove(local)
