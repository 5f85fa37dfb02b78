"""The fault suite's machinery (test support code): workloads for every command, faults, checks and figures.

A case runs one command (`tag`, `dedupe`, `mix`, `tokens`) on a small fixed corpus, locally or on S3, injects
one kind of fault at a seeded random moment, and checks the criterion of issue 14: the command finishes with
outputs byte-identical to a clean run, or fails non-zero within the stated time with nothing partial visible
(no non-hidden file or object that differs from the clean run's). Killed and stopped runs are then rerun
and must complete byte-identical. Every case records its figures for the table in docs/faults.md (`make faults`).

Workspaces have fixed paths per command (outputs such as the tokens index record input paths), and are
reset before every run.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dolma.executors.summary import is_run_summary

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ("tag", "dedupe", "mix", "tokens")
S3_ARGS = {  # short timeouts so a dead endpoint fails in about a quarter of a minute
    "connect_timeout": 2,
    "read_timeout": 5,
    "request_deadline": 10,
    "part_size": 5 << 20,
}
MAX_BACKOFF = 20.0  # botocore standard retry mode: longest pause between two attempts

# stated bounds (seconds from the fault to the exit of a failing command)
BOUND_SIGTERM = 30.0
BOUND_DEAD_ENDPOINT = 2 * (
    S3_ARGS["request_deadline"] + MAX_BACKOFF + S3_ARGS["connect_timeout"] + S3_ARGS["read_timeout"]
)  # the workers' requests give up, then the driver's
BOUND_DISK = 120.0
BOUND_S3_FAULTS = 600.0
HANG = 900.0  # a run still going after this is a hang: killed and counted as a failure of the criterion


# ----------------------------------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------------------------------


def corpus(files: int = 6, per_file: int = 1500, seed: int = 0) -> dict[str, bytes]:
    """Deterministic documents (gzip, mtime 0) with repeated paragraphs and documents, so dedupe finds some."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(3000)] + ["the", "of", "and", "data", "Größe", "東京", "naïve", "🙂"]
    shared = [" ".join(rng.choices(words, k=rng.randrange(5, 40))) for _ in range(200)]
    out: dict[str, bytes] = {}
    for f in range(files):
        lines = []
        for i in range(per_file):
            paragraphs = []
            for _ in range(rng.randrange(1, 6)):
                paragraphs.append(rng.choice(shared) if rng.random() < 0.2 else " ".join(rng.choices(words, k=60)))
            doc = {"id": f"f{f}-{i}", "text": "\n".join(paragraphs), "source": "faults", "metadata": {"i": i}}
            lines.append(json.dumps(doc, ensure_ascii=False))
        raw = ("\n".join(lines) + "\n").encode()
        out[f"part-{f}.jsonl.gz"] = gzip.compress(raw, mtime=0)
    return out


TAGGERS = ["char_length_v1", "whitespace_tokenizer_v1", "gopher_v1"]


# ----------------------------------------------------------------------------------------------------------
# Storage: a local directory or an S3 bucket, with the same small interface
# ----------------------------------------------------------------------------------------------------------


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


class LocalStore:
    def __init__(self, root: Path):
        self.root = root

    def url(self, rel: str) -> str:
        return str(self.root / rel)

    def put(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def wipe(self, rel: str) -> None:
        path = self.root / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def files(self, rel: str) -> dict[str, bytes]:
        base = self.root / rel
        if not base.exists():
            return {}
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(base.rglob("*"))
            if p.is_file() and not is_run_summary(p)
        }


class S3Store:
    def __init__(self, client, bucket: str):
        self.client = client
        self.bucket = bucket

    def url(self, rel: str) -> str:
        return f"s3://{self.bucket}/{rel}"

    def put(self, rel: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=rel, Body=data)

    def _keys(self, rel: str) -> list[str]:
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=rel):
            keys.extend(obj["Key"] for obj in page.get("Contents", []) or [])
        return keys

    def wipe(self, rel: str) -> None:
        for key in self._keys(rel):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def files(self, rel: str) -> dict[str, bytes]:
        return {k: self.client.get_object(Bucket=self.bucket, Key=k)["Body"].read() for k in sorted(self._keys(rel))}

    def uploads(self) -> int:
        from botocore.exceptions import ClientError

        try:
            return len(self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []) or [])
        except ClientError:
            return 0  # rclone answers NoSuchUpload when there are none


