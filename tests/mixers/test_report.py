"""`dolma report`: the numbers it shows (against brute force on the tagged sample corpus), the thresholds it reads
from a mix config through the mixer's own parser, hostile text, bad inputs, figure files, and the page opened by a
real headless Chromium with networking off (console errors, drawn marks, thresholds on the histograms, screenshot).

`dolma stat` lands separately; its output format (`<report>/summaries.jsonl.gz`, one line per `<key>/score` and
`<key>/length` with `name`, `counts`, `bins`) is produced here with numpy from the attribute files.
Over 400 lines on purpose: one module so that every test shares the tagged corpus fixture (tagging is the slow part).
"""

from __future__ import annotations

import gzip
import html
import json
import os
import re
import shutil
from pathlib import Path

import msgspec
import numpy as np
import pytest
import yaml

from mixers.jsonpath import JsonPath, Threshold
from mixers.mix_config import Rule
from mixers.rules import CompiledRule, CompiledSelector
from tests.conftest import REPO, read_jsonl, run_cli, write_jsonl_gz
from tests.helpers.browser import Browser, chromium_binary

SAMPLE = REPO / "tests" / "data" / "sample" / "documents"
TAGGERS = ["char_length_v1", "ft_lang_id_en_doc_v2", "random_number_v1"]
LENGTH = "char_length_v1__char_length_v1__length"
ENGLISH = "ft_lang_id_en_doc_v2__ft_lang_id_en_doc_v2__en"
RANDOM = "random_number_v1__random_number_v1__random"
# Text a page must show as text: executed as HTML it would log a console error (caught by the browser test).
HOSTILE = [
    '</script><script>console.error("injected script ran")</script>',
    '<img src="x" onerror="console.error(\'injected handler ran\')"> & <b>bold</b>',
]


def write_stat_summaries(attr_root: Path, out: Path, bins: int = 20) -> dict[str, list[float]]:
    """What `dolma stat` writes, computed with numpy: a histogram of span scores and of span lengths per key."""
    scores: dict[str, list[float]] = {}
    lengths: dict[str, list[float]] = {}
    for path in sorted(attr_root.glob("**/*.jsonl.gz")):
        for row in read_jsonl(path):
            for key, spans in row["attributes"].items():
                for start, end, score in spans:
                    scores.setdefault(key, []).append(score)
                    lengths.setdefault(key, []).append(end - start)
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt") as fh:
        for suffix, values in (("score", scores), ("length", lengths)):
            for key, vals in sorted(values.items()):
                counts, edges = np.histogram(np.array(vals, dtype=float), bins=bins)
                line = {"name": f"{key}/{suffix}", "counts": counts.tolist(), "bins": edges.tolist()}
                fh.write(json.dumps(line) + "\n")
    return scores


def mix_config(root: Path) -> dict:
    return {
        "streams": [
            {
                "name": "english-long",
                "documents": [str(root / "documents" / "**" / "*.jsonl.gz")],
                "attributes": TAGGERS,
                "filter": {
                    "include": [f"$.attributes[?(@.{ENGLISH}[0][2] >= 0.5)]"],
                    "exclude": [
                        f"$.attributes[?(@.{LENGTH}[0][2] < 200)]",
                        {"attribute": RANDOM, "op": ">=", "value": 0.9},
                    ],
                },
                "span_replacement": [{"span": f"$.attributes.{RANDOM}", "min_score": 0.25, "max_score": 0.5}],
                "output": {"path": str(root / "mixed")},
            }
        ]
    }


