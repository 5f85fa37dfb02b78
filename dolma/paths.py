"""Path safety, in one place for every command: which names may become path components, where outputs may
be written, and which files and directories a command may delete.

Why a module of its own: `dolma.io` is mechanism (read, write, list, remove bytes, locally or on S3) and
must stay usable for anything; these are the policies every command shares, and keeping them together is
what makes "every command applies the same rule" checkable. The rules:

- A name taken from a config that becomes a directory or file name (an experiment, an attribute set, a
  stream, `dedupe.name`, `document_dir`) is a single path component: not empty, not `.` or `..`, no `/`,
  `\\` or NUL (`check_name`).
- Every output is compared with every input after resolving `..` and symbolic links (`os.path.realpath`
  locally; on S3 the key with `.`, `..` and empty components collapsed), never as raw strings
  (`check_outputs`): an output may not be an input, lie inside a `<root>/<document_dir>/` tree of an
  input, or sit in a directory that holds input files; an output directory may not hold an input.
- A command deletes only what it can prove it created: files listed by a manifest it wrote, or a
  directory it claimed with a marker file when it created it (`claim_dir`, `remove_claimed_dir`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable

from dolma import atomic, io
from dolma.errors import PathSafetyError

OWNER_MARKER = ".dolma-owned"
"""File written into a directory a command creates for itself; only such a directory is ever removed whole."""


# ----------------------------------------------------------------------------------------------------------
# Names
# ----------------------------------------------------------------------------------------------------------


def name_problem(value: str) -> str | None:
    """Why `value` cannot be used as one directory or file name (None when it can)."""
    if not value:
        return "it is empty"
    if value in (".", ".."):
        return f"'{value}' names a directory relative to another, not a name of its own"
    if "/" in value or "\\" in value:
        return "it contains a path separator"
    if "\0" in value:
        return "it contains a NUL character"
    return None


def check_name(value: str, field: str) -> str:
    """Return `value` when it is a single path component; raise PathSafetyError naming the field otherwise."""
    problem = name_problem(value)
    if problem is not None:
        raise PathSafetyError(
            f"{field}: {value!r} is not a valid name ({problem}); it becomes a directory or file name, so it must "
            "be a single path component: not empty, not '.' or '..', without '/', '\\' or NUL"
        )
    return value


def check_path(value: str, field: str) -> str:
    """Return a path given for an output when it names something: an empty one would mean "here", silently."""
    if not value.strip():
        raise PathSafetyError(f"{field}: the path is empty; give the directory or file to write")
    if "\0" in value:
        raise PathSafetyError(f"{field}: {value!r} contains a NUL character")
    return value


# ----------------------------------------------------------------------------------------------------------
# Canonical paths
# ----------------------------------------------------------------------------------------------------------


def normalize_s3(url: str) -> str:
    """`s3://bucket/key` with empty, `.` and `..` key components collapsed (`..` stops at the bucket)."""
    bucket, key = io.split_s3(url)
    parts: list[str] = []
    for part in key.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return f"s3://{bucket}/" + "/".join(parts)


class _Resolver:
    """`canonical` with the parent directories' real paths cached (one lstat per file instead of one per level)."""

    def __init__(self) -> None:
        self._dirs: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        if io.is_s3(path):
            return normalize_s3(path)
        path = os.path.abspath(os.path.expanduser(path))
        if os.path.islink(path):
            return os.path.realpath(path)
        parent, name = os.path.split(path)
        if not name:
            return os.path.realpath(path)
        real_parent = self._dirs.get(parent)
        if real_parent is None:
            real_parent = self._dirs[parent] = os.path.realpath(parent)
        if name in (".", ".."):
            return os.path.realpath(os.path.join(real_parent, name))
        return os.path.join(real_parent, name)


def canonical(path: str) -> str:
    """The location a path really names: symbolic links and `..` resolved locally, the key collapsed on S3."""
    return _Resolver()(path)


def is_within(path: str, directory: str) -> bool:
    """True when canonical `path` is `directory` or below it (both canonical)."""
    directory = directory.rstrip("/")
    return path == directory or path.startswith(directory + "/")


def documents_root(path: str, document_dir: str = "documents") -> str | None:
    """`<root>/<document_dir>` of a documents path (its last such component), or None without one."""
    marker = f"/{document_dir.strip('/')}/"
    idx = path.rfind(marker)
    return path[: idx + len(marker) - 1] if idx >= 0 else None


def _dirname(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0]


