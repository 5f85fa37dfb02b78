"""`dolma stat`: distributions of attribute values (span scores and lengths) over any number of attribute files.

Two passes, each a `Job` run by the shared executor (local processes or Spark), one unit per attribute file:
pass 1 reads the file once and writes its partial summary per name (count, exact sum, min, max, quantile sketch)
and its distinct values with their counts; the driver merges the summaries in file order and picks each name's
bin edges; pass 2 counts each file's distinct values into those edges (no JSON is parsed twice). Partials are
written atomically under a claimed work directory, so a killed run resumes where it stopped; it is removed after
a successful run. Output: `<report>/summaries.jsonl.gz` in the reference's format
(`name`, `counts`, `bins`, `total`, `sum`) plus `min`, `max`, `mean` and `quantiles`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from typing import Annotated, Any

import msgspec
import numpy as np
from msgspec import Meta

from dolma import atomic, io, stats
from dolma.commands.common import RunOptions
from dolma.documents import ReadStats
from dolma.errors import ConfigError
from dolma.executors import make_executor
from dolma.executors.base import Job, Progress, Summary, Unit, UnitStats
from dolma.executors.summary import RunSummary, build, finish_run, now, print_run_summary
from dolma.paths import check_outputs, check_path, claim_dir, remove_claimed_dir

log = logging.getLogger("dolma")

SUMMARIES = "summaries.jsonl.gz"


class StatConfig(RunOptions, kw_only=True):
    attributes: Annotated[
        list[str], Meta(description="Globs of attribute files (local paths or s3:// URLs; ** recurses).")
    ]
    report: Annotated[
        str | None,
        Meta(description="Directory for summaries.jsonl.gz (local or s3://); without it the lines go to stdout."),
    ] = None
    bins: Annotated[int, Meta(ge=1, description="Histogram bins per name (fewer when there are fewer values).")] = 1000
    seed: Annotated[int, Meta(description="Reference-compatible; nothing here is random (results are exact).")] = 0
    total: Annotated[bool, Meta(description="Also show each name's total count and sum in the terminal table.")] = (
        False
    )
    regex: Annotated[
        str | None, Meta(description="Keep only attribute keys this regular expression matches (re.search).")
    ] = None


CONFIG = StatConfig


class _PartialFile(msgspec.Struct):
    names: dict[str, stats.Partial]


class _DistinctFile(msgspec.Struct):
    names: dict[str, stats.Distinct]


class _CountsFile(msgspec.Struct):
    names: dict[str, list[int]]


class SummarizeJob(Job):
    """Pass 1: one attribute file -> its partial summary per name, and its distinct values (for pass 2)."""

    def __init__(self, config: StatConfig):
        self.config = config

    def setup(self) -> None:
        io.configure_s3(self.config.s3)

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        read = ReadStats()
        values = stats.read_values(unit.input, self.config.regex, self.config.skip_bad_lines, read)
        progress(read.documents, read.bytes)
        named = dict(stats.named_values(values))
        distinct = {name: stats.Distinct.of(array) for name, array in named.items()}
        partials = {name: stats.summarize(array, distinct[name], self.config.bins) for name, array in named.items()}
        summary, kept = unit.outputs
        kept_data = msgspec.msgpack.encode(_DistinctFile(names=distinct))
        atomic.write_bytes(kept, kept_data)
        data = msgspec.msgpack.encode(_PartialFile(names=partials))
        atomic.write_bytes(summary, data)  # last: its existence says the unit is complete
        return UnitStats(
            documents_in=read.documents,
            bad_lines=read.bad_lines,
            bytes_in=read.bytes,
            bytes_out=len(data) + len(kept_data),
        )


class HistogramJob(Job):
    """Pass 2: one file's distinct values (from pass 1) -> its histogram counts per name, on the driver's edges."""

    def __init__(self, config: StatConfig, edges: dict[str, list[float]]):
        self.config = config
        self.edges = edges
        self._arrays: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "edges": self.edges, "_arrays": {}}

    def setup(self) -> None:
        io.configure_s3(self.config.s3)

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        distinct = msgspec.msgpack.decode(io.read_bytes(unit.input), type=_DistinctFile)
        counts = {}
        for name, values in distinct.names.items():
            edges = self._arrays.get(name)
            if edges is None:
                edges = self._arrays[name] = np.asarray(self.edges[name])
            counts[name] = stats.histogram(values, edges).tolist()
        data = msgspec.msgpack.encode(_CountsFile(names=counts))
        atomic.write_bytes(unit.outputs[0], data)
        return UnitStats(bytes_out=len(data))


def _digest(value: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(value)).hexdigest()[:16]


def plan(config: StatConfig) -> tuple[list[str], str | None]:
    """The attribute files (sorted, so merges are in one order) and the report's summaries file; unsafe refused."""
    if not config.attributes:
        raise ConfigError("stat: no attributes given (set 'attributes')")
    if config.regex is not None:
        try:
            re.compile(config.regex)
        except re.error as exc:
            raise ConfigError(
                f"stat: 'regex' {config.regex!r} is not a valid regular expression ({exc.msg})"
            ) from None
    files: set[str] = set()
    for pattern in config.attributes:
        found = io.glob(io.normalize(pattern))
        if not found:
            raise ConfigError(f"stat: no files match attributes pattern '{pattern}'")
        files.update(found)
    inputs = sorted(files)
    output = None
    if config.report is not None:
        report = io.normalize(check_path(config.report, "report"))
        output = io.join(report, SUMMARIES)
        # the report may not overwrite an input, nor sit among (or above) the attribute files it describes
        check_outputs("stat", inputs, files=[output], dirs=[report], document_dir=None)
    return inputs, output


