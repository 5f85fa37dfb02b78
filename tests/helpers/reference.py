"""Run the reference toolkit (AllenAI dolma 1.2.1, in its own virtual environment) as a black-box oracle."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from taggers.language import SHIPPED_LID_MODEL
from tests.conftest import SAMPLE, read_jsonl, require_marker, run_cli, write_jsonl_gz

LID_URL = "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"
# Modules the reference imports that do not install from wheels, given to it over ones that do (see each file).
# Processes of both toolkits' `dolma tag` in `tag_both`: one. The suite keeps both cores busy with two workers, and
# a second process per run loads every model again (a third more CPU time for the language-ID runs); 1 vs 2
# processes giving the same files is tested for each command in its own tests.
PROCESSES = "1"
SHIMS = Path(__file__).resolve().parent / "reference_shims"


def reference_python() -> Path:
    """The reference venv's interpreter (`make reference` creates it; DOLMA_REFERENCE_PYTHON overrides)."""
    require_marker("reference", "runs the reference toolkit")
    repo = Path(__file__).resolve().parents[2]
    path = Path(os.environ.get("DOLMA_REFERENCE_PYTHON") or repo / ".venv-ref" / "bin" / "python")
    if not path.exists():
        pytest.fail(f"reference toolkit not installed at {path}: run `make reference` (make test does it)")
    return path


