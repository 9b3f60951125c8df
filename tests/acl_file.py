"""The shipped ACL file (deploy/acl.conf), read as the tests load it."""

from __future__ import annotations

import shlex
from pathlib import Path

ACL_FILE = Path(__file__).parents[1] / "deploy" / "acl.conf"


def acl_users() -> list[list[str]]:
    """Each ``user`` line of the shipped file as ACL SETUSER arguments, password set to the
    user's own name."""
    users = []
    for line in ACL_FILE.read_text().splitlines():
        if line.startswith("user "):
            words = shlex.split(line)[1:]
            users.append([f">{words[0]}" if w.startswith(">") else w for w in words])
    return users
