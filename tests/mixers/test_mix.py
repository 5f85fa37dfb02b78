"""`dolma mix`: rules, sampling, shards, alignment errors, compression and S3, run in-process and by the CLI."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import msgspec
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from dolma.config import build
from dolma.errors import BadInputError, ConfigError, DolmaError
from mixers.jsonpath import JsonPath
from mixers.jsonpath_eval import RuleError
from mixers.mix import run_mix
from mixers.mix_config import MixConfig, Rule
from mixers.typed_rules import compile_typed
from tests.conftest import outputs_in, read_jsonl, run_cli, write_jsonl_gz

# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------


def make_corpus(root: Path, files: dict[str, list[dict]], attrs: dict[str, dict[str, list[dict]]] | None = None):
    for rel, docs in files.items():
        write_jsonl_gz(root / "documents" / rel, docs)
    for name, per_file in (attrs or {}).items():
        for rel, rows in per_file.items():
            write_jsonl_gz(root / "attributes" / name / rel, rows)


def mix(tmp: Path, stream: dict, **top) -> MixConfig:
    stream = {"name": "out", "output": {"path": str(tmp / "out")}, **stream}
    config = build(MixConfig, overrides={"streams": [stream], "quiet": True, **top})
    assert run_mix(config) == 0
    return config


def output_rows(directory: Path, name: str = "out") -> list[dict]:
    rows = []
    for path in sorted(directory.glob(f"{name}-*.jsonl*")):
        rows.extend(read_jsonl(path))
    return rows


def docs_with_scores(n: int, prefix: str = "d") -> tuple[list[dict], list[dict]]:
    docs = [{"id": f"{prefix}{i}", "text": f"text of document {i} " * (1 + i % 4), "source": "t"} for i in range(n)]
    rows = [{"id": d["id"], "attributes": {"s__t__score": [[0, 4, (i % 10) / 10]]}} for i, d in enumerate(docs)]
    return docs, rows


# ----------------------------------------------------------------------------------------------------------
# JSONPath and typed rules
# ----------------------------------------------------------------------------------------------------------

DOC = {
    "id": "x",
    "text": "hello",
    "attributes": {"a__b__c": [[0, 5, 0.5]], "a__b__e": [], "a__b__n": [[0, 1, 3], [1, 2, 9]]},
    "metadata": {"lang": "en", "n": 3, "flag": False},
}


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("$.attributes[?(@.a__b__c[0][2] >= 0.5)]", True),
        ("$.attributes[?(@.a__b__c[0][2] > 0.5)]", False),
        ("$.attributes[?(@.a__b__c[0][2] <= 0.5)]", True),
        ("$.attributes[?(@.a__b__c[0][2] < 0.5)]", False),
        ("$@.attributes[?(@.a__b__e && @.a__b__e[0] && @.a__b__e[0][2] > 0.1)]", False),
        ("$@.attributes[?(@.a__b__c && @.a__b__c[0] && @.a__b__c[0][2] > 0.1)]", True),
        ("$.attributes[?(@.a__b__n[-1][2] == 9)]", True),
        ('$.metadata[?(@.lang == "en")]', True),
        ("$.metadata[?(@.lang == 'de' || @.n >= 3)]", True),
        ("$.metadata[?(@.lang != 'en')]", False),
        ("$.metadata[?(!(@.lang == 'en'))]", False),
        ("$.metadata[?(@.n == '3')]", False),
        ("$.metadata[?(@.lang > 5)]", False),
        ("$.metadata[?(@.missing)]", False),
        ("$.metadata[?(@.flag == false)]", True),
        ("$.attributes.a__b__n[?(@[2] > 5)]", True),
        ("$.attributes.a__b__n[?(@[2] > 10)]", False),
        ("$.attributes['a__b__c'][0][1]", True),
        ("$.attributes.nope", False),
        ("$.attributes.*", True),
    ],
)
def test_jsonpath_rules(rule, expected):
    assert JsonPath(rule).matches(DOC) is expected


def test_recursive_descent_is_linear_and_not_recursive():
    """`..` walks each container once per step, iteratively: no RecursionError on deep documents, and `$..a..a`
    on a chain of n nested objects selects each of them once (re-walking every start would select ~n**2 / 2)."""
    n = 5000
    doc: dict = {"leaf": 1}
    for _ in range(n):
        doc = {"a": doc}
    assert len(JsonPath("$..a").select(doc)) == n
    assert len(JsonPath("$..a..a").select(doc)) == n - 1
    assert JsonPath("$..leaf").matches(doc) and not JsonPath("$..missing").matches(doc)


@pytest.mark.parametrize(
    "rule", ["attributes.x", "$.attributes[?(@.x >= )]", "$.a[?(@.x > 1]", "$.a[", "$.a b", "$.a[?(@.x = 1)]"]
)
def test_jsonpath_syntax_errors_name_the_rule(rule):
    with pytest.raises(RuleError, match="JSONPath rule"):
        JsonPath(rule)


@pytest.mark.parametrize(
    "rule, expected",
    [
        ({"attribute": "a__b__c", "op": ">=", "value": 0.5}, True),
        ({"attribute": "a__b__n", "op": ">", "value": 8, "reduce": "max"}, True),
        ({"attribute": "a__b__n", "op": "==", "value": 12, "reduce": "sum"}, True),
        ({"attribute": "a__b__n", "op": "==", "value": 2, "reduce": "count"}, True),
        ({"attribute": "a__b__e", "op": ">=", "value": 0}, False),
        ({"attribute": "zz", "op": "missing"}, True),
        ({"field": "metadata.lang", "op": "in", "value": ["en", "de"]}, True),
        ({"field": "metadata.lang", "op": "not_in", "value": ["en"]}, False),
        (
            {
                "all": [
                    {"attribute": "a__b__c", "op": "<", "value": 1},
                    {"not": {"field": "metadata.n", "op": "<", "value": 3}},
                ]
            },
            True,
        ),
        (
            {
                "any": [
                    {"attribute": "a__b__c", "op": ">", "value": 1},
                    {"field": "metadata.n", "op": "==", "value": 4},
                ]
            },
            False,
        ),
    ],
)
def test_typed_rules(rule, expected):
    predicate, _keys = compile_typed(msgspec.convert(rule, Rule), "test")
    assert predicate(DOC) is expected


def test_typed_rule_needs_one_form():
    with pytest.raises(RuleError, match="exactly one"):
        compile_typed(msgspec.convert({"attribute": "a", "all": []}, Rule), "test")


# ----------------------------------------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------------------------------------


def test_typed_rules_end_to_end_match_python(tmp_path):
    docs, rows = docs_with_scores(200)
    make_corpus(tmp_path, {"f.jsonl.gz": docs}, {"s": {"f.jsonl.gz": rows}})
    rule = {
        "any": [{"attribute": "s__t__score", "op": ">=", "value": 0.7}, {"field": "id", "op": "in", "value": ["d1"]}]
    }
    mix(
        tmp_path,
        {
            "documents": [str(tmp_path / "documents" / "*.gz")],
            "attributes": ["s"],
            "filter": {"include": [rule], "exclude": [{"attribute": "s__t__score", "op": "==", "value": 0.9}]},
        },
    )
    expected = [
        d["id"] for d, r in zip(docs, rows) if (r["attributes"]["s__t__score"][0][2] in (0.7, 0.8)) or d["id"] == "d1"
    ]
    assert [r["id"] for r in output_rows(tmp_path / "out")] == expected


def test_sampling_rate_and_determinism(tmp_path):
    n = 10_000
    docs = [{"id": f"doc-{i}", "text": "x", "source": "t"} for i in range(n)]
    make_corpus(tmp_path, {"a.jsonl.gz": docs[:5000], "b.jsonl.gz": docs[5000:]})
    base = {"documents": [str(tmp_path / "documents" / "*.gz")], "sample_rate": 0.3, "seed": 7}
    mix(tmp_path, {**base, "output": {"path": str(tmp_path / "one")}})
    mix(tmp_path, {**base, "output": {"path": str(tmp_path / "two")}}, processes=2)
    mix(tmp_path, {**base, "seed": 8, "output": {"path": str(tmp_path / "other")}})
    one = [r["id"] for r in output_rows(tmp_path / "one")]
    sigma = math.sqrt(n * 0.3 * 0.7)
    assert abs(len(one) - 0.3 * n) <= 3 * sigma
    assert one == [r["id"] for r in output_rows(tmp_path / "two")]
    other = {r["id"] for r in output_rows(tmp_path / "other")}
    assert abs(len(other) - 0.3 * n) <= 3 * sigma
    # a different seed draws an independent sample: the overlap is about 0.3 * 0.3 * n, not the whole set
    overlap = len(other & set(one))
    assert abs(overlap - 0.09 * n) <= 3 * math.sqrt(n * 0.09 * 0.91)


def test_upsampling_repeats_documents(tmp_path):
    n = 2000
    docs = [{"id": f"u{i}", "text": "y", "source": "t"} for i in range(n)]
    make_corpus(tmp_path, {"a.jsonl.gz": docs})
    mix(tmp_path, {"documents": [str(tmp_path / "documents" / "*.gz")], "sample_rate": 2.5})
    counts: dict[str, int] = {}
    for row in output_rows(tmp_path / "out"):
        counts[row["id"]] = counts.get(row["id"], 0) + 1
    assert set(counts) == {d["id"] for d in docs}
    assert set(counts.values()) == {2, 3}
    assert abs(sum(counts.values()) - 2.5 * n) <= 3 * math.sqrt(n * 0.25)
    mix(
        tmp_path,
        {
            "documents": [str(tmp_path / "documents" / "*.gz")],
            "sample_rate": 2.0,
            "output": {"path": str(tmp_path / "x2")},
        },
    )
    assert len(output_rows(tmp_path / "x2")) == 2 * n


@pytest.mark.parametrize(
    "target",
    [
        # 2000 documents survive the filter: 100,000 text bytes, or 10,000 words
        {"target_bytes": 25_000},  # rate 0.25
        {"target_tokens": 2_500},  # rate 0.25
        {"target_tokens": 30_000},  # rate 3: every document three times
    ],
)
def test_target_size_computes_the_rate(tmp_path, target):
    docs = [{"id": f"t{i}", "text": "zzzzzzzzz " * 5, "source": "t"} for i in range(4000)]
    rows = [{"id": d["id"], "attributes": {"s__t__keep": [[0, 1, i % 2]]}} for i, d in enumerate(docs)]
    make_corpus(tmp_path, {"a.jsonl.gz": docs}, {"s": {"a.jsonl.gz": rows}})
    mix(
        tmp_path,
        {
            "documents": [str(tmp_path / "documents" / "*.gz")],
            "attributes": ["s"],
            "filter": {"include": ["$.attributes[?(@.s__t__keep[0][2] == 1)]"]},
            **target,
        },
        report=str(tmp_path / "report.json"),
    )
    written = output_rows(tmp_path / "out")
    rate = 0.25 if target != {"target_tokens": 30_000} else 3.0
    report = json.loads((tmp_path / "report.json").read_text())[0]
    assert report["sample_rate"] == pytest.approx(rate)
    assert report["documents_in"] == 4000
    assert report["dropped"]["include"] == 2000
    if rate < 1:
        assert abs(len(written) - 2000 * rate) <= 3 * math.sqrt(2000 * rate * (1 - rate))
        assert report["dropped"]["sampling"] == 2000 - len(written)
    else:
        assert len(written) == 6000


def test_shards_are_capped_numbered_and_independent_of_processes(tmp_path):
    files = {
        f"part-{k}.jsonl.gz": [{"id": f"{k}-{i}", "text": "w " * (i % 50), "source": "t"} for i in range(300)]
        for k in range(3)
    }
    make_corpus(tmp_path, files)
    cap = 4000
    outputs = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        mix(
            tmp_path,
            {
                "documents": [str(tmp_path / "documents" / "*.gz")],
                "output": {"path": str(out), "max_size_in_bytes": cap},
            },
            processes=processes,
        )
        outputs[processes] = {p.name: p.read_bytes() for p in outputs_in(out) if p.name != ".out.mix-shards.json"}
    names = list(outputs[1])
    assert names == [f"out-{i:04d}.jsonl.gz" for i in range(len(names))] and len(names) > 5
    assert outputs[1] == outputs[2]
    rows = []
    for data in outputs[1].values():
        text = gzip.decompress(data)
        assert len(text) <= cap
        rows.extend(json.loads(line) for line in text.splitlines())
    expected = [d["id"] for rel in sorted(files) for d in files[rel]]
    assert [r["id"] for r in rows] == expected
    assert rows[0]["metadata"]["provenance"] == "part-0.jsonl.gz:1"


def test_rerun_replaces_stale_shards_and_leaves_no_staging(tmp_path):
    docs = [{"id": f"r{i}", "text": "v " * 100, "source": "t"} for i in range(100)]
    make_corpus(tmp_path, {"a.jsonl.gz": docs})
    stream = {
        "documents": [str(tmp_path / "documents" / "*.gz")],
        "output": {"path": str(tmp_path / "out"), "max_size_in_bytes": 2000},
    }
    mix(tmp_path, stream)
    many = sorted(p.name for p in (tmp_path / "out").iterdir())
    stream["output"]["max_size_in_bytes"] = 100_000
    mix(tmp_path, stream)
    assert len(many) > 2
    # the shard record (which shards the stream owns: a rerun removes only those) sits beside the shards
    assert [p.name for p in outputs_in(tmp_path / "out")] == [".out.mix-shards.json", "out-0000.jsonl.gz"]
    assert [r["id"] for r in output_rows(tmp_path / "out")] == [d["id"] for d in docs]


def test_failed_file_fails_the_run_and_a_fixed_rerun_resumes(tmp_path):
    good = [{"id": f"g{i}", "text": "good", "source": "t"} for i in range(10)]
    make_corpus(tmp_path, {"a.jsonl.gz": good, "b.jsonl.gz": [*good[:2], {"id": "bad"}]})
    stream = {"documents": [str(tmp_path / "documents" / "*.gz")]}
    with pytest.raises(DolmaError, match="1 file"):
        mix(tmp_path, stream)
    assert not list((tmp_path / "out").glob("out-*"))
    staged = list((tmp_path / "out").rglob("manifest.json"))
    assert len(staged) == 1  # the good file's work is kept for the rerun
    make_corpus(tmp_path, {"b.jsonl.gz": good[:2]})
    mix(tmp_path, stream)
    assert [r["id"] for r in output_rows(tmp_path / "out")] == [d["id"] for d in good] + ["g0", "g1"]


@pytest.mark.parametrize(
    "attr_rows, message",
    [
        (
            [{"id": "d0", "attributes": {}}, {"id": "WRONG", "attributes": {}}, {"id": "d2", "attributes": {}}],
            "does not match id 'WRONG'",
        ),
        ([{"id": "d0", "attributes": {}}, {"id": "d1", "attributes": {}}], "ends early"),
        ([{"id": f"d{i}", "attributes": {}} for i in range(4)], "more lines than the documents file"),
    ],
)
def test_misaligned_attributes_are_errors_naming_both_files(tmp_path, attr_rows, message):
    docs = [{"id": f"d{i}", "text": "t", "source": "t"} for i in range(3)]
    make_corpus(tmp_path, {"f.jsonl.gz": docs}, {"s": {"f.jsonl.gz": attr_rows}})
    config = build(
        MixConfig,
        overrides={
            "streams": [
                {
                    "name": "out",
                    "documents": [str(tmp_path / "documents" / "*.gz")],
                    "attributes": ["s"],
                    "output": {"path": str(tmp_path / "out")},
                }
            ],
            "quiet": True,
        },
    )
    from mixers.mix_job import StreamJob

    job = StreamJob(config.streams[0], str(tmp_path / "stage"), None)
    with pytest.raises(BadInputError) as err:
        job.run_unit(_unit(tmp_path / "documents" / "f.jsonl.gz"), lambda d, b: None)
    text = str(err.value)
    assert message in text
    assert "documents/f.jsonl.gz" in text and "attributes/s/f.jsonl.gz" in text
    # through the CLI: a non-zero exit and no shards
    cfg = tmp_path / "mix.json"
    cfg.write_text(json.dumps(msgspec.to_builtins(config)))
    result = run_cli("-c", str(cfg), "mix", "--quiet")
    assert result.returncode != 0
    assert message in result.stderr
    assert not list((tmp_path / "out").glob("out-*"))


def _unit(path: Path):
    from dolma.executors.base import Unit

    return Unit(input=str(path), outputs=())


def test_missing_attribute_file_is_a_startup_error(tmp_path):
    docs, rows = docs_with_scores(5)
    make_corpus(tmp_path, {"f.jsonl.gz": docs, "g.jsonl.gz": docs}, {"s": {"f.jsonl.gz": rows}})
    with pytest.raises(ConfigError, match=r"missing attribute files:\n.*attributes/s/g.jsonl.gz"):
        mix(tmp_path, {"documents": [str(tmp_path / "documents" / "*.gz")], "attributes": ["s"]})


@pytest.mark.parametrize(
    "flt",
    [
        {"include": ["$.attributes[?(@.s__t__scor[0][2] >= 0.5)]"]},
        {"exclude": [".attributes.s__t__scor[0][2] >= 0.5"], "syntax": "jq"},
        {"include": [{"all": [{"attribute": "s__t__scor", "op": ">", "value": 1}]}]},
    ],
)
def test_unknown_attribute_is_a_startup_error(tmp_path, flt):
    docs, rows = docs_with_scores(20)
    make_corpus(tmp_path, {"f.jsonl.gz": docs}, {"s": {"f.jsonl.gz": rows}})
    stream = {"documents": [str(tmp_path / "documents" / "*.gz")], "attributes": ["s"], "filter": flt}
    with pytest.raises(ConfigError, match="'s__t__scor' \\(did you mean 's__t__score'\\?\\)"):
        mix(tmp_path, stream)
    assert not (tmp_path / "out").exists()
    mix(tmp_path, {**stream, "check_attributes": False})  # allowed on request: the rule simply never matches


def test_absent_attribute_without_a_close_match_is_a_warning_and_the_run_goes_on(tmp_path):
    """The reference's filter-by-spans fixture guards an attribute no file has (`@.dummy && ...`): not a typo."""
    docs, rows = docs_with_scores(20)
    make_corpus(tmp_path, {"f.jsonl.gz": docs}, {"s": {"f.jsonl.gz": rows}})
    flt = {
        "include": ["$.attributes[?(@.s__t__score[0][2] < 0.5)]"],
        "exclude": ["$.attributes[?(@.dummy && @.dummy[0] && @.dummy[0][2] > 0.5)]"],
    }
    stream = {"name": "out", "documents": [str(tmp_path / "documents" / "*.gz")], "attributes": ["s"], "filter": flt}
    stream["output"] = {"path": str(tmp_path / "out")}
    config = tmp_path / "mix.json"
    config.write_text(json.dumps({"streams": [stream], "quiet": True, "report": str(tmp_path / "report.json")}))
    result = run_cli("-c", str(config), "mix")
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "'dummy'" in result.stderr  # shown even with quiet
    (warning,) = json.loads((tmp_path / "report.json").read_text())[0]["warnings"]
    assert "'dummy'" in warning
    assert [r["id"] for r in output_rows(tmp_path / "out")] == [
        r["id"] for r in rows if r["attributes"]["s__t__score"][0][2] < 0.5
    ]


