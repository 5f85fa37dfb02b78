"""The commands taggers owns, advertised to the `dolma` CLI under the `dolma.commands` entry point group."""

from dolma.commands import Command

TRAIN_FASTTEXT = Command("train-fasttext", "Train a fastText quality/toxicity classifier.", "taggers.train_fasttext")
