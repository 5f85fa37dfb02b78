"""Never lose a user's data (issue 13, items 1, 2 and 6), end to end through the CLI for every command:

- names from a config that become path components are single components, and outputs are checked after
  resolving `..` and symbolic links (S3: normalised keys) against every input and documents tree;
- a command deletes only files it can prove it wrote (tokens: its markers and journals; mix: its shard
  record; scratch and staging directories: claimed with a marker) and refuses a destination holding others;
- adding a tagger to an existing experiment runs it, keeping the earlier taggers' keys.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from dolma.executors.summary import is_run_summary
from tests.conftest import make_docs, outputs_in, read_jsonl, run_cli, write_jsonl_gz

HOSTILE_NAMES = ["..", "../..", "../documents", "/abs", "a/b", "", "."]


def corpus(root: Path, files: int = 2, docs: int = 12) -> Path:
    """<root>/documents/sub/part-<i>.jsonl.gz; returns the documents directory."""
    for i in range(files):
        write_jsonl_gz(root / "documents" / "sub" / f"part-{i}.jsonl.gz", make_docs(docs, prefix=f"f{i}-"))
    return root / "documents"


def corpus_with_work_dir(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(root, documents, work): a corpus under <tmp>/root and an empty working directory inside the root."""
    root = tmp_path / "root"
    docs = corpus(root)
    work = root / "work"
    work.mkdir()
    return root, docs, work


def train_fasttext(parts: str, model: str, *extra: str, cwd: Path | None = None):
    """`dolma train-fasttext` with part-0 of `parts` (a directory or S3 prefix) positive and part-1 negative."""
    positive, negative = f"{parts}/part-0.jsonl.gz", f"{parts}/part-1.jsonl.gz"
    return run_cli(
        "train-fasttext", "--positive", positive, "--negative", negative, "--model_path", model, *extra, cwd=cwd
    )


# the dedupe settings of the refusal tests (what is refused is the name or the place, never these)
DEDUPE_ARGS = [
    "--dedupe.documents.attribute_name",
    "dup",
    "--dedupe.documents.key",
    "$.text",
    "--bloom_filter.estimated_doc_count",
    "1000",
    "--bloom_filter.desired_false_positive_rate",
    "0.001",
]


def tree(root: Path) -> dict[str, bytes]:
    """Every file below root (links not followed) -> bytes."""
    out = {}
    for top, _dirs, names in os.walk(root):
        for name in names:
            path = Path(top) / name
            if not path.is_symlink() and not is_run_summary(path):
                out[str(path.relative_to(root))] = path.read_bytes()
    return out


