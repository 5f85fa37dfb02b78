"""All 27 named URL list taggers against the reference 1.2.1, on the sample corpus's URLs plus edge cases.

The reference downloads its lists from dolma-artifacts.org; here a `sitecustomize` module (written by the test, on
the reference's PYTHONPATH) points each of its list taggers at the small lists built below: local files, and one
served over http on 127.0.0.1, which both toolkits fetch. The reference's `*_abp_v1` taggers import `adblock`, which
its venv lacks: the test lends it ours (the same abi3 wheel). Every row must be equal except the documented
intended differences (docs/compatibility.md), listed per tagger in INTENDED.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import adblock

from taggers.url_lists import NAMED_LISTS, PUBLIC_BASE, env_var
from tests.conftest import read_jsonl, run_cli
from tests.helpers.reference import SHIMS, prepare, reference_env, reference_python
from tests.taggers.test_jigsaw_models import ModelServer

SITECUSTOMIZE = """
import json, os
if os.environ.get("TEST_URL_LISTS"):
    from dolma.core.registry import TaggerRegistry
    import dolma.taggers
    for name, paths in json.loads(os.environ["TEST_URL_LISTS"]).items():
        TaggerRegistry.get(name).BLOCKLIST_PATHS = paths
"""

PRINT_PATHS = """
import json
from dolma.core.registry import TaggerRegistry
import dolma.taggers
print(json.dumps({n: list(getattr(c, "BLOCKLIST_PATHS", [])) for n, c in TaggerRegistry.items()}))
"""

HOSTS = """# hosts file
0.0.0.0 www.sqlite.org
0.0.0.0 kingjamesbibleonline.org
127.0.0.1 Shop.Example.COM
0.0.0.0 web.archive.org  # trailing comment
bücher.de
0.0.0.0 xn--mnchen-3ya.de
0.0.0.0 bad.com
"""

DOMAINS = "docs.python.org\nm.example.com\nwww.example.org\n1.2.3.4\nbad.com\n"

PHISHING = "status.example.com\nforum.example.com\nbad.com\n"

WIKIDATA = [
    [{"url": "https://httpd.apache.org/"}, {"url": "https://www.debian.org/"}],
    [{"url": "https://news.bbc.co.uk/"}, {"url": "https://blog.example.com/x"}, {"url": "https://münchen.de/"}],
]

BRAVE = """[Adblock Plus 2.0]
! plain rules, exceptions and anchors
||sqlite.org^
@@||www.sqlite.org/testing.html
||example.com^
@@||news.example.com^
/debmake-doc/*
||ads.bad.com^
||tracker.net^$third-party
||doc.com^$document
||img.only.com^$image
|http://start.com/
"""

OISD = "[Adblock Plus]\n||kingjamesbibleonline.org^\n||garden-club.example.com^\n||bad.com^\n"

EDGE_URLS = {
    "plain": "http://bad.com/x",
    "www": "https://www.bad.com",
    "sub": "https://sub.bad.com/p",
    "upper": "HTTP://BAD.COM/X",
    "port": "http://bad.com:8080/a?q=1#f",
    "creds": "http://user:pw@bad.com:81/",
    "noscheme": "bad.com/x",
    "idn": "http://münchen.de/",
    "idn2": "http://bücher.de/",
    "ip": "http://1.2.3.4/a",
    "spaces": "  http://bad.com  ",
    "cc": "http://other.co.uk/",
    "bbc": "http://x.bbc.co.uk/",
    "ads": "http://ads.bad.com/",
    "tracker": "http://tracker.net/",
    "doc": "http://doc.com/",
    "img": "http://img.only.com/",
    "start": "http://start.com/page",
    "archive": "http://web.archive.org/web/1",
    "empty": "",
}

# Intended differences (docs/compatibility.md), by the test list a tagger reads: the ids that differ.
INTENDED = {
    # the reference drops a non-ASCII host line (or stops on one after an IP); a URL with surrounding spaces
    # is not found there
    "hosts.txt": {"url-idn2", "url-spaces"},
    "domains": {"url-spaces"},
    "domains.txt.gz": {"url-spaces"},
    "links.txt": set(),
    # the reference takes the last two labels as the registered domain (every *.co.uk is "listed")
    "response.json": {"url-cc"},
    # a page is first-party to itself (`$third-party` does not apply) and is a document (`$document` does)
    "brave.txt": {"url-tracker", "url-doc"},
    "oisd_small_abp.txt.gz": {"url-spaces"},
}
# Test lists of each format, given in turn to the taggers of that format (all 27 run).
BY_FORMAT = {
    "domains": ["hosts.txt", "domains", "domains.txt.gz"],
    "links": ["links.txt"],
    "wikidata": ["response.json"],
    "abp": ["brave.txt", "oisd_small_abp.txt.gz"],
}


def attribute_rows(root: Path, tagger: str) -> dict[str, dict]:
    rows = {}
    files = sorted((root / "attributes" / tagger).rglob("*.jsonl.gz"))
    assert files, f"no attributes for {tagger} under {root}"
    for path in files:
        for row in read_jsonl(path):
            rows[row["id"]] = row["attributes"]
    return rows


def test_named_lists_match_the_reference(tmp_path):
    python = reference_python()
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "hosts.txt").write_text(HOSTS, encoding="utf-8")
    (lists / "domains").write_text(DOMAINS, encoding="utf-8")
    (lists / "links.txt").write_text(
        "\n".join(
            [
                "docs.python.org/3/library/functions.html",
                "www.sqlite.org/testing.html",
                "bad.com/x",
                "xn--mnchen-3ya.de",
                "1.2.3.4/a",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    (lists / "response.json").write_text("\n".join(json.dumps(line) for line in WIKIDATA) + "\n", encoding="utf-8")
    (lists / "brave.txt").write_text(BRAVE, encoding="utf-8")
    (lists / "oisd_small_abp.txt.gz").write_bytes(gzip.compress(OISD.encode()))
    server = ModelServer({"/phishing/domains.txt.gz": gzip.compress(PHISHING.encode())})
    try:
        where = {name: str(lists / name) for name in INTENDED}
        where["domains.txt.gz"] = server.url + "/phishing/domains.txt.gz"
        given: dict[str, str] = {}  # tagger -> test list
        for fmt, files in BY_FORMAT.items():
            names = sorted(n for n, (f, _) in NAMED_LISTS.items() if f == fmt)
            given.update({name: files[i % len(files)] for i, name in enumerate(names)})
        assert len(given) == 27 and set(given.values()) == set(INTENDED)
        paths = {name: [where[file]] for name, file in given.items()}
        docs = [{"id": f"url-{k}", "text": f"doc {k}", "metadata": {"url": u}} for k, u in EDGE_URLS.items()]
        extra = {"urls": docs}
        ours = prepare(tmp_path / "ours", extra)
        theirs = prepare(tmp_path / "theirs", extra)
        taggers = list(paths)

        site = tmp_path / "ref-site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        (site / "adblock").symlink_to(Path(adblock.__file__).parent)
        env = reference_env(tmp_path)
        env.update({"PYTHONPATH": f"{site}:{SHIMS}", "TEST_URL_LISTS": json.dumps(paths)})

        unpatched = {k: v for k, v in env.items() if k != "TEST_URL_LISTS"}
        published = subprocess.run(
            [str(python), "-c", PRINT_PATHS], capture_output=True, text=True, env=unpatched, cwd=tmp_path
        )
        assert published.returncode == 0, published.stderr[-3000:]
        ref_paths = json.loads(published.stdout.strip().splitlines()[-1])
        for name, (_fmt, files) in NAMED_LISTS.items():  # the public sources our error messages name
            assert ref_paths[name] == [PUBLIC_BASE + f for f in files], name

        # one reference worker: with two, its list loading once failed ("Blocklist is empty") under load
        args = ["tag", "--documents", "documents/**/*.jsonl.gz", "--taggers", *taggers, "--processes", "1"]
        exe = str(python.parent / "dolma")
        ref = subprocess.run([exe, *args], capture_output=True, text=True, env=env, cwd=theirs)
        assert ref.returncode == 0, ref.stderr[-3000:]
        our_env = {env_var(name): " ".join(p) for name, p in paths.items()}
        our_env["DOLMA_CACHE_DIR"] = str(tmp_path / "cache")
        mine = run_cli(*args, "--quiet", env=our_env, cwd=ours)
        assert mine.returncode == 0, mine.stderr
        assert server.gets["/phishing/domains.txt.gz"] >= 2  # fetched by each toolkit, once by ours
    finally:
        server.close()

    problems = {}
    for tagger in taggers:
        got, want = attribute_rows(ours, tagger), attribute_rows(theirs, tagger)
        assert sorted(got) == sorted(want), tagger
        differ = {i for i in want if got[i] != want[i]}
        intended = INTENDED[given[tagger]]
        if differ != intended:
            problems[tagger] = {i: (got[i], want[i]) for i in differ ^ intended}
        listed = sum(bool(row) for row in want.values())
        assert 0 < listed < len(want), f"{tagger}: the lists should list some documents and not others"
    assert not problems
