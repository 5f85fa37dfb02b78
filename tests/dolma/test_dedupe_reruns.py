"""`dolma dedupe` reruns, incremental batches, filter priors, settings checks, saturation and verified filter files.

The filter file records what went into it (its inputs by path, size and content fingerprint, and the settings
that define the keys), so a rerun knows which inputs are already in it: a finished run is not redone (it would
find every key of its own and mark everything), new inputs are deduped against the old ones, and anything that
cannot be answered correctly is an error that says what to do.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import pytest

from dolma._rust import file_fingerprint
from tests.conftest import read_jsonl, run_cli, summary_rows, write_jsonl_gz
from tests.dolma.test_dedupe import (
    DOCS_BY_TEXT,
    FILTER_HEADER,
    NGRAMS,
    PARAGRAPHS,
    attribute_bytes,
    dedupe,
    filter_bits,
    mixed_compression_corpus,
    split_sample,
)

HEADER = FILTER_HEADER


def manifest_of(path: Path) -> dict | None:
    """The manifest of a filter file, or None if there is no (complete) file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < HEADER.size:
        return None
    length = HEADER.unpack_from(data)[7]
    return json.loads(data[HEADER.size : HEADER.size + length])


def marked_rows(tree: dict[str, bytes]) -> int:
    return sum(1 for data in tree.values() for line in gzip.decompress(data).splitlines() if b"[[" in line)


def one_line(text: str) -> str:
    return " ".join(text.split())


# ----------------------------------------------------------------------------------------------------------
# Reruns and incremental batches
# ----------------------------------------------------------------------------------------------------------


def test_rerun_of_a_finished_run_does_nothing(tmp_path: Path) -> None:
    root = split_sample(tmp_path)
    dedupe(root, *PARAGRAPHS, "--processes", "2")
    first = attribute_bytes(root)
    assert len(first) == 6 and marked_rows(first) > 10
    files = [*sorted((root / "attributes").rglob("*.gz")), root / "filter.bin"]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}

    again = dedupe(root, *PARAGRAPHS, "--processes", "2")
    assert summary_rows(again.stderr)["skipped (already complete)"] == "6"
    # Nothing was rewritten: same bytes, same modification times (a re-marking run would mark every row).
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before


def test_new_batches_are_deduped_against_the_filter(tmp_path: Path) -> None:
    """Crawl batches added over time: each rerun processes only the new files, marks their repeats of earlier
    batches, and the result is byte-identical to one run over everything."""
    whole = split_sample(tmp_path / "whole")
    dedupe(whole, *NGRAMS)
    expected = attribute_bytes(whole)

    root = split_sample(tmp_path / "batches")
    later = tmp_path / "later"
    later.mkdir()
    for name in ("part-03.jsonl.gz", "part-04.jsonl.gz", "part-05.jsonl.gz"):
        shutil.move(root / "documents" / name, later / name)
    dedupe(root, *NGRAMS)
    first_batch = attribute_bytes(root)
    assert sorted(first_batch) == ["part-00.jsonl.gz", "part-01.jsonl.gz", "part-02.jsonl.gz"]
    stamps = {p: p.stat().st_mtime_ns for p in (root / "attributes").rglob("*.gz")}

    for path in later.iterdir():
        shutil.move(path, root / "documents" / path.name)
    second = dedupe(root, *NGRAMS)
    rows = summary_rows(second.stderr)
    assert (rows["skipped (already complete)"], rows["processed"]) == ("3", "3")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps, "the first batch is not redone"
    assert attribute_bytes(root) == expected
    new_files = {k: v for k, v in expected.items() if k >= "part-03"}
    assert marked_rows(new_files) > 0, "repeats of the first batch are marked in the second"
    assert filter_bits(root / "filter.bin") == filter_bits(whole / "filter.bin")
    recorded = [Path(r["path"]).name for r in manifest_of(root / "filter.bin")["inputs"]]
    assert recorded == [f"part-{i:02d}.jsonl.gz" for i in range(6)]


