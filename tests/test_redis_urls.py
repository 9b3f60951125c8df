"""Redis URLs are checked when the settings are made: a bad port, host or database is one
line naming the problem and the URL (its password hidden), not a traceback from redis-py
at the first connection, nor a silent database 0."""

from __future__ import annotations

import re

import pytest

from streamproc.config import RedisSettings
from streamproc.errors import ConfigError
from tests.cli_runner import assert_one_line_error, cli_env, run_sync

PORT = "the port must be a number from 1 to 65535"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://127.0.0.1:notaport/0", PORT),
        ("redis://127.0.0.1:0/0", PORT),
        ("redis://127.0.0.1:65536/0", PORT),
        ("redis://127.0.0.1:/0", PORT),
        ("redis://[::1/0", "malformed host (Invalid IPv6 URL)"),
        ("redis://127.0.0.1:6390/abc", "the database must be a number from 0 up, not 'abc'"),
        ("redis://127.0.0.1:6390/-1", "the database must be a number from 0 up, not '-1'"),
        ("redis://127.0.0.1:6390/1/2", "the database must be a number from 0 up, not '1/2'"),
        ("unix:///tmp/redis.sock?db=x", "the database must be a number from 0 up, not 'x'"),
    ],
)
def test_a_bad_port_host_or_database_is_refused_naming_it_and_the_url(
    url: str, problem: str
) -> None:
    with pytest.raises(
        ConfigError, match=f"^{re.escape(f'invalid Redis URL {url!r}: {problem}')}$"
    ):
        RedisSettings.from_url(url)


def test_a_refused_url_does_not_show_its_password() -> None:
    for url in ("redis://user:s3cret@host:x/0", "redis://:s3cret@[::1/0", "http://u:s3cret@h"):
        with pytest.raises(ConfigError) as caught:
            RedisSettings.from_url(url)
        assert "s3cret" not in str(caught.value) and ":***@" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6390/15",
        "redis://127.0.0.1",
        "redis://127.0.0.1:6390/",
        "redis://user:p@[::1]:6390/2?db=3",
        "rediss://host:6380/0?ssl_ca_certs=/etc/ca.pem",
        "unix:///path/to/sock?db=1",
        "unix:///path/to/sock",
    ],
)
def test_good_urls_are_taken_as_given(url: str) -> None:
    assert RedisSettings.from_url(url).url == url


def test_a_bad_redis_url_is_a_one_line_error_at_the_cli() -> None:
    result = run_sync("status", "--redis-url", "redis://127.0.0.1:notaport/0")
    assert_one_line_error(
        result, "error: invalid Redis URL 'redis://127.0.0.1:notaport/0': the port must be"
    )


@pytest.mark.parametrize("bad", [-1, 0, float("nan"), float("inf"), "15", True])
def test_a_timeout_that_is_not_a_positive_finite_number_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^socket_timeout must be a finite number of seconds"):
        RedisSettings(socket_timeout=bad)  # type: ignore[arg-type]


def test_an_empty_url_variable_is_refused_not_taken_as_the_default_redis() -> None:
    """click takes an empty variable as unset: the command went to 127.0.0.1:6379."""
    result = run_sync("status", env={**cli_env(), "STREAMPROC_REDIS_URL": ""})
    assert_one_line_error(result, "error: STREAMPROC_REDIS_URL is set but empty")
    assert result.code == 2, result
