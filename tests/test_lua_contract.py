"""The Lua functions take every constant they share with Python from the prelude that
``store/functions.py`` renders from the Python modules that own them: no Lua file spells a
hash field, an entry field, an event kind, a state name or the resolver's group, and every
constant a file uses exists."""

from __future__ import annotations

import re
from importlib import resources
from typing import get_args

import pytest

from streamproc.store.codec import CompletionKind
from streamproc.store.entries import EntryField, EventKind
from streamproc.store.fields import CacheField, TaskField, WorkflowField
from streamproc.store.functions import CACHE, ENGINE, LIMITS, Library
from streamproc.store.keys import RESOLVER_GROUP
from streamproc.store.state import Breaker, Health, TaskStatus, Verdict, WorkflowStatus

LUA = resources.files("streamproc.store").joinpath("lua")
FILES = sorted(
    [f"engine/{p.name}" for p in LUA.joinpath("engine").iterdir() if p.name.endswith(".lua")]
    + [p.name for p in LUA.iterdir() if p.name.endswith(".lua")]
)
LIBRARIES = {"engine": ENGINE, "limits": LIMITS, "cache": CACHE}


def source_of(path: str) -> str:
    return LUA.joinpath(*path.split("/")).read_text()


def code_of(path: str) -> str:
    """The file without its comments."""
    text = re.sub(r"--\[\[.*?\]\]", "", source_of(path), flags=re.S)
    return re.sub(r"--[^\n]*", "", text)


@pytest.mark.parametrize("path", FILES)
def test_each_file_opens_with_its_header_and_leaves_the_library_line_to_the_join(
    path: str,
) -> None:
    text = source_of(path)
    assert text.startswith(f"--[[ {path.rsplit('/', 1)[-1]}:")
    assert "#!lua" not in text


@pytest.mark.parametrize("name", sorted(LIBRARIES))
def test_a_library_names_itself_once_at_the_top(name: str) -> None:
    source = LIBRARIES[name].source
    assert source.startswith("#!lua name=")
    assert source.count("#!lua") == 1


@pytest.mark.parametrize("name", sorted(LIBRARIES))
def test_every_constant_a_library_uses_is_in_its_prelude(name: str) -> None:
    library: Library = LIBRARIES[name]
    tables: dict[str, set[str]] = {}
    for table, body in re.findall(r"^local (\w+) = \{\n(.*?)^\}", library.source, re.S | re.M):
        tables[table] = set(re.findall(r"^  (\w+) = ", body, re.M))
    used = re.findall(r"\b([A-Z]+)\.(\w+)", library.source)
    missing = {f"{t}.{k}" for t, k in used if t in tables and k not in tables[t]}
    assert not missing


@pytest.mark.parametrize("path", FILES)
def test_no_lua_file_spells_a_constant_python_owns(path: str) -> None:
    words = {*WorkflowField, *TaskStatus, *WorkflowStatus, *CompletionKind, *CacheField}
    words |= {*EntryField, *EventKind}
    words |= {*get_args(Verdict), *get_args(Health), *get_args(Breaker), RESOLVER_GROUP}
    # an attempt's outcome in a task's history (JSON in a hash field) is Lua's own word
    code = re.sub(r"\boutcome = '\w+'", "", code_of(path))
    quoted = set(re.findall(r"'([^']*)'", code))
    assert not {f"{field}:" for field in TaskField} & quoted
    assert not words & quoted
