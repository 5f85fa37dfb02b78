"""`dolma warc` on WARC / WET files built from real pages (tests/helpers/warcgen.py; provenance in tests/data/warc)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dolma import atomic
from dolma import config as dconfig
from dolma.commands import warc
from dolma.commands.warc import WarcConfig, output_name
from dolma.documents import Document
from dolma.executors.summary import is_run_summary
from dolma.warc import extract, ids
from tests.conftest import REPO, outputs_in, read_jsonl, run_cli
from tests.helpers import warcgen as gen

SKIPS = {
    extract.SKIP_STATUS: 2,
    extract.SKIP_NOT_HTML: 3,
    extract.SKIP_UNDECODABLE: 1,
    extract.SKIP_MALFORMED_HTTP: 1,
    extract.SKIP_TOO_BIG: 1,
}


def crawl(root: Path, name: str = "crawl.warc.gz") -> Path:
    return gen.write_warc(root / "warc" / name, gen.crawl_records(name))


def config(documents: str, destination: Path | str, **extra) -> WarcConfig:
    data = {
        "documents": [documents],
        "destination": str(destination),
        "source_name": "test-crawl",
        "max_payload_bytes": gen.SIZE_CAP,
        "quiet": True,
        **extra,
    }
    return dconfig.build(WarcConfig, overrides=data)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not is_run_summary(p)
    }


def full_text(html: bytes) -> str:
    """Every text of a page, navigation included (resiliparse without main-content selection)."""
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(extract.to_text(html, None), main_content=False, preserve_formatting=True)


def by_url(rows: list[dict]) -> dict[str, dict]:
    return {r["metadata"]["warc_url"]: r for r in rows}


def test_warc_gives_the_pages_main_text(tmp_path):
    path = crawl(tmp_path)
    assert warc.run(config(str(path), tmp_path / "out")) == 0
    rows = read_jsonl(tmp_path / "out" / "crawl.jsonl.gz")
    docs = by_url(rows)
    assert list(docs) == [exp.url for _, exp in gen.GOOD_PAGES]  # every good page, in crawl order, nothing else
    for resp, exp in gen.GOOD_PAGES:
        doc = docs[exp.url]
        for phrase in exp.main:
            assert phrase in doc["text"], f"{exp.url}: main text {phrase!r} missing"
        for phrase in exp.nav:
            assert phrase in full_text(resp.body), f"{exp.url}: {phrase!r} is not on the page at all"
            assert phrase not in doc["text"], f"{exp.url}: navigation {phrase!r} kept"
        assert "\ufffd" not in doc["text"], f"{exp.url}: badly decoded"
        assert doc["source"] == "test-crawl"
        assert doc["metadata"]["url"] == exp.url.split("://", 1)[1]
        assert doc["metadata"]["content_type"] == "text/html"
        assert doc["metadata"]["warc_filename"] == "crawl.warc.gz"
        assert doc["added"] == "2024-03-01T12:00:00.000Z"  # the warcinfo date: reruns write the same bytes
        assert doc["created"].startswith("2024-03-01T12:") and doc["created"].endswith(".000Z")
    # ids are the records' UUIDs: unique even when two URLs serve the same page
    assert len({r["id"] for r in rows}) == len(rows)
    first = docs[gen.GOOD_PAGES[0][1].url]
    assert first["id"] == gen.record_uuid("response", first["metadata"]["warc_url"], "0")
    assert first["metadata"]["warc_record_id"] == f"<urn:uuid:{first['id']}>"
    assert docs[f"{gen.APACHE}/en/mpm.html"]["text"] == first["text"]
    assert "attributes" not in first and "html" not in first["metadata"]


def test_every_skipped_record_is_counted_and_reported(tmp_path):
    path = crawl(tmp_path)
    result = run_cli(
        "warc", "--documents", str(path), "--destination", str(tmp_path / "out"), "--source_name", "t",
        "--max_payload_bytes", str(gen.SIZE_CAP),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = warc_summary(path, tmp_path / "again")
    for reason, count in SKIPS.items():
        assert summary.stats.counters.get(reason) == count, reason
        assert reason in result.stderr  # in the summary table
    records = len(gen.GOOD_PAGES) + len(gen.SKIPPED)
    assert summary.stats.documents_in == records and summary.stats.documents_out == len(gen.GOOD_PAGES)
    assert summary.stats.counters["records read (response, resource, conversion)"] == records
    assert f"SKIPPED {sum(SKIPS.values())} record(s) did not become documents" in result.stderr
    quiet = run_cli("-c", str(write_yaml(tmp_path, path, tmp_path / "q")), "warc", "--quiet")
    assert quiet.returncode == 0 and "SKIPPED 8 record(s)" in quiet.stderr  # loud even when quiet


def warc_summary(path: Path, dest: Path, **extra):
    from dolma.executors.local import LocalExecutor

    cfg = config(str(path), dest, **extra)
    units = warc.plan(cfg)
    return LocalExecutor(quiet=True).run(warc.WarcJob(cfg), units)


def write_yaml(tmp_path: Path, path: Path, dest: Path) -> Path:
    cfg = tmp_path / "warc.yaml"
    cfg.write_text(
        f"documents: [{path}]\ndestination: {dest}\nsource_name: t\nmax_payload_bytes: {gen.SIZE_CAP}\n"
        "linearizer: resiliparse\n"
    )
    return cfg


def test_plain_warc_and_wet(tmp_path):
    plain = gen.write_warc(tmp_path / "in" / "plain.warc", gen.crawl_records("plain.warc"))
    wet = gen.write_warc(tmp_path / "in" / "CC-MAIN-1.warc.wet.gz", gen.wet_records("CC-MAIN-1.warc.wet.gz"))
    assert warc.run(config(str(tmp_path / "in" / "*"), tmp_path / "out")) == 0
    assert [p.name for p in outputs_in(tmp_path / "out")] == ["CC-MAIN-1.wet.jsonl.gz", "plain.jsonl.gz"]
    gz = tmp_path / "gz"
    assert warc.run(config(str(crawl(gz)), gz / "out")) == 0
    # plain and gzip WARCs give the same documents (but for the file name in the metadata)
    strip = lambda rows: [{**r, "metadata": {**r["metadata"], "warc_filename": None}} for r in rows]  # noqa: E731
    assert strip(read_jsonl(tmp_path / "out" / "plain.jsonl.gz")) == strip(read_jsonl(gz / "out" / "crawl.jsonl.gz"))
    rows = read_jsonl(tmp_path / "out" / "CC-MAIN-1.wet.jsonl.gz")
    assert [r["metadata"]["warc_url"] for r in rows] == [exp.url for _, exp in gen.GOOD_PAGES[:6]]
    for row, (_, exp) in zip(rows, gen.GOOD_PAGES):
        assert row["text"] == gen.wet_text(exp)  # conversion records are text already: kept as they are
        assert row["metadata"]["content_type"] == "text/plain" and row["metadata"]["language"] == "eng"
        assert row["id"] == gen.record_uuid("conversion", exp.url)
    assert plain.exists() and wet.exists()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CC-MAIN-20240301-00000.warc.gz", "CC-MAIN-20240301-00000.jsonl.gz"),
        ("x.warc", "x.jsonl.gz"),
        ("x.warc.wet.gz", "x.wet.jsonl.gz"),
        ("crawl", "crawl.jsonl.gz"),
    ],
)
def test_output_names_follow_the_reference(name, expected):
    assert output_name(name) == expected


def test_truncated_file_fails_unless_skipping_is_asked(tmp_path):
    records = gen.crawl_records("cut.warc.gz")
    path = tmp_path / "in" / "cut.warc.gz"
    path.parent.mkdir()
    path.write_bytes(gen.truncated(records[:12]))
    result = run_cli("warc", "--documents", str(path), "--destination", str(tmp_path / "out"), "--source_name", "t")
    assert result.returncode == 1
    assert "FAILED" in result.stderr and "truncated gzip file" in result.stderr and "cut.warc.gz" in result.stderr
    assert not (tmp_path / "out").exists() or not outputs_in(tmp_path / "out")
    summary = warc_summary(path, tmp_path / "out", skip_bad_records=True)
    assert summary.ok and summary.stats.counters[extract.SKIP_REST_OF_FILE] == 1
    rows = read_jsonl(tmp_path / "out" / "cut.jsonl.gz")
    complete = [exp.url for _, exp in gen.GOOD_PAGES[:5]]
    assert [r["metadata"]["warc_url"] for r in rows][: len(complete)] == complete
    assert len(rows) <= 6
    # a plain WARC cut inside a record: the short record is detected too
    plain = tmp_path / "p" / "cut.warc"
    plain.parent.mkdir()
    plain.write_bytes(b"".join(records[:12])[:-3000])
    failed = warc_summary(plain, tmp_path / "pout")
    assert not failed.ok and "ends after" in failed.failures[0].error


def test_malformed_warc_headers_are_counted(tmp_path):
    records = gen.crawl_records("m.warc.gz")
    path = gen.write_warc(tmp_path / "in" / "m.warc.gz", [*records[:3], gen.malformed_warc_header_record()])
    summary = warc_summary(path, tmp_path / "out")
    assert summary.ok and summary.stats.counters[extract.SKIP_MALFORMED_WARC] == 1
    assert summary.stats.documents_out == 1


def test_size_cap_is_a_setting(tmp_path):
    path = crawl(tmp_path)
    summary = warc_summary(path, tmp_path / "out", max_payload_bytes=15_000)
    big = [exp.url for resp, exp in gen.GOOD_PAGES if len(resp.body) > 15_000]
    assert big and summary.stats.counters[extract.SKIP_TOO_BIG] == 1 + len(big)


def several(root: Path, files: int = 4) -> str:
    for i in range(files):
        name = f"part-{i}.warc.gz"
        gen.write_warc(root / "warc" / "sub" / name, gen.crawl_records(name, start=100 * i))
    return str(root / "warc" / "**" / "*.warc.gz")


def test_one_and_two_processes_give_the_same_files(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert warc.run(config(several(one), one / "out", processes=1)) == 0
    assert warc.run(config(several(two), two / "out", processes=2)) == 0
    assert tree(one / "out") == tree(two / "out")
    assert sorted(tree(one / "out")) == [f"sub/part-{i}.jsonl.gz" for i in range(4)]


def test_spark_gives_the_same_files(tmp_path, spark_context):
    from tests.conftest import LOOPBACK_SPARK_CONF

    local, spark = tmp_path / "local", tmp_path / "spark"
    assert warc.run(config(several(local), local / "out")) == 0
    spark_cfg = {"master": "local[2]", "conf": LOOPBACK_SPARK_CONF}
    assert warc.run(config(several(spark), spark / "out", executor="spark", spark=spark_cfg)) == 0
    assert tree(local / "out") == tree(spark / "out")


@pytest.mark.s3
def test_s3_round_trip(tmp_path, s3_server, s3_bucket):
    pattern = several(tmp_path / "local", files=2)
    assert warc.run(config(pattern, tmp_path / "local" / "out")) == 0
    client = s3_server.client()
    for path in sorted((tmp_path / "local" / "warc").rglob("*.warc.gz")):
        client.put_object(Bucket=s3_bucket, Key=f"crawl/{path.name}", Body=path.read_bytes())
    result = run_cli(
        "warc", "--documents", f"s3://{s3_bucket}/crawl/*.warc.gz", "--destination", f"s3://{s3_bucket}/docs",
        "--source_name", "test-crawl", "--max_payload_bytes", str(gen.SIZE_CAP), "--processes", "2", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert s3_server.keys(s3_bucket, "docs/") == ["docs/part-0.jsonl.gz", "docs/part-1.jsonl.gz"]
    for name in ("part-0.jsonl.gz", "part-1.jsonl.gz"):
        body = client.get_object(Bucket=s3_bucket, Key=f"docs/{name}")["Body"].read()
        local = (tmp_path / "local" / "out" / "sub" / name).read_bytes()
        assert gzip.decompress(body) == gzip.decompress(local)


BLOCKING_TAGGER = """
import os, time
from dolma.registry import register
from dolma.tagger import Tagger

