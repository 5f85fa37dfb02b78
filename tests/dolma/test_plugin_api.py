"""The public plugin facade: `from dolma import Tagger, TaggerConfig, Document, Span, register` (lazy, cheap)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import dolma
from dolma import registry

REPO = Path(__file__).resolve().parents[2]
FACADE = ("Document", "Span", "Tagger", "TaggerConfig", "TaggerError", "paragraphs", "register")


def test_import_dolma_is_cheap_and_names_load_on_use():
    code = (
        "import json, sys\n"
        "import dolma\n"
        "before = sorted(m for m in sys.modules if m.startswith(('dolma.', 'msgspec')))\n"
        "from dolma import Document, Span, Tagger, TaggerConfig, register\n"
        "import dolma.documents, dolma.registry, dolma.tagger\n"
        "same = [Document is dolma.documents.Document, Span is dolma.documents.Span, Tagger is dolma.tagger.Tagger,\n"
        "        TaggerConfig is dolma.tagger.TaggerConfig, register is dolma.registry.register]\n"
        "print(json.dumps({'before': before, 'same': same}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] == []
    assert result["same"] == [True] * 5


def test_every_public_name_resolves_and_unknown_names_fail():
    for name in FACADE:
        assert getattr(dolma, name) is not None
        assert name in dir(dolma)
    assert set(dolma.__all__) == set(FACADE)
    try:
        dolma.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_a_plugin_written_against_the_facade_registers_and_tags():
    from dolma import Document, Span, Tagger, TaggerConfig, register

    class Options(TaggerConfig, frozen=True, kw_only=True):
        word: str = "the"

    @register("facade_test_word_count_v1", "Counts one word (test plugin).")
    class WordCount(Tagger):
        Config = Options

        def predict(self, doc: Document) -> list[Span]:
            n = doc.text.split().count(self.config.word)
            return [Span(0, len(doc.text), "count", float(n))]

    try:
        tagger = registry.create("facade_test_word_count_v1", {"word": "a"})
        assert isinstance(tagger, WordCount)
        assert tagger.predict(Document(id="1", text="a b a")) == [Span(0, 5, "count", 2.0)]
    finally:
        registry._taggers.pop("facade_test_word_count_v1", None)  # other tests list every registered tagger


def test_builtin_taggers_import_the_public_names_from_the_facade():
    private = {"dolma.documents", "dolma.registry", "dolma.tagger", "dolma.errors"}
    offenders = []
    for path in sorted((REPO / "taggers").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in private:
                names = {alias.name for alias in node.names} & set(FACADE)
                if names:
                    offenders.append(f"{path.name}:{node.lineno}: {node.module} {sorted(names)}")
    assert offenders == []
    users = [
        p.name for p in (REPO / "taggers").glob("*.py") if "from dolma import Document, Span, Tagger" in p.read_text()
    ]
    assert len(users) >= 10