# ----------------------------------------------------------------------------------------------------------
# Workloads
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Workload:
    """One command over the corpus in `store`: inputs under in/, outputs under the returned prefixes."""

    command: str
    store: LocalStore | S3Store
    config_dir: Path
    s3_endpoint: str | None = None

    @property
    def where(self) -> str:
        return "s3" if isinstance(self.store, S3Store) else "local"

    def output_prefixes(self) -> list[str]:
        if self.command == "dedupe":
            return ["in/attributes/dups/", "out/"]
        return ["out/"]

    def setup_inputs(self, docs: dict[str, bytes], attributes: dict[str, bytes] | None = None) -> None:
        self.store.wipe("in/")
        for name, data in docs.items():
            self.store.put(f"in/documents/{name}", data)
        for rel, data in (attributes or {}).items():
            self.store.put(f"in/{rel}", data)

    def reset_outputs(self) -> None:
        for prefix in self.output_prefixes():
            self.store.wipe(prefix)

    def outputs(self) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for prefix in self.output_prefixes():
            found.update(self.store.files(prefix))
        return found

    def config(self, processes: int = 2) -> Path:
        u = self.store.url
        docs = u("in/documents/*.jsonl.gz")
        common: dict = {"processes": processes, "quiet": True}
        if self.s3_endpoint:
            common["s3"] = {"endpoint_url": self.s3_endpoint, **S3_ARGS}
        if self.command == "tag":
            cfg = {"documents": [docs], "destination": u("out/attributes"), "taggers": TAGGERS, **common}
        elif self.command == "dedupe":
            cfg = {
                "documents": [docs],
                "dedupe": {"name": "dups", "paragraphs": {"attribute_name": "dup_paragraphs"}},
                "bloom_filter": {
                    "file": u("out/filter.bin"),
                    "estimated_doc_count": 100_000,
                    "desired_false_positive_rate": 1e-6,
                },
                **common,
            }
        elif self.command == "mix":
            cfg = {
                "streams": [
                    {
                        "name": "kept",
                        "documents": [docs],
                        "attributes": ["char_length_v1", "gopher_v1"],
                        "filter": {
                            "include": ["$.attributes[?(@.char_length_v1__char_length_v1__length[0][2] >= 300)]"],
                            "exclude": [],
                            "syntax": "jsonpath",
                        },
                        "output": {"path": u("out/mixed"), "max_size_in_bytes": 400_000},
                    }
                ],
                **common,
            }
        elif self.command == "tokens":
            cfg = {
                "documents": [docs],
                "destination": u("out/tokens"),
                "tokenizer": {"name_or_path": "allenai/gpt-neox-olmo-dolma-v1_5", "eos_token_id": 50279},
                "dtype": "uint16",
                "max_size": 200_000,
                "seed": 3,
                **common,
            }
        else:
            raise ValueError(self.command)
        path = self.config_dir / f"{self.command}-{self.where}-p{processes}.json"
        path.write_text(json.dumps(cfg))
        return path

    def argv(self, processes: int = 2) -> list[str]:
        return [sys.executable, "-m", "dolma", "-c", str(self.config(processes)), self.command]


def mix_attributes(docs: dict[str, bytes], workdir: Path, env: dict[str, str]) -> dict[str, bytes]:
    """The attribute files mix reads (tagged once, locally), keyed `attributes/<set>/<file>`."""
    store = LocalStore(workdir)
    for name, data in docs.items():
        store.put(f"documents/{name}", data)
    cmd = [sys.executable, "-m", "dolma", "tag", "--documents", str(workdir / "documents/*.jsonl.gz")]
    cmd += ["--taggers", "char_length_v1", "gopher_v1", "--processes", "2", "--quiet"]
    subprocess.run(cmd, check=True, env=env)
    return store.files("attributes/")


# ----------------------------------------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    return int(fields[1]), fields[0].decode(), int(fields[19])


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every process below `pid`."""
    parents: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None:
                parents.setdefault(info[0], []).append((int(entry), info[2]))
    out: list[tuple[int, int]] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child[0])
    return out


def still_running(procs: list[tuple[int, int]]) -> list[int]:
    alive = []
    for pid, started in procs:
        info = _stat(pid)
        if info is not None and info[2] == started and info[1] != "Z":
            alive.append(pid)
    return alive


@dataclass
class Run:
    code: int | None
    seconds: float
    stderr: str
    fault_at: float | None = None  # seconds after start
    exit_after_fault: float | None = None
    orphans: int = 0
    hung: bool = False


def run(
    argv: list[str],
    env: dict[str, str],
    fault: Callable[[subprocess.Popen], None] | None = None,
    fault_at: float | None = None,
) -> Run:
    """Run a command; at `fault_at` seconds call `fault(proc)` (unless it has already exited)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read() if proc.stderr else ""), daemon=True)
    reader.start()
    tree: list[tuple[int, int]] = []
    injected = None
    if fault is not None and fault_at is not None:
        while time.monotonic() - start < fault_at and proc.poll() is None:
            tree = descendants(proc.pid) or tree
            time.sleep(0.02)
        if proc.poll() is None:
            tree = descendants(proc.pid) or tree
            fault(proc)
            injected = time.monotonic()
    hung = False
    try:
        proc.wait(timeout=HANG)
    except subprocess.TimeoutExpired:
        hung = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    end = time.monotonic()
    orphans = 0
    if injected is not None:
        # the command's processes must be gone shortly after it exits
        deadline = time.monotonic() + 5.0
        while still_running(tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = still_running(tree)
        orphans = len(left)
        for pid in left:  # clean up for the next case
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=5)
    return Run(
        code=proc.returncode,
        seconds=end - start,
        stderr="".join(stderr),
        fault_at=None if injected is None else injected - start,
        exit_after_fault=None if injected is None else end - injected,
        orphans=orphans,
        hung=hung,
    )


