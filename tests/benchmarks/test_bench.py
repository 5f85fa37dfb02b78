"""The benchmark corpus builder's pure parts and the harness logic (no Debian packages, no timing assertions)."""

from __future__ import annotations

import gzip
import json
import random
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks" / "corpus"))
sys.path.insert(0, str(REPO))

import build_bench as bb  # noqa: E402
import build_sample as bs  # noqa: E402

from benchmarks import harness  # noqa: E402

MAN_PAGE = r""".\" a comment that must not appear
.TH LS 1 "2023" "GNU coreutils" "User Commands"
.SH NAME
ls \- list directory contents
.SH DESCRIPTION
List information about the FILEs (the current directory by default).
Sort entries alphabetically if none of \fB\-cftuvSUX\fR nor \fB\-\-sort\fP is specified.
.TP
\fB\-a\fR, \fB\-\-all\fR
do not ignore entries starting with .
.SS "Exit status"
.BR ls (1)
returns 0 if OK\(em1 if minor problems.
"""


def test_groff_blocks_turns_a_man_page_into_headings_and_paragraphs():
    title, blocks = bb.groff_blocks(MAN_PAGE)
    assert title == "LS(1)"
    assert [(b.kind, b.text) for b in blocks] == [
        ("h", "NAME"),
        ("p", "ls - list directory contents"),
        ("h", "DESCRIPTION"),
        (
            "p",
            "List information about the FILEs (the current directory by default). Sort entries alphabetically "
            "if none of -cftuvSUX nor --sort is specified.",
        ),
        ("p", "-a, --all do not ignore entries starting with ."),
        ("h", "Exit status"),
        ("p", "ls(1) returns 0 if OK—1 if minor problems."),
    ]
    assert [b.level for b in blocks if b.kind == "h"] == [2, 2, 3]


def test_groff_blocks_skips_so_redirects():
    assert bb.groff_blocks(".so man1/other.1\n")[1] == []


def doc(text: str, lang: str, key: str) -> bs.SourceDoc:
    return bs.SourceDoc(
        text=text,
        source="debian-docs",
        url=f"https://example.org/{key}",
        license="CC0-1.0",
        origin=f"test: {key}",
        lang=lang,
        created="2024-01-01T00:00:00.000Z",
        key=key,
        pool=f"test/{lang}",
    )


def words(rng: random.Random, n: int) -> str:
    return " ".join(f"w{rng.randrange(100000)}" for _ in range(n))


def pools(n_en: int = 20, n_de: int = 4) -> dict[str, list[bs.SourceDoc]]:
    rng = random.Random(7)
    make = lambda lang, i: doc(f"Title {lang} {i}\n{words(rng, 30)}\n{words(rng, 20)}\nshort line", lang, f"{lang}{i}")  # noqa: E731
    return {"test/en": [make("en", i) for i in range(n_en)], "test/de": [make("de", i) for i in range(n_de)]}


