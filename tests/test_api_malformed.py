"""Security checks W2 and W3: whatever the HTTP parser or the token check rejects is refused
with a fixed JSON error, and no log line or response carries the token, over raw sockets
against the real server (``serve``) and redis-server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamproc import Client
from streamproc.cli.api import TOKENS_VARIABLE
from streamproc.errors import ConfigError
from streamproc.http.app import LINGER, serve
from streamproc.http.auth import ApiSettings, digest
from streamproc.http.tokens import file_tokens, parse_tokens
from streamproc.testing.embedded import free_port
from tests.cli_runner import assert_one_line_error, cli_env, run_sync
from tests.conftest import eventually

TOKEN = "w2-secret-token-never-logged"  # noqa: S105 (a test token)
READ_TIMEOUT = 1.0


def malformed(token: str) -> dict[str, str]:
    """Header lines the parser rejects, each carrying ``token``, by what is wrong."""
    return {
        "CR CR LF after the token": f"Authorization: Bearer {token}\r\r\n",
        "NUL after the token": f"Authorization: Bearer {token}\x00\r\n",
        "\\x01 after the token": f"Authorization: Bearer {token}\x01\r\n",
        "a folded header": f"X-Folded: a\r\n Authorization: Bearer {token}\r\n",
        "a missing colon": f"Authorization Bearer {token}\r\n",
    }


MALFORMED = malformed(TOKEN)


async def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` as is and read the answer until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read(-1)
    finally:
        writer.close()


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture
async def port(client: Client) -> AsyncIterator[int]:
    """The real server, with one token, on a free port; headers and bodies that trickle are
    cut after ``READ_TIMEOUT``."""
    port, stop = free_port(), asyncio.Event()
    settings = ApiSettings.with_tokens(
        [TOKEN], port=port, header_timeout=READ_TIMEOUT, body_timeout=READ_TIMEOUT
    )
    server = asyncio.create_task(serve(client, settings, stop))

    async def up() -> bool:
        try:
            return (await exchange(port, b"GET /healthz HTTP/1.0\r\n\r\n")).startswith(b"HTTP")
        except OSError:
            return False

    await eventually(up)
    yield port
    stop.set()
    await server


@pytest.mark.parametrize("line", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_header_the_parser_rejects_is_a_json_400_and_its_token_is_nowhere(
    port: int, line: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request = f"GET /agents HTTP/1.1\r\nHost: x\r\n{line}Connection: close\r\n\r\n"
    answer = await exchange(port, request.encode())
    status, body = status_and_body(answer)
    assert status == 400 and body == b'{"error":"malformed request"}', answer
    assert TOKEN.encode() not in answer
    assert TOKEN not in caplog.text and "Traceback" not in caplog.text, caplog.text
    said = [r for r in caplog.records if r.name == "streamproc.http.server"]
    assert [(r.levelno, r.getMessage().split(" from ")[0]) for r in said] == [
        (logging.INFO, "refused a malformed request")
    ]


async def test_a_lowercase_method_is_a_json_400_that_echoes_nothing(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request = f"post /workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    status, body = status_and_body(await exchange(port, request.encode()))
    assert status == 400 and body == b'{"error":"malformed request"}'
    assert TOKEN not in caplog.text and "Traceback" not in caplog.text


async def test_a_token_with_a_byte_that_is_no_utf8_is_a_401_not_a_500(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    header = b"Authorization: Bearer " + TOKEN.encode() + b"\xe9\r\n"
    request = b"GET /agents HTTP/1.1\r\nHost: x\r\n" + header + b"Connection: close\r\n\r\n"
    status, body = status_and_body(await exchange(port, request))
    assert status == 401 and b"invalid bearer token" in body, (status, body)
    assert "Traceback" not in caplog.text


def test_a_tokens_file_with_windows_line_endings_gives_the_token_without_its_cr() -> None:
    credentials = parse_tokens(f"# tokens\r\n{TOKEN} tenant=acme\r\n\r\n", "\n", "tokens.txt")
    assert [c.digest for c in credentials] == [digest(TOKEN)]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "tokens.txt holds no token"),
        (b"\n\n", "tokens.txt holds no token"),
        (b"# the operator's token goes here\n", "tokens.txt holds no token"),
        (b"\xff\xfe" + TOKEN.encode(), "tokens.txt: not UTF-8 text (byte 1)"),
    ],
)
def test_a_tokens_file_without_a_token_or_not_utf8_is_refused_in_one_line(
    raw: bytes, error: str
) -> None:
    """Passing a tokens file asks for authentication: one without any token used to start
    the API as if none were configured, every loopback caller an operator.  A file that is no
    UTF-8 was a UnicodeDecodeError traceback."""
    with pytest.raises(ConfigError) as refused:
        file_tokens(raw, "tokens.txt")
    assert str(refused.value).startswith(error) and "\n" not in str(refused.value)


def test_the_api_verb_refuses_tokens_given_as_separators_or_comments_only(tmp_path: Path) -> None:
    """``STREAMPROC_API_TOKENS="   ,"`` and a file of comments started with no token at all."""
    env = {**cli_env(), TOKENS_VARIABLE: "   ,"}
    result = run_sync("api", env=env)
    assert_one_line_error(result, f"error: {TOKENS_VARIABLE} holds no token")
    tokens = tmp_path / "tokens"
    for text in ("# the operator's token goes here\n\n", ""):
        tokens.write_text(text)
        result = run_sync("api", "--tokens-file", str(tokens))
        assert_one_line_error(result, f"error: {tokens} holds no token")
    tokens.write_bytes(b"\xff" + TOKEN.encode())
    result = run_sync("api", "--tokens-file", str(tokens))
    assert_one_line_error(result, f"error: {tokens}: not UTF-8 text (byte 1)")


async def trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """``data`` one byte at a time, 5 a second, for as long as the connection takes it."""
    for byte in data:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)


async def cut_after(port: int, head: bytes, slow: bytes) -> tuple[float, bytes]:
    """Seconds until the server closes a connection sending ``head`` at once, then ``slow``
    trickled, and what it answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    started = asyncio.get_running_loop().time()
    sending = asyncio.create_task(trickle(writer, slow))
    try:
        async with asyncio.timeout(10):
            answer = await reader.read(-1)
        return asyncio.get_running_loop().time() - started, answer
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.close()


async def test_headers_trickling_one_byte_at_a_time_are_cut_after_the_header_timeout(
    port: int,
) -> None:
    head = f"GET /agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n".encode()
    took, answer = await cut_after(port, head, b"X-Slow: " + b"a" * 200)
    assert took < READ_TIMEOUT + 2, took
    assert TOKEN.encode() not in answer


async def test_a_body_trickling_one_byte_at_a_time_is_cut_after_the_body_timeout(
    port: int,
) -> None:
    head = (
        "POST /workflows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 400\r\n\r\n"
    ).encode()
    took, answer = await cut_after(port, head, b'{"tasks": []' + b" " * 388)
    assert took < READ_TIMEOUT + LINGER + 2, took
    status, body = status_and_body(answer)
    assert status == 408 and b"body" in body, answer
