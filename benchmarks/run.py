"""Run every benchmark stage for this project, the reference toolkit and datatrove; write JSON, Markdown, docs.

    python -m benchmarks.run --size-mb 300            # what `make bench` runs (BENCH_SIZE_MB=300)
    python -m benchmarks.run --stages tag --only gopher --repeats 1   # a part of it


Steps: build the corpus if it is missing (benchmarks/corpus/build_bench.py, into benchmarks/data/), collect the
cases of every stage plugin (benchmarks/stages/), run them interleaved `--repeats` times with 1 and 2 processes,
and write benchmarks/results/bench-<size>mb.{json,md}; `--readme` also puts the table between the
`<!-- bench:start -->` / `<!-- bench:end -->` markers of docs/benchmarks.md. The reference and datatrove virtual
environments are made by the Makefile (`make reference`, `make datatrove`); a missing one is skipped with a note.
The reference defaults to `$DOLMA_REFERENCE_PYTHON`'s `dolma` (else `.venv-ref/bin/dolma`).

Cases with an input cap (see benchmarks/harness.py, "Inputs") read a subset of the corpus; `--input-scale`
multiplies the caps (0 = no caps: every case reads the whole corpus, which takes hours with the reference).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import harness  # noqa: E402
from benchmarks.stages import MODULES, STAGES  # noqa: E402

LID_URL = "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"
# Where datatrove's LanguageFilter looks for a downloaded lid.176.bin (found by running it offline).
DATATROVE_LID = (
    "huggingface/assets/datatrove/lid/ft176/https:__dl.fbaipublicfiles.com_fasttext_supervised-models_lid.176.bin"
)


def corpus_dir(size_mb: float) -> Path:
    return REPO / "benchmarks" / "data" / f"corpus-{size_mb:g}mb"


def ensure_corpus(size_mb: float, fetch: bool) -> Path:
    out = corpus_dir(size_mb)
    if (out / "COMPLETE").exists():
        return out
    cmd = [sys.executable, str(REPO / "benchmarks" / "corpus" / "build_bench.py"), "--out", str(out)]
    cmd += ["--size-mb", f"{size_mb:g}"] + (["--fetch"] if fetch else [])
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    return out


def forget_stale_inputs(scratch: Path, corpus: Path) -> None:
    """Drop subsets and mixer attributes made from an earlier build of this corpus (they are keyed by its name)."""
    stamp = scratch / f"{corpus.name}.complete"
    digest = (corpus / "COMPLETE").read_text()
    if stamp.exists() and stamp.read_text() == digest:
        return
    for old in [*(scratch / "inputs").glob(f"{corpus.name}-*"), *scratch.glob(f"mix-attributes-{corpus.name}*")]:
        shutil.rmtree(old, ignore_errors=True)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)


def offline_env(scratch: Path, lid_model: str) -> dict[str, str]:
    """Environment for reference/datatrove runs: no network; their fastText caches hold the model we ship."""
    cache = scratch / "xdg-cache"
    for target in (cache / "dolma" / f"{hashlib.sha256(LID_URL.encode()).hexdigest()}.176.bin", cache / DATATROVE_LID):
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(lid_model, target)
    (cache / f"{DATATROVE_LID}.completed").touch()  # datatrove's marker of a finished download
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    env.update({"XDG_CACHE_HOME": str(cache), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


def list_taggers(exe: Path | None, env: dict | None = None) -> set[str]:
    if exe is None:
        return set()
    env = {**(env or os.environ), "COLUMNS": "250"}
    proc = subprocess.run([str(exe), "list", "--plain"], capture_output=True, text=True, env=env)
    if proc.returncode != 0:  # the reference has no --plain; it prints a table
        proc = subprocess.run([str(exe), "list"], capture_output=True, text=True, env=env)
    names = set()
    for line in proc.stdout.splitlines():
        # ours prints "name<TAB>class<TAB>summary"; the reference prints a table with the name first.
        parts = line.replace("│", " ").replace("|", " ").split()
        if parts and parts[0].replace("_", "").isalnum() and any(c.isdigit() for c in parts[0]):
            names.add(parts[0])
    return names


def our_commands(python: Path) -> set[str]:
    code = "from dolma.commands import COMMANDS; print(' '.join(COMMANDS))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return set(out.stdout.split())


def all_ids(corpus: Path) -> list[str]:
    import gzip

    ids = []
    for f in sorted((corpus / "documents").glob("*/*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            ids.extend(json.loads(line)["id"] for line in fh if line.strip())
    return ids


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def optional(path: str | None) -> Path | None:
    return Path(path).absolute() if path and Path(path).exists() else None


def print_estimate(results: Path, size_mb: float, repeats: int, scale: float, from_cpu: bool) -> int:
    rows = json.loads(results.read_text())["rows"]
    total, parts = harness.estimate_seconds(rows, size_mb, repeats, scale, from_cpu)
    for stage, case, impl, p, mb, secs in sorted(parts, key=lambda x: -x[-1]):
        print(f"{secs:8.1f} s  {stage} | {case} | {impl} p={p} ({mb:g} MB)")
    print(f"estimated: {total / 60:.1f} min of measured runs ({repeats} repeats, {size_mb:g} MB corpus),")
    print("plus the corpus build, the subsets and the mixer's attributes (untimed preparation)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=float(os.environ.get("BENCH_SIZE_MB") or 300))
    ap.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS") or 3))
    ap.add_argument("--processes", default="1,2")
    ap.add_argument("--stages", default=os.environ.get("BENCH_STAGES") or ",".join(STAGES), help="comma-separated")
    ap.add_argument(
        "--only", default=os.environ.get("BENCH_ONLY", ""), help="run only cases whose 'stage: case' contains this"
    )
    ap.add_argument("--input-scale", type=float, default=float(os.environ.get("BENCH_INPUT_SCALE") or 1))
    ref_python = os.environ.get("DOLMA_REFERENCE_PYTHON")
    default_ref = Path(ref_python).parent / "dolma" if ref_python else REPO / ".venv-ref" / "bin" / "dolma"
    ap.add_argument("--reference", default=str(default_ref))
    ap.add_argument("--datatrove-python", default=str(REPO / ".venv-datatrove" / "bin" / "python"))
    ap.add_argument("--fetch", action="store_true", help="let the corpus builder apt-get download its sources")
    ap.add_argument(
        "--readme", action="store_true", help="write the table into docs/benchmarks.md between the markers"
    )
    ap.add_argument("--note", default="", help="a line printed above the table (e.g. about machine load)")
    ap.add_argument("--estimate-from", help="print the estimated duration of this run from a results JSON and exit")
    ap.add_argument("--from-cpu", action="store_true", help="estimate from CPU time (results of a loaded machine)")
    args = ap.parse_args(argv)
    if args.estimate_from:
        return print_estimate(Path(args.estimate_from), args.size_mb, args.repeats, args.input_scale, args.from_cpu)

    stages = [s.strip() for s in args.stages.split(",")]
    scratch = REPO / "benchmarks" / "data" / "runs"
    if set(stages) <= {"warc"}:  # the warc stage reads a WARC corpus of its own (see benchmarks/stages/warc.py)
        corpus = corpus_dir(args.size_mb)
        gt: dict = {"num_documents": 0, "text_bytes": 0, "files": []}
    else:
        corpus = ensure_corpus(args.size_mb, args.fetch)
        gt = json.loads((corpus / "ground_truth.json").read_text())
        forget_stale_inputs(scratch, corpus)
    from taggers.language import SHIPPED_LID_MODEL

    env = offline_env(scratch, SHIPPED_LID_MODEL)
    ours = Path(sys.executable).parent / "dolma"
    reference = optional(args.reference)
    ctx = harness.Context(
        corpus=corpus,
        ground_truth=gt,
        ours=ours,
        reference=reference,
        datatrove_python=optional(args.datatrove_python),
        our_commands=our_commands(Path(sys.executable)),
        our_taggers=list_taggers(ours),
        reference_taggers=list_taggers(reference, env),
        reference_env=env,
        scratch=scratch,
        all_ids=all_ids(corpus) if gt["files"] else [],
        lid_model=SHIPPED_LID_MODEL,
        input_scale=args.input_scale,
    )
    cases = []
    for stage in stages:
        cases += importlib.import_module(f"benchmarks.stages.{MODULES[stage]}").cases(ctx)
    cases = [c for c in cases if args.only.lower() in f"{c.stage}: {c.name}".lower()]
    processes = [int(p) for p in args.processes.split(",")]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = harness.run_cases(cases, ctx, processes, args.repeats, log=lambda s: print(s, file=sys.stderr, flush=True))

    size = f"{gt['text_bytes'] / 1e6:.0f} MB of text, {gt['num_documents']:,} documents"
    files = sum(f["bytes"] for f in gt["files"]) / 1e6
    result = {
        "started": started,
        "machine": machine(),
        "corpus": {
            "path": str(corpus.relative_to(REPO)),
            "size_mb": args.size_mb,
            "text_bytes": gt["text_bytes"],
            "num_documents": gt["num_documents"],
            "gzip_mb": round(files, 1),
        },
        "repeats": args.repeats,
        "processes": processes,
        "reference": str(reference) if reference else None,
        "datatrove": str(ctx.datatrove_python) if ctx.datatrove_python else None,
        "rows": rows,
    }
    partial = sorted(stages) != sorted(STAGES) or bool(args.only)
    warc_only = set(stages) <= {"warc"}
    name = f"bench-warc-{os.environ.get('BENCH_WARC_MB') or 100}mb" if warc_only else f"bench-{args.size_mb:g}mb"
    if partial and (args.only or not warc_only):  # a part of the suite must not overwrite the full results
        name += "-" + harness.slug(args.only or "-".join(stages))
    out = REPO / "benchmarks" / "results" / name
    harness.write_json(out.with_suffix(".json"), result)
    cmd = "make bench" + (f" BENCH_SIZE_MB={args.size_mb:g}" if args.size_mb != 300 else "")
    cmd += f" BENCH_REPEATS={args.repeats}" if args.repeats != 3 else ""
    cmd += f" BENCH_STAGES={','.join(stages)}" if sorted(stages) != sorted(STAGES) else ""
    cmd += f" BENCH_ONLY='{args.only}'" if args.only else ""
    cmd += f" BENCH_INPUT_SCALE={args.input_scale:g}" if args.input_scale != 1 else ""
    warc_mb = os.environ.get("BENCH_WARC_MB")
    cmd += f" BENCH_WARC_MB={warc_mb}" if warc_mb and "warc" in stages else ""
    text = "\n".join(
        [
            (
                "WARC corpus: see benchmarks/stages/warc.py (built by `benchmarks/corpus/build_warc.py`). "
                if warc_only
                else f"Corpus: {size} ({files:.0f} MB gzip), built by `benchmarks/corpus/build_bench.py`. "
            )
            + f"Run {started} on {result['machine']}. Median of {args.repeats} interleaved runs; CPU = user + system "
            "time of the process tree; peak RSS = the largest single process. Reproduce with "
            f"`{cmd}`. Cases with an input cap read the same subset of the corpus for every implementation "
            "(the first documents of each corpus file; `input MB` = MB of document text read, on which the rates "
            "are computed); see docs/benchmarks.md.",
            *([f"\n**{args.note}**"] if args.note else []),
            "",
            harness.markdown_table(rows),
            "",
        ]
    )
    out.with_suffix(".md").write_text(text)
    print(text)
    if args.readme and partial:
        print("not writing docs/benchmarks.md: this run covers only some stages or cases", file=sys.stderr)
    elif args.readme:
        readme = REPO / "docs" / "benchmarks.md"
        readme.write_text(harness.replace_between_markers(readme.read_text(), text))
    return 0 if all(r["status"] != "failed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
