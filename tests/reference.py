"""Run the reference toolkit (AllenAI dolma 1.2.1, in its own virtual environment) as a black-box oracle."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from taggers.language import SHIPPED_LID_MODEL

LID_URL = "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"


def reference_python() -> Path:
    """The reference venv's interpreter (`make reference` creates it; DOLMA_REFERENCE_PYTHON overrides)."""
    repo = Path(__file__).resolve().parent.parent
    path = Path(os.environ.get("DOLMA_REFERENCE_PYTHON") or repo / ".venv-ref" / "bin" / "python")
    if not path.exists():
        pytest.fail(f"reference toolkit not installed at {path}: run `make reference` (make test does it)")
    return path


def reference_env(tmp: Path) -> dict[str, str]:
    """Environment for an offline reference run: its language-ID cache holds the model we ship."""
    cache = tmp / "xdg-cache"
    target = cache / "dolma" / f"{hashlib.sha256(LID_URL.encode()).hexdigest()}.176.bin"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHIPPED_LID_MODEL, target)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    env.update({"XDG_CACHE_HOME": str(cache), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


def run_reference(args: list[str], tmp: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = reference_python().parent / "dolma"
    result = subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=reference_env(tmp), cwd=str(cwd or tmp)
    )
    return result
