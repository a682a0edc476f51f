"""Backups of one subject (a database, a volume) or of a whole project: when each was taken, how big it is,
whether it succeeded and whether a restore of it was checked ("never" until one was). From here a backup is
taken now, verified, or restored (into a new volume, or over its subject after a confirmation naming it).

The pane asks ``backups.list`` for the subject's kind as it is; a server that does not back up that kind says
so, and the pane shows its words in place of the list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from mist_core.errors import InvalidInput, MistError
from mist_core.models import Backup

from ..format import counted, human_age, human_bytes, right, shown
from ..widgets.footer import MistFooter
from ..widgets.table import MistTable
from ..workers import api_work
from .dialogs import ConfirmDialog, FormDialog, FormField

if TYPE_CHECKING:
    from ..app import MistApp

POLL = 2.0  # seconds between reloads while a backup, a verification or a restore runs
STATE_STYLES = {"success": "green", "failed": "bold red", "running": "yellow"}
VERIFY_STYLES = {"passed": "green", "failed": "bold red", "running": "yellow", "never": "dim italic"}
SUBJECT_WORDS = {"volume": "volume", "database": "database"}


def verified_text(backup: Backup, now: Any) -> Text:
    """``never`` (dim: nothing proves the backup restores), ``passed 3h``, ``failed 2d``, ``running``."""
    text = Text(backup.verified, style=VERIFY_STYLES.get(backup.verified, ""))
    if backup.verified in ("passed", "failed") and backup.verified_at is not None:
        text.append(f" {human_age(backup.verified_at, now)}", style="dim")
    return text


def restore_text(backup: Backup, now: Any) -> Text:
    if backup.restore_state is None:
        return Text("—", style="dim")
    text = Text(backup.restore_state, style=STATE_STYLES.get(backup.restore_state, ""))
    if backup.restore_target:
        text.append(f" → {backup.restore_target}", style="dim")
    return text


def subject_label(kind: str, name: str) -> str:
    return f"{SUBJECT_WORDS.get(kind, kind)} {name}"


class BackupsPane(Vertical):
    """The backups of ``kind``/``subject`` in ``project`` (``subject`` None: every subject of the project)."""

    BINDINGS = [
        Binding("n", "run", "Back up now", id="backups.run"),
        Binding("v", "verify", "Verify", id="backups.verify"),
        Binding("t", "restore", "Restore", id="backups.restore"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="backups.reload"),
    ]

    def __init__(self, project: str, kind: str | None = None, subject: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.project = project
        self.kind = kind
        self.subject = subject
        self.backups: dict[str, Backup] = {}
        self.refusal: str | None = None  # the server's words when it does not back up this kind
        self.loaded = False
        self._poll_timer: Any = None

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield MistTable(id="backups-table")
        yield Static("", id="backup-detail")

    def on_mount(self) -> None:
        table = self.query_one(MistTable)
        table.add_column(Text("Id", justify="right"), key="id", width=5)
        if self.subject is None:
            table.add_column("Of", key="subject", width=18)
        table.add_column(Text("Taken", justify="right"), key="age", width=6)
        table.add_column("State", key="state", width=8)
        table.add_column(Text("Size", justify="right"), key="size", width=10)
        table.add_column("Verified", key="verified", width=11)
        # At 80 columns the last restore and the destination give way (the line below names the restore).
        if self.app.size.width >= 104:
            table.add_column("Last restore", key="restore", width=18)
            table.add_column("To", key="destination", width=12)
        table.border_title = self._title()
        self.load()

    def _title(self) -> str:
        what = (
            subject_label(self.kind or "volume", f"{self.project}/{self.subject}")
            if self.subject
            else f"project {self.project}"
        )
        return f"Backups of {what}"

    @api_work(exclusive=True, group="backups-load")
    async def load(self) -> None:
        assert self.mist.api is not None
        try:
            page = await self.mist.api.backups.list(
                self.project, kind=self.kind, name=self.subject, limit=100
            )
        except InvalidInput as error:
            if error.field != "kind":
                raise
            self._refused(error.message)
            return
        self.refusal = None
        self.loaded = True
        self.show(page.items, page.total)

    def _refused(self, message: str) -> None:
        """The server does not back up this kind of subject (yet): say so where the list would be."""
        self.refusal = message
        self.loaded = True
        table = self.query_one(MistTable)
        table.clear()
        table.border_subtitle = "not offered by this server"
        self.query_one("#backup-detail", Static).update(
            shown(
                f"This server does not back up {SUBJECT_WORDS.get(self.kind or '', self.kind)}s yet "
                f"(it answers: {message}). Back up a dump by hand, or the volumes of the project's apps."
            )
        )
        self.refresh_bindings()

    def show(self, backups: list[Backup], total: int) -> None:
        table = self.query_one(MistTable)
        now = self.mist.clock()
        selected = table.selected_key
        self.backups = {str(b.id): b for b in backups}
        table.clear()
        columns = [str(c.key.value) for c in table.columns.values()]
        for b in backups:
            cells: dict[str, object] = {
                "id": right(f"#{b.id}"),
                "subject": shown(subject_label(b.kind, b.name)),
                "age": right(human_age(b.started_at, now)),
                "state": Text(b.state, style=STATE_STYLES.get(b.state, "")),
                "size": right(human_bytes(b.size) if b.size is not None else "—", "" if b.size else "dim"),
                "verified": verified_text(b, now),
                "restore": restore_text(b, now),
                "destination": shown(b.destination or "removed", "" if b.destination else "dim"),
            }
            table.add_row(*(cells[key] for key in columns), key=str(b.id))
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        never = sum(1 for b in backups if b.state == "success" and b.verified == "never")
        parts = [counted(total, "backup")]
        if never:
            parts.append(f"{never} never verified")
        table.border_subtitle = " · ".join(parts)
        self._show_detail()
        busy = any("running" in (b.state, b.verified, b.restore_state or "") for b in backups)
        if busy and self._poll_timer is None:
            self._poll_timer = self.set_interval(POLL, self.load)
        elif not busy and self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        self.refresh_bindings()

    def selected(self) -> Backup | None:
        key = self.query_one(MistTable).selected_key
        return self.backups.get(key or "")

    @on(DataTable.RowHighlighted, "#backups-table")
    def _show_detail(self) -> None:
        """The highlighted backup in full: its error, what the verification found, the last restore."""
        b = self.selected()
        detail = self.query_one("#backup-detail", Static)
        if b is None:
            if self.refusal is None:
                detail.update(Text("No backups yet: n backs up now.", style="dim"))
            return
        text = Text()
        text.append(f"#{b.id} ", style="bold")
        text.append_text(shown(subject_label(b.kind, b.name)))
        text.append(f" · taken {b.started_at:%Y-%m-%d %H:%M} UTC", style="dim")
        if b.raw_size is not None:
            text.append(f" · {human_bytes(b.raw_size)} before compression", style="dim")
        if b.encrypted:
            text.append(" · encrypted", style="dim")
        if b.error:
            text.append("\n✕ ", style="bold red")
            text.append_text(shown(b.error))
        if b.verify_detail:
            text.append("\nverification: ", style="dim")
            text.append_text(shown(b.verify_detail))
        elif b.verified == "never" and b.state == "success":
            text.append("\nnever verified: v restores it into a throw-away copy and checks it", style="dim")
        if b.restore_state is not None:
            text.append("\nlast restore: ", style="dim")
            text.append_text(restore_text(b, self.mist.clock()))
            if b.restore_detail:
                text.append(" · ", style="dim")
                text.append_text(shown(b.restore_detail))
        detail.update(text)

    def tick(self) -> None:
        """A second passed: the ages move on."""
        table = self.query_one(MistTable)
        now = self.mist.clock()
        for key, b in self.backups.items():
            age = human_age(b.started_at, now)
            if key in table.rows and str(table.get_cell(key, "age")).strip() != age:
                table.update_cell(key, "age", right(age))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("run", "verify", "restore"):
            return self.refusal is None
        return True

    # ------------------------------------------------------------------------------------------ actions

    def action_reload(self) -> None:
        self.load()

    def action_run(self) -> None:
        self._ask_run()

    @api_work(exclusive=True, group="backups-run-form")
    async def _ask_run(self) -> None:
        assert self.mist.api is not None
        destinations = await self.mist.api.backups.destinations()
        if not destinations:
            self.mist.notify(
                "There is no backup destination yet: an admin adds one with `mist backup destination add`.",
                severity="warning",
            )
            return
        fields: list[FormField] = []
        if self.subject is None:
            fields.append(
                FormField("name", "Volume", placeholder="a volume of the project's apps, e.g. uploads")
            )
        fields.append(
            FormField(
                "destination",
                "Destination",
                destinations[0].name,
                choices=[
                    (f"{d.name} ({d.kind}{', encrypted' if d.encrypt else ''})", d.name) for d in destinations
                ],
            )
        )
        kind = self.kind or "volume"

        async def submit(values: dict[str, Any]) -> Backup:
            assert self.mist.api is not None
            name = self.subject if self.subject is not None else values["name"].strip()
            if not name:
                raise InvalidInput("Name the volume to back up, e.g. uploads.", field="name")
            return await self.mist.api.backups.run(self.project, name, str(values["destination"]), kind)

        def started(backup: Backup | None) -> None:
            if isinstance(backup, Backup):
                self.mist.notify(
                    f"Backing up {subject_label(backup.kind, backup.name)} of {backup.project} "
                    f"to {backup.destination} (#{backup.id})."
                )
                self.load()

        what = (
            subject_label(kind, f"{self.project}/{self.subject}")
            if self.subject
            else f"a volume of {self.project}"
        )
        self.app.push_screen(
            FormDialog(f"Back up {what}", fields, submit=submit, submit_label="Back up now"), started
        )

    def action_verify(self) -> None:
        b = self.selected()
        if b is None:
            return
        if b.state != "success":
            self.mist.notify(f"Backup #{b.id} is {b.state}: only a successful backup can be verified.")
            return
        self._verify(b.id)

    @api_work(group="backups-verify")
    async def _verify(self, backup_id: int) -> None:
        assert self.mist.api is not None
        await self.mist.api.backups.verify(backup_id)
        self.mist.notify(f"Verifying backup #{backup_id}: restoring it into a throw-away copy to check it.")
        self.load()

    def action_restore(self) -> None:
        b = self.selected()
        if b is None:
            return
        if b.state != "success":
            self.mist.notify(f"Backup #{b.id} is {b.state}: only a successful backup can be restored.")
            return
        subject = subject_label(b.kind, f"{b.project}/{b.name}")

        def chosen(values: dict[str, Any] | None) -> None:
            if not isinstance(values, dict):
                return
            target = values["target"].strip()
            if target:
                self._restore(b.id, target, None)
                return
            self.app.push_screen(
                ConfirmDialog(
                    f"Restore over {subject}",
                    f"Restore backup #{b.id} (taken {b.started_at:%Y-%m-%d %H:%M} UTC) over {subject}? "
                    f"What {b.name} holds now is replaced; the containers using it are stopped and started again.",
                    confirm_label=f"Restore over {b.name}",
                ),
                lambda yes: self._restore(b.id, None, b.name) if yes else None,
            )

        self.app.push_screen(
            FormDialog(
                f"Restore backup #{b.id} of {subject}",
                [
                    FormField(
                        "target",
                        f"Into a new {SUBJECT_WORDS.get(b.kind, b.kind)} named (empty: over {b.name} itself)",
                        placeholder=f"{b.name}-restored",
                    )
                ],
                submit_label="Restore",
            ),
            chosen,
        )

    @api_work(group="backups-restore")
    async def _restore(self, backup_id: int, target: str | None, confirm: str | None) -> None:
        assert self.mist.api is not None
        try:
            await self.mist.api.backups.restore(backup_id, target=target, confirm=confirm)
        except MistError as error:
            self.mist.notify(error.message, title="Not restored", severity="error")
            return
        where = f"into {target}" if target else f"over {confirm}"
        self.mist.notify(f"Restoring backup #{backup_id} {where}.")
        self.load()


class BackupsScreen(Screen):
    """Every backup of one project (its volumes', and its databases' where the server backs them up)."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="backups_screen.back")]

    def __init__(self, project: str) -> None:
        super().__init__()
        self.project = project

    def compose(self) -> ComposeResult:
        yield Header()
        yield BackupsPane(self.project, id="backups-pane")
        yield MistFooter()

    def on_mount(self) -> None:
        self.query_one("#backups-table", MistTable).focus()

    def tick(self) -> None:
        self.query_one(BackupsPane).tick()

    def reconnected(self) -> None:
        self.query_one(BackupsPane).load()
