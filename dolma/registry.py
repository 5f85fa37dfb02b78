"""Tagger registry: built-in taggers, `dolma.taggers` entry points and user `tagger_modules`."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import msgspec

from dolma.config import check_unknown
from dolma.errors import ConfigError, DolmaError, TaggerError
from dolma.tagger import Tagger

ENTRY_POINT_GROUP = "dolma.taggers"

_taggers: dict[str, type[Tagger]] = {}
_plugins_loaded = False


def register(name: str, description: str | None = None) -> Callable[[type[Tagger]], type[Tagger]]:
    """Class decorator that registers a tagger under `name`."""

    def wrap(cls: type[Tagger]) -> type[Tagger]:
        existing = _taggers.get(name)
        if existing is not None and existing is not cls:
            raise TaggerError(f"tagger name '{name}' is registered twice: {existing.__module__} and {cls.__module__}")
        cls.name = name
        if description is not None:
            cls.description = description
        elif not cls.__dict__.get("description") and cls.__doc__:
            # The class's own docstring, not a description inherited from a registered parent class (a subclass
            # that changes the unit or the model must not be listed with its parent's words).
            cls.description = cls.__doc__.strip().splitlines()[0]
        _taggers[name] = cls
        return cls

    return wrap


def load_plugins() -> None:
    """Import every module advertised under the `dolma.taggers` entry point group (built-ins included)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:
            raise TaggerError(f"cannot load tagger plugin '{ep.name}' ({ep.value}): {exc}") from exc


def import_modules(modules: list[str]) -> None:
    """Import extra tagger modules by dotted name or by path to a .py file."""
    for module in modules:
        if module.endswith(".py") or os.sep in module:
            path = os.path.abspath(module)
            if not os.path.isfile(path):
                raise ConfigError(f"tagger_modules: no such file {module}")
            name = f"dolma_user_taggers_{abs(hash(path))}"
            if name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ConfigError(f"tagger_modules: cannot import {module}")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
        else:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ConfigError(f"tagger_modules: cannot import '{module}': {exc}") from exc


def all_taggers(modules: list[str] | None = None) -> dict[str, type[Tagger]]:
    load_plugins()
    if modules:
        import_modules(modules)
    return dict(sorted(_taggers.items()))


def get(name: str) -> type[Tagger]:
    load_plugins()
    try:
        return _taggers[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_taggers), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown tagger '{name}'{hint}; `dolma list` shows every tagger") from None


def create(name: str, options: dict[str, Any] | None = None) -> Tagger:
    """Instantiate a tagger with its typed options (validated; unknown options are errors)."""
    cls = get(name)
    data = options or {}
    source = f"tagger_config.{name}"
    check_unknown(data, cls.Config, source)
    try:
        config = msgspec.convert(data, cls.Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cls(config)


def check(tagger: Tagger) -> None:
    """Check a tagger's resources before a run reads any document; every failure is one error naming the tagger."""
    try:
        tagger.check()
    except TaggerError:
        raise
    except DolmaError as exc:
        raise TaggerError(f"tagger '{tagger.name}': {exc}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        raise TaggerError(f"tagger '{tagger.name}': cannot load its resources{where}: {detail}") from None
