"""The `minhash` mode of `dolma dedupe`: near-duplicate documents by MinHash-LSH (engine: `dolma.minhash`).

Three passes, each resumable:
1. sign: one `Job` unit per documents file -> its band-key file in `work_dir/keys/` (atomic; a rerun keeps the
   files that verify against this configuration, file position and path);
2. cluster: all band-key files in the stable order (input file order, then line) -> one result file per
   documents file in `work_dir/results/`, memory bounded by `memory_budget` (one call, global by nature);
3. mark (`dolma.minhash_attributes`): one `Job` unit per documents file -> its attributes file. A document that
   is not its cluster's keeper gets `<attribute_name>: [[0, len(text), similarity to the keeper]]`; every member
   of a cluster of two or more gets `<cluster_attribute_name>: [[0, len(text), cluster id]]` (the keeper's
   ordinal in the run).

With `executor: spark` the same clusters are computed on the cluster (`dolma.spark_minhash`); with
`eval_documents` the run is query-only decontamination instead (`dolma.minhash_decontaminate`).

Passes 2 and 3 are tied to the run by a key (inputs, parameters, attribute names): a completion record holding
it is written after each output, so outputs of another configuration or input list are redone, not reused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import Meta

from dolma import _rust, atomic, io
from dolma import minhash as mh
from dolma.documents import attributes_path
from dolma.errors import ConfigError, DolmaError
from dolma.executors import make_executor
from dolma.executors.base import Job, Progress, Summary, Unit, UnitStats
from dolma.executors.summary import DedupeStats, ModeCounts, finish_run, now
from dolma.minhash_attributes import MarkJob
from dolma.paths import check_name, check_outputs, check_path, claim_dir

if TYPE_CHECKING:
    from dolma.dedupe.config import DedupeConfig

log = logging.getLogger("dolma")

CLUSTER_SUFFIX = "__cluster"


class MinHashDedupe(mh.MinHashParams, kw_only=True):
    """`dedupe.minhash`: the engine's parameters plus where the text is and what is written."""

    attribute_name: Annotated[
        str, Meta(description="Attribute key written for near-duplicate documents (not their cluster's keeper).")
    ]
    cluster_attribute_name: Annotated[
        str | None,
        Meta(
            description="Attribute key of the cluster id, on every member of a cluster of 2+ (default: "
            "<attribute_name>__cluster)."
        ),
    ] = None
    key: Annotated[
        str, Meta(description="JSONPath of the text to compare ($.text, or e.g. $.metadata.body); missing: unique.")
    ] = "$.text"
    memory_budget: Annotated[
        int, Meta(description="Bytes of memory for clustering's external sort (beyond it, sorted runs spill).")
    ] = mh.DEFAULT_MEMORY_BUDGET
    eval_documents: Annotated[
        list[str],
        Meta(
            description="Decontamination: globs of evaluation documents. The run is then query-only: training "
            "documents near one of them are marked (evaluation documents are never inserted or kept)."
        ),
    ] = []
    work_dir: Annotated[
        str | None,
        Meta(
            description="Local directory for band-key and result files (kept for reruns; default "
            "<documents root>/minhash/<dedupe.name>)."
        ),
    ] = None

    def params(self) -> mh.MinHashParams:
        """The engine's part of this section."""
        return mh.MinHashParams(**{name: getattr(self, name) for name in mh.MinHashParams.__struct_fields__})

    @property
    def cluster_attribute(self) -> str:
        return self.cluster_attribute_name or self.attribute_name + CLUSTER_SUFFIX


class MinHashPlan(msgspec.Struct, frozen=True):
    inputs: list[str]
    outputs: list[str]
    attribute_set: str
    work_dir: str
    key: tuple[str | int, ...]

    def keys_file(self, i: int) -> str:
        return os.path.join(self.work_dir, "keys", f"{i:06d}.mhk")

    def result_file(self, i: int) -> str:
        return os.path.join(self.work_dir, "results", f"{i:06d}.mhr")

    def record_file(self, i: int) -> str:
        return os.path.join(self.work_dir, "done", f"{i:06d}.json")


