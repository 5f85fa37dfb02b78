"""The Rust Bloom filter (`dolma._rust.BloomFilter`) as Python code sees it."""

from __future__ import annotations

import ast
import copy
import math
import multiprocessing
import os
import pickle
import random
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dolma import _rust
from dolma._rust import BloomFilter, xxh3_64
from dolma.errors import BloomFilterError, BloomFilterFormatError

# magic, version, num_hashes, num_bits, seed1, seed2, inserted, manifest length; then the manifest, the bit
# data and the xxh3_64 of everything before it
HEADER = struct.Struct("<8sIIQQQQQ")
STUB = Path(_rust.__file__).with_name("_rust.pyi")


def filled(n: int = 200, seed: int = 0, prefix: bytes = b"key") -> tuple[BloomFilter, list[bytes]]:
    bloom = BloomFilter(estimated_doc_count=max(n, 1), desired_false_positive_rate=0.01, seed=seed)
    keys = [b"%s-%d" % (prefix, i) for i in range(n)]
    bloom.insert_batch(keys)
    return bloom, keys


def with_u32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<I", value) + data[offset + 4 :]


def with_u64(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<Q", value) + data[offset + 8 :]


def flip_byte(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# ------------------------------------------------------------------------------------------ file format


def test_bytes_follow_the_documented_layout() -> None:
    bloom, _ = filled(100, seed=5)
    bloom.set_manifest('{"inputs": ["ünïcode.jsonl"]}')
    data = bloom.to_bytes()
    magic, version, num_hashes, num_bits, seed1, seed2, inserted, manifest_len = HEADER.unpack_from(data)
    assert HEADER.size == 56
    assert magic == b"DOLMABLF"
    assert version == _rust.BLOOM_FORMAT_VERSION == 3
    assert (num_hashes, num_bits, (seed1, seed2), inserted) == (
        bloom.num_hashes,
        bloom.num_bits,
        bloom.seeds,
        bloom.inserted,
    )
    manifest = bloom.manifest.encode()
    assert data[HEADER.size : HEADER.size + manifest_len] == manifest
    bits_at = HEADER.size + len(manifest)
    assert len(data) == bits_at + bloom.size_in_bytes + 8 == bits_at + num_bits // 8 + 8
    # The checksum covers everything before it: header, manifest and bits.
    assert struct.unpack_from("<Q", data, len(data) - 8)[0] == xxh3_64(data[:-8])
    words = struct.unpack_from(f"<{num_bits // 64}Q", data, bits_at)
    assert sum(bin(w).count("1") for w in words) == bloom.bits_set()


def test_bytes_round_trip() -> None:
    bloom, keys = filled(500, seed=3)
    data = bloom.to_bytes()
    back = BloomFilter.from_bytes(data)
    assert back.to_bytes() == data
    assert (back.seeds, back.num_hashes, back.num_bits, back.inserted) == (
        bloom.seeds,
        bloom.num_hashes,
        bloom.num_bits,
        bloom.inserted,
    )
    assert 490 <= back.inserted <= 500, "a few false positives may count as repeats"
    assert all(back.contains_batch(keys))


@pytest.mark.parametrize("as_path", [False, True], ids=["str", "pathlib"])
def test_save_load_round_trip(tmp_path: Path, as_path: bool) -> None:
    bloom, keys = filled(1000, seed=11)
    target = tmp_path / "filter.bin"
    bloom.save(target if as_path else str(target))
    loaded = BloomFilter.load(target if as_path else str(target))
    assert loaded.to_bytes() == bloom.to_bytes()
    assert all(loaded.contains_batch(keys))
    assert len(loaded) == len(bloom) == bloom.inserted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["filter.bin"], "the temporary file is renamed away"

    loaded.insert(b"later")
    loaded.save(target)
    assert BloomFilter.load(target).contains(b"later")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip(protocol: int) -> None:
    bloom, keys = filled(300, seed=9)
    back = pickle.loads(pickle.dumps(bloom, protocol=protocol))
    assert isinstance(back, BloomFilter)
    assert back.to_bytes() == bloom.to_bytes()
    assert all(back.contains_batch(keys))


def test_copies_are_independent() -> None:
    bloom, _ = filled(50)
    clone = copy.deepcopy(bloom)
    clone.insert(b"only in the clone")
    assert clone.contains(b"only in the clone")
    assert not bloom.contains(b"only in the clone")
    assert len(clone) == len(bloom) + 1


# ------------------------------------------------------------------------------------------ corrupt input

GOOD = filled(64, seed=1)[0].to_bytes()

CORRUPTIONS: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("bad magic", lambda d: b"NOTDOLMA" + d[8:], "not a dolma bloom filter file"),
    ("foreign file", lambda d: b"PK\x03\x04 not a bloom filter", "not a dolma bloom filter file"),
    ("newer version", lambda d: with_u32(d, 8, 4), r"version 4 .*version 3"),
    ("unblocked version 1", lambda d: with_u32(d, 8, 1), r"version 1 .*earlier version.*--ignore_existing"),
    ("unchecked header version 2", lambda d: with_u32(d, 8, 2), r"version 2 .*earlier version.*--ignore_existing"),
    ("empty", lambda d: b"", "truncated header"),
    ("truncated header", lambda d: d[:20], "truncated header"),
    ("header only", lambda d: d[: HEADER.size], "truncated"),
    ("truncated data", lambda d: d[:-8], f"truncated.*expected {len(GOOD)} bytes.*found {len(GOOD) - 8}"),
    ("trailing data", lambda d: d + b"\x00", "trailing data"),
    ("flipped data byte", lambda d: flip_byte(d, HEADER.size + 3), "checksum mismatch"),
    ("flipped last byte", lambda d: flip_byte(d, len(d) - 1), "checksum mismatch"),
    ("zero hashes", lambda d: with_u32(d, 12, 0), "num_hashes 0"),
    ("too many hashes", lambda d: with_u32(d, 12, 33), "num_hashes 33"),
    ("zero bits", lambda d: with_u64(d, 16, 0), "num_bits 0"),
    ("bits not whole words", lambda d: with_u64(d, 16, 100), "num_bits 100"),
    ("absurd size", lambda d: with_u64(d, 16, 1 << 62), "num_bits"),
]


@pytest.mark.parametrize(("mutate", "message"), [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_corrupt_bytes_are_rejected(mutate: Callable[[bytes], bytes], message: str) -> None:
    with pytest.raises(BloomFilterFormatError, match=message):
        BloomFilter.from_bytes(mutate(GOOD))


@pytest.mark.parametrize(("mutate", "message"), [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_corrupt_files_are_rejected_naming_the_file(
    tmp_path: Path, mutate: Callable[[bytes], bytes], message: str
) -> None:
    path = tmp_path / "corrupt.bin"
    path.write_bytes(mutate(GOOD))
    with pytest.raises(BloomFilterFormatError, match=message) as info:
        BloomFilter.load(path)
    assert "corrupt.bin" in str(info.value)


def test_every_header_byte_is_checked() -> None:
    """A flipped bit anywhere in the file is an error: the hash count and the seeds included (version 2 loaded
    those silently, and a read-only run with a flipped seed found nothing)."""
    bloom, _ = filled(64, seed=1)
    bloom.set_manifest('{"settings": {"mode": "paragraphs"}}')
    good = bloom.to_bytes()
    manifest_end = HEADER.size + len(bloom.manifest)
    offsets = [
        *range(HEADER.size),
        *range(HEADER.size, manifest_end),
        manifest_end + 5,
        *range(len(good) - 8, len(good)),
    ]
    for offset in offsets:
        for mask in (0x01, 0x80):
            damaged = good[:offset] + bytes([good[offset] ^ mask]) + good[offset + 1 :]
            with pytest.raises(BloomFilterFormatError):
                BloomFilter.from_bytes(damaged)


def test_manifest_round_trips_and_pickles(tmp_path: Path) -> None:
    bloom, keys = filled(100, seed=4)
    assert bloom.manifest == ""
    bloom.set_manifest('{"inputs": [{"path": "s3://b/ünï.jsonl.gz"}]}')
    bloom.save(tmp_path / "f.bin")
    loaded = BloomFilter.load(tmp_path / "f.bin")
    assert loaded.manifest == bloom.manifest and all(loaded.contains_batch(keys))
    assert pickle.loads(pickle.dumps(bloom)).manifest == bloom.manifest
    assert BloomFilter.from_bytes(bloom.to_bytes()).to_bytes() == bloom.to_bytes()
    bloom.clear()
    assert bloom.manifest == "" and bloom.inserted == 0


def test_format_errors_are_value_errors() -> None:
    assert issubclass(BloomFilterFormatError, BloomFilterError)
    assert issubclass(BloomFilterError, ValueError)
    with pytest.raises(ValueError):
        BloomFilter.from_bytes(b"nope")


def test_missing_file_is_an_oserror_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.bin"
    with pytest.raises(FileNotFoundError) as info:
        BloomFilter.load(missing)
    assert info.value.filename == str(missing)
    assert "missing.bin" in str(info.value)


def test_save_into_a_missing_directory_is_an_oserror(tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "filter.bin"
    with pytest.raises(OSError) as info:
        BloomFilter(64, 2).save(target)
    assert "filter.bin" in str(info.value)
    assert not target.parent.exists()


# ------------------------------------------------------------------------------------------ parameters

PARAMETER_ERRORS: list[tuple[dict, str]] = [
    ({}, "either size_in_bytes or estimated_doc_count is required"),
    ({"num_hashes": 3}, "either size_in_bytes or estimated_doc_count is required"),
    ({"size_in_bytes": 1024}, "size_in_bytes alone does not choose the hash count"),
    ({"size_in_bytes": 0, "num_hashes": 3}, "size_in_bytes must be a positive integer"),
    ({"size_in_bytes": -8, "num_hashes": 3}, "size_in_bytes must be a positive integer"),
    ({"size_in_bytes": 64, "num_hashes": 0}, "num_hashes must be between 1 and 32"),
    ({"size_in_bytes": 64, "num_hashes": 33}, "num_hashes must be between 1 and 32"),
    ({"size_in_bytes": 64, "num_hashes": -1}, "num_hashes must be between 1 and 32"),
    ({"estimated_doc_count": 0}, "estimated_doc_count must be a positive integer"),
    ({"estimated_doc_count": -5}, "estimated_doc_count must be a positive integer"),
    ({"size_in_bytes": 64, "estimated_doc_count": 0}, "estimated_doc_count must be a positive integer"),
    ({"estimated_doc_count": 10, "desired_false_positive_rate": 0.0}, "desired_false_positive_rate"),
    ({"estimated_doc_count": 10, "desired_false_positive_rate": 1.0}, "desired_false_positive_rate"),
    ({"estimated_doc_count": 10, "desired_false_positive_rate": -0.1}, "desired_false_positive_rate"),
    ({"estimated_doc_count": 10, "desired_false_positive_rate": math.nan}, "desired_false_positive_rate"),
    ({"estimated_doc_count": 2**62, "desired_false_positive_rate": 1e-300}, "maximum"),
    ({"size_in_bytes": 2**62, "num_hashes": 3}, "maximum"),
]


@pytest.mark.parametrize(("kwargs", "message"), PARAMETER_ERRORS)
def test_parameter_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(BloomFilterError, match=message):
        BloomFilter(**kwargs)


@pytest.mark.parametrize(("count", "rate"), [(0, 0.01), (-1, 0.01), (10, 0.0), (10, 1.5), (10, math.inf)])
def test_optimal_params_errors(count: int, rate: float) -> None:
    with pytest.raises(BloomFilterError):
        BloomFilter.optimal_params(count, rate)


def test_wrong_argument_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        BloomFilter(size_in_bytes="big", num_hashes=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        BloomFilter(1024, 3, 1000)  # type: ignore[misc]  # estimated_doc_count is keyword-only
    with pytest.raises(OverflowError):
        BloomFilter(1024, 3, seed=-1)


def test_derived_parameters() -> None:
    # Blocked layout: the smallest whole number of 64-byte blocks whose expected rate meets the target; a bit
    # more than the textbook 1,198,132 bytes for 1M keys at 1%.
    size, k = BloomFilter.optimal_params(1_000_000, 0.01)
    assert size % 64 == 0 and 1_198_132 <= size < 1.1 * 1_198_132 and k in (6, 7)
    assert BloomFilter.expected_false_positive_rate(size, k, 1_000_000) <= 0.01
    assert min(BloomFilter.expected_false_positive_rate(size - 64, h, 1_000_000) for h in range(1, 33)) > 0.01
    size, k = BloomFilter.optimal_params(5000, 0.001)
    bloom = BloomFilter(estimated_doc_count=5000, desired_false_positive_rate=0.001)
    assert (bloom.size_in_bytes, bloom.num_hashes) == (size, k)
    assert size % 64 == 0 and bloom.num_bits == size * 8
    # Fixed size, hash count chosen for it (rounded up to whole blocks: 12,544 bytes).
    bloom = BloomFilter(12_500, estimated_doc_count=10_000)
    assert (bloom.size_in_bytes, bloom.num_bits) == (12_544, 100_352)
    assert bloom.num_hashes == BloomFilter.optimal_num_hashes(12_500, 10_000) in (6, 7)
    # An explicit hash count wins over the derived one.
    assert BloomFilter(estimated_doc_count=1000, num_hashes=3).num_hashes == 3
    assert BloomFilter(13, 3).size_in_bytes == 64


def test_one_sizing_table() -> None:
    """`choose_params` is the decision table of the constructor and of `dolma dedupe` (with a floor)."""
    choose = BloomFilter.choose_params
    # Count and rate: the optimal filter, raised to the floor when smaller.
    assert choose(estimated_doc_count=5000, desired_false_positive_rate=0.001) == BloomFilter.optimal_params(
        5000, 0.001
    )
    size, k = choose(estimated_doc_count=1000, desired_false_positive_rate=1e-5, min_size_in_bytes=1 << 20)
    assert size == 1 << 20
    # At the floor, the hash count that keeps the rate for the most keys (not the best one for 1000 keys).

    def capacity(hashes: int) -> int:
        lo, hi = 1000, 8 << 20
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (
                (mid, hi) if BloomFilter.expected_false_positive_rate(size, hashes, mid) <= 1e-5 else (lo, mid - 1)
            )
        return lo

    assert k != BloomFilter.optimal_num_hashes(1 << 20, 1000)
    assert capacity(k) == max(capacity(h) for h in range(1, 33)) and capacity(k) > 100_000
    # Above the floor, the floor changes nothing.
    big = BloomFilter.optimal_params(400_000, 1e-6)
    assert choose(estimated_doc_count=400_000, desired_false_positive_rate=1e-6, min_size_in_bytes=1 << 20) == big
    # An explicit size is used as given, floor or not; its hash count comes from the count, else the rate.
    assert choose(4096, estimated_doc_count=50, min_size_in_bytes=1 << 20) == (
        4096,
        BloomFilter.optimal_num_hashes(4096, 50),
    )
    assert choose(4096, desired_false_positive_rate=1e-6) == (4096, 20)
    assert choose(4100, num_hashes=3) == (4160, 3)
    assert choose(estimated_doc_count=5000, desired_false_positive_rate=0.01, num_hashes=2)[1] == 2
    # The constructor is the same table (rate 0.001 when sized from a count alone).
    assert (
        BloomFilter(estimated_doc_count=5000).size_in_bytes
        == choose(estimated_doc_count=5000, desired_false_positive_rate=0.001)[0]
    )
    assert BloomFilter(4096, desired_false_positive_rate=1e-6).num_hashes == 20
    for kwargs, message in [
        ({}, "either size_in_bytes or estimated_doc_count is required"),
        ({"estimated_doc_count": 10}, "needs desired_false_positive_rate"),
        ({"size_in_bytes": 64}, "size_in_bytes alone does not choose the hash count"),
        ({"estimated_doc_count": 10, "desired_false_positive_rate": 2.0}, "desired_false_positive_rate"),
    ]:
        with pytest.raises(BloomFilterError, match=message):
            choose(**kwargs)


def test_hash_count_is_capped() -> None:
    # The reference toolkit derived tens of thousands of hash functions for a case like this.
    assert BloomFilter.optimal_params(100, 1e-30)[1] == _rust.MAX_HASHES == 32
    assert BloomFilter(estimated_doc_count=100, desired_false_positive_rate=1e-30).num_hashes == 32
    assert BloomFilter(1 << 20, estimated_doc_count=10).num_hashes == 32


# ------------------------------------------------------------------------------------------ membership

keys_strategy = st.lists(st.binary(max_size=48) | st.text(max_size=24), max_size=300)


@settings(max_examples=60, deadline=None)
@given(keys=keys_strategy, seed=st.integers(0, 2**64 - 1), batched=st.booleans())
def test_no_false_negatives(keys: list[bytes | str], seed: int, batched: bool) -> None:
    bloom = BloomFilter(estimated_doc_count=max(len(keys), 1), desired_false_positive_rate=0.01, seed=seed)
    if batched:
        bloom.insert_batch(keys)
    else:
        for key in keys:
            bloom.insert(key)
    assert all(bloom.contains(key) for key in keys)
    assert all(bloom.contains_batch(keys))
    assert all(bloom.contains_or_insert_batch(keys))


N_QUERIES = 20_000


@settings(max_examples=25, deadline=None)
@given(
    rate=st.sampled_from([0.2, 0.1, 0.05, 0.01, 0.001]),
    count=st.integers(50, 3000),
    seed=st.integers(0, 2**64 - 1),
)
@example(rate=0.01, count=3000, seed=0)
@example(rate=0.001, count=50, seed=1)
def test_false_positive_rate_stays_within_the_bound(rate: float, count: int, seed: int) -> None:
    bloom = BloomFilter(estimated_doc_count=count, desired_false_positive_rate=rate, seed=seed)
    bloom.insert_batch([b"member-%d" % i for i in range(count)])
    hits = sum(bloom.contains_batch([b"stranger-%d" % i for i in range(N_QUERIES)]))
    observed = hits / N_QUERIES
    assert observed <= 2 * rate + 3 * math.sqrt(rate / N_QUERIES), (observed, rate)
    assert bloom.estimated_false_positive_rate() <= 2 * rate


def test_contains_or_insert_batch_is_sequential() -> None:
    bloom = BloomFilter(1 << 16, 7)
    batch = [b"a", "b", b"a", "c", b"b", "a"]
    assert bloom.contains_or_insert_batch(batch) == [False, False, True, False, True, True]
    assert bloom.inserted == len(bloom) == 3
    assert bloom.contains_or_insert_batch(batch) == [True] * 6
    assert bloom.inserted == 3


def test_contains_or_insert_batch_matches_one_at_a_time() -> None:
    rng = random.Random(1234)
    # A crowded filter (false positives happen) and many repeats, so any reordering would show.
    batch = [b"k%d" % rng.randrange(30_000) for _ in range(60_000)]
    batched = BloomFilter(16 * 1024, 4, seed=2)
    single = BloomFilter(16 * 1024, 4, seed=2)
    assert batched.contains_or_insert_batch(batch) == [single.contains_or_insert(k) for k in batch]
    assert batched.to_bytes() == single.to_bytes()


def test_insert_batch_counts_new_keys() -> None:
    bloom = BloomFilter(1 << 16, 7)
    assert bloom.insert_batch([b"x", b"y", b"x"]) == 2
    assert bloom.insert_batch(k for k in [b"y", b"z"]) == 1
    assert bloom.insert(b"x") is True
    assert bloom.insert(b"w") is False
    assert bloom.contains_or_insert(b"v") is False
    assert bloom.contains_or_insert(b"v") is True
    assert len(bloom) == 5


@pytest.mark.parametrize("text", ["", "hello", "héllo wörld", "日本語のテキスト", "crab 🦀"])
def test_str_and_bytes_keys_are_the_same_key(text: str) -> None:
    bloom = BloomFilter(4096, 5)
    assert not bloom.insert(text)
    assert bloom.contains(text.encode("utf-8"))
    assert text.encode("utf-8") in bloom
    assert bloom.contains_batch([text, text.encode("utf-8")]) == [True, True]
    assert xxh3_64(text) == xxh3_64(text.encode("utf-8"))
    assert xxh3_64(text, seed=7) == xxh3_64(text.encode("utf-8"), seed=7)


def test_bad_keys() -> None:
    bloom = BloomFilter(4096, 5)
    with pytest.raises(TypeError, match="bytes or str, not int"):
        bloom.contains(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes or str, not bytearray"):
        bloom.insert(bytearray(b"x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not int"):
        bloom.contains_batch([b"a", 1])  # type: ignore[list-item]
    for single in (b"abc", "abc"):
        with pytest.raises(TypeError, match="single"):
            bloom.contains_or_insert_batch(single)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bloom.insert_batch(42)  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        bloom.insert("lone surrogate \ud800")
    assert bloom.inserted == 0, "a failed batch inserts nothing"
    assert bloom.contains_batch([]) == []
    assert bloom.contains_batch(("a", b"b")) == [False, False]


# ------------------------------------------------------------------------------------------ determinism, stats


def test_same_seed_same_bytes_different_seed_different_bits() -> None:
    a, _ = filled(400, seed=42)
    b, _ = filled(400, seed=42)
    c, _ = filled(400, seed=43)
    assert a.to_bytes() == b.to_bytes()
    assert a.seeds[0] == 42 and c.seeds[0] == 43
    assert a.seeds != c.seeds
    assert a.to_bytes()[HEADER.size : -8] != c.to_bytes()[HEADER.size : -8]  # the bits, not only the seeds


def test_xxh3_64_known_values() -> None:
    assert xxh3_64(b"") == 0x2D06800538D394C2  # published XXH3-64 of the empty input
    assert xxh3_64(b"abc") != xxh3_64(b"abc", seed=1)
    assert 0 <= xxh3_64(b"abc", seed=2**64 - 1) < 2**64
    with pytest.raises(TypeError):
        xxh3_64(123)  # type: ignore[arg-type]


def test_stats_repr_and_clear() -> None:
    bloom = BloomFilter(1024, 4, seed=7)
    assert (bloom.bits_set(), bloom.estimated_false_positive_rate(), len(bloom)) == (0, 0.0, 0)
    assert bool(bloom), "an empty filter is still truthy"
    bloom.insert(b"one")
    assert 1 <= bloom.bits_set() <= 4
    # One key in one of 16 blocks: the mean over blocks of (bits set in the block / 512) ** k.
    assert bloom.estimated_false_positive_rate() == pytest.approx((bloom.bits_set() / 512) ** 4 / 16)
    assert repr(bloom) == f"BloomFilter(size_in_bytes=1024, num_hashes=4, seeds=({7}, {bloom.seeds[1]}), inserted=1)"
    bloom.clear()
    assert (bloom.bits_set(), len(bloom), bloom.contains(b"one")) == (0, 0, False)
    assert bloom.to_bytes() == BloomFilter(1024, 4, seed=7).to_bytes()


def test_properties_are_read_only() -> None:
    bloom = BloomFilter(64, 2)
    for name in ("size_in_bytes", "num_bits", "num_hashes", "seeds", "inserted"):
        with pytest.raises(AttributeError):
            setattr(bloom, name, 1)


# ------------------------------------------------------------------------------------------ threads


@pytest.fixture(scope="module")
def many_keys() -> list[bytes]:
    return [b"gil-%d" % i for i in range(1_000_000)]


@pytest.mark.parametrize("method", ["contains_batch", "insert_batch", "contains_or_insert_batch"])
def test_batch_calls_release_the_gil(method: str, many_keys: list[bytes]) -> None:
    """While a batch runs in a worker thread, the main thread must get to run Python code.

    With a huge switch interval, the interpreter never preempts the worker: if the call held the GIL, the
    counter could not move between the worker's two reads of it. So a zero delta on every try means the
    GIL was held, and the test fails deterministically rather than by timing.
    """
    counter = [0]
    deltas: list[int] = []
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        for _ in range(5):
            bloom = BloomFilter(estimated_doc_count=len(many_keys), desired_false_positive_rate=0.01)
            done = threading.Event()

            def work(bloom: BloomFilter = bloom, done: threading.Event = done) -> None:
                before = counter[0]
                getattr(bloom, method)(many_keys)
                deltas.append(counter[0] - before)
                done.set()

            worker = threading.Thread(target=work)
            worker.start()
            while not done.wait(0.0005):
                counter[0] += 1
            worker.join()
            if deltas[-1] > 0:
                break
    finally:
        sys.setswitchinterval(old_interval)
    assert max(deltas) > 0, f"main thread never ran during {method}: {deltas}"


def test_threads_share_one_filter() -> None:
    bloom = BloomFilter(1 << 18, 7, seed=3)
    chunks = [[b"t%d-%d" % (t, i) for i in range(20_000)] for t in range(4)]
    threads = [threading.Thread(target=bloom.insert_batch, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(all(bloom.contains_batch(chunk)) for chunk in chunks)
    sequential = BloomFilter(1 << 18, 7, seed=3)
    for chunk in chunks:
        sequential.insert_batch(chunk)
    # The bits (not the checksum: it covers the inserted count, which may differ by a false positive or two).
    assert bloom.to_bytes()[HEADER.size : -8] == sequential.to_bytes()[HEADER.size : -8]


def test_snapshots_taken_during_inserts_are_consistent() -> None:
    """`to_bytes` waits for running batches, so every snapshot passes its own checksum."""
    bloom = BloomFilter(1 << 20, 7)
    stop = threading.Event()

    def insert_forever() -> None:
        round_ = 0
        while not stop.is_set() and round_ < 10_000:
            bloom.insert_batch([b"c-%d-%d" % (round_, i) for i in range(5000)])
            round_ += 1

    writer = threading.Thread(target=insert_forever)
    writer.start()
    try:
        for _ in range(30):
            BloomFilter.from_bytes(bloom.to_bytes())
    finally:
        stop.set()
        writer.join()


def _check_in_child(bloom: BloomFilter, keys: list[bytes]) -> None:
    ok = all(bloom.contains_batch(keys)) and bloom.contains_or_insert_batch(keys) == [True] * len(keys)
    ok = ok and bloom.bits_set() > 0 and BloomFilter.from_bytes(bloom.to_bytes()).inserted == bloom.inserted
    sys.exit(0 if ok else 3)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+ warns about fork() with threads
def test_batch_calls_work_in_a_forked_child() -> None:
    """rayon's thread pool does not survive fork(): a worker forked after a batch call must not hang."""
    bloom = BloomFilter(1 << 16, 7)
    keys = [b"fork-%d" % i for i in range(50_000)]
    bloom.insert_batch(keys)  # the parent's thread pool is now running
    child = multiprocessing.get_context("fork").Process(target=_check_in_child, args=(bloom, keys))
    child.start()
    child.join(timeout=300)  # only a guard against hanging forever, not a speed limit
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("the forked child hung in a batch call")
    assert child.exitcode == 0


# ------------------------------------------------------------------------------------------ stub


def stub_names() -> tuple[set[str], set[str]]:
    tree = ast.parse(STUB.read_text())
    module: set[str] = set()
    members: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            module.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            module.add(node.target.id)
        if isinstance(node, ast.ClassDef) and node.name == "BloomFilter":
            members = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    return module, members


def test_stub_matches_the_module() -> None:
    module, members = stub_names()
    runtime_module = {n for n in dir(_rust) if not n.startswith("_")} | {"__version__"}
    public_module = {n for n in module if not n.startswith("_")} | {"__version__"}
    assert public_module == runtime_module
    runtime_members = {n for n in dir(BloomFilter) if not n.startswith("_")}
    assert {n for n in members if not n.startswith("_")} == runtime_members
    assert all(hasattr(BloomFilter, n) for n in members)
