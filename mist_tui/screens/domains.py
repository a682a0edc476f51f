"""The app screen's Domains tab: the app's domains joined with their certificates, and the actions on them
(add, edit, remove, renew a certificate, upload one of your own)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from mist_core.errors import InvalidInput
from mist_core.models import Certificate, Domain, DomainSettings

from ..format import human_age, printable_text
from ..widgets.table import MistTable
from ..workers import api_work
from .dialogs import ConfirmDialog, FormDialog, FormField

if TYPE_CHECKING:
    from ..app import MistApp

CERT_STYLES = {"issued": "green", "pending": "yellow", "renewing": "cyan", "failed": "bold red"}
WWW_CHOICES = [("none", ""), ("www → apex", "to-apex"), ("apex → www", "to-www")]
WWW_LABELS = {"": "—", "to-apex": "→ apex", "to-www": "→ www"}
DOMAIN_COLUMNS = [
    ("name", "Domain", 26),
    ("https", "HTTPS", 5),
    ("hsts", "HSTS", 6),
    ("www", "www", 7),
    ("prefix", "Path", 8),
    ("cert", "Certificate", 52),
]


def certificate_text(domain: Domain, cert: Certificate | None, now: datetime) -> Text:
    """The certificate cell: its status in colour, then when it expires, or what went wrong and when the
    next attempt is."""
    if not domain.https:
        return Text("plain HTTP, no certificate", style="dim")
    if cert is None:
        return Text("pending", style=CERT_STYLES["pending"])
    text = Text(cert.status, style=CERT_STYLES.get(cert.status, ""))
    if cert.source == "uploaded":
        text.append(" (uploaded)", style="dim")
    if cert.status == "failed":
        if cert.next_attempt_at is not None:
            text.append(f" next try in {human_age(now, cert.next_attempt_at)}", style="dim")
        if cert.last_error:
            text.append(f" · {cert.last_error}", style="red")
    elif cert.not_after is not None:
        if cert.not_after <= now:
            text.append(" expired", style="bold red")
        else:
            text.append(f" expires in {human_age(now, cert.not_after)}", style="dim")
    elif cert.status == "pending" and cert.next_attempt_at is not None and cert.next_attempt_at > now:
        text.append(f" next try in {human_age(now, cert.next_attempt_at)}", style="dim")
    return text


def domain_row(domain: Domain, cert: Certificate | None, now: datetime) -> list[object]:
    hsts = Text("—", style="dim") if not domain.hsts_max_age else Text(human_hsts(domain.hsts_max_age))
    return [
        Text(domain.name, style="bold"),
        Text("on", style="green") if domain.https else Text("off", style="dim"),
        hsts,
        Text(
            WWW_LABELS.get(domain.www_redirect, domain.www_redirect),
            style="" if domain.www_redirect else "dim",
        ),
        Text(domain.path_prefix or "/", style="" if domain.path_prefix else "dim"),
        certificate_text(domain, cert, now),
    ]


def human_hsts(seconds: int) -> str:
    """HSTS max-age the way people write it: ``1y``, ``180d``, ``3600s``."""
    if seconds % 31536000 == 0:
        return f"{seconds // 31536000}y"
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    return f"{seconds}s"


def parse_headers(text: str) -> dict[str, str]:
    """``Name: value`` one per line; blank lines are skipped. The core checks names and values."""
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise InvalidInput(
                f"line {number} ({line.strip()!r}) has no ':': write one header per line as Name: value",
                field="headers",
            )
        headers[name.strip()] = value.strip()
    return headers


def parse_hsts(text: str) -> int:
    text = text.strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(
            f"HSTS max-age {text!r} is not a number: give seconds, such as 31536000 (a year), or 0 for none",
            field="hsts_max_age",
        ) from None


def domain_settings(values: dict[str, Any]) -> DomainSettings:
    """The form's values as ``DomainSettings`` (InvalidInput for what cannot even be parsed)."""
    return DomainSettings(
        https=bool(values["https"]),
        hsts_max_age=parse_hsts(values["hsts_max_age"]),
        www_redirect=values["www_redirect"] or "",
        path_prefix=values["path_prefix"].strip(),
        headers=parse_headers(values["headers"]),
    )


