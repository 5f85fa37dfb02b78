"""Golden files for end-to-end commands on the sample corpus: `python tests/helpers/golden.py` regenerates them.

Regenerate only on purpose (a deliberate output change), and review the diff: the goldens are checked
against the reference toolkit by tests/compat/test_reference_tag.py, so a change here must be explained.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample"
EXPECTED = REPO / "tests" / "data" / "expected"

TAG_TAGGERS = [
    "char_length_v1",
    "char_length_with_paragraphs_v1",
    "whitespace_tokenizer_v1",
    "whitespace_tokenizer_with_paragraphs_v1",
    "bytes_length_v1",
    "random_number_v1",
    "ft_lang_id_en_doc_v2",
]


def run_tag(root: Path) -> Path:
    """Tag a copy of the sample corpus under `root`; returns the attributes directory."""
    shutil.copytree(SAMPLE / "documents", root / "documents")
    cmd = [sys.executable, "-m", "dolma", "tag", "--documents", "documents/**/*.jsonl.gz"]
    cmd += ["--taggers", *TAG_TAGGERS, "--processes", "2", "--quiet"]
    subprocess.run(cmd, cwd=root, check=True)
    return root / "attributes"


def regenerate() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        attributes = run_tag(Path(tmp))
        target = EXPECTED / "tag"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(attributes, target)
    print(f"wrote {target}")


if __name__ == "__main__":
    regenerate()