@register("blocking_warc_tagger")
class BlockingTagger(Tagger):
    '''With $BLOCK_MARKER set, blocks forever on the 6th batch (the 2nd of the 2nd file): the test kills it.'''

    calls = 0

    def predict(self, doc):
        return []

    def predict_batch(self, docs):
        marker = os.environ.get("BLOCK_MARKER")
        BlockingTagger.calls += 1
        if marker and BlockingTagger.calls == 6:
            open(marker, "w").close()
            while True:
                time.sleep(1)
        return [[] for _ in docs]
"""


def test_kill_and_rerun_gives_identical_files(tmp_path):
    module = tmp_path / "blocking.py"
    module.write_text(BLOCKING_TAGGER)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    args = ["--pre.taggers", "blocking_warc_tagger", "--tagger_modules", str(module), "--batch_size", "4"]
    args += ["--source_name", "t", "--max_payload_bytes", str(gen.SIZE_CAP), "--quiet"]
    result = run_cli("warc", "--documents", several(clean), "--destination", str(clean / "out"), *args)
    assert result.returncode == 0, result.stderr
    marker = tmp_path / "blocked"
    env = dict(os.environ, BLOCK_MARKER=str(marker), PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "dolma", "warc", "--documents", several(killed), "--destination", str(killed / "out")]
    proc = subprocess.Popen([*cmd, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not marker.exists():
        assert proc.poll() is None, "the run ended before the blocking batch"
        os.sched_yield()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    visible = lambda root: {k: v for k, v in tree(root).items() if not Path(k).name.startswith(".")}  # noqa: E731
    partial = visible(killed / "out")
    assert "sub/part-0.jsonl.gz" in partial and "sub/part-1.jsonl.gz" not in partial  # only whole files appear
    assert any(atomic.temp_target(Path(k).name) == "part-1.jsonl.gz" for k in tree(killed / "out"))  # its temporary
    result = run_cli("warc", "--documents", several(killed), "--destination", str(killed / "out"), *args)
    assert result.returncode == 0, result.stderr
    # byte-identical, and the killed run's temporaries are gone (the rerun removes what dead runs left)
    assert tree(killed / "out") == tree(clean / "out")


def test_pre_taggers_select_licensed_pages(tmp_path):
    path = crawl(tmp_path)
    assert warc.run(config(str(path), tmp_path / "out", pre={"taggers": ["cc_re"], "skip": True})) == 0
    rows = read_jsonl(tmp_path / "out" / "crawl.jsonl.gz")
    assert [r["metadata"]["warc_url"] for r in rows] == [gen.CC_URL]
    assert rows[0]["attributes"] == {"cc_re__cc_re__cc_by_sa_3_0": [[0, 0, 1.0]]}
    summary = warc_summary(path, tmp_path / "again", pre={"taggers": ["cc_re_fast"], "skip": True})
    assert summary.stats.counters[extract.SKIP_PRE] == len(gen.GOOD_PAGES) - 1


def test_post_taggers_give_language_and_store_html(tmp_path):
    path = crawl(tmp_path)
    cfg = config(str(path), tmp_path / "out", post={"taggers": ["ft_lang_id_en_doc_v2"]}, store_html_in_metadata=True)
    assert warc.run(cfg) == 0
    docs = by_url(read_jsonl(tmp_path / "out" / "crawl.jsonl.gz"))
    english = docs[f"{gen.APACHE}/mpm.html"]
    assert english["metadata"]["language"] == "en" and english["metadata"]["language_score"] >= 0.5
    assert "ft_lang_id_en_doc_v2__ft_lang_id_en_doc_v2__en" in english["attributes"]
    assert docs[f"{gen.APACHE}/ja/filter.html"]["metadata"].get("language") is None  # not English: unknown
    assert english["metadata"]["html"].startswith("<!DOCTYPE html")
    summary = warc_summary(path, tmp_path / "again", post={"taggers": ["char_length_v1"], "skip": True})
    assert summary.stats.documents_out == len(gen.GOOD_PAGES)  # every page has a length span


def test_trafilatura_linearizer(tmp_path):
    path = crawl(tmp_path)
    assert warc.run(config(str(path), tmp_path / "out", linearizer="trafilatura")) == 0
    docs = by_url(read_jsonl(tmp_path / "out" / "crawl.jsonl.gz"))
    for _, exp in (gen.GOOD_PAGES[0], gen.GOOD_PAGES[3], gen.GOOD_PAGES[5]):
        assert exp.main[-1] in docs[exp.url]["text"]
        for phrase in exp.nav:
            assert phrase not in docs[exp.url]["text"]


def test_cc_taggers_as_ordinary_taggers(tmp_path):
    from dolma import registry

    html = gen.page("debian-handbook-index.html").decode()
    doc = Document(id="1", text="some text", metadata={"html": html})
    assert [(s.type, s.end) for s in registry.create("cc_re").predict(doc)] == [("cc_by-sa_3.0", 9)]
    on_text = Document(id="2", text='see <a rel="license" href="https://creativecommons.org/licenses/by/4.0/">CC</a>')
    assert [s.type for s in registry.create("cc_re_fast").predict(on_text)] == ["cc_by"]
    assert registry.create("cc_re").predict(Document(id="3", text="no licence")) == []


def test_config_errors(tmp_path):
    path = crawl(tmp_path)
    missing = run_cli("warc", "--documents", str(path), "--destination", str(tmp_path / "o"))
    assert missing.returncode == 2 and "source_name" in missing.stderr
    no_dest = run_cli("warc", "--documents", str(path), "--source_name", "x")
    assert no_dest.returncode == 2 and "destination" in no_dest.stderr
    bad = run_cli("warc", "--documents", str(path), "--destination", "o", "--source_name", "x", "--linearizer", "lxml")
    assert bad.returncode == 2 and "linearizer" in bad.stderr
    unknown = run_cli(
        "warc", "--documents", str(path), "--destination", "o", "--source_name", "x", "--pre.taggers", "cc"
    )
    assert unknown.returncode == 2 and "unknown tagger 'cc'" in unknown.stderr
    inside = run_cli("warc", "--documents", str(path), "--destination", str(path.parent), "--source_name", "x")
    assert inside.returncode == 2 and "refusing to write" in inside.stderr
    dry = run_cli(
        "warc", "--documents", str(path), "--destination", str(tmp_path / "d"), "--source_name", "x", "--dryrun"
    )
    assert dry.returncode == 0 and "crawl.jsonl.gz" in dry.stdout and not (tmp_path / "d").exists()


def test_missing_extra_names_the_install_command(tmp_path):
    path = crawl(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "fastwarc.py").write_text("raise ImportError('not installed')\n")
    (blocker / "sitecustomize.py").write_text(
        "import importlib.util, sys\n_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'fastwarc' else _find(name, *a)\n"
    )
    env = {"PYTHONPATH": f"{blocker}{os.pathsep}{REPO}"}
    result = run_cli(
        "warc", "--documents", str(path), "--destination", str(tmp_path / "o"), "--source_name", "x", env=env
    )
    assert result.returncode == 2
    assert "pip install 'dolma-toolkit[warc]'" in result.stderr and "fastwarc" in result.stderr


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://www.Example.com:443/a/b/?q=1#frag", "example.com/a/b/?q=1"),
        ("http://www2.example.com:8080/", "example.com:8080"),
        ("<https://docs.python.org/3/>", "docs.python.org/3"),
    ],
)
def test_url_normalization(url, normalized):
    assert ids.normalize_url(url) == normalized


def test_payload_decoding_edge_cases():
    body = b"<html><body>" + "é".encode() * 10 + b"</body></html>"
    chunked = b"5;ext=1\r\n" + body[:5] + b"\r\n" + b"%x\r\n" % (len(body) - 5) + body[5:] + b"\r\n0\r\n\r\n"
    assert extract.decode_payload(chunked, "chunked", "", 10_000) == body
    assert extract.decode_payload(gzip.compress(body), "", "gzip", 10_000) == body
    with pytest.raises(extract.Skip) as bomb:
        extract.decode_payload(gzip.compress(b"a" * 50_000), "", "gzip", 10_000)
    assert bomb.value.reason == extract.SKIP_TOO_BIG
    with pytest.raises(extract.Skip) as unknown:
        extract.decode_payload(body, "", "br-unknown", 10_000)
    assert unknown.value.reason == extract.SKIP_UNDECODABLE
    assert extract.to_text("café".encode("latin-1"), "utf-8") == "café"  # a wrong declaration falls back
    assert json.dumps(extract.to_text(b"\xff\xfe<p>", None))  # never raises on junk


def test_the_committed_demo_crawl_is_the_generators(tmp_path):
    """tests/data/warc/demo.warc.gz is what `python tests/helpers/warcgen.py --demo` writes (its provenance holds)."""
    rebuilt = gen.write_warc(tmp_path / "demo.warc.gz", gen.demo_records())
    assert rebuilt.read_bytes() == (REPO / "tests" / "data" / "warc" / "demo.warc.gz").read_bytes()


def test_a_file_that_is_not_a_warc_fails_loudly(tmp_path):
    junk = tmp_path / "in" / "junk.warc.gz"
    junk.parent.mkdir()
    junk.write_bytes(gzip.compress(b"this is a text file, not a web archive\n" * 50))
    failed = warc_summary(junk, tmp_path / "out")
    assert not failed.ok and "not a readable WARC stream" in failed.failures[0].error
    skipped = warc_summary(junk, tmp_path / "out2", skip_bad_records=True)
    assert skipped.ok and skipped.stats.counters[extract.SKIP_REST_OF_FILE] == 1


def test_output_is_never_written_over_the_crawl(tmp_path):
    """The shared path checks (dolma.paths): a destination that resolves to the crawl's directory is refused."""
    path = crawl(tmp_path)
    (tmp_path / "link").symlink_to(path.parent)
    before = tree(path.parent)
    for dest in (path.parent, tmp_path / "warc" / ".." / "warc", tmp_path / "link"):
        result = run_cli("warc", "--documents", str(path), "--destination", str(dest), "--source_name", "x")
        assert result.returncode == 2 and "refusing to write" in result.stderr, (dest, result.stderr)
    assert tree(path.parent) == before
