"""`dolma dedupe`: determinism across thread counts, resume after a failure, planted duplicates, read-only
filters, corrupt filters, partitions, decontamination, bad input, Unicode offsets, S3."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from dolma._rust import BloomFilter
from dolma.executors.summary import is_run_summary
from tests.conftest import SAMPLE, read_jsonl, run_cli, summary_rows, write_jsonl_gz

PARAGRAPHS = ["--dedupe.paragraphs.attribute_name", "dup"]
NGRAMS = [
    *PARAGRAPHS,
    "--dedupe.paragraphs.by_ngram.ngram_length", "4",
    "--dedupe.paragraphs.by_ngram.overlap_threshold", "0.5",
]  # fmt: skip
DOCS_BY_TEXT = ["--dedupe.documents.attribute_name", "dup", "--dedupe.documents.key", "$.text"]


def dedupe(root: Path, *extra: str, name: str = "dd", filter_file: Path | None = None, check: bool = True):
    args = [
        "dedupe",
        "--documents", str(root / "documents" / "**" / "*.jsonl.gz"),
        "--dedupe.name", name,
        "--bloom_filter.file", str(filter_file or root / "filter.bin"),
        "--bloom_filter.estimated_doc_count", "2000000",
        "--bloom_filter.desired_false_positive_rate", "1e-6",
        *extra,
    ]  # fmt: skip
    result = run_cli(*args)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def split_sample(root: Path, parts: int = 6) -> Path:
    """The sample corpus re-split into more files, so several threads really have work at once."""
    docs = [row for path in sorted((SAMPLE / "documents").glob("*/*.jsonl.gz")) for row in read_jsonl(path)]
    for i in range(parts):
        write_jsonl_gz(root / "documents" / f"part-{i:02d}.jsonl.gz", docs[i::parts])
    return root


def attribute_bytes(root: Path, name: str = "dd") -> dict[str, bytes]:
    base = root / "attributes" / name
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*.jsonl.gz"))}


@pytest.mark.parametrize("mode", [DOCS_BY_TEXT, PARAGRAPHS, NGRAMS], ids=["documents", "paragraphs", "ngrams"])
def test_same_attributes_with_1_2_4_threads(tmp_path: Path, mode: list[str]) -> None:
    outputs = []
    for threads in (1, 2, 4):
        root = split_sample(tmp_path / f"t{threads}")
        dedupe(root, *mode, "--processes", str(threads))
        outputs.append(attribute_bytes(root))
    assert len(outputs[0]) == 6
    assert outputs[0] == outputs[1] == outputs[2]
    marked = sum(1 for data in outputs[0].values() for line in gzip.decompress(data).splitlines() if b"[[" in line)
    assert marked > 10


def test_rerun_gives_byte_identical_attributes(tmp_path: Path) -> None:
    root = split_sample(tmp_path / "a")
    dedupe(root, *PARAGRAPHS, "--processes", "2")
    first = attribute_bytes(root)
    (root / "filter.bin").unlink()
    dedupe(root, *PARAGRAPHS, "--processes", "2")
    assert attribute_bytes(root) == first


def test_resume_after_failure_half_way(tmp_path: Path) -> None:
    """A run that dies half-way (here: a corrupt file) saves the filter with the files it completed; the rerun
    skips those and gives identical attributes and filter bits."""
    clean = split_sample(tmp_path / "clean")
    dedupe(clean, *PARAGRAPHS, "--processes", "2")
    expected = attribute_bytes(clean)

    root = split_sample(tmp_path / "resumed")
    victim = root / "documents" / "part-03.jsonl.gz"
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])  # truncated gzip
    failed = dedupe(root, *PARAGRAPHS, "--processes", "1", "--checkpoint_interval", "0", check=False)
    assert failed.returncode != 0
    assert "part-03.jsonl.gz" in failed.stderr
    # The filter file is the checkpoint: it holds (and records) the three files before the failing one.
    assert _filter_inputs(root / "filter.bin") == 3
    done = attribute_bytes(root)
    assert "part-00.jsonl.gz" in done and "part-03.jsonl.gz" not in done

    victim.write_bytes(good)
    resumed = dedupe(root, *PARAGRAPHS, "--processes", "2", "--checkpoint_interval", "0")
    assert summary_rows(resumed.stderr)["skipped (already complete)"] == "3"
    assert attribute_bytes(root) == expected
    # The final filter equals the one of the clean run (but for the paths it records).
    assert filter_bits(root / "filter.bin") == filter_bits(clean / "filter.bin")


# magic, version, num_hashes, num_bits, seed1, seed2, inserted, manifest length; then manifest, bits, checksum
FILTER_HEADER = struct.Struct("<8sIIQQQQQ")


def _filter_inputs(path: Path) -> int | None:
    """How many inputs a filter file records (None: no file yet); reads only the header and the manifest."""
    try:
        with path.open("rb") as fh:
            header = fh.read(FILTER_HEADER.size)
            manifest = fh.read(FILTER_HEADER.unpack(header)[7])
    except FileNotFoundError:
        return None
    return len(json.loads(manifest)["inputs"])


def filter_bits(path: Path) -> bytes:
    """A filter file without its manifest and checksum: the header fields that describe the bits, and the bits
    (two runs over the same content in different directories record different paths)."""
    data = path.read_bytes()
    header = FILTER_HEADER.unpack_from(data)
    start = FILTER_HEADER.size + header[7]
    return data[:48] + data[start : start + header[3] // 8]


@pytest.mark.parametrize("kill_at", ["later-attributes-written", "right-after-a-save", "after-the-final-save"])
def test_sigkill_then_resume_gives_identical_attributes(tmp_path: Path, kill_at: str) -> None:
    """A real crash: SIGKILL the process (once attributes past the last filter save are on disk; right after a
    save; once the final filter is saved), rerun the same command, and get the bytes of an uninterrupted run
    (attributes and filter bits). The rerun never re-marks what the killed run finished."""
    parts = 40  # batches of 4 files with one process, a save after each: 10 saves
    clean = split_sample(tmp_path / "clean", parts=parts)
    dedupe(clean, *NGRAMS, "--processes", "1")
    expected = attribute_bytes(clean)
    assert len(expected) == parts

    root = split_sample(tmp_path / "killed", parts=parts)
    args = [
        sys.executable, "-m", "dolma", "dedupe",
        "--documents", str(root / "documents" / "**" / "*.jsonl.gz"),
        "--dedupe.name", "dd", *NGRAMS,
        "--bloom_filter.file", str(root / "filter.bin"),
        "--bloom_filter.estimated_doc_count", "2000000",
        "--bloom_filter.desired_false_positive_rate", "1e-6",
        "--processes", "1", "--checkpoint_interval", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    out_dir = root / "attributes" / "dd"

    def time_to_kill(saved: int | None, written: int) -> bool:
        if saved is None:
            return False
        if kill_at == "later-attributes-written":
            return 0 < saved < written  # the rerun must redo work that is already on disk
        if kill_at == "right-after-a-save":
            return 0 < saved == written < parts
        return saved == parts

    try:
        while proc.poll() is None:
            if time_to_kill(_filter_inputs(root / "filter.bin"), len(list(out_dir.glob("*.jsonl.gz")))):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait()
    saved = _filter_inputs(root / "filter.bin")
    if kill_at == "after-the-final-save":
        # It may have finished on its own in the instant between the save and the kill.
        assert proc.returncode in (0, -signal.SIGKILL) and saved == parts
    else:
        assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed half-way"
        assert saved is not None and 0 < saved < parts
        assert saved <= len(attribute_bytes(root)) < parts

    resumed = dedupe(root, *NGRAMS, "--processes", "2", "--checkpoint_interval", "0")
    assert summary_rows(resumed.stderr)["skipped (already complete)"] == str(saved)
    assert attribute_bytes(root) == expected
    assert filter_bits(root / "filter.bin") == filter_bits(clean / "filter.bin")
    assert _filter_inputs(root / "filter.bin") == parts


def test_checkpoint_from_other_config_is_refused(tmp_path: Path) -> None:
    root = split_sample(tmp_path)
    victim = root / "documents" / "part-03.jsonl.gz"
    good = victim.read_bytes()
    victim.write_bytes(good[:100])
    dedupe(root, *PARAGRAPHS, "--checkpoint_interval", "0", check=False)
    victim.write_bytes(good)
    result = dedupe(root, *DOCS_BY_TEXT, check=False)
    assert result.returncode != 0 and "different configuration" in result.stderr


def planted_corpus(root: Path, rng: random.Random) -> tuple[set[tuple[str, int]], int]:
    """Unique random paragraphs plus exact copies of earlier ones; returns the (doc id, paragraph) copies."""
    vocab = [f"w{i}" for i in range(5000)]
    seen: list[str] = []
    copies: set[tuple[str, int]] = set()
    unique = 0
    for f in range(4):
        rows = []
        for d in range(150):
            doc_id = f"f{f}d{d}"
            paras = []
            for p in range(rng.randint(1, 12)):
                if seen and rng.random() < 0.2:
                    paras.append(rng.choice(seen))
                    copies.add((doc_id, p))
                else:
                    text = " ".join(rng.choice(vocab) for _ in range(rng.randint(3, 30)))
                    seen.append(text)
                    paras.append(text)
                    unique += 1
            rows.append({"id": doc_id, "text": "\n".join(paras), "source": "planted"})
        write_jsonl_gz(root / "documents" / f"p{f}.jsonl.gz", rows)
    return copies, unique


def test_planted_duplicates_recall_and_false_positive_rate(tmp_path: Path) -> None:
    rng = random.Random(7)
    copies, unique = planted_corpus(tmp_path, rng)
    rate = 0.01
    args = [
        "dedupe",
        "--documents", str(tmp_path / "documents" / "*.jsonl.gz"),
        "--dedupe.name", "dd", *PARAGRAPHS,
        "--bloom_filter.file", str(tmp_path / "filter.bin"),
        "--bloom_filter.estimated_doc_count", str(unique),
        "--bloom_filter.desired_false_positive_rate", str(rate),
    ]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    marked: set[tuple[str, int]] = set()
    for f in range(4):
        docs = read_jsonl(tmp_path / "documents" / f"p{f}.jsonl.gz")
        rows = read_jsonl(tmp_path / "attributes" / "dd" / f"p{f}.jsonl.gz")
        for doc, row in zip(docs, rows):
            starts = {}
            pos = 0
            for i, para in enumerate(doc["text"].split("\n")):
                starts[pos] = i
                pos += len(para) + 1
            for start, _end, _score in row["attributes"]["dup"]:
                marked.add((doc["id"], starts[start]))
    assert copies <= marked, "every planted copy must be marked (recall 100%)"
    false_positives = len(marked - copies)
    # The filter is sized for `unique` keys at `rate`; the rate is an upper bound for a filter that fills up
    # during the run. Allow for binomial noise (3 standard deviations).
    bound = rate * unique + 3 * (rate * unique) ** 0.5
    assert false_positives <= bound, (false_positives, unique)


def test_read_only_filter_is_never_rewritten(tmp_path: Path) -> None:
    evals = tmp_path / "evals"
    write_jsonl_gz(
        evals / "documents" / "e.jsonl.gz",
        [{"id": "e0", "text": "What is the capital of France?\nParis is the capital.", "source": "eval"}],
    )
    dedupe(evals, *PARAGRAPHS, filter_file=tmp_path / "contamination.bin")
    before = (tmp_path / "contamination.bin").read_bytes()
    train = tmp_path / "train"
    write_jsonl_gz(
        train / "documents" / "t.jsonl.gz",
        [
            {"id": "t0", "text": "Some intro.\nWhat is the capital of France?\nMore text.", "source": "web"},
            {"id": "t1", "text": "Unrelated text.\nNothing to see.", "source": "web"},
            {"id": "t2", "text": "Unrelated text.", "source": "web"},
        ],
    )
    dedupe(train, *PARAGRAPHS, "--bloom_filter.read_only", filter_file=tmp_path / "contamination.bin", name="decon")
    rows = read_jsonl(train / "attributes" / "decon" / "t.jsonl.gz")
    assert rows[0]["attributes"]["dup"] == [[12, 43, 1]]
    # Read-only: "Unrelated text." in t2 was not inserted by t1, so it is not marked.
    assert rows[1]["attributes"]["dup"] == [] and rows[2]["attributes"]["dup"] == []
    assert (tmp_path / "contamination.bin").read_bytes() == before


def test_read_only_needs_an_existing_filter(tmp_path: Path) -> None:
    root = split_sample(tmp_path, parts=1)
    result = dedupe(root, *PARAGRAPHS, "--bloom_filter.read_only", check=False)
    assert result.returncode != 0 and "does not exist" in result.stderr


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"NOTAFILT" + b[8:], "bad magic"),
        (lambda b: b[:8] + (99).to_bytes(4, "little") + b[12:], "version"),
        (lambda b: b[:-3] + bytes(3 * [b[-1] ^ 0xFF]), "checksum"),
        (lambda b: b[:40], "truncated"),
    ],
    ids=["magic", "version", "checksum", "truncated"],
)
def test_corrupt_or_foreign_filter_is_rejected(tmp_path: Path, damage, message: str) -> None:
    root = split_sample(tmp_path, parts=1)
    dedupe(root, *PARAGRAPHS)
    data = (root / "filter.bin").read_bytes()
    (root / "filter.bin").write_bytes(damage(data))
    result = dedupe(root, *PARAGRAPHS, "--bloom_filter.read_only", check=False)
    assert result.returncode != 0
    assert "filter.bin" in result.stderr and message in result.stderr.lower()


def test_dryrun_reports_filter_memory(tmp_path: Path) -> None:
    root = split_sample(tmp_path, parts=1)
    result = dedupe(root, *PARAGRAPHS, "--dryrun", "--bloom_filter.estimated_doc_count", "400000")
    # 400k keys at 1e-6: the textbook filter needs -n ln p / ln^2 2 = 11,502,071 bits (1,437,759 bytes); the
    # blocked one (all bits of a key in one 64-byte block) needs 1,961,920 bytes = 30,655 blocks, 16 hashes,
    # which is the fewest blocks whose expected rate after 400k keys is at most 1e-6. (Estimates that give
    # less than 1 MiB get 1 MiB: test_dedupe_reruns.py.)
    assert "1,961,920 bytes" in result.stdout and "16 hashes" in result.stdout
    rate = BloomFilter.expected_false_positive_rate(1_961_920, 16, 400_000)
    assert rate <= 1e-6 and f"expected false-positive rate {rate:.3g}" in result.stdout
    assert min(BloomFilter.expected_false_positive_rate(1_961_920 - 64, k, 400_000) for k in range(1, 33)) > 1e-6
    assert not (root / "attributes").exists() and not (root / "filter.bin").exists()


def test_span_partitions_add_up_to_the_whole(tmp_path: Path) -> None:
    whole = split_sample(tmp_path / "whole", parts=2)
    dedupe(whole, *PARAGRAPHS)
    expected = {name: read_jsonl(whole / "attributes" / "dd" / name) for name in attribute_bytes(whole)}
    part_root = split_sample(tmp_path / "parts", parts=2)
    union: dict[str, list[set]] = {}
    for index in range(3):
        dedupe(
            part_root,
            *PARAGRAPHS,
            "--dedupe.num_partitions", "3",
            "--dedupe.partition_index", str(index),
            filter_file=part_root / f"filter-{index}.bin",
        )  # fmt: skip
        for name in expected:
            rows = read_jsonl(part_root / "attributes" / f"dd_{index}" / name)
            acc = union.setdefault(name, [set() for _ in rows])
            for spans, row in zip(acc, rows):
                spans.update(tuple(s) for s in row["attributes"].get("dup", []))
    for name, rows in expected.items():
        assert [set(tuple(s) for s in r["attributes"].get("dup", [])) for r in rows] == union[name]


def test_file_partitions_split_the_files(tmp_path: Path) -> None:
    root = split_sample(tmp_path, parts=5)
    names = set()
    for index in range(2):
        dedupe(
            root,
            *PARAGRAPHS,
            "--dedupe.num_partitions", "2",
            "--dedupe.partition_index", str(index),
            "--dedupe.file_partition",
            filter_file=root / f"filter-{index}.bin",
        )  # fmt: skip
        names |= {f"{index}:{n}" for n in attribute_bytes(root, f"dd_{index}")}
    assert sorted(names) == [
        "0:part-00.jsonl.gz", "0:part-02.jsonl.gz", "0:part-04.jsonl.gz", "1:part-01.jsonl.gz", "1:part-03.jsonl.gz",
    ]  # fmt: skip


def test_min_words_works(tmp_path: Path) -> None:
    """The reference's min_words silently turns dedupe off; here it skips short paragraphs only."""
    rows = [
        {"id": "a", "text": "one two\nthree four five six\nseven", "source": "s"},
        {"id": "b", "text": "one two\nthree four five six\nseven", "source": "s"},
    ]
    write_jsonl_gz(tmp_path / "documents" / "x.jsonl.gz", rows)
    dedupe(tmp_path, *PARAGRAPHS, "--dedupe.min_words", "3")
    out = read_jsonl(tmp_path / "attributes" / "dd" / "x.jsonl.gz")
    assert out[0]["attributes"]["dup"] == [] and out[1]["attributes"]["dup"] == [[8, 28, 1]]