def test_bad_rules_fail_before_any_work(tmp_path):
    docs, rows = docs_with_scores(5)
    make_corpus(tmp_path, {"f.jsonl.gz": docs}, {"s": {"f.jsonl.gz": rows}})
    for flt in ({"include": ["$.attributes[?(@.x >= )]"]}, {"include": [".attributes | bogus("], "syntax": "jq"}):
        with pytest.raises(ConfigError):
            mix(tmp_path, {"documents": [str(tmp_path / "documents" / "*.gz")], "attributes": ["s"], "filter": flt})


def test_zstd_input_and_output(tmp_path):
    docs, rows = docs_with_scores(50)
    root = tmp_path / "documents"
    root.mkdir()
    (root / "f.jsonl.zst").write_bytes(
        zstandard.ZstdCompressor().compress("".join(json.dumps(d) + "\n" for d in docs).encode())
    )
    (tmp_path / "attributes" / "s").mkdir(parents=True)
    (tmp_path / "attributes" / "s" / "f.jsonl.zst").write_bytes(
        zstandard.ZstdCompressor().compress("".join(json.dumps(r) + "\n" for r in rows).encode())
    )
    mix(
        tmp_path,
        {
            "documents": [str(root / "*.zst")],
            "attributes": ["s"],
            "filter": {"include": ["$.attributes[?(@.s__t__score[0][2] >= 0.5)]"]},
            "compression": {"output": "zstd"},
        },
    )
    out = outputs_in(tmp_path / "out")
    assert [p.name for p in out] == [".out.mix-shards.json", "out-0000.jsonl.zst"]
    out = out[1:]
    rows_out = read_jsonl(out[0])
    assert [r["id"] for r in rows_out] == [
        d["id"] for d, r in zip(docs, rows) if r["attributes"]["s__t__score"][0][2] >= 0.5
    ]


