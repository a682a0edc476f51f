"""Checks for every value a user can give Mist, before it reaches a container name, a git command line, a
Docker mount or a log line. Each function returns the normalised value or raises ``InvalidInput`` naming the
field, what was wrong and what is allowed.

The rules and the reasons for them are in ``docs/decisions/0002-input-validation.md``.
"""

from __future__ import annotations

import ipaddress
import math
import os
import posixpath
import re
import shlex
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import InvalidInput
from .models import AppChanges, AppSpec, DatabaseSpec, HealthCheck, Volume

__all__ = [
    "app_ref",
    "app_spec",
    "apply_changes",
    "command",
    "cpus",
    "description",
    "env_key",
    "env_value",
    "format_dotenv",
    "git_ref",
    "git_url",
    "health",
    "health_path",
    "is_sha",
    "memory",
    "name",
    "parse_dotenv",
    "port",
    "port_bindings",
    "publish",
    "redact_url",
    "repo_path",
    "restart_policy",
    "restart_policy_for_docker",
    "tags",
    "volume",
    "volume_spec",
]

# ------------------------------------------------------------------------------------------------ helpers


def _show(value: object, limit: int = 60) -> str:
    """The bad value quoted for a message, cut short so a megabyte of input does not become the message."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _show_url(url: str) -> str:
    """A URL quoted for a message, with its credentials masked: messages end up in logs and API responses."""
    return _show(redact_url(url), 80)


def _fail(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, field=field)


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _fail(what, f"{what} must be text, got {type(value).__name__} {_show(value)}")
    return value


# Invisible or layout-changing characters: control codes, format characters (zero-width spaces, bidi
# overrides that make text read differently from how it runs), surrogates, line and paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def _first_invisible(value: str, *, allow: str = "") -> str | None:
    for ch in value:
        if ch in allow:
            continue
        if unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
            return ch
    return None


def _describe_char(ch: str) -> str:
    if ch.isascii() and ch.isprintable():
        return ch
    label = unicodedata.name(ch, "")
    code = f"U+{ord(ch):04X}"
    return f"{code} {label}".strip() if label else code


# ------------------------------------------------------------------------------------------------ names

_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")
NAME_MAX = 40


def name(value: str, what: str = "name") -> str:
    """A project or app name: it ends up in container names, image tags and DNS labels."""
    value = _require_str(value, what)
    allowed = "lowercase letters, digits and '-' (not at either end), at most 40 characters"
    if not value:
        raise _fail(what, f"{what} is empty: use {allowed}")
    if _NAME_RE.fullmatch(value):
        return value
    if len(value) > NAME_MAX:
        raise _fail(what, f"{what} {_show(value)} is {len(value)} characters long: use at most {NAME_MAX}")
    if value.isascii() and _NAME_RE.fullmatch(value.lower()):
        raise _fail(what, f"{what} {_show(value)} has uppercase letters: use lowercase ({value.lower()!r})")
    if value[0] == "-" or value[-1] == "-":
        raise _fail(what, f"{what} {_show(value)} starts or ends with '-': use {allowed}")
    bad = next((ch for ch in value if not (ch.isascii() and (ch.isalnum() or ch == "-"))), None)
    if bad is not None:
        raise _fail(what, f"{what} {_show(value)} contains {_describe_char(bad)!r}: use {allowed}")
    raise _fail(what, f"{what} {_show(value)} is not allowed: use {allowed}")


def app_ref(value: str) -> tuple[str, str]:
    """``"project/app"`` split into its two validated names."""
    value = _require_str(value, "app")
    parts = value.split("/")
    if len(parts) != 2:
        raise _fail("app", f"app {_show(value)} is not 'project/app': name the project, then the app")
    return name(parts[0], "project"), name(parts[1], "app")


TAGS_MAX = 20


def tags(values: Iterable[str]) -> list[str]:
    if isinstance(values, str):
        raise _fail("tags", f"tags must be a list of names, got the text {_show(values)}")
    result = sorted({name(v, "tag") for v in values})
    if len(result) > TAGS_MAX:
        raise _fail("tags", f"{len(result)} tags given: use at most {TAGS_MAX}")
    return result


DESCRIPTION_MAX = 500


def description(value: str) -> str:
    value = _require_str(value, "description")
    if len(value) > DESCRIPTION_MAX:
        raise _fail(
            "description", f"description is {len(value)} characters long: use at most {DESCRIPTION_MAX}"
        )
    bad = _first_invisible(value)
    if bad is not None:
        raise _fail(
            "description",
            f"description {_show(value)} contains the control or invisible character {_describe_char(bad)}: "
            "use one line of visible text",
        )
    return value


# ------------------------------------------------------------------------------------------------ git URLs

# Characters a shell, a config parser or a log reader could give meaning to. None has a place in the URLs
# Mist accepts (percent-encode them where a server really needs one).
_URL_FORBIDDEN = set(";|&$`<>(){}\\'\"!*#?^[]") - {"[", "]"}
_OPTION_LIKE = re.compile(r"(?:^|[^A-Za-z0-9])--?[A-Za-z][A-Za-z0-9-]*=|upload-pack|receive-pack", re.I)
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_URL_USER = re.compile(r"[A-Za-z0-9._~%+-]+")
_SCP_LIKE = re.compile(
    r"(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@(?P<host>\[[0-9A-Fa-f:.]+\]|[^/:@\[\]]+):(?P<path>.*)"
)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
_PLAIN_SCHEMES = ("http", "git")
GIT_URL_MAX = 2048


def _git_host(host: str, url: str) -> str:
    if not host:
        raise _fail("git_url", f"git URL {_show_url(url)} has no host: write scheme://host/path")
    if host.startswith("["):
        inner = host[1:-1] if host.endswith("]") else ""
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise _fail(
                "git_url", f"git URL {_show_url(url)} has an invalid IPv6 host {_show(host)}"
            ) from None
        return host.lower()
    if host.startswith("-"):
        raise _fail(
            "git_url", f"git URL {_show_url(url)} has a host starting with '-': that is an option, not a host"
        )
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise _fail(
            "git_url",
            f"git URL {_show_url(url)} has an invalid host {_show(host)}: use a DNS name or an IP address",
        )
    return host.lower()


def _no_dotdot(path: str, url: str) -> None:
    segments = unquote(path).replace("\\", "/").split("/")
    if ".." in segments:
        raise _fail(
            "git_url", f"git URL {_show_url(url)} has a '..' path segment: give the repository path directly"
        )


def _local_git_path(path: str, url: str, allowed_roots: Sequence[Path]) -> str:
    if not allowed_roots:
        raise _fail(
            "git_url",
            f"git URL {_show_url(url)} is a local path, and local repositories are not enabled on this server: "
            "use an https:// or ssh:// URL",
        )
    if not path.startswith("/"):
        raise _fail("git_url", f"git URL {_show_url(url)} is not an absolute path: write /full/path/to/repo")
    if "%" in path:
        raise _fail(
            "git_url", f"git URL {_show_url(url)} has '%' in a local path: give the path without encoding"
        )
    _no_dotdot(path, url)
    normal = "/" + posixpath.normpath(path).lstrip("/")
    real = Path(os.path.realpath(normal))
    for root in allowed_roots:
        real_root = Path(os.path.realpath(root))
        if real == real_root or real.is_relative_to(real_root):
            return "file://" + normal
    roots = ", ".join(str(r) for r in allowed_roots)
    raise _fail(
        "git_url",
        f"git URL {_show_url(url)} is outside the directories local repositories may come from ({roots})",
    )


def git_url(value: str, *, allowed_roots: Sequence[Path] = ()) -> str:
    """A repository URL that git may fetch from, and that cannot be read by git as an option or a helper.

    Accepted: ``https://[user[:token]@]host[:port]/path``; ``ssh://[user@]host[:port]/path``; scp-like
    ``user@host:path``; ``file:///abs/path`` and bare absolute paths (returned as ``file://...``) inside one of
    ``allowed_roots`` once symlinks are resolved; ``http://`` and ``git://`` only on the loopback interface.
    """
    url = _require_str(value, "git_url")
    if not url:
        raise _fail("git_url", "git URL is empty: give an https://, ssh:// or user@host:path URL")
    if len(url) > GIT_URL_MAX:
        raise _fail("git_url", f"git URL is {len(url)} characters long: use at most {GIT_URL_MAX}")
    if url.startswith("-"):
        raise _fail("git_url", f"git URL {_show_url(url)} starts with '-': git would read it as an option")
    if _OPTION_LIKE.search(url):
        raise _fail(
            "git_url", f"git URL {_show_url(url)} contains a git option: give only the repository URL"
        )
    if re.match(r"[A-Za-z0-9+.-]*::", url):
        raise _fail(
            "git_url",
            f"git URL {_show_url(url)} names a git remote helper ('transport::address'): "
            "use an https://, ssh:// or user@host:path URL",
        )
    if not url.isascii():
        wide = next(ch for ch in url if not ch.isascii())
        raise _fail(
            "git_url",
            f"git URL {_show_url(url)} contains the non-ASCII character {_describe_char(wide)}: "
            "use the punycode host name and percent-encode the path",
        )
    bad = next((ch for ch in url if ch.isspace() or not ch.isprintable()), None)
    if bad is not None:
        raise _fail(
            "git_url", f"git URL {_show_url(url)} contains whitespace or a control character ({bad!r})"
        )
    bad = next((ch for ch in url if ch in _URL_FORBIDDEN), None)
    if bad is not None:
        raise _fail(
            "git_url",
            f"git URL {_show_url(url)} contains {bad!r}, which has no place in a repository URL",
        )
    for match in re.finditer(r"%([0-9A-Fa-f]{2})?", url):
        if match.group(1) is None:
            raise _fail(
                "git_url", f"git URL {_show_url(url)} has a '%' that is not followed by two hex digits"
            )
        if int(match.group(1), 16) < 0x20 or int(match.group(1), 16) == 0x7F:
            raise _fail("git_url", f"git URL {_show_url(url)} encodes a control character ({match.group(0)})")

    if url.startswith("/"):
        return _local_git_path(url, url, allowed_roots)

    scheme_match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if scheme_match is None:
        scp = _SCP_LIKE.fullmatch(url)
        if scp is None:
            raise _fail(
                "git_url",
                f"git URL {_show_url(url)} is not a URL git can fetch from: use https://host/path, "
                "ssh://host/path, user@host:path or an absolute path",
            )
        _git_host(scp["host"], url)
        path = scp["path"]
        if not path or path.startswith("-"):
            raise _fail(
                "git_url", f"git URL {_show_url(url)} needs a repository path after ':' (user@host:org/repo)"
            )
        _no_dotdot(path, url)
        return url

    scheme = scheme_match.group(1).lower()
    rest = url[scheme_match.end() :]
    if scheme == "file":
        if not rest.startswith("/"):
            raise _fail(
                "git_url",
                f"git URL {_show_url(url)} names a host in a file URL: write file:///absolute/path",
            )
        return _local_git_path(rest, url, allowed_roots)
    if scheme not in ("https", "ssh", *_PLAIN_SCHEMES):
        raise _fail(
            "git_url",
            f"git URL {_show_url(url)} uses the scheme {scheme!r}: use https://, ssh:// or user@host:path",
        )
    try:
        parts = urlsplit(scheme + "://" + rest)
        port_number = parts.port
    except ValueError as exc:
        raise _fail("git_url", f"git URL {_show_url(url)} is malformed: {exc}") from None
    netloc = parts.netloc
    userinfo, _, hostport = netloc.rpartition("@")
    host = hostport
    if hostport.startswith("["):
        host = hostport[: hostport.find("]") + 1]
    elif ":" in hostport:
        host = hostport.split(":", 1)[0]
    host = _git_host(host, url)
    if port_number is not None and not 1 <= port_number <= 65535:
        raise _fail("git_url", f"git URL {_show_url(url)} has port {port_number}: use 1-65535")
    if userinfo:
        user, has_password, _password = userinfo.partition(":")
        if not user or not _URL_USER.fullmatch(user):
            raise _fail("git_url", f"git URL {_show_url(url)} has an invalid user name before '@'")
        if has_password and scheme == "ssh":
            raise _fail(
                "git_url",
                "ssh URLs cannot carry a password: use a deploy key, or an https URL with a token",
            )
    if scheme in _PLAIN_SCHEMES and host not in _LOOPBACK_HOSTS:
        raise _fail(
            "git_url",
            f"git URL {_show_url(url)} uses unencrypted {scheme}://, allowed only for 127.0.0.1 and localhost: "
            "use https:// or ssh://",
        )
    if parts.query or parts.fragment:
        raise _fail(
            "git_url", f"git URL {_show_url(url)} has a query or fragment: give only the repository URL"
        )
    if parts.path in ("", "/"):
        raise _fail(
            "git_url", f"git URL {_show_url(url)} has no repository path: write {scheme}://host/owner/repo"
        )
    _no_dotdot(parts.path, url)
    return scheme + "://" + rest


_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def redact_url(url: str) -> str:
    """``url`` (or any text holding URLs) with credentials masked.

    The password of ``https://user:token@host`` becomes ``***``; a lone user name on http(s) is masked too,
    because hosts accept a token there (``https://<token>@github.com/...``). ssh user names are kept.
    """

    def mask(match: re.Match[str]) -> str:
        scheme, userinfo = match["scheme"], match["userinfo"]
        user, has_password, _ = userinfo.partition(":")
        if has_password:
            return f"{scheme}{user}:***@"
        if scheme.lower().startswith("http"):
            return f"{scheme}***@"
        return match.group(0)

    return _CREDENTIALS_IN_URL.sub(mask, url)


# ------------------------------------------------------------------------------------------------ git refs


def http_url(value: str, field: str) -> str:
    """An http(s) address without credentials in it (a git provider's, its API's)."""
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise InvalidInput(f"{value!r} is not an http(s) address without credentials", field=field)
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise InvalidInput(f"{value!r} contains spaces or control characters", field=field)
    return value


_REPO_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")


def repo_name(repo: str) -> str:
    """A repository on a git provider, ``OWNER/NAME`` (GitLab groups nest: ``GROUP/SUB/NAME``)."""
    repo = repo.strip().strip("/").removesuffix(".git")
    parts = repo.split("/")
    if not 2 <= len(parts) <= 20 or any(not _REPO_PART.fullmatch(p) or ".." in p for p in parts):
        raise InvalidInput(f"{repo!r} is not OWNER/NAME (letters, digits, . _ -)", field="repo")
    return repo


_HEX = re.compile(r"[0-9a-f]{7,40}")
# git allows these in ref names, but no real branch needs them and each one means something to a shell,
# a log viewer or a config file that a ref may end up in.
_REF_SHELL = frozenset(";|&$`<>(){}'\"")
REF_MAX = 200


def is_sha(value: str) -> bool:
    """Whether ``value`` looks like a full or abbreviated commit sha (7 to 40 lowercase hex digits)."""
    return bool(_HEX.fullmatch(value))


def git_ref(value: str, what: str = "ref") -> str:
    """A branch, tag or commit sha, following ``git check-ref-format --allow-onelevel`` plus a few more
    rules that keep a ref from being read as an option or a refspec."""
    ref = _require_str(value, what)
    if not ref:
        raise _fail(what, f"{what} is empty: give a branch, a tag or a commit sha")
    if len(ref) > REF_MAX:
        raise _fail(what, f"{what} is {len(ref)} characters long: use at most {REF_MAX}")

    def refuse(problem: str) -> InvalidInput:
        return _fail(what, f"{what} {_show(ref)} {problem}: give a branch, a tag or a commit sha")

    if ref.startswith("-"):
        raise refuse("starts with '-', so git would read it as an option")
    if ref.startswith("+"):
        raise refuse("starts with '+'")
    if ".." in ref:
        raise refuse("contains '..'")
    if "@{" in ref:
        raise refuse("contains '@{'")
    for ch in ref:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise refuse(f"contains the control character {ch!r}")
        if ch == " ":
            raise refuse("contains a space")
        if ch in "~^:?*[\\":
            raise refuse(f"contains {ch!r}, which git does not allow in ref names")
        if ch in _REF_SHELL:
            raise refuse(f"contains {ch!r}, which Mist does not allow in ref names")
    bad = _first_invisible(ref)
    if bad is not None:
        raise refuse(f"contains the invisible character {_describe_char(bad)}")
    if ref == "@":
        raise refuse("is '@' alone")
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        raise refuse("starts or ends with '/' or has an empty component")
    if ref.endswith("."):
        raise refuse("ends with '.'")
    for component in ref.split("/"):
        if component.startswith("."):
            raise refuse("has a component starting with '.'")
        if component.endswith(".lock"):
            raise refuse("has a component ending with '.lock'")
    return ref


# ------------------------------------------------------------------------------------------------ paths


def repo_path(value: str, what: str = "path") -> str:
    """A relative path inside a repository (Dockerfile, build context), normalised: ``./a//b`` -> ``a/b``."""
    path = _require_str(value, what)
    if len(path) > 1024:
        raise _fail(what, f"{what} is {len(path)} characters long: use at most 1024")
    bad = _first_invisible(path)
    if bad is not None:
        raise _fail(
            what, f"{what} {_show(path)} contains the control or invisible character {_describe_char(bad)}"
        )
    if "\\" in path:
        raise _fail(what, f"{what} {_show(path)} contains a backslash: separate directories with '/'")
    if path.startswith("/") or path.startswith("~"):
        raise _fail(what, f"{what} {_show(path)} is absolute: give a path relative to the repository root")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _fail(what, f"{what} {_show(path)} has a '..' component: it must stay inside the repository")
    if any(p.startswith("-") for p in parts):
        raise _fail(what, f"{what} {_show(path)} has a component starting with '-': rename it")
    return "/".join(parts) or "."


# ------------------------------------------------------------------------------------------------ numbers


def _integer(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise _fail(what, f"{what} must be a whole number, got {_show(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,10}", value.strip()):
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _fail(what, f"{what} must be a whole number, got {_show(value)}")


def port(value: int | str, what: str = "port") -> int:
    number = _integer(value, what)
    if not 1 <= number <= 65535:
        raise _fail(what, f"{what} {number} is out of range: use 1-65535")
    return number


def publish(value: str) -> str:
    """A published port: ``[ip:]hostport:containerport[/tcp|/udp]``, ``ip::containerport`` (a host port
    Docker picks, on that address) or ``containerport``, normalised (``/tcp`` is the default and dropped;
    IPv6 addresses in brackets)."""
    spec = _require_str(value, "publish")
    usage = (
        "use 'hostport:containerport', 'ip:hostport:containerport' or 'containerport', with an optional /udp"
    )
    if not spec or len(spec) > 100 or not spec.isascii() or any(ch.isspace() for ch in spec):
        raise _fail("publish", f"published port {_show(spec)} is not valid: {usage}")
    body, slash, proto = spec.partition("/")
    proto = proto.lower()
    if slash and proto not in ("tcp", "udp"):
        raise _fail("publish", f"published port {_show(spec)} has protocol {proto!r}: use /tcp or /udp")
    ip: str | None = None
    if body.startswith("["):
        close = body.find("]")
        if close < 0 or body[close + 1 : close + 2] != ":":
            raise _fail(
                "publish", f"published port {_show(spec)} is not valid: write [ipv6]:hostport:containerport"
            )
        ip_text, ports = body[1:close], body[close + 2 :].split(":")
        try:
            ip = f"[{ipaddress.IPv6Address(ip_text).compressed}]"
        except ValueError:
            raise _fail("publish", f"published port {_show(spec)} has an invalid IPv6 address") from None
        if len(ports) != 2:
            raise _fail("publish", f"published port {_show(spec)} is not valid: {usage}")
    else:
        fields = body.split(":")
        if len(fields) > 3:
            raise _fail(
                "publish", f"published port {_show(spec)} is not valid: write IPv6 addresses in brackets"
            )
        if len(fields) == 3:
            try:
                ip = ipaddress.IPv4Address(fields[0]).compressed
            except ValueError:
                raise _fail(
                    "publish", f"published port {_show(spec)} has an invalid IP address {fields[0]!r}"
                ) from None
            ports = fields[1:]
        else:
            ports = fields
    # With an address, an empty host port lets Docker pick one (``127.0.0.1::8080``), as ``docker run -p``.
    any_host_port = ip is not None and ports[0] == ""
    numbers = [port(p, "publish") if re.fullmatch(r"[0-9]+", p) else None for p in ports[any_host_port:]]
    if None in numbers:
        raise _fail("publish", f"published port {_show(spec)} is not valid: {usage}")
    text = ":".join([""] * any_host_port + [str(n) for n in numbers])
    if ip is not None:
        text = f"{ip}:{text}"
    return text + ("/udp" if proto == "udp" else "")


LOG_TAIL_MAX = 100_000


def log_tail(value: int | str | None) -> int | None:
    """How many of the last log lines to show: a number from 0 to ``LOG_TAIL_MAX``, or None (``"all"``) for
    every line; an empty value is the default, 200."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 200
        if text == "all":
            return None
        if not re.fullmatch(r"-?[0-9]{1,12}", text):
            raise _fail("tail", f"tail must be a number of lines or 'all', not {_show(value)}")
        value = int(text)
    if isinstance(value, bool) or not 0 <= value <= LOG_TAIL_MAX:
        raise _fail("tail", f"tail must be between 0 and {LOG_TAIL_MAX} lines (or 'all')")
    return value


_LISTEN_HOST = re.compile(r"[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]")


def listen_address(value: str, what: str = "address", *, host_required: bool = False) -> tuple[str, int]:
    """``[host]:port`` (``[::1]:8443`` for IPv6) -> (host without brackets, port). The host may be left out
    (``:80``: every address) unless ``host_required``."""
    example = "127.0.0.1:8443 or 0.0.0.0:8443" if host_required else ":80 or 127.0.0.1:8080"
    shape = "HOST:PORT" if host_required else "[host]:port"
    host, sep, port_text = value.rpartition(":")
    if not sep or (host_required and not host):
        raise _fail(what, f"{what} {_show(value)} is not {shape}: for example {example}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise _fail(what, f"{what} {_show(value)}: the port must be a number between 1 and 65535")
    if host and not _LISTEN_HOST.fullmatch(host):
        raise _fail(what, f"{what} {_show(value)}: {host!r} is not a host name or IP address")
    return host.strip("[]"), int(port_text)


_UPSTREAM = re.compile(r"(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})")


def upstream(value: str, what: str = "upstream") -> str:
    """``host:port`` that a proxy can dial, with nothing a config syntax could give meaning to."""
    match = _UPSTREAM.fullmatch(value) if isinstance(value, str) else None
    if match is None or not 1 <= int(match.group("port")) <= 65535:
        raise InvalidInput(f"{what} {value!r} is not host:port (for example 127.0.0.1:8081)", field=what)
    return value


PortBinding = int | tuple[str, int] | None


def port_bindings(specs: Iterable[str]) -> dict[str, list[PortBinding]]:
    """Docker's port bindings by ``port/proto`` for publish specs, each checked by ``publish``: a host port
    (``int``), an address and host port (``(ip, port)``), or ``None`` for a bare container port, which
    Docker publishes on a host port it picks."""
    bindings: dict[str, list[PortBinding]] = {}
    for spec in specs:
        body, _, proto = publish(spec).partition("/")
        ip: str | None = None
        if body.startswith("["):
            close = body.index("]")
            ip, body = body[1:close], body[close + 2 :]
        numbers = body.split(":")
        if len(numbers) == 3:
            ip, numbers = numbers[0], numbers[1:]
        binding: PortBinding
        if len(numbers) == 1:
            binding = None
        elif ip is not None:
            binding = (ip, int(numbers[0] or 0))
        else:
            binding = int(numbers[0])
        bindings.setdefault(f"{numbers[-1]}/{proto or 'tcp'}", []).append(binding)
    return bindings


_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
MEMORY_MIN = 6 * 1024**2
MEMORY_MAX = 1024**4


def memory(value: str | int) -> int:
    """A memory limit in bytes. Units are binary like Docker's: ``512m`` = ``512MiB`` = 512 * 1024 * 1024."""
    if isinstance(value, bool):
        raise _fail("memory", f"memory must be a size like '512m' or '1g', got {_show(value)}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]{1,15}(?:\.[0-9]{1,6})?)\s*([A-Za-z]{0,3})\s*", value)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _MEMORY_UNITS:
            raise _fail(
                "memory",
                f"memory {_show(value)} is not a size: write a number with k, m, g or t (binary units), "
                "e.g. '512m' or '1.5g'",
            )
        size = round(float(match.group(1)) * _MEMORY_UNITS[unit])
    else:
        raise _fail("memory", f"memory must be a size like '512m' or '1g', got {_show(value)}")
    if size < MEMORY_MIN:
        raise _fail("memory", f"memory {_show(value)} is below Docker's minimum: give at least 6m")
    if size > MEMORY_MAX:
        raise _fail("memory", f"memory {_show(value)} is above the 1t maximum")
    return size


def cpus(value: float | int | str) -> float:
    if isinstance(value, bool):
        raise _fail("cpus", f"cpus must be a number of cores like 0.5 or 2, got {_show(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail("cpus", f"cpus must be a number of cores like 0.5 or 2, got {_show(value)}") from None
    if not math.isfinite(number) or not 0.01 <= number <= 1024:
        raise _fail("cpus", f"cpus {_show(value)} is out of range: use 0.01-1024 cores")
    return number


_RESTART_RE = re.compile(r"no|always|unless-stopped|on-failure(?::([0-9]{1,3}))?")


def restart_policy(value: str) -> str:
    policy = _require_str(value, "restart")
    allowed = "use no, always, unless-stopped, on-failure or on-failure:N (N 1-100)"
    match = _RESTART_RE.fullmatch(policy)
    if match is None:
        raise _fail("restart", f"restart policy {_show(policy)} is unknown: {allowed}")
    if match.group(1) is not None and not 1 <= int(match.group(1)) <= 100:
        raise _fail("restart", f"restart policy {_show(policy)} has a retry count out of range: {allowed}")
    return policy


def restart_policy_for_docker(value: str) -> dict[str, Any]:
    """Docker's ``RestartPolicy`` for a policy ``restart_policy`` accepts."""
    name, _, retries = restart_policy(value).partition(":")
    policy: dict[str, Any] = {"Name": name}
    if retries:
        policy["MaximumRetryCount"] = int(retries)
    return policy


# ------------------------------------------------------------------------------------------------ env

_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
ENV_VALUE_MAX = 64 * 1024


def env_key(value: str) -> str:
    key = _require_str(value, "key")
    if _ENV_KEY_RE.fullmatch(key):
        return key
    if not key:
        raise _fail("key", "environment variable name is empty: use letters, digits and '_'")
    if len(key) > 128:
        raise _fail("key", f"environment variable name is {len(key)} characters long: use at most 128")
    raise _fail(
        "key",
        f"environment variable name {_show(key)} is not valid: use letters, digits and '_', not starting with a digit",
    )


def env_value(value: str) -> str:
    text = _require_str(value, "value")
    if "\x00" in text:
        raise _fail(
            "value", "environment variable value contains a NUL character, which no process can receive"
        )
    if len(text.encode("utf-8", "surrogatepass")) > ENV_VALUE_MAX:
        raise _fail("value", f"environment variable value is larger than {ENV_VALUE_MAX // 1024} KiB")
    return text


# ------------------------------------------------------------------------------------------------ volumes

_VOLUME_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")
_SYSTEM_DIRS = ("/proc", "/sys", "/dev")


def volume(name: str, path: str) -> Volume:
    """A named Docker volume mounted at an absolute path inside the container."""
    vol_name = _require_str(name, "volumes")
    if not _VOLUME_NAME_RE.fullmatch(vol_name):
        raise _fail(
            "volumes",
            f"volume name {_show(vol_name)} is not valid: use letters, digits, '_', '.' and '-' "
            "(starting with a letter or digit), at most 64 characters",
        )
    mount = _require_str(path, "volumes")
    if not mount.startswith("/"):
        raise _fail("volumes", f"volume path {_show(mount)} is not absolute: write /path/in/container")
    if len(mount) > 4096:
        raise _fail("volumes", f"volume path is {len(mount)} characters long: use at most 4096")
    bad = _first_invisible(mount)
    if bad is not None or any(ch in mount for ch in ":,\\"):
        raise _fail(
            "volumes",
            f"volume path {_show(mount)} contains a control character, ':', ',' or a backslash",
        )
    if ".." in mount.split("/"):
        raise _fail("volumes", f"volume path {_show(mount)} has a '..' component: write the path directly")
    normal = "/" + posixpath.normpath(mount).lstrip("/")
    if normal == "/":
        raise _fail(
            "volumes", "volume path '/' would hide the whole container file system: mount a directory"
        )
    for system in _SYSTEM_DIRS:
        if normal == system or normal.startswith(system + "/"):
            raise _fail("volumes", f"volume path {_show(mount)} is under {system}, which the kernel provides")
    return Volume(name=vol_name, path=normal)


def volume_spec(value: str) -> Volume:
    """``"name:/path/in/container"``."""
    spec = _require_str(value, "volumes")
    vol_name, colon, path = spec.partition(":")
    if not colon:
        raise _fail(
            "volumes", f"volume {_show(spec)} is not 'name:/path': name the volume, then where to mount it"
        )
    return volume(vol_name, path)


# ------------------------------------------------------------------------------------------------ health


def health_path(value: str) -> str:
    path = _require_str(value, "health.path")
    if not path.startswith("/"):
        raise _fail("health.path", f"health check path {_show(path)} must start with '/'")
    if len(path) > 512:
        raise _fail("health.path", f"health check path is {len(path)} characters long: use at most 512")
    if not all(0x21 <= ord(ch) <= 0x7E for ch in path):
        raise _fail(
            "health.path",
            f"health check path {_show(path)} has spaces, control or non-ASCII characters: percent-encode them",
        )
    return path


def _in_range(value: object, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(what, f"{what} must be a number, got {_show(value)}")
    if not low <= value <= high:
        raise _fail(what, f"{what} {value} is out of range: use {low:g}-{high:g}")
    return float(value)


def health(check: HealthCheck) -> HealthCheck:
    return HealthCheck(
        type=check.type,
        path=health_path(check.path),
        interval=_in_range(check.interval, 0.1, 3600, "health.interval"),
        timeout=_in_range(check.timeout, 0.1, 600, "health.timeout"),
        retries=int(_in_range(check.retries, 1, 1000, "health.retries")),
        start_period=_in_range(check.start_period, 0, 3600, "health.start_period"),
    )


# ------------------------------------------------------------------------------------------------ commands

COMMAND_MAX = 4096


def command(value: str, what: str = "command") -> str:
    """A command line run inside the container, split with ``shlex`` (never given to a host shell)."""
    text = _require_str(value, what).strip()
    if not text:
        raise _fail(what, f"{what} is empty: give the command to run, or clear the setting")
    if len(text.encode("utf-8", "surrogatepass")) > COMMAND_MAX:
        raise _fail(what, f"{what} is longer than {COMMAND_MAX} bytes")
    bad = _first_invisible(text, allow="\t")
    if bad is not None:
        raise _fail(
            what,
            f"{what} {_show(text)} contains {_describe_char(bad)}: write it on one line without control characters",
        )
    try:
        shlex.split(text)
    except ValueError as exc:
        raise _fail(
            what, f"{what} {_show(text)} cannot be split into arguments ({exc}): check its quotes"
        ) from None
    return text


# ------------------------------------------------------------------------------------------------ app specs


def app_spec(spec: AppSpec, *, allowed_roots: Sequence[Path] = ()) -> AppSpec:
    """Every field of ``spec`` checked and normalised; errors name the field."""
    publish_list = [publish(p) for p in spec.publish]
    volumes = [volume(v.name, v.path) for v in spec.volumes]
    seen_names: set[str] = set()
    seen_paths: set[str] = set()
    for v in volumes:
        if v.name in seen_names:
            raise _fail("volumes", f"volume {v.name!r} is mounted twice: mount each volume once")
        if v.path in seen_paths:
            raise _fail("volumes", f"two volumes are mounted at {v.path!r}: give each its own path")
        seen_names.add(v.name)
        seen_paths.add(v.path)
    url = git_url(spec.git_url, allowed_roots=allowed_roots)
    if url.startswith(("http://", "https://")) and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        # The spec is shown to every viewer of the app and kept in plain text; a token belongs in the app's
        # source, where it is sealed and never shown.
        raise _fail(
            "git_url",
            "the git URL carries credentials: give the URL without them and the token with "
            "`mist app source PROJECT/APP --token-stdin`",
        )
    return AppSpec(
        git_url=url,
        branch=git_ref(spec.branch, "branch"),
        dockerfile=None if spec.dockerfile is None else repo_path(spec.dockerfile, "dockerfile"),
        context=repo_path(spec.context, "context"),
        port=None if spec.port is None else port(spec.port),
        publish=list(dict.fromkeys(publish_list)),
        start_command=None if spec.start_command is None else command(spec.start_command, "start_command"),
        build_command=None if spec.build_command is None else command(spec.build_command, "build_command"),
        install_command=None
        if spec.install_command is None
        else command(spec.install_command, "install_command"),
        memory=None if spec.memory is None else memory(spec.memory),
        cpus=None if spec.cpus is None else cpus(spec.cpus),
        restart=restart_policy(spec.restart),
        health=health(spec.health),
        volumes=volumes,
    )


def apply_changes(spec: AppSpec, changes: AppChanges, *, allowed_roots: Sequence[Path] = ()) -> AppSpec:
    """``spec`` with ``changes`` merged in, then validated. ``changes.clear`` resets fields to their default."""
    fields = AppSpec.model_fields
    clearable = sorted(f for f in fields if f != "git_url")
    merged: dict[str, Any] = spec.model_dump()
    for field in changes.clear:
        if field == "git_url":
            raise _fail("clear", "git_url cannot be cleared: every app needs a repository")
        if field not in fields:
            raise _fail(
                "clear", f"cannot clear unknown field {_show(field)}: choose from {', '.join(clearable)}"
            )
        if getattr(changes, field) is not None:
            raise _fail(field, f"{field} is both set and cleared in one change: do one or the other")
        info = fields[field]
        merged[field] = info.get_default(call_default_factory=True)
    for field in fields:
        new = getattr(changes, field)
        if new is None:
            continue
        if field == "memory":
            new = memory(new)
        merged[field] = new.model_dump() if isinstance(new, HealthCheck) else new
    if changes.volumes is not None:
        merged["volumes"] = [v.model_dump() for v in changes.volumes]
    return app_spec(AppSpec.model_validate(merged), allowed_roots=allowed_roots)


# ------------------------------------------------------------------------------------------------ dotenv

_DOTENV_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_DOTENV_BARE = re.compile(r"[A-Za-z0-9_./:@+,=%^-]*")


def _dotenv_error(line_no: int, problem: str) -> InvalidInput:
    return _fail("dotenv", f"line {line_no}: {problem}")


def parse_dotenv(text: str) -> list[tuple[str, str]]:
    """The ``KEY=VALUE`` pairs of a ``.env`` file, in order.

    Understands ``export KEY=...``, ``#`` comment lines, blank lines, ``'single'`` (literal) and ``"double"``
    quoted values (with ``\\n``, ``\\t``, ``\\r``, ``\\"`` and ``\\\\`` escapes; both may span lines), and
    `` # comments`` after unquoted values. ``$VARS`` are not expanded. A bad line is reported by number.
    """
    text = _require_str(text, "dotenv")
    lines = text.replace("\r\n", "\n").split("\n")
    items: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        line_no = i + 1
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].lstrip()
        key, eq, rest = line.partition("=")
        key = key.strip()
        if not eq:
            raise _dotenv_error(line_no, f"{_show(line)} is not KEY=VALUE")
        if not _ENV_KEY_RE.fullmatch(key):
            raise _dotenv_error(
                line_no, f"{_show(key)} is not a valid variable name: use letters, digits and '_'"
            )
        rest = rest.lstrip(" \t")
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            chars: list[str] = []
            while True:
                j = 0
                closed = False
                while j < len(body):
                    ch = body[j]
                    if quote == '"' and ch == "\\" and j + 1 < len(body):
                        nxt = body[j + 1]
                        chars.append(_DOTENV_ESCAPES.get(nxt, "\\" + nxt))
                        j += 2
                        continue
                    if ch == quote:
                        closed = True
                        break
                    chars.append(ch)
                    j += 1
                if closed:
                    trailing = body[j + 1 :].strip()
                    if trailing and not trailing.startswith("#"):
                        raise _dotenv_error(
                            line_no, f"unexpected text after the closing quote: {_show(trailing)}"
                        )
                    break
                if i >= len(lines):
                    raise _dotenv_error(line_no, f"the {quote} quote of {key} is never closed")
                chars.append("\n")
                body = lines[i]
                i += 1
            value = "".join(chars)
        else:
            comment = re.search(r"\s#", rest)
            value = (rest[: comment.start()] if comment else rest).rstrip()
        if "\x00" in value:
            raise _dotenv_error(line_no, f"the value of {key} contains a NUL character")
        if len(value.encode("utf-8", "surrogatepass")) > ENV_VALUE_MAX:
            raise _dotenv_error(line_no, f"the value of {key} is larger than {ENV_VALUE_MAX // 1024} KiB")
        items.append((key, value))
    return items


def format_dotenv(items: Iterable[tuple[str, str]]) -> str:
    """A ``.env`` text that ``parse_dotenv`` reads back to the same pairs."""
    out: list[str] = []
    for key, value in items:
        key = env_key(key)
        value = env_value(value)
        if _DOTENV_BARE.fullmatch(value):
            out.append(f"{key}={value}")
            continue
        escaped = (
            value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\t", "\\t")
        )
        out.append(f'{key}="{escaped}"')
    return "\n".join(out) + ("\n" if out else "")


# ------------------------------------------------------------------------------------------------ databases


def db_ref(value: str) -> tuple[str, str]:
    """``"project/database"`` split into its two validated names."""
    value = _require_str(value, "database")
    parts = value.split("/")
    if len(parts) != 2:
        raise _fail(
            "database",
            f"database {_show(value)} is not 'project/name': name the project, then the database (e.g. shop/db)",
        )
    return name(parts[0], "project"), name(parts[1], "database")


def database_spec(spec: DatabaseSpec, database: str) -> DatabaseSpec:
    """``spec`` checked for a database named ``database``: a known engine and one of its versions, options
    that fit the engine, limits and a public port in range."""
    from .services import engine_spec  # the engine specs import this module's errors only

    engine = engine_spec(spec.engine)
    if database.replace("-", "_") in engine.reserved or database in engine.reserved:
        raise _fail(
            "name",
            f"{engine.title} keeps the name {database!r} for itself: choose another name for the database",
        )
    version = engine.check_version(spec.version.strip() if isinstance(spec.version, str) else spec.version)
    if spec.persistence is not None and engine.name != "redis":
        raise _fail(
            "persistence",
            f"persistence (rdb, aof, none) is a Redis setting; {engine.title} always keeps its data on its volume",
        )
    public_port = port(spec.public_port, "public_port") if spec.public_port is not None else None
    if public_port is not None and public_port < 1024:
        raise _fail("public_port", f"public port {public_port} is a privileged port: use 1024-65535")
    return spec.model_copy(
        update={
            "version": version,
            "persistence": (spec.persistence or "rdb") if engine.name == "redis" else None,
            "memory": memory(spec.memory) if spec.memory is not None else None,
            "cpus": cpus(spec.cpus) if spec.cpus is not None else None,
            "restart": restart_policy(spec.restart),
            "public_port": public_port,
        }
    )


_PREFIX_RE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def link_prefix(value: str | None) -> str | None:
    """The prefix of a link's variables (``CACHE`` gives ``CACHE_URL``, ``CACHE_HOST``...); None: the engine's."""
    if value is None or value == "":
        return None
    prefix = _require_str(value, "prefix")
    if prefix.upper().endswith("_URL") or prefix.endswith("_"):
        raise _fail(
            "prefix", f"prefix {_show(prefix)}: give the part before _URL, e.g. 'CACHE' for CACHE_URL"
        )
    if _PREFIX_RE.fullmatch(prefix):
        return prefix
    if _PREFIX_RE.fullmatch(prefix.upper()):
        raise _fail("prefix", f"prefix {_show(prefix)} has lowercase letters: use {prefix.upper()!r}")
    raise _fail(
        "prefix",
        f"prefix {_show(prefix)} is not valid: use uppercase letters, digits and '_', starting with a letter, "
        "at most 64 characters",
    )
