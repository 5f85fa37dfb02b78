"""Tokenizer files by Hugging Face Hub name: the ones shipped here, and the Hugging Face cache (read offline).

One resolver for `dolma tokens` (mixers) and the tokenizer-based taggers, so a shipped file lives in one place
(`dolma/resources/tokenizers`, provenance in the NOTICE there). A name that is not shipped is looked up in the
local Hugging Face cache, in the layout `huggingface_hub` writes (`<cache>/models--<org>--<name>/refs/main` ->
`snapshots/<revision>/tokenizer.json`). Only `resolve_hub_tokenizer` (the `tokens` command, as the reference's
`Tokenizer.from_pretrained`) may download into that cache, and only when `HF_HUB_OFFLINE` is unset.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dolma.errors import ConfigError

RESOURCES = Path(__file__).resolve().parent / "resources" / "tokenizers"
OLMO_TOKENIZER = "allenai/gpt-neox-olmo-dolma-v1_5"
OLMO_TOKENIZER_FILE = RESOURCES / "allenai_gpt-neox-olmo-dolma-v1_5.json"
DOLMA2_TOKENIZER = "allenai/dolma2-tokenizer"

# Hub names of the tokenizers shipped here -> their file.
SHIPPED_TOKENIZERS: dict[str, Path] = {
    OLMO_TOKENIZER: OLMO_TOKENIZER_FILE,
    DOLMA2_TOKENIZER: RESOURCES / "allenai_dolma2.json",
}

TOKENIZER_FILE = "tokenizer.json"
# A Hub repository id: "[<owner>/]<name>" of letters, digits, "-", "_", "." (no path tricks such as "..").
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
_REVISION = re.compile(r"[0-9a-f]{40}")


def is_hub_name(value: str) -> bool:
    """A Hub repository id (`name` or `org/name`): no path syntax a hostile config could use to leave the cache."""
    return bool(_REPO_ID.fullmatch(value)) and ".." not in value and "--" not in value


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
    if not is_hub_name(repo_id):
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


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_hub_tokenizer(repo_id: str, field: str = "tokenizer.name_or_path") -> str:
    """The local tokenizer.json of a Hub name: from the cache, else downloaded into it when the hub may be used."""
    found = hf_cached_file(repo_id, TOKENIZER_FILE)
    if found is not None:
        return found
    cache = hf_cache_dirs()[0]  # where huggingface_hub itself would put it
    expected = os.path.join(cache, "models--" + repo_id.replace("/", "--"), "snapshots", "<revision>", TOKENIZER_FILE)
    where = (
        f"{field}: '{repo_id}' is read as a Hugging Face Hub name, and its {TOKENIZER_FILE} is not in the Hugging "
        f"Face cache: missing {expected}"
    )
    if _offline():
        raise ConfigError(
            f"{where} (HF_HUB_OFFLINE is set, so the hub is not contacted). Download it on a machine with network "
            f"(huggingface-cli download {repo_id} {TOKENIZER_FILE}) and copy the cache, set HF_HOME or "
            "HF_HUB_CACHE to the cache that holds it, or give the path of the tokenizer.json"
        )
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ConfigError(f"{where}; downloading it needs the huggingface_hub package") from None
    try:
        return hf_hub_download(repo_id, TOKENIZER_FILE, cache_dir=cache)
    except Exception as exc:  # any failure of the download (network, unknown repository, no such file)
        raise ConfigError(
            f"{where}, and downloading it from the Hugging Face Hub failed ({type(exc).__name__}); check the name "
            "and the network, or give the path of the tokenizer.json"
        ) from None
