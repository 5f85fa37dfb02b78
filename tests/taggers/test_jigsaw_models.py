"""The Jigsaw toxicity taggers' models: a configured path, an environment variable, or the public URL the reference
toolkit uses, fetched once into the cache and checked (size, SHA-256); offline, one start-up error naming all three.

The public host is replaced by a real HTTP server on 127.0.0.1 ($DOLMA_MODEL_MIRROR), serving a fastText model
trained here with `dolma train-fasttext`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dolma import registry
from dolma.documents import Document
from dolma.errors import TaggerError
from taggers.classifiers import JIGSAW_MODELS
from tests.conftest import read_jsonl, run_cli, write_jsonl_gz
from tests.taggers.test_classifiers import trained  # noqa: F401 - the module fixture that trains a small model

HATE_URL = JIGSAW_MODELS + "jigsaw_fasttext_bigrams_hatespeech_final.bin"
NSFW_URL = JIGSAW_MODELS + "jigsaw_fasttext_bigrams_nsfw_final.bin"
HATE_PATH = "/fasttext_models/jigsaw_fasttext_bigrams_20230515/jigsaw_fasttext_bigrams_hatespeech_final.bin"


class ModelServer:
    """Serves `files` (URL path -> bytes) on 127.0.0.1 and counts GETs; `short` paths announce more bytes than sent."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.short: set[str] = set()
        self.gets: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.gets[self.path] += 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                extra = 1000 if self.path in server.short else 0
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def model_bytes(trained) -> bytes:  # noqa: F811
    return (trained / "model.bin").read_bytes()


@pytest.fixture
def server(model_bytes, monkeypatch, tmp_path):
    srv = ModelServer({HATE_PATH: model_bytes})
    monkeypatch.setenv("DOLMA_MODEL_MIRROR", srv.url)
    monkeypatch.setenv("DOLMA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DOLMA_JIGSAW_HATESPEECH_MODEL", raising=False)
    monkeypatch.delenv("DOLMA_JIGSAW_NSFW_MODEL", raising=False)
    yield srv
    srv.close()


def corpus(tmp_path: Path, files: int = 2) -> None:
    for f in range(files):
        docs = [{"id": f"{f}-{i}", "text": "science data. cheap casino prize!", "source": "t"} for i in range(5)]
        write_jsonl_gz(tmp_path / "documents" / "x" / f"d{f}.jsonl.gz", docs)


def tag(tmp_path: Path, taggers: list[str], config: dict | None = None, processes: int = 2):
    args = ["tag", "--documents", "documents/*/*.jsonl.gz", "--taggers", *taggers, "--quiet"]
    args += ["--processes", str(processes), "--tagger_config", json.dumps(config or {})]
    return run_cli(*args, cwd=tmp_path)


def cache_files(tmp_path: Path) -> list[str]:
    root = tmp_path / "cache" / "models"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_public_url_is_fetched_once_and_recorded(tmp_path, server, model_bytes):
    corpus(tmp_path)
    taggers = ["jigsaw_hatespeech_document_v2", "jigsaw_hatespeech_sentence_v2"]
    result = tag(tmp_path, taggers)
    assert result.returncode == 0, result.stderr
    assert server.gets == {HATE_PATH: 1}  # two taggers, two processes, one download
    rows = read_jsonl(tmp_path / "attributes" / "jigsaw_hatespeech_document_v2" / "x" / "d0.jsonl.gz")
    keys = set(rows[0]["attributes"])
    assert keys == {
        f"jigsaw_hatespeech_document_v2__jigsaw_hatespeech_document_v2____label__{lab}" for lab in ("hq", "lq")
    }
    [cached] = cache_files(tmp_path)
    assert (tmp_path / "cache" / "models" / cached).read_bytes() == model_bytes
    record = json.loads((tmp_path / "cache" / "model-records" / f"{cached}.json").read_text())
    assert record == {
        "url": server.url + HATE_PATH,
        "size": len(model_bytes),
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
    }
    again = tmp_path / "again"
    corpus(again)
    assert tag(again, taggers).returncode == 0
    assert server.gets == {HATE_PATH: 1}  # later runs use the cache


def test_expected_checksum_and_size(tmp_path, server, model_bytes):
    corpus(tmp_path)
    name = "jigsaw_hatespeech_document_v2"
    good = hashlib.sha256(model_bytes).hexdigest()
    wrong = {name: {"model_sha256": "0" * 64}}
    result = tag(tmp_path, [name], wrong)
    assert result.returncode != 0
    assert f"SHA-256 {good}, expected {'0' * 64}" in result.stderr and result.stderr.count("SHA-256") == 1
    assert "model_path" in result.stderr  # the three ways follow
    assert cache_files(tmp_path) == [] and not (tmp_path / "attributes").exists()
    result = tag(tmp_path, [name], {name: {"model_size": len(model_bytes) + 1}})
    assert result.returncode != 0 and f"{len(model_bytes)} bytes, expected {len(model_bytes) + 1}" in result.stderr
    assert cache_files(tmp_path) == []
    result = tag(tmp_path, [name], {name: {"model_sha256": good.upper(), "model_size": len(model_bytes)}})
    assert result.returncode == 0, result.stderr
    assert server.gets[HATE_PATH] == 3 and len(cache_files(tmp_path)) == 1
    # A cached copy that does not match the expected checksum is fetched again, and still refused.
    other = tmp_path / "other"
    corpus(other)
    result = tag(other, [name], wrong)
    assert result.returncode != 0 and server.gets[HATE_PATH] == 4 and cache_files(tmp_path) == []


