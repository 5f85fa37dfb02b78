"""What `dolma report` shows, gathered from its inputs: histograms, run summaries, mix thresholds and documents.

Kept apart from the charts (mixers/report_charts.py) so that every number on the page can be tested without a
browser. Run summaries are read by dolma's one reader (`read_run_summary`): one without its optional sections just
has no chart for them, a broken one is skipped and listed on the page. A wrong value that would draw a wrong
picture is an error (a histogram whose edges do not match its counts names file, line and field).
"""

from __future__ import annotations

import glob
import itertools
import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

import msgspec

from dolma import atomic, io
from dolma.config import build
from dolma.documents import BadLine, attributes_path, has_document_fields, read_records, with_attributes
from dolma.errors import BadInputError, ConfigError
from dolma.executors.summary import NotARunSummaryError, RunSummary, read_run_summary
from mixers.jsonpath import Threshold
from mixers.mix_config import MixConfig
from mixers.rules import CompiledRule, StreamRules, score_in_range

log = logging.getLogger("dolma")


@dataclass
class Histogram:
    """One line of `dolma stat`'s summaries.jsonl.gz: `counts[i]` values fell in `[bins[i], bins[i + 1])`."""

    name: str
    counts: list[int]
    bins: list[float]

    def share_where(self, op: str, value: float) -> float:
        """Estimated share of the counted values with `value op threshold` true: a bin counts when its middle does."""
        total = sum(self.counts)
        if not total:
            return 0.0
        hits = sum(c for c, lo, hi in zip(self.counts, self.bins, self.bins[1:]) if compare(op, (lo + hi) / 2, value))
        return hits / total

    def share_in(self, low: float | None, high: float | None) -> float:
        """Estimated share of the counted values in [low, high) (span replacement bounds), bins by their middle."""
        total = sum(self.counts)
        middles = [(lo + hi) / 2 for lo, hi in itertools.pairwise(self.bins)]
        hits = sum(c for c, m in zip(self.counts, middles) if score_in_range(m, low, high))
        return hits / total if total else 0.0


def compare(op: str, a: float, b: float) -> bool:
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _where(path: str, line: int, reason: str, name: str) -> BadInputError:
    return BadInputError(path, line, reason, name)


def _histogram(path: str, lineno: int, row: Any) -> Histogram:
    if not isinstance(row, dict):
        raise _where(path, lineno, "a summary line is a JSON object with name, counts and bins", "name")
    name, counts, bins = row.get("name"), row.get("counts"), row.get("bins")
    if not isinstance(name, str) or not name:
        raise _where(path, lineno, "missing or not a string", "name")
    if not isinstance(counts, list) or not all(type(c) is int and c >= 0 for c in counts):
        raise _where(path, lineno, f"{name}: a list of counts (integers >= 0) is expected", "counts")
    if not isinstance(bins, list) or not all(type(b) in (int, float) and math.isfinite(b) for b in bins):
        raise _where(path, lineno, f"{name}: a list of finite numbers is expected", "bins")
    if len(bins) != len(counts) + 1:
        raise _where(
            path, lineno, f"{name}: {len(counts)} counts need {len(counts) + 1} bin edges, got {len(bins)}", "bins"
        )
    if any(hi < lo for lo, hi in itertools.pairwise(bins)):
        raise _where(path, lineno, f"{name}: bin edges must not decrease", "bins")
    return Histogram(name, counts, [float(b) for b in bins])


def load_histograms(patterns: list[str]) -> dict[str, Histogram]:
    """Every histogram of the given summaries.jsonl(.gz) files by name; a name given twice is an error."""
    found: dict[str, Histogram] = {}
    where: dict[str, str] = {}
    for path in io.expand_globs(patterns) if patterns else []:
        for lineno, line in io.iter_lines(path):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                raise _where(path, lineno, "not a JSON object", "name") from None
            hist = _histogram(path, lineno, row)
            if hist.name in found:
                raise _where(
                    path, lineno, f"{hist.name} is also in {where[hist.name]}: give each histogram once", "name"
                )
            found[hist.name] = hist
            where[hist.name] = f"{path}:{lineno}"
    return found


