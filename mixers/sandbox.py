"""The rule sandbox: a mix stream's jq expressions run in a separate process that has nothing to reach.

Longer than 400 lines because both sides of one small protocol (the mixer's client, the sandbox's server)
belong together.

Why a process: libjq can read the environment (`env`, `$ENV`), module files (`import`, `include`,
`modulemeta`) and `$HOME/.jq` (which it includes by itself), and a program can run forever inside C
(`def f: f; f`, `[range(1e18)]`, a backtracking regex) while holding the GIL, where no Python timer or thread
can stop it. Only killing a process stops it for sure. The sandbox process:

- starts from an empty environment; HOME and the working directory are a fresh empty directory, so there is
  no `~/.jq`; its only channels are a pipe in, a pipe out and a 24-byte progress record;
- compiles the stream's rules with the shadowing prefix of `mixers.jq_rules` (blocked builtins fail to compile
  with a message naming them; `import` / `include` are syntax errors), caps its address space
  (`rule_memory_mb`), core dumps and open files, and on Linux dies with its parent;
- decides documents in batches (JSON lines in, verdicts out) and writes to the progress record which document
  and rule it is running and since when. The mixer waits for each batch with that deadline in view: a document
  whose rules run longer than `rule_timeout` seconds gets the sandbox killed (SIGKILL works whatever the child
  is doing) and fails its unit with the file, the line and the rule named. The next batch starts a new one.

A stream with any jq expression has all of its rules decided here (one place keeps the include / exclude /
span order); JSONPath and typed rules alone run in the mixer, where their cost is linear in the document.
Cost per document: one msgspec encode in the mixer, and libjq parsing the text once per jq rule (jq.py did the
same after a json.dumps of the dict for every rule); batching makes the pipe round trips negligible.
"""

from __future__ import annotations

import atexit
import contextlib
import mmap
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from functools import partial
from typing import Any

import msgspec

from dolma.errors import DolmaError
from mixers.jq_rules import JqRuntimeError
from mixers.jsonpath_eval import RuleError
from mixers.mix_config import RULE_MEMORY_MB, RULE_TIMEOUT, Stream
from mixers.rules import Decision, StreamRules

BATCH_DOCS = 256
BATCH_BYTES = 1 << 20
"""A batch ends at this many documents or encoded bytes, whichever comes first."""

STARTUP_SECONDS = 120.0
"""How long the sandbox may take to start and compile the rules (Python start-up, imports)."""

_FRAME = struct.Struct("<I")
_PROGRESS = struct.Struct("<qqq")
"""[monotonic ns when the current document started (0: idle), its index in the batch, the rule running]."""
_MAX_MESSAGE = 300
_HOME_PREFIX = "dolma-rule-sandbox-"
_BOOT = (
    "import sys, json; init = json.loads(sys.stdin.buffer.readline()); sys.path[:] = init['path']; "
    "from mixers.sandbox import serve; serve(init)"
)


class SandboxSettings(msgspec.Struct, frozen=True):
    """`rule_timeout` (seconds per document for all of a stream's rules) and `rule_memory_mb` of the config."""

    timeout: float
    memory_mb: int


DEFAULT_SANDBOX = SandboxSettings(timeout=RULE_TIMEOUT, memory_mb=RULE_MEMORY_MB)


class RuleFailedError(DolmaError):
    """A rule failed on one document: it raised an error, ran out of time or memory. Names file, line and rule."""

    def __init__(self, path: str, line: int, rule: str, reason: str):
        self.path = path
        self.line = line
        self.rule = rule
        self.reason = reason
        super().__init__(f"{path}:{line}: {rule}: {reason}")

    def __reduce__(self):
        return (RuleFailedError, (self.path, self.line, self.rule, self.reason))


class _Ready(msgspec.Struct, array_like=True):
    error: str | None
    labels: list[str]


class _Failure(msgspec.Struct, array_like=True):
    index: int
    rule: int
    kind: str  # "error" | "memory"
    message: str


class _Reply(msgspec.Struct, array_like=True):
    decisions: list[tuple[int, list[Any] | None]]
    failure: _Failure | None


_encode = msgspec.json.Encoder().encode
_ready_decoder = msgspec.json.Decoder(_Ready)
_reply_decoder = msgspec.json.Decoder(_Reply)


# ----------------------------------------------------------------------------------------------------------
# Mixer side
# ----------------------------------------------------------------------------------------------------------


class _Died(Exception):
    """The sandbox process ended (or closed its pipe) while we waited for it."""


