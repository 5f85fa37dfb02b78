"""The documentation is checked like code: links resolve, shown configs are the shipped files, the README
quickstart runs verbatim in a fresh copy of the repository, `make demo` carries the shipped crawl through every step
(the same bytes on a second run), every config in configs/ runs after the demo, and the example tagger plugin works
both ways the docs show (`--tagger_modules` and a `dolma.taggers` entry point).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dolma.executors.summary import is_run_summary
from tests.conftest import LOOPBACK_SPARK_CONF, REPO, S3_KEY, S3_SECRET, read_jsonl, run_cli, write_jsonl_gz

DOCS = REPO / "docs"
PLUGIN = DOCS / "examples" / "dolma-tagger-example"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("**/*.md"))]

# ---------------------------------------------------------------------------------------------------------
# Markdown helpers
# ---------------------------------------------------------------------------------------------------------

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """The text without fenced blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (not - or _), spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown page (repeated headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text())) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    return broken


# ---------------------------------------------------------------------------------------------------------
# Links, size, shown configs
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    assert relative_links(page) or page.name != "README.md", f"{page} links nowhere"
    assert broken_links(page) == []


def test_link_checker_finds_broken_links(tmp_path):
    """The checker itself: a missing file, a missing anchor, and links in code that are not links."""
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading: yes\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#a-code-heading-yes) [ok](other.md#twice-1) [ok](#top) [web](https://x.y/z)\n"
        "# Top\n[gone](missing.md) [bad anchor](other.md#nope) `[not](a-link.md)`\n"
        "```\n[not](a-link-either.md)\n```\n"
    )
    assert broken_links(page) == ["missing.md: no such file", "other.md#nope: no heading with anchor #nope"]


