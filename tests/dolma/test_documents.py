"""Document decoding: every bad-input case is reported with file, line and field, or skipped and counted."""

from __future__ import annotations

import pytest

from dolma import atomic
from dolma.documents import (
    ReadStats,
    attribute_key,
    attributes_path,
    destination_path,
    read_documents,
    sanitize_key,
)
from dolma.errors import BadInputError, PathSafetyError
from dolma.paths import check_outputs

GOOD = b'{"id": "a", "text": "hello", "source": "s", "extra": {"kept": 1}}'

# The reasons are this project's own words (never a parser's message, which changes between releases).
BAD_LINES = [
    (b'{"id": "a", "text": "unterminated', None, "invalid JSON (error at character 21 of 33)"),
    (b'{"text": "no id"}', "id", "missing required field"),
    (b'{"id": "x"}', "text", "missing required field"),
    (b'{"id": 7, "text": "x"}', "id", "expected a string, got a number"),
    (b'{"id": "x", "text": ["a"]}', "text", "expected a string, got an array"),
    (b'{"id": "x", "text": "bad \xff\xfe utf8"}', None, "invalid UTF-8 (byte 0xff at offset 25)"),
    (b'["not", "an", "object"]', None, "expected a JSON object, got an array"),
    (b'{"id": "\\ud800", "text": "x"}', "id", "lone UTF-16 surrogate"),
    (b'{"id": "x", "text": "x", "metadata": {"k": ["\\udc00"]}}', "metadata", "lone UTF-16 surrogate"),
    (b'{"id": "x", "text": "x", "score": NaN}', None, "invalid JSON (NaN is not a JSON value)"),
    (b'{"id": "x", "text": "x", "metadata": 3}', "metadata", "expected an object or null, got a number"),
    (b'{"id": "x", "text": true}', "text", "expected a string, got a boolean"),
]


@pytest.mark.parametrize("bad, field, reason", BAD_LINES)
def test_bad_line_fails_with_file_line_field(tmp_path, bad, field, reason):
    path = str(tmp_path / "documents" / "f.jsonl")
    atomic.write_bytes(path, GOOD + b"\n" + bad + b"\n" + GOOD + b"\n")
    with pytest.raises(BadInputError) as info:
        list(read_documents(path))
    err = info.value
    assert err.path == path and err.line == 2
    assert err.field == field
    assert reason in str(err)
    assert str(err).startswith(f"{path}:2: ")


@pytest.mark.parametrize("bad, field, reason", BAD_LINES)
def test_bad_line_skipped_and_counted(tmp_path, bad, field, reason):
    path = str(tmp_path / "f.jsonl.gz")
    atomic.write_bytes(path, GOOD + b"\n" + bad + b"\n" + GOOD + b"\n")
    stats = ReadStats()
    docs = list(read_documents(path, skip_bad_lines=True, stats=stats))
    assert [lineno for lineno, _ in docs] == [1, 3]
    assert stats.bad_lines == 1 and stats.documents == 2 and stats.lines == 3


def test_blank_lines_are_not_documents(tmp_path):
    path = str(tmp_path / "f.jsonl")
    atomic.write_bytes(path, GOOD + b"\n\n" + GOOD)
    stats = ReadStats()
    assert len(list(read_documents(path, stats=stats))) == 2
    assert stats.bad_lines == 0


def test_optional_fields_decode():
    path_docs = list(
        read_documents_from(b'{"id": "a", "text": "t", "metadata": {"url": "http://x"}, "added": "2024"}')
    )
    doc = path_docs[0][1]
    assert doc.source == "" and doc.metadata == {"url": "http://x"} and doc.added == "2024"


def read_documents_from(data: bytes):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/x.jsonl"
        atomic.write_bytes(path, data)
        yield from read_documents(path)


@pytest.mark.parametrize(
    "name, key",
    [("char_length_v1", "char_length_v1"), ("my-exp.v2", "my_exp_v2"), ("été", "_t_"), ("a b/c", "a_b_c")],
)
def test_sanitize_key(name, key):
    assert sanitize_key(name) == key


def test_attribute_key():
    assert attribute_key("my-exp", "ft_lang_id_en_doc_v2", "en") == "my_exp__ft_lang_id_en_doc_v2__en"


@pytest.mark.parametrize(
    "doc, name, expected",
    [
        ("/r/documents/a/b.jsonl.gz", "x", "/r/attributes/x/a/b.jsonl.gz"),
        ("s3://b/r/documents/b.jsonl.gz", "dedupe", "s3://b/r/attributes/dedupe/b.jsonl.gz"),
        ("/documents/r/documents/z.gz", "y", "/documents/r/attributes/y/z.gz"),
    ],
)
def test_attributes_path(doc, name, expected):
    assert attributes_path(doc, name) == expected


def test_attributes_path_needs_documents_component():
    with pytest.raises(PathSafetyError, match="documents/"):
        attributes_path("/r/data/b.jsonl.gz", "x")


def test_destination_path_keeps_sub_path():
    assert destination_path("/r/documents/a/b.gz", "/r/documents/**/*.gz", "/out") == "/out/a/b.gz"
    assert destination_path("/r/documents/b.gz", "/r/documents/b.gz", "/out") == "/out/b.gz"


def test_refuses_writing_into_documents_or_over_inputs():
    # the check moved to dolma.paths (one place for every command); tests/dolma/test_paths.py covers the rest
    inputs = ["/r/documents/a.gz"]
    with pytest.raises(PathSafetyError, match="inside the documents tree"):
        check_outputs("test", inputs, ["/r/documents/sub/a.gz"])
    with pytest.raises(PathSafetyError, match="one of the input files"):
        check_outputs("test", ["/data/a.gz"], ["/data/a.gz"])
    check_outputs("test", inputs, ["/r/attributes/x/a.gz"])
