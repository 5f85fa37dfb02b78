"""`dolma dedupe` with `dedupe.minhash`: the config section, planted near-duplicates through the command, the
attribute files (marks, cluster ids), determinism across processes, kill -9 and rerun, bad lines, path safety,
the text key, and the mixer recipe that drops near-duplicates."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dolma import minhash as mh
from dolma.spark_minhash import spark_minhash
from tests.conftest import SAMPLE, read_jsonl, run_cli, write_jsonl_gz
from tests.helpers.textgen import synthetic_docs

THRESHOLD = 0.7


def counter(stderr: str, name: str) -> int:
    """A row of the summary table."""
    found = re.search(re.escape(name) + r"\s*│\s*([\d,]+)", stderr)
    assert found, (name, stderr[-2000:])
    return int(found.group(1).replace(",", ""))


def sample_docs() -> list[dict]:
    return [row for path in sorted((SAMPLE / "documents").rglob("*.jsonl.gz")) for row in read_jsonl(path)]


def jaccard(a: str, b: str) -> float:
    x, y = set(mh.shingles(a)), set(mh.shingles(b))
    return len(x & y) / len(x | y) if x | y else 0.0


def edited(text: str, rate: float, rng: random.Random, tag: str) -> str:
    """`text` with a fraction `rate` of its words replaced by tokens found nowhere else."""
    words = text.split(" ")
    for n, pos in enumerate(rng.sample(range(len(words)), round(len(words) * rate))):
        words[pos] = f"zqx{tag}q{n}"
    return " ".join(words)


def planted_corpus(root: Path, files: int = 4) -> list[tuple[str, str, float]]:
    """Sample documents (outside the corpus's own planted groups), synthetic ones (tests/helpers/textgen.py), and one
    edited copy of 200 of them at known word-edit rates (0 to 8%: true shingle Jaccard from about 0.5 to 1), spread
    over `files` files in a shuffled order. Returns (original id, copy id, true Jaccard)."""
    truth = json.loads((SAMPLE / "ground_truth.json").read_text(encoding="utf-8"))
    grouped = {
        i for key in ("exact_duplicates", "near_duplicates", "templated_groups") for g in truth[key] for i in g["ids"]
    }
    grouped |= {i for g in truth["partial_duplicates"] for i in g["ids"]}
    rng = random.Random(15)
    pool = [d for d in sample_docs() if d["id"] not in grouped and 150 <= len(d["text"].split()) <= 3000]
    originals = rng.sample(pool, 200)
    docs = [*originals, *synthetic_docs(300, seed=15)]
    pairs = []
    for k, doc in enumerate(originals):
        rate = 0.08 * k / (len(originals) - 1)
        copy = {"id": f"copy-of-{doc['id']}", "text": edited(doc["text"], rate, rng, str(k)), "source": "copies"}
        docs.append(copy)
        pairs.append((doc["id"], copy["id"], jaccard(doc["text"], copy["text"])))
    rng.shuffle(docs)
    for f in range(files):
        write_jsonl_gz(root / "documents" / f"part-{f}.jsonl.gz", docs[f::files])
    return pairs


def minhash_args(root: Path, *extra: str, name: str = "nd") -> list[str]:
    return [
        "dedupe",
        "--documents", str(root / "documents" / "*.jsonl.gz"),
        "--dedupe.name", name,
        "--dedupe.minhash.attribute_name", "nd_dup",
        "--dedupe.minhash.threshold", str(THRESHOLD),
        "--dedupe.minhash.weights", "[0.2, 0.8]",
        *extra,
    ]  # fmt: skip


def dedupe(root: Path, *extra: str, check: bool = True, name: str = "nd"):
    result = run_cli(*minhash_args(root, *extra, name=name))
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def attribute_bytes(root: Path, name: str = "nd") -> dict[str, bytes]:
    base = root / "attributes" / name
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*.jsonl.gz"))}


def rows_by_id(root: Path, name: str = "nd") -> dict[str, dict]:
    """Document id -> its attributes (with the document's text length), from every attributes file."""
    out = {}
    for path in sorted((root / "documents").glob("*.jsonl.gz")):
        docs = read_jsonl(path)
        rows = read_jsonl(root / "attributes" / name / path.name)
        assert [d["id"] for d in docs] == [r["id"] for r in rows]
        for doc, row in zip(docs, rows):
            out[doc["id"]] = {"len": len(doc["text"]), "text": doc["text"], **row["attributes"]}
    return out


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, list[tuple[str, str, float]]]:
    root = tmp_path_factory.mktemp("planted")
    return root, planted_corpus(root)


# ----------------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------------


def test_help_lists_every_minhash_field() -> None:
    text = run_cli("dedupe", "--help").stdout
    for field in [
        "attribute_name", "cluster_attribute_name", "tokenizer", "ngram", "num_perm", "seed", "threshold", "weights",
        "bands", "rows", "hash", "verify", "key", "memory_budget", "work_dir",
    ]:  # fmt: skip
        assert f"--dedupe.minhash.{field}" in text, field


def test_minimal_config_needs_no_bloom_filter(tmp_path: Path) -> None:
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", [{"id": "a", "text": "one two three four five six"}])
    write_jsonl_gz(tmp_path / "documents" / "b.jsonl.gz", [{"id": "b", "text": "one two three four five six"}])
    cfg = tmp_path / "nd.yaml"
    cfg.write_text(
        f"documents: [{tmp_path}/documents/*.jsonl.gz]\n"
        "dedupe: {name: nd, minhash: {attribute_name: nd_dup, threshold: 0.7}}\n"
    )
    result = run_cli("-c", str(cfg), "dedupe")
    assert result.returncode == 0, result.stderr
    assert read_jsonl(tmp_path / "attributes" / "nd" / "a.jsonl.gz") == [
        {"id": "a", "attributes": {"nd_dup__cluster": [[0, 27, 0]]}}
    ]
    assert read_jsonl(tmp_path / "attributes" / "nd" / "b.jsonl.gz") == [
        {"id": "b", "attributes": {"nd_dup": [[0, 27, 1.0]], "nd_dup__cluster": [[0, 27, 0]]}}
    ]
    assert (tmp_path / "minhash" / "nd" / "keys").is_dir()  # default work_dir: <documents root>/minhash/<name>
    assert counter(result.stderr, "clusters (2+ documents)") == 1
    assert counter(result.stderr, "documents marked") == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bloom_filter.file", "f.bin"], "uses no Bloom filter"),
        (["--dedupe.minhash.threshold", "1.5"], "threshold"),
        (["--dedupe.minhash.bands", "20", "--dedupe.minhash.rows", "20"], "bands x rows"),
        (["--dedupe.minhash.key", "metadata.body"], "dedupe.minhash.key"),
        (["--dedupe.minhash.tokenizer", "lines"], "tokenizer"),
        (["--dedupe.minhash.attribute_name", "../x"], "attribute_name"),
        (["--dedupe.min_words", "3"], "do not apply to dedupe.minhash"),
        (["--dedupe.minhash.memory_budget", "1000"], "memory_budget"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", [{"id": "a", "text": "x"}])
    result = dedupe(tmp_path, *extra, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "attributes").exists()


def test_dryrun_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", [{"id": "a", "text": "x"}])
    result = dedupe(tmp_path, "--dryrun")
    assert (
        "attributes/nd/a.jsonl.gz" in result.stdout
        and "9 bands x 13 rows"
        in dedupe(
            tmp_path, "--dryrun", "--dedupe.minhash.weights", "[0.5, 0.5]", "--dedupe.minhash.threshold", "0.8"
        ).stdout
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents"]


def test_other_modes_still_need_a_bloom_filter(tmp_path: Path) -> None:
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", [{"id": "a", "text": "x"}])
    result = run_cli(
        "dedupe", "--documents", str(tmp_path / "documents" / "*.gz"), "--dedupe.name", "d",
        "--dedupe.paragraphs.attribute_name", "p",
    )  # fmt: skip
    assert result.returncode != 0 and "need a bloom_filter section" in result.stderr


def test_work_dir_inside_the_documents_tree_is_refused(tmp_path: Path) -> None:
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", [{"id": "a", "text": "x"}])
    result = dedupe(tmp_path, "--dedupe.minhash.work_dir", str(tmp_path / "documents" / "work"), check=False)
    assert result.returncode != 0 and "documents tree" in result.stderr
    assert sorted(p.name for p in (tmp_path / "documents").iterdir()) == ["a.jsonl.gz"]


# ----------------------------------------------------------------------------------------------------------
# Planted near-duplicates
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("verify", ["exact", "signature"])
def test_planted_near_duplicates_are_marked(planted, tmp_path: Path, verify: str) -> None:
    src, pairs = planted
    root = tmp_path / "run"
    (root / "documents").mkdir(parents=True)
    for path in (src / "documents").glob("*.jsonl.gz"):
        (root / "documents" / path.name).write_bytes(path.read_bytes())
    js = [j for _, _, j in pairs]
    assert sum(j >= THRESHOLD + 0.1 for j in js) >= 50 and sum(j < THRESHOLD for j in js) >= 30
    dedupe(root, "--dedupe.minhash.verify", verify, "--processes", "2")
    rows = rows_by_id(root)
    cluster = {doc: attrs["nd_dup__cluster"][0][2] for doc, attrs in rows.items() if "nd_dup__cluster" in attrs}
    same = [(j, a in cluster and cluster.get(a) == cluster.get(b)) for a, b, j in pairs]
    high = [hit for j, hit in same if j >= THRESHOLD + 0.1]
    assert sum(high) / len(high) >= 0.95
    members: dict[int, list[str]] = {}
    for doc, c in cluster.items():
        members.setdefault(c, []).append(doc)
    for doc, attrs in rows.items():
        span = [[0, attrs["len"]]]
        if "nd_dup" in attrs:
            assert [s[:2] for s in attrs["nd_dup"]] == span and 0 < attrs["nd_dup"][0][2] <= 1
            assert doc in cluster
        if doc in cluster:
            assert [s[:2] for s in attrs["nd_dup__cluster"]] == span
    # Exactly one keeper (unmarked member) per cluster, and its id is the cluster id's document.
    for c, docs in members.items():
        assert len(docs) >= 2 and sum("nd_dup" not in rows[d] for d in docs) == 1, c
    if verify == "exact":
        # Every marked document is joined by an edge at or above the threshold: no pair below it links two
        # documents (originals and copies are unrelated to each other, so a wrong edge would show here).
        for doc, attrs in rows.items():
            if "nd_dup" in attrs:
                best = max(jaccard(attrs["text"], rows[o]["text"]) for o in members[cluster[doc]] if o != doc)
                assert best >= THRESHOLD, (doc, best)


def test_one_and_two_processes_and_budgets_give_identical_bytes(planted, tmp_path: Path) -> None:
    src, _ = planted
    outputs = []
    for k, extra in enumerate(
        [["--processes", "1"], ["--processes", "2", "--dedupe.minhash.memory_budget", str(1 << 20)]]
    ):
        root = tmp_path / str(k)
        (root / "documents").mkdir(parents=True)
        for path in (src / "documents").glob("*.jsonl.gz"):
            (root / "documents" / path.name).write_bytes(path.read_bytes())
        dedupe(root, "--dedupe.minhash.verify", "signature", *extra)
        outputs.append(attribute_bytes(root))
    assert len(outputs[0]) == 4 and outputs[0] == outputs[1]
    assert sum(b'nd_dup":' in gzip.decompress(data) for data in outputs[0].values()) == 4


def test_rerun_is_a_no_op_and_a_changed_setting_redoes_the_attributes(planted, tmp_path: Path) -> None:
    src, _ = planted
    root = tmp_path / "run"
    (root / "documents").mkdir(parents=True)
    for path in (src / "documents").glob("*.jsonl.gz"):
        (root / "documents" / path.name).write_bytes(path.read_bytes())
    dedupe(root)
    files = sorted((root / "attributes" / "nd").glob("*.gz"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    dedupe(root)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    keys = sorted((root / "minhash" / "nd" / "keys").glob("*.mhk"))
    # verify and the threshold with explicit bands x rows do not change the band keys: the band-key files are
    # kept, the clustering and the attributes are redone (the attributes hold fewer marks).
    bands = ["--dedupe.minhash.bands", "18", "--dedupe.minhash.rows", "7"]
    dedupe(root, *bands)
    stamps = [p.stat().st_mtime_ns for p in keys]
    marks = sum(gzip.decompress(p.read_bytes()).count(b'"nd_dup"') for p in files)
    dedupe(root, *bands, "--dedupe.minhash.threshold", "0.95", "--dedupe.minhash.verify", "signature")
    assert [p.stat().st_mtime_ns for p in keys] == stamps
    fewer = sum(gzip.decompress(p.read_bytes()).count(b'"nd_dup"') for p in files)
    assert fewer < marks
    # verify: exact needs shingle sets in the band-key files: they are redone.
    dedupe(root, *bands, "--dedupe.minhash.threshold", "0.95", "--dedupe.minhash.verify", "exact")
    assert all(new != old for new, old in zip([p.stat().st_mtime_ns for p in keys], stamps))
    assert 0 < sum(gzip.decompress(p.read_bytes()).count(b'"nd_dup"') for p in files) <= fewer


@pytest.mark.parametrize("kill_in", ["sign", "mark"])
def test_sigkill_then_rerun_gives_identical_bytes(tmp_path: Path, kill_in: str) -> None:
    """A real crash (SIGKILL while band-key files, or attribute files, are being written), then the same command
    again: the output is byte-identical to an uninterrupted run."""
    parts = 30
    docs = [*sample_docs(), *synthetic_docs(2000, seed=3)]
    random.Random(4).shuffle(docs)
    for name in ("clean", "killed"):
        for f in range(parts):
            write_jsonl_gz(tmp_path / name / "documents" / f"part-{f:02d}.jsonl.gz", docs[f::parts])
    dedupe(tmp_path / "clean", "--dedupe.minhash.verify", "exact")
    expected = attribute_bytes(tmp_path / "clean")
    assert len(expected) == parts

    root = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    args = [sys.executable, "-m", "dolma", *minhash_args(root, "--dedupe.minhash.verify", "exact", "--quiet")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    keys = root / "minhash" / "nd" / "keys"
    attrs = root / "attributes" / "nd"

    def time_to_kill() -> bool:
        if kill_in == "sign":
            return 0 < len(list(keys.glob("*.mhk"))) < parts
        return 0 < len(list(attrs.glob("*.jsonl.gz"))) < parts

    try:
        while proc.poll() is None:
            if time_to_kill():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed half-way"
    dedupe(root, "--dedupe.minhash.verify", "exact", "--processes", "2")
    assert attribute_bytes(root) == expected
    assert not [p for p in root.rglob("*") if p.name.startswith(".") and p.is_file() and "tmp" in p.name]


# ----------------------------------------------------------------------------------------------------------
# Input: bad lines, text key
# ----------------------------------------------------------------------------------------------------------


def test_bad_lines_fail_naming_file_and_line_or_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "documents" / "a.jsonl.gz"
    path.parent.mkdir(parents=True)
    good = {"id": "a", "text": "alpha beta gamma delta epsilon zeta"}
    lines = [json.dumps(good), '{"id": "b", "text": 5}', json.dumps({**good, "id": "c"})]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    result = dedupe(tmp_path, check=False)
    assert result.returncode != 0
    assert "a.jsonl.gz:2: field 'text'" in result.stderr
    assert not (tmp_path / "attributes").exists()
    result = dedupe(tmp_path, "--skip_bad_lines")
    assert counter(result.stderr, "bad lines skipped") == 1
    rows = read_jsonl(tmp_path / "attributes" / "nd" / "a.jsonl.gz")
    assert [r["id"] for r in rows] == ["a", "c"] and "nd_dup" in rows[1]["attributes"]


def test_text_key_selects_another_field(tmp_path: Path) -> None:
    body = "the same long body text of this page appears twice here"
    docs = [
        {"id": "a", "text": "first header", "metadata": {"body": body}},
        {"id": "b", "text": "second, other header", "metadata": {"body": body}},
        {"id": "c", "text": "first header"},  # no body: never a duplicate
    ]
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", docs)
    dedupe(tmp_path, "--dedupe.minhash.key", "$.metadata['body']")
    rows = read_jsonl(tmp_path / "attributes" / "nd" / "a.jsonl.gz")
    assert [sorted(r["attributes"]) for r in rows] == [["nd_dup__cluster"], ["nd_dup", "nd_dup__cluster"], []]
    assert rows[1]["attributes"]["nd_dup"] == [[0, len(docs[1]["text"]), 1.0]]


# ----------------------------------------------------------------------------------------------------------
# The mix recipe
# ----------------------------------------------------------------------------------------------------------


def test_mixer_drops_near_duplicates_with_a_plain_rule(planted, tmp_path: Path) -> None:
    src, _ = planted
    root = tmp_path / "run"
    (root / "documents").mkdir(parents=True)
    for path in (src / "documents").glob("*.jsonl.gz"):
        (root / "documents" / path.name).write_bytes(path.read_bytes())
    dedupe(root, "--dedupe.minhash.verify", "signature")
    rows = rows_by_id(root)
    marked = {doc for doc, attrs in rows.items() if "nd_dup" in attrs}
    assert len(marked) > 50
    cfg = {
        "streams": [
            {
                "name": "deduped",
                "documents": [str(root / "documents" / "*.jsonl.gz")],
                "attributes": ["nd"],
                "filter": {"exclude": ["$.attributes[?(@.nd_dup)]"], "syntax": "jsonpath"},
                "output": {"path": str(root / "mixed"), "max_size_in_bytes": 100_000_000},
            }
        ]
    }
    (root / "mix.json").write_text(json.dumps(cfg))
    result = run_cli("-c", str(root / "mix.json"), "mix")
    assert result.returncode == 0, result.stderr[-3000:]
    kept = {row["id"] for path in (root / "mixed").glob("*.gz") for row in read_jsonl(path)}
    assert kept == set(rows) - marked


# ----------------------------------------------------------------------------------------------------------
# Decontamination: query-only against an evaluation set
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("verify", ["exact", "signature"])
def test_decontamination_marks_training_documents_near_evaluation_documents(tmp_path: Path, verify: str) -> None:
    rng = random.Random(16)
    pool = [d for d in sample_docs() if 150 <= len(d["text"].split()) <= 3000]
    rng.shuffle(pool)
    evals, others = pool[:150], pool[150:450]
    training, near = list(others), []
    for k, doc in enumerate(evals[:120]):  # edited copies of evaluation documents land in the training data
        copy = {"id": f"leak-{k}", "text": edited(doc["text"], 0.08 * k / 119, rng, f"e{k}"), "source": "leak"}
        training.append(copy)
        near.append((copy["id"], jaccard(doc["text"], copy["text"])))
    # Exact repeats among training documents only: query-only, so never marked.
    training += [{**others[0], "id": "repeat-0"}, {**others[1], "id": "repeat-1"}]
    rng.shuffle(training)
    for f in range(3):
        write_jsonl_gz(tmp_path / "documents" / f"train-{f}.jsonl.gz", training[f::3])
    write_jsonl_gz(tmp_path / "evals" / "documents" / "eval.jsonl.gz", evals)
    args = ["--dedupe.minhash.eval_documents", str(tmp_path / "evals" / "documents" / "*.jsonl.gz")]
    result = dedupe(tmp_path, *args, "--dedupe.minhash.verify", verify, "--processes", "2")
    rows = rows_by_id(tmp_path)
    marked = {doc: attrs["nd_dup"][0] for doc, attrs in rows.items() if "nd_dup" in attrs}
    assert set(rows) == {d["id"] for d in training}  # evaluation documents get no attributes
    assert "repeat-0" not in marked and "repeat-1" not in marked and others[0]["id"] not in marked
    high = [doc in marked for doc, j in near if j >= THRESHOLD + 0.1]
    assert len(high) >= 30 and sum(high) / len(high) >= 0.95
    assert not (tmp_path / "evals" / "attributes").exists()
    eval_texts = [d["text"] for d in evals]
    for doc, (start, end, score) in marked.items():
        assert (start, end) == (0, rows[doc]["len"]) and score >= THRESHOLD
        if verify == "exact":
            assert max(jaccard(rows[doc]["text"], t) for t in eval_texts) == pytest.approx(score, abs=1e-5)
    assert counter(result.stderr, "documents marked (near an evaluation document)") == len(marked)
    # A rerun rewrites nothing; one process gives the same bytes.
    before = attribute_bytes(tmp_path)
    dedupe(tmp_path, *args, "--dedupe.minhash.verify", verify, "--processes", "1", "--ignore_existing")
    assert attribute_bytes(tmp_path) == before


def test_s3_documents_and_attributes_with_a_local_work_dir(tmp_path: Path, s3_server, s3_bucket: str) -> None:
    client = s3_server.client()
    text = "a page about the weather in the north of the country this week"
    rows = [{"id": "x1", "text": text}, {"id": "x2", "text": text + " today"}, {"id": "x3", "text": "unrelated"}]
    local = write_jsonl_gz(tmp_path / "x.jsonl.gz", rows)
    client.upload_file(str(local), s3_bucket, "nd/documents/x.jsonl.gz")
    base = [
        "dedupe",
        "--documents", f"s3://{s3_bucket}/nd/documents/*.jsonl.gz",
        "--dedupe.name", "nd",
        "--dedupe.minhash.attribute_name", "nd_dup",
        "--dedupe.minhash.threshold", "0.5",
        "--s3.endpoint_url", s3_server.endpoint,
    ]  # fmt: skip
    result = run_cli(*base)
    assert result.returncode != 0 and "set work_dir to a local directory" in result.stderr
    result = run_cli(*base, "--dedupe.minhash.work_dir", str(tmp_path / "work"))
    assert result.returncode == 0, result.stderr[-3000:]
    client.download_file(s3_bucket, "nd/attributes/nd/x.jsonl.gz", str(tmp_path / "out.jsonl.gz"))
    out = [r["attributes"] for r in read_jsonl(tmp_path / "out.jsonl.gz")]
    assert sorted(out[0]) == ["nd_dup__cluster"] and sorted(out[1]) == ["nd_dup", "nd_dup__cluster"] and out[2] == {}


# ----------------------------------------------------------------------------------------------------------
# Spark: the local run's bytes
# ----------------------------------------------------------------------------------------------------------


def spark_run(sc, root: Path, *extra: str) -> None:
    from dolma import dedupe_minhash
    from dolma.config import build
    from dolma.dedupe.config import DedupeConfig

    config = build(DedupeConfig, None, [*minhash_args(root)[1:], "--executor", "spark", *extra])
    plan_ = dedupe_minhash.plan(config)
    section = config.dedupe.minhash
    summary = spark_minhash(
        sc,
        plan_.inputs,
        plan_.outputs,
        section.params(),
        plan_.key,
        section.attribute_name,
        section.cluster_attribute,
        skip_bad_lines=config.skip_bad_lines,
        s3=config.s3,
    )
    assert summary.ok, summary.failures


def _union_find_roots(edges: list[tuple[int, int]]) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return {node: find(node) for node in parent}


def test_spark_components_are_union_finds(spark_context) -> None:
    """Connected components on Spark (large/small-star rounds until one changes nothing): every node points at its
    component's smallest node, as union-find says, on graphs that need many rounds (a long chain numbered against
    its order, stars, repeated and reversed edges) and on a random sparse graph."""
    from dolma.spark_minhash import components

    rng = random.Random(5)
    order = list(range(30))
    rng.shuffle(order)
    chain = list(itertools.pairwise(order))
    stars = [(1000 + k, 1000 + 10 * (k // 10)) for k in range(1, 30) if k % 10]
    repeated = [(5000, 5001), (5001, 5000), (5000, 5001), (5001, 5002)]
    sparse = [(rng.randrange(3000, 3300), rng.randrange(3000, 3300)) for _ in range(200)]
    # (member, smaller anchor), as buckets make them (never a loop)
    edges = [(max(e), min(e)) for e in chain + stars + repeated + sparse if e[0] != e[1]]
    got = dict(components(spark_context.parallelize(edges, 3)).collect())
    expected = _union_find_roots(edges)
    assert got == expected
    assert len(set(got.values())) > 10 and got[order[-1]] == 0  # the chain is one component rooted at 0


@pytest.mark.parametrize("verify", ["none", "signature", "exact"])
def test_spark_local2_writes_the_local_runs_bytes(planted, tmp_path: Path, spark_context, verify: str) -> None:
    """Spark computes the local run's clusters, with verification too (each bucket's edges depend on its members
    and their sketches only, so buckets verified on executors give the local edges)."""
    src, _ = planted
    roots = []
    for name in ("local", "spark"):
        root = tmp_path / name
        (root / "documents").mkdir(parents=True)
        for path in (src / "documents").glob("*.jsonl.gz"):
            (root / "documents" / path.name).write_bytes(path.read_bytes())
        roots.append(root)
    dedupe(roots[0], "--dedupe.minhash.verify", verify)
    spark_run(spark_context, roots[1], "--dedupe.minhash.verify", verify)
    expected = attribute_bytes(roots[0])
    assert len(expected) == 4 and sum(data.count(b"nd_dup") for data in map(gzip.decompress, expected.values()))
    assert attribute_bytes(roots[1]) == expected


def test_spark_reads_and_writes_s3(tmp_path: Path, spark_context, s3_server, s3_bucket: str) -> None:
    client = s3_server.client()
    docs = sample_docs()
    files = []
    for f in range(3):
        files.append(write_jsonl_gz(tmp_path / "local" / "documents" / f"p{f}.jsonl.gz", docs[f::3]))
        client.upload_file(str(files[-1]), s3_bucket, f"mh/documents/p{f}.jsonl.gz")
    dedupe(tmp_path / "local", "--dedupe.minhash.threshold", "0.6")
    expected = attribute_bytes(tmp_path / "local")
    assert len(expected) == 3 and any(b'"nd_dup":' in gzip.decompress(d) for d in expected.values())

    from dolma import dedupe_minhash
    from dolma.config import build
    from dolma.dedupe.config import DedupeConfig

    args = [*minhash_args(tmp_path / "unused")[1:], "--dedupe.minhash.threshold", "0.6", "--executor", "spark"]
    args[args.index("--documents") + 1] = f"s3://{s3_bucket}/mh/documents/*.jsonl.gz"
    config = build(DedupeConfig, None, [*args, "--s3.endpoint_url", s3_server.endpoint])
    plan_ = dedupe_minhash.plan(config)
    section = config.dedupe.minhash
    summary = spark_minhash(
        spark_context, plan_.inputs, plan_.outputs, section.params(), plan_.key, section.attribute_name,
        section.cluster_attribute, skip_bad_lines=False, s3=config.s3,
    )  # fmt: skip
    assert summary.ok, summary.failures
    for name, data in expected.items():
        out = tmp_path / "got" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(s3_bucket, f"mh/attributes/nd/{name}", str(out))
        assert out.read_bytes() == data, name


def test_a_sign_worker_needs_no_datasketch(tmp_path: Path) -> None:
    """The sign job carries the signer built on the driver: a spawned worker that unpickles it and signs a file
    writes the same band-key file without importing datasketch (and scipy, its band optimiser)."""
    import pickle

    from dolma.dedupe_minhash import SignJob

    docs = write_jsonl_gz(
        tmp_path / "a.jsonl.gz", [{"id": str(i), "text": d["text"]} for i, d in enumerate(synthetic_docs(20, seed=3))]
    )
    params = mh.MinHashParams(threshold=0.7)
    job = tmp_path / "job.pkl"
    job.write_bytes(pickle.dumps(SignJob(params, {str(docs): 0}, ("text",), False, 1)))
    code = (
        "import pickle, sys\n"
        "from dolma.executors.base import Unit\n"
        f"job = pickle.loads(open({str(job)!r}, 'rb').read())\n"
        f"job.run_unit(Unit(input={str(docs)!r}, outputs=({str(tmp_path / 'w.mhk')!r},)), lambda d, b: None)\n"
        "print('datasketch' in sys.modules, 'scipy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    mh.sign_file(str(docs), str(tmp_path / "d.mhk"), 0, params)
    assert (tmp_path / "w.mhk").read_bytes() == (tmp_path / "d.mhk").read_bytes()