def check_outputs(
    command: str,
    inputs: Iterable[str],
    files: Iterable[str] = (),
    dirs: Iterable[str] = (),
    document_dir: str | None = "documents",
) -> None:
    """Refuse outputs that could overwrite or mix with the inputs; the one output check every command runs.

    `files` are output files, `dirs` output directories (everything below them is written by the command).
    Paths are compared after resolving `..` and symbolic links, so `attributes/../documents`, a destination
    that is a link to a documents folder, or `s3://b/x/../documents` are seen for what they are. Refused:
    an output file that is an input; an output inside a documents tree (`<root>/<document_dir>/` of any
    input, resolved both before and after links); an output file in a directory that directly holds an
    input; an output directory that is, or contains, an input.
    """
    resolve = _Resolver()
    real_inputs: dict[str, str] = {}
    trees: dict[str, str] = {}
    for raw in inputs:
        real = resolve(raw)
        real_inputs.setdefault(real, raw)
        if document_dir:
            for candidate in (io.normalize(raw), real):
                root = documents_root(candidate, document_dir)
                if root is not None:
                    trees.setdefault(resolve(root), root)
    input_dirs = {_dirname(real): raw for real, raw in real_inputs.items()}

    def it(out: str, real: str) -> str:
        """The subject of a refusal: the output, or what it resolves to when links or '..' changed it."""
        if real.rstrip("/") == io.normalize(out).rstrip("/"):
            return "it"
        return f"it resolves to {real} (after '..' and symbolic links), which"

    def check_tree(out: str, real: str) -> None:
        for tree, raw_tree in trees.items():
            if is_within(real, tree):
                raise PathSafetyError(
                    f"{command}: refusing to write {out}: {it(out, real)} is inside the documents tree {raw_tree}; "
                    "outputs go to a separate tree (e.g. <root>/attributes/<name>/)"
                )

    for out in files:
        real = resolve(out)
        if real in real_inputs:
            raise PathSafetyError(
                f"{command}: refusing to write {out}: {it(out, real)} is one of the input files ({real_inputs[real]})"
            )
        check_tree(out, real)
        parent = _dirname(real)
        if parent in input_dirs:
            raise PathSafetyError(
                f"{command}: refusing to write {out}: {it(out, real)} is in {parent}, a directory that holds input "
                f"files (e.g. {input_dirs[parent]}); write outputs to a directory of their own"
            )
    for out in dirs:
        real = resolve(out)
        for real_input, raw in real_inputs.items():
            if is_within(real_input, real):
                raise PathSafetyError(
                    f"{command}: refusing to write into {out}: {it(out, real)} holds the input file {raw}; choose "
                    "a destination outside the inputs"
                )
        check_tree(out, real)


# ----------------------------------------------------------------------------------------------------------
# Deleting only what a command created
# ----------------------------------------------------------------------------------------------------------


def claim_dir(path: str, command: str) -> None:
    """Create `path` as a directory owned by `command` (an OWNER_MARKER inside), so it may later be removed.

    An existing directory is accepted when it carries the marker (an earlier run of ours) or is empty (a
    run killed between creating it and writing the marker); anything else is refused, never cleared.
    """
    marker = io.join(path, OWNER_MARKER)
    if io.exists(marker):
        return
    check_claimable(path, command)
    io.makedirs(path)
    atomic.write_bytes(marker, json.dumps({"created_by": f"dolma {command}"}).encode() + b"\n")


def check_claimable(path: str, command: str) -> None:
    """Fail early (at planning) when `claim_dir(path)` would refuse the directory later."""
    if io.exists(io.join(path, OWNER_MARKER)):
        return
    entries = io.listdir(path)
    if entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise PathSafetyError(
            f"{command}: {path} exists and holds files it did not create ({shown}); it needs that directory for "
            f"its own temporary files (and removes it afterwards) and does not clear a directory without its "
            f"{OWNER_MARKER} marker: move it away or delete it yourself"
        )


def remove_claimed_dir(path: str) -> None:
    """Remove a directory made by `claim_dir`, its marker last (so a killed removal can be finished later).

    A directory without the marker is left alone (an empty one is removed: nothing to lose).
    """
    marker = io.join(path, OWNER_MARKER)
    if io.is_s3(path):
        if not io.exists(marker):
            return
        keys = io.list_prefix(path)
        for key in keys:
            if key != marker:
                io.remove(key)
        io.remove(marker)
        return
    if not os.path.isdir(path):
        return
    if not os.path.exists(marker):
        with contextlib.suppress(OSError):
            os.rmdir(path)
        return
    for top, subdirs, names in os.walk(path, topdown=False):
        for name in names:
            full = os.path.join(top, name)
            if full != marker:
                os.remove(full)
        for sub in subdirs:
            full = os.path.join(top, sub)
            if os.path.islink(full):
                os.remove(full)
            else:
                os.rmdir(full)
    os.remove(marker)
    os.rmdir(path)