class RuleSandbox:
    """One sandbox process for one stream: `decide_batch(docs, path, lines)` -> a decision per document."""

    def __init__(self, stream: Stream, settings: SandboxSettings):
        self.stream = stream
        self.settings = settings
        self.owner = os.getpid()
        self.labels: list[str] = []
        self._proc: subprocess.Popen | None = None
        self._home = ""
        self._progress: memoryview | None = None
        self._map: mmap.mmap | None = None
        self._stderr: Any = None
        self._start()

    # -- life cycle -------------------------------------------------------------------------------------

    def _start(self) -> None:
        self._home = tempfile.mkdtemp(prefix=_HOME_PREFIX)
        with tempfile.TemporaryFile(dir=self._home) as progress_file:
            os.ftruncate(progress_file.fileno(), _PROGRESS.size)
            self._map = mmap.mmap(progress_file.fileno(), _PROGRESS.size)
            self._progress = memoryview(self._map).cast("q")
            self._stderr = tempfile.TemporaryFile(dir=self._home)  # noqa: SIM115 - kept open for the process's life
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env={"HOME": self._home},
                cwd=self._home,
                pass_fds=(progress_file.fileno(),),
                bufsize=0,
                start_new_session=True,
            )
            init = {
                "path": sys.path,
                "stream": msgspec.json.encode(self.stream).decode(),
                "memory_mb": self.settings.memory_mb,
                "progress_fd": progress_file.fileno(),
                "parent": os.getpid(),
                "timeout": self.settings.timeout,
                "home": self._home,
            }
            try:
                self._write(msgspec.json.encode(init) + b"\n")
                ready = _ready_decoder.decode(self._read_frame(time.monotonic() + STARTUP_SECONDS))
            except (_Died, OSError, msgspec.DecodeError) as exc:
                reason = self._death_reason()
                last = self._stderr_text().strip().splitlines()[-1:]  # no environment there to leak: it had none
                self.close()
                detail = f"; it said: {_short(last[0])}" if last else ""
                raise DolmaError(
                    f"stream '{self.stream.name}': the jq rule sandbox did not start ({reason}{detail})"
                ) from exc
        if ready.error is not None:
            self.close()
            raise RuleError(ready.error)
        self.labels = ready.labels

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        """End the process (EOF on its stdin, then SIGKILL if it lingers) and remove its directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._progress is not None:
            self._progress.release()
            self._progress = None
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._home:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = ""

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    # -- pipes ------------------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        fd = self._proc.stdin.fileno()
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except BrokenPipeError:
            raise _Died() from None

    def _read_exact(self, n: int) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        chunks = []
        while n:
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                raise _Died()
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _read_frame(self, deadline: float) -> bytes:
        """The next reply, waiting until `deadline` (monotonic seconds) at most; no per-document watch."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            if time.monotonic() >= deadline:
                self._kill()
                raise _Died()
        (size,) = _FRAME.unpack(self._read_exact(_FRAME.size))
        return self._read_exact(size)

    def _snapshot(self) -> tuple[int, int, int] | None:
        """(start ns, document index, rule index) of the document being decided, or None when idle."""
        assert self._progress is not None
        p = self._progress
        start, index, rule, again = p[0], p[1], p[2], p[0]
        if start == 0 or start != again:  # idle, or a new document is being set up right now
            return None
        return start, index, rule

    def _await_reply(self) -> tuple[bytes | None, tuple[int, int, int] | None]:
        """(reply, None), or (None, the snapshot of the document that ran out of time) after killing the process."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        limit_ns = int(self.settings.timeout * 1e9)
        while True:
            snap = self._snapshot()
            wait = min(self.settings.timeout, 0.1)  # between two documents: look again soon
            if snap is not None:
                overdue = time.monotonic_ns() - snap[0] - limit_ns
                if overdue >= 0 and self._snapshot() == snap:
                    self._kill()
                    return None, snap
                wait = max(0.0, -overdue / 1e9)
            if select.select([fd], [], [], wait + 0.001)[0]:
                (size,) = _FRAME.unpack(self._read_exact(_FRAME.size))
                return self._read_exact(size), None

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            return self._stderr.read(1 << 16).decode("utf-8", "replace")
        except OSError:
            return ""

    def _death_reason(self) -> str:
        rc = self._proc.wait() if self._proc is not None else None
        text = self._stderr_text()
        if "cannot allocate memory" in text or "MemoryError" in text:
            return f"it ran out of memory (rule_memory_mb = {self.settings.memory_mb})"
        if rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            if -rc == getattr(signal, "SIGXCPU", None):
                return "it used more CPU time than its documents were allowed (rule_timeout)"
            return f"the process was ended by {name}"
        return f"the process exited with code {rc}"

    # -- deciding documents -----------------------------------------------------------------------------

    def decide_batch(self, docs: list[dict[str, Any]], path: str, lines: list[int]) -> list[Decision]:
        """Decide `docs` (from `path`, at `lines`); a rule failing on one of them raises RuleFailedError."""
        if not self.alive:
            self.close()
            self._start()
        payload = b"\n".join([_encode(doc) for doc in docs])
        try:
            self._write(_FRAME.pack(len(payload)) + payload)
            raw, overdue = self._await_reply()
        except _Died:
            snap = self._snapshot()
            reason = self._death_reason()
            self.close()
            index, rule = (snap[1], snap[2]) if snap is not None else (0, -1)
            label = self.labels[rule] if 0 <= rule < len(self.labels) else f"stream '{self.stream.name}' rules"
            raise RuleFailedError(path, lines[index], label, f"the rule sandbox stopped: {reason}") from None
        except BaseException:
            self.close()  # interrupted mid-request: the process may still answer, so it cannot be reused
            raise
        if overdue is not None:
            self.close()
            _, index, rule = overdue
            raise RuleFailedError(
                path,
                lines[index],
                self.labels[rule],
                f"did not finish within {self.settings.timeout:g} s on this document (rule_timeout); "
                "the rule sandbox was stopped",
            )
        assert raw is not None
        reply = _reply_decoder.decode(raw)
        if reply.failure is not None:
            f = reply.failure
            if f.kind == "memory":
                reason = f"ran out of memory on this document (rule_memory_mb = {self.settings.memory_mb})"
            else:
                reason = f"failed on this document: {f.message}"
            raise RuleFailedError(path, lines[f.index], self.labels[f.rule], reason)
        return reply.decisions


_SANDBOXES: dict[tuple[bytes, SandboxSettings], RuleSandbox] = {}


def sandbox_for(stream: Stream, settings: SandboxSettings) -> RuleSandbox:
    """This process's sandbox for the stream (started on first use; a forked child never reuses its parent's)."""
    key = (msgspec.json.encode(stream), settings)
    box = _SANDBOXES.get(key)
    if box is None or box.owner != os.getpid():
        box = _SANDBOXES[key] = RuleSandbox(stream, settings)
    return box


@atexit.register
def close_sandboxes() -> None:
    """End every sandbox this process started."""
    for key, box in list(_SANDBOXES.items()):
        if box.owner == os.getpid():
            box.close()
        del _SANDBOXES[key]


# ----------------------------------------------------------------------------------------------------------
# Sandbox side
# ----------------------------------------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL when the mixer process ends (a child stuck in jq would otherwise spin on as an orphan)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def _limit(resource_id: int, value: int) -> None:
    import resource

    _, hard = resource.getrlimit(resource_id)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource_id, (value, hard if hard != resource.RLIM_INFINITY else value))


def _cpu_backstop(batch: int, timeout: float) -> None:
    """A CPU-time limit for the coming batch: only reached by an orphan that outlived a dead mixer (not Linux)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    allowed = int(usage.ru_utime + usage.ru_stime + batch * timeout) + 10
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        allowed = min(allowed, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (allowed, hard))


