"""`dolma tag`, one case per tagger family, ours vs the reference (and datatrove where it has an equivalent).

Families only include taggers that both this project and the reference register (`dolma list --plain`), so the
quality and PII rows appear by themselves once those taggers exist here.

Datatrove equivalents are filters, not taggers: they drop documents instead of writing attributes, so the work
is comparable but not identical (datatrove's JsonlWriter writes the kept documents back, a tagger writes a
smaller attribute file). `LanguageFilter(languages=["en"])` is the counterpart of ft_lang_id_en_doc_v2 (both use
fastText lid.176); `GopherQualityFilter` of gopher_v1 and `C4QualityFilter` of c4_v1 (different rule sets in
detail). Length taggers and PII have no datatrove counterpart.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import Case, Command, Context, Impl, link_documents
from benchmarks.stages.common import documents_pattern, dolma_command, read_jsonl_dir

FAMILIES: dict[str, list[str]] = {
    "length taggers": [
        "char_length_v1",
        "char_length_with_paragraphs_v1",
        "whitespace_tokenizer_v1",
        "whitespace_tokenizer_with_paragraphs_v1",
    ],
    "language ID (ft_lang_id_en_doc_v2)": ["ft_lang_id_en_doc_v2"],
    "quality (gopher_v1, c4_v1)": ["gopher_v1", "c4_v1"],
    "PII (pii_regex_v1/v2)": ["pii_regex_v1", "pii_regex_with_counts_v2"],
}
DATATROVE_FILTERS = {"ft_lang_id_en_doc_v2": "language", "gopher_v1": "gopher", "c4_v1": "c4"}
EXPERIMENT = "bench"
DATATROVE_SCRIPT = Path(__file__).resolve().parent / "datatrove_filters.py"


def english_truth(ctx: Context) -> dict[str, bool]:
    """id -> planted language is English, for every id in the corpus ('mul' counts as not English)."""
    foreign = ctx.ground_truth["languages"]["non_english"]
    return {i: i not in foreign for i in ctx.all_ids}


def lang_check(ctx: Context):
    def check(workdir: Path) -> dict:
        truth = english_truth(ctx)
        correct = total = 0
        for rec in read_jsonl_dir(workdir / "attributes" / EXPERIMENT):
            spans = next((v for k, v in rec["attributes"].items() if k.endswith("__en")), None)
            if spans is None or rec["id"] not in truth:
                continue
            is_en = bool(spans) and spans[0][2] >= 0.5
            correct += is_en == truth[rec["id"]]
            total += 1
        return {"en accuracy": f"{correct / total:.4f}" if total else "n/a"}

    return check


def datatrove_lang_check(ctx: Context):
    def check(workdir: Path) -> dict:
        truth = english_truth(ctx)
        kept = {rec["id"] for rec in read_jsonl_dir(workdir / "output")}
        correct = sum((i in kept) == is_en for i, is_en in truth.items())
        return {"en accuracy": f"{correct / len(truth):.4f}"}

    return check


def cases(ctx: Context) -> list[Case]:
    out = []
    for family, wanted in FAMILIES.items():
        taggers = [t for t in wanted if t in ctx.our_taggers and t in ctx.reference_taggers]
        if not taggers:
            out.append(Case("tag", family, missing="taggers not registered here yet: " + ", ".join(wanted)))
            continue
        args = ["tag", "--documents", "{docs}", "--taggers", *taggers, "--experiment", EXPERIMENT, "--processes"]

        def ours(workdir: Path, p: int, args=args) -> Command:
            cmd = [a.replace("{docs}", documents_pattern(workdir)) for a in args]
            return dolma_command(ctx.ours, ctx, workdir, [*cmd, str(p), "--quiet"])

        def reference(workdir: Path, p: int, args=args) -> Command:
            cmd = [a.replace("{docs}", documents_pattern(workdir)) for a in args]
            return dolma_command(ctx.reference, ctx, workdir, [*cmd, str(p)], reference=True)

        is_lang = taggers == ["ft_lang_id_en_doc_v2"]
        check = lang_check(ctx) if is_lang else None
        case = Case("tag", family + (f": {', '.join(taggers)}" if len(taggers) > 1 else ""))
        case.impls["ours"] = Impl(ours, check)
        if ctx.reference:
            case.impls["reference"] = Impl(reference, check)
        dt = [DATATROVE_FILTERS[t] for t in taggers if t in DATATROVE_FILTERS]
        if ctx.datatrove_python and dt:

            def datatrove(workdir: Path, p: int, dt=dt) -> Command:
                link_documents(ctx.corpus, workdir)
                argv = [str(ctx.datatrove_python), str(DATATROVE_SCRIPT), "--documents", str(workdir / "documents")]
                argv += ["--output", str(workdir / "output"), "--workers", str(p), "--lid-model", ctx.lid_model]
                return Command([*argv, "--filters", *dt], cwd=workdir, env=ctx.reference_env)

            note = "filter (drops non-English), not a tagger" if is_lang else "filter, different rule details"
            case.impls["datatrove"] = Impl(datatrove, datatrove_lang_check(ctx) if is_lang else None, note=note)
        out.append(case)
    return out
