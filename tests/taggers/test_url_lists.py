"""The reference's named URL lists (taggers/url_lists.py): names, list sources (path, s3-free http on 127.0.0.1,
cache), the start-up error without a list, and the matching rules of each format, adblock options included."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from dolma import registry
from dolma.documents import Document
from dolma.errors import TaggerError
from taggers.url_lists import NAMED_LISTS, PUBLIC_BASE, env_var
from tests.conftest import run_cli, write_jsonl_gz
from tests.taggers.test_jigsaw_models import ModelServer

REFERENCE_NAMES = [
    "allowlist_wikidata_cleaned_v1",
    "allowlist_wikidata_v1",
    "blocklist_firebog_ads_v1",
    "blocklist_firebog_crypto_v1",
    "blocklist_firebog_malicious_v1",
    "blocklist_firebog_nsfw_v1",
    "blocklist_firebog_social_v1",
    "blocklist_firebog_suspicious_v1",
    "blocklist_firebog_trackers_v1",
    "blocklist_hosts_adware_malware_v1",
    "blocklist_hosts_fakenews_v1",
    "blocklist_hosts_gambling_v1",
    "blocklist_hosts_porn_v1",
    "blocklist_hosts_social_v1",
    "blocklist_project_ads_v1",
    "blocklist_project_crime_v1",
    "blocklist_project_nsfw_v1",
    "blocklist_project_social_v1",
    "blocklist_project_vice_v1",
    "brave_core_abp_v1",
    "brave_nsfw_abp_v1",
    "domain_blocklist_phishing_v1",
    "domain_blocklist_utp_v1",
    "link_blocklist_phishing_v1",
    "oisd_big_abp_v1",
    "oisd_nsfw_abp_v1",
    "oisd_small_abp_v1",
]


def tagger_for(name: str, tmp_path, text: str, suffix: str = ".txt"):
    path = tmp_path / f"{name}{suffix}"
    if suffix.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    tagger = registry.create(name, {"list_paths": [str(path)]})
    tagger.check()
    return tagger


def listed(tagger, url: str | None) -> bool:
    doc = Document(id="x", text="some text", metadata={"url": url} if url is not None else None)
    spans = [(s.start, s.end, s.type, s.score) for s in tagger.predict(doc)]
    assert spans in ([], [(0, 9, "url", 1.0)])
    return bool(spans)


def test_every_reference_list_name_is_registered():
    assert len(REFERENCE_NAMES) == 27  # the brief said 28; the reference registers 27 list taggers
    assert sorted(NAMED_LISTS) == sorted(REFERENCE_NAMES)
    names = set(registry.all_taggers())
    assert set(REFERENCE_NAMES) <= names
    out = run_cli("list")
    assert out.returncode == 0, out.stderr
    assert all(name in out.stdout for name in REFERENCE_NAMES)


@pytest.mark.parametrize("name", ["blocklist_hosts_porn_v1", "oisd_small_abp_v1", "allowlist_wikidata_v1"])
def test_without_a_list_the_run_fails_at_start_up_naming_field_variable_and_source(tmp_path, name):
    docs = tmp_path / "documents"
    write_jsonl_gz(docs / "a.jsonl.gz", [{"id": "1", "text": "x", "metadata": {"url": "http://a.com"}}])
    (docs / "broken.jsonl.gz").write_bytes(b"not gzip at all")  # read only if the run got past start-up
    env = {env_var(name): ""}
    out = run_cli("tag", "--documents", str(docs / "*.jsonl.gz"), "--taggers", name, "--quiet", env=env, cwd=tmp_path)
    assert out.returncode != 0
    message = out.stderr
    assert f"tagger_config.{name}.list_paths" in message
    assert env_var(name) in message
    assert PUBLIC_BASE + NAMED_LISTS[name][1][0] in message
    assert message.count(f"tagger_config.{name}.list_paths") == 1
    assert (
        "broken" not in message
        and not (tmp_path / "attributes").exists()
        and not (docs.parent / "attributes").exists()
    )


def test_list_from_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "hosts"
    path.write_text("0.0.0.0 bad.com\n")
    monkeypatch.setenv(env_var("blocklist_hosts_porn_v1"), f"  {path}  ")
    tagger = registry.create("blocklist_hosts_porn_v1")
    assert listed(tagger, "http://bad.com/x") and not listed(tagger, "http://good.com/")


def test_http_list_is_downloaded_once_into_the_cache_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("DOLMA_CACHE_DIR", str(tmp_path / "cache"))
    server = ModelServer({"/lists/domains.txt.gz": gzip.compress(b"phish.example\n# comment\nwww.bait.org\n")})
    try:
        url = server.url + "/lists/domains.txt.gz"
        for _ in range(2):
            tagger = registry.create("domain_blocklist_phishing_v1", {"list_paths": [url]})
            tagger.check()
            assert listed(tagger, "https://phish.example/login") and listed(tagger, "http://bait.org")
            assert not listed(tagger, "http://example.org")
        assert server.gets["/lists/domains.txt.gz"] == 1
        server.short.add("/lists/other.txt")
        server.files["/lists/other.txt"] = b"a.com\n"
        broken = registry.create("domain_blocklist_utp_v1", {"list_paths": [server.url + "/lists/other.txt"]})
        with pytest.raises(TaggerError, match="transfer stopped"):
            broken.check()
        pinned = {
            "list_paths": [url],
            "list_sha256": {url: hashlib.sha256(server.files[url[len(server.url) :]]).hexdigest()},
        }
        registry.create("domain_blocklist_phishing_v1", pinned).check()
        wrong = {"list_paths": [url], "list_sha256": {url: "0" * 64}}
        with pytest.raises(TaggerError, match="SHA-256"):
            registry.create("domain_blocklist_phishing_v1", wrong).check()
        stray = {"list_paths": [url], "list_sha256": {"https://elsewhere/x": "0" * 64}}
        with pytest.raises(TaggerError, match=r"list_sha256: https://elsewhere/x is not one of its list_paths"):
            registry.create("domain_blocklist_phishing_v1", stray).check()
        missing = registry.create("domain_blocklist_utp_v1", {"list_paths": [server.url + "/lists/none.txt"]})
        with pytest.raises(TaggerError, match="cannot fetch"):
            missing.check()
    finally:
        server.close()


def test_empty_or_unreadable_lists_are_start_up_errors(tmp_path):
    with pytest.raises(TaggerError, match="no entries"):
        tagger_for("blocklist_hosts_social_v1", tmp_path, "# only a comment\n\n")
    with pytest.raises(TaggerError, match=r"list of tagger 'allowlist_wikidata_v1' .*v1\.json: line 2: not JSON"):
        tagger_for("allowlist_wikidata_v1", tmp_path, '[{"url": "https://a.org"}]\n{broken\n', ".json")
    with pytest.raises(TaggerError, match="file not found"):
        registry.create("blocklist_hosts_porn_v1", {"list_paths": [str(tmp_path / "nope.txt")]}).check()


HOSTS = """# a hosts file
0.0.0.0 bad.com
127.0.0.1 Evil.ORG
plain.net   # trailing comment
www.www-listed.com
bücher.de
||abp-style.com^
"""


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://bad.com/x", True),
        ("https://www.bad.com", True),
        ("https://sub.bad.com/p", False),  # the reference's rule: only the host and its www. form
        ("HTTP://EVIL.ORG/X", True),
        ("http://plain.net:8080/a?q#f", True),
        ("plain.net", True),
        ("http://user:pw@bad.com:81/", True),
        ("http://www-listed.com", True),
        ("http://www.www-listed.com", True),
        ("http://xn--bcher-kva.de/", True),
        ("http://BÜCHER.de/", True),
        ("http://abp-style.com/", True),
        ("  http://bad.com  ", True),
        ("http://notbad.com", False),
        ("", False),
        (None, False),
        ("http://[::1]:80/", False),
    ],
)
def test_domain_list_rules(tmp_path, url, expected):
    assert listed(tagger_for("blocklist_hosts_porn_v1", tmp_path, HOSTS), url) is expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.org/path", True),
        ("https://example.org/path/", True),
        ("http://example.org/other", False),
        ("http://www.x.com", True),
        ("http://x.com", False),
        ("http://münchen.de", True),
        ("http://plain.net:8080/a", False),
    ],
)
def test_link_list_rules(tmp_path, url, expected):
    text = "example.org/path\nwww.x.com\nxn--mnchen-3ya.de\nplain.net\n"
    assert listed(tagger_for("link_blocklist_phishing_v1", tmp_path, text, ".txt.gz"), url) is expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.nature.com/articles/1", True),
        ("http://x.nature.com", True),
        ("http://blog.org", True),
        ("http://other.blog.org", True),
        ("http://x.bbc.co.uk/", True),
        ("http://other.co.uk/", False),  # the reference lists every *.co.uk here (intended difference)
        ("http://münchen.de", True),
        ("http://other.com", False),
    ],
)
@pytest.mark.parametrize("name", ["allowlist_wikidata_v1", "allowlist_wikidata_cleaned_v1"])
def test_wikidata_list_rules(tmp_path, name, url, expected):
    lines = [
        [{"url": "https://www.nature.com/"}, {"url": "https://Sub.Blog.org:80/x"}],
        [{"url": "https://münchen.de/"}, {"url": "https://news.bbc.co.uk/"}, {"item": "no url"}],
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    assert listed(tagger_for(name, tmp_path, text, ".json"), url) is expected


# A table of EasyList / Adblock Plus syntax: (rules, page URL, blocked when loaded as a page).
ABP_TABLE = [
    ("||ads.example.com^", "http://ads.example.com/x", True),
    ("||ads.example.com^", "https://sub.ads.example.com", True),
    ("||ads.example.com^", "http://ADS.Example.COM/", True),
    ("||ads.example.com^", "http://ads.example.com:8080/", True),
    ("||ads.example.com^", "ads.example.com", True),
    ("||ads.example.com^", "http://notads.example.com/", False),
    ("||ads.example.com^", "http://ads.example.company/", False),
    ("||ads.example.com^\n@@||good.ads.example.com^", "http://good.ads.example.com/", False),
    ("||ads.example.com^\n@@||good.ads.example.com^", "http://bad.ads.example.com/", True),
    ("||tracker.net^$third-party", "http://tracker.net/", False),  # a page is first-party to itself
    ("||tracker.net^$~third-party", "http://tracker.net/", True),
    ("||img.only.com^$image", "http://img.only.com/a.png", False),
    ("||script.only.com^$script", "http://script.only.com/x.js", False),
    ("||css.only.com^$stylesheet,image", "http://css.only.com/", False),
    ("||doc.com^$document", "http://doc.com/", True),
    ("||dom.com^$domain=foo.com", "http://dom.com/", False),
    ("||dom.com^$domain=dom.com", "http://dom.com/", True),
    ("||dom.com^$domain=~dom.com", "http://dom.com/", False),
    ("/banner/*", "http://site.com/banner/1", True),
    ("/banner/*$image", "http://site.com/banner/1", False),
    ("|http://start.com/", "http://start.com/page", True),
    ("|http://start.com/", "https://start.com/page", False),
    ("page.html|", "http://a.com/page.html", True),
    ("page.html|", "http://a.com/page.html?x=1", False),
    ("||sep.com^", "http://sep.com:80/", True),
    ("||sep.com/path^", "http://sep.com/path?x", True),
    ("||sep.com/path^", "http://sep.com/pathology", False),
    ("||xn--mnchen-3ya.de^", "http://münchen.de/", True),
    ("example.com##.ad-banner", "http://example.com/", False),  # cosmetic rules never block a page
    ("! a comment\n[Adblock Plus 2.0]", "http://comment.com/", False),
]


@pytest.mark.parametrize(("rules", "url", "blocked"), ABP_TABLE)
def test_adblock_rules_as_a_browser_loading_the_page(tmp_path, rules, url, blocked):
    tagger = tagger_for("brave_core_abp_v1", tmp_path, "[Adblock Plus 2.0]\n||always.invalid^\n" + rules + "\n")
    assert listed(tagger, url) is blocked


def test_list_from_s3_is_fetched_into_the_cache(s3_server, s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("DOLMA_CACHE_DIR", str(tmp_path / "cache"))
    rules = b"[Adblock Plus]\n||ads.example^\n@@||ok.ads.example^\n"
    s3_server.client().put_object(Bucket=s3_bucket, Key="lists/oisd_nsfw_abp.txt.gz", Body=gzip.compress(rules))
    tagger = registry.create("oisd_nsfw_abp_v1", {"list_paths": [f"s3://{s3_bucket}/lists/oisd_nsfw_abp.txt.gz"]})
    tagger.check()
    assert listed(tagger, "https://x.ads.example/") and not listed(tagger, "https://ok.ads.example/")
    cached = list((tmp_path / "cache" / "models").glob("*oisd_nsfw_abp.txt.gz"))
    assert len(cached) == 1
