"""Hugging Face Hub tokenizer names (`org/name`) resolved to a `tokenizer.json`, as the reference resolves them.

The reference loads `tokenizer.name_or_path` with `tokenizers.Tokenizer.from_pretrained`, which reads the
Hugging Face cache. Here the cache is read first, in its documented layout, without any network:
`$HF_HUB_CACHE` (default `$HF_HOME/hub`, `$HF_HOME` defaulting to `~/.cache/huggingface`) holds
`models--<org>--<name>/refs/main` (a commit hash) and `models--<org>--<name>/snapshots/<hash>/tokenizer.json`.
When the file is not cached and the hub may be used (`HF_HUB_OFFLINE` unset), it is downloaded once into that
cache with `huggingface_hub`; offline, the error names the file that is missing and where to put it.
"""

from __future__ import annotations

import os
import re

from dolma.errors import ConfigError

TOKENIZER_FILE = "tokenizer.json"
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{7,64}")


def is_hub_name(value: str) -> bool:
    """A Hub repository id (`name` or `org/name`): no path syntax a hostile config could use to leave the cache."""
    return bool(_REPO_ID.fullmatch(value)) and ".." not in value and "--" not in value


def hub_cache_dir() -> str:
    """The Hugging Face hub cache directory, from the same variables `huggingface_hub` reads."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return os.path.join(home, "hub")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached_tokenizer(repo_id: str, cache: str) -> tuple[str | None, str]:
    """(path of the cached tokenizer.json or None, the path where it is expected) for `repo_id` in `cache`."""
    repo_dir = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    try:
        with open(os.path.join(repo_dir, "refs", "main"), encoding="utf-8") as f:
            commit = f.read().strip()
    except OSError:
        commit = ""
    if not _COMMIT.fullmatch(commit):
        return None, os.path.join(repo_dir, "snapshots", "<commit of refs/main>", TOKENIZER_FILE)
    path = os.path.join(repo_dir, "snapshots", commit, TOKENIZER_FILE)
    return (path if os.path.isfile(path) else None), path


def resolve_hub_tokenizer(repo_id: str) -> str:
    """The local tokenizer.json of a Hub tokenizer name: from the cache, else downloaded when the hub may be used."""
    cache = hub_cache_dir()
    found, expected = cached_tokenizer(repo_id, cache)
    if found is not None:
        return found
    where = (
        f"tokenizer.name_or_path: '{repo_id}' is read as a Hugging Face Hub name, and its {TOKENIZER_FILE} is not "
        f"in the Hugging Face cache: missing {expected}"
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
