"""`dolma warc`: web crawls (WARC / WET files) to Dolma documents, one documents file per WARC file.

Longer than 400 lines because the config, its record job and plan are one command whose parts are read together.

Plan: every file matching `documents` -> `<destination>/<same sub-path>` with the reference's naming
(`x.warc.gz` -> `x.jsonl.gz`, `x.warc.wet.gz` -> `x.wet.jsonl.gz`). A unit reads one WARC file record by
record (dolma.warc.reader), keeps HTTP 200 HTML responses (and WET text), runs the pre taggers on the HTML,
linearizes, runs the post taggers on the text and writes the documents atomically; an existing output means
the file is done (a rerun resumes). Records that cannot become documents are counted per reason, and the
summary says so loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from zlib_ng import gzip_ng

from dolma import atomic, compression, io, registry
from dolma.commands.common import RunOptions
from dolma.config import Base
from dolma.documents import Document, Span, attribute_key, destination_path
from dolma.errors import ConfigError
from dolma.executors import make_executor
from dolma.executors.base import Job, Progress, Summary, Unit, UnitStats
from dolma.executors.summary import finish_run, now
from dolma.paths import check_outputs, check_path
from dolma.tagger import Tagger

log = logging.getLogger("dolma")


class TaggerStep(Base):
    """Taggers run inside `dolma warc` (before or after HTML extraction)."""

    taggers: Annotated[list[str], Meta(description="Names of the taggers to run (see `dolma list`).")] = []
    skip: Annotated[
        bool, Meta(description="Drop pages for which these taggers return no span (e.g. no licence found).")
    ] = False


class WarcConfig(RunOptions, kw_only=True):
    documents: Annotated[
        list[str], Meta(description="Globs of WARC / WET files (.warc, .warc.gz, .warc.wet.gz; local or s3://).")
    ]
    destination: Annotated[
        list[str] | str | None,
        Meta(description="Where to write documents, one entry per documents glob (or one for all)."),
    ] = None
    source_name: Annotated[str, Meta(description="The `source` of every document written.")] = ""
    linearizer: Annotated[
        Literal["resiliparse", "trafilatura"], Meta(description="HTML to text: resiliparse (default) or trafilatura.")
    ] = "resiliparse"
    pre: Annotated[
        TaggerStep, Meta(description="Taggers on the HTML before extraction (they see it as metadata.html).")
    ] = msgspec.field(default_factory=TaggerStep)
    post: Annotated[TaggerStep, Meta(description="Taggers on the extracted text.")] = msgspec.field(
        default_factory=TaggerStep
    )
    store_html_in_metadata: Annotated[bool, Meta(description="Keep each page's HTML as metadata.html.")] = False
    skip_bad_records: Annotated[
        bool,
        Meta(
            description="A damaged file (truncated or corrupt gzip member, unparseable stream) keeps the documents "
            "read before the damage and is counted, instead of failing (also implied by skip_bad_lines)."
        ),
    ] = False
    max_payload_bytes: Annotated[
        int, Meta(ge=1, description="Pages larger than this (after decompression) are skipped and counted.")
    ] = 10_000_000
    added: Annotated[
        str | None,
        Meta(
            description="The `added` timestamp of every document; default: when the WARC file was written (its "
            "warcinfo WARC-Date, else the record's), so reruns write identical files."
        ),
    ] = None
    tagger_modules: Annotated[
        list[str], Meta(description="Extra modules (dotted names or .py paths) that register taggers.")
    ] = []
    tagger_config: Annotated[
        dict[str, dict[str, Any]], Meta(description="Options per tagger name, e.g. {random_number_v1: {seed: 3}}.")
    ] = {}
    batch_size: Annotated[int, Meta(ge=1, description="Pages handed to the taggers at once.")] = 64


CONFIG = WarcConfig


class WarcMetadata(msgspec.Struct, omit_defaults=True):
    """`metadata` of a document from a WARC record (the reference's keys first)."""

    warc_url: str
    url: str
    warc_date: str | None
    warc_filename: str | None
    content_type: str
    warc_record_id: str
    payload_digest: str | None = None
    language: str | None = None
    language_score: float | None = None
    html: str | None = None


class WarcDocument(msgspec.Struct, omit_defaults=True):
    id: str
    text: str
    source: str
    added: str
    created: str
    metadata: WarcMetadata
    attributes: dict[str, list[list[float | int]]] | None = None


_encode = msgspec.json.Encoder().encode


def output_name(name: str) -> str:
    """The reference's output naming: extensions after the first dot lose `.gz` and `.warc`, gain `.jsonl.gz`."""
    stem, dot, ext = name.partition(".")
    if not dot:
        return f"{name}.jsonl.gz"
    ext = f".{ext}".replace(".gz", "").replace(".warc", "")
    return f"{stem}{ext}.jsonl.gz"


def _language(post: dict[str, list[Span]], text_len: int) -> tuple[str | None, float | None]:
    """The language a language-ID post tagger gives the whole document (its best whole-text span, >= 0.5)."""
    best: tuple[str | None, float | None] = (None, None)
    for name, spans in post.items():
        if "lang" not in name:
            continue
        for span in spans:
            if span.start != 0 or span.end != text_len or span.type.startswith(("not_", "doc_not_")):
                continue
            if span.score >= 0.5 and (best[1] is None or span.score > best[1]):
                best = (span.type.removeprefix("doc_"), round(float(span.score), 5))
    return best


class WarcJob(Job):
    """Turns one WARC / WET file into one documents file."""

    def __init__(self, config: WarcConfig):
        self.config = config
        self._pre: dict[str, Tagger] | None = None
        self._post: dict[str, Tagger] | None = None
        self._linearizer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "_pre": None, "_post": None, "_linearizer": None}

    def setup(self) -> None:
        from dolma.warc.extract import LINEARIZERS

        io.configure_s3(self.config.s3)
        if self._pre is None or self._post is None:
            registry.import_modules(self.config.tagger_modules)
            make = lambda names: {n: registry.create(n, self.config.tagger_config.get(n)) for n in names}  # noqa: E731
            self._pre, self._post = make(self.config.pre.taggers), make(self.config.post.taggers)
            self._linearizer = LINEARIZERS[self.config.linearizer]()

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        from dolma.warc.reader import ReadState, iter_pages

        self.setup()
        cfg = self.config
        state = ReadState()
        # Outputs are .jsonl.gz: each batch becomes one gzip member, compressed with zlib-ng (level 6, ~2.5x
        # zlib's speed at the same size); concatenated members are one valid gzip file for every reader.
        gzipped = compression.compression_of(unit.outputs[0]) == "gzip"
        writer = atomic.AtomicWriter(unit.outputs[0], compression=None if gzipped else "infer")
        written = 0
        try:
            batch: list[Any] = []
            reported = [0]

            def flush() -> None:
                nonlocal written
                lines = self._documents(batch, state)
                if lines:
                    data = b"\n".join(lines) + b"\n"
                    writer.write(gzip_ng.compress(data, compresslevel=6, mtime=0) if gzipped else data)
                written += len(lines)
                progress(len(lines), state.raw_bytes - reported[0])
                reported[0] = state.raw_bytes
                batch.clear()

            skip = cfg.skip_bad_records or cfg.skip_bad_lines
            for page in iter_pages(unit.input, cfg.max_payload_bytes, skip, state):
                batch.append(page)
                if len(batch) >= cfg.batch_size:
                    flush()
            flush()
            writer.close()
        except BaseException:
            writer.abort()
            raise
        counters = dict(state.counters)
        counters["records read (response, resource, conversion)"] = state.records
        return UnitStats(
            documents_in=state.records,
            documents_out=written,
            bytes_in=state.raw_bytes,
            bytes_out=writer.bytes_written,
            counters=counters,
        )

    def _documents(self, pages: Sequence[Any], state: Any) -> list[bytes]:
        """Encoded documents of a batch of pages: decode, pre-tag, linearize, post-tag, in batches per step."""
        from dolma.warc import extract, ids

        cfg = self.config
        assert self._pre is not None and self._post is not None
        htmls: list[str] = []
        kept = []
        for page in pages:
            try:
                htmls.append(extract.to_text(page.body, page.charset))
            except extract.Skip as skip:
                state.skip(skip.reason)
                continue
            kept.append(page)
        docs = [
            Document(id=ids.document_id(p.record_id) or "", text="", source=cfg.source_name, metadata={"html": h})
            for p, h in zip(kept, htmls)
        ]
        pre = self._tag(self._pre, docs)
        if cfg.pre.skip and self._pre:
            keep = [i for i in range(len(docs)) if any(pre[name][i] for name in pre)]
            for _ in range(len(docs) - len(keep)):
                state.skip(extract.SKIP_PRE)
            kept, htmls, docs = [kept[i] for i in keep], [htmls[i] for i in keep], [docs[i] for i in keep]
            pre = {name: [spans[i] for i in keep] for name, spans in pre.items()}
        texts = [h if p.kind == "conversion" else self._linearizer.linearize(h) for p, h in zip(kept, htmls)]
        for doc, text in zip(docs, texts):
            doc.text = text
        post = self._tag(self._post, docs)
        out = []
        for i, (page, html, doc) in enumerate(zip(kept, htmls, docs)):
            if not doc.text.strip():
                state.skip(extract.SKIP_EMPTY)
                continue
            post_i = {name: spans[i] for name, spans in post.items()}
            if cfg.post.skip and self._post and not any(post_i.values()):
                state.skip(extract.SKIP_POST)
                continue
            out.append(self._encode(page, html, doc, {n: s[i] for n, s in pre.items()}, post_i, state))
        return out

    @staticmethod
    def _tag(taggers: dict[str, Tagger], docs: list[Document]) -> dict[str, list[list[Span]]]:
        return {name: tagger.predict_batch(docs) if docs else [] for name, tagger in taggers.items()}

    def _encode(
        self, page: Any, html: str, doc: Document, pre: dict[str, list[Span]], post: dict[str, list[Span]], state: Any
    ) -> bytes:
        from dolma.warc import ids

        cfg = self.config
        created = ids.parse_warc_date(page.date)
        file_date = ids.parse_warc_date(state.info.date)
        created_s = ids.dolma_timestamp(created) if created else page.date
        added = cfg.added or (ids.dolma_timestamp(file_date) if file_date else created_s)
        language, score = _language(post, len(doc.text))
        if language is None and page.language:
            language = page.language
        attributes: dict[str, list[list[float | int]]] | None = None
        if pre or post:
            attributes = {}
            for name, spans in (*pre.items(), *post.items()):
                for span in spans:
                    key = attribute_key(name, name, span.type)
                    attributes.setdefault(key, []).append([span.start, span.end, round(float(span.score), 5)])
        metadata = WarcMetadata(
            warc_url=page.url,
            url=ids.normalize_url(page.url),
            warc_date=ids.dolma_timestamp(file_date) if file_date else None,
            warc_filename=state.info.filename,
            content_type=page.mime,
            warc_record_id=page.record_id,
            payload_digest=page.payload_digest,
            language=language,
            language_score=score,
            html=html if cfg.store_html_in_metadata else None,
        )
        document = WarcDocument(
            id=doc.id,
            text=doc.text,
            source=cfg.source_name,
            added=added,
            created=created_s,
            metadata=metadata,
            attributes=attributes,
        )
        return _encode(document)


