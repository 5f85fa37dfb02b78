"""URL blocklists: tag documents whose `metadata.url` is on a host list or matches adblock-style rules.

Lists are files given by path (local or s3://), read once per worker. Host lists accept plain domains and
hosts-file lines (`0.0.0.0 example.com`); a listed domain also blocks its subdomains. Adblock lists are matched
by Brave's adblock-rust engine (the `adblock` package, extra `urls`) exactly as the named `*_abp_v1` lists are
(taggers/url_lists.py): the page is a first-party top-level load, so `$` resource-type options (`$image`,
`$script`) and `$third-party` rules do not block it, `$document` rules and `$domain=` rules for its own domain
do; `||`, `|`, `^`, `*` and `@@` exceptions work as in a browser; cosmetic rules (`##`) are ignored.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Literal
from urllib.parse import urlsplit

from msgspec import Meta

from dolma import Document, Span, Tagger, TaggerConfig, io, register
from dolma.errors import ConfigError
from taggers.url_lists import abp_engine, page_blocked


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
        if self.config.format == "hosts":
            return parse_hosts(lines)
        return abp_engine("\n".join(lines))  # the engine of the named adblock lists: `$` options, as a browser

    def check(self) -> None:
        self.rules  # noqa: B018 - reads and parses the lists; errors surface at start-up

    def blocked(self, url: str) -> bool:
        if self.config.format == "hosts":
            host = url_host(url)
            return bool(host) and host_blocked(host, self.rules)
        return page_blocked(self.rules, url)

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
