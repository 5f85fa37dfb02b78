"""One document reader (dolma.documents.read_records, with_attributes) and one bad-line policy for every command."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from dolma.documents import ReadStats, read_documents, read_records, with_attributes
from dolma.errors import BadInputError
from mixers.mix_job import _decode_document
from mixers.tokens_read import _doc_decoder, read_source
from tests.conftest import write_jsonl_gz

REPO = Path(__file__).resolve().parents[2]
BAD = b'{"id": 5, "text": "x"}'


def write_lines(path: Path, lines: list[bytes]) -> str:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


def test_skipped_lines_are_counted_reported_and_yielded_as_none(tmp_path, caplog):
    path = write_lines(tmp_path / "d.jsonl", [b'{"id":"a","text":"x"}', b"", BAD, b'{"id":"b","text":"y"}'])
    stats = ReadStats()
    with caplog.at_level(logging.WARNING, logger="dolma"):
        rows = list(read_records(path, _decode_document, skip_bad_lines=True, stats=stats))
    assert [(n, r is None) for n, r, _ in rows] == [(1, False), (3, True), (4, False)]
    assert (stats.lines, stats.documents, stats.bad_lines) == (4, 2, 1)
    assert [r.getMessage() for r in caplog.records] == [
        f"skipping {path}:3: field 'id': expected a string, got a number"
    ]


@pytest.mark.parametrize("skip", [False, True])
def test_tokens_and_tag_readers_follow_the_same_policy(tmp_path, caplog, skip):
    path = write_lines(tmp_path / "d.jsonl", [b'{"id":"a","text":"x"}', b'{"id": "b", "text": 5}'])
    decoder = _doc_decoder("text", "id")
    readers = {
        "tag": lambda stats: [doc.id for _, doc in read_documents(path, skip, stats)],
        "tokens": lambda stats: [d.id for d in read_source(path, decoder, ("text", "id"), skip, stats)],
    }
    for name, read in readers.items():
        stats = ReadStats()
        caplog.clear()
        if not skip:
            with pytest.raises(BadInputError) as err:
                read(stats)
            assert (err.value.line, err.value.field) == (2, "text"), name
            continue
        with caplog.at_level(logging.WARNING, logger="dolma"):
            ids = read(stats)
        assert (ids, stats.bad_lines) == (["a"], 1), name
        assert any(f"{path}:2" in r.getMessage() for r in caplog.records), name


def test_attributes_mirror_the_good_lines(tmp_path):
    docs = write_lines(tmp_path / "d.jsonl", [b'{"id":"a","text":"x"}', BAD, b'{"id":"c","text":"z"}'])
    attrs = write_jsonl_gz(tmp_path / "a.jsonl.gz", [{"id": "a", "attributes": {"k": [[0, 1, 1]]}}, {"id": "c"}])
    records = read_records(docs, _decode_document, skip_bad_lines=True)
    given: dict[str, list] = {}
    rows = list(
        with_attributes(records, docs, [str(attrs)], lambda d: d["id"], lambda d, r: given.update({d["id"]: r}))
    )
    assert [(n, d and d["id"]) for n, d, _ in rows] == [(1, "a"), (2, None), (3, "c")]
    assert given == {"a": [{"k": [[0, 1, 1]]}], "c": []}


@pytest.mark.parametrize(
    ("attribute_rows", "reason"),
    [
        ([{"id": "a", "attributes": {}}], "has no attribute line"),
        ([{"id": "a", "attributes": {}}, {"id": "x", "attributes": {}}], "does not match id 'x'"),
        ([{"id": "a", "attributes": {}}, {"id": "b", "attributes": {}}, {"id": "c"}], "has more lines"),
    ],
)
def test_attribute_files_out_of_step_are_errors(tmp_path, attribute_rows, reason):
    docs = write_lines(tmp_path / "d.jsonl", [b'{"id":"a","text":"x"}', b'{"id":"b","text":"y"}'])
    attrs = write_jsonl_gz(tmp_path / "a.jsonl.gz", attribute_rows)
    records = read_records(docs, _decode_document)
    with pytest.raises(BadInputError, match=reason):
        list(with_attributes(records, docs, [str(attrs)], lambda d: d["id"], lambda d, r: None))


def test_no_reader_of_its_own_outside_dolma_documents():
    # the bad-line policy (explain_bad_line -> BadInputError or skip-and-count) is applied in one place
    users = []
    for pkg in ("dolma", "mixers", "taggers"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            if path == REPO / "dolma" / "documents.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Name) and node.id == "explain_bad_line":
                    users.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert users == []
