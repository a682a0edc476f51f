"""The world the TUI tests and screenshots look at: a real core (``Core.open`` on a SQLite file, no deploy
workers) seeded through the real API at fixed instants of Mist's clock, so every id and timestamp is the same
on every run.

Only what the core reads from outside is stood in for: the engine's container list and container logs, the
metrics sampler's figures (both fixed, plus what a test pushes), and the randomness of new secrets. Deployments
are queued through the API and then written to the state a worker would have left them in (``_finish``).

The seeded data directory is made once per process and copied for every app, so a test starts from the same
database and changes only its own copy.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import random
import re
import secrets as stdlib_secrets
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from mist_core import clock
from mist_core.auth import totp
from mist_core.config import CoreConfig
from mist_core.errors import TooManyAttempts, Unauthenticated
from mist_core.local import Core, LocalMist
from mist_core.models import (
    AppSpec,
    ContainerInfo,
    ContainerStats,
    DeploymentState,
    DomainSettings,
    GitProviderSpec,
    HealthCheck,
    LogLine,
    MetricsSample,
    PreviewSettings,
    SourceChanges,
    StepTiming,
    SystemSample,
    UserChanges,
)
from mist_core.store import ts
from mist_core.tls.acme_client import IssuedCertificate
from tests.standins.forge import (
    Forge,
    branch_sha,
    pull_request_payload,
    push_payload,
    serve_forge,
    sign_delivery,
)

NOW = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"  # every account's password
GIB = 1024**3
MIB = 1024**2


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def fixed_clock() -> datetime:
    return NOW


# ---------------------------------------------------------------------------------------------- stand-ins


class Follow:
    """Items a stream yields after its fixed ones: a test pushes them, every open follower gets each."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[Any]] = []

    async def follow(self) -> AsyncIterator[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)

    def push(self, item: object) -> None:
        for queue in list(self._queues):
            queue.put_nowait(item)


