"""The `dolma tokens` command: tokenize documents into flat token-id shards plus a document index (and verify them)."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from typing import Annotated, Any

import msgspec
import numpy as np
from msgspec import Meta

from dolma import io
from dolma.commands.common import RunOptions
from dolma.config import Base
from dolma.errors import ConfigError
from dolma.executors import make_executor
from dolma.executors.base import Job, Progress, Summary, Unit, UnitStats
from dolma.executors.summary import Shard, TokenStats, finish_run, now
from dolma.paths import check_claimable, check_outputs, check_path
from mixers.tokenizer import DEFAULT_SPECIAL_IDS, is_default, load_tokenizer
from mixers.tokens import (
    GROUP_RECORD,
    SCRATCH_DIR,
    SHARD_NAME,
    SHUFFLE_JOURNAL,
    SHUFFLE_MARKER,
    UNSHUFFLED_DIR,
    ShardLedger,
    check_destination_owned,
    check_dtype,
    default_files_per_group,
    done_marker,
    drop_recorded,
    journal_path,
    make_groups,
)
from mixers.tokens_shuffle import global_shuffle
from mixers.tokens_verify import verify_shards
from mixers.tokens_write import GroupSettings, tokenize_group

log = logging.getLogger("dolma")


class TokenizerSection(Base):
    name_or_path: Annotated[
        str | None,
        Meta(
            description="A tokenizer.json file (local or s3://) or a directory holding one; "
            "'allenai/gpt-neox-olmo-dolma-v1_5' (the default, shipped here); or a tiktoken encoding as "
            "'tiktoken:<name>' (from $TIKTOKEN_CACHE_DIR) or 'tiktoken:<name>=<local .tiktoken file>'. "
            "Nothing is downloaded."
        ),
    ] = None
    bos_token_id: Annotated[int | None, Meta(description="Token id put before every document (none if unset).")] = None
    eos_token_id: Annotated[
        int | None,
        Meta(description="Token id put after every document (default: 50279 for the default tokenizer)."),
    ] = None
    pad_token_id: Annotated[
        int | None, Meta(description="Padding token id (kept in the .part-<group>.done markers).")
    ] = None
    segment_before_tokenization: Annotated[
        bool, Meta(description="Encode each line of a document separately, then concatenate (for slow tokenizers).")
    ] = False
    encode_special_tokens: Annotated[
        bool,
        Meta(description="Treat special-token text in documents (e.g. '<|endoftext|>') as plain text and split it."),
    ] = False
    fast: Annotated[
        bool,
        Meta(
            description="Encode byte-level BPE tokenizer.json files (GPT-2/GPT-NeoX style) with tiktoken's Rust "
            "core when it gives the same ids (checked at start-up); false always uses HF tokenizers."
        ),
    ] = True
    refresh: Annotated[int, Meta(description="Reference-compatible; not needed here (ignored).")] = 0


class FieldsSection(Base):
    text_field_name: Annotated[str, Meta(description="Name of the text field of the input documents.")] = "text"
    id_field_name: Annotated[str, Meta(description="Name of the id field of the input documents.")] = "id"
    text_field_type: Annotated[str, Meta(description="Reference-compatible; text must be a string.")] = "str"
    id_field_type: Annotated[str, Meta(description="Reference-compatible; ids may be strings or integers.")] = "str"


class GlobalShuffleSection(Base):
    enabled: Annotated[
        bool,
        Meta(
            description="After the groups are written, permute their documents across all shards (seeded) into "
            "part-0-<NNNNN> shards; the group shards are staged in <destination>/.unshuffled meanwhile."
        ),
    ] = False
    seed: Annotated[int | None, Meta(description="Seed of the global shuffle (default: 'seed').")] = None
    window: Annotated[
        int,
        Meta(
            description="Documents whose index rows and offsets are held in memory at once (a bucket larger "
            "than this is split again); tokens are read through memory maps."
        ),
    ] = 1_000_000
    work_dir: Annotated[
        str | None,
        Meta(
            description="Local directory in which a scratch subdirectory for the bucket files (about the size "
            "of the output) is made and removed; default: <destination>/.shuffle-work, or the system temp dir "
            "for an s3:// destination."
        ),
    ] = None


class TokensConfig(RunOptions, kw_only=True):
    documents: Annotated[
        list[str], Meta(description="Globs of documents files (local paths or s3:// URLs; ** recurses).")
    ]
    destination: Annotated[str, Meta(description="Directory (local or s3://) for the part-*.npy / .csv.gz shards.")]
    tokenizer: Annotated[TokenizerSection, Meta(description="Which tokenizer and special tokens.")] = msgspec.field(
        default_factory=TokenizerSection
    )
    tokenizer_name_or_path: Annotated[
        str | None, Meta(description="Deprecated spelling of tokenizer.name_or_path (reference-compatible).")
    ] = None
    dtype: Annotated[str, Meta(description="uint16 or uint32; must hold every id of the vocabulary.")] = "uint16"
    max_size: Annotated[
        int,
        Meta(
            description="Tokens per output shard (a document is never split; one longer than this gets a shard "
            "of its own)."
        ),
    ] = 1024 * 1024 * 1024
    batch_size: Annotated[int, Meta(description="Documents encoded at once (in the tokenizer's Rust threads).")] = 1024
    ring_size: Annotated[int, Meta(description="Files of a group read at once; documents are drawn among them.")] = 8
    shuffle_window: Annotated[
        int,
        Meta(description="Documents held in the shuffle window (bounds memory; 0 keeps the ring's draw order)."),
    ] = 20000
    files_per_process: Annotated[
        int | None,
        Meta(
            description="Files per group (the unit of work; each group writes its own part-<group>-* shards). "
            "Default: max(ring_size, files/16). Outputs do not depend on 'processes'."
        ),
    ] = None
    seed: Annotated[int, Meta(description="Shuffle seed; the same seed gives byte-identical shards.")] = 3920
    sample_ring_prop: Annotated[bool, Meta(description="Reference-compatible; ignored.")] = False
    fields: Annotated[FieldsSection, Meta(description="Input field names.")] = msgspec.field(
        default_factory=FieldsSection
    )
    global_shuffle: Annotated[
        GlobalShuffleSection, Meta(description="Optional seeded shuffle of documents across all output shards.")
    ] = msgspec.field(default_factory=GlobalShuffleSection)
    verify: Annotated[
        bool,
        Meta(
            description="After tokenizing (a finished run is skipped), check every index row against its shard "
            "and decode sampled documents against their source; exit 1 on any mismatch."
        ),
    ] = False
    verify_samples: Annotated[int, Meta(description="Documents decoded per shard by --verify (-1: all of them).")] = (
        100
    )


CONFIG = TokensConfig


class Plan(msgspec.Struct, frozen=True):
    groups: list[list[str]]
    destination: str
    group_destination: str
    tokenizer_name: str
    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None


def resolve_special_ids(config: TokensConfig) -> tuple[str | None, int | None, int | None, int | None]:
    name = config.tokenizer.name_or_path or config.tokenizer_name_or_path
    bos, eos, pad = config.tokenizer.bos_token_id, config.tokenizer.eos_token_id, config.tokenizer.pad_token_id
    if is_default(name) and bos is None and eos is None:
        eos = DEFAULT_SPECIAL_IDS["eos_token_id"]
        pad = DEFAULT_SPECIAL_IDS["pad_token_id"] if pad is None else pad
    if bos is None and eos is None:
        raise ConfigError(
            "tokens: set tokenizer.eos_token_id and/or tokenizer.bos_token_id, otherwise documents are not separated"
        )
    return name, bos, eos, pad


def plan(config: TokensConfig):
    if not config.documents:
        raise ConfigError("tokens: no documents given (set 'documents')")
    if config.max_size <= 0 or config.batch_size <= 0 or config.ring_size <= 0:
        raise ConfigError("tokens: max_size, batch_size and ring_size must be positive")
    name, bos, eos, pad = resolve_special_ids(config)
    files = io.expand_documents(config.documents, "tokens")
    destination = io.normalize(check_path(config.destination, "destination")).rstrip("/")
    if config.global_shuffle.work_dir is not None:
        check_path(config.global_shuffle.work_dir, "global_shuffle.work_dir")
    group_destination = io.join(destination, UNSHUFFLED_DIR) if config.global_shuffle.enabled else destination
    # Refused before anything is written: a destination holding (or inside a tree of) inputs, and one
    # holding files tokens did not write (it would mix its shards with them, and a rerun removes shards).
    out_dirs = [destination]
    if config.global_shuffle.enabled:
        out_dirs.append(shuffle_scratch(config, destination))
    check_outputs("tokens", files, dirs=out_dirs)
    check_destination_owned(destination)
    if config.global_shuffle.enabled:
        check_destination_owned(group_destination)
        check_claimable(shuffle_scratch(config, destination), "tokens")
    tokenizer = load_tokenizer(name, config.tokenizer.encode_special_tokens, config.tokenizer.fast)
    np_dtype = check_dtype(config.dtype, tokenizer, [bos, eos, pad])
    for label, value in (("bos_token_id", bos), ("eos_token_id", eos), ("pad_token_id", pad)):
        if value is not None and not 0 <= value < tokenizer.vocab_size:
            raise ConfigError(f"tokenizer.{label}: {value} is outside the vocabulary (size {tokenizer.vocab_size})")
    per_group = config.files_per_process or default_files_per_group(len(files), config.ring_size)
    groups = make_groups(files, per_group)
    if config.global_shuffle.enabled and config.global_shuffle.window < 1:
        raise ConfigError("global_shuffle.window must be at least 1 document")
    return (
        Plan(
            groups=groups,
            destination=destination,
            group_destination=group_destination,
            tokenizer_name=tokenizer.name_or_path,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=pad,
        ),
        tokenizer,
        np_dtype,
    )


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


def shuffle_scratch(config: TokensConfig, destination: str) -> str:
    """Local directory for the global shuffle's bucket files (deterministic, so a rerun clears a killed run's).

    It is emptied before and removed after the shuffle, so it is always a directory of its own: a subdirectory
    named after the destination inside `global_shuffle.work_dir` (or the system temp dir), never the directory
    the user named.
    """
    if not config.global_shuffle.work_dir and not io.is_s3(destination):
        return io.join(destination, SCRATCH_DIR)
    digest = hashlib.sha1(destination.encode()).hexdigest()[:12]
    parent = config.global_shuffle.work_dir or tempfile.gettempdir()
    return os.path.join(parent, f"dolma-tokens-shuffle-{digest}")


def run_global_shuffle(config: TokensConfig, the_plan: Plan, np_dtype: Any) -> None:
    """Permute the staged group shards into the destination, then write the marker and drop the staging."""
    final = the_plan.destination
    # Temporaries of a killed shuffle's writers (their own hidden names) are not shards: removed when dead.
    io.remove_dead_temporaries([final])
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
