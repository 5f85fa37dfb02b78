"""Every tagger name the reference toolkit registers resolves here (issue 18: `dolma list` shows all of them)."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import run_cli
from tests.helpers.reference import reference_env, reference_python

_NAMES = """
import json
from dolma.core.registry import TaggerRegistry
import dolma.taggers
print(json.dumps(sorted(name for name, _ in TaggerRegistry.items())))
"""


def test_every_reference_tagger_name_is_listed(tmp_path):
    result = subprocess.run(
        [str(reference_python()), "-c", _NAMES],
        capture_output=True,
        text=True,
        env=reference_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[nltk_data]" not in result.stderr, result.stderr  # no download tried (see reference_env)
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(theirs) == 99
    listed = run_cli("list", "--plain")
    assert listed.returncode == 0, listed.stderr
    ours = {line.split("\t")[0] for line in listed.stdout.splitlines()}
    assert [name for name in theirs if name not in ours] == []
