"""`dolma stat`: numbers equal a brute-force computation on the sample corpus's attributes, identical whatever runs
the units (1 or 2 processes, Spark local[2]), on S3 too, bad lines per the common policy, path safety, resume,
and the same summaries as the reference's `dolma stat` (up to its documented value rounding)."""

from __future__ import annotations

import gzip
import json
import math
import re
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dolma import config as dconfig
from dolma import stats
from dolma.commands import stat
from dolma.errors import PathSafetyError
from tests.conftest import SAMPLE, read_jsonl, run_cli
from tests.helpers.reference import run_reference

TAGGERS = ["char_length_v1", "gopher_v1", "char_length_with_paragraphs_v1", "random_number_v1"]
PATTERN = "attributes/*/**/*.jsonl.gz"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The sample corpus with its attributes, written by `dolma tag`."""
    root = tmp_path_factory.mktemp("stat") / "corpus"
    shutil.copytree(SAMPLE / "documents", root / "documents")
    result = run_cli("tag", "--documents", "documents/**/*.jsonl.gz", "--taggers", *TAGGERS, "--quiet", cwd=root)
    assert result.returncode == 0, result.stderr
    return root


def stat_config(attributes: list[str], report: str | None, **extra) -> stat.StatConfig:
    return dconfig.build(
        stat.StatConfig, overrides={"attributes": attributes, "report": report, "quiet": True, **extra}
    )


def read_summaries(path: Path | str) -> list[dict]:
    return read_jsonl(path)


def brute_force(root: Path) -> dict[str, list[float]]:
    """Every `<key>/score` and `<key>/length` value of the attribute files, read with the json module."""
    values: dict[str, list[float]] = {}
    for path in sorted(root.glob(PATTERN)):
        for row in read_jsonl(path):
            for key, spans in row["attributes"].items():
                spans = spans or [[0, 0, 0.0]]
                values.setdefault(f"{key}/score", []).extend(float(s[2]) for s in spans)
                values.setdefault(f"{key}/length", []).extend(float(s[1] - s[0]) for s in spans)
    return values


def expected_histogram(v: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """One bin per distinct value when there are at most `bins` (plus an edge above), else numpy.histogram."""
    distinct, counts = np.unique(v, return_counts=True)
    if distinct.size <= bins:
        return counts, np.append(distinct, stats.top_edge(float(distinct[-1])))
    return np.histogram(v, bins=bins, range=(v.min(), v.max()))


@pytest.mark.parametrize("bins", [1000, 40])
def test_numbers_equal_brute_force(corpus, tmp_path, bins):
    report = tmp_path / "report"
    assert stat.run(stat_config([str(corpus / PATTERN)], str(report), bins=bins)) == 0
    lines = {line["name"]: line for line in read_summaries(report / "summaries.jsonl.gz")}
    truth = brute_force(corpus)
    assert set(lines) == set(truth)
    modes = set()
    for name, raw in truth.items():
        v = np.asarray(raw)
        line = lines[name]
        exact = sum(map(Fraction, raw), Fraction(0))
        assert line["total"] == v.size, name
        assert line["sum"] == math.fsum(raw) == float(exact), name  # exact sum, rounded once
        assert line["mean"] == float(exact / v.size), name
        assert (line["min"], line["max"]) == (v.min(), v.max()), name
        counts, edges = expected_histogram(v, bins)
        modes.add(len(edges) == bins + 1)
        assert line["counts"] == counts.tolist(), name
        assert line["bins"] == edges.tolist(), name
        assert sum(line["counts"]) == v.size
        for label, got in line["quantiles"].items():
            q = int(label[1:]) / 100
            want = float(np.quantile(v, q, method="lower"))
            assert abs(got - want) <= stats.RELATIVE_ACCURACY * abs(want), (name, label, got, want)
    assert modes == {True, False}  # both kinds of bins were checked


def test_exact_sum_is_exact():
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.normal(0, 1e6, 5000), rng.random(5000) * 1e-9, [1e300, -1e300, 5e-324, 0.0, -0.0]])
    assert stats.exact_sum(v) == sum(map(Fraction, v.tolist()), Fraction(0))


def test_one_two_processes_and_spark_identical(corpus, tmp_path, spark_context):
    outputs = []
    for name, extra in [
        ("one", {"processes": 1}),
        ("two", {"processes": 2}),
        ("spark", {"executor": "spark", "spark": {"master": "local[2]"}}),
    ]:
        report = tmp_path / name
        assert stat.run(stat_config([str(corpus / PATTERN)], str(report), **extra)) == 0
        outputs.append(gzip.decompress((report / "summaries.jsonl.gz").read_bytes()))
        assert not list(report.glob(".dolma-stat-*")), "the work directory is removed after a successful run"
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0].count(b"\n") == len(brute_force(corpus))


def test_s3_attributes_and_report(corpus, tmp_path, s3_server, s3_bucket):
    client = s3_server.client()
    for path in sorted(corpus.glob(PATTERN)):
        client.upload_file(str(path), s3_bucket, f"c/{path.relative_to(corpus)}")
    local = tmp_path / "local"
    assert stat.run(stat_config([str(corpus / PATTERN)], str(local))) == 0
    config = stat_config([f"s3://{s3_bucket}/c/{PATTERN}"], f"s3://{s3_bucket}/report", processes=2)
    assert stat.run(config) == 0
    remote = gzip.decompress(client.get_object(Bucket=s3_bucket, Key="report/summaries.jsonl.gz")["Body"].read())
    assert remote == gzip.decompress((local / "summaries.jsonl.gz").read_bytes())
    assert not [k for k in s3_server.keys(s3_bucket) if ".dolma-stat-" in k]


def write_rows(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")


GOOD = [{"id": str(i), "attributes": {"k": [[0, i, i / 10]]}} for i in range(1, 6)]


@pytest.mark.parametrize(
    "bad, field",
    [
        ('{"id": "x", "attributes": {"k": [[0, 3]]}}', "attributes.k[0]"),
        ('{"id": "x", "attributes": {"k": [[0, 3, "high"]]}}', "attributes.k[0]"),
        ('{"id": "x", "attributes": {"k": 3}}', "attributes.k"),
        ('{"id": "x", "attributes": [1]}', "attributes"),
        ('{"id": "x"}', "attributes"),
        ('{"id": "x", "attributes": {"k": [[0, 1, 1]]', None),
    ],
)
def test_bad_lines_fail_naming_file_line_field_or_are_skipped_and_counted(tmp_path, bad, field, capsys):
    path = tmp_path / "attributes" / "a" / "part-0.jsonl.gz"
    write_rows(path, [*GOOD[:2], bad, *GOOD[2:]])
    config = stat_config([str(path)], str(tmp_path / "report"), quiet=False)
    assert stat.run(config) == 1
    err = capsys.readouterr().err
    assert f"{path}:3" in err
    if field:
        assert f"field '{field}'" in err
    assert not (tmp_path / "report" / "summaries.jsonl.gz").exists()

    # skipped and counted, the numbers those of the good lines
    good = tmp_path / "good" / "attributes" / "part-0.jsonl.gz"
    write_rows(good, GOOD)
    assert stat.run(stat_config([str(good)], str(tmp_path / "good-report"))) == 0
    assert stat.run(stat_config([str(path)], str(tmp_path / "report"), skip_bad_lines=True, quiet=False)) == 0
    err = capsys.readouterr().err
    assert re.search(r"bad lines skipped\s*│\s*1\s*│", err), err
    assert read_summaries(tmp_path / "report" / "summaries.jsonl.gz") == read_summaries(
        tmp_path / "good-report" / "summaries.jsonl.gz"
    )


@pytest.mark.parametrize("report", ["attributes/a", "attributes", ".", "attributes/a/../a"])
def test_report_may_not_land_among_the_inputs(tmp_path, monkeypatch, report):
    write_rows(tmp_path / "attributes" / "a" / "part-0.jsonl.gz", GOOD)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PathSafetyError):
        stat.run(stat_config(["attributes/a/*.jsonl.gz"], report))
    assert not list(tmp_path.rglob("summaries.jsonl.gz"))


def test_a_stopped_run_resumes_from_its_partials(tmp_path, capsys):
    files = [tmp_path / "attributes" / "a" / f"part-{i}.jsonl.gz" for i in range(3)]
    for path in files:
        write_rows(path, GOOD)
    write_rows(files[2], [*GOOD, "not json"])
    work = tmp_path / "work"
    config = stat_config(
        [str(tmp_path / "attributes/a/*.jsonl.gz")], str(tmp_path / "r"), work_dir={"output": str(work)}
    )
    assert stat.run(config) == 1
    assert len(list(work.glob("*/summaries/*.msgpack"))) == 2  # the two good files' partials were kept
    write_rows(files[2], GOOD)
    resumed = stat_config(
        [str(tmp_path / "attributes/a/*.jsonl.gz")], str(tmp_path / "r"), work_dir={"output": str(work)}, quiet=False
    )
    capsys.readouterr()
    assert stat.run(resumed) == 0
    # pass 1 ran only the file that had failed
    assert re.search(r"skipped \(already complete\)\s*│\s*2\s*│", capsys.readouterr().err)
    lines = {line["name"]: line for line in read_summaries(tmp_path / "r" / "summaries.jsonl.gz")}
    assert lines["k/score"]["total"] == 15 and lines["k/length"]["sum"] == 3 * sum(range(1, 6))
    assert not work.exists() or not list(work.iterdir())


def test_regex_keeps_matching_keys(corpus, tmp_path):
    assert stat.run(stat_config([str(corpus / PATTERN)], str(tmp_path / "r"), regex="word_count")) == 0
    names = {line["name"] for line in read_summaries(tmp_path / "r" / "summaries.jsonl.gz")}
    expected = {n for n in brute_force(corpus) if "word_count" in n.rsplit("/", 1)[0]}
    assert names == expected and len(names) == 4


def test_same_summaries_as_the_reference(corpus, tmp_path):
    theirs = tmp_path / "theirs"
    result = run_reference(["stat", "--attributes", str(corpus / PATTERN), "--report", str(theirs)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ours = tmp_path / "ours"
    assert stat.run(stat_config([str(corpus / PATTERN)], str(ours))) == 0
    ref = {line["name"]: line for line in read_summaries(theirs / "summaries.jsonl.gz")}
    mine = {line["name"]: line for line in read_summaries(ours / "summaries.jsonl.gz")}
    assert set(mine) == set(ref)
    truth = brute_force(corpus)
    moved_total = 0
    for name, theirs_line in ref.items():
        line = mine[name]
        assert line["total"] == theirs_line["total"], name
        assert line["sum"] == pytest.approx(theirs_line["sum"], rel=1e-6), name
        assert len(line["bins"]) == len(theirs_line["bins"]), name
        # the reference truncates values to 5 significant decimals of their binary mantissa (relative <= 2e-5):
        # its edges are ours so rounded, and its last edge is placed just above the last-but-one (ours: max)
        ours_edges, their_edges = np.asarray(line["bins"][:-1]), np.asarray(theirs_line["bins"][:-1])
        assert np.all(np.abs(ours_edges - their_edges) <= 4e-5 * np.abs(ours_edges)), name
        # ... so a value that close to an edge may fall one bin lower there: nothing else may differ
        v = np.asarray(truth[name])
        near = np.abs(v[:, None] - ours_edges[None, 1:]) <= 4e-5 * np.abs(v[:, None])
        moved = int(np.abs(np.asarray(line["counts"]) - np.asarray(theirs_line["counts"])).sum())
        assert moved <= 2 * int(near.any(axis=1).sum()), name
        moved_total += moved
    assert moved_total < 0.001 * sum(line["total"] for line in ref.values())


def test_without_report_the_lines_go_to_stdout_and_nothing_is_left(tmp_path):
    path = tmp_path / "attributes" / "a" / "part-0.jsonl.gz"
    write_rows(path, GOOD)
    (tmp_path / "tmp").mkdir()
    assert stat.run(stat_config([str(path)], str(tmp_path / "report"))) == 0
    result = run_cli("stat", "--attributes", str(path), "--quiet", env={"TMPDIR": str(tmp_path / "tmp")}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed == read_summaries(tmp_path / "report" / "summaries.jsonl.gz")
    assert not list((tmp_path / "tmp").iterdir())  # the temporary work directory was removed


def test_a_bad_regex_is_a_config_error(tmp_path):
    path = tmp_path / "attributes" / "a" / "part-0.jsonl.gz"
    write_rows(path, GOOD)
    result = run_cli("stat", "--attributes", str(path), "--regex", "gopher(", cwd=tmp_path)
    assert result.returncode != 0 and "'regex'" in result.stderr and "Traceback" not in result.stderr


def test_a_regex_matching_no_key_writes_an_empty_report(tmp_path):
    path = tmp_path / "attributes" / "a" / "part-0.jsonl.gz"
    write_rows(path, GOOD)
    assert stat.run(stat_config([str(path)], str(tmp_path / "r"), regex="^nothing$", quiet=False)) == 0
    assert read_summaries(tmp_path / "r" / "summaries.jsonl.gz") == []


def test_run_summary_validates_and_counts_the_attribute_rows(corpus, tmp_path):
    from dolma.executors.summary import file_name, read_run_summary

    report = tmp_path / "report"
    assert stat.run(stat_config([str(corpus / PATTERN)], str(report))) == 0
    run = read_run_summary(str(report / file_name("stat")))  # validates against the schema
    files = sorted(corpus.glob(PATTERN))
    assert run.command == "stat" and run.ok and run.degraded == []
    assert run.units.total == run.units.processed == len(files)
    assert run.totals.documents_in == sum(len(read_jsonl(p)) for p in files)
    assert run.totals.bytes_out == len(gzip.decompress((report / "summaries.jsonl.gz").read_bytes()))
    assert {src.name for src in run.sources} == {str(p) for p in files}
