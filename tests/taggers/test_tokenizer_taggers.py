"""The tokenizer-based taggers: where their tokenizer comes from, the start-up error without one, the repetition
rules on hand-checkable token sequences, and `dolma list`. (Values against the reference:
tests/compat/test_reference_tokenizer_taggers.py.)"""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from dolma import registry
from dolma.documents import Document
from dolma.tokenizer_files import OLMO_TOKENIZER_FILE, SHIPPED_TOKENIZERS, hf_cached_file
from taggers.tokenizer_taggers import MAX_PERIOD, outermost, token_runs
from tests.conftest import run_cli, write_jsonl_gz
from tests.helpers.tokenizers import TOKENIZER_TAGGERS, fill_hf_cache

NEOX = "tokenizers_EleutherAI_GPT_NeoX_20B"
DOLMA2_FILE = SHIPPED_TOKENIZERS["allenai/dolma2-tokenizer"]
TEXT = "Tokenizers differ: 東京は日本の首都です。 Ünïcödé façade, naïve café — 1234567 and emoji 🙂🚀."


def no_tokenizer_env(tmp: Path) -> dict[str, str]:
    """An environment in which no GPT-NeoX-20B tokenizer can be found (empty caches, no variable)."""
    return {
        "HF_HUB_CACHE": str(tmp / "empty-hub"),
        "HF_HOME": str(tmp / "empty-hf-home"),
        "XDG_CACHE_HOME": str(tmp / "empty-xdg"),
        "DOLMA_GPT_NEOX_20B_TOKENIZER": "",
    }


def count(path: Path, text: str) -> int:
    return len(Tokenizer.from_file(str(path)).encode(text).ids)


def neox_tokens(config: dict | None = None) -> float:
    tagger = registry.create(NEOX, config)
    tagger.check()
    (span,) = tagger.predict(Document(id="1", text=TEXT, source="s"))
    assert (span.start, span.end, span.type) == (0, len(TEXT), "tokens")
    return span.score


def test_every_tokenizer_tagger_is_listed_with_a_description():
    result = run_cli("list", "--plain")
    assert result.returncode == 0, result.stderr
    rows = {row[0]: row for row in (line.split("\t") for line in result.stdout.strip().splitlines())}
    for name in TOKENIZER_TAGGERS:
        assert name in rows, name
        _, target, description = rows[name]
        assert target.startswith("taggers.tokenizer_taggers."), (name, target)
        assert description and len(description) <= 119, (name, description)


def test_gpt_neox_without_a_tokenizer_fails_at_start_up_once(tmp_path):
    """No path, no variable, nothing cached: one error before any file is read (the documents file here is not
    even JSON, so reading it first would give another error), naming the field, the variable and the Hub page."""
    docs = tmp_path / "documents"
    docs.mkdir()
    with gzip.open(docs / "a.jsonl.gz", "wt") as fh:
        fh.write("this is not JSON\n")
    result = run_cli("tag", "--documents", str(docs / "*.jsonl.gz"), "--taggers", NEOX, env=no_tokenizer_env(tmp_path))
    assert result.returncode != 0
    err = result.stderr
    for needle in (
        f"tagger_config.{NEOX}.tokenizer_path",
        "DOLMA_GPT_NEOX_20B_TOKENIZER",
        "https://huggingface.co/EleutherAI/gpt-neox-20b",
        "EleutherAI/gpt-neox-20B",
    ):
        assert needle in err, (needle, err)
    assert err.count("needs the Hugging Face tokenizer") == 1, err
    assert "JSON" not in err and "line 1" not in err, err
    assert not (tmp_path / "attributes").exists()