def test_splice_document_keeps_layout_and_first_halves_but_makes_new_text():
    p = pools()["test/en"]
    template, donors = p[0], p[1:]
    spliced = bb.splice_document(template, donors, random.Random(1), 0)
    t_paras, s_paras = template.text.split("\n"), spliced.text.split("\n")
    assert len(s_paras) == len(t_paras)
    for t, s in zip(t_paras[1:3], s_paras[1:3]):
        half = t.split(" ")[: len(t.split(" ")) // 2]
        assert s.split(" ")[: len(half)] == half and s != t
    donor_paras = {x for d in p for x in d.text.split("\n")}
    assert not set(s_paras[1:3]) & donor_paras
    assert spliced.origin.startswith("spliced: ") and spliced.key != template.key and not spliced.derived
    assert bb.splice_document(template, donors, random.Random(1), 0) == spliced  # deterministic


def test_grow_to_size_reaches_the_target_with_ten_percent_non_english():
    src = pools()
    target = 3 * sum(len(d.text.encode()) for docs in src.values() for d in docs)
    docs = bb.grow_to_size(src, target, 0.10, random.Random(3))
    total = sum(len(d.text.encode()) for d in docs)
    assert total >= target and total - max(len(d.text.encode()) for d in docs) < target
    foreign = sum(d.lang != "en" for d in docs)
    assert abs(foreign - 0.10 * len(docs)) <= 1
    originals = {d.key for p in src.values() for d in p}
    assert originals <= {d.key for d in docs}  # every unique document first, then spliced ones
    assert any(d.origin.startswith("spliced:") for d in docs)
    assert len({d.text for d in docs}) == len(docs)
    again = bb.grow_to_size(pools(), target, 0.10, random.Random(3))
    assert [d.text for d in again] == [d.text for d in docs]


def test_grow_to_size_samples_when_the_sources_are_bigger_than_the_target():
    docs = bb.grow_to_size(pools(), 500, 0.10, random.Random(3))
    assert not any(d.origin.startswith("spliced:") for d in docs) and 0 < len(docs) < 24


def test_write_corpus_splits_sources_into_files_and_records_them(tmp_path, monkeypatch):
    monkeypatch.setattr(bb, "BYTES_PER_FILE", 400)
    docs = bs.assign_ids(bb.grow_to_size(pools(), 3000, 0.10, random.Random(3)), random.Random(4), bb.SOURCES, 7)
    files = bb.write_corpus(docs, tmp_path, random.Random(5))
    assert len(files) > 1
    seen = []
    for f in files:
        with gzip.open(tmp_path / f["path"], "rt", encoding="utf-8") as fh:
            recs = [json.loads(line) for line in fh]
        assert len(recs) == f["num_documents"] and recs[0]["id"] == f["first_id"] and recs[-1]["id"] == f["last_id"]
        assert set(recs[0]) == {"id", "text", "source", "added", "created", "version", "metadata"}
        seen += [r["id"] for r in recs]
    assert sorted(seen) == sorted(d.id for d in docs) and len(set(seen)) == len(seen)


VOCAB = [
    "the",
    "file",
    "value",
    "function",
    "returns",
    "data",
    "string",
    "example",
    "table",
    "query",
    "server",
    "module",
    "list",
    "use",
    "set",
    "call",
]


def prose(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) + rng.choice(["", "s", "ed", "ing"]) + "x" * rng.randrange(4) for _ in range(n))


def pooled_doc(rng: random.Random, pool: str, lang: str, i: int, paras: int = 10) -> bs.SourceDoc:
    text = "\n".join([f"Title {pool} {i}"] + [prose(rng, rng.randint(12, 30)) for _ in range(paras)])
    d = doc(text, lang, f"{pool}/{i}")
    d.pool = pool
    d.source = "python-docs" if pool.startswith("python") else "debian-docs" if lang == "en" else "man-pages"
    return d


def realistic_pools() -> dict[str, list[bs.SourceDoc]]:
    rng = random.Random(11)
    names = [("python-docs/en", "en", 40), ("kjv/chapters", "en", 15), ("debmake-doc/en", "en", 8)]
    names += [("sqlite-docs/en", "en", 40 + bb.SPARE_SQLITE), ("man-pages/de", "de", 10)]
    paras = {"sqlite-docs/en": 30}  # the spares make two 30,000-character one-line documents
    return {pool: [pooled_doc(rng, pool, lang, i, paras.get(pool, 10)) for i in range(n)] for pool, lang, n in names}


def corpus_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_build_from_pools_is_deterministic_and_plants_duplicates(tmp_path):
    footer, mit = ["Python docs footer paragraph, copyright notice."], ["Permission is hereby granted, free."]
    gts = [bb.build_from_pools(realistic_pools(), tmp_path / n, 0.4, 5, footer, mit) for n in ("a", "b")]
    assert corpus_bytes(tmp_path / "a") == corpus_bytes(tmp_path / "b")
    gt = gts[0]
    assert gt["text_bytes"] >= 400_000 and gt["spliced_documents"] > 0
    assert gt["exact_duplicates"] and gt["partial_duplicates"] and gt["pii"]
    other = bb.build_from_pools(realistic_pools(), tmp_path / "c", 0.4, 6, footer, mit)
    assert other["exact_duplicates"] != gt["exact_duplicates"]  # the seed matters


