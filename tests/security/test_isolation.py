"""Projects are kept apart on the Docker Engine: an app of one project can neither read another project's
volumes (whatever their names) nor reach another project's containers (by address or by alias), while the
apps of one project reach each other by ``<app>.<project>``. Tried as an attacker would, against a real
daemon and the real engine: the attacker is a developer of project B who deploys their own app and runs
commands in it."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from gitutil import init_repo
from mistkit import busybox_site

from .conftest import Daemon

pytestmark = pytest.mark.docker

DEPLOY_DEADLINE = 180.0
FINAL = {"live", "failed", "cancelled", "superseded", "rolled_back"}
MIST = Path(sys.executable).parent / "mist"


def deploy(d: Daemon, project: str, app: str) -> dict[str, Any]:
    """Deploy and wait for the deployment's final state; the deployment as the API shows it."""
    started = d.ok("POST", f"/projects/{project}/apps/{app}/deploy", token=d.owner_token, json={})
    deadline = time.monotonic() + DEPLOY_DEADLINE
    while time.monotonic() < deadline:
        dep = d.ok("GET", f"/deployments/{started['id']}", token=d.owner_token)
        if dep["state"] in FINAL:
            return dep  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"deployment {started['id']} of {project}/{app} did not end")


def create_app(d: Daemon, project: str, app: str, text: str, volumes: list[dict[str, str]]) -> None:
    repo = init_repo(d.repos / f"{project}-{app}", busybox_site(text))
    body = {
        "name": app,
        "git_url": str(repo),
        "port": 8080,
        "health": {"type": "http", "path": "/", "interval": 0.2, "retries": 25},
        "volumes": volumes,
    }
    d.ok("POST", f"/projects/{project}/apps", token=d.owner_token, json=body)


def run_in(container: Any, command: str) -> tuple[int, str]:
    """Run ``sh -c command`` in a container, as the app's own code could."""
    code, output = container.exec_run(["sh", "-c", command])
    return code, output.decode(errors="replace")


def read_file(container: Any, path: str) -> bytes:
    """A file's bytes as the engine reads them from the container's filesystem (no process in it: an exec's
    output can come back empty on a loaded engine when the process ends at once)."""
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.extractfile(archive.getmembers()[0])
        assert member is not None, f"{path} is not a file"
        return member.read()


def resolve(container: Any, name: str) -> str | None:
    """The address ``name`` resolves to inside a container (Docker's DNS), or None. Busybox's own resolver:
    the static busybox's wget and nc crash on names."""
    _, output = run_in(container, f"nslookup {name}")
    answer = output.partition("Name:")[2]
    addresses = [line.split()[-1] for line in answer.splitlines() if line.startswith("Address")]
    return addresses[0] if addresses else None


def http_get(container: Any, address: str) -> tuple[int, str]:
    """``GET /`` on port 8080 of ``address`` from inside a container: nc's exit code and the answer."""
    return run_in(container, f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} 8080")


def project_uid(d: Daemon, project: str) -> str:
    """The project's uid, read from the daemon's database."""
    with sqlite3.connect(f"file:{d.data / 'mist.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT uid FROM projects WHERE name = ?", (project,)).fetchone()
    assert row is not None and row[0], f"project {project} has no uid"
    return str(row[0])


@dataclass
class Scene:
    """Project A with two apps (``web`` mounts volume ``shared``, ``peer`` does not) and project B with one
    (``web``, also with a volume ``shared``), all deployed."""

    a: str
    b: str
    volume: str
    containers: dict[str, Any]  # "a/web", "a/peer", "b/web" -> docker-py container
    ips: dict[str, str]  # the same keys -> the container's address


