"""A Redis database takes its password in its command line (``--requirepass``), where Docker keeps it: nothing
Mist shows of the database's container (``ps``, the database, its logs, the metrics, the audit log, a refused
describe or user call, what changing it answers) nor the daemon's own log carries that command line, its
environment or the password."""

from __future__ import annotations

import uuid

import docker
import pytest
from images import redis_image

from .conftest import Daemon, describe

pytestmark = pytest.mark.docker


def test_nothing_mist_shows_of_a_redis_database_holds_its_password(daemon: Daemon) -> None:
    d, owner = daemon, daemon.owner_token
    redis_image()
    project = f"dbleak-{uuid.uuid4().hex[:8]}"
    d.ok("POST", "/projects", token=owner, json={"name": project})
    db = f"/projects/{project}/databases/cache"
    made = d.ok(
        "POST", f"/projects/{project}/databases", token=owner, json={"name": "cache", "engine": "redis"}
    )
    url = d.ok("GET", db + "/url", token=owner)
    password = url.split(":")[2].split("@")[0]
    assert len(password) >= 32
    # The plant: Docker does hold it, in the container's command line and in redis-cli's environment.
    info = docker.from_env().api.inspect_container(made["container_name"])
    assert password in info["Args"] and f"REDISCLI_AUTH={password}" in info["Config"]["Env"]

    d.ok("PATCH", db, token=owner, json={"restart": "always"})  # the container made again, with the password
    answers = {
        "ps": d.call("GET", "/containers", token=owner, params={"all": "true"}),
        "databases": d.call("GET", "/databases", token=owner),
        "database": d.call("GET", db, token=owner),
        "logs": d.call("GET", db + "/logs", token=owner, params={"tail": "all"}),
        "metrics": d.call("GET", "/metrics", token=owner),
        "audit": d.call("GET", "/audit", token=owner, params={"project": project}),
        "describe": d.call("GET", f"/projects/{project}/apps/cache/container", token=owner),
        "users": d.call("GET", db + "/users", token=owner),
        "update": d.call("PATCH", db, token=owner, json={"memory": "96m"}),
        "upgrade": d.call("POST", db + "/upgrade", token=owner, json={"version": "7"}),
    }
    assert answers["describe"].status_code == 404, describe(answers["describe"])
    assert answers["users"].status_code == 422 and answers["upgrade"].status_code == 422
    assert answers["update"].status_code == 200, describe(answers["update"])
    for what, response in answers.items():
        assert password not in response.text, f"{what} shows the password"
        assert "requirepass" not in response.text and "REDISCLI_AUTH" not in response.text, what
    mine = [c for c in answers["ps"].json() if c["name"] == made["container_name"]]
    assert [(c["project"], c["app"], c["database"]) for c in mine] == [(project, None, "cache")]
    log = d.log_text()
    assert password not in log and "requirepass" not in log
    d.ok("DELETE", db, token=owner)
