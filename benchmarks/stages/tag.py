"""`dolma tag`, one case per tagger family, ours vs the reference (and datatrove where it has an equivalent).

Families only include taggers that both this project and the reference register (`dolma list --plain`), so the
quality and PII rows appear by themselves once those taggers exist here. OURS_ONLY families (the offline toxicity
taggers) have an "ours" row only.

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

# family -> (taggers, input cap in MB of text; see harness.Input). The caps keep the reference's slow taggers
# (its repetition taggers run at well under 0.1 MB/s) within the time budget of `make bench`; see docs/benchmarks.md.
FAMILIES: dict[str, tuple[list[str], float | None]] = {
    "length (char_length_v1, whitespace_tokenizer_v1 and their *_with_paragraphs_v1)": (
        [
            "char_length_v1",
            "char_length_with_paragraphs_v1",
            "whitespace_tokenizer_v1",
            "whitespace_tokenizer_with_paragraphs_v1",
        ],
        60,
    ),
    "language ID (ft_lang_id_en_doc_v2)": (["ft_lang_id_en_doc_v2"], 30),
    "language ID by paragraph (ft_lang_id_en_paragraph_v2)": (["ft_lang_id_en_paragraph_v2"], 5),
    "quality: gopher_v1": (["gopher_v1"], 8),
    "quality: c4_v1": (["c4_v1"], 8),
    "quality: repetitions_v1, paragraph_repetitions_v1": (["repetitions_v1", "paragraph_repetitions_v1"], 1),
    "quality: not_alphanum_paragraph_v1": (["not_alphanum_paragraph_v1"], 20),
    "PII (pii_regex_v2, pii_regex_with_counts_fast_v2)": (["pii_regex_v2", "pii_regex_with_counts_fast_v2"], 20),
}
# Taggers only this project has offline: no reference or datatrove row (the reference's toxicity taggers, the
# Jigsaw fastText models, download a large model each at run time). family -> (taggers, input cap in MB of text).
OURS_ONLY: dict[str, tuple[list[str], float | None]] = {
    "toxicity: toxicity_offensive_v1 (offline, ours only)": (["toxicity_offensive_v1"], 30),
    "toxicity by paragraph: toxicity_offensive_paragraph_v1 (offline, ours only)": (
        ["toxicity_offensive_paragraph_v1"],
        30,
    ),
    "toxicity: naughty_words_v1 (word list, ours only)": (["naughty_words_v1"], 30),
}
FLAG_TYPES = ("__offensive", "__has_naughty_word")
PII_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS")
DATATROVE_FILTERS = {"ft_lang_id_en_doc_v2": "language", "gopher_v1": "gopher", "c4_v1": "c4"}
EXPERIMENT = "bench"
DATATROVE_SCRIPT = Path(__file__).resolve().parent / "datatrove_filters.py"


def english_truth(ctx: Context) -> dict[str, bool]:
    """id -> planted language is English, for every id in the corpus ('mul' counts as not English)."""
    foreign = ctx.ground_truth["languages"]["non_english"]
    return {i: i not in foreign for i in ctx.input_ids}


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


def pii_check(ctx: Context):
    """Share of the documents with planted PII-like strings that pii_regex_v2 marks, and other documents it marks
    (real documentation has e-mail addresses and IP addresses too, so those are not all false positives)."""

    def check(workdir: Path) -> dict:
        planted = set(ctx.ground_truth["pii"]).intersection(ctx.input_ids)
        marked = set()
        for rec in read_jsonl_dir(workdir / "attributes" / EXPERIMENT):
            if any(v for k, v in rec["attributes"].items() if "__pii_regex_v2__" in k and k.endswith(PII_TYPES)):
                marked.add(rec["id"])
        recall = len(planted & marked) / len(planted) if planted else float("nan")
        return {"planted PII docs marked": f"{recall:.4f}", "other docs marked": len(marked - planted)}

    return check


def offensive_check(ctx: Context):
    """Share of the documents with some `offensive` (or `has_naughty_word`) span >= 0.5. The bench corpus is
    documentation and the Bible: every such document is a false positive or a non-English page."""

    def check(workdir: Path) -> dict:
        flagged = total = 0
        for rec in read_jsonl_dir(workdir / "attributes" / EXPERIMENT):
            spans = [s for k, v in rec["attributes"].items() if k.endswith(FLAG_TYPES) for s in v]
            flagged += any(s[2] >= 0.5 for s in spans)
            total += 1
        return {"docs >= 0.5": f"{flagged / total:.4f}" if total else "n/a"}

    return check


def ours_only_cases(ctx: Context) -> list[Case]:
    out = []
    for family, (wanted, cap_mb) in OURS_ONLY.items():
        if not all(t in ctx.our_taggers for t in wanted):
            out.append(Case("tag", family, missing="taggers not registered here yet: " + ", ".join(wanted)))
            continue
        args = ["tag", "--documents", "{docs}", "--taggers", *wanted, "--experiment", EXPERIMENT, "--processes"]

        def ours(workdir: Path, p: int, args=args) -> Command:
            cmd = [a.replace("{docs}", documents_pattern(workdir)) for a in args]
            return dolma_command(ctx.ours, ctx, workdir, [*cmd, str(p), "--quiet"])

        case = Case("tag", family, input_mb=cap_mb)
        case.impls["ours"] = Impl(ours, offensive_check(ctx))
        out.append(case)
    return out


def cases(ctx: Context) -> list[Case]:
    out = []
    for family, (wanted, cap_mb) in FAMILIES.items():
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
        check = lang_check(ctx) if is_lang else pii_check(ctx) if "pii_regex_v2" in taggers else None
        label = family if taggers == wanted else f"{family} (only {', '.join(taggers)})"
        case = Case("tag", label, input_mb=cap_mb)
        case.impls["ours"] = Impl(ours, check)
        if ctx.reference:
            case.impls["reference"] = Impl(reference, check)
        dt = [DATATROVE_FILTERS[t] for t in taggers if t in DATATROVE_FILTERS]
        if ctx.datatrove_python and dt:

            def datatrove(workdir: Path, p: int, dt=dt) -> Command:
                link_documents(ctx.input_root, workdir)
                argv = [str(ctx.datatrove_python), str(DATATROVE_SCRIPT), "--documents", str(workdir / "documents")]
                argv += ["--output", str(workdir / "output"), "--workers", str(p), "--lid-model", ctx.lid_model]
                return Command([*argv, "--filters", *dt], cwd=workdir, env=ctx.reference_env)

            note = "filter (drops non-English), not a tagger" if is_lang else "filter, different rule details"
            case.impls["datatrove"] = Impl(datatrove, datatrove_lang_check(ctx) if is_lang else None, note=note)
        out.append(case)
    return out + ours_only_cases(ctx)
