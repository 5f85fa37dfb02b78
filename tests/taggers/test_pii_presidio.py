"""pii_presidio_v1 with a real Presidio AnalyzerEngine on a blank spaCy pipeline saved in the test (no download).

The reference cannot run this tagger offline (its environment has no Presidio), so there is no differential test:
its span types (EMAIL_ADDRESS, PHONE_NUMBER, IP_ADDRESS) were read from its tagger class's constants; Presidio's
pattern recognizers for those entities need no trained spaCy components.
"""

from __future__ import annotations

import pytest

from dolma import registry
from dolma.documents import Document
from dolma.errors import TaggerError
from tests.conftest import read_jsonl, run_cli, write_jsonl_gz

NAME = "pii_presidio_v1"


@pytest.fixture(scope="module")
def blank_model(tmp_path_factory):
    import spacy

    path = tmp_path_factory.mktemp("spacy") / "blank-en"
    spacy.blank("en").to_disk(path)
    return path


def found(model, text: str) -> list[tuple[str, str]]:
    tagger = registry.create(NAME, {"spacy_model": str(model)})
    return [(s.type, text[s.start : s.end]) for s in tagger.predict(Document(id="d", text=text)) if s.type != "doc"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe@example.com today", [("EMAIL_ADDRESS", "john.doe@example.com")]),
        ("call (212) 555-0123 now", [("PHONE_NUMBER", "(212) 555-0123")]),
        ("server 192.168.1.1 is down", [("IP_ADDRESS", "192.168.1.1")]),
        ("ip 10.0.0.256 is no address", []),
        ("a@b is no e-mail, nor is a@b.notatld", []),
        (
            "mail a.b@example.org from 8.8.8.8",
            [("EMAIL_ADDRESS", "a.b@example.org"), ("IP_ADDRESS", "8.8.8.8")],
        ),
        ("nothing personal here", []),
    ],
)
def test_table(blank_model, text, expected):
    assert found(blank_model, text) == expected


def test_doc_score_and_empty_text(blank_model):
    tagger = registry.create(NAME, {"spacy_model": str(blank_model)})
    text = "mail a.b@example.org from 8.8.8.8"
    spans = tagger.predict(Document(id="d", text=text))
    assert spans[-1].type == "doc" and spans[-1].score == pytest.approx(2 / 4)
    assert all(0 < s.score <= 1 for s in spans[:-1])
    (empty,) = tagger.predict(Document(id="d", text=""))
    assert (empty.type, empty.score) == ("doc", -1.0)


def test_cli_with_model_from_variable(blank_model, tmp_path):
    docs = [{"id": "1", "text": "write to john.doe@example.com today"}, {"id": "2", "text": "no pii"}]
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", docs)
    env = {"DOLMA_PRESIDIO_SPACY_MODEL": str(blank_model)}
    result = run_cli("tag", "--documents", "documents/*.jsonl.gz", "--taggers", NAME, "--quiet", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "attributes" / NAME / "a.jsonl.gz")
    assert rows[0]["attributes"][f"{NAME}__{NAME}__EMAIL_ADDRESS"] == [[9, 29, 1.0]]
    assert f"{NAME}__{NAME}__EMAIL_ADDRESS" not in rows[1]["attributes"]


def test_start_up_error_without_model(tmp_path, monkeypatch):
    """Once, before any file is read: the unreadable second file never gets to report its own error."""
    monkeypatch.delenv("DOLMA_PRESIDIO_SPACY_MODEL", raising=False)
    with pytest.raises(TaggerError, match="has no spaCy model"):
        registry.create(NAME).check()
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", [{"id": "1", "text": "x@example.com "}])
    (tmp_path / "documents" / "b.jsonl.gz").write_bytes(b"not gzip at all")
    result = run_cli("tag", "--documents", "documents/*.jsonl.gz", "--taggers", NAME, "--quiet", cwd=tmp_path)
    assert result.returncode != 0
    err = result.stderr
    assert err.count("has no spaCy model") == 1, err
    assert f"tagger_config.{NAME}.spacy_model" in err and "DOLMA_PRESIDIO_SPACY_MODEL" in err
    assert "github.com/explosion/spacy-models" in err and "b.jsonl.gz" not in err and "Traceback" not in err
    assert not (tmp_path / "attributes").exists()


def test_start_up_error_for_a_model_that_is_not_there(tmp_path):
    with pytest.raises(TaggerError, match="neither a directory nor an installed package"):
        registry.create(NAME, {"spacy_model": str(tmp_path / "missing")}).check()
