"""Typed configuration: files, dotted overrides, errors naming file, field and the closest valid name."""

from __future__ import annotations

import json

import msgspec
import pytest

from dolma.commands.tag import TagConfig
from dolma.config import Base, build, format_help, iter_fields, parse_overrides
from dolma.errors import ConfigError


class Inner(Base):
    paragraph_separator: str = "\n"
    ngram_length: int = 0


class Outer(Base, kw_only=True):
    name: str
    paragraphs: Inner | None = None
    items: list[str] = []
    flag: bool = False
    ratio: float = 1.0
    size: int | None = None


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else data)
    return str(path)


def test_yaml_and_json_files(tmp_path):
    yml = write(tmp_path, "c.yaml", "name: x\nparagraphs:\n  ngram_length: 3\nitems: [a, b]\n")
    cfg = build(Outer, yml)
    assert cfg == Outer(name="x", paragraphs=Inner(ngram_length=3), items=["a", "b"])
    js = write(tmp_path, "c.json", {"name": "y", "flag": True})
    assert build(Outer, js).flag is True


def test_config_is_frozen(tmp_path):
    cfg = build(Outer, overrides=["--name", "x"])
    with pytest.raises(AttributeError):
        cfg.name = "y"  # type: ignore[misc]


def test_unknown_field_names_file_path_and_suggestion(tmp_path):
    yml = write(tmp_path, "c.yaml", "name: x\nparagraphs:\n  paragraph_seperator: '\\n'\n")
    with pytest.raises(ConfigError) as info:
        build(Outer, yml)
    message = str(info.value)
    assert yml in message
    assert "'paragraphs.paragraph_seperator'" in message
    assert "did you mean 'paragraph_separator'" in message


def test_unknown_top_level_field(tmp_path):
    yml = write(tmp_path, "c.yaml", "name: x\nflg: true\n")
    with pytest.raises(ConfigError, match=r"unknown field 'flg' \(did you mean 'flag'\?\)"):
        build(Outer, yml)


def test_wrong_type_names_field(tmp_path):
    yml = write(tmp_path, "c.yaml", "name: x\nparagraphs:\n  ngram_length: lots\n")
    with pytest.raises(ConfigError, match=r"c.yaml: field 'paragraphs.ngram_length': expected `int`, got `str`"):
        build(Outer, yml)


def test_missing_required_field():
    with pytest.raises(ConfigError, match="missing required field 'name'"):
        build(Outer, overrides=[])


def test_overrides_win_over_file(tmp_path):
    yml = write(tmp_path, "c.yaml", "name: x\nflag: true\nitems: [a]\nparagraphs: {ngram_length: 2}\n")
    cfg = build(Outer, yml, ["--no-flag", "--items", "b", "c", "--paragraphs.ngram_length", "5", "--ratio=0.5"])
    assert cfg.flag is False
    assert cfg.items == ["b", "c"]
    assert cfg.paragraphs == Inner(ngram_length=5)
    assert cfg.ratio == 0.5
    assert cfg.name == "x"


@pytest.mark.parametrize(
    "tokens, expected",
    [
        (["--flag"], {"flag": True}),
        (["--no-flag"], {"flag": False}),
        (["--flag", "false"], {"flag": False}),
        (["--flag=true"], {"flag": True}),
        (["--name", "123"], {"name": "123"}),
        (["--size", "12"], {"size": 12}),
        (["--size", "null"], {"size": None}),
        (["--items", "a", "b", "--flag"], {"items": ["a", "b"], "flag": True}),
        (["--items="], {"items": [""]}),
        (["--paragraphs.paragraph-separator", "\n\n"], {"paragraphs": {"paragraph_separator": "\n\n"}}),
    ],
)
def test_parse_overrides(tokens, expected):
    assert parse_overrides(Outer, tokens) == expected


def test_unknown_override_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown option '--paragraphs.ngram_lenght' \(did you mean '--paragraphs"):
        parse_overrides(Outer, ["--paragraphs.ngram_lenght", "3"])


def test_override_type_error_is_attributed_to_command_line(tmp_path):
    yml = write(tmp_path, "c.yaml", "name: x\n")
    with pytest.raises(ConfigError, match=r"^command line: field 'size'"):
        build(Outer, yml, ["--size", "big"])


def test_override_without_value():
    with pytest.raises(ConfigError, match="needs a value"):
        parse_overrides(Outer, ["--name"])


def test_positional_garbage_is_rejected():
    with pytest.raises(ConfigError, match="unexpected argument 'oops'"):
        parse_overrides(Outer, ["oops"])


def test_bad_yaml_is_a_config_error(tmp_path):
    yml = write(tmp_path, "c.yaml", "name: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        build(Outer, yml)


def test_non_mapping_file(tmp_path):
    yml = write(tmp_path, "c.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        build(Outer, yml)


def test_help_lists_every_field_with_type_default_and_description():
    text = format_help("tag", "summary", TagConfig)
    for name, type_name, _default, _ in iter_fields(TagConfig):
        assert f"--{name}" in text
        assert type_name in text
    assert "Globs of documents files" in text
    assert "(required)" in text
    assert "--work_dir.output" in text


def test_every_tag_field_has_a_description():
    missing = [name for name, type_name, _, desc in iter_fields(TagConfig) if not desc]
    assert missing == []


def test_structs_convert_back_to_builtins():
    cfg = build(TagConfig, overrides=["--documents", "a", "--taggers", "char_length_v1"])
    data = msgspec.to_builtins(cfg)
    assert data["documents"] == ["a"] and data["processes"] == 1
    assert msgspec.convert(data, TagConfig) == cfg
