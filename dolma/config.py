"""Typed configuration: YAML/JSON files and dotted command-line overrides -> frozen msgspec Structs.

Longer than 400 lines because loading, overrides, unknown-field checks and `--help` all walk the same struct types.

One struct per command is the single source of truth: it validates, it documents itself (`--help` is
generated from the field types, defaults and `Meta(description=...)`), and it is what travels to workers
and into Rust. Unknown or mistyped fields are errors that name the file, the dotted field path and the
closest valid name.
"""

from __future__ import annotations

import difflib
import json
import os
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi
import yaml

from dolma.errors import ConfigError, DolmaError

T = TypeVar("T", bound=msgspec.Struct)

CLI_SOURCE = "command line"


class Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every configuration struct."""


def load_file(path: str) -> dict[str, Any]:
    """Read a YAML or JSON configuration file into a dict."""
    from dolma import io

    if not io.is_s3(path):
        if os.path.isdir(path):
            raise ConfigError(f"{path}: is a directory, not a configuration file (give a .yaml or .json file to -c)")
        if not os.path.exists(path):
            raise ConfigError(f"{path}: configuration file not found")
    try:
        text = io.read_text(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except DolmaError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc})") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read the configuration file (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the configuration file is not UTF-8 text (byte offset {exc.start})") from None
    try:
        if path.endswith(".json"):
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot parse configuration: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping of fields, got {type(data).__name__}")
    return data


# ----------------------------------------------------------------------------------------------------------
# Type introspection helpers
# ----------------------------------------------------------------------------------------------------------


def _unwrap(t: mi.Type) -> mi.Type:
    while isinstance(t, mi.Metadata):
        t = t.type
    return t


def _description(t: mi.Type) -> str:
    if isinstance(t, mi.Metadata) and t.extra_json_schema:
        return str(t.extra_json_schema.get("description", ""))
    return ""


def _struct_in(t: mi.Type) -> mi.StructType | None:
    """The struct type inside `t` (directly, or as the non-None member of an optional)."""
    t = _unwrap(t)
    if isinstance(t, mi.StructType):
        return t
    if isinstance(t, mi.UnionType):
        structs = [_unwrap(x) for x in t.types if isinstance(_unwrap(x), mi.StructType)]
        if len(structs) == 1:
            return structs[0]
    return None


def _fields(struct: mi.StructType) -> dict[str, mi.Field]:
    return {f.encode_name: f for f in struct.fields}


def _type_name(t: mi.Type) -> str:
    t = _unwrap(t)
    simple = {
        mi.IntType: "int",
        mi.FloatType: "float",
        mi.StrType: "str",
        mi.BoolType: "bool",
        mi.NoneType: "null",
        mi.AnyType: "any",
    }
    for cls, name in simple.items():
        if isinstance(t, cls):
            return name
    if isinstance(t, mi.ListType):
        return f"list[{_type_name(t.item_type)}]"
    if isinstance(t, mi.DictType):
        return f"dict[{_type_name(t.key_type)}, {_type_name(t.value_type)}]"
    if isinstance(t, mi.UnionType):
        return " | ".join(_type_name(x) for x in t.types)
    if isinstance(t, mi.LiteralType):
        return "|".join(str(v) for v in t.values)
    if isinstance(t, mi.StructType):
        return "section"
    return type(t).__name__.replace("Type", "").lower()


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_unknown(data: Any, struct_type: type[msgspec.Struct], source: str) -> None:
    """Raise ConfigError for the first unknown field, naming its dotted path and a close valid name."""
    _check_unknown(data, mi.type_info(struct_type), source, [])


def _check_unknown(data: Any, t: mi.Type, source: str, path: list[str]) -> None:
    struct = _struct_in(t)
    if struct is not None and isinstance(data, dict):
        fields = _fields(struct)
        for key, value in data.items():
            if key not in fields:
                where = ".".join([*path, str(key)])
                raise ConfigError(f"{source}: unknown field '{where}'{_suggest(str(key), list(fields))}")
            _check_unknown(value, fields[key].type, source, [*path, key])
        return
    inner = _unwrap(t)
    if isinstance(inner, mi.UnionType):
        for member in inner.types:
            m = _unwrap(member)
            if isinstance(m, mi.ListType) and isinstance(data, list):
                inner = m
                break
    if isinstance(inner, mi.ListType) and isinstance(data, list):
        for idx, item in enumerate(data):
            _check_unknown(item, inner.item_type, source, [*path[:-1], f"{path[-1]}[{idx}]"] if path else [])
    elif isinstance(inner, mi.DictType) and isinstance(data, dict):
        for key, value in data.items():
            _check_unknown(value, inner.value_type, source, [*path, str(key)])


# ----------------------------------------------------------------------------------------------------------
# Command-line overrides
# ----------------------------------------------------------------------------------------------------------


def _resolve(struct_type: type[msgspec.Struct], dotted: list[str]) -> mi.Type | None:
    t: mi.Type = mi.type_info(struct_type)
    for part in dotted:
        struct = _struct_in(t)
        if struct is None:
            inner = _unwrap(t)
            if isinstance(inner, mi.DictType):
                t = inner.value_type
                continue
            return None
        fields = _fields(struct)
        if part not in fields:
            return None
        t = fields[part].type
    return t


def _options(struct_type: type[msgspec.Struct]) -> list[str]:
    return [name for name, _, _, _ in iter_fields(struct_type)]


def _kind(t: mi.Type) -> str:
    inner = _unwrap(t)
    if isinstance(inner, mi.UnionType):
        members = [_unwrap(x) for x in inner.types if not isinstance(_unwrap(x), mi.NoneType)]
        if any(isinstance(m, mi.ListType) for m in members):
            return "list"
        if len(members) == 1:
            return _kind(members[0])
        return "scalar"
    if isinstance(inner, mi.BoolType):
        return "bool"
    if isinstance(inner, mi.ListType):
        return "list"
    if isinstance(inner, mi.StrType):
        return "str"
    return "scalar"


def _parse_value(text: str, kind: str) -> Any:
    if kind == "str":
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _set(target: dict[str, Any], dotted: list[str], value: Any) -> None:
    for part in dotted[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            target[part] = nxt
        target = nxt
    target[dotted[-1]] = value


def parse_overrides(struct_type: type[msgspec.Struct], tokens: list[str]) -> dict[str, Any]:
    """Parse `--a.b value`, `--a.b=value`, `--flag`, `--no-flag` and `--list v1 v2 ...` into a nested dict."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"{CLI_SOURCE}: unexpected argument '{token}' (options look like --field value)")
        name, eq, inline = token[2:].partition("=")
        dotted = [p.replace("-", "_") for p in name.split(".")]
        t = _resolve(struct_type, dotted)
        negate = False
        if t is None and name.startswith("no-"):
            alt = [p.replace("-", "_") for p in name[3:].split(".")]
            alt_t = _resolve(struct_type, alt)
            if alt_t is not None and _kind(alt_t) == "bool":
                dotted, t, negate = alt, alt_t, True
        if t is None:
            option = ".".join(dotted)
            raise ConfigError(
                f"{CLI_SOURCE}: unknown option '--{option}'{_suggest(option, _options(struct_type))}".replace(
                    "did you mean '", "did you mean '--"
                )
            )
        kind = _kind(t)
        i += 1
        if kind == "bool":
            if eq:
                value: Any = _parse_value(inline, "scalar")
            elif i < len(tokens) and tokens[i].lower() in {"true", "false"}:
                value = tokens[i].lower() == "true"
                i += 1
            else:
                value = True
            if negate:
                value = not value
        elif kind == "list":
            items = [inline] if eq else []
            while not eq and i < len(tokens) and not tokens[i].startswith("--"):
                items.append(tokens[i])
                i += 1
            inner = _unwrap(t)
            if isinstance(inner, mi.UnionType):
                inner = next(_unwrap(x) for x in inner.types if isinstance(_unwrap(x), mi.ListType))
            item_kind = _kind(inner.item_type) if isinstance(inner, mi.ListType) else "scalar"
            value = [_parse_value(x, item_kind) for x in items]
        else:
            if eq:
                raw = inline
            elif i < len(tokens):
                raw = tokens[i]
                i += 1
            else:
                raise ConfigError(f"{CLI_SOURCE}: option '--{'.'.join(dotted)}' needs a value")
            value = _parse_value(raw, kind)
        _set(out, dotted, value)
    return out


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _flatten_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys.add(dotted)
        if isinstance(value, dict):
            keys |= _flatten_keys(value, dotted + ".")
    return keys