def test_yesterdays_filter_is_a_prior_for_todays_crawl(tmp_path: Path) -> None:
    """Two corpora (two days) share one filter: today's run marks repeats of yesterday's documents. Read-only,
    the same prior marks only what was seen yesterday and leaves the filter untouched."""
    whole = split_sample(tmp_path / "whole")
    dedupe(whole, *PARAGRAPHS)
    expected = attribute_bytes(whole)
    days = {day: split_sample(tmp_path / day) for day in ("day1", "day2")}
    for i in range(6):
        (days["day1" if i >= 3 else "day2"] / "documents" / f"part-{i:02d}.jsonl.gz").unlink()
    shared = tmp_path / "crawl.bin"
    dedupe(days["day1"], *PARAGRAPHS, filter_file=shared)
    prior = tmp_path / "day1.bin"
    shutil.copy(shared, prior)

    dedupe(days["day2"], *PARAGRAPHS, filter_file=shared)
    today = attribute_bytes(days["day2"])
    assert today == {k: v for k, v in expected.items() if k >= "part-03"}

    before = prior.read_bytes()
    dedupe(days["day2"], *PARAGRAPHS, "--bloom_filter.read_only", filter_file=prior, name="ro")
    looked_up = attribute_bytes(days["day2"], "ro")
    assert 0 < marked_rows(looked_up) < marked_rows(today), "read-only: repeats within day 2 are not marked"
    assert prior.read_bytes() == before
    # A read-only rerun has nothing to do and says so.
    again = dedupe(days["day2"], *PARAGRAPHS, "--bloom_filter.read_only", filter_file=prior, name="ro")
    assert summary_rows(again.stderr)["skipped (already complete)"] == "3"


def test_input_in_the_filter_without_attributes_is_an_error(tmp_path: Path) -> None:
    root = split_sample(tmp_path)
    dedupe(root, *PARAGRAPHS)
    first = attribute_bytes(root)
    filter_before = (root / "filter.bin").read_bytes()
    (root / "attributes" / "dd" / "part-02.jsonl.gz").unlink()
    result = dedupe(root, *PARAGRAPHS, check=False)
    assert result.returncode != 0
    err = one_line(result.stderr)
    assert "part-02.jsonl.gz" in err and "already in the Bloom filter" in err
    assert "--ignore_existing" in err and "read_only" in err and "bloom_filter.file" in err
    assert attribute_bytes(root) == {k: v for k, v in first.items() if k != "part-02.jsonl.gz"}
    assert (root / "filter.bin").read_bytes() == filter_before
    # Another attribute set with the same filter: every input is in the filter, none has attributes there.
    renamed = dedupe(root, *PARAGRAPHS, name="other", check=False)
    assert renamed.returncode != 0 and "6 input file(s)" in one_line(renamed.stderr)


def test_a_moved_corpus_is_recognised_by_content(tmp_path: Path) -> None:
    """A corpus moved with its attributes and filter (new paths, same bytes) is complete, not a new batch whose
    every key is in the filter; a file added with the move is deduped against it, and the filter then records the
    new paths."""
    old = split_sample(tmp_path / "old")
    (old / "documents" / "part-05.jsonl.gz").rename(tmp_path / "part-05.jsonl.gz")
    dedupe(old, *PARAGRAPHS)
    first = attribute_bytes(old)
    new = tmp_path / "new"
    shutil.move(old, new)
    shutil.move(tmp_path / "part-05.jsonl.gz", new / "documents" / "part-05.jsonl.gz")

    again = dedupe(new, *PARAGRAPHS)
    rows = summary_rows(again.stderr)
    assert (rows["skipped (already complete)"], rows["processed"]) == ("5", "1")
    assert "5 input file(s) recognised by content as moved from" in one_line(again.stderr)
    after = attribute_bytes(new)
    assert {k: v for k, v in after.items() if k != "part-05.jsonl.gz"} == first
    assert (
        0
        < marked_rows({"part-05": after["part-05.jsonl.gz"]})
        < len(read_jsonl(new / "documents" / "part-05.jsonl.gz"))
    )
    inputs = manifest_of(new / "filter.bin")["inputs"]
    assert [r["path"] for r in inputs] == [str(new / "documents" / f"part-{i:02d}.jsonl.gz") for i in range(6)]
    assert all(r["attributes"].startswith(str(new / "attributes")) for r in inputs)
    assert summary_rows(dedupe(new, *PARAGRAPHS).stderr)["skipped (already complete)"] == "6"


def test_documents_moved_without_their_attributes_are_an_error(tmp_path: Path) -> None:
    root = split_sample(tmp_path / "root")
    dedupe(root, *PARAGRAPHS)
    filter_before = (root / "filter.bin").read_bytes()
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(root / "documents", moved / "documents")
    (moved / "documents" / "part-03.jsonl.gz").rename(moved / "documents" / "a-renamed.jsonl.gz")
    result = dedupe(moved, *PARAGRAPHS, filter_file=root / "filter.bin", check=False)
    assert result.returncode != 0
    err = one_line(result.stderr)
    assert "6 input file(s) have the same content" in err and "a-renamed.jsonl.gz" in err
    assert str(root / "documents" / "part-00.jsonl.gz") in err and "--ignore_existing" in err
    assert not (moved / "attributes").exists()
    assert (root / "filter.bin").read_bytes() == filter_before


