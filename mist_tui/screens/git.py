"""The app screen's Git tab: how Mist reaches the app's repository (token, deploy key or provider), its
pinned host keys, its webhook and the deliveries it received, push and preview settings, and the app's
live previews."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Select, Static

from mist_core.errors import InvalidInput, PermissionDenied
from mist_core.models import (
    MASK,
    App,
    AppSource,
    GitProvider,
    Preview,
    PreviewSettings,
    SourceChanges,
    WebhookDelivery,
)
from mist_core.sources.keys import known_host_keys

from ..format import human_age, right, short_sha, shown, utc_time
from ..widgets.table import MistTable
from ..workers import api_work
from .dialogs import ConfirmDialog, CopyDialog, FormDialog, FormField

if TYPE_CHECKING:
    from ..app import MistApp

AUTH_NAMES = {
    "none": "none (a public repository, or a path on the server)",
    "token": "https access token",
    "deploy_key": "ssh deploy key",
    "provider": "git provider",
}
OUTCOME_STYLES = {"deployed": "green", "preview": "cyan", "ignored": "dim", "refused": "bold red"}
DELIVERY_COLUMNS = [
    ("age", "Age", 5),
    ("event", "Event", 12),
    ("outcome", "Outcome", 8),
    ("ref", "Ref", 22),
    ("commit", "Commit", 7),
    ("deployment", "Deploy", 6),
    ("reason", "Reason", 40),
]
# How the core checks a delivery of each kind, as the git host's webhook settings name it.
WEBHOOK_KINDS = [
    ("GitHub: X-Hub-Signature-256, an HMAC of the body", "github"),
    ("GitLab: X-Gitlab-Token, the secret itself", "gitlab"),
    ("Gitea / Forgejo: X-Gitea-Signature, an HMAC of the body", "gitea"),
]
PREVIEW_COLUMNS = [
    ("number", "PR", 5),
    ("app", "Preview app", 22),
    ("head", "Head", 30),
    ("url", "URL", 40),
    ("updated", "Updated", 7),
]


def host_key_lines(known_hosts: str | None) -> list[str]:
    """The pinned host keys as ``host  type  SHA256:...``, the way ``ssh-keygen -l`` shows them."""
    if not known_hosts:
        return []
    keys = known_host_keys(known_hosts)
    if not keys:  # nothing ssh would read as a key: show the text as it is
        return [line.strip() for line in known_hosts.splitlines() if line.strip()]
    return [f"{k.hosts}  {k.key_type}  {k.fingerprint}" for k in keys]


def ref_text(d: WebhookDelivery) -> str:
    """A delivery's ref as people say it: ``main``, ``v1.2``, ``PR #12 (fix/rounding)``."""
    ref = (d.ref or "").removeprefix("refs/heads/").removeprefix("refs/tags/") or ""
    if d.pr_number is not None:
        return f"PR #{d.pr_number}" + (f" ({ref})" if ref else "")
    return ref or "—"


def delivery_row(d: WebhookDelivery, now) -> list[object]:
    refused = d.outcome == "refused"
    return [
        right(human_age(d.received_at, now), "red" if refused else ""),
        shown(d.event, style="red" if refused else ""),
        Text(d.outcome, style=OUTCOME_STYLES.get(d.outcome, "")),
        shown(ref_text(d), style="" if d.ref or d.pr_number else "dim"),
        shown(short_sha(d.sha), style="" if d.sha else "dim"),
        right(f"#{d.deployment_id}") if d.deployment_id else right("—", "dim"),
        shown(d.reason, style="red" if refused else "dim"),
    ]


def preview_row(p: Preview, now) -> list[object]:
    head = " ".join(x for x in (p.head_ref, short_sha(p.head_sha) if p.head_sha else None) if x)
    return [
        right(f"#{p.number}"),
        shown(p.app, style="bold"),
        shown(head or "—", style="" if head else "dim"),
        shown(p.url or "no domain (the app has none)", style="underline" if p.url else "dim"),
        right(human_age(p.updated_at, now)),
    ]


