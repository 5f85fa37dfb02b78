"""Checks of the committed sample corpus (tests/data/sample) and of the claims in its ground truth.

The corpus is built by benchmarks/corpus/build_sample.py; these tests only read the committed files.
"""

from __future__ import annotations

import difflib
import gzip
import ipaddress
import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
DOCS_DIR = SAMPLE / "documents"
REQUIRED_STR_FIELDS = ("id", "text", "source", "added", "created", "version")
PII_TYPES = {"EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS"}
DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


def parse_time(value: str) -> datetime:
    # Python 3.10's fromisoformat does not accept a trailing "Z".
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def files() -> list[Path]:
    return sorted(DOCS_DIR.glob("*/*.jsonl.gz"))


@pytest.fixture(scope="module")
def records(files: list[Path]) -> dict[Path, list[dict]]:
    out = {}
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            out[path] = [json.loads(line) for line in f]
    return out


@pytest.fixture(scope="module")
def docs(records: dict[Path, list[dict]]) -> dict[str, dict]:
    return {rec["id"]: rec for recs in records.values() for rec in recs}


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((SAMPLE / "ground_truth.json").read_text(encoding="utf-8"))


def test_layout_and_size(files: list[Path]) -> None:
    assert 4 <= len(files) <= 6
    subdirs = {p.parent.name for p in files}
    assert 2 <= len(subdirs) <= 3
    assert all(re.fullmatch(r"part-\d{4}\.jsonl\.gz", p.name) for p in files)
    total = sum(p.stat().st_size for p in files)
    assert 1_000_000 <= total <= 4_000_000
    committed = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert committed < 5_000_000


def test_gzip_headers_are_deterministic(files: list[Path]) -> None:
    for path in files:
        header = path.read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b", path
        assert header[4:8] == b"\0\0\0\0", f"{path}: gzip mtime is not 0"
        assert header[3] & 0x08 == 0, f"{path}: gzip header carries a file name"


def test_records_have_dolma_fields(records: dict[Path, list[dict]]) -> None:
    for path, recs in records.items():
        assert recs, path
        for rec in recs:
            for field in REQUIRED_STR_FIELDS:
                assert isinstance(rec.get(field), str), (path, rec.get("id"), field)
            assert rec["version"] == "v0"
            assert rec["source"] == path.parent.name
            parse_time(rec["added"])
            parse_time(rec["created"])
            meta = rec["metadata"]
            assert isinstance(meta, dict)
            for field in ("url", "license", "origin"):
                assert isinstance(meta.get(field), str) and meta[field], (rec["id"], field)
            assert re.match(r"https?://[a-z0-9.-]+\.[a-z]+/", meta["url"]), meta["url"]


def test_ids_unique_sorted_and_stable(records: dict[Path, list[dict]], docs: dict[str, dict]) -> None:
    all_ids = [rec["id"] for recs in records.values() for rec in recs]
    assert len(all_ids) == len(set(all_ids)) == len(docs)
    assert 1500 <= len(all_ids) <= 3000
    for path, recs in records.items():
        ids = [rec["id"] for rec in recs]
        assert ids == sorted(ids), path
        for rec in recs:
            assert re.fullmatch(re.escape(rec["source"]) + r"-\d{6}", rec["id"]), rec["id"]
    by_source: dict[str, list[int]] = {}
    for i in all_ids:
        source, _, num = i.rpartition("-")
        by_source.setdefault(source, []).append(int(num))
    for source, nums in by_source.items():
        assert sorted(nums) == list(range(len(nums))), f"{source}: ids are not contiguous from 0"


def test_urls_unique(docs: dict[str, dict]) -> None:
    urls = Counter(d["metadata"]["url"] for d in docs.values())
    assert [u for u, n in urls.items() if n > 1] == []


