"""`dolma tag`: run taggers over documents and write attribute files that mirror them line for line."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from dolma import io, registry
from dolma.commands.common import RunOptions
from dolma.documents import (
    AttributeRow,
    Document,
    ReadStats,
    attribute_key,
    attributes_path,
    check_output_paths,
    destination_path,
    read_documents,
)
from dolma.errors import ConfigError
from dolma.executor import Job, Progress, Unit, UnitStats, make_executor, print_summary
from dolma.tagger import Tagger

log = logging.getLogger("dolma")

# The key of every span is built from (prefix, tagger, span type), a handful of distinct triples per run: cached,
# the regex of sanitize_key runs once per triple instead of three times per span (5-8% of a language-ID run).
# Bounded, as a tagger may name span types after its input.
span_key = functools.lru_cache(maxsize=1 << 14)(attribute_key)


class TagConfig(RunOptions, kw_only=True):
    documents: Annotated[
        list[str], Meta(description="Globs of documents files (local paths or s3:// URLs; ** recurses).")
    ]
    taggers: Annotated[list[str], Meta(description="Names of the taggers to run (see `dolma list`).")]
    destination: Annotated[
        list[str] | str | None,
        Meta(
            description="Where to write attributes, one entry per documents glob (or one for all). Default: "
            "<root>/attributes/<experiment or tagger>/<same sub-path> beside <root>/documents/."
        ),
    ] = None
    experiment: Annotated[
        str | None,
        Meta(description="Attribute set name and key prefix; without it each tagger writes its own set."),
    ] = None
    tagger_modules: Annotated[
        list[str], Meta(description="Extra modules (dotted names or .py paths) that register taggers.")
    ] = []
    tagger_config: Annotated[
        dict[str, dict[str, Any]],
        Meta(description="Options per tagger name, e.g. {random_number_v1: {seed: 3}}."),
    ] = {}
    document_dir: Annotated[str, Meta(description="Name of the documents directory level.")] = "documents"
    batch_size: Annotated[int, Meta(description="Documents handed to a tagger at once.")] = 512


CONFIG = TagConfig


class AttributeSet(msgspec.Struct, frozen=True):
    name: str
    taggers: tuple[str, ...]


class TagJob(Job):
    """Tags one documents file into one attributes file per attribute set."""

    def __init__(self, config: TagConfig, sets: Sequence[AttributeSet], taggers: dict[str, Tagger] | None = None):
        self.config = config
        self.sets = list(sets)
        # Taggers already created (and checked) by the driver are reused when units run in this process;
        # workers create their own (models are never pickled).
        self._taggers: dict[str, Tagger] | None = taggers

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "sets": self.sets, "_taggers": None}

    def setup(self) -> None:
        io.configure_s3(self.config.s3)
        if self._taggers is None:
            registry.import_modules(self.config.tagger_modules)
            self._taggers = {
                name: registry.create(name, self.config.tagger_config.get(name)) for name in self.config.taggers
            }

    @property
    def taggers(self) -> dict[str, Tagger]:
        if self._taggers is None:
            self.setup()
        assert self._taggers is not None
        return self._taggers

    def _rows(self, batch: list[Document], out: list[list[bytes]]) -> None:
        results = {name: tagger.predict_batch(batch) for name, tagger in self.taggers.items()}
        encode = msgspec.json.encode
        for idx, doc in enumerate(batch):
            for set_idx, attr_set in enumerate(self.sets):
                attributes: dict[str, list[list[float | int]]] = {}
                experiment = self.config.experiment
                for tagger_name in attr_set.taggers:
                    prefix = experiment or tagger_name
                    for span in results[tagger_name][idx]:
                        key = span_key(prefix, tagger_name, span.type)
                        attributes.setdefault(key, []).append([span.start, span.end, round(float(span.score), 5)])
                row = AttributeRow(id=doc.id, attributes=attributes, source=doc.source or None)
                out[set_idx].append(encode(row))

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        read = ReadStats()
        writers = [io.AtomicWriter(path) for path in unit.outputs]
        try:
            batch: list[Document] = []
            last_bytes = 0
            pending: list[list[bytes]] = [[] for _ in writers]

            def flush() -> None:
                nonlocal last_bytes
                self._rows(batch, pending)
                for writer, lines in zip(writers, pending):
                    if lines:
                        writer.write(b"\n".join(lines) + b"\n")
                        lines.clear()
                progress(len(batch), read.bytes - last_bytes)
                last_bytes = read.bytes
                batch.clear()

            for _lineno, doc in read_documents(unit.input, self.config.skip_bad_lines, read):
                batch.append(doc)
                if len(batch) >= self.config.batch_size:
                    flush()
            if batch:
                flush()
            for writer in writers:
                writer.close()
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        return UnitStats(
            documents_in=read.documents,
            documents_out=read.documents,
            bad_lines=read.bad_lines,
            bytes_in=read.bytes,
            bytes_out=sum(w.bytes_written for w in writers),
        )


def create_taggers(config: TagConfig) -> dict[str, Tagger]:
    """Create every tagger with its options and check its resources (models, lists): one error, before any file."""
    registry.import_modules(config.tagger_modules)
    for name in config.taggers:
        registry.get(name)
    for name, options in config.tagger_config.items():
        registry.create(name, options)
    taggers = {name: registry.create(name, config.tagger_config.get(name)) for name in config.taggers}
    for tagger in taggers.values():
        registry.check(tagger)
    return taggers


def plan(config: TagConfig) -> tuple[list[AttributeSet], list[Unit]]:
    """Resolve taggers, attribute sets, input files and output paths; refuse unsafe destinations."""
    if not config.taggers:
        raise ConfigError("tag: no taggers given (set 'taggers')")
    if not config.documents:
        raise ConfigError("tag: no documents given (set 'documents')")
    registry.import_modules(config.tagger_modules)
    for name in config.taggers:
        registry.get(name)
    for name, options in config.tagger_config.items():
        registry.create(name, options)
    if len(set(config.taggers)) != len(config.taggers):
        raise ConfigError("tag: a tagger is listed twice in 'taggers'")

    destinations = [config.destination] if isinstance(config.destination, str) else config.destination
    if destinations is not None and len(destinations) not in (1, len(config.documents)):
        raise ConfigError(
            f"tag: 'destination' has {len(destinations)} entries for {len(config.documents)} documents globs; "
            "give one, or one per glob"
        )
    if config.experiment or destinations is not None:
        sets = [AttributeSet(name=config.experiment or "attributes", taggers=tuple(config.taggers))]
    else:
        sets = [AttributeSet(name=name, taggers=(name,)) for name in config.taggers]

    units: list[Unit] = []
    seen: set[str] = set()
    all_inputs: list[str] = []
    for idx, pattern in enumerate(config.documents):
        pattern = io.normalize(pattern)
        files = io.glob(pattern)
        if not files:
            raise ConfigError(f"tag: no files match documents pattern '{pattern}'")
        for path in files:
            if path in seen:
                continue
            seen.add(path)
            all_inputs.append(path)
            if destinations is not None:
                dest = io.normalize(destinations[idx] if len(destinations) > 1 else destinations[0])
                outputs = (destination_path(path, pattern, dest),)
            else:
                outputs = tuple(attributes_path(path, s.name, config.document_dir) for s in sets)
            units.append(Unit(input=path, outputs=outputs))
    all_outputs = [o for u in units for o in u.outputs]
    if len(set(all_outputs)) != len(all_outputs):
        raise ConfigError("tag: two documents files map to the same attributes file; give distinct destinations")
    check_output_paths(all_inputs, all_outputs, config.document_dir)
    return sets, units


def run(config: TagConfig) -> int:
    io.configure_s3(config.s3)
    sets, units = plan(config)
    taggers = create_taggers(config)
    if config.dryrun:
        for unit in units:
            print(f"{unit.input} -> {', '.join(unit.outputs)}")
        print(f"{len(units)} file(s), taggers: {', '.join(config.taggers)}")
        return 0
    executor = make_executor(config, "tag")
    summary = executor.run(TagJob(config, sets, taggers), units)
    print_summary(summary, f"dolma tag: {', '.join(config.taggers)}", quiet=config.quiet)
    return 0 if summary.ok else 1