def plan(config: WarcConfig) -> list[Unit]:
    """Input files and their output paths; refuses unsafe or ambiguous destinations and unknown taggers."""
    from dolma.warc import require
    from dolma.warc.extract import LINEARIZER_MODULES

    require("fastwarc", *LINEARIZER_MODULES[config.linearizer])
    if not config.documents:
        raise ConfigError("warc: no documents given (set 'documents' to WARC file globs)")
    if not config.source_name:
        raise ConfigError("warc: 'source_name' is required (it becomes every document's `source`)")
    registry.import_modules(config.tagger_modules)
    for step in ("pre", "post"):
        names = getattr(config, step).taggers
        for name in names:
            registry.get(name)
        if len(set(names)) != len(names):
            raise ConfigError(f"warc: a tagger is listed twice in '{step}.taggers'")
    for name, options in config.tagger_config.items():
        registry.create(name, options)
    destinations = [config.destination] if isinstance(config.destination, str) else config.destination
    if not destinations:
        raise ConfigError("warc: no destination given (set 'destination' to the directory for the documents)")
    for idx, dest in enumerate(destinations):
        check_path(dest, f"destination[{idx}]" if isinstance(config.destination, list) else "destination")
    if len(destinations) not in (1, len(config.documents)):
        raise ConfigError(
            f"warc: 'destination' has {len(destinations)} entries for {len(config.documents)} documents globs; "
            "give one, or one per glob"
        )
    units: list[Unit] = []
    seen: set[str] = set()
    for idx, pattern in enumerate(config.documents):
        pattern = io.normalize(pattern)
        files = io.glob(pattern)
        if not files:
            raise ConfigError(f"warc: no files match documents pattern '{pattern}'")
        dest = io.normalize(destinations[idx] if len(destinations) > 1 else destinations[0])
        for path in files:
            if path in seen:
                continue
            seen.add(path)
            out = destination_path(path, pattern, dest)
            out = io.join(io.dirname(out), output_name(io.basename(out)))
            units.append(Unit(input=path, outputs=(out,)))
    outputs = [u.outputs[0] for u in units]
    if len(set(outputs)) != len(outputs):
        clash = next(o for o in outputs if outputs.count(o) > 1)
        raise ConfigError(
            f"warc: two WARC files map to the same documents file {clash} (e.g. x.warc and x.warc.gz); give "
            "them distinct destinations"
        )
    check_outputs("warc", [u.input for u in units], outputs, document_dir=None)
    return units


