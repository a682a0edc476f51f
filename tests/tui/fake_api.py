"""An in-memory ``MistAPI`` with fixed, deterministic data, for the TUI's snapshot and Pilot tests only.

Every datetime is derived from ``NOW``; streams yield their fixed data and then wait for whatever a test
pushes with ``push_event`` / ``push_log`` / ``push_sample``. Calls that change state are recorded in
``calls`` so tests can assert on what the TUI asked for.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from mist_core.api import (
    AppsAPI,
    AuditAPI,
    AuthAPI,
    CertificatesAPI,
    ContainersAPI,
    DeploymentsAPI,
    DomainsAPI,
    EnvAPI,
    EventsAPI,
    GitAPI,
    InvitesAPI,
    MembersAPI,
    MetricsAPI,
    MistAPI,
    PreviewsAPI,
    ProjectsAPI,
    ProxyAPI,
    SecretsAPI,
    SessionsAPI,
    SettingsAPI,
    TokensAPI,
    UsersAPI,
    WebhooksAPI,
)
from mist_core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SetupRequired,
    TooManyAttempts,
    TotpRequired,
    Unauthenticated,
)
from mist_core.execs import ExecChannel
from mist_core.models import (
    ApiToken,
    ApiTokenCreated,
    App,
    AppChanges,
    AppSource,
    AppSpec,
    AuditEntry,
    BranchInfo,
    Certificate,
    ContainerDescription,
    ContainerEnvVar,
    ContainerInfo,
    ContainerMount,
    ContainerStats,
    Deployment,
    DeploymentState,
    Domain,
    DomainSettings,
    EnvVar,
    Event,
    GitProvider,
    GitProviderSpec,
    HealthCheck,
    Invite,
    InviteCreated,
    KeyRotation,
    LogLine,
    ManifestStart,
    Member,
    MetricsSample,
    Page,
    Preview,
    PreviewSettings,
    Project,
    ProjectChanges,
    ProviderKind,
    ProxyStatus,
    RecoveryCodes,
    RepoInfo,
    Session,
    SessionInfo,
    Setting,
    SetupStatus,
    SourceChanges,
    StepTiming,
    SystemSample,
    TotpSetup,
    User,
    UserChanges,
    WebhookDelivery,
)

NOW = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
builtins_list = builtins.list  # the parts' own ``list`` methods shadow the builtin in their bodies
RANK = {"viewer": 1, "developer": 2, "admin": 3, "owner": 4}
PASSWORD = "correct horse"  # every account's password in the fake
TOTP_CODE = "123456"  # the one code the fake's authenticator shows
RECOVERY_CODE = "k3v9-x2m7"
GIB = 1024**3
MIB = 1024**2
# Fixed ed25519 public keys (from seeds 1, 2 and 3) with the fingerprints ssh-keygen shows for them.
DEPLOY_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c mist-shop-web"
DEPLOY_KEY_FINGERPRINT = "SHA256:fe85JkIjo8VPe+XqXJGH5Mau1EMFdK1OdKvJUFicyA8"
NEW_KEYS = [
    (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU",
        "SHA256:4A9jyZBOhnKZvcGQ6TRFbf5Gymb41AfYvYaVmWHD+G4",
    )
]
HOST_KEY = "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO1JKMYo0cLG6ukDOJBZlWEpWSc6XGP5NjbBRhSshzfR"
WEBHOOK_SECRET = "whsec-3f9a1c7e5b2d8f60"
PUBLIC_URL = "https://mist.example.com"


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def fixed_clock() -> datetime:
    return NOW


class _Forever:
    """Something a stream can wait on until the test pushes more."""

    def __init__(self) -> None:
        self.queues: list[asyncio.Queue] = []

    async def follow(self) -> AsyncIterator:
        queue: asyncio.Queue = asyncio.Queue()
        self.queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self.queues.remove(queue)

    def push(self, item: object) -> None:
        for queue in list(self.queues):
            queue.put_nowait(item)


def _steps(state: DeploymentState, start: datetime, durations: list[float]) -> list[StepTiming]:
    steps = []
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
    return steps


class FakeData:
    """The fixed world the fake serves."""

    def __init__(self, *, extra_apps: int = 0) -> None:
        owner = User(
            id=1,
            username="ada",
            role="owner",
            email="ada@example.com",
            full_name="Ada Lovelace",
            created_at=ago(days=120),
            last_login_at=ago(minutes=5),
        )
        self.users = [
            owner,
            User(
                id=2,
                username="grace",
                role="admin",
                email="grace@example.com",
                totp_enabled=True,
                created_at=ago(days=90),
                last_login_at=ago(hours=3),
            ),
            User(
                id=3,
                username="linus",
                role="developer",
                email="linus@example.com",
                created_at=ago(days=30),
                last_login_at=ago(days=2),
            ),
            User(id=4, username="ken", role="viewer", created_at=ago(days=2)),
        ]
        self.projects: dict[str, Project] = {}
        for i, (name, desc) in enumerate(
            [
                ("shop", "The storefront and its API"),
                ("blog", "Company blog"),
                ("internal", "Dashboards for the team"),
                ("labs", "Experiments"),
            ],
            start=1,
        ):
            self.projects[name] = Project(
                id=i,
                name=name,
                description=desc,
                owner="linus" if name in ("blog", "labs") else "ada",
                created_at=ago(days=100 - i),
                updated_at=ago(days=3),
            )
        self.apps: dict[str, App] = {}
        specs = [
            (
                "shop",
                "web",
                "live",
                "9f2c1ab4e5d6",
                ago(hours=2),
                8080,
                "https://git.example.com/shop/web.git",
            ),
            (
                "shop",
                "api",
                "deploying",
                "51be07c2aa10",
                ago(days=1),
                8000,
                "https://git.example.com/shop/api.git",
            ),
            (
                "shop",
                "worker",
                "live",
                "51be07c2aa10",
                ago(days=5),
                None,
                "https://git.example.com/shop/api.git",
            ),
            (
                "blog",
                "site",
                "live",
                "c0ffee123456",
                ago(minutes=3),
                80,
                "https://git.example.com/blog/site.git",
            ),
            (
                "internal",
                "grafana",
                "live",
                "0d15ea5e0000",
                ago(days=40),
                3000,
                "https://git.example.com/int/graf.git",
            ),
            ("internal", "metabase", "failed", None, None, 3000, "https://git.example.com/int/metabase.git"),
            (
                "labs",
                "experiment",
                "stopped",
                "deadbeef0001",
                None,
                5000,
                "https://git.example.com/labs/exp.git",
            ),
            ("labs", "sandbox", "new", None, None, None, "https://git.example.com/labs/sandbox.git"),
        ]
        for i in range(extra_apps):
            specs.append(
                (
                    f"bulk{i // 100:03d}",
                    f"svc{i:05d}",
                    "live",
                    f"{i:012x}",
                    ago(hours=i % 50),
                    8080,
                    "https://g/x.git",
                )
            )
        for n, (project, name, status, sha, since, port, url) in enumerate(specs, start=1):
            if project not in self.projects:
                self.projects[project] = Project(
                    id=len(self.projects) + 1,
                    name=project,
                    owner="ada",
                    created_at=ago(days=9),
                    updated_at=ago(days=9),
                )
            spec = AppSpec(
                git_url=url,
                port=port,
                publish=["127.0.0.1:18080:8080"] if name == "web" else [],
                memory=512 * MIB if name in ("web", "api") else None,
                cpus=1.0 if name == "api" else None,
                health=HealthCheck(type="http", path="/healthz") if name == "web" else HealthCheck(),
            )
            self.apps[f"{project}/{name}"] = App(
                id=n,
                project=project,
                name=name,
                spec=spec,
                status=status,  # type: ignore[arg-type]
                live_deployment_id=100 + n if sha else None,
                live_commit=sha,
                live_since=since,
                container_name=f"mist-{project}-{name}" if since else None,
                image=f"mist/{project}-{name}:{100 + n}" if since else None,
                created_at=ago(days=60),
                updated_at=ago(days=1),
            )
        for project in self.projects.values():
            project.app_count = sum(1 for a in self.apps.values() if a.project == project.name)

        self.deployments: dict[int, Deployment] = {}
        web = self.apps["shop/web"]
        messages = [
            "Fix checkout rounding",
            "Add health endpoint",
            "Bump dependencies",
            "Cache product images",
            "Initial import",
            "Tweak footer",
        ]
        for k, msg in enumerate(messages):
            start = ago(hours=2 + 26 * k)
            state = DeploymentState.live if k == 0 else DeploymentState.superseded
            if k == 3:
                state = DeploymentState.failed
            dep = Deployment(
                id=20 - k,
                app_id=web.id,
                project="shop",
                app="web",
                state=state,
                ref="main",
                commit_sha=f"{9 - k}f2c1ab4e5d6a7b8c9d0e1f2a3b4c5d6e7f8091",
                commit_message=msg,
                commit_author="ada",
                image=f"mist/shop-web:{20 - k}",
                error="health check failed: GET /healthz answered 503" if k == 3 else None,
                triggered_by="ada",
                steps=_steps(state, start, [1.2, 38.5, 2.1, 4.0, 0.4]),
                created_at=start,
                finished_at=start + timedelta(seconds=46.2),
            )
            self.deployments[dep.id] = dep
        # After "Bump dependencies", #18 went back to #16's image: a rollback repeats that commit.
        first = self.deployments[16]
        self.deployments[18] = self.deployments[18].model_copy(
            update={
                "source": "rollback",
                "commit_sha": first.commit_sha,
                "commit_message": first.commit_message,
                "image": first.image,
            }
        )
        api_start = ago(seconds=52)
        self.deployments[42] = Deployment(
            id=42,
            app_id=self.apps["shop/api"].id,
            project="shop",
            app="api",
            state=DeploymentState.building,
            ref="main",
            commit_sha="7a1e5c0d9b8f7e6d5c4b3a291807f6e5d4c3b2a1",
            commit_message="Add order export endpoint",
            commit_author="grace",
            triggered_by="grace",
            steps=_steps(DeploymentState.building, api_start, [1.4, -1]),
            created_at=api_start,
        )
        mb_start = ago(minutes=14)
        self.deployments[37] = Deployment(
            id=37,
            app_id=self.apps["internal/metabase"].id,
            project="internal",
            app="metabase",
            state=DeploymentState.failed,
            ref="v0.50.2",
            commit_sha="3c9d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d",
            commit_message="Pin metabase to v0.50.2",
            commit_author="linus",
            triggered_by="linus",
            error="health check failed after 10 tries: GET / on port 3000 refused the connection",
            steps=_steps(DeploymentState.failed, mb_start, [0.9, 61.3, 1.8, 21.0]),
            created_at=mb_start,
            finished_at=mb_start + timedelta(seconds=85.0),
        )
        self.build_logs: dict[int, list[LogLine]] = {}
        for dep_id, lines in {
            42: [
                ("system", "fetching main from https://git.example.com/shop/api.git"),
                ("system", "checked out 7a1e5c0d (Add order export endpoint)"),
                ("system", "building image mist/shop-api:42"),
                ("stdout", "#1 [internal] load build definition from Dockerfile"),
                ("stdout", "#2 [internal] load .dockerignore"),
                ("stdout", "#3 [1/5] FROM python:3.12-slim"),
                ("stdout", "#4 [2/5] COPY requirements.txt ."),
                ("stdout", "#5 [3/5] RUN pip install -r requirements.txt"),
                ("stdout", "#5 2.31 Collecting fastapi==0.115.0"),
                ("stdout", "#5 4.87 Collecting uvicorn==0.30.6"),
                ("stdout", "#5 9.02 Installing collected packages: starlette, uvicorn, fastapi"),
            ],
            37: [
                ("system", "fetching v0.50.2 from https://git.example.com/int/metabase.git"),
                ("system", "checked out 3c9d2e1f (Pin metabase to v0.50.2)"),
                ("system", "building image mist/internal-metabase:37"),
                ("stdout", "#6 DONE 61.3s"),
                ("system", "starting container mist-internal-metabase-37"),
                ("system", "checking: GET / on port 3000 every 2s, 10 tries"),
                ("stderr", "connection refused (try 1/10)"),
                ("stderr", "connection refused (try 10/10)"),
                (
                    "system",
                    "health check failed; removed mist-internal-metabase-37, the previous container keeps serving",
                ),
            ],
        }.items():
            self.build_logs[dep_id] = [
                LogLine(
                    seq=i,
                    ts=self.deployments[dep_id].created_at + timedelta(seconds=i),
                    source="build",
                    stream=s,
                    text=t,
                )  # type: ignore[arg-type]
                for i, (s, t) in enumerate(lines, start=1)
            ]

        self.env: dict[str, dict[str, EnvVar]] = {
            "shop/web": {
                v.key: v
                for v in [
                    EnvVar(
                        key="DATABASE_URL",
                        value="postgres://shop:s3cret@db:5432/shop",
                        secret=True,
                        updated_at=ago(days=4),
                    ),
                    EnvVar(key="LOG_LEVEL", value="info", updated_at=ago(days=10)),
                    EnvVar(key="NODE_ENV", value="production", build=True, updated_at=ago(days=30)),
                    EnvVar(key="STRIPE_KEY", value="sk_live_51Hc0ffee", secret=True, updated_at=ago(hours=5)),
                    EnvVar(key="WORKERS", value="4", updated_at=ago(days=1)),
                ]
            }
        }
        self.app_logs: dict[str, list[LogLine]] = {}
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
        self.app_logs["shop/web"] = [
            LogLine(seq=i, ts=ago(seconds=60 - 4 * i), source="mist-shop-web", stream=s, text=t)  # type: ignore[arg-type]
            for i, (s, t) in enumerate(web_lines, start=1)
        ]
        self.app_logs["blog/site"] = [
            LogLine(seq=i, ts=ago(seconds=58 - 5 * i), source="mist-blog-site", text=t)
            for i, t in enumerate(
                ["nginx: ready", "GET /posts/hello-world 200", "GET /feed.xml 200", "GET /posts/mist 200"],
                start=1,
            )
        ]
        self.containers = [
            ContainerInfo(
                id=f"{a.id:012x}",
                name=a.container_name or "",
                project=a.project,
                app=a.name,
                deployment_id=a.live_deployment_id,
                image=a.image or "",
                state="running",
                status="Up 2 hours",
                ports=a.spec.publish,
                created_at=a.live_since or NOW,
            )
            for a in self.apps.values()
            if a.status in ("live", "deploying") and a.container_name
        ]
        usage = {
            "shop/web": (23.5, 182 * MIB),
            "shop/api": (4.1, 96 * MIB),
            "shop/worker": (61.0, 240 * MIB),
            "blog/site": (0.4, 12 * MIB),
            "internal/grafana": (2.2, 130 * MIB),
        }
        self.samples: list[MetricsSample] = []
        for k in range(60):
            wave = (k * 7) % 23
            self.samples.append(
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
        audit_rows: list[tuple[str | None, str | None, str | None, str, str | None, str | None, dict]] = [
            (
                "grace",
                "admin",
                "10.0.0.12",
                "deployment.create",
                "shop",
                "api",
                {"ref": "main", "deployment": 42},
            ),
            ("ada", "owner", "unix", "env.set", "shop", "web", {"key": "STRIPE_KEY", "secret": True}),
            (
                "ada",
                "token:deploy",
                "203.0.113.40",
                "deployment.create",
                "internal",
                "metabase",
                {"ref": "v0.50.2"},
            ),
            ("ada", "owner", "unix", "app.update", "shop", "web", {"fields": ["memory", "health"]}),
            (None, None, None, "certificate.renew", "blog", "site", {"domain": "blog.example.com"}),
            ("ada", "owner", "unix", "user.create", None, None, {"username": "ken", "role": "viewer"}),
            ("ada", "owner", "unix", "token.create", None, None, {"name": "ci-deploy", "scope": "deploy"}),
            ("grace", "admin", "10.0.0.12", "app.stop", "labs", "experiment", {}),
            ("linus", "developer", "198.51.100.4", "auth.login_failed", None, None, {"username": "linus"}),
            ("ada", "owner", "unix", "project.create", "labs", None, {}),
        ]
        self.audit = [
            AuditEntry(
                id=len(audit_rows) - i,
                ts=ago(minutes=5 + 37 * i),
                actor=actor,
                actor_role=role,
                source=source,
                action=action,
                project=p,
                app=a,
                detail=d,
            )
            for i, (actor, role, source, action, p, a, d) in enumerate(audit_rows)
        ]
        self.members: dict[str, list[Member]] = {
            "shop": [
                Member(username="grace", role="admin", added_at=ago(days=80)),
                Member(username="linus", role="developer", added_at=ago(days=29)),
                Member(username="ken", role="viewer", added_at=ago(days=2)),
            ],
            "blog": [Member(username="linus", role="admin", added_at=ago(days=20))],
            "internal": [
                Member(username="linus", role="developer", added_at=ago(days=25)),
                Member(username="ken", role="viewer", added_at=ago(days=1)),
            ],
        }
        self.sessions = [
            SessionInfo(
                id=41,
                username="ada",
                created_at=ago(minutes=5),
                last_used_at=ago(seconds=10),
                expires_at=NOW + timedelta(days=30),
                source="unix",
                user_agent="mist-tui/0.1",
                current=True,
            ),
            SessionInfo(
                id=38,
                username="ada",
                created_at=ago(days=3),
                last_used_at=ago(hours=20),
                expires_at=NOW + timedelta(days=27),
                source="203.0.113.7",
                user_agent="mist-cli/0.1 (Linux)",
            ),
            SessionInfo(
                id=40,
                username="grace",
                created_at=ago(hours=3),
                last_used_at=ago(minutes=12),
                expires_at=NOW + timedelta(days=29),
                source="10.0.0.12",
                user_agent="mist-tui/0.1",
            ),
            SessionInfo(
                id=35,
                username="linus",
                created_at=ago(days=2),
                last_used_at=ago(days=1),
                expires_at=NOW + timedelta(days=28),
                source="198.51.100.4",
                user_agent="mist-cli/0.1 (macOS)",
            ),
        ]
        self.tokens = [
            ApiToken(
                id=7,
                name="ci-deploy",
                username="ada",
                scope="deploy",
                project="shop",
                created_at=ago(days=10),
                expires_at=NOW + timedelta(days=80),
                last_used_at=ago(hours=2),
            ),
            ApiToken(
                id=6,
                name="grafana-read",
                username="ada",
                scope="read",
                created_at=ago(days=40),
                last_used_at=ago(minutes=1),
            ),
            ApiToken(
                id=5,
                name="old-laptop",
                username="ada",
                scope="admin",
                created_at=ago(days=200),
                expires_at=ago(days=110),
                last_used_at=ago(days=115),
            ),
            ApiToken(
                id=8,
                name="release-bot",
                username="grace",
                scope="deploy",
                project="blog",
                created_at=ago(days=5),
                expires_at=NOW + timedelta(days=85),
            ),
        ]
        self.invites = [
            Invite(
                id=3,
                email="barbara@example.com",
                role="developer",
                project="shop",
                project_role="developer",
                created_by="ada",
                created_at=ago(hours=6),
                expires_at=NOW + timedelta(hours=66),
            )
        ]
        self.settings = {
            s.key: s
            for s in [
                Setting(
                    key="builder.docker_binary",
                    value="/usr/bin/docker",
                    default="docker",
                    description="The docker CLI used for BuildKit builds",
                ),
                Setting(
                    key="deploy.workers",
                    value="2",
                    default="2",
                    description="Deployments that run at the same time",
                ),
                Setting(
                    key="deploy.keep_images",
                    value="5",
                    default="5",
                    description="Images kept per app for rollbacks",
                ),
                Setting(
                    key="logs.retention_days",
                    value="14",
                    default="14",
                    description="Days of stored deployment logs",
                ),
                Setting(key="proxy.kind", value="traefik", default="traefik", description="traefik or caddy"),
                Setting(
                    key="tls.email", value="ops@example.com", default="", description="ACME account e-mail"
                ),
            ]
        }

        self._git_data()

    def _git_data(self) -> None:
        """Providers and their repositories; shop/web fetches with a deploy key and has webhook deliveries
        (one refused) and two previews; shop/api is linked to the Gitea provider."""
        self.providers: dict[str, GitProvider] = {
            p.name: p
            for p in [
                GitProvider(
                    id=1,
                    name="gh",
                    kind="github",
                    url="https://github.com",
                    api_url="https://api.github.com",
                    app_id=914207,
                    app_slug="mist-acme",
                    installation_id=52110381,
                    webhook_url=f"{PUBLIC_URL}/hooks/gh-Qm2xV9aL",
                    created_at=ago(days=21),
                ),
                GitProvider(
                    id=2,
                    name="gitea",
                    kind="gitea",
                    url="https://git.example.com",
                    api_url="https://git.example.com/api/v1",
                    created_at=ago(days=60),
                ),
                GitProvider(
                    id=3,
                    name="gitlab",
                    kind="gitlab",
                    url="https://gitlab.example.com",
                    api_url="https://gitlab.example.com/api/v4",
                    created_at=ago(days=3),
                ),
            ]
        }
        self.repos: dict[str, list[RepoInfo]] = {
            "gitea": [
                RepoInfo(
                    full_name=name,
                    clone_url=f"https://git.example.com/{name}.git",
                    ssh_url=f"git@git.example.com:{name}.git",
                    default_branch=branch,
                    private=private,
                )
                for name, branch, private in [
                    ("shop/web", "main", True),
                    ("shop/api", "main", True),
                    ("blog/site", "master", False),
                    ("int/metabase", "main", True),
                    ("labs/exp", "trunk", False),
                ]
            ],
            "gh": [
                RepoInfo(
                    full_name="acme/storefront",
                    clone_url="https://github.com/acme/storefront.git",
                    ssh_url="git@github.com:acme/storefront.git",
                    private=True,
                ),
                RepoInfo(
                    full_name="acme/docs",
                    clone_url="https://github.com/acme/docs.git",
                    ssh_url="git@github.com:acme/docs.git",
                ),
            ],
            "gitlab": [],
        }
        self.branches: dict[tuple[str, str], list[BranchInfo]] = {
            ("gitea", "shop/web"): [
                BranchInfo(name="main", sha="9f2c1ab4e5d6a7b8c9d0e1f2a3b4c5d6e7f80910"),
                BranchInfo(name="feature/gift-cards", sha="4be0c2d19a7f6e5d4c3b2a1908f7e6d5c4b3a291"),
                BranchInfo(name="fix/rounding", sha="e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5e"),
            ],
        }
        self.sources: dict[str, AppSource] = {
            "shop/web": AppSource(
                auth="deploy_key",
                deploy_key=DEPLOY_KEY,
                deploy_key_fingerprint=DEPLOY_KEY_FINGERPRINT,
                known_hosts=HOST_KEY,
                webhook_kind="gitea",
                webhook_url=f"{PUBLIC_URL}/hooks/Hk7Qm2xV9aLp",
                previews=PreviewSettings(enabled=True, limit=3, env={"STRIPE_KEY": "sk_test_4eC39Hq"}),
            ),
            "shop/api": AppSource(
                auth="provider",
                provider="gitea",
                repo="shop/api",
                webhook_kind="gitea",
                webhook_url=f"{PUBLIC_URL}/hooks/Zr4Nc8Tq1wYe",
            ),
        }
        web = "shop/web"
        delivery_rows = [
            ("push", 2, "deployed", "push to main: deployment #20 queued", "refs/heads/main", 0, None, 20),
            (
                "pull_request",
                9,
                "preview",
                "pull request #15 synchronized: preview redeployed",
                "feature/gift-cards",
                1,
                15,
                None,
            ),
            (
                "push",
                25,
                "ignored",
                "push to feature/gift-cards, not the app's branch (main)",
                "refs/heads/feature/gift-cards",
                1,
                None,
                None,
            ),
            (
                "push",
                40,
                "refused",
                "bad signature: X-Gitea-Signature does not match the app's webhook secret",
                None,
                None,
                None,
                None,
            ),
            (
                "push",
                41,
                "refused",
                "delivery 6f1e2c4a was already received (a replay)",
                "refs/heads/main",
                2,
                None,
                None,
            ),
            (
                "pull_request",
                50,
                "preview",
                "pull request #12 opened: preview queued",
                "fix/rounding",
                2,
                12,
                None,
            ),
            ("push", 52, "deployed", "push to main: deployment #19 queued", "refs/heads/main", 3, None, 19),
            ("ping", 60, "ignored", "ping: the webhook reaches Mist", None, None, None, None),
        ]
        shas = [
            "9f2c1ab4e5d6a7b8c9d0e1f2a3b4c5d6e7f80910",
            "4be0c2d19a7f6e5d4c3b2a1908f7e6d5c4b3a291",
            "e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5e",
            "8f2c1ab4e5d6a7b8c9d0e1f2a3b4c5d6e7f8091a",
        ]
        self.deliveries: dict[str, list[WebhookDelivery]] = {
            web: [
                WebhookDelivery(
                    id=100 - i,
                    app=web,
                    delivery_id=f"{0x6F1E2C4A - i:08x}",
                    event=event,
                    received_at=ago(minutes=minutes),
                    outcome=outcome,  # type: ignore[arg-type]
                    reason=reason,
                    ref=ref,
                    sha=None if sha is None else shas[sha],
                    pr_number=pr,
                    deployment_id=deployment,
                )
                for i, (event, minutes, outcome, reason, ref, sha, pr, deployment) in enumerate(delivery_rows)
            ]
        }
        self.previews: dict[str, list[Preview]] = {
            web: [
                Preview(
                    app="shop/web-pr-15",
                    parent=web,
                    number=15,
                    head_ref="feature/gift-cards",
                    head_sha=shas[1],
                    url="https://pr-15.shop.example.com",
                    created_at=ago(hours=5),
                    updated_at=ago(minutes=9),
                ),
                Preview(
                    app="shop/web-pr-12",
                    parent=web,
                    number=12,
                    head_ref="fix/rounding",
                    head_sha=shas[2],
                    url="https://pr-12.shop.example.com",
                    created_at=ago(minutes=50),
                    updated_at=ago(minutes=50),
                ),
            ]
        }
        # Preview apps open from the Git tab but stay off the dashboard, whose pictures predate them.
        parent = self.apps[web]
        self.preview_apps: dict[str, App] = {}
        for preview in self.previews[web]:
            project, _, name = preview.app.partition("/")
            self.preview_apps[preview.app] = parent.model_copy(
                update={
                    "id": 500 + preview.number,
                    "name": name,
                    "live_commit": preview.head_sha,
                    "live_since": preview.updated_at,
                    "container_name": f"mist-{project}-{name}",
                    "spec": parent.spec.model_copy(update={"branch": preview.head_ref, "publish": []}),
                }
            )


class FakeMist(MistAPI):
    """The test double. ``needs_setup`` starts the instance empty; ``token`` is the session it accepts."""

    def __init__(
        self, *, needs_setup: bool = False, token: str | None = "tok-ada", extra_apps: int = 0
    ) -> None:
        self.data = FakeData(extra_apps=extra_apps)
        self.needs_setup = needs_setup
        # Each session token the fake accepts, and whose it is.
        self.valid_tokens = {"tok-ada": "ada", "tok-ken": "ken"}
        self.failed_logins: dict[str, int] = {}
        self.totp_pending: TotpSetup | None = None
        self.token = token
        self.calls: list[tuple] = []
        self.event_feed = _Forever()
        self.metrics_feed = _Forever()
        self.log_feeds: dict[str, _Forever] = {}
        self.closed = False
        self.auth = _Auth(self)
        self.projects = _Projects(self)
        self.apps = _Apps(self)
        self.env = _Env(self)
        self.deployments = _Deployments(self)
        self.containers = _Containers(self)
        self.metrics = _Metrics(self)
        self.events = _Events(self)
        self.users = _Users(self)
        self.members = _Members(self)
        self.invites = _Invites(self)
        self.sessions = _Sessions(self)
        self.tokens = _Tokens(self)
        self.secrets = _Secrets(self)
        self.audit = _Audit(self)
        self.settings = _Settings(self)
        self.domain_table: dict[str, list[Domain]] = _fixed_domains(self.data)
        self.certificate_table: dict[str, Certificate] = _fixed_certificates()
        self.domains = _Domains(self)
        self.certificates = _Certificates(self)
        self.proxy = _Proxy(self)
        self.git = _Git(self)
        self.webhooks = _Webhooks(self)
        self.previews = _Previews(self)
        self.webhook_secrets: dict[str, str] = {}
        self.tokens_set: dict[str, str] = {}  # the https token each app was given ("" removed it)
        self.own_webhook_kinds: dict[str, ProviderKind | None] = {}  # set_source's webhook_kind, per app
        self.keys_made = 0

    def source_of(self, app_ref: str) -> AppSource:
        """The app's source, made on first use like the core's (a webhook URL of its own, nothing else)."""
        if app_ref not in self.data.sources:
            app = self.data.apps[app_ref]
            self.data.sources[app_ref] = AppSource(webhook_url=f"{PUBLIC_URL}/hooks/app{app.id:04d}")
        return self.data.sources[app_ref]

    def auth_of(self, app_ref: str) -> str:
        source = self.data.sources[app_ref]
        if source.provider:
            return "provider"
        if source.deploy_key:
            return "deploy_key"
        if self.tokens_set.get(app_ref):
            return "token"
        return "none"

    def push_event(self, event: Event) -> None:
        self.event_feed.push(event)

    def push_sample(self, sample: MetricsSample) -> None:
        self.metrics_feed.push(sample)

    def push_log(self, app_ref: str, line: LogLine) -> None:
        self.log_feeds.setdefault(app_ref, _Forever()).push(line)

    def check(self) -> None:
        if self.needs_setup:
            raise SetupRequired("No account exists yet: create the owner account first.")
        if self.token not in self.valid_tokens:
            raise Unauthenticated("Your session has expired or is not valid: log in again.")

    def me(self) -> User:
        """The user the current token belongs to."""
        self.check()
        name = self.valid_tokens[self.token]  # type: ignore[index]
        return next(u for u in self.data.users if u.username == name)

    def require(self, role: str, what: str) -> User:
        """The caller, when their instance role is at least ``role``; PermissionDenied otherwise."""
        user = self.me()
        if RANK[user.role] < RANK[role]:
            raise PermissionDenied(f"Your role ({user.role}) does not allow {what}: ask an admin.")
        return user

    async def close(self) -> None:
        self.closed = True


def _check_name(name: str, field: str) -> None:
    if not name or not all(c.islower() or c.isdigit() or c == "-" for c in name):
        raise InvalidInput(
            f"{field} {name!r} is not allowed: use lowercase letters, digits and '-'", field=field
        )


def _fixed_domains(data: FakeData) -> dict[str, list[Domain]]:
    """shop/web has three domains (issued, pending and failed certificates); blog/site one, issued."""
    table: dict[str, list[Domain]] = {}
    rows = [
        ("shop/web", "shop.example.com", {"hsts_max_age": 31536000, "www_redirect": "to-apex"}),
        ("shop/web", "checkout.example.com", {"path_prefix": "/pay", "headers": {"X-Robots-Tag": "noindex"}}),
        ("shop/web", "shop.example.org", {}),
        ("shop/web", "preview.shop.internal", {"https": False}),
        ("blog/site", "blog.example.com", {"hsts_max_age": 15552000}),
    ]
    for i, (ref, name, options) in enumerate(rows, 1):
        app = data.apps[ref]
        table.setdefault(ref, []).append(
            Domain(
                id=i,
                app_id=app.id,
                project=app.project,
                app=app.name,
                name=name,
                created_at=ago(days=40 - i),
                **DomainSettings(**options).model_dump(),  # type: ignore[arg-type]
            )
        )
    return table


def _fixed_certificates() -> dict[str, Certificate]:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB (fixed test data)\n-----END CERTIFICATE-----\n"
    certs = [
        Certificate(
            id=1,
            domain="shop.example.com",
            status="issued",
            source="acme",
            cert_pem=pem,
            not_before=ago(days=28),
            not_after=NOW + timedelta(days=62),
            serial="04a1",
            updated_at=ago(days=28),
        ),
        Certificate(
            id=2,
            domain="checkout.example.com",
            status="pending",
            source="acme",
            attempts=0,
            updated_at=ago(seconds=20),
        ),
        Certificate(
            id=3,
            domain="shop.example.org",
            status="failed",
            source="acme",
            last_error="HTTP-01 challenge failed: shop.example.org resolves to 203.0.113.9, not this server",
            next_attempt_at=NOW + timedelta(minutes=5),
            attempts=3,
            updated_at=ago(minutes=10),
        ),
        Certificate(
            id=4,
            domain="blog.example.com",
            status="issued",
            source="uploaded",
            cert_pem=pem,
            not_before=ago(days=100),
            not_after=NOW + timedelta(days=265),
            serial="7f3c",
            updated_at=ago(days=100),
        ),
    ]
    return {c.domain: c for c in certs}


class _Part:
    def __init__(self, mist: FakeMist) -> None:
        self.mist = mist
        self.data = mist.data


class _Auth(_Part, AuthAPI):
    async def status(self) -> SetupStatus:
        return SetupStatus(needs_setup=self.mist.needs_setup, version="0.1.0")

    async def setup(self, username: str, password: str) -> Session:
        if not self.mist.needs_setup:
            raise Conflict("This instance already has an owner: log in instead.")
        if len(password) < 8:
            raise InvalidInput("The password is too short: use at least 8 characters.", field="password")
        self.mist.needs_setup = False
        self.mist.calls.append(("auth.setup", username))
        self.mist.token = "tok-ada"
        return self._session(self.data.users[0])

    def _session(self, user: User) -> Session:
        token = f"tok-{user.username}"
        self.mist.valid_tokens[token] = user.username
        self.mist.token = token
        return Session(
            token=token,
            refresh_token=f"mist_r_{user.username}",
            user=user,
            expires_at=NOW + timedelta(minutes=15),
            refresh_expires_at=NOW + timedelta(days=30),
        )

    async def login(self, username: str, password: str, *, totp: str | None = None) -> Session:
        self.mist.calls.append(("auth.login", username, totp))
        if self.mist.failed_logins.get(username, 0) >= 3:
            raise TooManyAttempts(
                "Too many failed logins for this account: wait 30 seconds, then try again.", retry_after=30
            )
        user = next((u for u in self.data.users if u.username == username), None)
        if user is None or password != PASSWORD:
            self.mist.failed_logins[username] = self.mist.failed_logins.get(username, 0) + 1
            raise Unauthenticated("Wrong username or password.")
        if user.totp_enabled:
            if not totp:
                raise TotpRequired("This account has two-factor authentication: enter the code.")
            if totp.strip() not in (TOTP_CODE, RECOVERY_CODE):
                self.mist.failed_logins[username] = self.mist.failed_logins.get(username, 0) + 1
                raise Unauthenticated("That code is not valid: enter the current code from your app.")
        return self._session(user)

    async def refresh(self, refresh_token: str) -> Session:
        username = refresh_token.removeprefix("mist_r_")
        user = next((u for u in self.data.users if u.username == username), None)
        if user is None:
            raise Unauthenticated("This session has ended: log in again.")
        return self._session(user)

    async def whoami(self) -> User:
        return self.mist.me()

    async def logout(self) -> None:
        self.mist.calls.append(("auth.logout",))
        self.mist.token = None

    async def change_password(self, current: str, new: str, *, revoke_tokens: bool = False) -> None:
        me = self.mist.me()
        self.mist.calls.append(
            ("auth.change_password", me.username, *(["revoke_tokens"] if revoke_tokens else []))
        )
        if current != PASSWORD:
            raise Unauthenticated("The current password is wrong.", field="current")
        if len(new) < 12:
            raise InvalidInput("The new password is too short: use at least 12 characters.", field="new")
        if revoke_tokens:
            tokens = self.data.tokens
            for i, t in enumerate(tokens):
                if t.username == me.username and t.revoked_at is None:
                    tokens[i] = t.model_copy(update={"revoked_at": NOW})

    async def totp_setup(self) -> TotpSetup:
        me = self.mist.me()
        self.mist.calls.append(("auth.totp_setup", me.username))
        if me.totp_enabled:
            raise Conflict("Two-factor authentication is already on: turn it off first to use a new secret.")
        self.mist.totp_pending = TotpSetup(
            secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
            uri=f"otpauth://totp/Mist:{me.username}?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Mist",
        )
        return self.mist.totp_pending

    async def totp_enable(self, code: str) -> RecoveryCodes:
        me = self.mist.me()
        self.mist.calls.append(("auth.totp_enable", me.username, code))
        if self.mist.totp_pending is None:
            raise Conflict("Start the setup first (totp_setup).")
        if code.strip() != TOTP_CODE:
            raise InvalidInput(
                "That code does not match: check the phone's clock and type the current code.", field="code"
            )
        me.totp_enabled = True
        self.mist.totp_pending = None
        return RecoveryCodes(
            codes=[RECOVERY_CODE, "p8w4-q1z6", "m5t2-h9c3", "r7d1-b4n8", "f6y3-j2l5", "a9e4-u7s1"]
        )

    async def totp_disable(self, password: str) -> None:
        me = self.mist.me()
        self.mist.calls.append(("auth.totp_disable", me.username))
        if password != PASSWORD:
            raise Unauthenticated("The password is wrong.", field="password")
        me.totp_enabled = False


class _Projects(_Part, ProjectsAPI):
    async def create(self, name: str, description: str = "", tags: list[str] | None = None) -> Project:
        self.mist.check()
        self.mist.calls.append(("projects.create", name, description, tags or []))
        _check_name(name, "name")
        if name in self.data.projects:
            raise Conflict(f"a project named {name!r} already exists", field="name")
        project = Project(
            id=len(self.data.projects) + 1,
            name=name,
            description=description,
            tags=tags or [],
            owner="ada",
            created_at=NOW,
            updated_at=NOW,
        )
        self.data.projects[name] = project
        return project

    async def list(self, *, query: str | None = None, limit: int = 100, offset: int = 0) -> Page[Project]:
        self.mist.check()
        items = [p for p in self.data.projects.values() if not query or query in p.name]
        page = items[offset : offset + limit]
        nxt = offset + limit if offset + limit < len(items) else None
        return Page[Project](items=page, total=len(items), next_offset=nxt)

    async def get(self, name: str) -> Project:
        try:
            return self.data.projects[name]
        except KeyError:
            raise NotFound(f"There is no project named {name!r}.") from None

    async def update(self, name: str, changes: ProjectChanges) -> Project:
        project = await self.get(name)
        self.mist.calls.append(("projects.update", name, changes.model_dump(exclude_none=True)))
        if changes.name and changes.name != name:
            _check_name(changes.name, "name")
            del self.data.projects[name]
            project = project.model_copy(update={"name": changes.name})
            self.data.projects[changes.name] = project
            for ref, app in list(self.data.apps.items()):
                if app.project == name:
                    del self.data.apps[ref]
                    moved = app.model_copy(update={"project": changes.name})
                    self.data.apps[moved.ref] = moved
        return project

    async def delete(self, name: str) -> None:
        await self.get(name)
        self.mist.calls.append(("projects.delete", name))
        count = sum(1 for a in self.data.apps.values() if a.project == name)
        if count:
            raise Conflict(
                f"project {name!r} still has {count} apps: delete them first (mist app delete)", field="name"
            )
        del self.data.projects[name]


class _Apps(_Part, AppsAPI):
    async def create(self, app_ref: str, spec: AppSpec) -> App:
        self.mist.check()
        self.mist.calls.append(("apps.create", app_ref, spec.model_dump(exclude_defaults=True)))
        project, _, name = app_ref.partition("/")
        _check_name(name, "app")
        if project not in self.data.projects:
            raise NotFound(f"there is no project {project!r}: create it first", field="project")
        if not spec.git_url.startswith(("https://", "/")):
            raise InvalidInput(f"git URL {spec.git_url!r} is not https:// or a local path", field="git_url")
        if spec.port is not None and not 1 <= spec.port <= 65535:
            raise InvalidInput("The port must be between 1 and 65535.", field="port")
        if app_ref in self.data.apps:
            raise Conflict(f"project {project!r} already has an app named {name!r}", field="name")
        app = App(
            id=len(self.data.apps) + 1000,
            project=project,
            name=name,
            spec=spec,
            status="new",
            created_at=NOW,
            updated_at=NOW,
        )
        self.data.apps[app_ref] = app
        return app

    async def list(
        self, *, project: str | None = None, query: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[App]:
        self.mist.check()
        items = [
            a
            for a in self.data.apps.values()
            if (project is None or a.project == project) and (not query or query in a.ref)
        ]
        page = items[offset : offset + limit]
        nxt = offset + limit if offset + limit < len(items) else None
        return Page[App](items=page, total=len(items), next_offset=nxt)

    async def get(self, app_ref: str) -> App:
        self.mist.check()
        try:
            return self.data.apps.get(app_ref) or self.data.preview_apps[app_ref]
        except KeyError:
            raise NotFound(f"There is no app {app_ref!r}: check the name with `mist apps`.") from None

    async def update(self, app_ref: str, changes: AppChanges) -> App:
        app = await self.get(app_ref)
        self.mist.calls.append(("apps.update", app_ref, changes.model_dump(exclude_none=True)))
        if changes.port is not None and not 1 <= changes.port <= 65535:
            raise InvalidInput("The port must be between 1 and 65535.", field="port")
        if changes.branch is not None and " " in changes.branch:
            raise InvalidInput("A branch name cannot contain spaces.", field="branch")
        data = app.spec.model_dump()
        for key, value in changes.model_dump(exclude_none=True, exclude={"clear"}).items():
            data[key] = value
        if isinstance(data.get("memory"), str):
            data["memory"] = 256 * MIB
        app.spec = AppSpec(**data)
        return app

    async def delete(self, app_ref: str) -> None:
        await self.get(app_ref)
        self.mist.calls.append(("apps.delete", app_ref))
        del self.data.apps[app_ref]

    async def deploy(self, app_ref: str, *, ref: str | None = None) -> Deployment:
        app = await self.get(app_ref)
        self.mist.calls.append(("apps.deploy", app_ref, ref))
        dep = Deployment(
            id=99,
            app_id=app.id,
            project=app.project,
            app=app.name,
            state=DeploymentState.queued,
            ref=ref or app.spec.branch,
            created_at=NOW,
        )
        self.data.deployments[99] = dep
        return dep

    async def rollback(self, app_ref: str, *, to: int | None = None) -> Deployment:
        app = await self.get(app_ref)
        self.mist.calls.append(("apps.rollback", app_ref, to))
        dep = Deployment(
            id=98,
            app_id=app.id,
            project=app.project,
            app=app.name,
            state=DeploymentState.queued,
            ref=app.spec.branch,
            source="rollback",
            created_at=NOW,
        )
        self.data.deployments[98] = dep
        return dep

    async def start(self, app_ref: str) -> App:
        app = await self.get(app_ref)
        self.mist.calls.append(("apps.start", app_ref))
        app.status = "live"
        return app

    async def stop(self, app_ref: str) -> App:
        app = await self.get(app_ref)
        self.mist.calls.append(("apps.stop", app_ref))
        app.status = "stopped"
        return app

    async def restart(self, app_ref: str) -> App:
        app = await self.get(app_ref)
        self.mist.calls.append(("apps.restart", app_ref))
        return app

    async def source(self, app_ref: str, *, reveal: bool = False) -> AppSource:
        await self.get(app_ref)
        if reveal:
            self.mist.require("developer", "seeing the webhook secret")
        source = self.mist.source_of(app_ref).model_copy(deep=True)
        if reveal:
            source.webhook_secret = self.mist.webhook_secrets.get(app_ref, WEBHOOK_SECRET)
        return source

    async def set_source(self, app_ref: str, changes: SourceChanges) -> AppSource:
        await self.get(app_ref)
        self.mist.require("developer", "changing the source of an app")
        self.mist.calls.append(("apps.set_source", app_ref, changes.model_dump(exclude_defaults=True)))
        source = self.mist.source_of(app_ref)
        if changes.previews is not None:
            if not 1 <= changes.previews.limit <= 50:
                raise InvalidInput("the preview limit is 1 to 50", field="previews.limit")
            if "{number}" not in changes.previews.domain_pattern:
                raise InvalidInput(
                    "the preview domain pattern needs {number}, like pr-{number}.{app_domain}",
                    field="previews.domain_pattern",
                )
            source.previews = changes.previews
        # Like the core: the app keeps a webhook kind of its own, shown unless a provider decides it.
        own_kinds = self.mist.own_webhook_kinds
        if app_ref not in own_kinds:
            own_kinds[app_ref] = None if source.provider else source.webhook_kind
        if changes.provider is not None:
            if changes.provider and changes.provider not in self.data.providers:
                raise NotFound(f"there is no git provider {changes.provider!r}: see `mist git provider list`")
            if changes.provider:
                repo = (changes.repo or "").strip().strip("/").removesuffix(".git")
                if len(repo.split("/")) < 2 or not all(repo.split("/")):
                    raise InvalidInput(f"{repo!r} is not OWNER/NAME (letters, digits, . _ -)", field="repo")
                app = self.data.apps[app_ref]
                url = self.data.providers[changes.provider].url
                app.spec = app.spec.model_copy(update={"git_url": f"{url}/{repo}.git"})
                source.provider, source.repo = changes.provider, repo
            else:
                source.provider = source.repo = None
        elif changes.repo is not None:
            raise InvalidInput("a repository needs its provider (--provider)", field="repo")
        if changes.token is not None:
            self.mist.tokens_set[app_ref] = changes.token
        if changes.webhook_kind is not None:
            own_kinds[app_ref] = changes.webhook_kind
        source.webhook_kind = (
            self.data.providers[source.provider].kind if source.provider else own_kinds[app_ref]
        )
        for name in ("deploy_on_push", "deploy_tags"):
            if getattr(changes, name) is not None:
                setattr(source, name, getattr(changes, name))
        if changes.forget_known_hosts:
            source.known_hosts = None
        if changes.new_webhook_secret:
            self.mist.webhook_secrets[app_ref] = "whsec-renewed-0000"
        source.auth = self.mist.auth_of(app_ref)
        return source.model_copy(deep=True)

    async def deploy_key(self, app_ref: str, *, regenerate: bool = False) -> AppSource:
        await self.get(app_ref)
        self.mist.require("developer", "making a deploy key")
        self.mist.calls.append(("apps.deploy_key", app_ref, regenerate))
        source = self.mist.source_of(app_ref)
        if source.deploy_key is None or regenerate:
            made = self.mist.keys_made = self.mist.keys_made + 1
            source.deploy_key, source.deploy_key_fingerprint = NEW_KEYS[(made - 1) % len(NEW_KEYS)]
            source.deploy_key += f" mist-{app_ref.replace('/', '-')}"
        source.auth = self.mist.auth_of(app_ref)
        return source.model_copy(deep=True)

    async def logs(
        self, app_ref: str, *, follow: bool = False, tail: int | None = 200, since: datetime | None = None
    ) -> AsyncIterator[LogLine]:
        await self.get(app_ref)
        lines = self.data.app_logs.get(app_ref, [])
        if since is not None:
            lines = [line for line in lines if line.ts >= since]
        if tail is not None:
            lines = lines[-tail:] if tail else []
        for line in lines:
            yield line
        if follow:
            async for line in self.mist.log_feeds.setdefault(app_ref, _Forever()).follow():
                yield line


class _Env(_Part, EnvAPI):
    def _vars(self, app_ref: str) -> dict[str, EnvVar]:
        return self.data.env.setdefault(app_ref, {})

    async def list(self, app_ref: str, *, reveal: bool = False) -> list[EnvVar]:
        out = []
        for var in sorted(self._vars(app_ref).values(), key=lambda v: v.key):
            out.append(var if reveal or not var.secret else var.model_copy(update={"value": None}))
        return out

    async def set(
        self, app_ref: str, key: str, value: str, *, secret: bool = False, build: bool = False
    ) -> EnvVar:
        self.mist.calls.append(("env.set", app_ref, key, value, secret))
        if not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise InvalidInput(
                f"{key!r} is not a valid variable name: use letters, digits and _, not starting with a digit.",
                field="key",
            )
        var = EnvVar(key=key, value=value, secret=secret, build=build, updated_at=NOW)
        self._vars(app_ref)[key] = var
        return var

    async def unset(self, app_ref: str, key: str) -> None:
        self.mist.calls.append(("env.unset", app_ref, key))
        if key not in self._vars(app_ref):
            raise NotFound(f"{app_ref} has no variable {key}.")
        del self._vars(app_ref)[key]

    async def import_dotenv(
        self, app_ref: str, text: str, *, secret: bool = False, build: bool = False
    ) -> list[EnvVar]:
        self.mist.calls.append(("env.import", app_ref, text))
        out = []
        for line in text.splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                out.append(await self.set(app_ref, key.strip(), value.strip(), secret=secret, build=build))
        return out

    async def export_dotenv(self, app_ref: str, *, reveal: bool = False) -> str:
        return "".join(f"{v.key}={v.value}\n" for v in await self.list(app_ref, reveal=reveal))


class _Deployments(_Part, DeploymentsAPI):
    async def list(self, app_ref: str, *, limit: int = 50, offset: int = 0) -> Page[Deployment]:
        project, _, app = app_ref.partition("/")
        items = sorted(
            (d for d in self.data.deployments.values() if d.project == project and d.app == app),
            key=lambda d: d.id,
            reverse=True,
        )
        return Page[Deployment](items=items[offset : offset + limit], total=len(items))

    async def get(self, deployment_id: int) -> Deployment:
        try:
            return self.data.deployments[deployment_id]
        except KeyError:
            raise NotFound(f"There is no deployment {deployment_id}.") from None

    async def log(
        self, deployment_id: int, *, follow: bool = False, after: int = 0
    ) -> AsyncIterator[LogLine]:
        dep = await self.get(deployment_id)
        for line in self.data.build_logs.get(deployment_id, []):
            if line.seq > after:
                yield line
        if follow and not dep.state.is_final:
            async for line in self.mist.log_feeds.setdefault(
                f"deployment:{deployment_id}", _Forever()
            ).follow():
                yield line

    async def cancel(self, deployment_id: int) -> Deployment:
        dep = await self.get(deployment_id)
        self.mist.calls.append(("deployments.cancel", deployment_id))
        if dep.state.is_final:
            raise Conflict(f"Deployment {deployment_id} is already {dep.state.value}; nothing to cancel.")
        dep.state = DeploymentState.cancelled
        dep.finished_at = NOW
        return dep


class _Containers(_Part, ContainersAPI):
    async def list(self, *, all: bool = False) -> list[ContainerInfo]:
        return list(self.data.containers)

    async def describe(self, app_ref: str) -> ContainerDescription:
        project, _, name = app_ref.partition("/")
        return ContainerDescription(
            app=app_ref,
            deployment_id=12,
            id="4f1c" * 16,
            name=f"mist-{project}-{name}-12",
            image=f"mist/{project}-{name}:12",
            image_id="sha256:" + "9a" * 32,
            command=["gunicorn", "app:app", "--bind", "0.0.0.0:8000"],
            working_dir="/srv",
            user="app",
            env=[
                ContainerEnvVar(key="DEBUG", value="0", secret=False),
                ContainerEnvVar(key="DATABASE_URL", value=None, secret=True),
                ContainerEnvVar(key="PORT", value="8000", secret=False),
            ],
            mounts=[ContainerMount(type="volume", name=f"{project}-uploads", destination="/srv/uploads")],
            ports=["127.0.0.1:8080->8000/tcp"],
            networks=[f"mist-{project}"],
            state="running",
            health="healthy",
            restart_policy="unless-stopped",
            restart_count=2,
            started_at=datetime(2026, 5, 4, 9, 30, 0, tzinfo=UTC),
        )

    async def exec(
        self,
        app_ref: str,
        command: list[str] | None = None,
        *,
        tty: bool = False,
        height: int | None = None,
        width: int | None = None,
    ) -> ExecChannel:
        raise PermissionDenied(f"you may not run commands in {app_ref}")


class _Metrics(_Part, MetricsAPI):
    async def current(self) -> MetricsSample:
        return self.data.samples[-1]

    async def history(self, *, seconds: int = 300) -> list[MetricsSample]:
        return list(self.data.samples)

    async def stream(self) -> AsyncIterator[MetricsSample]:
        yield self.data.samples[-1]
        async for sample in self.mist.metrics_feed.follow():
            yield sample


class _Events(_Part, EventsAPI):
    async def stream(self) -> AsyncIterator[Event]:
        async for event in self.mist.event_feed.follow():
            yield event


class _Users(_Part, UsersAPI):
    async def list(self) -> list[User]:
        me = self.mist.me()
        if RANK[me.role] < RANK["admin"]:
            return [me]
        return list(self.data.users)

    async def get(self, username: str) -> User:
        self.mist.me()
        for user in self.data.users:
            if user.username == username:
                return user
        raise NotFound(f"There is no user {username!r}.", field="username")

    async def create(
        self, username: str, password: str, *, role: str = "developer", email: str | None = None
    ) -> User:
        me = self.mist.require("admin", "creating accounts")
        self.mist.calls.append(("users.create", username, role, email))
        _check_name(username, "username")
        if any(u.username == username for u in self.data.users):
            raise Conflict(f"There is already a user {username!r}: choose another name.", field="username")
        if len(password) < 12:
            raise InvalidInput("The password is too short: use at least 12 characters.", field="password")
        if RANK[role] > RANK[me.role]:
            raise PermissionDenied(f"You cannot grant {role}: it is above your own role ({me.role}).")
        user = User(
            id=max(u.id for u in self.data.users) + 1,
            username=username,
            role=role,  # type: ignore[arg-type]
            email=email or None,
            created_at=NOW,
        )
        self.data.users.append(user)
        return user

    async def update(self, username: str, changes: UserChanges) -> User:
        me = self.mist.me()
        if username != me.username:
            self.mist.require("admin", "changing someone else's profile")
        user = await self.get(username)
        self.mist.calls.append(("users.update", username, changes.model_dump(exclude_none=True)))
        if changes.email is not None:
            if changes.email and "@" not in changes.email:
                raise InvalidInput(f"{changes.email!r} is not an email address.", field="email")
            user.email = changes.email or None
        if changes.full_name is not None:
            user.full_name = changes.full_name
        return user

    async def set_role(self, username: str, role: str) -> User:
        me = self.mist.require("admin", "changing roles")
        user = await self.get(username)
        self.mist.calls.append(("users.set_role", username, role))
        if role == "owner" and me.role != "owner":
            raise PermissionDenied("Only an owner can make someone an owner.")
        owners = [u for u in self.data.users if u.role == "owner"]
        if user.role == "owner" and role != "owner" and len(owners) == 1:
            raise Conflict(f"{username} is the last owner: make someone else owner first.", field="role")
        user.role = role  # type: ignore[assignment]
        return user

    async def delete(self, username: str, *, reassign_to: str | None = None) -> None:
        me = self.mist.require("admin", "deleting accounts")
        user = await self.get(username)
        self.mist.calls.append(("users.delete", username, reassign_to))
        if user.username == me.username:
            raise Conflict("You cannot delete your own account while logged in as it.")
        if user.role == "owner" and sum(u.role == "owner" for u in self.data.users) == 1:
            raise Conflict(f"{username} is the last owner and cannot be deleted.")
        self.data.users.remove(user)


class _Members(_Part, MembersAPI):
    def _project(self, project: str) -> builtins_list[Member]:
        self.mist.me()
        if project not in self.data.projects:
            raise NotFound(f"There is no project {project!r}.", field="project")
        return self.data.members.setdefault(project, [])

    def _admin(self, project: str) -> None:
        me = self.mist.me()
        if RANK[me.role] >= RANK["admin"]:
            return
        if not any(m.username == me.username and m.role == "admin" for m in self._project(project)):
            raise PermissionDenied(f"Only an admin of {project} can change its members.")

    async def list(self, project: str) -> builtins_list[Member]:
        return list(self._project(project))

    async def add(self, project: str, username: str, role: str) -> Member:
        members = self._project(project)
        self._admin(project)
        self.mist.calls.append(("members.add", project, username, role))
        if not any(u.username == username for u in self.data.users):
            raise NotFound(f"There is no user {username!r}: invite them first.", field="username")
        member = Member(username=username, role=role, added_at=NOW)  # type: ignore[arg-type]
        for i, m in enumerate(members):
            if m.username == username:
                members[i] = member.model_copy(update={"added_at": m.added_at})
                return members[i]
        members.append(member)
        return member

    async def remove(self, project: str, username: str) -> None:
        members = self._project(project)
        self._admin(project)
        self.mist.calls.append(("members.remove", project, username))
        if not any(m.username == username for m in members):
            raise NotFound(f"{username} is not a member of {project}.", field="username")
        members[:] = [m for m in members if m.username != username]


class _Invites(_Part, InvitesAPI):
    async def create(
        self,
        *,
        username: str | None = None,
        email: str | None = None,
        role: str = "developer",
        project: str | None = None,
        project_role: str | None = None,
        expires_hours: int = 72,
    ) -> InviteCreated:
        me = self.mist.require("admin", "inviting people")
        self.mist.calls.append(
            ("invites.create", username, email, role, project, project_role, expires_hours)
        )
        if not username and not email:
            raise InvalidInput("Name who the invitation is for: a username or an email.", field="username")
        if email and "@" not in email:
            raise InvalidInput(f"{email!r} is not an email address.", field="email")
        if RANK[role] > RANK[me.role]:
            raise PermissionDenied(f"You cannot grant {role}: it is above your own role ({me.role}).")
        if project is not None and project not in self.data.projects:
            raise NotFound(f"There is no project {project!r}.", field="project")
        invite = Invite(
            id=max((i.id for i in self.data.invites), default=0) + 1,
            username=username or None,
            email=email or None,
            role=role,  # type: ignore[arg-type]
            project=project,
            project_role=project_role,  # type: ignore[arg-type]
            created_by=me.username,
            created_at=NOW,
            expires_at=NOW + timedelta(hours=expires_hours),
        )
        self.data.invites.append(invite)
        return InviteCreated(token="mist_i_7Qx2Lr9VhT4kWm8ZcN3pYb6D", invite=invite)

    async def list(self) -> builtins_list[Invite]:
        self.mist.require("admin", "listing invitations")
        return list(self.data.invites)

    async def revoke(self, invite_id: int) -> None:
        self.mist.require("admin", "revoking invitations")
        self.mist.calls.append(("invites.revoke", invite_id))
        self.data.invites = [i for i in self.data.invites if i.id != invite_id]

    async def accept(self, token: str, username: str, password: str, *, email: str | None = None) -> Session:
        raise InvalidInput("This invitation is not valid.", field="token")


class _Sessions(_Part, SessionsAPI):
    async def list(self, *, username: str | None = None) -> builtins_list[SessionInfo]:
        me = self.mist.me()
        wanted = username or me.username
        if wanted != me.username:
            self.mist.require("admin", "seeing other people's sessions")
        out = []
        for info in self.data.sessions:
            if wanted == "*" or info.username == wanted:
                current = info.username == me.username and info.id == 41 and me.username == "ada"
                out.append(info.model_copy(update={"current": current}))
        return out

    async def revoke(self, session_id: int) -> None:
        me = self.mist.me()
        self.mist.calls.append(("sessions.revoke", session_id))
        info = next((i for i in self.data.sessions if i.id == session_id), None)
        if info is None:
            raise NotFound(f"There is no session {session_id}.")
        if info.username != me.username:
            self.mist.require("admin", "ending other people's sessions")
        self.data.sessions.remove(info)
        if info.id == 41 and me.username == "ada":
            self.mist.token = None


class _Tokens(_Part, TokensAPI):
    async def create(
        self,
        name: str,
        *,
        scope: str = "read",
        project: str | None = None,
        expires_days: int | None = 90,
    ) -> ApiTokenCreated:
        me = self.mist.me()
        self.mist.calls.append(("tokens.create", name, scope, project, expires_days))
        if not name.strip():
            raise InvalidInput("Give the token a name that says what uses it, like ci-deploy.", field="name")
        if any(t.name == name and t.username == me.username and not t.revoked_at for t in self.data.tokens):
            raise Conflict(f"You already have a token named {name!r}: choose another name.", field="name")
        if project is not None and project not in self.data.projects:
            raise NotFound(f"There is no project {project!r}.", field="project")
        info = ApiToken(
            id=max(t.id for t in self.data.tokens) + 1,
            name=name,
            username=me.username,
            scope=scope,  # type: ignore[arg-type]
            project=project,
            created_at=NOW,
            expires_at=NOW + timedelta(days=expires_days) if expires_days else None,
        )
        self.data.tokens.insert(0, info)
        return ApiTokenCreated(token="mist_t_Zp4Rk8Vw2Xy6Qm1Nc7Hb3Jd9Lf5Tg0Sa", info=info)

    async def list(self, *, all: bool = False) -> builtins_list[ApiToken]:
        # As the core: revoked tokens are gone from the list; expired ones stay until revoked.
        me = self.mist.me()
        if all:
            self.mist.require("admin", "seeing everyone's tokens")
        return [t for t in self.data.tokens if (all or t.username == me.username) and t.revoked_at is None]

    async def revoke(self, token_id: int) -> None:
        me = self.mist.me()
        self.mist.calls.append(("tokens.revoke", token_id))
        for i, t in enumerate(self.data.tokens):
            if t.id == token_id:
                if t.username != me.username:
                    self.mist.require("admin", "revoking other people's tokens")
                self.data.tokens[i] = t.model_copy(update={"revoked_at": NOW})
                return
        raise NotFound(f"There is no token {token_id}.")


class _Secrets(_Part, SecretsAPI):
    async def rotate_key(self) -> KeyRotation:
        self.mist.require("owner", "rotating the master key")
        self.mist.calls.append(("secrets.rotate_key",))
        return KeyRotation(key_id="k2", resealed=12)


class _Audit(_Part, AuditAPI):
    async def list(
        self,
        *,
        actor: str | None = None,
        project: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[AuditEntry]:
        self.mist.me()
        self.mist.calls.append(("audit.list", actor, project, action, since, until, limit, offset))
        items = [
            e
            for e in self.data.audit
            if (actor is None or e.actor == actor)
            and (project is None or e.project == project)
            and (action is None or e.action.startswith(action))
            and (since is None or e.ts >= since)
            and (until is None or e.ts <= until)
        ]
        page = items[offset : offset + limit]
        nxt = offset + limit if offset + limit < len(items) else None
        return Page[AuditEntry](items=page, total=len(items), next_offset=nxt)


class _Settings(_Part, SettingsAPI):
    async def list(self) -> list[Setting]:
        return list(self.data.settings.values())

    async def get(self, key: str) -> Setting:
        try:
            return self.data.settings[key]
        except KeyError:
            raise NotFound(f"There is no setting {key!r}.") from None

    async def set(self, key: str, value: str) -> Setting:
        setting = await self.get(key)
        self.mist.calls.append(("settings.set", key, value))
        if key == "proxy.kind" and value not in ("traefik", "caddy"):
            raise InvalidInput(f"proxy.kind must be one of: traefik, caddy (not {value!r}).", field="value")
        if key.startswith("deploy.") and not value.isdigit():
            raise InvalidInput(f"{key} must be a whole number, like 2.", field="value")
        setting.value = value
        return setting


class _Domains(_Part, DomainsAPI):
    """Domains kept per app in memory; no certificate is ever issued here."""

    def _of(self, app_ref: str) -> list[Domain]:
        return self.mist.domain_table.setdefault(app_ref, [])

    async def list(self, app_ref: str) -> list[Domain]:
        await self.mist.apps.get(app_ref)
        return list(self._of(app_ref))

    async def add(self, app_ref: str, name: str, settings: DomainSettings | None = None) -> Domain:
        app = await self.mist.apps.get(app_ref)
        self.mist.calls.append(("domains.add", app_ref, name))
        if not name or " " in name or "." not in name:
            raise InvalidInput(
                f"{name!r} is not a domain name: give a name such as app.example.com", field="domain"
            )
        for ref, domains in self.mist.domain_table.items():
            if any(d.name == name for d in domains):
                raise Conflict(
                    f"{name} is already used by the app {ref}: remove it there first", field="domain"
                )
        domain = Domain(
            id=sum(len(v) for v in self.mist.domain_table.values()) + 1,
            app_id=app.id,
            project=app.project,
            app=app.name,
            name=name,
            created_at=NOW,
            **(settings or DomainSettings()).model_dump(),
        )
        self._of(app_ref).append(domain)
        if domain.https:
            self.mist.certificate_table[name] = Certificate(
                id=len(self.mist.certificate_table) + 1,
                domain=name,
                status="pending",
                source="acme",
                updated_at=NOW,
            )
        return domain

    async def update(self, app_ref: str, name: str, settings: DomainSettings) -> Domain:
        await self.mist.apps.get(app_ref)
        self.mist.calls.append(("domains.update", app_ref, name))
        domains = self._of(app_ref)
        for i, d in enumerate(domains):
            if d.name == name:
                domains[i] = d.model_copy(update=settings.model_dump())
                return domains[i]
        raise NotFound(f"the app has no domain {name}", field="domain")

    async def remove(self, app_ref: str, name: str) -> None:
        await self.mist.apps.get(app_ref)
        self.mist.calls.append(("domains.remove", app_ref, name))
        domains = self._of(app_ref)
        if not any(d.name == name for d in domains):
            raise NotFound(f"the app has no domain {name}", field="domain")
        domains[:] = [d for d in domains if d.name != name]
        self.mist.certificate_table.pop(name, None)


class _Certificates(_Part, CertificatesAPI):
    async def list(self, app_ref: str | None = None) -> list[Certificate]:
        self.mist.check()
        if app_ref is None:
            return list(self.mist.certificate_table.values())
        names = {d.name for d in self.mist.domain_table.get(app_ref, [])}
        return [c for c in self.mist.certificate_table.values() if c.domain in names]

    async def renew(self, domain: str) -> Certificate:
        self.mist.calls.append(("certificates.renew", domain))
        cert = self.mist.certificate_table.get(domain)
        if cert is None:
            raise NotFound(f"no certificate for {domain}: add the domain with HTTPS on first", field="domain")
        cert = cert.model_copy(update={"status": "renewing", "last_error": "", "next_attempt_at": None})
        self.mist.certificate_table[domain] = cert
        return cert

    async def upload(self, domain: str, cert_pem: str, key_pem: str) -> Certificate:
        self.mist.calls.append(("certificates.upload", domain))
        if "BEGIN CERTIFICATE" not in cert_pem:
            raise InvalidInput(
                "the certificate is not PEM: give a file that starts with -----BEGIN CERTIFICATE-----",
                field="certificate",
            )
        if "PRIVATE KEY" not in key_pem:
            raise InvalidInput(
                "the key is not a PEM private key: give a file with -----BEGIN PRIVATE KEY-----", field="key"
            )
        cert = Certificate(
            id=len(self.mist.certificate_table) + 1,
            domain=domain,
            status="issued",
            source="uploaded",
            cert_pem=cert_pem,
            not_after=NOW + timedelta(days=90),
            updated_at=NOW,
        )
        self.mist.certificate_table[domain] = cert
        return cert


class _Proxy(_Part, ProxyAPI):
    async def status(self) -> ProxyStatus:
        self.mist.check()
        return ProxyStatus(
            backend="traefik",
            reachable=True,
            detail="routes written to /var/lib/mist/traefik/dynamic",
            routes=len([ref for ref, domains in self.mist.domain_table.items() if domains]),
            domains=sum(len(domains) for domains in self.mist.domain_table.values()),
            http_address="0.0.0.0:80",
            https_address="0.0.0.0:443",
        )

    async def reload(self) -> ProxyStatus:
        self.mist.calls.append(("proxy.reload",))
        return await self.status()

    async def install(self) -> ProxyStatus:
        self.mist.calls.append(("proxy.install",))
        return await self.status()


class _Git(_Part, GitAPI):
    async def providers(self) -> builtins_list[GitProvider]:
        self.mist.check()
        return list(self.data.providers.values())

    async def add_provider(self, spec: GitProviderSpec) -> GitProvider:
        self.mist.require("admin", "adding git providers")
        self.mist.calls.append(("git.add_provider", spec.model_dump(exclude_none=True)))
        _check_name(spec.name, "name")
        if spec.name in self.data.providers:
            raise Conflict(
                f"there is already a git provider named {spec.name!r}: choose another name", field="name"
            )
        if spec.kind == "github":
            if spec.app_id is None:
                raise InvalidInput("a GitHub App needs its id", field="app_id")
            if not spec.private_key or "PRIVATE KEY-----" not in spec.private_key:
                raise InvalidInput("a GitHub App needs its private key (PEM)", field="private_key")
            if not spec.webhook_secret:
                raise InvalidInput("a GitHub App needs its webhook secret", field="webhook_secret")
        else:
            if not spec.url or not spec.url.startswith("https://"):
                raise InvalidInput(
                    f"a {spec.kind} provider needs the https address of its host, like https://git.example.com",
                    field="url",
                )
            if spec.token != "good-token":
                raise InvalidInput(
                    f"{spec.url} refused the token (401 Unauthorized): give an access token with read access "
                    "to repositories",
                    field="token",
                )
        url = (spec.url or "https://github.com").rstrip("/")
        provider = GitProvider(
            id=len(self.data.providers) + 10,
            name=spec.name,
            kind=spec.kind,
            url=url,
            api_url=spec.api_url or f"{url}/api",
            app_id=spec.app_id,
            installation_id=spec.installation_id,
            created_at=NOW,
        )
        self.data.providers[spec.name] = provider
        self.data.repos[spec.name] = []
        return provider

    async def github_manifest(
        self, name: str, *, url: str = "https://github.com", organization: str | None = None
    ) -> ManifestStart:
        self.mist.require("admin", "creating GitHub Apps")
        self.mist.calls.append(("git.github_manifest", name, url, organization))
        _check_name(name, "name")
        return ManifestStart(
            name=name, url=f"{PUBLIC_URL}/hooks/github/manifest?state=st-8c1f0e", state="st-8c1f0e"
        )

    async def remove_provider(self, name: str) -> None:
        self.mist.require("admin", "removing git providers")
        if name not in self.data.providers:
            raise NotFound(f"there is no git provider {name!r}")
        users = sorted(ref for ref, source in self.data.sources.items() if source.provider == name)
        if users:
            raise Conflict(
                f"git provider {name} is used by {', '.join(users)}: unlink them first "
                "(mist app source APP --unlink)"
            )
        self.mist.calls.append(("git.remove_provider", name))
        del self.data.providers[name]

    async def repos(self, provider: str) -> builtins_list[RepoInfo]:
        self.mist.require("developer", "browsing repositories")
        if provider not in self.data.providers:
            raise NotFound(f"there is no git provider {provider!r}: see `mist git provider list`")
        return list(self.data.repos.get(provider, []))

    async def branches(self, provider: str, repo: str) -> builtins_list[BranchInfo]:
        await self.repos(provider)
        default = next((r.default_branch for r in self.data.repos[provider] if r.full_name == repo), "main")
        return list(
            self.data.branches.get((provider, repo))
            or [BranchInfo(name=default, sha="0123456789abcdef0123456789abcdef01234567")]
        )


class _Webhooks(_Part, WebhooksAPI):
    async def list(self, app_ref: str, *, limit: int = 50) -> builtins_list[WebhookDelivery]:
        await self.mist.apps.get(app_ref)
        return self.data.deliveries.get(app_ref, [])[:limit]


class _Previews(_Part, PreviewsAPI):
    async def list(self, app_ref: str) -> builtins_list[Preview]:
        await self.mist.apps.get(app_ref)
        return list(self.data.previews.get(app_ref, []))
