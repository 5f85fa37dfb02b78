# ruff: noqa: RUF001 - text in several scripts, full-width punctuation included on purpose
"""The cld2, cld3, langdetect and lingua taggers on their own: start-up errors without their library, the
intended differences from the reference (documents it crashes on), determinism, and `dolma list`.

Their agreement with the reference is tested in test_reference_langid.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from dolma import registry
from dolma.documents import Document, Span
from taggers import _langid
from tests.conftest import REPO, read_jsonl, run_cli, write_jsonl_gz
from tests.helpers.langid_names import CLD2, CLD3, FASTTEXT, LANGDETECT, LINGUA

ALL = CLD2 + CLD3 + LANGDETECT + LINGUA + FASTTEXT

MIXED = "The quick brown fox jumps over the lazy dog.\nCeci est une phrase en français.\n"


def spans(name: str, text: str) -> list[Span]:
    return registry.create(name).predict(Document(id="d", text=text, source="s"))


def by_type(found: list[Span]) -> dict[str, list[tuple[int, int, float]]]:
    out: dict[str, list[tuple[int, int, float]]] = {}
    for span in found:
        out.setdefault(span.type, []).append((span.start, span.end, round(span.score, 6)))
    return out


# A library missing: simulated by making its import fail (`sys.modules[name] = None` makes `import` raise
# ImportError exactly as for an absent package) in the CLI's own process.
_WITHOUT = "import sys; sys.modules[{module!r}] = None; from dolma.cli import main; sys.exit(main())"
MISSING = [
    ("pycld2", "pycld2", "cld2_en_paragraph_with_doc_score_v2"),
    ("anyascii", "anyascii", "cld2_doc_v2"),
    ("gcld3", "cld3-py", "cld3_en_doc_v2"),
    ("langdetect", "langdetect", "langdetect_doc_v1"),
    ("lingua", "lingua-language-detector", "lingua_en_only_v1"),
]


def _tag_args(tagger: str) -> list[str]:
    return ["tag", "--documents", "documents/*.jsonl.gz", "--taggers", "char_length_v1", tagger, "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A one-document corpus that every tagger of MISSING tags when its library is there."""
    root = tmp_path_factory.mktemp("langid-missing")
    write_jsonl_gz(root / "documents" / "a.jsonl.gz", [{"id": "1", "text": "Hello there.", "source": "s"}])
    for _, _, tagger in MISSING:
        result = run_cli(*_tag_args(tagger), "--destination", str(root / "ok" / tagger), cwd=root)
        assert result.returncode == 0, result.stderr
    return root


@pytest.mark.parametrize(("module", "package", "tagger"), MISSING)
def test_missing_library_fails_at_start_up_naming_the_extra(corpus, module, package, tagger):
    failed = subprocess.run(
        [sys.executable, "-c", _WITHOUT.format(module=module), *_tag_args(tagger)],
        capture_output=True,
        text=True,
        cwd=corpus,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(corpus)},
    )
    assert failed.returncode != 0
    message = failed.stderr
    assert f"'{tagger}'" in message and f"'{package}'" in message, message
    assert "pip install 'dolma-toolkit[langid]'" in message, message
    assert "Traceback" not in message
    # Refused before any file was read or written, the other tagger's included.
    assert not (corpus / "attributes").exists()


LIBRARY = {
    **dict.fromkeys(CLD2, "CLD2"),
    **dict.fromkeys(CLD3, "CLD3"),
    **dict.fromkeys(LANGDETECT, "langdetect"),
    **dict.fromkeys(LINGUA, "Lingua"),
    **dict.fromkeys(FASTTEXT, "fastText"),
}


def test_every_language_tagger_is_listed_with_a_description():
    """`dolma list --plain`: every tagger of the family, with a one-line description naming its library."""
    result = run_cli("list", "--plain")
    assert result.returncode == 0, result.stderr
    rows = {row[0]: row for row in (line.split("\t") for line in result.stdout.strip().splitlines())}
    for name in ALL:
        assert name in rows, name
        _, target, description = rows[name]
        assert target.startswith("taggers."), (name, target)
        assert LIBRARY[name] in description and len(description) <= 119, (name, description)
    assert set(registry.all_taggers()) >= set(ALL)


