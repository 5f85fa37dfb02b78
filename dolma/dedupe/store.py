"""The filter's checkpoint store: the filter file and its manifest and S3 staging (which inputs are complete:
`dolma.dedupe.complete`).

An input recorded in the filter's manifest (path, size, content fingerprint) is complete and not redone; the
filter is saved every `checkpoint_interval` seconds and before a failing run stops.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Any

import msgspec

from dolma import atomic, io
from dolma._rust import BloomFilter
from dolma.dedupe.config import MANIFEST_FORMAT, SATURATED_FACTOR, SATURATED_RATE, DedupeConfig
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