def test_a_copy_of_an_input_in_the_filter_is_a_repeat(tmp_path: Path) -> None:
    """A byte-identical copy of a recorded input that is still there is new content of the corpus: deduped, its
    documents marked as repeats."""
    root = split_sample(tmp_path)
    dedupe(root, *PARAGRAPHS)
    original = attribute_bytes(root)["part-00.jsonl.gz"]
    shutil.copy(root / "documents" / "part-00.jsonl.gz", root / "documents" / "zz-copy.jsonl.gz")
    rows = summary_rows(dedupe(root, *PARAGRAPHS).stderr)
    assert (rows["skipped (already complete)"], rows["processed"]) == ("6", "1")
    copy = attribute_bytes(root)["zz-copy.jsonl.gz"]
    assert marked_rows({"copy": copy}) > marked_rows({"original": original})


def test_ignore_existing_starts_from_an_empty_filter(tmp_path: Path) -> None:
    root = split_sample(tmp_path)
    dedupe(root, *NGRAMS)
    first = attribute_bytes(root)
    filter_first = (root / "filter.bin").read_bytes()
    redo = dedupe(root, *NGRAMS, "--ignore_existing")
    assert summary_rows(redo.stderr)["processed"] == "6"
    assert attribute_bytes(root) == first
    assert (root / "filter.bin").read_bytes() == filter_first


def test_changed_input_is_an_error(tmp_path: Path) -> None:
    root = split_sample(tmp_path)
    dedupe(root, *PARAGRAPHS)
    victim = root / "documents" / "part-01.jsonl.gz"
    original = victim.read_bytes()
    rows = read_jsonl(victim)
    write_jsonl_gz(victim, [dict(rows[0], text="A new text for this document."), *rows[1:]])
    result = dedupe(root, *PARAGRAPHS, check=False)
    assert result.returncode != 0
    err = one_line(result.stderr)
    assert "part-01.jsonl.gz" in err and "changed" in err and "--ignore_existing" in err
    # The original bytes written again (a new modification time): the fingerprint says it is unchanged.
    victim.write_bytes(original)
    again = dedupe(root, *PARAGRAPHS)
    assert summary_rows(again.stderr)["skipped (already complete)"] == "6"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (DOCS_BY_TEXT, "mode"),
        ([*PARAGRAPHS, "--dedupe.paragraphs.by_ngram.ngram_length", "4"], "mode"),
        ([*PARAGRAPHS, "--dedupe.min_length", "5"], "dedupe.min_length"),
        ([*PARAGRAPHS, "--dedupe.paragraphs.paragraph_separator", "\n\n"], "dedupe.paragraphs.paragraph_separator"),
        ([*PARAGRAPHS, "--bloom_filter.seed", "7"], "bloom_filter.seed"),
        ([*PARAGRAPHS, "--bloom_filter.read_only", "--bloom_filter.seed", "7"], "bloom_filter.seed"),
        ([*PARAGRAPHS, "--bloom_filter.read_only", "--dedupe.skip_empty"], "dedupe.skip_empty"),
    ],
    ids=["documents", "ngrams", "min-length", "separator", "seed", "read-only-seed", "read-only-skip-empty"],
)
def test_settings_mismatch_is_an_error(tmp_path: Path, args: list[str], field: str) -> None:
    root = split_sample(tmp_path, parts=2)
    dedupe(root, *PARAGRAPHS, name="first")
    before = (root / "filter.bin").read_bytes()
    result = dedupe(root, *args, name="second", check=False)
    assert result.returncode != 0
    err = one_line(result.stderr)
    assert "filter.bin" in err and "different configuration" in err and field in err, err
    assert not (root / "attributes" / "second").exists()
    assert (root / "filter.bin").read_bytes() == before


