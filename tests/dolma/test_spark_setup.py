"""Setting up Spark runs: what to install when pyspark or spark-submit is missing, and a `dolma/` source tree in
the working directory (which Spark's Python workers would import instead of the package) detected on the driver.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LOOPBACK_SPARK_CONF, REPO, make_docs, run_cli, write_jsonl_gz

# Makes `import pyspark` fail in the child, as in an environment where it is not installed.
NO_PYSPARK = """
import sys

class _NoPyspark:
    def find_spec(self, name, path=None, target=None):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoPyspark())
"""


@pytest.fixture
def without_pyspark(tmp_path) -> dict[str, str]:
    site = tmp_path / "no-pyspark"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_PYSPARK)
    return {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def _corpus(tmp_path: Path) -> str:
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", make_docs(3))
    return str(tmp_path / "documents" / "*.gz")


def test_executor_spark_without_pyspark_says_what_to_install(tmp_path, without_pyspark):
    docs = _corpus(tmp_path)
    runs = {
        "tag": run_cli("tag", "--documents", docs, "--taggers", "char_length_v1", "--executor", "spark",
                       env=without_pyspark),
        "dedupe": run_cli("dedupe", "--documents", docs, "--dedupe.name", "dd",
                          "--dedupe.paragraphs.attribute_name", "dup", "--bloom_filter.file", str(tmp_path / "f.bin"),
                          "--bloom_filter.estimated_doc_count", "100", "--bloom_filter.desired_false_positive_rate",
                          "0.01", "--executor", "spark", env=without_pyspark),
    }  # fmt: skip
    for command, result in runs.items():
        assert result.returncode == 1, f"{command}: {result.stderr}"
        assert "executor spark needs pyspark" in result.stderr, f"{command}: {result.stderr}"
        assert "pip install 'dolma-toolkit[spark]'" in result.stderr
        assert "Traceback" not in result.stderr


def test_spark_submit_wrapper_without_spark_submit_says_what_to_install(tmp_path, without_pyspark):
    env = {k: v for k, v in os.environ.items() if k != "SPARK_HOME"}
    env.update(without_pyspark, PATH=str(tmp_path / "empty-bin"))
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from dolma.spark_driver import submit; sys.exit(submit())",
         "--master", "local[1]", "--", "tag", "--help"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 127, result.stderr
    assert "spark-submit not found" in result.stderr and "pip install 'dolma-toolkit[spark]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_spark_from_a_folder_holding_a_source_tree_without_the_extension_is_refused(tmp_path):
    """Spark's Python workers put the working directory first on their path: a checkout there, not built,
    would be imported instead of the installed package, and every task would fail deep in the executors."""
    work = tmp_path / "checkout"
    (work / "dolma").mkdir(parents=True)
    for source in (REPO / "dolma").glob("*.py"):
        shutil.copy(source, work / "dolma" / source.name)
    docs = _corpus(tmp_path)
    dolma = Path(sys.executable).parent / "dolma"  # the installed command, as a user runs it
    conf = json.dumps(LOOPBACK_SPARK_CONF)
    result = subprocess.run(
        [str(dolma), "tag", "--documents", docs, "--taggers", "char_length_v1", "--executor", "spark",
         "--spark.master", "local[1]", "--spark.conf", conf],
        capture_output=True, text=True, cwd=work, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"{work} holds a dolma/ source tree without its compiled extension" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "attributes").exists()


def test_spark_extra_installs_pyspark():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    with open(REPO / "pyproject.toml", "rb") as fh:
        extras = tomllib.load(fh)["project"]["optional-dependencies"]
    assert any(dep.startswith("pyspark") for dep in extras["spark"])
    assert any(dep.startswith("pyspark") for dep in extras["dev"])
