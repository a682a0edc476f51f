"""Domains an app answers to: validation of names, options and custom response headers, and the reads and
writes of the ``domains`` table. The proxy's route table is computed from what is stored here."""

from __future__ import annotations

import ipaddress
import json
import re
import sqlite3
import unicodedata
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import idna

from .errors import Conflict, InvalidInput, NotFound
from .models import Domain, WwwRedirect
from .store import Row, Store, parse_ts, ts

__all__ = [
    "Domain",
    "DomainOptions",
    "WwwRedirect",
    "add_domain",
    "get_domain",
    "list_domains",
    "redirect_source",
    "remove_domain",
    "update_domain",
    "validate_domain",
    "validate_header_name",
    "validate_header_value",
    "validate_headers",
    "validate_hsts_max_age",
    "validate_options",
    "validate_path_prefix",
]


WWW_REDIRECTS: tuple[str, ...] = ("", "to-apex", "to-www")

DOMAIN_MAX = 253
LABEL_MAX = 63
HEADER_NAME_MAX = 64
HEADER_VALUE_MAX = 1024
HEADERS_MAX = 32
PATH_PREFIX_MAX = 200
HSTS_MAX_AGE_MAX = 63_072_000  # two years, the longest value the HSTS preload list asks for

# ------------------------------------------------------------------------------------------------ names


def _fail(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, field=field)


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_LDH_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# East Asian domain names legitimately mix their scripts (and Latin); Latin with Cyrillic or Greek is the
# classic look-alike attack ("\u0435xample.com" with a Cyrillic "е"), so such a label is refused.
_EAST_ASIAN = frozenset({"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO"})
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp", "Zs"})


def _script(ch: str) -> str:
    script = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
    return "EAST-ASIAN" if script in _EAST_ASIAN else script


def _check_scripts(label: str, value: str) -> None:
    scripts = {_script(ch) for ch in label if ch.isalpha()}
    if len(scripts) > 1 and not (scripts <= {"LATIN", "EAST-ASIAN"}):
        names = ", ".join(sorted(s.title() for s in scripts))
        raise _fail(
            "domain",
            f"domain {_show(value)} mixes the scripts {names} in one label, which is how look-alike "
            "domains are made: write each label in one script",
        )


def _label(label: str, value: str) -> str:
    """One label in its ASCII (A-label) form."""
    if not label:
        raise _fail("domain", f"domain {_show(value)} has an empty label: check for '..' or a leading '.'")
    if label.isascii():
        if not _LDH_LABEL.fullmatch(label):
            if len(label) > LABEL_MAX:
                raise _fail(
                    "domain",
                    f"domain {_show(value)} has a label of {len(label)} characters: use at most {LABEL_MAX}",
                )
            if label[0] == "-" or label[-1] == "-":
                raise _fail("domain", f"domain {_show(value)} has a label that starts or ends with '-'")
            raise _fail(
                "domain",
                f"domain {_show(value)} has the label {_show(label)}: use letters, digits and '-'",
            )
        if label[2:4] == "--":
            if not label.startswith("xn--"):
                raise _fail(
                    "domain",
                    f"domain {_show(value)} has '--' in the third and fourth places of {_show(label)}, "
                    "which DNS reserves for encoded labels",
                )
            try:
                decoded = idna.ulabel(label)
            except (idna.IDNAError, UnicodeError) as exc:
                raise _fail(
                    "domain", f"domain {_show(value)} has the invalid encoded label {_show(label)} ({exc})"
                ) from None
            _check_scripts(decoded, value)
        return label
    _check_scripts(label, value)
    try:
        encoded = idna.alabel(label).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise _fail(
            "domain", f"domain {_show(value)} has the label {_show(label)}, which IDNA refuses ({exc})"
        ) from None
    if len(encoded) > LABEL_MAX:
        raise _fail("domain", f"domain {_show(value)} has a label longer than {LABEL_MAX} characters encoded")
    return encoded