@pytest.mark.s3
def test_s3_in_and_out(tmp_path, s3_server, s3_bucket):
    docs, rows = docs_with_scores(300)
    make_corpus(
        tmp_path,
        {"x/f.jsonl.gz": docs[:150], "x/g.jsonl.gz": docs[150:]},
        {"s": {"x/f.jsonl.gz": rows[:150], "x/g.jsonl.gz": rows[150:]}},
    )
    stream = {
        "attributes": ["s"],
        "filter": {"include": ["$.attributes[?(@.s__t__score[0][2] >= 0.3)]"]},
        "span_replacement": [{"span": "$.attributes.s__t__score", "min_score": 0.8, "replacement": "[{}]"}],
    }
    # local -> local (the expectation), local -> S3, S3 -> S3
    mix(
        tmp_path,
        {
            **stream,
            "documents": [str(tmp_path / "documents" / "**" / "*.gz")],
            "output": {"path": str(tmp_path / "local"), "max_size_in_bytes": 10_000},
        },
    )
    expected = output_rows(tmp_path / "local")
    assert len(expected) == 210 and sum(r["text"].startswith("[text]") for r in expected) == 60
    mix(
        tmp_path,
        {
            **stream,
            "documents": [str(tmp_path / "documents" / "**" / "*.gz")],
            "output": {"path": f"s3://{s3_bucket}/mixed", "max_size_in_bytes": 10_000},
        },
    )
    client = s3_server.client()
    for path in sorted((tmp_path / "documents").rglob("*.gz")) + sorted((tmp_path / "attributes").rglob("*.gz")):
        client.put_object(Bucket=s3_bucket, Key=f"corpus/{path.relative_to(tmp_path)}", Body=path.read_bytes())
    mix(
        tmp_path,
        {
            **stream,
            "documents": [f"s3://{s3_bucket}/corpus/documents/**/*.gz"],
            "output": {"path": f"s3://{s3_bucket}/again", "max_size_in_bytes": 10_000},
        },
    )
    local_names = [p.name for p in outputs_in(tmp_path / "local")]
    for prefix in ("mixed", "again"):
        keys = s3_server.keys(s3_bucket, prefix + "/")
        assert [k.split("/", 1)[1] for k in keys] == local_names  # no staging objects left behind
        rows_s3 = []
        for key in keys:
            if key.endswith(".mix-shards.json"):
                continue
            body = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
            rows_s3.extend(json.loads(line) for line in gzip.decompress(body).splitlines())
        assert rows_s3 == expected


