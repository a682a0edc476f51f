"""The command palette's provider: every action valid on the current screen (its active bindings), plus
going to each screen, and the members of the project selected on the dashboard. Built when the palette
opens, so it always matches where the user is. It also acts on apps by name: ``shop/web`` opens an app,
``deploy shop/web``, ``logs ticker`` and ``rollback shop/web`` do what they say."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from mist_core.models import App

    from .app import MistApp

# What the palette does to an app it finds by name: the verb typed first, and what the hit says.
VERBS = {
    "open": "Open {ref}",
    "deploy": "Deploy {ref}",
    "logs": "Logs of {ref}",
    "rollback": "Roll back {ref} to its previous deployment",
}
MAX_APPS = 8


class ScreenCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app: MistApp = self.app  # type: ignore[assignment]
        commands: list[tuple[str, str, Callable[[], object]]] = []
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not active.enabled or not binding.description or binding.action in seen:
                continue
            if binding.action in ("command_palette", "quit"):
                continue
            seen.add(binding.action)
            display = app.get_key_display(binding)
            commands.append(
                (binding.description, f"key {display}", partial(app.run_action, binding.action, active.node))
            )
        if app.api is not None and app.user is not None:
            for name, help_text in (
                ("dashboard", "Projects and apps"),
                ("databases", "Managed databases: create, connect, link to apps, back up"),
                ("metrics", "Server and app graphs"),
                ("logs", "Logs of several apps at once"),
                ("users", "Accounts and roles; create, invite, change a role, delete"),
                ("sessions", "Where you are logged in; end a session"),
                ("tokens", "API tokens for scripts and CI; create, revoke"),
                ("audit", "Who did what, as which role, from where; filter, export"),
                ("account", "Your password, profile and two-factor authentication"),
                ("settings", "Server settings"),
                ("providers", "Git providers: GitHub Apps, GitLab, Gitea; their repositories and branches"),
            ):
                label = "git providers" if name == "providers" else name
                commands.append((f"Go to {label}", help_text, partial(app.run_action, f"goto('{name}')")))
            selected_project = getattr(self.screen, "selected_project", None)
            project = selected_project() if callable(selected_project) else None
            if project:
                commands.append(
                    (
                        f"Members of {project}",
                        "Who may see and change this project; add, change a role, remove",
                        partial(app.open_members, project),
                    )
                )
                commands.append(
                    (
                        f"Backups of {project}",
                        "Its volumes' and databases' backups; back up now, verify, restore",
                        partial(app.open_backups, project),
                    )
                )
            commands.append(("Log out", "Forget this host's token and log in again", app.action_logout))
        return commands

    async def discover(self) -> Hits:
        for text, help_text, callback in self._commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, callback in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, text=text, help=help_text)
        async for hit in self._app_hits(query):
            yield hit

    async def _app_hits(self, query: str) -> Hits:
        """``[verb] name``: the apps whose project/name holds ``name``, with what ``verb`` does to each (no
        verb: open it)."""
        app: MistApp = self.app  # type: ignore[assignment]
        if app.api is None or app.user is None:
            return
        words = query.strip().lstrip(":").split()
        if not words:
            return
        verb = words[0].lower()
        if verb in VERBS and len(words) > 1:
            name = " ".join(words[1:])
        else:
            verb, name = "open", " ".join(words)
        if len(name) < 2:
            return
        try:
            page = await app.api.apps.list(query=name, limit=MAX_APPS)
        except Exception:  # noqa: BLE001 - the palette offers what it can; errors show when acting
            return
        # An exact name first: "logs web" is shop/web before webshop/api.
        found = sorted(page.items, key=lambda a: (name not in (a.ref, a.name), a.ref))
        for rank, target in enumerate(found):
            text = VERBS[verb].format(ref=target.ref)
            score = 1.0 - rank / (2 * MAX_APPS)
            yield Hit(score, text, partial(self._act, verb, target), text=text, help=f"app {target.status}")

    def _act(self, verb: str, target: App) -> None:
        app: MistApp = self.app  # type: ignore[assignment]
        if verb == "deploy":
            from .screens.app_screen import ask_deploy

            ask_deploy(app, target)
        elif verb == "logs":
            app.open_logs([target.ref])
        elif verb == "rollback":
            from .screens.app_screen import AppScreen

            app.push_screen(AppScreen(target.ref, tab="deployments", rollback=True))
        else:
            app.open_app(target.ref)
