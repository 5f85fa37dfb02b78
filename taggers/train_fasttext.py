"""`dolma train-fasttext`: train a fastText quality or toxicity classifier from labelled documents.

Positive and negative documents come from JSONL globs (Dolma documents: `id` and `text`). A deterministic
held-out split (by a hash of the document id and the seed) measures precision, recall and F1 of the
positive label; the model is saved where `fasttext_classifier_v1` (or a named classifier tagger) loads it.
Training uses one thread by default, which makes the model reproducible run to run.

Defaults are sized for a quality classifier on a few MB to a few GB of text: the n-gram hash table (`bucket`) grows
with the training tokens instead of fastText's fixed 2M rows (2M x dim 100 floats = 800 MB for any input), and
`quantize` writes a compressed `.ftz` (product quantisation, vocabulary pruned to `quantize_cutoff`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Annotated, Any

from msgspec import Meta

from dolma import atomic, io
from dolma.config import Base
from dolma.documents import ReadStats, read_documents
from dolma.errors import ConfigError
from dolma.executors.base import Summary, UnitStats
from dolma.executors.summary import Source, finish_run, now
from dolma.io import S3Config
from dolma.paths import check_outputs, check_path
from taggers.language import load_fasttext  # noqa: F401 - silences fastText's load warning


class TrainFastTextConfig(Base):
    positive: Annotated[list[str], Meta(description="Globs of documents of the positive class (local or s3://).")]
    negative: Annotated[list[str], Meta(description="Globs of documents of the negative class (local or s3://).")]
    model_path: Annotated[str, Meta(description="Where to save the model (.bin; local path or s3:// URL).")]
    positive_label: Annotated[str, Meta(description="Label name of the positive class (span type when tagging).")] = (
        "pos"
    )
    negative_label: Annotated[str, Meta(description="Label name of the negative class.")] = "neg"
    test_fraction: Annotated[float, Meta(description="Fraction of documents held out for evaluation.", ge=0, lt=1)] = (
        0.1
    )
    seed: Annotated[int, Meta(description="Seed of the held-out split and of fastText.")] = 0
    epoch: Annotated[int, Meta(description="Training epochs.", ge=1)] = 10
    lr: Annotated[float, Meta(description="Learning rate (lower it if training diverges).", gt=0)] = 0.2
    word_ngrams: Annotated[int, Meta(description="Word n-gram length (2 = bigrams, as the Dolma models).", ge=1)] = 2
    dim: Annotated[int, Meta(description="Embedding dimension.", ge=1)] = 50
    min_count: Annotated[int, Meta(description="Ignore words seen fewer times.", ge=1)] = 2
    bucket: Annotated[
        Annotated[int, Meta(ge=0)] | None,
        Meta(
            description="Rows of the word n-gram hash table. Default: scaled to the data (a power of two near the "
            "training tokens / 8, from 16,384 to 2,000,000; 0 when word_ngrams is 1)."
        ),
    ] = None
    quantize: Annotated[
        bool, Meta(description="Save a quantized model (.ftz: model_path must end in .ftz), a fraction of the size.")
    ] = False
    quantize_cutoff: Annotated[
        int, Meta(description="Words and n-grams kept when quantizing, the most important first (0 = all).", ge=0)
    ] = 100_000
    threads: Annotated[int, Meta(description="Training threads (1 is reproducible).", ge=1)] = 1
    max_chars: Annotated[int, Meta(description="Characters of each document used (0 = all).", ge=0)] = 0
    report: Annotated[str | None, Meta(description="Optional path of a JSON file with the evaluation.")] = None
    skip_bad_lines: Annotated[bool, Meta(description="Skip and count invalid input lines instead of failing.")] = False
    s3: Annotated[S3Config | None, Meta(description="S3 endpoint/credentials override.")] = None
    summary_path: Annotated[
        str | None,
        Meta(description="Where to write the JSON run summary. Default: beside the model (docs/run-summary.md)."),
    ] = None


CONFIG = TrainFastTextConfig


def _clean(text: str, max_chars: int) -> str:
    """One line of fastText input: whitespace collapsed (a newline would end the example)."""
    if max_chars:
        text = text[:max_chars]
    return " ".join(text.split())


def _held_out(doc_id: str, seed: int, fraction: float) -> bool:
    digest = hashlib.blake2b(f"{seed}\x00{doc_id}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


def _inputs(globs: list[str], field: str) -> list[str]:
    paths = io.expand_globs([io.normalize(g) for g in globs])
    if not paths:
        raise ConfigError(f"{field}: no documents match {globs}")
    return paths


def _examples(
    paths: list[str], label: str, config: TrainFastTextConfig, train, test, read: ReadStats
) -> tuple[int, int]:
    """Writes the documents' lines to the train and test files: (documents, training tokens)."""
    n = tokens = 0
    for path in paths:
        for _, doc in read_documents(path, skip_bad_lines=config.skip_bad_lines, stats=read):
            text = _clean(doc.text, config.max_chars)
            if not text:
                continue
            line = f"__label__{label} {text}\n"
            if _held_out(doc.id, config.seed, config.test_fraction):
                test.write(line)
            else:
                train.write(line)
                tokens += text.count(" ") + 1
            n += 1
    return n, tokens


