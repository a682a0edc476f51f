"""Managed databases: made from their engine's spec (``mist_core.services``), run beside the project's apps,
linked to apps through secret variables, and their connection URL revealed on request."""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import json
import secrets as random
import weakref
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from .. import containers as live_containers
from .. import validate
from ..api import DatabasesAPI
from ..calls import audit, page, page_args
from ..core import Core
from ..errors import Conflict, InvalidInput, MistError, NotFound
from ..execs import ExecChannel
from ..models import (
    Database,
    DatabaseChanges,
    DatabaseLink,
    DatabaseSpec,
    DatabaseUser,
    DatabaseUserCreated,
    LogLine,
    Page,
)
from ..services import Command, Credentials, DatabaseEngine, engine_spec
from ..services import databases as db_specs
from ..services import runtime as db_runtime
from ..services.runtime import DatabaseRun
from ..store import Writer, ts
from .part import Part, visible_clause

# One change of a database's container at a time (update, upgrade), per core.
_CHANGING: weakref.WeakKeyDictionary[Core, dict[int, asyncio.Lock]] = weakref.WeakKeyDictionary()

_COLUMNS = (
    "d.id, d.name, d.engine, d.version, d.spec, d.username, d.database_name, d.password_sealed, "
    "d.admin_password_sealed, d.status, d.container_name, d.volume, d.created_at, d.updated_at, "
    "p.name AS project, p.uid AS project_uid, p.id AS project_id"
)
_FROM = "FROM databases d JOIN projects p ON p.id = d.project_id"


def _password() -> str:
    # URL-safe, so it sits in a connection URL as it is.
    return random.token_urlsafe(24)


