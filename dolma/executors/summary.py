"""The JSON run summary every command writes at the end of a run: what went in, what came out, what went wrong.

One versioned schema (`RunSummary`, documented field by field in docs/run-summary.md, shipped as JSON Schema in
docs/run-summary.schema.json) read by `dolma report` and by people. Where the file goes: beside the outputs, in
the deepest directory that holds all of them, under a hidden name (`.dolma-run-summary.<command>.json`) unless
`summary_path` says otherwise. Hidden because it is a run log (it holds timings, so it differs between two runs
that write identical outputs): globs over an output directory never pick it up as data (`dolma.io.glob` skips
hidden files), and comparisons of output trees leave it out with `is_run_summary`. A rerun rewrites it; it never
touches the outputs themselves.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from dolma import __version__, atomic, io
from dolma.errors import ConfigError
from dolma.executors.base import Summary
from dolma.redact import redact_config

SCHEMA = "dolma-run-summary"
VERSION = 1
FILE_PREFIX = ".dolma-run-summary."

Count = Annotated[int, Meta(ge=0)]


class Units(msgspec.Struct, kw_only=True):
    total: Count = 0
    processed: Count = 0
    skipped: Count = 0
    failed: Count = 0


class Failure(msgspec.Struct, kw_only=True):
    unit: str
    error: str
    attempts: Count = 1


class Totals(msgspec.Struct, kw_only=True):
    documents_in: Count = 0
    documents_out: Count = 0
    bytes_in: Count = 0
    bytes_out: Count = 0
    bad_lines: Count = 0


class Source(msgspec.Struct, kw_only=True):
    name: str
    documents_in: Count = 0
    documents_out: Count = 0
    bytes_in: Count = 0
    bytes_out: Count = 0


class TaggerCounts(msgspec.Struct, kw_only=True):
    documents: Count = 0
    spans: Count = 0


class RuleCounts(msgspec.Struct, kw_only=True):
    stream: str
    rule: str
    kind: Literal["filter", "span_replacement", "sample"]
    documents_removed: Count = 0
    spans_replaced: Count = 0


class ModeCounts(msgspec.Struct, kw_only=True):
    units_marked: Count = 0
    documents_marked: Count = 0


class BloomFilterStats(msgspec.Struct, kw_only=True):
    size_in_bytes: Count
    hash_functions: Count
    fill_ratio: Annotated[float, Meta(ge=0, le=1)]
    estimated_false_positive_rate: Annotated[float, Meta(ge=0, le=1)]


class DedupeStats(msgspec.Struct, kw_only=True):
    modes: dict[str, ModeCounts] = {}
    bloom_filter: BloomFilterStats | None = None


class Shard(msgspec.Struct, kw_only=True):
    path: str
    tokens: Count = 0
    documents: Count = 0


class TokenStats(msgspec.Struct, kw_only=True):
    tokens: Count = 0
    documents: Count = 0
    shards: list[Shard] = []


class RunSummary(msgspec.Struct, kw_only=True):
    """One run of one command (schema `dolma-run-summary`, version 1). Unknown fields are allowed (ignored)."""

    schema: Literal["dolma-run-summary"]
    version: Literal[1]
    command: str
    toolkit_version: str
    started: str
    finished: str
    seconds: Annotated[float, Meta(ge=0)]
    ok: bool
    degraded: list[str] = []
    warnings: list[str] = []
    units: Units = msgspec.field(default_factory=Units)
    failures: list[Failure] = []
    totals: Totals = msgspec.field(default_factory=Totals)
    sources: list[Source] = []
    counters: dict[str, Count] = {}
    taggers: dict[str, TaggerCounts] = {}
    rules: list[RuleCounts] = []
    dedupe: DedupeStats | None = None
    tokens: TokenStats | None = None
    config: dict[str, Any] = {}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of `RunSummary` (committed as docs/run-summary.schema.json; a test keeps them equal)."""
    return msgspec.json.schema(RunSummary)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_name(command: str) -> str:
    return f"{FILE_PREFIX}{command}.json"