def test_damaged_cached_copy_is_fetched_again(tmp_path, server, model_bytes):
    tagger = registry.create("jigsaw_hatespeech_document_v2")
    path = Path(tagger.model_file())
    path.write_bytes(model_bytes[:100])  # e.g. a disk that filled up
    assert Path(registry.create("jigsaw_hatespeech_document_v2").model_file()).read_bytes() == model_bytes
    assert server.gets[HATE_PATH] == 2


def test_truncated_transfer_is_not_cached(tmp_path, server):
    server.short.add(HATE_PATH)
    tagger = registry.create("jigsaw_hatespeech_document_v2")
    with pytest.raises(TaggerError, match="cannot fetch") as err:
        tagger.check()
    assert "has no model" in str(err.value)
    assert cache_files(tmp_path) == []


def test_offline_without_model_is_one_start_up_error_naming_three_ways(tmp_path, monkeypatch):
    monkeypatch.setenv("DOLMA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DOLMA_JIGSAW_NSFW_MODEL", raising=False)
    corpus(tmp_path, files=3)
    result = tag(tmp_path, ["jigsaw_nsfw_document_v1"])
    assert result.returncode != 0
    err = result.stderr
    assert err.count("has no model") == 1, err
    assert "tagger_config.jigsaw_nsfw_document_v1.model_path" in err
    assert "DOLMA_JIGSAW_NSFW_MODEL" in err
    assert NSFW_URL in err
    assert not (tmp_path / "attributes").exists()
    assert "Traceback" not in err


def test_configured_path_and_variable_come_first(tmp_path, server, trained, monkeypatch):  # noqa: F811
    model = str(trained / "model.bin")
    assert registry.create("jigsaw_hatespeech_document_v2", {"model_path": model}).model_file() == model
    monkeypatch.setenv("DOLMA_JIGSAW_HATESPEECH_MODEL", model)
    assert registry.create("jigsaw_hatespeech_sentence_v2").model_file() == model
    assert server.gets == {}
    # A configured path that is missing is reported as such (not as a missing default).
    with pytest.raises(TaggerError, match="file not found") as err:
        registry.create("jigsaw_hatespeech_document_v2", {"model_path": str(tmp_path / "none.bin")}).check()
    assert "three ways" not in str(err.value)


def test_bad_checksum_option_is_a_config_error(tmp_path):
    from dolma.errors import ConfigError

    with pytest.raises(ConfigError, match="model_sha256"):
        registry.create("jigsaw_nsfw_document_v1", {"model_sha256": "abc"})


@pytest.fixture(scope="module")
def toxic_model(tmp_path_factory) -> Path:
    """A fastText model with the Jigsaw models' label names (`toxic` / `non-toxic`), trained here."""
    import random

    from tests.taggers.test_classifiers import BAD, GOOD, make_docs

    tmp = tmp_path_factory.mktemp("toxic")
    rng = random.Random(1)
    write_jsonl_gz(tmp / "pos" / "a.jsonl.gz", make_docs(BAD, "p", 200, rng))
    write_jsonl_gz(tmp / "neg" / "a.jsonl.gz", make_docs(GOOD, "n", 200, rng))
    args = ["train-fasttext", "--positive", str(tmp / "pos" / "*.jsonl.gz"), "--negative"]
    args += [str(tmp / "neg" / "*.jsonl.gz"), "--model_path", str(tmp / "model.bin")]
    result = run_cli(*args, "--positive_label", "toxic", "--negative_label", "non-toxic")
    assert result.returncode == 0, result.stderr
    return tmp / "model.bin"


JIGSAW_TEXTS = ["science research evidence\ntheory data", "cheap casino prize", "  science casino  \n", "", "a\n\nb"]


def test_flagged_label_comes_first_whatever_is_more_likely(toxic_model):
    """Like the reference: `__label__toxic` then `__label__non-toxic`, also when the text is clearly not toxic."""
    tagger = registry.create("jigsaw_hatespeech_document_v2", {"model_path": str(toxic_model)})
    for text in JIGSAW_TEXTS:
        spans = tagger.predict(Document(id="x", text=text))
        assert [s.type for s in spans] == ["__label__toxic", "__label__non-toxic"], text
    clean = tagger.predict(Document(id="x", text=JIGSAW_TEXTS[0]))
    assert clean[1].score > clean[0].score  # the second label is the more likely one here


@pytest.mark.reference
def test_document_taggers_match_reference_with_jigsaw_labels(toxic_model, tmp_path):
    """The reference loads our toxic / non-toxic model from its download cache: same spans, order and scores."""
    from tests.helpers.reference import reference_predict

    names = {"jigsaw_hatespeech_document_v2": HATE_URL, "jigsaw_nsfw_document_v1": NSFW_URL}
    theirs = reference_predict(
        list(names), JIGSAW_TEXTS, tmp_path, models={u: str(toxic_model) for u in names.values()}
    )
    for name in names:
        tagger = registry.create(name, {"model_path": str(toxic_model)})
        for text, ref in zip(JIGSAW_TEXTS, theirs[name]):
            ours = [[s.start, s.end, s.type, s.score] for s in tagger.predict(Document(id="x", text=text))]
            assert [o[:3] for o in ours] == [r[:3] for r in ref], (name, text, ref)
            assert all(abs(o[3] - r[3]) <= 1e-4 for o, r in zip(ours, ref)), (name, text, ref)


def test_tests_never_fetch_a_default_model_from_the_internet():
    """conftest points every default model URL at 127.0.0.1, whatever $DOLMA_MODEL_MIRROR the caller set."""
    for name in ("jigsaw_hatespeech_document_v2", "jigsaw_nsfw_sencence_v2"):
        url = registry.create(name).default_model_url()
        assert url is not None and url.startswith("http://127.0.0.1:"), url
