"""The deploy pipeline end to end: real git repositories, a real Docker Engine, a real SQLite store."""

from __future__ import annotations

import asyncio
import hashlib

import docker
import pytest
from gitutil import commit
from mistkit import (
    IGNORES_SIGTERM_DOCKERFILE,
    busybox_site,
    busybox_spec,
    container_ip,
    deploy_and_wait,
    fetch,
    log_text,
    wait_final,
    wait_retired,
)

from mist_core.errors import InvalidInput
from mist_core.models import AppChanges, DeploymentState, HealthCheck

pytestmark = pytest.mark.docker


def inspect(name: str) -> dict:
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        return client.containers.get(name).attrs
    finally:
        client.close()


def running_app_containers(project: str, app: str) -> list[str]:
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        found = client.containers.list(
            filters={"label": [f"dev.mist.project={project}", f"dev.mist.app={app}"]}
        )
        return [c.name for c in found]
    finally:
        client.close()


async def test_deploying_a_repository_with_a_dockerfile_serves_it_and_a_second_commit_supersedes_the_first(
    mist, git_repo, project_name
):
    repo = git_repo(busybox_site("version one"))
    await mist.projects.create(project_name)
    await mist.apps.create(f"{project_name}/web", busybox_spec(repo))

    first = await deploy_and_wait(mist, f"{project_name}/web")
    assert first.state == DeploymentState.live, await log_text(mist, first.id)
    assert first.commit_sha and len(first.commit_sha) == 40
    assert first.commit_message == "first commit" or first.commit_message
    assert [s.step.value for s in first.steps] == [
        "fetching",
        "building",
        "starting",
        "checking",
        "switching",
    ]
    assert all(s.finished_at is not None for s in first.steps)
    assert await fetch(first.container_name) == "version one"

    sha2 = commit(repo, {"index.html": "version two"}, "second version")
    second = await deploy_and_wait(mist, f"{project_name}/web")
    assert second.state == DeploymentState.live
    assert second.commit_sha == sha2 and second.commit_message == "second version"
    assert await fetch(second.container_name) == "version two"

    assert (await mist.deployments.get(first.id)).state == DeploymentState.superseded
    await wait_retired(mist, second.id)
    assert running_app_containers(project_name, "web") == [second.container_name]
    app = await mist.apps.get(f"{project_name}/web")
    assert app.status == "live" and app.live_deployment_id == second.id and app.live_commit == sha2


async def test_a_failing_build_and_a_failing_health_check_leave_the_old_version_serving(
    mist, git_repo, project_name
):
    repo = git_repo(busybox_site("good"))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo))
    good = await deploy_and_wait(mist, ref)
    assert good.state == DeploymentState.live

    commit(repo, {"Dockerfile": "FROM mist-test/busybox:1\nRUN exit 3\n"}, "broken build")
    broken = await deploy_and_wait(mist, ref)
    assert broken.state == DeploymentState.failed
    assert "exit" in (broken.error or "").lower() or "fail" in (broken.error or "").lower()
    assert "failed" in await log_text(mist, broken.id)
    assert await fetch(good.container_name) == "good"

    # Builds fine, but nothing answers on the port the health check asks.
    commit(
        repo,
        busybox_site("unhealthy", 'FROM mist-test/busybox:1\nCOPY index.html /www/\nCMD ["sleep", "300"]\n'),
        "no server",
    )
    await mist.apps.update(
        ref, AppChanges(health=HealthCheck(type="http", path="/", interval=0.1, retries=5))
    )
    unhealthy = await deploy_and_wait(mist, ref)
    assert unhealthy.state == DeploymentState.failed
    assert "health" in await log_text(mist, unhealthy.id)
    assert running_app_containers(project_name, "web") == [good.container_name]
    assert await fetch(good.container_name) == "good"
    app = await mist.apps.get(ref)
    assert app.status == "live" and app.live_deployment_id == good.id


