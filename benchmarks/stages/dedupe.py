"""`dolma dedupe` per mode (documents by exact text, paragraphs, paragraphs by n-gram), ours vs the reference.

Quality: for documents mode, recall and false-positive rate against the planted exact duplicates (in a group of
k identical documents, k - 1 must be marked; any other marked document is a false positive); for the paragraph
modes the number of marked paragraph spans (they should be equal between implementations; the corpus's spliced
documents share short paragraphs, so that number is larger than the planted boilerplate alone). Datatrove's
dedupers (MinHash, sentence and exact-substring dedupe) are not Bloom-filter dedupe and are not compared.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from benchmarks.harness import Case, Command, Context, Impl
from benchmarks.stages.common import documents_pattern, dolma_command, read_jsonl_dir

NAME = "bench_dups"
MODES = {
    "documents (key $.text)": {"documents": {"attribute_name": "bff_duplicate_text", "key": "$.text"}},
    "paragraphs": {"paragraphs": {"attribute_name": "bff_duplicate_paragraph_spans"}},
    "paragraphs by 13-gram (threshold 0.5)": {
        "paragraphs": {
            "attribute_name": "bff_duplicate_paragraph_spans",
            "by_ngram": {"ngram_length": 13, "stride": 1, "overlap_threshold": 0.5},
        }
    },
}


def config(ctx: Context, workdir: Path, mode: dict, processes: int) -> dict:
    return {
        "documents": [documents_pattern(workdir)],
        "processes": processes,
        "dedupe": {"name": NAME, "skip_empty": True, **mode},
        "bloom_filter": {
            "file": str(workdir / "bloom.bin"),
            "read_only": False,
            "estimated_doc_count": max(1000, ctx.ground_truth["num_documents"] * 40),
            "desired_false_positive_rate": 1e-6,
        },
    }


def documents_quality(ctx: Context):
    def check(workdir: Path) -> dict:
        marked = {r["id"] for r in read_jsonl_dir(workdir / "attributes" / NAME) if any(r["attributes"].values())}
        groups = [g["ids"] for g in ctx.ground_truth["exact_duplicates"]]
        in_groups = {i for g in groups for i in g}
        expected = sum(len(g) - 1 for g in groups)
        found = sum(min(len(g) - 1, len(marked.intersection(g))) for g in groups)
        false = len(marked - in_groups)
        negatives = ctx.ground_truth["num_documents"] - len(in_groups)
        return {"recall": f"{found / expected:.4f}" if expected else "n/a", "FP rate": f"{false / negatives:.5f}"}

    return check


def span_count(workdir: Path) -> dict:
    spans = sum(len(v) for r in read_jsonl_dir(workdir / "attributes" / NAME) for v in r["attributes"].values())
    return {"marked spans": spans}


def cases(ctx: Context) -> list[Case]:
    if "dedupe" not in ctx.our_commands:
        return [Case("dedupe", "all modes", missing="no `dolma dedupe` command on this branch")]
    out = []
    for name, mode in MODES.items():

        def make(exe: Path, reference: bool, mode=mode):
            def prepare(workdir: Path, p: int) -> Command:
                cmd = dolma_command(exe, ctx, workdir, [], reference=reference)
                cfg = workdir / "dedupe.yaml"
                cfg.write_text(yaml.safe_dump(config(ctx, workdir, mode, p)))
                cmd.argv += ["-c", str(cfg), "dedupe"]
                return cmd

            return prepare

        check = documents_quality(ctx) if "documents" in mode else span_count
        case = Case("dedupe", name)
        case.impls["ours"] = Impl(make(ctx.ours, False), check)
        if ctx.reference:
            case.impls["reference"] = Impl(make(ctx.reference, True), check)
        out.append(case)
    return out