def test_unicode_offsets_stay_inside_the_text(tmp_path: Path) -> None:
    rng = random.Random(3)
    alphabet = ["a", "é", "日", "🙂", " ", "\n", "\n", "ß", "\u0301", "x"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    texts += texts[:150]
    rows = [{"id": str(i), "text": t, "source": "u"} for i, t in enumerate(texts)]
    write_jsonl_gz(tmp_path / "documents" / "u.jsonl.gz", rows)
    for mode, name in ((PARAGRAPHS, "p"), (DOCS_BY_TEXT, "d")):
        dedupe(tmp_path, *mode, name=name, filter_file=tmp_path / f"{name}.bin")
        rows = read_jsonl(tmp_path / "attributes" / name / "u.jsonl.gz")
        for text, row in zip(texts, rows):
            for start, end, _ in row["attributes"].get("dup", []):
                assert 0 <= start <= end <= len(text)
                if name == "p":
                    span = text[start:end]
                    assert "\n" not in span[:-1], (text, start, end)
                    assert span.rstrip("\n") in text.split("\n")
                else:
                    assert (start, end) == (0, len(text))
        # The second copies of the first 150 texts are all marked (documents mode) when non-empty.
        if name == "d":
            assert all(rows[300 + i]["attributes"].get("dup") for i in range(150))


def test_bad_line_names_file_line_and_field(tmp_path: Path) -> None:
    docs = tmp_path / "documents" / "bad.jsonl.gz"
    docs.parent.mkdir(parents=True)
    with gzip.open(docs, "wt") as fh:
        fh.write(json.dumps({"id": "a", "text": "ok", "source": "s"}) + "\n")
        fh.write(json.dumps({"id": "b", "text": 3, "source": "s"}) + "\n")
    result = dedupe(tmp_path, *PARAGRAPHS, check=False)
    assert result.returncode != 0
    assert "bad.jsonl.gz:2" in result.stderr and "text" in result.stderr
    skipped = dedupe(tmp_path, *PARAGRAPHS, "--skip_bad_lines", "--ignore_existing")
    assert (
        summary_rows(skipped.stderr)["bad lines skipped"] == "1"
        and len(read_jsonl(tmp_path / "attributes" / "dd" / "bad.jsonl.gz")) == 1
    )


def test_missing_document_key_is_an_error(tmp_path: Path) -> None:
    """The reference panics in its threads and exits 0 here; this names the file, line and field."""
    rows = [{"id": "a", "text": "x", "source": "s", "metadata": {"url": "u"}}, {"id": "b", "text": "y", "source": "s"}]
    write_jsonl_gz(tmp_path / "documents" / "m.jsonl.gz", rows)
    key = ["--dedupe.documents.attribute_name", "dup", "--dedupe.documents.key", "$.metadata.url"]
    result = dedupe(tmp_path, *key, check=False)
    assert result.returncode != 0 and "m.jsonl.gz:2" in result.stderr and "metadata.url" in result.stderr


def test_statistics_are_reported(tmp_path: Path) -> None:
    rows = [{"id": str(i), "text": f"same paragraph\nunique {i}", "source": "s"} for i in range(4)]
    write_jsonl_gz(tmp_path / "documents" / "s.jsonl.gz", rows)
    result = dedupe(tmp_path, *PARAGRAPHS)
    # 4 documents, 3 of them marked; 8 paragraphs, 3 marked; 15 bytes ("same paragraph\n") per marked one.
    # (the shared summary table on stderr since the run summary; dedupe printed its own lines on stdout before)
    rows = summary_rows(result.stderr)
    assert (rows["documents in"], rows["documents marked"]) == ("4", "3")
    assert (rows["keys"], rows["keys marked"]) == ("8", "3")
    assert rows["text bytes marked"] == "45"


def test_s3_input_and_output(tmp_path: Path, s3_server, s3_bucket: str) -> None:
    client = s3_server.client()
    rows = [{"id": str(i), "text": f"dup para\nother {i % 2}", "source": "s"} for i in range(4)]
    local = write_jsonl_gz(tmp_path / "x.jsonl.gz", rows)
    client.upload_file(str(local), s3_bucket, "corpus/documents/x.jsonl.gz")
    args = [
        "dedupe",
        "--documents", f"s3://{s3_bucket}/corpus/documents/*.jsonl.gz",
        "--dedupe.name", "dd", *PARAGRAPHS,
        "--bloom_filter.file", f"s3://{s3_bucket}/filters/f.bin",
        "--bloom_filter.estimated_doc_count", "1000",
        "--bloom_filter.desired_false_positive_rate", "1e-6",
        "--s3.endpoint_url", s3_server.endpoint,
    ]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "filters/f.bin" in s3_server.keys(s3_bucket)
    client.download_file(s3_bucket, "corpus/attributes/dd/x.jsonl.gz", str(tmp_path / "out.jsonl.gz"))
    out = [r["attributes"]["dup"] for r in read_jsonl(tmp_path / "out.jsonl.gz")]
    assert out == [[], [[0, 9, 1]], [[0, 9, 1], [9, 16, 1]], [[0, 9, 1], [9, 16, 1]]]


def test_checksum_of_sample_attributes_is_stable_across_runs(tmp_path: Path) -> None:
    digests = set()
    for run in range(2):
        root = tmp_path / f"r{run}"
        shutil.copytree(SAMPLE / "documents", root / "documents")
        dedupe(root, *NGRAMS, "--processes", "2")
        digests.add(hashlib.sha256(b"".join(attribute_bytes(root).values())).hexdigest())
    assert len(digests) == 1


def test_ngram_decontamination_marks_overlap_with_eval_sets(tmp_path: Path) -> None:
    question = "Which planet in the solar system has the largest number of known moons as of this year"
    evals = tmp_path / "evals"
    write_jsonl_gz(evals / "documents" / "e.jsonl.gz", [{"id": "q", "text": question, "source": "eval"}])
    ngram = [
        *PARAGRAPHS,
        "--dedupe.paragraphs.by_ngram.ngram_length", "5",
        "--dedupe.paragraphs.by_ngram.overlap_threshold", "0.5",
    ]  # fmt: skip
    filt = tmp_path / "evals.bin"
    dedupe(evals, *ngram, filter_file=filt, name="fill")
    train = tmp_path / "train"
    leaked = "Quiz time.\nWhich planet in the solar system has the largest number of known moons? Saturn."
    clean = "Quiz time.\nName a planet with rings: Saturn has the most famous ones by far."
    rows = [{"id": "leak", "text": leaked, "source": "web"}, {"id": "clean", "text": clean, "source": "web"}]
    write_jsonl_gz(train / "documents" / "t.jsonl.gz", rows)
    before = filt.read_bytes()
    dedupe(train, *ngram, "--bloom_filter.read_only", filter_file=filt, name="decon")
    out = read_jsonl(train / "attributes" / "decon" / "t.jsonl.gz")
    (start, end, score) = out[0]["attributes"]["dup"][0]
    assert (start, end) == (11, len(leaked)) and 0.5 <= score < 1.0
    assert out[0]["attributes"]["dup"] == [[start, end, score]] and out[1]["attributes"]["dup"] == []
    assert filt.read_bytes() == before


# ----------------------------------------------------------------------------------------------------------
# Streaming: files are read in chunks of whole lines (DOLMA_DEDUPE_CHUNK_BYTES sets the budget)
# ----------------------------------------------------------------------------------------------------------

TINY_CHUNK = "3000"  # bytes: most sample documents are longer, so many chunks hold one line, others several


def mixed_compression_corpus(root: Path) -> Path:
    """The sample corpus as three files, gzip / zstd / plain, each with repeats of documents from the others,
    blank lines and (plain file) no final newline."""
    import zstandard

    docs = [row for path in sorted((SAMPLE / "documents").glob("*/*.jsonl.gz")) for row in read_jsonl(path)]
    shares = [docs[i::3] + [dict(d, id=f"copy-{i}-{d['id']}") for d in docs[(i + 1) % 3 :: 3][:150]] for i in range(3)]
    out = root / "documents"
    out.mkdir(parents=True)
    texts = ["\n".join(json.dumps(row) for row in share) for share in shares]
    texts = [t.replace("\n", "\n\n \n", 1) for t in texts]  # blank lines early on
    (out / "a.jsonl.gz").write_bytes(gzip.compress((texts[0] + "\n").encode(), mtime=0))
    (out / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress((texts[1] + "\n").encode()))
    (out / "c.jsonl").write_text(texts[2], encoding="utf-8")
    return root


def all_attribute_bytes(root: Path, name: str = "dd") -> dict[str, bytes]:
    base = root / "attributes" / name
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and not is_run_summary(p)
    }