# ----------------------------------------------------------------------------------------------------------
# CLI surface and span edits
# ----------------------------------------------------------------------------------------------------------


def test_cli_help_dryrun_and_config_errors(tmp_path):
    help_text = run_cli("mix", "--help").stdout
    for field in ("streams", "report", "shuffle"):
        assert f"--{field}" in help_text
    docs, rows = docs_with_scores(5)
    make_corpus(tmp_path, {"f.jsonl.gz": docs}, {"s": {"f.jsonl.gz": rows}})
    stream = {"name": "out", "documents": [str(tmp_path / "documents" / "*.gz")], "attributes": ["s"]}
    stream["output"] = {"path": str(tmp_path / "out")}
    stream["filter"] = {"include": [{"atribute": "s__t__score", "op": ">", "value": 0.5}]}
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(json.dumps({"streams": [stream]}))
    result = run_cli("-c", str(cfg), "mix")
    assert result.returncode == 2
    assert "atribute" in result.stderr and "did you mean 'attribute'" in result.stderr
    stream["filter"] = {"include": [{"attribute": "s__t__score", "op": ">", "value": 0.5}]}
    cfg.write_text(json.dumps({"streams": [stream]}))
    result = run_cli("-c", str(cfg), "mix", "--dryrun")
    assert result.returncode == 0, result.stderr
    assert "f.jsonl.gz" in result.stdout and not (tmp_path / "out").exists()


