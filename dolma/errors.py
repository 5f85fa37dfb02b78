"""Error types. Every user-facing failure is a `DolmaError`: the CLI prints its message and exits non-zero."""

from __future__ import annotations

from typing import Any


class DolmaError(Exception):
    """Base class for errors caused by configuration or input, reported without a traceback."""

    exit_code = 1


class ConfigError(DolmaError):
    """A configuration file or flag is invalid (unknown field, wrong type, unsafe paths)."""

    exit_code = 2


class PathSafetyError(ConfigError):
    """A configuration would write into a documents tree or over one of its own inputs."""


class BadInputError(DolmaError):
    """A line of an input file cannot be used. Names the file, the 1-based line and the field."""

    def __init__(self, path: str, line: int, reason: str, field: str | None = None):
        self.path = path
        self.line = line
        self.field = field
        self.reason = reason
        where = f"{path}:{line}"
        what = f"field '{field}': {reason}" if field else reason
        super().__init__(f"{where}: {what}")

    def __reduce__(self):
        return (BadInputError, (self.path, self.line, self.reason, self.field))


class CorruptFileError(DolmaError):
    """A compressed input ends early or cannot be decompressed."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        return (CorruptFileError, (self.path, self.reason))


class TaggerError(DolmaError):
    """A tagger cannot be found or created (for example its model file is missing)."""


class S3Error(DolmaError):
    """An S3 request failed: names the object, what was being done, the last error and what to check.

    `code` is the store's error code (or our own: Unreachable, NoCredentials, Failed); `retryable` says
    whether running the file again may help (throttling, 5xx, a lost upload), so executors retry it.
    """

    def __init__(self, url: str, reason: str, code: str = "", retryable: bool = False):
        self.url = url
        self.reason = reason
        self.code = code
        self.retryable = retryable
        super().__init__(f"{url}: {reason}" if url else reason)

    def __reduce__(self):
        return (S3Error, (self.url, self.reason, self.code, self.retryable))


# ----------------------------------------------------------------------------------------------------------
# Raised by the compiled kernels (`dolma._rust`, rust_ext/py/src/errors.rs). The binding imports these classes
# and calls them with keyword arguments, so every field is set by the constructor. This module is their only
# home (`dolma._rust` does not re-export them). Those a `Deduper.run` raises also carry what the run completed
# before the error: `completed_stats` (the statistics and fingerprints of the files it finished) and
# `partial_file` (the filter holds part of the unfinished file's keys, so it is not a state to resume from).
# ----------------------------------------------------------------------------------------------------------


class BloomFilterError(DolmaError, ValueError):
    """Invalid Bloom filter parameters or data (also a ValueError, as callers of `BloomFilter` expect)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)

    def __reduce__(self):
        return (type(self), (self.reason,))


class BloomFilterFormatError(BloomFilterError):
    """Bytes or a file that are not a valid Bloom filter: bad magic, unsupported version or corrupt content."""


class DedupeConfigError(ConfigError, ValueError):
    """The Rust deduper refused its configuration (a bad mode, JSONPath key, n-gram option or unknown field)."""

    def __init__(self, reason: str, completed_stats: dict[str, Any] | None = None, partial_file: bool = False):
        self.reason = reason
        self.completed_stats = completed_stats
        self.partial_file = partial_file
        super().__init__(reason)

    def __reduce__(self):
        return (type(self), (self.reason, self.completed_stats, self.partial_file))


class DedupeInputError(BadInputError, ValueError):
    """A documents line the Rust deduper cannot use (`field` is None when the whole line is bad)."""

    def __init__(
        self,
        path: str,
        line: int,
        reason: str,
        field: str | None = None,
        completed_stats: dict[str, Any] | None = None,
        partial_file: bool = False,
    ):
        self.completed_stats = completed_stats
        self.partial_file = partial_file
        super().__init__(path, line, reason, field)

    def __reduce__(self):
        return (type(self), (self.path, self.line, self.reason, self.field, self.completed_stats, self.partial_file))


class DedupeIOError(DolmaError, OSError):
    """A documents or attributes file the Rust deduper cannot read, decompress or write."""

    def __init__(
        self, path: str, reason: str, completed_stats: dict[str, Any] | None = None, partial_file: bool = False
    ):
        self.path = path
        self.reason = reason
        self.completed_stats = completed_stats
        self.partial_file = partial_file
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.completed_stats, self.partial_file))


class DedupeStopped(KeyboardInterrupt):
    """A `Deduper.run` stopped by a signal: `signal` is the KeyboardInterrupt its handler raised (re-raise it)."""

    def __init__(self, signal: KeyboardInterrupt, completed_stats: dict[str, Any] | None, partial_file: bool):
        self.signal = signal
        self.completed_stats = completed_stats
        self.partial_file = partial_file
        super().__init__(*signal.args)
