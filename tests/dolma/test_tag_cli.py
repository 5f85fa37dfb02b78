"""`dolma tag` and `dolma list` end to end through the CLI: outputs, exit codes, resume, failures, S3."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, make_docs, read_jsonl, run_cli, write_jsonl_gz
from tests.helpers.golden import TAG_TAGGERS

FAST_TAGGERS = ["char_length_v1", "whitespace_tokenizer_v1", "bytes_length_v1"]


def corpus(tmp_path, files=2, docs=20):
    for i in range(files):
        write_jsonl_gz(tmp_path / "documents" / "sub" / f"part-{i}.jsonl.gz", make_docs(docs, prefix=f"f{i}-"))
    return str(tmp_path / "documents" / "**" / "*.jsonl.gz")


def test_tag_writes_mirrored_attributes(tmp_path):
    pattern = corpus(tmp_path)
    result = run_cli("tag", "--documents", pattern, "--taggers", *FAST_TAGGERS, "--quiet")
    assert result.returncode == 0, result.stderr
    for i in range(2):
        docs = read_jsonl(tmp_path / "documents" / "sub" / f"part-{i}.jsonl.gz")
        for tagger in FAST_TAGGERS:
            rows = read_jsonl(tmp_path / "attributes" / tagger / "sub" / f"part-{i}.jsonl.gz")
            assert [r["id"] for r in rows] == [d["id"] for d in docs]
            assert all(r["source"] == "test" for r in rows)
        lengths = read_jsonl(tmp_path / "attributes" / "char_length_v1" / "sub" / f"part-{i}.jsonl.gz")
        for doc, row in zip(docs, lengths):
            n = len(doc["text"])
            assert row["attributes"] == {"char_length_v1__char_length_v1__length": [[0, n, float(n)]]}


def test_experiment_groups_taggers_in_one_set(tmp_path):
    pattern = corpus(tmp_path, files=1, docs=3)
    result = run_cli("tag", "--documents", pattern, "--taggers", *FAST_TAGGERS, "--experiment", "my-exp", "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "attributes")) == ["my-exp"]
    rows = read_jsonl(tmp_path / "attributes" / "my-exp" / "sub" / "part-0.jsonl.gz")
    assert set(rows[0]["attributes"]) == {
        "my_exp__char_length_v1__length",
        "my_exp__whitespace_tokenizer_v1__length",
        "my_exp__bytes_length_v1__bytes",
    }


def test_config_file_and_destination(tmp_path):
    pattern = corpus(tmp_path, files=1, docs=3)
    cfg = tmp_path / "tag.yaml"
    cfg.write_text(f"documents: ['{pattern}']\ntaggers: [char_length_v1]\ndestination: {tmp_path}/out\nquiet: true\n")
    result = run_cli("-c", str(cfg), "tag")
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(tmp_path / "out" / "sub" / "part-0.jsonl.gz")) == 3


def test_relative_paths_are_resolved(tmp_path):
    corpus(tmp_path, files=1, docs=3)
    result = run_cli(
        "tag", "--documents", "documents/sub/*.gz", "--taggers", "char_length_v1", "--quiet", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "attributes" / "char_length_v1" / "sub" / "part-0.jsonl.gz").exists()


@pytest.mark.parametrize("destination", ["documents/sub", "documents"])
def test_refuses_to_write_into_documents(tmp_path, destination):
    pattern = corpus(tmp_path, files=1, docs=3)
    result = run_cli(
        "tag", "--documents", pattern, "--taggers", "char_length_v1", "--destination", destination, cwd=tmp_path
    )
    assert result.returncode != 0
    assert "refusing to write" in result.stderr
    assert "documents tree" in result.stderr or "one of the input files" in result.stderr
    assert sorted(os.listdir(tmp_path / "documents" / "sub")) == ["part-0.jsonl.gz"]


def test_config_errors_exit_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("documents: [x]\ntaggers: [char_length_v1]\nprocesess: 2\n")
    result = run_cli("-c", str(cfg), "tag")
    assert result.returncode == 2
    assert f"{cfg}: unknown field 'processes'" not in result.stderr
    assert "unknown field 'procesess' (did you mean 'processes'?)" in result.stderr
    assert str(cfg) in result.stderr


def test_unknown_tagger_and_no_matching_files(tmp_path):
    pattern = corpus(tmp_path, files=1, docs=1)
    result = run_cli("tag", "--documents", pattern, "--taggers", "char_lenght_v1")
    assert result.returncode == 2 and "did you mean 'char_length_v1'" in result.stderr
    result = run_cli("tag", "--documents", str(tmp_path / "nothing/*.gz"), "--taggers", "char_length_v1")
    assert result.returncode == 2 and "no files match" in result.stderr


def test_resume_skips_completed_files(tmp_path):
    pattern = corpus(tmp_path, files=3, docs=5)
    assert run_cli("tag", "--documents", pattern, "--taggers", "char_length_v1", "--quiet").returncode == 0
    out0 = tmp_path / "attributes" / "char_length_v1" / "sub" / "part-0.jsonl.gz"
    out1 = tmp_path / "attributes" / "char_length_v1" / "sub" / "part-1.jsonl.gz"
    os.utime(out0, (1_000_000, 1_000_000))
    out1.unlink()
    result = run_cli("tag", "--documents", pattern, "--taggers", "char_length_v1")
    assert result.returncode == 0, result.stderr
    assert os.stat(out0).st_mtime == 1_000_000  # untouched: skipped
    assert out1.exists()  # redone
    assert "skipped (already complete)" in result.stderr
    result = run_cli("tag", "--documents", pattern, "--taggers", "char_length_v1", "--ignore_existing", "--quiet")
    assert result.returncode == 0
    assert os.stat(out0).st_mtime != 1_000_000


def test_bad_line_fails_the_file_and_exit_code(tmp_path):
    pattern = corpus(tmp_path, files=2, docs=5)
    bad = tmp_path / "documents" / "sub" / "part-1.jsonl.gz"
    lines = gzip.decompress(bad.read_bytes()).split(b"\n")
    lines[2] = b'{"id": "broken", "txt": "x"}'
    bad.write_bytes(gzip.compress(b"\n".join(lines)))
    result = run_cli("tag", "--documents", pattern, "--taggers", "char_length_v1", "--quiet")
    assert result.returncode == 1
    assert f"{bad}:3: field 'text': missing required field" in result.stderr
    assert (tmp_path / "attributes" / "char_length_v1" / "sub" / "part-0.jsonl.gz").exists()
    assert not (tmp_path / "attributes" / "char_length_v1" / "sub" / "part-1.jsonl.gz").exists()
    # skipped and counted instead
    result = run_cli("tag", "--documents", pattern, "--taggers", "char_length_v1", "--skip_bad_lines")
    assert result.returncode == 0, result.stderr
    assert "bad lines skipped" in result.stderr
    rows = read_jsonl(tmp_path / "attributes" / "char_length_v1" / "sub" / "part-1.jsonl.gz")
    assert len(rows) == 4


def test_truncated_input_fails_with_clear_message(tmp_path):
    pattern = corpus(tmp_path, files=1, docs=300)
    path = tmp_path / "documents" / "sub" / "part-0.jsonl.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    result = run_cli("tag", "--documents", pattern, "--taggers", "char_length_v1", "--quiet")
    assert result.returncode == 1
    assert f"{path}: truncated gzip file" in result.stderr
    assert not (tmp_path / "attributes").exists() or not list((tmp_path / "attributes").rglob("*.gz"))


SLOW_TAGGER = textwrap.dedent(
    """
    import os, time
    from dolma.documents import Span
    from dolma.registry import register
    from dolma.tagger import Tagger

    @register("slow_test_tagger")
    class SlowTagger(Tagger):
        '''Sleeps on a marked document so the test can kill the run mid-file.'''

        def predict(self, doc):
            if doc.id.endswith("-7") and os.environ.get("SLOW_TAGGER_BLOCK"):
                open(os.environ["SLOW_TAGGER_BLOCK"], "w").close()
                time.sleep(600)
            return [Span(0, len(doc.text), "ok", 1.0)]

    @register("crashing_test_tagger")
    class CrashingTagger(Tagger):
        '''Kills its own worker process the first time it runs (a stand-in for an OOM kill).'''

        def predict(self, doc):
            marker = os.environ["CRASH_ONCE_MARKER"]
            if not os.path.exists(marker):
                open(marker, "w").close()
                os.kill(os.getpid(), 9)
            return [Span(0, len(doc.text), "ok", 1.0)]

    @register("failing_test_tagger")
    class FailingTagger(Tagger):
        '''Fails on every call (or only the first time when FAIL_ONCE_MARKER is set).'''

        def predict(self, doc):
            marker = os.environ.get("FAIL_ONCE_MARKER")
            if marker and os.path.exists(marker):
                return [Span(0, 1, "ok", 1.0)]
            if marker:
                open(marker, "w").close()
            raise RuntimeError("tagger exploded")
    """
)


def test_killed_run_leaves_no_partial_output_and_resumes(tmp_path):
    pattern = corpus(tmp_path, files=1, docs=20)
    module = tmp_path / "slow_tagger.py"
    module.write_text(SLOW_TAGGER)
    marker = tmp_path / "blocked"
    env = dict(os.environ, SLOW_TAGGER_BLOCK=str(marker), PYTHONPATH=str(REPO))
    args = ["tag", "--documents", pattern, "--taggers", "slow_test_tagger", "--tagger_modules", str(module)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dolma", *args, "--batch_size", "4", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not marker.exists():
        assert proc.poll() is None, "tagger run ended before reaching the marked document"
        os.sched_yield()
    out_dir = tmp_path / "attributes" / "slow_test_tagger" / "sub"
    assert any(name.startswith(".part-0") for name in os.listdir(out_dir))  # mid-write: only a hidden temp
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out_dir / "part-0.jsonl.gz").exists()
    result = run_cli(*args, "--quiet")
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(out_dir / "part-0.jsonl.gz")
    assert len(rows) == 20


def test_unexpected_errors_are_retried_then_fail(tmp_path):
    pattern = corpus(tmp_path, files=1, docs=2)
    module = tmp_path / "taggers_mod.py"
    module.write_text(SLOW_TAGGER)
    args = ["tag", "--documents", pattern, "--taggers", "failing_test_tagger", "--tagger_modules", str(module)]
    result = run_cli(*args, "--quiet", "--retries", "1")
    assert result.returncode == 1
    assert "tagger exploded" in result.stderr and "after 2 attempt(s)" in result.stderr
    marker = tmp_path / "failed-once"
    result = run_cli(*args, "--quiet", env={"FAIL_ONCE_MARKER": str(marker)})
    assert result.returncode == 0, result.stderr
    assert marker.exists()


def test_crashed_worker_is_replaced_and_its_file_retried(tmp_path):
    pattern = corpus(tmp_path, files=3, docs=5)
    module = tmp_path / "taggers_mod.py"
    module.write_text(SLOW_TAGGER)
    marker = tmp_path / "crashed-once"
    args = ["tag", "--documents", pattern, "--taggers", "crashing_test_tagger", "--tagger_modules", str(module)]
    result = run_cli(*args, "--processes", "2", "--quiet", env={"CRASH_ONCE_MARKER": str(marker)})
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    outputs = sorted((tmp_path / "attributes" / "crashing_test_tagger" / "sub").glob("*.jsonl.gz"))
    assert [p.name for p in outputs] == ["part-0.jsonl.gz", "part-1.jsonl.gz", "part-2.jsonl.gz"]
    assert all(len(read_jsonl(p)) == 5 for p in outputs)


def test_two_processes_give_the_same_output(tmp_path):
    pattern = corpus(tmp_path, files=4, docs=30)
    a = run_cli("tag", "--documents", pattern, "--taggers", *FAST_TAGGERS, "--experiment", "p1", "--quiet")
    b = run_cli(
        "tag", "--documents", pattern, "--taggers", *FAST_TAGGERS, "--experiment", "p2", "--processes", "2", "--quiet"
    )
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    for i in range(4):
        ra = read_jsonl(tmp_path / "attributes" / "p1" / "sub" / f"part-{i}.jsonl.gz")
        rb = read_jsonl(tmp_path / "attributes" / "p2" / "sub" / f"part-{i}.jsonl.gz")
        assert [{k.replace("p1__", "p2__"): v for k, v in r["attributes"].items()} for r in ra] == [
            r["attributes"] for r in rb
        ]


def test_random_number_is_deterministic_and_seeded(tmp_path):
    pattern = corpus(tmp_path, files=1, docs=50)
    out = tmp_path / "attributes" / "random_number_v1" / "sub" / "part-0.jsonl.gz"
    assert run_cli("tag", "--documents", pattern, "--taggers", "random_number_v1", "--quiet").returncode == 0
    first = read_jsonl(out)
    assert (
        run_cli(
            "tag", "--documents", pattern, "--taggers", "random_number_v1", "--quiet", "--ignore_existing"
        ).returncode
        == 0
    )
    assert read_jsonl(out) == first
    values = [r["attributes"]["random_number_v1__random_number_v1__random"][0][2] for r in first]
    assert all(0.0 <= v < 1.0 for v in values) and len(set(values)) == 50
    cfg = tmp_path / "seed.yaml"
    cfg.write_text("tagger_config:\n  random_number_v1:\n    seed: 7\n")
    assert (
        run_cli(
            "-c",
            str(cfg),
            "tag",
            "--documents",
            pattern,
            "--taggers",
            "random_number_v1",
            "--quiet",
            "--ignore_existing",
        ).returncode
        == 0
    )
    assert read_jsonl(out) != first


def test_tagger_config_unknown_option(tmp_path):
    pattern = corpus(tmp_path, files=1, docs=1)
    cfg = tmp_path / "seed.yaml"
    cfg.write_text("tagger_config:\n  random_number_v1:\n    sead: 7\n")
    result = run_cli("-c", str(cfg), "tag", "--documents", pattern, "--taggers", "random_number_v1")
    assert result.returncode == 2
    assert "tagger_config.random_number_v1: unknown field 'sead' (did you mean 'seed'?)" in result.stderr


def test_dryrun_writes_nothing(tmp_path):
    pattern = corpus(tmp_path, files=2, docs=1)
    result = run_cli("tag", "--documents", pattern, "--taggers", "char_length_v1", "--dryrun")
    assert result.returncode == 0
    assert "2 file(s)" in result.stdout
    assert not (tmp_path / "attributes").exists()


def test_s3_in_and_out(tmp_path, s3_server, s3_bucket):
    client = s3_server.client()
    docs = make_docs(10)
    body = gzip.compress(("\n".join(__import__("json").dumps(d) for d in docs) + "\n").encode())
    client.put_object(Bucket=s3_bucket, Key="corpus/documents/a/part-0.jsonl.gz", Body=body)
    client.put_object(Bucket=s3_bucket, Key="corpus/documents/a/b/part-1.jsonl.gz", Body=body)
    pattern = f"s3://{s3_bucket}/corpus/documents/**/*.jsonl.gz"
    result = run_cli("tag", "--documents", pattern, "--taggers", "char_length_v1", "--processes", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    keys = s3_server.keys(s3_bucket, "corpus/attributes/")
    assert keys == [
        "corpus/attributes/char_length_v1/a/b/part-1.jsonl.gz",
        "corpus/attributes/char_length_v1/a/part-0.jsonl.gz",
    ]
    rows = read_jsonl(f"s3://{s3_bucket}/corpus/attributes/char_length_v1/a/part-0.jsonl.gz")
    assert [r["id"] for r in rows] == [d["id"] for d in docs]
    # S3 in, local out
    result = run_cli(
        "tag", "--documents", pattern, "--taggers", "bytes_length_v1", "--destination", str(tmp_path / "o"), "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(tmp_path / "o" / "a" / "b" / "part-1.jsonl.gz")) == 10


def test_s3_endpoint_from_config(tmp_path, s3_server, s3_bucket):
    pattern = corpus(tmp_path, files=1, docs=3)
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # wrong on purpose: the config must win
    dest = f"s3://{s3_bucket}/attrs"
    result = run_cli(
        "tag", "--documents", pattern, "--taggers", "char_length_v1", "--destination", dest,
        "--s3.endpoint_url", s3_server.endpoint, "--quiet", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # beside the attribute file, its completion record (the taggers it holds: see test_tag_safety.py)
    assert s3_server.keys(s3_bucket) == ["attrs/sub/.part-0.jsonl.gz.taggers.json", "attrs/sub/part-0.jsonl.gz"]


def test_list_shows_every_tagger_with_description(tmp_path):
    module = tmp_path / "extra.py"
    module.write_text(SLOW_TAGGER)
    result = run_cli("list", "--plain", "--tagger_modules", str(module))
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    names = [r[0] for r in rows]
    for name in [
        *TAG_TAGGERS,
        "uniseg_length_v1",
        "uniseg_length_paragraphs_v1",
        "uniseg_length_paragraphs_with_doc_length_v1",
        "uniseg_length_paragraphs_with_empty_v1",
        "char_length_strip_ws_v1",
        "doc_count_v1",
        "code_composition",
        "code_starcoder_taggers_v1",
        "pii_presidio_v1",
        "slow_test_tagger",
    ]:
        assert name in names
    assert all(len(r) == 3 and r[2] for r in rows)
    table = run_cli("list")
    assert table.returncode == 0 and "char_length_v1" in table.stdout


def test_help_and_usage():
    result = run_cli("tag", "--help")
    assert result.returncode == 0 and "--documents" in result.stdout and "--tagger_config" in result.stdout
    assert run_cli().returncode == 2
    assert "unknown command" in run_cli("tagg").stderr


def test_attribute_keys_in_one_process_follow_experiment_tagger_and_type(tmp_path):
    """Keys are cached per (prefix, tagger, span type): runs in one process with other experiments and tagger
    sets still get their own, sanitized keys."""
    from dolma import config as dconfig
    from dolma.commands import tag

    pattern = corpus(tmp_path, files=1, docs=2)
    for experiment, taggers in (("exp-1", FAST_TAGGERS), ("exp.2", FAST_TAGGERS[:2]), ("exp-1", FAST_TAGGERS[1:])):
        destination = str(tmp_path / "out" / f"{experiment}-{len(taggers)}")
        overrides = {"documents": [pattern], "taggers": taggers, "experiment": experiment, "quiet": True}
        assert tag.run(dconfig.build(tag.TagConfig, overrides={**overrides, "destination": destination})) == 0
        rows = read_jsonl(f"{destination}/sub/part-0.jsonl.gz")
        prefix = experiment.replace("-", "_").replace(".", "_")
        types = {"char_length_v1": "length", "whitespace_tokenizer_v1": "length", "bytes_length_v1": "bytes"}
        assert all(set(r["attributes"]) == {f"{prefix}__{t}__{types[t]}" for t in taggers} for r in rows)


def test_profile_section_profiles_the_run(tmp_path):
    """The reference's `profile` section: cProfile listing in the file given, or on stdout; one process."""
    pattern = corpus(tmp_path)
    out = tmp_path / "prof" / "tag.txt"
    config = tmp_path / "tag.yaml"
    config.write_text(
        f"documents: ['{pattern}']\ntaggers: [char_length_v1]\nprocesses: 2\nquiet: true\n"
        f"profile: {{enable: true, output: '{out}', steps: 3, sort_key: cumulative, lines: 15}}\n"
    )
    result = run_cli("-c", str(config), "tag")
    assert result.returncode == 0, result.stderr
    listing = out.read_text()
    assert "function calls" in listing and "Ordered by: cumulative time" in listing
    assert "run_unit" in listing  # the tagging ran in the profiled process
    assert len(read_jsonl(tmp_path / "attributes" / "char_length_v1" / "sub" / "part-1.jsonl.gz")) == 20

    result = run_cli("tag", "--documents", pattern, "--taggers", "bytes_length_v1", "--quiet", "--profile.enable")
    assert result.returncode == 0, result.stderr
    assert "function calls" in result.stdout and "Ordered by: internal time" in result.stdout

    result = run_cli("tag", "--documents", pattern, "--taggers", "bytes_length_v1", "--profile.sort_key", "speed")
    assert result.returncode == 2 and "profile.sort_key" in result.stderr
