"""Git providers (an admin screen): the GitHub Apps and GitLab / Gitea accounts Mist knows, adding one by
token or by App id and key, creating a GitHub App from Mist's manifest, removing one; and a browser of a
provider's repositories and their branches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Header, Input, Label, Select

from mist_core.errors import InvalidInput
from mist_core.models import BranchInfo, GitProvider, GitProviderSpec, ManifestStart, RepoInfo

from ..format import human_age, right, short_sha, shown
from ..widgets.footer import MistFooter
from ..widgets.table import MistTable
from ..workers import api_work
from .admin import _ListScreen
from .dialogs import ConfirmDialog, CopyDialog, FormDialog, FormField

KIND_CHOICES = [
    ("Gitea or Forgejo · URL and access token", "gitea"),
    ("GitLab · URL and access token", "gitlab"),
    ("GitHub App · App id, private key and webhook secret", "github"),
]
KIND_NAMES = {"github": "GitHub App", "gitlab": "GitLab", "gitea": "Gitea"}
# Which of the add dialog's fields each kind of provider uses; the others are hidden.
TOKEN_FIELDS = ("url", "token")
GITHUB_FIELDS = ("app_id", "private_key_file", "webhook_secret", "installation_id")


def read_private_key(path: str) -> str:
    """The GitHub App's private key from the .pem file GitHub made for it."""
    path = path.strip()
    if not path:
        raise InvalidInput(
            "give the path of the App's private key (the .pem file GitHub made for it)",
            field="private_key_file",
        )
    try:
        text = Path(path).expanduser().read_text()
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{path} is not a PEM text file: give the App's private key as GitHub downloads it (.pem)",
            field="private_key_file",
        ) from None
    except OSError as err:
        raise InvalidInput(f"cannot read {path}: {err.strerror or err}", field="private_key_file") from None
    if "PRIVATE KEY-----" not in text:
        raise InvalidInput(
            f"{path} holds no private key: give the .pem file GitHub made for the App (Generate a private key)",
            field="private_key_file",
        )
    return text