def test_ground_truth_files_match(files: list[Path], records: dict[Path, list[dict]], truth: dict) -> None:
    listed = {f["path"]: f for f in truth["files"]}
    assert sorted(listed) == sorted(p.relative_to(SAMPLE).as_posix() for p in files)
    for path in files:
        entry = listed[path.relative_to(SAMPLE).as_posix()]
        assert entry["num_documents"] == len(records[path])
        assert entry["bytes"] == path.stat().st_size
        assert entry["first_id"] == records[path][0]["id"]
        assert entry["last_id"] == records[path][-1]["id"]
    assert truth["num_documents"] == sum(len(r) for r in records.values())


def all_ground_truth_ids(truth: dict) -> set[str]:
    ids: set[str] = set()
    for key in ("exact_duplicates", "near_duplicates", "partial_duplicates", "templated_groups"):
        for entry in truth[key]:
            ids.update(entry["ids"])
    ids.update(truth["pii"])
    ids.update(truth["languages"]["non_english"])
    for group in (truth["low_quality"], truth["edge_cases"]):
        for id_list in group.values():
            ids.update(id_list)
    return ids


def test_ground_truth_ids_exist(docs: dict[str, dict], truth: dict) -> None:
    missing = sorted(all_ground_truth_ids(truth) - set(docs))
    assert missing == []


def test_exact_duplicates(docs: dict[str, dict], truth: dict) -> None:
    groups = truth["exact_duplicates"]
    assert len(groups) >= 5
    grouped: set[str] = set()
    for group in groups:
        ids = group["ids"]
        assert len(ids) >= 2 and len(set(ids)) == len(ids)
        assert group["original_id"] in ids
        texts = {docs[i]["text"] for i in ids}
        assert len(texts) == 1, ids
        assert len({docs[i]["metadata"]["url"] for i in ids}) == len(ids)
        grouped.update(ids)
    # Apart from the planted groups, every text is unique.
    by_text: dict[str, list[str]] = {}
    for doc_id, doc in docs.items():
        by_text.setdefault(doc["text"], []).append(doc_id)
    unplanned = [ids for ids in by_text.values() if len(ids) > 1 and not set(ids) <= grouped]
    assert unplanned == []


def test_near_duplicates(docs: dict[str, dict], truth: dict) -> None:
    pairs = truth["near_duplicates"]
    assert len(pairs) >= 5
    for pair in pairs:
        a, b = (docs[i]["text"] for i in pair["ids"])
        assert a != b
        assert pair["num_word_edits"] == len(pair["edits"]) >= 1
        ratio = difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()
        assert ratio >= 0.95, (pair["ids"], ratio)
        for edit in pair["edits"]:
            assert edit["op"] in ("replace", "delete")
            assert edit["old"] in a
            if edit["op"] == "replace":
                assert edit["new"] in b


def test_partial_duplicates(docs: dict[str, dict], truth: dict) -> None:
    entries = truth["partial_duplicates"]
    kinds = Counter(e["kind"] for e in entries)
    assert {"prefix", "copied_block", "boilerplate"} <= set(kinds)
    for entry in entries:
        ids = entry["ids"]
        assert len(ids) >= 2 and len(set(ids)) == len(ids)
        assert entry["shared_paragraphs"], ids
        for doc_id in ids:
            lines = set(docs[doc_id]["text"].split("\n"))
            for para in entry["shared_paragraphs"]:
                assert para.strip(), ids
                assert para in lines, (doc_id, para[:60])
        assert len({docs[i]["text"] for i in ids}) == len(ids), "partial duplicates must not be exact duplicates"


