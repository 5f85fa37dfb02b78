"""The `mix` command: documents + attribute sets -> filtered, edited, sampled, size-capped shards.

Unit of work: one documents file and its attribute files (read in lockstep). A unit writes its kept rows to
numbered part files in a hidden staging directory beside the output (each part at most `max_size_in_bytes`
uncompressed, written atomically) and then a small manifest; the manifest is the unit's "done" marker, so
a killed run resumes. When every unit of a stream is done, the driver publishes the final shards
`<path>/<name>-<NNNN>.jsonl.gz`: it walks the parts in input-file order and packs consecutive parts into
shards without going over the cap, by concatenating their compressed bytes (gzip members and zstd frames
concatenate into valid files). Shard contents and numbering depend only on the inputs and the config,
never on the number of processes or on which worker finished first.

This module runs the streams (locks, executor, rates, run summary); the unit's job is `mixers/mix_job.py`,
its staged parts `mixers/mix_parts.py`, planning and publishing `mixers/mix_publish.py`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import msgspec

from dolma import atomic, io
from dolma.errors import ConfigError, DolmaError
from dolma.executors import make_executor
from dolma.executors.base import Executor, Summary, Unit, UnitStats
from dolma.executors.summary import RuleCounts, Source, finish_run, now
from dolma.locks import DestinationLock
from dolma.paths import check_name, check_outputs, check_path, claim_dir, remove_claimed_dir
from mixers.mix_config import MixConfig, Stream
from mixers.mix_job import StreamJob, compile_stream
from mixers.mix_parts import _EXTENSIONS, STAGING_PREFIX, Manifest, StreamReport
from mixers.mix_publish import (
    check_attribute_keys,
    check_shard_names_owned,
    plan_stream,
    publish,
    stream_fingerprint,
    stream_inputs,
)
from mixers.sandbox import (
    SandboxSettings,
    close_sandboxes,
)

log = logging.getLogger("dolma")


def _sum_counters(items: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counters in items:
        for key, value in counters.items():
            total[key] = total.get(key, 0) + value
    return total


def _executor(config: MixConfig, name: str, ignore_existing: bool) -> Executor:
    """LocalExecutor or SparkExecutor (`executor: spark`): per-file units run the same either way."""
    return make_executor(config, name, ignore_existing=ignore_existing)


class StreamFailed(DolmaError):
    """A stream's files failed: the run stops after writing its run summary."""

    def __init__(self, title: str, summary: Summary):
        super().__init__(f"{title}: {summary.failed} file(s) failed")
        self.summary = summary


def resolve_rate(config: MixConfig, stream: Stream, files: list[str]) -> float | None:
    """The sampling rate: given, or computed from a counting pass for target_bytes / target_tokens."""
    targets = [t for t in (stream.sample_rate, stream.target_bytes, stream.target_tokens) if t is not None]
    if len(targets) > 1:
        raise ConfigError(f"stream '{stream.name}': give only one of sample_rate, target_bytes, target_tokens")
    if stream.sample_rate is not None:
        if stream.sample_rate < 0 or not math.isfinite(stream.sample_rate):
            raise ConfigError(f"stream '{stream.name}': sample_rate must be a finite number >= 0")
        return stream.sample_rate
    if stream.target_bytes is None and stream.target_tokens is None:
        return None
    job = StreamJob(
        stream,
        staging="",
        rate=None,
        skip_bad_lines=config.skip_bad_lines,
        count_only=True,
        sandbox=sandbox_settings(config),
    )
    units = [Unit(input=path, outputs=()) for path in files]
    summary = _executor(config, f"count {stream.name}", ignore_existing=True).run(job, units)
    if not summary.ok:
        raise StreamFailed(f"dolma mix: counting stream '{stream.name}'", summary)
    # the counting job reports its totals through UnitStats.counters
    totals = summary.stats
    counted = totals.counters.get("kept_tokens" if stream.target_tokens is not None else "kept_text_bytes", 0)
    target = stream.target_tokens if stream.target_tokens is not None else stream.target_bytes
    assert target is not None
    if counted == 0:
        raise DolmaError(f"stream '{stream.name}': nothing survives the filters, cannot reach target {target}")
    rate = target / counted
    log.info("stream %s: %d counted after filters, target %d -> sample_rate %.6f", stream.name, counted, target, rate)
    return rate


