"""Benchmark harness: stage plugins, measured runs, medians and the Markdown table.

A stage plugin (``benchmarks/stages/<stage>.py``) exposes ``cases(ctx) -> list[Case]``. A ``Case`` names one
workload (e.g. "tag: length taggers") and gives, per implementation ("ours", "reference", "datatrove", "datasketch"), a
function that lays out a fresh work directory and returns the command to time, plus an optional ``check`` that
reads the outputs and returns quality numbers (recall, kept counts, ...). A case whose command does not exist in
this project yet is returned with ``missing`` set and shows up as a "not implemented yet" row.

Timing: every command runs under ``benchmarks/timer.py`` (a child subreaper), which reports its wall time, the
CPU time (user + system) of the whole process tree and its peak resident set (``ru_maxrss``: the largest single
process of the tree, not the sum over processes). The timer's own Python start-up (~20 ms) is not included.

Inputs: a case may set ``input_mb`` (a cap in MB of document text). Every implementation of that case then reads
the same subset of the corpus: the first documents of every corpus file, the same share of each file's text, so
the mix of sources and languages is kept (made once, untimed, under the scratch directory). This keeps the
reference's slow stages (repetition taggers, n-gram dedupe, ...) within the time budget while every row stays a
like-for-like comparison; the table shows the input size of each row and rates are computed on it.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

IMPLS = ("ours", "reference", "datatrove", "datasketch")
TIMER = Path(__file__).resolve().parent / "timer.py"


@dataclasses.dataclass
class Command:
    argv: list[str]
    cwd: Path
    env: dict[str, str] | None = None


@dataclasses.dataclass
class Impl:
    """One implementation of a case: `prepare(workdir, processes)` lays out inputs and returns the command."""

    prepare: Callable[[Path, int], Command]
    check: Callable[[Path], dict] | None = None
    note: str = ""


@dataclasses.dataclass
class Case:
    stage: str
    name: str
    impls: dict[str, Impl] = dataclasses.field(default_factory=dict)
    missing: str = ""  # non-empty: not implemented in this project yet (the reason is shown)
    notes: list[str] = dataclasses.field(default_factory=list)
    count_tokens: Callable[[Path], int] | None = None  # tokens written (tokens stage), read from each output
    input_mb: float | None = None  # cap on the input (MB of text); None: the whole corpus (see module doc)
    input: Input | None = None  # an input of its own (e.g. WARC files: docs = records, MB = MB of WARC)


@dataclasses.dataclass
class Input:
    """The documents one case reads: `root/documents/<source>/*.jsonl.gz`, with their ids and text size."""

    root: Path
    ids: list[str]
    text_bytes: int
    docs: int | None = None  # the number of documents, if `ids` is not given in full

    @property
    def num_documents(self) -> int:
        return len(self.ids) if self.docs is None else self.docs

    @property
    def mb(self) -> float:
        return self.text_bytes / 1e6


@dataclasses.dataclass
class Context:
    """What plugins need: the corpus, the tools, and what this project's CLI offers."""

    corpus: Path
    ground_truth: dict
    ours: Path  # this project's `dolma` executable
    reference: Path | None  # the reference toolkit's `dolma` executable
    datatrove_python: Path | None
    our_commands: set[str]
    our_taggers: set[str]
    reference_taggers: set[str]
    reference_env: dict[str, str]
    scratch: Path
    all_ids: list[str] = dataclasses.field(default_factory=list)
    lid_model: str = ""
    input_scale: float = 1.0  # multiplies every case's input_mb (0: no caps, every case reads the whole corpus)
    current: Input | None = None  # the input of the case being run (set by run_cases)
    _inputs: dict = dataclasses.field(default_factory=dict)

    @property
    def documents_glob(self) -> str:
        return "documents/*/*.jsonl.gz"

    @property
    def input_root(self) -> Path:
        return self.current.root if self.current else self.corpus

    @property
    def input_ids(self) -> list[str]:
        return self.current.ids if self.current else self.all_ids

    def input_for(self, cap_mb: float | None) -> Input:
        """The input of a case with this cap (the whole corpus if the cap is None or not below its size)."""
        total = self.ground_truth.get("text_bytes", 0)
        cap = None if cap_mb is None or self.input_scale <= 0 else cap_mb * self.input_scale * 1e6
        if cap is None or cap >= total:
            cap = None
        key = cap and round(cap / 1e6, 6)
        if key not in self._inputs:
            if key is None:
                self._inputs[key] = Input(self.corpus, self.all_ids, total, self.ground_truth.get("num_documents"))
            else:
                self._inputs[key] = make_subset(self.corpus, self.ground_truth, key, self.scratch / "inputs")
        return self._inputs[key]