def previews_text(previews: PreviewSettings) -> Text:
    if not previews.enabled:
        return Text("off", style="dim")
    text = Text.assemble(("on", "green"))
    text.append_text(shown(f" · up to {previews.limit} at once · at {previews.domain_pattern}"))
    if previews.env:
        text.append(" · env ", style="dim")
        text.append_text(shown(", ".join(f"{k}={v}" for k, v in previews.env.items())))
    if previews.share_secrets:  # off by default, and then not worth a word
        text.append(" · with the app's secrets (not for forks)", style="yellow")
    return text


def parse_env_lines(text: str) -> dict[str, str]:
    """``KEY=value`` one per line (blank lines skipped); the core checks the names and values."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(
                f"line {number} ({line.strip()!r}) is not KEY=value: write one variable per line, like "
                "STRIPE_KEY=sk_test_123",
                field="env",
            )
        env[key.strip()] = value
    return env


def parse_limit(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or not 1 <= int(text) <= 50:
        raise InvalidInput(
            f"the limit {text!r} is not a number from 1 to 50: give how many previews may run at once",
            field="limit",
        )
    return int(text)


def deploy_key_note(source: AppSource, app: App | None) -> str:
    """What to do with a deploy key, and why it may not be used yet."""
    lines = [
        "Add it to the repository as a deploy key with read access only (GitHub: Settings > Deploy keys; "
        "GitLab: Settings > Repository > Deploy keys; Gitea: Settings > Deploy Keys)."
    ]
    if source.auth == "provider":
        lines.append(
            f"While the app is linked to git provider {source.provider}, fetches use the provider's "
            "credentials instead."
        )
    elif app is not None and app.spec.git_url.startswith(("https://", "http://", "/")):
        lines.append(
            f"The key is used over ssh, and {app.ref} fetches from {app.spec.git_url}: give it the repository's "
            "ssh address (git@HOST:OWNER/NAME.git) in the Settings tab."
        )
    return "\n\n".join(lines)


def chosen(value: object) -> str:
    """A select's value as text: "" while nothing is chosen."""
    return value if isinstance(value, str) else ""


class LinkDialog(FormDialog):
    """A provider, then one of the repositories it gives Mist (listed once the provider is chosen)."""

    def __init__(self, app_ref: str, providers: list[GitProvider], source: AppSource, **kwargs: Any) -> None:
        names = [p.name for p in providers]
        self.linked = (source.provider or "", source.repo or "")
        self.repos_for = ""  # the provider whose repositories the select lists (or is loading)
        super().__init__(
            f"Link {app_ref} to a provider's repository",
            [
                FormField(
                    "provider",
                    "Git provider",
                    source.provider if source.provider in names else names[0],
                    choices=[(f"{p.name} ({p.kind}, {p.url})", p.name) for p in providers],
                ),
                FormField(
                    "repo", "Repository", placeholder="loading the provider's repositories…", choices=[]
                ),
            ],
            submit_label="Link",
            note="Mist then fetches the repository with the provider's credentials, and the app's git URL "
            "points at it (like mist app source APP --provider P --repo OWNER/NAME).",
            **kwargs,
        )

    def on_mount(self) -> None:
        self.show_repos(chosen(self.query_one("#field-provider", Select).value))

    @on(Select.Changed, "#field-provider")
    def _provider_changed(self, event: Select.Changed) -> None:
        self.show_repos(chosen(event.value))

    def show_repos(self, provider: str) -> None:
        if provider and provider != self.repos_for:
            self.repos_for = provider
            self.load_repos(provider)

    @api_work(exclusive=True, group="link-repos")
    async def load_repos(self, provider: str) -> None:
        api = self.app.api  # type: ignore[attr-defined]
        select = self.query_one("#field-repo", Select)
        select.set_options([])
        repos = await api.git.repos(provider)
        select.set_options(
            [(shown(r.full_name + (" (private)" if r.private else "")), r.full_name) for r in repos]
        )
        if self.linked[0] == provider and self.linked[1] in {r.full_name for r in repos}:
            select.value = self.linked[1]
        if not repos:
            self.show_error(
                InvalidInput(
                    f"git provider {provider} gives Mist no repository (for a GitHub App: install it on some)",
                    field="repo",
                )
            )


