"""CLI commands. Each command module defines a config struct and a `run(config) -> int` function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    module: str

    def load(self) -> tuple[type, Callable[[Any], int]]:
        mod = import_module(self.module)
        return mod.CONFIG, mod.run


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in [
        Command(
            "tag", "Annotate documents with taggers; write attribute files that mirror them.", "dolma.commands.tag"
        ),
        Command("list", "List every registered tagger with a one-line description.", "dolma.commands.list"),
        Command(
            "dedupe", "Mark repeated documents, paragraphs or n-grams with a Bloom filter.", "dolma.commands.dedupe"
        ),
        Command("mix", "Filter, edit, sample and shard documents by their attributes.", "dolma.commands.mix"),
        Command("tokens", "Tokenize documents into token-id shards plus a document index.", "dolma.commands.tokens"),
        Command("warc", "Turn WARC / WET web crawl files into documents (HTML to text).", "dolma.commands.warc"),
        Command("train-fasttext", "Train a fastText quality/toxicity classifier.", "dolma.commands.train_fasttext"),
    ]
}