def reference_env(tmp: Path) -> dict[str, str]:
    """Environment for an offline reference run: its language-ID cache holds the model we ship, and the shims
    (tests/helpers/reference_shims) are importable."""
    cache = tmp / "xdg-cache"
    target = cache / "dolma" / f"{hashlib.sha256(LID_URL.encode()).hexdigest()}.176.bin"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHIPPED_LID_MODEL, target)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    env.update({"XDG_CACHE_HOME": str(cache), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    # The reference's import looks for NLTK's punkt data and, not finding it, downloads it from GitHub (an address
    # the tests must not contact). Its sentence splitter is an untrained PunktSentenceTokenizer(), which reads no
    # data: an empty punkt directory is found and stops the download.
    nltk_data = tmp / "nltk-data"
    (nltk_data / "tokenizers" / "punkt").mkdir(parents=True, exist_ok=True)
    env["NLTK_DATA"] = str(nltk_data)
    env["PYTHONPATH"] = str(SHIMS)
    return env


def run_reference(args: list[str], tmp: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = reference_python().parent / "dolma"
    result = subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=reference_env(tmp), cwd=str(cwd or tmp)
    )
    return result


EDGE_CASES = [
    "",
    " ",
    "   \n\n  \t",
    "word",
    "Hello world.",
    "\n\nleading newlines\n",
    "trailing spaces   \n   \n",
    "windows\r\nline\r\nendings\r\n",
    "Ünïcödé façade — naïve café, 東京は日本の首都です。 🙂🚀 emoji too",
    "Это русский текст. Ceci est un texte français. Dies ist ein deutscher Text.",
    "x" * 20000,
    "long line " * 5000,
    "\n".join(f"line {i}: " + "abc " * (i % 7) for i in range(2000)),
    "tabs\tand\u00a0non-breaking\u2003spaces\u2028line separator\u2029para",
    "punctuation!!! ... ??? --- ((( ))) \"quotes\" 'single' `back`",
    "\x00 control \x07 chars \x1b[0m",
    "a" + "\n" * 100 + "b",
]


# The edge cases whose time grows fastest in the reference's paragraph taggers: 2,000 short lines and 1 MB of text.
MANY_LINES = f"edge-{next(i for i, t in enumerate(EDGE_CASES) if t.startswith('line 0: '))}"
SLOW_EDGES = {MANY_LINES, "edge-1mb"}


def fewer_lines(lines: int) -> dict:
    """The edge case of many short lines cut to its first `lines` lines: for the taggers that leave out the
    whole one (SLOW_EDGES)."""
    text = EDGE_CASES[int(MANY_LINES.split("-")[1])]
    return {"id": f"lines-{lines}", "text": "\n".join(text.split("\n")[:lines]), "source": "edge"}


def edge_case_docs() -> list[dict]:
    docs = [{"id": f"edge-{i}", "text": t, "source": "edge"} for i, t in enumerate(EDGE_CASES)]
    one_mb = ("All work and no play makes Jack a dull boy. " * 24000)[: 1 << 20]
    docs.append({"id": "edge-1mb", "text": one_mb, "source": "edge"})
    return docs


def prepare(tmp: Path, extra: dict[str, list[dict]] | None = None, sample: bool = True, keep=None) -> Path:
    """A corpus under `tmp/corpus`: the sample corpus (unless `sample` is false), the edge cases, and `extra`
    ({subdir: documents}); `keep(doc) -> bool` drops documents a reference tagger cannot handle."""
    root = tmp / "corpus"
    groups: dict[str, list[dict]] = {"edge-cases/edge.jsonl.gz": edge_case_docs()}
    if sample and keep is None:
        shutil.copytree(SAMPLE / "documents", root / "documents")
    elif sample:
        for path in sorted((SAMPLE / "documents").rglob("*.jsonl.gz")):
            groups[str(path.relative_to(SAMPLE / "documents"))] = read_jsonl(path)
    for name, docs in (extra or {}).items():
        groups[f"{name}/{name}.jsonl.gz"] = docs
    for rel, docs in groups.items():
        kept = [d for d in docs if keep is None or keep(d)]
        if kept:
            write_jsonl_gz(root / "documents" / rel, kept)
    return root


def compare_rows(ours: list[dict], theirs: list[dict], where: str, random_valued: bool = False) -> None:
    """Same ids, keys, sources and spans; scores within 1e-4 (or only in [0, 1] for random-valued taggers)."""
    assert [r["id"] for r in ours] == [r["id"] for r in theirs], f"{where}: ids differ"
    for mine, ref in zip(ours, theirs):
        assert set(mine["attributes"]) == set(ref["attributes"]), f"{where} {mine['id']}: keys differ"
        assert mine.get("source") == ref.get("source"), f"{where} {mine['id']}: source differs"
        for key, spans in ref["attributes"].items():
            got = mine["attributes"][key]
            assert len(got) == len(spans), f"{where} {mine['id']} {key}: {got} != {spans}"
            for g, r in zip(got, spans):
                assert g[:2] == r[:2], f"{where} {mine['id']} {key}: span {g} != {r}"
                if random_valued:
                    assert 0.0 <= g[2] <= 1.0
                else:
                    assert abs(g[2] - r[2]) <= 1e-4, f"{where} {mine['id']} {key}: {g[2]} != {r[2]}"


def sample_share(n: int, *always: str):
    """`keep` for `tag_both`: every edge-case document and every document of the sources in `always`, but of the
    sample corpus only one in `n` (by a checksum of its id): for taggers the reference runs slowly."""

    def keep(doc: dict) -> bool:
        return doc["source"] in ("edge", *always) or zlib.crc32(doc["id"].encode()) % n == 0

    return keep


def tag_both(
    tmp: Path,
    taggers: list[str],
    extra: dict[str, list[dict]] | None = None,
    sample: bool = True,
    keep=None,
) -> tuple[Path, Path]:
    """Tag the same corpus (see `prepare`) with the reference and with this toolkit: (ours, theirs) roots."""
    ours = prepare(tmp / "ours", extra, sample, keep)
    theirs = prepare(tmp / "theirs", extra, sample, keep)
    pattern = "documents/**/*.jsonl.gz"
    args = ["tag", "--documents", pattern, "--taggers", *taggers, "--processes", PROCESSES]
    ref = run_reference(args, tmp, cwd=theirs)
    assert ref.returncode == 0, ref.stderr[-3000:]
    mine = run_cli(*args, "--quiet", cwd=ours)
    assert mine.returncode == 0, mine.stderr
    return ours, theirs


def tag_one_both(tmp: Path, doc: dict, tagger: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """Tag one document with the reference (under tmp/theirs) and with this toolkit (tmp/ours), where either may
    fail: (the reference's run, ours)."""
    for side in ("ours", "theirs"):
        write_jsonl_gz(tmp / side / "documents" / "a.jsonl.gz", [doc])
    pattern = "documents/*.jsonl.gz"
    ref = run_reference(["tag", "--documents", pattern, "--taggers", tagger], tmp, tmp / "theirs")
    mine = run_cli("tag", "--documents", pattern, "--taggers", tagger, "--quiet", cwd=tmp / "ours")
    return ref, mine


def compare_outputs(ours: Path, theirs: Path, tagger: str, random_valued: bool = False) -> int:
    """Compare every attribute file of `tagger` (same files, rows, keys, spans); returns the rows compared."""
    ref_files = sorted(p.relative_to(theirs) for p in (theirs / "attributes" / tagger).rglob("*.jsonl.gz"))
    our_files = sorted(p.relative_to(ours) for p in (ours / "attributes" / tagger).rglob("*.jsonl.gz"))
    assert ref_files, f"reference wrote nothing for {tagger}"
    assert our_files == ref_files
    rows = 0
    for rel in ref_files:
        theirs_rows = read_jsonl(theirs / rel)
        compare_rows(read_jsonl(ours / rel), theirs_rows, str(rel), random_valued)
        rows += len(theirs_rows)
    return rows


def assert_tagger_matches(ours: Path, theirs: Path, tagger: str, values: bool = True) -> None:
    """Every attribute file the reference wrote for `tagger` exists here with the same rows."""
    compare_outputs(ours, theirs, tagger, random_valued=not values)


_PREDICT_SCRIPT = """
import json, sys
from dolma.core.data_types import Document
from dolma.core.registry import TaggerRegistry
import dolma.taggers
req = json.load(sys.stdin)
out = {}
for name in req["taggers"]:
    tagger = TaggerRegistry.get(name)()
    rows = []
    for i, text in enumerate(req["texts"]):
        try:
            spans = tagger.predict(Document(source="s", version="v", id=str(i), text=text)).spans
            rows.append([[s.start, s.end, s.type, s.score] for s in spans])
        except Exception as exc:
            rows.append("error: " + type(exc).__name__)
    out[name] = rows
json.dump(out, sys.stdout)
"""


def reference_predict(
    taggers: list[str], texts: list[str], tmp: Path, models: dict[str, str] | None = None
) -> dict[str, list]:
    """Spans of reference taggers on `texts` through its Python API, in one subprocess.

    `models` maps a model URL the reference would download to a local file placed in its cache instead.
    A document the reference fails on gives the string "error: <exception name>".
    """
    import json

    env = reference_env(tmp)
    for url, path in (models or {}).items():
        target = Path(env["XDG_CACHE_HOME"]) / "dolma" / f"{hashlib.sha256(url.encode()).hexdigest()}.bin"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    result = subprocess.run(
        [str(reference_python()), "-c", _PREDICT_SCRIPT],
        input=json.dumps({"taggers": taggers, "texts": texts}),
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)
