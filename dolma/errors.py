"""Error types. Every user-facing failure is a `DolmaError`: the CLI prints its message and exits non-zero."""

from __future__ import annotations


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
