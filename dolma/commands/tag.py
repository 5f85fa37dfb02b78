"""`dolma tag`: run taggers over documents and write attribute files that mirror them line for line.

Attribute sets of several taggers (an `experiment`, or one `destination`) get a completion record beside
each attribute file (`.<file>.taggers.json`, hidden) naming the taggers whose keys the file holds. A unit
is complete only when the record lists every requested tagger, so adding a tagger to an experiment runs
just the missing one and rewrites the file atomically with the existing keys kept; nothing is ever lost,
and a run killed half-way resumes (see `TagJob.run_unit`). Sets of one tagger without an experiment are
named after that tagger, so the file existing is proof enough.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from dolma import atomic, io, registry
from dolma.commands.common import ProfileConfig, RunOptions, profiled
from dolma.documents import (
    AttributeLine,
    AttributeRow,
    Document,
    ReadStats,
    attribute_key,
    attributes_path,
    destination_path,
    read_attribute_lines,
    read_documents,
    sanitize_key,
)
from dolma.errors import BadInputError, ConfigError
from dolma.executors import make_executor
from dolma.executors.base import Job, Progress, Unit, UnitStats, read_record
from dolma.executors.summary import finish_run, now
from dolma.paths import check_name, check_outputs, check_path
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
    profile: Annotated[
        ProfileConfig, Meta(description="Reference-compatible cProfile profiling: enable, output, sort_key, lines.")
    ] = msgspec.field(default_factory=ProfileConfig)


CONFIG = TagConfig


class AttributeSet(msgspec.Struct, frozen=True):
    name: str
    taggers: tuple[str, ...]


RECORD_SUFFIX = ".taggers.json"


def record_path(output: str) -> str:
    """The hidden completion record beside an attribute file (hidden, so globs of attribute files skip it)."""
    return io.join(io.dirname(output), f".{io.basename(output)}{RECORD_SUFFIX}")


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

    def _rows(
        self,
        batch: list[Document],
        out: list[list[bytes]],
        run: Sequence[str],
        old: list[dict[str, Any]] | None = None,
        counts: dict[str, dict[str, int]] | None = None,
    ) -> None:
        """Attribute rows of a batch for every set, from the taggers in `run`.

        With `old` (one set only: the rows already in its file, aligned with `batch`), keys of taggers not in
        `run` are kept and the keys of `run` are replaced by the new results.
        """
        results = {name: self.taggers[name].predict_batch(batch) for name in run}
        if counts is not None:
            for name, spans in results.items():
                tally = counts.setdefault(name, {"documents": 0, "spans": 0})
                tally["documents"] += len(batch)
                tally["spans"] += sum(len(doc_spans) for doc_spans in spans)
        encode = msgspec.json.encode
        experiment = self.config.experiment
        replaced = tuple(f"{sanitize_key(experiment or name)}__{sanitize_key(name)}__" for name in run)
        for idx, doc in enumerate(batch):
            for set_idx, attr_set in enumerate(self.sets):
                attributes: dict[str, list[list[float | int]]] = {}
                if old is not None:
                    attributes = {k: v for k, v in old[idx].items() if not k.startswith(replaced)}
                for tagger_name in attr_set.taggers:
                    if tagger_name not in results:
                        continue
                    prefix = experiment or tagger_name
                    for span in results[tagger_name][idx]:
                        key = span_key(prefix, tagger_name, span.type)
                        attributes.setdefault(key, []).append([span.start, span.end, round(float(span.score), 5)])
                row = AttributeRow(id=doc.id, attributes=attributes, source=doc.source or None)
                out[set_idx].append(encode(row))

    def _todo(self, unit: Unit) -> tuple[list[str], bool, set[str]]:
        """For a unit with a record: (taggers to run, keep the existing file's rows, taggers it already holds).

        Without `ignore_existing` only the taggers the record does not list run. The existing file is read and
        its other keys kept whenever it holds keys of taggers not being run now, or when it has no readable
        record (written by an older version, or a run killed between the file and its record): then what it
        holds is unknown and nothing of it may be dropped.
        """
        assert unit.record is not None
        requested = list(self.sets[0].taggers)
        if not io.exists(unit.outputs[0]):
            return requested, False, set()
        recorded = read_record(unit.record)
        if recorded is None:
            return requested, True, set()
        run = requested if self.config.ignore_existing else [t for t in requested if t not in recorded]
        kept = recorded - set(run)
        return run, bool(kept), kept

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        if unit.record is None:
            return self._write(unit, list(self.taggers), False, progress)
        run, keep, kept = self._todo(unit)
        if not run:
            return UnitStats()
        stats = self._write(unit, run, keep, progress)
        record = {"completed": sorted(kept | set(run)), "experiment": self.sets[0].name}
        atomic.write_bytes(unit.record, msgspec.json.encode(record) + b"\n")
        if keep:
            stats.counters = {"attribute files merged (earlier taggers' keys kept)": 1}
        return stats

    def _write(self, unit: Unit, run: list[str], keep: bool, progress: Progress) -> UnitStats:
        """Tag one documents file with the taggers in `run` into `unit.outputs` (atomically).

        With `keep`, the existing (single) output is read in lockstep and its rows merged (see `_rows`); the
        new file replaces it only when complete, so a failure or a kill leaves the old one intact.
        """
        read = ReadStats()
        old_iter = read_attribute_lines(unit.outputs[0]) if keep else None
        old_path = unit.outputs[0]
        writers = [atomic.AtomicWriter(path) for path in unit.outputs]
        try:
            batch: list[Document] = []
            old: list[dict[str, Any]] | None = [] if old_iter is not None else None
            last_bytes = 0
            pending: list[list[bytes]] = [[] for _ in writers]
            counts: dict[str, dict[str, int]] = {}

            def flush() -> None:
                nonlocal last_bytes
                self._rows(batch, pending, run, old, counts)
                if old is not None:
                    old.clear()
                for writer, lines in zip(writers, pending):
                    if lines:
                        writer.write(b"\n".join(lines) + b"\n")
                        lines.clear()
                progress(len(batch), read.bytes - last_bytes)
                last_bytes = read.bytes
                batch.clear()

            for lineno, doc in read_documents(unit.input, self.config.skip_bad_lines, read):
                batch.append(doc)
                if old is not None and old_iter is not None:
                    old.append(_matching_row(old_iter, old_path, unit.input, lineno, doc.id))
                if len(batch) >= self.config.batch_size:
                    flush()
            if batch:
                flush()
            if old_iter is not None:
                extra = next(old_iter, None)
                if extra is not None:
                    raise BadInputError(
                        old_path,
                        extra[0],
                        f"the attribute file has more rows than the documents file {unit.input}; it does not "
                        "mirror these documents (delete it to tag the file from scratch)",
                        "id",
                    )
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
            groups={"taggers": counts},
        )


def _matching_row(rows: Iterator[tuple[int, AttributeLine]], path: str, doc_path: str, lineno: int, doc_id: str):
    """The existing attribute row of a document: the next row of the file, which must carry the same id."""
    found = next(rows, None)
    if found is None:
        raise BadInputError(
            doc_path,
            lineno,
            f"document {doc_id!r} has no row in the existing attribute file {path} (it ends early); that file "
            "does not mirror these documents (delete it to tag the file from scratch)",
            "id",
        )
    row_line, row = found
    if row.id != doc_id:
        raise BadInputError(
            path,
            row_line,
            f"id {row.id!r} does not match document {doc_id!r} at {doc_path}:{lineno}; the attribute file does "
            "not mirror these documents (delete it to tag the file from scratch)",
            "id",
        )
    return dict(row.attributes or {})


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
    for idx, dest in enumerate(destinations or []):
        check_path(dest, f"destination[{idx}]" if isinstance(config.destination, list) else "destination")
    if destinations is not None and len(destinations) not in (1, len(config.documents)):
        raise ConfigError(
            f"tag: 'destination' has {len(destinations)} entries for {len(config.documents)} documents globs; "
            "give one, or one per glob"
        )
    check_name(config.document_dir, "document_dir")
    if config.experiment is not None:
        check_name(config.experiment, "experiment")
    recorded = bool(config.experiment) or destinations is not None
    if recorded:
        sets = [AttributeSet(name=config.experiment or "attributes", taggers=tuple(config.taggers))]
    else:
        for idx, name in enumerate(config.taggers):
            check_name(name, f"taggers[{idx}] (the attribute set name without an experiment)")
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
            if recorded:
                units.append(Unit(input=path, outputs=outputs, record=record_path(outputs[0]), needs=sets[0].taggers))
            else:
                units.append(Unit(input=path, outputs=outputs))
    all_outputs = [o for u in units for o in u.outputs]
    if len(set(all_outputs)) != len(all_outputs):
        raise ConfigError("tag: two documents files map to the same attributes file; give distinct destinations")
    records = [u.record for u in units if u.record is not None]
    check_outputs("tag", all_inputs, [*all_outputs, *records], document_dir=config.document_dir)
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
    if config.profile.output is not None:
        check_path(config.profile.output, "profile.output")
    if config.profile.enable:  # profile the tagging itself, not worker start-up: everything in this process
        config = msgspec.structs.replace(config, processes=1)
    started = now()
    executor = make_executor(config, "tag")
    with profiled(config.profile):
        summary = executor.run(TagJob(config, sets, taggers), units)
    finish_run(
        summary,
        command="tag",
        title=f"dolma tag: {', '.join(config.taggers)}",
        config=config,
        outputs=[path for unit in units for path in unit.outputs],
        started=started,
    )
    return 0 if summary.ok else 1