# Intended differences: the reference crashes on these documents; here they get scores.


def test_cld3_empty_document_is_not_english():
    """pycld3 gives None for an empty text and the reference crashes on it; here en 0 / not_en 1."""
    assert by_type(spans("cld3_en_doc_v2", "")) == {"en": [(0, 0, 0.0)], "not_en": [(0, 0, 1.0)]}
    assert spans("cld3_en_paragraph_v2", "") == []
    assert by_type(spans("cld3_en_paragraph_with_doc_score_v2", "")) == {
        "doc_en": [(0, 0, 0.0)],
        "doc_not_en": [(0, 0, 0.0)],
    }


SURROGATES = "The quick brown fox jumps over the lazy dog.\ud800\nCeci est une phrase en fran\udfffais.\n"


@pytest.mark.parametrize("tagger", [t for t in ALL if t not in LANGDETECT])
def test_lone_surrogate_is_read_as_a_replacement_character(tagger):
    """JSON lets a document hold a lone surrogate; the C++ and Rust libraries refuse it (the reference crashes).
    Here it counts as U+FFFD, offsets unchanged. (langdetect reads it as it is: test_reference_langid.py.)"""
    text = SURROGATES
    fixed = text.replace("\ud800", "\ufffd").replace("\udfff", "\ufffd")
    got = spans(tagger, text)
    assert got, tagger
    assert by_type(got) == by_type(spans(tagger, fixed))
    assert max(s.end for s in got) <= len(text)


# Behaviour worth pinning down (the differential tests cover the rest).


def test_cld2_types_are_the_reference_name_prefixes():
    german = "Der Ausschuss wird seinen Abschlussbericht über die neue Bahnstrecke im Frühjahr veröffentlichen."
    found = by_type(spans("cld2_doc_v2", german))
    assert set(found) == {"ge", "un"} and found["ge"][0][2] > 0.9 and len(found["un"]) == 2
    assert spans("cld2_doc_v2", "ok ok") == []  # unreliable: nothing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # CLD2 refuses U+0007; the text without it is English.
        ("\x07The quick brown fox jumps over the lazy dog and keeps running through the forest.", "en"),
        # U+0085 alone: transliterated to ASCII, which keeps French readable...
        ("\x85Ceci est une très longue phrase en français, écrite pour vérifier la détection.", "fr"),
        # ...and makes Chinese unreadable: no reliable answer (the reference's result too).
        ("\x85这是一个中文句子，用来测试语言识别，这个句子应该足够长了。", None),
        # Transliteration still refused (U+0007 survives it): control characters removed instead.
        ("\x07\x85这是一个中文句子，用来测试语言识别，这个句子应该足够长了。", "ch"),
    ],
)
def test_cld2_text_it_refuses_is_retried(text, expected):
    found = by_type(spans("cld2_doc_v2", text))
    assert (max(found, key=lambda t: found[t][0][2]) if found else None) == expected


def test_langdetect_is_deterministic_and_leaves_the_global_seed_alone():
    from langdetect import DetectorFactory

    tagger = registry.create("langdetect_doc_v1")
    # Unseeded, langdetect gives this mixed text a different split at almost every call.
    first = tagger.identify([MIXED, MIXED, MIXED])
    assert first[0] == first[1] == first[2]
    assert [lang for lang, _ in first[0]] == ["fr", "en"]
    assert abs(first[0][0][1] - 0.71428) < 1e-4  # the value for seed 0 (the reference's)
    again = tagger.identify(["Hello world.", MIXED])[1]
    assert again == first[0]  # independent of the texts before it
    assert DetectorFactory.seed is None


