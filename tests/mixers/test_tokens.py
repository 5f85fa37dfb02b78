"""`dolma tokens`: shards decode back to their sources, index rows tile the arrays, limits and determinism hold."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import random
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from dolma.executors.summary import is_run_summary
from mixers.tokenizer import DEFAULT_TOKENIZER_FILE, load_tokenizer
from tests.conftest import SAMPLE, outputs_in, run_cli, write_jsonl_gz

EOS = 50279

TEXTS = [
    "Hello world.",
    "  leading and trailing whitespace  ",
    "\n\nnewlines around\n\n",
    "special <|endoftext|> token inside",
    "Ünïcödé façade — naïve café, 東京は日本の首都です。 🙂🚀 emoji",
    "Это русский текст. Ceci est un texte français.",
    "windows\r\nline\r\nendings",
    "tabs\tand\u00a0non-breaking\u2003spaces\u2028separator",
    "decomposed cafe\u0301 (NFC changes it)",
    "code: def f(x):\n    return x ** 2  # comment\n",
    "numbers 1234567890 3.14159 1e-9",
    "x " * 400,
]


def corpus_docs(n_files: int = 4, per_file: int = 40, seed: int = 0) -> list[list[dict]]:
    """Deterministic documents: edge cases, mixed scripts, varied lengths, a few empty ones."""
    rng = random.Random(seed)
    words = ["the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from"]
    words += ["language", "model", "data", "token", "corpus"]
    words += ["Größe", "東京", "данные", "🙂", "naïve", "it's", "—", "\n", "\n\n"]
    files = []
    for f in range(n_files):
        docs = []
        for i in range(per_file):
            k = rng.randrange(10)
            if i < len(TEXTS) and f == 0:
                text = TEXTS[i]
            elif k == 0:
                text = rng.choice(["", "   ", "\n\t \n"])
            else:
                text = " ".join(rng.choice(words) for _ in range(rng.randrange(1, 300)))
            docs.append({"id": f"f{f}-{i}", "text": text, "source": "gen", "metadata": {"n": i}})
        files.append(docs)
    return files


def write_corpus(root: Path, files: list[list[dict]]) -> Path:
    for f, docs in enumerate(files):
        write_jsonl_gz(root / "documents" / f"part-{f:02d}.jsonl.gz", docs)
    return root / "documents"


def read_shards(dest: Path, dtype=np.uint16) -> list[tuple[Path, np.ndarray, list[list[str]]]]:
    out = []
    for npy in sorted(dest.glob("part-*.npy")):
        arr = np.fromfile(npy, dtype=np.dtype(dtype).newbyteorder("<"))
        with gzip.open(str(npy)[: -len(".npy")] + ".csv.gz", "rt") as fh:
            import csv

            rows = list(csv.reader(fh))
        out.append((npy, arr, rows))
    return out


def tokens_cli(*args: str, **kw):
    return run_cli("tokens", "--quiet", *args, **kw)


def expected_text(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def test_round_trip_and_index_cover_every_document(tmp_path):
    files = corpus_docs()
    docs_dir = write_corpus(tmp_path, files)
    patterns = [str(docs_dir / "*.jsonl.gz")]
    all_docs = {d["id"]: d for docs in files for d in docs}
    if SAMPLE.exists():  # the shared sample corpus, when present, is checked document by document too
        patterns.append(str(SAMPLE / "documents" / "**" / "*.jsonl.gz"))
        from tests.conftest import read_jsonl

        for path in sorted((SAMPLE / "documents").rglob("*.jsonl.gz")):
            for row in read_jsonl(path):
                all_docs[row["id"]] = row
    dest = tmp_path / "tokens"
    result = tokens_cli("--documents", *patterns, "--destination", str(dest), "--max_size", "2000")
    assert result.returncode == 0, result.stderr
    tok = load_tokenizer(str(DEFAULT_TOKENIZER_FILE))
    seen: set[str] = set()
    lines_of: dict[str, list[str]] = {}
    shards = read_shards(dest)
    assert len(shards) > 1, "max_size 2000 must split this corpus into several shards"
    for _npy, arr, rows in shards:
        assert rows, "no empty shards"
        assert int(rows[0][0]) == 0
        for prev, row in itertools.pairwise(rows):
            assert int(row[0]) == int(prev[1]), "rows are contiguous"
        assert int(rows[-1][1]) == len(arr), "rows cover the array exactly"
        assert len(arr) <= 2000 or len(rows) == 1
        for start, end, doc_id, src, loc in rows:
            ids = arr[int(start) : int(end)].tolist()
            assert ids[-1] == EOS
            doc = all_docs[doc_id]
            assert tok.decode(ids[:-1]) == expected_text(doc["text"]), doc_id
            if src not in lines_of:
                with gzip.open(src, "rt") as fh:
                    lines_of[src] = fh.read().split("\n")
            assert json.loads(lines_of[src][int(loc) - 1])["id"] == doc_id
            assert doc_id not in seen
            seen.add(doc_id)
    assert seen == {i for i, d in all_docs.items() if d["text"].strip()}, "every non-empty document exactly once"


def test_verify_passes_and_catches_corruption(tmp_path):
    docs_dir = write_corpus(tmp_path, corpus_docs(n_files=2))
    dest = tmp_path / "tokens"
    args = ["--documents", str(docs_dir / "*.gz"), "--destination", str(dest)]
    ok = tokens_cli(*args, "--verify", "--verify_samples", "-1")
    assert ok.returncode == 0, ok.stderr
    assert "verify OK" in ok.stdout
    npy = sorted(dest.glob("part-*.npy"))[0]
    arr = np.fromfile(npy, dtype="<u2")
    pos = len(arr) // 2 + int(arr[len(arr) // 2] == EOS)
    arr[pos] = (int(arr[pos]) + 1) % 50000
    arr.tofile(npy)
    bad = tokens_cli(*args, "--verify", "--verify_samples", "-1")
    assert bad.returncode == 1
    assert "decodes to different text" in bad.stdout


def test_uint16_rejected_for_large_vocabulary(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(70000)}
    vocab["[UNK]"] = 70000
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "big.json"
    tok.save(str(path))
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", [{"id": "a", "text": "w1 w69999 w2", "source": "s"}])
    args = ["--documents", str(tmp_path / "documents" / "*.gz"), "--tokenizer.name_or_path", str(path)]
    args += ["--tokenizer.eos_token_id", "70000"]
    small = tokens_cli(*args, "--destination", str(tmp_path / "t16"), "--dtype", "uint16")
    assert small.returncode == 2
    assert "uint16" in small.stderr and "uint32" in small.stderr
    assert not (tmp_path / "t16").exists()
    big = tokens_cli(*args, "--destination", str(tmp_path / "t32"), "--dtype", "uint32")
    assert big.returncode == 0, big.stderr
    assert np.fromfile(tmp_path / "t32" / "part-0-00000.npy", dtype="<u4").tolist() == [1, 69999, 2, 70000]


def test_documents_longer_than_max_size_get_their_own_shard(tmp_path):
    docs = [{"id": f"s{i}", "text": f"short {i}", "source": "s"} for i in range(10)]
    docs.insert(4, {"id": "long", "text": "word " * 500, "source": "s"})
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", docs)
    dest = tmp_path / "tokens"
    result = tokens_cli(
        "--documents", str(tmp_path / "documents" / "*.gz"), "--destination", str(dest), "--max_size", "10"
    )
    assert result.returncode == 0, result.stderr
    shards = read_shards(dest)
    long_shards = [(arr, rows) for _, arr, rows in shards if any(r[2] == "long" for r in rows)]
    assert len(long_shards) == 1 and len(long_shards[0][1]) == 1 and len(long_shards[0][0]) == 501
    others = [(arr, rows) for _, arr, rows in shards if not any(r[2] == "long" for r in rows)]
    assert all(len(arr) <= 10 for arr, _ in others)
    assert sorted(r[2] for _, rows in others for r in rows) == sorted(f"s{i}" for i in range(10))


def test_empty_documents_are_skipped_and_counted(tmp_path):
    docs = [
        {"id": "a", "text": "", "source": "s"},
        {"id": "b", "text": "kept", "source": "s"},
        {"id": "c", "text": " \n\t ", "source": "s"},
    ]
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", docs)
    dest = tmp_path / "tokens"
    result = run_cli("tokens", "--documents", str(tmp_path / "documents" / "*.gz"), "--destination", str(dest))
    assert result.returncode == 0, result.stderr
    assert "empty documents skipped" in result.stderr
    ((_, arr, rows),) = read_shards(dest)
    assert [r[2] for r in rows] == ["b"] and arr.tolist()[-1] == EOS


def test_only_empty_documents_write_no_shard(tmp_path):
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", [{"id": "a", "text": "  ", "source": "s"}])
    dest = tmp_path / "tokens"
    result = tokens_cli("--documents", str(tmp_path / "documents" / "*.gz"), "--destination", str(dest))
    assert result.returncode == 0, result.stderr
    assert not list(dest.glob("part-*"))


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob("part-*"))}


def test_same_seed_same_bytes_whatever_the_process_count(tmp_path):
    docs_dir = write_corpus(tmp_path, corpus_docs(n_files=6, per_file=30))
    base = ["--documents", str(docs_dir / "*.gz"), "--files_per_process", "2", "--ring_size", "2"]
    base += ["--shuffle_window", "16", "--batch_size", "8", "--max_size", "3000"]
    one = tokens_cli(*base, "--destination", str(tmp_path / "one"), "--processes", "1")
    two = tokens_cli(*base, "--destination", str(tmp_path / "two"), "--processes", "2")
    other = tokens_cli(*base, "--destination", str(tmp_path / "other"), "--seed", "7")
    for r in (one, two, other):
        assert r.returncode == 0, r.stderr
    a, b, c = _tree_bytes(tmp_path / "one"), _tree_bytes(tmp_path / "two"), _tree_bytes(tmp_path / "other")
    assert {name.split("-")[1] for name in a} == {"0", "1", "2"}, "three groups of two files"
    assert a == b
    assert a != c, "another seed gives another order"


def test_documents_are_mixed_across_files(tmp_path):
    docs_dir = write_corpus(tmp_path, corpus_docs(n_files=4, per_file=40))
    dest = tmp_path / "tokens"
    result = tokens_cli("--documents", str(docs_dir / "*.gz"), "--destination", str(dest), "--ring_size", "4")
    assert result.returncode == 0, result.stderr
    ((_, _, rows),) = read_shards(dest)
    first = rows[:40]
    assert len({r[3] for r in first}) >= 3, "the first 40 documents come from several files"
    order = [(r[3], int(r[4])) for r in rows]
    assert order != sorted(order)
    per_file_lines = [int(r[4]) for r in rows if r[3].endswith("part-00.jsonl.gz")]
    assert per_file_lines != sorted(per_file_lines), "the window also shuffles within a file"


def test_resume_skips_finished_groups_and_redoes_the_rest(tmp_path):
    docs_dir = write_corpus(tmp_path, corpus_docs(n_files=4, per_file=20))
    dest = tmp_path / "tokens"
    args = ["--documents", str(docs_dir / "*.gz"), "--destination", str(dest), "--files_per_process", "2"]
    assert tokens_cli(*args).returncode == 0
    before = _tree_bytes(dest)
    for path in dest.glob("part-1-*"):
        path.unlink()
    (dest / ".part-1.done").unlink()
    # what an interrupted run of group 1 leaves: a shard, listed in the group's journal (written before the shard
    # is created); tokens removes only shards a marker or journal of its own lists (see test_tokens_safety.py)
    (dest / "part-1-00007.npy").write_bytes(b"stale shard of an earlier, interrupted run")
    (dest / ".part-1.journal").write_text(json.dumps({"outputs": ["part-1-00007.npy"]}))
    (dest / "part-0-00000.npy").write_bytes(b"untouched")  # group 0 is complete: it must be skipped
    result = run_cli("tokens", *args)
    assert result.returncode == 0, result.stderr
    after = _tree_bytes(dest)
    assert after["part-0-00000.npy"] == b"untouched"
    assert {k: v for k, v in after.items() if k.startswith("part-1")} == {
        k: v for k, v in before.items() if k.startswith("part-1")
    }
    assert not (dest / ".part-1.journal").exists() and (dest / ".part-1.done").exists()


def test_bad_line_names_file_line_and_field(tmp_path):
    path = write_jsonl_gz(
        tmp_path / "documents" / "a.jsonl.gz",
        [{"id": "a", "text": "fine", "source": "s"}, {"id": "b", "source": "s"}],
    )
    dest = tmp_path / "tokens"
    result = tokens_cli("--documents", str(path), "--destination", str(dest))
    assert result.returncode == 1
    assert f"{path}:2" in result.stderr and "text" in result.stderr
    assert not list(dest.glob("part-*")), "a failed group publishes nothing"
    skipped = tokens_cli("--documents", str(path), "--destination", str(dest), "--skip_bad_lines")
    assert skipped.returncode == 0, skipped.stderr


def test_custom_fields_bos_and_segmentation(tmp_path):
    docs = [{"doc_id": 7, "body": "first line\nsecond line\n\nthird"}, {"doc_id": 8, "body": "x"}]
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", docs)
    dest = tmp_path / "tokens"
    result = tokens_cli(
        "--documents", str(tmp_path / "documents" / "*.gz"), "--destination", str(dest),
        "--fields.text_field_name", "body", "--fields.id_field_name", "doc_id",
        "--tokenizer.bos_token_id", "0", "--tokenizer.eos_token_id", str(EOS),
        "--tokenizer.segment_before_tokenization", "--verify", "--verify_samples", "-1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    ((_, arr, rows),) = read_shards(dest)
    assert sorted(r[2] for r in rows) == ["7", "8"]
    tok = load_tokenizer(None)
    for start, end, doc_id, _src, _loc in rows:
        ids = arr[int(start) : int(end)].tolist()
        assert ids[0] == 0 and ids[-1] == EOS
        text = {"7": docs[0]["body"], "8": "x"}[doc_id]
        assert ids[1:-1] == [i for line in text.splitlines(keepends=True) for i in tok.encode_batch([line])[0]]


def test_tiktoken_encoding_from_a_local_file(tmp_path):
    ranks = {bytes([i]): i for i in range(256)}
    for merge in [b"th", b"he", b"the", b" t", b" the", b"in", b"er"]:
        ranks[merge] = len(ranks)
    ranks_file = tmp_path / "tiny.tiktoken"
    ranks_file.write_text("".join(f"{base64.b64encode(k).decode()} {v}\n" for k, v in ranks.items()))
    docs = [{"id": "a", "text": "the other thing é", "source": "s"}]
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", docs)
    dest = tmp_path / "tokens"
    result = tokens_cli(
        "--documents", str(tmp_path / "documents" / "*.gz"), "--destination", str(dest),
        "--tokenizer.name_or_path", f"tiktoken:r50k_base={ranks_file}", "--tokenizer.eos_token_id", "50256",
        "--verify", "--verify_samples", "-1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    ((_, arr, _rows),) = read_shards(dest)
    # "the" is merge 258; " the" is not in the text; "th" in "thing" is 256 then "in" (261).
    assert arr.tolist() == [258, 32, 111, 258, 114, 32, 256, 261, 103, 32, 195, 169, 50256]


def test_tiktoken_name_without_cache_fails_offline(tmp_path):
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", [{"id": "a", "text": "x", "source": "s"}])
    result = tokens_cli(
        "--documents", str(tmp_path / "documents" / "*.gz"), "--destination", str(tmp_path / "t"),
        "--tokenizer.name_or_path", "tiktoken:cl100k_base", "--tokenizer.eos_token_id", "100257",
        env={"TIKTOKEN_CACHE_DIR": str(tmp_path / "empty-cache")},
    )  # fmt: skip
    assert result.returncode == 2
    assert "not available offline" in result.stderr


def _hf_cache_with_tokenizer(hub: Path, repo_id: str) -> None:
    """A Hugging Face hub cache (its on-disk layout) holding a tiny word-level tokenizer under `repo_id`."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2, "</s>": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    tok.save(str(repo / "snapshots" / commit / "tokenizer.json"))


