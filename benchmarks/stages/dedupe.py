"""`dolma dedupe` per mode (documents by exact text, paragraphs, paragraphs by n-gram), ours vs the reference.

Quality, against the planted ground truth (ground_truth.json), on the case's input:

- documents mode: in a planted group of k identical documents, k - 1 must be marked (recall); any other marked
  document is a false positive (FP rate = those / documents outside the groups).
- paragraph modes: the planted duplicated paragraphs are the `shared_paragraphs` of the partial duplicates
  (prefix/suffix copies, copied blocks, boilerplate) and the paragraphs of the exact-duplicate groups. A text that
  occurs k times in the input must be marked k - 1 times (recall). A marked occurrence of a paragraph text that
  occurs only once in the input is a false positive (FP rate over all such occurrences); in the n-gram mode such
  a paragraph can rightly be marked when it shares 13-grams with others (the spliced documents of big corpora do),
  so that column is "unique paragraphs marked" there, not an error rate.

Datatrove's dedupers (MinHash, sentence and exact-substring dedupe) are not Bloom-filter dedupe and are not
compared.
"""

from __future__ import annotations

import bisect
from collections import Counter
from pathlib import Path

import yaml

from benchmarks.harness import Case, Command, Context, Impl
from benchmarks.stages.common import documents_pattern, dolma_command, read_jsonl_dir

NAME = "bench_dups"
NGRAM = {"ngram_length": 13, "stride": 1, "overlap_threshold": 0.5}
# mode -> (config, input cap in MB of text, keys per MB of text for sizing the Bloom filter)
MODES: dict[str, tuple[dict, float | None, int]] = {
    "documents (key $.text)": (
        {"documents": {"attribute_name": "bff_duplicate_text", "key": "$.text"}},
        None,
        2_000,
    ),
    "paragraphs": ({"paragraphs": {"attribute_name": "bff_duplicate_paragraph_spans"}}, 100, 20_000),
    "paragraphs by 13-gram (threshold 0.5)": (
        {"paragraphs": {"attribute_name": "bff_duplicate_paragraph_spans", "by_ngram": NGRAM}},
        10,
        250_000,
    ),
}


def config(ctx: Context, workdir: Path, mode: dict, processes: int, keys_per_mb: int) -> dict:
    mb = ctx.current.mb if ctx.current else ctx.ground_truth["text_bytes"] / 1e6
    return {
        "documents": [documents_pattern(workdir)],
        "processes": processes,
        "dedupe": {"name": NAME, "skip_empty": True, **mode},
        "bloom_filter": {
            "file": str(workdir / "bloom.bin"),
            "read_only": False,
            "estimated_doc_count": max(10_000, int(mb * keys_per_mb)),
            "desired_false_positive_rate": 1e-6,
        },
    }


def rate(num: int, den: int, digits: int = 4) -> str:
    return f"{num / den:.{digits}f}" if den else "n/a"


def documents_quality(ctx: Context):
    def check(workdir: Path) -> dict:
        ids = set(ctx.input_ids)
        marked = {r["id"] for r in read_jsonl_dir(workdir / "attributes" / NAME) if any(r["attributes"].values())}
        groups = [ids.intersection(g["ids"]) for g in ctx.ground_truth["exact_duplicates"]]
        in_groups = {i for g in groups for i in g}
        expected = sum(max(0, len(g) - 1) for g in groups)
        found = sum(min(max(0, len(g) - 1), len(marked & g)) for g in groups)
        negatives = len(ids) - len(in_groups)
        return {"recall": rate(found, expected), "FP rate": rate(len(marked - in_groups), negatives, 5)}

    return check


class ParagraphTruth:
    """Paragraph occurrences of the input: text counts, per-document paragraph offsets, planted texts."""

    def __init__(self, ctx: Context) -> None:
        self.counts: Counter[str] = Counter()
        self.docs: dict[str, tuple[list[int], list[str]]] = {}  # id -> (paragraph start offsets, texts)
        for rec in read_jsonl_dir(ctx.input_root / "documents", "*/*.jsonl.gz"):
            starts, texts, pos = [], [], 0
            for para in rec["text"].split("\n"):
                if para.strip():
                    starts.append(pos)
                    texts.append(para)
                    self.counts[para] += 1
                pos += len(para) + 1
            self.docs[rec["id"]] = (starts, texts)
        ids = set(self.docs)
        planted: set[str] = set()
        for group in ctx.ground_truth["partial_duplicates"]:
            if ids.issuperset(group["ids"]):
                planted.update(group["shared_paragraphs"])
        for group in ctx.ground_truth["exact_duplicates"]:
            first = next((i for i in group["ids"] if i in ids), None)
            if first:
                planted.update(self.docs[first][1])
        self.planted = {t for t in planted if self.counts[t] > 1}


def paragraph_quality(ctx: Context, ngram: bool):
    cache: dict[Path, ParagraphTruth] = {}

    def check(workdir: Path) -> dict:
        root = ctx.input_root
        if root not in cache:
            cache[root] = ParagraphTruth(ctx)
        truth = cache[root]
        marked: Counter[str] = Counter()
        for rec in read_jsonl_dir(workdir / "attributes" / NAME):
            starts, texts = truth.docs.get(rec["id"], ([], []))
            hit = set()
            for spans in rec["attributes"].values():
                for start, end, *_ in spans or []:
                    i = bisect.bisect_right(starts, start) - 1
                    # the paragraph containing the span's start; spans on blank lines are ignored
                    if i >= 0 and start < starts[i] + len(texts[i]) + 1 and end > start:
                        hit.add(i)
            for i in hit:
                marked[texts[i]] += 1
        expected = sum(truth.counts[t] - 1 for t in truth.planted)
        found = sum(min(truth.counts[t] - 1, marked[t]) for t in truth.planted)
        unique = [t for t, n in truth.counts.items() if n == 1]
        false = sum(marked[t] for t in unique)
        q = {"recall (planted paragraphs)": rate(found, expected)}
        q["unique paragraphs marked" if ngram else "FP rate"] = rate(false, len(unique), 5)
        q["marked paragraphs"] = sum(marked.values())
        return q

    return check


def cases(ctx: Context) -> list[Case]:
    if "dedupe" not in ctx.our_commands:
        return [Case("dedupe", "all modes", missing="no `dolma dedupe` command on this branch")]
    out = []
    for name, (mode, cap_mb, keys_per_mb) in MODES.items():

        def make(exe: Path, reference: bool, mode=mode, keys_per_mb=keys_per_mb):
            def prepare(workdir: Path, p: int) -> Command:
                cmd = dolma_command(exe, ctx, workdir, [], reference=reference)
                cfg = workdir / "dedupe.yaml"
                cfg.write_text(yaml.safe_dump(config(ctx, workdir, mode, p, keys_per_mb)))
                cmd.argv += ["-c", str(cfg), "dedupe"]
                return cmd

            return prepare

        check = documents_quality(ctx) if "documents" in mode else paragraph_quality(ctx, "by_ngram" in str(mode))
        case = Case("dedupe", name, input_mb=cap_mb)
        case.impls["ours"] = Impl(make(ctx.ours, False), check)
        if ctx.reference:
            case.impls["reference"] = Impl(make(ctx.reference, True), check)
        out.append(case)
    return out
