"""Tokenizer files by Hugging Face Hub name: the ones shipped here, and the Hugging Face cache (read offline).

One resolver for `dolma tokens` (mixers) and the tokenizer-based taggers, so a shipped file lives in one place
(`dolma/resources/tokenizers`, provenance in the NOTICE there). Nothing here downloads: a name that is not shipped
is looked up in the local Hugging Face cache, in the layout `huggingface_hub` writes
(`<cache>/models--<org>--<name>/refs/main` -> `snapshots/<revision>/tokenizer.json`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent / "resources" / "tokenizers"
OLMO_TOKENIZER = "allenai/gpt-neox-olmo-dolma-v1_5"
OLMO_TOKENIZER_FILE = RESOURCES / "allenai_gpt-neox-olmo-dolma-v1_5.json"
DOLMA2_TOKENIZER = "allenai/dolma2-tokenizer"

# Hub names of the tokenizers shipped here -> their file.
SHIPPED_TOKENIZERS: dict[str, Path] = {
    OLMO_TOKENIZER: OLMO_TOKENIZER_FILE,
    DOLMA2_TOKENIZER: RESOURCES / "allenai_dolma2.json",
}

# A Hub repository id: "<owner>/<name>" of letters, digits, "-", "_", "." (no path tricks such as "..").
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
_REVISION = re.compile(r"[0-9a-f]{40}")


def shipped_tokenizer(repo_id: str) -> Path | None:
    """The shipped tokenizer.json of a Hub name, or None."""
    return SHIPPED_TOKENIZERS.get(repo_id)


def hub_url(repo_id: str) -> str:
    """Where the Hub publishes a repository (named in error messages)."""
    return f"https://huggingface.co/{repo_id}"


def hf_cache_dirs() -> list[str]:
    """The Hugging Face hub cache directories, in the order `huggingface_hub` chooses them."""
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        dirs.append(os.path.join(os.environ["HF_HOME"], "hub"))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    dirs.append(os.path.join(xdg, "huggingface", "hub"))
    return list(dict.fromkeys(dirs))


def hf_cached_file(repo_id: str, filename: str = "tokenizer.json") -> str | None:
    """`filename` of the Hub model `repo_id` in the local Hugging Face cache (the `main` revision), or None.

    The name comes from a config, so it must look like a repository id before it becomes part of a path.
    """
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        return None
    folder = "models--" + repo_id.replace("/", "--")
    for cache in hf_cache_dirs():
        root = os.path.join(cache, folder)
        try:
            with open(os.path.join(root, "refs", "main"), encoding="utf-8") as fh:
                revision = fh.read().strip()
        except OSError:
            continue
        if not _REVISION.fullmatch(revision):
            continue
        path = os.path.join(root, "snapshots", revision, filename)
        if os.path.isfile(path):
            return path
    return None