def test_gpt_neox_tokenizer_given_by_config_path(tmp_path, monkeypatch):
    """`tagger_config.<name>.tokenizer_path`: a file, or a directory holding tokenizer.json. The dolma2 file is
    used here because its counts differ from the OLMo tokenizer's, so the test sees which file was read."""
    for key, value in no_tokenizer_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    expected = count(DOLMA2_FILE, TEXT)
    assert expected != count(OLMO_TOKENIZER_FILE, TEXT)
    assert neox_tokens({"tokenizer_path": str(DOLMA2_FILE)}) == expected
    folder = tmp_path / "neox"
    folder.mkdir()
    shutil.copy(DOLMA2_FILE, folder / "tokenizer.json")
    assert neox_tokens({"tokenizer_path": str(folder)}) == expected


def test_gpt_neox_tokenizer_given_by_path_through_the_cli(tmp_path):
    docs = tmp_path / "documents"
    write_jsonl_gz(docs / "a.jsonl.gz", [{"id": "1", "text": TEXT, "source": "s"}])
    config = tmp_path / "tag.yaml"
    config.write_text(
        json.dumps(
            {
                "documents": [str(docs / "*.jsonl.gz")],
                "taggers": [NEOX],
                "tagger_config": {NEOX: {"tokenizer_path": str(DOLMA2_FILE)}},
            }
        )
    )
    result = run_cli("-c", str(config), "tag", "--quiet", env=no_tokenizer_env(tmp_path))
    assert result.returncode == 0, result.stderr
    (out,) = (tmp_path / "attributes" / NEOX).rglob("*.jsonl.gz")
    with gzip.open(out, "rt") as fh:
        row = json.loads(fh.readline())
    key = f"{NEOX}__{NEOX}__tokens"
    assert row["attributes"][key] == [[0, len(TEXT), float(count(DOLMA2_FILE, TEXT))]]


def test_gpt_neox_tokenizer_from_variable_and_from_the_hugging_face_cache(tmp_path, monkeypatch):
    for key, value in no_tokenizer_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DOLMA_GPT_NEOX_20B_TOKENIZER", str(DOLMA2_FILE))
    assert neox_tokens() == count(DOLMA2_FILE, TEXT)
    monkeypatch.setenv("DOLMA_GPT_NEOX_20B_TOKENIZER", "")
    # The Hub's own spelling (gpt-neox-20b), as `huggingface-cli download` stores it.
    fill_hf_cache(tmp_path / "empty-hub", {"EleutherAI/gpt-neox-20b": DOLMA2_FILE}, "89abcdef" * 5, ref_end="\n")
    assert neox_tokens() == count(DOLMA2_FILE, TEXT)


@pytest.mark.parametrize(
    ("given", "needle"),
    [("missing.json", "tokenizer file not found"), ("not-a-tokenizer.json", "not a Hugging Face tokenizer.json")],
)
def test_bad_tokenizer_path_is_a_start_up_error_naming_the_field(tmp_path, given, needle):
    (tmp_path / "not-a-tokenizer.json").write_text('{"hello": 1}')
    tagger = registry.create("tokenizers_AI2_OLMo_v1", {"tokenizer_path": str(tmp_path / given)})
    with pytest.raises(Exception, match=needle) as info:
        tagger.check()
    assert "tokenizers_AI2_OLMo_v1" in str(info.value)


def test_shipped_tokenizers_need_nothing(tmp_path, monkeypatch):
    """The OLMo and dolma2 tokenizers are shipped: these taggers work with empty caches and no variables."""
    for key, value in no_tokenizer_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    doc = Document(id="1", text="  " + TEXT + "\n\n", source="s")
    v1 = registry.create("dolma_v1_tokenizer").predict(doc)
    v2 = registry.create("dolma_v2_tokenizer").predict(doc)
    assert v1[0].score == count(OLMO_TOKENIZER_FILE, TEXT)  # of the stripped text
    assert v2[0].score == count(DOLMA2_FILE, TEXT)
    olmo = registry.create("tokenizers_AI2_OLMo_v1").predict(doc)
    assert olmo[0].score == count(OLMO_TOKENIZER_FILE, doc.text)


