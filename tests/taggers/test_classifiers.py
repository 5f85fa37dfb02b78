"""fastText classifiers: `dolma train-fasttext`, the generic and named classifier taggers, model caching
from S3, and the named taggers compared with the reference toolkit using a model trained here."""

from __future__ import annotations

import json
import multiprocessing
import random
from pathlib import Path

import pytest

from dolma import registry
from dolma.documents import Document
from dolma.errors import TaggerError
from tests.conftest import read_jsonl, run_cli, write_jsonl_gz
from tests.helpers.reference import reference_predict

GOOD = ["science", "research", "study", "results", "method", "analysis", "data", "theory", "experiment", "evidence"]
BAD = ["buy", "cheap", "click", "free", "offer", "casino", "win", "prize", "deal", "now"]
MODEL_URLS = {
    "dclm-oh-eli5": "https://huggingface.co/mlfoundations/fasttext-oh-eli5/resolve/main/"
    "openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin",
    "dolma17-quality": "https://dolma-artifacts.org/fasttext_models/dolma-1_7/"
    "cc_wiki_wikiref_sw_pes2o_adult_fakenews_math_books_openhermes.bin",
    "jigsaw_hatespeech_document_v2": "https://dolma-artifacts.org/fasttext_models/jigsaw_fasttext_bigrams_20230515/"
    "jigsaw_fasttext_bigrams_hatespeech_final.bin",
    "jigsaw_nsfw_document_v1": "https://dolma-artifacts.org/fasttext_models/jigsaw_fasttext_bigrams_20230515/"
    "jigsaw_fasttext_bigrams_nsfw_final.bin",
}


