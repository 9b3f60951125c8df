"""What the HTTP API tests share: a test token, specs, a served app and SSE parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streamproc import Client
from streamproc.http.app import make_app
from streamproc.http.auth import ApiSettings

TOKEN = "s3cret-token-for-the-tests"  # noqa: S105 (a test token)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHAIN = {
    "name": "chain",
    "tasks": [
        {"id": "first", "agent": "echo", "input": 1},
        {"id": "second", "agent": "echo", "input": 2, "needs": ["first"]},
    ],
}
GATED = {
    "tasks": [{"id": "slow", "agent": "gate"}, {"id": "next", "agent": "echo", "needs": ["slow"]}]
}
Http = TestClient[web.Request, web.Application]


@asynccontextmanager
async def serving(client: Client, settings: ApiSettings) -> AsyncIterator[Http]:
    async with TestClient(TestServer(make_app(client, settings))) as http:
        yield http


def sse_frames(text: str) -> list[dict[str, str]]:
    """Each frame's fields (id, event, data); keep-alive comments are left out."""
    frames = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if lines:
            frames.append(dict(line.split(": ", 1) for line in lines))
    return frames


async def healthy(session: aiohttp.ClientSession, base: str) -> bool:
    try:
        async with session.get(f"{base}/healthz") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False
