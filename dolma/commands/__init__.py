"""CLI commands, found by name: the framework's own (below) and those of the `dolma.commands` entry point group.

A command module defines a config struct `CONFIG` and a `run(config) -> int` function. Packages that own the
work of a command (mixers: mix and tokens; taggers: train-fasttext) advertise a `Command` under the entry point
group, so the framework never imports them: `dolma` points one way, at nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from typing import Any

from dolma.errors import DolmaError

ENTRY_POINT_GROUP = "dolma.commands"


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    module: str

    def load(self) -> tuple[type, Callable[[Any], int]]:
        mod = import_module(self.module)
        return mod.CONFIG, mod.run


FRAMEWORK_COMMANDS: dict[str, Command] = {
    c.name: c
    for c in [
        Command(
            "tag", "Annotate documents with taggers; write attribute files that mirror them.", "dolma.commands.tag"
        ),
        Command("list", "List every registered tagger with a one-line description.", "dolma.commands.list"),
        Command(
            "dedupe", "Mark repeated documents, paragraphs or n-grams with a Bloom filter.", "dolma.commands.dedupe"
        ),
        Command("warc", "Turn WARC / WET web crawl files into documents (HTML to text).", "dolma.commands.warc"),
        Command("stat", "Histograms, sums and quantiles of attribute scores and span lengths.", "dolma.commands.stat"),
    ]
}


def _load_entry_point(ep: Any) -> Command:
    try:
        command = ep.load()
    except Exception as exc:
        raise DolmaError(f"cannot load command '{ep.name}' ({ep.value}): {exc}") from exc
    if not isinstance(command, Command) or command.name != ep.name:
        raise DolmaError(f"command entry point '{ep.name}' ({ep.value}) is not a Command named '{ep.name}'")
    return command


def find_command(name: str) -> Command | None:
    """The command called `name`, loading only its own entry point (not every installed command)."""
    if name in FRAMEWORK_COMMANDS:
        return FRAMEWORK_COMMANDS[name]
    from importlib.metadata import entry_points  # ~40 ms to import: only for commands of other packages

    # (not `list(...)`: importing the `list` command binds `dolma.commands.list` to that module, here too)
    found = [*entry_points(group=ENTRY_POINT_GROUP, name=name)]
    return _load_entry_point(found[0]) if found else None


@cache
def all_commands() -> dict[str, Command]:
    """Every command: the framework's first, then the entry points' by name. A name given twice is an error."""
    from importlib.metadata import entry_points

    commands = dict(FRAMEWORK_COMMANDS)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        if ep.name in commands:
            raise DolmaError(f"command '{ep.name}' is defined twice (entry point {ep.value})")
        commands[ep.name] = _load_entry_point(ep)
    return commands


def __getattr__(name: str) -> Any:
    # `COMMANDS` is computed on first use: loading the entry points imports the packages that define them.
    if name == "COMMANDS":
        return all_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