def test_ngram_settings_mismatch_names_the_field(tmp_path: Path) -> None:
    root = split_sample(tmp_path, parts=1)
    dedupe(root, *NGRAMS, name="first")
    result = dedupe(root, *NGRAMS, "--dedupe.paragraphs.by_ngram.ngram_length", "5", name="x", check=False)
    err = one_line(result.stderr)
    assert result.returncode != 0 and "dedupe.paragraphs.by_ngram.ngram_length is 4 in the filter and 5" in err
    # The overlap threshold only decides what is marked, not which keys go in: a different one is fine.
    ok = dedupe(root, *NGRAMS, "--dedupe.paragraphs.by_ngram.overlap_threshold", "0.9", "--bloom_filter.read_only",
                name="y")  # fmt: skip
    assert ok.returncode == 0


# ----------------------------------------------------------------------------------------------------------
# Corrupt and old filter files
# ----------------------------------------------------------------------------------------------------------


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("offset", "what"),
    [(12, "hash count"), (24, "seed"), (33, "second seed"), (40, "inserted count"), (48, "manifest length")],
)
def test_flipped_header_bit_is_rejected(tmp_path: Path, offset: int, what: str) -> None:
    """Today a flipped seed bit loads silently and a read-only run marks nothing; the checksum covers it now."""
    evals = tmp_path / "evals"
    write_jsonl_gz(evals / "documents" / "e.jsonl.gz", [{"id": "e", "text": "alpha\nbeta\ngamma", "source": "x"}])
    dedupe(evals, *PARAGRAPHS, filter_file=tmp_path / "f.bin")
    flip(tmp_path / "f.bin", offset)
    train = tmp_path / "train"
    write_jsonl_gz(train / "documents" / "t.jsonl.gz", [{"id": "t", "text": "beta\ndelta", "source": "x"}])
    result = dedupe(train, *PARAGRAPHS, "--bloom_filter.read_only", filter_file=tmp_path / "f.bin", check=False)
    assert result.returncode != 0, what
    assert "f.bin" in result.stderr and "corrupt" in result.stderr
    assert not (train / "attributes").exists()


def test_corrupt_checkpoint_is_rejected(tmp_path: Path) -> None:
    """A run that failed half-way saved the filter of its completed files (its checkpoint); a damaged one is an
    error naming the file, never a silent restart or a wrong resume."""
    root = split_sample(tmp_path)
    victim = root / "documents" / "part-03.jsonl.gz"
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])
    failed = dedupe(root, *PARAGRAPHS, "--processes", "1", "--checkpoint_interval", "0", check=False)
    assert failed.returncode != 0
    manifest = manifest_of(root / "filter.bin")
    assert manifest is not None and len(manifest["inputs"]) == 3
    victim.write_bytes(good)
    for offset in (HEADER.size + 5, (root / "filter.bin").stat().st_size - 3):  # the manifest, the checksum
        saved = (root / "filter.bin").read_bytes()
        flip(root / "filter.bin", offset)
        result = dedupe(root, *PARAGRAPHS, check=False)
        assert result.returncode != 0
        assert "filter.bin" in result.stderr and "checksum" in result.stderr
        (root / "filter.bin").write_bytes(saved)
    resumed = dedupe(root, *PARAGRAPHS)
    assert summary_rows(resumed.stderr)["skipped (already complete)"] == "3"


def test_old_format_filter_says_what_to_do(tmp_path: Path) -> None:
    root = split_sample(tmp_path, parts=1)
    dedupe(root, *PARAGRAPHS)
    data = bytearray((root / "filter.bin").read_bytes())
    data[8:12] = (2).to_bytes(4, "little")
    (root / "filter.bin").write_bytes(bytes(data))
    result = dedupe(root, *PARAGRAPHS, check=False)
    err = one_line(result.stderr)
    assert result.returncode != 0 and "filter.bin" in err and "version 2" in err
    assert "earlier version" in err and "--ignore_existing" in err
    rebuilt = dedupe(root, *PARAGRAPHS, "--ignore_existing")
    assert summary_rows(rebuilt.stderr)["processed"] == "1"


# ----------------------------------------------------------------------------------------------------------
# Saturation
# ----------------------------------------------------------------------------------------------------------