@given(
    text=st.text(min_size=0, max_size=40),
    spans=st.lists(st.tuples(st.integers(0, 45), st.integers(0, 45), st.floats(0, 1)), max_size=6),
)
def test_span_replacement_properties(text, spans):
    from mixers.mix_job import _replace_spans
    from mixers.rules import compile_selector

    select, _ = compile_selector("$.attributes.k", "jsonpath", "test")
    rows = [[s, e, score] for s, e, score in spans]
    # "{}" puts the original text back: nothing changes whatever the spans
    doc = {"text": text, "attributes": {"k": rows}}
    _replace_spans(doc, [select(doc)], [(None, None, "{}")], "f", 1)
    assert doc["text"] == text
    # deleting: the applied spans are disjoint and in bounds, so the text shrinks by their total length
    doc = {"text": text, "attributes": {"k": rows}}
    applied = _replace_spans(doc, [select(doc)], [(0.5, None, "")], "f", 1)
    kept, pos = [], 0
    # spans apply in start order (ties in their listed order); one overlapping an applied span is skipped
    for start, end in sorted(((s, e) for s, e, score in spans if score >= 0.5), key=lambda span: span[0]):
        end = min(end, len(text))
        if start >= pos and end >= start:
            kept.append((start, end))
            pos = end
    assert applied == len(kept)
    assert len(doc["text"]) == len(text) - sum(e - s for s, e in kept)


