"""Reading for `tokens`: a source file's documents (text, id, line), and a group's drawn from a ring of files."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from dolma.documents import ReadStats, read_records

# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class SourceDoc:
    text: str
    id: str
    src: str
    loc: int


def _doc_decoder(text_field: str, id_field: str) -> msgspec.json.Decoder:
    """Decode only the two fields we need (others are skipped by the parser, not materialized)."""
    struct = msgspec.defstruct(
        "TokensInput",
        [("text", str), ("id", str | int)],
        rename={"text": text_field, "id": id_field},
    )
    return msgspec.json.Decoder(struct)


def read_source(
    path: str, decoder: msgspec.json.Decoder, fields: tuple[str, str], skip_bad_lines: bool, stats: ReadStats
) -> Iterator[SourceDoc]:
    """Documents of one file with their 1-based line (the one reader: bad lines raise or are counted)."""
    text_field, id_field = fields
    rules = ((text_field, (str,), True), (id_field, (str, int), True))
    for lineno, obj, _ in read_records(path, decoder.decode, rules, skip_bad_lines=skip_bad_lines, stats=stats):
        if obj is not None:
            yield SourceDoc(text=obj.text, id=str(obj.id), src=path, loc=lineno)


def ring_documents(
    files: list[str],
    ring_size: int,
    rng: random.Random,
    reader,
) -> Iterator[SourceDoc]:
    """Draw documents at random from up to `ring_size` open files; a finished file is replaced by the next."""
    pending = list(reversed(files))
    ring: list[Iterator[SourceDoc]] = []
    while pending and len(ring) < max(1, ring_size):
        ring.append(reader(pending.pop()))
    while ring:
        idx = rng.randrange(len(ring))
        try:
            yield next(ring[idx])
        except StopIteration:
            ring[idx] = ring[-1]
            ring.pop()
            if pending:
                ring.append(reader(pending.pop()))