class GitPane(Vertical):
    """The app's source and webhook, what its webhook received, and its previews. Loads when first shown."""

    BINDINGS = [
        Binding("K", "deploy_key", "Deploy key", id="git.deploy_key"),
        Binding("c", "copy_key", "Copy key", show=False, id="git.copy_key"),
        Binding("a", "token", "Access token", id="git.token"),
        Binding("r", "reveal", "Reveal secret", show=False, id="git.reveal"),
        Binding("p", "toggle_push", "Deploy on push", id="git.deploy_on_push"),
        Binding("t", "toggle_tags", "Deploy tags", show=False, id="git.deploy_tags"),
        Binding("e", "previews", "Previews", id="git.previews"),
        Binding("f", "forget_hosts", "Forget host keys", show=False, id="git.forget_hosts"),
        Binding("W", "new_secret", "New webhook secret", show=False, id="git.new_secret"),
        Binding("L", "link", "Link to a provider's repository", show=False, id="git.link"),
        Binding("U", "unlink", "Unlink from the provider", show=False, id="git.unlink"),
        Binding("w", "webhook_kind", "Webhook signing", show=False, id="git.webhook_kind"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="git.reload"),
    ]

    def __init__(self, app_ref: str) -> None:
        super().__init__(id="git-pane")
        self.app_ref = app_ref
        self.source: AppSource | None = None
        self.deliveries: dict[str, WebhookDelivery] = {}
        self.previews: dict[str, Preview] = {}
        self.reveal = False
        self.loaded = False

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    @property
    def current_app(self) -> App | None:
        return getattr(self.screen, "current", None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Unlinking is offered only while the app is linked to a provider.
        if action == "unlink":
            return self.source is not None and bool(self.source.provider)
        return True

    def compose(self) -> ComposeResult:
        yield Static(id="git-source")
        yield MistTable(id="deliveries")
        yield Static(id="delivery-detail")
        yield MistTable(id="previews")

    def on_mount(self) -> None:
        deliveries = self.query_one("#deliveries", MistTable)
        for key, label, width in DELIVERY_COLUMNS:
            justify = "right" if key in ("age", "deployment") else "left"
            deliveries.add_column(Text(label, justify=justify), key=key, width=width)  # type: ignore[arg-type]
        deliveries.border_title = "Webhook deliveries"
        previews = self.query_one("#previews", MistTable)
        for key, label, width in PREVIEW_COLUMNS:
            justify = "right" if key in ("number", "updated") else "left"
            previews.add_column(Text(label, justify=justify), key=key, width=width)  # type: ignore[arg-type]
        previews.border_title = "Previews"

    # ------------------------------------------------------------------------------------------ data

    @api_work(exclusive=True, group="git-load")
    async def load(self) -> None:
        assert self.mist.api is not None
        try:
            source = await self.mist.api.apps.source(self.app_ref, reveal=self.reveal)
        except PermissionDenied:
            if not self.reveal:
                raise
            self.reveal = False  # a viewer may see the source, not its secret
            source = await self.mist.api.apps.source(self.app_ref)
            self.source = source
            self.show()
            raise
        deliveries = await self.mist.api.webhooks.list(self.app_ref, limit=50)
        previews = await self.mist.api.previews.list(self.app_ref)
        self.source = source
        self.deliveries = {str(d.id): d for d in deliveries}
        self.previews = {p.app: p for p in previews}
        self.loaded = True
        self.show()

    def show(self) -> None:
        self.show_source()
        now = self.mist.clock()
        table = self.query_one("#deliveries", MistTable)
        selected = table.selected_key
        table.set_rows([(key, delivery_row(d, now)) for key, d in self.deliveries.items()])
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        refused = sum(1 for d in self.deliveries.values() if d.outcome == "refused")
        title = f"Webhook deliveries · {len(self.deliveries)}"
        if refused:
            title += f" · {refused} refused"
        table.border_title = title
        table.border_subtitle = (
            "" if self.deliveries else "no delivery yet: the git host sends them to the webhook URL above"
        )
        self.show_delivery()
        previews = self.query_one("#previews", MistTable)
        previews.set_rows([(key, preview_row(p, now)) for key, p in self.previews.items()])
        previews.border_title = f"Previews · {len(self.previews)}"
        previews.border_subtitle = (
            "Enter opens the preview app"
            if self.previews
            else "none live"
            if self.source is not None and self.source.previews.enabled
            else "previews are off: e turns them on"
        )

    def show_source(self) -> None:
        source = self.source
        if source is None:
            return
        self.refresh_bindings()  # linking or unlinking changes what is offered
        app = self.current_app
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="dim", justify="right", width=14)
        facts.add_column()
        facts.add_row("fetches with", Text(AUTH_NAMES.get(source.auth, source.auth), style="bold"))
        if source.provider:
            facts.add_row("provider", shown(f"{source.provider} · {source.repo or '—'}"))
        if source.deploy_key:
            key = Text.assemble((source.deploy_key_fingerprint or "", "bold"))
            key.append(f"   {self._key('copy_key')} copies the public key", style="dim")
            facts.add_row("deploy key", key)
            facts.add_row("", shown(source.deploy_key, style="yellow", overflow="fold"))
        else:
            facts.add_row("deploy key", Text(f"none ({self._key('deploy_key')} makes one)", style="dim"))
        hosts = host_key_lines(source.known_hosts)
        if hosts:
            for i, line in enumerate(hosts):
                facts.add_row("host keys" if i == 0 else "", shown(line))
        else:
            facts.add_row(
                "host keys", Text("none pinned yet: the first ssh fetch pins the server's", style="dim")
            )
        if source.webhook_url:
            url = shown(source.webhook_url)
            if source.webhook_kind:
                url.append(f"   signed as {source.webhook_kind}", style="dim")
            else:
                url.append(
                    f"   deliveries are refused until {self._key('webhook_kind')} says which git host signs them",
                    style="yellow",
                )
            facts.add_row("webhook", url)
        else:
            facts.add_row(
                "webhook",
                Text("none: set Mist's public address first (the public_url server setting)", style="yellow"),
            )
        if source.webhook_secret is not None:
            secret = shown(source.webhook_secret, style="yellow")
        elif source.auth == "provider" and source.webhook_kind == "github":
            secret = Text("the GitHub App's", style="dim")
        else:
            secret = Text.assemble((MASK, "dim"))
            secret.append(f"   {self._key('reveal')} reveals it", style="dim")
        facts.add_row("secret", secret)
        push = Text.assemble(("yes", "green") if source.deploy_on_push else ("no", "yellow"))
        if source.deploy_on_push and app is not None:
            push.append_text(shown(f", pushes to {app.spec.branch}"))
        push.append(" · tags ", style="dim")
        push.append("deployed" if source.deploy_tags else "not deployed")
        facts.add_row("deploy on push", push)
        facts.add_row("previews", previews_text(source.previews))
        self.query_one("#git-source", Static).update(Group(facts))

    def _key(self, action: str) -> str:
        """The key bound to ``action`` here, as the footer shows it (keys can be remapped)."""
        for bindings in self._bindings.key_to_bindings.values():
            for binding in bindings:
                if binding.action == action:
                    return self.mist.get_key_display(binding)
        return action

    @on(DataTable.RowSelected, "#deliveries")
    def _open_delivery(self, event: DataTable.RowSelected) -> None:
        event.stop()
        delivery = self.deliveries.get(str(event.row_key.value))
        if delivery is None:
            return
        if delivery.deployment_id is None:
            self.mist.notify(f"This delivery queued no deployment: {delivery.reason}", timeout=5)
            return
        self.mist.open_deployment(delivery.deployment_id)

    @on(DataTable.RowSelected, "#previews")
    def _open_preview(self, event: DataTable.RowSelected) -> None:
        event.stop()
        preview = self.previews.get(str(event.row_key.value))
        if preview is not None:
            self.mist.open_app(preview.app)

    @on(DataTable.RowHighlighted, "#deliveries")
    def show_delivery(self) -> None:
        """The highlighted delivery in full: when, which delivery, and the whole reason (the table cuts it)."""
        detail = self.query_one("#delivery-detail", Static)
        key = self.query_one("#deliveries", MistTable).selected_key
        delivery = self.deliveries.get(key) if key else None
        if delivery is None:
            detail.update("")
            return
        text = Text()
        text.append(f"{utc_time(delivery.received_at)} UTC", style="dim")
        text.append_text(shown(f"  {delivery.event}", style="bold"))
        if delivery.delivery_id:
            text.append_text(shown(f"  delivery {delivery.delivery_id}", style="dim"))
        if delivery.sha:
            text.append(f"  commit {delivery.sha[:12]}", style="dim")
        if delivery.deployment_id:
            text.append(f"  Enter opens deployment #{delivery.deployment_id}", style="dim")
        text.append("\n")
        text.append(f"{delivery.outcome}: ", style=OUTCOME_STYLES.get(delivery.outcome, ""))
        text.append_text(shown(delivery.reason, style="red" if delivery.outcome == "refused" else ""))
        detail.update(text)

    # ------------------------------------------------------------------------------------------ actions

    def action_reload(self) -> None:
        self.load()

    @api_work(group="git-change")
    async def change(self, changes: SourceChanges, done: str) -> None:
        assert self.mist.api is not None
        self.source = await self.mist.api.apps.set_source(self.app_ref, changes)
        if self.reveal:
            self.load()
        else:
            self.show_source()
        self.mist.notify(done)

    def action_toggle_push(self) -> None:
        if self.source is None:
            return
        on_ = not self.source.deploy_on_push
        self.change(
            SourceChanges(deploy_on_push=on_),
            f"{self.app_ref}: a push to its branch "
            + ("now deploys it." if on_ else "no longer deploys (deliveries are still recorded)."),
        )

    def action_toggle_tags(self) -> None:
        if self.source is None:
            return
        on_ = not self.source.deploy_tags
        self.change(
            SourceChanges(deploy_tags=on_),
            f"{self.app_ref}: pushed tags are " + ("now deployed." if on_ else "no longer deployed."),
        )

    def action_reveal(self) -> None:
        self.reveal = not self.reveal
        self.load()

    def action_copy_key(self) -> None:
        if self.source is None or not self.source.deploy_key:
            self.mist.notify(
                f"{self.app_ref} has no deploy key yet: {self._key('deploy_key')} makes one.",
                severity="warning",
            )
            return
        self.app.copy_to_clipboard(self.source.deploy_key)
        self.mist.notify("Copied the public deploy key (where the terminal allows it).", timeout=3)

    def action_deploy_key(self) -> None:
        source = self.source
        if source is None:
            return
        if not source.deploy_key:
            self._make_key(False)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._make_key(True)

        self.app.push_screen(
            ConfirmDialog(
                f"New deploy key for {self.app_ref}",
                f"Replace the deploy key of {self.app_ref} ({source.deploy_key_fingerprint})? The old key stops "
                "working at once: add the new public key to the repository's deploy keys (and remove the old "
                "one) before the next deployment.",
                confirm_label="Make a new key",
            ),
            confirmed,
        )

    @api_work(group="git-change")
    async def _make_key(self, regenerate: bool) -> None:
        assert self.mist.api is not None
        self.source = await self.mist.api.apps.deploy_key(self.app_ref, regenerate=regenerate)
        self.show_source()
        self.app.push_screen(
            CopyDialog(
                f"{'New deploy key' if regenerate else 'Deploy key'} of {self.app_ref}",
                f"{self.source.deploy_key_fingerprint}\n\n{deploy_key_note(self.source, self.current_app)}",
                self.source.deploy_key or "",
            )
        )

    def action_forget_hosts(self) -> None:
        source = self.source
        if source is None:
            return
        if not source.known_hosts:
            self.mist.notify(f"{self.app_ref} has no pinned host key to forget.")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.change(
                    SourceChanges(forget_known_hosts=True),
                    f"Forgot the host keys of {self.app_ref}: the next ssh fetch pins the server's key again.",
                )

        self.app.push_screen(
            ConfirmDialog(
                f"Forget the host keys of {self.app_ref}",
                f"Forget the ssh host keys pinned for {self.app_ref} ({'; '.join(host_key_lines(source.known_hosts))})? "
                "The next fetch trusts whatever key the server shows and pins it. Do this only when you know "
                "why the server's key changed.",
                confirm_label="Forget host keys",
            ),
            confirmed,
        )

    def action_new_secret(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.reveal = True
                self.change(
                    SourceChanges(new_webhook_secret=True),
                    f"New webhook secret for {self.app_ref}: paste it into the git host's webhook.",
                )

        self.app.push_screen(
            ConfirmDialog(
                f"New webhook secret for {self.app_ref}",
                f"Make a new webhook secret for {self.app_ref}? Deliveries signed with the old one are refused "
                "until the new one is pasted into the git host's webhook settings.",
                confirm_label="Make a new secret",
            ),
            confirmed,
        )

    def action_link(self) -> None:
        if self.source is not None:
            self._open_link()

    @api_work(exclusive=True, group="git-link")
    async def _open_link(self) -> None:
        assert self.mist.api is not None
        providers = await self.mist.api.git.providers()
        source = self.source
        if source is None:
            return
        if not providers:
            self.mist.notify(
                "Mist knows no git provider yet: add one in Go to git providers (command palette), then link "
                f"{self.app_ref} to one of its repositories.",
                severity="warning",
            )
            return

        async def save(values: dict[str, Any]) -> AppSource:
            assert self.mist.api is not None
            provider, repo = chosen(values["provider"]), chosen(values["repo"])
            if not provider:
                raise InvalidInput("choose the git provider", field="provider")
            if not repo:
                raise InvalidInput("choose one of the provider's repositories", field="repo")
            return await self.mist.api.apps.set_source(
                self.app_ref, SourceChanges(provider=provider, repo=repo)
            )

        def done(result: object) -> None:
            if isinstance(result, AppSource):
                self.source = result
                self.show_source()
                self.mist.notify(
                    f"{self.app_ref} is linked to {result.repo} at git provider {result.provider}: fetches use "
                    "the provider's credentials."
                )
                reload_app = getattr(self.screen, "load", None)
                if callable(reload_app):
                    reload_app()  # the app's git URL now points at the repository

        self.app.push_screen(LinkDialog(self.app_ref, providers, source, submit=save), done)

    def action_unlink(self) -> None:
        source = self.source
        if source is None:
            return
        if not source.provider:
            self.mist.notify(f"{self.app_ref} is not linked to a git provider.")
            return
        provider, repo = source.provider, source.repo or "—"

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.change(
                    SourceChanges(provider=""),
                    f"{self.app_ref} is no longer linked to git provider {provider}.",
                )

        self.app.push_screen(
            ConfirmDialog(
                f"Unlink {self.app_ref} from {provider}",
                f"Unlink {self.app_ref} from git provider {provider} (repository {repo})? Fetches then use the "
                "app's own deploy key or access token, if it has one, and its webhook is no longer signed the "
                f"way {provider} decides.",
                confirm_label="Unlink",
            ),
            confirmed,
        )

    def action_webhook_kind(self) -> None:
        source = self.source
        if source is None:
            return
        if source.provider:
            self.mist.notify(
                f"{self.app_ref} is linked to git provider {source.provider}, which decides how its webhook "
                f"deliveries are signed ({source.webhook_kind or 'its kind'}). Unlink it "
                f"({self._key('unlink')}) to choose.",
                timeout=6,
            )
            return

        async def save(values: dict[str, Any]) -> AppSource:
            assert self.mist.api is not None
            kind = chosen(values["kind"])
            return await self.mist.api.apps.set_source(
                self.app_ref,
                SourceChanges(webhook_kind=kind),  # type: ignore[arg-type]
            )

        def done(result: object) -> None:
            if isinstance(result, AppSource):
                self.source = result
                self.show_source()
                self.mist.notify(
                    f"Deliveries to the webhook of {self.app_ref} are now checked as {result.webhook_kind} "
                    "signs them."
                )

        self.app.push_screen(
            FormDialog(
                f"Webhook signing of {self.app_ref}",
                [
                    FormField(
                        "kind",
                        "The git host that sends the deliveries",
                        source.webhook_kind or "github",
                        choices=[(label, kind) for label, kind in WEBHOOK_KINDS],
                    )
                ],
                submit=save,
                aliases={"webhook_kind": "kind"},
                note="Mist refuses a delivery that is not signed with the webhook secret the way this host "
                "signs it: choose the host the webhook is set up in.",
            ),
            done,
        )

    def action_token(self) -> None:
        async def save(values: dict[str, Any]) -> AppSource:
            assert self.mist.api is not None
            token = values["token"].strip()
            if values["remove"]:
                token = ""
            elif not token:
                raise InvalidInput(
                    "type the access token, or tick Remove to fetch without one", field="token"
                )
            return await self.mist.api.apps.set_source(self.app_ref, SourceChanges(token=token))

        def done(result: object) -> None:
            if isinstance(result, AppSource):
                self.source = result
                self.show_source()
                self.mist.notify(f"Access token of {self.app_ref} saved; it is never shown again.")

        self.app.push_screen(
            FormDialog(
                f"Access token for {self.app_ref}",
                [
                    FormField(
                        "token", "Token (kept encrypted, never shown)", "", "paste the token", password=True
                    ),
                    FormField("remove", "Remove the token (fetch without one)", checkbox=True),
                ],
                submit=save,
                submit_label="Save",
                note="For https repositories: a personal or project access token with read access to the "
                "repository. git receives it through a private file for each fetch, never on a command line.",
            ),
            done,
        )

    def action_previews(self) -> None:
        if self.source is None:
            return
        current = self.source.previews

        async def save(values: dict[str, Any]) -> AppSource:
            assert self.mist.api is not None
            settings = PreviewSettings(
                enabled=bool(values["enabled"]),
                limit=parse_limit(values["limit"]),
                domain_pattern=values["domain_pattern"].strip() or current.domain_pattern,
                env=parse_env_lines(values["env"]),
                share_secrets=bool(values["share_secrets"]),
            )
            return await self.mist.api.apps.set_source(self.app_ref, SourceChanges(previews=settings))

        def done(result: object) -> None:
            if isinstance(result, AppSource):
                self.source = result
                self.show()
                state = "on" if result.previews.enabled else "off"
                self.mist.notify(f"Previews of {self.app_ref}: {state}.")

        self.app.push_screen(
            FormDialog(
                f"Previews of {self.app_ref}",
                [
                    FormField(
                        "enabled",
                        "A pull request deploys its head as a preview app",
                        checkbox=True,
                        checked=current.enabled,
                    ),
                    FormField("limit", "Live previews at once (1-50; more wait)", str(current.limit), "3"),
                    FormField(
                        "domain_pattern",
                        "Domain pattern ({number}: the pull request, {app_domain}: the app's first domain)",
                        current.domain_pattern,
                        "pr-{number}.{app_domain}",
                    ),
                    FormField(
                        "env",
                        "Variables for previews, KEY=value one per line (override the app's)",
                        "\n".join(f"{k}={v}" for k, v in current.env.items()),
                        "STRIPE_KEY=sk_test_123",
                        multiline=True,
                    ),
                    FormField(
                        "share_secrets",
                        "Share the app's secrets with previews (pull requests from forks never get them)",
                        checkbox=True,
                        checked=current.share_secrets,
                    ),
                ],
                submit=save,
                aliases={
                    "previews.limit": "limit",
                    "previews.domain_pattern": "domain_pattern",
                    "previews.env": "env",
                    "key": "env",
                    "value": "env",
                },
                compact=True,
            ),
            done,
        )
