"""The chat client streams (``"stream": true``) from the local stand-in over real HTTP: each
piece of the answer is emitted as it arrives; a malformed or truncated stream is a clear
error, not retried once text went out."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from streamproc.errors import EmitRefused, MalformedReply
from streamproc.outbound.llm import LLMClient, LLMSettings
from streamproc.outbound.providers import RetryPolicy
from streamproc.testing.fakes import Behaviour, Fakes


@pytest.fixture
def llm(fakes: Fakes, fast_retry: RetryPolicy) -> LLMClient:
    settings = LLMSettings.from_env(fakes.env())
    assert settings is not None
    return LLMClient(replace(settings, retry=fast_retry, timeout=5))


class Pieces:
    """An emit callback that keeps what it is given, and when."""

    def __init__(self, refuse_after: int | None = None) -> None:
        self.got: list[tuple[float, str]] = []
        self.refuse_after = refuse_after

    async def __call__(self, text: str) -> None:
        if self.refuse_after is not None and len(self.got) >= self.refuse_after:
            raise EmitRefused("no more chunks")
        self.got.append((asyncio.get_running_loop().time(), text))

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.got]


async def test_the_answer_is_emitted_piece_by_piece_as_it_arrives(
    llm: LLMClient, fakes: Fakes
) -> None:
    fakes.llm.word_delay = 0.02
    pieces = Pieces()
    answer = await llm.ask("what are redis streams", emit=pieces)
    done = asyncio.get_running_loop().time()
    assert "what are redis streams" in answer
    assert len(pieces.texts) > 5 and "".join(pieces.texts) == answer
    assert pieces.got[0][0] < done - 0.05  # the first piece came well before the end
    assert fakes.llm.requests == 1
    assert await llm.ask("what are redis streams") == answer  # unstreamed: the same text


async def test_a_malformed_chunk_mid_stream_is_a_clear_error_and_not_retried(
    llm: LLMClient, fakes: Fakes
) -> None:
    fakes.llm.script(Behaviour.BROKEN_STREAM)
    pieces = Pieces()
    with pytest.raises(MalformedReply, match=r"^llm: stream chunk 4 is not JSON$"):
        await llm.ask("q", emit=pieces)
    assert len(pieces.texts) == 2 and fakes.llm.requests == 1


async def test_a_stream_cut_before_done_is_a_clear_error(llm: LLMClient, fakes: Fakes) -> None:
    fakes.llm.script(Behaviour.CUT_STREAM)
    pieces = Pieces()
    with pytest.raises(MalformedReply, match=r"^llm: stream ended without \[DONE\] after \d+ "):
        await llm.ask("q", emit=pieces)
    assert pieces.texts and fakes.llm.requests == 1


async def test_errors_before_the_stream_starts_are_retried_as_usual(
    llm: LLMClient, fakes: Fakes
) -> None:
    fakes.llm.script(Behaviour.SERVER_ERROR)
    pieces = Pieces()
    answer = await llm.ask("q", emit=pieces)
    assert answer and "".join(pieces.texts) == answer and fakes.llm.requests == 2


async def test_past_what_emit_accepts_the_answer_is_still_read_whole(
    llm: LLMClient, fakes: Fakes
) -> None:
    pieces = Pieces(refuse_after=2)
    answer = await llm.ask("what are redis streams", emit=pieces)
    assert len(pieces.texts) == 2 and answer.startswith("".join(pieces.texts))
    assert len(answer) > len("".join(pieces.texts))