def kill_main(sig: int) -> Callable[[subprocess.Popen], None]:
    return lambda proc: os.kill(proc.pid, sig)


def kill_worker(rng: random.Random) -> Callable[[subprocess.Popen], None]:
    """SIGKILL one of the command's worker processes (the main process itself if it has none)."""

    def fault(proc: subprocess.Popen) -> None:
        workers = [pid for pid, _ in descendants(proc.pid) if _is_python_worker(pid)]
        os.kill(rng.choice(workers) if workers else proc.pid, signal.SIGKILL)

    return fault


def _is_python_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read().split(b"\0")
    except OSError:
        return False
    return b"-c" in cmd and any(b"spawn_main" in part for part in cmd)


# ----------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    kind: str
    command: str
    where: str
    seed: int
    faults: int = 0
    runs: int = 0
    identical: bool = False  # final outputs (after the rerun, if any) equal the clean run's
    failed_cleanly: bool = False  # the faulty run failed non-zero within its bound, nothing partial visible
    time_to_fail: float | None = None
    partial_visible: list[str] = field(default_factory=list)
    orphans: int = 0
    traceback: bool = False
    ok: bool = False  # the criterion, as each kind states it (see test_faults.py)
    detail: str = ""


RESULTS: list[CaseResult] = []
STARTED = time.monotonic()


def partial(visible_now: dict[str, bytes], clean: dict[str, bytes]) -> list[str]:
    """Visible files or objects that are not exactly the clean run's (hidden temporaries do not count)."""
    return sorted(rel for rel, data in visible_now.items() if not _hidden(rel) and clean.get(rel) != data)


def visible(files: dict[str, bytes]) -> dict[str, bytes]:
    return {rel: data for rel, data in files.items() if not _hidden(rel)}


def summary_table(results: list[CaseResult]) -> str:
    """The README table: one row per fault kind."""
    rows: dict[str, list[CaseResult]] = {}
    for result in results:
        rows.setdefault(result.kind, []).append(result)
    lines = [
        "| case | commands | runs | faults | outputs identical | failed non-zero in time (max) | partial visible "
        "| processes left | criterion met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in sorted(rows, key=lambda k: list(KIND_TITLES).index(k) if k in KIND_TITLES else 99):
        group = rows[kind]
        where = sorted({r.where for r in group})
        commands = f"{len({r.command for r in group})} ({', '.join(where)})"
        fails = [r.time_to_fail for r in group if r.failed_cleanly and r.time_to_fail is not None]
        worst = f" ({max(fails):.1f} s)" if fails else ""
        lines.append(
            f"| {KIND_TITLES.get(kind, kind)} | {commands} | {sum(r.runs for r in group)} "
            f"| {sum(r.faults for r in group)} | {sum(r.identical for r in group)}/{len(group)} "
            f"| {sum(r.failed_cleanly for r in group)}/{len(group)}{worst} "
            f"| {sum(bool(r.partial_visible) for r in group)} | {sum(r.orphans for r in group)} "
            f"| {sum(r.ok for r in group)}/{len(group)} |"
        )
    return "\n".join(lines)


KIND_TITLES = {
    "kill9": "kill -9 of the command, then rerun",
    "kill9-worker": "kill -9 of a worker",
    "sigterm": "SIGTERM, then rerun (no orphans)",
    "s3-resets": "S3: connection reset mid-answer (every 5th request)",
    "s3-slowdown": "S3: 503 SlowDown (every 6th request)",
    "s3-delays": "S3: answers delayed 1 s (every 10th) or 7 s > read timeout (every 40th)",
    "s3-restart": "S3: server restart mid-run",
    "s3-dead": "S3: endpoint dies mid-run",
    "s3-read-only": "S3: read-only store",
    "disk-full": "disk full (small tmpfs)",
    "read-only": "read-only destination",
}


def record(result: CaseResult) -> CaseResult:
    RESULTS.append(result)
    return result


def dump(path: Path) -> None:
    path.write_text(json.dumps([asdict(r) for r in RESULTS], indent=1) + "\n")


README_START = "<!-- faults:start (written by make faults) -->"
README_END = "<!-- faults:end -->"


def write_readme(readme: Path, table: str, seeds: tuple[int, int]) -> None:
    """Replace the figures between the markers of the fault page (docs/faults.md, passed in by conftest)."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    minutes = (time.monotonic() - STARTED) / 60
    body = (
        f"\n`make faults FAULT_SEEDS={seeds[0]} FAULT_S3_SEEDS={seeds[1]}` ({minutes:.0f} min on 2 shared cores, "
        f"{time.strftime('%Y-%m-%d')}):\n\n{table}\n"
    )
    readme.write_text(head + README_START + body + README_END + tail)
