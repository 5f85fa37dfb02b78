"""Differential tests of the tokenizer-based taggers against the reference toolkit.

The reference loads its tokenizers from the Hugging Face Hub; offline it reads the Hugging Face cache, which
each test fills (inside its tmp dir) with the files the reference asks for: the shipped OLMo tokenizer under
`allenai/gpt-neox-olmo-dolma-v1_5` and `allenai/eleuther-ai-gpt-neox-20b-pii-special` (the same tokenizer up to two
swapped special-token ids, see taggers/tokenizer_taggers.py), the shipped dolma2 tokenizer under
`allenai/dolma2-tokenizer`, and, standing in for GPT-NeoX-20B (not shipped), the OLMo file under
`EleutherAI/gpt-neox-20B`. Our run finds GPT-NeoX-20B in that same cache (HF_HUB_CACHE).

Corpus: one sample document in 32 (77, all three sources), the shared edge cases (empty, whitespace-only,
non-Latin, control characters...) but the 1 MB one and that of 2,000 short lines, which stands here cut to 300 lines
(the reference's paragraph taggers took 35 s over the two), long runs of one repeated token, and 200 generated
documents built to hold token repetitions of every period (special-token text, non-breaking spaces and blank lines
included). Same files, keys and spans, values within 1e-4.
"""

from __future__ import annotations

import pytest

from dolma import registry
from dolma.documents import Document
from dolma.tokenizer_files import OLMO_TOKENIZER_FILE, SHIPPED_TOKENIZERS
from tests.helpers.reference import (
    EDGE_CASES,
    SLOW_EDGES,
    compare_outputs,
    fewer_lines,
    reference_predict,
    sample_share,
    tag_both,
)
from tests.helpers.textgen import fragment_docs
from tests.helpers.tokenizers import TOKENIZER_TAGGERS, fill_hf_cache

pytestmark = pytest.mark.reference

HUB_FILES = {
    "allenai/gpt-neox-olmo-dolma-v1_5": OLMO_TOKENIZER_FILE,
    "allenai/eleuther-ai-gpt-neox-20b-pii-special": OLMO_TOKENIZER_FILE,
    "allenai/dolma2-tokenizer": SHIPPED_TOKENIZERS["allenai/dolma2-tokenizer"],
    "EleutherAI/gpt-neox-20B": OLMO_TOKENIZER_FILE,
}
SAMPLE_DOCUMENTS = 2400
GENERATED = 200
SAMPLE_SHARE = 32  # one sample document in 32: nine taggers, each a pass of the reference over every document

PIECES = [
    "a",
    " a",
    "the",
    "of the",
    "Hello world.",
    ",",
    "!!",
    "--",
    "123",
    "3.14",
    "東京",
    "café",
    "e\u0301",
    "🙂",
    "ab",
    "<|endoftext|>",
    "|||IP_ADDRESS|||",
    "|||EMAIL_ADDRESS|||",
    "\u00a0",
    "\t",
    "Ünïcödé",
    "Это текст",
    "the cat sat on the mat " * 4,
    "ha" * 9,
    "- " * 7,
    "1 2 3 " * 5,
    "x y z w v u t s r q p o n m " * 3,  # a 14-token unit: one more than the longest period
    "x y z w v u t s r q p o n " * 3,  # 13 tokens: the longest period
    "\u3042" * 40,
]
SEPARATORS = [" ", " ", "", "\n", "\n\n", "  ", "\r\n", " \n \n"]
LONG_RUNS = [
    "ab " * 30000,
    "\u3042" * 5000,
    "🙂" * 3000,
    ("the end. " * 2000 + "\n") * 5,
    "\n".join(["word " * 50] * 40),
]


thinned = sample_share(SAMPLE_SHARE, "repetitive")


def repetitive_docs() -> list[dict]:
    docs = fragment_docs(PIECES, SEPARATORS, n=GENERATED, seed=1821, max_parts=40, prefix="rep", source="repetitive")
    docs += [{"id": f"run-{i}", "text": text, "source": "repetitive"} for i, text in enumerate(LONG_RUNS)]
    return [*docs, fewer_lines(300)]


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref-tokenizers")
    # The reference's cache is $XDG_CACHE_HOME/huggingface/hub (tests/helpers/reference.py sets XDG_CACHE_HOME);
    # ours is given as HF_HUB_CACHE, the same directory.
    hub = fill_hf_cache(tmp / "xdg-cache" / "huggingface" / "hub", HUB_FILES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(hub))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield tag_both(
            tmp,
            TOKENIZER_TAGGERS,
            extra={"repetitive": repetitive_docs()},
            keep=lambda doc: doc["id"] not in SLOW_EDGES and thinned(doc),
        )


@pytest.mark.parametrize("tagger", TOKENIZER_TAGGERS)
def test_tokenizer_taggers_match_reference(tagged, tagger):
    rows = compare_outputs(*tagged, tagger)
    minimum = SAMPLE_DOCUMENTS // (SAMPLE_SHARE + 4) + len(EDGE_CASES) - 1 + GENERATED + len(LONG_RUNS) + 1
    if tagger == "tokenizer_repetitions_v2r2":  # writes nothing for a document without repetitions
        minimum = GENERATED
    assert rows >= minimum, f"{tagger}: only {rows} rows compared"


def test_repetition_rows_are_not_trivial(tagged):
    """The corpus does exercise the repetition rules: many documents have several periods at once."""
    ours, _ = tagged
    from tests.conftest import read_jsonl

    rows = [r for p in (ours / "attributes" / "tokenizer_repetitions_v1").rglob("*.jsonl.gz") for r in read_jsonl(p)]
    key = "tokenizer_repetitions_v1__tokenizer_repetitions_v1__repetition"
    counts = [len(r["attributes"].get(key, [])) for r in rows]
    assert sum(c >= 3 for c in counts) >= 100
    scores = {s[2] for r in rows for s in r["attributes"].get(key, [])}
    assert len(scores) >= 10


def test_punctuation_of_every_code_point_matches_reference(tmp_path):
    """olmo_pretokenizer_v1 on "a<c>a b<c>1" for code points up to U+30FF and more: the reference's `[[:punct:]]`
    (an older Oniguruma) and our `\\p{P}` agree everywhere but on characters newer Unicode versions added, which
    the reference's tables do not know."""
    # Balinese punctuation (Unicode 14 and 15) and Cyrillic TJE (letters, Unicode 16).
    newer = {0x1B4E, 0x1B4F, 0x1B7F, 0x1C89, 0x1C8A}
    points = [cp for cp in range(0x20, 0x3100) if cp not in newer]
    points += [*range(0xFE30, 0xFF70), 0x1F642, 0x10100, 0x16FE2]
    texts = ["a" + chr(cp) + "a b" + chr(cp) + "1" for cp in points]
    theirs = reference_predict(["olmo_pretokenizer_v1"], texts, tmp_path)["olmo_pretokenizer_v1"]
    tagger = registry.create("olmo_pretokenizer_v1")
    ours = tagger.predict_batch([Document(id=str(i), text=t, source="s") for i, t in enumerate(texts)])
    diffs = [hex(cp) for cp, mine, ref in zip(points, ours, theirs) if mine[0].score != ref[0][3]]
    assert diffs == []