def is_run_summary(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a run summary (a run log, not an output: left out when output trees are compared)."""
    name = os.path.basename(os.fspath(path))
    return name.startswith(FILE_PREFIX) and name.endswith(".json")


def default_path(command: str, outputs: Sequence[str]) -> str:
    """`<deepest directory holding every output>/.dolma-run-summary.<command>.json`."""
    if not outputs:
        raise ConfigError(f"{command}: no outputs to put the run summary beside; set summary_path")
    dirs = [io.dirname(io.normalize(path)) for path in outputs]
    if all(io.is_s3(d) for d in dirs) and len({io.split_s3(d)[0] for d in dirs}) == 1:
        bucket = io.split_s3(dirs[0])[0]
        keys = [io.split_s3(d)[1].strip("/") for d in dirs]
        common = posixpath.commonpath(keys) if all(keys) else ""
        return f"s3://{bucket}/{common}/{file_name(command)}" if common else f"s3://{bucket}/{file_name(command)}"
    if any(io.is_s3(d) for d in dirs):
        # outputs in several buckets (or local and S3): beside the first
        return io.join(dirs[0], file_name(command))
    return os.path.join(os.path.commonpath([os.path.abspath(d) for d in dirs]), file_name(command))


def summary_destination(command: str, config: Any, outputs: Sequence[str], directory: str | None = None) -> str:
    """Where this run's summary goes: the config's `summary_path`, else in `directory` when given, else
    `default_path` of the outputs."""
    given = getattr(config, "summary_path", None)
    if given:
        return io.normalize(given)
    if directory is not None:
        return io.join(io.normalize(directory), file_name(command))
    return default_path(command, outputs)


def degraded_reasons(summary: Summary) -> list[str]:
    """What makes a finished run less than complete: failed units, skipped bad lines."""
    reasons = []
    if summary.failures:
        reasons.append(f"{summary.failed:,} of {summary.units:,} unit(s) failed; their outputs are missing")
    if summary.stats.bad_lines:
        reasons.append(f"{summary.stats.bad_lines:,} bad input line(s) skipped (skip_bad_lines)")
    return reasons


def build(
    summary: Summary,
    *,
    command: str,
    config: Any,
    started: dt.datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary as JSON-ready builtins: the executor's numbers, then `extra` (fields of `RunSummary` replace
    the computed ones, `degraded` reasons are added to them, unknown fields are kept as they are)."""
    finished = now()
    begun = started or finished - dt.timedelta(seconds=summary.seconds)
    s = summary.stats
    base = RunSummary(
        schema=SCHEMA,
        version=VERSION,
        command=command,
        toolkit_version=__version__,
        started=_stamp(begun),
        finished=_stamp(finished),
        seconds=round(max((finished - begun).total_seconds(), 0.0), 3),
        ok=summary.ok,
        degraded=degraded_reasons(summary),
        warnings=list(summary.warnings),
        units=Units(total=summary.units, processed=summary.succeeded, skipped=summary.skipped, failed=summary.failed),
        failures=[Failure(unit=f.unit.input, error=f.error, attempts=f.attempts) for f in summary.failures],
        totals=Totals(
            documents_in=s.documents_in,
            documents_out=s.documents_out,
            bytes_in=s.bytes_in,
            bytes_out=s.bytes_out,
            bad_lines=s.bad_lines,
        ),
        sources=[
            Source(
                name=name,
                documents_in=u.documents_in,
                documents_out=u.documents_out,
                bytes_in=u.bytes_in,
                bytes_out=u.bytes_out,
            )
            for name, u in summary.by_unit.items()
        ],
        counters=dict(sorted(s.counters.items())),
        taggers={
            name: TaggerCounts(documents=c.get("documents", 0), spans=c.get("spans", 0))
            for name, c in sorted(s.groups.get("taggers", {}).items())
        },
        config=redact_config(msgspec.to_builtins(config)) if config is not None else {},
    )
    out = msgspec.to_builtins(base)
    for key, value in (extra or {}).items():
        if key == "degraded":
            out["degraded"] = [*out["degraded"], *value]
        else:
            out[key] = msgspec.to_builtins(value)
    if out["degraded"] or out["failures"]:
        out["ok"] = out["ok"] and not out["failures"]
    return out


def write_run_summary(
    summary: Summary,
    *,
    command: str,
    config: Any,
    destination: str,
    started: dt.datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> RunSummary:
    """Build the run summary (`build`), check it against the schema and write it atomically to `destination`
    (local or s3://). Returns what was written."""
    data = build(summary, command=command, config=config, started=started, extra=extra)
    checked = msgspec.convert(data, RunSummary)  # our own numbers, so a mismatch is a bug: let it raise
    atomic.remove_dead_temporaries([io.dirname(destination)])
    atomic.write_bytes(destination, msgspec.json.format(msgspec.json.encode(data)) + b"\n")
    return checked


class NotARunSummaryError(ConfigError):
    """The file is not a run summary at all (not JSON, or another schema), rather than a broken one: a reader of
    many summaries skips a broken one but refuses a file of another kind (most likely the wrong file given)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def read_run_summary(path: str) -> RunSummary:
    """Read and validate a run summary; a file that does not match the schema is a ConfigError naming the file
    and the field (a NotARunSummaryError when it is not a run summary at all)."""
    try:
        raw = io.read_bytes(io.normalize(path))
    except OSError as exc:
        raise ConfigError(f"run summary {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise NotARunSummaryError(f"run summary {path}: not a JSON document", "not JSON") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise NotARunSummaryError(
            f"run summary {path}: field 'schema' is not '{SCHEMA}': not a run summary",
            f"its 'schema' is not {SCHEMA!r}",
        )
    if data.get("version") != VERSION:
        raise ConfigError(
            f"run summary {path}: field 'version' is {data.get('version')!r}; this toolkit reads version {VERSION}"
        )
    try:
        return msgspec.convert(data, RunSummary)
    except msgspec.ValidationError as exc:
        where = _FIELD.search(str(exc))
        field = where.group(1).removeprefix("$.") if where else "(top level)"
        what = _FIELD.sub("", str(exc)).strip(" -")
        raise ConfigError(f"run summary {path}: field '{field}' does not match the schema ({what})") from None


_FIELD = re.compile(r"\s*-\s*at `([^`]*)`")


def finish_run(
    summary: Summary,
    *,
    command: str,
    title: str,
    config: Any,
    outputs: Sequence[str] = (),
    directory: str | None = None,
    started: dt.datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> RunSummary:
    """The end of every command's run: write its run summary beside `outputs` (or in `directory`) and print it
    (`print_run_summary`)."""
    destination = summary_destination(command, config, outputs, directory)
    written = write_run_summary(
        summary, command=command, config=config, destination=destination, started=started, extra=extra
    )
    print_run_summary(written, title, quiet=bool(getattr(config, "quiet", False)), path=destination)
    return written


def print_run_summary(run: RunSummary, title: str, quiet: bool = False, path: str | None = None) -> None:
    """Print the run summary to stderr as a table: files, documents and bytes in/out, counters, per tagger, rule
    and dedupe mode, the Bloom filter, tokens, time and rates. Failures and the reasons a run is degraded are
    printed even when quiet."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if not quiet:
        t = run.totals
        secs = max(run.seconds, 1e-9)
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column("what")
        table.add_column("value", justify="right")
        table.add_row("files", f"{run.units.total:,}")
        table.add_row("  processed", f"{run.units.processed:,}")
        table.add_row("  skipped (already complete)", f"{run.units.skipped:,}")
        table.add_row("  failed", f"{run.units.failed:,}")
        table.add_row("documents in", f"{t.documents_in:,}")
        table.add_row("documents out", f"{t.documents_out:,}")
        table.add_row("bad lines skipped", f"{t.bad_lines:,}")
        for key, value in run.counters.items():
            table.add_row(escape(key), f"{value:,}")
        for name, counts in run.taggers.items():
            table.add_row(f"tagger {escape(name)}", f"{counts.documents:,} docs, {counts.spans:,} spans")
        for rule in run.rules:
            what = (
                f"{rule.spans_replaced:,} spans replaced"
                if rule.kind == "span_replacement"
                else (f"{rule.documents_removed:,} docs removed")
            )
            shown = rule.rule if len(rule.rule) <= 60 else rule.rule[:57] + "..."
            table.add_row(f"{escape(rule.stream)}: {rule.kind} {escape(shown)}", what)
        if run.dedupe is not None:
            for mode, marks in run.dedupe.modes.items():
                table.add_row(
                    f"dedupe {escape(mode)}",
                    f"{marks.units_marked:,} units marked in {marks.documents_marked:,} docs",
                )
            bf = run.dedupe.bloom_filter
            if bf is not None:
                table.add_row("bloom filter", f"{bf.size_in_bytes / 1e6:,.2f} MB, {bf.hash_functions} hashes")
                table.add_row("  fill", f"{bf.fill_ratio:.3f}")
                table.add_row("  false-positive rate", f"{bf.estimated_false_positive_rate:.3g}")
        if run.tokens is not None:
            table.add_row("tokens", f"{run.tokens.tokens:,} in {len(run.tokens.shards):,} shard(s)")
        table.add_row("bytes read", f"{t.bytes_in / 1e6:,.2f} MB")
        table.add_row("bytes written", f"{t.bytes_out / 1e6:,.2f} MB")
        table.add_row("time", f"{run.seconds:,.2f} s")
        table.add_row("throughput", f"{t.documents_in / secs:,.0f} docs/s, {t.bytes_in / 1e6 / secs:,.2f} MB/s")
        console.print(table)
        if path is not None:
            console.print(f"run summary: {escape(path)}")
    for failure in run.failures:  # escaped: messages quote rules and paths, whose '[...]' is not markup
        console.print(
            f"[red]FAILED[/red] {escape(failure.unit)} (after {failure.attempts} attempt(s)): {escape(failure.error)}"
        )
    for warning in run.warnings:  # printed even when quiet, like failures
        console.print(f"[yellow]WARNING[/yellow] {escape(warning)}")
    for reason in run.degraded:
        console.print(f"[bold yellow]DEGRADED[/bold yellow] {escape(reason)}")
