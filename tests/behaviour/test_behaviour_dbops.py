"""A database after it exists, through both implementations of the Mist API (in-process and over HTTP): a
client session (the same duplex path as exec), its users, an update of its settings, and the refusals of an
upgrade, with the same results and the same errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from mist_core.api import MistAPI
from mist_core.errors import Conflict, InvalidInput, NotFound
from mist_core.execs import ExecChannel
from mist_core.models import DatabaseChanges, DatabaseSpec
from tests.images import postgres_image
from tests.mistkit import remove_everything_of


@pytest.fixture
async def project(mist: MistAPI) -> AsyncIterator[str]:
    await asyncio.to_thread(postgres_image)
    name = "b" + uuid.uuid4().hex[:10]
    await mist.projects.create(name)
    try:
        yield name
    finally:
        await asyncio.to_thread(remove_everything_of, name)


async def _run(channel: ExecChannel, stdin: bytes = b"") -> tuple[int, str]:
    async with channel:
        if stdin:
            await channel.write(stdin)
        await channel.close_input()
        out = bytearray()
        while (item := await channel.read()) is not None:
            out += item[1]
        return await channel.exit_code(), out.decode(errors="replace")


async def test_a_postgres_database_is_used_through_its_client_its_users_and_its_settings(
    mist: MistAPI, project: str
) -> None:
    ref = f"{project}/main"
    await mist.databases.create(ref, DatabaseSpec(engine="postgres"))

    code, out = await _run(await mist.databases.shell(ref, ["-At", "-c", "SELECT 6 * 7"]))
    assert (code, out.strip()) == (0, "42")
    code, out = await _run(await mist.databases.shell(ref, ["-At"]), b"CREATE TABLE t (n int);\nSELECT 1;\n")
    assert code == 0 and out.split()[-1] == "1"
    code, _ = await _run(await mist.databases.shell(ref, ["-c", "SELECT nothing FROM nowhere"]))
    assert code != 0

    created = await mist.databases.create_user(ref, "reporter")
    assert created.generated and created.user == "reporter" and created.database == ref
    assert [(u.name, u.kind) for u in await mist.databases.users(ref)] == [
        ("main", "app"),
        ("reporter", "user"),
    ]
    with pytest.raises(Conflict, match="already"):
        await mist.databases.create_user(ref, "reporter", password="another-long-password")
    with pytest.raises(InvalidInput, match="is not allowed"):
        await mist.databases.create_user(ref, 'x"; DROP ROLE main; --')
    await mist.databases.drop_user(ref, "reporter")
    with pytest.raises(NotFound, match="no user named 'reporter'"):
        await mist.databases.drop_user(ref, "reporter")

    updated = await mist.databases.update(ref, DatabaseChanges(restart="always", memory="200m"))
    assert (updated.restart, updated.memory, updated.status) == ("always", 200 << 20, "running")
    code, out = await _run(await mist.databases.shell(ref, ["-At", "-c", "SELECT count(*) FROM t"]))
    assert (code, out.strip()) == (0, "0")
    with pytest.raises(InvalidInput, match="nothing to change"):
        await mist.databases.update(ref, DatabaseChanges())
    with pytest.raises(InvalidInput, match="major upgrade"):
        await mist.databases.upgrade(ref, "17")
    with pytest.raises(InvalidInput, match="NUL"):
        await mist.databases.shell(ref, ["a\x00b"])
    await mist.databases.stop(ref)
    with pytest.raises(Conflict, match="is stopped: start it first"):
        await mist.databases.users(ref)