def _default_work_dir(first_input: str, name: str, document_dir: str) -> str:
    from dolma.documents import split_documents_path

    root, _ = split_documents_path(first_input, document_dir)
    if io.is_s3(root):
        raise ConfigError(
            "dedupe.minhash.work_dir: the documents are on S3 and band-key files are local working files: set "
            "work_dir to a local directory"
        )
    return os.path.join(root, "minhash", name)


def plan(config: DedupeConfig) -> MinHashPlan:
    section = config.dedupe
    section_mh = section.minhash
    assert section_mh is not None
    if section.documents is not None or section.paragraphs is not None:
        raise ConfigError("dedupe: set only one of 'dedupe.documents', 'dedupe.paragraphs' and 'dedupe.minhash'")
    if config.bloom_filter is not None:
        raise ConfigError("bloom_filter: dedupe.minhash uses no Bloom filter; remove the bloom_filter section")
    if section.num_partitions or section.partition_index or section.file_partition:
        raise ConfigError("dedupe.num_partitions / partition_index / file_partition do not apply to dedupe.minhash")
    if section.skip_empty or section.min_length or section.min_words:
        raise ConfigError(
            "dedupe.skip_empty / min_length / min_words do not apply to dedupe.minhash (a text with no shingles "
            "is never a duplicate; dedupe.minhash.ngram sets the shingle size)"
        )
    if config.processes < 1:
        raise ConfigError(f"dedupe: processes must be at least 1, got {config.processes}")
    if config.executor == "spark" and section_mh.eval_documents:
        raise ConfigError("dedupe.minhash.eval_documents: decontamination runs with executor local only")
    if section_mh.memory_budget < 1 << 20:
        raise ConfigError(f"dedupe.minhash.memory_budget: at least 1 MiB (1048576), got {section_mh.memory_budget}")
    check_name(section.name, "dedupe.name")
    check_name(section.document_dir, "dedupe.document_dir")
    check_name(section_mh.attribute_name, "dedupe.minhash.attribute_name")
    check_name(section_mh.cluster_attribute, "dedupe.minhash.cluster_attribute_name")
    if section_mh.cluster_attribute == section_mh.attribute_name:
        raise ConfigError("dedupe.minhash.cluster_attribute_name: must differ from attribute_name")
    try:
        key = tuple(_rust.json_path_steps(section_mh.key))
    except ValueError as exc:
        raise ConfigError(f"dedupe.minhash.key: {exc}") from None
    section_mh.params().band_rows()  # validates threshold x num_perm before any file is touched
    if not config.documents:
        raise ConfigError("dedupe: no documents given (set 'documents')")
    inputs = sorted(set(io.expand_documents(config.documents, "dedupe")))
    outputs = [attributes_path(path, section.name, section.document_dir) for path in inputs]
    if config.executor == "spark":
        check_outputs("dedupe", inputs, outputs, document_dir=section.document_dir)
        return MinHashPlan(inputs=inputs, outputs=outputs, attribute_set=section.name, work_dir="", key=key)
    if section_mh.work_dir is None:
        work_dir = _default_work_dir(inputs[0], section.name, section.document_dir)
    else:
        work_dir = check_path(section_mh.work_dir, "dedupe.minhash.work_dir")
        if io.is_s3(work_dir):
            raise ConfigError(f"dedupe.minhash.work_dir {work_dir}: must be a local directory (working files)")
    work_dir = os.path.abspath(work_dir)
    check_outputs("dedupe", inputs, outputs, dirs=[work_dir], document_dir=section.document_dir)
    return MinHashPlan(inputs=inputs, outputs=outputs, attribute_set=section.name, work_dir=work_dir, key=key)


def run_key(plan_: MinHashPlan, section: MinHashDedupe) -> str:
    """What decides the results and the attribute files: a stored output made under another key is redone."""
    what = {
        "inputs": plan_.inputs,
        "fingerprint": mh.signer(section.params()).fingerprint,
        "verify": section.verify,
        "threshold": section.threshold,
        "key": list(plan_.key),
        "attributes": [section.attribute_name, section.cluster_attribute],
    }
    return hashlib.sha256(msgspec.json.encode(what)).hexdigest()[:32]


