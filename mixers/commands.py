"""The commands mixers owns, advertised to the `dolma` CLI under the `dolma.commands` entry point group."""

from dolma.commands import Command

MIX = Command("mix", "Filter, edit, sample and shard documents by their attributes.", "mixers.mix")
TOKENS = Command("tokens", "Tokenize documents into token-id shards plus a document index.", "mixers.tokens_command")
REPORT = Command(
    "report",
    "Write one self-contained HTML page of charts: sources, languages, histograms with mix thresholds, rules.",
    "mixers.report",
)