@pytest.mark.parametrize("mode", [DOCS_BY_TEXT, PARAGRAPHS, NGRAMS], ids=["documents", "paragraphs", "ngrams"])
def test_tiny_chunks_give_byte_identical_attributes(tmp_path: Path, mode: list[str]) -> None:
    """Files of hundreds of chunks (gzip, zstd, plain) give the bytes of the default chunk size, with 1 and 2
    threads: same first occurrences, same compressed output, same filter (with 2 threads and big chunks the
    lookups are split among the threads by filter block range)."""
    outputs = []
    for chunk, threads in ((None, 1), (TINY_CHUNK, 1), (TINY_CHUNK, 2), (None, 2)):
        root = mixed_compression_corpus(tmp_path / f"c{chunk}-t{threads}")
        env = {"DOLMA_DEDUPE_CHUNK_BYTES": chunk} if chunk else {}
        args = [
            "dedupe", "--documents", str(root / "documents" / "*"), "--dedupe.name", "dd", *mode,
            "--bloom_filter.file", str(root / "filter.bin"),
            "--bloom_filter.estimated_doc_count", "2000000",
            "--bloom_filter.desired_false_positive_rate", "1e-6",
            "--processes", str(threads),
        ]  # fmt: skip
        result = run_cli(*args, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(all_attribute_bytes(root))
        outputs[-1]["filter"] = filter_bits(root / "filter.bin")
    assert sorted(outputs[0]) == ["a.jsonl.gz", "b.jsonl.zst", "c.jsonl", "filter"]
    assert outputs[0] == outputs[1] == outputs[2] == outputs[3]
    rows = [json.loads(line) for line in outputs[0]["c.jsonl"].splitlines()]
    assert len(rows) == 800 + 150 and sum(1 for r in rows if r["attributes"].get("dup")) >= 150


def _big_file_with_bad_line(path: Path, bad_at: int) -> tuple[bytes, bytes]:
    """A gzip documents file of 1,500 lines whose line `bad_at` has a numeric text; returns (bad, good) bytes."""
    rows = [{"id": f"d{i}", "text": f"paragraph {i % 97} of the text\nline {i}", "source": "s"} for i in range(1500)]
    lines = [json.dumps(r) for r in rows]
    good = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    lines[bad_at - 1] = json.dumps({"id": "bad", "text": 3, "source": "s"})
    bad = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bad)
    return bad, good