def test_skip_bad_lines_keeps_attributes_aligned(tmp_path):
    """Attribute files mirror the good lines (tag and dedupe write no row for a bad one): a skipped bad
    documents line consumes no attribute row."""
    docs, rows = docs_with_scores(6)
    bad = [*docs[:2], {"id": "no-text"}, *docs[3:]]
    make_corpus(
        tmp_path,
        {"f.jsonl.gz": bad},
        {"s": {"f.jsonl.gz": [*rows[:2], *rows[3:]]}},
    )
    stream = {
        "documents": [str(tmp_path / "documents" / "*.gz")],
        "attributes": ["s"],
        "filter": {"include": ["$.attributes[?(@.s__t__score[0][2] >= 0.0)]"]},
    }
    with pytest.raises(DolmaError, match="1 file"):
        mix(tmp_path, stream)
    mix(tmp_path, stream, skip_bad_lines=True, report=str(tmp_path / "report.json"))
    out = output_rows(tmp_path / "out")
    assert [r["id"] for r in out] == ["d0", "d1", "d3", "d4", "d5"]
    assert [r["attributes"]["s__t__score"] for r in out] == [
        rows[i]["attributes"]["s__t__score"] for i in (0, 1, 3, 4, 5)
    ]
    assert json.loads((tmp_path / "report.json").read_text())[0]["dropped"]["bad_lines"] == 1