def many_paragraphs(root: Path, count: int, seed: int = 3) -> Path:
    """`count` distinct random paragraphs, 20 per document, plus copies of the first 50 documents."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(2000)]
    paras = [" ".join(rng.choice(words) for _ in range(8)) + f" {i}" for i in range(count)]
    rows = [
        {"id": f"d{i}", "text": "\n".join(paras[j : j + 20]), "source": "s"} for i, j in enumerate(range(0, count, 20))
    ]
    rows += [dict(row, id=f"copy-{row['id']}") for row in rows[:50]]
    write_jsonl_gz(root / "documents" / "many.jsonl.gz", rows)
    return root


def test_small_estimate_is_sized_at_the_floor(tmp_path: Path) -> None:
    """The reference's n-gram fixture declares 1000 documents for thousands of n-grams: never below 1 MiB."""
    root = split_sample(tmp_path, parts=1)
    result = dedupe(
        root, *NGRAMS, "--dryrun", "--bloom_filter.estimated_doc_count", "1000",
        "--bloom_filter.desired_false_positive_rate", "1e-5",
    )  # fmt: skip
    assert "1,048,576 bytes" in result.stdout


def test_overfull_filter_warns_in_the_summary(tmp_path: Path) -> None:
    many_paragraphs(tmp_path, 20_000)
    size = ["--bloom_filter.size_in_bytes", "65536", "--bloom_filter.estimated_doc_count", "2000"]
    result = dedupe(tmp_path, *PARAGRAPHS, *size, "--bloom_filter.desired_false_positive_rate", "1e-6")
    out = one_line(result.stderr)
    assert "DEGRADED" in out and "requested 1e-06" in out, out
    assert (tmp_path / "filter.bin").exists()


def test_saturated_filter_fails_unless_allowed(tmp_path: Path) -> None:
    many_paragraphs(tmp_path, 20_000)
    size = ["--bloom_filter.size_in_bytes", "4096", "--bloom_filter.desired_false_positive_rate", "1e-6"]
    failed = dedupe(tmp_path, *PARAGRAPHS, *size, check=False)
    assert failed.returncode != 0
    err = one_line(failed.stderr)
    assert "false-positive rate" in err and "bloom_filter.allow_saturated" in err and "--ignore_existing" in err
    assert not (tmp_path / "filter.bin").exists(), "a saturated filter is not saved"

    allowed = dedupe(tmp_path, *PARAGRAPHS, *size, "--bloom_filter.allow_saturated")
    out = one_line(allowed.stderr)
    assert "DEGRADED" in out and "saturated" in out
    assert (tmp_path / "filter.bin").exists()


