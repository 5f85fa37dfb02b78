"""MinHash-LSH engine (dolma.minhash over rust_ext/core/src/minhash): parity with datasketch (signatures, band
parameters, LSH candidates), recall on planted near-duplicates with known Jaccard, determinism of the clustering,
and bad input (bad lines, damaged band-key files, bad parameters)."""

from __future__ import annotations

import gzip
import itertools
import json
import pickle
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import regex
from datasketch import LeanMinHash, MinHash, MinHashLSH
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dolma import _rust
from dolma import minhash as mh
from dolma.errors import BadInputError, ConfigError, CorruptFileError

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
DOC_FILES = sorted((SAMPLE / "documents").rglob("*.jsonl.gz"))


@pytest.fixture(scope="module")
def sample() -> list[tuple[str, str]]:
    """(id, text) of every sample document, in the stable order (sorted files, then lines)."""
    out = []
    for path in DOC_FILES:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            out.extend((rec["id"], rec["text"]) for rec in map(json.loads, f))
    return out


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((SAMPLE / "ground_truth.json").read_text(encoding="utf-8"))


def datasketch_values(text: str, num_perm: int, seed: int, scheme: str, ngram: int = 5, tokenizer="words"):
    m = MinHash(num_perm=num_perm, seed=seed, scheme=scheme)
    m.update_batch([s.encode("utf-8") for s in mh.shingles(text, ngram, tokenizer)])
    return m.hashvalues


def write_docs(path: Path, docs: list[tuple[str, str]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for doc_id, text in docs:
            f.write(json.dumps({"id": doc_id, "text": text, "source": "test"}) + "\n")
    return str(path)


def run_engine(
    tmp: Path, files: list[str], params: mh.MinHashParams, *, budget: int = 1 << 30, threads: int | None = None
) -> tuple[list[np.ndarray], mh.ClusterStats]:
    units = [str(tmp / "keys" / f"{i}.mhk") for i in range(len(files))]
    outs = [str(tmp / "results" / f"{i}.mhr") for i in range(len(files))]
    for i, path in enumerate(files):
        mh.sign_file(path, units[i], i, params, threads=threads)
    stats = mh.cluster(units, outs, params, memory_budget=budget, spill_dir=str(tmp), threads=threads)
    return [mh.read_results(o)[1] for o in outs], stats


def clusters_by_id(results: list[np.ndarray], ids: list[str]) -> dict[str, tuple[str, float]]:
    """Document id -> (keeper id, similarity to the keeper), for every document in a cluster."""
    return {ids[r["ordinal"]]: (ids[r["cluster"]], float(r["similarity"])) for res in results for r in res}


# ----------------------------------------------------------------------------------------------------------
# Shingles
# ----------------------------------------------------------------------------------------------------------


def test_word_shingles_follow_unicode_word_boundaries_on_the_sample_corpus(sample):
    """Independent oracle: the `regex` module's Unicode default word boundaries, keeping segments with a letter
    or digit, on the lower-cased text."""
    boundary = regex.compile(r"(?wV1)\b")
    for doc_id, text in sample:
        want = [w for w in boundary.split(text.lower()) if any(c.isalnum() for c in w)]
        assert mh.shingles(text, ngram=1) == want, doc_id


@pytest.mark.parametrize(
    ("text", "ngram", "tokenizer", "want"),
    [
        ("The cat, the HAT!", 2, "words", ["the cat", "cat the", "the hat"]),
        ("three little words", 5, "words", ["three little words"]),  # fewer words than n: one shingle
        ("", 5, "words", []),
        (" \t\n ", 5, "words", []),
        ("?! -- ...", 3, "words", []),  # punctuation only: no words
        ("Ab  cD", 3, "chars", ["ab ", "b c", " cd"]),
        ("xy", 3, "chars", ["xy"]),
        ("Ελληνικά κείμενα", 1, "words", ["ελληνικά", "κείμενα"]),
        ("日本語", 2, "words", ["日 本", "本 語"]),
    ],
)
def test_shingle_rules(text, ngram, tokenizer, want):
    assert mh.shingles(text, ngram, tokenizer) == want


# ----------------------------------------------------------------------------------------------------------
# Signatures: bit-identical to datasketch with hash="sha1"
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "num_perm", "seed", "ngram", "tokenizer"),
    [("affine32", 128, 1, 5, "words"), ("legacy", 64, 7, 3, "words"), ("affine32", 32, 42, 9, "chars")],
)
def test_sha1_signatures_equal_datasketch_on_the_sample_corpus(sample, scheme, num_perm, seed, ngram, tokenizer):
    texts = [text for _, text in sample]
    ours = mh.signatures(texts, num_perm, seed, ngram, tokenizer, hash="sha1", scheme=scheme)
    assert ours.shape == (len(texts), num_perm)
    for (doc_id, text), row in zip(sample, ours):
        want = datasketch_values(text, num_perm, seed, scheme, ngram, tokenizer)
        assert want.dtype == row.dtype
        assert np.array_equal(row, want), doc_id