def make_docs(words: list[str], prefix: str, n: int, rng: random.Random) -> list[dict]:
    # Mostly class words with a little shared vocabulary, so the classes are separable but not trivially.
    mixed = words + GOOD[:2] + BAD[:2]
    return [{"id": f"{prefix}{i}", "text": " ".join(rng.choice(mixed) for _ in range(20))} for i in range(n)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    rng = random.Random(0)
    write_jsonl_gz(tmp / "pos" / "a.jsonl.gz", make_docs(GOOD, "p", 300, rng))
    write_jsonl_gz(tmp / "neg" / "a.jsonl.gz", make_docs(BAD, "n", 300, rng))
    result = run_cli(
        "train-fasttext",
        "--positive",
        str(tmp / "pos" / "*.jsonl.gz"),
        "--negative",
        str(tmp / "neg" / "*.jsonl.gz"),
        "--model_path",
        str(tmp / "model.bin"),
        "--positive_label",
        "hq",
        "--negative_label",
        "lq",
        "--report",
        str(tmp / "report.json"),
    )
    assert result.returncode == 0, result.stderr
    assert "precision" in result.stdout and "recall" in result.stdout
    return tmp


def test_train_reports_held_out_metrics(trained):
    report = json.loads((trained / "report.json").read_text())
    assert report["positive_documents"] == 300 and report["negative_documents"] == 300
    # About 10% held out; the vocabularies are disjoint apart from 4 shared words, so a bigram model separates
    # the classes almost perfectly.
    assert 30 <= report["test_documents"] <= 90
    assert report["precision"] >= 0.9 and report["recall"] >= 0.9


def test_train_rejects_empty_input(tmp_path):
    result = run_cli(
        "train-fasttext", "--positive", str(tmp_path / "none*.jsonl"), "--negative", "x", "--model_path", "m"
    )
    assert result.returncode != 0
    assert "no documents match" in result.stderr


def test_generic_tagger_scores_documents(trained):
    tagger = registry.create("fasttext_classifier_v1", {"model_path": str(trained / "model.bin")})
    text = "science research evidence\ntheory data method"
    good = tagger.predict(Document(id="g", text=text))
    bad = tagger.predict(Document(id="b", text="cheap casino prize offer"))
    assert {s.type for s in good} == {"hq", "lq"}
    assert all((s.start, s.end) == (0, len(text)) for s in good)
    assert max(good, key=lambda s: s.score).type == "hq"
    assert max(bad, key=lambda s: s.score).type == "lq"
    assert abs(sum(s.score for s in good) - 1.0) < 1e-3


def test_generic_tagger_per_paragraph_top1_with_prefix(trained):
    tagger = registry.create(
        "fasttext_classifier_v1",
        {"model_path": str(trained / "model.bin"), "level": "paragraph", "top_k": 1, "strip_label_prefix": False},
    )
    spans = tagger.predict(Document(id="x", text="science research\n\ncasino prize offer\n"))
    assert [(s.start, s.end, s.type) for s in spans] == [(0, 17, "__label__hq"), (18, 37, "__label__lq")]


def test_named_tagger_without_model_says_how_to_supply_it(monkeypatch):
    monkeypatch.delenv("DOLMA_JIGSAW_NSFW_MODEL", raising=False)
    tagger = registry.create("jigsaw_nsfw_document_v1")
    with pytest.raises(TaggerError) as err:
        tagger.predict(Document(id="x", text="hello"))
    message = str(err.value)
    assert "DOLMA_JIGSAW_NSFW_MODEL" in message and "tagger_config.jigsaw_nsfw_document_v1.model_path" in message


def test_named_tagger_reads_model_from_environment(trained, monkeypatch):
    monkeypatch.setenv("DOLMA_DOLMA17_QUALITY_MODEL", str(trained / "model.bin"))
    spans = registry.create("dolma17-quality").predict(Document(id="x", text="science data"))
    assert sorted(s.type for s in spans) == ["hq", "lq"]


def test_missing_model_file_is_a_clear_error(tmp_path):
    tagger = registry.create("dclm-oh-eli5", {"model_path": str(tmp_path / "nope.bin")})
    with pytest.raises(TaggerError, match=r"nope\.bin"):
        tagger.predict(Document(id="x", text="hello"))


def _resolve_in_child(args: tuple[str, str, dict]) -> str:
    import os

    url, cache, env = args
    os.environ.update(env)
    os.environ["DOLMA_CACHE_DIR"] = cache
    from dolma.models import resolve_model

    return resolve_model(url)


def test_model_from_s3_is_cached_once_across_workers(trained, s3_server, s3_bucket, tmp_path):
    import os

    s3_server.client().upload_file(str(trained / "model.bin"), s3_bucket, "models/q.bin")
    url = f"s3://{s3_bucket}/models/q.bin"
    env = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    cache = str(tmp_path / "cache")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        paths = pool.map(_resolve_in_child, [(url, cache, env)] * 4)
    assert len(set(paths)) == 1
    assert Path(paths[0]).read_bytes() == (trained / "model.bin").read_bytes()
    leftovers = [p.name for p in (tmp_path / "cache" / "models").iterdir() if p.name != Path(paths[0]).name]
    assert leftovers == [], leftovers  # no partial downloads or stale locks
    tagger = registry.create("fasttext_classifier_v1", {"model_path": url})
    os.environ["DOLMA_CACHE_DIR"] = cache
    try:
        assert tagger.predict(Document(id="x", text="casino"))[0].type == "lq"
    finally:
        del os.environ["DOLMA_CACHE_DIR"]


def test_tag_cli_with_classifier(trained, tmp_path):
    docs = [{"id": "a", "text": "science theory", "source": "t"}, {"id": "b", "text": "", "source": "t"}]
    write_jsonl_gz(tmp_path / "documents" / "x" / "d.jsonl.gz", docs)
    write_jsonl_gz(tmp_path / "documents" / "y" / "d.jsonl.gz", docs)
    cfg = {"fasttext_classifier_v1": {"model_path": str(trained / "model.bin"), "top_k": 1}}
    result = run_cli(
        "tag",
        "--documents",
        "documents/*/*.jsonl.gz",
        "--taggers",
        "fasttext_classifier_v1",
        "--quiet",
        "--tagger_config",
        json.dumps(cfg),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "attributes" / "fasttext_classifier_v1" / "x" / "d.jsonl.gz")
    assert list(rows[0]["attributes"]) == ["fasttext_classifier_v1__fasttext_classifier_v1__hq"]


TEXTS = ["science research evidence\ntheory data", "cheap casino prize", "word", "science casino", "a\n\nb"]


@pytest.mark.reference
def test_named_classifiers_match_reference(trained, tmp_path, monkeypatch):
    """The reference loads our model from its download cache; keys, spans and scores must agree."""
    model = str(trained / "model.bin")
    theirs = reference_predict(list(MODEL_URLS), TEXTS, tmp_path, models={u: model for u in MODEL_URLS.values()})
    for name in MODEL_URLS:
        tagger = registry.create(name, {"model_path": model})
        for text, ref in zip(TEXTS, theirs[name]):
            ours = [[s.start, s.end, s.type, s.score] for s in tagger.predict(Document(id="x", text=text))]
            assert [o[:3] for o in ours] == [r[:3] for r in ref], (name, text)
            assert all(abs(o[3] - r[3]) <= 1e-4 for o, r in zip(ours, ref)), (name, text)
