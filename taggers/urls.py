"""URL blocklists: tag documents whose `metadata.url` is on a host list or matches adblock-style rules.

Lists are files given by path (local or s3://), read once per worker. Host lists accept plain domains and
hosts-file lines (`0.0.0.0 example.com`); a listed domain also blocks its subdomains. Adblock lists accept
`||domain^` anchors, `|` start anchors, `*` wildcards, `^` separators and `@@` exceptions; cosmetic rules
(`##`) and rule options (`$...`) are ignored.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Literal
from urllib.parse import urlsplit

from msgspec import Meta

from dolma import Document, Span, Tagger, TaggerConfig, io, register
from dolma.errors import ConfigError


def url_host(url: str) -> str:
    """Lower-cased host of a URL (scheme optional), without port, credentials or a trailing dot."""
    if "//" not in url:
        url = "//" + url
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").lower()


def parse_hosts(lines: list[str]) -> set[str]:
    hosts = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        token = line.split()[-1].lower().rstrip(".")
        if token and token not in {"localhost", "0.0.0.0", "127.0.0.1", "::1"}:
            hosts.add(token)
    return hosts


def host_blocked(host: str, hosts: set[str]) -> bool:
    """The host or any parent domain of it is listed."""
    parts = host.split(".")
    return any(".".join(parts[i:]) in hosts for i in range(len(parts)))


def _adblock_regex(rule: str) -> str:
    out = []
    if rule.startswith("||"):
        out.append(r"^[a-z][a-z0-9+.-]*://(?:[^/?#]*\.)?")
        rule = rule[2:]
    elif rule.startswith("|"):
        out.append("^")
        rule = rule[1:]
    end = rule.endswith("|")
    if end:
        rule = rule[:-1]
    for ch in rule:
        if ch == "*":
            out.append(".*")
        elif ch == "^":
            out.append(r"(?:[^\w.%-]|$)")
        else:
            out.append(re.escape(ch))
    if end:
        out.append("$")
    return "".join(out)


def parse_adblock(lines: list[str]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """(block pattern, exception pattern) from adblock rules."""
    block, allow = [], []
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("!", "[")) or "##" in line or "#@#" in line or "#?#" in line:
            continue
        line = line.split("$", 1)[0]
        target = allow if line.startswith("@@") else block
        line = line[2:] if line.startswith("@@") else line
        if line.strip("|*^"):
            target.append(_adblock_regex(line.lower()))
    compile_ = lambda rules: re.compile("|".join(f"(?:{r})" for r in rules)) if rules else None  # noqa: E731
    return compile_(block), compile_(allow)


class BlocklistConfig(TaggerConfig, kw_only=True):
    blocklist_paths: Annotated[
        list[str], Meta(description="Blocklist files (local paths or s3:// URLs); their rules are combined.")
    ] = []
    format: Annotated[
        Literal["hosts", "adblock"],
        Meta(description="`hosts`: one domain (or hosts-file line) per line; `adblock`: adblock-style rules."),
    ] = "hosts"


class LinkBlocklistConfig(BlocklistConfig, kw_only=True):
    format: Annotated[
        Literal["hosts", "adblock"],
        Meta(description="`adblock`: adblock-style rules; `hosts`: one domain (or hosts-file line) per line."),
    ] = "adblock"


class _UrlBlocklist(Tagger):
    Config = BlocklistConfig
    _transient = ("rules",)

    @cached_property
    def rules(self):
        if not self.config.blocklist_paths:
            raise ConfigError(f"tagger_config.{self.name}.blocklist_paths: give at least one blocklist file")
        lines = [line for path in self.config.blocklist_paths for line in io.read_text(path).splitlines()]
        return parse_hosts(lines) if self.config.format == "hosts" else parse_adblock(lines)

    def check(self) -> None:
        self.rules  # noqa: B018 - reads and parses the lists; errors surface at start-up

    def blocked(self, url: str) -> bool:
        if self.config.format == "hosts":
            host = url_host(url)
            return bool(host) and host_blocked(host, self.rules)
        block, allow = self.rules
        low = url.strip().lower()
        if "//" not in low:
            low = "http://" + low
        return block is not None and block.search(low) is not None and not (allow and allow.search(low))

    def predict(self, doc: Document) -> list[Span]:
        url = (doc.metadata or {}).get("url")
        if isinstance(url, str) and url and self.blocked(url):
            return [Span(0, len(doc.text), "url_blocked", 1.0)]
        return []


@register("domain_blocklist_v1")
class DomainBlocklistTagger(_UrlBlocklist):
    """Documents whose metadata.url host (or a parent domain) is on a host blocklist.

    Span types: `url_blocked` = 1 over the whole document when blocked; no span otherwise (nor without
    metadata.url). Lists come from `blocklist_paths`; `format: adblock` switches to adblock rules.
    """


@register("link_blocklist_v1")
class LinkBlocklistTagger(_UrlBlocklist):
    """Documents whose metadata.url matches adblock-style rules (||domain^, |prefix, wildcards, @@ exceptions).

    Span types: `url_blocked` = 1 over the whole document when a rule matches and no exception does; no
    span otherwise. Lists come from `blocklist_paths` (format defaults to `adblock` here).
    """

    Config = LinkBlocklistConfig
