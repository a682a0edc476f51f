"""The proxy status says what Mist checked, not what it assumes: with the Traefik backend, "reachable" only
when the ``mist-proxy`` container runs and its entry points accept connections; otherwise what is wrong and
the command that fixes it. And where Mist keeps files on the host is for instance admins only. Against a real
daemon and the real engine."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import docker
import pytest

from .conftest import Daemon, strong_password

# The one `mist-proxy` container of the engine is created here: one xdist worker runs all such tests.
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("mist-proxy")]

PROXY_CONTAINER = "mist-proxy"


def no_proxy_container() -> bool:
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        return not client.containers.list(all=True, filters={"name": f"^/{PROXY_CONTAINER}$"})
    finally:
        client.close()


@pytest.fixture
def proxy_addresses(daemon: Daemon) -> Iterator[tuple[str, str]]:
    """Entry point addresses on 127.0.0.1 ports nothing listens on (the settings are put back after)."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    http, https = (f"127.0.0.1:{port}" for port in ports)
    before = {
        key: daemon.ok("GET", f"/settings/{key}", token=daemon.owner_token)["value"]
        for key in ("proxy_http_address", "proxy_https_address")
    }
    daemon.ok("PUT", "/settings/proxy_http_address", token=daemon.owner_token, json={"value": http})
    daemon.ok("PUT", "/settings/proxy_https_address", token=daemon.owner_token, json={"value": https})
    try:
        yield http, https
    finally:
        for key, value in before.items():
            daemon.ok("PUT", f"/settings/{key}", token=daemon.owner_token, json={"value": value})


@pytest.fixture
def idle_proxy_container(daemon: Daemon, busybox: str) -> Iterator[None]:
    """A running container named like Mist's Traefik, labelled as this daemon's, that listens on nothing."""
    assert no_proxy_container(), f"a container {PROXY_CONTAINER} exists already: remove it to run this test"
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    container = client.containers.run(
        busybox,
        ["sleep", "600"],
        name=PROXY_CONTAINER,
        labels={"dev.mist.managed": "true", "dev.mist.instance": str(daemon.instance_id)},
        detach=True,
    )
    try:
        yield
    finally:
        container.remove(force=True)
        client.close()


def test_without_traefik_the_status_says_it_is_not_running_and_how_to_start_it(daemon: Daemon) -> None:
    assert daemon.ok("GET", "/settings/proxy_backend", token=daemon.owner_token)["value"] == "traefik"
    assert no_proxy_container(), f"a container {PROXY_CONTAINER} exists: this test needs none"
    status = daemon.ok("GET", "/proxy", token=daemon.owner_token)
    assert status["reachable"] is False
    assert "Traefik is not running" in status["detail"]
    assert "`mist proxy install`" in status["detail"]


def test_a_traefik_container_whose_entry_points_do_not_answer_is_not_reachable(
    daemon: Daemon, proxy_addresses: tuple[str, str], idle_proxy_container: None
) -> None:
    http, _ = proxy_addresses
    status = daemon.ok("GET", "/proxy", token=daemon.owner_token)
    assert status["reachable"] is False
    assert f"Traefik is not answering on {http}" in status["detail"]


def test_a_running_traefik_container_with_answering_entry_points_is_reachable(
    daemon: Daemon, proxy_addresses: tuple[str, str], idle_proxy_container: None
) -> None:
    listeners = []
    try:
        for address in proxy_addresses:
            host, _, port = address.rpartition(":")
            listener = socket.create_server((host, int(port)))
            listeners.append(listener)
        status = daemon.ok("GET", "/proxy", token=daemon.owner_token)
    finally:
        for listener in listeners:
            listener.close()
    assert status["reachable"] is True, status["detail"]
    assert status["detail"].startswith(
        f"Traefik runs and answers on {proxy_addresses[0]} and {proxy_addresses[1]}"
    )


def test_a_viewer_sees_the_proxy_status_without_host_paths(daemon: Daemon) -> None:
    name, password = "viewer" + uuid.uuid4().hex[:8], strong_password()
    daemon.create_user(name, "viewer", password)
    viewer = daemon.login(name, password)["token"]
    seen = daemon.ok("GET", "/proxy", token=viewer)
    assert str(daemon.data) not in seen["detail"] and "/proxy/traefik" not in seen["detail"], seen["detail"]
    assert seen["reachable"] is False and "not running" in seen["detail"]
    # An instance admin is told where the routes are written.
    admin = daemon.ok("GET", "/proxy", token=daemon.owner_token)
    assert f"routes written to {daemon.data / 'proxy' / 'traefik' / 'dynamic'}" in admin["detail"]
