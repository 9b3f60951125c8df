"""A fake OpenAI-compatible chat-completions endpoint (``POST /v1/chat/completions``).

Its 401 echoes the key it was given, as some compatible servers do, so tests can check that
the client scrubs it.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from streamproc.testing.fakes.server import Behaviour, FakeServer, json_reply

MODEL = "fake-chat"


class FakeLLM(FakeServer):
    name = "llm"
    method = "POST"
    path = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def presented_key(self, request: web.Request) -> str | None:
        return request.headers.get("Authorization", "").removeprefix("Bearer ") or None

    async def read_query(self, request: web.Request) -> tuple[str, int]:
        """The last user message stands for the query; ``count`` is unused by chat."""
        messages = orjson.loads(await request.read()).get("messages", [])
        said = [m.get("content", "") for m in messages if m.get("role") == "user"]
        return (said[-1] if said else ""), 3

    def answer(self, query: str, found: list[tuple[str, str, str]]) -> dict[str, Any]:
        text = " ".join(snippet for _, _, snippet in found)
        return {
            "id": f"chatcmpl-fake-{self.requests}",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": len(query.split()), "completion_tokens": len(text.split())},
        }

    def refuse(self, behaviour: Behaviour, presented: str) -> web.Response:
        if behaviour is Behaviour.UNAUTHORIZED:
            return self._error(401, f"Incorrect API key provided: {presented}.", "invalid_api_key")
        if behaviour is Behaviour.QUOTA_SPENT:
            text = "You exceeded your current quota, please check your plan and billing details."
            return self._error(429, text, "insufficient_quota")
        reply = self._error(429, "Rate limit reached for requests.", "rate_limit_exceeded")
        reply.headers["Retry-After"] = self.wait_header
        return reply

    @staticmethod
    def _error(status: int, message: str, code: str) -> web.Response:
        body = {"error": {"message": message, "type": code, "param": None, "code": code}}
        return json_reply(body, status)
