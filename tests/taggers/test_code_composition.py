"""`code_composition`: line labels from a fastText model, compared with the reference toolkit.

The reference's model (Hugging Face techarb/code-prose-composition) cannot be fetched here, so a model with its
labels (`code`, `comment`, `prose`) is trained in the test and given to both toolkits (the reference reads it
from its download cache). Without a model the tagger stops at start-up with one message naming the three ways
to supply it.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dolma import registry
from dolma.documents import Document
from dolma.errors import TaggerError
from taggers.code_composition import CODE_PROSE_MODEL
from tests.conftest import read_jsonl, run_cli, write_jsonl_gz
from tests.helpers.reference import EDGE_CASES, compare_rows, prepare, run_reference

NAME = "code_composition"
REFERENCE_MODEL = "hf://techarb/code-prose-composition/code-comment-prose-model.bin"  # its tagger's MODEL_PATH

CODE = ["x = 1", "def f(x): return x", "for i in range(10):", "int main() {", "return 0;", "import os", "print(x)"]
COMMENT = ["# this computes the sum", "// increment the counter", "/* helper */", "# TODO fix this later"]
PROSE = ["This is a sentence about the weather.", "The quick brown fox jumps over the lazy dog.", "We went home."]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A small fastText model with the reference model's label names, trained here (in a fresh interpreter)."""
    tmp = tmp_path_factory.mktemp("code-prose")
    rng = random.Random(0)
    kinds = (("code", CODE), ("comment", COMMENT), ("prose", PROSE))
    rows = [f"__label__{label} {rng.choice(lines)}\n" for _ in range(200) for label, lines in kinds]
    rng.shuffle(rows)
    (tmp / "train.txt").write_text("".join(rows), encoding="utf-8")
    # Bigrams, as `dolma train-fasttext` trains (unigram-only training on these few lines diverges to NaN), and a
    # small learning rate. Trained in its own interpreter: inside the full suite, training in the test process
    # diverged to NaN now and then after other tests had loaded and trained models in it (process-wide state of
    # some library; never reproduced in a fresh process).
    script = (
        "import sys, fasttext\n"
        "m = fasttext.train_supervised(sys.argv[1], wordNgrams=2, bucket=20000, dim=50, lr=0.05, epoch=10, "
        "thread=1, verbose=0)\n"
        "m.save_model(sys.argv[2])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp / "train.txt"), str(tmp / "model.bin")], check=True)
    return tmp / "model.bin"


def docs(n: int = 200, seed: int = 9) -> list[dict]:
    """Mixed documents: lines of each kind, short lines (`other`), blank lines and every line separator."""
    rng = random.Random(seed)
    pieces = CODE + COMMENT + PROSE + ["ab", "x=1", "  é ", "東京", "", "   ", "\u00a0abcd", "12345"]
    seps = ["\n", "\n\n", "\r\n", "\r", "\u2028", "\x0b", "\n  \n"]
    out = []
    for i in range(n):
        parts = [rng.choice(pieces) + rng.choice(seps) for _ in range(rng.randint(1, 15))]
        out.append({"id": f"mix-{i}", "text": "".join(parts), "source": "mixed"})
    return out


def spans(model: Path, text: str) -> dict[str, float]:
    tagger = registry.create(NAME, {"model_path": str(model)})
    return {s.type: s.score for s in tagger.predict(Document(id="d", text=text))}


def test_table(model):
    assert spans(model, "") == {"boundaries": 0.0}
    assert spans(model, " \n\n ") == {"boundaries": 0.0}
    assert spans(model, "ab\nx=1") == {"boundaries": 0.0, "other_pct": 1.0, "other": 2.0, "other_entropy": 0.0}
    got = spans(model, "x = 1\nx = 1\n# this computes the sum\nWe went home.\nx = 1\nab\nWe went home.")
    assert got["boundaries"] == 1.0  # prose -> code only: a comment or `other` line in between is no boundary
    assert (got["code"], got["comment"], got["prose"], got["other"]) == (3.0, 1.0, 2.0, 1.0)
    assert (got["code_pct"], got["comment_pct"], got["prose_pct"], got["other_pct"]) == (0.43, 0.14, 0.29, 0.14)
    assert 0 < got["code_entropy"] < 1.585 and got["other_entropy"] == 0.0


def test_start_up_error_without_model_names_three_ways(tmp_path, monkeypatch):
    monkeypatch.setenv("DOLMA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DOLMA_CODE_COMPOSITION_MODEL", raising=False)
    with pytest.raises(TaggerError, match="has no model"):
        registry.create(NAME).check()
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", [{"id": "1", "text": "x = 1"}])
    write_jsonl_gz(tmp_path / "documents" / "b.jsonl.gz", [{"id": "2", "text": "y = 2"}])
    result = run_cli("tag", "--documents", "documents/*.jsonl.gz", "--taggers", NAME, "--quiet", cwd=tmp_path)
    assert result.returncode != 0
    err = result.stderr
    assert err.count("has no model") == 1, err
    assert f"tagger_config.{NAME}.model_path" in err and "DOLMA_CODE_COMPOSITION_MODEL" in err
    assert CODE_PROSE_MODEL in err and "Traceback" not in err
    assert not (tmp_path / "attributes").exists()


def test_model_from_variable(model, monkeypatch):
    monkeypatch.setenv("DOLMA_CODE_COMPOSITION_MODEL", str(model))
    registry.create(NAME).check()
    assert registry.create(NAME).model_file() == str(model)


@pytest.mark.reference
def test_matches_reference(model, tmp_path):
    extra = {
        "mixed": docs(),
        "code-lines": [{"id": f"e{i}", "text": t, "source": "e"} for i, t in enumerate(EDGE_CASES)],
    }
    ours = prepare(tmp_path / "ours", extra)
    theirs = prepare(tmp_path / "theirs", extra)
    cache = tmp_path / "xdg-cache" / "dolma"
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, cache / f"{hashlib.sha256(REFERENCE_MODEL.encode()).hexdigest()}.bin")
    pattern = "documents/**/*.jsonl.gz"
    # the reference with one worker: its workers load the cached model concurrently, which failed once under load
    ref = run_reference(["tag", "--documents", pattern, "--taggers", NAME, "--processes", "1"], tmp_path, theirs)
    assert ref.returncode == 0, ref.stderr[-3000:]
    mine = run_cli(
        "tag", "--documents", pattern, "--taggers", NAME, "--processes", "2", "--quiet",
        "--tagger_config", f'{{"{NAME}": {{"model_path": "{model}"}}}}', cwd=ours,
    )  # fmt: skip
    assert mine.returncode == 0, mine.stderr
    files = sorted(p.relative_to(theirs) for p in (theirs / "attributes" / NAME).rglob("*.jsonl.gz"))
    assert files and files == sorted(p.relative_to(ours) for p in (ours / "attributes" / NAME).rglob("*.jsonl.gz"))
    kinds = set()
    for rel in files:
        rows = read_jsonl(ours / rel)
        compare_rows(rows, read_jsonl(theirs / rel), str(rel))
        kinds |= {key.rsplit("__", 1)[1] for row in rows for key in row["attributes"]}
    assert {"code", "comment", "prose", "other", "boundaries"} <= kinds