def test_batch_memo_reuses_only_identical_batches():
    calls = []

    def compute(texts):
        calls.append(list(texts))
        return [[("en", float(len(t)))] for t in texts]

    memo = _langid.BatchMemo()
    assert memo.get(["a", "bb"], compute) == [[("en", 1.0)], [("en", 2.0)]]
    assert memo.get(["a", "bb"], compute) == [[("en", 1.0)], [("en", 2.0)]]
    assert memo.get(["a", "bbb"], compute) == [[("en", 1.0)], [("en", 3.0)]]
    assert memo.get(["a", "bb"], compute) == [[("en", 1.0)], [("en", 2.0)]]  # two batches are kept
    assert memo.get(["c"], compute) == [[("en", 1.0)]]
    assert memo.get(["a", "bbb"], compute) == [[("en", 1.0)], [("en", 3.0)]]
    assert len(calls) == 3


def test_taggers_of_one_library_share_results_but_not_across_documents():
    docs = [Document(id=str(i), text=t, source="s") for i, t in enumerate(["Hello world, how are you?", MIXED])]
    full = registry.create("lingua_doc_v1").predict_batch(docs)
    english = registry.create("lingua_doc_en_v1").predict_batch(docs)
    only = registry.create("lingua_en_only_v1").predict_batch(docs[1:])
    # Lingua's sums may differ in the last bit from one call to the next: compare to 1e-12.
    for doc_full, doc_en in zip(full, english):
        en = next(s.score for s in doc_full if s.type == "en")
        assert [s.type for s in doc_en] == ["en", "not_en"]
        assert [s.score for s in doc_en] == pytest.approx([en, 1.0 - en], abs=1e-12)
    assert only[0][0].score == pytest.approx(english[1][0].score, abs=1e-12)
    assert abs(english[1][0].score - english[0][0].score) > 0.1


def test_tag_cli_writes_every_language_tagger(tmp_path):
    docs = [
        {"id": "1", "text": MIXED, "source": "s"},
        {"id": "2", "text": "", "source": "s"},
        {
            "id": "3",
            "text": "Комитет опубликует свой окончательный доклад о новой железной дороге следующей весной.",
            "source": "s",
        },
    ]
    args = ["tag", "--documents", "documents/*.jsonl.gz", "--taggers", *ALL, "--experiment", "x", "--quiet"]
    runs = []
    for run in ("first", "second"):
        write_jsonl_gz(tmp_path / run / "documents" / "a.jsonl.gz", docs)
        result = run_cli(*args, cwd=tmp_path / run)
        assert result.returncode == 0, result.stderr
        runs.append(read_jsonl(tmp_path / run / "attributes" / "x" / "a.jsonl.gz"))
    # Deterministic: a second run writes the same values (langdetect is seeded; Lingua's last-bit jitter is
    # below the 5 decimals written).
    assert runs[0] == runs[1]
    rows = runs[0]
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    keys = set().union(*(r["attributes"] for r in rows))
    for name in ALL:
        assert any(key.startswith(f"x__{name}__") for key in keys), name
    assert rows[0]["attributes"]["x__cld2_en_paragraph_v2__en"] == [[0, 45, 0.97], [45, 78, 0.0]]
    assert rows[2]["attributes"]["x__cld2_doc_v2__ru"] == [[0, len(docs[2]["text"]), 0.99]]
    assert rows[1]["attributes"]["x__cld3_en_doc_v2__not_en"] == [[0, 0, 1.0]]


def test_each_library_lists_its_taggers_in_one_table():
    # the taggers of one library differ only in level and report: one register_variants table per module, not a
    # class block apiece (lingua_1e2, which filters the pairs, keeps its own class)
    for module in ("lang_cld2", "lang_cld3", "lang_langdetect", "lang_lingua"):
        source = (REPO / "taggers" / f"{module}.py").read_text(encoding="utf-8")
        assert source.count("register_variants(") == 1, module
        assert source.count("@register(") == (1 if module == "lang_lingua" else 0), module
