"""The `minhash` dedupe's mark pass writes attribute files from what the band-key files recorded when signing
(ids, text lengths, the documents file's size and stamp): it does not read the documents again, writes the bytes
the document-reading writer (`write_marks`, the Spark run's) writes, and refuses a documents file changed since."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dolma import _rust
from dolma import minhash as mh
from dolma.documents import AttributeRow
from dolma.errors import DolmaError
from dolma.minhash_attributes import attribute_row, write_marks
from tests.conftest import read_jsonl, run_cli, write_jsonl_gz
from tests.helpers.textgen import synthetic_docs

FILES = 3


def corpus(root: Path) -> list[Path]:
    """Synthetic documents with non-ASCII text (code points != UTF-8 bytes) and an edited copy of a third of them,
    over FILES files."""
    rng = random.Random(21)
    docs = synthetic_docs(90, seed=21)
    for doc in docs:
        doc["text"] = "Élan 😀 ünïcode: " + doc["text"]
    copies = []
    for doc in docs[::3]:
        words = doc["text"].split(" ")
        words[rng.randrange(len(words))] = "ß"
        copies.append({"id": "copy-" + doc["id"] + "-ü", "text": " ".join(words)})
    everything = docs + copies
    rng.shuffle(everything)
    return [write_jsonl_gz(root / "documents" / f"p{f}.jsonl.gz", everything[f::FILES]) for f in range(FILES)]


def dedupe(root: Path, *extra: str):
    return run_cli(
        "dedupe",
        "--documents", str(root / "documents" / "*.jsonl.gz"),
        "--dedupe.name", "nd",
        "--dedupe.minhash.attribute_name", "nd_dup",
        "--dedupe.minhash.threshold", "0.7",
        *extra,
    )  # fmt: skip


def attributes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "attributes" / "nd").glob("*.jsonl.gz"))}


def forget_marks(root: Path) -> None:
    """Removes the attribute files and the mark pass's completion records (band-key and result files stay)."""
    for path in (root / "attributes" / "nd").glob("*.jsonl.gz"):
        path.unlink()
    for path in (root / "minhash" / "nd" / "done").glob("*.json"):
        path.unlink()