SCRIPTS = st.sampled_from(
    [
        "The quick brown fox jumps over the lazy dog",
        "Съешь же ещё этих мягких французских булок",
        "我能吞下玻璃而不伤身体",
        "نص حكيم له سر قاطع وذو شأن عظيم",
        "いろはにほへと ちりぬるを",
        "ก ข ฃ ค ฅ ฆ ง",
        "Ἐν ἀρχῇ ἦν ὁ λόγος",
        "👍🏽 emoji 🎉 and ZWJ 👨‍👩‍👧",
        "",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(st.text(max_size=300), st.lists(SCRIPTS, max_size=8).map(" ".join)),
    ngram=st.integers(1, 6),
    tokenizer=st.sampled_from(["words", "chars"]),
    seed=st.integers(0, 2**32 - 1),
)
@example(text="", ngram=5, tokenizer="words", seed=1)
@example(text="one", ngram=5, tokenizer="words", seed=1)
@example(text="ab", ngram=5, tokenizer="chars", seed=1)
def test_sha1_signatures_equal_datasketch_on_generated_text(text, ngram, tokenizer, seed):
    ours = mh.signatures([text], 16, seed, ngram, tokenizer, hash="sha1")[0]
    assert np.array_equal(ours, datasketch_values(text, 16, seed, "affine32", ngram, tokenizer))


def test_sha1_signature_of_a_one_megabyte_text_equals_datasketch():
    rng = random.Random(5)
    words = ["alpha", "βήτα", "гамма", "デルタ", "epsilon", "zeta", "ηта", "x1", "y2"]
    text = " ".join(rng.choice(words) + str(rng.randrange(3000)) for _ in range(120_000))[: 1 << 20]
    assert len(text.encode("utf-8")) >= 1 << 20
    ours = mh.signatures([text], hash="sha1")[0]
    assert np.array_equal(ours, datasketch_values(text, 128, 1, "affine32"))


def test_empty_texts_get_datasketch_empty_signature_and_threads_do_not_matter(sample):
    texts = [text for _, text in sample[:300]] + ["", "   "]
    one = mh.signatures(texts, threads=1)
    assert np.array_equal(one, mh.signatures(texts, threads=2))
    assert np.all(one[-2:] == np.iinfo(np.uint32).max)
    assert np.array_equal(one[-1], MinHash(num_perm=128, seed=1).hashvalues)


def test_xxh3_default_is_datasketch_with_the_documented_hash_function(sample):
    """`hash="xxh3"`: datasketch's scheme with the base hash `xxh3_64(shingle, seed=XXH3_SEED) mod 2^32`."""
    texts = [text for _, text in sample]
    ours = mh.signatures(texts)
    assert not np.array_equal(ours, mh.signatures(texts, hash="sha1"))
    assert mh.XXH3_SEED == 0x6D696E6861736831

    def xxh3_low32(data: bytes) -> int:
        return _rust.xxh3_64(data, mh.XXH3_SEED) & 0xFFFFFFFF

    for (doc_id, text), row in zip(sample, ours):
        m = MinHash(num_perm=128, seed=1, hashfunc=xxh3_low32)
        m.update_batch([s.encode("utf-8") for s in mh.shingles(text)])
        assert np.array_equal(row, m.hashvalues), doc_id


def test_lean_minhash_objects_work_in_datasketch(sample):
    texts = [text for _, text in sample[:20]]
    sigs = mh.signatures(texts, hash="sha1")
    lean = mh.to_lean_minhashes(sigs)
    assert all(isinstance(x, LeanMinHash) for x in lean)
    m0 = MinHash(num_perm=128, seed=1)
    m0.update_batch([s.encode() for s in mh.shingles(texts[0])])
    assert lean[0].jaccard(m0) == 1.0
    assert lean[0].jaccard(lean[1]) == pytest.approx(float(np.mean(sigs[0] == sigs[1])))
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    for i, x in enumerate(lean):
        lsh.insert(i, x)
    assert 0 in lsh.query(m0)
    legacy = mh.signatures(texts[:2], scheme="legacy", hash="sha1")
    assert legacy.dtype == np.uint64
    assert mh.to_lean_minhash(legacy[0], scheme="legacy").scheme == "legacy"


# ----------------------------------------------------------------------------------------------------------
# LSH parameters and candidates
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_perm", [16, 64, 128, 256])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.8, 0.9, 0.95])
def test_band_parameters_equal_datasketch(num_perm, threshold):
    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError:  # datasketch refuses a single band: so do we, with our own message
        with pytest.raises(ConfigError, match="at least two bands"):
            mh.MinHashParams(threshold=threshold, num_perm=num_perm).band_rows()
        return
    assert mh.lsh_params(threshold, num_perm) == (lsh.b, lsh.r)
    params = mh.MinHashParams(threshold=threshold, num_perm=num_perm)
    assert params.band_rows() == (lsh.b, lsh.r)
    assert json.loads(params.engine_json())["bands"] == lsh.b


def test_band_parameters_with_weights_and_explicit_bands():
    lsh = MinHashLSH(threshold=0.7, num_perm=128, weights=(0.2, 0.8))
    assert mh.lsh_params(0.7, 128, (0.2, 0.8)) == (lsh.b, lsh.r) != mh.lsh_params(0.7, 128)
    assert mh.MinHashParams(bands=20, rows=5).band_rows() == (20, 5)


def test_lsh_candidates_equal_datasketch_on_the_sample_corpus(sample):
    params = mh.MinHashParams(hash="sha1", threshold=0.5)
    texts = [text for _, text in sample]
    keyed = [i for i, t in enumerate(texts) if mh.shingles(t)]
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    with lsh.insertion_session() as session:
        for i in keyed:
            m = MinHash(num_perm=128, seed=1)
            m.update_batch([s.encode() for s in mh.shingles(texts[i])])
            session.insert(i, m)
    sigs = mh.signatures(texts, hash="sha1")
    want = set()
    for i in keyed:
        want.update((min(i, j), max(i, j)) for j in lsh.query(MinHash(seed=1, hashvalues=sigs[i], scheme="affine32")))
    want = {p for p in want if p[0] != p[1]}
    keys = mh.band_keys(sigs, params)
    assert keys.shape == (len(texts), lsh.b)
    buckets = defaultdict(list)
    for i in keyed:
        for k in keys[i]:
            buckets[int(k)].append(i)
    got = {(a, b) for members in buckets.values() for a in members for b in members if a < b}
    assert len(want) > 50
    assert got == want


def components(pairs: set[tuple[int, int]], n: int) -> list[int]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [find(x) for x in range(n)]


def test_engine_clusters_are_the_components_of_datasketch_candidates(sample, truth, tmp_path):
    params = mh.MinHashParams(hash="sha1", threshold=0.5)
    ids = [doc_id for doc_id, _ in sample]
    texts = [text for _, text in sample]
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    pairs = set()
    for i, text in enumerate(texts):
        if not mh.shingles(text):
            continue
        m = MinHash(num_perm=128, seed=1)
        m.update_batch([s.encode() for s in mh.shingles(text)])
        pairs.update((j, i) for j in lsh.query(m))
        lsh.insert(i, m)
    roots = components(pairs, len(texts))
    want = {ids[i]: ids[r] for i, r in enumerate(roots) if r != i or roots.count(i) > 1}
    results, stats = run_engine(tmp_path, [str(p) for p in DOC_FILES], params)
    got = {doc: keeper for doc, (keeper, _) in clusters_by_id(results, ids).items()}
    assert got == want
    assert stats.documents == len(texts) and stats.duplicates == sum(1 for d, k in want.items() if d != k)
    # The corpus's planted exact and near duplicates are all found, keeper = first in the stable order.
    for group in truth["exact_duplicates"] + truth["near_duplicates"]:
        first = min(group["ids"], key=ids.index)
        assert {got.get(doc) for doc in group["ids"]} == {first}, group["ids"]


# ----------------------------------------------------------------------------------------------------------
# Planted near-duplicates with known Jaccard
# ----------------------------------------------------------------------------------------------------------


def jaccard(a: str, b: str) -> float:
    x, y = set(mh.shingles(a)), set(mh.shingles(b))
    return len(x & y) / len(x | y)


@pytest.fixture(scope="module")
def planted(sample, truth) -> tuple[list[tuple[str, str]], list[tuple[str, str, float]]]:
    """Originals from the sample corpus (not in any planted group) and one edited copy of each, with true shingle
    Jaccard spread over [0.3, 1]: words replaced by tokens found nowhere else."""
    grouped = {
        i for key in ("exact_duplicates", "near_duplicates", "templated_groups") for g in truth[key] for i in g["ids"]
    }
    grouped |= {i for g in truth["partial_duplicates"] for i in g["ids"]}
    rng = random.Random(20240601)
    originals = [(i, t) for i, t in sample if i not in grouped and 150 <= len(mh.shingles(t, ngram=1)) <= 3000]
    originals = rng.sample(originals, 240)
    copies, pairs = [], []
    for k, (doc_id, text) in enumerate(originals):
        target = 0.3 + 0.7 * k / (len(originals) - 1)
        words = text.split(" ")
        shingles = len(words)
        edits = round(shingles * (1 - target) / (5 * (1 + target)))
        for n, pos in enumerate(rng.sample(range(len(words)), min(edits, len(words)))):
            words[pos] = f"zqx{k}q{n}"
        copy = " ".join(words)
        copies.append((f"copy-of-{doc_id}", copy))
        pairs.append((doc_id, f"copy-of-{doc_id}", jaccard(text, copy)))
    rng.shuffle(copies)
    return originals + copies, pairs


@pytest.mark.parametrize("verify", ["exact", "signature"])
def test_planted_near_duplicates_are_found_and_verification_drops_pairs_below_the_threshold(planted, tmp_path, verify):
    docs, pairs = planted
    threshold = 0.7
    js = sorted(j for _, _, j in pairs)
    assert js[0] < 0.4 and js[-1] == 1.0 and sum(j >= threshold + 0.1 for j in js) >= 50
    assert sum(j < threshold for j in js) >= 80
    files = [
        write_docs(tmp_path / "documents" / "a.jsonl.gz", docs[:300]),
        write_docs(tmp_path / "documents" / "b.jsonl.gz", docs[300:]),
    ]
    params = mh.MinHashParams(threshold=threshold, weights=(0.2, 0.8), verify=verify)
    results, stats = run_engine(tmp_path, files, params)
    ids = [doc_id for doc_id, _ in docs]
    found = clusters_by_id(results, ids)
    same = [(j, found.get(a, (a,))[0] == found.get(b, (b,))[0]) for a, b, j in pairs]
    high = [hit for j, hit in same if j >= threshold + 0.1]
    assert sum(high) / len(high) >= 0.95
    if verify == "exact":
        assert not [j for j, hit in same if hit and j < threshold]
        assert stats.rejected > 0  # LSH candidates below the threshold were there, and dropped
    for a, b, j in pairs:
        if found.get(b, (None,))[0] == a:
            assert found[b][1] == pytest.approx(j, abs=1e-6 if verify == "exact" else 0.2)


# ----------------------------------------------------------------------------------------------------------
# Determinism, budgets, bad input
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_reference(sample, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    params = mh.MinHashParams(threshold=0.6, verify="signature")
    results, _ = run_engine(tmp, [str(p) for p in DOC_FILES], params, threads=1)
    return params, clusters_by_id(results, [i for i, _ in sample]), results


def test_clusters_do_not_depend_on_threads_budget_or_file_split(sample, sample_reference, tmp_path):
    params, want, want_results = sample_reference
    assert len(want) > 40
    ids = [i for i, _ in sample]
    results, stats = run_engine(tmp_path / "tiny", [str(p) for p in DOC_FILES], params, budget=2048, threads=2)
    assert stats.sort_runs > 50 and stats.merge_passes > 0
    assert all(np.array_equal(a, b) for a, b in zip(results, want_results))
    cut = [0, 700, 701, 1800, len(sample)]
    files = [
        write_docs(tmp_path / "split" / f"{k}.jsonl.gz", sample[a:b])
        for k, (a, b) in enumerate(itertools.pairwise(cut))
    ]
    results, _ = run_engine(tmp_path / "split", files, params, budget=4096, threads=2)
    assert clusters_by_id(results, ids) == want
    files = [write_docs(tmp_path / "one" / "all.jsonl.gz", sample)]
    results, _ = run_engine(tmp_path / "one", files, params)
    assert clusters_by_id(results, ids) == want


def test_band_key_file_is_independent_of_batches_and_threads(tmp_path):
    params = mh.MinHashParams(verify="exact")
    path = str(DOC_FILES[0])
    a, b = tmp_path / "a.mhk", tmp_path / "b.mhk"
    stats = mh.sign_file(path, str(a), 0, params, batch_bytes=1, threads=1)
    mh.sign_file(path, str(b), 0, params, batch_bytes=1 << 30, threads=2)
    assert a.read_bytes() == b.read_bytes()
    header = mh.unit_header(str(a), params)
    assert header["documents"] == stats.documents == 454 and header["source"] == path
    assert header["shingle_sets"] and header["records"] == header["keyed"] * header["bands"]


def test_documents_without_shingles_are_never_duplicates_and_short_ones_match_only_equals(tmp_path):
    docs = [
        ("e1", ""),
        ("e2", "  \n "),
        ("p1", "?!?"),
        ("e3", ""),
        ("s1", "Two words"),
        ("s2", "two WORDS!"),
        ("s3", "two words and more words here"),
    ]
    files = [write_docs(tmp_path / "documents" / "x.jsonl.gz", docs)]
    results, stats = run_engine(tmp_path, files, mh.MinHashParams(verify="exact"))
    assert clusters_by_id(results, [d for d, _ in docs]) == {"s1": ("s1", 1.0), "s2": ("s1", 1.0)}
    assert stats.keyed == 3


def test_bad_lines_error_naming_file_line_and_field_or_are_skipped_and_counted(tmp_path):
    path = tmp_path / "documents" / "bad.jsonl"
    path.parent.mkdir()
    path.write_text('{"id": "a", "text": "one two"}\n{"id": "b", "text": 5}\n\n{not json\n{"id": "c", "text": "x"}\n')
    out = tmp_path / "keys" / "bad.mhk"
    params = mh.MinHashParams()
    with pytest.raises(BadInputError) as err:
        mh.sign_file(str(path), str(out), 0, params)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 2, "text")
    assert not out.exists() and not list(out.parent.iterdir())
    stats = mh.sign_file(str(path), str(out), 0, params, skip_bad_lines=True)
    assert (stats.lines, stats.documents, stats.bad_lines) == (5, 2, 2)
    header = mh.unit_header(str(out))
    assert (header["lines"], header["bad_lines"], header["documents"]) == (5, 2, 2)


def test_damaged_or_foreign_band_key_files_are_rejected(tmp_path):
    params = mh.MinHashParams()
    files = [write_docs(tmp_path / "documents" / "x.jsonl.gz", [("a", "some words here and there"), ("b", "more")])]
    unit = tmp_path / "x.mhk"
    mh.sign_file(files[0], str(unit), 0, params)
    good = unit.read_bytes()
    out = [str(tmp_path / "x.mhr")]

    def rejected(data: bytes, reason: str, with_params: mh.MinHashParams = params) -> None:
        unit.write_bytes(data)
        with pytest.raises(CorruptFileError) as err:
            mh.cluster([str(unit)], out, with_params)
        assert err.value.path == str(unit) and reason in err.value.reason, err.value.reason

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 1
    rejected(bytes(flipped), "checksum mismatch")
    rejected(good[:-4], "header announces")
    rejected(b"PK\x03\x04" + good[4:], "not a MinHash band-key file")
    rejected(good, "other MinHash parameters", mh.MinHashParams(ngram=4))
    unit.write_bytes(good)
    with pytest.raises(ConfigError):
        mh.cluster([str(unit)], out, mh.MinHashParams(), memory_budget=10)
    with pytest.raises(CorruptFileError, match="not a MinHash result file"):
        mh.read_results(str(unit))
    with pytest.raises(FileNotFoundError):
        mh.cluster([str(tmp_path / "missing.mhk")], out, params)
    assert not (tmp_path / "x.mhr").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seed": -1}, "minhash.seed"),
        ({"seed": 2**32}, "minhash.seed"),
        ({"num_perm": 0}, "minhash.num_perm"),
        ({"ngram": 0}, "minhash.ngram"),
        ({"threshold": 1.0}, "minhash.threshold"),
        ({"weights": (0.5, 0.6)}, "minhash.weights"),
        ({"bands": 4}, "minhash.bands"),
        ({"bands": 20, "rows": 10}, "minhash.bands"),
    ],
)
def test_bad_parameters_are_config_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        mh.MinHashParams(**fields)


def test_signer_pickles_and_rejects_bad_json():
    signer = mh.signer(mh.MinHashParams(num_perm=16))
    clone = pickle.loads(pickle.dumps(signer))
    assert clone.fingerprint == signer.fingerprint
    assert clone.signatures(["a b c d e f"]) == signer.signatures(["a b c d e f"])
    with pytest.raises(ConfigError, match="minhash"):
        _rust.MinHashSigner(signer.config_json.replace('"ngram"', '"n_gram"'))