def refused(result, *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    for needle in needles:
        assert needle in result.stderr, result.stderr[-2000:]


# ----------------------------------------------------------------------------------------------------------
# 1. Names that escape their directory, and outputs that resolve into the inputs
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_tag_refuses_experiment_names_that_are_not_one_component(tmp_path, name):
    root = tmp_path / "root"
    docs = corpus(root)
    before = tree(tmp_path)
    result = run_cli(
        "tag", "--documents", str(docs / "**" / "*.gz"), "--taggers", "char_length_v1", "--experiment", name
    )
    refused(result, "experiment", "not a valid name")
    assert tree(tmp_path) == before, "nothing written anywhere (inside or outside the root)"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_dedupe_refuses_names_that_are_not_one_component(tmp_path, name):
    root = tmp_path / "root"
    docs = corpus(root)
    before = tree(tmp_path)
    result = run_cli(
        "dedupe",
        "--documents",
        str(docs / "**" / "*.gz"),
        "--dedupe.name",
        name,
        "--bloom_filter.file",
        str(tmp_path / "filter.bin"),
        *DEDUPE_ARGS,
    )
    refused(result, "dedupe.name", "not a valid name")
    assert tree(tmp_path) == before


def _mix_config(tmp_path: Path, stream: dict, **top) -> Path:
    cfg = tmp_path / "mix.json"
    cfg.write_text(json.dumps({"streams": [stream], "quiet": True, **top}))
    return cfg


@pytest.mark.parametrize("field", ["name", "attributes"])
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_mix_refuses_stream_and_attribute_set_names_that_are_not_one_component(tmp_path, field, name):
    root = tmp_path / "root"
    docs = corpus(root)
    stream = {"name": "out", "documents": [str(docs / "**" / "*.gz")], "output": {"path": str(tmp_path / "mixed")}}
    stream[field] = [name] if field == "attributes" else name
    cfg = _mix_config(tmp_path, stream)
    before = tree(tmp_path)
    result = run_cli("-c", str(cfg), "mix")
    refused(result, f"streams[0].{field}", "not a valid name")
    assert tree(tmp_path) == before


def test_mix_stream_name_from_the_issue_cannot_overwrite_documents(tmp_path):
    root = tmp_path / "root"
    docs = corpus(root)
    stream = {
        "name": "../documents/sub/part",
        "documents": [str(docs / "**" / "*.gz")],
        "output": {"path": str(root / "mixed")},
    }
    before = tree(root / "documents")
    refused(run_cli("-c", str(_mix_config(tmp_path, stream)), "mix"), "not a valid name")
    assert tree(root / "documents") == before


# Destinations given as paths (tokens, mix output.path, train-fasttext model_path) that land in the inputs once
# `..` is resolved, relative to a working directory inside the root.
HOSTILE_DIRS = {
    "dotdot into documents": "../documents/sub",
    "up to an ancestor": "../..",
    "documents/x/..": "../documents/x/..",
    "absolute documents": "{root}/documents",
    "empty": "",
}


@pytest.mark.parametrize("dest", HOSTILE_DIRS.values(), ids=HOSTILE_DIRS.keys())
def test_tokens_refuses_destinations_that_resolve_into_the_inputs(tmp_path, dest):
    root, docs, work = corpus_with_work_dir(tmp_path)
    (docs / "sub" / "part-notes.txt").write_text("not a shard")
    before = tree(tmp_path)
    result = run_cli(
        "tokens",
        "--documents",
        str(docs / "**" / "*.gz"),
        "--destination",
        dest.format(root=root),
        "--quiet",
        cwd=work,
    )
    refused(result, "destination")
    assert tree(tmp_path) == before, "no input (nor the unrelated part-notes.txt) deleted, nothing written"


@pytest.mark.parametrize("dest", HOSTILE_DIRS.values(), ids=HOSTILE_DIRS.keys())
def test_mix_refuses_output_paths_that_resolve_into_the_inputs(tmp_path, dest):
    root, docs, work = corpus_with_work_dir(tmp_path)
    stream = {"name": "out", "documents": [str(docs / "**" / "*.gz")], "output": {"path": dest.format(root=root)}}
    cfg = _mix_config(tmp_path, stream)
    before = tree(tmp_path)
    result = run_cli("-c", str(cfg), "mix", cwd=work)
    refused(result, "output.path" if not dest else "refusing to write into")
    assert tree(tmp_path) == before


HOSTILE_FILES = {
    "dotdot into documents": "../documents/sub/model.bin",
    "documents/x/..": "../documents/x/../model.bin",
    "absolute documents": "{root}/documents/model.bin",
    "over an input": "../documents/sub/part-0.jsonl.gz",
    "empty": "",
}


@pytest.mark.parametrize("model", HOSTILE_FILES.values(), ids=HOSTILE_FILES.keys())
def test_train_fasttext_refuses_model_paths_in_the_inputs(tmp_path, model):
    root, docs, work = corpus_with_work_dir(tmp_path)
    model = model.format(root=root)
    before = tree(tmp_path)
    result = train_fasttext(str(docs / "sub"), model, cwd=work)
    refused(result, "model_path" if not model else "refusing to write")
    assert tree(tmp_path) == before


def test_train_fasttext_refuses_a_report_over_an_input(tmp_path):
    docs = corpus(tmp_path / "root")
    before = tree(tmp_path)
    result = train_fasttext(
        str(docs / "sub"), str(tmp_path / "model.bin"), "--report", str(docs / "sub" / "part-1.jsonl.gz")
    )
    refused(result, "one of the input files")
    assert tree(tmp_path) == before


# Symbolic links: a destination (or the attribute set directory itself) that is a link to the documents.


@pytest.mark.parametrize("ignore_existing", [False, True])
def test_tag_refuses_an_attribute_set_that_links_to_the_documents(tmp_path, ignore_existing):
    docs = corpus(tmp_path)
    (tmp_path / "attributes").mkdir()
    (tmp_path / "attributes" / "exp").symlink_to(docs, target_is_directory=True)
    (tmp_path / "linked").symlink_to(docs, target_is_directory=True)
    before = tree(docs)
    flags = ["--ignore_existing"] if ignore_existing else []
    pattern = str(docs / "**" / "*.gz")
    result = run_cli("tag", "--documents", pattern, "--taggers", "char_length_v1", "--experiment", "exp", *flags)
    refused(result, "refusing to write", "resolves to", "one of the input files")
    result = run_cli(
        "tag", "--documents", pattern, "--taggers", "char_length_v1", "--destination", str(tmp_path / "linked"), *flags
    )
    refused(result, "refusing to write", "one of the input files")
    assert tree(docs) == before


def test_dedupe_refuses_linked_attribute_sets_and_filters_in_the_documents(tmp_path):
    docs = corpus(tmp_path)
    (tmp_path / "attributes").mkdir()
    (tmp_path / "attributes" / "dd").symlink_to(docs, target_is_directory=True)
    (tmp_path / "filters").symlink_to(docs / "sub", target_is_directory=True)
    before = tree(docs)
    common = [
        "dedupe",
        "--documents",
        str(docs / "**" / "*.gz"),
        *DEDUPE_ARGS,
        "--ignore_existing",
    ]
    result = run_cli(*common, "--dedupe.name", "dd", "--bloom_filter.file", str(tmp_path / "f.bin"))
    refused(result, "refusing to write", "one of the input files")
    result = run_cli(*common, "--dedupe.name", "ok", "--bloom_filter.file", str(tmp_path / "filters" / "f.bin"))
    refused(result, "refusing to write", "documents tree")
    assert tree(docs) == before


def test_mix_tokens_and_fasttext_refuse_destinations_linked_to_the_documents(tmp_path):
    docs = corpus(tmp_path)
    (tmp_path / "to-docs").symlink_to(docs / "sub", target_is_directory=True)
    (tmp_path / "to-root").symlink_to(docs, target_is_directory=True)
    before = tree(docs)
    pattern = str(docs / "**" / "*.gz")
    for dest in ("to-docs", "to-root", "to-root/newdir"):
        stream = {"name": "out", "documents": [pattern], "output": {"path": str(tmp_path / dest)}}
        refused(run_cli("-c", str(_mix_config(tmp_path, stream)), "mix"), "refusing to write", "resolves to")
        refused(run_cli("tokens", "--documents", pattern, "--destination", str(tmp_path / dest)), "resolves to")
        refused(
            run_cli(
                "tokens",
                "--documents",
                pattern,
                "--destination",
                str(tmp_path / "t"),
                "--global_shuffle.enabled",
                "--global_shuffle.work_dir",
                str(tmp_path / dest),
            ),
            "resolves to",
        )
        result = train_fasttext(str(docs / "sub"), str(tmp_path / dest / "m.bin"))
        refused(result, "refusing to write", "resolves to")
    assert tree(docs) == before


@pytest.mark.s3
def test_s3_keys_are_normalised_before_the_check(tmp_path, s3_server, s3_bucket):
    """`..`, `.` and `//` in S3 destinations cannot reach the documents (a store may resolve such keys as paths)."""
    docs = corpus(tmp_path)
    client = s3_server.client()
    for path in sorted(docs.rglob("*.gz")):
        client.put_object(Bucket=s3_bucket, Key=f"c/{path.relative_to(tmp_path)}", Body=path.read_bytes())
    before = s3_server.keys(s3_bucket)
    pattern = f"s3://{s3_bucket}/c/documents/**/*.gz"
    result = run_cli(
        "tag",
        "--documents",
        pattern,
        "--taggers",
        "char_length_v1",
        "--destination",
        f"s3://{s3_bucket}/c/attributes/../documents",
    )
    refused(result, "refusing to write", "one of the input files")
    result = run_cli(
        "tag",
        "--documents",
        pattern,
        "--taggers",
        "char_length_v1",
        "--destination",
        f"s3://{s3_bucket}/c//documents/./x",
    )
    refused(result, "documents tree")
    refused(
        run_cli("tokens", "--documents", pattern, "--destination", f"s3://{s3_bucket}/c/documents/sub/.."),
        "holds the input file",
    )
    stream = {"name": "out", "documents": [pattern], "output": {"path": f"s3://{s3_bucket}/c/x/../documents/sub"}}
    refused(run_cli("-c", str(_mix_config(tmp_path, stream)), "mix"), "holds the input file")
    result = train_fasttext(f"s3://{s3_bucket}/c/documents/sub", f"s3://{s3_bucket}/c/m/../documents/m.bin")
    refused(result, "documents tree")
    assert s3_server.keys(s3_bucket) == before


# ----------------------------------------------------------------------------------------------------------
# 2. A command removes only what it can prove it wrote
# ----------------------------------------------------------------------------------------------------------


def tokens(docs: Path, dest: Path | str, *extra: str):
    return run_cli(
        "tokens",
        "--documents",
        str(docs / "**" / "*.gz"),
        "--destination",
        str(dest),
        "--quiet",
        "--files_per_process",
        "1",
        *extra,
    )


def visible(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(root).items() if not k.startswith(".")}


@pytest.mark.parametrize("shuffle", [[], ["--global_shuffle.enabled"]])
@pytest.mark.parametrize("foreign", ["part-notes.txt", "part-0-00003.npy", "README.md"])
def test_tokens_refuses_a_destination_holding_files_it_did_not_write(tmp_path, shuffle, foreign):
    docs = corpus(tmp_path / "root")
    dest = tmp_path / "tokens"
    dest.mkdir()
    (dest / foreign).write_text("the user's")
    result = tokens(docs, dest, *shuffle)
    refused(result, foreign, "did not write")
    assert tree(dest) == {foreign: b"the user's"}


def test_tokens_rerun_removes_only_its_own_earlier_shards(tmp_path):
    docs = corpus(tmp_path / "root", files=2, docs=40)
    dest, fresh = tmp_path / "tokens", tmp_path / "fresh"
    assert tokens(docs, dest, "--max_size", "200").returncode == 0
    small = visible(dest)
    assert len(small) > 8, "many small shards"
    # a rerun with larger shards replaces them: the shards it does not write again are removed
    rerun = tokens(docs, dest, "--max_size", "100000", "--ignore_existing")
    assert rerun.returncode == 0, rerun.stderr
    assert tokens(docs, fresh, "--max_size", "100000").returncode == 0
    assert visible(dest) == visible(fresh) and len(visible(dest)) == 4
    marker = json.loads((dest / ".part-0.done").read_text())
    assert marker["outputs"] == ["part-0-00000.npy", "part-0-00000.csv.gz"]
    assert not list(dest.glob(".*.journal"))
    # a file the user drops in later is never removed: the next run is refused instead
    (dest / "part-notes.txt").write_text("mine")
    refused(tokens(docs, dest, "--ignore_existing"), "part-notes.txt")
    assert (dest / "part-notes.txt").read_text() == "mine" and visible(dest).keys() == {
        *visible(fresh),
        "part-notes.txt",
    }


def test_tokens_global_shuffle_rerun_removes_only_its_own_shards(tmp_path):
    docs = corpus(tmp_path / "root", files=3, docs=30)
    dest, fresh = tmp_path / "tokens", tmp_path / "fresh"
    # an unshuffled run first, then a global shuffle into the same destination: the groups' shards are taken
    # over (their markers list them) and replaced by the shuffled ones
    assert tokens(docs, dest, "--max_size", "300").returncode == 0
    assert len([n for n in visible(dest) if n.startswith("part-2-")]) > 0
    shuffled = tokens(docs, dest, "--max_size", "300", "--global_shuffle.enabled")
    assert shuffled.returncode == 0, shuffled.stderr
    assert tokens(docs, fresh, "--max_size", "300", "--global_shuffle.enabled").returncode == 0
    assert visible(dest) == visible(fresh) and all(n.startswith("part-0-") for n in visible(dest))
    assert [p.name for p in outputs_in(dest) if p.name.startswith(".")] == [".shuffle.done"]
    # a redo of the shuffle removes its own earlier shards only; a file the user added is refused, not removed
    (dest / "part-notes.txt").write_text("mine")
    refused(tokens(docs, dest, "--max_size", "300", "--global_shuffle.enabled", "--ignore_existing"), "part-notes")
    assert (dest / "part-notes.txt").read_text() == "mine"
    (dest / "part-notes.txt").unlink()
    redo = tokens(docs, dest, "--max_size", "100000", "--global_shuffle.enabled", "--ignore_existing")
    assert redo.returncode == 0, redo.stderr
    assert sorted(visible(dest)) == ["part-0-00000.csv.gz", "part-0-00000.npy"]
    # with a work_dir, only a subdirectory of it that tokens claimed is removed, never the user's own files
    work = tmp_path / "work"
    (work / "mine").mkdir(parents=True)
    result = tokens(docs, tmp_path / "t2", "--global_shuffle.enabled", "--global_shuffle.work_dir", str(work))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in work.iterdir()) == ["mine"]


