"""Mixer rules are sandboxed: no environment, no files, no modules, bounded time and memory, for jq and JSONPath.

Every case runs `dolma mix` as a subprocess with a secret in its environment, and checks the exit code, the
message, and that the secret shows up nowhere: stdout, stderr, and every file the run left behind.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dolma.config import build
from mixers.jsonpath_eval import RuleError
from mixers.mix_config import Stream
from mixers.sandbox import RuleFailedError, RuleSandbox, SandboxSettings
from tests.conftest import REPO, read_jsonl, write_jsonl_gz

SECRET_NAME = "DOLMA_TEST_SECRET"
SECRET = "s3cr3t-value-that-must-never-leak-7f3a"
HANG_GUARD = 600  # seconds: only so that a broken sandbox fails the test instead of hanging the suite


def corpus(tmp: Path, n: int = 6) -> Path:
    docs = [{"id": f"d{i}", "text": f"text of document {i} " * 3, "source": "t"} for i in range(n)]
    rows = [{"id": d["id"], "attributes": {"s__t__score": [[0, 4, (i % 10) / 10]]}} for i, d in enumerate(docs)]
    write_jsonl_gz(tmp / "data" / "documents" / "f.jsonl.gz", docs)
    write_jsonl_gz(tmp / "data" / "attributes" / "s" / "f.jsonl.gz", rows)
    return tmp / "data"


def run_mix(tmp: Path, stream: dict, *flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    root = corpus(tmp)
    full = {
        "name": "out",
        "documents": [str(root / "documents" / "*.gz")],
        "attributes": ["s"],
        "output": {"path": str(tmp / "out")},
        "check_attributes": False,
        **stream,
    }
    cfg = tmp / "mix.yaml"
    cfg.write_text(yaml.safe_dump({"streams": [full], "processes": 1}))
    environ = {**os.environ, SECRET_NAME: SECRET, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "dolma", "-c", str(cfg), "mix", *flags],
        capture_output=True,
        text=True,
        env=environ,
        timeout=HANG_GUARD,
    )


def assert_secret_nowhere(result: subprocess.CompletedProcess, *trees: Path) -> None:
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr
    for tree in trees:
        for path in tree.rglob("*") if tree.exists() else ():
            if path.is_file():
                data = path.read_bytes()
                if path.suffix == ".gz":
                    data = gzip.decompress(data)
                assert SECRET.encode() not in data, path


def as_filter(expr: str, syntax: str) -> dict:
    return {"filter": {"include": [expr], "syntax": syntax}}


def as_span(expr: str, syntax: str) -> dict:
    return {"span_replacement": [{"span": expr, "syntax": syntax, "replacement": "<{}>"}]}


# ----------------------------------------------------------------------------------------------------------
# jq: refused at start-up (exit 2), before any file is read
# ----------------------------------------------------------------------------------------------------------

REFUSED_JQ = [
    ("env", f"env.{SECRET_NAME}", "uses `env`"),
    ("env-in-string", f'"\\(env.{SECRET_NAME})"', "uses `env`"),
    ("ENV", f"$ENV.{SECRET_NAME}", "uses $ENV"),
    ("error-ENV", "error($ENV|tostring)", "uses $ENV"),
    ("error-env", "error(env|tostring)", "uses `env`"),
    ("import", 'import "leak" as $s {search: "MODULES"}; $s', "uses `import`"),
    ("include", 'include "leak" {search: "MODULES"}; leak', "uses `include`"),
    ("input", "input", "uses `input`"),
    ("halt_error", "halt_error(1)", "uses `halt_error`"),
    ("search-list", "get_search_list", "uses `get_search_list`"),
]


def modules_dir(tmp: Path) -> Path:
    """A folder with a jq module and a JSON data file that both hold the secret."""
    folder = tmp / "modules"
    folder.mkdir(exist_ok=True)
    (folder / "leak.jq").write_text(f'def leak: "{SECRET}";\n')
    (folder / "leak.json").write_text(f'"{SECRET}"\n')
    return folder


@pytest.mark.parametrize("place", [as_filter, as_span], ids=["filter", "span"])
@pytest.mark.parametrize("name, expr, message", REFUSED_JQ, ids=[c[0] for c in REFUSED_JQ])
def test_jq_environment_files_and_modules_are_refused(tmp_path, place, name, expr, message):
    expr = expr.replace("MODULES", str(modules_dir(tmp_path)))
    result = run_mix(tmp_path, place(expr, "jq"))
    assert result.returncode == 2, result.stderr
    where = "filter.include[0]" if place is as_filter else "span_replacement[0].span"
    assert f"stream 'out' {where}: jq rule" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # refused before any work
    assert_secret_nowhere(result, tmp_path / "out", tmp_path / "data")


def test_jq_never_reads_home_dot_jq(tmp_path):
    """libjq includes $HOME/.jq by itself; in the sandbox HOME is an empty directory."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".jq").write_text(f'def leak: "{SECRET}";\n')
    result = run_mix(tmp_path, as_filter("leak", "jq"), env={"HOME": str(home)})
    assert result.returncode == 2, result.stderr
    assert "jq rule 'leak' does not compile: leak/0 is not defined" in result.stderr
    assert_secret_nowhere(result, tmp_path / "out")


