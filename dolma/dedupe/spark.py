"""`dedupe` with `executor: spark`: global exact dedupe on a Spark cluster (`dolma.spark_dedupe`)."""

from __future__ import annotations

from dolma import io
from dolma.dedupe.config import DedupeConfig
from dolma.dedupe.local import dedupe_modes
from dolma.dedupe.plan import Plan, _rust_config
from dolma.errors import ConfigError
from dolma.executors.summary import (
    DedupeStats,
    finish_run,
)
from dolma.executors.summary import now as summary_now

# ----------------------------------------------------------------------------------------------------------
# executor: spark (global exact dedupe, dolma.spark_dedupe)
# ----------------------------------------------------------------------------------------------------------


def _check_spark(config: DedupeConfig) -> None:
    """Options of the local Bloom filter run that have no meaning on Spark are errors, not silently ignored."""
    section = config.dedupe
    if (section.num_partitions or 1) > 1 or section.partition_index or section.file_partition:
        raise ConfigError(
            "dedupe.num_partitions / partition_index / file_partition split a local run by hand; with executor "
            "spark the key space is partitioned automatically (set spark.conf spark.default.parallelism)"
        )
    if config.bloom_filter.read_only:
        raise ConfigError(
            "bloom_filter.read_only: executor spark dedupes the documents among themselves and does not use a "
            "Bloom filter; run read-only lookups with executor local"
        )
    filter_path = io.normalize(config.bloom_filter.file)
    if io.exists(filter_path):
        raise ConfigError(
            f"bloom_filter.file {filter_path} exists: executor spark neither reads nor writes a Bloom filter, so "
            "keys inserted by earlier runs would not be found; delete the file, point bloom_filter.file at a new "
            "path, or use executor local"
        )


def _run_spark(config: DedupeConfig, plan_: Plan) -> int:
    from dolma.executors.spark import remove_stale_temporaries, spark_context
    from dolma.spark_dedupe import spark_dedupe

    if config.dryrun:
        for src, dst in zip(plan_.inputs, plan_.outputs):
            print(f"{src} -> {dst}")
        print(
            f"{len(plan_.inputs)} file(s), attribute set '{plan_.attribute_set}', executor spark "
            f"(master {config.spark.master or 'local[*]'}); no Bloom filter is used"
        )
        return 0
    started = summary_now()
    remove_stale_temporaries(plan_.outputs)
    with spark_context(config.spark, plan_.outputs) as sc:
        summary = spark_dedupe(
            sc,
            plan_.inputs,
            plan_.outputs,
            _rust_config(config.dedupe),
            skip_bad_lines=config.skip_bad_lines,
            s3=config.s3,
            quiet=config.quiet,
        )
    remove_stale_temporaries(plan_.outputs)
    counters = summary.stats.counters
    marks = {
        "documents_marked": counters.get("documents marked", 0),
        "paragraphs_marked": counters.get("keys marked", 0),
    }
    finish_run(
        summary,
        command="dedupe",
        title=f"dolma dedupe (spark): attribute set '{plan_.attribute_set}'",
        config=config,
        outputs=plan_.outputs,
        started=started,
        extra={"dedupe": DedupeStats(modes=dedupe_modes(config.dedupe, marks))},
    )
    return 0 if summary.ok else 1
