"""The Rust binding's contract with Python: typed exceptions and one source of config defaults.

The exception classes live in dolma/errors.py as subclasses of the toolkit's error types; the binding raises them
with every field set by the constructor (no positional tuples, no attributes added afterwards), so `except
BadInputError` / `ConfigError` / `DolmaError` catch them and callers read `path`, `line`, `field`, `reason`,
`completed_stats`, `partial_file` by name. The dedupe section crosses into Rust complete: Python holds every
default, Rust refuses a missing or unknown field.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dolma import _rust
from dolma._rust import BloomFilter, DedupeKeys, Deduper
from dolma.config import build
from dolma.dedupe.config import DedupeSection
from dolma.dedupe.plan import _rust_config
from dolma.errors import (
    BadInputError,
    BloomFilterError,
    BloomFilterFormatError,
    ConfigError,
    DedupeConfigError,
    DedupeInputError,
    DedupeIOError,
    DedupeStopped,
    DolmaError,
)

REPO = Path(__file__).resolve().parents[2]
PARAGRAPHS = {"name": "dd", "paragraphs": {"attribute_name": "dup"}}
NGRAMS = {"name": "dd", "paragraphs": {"attribute_name": "dup", "by_ngram": {"ngram_length": 3}}}
DOCUMENTS = {"name": "dd", "documents": {"attribute_name": "dup", "key": "$.id"}}


def _config(overrides: dict) -> str:
    return _rust_config(build(DedupeSection, overrides=overrides))


def _write(path: Path, lines: list[str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def _doc(i: int, text: str) -> str:
    return json.dumps({"id": str(i), "text": text, "source": "s"})


# --- Typed exceptions ---------------------------------------------------------------------------------------


def test_the_toolkits_error_classes_live_in_dolma_errors_only():
    """One home for the classes: the binding raises the dolma.errors ones and does not re-export them."""
    bloom = (BloomFilterError, BloomFilterFormatError)
    for cls in (*bloom, DedupeConfigError, DedupeInputError, DedupeIOError, DedupeStopped):
        assert cls.__module__ == "dolma.errors" and not hasattr(_rust, cls.__name__)
    assert issubclass(DedupeInputError, BadInputError) and issubclass(DedupeConfigError, ConfigError)
    assert issubclass(DedupeIOError, DolmaError) and issubclass(DedupeIOError, OSError)
    assert issubclass(BloomFilterFormatError, BloomFilterError) and issubclass(BloomFilterError, DolmaError)
    assert issubclass(DedupeStopped, KeyboardInterrupt)


def test_a_bad_line_is_a_bad_input_error_with_its_fields_and_what_the_run_completed(tmp_path):
    good = _write(tmp_path / "documents" / "a.jsonl", [_doc(1, "one"), _doc(2, "two")])
    bad = _write(tmp_path / "documents" / "b.jsonl", [_doc(3, "three"), '{"id": "4", "text": 5}'])
    outputs = [str(tmp_path / "out" / "a.jsonl"), str(tmp_path / "out" / "b.jsonl")]
    with pytest.raises(BadInputError) as info:
        Deduper(_config(PARAGRAPHS)).run(BloomFilter(1 << 12, 2), [good, bad], outputs)
    exc = info.value
    assert type(exc) is DedupeInputError
    assert (exc.path, exc.line, exc.field) == (bad, 2, "text")
    assert exc.reason == "expected a string, got a number"
    assert str(exc) == f"{bad}:2: field 'text': expected a string, got a number"
    assert exc.completed_stats is not None and exc.completed_stats["files"] == 1
    assert exc.completed_stats["documents"] == 2 and len(exc.completed_stats["fingerprints"]) == 1
    assert exc.partial_file is False
    # Spark sends it from the executors pickled: every field survives.
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is DedupeInputError and vars(copy) == vars(exc) and str(copy) == str(exc)


def test_a_whole_bad_line_has_no_field(tmp_path):
    path = _write(tmp_path / "documents" / "a.jsonl", ["not json"])
    with pytest.raises(DedupeInputError) as info:
        Deduper(_config(DOCUMENTS)).run(BloomFilter(1 << 12, 2), [path], [str(tmp_path / "out.jsonl")])
    assert info.value.field is None and info.value.line == 1 and "invalid JSON" in info.value.reason


def test_a_missing_key_is_a_bad_input_error_naming_the_key(tmp_path):
    path = _write(tmp_path / "documents" / "a.jsonl", [_doc(1, "one")])
    config = {"name": "dd", "documents": {"attribute_name": "dup", "key": "$.metadata.url"}}
    with pytest.raises(BadInputError) as info:
        Deduper(_config(config)).run(BloomFilter(1 << 12, 2), [path], [str(tmp_path / "out.jsonl")])
    assert (info.value.field, info.value.line) == ("metadata.url", 1)
    assert info.value.reason == "missing (the dedupe key must be present in every document)"


def test_the_spark_key_maker_raises_the_same_error(tmp_path):
    path = _write(tmp_path / "documents" / "a.jsonl", [_doc(1, "one"), "[1, 2]"])
    with pytest.raises(BadInputError) as info:
        DedupeKeys(_config(PARAGRAPHS)).keys_of_file(path, 0, 4)
    assert type(info.value) is DedupeInputError and (info.value.path, info.value.line) == (path, 2)
    assert info.value.completed_stats is None  # not a Deduper.run


def test_an_unreadable_input_is_a_dolma_error_and_an_os_error(tmp_path):
    missing = str(tmp_path / "documents" / "gone.jsonl")
    with pytest.raises(DolmaError) as info:
        Deduper(_config(PARAGRAPHS)).run(BloomFilter(1 << 12, 2), [missing], [str(tmp_path / "out.jsonl")])
    exc = info.value
    assert isinstance(exc, DedupeIOError) and isinstance(exc, OSError)
    assert exc.path == missing and exc.reason and str(exc) == f"{missing}: {exc.reason}"
    assert exc.completed_stats is not None and exc.completed_stats["files"] == 0


def test_a_refused_configuration_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        Deduper(_config({"name": "dd", "documents": {"attribute_name": "dup", "key": "$..id"}}))
    assert type(info.value) is DedupeConfigError and info.value.reason.startswith("dedupe.documents.key")
    assert info.value.completed_stats is None and isinstance(info.value, ValueError)
    with pytest.raises(DedupeConfigError) as info:
        _rust.json_path_steps("$[")
    assert info.value.reason == str(info.value)


def test_bloom_filter_errors_carry_their_reason():
    with pytest.raises(DolmaError) as info:
        BloomFilter(1024, 99)
    assert type(info.value) is BloomFilterError and isinstance(info.value, ValueError)
    assert info.value.reason == f"num_hashes must be between 1 and {_rust.MAX_HASHES}, got 99"
    with pytest.raises(BloomFilterError) as info:
        BloomFilter.from_bytes(b"not a filter")
    assert type(info.value) is BloomFilterFormatError and info.value.reason == str(info.value)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is BloomFilterFormatError and copy.reason == info.value.reason


class _Stop(KeyboardInterrupt):
    """What the test's signal handler raises (as the CLI's SIGTERM handler raises `Terminated`)."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop()


