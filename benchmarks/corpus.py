"""Deterministic benchmark corpus builder: scales sample text up to a target size, varied so it does not repeat.

    python benchmarks/corpus.py --out /tmp/bench-corpus --size-mb 100

Source text: the sample corpus (tests/data/sample/documents) when present, else a built-in generator.
Each output document mixes sentences drawn (seeded) from many source documents, with words occasionally
swapped, re-cased or replaced by generated words, and line structure (bullets, repeated lines, blank lines)
varied, so n-gram and line statistics stay realistic rather than degenerate. Same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "sample" / "documents"
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ta",
    "ri",
    "su",
    "po",
    "de",
    "fa",
    "gu",
    "hi",
    "ja",
    "ke",
    "lu",
    "mo",
    "na",
    "pe",
    "qu",
    "ra",
    "se",
    "ti",
    "vo",
    "wa",
    "xe",
    "yo",
    "zu",
    "an",
    "el",
    "in",
    "on",
]
COMMON = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "her",
    "she",
    "there",
    "been",
    "one",
    "all",
    "we",
    "their",
    "has",
    "would",
    "when",
    "if",
    "so",
    "no",
    "will",
    "more",
    "can",
    "out",
    "up",
    "time",
]


def sample_sentences() -> list[str]:
    sentences: list[str] = []
    for path in sorted(SAMPLE.rglob("*.jsonl*")) if SAMPLE.is_dir() else []:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                text = json.loads(line).get("text", "")
                sentences.extend(s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if 3 <= len(s) <= 2000)
    return sentences


def generated_sentences(rng: random.Random, n: int) -> list[str]:
    vocab = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(5000)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    out = []
    for _ in range(n):
        k = rng.randint(3, 25)
        words = [rng.choice(COMMON) if rng.random() < 0.35 else w for w in rng.choices(vocab, weights, k=k)]
        words[0] = words[0].capitalize()
        out.append(" ".join(words) + rng.choice(".....!?:"))
    return out


def vary(sentence: str, rng: random.Random) -> str:
    words = sentence.split(" ")
    for _ in range(rng.randint(0, 3)):
        i = rng.randrange(len(words))
        r = rng.random()
        if r < 0.4:
            words[i] = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))
        elif r < 0.7 and len(words) > 1:
            j = rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
        else:
            words[i] = words[i].upper() if rng.random() < 0.3 else words[i].lower()
    return " ".join(words)


def document(rng: random.Random, pool: list[str]) -> str:
    lines: list[str] = []
    for _ in range(max(1, int(rng.lognormvariate(2.0, 0.8)))):
        r = rng.random()
        if r < 0.05:
            lines.append("- " + vary(rng.choice(pool), rng))
        elif r < 0.08 and lines:
            lines.append(rng.choice(lines))
        elif r < 0.10:
            lines.append("")
        else:
            lines.append(" ".join(vary(rng.choice(pool), rng) for _ in range(rng.randint(1, 6))))
    return "\n".join(lines)


def build(out: Path, size_mb: float, files: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    pool = sample_sentences() or generated_sentences(rng, 200_000)
    target = int(size_mb * 1_000_000)
    per_file = target // files + 1
    docs = written = 0
    out = out / "documents" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        path = out / f"part-{f:04d}.jsonl.gz"
        size = 0
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as fh:
            while size < per_file:
                text = document(rng, pool)
                fh.write(json.dumps({"id": f"bench-{docs}", "text": text, "source": "bench"}) + "\n")
                size += len(text.encode("utf-8"))
                docs += 1
        written += size
    return docs, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="corpus root (documents/bench/*.jsonl.gz inside)")
    parser.add_argument("--size-mb", type=float, default=100.0, help="total text size in MB (10^6 bytes)")
    parser.add_argument("--files", type=int, default=10, help="number of output files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    docs, size = build(args.out, args.size_mb, args.files, args.seed)
    print(f"wrote {docs} documents, {size / 1e6:.1f} MB of text, to {args.out / 'documents' / 'bench'}")


if __name__ == "__main__":
    main()
