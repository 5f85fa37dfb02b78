"""The local Bloom-filter dedupe run: batches of inputs through the Rust deduper, checkpoints, run summary."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from dolma import io
from dolma._rust import (
    DedupeInputError,
    Deduper,
)
from dolma.dedupe.config import BATCH_MAX_BYTES, LEGACY_CHECKPOINT_SUFFIX, DedupeConfig, DedupeSection, _chunk_bytes
from dolma.dedupe.plan import Plan, _expected_fp_rate, _human, _rust_config, filter_params
from dolma.dedupe.store import (
    _complete_inputs,
    _exist,
    _Filter,
    _infos,
    _open_filter,
    _rate_now,
    _records,
    _save_before_failing,
    _save_during_run,
    _save_final_filter,
    _stage,
    _Staging,
    _upload,
)
from dolma.errors import BadInputError, ConfigError, DolmaError
from dolma.executors import make_executor
from dolma.executors.base import Job, Progress, Summary, Unit, UnitStats, describe_error
from dolma.executors.summary import (
    BloomFilterStats,
    DedupeStats,
    ModeCounts,
    Source,
    finish_run,
)
from dolma.executors.summary import now as summary_now

log = logging.getLogger("dolma")


# ----------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------


def _batches(inputs: list[str], start: int, max_files: int) -> list[tuple[int, int]]:
    """Consecutive [begin, end) ranges of files bounded in count and in compressed bytes."""
    out = []
    begin = start
    while begin < len(inputs):
        end = begin
        total = 0
        while end < len(inputs) and end - begin < max_files:
            size = io.size(inputs[end]) if not io.is_s3(inputs[end]) else 0
            if end > begin and total + size > BATCH_MAX_BYTES:
                break
            total += size
            end += 1
        out.append((begin, end))
        begin = end
    return out


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, DedupeInputError):
        _message, path, line, field, reason = exc.args
        return BadInputError(path, line, reason, None if field == "(line)" else field)
    if isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, PermissionError)):
        return DolmaError(str(exc))
    return exc


class _Stopped(DolmaError):
    """A batch failed: retrying it would insert its keys a second time, so the rule of dolma.executors.base
    must not retry it (the batch's own error is kept on the job and raised by `_run`)."""

    retryable = False


class BloomJob(Job):
    """The Bloom-filter pass as an executor job: one unit per batch of input files, each one Rust run over the
    batch on `threads` threads, tested against and inserted into the one filter, which is checkpointed between
    batches.

    The filter is state every batch reads and changes, so the job is `sequential`: the executor runs its units
    in order in this process (this object is the one that runs them, which is how `_run` reads its totals,
    checkpoint state and error afterwards).
    """

    sequential = True

    def __init__(
        self,
        config: DedupeConfig,
        plan_: Plan,
        threads: int,
        staging: _Staging,
        deduper: Deduper,
        filt: _Filter,
        infos: list[io.FileInfo],
        todo: list[int],
        complete: list[int],
    ):
        self.config = config
        self.plan = plan_
        self.threads = threads
        self.staging = staging
        self.deduper = deduper
        self.filt = filt
        self.infos = infos
        self.todo = todo
        self.complete = complete
        self.batches: dict[str, list[int]] = {}
        self.totals: dict[str, int] = {}
        self.error: BaseException | None = None
        self.last_save = time.monotonic()
        self.saved = len(filt.manifest.inputs)
        # `clean`: the filter's bits hold exactly the keys of the inputs its manifest records (true between
        # batches), so it may be saved as the state a rerun resumes from.
        self.clean = True

    def units(self) -> list[Unit]:
        """One unit per batch of the files to do (contiguous runs of file indices, bounded in size), named by
        its first input."""
        out = []
        for begin, end in _batches_of(self.todo, self.plan.inputs, max(4, 4 * self.threads)):
            indices = self.todo[begin:end]
            unit = Unit(input=self.plan.inputs[indices[0]], outputs=tuple(self.plan.outputs[i] for i in indices))
            self.batches[unit.input] = indices
            out.append(unit)
        return out

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        try:
            return self._run_batch(self.batches[unit.input], progress)
        except Exception as exc:
            self.error = exc
            raise _Stopped(describe_error(exc)) from exc

    def _run_batch(self, indices: list[int], progress: Progress) -> UnitStats:
        config, plan_, filt, staging = self.config, self.plan, self.filt, self.staging
        cfg = config.bloom_filter
        read_only = cfg.read_only
        bf = filt.bf
        inputs, outputs, uploads = _stage(plan_, indices, staging)
        self.clean = False
        try:
            stats = self.deduper.run(bf, inputs, outputs, read_only=read_only, threads=self.threads)
        except BaseException as exc:
            # An error, or Ctrl-C / SIGTERM (a KeyboardInterrupt: the run stopped at its next chunk). Errors of
            # the run carry what it completed; without that (a signal that arrived as the run returned) the
            # filter may hold keys of files not recorded, so the last save stays the state to resume from.
            completed = getattr(exc, "completed_stats", None)
            partial = bool(getattr(exc, "partial_file", False))
            if completed is not None:
                # The files before the failing one are complete: their S3 outputs go up before anything
                # records them as done.
                _upload(uploads, indices[: completed.get("files", 0)])
            if partial:
                # The filter holds the first chunks of the unfinished file: it is not the state after the
                # files before it, so keep the last save (a rerun redoes the files after it).
                log.warning(
                    "the filter holds part of an unfinished file's keys; not checkpointed: a rerun resumes "
                    "after the %d file(s) saved in it",
                    self.saved,
                )
            elif completed is not None and not read_only:
                # Keep what the files before the failing one inserted: a rerun resumes after them (a stop
                # saves on its way out, in `_run`).
                filt.record(_records(plan_, indices, self.infos, completed.get("fingerprints", [])))
                self.clean = True
                if not isinstance(exc, KeyboardInterrupt):
                    _save_before_failing(filt, staging, self.saved, cfg.allow_saturated)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise _translate(exc) from None
        _upload(uploads, indices)
        totals = self.totals
        for key, value in stats.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
        progress(stats["documents"], stats["input_bytes"])
        result = UnitStats(
            documents_in=stats["documents"],
            documents_out=stats["documents"],
            bad_lines=stats.get("bad_lines", 0),
            bytes_in=stats["input_bytes"],
            counters={key: value for key, value in stats.items() if isinstance(value, int)},
        )
        if read_only:
            return result
        filt.record(_records(plan_, indices, self.infos, stats["fingerprints"]))
        self.clean = True
        _check_saturation(filt, _rate_now(bf), cfg.allow_saturated, (totals, self.infos, self.complete))
        now = time.monotonic()
        if indices[-1] != self.todo[-1] and now - self.last_save >= config.checkpoint_interval:
            _save_during_run(filt, staging)
            self.saved = len(filt.manifest.inputs)
            self.last_save = time.monotonic()
        return result


def _dryrun(config: DedupeConfig, plan_: Plan, filter_path: str) -> int:
    cfg = config.bloom_filter
    if io.exists(filter_path) and (cfg.read_only or not config.ignore_existing):
        size = io.size(filter_path) if not io.is_s3(filter_path) else 0
        print(f"bloom filter: existing file {filter_path} ({_human(size)} on disk, loaded into memory)")
    else:
        size, hashes = filter_params(cfg)
        count = cfg.estimated_doc_count or 0
        expected = f", expected false-positive rate {_expected_fp_rate(size, hashes, count):.3g}" if count else ""
        print(f"bloom filter: new, {size:,} bytes ({_human(size)} of memory), {hashes} hashes{expected}")
    for src, dst in zip(plan_.inputs, plan_.outputs):
        print(f"{src} -> {dst}")
    print(f"{len(plan_.inputs)} file(s), attribute set '{plan_.attribute_set}'")
    return 0


def _run(config: DedupeConfig, plan_: Plan, threads: int, staging: _Staging) -> int:
    started = summary_now()
    cfg = config.bloom_filter
    read_only = cfg.read_only
    filter_path = io.normalize(cfg.file)
    if read_only and not io.exists(filter_path):
        raise ConfigError(f"bloom_filter.read_only is set but the filter file {filter_path} does not exist")
    if config.dryrun:
        return _dryrun(config, plan_, filter_path)
    if io.exists(filter_path + LEGACY_CHECKPOINT_SUFFIX):
        log.warning(
            "%s%s was left by an earlier version of this toolkit and is ignored (runs now resume from the filter "
            "file itself); delete it",
            filter_path,
            LEGACY_CHECKPOINT_SUFFIX,
        )
    # Runs killed on this machine may have left temporaries beside the attributes and the filter.
    io.remove_dead_temporaries([*(io.dirname(path) for path in plan_.outputs), io.dirname(filter_path)])

    deduper = Deduper(_rust_config(config.dedupe), skip_bad_lines=config.skip_bad_lines, chunk_bytes=_chunk_bytes())
    filt = _open_filter(config, json.loads(deduper.key_settings), staging)
    bf = filt.bf
    infos = _infos(plan_.inputs)
    if read_only:
        # A read-only run changes no state, so each output stands alone: finished files are those with outputs.
        recorded = {r.path for r in filt.manifest.inputs}
        if any(path in recorded for path in plan_.inputs):
            log.warning(
                "%d input file(s) are themselves in the read-only filter %s: every one of their keys is found",
                sum(1 for path in plan_.inputs if path in recorded),
                filter_path,
            )
        exist = [False] * len(plan_.outputs) if config.ignore_existing else _exist(plan_.outputs)
        complete = [i for i, there in enumerate(exist) if there]
    else:
        complete = [] if filt.created else _complete_inputs(plan_, filt, infos, staging)
    done = set(complete)
    todo = [i for i in range(len(plan_.inputs)) if i not in done]
    log.info(
        "bloom filter %s: %s, %d hashes, %d keys inserted so far%s; %d of %d input file(s) already complete",
        filter_path,
        _human(bf.size_in_bytes),
        bf.num_hashes,
        bf.inserted,
        " (read-only)" if read_only else "",
        len(complete),
        len(plan_.inputs),
    )
    if not todo:
        why = "their attributes exist" if read_only else f"their keys are recorded in {filter_path}"
        log.info("every input file is already complete (%s); nothing to do", why)
        _finish(config, plan_, Summary(), {}, filt, bf.estimated_false_positive_rate(), complete, [], started)
        return 0
    if not filt.created or read_only:
        _check_saturation(filt, bf.estimated_false_positive_rate(), cfg.allow_saturated, None)

    job = BloomJob(config, plan_, threads, staging, deduper, filt, infos, todo, complete)
    batches = job.units()
    executor = make_executor(config, f"dedupe {plan_.attribute_set}", ignore_existing=True)
    try:
        summary = executor.run(job, batches)
    except KeyboardInterrupt:
        # Stopped (Ctrl-C, SIGTERM) where the filter holds exactly the inputs it records: save it, so that a
        # rerun resumes after them.
        if job.clean and not read_only and len(filt.manifest.inputs) > job.saved:
            log.warning(
                "stopping: saving the filter with %d completed file(s) so that a rerun resumes after them",
                len(filt.manifest.inputs),
            )
            _save_before_failing(filt, staging, job.saved, cfg.allow_saturated)
        raise
    if job.error is not None:
        # the batch's own error, as the command reports it (the executor's failure record only repeats it)
        raise job.error
    totals = job.totals
    final_rate = bf.estimated_false_positive_rate()
    if not read_only:
        _check_saturation(filt, final_rate, cfg.allow_saturated, (totals, infos, complete))
        _save_final_filter(filt, staging, len(plan_.inputs))
    warning = _filter_warning(filt, final_rate, cfg.allow_saturated)
    _finish(config, plan_, summary, totals, filt, final_rate, complete, [warning] if warning else [], started)
    return 0


def dedupe_modes(section: DedupeSection, counters: dict[str, int]) -> dict[str, ModeCounts]:
    """Marks per mode for the run summary: `documents` (whole documents by key) and `paragraphs` or `ngrams`.
    `documents_marked` counts documents with any mark (the runs do not tell the modes apart there)."""
    modes: dict[str, ModeCounts] = {}
    docs = counters.get("documents_marked", 0)
    if section.documents is not None:
        modes["documents"] = ModeCounts(units_marked=docs, documents_marked=docs)
    if section.paragraphs is not None:
        name = "ngrams" if section.paragraphs.by_ngram is not None else "paragraphs"
        modes[name] = ModeCounts(units_marked=counters.get("paragraphs_marked", 0), documents_marked=docs)
    return modes


# Rust's totals, named as the summary table shows them (the Spark path counts under the same names)
_COUNTER_NAMES = {
    "documents_marked": "documents marked",
    "paragraphs": "keys",
    "paragraphs_marked": "keys marked",
    "bytes": "text bytes",
    "bytes_marked": "text bytes marked",
}


def _finish(
    config: DedupeConfig,
    plan_: Plan,
    summary: Summary,
    totals: dict[str, int],
    filt: _Filter,
    rate: float,
    complete: list[int],
    degraded: list[str],
    started: Any,
) -> None:
    """Write and print the run summary of a Bloom filter run: the Rust run's totals (per run, not per file) and
    the filter's state. `summary` is the executor's, counted in files rather than batches here."""
    bf = filt.bf
    done = set(complete)
    processed = [i for i in range(len(plan_.inputs)) if i not in done][: totals.get("files", 0)]
    summary.units, summary.skipped, summary.succeeded = len(plan_.inputs), len(complete), len(processed)
    summary.stats = UnitStats(
        documents_in=totals.get("documents", 0),
        documents_out=totals.get("documents", 0),
        bad_lines=totals.get("bad_lines", 0),
        bytes_in=totals.get("input_bytes", 0),
        bytes_out=sum(io.size(plan_.outputs[i]) for i in processed),
        counters={name: totals.get(key, 0) for key, name in _COUNTER_NAMES.items()} | {"filter keys": bf.inserted},
    )
    fill = rate ** (1.0 / bf.num_hashes) if bf.num_hashes else 0.0
    bloom = BloomFilterStats(
        size_in_bytes=bf.size_in_bytes,
        hash_functions=bf.num_hashes,
        fill_ratio=min(max(fill, 0.0), 1.0),
        estimated_false_positive_rate=min(max(rate, 0.0), 1.0),
    )
    roots = sorted({io.glob_base(io.normalize(p)) for p in config.documents}) if config.documents else []
    name = ", ".join(roots) or plan_.attribute_set
    s = summary.stats
    extra = {
        "dedupe": DedupeStats(modes=dedupe_modes(config.dedupe, totals), bloom_filter=bloom),
        "sources": [
            Source(
                name=name,
                documents_in=s.documents_in,
                documents_out=s.documents_out,
                bytes_in=s.bytes_in,
                bytes_out=s.bytes_out,
            )
        ],
        "degraded": degraded,
    }
    finish_run(
        summary,
        command="dedupe",
        title=f"dolma dedupe: attribute set '{plan_.attribute_set}'",
        config=config,
        outputs=plan_.outputs,
        started=started,
        extra=extra,
    )


def _check_saturation(
    filt: _Filter,
    rate: float,
    allowed: bool,
    progress: tuple[dict[str, int], list[io.FileInfo], list[int]] | None,
) -> None:
    """Fails the run once the filter is too full to tell repeats from new keys (unless allowed)."""
    if rate <= filt.bound:
        return
    if allowed:
        return
    size = _human(filt.bf.size_in_bytes)
    found = (
        f"the Bloom filter {filt.path} is saturated: with {filt.bf.inserted:,} keys in {size} its estimated "
        f"false-positive rate is {rate:.3g}, above the limit of {filt.bound:.3g} (the requested rate is "
        f"{filt.requested_rate:.3g}), so new keys would be marked as repeats by mistake"
    )
    if progress is None:
        raise DolmaError(
            f"{found}. Rebuild it larger from its inputs (--ignore_existing and a larger bloom_filter."
            "estimated_doc_count or size_in_bytes), or set bloom_filter.allow_saturated to accept unreliable marks"
        )
    totals, infos, complete = progress
    estimate = ""
    processed = totals.get("input_bytes", 0)
    if processed:
        # Keys inserted so far, scaled to all the inputs of this run (a lower bound: a full filter misses some).
        skipped = set(complete)
        remaining = sum(info.size for i, info in enumerate(infos) if i not in skipped)
        keys = int(filt.bf.inserted * max(remaining, processed) / processed)
        estimate = f" (these inputs give at least {keys:,} keys)"
    raise DolmaError(
        f"{found}. The filter is not saved: rerun with --ignore_existing and a larger "
        f"bloom_filter.estimated_doc_count or size_in_bytes{estimate}, or set bloom_filter.allow_saturated to "
        "accept unreliable marks"
    )


def _batches_of(todo: list[int], inputs: list[str], max_files: int) -> list[tuple[int, int]]:
    """Batches over positions in `todo` (contiguous runs of file indices, bounded in size)."""
    return _batches([inputs[i] for i in todo], 0, max_files)


def _filter_warning(filt: _Filter, rate: float, allowed: bool) -> str | None:
    """Why the marks of this run are less reliable than asked (an over-full or allowed saturated filter), if so."""
    if rate > filt.bound and allowed:
        return (
            f"the Bloom filter {filt.path} is saturated (allowed by bloom_filter.allow_saturated): estimated "
            f"false-positive rate {rate:.3g}, the requested {filt.requested_rate:.3g}; many marks are repeats by "
            "mistake"
        )
    if rate > filt.requested_rate:
        return (
            f"the Bloom filter {filt.path} is over-full: estimated false-positive rate {rate:.3g} exceeds the "
            f"requested {filt.requested_rate:.3g}, so some marks are repeats by mistake; rebuild it larger "
            "(--ignore_existing and a larger bloom_filter.estimated_doc_count or size_in_bytes)"
        )
    return None
