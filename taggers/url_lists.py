"""The reference toolkit's named URL block- and allow-lists, with its tagger names and output key (`url`).

The lists are not shipped. Each tagger reads its list files from `tagger_config.<name>.list_paths`, else from the
environment variable named in the table below (paths or URLs separated by whitespace): local paths, `s3://` or
`http(s)://` URLs; a URL is fetched once into the model cache (size and SHA-256 recorded, transfer checked) and
reused. A `.gz` file is decompressed. Without a list the tagger fails at start-up naming the config field, the
variable and the public source the reference downloads it from.

Four list formats, as the reference reads them:
- `domains`: one host per line, or a hosts-file line (`0.0.0.0 host`); a page is listed when its host, or its host
  without a leading `www.`, is on the list (no other subdomains: `sub.bad.com` is not blocked by `bad.com`);
- `links`: one URL per line without its scheme (`example.org/path`); a page is listed when its URL without scheme
  and trailing `/` equals a line;
- `abp`: adblock rules, matched by Brave's adblock-rust engine (the `adblock` package); see `page_blocked`;
- `wikidata`: JSON lines, each a list of objects with a `url` field; a page is listed when its host, its host
  without `www.` or its registered domain is the host or registered domain of a listed URL.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from functools import cached_property
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from msgspec import Meta

from dolma import Document, Span, Tagger, TaggerConfig, TaggerError, register
from dolma.models import resolve_model

PUBLIC_BASE = "https://dolma-artifacts.org"


def _under(prefix: str, names: str) -> list[str]:
    return [prefix + name for name in names.split()]


# name -> (format, files under PUBLIC_BASE the reference downloads)
FIREBOG = "/blocklist_firebog/blocklist_firebog-20240208/"
PROJECT = "/blocklist_project/blocklist_project-20240207/"
PHISHING = "/blocklist_phishing_db/blocklist_phishing_db-20240205/domains.txt.gz"
NAMED_LISTS: dict[str, tuple[str, list[str]]] = {
    "allowlist_wikidata_v1": (
        "wikidata",
        [
            "/wikidata/wikidata-20220208/periodical-Q1002697/response.json",
            "/wikidata/wikidata-20220208/website-Q35127/response.json",
        ],
    ),
    "blocklist_firebog_ads_v1": (
        "domains",
        _under(FIREBOG + "ads/blue/", "hosts.txt")
        + _under(
            FIREBOG + "ads/green/",
            (
                "AdguardDNS.txt Admiral.txt adservers.txt Easylist-2.txt hosts-2.txt hosts-3.txt hosts.txt "
                "serverlist.txt simple_ad.txt"
            ),
        ),
    ),
    "blocklist_firebog_crypto_v1": ("domains", [FIREBOG + "crypto/green/hosts_browser.txt"]),
    "blocklist_firebog_malicious_v1": (
        "domains",
        [FIREBOG + "malicious/blue/" + f for f in ("phishing-filter-hosts.txt", "Prigent-Malware.txt")]
        + _under(
            FIREBOG + "malicious/green/",
            (
                "AntiMalwareHosts.txt hostfile.txt hosts-2.txt hosts.txt latestdomains.txt main-blacklist.txt "
                "Mandiant_APT1_Report_Appendix_D.txt notrack-malware.txt phishing_army_blocklist_extended.txt "
                "Prigent-Crypto.txt RPiList-Malware.txt RPiList-Phishing.txt simple_malvertising.txt"
            ),
        ),
    ),
    "blocklist_firebog_nsfw_v1": (
        "domains",
        [FIREBOG + "nsfw/blue/" + f for f in ("pi_blocklist_porn_top1m.list.txt", "Prigent-Adult.txt")],
    ),
    "blocklist_firebog_social_v1": ("domains", [FIREBOG + "social/blue/facebook.txt"]),
    "blocklist_firebog_suspicious_v1": (
        "domains",
        _under(
            FIREBOG + "suspicious/blue/",
            "hosts-2.txt hosts-3.txt hosts-4.txt hosts-file.txt neohostsbasic.txt SNAFU.txt spammers.txt",
        )
        + [FIREBOG + "suspicious/green/" + f for f in ("hosts.txt", "KADhosts.txt", "w3kbl.txt")],
    ),
    "blocklist_firebog_trackers_v1": (
        "domains",
        _under(
            FIREBOG + "trackers/blue/",
            ("ads-and-tracking-extended.txt AmazonFireTV.txt android-tracking.txt notrack-blocklist.txt SmartTV.txt"),
        )
        + _under(
            FIREBOG + "trackers/green/",
            "Easyprivacy.txt firstparty-trackers-hosts.txt hosts.txt Prigent-Ads.txt spy.txt",
        ),
    ),
    **{
        f"blocklist_hosts_{k}_v1": ("domains", [f"/blocklist_hosts/blocklist_hosts-20240208/{k}.txt"])
        for k in ("adware_malware", "fakenews", "gambling", "porn", "social")
    },
    "blocklist_project_ads_v1": (
        "domains",
        [PROJECT + f + ".txt" for f in ("adobe", "ads", "basic", "smart-tv", "tracking")],
    ),
    "blocklist_project_crime_v1": (
        "domains",
        [
            PROJECT + f + ".txt"
            for f in ("abuse", "fraud", "malware", "phishing", "piracy", "ransomware", "scam", "redirect")
        ],
    ),
    "blocklist_project_nsfw_v1": ("domains", [PROJECT + "porn.txt"]),
    "blocklist_project_social_v1": (
        "domains",
        [PROJECT + f + ".txt" for f in ("facebook", "fortnite", "tiktok", "twitter", "whatsapp", "youtube")],
    ),
    "blocklist_project_vice_v1": (
        "domains",
        [PROJECT + f + ".txt" for f in ("crypto", "drugs", "gambling", "vaping")],
    ),
    "brave_core_abp_v1": (
        "abp",
        [
            "/blocklist_brave/blocklist_brave-20240206/brave_ad_block_first_party_filters.txt",
            "/blocklist_brave/blocklist_brave-20240206/brave_ad_block_updater.txt",
        ],
    ),
    "brave_nsfw_abp_v1": ("abp", ["/blocklist_brave/blocklist_brave-20240206/blocklists_anti_porn.txt"]),
    "domain_blocklist_phishing_v1": (
        "domains",
        ["/blocklist_phishing_db/blocklist_phishing_db-20240205/domains.txt.gz"],
    ),
    "domain_blocklist_utp_v1": ("domains", ["/blocklist_utp/blocklist_utp-20240205/adult/domains"]),
    "link_blocklist_phishing_v1": ("links", [PHISHING]),
    **{
        f"oisd_{k}_abp_v1": ("abp", [f"/blocklist_oisd/blocklist_oisd-20240205/oisd_{k}_abp.txt.gz"])
        for k in ("big", "nsfw", "small")
    },
}
NAMED_LISTS["allowlist_wikidata_cleaned_v1"] = NAMED_LISTS["allowlist_wikidata_v1"]

# Second-level labels under which a country-code TLD registers names (bbc.co.uk): a small stand-in for the
# public suffix list, used only to find a wikidata URL's registered domain.
_SECOND_LEVEL = {"co", "com", "org", "net", "ac", "gov", "edu", "or", "ne", "go", "gob", "nic", "mil"}


def env_var(name: str) -> str:
    return "DOLMA_URL_LIST_" + name.upper()


def idna_host(host: str) -> str:
    """Lower-cased host in its ASCII (punycode) form, as a browser sends it; the host itself if not encodable."""
    host = host.strip().lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def page_host(url: str) -> str:
    """Host of a page URL (scheme optional) without credentials or port, in ASCII; "" when there is none."""
    url = url.strip()
    if "//" not in url:
        url = "//" + url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return idna_host(host)


def strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def registered_domain(host: str) -> str:
    labels = host.split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


def _lines(text: str):
    """Lines of a domain or link list without `#` / `!` comments and blank lines."""
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("!"):
            yield line


def parse_domains(text: str) -> set[str]:
    """Hosts of a domain list or hosts file, each also with `www.` (a listed `www.x` also lists `x`)."""
    out: set[str] = set()
    for line in _lines(text):
        parts = line.split()
        token = parts[1] if len(parts) > 1 and re.fullmatch(r"[0-9.:a-fA-F]+", parts[0]) else parts[0]
        if token.startswith("||"):
            token = token[2:].split("^", 1)[0]
        host = page_host(token)
        if host and "*" not in host:
            out.update((strip_www(host), "www." + strip_www(host)))
    return out


def link_key(url: str) -> str:
    """A page URL as link lists spell entries: lower-case host (ASCII), port and path, without scheme,
    credentials, query, fragment or trailing `/`."""
    url = url.strip()
    rest = url.split("://", 1)[1] if "://" in url else url
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    netloc, sep, path = rest.partition("/")
    return (idna_host(netloc.rpartition("@")[2]) + sep + path.lower()).rstrip("/")


def parse_links(text: str) -> set[str]:
    return {line.lower().rstrip("/") for line in _lines(text)}


def parse_wikidata(text: str) -> set[str]:
    out: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items = json.loads(line)
        except ValueError:
            raise TaggerError(f"line {number}: not JSON (a wikidata list has one JSON list per line)") from None
        for item in items if isinstance(items, list) else []:
            url = item.get("url") if isinstance(item, dict) else None
            host = page_host(url) if isinstance(url, str) else ""
            if host:
                out.update((host, strip_www(host), "www." + strip_www(host), registered_domain(strip_www(host))))
    return out


def abp_engine(text: str):
    try:
        import adblock
    except ImportError:
        raise TaggerError("adblock-style lists need the `adblock` package (pip install adblock)") from None
    rules = adblock.FilterSet()
    rules.add_filter_list(text)
    return adblock.Engine(filter_set=rules, optimize=True)


def page_url(url: str) -> str:
    """A page URL as a browser requests it: `http://` added when there is no scheme, scheme and host lower-cased,
    the host in ASCII (punycode); port, path and query kept."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url.lstrip("/")
    try:
        parts = urlsplit(url)
        host, port = idna_host(parts.hostname or ""), parts.port
    except ValueError:
        return url
    userinfo, at, _ = parts.netloc.rpartition("@")
    netloc = userinfo + at + (f"[{host}]" if ":" in host else host) + ("" if port is None else f":{port}")
    return parts._replace(scheme=parts.scheme.lower(), netloc=netloc).geturl()