@pytest.fixture(scope="module")
def scene(daemon: Daemon, busybox: str) -> Iterator[Scene]:
    suffix = uuid.uuid4().hex[:8]
    a, b, volume = f"isoa{suffix}", f"isob{suffix}", f"shared-{suffix}"
    for project in (a, b):
        d_project = daemon.ok("POST", "/projects", token=daemon.owner_token, json={"name": project})
        assert d_project["name"] == project
    shared = [{"name": volume, "path": "/data"}]
    create_app(daemon, a, "web", "project a", shared)
    create_app(daemon, a, "peer", "a's peer", [])
    create_app(daemon, b, "web", "project b", shared)
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        containers, ips = {}, {}
        for project, app in ((a, "web"), (a, "peer"), (b, "web")):
            dep = deploy(daemon, project, app)
            assert dep["state"] == "live", dep
            container = client.containers.get(dep["container_name"])
            key = f"{'a' if project == a else 'b'}/{app}"
            containers[key] = container
            ips[key] = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
        yield Scene(a=a, b=b, volume=volume, containers=containers, ips=ips)
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------- volumes


def test_an_app_of_another_project_does_not_see_what_is_written_to_a_volume_of_the_same_name(
    daemon: Daemon, scene: Scene
) -> None:
    code, _ = run_in(scene.containers["a/web"], "echo the secret of project a > /data/secret.txt")
    assert code == 0
    code, listing = run_in(scene.containers["b/web"], "ls -A /data")
    assert (code, listing) == (0, ""), f"project b sees project a's files: {listing!r}"
    # B writes under the same file name: A's file is not touched either.
    assert run_in(scene.containers["b/web"], "echo written by b > /data/secret.txt")[0] == 0
    assert read_file(scene.containers["a/web"], "/data/secret.txt") == b"the secret of project a\n"
    assert read_file(scene.containers["b/web"], "/data/secret.txt") == b"written by b\n"