def auto_bucket(tokens: int, word_ngrams: int) -> int:
    """Hash rows for word n-grams: about one per 8 training tokens (a power of two), 16,384 to 2,000,000."""
    if word_ngrams <= 1:
        return 0
    rows = 1 << max(tokens // 8, 1).bit_length()
    return max(16_384, min(rows, 2_000_000))


def _write_summary(
    config: TrainFastTextConfig,
    files: list[str],
    read: dict[str, ReadStats],
    used: dict[str, int],
    metrics: dict[str, float | int],
    started: Any,
) -> None:
    """The run summary: documents read and used per class (the sources), the model's size and evaluation."""
    model_path = io.normalize(config.model_path)
    summary = Summary(units=len(files), succeeded=len(files))
    for name, stats in read.items():
        summary.stats.add(
            UnitStats(
                documents_in=stats.documents,
                documents_out=used[name],
                bad_lines=stats.bad_lines,
                bytes_in=stats.bytes,
            )
        )
    summary.stats.bytes_out = io.size(model_path)
    summary.stats.counters = {"test documents": int(metrics["test_documents"])}
    sources = [
        Source(name=name, documents_in=stats.documents, documents_out=used[name], bytes_in=stats.bytes)
        for name, stats in read.items()
    ]
    finish_run(
        summary,
        command="train-fasttext",
        title=f"dolma train-fasttext: {config.model_path}",
        config=config,
        outputs=[model_path],
        started=started,
        extra={"sources": sources, "evaluation": metrics},
    )


def evaluate(model, test_path: str, positive: str) -> dict[str, float | int]:
    """Precision, recall and F1 of the positive label on the held-out file, plus accuracy."""
    tp = fp = fn = correct = total = 0
    with open(test_path, encoding="utf-8") as fh:
        for line in fh:
            gold, _, text = line.rstrip("\n").partition(" ")
            (pred,), _ = model.predict(text, k=1)
            total += 1
            correct += pred == gold
            is_pos, said_pos = gold == f"__label__{positive}", pred == f"__label__{positive}"
            tp += is_pos and said_pos
            fp += said_pos and not is_pos
            fn += is_pos and not said_pos
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "test_documents": total,
        "accuracy": correct / total if total else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def run(config: TrainFastTextConfig) -> int:
    if config.positive_label == config.negative_label:
        raise ConfigError("positive_label and negative_label must differ")
    io.configure_s3(config.s3)
    positive, negative = _inputs(config.positive, "positive"), _inputs(config.negative, "negative")
    model_path = io.normalize(check_path(config.model_path, "model_path"))
    report_path = io.normalize(check_path(config.report, "report")) if config.report is not None else None
    outputs = [model_path] + ([report_path] if report_path else [])
    if model_path == report_path:
        raise ConfigError(f"model_path and report are the same file ({model_path})")
    if config.quantize and not model_path.endswith(".ftz"):
        raise ConfigError(f"model_path: a quantized model is a .ftz file, got {config.model_path}")
    check_outputs("train-fasttext", positive + negative, outputs)
    import fasttext

    started = now()
    read = {"positive": ReadStats(), "negative": ReadStats()}
    with tempfile.TemporaryDirectory(prefix="dolma-train-fasttext-") as tmp:
        train_path, test_path = os.path.join(tmp, "train.txt"), os.path.join(tmp, "test.txt")
        with open(train_path, "w", encoding="utf-8") as train, open(test_path, "w", encoding="utf-8") as test:
            n_pos, pos_tokens = _examples(positive, config.positive_label, config, train, test, read["positive"])
            n_neg, neg_tokens = _examples(negative, config.negative_label, config, train, test, read["negative"])
        if os.path.getsize(train_path) == 0:
            raise ConfigError("no training documents with text (all were held out or empty)")
        bucket = (
            config.bucket if config.bucket is not None else auto_bucket(pos_tokens + neg_tokens, config.word_ngrams)
        )
        try:
            model = fasttext.train_supervised(
                input=train_path,
                epoch=config.epoch,
                lr=config.lr,
                wordNgrams=config.word_ngrams,
                dim=config.dim,
                minCount=config.min_count,
                bucket=bucket,
                thread=config.threads,
                seed=config.seed,
                verbose=0,
            )
        except RuntimeError as exc:
            if "NaN" not in str(exc):
                raise
            raise ConfigError(f"training diverged (NaN) with lr {config.lr}: lower lr (or change dim)") from None
        metrics = evaluate(model, test_path, config.positive_label)
        extra: dict[str, float | int] = {}
        if config.quantize:
            extra["unquantized_f1"] = metrics["f1"]
            model.quantize(
                input=train_path, qnorm=True, retrain=True, cutoff=config.quantize_cutoff, thread=config.threads
            )
            metrics = evaluate(model, test_path, config.positive_label)
        local_model = os.path.join(tmp, "model.ftz" if config.quantize else "model.bin")
        model.save_model(local_model)
        extra.update({"bucket": bucket, "dim": config.dim, "model_bytes": os.path.getsize(local_model)})
        atomic.copy(local_model, model_path)
    report = {
        "positive_documents": n_pos,
        "negative_documents": n_neg,
        "model_path": config.model_path,
        **metrics,
        **extra,
    }
    if report_path:
        atomic.write_bytes(report_path, (json.dumps(report, indent=2) + "\n").encode())
    _write_summary(config, positive + negative, read, {"positive": n_pos, "negative": n_neg}, metrics, started)
    print(
        f"trained on {n_pos} positive / {n_neg} negative documents; held out {metrics['test_documents']}: "
        f"precision {metrics['precision']:.4f} recall {metrics['recall']:.4f} f1 {metrics['f1']:.4f} "
        f"accuracy {metrics['accuracy']:.4f}; model ({extra['model_bytes'] / 1e6:.1f} MB) saved to {config.model_path}"
    )
    return 0