def test_tokens_refuses_a_scratch_directory_it_did_not_create(tmp_path):
    docs = corpus(tmp_path / "root")
    dest = tmp_path / "tokens"
    (dest / ".shuffle-work").mkdir(parents=True)
    (dest / ".shuffle-work" / "keep.txt").write_text("mine")
    refused(tokens(docs, dest, "--global_shuffle.enabled"), ".shuffle-work", "keep.txt")
    assert (dest / ".shuffle-work" / "keep.txt").read_text() == "mine"


def test_mix_never_removes_shard_named_files_it_did_not_write(tmp_path):
    docs = corpus(tmp_path / "root", files=2, docs=30)
    out = tmp_path / "mixed"
    stream = {
        "name": "out",
        "documents": [str(docs / "**" / "*.gz")],
        "output": {"path": str(out), "max_size_in_bytes": 1500},
    }
    out.mkdir()
    (out / "out-0007.jsonl.gz").write_bytes(b"another tool's shard")
    refused(run_cli("-c", str(_mix_config(tmp_path, stream)), "mix"), "out-0007.jsonl.gz", "not written by it")
    assert tree(out) == {"out-0007.jsonl.gz": b"another tool's shard"}
    (out / "out-0007.jsonl.gz").unlink()
    assert run_cli("-c", str(_mix_config(tmp_path, stream)), "mix").returncode == 0
    many = visible(out)
    assert len(many) > 3
    # rerun with bigger shards: its own extra shards (listed in its record) go, a foreign file stays
    (out / "notes.txt").write_text("mine")
    stream["output"]["max_size_in_bytes"] = 10**6
    assert run_cli("-c", str(_mix_config(tmp_path, stream)), "mix").returncode == 0
    assert sorted(visible(out)) == ["notes.txt", "out-0000.jsonl.gz"]
    # a staging directory that is not the stream's own is refused, never removed
    stream["output"]["max_size_in_bytes"] = 5000
    from dolma.config import build
    from mixers.mix_config import Stream
    from mixers.mix_parts import STAGING_PREFIX
    from mixers.mix_publish import stream_fingerprint

    staging = out / f"{STAGING_PREFIX}out-{stream_fingerprint(build(Stream, overrides=stream), None)}"
    staging.mkdir()
    (staging / "keep.txt").write_text("mine")
    refused(run_cli("-c", str(_mix_config(tmp_path, stream)), "mix"), "keep.txt", "did not create")
    assert (staging / "keep.txt").read_text() == "mine"