def test_indexed_planter_picks_unused_matching_documents_and_falls_back_for_rare_kinds():
    rng = random.Random(2)
    docs = [pooled_doc(rng, "python-docs/en", "en", i) for i in range(300)]
    docs[123].pool = "rare/en"
    p = bb.IndexedPlanter(list(docs), random.Random(3), max_tries=5)
    first = p.pick(50, lambda d: int(d.key.split("/")[-1]) % 2 == 0)
    assert len({d.key for d in first}) == 50 and all(int(d.key.split("/")[-1]) % 2 == 0 for d in first)
    assert p.pick(3, lambda d: d.pool == "rare/en") == [docs[123]]  # found by the full-scan fallback
    rest = p.pick(1000)
    assert len(rest) == 300 - 51 and not {d.key for d in rest} & {d.key for d in first}
    again = bb.IndexedPlanter(list(docs), random.Random(3), max_tries=5)
    assert again.pick(50, lambda d: int(d.key.split("/")[-1]) % 2 == 0) == first


# -------------------------------------------------------------------------------------------------------------
# harness
# -------------------------------------------------------------------------------------------------------------


def test_measure_counts_orphaned_workers(tmp_path):
    """A worker that outlives its parent (like a forkserver's) must still count towards peak memory."""
    script = tmp_path / "orphan.py"
    script.write_text(
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(0.3)\n"
        "        block = bytearray(150 * 1024 * 1024)\n"
        "        for i in range(0, len(block), 4096): block[i] = 1\n"
        "        open(sys.argv[1], 'w').write('done')\n"
        "    os._exit(0)\n"
        "sys.exit(3)\n"
    )
    marker = tmp_path / "marker"
    m = harness.measure(harness.Command([sys.executable, str(script), str(marker)], cwd=tmp_path), tmp_path / "x.log")
    assert m.returncode == 3
    assert marker.read_text() == "done"  # the grandchild was waited for
    assert m.max_rss_mb >= 150


def fake_case(tmp_path: Path, name: str) -> harness.Case:
    def prepare(impl: str):
        def run(workdir: Path, p: int) -> harness.Command:
            workdir.mkdir(parents=True, exist_ok=True)
            # long enough (0.2 s) that the 1 ms rounding of the reported wall time stays far below 1 %
            code = f"import time; time.sleep(0.2); open('out.txt', 'w').write('{impl} {p}')"
            return harness.Command([sys.executable, "-c", code], cwd=workdir)

        return run

    def check(workdir: Path) -> dict:
        return {"out": (workdir / "out.txt").read_text()}

    return harness.Case(
        "tag", name, impls={"ours": harness.Impl(prepare("ours"), check), "reference": harness.Impl(prepare("ref"))}
    )


def context(tmp_path: Path) -> harness.Context:
    gt = {"num_documents": 1000, "text_bytes": 2_000_000}
    return harness.Context(
        corpus=tmp_path,
        ground_truth=gt,
        ours=Path("dolma"),
        reference=None,
        datatrove_python=None,
        our_commands=set(),
        our_taggers=set(),
        reference_taggers=set(),
        reference_env={},
        scratch=tmp_path / "scratch",
    )


def test_run_cases_interleaves_repeats_and_summarizes(tmp_path):
    cases = [fake_case(tmp_path, "fake"), harness.Case("dedupe", "all modes", missing="no dedupe here")]
    log: list[str] = []
    rows = harness.run_cases(cases, context(tmp_path), [1, 2], 3, log=log.append)
    assert len(log) == 3 * 2 * 2
    first_impl = [line.split(" | ")[2].split()[0] for line in log[::4]]
    assert first_impl == ["ours", "reference", "ours"]  # the order rotates between repeats
    by = {(r.get("impl"), r.get("processes")): r for r in rows}
    ours = by[("ours", 2)]
    assert ours["runs"] == 3 and ours["status"] == "ok" and len(ours["walls"]) == 3
    assert ours["wall_s"] == pytest.approx(sorted(ours["walls"])[1], abs=1e-3)
    assert ours["docs_per_s"] == pytest.approx(1000 / ours["wall_s"], rel=1e-2)
    assert ours["quality"] == {"out": "ours 2"}
    assert by[("reference", 1)]["quality"] == {}
    assert rows[-1] == {
        "stage": "dedupe",
        "case": "all modes",
        "status": "not implemented yet",
        "why": "no dedupe here",
    }
    table = harness.markdown_table(rows)
    assert "not implemented yet (no dedupe here)" in table
    assert len(table.splitlines()) == 2 + 4 + 1


