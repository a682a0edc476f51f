"""Creating, renaming and deleting from the panel: the "New project" and "New app" forms (an error from the
core appears next to the field it names) and the project confirmations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on
from textual.widgets import Input, Select

from mist_core.errors import InvalidInput, MistError
from mist_core.models import App, AppSpec, HealthCheck, Project, ProjectChanges, RepoInfo, SourceChanges

from ..format import shown
from ..workers import api_work
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
    """A form whose errors may name a field by its AppSpec spelling (``health.path``). When Mist knows git
    providers, the app's repository can be picked from one of them instead of typing a git URL."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.repos: dict[str, RepoInfo] = {}

    def show_error(self, error: Any) -> None:
        if getattr(error, "field", None) in FIELD_ALIASES:
            error.field = FIELD_ALIASES[error.field]
        super().show_error(error)

    def on_mount(self) -> None:
        if not self.query("#field-provider"):
            return
        for name in ("provider", "repo"):
            self._show_field(name, False)
        self.load_providers()

    def _show_field(self, name: str, shown: bool) -> None:
        for selector in (f"#label-{name}", f"#field-{name}"):
            self.query_one(selector).display = shown
        if not shown:
            self.query_one(f"#error-{name}").remove_class("-shown")

    @api_work(exclusive=True, group="app-form-providers")
    async def load_providers(self) -> None:
        api = self.app.api  # type: ignore[attr-defined]
        providers = await api.git.providers()
        if not providers:
            return  # the form stays as it always was: a git URL
        choices = [("none: the git URL below", "")] + [
            (shown(f"{p.name} ({p.url})"), p.name) for p in providers
        ]
        select = self.query_one("#field-provider", Select)
        select.set_options(choices)
        select.value = ""
        self._show_field("provider", True)

    @on(Select.Changed, "#field-provider")
    def _provider_changed(self, event: Select.Changed) -> None:
        provider = event.value if isinstance(event.value, str) else ""
        self._show_field("git_url", not provider)
        self._show_field("repo", bool(provider))
        if provider:
            self.load_repos(provider)

    @api_work(exclusive=True, group="app-form-repos")
    async def load_repos(self, provider: str) -> None:
        api = self.app.api  # type: ignore[attr-defined]
        select = self.query_one("#field-repo", Select)
        select.set_options([])
        repos = await api.git.repos(provider)
        self.repos = {r.full_name: r for r in repos}
        select.set_options(
            [(shown(r.full_name + (" (private)" if r.private else "")), r.full_name) for r in repos]
        )
        if not repos:
            self.show_error(
                InvalidInput(
                    f"git provider {provider} gives Mist no repository (for a GitHub App: install it on some)",
                    field="repo",
                )
            )

    @on(Select.Changed, "#field-repo")
    def _repo_changed(self, event: Select.Changed) -> None:
        info = self.repos.get(event.value) if isinstance(event.value, str) else None
        if info is not None:
            self.query_one("#field-branch", Input).placeholder = f"{info.default_branch} (the default branch)"


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
        ref = f"{values['project'].strip()}/{values['name'].strip()}"
        provider = values["provider"] if isinstance(values["provider"], str) else ""
        if provider:
            return await create_from_provider(mist, ref, provider, values)
        return await mist.api.apps.create(ref, app_spec(values))

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
                FormField("provider", "Repository from a git provider", "", choices=[("", "")]),
                FormField(
                    "git_url", "Git URL", placeholder="https://git.example.com/team/web.git or a local path"
                ),
                FormField(
                    "repo", "Repository", placeholder="choose one of the provider's repositories", choices=[]
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
            compact=True,
        ),
        created,
    )


async def create_from_provider(mist: MistApp, ref: str, provider: str, values: dict[str, Any]) -> App:
    """Like ``mist app create --provider P --repo R``: the app starts from the repository's clone URL (and
    default branch unless one is given), then is linked to the provider, which fetches with its own
    credentials. An app that cannot be linked is taken back."""
    assert mist.api is not None
    repo = values["repo"] if isinstance(values["repo"], str) else ""
    if not repo:
        raise InvalidInput(f"choose the repository at {provider}", field="repo")
    info = next((r for r in await mist.api.git.repos(provider) if r.full_name == repo), None)
    if info is None:
        raise InvalidInput(
            f"git provider {provider} no longer gives Mist the repository {repo}", field="repo"
        )
    spec = app_spec({**values, "git_url": info.clone_url, "branch": values["branch"] or info.default_branch})
    await mist.api.apps.create(ref, spec)
    try:
        await mist.api.apps.set_source(ref, SourceChanges(provider=provider, repo=info.full_name))
    except MistError:
        try:
            await mist.api.apps.delete(ref)
        except MistError:
            pass
        raise
    return await mist.api.apps.get(ref)


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