# ----------------------------------------------------------------------------------------------------------
# jq: bounded time and memory, errors name the file, the line and the rule (exit 1)
# ----------------------------------------------------------------------------------------------------------

ENDLESS_JQ = [
    ("recursion", "def f: f; f"),
    ("range", "last(range(1e18))"),
    ("repeat", "[limit(1e18; repeat(1))] | length"),
]


@pytest.mark.parametrize("place", [as_filter, as_span], ids=["filter", "span"])
@pytest.mark.parametrize("name, expr", ENDLESS_JQ, ids=[c[0] for c in ENDLESS_JQ])
def test_jq_that_never_returns_is_stopped(tmp_path, place, name, expr):
    result = run_mix(tmp_path, place(expr, "jq"), "--rule_timeout", "1", "--rule_memory_mb", "0")
    assert result.returncode == 1, result.stderr
    flat = " ".join(result.stderr.split())
    where = "filter.include[0]" if place is as_filter else "span_replacement[0].span"
    assert f"f.jsonl.gz:1: stream 'out' {where} '{expr}': did not finish within 1 s on this document" in flat
    assert "rule_timeout" in flat
    assert not list((tmp_path / "out").glob("out-*"))
    assert_secret_nowhere(result, tmp_path / "out")


def test_jq_runtime_error_names_file_line_and_rule(tmp_path):
    expr = 'if .id == "d2" then error("rule says no: \\(.id)") else true end'
    result = run_mix(tmp_path, as_filter(expr, "jq"))
    assert result.returncode == 1
    flat = " ".join(result.stderr.split())
    assert f"f.jsonl.gz:3: stream 'out' filter.include[0] {expr!r}: failed on this document: rule says no: d2" in flat


def test_jq_memory_is_capped(tmp_path):
    result = run_mix(tmp_path, as_filter("[range(1e10)] | length", "jq"), "--rule_memory_mb", "300")
    assert result.returncode == 1
    flat = " ".join(result.stderr.split())
    assert "f.jsonl.gz:1: stream 'out' filter.include[0]" in flat
    assert "ran out of memory (rule_memory_mb = 300)" in flat


def test_timeouts_in_worker_processes_fail_the_run(tmp_path):
    """processes: 2 (each worker has its own sandbox): every file fails with its own line, nothing hangs."""
    root = corpus(tmp_path)
    for name in ("g", "h"):
        (root / "documents" / f"{name}.jsonl.gz").write_bytes((root / "documents" / "f.jsonl.gz").read_bytes())
        (root / "attributes" / "s" / f"{name}.jsonl.gz").write_bytes(
            (root / "attributes" / "s" / "f.jsonl.gz").read_bytes()
        )
    expr = 'if .id == "d4" then (def f: f; f) else true end'
    result = run_mix(tmp_path, as_filter(expr, "jq"), "--rule_timeout", "1", "--processes", "2")
    assert result.returncode == 1
    flat = " ".join(result.stderr.split())
    for name in ("f", "g", "h"):
        assert f"{name}.jsonl.gz:5: stream 'out' filter.include[0]" in flat


def test_allowed_jq_still_works_and_sees_only_the_document(tmp_path):
    expr = '.attributes.s__t__score[0][2] >= 0.3 and ([paths] | length) > 0 and ($__loc__ | type) == "object"'
    result = run_mix(tmp_path, {**as_filter(expr, "jq"), **as_span(".attributes.s__t__score", "jq")})
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "out" / "out-0000.jsonl.gz")
    assert [r["id"] for r in rows] == ["d3", "d4", "d5"]
    assert all(r["text"].startswith("<text>") for r in rows)