# ----------------------------------------------------------------------------------------------------------
# Jobs
# ----------------------------------------------------------------------------------------------------------


class SignJob(Job):
    """Pass 1: a documents file -> its band-key file."""

    def __init__(
        self, params: mh.MinHashParams, index: dict[str, int], key: tuple, skip_bad_lines: bool, threads: int
    ):
        self.params = params
        self.engine = mh.signer(params)  # pickled to the workers as its engine JSON: no optimiser there
        self.index = index
        self.key = key
        self.skip_bad_lines = skip_bad_lines
        self.threads = threads

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        stats = mh.sign_file(
            unit.input,
            unit.outputs[0],
            self.index[unit.input],
            self.params,
            skip_bad_lines=self.skip_bad_lines,
            threads=self.threads,
            key=self.key,
            engine=self.engine,
        )
        progress(stats.documents, stats.bytes)
        return UnitStats(documents_in=stats.documents, bad_lines=stats.bad_lines, bytes_in=stats.bytes)


# ----------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------


def _keep_valid_keys(plan_: MinHashPlan, params: mh.MinHashParams, skip_bad_lines: bool) -> None:
    """Band-key files left by earlier runs stay only if made with these parameters for the same file at the
    same position (a file damaged, or made by another configuration, is removed and redone), and, in a run
    that does not skip bad lines, only if none was skipped (signing again raises the bad line's error)."""
    for i, path in enumerate(plan_.inputs):
        unit = plan_.keys_file(i)
        if not os.path.exists(unit):
            continue
        try:
            header = mh.unit_header(unit, params)
            # Shingle sets (verify: exact) are not part of the fingerprint: a file without them cannot serve.
            sets = header["shingle_sets"] or params.verify != "exact"
            valid = header["file_index"] == i and header["source"] == path and sets
            valid = valid and (skip_bad_lines or header["bad_lines"] == 0)
        except DolmaError:
            valid = False
        if not valid:
            log.info("%s: made for another file or configuration; redoing it", unit)
            os.remove(unit)


def finish(
    config: DedupeConfig, plan_: MinHashPlan, summary: Summary, title: str, started: Any, before_marks: bool = False
) -> None:
    """Write and print the run summary (`minhash` marks: the documents of this run's files that got a mark).

    A run that failed `before_marks` wrote no attribute file: its summary goes into the work directory, so that
    the attribute set is not created by the summary alone."""
    counters = summary.stats.counters
    marked = counters.get("documents marked", counters.get("documents marked (near an evaluation document)", 0))
    modes = {"minhash": ModeCounts(units_marked=marked, documents_marked=marked)}
    finish_run(
        summary,
        command="dedupe",
        title=title,
        config=config,
        outputs=plan_.outputs,
        directory=plan_.work_dir if before_marks else None,
        started=started,
        extra={"dedupe": DedupeStats(modes=modes)},
    )


def _failed(config: DedupeConfig, plan_: MinHashPlan, summary: Summary, title: str, started: Any) -> bool:
    if summary.ok:
        return False
    finish(config, plan_, summary, title, started, before_marks=True)
    return True