@pytest.mark.parametrize("variable", ["HF_HOME", "HF_HUB_CACHE"])
def test_hugging_face_hub_name_resolves_through_the_cache_offline(tmp_path, variable):
    base = tmp_path / "hf"
    hub = base / "hub" if variable == "HF_HOME" else base  # HF_HOME holds hub/; HF_HUB_CACHE is the hub cache
    _hf_cache_with_tokenizer(hub, "my-org/tiny-tok")
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", [{"id": "a", "text": "hello world nope", "source": "s"}])
    args = ["--documents", str(tmp_path / "documents" / "*.gz"), "--tokenizer.eos_token_id", "3"]
    env = {variable: str(base), "HF_HUB_OFFLINE": "1"}
    result = tokens_cli(
        *args, "--destination", str(tmp_path / "t"), "--tokenizer.name_or_path", "my-org/tiny-tok", env=env
    )
    assert result.returncode == 0, result.stderr
    ((_, arr, _rows),) = read_shards(tmp_path / "t")
    assert arr.tolist() == [1, 2, 0, 3]

    result = tokens_cli(
        *args, "--destination", str(tmp_path / "u"), "--tokenizer.name_or_path", "my-org/absent", env=env
    )
    assert result.returncode == 2
    assert str(hub / "models--my-org--absent" / "snapshots") in result.stderr and "tokenizer.json" in result.stderr
    assert "HF_HUB_OFFLINE" in result.stderr and not (tmp_path / "u").exists()


