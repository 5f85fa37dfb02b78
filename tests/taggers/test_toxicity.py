"""The offline offensive-language taggers (toxicity_offensive_*): equality with alt-profanity-check, quality on a
labelled sample, spans and keys, the model file's validation, and identical values pickled, in 2 processes and on
Spark; plus `dolma list` saying what each toxicity tagger measures."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dolma import config as dconfig
from dolma import registry
from dolma.commands import tag
from dolma.commands.tag import TagConfig
from dolma.documents import Document
from dolma.errors import TaggerError
from taggers.toxicity import SHIPPED_OFFENSIVE_MODEL, OffensiveModel
from tests.conftest import DATA, LOOPBACK_SPARK_CONF, REPO, SAMPLE, read_jsonl, run_cli

LABELLED = DATA / "toxicity" / "offensive_sample.jsonl"
OFFENSIVE_TAGGERS = ["toxicity_offensive_v1", "toxicity_offensive_paragraph_v1", "toxicity_offensive_sentence_v1"]
# Measured on the labelled sample (docs/toxicity.md): AUC 0.974; at the 0.5 threshold recall 0.938, false
# positive rate 0.073 (all on hard negatives). The bounds leave room for nothing but a real regression.
AUC_BOUND = 0.96
THRESHOLD = 0.5
RECALL_BOUND = 0.92
FPR_BOUND = 0.08

EDGE_TEXTS = [
    "",
    " ",
    "a",
    "fuck you",
    "FUCK YOU",
    "f u c k",
    "kill the process",
    "Scunthorpe",
    "shit shit shit shit shit",
    "You are an idiot.\nThe weather is nice.\n\nSee you tomorrow.",
    "Ünïcödé façade — naïve café, 東京は日本の首都です。 🙂 beyoncé pokémon josé",
    "Это русский текст. Ceci est un texte français.",
    "under_score snake_case __dunder__ 12 345 6789 x1 1x",
    # non-ASCII lower-casing and compatibility characters (dotted I, titlecase digraph, sharp s, ligature, fullwidth)
    "\u0130stanbul \u01c5emal \u00df \ufb01ne \uff26\uff35\uff23\uff2b",
    "tabs\tand\u00a0non-breaking\u2003spaces",
    "\x00 control \x07 chars",
    "long line " * 3000 + " idiot",
    "The whole book of Genesis is not offensive. " * 200,
]


def labelled() -> list[dict]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]


def sample_docs() -> list[dict]:
    docs = []
    for path in sorted((SAMPLE / "documents").glob("*/*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            docs.extend(json.loads(line) for line in fh)
    return docs


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def doc_score(tagger, text: str, span_type: str) -> float:
    return max((s.score for s in tagger.predict(Document(id="x", text=text)) if s.type == span_type), default=0.0)


# --------------------------------------------------------------------------------------------------------------
# Equality with the package the model comes from
# --------------------------------------------------------------------------------------------------------------


def oracle_python() -> Path:
    """alt-profanity-check's venv (`make profanity` creates it; DOLMA_PROFANITY_PYTHON overrides)."""
    path = Path(os.environ.get("DOLMA_PROFANITY_PYTHON") or REPO / ".venv-profanity" / "bin" / "python")
    if not path.exists():
        pytest.fail(f"alt-profanity-check oracle not installed at {path}: run `make profanity` (make test does it)")
    return path