def validate_domain(value: str, *, allow_wildcard: bool = False) -> str:
    """A domain name in its lowercase ASCII form (internationalised labels encoded as ``xn--...``).

    Refused: IP addresses, single labels (``localhost``), URLs or ``host:port``, labels outside the
    letters-digits-hyphen rule, mixed-script labels, invisible characters, and ``*.`` unless
    ``allow_wildcard``.
    """
    if not isinstance(value, str):
        raise _fail("domain", f"domain must be text, got {type(value).__name__}")
    if not value:
        raise _fail("domain", "domain is empty: give a name such as app.example.com")
    if len(value) > DOMAIN_MAX + 1:
        raise _fail("domain", f"domain is {len(value)} characters long: use at most {DOMAIN_MAX}")
    bad = next((ch for ch in value if unicodedata.category(ch) in _INVISIBLE), None)
    if bad is not None:
        raise _fail(
            "domain",
            f"domain {_show(value)} contains the space, control or invisible character U+{ord(bad):04X}: "
            "give only the name",
        )
    if any(ch in value for ch in "/:@?#"):
        raise _fail(
            "domain",
            f"domain {_show(value)} is not a bare name: give only the host (no scheme, user, port or path)",
        )
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        pass
    else:
        raise _fail("domain", f"{_show(value)} is an IP address: a domain needs a DNS name")
    name = value.lower()
    name = name[:-1] if name.endswith(".") and name != "." else name  # the fully qualified spelling
    wildcard = name.startswith("*.")
    if wildcard:
        if not allow_wildcard:
            raise _fail(
                "domain",
                f"domain {_show(value)} is a wildcard: its certificate needs the DNS-01 challenge, which Mist "
                "does not do yet; add each name instead",
            )
        name = name[2:]
    if "*" in name:
        raise _fail("domain", f"domain {_show(value)} has '*' where only a whole first label '*.' may be")
    labels = [_label(label, value) for label in name.split(".")]
    if len(labels) < 2:
        raise _fail(
            "domain",
            f"domain {_show(value)} has a single label: use a full name such as {name or 'app'}.example.com",
        )
    if labels[-1].isdigit():
        raise _fail("domain", f"domain {_show(value)} ends in a number: that is no top-level domain")
    result = ".".join(labels)
    if wildcard:
        result = "*." + result
    if len(result) > DOMAIN_MAX:
        raise _fail("domain", f"domain {_show(value)} is {len(result)} characters encoded: use at most 253")
    return result


# ------------------------------------------------------------------------------------------------ headers

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Headers whose value Mist decides: the HSTS option, redirects, the framing of the response.
_MIST_OWNED = {
    "strict-transport-security": "use the HSTS option (--hsts SECONDS) instead",
    "location": "Mist sets it on its redirects; use the www redirect or the HTTPS option",
    "content-length": "the proxy computes it",
    "host": "it is a request header",
    "date": "the proxy sets it",
}