def work_dir(config: StatConfig) -> str:
    """The claimed directory of this run's partials: named after what they depend on, so a rerun resumes."""
    base = config.work_dir.output or config.report
    if base is None:  # nothing to resume into: a temporary directory of its own, removed with the partials
        return tempfile.mkdtemp(prefix="dolma-stat-")
    check_path(base, "work_dir.output")
    return io.join(io.normalize(base), f".dolma-stat-{_digest([config.bins, config.regex])}")


def _partial(work: str, sub: str, path: str) -> str:
    return io.join(work, sub, f"{_digest(path)}.msgpack")


def merge_partials(units: Sequence[Unit], bins: int) -> dict[str, stats.Partial]:
    merged: dict[str, stats.Partial] = {}
    for unit in units:
        part = msgspec.msgpack.decode(io.read_bytes(unit.outputs[0]), type=_PartialFile)
        for name, partial in part.names.items():
            if name in merged:
                stats.merge(merged[name], partial, bins)
            else:
                merged[name] = partial
    return dict(sorted(merged.items()))


def merge_counts(units: Sequence[Unit], edges: dict[str, list[float]]) -> dict[str, np.ndarray]:
    counts = {name: np.zeros(len(e) - 1, dtype=np.int64) for name, e in edges.items()}
    for unit in units:
        part = msgspec.msgpack.decode(io.read_bytes(unit.outputs[0]), type=_CountsFile)
        for name, values in part.names.items():
            counts[name] += np.asarray(values, dtype=np.int64)
    return counts