# ----------------------------------------------------------------------------------------------------------
# 6. Adding a tagger to an existing experiment
# ----------------------------------------------------------------------------------------------------------

FLAKY_TAGGER = textwrap.dedent(
    """
    import os
    from dolma.documents import Span
    from dolma.registry import register
    from dolma.tagger import Tagger

    @register("flaky_test_tagger")
    class FlakyTagger(Tagger):
        '''Counts words; fails on document f1-5 while FLAKY_FAIL is set (a stand-in for a crash mid-run).'''

        def predict(self, doc):
            if doc.id == "f1-5" and os.environ.get("FLAKY_FAIL"):
                raise RuntimeError("flaky tagger failed")
            return [Span(0, len(doc.text), "words", float(len(doc.text.split())))]
    """
)


def tag(pattern: str, *args: str, env: dict | None = None):
    return run_cli("tag", "--documents", pattern, "--quiet", "--retries", "0", *args, env=env)


def attribute_keys(path: Path) -> set[str]:
    return {k for row in read_jsonl(path) for k in row["attributes"]}


@pytest.mark.parametrize("where", ["experiment", "destination"])
def test_adding_a_tagger_to_an_experiment_runs_it_and_keeps_the_first(tmp_path, where):
    docs = corpus(tmp_path)
    pattern = str(docs / "**" / "*.gz")
    target = ["--experiment", "exp"] if where == "experiment" else ["--destination", str(tmp_path / "out")]
    out = tmp_path / ("attributes/exp" if where == "experiment" else "out") / "sub"
    prefix = "exp" if where == "experiment" else None
    assert tag(pattern, "--taggers", "char_length_v1", *target).returncode == 0
    first = tree(out)
    second = tag(pattern, "--taggers", "char_length_v1", "whitespace_tokenizer_v1", *target)
    assert second.returncode == 0, second.stderr
    key = lambda t, span: f"{prefix or t}__{t}__{span}"  # noqa: E731
    for i in range(2):
        assert attribute_keys(out / f"part-{i}.jsonl.gz") == {
            key("char_length_v1", "length"),
            key("whitespace_tokenizer_v1", "length"),
        }
        record = json.loads((out / f".part-{i}.jsonl.gz.taggers.json").read_text())
        assert record["completed"] == ["char_length_v1", "whitespace_tokenizer_v1"]
    # the same bytes as tagging with both from the start
    fresh_root = tmp_path / "fresh"
    fresh_docs = corpus(fresh_root)
    fresh_target = ["--experiment", "exp"] if where == "experiment" else ["--destination", str(fresh_root / "out")]
    both = tag(
        str(fresh_docs / "**" / "*.gz"), "--taggers", "char_length_v1", "whitespace_tokenizer_v1", *fresh_target
    )
    assert both.returncode == 0, both.stderr
    assert tree(out) == tree(fresh_root / ("attributes/exp" if where == "experiment" else "out") / "sub")
    assert tree(out) != first
    # complete now: a third run skips both files
    mtimes = [p.stat().st_mtime_ns for p in outputs_in(out)]
    third = run_cli("tag", "--documents", pattern, "--taggers", "char_length_v1", "whitespace_tokenizer_v1", *target)
    logged = third.stderr + third.stdout
    assert third.returncode == 0 and "resuming: 2 of 2 units already complete" in logged, logged
    assert [p.stat().st_mtime_ns for p in outputs_in(out)] == mtimes


