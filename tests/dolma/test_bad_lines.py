"""One rule for bad documents lines in every reader, and attributes that mirror the good lines.

A shared table of lines runs through the Python reader (dolma.documents: tag, tokens' checks), the mixer's
reader and the Rust reader (through the dedupe binding, both key modes): all accept and reject the same lines,
with the same field and the same reason in our own words. Then the pipeline: `tag --skip_bad_lines` and
`dedupe --skip_bad_lines` write rows for the good lines only, and `mix --skip_bad_lines` reads documents and
those attributes in lockstep and counts the bad lines in its summary.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dolma._rust import BloomFilter, Deduper
from dolma.config import build
from dolma.dedupe.config import DedupeSection
from dolma.dedupe.plan import _rust_config
from dolma.documents import decode_document
from dolma.errors import BadInputError, DedupeInputError
from mixers.mix_config import Stream
from mixers.mix_job import StreamJob
from tests.conftest import read_jsonl, run_cli, summary_rows, write_jsonl_gz

SURROGATE = "invalid string (a lone UTF-16 surrogate escape, not a Unicode character)"
SYNTAX = re.compile(r"invalid JSON \(error at character \d+ of \d+\)")

# (line, None for a good line or (reason, field); reason "SYNTAX" matches any syntax-error position)
CASES: list[tuple[bytes, tuple[str, str | None] | None]] = [
    (b'{"id":"a","text":"x"}', None),
    (b'{"id":"a","text":"x","source":"s","added":null,"version":"v","metadata":{"url":"u"}}', None),
    (b'  {"id":"a","text":"x\\ud83d\\ude00 \\u00e9\\n"}  ', None),
    (b'{"id":"a","id":"b","text":"x","n":1e999,"deep":[{"k":[1,2,{"x":null}]}]}', None),
    (b'{"\\u0069d":"a","text":"x","note":"\\\\ud800 is escaped text"}', None),
    ('{"id":"é","text":"日本語"}'.encode(), None),
    (b'{"text":"x"}', ("missing required field", "id")),
    (b'{"id":"a"}', ("missing required field", "text")),
    (b'{"id":5,"text":"x"}', ("expected a string, got a number", "id")),
    (b'{"id":null,"text":"x"}', ("expected a string, got null", "id")),
    (b'{"id":"a","text":["x"]}', ("expected a string, got an array", "text")),
    (b'{"id":"a","text":"x","source":7}', ("expected a string, got a number", "source")),
    (b'{"id":"a","text":"x","source":null}', ("expected a string, got null", "source")),
    (b'{"id":"a","text":"x","added":true}', ("expected a string or null, got a boolean", "added")),
    (b'{"id":"a","text":"x","version":1.5}', ("expected a string or null, got a number", "version")),
    (b'{"id":"a","text":"x","metadata":"m"}', ("expected an object or null, got a string", "metadata")),
    (b'{"id":"a","id":7,"text":"x"}', ("expected a string, got a number", "id")),
    (b'{"id":"\\ud800","text":"x"}', (SURROGATE, "id")),
    (b'{"text":"ok \\udc00","id":"a"}', (SURROGATE, "text")),
    (b'{"id":"a","text":"x","extra":"\\ud83d\\u0041"}', (SURROGATE, "extra")),
    (b'{"id":"a","text":"x","metadata":{"k":["\\udfff"]}}', (SURROGATE, "metadata")),
    (b'{"id":"a","text":"x","\\ud800key":1}', (SURROGATE, "\\ud800key")),
    (b'{"id":"a","text":"\xff"}', ("invalid UTF-8 (byte 0xff at offset 18)", None)),
    (b'{"id":"a","text":"caf\xc3"}', ("invalid UTF-8 (byte 0xc3 at offset 21)", None)),
    (b"[1,2]", ("expected a JSON object, got an array", None)),
    (b'"just a string"', ("expected a JSON object, got a string", None)),
    (b"42", ("expected a JSON object, got a number", None)),
    (b'{"id":"a","text":NaN}', ("invalid JSON (NaN is not a JSON value)", None)),
    (b'{"id":"a","text":"x","n":-Infinity}', ("invalid JSON (-Infinity is not a JSON value)", None)),
    (b'{"id":"a","text":"x",}', ("SYNTAX", None)),
    (b'{"id":"a","text":"x"', ("SYNTAX", None)),
    (b'{"id":"a","text":"x"} trailing', ("SYNTAX", None)),
    (b"{'id':'a','text':'x'}", ("SYNTAX", None)),
    (b'{"id":"a","text":"tab\there"}', ("SYNTAX", None)),
    (b'{"id":"a","text":"x\\q"}', ("SYNTAX", None)),
]
IDS = [f"{i}:{line[:40]!r}" for i, (line, _) in enumerate(CASES)]


def _python(line: bytes) -> tuple[str, str | None] | None:
    try:
        decode_document(line, "f.jsonl", 1)
    except BadInputError as exc:
        return exc.reason, exc.field
    return None


def _mixer(tmp_path: Path, line: bytes) -> tuple[str, str | None] | None:
    path = tmp_path / "documents" / "m.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(line + b"\n")
    stream = build(Stream, overrides={"name": "s", "documents": [str(path)], "output": {"path": str(tmp_path)}})
    try:
        rows = list(StreamJob(stream, staging=str(tmp_path), rate=None)._rows(str(path)))
    except BadInputError as exc:
        return exc.reason, exc.field
    assert len(rows) == 1 and rows[0][1] is not None
    return None


_CONFIGS = {
    "paragraphs": {"name": "dd", "paragraphs": {"attribute_name": "dup"}},
    "documents key": {"name": "dd", "documents": {"attribute_name": "dup", "key": "$.id"}},
}


def _rust(tmp_path: Path, line: bytes, mode: str) -> tuple[str, str | None] | None:
    path = tmp_path / "documents" / "r.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(line + b"\n")
    deduper = Deduper(_rust_config(build(DedupeSection, overrides=_CONFIGS[mode])))
    try:
        deduper.run(BloomFilter(1 << 12, 2), [str(path)], [str(tmp_path / "out.jsonl")])
    except DedupeInputError as exc:
        return exc.reason, exc.field
    return None


def _matches(got: tuple[str, str | None] | None, want: tuple[str, str | None] | None) -> bool:
    if want is None or got is None:
        return got == want
    if want[0] == "SYNTAX":
        return bool(SYNTAX.fullmatch(got[0])) and got[1] is None
    return got == want


@pytest.mark.parametrize(("line", "want"), CASES, ids=IDS)
def test_every_reader_accepts_and_rejects_the_same_lines_for_the_same_reason(tmp_path, line, want):
    results = {
        "python": _python(line),
        "mixer": _mixer(tmp_path, line),
        "rust paragraphs": _rust(tmp_path, line, "paragraphs"),
        "rust documents key": _rust(tmp_path, line, "documents key"),
    }
    for reader, got in results.items():
        assert _matches(got, want), f"{reader}: {got!r}, want {want!r}"
    if want is not None and want[0] == "SYNTAX":
        # Parsers stop at slightly different characters; the wording and the line length agree.
        lengths = {re.sub(r".* of (\d+)\)", r"\1", got[0]) for got in results.values() if got}
        assert len(lengths) == 1, results


# ----------------------------------------------------------------------------------------------------------
# tag -> dedupe -> mix with --skip_bad_lines
# ----------------------------------------------------------------------------------------------------------

BAD_LINES = [
    '{"id":"bad-text","text":5,"source":"s"}',
    '{"id":"bad-source","text":"fine","source":7}',
    '{"id":"\\ud800","text":"lone surrogate id","source":"s"}',
    '{"id":"bad-meta","text":"x","source":"s","metadata":"not an object"}',
]


def _corpus_with_bad_lines(root: Path) -> list[str]:
    """A documents file with a bad line of each kind among good ones; returns the good ids in order."""
    good = [{"id": f"b{i}", "text": f"paragraph {i % 3}\nline {i}", "source": "s"} for i in range(8)]
    lines = [json.dumps(row) for row in good]
    for offset, bad in enumerate(BAD_LINES):
        lines.insert(2 * offset + 1, bad)
    path = root / "documents" / "part.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    import gzip

    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return [row["id"] for row in good]


def test_skip_bad_lines_through_tag_dedupe_and_mix(tmp_path):
    good_ids = _corpus_with_bad_lines(tmp_path)
    docs = str(tmp_path / "documents" / "*.gz")
    tag = run_cli("tag", "--documents", docs, "--taggers", "char_length_v1", "--skip_bad_lines")
    assert tag.returncode == 0, tag.stderr
    assert re.search(r"bad lines skipped\s*│\s*4 │", tag.stderr), tag.stderr
    tagged = read_jsonl(tmp_path / "attributes" / "char_length_v1" / "part.jsonl.gz")
    assert [row["id"] for row in tagged] == good_ids

    dedupe = run_cli(
        "dedupe", "--documents", docs, "--dedupe.name", "dd", "--dedupe.paragraphs.attribute_name", "dup",
        "--bloom_filter.file", str(tmp_path / "f.bin"), "--bloom_filter.estimated_doc_count", "1000",
        "--bloom_filter.desired_false_positive_rate", "1e-4", "--skip_bad_lines",
    )  # fmt: skip
    assert dedupe.returncode == 0, dedupe.stderr
    assert summary_rows(dedupe.stderr)["bad lines skipped"] == "4", dedupe.stderr  # the shared table
    deduped = read_jsonl(tmp_path / "attributes" / "dd" / "part.jsonl.gz")
    assert [row["id"] for row in deduped] == good_ids

    config = tmp_path / "mix.yaml"
    config.write_text(
        json.dumps(
            {
                "streams": [
                    {
                        "name": "m",
                        "documents": [docs],
                        "attributes": ["char_length_v1", "dd"],
                        "output": {"path": str(tmp_path / "out")},
                    }
                ],
                "skip_bad_lines": True,
                "report": str(tmp_path / "report.json"),
            }
        )
    )
    mix = run_cli("-c", str(config), "mix")
    assert mix.returncode == 0, mix.stderr
    assert re.search(r"bad lines skipped\s*│\s*4 │", mix.stderr), mix.stderr
    assert json.loads((tmp_path / "report.json").read_text())[0]["dropped"]["bad_lines"] == 4
    mixed = read_jsonl(next((tmp_path / "out").glob("m-*.jsonl.gz")))
    assert [row["id"] for row in mixed] == good_ids
    # Both attribute sets were read in lockstep with the good lines: every row has its own values.
    for row, tagged_row, deduped_row in zip(mixed, tagged, deduped):
        assert row["attributes"] == {**tagged_row["attributes"], **deduped_row["attributes"]}
    assert sum(bool(row["attributes"].get("dup")) for row in mixed) == 5  # "paragraph 0/1/2" seen before


def test_a_missing_dedupe_key_is_not_a_skippable_bad_line(tmp_path):
    """The line is a good document (tag writes its row), so skipping it would break the mirror: an error."""
    rows = [{"id": "a", "text": "x", "source": "s", "metadata": {"url": "u"}}, {"id": "b", "text": "y", "source": "s"}]
    write_jsonl_gz(tmp_path / "documents" / "m.jsonl.gz", rows)
    result = run_cli(
        "dedupe", "--documents", str(tmp_path / "documents" / "*.gz"), "--dedupe.name", "dd",
        "--dedupe.documents.attribute_name", "dup", "--dedupe.documents.key", "$.metadata.url",
        "--bloom_filter.file", str(tmp_path / "f.bin"), "--bloom_filter.estimated_doc_count", "100",
        "--bloom_filter.desired_false_positive_rate", "1e-3", "--skip_bad_lines",
    )  # fmt: skip
    assert result.returncode != 0
    assert "m.jsonl.gz:2" in result.stderr and "metadata.url" in result.stderr and "must be present" in result.stderr
