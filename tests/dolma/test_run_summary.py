"""The JSON run summary (docs/run-summary.md): every command writes one that validates against the schema and whose
numbers match the files it wrote (counted here from the outputs, never hard-coded)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import msgspec
import pytest

from dolma import io
from dolma.errors import ConfigError
from dolma.executors.summary import (
    RunSummary,
    default_path,
    file_name,
    is_run_summary,
    json_schema,
    read_run_summary,
)
from dolma.redact import MASK, redact_config
from tests.conftest import REPO, SAMPLE, read_jsonl, run_cli, summary_rows

SCHEMA_FILE = REPO / "docs" / "run-summary.schema.json"


def sample(tmp_path: Path) -> Path:
    shutil.copytree(SAMPLE / "documents", tmp_path / "documents")
    return tmp_path


def doc_files(root: Path) -> list[Path]:
    return sorted((root / "documents").rglob("*.jsonl.gz"))


def lines(path: Path | str) -> int:
    return len(read_jsonl(path))


def ok(result) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# ----------------------------------------------------------------------------------------------------------
# schema, reader, writer
# ----------------------------------------------------------------------------------------------------------


def test_committed_schema_is_the_generated_one():
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema()


def test_docs_describe_every_field():
    text = (REPO / "docs" / "run-summary.md").read_text()
    fields = set()
    for definition in json_schema()["$defs"].values():
        fields |= set(definition.get("properties", {}))
    missing = sorted(f for f in fields if f"`{f}`" not in text)
    assert not missing, f"docs/run-summary.md does not describe {missing}"
    assert "run-summary.md" in (REPO / "docs" / "README.md").read_text()


def minimal(**changes) -> dict:
    data = {
        "schema": "dolma-run-summary",
        "version": 1,
        "command": "tag",
        "toolkit_version": "0",
        "started": "2026-01-01T00:00:00Z",
        "finished": "2026-01-01T00:00:01Z",
        "seconds": 1.0,
        "ok": True,
    }
    data.update(changes)
    return data


def test_reader_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "summary.json"
    path.write_bytes(msgspec.json.encode(minimal()))
    assert read_run_summary(str(path)).command == "tag"
    path.write_bytes(msgspec.json.encode(minimal(units={"total": "six"})))
    with pytest.raises(ConfigError, match=r"summary\.json: field 'units\.total' does not match the schema"):
        read_run_summary(str(path))
    path.write_bytes(msgspec.json.encode(minimal(totals={"documents_in": -1})))
    with pytest.raises(ConfigError, match=r"field 'totals\.documents_in'"):
        read_run_summary(str(path))
    path.write_bytes(msgspec.json.encode(minimal(version=2)))
    with pytest.raises(ConfigError, match=r"summary\.json: field 'version' is 2; this toolkit reads version 1"):
        read_run_summary(str(path))
    path.write_bytes(msgspec.json.encode(minimal(schema="other")))
    with pytest.raises(ConfigError, match="not a run summary"):
        read_run_summary(str(path))
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"summary\.json: not a JSON document"):
        read_run_summary(str(path))
    # extra fields are allowed (a later minor addition, or a command's own section)
    path.write_bytes(msgspec.json.encode(minimal(evaluation={"f1": 0.5})))
    assert read_run_summary(str(path)).ok


def test_config_credentials_are_redacted():
    config = {
        "s3": {"endpoint_url": "http://127.0.0.1:9000", "aws_secret_access_key": "abc123secret"},
        "hf_token": "hf_abcdefgh",
        "tokenizer": {"bos_token_id": 7, "eos_token_id": 8},
        "max_tokens": 12,
        "documents": ["s3://b/x?X-Amz-Signature=deadbeefdeadbeef&X-Amz-Credential=AKIAABCDEFGHIJKLMNOP"],
    }
    out = redact_config(config)
    assert out["s3"] == {"endpoint_url": "http://127.0.0.1:9000", "aws_secret_access_key": MASK}
    assert out["hf_token"] == MASK
    assert out["tokenizer"] == {"bos_token_id": 7, "eos_token_id": 8} and out["max_tokens"] == 12
    assert "deadbeef" not in out["documents"][0] and "AKIA" not in out["documents"][0]


def test_default_place_is_the_deepest_common_directory(tmp_path):
    outs = [str(tmp_path / "attributes" / "a" / "x" / "1.gz"), str(tmp_path / "attributes" / "b" / "2.gz")]
    assert default_path("tag", outs) == str(tmp_path / "attributes" / file_name("tag"))
    assert default_path("mix", ["s3://bkt/out/m/a-0000.jsonl.gz", "s3://bkt/out/m/b-0000.jsonl.gz"]) == (
        f"s3://bkt/out/m/{file_name('mix')}"
    )
    assert is_run_summary(file_name("dedupe")) and not is_run_summary("part-0000.jsonl.gz")
    assert file_name("tag").startswith(".")  # hidden: globs over an output directory never take it as data
    assert io.glob(str(tmp_path / "*")) == []


# ----------------------------------------------------------------------------------------------------------
# every command on the sample corpus
# ----------------------------------------------------------------------------------------------------------

TAGGERS = ["char_length_v1", "whitespace_tokenizer_v1"]


def tag(root: Path, *extra: str):
    return run_cli(
        "tag", "--documents", str(root / "documents" / "**" / "*.jsonl.gz"), "--taggers", *TAGGERS, *extra
    )  # fmt: skip


@pytest.mark.parametrize("processes", ["1", "2"])
def test_tag_summary_matches_the_attribute_files(tmp_path, processes):
    root = sample(tmp_path)
    result = tag(root, "--processes", processes)
    ok(result)
    path = root / "attributes" / file_name("tag")
    s = read_run_summary(str(path))
    files = doc_files(root)
    assert s.command == "tag" and s.ok and s.degraded == [] and s.failures == []
    assert (s.units.total, s.units.processed, s.units.skipped, s.units.failed) == (len(files), len(files), 0, 0)
    assert {src.name: src.documents_in for src in s.sources} == {str(f): lines(f) for f in files}
    assert {src.name: src.bytes_in for src in s.sources} == {
        str(f): len(gzip.decompress(f.read_bytes())) for f in files
    }
    total = sum(lines(f) for f in files)
    assert s.totals.documents_in == s.totals.documents_out == total
    outputs = [p for t in TAGGERS for p in (root / "attributes" / t).rglob("*.jsonl.gz")]
    assert s.totals.bytes_out == sum(len(gzip.decompress(p.read_bytes())) for p in outputs)
    for tagger in TAGGERS:
        rows = [r for p in (root / "attributes" / tagger).rglob("*.jsonl.gz") for r in read_jsonl(p)]
        spans = sum(len(v) for r in rows for v in r["attributes"].values())
        assert (s.taggers[tagger].documents, s.taggers[tagger].spans) == (len(rows), spans)
    assert s.config["taggers"] == TAGGERS and s.config["processes"] == int(processes)
    rows = summary_rows(result.stderr)
    for tagger in TAGGERS:
        counts = s.taggers[tagger]
        assert rows[f"tagger {tagger}"] == f"{counts.documents:,} docs, {counts.spans:,} spans"
    assert f"run summary: {path}" in result.stderr

    # a rerun changes no output and says it skipped every file
    before = {p: p.read_bytes() for p in outputs}
    ok(tag(root, "--processes", processes))
    again = read_run_summary(str(path))
    assert (again.units.skipped, again.units.processed) == (len(files), 0)
    assert {p: p.read_bytes() for p in outputs} == before


def test_summary_path_option_and_degraded_run(tmp_path):
    root = sample(tmp_path)
    first = doc_files(root)[0]
    body = gzip.decompress(first.read_bytes()) + b"{not json\n"
    first.write_bytes(gzip.compress(body))
    target = tmp_path / "logs" / "tag-run.json"
    result = tag(root, "--skip_bad_lines", "--summary_path", str(target), "--quiet")
    ok(result)
    s = read_run_summary(str(target))
    assert s.totals.bad_lines == 1 and s.ok
    assert any("bad input line" in reason for reason in s.degraded)
    assert "DEGRADED" in result.stderr and "bad input line" in result.stderr  # loud even when quiet
    assert not (root / "attributes" / file_name("tag")).exists()


def test_a_failed_unit_is_in_the_summary(tmp_path):
    root = sample(tmp_path)
    broken = doc_files(root)[0]
    broken.write_bytes(gzip.compress(b'{"id": "a", "text": "fine"}\n{broken\n'))
    result = tag(root, "--quiet")
    assert result.returncode == 1
    s = read_run_summary(str(root / "attributes" / file_name("tag")))
    assert not s.ok and s.units.failed == 1 and [f.unit for f in s.failures] == [str(broken)]
    assert s.units.processed == len(doc_files(root)) - 1
    assert any("failed" in reason for reason in s.degraded)


def test_tag_summary_on_s3(tmp_path, s3_server, s3_bucket):
    client = s3_server.client()
    for f in doc_files(sample(tmp_path)):
        client.put_object(Bucket=s3_bucket, Key=f"c/documents/{f.parent.name}/{f.name}", Body=f.read_bytes())
    pattern = f"s3://{s3_bucket}/c/documents/**/*.jsonl.gz"
    ok(run_cli("tag", "--documents", pattern, "--taggers", "char_length_v1", "--quiet"))
    s = read_run_summary(f"s3://{s3_bucket}/c/attributes/char_length_v1/{file_name('tag')}")
    counted = {
        f"s3://{s3_bucket}/{key}": lines(f"s3://{s3_bucket}/{key}")
        for key in s3_server.keys(s3_bucket, "c/documents/")
    }
    assert {src.name: src.documents_in for src in s.sources} == counted
    assert s.taggers["char_length_v1"].documents == sum(counted.values())


def test_tag_summary_on_spark(tmp_path, spark_context):
    from dolma.commands.tag import TagConfig
    from dolma.commands.tag import run as run_tag
    from dolma.config import build

    root = sample(tmp_path)
    pattern = str(root / "documents" / "**" / "*.jsonl.gz")
    config = build(
        TagConfig, overrides={"documents": [pattern], "taggers": TAGGERS, "executor": "spark", "quiet": True}
    )
    assert run_tag(config) == 0
    s = read_run_summary(str(root / "attributes" / file_name("tag")))
    assert {src.name: src.documents_in for src in s.sources} == {str(f): lines(f) for f in doc_files(root)}
    assert s.taggers[TAGGERS[0]].documents == sum(lines(f) for f in doc_files(root))


def dedupe(root: Path, *extra: str):
    return run_cli(
        "dedupe", "--documents", str(root / "documents" / "**" / "*.jsonl.gz"),
        "--dedupe.name", "dd", "--dedupe.paragraphs.attribute_name", "dup",
        "--bloom_filter.file", str(root / "filter.bin"), "--bloom_filter.estimated_doc_count", "100000",
        "--bloom_filter.desired_false_positive_rate", "0.0001", *extra,
    )  # fmt: skip


def test_dedupe_summary_matches_the_marks(tmp_path):
    root = sample(tmp_path)
    ok(dedupe(root, "--processes", "2", "--quiet"))
    s = read_run_summary(str(root / "attributes" / "dd" / file_name("dedupe")))
    rows = [r for p in (root / "attributes" / "dd").rglob("*.jsonl.gz") for r in read_jsonl(p)]
    marked_docs = sum(1 for r in rows if r["attributes"].get("dup"))
    marked_units = sum(len(r["attributes"].get("dup", [])) for r in rows)
    assert s.dedupe is not None and set(s.dedupe.modes) == {"paragraphs"}
    assert s.dedupe.modes["paragraphs"].units_marked == marked_units > 0
    assert s.dedupe.modes["paragraphs"].documents_marked == marked_docs
    assert s.totals.documents_in == len(rows) == sum(lines(f) for f in doc_files(root))
    bf = s.dedupe.bloom_filter
    assert bf is not None and bf.hash_functions > 0 and bf.size_in_bytes >= (root / "filter.bin").stat().st_size // 2
    assert 0 < bf.fill_ratio < 1 and bf.estimated_false_positive_rate == pytest.approx(
        bf.fill_ratio**bf.hash_functions
    )
    assert s.units.processed == len(doc_files(root)) and s.degraded == []


def test_dedupe_prints_the_shared_summary_on_stderr(tmp_path):
    root = sample(tmp_path)
    result = dedupe(root)
    ok(result)
    assert "marked" not in result.stdout  # no stats table of its own on stdout any more (logs may go there)
    s = read_run_summary(str(root / "attributes" / "dd" / file_name("dedupe")))
    rows = summary_rows(result.stderr)
    assert s.dedupe is not None and s.dedupe.bloom_filter is not None
    assert rows["fill"] == f"{s.dedupe.bloom_filter.fill_ratio:.3f}"
    assert rows["false-positive rate"] == f"{s.dedupe.bloom_filter.estimated_false_positive_rate:.3g}"
    marks = s.dedupe.modes["paragraphs"]
    assert rows["dedupe paragraphs"] == f"{marks.units_marked:,} units marked in {marks.documents_marked:,} docs"
    assert rows["documents in"] == f"{s.totals.documents_in:,}" and rows["processed"] == str(s.units.processed)


def test_mix_summary_matches_the_shards(tmp_path):
    root = sample(tmp_path)
    ok(tag(root, "--quiet"))
    cfg = tmp_path / "mix.yaml"
    cfg.write_text(
        json.dumps(
            {
                "streams": [
                    {
                        "name": "m",
                        "documents": [str(root / "documents" / "**" / "*.jsonl.gz")],
                        "attributes": ["char_length_v1"],
                        "filter": {
                            "exclude": ["$.attributes[?(@.char_length_v1__char_length_v1__length[0][2] < 500)]"]
                        },
                        "output": {"path": str(root / "mixed"), "min_text_length": 1000},
                        "sample_rate": 0.5,
                    }
                ],
                "quiet": True,
            }
        )
    )
    ok(run_cli("-c", str(cfg), "mix"))
    s = read_run_summary(str(root / "mixed" / file_name("mix")))
    written = sum(lines(p) for p in (root / "mixed").glob("m-*.jsonl*"))
    total = sum(lines(f) for f in doc_files(root))
    assert [(src.name, src.documents_in, src.documents_out) for src in s.sources] == [("m", total, written)]
    kinds = {r.kind for r in s.rules}
    assert kinds == {"filter", "sample"}
    assert total - written == sum(r.documents_removed for r in s.rules)
    exclude = next(r for r in s.rules if "char_length_v1" in r.rule)
    assert exclude.documents_removed > 0 and exclude.stream == "m"


def test_tokens_summary_matches_the_shards(tmp_path):
    import numpy as np

    root = sample(tmp_path)
    dest = root / "tokens"
    ok(run_cli("tokens", "--documents", str(root / "documents" / "**" / "*.jsonl.gz"), "--destination", str(dest),
               "--processes", "2", "--quiet"))  # fmt: skip
    s = read_run_summary(str(dest / file_name("tokens")))
    assert s.tokens is not None
    npys = sorted(dest.glob("*.npy"))
    assert sorted(sh.path for sh in s.tokens.shards) == [str(p) for p in npys]
    assert s.tokens.tokens == sum(len(np.memmap(p, dtype=np.uint16, mode="r")) for p in npys)
    metadata = sum(len(gzip.decompress(p.with_suffix("").with_suffix(".csv.gz").read_bytes()).splitlines())
                   for p in npys)  # fmt: skip
    assert s.tokens.documents == metadata == s.totals.documents_out


def test_warc_summary_matches_the_documents(tmp_path):
    warc = REPO / "tests" / "data" / "warc" / "demo.warc.gz"
    shutil.copy(warc, tmp_path / "demo.warc.gz")
    ok(run_cli("warc", "--documents", str(tmp_path / "*.warc.gz"), "--destination", str(tmp_path / "out"),
               "--source_name", "crawl", "--quiet"))  # fmt: skip
    s = read_run_summary(str(tmp_path / "out" / file_name("warc")))
    written = [p for p in (tmp_path / "out").rglob("*.gz")]
    assert s.totals.documents_out == sum(lines(p) for p in written) > 0
    assert [src.name for src in s.sources] == [str(tmp_path / "demo.warc.gz")]
    # the demo crawl's non-200 and non-HTML records are left out by design: counted, not a degraded run
    assert sum(v for k, v in s.counters.items() if k.startswith("records skipped")) > 0 and s.degraded == []


def test_damaged_warc_records_make_the_run_degraded(tmp_path):
    from tests.helpers import warcgen as gen

    gen.write_warc(tmp_path / "bad.warc.gz", [gen.warcinfo("bad.warc.gz"), gen.malformed_warc_header_record()])
    ok(run_cli("warc", "--documents", str(tmp_path / "*.warc.gz"), "--destination", str(tmp_path / "out"),
               "--source_name", "crawl", "--quiet"))  # fmt: skip
    s = read_run_summary(str(tmp_path / "out" / file_name("warc")))
    assert any("damaged or oversized WARC record" in reason for reason in s.degraded)


def test_train_fasttext_summary_counts_the_inputs(tmp_path):
    root = sample(tmp_path)
    pos = [str(root / "documents" / "python-docs" / "*.jsonl.gz")]
    neg = [str(root / "documents" / "web-mixed" / "*.jsonl.gz")]
    ok(run_cli("train-fasttext", "--positive", *pos, "--negative", *neg, "--model_path", str(tmp_path / "m" / "q.bin"),
               "--epoch", "1"))  # fmt: skip
    s = read_run_summary(str(tmp_path / "m" / file_name("train-fasttext")))
    count = {n: sum(lines(p) for p in io.glob(g[0])) for n, g in (("positive", pos), ("negative", neg))}
    assert {src.name: src.documents_in for src in s.sources} == count
    assert s.totals.bytes_out == (tmp_path / "m" / "q.bin").stat().st_size


def test_written_summary_is_valid_json_for_the_report(tmp_path):
    root = sample(tmp_path)
    ok(tag(root, "--quiet"))
    raw = (root / "attributes" / file_name("tag")).read_bytes()
    assert isinstance(msgspec.json.decode(raw, type=RunSummary), RunSummary)
    data = json.loads(raw)
    assert data["schema"] == "dolma-run-summary" and data["version"] == 1
    assert all(isinstance(v, int) for v in data["totals"].values())
