"""MinHash parameters computed without datasketch (dolma/minhash_params.py): the permutations and the bands x rows
equal datasketch's (imported here as the oracle), and the dedupe command, the Python API and the Spark driver's
signer import neither datasketch nor scipy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from dolma import minhash as mh
from dolma.errors import ConfigError
from tests.conftest import read_jsonl, write_jsonl_gz

REPO = Path(__file__).resolve().parents[2]

THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 20)] + [0.333, 0.77, 0.8, 0.85, 0.9]
WEIGHTS = [(0.5, 0.5), (0.2, 0.8), (0.8, 0.2), (0.0, 1.0), (1.0, 0.0)]


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
@pytest.mark.parametrize("num_perm", [1, 2, 16, 128, 256, 1000])
@pytest.mark.parametrize("seed", [0, 1, 7, 42, 2**32 - 1])
def test_permutations_equal_datasketch(seed, num_perm, scheme):
    want_a, want_b = MinHash(num_perm=num_perm, seed=seed, scheme=scheme).permutations
    a, b = mh.permutations(num_perm, seed, scheme)
    assert len(a) == len(b) == num_perm
    assert a == [int(x) for x in want_a] and b == [int(x) for x in want_b]


def datasketch_choice(threshold: float, num_perm: int, weights: tuple[float, float]) -> tuple[int, int] | None:
    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    except ValueError:  # datasketch refuses fewer than two permutations or bands
        return None
    return int(lsh.b), int(lsh.r)


def our_choice(threshold: float, num_perm: int, weights: tuple[float, float]) -> tuple[int, int] | None:
    try:
        return mh.lsh_params(threshold, num_perm, weights)
    except ConfigError as exc:
        assert "at least two bands" in str(exc)
        return None


@pytest.mark.parametrize("num_perm", [2, 4, 16, 32, 64, 128, 200, 256])
def test_band_optimiser_equals_datasketch_on_a_dense_grid(num_perm):
    """Every threshold x weights: the same (b, r), or both refuse (then with our own message)."""
    differ = []
    for threshold in THRESHOLDS:
        for weights in WEIGHTS:
            want, got = datasketch_choice(threshold, num_perm, weights), our_choice(threshold, num_perm, weights)
            if want != got:
                differ.append((threshold, weights, want, got))
    assert differ == []


@pytest.mark.parametrize("num_perm", [512, 1024])
@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.9])
def test_band_optimiser_equals_datasketch_beyond_exact_quadrature(num_perm, threshold):
    """Past 511 permutations the Gauss-Legendre rule is no longer exact for every pair's polynomial."""
    assert our_choice(threshold, num_perm, (0.5, 0.5)) == datasketch_choice(threshold, num_perm, (0.5, 0.5))


# No false-positive weight, num_perm x threshold where false-negative masses are 0.5 to 5 units in the last place
# at quad's first node: datasketch's choice rests on how quad handles integrands of a few rounding steps.
ROUNDING_WINDOW = [(100, 0.31), (64, 0.44), (128, 0.25), (16, 0.9), (8, 0.99), (32, 0.68), (256, 0.13), (100, 0.3)]


@pytest.mark.parametrize(("num_perm", "threshold"), ROUNDING_WINDOW)
def test_band_optimiser_without_false_positive_weight_equals_datasketch_at_float_resolution(num_perm, threshold):
    assert our_choice(threshold, num_perm, (0.0, 1.0)) == datasketch_choice(threshold, num_perm, (0.0, 1.0))


def test_band_optimiser_refusals_and_bad_weights_are_config_errors():
    with pytest.raises(ConfigError, match="at least two bands"):
        mh.lsh_params(0.5, 1)
    with pytest.raises(ConfigError, match="at least two bands"):
        mh.lsh_params(0.5, 128, (1.0, 0.0))  # one band of 128 rows: no false positives at all
    with pytest.raises(ConfigError, match=r"minhash\.weights: .*\[0\.3, 0\.3\]"):
        mh.lsh_params(0.5, 128, (0.3, 0.3))
    with pytest.raises(ConfigError, match=r"minhash\.weights"):
        mh.lsh_params(0.5, 128, (-0.5, 1.5))


# Runs in a fresh interpreter, prints which of datasketch / scipy got imported.
LOADED = 'print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("datasketch", "scipy"))))'

API_PROBE = f"""
import json, sys
from dolma import minhash as mh
from dolma.spark_minhash import SignFiles
sigs = mh.signatures(["one two three four five six seven", "one two three four five six eight"])
assert sigs.shape == (2, 128)
assert mh.lsh_params(0.7, 256, (0.2, 0.8)) and mh.lsh_params(0.8, 128, (0.0, 1.0))
mh.MinHashParams(scheme="legacy", num_perm=64).engine_json()
SignFiles(mh.MinHashParams(threshold=0.6), ("text",), False, None)
{LOADED}
"""

CLI_PROBE = f"""
import json, sys
from dolma.cli import main
codes = [main(args) for args in json.loads(sys.argv[1])]
assert codes == [0] * len(codes), codes
{LOADED}
"""


def probe(code: str, *args: str, cwd: Path | None = None) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_python_api_and_spark_signer_import_neither_datasketch_nor_scipy():
    assert probe(API_PROBE) == []


def test_dedupe_minhash_command_imports_neither_datasketch_nor_scipy(tmp_path: Path):
    rng = np.random.default_rng(15)
    words = [f"w{i}" for i in range(300)]
    docs = [{"id": str(i), "text": " ".join(rng.choice(words, 60))} for i in range(40)]
    docs += [{"id": f"copy{i}", "text": docs[i]["text"] + " extra"} for i in range(5)]
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", docs[::2])
    write_jsonl_gz(tmp_path / "documents" / "b.jsonl.gz", docs[1::2])
    write_jsonl_gz(tmp_path / "evals" / "documents" / "e.jsonl.gz", docs[:3])
    common = ["--documents", str(tmp_path / "documents" / "*.jsonl.gz"), "--dedupe.minhash.attribute_name", "dup"]
    runs = [
        ["dedupe", *common, "--dedupe.name", "nd", "--dedupe.minhash.threshold", "0.7"],
        ["dedupe", *common, "--dedupe.name", "nd2", "--processes", "2", "--dedupe.minhash.weights", "[0.3, 0.7]"],
        [
            "dedupe", *common, "--dedupe.name", "decon",
            "--dedupe.minhash.eval_documents", str(tmp_path / "evals" / "documents" / "*.jsonl.gz"),
        ],
    ]  # fmt: skip
    assert probe(CLI_PROBE, json.dumps(runs), cwd=tmp_path) == []
    marked = [
        row["id"]
        for path in sorted((tmp_path / "attributes" / "nd").glob("*.jsonl.gz"))
        for row in read_jsonl(path)
        if "dup" in row["attributes"]
    ]
    assert sorted(marked) == [f"copy{i}" for i in range(5)]
