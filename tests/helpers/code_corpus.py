"""Documents for the code taggers' reference tests (tests/compat/test_reference_code_taggers.py,
test_reference_starcoder_v1.py): a document with `metadata`, the metadata-less and half-filled cases both
corpora hold, and the scores a tagged corpus holds per attribute name."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import read_jsonl


def code_doc(doc_id: str, text: str, source: str, **metadata) -> dict:
    """A document whose `metadata` is the keyword arguments (`ext`, `max_stars_count`)."""
    return {"id": doc_id, "text": text, "source": source, "metadata": metadata}


def missing_metadata_docs(text: str) -> list[dict]:
    """`text` without metadata, with null or empty metadata, with null fields and with stars but no extension
    (source `missing`)."""
    return [
        {"id": "no-metadata", "text": text, "source": "missing"},
        {"id": "null-metadata", "text": text, "source": "missing", "metadata": None},
        code_doc("empty-metadata", text, "missing"),
        code_doc("null-fields", text, "missing", ext=None, max_stars_count=None),
        code_doc("stars-only", text, "missing", max_stars_count=41),
    ]


def scores_by_name(root: Path, tagger: str) -> dict[str, set[float]]:
    """Every score `tagger` wrote under `root`, by attribute name (the part after the last `__`): each attribute
    holds one document-level span."""
    values: dict[str, set[float]] = {}
    for path in (root / "attributes" / tagger).rglob("*.jsonl.gz"):
        for row in read_jsonl(path):
            for key, spans in row["attributes"].items():
                values.setdefault(key.rsplit("__", 1)[1], set()).add(spans[0][2])
    return values