def test_bad_line_in_a_later_chunk_names_file_and_line(tmp_path: Path) -> None:
    _big_file_with_bad_line(tmp_path / "documents" / "big.jsonl.gz", bad_at=1234)
    env = {"DOLMA_DEDUPE_CHUNK_BYTES": "2000"}
    args = ["--documents", str(tmp_path / "documents" / "*.jsonl.gz"), "--dedupe.name", "dd", *PARAGRAPHS]
    common = ["--bloom_filter.file", str(tmp_path / "f.bin"), "--bloom_filter.size_in_bytes", "65536",
              "--bloom_filter.desired_false_positive_rate", "1e-6"]  # fmt: skip
    result = run_cli("dedupe", *args, *common, env=env)
    assert result.returncode != 0
    assert "big.jsonl.gz:1234" in result.stderr and "text" in result.stderr, result.stderr[-2000:]
    # Nothing of the failed file is left behind (no attributes, no temporary file).
    assert not list((tmp_path / "attributes").rglob("*")) or not any(
        p.is_file() for p in (tmp_path / "attributes").rglob("*")
    )
    skipped = run_cli("dedupe", *args, *common, "--skip_bad_lines", "--ignore_existing", env=env)
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    assert len(read_jsonl(tmp_path / "attributes" / "dd" / "big.jsonl.gz")) == 1499
    assert summary_rows(skipped.stderr)["bad lines skipped"] == "1"