def serve(init: dict[str, Any]) -> None:
    """The sandbox process: compile the stream's rules, then answer batches until stdin closes."""
    import resource

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def send(data: bytes) -> None:
        stdout.write(_FRAME.pack(len(data)) + data)
        stdout.flush()

    _die_with_parent(init["parent"])
    if init["memory_mb"] > 0:
        _limit(resource.RLIMIT_AS, init["memory_mb"] << 20)
    _limit(resource.RLIMIT_CORE, 0)
    progress = memoryview(mmap.mmap(init["progress_fd"], _PROGRESS.size)).cast("q")
    try:
        stream = msgspec.json.decode(init["stream"], type=Stream)
        rules = StreamRules(stream, compile_jq=True)
    except DolmaError as exc:
        send(_encode(_Ready(error=str(exc), labels=[])))
        return
    _limit(resource.RLIMIT_NOFILE, 16)
    send(_encode(_Ready(error=None, labels=rules.labels)))
    decide = rules.decide_in_sandbox
    decode = msgspec.json.Decoder(dict).decode
    mark = partial(progress.__setitem__, 2)
    uses_text, needs_dict = rules.uses_jq, rules.needs_dict
    timeout = float(init["timeout"])
    home = init["home"]
    while True:
        header = stdin.read(_FRAME.size)
        if len(header) < _FRAME.size:  # the mixer is done (or gone): leave no trace
            if os.path.basename(home).startswith(_HOME_PREFIX) and os.path.samefile(home, os.getcwd()):
                shutil.rmtree(home, ignore_errors=True)
            return
        (size,) = _FRAME.unpack(header)
        docs = stdin.read(size).split(b"\n") if size else []
        _cpu_backstop(len(docs), timeout)
        decisions: list[Decision] = []
        failure = None
        for index, raw in enumerate(docs):
            progress[0] = 0
            progress[1] = index
            progress[2] = 0
            progress[0] = time.monotonic_ns()
            try:
                text = raw.decode("utf-8") if uses_text else None
                doc = decode(raw) if needs_dict else None
                decisions.append(decide(doc, text, mark))
            except JqRuntimeError as exc:
                failure = _Failure(index, progress[2], "error", _short(str(exc)))
            except MemoryError:
                failure = _Failure(index, progress[2], "memory", "")
            except Exception as exc:  # a bug, not the rule: still reported against the document
                failure = _Failure(index, progress[2], "error", _short(f"{type(exc).__name__}: {exc}"))
            if failure is not None:
                break
        progress[0] = 0
        send(_encode(_Reply(decisions=decisions, failure=failure)))


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."