def test_tagger_pickles_without_its_tokenizer():
    tagger = registry.create("tokenizer_repetitions_v1")
    doc = Document(id="1", text="x the cat the cat the cat the cat", source="s")
    before = tagger.predict(doc)
    assert "_tokenizer" in tagger.__dict__
    clone = pickle.loads(pickle.dumps(tagger))
    assert "_tokenizer" not in clone.__dict__
    assert clone.predict(doc) == before


# Repetition rules on token ids (hand-checkable): (first token, last token, copies), by period then position.
RUNS = [
    ([1, 2, 2, 2], [(1, 3, 3)]),
    ([1, 2, 2], []),  # two copies are not a repetition
    ([7] + [1] * 10, [(1, 10, 10), (1, 10, 5), (1, 10, 3)]),  # periods 1, 2, 3 over the same tokens
    ([1, 2, 1, 2, 1, 2], [(0, 5, 3)]),
    ([1, 2, 1, 2, 1], []),  # 5 tokens of period 2: two whole copies
    ([9, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4], [(1, 12, 4)]),
    ([3, 3, 3, 5, 6, 5, 6, 5, 6], [(0, 2, 3), (3, 8, 3)]),
    (list(range(MAX_PERIOD)) * 3, [(0, 3 * MAX_PERIOD - 1, 3)]),
    (list(range(MAX_PERIOD + 1)) * 3, []),  # a unit longer than the longest period
    ([], []),
]


@pytest.mark.parametrize(("ids", "expected"), RUNS)
def test_token_runs(ids, expected):
    assert token_runs(ids) == expected


def test_outermost_keeps_spans_not_inside_another():
    found = [(2, 21, 10), (24, 33, 5), (2, 21, 5), (2, 9, 4), (12, 30, 3), (14, 28, 4), (40, 50, 3), (45, 60, 3)]
    # (2, 21, 5) equals the first span, (2, 9, 4) and (14, 28, 4) are inside others; partial overlaps stay.
    assert outermost(found) == [(2, 21, 10), (12, 30, 3), (24, 33, 5), (40, 50, 3), (45, 60, 3)]


def test_dolma_tokens_resolves_the_shared_shipped_files():
    """`dolma tokens` reads the same shipped files (moved to dolma/resources) and now knows dolma2 by its Hub name."""
    from mixers.tokenizer import load_tokenizer

    olmo = load_tokenizer("allenai/gpt-neox-olmo-dolma-v1_5")
    dolma2 = load_tokenizer("allenai/dolma2-tokenizer")
    assert olmo.encode_batch([TEXT]) == [Tokenizer.from_file(str(OLMO_TOKENIZER_FILE)).encode(TEXT).ids]
    assert dolma2.encode_batch([TEXT]) == [Tokenizer.from_file(str(DOLMA2_FILE)).encode(TEXT).ids]


@pytest.mark.parametrize("name", ["../etc", "a/../../b", "/abs/path", "owner/name/extra", "owner", "", "a/b c"])
def test_hugging_face_cache_lookup_refuses_names_that_are_not_repository_ids(tmp_path, monkeypatch, name):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert hf_cached_file(name) is None


@pytest.mark.parametrize("name", TOKENIZER_TAGGERS)
def test_lone_surrogates_are_read_as_replacement_characters(name, tmp_path, monkeypatch):
    """The tokenizers library refuses a lone surrogate (and would fail the whole batch): it counts as U+FFFD."""
    monkeypatch.setenv("DOLMA_GPT_NEOX_20B_TOKENIZER", str(OLMO_TOKENIZER_FILE))
    tagger = registry.create(name)
    bad = Document(id="1", text="a a a a \ud800 b \udfff b b b", source="s")
    fixed = Document(id="1", text="a a a a \ufffd b \ufffd b b b", source="s")
    assert tagger.predict_batch([bad, fixed]) == [tagger.predict(fixed)] * 2
