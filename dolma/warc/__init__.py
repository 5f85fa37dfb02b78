"""Web crawls (WARC / WET files) to documents: reading records, decoding payloads, HTML to text, ids.

The command (`dolma.commands.warc`) only plans files and schedules them; everything about WARC lives here:

- `reader`: streams the records of one file (local or S3, plain or per-record gzip), with the checks that
  tell a damaged file from a finished one.
- `extract`: HTTP body decoding (chunked, gzip / deflate), charset detection, the HTML linearizers.
- `ids`: document ids, timestamps and URL normalisation (pure functions, no optional dependency).

The parsing libraries (fastwarc, resiliparse, trafilatura) are an optional extra; `require()` explains how
to install them instead of failing with an import error deep inside a worker.
"""

from __future__ import annotations

from dolma.errors import ConfigError

INSTALL_HINT = "pip install 'dolma-toolkit[warc]'"


def require(*modules: str) -> None:
    """Fail with an installation hint when a module of the `warc` extra is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"dolma warc needs the optional package(s) {', '.join(missing)}, which are not installed; install them "
            f"with: {INSTALL_HINT}"
        )
