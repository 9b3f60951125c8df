"""A process given another shard count than its namespace runs is refused at start: a
workflow lands on shard ``crc32(id) mod shards``, so a producer given 4 where the daemons run
1 put three in four workflows on shards no worker reads, where they waited for ever."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, ConfigError, Keyspace, RedisSettings
from streamproc.transport.epoch import Epoch
from tests.cli_runner import assert_one_line_error, run
from tests.conftest import Engine, eventually


async def test_a_client_or_daemon_given_another_shard_count_is_refused_naming_the_right_one(
    engine: Engine, redis: Redis, redis_url: str, keyspace: Keyspace, tmp_path: Path
) -> None:
    await eventually(lambda: redis.exists(keyspace.epoch(0)))  # the daemons began its epoch
    wrong = Keyspace(keyspace.namespace, shards=4)
    said = f"namespace '{keyspace.namespace}' runs 1 shard(s), not 4: give --shards 1"
    with pytest.raises(ConfigError, match=f"^{re.escape(said)}"):
        async with Client(redis_url, ClientSettings(keyspace=wrong)):
            pass
    with pytest.raises(ConfigError, match=f"^{re.escape(said)}"):
        await Epoch(RedisSettings.from_url(redis_url).connect(), wrong).establish()
    assert not await redis.exists(wrong.epoch(1))  # refused before starting another shard's
    spec = tmp_path / "one.yaml"
    spec.write_text("tasks: [{id: a, agent: description}]\n")
    where = ("--redis-url", redis_url, "--namespace", keyspace.namespace)
    submitted = await run("submit", str(spec), "--shards", "4", *where)
    assert_one_line_error(submitted, f"error: {said}")
    for verb in (["status"], ["list"], ["dead", "list"], ["agents", "prune"]):  # read some
        assert_one_line_error(await run(*verb, "--shards", "4", *where), f"error: {said}")
    assert (await run("status", *where)).code == 0
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:  # the right one
        assert await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})


async def test_an_epoch_begun_by_an_earlier_version_checks_nothing(
    redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    """Earlier versions wrote a bare random value, which processes only compare."""
    await redis.set(keyspace.epoch(0), "0123456789abcdef0123456789abcdef")
    other = Keyspace(keyspace.namespace, shards=4)
    async with Client(redis_url, ClientSettings(keyspace=other)) as client:
        assert client.keyspace.shards == 4