def test_an_added_tagger_that_fails_loses_nothing_and_resumes(tmp_path):
    docs = corpus(tmp_path)
    pattern = str(docs / "**" / "*.gz")
    module = tmp_path / "flaky.py"
    module.write_text(FLAKY_TAGGER)
    taggers = ["--tagger_modules", str(module), "--experiment", "exp"]
    assert tag(pattern, "--taggers", "char_length_v1", *taggers).returncode == 0
    out = tmp_path / "attributes" / "exp" / "sub"
    first = tree(out)
    failed = tag(pattern, "--taggers", "char_length_v1", "flaky_test_tagger", *taggers, env={"FLAKY_FAIL": "1"})
    assert failed.returncode == 1 and "flaky tagger failed" in failed.stderr
    after_failure = tree(out)
    assert after_failure["part-1.jsonl.gz"] == first["part-1.jsonl.gz"], "the failed file keeps char_length_v1"
    assert json.loads(after_failure[".part-1.jsonl.gz.taggers.json"])["completed"] == ["char_length_v1"]
    assert attribute_keys(out / "part-0.jsonl.gz") == {"exp__char_length_v1__length", "exp__flaky_test_tagger__words"}
    resumed = tag(pattern, "--taggers", "char_length_v1", "flaky_test_tagger", *taggers)
    assert resumed.returncode == 0, resumed.stderr
    assert tree(out)["part-0.jsonl.gz"] == after_failure["part-0.jsonl.gz"], "the finished file is skipped"
    for i in range(2):
        rows = read_jsonl(out / f"part-{i}.jsonl.gz")
        assert all(
            set(r["attributes"]) == {"exp__char_length_v1__length", "exp__flaky_test_tagger__words"} for r in rows
        )