def run_summaries(root: Path) -> list[Path]:
    """Run summaries in the shared schema (version 1), as the commands write them."""
    base = {"schema": "dolma-run-summary", "version": 1, "ok": True, "degraded": [], "config": {},
            "toolkit_version": "0.1.0", "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:01Z",
            "seconds": 1.0}  # fmt: skip
    dedupe = dict(base, command="dedupe", totals={"documents_in": 2400}, dedupe={
        "modes": {"documents": {"units_marked": 30, "documents_marked": 30},
                  "paragraphs": {"units_marked": 900, "documents_marked": 240}},
    })  # fmt: skip
    mix = dict(base, command="mix", rules=[
        {"stream": "english-long", "rule": "char_length < 200", "kind": "filter", "documents_removed": 321},
        {"stream": "english-long", "rule": "random >= 0.9", "kind": "filter", "documents_removed": 180},
    ])  # fmt: skip
    tokens = dict(base, command="tokens", tokens={"tokens": 1000, "documents": 10, "shards": [
        {"path": "tokens/part-0000.npy", "tokens": 600, "documents": 6},
        {"path": "tokens/part-0001.npy", "tokens": 400, "documents": 4},
    ]})  # fmt: skip
    tag = dict(base, command="tag", sources=[
        {"name": "python-docs", "documents_in": 1000, "documents_out": 1000, "bytes_in": 5000, "bytes_out": 0},
        {"name": "web-mixed", "documents_in": 400, "documents_out": 400, "bytes_in": 3000, "bytes_out": 0},
    ])  # fmt: skip
    paths = []
    for name, data in {"dedupe": dedupe, "mix": mix, "tokens": tokens, "tag": tag}.items():
        path = root / "runs" / name / f".dolma-run-summary.{name}.json"  # hidden, beside the outputs
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
        paths.append(path)
    # a run still writing its summary: a temporary, not read
    (root / "runs" / "mix" / ".dolma-run-summary.mix.json.tmp-host-1-0123abcd").write_text("{half")
    return paths


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The sample corpus plus a file of hostile texts, tagged, with stat summaries, a mix config, run summaries."""
    root = tmp_path_factory.mktemp("report") / "corpus"
    shutil.copytree(SAMPLE, root / "documents")
    hostile = [
        {"id": f"h{i}", "text": (text + " ") * 40, "source": "hostile<source>"} for i, text in enumerate(HOSTILE)
    ]
    write_jsonl_gz(root / "documents" / "hostile" / "part-0000.jsonl.gz", hostile)
    (root / "tag.yaml").write_text(
        yaml.safe_dump(
            {"documents": [str(root / "documents" / "**" / "*.jsonl.gz")], "taggers": TAGGERS, "processes": 2}
        )
    )
    proc = run_cli("-c", str(root / "tag.yaml"), "tag")
    assert proc.returncode == 0, proc.stderr[-3000:]
    write_stat_summaries(root / "attributes", root / "stats" / "summaries.jsonl.gz")
    (root / "mix.yaml").write_text(yaml.safe_dump(mix_config(root)))
    run_summaries(root)
    return root


def report_args(root: Path, output: Path, *extra: str, documents: bool = True) -> list[str]:
    args = ["report", "--output", str(output), "--stats", str(root / "stats" / "*.jsonl.gz")]
    args += [
        "--run_summaries",
        str(root / "runs" / "**" / ".dolma-run-summary.*.json"),
        "--mix",
        str(root / "mix.yaml"),
    ]
    if documents:
        args += ["--documents", str(root / "documents" / "**" / "*.jsonl.gz"), "--attributes", *TAGGERS]
    return [*args, *extra]


def page_specs(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="dolma-specs">(.*?)</script>', page, re.S)
    assert found
    return json.loads(found.group(1))


def threshold_labels(specs: dict) -> list[str]:
    """Every label drawn beside a threshold line on a histogram."""
    labels = []
    for spec in specs.values():
        for layer in spec.get("layer", []):
            if layer.get("mark", {}).get("type") == "text":
                labels += [v["label"] for v in layer["data"]["values"]]
    return labels


# ---------------------------------------------------------------------------------------------------------
# Thresholds come from the mixer's own parser
# ---------------------------------------------------------------------------------------------------------


def test_thresholds_are_read_by_the_rule_parser():
    assert JsonPath(f"$.attributes[?(@.{LENGTH}[0][2] < 200)]").thresholds == [Threshold(LENGTH, "<", 200)]
    # number on the left: the comparison is turned around; a span-list filter gives the score too
    assert JsonPath("$@.attributes[?(0.2 > @.k[0][2] || @.z[0][1] < 5)]").thresholds == [Threshold("k", "<", 0.2)]
    assert JsonPath("$.attributes.k[?(@[2] > 0.3)]").thresholds == [Threshold("k", ">", 0.3)]
    # not scores: a span's end offset, a metadata field, an equality
    assert JsonPath("$.metadata[?(@.x < 3)]").thresholds == []
    assert JsonPath("$.attributes[?(@.k[0][1] < 3 && @.k[0][2] == 1)]").thresholds == []
    assert JsonPath("$.attributes[?(@.k[0][2] < 1e999)]").thresholds == []  # no line at infinity
    assert CompiledSelector(f"$.attributes.{RANDOM}", "jsonpath", "here").attribute == RANDOM
    assert CompiledSelector(f"$.attributes.{RANDOM}[0]", "jsonpath", "here").attribute is None
    typed = msgspec.convert(
        {"all": [{"attribute": "q", "op": "<", "value": 0.1}, {"not": {"attribute": "w", "op": "exists"}}]}, Rule
    )
    assert CompiledRule(typed, "jsonpath", "here").thresholds == [Threshold("q", "<", 0.1)]
    assert CompiledRule(".attributes.k[0][2] < 0.5", "jq", "here").thresholds == []


# ---------------------------------------------------------------------------------------------------------
# The numbers on the page
# ---------------------------------------------------------------------------------------------------------


def brute_force(root: Path) -> dict:
    """Each rule's removals and the sizes per source, by plain Python over the documents and attribute files."""
    docs = {}
    for path in sorted((root / "documents").glob("**/*.jsonl.gz")):
        sub = path.relative_to(root / "documents")
        attrs: dict[str, dict] = {}
        for tagger in TAGGERS:
            for row in read_jsonl(root / "attributes" / tagger / sub):
                attrs.setdefault(row["id"], {}).update(row["attributes"])
        for doc in read_jsonl(path):
            docs[doc["id"]] = (doc, attrs[doc["id"]])
    score = {k: [a[k][0][2] if a.get(k) else None for _, a in docs.values()] for k in (LENGTH, ENGLISH, RANDOM)}
    n = len(docs)
    sources: dict[str, dict[str, int]] = {}
    for doc, _ in docs.values():
        s = sources.setdefault(doc["source"], {"documents": 0, "bytes": 0, "tokens": 0})
        s["documents"] += 1
        s["bytes"] += len(doc["text"].encode())
        s["tokens"] += len(doc["text"].split())
    return {
        "documents": n,
        "include": sum(not (v is not None and v >= 0.5) for v in score[ENGLISH]) / n,
        "length": sum(v is not None and v < 200 for v in score[LENGTH]) / n,
        "random": sum(v is not None and v >= 0.9 for v in score[RANDOM]) / n,
        "replaced": [0.25 <= s[2] < 0.5 for _, a in docs.values() for s in a.get(RANDOM, [])],
        "sources": sources,
    }