def degraded_records(summary: Summary) -> list[str]:
    """The run summary's reasons for records lost to damage or limits, and for files that ended early.

    Records left out by design (not HTTP 200, not HTML, no text, dropped by a pre/post tagger's `skip`) are
    counted but do not degrade the run: a crawl is expected to hold them."""
    from dolma.warc.extract import BY_DESIGN, SKIP_REST_OF_FILE

    counters = summary.stats.counters
    skipped = sum(v for k, v in counters.items() if k.startswith("records skipped") and k not in BY_DESIGN)
    cut = counters.get(SKIP_REST_OF_FILE, 0)
    reasons = [f"{skipped:,} damaged or oversized WARC record(s) skipped (see the 'records skipped' counters)"]
    reasons = reasons if skipped else []
    return reasons + ([f"{cut:,} WARC file(s) ended early (truncated or corrupt)"] if cut else [])


def report_skipped(summary: Summary) -> None:
    """A loud line when records were skipped: how many and why (printed even with --quiet)."""
    from rich.console import Console

    from dolma.warc.extract import SKIP_REST_OF_FILE

    skipped = {k: v for k, v in summary.stats.counters.items() if k.startswith("records skipped") and v}
    cut = summary.stats.counters.get(SKIP_REST_OF_FILE, 0)
    if not skipped and not cut:
        return
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    total = sum(skipped.values())
    reasons = ", ".join(f"{v:,} {k.removeprefix('records skipped: ')}" for k, v in sorted(skipped.items()))
    console.print(f"[bold yellow]SKIPPED[/bold yellow] {total:,} record(s) did not become documents: {reasons}")
    if cut:
        console.print(
            f"[bold red]DAMAGED[/bold red] {cut:,} file(s) ended early (truncated or corrupt); their documents "
            "before the damage were kept"
        )


def run(config: WarcConfig) -> int:
    io.configure_s3(config.s3)
    units = plan(config)
    if config.dryrun:
        for unit in units:
            print(f"{unit.input} -> {unit.outputs[0]}")
        print(f"{len(units)} file(s), linearizer: {config.linearizer}")
        return 0
    started = now()
    executor = make_executor(config, "warc")
    summary = executor.run(WarcJob(config), units)
    finish_run(
        summary,
        command="warc",
        title=f"dolma warc: {config.source_name} ({config.linearizer})",
        config=config,
        outputs=[unit.outputs[0] for unit in units],
        started=started,
        extra={"degraded": degraded_records(summary)},
    )
    report_skipped(summary)
    return 0 if summary.ok else 1