# ----------------------------------------------------------------------------------------------------------
# The sandbox process itself
# ----------------------------------------------------------------------------------------------------------


def _stream(expr: str) -> Stream:
    return build(
        Stream,
        overrides={
            "name": "s",
            "documents": ["x"],
            "output": {"path": "y"},
            "filter": as_filter(expr, "jq")["filter"],
        },
    )


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/<pid>/environ (Linux)")
def test_sandbox_process_has_no_environment(monkeypatch):
    monkeypatch.setenv(SECRET_NAME, SECRET)
    box = RuleSandbox(_stream(".id"), SandboxSettings(timeout=5, memory_mb=0))
    try:
        assert box._proc is not None
        environ = Path(f"/proc/{box._proc.pid}/environ").read_bytes().split(b"\0")
        names = sorted(item.split(b"=", 1)[0] for item in environ if item)
        assert SECRET.encode() not in b"".join(environ)
        assert b"HOME" in names and b"AWS_SECRET_ACCESS_KEY" not in names
        assert set(names) <= {b"HOME", b"LC_CTYPE"}  # Python itself may set LC_CTYPE (C locale coercion)
    finally:
        box.close()


def test_sandbox_recovers_after_a_timeout():
    box = RuleSandbox(_stream('if .id == "slow" then last(range(1e18)) else true end'), SandboxSettings(0.5, 0))
    try:
        with pytest.raises(RuleFailedError, match=r"^f:7: stream 's' filter.include\[0\] .*did not finish"):
            box.decide_batch([{"id": "a"}, {"id": "slow"}], "f", [6, 7])
        assert box.decide_batch([{"id": "a"}, {"id": "b"}], "f", [1, 2]) == [(0, None), (0, None)]
    finally:
        box.close()


def test_sandbox_compile_errors_are_rule_errors():
    with pytest.raises(RuleError, match=r"stream 's' filter.include\[0\]: jq rule '\.a \| \(' does not compile"):
        RuleSandbox(_stream(".a | ("), SandboxSettings(5, 0))


# ----------------------------------------------------------------------------------------------------------
# JSONPath: our own evaluator has no way out, and its cost is linear in the document
# ----------------------------------------------------------------------------------------------------------

REFUSED_JSONPATH = [
    ("env-like", "$.attributes[?(@.x == $ENV)]", "JSONPath rule"),
    ("nesting", "$.attributes[?(" + "(" * 40 + "@.x" + ")" * 40 + ")]", "nested more than 32 levels deep"),
    ("negations", "$.attributes[?(" + "!" * 200 + "@.x)]", "nested more than 32 levels deep"),
    ("root-scan", "$.attributes[?($.attributes[*] > 1)]", "a path from the root ($) may only use .name and [n]"),
    ("nested-root-scan", "$.a[?($.a[?($.a[*] > @)])]", "a path from the root ($) may only use .name and [n]"),
]


@pytest.mark.parametrize("place", [as_filter, as_span], ids=["filter", "span"])
@pytest.mark.parametrize("name, expr, message", REFUSED_JSONPATH, ids=[c[0] for c in REFUSED_JSONPATH])
def test_jsonpath_pathological_or_foreign_expressions_are_refused(tmp_path, place, name, expr, message):
    result = run_mix(tmp_path, place(expr, "jsonpath"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert_secret_nowhere(result, tmp_path / "out")


@pytest.mark.parametrize("place", [as_filter, as_span], ids=["filter", "span"])
@pytest.mark.parametrize("path", [f"$.{SECRET_NAME}", f"$..{SECRET_NAME}"], ids=["child", "recursive-descent"])
def test_jsonpath_names_are_document_fields_only(tmp_path, place, path):
    """`$.DOLMA_TEST_SECRET` (and `$..DOLMA_TEST_SECRET`: recursive descent, accepted since the reference accepts
    it) is a field of the document (absent here), never an environment variable."""
    result = run_mix(tmp_path, place(path, "jsonpath"))
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "out" / "out-0000.jsonl.gz") if place is as_span else []
    assert [r["text"] for r in rows] == [f"text of document {i} " * 3 for i in range(len(rows))]
    assert_secret_nowhere(result, tmp_path / "out")