def test_a_signal_during_a_run_is_a_dedupe_stopped_with_the_signal_and_what_completed(tmp_path):
    """The second input is a FIFO: the run is inside it (blocked reading) when the signal arrives, whatever the
    machine's speed. The handler's KeyboardInterrupt comes back as DedupeStopped holding it and the progress."""
    first = _write(tmp_path / "documents" / "a.jsonl", [_doc(1, "one"), _doc(2, "two")])
    fifo = tmp_path / "documents" / "b.jsonl"
    os.mkfifo(fifo)
    outputs = [str(tmp_path / "out" / "a.jsonl"), str(tmp_path / "out" / "b.jsonl")]

    def feed() -> None:
        with open(fifo, "w") as fh:  # opens once the run opened the FIFO to read it
            fh.write(_doc(3, "three") + "\n")
            fh.flush()
            os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, _raise_stop)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            Deduper(_config(PARAGRAPHS)).run(BloomFilter(1 << 12, 2), [first, str(fifo)], outputs)
    finally:
        feeder.join()
        signal.signal(signal.SIGUSR1, previous)
    exc = info.value
    assert type(exc) is DedupeStopped and type(exc.signal) is _Stop
    assert exc.completed_stats is not None and exc.completed_stats["files"] >= 1
    assert exc.completed_stats["documents"] >= 2 and isinstance(exc.partial_file, bool)


# --- One source of config defaults --------------------------------------------------------------------------


def _leaves(data: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, value in data.items():
        out.append((*prefix, name))
        if isinstance(value, dict):
            out.extend(_leaves(value, (*prefix, name)))
    return out


@pytest.mark.parametrize("mode", [PARAGRAPHS, NGRAMS, DOCUMENTS], ids=["paragraphs", "ngrams", "documents"])
def test_python_sends_every_field_rust_requires_and_no_other(mode):
    """Rust accepts what Python sends, and refuses it without any one of its fields, naming that field: so a new
    Rust field without a Python value, or a Python field Rust does not know, fails here."""
    sent = json.loads(_config(mode))
    Deduper(json.dumps(sent))
    fields = _leaves(sent)
    assert ("num_partitions",) in fields and ("document_dir",) in fields
    for path in fields:
        partial = json.loads(json.dumps(sent))
        parent = partial
        for name in path[:-1]:
            parent = parent[name]
        del parent[path[-1]]
        with pytest.raises(DedupeConfigError, match=f"missing field `{path[-1]}`"):
            Deduper(json.dumps(partial))
    extra = {**sent, "max_words": 3}
    with pytest.raises(DedupeConfigError, match="unknown field `max_words`"):
        Deduper(json.dumps(extra))


def test_python_holds_the_defaults():
    """The values Rust runs with when a config gives only the mode are Python's defaults (DedupeSection)."""
    sent = json.loads(_config(NGRAMS))
    assert sent["paragraphs"]["paragraph_separator"] == "\n" and sent["document_dir"] == "documents"
    assert sent["paragraphs"]["by_ngram"] == {
        "ngram_length": 3,
        "stride": 1,
        "overlap_threshold": 1.0,
        "skip_short_paragraphs": False,
    }
    assert (sent["num_partitions"], sent["partition_index"], sent["min_words"]) == (1, 0, 0)
    settings = json.loads(Deduper(json.dumps(sent)).key_settings)
    assert settings["dedupe.paragraphs.by_ngram.stride"] == 1 and settings["dedupe.min_length"] == 0


# --- The stub --------------------------------------------------------------------------------------------------


def test_the_stub_matches_the_built_module():
    """`make lint` runs the same check: dolma/_rust.pyi has exactly the module's names, signatures and classes."""
    check = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "dolma._rust"], capture_output=True, text=True, cwd=REPO
    )
    assert check.returncode == 0, check.stdout[-3000:]