def test_failure_inside_a_file_keeps_the_last_whole_file_checkpoint(tmp_path: Path) -> None:
    """A file that fails after its first chunks were inserted is not checkpointed as done or as not started:
    the checkpoint stays at the last batch, and the rerun gives the bytes of an uninterrupted run."""
    env = {"DOLMA_DEDUPE_CHUNK_BYTES": "2000"}
    clean = split_sample(tmp_path / "clean")
    _, good = _big_file_with_bad_line(clean / "documents" / "part-99.jsonl.gz", bad_at=1400)
    (clean / "documents" / "part-99.jsonl.gz").write_bytes(good)
    dedupe(clean, *PARAGRAPHS, "--processes", "1")
    expected = attribute_bytes(clean)

    root = split_sample(tmp_path / "failed")
    victim = root / "documents" / "part-99.jsonl.gz"
    _big_file_with_bad_line(victim, bad_at=1400)

    def run(processes: str):
        return run_cli(
            "dedupe", "--documents", str(root / "documents" / "*.jsonl.gz"), "--dedupe.name", "dd", *PARAGRAPHS,
            "--bloom_filter.file", str(root / "filter.bin"), "--bloom_filter.estimated_doc_count", "2000000",
            "--bloom_filter.desired_false_positive_rate", "1e-6", "--processes", processes,
            "--checkpoint_interval", "0", env=env,
        )  # fmt: skip

    failed = run("1")
    assert failed.returncode != 0 and "part-99.jsonl.gz:1400" in failed.stderr
    assert "not checkpointed" in " ".join((failed.stdout + failed.stderr).split())
    # Batches of 4 files with one process: the checkpoint after the first batch, not after part-05.
    assert _filter_inputs(root / "filter.bin") == 4
    assert "part-99.jsonl.gz" not in attribute_bytes(root)

    victim.write_bytes(good)
    resumed = run("2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert summary_rows(resumed.stderr)["skipped (already complete)"] == "4"
    assert attribute_bytes(root) == expected
    assert filter_bits(root / "filter.bin") == filter_bits(clean / "filter.bin")


PEAK_RSS_SCRIPT = r"""
import json, sys
from dolma._rust import BloomFilter, Deduper
from dolma.config import build
from dolma.dedupe.config import DedupeSection
from dolma.dedupe.plan import _rust_config
path, out, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = {"name": "dd", "documents": {"attribute_name": "dup", "key": "$.text"}}
deduper = Deduper(_rust_config(build(DedupeSection, overrides=config)), chunk_bytes=chunk)
stats = deduper.run(BloomFilter(1 << 20, 4, seed=1), [path], [out], threads=2)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"hwm_kib": int(status["VmHWM"].split()[0]), "documents": stats["documents"]}))
"""


def _peak_rss_kib(tmp_path: Path, mb: int, chunk: int) -> int:
    """Peak RSS of a fresh process that dedupes one plain file of about `mb` MB (documents mode)."""
    path = tmp_path / f"big-{mb}.jsonl"
    line = json.dumps({"id": "x", "text": "lorem ipsum dolor sit amet " * 40, "source": "s"})
    with path.open("w") as fh:
        for i in range(mb * 1024 * 1024 // (len(line) + 8)):
            fh.write(line.replace('"x"', f'"{i}"', 1).replace("lorem", f"{i:07d}", 1) + "\n")
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT, str(path), str(tmp_path / f"out-{mb}.jsonl"), str(chunk)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["documents"] > 0
    path.unlink()
    return result["hwm_kib"]


def test_peak_memory_does_not_grow_with_file_size(tmp_path: Path) -> None:
    """A 96 MB file takes about the memory of a 6 MB one (1 MiB chunks); whole-file reading would add 90 MB."""
    small = _peak_rss_kib(tmp_path, 6, 1 << 20)
    big = _peak_rss_kib(tmp_path, 96, 1 << 20)
    assert big - small < 24 * 1024, (small, big)


def test_attribute_files_are_synced_before_they_are_renamed_into_place(tmp_path: Path) -> None:
    """The filter save records which files are done, so an attribute file must be on disk, not only in the page
    cache, when it appears under its name (after a power loss a rename without the data can leave it empty).
    Checked on the system calls (strace): every attribute file's temporary is fsynced before its rename."""
    import re

    root = split_sample(tmp_path, parts=3)
    log = tmp_path / "strace.log"
    args = [
        "dedupe",
        "--documents", str(root / "documents" / "**" / "*.jsonl.gz"),
        "--dedupe.name", "dd",
        "--bloom_filter.file", str(root / "filter.bin"),
        "--bloom_filter.estimated_doc_count", "100000",
        "--bloom_filter.desired_false_positive_rate", "1e-6",
        *DOCS_BY_TEXT,
    ]  # fmt: skip
    trace = ["strace", "-f", "-y", "-qq", "-o", str(log), "-e", "trace=fsync,fdatasync,rename,renameat,renameat2"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([*trace, sys.executable, "-m", "dolma", *args], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    synced: set[str] = set()
    renamed: dict[str, bool] = {}  # target -> its temporary was synced first
    for line in log.read_text().splitlines():
        if m := re.search(r"\bf(?:data)?sync\(\d+<(.*)>\)\s+= 0", line):
            synced.add(m.group(1))
        elif "rename" in line and line.rstrip().endswith("= 0"):
            paths = re.findall(r'"([^"]*)"', line)
            renamed[paths[-1]] = paths[0] in synced
    outputs = sorted(str(p) for p in (root / "attributes" / "dd").glob("*.jsonl.gz"))
    assert len(outputs) == 3
    assert {out: renamed.get(out) for out in outputs} == {out: True for out in outputs}