def test_ignore_existing_redoes_the_given_taggers_and_keeps_the_others(tmp_path):
    docs = corpus(tmp_path)
    pattern = str(docs / "**" / "*.gz")
    both = ["char_length_v1", "whitespace_tokenizer_v1"]
    assert tag(pattern, "--taggers", *both, "--experiment", "exp").returncode == 0
    out = tmp_path / "attributes" / "exp" / "sub"
    full = tree(out)
    redo = tag(pattern, "--taggers", "whitespace_tokenizer_v1", "--experiment", "exp", "--ignore_existing")
    assert redo.returncode == 0, redo.stderr
    assert tree(out) == full, "char_length_v1 kept; whitespace_tokenizer_v1 recomputed to the same values"


def test_attribute_files_without_a_record_keep_their_keys(tmp_path):
    """Files written before records existed (or by a run killed between file and record) hold unknown keys."""
    docs = corpus(tmp_path)
    pattern = str(docs / "**" / "*.gz")
    out = tmp_path / "attributes" / "exp" / "sub"
    rows = [{"id": d["id"], "attributes": {"exp__old_tagger__x": [[0, 1, 0.5]]}} for d in make_docs(12, "f0-")]
    write_jsonl_gz(out / "part-0.jsonl.gz", rows)
    result = tag(pattern, "--taggers", "char_length_v1", "--experiment", "exp")
    assert result.returncode == 0, result.stderr
    assert attribute_keys(out / "part-0.jsonl.gz") == {"exp__old_tagger__x", "exp__char_length_v1__length"}
    assert attribute_keys(out / "part-1.jsonl.gz") == {"exp__char_length_v1__length"}
    # an existing file that does not mirror the documents is an error naming it, and is left as it was
    write_jsonl_gz(out / "part-1.jsonl.gz", rows[:3])
    (out / ".part-1.jsonl.gz.taggers.json").unlink()
    bad = tag(pattern, "--taggers", "char_length_v1", "--experiment", "exp")
    assert bad.returncode == 1 and "part-1.jsonl.gz" in bad.stderr and "does not mirror" in bad.stderr
    assert [r["id"] for r in read_jsonl(out / "part-1.jsonl.gz")] == ["f0-0", "f0-1", "f0-2"]