def test_failed_runs_are_reported(tmp_path):
    case = harness.Case(
        "tag",
        "broken",
        impls={
            "ours": harness.Impl(
                lambda w, p: harness.Command([sys.executable, "-c", "raise SystemExit(2)"], cwd=tmp_path)
            )
        },
    )
    rows = harness.run_cases([case], context(tmp_path), [1], 1, log=lambda s: None)
    assert rows[0]["status"] == "failed" and rows[0]["failed_runs"] == 1 and "wall_s" not in rows[0]
    assert "| failed |" in harness.markdown_table(rows)


def test_markdown_ratio_is_ours_over_this():
    rows = [
        {"stage": "s", "case": "c", "impl": i, "processes": 1, "status": "ok", "wall_s": w, "cpu_s": 1.0,
         "max_rss_mb": 10.0, "docs_per_s": 1.0, "mb_per_s": 1.0, "quality": {}}
        for i, w in (("ours", 2.0), ("reference", 8.0))
    ]  # fmt: skip
    lines = harness.markdown_table(rows).splitlines()
    assert lines[3].split(" | ")[11] == "0.25"


def test_replace_between_markers():
    text = "# T\n\n<!-- bench:start -->\nold\n<!-- bench:end -->\n\nafter\n"
    out = harness.replace_between_markers(text, "new table")
    assert out == "# T\n\n<!-- bench:start -->\nnew table\n<!-- bench:end -->\n\nafter\n"
    appended = harness.replace_between_markers("# T\n", "x")
    assert appended.endswith("<!-- bench:start -->\nx\n<!-- bench:end -->\n")