def summary_lines(
    merged: dict[str, stats.Partial], edges: dict[str, list[float]], counts: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """One object per name in the reference's field order, then this toolkit's extra fields."""
    lines = []
    for name, partial in merged.items():
        exact = Fraction(partial.sum)
        total_sum: float | int = int(exact) if name.endswith("/length") and exact.denominator == 1 else float(exact)
        lines.append(
            {
                "name": name,
                "counts": counts[name].tolist(),
                "bins": edges[name],
                "total": partial.count,
                "sum": total_sum,
                "min": partial.min,
                "max": partial.max,
                "mean": float(exact / partial.count),
                "quantiles": stats.quantiles(partial),
            }
        )
    return lines


def print_table(lines: list[dict[str, Any]], show_total: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value: float) -> str:
        return f"{value:,.6g}"

    table = Table(title=f"dolma stat: {len(lines)} distributions", title_justify="left")
    table.add_column("name", overflow="fold")
    columns = (["count", "sum"] if show_total else []) + ["mean", "min", "p5", "p50", "p95", "max"]
    for column in columns:
        table.add_column(column, justify="right")
    for line in lines:
        q = line["quantiles"]
        row = [f"{line['total']:,}", fmt(line["sum"])] if show_total else []
        row += [fmt(line["mean"]), fmt(line["min"]), fmt(q["p5"]), fmt(q["p50"]), fmt(q["p95"]), fmt(line["max"])]
        table.add_row(line["name"], *row)
    console = Console(stderr=True, highlight=False, soft_wrap=False)
    if not console.is_terminal:  # a log file: room for whole attribute keys rather than 80 columns
        console.width = max(
            console.width, max((len(line["name"]) for line in lines), default=4) + 12 * len(columns) + 8
        )
    console.print(table)


def finish(summary: Summary, title: str, config: StatConfig, output: str | None, started: Any) -> None:
    """Write the run summary beside the report (or at `summary_path`) and print it; with the lines on stdout and
    no `summary_path` there is no place for the file, so it is only printed."""
    if output is not None or config.summary_path:
        finish_run(
            summary, command="stat", title=title, config=config, outputs=[output] if output else [], started=started
        )
        return
    run = msgspec.convert(build(summary, command="stat", config=config, started=started), RunSummary)
    print_run_summary(run, title, quiet=config.quiet)


def _failed(summary: Summary, title: str, config: StatConfig, output: str | None, started: Any) -> bool:
    if not summary.ok:
        finish(summary, title, config, output, started)
    return not summary.ok


def run(config: StatConfig) -> int:
    io.configure_s3(config.s3)
    inputs, output = plan(config)
    if config.dryrun:
        for path in inputs:
            print(path)
        print(f"{len(inputs)} attribute file(s) -> {output or 'stdout'}")
        return 0
    started = now()
    work = work_dir(config)
    claim_dir(work, "stat")
    first = [Unit(input=p, outputs=(_partial(work, "summaries", p), _partial(work, "distinct", p))) for p in inputs]
    pass1 = make_executor(config, "stat: summaries").run(SummarizeJob(config), first)
    if _failed(pass1, "dolma stat (pass 1: summaries)", config, output, started):
        return 1
    merged = merge_partials(first, config.bins)
    edges = {name: stats.bin_edges(partial, config.bins) for name, partial in merged.items()}
    sub = f"histograms-{_digest(edges)}"
    second = [Unit(input=unit.outputs[1], outputs=(_partial(work, sub, unit.input),)) for unit in first]
    # Pass 2 bins the distinct values pass 1 stored (numpy, milliseconds per file): locally that is cheaper in this
    # process than starting a second worker pool; on Spark it stays on the executors, beside the partials.
    local = config.executor != "spark"
    binning = msgspec.structs.replace(config, processes=1) if local else config
    pass2 = make_executor(binning, "stat: histograms").run(HistogramJob(config, edges), second)
    if _failed(pass2, "dolma stat (pass 2: histograms)", config, output, started):
        return 1
    lines = summary_lines(merged, edges, merge_counts(second, edges))
    if not lines:
        log.warning(
            "stat: no attribute values found%s", f" for keys matching {config.regex!r}" if config.regex else ""
        )
    data = b"".join(msgspec.json.encode(line) + b"\n" for line in lines)
    if output is not None:
        atomic.write_bytes(output, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    remove_claimed_dir(work)
    pass1.seconds += pass2.seconds
    pass1.stats.bytes_out = len(data)
    if not config.quiet:
        print_table(lines, config.total)
    finish(pass1, "dolma stat" + (f": {output}" if output else ""), config, output, started)
    return 0