def make_subset(corpus: Path, gt: dict, mb: float, base: Path) -> Input:
    """The first documents of every corpus file, the same share (mb / corpus text) of each file's text.

    Lines are copied verbatim (gzip level 6, mtime 0), so the subset is deterministic; cached under `base`.
    """
    root = base / f"{corpus.name}-{mb:g}mb"
    stats = root / "input.json"
    if stats.exists():
        info = json.loads(stats.read_text())
        return Input(root, info["ids"], info["text_bytes"])
    if root.exists():
        shutil.rmtree(root)
    share = mb * 1e6 / gt["text_bytes"]
    ids: list[str] = []
    text_bytes = 0
    for f in sorted(gt["files"], key=lambda f: f["path"]):
        src = corpus / f["path"]
        with gzip.open(src, "rb") as fh:
            lines = [line for line in fh if line.strip()]
        recs = [json.loads(line) for line in lines]
        sizes = [len(r["text"].encode()) for r in recs]
        target = share * sum(sizes)
        taken = 0
        n = 0
        while n < len(recs) and (n == 0 or taken < target):
            taken += sizes[n]
            n += 1
        dst = root / f["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(dst, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.writelines(lines[:n])
        ids += [r["id"] for r in recs[:n]]
        text_bytes += taken
    write_json(stats, {"ids": ids, "text_bytes": text_bytes})
    return Input(root, ids, text_bytes)


@dataclasses.dataclass
class Measurement:
    wall: float
    cpu: float
    max_rss_mb: float
    returncode: int


def measure(cmd: Command, log: Path) -> Measurement:
    """Run a command under benchmarks/timer.py and return the resource usage of its whole process tree."""
    log.parent.mkdir(parents=True, exist_ok=True)
    report = log.with_suffix(".usage.json")
    report.unlink(missing_ok=True)
    with log.open("wb") as out:
        subprocess.run(
            [sys.executable, str(TIMER), str(report), "--", *cmd.argv],
            cwd=cmd.cwd,
            env=cmd.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if not report.exists():
        return Measurement(0.0, 0.0, 0.0, -1)
    r = json.loads(report.read_text())
    return Measurement(r["wall"], r["cpu"], r["max_rss_mb"], r["returncode"])


def link_documents(corpus: Path, workdir: Path) -> None:
    """A fresh work directory whose documents/ is a symlink to the corpus (outputs land beside it)."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / "documents").symlink_to((corpus / "documents").resolve(), target_is_directory=True)


def run_cases(
    cases: list[Case],
    ctx: Context,
    processes: list[int],
    repeats: int,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Interleaved runs: repeat r runs every (case, processes, impl) once, rotating the implementation order."""
    samples: dict[tuple[str, str, int, str], list[Measurement]] = {}
    quality: dict[tuple[str, str, int, str], dict] = {}
    tokens: dict[tuple[str, str, int, str], int] = {}
    inputs: dict[tuple[str, str], Input] = {}
    for r in range(repeats):
        for case in cases:
            if case.missing:
                continue
            ctx.current = inputs.setdefault((case.stage, case.name), case.input or ctx.input_for(case.input_mb))
            names = [n for n in IMPLS if n in case.impls]
            names = names[r % len(names) :] + names[: r % len(names)]
            for p in processes:
                for name in names:
                    impl = case.impls[name]
                    key = (case.stage, case.name, p, name)
                    workdir = ctx.scratch / f"{case.stage}-{slug(case.name)}-{name}-p{p}"
                    cmd = impl.prepare(workdir, p)
                    m = measure(cmd, ctx.scratch / "logs" / f"{workdir.name}-r{r}.log")
                    status = "ok" if m.returncode == 0 else f"FAILED rc={m.returncode}"
                    log(f"[{r + 1}/{repeats}] {case.stage} | {case.name} | {name} p={p}: {m.wall:.2f}s {status}")
                    samples.setdefault(key, []).append(m)
                    if m.returncode == 0 and key not in quality:
                        if impl.check:
                            quality[key] = impl.check(workdir)
                        if case.count_tokens:
                            tokens[key] = case.count_tokens(workdir)
                    if r == repeats - 1:
                        shutil.rmtree(workdir, ignore_errors=True)
    ctx.current = None
    return summarize(cases, ctx, processes, samples, quality, tokens, inputs)


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def summarize(cases, ctx, processes, samples, quality, tokens, inputs=None) -> list[dict]:
    gt = ctx.ground_truth
    rows = []
    for case in cases:
        if case.missing:
            rows.append({"stage": case.stage, "case": case.name, "status": "not implemented yet", "why": case.missing})
            continue
        inp = (inputs or {}).get((case.stage, case.name))
        n_docs = inp.num_documents if inp else gt["num_documents"]
        mb = inp.mb if inp else gt.get("text_bytes", 0) / 1e6
        for p in processes:
            for name in IMPLS:
                ms = samples.get((case.stage, case.name, p, name))
                if not ms:
                    continue
                ok = [m for m in ms if m.returncode == 0]
                row = {
                    "stage": case.stage,
                    "case": case.name,
                    "impl": name,
                    "processes": p,
                    "input_mb": round(mb, 1),
                    "input_cap_mb": case.input_mb,
                    "input_docs": n_docs,
                    "runs": len(ms),
                    "failed_runs": len(ms) - len(ok),
                    "status": "ok" if ok and len(ok) == len(ms) else "failed",
                    "note": case.impls[name].note,
                }
                if ok:
                    wall = statistics.median(m.wall for m in ok)
                    row.update(
                        wall_s=round(wall, 3),
                        cpu_s=round(statistics.median(m.cpu for m in ok), 3),
                        max_rss_mb=round(max(m.max_rss_mb for m in ok), 1),
                        walls=[round(m.wall, 3) for m in ms],
                        docs_per_s=round(n_docs / wall, 1),
                        mb_per_s=round(mb / wall, 2),
                    )
                    t = tokens.get((case.stage, case.name, p, name))
                    if t:
                        row["tokens"] = t
                        row["tokens_per_s"] = round(t / wall)
                row["quality"] = quality.get((case.stage, case.name, p, name), {})
                rows.append(row)
    return rows


def estimate_seconds(
    rows: list[dict], size_mb: float, repeats: int, scale: float = 1.0, from_cpu: bool = False
) -> tuple[float, list]:
    """Extrapolate the wall time of a run at `size_mb` from the rows of a (smaller) run.

    Each measured row's median wall time is split into a fixed start-up part (the smaller of 2 s and half the
    time) and a part proportional to its input, which is rescaled to the input the case would read at `size_mb`
    (its cap times `scale`, at most the corpus). Returns the total (all rows, `repeats` times) and per-row
    (stage, case, impl, processes, input MB, seconds). `from_cpu`: take CPU seconds / processes instead of the
    wall time (for a run measured on a loaded machine, whose wall times are inflated by waiting for a core).
    """
    total = 0.0
    parts = []
    for r in rows:
        if "wall_s" not in r or not r.get("input_mb"):
            continue
        cap = r.get("input_cap_mb")
        target = size_mb if cap is None or scale <= 0 else min(size_mb, cap * scale)
        wall = r["cpu_s"] / r["processes"] if from_cpu else r["wall_s"]
        fixed = min(2.0, wall / 2)
        secs = fixed + (wall - fixed) * target / r["input_mb"]
        parts.append((r["stage"], r["case"], r["impl"], r["processes"], target, secs))
        total += secs * repeats
    return total, parts


def fmt_mb(mb: float) -> str:
    return f"{mb:.1f}" if mb < 10 else f"{mb:.0f}"


def fmt_quality(q: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in q.items())


def markdown_table(rows: list[dict]) -> str:
    """One line per (case, processes, implementation); "wall ours / this" below 1 means ours is faster."""
    head = (
        "| stage | case | impl | procs | input MB | wall s (median) | CPU s | peak RSS MB | docs/s | MB/s | tokens/s "
        "| wall ours / this | quality |\n"
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    )
    lines = [head]
    ours_wall = {(r["stage"], r["case"], r["processes"]): r.get("wall_s") for r in rows if r.get("impl") == "ours"}
    for r in rows:
        if r["status"] == "not implemented yet":
            lines.append(f"| {r['stage']} | {r['case']} | — | | | | | | | | | | not implemented yet ({r['why']}) |")
            continue
        if "wall_s" not in r:
            lines.append(
                f"| {r['stage']} | {r['case']} | {r['impl']} | {r['processes']} | {r.get('input_mb', '')} "
                "| failed | | | | | | | |"
            )
            continue
        ratio = ""
        ow = ours_wall.get((r["stage"], r["case"], r["processes"]))
        if r["impl"] != "ours" and ow:
            ratio = f"{ow / r['wall_s']:.2f}"
        tps = f"{r['tokens_per_s']:,}" if r.get("tokens_per_s") else ""
        qual = fmt_quality(r.get("quality", {}))
        if r.get("note"):
            qual = f"{qual}; {r['note']}" if qual else r["note"]
        lines.append(
            f"| {r['stage']} | {r['case']} | {r['impl']} | {r['processes']} | {fmt_mb(r.get('input_mb', 0))} "
            f"| {r['wall_s']:.2f} | {r['cpu_s']:.2f} "
            f"| {r['max_rss_mb']:.0f} | {r['docs_per_s']:,.0f} | {r['mb_per_s']:.2f} | {tps} | {ratio} | {qual} |"
        )
    return "\n".join(lines)


def replace_between_markers(text: str, new: str, start: str = "<!-- bench:start -->", end: str = "<!-- bench:end -->"):
    """Replace what is between the markers (appending a marked block at the end if they are missing)."""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        return f"{head}{start}\n{new.strip()}\n{end}{tail}"
    return f"{text.rstrip()}\n\n{start}\n{new.strip()}\n{end}\n"


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
