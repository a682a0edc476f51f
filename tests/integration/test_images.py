"""The locally built stand-ins for official images honour the interface Mist's Dockerfiles rely on."""

from __future__ import annotations

import time

import docker
import httpx
import pytest
from images import TEST_LABEL

pytestmark = pytest.mark.docker


def run(client: docker.DockerClient, image: str, script: str, **kwargs: object) -> str:
    """Run ``sh -c script`` in a throw-away container and return its output (raises on a non-zero exit)."""
    out = client.containers.run(image, ["sh", "-c", script], remove=True, stdout=True, stderr=True, **kwargs)
    return out.decode()


def test_every_standin_is_labelled_as_a_test_image(docker_client, standin_images):
    for name in ("debian", "python", "node", "golang"):
        labels = docker_client.images.get(standin_images[name]).labels
        assert labels.get(TEST_LABEL) == "1", name
        assert not any(key.startswith("dev.mist.") and not key.startswith("dev.mist.test") for key in labels)


def test_busybox_standin_serves_a_file_over_httpd(docker_client, busybox, unique):
    container = docker_client.containers.run(
        "busybox:1.36",
        ["sh", "-c", "echo hello from busybox > /www/index.html && exec httpd -f -p 8080 -h /www"],
        name=f"{unique}-httpd",
        detach=True,
        ports={"8080/tcp": ("127.0.0.1", None)},
        labels={TEST_LABEL: "1"},
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        body = None
        for _ in range(50):
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/index.html", timeout=2).text
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert body == "hello from busybox\n"
    finally:
        container.remove(force=True)


def test_debian_standin_is_bookworm_with_apt_sources_and_no_cached_lists(docker_client, standin_images):
    out = run(
        docker_client,
        standin_images["debian"],
        ". /etc/os-release && echo $VERSION_CODENAME; ls /etc/apt/sources.list.d; ls /var/lib/apt/lists",
    )
    assert out.split() == ["bookworm", "debian.sources", "partial"]


def test_python_standin_runs_python_and_pip_installs_into_the_system(docker_client, standin_images):
    # A local package keeps the test off the network; pip would refuse it if the PEP 668 marker were there.
    script = (
        "set -e; mkdir -p /tmp/pkg/hello; cd /tmp/pkg; "
        "echo 'GREETING = \"hi\"' > hello/__init__.py; "
        'printf \'from setuptools import setup\\nsetup(name="hello", version="1", packages=["hello"])\\n\' > setup.py; '
        "pip install -q --no-index --no-build-isolation --root-user-action=ignore .; "
        "cd /; python -c 'import hello; print(hello.GREETING)'; python -c 'print(1)'; "
        "python -m venv /tmp/venv && /tmp/venv/bin/python -c 'import sys; print(sys.prefix)'; "
        'test -s "$PIP_CERT" && test "$PIP_CERT" = "$REQUESTS_CA_BUNDLE" && echo ca-ok'
    )
    assert run(docker_client, standin_images["python"], script).split() == ["hi", "1", "/tmp/venv", "ca-ok"]


def test_node_standin_runs_node_and_npm_with_the_machine_ca_bundle(docker_client, standin_images):
    script = (
        "node -e 'console.log(6 * 7)'; npm --version >/dev/null && echo npm-ok; "
        'test -s "$NODE_EXTRA_CA_CERTS" && echo ca-ok; id -u node'
    )
    assert run(docker_client, standin_images["node"], script).split() == ["42", "npm-ok", "ca-ok", "1000"]


def test_golang_standin_builds_and_runs_a_module(docker_client, standin_images):
    script = (
        "set -e; go version; mkdir -p /src && cd /src; "
        "printf 'module example.com/hello\\n\\ngo 1.19\\n' > go.mod; "
        'printf \'package main\\n\\nimport "fmt"\\n\\nfunc main() { fmt.Println("hello from go") }\\n\' > main.go; '
        "go build -o /go/bin/hello . && hello"
    )
    lines = run(docker_client, standin_images["golang"], script).splitlines()
    assert lines[0].startswith("go version go1.")
    assert lines[-1] == "hello from go"