def write_docs(path: Path, docs: list[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)
    return path.stat().st_size


def tiny_corpus(root: Path) -> dict:
    files = []
    text_bytes = 0
    for source, n in (("a", 40), ("b", 10)):
        docs = [{"id": f"{source}{i:03d}", "text": "x" * 100} for i in range(n)]
        path = root / "documents" / source / "part-0000.jsonl.gz"
        files.append({"path": path.relative_to(root).as_posix(), "bytes": write_docs(path, docs)})
        text_bytes += 100 * n
    return {"files": files, "text_bytes": text_bytes, "num_documents": 50}


def test_subset_takes_the_same_share_of_every_file_and_is_reused(tmp_path):
    corpus = tmp_path / "corpus-1mb"
    gt = tiny_corpus(corpus)
    ctx = context(tmp_path)
    ctx.corpus, ctx.ground_truth, ctx.all_ids = corpus, gt, [f"a{i:03d}" for i in range(40)]
    whole = ctx.input_for(None)
    assert whole.root == corpus and whole.text_bytes == 5000
    assert ctx.input_for(1.0).root == corpus  # a cap above the corpus size: the corpus itself
    half = ctx.input_for(0.0025)
    assert half.root != corpus and half.text_bytes == 2500 and half.num_documents == 25
    assert half.ids == [f"a{i:03d}" for i in range(20)] + [f"b{i:03d}" for i in range(5)]
    data = (half.root / "documents" / "a" / "part-0000.jsonl.gz").read_bytes()
    again = harness.make_subset(corpus, gt, 0.0025, tmp_path / "other")
    assert (again.root / "documents" / "a" / "part-0000.jsonl.gz").read_bytes() == data  # deterministic
    ctx.input_scale = 0
    assert ctx.input_for(0.0025).root == corpus  # scale 0: no caps


def test_run_cases_reports_the_input_of_each_case(tmp_path):
    corpus = tmp_path / "corpus-1mb"
    gt = tiny_corpus(corpus)
    ctx = context(tmp_path)
    ctx.corpus, ctx.ground_truth = corpus, gt
    case = fake_case(tmp_path, "capped")
    case.input_mb = 0.001
    rows = harness.run_cases([case], ctx, [1], 1, log=lambda s: None)
    assert {r["input_docs"] for r in rows} == {10} and {r["input_mb"] for r in rows} == {0.0}
    assert rows[0]["docs_per_s"] == pytest.approx(10 / rows[0]["wall_s"], rel=1e-2)


def test_paragraph_dedupe_quality_counts_planted_and_unique_paragraphs(tmp_path):
    from benchmarks.stages import dedupe

    corpus = tmp_path / "corpus"
    texts = {
        "d1": "Shared boilerplate line\nunique one",
        "d2": "unique two\nShared boilerplate line",
        "d3": "Shared boilerplate line\nunique three\nnatural repeat",
        "d4": "natural repeat\nunique four",
    }
    write_docs(corpus / "documents" / "s" / "part-0000.jsonl.gz", [{"id": k, "text": v} for k, v in texts.items()])
    ctx = context(tmp_path)
    ctx.corpus = corpus
    ctx.ground_truth = {
        "partial_duplicates": [{"ids": ["d1", "d2", "d3"], "shared_paragraphs": ["Shared boilerplate line"]}],
        "exact_duplicates": [],
    }
    attrs = tmp_path / "work" / "attributes" / dedupe.NAME / "s"
    marked = {
        "d1": [],
        "d2": [[11, 34, 1.0]],  # the shared line (its second occurrence)
        "d3": [[24, 38, 1.0]],  # "unique three": a false positive
        "d4": [[0, 14, 1.0]],  # "natural repeat" second occurrence: neither planted nor false
    }
    write_docs(attrs / "part-0000.jsonl.gz", [{"id": k, "attributes": {"a": v}} for k, v in marked.items()])
    q = dedupe.paragraph_quality(ctx, ngram=False)(tmp_path / "work")
    assert q["recall (planted paragraphs)"] == "0.5000"  # 1 of the 2 expected (3 occurrences - 1)
    assert q["FP rate"] == f"{1 / 4:.5f}"  # 4 unique paragraphs, 1 marked
    assert q["marked paragraphs"] == 3


def test_estimate_rescales_the_part_proportional_to_the_input():
    rows = [
        {"stage": "s", "case": "whole", "impl": "ours", "processes": 1, "wall_s": 10.0, "input_mb": 20.0,
         "cpu_s": 4.0},
        {"stage": "s", "case": "capped", "impl": "ours", "processes": 1, "wall_s": 10.0, "input_mb": 20.0,
         "input_cap_mb": 30},
        {"stage": "s", "case": "broken", "impl": "ours", "processes": 1, "status": "failed", "input_mb": 20.0},
    ]  # fmt: skip
    total, parts = harness.estimate_seconds(rows, 300, 3)
    assert [p[-2:] for p in parts] == [(300, 2 + 8 * 15), (30, 2 + 8 * 1.5)]
    assert total == pytest.approx(3 * (122 + 14))
    assert harness.estimate_seconds(rows, 300, 1, scale=0)[0] == pytest.approx(244)
    assert harness.estimate_seconds(rows[:1], 300, 1, from_cpu=True)[0] == pytest.approx(2 + 2 * 15)


def test_drop_repeated_synthetic_documents_and_their_pii():
    a = bs.synthetic_doc("Contact us at x@example.com", "pii-page-001", "https://a.example.com/1")
    b = bs.synthetic_doc("Contact us at x@example.com", "pii-page-002", "https://a.example.com/2")
    c = bs.synthetic_doc("Contact us at y@example.com", "pii-page-003", "https://a.example.com/3")
    truth = bs.GroundTruth(pii=[(a, "EMAIL_ADDRESS", "x"), (b, "EMAIL_ADDRESS", "x"), (c, "EMAIL_ADDRESS", "y")])
    truth.templated = {"pii_page_0": [a, b, c]}
    kept = bb.drop_repeated_synthetic([a, b, c], truth)
    assert kept == [a, c] and [x[0] for x in truth.pii] == [a, c] and truth.templated["pii_page_0"] == [a, c]
    bs.check_unique_texts(kept, truth)


# script directories must not shadow packages


def top_level_packages(root: Path) -> set[str]:
    """The importable names a repository root provides: its packages (directories with __init__.py) and modules."""
    packages = {p.parent.name for p in root.glob("*/__init__.py")}
    return packages | {p.stem for p in root.glob("*.py")}


def shadowing_names(scripts_root: Path, protected: set[str]) -> list[str]:
    """Modules and packages in any directory under scripts_root that holds Python files, named like a protected
    package: `python DIR/script.py` puts DIR first on sys.path, where such a file hides the package."""
    clashes = []
    for directory in sorted({p.parent for p in scripts_root.rglob("*.py")}):
        names = {p.stem for p in directory.glob("*.py")} | {p.parent.name for p in directory.glob("*/__init__.py")}
        clashes += [(directory / name).relative_to(scripts_root).as_posix() for name in sorted(names & protected)]
    return clashes


def test_shadowing_names_finds_a_module_named_like_a_package(tmp_path):
    (tmp_path / "taggers").mkdir()
    (tmp_path / "taggers" / "__init__.py").write_text("")
    (tmp_path / "tool.py").write_text("")
    scripts = tmp_path / "benchmarks"
    (scripts / "sub" / "json").mkdir(parents=True)
    (scripts / "run.py").write_text("")
    (scripts / "sub" / "taggers.py").write_text("")
    (scripts / "sub" / "json" / "__init__.py").write_text("")
    assert top_level_packages(tmp_path) == {"taggers", "tool"}
    assert shadowing_names(scripts, top_level_packages(tmp_path)) == ["sub/taggers"]
    assert shadowing_names(scripts, {"json", "run"}) == ["run", "sub/json"]


def test_no_benchmark_script_directory_shadows_a_package():
    # benchmarks/taggers.py once hid the taggers package from `python benchmarks/bench_spark.py`.
    protected = top_level_packages(REPO)
    assert {"dolma", "taggers", "mixers", "benchmarks"} <= protected
    assert shadowing_names(REPO / "benchmarks", protected | set(sys.stdlib_module_names)) == []


def test_warc_stage_rates_are_per_record_and_mb_of_warc(tmp_path, monkeypatch):
    """The warc stage reads a WARC corpus of its own: docs/s is records/s and MB/s is MB of .warc.gz/s."""
    from benchmarks.stages import STAGES
    from benchmarks.stages import warc as warc_stage

    assert "warc" in STAGES
    ctx = context(tmp_path)
    ctx.our_commands = {"warc"}
    root = tmp_path / "warc-0.5mb"  # what build_warc.py leaves (the stage builds it when COMPLETE is missing)
    (root / "warc").mkdir(parents=True)
    (root / "corpus.json").write_text(json.dumps({"records": 250, "warc_bytes": 500_000}))
    (root / "COMPLETE").write_text("x\n")
    monkeypatch.setenv("BENCH_WARC_MB", "0.5")
    cases = warc_stage.cases(ctx)
    assert [c.name.split()[0] for c in cases] == ["resiliparse", "trafilatura"]
    case = cases[0]
    argv = case.impls["ours"].prepare(tmp_path / "w", 2).argv
    assert argv[1:3] == ["warc", "--documents"] and argv[argv.index("--processes") + 1] == "2"
    case.impls = {"ours": harness.Impl(lambda w, p: harness.Command([sys.executable, "-c", "pass"], cwd=tmp_path))}
    rows = harness.run_cases([case], ctx, [1], 1, log=lambda s: None)
    assert rows[0]["input_docs"] == 250 and rows[0]["input_mb"] == 0.5  # the rates are computed on these


def test_tag_stage_has_the_offline_toxicity_rows(tmp_path):
    """`make bench` times toxicity_offensive_v1 and its paragraph form (ours only: the reference's toxicity
    taggers download their models), with 1 and 2 processes like every case, and reports the flagged share."""
    from benchmarks.stages import tag as tag_stage

    ctx = context(tmp_path)
    ctx.our_taggers = {"toxicity_offensive_v1", "toxicity_offensive_paragraph_v1", "naughty_words_v1"}
    cases = {c.name: c for c in tag_stage.cases(ctx) if "toxicity" in c.name}
    assert len(cases) == 3 and all(set(c.impls) == {"ours"} and not c.missing for c in cases.values())
    case = next(c for n, c in cases.items() if "toxicity_offensive_v1" in n)
    for p in (1, 2):
        cmd = case.impls["ours"].prepare(tmp_path / f"w{p}", p)
        assert cmd.argv[cmd.argv.index("--taggers") + 1] == "toxicity_offensive_v1"
        assert cmd.argv[cmd.argv.index("--processes") + 1] == str(p)
    out = tmp_path / "w1" / "attributes" / tag_stage.EXPERIMENT / "s" / "a.jsonl.gz"
    out.parent.mkdir(parents=True)
    rows = [
        {"id": str(i), "attributes": {"bench__toxicity_offensive_v1__offensive": [[0, 5, s]]}}
        for i, s in enumerate([0.1, 0.7, 0.2, 0.4])
    ]
    with gzip.open(out, "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    assert case.impls["ours"].check(tmp_path / "w1") == {"docs >= 0.5": "0.2500"}
    ctx.our_taggers = set()
    assert all(c.missing for c in tag_stage.cases(ctx) if "toxicity" in c.name)


def test_stat_stage_times_both_on_shared_attributes_and_counts_values(tmp_path):
    """`make bench` times `dolma stat` (ours and the reference) with the same arguments on attributes made once."""
    from benchmarks.stages import STAGES
    from benchmarks.stages import attribute_stats as stat_stage

    assert "stat" in STAGES
    ctx = context(tmp_path)
    assert all(c.missing for c in stat_stage.cases(ctx))
    ctx.our_commands = {"stat"}
    ctx.reference = Path("dolma-ref")
    (case,) = stat_stage.cases(ctx)
    assert set(case.impls) == {"ours", "reference"} and not case.missing
    attrs = ctx.scratch / f"stat-attributes-{ctx.input_root.name}" / "attributes"
    (attrs / "stat" / "s").mkdir(parents=True)
    (attrs / ".done").touch()  # made once: no tagging here
    rows = [{"id": str(i), "attributes": {"stat__gopher_v1__word_count": [[0, 5, float(i)]]}} for i in range(7)]
    with gzip.open(attrs / "stat" / "s" / "a.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    argvs = {}
    for impl in ("ours", "reference"):
        cmd = case.impls[impl].prepare(tmp_path / impl, 2)
        argvs[impl] = cmd.argv[1:]
        assert cmd.argv[cmd.argv.index("--processes") + 1] == "2"
    assert argvs["ours"][0] == "stat" and [a.replace("reference", "ours") for a in argvs["reference"]] == argvs["ours"]
    result = run_cli(*argvs["ours"], "--quiet", cwd=tmp_path / "ours")
    assert result.returncode == 0, result.stderr
    assert case.impls["ours"].check(tmp_path / "ours") == {"histograms": 2, "values counted": 14}


def test_near_dup_stage_runs_ours_and_datasketch_and_finds_the_planted_pairs(tmp_path):
    """`make bench` gains a near_dup stage: ours (the `dolma dedupe` minhash command) and datasketch run on the
    same files and report clusters, near-duplicates, candidate pairs and the recall of the planted pairs;
    datatrove's four steps get the same bands x rows."""
    from benchmarks.stages import STAGES, near_dup

    assert "near_dup" in STAGES
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(5000)]
    docs, near, exact = [], [], []
    for i in range(40):
        words = rng.choices(vocab, k=200)
        docs.append({"id": f"d{i}", "text": " ".join(words)})
        if i % 4 == 0:  # a copy with two words replaced (shingle Jaccard ~0.9)
            edited = list(words)
            edited[50], edited[150] = "changed", "edited"
            docs.append({"id": f"d{i}-near", "text": " ".join(edited)})
            near.append({"ids": [f"d{i}", f"d{i}-near"]})
        if i % 10 == 1:
            docs.append({"id": f"d{i}-copy", "text": docs[-1]["text"]})
            exact.append({"ids": [docs[-2]["id"], f"d{i}-copy"]})
    corpus = tmp_path / "corpus"
    path = corpus / "documents" / "src" / "a.jsonl.gz"
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)
    ctx = context(tmp_path)
    assert all(c.missing for c in near_dup.cases(ctx))
    ctx.corpus = corpus
    ctx.ground_truth = {
        "num_documents": len(docs),
        "text_bytes": sum(len(d["text"]) for d in docs),
        "near_duplicates": near,
        "exact_duplicates": exact,
    }
    ctx.all_ids = [d["id"] for d in docs]
    ctx.our_commands = {"dedupe"}
    ctx.ours = Path(sys.executable).parent / "dolma"
    ctx.datatrove_python = Path("dt-python")
    case, whole = near_dup.cases(ctx)
    assert set(case.impls) == {"ours", "datasketch", "datatrove"} and case.input_mb == near_dup.INPUT_MB
    assert set(whole.impls) == {"ours", "datasketch"} and whole.input_mb is None
    argv = case.impls["datatrove"].prepare(tmp_path / "dt", 2).argv
    bands, rows = near_dup.band_rows()
    assert argv[argv.index("--bands") + 1] == str(bands) and argv[argv.index("--rows") + 1] == str(rows)
    assert argv[argv.index("--workers") + 1] == "2"
    del case.impls["datatrove"]
    results = harness.run_cases([case], ctx, [1, 2], 1, log=lambda s: None)
    assert [(r["impl"], r["processes"], r["status"]) for r in results] == [
        ("ours", 1, "ok"),
        ("datasketch", 1, "ok"),
        ("ours", 2, "ok"),
        ("datasketch", 2, "ok"),
    ]
    for r in results:
        q = r["quality"]
        assert q["clusters"] == len(near) + len(exact) and q["near-duplicates"] == len(near) + len(exact)
        assert q["recall (planted near-dups)"] == "1.000" and q["recall (exact)"] == "1.000"
        assert q["pairs"] >= len(near) + len(exact)


def test_near_dup_stage_reads_datatrove_clusters_from_its_outputs(tmp_path):
    """datatrove's quality comes from the cluster ids its filter step writes and the size of its pair files."""
    from benchmarks.stages import near_dup

    ctx = context(tmp_path)
    ctx.all_ids = ["a", "b", "c", "d"]
    ctx.ground_truth = {"near_duplicates": [{"ids": ["a", "b"]}, {"ids": ["c", "d"]}], "exact_duplicates": []}
    out = tmp_path / "w" / "datatrove"
    for part, recs in (("kept", [("a", 7), ("c", -1)]), ("removed", [("b", 7), ("d", -1)])):
        (out / part).mkdir(parents=True)
        with gzip.open(out / part / "00000.jsonl.gz", "wt") as fh:
            fh.writelines(
                json.dumps({"id": i, "text": "", "metadata": {"minhash_cluster_id": c}}) + "\n" for i, c in recs
            )
    (out / "buckets").mkdir()
    (out / "buckets" / "00000_00.dups").write_bytes(bytes(16 * 3))
    q = near_dup.datatrove_check(ctx)(tmp_path / "w")
    assert q == {
        "clusters": 1,
        "near-duplicates": 1,
        "pairs": 3,
        "recall (planted near-dups)": "0.500",
        "recall (exact)": "n/a",
    }


def test_stages_prepare_their_work_directories_with_the_shared_helpers():
    # a fresh work directory with linked inputs, and attributes tagged once per input, are made in
    # benchmarks/stages/common.py (and harness.link_documents), not again in each stage
    for path in sorted((REPO / "benchmarks" / "stages").glob("*.py")):
        if path.name == "common.py":
            continue
        source = path.read_text(encoding="utf-8")
        assert "shutil.rmtree(" not in source and "os.symlink(" not in source, path.name
        assert "def shared_attributes(" not in source, path.name
