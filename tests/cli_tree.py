"""Checking a documented ``streamproc`` command against the CLI's click command tree: the
verb (and sub-verb) exists, and so does every ``--option`` the text names."""

from __future__ import annotations

import re

import click

from streamproc.cli.main import main

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The command that ``streamproc WORDS...`` runs, and the words naming it."""
    command: click.Command = main
    path: list[str] = []
    with click.Context(main) as ctx:
        for word in words:
            if not isinstance(command, click.Group):
                break
            sub = command.get_command(ctx, word)
            if sub is None:
                assert word.startswith(("-", "[")) or word.isupper(), (
                    f"streamproc {' '.join([*path, word])}: no such verb"
                )
                break
            command, path = sub, [*path, word]
    return command, path


def unknown_options(text: str) -> list[str]:
    """The ``--options`` of ``text`` (a command line that starts with ``streamproc``, with
    any notes after it) that its verb does not take."""
    words = text.split()
    assert words[0] == "streamproc", text
    command, path = resolve(words[1:])
    assert path, f"{text!r} names no verb"
    known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    return [f"streamproc {' '.join(path)} {o}" for o in OPTION.findall(text) if o not in known]
