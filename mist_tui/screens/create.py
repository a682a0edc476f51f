"""Creating, renaming and deleting from the panel: the "New project" and "New app" forms (an error from the
core appears next to the field it names) and the project confirmations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mist_core.errors import InvalidInput
from mist_core.models import App, AppSpec, HealthCheck, Project, ProjectChanges

from .dialogs import ConfirmDialog, FormDialog, FormField, PromptDialog

if TYPE_CHECKING:
    from ..app import MistApp

# The core names AppSpec fields (and ``health.path``); the form's inputs are named after them.
FIELD_ALIASES = {
    "health.path": "health_path",
    "health": "health_path",
    "app": "name",
    "dockerfile_path": "dockerfile",
}


class AppForm(FormDialog):
    """A form whose errors may name a field by its AppSpec spelling (``health.path``)."""

    def show_error(self, error: Any) -> None:
        if getattr(error, "field", None) in FIELD_ALIASES:
            error.field = FIELD_ALIASES[error.field]
        super().show_error(error)


def split_tags(text: str) -> list[str]:
    return [t for t in (part.strip() for part in text.replace(",", " ").split()) if t]


def new_project(mist: MistApp, done: Any = None) -> None:
    """``n`` on the dashboard: name, description, tags → ``projects.create``."""

    async def submit(values: dict[str, Any]) -> Project:
        assert mist.api is not None
        return await mist.api.projects.create(
            values["name"].strip(), values["description"].strip(), split_tags(values["tags"])
        )

    def created(project: Project | None) -> None:
        if isinstance(project, Project):
            mist.notify(f"Created the project {project.name}. Press c to add an app to it.")
            if done is not None:
                done(project)

    mist.push_screen(
        FormDialog(
            "New project",
            [
                FormField("name", "Name", placeholder="lowercase letters, digits and '-', e.g. shop"),
                FormField("description", "Description (optional)"),
                FormField(
                    "tags", "Tags (optional, separated by spaces or commas)", placeholder="prod, team-a"
                ),
            ],
            submit=submit,
            submit_label="Create project",
        ),
        created,
    )


def app_spec(values: dict[str, Any]) -> AppSpec:
    """The form's strings as an ``AppSpec``; empty optional fields keep the core's defaults."""
    port_text = values["port"].strip()
    if port_text and not port_text.isdigit():
        raise InvalidInput(
            f"port {port_text!r} is not a number: type the port the app listens on, e.g. 8080", field="port"
        )
    health_path = values["health_path"].strip()
    spec: dict[str, Any] = {"git_url": values["git_url"].strip()}
    if values["branch"].strip():
        spec["branch"] = values["branch"].strip()
    if port_text:
        spec["port"] = int(port_text)
    if values["dockerfile"].strip():
        spec["dockerfile"] = values["dockerfile"].strip()
    if health_path:
        spec["health"] = HealthCheck(type="http", path=health_path)
    return AppSpec(**spec)


def new_app(mist: MistApp, project: str | None, done: Any = None) -> None:
    """``c`` on the dashboard: a new app in ``project`` → ``apps.create``."""

    async def submit(values: dict[str, Any]) -> App:
        assert mist.api is not None
        spec = app_spec(values)
        ref = f"{values['project'].strip()}/{values['name'].strip()}"
        return await mist.api.apps.create(ref, spec)

    def created(app: App | None) -> None:
        if isinstance(app, App):
            mist.notify(f"Created {app.ref}. Press D to deploy it.")
            if done is not None:
                done(app)

    mist.push_screen(
        AppForm(
            "New app" + (f" in {project}" if project else ""),
            [
                FormField("project", "Project", project or "", placeholder="an existing project"),
                FormField("name", "Name", placeholder="lowercase letters, digits and '-', e.g. web"),
                FormField(
                    "git_url", "Git URL", placeholder="https://git.example.com/team/web.git or a local path"
                ),
                FormField("branch", "Branch (optional)", placeholder="main"),
                FormField("port", "Port the app listens on (optional)", placeholder="8080"),
                FormField("health_path", "Health check path (optional)", placeholder="/healthz"),
                FormField(
                    "dockerfile", "Dockerfile (optional)", placeholder="Dockerfile, or empty to detect"
                ),
            ],
            submit=submit,
            submit_label="Create app",
        ),
        created,
    )


def rename_project(mist: MistApp, project: str, done: Any = None) -> None:
    async def submit(new_name: str) -> None:
        assert mist.api is not None
        await mist.api.projects.update(project, ProjectChanges(name=new_name.strip()))

    def renamed(new_name: str | None) -> None:
        if new_name:
            mist.notify(f"Renamed the project {project} to {new_name.strip()}.")
            if done is not None:
                done(new_name.strip())

    mist.push_screen(
        PromptDialog(
            f"Rename {project}",
            label="New name",
            value=project,
            submit=submit,
            submit_label="Rename",
            note="Its apps keep running; their names change to the new project's.",
        ),
        renamed,
    )


def delete_project(mist: MistApp, project: str, done: Any = None) -> None:
    """Asks first, naming the project. The core refuses a project that still has apps and says why: that
    message is shown as it is."""

    def confirmed(yes: bool | None) -> None:
        if yes:
            _delete(mist, project, done)

    mist.push_screen(
        ConfirmDialog(
            f"Delete project {project}",
            f"Delete the project {project}? Only an empty project can be deleted: delete its apps first.",
            confirm_label=f"Delete {project}",
        ),
        confirmed,
    )


def _delete(mist: MistApp, project: str, done: Any) -> None:
    async def run() -> None:
        assert mist.api is not None
        try:
            await mist.api.projects.delete(project)
        except Exception as error:  # noqa: BLE001 - shown in the one place errors are shown
            mist.show_error(error)
            return
        mist.notify(f"Deleted the project {project}.")
        if done is not None:
            done(project)

    mist.run_worker(run(), group="project-delete", exit_on_error=False)