def oracle_scores(texts: list[str]) -> np.ndarray:
    code = "import json, sys; from profanity_check import predict_prob; "
    code += "print(json.dumps(predict_prob(json.load(sys.stdin)).tolist()))"
    result = subprocess.run(
        [str(oracle_python()), "-c", code], input=json.dumps(texts), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return np.array(json.loads(result.stdout))


def test_scores_equal_alt_profanity_check():
    texts = EDGE_TEXTS + [r["text"] for r in labelled()] + [d["text"] for d in sample_docs()[::10]]
    ours = OffensiveModel(SHIPPED_OFFENSIVE_MODEL).scores(texts)
    theirs = oracle_scores(texts)
    worst = int(np.argmax(np.abs(ours - theirs)))
    assert np.abs(ours - theirs).max() <= 1e-6, (texts[worst][:80], ours[worst], theirs[worst])
    assert (theirs > 0.5).sum() > 100 and (theirs < 0.5).sum() > 100  # the table has both classes


def test_converter_reproduces_the_shipped_model(tmp_path):
    """The committed script, run with the package, writes the shipped file byte for byte."""
    out = tmp_path / "offensive.bin"
    script = REPO / "taggers" / "resources" / "convert_profanity_check.py"
    result = subprocess.run([str(oracle_python()), str(script), str(out)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == Path(SHIPPED_OFFENSIVE_MODEL).read_bytes()


def test_batch_scores_equal_one_by_one():
    model = OffensiveModel(SHIPPED_OFFENSIVE_MODEL)
    batch = model.scores(EDGE_TEXTS)
    single = np.array([model.scores([t])[0] for t in EDGE_TEXTS])
    assert np.array_equal(batch, single)
    assert model.scores([]).shape == (0,)


# --------------------------------------------------------------------------------------------------------------
# Quality on the labelled sample
# --------------------------------------------------------------------------------------------------------------


def test_labelled_sample_auc_and_threshold():
    rows = labelled()
    assert len(rows) >= 250 and {r["label"] for r in rows} == {0, 1}
    tagger = registry.create("toxicity_offensive_v1")
    scores = np.array([doc_score(tagger, r["text"], "offensive") for r in rows])
    labels = np.array([r["label"] for r in rows])
    auc = roc_auc(scores, labels)
    assert auc >= AUC_BOUND, auc
    flagged = scores >= THRESHOLD
    recall, fpr = flagged[labels == 1].mean(), flagged[labels == 0].mean()
    assert recall >= RECALL_BOUND and fpr <= FPR_BOUND, (recall, fpr)
    plain = np.array([r["kind"] == "clean" for r in rows])
    assert not flagged[plain].any()  # false positives only among the hard negatives
    # The model separates the classes better than the word list taggers (whose scores are 0 or 1).
    words = registry.create("naughty_words_v1")
    listed = np.array([doc_score(words, r["text"], "has_naughty_word") for r in rows])
    assert roc_auc(listed, labels) < auc - 0.05


def test_sample_corpus_false_positive_share():
    """The sample corpus (documentation and the King James Bible) is not offensive: few documents pass 0.5, all of
    them KJV chapters (whose vocabulary includes "whore", "ass" and "damned") or not English (the model knows
    English words only)."""
    docs = sample_docs()
    scores = OffensiveModel(SHIPPED_OFFENSIVE_MODEL).scores([d["text"] for d in docs])
    flagged = [d for d, s in zip(docs, scores) if s >= THRESHOLD]
    assert 0 < len(flagged) / len(docs) <= 0.04, len(flagged)
    foreign = json.loads((SAMPLE / "ground_truth.json").read_text())["languages"]["non_english"]
    assert all("kingjamesbible" in d["metadata"]["url"] or d["id"] in foreign for d in flagged)


# --------------------------------------------------------------------------------------------------------------
# Spans and keys
# --------------------------------------------------------------------------------------------------------------


def test_spans_per_document_paragraph_and_sentence():
    text = "Thanks for the fix.\nYou are a fucking idiot. Go away!\n\n  \nThe build is green now."
    doc = Document(id="x", text=text)
    [whole] = registry.create("toxicity_offensive_v1").predict(doc)
    assert (whole.start, whole.end, whole.type) == (0, len(text), "offensive") and 0.0 < whole.score < 1.0
    paras = registry.create("toxicity_offensive_paragraph_v1").predict(doc)
    assert [(s.start, s.end, s.type) for s in paras] == [
        (0, 20, "offensive"),
        (20, 54, "offensive"),
        (58, 81, "offensive"),
    ]
    assert paras[1].score > 0.9 and paras[0].score < 0.2 and paras[2].score < 0.2
    sents = registry.create("toxicity_offensive_sentence_v1").predict(doc)
    assert [text[s.start : s.end] for s in sents] == [
        "Thanks for the fix.",
        "You are a fucking idiot.",
        "Go away!",
        "The build is green now.",
    ]
    assert sents[1].score > 0.9 and all(0.0 <= s.score <= 1.0 for s in sents)
    model = OffensiveModel(SHIPPED_OFFENSIVE_MODEL)
    assert [s.score for s in paras] == model.scores([text[s.start : s.end] for s in paras]).tolist()
    empty = Document(id="e", text="")
    assert [(s.start, s.end, s.type) for s in registry.create("toxicity_offensive_v1").predict(empty)] == [
        (0, 0, "offensive")
    ]
    assert registry.create("toxicity_offensive_paragraph_v1").predict(empty) == []


def test_tag_cli_keys_and_rows(tmp_path):
    docs = [
        {"id": "a", "text": "You are a fucking idiot.\nThe weather is nice.", "source": "t"},
        {"id": "b", "text": "", "source": "t"},
        {"id": "c", "text": "Kill the process and restart it.", "source": "t"},
    ]
    path = tmp_path / "documents" / "x" / "d.jsonl.gz"
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)
    args = ["tag", "--documents", "documents/*/*.jsonl.gz", "--taggers", *OFFENSIVE_TAGGERS]
    result = run_cli(*args, "--experiment", "tox", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "attributes" / "tox" / "x" / "d.jsonl.gz")
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert set(rows[0]["attributes"]) == {f"tox__{t}__offensive" for t in OFFENSIVE_TAGGERS}
    assert rows[0]["attributes"]["tox__toxicity_offensive_paragraph_v1__offensive"][0][:2] == [0, 25]
    assert rows[1]["attributes"]["tox__toxicity_offensive_v1__offensive"] == [[0, 0, 0.03638]]
    assert all(len(str(v[2]).split(".")[-1]) <= 5 for r in rows for vs in r["attributes"].values() for v in vs)


CLEAN_PARAGRAPH = (
    "The release notes for this version describe the new storage engine, the faster query planner, the improved "
    "documentation for the configuration files, and the many small fixes contributed by the community over the "
    "last six months of development and testing on several platforms."
)


def test_mix_recipe_drops_and_downsamples(tmp_path):
    """configs/tag-toxicity.yaml then configs/mix-toxicity.yaml on the labelled sample plus documents that hide one
    offensive paragraph among clean ones."""
    docs = [{"id": r["id"], "text": r["text"], "source": "labelled"} for r in labelled()]
    rude = "Shut the fuck up, you stupid bitch.\n"
    docs += [
        {"id": f"para-{i}", "text": f"{CLEAN_PARAGRAPH} ({i})\n{rude}{CLEAN_PARAGRAPH}", "source": "labelled"}
        for i in range(5)
    ]
    path = tmp_path / "demo-output" / "sample" / "documents" / "labelled" / "part-0000.jsonl.gz"
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)
    for name in ("tag-toxicity.yaml", "mix-toxicity.yaml"):
        command = name.split("-")[0]
        result = run_cli("-c", str(REPO / "configs" / name), command, "--quiet", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    scores = dict(
        zip([d["id"] for d in docs], OffensiveModel(SHIPPED_OFFENSIVE_MODEL).scores([d["text"] for d in docs]))
    )
    mixed = tmp_path / "demo-output" / "sample" / "mixed"
    clean = {r["id"]: r["text"] for r in read_jsonl(mixed / "clean" / "clean-0000.jsonl.gz")}
    borderline = [r["id"] for r in read_jsonl(mixed / "borderline" / "borderline-0000.jsonl.gz")]
    assert set(clean) == {i for i, p in scores.items() if p < 0.5}
    middle = {i for i, p in scores.items() if 0.5 <= p < 0.9}
    assert set(borderline) <= middle and 0 < len(borderline) < len(middle) / 2, (len(borderline), len(middle))
    assert not any(scores[i] >= 0.9 for i in [*clean, *borderline])
    for i in range(5):  # the offensive paragraph is cut out, the clean ones stay
        assert clean[f"para-{i}"] == f"{CLEAN_PARAGRAPH} ({i})\n{CLEAN_PARAGRAPH}"


# --------------------------------------------------------------------------------------------------------------
# The model file
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:100], "too short|truncated"),
        (lambda b: b"NOTAMODL" + b[8:], "wrong magic"),
        (lambda b: b[:8] + (2).to_bytes(4, "little") + b[12:], "format version 2"),
        (lambda b: b[:-10], "truncated"),
        (lambda b: b[:-10] + bytes(10), "does not decompress|SHA-256"),
    ],
)
def test_damaged_model_is_one_clear_error(tmp_path, damage, message):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(damage(Path(SHIPPED_OFFENSIVE_MODEL).read_bytes()))
    tagger = registry.create("toxicity_offensive_v1", {"model_path": str(bad)})
    with pytest.raises(TaggerError, match=message) as err:
        tagger.check()
    assert str(bad) in str(err.value)