async def test_env_vars_reach_the_container_and_the_build_and_secrets_never_appear_in_logs(
    mist, git_repo, project_name
):
    dockerfile = (
        "FROM mist-test/busybox:1\n"
        "ARG GREETING\n"
        "RUN --mount=type=secret,id=BUILD_TOKEN md5sum < /run/secrets/BUILD_TOKEN > /www/secret.md5 "
        '&& echo "greeting is $GREETING" > /www/build.txt\n'
        "COPY index.html /www/index.html\n"
        'CMD ["sh", "-c", "echo runtime=$RUNTIME_TOKEN:$MODE > /www/env.txt; '
        "echo token $RUNTIME_TOKEN; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait\"]\n"
    )
    repo = git_repo(busybox_site("env", dockerfile))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo))
    await mist.env.set(ref, "MODE", "production")
    await mist.env.set(ref, "RUNTIME_TOKEN", "run-s3cret-17", secret=True)
    await mist.env.set(ref, "GREETING", "hello", build=True)
    await mist.env.set(ref, "BUILD_TOKEN", "build-s3cret-42", secret=True, build=True)

    listed = {v.key: v for v in await mist.env.list(ref)}
    assert listed["RUNTIME_TOKEN"].value is None and listed["BUILD_TOKEN"].value is None
    assert listed["MODE"].value == "production"
    assert "run-s3cret-17" not in await mist.env.export_dotenv(ref)

    dep = await deploy_and_wait(mist, ref)
    log = await log_text(mist, dep.id)
    assert dep.state == DeploymentState.live, log
    assert await fetch(dep.container_name, path="/env.txt") == "runtime=run-s3cret-17:production\n"
    assert await fetch(dep.container_name, path="/build.txt") == "greeting is hello\n"
    expected_md5 = hashlib.md5(b"build-s3cret-42").hexdigest()
    assert (await fetch(dep.container_name, path="/secret.md5")).split()[0] == expected_md5
    assert "run-s3cret-17" not in log and "build-s3cret-42" not in log

    container_log = "\n".join([line.text async for line in mist.apps.logs(ref, tail=50)])
    assert "token run-s3cret-17" in container_log  # the app's own output is the app's business

    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    history = str(client.api.history(dep.image))
    image_config = str(client.images.get(dep.image).attrs)
    client.close()
    assert "build-s3cret-42" not in history and "build-s3cret-42" not in image_config

    raw_db = (mist.core.config.db_path).read_bytes()
    assert b"run-s3cret-17" not in raw_db and b"build-s3cret-42" not in raw_db


async def test_resource_limits_restart_policy_volumes_and_ports_are_what_docker_inspect_shows(
    mist, git_repo, project_name, unused_tcp_port
):
    repo = git_repo(busybox_site("limits"))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    spec = busybox_spec(
        repo,
        memory=64 * 1024 * 1024,
        cpus=0.5,
        restart="on-failure:4",
        publish=[f"127.0.0.1:{unused_tcp_port}:8080"],
        volumes=[{"name": f"{project_name}-data", "path": "/data"}],
    )
    await mist.apps.create(ref, spec)
    dep = await deploy_and_wait(mist, ref)
    assert dep.state == DeploymentState.live, await log_text(mist, dep.id)
    host = inspect(dep.container_name)["HostConfig"]
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 4}
    assert host["PortBindings"]["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(unused_tcp_port)}]
    mounts = inspect(dep.container_name)["Mounts"]
    uid = inspect(dep.container_name)["Config"]["Labels"]["dev.mist.project-uid"]
    volume = f"mist_{uid}_{project_name}-data"
    assert [(m["Name"], m["Destination"]) for m in mounts] == [(volume, "/data")]

    import httpx

    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{unused_tcp_port}/")).text == "limits"

    # A host port cannot be shared: the second deployment stops the first before starting, and says so.
    again = await deploy_and_wait(mist, ref)
    assert again.state == DeploymentState.live
    assert "Zero-downtime switch is not possible" in await log_text(mist, again.id)
    await mist.apps.delete(ref)
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    client.volumes.get(volume).remove(force=True)
    client.close()


async def test_twenty_concurrent_deploys_over_four_apps_end_final_with_one_live_container_each(
    mist, git_repo, project_name
):
    repo = git_repo(busybox_site("busy"))
    await mist.projects.create(project_name)
    refs = [f"{project_name}/app{i}" for i in range(4)]
    for ref in refs:
        await mist.apps.create(ref, busybox_spec(repo))

    deployments = await asyncio.gather(*(mist.apps.deploy(refs[i % 4]) for i in range(20)))
    finals = [await wait_final(mist, d.id, timeout=300) for d in deployments]
    assert all(d.state.is_final for d in finals)
    for d in finals:  # each previous container goes once its replacement is live
        await wait_retired(mist, d.id)
    for i, ref in enumerate(refs):
        app = await mist.apps.get(ref)
        assert app.status == "live", ref
        assert running_app_containers(project_name, f"app{i}") == [app.container_name]
        live = [
            d for d in finals if d.app == f"app{i}" and (await mist.deployments.get(d.id)).state == "live"
        ]
        assert len(live) == 1
    # A deploy asked while another of the same app waited in the queue replaced it.
    assert any(d.state == DeploymentState.cancelled and "replaced" in (d.error or "") for d in finals)


async def test_cancelling_a_deployment_removes_what_it_made(mist, git_repo, project_name):
    dockerfile = "FROM mist-test/busybox:1\nRUN sleep 30\nCOPY index.html /www/\n"
    repo = git_repo(busybox_site("slow", dockerfile))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo))
    dep = await mist.apps.deploy(ref)
    async with asyncio.timeout(60):
        while (await mist.deployments.get(dep.id)).state != DeploymentState.building:
            await asyncio.sleep(0.1)
    cancelled = await mist.deployments.cancel(dep.id)
    assert cancelled.state == DeploymentState.cancelled
    assert running_app_containers(project_name, "web") == []
    assert (await mist.apps.get(ref)).status in ("new", "failed")