def mix_stream(config: MixConfig, stream: Stream, files: list[str]) -> tuple[StreamReport, Summary]:
    compiled = compile_stream(stream, sandbox_settings(config))  # rule errors surface before any file is touched
    out_dir = io.normalize(stream.output.path)
    warnings = check_attribute_keys(stream, files, compiled.rules.attribute_keys)
    for warning in warnings:
        log.warning("%s", warning)
    rate = resolve_rate(config, stream, files)
    extension = _EXTENSIONS[compiled.output_compression]
    staging = io.join(out_dir, f"{STAGING_PREFIX}{stream.name}-{stream_fingerprint(stream, rate)}")
    job = StreamJob(stream, staging, rate, skip_bad_lines=config.skip_bad_lines, sandbox=sandbox_settings(config))
    units = [Unit(input=path, outputs=(job.manifest_path(path),)) for path in files]
    if config.dryrun:
        for unit in units:
            print(f"{unit.input} + {len(stream.attributes)} attribute file(s) -> {out_dir}/{stream.name}-*{extension}")
        print(f"stream {stream.name}: {len(units)} file(s), sample_rate {rate}")
        return StreamReport(stream.name, len(files), 0, 0, 0, {}, 0, 0, 0, [], rate), Summary()
    claim_dir(staging, "mix")
    # A run killed while publishing leaves hidden links or copies beside the shards (the staged parts are
    # cleaned by the executor, beside the manifests).
    atomic.remove_dead_temporaries([out_dir])
    summary = _executor(config, f"mix {stream.name}", config.ignore_existing).run(job, units)
    summary.warnings = warnings
    if not summary.ok:
        raise StreamFailed(f"dolma mix: stream '{stream.name}'", summary)
    manifests = [msgspec.json.decode(io.read_bytes(u.outputs[0]), type=Manifest) for u in units]
    shards = publish(stream, manifests, extension)
    remove_claimed_dir(staging)
    totals = _sum_counters([m.counters for m in manifests])
    dropped = {"include": totals.get("dropped:include", 0)}
    flt = stream.filter
    if flt is not None:
        for idx, rule in enumerate(compiled.rules.exclude):
            dropped[f"exclude[{idx}] {rule.name}"] = totals.get(f"dropped:exclude[{idx}]", 0)
    dropped["min_text_length"] = totals.get("dropped:min_text_length", 0)
    dropped["sampling"] = totals.get("dropped:sampling", 0)
    dropped["bad_lines"] = totals.get("bad_lines", 0)
    report = StreamReport(
        name=stream.name,
        files=len(files),
        documents_in=totals.get("documents_in", 0),
        documents_kept=totals.get("documents_kept", 0),
        documents_written=totals.get("documents_written", 0),
        dropped=dropped,
        spans_replaced=totals.get("spans_replaced", 0),
        bytes_in=totals.get("bytes_in", 0),
        bytes_out=totals.get("bytes_out", 0),
        shards=shards,
        sample_rate=rate,
        warnings=warnings,
    )
    summary.stats = UnitStats(
        documents_in=report.documents_in,
        documents_out=report.documents_written,
        bad_lines=dropped["bad_lines"],
        bytes_in=report.bytes_in,
        bytes_out=report.bytes_out,
        counters={"dropped: " + k.split(" ", 1)[0]: v for k, v in dropped.items() if k != "bad_lines"}
        | {"spans replaced": report.spans_replaced, "shards written": len(shards)},
    )
    return report, summary


def stream_rules(stream: Stream, report: StreamReport) -> list[RuleCounts]:
    """What each rule of a stream did, for the run summary (rules named as written in the config)."""
    rules: list[RuleCounts] = []
    flt = stream.filter
    if flt is not None and flt.include:
        text = " or ".join(r if isinstance(r, str) else msgspec.json.encode(r).decode() for r in flt.include)
        rules.append(
            RuleCounts(
                stream=stream.name,
                rule=f"include: {text}",
                kind="filter",
                documents_removed=report.dropped.get("include", 0),
            )
        )
    for key, value in report.dropped.items():
        if key.startswith("exclude["):
            rules.append(
                RuleCounts(stream=stream.name, rule=key.split(" ", 1)[1], kind="filter", documents_removed=value)
            )
    if stream.output.min_text_length:
        rules.append(
            RuleCounts(
                stream=stream.name,
                rule=f"min_text_length: {stream.output.min_text_length}",
                kind="filter",
                documents_removed=report.dropped.get("min_text_length", 0),
            )
        )
    if stream.span_replacement:
        text = "; ".join(r.span for r in stream.span_replacement)
        rules.append(
            RuleCounts(stream=stream.name, rule=text, kind="span_replacement", spans_replaced=report.spans_replaced)
        )
    if report.sample_rate is not None:
        rules.append(
            RuleCounts(
                stream=stream.name,
                rule=f"sample_rate: {report.sample_rate:.6g}",
                kind="sample",
                documents_removed=report.dropped.get("sampling", 0),
            )
        )
    return rules


def _combined(summaries: list[Summary]) -> Summary:
    """The streams' executor summaries as one (a mix run's run summary covers every stream)."""
    total = Summary()
    for summary in summaries:
        total.units += summary.units
        total.skipped += summary.skipped
        total.succeeded += summary.succeeded
        total.failures.extend(summary.failures)
        total.stats.add(summary.stats)
        total.seconds += summary.seconds
        total.warnings.extend(summary.warnings)
    return total


