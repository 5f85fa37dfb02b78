"""The Bloom-filter pass as an executor job (`BloomJob`): batches of inputs through the Rust deduper, tested
against and inserted into the one filter, checkpointed between batches; and the filter's saturation check."""

from __future__ import annotations

import logging
import time

from dolma import io
from dolma._rust import Deduper
from dolma.dedupe.config import BATCH_MAX_BYTES, DedupeConfig
from dolma.dedupe.plan import Plan, _human
from dolma.dedupe.store import (
    _Filter,
    _rate_now,
    _records,
    _save_before_failing,
    _save_during_run,
    _stage,
    _Staging,
    _upload,
)
from dolma.errors import DedupeConfigError, DedupeInputError, DedupeIOError, DedupeStopped, DolmaError
from dolma.executors.base import Job, Progress, Unit, UnitStats

log = logging.getLogger("dolma")


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
    if isinstance(exc, DolmaError):
        return exc
    if isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, PermissionError)):
        return DolmaError(str(exc))
    return exc


class BloomJob(Job):
    """The Bloom-filter pass as an executor job: one unit per batch of input files, each one Rust run over the
    batch on `threads` threads, tested against and inserted into the one filter, which is checkpointed between
    batches.

    The filter is state every batch reads and changes, so the job is `sequential`: the executor runs its units
    in order in this process (this object is the one that runs them, which is how `_run` reads its totals and
    checkpoint state afterwards). A failed batch is not retried (that would insert its keys a second time): its
    own error comes out of the executor's `run` (`reraise`), as the command reports it.
    """

    sequential = True
    reraise = (Exception,)

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
        indices = self.batches[unit.input]
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
            completed, partial = None, False
            if isinstance(exc, (DedupeConfigError, DedupeInputError, DedupeIOError, DedupeStopped)):
                completed, partial = exc.completed_stats, exc.partial_file
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
            if isinstance(exc, DedupeStopped):
                raise exc.signal from None  # Ctrl-C or SIGTERM, as its handler raised it (the exit code)
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
