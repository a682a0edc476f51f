"""Build variables against the host processes a real daemon starts: a developer who controls an app's build
variables and its repository tries to run code in the ``docker`` command Mist runs on the host (as root,
beside ``master.key``), or to point that command at another engine, config or PATH. The variables must reach
the Dockerfile as build arguments and nothing else.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from gitutil import init_repo

from .conftest import Daemon, describe

pytestmark = pytest.mark.docker

DEPLOY_DEADLINE = 300.0  # guards against a hung deployment; nothing depends on how long it takes
FINAL = {"live", "failed", "cancelled", "superseded", "rolled_back"}
# A fresh daemon numbers its deployments from 1, so its first one checks out here (<data>/work/<id>/src).
FIRST_DEPLOYMENT = 1

PRELOAD_SOURCE = """
#include <fcntl.h>
#include <unistd.h>

/* Runs in any dynamically linked program that loads this library, before its main. */
__attribute__((constructor)) static void mist_test_marker(void) {
    int fd = open("%(marker)s", O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        write(fd, "loaded\\n", 7);
        close(fd);
    }
}
"""


@pytest.fixture
def fresh_daemon(tmp_path: Path, busybox: str) -> Iterator[Daemon]:
    """A daemon of this test's own, so the id (and the checkout path) of its first deployment is known."""
    running = Daemon(tmp_path / "mistd")
    try:
        running.setup_owner()
        yield running
    finally:
        running.stop()


def compile_preload_library(tmp_path: Path, marker: Path) -> bytes:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail(
            "gcc is not installed (`make system-packages` installs it): it compiles the preloaded object"
        )
    source = tmp_path / "preload.c"
    source.write_text(PRELOAD_SOURCE % {"marker": marker})
    library = tmp_path / "preload.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-o", str(library), str(source)], check=True, capture_output=True
    )
    return library.read_bytes()


def make_app(d: Daemon, files: dict[str, str | bytes], build_variables: dict[str, str]) -> tuple[str, str]:
    s = uuid.uuid4().hex[:8]
    project, app = f"hostenv-{s}", "web"
    repo = init_repo(d.repos / f"hostenv-{s}", files)
    owner = d.owner_token
    d.ok("POST", "/projects", token=owner, json={"name": project})
    d.ok("POST", f"/projects/{project}/apps", token=owner, json={"name": app, "git_url": str(repo)})
    for key, value in build_variables.items():
        d.ok(
            "POST",
            f"/projects/{project}/apps/{app}/env",
            token=owner,
            json={"key": key, "value": value, "build": True},
        )
    return project, app


def deploy_and_wait(d: Daemon, project: str, app: str) -> dict[str, Any]:
    deployment = d.ok("POST", f"/projects/{project}/apps/{app}/deploy", token=d.owner_token, json={})
    deadline = time.monotonic() + DEPLOY_DEADLINE
    while time.monotonic() < deadline:
        current = d.ok("GET", f"/deployments/{deployment['id']}", token=d.owner_token)
        if current["state"] in FINAL:
            return dict(current)
        time.sleep(0.2)
    raise AssertionError(f"deployment {deployment['id']} did not finish: {d.log_text()[-3000:]}")


def proof(tag: str) -> tuple[str, str]:
    """A shell word that prints a unique line, and that line: the build log shows the command too, so the
    printed line must differ from the command's text (the shell joins the two quoted halves)."""
    half = uuid.uuid4().hex  # also keeps the step out of BuildKit's cache
    return f'"{tag}-""{half}"', f"{tag}-{half}"


def deployment_log(d: Daemon, deployment_id: int) -> str:
    response = d.call("GET", f"/deployments/{deployment_id}/log", token=d.owner_token)
    assert response.status_code == 200, describe(response)
    return response.text


def built_image_labels(d: Daemon, project: str, app: str, deployment_id: int) -> dict[str, str]:
    """The labels of the image the deployment built, as the real engine holds it."""
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        image = client.images.get(f"mist/{project}/{app}:{deployment_id}")
        return dict(image.labels)
    finally:
        client.close()


def test_a_build_variable_cannot_preload_code_into_the_docker_command(
    fresh_daemon: Daemon, tmp_path: Path
) -> None:
    d = fresh_daemon
    marker = tmp_path / "preloaded-into-a-host-process"
    library = compile_preload_library(tmp_path, marker)
    checkout = d.data / "work" / str(FIRST_DEPLOYMENT) / "src"
    preload = str(checkout / "lib" / "libmist-test.so")
    library_path = str(checkout / "lib")
    echo, seen = proof("build-args-seen")
    dockerfile = (
        "FROM mist-test/busybox:1\n"
        "ARG LD_PRELOAD\n"
        "ARG LD_LIBRARY_PATH\n"
        f'RUN test "$LD_PRELOAD" = "{preload}" && test "$LD_LIBRARY_PATH" = "{library_path}" && echo {echo}\n'
        'CMD ["sleep", "3600"]\n'
    )
    project, app = make_app(
        d,
        {"Dockerfile": dockerfile, "lib/libmist-test.so": library},
        {"LD_PRELOAD": preload, "LD_LIBRARY_PATH": library_path},
    )

    result = deploy_and_wait(d, project, app)

    # The library was where the variable pointed when the build ran, so only Mist kept it out.
    assert result["id"] == FIRST_DEPLOYMENT, "the checkout path this attack relies on was guessed wrong"
    assert not marker.exists(), "a build variable loaded a repository's code into a host process"
    assert result["state"] == "live", f"{result}\n{deployment_log(d, result['id'])[-3000:]}"
    assert seen in deployment_log(d, result["id"])
    labels = built_image_labels(d, project, app, result["id"])
    assert labels["dev.mist.instance"] == d.instance_id


def test_build_variables_named_like_the_docker_commands_settings_reach_only_the_dockerfile(
    fresh_daemon: Daemon, tmp_path: Path
) -> None:
    d = fresh_daemon
    checkout = d.data / "work" / str(FIRST_DEPLOYMENT) / "src"
    hostile = {
        # Each would send the docker command elsewhere if it reached its environment.
        "DOCKER_HOST": "tcp://127.0.0.1:9",
        "BUILDKIT_HOST": "tcp://127.0.0.1:9",
        "DOCKER_CONFIG": str(checkout / "docker-config"),
        "DOCKER_CERT_PATH": str(checkout),
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_BUILDKIT": "0",
        "PATH": str(checkout / "bin"),
        "HOME": str(checkout),
        # Values that look like options or hold '=' must arrive as they are.
        "LOOKS_LIKE_AN_OPTION": "--network=host",
        "HOLDS_EQUALS": "a=b==c",
        "SPACES": "  two  words  ",
    }
    echo, seen = proof("build-args-seen")
    checks = " && ".join(f'test "${name}" = "{value}"' for name, value in hostile.items())
    dockerfile = (
        "FROM mist-test/busybox:1\n"
        + "".join(f"ARG {name}\n" for name in hostile)
        + f"RUN {checks} && echo {echo}\n"
        + 'CMD ["sleep", "3600"]\n'
    )
    project, app = make_app(
        d,
        {"Dockerfile": dockerfile, "docker-config/config.json": '{"credsStore": "mist-test-nowhere"}\n'},
        hostile,
    )

    result = deploy_and_wait(d, project, app)

    assert result["state"] == "live", f"{result}\n{deployment_log(d, result['id'])[-3000:]}"
    assert seen in deployment_log(d, result["id"])
    # Built by the engine the daemon is configured for, not the one the variables named.
    labels = built_image_labels(d, project, app, result["id"])
    assert labels["dev.mist.instance"] == d.instance_id
