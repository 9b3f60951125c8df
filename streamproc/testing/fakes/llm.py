"""A fake OpenAI-compatible chat-completions endpoint (``POST /v1/chat/completions``).

Its 401 echoes the key it was given, as some compatible servers do, so tests can check that
the client scrubs it.  Asked with ``"stream": true``, it streams the answer word by word as
the real API does (``data: {chunk}`` server-sent events, then ``data: [DONE]``), every
``word_delay`` seconds; ``Behaviour.BROKEN_STREAM`` cuts its third chunk's JSON short and
``Behaviour.CUT_STREAM`` ends the stream without ``[DONE]``.

Asked for "a JSON array" (a planner's prompt), it answers one: a string per result it would
have found (``Behaviour.EMPTY``: ``[]``); ``Behaviour.OFF_FORMAT`` answers such a prompt in
prose instead, as models sometimes do.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from aiohttp import web

from streamproc.testing.fakes.server import ANGLES, Behaviour, FakeServer, json_reply

STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
STREAMED = web.RequestKey("streamed", bool)  # the request asked for a streamed answer

MODEL = "fake-chat"
ASKS_FOR_JSON = re.compile(r"\bJSON array\b", re.IGNORECASE)
OFF_FORMAT = "Sure! First look up the components, then see how they work together."


class FakeLLM(FakeServer):
    name = "llm"
    method = "POST"
    path = "/v1/chat/completions"

    word_delay = 0.0  # seconds between streamed words

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def presented_key(self, request: web.Request) -> str | None:
        return request.headers.get("Authorization", "").removeprefix("Bearer ") or None

    async def read_query(self, request: web.Request) -> tuple[str, int]:
        """The last user message stands for the query; ``count`` is unused by chat."""
        body = orjson.loads(await request.read())
        request[STREAMED] = body.get("stream") is True
        messages = body.get("messages", [])
        said = [m.get("content", "") for m in messages if m.get("role") == "user"]
        return (said[-1] if said else ""), 3

    def answer(self, query: str, found: list[tuple[str, str, str]]) -> dict[str, Any]:
        if ASKS_FOR_JSON.search(query):
            text = orjson.dumps(list(ANGLES[: len(found)])).decode()
        else:
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

    async def reply(
        self, request: web.Request, behaviour: Behaviour, answer: dict[str, Any]
    ) -> web.StreamResponse:
        if behaviour is Behaviour.OFF_FORMAT:
            answer["choices"][0]["message"]["content"] = OFF_FORMAT
        if not request[STREAMED]:
            return json_reply(answer)
        response = web.StreamResponse(headers=STREAM_HEADERS)
        await response.prepare(request)
        await response.write(self._chunk(answer, {"role": "assistant"}))
        words = re.findall(r"\S+\s*", answer["choices"][0]["message"]["content"])
        for number, word in enumerate(words):
            if behaviour is Behaviour.BROKEN_STREAM and number == 2:
                await response.write(b'data: {"choices": [{"index": 0, "delta": {"cont\n\n')
                return response
            await response.write(self._chunk(answer, {"content": word}))
            if self.word_delay:
                await asyncio.sleep(self.word_delay)
        if behaviour is not Behaviour.CUT_STREAM:
            await response.write(self._chunk(answer, {}, "stop"))
            await response.write(b"data: [DONE]\n\n")
        return response

    @staticmethod
    def _chunk(answer: dict[str, Any], delta: dict[str, str], finish: str | None = None) -> bytes:
        chunk = {
            "id": answer["id"],
            "object": "chat.completion.chunk",
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

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
