"""Global dedupe on Spark (`dolma dedupe` with `executor: spark`) must write the local deduper's attribute files.

The oracle is `dolma dedupe` with `executor: local` (the Rust Bloom-filter pipeline, sized so that false
positives cannot occur on these corpora): every attribute file must be byte-identical, compression included.
The local deduper itself is compared with the reference toolkit in test_reference_dedupe.py (documents-mode
span ends there are code points, where the reference counts UTF-8 bytes), so Spark is checked against the
reference through it.
All runs share the session's local[2] SparkContext (tests/conftest.py); the standalone-cluster run is in
test_spark.py, next to the cluster fixture.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from dolma.commands import dedupe
from dolma.config import build
from dolma.dedupe.config import DedupeConfig, DedupeSection
from dolma.dedupe.plan import _rust_config
from dolma.documents import attributes_path
from dolma.errors import ConfigError
from dolma.executors.summary import is_run_summary
from dolma.spark_dedupe import MarkRepeats, spark_dedupe
from tests.conftest import LOOPBACK_SPARK_CONF, SAMPLE, read_jsonl, write_jsonl_gz

PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog.",
    "Copyright 2024 Example Corp. All rights reserved.",
    "Subscribe to our newsletter",
    "Lorem ipsum dolor sit amet",
    "   ",
    "",
    "Click here to read more",
    "A unique line",
    "Ünïcödé paragraph — ok, with the fox jumps over the lazy dog",
    "日本語の段落",
]

DOCUMENTS = {"documents": {"attribute_name": "bff_dup", "key": "$.text"}, "skip_empty": True}
URLS = {"documents": {"attribute_name": "bff_dup_url", "key": "$.metadata.url"}}
PARAGRAPH_MODE = {"paragraphs": {"attribute_name": "bff_dup_para"}, "skip_empty": True}
CUSTOM = {"paragraphs": {"attribute_name": "p", "paragraph_separator": " // "}, "min_length": 8, "min_words": 2}
NGRAMS = {
    "paragraphs": {
        "attribute_name": "ng",
        "by_ngram": {"ngram_length": 3, "stride": 2, "overlap_threshold": 0.3, "skip_short_paragraphs": False},
    },
    "skip_empty": True,
}


def make_corpus(root: Path, files: int = 4, docs: int = 50, seed: int = 0) -> list[str]:
    """Documents that repeat whole texts, URLs and paragraphs across and within files, in a seeded order."""
    rng = random.Random(seed)
    paths = []
    for f in range(files):
        rows = []
        for i in range(docs):
            paras = [rng.choice(PARAGRAPHS) for _ in range(rng.randint(1, 5))]
            paras += [f"unique {f} {i} {j}" for j in range(rng.randint(0, 2))]
            rng.shuffle(paras)
            sep = rng.choice(["\n", " // "])
            text = sep.join(paras) + rng.choice(["", "\n"])
            if i % 17 == 5:
                text = ""
            if i % 13 == 3:
                text = "This whole document is copied.\nTwice or more."
            url = f"https://example.com/{rng.randint(0, 40)}"
            rows.append({"id": f"f{f}-{i}", "text": text, "source": "test", "metadata": {"url": url}})
        path = root / "documents" / "sub" / f"part-{f}.jsonl.gz"
        write_jsonl_gz(path, rows)
        paths.append(str(path))
    return sorted(paths)


def run_dedupe(root: Path, section: dict, executor: str, name: str, **extra) -> int:
    overrides = {
        "documents": [str(root / "documents" / "**" / "*.jsonl.gz")],
        "dedupe": {"name": name, **section},
        "bloom_filter": {
            "file": str(root / f"bloom-{name}.bin"),
            "estimated_doc_count": 1_000_000,
            "desired_false_positive_rate": 1e-12,
        },
        "executor": executor,
        "spark": {"master": "local[2]", "conf": LOOPBACK_SPARK_CONF},
        "quiet": True,
        **extra,
    }
    return dedupe.run(build(DedupeConfig, overrides=overrides))


def attribute_tree(root: Path, name: str) -> dict[str, bytes]:
    base = root / "attributes" / name
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and not is_run_summary(p)
    }


def marked(tree: dict[str, bytes], attribute: str) -> int:
    import gzip

    rows = [json.loads(line) for data in tree.values() for line in gzip.decompress(data).splitlines()]
    return sum(1 for row in rows if row["attributes"].get(attribute))


def test_mark_repeats_keeps_the_earliest_whatever_the_arrival_order(tmp_path):
    from dolma._rust import DedupeKeys

    keys = DedupeKeys(_rust_config(build(DedupeSection, overrides={"name": "x", **PARAGRAPH_MODE})))
    data = [b'{"id": "a", "text": "x\\ny\\nx"}\n', b'\n{"id": "b", "text": "y\\nz"}\n']
    # file 1 first, and keys in 3 partitions: the result must not depend on arrival order or partitioning
    emitted = {i: keys.keys("f.jsonl", data[i], i, 3) for i in (1, 0)}
    items = [item for i in (1, 0) for item in emitted[i][0]]
    by_partition: dict[int, list] = {}
    for partition, blob in items:
        by_partition.setdefault(partition, []).append((partition, blob))
    repeats: dict[int, bytes] = {}
    mark = MarkRepeats(3)
    for partition, part in by_partition.items():
        for file_index, blob in mark(partition, part):
            repeats[file_index] = repeats.get(file_index, b"") + blob
    # skeleton partitions (index >= P) pass their (file index, skeleton) values on unchanged
    assert list(mark(3, [(3, (1, emitted[1][1], "f", "o"))])) == [(1, (emitted[1][1], "f", "o"))]
    out = tmp_path / "out.jsonl"
    assert emitted[0][2]["bytes"] == len(data[0])
    keys.write_attributes(emitted[0][1], repeats.get(0, b""), str(out))
    assert out.read_text() == '{"id":"a","attributes":{"bff_dup_para":[[4,5,1]]}}\n'
    keys.write_attributes(emitted[1][1], repeats.get(1, b""), str(out))
    assert out.read_text() == '{"id":"b","attributes":{"bff_dup_para":[[0,2,1]]}}\n'
    with pytest.raises(ValueError, match="corrupt dedupe skeleton"):
        keys.write_attributes(emitted[1][1][:-1], b"", str(out))


@pytest.mark.parametrize(
    ("section", "attribute"),
    [(DOCUMENTS, "bff_dup"), (PARAGRAPH_MODE, "bff_dup_para")],
    ids=["documents", "paragraphs"],
)
def test_spark_equals_local_on_the_sample_corpus(tmp_path, spark_context, section, attribute):
    shutil.copytree(SAMPLE / "documents", tmp_path / "documents")
    assert run_dedupe(tmp_path, section, "local", "local") == 0
    assert run_dedupe(tmp_path, section, "spark", "spark") == 0
    local, spark = attribute_tree(tmp_path, "local"), attribute_tree(tmp_path, "spark")
    assert len(local) == 5 and spark == local
    assert marked(local, attribute) > 10  # the sample corpus plants duplicates
    assert not (tmp_path / "bloom-spark.bin").exists()  # Spark uses no Bloom filter


@pytest.mark.parametrize(
    ("section", "attribute"),
    [(URLS, "bff_dup_url"), (CUSTOM, "p"), (NGRAMS, "ng")],
    ids=["documents-url", "separator-min-length-words", "ngrams"],
)
def test_spark_equals_local_for_other_keys_and_options(tmp_path, spark_context, section, attribute):
    make_corpus(tmp_path, seed=len(attribute))
    assert run_dedupe(tmp_path, section, "local", "local") == 0
    assert run_dedupe(tmp_path, section, "spark", "spark") == 0
    local = attribute_tree(tmp_path, "local")
    assert attribute_tree(tmp_path, "spark") == local
    assert marked(local, attribute) > 20


def test_killed_task_is_retried_and_output_is_identical(tmp_path, spark_context):
    paths = make_corpus(tmp_path, files=3, docs=40, seed=5)
    assert run_dedupe(tmp_path, PARAGRAPH_MODE, "local", "local") == 0
    config_json = _rust_config(build(DedupeSection, overrides={"name": "spark", **PARAGRAPH_MODE}))
    marker = tmp_path / "killed-once"
    outputs = [attributes_path(p, "spark") for p in paths]
    summary = spark_dedupe(spark_context, paths, outputs, config_json, num_partitions=3, fail_marker=str(marker))
    assert marker.exists(), "the injected kill did not happen"
    assert summary.ok and summary.succeeded == 3
    assert attribute_tree(tmp_path, "spark") == attribute_tree(tmp_path, "local")  # no temporaries left either


@pytest.mark.parametrize("tasks", [1, 3])
def test_files_grouped_into_fewer_tasks_give_the_same_output(tmp_path, spark_context, tasks):
    paths = make_corpus(tmp_path, files=7, docs=30, seed=11)
    assert run_dedupe(tmp_path, PARAGRAPH_MODE, "local", "local") == 0
    config_json = _rust_config(build(DedupeSection, overrides={"name": "spark", **PARAGRAPH_MODE}))
    outputs = [attributes_path(p, "spark") for p in paths]
    summary = spark_dedupe(spark_context, paths, outputs, config_json, num_partitions=2, tasks=tasks)
    assert summary.ok and summary.succeeded == 7
    assert summary.stats.documents_in == 7 * 30
    assert attribute_tree(tmp_path, "spark") == attribute_tree(tmp_path, "local")
    assert marked(attribute_tree(tmp_path, "local"), "bff_dup_para") > 20


def test_s3_in_and_out(tmp_path, spark_context, s3_server, s3_bucket):
    make_corpus(tmp_path, files=3, docs=30, seed=9)
    assert run_dedupe(tmp_path, PARAGRAPH_MODE, "local", "dd") == 0
    expected = attribute_tree(tmp_path, "dd")
    client = s3_server.client()
    for path in sorted((tmp_path / "documents").rglob("*.gz")):
        client.upload_file(str(path), s3_bucket, f"corpus/{path.relative_to(tmp_path)}")
    overrides = {
        "documents": [f"s3://{s3_bucket}/corpus/documents/**/*.jsonl.gz"],
        "dedupe": {"name": "dd", **PARAGRAPH_MODE},
        "bloom_filter": {"file": f"s3://{s3_bucket}/bloom.bin", "estimated_doc_count": 1000},
        "executor": "spark",
        "s3": {"endpoint_url": s3_server.endpoint},
        "quiet": True,
    }
    assert dedupe.run(build(DedupeConfig, overrides=overrides)) == 0
    prefix = "corpus/attributes/dd/"
    keys = s3_server.keys(s3_bucket, prefix)
    got = {k[len(prefix) :]: client.get_object(Bucket=s3_bucket, Key=k)["Body"].read() for k in keys}
    assert got == expected


def test_rerun_and_new_files_on_spark_never_re_mark(tmp_path, spark_context):
    """Spark keeps no filter, so nothing is "already inserted": every run recomputes all files from all inputs.
    A rerun writes the same bytes (it does not mark the first run's documents as repeats of themselves), and a
    run after new files were added equals one local run over everything (earlier files unchanged)."""
    paths = make_corpus(tmp_path, files=4, docs=30, seed=3)
    later = tmp_path / "later.jsonl.gz"
    Path(paths[3]).rename(later)
    assert run_dedupe(tmp_path, PARAGRAPH_MODE, "spark", "dd") == 0
    first = attribute_tree(tmp_path, "dd")
    assert run_dedupe(tmp_path, PARAGRAPH_MODE, "spark", "dd") == 0
    assert attribute_tree(tmp_path, "dd") == first
    assert 0 < marked(first, "bff_dup_para") < 3 * 30
    later.rename(paths[3])
    assert run_dedupe(tmp_path, PARAGRAPH_MODE, "spark", "dd") == 0
    assert run_dedupe(tmp_path, PARAGRAPH_MODE, "local", "local") == 0
    both = attribute_tree(tmp_path, "dd")
    assert both == attribute_tree(tmp_path, "local") and {k: both[k] for k in first} == first
    assert not (tmp_path / "bloom-dd.bin").exists()


def test_options_without_meaning_on_spark_are_errors(tmp_path):
    make_corpus(tmp_path, files=1, docs=3)
    with pytest.raises(ConfigError, match="num_partitions"):
        run_dedupe(tmp_path, {**DOCUMENTS, "num_partitions": 2, "partition_index": 1}, "spark", "x")
    (tmp_path / "bloom-x.bin").write_bytes(b"old filter")
    with pytest.raises(ConfigError, match="exists"):
        run_dedupe(tmp_path, DOCUMENTS, "spark", "x")
    with pytest.raises(ConfigError, match="ngram_length"):
        run_dedupe(tmp_path, {"paragraphs": {"attribute_name": "n", "by_ngram": {"ngram_length": 0}}}, "spark", "y")


def test_bad_input_fails_the_run_and_writes_nothing(tmp_path, spark_context, capsys):
    paths = make_corpus(tmp_path, files=2, docs=5)
    Path(paths[1]).write_bytes(Path(paths[1]).read_bytes()[:-20])  # a truncated gzip file
    assert run_dedupe(tmp_path, DOCUMENTS, "spark", "dd") == 1
    assert "part-1.jsonl.gz" in capsys.readouterr().err
    # (the failed run's run summary is a run log, not an output)
    assert not [p for p in (tmp_path / "attributes").rglob("*") if p.is_file() and not is_run_summary(p)]
    write_jsonl_gz(Path(paths[1]), [{"id": "ok", "text": "x"}, {"id": 3, "text": "bad id"}])
    assert run_dedupe(tmp_path, DOCUMENTS, "spark", "dd") == 1
    assert f"{paths[1]}:2: field 'id'" in capsys.readouterr().err
    assert run_dedupe(tmp_path, DOCUMENTS, "spark", "dd", skip_bad_lines=True) == 0
    assert [row["id"] for row in read_jsonl(attributes_path(paths[1], "dd"))] == ["ok"]