def test_readme_is_short_and_every_docs_page_is_indexed():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250
    index = (DOCS / "README.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not list {page.name}"


def config_blocks() -> list[tuple[Path, str, str]]:
    """(page, config name, block body) for every fenced block that starts with `# configs/<name>`."""
    out = []
    for page in PAGES:
        for block in re.findall(r"^```ya?ml\n(.*?)^```", page.read_text(), re.S | re.M):
            first, _, body = block.partition("\n")
            match = re.fullmatch(r"# configs/([\w.-]+\.yaml)", first.strip())
            if match:
                out.append((page, match.group(1), body))
    return out


def test_shown_configs_are_the_shipped_files():
    blocks = config_blocks()
    assert len(blocks) >= 15
    for page, name, body in blocks:
        path = REPO / "configs" / name
        assert path.exists(), f"{page.name} shows configs/{name}, which does not exist"
        assert body == path.read_text(), f"{page.name}: the block of configs/{name} differs from the file"
    shown = {name for _, name, _ in blocks}
    assert shown == {p.name for p in (REPO / "configs").glob("*.yaml")}, "every config is shown in docs/"


# ---------------------------------------------------------------------------------------------------------
# A fresh copy of the repository, as a clone has it after `make build`
# ---------------------------------------------------------------------------------------------------------


def fresh_copy(dest: Path) -> Path:
    """The files a clone has (tracked or new, not ignored), plus what `make build` adds: .venv (a link to this
    one's) and the extension module. Commands run in the copy import the copy's code, as in a real clone."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    assert not (dest / "demo-output").exists() and not (dest / "quickstart").exists()
    (dest / ".venv").symlink_to(REPO / ".venv")
    for built in (REPO / "dolma").glob("_rust*.so"):  # `make build` puts the extension beside the sources
        shutil.copy2(built, dest / "dolma" / built.name)
    return dest


def quickstart_block() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M)
    assert len(blocks) == 1, "the quickstart has one bash block"
    return blocks[0]


def test_readme_quickstart_runs_verbatim(tmp_path):
    root = fresh_copy(tmp_path / "clone")
    script = quickstart_block()
    assert "data/documents" not in script
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script], cwd=root, capture_output=True, text=True, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    attrs = root / "quickstart" / "attributes"
    for name in ["ft_lang_id_en_doc_v2", "whitespace_tokenizer_v1", "char_length_v1", "dedupe_paragraphs"]:
        files = sorted((attrs / name).glob("**/*.jsonl.gz"))
        assert len(files) == 5, name
    rows = read_jsonl(attrs / "dedupe_paragraphs" / "web-mixed" / "part-0000.jsonl.gz")
    assert any(row["attributes"].get("bff_duplicate_paragraph_spans") for row in rows)
    near = [row for path in sorted((attrs / "dedupe_near").glob("**/*.jsonl.gz")) for row in read_jsonl(path)]
    assert len(near) == 2400 and any(row["attributes"].get("minhash_duplicate") for row in near)
    pages = read_jsonl(root / "quickstart" / "crawl" / "documents" / "demo.jsonl.gz")
    assert len(pages) == 12 and all(page["text"] and page["metadata"]["url"] for page in pages)
    assert "digit_fraction" not in proc.stdout  # `dolma list` printed the built-in taggers only
    assert "ft_lang_id_en_doc_v2" in proc.stdout


# ---------------------------------------------------------------------------------------------------------
# Every shipped config runs after `make demo`
# ---------------------------------------------------------------------------------------------------------

LOCAL_CONFIGS = [
    ("list.yaml", "list"),
    ("tag.yaml", "tag"),
    ("tag-quality.yaml", "tag"),
    ("stat.yaml", "stat"),
    ("tag-pii-langid.yaml", "tag"),
    ("tag-code.yaml", "tag"),
    ("dedupe-documents.yaml", "dedupe"),
    ("dedupe-paragraphs.yaml", "dedupe"),
    ("dedupe-ngram.yaml", "dedupe"),
    ("dedupe-minhash.yaml", "dedupe"),
    ("mix.yaml", "mix"),
    ("mix-dedupe.yaml", "mix"),
    ("mix-typed-sampling.yaml", "mix"),
    ("tag-toxicity.yaml", "tag"),
    ("tag-langid.yaml", "tag"),
    ("mix-toxicity.yaml", "mix"),
    ("tokens.yaml", "tokens"),
    ("tokens-global-shuffle.yaml", "tokens"),
    ("train-fasttext.yaml", "train-fasttext"),
    ("warc.yaml", "warc"),
]
# dedupe-decontamination.yaml needs its step 1 (a filter of evaluation sets, which no demo has); tag-*-s3,
# tag-classifiers and tag-spark read s3://my-bucket: they run against the tests' S3 server (and Spark local[2]).
SPECIAL_CONFIGS = [
    "dedupe-decontamination.yaml",
    "tag-experiment-s3.yaml",
    "tag-classifiers.yaml",
    "tag-spark.yaml",
    "report.yaml",  # the demo runs it; test_report_config_runs_after_the_demo checks what it drew
]


def test_every_config_has_a_run_case():
    cases = {name for name, _ in LOCAL_CONFIGS} | set(SPECIAL_CONFIGS)
    assert cases == {p.name for p in (REPO / "configs").glob("*.yaml")}


# The demo's documents: the sample corpus's 5 files and the one `dolma warc` makes of the demo crawl.
DEMO_FILES = 6


def run_demo(root: Path) -> str:
    """`make demo`'s program in `root` (a copy of the repository): its output."""
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-m", "dolma.demo", str(root)], cwd=root, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


# The demo runs once for this module (it is the slowest set-up of the suite): its own test reads what it printed.
DEMO_STDOUT = "demo-stdout.txt"


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    """A fresh copy of the repository in which `make demo`'s program has run."""
    root = fresh_copy(tmp_path_factory.mktemp("demo") / "clone")
    (root.parent / DEMO_STDOUT).write_text(run_demo(root))
    assert (root / "demo-output" / "sample" / "tokens").is_dir()
    return root


ENGLISH_PAGES = {
    "https://httpd.apache.org/docs/2.4/mpm.html",
    "https://httpd.apache.org/docs/2.4/handler.html",
    "https://docs.python.org/3.11/library/getpass.html",
    "https://docs.python.org/3.11/library/keyword.html",
    "https://debian-handbook.info/browse/stable/index.html",
}


def demo_outputs(root: Path) -> dict[str, str]:
    """Digest of every output the pipeline writes (the Bloom filter files aside: they are dedupe's state)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parent.name != "filters" and not is_run_summary(p)
    }


def test_demo_runs_warc_tag_dedupe_mix_tokens_from_the_shipped_crawl(demo_root):
    """`make demo` starts from the shipped web crawl and carries its pages through every step, deterministically.
    First of the module's tests on `demo_root`: the configs' runs below add to its output."""
    out = (demo_root.parent / DEMO_STDOUT).read_text()
    steps = ["0. warc", "1. tag", "2. dedupe documents", "3. dedupe paragraphs", "4. mix", "5. tokens"]
    positions = [out.find(s) for s in steps]
    assert -1 not in positions and positions == sorted(positions), positions  # warc first, then the rest in order
    demo = demo_root / "demo-output" / "sample"
    pages = read_jsonl(demo / "documents" / "crawl" / "demo.jsonl.gz")
    assert len(pages) == 12 and {p["source"] for p in pages} == {"demo-crawl"}
    ids = {p["id"]: p["metadata"]["warc_url"] for p in pages}
    # the crawl's pages are tagged like the sample's...
    tagged = read_jsonl(demo / "attributes" / "ft_lang_id_en_doc_v2" / "crawl" / "demo.jsonl.gz")
    assert [r["id"] for r in tagged] == [p["id"] for p in pages]
    # ...and its English pages reach the mix and the tokens
    mixed = [r for path in (demo / "mixed").rglob("*.jsonl.gz") for r in read_jsonl(path)]
    assert {ids[r["id"]] for r in mixed if r["id"] in ids} == ENGLISH_PAGES
    tokenized = set()
    for index in (demo / "tokens").glob("*.csv.gz"):
        with gzip.open(index, "rt") as fh:
            tokenized |= {row[2] for row in csv.reader(fh) if row[2] in ids}
    assert {ids[i] for i in tokenized} == ENGLISH_PAGES
    assert "from the crawl: 5 of 12 pages kept by mix" in out and "from the crawl: 5 pages tokenized" in out
    # the demo is deterministic: a second run writes the same bytes
    first = demo_outputs(demo_root / "demo-output")
    run_demo(demo_root)
    assert demo_outputs(demo_root / "demo-output") == first


def run_config(root: Path, name: str, command: str, *flags: str, env: dict | None = None):
    proc = run_cli("-c", f"configs/{name}", command, *flags, cwd=root, env=env)
    assert proc.returncode == 0, f"configs/{name}: exit {proc.returncode}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


# Flags given to a config's run: detect-secrets (code_secrets_v1) takes ~25 docs/s, so tag-code.yaml tags only the
# demo crawl's file (its tests against the reference read code: tests/compat/test_reference_code_taggers.py).
CONFIG_FLAGS = {"tag-code.yaml": ["--documents", "demo-output/sample/documents/crawl/demo.jsonl.gz"]}


def test_local_configs_run_after_the_demo(demo_root):
    out = demo_root / "demo-output"
    for name, command in LOCAL_CONFIGS:
        run_config(demo_root, name, command, *CONFIG_FLAGS.get(name, []))
    attrs = out / "sample" / "attributes"
    for attribute_set, files in [
        ("quality", DEMO_FILES),
        ("pii_regex_with_counts_v2", DEMO_FILES),
        ("code_secrets_v1", 1),
        ("dedupe_urls", DEMO_FILES),
        ("dedupe_ngrams", DEMO_FILES),
        ("dedupe_near", DEMO_FILES),
    ]:
        assert len(list((attrs / attribute_set).glob("**/*.jsonl.gz"))) == files, attribute_set
    for stream in ["english-long", "sample-clean", "web", "upsampled"]:
        assert list((out / "sample" / "mixed" / stream).glob(f"{stream}-*")), stream
    assert (out / "sample" / "tokens-shuffled" / ".shuffle.done").exists()
    summaries = read_jsonl(out / "sample" / "stats" / "quality" / "summaries.jsonl.gz")
    assert summaries and all(s["name"].startswith(("quality__gopher_v1__", "quality__c4_v2__")) for s in summaries)
    report = json.loads((out / "models" / "quality.report.json").read_text())
    assert (out / "models" / "quality.bin").stat().st_size > 0 and report


def test_decontamination_config_runs_after_its_fill_step(demo_root):
    """Step 1 (the config's header comment) fills the filter from an evaluation set; step 2 is the file as is."""
    sample = read_jsonl(demo_root / "demo-output" / "sample" / "documents" / "python-docs" / "part-0000.jsonl.gz")
    evals = [{"id": f"e{i}", "text": doc["text"], "source": "evals"} for i, doc in enumerate(sample[:20])]
    write_jsonl_gz(demo_root / "evals" / "documents" / "evals.jsonl.gz", evals)
    header = (REPO / "configs" / "dedupe-decontamination.yaml").read_text()
    assert "--documents 'evals/documents/*.jsonl.gz'" in header and "--no-bloom_filter.read_only" in header
    fill = ["--documents", "evals/documents/*.jsonl.gz", "--dedupe.name", "eval_fill", "--no-bloom_filter.read_only"]
    run_config(demo_root, "dedupe-decontamination.yaml", "dedupe", *fill)
    run_config(demo_root, "dedupe-decontamination.yaml", "dedupe")
    rows = read_jsonl(demo_root / "demo-output/sample/attributes/decontamination/python-docs/part-0000.jsonl.gz")
    assert sum(bool(r["attributes"].get("eval_overlap")) for r in rows) >= 15


def test_report_config_runs_after_the_demo(demo_root):
    """configs/report.yaml over the demo's output (the demo ran `dolma stat` over its attribute files)."""
    from tests.mixers.test_report import page_specs, threshold_labels

    out = demo_root / "demo-output"
    assert (out / "sample" / "stats" / "summaries.jsonl.gz").exists()
    run_config(demo_root, "report.yaml", "report")
    specs = page_specs((out / "report" / "report.html").read_text())
    labels = threshold_labels(specs)
    # configs/mix-dedupe.yaml: include English >= 0.5, exclude length < 200, exclude bff_duplicate_text >= 1.0
    assert any(label.startswith("sample-clean include >= 0.5: removes") for label in labels), labels
    assert any(label.startswith("sample-clean exclude < 200: removes") for label in labels), labels
    assert len(list((out / "report" / "figures").glob("*.svg"))) == len(specs)


@pytest.fixture(scope="module")
def s3_corpus(demo_root, s3_server):
    """The demo's documents, a model and a hosts list where the S3 configs look for them (s3://my-bucket/...)."""
    client = s3_server.client()
    client.create_bucket(Bucket="my-bucket")
    docs = demo_root / "demo-output" / "sample" / "documents"
    for path in sorted(docs.glob("**/*.jsonl.gz")):
        client.upload_file(str(path), "my-bucket", f"corpus/documents/{path.relative_to(docs)}")
    run_config(demo_root, "train-fasttext.yaml", "train-fasttext")
    client.upload_file(str(demo_root / "demo-output/models/quality.bin"), "my-bucket", "models/dolma17-quality.bin")
    client.put_object(Bucket="my-bucket", Key="lists/hosts.txt", Body=b"0.0.0.0 docs.python.org\n")
    return s3_server


def s3_attribute_files(server, attribute_set: str) -> list[str]:
    return [k for k in server.keys("my-bucket", f"corpus/attributes/{attribute_set}/") if k.endswith(".jsonl.gz")]


@pytest.mark.s3
def test_s3_configs_run_against_the_test_server(demo_root, s3_corpus):
    endpoint = ["--s3.endpoint_url", s3_corpus.endpoint]
    run_config(demo_root, "tag-experiment-s3.yaml", "tag", *endpoint)
    assert len(s3_attribute_files(s3_corpus, "quality-v1")) == DEMO_FILES
    run_config(demo_root, "tag-classifiers.yaml", "tag", *endpoint)
    for attribute_set in ["fasttext_classifier_v1", "dolma17-quality", "domain_blocklist_v1"]:
        assert len(s3_attribute_files(s3_corpus, attribute_set)) == DEMO_FILES, attribute_set


@pytest.mark.s3
def test_spark_config_runs_on_local_spark(demo_root, s3_corpus):
    conf = dict(LOOPBACK_SPARK_CONF)
    conf.update({"spark.executorEnv.AWS_ACCESS_KEY_ID": S3_KEY, "spark.executorEnv.AWS_SECRET_ACCESS_KEY": S3_SECRET})
    conf["spark.executorEnv.AWS_ENDPOINT_URL"] = s3_corpus.endpoint
    flags = ["--spark.master", "local[2]", "--spark.conf", json.dumps(conf), "--s3.endpoint_url", s3_corpus.endpoint]
    flags += ["--experiment", "quality-v1-spark"]  # beside the S3 test's set, so this run really tags
    run_config(demo_root, "tag-spark.yaml", "tag", *flags)
    assert len(s3_attribute_files(s3_corpus, "quality-v1-spark")) == DEMO_FILES


# ---------------------------------------------------------------------------------------------------------
# The tagger plugin of docs/writing-a-tagger.md
# ---------------------------------------------------------------------------------------------------------


def plugin_corpus(root: Path) -> Path:
    docs = [
        {"id": "a", "text": "abcd", "source": "t"},
        {"id": "b", "text": "12ab\n\n3456\n", "source": "t"},
        {"id": "c", "text": "", "source": "t"},
    ]
    return write_jsonl_gz(root / "documents" / "part.jsonl.gz", docs)


EXPECTED = {
    "a": {
        "digit_fraction_v1__digit_fraction_v1__document": [[0, 4, 0.0]],
        "digit_fraction_v1__digit_fraction_v1__paragraph": [[0, 4, 0.0]],
    },
    "b": {
        "digit_fraction_v1__digit_fraction_v1__document": [[0, 11, 0.54545]],
        "digit_fraction_v1__digit_fraction_v1__paragraph": [[0, 5, 0.4], [6, 11, 0.8]],
    },
    "c": {"digit_fraction_v1__digit_fraction_v1__document": [[0, 0, 0.0]]},
}


def check_plugin_output(root: Path) -> None:
    with gzip.open(root / "attributes" / "digit_fraction_v1" / "part.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    assert {row["id"]: row["attributes"] for row in rows} == EXPECTED


def test_plugin_by_tagger_modules_path(tmp_path):
    plugin_corpus(tmp_path)
    module = PLUGIN / "dolma_tagger_example.py"
    listed = run_cli("list", "--tagger_modules", str(module), env={"COLUMNS": "250"})  # rich: no wrapping
    assert listed.returncode == 0 and "digit_fraction_v1" in listed.stdout, listed.stderr
    assert "Share of decimal digits in the text." in listed.stdout
    proc = run_cli(
        "tag", "--documents", str(tmp_path / "documents" / "*.jsonl.gz"), "--taggers", "digit_fraction_v1",
        "--tagger_modules", str(module), "--tagger_config", '{digit_fraction_v1: {per_paragraph: true}}',
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    check_plugin_output(tmp_path)
    bad = run_cli(
        "tag", "--documents", str(tmp_path / "documents" / "*.jsonl.gz"), "--taggers", "digit_fraction_v1",
        "--tagger_modules", str(module), "--tagger_config", '{digit_fraction_v1: {per_paragrap: true}}',
    )  # fmt: skip
    assert bad.returncode != 0 and "per_paragrap" in bad.stderr


def test_plugin_by_entry_point(tmp_path):
    """An installed plugin is found through its `dolma.taggers` entry point, with no flag: here a dist-info
    written from the example's pyproject.toml on PYTHONPATH stands in for `pip install`."""
    toml = (PLUGIN / "pyproject.toml").read_text()
    project = {key: re.search(rf'^{key} = "([^"]+)"$', toml, re.M).group(1) for key in ("name", "version")}
    section = toml.split('[project.entry-points."dolma.taggers"]\n', 1)[1].split("\n\n", 1)[0]
    site = tmp_path / "site"
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    (dist / "entry_points.txt").write_text("[dolma.taggers]\n" + section.replace('"', "") + "\n")
    shutil.copy2(PLUGIN / "dolma_tagger_example.py", site / "dolma_tagger_example.py")
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}

    without = run_cli("list")
    assert without.returncode == 0 and "digit_fraction_v1" not in without.stdout
    listed = run_cli("list", env=env)
    assert listed.returncode == 0 and "digit_fraction_v1" in listed.stdout, listed.stderr
    plugin_corpus(tmp_path)
    proc = run_cli(
        "tag", "--documents", str(tmp_path / "documents" / "*.jsonl.gz"), "--taggers", "digit_fraction_v1",
        "--tagger_config", '{digit_fraction_v1: {per_paragraph: true}}', env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    check_plugin_output(tmp_path)


def test_generated_tables_live_in_docs(tmp_path):
    """`make bench` and `make faults` rewrite the text between markers of docs/benchmarks.md and docs/faults.md."""
    from benchmarks import harness
    from tests.helpers import faultsuite

    bench = (DOCS / "benchmarks.md").read_text()
    rewritten = harness.replace_between_markers(bench, "NEW TABLE")
    assert "NEW TABLE" in rewritten and rewritten.count("<!-- bench:start -->") == 1
    assert rewritten.split("<!-- bench:start -->")[0] == bench.split("<!-- bench:start -->")[0]
    page = tmp_path / "faults.md"
    shutil.copy2(DOCS / "faults.md", page)
    faultsuite.write_readme(page, "NEW FIGURES", (1, 1))
    assert "NEW FIGURES" in page.read_text() and "| kill -9 of a worker |" not in page.read_text()
    assert (
        "bench:start" not in (REPO / "README.md").read_text()
        and "faults:start" not in (REPO / "README.md").read_text()
    )
    assert 'REPO / "docs" / "faults.md"' in (REPO / "tests" / "conftest.py").read_text()
    assert 'REPO / "docs" / "benchmarks.md"' in (REPO / "benchmarks" / "run.py").read_text()