class ReadingsEngine:
    """The engine as the seeded world has it: the fixed containers and their logs to read, nothing else (no
    container to inspect, so no proxy either); whatever would change a container does nothing. It never
    reaches the machine's Docker, so what other tests run there cannot show on a screen."""

    def __init__(self, world: World) -> None:
        self._world = world

    def __getattr__(self, name: str) -> Any:
        async def nothing(*args: Any, **kwargs: Any) -> None:
            return None

        return nothing

    def close(self) -> None:
        return None

    async def inspect(self, name: str) -> dict[str, Any] | None:
        """Docker's inspect data of a live app container of the world (what `d` describes); None otherwise."""
        base = re.sub(r"-\d+$", "", name)  # mist-shop-web-12: the live container of shop/web
        found = next((c for c in self._world.containers if c.name == base), None)
        if found is None:
            return None
        started = found.created_at.isoformat().replace("+00:00", "Z") if found.created_at else ""
        return {
            "Id": found.id * 5 + "abcd",
            "Name": "/" + name,
            "Image": "sha256:" + hashlib.sha256(found.image.encode()).hexdigest(),
            "Path": "/bin/sh",
            "Args": ["-c", "exec ./serve"],
            "RestartCount": 0,
            "Config": {
                "Image": found.image,
                "Env": ["PORT=8080", "LOG_LEVEL=info", "DATABASE_URL=postgres://app:pw@db/shop"],
                "WorkingDir": "/app",
                "User": "",
            },
            "State": {"Status": "running", "StartedAt": started, "FinishedAt": "0001-01-01T00:00:00Z"},
            "HostConfig": {"RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}},
            "NetworkSettings": {"Networks": {f"mist_{found.project}": {}}},
            "Mounts": [],
        }

    async def image_exists(self, image: str) -> bool:
        return True

    async def list_containers(
        self,
        *,
        all: bool = False,
        project: str | None = None,
        app: str | None = None,
        deployment: int | None = None,
    ) -> list[ContainerInfo]:
        return [
            c
            for c in self._world.containers
            if (project is None or c.project == project)
            and (app is None or c.app == app)
            and (deployment is None or c.deployment_id == deployment)
        ]

    async def logs(
        self, name: str, *, follow: bool = False, tail: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[LogLine]:
        name = re.sub(r"-\d+$", "", name)  # mist-shop-web-12: the live container of shop/web
        lines = self._world.container_logs.get(name, [])
        for line in lines[-tail:] if tail else lines:
            yield line
        if follow:
            async for line in self._world.logs_of(name).follow():
                yield line


class FixedSampler:
    """The metrics sampler with fixed figures: a minute of samples, then whatever a test pushes."""

    def __init__(self, world: World) -> None:
        self._world = world

    def latest(self) -> MetricsSample | None:
        return self._world.samples[-1]

    async def sample(self) -> MetricsSample:
        return self._world.samples[-1]

    def history(self, seconds: int) -> list[MetricsSample]:
        since = NOW - timedelta(seconds=seconds)
        return [s for s in self._world.samples if s.system.ts >= since]

    async def subscribe(self) -> AsyncIterator[MetricsSample]:
        yield self._world.samples[-1]
        async for sample in self._world.metrics.follow():
            yield sample

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@contextlib.contextmanager
def fixed_randomness(seed: int = 7) -> Iterator[None]:
    """New secrets (tokens, invitations, TOTP secrets, recovery codes, deploy keys) drawn from a seeded
    generator, so the screens that show one once look the same on every run."""
    rng = random.Random(seed)
    saved = {
        name: getattr(stdlib_secrets, name)
        for name in ("token_bytes", "token_hex", "token_urlsafe", "choice")
    }
    saved_generate = ed25519.Ed25519PrivateKey.generate

    def token_bytes(n: int | None = None) -> bytes:
        return rng.randbytes(32 if n is None else n)

    fixed = {
        "token_bytes": token_bytes,
        "token_hex": lambda n=None: token_bytes(n).hex(),
        "token_urlsafe": lambda n=None: base64.urlsafe_b64encode(token_bytes(n)).rstrip(b"=").decode(),
        "choice": rng.choice,
    }
    for name, function in fixed.items():
        setattr(stdlib_secrets, name, function)
    ed25519.Ed25519PrivateKey.generate = staticmethod(  # type: ignore[method-assign]
        lambda: ed25519.Ed25519PrivateKey.from_private_bytes(token_bytes(32))
    )
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(stdlib_secrets, name, function)
        ed25519.Ed25519PrivateKey.generate = saved_generate  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------- the world


@dataclass
class World:
    """One copy of the seeded data directory, and the readings its core sees."""

    data_dir: Path
    # username -> an access token of that user's seeded session; "totp:grace" and "recovery:grace": her
    # two-factor secret and one of her recovery codes
    tokens: dict[str, str]
    ids: dict[str, int]  # deployments worth opening: "building" (shop/api), "metabase" (failed)
    containers: list[ContainerInfo] = field(default_factory=list)
    container_logs: dict[str, list[LogLine]] = field(default_factory=dict)
    samples: list[MetricsSample] = field(default_factory=list)
    metrics: Follow = field(default_factory=Follow)
    _logs: dict[str, Follow] = field(default_factory=dict)
    _hooks: list[Callable[[LocalMist], None]] = field(default_factory=list)
    git: bool = False  # its providers' APIs are the forge stand-in's (``forge()``)
    core: Core | None = None
    engine_type: type[ReadingsEngine] = ReadingsEngine

    def logs_of(self, container: str) -> Follow:
        return self._logs.setdefault(container, Follow())

    def push_log(self, app_ref: str, line: LogLine) -> None:
        """Hand ``line`` to every follower of the app's logs open now (a line pushed before anyone
        follows is not kept: wait for ``followers`` first)."""
        self.logs_of(f"mist-{app_ref.replace('/', '-')}").push(line)

    def followers(self, app_ref: str) -> int:
        """How many log followers of the app's container are open."""
        return len(self.logs_of(f"mist-{app_ref.replace('/', '-')}")._queues)

    async def open(self, token: str | None) -> LocalMist:
        """A view for ``token`` of the core on this copy, opened in the running loop (the app's); closing the
        view closes the core, as with an embedded core."""
        await self.close()
        clock.freeze(NOW)
        core = await Core.open(
            CoreConfig(data_dir=self.data_dir, run_workers=False),
            engine=self.engine_type(self),  # type: ignore[arg-type]
        )
        core.sampler = FixedSampler(self)  # type: ignore[assignment]
        if self.git:
            core.credentials.transport = forge_transport
        self.core = core
        view = core.api(token, source="unix", user_agent="mist-tui/0.1")
        close_view = view.close

        async def close() -> None:
            await close_view()
            if self.core is core:
                await self.close()

        view.close = close  # type: ignore[method-assign]
        for hook in self._hooks:
            hook(view)
        return view

    def on_open(self, hook: Callable[[LocalMist], None]) -> None:
        """Hand every view opened from now on to ``hook`` (which may wrap a call to count or time it)."""
        self._hooks.append(hook)

    async def close(self) -> None:
        core, self.core = self.core, None
        if core is not None:
            await core.close()

    def token(self, username: str | None) -> str | None:
        return self.tokens.get(username) if username else None


_BASE = Path(tempfile.mkdtemp(prefix="mist-tui-worlds-"))
atexit.register(shutil.rmtree, _BASE, True)
# Worlds opened by a test live under a path made from the test's id, so a screen that shows the data
# directory (the proxy status does, at 200 columns) looks the same on every run.
_STABLE = Path(tempfile.gettempdir()) / "mist-tui-worlds"
_opened: dict[str, int] = {}
_template: tuple[Path, dict[str, str], dict[str, int]] | None = None
_git_template: tuple[Path, dict[str, str], dict[str, int]] | None = None
_template_lock = threading.Lock()


def _world_dir() -> Path:
    """An empty directory for one world's data directory."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    if not test:
        return Path(tempfile.mkdtemp(dir=_BASE))
    name = hashlib.sha256(test.encode()).hexdigest()[:12]
    _claim(test, name)
    _opened[test] = n = _opened.get(test, 0) + 1
    path = _STABLE / f"{name}-{n}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    _held[test][1].append(path)
    return path


# test id -> (the descriptor holding its lock, its worlds' directories)
_held: dict[str, tuple[int, list[Path]]] = {}


def _claim(test: str, name: str) -> None:
    """Hold the directories of ``test``'s worlds against another process running the same test: every
    checkout's suite on this machine names them alike, and one would delete the other's data under it.
    Waits for the other to finish that test; the directories of this process's earlier tests, which have
    finished, are removed and let go."""
    for other in [t for t in _held if t != test]:
        _release(other)
    if test in _held:
        return
    _STABLE.mkdir(parents=True, exist_ok=True)
    fd = os.open(_STABLE / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _held[test] = (fd, [])


def _release(test: str) -> None:
    fd, paths = _held.pop(test)
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    os.close(fd)  # lets go of the lock


@atexit.register
def _release_all() -> None:
    for test in list(_held):
        _release(test)


def new_world(*, git: bool = False) -> World:
    """A fresh copy of the seeded world (seeded on first use in this process); with ``git``, the world
    after its team also set up git hosting (``_seed_git``): providers on the forge stand-in, shop/web's
    deploy key, webhook deliveries and previews, shop/api linked to a provider's repository."""
    global _template, _git_template
    with _template_lock:
        if _template is None:
            _template = _in_thread(_seed_template)
        if git and _git_template is None:
            _git_template = _in_thread(lambda: _seed_git_template(_template))
    source, tokens, ids = _git_template if git else _template  # type: ignore[misc]
    copy = _world_dir() / "data"
    shutil.copytree(source, copy)
    world = World(copy, dict(tokens), dict(ids), git=git)
    _readings(world)
    return world


def empty_world() -> World:
    """A core with no account yet (first start)."""
    world = World(_world_dir() / "data", {}, {})
    _readings(world)
    return world


def record_calls(world: World, *operations: str) -> list[tuple[Any, ...]]:
    """The calls the TUI makes to ``operations`` ("auth.login", "tokens.create"...) on every view of
    ``world`` opened from now on, each as (operation, *arguments, **keyword values in order), recorded as the
    call reaches the core, which then answers it as ever."""
    calls: list[tuple[Any, ...]] = []

    def wrap(view: LocalMist) -> None:
        for operation in operations:
            part, method = operation.split(".")
            target = getattr(getattr(view, part), method)

            async def recorded(*args: Any, _op: str = operation, _call: Any = target, **kwargs: Any) -> Any:
                calls.append((_op, *args, *kwargs.values()))
                return await _call(*args, **kwargs)

            setattr(getattr(view, part), method, recorded)

    world.on_open(wrap)
    return calls


def add_apps(world: World, count: int, project: str = "labs") -> None:
    """``count`` more apps in ``project`` (``svc00000``, ``svc00001``...), each a copy of its first app's
    spec, written straight into the world's store in one transaction: as many apps as a big instance holds,
    without creating them one API call at a time."""

    async def add() -> None:
        core = await Core.open(
            CoreConfig(data_dir=world.data_dir, run_workers=False),
            engine=ReadingsEngine(world),  # type: ignore[arg-type]
        )
        try:
            async with core.store.write() as w:
                await w.execute(
                    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?) "
                    "INSERT INTO apps (project_id, name, spec, status, created_at, updated_at) "
                    "SELECT a.project_id, printf('svc%05d', n.i), a.spec, 'new', a.created_at, a.updated_at "
                    "FROM n, (SELECT a.* FROM apps a JOIN projects p ON p.id = a.project_id "
                    "WHERE p.name = ? ORDER BY a.id LIMIT 1) a",
                    (count, project),
                )
        finally:
            await core.close()

    _in_thread(add)


def _in_thread(make: Any) -> Any:
    """Run the coroutine function ``make`` to the end on a loop of its own (callers may be inside one)."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as exc:  # handed to the caller
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


# ---------------------------------------------------------------------------------------------- seeding


def _at(moment: datetime) -> None:
    clock.freeze(moment)


async def _finish(
    core: Core,
    deployment_id: int,
    *,
    state: DeploymentState,
    sha: str,
    message: str,
    author: str,
    durations: list[float],
    error: str | None = None,
    image: str | None = None,
    container: str | None = None,
    logs: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> None:
    """Leave a queued deployment as a worker would have: its steps, commit, image, log and final state."""
    row = await core.store.one("SELECT created_at FROM deployments WHERE id = ?", (deployment_id,))
    start = datetime.fromisoformat(row["created_at"])
    steps: list[StepTiming] = []
    t = start
    for step, seconds in zip(
        (
            DeploymentState.fetching,
            DeploymentState.building,
            DeploymentState.starting,
            DeploymentState.checking,
            DeploymentState.switching,
        ),
        durations,
        strict=False,
    ):
        finished = t + timedelta(seconds=seconds) if seconds >= 0 else None
        steps.append(StepTiming(step=step, started_at=t, finished_at=finished))
        if finished is None:
            break
        t = finished
    final = state.is_final
    async with core.store.write() as w:
        await w.execute(
            "UPDATE deployments SET state = ?, commit_sha = ?, commit_message = ?, commit_author = ?, image = ?, "
            "container_name = ?, error = ?, steps = ?, finished_at = ? WHERE id = ?",
            (
                state.value,
                sha,
                message,
                author,
                image,
                container,
                error,
                json.dumps([s.model_dump(mode="json") for s in steps]),
                ts(t) if final else None,
                deployment_id,
            ),
        )
        await w.execute("DELETE FROM jobs WHERE deployment_id = ?", (deployment_id,))
        for seq, (stream, text) in enumerate(logs, start=1):
            await w.execute(
                "INSERT INTO deployment_logs (deployment_id, seq, ts, stream, text) VALUES (?, ?, ?, ?, ?)",
                (deployment_id, seq, ts(start + timedelta(seconds=seq)), stream, text),
            )


async def _set_app(core: Core, ref: str, status: str, live: int | None) -> None:
    project, name = ref.split("/")
    async with core.store.write() as w:
        await w.execute(
            "UPDATE apps SET status = ?, live_deployment_id = ? "
            "WHERE name = ? AND project_id = (SELECT id FROM projects WHERE name = ?)",
            (status, live, name, project),
        )


async def _login(core: Core, username: str, source: str, agent: str, code: str | None = None) -> str:
    view = core.api(None, source=source, user_agent=agent)
    session = await view.auth.login(username, PASSWORD, totp=code)
    return session.token


APPS: list[tuple[str, str, int | None]] = [
    ("shop", "web", 8080),
    ("shop", "api", 8000),
    ("shop", "worker", None),
    ("blog", "site", 80),
    ("internal", "grafana", 3000),
    ("internal", "metabase", 3000),
    ("labs", "experiment", 5000),
    ("labs", "sandbox", None),
]
GIT_URLS = {
    "shop/web": "https://git.example.com/shop/web.git",
    "shop/api": "https://git.example.com/shop/api.git",
    "shop/worker": "https://git.example.com/shop/api.git",
    "blog/site": "https://git.example.com/blog/site.git",
    "internal/grafana": "https://git.example.com/int/graf.git",
    "internal/metabase": "https://git.example.com/int/metabase.git",
    "labs/experiment": "https://git.example.com/labs/exp.git",
    "labs/sandbox": "https://git.example.com/labs/sandbox.git",
}


async def _seed_template() -> tuple[Path, dict[str, str], dict[str, int]]:
    data_dir = Path(tempfile.mkdtemp(dir=_BASE)) / "data"
    with fixed_randomness(11):
        try:
            tokens, ids = await _seed(data_dir)
        finally:
            clock.reset()
    return data_dir, tokens, ids


@contextlib.asynccontextmanager
async def _as(core: Core, username: str, source: str = "unix", agent: str = "mist-cli/0.1 (Linux)"):
    """A view of ``username`` for a few calls at the clock's current instant: logged in, then out again."""
    view = core.api(None, source=source, user_agent=agent)
    await view.auth.login(username, PASSWORD, totp=None)
    try:
        yield view
    finally:
        await view.auth.logout()


Step = tuple[datetime, str, Callable[[LocalMist], Awaitable[object]]]


async def _seed(data_dir: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Four months of a small team's Mist, replayed in time order (so the audit log reads as it happened)."""
    _at(ago(days=120))
    core = await Core.open(
        CoreConfig(data_dir=data_dir, run_workers=False),
        engine=ReadingsEngine(World(data_dir, {}, {})),  # type: ignore[arg-type]
    )
    ids: dict[str, int] = {}
    tokens: dict[str, str] = {}
    try:
        first = core.api(None, source="unix", user_agent="mist-cli/0.1 (Linux)")
        await first.auth.setup("ada", PASSWORD)
        await first.users.update("ada", UserChanges(email="ada@example.com", full_name="Ada Lovelace"))
        await first.auth.logout()
        for when, user, step in sorted(_timeline(core, ids, tokens), key=lambda s: s[0]):
            _at(when)
            if user.startswith("open:"):  # a login that stays open (a session on the Sessions screen)
                _, name, source, agent = user.split(":", 3)
                view = core.api(None, source=source, user_agent=agent)
                await view.auth.login(name, PASSWORD)
                await step(view)
            elif user == "-":  # the step brings its own view
                await step(core.api(None))
            else:
                async with _as(core, user) as view:
                    await step(view)
        return tokens, ids
    finally:
        await core.close()
        clock.reset()


def _timeline(core: Core, ids: dict[str, int], tokens: dict[str, str]) -> list[Step]:
    steps: list[Step] = []

    def at(when: datetime, user: str) -> Callable[[Callable[[LocalMist], Awaitable[object]]], None]:
        def add(step: Callable[[LocalMist], Awaitable[object]]) -> None:
            steps.append((when, user, step))

        return add

    async def nothing(view: LocalMist) -> None:
        return None

    for when, name, role, email in [
        (ago(days=100), "linus", "developer", "linus@example.com"),
        (ago(days=90), "grace", "admin", "grace@example.com"),
        (ago(days=2), "ken", "viewer", None),
    ]:
        at(when, "ada")(lambda v, n=name, r=role, e=email: v.users.create(n, PASSWORD, role=r, email=e))
    for i, (owner, name, desc) in enumerate(
        [
            ("ada", "shop", "The storefront and its API"),
            ("linus", "blog", "Company blog"),
            ("ada", "internal", "Dashboards for the team"),
            ("linus", "labs", "Experiments"),
        ]
    ):
        at(ago(days=99 - i), owner)(lambda v, n=name, d=desc: v.projects.create(n, d))
    for when, project, name, role in [
        (ago(days=80), "shop", "grace", "admin"),
        (ago(days=29), "shop", "linus", "developer"),
        (ago(days=25), "internal", "linus", "developer"),
        (ago(days=2), "shop", "ken", "viewer"),
        (ago(days=1), "internal", "ken", "viewer"),
    ]:
        at(when, "ada")(lambda v, p=project, n=name, r=role: v.members.add(p, n, r))

    async def create_apps(view: LocalMist) -> None:
        for project, name, port in APPS:
            ref = f"{project}/{name}"
            spec = AppSpec(
                git_url=GIT_URLS[ref],
                port=port,
                publish=["127.0.0.1:18080:8080"] if name == "web" else [],
                memory=512 * MIB if name in ("web", "api") else None,
                cpus=1.0 if name == "api" else None,
                health=HealthCheck(type="http", path="/healthz") if name == "web" else HealthCheck(),
            )
            await view.apps.create(ref, spec)

    at(ago(days=60), "ada")(create_apps)

    # Deployments that finished: shop/web's six a day apart (one failed, one a rollback to "Tweak footer"),
    # then the other apps' last ones.
    web = [
        "Tweak footer",
        "Initial import",
        "Cache product images",
        "Bump dependencies",
        "Add health endpoint",
    ]
    finished = [
        (
            ago(hours=2 + 26 * (5 - k)),
            "shop/web",
            f"{4 + k}f2c1ab4e5d6a7b8c9d0e1f2a3b4c5d6e7f8091",
            msg,
            "ada",
        )
        for k, msg in enumerate([*web, "Fix checkout rounding"])
    ]
    finished += [
        (ago(days=40), "internal/grafana", "0d15ea5e00001111222233334444555566667777", "Grafana 11", "ada"),
        (ago(days=9), "labs/experiment", "deadbeef0001aaaabbbbccccddddeeeeffff0000", "New renderer", "linus"),
        (ago(days=5), "shop/worker", "51be07c2aa10f3e2d1c0b9a8f7e6d5c4b3a29180", "Batch orders", "ada"),
        (ago(days=1), "shop/api", "51be07c2aa10f3e2d1c0b9a8f7e6d5c4b3a29180", "Paginate orders", "ada"),
        (ago(minutes=3), "blog/site", "c0ffee1234567890abcdef1234567890abcdef12", "Hello, world", "linus"),
    ]

    async def deploy(view: LocalMist, ref: str, sha: str, message: str, author: str) -> None:
        if message == "Bump dependencies":  # went back to "Tweak footer" instead
            dep = await view.apps.rollback(ref, to=ids["first"])
            sha, message = "4f2c1ab4e5d6a7b8c9d0e1f2a3b4c5d6e7f8091", "Tweak footer"
            image = f"mist/shop-web:{ids['first']}"
        else:
            dep = await view.apps.deploy(ref)
            image = f"mist/{ref.replace('/', '-')}:{dep.id}"
        if message == "Tweak footer" and "first" not in ids:
            ids["first"] = dep.id
        failed = message == "Cache product images"
        await _finish(
            core,
            dep.id,
            state=DeploymentState.failed if failed else DeploymentState.live,
            sha=sha,
            message=message,
            author=author,
            durations=[1.2, 38.5, 2.1, 20.0] if failed else [1.2, 38.5, 2.1, 4.0, 0.4],
            error="health check failed: GET /healthz answered 503" if failed else None,
            image=image,
            container=f"mist-{ref.replace('/', '-')}-{dep.id}",
        )
        if not failed:
            await _supersede(core, ref, dep.id)
            await _set_app(core, ref, "stopped" if ref == "labs/experiment" else "live", dep.id)

    for when, ref, sha, message, author in finished:
        at(when - timedelta(seconds=46), author)(
            lambda v, r=ref, s=sha, m=message, a=author: deploy(v, r, s, m, a)
        )

    async def deploy_metabase(view: LocalMist) -> None:
        metabase = await view.apps.deploy("internal/metabase", ref="v0.50.2")
        ids["metabase"] = metabase.id
        await _finish(
            core,
            metabase.id,
            state=DeploymentState.failed,
            sha="3c9d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d",
            message="Pin metabase to v0.50.2",
            author="linus",
            durations=[0.9, 61.3, 1.8, 21.0],
            error="health check failed after 10 tries: GET / on port 3000 refused the connection",
            image=f"mist/internal-metabase:{metabase.id}",
            logs=[
                ("system", "fetching v0.50.2 from https://git.example.com/int/metabase.git"),
                ("system", "checked out 3c9d2e1f (Pin metabase to v0.50.2)"),
                ("system", f"building image mist/internal-metabase:{metabase.id}"),
                ("stdout", "#6 DONE 61.3s"),
                ("system", f"starting container mist-internal-metabase-{metabase.id}"),
                ("system", "checking: GET / on port 3000 every 2s, 10 tries"),
                ("stderr", "connection refused (try 1/10)"),
                ("stderr", "connection refused (try 10/10)"),
                (
                    "system",
                    f"health check failed; removed mist-internal-metabase-{metabase.id}, "
                    "the previous container keeps serving",
                ),
            ],
        )
        await _set_app(core, "internal/metabase", "failed", None)

    at(ago(minutes=14), "linus")(deploy_metabase)

    # Variables of shop/web, its domains, API tokens and an invitation.
    for when, key, value, secret, build in [
        (ago(days=30), "NODE_ENV", "production", False, True),
        (ago(days=10), "LOG_LEVEL", "info", False, False),
        (ago(days=4), "DATABASE_URL", "postgres://shop:s3cret@db:5432/shop", True, False),
        (ago(days=1), "WORKERS", "4", False, False),
        (ago(hours=5), "STRIPE_KEY", "sk_live_51Hc0ffee", True, False),
    ]:
        at(when, "ada")(
            lambda v, k=key, x=value, s=secret, b=build: v.env.set("shop/web", k, x, secret=s, build=b)
        )

    async def add_domains(view: LocalMist) -> None:
        for name in ("shop.example.com", "checkout.example.com", "shop.example.org", "www.shop.example.com"):
            await view.domains.add("shop/web", name, DomainSettings())
        # What the certificate scheduler (not running here) would have made of them since.
        await core.certs.save_issued("shop.example.com", _certificate("shop.example.com"))
        await core.certs.mark_pending("shop.example.org")
        await core.certs.mark_failed(
            "shop.example.org",
            error="the ACME server could not validate the domain: shop.example.org: 203.0.113.9: "
            "Timeout during connect (likely firewall problem)",
            next_attempt_at=NOW + timedelta(minutes=5),
        )

    at(ago(days=7), "ada")(add_domains)
    at(ago(days=20), "linus")(lambda v: v.domains.add("blog/site", "blog.example.com", DomainSettings()))
    for when, user, name, scope, project, days in [
        (ago(days=115), "ada", "old-laptop", "admin", None, 5),
        (ago(days=40), "ada", "grafana-read", "read", None, None),
        (ago(days=10), "ada", "ci-deploy", "deploy", "shop", 90),
        (ago(days=5), "grace", "release-bot", "deploy", "shop", 90),
    ]:
        at(when, user)(
            lambda v, n=name, s=scope, p=project, d=days: v.tokens.create(
                n, scope=s, project=p, expires_days=d
            )
        )
    at(ago(hours=6), "ada")(
        lambda v: v.invites.create(
            email="barbara@example.com", role="developer", project="shop", project_role="developer"
        )
    )

    # Sessions that stay open: ada on a laptop, linus, grace (who turns on two-factor authentication, then
    # deploys shop/api: still building), and ada's TUI now. A failed login of linus's in between.
    async def laptop(view: LocalMist) -> None:
        assert view.token is not None
        tokens["ada-laptop"] = view.token  # long expired by now

    at(ago(days=3), "open:ada:203.0.113.7:mist-cli/0.1 (Linux)")(laptop)
    at(ago(days=2), "open:linus:198.51.100.4:mist-cli/0.1 (macOS)")(nothing)

    async def failed_login(view: LocalMist) -> None:
        with contextlib.suppress(Unauthenticated, TooManyAttempts):
            await core.api(None, source="198.51.100.4").auth.login("linus", "not the password")

    at(ago(hours=20), "ada")(failed_login)

    grace: list[LocalMist] = []

    async def grace_2fa(view: LocalMist) -> None:
        enrollment = await view.auth.totp_setup()
        recovery = await view.auth.totp_enable(totp.totp_now(enrollment.secret))
        tokens["totp:grace"], tokens["recovery:grace"] = enrollment.secret, recovery.codes[0]
        grace.append(view)

    async def grace_deploys(_: LocalMist) -> None:
        view = grace[0]
        building = await view.apps.deploy("shop/api")
        ids["building"] = building.id
        await _finish(
            core,
            building.id,
            state=DeploymentState.building,
            sha="7a1e5c0d9b8f7e6d5c4b3a291807f6e5d4c3b2a1",
            message="Add order export endpoint",
            author="grace",
            durations=[1.4, -1],
            logs=[
                ("system", "fetching main from https://git.example.com/shop/api.git"),
                ("system", "checked out 7a1e5c0d (Add order export endpoint)"),
                ("system", f"building image mist/shop-api:{building.id}"),
                ("stdout", "#1 [internal] load build definition from Dockerfile"),
                ("stdout", "#2 [internal] load .dockerignore"),
                ("stdout", "#3 [1/5] FROM python:3.12-slim"),
                ("stdout", "#4 [2/5] COPY requirements.txt ."),
                ("stdout", "#5 [3/5] RUN pip install -r requirements.txt"),
                ("stdout", "#5 2.31 Collecting fastapi==0.115.0"),
                ("stdout", "#5 4.87 Collecting uvicorn==0.30.6"),
                ("stdout", "#5 9.02 Installing collected packages: starlette, uvicorn, fastapi"),
            ],
        )
        await _set_app(core, "shop/api", "deploying", (await view.apps.get("shop/api")).live_deployment_id)

    at(ago(hours=3), "open:grace:10.0.0.12:mist-tui/0.1")(grace_2fa)
    at(ago(seconds=52), "-")(grace_deploys)

    async def tui_login(view: LocalMist) -> None:
        assert view.token is not None
        tokens["ada"] = view.token

    at(ago(minutes=5), "open:ada:unix:mist-tui/0.1")(tui_login)
    return steps


def _certificate(domain: str) -> IssuedCertificate:
    """A certificate for ``domain`` from a fixed key, valid from a month ago for three months."""
    key = ec.derive_private_key(0x5EED, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    not_before, not_after = ago(days=30), NOW + timedelta(days=60)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1D5EED)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return IssuedCertificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        chain_pem="",
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        not_before=not_before,
        not_after=not_after,
        serial="1d5eed",
    )


async def _supersede(core: Core, ref: str, live: int) -> None:
    """The app's earlier live deployment is superseded by ``live``."""
    project, name = ref.split("/")
    async with core.store.write() as w:
        await w.execute(
            "UPDATE deployments SET state = 'superseded' WHERE state = 'live' AND id != ? AND app_id = "
            "(SELECT a.id FROM apps a JOIN projects p ON p.id = a.project_id WHERE a.name = ? AND p.name = ?)",
            (live, name, project),
        )


def _readings(world: World) -> None:
    """What the engine and the sampler show: the live apps' containers, their logs, a minute of figures."""
    running = {
        "shop/web": ("Up 2 hours", ago(hours=2)),
        "shop/api": ("Up 24 hours", ago(days=1)),
        "shop/worker": ("Up 5 days", ago(days=5)),
        "blog/site": ("Up 3 minutes", ago(minutes=3)),
        "internal/grafana": ("Up 5 weeks", ago(days=40)),
    }
    for n, (ref, (status, since)) in enumerate(running.items(), start=1):
        project, app = ref.split("/")
        world.containers.append(
            ContainerInfo(
                id=hashlib.sha256(ref.encode()).hexdigest()[:12],
                name=f"mist-{project}-{app}",
                project=project,
                app=app,
                deployment_id=n,
                image=f"mist/{project}-{app}",
                state="running",
                status=status,
                ports=["127.0.0.1:18080:8080"] if ref == "shop/web" else [],
                created_at=since,
            )
        )
    web_lines = [
        ("stdout", "Listening on http://0.0.0.0:8080"),
        ("stdout", "GET /healthz 200 0.4ms"),
        ("stdout", 'GET / 200 12.1ms ua="Mozilla/5.0"'),
        ("stdout", "GET /products?page=2 200 31.0ms"),
        ("stderr", "WARN cache miss for product 1183, fetching from database"),
        ("stdout", "POST /checkout 201 88.2ms"),
        ("stdout", "GET /healthz 200 0.3ms"),
        ("stderr", "ERROR payment provider timeout after 5000ms (order 99812)"),
        ("stdout", "POST /checkout 201 95.7ms"),
        ("stdout", "GET /cart 200 8.8ms"),
        ("stdout", "GET /healthz 200 0.4ms"),
        ("stdout", "GET /static/app.css 304 0.9ms"),
    ]
    world.container_logs["mist-shop-web"] = [
        LogLine(seq=i, ts=ago(seconds=60 - 4 * i), source="mist-shop-web", stream=s, text=t)  # type: ignore[arg-type]
        for i, (s, t) in enumerate(web_lines, start=1)
    ]
    world.container_logs["mist-blog-site"] = [
        LogLine(seq=i, ts=ago(seconds=58 - 5 * i), source="mist-blog-site", text=t)
        for i, t in enumerate(
            ["nginx: ready", "GET /posts/hello-world 200", "GET /feed.xml 200", "GET /posts/mist 200"],
            start=1,
        )
    ]
    usage = {
        "shop/web": (23.5, 182 * MIB),
        "shop/api": (4.1, 96 * MIB),
        "shop/worker": (61.0, 240 * MIB),
        "blog/site": (0.4, 12 * MIB),
        "internal/grafana": (2.2, 130 * MIB),
    }
    for k in range(60):
        wave = (k * 7) % 23
        world.samples.append(
            MetricsSample(
                system=SystemSample(
                    ts=NOW - timedelta(seconds=5 * (59 - k)),
                    cpu_percent=18.0 + wave * 1.5,
                    cpu_count=8,
                    memory_used=int((5.2 + (k % 9) * 0.05) * GIB),
                    memory_total=16 * GIB,
                    disk_used=int(41.3 * GIB),
                    disk_total=100 * GIB,
                    net_rx_bytes=10_000_000 + k * 250_000 + wave * 40_000,
                    net_tx_bytes=4_000_000 + k * 90_000 + wave * 10_000,
                    load=(1.2 + wave / 20, 1.1, 0.9),
                ),
                containers=[
                    ContainerStats(
                        name=f"mist-{ref.replace('/', '-')}",
                        project=ref.split("/")[0],
                        app=ref.split("/")[1],
                        cpu_percent=cpu * (0.8 + ((k + i) % 5) * 0.1),
                        memory_bytes=mem,
                        memory_limit=512 * MIB if ref in ("shop/web", "shop/api") else None,
                        net_rx_bytes=1000 * k,
                        net_tx_bytes=800 * k,
                    )
                    for i, (ref, (cpu, mem)) in enumerate(usage.items())
                ],
            )
        )


# ---------------------------------------------------------------------------------------------- git hosting

# The hosts of the world's git providers, and of a Forgejo the tests add, whose APIs the forge stand-in
# answers (``forge_transport``).
FORGE_HOSTS = ("api.github.com", "gitea.example.com", "gitlab.example.com", "code.example.org")
GITHUB_WEBHOOK_SECRET = "whsec-mist-acme-2025"
_forge: Forge | None = None
_forge_lock = threading.Lock()


def forge() -> Forge:
    """The stand-in of the world's git hosts (GitHub's, Gitea's and GitLab's APIs on 127.0.0.1), started
    once per process with the team's repositories: five on Gitea, none the GitLab token can see."""
    global _forge
    with _forge_lock:
        if _forge is None:
            serving = serve_forge()
            started = serving.__enter__()
            atexit.register(serving.__exit__, None, None, None)
            started.repos["gitea"] = [
                {"full_name": "shop/web", "private": True, "default_branch": "main"},
                {"full_name": "shop/api", "private": True, "default_branch": "main"},
                {"full_name": "blog/site", "private": False, "default_branch": "master"},
                {"full_name": "int/metabase", "private": True, "default_branch": "main"},
                {"full_name": "labs/exp", "private": False, "default_branch": "trunk"},
            ]
            started.repos["gitlab"] = []
            started.branch_names.update(
                {
                    "shop/web": ("main", "feature/gift-cards", "fix/rounding"),
                    "blog/site": ("master", "drafts"),
                }
            )
            _forge = started
    return _forge


def forge_transport() -> httpx.AsyncBaseTransport:
    """A transport for one provider client of the world's core: its hosts lead to the forge stand-in."""
    return forge().transport(*FORGE_HOSTS)


async def _seed_git_template(
    base: tuple[Path, dict[str, str], dict[str, int]],
) -> tuple[Path, dict[str, str], dict[str, int]]:
    source, tokens, ids = base
    data_dir = Path(tempfile.mkdtemp(dir=_BASE)) / "data"
    shutil.copytree(source, data_dir)
    ids = dict(ids)
    with fixed_randomness(13):
        try:
            _at(ago(days=58))
            core = await Core.open(
                CoreConfig(data_dir=data_dir, run_workers=False),
                engine=ReadingsEngine(World(data_dir, {}, {})),  # type: ignore[arg-type]
            )
            core.credentials.transport = forge_transport
            try:
                await _seed_git(core, ids)
            finally:
                await core.close()
        finally:
            clock.reset()
    return data_dir, dict(tokens), ids


async def _seed_git(core: Core, ids: dict[str, int]) -> None:
    """The team's git hosting, replayed in time order: Mist's public address, three providers (a Gitea
    and a GitLab with tokens, a GitHub App), shop/api linked to its Gitea repository, and shop/web fetching
    with a deploy key (its host key pinned by the first fetch), taking Gitea's webhooks and making previews
    of pull requests; then the deliveries its webhook received, each handled by the core as it arrives."""
    hosts = forge()

    async def as_ada(when: datetime, step: Callable[[LocalMist], Awaitable[object]]) -> None:
        _at(when)
        async with _as(core, "ada") as view:
            await step(view)

    await as_ada(ago(days=58), lambda v: v.settings.set("public_url", "https://mist.example.com"))
    await as_ada(
        ago(days=55),
        lambda v: v.git.add_provider(
            GitProviderSpec(
                name="gitea", kind="gitea", url="https://gitea.example.com", token=hosts.gitea_token
            )
        ),
    )
    await as_ada(
        ago(days=40),
        lambda v: v.apps.set_source("shop/api", SourceChanges(provider="gitea", repo="shop/api")),
    )
    await as_ada(
        ago(days=21),
        lambda v: v.git.add_provider(
            GitProviderSpec(
                name="gh",
                kind="github",
                app_id=hosts.github_app_id,
                private_key=hosts.github_private_key_pem,
                webhook_secret=GITHUB_WEBHOOK_SECRET,
            )
        ),
    )

    secret: list[str] = []

    async def shop_web(view: LocalMist) -> None:
        await view.apps.deploy_key("shop/web")
        await view.apps.set_source(
            "shop/web",
            SourceChanges(
                webhook_kind="gitea",
                previews=PreviewSettings(enabled=True, env={"STRIPE_KEY": "sk_test_preview"}),
            ),
        )
        source = await view.apps.source("shop/web", reveal=True)
        assert source.webhook_secret is not None
        secret.append(source.webhook_secret)

    await as_ada(ago(days=10), shop_web)
    app = await core.store.one(
        "SELECT a.id, s.hook_id FROM apps a JOIN projects p ON p.id = a.project_id "
        "JOIN app_sources s ON s.app_id = a.id WHERE p.name = 'shop' AND a.name = 'web'"
    )
    assert app is not None
    _at(ago(days=9, hours=23))
    host_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()
    line = host_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    await core.credentials.pin_known_hosts(int(app["id"]), f"git.example.com {line}\n")
    await as_ada(
        ago(days=3),
        lambda v: v.git.add_provider(
            GitProviderSpec(
                name="gitlab", kind="gitlab", url="https://gitlab.example.com", token=hosts.gitlab_token
            )
        ),
    )

    feature = branch_sha("shop/web", "feature/gift-cards")
    rounding = branch_sha("shop/web", "fix/rounding")
    main = branch_sha("shop/web", "main")
    deliveries: list[tuple[datetime, str, str, dict[str, Any], str]] = [
        (
            ago(days=6),
            "push",
            "d-1001",
            push_payload(
                "gitea", "shop/web", ref="refs/heads/feature/gift-cards", sha=feature, message="Gift cards"
            ),
            secret[0],
        ),
        (
            ago(days=5),
            "pull_request",
            "d-1002",
            pull_request_payload(
                "gitea",
                "shop/web",
                action="opened",
                number=12,
                head_sha=feature,
                head_ref="feature/gift-cards",
                title="Gift cards",
            ),
            secret[0],
        ),
        (
            ago(days=3),
            "pull_request",
            "d-1003",
            pull_request_payload(
                "gitea",
                "shop/web",
                action="opened",
                number=14,
                head_sha=rounding,
                head_ref="fix/rounding",
                title="Round totals at checkout",
            ),
            secret[0],
        ),
        (
            ago(days=2),
            "push",
            "d-1004",
            push_payload("gitea", "shop/web", ref="refs/tags/v1.2", sha=main, message="Release 1.2"),
            secret[0],
        ),
        (ago(hours=26), "push", "d-1005", push_payload("gitea", "shop/web", sha=main), "not the secret"),
        (
            ago(hours=20),
            "push",
            "d-1001",
            push_payload(
                "gitea", "shop/web", ref="refs/heads/feature/gift-cards", sha=feature, message="Gift cards"
            ),
            secret[0],
        ),
        (
            ago(hours=3),
            "pull_request",
            "d-1006",
            pull_request_payload(
                "gitea",
                "shop/web",
                action="synchronize",
                number=14,
                head_sha=rounding,
                head_ref="fix/rounding",
                title="Round totals at checkout",
            ),
            secret[0],
        ),
        (
            ago(minutes=30),
            "push",
            "d-1007",
            push_payload("gitea", "shop/web", sha=main, message="Show gift card balances"),
            secret[0],
        ),
    ]
    for when, event, delivery, payload, key in deliveries:
        _at(when)
        headers, body = sign_delivery("gitea", key, event, payload, delivery_id=delivery)
        await core.gitops.receive(app["hook_id"], {k.lower(): v for k, v in headers.items()}, body)
    pushed = await core.store.one(
        "SELECT deployment_id FROM webhook_deliveries WHERE delivery_id = 'd-1007' AND outcome = 'deployed'"
    )
    assert pushed is not None, "the push to main was not deployed"
    ids["pushed"] = int(pushed["deployment_id"])


# ---------------------------------------------------------------------------------------------- databases
# The seeded world with managed databases and backups, for the Databases screens: its own template (the seeded
# one, then databases made through the real API), so the other screens' world stays as it is.


class DatabaseReadingsEngine(ReadingsEngine):
    """``ReadingsEngine`` that also keeps the databases' containers: ``run`` makes one (running and healthy),
    ``stop``, ``start``, ``restart`` and ``remove`` change it, ``inspect`` gives its state and health."""

    async def run(self, spec: Any) -> None:
        self._world.containers = [c for c in self._world.containers if c.name != spec.name]
        self._world.containers.append(
            _database_container(spec.name, spec.labels.get("dev.mist.project"), True)
        )

    def _database(self, name: str) -> ContainerInfo | None:
        return next((c for c in self._world.containers if c.name == name and c.app is None), None)

    async def inspect(self, name: str) -> dict[str, Any] | None:
        found = self._database(name)
        if found is None:
            return await super().inspect(name)
        running = found.state == "running"
        return {"State": {"Running": running, **({"Health": {"Status": "healthy"}} if running else {})}}

    def _set(self, name: str, running: bool) -> None:
        found = self._database(name)
        if found is not None:
            self._world.containers.remove(found)
            self._world.containers.append(_database_container(name, found.project, running))

    async def start(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._set(name, True)

    async def restart(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._set(name, True)

    async def stop(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._set(name, False)

    async def remove(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._world.containers = [c for c in self._world.containers if c.name != name]


def _database_container(name: str, project: str | None, running: bool) -> ContainerInfo:
    return ContainerInfo(
        id=hashlib.sha256(name.encode()).hexdigest()[:12],
        name=name,
        project=project,
        app=None,
        deployment_id=None,
        image="postgres:15",
        state="running" if running else "exited",
        status="Up 3 days (healthy)" if running else "Exited (0) 2 days ago",
        created_at=ago(days=3),
    )


# ref, engine, version, memory, persistence, running, when
DATABASES: list[tuple[str, str, str | None, int | None, str | None, bool, datetime]] = [
    ("shop/main", "postgres", None, GIB, None, True, ago(days=30)),
    ("shop/cache", "redis", "7", 256 * MIB, "aof", True, ago(days=29)),
    ("blog/db", "postgres", "16", None, None, False, ago(days=20)),
    ("labs/scratch", "mariadb", None, None, None, True, ago(days=12)),
]
DATABASE_USAGE = {"shop/main": (3.2, 210 * MIB, GIB), "shop/cache": (0.6, 24 * MIB, 256 * MIB)}
_db_template: tuple[Path, dict[str, str], dict[str, int], dict[str, str]] | None = None


def database_world() -> World:
    """A fresh copy of the seeded world with databases (``DATABASES``; labs/scratch linked to labs/sandbox,
    blog/db stopped), a local backup destination and backups of shop's volume ``uploads``."""
    global _template, _db_template
    with _template_lock:
        if _template is None:
            _template = _in_thread(_seed_template)
        if _db_template is None:
            _db_template = _in_thread(_seed_database_template)
    source, tokens, ids, containers = _db_template
    copy = _world_dir() / "data"
    shutil.copytree(source, copy)
    world = World(copy, dict(tokens), dict(ids), engine_type=DatabaseReadingsEngine)
    _readings(world)
    _database_readings(world, containers)
    return world


async def _seed_database_template() -> tuple[Path, dict[str, str], dict[str, int], dict[str, str]]:
    assert _template is not None
    source, tokens, ids = _template
    data_dir = Path(tempfile.mkdtemp(dir=_BASE)) / "data"
    shutil.copytree(source, data_dir)
    seeding = World(data_dir, {}, {})
    with fixed_randomness(13):
        try:
            _at(ago(days=31))
            core = await Core.open(
                CoreConfig(data_dir=data_dir, run_workers=False), engine=DatabaseReadingsEngine(seeding)
            )  # type: ignore[arg-type]
            try:
                containers = await _seed_databases(core, data_dir)
            finally:
                await core.close()
        finally:
            clock.reset()
    return data_dir, tokens, ids, containers


async def _seed_databases(core: Core, data_dir: Path) -> dict[str, str]:
    from mist_core.models import BackupDestinationSpec, DatabaseSpec

    # The projects' uids name the databases' containers and volumes, which the screens show: fixed ones (the
    # seeded projects drew theirs at random). A trigger keeps uids from changing: it steps aside meanwhile.
    async with core.store.write() as w:
        triggers = await w.all(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'projects'"
        )
        keeper = [t for t in triggers if "uid never changes" in t["sql"]]
        for trigger in keeper:
            await w.execute(f'DROP TRIGGER "{trigger["name"]}"')
        for row in await w.all("SELECT id, name FROM projects"):
            uid = hashlib.sha256(row["name"].encode()).hexdigest()[:16]
            await w.execute("UPDATE projects SET uid = ? WHERE id = ?", (uid, row["id"]))
        for trigger in keeper:
            await w.execute(trigger["sql"])
    containers: dict[str, str] = {}
    for ref, engine, version, memory, persistence, running, when in DATABASES:
        _at(when)
        async with _as(core, "ada") as view:
            db = await view.databases.create(
                ref,
                DatabaseSpec(engine=engine, version=version, memory=memory, persistence=persistence),  # type: ignore[arg-type]
            )
            containers[ref] = db.container_name
            if not running:
                _at(ago(days=2))
                await view.databases.stop(ref)
    _at(ago(days=11))
    async with _as(core, "ada") as view:
        await view.databases.link("labs/scratch", "sandbox")
    _at(ago(days=10))
    (data_dir.parent / "backups").mkdir()
    async with _as(core, "ada") as view:
        await view.backups.add_destination(
            BackupDestinationSpec(name="nightly", kind="local", path=str(data_dir.parent / "backups"))
        )
    # What backups of shop's volume "uploads" left (the engine here runs no dump): one verified, one never
    # verified, one failed, one whose verification failed.
    async with core.store.write() as w:
        project_id = (await w.one("SELECT id FROM projects WHERE name = 'shop'"))["id"]  # type: ignore[index]
        destination_id = (await w.one("SELECT id FROM backup_destinations WHERE name = 'nightly'"))["id"]  # type: ignore[index]
        for started, state, size, verified, verify_detail, error in [
            (
                ago(days=3),
                "success",
                48 * MIB,
                "passed",
                "restored and compared: 1,204 files, all the same",
                None,
            ),
            (ago(days=2), "success", 49 * MIB, "failed", "uploads/2026/01/cover.jpg: content differs", None),
            (ago(days=1), "failed", None, "never", None, "tar exited with status 2: cannot read uploads/tmp"),
            (ago(hours=3), "success", 51 * MIB, "never", None, None),
        ]:
            await w.execute(
                "INSERT INTO backups (project_id, subject_kind, subject_name, destination_id, object_key, state, "
                "started_at, finished_at, size, raw_size, checksum, exit_status, error, verified, verified_at, "
                "verify_detail) VALUES (?, 'volume', 'uploads', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    project_id,
                    destination_id,
                    f"mist/shop/volume-uploads/{started:%Y%m%dT%H%M%SZ}.tar.gz",
                    state,
                    ts(started),
                    ts(started + timedelta(seconds=40)),
                    size,
                    size * 3 if size else None,
                    "ab" * 32 if size else None,
                    0 if state == "success" else 2,
                    error,
                    verified,
                    ts(started + timedelta(minutes=5)) if verified != "never" else None,
                    verify_detail,
                ),
            )
    return containers


def _database_readings(world: World, containers: dict[str, str]) -> None:
    """The databases' containers (blog/db stopped), their logs, and the CPU and memory of the running ones."""
    for ref, *_, running, _when in DATABASES:
        world.containers.append(_database_container(containers[ref], ref.split("/")[0], running))
    world.container_logs[containers["shop/main"]] = [
        LogLine(seq=i, ts=ago(seconds=50 - 5 * i), source=containers["shop/main"], stream="stderr", text=t)
        for i, t in enumerate(
            [
                "LOG:  database system was shut down at 2026-01-12 08:00:01 UTC",
                "LOG:  database system is ready to accept connections",
                "LOG:  checkpoint starting: time",
                "LOG:  checkpoint complete: wrote 42 buffers (0.3%)",
            ],
            start=1,
        )
    ]
    for k, sample in enumerate(world.samples):
        for ref, (cpu, mem, limit) in DATABASE_USAGE.items():
            sample.containers.append(
                ContainerStats(
                    name=containers[ref],
                    project=ref.split("/")[0],
                    cpu_percent=cpu * (0.7 + (k % 4) * 0.2),
                    memory_bytes=mem + (k % 3) * MIB,
                    memory_limit=limit,
                )
            )
