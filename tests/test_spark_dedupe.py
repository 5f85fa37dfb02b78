"""Global dedupe on Spark: hash-partitioned key slices must give exactly the sequential first-occurrence result.

Two independent checks: a one-pass exact-set implementation (the definition: first in path, then line,
then paragraph order) for several partition counts, and the reference toolkit (`dolma dedupe`, one process,
a Bloom filter far larger than the corpus) as a black-box oracle on the same files.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from conftest import read_jsonl, write_jsonl_gz
from reference import run_reference

from dolma import io
from dolma.documents import attributes_path
from dolma.spark_dedupe import (
    DocumentKeys,
    ParagraphKeys,
    mark_repeats,
    pack_position,
    sequential_dedupe,
    spark_dedupe,
    unpack_position,
)

PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog.",
    "Copyright 2024 Example Corp. All rights reserved.",
    "Subscribe to our newsletter",
    "Lorem ipsum dolor sit amet",
    "   ",
    "",
    "Click here to read more",
    "A unique line",
]


def make_corpus(root: Path, files: int = 4, docs: int = 60, seed: int = 0, ascii_only: bool = False) -> list[str]:
    """Documents that repeat whole texts and paragraphs across and within files, in a seeded order."""
    rng = random.Random(seed)
    extra = ["", "Ünïcödé paragraph — ok", "日本語の段落"] if not ascii_only else [""]
    paths = []
    for f in range(files):
        rows = []
        for i in range(docs):
            k = rng.randint(1, 5)
            paras = [rng.choice(PARAGRAPHS + extra) for _ in range(k)]
            paras += [f"unique {f} {i} {j}" for j in range(rng.randint(0, 2))]
            rng.shuffle(paras)
            text = "\n".join(paras) + rng.choice(["", "\n"])
            if i % 17 == 5:
                text = ""
            if i % 13 == 3:
                text = "This whole document is copied.\nTwice or more."
            rows.append({"id": f"f{f}-{i}", "text": text, "source": "test"})
        path = root / "documents" / "sub" / f"part-{f}.jsonl.gz"
        write_jsonl_gz(path, rows)
        paths.append(str(path))
    return sorted(paths)


def outputs_for(paths: list[str], name: str) -> list[str]:
    return [attributes_path(p, name) for p in paths]


def lines_of(path: str) -> list[bytes]:
    return [line for _, line in io.iter_lines(path)]


def test_positions_pack_in_stable_order():
    order = [(0, 1, 0), (0, 1, 5), (0, 2, 0), (1, 1, 0), (12, 1 << 30, 70000)]
    packed = [pack_position(*p) for p in order]
    assert packed == sorted(packed)
    assert [unpack_position(p) for p in packed] == order
    with pytest.raises(ValueError):
        pack_position(0, 1, 1 << 24)


def test_mark_repeats_keeps_the_earliest_whatever_the_arrival_order():
    a, b, c = pack_position(0, 3, 0), pack_position(0, 9, 1), pack_position(2, 1, 0)
    got = list(mark_repeats([(5, c), (5, a), (5, b), (7, b), (9, c), (9, a)]))
    assert sorted(got) == sorted([(2, c), (0, b), (2, c)])


@pytest.mark.parametrize(("mode", "partitions"), [("documents", 5), ("paragraphs", 1), ("paragraphs", 5)])
def test_spark_dedupe_equals_sequential_first_occurrence(tmp_path, spark_context, mode, partitions):
    paths = make_corpus(tmp_path, seed=partitions)
    extractor = DocumentKeys("bff_dup", "$.text") if mode == "documents" else ParagraphKeys("bff_dup_para")
    outputs = outputs_for(paths, "dd")
    summary = spark_dedupe(spark_context, paths, outputs, extractor, num_partitions=partitions)
    assert summary.ok and summary.succeeded == len(paths) and summary.stats.documents_in == 4 * 60
    expected = sequential_dedupe(paths, extractor)
    marked = 0
    for out, rows in zip(outputs, expected):
        assert lines_of(out) == rows
        marked += sum(1 for r in rows if json.loads(r)["attributes"].get(extractor.attribute_name))
    assert marked > 20  # the corpus really has repeats
    assert summary.stats.counters["duplicate keys marked"] >= marked


def test_spark_dedupe_failure_writes_nothing(tmp_path, spark_context):
    paths = make_corpus(tmp_path, files=2, docs=5)
    data = Path(paths[1]).read_bytes()
    Path(paths[1]).write_bytes(data[: len(data) // 2])  # a truncated gzip file
    outputs = outputs_for(paths, "dd")
    summary = spark_dedupe(spark_context, paths, outputs, DocumentKeys("d"), num_partitions=2)
    assert summary.failed == 2 and not summary.ok
    assert "part-1.jsonl.gz" in summary.failures[0].error and "truncated" in summary.failures[0].error
    assert not any(Path(o).exists() for o in outputs)


@pytest.mark.reference
@pytest.mark.parametrize("mode", ["documents", "paragraphs"])
def test_spark_dedupe_matches_the_reference_toolkit(tmp_path, spark_context, mode):
    paths = make_corpus(tmp_path, files=3, docs=50, seed=11, ascii_only=mode == "paragraphs")
    if mode == "documents":
        section = {"name": "ref", "documents": {"attribute_name": "bff_dup", "key": "$.text"}, "skip_empty": True}
        extractor = DocumentKeys("bff_dup", "$.text")
    else:
        section = {"name": "ref", "paragraphs": {"attribute_name": "bff_dup_para"}, "skip_empty": True}
        extractor = ParagraphKeys("bff_dup_para")
    config = {
        "documents": [str(tmp_path / "documents" / "sub" / "*.jsonl.gz")],
        "dedupe": section,
        "bloom_filter": {
            "file": str(tmp_path / "bloom.bin"),
            "read_only": False,
            "estimated_doc_count": 1_000_000,
            "desired_false_positive_rate": 1e-9,
        },
        "processes": 1,
    }
    cfg = tmp_path / "ref.json"
    cfg.write_text(json.dumps(config))
    result = run_reference(["-c", str(cfg), "dedupe"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    summary = spark_dedupe(spark_context, paths, outputs_for(paths, "ours"), extractor, num_partitions=3)
    assert summary.ok
    for ref_out, our_out in zip(outputs_for(paths, "ref"), outputs_for(paths, "ours")):
        assert read_jsonl(our_out) == read_jsonl(ref_out)


@pytest.mark.reference
def test_spark_dedupe_on_the_sample_corpus_matches_the_reference(tmp_path, spark_context):
    """Documents mode (whole text) on the sample corpus with its planted duplicates, against `dolma dedupe`."""
    from conftest import SAMPLE

    shutil.copytree(SAMPLE / "documents", tmp_path / "documents")
    paths = io.glob(str(tmp_path / "documents" / "**" / "*.jsonl.gz"))
    assert len(paths) >= 3
    config = {
        "documents": [str(tmp_path / "documents" / "**" / "*.jsonl.gz")],
        "dedupe": {"name": "ref", "documents": {"attribute_name": "bff_dup", "key": "$.text"}, "skip_empty": True},
        "bloom_filter": {
            "file": str(tmp_path / "bloom.bin"),
            "read_only": False,
            "estimated_doc_count": 1_000_000,
            "desired_false_positive_rate": 1e-9,
        },
        "processes": 1,
    }
    cfg = tmp_path / "ref.json"
    cfg.write_text(json.dumps(config))
    result = run_reference(["-c", str(cfg), "dedupe"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = spark_dedupe(
        spark_context, paths, outputs_for(paths, "ours"), DocumentKeys("bff_dup", "$.text"), num_partitions=4
    )
    assert summary.ok
    duplicates = 0
    for ref_out, our_out in zip(outputs_for(paths, "ref"), outputs_for(paths, "ours")):
        ours = read_jsonl(our_out)
        assert ours == read_jsonl(ref_out)
        duplicates += sum(1 for row in ours if row["attributes"].get("bff_dup"))
    assert duplicates > 0  # the sample corpus plants exact duplicates
