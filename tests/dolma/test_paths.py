"""dolma.paths, the one place for path safety: names, outputs checked after resolving `..` and links (local
and S3 keys), and directories a command may remove only when it claimed them."""

from __future__ import annotations

import os

import pytest

from dolma import atomic
from dolma.errors import PathSafetyError
from dolma.paths import (
    OWNER_MARKER,
    canonical,
    check_claimable,
    check_name,
    check_outputs,
    check_path,
    claim_dir,
    normalize_s3,
    remove_claimed_dir,
)

HOSTILE_NAMES = ["..", ".", "../..", "../documents", "/abs", "a/b", "", "a\\b", "x\0y"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_refused_with_the_field(name):
    with pytest.raises(PathSafetyError, match=r"experiment: .* is not a valid name"):
        check_name(name, "experiment")


@pytest.mark.parametrize("name", ["exp", "my-exp.v2", "..x", "x..", "a b", ".hidden"])
def test_single_components_are_names(name):
    assert check_name(name, "experiment") == name


@pytest.mark.parametrize("value", ["", "  ", "a\0b"])
def test_empty_output_paths_are_refused(value):
    with pytest.raises(PathSafetyError, match="destination"):
        check_path(value, "destination")


@pytest.mark.parametrize(
    "url, expected",
    [
        ("s3://b/a/../documents/x.gz", "s3://b/documents/x.gz"),
        ("s3://b/documents//sub/./x.gz", "s3://b/documents/sub/x.gz"),
        ("s3://b/../../x", "s3://b/x"),
        ("s3://b/documents/sub/..", "s3://b/documents"),
    ],
)
def test_s3_keys_are_normalised(url, expected):
    assert normalize_s3(url) == expected
    assert canonical(url) == expected


def test_local_paths_resolve_links_and_dots(tmp_path):
    (tmp_path / "documents" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "documents", target_is_directory=True)
    real = os.path.realpath(tmp_path)
    assert canonical(str(tmp_path / "link" / "sub" / "a.gz")) == f"{real}/documents/sub/a.gz"
    assert canonical(str(tmp_path / "attributes" / ".." / "documents")) == f"{real}/documents"
    file_link = tmp_path / "f.gz"
    file_link.symlink_to(tmp_path / "documents" / "sub" / "a.gz")
    assert canonical(str(file_link)) == f"{real}/documents/sub/a.gz"


def _inputs(tmp_path):
    doc = tmp_path / "r" / "documents" / "sub" / "a.gz"
    doc.parent.mkdir(parents=True)
    doc.write_bytes(b"")
    return [str(doc)]


@pytest.mark.parametrize(
    "files, dirs, message",
    [
        (["r/attributes/../documents/sub/a.gz"], [], "one of the input files"),
        (["r/attributes/x/../../documents/new.gz"], [], "inside the documents tree"),
        (["r/link/sub/a.gz"], [], "one of the input files"),
        (["r/link/other/a.gz"], [], "inside the documents tree"),
        (["r/documents/sub/../sub/model.bin"], [], "inside the documents tree"),
        ([], ["r/documents/sub/.."], "holds the input file"),
        ([], ["r"], "holds the input file"),
        ([], ["r/link"], "holds the input file"),
        ([], ["r/link2/tokens"], "inside the documents tree"),
    ],
)
def test_outputs_are_checked_after_resolving(tmp_path, files, dirs, message):
    inputs = _inputs(tmp_path)
    (tmp_path / "r" / "link").symlink_to(tmp_path / "r" / "documents", target_is_directory=True)
    (tmp_path / "r" / "link2").symlink_to(tmp_path / "r" / "documents" / "sub", target_is_directory=True)
    with pytest.raises(PathSafetyError, match=message):
        check_outputs("test", inputs, [str(tmp_path / f) for f in files], [str(tmp_path / d) for d in dirs])


def test_an_output_beside_the_inputs_is_refused_without_a_documents_component(tmp_path):
    doc = tmp_path / "corpus" / "a.jsonl"
    doc.parent.mkdir()
    doc.write_text("")
    with pytest.raises(PathSafetyError, match="a directory that holds input files"):
        check_outputs("test", [str(doc)], [str(tmp_path / "corpus" / "model.bin")], document_dir=None)
    check_outputs("test", [str(doc)], [str(tmp_path / "model.bin")], [str(tmp_path / "corpus2")])


def test_ordinary_layouts_pass(tmp_path):
    inputs = _inputs(tmp_path)
    check_outputs(
        "test",
        inputs,
        [str(tmp_path / "r" / "attributes" / "exp" / "sub" / "a.gz"), str(tmp_path / "filter.bin")],
        [str(tmp_path / "r" / "tokens"), str(tmp_path / "r" / "mixed" / "out")],
    )


def test_s3_outputs_are_checked_on_normalised_keys():
    inputs = ["s3://b/corpus/documents/sub/a.gz"]
    with pytest.raises(PathSafetyError, match="one of the input files"):
        check_outputs("test", inputs, ["s3://b/corpus/attributes/../documents/sub/a.gz"])
    with pytest.raises(PathSafetyError, match="inside the documents tree"):
        check_outputs("test", inputs, ["s3://b/corpus//documents/./x/a.gz"])
    with pytest.raises(PathSafetyError, match="holds the input file"):
        check_outputs("test", inputs, dirs=["s3://b/corpus/documents/sub/x/.."])
    check_outputs("test", inputs, ["s3://b/corpus/attributes/x/sub/a.gz"], ["s3://other/corpus/documents"])


def test_claimed_directories_are_the_only_ones_removed(tmp_path):
    own = tmp_path / "scratch"
    claim_dir(str(own), "test")
    (own / "sub").mkdir()
    (own / "sub" / "x.tok").write_bytes(b"x")
    claim_dir(str(own), "test")  # an earlier run's (marked) directory is accepted again
    remove_claimed_dir(str(own))
    assert not own.exists()

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(PathSafetyError, match=r"notes\.txt"):
        check_claimable(str(foreign), "test")
    with pytest.raises(PathSafetyError, match="did not create"):
        claim_dir(str(foreign), "test")
    remove_claimed_dir(str(foreign))
    assert (foreign / "notes.txt").read_text() == "keep me"

    empty = tmp_path / "empty"
    empty.mkdir()
    claim_dir(str(empty), "test")  # a run killed between mkdir and the marker left it empty
    assert (empty / OWNER_MARKER).exists()


@pytest.mark.s3
def test_claimed_directories_on_s3(s3_server, s3_bucket):
    root = f"s3://{s3_bucket}/rt"
    claim_dir(f"{root}/staging", "test")
    for name in ("staging/one.json", "staging/sub/two.json", "staging-sibling.json"):
        atomic.write_bytes(f"{root}/{name}", b"{}")
    remove_claimed_dir(f"{root}/staging")
    assert s3_server.keys(s3_bucket) == ["rt/staging-sibling.json"]
    atomic.write_bytes(f"{root}/foreign/data.json", b"{}")
    with pytest.raises(PathSafetyError, match=r"data\.json"):
        claim_dir(f"{root}/foreign", "test")
    remove_claimed_dir(f"{root}/foreign")
    assert "rt/foreign/data.json" in s3_server.keys(s3_bucket)