def page_blocked(engine, url: str) -> bool:
    """Whether loading `url` as a page (a first-party top-level request) is blocked.

    The page is checked as a `document` request and as a generic first-party request: rules without a resource
    type, and `$document` rules, block it; rules limited to images, scripts or other subresources do not;
    `$third-party` rules do not (a page is first-party to itself); `$domain=` rules apply only when the page's own
    domain is listed; `@@` exceptions win.
    """
    full = page_url(url)
    for kind in ("document", "other"):
        result = engine.check_network_urls(full, full, kind)
        if result.matched and not result.exception:
            return True
    return False


class NamedListConfig(TaggerConfig, kw_only=True):
    list_paths: Annotated[
        list[str],
        Meta(description="The list's files: local paths, s3:// or http(s):// URLs (a URL is fetched once, cached)."),
    ] = []
    list_sha256: Annotated[
        dict[str, str],
        Meta(description="Expected SHA-256 of fetched lists, by their s3:// or http(s):// URL in list_paths."),
    ] = {}


class NamedListTagger(Tagger):
    """Base of the named lists: `url` = 1 over the whole document when metadata.url is listed, else no span."""

    Config = NamedListConfig
    _transient = ("rules",)
    list_format: ClassVar[Literal["domains", "links", "abp", "wikidata"]] = "domains"

    def sources(self) -> list[str]:
        paths = list(self.config.list_paths) or os.environ.get(env_var(self.name), "").split()
        if not paths:
            public = " ".join(PUBLIC_BASE + p for p in NAMED_LISTS[self.name][1])
            raise TaggerError(
                f"tagger '{self.name}' needs its list, which is not shipped: set tagger_config.{self.name}.list_paths "
                f"or the environment variable {env_var(self.name)} (paths or URLs: local, s3://, https://). "
                f"The reference toolkit downloads it from: {public}"
            )
        return paths

    def read(self, source: str) -> str:
        local = resolve_model(source, f"list of tagger '{self.name}'", self.config.list_sha256.get(source))
        try:
            with open(local, "rb") as fh:
                data = fh.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            return data.decode("utf-8", errors="replace")
        except (OSError, EOFError) as exc:
            raise TaggerError(f"list of tagger '{self.name}' {source}: cannot be read ({exc})") from None

    @cached_property
    def rules(self):
        unknown = sorted(set(self.config.list_sha256) - set(self.sources()))
        if unknown:
            raise TaggerError(f"tagger_config.{self.name}.list_sha256: {unknown[0]} is not one of its list_paths")
        texts = [self.read(source) for source in self.sources()]
        if self.list_format == "abp":
            return abp_engine("\n".join(texts))
        parse = {"domains": parse_domains, "links": parse_links, "wikidata": parse_wikidata}[self.list_format]
        rules: set[str] = set()
        for source, text in zip(self.sources(), texts):
            try:
                rules |= parse(text)
            except TaggerError as exc:
                raise TaggerError(f"list of tagger '{self.name}' {source}: {exc}") from None
        if not rules:
            raise TaggerError(f"tagger '{self.name}': its list ({' '.join(self.sources())}) has no entries")
        return rules

    def check(self) -> None:
        self.rules  # noqa: B018 - fetches and parses the lists once at start-up; each worker re-reads the cache

    def listed(self, url: str) -> bool:
        if self.list_format == "abp":
            return page_blocked(self.rules, url)
        if self.list_format == "links":
            return link_key(url) in self.rules
        host = page_host(url)
        if not host:
            return False
        keys = {host, strip_www(host)}
        if self.list_format == "wikidata":
            keys.add(registered_domain(strip_www(host)))
        return not keys.isdisjoint(self.rules)

    def predict(self, doc: Document) -> list[Span]:
        url = (doc.metadata or {}).get("url")
        if isinstance(url, str) and url.strip() and self.listed(url):
            return [Span(0, len(doc.text), "url", 1.0)]
        return []


def _make(name: str, fmt: str) -> None:
    public = ", ".join(PUBLIC_BASE + p for p in NAMED_LISTS[name][1][:2])
    doc = (
        f"The reference's `{name}` ({fmt} list): `url` = 1 over the whole document when metadata.url is listed, "
        f"else no span. List: `list_paths` or ${env_var(name)}; published at {public}"
        + (" ..." if len(NAMED_LISTS[name][1]) > 2 else "")
        + "."
    )
    cls = type(name, (NamedListTagger,), {"list_format": fmt, "__doc__": doc, "__module__": __name__})
    register(name)(cls)


for _name, (_fmt, _files) in NAMED_LISTS.items():
    _make(_name, _fmt)