def test_marks_are_the_document_reading_writers_bytes_without_reading_the_documents(tmp_path: Path) -> None:
    root = tmp_path / "run"
    files = corpus(root)
    result = dedupe(root)
    assert result.returncode == 0, result.stderr[-3000:]
    written = attributes(root)
    assert len(written) == FILES
    assert sum(gzip.decompress(data).count(b'"nd_dup"') for data in written.values()) >= 10

    # Golden: the writer that reads the documents (the Spark run's) on the same clusters writes the same bytes.
    for i, path in enumerate(files):
        _, records = mh.read_results(str(root / "minhash" / "nd" / "results" / f"{i:06d}.mhr"))
        members = {int(r["line"]): (int(r["ordinal"]), int(r["cluster"]), float(r["similarity"])) for r in records}
        golden = tmp_path / "golden" / path.name
        write_marks(str(path), str(golden), members, "nd_dup", "nd_dup__cluster", False)
        assert golden.read_bytes() == written[path.name]
    rows = read_jsonl(root / "attributes" / "nd" / files[0].name)
    docs = read_jsonl(files[0])
    assert [r["id"] for r in rows] == [d["id"] for d in docs] and any(r["attributes"] for r in rows)
    for doc, row in zip(docs, rows):
        assert all(span[1] == len(doc["text"]) for spans in row["attributes"].values() for span in spans)
    summary = json.loads((root / "attributes" / "nd" / ".dolma-run-summary.dedupe.json").read_text())
    totals = summary["totals"]
    assert totals["bytes_in"] == sum(len(gzip.decompress(p.read_bytes())) for p in files)  # as read, not stored
    assert totals["documents_in"] == totals["documents_out"] == sum(len(read_jsonl(p)) for p in files)

    # The documents' content replaced by zeros of the same size, mtime kept: the marks are written again, the same.
    originals = {}
    for path in files:
        st = path.stat()
        originals[path] = path.read_bytes()
        path.write_bytes(b"\0" * st.st_size)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    forget_marks(root)
    result = dedupe(root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert attributes(root) == written


def test_a_documents_file_changed_since_signing_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "run"
    files = corpus(root)
    assert dedupe(root).returncode == 0
    written = attributes(root)
    forget_marks(root)
    st = files[1].stat()
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # same bytes, touched
    result = dedupe(root)
    assert result.returncode != 0
    assert f"{files[1]}: changed since it was signed; rerun with --ignore_existing" in result.stderr
    assert files[1].name not in attributes(root)
    result = dedupe(root, "--ignore_existing")
    assert result.returncode == 0, result.stderr[-3000:]
    assert attributes(root) == written


def test_document_reading_writer_cuts_rows_in_slices_and_refuses_lines_without_a_document(
    tmp_path: Path, monkeypatch
) -> None:
    """`write_marks` (the Spark run's writer): its rows, made a slice of documents at a time, are the same bytes
    whatever the slice size (members in the first, a middle and the last slice); a member on a line that holds no
    document (the file changed since it was signed) fails the file and writes nothing."""
    import dolma.minhash_attributes as attrs

    docs = [{"id": f"d{i}", "text": "é" * i, "source": "s"} for i in range(10)]
    path = tmp_path / "a.jsonl.gz"
    write_jsonl_gz(path, docs)
    members = {1: (0, 0, 1.0), 4: (1, 0, 0.5), 10: (2, 0, 0.25)}  # lines are 1-based: documents 0, 3 and 9
    outputs = []
    for size in (1 << 15, 3, 1):
        monkeypatch.setattr(attrs, "_ROWS_PER_CALL", size)
        out = tmp_path / f"out-{size}.jsonl.gz"
        stats = write_marks(str(path), str(out), members, "nd_dup", "nd_dup__cluster", False)
        assert stats.counters == {"documents marked": 2} and stats.documents_in == 10
        outputs.append(out.read_bytes())
    assert outputs[1] == outputs[0] and outputs[2] == outputs[0]
    rows = [json.loads(line) for line in gzip.decompress(outputs[0]).splitlines()]
    assert [r["id"] for r in rows] == [d["id"] for d in docs]
    assert rows[0]["attributes"] == {"nd_dup__cluster": [[0, 0, 0]]}
    assert rows[3]["attributes"] == {"nd_dup": [[0, 3, 0.5]], "nd_dup__cluster": [[0, 3, 0]]}
    assert rows[9]["attributes"] == {"nd_dup": [[0, 9, 0.25]], "nd_dup__cluster": [[0, 9, 0]]}
    assert all(r["attributes"] == {} for i, r in enumerate(rows) if i not in (0, 3, 9))
    with pytest.raises(DolmaError, match="changed since it was signed"):
        write_marks(str(path), str(tmp_path / "bad.jsonl.gz"), {11: (0, 0, 1.0)}, "nd_dup", "c", False)
    assert not (tmp_path / "bad.jsonl.gz").exists()


def test_an_old_version_band_key_file_is_redone(tmp_path: Path) -> None:
    root = tmp_path / "run"
    corpus(root)
    assert dedupe(root).returncode == 0
    written = attributes(root)
    unit = root / "minhash" / "nd" / "keys" / "000001.mhk"
    good = unit.read_bytes()
    old = bytearray(good)
    old[8:12] = (_rust.MINHASH_UNIT_VERSION - 1).to_bytes(4, "little")
    unit.write_bytes(bytes(old))
    forget_marks(root)
    result = dedupe(root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert unit.read_bytes() == good
    assert attributes(root) == written


def test_band_keys_skipped_bad_lines_serve_only_a_run_that_skips_them(tmp_path: Path) -> None:
    path = tmp_path / "documents" / "a.jsonl.gz"
    path.parent.mkdir(parents=True)
    good = {"id": "a", "text": "alpha beta gamma delta epsilon zeta"}
    lines = [json.dumps(good), '{"id": "b", "text": 5}', json.dumps({**good, "id": "c"})]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    result = dedupe(tmp_path, "--skip_bad_lines")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["id"] for r in read_jsonl(tmp_path / "attributes" / "nd" / "a.jsonl.gz")] == ["a", "c"]
    forget_marks(tmp_path)
    result = dedupe(tmp_path)
    assert result.returncode != 0
    assert "a.jsonl.gz:2: field 'text'" in result.stderr


def test_band_key_file_records_lines_ids_text_lengths_and_the_files_stamp(tmp_path: Path) -> None:
    """Every good line's id and the length of its `text` in code points (also when another key is signed)."""
    path = tmp_path / "d.jsonl"
    rows = [
        json.dumps({"id": "é1", "text": "héllo 😀 wörld", "metadata": {"body": "the body"}}),
        '{"id": "bad", "text": 5}',
        "",
        json.dumps({"id": "2", "text": ""}),
        "{not json",
        json.dumps({"id": "\U0001d4313", "text": "a\u0301 b", "metadata": {"body": 7}}),
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    for key in [("text",), ("metadata", "body")]:
        out = tmp_path / f"{len(key)}.mhk"
        mh.sign_file(str(path), str(out), 0, mh.MinHashParams(), skip_bad_lines=True, key=key)
        header, lines, lengths, ids = mh.unit_documents(str(out))
        assert lines.tolist() == [1, 4, 6]
        assert ids == ["é1", "2", "\U0001d4313"]
        assert lengths.tolist() == [13, 0, 4]
        st = path.stat()
        assert (header["source_size"], header["source_stamp"]) == (st.st_size, st.st_mtime_ns)
        assert (header["documents"], header["bad_lines"], header["bytes_read"]) == (3, 2, st.st_size)


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.text(), max_size=8), given_rows=st.sets(st.integers(0, 7)))
@example(ids=['a"\\\x00\x1f\x7f\u2028é😀\n\t\b\f\r', ""], given_rows=set())
def test_rust_attribute_rows_are_msgspecs_rows(ids: list[str], given_rows: set[int]) -> None:
    """The rows of documents without attributes made in Rust are the bytes msgspec makes for the same rows (what
    `attribute_row` makes for the marked ones), and a given row is used as it is."""
    encoder = msgspec.json.Encoder()
    rows = {i: b"given %d\n" % i for i in given_rows if i < len(ids)}
    want = b"".join(
        rows.get(i, encoder.encode(AttributeRow(id=doc_id, attributes={})) + b"\n") for i, doc_id in enumerate(ids)
    )
    assert all(
        attribute_row(doc_id, {}) == encoder.encode(AttributeRow(id=doc_id, attributes={})) + b"\n" for doc_id in ids
    )
    assert _rust.attribute_rows(ids, rows) == want
