"""Differential test: `dolma dedupe` here vs the reference toolkit on the sample corpus plus edge cases.

Same files, ids, keys, span starts and scores (n-gram scores are the same f32 fractions, compared within
1e-6). Span ends are equal except where the reference is wrong: on non-ASCII text it ends the last
paragraph (or, in documents mode, the key span) past the end of the text (it mixes byte and character
offsets), and it keeps a text's final newline in the last paragraph on non-ASCII text while leaving it out
on ASCII text (ours leaves it out on all text). There ours must end inside the text at the character-correct
position; such cases must be the only kind of difference. Both run on one thread (the reference is not deterministic
about which copy comes first under threads; ours is, see test_dedupe.py).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from tests.conftest import SAMPLE, read_jsonl, run_cli, write_jsonl_gz
from tests.helpers.reference import run_reference

pytestmark = pytest.mark.reference

EDGE_TEXTS = [
    "",
    "",
    " ",
    "  \n  \n\t\n",
    "a\nb\n",
    "a\nb\n",
    "c\nd",
    "c\nd",
    "e\n\nf\n",
    "e\n\nf\n",
    "Hello world\nSecond para here\n\nHello world\n",
    "Hello world\nSecond para here\n\nHello world\n",
    "x\n\n\ny\nx\ny",
    "the quick brown fox jumps over the lazy dog\nalpha beta gamma delta",
    "the quick brown fox jumps over a lazy cat\nalpha beta gamma delta epsilon\nalpha beta\nzeta",
    "a b c a b c",
    "w0 w1 w2",
    "w0 w1 w2 w3 w4 w5 w6",
    "windows\r\nline\r\nendings\r\n",
    "windows\r\nline\r\nendings\r\n",
    "Ünïcödé façade — naïve café\n東京は日本の首都です。 🙂🚀\nÜnïcödé façade — naïve café",
    "Ünïcödé façade — naïve café\n東京は日本の首都です。 🙂🚀\nÜnïcödé façade — naïve café",
    "Café über naïve\nCafé über naïve\n",
    "short",
    "short",
    "tabs\tand\u00a0nbsp\u2003spaces\u2028line separator\u2029para",
]

MODES = {
    "documents-text": ["--dedupe.documents.attribute_name", "dup", "--dedupe.documents.key", "$.text"],
    "documents-text-skip-empty": [
        "--dedupe.documents.attribute_name", "dup", "--dedupe.documents.key", "$.text", "--dedupe.skip_empty",
    ],
    "paragraphs": ["--dedupe.paragraphs.attribute_name", "dup"],
    "paragraphs-skip-empty-min-length": [
        "--dedupe.paragraphs.attribute_name", "dup", "--dedupe.skip_empty", "--dedupe.min_length", "12",
    ],
    "ngrams": [
        "--dedupe.paragraphs.attribute_name", "dup",
        "--dedupe.paragraphs.by_ngram.ngram_length", "3",
        "--dedupe.paragraphs.by_ngram.overlap_threshold", "0.3",
    ],
    "ngrams-stride-skip-short": [
        "--dedupe.paragraphs.attribute_name", "dup",
        "--dedupe.paragraphs.by_ngram.ngram_length", "4",
        "--dedupe.paragraphs.by_ngram.stride", "3",
        "--dedupe.paragraphs.by_ngram.overlap_threshold", "0.0",
        "--dedupe.paragraphs.by_ngram.skip_short_paragraphs",
    ],
}  # fmt: skip


def corpus(tmp: Path) -> tuple[Path, dict[str, list[dict]]]:
    root = tmp / "corpus"
    shutil.copytree(SAMPLE / "documents", root / "documents")
    edge = [{"id": f"edge-{i}", "text": t, "source": "edge"} for i, t in enumerate(EDGE_TEXTS)]
    write_jsonl_gz(root / "documents" / "zz-edge" / "part-0000.jsonl.gz", edge)
    docs = {str(p.relative_to(root / "documents")): read_jsonl(p) for p in sorted(root.glob("documents/*/*.gz"))}
    return root, docs


def reference_offset_fault(text: str, ours: tuple[int, int], ref: tuple[int, int]) -> bool:
    """Whether a span differs only through the reference mixing bytes and characters on non-ASCII text.

    It then ends spans past the end of the text, or keeps a text's final newline in its last paragraph (and
    starts the empty paragraph after it at the very end) where on ASCII text it leaves that newline out.
    """
    if text.isascii():
        return False
    n = len(text)
    if ours[0] == ref[0] and ref[1] > n:
        return True
    final_newline = text.endswith("\n") and ours[1] == n - 1 and ref[1] >= n
    return final_newline and (ours[0] == ref[0] or (ours[0] == n - 1 and ref[0] == n))


def run_both(tmp: Path, mode_args: list[str]) -> tuple[dict[str, list[dict]], dict[str, list[dict]], dict]:
    outputs = {}
    for who in ("ours", "reference"):
        root, docs = corpus(tmp / who)
        args = [
            "dedupe",
            "--documents", str(root / "documents" / "*" / "*.jsonl.gz"),
            "--dedupe.name", "dd",
            "--bloom_filter.file", str(root / "filter.bin"),
            "--no-bloom_filter.read_only",
            "--bloom_filter.estimated_doc_count", "1000000",
            "--bloom_filter.desired_false_positive_rate", "1e-7",
            "--processes", "1",
            *mode_args,
        ]  # fmt: skip
        result = run_cli(*args) if who == "ours" else run_reference(args, tmp / who)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[who] = {
            name: read_jsonl(root / "attributes" / "dd" / name)
            for name in docs
            if (root / "attributes" / "dd" / name).exists()
        }
    return outputs["ours"], outputs["reference"], docs


@pytest.mark.parametrize("mode", list(MODES))
def test_same_spans_as_reference(tmp_path: Path, mode: str) -> None:
    ours, ref, docs = run_both(tmp_path, MODES[mode])
    assert sorted(ours) == sorted(ref) == sorted(docs)
    marked = ref_faults = 0
    for name, rows in docs.items():
        assert len(ours[name]) == len(ref[name]) == len(rows), name
        for doc, mine, theirs in zip(rows, ours[name], ref[name]):
            assert mine["id"] == theirs["id"] == doc["id"]
            assert sorted(mine["attributes"]) == sorted(theirs["attributes"]), doc["id"]
            a, b = mine["attributes"].get("dup"), theirs["attributes"].get("dup")
            if a is None:
                continue
            assert len(a) == len(b), (doc["id"], a, b)
            text = doc["text"]
            for (s1, e1, v1), (s2, e2, v2) in zip(a, b):
                marked += 1
                assert 0 <= s1 <= e1 <= len(text), (doc["id"], s1, e1, len(text))
                assert v1 == pytest.approx(v2, abs=1e-6), (doc["id"], a, b)
                if (s1, e1) != (s2, e2):
                    assert reference_offset_fault(text, (s1, e1), (s2, e2)), (doc["id"], (s1, e1), (s2, e2))
                    ref_faults += 1
    assert marked > 20, "the corpus has planted duplicates: something must be marked"
    # The accepted difference really occurs here (so the exception above is exercised, not dead code).
    assert ref_faults > 0
    print(f"{mode}: {marked} spans compared, {ref_faults} where the reference's offsets are off")


def ngram_fixture_corpus(root: Path, docs: int = 400, seed: int = 18) -> int:
    """ASCII documents with exact and partial paragraph repeats, sized like the reference's n-gram fixture data
    (thousands of 6-gram keys); returns the number of paragraphs."""
    rng = random.Random(seed)
    vocab = [f"{a}{b}" for a in "bcdfghjklmnpqrstvwz" for b in ("a", "e", "i", "o", "u", "ar", "en")]
    seen: list[str] = []
    rows = []
    paragraphs = 0
    for i in range(docs):
        paras = []
        for _ in range(rng.randint(1, 5)):
            r = rng.random()
            if seen and r < 0.15:
                paras.append(rng.choice(seen))  # an exact repeat
            elif seen and r < 0.3:
                words = rng.choice(seen).split()
                cut = rng.randint(1, len(words))
                paras.append(" ".join(words[:cut] + [rng.choice(vocab) for _ in range(rng.randint(0, 12))]))
            else:
                paras.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 40))))
                seen.append(paras[-1])
        paragraphs += len(paras)
        rows.append({"id": f"n{i}", "text": "\n".join(paras), "source": "fixture"})
    write_jsonl_gz(root / "documents" / "000.json.gz", rows)
    return paragraphs


def test_small_estimate_gives_the_reference_marks(tmp_path: Path) -> None:
    """The reference's `dedupe-paragraph-ngrams` fixture: `estimated_doc_count: 1000` at 1e-5 for thousands of
    n-gram keys. The reference starts its filters at 1 MiB, so it has no false positives there; sized from the
    estimate alone a filter would be about 3 KB and mark text that never repeated. With the 1 MiB floor the
    marks are exactly the reference's."""
    args = [
        "dedupe",
        "--dedupe.name", "dedupe_paragraph_ngrams",
        "--dedupe.paragraphs.attribute_name", "bff_duplicate_paragraph_spans",
        "--dedupe.paragraphs.by_ngram.ngram_length", "6",
        "--dedupe.paragraphs.by_ngram.stride", "3",
        "--dedupe.paragraphs.by_ngram.overlap_threshold", "0.5",
        "--bloom_filter.size_in_bytes", "0",
        "--no-bloom_filter.read_only",
        "--bloom_filter.estimated_doc_count", "1000",
        "--bloom_filter.desired_false_positive_rate", "0.00001",
        "--processes", "1",
    ]  # fmt: skip
    outputs = {}
    for who in ("ours", "reference"):
        root = tmp_path / who
        paragraphs = ngram_fixture_corpus(root)
        run_args = [*args, "--documents", str(root / "documents" / "*.json.gz"), "--bloom_filter.file",
                    str(root / "filter.bin")]  # fmt: skip
        result = run_cli(*run_args) if who == "ours" else run_reference(run_args, tmp_path / who)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[who] = read_jsonl(root / "attributes" / "dedupe_paragraph_ngrams" / "000.json.gz")
    docs = read_jsonl(tmp_path / "ours" / "documents" / "000.json.gz")
    keys = sum(
        max(1, (len(p.split()) - 6) // 3 + 1) for d in docs for p in d["text"].split("\n")
    )  # about the 6-grams looked up at stride 3
    assert keys > 3000 and paragraphs > 1000
    marked = 0
    for doc, ours, ref in zip(docs, outputs["ours"], outputs["reference"], strict=True):
        mine, theirs = ours["attributes"], ref["attributes"]
        assert sorted(mine) == sorted(theirs), doc["id"]
        spans = mine.get("bff_duplicate_paragraph_spans", [])
        other = theirs.get("bff_duplicate_paragraph_spans", [])
        assert [s[:2] for s in spans] == [s[:2] for s in other], (doc["id"], spans, other)
        assert [s[2] for s in spans] == pytest.approx([s[2] for s in other], abs=1e-6), doc["id"]
        marked += len(spans)
    assert marked > 100, "the corpus repeats paragraphs: many spans are marked"
