"""Markers `s3`, `spark`, `reference`, `slow` follow what a test uses (conftest.py `markers_for`), and a test that
uses the S3 server or the reference without its marker fails (`require_marker`), so `make test-fast` (-m "not spark
and not reference and not slow") never runs Spark, the reference toolkit or the whole demo pipeline."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SAMPLE_TESTS = """
import subprocess
import sys

import pytest
from tests.helpers import reference
from tests.helpers.reference import reference_python


def test_plain():
    assert True


def test_uses_the_bucket(s3_bucket):
    pass


def _oracle():
    return reference_python()


def test_calls_the_reference_through_a_helper():
    if False:
        _oracle()


def test_runs_the_cli_on_spark():
    args = ["tag", "--executor", "spark"]
    assert args


@pytest.fixture
def own_server(tmp_path):
    from tests.conftest import S3Server
    if False:
        yield S3Server(tmp_path, 1, tmp_path / "log")
    yield None


def test_with_a_fixture_that_starts_a_server(own_server):
    pass


def test_hides_its_use_of_the_reference():
    getattr(reference, "reference_" + "python")()


def test_runs_the_demo(tmp_path):
    if tmp_path is None:
        subprocess.run([sys.executable, "-m", "dolma.demo", str(tmp_path)])


@pytest.fixture
def demo_output(tmp_path):
    if tmp_path is None:
        subprocess.run([sys.executable, "-m", "dolma.demo", str(tmp_path)])
    yield tmp_path


def test_reads_what_a_fixture_ran_the_demo_for(demo_output):
    pass
"""


def run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample_markers.py").write_text(textwrap.dedent(SAMPLE_TESTS))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider", "--rootdir",
         str(tmp_path), str(tmp_path / "test_sample_markers.py"), *args],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip


def collected(result: subprocess.CompletedProcess) -> set[str]:
    return {line.split("::", 1)[1] for line in result.stdout.splitlines() if "::" in line}


def test_markers_are_assigned_from_fixtures_helpers_and_code(tmp_path):
    assert collected(run_pytest(tmp_path, "--collect-only", "-m", "s3")) == {
        "test_uses_the_bucket",
        "test_with_a_fixture_that_starts_a_server",
    }
    assert collected(run_pytest(tmp_path, "--collect-only", "-m", "reference")) == {
        "test_calls_the_reference_through_a_helper"
    }
    assert collected(run_pytest(tmp_path, "--collect-only", "-m", "spark")) == {"test_runs_the_cli_on_spark"}
    assert collected(run_pytest(tmp_path, "--collect-only", "-m", "slow")) == {
        "test_runs_the_demo",
        "test_reads_what_a_fixture_ran_the_demo_for",
    }


def test_a_test_using_the_reference_without_its_marker_fails(tmp_path):
    result = run_pytest(tmp_path, "-k", "hides_its_use")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "runs the reference toolkit but has no 'reference' marker" in result.stdout


def test_the_suite_marks_its_known_users():
    # tests that start an S3 server in a fixture of their own, run the CLI on Spark, or call the reference
    # through a helper module: none of them may run under `make test-fast`
    fast = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", "-m",
         "not s3 and not spark and not reference", "tests/dolma/test_faults.py", "tests/dolma/test_lifecycle.py",
         "tests/taggers/test_classifiers.py", "tests/taggers/test_quality_taggers.py"],
        capture_output=True, text=True, cwd=REPO,
    ).stdout  # fmt: skip
    selected = {line.strip() for line in fast.splitlines() if "::" in line}
    assert selected, fast
    for nodeid in selected:
        assert not nodeid.startswith("tests/dolma/test_faults.py"), nodeid
        assert "spark" not in nodeid, nodeid
        assert "reference" not in nodeid and "s3" not in nodeid, nodeid


def fast_tier_expression() -> str:
    """The `-m` expression of `make test-fast` (read from the Makefile, so this checks what the target runs)."""
    recipe = (REPO / "Makefile").read_text().split("\ntest-fast:", 1)[1].split("\n\n", 1)[0]
    args = shlex.split(re.search(r"pytest (.*)", recipe).group(1))
    return args[args.index("-m") + 1]


def test_the_fast_tier_runs_in_process_only():
    expression = fast_tier_expression()
    parts = {part.strip() for part in expression.split("and")}
    assert {"not spark", "not reference", "not slow", "not s3", "not process"} <= parts
    fast = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", "-m", expression, "tests"],
        capture_output=True, text=True, cwd=REPO,
    ).stdout  # fmt: skip
    selected = {line.strip() for line in fast.splitlines() if "::" in line}
    assert len(selected) > 900, fast[-3000:]  # the edit loop still runs most of the suite
    # an independent reading of each selected test's own code: no Spark or S3 fixture, no reference run, no demo
    # run, no process started
    for nodeid in sorted(selected):
        path, rest = nodeid.split("::", 1)
        function = functions_of(REPO / path)[rest.split("[", 1)[0].split("::")[-1]]
        assert not {arg.arg for arg in function.args.args} & DIRECT_USES, nodeid
        source = ast.unparse(function.body)  # the code, not the decorators (a parameter may be a refused option)
        assert not [use for use in DIRECT_CALLS if use in source], nodeid


DIRECT_USES = {"spark_context", "standalone_cluster", "demo_root", "s3_server", "s3_bucket", "fault_s3"}
DIRECT_CALLS = [
    "reference_python(",
    "run_reference(",
    "tag_both(",
    "reference_predict(",
    "'dolma.demo'",
    "'--executor', 'spark'",
    "run_cli(",
    "subprocess.",
]
_FUNCTIONS: dict[Path, dict[str, ast.FunctionDef]] = {}


def functions_of(path: Path) -> dict[str, ast.FunctionDef]:
    if path not in _FUNCTIONS:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        _FUNCTIONS[path] = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    return _FUNCTIONS[path]


def test_longest_files_are_collected_first():
    """The files `tests/conftest.py` hands to the workers first exist (a renamed one would silently go last), and
    pytest collects them first, in that order."""
    from tests.conftest import LONGEST_FILES

    assert all((REPO / name).is_file() for name in LONGEST_FILES), LONGEST_FILES
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    files = list(dict.fromkeys(line.split("::", 1)[0] for line in listed.stdout.splitlines() if "::" in line))
    assert files[: len(LONGEST_FILES)] == LONGEST_FILES
