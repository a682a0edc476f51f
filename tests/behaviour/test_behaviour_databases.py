"""Databases through both implementations of the Mist API (in-process and over HTTP): the same results, the
same refusals, and the URL revealed as the same text."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from mist_core.api import MistAPI
from mist_core.errors import Conflict, InvalidInput, NotFound
from mist_core.models import DatabaseSpec
from tests.images import redis_image
from tests.mistkit import remove_everything_of


@pytest.fixture
async def project(mist: MistAPI) -> AsyncIterator[str]:
    await asyncio.to_thread(redis_image)
    name = "b" + uuid.uuid4().hex[:10]
    await mist.projects.create(name)
    try:
        yield name
    finally:
        await asyncio.to_thread(remove_everything_of, name)


async def test_a_redis_database_is_created_shown_revealed_and_deleted(mist: MistAPI, project: str) -> None:
    ref = f"{project}/cache"
    db = await mist.databases.create(ref, DatabaseSpec(engine="redis", persistence="aof", memory="64m"))
    assert (db.engine, db.version, db.status, db.persistence, db.memory) == (
        "redis",
        "7",
        "running",
        "aof",
        64 << 20,
    )
    assert db.linked_apps == [] and db.public_port is None
    assert (await mist.databases.get(ref)).model_dump() == db.model_dump()
    assert [d.ref for d in (await mist.databases.list(project=project)).items] == [ref]
    url = await mist.databases.url(ref)
    assert url.startswith("redis://default:") and url.endswith(f"@{db.host}:6379/0")
    assert url.split(":")[2].split("@")[0] not in db.model_dump_json()
    lines = [line.text async for line in mist.databases.logs(ref, tail=50)]
    assert any("Ready to accept connections" in text for text in lines)
    await mist.databases.delete(ref)
    with pytest.raises(NotFound, match="no database"):
        await mist.databases.get(ref)


async def test_database_refusals_are_the_same_in_process_and_over_http(mist: MistAPI, project: str) -> None:
    with pytest.raises(InvalidInput, match="use one of 7"):
        await mist.databases.create(f"{project}/x", DatabaseSpec(engine="redis", version="6"))
    with pytest.raises(InvalidInput, match="is a Redis setting"):
        await mist.databases.create(f"{project}/x", DatabaseSpec(engine="mariadb", persistence="none"))
    with pytest.raises(InvalidInput, match="database 'no-slash' is not 'project/name'"):
        await mist.databases.get("no-slash")
    with pytest.raises(NotFound):
        await mist.databases.url(f"{project}/nothing")
    await mist.databases.create(f"{project}/cache", DatabaseSpec(engine="redis"))
    with pytest.raises(Conflict, match="already has a database named 'cache'"):
        await mist.databases.create(f"{project}/cache", DatabaseSpec(engine="redis"))
    with pytest.raises(NotFound, match="no app"):
        await mist.databases.link(f"{project}/cache", "web")