def test_damaged_model_stops_the_run_at_start_up(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"DOLMAOFF" + bytes(100))
    (tmp_path / "documents" / "x").mkdir(parents=True)
    (tmp_path / "documents" / "x" / "d.jsonl").write_text('{"id": "a", "text": "hi", "source": "t"}\n')
    cfg = json.dumps({"toxicity_offensive_v1": {"model_path": str(bad)}})
    args = ["tag", "--documents", "documents/*/*.jsonl", "--taggers", "toxicity_offensive_v1", "--quiet"]
    result = run_cli(*args, "--processes", "2", "--tagger_config", cfg, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.count(str(bad)) == 1, result.stderr
    assert not (tmp_path / "attributes").exists()


def test_model_path_from_environment(tmp_path, monkeypatch):
    copy = tmp_path / "copy.bin"
    shutil.copy(SHIPPED_OFFENSIVE_MODEL, copy)
    monkeypatch.setenv("DOLMA_OFFENSIVE_MODEL", str(copy))
    tagger = registry.create("toxicity_offensive_v1")
    assert tagger.model.path == str(copy)
    monkeypatch.setenv("DOLMA_OFFENSIVE_MODEL", str(tmp_path / "missing.bin"))
    with pytest.raises(TaggerError, match=r"missing\.bin"):
        registry.create("toxicity_offensive_v1").check()


# --------------------------------------------------------------------------------------------------------------
# Identical values: pickled, 1 vs 2 processes, Spark local[2]
# --------------------------------------------------------------------------------------------------------------


def test_pickled_tagger_gives_identical_spans():
    docs = [Document(id=str(i), text=t) for i, t in enumerate(EDGE_TEXTS)]
    for name in OFFENSIVE_TAGGERS:
        tagger = registry.create(name)
        before = tagger.predict_batch(docs)
        blob = pickle.dumps(tagger)
        assert len(blob) < 2000  # the model is not pickled; workers load it themselves
        assert pickle.loads(blob).predict_batch(docs) == before


def copy_sample(root: Path) -> str:
    shutil.copytree(SAMPLE / "documents", root / "documents")
    return str(root / "documents" / "*" / "*.jsonl.gz")


def tree(root: Path) -> dict[str, bytes]:
    """The output files, run summaries left out (run logs with timings: docs/run-summary.md)."""
    from dolma.executors.summary import is_run_summary

    files = sorted(p for p in root.rglob("*") if p.is_file() and not is_run_summary(p))
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def tag_sample(root: Path, **extra) -> dict[str, bytes]:
    data = {"documents": [copy_sample(root)], "taggers": OFFENSIVE_TAGGERS, "quiet": True, **extra}
    assert tag.run(dconfig.build(TagConfig, overrides=data)) == 0
    return tree(root / "attributes")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict[str, bytes]:
    out = tag_sample(tmp_path_factory.mktemp("one"), processes=1)
    assert len(out) == 5 * len(OFFENSIVE_TAGGERS)
    return out


def test_sample_corpus_two_processes_identical(tmp_path, one_process):
    assert tag_sample(tmp_path, processes=2) == one_process
    rows = [json.loads(line) for line in gzip.decompress(next(iter(one_process.values()))).splitlines()]
    assert rows and all(r["attributes"] for r in rows)


def test_sample_corpus_spark_identical(tmp_path, spark_context, one_process):
    spark = {"master": "local[2]", "conf": LOOPBACK_SPARK_CONF}
    assert tag_sample(tmp_path, executor="spark", spark=spark) == one_process


# --------------------------------------------------------------------------------------------------------------
# `dolma list`
# --------------------------------------------------------------------------------------------------------------

MEASURES = {
    "toxicity_offensive_v1": ("Offensive", "document"),
    "toxicity_offensive_paragraph_v1": ("Offensive", "paragraph"),
    "toxicity_offensive_sentence_v1": ("Offensive", "sentence"),
    "jigsaw_hatespeech_document_v2": ("Hate speech", "document"),
    "jigsaw_hatespeech_sentence_v2": ("Hate speech", "sentence"),
    "jigsaw_nsfw_document_v1": ("NSFW", "document"),
    "jigsaw_nsfw_sentence_v2": ("NSFW", "sentence"),
    "jigsaw_nsfw_sencence_v2": ("NSFW", "sentence"),
    "naughty_words_v1": ("Profanity", "word list"),
}


def test_list_says_what_each_toxicity_tagger_measures():
    result = run_cli("list", "--plain")
    assert result.returncode == 0, result.stderr
    described = {line.split("\t")[0]: line.split("\t")[2] for line in result.stdout.splitlines() if "\t" in line}
    for name, (what, unit) in MEASURES.items():
        assert what in described[name] and unit in described[name], (name, described[name])
    assert "Hate speech" not in described["jigsaw_nsfw_document_v1"]
    assert "whole document" not in described["jigsaw_hatespeech_sentence_v2"]


def test_every_description_is_the_taggers_own():
    """A registered subclass with its own docstring is described by it, not by its parent's description."""
    checked = 0
    for name, cls in registry.all_taggers().items():
        if cls.__doc__ and cls.__module__.startswith("taggers."):
            assert cls.description == cls.__doc__.strip().splitlines()[0], name
            checked += 1
    assert checked > 30


def test_docs_recipe_is_the_config_file():
    """docs/toxicity.md shows configs/mix-toxicity.yaml as it is, so the page cannot drift from the recipe the
    tests run."""
    import yaml

    page = (REPO / "docs" / "toxicity.md").read_text(encoding="utf-8")
    block = page.split("# configs/mix-toxicity.yaml\n", 1)[1].split("```", 1)[0]
    shown = yaml.safe_load(block)
    config = yaml.safe_load((REPO / "configs" / "mix-toxicity.yaml").read_text(encoding="utf-8"))
    assert shown == config and shown["streams"]
