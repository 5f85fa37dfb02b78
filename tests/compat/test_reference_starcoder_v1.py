"""Differential test of `code_starcoder_taggers_v1` against the reference toolkit (its `code` extras installed).

One reference `dolma tag` run over: the code-like documents of the sample corpus, each under one extension of the
reference's table (taken in turn); a grid of short texts in the comment syntaxes of many languages, every
extension of the table under the markup ones and half of the others (in alternation), unknown, upper-case, dotted,
null and missing ones under all; the files of tests/data/code, each under half the table's extensions (the other
half under the next); star counts of every accepted kind. (Halves: the reference takes ~4 ms a document, the whole
grid took a minute.)
"""

from __future__ import annotations

import pytest

from taggers.code_starcoder_v1 import lexer_table
from tests.conftest import DATA, SAMPLE, read_jsonl
from tests.helpers.code_corpus import code_doc, missing_metadata_docs, scores_by_name
from tests.helpers.reference import assert_tagger_matches, tag_both, tag_one_both

pytestmark = pytest.mark.reference

TAGGER = "code_starcoder_taggers_v1"
EXTS = sorted(lexer_table())
ODD_EXTS = ["PY", "Py", ".py", "py ", "", "unknownext", "txt2", "JS", "HTML"]  # outside the table: -1

GRID_TEXTS = [
    "# hash comment\nx = 1\n",
    "// slash comment\nint x = 1;\n",
    "/* block\n comment */ int y;\n",
    "-- dash comment\nselect 1;\n",
    "; semi comment\n(a b)\n",
    "% percent comment\nx = 1\n",
    "<!-- html comment --><p>hi</p>\n",
    "(* ml comment *) let x = 1\n",
    "{- hs comment -} x = 1\n",
    "' vb comment\nDim x\n",
    "REM rem comment\nx\n",
    '"""doc"""\n# c\nx = 1  # t\n',
    "#!/bin/sh\n#include <x.h>\n# c\n// d\n/* e */ -- f\n; g\n% h\n",
    "{# jinja #}{{ x }}<!-- c --> {* s *} <%-- j --%>\n",
    "<!-- c --><script>// js\nvar a; /* b */</script><style>/* css */ p {}</style>\n",
    "#import <Foo.h>\n@interface A // c\n@end\n/* d */\nint main() { return 0; } // e\n",
    "-- lean comment\n/-- doc -/\n/- block -/\ntheorem x : True := trivial\n",
    "; lisp\n#| block |#\n(defun f () 1) ; t\n",
    '<?xml version="1.0"?><!-- x --><xsl:template match="/"/>\n',
    "/// doc\n//! inner\n/** jd */\nfn main() {}\r\n",
    "def f(:\n  # unclosed\n",
    "é東京🙂 // ünïcode\n",
]


def _sample_code_docs() -> list[dict]:
    """Sample-corpus documents that hold code, each under the next extension of the table in turn."""
    markers = ("def ", "#include", "function", "</", "{\n", "import ")
    rows = [row for path in sorted((SAMPLE / "documents").rglob("*.jsonl.gz")) for row in read_jsonl(path)]
    code = [row for row in rows if any(m in row["text"] for m in markers)]
    return [
        code_doc(f"{row['id']}-as-{ext}", row["text"], "sample-code", ext=ext, max_stars_count=1)
        for row, ext in zip(code, (EXTS[i % len(EXTS)] for i in range(len(code))))
    ]


def starcoder_v1_corpus() -> dict[str, list[dict]]:
    grid = [
        code_doc(f"grid-{i}-{ext}", text, "grid", ext=ext, max_stars_count=i)
        for i, text in enumerate(GRID_TEXTS)
        for ext in (EXTS if "<" in text else EXTS[i % 2 :: 2]) + ODD_EXTS  # markup under all: the HTML ratio
    ]
    files = [
        code_doc(f"{p.name}-as-{ext}", p.read_text(encoding="utf-8"), "files", ext=ext)
        for k, p in enumerate(sorted((DATA / "code").iterdir()))
        for ext in EXTS[k % 2 :: 2]
    ]
    text = '<?xml version="1.0"?>\n# c\nx = 1'
    missing = [
        *missing_metadata_docs(text),
        code_doc("stars-string", text, "missing", ext="c", max_stars_count="12"),
        code_doc("stars-float", text, "missing", ext="c", max_stars_count=2.5),
        code_doc("number-ext", text, "missing", ext=3),
        *(code_doc(f"empty-{ext}", "", "missing", ext=ext) for ext in ("py", "js", "java", "html", "c", "nope")),
    ]
    return {"sample-code": _sample_code_docs(), "grid": grid, "files": files, "missing": missing}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return tag_both(tmp_path_factory.mktemp("ref-starcoder-v1"), [TAGGER], extra=starcoder_v1_corpus(), sample=False)


def test_matches_reference(tagged):
    assert_tagger_matches(*tagged, TAGGER)


def test_corpus_exercises_every_branch(tagged):
    """The comparison is only worth something if every kind of value occurs."""
    ours, _ = tagged
    values = scores_by_name(ours, TAGGER)
    keys = {"has_xml_template_doc", "num_github_stars_doc", "nl_ratio_doc", "code_to_text_ratio_html_doc"}
    assert set(values) == keys
    assert values["has_xml_template_doc"] == {0.0, 1.0}
    assert {0.0, 1.0, 2.5, 12.0, 41.0} <= values["num_github_stars_doc"]
    assert {-1.0, 0.0} <= values["nl_ratio_doc"] and len(values["nl_ratio_doc"]) > 250
    html = values["code_to_text_ratio_html_doc"]
    assert {-1.0, 0.0, 1.0} <= html and len(html - {-1.0, 0.0, 1.0}) > 5


def test_non_numeric_stars_is_an_error_naming_the_document(tmp_path):
    """Both fail; ours names the document and the field (the reference raises a bare ValueError)."""
    doc = code_doc("bad-stars", "x = 1", "s", ext="py", max_stars_count="many")
    ref, mine = tag_one_both(tmp_path, doc, TAGGER)
    assert ref.returncode != 0 and "ValueError" in ref.stderr
    assert mine.returncode != 0
    assert "bad-stars" in mine.stderr and "max_stars_count" in mine.stderr
