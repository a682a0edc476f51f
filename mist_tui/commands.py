"""The command palette's provider: every action valid on the current screen (its active bindings), plus
going to each screen, and the members of the project selected on the dashboard. Built when the palette
opens, so it always matches where the user is."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from .app import MistApp


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
