"""Rows to models: the SELECTs that read projects, apps and deployments, and the functions that turn their
rows into the API's pydantic models. Shared by the API layer and the deploy pipeline."""

from __future__ import annotations

import json

from pydantic import TypeAdapter

from ..models import App, AppSpec, Deployment, Project, StepTiming
from . import Row, parse_ts

PROJECT_SELECT = """
SELECT p.id, p.name, p.description, p.tags, p.created_at, p.updated_at,
       COALESCE(u.username, '') AS owner,
       (SELECT COUNT(*) FROM apps a WHERE a.project_id = p.id) AS app_count,
       (SELECT json_group_array(mu.username) FROM project_members m JOIN users mu ON mu.id = m.user_id
         WHERE m.project_id = p.id) AS members
FROM projects p LEFT JOIN users u ON u.id = p.owner_id
"""

APP_SELECT = """
SELECT a.id, a.name, a.spec, a.status, a.live_deployment_id, a.created_at, a.updated_at,
       p.name AS project, d.commit_sha AS live_commit, d.finished_at AS live_since,
       d.container_name AS container_name, d.image AS image,
       json_extract(d.config, '$.docker_volumes') AS docker_volumes,
       json_extract(d.config, '$.down_reason') AS status_reason,
       COALESCE(json_extract(d.config, '$.restart_count'), 0) AS restart_count,
       ld.id AS latest_deployment_id, ld.state AS latest_deployment_state,
       (SELECT json_group_array(x.name) FROM (SELECT name FROM domains WHERE app_id = a.id ORDER BY name) x) AS domains
FROM apps a JOIN projects p ON p.id = a.project_id
LEFT JOIN deployments d ON d.id = a.live_deployment_id
LEFT JOIN deployments ld ON ld.id = (SELECT MAX(x.id) FROM deployments x WHERE x.app_id = a.id)
"""

# The same columns as APP_SELECT, but each row is one App as a JSON object (the spec column is JSON already):
# a page of apps is then validated in one pydantic call instead of one model per row and one per spec, which
# is most of the cost of listing apps.
APP_JSON_COLUMNS = """
json_object(
    'id', a.id, 'project', p.name, 'name', a.name, 'spec', json(a.spec), 'status', a.status,
    'live_deployment_id', a.live_deployment_id, 'live_commit', d.commit_sha, 'live_since', d.finished_at,
    'container_name', d.container_name, 'image', d.image, 'created_at', a.created_at, 'updated_at', a.updated_at,
    'docker_volumes', json(COALESCE(json_extract(d.config, '$.docker_volumes'), '{}')),
    'status_reason', json_extract(d.config, '$.down_reason'),
    'restart_count', COALESCE(json_extract(d.config, '$.restart_count'), 0),
    'latest_deployment_id', ld.id, 'latest_deployment_state', ld.state,
    'domains', json((SELECT json_group_array(x.name) FROM (SELECT name FROM domains WHERE app_id = a.id ORDER BY name) x))
) AS app_json
"""
# ``ld``: the app's newest deployment (the index on deployments (app_id, id) finds it).
APP_FROM = """
FROM apps a JOIN projects p ON p.id = a.project_id
LEFT JOIN deployments d ON d.id = a.live_deployment_id
LEFT JOIN deployments ld ON ld.id = (SELECT MAX(x.id) FROM deployments x WHERE x.app_id = a.id)
"""

DEPLOYMENT_SELECT = """
SELECT d.*, a.name AS app, p.name AS project
FROM deployments d JOIN apps a ON a.id = d.app_id JOIN projects p ON p.id = a.project_id
"""


def project(row: Row) -> Project:
    return Project(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        tags=json.loads(row["tags"]),
        owner=row["owner"],
        members=[m for m in json.loads(row["members"] or "[]") if m],
        app_count=row["app_count"],
        created_at=parse_ts(row["created_at"]),  # type: ignore[arg-type]
        updated_at=parse_ts(row["updated_at"]),  # type: ignore[arg-type]
    )


def app(row: Row) -> App:
    return App(
        id=row["id"],
        project=row["project"],
        name=row["name"],
        spec=AppSpec.model_validate_json(row["spec"]),
        status=row["status"],
        live_deployment_id=row["live_deployment_id"],
        live_commit=row["live_commit"],
        live_since=parse_ts(row["live_since"]),
        container_name=row["container_name"],
        image=row["image"],
        docker_volumes=json.loads(row["docker_volumes"] or "{}"),
        status_reason=row["status_reason"],
        restart_count=row["restart_count"],
        latest_deployment_id=row["latest_deployment_id"],
        latest_deployment_state=row["latest_deployment_state"],
        domains=json.loads(row["domains"] or "[]"),
        created_at=parse_ts(row["created_at"]),  # type: ignore[arg-type]
        updated_at=parse_ts(row["updated_at"]),  # type: ignore[arg-type]
    )


_APP_LIST = TypeAdapter(list[App])


def apps_from_json(objects: list[str]) -> list[App]:
    """Apps from ``APP_JSON_COLUMNS`` values, in their order: one validation for the whole list."""
    if not objects:
        return []
    return _APP_LIST.validate_json("[" + ",".join(objects) + "]")


def deployment(row: Row) -> Deployment:
    return Deployment(
        id=row["id"],
        app_id=row["app_id"],
        project=row["project"],
        app=row["app"],
        state=row["state"],
        ref=row["ref"],
        commit_sha=row["commit_sha"],
        commit_message=row["commit_message"],
        commit_author=row["commit_author"],
        image=row["image"],
        container_name=row["container_name"],
        error=row["error"],
        source=row["source"],
        rollback_of=row["rollback_of"],
        triggered_by=row["triggered_by"],
        steps=[StepTiming.model_validate(s) for s in json.loads(row["steps"])],
        retiring=json.loads(row["config"]).get("retiring") if "config" in row.keys() else None,
        created_at=parse_ts(row["created_at"]),  # type: ignore[arg-type]
        finished_at=parse_ts(row["finished_at"]),
    )
