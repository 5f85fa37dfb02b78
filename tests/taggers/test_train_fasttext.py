"""`dolma train-fasttext` defaults and `quantize`: the sample corpus's quality classifier, trained with no options,
is small and accurate on its held-out split; a quantized model (.ftz) is far smaller, loads in the fastText
classifier tagger and scores like the full model."""

from __future__ import annotations

import json
import random

from dolma import registry
from dolma.documents import Document
from taggers.train_fasttext import _held_out, auto_bucket
from tests.conftest import SAMPLE, read_jsonl, run_cli, write_jsonl_gz
from tests.taggers.test_classifiers import BAD, GOOD, make_docs

POSITIVE = ["debian-docs", "python-docs"]
NEGATIVE = ["web-mixed"]


def held_out_docs(groups: list[str], seed: int = 0, fraction: float = 0.1) -> list[dict]:
    docs = []
    for group in groups:
        for path in sorted((SAMPLE / "documents" / group).glob("*.jsonl.gz")):
            docs += [d for d in read_jsonl(path) if d["text"].strip() and _held_out(d["id"], seed, fraction)]
    return docs


def f1_of(tagger, positives: list[dict], negatives: list[dict], label: str) -> float:
    """F1 of `label` as the tagger's top label on the held-out documents (computed here, not by the command)."""

    def top(doc: dict) -> str:
        spans = tagger.predict(Document(id=doc["id"], text=doc["text"]))
        return max(spans, key=lambda s: s.score).type

    tp = sum(top(d) == label for d in positives)
    fp = sum(top(d) == label for d in negatives)
    fn = len(positives) - tp
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def test_default_quality_classifier_is_small_and_accurate(tmp_path):
    """The sample corpus (5 MB of text): fastText's own defaults wrote an 835 MB model (F1 0.97); ours ~34 MB."""
    args = ["train-fasttext", "--positive"]
    args += [str(SAMPLE / "documents" / g / "*.jsonl.gz") for g in POSITIVE]
    args += ["--negative"] + [str(SAMPLE / "documents" / g / "*.jsonl.gz") for g in NEGATIVE]
    args += ["--positive_label", "hq", "--negative_label", "lq", "--model_path", str(tmp_path / "q.bin")]
    result = run_cli(*args, "--report", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    size = (tmp_path / "q.bin").stat().st_size
    assert report["model_bytes"] == size and size < 60e6, size
    assert 16_384 <= report["bucket"] < 2_000_000  # scaled to the data, not fastText's fixed 2M rows
    tagger = registry.create("fasttext_classifier_v1", {"model_path": str(tmp_path / "q.bin")})
    positives, negatives = held_out_docs(POSITIVE), held_out_docs(NEGATIVE)
    assert len(positives) > 100 and len(negatives) > 20
    f1 = f1_of(tagger, positives, negatives, "hq")
    assert f1 >= 0.95, f1
    assert abs(f1 - report["f1"]) < 1e-9


def test_bucket_scales_with_the_data():
    assert auto_bucket(1_000, 1) == 0
    assert auto_bucket(1_000, 2) == 16_384
    assert auto_bucket(827_175, 2) == 131_072
    assert auto_bucket(10**10, 2) == 2_000_000


def test_quantized_model_loads_in_the_tagger_and_scores_like_the_full_model(tmp_path):
    rng = random.Random(3)
    write_jsonl_gz(tmp_path / "pos" / "a.jsonl.gz", make_docs(GOOD, "p", 400, rng))
    write_jsonl_gz(tmp_path / "neg" / "a.jsonl.gz", make_docs(BAD, "n", 400, rng))
    base = ["train-fasttext", "--positive", str(tmp_path / "pos" / "*.jsonl.gz")]
    base += ["--negative", str(tmp_path / "neg" / "*.jsonl.gz"), "--positive_label", "hq", "--negative_label", "lq"]
    full = run_cli(*base, "--model_path", str(tmp_path / "m.bin"))
    assert full.returncode == 0, full.stderr
    quant = run_cli(*base, "--model_path", str(tmp_path / "m.ftz"), "--quantize", "--report", str(tmp_path / "q.json"))
    assert quant.returncode == 0, quant.stderr
    report = json.loads((tmp_path / "q.json").read_text())
    assert report["model_bytes"] < (tmp_path / "m.bin").stat().st_size / 2
    assert report["f1"] >= report["unquantized_f1"] - 0.05

    full_tagger = registry.create("fasttext_classifier_v1", {"model_path": str(tmp_path / "m.bin")})
    quant_tagger = registry.create("fasttext_classifier_v1", {"model_path": str(tmp_path / "m.ftz")})
    quant_tagger.check()
    docs = make_docs(GOOD, "tp", 50, random.Random(9)) + make_docs(BAD, "tn", 50, random.Random(10))
    worst = 0.0
    for doc in docs:
        a = {s.type: s.score for s in full_tagger.predict(Document(id=doc["id"], text=doc["text"]))}
        b = {s.type: s.score for s in quant_tagger.predict(Document(id=doc["id"], text=doc["text"]))}
        assert set(a) == set(b) == {"hq", "lq"}
        worst = max(worst, abs(a["hq"] - b["hq"]))
    assert worst <= 0.02, worst  # the stated tolerance (docs/train-fasttext.md): P(hq) within 0.02


def test_quantize_needs_an_ftz_path(tmp_path):
    write_jsonl_gz(tmp_path / "p.jsonl.gz", [{"id": "1", "text": "a b"}])
    args = ["train-fasttext", "--positive", str(tmp_path / "p.jsonl.gz"), "--negative", str(tmp_path / "p.jsonl.gz")]
    result = run_cli(*args, "--model_path", str(tmp_path / "m.bin"), "--quantize")
    assert result.returncode != 0 and "model_path" in result.stderr and ".ftz" in result.stderr
