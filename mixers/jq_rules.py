"""jq mixer rules: programs compiled by libjq and run only in the rule sandbox (`mixers/sandbox.py`).

The builtins that reach outside the document are shadowed, and `$ENV` and modules are refused.
"""

from __future__ import annotations

import re
from typing import Any

from dolma.errors import ConfigError
from mixers.jsonpath_eval import RuleError, _attribute_keys

# ----------------------------------------------------------------------------------------------------------
# jq
# ----------------------------------------------------------------------------------------------------------

BLOCKED_JQ: dict[str, tuple[tuple[int, ...], str]] = {
    "env": ((0,), "reads the environment"),
    "input": ((0,), "reads input beyond the document"),
    "inputs": ((0,), "reads input beyond the document"),
    "input_filename": ((0,), "names the input file"),
    "input_line_number": ((0,), "reads the input position"),
    "get_search_list": ((0,), "lists module search directories of this machine"),
    "get_prog_origin": ((0,), "names directories of this machine"),
    "get_jq_origin": ((0,), "names directories of this machine"),
    "modulemeta": ((0,), "reads module files"),
    "halt": ((0,), "ends the program, so the document would silently produce nothing"),
    "halt_error": ((0, 1), "ends the program, so the document would silently produce nothing"),
    "debug": ((0, 1), "writes to stderr"),
    "stderr": ((0,), "writes to stderr"),
    "now": ((0,), "reads the clock, so the mix would not be reproducible"),
    "localtime": ((0,), "reads the time zone of this machine (TZ, /etc/localtime)"),
    "strflocaltime": ((1,), "reads the time zone of this machine (TZ, /etc/localtime)"),
}
"""jq 1.8 builtins a mixer rule may not call, with the reason (see the sandbox notes in docs/mix.md).

Everything else is pure: it only sees the document. `$ENV` and the module directives (`import`, `include`,
`module`) are refused too, and `$HOME/.jq` (which libjq includes by itself) is never read: jq only runs in the
rule sandbox (mixers/sandbox.py), a process with an empty environment whose HOME is an empty directory.
"""

_BLOCKED_MARK = "__dolma_sandbox_blocked__"


def _shadow_prefix() -> str:
    """Definitions that replace the blocked builtins, then `$ENV` bound to {}; one line, before the user program.

    A call to a shadowed builtin compiles into a call to an undefined name, so the rule fails at compile time
    (translated into a message naming the builtin); unused definitions are dropped by jq and cost nothing.
    Because the program no longer starts with the user's text, `import`, `include` and `module` (which jq only
    accepts first) become syntax errors before any module file is looked up.
    """
    defs = []
    for name, (arities, _) in BLOCKED_JQ.items():
        for arity in arities:
            params = "(" + "; ".join(f"a{i}" for i in range(arity)) + ")" if arity else ""
            defs.append(f"def {name}{params}: {_BLOCKED_MARK}{name};")
    return " ".join(defs) + " {} as $ENV | ("


SANDBOX_PREFIX = _shadow_prefix()
_ENV_VAR = re.compile(r"\$ENV(?![A-Za-z0-9_])")
_JQ_ERROR = re.compile(r"error: (?P<what>.*?) at <top-level>, line (?P<line>\d+), column (?P<col>\d+)")
_JQ_BLOCKED = re.compile(re.escape(_BLOCKED_MARK) + r"(?P<name>\w+)/0 is not defined")
_JQ_MODULE = re.compile(r"unexpected (?P<kw>import|include|module)\b")


def check_jq_source(program: str) -> None:
    """What can be refused without compiling: `$ENV` (also bound to {} by the sandbox prefix, so never read)."""
    if _ENV_VAR.search(program):
        raise RuleError(f"jq rule {program!r} uses $ENV: the environment is not available in mixer rules")


def sandboxed_program(program: str) -> str:
    """The text libjq compiles: the shadowing prefix on line 1, the user's program from line 2."""
    return f"{SANDBOX_PREFIX}\n{program}\n\n)"


def _compile_error(program: str, message: str) -> RuleError:
    blocked = _JQ_BLOCKED.search(message)
    if blocked:
        name = blocked.group("name")
        why = BLOCKED_JQ.get(name, ((), "is not available"))[1]
        return RuleError(f"jq rule {program!r} uses `{name}`, which mixer rules may not call: it {why}")
    module = _JQ_MODULE.search(message)
    if module:
        return RuleError(
            f"jq rule {program!r} uses `{module.group('kw')}`: modules are not available in mixer rules "
            "(no module search paths, no file access)"
        )
    found = _JQ_ERROR.search(message)
    if found:
        line = max(1, int(found.group("line")) - 1)  # line 1 is the sandbox prefix
        what = found.group("what")
        if line > program.count("\n") + 1:  # on the lines closing the prefix: the program ended too early
            what = what.replace("unexpected ')'", "unexpected end of the program")
            return RuleError(f"jq rule {program!r} does not compile: {what}")
        return RuleError(f"jq rule {program!r} does not compile: {what} (line {line})")
    first = message.strip().splitlines()[0] if message.strip() else "invalid program"
    return RuleError(f"jq rule {program!r} does not compile: {first.removeprefix('jq: error: ')}")


class JqRuntimeError(Exception):
    """A jq program raised an error on a document (inside the sandbox; reported with the file and line)."""


def _truthy(value: Any) -> bool:
    return value is not None and value is not False


class JqProgram:
    """A jq program. It matches when any output is truthy (not false or null).

    Outside the sandbox (`compile=False`) only the checks that need no libjq run: the mixer process never
    compiles or evaluates jq. Inside it, documents arrive as JSON text, which libjq parses itself.
    """

    def __init__(self, program: str, compile: bool):
        self.rule = program
        self.attribute_keys = _attribute_keys(program)
        check_jq_source(program)
        self._program = self._compile() if compile else None

    def _compile(self) -> Any:
        try:
            import jq
        except ImportError as exc:  # pragma: no cover - jq is a declared dependency
            raise ConfigError("jq rules need the 'jq' package (pip install jq)") from exc
        try:
            return jq.compile(sandboxed_program(self.rule))
        except ValueError as exc:
            raise _compile_error(self.rule, str(exc)) from None

    def outputs(self, text: str) -> list[Any]:
        if self._program is None:
            raise RuntimeError("jq programs only run inside the rule sandbox")
        try:
            return self._program.input_text(text).all()
        except ValueError as exc:
            raise JqRuntimeError(str(exc)) from None

    def matches(self, text: str) -> bool:
        return any(_truthy(v) for v in self.outputs(text))

    def first(self, text: str) -> Any:
        out = self.outputs(text)
        return out[0] if out else None
