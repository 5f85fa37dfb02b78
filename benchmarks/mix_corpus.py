"""Build a deterministic mixer benchmark corpus: documents plus two attribute sets, gzip JSON lines.

Text is drawn from a fixed word list with a seeded RNG (the sample corpus text is used instead when
tests/data/sample/documents exists), so every run builds byte-identical files. Layout:

    <root>/documents/bench/part-NN.jsonl.gz
    <root>/attributes/quality/bench/part-NN.jsonl.gz   char length + a [0, 1) score per document
    <root>/attributes/pii/bench/part-NN.jsonl.gz       a span per e-mail address

Usage: python benchmarks/mix_corpus.py ROOT [--megabytes 320] [--files 8]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORDS = (  # noqa: SIM905 - a word list reads better as text
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will more about can out up them "
    "data model corpus token filter language training web page text quality document paragraph sentence café "
    "naïve über straße 東京 日本 привет мир"
).split()


def sample_words() -> list[str]:
    """Words from the sample corpus when present (else the built-in list)."""
    docs_dir = REPO / "tests" / "data" / "sample" / "documents"
    words: list[str] = []
    for path in sorted(docs_dir.rglob("*.jsonl.gz")) if docs_dir.is_dir() else []:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                words.extend(json.loads(line).get("text", "").split())
    return words if len(words) > 1000 else WORDS


def build(root: Path, megabytes: int, files: int, seed: int = 1234) -> None:
    rng = random.Random(seed)
    words = sample_words()
    per_file = megabytes * 1_000_000 // files
    for k in range(files):
        rel = Path("bench") / f"part-{k:02d}.jsonl.gz"
        paths = [root / "documents" / rel, root / "attributes" / "quality" / rel, root / "attributes" / "pii" / rel]
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)
        with (
            gzip.open(paths[0], "wt", encoding="utf-8", compresslevel=1) as docs,
            gzip.open(paths[1], "wt", encoding="utf-8", compresslevel=1) as quality,
            gzip.open(paths[2], "wt", encoding="utf-8", compresslevel=1) as pii,
        ):
            size = 0
            i = 0
            while size < per_file:
                doc_id = f"bench-{k}-{i}"
                body = rng.choices(words, k=rng.randint(50, 1200))
                spans = []
                for _ in range(rng.choice((0, 0, 0, 1, 2))):
                    body.insert(rng.randrange(len(body) + 1), f"user{rng.randrange(10**6)}@example.com")
                lines = [" ".join(body[j : j + 14]) for j in range(0, len(body), 14)]
                text = "\n".join(lines)
                pos = 0
                for word in text.replace("\n", " ").split(" "):
                    if "@" in word:
                        spans.append([pos, pos + len(word), round(rng.random(), 5)])
                    pos += len(word) + 1
                doc = {"id": doc_id, "text": text, "source": "bench", "metadata": {"url": f"https://x.org/{i}"}}
                line = json.dumps(doc) + "\n"
                docs.write(line)
                size += len(line.encode("utf-8"))
                quality.write(
                    json.dumps(
                        {
                            "id": doc_id,
                            "attributes": {
                                "q__char_length_v1__length": [[0, len(text), len(text)]],
                                "q__random_number_v1__random": [[0, len(text), round(rng.random(), 5)]],
                            },
                        }
                    )
                    + "\n"
                )
                pii.write(json.dumps({"id": doc_id, "attributes": {"pii__regex__email": spans}}) + "\n")
                i += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--megabytes", type=int, default=320)
    parser.add_argument("--files", type=int, default=8)
    args = parser.parse_args()
    build(args.root, args.megabytes, args.files)


if __name__ == "__main__":
    main()
