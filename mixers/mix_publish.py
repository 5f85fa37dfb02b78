"""The mix driver's planning, checks and publishing: inputs, owned shard names, attribute keys, final shards.

Publishing packs the staged parts, in input-file order, into `<path>/<name>-<NNNN>.jsonl.gz` shards.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re

import msgspec

from dolma import atomic, io
from dolma.documents import attributes_path
from dolma.errors import ConfigError, DolmaError, PathSafetyError
from mixers.mix_config import Stream
from mixers.mix_parts import SHARDS_RECORD_SUFFIX, Manifest, Part, ShardsRecord, compression_setting

# ----------------------------------------------------------------------------------------------------------
# Driver: planning, checks, publishing
# ----------------------------------------------------------------------------------------------------------


def stream_fingerprint(stream: Stream, rate: float | None) -> str:
    """Identifies the stream's settings: staged parts of a different config are never reused."""
    payload = msgspec.json.encode([msgspec.to_builtins(stream), rate])
    return hashlib.sha1(payload).hexdigest()[:12]


def plan_stream(stream: Stream) -> list[str]:
    """The stream's documents files (sorted, de-duplicated), with every attribute file present."""
    if not stream.documents:
        raise ConfigError(f"stream '{stream.name}': no documents given")
    files = io.expand_documents(stream.documents, f"stream '{stream.name}'")
    if stream.attributes:
        missing = []
        for path in files:
            for name in stream.attributes:
                attr = attributes_path(path, name, stream.document_dir)
                if not io.exists(attr):
                    missing.append(f"{attr} (for {path})")
        if missing:
            shown = "\n  ".join(missing[:10])
            more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise ConfigError(f"stream '{stream.name}': missing attribute files:\n  {shown}{more}")
    return files


def stream_inputs(stream: Stream, files: list[str]) -> list[str]:
    """Every file a stream reads: its documents and their attribute files."""
    attrs = [attributes_path(path, name, stream.document_dir) for path in files for name in stream.attributes]
    return [*files, *attrs]


def shards_record_path(out_dir: str, name: str) -> str:
    return io.join(out_dir, f".{name}{SHARDS_RECORD_SUFFIX}")


def recorded_shards(out_dir: str, name: str) -> set[str]:
    """Shard names the stream's record lists (each checked to be a shard name of this stream, nothing else)."""
    path = shards_record_path(out_dir, name)
    if not io.exists(path):
        return set()
    try:
        record = msgspec.json.decode(io.read_bytes(path), type=ShardsRecord)
    except msgspec.DecodeError as exc:
        raise DolmaError(f"{path}: unreadable shard record of stream '{name}' ({exc}); remove it by hand") from None
    prefix = f"{name}-"
    for shard in record.shards:
        if not (shard.startswith(prefix) and _SHARD.fullmatch(shard[len(prefix) :])):
            raise DolmaError(f"{path}: lists {shard!r}, which is not a shard name of stream '{name}'")
    return set(record.shards)


def check_shard_names_owned(stream: Stream, out_dir: str) -> None:
    """Refuse an output directory holding files named like this stream's shards that the stream did not write.

    Publishing would overwrite them, and a rerun removes extra shards: both only ever touch files the
    stream's own record lists.
    """
    owned = recorded_shards(out_dir, stream.name)
    prefix = f"{stream.name}-"
    for entry in io.listdir(out_dir):
        if entry.startswith(prefix) and _SHARD.fullmatch(entry[len(prefix) :]) and entry not in owned:
            raise PathSafetyError(
                f"stream '{stream.name}': {io.join(out_dir, entry)} is named like one of its shards but was not "
                f"written by it (its record {shards_record_path(out_dir, stream.name)} does not list it); mix would "
                "overwrite or remove it: move it away or choose another output.path"
            )


_ATTRIBUTE_KEY = re.compile(rb'"((?:[^"\\\n]|\\.){1,512})"\s*:\s*\[')
"""An attribute key in an attribute file's bytes: a quoted name followed by its span list."""
MAX_SUGGESTION_KEYS = 100_000
"""Distinct attribute keys collected for "did you mean" suggestions (bounds memory on odd files)."""


