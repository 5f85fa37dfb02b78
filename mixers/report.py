"""`dolma report`: one self-contained HTML page (and optional SVG / PNG figures) to look at a corpus and a mix.

It lives in mixers because it reads mix configs with the mixer's own parser and rule compiler: the thresholds
drawn on the histograms, and the share of documents each rule removes, are those `dolma mix` would apply.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from dolma import atomic, io
from dolma.config import Base
from dolma.documents import attributes_path, sanitize_key
from dolma.errors import PathSafetyError
from dolma.executors.summary import RunSummary
from dolma.io import S3Config
from dolma.paths import canonical, check_name, check_outputs, check_path
from mixers import report_charts as charts
from mixers.jsonpath import Threshold
from mixers.report_data import (
    Histogram,
    MixRule,
    Scan,
    SpanEdit,
    expand_summaries,
    language_keys,
    load_histograms,
    load_mix_rules,
    load_run_summaries,
    scan_documents,
    thresholds_of,
)

log = logging.getLogger(__name__)


class ReportConfig(Base):
    output: Annotated[str, Meta(description="The HTML file to write (local or s3://); it works offline.")]
    stats: Annotated[
        list[str], Meta(description="Paths or globs of `dolma stat` summaries.jsonl.gz files (histograms).")
    ] = []
    run_summaries: Annotated[
        list[str],
        Meta(
            description="Paths or globs of run summary JSON files (sources, dedupe, mix rules, tokens), e.g. "
            "demo-output/**/.dolma-run-summary.*.json (hidden names are matched)."
        ),
    ] = []
    mix: Annotated[
        str | None, Meta(description="A mix config: its rules' score thresholds are drawn on the histograms.")
    ] = None
    documents: Annotated[
        list[str],
        Meta(description="Globs of documents: exact shares removed per rule, sizes per source, sample excerpts."),
    ] = []
    attributes: Annotated[
        list[str], Meta(description="Attribute sets read beside `documents` (<root>/attributes/<set>/...).")
    ] = []
    document_dir: Annotated[str, Meta(description="Name of the documents directory level.")] = "documents"
    figures: Annotated[
        str | None, Meta(description="Directory for one figure file per chart (for papers); none by default.")
    ] = None
    figure_format: Annotated[Literal["svg", "png"], Meta(description="Format of the figure files.")] = "svg"
    samples: Annotated[int, Meta(ge=0, description="Excerpts shown on each side of every threshold.")] = 3
    excerpt_chars: Annotated[int, Meta(ge=1, description="Characters of each excerpt.")] = 300
    title: Annotated[str, Meta(description="Title of the page.")] = "dolma report"
    s3: Annotated[S3Config, Meta(description="S3 access: endpoint_url, profile, region.")] = msgspec.field(
        default_factory=S3Config
    )


CONFIG = ReportConfig


# ----------------------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------------------

_STAGES = ["tag", "dedupe", "mix", "tokens", "warc", "stat"]


def _sources_section(scan: Scan | None, summaries: list[tuple[str, RunSummary]]) -> list[charts.Chart]:
    if scan is not None and scan.sources:
        rows = [{"source": name, **sizes} for name, sizes in sorted(scan.sources.items())]
        found = [
            charts.measures("sources", "Documents, bytes and tokens per source", rows, "source", list(rows[0])[1:])
        ]
        found[0].note = "From the documents: text bytes in UTF-8, tokens split on whitespace."
    else:
        found = []
        by_stage = sorted(
            ((path, s) for path, s in summaries if s.sources),
            key=lambda item: _STAGES.index(item[1].command) if item[1].command in _STAGES else len(_STAGES),
        )
        if by_stage:
            path, first = by_stage[0]
            rows = [
                {"source": src.name, "documents": src.documents_in, "bytes": src.bytes_in} for src in first.sources
            ]
            chart = charts.measures(
                "sources", "Documents and bytes per source", rows, "source", ["documents", "bytes"]
            )
            chart.note = f"Read by `dolma {first.command}` ({path})."
            found.append(chart)
    shards = [
        {"shard": io.basename(shard.path), "tokens": shard.tokens}
        for _, s in summaries
        if s.command == "tokens" and s.tokens is not None
        for shard in s.tokens.shards
    ]
    if shards:
        found.append(charts.bars("tokens", "Tokens per shard (dolma tokens)", shards, "tokens", "shard"))
    return found


def _language_section(scan: Scan | None, hists: dict[str, Histogram]) -> list[charts.Chart]:
    if scan is not None and scan.languages:
        rows = [{"language": k, "documents": v} for k, v in sorted(scan.languages.items())]
        chart = charts.bars("languages", "Language mix", rows, "documents", "language")
        chart.note = "Each document counted once, for the language whose language-ID attribute scores highest."
        return [chart]
    keys = language_keys({name.removesuffix("/score") for name in hists if name.endswith("/score")})
    rows = [
        {
            "language": lang,
            "spans": round(hists[f"{key}/score"].share_where(">=", 0.5) * sum(hists[f"{key}/score"].counts)),
        }
        for key, lang in sorted(keys.items())
    ]
    if not rows:
        return []
    chart = charts.bars("languages", "Language mix", rows, "spans", "language")
    chart.note = "Estimated from the histograms: spans whose language score is at least 0.5 (bins by their middle)."
    return [chart]


def _share(rule: MixRule, limit: Threshold, hist: Histogram) -> str:
    if rule.documents:
        return f"removes {rule.removed / rule.documents:.1%}"
    share = hist.share_where(limit.op, limit.value)
    return f"removes ~{(share if rule.kind == 'exclude' else 1 - share):.1%}"


def _edit_lines(edit: SpanEdit, hist: Histogram) -> list[dict[str, Any]]:
    """A line at each bound of a span replacement, labelled with the share of spans it replaces."""
    if edit.spans:
        share = f"{edit.replaced / edit.spans:.1%}"
    else:
        share = f"~{hist.share_in(edit.low, edit.high):.1%}"
    label = f"{edit.stream} span_replacement {edit.bounds}: replaces {share} of spans"
    return [{"value": v, "label": label} for v in (edit.low, edit.high) if v is not None]


def _histogram_section(
    hists: dict[str, Histogram], limits: list[tuple[MixRule, Threshold]], edits: list[SpanEdit]
) -> tuple[list[charts.Chart], list[list[Any]]]:
    found, undrawn = [], []
    drawn: set[int] = set()
    for name, hist in sorted(hists.items()):
        if not name.endswith("/score"):
            continue
        key = name.removesuffix("/score")
        lines = []
        for i, (rule, limit) in enumerate(limits):
            if limit.attribute == key:
                drawn.add(i)
                label = f"{rule.stream} {rule.kind} {limit.op} {limit.value:g}: {_share(rule, limit, hist)}"
                lines.append({"value": limit.value, "label": label})
        for edit in edits:
            if edit.attribute == key:
                lines += _edit_lines(edit, hist)
        found.append(charts.histogram(f"hist-{key}", key, hist.counts, hist.bins, lines))
    for i, (rule, limit) in enumerate(limits):
        if i not in drawn:
            undrawn.append([rule.label, f"{limit.attribute} {limit.op} {limit.value:g}", "no histogram in `stats`"])
    for edit in edits:
        if f"{edit.attribute}/score" not in hists:
            undrawn.append([f"{edit.stream}: span_replacement", f"{edit.attribute} {edit.bounds}", "no histogram"])
    if found and any(rule.documents for rule, _ in limits):
        found[0].note = "Shares removed are exact (each rule alone on the documents given); ~ marks estimates."
    elif found and limits:
        found[0].note = "Shares removed (~) are estimated from the histogram bins; give `documents` for exact ones."
    return found, undrawn


def _dedupe_rows(summaries: list[tuple[str, RunSummary]]) -> list[dict[str, Any]]:
    rows = []
    for _, s in summaries:
        if s.command != "dedupe" or s.dedupe is None:
            continue
        total = s.totals.documents_in
        for mode, marks in sorted(s.dedupe.modes.items()):
            rows.append({"mode": mode, "duplicate rate": round(marks.documents_marked / total, 6) if total else 0.0})
    return rows


def _rule_rows(summaries: list[tuple[str, RunSummary]]) -> list[dict[str, Any]]:
    return [
        {"rule": f"{rule.stream}: {rule.kind} {rule.rule}", "documents removed": rule.documents_removed}
        for _, s in summaries
        if s.command == "mix"
        for rule in s.rules
    ]


def _skipped_html(skipped: list[tuple[str, str]]) -> str:
    """The run summaries the report could not read: listed on the page, so a missing chart has its reason."""
    if not skipped:
        return ""
    return '<p class="note">Run summaries skipped (not readable as run summaries):</p>' + charts.table(
        ["file", "why"], [[path, why] for path, why in skipped]
    )


def _samples_html(limits: list[tuple[MixRule, Threshold]], scan: Scan | None) -> str:
    if scan is None:
        return '<p class="note">Give `documents` (and `attributes`) to see sample documents around each threshold.</p>'
    parts = []
    for i, (rule, limit) in enumerate(limits):
        removed, kept = scan.samples.get(i, ([], []))
        rows = [["removed", s.source, s.doc_id, f"{s.score:g}", s.excerpt] for s in removed]
        rows += [["kept", s.source, s.doc_id, f"{s.score:g}", s.excerpt] for s in kept]
        heading = f"{rule.label} ({limit.attribute} {limit.op} {limit.value:g})"
        parts.append(f"<h3>{charts.html.escape(heading)}</h3>")
        parts.append(charts.table(["side", "source", "id", "score", "excerpt"], rows, excerpt_column=4))
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------------


def _check_paths(config: ReportConfig, inputs: list[str], doc_inputs: list[str]) -> None:
    check_path(config.output, "output")
    check_name(config.document_dir, "document_dir")
    out = canonical(config.output)
    for path in inputs:
        if canonical(path) == out:
            raise PathSafetyError(f"report: refusing to write {config.output}: it is one of the inputs ({path})")
    check_outputs("report", doc_inputs, files=[io.normalize(config.output)], document_dir=config.document_dir)
    if config.figures is not None:
        check_path(config.figures, "figures")
        check_outputs("report: figures", inputs, dirs=[config.figures], document_dir=config.document_dir)


def _warn_unmatched(config: ReportConfig) -> None:
    """An optional input that matches nothing only hides its charts: say so instead of failing."""
    for pattern in config.stats:
        if not io.glob(pattern):
            log.warning("report: stats pattern %s matches no file; no histograms from it", pattern)
    for pattern in config.run_summaries:
        if not expand_summaries([pattern]):
            log.warning("report: run_summaries pattern %s matches no file; no charts from it", pattern)


def run(config: ReportConfig) -> int:
    io.configure_s3(config.s3)
    _warn_unmatched(config)
    hists = load_histograms(config.stats)
    summaries = load_run_summaries(config.run_summaries)
    rules, edits = load_mix_rules(config.mix) if config.mix else ([], [])
    limits = thresholds_of(rules)
    doc_files = io.expand_documents(config.documents, "documents") if config.documents else []
    attr_files = [attributes_path(p, a, config.document_dir) for p in doc_files for a in config.attributes]
    summary_paths = [path for path, _ in summaries.found] + [path for path, _ in summaries.skipped]
    inputs = [*io.expand_globs(config.stats), *summary_paths, *doc_files, *attr_files]
    inputs += [config.mix] if config.mix else []
    _check_paths(config, inputs, [*doc_files, *attr_files])
    scan = None
    if doc_files:
        scan = scan_documents(
            config.documents,
            config.attributes,
            config.document_dir,
            rules,
            edits,
            limits,
            config.samples,
            config.excerpt_chars,
        )
    hist_charts, undrawn = _histogram_section(hists, limits, edits)
    dedupe, removed = _dedupe_rows(summaries.found), _rule_rows(summaries.found)
    sections: list[tuple[str, list[charts.Chart], str]] = [
        ("Sources", _sources_section(scan, summaries.found), ""),
        ("Language mix", _language_section(scan, hists), ""),
        ("Quality attributes and thresholds", hist_charts, _undrawn_html(undrawn)),
    ]
    if dedupe:
        sections.append(
            ("Duplicates", [charts.bars("dedupe", "Duplicate rate by mode", dedupe, "duplicate rate", "mode")], "")
        )
    if removed:
        sections.append(
            (
                "What each mix rule removed",
                [charts.bars("rules", "Documents removed per rule (dolma mix)", removed, "documents removed", "rule")],
                "",
            )
        )
    if limits:
        sections.append(("Documents on either side of each threshold", [], _samples_html(limits, scan)))
    sections.append(("Run summaries skipped", [], _skipped_html(summaries.skipped)))
    sections = [s for s in sections if s[1] or s[2]]
    every = [chart for _, found, _ in sections for chart in found]
    with atomic.AtomicWriter(config.output, compression=None) as out:
        out.write(charts.page(config.title, sections).encode())
    if config.figures is not None:
        for i, chart in enumerate(every):
            name = f"{i:02d}-{sanitize_key(chart.name)[:80]}.{config.figure_format}"
            atomic.write_bytes(io.join(config.figures, name), charts.render_file(chart, config.figure_format))
    skipped = f"; {len(summaries.skipped)} broken run summary file(s) skipped" if summaries.skipped else ""
    print(f"report: {len(every)} charts written to {config.output}{skipped}")
    return 0


def _undrawn_html(rows: list[list[Any]]) -> str:
    if not rows:
        return ""
    return '<p class="note">Thresholds not drawn:</p>' + charts.table(["rule", "threshold", "why"], rows)
