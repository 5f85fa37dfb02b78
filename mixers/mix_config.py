"""The `dolma mix` config: streams, typed rules, span edits, sampling and output shards.

It has the shape of the reference toolkit's mixer config (streams with documents, attributes, output,
filter, span_replacement, compression), plus typed rules and sampling. Kept apart from `mixers.mix` (the
job) because the rule compiler and the sandbox need these structs too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from dolma.commands.common import RunOptions
from dolma.config import Base

Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "exists", "missing"]
Reduce = Literal["first", "max", "min", "sum", "count", "mean"]
Syntax = Literal["jsonpath", "jq"]

RULE_TIMEOUT = 10.0
"""Default seconds a stream's jq expressions may take on one document (`rule_timeout`)."""
RULE_MEMORY_MB = 2048
"""Default address-space cap of the jq rule sandbox (`rule_memory_mb`)."""


class Rule(Base):
    """A plain rule: compare one attribute score or document field with a value, or combine rules.

    Example: `{attribute: exp__gopher_v1__word_count, op: ">=", value: 50}`; combine with `all`, `any`, `not`.
    """

    attribute: Annotated[
        str | None, Meta(description="Attribute key, e.g. exp__gopher_v1__word_count (its span scores are used).")
    ] = None
    field: Annotated[str | None, Meta(description="Dotted document field instead, e.g. metadata.lang.")] = None
    op: Annotated[Op, Meta(description="Comparison: == != < <= > >= in not_in exists missing.")] = ">="
    value: Annotated[Any, Meta(description="The value to compare with (a list for in / not_in).")] = None
    reduce: Annotated[
        Reduce,
        Meta(description="How spans become one number: the first span score, max, min, sum, mean or count."),
    ] = "first"
    all: Annotated[list[Rule] | None, Meta(description="True when every sub-rule is true.")] = None
    any: Annotated[list[Rule] | None, Meta(description="True when at least one sub-rule is true.")] = None
    not_: Annotated[Rule | None, Meta(description="True when the sub-rule is false.")] = msgspec.field(
        default=None, name="not"
    )

    def describe(self) -> str:
        if self.all is not None:
            return "all(" + ", ".join(r.describe() for r in self.all) + ")"
        if self.any is not None:
            return "any(" + ", ".join(r.describe() for r in self.any) + ")"
        if self.not_ is not None:
            return f"not({self.not_.describe()})"
        target = self.attribute if self.attribute is not None else self.field
        if self.attribute is not None and self.reduce != "first":
            target = f"{self.reduce}({target})"
        if self.op in ("exists", "missing"):
            return f"{target} {self.op}"
        return f"{target} {self.op} {self.value!r}"


class StreamFilter(Base):
    """Keep a document when no include rule is given or any include rule matches, and no exclude rule does."""

    include: Annotated[
        list[str | Rule], Meta(description="Rules that keep a document (JSONPath / jq strings, or typed rules).")
    ] = []
    exclude: Annotated[list[str | Rule], Meta(description="Rules that drop a document.")] = []
    syntax: Annotated[Syntax, Meta(description="Syntax of the string rules: jsonpath or jq.")] = "jsonpath"


class SpanReplacement(Base):
    """Replace spans whose score is in [min_score, max_score) with `replacement` (`{}` is the original text)."""

    span: Annotated[str, Meta(description="Expression selecting a span list, e.g. $.attributes.pii__email.")]
    min_score: Annotated[float | None, Meta(description="Lowest score replaced (inclusive).")] = None
    max_score: Annotated[float | None, Meta(description="Scores at or above this are not replaced.")] = None
    replacement: Annotated[str, Meta(description="Replacement text; `{}` stands for the original span.")] = ""
    syntax: Annotated[Syntax, Meta(description="Syntax of `span`: jsonpath or jq.")] = "jsonpath"


class StreamOutput(Base):
    path: Annotated[str, Meta(description="Directory for <name>-<NNNN>.jsonl.gz shards (local or s3://).")]
    max_size_in_bytes: Annotated[
        int, Meta(description="Largest uncompressed size of one shard (a single larger document gets its own).")
    ] = 2 * 1024**3
    discard_fields: Annotated[
        list[str], Meta(description="Fields removed from output documents (dotted for nested, e.g. metadata.url).")
    ] = []
    min_text_length: Annotated[
        int, Meta(description="Drop documents whose text (after span replacement) has fewer UTF-8 bytes.")
    ] = 0


class StreamCompression(Base):
    input: Annotated[
        str | None, Meta(description="Input compression (gzip, zstd, none); default: from each file's extension.")
    ] = None
    output: Annotated[str | None, Meta(description="Output compression: gzip (default), zstd or none.")] = None
    level: Annotated[
        int | None,
        Meta(description="Output compression level (default: gzip 5, ~5% larger than 6 at 2x the speed; zstd 3)."),
    ] = None
    threads: Annotated[
        int, Meta(description="Threads compressing output blocks in each process (0: compress inline).")
    ] = 2


class Stream(Base):
    name: Annotated[str, Meta(description="Stream name: the prefix of its output shards.")]
    documents: Annotated[list[str], Meta(description="Globs of documents files (local or s3://; ** recurses).")]
    output: Annotated[StreamOutput, Meta(description="Where and how the stream's shards are written.")]
    attributes: Annotated[
        list[str],
        Meta(description="Attribute sets read in lockstep: <root>/attributes/<set>/<sub> beside <root>/documents/."),
    ] = []
    filter: Annotated[StreamFilter | None, Meta(description="Include / exclude rules.")] = None
    span_replacement: Annotated[list[SpanReplacement], Meta(description="Span edits (e.g. mask PII).")] = []
    compression: Annotated[StreamCompression, Meta(description="Input / output compression.")] = msgspec.field(
        default_factory=StreamCompression
    )
    sample_rate: Annotated[
        float | None,
        Meta(description="Keep this fraction of the filtered documents (0..1); above 1, repeat documents."),
    ] = None
    target_bytes: Annotated[
        int | None, Meta(description="Instead of sample_rate: aim for this many text bytes (one counting pass).")
    ] = None
    target_tokens: Annotated[
        int | None,
        Meta(description="Instead of sample_rate: aim for this many whitespace-separated tokens (a counting pass)."),
    ] = None
    seed: Annotated[int, Meta(description="Sampling seed: the same seed and ids give the same mix.")] = 0
    document_dir: Annotated[str, Meta(description="Name of the documents directory level.")] = "documents"
    check_attributes: Annotated[
        bool, Meta(description="Fail at start-up when a rule names an attribute key that no attribute file has.")
    ] = True


class MixConfig(RunOptions, kw_only=True):
    streams: Annotated[list[Stream], Meta(description="The streams to mix, each written to its own shards.")]
    shuffle: Annotated[
        bool, Meta(description="Reference-compatible and ignored: output keeps the input order (deterministic).")
    ] = False
    report: Annotated[
        str | None, Meta(description="Write the per-stream report (counts per rule, bytes) as JSON to this path.")
    ] = None
    rule_timeout: Annotated[
        float,
        Meta(
            description="Seconds a stream's jq expressions may take on one document; past it the rule sandbox is "
            "stopped and the file fails, naming the line and the rule."
        ),
    ] = RULE_TIMEOUT
    rule_memory_mb: Annotated[
        int, Meta(description="Address-space cap in MiB of the process running jq expressions (0: no cap).")
    ] = RULE_MEMORY_MB