def test_report_shows_exact_shares_sources_and_languages(corpus, tmp_path):
    out = tmp_path / "report.html"
    proc = run_cli(*report_args(corpus, out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = out.read_text()
    specs = page_specs(page)
    truth = brute_force(corpus)
    labels = threshold_labels(specs)
    assert f"english-long include >= 0.5: removes {truth['include']:.1%}" in labels
    assert f"english-long exclude < 200: removes {truth['length']:.1%}" in labels
    assert f"english-long exclude >= 0.9: removes {truth['random']:.1%}" in labels
    assert 0 < truth["length"] < 1 and 0 < truth["random"] < 1
    replaced = sum(truth["replaced"]) / len(truth["replaced"])
    assert 0 < replaced < 1
    assert labels.count(f"english-long span_replacement [0.25, 0.5): replaces {replaced:.1%} of spans") == 2
    sources = next(s for s in specs.values() if s.get("title") == "Documents, bytes and tokens per source")
    shown: dict[str, dict[str, int]] = {}
    for row in sources["data"]["values"]:
        shown.setdefault(row["source"], {})[row["measure"]] = row["value"]
    assert shown == truth["sources"]
    languages = next(s for s in specs.values() if s.get("title") == "Language mix")
    assert sum(row["documents"] for row in languages["data"]["values"]) == truth["documents"]
    # the run summaries: duplicate rates by mode, what each rule removed, tokens per shard
    dedupe = next(s for s in specs.values() if s.get("title") == "Duplicate rate by mode")
    assert {r["mode"]: r["duplicate rate"] for r in dedupe["data"]["values"]} == {
        "documents": 0.0125,
        "paragraphs": 0.1,
    }
    rules = next(s for s in specs.values() if s.get("title") == "Documents removed per rule (dolma mix)")
    assert sorted(r["documents removed"] for r in rules["data"]["values"]) == [180, 321]
    tokens = next(s for s in specs.values() if s.get("title") == "Tokens per shard (dolma tokens)")
    assert {r["shard"]: r["tokens"] for r in tokens["data"]["values"]} == {"part-0000.npy": 600, "part-0001.npy": 400}


def test_without_documents_shares_are_estimated_from_the_histograms(corpus, tmp_path):
    out = tmp_path / "report.html"
    proc = run_cli(*report_args(corpus, out, documents=False))
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = out.read_text()
    labels = threshold_labels(page_specs(page))
    hist = next(h for h in read_jsonl(corpus / "stats" / "summaries.jsonl.gz") if h["name"] == f"{RANDOM}/score")
    middles = [(lo + hi) / 2 for lo, hi in zip(hist["bins"], hist["bins"][1:])]
    share = sum(c for c, m in zip(hist["counts"], middles) if m >= 0.9) / sum(hist["counts"])
    assert f"english-long exclude >= 0.9: removes ~{share:.1%}" in labels
    replaced = sum(c for c, m in zip(hist["counts"], middles) if 0.25 <= m < 0.5) / sum(hist["counts"])
    assert f"english-long span_replacement [0.25, 0.5): replaces ~{replaced:.1%} of spans" in labels
    sources = next(s for s in page_specs(page).values() if s.get("title") == "Documents and bytes per source")
    assert {(r["source"], r["measure"], r["value"]) for r in sources["data"]["values"]} >= {
        ("web-mixed", "bytes", 3000)
    }
    assert "Give `documents`" in page


def test_hostile_text_is_escaped(corpus, tmp_path):
    out = tmp_path / "report.html"
    proc = run_cli(*report_args(corpus, out, "--samples", "50"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = out.read_text()
    assert page.count("</script>") == 3  # the bundled libraries, the specs, the drawing code
    markup = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)  # the page without those three
    assert "injected" in markup  # the hostile documents are among the excerpts ...
    assert "<script" not in markup and "<img" not in markup  # ... but never as markup
    assert "&lt;img src=&quot;x&quot; onerror=" in markup and "hostile&lt;source&gt;" in markup


# ---------------------------------------------------------------------------------------------------------
# Bad inputs, path safety, figures
# ---------------------------------------------------------------------------------------------------------


def test_bad_histogram_names_file_line_and_field(corpus, tmp_path):
    bad = tmp_path / "stats" / "summaries.jsonl.gz"
    write_jsonl_gz(
        bad,
        [
            {"name": "a/score", "counts": [1, 2], "bins": [0, 1, 2]},
            {"name": "b/score", "counts": [1, 2], "bins": [0, 1]},
        ],
    )
    proc = run_cli("report", "--output", str(tmp_path / "r.html"), "--stats", str(bad))
    assert proc.returncode != 0
    assert f"{bad}:2" in proc.stderr and "field 'bins'" in proc.stderr and "need 3 bin edges" in proc.stderr
    assert not (tmp_path / "r.html").exists()


def test_a_file_that_is_not_a_run_summary_is_refused(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "something-else"}))
    proc = run_cli("report", "--output", str(tmp_path / "r.html"), "--run_summaries", str(other))
    assert proc.returncode != 0 and f"{other} is not a run summary" in proc.stderr


def test_a_broken_run_summary_is_skipped_and_listed(corpus, tmp_path):
    broken = tmp_path / "runs" / ".dolma-run-summary.mix.json"
    broken.parent.mkdir()
    good = json.loads((corpus / "runs" / "mix" / ".dolma-run-summary.mix.json").read_text())
    broken.write_text(json.dumps(dict(good, version=7)))
    out = tmp_path / "r.html"
    runs = str(corpus / "runs" / "**" / ".dolma-run-summary.*.json")
    proc = run_cli("report", "--output", str(out), "--run_summaries", str(broken), runs)
    assert proc.returncode == 0, proc.stderr
    assert "1 broken run summary file(s) skipped" in proc.stdout
    page = out.read_text()
    assert "Run summaries skipped" in page and html.escape(str(broken)) in page and "field &#x27;version&#x27;" in page
    assert "Documents removed per rule" in page  # the good summaries are still drawn


def test_output_may_not_land_on_an_input(corpus, tmp_path):
    for output in [corpus / "mix.yaml", corpus / "documents" / "python-docs" / "report.html"]:
        proc = run_cli(*report_args(corpus, output))
        assert proc.returncode != 0 and "refusing to write" in proc.stderr, proc.stderr[-2000:]
    proc = run_cli(*report_args(corpus, tmp_path / "r.html", "--figures", str(corpus / "documents")))
    assert proc.returncode != 0 and "refusing to write into" in proc.stderr
    assert "report.html" not in {p.name for p in (corpus / "documents").glob("**/*")}


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_figures_are_written_one_per_chart(corpus, tmp_path, fmt):
    out, figures = tmp_path / "report.html", tmp_path / "figures"
    proc = run_cli(*report_args(corpus, out, "--figures", str(figures), "--figure_format", fmt))
    assert proc.returncode == 0, proc.stderr[-3000:]
    specs = page_specs(out.read_text())
    files = sorted(figures.iterdir())
    assert len(files) == len(specs) and all(f.suffix == f".{fmt}" for f in files)
    for f in files:
        data = f.read_bytes()
        if fmt == "png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 2000
        else:
            assert data.startswith(b"<svg") and "<path" in data.decode()
    hist = next(f for f in files if LENGTH in f.name)
    if fmt == "svg":
        assert "removes" in hist.read_text()  # the threshold label is in the paper figure too


def test_report_reads_and_writes_s3(corpus, s3_server, s3_bucket):
    client = s3_server.client()
    client.upload_file(str(corpus / "stats" / "summaries.jsonl.gz"), s3_bucket, "stats/summaries.jsonl.gz")
    out, figures = f"s3://{s3_bucket}/report/report.html", f"s3://{s3_bucket}/report/figures"
    args = ["--stats", f"s3://{s3_bucket}/stats/*.jsonl.gz", "--mix", str(corpus / "mix.yaml"), "--figures", figures]
    proc = run_cli("report", "--output", out, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = client.get_object(Bucket=s3_bucket, Key="report/report.html")["Body"].read().decode()
    specs = page_specs(page)
    assert any(label.startswith("english-long exclude < 200: removes ~") for label in threshold_labels(specs))
    assert len(s3_server.keys(s3_bucket, "report/figures/")) == len(specs) > 0


# ---------------------------------------------------------------------------------------------------------
# The page in a real browser
# ---------------------------------------------------------------------------------------------------------

# Per chart: its name, how many marks its SVG has, the texts of its text marks and how many rule marks it has.
CHART_FACTS = """
JSON.stringify(Array.from(document.querySelectorAll("div.chart")).map(function (div) {
  return {
    name: div.dataset.name,
    svgs: div.querySelectorAll("svg").length,
    marks: div.querySelectorAll("g.role-mark > path, g.role-mark > rect, g.role-mark > line").length,
    rules: div.querySelectorAll("g.mark-rule.role-mark > line, g.mark-rule.role-mark > path").length,
    labels: Array.from(div.querySelectorAll("g.mark-text.role-mark > text")).map(function (t) {
      return t.textContent;
    })
  };
}))
"""


@pytest.fixture
def chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        message = (
            "CHROMIUM IS NOT INSTALLED: the browser test of `dolma report` did NOT run "
            "(apt-get install -y chromium; .ci/run installs it)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        print(f"\n*** {message} ***")
        pytest.skip(message)
    return binary


def test_report_opens_in_headless_chromium_offline(corpus, tmp_path, chromium):
    out = tmp_path / "report.html"
    proc = run_cli(*report_args(corpus, out, "--samples", "50"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    specs = page_specs(out.read_text())
    profile = tmp_path / "profile"
    profile.mkdir()
    browser = Browser(chromium, profile)
    try:
        browser.open(out.as_uri(), "document.body && document.body.dataset.charts !== undefined")
        assert browser.evaluate("document.body.dataset.charts") == "ok"
        charts = json.loads(browser.evaluate(CHART_FACTS))
        shot = browser.screenshot(tmp_path / "report.png")
        print(f"\nscreenshot of the report: {shot}")
        errors = browser.errors()
    finally:
        browser.close()
    assert errors == []
    assert len(charts) == len(specs) >= 7
    for chart in charts:
        assert chart["svgs"] >= 1 and chart["marks"] > 0, chart
    by_name = {c["name"]: c for c in charts}
    length = by_name[f"hist-{LENGTH}"]
    assert length["rules"] == 1 and any(
        label.startswith("english-long exclude < 200: removes") for label in length["labels"]
    )
    assert by_name[f"hist-{ENGLISH}"]["rules"] == 1
    assert by_name[f"hist-{RANDOM}"]["rules"] == 3  # the exclude rule and the span replacement's two bounds
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


def test_the_browser_test_sees_console_errors_and_network_use(tmp_path, chromium):
    """The checks above can fail: a page that logs an error or fetches from the network is caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><script>console.error("boom")</script><img src="https://example.invalid/x.png">'
        '<script>document.body.dataset.charts = "ok"</script></body></html>'
    )
    profile = tmp_path / "profile"
    profile.mkdir()
    browser = Browser(chromium, profile)
    try:
        browser.open(page.as_uri(), "document.images.length > 0 && document.images[0].complete")
        errors = browser.errors()
    finally:
        browser.close()
    assert any("boom" in e for e in errors), errors
    assert any("example.invalid" in e for e in errors), errors