def finish_mix(
    config: MixConfig, done: list[tuple[Stream, StreamReport, Summary]], failed: StreamFailed | None, started: Any
) -> None:
    """Write the mix run summary (per stream: sources and rules) and print it."""
    summaries = [summary for _, _, summary in done] + ([failed.summary] if failed is not None else [])
    total = _combined(summaries)
    sources = [
        Source(
            name=stream.name,
            documents_in=r.documents_in,
            documents_out=r.documents_written,
            bytes_in=r.bytes_in,
            bytes_out=r.bytes_out,
        )
        for stream, r, _ in done
    ]
    extra = {"sources": sources, "rules": [rule for stream, r, _ in done for rule in stream_rules(stream, r)]}
    finish_run(
        total,
        command="mix",
        title=f"dolma mix: stream{'s' if len(config.streams) > 1 else ''} {', '.join(s.name for s in config.streams)}",
        config=config,
        outputs=[io.join(io.normalize(s.output.path), s.name) for s in config.streams],
        started=started,
        extra=extra,
    )


def check_stream_names(stream: Stream, idx: int) -> None:
    """Names that become path components (shard and staging names, attribute set directories) are single ones."""
    check_name(stream.name, f"streams[{idx}].name")
    check_name(stream.document_dir, f"streams[{idx}].document_dir")
    for n, name in enumerate(stream.attributes):
        check_name(name, f"streams[{idx}].attributes[{n}]")


def sandbox_settings(config: MixConfig) -> SandboxSettings:
    """The time and memory bounds of the jq rule sandbox, checked."""
    if not (math.isfinite(config.rule_timeout) and config.rule_timeout > 0):
        raise ConfigError(f"mix: rule_timeout must be a positive number of seconds, got {config.rule_timeout}")
    if config.rule_memory_mb < 0:
        raise ConfigError(f"mix: rule_memory_mb must be >= 0 (0: no limit), got {config.rule_memory_mb}")
    return SandboxSettings(timeout=float(config.rule_timeout), memory_mb=config.rule_memory_mb)


LOCK_PREFIX = ".mix-lock-"


def stream_lock(out_dir: str, name: str) -> DestinationLock:
    """The lock of one stream's destination (its staging directory and shards `<out_dir>/<name>-*`)."""
    return DestinationLock(
        io.join(out_dir, f"{LOCK_PREFIX}{name}"), f"mix output {io.join(out_dir, name)}-*", "dolma mix"
    )


def run_mix(config: MixConfig) -> int:
    io.configure_s3(config.s3)
    if not config.streams:
        raise ConfigError("mix: no streams given (set 'streams')")
    names = [s.name for s in config.streams]
    if len(set(names)) != len(names):
        raise ConfigError("mix: two streams have the same name")
    outputs = [(io.normalize(s.output.path), s.name) for s in config.streams]
    if len(set(outputs)) != len(outputs):
        raise ConfigError("mix: two streams write the same shards (same output.path and name)")
    if config.report is not None:
        check_path(config.report, "report")
    settings = sandbox_settings(config)
    try:
        planned = []
        for idx, stream in enumerate(config.streams):  # validate every stream before running any
            check_stream_names(stream, idx)
            compile_stream(stream, settings)
            if stream.output.max_size_in_bytes <= 0:
                raise ConfigError(f"stream '{stream.name}': output.max_size_in_bytes must be positive")
            files = plan_stream(stream)
            out_dir = io.normalize(check_path(stream.output.path, f"streams[{idx}].output.path"))
            inputs = stream_inputs(stream, files)
            check_outputs(f"mix: stream '{stream.name}'", inputs, dirs=[out_dir], document_dir=stream.document_dir)
            if config.report:
                check_outputs("mix: report", inputs, [io.normalize(config.report)], document_dir=stream.document_dir)
            check_shard_names_owned(stream, out_dir)
            planned.append((stream, files))
        if config.dryrun:
            reports = [mix_stream(config, stream, files)[0] for stream, files in planned]
        else:
            started = now()
            done: list[tuple[Stream, StreamReport, Summary]] = []
            with contextlib.ExitStack() as held:
                # every destination is ours before anything is written (checked above: never inside the inputs)
                for out_dir, name in sorted(outputs):
                    held.enter_context(stream_lock(out_dir, name))
                try:
                    for stream, files in planned:
                        done.append((stream, *mix_stream(config, stream, files)))
                except StreamFailed as failed:
                    finish_mix(config, done, failed, started)
                    raise
                finish_mix(config, done, None, started)
            reports = [report for _, report, _ in done]
    finally:
        close_sandboxes()
    if config.report:
        atomic.remove_dead_temporaries([io.dirname(io.normalize(config.report))])
        atomic.write_bytes(io.normalize(config.report), msgspec.json.format(msgspec.json.encode(reports)) + b"\n")
    return 0


CONFIG = MixConfig
"""The command's config type and entry point, as `dolma.commands.Command.load` expects them."""
run = run_mix
