"""Differential test: `dolma tokens` here vs the reference toolkit with the same tokenizer file.

Same documents with the same token ids (BOS/EOS included), the same (src, loc) for each id, the same shard
and index conventions. Intended difference: the order of documents (both shuffle, with different schemes), so
documents are compared as a mapping keyed by id.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

from mixers.tokenizer import DEFAULT_TOKENIZER_FILE
from tests.conftest import SAMPLE, run_cli
from tests.helpers.reference import run_reference
from tests.mixers.test_tokens import corpus_docs, write_corpus

pytestmark = pytest.mark.reference


def shards_by_id(dest: Path) -> tuple[dict[str, tuple[list[int], str, int]], list[str]]:
    """id -> (token ids, src, loc) over every shard, and the sorted shard names."""
    out: dict[str, tuple[list[int], str, int]] = {}
    names = []
    for npy in sorted(dest.glob("part-*.npy")):
        names.append(npy.name)
        arr = np.fromfile(npy, dtype="<u2")
        with gzip.open(str(npy)[: -len(".npy")] + ".csv.gz", "rt") as fh:
            rows = list(csv.reader(fh))
        assert int(rows[0][0]) == 0 and int(rows[-1][1]) == len(arr), npy
        for start, end, doc_id, src, loc in rows:
            assert doc_id not in out, f"{doc_id} twice in {dest}"
            out[doc_id] = (arr[int(start) : int(end)].tolist(), src, int(loc))
    return out, names


@pytest.mark.parametrize(("bos", "with_sample"), [(0, True)], ids=["bos-and-eos-with-sample-corpus"])
def test_same_token_ids_as_reference(tmp_path, bos, with_sample):
    docs_dir = write_corpus(tmp_path / "corpus", corpus_docs(n_files=3, per_file=40, seed=1))
    patterns = [str(docs_dir / "*.jsonl.gz")]
    if with_sample:
        assert SAMPLE.exists(), "the sample corpus is part of the repository"
        patterns.append(str(SAMPLE / "documents" / "*" / "*.jsonl.gz"))
    special = ["--tokenizer.eos_token_id", "50279", "--tokenizer.pad_token_id", "1"]
    if bos is not None:
        special += ["--tokenizer.bos_token_id", str(bos)]
    common = ["--documents", *patterns, "--tokenizer.name_or_path", str(DEFAULT_TOKENIZER_FILE), *special]
    ref = run_reference(["tokens", *common, "--destination", str(tmp_path / "ref"), "--processes", "1"], tmp_path)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ours = run_cli("tokens", "--quiet", *common, "--destination", str(tmp_path / "ours"))
    assert ours.returncode == 0, ours.stderr
    ref_docs, ref_names = shards_by_id(tmp_path / "ref")
    our_docs, our_names = shards_by_id(tmp_path / "ours")
    assert ref_names == our_names == ["part-0-00000.npy"]
    assert set(our_docs) == set(ref_docs)
    for doc_id, (ids, src, loc) in ref_docs.items():
        assert our_docs[doc_id][0] == ids, doc_id
        assert (Path(our_docs[doc_id][1]).resolve(), our_docs[doc_id][2]) == (Path(src).resolve(), loc), doc_id


def test_hub_tokenizer_name_from_the_hugging_face_cache_as_the_reference(tmp_path, monkeypatch):
    """`tokenizer.name_or_path: <org>/<name>` read from a Hugging Face cache built here, offline, by both."""
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hf" / "hub" / "models--my-org--olmo"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "tokenizer.json").write_bytes(DEFAULT_TOKENIZER_FILE.read_bytes())
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    docs_dir = write_corpus(tmp_path / "corpus", corpus_docs(n_files=2, per_file=20, seed=2))
    common = ["--documents", str(docs_dir / "*.jsonl.gz"), "--tokenizer.name_or_path", "my-org/olmo"]
    common += ["--tokenizer.eos_token_id", "50279", "--tokenizer.pad_token_id", "1"]
    ref = run_reference(["tokens", *common, "--destination", str(tmp_path / "ref"), "--processes", "1"], tmp_path)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ours = run_cli("tokens", "--quiet", *common, "--destination", str(tmp_path / "ours"))
    assert ours.returncode == 0, ours.stderr
    ref_docs, _ = shards_by_id(tmp_path / "ref")
    our_docs, _ = shards_by_id(tmp_path / "ours")
    assert len(ref_docs) == 40 and {k: v[0] for k, v in our_docs.items()} == {k: v[0] for k, v in ref_docs.items()}