def test_hub_names_never_leave_the_cache(tmp_path, monkeypatch):
    """A config's name is hostile: path syntax is not a Hub name, and refs/main must be a commit hash."""
    from dolma.errors import ConfigError
    from dolma.tokenizer_files import is_hub_name
    from mixers.tokenizer import resolve_path

    assert is_hub_name("EleutherAI/gpt-neox-20b") and is_hub_name("gpt2")
    for name in ["../etc", "a/../../b", "/abs/path", "a/b/c", "a--b/c", "", "a b"]:
        assert not is_hub_name(name), name
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _hf_cache_with_tokenizer(tmp_path, "org/tok")
    (tmp_path / "models--org--tok" / "refs" / "main").write_text("../../../outside")
    with pytest.raises(ConfigError, match="not in the Hugging Face cache"):
        resolve_path("org/tok")
    with pytest.raises(ConfigError, match="nor a Hugging Face Hub name"):
        resolve_path("../org/tok")


@pytest.mark.s3
def test_s3_destination(tmp_path, s3_server, s3_bucket):
    docs_dir = write_corpus(tmp_path, corpus_docs(n_files=2, per_file=20))
    dest = f"s3://{s3_bucket}/tokens"
    result = tokens_cli(
        "--documents", str(docs_dir / "*.gz"), "--destination", dest, "--max_size", "1500",
        "--verify", "--verify_samples", "-1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    keys = s3_server.keys(s3_bucket, "tokens/")
    assert "tokens/part-0-00000.npy" in keys and "tokens/part-0-00000.csv.gz" in keys
    assert "tokens/.part-0.done" in keys
    local = tmp_path / "local"
    same = tokens_cli("--documents", str(docs_dir / "*.gz"), "--destination", str(local), "--max_size", "1500")
    assert same.returncode == 0, same.stderr
    client = s3_server.client()
    for name, data in _tree_bytes(local).items():
        assert client.get_object(Bucket=s3_bucket, Key=f"tokens/{name}")["Body"].read() == data


@pytest.mark.parametrize("encode_special_tokens", [False, True])
def test_fast_byte_level_path_gives_the_same_ids_as_hf_tokenizers(encode_special_tokens):
    fast = load_tokenizer(None, encode_special_tokens, fast=True)
    slow = load_tokenizer(None, encode_special_tokens, fast=False)
    assert fast.uses_fast_path and not slow.uses_fast_path
    texts = [d["text"] for docs in corpus_docs(n_files=3, per_file=60, seed=9) for d in docs] + TEXTS
    texts += ["a  b   c    d" + " " * 30 + "e", "|||IP_ADDRESS||| x <|padding|>", "it's we'll I'd"]
    texts += ["\t\t\tcode\n    x"]
    texts += [Path(__file__).read_text(encoding="utf-8")]
    assert fast.encode_batch(texts) == slow.encode_batch(texts)


def test_fast_path_refused_for_other_tokenizers(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "wl.json"))
    assert not load_tokenizer(str(tmp_path / "wl.json")).uses_fast_path


