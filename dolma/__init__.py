"""dolma-toolkit: curate pretraining corpora (tag, dedupe, mix, tokenize) locally, on S3 and on Spark."""

__version__ = "0.1.0"