async def test_bad_inputs_are_refused_before_anything_runs(mist, git_repo, project_name, tmp_path):
    await mist.projects.create(project_name)
    repo = git_repo(busybox_site("x"))
    canary = tmp_path / "canary"
    for bad in [
        f"--upload-pack=touch {canary}",
        f"file://{repo};touch {canary}",
        "/etc",
        "ext::sh -c touch% /tmp/x",
    ]:
        with pytest.raises(InvalidInput) as err:
            await mist.apps.create(f"{project_name}/bad", busybox_spec(repo, git_url=bad))
        assert err.value.field and "git_url" in err.value.field
    await mist.apps.create(f"{project_name}/web", busybox_spec(repo))
    for ref in ["--output=/tmp/x", "main;touch x", "a..b", "$(touch x)"]:
        with pytest.raises(InvalidInput):
            await mist.apps.deploy(f"{project_name}/web", ref=ref)
    with pytest.raises(InvalidInput):
        await mist.apps.update(f"{project_name}/web", AppChanges(dockerfile="../../etc/passwd"))
    with pytest.raises(InvalidInput):
        await mist.apps.update(f"{project_name}/web", AppChanges(publish=["127.0.0.1:99999:80"]))
    assert not canary.exists()
    assert (await mist.deployments.list(f"{project_name}/web")).total == 0


async def test_a_repository_that_cannot_be_cloned_fails_the_deployment_with_the_reason(
    mist, tmp_path, project_name
):
    missing = tmp_path / "nothing-here"
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(missing))
    dep = await deploy_and_wait(mist, ref)
    assert dep.state == DeploymentState.failed
    assert dep.error
    assert (await mist.apps.get(ref)).status == "failed"


async def test_stop_start_and_restart_act_on_the_live_container(mist, git_repo, project_name):
    repo = git_repo(busybox_site("up"))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo))
    dep = await deploy_and_wait(mist, ref)
    assert (await mist.apps.stop(ref)).status == "stopped"
    assert inspect(dep.container_name)["State"]["Running"] is False
    assert (await mist.apps.start(ref)).status == "live"
    assert inspect(dep.container_name)["State"]["Running"] is True
    assert container_ip(dep.container_name)
    await mist.apps.restart(ref)
    assert await fetch(dep.container_name) == "up"


async def test_deleting_an_app_removes_its_containers_and_images(mist, git_repo, project_name):
    repo = git_repo(busybox_site("bye"))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo))
    dep = await deploy_and_wait(mist, ref)
    await mist.apps.delete(ref)
    assert running_app_containers(project_name, "web") == []
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        assert not client.images.list(filters={"label": f"dev.mist.project={project_name}"})
    finally:
        client.close()
    assert dep.image
    await mist.projects.delete(project_name)


