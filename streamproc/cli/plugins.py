"""Verbs from other packages: each entry point of the group ``streamproc.commands`` is one
verb (name = verb name, value = a click command), as the project's agents add ``demo``.

A verb is loaded only when it is run or listed, so a package that fails to import breaks
its own verb, with a one-line error, and no other."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import click

from streamproc.cli.verb import fail

ENTRY_POINT_GROUP = "streamproc.commands"


class VerbGroup(click.Group):
    """The built-in verbs, then those of the entry-point group (a built-in name wins)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *added()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry_point = added().get(cmd_name)
        return None if entry_point is None else load(entry_point)


def added() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load(entry_point: EntryPoint) -> click.Command:
    """The entry point's command, or one that says why it could not be loaded."""
    try:
        command = entry_point.load()
    except Exception as exc:  # any failure of a plugin's import is that plugin's alone
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    else:
        if isinstance(command, click.Command):
            return command
        reason = f"{entry_point.value} is not a click command"
    return unavailable(entry_point.name, reason)


def unavailable(name: str, reason: str) -> click.Command:
    """A stand-in verb that takes any arguments and fails with ``reason``."""

    def refuse() -> None:
        fail(f"verb {name} is unavailable: {reason}", 1)

    return click.Command(
        name,
        callback=refuse,
        help=f"Unavailable: {reason}",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
