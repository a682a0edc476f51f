"""Modal dialogs: a confirmation that names what will be destroyed, a small form whose errors from the
API appear next to the field they concern (``err.field``) while the dialog stays open, and the one
showing of a secret (a new API token, an invitation, recovery codes). Titles, messages and values name
stored things: they are shown as plain text, never as markup, with control characters neutralised."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rich.highlighter import Highlighter
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static, TextArea

from mist_core.errors import MistError

from ..format import printable_text, shown
from ..workers import api_work


class PrintableHighlighter(Highlighter):
    """Shows an input's value with its control characters neutralised; the value itself stays exact."""

    def highlight(self, text: Text) -> None:
        text.plain = printable_text(text).plain


class PrintableTextArea(TextArea):
    """A ``TextArea`` that shows its lines with their control characters neutralised, its text exact."""

    def get_line(self, line_index: int) -> Text:
        return printable_text(super().get_line(line_index))


PRINTABLE = PrintableHighlighter()


def _as_text(value: str | Text) -> Text:
    return printable_text(value) if isinstance(value, Text) else shown(value)


class ConfirmDialog(ModalScreen[bool]):
    """Yes/no; the message says exactly what the action will do."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("y", "confirm", "Yes", show=False, id="dialog.yes"),
        Binding("n", "cancel", "No", show=False, id="dialog.no"),
    ]

    def __init__(
        self, title: str, message: str, *, confirm_label: str = "Delete", danger: bool = True
    ) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.confirm_label = confirm_label
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog" if self.danger else "dialog -safe"):
            yield Label(shown(self.title_text), classes="dialog-title")
            # Names in messages come from users: never read as markup.
            yield Static(shown(self.message), classes="dialog-message")
            # The buttons name the keys that answer: y and n work from anywhere in the dialog.
            with Horizontal(classes="dialog-buttons"):
                yield Button("n  Cancel", id="cancel")
                yield Button(
                    f"y  {self.confirm_label}", id="confirm", variant="error" if self.danger else "primary"
                )

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


@dataclass
class FormField:
    name: str
    label: str
    value: str = ""
    placeholder: str = ""
    password: bool = False
    checkbox: bool = False
    checked: bool = False
    # A select: (label, value) pairs; ``value`` is the one chosen at first. An empty list makes a select
    # that starts blank (``placeholder`` as its prompt) and is filled later with ``set_options``.
    choices: list[tuple[str, str]] | None = None
    # Several lines of text (headers, one per line).
    multiline: bool = False


class FormCheckbox(Checkbox, inherit_bindings=False):
    """A form's checkbox: Space toggles it, and Enter submits the form as it does from any other field."""

    BINDINGS = [Binding("space", "toggle_button", "Toggle", show=False, id="dialog.toggle")]