async def test_a_taken_host_port_fails_the_deployment_with_the_reason(
    mist, git_repo, project_name, unused_tcp_port
):
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", unused_tcp_port))
    holder.listen()
    try:
        repo = git_repo(busybox_site("port"))
        ref = f"{project_name}/web"
        await mist.projects.create(project_name)
        await mist.apps.create(ref, busybox_spec(repo, publish=[f"127.0.0.1:{unused_tcp_port}:8080"]))
        dep = await deploy_and_wait(mist, ref)
        assert dep.state == DeploymentState.failed
        assert f"127.0.0.1:{unused_tcp_port}" in (dep.error or "") and "in use" in (dep.error or "")
        assert running_app_containers(project_name, "web") == []
    finally:
        holder.close()


async def test_an_engine_that_does_not_answer_is_retried_with_backoff_then_fails(
    tmp_path, git_repo, project_name
):
    from mistkit import PASSWORD

    from mist_core.local import open_embedded

    repo = git_repo(busybox_site("nowhere"))
    mist = await open_embedded(
        tmp_path / "data", git_roots=[tmp_path], docker_host=f"unix://{tmp_path}/no.sock"
    )
    try:
        await mist.auth.setup("admin", PASSWORD)
        await mist.settings.set("deploy_attempts", "2")
        await mist.projects.create(project_name)
        await mist.apps.create(f"{project_name}/web", busybox_spec(repo))
        dep = await wait_final(mist, (await mist.apps.deploy(f"{project_name}/web")).id, timeout=60)
        log = await log_text(mist, dep.id)
        assert dep.state == DeploymentState.failed
        assert "retrying in 2 s (attempt 2 of 2)" in log
        assert "does not answer" in (dep.error or "") or "Docker" in (dep.error or "")
        assert (await mist.apps.get(f"{project_name}/web")).status == "failed"
    finally:
        await mist.close()


async def test_rolling_back_serves_the_previous_content_and_marks_the_replaced_deployment_rolled_back(
    mist, git_repo, project_name
):
    from mist_core.errors import Conflict

    repo = git_repo(busybox_site("first"))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo))
    with pytest.raises(Conflict, match="no earlier deployment"):
        await mist.apps.rollback(ref)
    first = await deploy_and_wait(mist, ref)
    commit(repo, {"index.html": "second"}, "second")
    second = await deploy_and_wait(mist, ref)
    assert await fetch(second.container_name) == "second"

    back = await wait_final(mist, (await mist.apps.rollback(ref)).id)
    assert back.state == DeploymentState.live, await log_text(mist, back.id)
    assert back.source == "rollback" and back.rollback_of == first.id
    assert back.commit_sha == first.commit_sha and back.image == first.image
    assert [s.step.value for s in back.steps] == ["starting", "checking", "switching"]
    assert await fetch(back.container_name) == "first"
    assert (await mist.deployments.get(second.id)).state == DeploymentState.rolled_back
    with pytest.raises(Conflict, match="live one already"):
        await mist.apps.rollback(ref, to=back.id)

    # An image that was pruned cannot be rolled back to, and the message says what to do instead.
    await mist.settings.set("images_per_app", "1")
    commit(repo, {"index.html": "third"}, "third")
    await deploy_and_wait(mist, ref)
    # Images are pruned just after a deployment goes live, so that it is live as soon as it can be.
    for _ in range(100):
        if not await mist.core.engine.image_exists(second.image):
            break
        await asyncio.sleep(0.1)
    with pytest.raises(Conflict, match="was pruned"):
        await mist.apps.rollback(ref, to=second.id)


async def test_a_container_that_dies_shows_as_crashed_from_docker_events_without_polling(
    mist, git_repo, project_name
):
    repo = git_repo(busybox_site("fragile"))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo, restart="no"))
    dep = await deploy_and_wait(mist, ref)
    events = mist.events.stream()
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        client.containers.get(dep.container_name).kill()
        async with asyncio.timeout(20):
            async for event in events:
                if event.kind == "app" and event.app == "web" and event.state == "crashed":
                    break
        assert (await mist.apps.get(ref)).status == "crashed"
        client.containers.get(dep.container_name).start()
        async with asyncio.timeout(20):
            async for event in events:
                if event.kind == "app" and event.app == "web" and event.state == "live":
                    break
        assert (await mist.apps.get(ref)).status == "live"
    finally:
        await events.aclose()
        client.close()