def validate_header_name(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail("headers", "a header name is empty: use a name such as X-Robots-Tag")
    if len(value) > HEADER_NAME_MAX:
        raise _fail("headers", f"header name {_show(value)} is too long: use at most {HEADER_NAME_MAX}")
    if not _TOKEN.fullmatch(value):
        raise _fail(
            "headers",
            f"header name {_show(value)} is not allowed: use letters, digits and - (an HTTP token)",
        )
    lower = value.lower()
    if lower in _HOP_BY_HOP:
        raise _fail("headers", f"header {value} is hop-by-hop: a proxy cannot set it on responses")
    if lower in _MIST_OWNED:
        raise _fail("headers", f"header {value} cannot be set by hand: {_MIST_OWNED[lower]}")
    return value


def validate_header_value(value: str, name: str = "header") -> str:
    """A response header value: printable ASCII and tabs, no line breaks; empty removes the header."""
    if not isinstance(value, str):
        raise _fail("headers", f"the value of {name} must be text")
    if len(value) > HEADER_VALUE_MAX:
        raise _fail(
            "headers", f"the value of {name} is {len(value)} characters long: use at most {HEADER_VALUE_MAX}"
        )
    bad = next((ch for ch in value if not (" " <= ch <= "~" or ch == "\t")), None)
    if bad is not None:
        raise _fail(
            "headers",
            f"the value of {name} contains U+{ord(bad):04X}: use printable ASCII on one line "
            "(line breaks would start a new header)",
        )
    if value != value.strip():
        raise _fail("headers", f"the value of {name} starts or ends with whitespace: remove it")
    return value


def validate_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Custom response headers, names checked case-insensitively for duplicates, sorted by name."""
    if not isinstance(headers, Mapping):
        raise _fail("headers", "headers must be a mapping of name to value")
    if len(headers) > HEADERS_MAX:
        raise _fail("headers", f"{len(headers)} headers given: use at most {HEADERS_MAX}")
    result: dict[str, str] = {}
    seen: set[str] = set()
    for key in sorted(headers, key=str.lower):
        key_ok = validate_header_name(key)
        if key_ok.lower() in seen:
            raise _fail("headers", f"header {key} is given twice (names are case-insensitive)")
        seen.add(key_ok.lower())
        result[key_ok] = validate_header_value(headers[key], key_ok)
    return result


# ------------------------------------------------------------------------------------------------ options

_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


def validate_path_prefix(value: str) -> str:
    """``""`` (the whole site) or ``/segment[/segment...]``, without a trailing slash."""
    if not isinstance(value, str):
        raise _fail("path_prefix", "path prefix must be text")
    if value in ("", "/"):
        return ""
    if len(value) > PATH_PREFIX_MAX:
        raise _fail("path_prefix", f"path prefix is too long: use at most {PATH_PREFIX_MAX} characters")
    if not value.startswith("/"):
        raise _fail("path_prefix", f"path prefix {_show(value)} must start with '/', as in /api")
    segments = value.rstrip("/").split("/")[1:]
    for segment in segments:
        if segment in ("", ".", "..") or not _PATH_SEGMENT.fullmatch(segment):
            raise _fail(
                "path_prefix",
                f"path prefix {_show(value)} has the segment {_show(segment)}: use letters, digits, "
                "'.', '_', '~' and '-' between single slashes",
            )
    return "/" + "/".join(segments)


def validate_hsts_max_age(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail("hsts_max_age", "HSTS max-age must be a whole number of seconds")
    if not 0 <= value <= HSTS_MAX_AGE_MAX:
        raise _fail(
            "hsts_max_age",
            f"HSTS max-age {value} is out of range: use 0 (off) to {HSTS_MAX_AGE_MAX} seconds (two years)",
        )
    return value


@dataclass(frozen=True)
class DomainOptions:
    """How the proxy serves one domain.

    ``https``: serve over HTTPS and redirect HTTP to it (off: plain HTTP only, no certificate).
    ``hsts_max_age``: seconds of ``Strict-Transport-Security`` on HTTPS responses (0: none).
    ``www_redirect``: ``to-apex`` routes ``www.<name>`` to a redirect to ``<name>``; ``to-www`` takes a
    ``www.`` name and routes the apex to a redirect to it.
    ``path_prefix``: only requests under this path reach the app (passed on unchanged).
    ``headers``: custom response headers (an empty value removes the header from responses).
    ``security_headers``: nosniff, ``X-Frame-Options: DENY`` and a referrer policy, unless a custom header
    of the same name says otherwise.
    """

    https: bool = True
    hsts_max_age: int = 0
    www_redirect: WwwRedirect = ""
    path_prefix: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    security_headers: bool = True


def validate_options(name: str, options: DomainOptions) -> DomainOptions:
    """The options checked against each other and the domain name, normalised."""
    if not isinstance(options.https, bool) or not isinstance(options.security_headers, bool):
        raise _fail("options", "https and security_headers are true or false")
    if options.www_redirect not in WWW_REDIRECTS:
        raise _fail(
            "www_redirect",
            f"www redirect {_show(options.www_redirect)} is not one of: to-apex, to-www (or empty for none)",
        )
    hsts = validate_hsts_max_age(options.hsts_max_age)
    if hsts and not options.https:
        raise _fail("hsts_max_age", "HSTS needs HTTPS: drop --no-https or the HSTS max-age")
    if name.startswith("*.") and options.www_redirect:
        raise _fail("www_redirect", "a wildcard domain cannot have a www redirect")
    if options.www_redirect == "to-apex" and name.startswith("www."):
        raise _fail(
            "www_redirect",
            f"{name} is the www name: add the apex {name[4:]} with the to-apex redirect instead",
        )
    if options.www_redirect == "to-www" and not name.startswith("www."):
        raise _fail(
            "www_redirect",
            f"to-www redirects the apex to the www name: add www.{name} with the to-www redirect instead",
        )
    if options.www_redirect == "to-www" and name.count(".") < 2:
        raise _fail("www_redirect", f"{name} has no apex to redirect from")
    return DomainOptions(
        https=options.https,
        hsts_max_age=hsts,
        www_redirect=options.www_redirect,
        path_prefix=validate_path_prefix(options.path_prefix),
        headers=validate_headers(options.headers),
        security_headers=options.security_headers,
    )


def redirect_source(name: str, www_redirect: str) -> str | None:
    """The other name a www redirect answers to (and sends to ``name``), or None."""
    if www_redirect == "to-apex":
        return "www." + name
    if www_redirect == "to-www":
        return name[4:]
    return None


# ------------------------------------------------------------------------------------------------ storage


DOMAIN_SELECT = """
SELECT d.*, a.name AS app, p.name AS project, p.id AS project_id
FROM domains d JOIN apps a ON a.id = d.app_id JOIN projects p ON p.id = a.project_id
"""


def _domain(row: Row) -> Domain:
    return Domain(
        id=row["id"],
        app_id=row["app_id"],
        project=row["project"],
        app=row["app"],
        name=row["name"],
        https=bool(row["https"]),
        hsts_max_age=row["hsts_max_age"],
        www_redirect=row["www_redirect"],
        path_prefix=row["path_prefix"],
        headers=json.loads(row["headers"]),
        security_headers=bool(row["security_headers"]),
        created_at=parse_ts(row["created_at"]),  # type: ignore[arg-type]
    )


async def list_domains(store: Store, app_id: int) -> list[Domain]:
    rows = await store.all(DOMAIN_SELECT + " WHERE d.app_id = ? ORDER BY d.name", (app_id,))
    return [_domain(r) for r in rows]


async def get_domain(store: Store, name: str) -> Domain:
    """The domain of that name, whichever app has it."""
    row = await store.one(DOMAIN_SELECT + " WHERE d.name = ?", (validate_domain(name, allow_wildcard=True),))
    if row is None:
        raise NotFound(f"no app has the domain {name}: see `mist domain list PROJECT/APP`")
    return _domain(row)


async def _check_free(
    store: Store,
    app_id: int,
    names: list[str],
    *,
    visible_projects: AbstractSet[int] | None,
    except_id: int | None = None,
) -> None:
    """Refuse names another domain row uses, as its name or as the source of its www redirect. The app that
    has the name is named only when the caller sees its project (``visible_projects``, None for all): to
    anyone else, domains are one namespace whose names are taken or not, and nothing tells whose."""
    project_id = await store.scalar("SELECT project_id FROM apps WHERE id = ?", (app_id,))
    rows = await store.all(DOMAIN_SELECT + " WHERE d.id != ?", (except_id or 0,))
    for row in rows:
        taken = {row["name"], redirect_source(row["name"], row["www_redirect"])}
        clash = next((n for n in names if n in taken), None)
        if clash is None:
            continue
        owner = f"{row['project']}/{row['app']}"
        if row["app_id"] == app_id:
            raise Conflict(
                f"{clash} is already a domain of {owner} (as {row['name']}): remove it first to change it",
                field="domain",
            )
        seen = (
            row["project_id"] == project_id
            or visible_projects is None
            or row["project_id"] in visible_projects
        )
        if not seen:
            raise Conflict(
                f"{clash} is already used by an app of another project: choose another name, or ask an "
                "instance admin to free it",
                field="domain",
            )
        raise Conflict(
            f"{clash} is already used by the app {owner}: remove it there first", field="domain", app=owner
        )


async def _app_exists(store: Store, app_id: int) -> None:
    if await store.scalar("SELECT 1 FROM apps WHERE id = ?", (app_id,)) is None:
        raise NotFound(f"app {app_id} does not exist")


async def add_domain(
    store: Store,
    app_id: int,
    name: str,
    options: DomainOptions | None = None,
    *,
    allow_wildcard: bool = False,
    visible_projects: AbstractSet[int] | None = frozenset(),
) -> Domain:
    """Give the app a domain. A name (or its www redirect) already used by any app is a ``Conflict``, which
    names that app only if its project is the app's own or one of ``visible_projects`` (None: all), the
    projects the caller sees."""
    name = validate_domain(name, allow_wildcard=allow_wildcard)
    opts = validate_options(name, options or DomainOptions())
    await _app_exists(store, app_id)
    names = [name, *filter(None, [redirect_source(name, opts.www_redirect)])]
    await _check_free(store, app_id, names, visible_projects=visible_projects)
    try:
        async with store.write() as w:
            domain_id = await w.execute(
                "INSERT INTO domains (app_id, name, https, hsts_max_age, www_redirect, path_prefix, headers, "
                "security_headers, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    app_id,
                    name,
                    int(opts.https),
                    opts.hsts_max_age,
                    opts.www_redirect,
                    opts.path_prefix,
                    json.dumps(dict(opts.headers), sort_keys=True),
                    int(opts.security_headers),
                    ts(),
                ),
            )
    except sqlite3.IntegrityError:
        # Another writer took the name between the check and the insert.
        await _check_free(store, app_id, names, visible_projects=visible_projects)
        raise
    row = await store.one(DOMAIN_SELECT + " WHERE d.id = ?", (domain_id,))
    assert row is not None
    return _domain(row)


async def update_domain(
    store: Store,
    app_id: int,
    name: str,
    options: DomainOptions,
    *,
    visible_projects: AbstractSet[int] | None = frozenset(),
) -> Domain:
    """Replace the options of one of the app's domains (a name taken elsewhere is told as by ``add_domain``)."""
    current = await _own_domain(store, app_id, name)
    opts = validate_options(current.name, options)
    names = [current.name, *filter(None, [redirect_source(current.name, opts.www_redirect)])]
    await _check_free(store, app_id, names, visible_projects=visible_projects, except_id=current.id)
    async with store.write() as w:
        await w.execute(
            "UPDATE domains SET https = ?, hsts_max_age = ?, www_redirect = ?, path_prefix = ?, headers = ?, "
            "security_headers = ? WHERE id = ?",
            (
                int(opts.https),
                opts.hsts_max_age,
                opts.www_redirect,
                opts.path_prefix,
                json.dumps(dict(opts.headers), sort_keys=True),
                int(opts.security_headers),
                current.id,
            ),
        )
    return await _own_domain(store, app_id, current.name)


async def _own_domain(store: Store, app_id: int, name: str) -> Domain:
    clean = validate_domain(name, allow_wildcard=True)
    row = await store.one(DOMAIN_SELECT + " WHERE d.app_id = ? AND d.name = ?", (app_id, clean))
    if row is None:
        await _app_exists(store, app_id)
        raise NotFound(f"the app has no domain {clean}: see `mist domain list PROJECT/APP`", field="domain")
    return _domain(row)


async def remove_domain(store: Store, app_id: int, name: str) -> Domain:
    """Take a domain away from the app; returns what was removed."""
    current = await _own_domain(store, app_id, name)
    async with store.write() as w:
        await w.execute("DELETE FROM domains WHERE id = ?", (current.id,))
    return current
