"""Image builds against the real Docker Engine: build variables, secrets that leave no trace, labels,
failures, cancellation, and a generated static-site Dockerfile that really serves its page."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from images import DOCKER, TEST_LABEL, image_exists

from mist_core.builds import BuildCancelled, BuildFailed, build_image, plan_build
from mist_core.errors import EngineUnavailable
from mist_core.models import AppSpec
from mist_core.procs import HOST_PATH, OPERATOR_ENV

pytestmark = pytest.mark.docker

# Guards against a hung test; no assertion depends on how long anything takes.
GUARD = 300
TEST_LABELS = {TEST_LABEL: "1"}


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True)


@pytest.fixture
def base(busybox: str) -> str:
    return busybox


@pytest.fixture
def run_id(unique: str) -> str:
    return unique


@pytest.fixture
def tags(run_id: str) -> Iterator[list[str]]:
    """Image tags made by a test, removed afterwards."""
    made: list[str] = []
    yield made
    for tag in made:
        docker("image", "rm", "-f", tag)


def tag_for(tags: list[str], run_id: str, name: str) -> str:
    tag = f"mist-test-builds-{run_id}/{name}:1"
    tags.append(tag)
    return tag


def context(tmp_path: Path, dockerfile: str, **files: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (ctx / name).write_text(text)
    return ctx


async def test_build_with_arg_and_secret_leaves_no_trace_of_the_secret(
    tmp_path: Path, base: str, run_id: str, tags: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    greeting = f"hello-{run_id}"
    ctx = context(
        tmp_path,
        f"FROM {base}\n"
        "ARG GREETING\n"
        f'RUN test "$GREETING" = "{greeting}" && echo "$GREETING" > /greeting\n'
        # The run id keeps this step out of the cache, so it really runs and really reads the secret; the
        # value is compared through its digest so the Dockerfile itself does not hold it.
        f"RUN --mount=type=secret,id=TOK echo run-{run_id} "
        f'&& test "$(sha256sum /run/secrets/TOK | cut -d " " -f 1)" = "{digest}" '
        "&& echo secret-matches && cat /run/secrets/TOK && echo\n",
    )
    tag = tag_for(tags, run_id, "secret")
    argvs: list[tuple[str, ...]] = []
    envs: list[dict[str, str]] = []
    real_exec = asyncio.create_subprocess_exec

    async def recording_exec(*args: str, **kwargs: object) -> asyncio.subprocess.Process:
        argvs.append(args)
        envs.append(dict(kwargs["env"]))  # type: ignore[call-overload]
        return await real_exec(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)
    lines: list[str] = []

    async def on_line(line: str) -> None:
        lines.append(line)

    image_id = await asyncio.wait_for(
        build_image(
            context_dir=ctx,
            dockerfile=ctx / "Dockerfile",
            tag=tag,
            labels={**TEST_LABELS, "dev.mist.app": "shop/web", "dev.mist.deployment": "42"},
            build_args={"GREETING": greeting},
            secrets={"TOK": secret},
            on_line=on_line,
        ),
        GUARD,
    )

    assert image_id.startswith("sha256:")
    assert docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip() == image_id
    output = "\n".join(lines)
    assert "secret-matches" in output
    assert "******" in output  # the build printed the secret and the log shows it masked
    assert secret not in output
    assert docker("run", "--rm", tag, "cat", "/greeting").stdout.strip() == greeting

    history = docker("history", "--no-trunc", tag)
    assert history.returncode == 0
    assert secret not in history.stdout
    inspect = docker("image", "inspect", tag)
    assert inspect.returncode == 0
    assert secret not in inspect.stdout
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", tag).stdout)
    assert labels["dev.mist.app"] == "shop/web"
    assert labels["dev.mist.deployment"] == "42"

    # The secret is in neither the command line (`ps`) nor the environment of the docker process; the build
    # variable is one argument, name and value together, and not in that environment either.
    assert len(argvs) == 1
    assert not any(secret in arg for arg in argvs[0])
    assert f"--build-arg=GREETING={greeting}" in argvs[0]
    assert secret not in envs[0].values()
    assert "GREETING" not in envs[0]
    assert set(envs[0]) <= {"PATH", "LANG", "LC_ALL", "HOME", "DOCKER_BUILDKIT"} | OPERATOR_ENV
    assert envs[0]["PATH"] == HOST_PATH


async def test_failing_step_raises_build_failed_with_its_output(
    tmp_path: Path, base: str, run_id: str, tags: list[str]
) -> None:
    ctx = context(tmp_path, f"FROM {base}\nRUN echo about-to-fail-{run_id} && exit 3\n")
    lines: list[str] = []
    with pytest.raises(BuildFailed) as info:
        await asyncio.wait_for(
            build_image(
                context_dir=ctx,
                dockerfile=ctx / "Dockerfile",
                tag=tag_for(tags, run_id, "fails"),
                labels=TEST_LABELS,
                build_args={},
                secrets={},
                on_line=lines.append,
            ),
            GUARD,
        )
    assert info.value.code == "build_failed"
    assert info.value.status == 422
    assert f"about-to-fail-{run_id}" in info.value.message
    assert any(f"about-to-fail-{run_id}" in line for line in lines)
    assert not image_exists(f"mist-test-builds-{run_id}/fails:1")


async def test_cancelling_stops_the_build(tmp_path: Path, base: str, run_id: str, tags: list[str]) -> None:
    # A sleep length unique to this run, so the step's process can be told apart from anyone else's.
    seconds = str(100000 + uuid.uuid4().int % 800000)
    ctx = context(tmp_path, f"FROM {base}\nRUN echo sleeping-{run_id} && sleep {seconds}\n")
    tag = tag_for(tags, run_id, "cancel")
    cancel = asyncio.Event()

    def on_line(line: str) -> None:
        # Cancel once the long step is really running inside the builder.
        if f"sleeping-{run_id}" in line and "RUN" not in line:
            cancel.set()

    with pytest.raises(BuildCancelled):
        await asyncio.wait_for(
            build_image(
                context_dir=ctx,
                dockerfile=ctx / "Dockerfile",
                tag=tag,
                labels=TEST_LABELS,
                build_args={},
                secrets={},
                on_line=on_line,
                cancel=cancel,
            ),
            GUARD,
        )
    assert cancel.is_set()
    assert not image_exists(tag)
    # The engine abandons the step once the build's client is gone: its process does not linger.
    for _ in range(300):
        if not step_running(["sleep", seconds]):
            break
        await asyncio.sleep(0.1)
    assert not step_running(["sleep", seconds])


def step_running(cmdline: list[str]) -> bool:
    for proc in psutil.process_iter(["cmdline"]):
        if proc.info["cmdline"] == cmdline:
            return True
    return False


async def test_build_past_its_timeout_is_stopped_and_fails(
    tmp_path: Path, base: str, run_id: str, tags: list[str]
) -> None:
    ctx = context(tmp_path, f"FROM {base}\nRUN echo slow-{run_id} && sleep 600\n")
    tag = tag_for(tags, run_id, "timeout")
    with pytest.raises(BuildFailed, match="did not finish within"):
        await asyncio.wait_for(
            build_image(
                context_dir=ctx,
                dockerfile=ctx / "Dockerfile",
                tag=tag,
                labels=TEST_LABELS,
                build_args={},
                secrets={},
                on_line=lambda line: None,
                timeout=3,
            ),
            GUARD,
        )
    assert not image_exists(tag)


async def test_missing_docker_binary_is_engine_unavailable(tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM scratch\n")
    with pytest.raises(EngineUnavailable, match="not found"):
        await build_image(
            context_dir=ctx,
            dockerfile=ctx / "Dockerfile",
            tag="mist-test-builds-none/x:1",
            labels=TEST_LABELS,
            build_args={},
            secrets={},
            on_line=lambda line: None,
            docker_bin="/nonexistent/docker",
        )


async def test_engine_that_does_not_answer_is_engine_unavailable(tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM scratch\n")
    with pytest.raises(EngineUnavailable):
        await asyncio.wait_for(
            build_image(
                context_dir=ctx,
                dockerfile=ctx / "Dockerfile",
                tag="mist-test-builds-none/x:1",
                labels=TEST_LABELS,
                build_args={},
                secrets={},
                on_line=lambda line: None,
                docker_host=f"unix://{tmp_path}/no-engine.sock",
            ),
            GUARD,
        )


async def test_build_cancelled_before_it_starts_runs_nothing(tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM scratch\n")
    cancel = asyncio.Event()
    cancel.set()
    lines: list[str] = []
    with pytest.raises(BuildCancelled):
        await build_image(
            context_dir=ctx,
            dockerfile=ctx / "Dockerfile",
            tag="mist-test-builds-none/x:1",
            labels=TEST_LABELS,
            build_args={},
            secrets={},
            on_line=lines.append,
            cancel=cancel,
        )
    assert lines == []


async def test_build_variables_named_like_dockers_settings_reach_only_the_dockerfile(
    tmp_path: Path, base: str, run_id: str, tags: list[str]
) -> None:
    build_args = {
        # Each would redirect or subvert the docker command if it reached its environment.
        "DOCKER_HOST": "tcp://127.0.0.1:9",
        "BUILDKIT_HOST": "tcp://127.0.0.1:9",
        "DOCKER_BUILDKIT": "0",
        "DOCKER_CONFIG": str(tmp_path / "elsewhere"),
        "LD_PRELOAD": str(tmp_path / "missing.so"),
        "PATH": str(tmp_path / "bin"),
        "HOME": str(tmp_path),
        # Values must arrive exactly, whatever they look like.
        "LOOKS_LIKE_AN_OPTION": "--network=host",
        "HOLDS_EQUALS": "a=b==c",
        "SPACES": "  two  words  ",
        "EMPTY": "",
    }
    checks = " && ".join(f'test "${{{name}-unset}}" = "{value}"' for name, value in build_args.items())
    ctx = context(
        tmp_path,
        f"FROM {base}\n"
        + "".join(f"ARG {name}\n" for name in build_args)
        # The shell joins the two quoted halves, so the printed line differs from the logged command.
        + f'RUN {checks} && echo "args-arrived-""{run_id}"\n',
    )
    tag = tag_for(tags, run_id, "names")
    lines: list[str] = []
    try:
        await asyncio.wait_for(
            build_image(
                context_dir=ctx,
                dockerfile=ctx / "Dockerfile",
                tag=tag,
                labels=TEST_LABELS,
                build_args=build_args,
                secrets={},
                on_line=lines.append,
            ),
            GUARD,
        )
    except BuildFailed as exc:
        raise AssertionError("\n".join(lines)) from exc
    assert any(line.endswith(f"args-arrived-{run_id}") for line in lines)
    assert image_exists(tag)  # built by the engine the caller chose, not the one DOCKER_HOST named


async def test_generated_static_site_builds_and_serves_its_page(
    tmp_path: Path, base: str, run_id: str, tags: list[str]
) -> None:
    repo = tmp_path / "src"
    repo.mkdir()
    page = f"<h1>hello from {run_id}</h1>\n"
    (repo / "index.html").write_text(page)
    secret = f"tok-{uuid.uuid4().hex}"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    plan = plan_build(
        repo,
        AppSpec(
            git_url="https://example.com/site.git",
            # Proves the generated step sees the build secret as an environment variable.
            build_command=f"echo build-{run_id} && "
            f'test "$(printf %s "$SITE_TOKEN" | sha256sum | cut -d " " -f 1)" = "{digest}" && '
            "echo ok > /www/built.txt",
        ),
        build_secret_names=["SITE_TOKEN"],
        generated_path=tmp_path / "work" / "Dockerfile",
    )
    assert plan.stack == "static"
    plan.write()
    tag = tag_for(tags, run_id, "static")
    lines: list[str] = []
    await asyncio.wait_for(
        build_image(
            context_dir=plan.context_dir,
            dockerfile=plan.dockerfile,
            tag=tag,
            labels={**TEST_LABELS, "dev.mist.app": "site"},
            build_args={},
            secrets={"SITE_TOKEN": secret},
            on_line=lines.append,
        ),
        GUARD,
    )
    assert secret not in "\n".join(lines)
    assert secret not in docker("history", "--no-trunc", tag).stdout
    assert secret not in docker("image", "inspect", tag).stdout

    name = f"mist-test-builds-{run_id}-static"
    started = docker("run", "-d", "--name", name, "--label", f"{TEST_LABEL}=1", "-p", "127.0.0.1::80", tag)
    try:
        assert started.returncode == 0, started.stderr
        address = docker("port", name, "80/tcp").stdout.splitlines()[0].strip()
        async with httpx.AsyncClient(base_url=f"http://{address}") as client:
            response = None
            for _ in range(100):
                try:
                    response = await client.get("/")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert response is not None
            assert response.status_code == 200
            assert response.text == page
            built = await client.get("/built.txt")
            assert built.text.strip() == "ok"
    finally:
        docker("rm", "-f", name)


async def serve_and_get(tag: str, name: str, port: int, path: str = "/") -> httpx.Response:
    """Run ``tag`` with ``port`` published on 127.0.0.1 and GET ``path`` once it answers."""
    started = docker(
        "run", "-d", "--name", name, "--label", f"{TEST_LABEL}=1", "-p", f"127.0.0.1::{port}", tag
    )
    try:
        assert started.returncode == 0, started.stderr
        address = docker("port", name, f"{port}/tcp").stdout.splitlines()[0].strip()
        async with httpx.AsyncClient(base_url=f"http://{address}") as client:
            for _ in range(150):
                try:
                    return await client.get(path)
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        logs = docker("logs", name)
        raise AssertionError(f"{tag} never answered on {port}:\n{logs.stdout}{logs.stderr}")
    finally:
        docker("rm", "-f", name)


PYTHON_APP = {
    "requirements.txt": "",
    "app.py": (
        "import os\n"
        "from http.server import BaseHTTPRequestHandler, HTTPServer\n"
        "class Hello(BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = ('python on ' + os.environ['PORT']).encode()\n"
        "        self.send_response(200)\n"
        "        self.end_headers()\n"
        "        self.wfile.write(body)\n"
        "HTTPServer(('0.0.0.0', int(os.environ['PORT'])), Hello).serve_forever()\n"
    ),
}

NODE_APP = {
    "package.json": json.dumps(
        {
            "name": "hello",
            "version": "1.0.0",
            "scripts": {
                "build": "node -e \"require('fs').writeFileSync('built.txt', 'built')\"",
                "start": "node server.js",
            },
        }
    ),
    "package-lock.json": json.dumps(
        {
            "name": "hello",
            "version": "1.0.0",
            "lockfileVersion": 3,
            "requires": True,
            "packages": {"": {"name": "hello", "version": "1.0.0"}},
        }
    ),
    "server.js": (
        "const fs = require('fs');\n"
        "require('http').createServer((req, res) => {\n"
        "  res.end('node on ' + process.env.PORT + ' ' + fs.readFileSync('built.txt'));\n"
        "}).listen(Number(process.env.PORT), '0.0.0.0');\n"
    ),
}

GO_APP = {
    "go.mod": "module example.com/hello\n\ngo 1.19\n",
    "main.go": (
        "package main\n\n"
        'import (\n\t"fmt"\n\t"net/http"\n\t"os"\n)\n\n'
        "func main() {\n"
        '\thttp.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {\n'
        '\t\tfmt.Fprintf(w, "go on %s", os.Getenv("PORT"))\n'
        "\t})\n"
        '\tif err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {\n'
        "\t\tpanic(err)\n"
        "\t}\n"
        "}\n"
    ),
}


@pytest.mark.parametrize(
    ("stack", "files", "expected"),
    [
        ("python", PYTHON_APP, "python on 8000"),
        ("node", NODE_APP, "node on 3000 built"),
        ("go", GO_APP, "go on 8080"),
    ],
)
async def test_generated_dockerfile_builds_and_runs_the_app(
    tmp_path: Path,
    standin_images: dict[str, str],
    run_id: str,
    tags: list[str],
    stack: str,
    files: dict[str, str],
    expected: str,
) -> None:
    repo = tmp_path / "src"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).write_text(text)
    plan = plan_build(
        repo, AppSpec(git_url="https://example.com/app.git"), generated_path=tmp_path / "Dockerfile"
    )
    assert plan.stack == stack
    assert plan.port is not None
    plan.write()
    tag = tag_for(tags, run_id, stack)
    lines: list[str] = []
    try:
        await asyncio.wait_for(
            build_image(
                context_dir=plan.context_dir,
                dockerfile=plan.dockerfile,
                tag=tag,
                labels=TEST_LABELS,
                build_args={},
                secrets={},
                on_line=lines.append,
            ),
            GUARD,
        )
    except BuildFailed as exc:
        raise AssertionError("\n".join(lines)) from exc
    response = await serve_and_get(tag, f"mist-test-builds-{run_id}-{stack}", plan.port)
    assert response.status_code == 200
    assert response.text == expected