@pytest.mark.parametrize(
    ("config", "output"), [("tokens.yaml", "tokens"), ("tokens-global-shuffle.yaml", "tokens-shuffled")]
)
def test_example_config_runs_and_verifies(tmp_path, config, output):
    from tests.conftest import REPO

    docs_root = tmp_path / "demo-output" / "sample"
    write_corpus(docs_root, corpus_docs(n_files=3, per_file=20))
    result = run_cli("-c", str(REPO / "configs" / config), "tokens", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "verify OK" in result.stdout
    assert list((docs_root / output).glob("part-0-00000.npy"))


# ----------------------------------------------------------------------------------------------------------
# Global shuffle (global_shuffle.enabled): documents permuted across all groups into part-0-* shards
# ----------------------------------------------------------------------------------------------------------

SHUFFLE_BASE = ["--files_per_process", "2", "--ring_size", "2", "--shuffle_window", "8", "--max_size", "2500"]


def _documents(dest: Path) -> list[tuple[str, str, int, tuple[int, ...]]]:
    """(id, src, loc, token ids) of every document, in shard and row order."""
    out = []
    for _npy, arr, rows in read_shards(dest):
        for start, end, doc_id, src, loc in rows:
            out.append((doc_id, src, int(loc), tuple(arr[int(start) : int(end)].tolist())))
    return out


def _shuffled(tmp_path: Path, docs_dir: Path, name: str, *extra: str, dest: str | None = None):
    args = ["--documents", str(docs_dir / "*.gz"), *SHUFFLE_BASE, "--global_shuffle.enabled"]
    return tokens_cli(*args, "--destination", dest or str(tmp_path / name), *extra)


def test_global_shuffle_is_seeded_and_keeps_every_document(tmp_path):
    docs_dir = write_corpus(tmp_path, corpus_docs(n_files=6, per_file=30))
    plain = tokens_cli("--documents", str(docs_dir / "*.gz"), *SHUFFLE_BASE, "--destination", str(tmp_path / "p"))
    a = _shuffled(tmp_path, docs_dir, "a", "--global_shuffle.seed", "1", "--global_shuffle.window", "20")
    b = _shuffled(
        tmp_path, docs_dir, "b", "--global_shuffle.seed", "1", "--global_shuffle.window", "20", "--processes", "2"
    )
    c = _shuffled(tmp_path, docs_dir, "c", "--global_shuffle.seed", "2", "--global_shuffle.window", "20")
    for r in (plain, a, b, c):
        assert r.returncode == 0, r.stderr
    one, two, other = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b"), _tree_bytes(tmp_path / "c")
    assert one == two, "same seed, any process count: byte-identical shards"
    assert one != other
    assert len([n for n in one if n.endswith(".npy")]) > 1 and all(n.startswith("part-0-") for n in one)
    docs_a, docs_c, docs_p = _documents(tmp_path / "a"), _documents(tmp_path / "c"), _documents(tmp_path / "p")
    assert [d[0] for d in docs_a] != [d[0] for d in docs_c], "another seed gives another order"
    assert sorted(docs_a) == sorted(docs_c) == sorted(docs_p), "the same documents, with the same token ids"
    assert (tmp_path / "a" / ".shuffle.done").exists()
    assert not (tmp_path / "a" / ".unshuffled").exists() and not (tmp_path / "a" / ".shuffle-work").exists()
    for _npy, arr, rows in read_shards(tmp_path / "a"):
        assert int(rows[0][0]) == 0 and int(rows[-1][1]) == len(arr)
        assert all(int(r[0]) == int(p[1]) for p, r in itertools.pairwise(rows))
        assert len(arr) <= 2500 or len(rows) == 1
    mtime = (tmp_path / "a" / "part-0-00000.npy").stat().st_mtime_ns
    verify = _shuffled(tmp_path, docs_dir, "a", "--global_shuffle.seed", "1", "--verify", "--verify_samples", "-1")
    assert verify.returncode == 0, verify.stderr + verify.stdout
    assert "verify OK" in verify.stdout
    assert (tmp_path / "a" / "part-0-00000.npy").stat().st_mtime_ns == mtime, "a finished shuffle is skipped"
    assert _tree_bytes(tmp_path / "a") == one


def test_global_shuffle_mixes_documents_across_groups(tmp_path):
    docs_dir = write_corpus(tmp_path, corpus_docs(n_files=6, per_file=30))
    plain = tokens_cli("--documents", str(docs_dir / "*.gz"), *SHUFFLE_BASE, "--destination", str(tmp_path / "p"))
    shuffled = _shuffled(tmp_path, docs_dir, "s", "--global_shuffle.window", "1000")
    assert plain.returncode == 0 and shuffled.returncode == 0, plain.stderr + shuffled.stderr

    def groups(dest: Path) -> list[int]:  # files part-00..05 in groups of two
        return [int(Path(src).name.split("-")[1].split(".")[0]) // 2 for _, src, _, _ in _documents(dest)]

    before, after = groups(tmp_path / "p"), groups(tmp_path / "s")
    changes = lambda seq: sum(x != y for x, y in itertools.pairwise(seq))  # noqa: E731
    assert changes(before) == 2, "without the global shuffle, shards hold one group after another"
    assert changes(after) > len(after) / 3, "a random order changes group about 2/3 of the time"
    first_third = after[: len(after) // 3]
    assert set(first_third) == {0, 1, 2}, "the start of the output already mixes every group"
    positions = {d[0]: i for i, d in enumerate(_documents(tmp_path / "p"))}
    new = [positions[d[0]] for d in _documents(tmp_path / "s")]
    assert abs(np.corrcoef(np.arange(len(new)), new)[0, 1]) < 0.5, "output order unrelated to input order"


def test_global_shuffle_holds_at_most_window_documents(tmp_path):
    from mixers.tokens_shuffle import global_shuffle, shuffle_fanout

    docs_dir = write_corpus(tmp_path, corpus_docs(n_files=4, per_file=30))
    plain = tokens_cli("--documents", str(docs_dir / "*.gz"), *SHUFFLE_BASE, "--destination", str(tmp_path / "p"))
    assert plain.returncode == 0, plain.stderr
    n = len(_documents(tmp_path / "p"))
    assert shuffle_fanout(n, 7, max_fanout=2) == 2
    stats = global_shuffle(
        str(tmp_path / "p"), str(tmp_path / "s"), np.dtype("<u2"), 2500, seed=5, window=7,
        scratch=str(tmp_path / "scratch"), max_fanout=2,
    )  # fmt: skip
    assert stats.documents == n and stats.largest_bucket <= 7
    assert stats.splits > 0, "buckets over the window were split again (recursively)"
    assert stats.buckets >= n / 7
    assert sorted(_documents(tmp_path / "s")) == sorted(_documents(tmp_path / "p"))
    assert not (tmp_path / "scratch").exists(), "scratch files are removed"


def test_global_shuffle_rerun_after_a_killed_run(tmp_path):
    import shutil

    docs_dir = write_corpus(tmp_path, corpus_docs(n_files=4, per_file=30))
    clean = _shuffled(tmp_path, docs_dir, "clean")
    plain = tokens_cli("--documents", str(docs_dir / "*.gz"), *SHUFFLE_BASE, "--destination", str(tmp_path / "p"))
    assert clean.returncode == 0 and plain.returncode == 0, clean.stderr + plain.stderr
    # The state a run killed during the shuffle leaves: staged groups (with their markers), some published
    # output shards listed in the shuffle's journal, scratch buckets in the scratch directory it claimed (with
    # its owner marker), no .shuffle.done.
    dest = tmp_path / "killed"
    # (a killed run writes no run summary: the finished run's is not copied)
    shutil.copytree(tmp_path / "p", dest / ".unshuffled", ignore=lambda _d, names: list(filter(is_run_summary, names)))
    (dest / "part-0-00000.npy").write_bytes(b"published by the killed run")
    (dest / "part-0-00042.csv.gz").write_bytes(b"from a longer, earlier run")
    (dest / ".shuffle.journal").write_text(json.dumps({"outputs": ["part-0-00000.npy", "part-0-00042.csv.gz"]}))
    (dest / ".shuffle-work").mkdir()
    (dest / ".shuffle-work" / ".dolma-owned").write_text("{}")
    (dest / ".shuffle-work" / "b-000.tok").write_bytes(b"stale bucket")
    rerun = _shuffled(tmp_path, docs_dir, "killed")
    assert rerun.returncode == 0, rerun.stderr
    assert _tree_bytes(dest) == _tree_bytes(tmp_path / "clean")
    assert [p.name for p in outputs_in(dest) if p.name.startswith(".")] == [".shuffle.done"]
    unshuffled = tokens_cli("--documents", str(docs_dir / "*.gz"), "--destination", str(dest))
    assert unshuffled.returncode == 2 and "globally shuffled" in unshuffled.stderr


@pytest.mark.s3
def test_global_shuffle_to_s3(tmp_path, s3_server, s3_bucket):
    docs_dir = write_corpus(tmp_path, corpus_docs(n_files=4, per_file=20))
    dest = f"s3://{s3_bucket}/shuffled"
    work = tmp_path / "scratch"
    result = _shuffled(
        tmp_path, docs_dir, "", "--global_shuffle.work_dir", str(work), "--verify", "--verify_samples", "-1",
        dest=dest,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "verify OK" in result.stdout
    keys = s3_server.keys(s3_bucket, "shuffled/")
    assert "shuffled/.shuffle.done" in keys and "shuffled/part-0-00000.npy" in keys
    assert not [k for k in keys if "/.unshuffled/" in k], "the staged group shards are removed"
    assert work.is_dir() and not list(work.iterdir()), "the scratch subdirectory is removed, work_dir kept"
    local = _shuffled(tmp_path, docs_dir, "local")
    assert local.returncode == 0, local.stderr
    client = s3_server.client()
    expected = _tree_bytes(tmp_path / "local")
    assert sorted(k.split("/", 1)[1] for k in keys if "/part-" in k) == sorted(expected)
    for name, data in expected.items():
        assert client.get_object(Bucket=s3_bucket, Key=f"shuffled/{name}")["Body"].read() == data