@pytest.mark.parametrize("processes", ["1", "2"])
def test_recorded_inputs_carry_their_content_fingerprint(tmp_path: Path, processes: str) -> None:
    """The fingerprint taken while deduping (through the decompressor, in chunks) is the hash of the whole file
    as stored, for gzip, zstd and plain files: a rerun can check an input without trusting its timestamp."""
    root = mixed_compression_corpus(tmp_path)
    result = run_cli(
        "dedupe", "--documents", str(root / "documents" / "*"), "--dedupe.name", "dd", *PARAGRAPHS,
        "--bloom_filter.file", str(root / "filter.bin"), "--bloom_filter.estimated_doc_count", "100000",
        "--bloom_filter.desired_false_positive_rate", "1e-6", "--processes", processes,
        env={"DOLMA_DEDUPE_CHUNK_BYTES": "3000"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    records = manifest_of(root / "filter.bin")["inputs"]
    assert [Path(r["path"]).name for r in records] == ["a.jsonl.gz", "b.jsonl.zst", "c.jsonl"]
    for record in records:
        path = Path(record["path"])
        assert record["size"] == path.stat().st_size and record["mtime_ns"] == path.stat().st_mtime_ns
        assert record["fingerprint"] == file_fingerprint(str(path))
        assert record["attributes"] == str(root / "attributes" / "dd" / path.name)
    assert len({r["fingerprint"] for r in records}) == 3


def test_s3_rerun_failure_and_resume(tmp_path: Path, s3_server, s3_bucket: str) -> None:
    """On S3 (inputs, attributes and filter): a run that fails on its third file uploads the attributes of the two
    before it and records them (ETag and fingerprint) in the filter it saves; the rerun skips them, and a rerun
    of the finished run does nothing."""
    client = s3_server.client()
    good = {}
    for i in range(3):
        rows = [{"id": f"{i}-{j}", "text": f"shared paragraph\nfile {i} line {j}", "source": "s"} for j in range(5)]
        local = write_jsonl_gz(tmp_path / f"p{i}.jsonl.gz", rows)
        good[i] = local.read_bytes()
        client.upload_file(str(local), s3_bucket, f"corpus/documents/p{i}.jsonl.gz")
    client.put_object(Bucket=s3_bucket, Key="corpus/documents/p2.jsonl.gz", Body=good[2][:40])  # truncated gzip
    args = [
        "dedupe",
        "--documents", f"s3://{s3_bucket}/corpus/documents/*.jsonl.gz",
        "--dedupe.name", "dd", *PARAGRAPHS,
        "--bloom_filter.file", f"s3://{s3_bucket}/filters/f.bin",
        "--bloom_filter.estimated_doc_count", "1000",
        "--bloom_filter.desired_false_positive_rate", "1e-6",
        "--checkpoint_interval", "0",
        "--s3.endpoint_url", s3_server.endpoint,
    ]  # fmt: skip
    failed = run_cli(*args)
    assert failed.returncode != 0 and "p2.jsonl.gz" in failed.stderr
    keys = s3_server.keys(s3_bucket, "corpus/attributes/dd/")
    assert keys == ["corpus/attributes/dd/p0.jsonl.gz", "corpus/attributes/dd/p1.jsonl.gz"]
    client.download_file(s3_bucket, "filters/f.bin", str(tmp_path / "f.bin"))
    records = manifest_of(tmp_path / "f.bin")["inputs"]
    assert [r["path"] for r in records] == [f"s3://{s3_bucket}/corpus/documents/p{i}.jsonl.gz" for i in range(2)]
    assert all(r["etag"] and "mtime_ns" not in r for r in records)

    client.put_object(Bucket=s3_bucket, Key="corpus/documents/p2.jsonl.gz", Body=good[2])
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (summary_rows(resumed.stderr)["skipped (already complete)"], summary_rows(resumed.stderr)["processed"]) == (
        "2",
        "1",
    )
    body = client.get_object(Bucket=s3_bucket, Key="corpus/attributes/dd/p2.jsonl.gz")["Body"].read()
    rows = [json.loads(line) for line in gzip.decompress(body).splitlines()]
    assert all(row["attributes"]["dup"][0] == [0, 17, 1] for row in rows), "repeats of p0 and p1 are marked"
    again = run_cli(*args)
    assert again.returncode == 0 and summary_rows(again.stderr)["skipped (already complete)"] == "3"


def test_s3_a_moved_corpus_is_recognised_by_content(tmp_path: Path, s3_server, s3_bucket: str) -> None:
    """On S3: a corpus moved to another prefix with its attributes is complete (ETags and names change, the
    content fingerprint does not); moved without its attributes it is refused."""
    client = s3_server.client()
    for i in range(2):
        rows = [{"id": f"{i}-{j}", "text": f"shared paragraph\nfile {i} line {j}", "source": "s"} for j in range(5)]
        client.upload_file(
            str(write_jsonl_gz(tmp_path / f"p{i}.jsonl.gz", rows)), s3_bucket, f"a/documents/p{i}.jsonl.gz"
        )

    def run(prefix: str, check: bool = True):
        result = run_cli(
            "dedupe",
            "--documents", f"s3://{s3_bucket}/{prefix}/documents/*.jsonl.gz",
            "--dedupe.name", "dd", *PARAGRAPHS,
            "--bloom_filter.file", f"s3://{s3_bucket}/filters/f.bin",
            "--bloom_filter.estimated_doc_count", "1000",
            "--bloom_filter.desired_false_positive_rate", "1e-6",
            "--s3.endpoint_url", s3_server.endpoint,
        )  # fmt: skip
        assert result.returncode == 0 or not check, result.stderr[-2000:]
        return result

    def move(source: str, destination: str) -> None:
        for key in s3_server.keys(s3_bucket, source):
            client.copy_object(Bucket=s3_bucket, Key=destination + key[len(source) :], CopySource=f"{s3_bucket}/{key}")
            client.delete_object(Bucket=s3_bucket, Key=key)

    run("a")
    attributes = {
        k: client.get_object(Bucket=s3_bucket, Key=k)["Body"].read()
        for k in s3_server.keys(s3_bucket, "a/attributes/")
    }
    assert len(attributes) == 2
    move("a/", "b/")
    moved = run("b")
    assert summary_rows(moved.stderr)["skipped (already complete)"] == "2"
    assert {
        k: client.get_object(Bucket=s3_bucket, Key=k)["Body"].read()
        for k in s3_server.keys(s3_bucket, "b/attributes/")
    } == {"b/" + k[2:]: v for k, v in attributes.items()}
    move("b/documents/", "c/documents/")
    refused = run("c", check=False)
    assert refused.returncode != 0
    assert "2 input file(s) have the same content" in one_line(refused.stderr)
    assert s3_server.keys(s3_bucket, "c/attributes/") == []
