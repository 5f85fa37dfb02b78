"""The `dolma` command line: `dolma [-c CONFIG] <command> [--dotted.field value ...]`."""

from __future__ import annotations

import logging
import sys

from dolma import __version__, s3
from dolma.commands import COMMANDS
from dolma.config import build, format_help
from dolma.errors import DolmaError

log = logging.getLogger("dolma")


def _usage() -> str:
    width = max(len(name) for name in COMMANDS) + 2
    lines = [
        "usage: dolma [-c CONFIG] <command> [--field value ...]",
        "",
        "Curate pretraining corpora: tag, deduplicate, mix and tokenize, locally, on S3 or on Spark.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}{cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", "`dolma <command> --help` lists every field of a command with its type, default and meaning."]
    return "\n".join(lines)


def _setup_logging(verbose: bool, quiet: bool) -> None:
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    handler = RichHandler(show_path=False, show_time=False, markup=False, rich_tracebacks=verbose)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)


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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-V", "--version"):
        print(f"dolma {__version__}")
        return 0
    try:
        command, config_file, want_help, rest = parse_argv(argv)
        if command is None:
            print(_usage(), file=sys.stdout if want_help else sys.stderr)
            return 0 if want_help else 2
        if command not in COMMANDS:
            import difflib

            close = difflib.get_close_matches(command, list(COMMANDS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise DolmaError(f"unknown command '{command}'{hint}")
        spec = COMMANDS[command]
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