class FormDialog(ModalScreen[Any]):
    """A few inputs and checkboxes. With ``submit``, the values go to it in a worker; a ``MistError`` is
    shown in place (next to its field when it names one) and the dialog stays open; its result is what
    the dialog returns. Without ``submit`` the dialog returns the values dict."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        # Reached only from fields that do not take Enter themselves (a checkbox); a button presses itself.
        Binding("enter", "submit", "Submit", show=False, id="dialog.submit"),
    ]

    def __init__(
        self,
        title: str,
        fields: list[FormField],
        *,
        submit: Callable[[dict[str, Any]], Awaitable[Any]] | None = None,
        submit_label: str = "Save",
        note: str | Text = "",
        aliases: dict[str, str] | None = None,
        compact: bool = False,
        danger: bool = False,
    ) -> None:
        super().__init__()
        # A form that destroys something (deleting an account) looks like a confirmation: red.
        self.danger = danger
        # Compact fields (one line each, no border) let a long form fit a 24-line terminal.
        self.compact = compact
        # The core's name for a field, when it differs from the form's (its ``domain`` is the form's ``name``).
        self.aliases = aliases or {}
        self.title_text = title
        self.fields = fields
        self.submit = submit
        self.submit_label = submit_label
        self.note = note

    def compose(self) -> ComposeResult:
        classes = "dialog" + (" -compact" if self.compact else "") + (" -danger" if self.danger else "")
        with Vertical(classes=classes):
            yield Label(shown(self.title_text), classes="dialog-title")
            if self.note:
                yield Static(_as_text(self.note), classes="dialog-message")
            for field in self.fields:
                if field.checkbox:
                    yield FormCheckbox(shown(field.label), field.checked, id=f"field-{field.name}")
                elif field.choices is not None:
                    yield Label(shown(field.label), classes="field-label", id=f"label-{field.name}")
                    if field.choices:
                        yield Select(
                            [(shown(label), value) for label, value in field.choices],
                            value=field.value,
                            allow_blank=False,
                            id=f"field-{field.name}",
                            compact=self.compact,
                        )
                    else:
                        yield Select(
                            [],
                            prompt=field.placeholder or "Select",
                            id=f"field-{field.name}",
                            compact=self.compact,
                        )
                elif field.multiline:
                    yield Label(shown(field.label), classes="field-label", id=f"label-{field.name}")
                    yield PrintableTextArea(
                        field.value,
                        id=f"field-{field.name}",
                        soft_wrap=False,
                        show_line_numbers=False,
                        placeholder=field.placeholder,
                        compact=self.compact,
                    )
                else:
                    yield Label(shown(field.label), classes="field-label", id=f"label-{field.name}")
                    yield Input(
                        field.value,
                        placeholder=field.placeholder,
                        password=field.password,
                        highlighter=PRINTABLE,
                        id=f"field-{field.name}",
                        compact=self.compact,
                    )
                yield Label("", id=f"error-{field.name}", classes="field-error")
            yield Label("", id="error-form", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.submit_label, id="submit", variant="error" if self.danger else "primary")

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in self.fields:
            widget = self.query_one(f"#field-{field.name}")
            out[field.name] = widget.text if isinstance(widget, TextArea) else widget.value  # type: ignore[attr-defined]
        return out

    def show_error(self, error: MistError) -> None:
        for label in self.query(".field-error").results(Label):
            label.update("")
            label.remove_class("-shown")
        names = {f.name for f in self.fields}
        field = self.aliases.get(error.field or "", error.field)
        target = field if field in names else "form"
        label = self.query_one(f"#error-{target}", Label)
        label.update(shown(f"✕ {error.message}"))
        label.add_class("-shown")

    def action_submit(self) -> None:
        self._submitted()

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def _submitted(self) -> None:
        if self.submit is None:
            self.dismiss(self.values())
        else:
            self._run_submit(self.values())

    @api_work(exclusive=True, group="dialog-submit")
    async def _run_submit(self, values: dict[str, Any]) -> None:
        assert self.submit is not None
        try:
            result = await self.submit(values)
        except MistError as error:
            self.show_error(error)
            return
        self.dismiss(result if result is not None else values)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class PromptDialog(FormDialog):
    """One text value; returns the string (or None when cancelled)."""

    def __init__(
        self,
        title: str,
        *,
        label: str = "",
        value: str = "",
        placeholder: str = "",
        submit_label: str = "OK",
        submit: Callable[[str], Awaitable[Any]] | None = None,
        note: str = "",
    ) -> None:
        async def submit_one(values: dict[str, Any]) -> Any:
            assert submit is not None
            await submit(values["value"])
            return values["value"]

        super().__init__(
            title,
            [FormField("value", label, value, placeholder)],
            submit=submit_one if submit else None,
            submit_label=submit_label,
            note=note,
        )

    def dismiss(self, result: Any = None):  # type: ignore[override]
        if isinstance(result, dict):
            result = result["value"]
        return super().dismiss(result)


class SecretDialog(ModalScreen[None]):
    """A secret Mist keeps only a hash of, shown this once: the message says what it is for, ``c`` copies
    it to the clipboard (OSC 52: most terminals, also over SSH), and the mouse can select it."""

    BINDINGS = [
        Binding("c", "copy", "Copy", id="secret.copy"),
        Binding("escape", "close", "Done", id="secret.close"),
        Binding("enter", "close", "Done", show=False, id="secret.done"),
    ]

    NOTE = (
        "Shown only now: Mist keeps a hash, not the secret. Press c to copy it, or select it with the mouse."
    )

    def __init__(self, title: str, message: str, secret: str, *, hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.secret = secret
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -secret"):
            yield Label(shown(self.title_text), classes="dialog-title")
            yield Static(shown(self.message), classes="dialog-message")
            yield Static(shown(self.secret), id="secret-value")
            yield Static(self.NOTE + (f"\n{self.hint}" if self.hint else ""), classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Copy", id="copy")
                yield Button("Done", id="done", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#done", Button).focus()

    @on(Button.Pressed, "#copy")
    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.secret)
        self.app.notify("Copied to the clipboard (where the terminal allows it).", timeout=3)

    @on(Button.Pressed, "#done")
    def action_close(self) -> None:
        self.dismiss(None)


class CopyDialog(SecretDialog):
    """A value to paste somewhere else (a public key, an address to open), with the same ``c`` to copy."""

    NOTE = "Press c to copy it, or select it with the mouse."
