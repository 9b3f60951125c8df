"""Reading a spec a user hands in, as YAML or JSON text or a file, into plain Python data,
safely: bounded in size, without YAML aliases, and refused, in one line that says where, when
a key repeats or a number would not come back as written.  ``model.py`` makes a spec of it."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml

from streamproc.errors import SpecError

MAX_SPEC_BYTES = 1 << 20
MAX_INT = 2**63 - 1  # what Redis, and every consumer of a result, takes as an integer


def read_file(path: Path) -> Any:
    """A ``.json`` file read as JSON, anything else as YAML."""
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: larger than {MAX_SPEC_BYTES} bytes")
    data = path.read_bytes()
    return read_json(data) if path.suffix == ".json" else read_yaml(data)


def read_json(text: str | bytes) -> Any:
    _check_size(text)
    return loads_json(text, "the JSON spec")


def read_yaml(text: str | bytes) -> Any:
    _check_size(text)
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (safe loader subclass)
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise SpecError("invalid YAML: nested too deeply") from None


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loading without aliases, which let a tiny file expand exponentially, and without
    duplicate keys, which PyYAML would silently resolve to the last one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            raise SpecError("YAML aliases are not allowed in workflow specs")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise SpecError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line: where, what, and the construct it was in (an unclosed
    ``{`` is found at the end, so where it opened is the useful part)."""
    if isinstance(exc, yaml.reader.ReaderError) and exc.encoding != "unicode":  # bytes
        return f"not {exc.encoding} text: byte 0x{exc.character:02x} at offset {exc.position}"
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return " ".join(str(exc).split())
    text = f"{_position(exc.problem_mark)}: {exc.problem}"
    if exc.context and exc.context_mark:
        text += f" ({exc.context} that starts at {_position(exc.context_mark)})"
    return text


def _position(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def kind_of(value: Any) -> str:
    """What a value read from YAML or JSON is, in words, for a refusal."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str | bytes):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    return "a list" if isinstance(value, list | tuple) else f"a {type(value).__name__}"


def loads_json(raw: str | bytes, where: str) -> Any:
    """JSON as users hand it in (a spec file, an API body), parsed by orjson, or
    :class:`SpecError`: refused when a key repeats (the last would silently win, as YAML specs
    refuse too) or an integer would not come back exactly (past 64 bits orjson makes a float
    of it); ``where`` names it in a refusal ("the JSON body").  The standard parser runs
    only for the checks: orjson has no hook that sees each object's keys before they
    collapse, nor integers before they turn float."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SpecError(f"invalid JSON: {exc}") from None
    try:
        json.loads(raw, object_pairs_hook=functools.partial(_checked_pairs, where=where))
    except RecursionError:  # orjson nests deeper than Python's stack lets these checks
        raise SpecError("invalid JSON: nested too deeply") from None
    return value


def _checked_pairs(pairs: list[tuple[str, Any]], where: str) -> dict[str, Any]:
    """One object's members, refused when a key repeats or a value holds an integer past
    64 bits (nested objects were checked as they were parsed)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise SpecError(f"duplicate key {key!r} in {where}")
        if _too_big(value):
            raise SpecError(f"the integer in {key!r} is past 64 bits (at most {MAX_INT})")
        seen[key] = value
    return seen


def _too_big(value: Any) -> bool:
    if isinstance(value, list):
        return any(_too_big(item) for item in value)
    return isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT


def _check_size(text: str | bytes) -> None:
    if len(text) > MAX_SPEC_BYTES:  # a character is at least a byte: refuse before encoding
        raise SpecError(f"spec is larger than {MAX_SPEC_BYTES} bytes")
    if isinstance(text, str):
        try:
            text = text.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate: not text any file could hold
            raise SpecError(f"spec is not valid Unicode text: {exc.reason}") from None
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"spec is larger than {MAX_SPEC_BYTES} bytes")
