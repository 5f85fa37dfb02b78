"""`dolma dedupe`: mark repeated documents, paragraphs or paragraph n-grams with a Bloom filter.

(`dedupe.minhash`, near-duplicate documents, is its own mode: `dolma.dedupe_minhash`; `run` hands it over.)

Python only plans and orchestrates: the file pipeline (decompress, parse, split, hash, test-and-insert,
write attributes) runs in Rust (`dolma._rust.Deduper`) with the GIL released and threads inside. Keys are
looked up in a stable order (sorted input files, then lines), so the first occurrence kept is the same
whatever the thread count.

The filter file records what went into it (its manifest, under the file's checksum): the settings that decide
the keys, and every input whose keys it holds, by path, size and content fingerprint. That is the one rerun
rule: an input recorded in the filter is complete (not redone; redoing it would find all of its own keys and
mark everything), an input not recorded is deduped against the filter and added. So a finished run reruns as
a no-op, new crawl batches are deduped against earlier ones, and a killed run resumes after the last save of
the filter (saved every `checkpoint_interval` seconds) with byte-identical results. What cannot be answered
correctly (a recorded input changed or lost its attributes, other key settings) is an error saying what to do.
"""

from __future__ import annotations

from dolma import io
from dolma.dedupe.config import DedupeConfig
from dolma.dedupe.local import _run
from dolma.dedupe.plan import _require_filter, plan
from dolma.dedupe.spark import _check_spark, _run_spark
from dolma.dedupe.store import _Staging

CONFIG = DedupeConfig


def run(config: DedupeConfig) -> int:
    if config.dedupe.minhash is not None:
        from dolma import dedupe_minhash

        return dedupe_minhash.run(config)
    _require_filter(config)
    io.configure_s3(config.s3)
    if config.executor == "spark":
        _check_spark(config)
    plan_ = plan(config)
    if config.executor == "spark":
        return _run_spark(config, plan_)
    threads = 1 if config.debug else config.processes
    staging = _Staging()
    try:
        return _run(config, plan_, threads, staging)
    finally:
        staging.close()
