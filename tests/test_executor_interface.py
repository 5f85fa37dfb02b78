"""One executor interface: `make_executor` returns an `Executor` (run(job, units) -> Summary), local or Spark."""

from __future__ import annotations

import typing

import pytest

from dolma import config as dconfig
from dolma.commands.tag import TagConfig
from dolma.executor import Executor, LocalExecutor, Summary, make_executor


def test_make_executor_is_typed_with_the_interface():
    hints = typing.get_type_hints(make_executor)
    assert hints["return"] is Executor
    assert typing.get_type_hints(Executor.run)["return"] is Summary
    with pytest.raises(TypeError):
        Executor()  # abstract: an executor must implement run


@pytest.mark.parametrize("executor", ["local", "spark"])
def test_both_executors_implement_it(executor):
    config = dconfig.build(TagConfig, overrides=["--documents", "x", "--taggers", "a", "--executor", executor])
    made = make_executor(config, "test")
    assert isinstance(made, Executor)
    assert isinstance(made, LocalExecutor) == (executor == "local")