async def test_a_deployment_is_live_before_the_old_container_that_ignores_sigterm_is_retired(
    mist, git_repo, project_name
):
    """busybox httpd as PID 1 ignores SIGTERM, so stopping it takes the whole grace period: the new
    deployment is live (and the app serves it) while that goes on, and the old container goes afterwards."""
    repo = git_repo(busybox_site("old", IGNORES_SIGTERM_DOCKERFILE))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo))
    first = await deploy_and_wait(mist, ref)
    await mist.settings.set("stop_grace_period", "20")
    commit(repo, {"index.html": "new"}, "new")

    second = await deploy_and_wait(mist, ref)

    assert second.state == DeploymentState.live
    assert second.retiring == first.container_name
    assert (await mist.apps.get(ref)).status == "live"
    assert inspect(first.container_name)["State"]["Running"]  # still inside its grace period
    assert await fetch(second.container_name) == "new"
    assert "retiring the previous container" in await log_text(mist, second.id)

    await wait_retired(mist, second.id)
    assert running_app_containers(project_name, "web") == [second.container_name]
    log = await log_text(mist, second.id)
    assert f"stopping the previous container {first.container_name}" in log
    assert f"removed the previous container {first.container_name}" in log


async def test_an_old_container_that_cannot_be_restarted_after_a_failed_switch_marks_the_app_down(
    mist, git_repo, project_name, unused_tcp_port, caplog
):
    """Stop-then-start (a published host port) stops the old container first; when the new one fails its
    health check and the old one cannot be started again (removed behind Mist's back), the app says it is
    down and why, in its status, the deployment's log and the daemon's log."""
    repo = git_repo(busybox_site("good"))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo, publish=[f"127.0.0.1:{unused_tcp_port}:8080"]))
    good = await deploy_and_wait(mist, ref)
    assert good.state == DeploymentState.live
    commit(
        repo,
        busybox_site("hangs", 'FROM mist-test/busybox:1\nCOPY index.html /www/\nCMD ["sleep", "300"]\n'),
        "no server",
    )
    await mist.apps.update(
        ref, AppChanges(health=HealthCheck(type="http", path="/", interval=0.2, retries=40))
    )
    broken = await mist.apps.deploy(ref)
    async with asyncio.timeout(120):
        while (await mist.deployments.get(broken.id)).state != DeploymentState.checking:
            await asyncio.sleep(0.05)
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        assert client.containers.get(good.container_name).status == "exited"  # stopped to free the port
        client.containers.get(good.container_name).remove(force=True)
    finally:
        client.close()

    with caplog.at_level("WARNING", logger="mist.core"):
        failed = await wait_final(mist, broken.id)

    assert failed.state == DeploymentState.failed
    app = await mist.apps.get(ref)
    assert app.status == "crashed"
    assert app.status_reason and good.container_name in app.status_reason
    assert "could not be started again" in app.status_reason
    assert "could not be started again" in await log_text(mist, broken.id)
    assert any("could not be started again" in r.getMessage() for r in caplog.records)


async def test_a_master_key_rotation_while_a_deployment_builds_does_not_fail_it(mist, git_repo, project_name):
    """The deployment read its config snapshot (secrets sealed under the old key) before the rotation; it
    opens them after, and reads the snapshot again when the old key is gone."""
    dockerfile = (
        "FROM mist-test/busybox:1\n"
        f"RUN echo {project_name} && sleep 3\n"
        "COPY index.html /www/index.html\n"
        'CMD ["sh", "-c", "echo $API_KEY > /www/key.txt; trap \'exit 0\' TERM; httpd -f -p 8080 -h /www & wait"]\n'
    )
    repo = git_repo(busybox_site("rotating", dockerfile))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo))
    await mist.env.set(ref, "API_KEY", "k3y-before-rotation", secret=True)
    dep = await mist.apps.deploy(ref)
    async with asyncio.timeout(60):
        while (await mist.deployments.get(dep.id)).state != DeploymentState.building:
            await asyncio.sleep(0.05)
    await mist.secrets.rotate_key()
    done = await wait_final(mist, dep.id)
    log = await log_text(mist, dep.id)
    assert done.state == DeploymentState.live, log
    assert "the master key was rotated while this deployment ran: read its config snapshot again" in log
    assert await fetch(done.container_name, path="/key.txt") == "k3y-before-rotation\n"
