"""The commands about the domains an app answers to and their TLS certificates: add, change, remove and list
domains; show, renew and upload certificates."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import InvalidInput, NotFound
from ..models import Certificate, Domain, DomainSettings
from .context import CommandTable, Context, app_ref, confirm_deletion, invalid_from_validation
from .format import format_table, human_time
from .output import EXIT_FAILURE, EXIT_OK, Text
from .parser import WWW_CHOICES

command = CommandTable()

_WWW_NAMES = {value: name for name, value in WWW_CHOICES.items() if value}


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` as a pair; the value may itself contain ``:``. The core checks names and values."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise InvalidInput(
            f"{text!r} is not a header: write it as 'Name: value', for example 'X-Robots-Tag: noindex'",
            field="headers",
        )
    return name.strip(), value.strip()


def _domain_fields(a: Namespace, current: DomainSettings) -> dict[str, Any]:
    """The settings the options change on top of ``current`` (those left out are not in the result)."""
    fields: dict[str, Any] = {}
    if a.https is not None:
        fields["https"] = a.https
    if a.hsts is not None:
        fields["hsts_max_age"] = a.hsts
    if a.www is not None:
        fields["www_redirect"] = WWW_CHOICES[a.www]
    if a.path_prefix is not None:
        fields["path_prefix"] = a.path_prefix
    if a.security_headers is not None:
        fields["security_headers"] = a.security_headers
    added = [parse_header(h) for h in a.headers or []]
    removed = {n.strip().lower() for n in getattr(a, "remove_header", None) or []}
    if added or removed or getattr(a, "clear_headers", False):
        headers = {} if getattr(a, "clear_headers", False) else dict(current.headers)
        headers = {k: v for k, v in headers.items() if k.lower() not in removed}
        for name, value in added:
            # A header given again replaces the stored one, whatever its case.
            headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
            headers[name] = value
        fields["headers"] = headers
    return fields


def _settings_of(domain: Domain) -> DomainSettings:
    return DomainSettings(**domain.model_dump(include=set(DomainSettings.model_fields)))


def _same_domain(a: str, b: str) -> bool:
    return a.strip().rstrip(".").lower() == b.strip().rstrip(".").lower()


@command("domain", "add")
async def cmd_domain_add(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    try:
        settings = DomainSettings(**_domain_fields(ctx.args, DomainSettings()))
    except ValidationError as err:
        raise invalid_from_validation(err) from None
    domain = await ctx.api.domains.add(ref, ctx.args.domain, settings)
    text = Text(f"Added {domain.name} to {ref}")
    if domain.https:
        text.note(f"A certificate is requested for it; follow it with: mist cert status {ref}")
    ctx.out.result(domain, text)
    return EXIT_OK


@command("domain", "set")
async def cmd_domain_set(ctx: Context) -> int:
    a = ctx.args
    ref = app_ref(a.app)
    current = next((d for d in await ctx.api.domains.list(ref) if _same_domain(d.name, a.domain)), None)
    if current is None:
        raise NotFound(f"{ref} has no domain {a.domain}: see mist domain list {ref}", field="domain")
    base = _settings_of(current)
    fields = _domain_fields(a, base)
    if not fields:
        raise InvalidInput(
            "nothing to change: give at least one option (see mist domain set --help)", field="domain"
        )
    try:
        settings = DomainSettings(**{**base.model_dump(), **fields})
    except ValidationError as err:
        raise invalid_from_validation(err) from None
    domain = await ctx.api.domains.update(ref, current.name, settings)
    ctx.out.result(domain, f"Updated {domain.name} of {ref}")
    return EXIT_OK


@command("domain", "remove")
async def cmd_domain_remove(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    name = ctx.args.domain
    if not confirm_deletion(ctx, "the domain", name):
        return EXIT_FAILURE
    await ctx.api.domains.remove(ref, name)
    ctx.out.result({"removed": name, "app": ref}, f"Removed {name} from {ref}")
    return EXIT_OK


def _retry(c: Certificate) -> str:
    return f"next retry {human_time(c.next_attempt_at)}" if c.next_attempt_at else "no retry planned"


def certificate_summary(domain: Domain, cert: Certificate | None) -> str | None:
    """One cell saying where a domain's certificate stands: its expiry, or its error and next retry."""
    if cert is None:
        return "none (plain HTTP)" if not domain.https else "not requested yet"
    if cert.status == "failed":
        return f"failed: {cert.last_error or 'no error recorded'}; {_retry(cert)}"
    if cert.not_after is not None:
        return f"{cert.status}, expires {human_time(cert.not_after)}"
    return cert.status


@command("domain", "list")
async def cmd_domain_list(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    domains = await ctx.api.domains.list(ref)
    certificates = {c.domain: c for c in await ctx.api.certificates.list(ref)}
    rows = [
        (
            d.name,
            d.https,
            d.hsts_max_age or None,
            _WWW_NAMES.get(d.www_redirect),
            d.path_prefix or None,
            certificate_summary(d, certificates.get(d.name)),
        )
        for d in domains
    ]
    ctx.out.result(
        [{**d.model_dump(mode="json"), "certificate": certificates.get(d.name)} for d in domains],
        lambda: format_table(["DOMAIN", "HTTPS", "HSTS", "WWW", "PREFIX", "CERTIFICATE"], rows),
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- certificates


def certificates_table(certificates: list[Certificate]) -> str:
    rows = [
        (
            c.domain,
            c.status,
            c.source,
            human_time(c.not_after) if c.not_after else None,
            c.last_error or None,
            human_time(c.next_attempt_at) if c.next_attempt_at and c.status != "issued" else None,
        )
        for c in certificates
    ]
    return format_table(["DOMAIN", "STATUS", "SOURCE", "EXPIRES", "ERROR", "NEXT RETRY"], rows)


@command("cert", "status")
async def cmd_cert_status(ctx: Context) -> int:
    ref = app_ref(ctx.args.app) if ctx.args.app else None
    certificates = await ctx.api.certificates.list(ref)
    ctx.out.result(certificates, lambda: certificates_table(certificates))
    return EXIT_OK


@command("cert", "renew")
async def cmd_cert_renew(ctx: Context) -> int:
    cert = await ctx.api.certificates.renew(ctx.args.domain)
    ctx.out.result(
        cert,
        Text(f"Renewal of the certificate for {cert.domain} requested: {cert.status}").note(
            "Follow it with: mist cert status"
        ),
    )
    return EXIT_OK


def _read_pem(path: str, field: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{path} is not a PEM text file: give the {what} in PEM form", field=field
        ) from None
    except OSError as err:
        raise InvalidInput(f"cannot read {path}: {err.strerror or err}", field=field) from None


@command("cert", "upload")
async def cmd_cert_upload(ctx: Context) -> int:
    a = ctx.args
    cert_pem = _read_pem(a.cert, "cert", "certificate")
    key_pem = _read_pem(a.key, "key", "private key")
    cert = await ctx.api.certificates.upload(a.domain, cert_pem, key_pem)
    ctx.out.result(
        cert,
        f"Uploaded the certificate for {cert.domain} (serial {cert.serial or '-'}, "
        f"expires {human_time(cert.not_after)})",
    )
    return EXIT_OK