class DomainsPane(Vertical):
    """The app's domains and their certificates."""

    BINDINGS = [
        Binding("a", "add", "Add", id="domains.add"),
        Binding("e", "edit", "Edit", id="domains.edit"),
        Binding("d", "remove", "Remove", id="domains.remove"),
        Binding("r", "renew", "Renew cert", id="domains.renew"),
        Binding("u", "upload", "Upload cert", id="domains.upload"),
    ]

    def __init__(self, app_ref: str) -> None:
        super().__init__(id="domains-pane")
        self.app_ref = app_ref
        self.domains: dict[str, Domain] = {}
        self.certificates: dict[str, Certificate] = {}

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield MistTable(id="domains-table")
        yield Static(id="domain-detail")

    def on_mount(self) -> None:
        table = self.query_one(MistTable)
        for key, label, width in DOMAIN_COLUMNS:
            table.add_column(label, key=key, width=width)
        table.border_title = "Domains"
        self.refresh_domains()

    @api_work(exclusive=True, group="domains-load")
    async def refresh_domains(self) -> None:
        assert self.mist.api is not None
        domains = await self.mist.api.domains.list(self.app_ref)
        certificates = await self.mist.api.certificates.list(self.app_ref)
        self.domains = {d.name: d for d in domains}
        self.certificates = {c.domain: c for c in certificates}
        self.show()

    def show(self) -> None:
        table = self.query_one(MistTable)
        now = self.mist.clock()
        selected = table.selected_key
        table.set_rows(
            [(d.name, domain_row(d, self.certificates.get(d.name), now)) for d in self.domains.values()]
        )
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        failed = sum(1 for c in self.certificates.values() if c.status == "failed")
        title = f"Domains · {len(self.domains)}"
        if failed:
            title += f" · {failed} certificate{'s' if failed > 1 else ''} failing"
        table.border_title = title
        table.border_subtitle = "" if self.domains else "no domains yet: a adds one"
        self.show_detail()

    @on(DataTable.RowHighlighted, "#domains-table")
    def show_detail(self) -> None:
        """Everything about the highlighted domain, with the certificate's error in full (the table cuts it)."""
        domain = self._selected()
        detail = self.query_one("#domain-detail", Static)
        if domain is None:
            detail.update("")
            return
        cert = self.certificates.get(domain.name)
        now = self.mist.clock()
        text = Text()
        text.append(domain.name, style="bold")
        if domain.redirect_from:
            text.append(f"   {domain.redirect_from} redirects here", style="dim")
        if domain.path_prefix:
            text.append(f"   only paths under {domain.path_prefix}", style="dim")
        text.append("\n")
        text.append("certificate  ", style="dim")
        text.append_text(
            certificate_text(domain, cert, now) if cert is None or cert.status != "failed" else Text("")
        )
        if cert is not None and cert.status == "failed":
            text.append("failed", style=CERT_STYLES["failed"])
            text.append(f" after {cert.attempts} attempt{'s' if cert.attempts != 1 else ''}", style="dim")
            if cert.next_attempt_at is not None:
                text.append(
                    f"; next try in {human_age(now, cert.next_attempt_at)} (r tries now)", style="dim"
                )
            text.append("\n")
            text.append("error        ", style="dim")
            text.append(cert.last_error or "no detail given", style="red")
        elif cert is not None and cert.serial:
            text.append(f"   serial {cert.serial}", style="dim")
        headers = dict(domain.headers)
        text.append("\n")
        text.append("headers      ", style="dim")
        parts = [f"{k}: {v}" for k, v in headers.items()]
        if domain.https and domain.hsts_max_age:
            parts.append(f"Strict-Transport-Security: max-age={domain.hsts_max_age}")
        if domain.security_headers:
            parts.append("security headers (nosniff, frame options, referrer policy)")
        text.append(" · ".join(parts) or "none", style="" if parts else "dim")
        # The certificate's last error comes from the ACME server: shown with control characters neutralised.
        detail.update(printable_text(text))

    def _selected(self) -> Domain | None:
        key = self.query_one(MistTable).selected_key
        return self.domains.get(key) if key else None

    def _form(self, title: str, domain: Domain | None) -> FormDialog:
        async def save(values: dict[str, Any]) -> Domain:
            assert self.mist.api is not None
            settings = domain_settings(values)
            if domain is None:
                name = values["name"].strip()
                if not name:
                    raise InvalidInput("give the domain a name, such as shop.example.com", field="name")
                return await self.mist.api.domains.add(self.app_ref, name, settings)
            return await self.mist.api.domains.update(self.app_ref, domain.name, settings)

        fields = []
        if domain is None:
            fields.append(FormField("name", "Domain", "", "shop.example.com"))
        fields += [
            FormField(
                "https",
                "HTTPS (a certificate is requested; HTTP redirects to HTTPS)",
                checkbox=True,
                checked=domain.https if domain else True,
            ),
            FormField(
                "hsts_max_age",
                "HSTS max-age in seconds (0: no HSTS)",
                str(domain.hsts_max_age) if domain else "0",
                "31536000 for a year",
            ),
            FormField(
                "www_redirect", "www redirect", domain.www_redirect if domain else "", choices=WWW_CHOICES
            ),
            FormField(
                "path_prefix", "Path prefix", domain.path_prefix if domain else "", "empty: every path"
            ),
            FormField(
                "headers",
                "Response headers, one per line",
                "\n".join(f"{k}: {v}" for k, v in domain.headers.items()) if domain else "",
                "X-Robots-Tag: noindex",
                multiline=True,
            ),
        ]
        return FormDialog(title, fields, submit=save, aliases={"domain": "name"}, compact=True)

    def _after_change(self, result: object) -> None:
        if isinstance(result, Domain):
            self.mist.notify(f"{result.name} routes to {self.app_ref}.")
        if result:
            self.refresh_domains()

    def action_add(self) -> None:
        self.app.push_screen(self._form(f"Add a domain to {self.app_ref}", None), self._after_change)

    def action_edit(self) -> None:
        domain = self._selected()
        if domain is not None:
            self.app.push_screen(self._form(f"Edit {domain.name}", domain), self._after_change)

    def action_remove(self) -> None:
        domain = self._selected()
        if domain is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._remove(domain.name)

        self.app.push_screen(
            ConfirmDialog(
                f"Remove {domain.name}",
                f"Remove the domain {domain.name} from {self.app_ref}? The proxy stops routing it to the app "
                "and its certificate is no longer renewed.",
                confirm_label=f"Remove {domain.name}",
            ),
            confirmed,
        )

    @api_work(group="domains-change")
    async def _remove(self, name: str) -> None:
        assert self.mist.api is not None
        await self.mist.api.domains.remove(self.app_ref, name)
        self.mist.notify(f"Removed {name} from {self.app_ref}.")
        self.refresh_domains()

    def action_renew(self) -> None:
        domain = self._selected()
        if domain is not None:
            self._renew(domain.name)

    @api_work(group="domains-change")
    async def _renew(self, name: str) -> None:
        assert self.mist.api is not None
        cert = await self.mist.api.certificates.renew(name)
        self.certificates[name] = cert
        self.show()
        self.mist.notify(f"Certificate of {name}: {cert.status}.")

    def action_upload(self) -> None:
        domain = self._selected()
        if domain is None:
            return

        async def upload(values: dict[str, Any]) -> Certificate:
            assert self.mist.api is not None
            cert_pem = read_pem(values["cert_path"], "cert_path", "certificate")
            key_pem = read_pem(values["key_path"], "key_path", "private key")
            return await self.mist.api.certificates.upload(domain.name, cert_pem, key_pem)

        def done(result: object) -> None:
            if isinstance(result, Certificate):
                self.certificates[result.domain] = result
                self.show()
                self.mist.notify(f"{result.domain} now uses the uploaded certificate.")

        self.app.push_screen(
            FormDialog(
                f"Upload a certificate for {domain.name}",
                [
                    FormField("cert_path", "Certificate chain (PEM file)", "", "/etc/ssl/shop/fullchain.pem"),
                    FormField("key_path", "Private key (PEM file)", "", "/etc/ssl/shop/privkey.pem"),
                ],
                submit=upload,
                submit_label="Upload",
                note="Mist checks the chain, the key, the names and the dates, then stops renewing this "
                "domain through ACME.",
                aliases={"certificate": "cert_path", "chain": "cert_path", "key": "key_path"},
            ),
            done,
        )


def read_pem(path: str, field: str, what: str) -> str:
    path = path.strip()
    if not path:
        raise InvalidInput(f"give the path of the {what} file (PEM)", field=field)
    try:
        return Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a text file"
        raise InvalidInput(
            f"cannot read {path}: {reason}; give the path of the {what} file (PEM)", field=field
        ) from exc
