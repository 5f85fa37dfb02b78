"""Tagger resources (models, word and URL lists) are checked once, when the run is planned, before any file is
read: a missing or unusable resource is one clear error and a non-zero exit, not the same failure per file."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import make_docs, run_cli, write_jsonl_gz


def _corpus(tmp_path, files: int = 4) -> str:
    for i in range(files):
        write_jsonl_gz(tmp_path / "documents" / f"p{i}.jsonl.gz", make_docs(3, prefix=f"p{i}-"))
    # A corrupt file too: were any file read before the check, its error would show.
    (tmp_path / "documents" / "p9.jsonl.gz").write_bytes(b"\x1f\x8b not gzip")
    return str(tmp_path / "documents" / "*.jsonl.gz")


def _assert_one_start_up_error(result, *needles: str) -> None:
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert "FAILED" not in result.stderr and "Traceback" not in result.stderr
    assert "p9.jsonl.gz" not in result.stderr  # no documents file was opened


BAD_RESOURCES = {
    "classifier without a model": (
        ["--taggers", "dclm-oh-eli5"],
        ["DOLMA_DCLM_MODEL", "tagger_config.dclm-oh-eli5.model_path"],
    ),
    "missing model file": (
        ["--taggers", "dolma17-quality", "--tagger_config", "{dolma17-quality: {model_path: {tmp}/nope.bin}}"],
        ["nope.bin", "dolma17-quality"],
    ),
    "not a fastText model": (
        ["--taggers", "ft_lang_id_en_doc_v2", "--tagger_config", "{ft_lang_id_en_doc_v2: {model_path: {tmp}/x.txt}}"],
        ["x.txt", "not a fastText model"],
    ),
    "missing word list": (
        ["--taggers", "naughty_words_v1", "--tagger_config", "{naughty_words_v1: {wordlist_path: {tmp}/w.txt}}"],
        ["naughty_words_v1", "w.txt"],
    ),
    "missing c4 word list": (
        ["--taggers", "c4_v2", "--tagger_config", "{c4_v2: {naughty_words: {tmp}/c4.txt}}"],
        ["c4.txt"],
    ),
    "missing URL list": (
        ["--taggers", "domain_blocklist_v1", "--tagger_config", "{domain_blocklist_v1: {blocklist_paths: [{tmp}/b]}}"],
        ["domain_blocklist_v1", "/b"],
    ),
    "URL tagger without lists": (
        ["--taggers", "link_blocklist_v1"],
        ["link_blocklist_v1.blocklist_paths"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_RESOURCES))
@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_bad_resource_is_one_error_before_any_file_is_read(tmp_path, monkeypatch, case, processes):
    monkeypatch.delenv("DOLMA_DCLM_MODEL", raising=False)
    monkeypatch.delenv("DOLMA_DOLMA17_QUALITY_MODEL", raising=False)
    (tmp_path / "x.txt").write_text("plain text, not a model\n")
    args, needles = BAD_RESOURCES[case]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_cli("tag", "--documents", _corpus(tmp_path), *args, "--processes", processes, "--quiet")
    _assert_one_start_up_error(result, *needles)
    assert not (tmp_path / "attributes").exists()


WORKER_ONLY_FAILURE = textwrap.dedent(
    """
    import multiprocessing

    from dolma.documents import Span
    from dolma.registry import register
    from dolma.tagger import Tagger

    @register("fails_in_workers_tagger")
    class FailsInWorkers(Tagger):
        '''Passes the driver's checks, then cannot be created in a worker (a resource gone in between).'''

        def __init__(self, config=None):
            super().__init__(config)
            if multiprocessing.parent_process() is not None:
                raise RuntimeError("the resource vanished")

        def predict(self, doc):
            return [Span(0, 1, "x", 1.0)]
    """
)


def test_a_tagger_that_cannot_start_in_the_workers_stops_the_run_with_one_error(tmp_path):
    module = tmp_path / "fails.py"
    module.write_text(WORKER_ONLY_FAILURE)
    pattern = _corpus(tmp_path)
    args = ["--taggers", "fails_in_workers_tagger", "--tagger_modules", str(module), "--processes", "2"]
    result = run_cli("tag", "--documents", pattern.replace("*.jsonl.gz", "p[0-3].jsonl.gz"), *args, "--quiet")
    _assert_one_start_up_error(result, "the resource vanished")