def run(config: DedupeConfig) -> int:
    section = config.dedupe.minhash
    assert section is not None
    io.configure_s3(config.s3)
    plan_ = plan(config)
    params = section.params()
    bands, rows = params.band_rows()
    title = f"dolma dedupe (minhash): attribute set '{plan_.attribute_set}'"
    started = now()
    if config.dryrun:
        for src, dst in zip(plan_.inputs, plan_.outputs):
            print(f"{src} -> {dst}")
        print(
            f"{len(plan_.inputs)} file(s), attribute set '{plan_.attribute_set}', {bands} bands x {rows} rows, "
            f"work_dir {plan_.work_dir}"
        )
        return 0
    if config.executor == "spark":
        return _run_spark(config, plan_, section, params, title, started)
    claim_dir(plan_.work_dir, "dedupe")
    if section.eval_documents:
        from dolma import minhash_decontaminate

        return minhash_decontaminate.run(config, plan_, section, title, started)
    key = run_key(plan_, section)
    threads = max(1, (os.cpu_count() or 1) // max(1, config.processes))

    # 1. sign
    if not config.ignore_existing:
        _keep_valid_keys(plan_, params, config.skip_bad_lines)
    index = {path: i for i, path in enumerate(plan_.inputs)}
    units = [Unit(input=p, outputs=(plan_.keys_file(i),)) for i, p in enumerate(plan_.inputs)]
    signed = make_executor(config, f"minhash sign {plan_.attribute_set}").run(
        SignJob(params, index, plan_.key, config.skip_bad_lines, threads), units
    )
    if _failed(config, plan_, signed, title, started):
        return 1

    # 2. cluster (skipped when a complete run with this key already wrote every result)
    results = [plan_.result_file(i) for i in range(len(plan_.inputs))]
    record = os.path.join(plan_.work_dir, "results", "cluster.json")
    stats = _cluster_record(record, key, results) if not config.ignore_existing and not signed.succeeded else None
    if stats is None:
        spill = os.path.join(plan_.work_dir, "spill")
        shutil.rmtree(spill, ignore_errors=True)  # sorted runs of a killed run
        os.makedirs(os.path.dirname(record), exist_ok=True)
        atomic.remove_dead_temporaries([os.path.dirname(record)])
        stats = mh.cluster(
            [plan_.keys_file(i) for i in range(len(plan_.inputs))],
            results,
            params,
            memory_budget=section.memory_budget,
            spill_dir=spill,
            threads=threads * max(1, config.processes),
        )
        shutil.rmtree(spill, ignore_errors=True)
        atomic.write_bytes(record, msgspec.json.encode({"run_key": key, "stats": stats}))

    # 3. mark
    units = [
        Unit(input=p, outputs=(plan_.outputs[i],), record=plan_.record_file(i), needs=(key,))
        for i, p in enumerate(plan_.inputs)
    ]
    keys = {p: plan_.keys_file(i) for i, p in enumerate(plan_.inputs)}
    job = MarkJob(
        keys, dict(zip(plan_.inputs, results)), section.attribute_name, section.cluster_attribute, key, threads
    )
    summary = make_executor(config, f"minhash mark {plan_.attribute_set}").run(job, units)
    summary.stats.counters.update(
        {
            "documents (all files)": stats.documents,
            "clusters (2+ documents)": stats.clusters,
            "near-duplicates (all files)": stats.duplicates,
            "candidate pairs": stats.candidate_pairs,
            "pairs rejected by verify": stats.rejected,
        }
    )
    finish(config, plan_, summary, title, started)
    return 0 if summary.ok else 1


def _cluster_record(path: str, key: str, results: list[str]) -> mh.ClusterStats | None:
    """The statistics of a finished clustering of this run (None when it must be redone)."""
    try:
        data = msgspec.json.decode(io.read_bytes(path))
    except (OSError, DolmaError, msgspec.DecodeError):
        return None
    if not isinstance(data, dict) or data.get("run_key") != key or not all(os.path.exists(p) for p in results):
        return None
    try:
        return msgspec.convert(data.get("stats"), mh.ClusterStats)
    except msgspec.ValidationError:
        return None


def _run_spark(
    config: DedupeConfig,
    plan_: MinHashPlan,
    section: MinHashDedupe,
    params: mh.MinHashParams,
    title: str,
    started: Any,
):
    from dolma.executors.spark import remove_stale_temporaries, spark_context
    from dolma.spark_minhash import spark_minhash

    remove_stale_temporaries(plan_.outputs)
    with spark_context(config.spark, plan_.outputs) as sc:
        summary = spark_minhash(
            sc,
            plan_.inputs,
            plan_.outputs,
            params,
            plan_.key,
            section.attribute_name,
            section.cluster_attribute,
            skip_bad_lines=config.skip_bad_lines,
            s3=config.s3,
        )
    finish(config, plan_, summary, title + " (spark)", started)
    return 0 if summary.ok else 1
