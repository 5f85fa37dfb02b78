"""The `dolma tokens` command: tokenize documents into flat token-id shards plus a document index (and verify them)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from dolma import atomic, io
from dolma.errors import ConfigError
from dolma.executors import make_executor
from dolma.executors.base import Job, Progress, Summary, Unit, UnitStats
from dolma.executors.summary import Shard, TokenStats, finish_run, now
from mixers.tokens import (
    GROUP_RECORD,
    SHARD_NAME,
    SHUFFLE_JOURNAL,
    SHUFFLE_MARKER,
    ShardLedger,
    done_marker,
    drop_recorded,
    journal_path,
)
from mixers.tokens_config import Plan, TokensConfig, plan, shuffle_scratch
from mixers.tokens_shuffle import global_shuffle
from mixers.tokens_verify import verify_shards
from mixers.tokens_write import GroupSettings, tokenize_group

log = logging.getLogger("dolma")


CONFIG = TokensConfig


class TokensJob(Job):
    """Tokenizes one group of files (unit input `group-<g>`) into its shards."""

    def __init__(self, config: TokensConfig, the_plan: Plan, tokenizer: Any, np_dtype: Any):
        self.config = config
        self.plan = the_plan
        self.tokenizer = tokenizer
        self.np_dtype = np_dtype

    def setup(self) -> None:
        io.configure_s3(self.config.s3)

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        group = int(unit.input.rsplit("-", 1)[1])
        c = self.config
        settings = GroupSettings(
            destination=self.plan.group_destination,
            dtype=self.np_dtype,
            max_size=c.max_size,
            batch_size=c.batch_size,
            ring_size=c.ring_size,
            shuffle_window=c.shuffle_window,
            seed=c.seed,
            bos_token_id=self.plan.bos_token_id,
            eos_token_id=self.plan.eos_token_id,
            segment_before_tokenization=c.tokenizer.segment_before_tokenization,
            text_field=c.fields.text_field_name,
            id_field=c.fields.id_field_name,
            skip_bad_lines=c.skip_bad_lines,
        )
        # Shards of an earlier (partial or different) run of this group must not mix with the new ones: the
        # ledger takes over the names its marker / journal list, and removes the ones not written again only
        # after the group has been read and written (finished groups get here only with --ignore_existing).
        where = self.plan.group_destination
        ledger = ShardLedger(where, done_marker(where, group), journal_path(where, group))
        ledger.begin()
        stats = tokenize_group(group, self.plan.groups[group], self.tokenizer, settings, progress, ledger.opening)
        summary = {
            "group": group,
            "files": self.plan.groups[group],
            "documents": stats.documents_out,
            "tokens": stats.tokens,
            "shards": stats.shards,
            "tokenizer": self.plan.tokenizer_name,
            "dtype": c.dtype,
            "bos_token_id": self.plan.bos_token_id,
            "eos_token_id": self.plan.eos_token_id,
            "pad_token_id": self.plan.pad_token_id,
        }
        ledger.finish(summary)
        return UnitStats(
            documents_in=stats.read.documents,
            documents_out=stats.documents_out,
            bad_lines=stats.read.bad_lines,
            bytes_in=stats.read.bytes,
            bytes_out=stats.bytes_out,
            counters={
                "tokens": stats.tokens,
                "shards written": stats.shards,
                "empty documents skipped": stats.empty,
                "documents longer than max_size (own shard)": stats.oversize,
            },
        )


def run_verify(config: TokensConfig, the_plan: Plan, tokenizer: Any, np_dtype: Any) -> int:
    report = verify_shards(
        the_plan.destination,
        tokenizer,
        np_dtype,
        the_plan.bos_token_id,
        the_plan.eos_token_id,
        samples=config.verify_samples,
        seed=config.seed,
        text_field=config.fields.text_field_name,
        id_field=config.fields.id_field_name,
    )
    for problem in report.problems[:50]:
        print(f"verify: {problem}")
    if len(report.problems) > 50:
        print(f"verify: ... and {len(report.problems) - 50} more problems")
    status = "OK" if report.ok else "FAILED"
    print(
        f"verify {status}: {report.shards} shards, {report.rows:,} index rows, {report.tokens:,} tokens, "
        f"{report.decoded:,} documents decoded and compared, {len(report.problems)} problems"
    )
    return 0 if report.ok else 1


def run_global_shuffle(config: TokensConfig, the_plan: Plan, np_dtype: Any) -> None:
    """Permute the staged group shards into the destination, then write the marker and drop the staging."""
    final = the_plan.destination
    # Temporaries of a killed shuffle's writers (their own hidden names) are not shards: removed when dead.
    atomic.remove_dead_temporaries([final])
    # Shards of a killed shuffle, of an earlier one, or of an earlier unshuffled run into this destination
    # (its group markers, absorbed here) are taken over by the ledger and removed once the new ones exist.
    absorbed = [io.join(final, name) for name in io.listdir(final) if GROUP_RECORD.fullmatch(name)]
    ledger = ShardLedger(final, io.join(final, SHUFFLE_MARKER), io.join(final, SHUFFLE_JOURNAL), absorbed)
    ledger.begin()
    gs = config.global_shuffle
    seed = config.seed if gs.seed is None else gs.seed
    stats = global_shuffle(
        the_plan.group_destination,
        final,
        np_dtype,
        config.max_size,
        seed,
        gs.window,
        shuffle_scratch(config, final),
        on_open=ledger.opening,
    )
    summary = {
        "documents": stats.documents,
        "tokens": stats.tokens,
        "shards": stats.shards,
        "seed": seed,
        "window": gs.window,
        "tokenizer": the_plan.tokenizer_name,
        "dtype": config.dtype,
        "bos_token_id": the_plan.bos_token_id,
        "eos_token_id": the_plan.eos_token_id,
        "pad_token_id": the_plan.pad_token_id,
    }
    ledger.finish(summary)
    drop_recorded(the_plan.group_destination)
    if not config.quiet:
        print(
            f"global shuffle (seed {seed}, window {gs.window:,}): {stats.documents:,} documents, "
            f"{stats.tokens:,} tokens into {stats.shards} shards ({stats.buckets} buckets, {stats.splits} split)"
        )


def shard_stats(destination: str, np_dtype: Any) -> TokenStats:
    """Tokens and documents of every shard in `destination`, counted from the files themselves (the `.npy` size
    and the rows of its `.csv.gz`), so a resumed run reports the shards of earlier runs too."""
    itemsize = np.dtype(np_dtype).itemsize
    shards = []
    for name in io.listdir(destination):
        if not (SHARD_NAME.fullmatch(name) and name.endswith(".npy")):
            continue
        path = io.join(destination, name)
        rows = io.join(destination, name.removesuffix(".npy") + ".csv.gz")
        documents = sum(1 for _ in io.iter_lines(rows)) if io.exists(rows) else 0
        shards.append(Shard(path=path, tokens=io.size(path) // itemsize, documents=documents))
    return TokenStats(tokens=sum(s.tokens for s in shards), documents=sum(s.documents for s in shards), shards=shards)


def run(config: TokensConfig) -> int:
    io.configure_s3(config.s3)
    the_plan, tokenizer, np_dtype = plan(config)
    shuffled = io.exists(io.join(the_plan.destination, SHUFFLE_MARKER))
    if not config.global_shuffle.enabled:
        for name in (SHUFFLE_MARKER, SHUFFLE_JOURNAL):
            if io.exists(io.join(the_plan.destination, name)):
                raise ConfigError(
                    f"tokens: {the_plan.destination} holds globally shuffled shards ({name}); set "
                    "global_shuffle.enabled to resume or verify them, or use another destination"
                )
    units = [
        Unit(input=f"group-{g}", outputs=(done_marker(the_plan.group_destination, g),))
        for g in range(len(the_plan.groups))
    ]
    if config.dryrun:
        for g, files in enumerate(the_plan.groups):
            print(f"group {g}: {len(files)} file(s) -> {the_plan.group_destination}/part-{g}-*.npy")
        if config.global_shuffle.enabled:
            print(f"then a global shuffle of every document into {the_plan.destination}/part-0-*.npy")
        print(f"{len(units)} group(s), tokenizer {the_plan.tokenizer_name}, dtype {config.dtype}")
        return 0
    code = 0
    started = now()
    if shuffled and not config.ignore_existing:
        drop_recorded(the_plan.group_destination)  # a run killed while it removed the staged groups
        if not config.quiet:
            print(f"dolma tokens: {the_plan.destination} is already globally shuffled ({SHUFFLE_MARKER}); skipped")
        summary = Summary(units=len(units), skipped=len(units))
    else:
        executor = make_executor(config, "tokens")
        summary = executor.run(TokensJob(config, the_plan, tokenizer, np_dtype), units)
        code = 0 if summary.ok else 1
        if code == 0 and config.global_shuffle.enabled:
            run_global_shuffle(config, the_plan, np_dtype)
    if config.verify and code == 0:
        code = run_verify(config, the_plan, tokenizer, np_dtype)
    finish_run(
        summary,
        command="tokens",
        title=f"dolma tokens: {the_plan.tokenizer_name} -> {the_plan.destination}",
        config=config,
        directory=the_plan.destination,
        started=started,
        extra={
            "tokens": shard_stats(the_plan.destination, np_dtype),
            "degraded": [] if code == 0 or not summary.ok else ["verification of the written shards failed"],
        },
    )
    return code
