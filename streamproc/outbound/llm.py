"""An optional OpenAI-compatible chat client, for agents that want a model's words.

``POST {STREAMPROC_LLM_URL}/chat/completions`` with ``model`` (``STREAMPROC_LLM_MODEL``) and
``messages``, key ``STREAMPROC_LLM_API_KEY`` as a Bearer token (optional: local servers often
need none); the answer is ``choices[0].message.content``.  Given ``emit`` (``task.emit``, say),
the answer is streamed (``"stream": true``, read by ``llm_stream.py``) and each piece of text
emitted as it arrives.  The URL must be https, unless ``STREAMPROC_LLM_PLAIN_HTTP`` names its
``host:port`` (a local model server over http).  Errors and retries are those of the search
providers; an exhausted OpenAI account answers 429 with code ``insufficient_quota``, which is
:class:`QuotaSpent`, not a rate limit.  A rejected key disables the client for the process, so
a misconfigured deployment fails fast instead of hammering the API.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, TypedDict

import aiohttp

from streamproc.errors import ConfigError, KeyRejected, MalformedReply, ProviderError, QuotaSpent
from streamproc.outbound.guarded import check_base_url, pairs
from streamproc.outbound.http import Answer, RetryPolicy, exchange, request, whole, with_retries
from streamproc.outbound.llm_stream import Emit, read_deltas
from streamproc.outbound.providers.base import classify, describe, dig, error_text, json_object
from streamproc.outbound.secret import Secret

log = logging.getLogger(__name__)
NAME = "llm"


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class LLMSettings:
    url: str
    model: str
    key: Secret | None = None
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LLMSettings | None:
        """None when no model is configured: the LLM is optional."""
        url = environ.get("STREAMPROC_LLM_URL", "").strip().rstrip("/")
        model = environ.get("STREAMPROC_LLM_MODEL", "").strip()
        if not url and not model:
            return None
        if not url or not model:
            raise ConfigError("set both STREAMPROC_LLM_URL and STREAMPROC_LLM_MODEL, or neither")
        check_base_url("STREAMPROC_LLM_URL", url, pairs(environ, "STREAMPROC_LLM_PLAIN_HTTP"))
        key = environ.get("STREAMPROC_LLM_API_KEY", "").strip()
        return cls(url=url, model=model, key=Secret(key) if key else None)


class LLMClient:
    """``await LLMClient(settings).ask("Summarise: ...")`` -> the model's reply text;
    ``ask(..., emit=task.emit)`` streams it to the task's output as it is generated."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._rejected: KeyRejected | None = None

    def __repr__(self) -> str:
        return f"LLMClient(model={self.settings.model!r})"

    async def ask(self, prompt: str, system: str | None = None, *, emit: Emit | None = None) -> str:
        messages: list[Message] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        return await self.chat(messages, emit=emit)

    async def chat(self, messages: Sequence[Message], *, emit: Emit | None = None) -> str:
        if self._rejected is not None:
            raise self._rejected
        complete = self._complete if emit is None else partial(self._stream, emit)
        try:
            return await with_retries(self.settings.retry, complete, messages)
        except KeyRejected as exc:
            log.error("llm disabled for this process: key rejected (%s)", exc.reason)
            self._rejected = exc
            raise

    def _headers(self) -> dict[str, str]:
        key = self.settings.key
        return {"Authorization": f"Bearer {key.reveal()}"} if key else {}

    async def _complete(self, messages: Sequence[Message]) -> str:
        answer = await request(
            NAME,
            "POST",
            f"{self.settings.url}/chat/completions",
            timeout=self.settings.timeout,
            headers=self._headers(),
            payload={"model": self.settings.model, "messages": list(messages)},
        )
        if answer.status != 200:
            raise error_for(answer, self.settings.key)
        content = dig(json_object(NAME, answer), "choices", 0, "message", "content")
        if not isinstance(content, str):
            raise MalformedReply(NAME, "reply has no choices[0].message.content string")
        return content

    async def _stream(self, emit: Emit, messages: Sequence[Message]) -> str:
        payload = {"model": self.settings.model, "messages": list(messages), "stream": True}
        return await exchange(
            NAME,
            "POST",
            f"{self.settings.url}/chat/completions",
            partial(self._read_stream, emit),
            timeout=self.settings.timeout,
            headers=self._headers(),
            payload=payload,
        )

    async def _read_stream(self, emit: Emit, reply: aiohttp.ClientResponse) -> str:
        key = self.settings.key
        if reply.status != 200:
            raise error_for(await whole(reply), key)
        return await read_deltas(NAME, reply.content, emit, key.scrub if key else str)


def error_for(answer: Answer, key: Secret | None) -> ProviderError:
    detail = error_text(answer, "error", "message")
    detail = key.scrub(detail) if key else detail
    if answer.status == 429 and "insufficient_quota" in (
        error_text(answer, "error", "code"),
        error_text(answer, "error", "type"),
    ):
        return QuotaSpent(NAME, describe(answer, detail))
    return classify(NAME, answer, detail)
