"""`dolma list`: every registered tagger (built-in, entry points, `tagger_modules`) with its description."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from dolma import registry
from dolma.config import Base


class ListConfig(Base):
    tagger_modules: Annotated[
        list[str], Meta(description="Extra modules (dotted names or .py paths) that register taggers.")
    ] = []
    plain: Annotated[bool, Meta(description="Tab-separated output without a table.")] = False


CONFIG = ListConfig


def run(config: ListConfig) -> int:
    taggers = registry.all_taggers(config.tagger_modules)
    if config.plain:
        for name, cls in taggers.items():
            print(f"{name}\t{cls.__module__}.{cls.__qualname__}\t{cls.description}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(taggers)} taggers")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("class")
    table.add_column("description")
    for name, cls in taggers.items():
        table.add_row(name, f"{cls.__module__}.{cls.__qualname__}", cls.description)
    Console(soft_wrap=False).print(table)
    return 0
