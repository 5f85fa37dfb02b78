"""The `dolma` command line: `dolma [-c CONFIG] <command> [--dotted.field value ...]`."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys

from dolma import __version__, lifecycle, s3
from dolma.commands import all_commands, find_command
from dolma.config import build, format_help
from dolma.errors import DolmaError

log = logging.getLogger("dolma")


def _usage() -> str:
    commands = all_commands()
    width = max(len(name) for name in commands) + 2
    lines = [
        "usage: dolma [-c CONFIG] <command> [--field value ...]",
        "",
        "Curate pretraining corpora: tag, deduplicate, mix and tokenize, locally, on S3 or on Spark.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}{cmd.summary}" for name, cmd in commands.items()]
    lines += ["", "`dolma <command> --help` lists every field of a command with its type, default and meaning."]
    return "\n".join(lines)


OUR_LOGGERS = ("dolma", "taggers", "mixers")
LIBRARY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "smart_open", "fsspec", "s3fs", "py4j", "pyspark")
LIBRARY_LEVEL_VARIABLE = "DOLMA_LIBRARY_LOG_LEVEL"


def _setup_logging(verbose: bool, quiet: bool) -> None:
    """Our loggers at INFO (DEBUG with --debug, WARNING with --quiet); every other logger at WARNING.

    Libraries stay quiet even with --debug: botocore's debug log prints request headers (Authorization, key id
    and signature) and its INFO says where credentials were found. DOLMA_LIBRARY_LOG_LEVEL=DEBUG asks for them;
    the handler's redaction filter still masks credentials and signatures in whatever is printed.
    """
    from rich.console import Console
    from rich.logging import RichHandler

    from dolma.redact import RedactSecrets

    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    asked = os.environ.get(LIBRARY_LEVEL_VARIABLE, "").strip().upper()
    library_level = logging.getLevelName(asked) if asked else logging.WARNING
    if not isinstance(library_level, int):
        raise DolmaError(f"{LIBRARY_LEVEL_VARIABLE}={asked!r}: use DEBUG, INFO, WARNING or ERROR")
    # Logs go to stderr with the run summary: stdout carries only what a command outputs (listings, paths).
    handler = RichHandler(
        console=Console(stderr=True), show_path=False, show_time=False, markup=False, rich_tracebacks=False
    )
    handler.addFilter(RedactSecrets())
    logging.basicConfig(level=library_level, format="%(message)s", handlers=[handler], force=True)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)


def parse_argv(argv: list[str]) -> tuple[str | None, str | None, bool, list[str]]:
    """Split argv into (command, config file, help requested, override tokens)."""
    command = None
    config_file = None
    want_help = False
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-c", "--config"):
            if i + 1 >= len(argv):
                raise DolmaError(f"{arg} needs a file")
            config_file = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--config="):
            config_file = arg.split("=", 1)[1]
        elif arg in ("-h", "--help"):
            want_help = True
        elif command is None and not arg.startswith("-"):
            command = arg
        else:
            rest.append(arg)
        i += 1
    return command, config_file, want_help, rest


def _stdout_closed() -> bool:
    """Whether the reader of our stdout went away (`dolma --help | head`): a write error on a socket is not that."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def _quiet_broken_pipe() -> int:
    """Stop writing to a closed pipe without a traceback, the way command-line tools do (exit 128 + SIGPIPE)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    return 128 + signal.SIGPIPE


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # No command multiplies large matrices, but numpy's OpenBLAS starts a thread per core that spins after its
    # first call (at import, and in LAPACK calls such as the MinHash optimiser's Gauss-Legendre nodes): CPU
    # taken from the Rust threads. One BLAS thread unless the user says otherwise; worker processes inherit it.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        return _main(argv)
    except BrokenPipeError:
        if _stdout_closed():
            return _quiet_broken_pipe()
        raise


def _main(argv: list[str]) -> int:
    if argv and argv[0] in ("-V", "--version"):
        print(f"dolma {__version__}")
        return 0
    lifecycle.install_stop_handlers()
    try:
        command, config_file, want_help, rest = parse_argv(argv)
        if command is None:
            print(_usage(), file=sys.stdout if want_help else sys.stderr)
            return 0 if want_help else 2
        spec = find_command(command)
        if spec is None:
            import difflib

            close = difflib.get_close_matches(command, list(all_commands()), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise DolmaError(f"unknown command '{command}'{hint}")
        config_type, run = spec.load()
        if want_help:
            print(format_help(command, spec.summary, config_type))
            return 0
        verbose = "--debug" in rest
        quiet = "--quiet" in rest
        _setup_logging(verbose, quiet)
        config = build(config_type, config_file, rest)
        s3.begin_run()
        return int(run(config))
    except DolmaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        # Ctrl-C or SIGTERM: writers have discarded their temporaries and workers are stopped; a rerun resumes.
        print("terminated" if isinstance(exc, lifecycle.Terminated) else "interrupted", file=sys.stderr)
        return lifecycle.exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