def test_volumes_are_named_and_labelled_per_project_and_shown_with_their_docker_names(
    daemon: Daemon, scene: Scene
) -> None:
    uids = {project: project_uid(daemon, project) for project in (scene.a, scene.b)}
    mounted = {
        key: [(m["Name"], m["Destination"]) for m in container.attrs["Mounts"] if m["Type"] == "volume"]
        for key, container in scene.containers.items()
    }
    assert mounted["a/web"] == [(f"mist_{uids[scene.a]}_{scene.volume}", "/data")]
    assert mounted["b/web"] == [(f"mist_{uids[scene.b]}_{scene.volume}", "/data")]
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        labels = client.volumes.get(f"mist_{uids[scene.a]}_{scene.volume}").attrs["Labels"]
    finally:
        client.close()
    assert labels == {
        "dev.mist.managed": "true",
        "dev.mist.instance": daemon.instance_id,
        "dev.mist.project": scene.a,
        "dev.mist.project-uid": uids[scene.a],
        "dev.mist.app": "web",
        "dev.mist.volume": scene.volume,
    }

    app = daemon.ok("GET", f"/projects/{scene.a}/apps/web", token=daemon.owner_token)
    assert app["docker_volumes"] == {scene.volume: f"mist_{uids[scene.a]}_{scene.volume}"}
    shown = subprocess.run(
        [str(MIST), "--host", f"unix://{daemon.sock}", "app", "show", f"{scene.a}/web"],
        capture_output=True,
        text=True,
        env={**os.environ, "MIST_TOKEN": daemon.owner_token, "XDG_CONFIG_HOME": str(daemon.root / "cli")},
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"{scene.volume}:/data (Docker volume mist_{uids[scene.a]}_{scene.volume})" in shown.stdout


def test_a_volume_mist_did_not_make_is_never_mounted_even_under_the_name_mist_would_give_it(
    daemon: Daemon, busybox: str
) -> None:
    project = "isoc" + uuid.uuid4().hex[:8]
    daemon.ok("POST", "/projects", token=daemon.owner_token, json={"name": project})
    create_app(daemon, project, "web", "project c", [{"name": "data", "path": "/data"}])
    name = f"mist_{project_uid(daemon, project)}_data"
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        planted = client.volumes.create(name, labels={"dev.mist.test": "planted"})
        try:
            dep = deploy(daemon, project, "web")
            assert dep["state"] == "failed"
            assert (
                name in dep["error"] and "did not make" in dep["error"] and "docker volume rm" in dep["error"]
            )
            users = client.containers.list(all=True, filters={"volume": name})
            assert users == [], f"the planted volume was mounted by {[c.name for c in users]}"
        finally:
            planted.remove(force=True)
    finally:
        client.close()


def test_a_new_project_with_a_deleted_ones_name_gets_none_of_its_data_and_the_old_network_is_gone(
    daemon: Daemon, busybox: str
) -> None:
    project = "isod" + uuid.uuid4().hex[:8]
    daemon.ok("POST", "/projects", token=daemon.owner_token, json={"name": project})
    create_app(daemon, project, "web", "first", [{"name": "data", "path": "/data"}])
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        first = deploy(daemon, project, "web")
        assert first["state"] == "live", first
        run_in(client.containers.get(first["container_name"]), "echo old data > /data/kept.txt")
        old_uid = project_uid(daemon, project)
        daemon.ok("DELETE", f"/projects/{project}/apps/web", token=daemon.owner_token)
        daemon.ok("DELETE", f"/projects/{project}", token=daemon.owner_token)
        assert client.networks.list(names=[f"mist_{old_uid}"]) == []
        # The deleted project's volume is kept for an operator to remove; the audit entry names it.
        assert client.volumes.get(f"mist_{old_uid}_data").name == f"mist_{old_uid}_data"
        audit = daemon.ok("GET", "/audit", token=daemon.owner_token, params={"action": "project.delete"})
        entry = next(e for e in audit["items"] if e["project"] == project)
        assert entry["detail"]["kept_volumes"] == [f"mist_{old_uid}_data"]

        daemon.ok("POST", "/projects", token=daemon.owner_token, json={"name": project})
        create_app(daemon, project, "web2", "second", [{"name": "data", "path": "/data"}])
        second = deploy(daemon, project, "web2")
        assert second["state"] == "live", second
        code, listing = run_in(client.containers.get(second["container_name"]), "ls -A /data")
        assert code == 0 and "kept.txt" not in listing, (
            f"the new project sees the old one's data: {listing!r}"
        )
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------- networks


def test_an_app_cannot_reach_another_projects_app_by_address_or_alias(scene: Scene) -> None:
    attacker = scene.containers["b/web"]
    assert http_get(attacker, scene.ips["b/web"])[1].endswith("project b")  # the attacker's own app answers
    code, output = http_get(attacker, scene.ips["a/web"])
    assert code != 0 and "project a" not in output, f"project b reached project a by address: {output!r}"
    for name in (f"web.{scene.a}", scene.containers["a/web"].name):
        address = resolve(attacker, name)
        assert address is None, f"project b resolves {name} to {address}"


def test_apps_of_one_project_reach_each_other_by_alias(scene: Scene) -> None:
    peer = scene.containers["a/peer"]
    assert resolve(peer, f"web.{scene.a}") == scene.ips["a/web"]
    code, output = http_get(peer, scene.ips["a/web"])
    assert code == 0 and output.startswith("HTTP/1.") and output.endswith("project a"), output


def test_each_project_has_its_own_labelled_network_and_its_apps_are_on_that_one_only(
    daemon: Daemon, scene: Scene
) -> None:
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        for key, project in (("a/web", scene.a), ("a/peer", scene.a), ("b/web", scene.b)):
            uid = project_uid(daemon, project)
            scene.containers[key].reload()
            assert list(scene.containers[key].attrs["NetworkSettings"]["Networks"]) == [f"mist_{uid}"]
            labels = client.networks.get(f"mist_{uid}").attrs["Labels"]
            assert labels == {
                "dev.mist.managed": "true",
                "dev.mist.instance": daemon.instance_id,
                "dev.mist.project": project,
                "dev.mist.project-uid": uid,
            }
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------- the proxy


@pytest.fixture
def proxy_stand_in(daemon: Daemon, busybox: str) -> Iterator[Any]:
    """A running container named and labelled like this daemon's Traefik (``mist-proxy``), so the test sees
    which networks Mist attaches it to and what it can reach from there."""
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    assert not client.containers.list(all=True, filters={"name": "^/mist-proxy$"}), (
        "mist-proxy exists already"
    )
    container = client.containers.run(
        busybox,
        ["sleep", "600"],
        name="mist-proxy",
        labels={"dev.mist.managed": "true", "dev.mist.instance": str(daemon.instance_id)},
        detach=True,
    )
    try:
        yield container
    finally:
        container.remove(force=True)
        client.close()


def test_the_proxy_joins_a_project_network_to_reach_its_apps_and_leaves_it_with_the_project(
    daemon: Daemon, proxy_stand_in: Any
) -> None:
    project = "isoe" + uuid.uuid4().hex[:8]
    daemon.ok("POST", "/projects", token=daemon.owner_token, json={"name": project})
    create_app(daemon, project, "web", "routed", [])
    daemon.ok(
        "POST",
        f"/projects/{project}/apps/web/domains",
        token=daemon.owner_token,
        json={"name": f"{project}.example.com"},
    )
    dep = deploy(daemon, project, "web")
    assert dep["state"] == "live", dep
    network = f"mist_{project_uid(daemon, project)}"
    proxy_stand_in.reload()
    assert network in proxy_stand_in.attrs["NetworkSettings"]["Networks"]
    # Traefik dials the container by name: from the proxy, the name resolves and the app answers.
    address = resolve(proxy_stand_in, dep["container_name"])
    assert address is not None
    assert http_get(proxy_stand_in, address)[1].endswith("routed")

    daemon.ok("DELETE", f"/projects/{project}/apps/web", token=daemon.owner_token)
    daemon.ok("DELETE", f"/projects/{project}", token=daemon.owner_token)
    proxy_stand_in.reload()
    assert network not in proxy_stand_in.attrs["NetworkSettings"]["Networks"]


# ---------------------------------------------------------------------------------------------- upgrades


def test_a_project_from_before_per_project_volumes_keeps_its_own_data_and_never_adopts_anothers(
    daemon: Daemon, busybox: str
) -> None:
    """Before per-project volumes, an app's volume was named by the spec alone and labelled with the project.
    A project that existed then (migration 0006 marks it) keeps mounting such a volume when the labels say it
    was made for it on this instance, so an upgrade loses no data; one labelled for another project is not
    mounted, whatever its name."""
    suffix = uuid.uuid4().hex[:8]
    project, other = f"isof{suffix}", f"isog{suffix}"
    own, foreign = f"own-{suffix}", f"foreign-{suffix}"
    daemon.ok("POST", "/projects", token=daemon.owner_token, json={"name": project})
    with sqlite3.connect(daemon.data / "mist.db", timeout=30) as db:
        db.execute("UPDATE projects SET unscoped_volumes = 1 WHERE name = ?", (project,))
    volumes = [{"name": own, "path": "/own"}, {"name": foreign, "path": "/foreign"}]
    create_app(daemon, project, "web", "old", volumes)
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    made = []
    try:
        for name, owner in ((own, project), (foreign, other)):
            labels = {
                "dev.mist.managed": "true",
                "dev.mist.instance": str(daemon.instance_id),
                "dev.mist.project": owner,
                "dev.mist.app": "web",
            }
            made.append(client.volumes.create(name, labels=labels))
            client.containers.run(
                busybox,
                ["sh", "-c", f"echo {owner} data > /v/data.txt"],
                volumes={name: {"bind": "/v"}},
                remove=True,
            )
        dep = deploy(daemon, project, "web")
        assert dep["state"] == "live", dep
        container = client.containers.get(dep["container_name"])
        mounted = {m["Destination"]: m["Name"] for m in container.attrs["Mounts"]}
        assert mounted == {"/own": own, "/foreign": f"mist_{project_uid(daemon, project)}_{foreign}"}
        assert run_in(container, "cat /own/data.txt") == (0, f"{project} data\n")
        assert run_in(container, "ls -A /foreign") == (0, "")
    finally:
        daemon.call("DELETE", f"/projects/{project}/apps/web", token=daemon.owner_token)
        for volume in made:
            volume.remove(force=True)
        client.close()
