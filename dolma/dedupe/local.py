"""The local Bloom-filter dedupe run: open the filter, find what is complete, run `BloomJob` through the executor,
save the filter and write the run summary."""

from __future__ import annotations

import json
import logging
from typing import Any

from dolma import atomic, io
from dolma._rust import Deduper
from dolma.dedupe.complete import _complete_inputs, _exist, _infos
from dolma.dedupe.config import LEGACY_CHECKPOINT_SUFFIX, DedupeConfig, DedupeSection, _chunk_bytes
from dolma.dedupe.job import BloomJob, _check_saturation
from dolma.dedupe.plan import Plan, _expected_fp_rate, _human, _rust_config, filter_params
from dolma.dedupe.store import (
    _Filter,
    _open_filter,
    _save_before_failing,
    _save_final_filter,
    _Staging,
)
from dolma.errors import ConfigError
from dolma.executors import make_executor
from dolma.executors.base import Summary, UnitStats
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
    atomic.remove_dead_temporaries([*(io.dirname(path) for path in plan_.outputs), io.dirname(filter_path)])

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
