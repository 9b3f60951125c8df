"""A listing page's cursor: where the merge of the shards' indexes stopped, as an opaque
token that names no other tenant's workflow (``listing.py``)."""

from __future__ import annotations

import base64
import binascii

from streamproc.errors import SpecError

Position = tuple[int, str]  # (created ms, workflow id): the merge's order, descending


# Sorts after every id (ids hold only A-Z a-z 0-9 _ . -): a cursor's id past all of a prefix's.
PAST_EVERY_ID = "~"


def encode_cursor(position: Position, prefix: str = "") -> str:
    """``position`` as an opaque cursor, its id without ``prefix``: a tenant's cursor names
    none of another tenant's workflows.  A position at another prefix's workflow becomes the
    same boundary among the prefix's own ids: before or after all of them."""
    created, workflow_id = position
    if not workflow_id.startswith(prefix):
        workflow_id = prefix if workflow_id < prefix else prefix + PAST_EVERY_ID
    token = f"{created}:{workflow_id.removeprefix(prefix)}"
    return base64.urlsafe_b64encode(token.encode()).decode()


def decode_cursor(cursor: str, prefix: str = "") -> Position:
    try:
        created, colon, workflow_id = base64.urlsafe_b64decode(cursor).decode().partition(":")
        if not colon:
            raise ValueError(cursor)
        return int(created), prefix + workflow_id
    except (ValueError, binascii.Error):
        raise SpecError(f"invalid cursor {cursor!r}: pass one a page returned") from None