class Databases(Part, DatabasesAPI):
    # ------------------------------------------------------------------------------------------ reading

    async def _row(self, db_ref: str) -> Any:
        project, name = validate.db_ref(db_ref)
        row = await self.store.one(
            f"SELECT {_COLUMNS} {_FROM} WHERE p.name = ? AND d.name = ?", (project, name)
        )
        if row is None:
            raise NotFound(f"there is no database {db_ref!r}", field="database")
        return row

    async def _allow(self, operation: str, db_ref: str) -> Any:
        """Check ``operation`` on the database's project; a project the caller cannot see hides it too."""
        project, _ = validate.db_ref(db_ref)
        try:
            return await self.m.allow(operation, project=project)
        except NotFound:
            raise NotFound(f"there is no database {db_ref!r}", field="database") from None

    def _credentials(self, row: Any) -> Credentials:
        admin = row["admin_password_sealed"]
        return Credentials(
            user=row["username"],
            password=self.core.secrets.open(
                row["password_sealed"], bound_to=f"database:{row['id']}:password"
            ),
            database=row["database_name"],
            admin_password=(
                self.core.secrets.open(admin, bound_to=f"database:{row['id']}:admin-password")
                if admin
                else None
            ),
        )

    def _run(self, row: Any) -> DatabaseRun:
        return DatabaseRun(
            project=row["project"],
            project_uid=row["project_uid"],
            name=row["name"],
            engine=engine_spec(row["engine"]),
            version=row["version"],
            creds=self._credentials(row),
            spec=DatabaseSpec.model_validate_json(row["spec"]),
        )

    async def _links(self, database_ids: builtins.list[int]) -> dict[int, builtins.list[str]]:
        if not database_ids:
            return {}
        marks = ",".join("?" * len(database_ids))
        rows = await self.store.all(
            "SELECT l.database_id, p.name || '/' || a.name AS ref FROM database_links l "
            "JOIN apps a ON a.id = l.app_id JOIN projects p ON p.id = a.project_id "
            f"WHERE l.database_id IN ({marks}) ORDER BY ref",
            tuple(database_ids),
        )
        links: dict[int, builtins.list[str]] = {}
        for r in rows:
            links.setdefault(int(r["database_id"]), []).append(r["ref"])
        return links

    def _model(self, row: Any, info: dict[str, Any] | None, links: builtins.list[str]) -> Database:
        engine = engine_spec(row["engine"])
        spec = DatabaseSpec.model_validate_json(row["spec"])
        return Database(
            id=row["id"],
            project=row["project"],
            name=row["name"],
            engine=row["engine"],
            version=row["version"],
            image=engine.image(row["version"]),
            status=db_runtime.status_of(info),
            host=row["container_name"],
            port=engine.port,
            public_port=spec.public_port,
            user=row["username"],
            database=row["database_name"],
            persistence=spec.persistence,
            memory=int(spec.memory) if spec.memory is not None else None,
            cpus=spec.cpus,
            restart=spec.restart,
            container_name=row["container_name"],
            volume=row["volume"],
            linked_apps=links,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    async def _database(self, db_ref: str) -> Database:
        row = await self._row(db_ref)
        info = await self.core.engine.inspect(row["container_name"])
        return self._model(row, info, (await self._links([row["id"]])).get(row["id"], []))

    async def get(self, db_ref: str) -> Database:
        await self._allow("databases.get", db_ref)
        return await self._database(db_ref)

    async def list(self, *, project: str | None = None, limit: int = 100, offset: int = 0) -> Page[Database]:
        caller = await self.m.allow("databases.list")
        limit, offset = page_args(limit, offset)
        visible, params = visible_clause(await self.m.visible_projects(caller))
        clauses = [visible] if visible != "1" else []
        if project:
            clauses.append("p.name = ?")
            params.append(project)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        total = int(await self.store.scalar(f"SELECT COUNT(*) {_FROM}{where}", params) or 0)
        rows = await self.store.all(
            f"SELECT {_COLUMNS} {_FROM}{where} ORDER BY p.name, d.name LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        links = await self._links([int(r["id"]) for r in rows])
        # One listing of the containers instead of an inspect each: the state and health are in its status.
        live = {c.name: c for c in await self.core.engine.list_containers(all=True)}
        items = []
        for r in rows:
            found = live.get(r["container_name"])
            info = None
            if found is not None:
                health = None
                if "(healthy)" in found.status:
                    health = "healthy"
                elif "(unhealthy)" in found.status:
                    health = "unhealthy"
                elif "(health: starting)" in found.status:
                    health = "starting"
                state: dict[str, Any] = {"Running": found.state == "running"}
                if health is not None:
                    state["Health"] = {"Status": health}
                info = {"State": state}
            items.append(self._model(r, info, links.get(int(r["id"]), [])))
        return page(items, total, limit, offset)

    # ------------------------------------------------------------------------------------------ life cycle

    async def create(self, db_ref: str, spec: DatabaseSpec) -> Database:
        project, name = validate.db_ref(db_ref)
        actor = await self.m.allow("databases.create", project=project)
        spec = validate.database_spec(spec, name)
        engine = engine_spec(spec.engine)
        version = spec.version or engine.default_version
        prow = await self.store.one("SELECT id, uid FROM projects WHERE name = ?", (project,))
        if prow is None:
            raise NotFound(
                f"there is no project {project!r}: create it first with `mist project create`",
                field="project",
            )
        await self._refuse_taken(prow["id"], project, name)
        # The image first: a pull that fails leaves nothing behind.
        await db_runtime.ensure_image(self.core.engine, engine.image(version))

        creds = engine.credentials_for(
            name, _password(), _password() if engine.needs_admin_password() else None
        )
        if spec.public_port is not None and not creds.password:
            raise InvalidInput(
                f"a {engine.title} database without a password is never published on a host port",
                field="public_port",
            )
        uid = str(prow["uid"])
        container = db_runtime.container_name(uid, name)
        volume = db_runtime.volume_name(uid, name)
        async with self.store.write() as w:
            await self._refuse_taken(prow["id"], project, name, w)
            database_id = await w.execute(
                "INSERT INTO databases (project_id, name, engine, version, spec, username, database_name, status, "
                "container_name, volume, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (prow["id"], name, engine.name, version, spec.model_dump_json(), creds.user, creds.database,
                 container, volume, ts(), ts()),
            )  # fmt: skip
            await w.execute(
                "UPDATE databases SET password_sealed = ?, admin_password_sealed = ? WHERE id = ?",
                (
                    self.core.secrets.seal(creds.password, bound_to=f"database:{database_id}:password"),
                    self.core.secrets.seal(
                        creds.admin_password, bound_to=f"database:{database_id}:admin-password"
                    )
                    if creds.admin_password
                    else None,
                    database_id,
                ),
            )
            await audit(
                w,
                actor,
                "database.create",
                project=project,
                database=name,
                engine=engine.name,
                version=version,
                public_port=spec.public_port,
            )
        run = self._run(await self._row(db_ref))
        try:
            await db_runtime.run_container(self.core.engine, run)
        except BaseException:
            # Nothing is kept of a database that never ran: its container, its empty volume, its row.
            await db_runtime.remove(self.core.engine, run, keep_volume=False)
            async with self.store.write() as w:
                await w.execute("DELETE FROM databases WHERE id = ?", (database_id,))
            raise
        await db_runtime.wait_healthy(self.core.engine, container, await self._health_wait())
        return await self._database(db_ref)

    async def _refuse_taken(self, project_id: int, project: str, name: str, w: Writer | None = None) -> None:
        """Databases and apps of a project share one set of names (one list, one namespace for a person)."""
        reader = w or self.store
        if await reader.one("SELECT 1 FROM databases WHERE project_id = ? AND name = ?", (project_id, name)):
            raise Conflict(f"project {project!r} already has a database named {name!r}", field="name")
        if await reader.one("SELECT 1 FROM apps WHERE project_id = ? AND name = ?", (project_id, name)):
            raise Conflict(
                f"project {project!r} has an app named {name!r}: give the database another name", field="name"
            )

    async def _health_wait(self) -> float:
        return float(await self.core.setting("database_health_wait"))

    async def delete(self, db_ref: str, *, keep_volume: bool = False) -> None:
        actor = await self._allow("databases.delete", db_ref)
        row = await self._row(db_ref)
        linked = (await self._links([row["id"]])).get(row["id"], [])
        if linked:
            raise Conflict(
                f"database {db_ref} is linked to {', '.join(linked)}: unlink it first "
                f"(mist db unlink {db_ref} {linked[0]})"
            )
        await db_runtime.remove(self.core.engine, self._run(row), keep_volume=keep_volume)
        async with self.store.write() as w:
            if await w.one("SELECT 1 FROM database_links WHERE database_id = ?", (row["id"],)):
                raise Conflict(f"database {db_ref} was linked to an app meanwhile: unlink it first")
            await w.execute("DELETE FROM databases WHERE id = ?", (row["id"],))
            await audit(
                w,
                actor,
                "database.delete",
                project=row["project"],
                database=row["name"],
                volume=row["volume"],
                kept_volume=keep_volume,
            )

    async def _set_status(self, row: Any, status: str, action: str, actor: Any) -> None:
        async with self.store.write() as w:
            await w.execute(
                "UPDATE databases SET status = ?, updated_at = ? WHERE id = ?", (status, ts(), row["id"])
            )
            await audit(w, actor, action, project=row["project"], database=row["name"])

    async def _ensure_container(self, row: Any) -> bool:
        """Make the container again when it is gone (removed by hand, or an engine reset): the data is on the
        volume. True when it was made."""
        if await self.core.engine.inspect(row["container_name"]) is not None:
            return False
        run = self._run(row)
        await db_runtime.ensure_image(self.core.engine, run.image)
        await db_runtime.run_container(self.core.engine, run)
        return True

    async def start(self, db_ref: str) -> Database:
        actor = await self._allow("databases.start", db_ref)
        row = await self._row(db_ref)
        if not await self._ensure_container(row):
            await self.core.engine.start(row["container_name"])
        await self._set_status(row, "running", "database.start", actor)
        await db_runtime.wait_healthy(self.core.engine, row["container_name"], await self._health_wait())
        return await self._database(db_ref)

    async def stop(self, db_ref: str) -> Database:
        actor = await self._allow("databases.stop", db_ref)
        row = await self._row(db_ref)
        await self._set_status(row, "stopped", "database.stop", actor)
        # A database gets time to write its data out: at least 30 seconds before it is killed.
        grace = max(30.0, float(await self.core.setting("stop_grace_period")))
        await self.core.engine.stop(row["container_name"], grace=grace)
        return await self._database(db_ref)

    async def restart(self, db_ref: str) -> Database:
        actor = await self._allow("databases.restart", db_ref)
        row = await self._row(db_ref)
        if not await self._ensure_container(row):
            grace = max(30.0, float(await self.core.setting("stop_grace_period")))
            await self.core.engine.restart(row["container_name"], grace=grace)
        await self._set_status(row, "running", "database.restart", actor)
        await db_runtime.wait_healthy(self.core.engine, row["container_name"], await self._health_wait())
        return await self._database(db_ref)

    async def logs(
        self, db_ref: str, *, follow: bool = False, tail: int | None = 200, since: datetime | None = None
    ) -> AsyncIterator[LogLine]:
        await self._allow("databases.logs", db_ref)
        tail = validate.log_tail(tail)
        row = await self._row(db_ref)
        async for line in self.core.engine.logs(row["container_name"], follow=follow, tail=tail, since=since):
            yield line

    # ------------------------------------------------------------------------------------------ secrets, links

    async def url(self, db_ref: str) -> str:
        caller = await self._allow("databases.url", db_ref)
        row = await self._row(db_ref)
        async with self.store.write() as w:
            await audit(w, caller, "database.url.reveal", project=row["project"], database=row["name"])
        return engine_spec(row["engine"]).url(self._credentials(row), row["container_name"])

    async def link(self, db_ref: str, app: str, *, prefix: str | None = None) -> DatabaseLink:
        actor = await self._allow("databases.link", db_ref)
        prefix = validate.link_prefix(prefix)
        app_name = validate.name(app, "app")
        row = await self._row(db_ref)
        app_ref = f"{row['project']}/{app_name}"
        target = await self.m.app(app_ref)
        engine = engine_spec(row["engine"])
        variables = engine.link_variables(self._credentials(row), row["container_name"], prefix)
        chosen = prefix or engine.variable
        async with self.store.write() as w:
            if await w.one(
                "SELECT 1 FROM database_links WHERE database_id = ? AND app_id = ?", (row["id"], target.id)
            ):
                raise Conflict(f"{app_ref} is linked to {db_ref} already", field="app")
            await self._refuse_clashes(w, target.id, app_ref, set(variables), chosen)
            for key, value in variables.items():
                await w.execute(
                    "INSERT INTO env_vars (app_id, key, value, secret, build, updated_at) VALUES (?, ?, ?, 1, 0, ?)",
                    (target.id, key, self.core.secrets.seal(value, bound_to=f"env:{target.id}:{key}"), ts()),
                )
            await w.execute(
                "INSERT INTO database_links (database_id, app_id, prefix, keys, created_at) VALUES (?, ?, ?, ?, ?)",
                (row["id"], target.id, chosen, json.dumps(sorted(variables)), ts()),
            )
            await audit(
                w,
                actor,
                "database.link",
                project=row["project"],
                app=target.name,
                database=row["name"],
                keys=sorted(variables),
            )
        self.core.events.announce("env", "set", project=target.project, app=target.name)
        deployment = await self._redeploy(app_ref, actor)
        return DatabaseLink(
            database=db_ref,
            app=app_ref,
            prefix=chosen,
            variables=sorted(variables),
            deployment_id=deployment,
        )

    async def _refuse_clashes(
        self, w: Writer, app_id: int, app_ref: str, keys: set[str], prefix: str
    ) -> None:
        """A link never overwrites a variable: neither one the user set nor another link's."""
        marks = ",".join("?" * len(keys))
        taken = [r["key"] for r in await w.all(
            f"SELECT key FROM env_vars WHERE app_id = ? AND key IN ({marks}) ORDER BY key", (app_id, *sorted(keys))
        )]  # fmt: skip
        if not taken:
            return
        other = await w.one(
            "SELECT p.name || '/' || d.name AS ref FROM database_links l JOIN databases d ON d.id = l.database_id "
            "JOIN projects p ON p.id = d.project_id WHERE l.app_id = ? AND l.prefix = ?",
            (app_id, prefix),
        )
        whose = f"the link to {other['ref']}" if other else "its environment"
        raise Conflict(
            f"{app_ref} has {', '.join(taken)} already (from {whose}): link with another prefix "
            f"(--as, e.g. --as {prefix}2), or unset them first",
            field="prefix",
        )

    async def _redeploy(self, app_ref: str, actor: Any) -> int | None:
        """Deploy the app again so its container gets the new variables; an app never deployed gets them at its
        first deployment."""
        app = await self.m.app(app_ref)
        if app.live_deployment_id is None:
            return None
        deployment = await self.core.orders.queue(app, None, actor)
        return deployment.id

    async def unlink(self, db_ref: str, app: str) -> None:
        actor = await self._allow("databases.unlink", db_ref)
        row = await self._row(db_ref)
        app_ref = f"{row['project']}/{validate.name(app, 'app')}"
        target = await self.m.app(app_ref)
        async with self.store.write() as w:
            link = await w.one(
                "SELECT keys FROM database_links WHERE database_id = ? AND app_id = ?", (row["id"], target.id)
            )
            if link is None:
                raise NotFound(f"{app_ref} is not linked to {db_ref}", field="app")
            keys = json.loads(link["keys"])
            for key in keys:
                await w.execute("DELETE FROM env_vars WHERE app_id = ? AND key = ?", (target.id, key))
            await w.execute(
                "DELETE FROM database_links WHERE database_id = ? AND app_id = ?", (row["id"], target.id)
            )
            await audit(
                w,
                actor,
                "database.unlink",
                project=row["project"],
                app=target.name,
                database=row["name"],
                keys=keys,
            )
        self.core.events.announce("env", "unset", project=target.project, app=target.name)
        await self._redeploy(app_ref, actor)

    # ------------------------------------------------------------------------------------------ after creation

    async def _running_row(self, db_ref: str) -> Any:
        """The database's row, when its server runs (a session or a user needs it up)."""
        row = await self._row(db_ref)
        status = db_runtime.status_of(await self.core.engine.inspect(row["container_name"]))
        if status in ("stopped", "missing"):
            raise Conflict(f"database {db_ref} is {status}: start it first (mist db start {db_ref})")
        return row

    async def shell(
        self,
        db_ref: str,
        args: builtins.list[str] | None = None,
        *,
        tty: bool = False,
        height: int | None = None,
        width: int | None = None,
    ) -> ExecChannel:
        actor = await self._allow("databases.shell", db_ref)
        extra = live_containers.exec_command(["client", *(args or [])])[1:]
        size = live_containers.terminal_size(height, width)
        row = await self._running_row(db_ref)
        argv = engine_spec(row["engine"]).shell_command(extra)
        name = row["container_name"]
        session = await self.core.engine.exec_interactive(name, argv, tty=tty)
        channel = live_containers.EngineExecChannel(session, tty=tty, engine=self.core.engine, name=name)
        if size is not None and tty:
            await channel.resize(*size)
        async with self.store.write() as w:
            await audit(
                w, actor, "database.shell", project=row["project"], database=row["name"], args=extra, tty=tty
            )
        return channel

    def _user_engine(self, row: Any) -> DatabaseEngine:
        engine = engine_spec(row["engine"])
        if engine.users_refusal is not None:
            raise InvalidInput(engine.users_refusal, field="database")
        return engine

    async def _run_sql(self, row: Any, command: Command, what: str, secret: str | None = None) -> str:
        """Run one of the engine's user commands in the database's container; its output, or an error with
        the server's first complaint (never the password)."""
        result = await self.core.engine.exec(row["container_name"], command.argv, env=command.env)
        if result.exit_code == 0:
            return result.output
        lines = [x.strip() for x in result.output.splitlines() if x.strip() and not x.startswith("---")]
        said = next((x for x in lines if "ERROR" in x.upper()), lines[-1] if lines else "no output")
        if secret:
            said = said.replace(secret, "******")
        raise MistError(f"{what} on {row['project']}/{row['name']} failed: {said}")

    async def _user_names(self, row: Any, engine: DatabaseEngine, creds: Credentials) -> dict[str, str]:
        output = await self._run_sql(row, engine.users_command(creds), "listing the users")
        users = {}
        for line in output.splitlines():
            name, sep, kind = line.strip().partition("|")
            if sep:
                users[name] = kind
        return users

    async def users(self, db_ref: str) -> builtins.list[DatabaseUser]:
        await self._allow("databases.users", db_ref)
        row = await self._running_row(db_ref)
        engine = self._user_engine(row)
        creds = self._credentials(row)
        found = await self._user_names(row, engine, creds)
        return [
            DatabaseUser(
                name=name,
                kind="app" if name == creds.user else ("superuser" if kind == "superuser" else "user"),
            )
            for name, kind in sorted(found.items())
        ]

    async def create_user(
        self, db_ref: str, user: str, *, password: str | None = None
    ) -> DatabaseUserCreated:
        actor = await self._allow("databases.create_user", db_ref)
        row = await self._row(db_ref)
        engine = self._user_engine(row)
        creds = self._credentials(row)
        user = db_specs.check_user_name(engine, creds, user)
        generated = password is None or password == ""
        password = _password() if generated else db_specs.check_password(password or "")
        row = await self._running_row(db_ref)
        if user in await self._user_names(row, engine, creds):
            raise Conflict(f"{db_ref} has a user named {user!r} already", field="user")
        await self._run_sql(
            row, engine.create_user_command(creds, user, password), f"creating user {user}", password
        )
        async with self.store.write() as w:
            await audit(
                w, actor, "database.user.create", project=row["project"], database=row["name"], user=user
            )
        return DatabaseUserCreated(database=db_ref, user=user, password=password, generated=generated)

    async def drop_user(self, db_ref: str, user: str) -> None:
        actor = await self._allow("databases.drop_user", db_ref)
        row = await self._row(db_ref)
        engine = self._user_engine(row)
        creds = self._credentials(row)
        user = db_specs.check_user_name(engine, creds, user)
        row = await self._running_row(db_ref)
        if user not in await self._user_names(row, engine, creds):
            raise NotFound(f"{db_ref} has no user named {user!r}", field="user")
        await self._run_sql(row, engine.drop_user_command(creds, user), f"removing user {user}")
        async with self.store.write() as w:
            await audit(
                w, actor, "database.user.drop", project=row["project"], database=row["name"], user=user
            )

    # ------------------------------------------------------------------------------------------ the container again

    def _lock(self, database_id: int) -> asyncio.Lock:
        return _CHANGING.setdefault(self.core, {}).setdefault(database_id, asyncio.Lock())

    async def _replace(self, row: Any, old: DatabaseRun, new: DatabaseRun) -> None:
        """Make the database's container again as ``new`` says, with its volume, and wait for its health
        check; a container that does not get healthy is replaced by ``old`` again and the error says why. A
        database that was stopped is stopped again once the new container has passed its check."""
        engine = self.core.engine
        name = row["container_name"]
        was_stopped = db_runtime.status_of(await engine.inspect(name)) == "stopped"
        grace = max(30.0, float(await self.core.setting("stop_grace_period")))
        wait = await self._health_wait()
        await engine.stop(name, grace=grace)
        await engine.remove(name)
        status: str = "missing"
        failure = ""
        try:
            await db_runtime.run_container(engine, new)
            status = await db_runtime.wait_healthy(engine, name, wait)
        except MistError as err:
            failure = str(err)
        if status != "running":
            if not failure:
                failure = await self._why_unhealthy(name, status, wait, new)
            await engine.stop(name, grace=grace)
            await engine.remove(name)
            await db_runtime.run_container(engine, old)
            back = await db_runtime.wait_healthy(engine, name, wait)
            if was_stopped:
                await engine.stop(name, grace=grace)
            raise Conflict(
                f"database {row['project']}/{row['name']} did not get healthy with {new.image} ({failure}); "
                f"it runs {old.image} again as before ({'stopped' if was_stopped else back})"
            )
        if was_stopped:
            await engine.stop(name, grace=grace)

    async def _why_unhealthy(self, name: str, status: str, wait: float, run: DatabaseRun) -> str:
        info = await self.core.engine.inspect(name)
        said = db_runtime.health_output(info)
        if status == "starting":
            reason = f"its health check had not passed after {wait:g} s"
        elif status == "stopped":
            code = ((info or {}).get("State") or {}).get("ExitCode")
            reason = f"its server exited (code {code})"
        else:
            reason = "its health check failed"
        if not said:
            lines = [line.text async for line in self.core.engine.logs(name, tail=3)]
            said = " / ".join(x.strip() for x in lines if x.strip())
        for secret in (run.creds.password, run.creds.admin_password):
            if secret:
                said = said.replace(secret, "******")
        return f"{reason}: {said[-300:]}" if said else reason

    async def update(self, db_ref: str, changes: DatabaseChanges) -> Database:
        actor = await self._allow("databases.update", db_ref)
        row = await self._row(db_ref)
        spec = DatabaseSpec.model_validate_json(row["spec"])
        given = changes.model_fields_set
        update: dict[str, Any] = {}
        if "memory" in given and changes.memory is not None:
            update["memory"] = validate.memory(changes.memory)
        if "cpus" in given and changes.cpus is not None:
            update["cpus"] = validate.cpus(changes.cpus)
        if "restart" in given and changes.restart is not None:
            update["restart"] = validate.restart_policy(changes.restart)
        if "public_port" in given:
            port = changes.public_port
            if port is not None:
                port = validate.port(port, "public_port")
                if port < 1024:
                    raise InvalidInput(
                        f"public port {port} is a privileged port: use 1024-65535", field="public_port"
                    )
            update["public_port"] = port
        if not update:
            raise InvalidInput(
                "nothing to change: give --memory, --cpus, --restart, --public-port or --no-public-port",
                field="changes",
            )
        new_spec = spec.model_copy(update=update)
        if new_spec == spec:
            return await self._database(db_ref)
        async with self._lock(row["id"]):
            row = await self._row(db_ref)
            old = self._run(row)
            await self._replace(row, old, dataclasses.replace(old, spec=new_spec))
            async with self.store.write() as w:
                await w.execute(
                    "UPDATE databases SET spec = ?, updated_at = ? WHERE id = ?",
                    (new_spec.model_dump_json(), ts(), row["id"]),
                )
                await audit(
                    w, actor, "database.update", project=row["project"], database=row["name"], **update
                )
        return await self._database(db_ref)

    async def upgrade(self, db_ref: str, version: str) -> Database:
        actor = await self._allow("databases.upgrade", db_ref)
        row = await self._row(db_ref)
        engine = engine_spec(row["engine"])
        version = engine.check_upgrade(row["version"], version)
        # The image first: a pull that fails changes nothing.
        await db_runtime.ensure_image(self.core.engine, engine.image(version))
        async with self._lock(row["id"]):
            row = await self._row(db_ref)
            old = self._run(row)
            version = engine.check_upgrade(old.version, version)
            new_spec = old.spec.model_copy(update={"version": version})
            await self._replace(row, old, dataclasses.replace(old, version=version, spec=new_spec))
            async with self.store.write() as w:
                await w.execute(
                    "UPDATE databases SET version = ?, spec = ?, updated_at = ? WHERE id = ?",
                    (version, new_spec.model_dump_json(), ts(), row["id"]),
                )
                await audit(
                    w,
                    actor,
                    "database.upgrade",
                    project=row["project"],
                    database=row["name"],
                    version=version,
                    previous=old.version,
                )
        return await self._database(db_ref)