def check_attribute_keys(stream: Stream, files: list[str], keys: set[str]) -> list[str]:
    """Check that the attribute keys the rules name occur in the stream's attribute files; returns warnings.

    A key that no file contains is an error when a key of the files is a close match (a typo), otherwise a
    warning and the run goes on (the rule may guard an optional attribute, as in `@.dummy && ...`). A cheap byte
    scan (no JSON parsing) that stops as soon as every key has been seen; the files' keys are collected for
    suggestions only when one is missing.
    """
    if not keys or not stream.check_attributes:
        return []
    if not stream.attributes:
        raise ConfigError(
            f"stream '{stream.name}': rules use attributes ({', '.join(sorted(keys))}) but the stream lists no "
            "attribute sets (set 'attributes')"
        )
    cin = compression_setting(stream.compression.input, f"stream {stream.name}", "infer")
    todo = {k: b'"' + k.encode() + b'"' for k in keys}
    found: set[str] = set()
    for path in files:
        for name in stream.attributes:
            attr = attributes_path(path, name, stream.document_dir)
            tail = b""
            for chunk in io.iter_chunks(attr, compression=cin):
                block = tail + chunk
                for key in [k for k, needle in todo.items() if needle in block]:
                    del todo[key]
                if not todo:
                    return []
                if len(found) < MAX_SUGGESTION_KEYS:
                    found.update(m.group(1).decode("utf-8", "replace") for m in _ATTRIBUTE_KEY.finditer(block))
                tail = block[-600:]
    typos = []
    for key in sorted(todo):
        close = difflib.get_close_matches(key, sorted(found), n=1, cutoff=0.8)
        if close:
            typos.append(f"{key!r} (did you mean {close[0]!r}?)")
    if typos:
        raise ConfigError(
            f"stream '{stream.name}': rules name attribute(s) {', '.join(typos)} that no attribute file of the "
            f"sets {stream.attributes} contains (set check_attributes: false to allow it)"
        )
    return [
        f"stream '{stream.name}': no attribute file of the sets {stream.attributes} contains {key!r}; rules "
        "naming it never see it (a guard such as `@.key && ...` is false)"
        for key in sorted(todo)
    ]


_SHARD = re.compile(r"\d{4,}\.jsonl(?:\.gz|\.zst)?")


def publish(stream: Stream, manifests: list[Manifest], extension: str) -> list[str]:
    """Pack staged parts, in input order, into `<path>/<name>-<NNNN><ext>` shards under the size cap.

    Shards of an earlier run that this run does not write again are removed afterwards, but only those the
    stream's shard record lists (see `ShardsRecord`).
    """
    cap = stream.output.max_size_in_bytes
    groups: list[list[Part]] = []
    size = 0
    for manifest in manifests:
        for part in manifest.parts:
            if not groups or (size + part.bytes > cap and groups[-1]):
                groups.append([])
                size = 0
            groups[-1].append(part)
            size += part.bytes
    out_dir = io.normalize(stream.output.path)
    names = [f"{stream.name}-{idx:04d}{extension}" for idx in range(len(groups))]
    record = shards_record_path(out_dir, stream.name)
    before = recorded_shards(out_dir, stream.name)
    atomic.write_bytes(record, msgspec.json.encode(ShardsRecord(shards=sorted(before | set(names)), complete=False)))
    shards = []
    for name, group in zip(names, groups):
        final = io.join(out_dir, name)
        shards.append(final)
        if len(group) == 1 and not io.is_s3(final) and not io.is_s3(group[0].path):
            temp = atomic.temp_name(final)
            os.link(group[0].path, temp)
            os.replace(temp, final)
            continue
        with atomic.AtomicWriter(final, compression=None) as out:
            for part in group:
                with io.open_raw_read(part.path) as raw:
                    while block := raw.read(io.READ_CHUNK):
                        out.write(block)
    for name in sorted(before - set(names)):
        io.remove(io.join(out_dir, name))
    atomic.write_bytes(record, msgspec.json.encode(ShardsRecord(shards=names, complete=True)))
    return shards