def build(
    struct_type: type[T],
    config_file: str | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> T:
    """Load a config file (optional), apply overrides and convert to a validated, frozen struct."""
    data: dict[str, Any] = {}
    source = CLI_SOURCE
    if config_file:
        data = load_file(config_file)
        source = config_file
        check_unknown(data, struct_type, config_file)
    cli: dict[str, Any] = {}
    if isinstance(overrides, dict):
        cli = overrides
        check_unknown(cli, struct_type, CLI_SOURCE)
    elif overrides:
        cli = parse_overrides(struct_type, overrides)
    merged = merge(data, cli)
    cli_keys = _flatten_keys(cli)
    try:
        return msgspec.convert(merged, struct_type, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = ""
        if " - at `$." in message:
            message, _, at = message.partition(" - at `$.")
            field = at.rstrip("`")
        origin = source
        if field and any(field == k or field.startswith(k + ".") or field.startswith(k + "[") for k in cli_keys):
            origin = CLI_SOURCE
        missing = message.startswith("Object missing required field")
        if missing:
            name = message.split("`")[1]
            full = f"{field}.{name}" if field else name
            raise ConfigError(f"{origin}: missing required field '{full}'") from None
        where = f"field '{field}': " if field else ""
        raise ConfigError(f"{origin}: {where}{message[0].lower() + message[1:]}") from None


# ----------------------------------------------------------------------------------------------------------
# Help
# ----------------------------------------------------------------------------------------------------------


def iter_fields(struct_type: type[msgspec.Struct], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted name, type, default, description) for every leaf field, sections flattened."""
    rows: list[tuple[str, str, str, str]] = []
    info = mi.type_info(struct_type)
    assert isinstance(info, mi.StructType)
    for f in info.fields:
        name = f"{prefix}{f.encode_name}"
        description = _description(f.type)
        nested = _struct_in(f.type)
        if nested is not None:
            if description:
                rows.append((name, "section", "", description))
            rows.extend(iter_fields(nested.cls, prefix=name + "."))
            continue
        if f.required:
            default = "required"
        elif f.default is not msgspec.NODEFAULT:
            default = json.dumps(f.default) if not isinstance(f.default, msgspec.Struct) else ""
        elif f.default_factory is not msgspec.NODEFAULT:
            try:
                default = json.dumps(msgspec.to_builtins(f.default_factory()))
            except TypeError:
                default = ""
        else:
            default = ""
        rows.append((name, _type_name(f.type), default, description))
    return rows


def format_help(command: str, summary: str, struct_type: type[msgspec.Struct]) -> str:
    inherited = {
        name
        for base in struct_type.__mro__[1:]
        if isinstance(getattr(base, "__struct_fields__", None), tuple)
        for name in base.__struct_fields__
    }
    rows = iter_fields(struct_type)
    rows = [r for r in rows if r[0].split(".")[0] not in inherited] + [
        r for r in rows if r[0].split(".")[0] in inherited
    ]
    lines = [
        f"usage: dolma [-c CONFIG] {command} [--field value ...]",
        "",
        summary,
        "",
        "Every field can be set in the YAML/JSON config file or as a dotted flag (flags win).",
        "Booleans take --flag / --no-flag; lists take several values (--documents a.gz b.gz).",
        "",
        "fields:",
    ]
    width = min(max(len(r[0]) for r in rows) + 4, 44) if rows else 10
    term = max(os.get_terminal_size(0).columns if os.isatty(0) else 119, 80)
    for name, type_name, default, description in rows:
        head = f"  --{name}".ljust(width)
        meta = f"{type_name}" + (f" = {default}" if default and default != "required" else "")
        if default == "required":
            meta += " (required)"
        lines.append(f"{head} {meta}")
        if description:
            import textwrap

            for chunk in textwrap.wrap(description, width=term - width - 2):
                lines.append(" " * (width + 1) + chunk)
    return "\n".join(lines)
