"""Executors run a command's `Job` over its `Unit`s, locally or on Spark, and report how it went.

- `base`: units, jobs, unit stats, the `Summary`, the `Executor` interface and the one retry rule;
- `local`: worker processes (`LocalExecutor`); `spark`: Spark tasks (`SparkExecutor`);
- `summary`: the run summary every command writes and the one summary table every command prints.

`make_executor` picks the executor a command's RunOptions ask for.
"""

from __future__ import annotations

from typing import Any

from dolma.executors.base import Executor


def make_executor(config: Any, description: str, ignore_existing: bool | None = None) -> Executor:
    """The executor a command's RunOptions ask for: LocalExecutor, or SparkExecutor when `executor: spark`.

    Both have the same `run(job, units) -> Summary` contract, so commands never depend on where units run.
    `ignore_existing` overrides the config's (a pass that must always run, like the mixer's counting pass).
    """
    skip = config.ignore_existing if ignore_existing is None else ignore_existing
    if getattr(config, "executor", "local") == "spark":
        from dolma.executors.spark import SparkExecutor

        return SparkExecutor(
            config.spark,
            retries=config.retries,
            quiet=config.quiet,
            ignore_existing=skip,
            description=description,
        )
    from dolma.executors.local import LocalExecutor

    return LocalExecutor(
        processes=1 if config.debug else config.processes,
        retries=config.retries,
        quiet=config.quiet,
        ignore_existing=skip,
        description=description,
    )