def test_pii(docs: dict[str, dict], truth: dict) -> None:
    pii = truth["pii"]
    assert len(pii) >= 20
    seen_types: Counter = Counter()
    phone_formats = set()
    for doc_id, items in pii.items():
        text = docs[doc_id]["text"]
        assert items
        for item in items:
            assert item["type"] in PII_TYPES
            value = item["value"]
            assert value in text, (doc_id, value)
            seen_types[item["type"]] += 1
            if item["type"] == "EMAIL_ADDRESS":
                assert re.fullmatch(r"[\w.+-]+@([a-z]+\.)?example\.(com|org)", value), value
            elif item["type"] == "IP_ADDRESS":
                assert any(ipaddress.ip_address(value) in net for net in DOC_NETS), value
            else:
                assert re.fullmatch(r"(\+1[ -])?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}", value), value
                phone_formats.add(re.sub(r"\d", "9", value))
    assert set(seen_types) == PII_TYPES
    assert len(phone_formats) >= 3


def test_languages(docs: dict[str, dict], truth: dict) -> None:
    langs = truth["languages"]
    non_english = langs["non_english"]
    assert sum(langs["counts"].values()) == len(docs)
    assert langs["counts"]["en"] == len(docs) - len(non_english)
    share = len(non_english) / len(docs)
    assert 0.07 <= share <= 0.13, share
    per_lang = Counter(non_english.values())
    assert len([lang for lang, n in per_lang.items() if n >= 5]) >= 5, per_lang
    scripts = {
        "ru": r"[\u0400-\u04ff]",
        "ja": r"[\u3040-\u30ff]",
        "zh": r"[\u4e00-\u9fff]",
        "ko": r"[\uac00-\ud7af]",
        "fr": r"[éèàçêù]",
        "de": r"[äöüß]",
        "es": r"[áéíóúñ¿¡]",
    }
    for doc_id, lang in non_english.items():
        if lang in scripts:
            assert re.search(scripts[lang], docs[doc_id]["text"]), (doc_id, lang)


def test_edge_cases(docs: dict[str, dict], truth: dict) -> None:
    edge = truth["edge_cases"]

    def texts(kind: str) -> list[str]:
        assert edge[kind], kind
        return [docs[i]["text"] for i in edge[kind]]

    assert texts("empty_text") == [""]
    assert all(t and not t.strip() for t in texts("whitespace_only"))
    assert all(len(t.split()) == 1 for t in texts("single_word"))
    assert all(len(t.encode("utf-8")) >= 150_000 for t in texts("long_document"))
    assert all(max(len(line) for line in t.split("\n")) >= 20_000 for t in texts("very_long_line"))
    assert all(any(ord(c) >= 0x1F300 for c in t) for t in texts("emoji"))
    assert all("\r\n" in t and "\t" in t for t in texts("crlf_and_tabs"))
    assert all(any(ord(c) > 127 for c in t) for t in texts("non_ascii"))
    non_ascii = {i for i, d in docs.items() if any(ord(c) > 127 for c in d["text"])}
    assert set(edge["non_ascii"]) == non_ascii
    assert all(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", t) for t in texts("cjk"))


def test_low_quality(docs: dict[str, dict], truth: dict) -> None:
    low = truth["low_quality"]
    expected = {"very_short", "bullet_list", "ellipsis_lines", "symbols", "repeated_lines", "lorem_ipsum"}
    assert expected | {"javascript", "cookie_boilerplate"} <= set(low)

    def texts(kind: str) -> list[str]:
        return [docs[i]["text"] for i in low[kind]]

    assert all(len(t) <= 100 for t in texts("very_short"))
    assert all(all(line[:1] in "•-*" for line in t.split("\n")[1:]) for t in texts("bullet_list"))
    assert all(sum(line.endswith("...") for line in t.split("\n")) >= 3 for t in texts("ellipsis_lines"))
    assert all(sum(not c.isalnum() and not c.isspace() for c in t) > len(t) / 2 for t in texts("symbols"))
    for t in texts("repeated_lines"):
        lines = t.split("\n")
        assert Counter(lines).most_common(1)[0][1] >= 5
    assert all("lorem ipsum" in t.lower() for t in texts("lorem_ipsum"))
    assert all("javascript" in t.lower() and "{" in t and "}" in t for t in texts("javascript"))
    assert all("cookie" in t.lower() for t in texts("cookie_boilerplate"))
