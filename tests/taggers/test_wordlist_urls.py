"""Word-list toxicity and URL blocklist taggers (no reference equivalent runs offline: the reference's
blocklist taggers download their lists; these take lists by path)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dolma import registry
from dolma.documents import Document
from dolma.errors import ConfigError
from taggers.wordlist import compile_wordlist, default_wordlist


def spans(tagger, text: str, url: str | None = None):
    doc = Document(id="x", text=text, metadata={"url": url} if url is not None else None)
    return [(s.start, s.end, s.type, s.score) for s in tagger.predict(doc)]


@pytest.mark.parametrize(
    ("words", "text", "expected_matches"),
    [
        (["darn", "heck no"], "Darn it. HECK   no! darned heck", [(0, 4), (9, 18)]),
        (["darn"], "", []),
        (["darn"], "   ", []),
        (["darn"], "adarn darna darn_ darn", [(18, 22)]),
        (["café"], "Café au lait, CAFÉ!", [(0, 4), (14, 18)]),
    ],
)
def test_wordlist_matches_whole_words(tmp_path, words, text, expected_matches):
    path = tmp_path / "words.txt"
    path.write_text("\n".join(words) + "\n")
    tagger = registry.create("naughty_words_v1", {"wordlist_path": str(path)})
    got = spans(tagger, text)
    assert [(s, e) for s, e, t, _ in got if t == "naughty_word"] == expected_matches
    doc_level = {t: v for _, _, t, v in got if t != "naughty_word"}
    n_words = len(text.split())
    assert doc_level == {
        "doc_count": float(len(expected_matches)),
        "has_naughty_word": float(bool(expected_matches)),
        "doc_frac": len(expected_matches) / n_words if n_words else 0.0,
    }


def test_default_wordlist_is_the_packaged_one():
    tagger = registry.create("naughty_words_v1")
    got = spans(tagger, "well shit, that is a lovely day")
    assert ("naughty_word" in {t for *_, t, _ in got}) and (0, 31, "has_naughty_word", 1.0) in got
    clean = spans(tagger, "a lovely day in Scunthorpe")
    assert (0, 26, "has_naughty_word", 0.0) in clean


_LIST_CHARS = "abs-._*+3 "
_NOISE = ["", " ", "  \n\t", ".", "-", "_", "x", "S", "!", "é", "\u00a0", "ab", "3"]


@st.composite
def list_and_text(draw):
    """A small ASCII word list (entries that are prefixes of others, separators, regex characters) and a text
    made of its entries in any case with noise between them."""
    entries = draw(st.lists(st.text(_LIST_CHARS, min_size=1, max_size=7), min_size=1, max_size=8))
    phrases = [" ".join(e.split()) for e in entries if e.strip()]
    parts = draw(st.lists(st.one_of(st.sampled_from(phrases or ["a"]), st.sampled_from(_NOISE)), max_size=12))
    flips = draw(st.lists(st.booleans(), min_size=len("".join(parts)), max_size=len("".join(parts))))
    text = "".join(c.upper() if flip else c for c, flip in zip("".join(parts), flips))
    return entries, text


@settings(max_examples=400, deadline=None)
@given(list_and_text())
def test_trie_matches_the_longest_first_alternation(case):
    """The trie an ASCII list compiles to finds what the alternation of every entry, longest first, finds."""
    entries, text = case
    assert [m.span() for m in compile_wordlist(entries).finditer(text)] == [
        m.span() for m in compile_wordlist(entries, trie=False).finditer(text)
    ]


def test_trie_matches_the_alternation_on_the_default_list():
    words = default_wordlist()
    assert len(compile_wordlist(words).pattern) < len(
        compile_wordlist(words, trie=False).pattern
    )  # the trie, not the flat form
    text = " ".join(w.upper() if i % 3 == 0 else w for i, w in enumerate(words)) + " Ass-fuckers s.h.i.t.x f_u_c_k"
    assert [m.span() for m in compile_wordlist(words).finditer(text)] == [
        m.span() for m in compile_wordlist(words, trie=False).finditer(text)
    ]
    assert len(list(compile_wordlist(words).finditer(text))) > 800


HOSTS = "# comment\n0.0.0.0 bad.example.com\nevil.org  # trailing comment\n127.0.0.1 localhost\n"


@pytest.mark.parametrize(
    ("url", "blocked"),
    [
        ("https://bad.example.com/page", True),
        ("http://sub.bad.example.com:8080/x?y", True),
        ("https://example.com/", False),
        ("https://notbad.example.com/", False),
        ("evil.org/path", True),
        ("https://EVIL.ORG./", True),
        ("https://user:pw@www.evil.org/", True),
        ("https://evil.org.good.net/", False),
        ("https://localhost/", False),
        ("", False),
        (None, False),
    ],
)
def test_domain_blocklist(tmp_path, url, blocked):
    (tmp_path / "hosts.txt").write_text(HOSTS)
    tagger = registry.create("domain_blocklist_v1", {"blocklist_paths": [str(tmp_path / "hosts.txt")]})
    assert spans(tagger, "some text", url) == ([(0, 9, "url_blocked", 1.0)] if blocked else [])


ADBLOCK = """[Adblock Plus 2.0]
! comment
||ads.example.com^
||tracker.net^$third-party
|http://exact.org/banner
/popup/*.js
@@||ads.example.com/allowed^
example.org##.ad-banner
"""


@pytest.mark.parametrize(
    ("url", "blocked"),
    [
        ("https://ads.example.com/x", True),
        ("https://cdn.ads.example.com/", True),
        ("https://ads.example.com.evil.net/", False),
        ("https://myads.example.com/", False),
        ("https://ads.example.com/allowed/1", False),
        ("https://tracker.net", False),  # `$third-party`: a page is first-party to itself (issue 18 item 5)
        ("http://exact.org/banner.png", True),
        ("https://exact.org/banner", False),
        ("https://site.com/popup/a.js", True),
        ("https://example.org/", False),
    ],
)
def test_link_blocklist_adblock_rules(tmp_path, url, blocked):
    (tmp_path / "list.txt").write_text(ADBLOCK)
    tagger = registry.create("link_blocklist_v1", {"blocklist_paths": [str(tmp_path / "list.txt")]})
    assert spans(tagger, "t", url) == ([(0, 1, "url_blocked", 1.0)] if blocked else [])


def test_blocklist_from_s3(s3_server, s3_bucket):
    s3_server.client().put_object(Bucket=s3_bucket, Key="lists/hosts.txt", Body=HOSTS.encode())
    tagger = registry.create("domain_blocklist_v1", {"blocklist_paths": [f"s3://{s3_bucket}/lists/hosts.txt"]})
    assert spans(tagger, "t", "https://evil.org/") == [(0, 1, "url_blocked", 1.0)]


def test_blocklist_without_lists_is_a_config_error():
    with pytest.raises(ConfigError, match="blocklist_paths"):
        spans(registry.create("domain_blocklist_v1"), "t", "https://evil.org/")


@pytest.mark.parametrize(
    ("rule", "blocked"),
    [
        ("||opts.example^$image", False),  # limited to images: loading the page is not an image request
        ("||opts.example^$script,third-party", False),
        ("||opts.example^$third-party", False),  # a page is first-party to itself
        ("||opts.example^$document", True),
        ("||opts.example^$domain=opts.example", True),
        ("||opts.example^$domain=other.example", False),
        ("||opts.example^", True),
    ],
)
def test_link_blocklist_honours_rule_options(tmp_path, rule, blocked):
    """`$` options decide whether a page load is blocked, as in a browser (the old parser dropped them)."""
    (tmp_path / "list.txt").write_text(rule + "\n")
    tagger = registry.create("link_blocklist_v1", {"blocklist_paths": [str(tmp_path / "list.txt")]})
    assert spans(tagger, "t", "https://opts.example/page") == ([(0, 1, "url_blocked", 1.0)] if blocked else [])