def optional_int(text: str, field: str, what: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput(
            f"{what} {text!r} is not a number: copy it from the App's settings page", field=field
        )
    return int(text)


def provider_spec(values: dict[str, Any]) -> GitProviderSpec:
    """The add dialog's values as a ``GitProviderSpec``; the fields of the other kinds are ignored."""
    name = values["name"].strip()
    if not name:
        raise InvalidInput("give the provider a name, such as gitea or gh", field="name")
    kind = values["kind"]
    if kind == "github":
        app_id = optional_int(values["app_id"], "app_id", "the App id")
        if app_id is None:
            raise InvalidInput(
                "a GitHub App needs its id (the App's settings page shows it), or create a new App with "
                "Create GitHub App",
                field="app_id",
            )
        key = read_private_key(values["private_key_file"])
        secret = values["webhook_secret"].strip()
        if not secret:
            raise InvalidInput("a GitHub App needs the webhook secret it was given", field="webhook_secret")
        return GitProviderSpec(
            name=name,
            kind="github",
            url=values["url"].strip() or None,
            app_id=app_id,
            private_key=key,
            webhook_secret=secret,
            installation_id=optional_int(values["installation_id"], "installation_id", "the installation id"),
        )
    url = values["url"].strip()
    if not url:
        raise InvalidInput(
            f"a {KIND_NAMES[kind]} provider needs the address of its host, like https://{kind}.example.com",
            field="url",
        )
    token = values["token"].strip()
    if not token:
        raise InvalidInput(
            f"give a {KIND_NAMES[kind]} access token with read access to repositories", field="token"
        )
    return GitProviderSpec(name=name, kind=kind, url=url, token=token)


class AddProviderDialog(FormDialog):
    """One form for every kind: choosing the kind shows the fields it needs and hides the others."""

    def __init__(self, submit: Any) -> None:
        super().__init__(
            "Add a git provider",
            [
                FormField("name", "Name", "", "gitea, gitlab, gh..."),
                FormField("kind", "Kind", "gitea", choices=KIND_CHOICES),
                FormField("url", "Address of the host", "", "https://git.example.com"),
                FormField("token", "Access token (kept encrypted, never shown)", "", password=True),
                FormField("app_id", "App id", "", "123456"),
                FormField("private_key_file", "Private key file (.pem)", "", "~/mist-acme.private-key.pem"),
                FormField("webhook_secret", "Webhook secret of the App", "", password=True),
                FormField(
                    "installation_id", "Installation id (optional: the first one)", "", "empty: the first"
                ),
            ],
            submit=submit,
            submit_label="Add provider",
            note="Mist checks the credentials against the host before it keeps them.",
            aliases={"private_key": "private_key_file", "api_url": "url"},
            compact=True,
        )

    def on_mount(self) -> None:
        self.show_kind(str(self.query_one("#field-kind", Select).value))

    @on(Select.Changed, "#field-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        self.show_kind(str(event.value))

    def show_kind(self, kind: str) -> None:
        github = kind == "github"
        for name in GITHUB_FIELDS:
            self._show_field(name, github)
        self._show_field("token", not github)
        url = self.query_one("#field-url", Input)
        url.placeholder = (
            "https://github.com (or a GitHub Enterprise address)" if github else f"https://{kind}.example.com"
        )
        self.query_one("#label-url", Label).update(
            "Address of GitHub (optional: https://github.com)" if github else "Address of the host"
        )

    def _show_field(self, name: str, shown: bool) -> None:
        for selector in (f"#label-{name}", f"#field-{name}"):
            self.query_one(selector).display = shown
        if not shown:
            error = self.query_one(f"#error-{name}")
            error.remove_class("-shown")


class GitProvidersScreen(_ListScreen):
    TITLE_TEXT = "Git providers"
    BINDINGS = [
        Binding("n", "add", "Add provider", id="providers.add"),
        Binding("M", "manifest", "Create GitHub App", id="providers.manifest"),
        Binding("X", "remove", "Remove", id="providers.remove"),
        Binding("enter", "repos", "Repositories", show=False, id="providers.repos"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.providers: dict[str, GitProvider] = {}

    def setup_columns(self, table: MistTable) -> None:
        table.add_column("Name", key="name", width=14)
        table.add_column("Kind", key="kind", width=10)
        table.add_column("Address", key="url", width=28)
        table.add_column("GitHub App", key="app", width=22)
        table.add_column("Webhook (GitHub App)", key="webhook", width=24)
        table.add_column(Text("Added", justify="right"), key="age", width=6)

    async def fill(self, table: MistTable) -> None:
        assert self.mist.api is not None
        providers = await self.mist.api.git.providers()
        self.providers = {p.name: p for p in providers}
        now = self.mist.clock()
        selected = table.selected_key
        table.clear()
        for p in providers:
            if p.kind == "github":
                app = Text.assemble(f"{p.app_slug or p.app_id}")
                if p.installation_id is None:
                    app.append(" not installed", style="yellow")
                else:
                    app.append(f" · {p.installation_id}", style="dim")
            else:
                app = Text("—", style="dim")
            table.add_row(
                Text(p.name, style="bold"),
                KIND_NAMES.get(p.kind, p.kind),
                p.url,
                app,
                Text(p.webhook_url or "—", style="" if p.webhook_url else "dim"),
                right(human_age(p.created_at, now)),
                key=p.name,
            )
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        table.border_title = f"Git providers · {len(providers)}"
        table.border_subtitle = (
            "Enter lists a provider's repositories" if providers else "none yet: n adds one"
        )

    def selected(self) -> GitProvider | None:
        key = self.table.selected_key
        return self.providers.get(key) if key else None

    @on(DataTable.RowSelected)
    def action_repos(self) -> None:
        provider = self.selected()
        if provider is not None:
            self.app.push_screen(RepositoriesScreen(provider.name))

    def action_add(self) -> None:
        async def add(values: dict[str, Any]) -> GitProvider:
            assert self.mist.api is not None
            return await self.mist.api.git.add_provider(provider_spec(values))

        def done(provider: object) -> None:
            if not isinstance(provider, GitProvider):
                return
            message = f"Added the {KIND_NAMES.get(provider.kind, provider.kind)} provider {provider.name}."
            if provider.kind == "github" and provider.installation_id is None:
                message += " The App is not installed anywhere yet: install it, then add it again."
            elif provider.kind == "github" and provider.webhook_url:
                message += f" The App's webhook URL must be {provider.webhook_url}."
            self.mist.notify(message, timeout=8)
            self.load()

        self.app.push_screen(AddProviderDialog(add), done)

    def action_manifest(self) -> None:
        async def start(values: dict[str, Any]) -> ManifestStart:
            assert self.mist.api is not None
            name = values["name"].strip()
            if not name:
                raise InvalidInput("give the provider a name, such as gh", field="name")
            return await self.mist.api.git.github_manifest(
                name,
                url=values["url"].strip() or "https://github.com",
                organization=values["organization"].strip() or None,
            )

        def started(result: object) -> None:
            if isinstance(result, ManifestStart):
                self.app.push_screen(
                    CopyDialog(
                        "Create the GitHub App",
                        "Open this address in a browser signed in to GitHub. It asks GitHub to create an App "
                        "with the name, permissions and webhook Mist needs; once you confirm, GitHub brings the "
                        f"browser back to Mist, which keeps the App as provider {result.name}. Then install the "
                        "App on the repositories to deploy (Ctrl+R here shows it).",
                        result.url,
                    )
                )

        self.app.push_screen(
            FormDialog(
                "Create a GitHub App from Mist's manifest",
                [
                    FormField("name", "Provider name", "gh", "gh"),
                    FormField("url", "GitHub address", "https://github.com"),
                    FormField("organization", "Organization (optional: your own account)", "", "acme"),
                ],
                submit=start,
                submit_label="Start",
                note="Needs Mist's public address (the public_url setting), which GitHub sends the browser "
                "and the webhooks to.",
            ),
            started,
        )

    def action_remove(self) -> None:
        provider = self.selected()
        if provider is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._remove(provider.name)

        self.app.push_screen(
            ConfirmDialog(
                f"Remove git provider {provider.name}",
                f"Remove the git provider {provider.name} ({KIND_NAMES.get(provider.kind, provider.kind)}, "
                f"{provider.url})? Mist forgets its credentials; it is refused while apps fetch through it.",
                confirm_label=f"Remove {provider.name}",
            ),
            confirmed,
        )

    @api_work(group="providers-change")
    async def _remove(self, name: str) -> None:
        assert self.mist.api is not None
        await self.mist.api.git.remove_provider(name)
        self.mist.notify(f"Removed the git provider {name}.")
        self.load()


class RepositoriesScreen(_ListScreen):
    """A provider's repositories; Enter lists the highlighted one's branches beside them."""

    BINDINGS = [Binding("enter", "branches", "Branches", show=False, id="repos.branches")]

    def __init__(self, provider: str) -> None:
        super().__init__()
        self.provider = provider
        self.repos: dict[str, RepoInfo] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="repo-browser"):
            yield MistTable(id="list")
            yield MistTable(id="branches")
        yield MistFooter()

    def setup_columns(self, table: MistTable) -> None:
        table.border_title = shown(f"Repositories of {self.provider}")
        table.add_column("Repository", key="repo", width=30)
        table.add_column("Default", key="default", width=10)
        table.add_column("Private", key="private", width=7)
        branches = self.query_one("#branches", MistTable)
        branches.add_column("Branch", key="branch", width=24)
        branches.add_column("Commit", key="commit", width=8)
        branches.border_title = "Branches"
        branches.border_subtitle = "Enter on a repository lists them"

    async def fill(self, table: MistTable) -> None:
        assert self.mist.api is not None
        repos = await self.mist.api.git.repos(self.provider)
        self.repos = {r.full_name: r for r in repos}
        table.clear()
        for r in repos:
            table.add_row(
                Text(r.full_name, style="bold"),
                r.default_branch,
                Text("yes", style="yellow") if r.private else Text("no", style="dim"),
                key=r.full_name,
            )
        table.border_title = shown(f"Repositories of {self.provider} · {len(repos)}")
        table.border_subtitle = (
            "Enter lists the branches"
            if repos
            else "none: the provider gives Mist no repository (a GitHub App: install it on some)"
        )

    @on(DataTable.RowSelected, "#list")
    def action_branches(self) -> None:
        key = self.table.selected_key
        if key and key in self.repos:
            self.load_branches(key)

    @api_work(exclusive=True, group="branches-load")
    async def load_branches(self, repo: str) -> None:
        assert self.mist.api is not None
        branches: list[BranchInfo] = await self.mist.api.git.branches(self.provider, repo)
        table = self.query_one("#branches", MistTable)
        table.clear()
        default = self.repos[repo].default_branch
        for b in branches:
            name = Text.assemble((b.name, "bold" if b.name == default else ""))
            if b.name == default:
                name.append(" (default)", style="dim")
            table.add_row(name, short_sha(b.sha), key=b.name)
        # Repository names come from the git host: a title string would be read as markup.
        table.border_title = shown(f"Branches of {repo} · {len(branches)}")
        table.border_subtitle = ""