def expand_summaries(patterns: list[str]) -> list[str]:
    """Files matching the patterns, hidden names included (commands write `.dolma-run-summary.<command>.json`),
    our own temporaries excluded. On S3 a hidden file is found by its exact path, not by a glob."""
    found: dict[str, None] = {}
    for pattern in patterns:
        if io.is_s3(pattern) or not io.has_magic(pattern):
            found.update(dict.fromkeys(io.glob(pattern)))
            continue
        for path in sorted(glob.glob(io.normalize(pattern), recursive=True)):
            if os.path.isfile(path) and atomic.temp_owner(os.path.basename(path)) is None:
                found[path] = None
    return sorted(found)


@dataclass
class RunSummaries:
    """The run summaries a report reads, by path, and the files it skipped (each with why)."""

    found: list[tuple[str, RunSummary]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def load_run_summaries(patterns: list[str]) -> RunSummaries:
    """Run summaries read by dolma's one reader (`read_run_summary`). A broken one (an older version, a field that
    does not match the schema, unreadable) is skipped and listed; a file of another kind is an error naming it."""
    summaries = RunSummaries()
    for path in expand_summaries(patterns):
        try:
            summaries.found.append((path, read_run_summary(path)))
        except NotARunSummaryError as exc:
            raise ConfigError(f"run_summaries: {path} is not a run summary ({exc.reason})") from None
        except ConfigError as exc:
            log.warning("report: skipping a broken run summary: %s", exc)
            summaries.skipped.append((path, str(exc)))
    return summaries


# ----------------------------------------------------------------------------------------------------------
# The mix config: its rules and thresholds, as the mixer compiles them
# ----------------------------------------------------------------------------------------------------------


@dataclass
class MixRule:
    """A stream's include or exclude rule, compiled by the mixer's own rule compiler."""

    stream: str
    kind: str  # "include" | "exclude"
    rule: CompiledRule
    documents: int = 0  # documents the rule was evaluated on (documents given)
    removed: int = 0  # of them, those the rule alone would remove

    @property
    def label(self) -> str:
        return f"{self.stream}: {self.kind} {self.rule.name}"

    def removes(self, doc: dict[str, Any]) -> bool:
        matched = self.rule.matches(doc)
        return not matched if self.kind == "include" else matched


@dataclass
class SpanEdit:
    """A span_replacement on `$.attributes.<key>`: spans scoring in [low, high) are replaced."""

    stream: str
    attribute: str
    low: float | None
    high: float | None
    spans: int = 0  # spans of the attribute seen in the documents given
    replaced: int = 0  # of them, those in range

    @property
    def bounds(self) -> str:
        low = "" if self.low is None else f"{self.low:g}"
        high = "" if self.high is None else f"{self.high:g}"
        return f"[{low}, {high})"


def load_mix_rules(path: str) -> tuple[list[MixRule], list[SpanEdit]]:
    """The include / exclude rules of every stream of a mix config (jq rules are listed but not run here), and
    its span replacements on attributes, all compiled by the mixer's rule compiler."""
    config = build(MixConfig, path)
    found, edits = [], []
    for stream in config.streams:
        compiled = StreamRules(stream)
        found.extend(MixRule(stream.name, "include", r) for r in compiled.include)
        found.extend(MixRule(stream.name, "exclude", r) for r in compiled.exclude)
        for selector, (low, high, _) in zip(compiled.selectors, compiled.bounds):
            if selector.attribute is not None and (low is not None or high is not None):
                edits.append(SpanEdit(stream.name, selector.attribute, low, high))
    return found, edits


def thresholds_of(rules: list[MixRule]) -> list[tuple[MixRule, Threshold]]:
    return [(rule, t) for rule in rules for t in rule.rule.thresholds]


# ----------------------------------------------------------------------------------------------------------
# Documents: exact shares, sources, languages and sample excerpts
# ----------------------------------------------------------------------------------------------------------

_doc_decoder = msgspec.json.Decoder(dict)


def _decode(line: bytes) -> dict[str, Any]:
    doc = _doc_decoder.decode(line)
    if not has_document_fields(doc):
        raise BadLine
    return doc


def _merge(doc: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    merged = doc.get("attributes")
    merged = dict(merged) if isinstance(merged, dict) else {}
    for attributes in rows:
        merged.update(attributes)
    doc["attributes"] = merged


def first_score(doc: dict[str, Any], key: str) -> float | None:
    """The first span's score of an attribute (the value `[0][2]` rules compare), None when there is none."""
    spans = doc["attributes"].get(key)
    if isinstance(spans, list) and spans and isinstance(spans[0], list) and len(spans[0]) >= 3:
        score = spans[0][2]
        if type(score) in (int, float) and math.isfinite(score):
            return float(score)
    return None


@dataclass
class Sample:
    doc_id: str
    source: str
    score: float
    excerpt: str


@dataclass
class Scan:
    """What one pass over the documents found."""

    documents: int = 0
    sources: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> documents, bytes, tokens
    languages: dict[str, int] = field(default_factory=dict)  # language -> documents where it scores highest
    # threshold index -> (samples the threshold removes, samples it keeps), closest to the threshold first
    samples: dict[int, tuple[list[Sample], list[Sample]]] = field(default_factory=dict)


def language_keys(keys: set[str]) -> dict[str, str]:
    """Attribute key -> language for language-ID attributes (`<experiment>__<tagger with 'lang'>__<language>`)."""
    found = {}
    for key in keys:
        parts = key.split("__")
        if len(parts) == 3 and "lang" in parts[1] and parts[2] and not parts[2].startswith("not_"):
            found[key] = parts[2]
    return found


def scan_documents(
    patterns: list[str],
    attribute_sets: list[str],
    document_dir: str,
    rules: list[MixRule],
    edits: list[SpanEdit],
    limits: list[tuple[MixRule, Threshold]],
    samples: int,
    excerpt_chars: int,
) -> Scan:
    """One pass: per-source sizes, the language mix, each rule's removals (exact) and the excerpts to show."""
    scan = Scan()
    candidates: dict[int, tuple[list[tuple[float, Sample]], list[tuple[float, Sample]]]] = {
        i: ([], []) for i in range(len(limits))
    }
    runnable = [r for r in rules if not r.rule.jq]
    for path in io.expand_documents(patterns, "documents"):
        attrs = [attributes_path(path, name, document_dir) for name in attribute_sets]
        rows = with_attributes(read_records(path, _decode), path, attrs, lambda d: d["id"], _merge)
        for _, doc, _ in rows:
            if doc is None:
                continue
            scan.documents += 1
            text = doc["text"]
            source = str(doc.get("source") or io.basename(io.dirname(path)))
            size = scan.sources.setdefault(source, {"documents": 0, "bytes": 0, "tokens": 0})
            size["documents"] += 1
            size["bytes"] += len(text.encode("utf-8", "surrogatepass"))
            size["tokens"] += len(text.split())
            languages = language_keys(set(doc["attributes"]))
            scores = [(s, lang) for key, lang in languages.items() if (s := first_score(doc, key)) is not None]
            if scores:
                best = max(scores)[1]
                scan.languages[best] = scan.languages.get(best, 0) + 1
            for rule in runnable:
                rule.documents += 1
                if rule.removes(doc):
                    rule.removed += 1
            for edit in edits:
                spans = doc["attributes"].get(edit.attribute)
                for span in spans if isinstance(spans, list) else []:
                    if isinstance(span, list) and len(span) >= 3 and type(span[2]) in (int, float):
                        edit.spans += 1
                        edit.replaced += score_in_range(span[2], edit.low, edit.high)
            for i, (rule, limit) in enumerate(limits):
                score = first_score(doc, limit.attribute)
                if score is None:
                    continue
                side = 0 if (rule.kind == "exclude") == compare(limit.op, score, limit.value) else 1
                pool = candidates[i][side]
                pool.append((abs(score - limit.value), Sample(str(doc["id"]), source, score, text[:excerpt_chars])))
                if len(pool) > 4 * samples:
                    pool.sort(key=lambda item: item[0])
                    del pool[samples:]
    for i, (removed, kept) in candidates.items():
        removed.sort(key=lambda item: item[0])
        kept.sort(key=lambda item: item[0])
        scan.samples[i] = ([s for _, s in removed[:samples]], [s for _, s in kept[:samples]])
    return scan
