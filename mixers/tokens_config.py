"""The `dolma tokens` config and plan: what to tokenize into where, checked before anything is written."""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Annotated

import msgspec
from msgspec import Meta

from dolma import io
from dolma.commands.common import RunOptions
from dolma.config import Base
from dolma.errors import ConfigError
from dolma.paths import check_claimable, check_outputs, check_path
from mixers.tokenizer import DEFAULT_SPECIAL_IDS, is_default, load_tokenizer
from mixers.tokens import (
    SCRATCH_DIR,
    UNSHUFFLED_DIR,
    check_destination_owned,
    check_dtype,
    default_files_per_group,
    make_groups,
)


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
