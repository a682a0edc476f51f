"""The grammar of the ``mist`` command: every command, its arguments and options, built with argparse.

The connection options (``--host``, ``--embedded``, ``--data``, ``--json``) are accepted before or after the
command: every parser shares them with a ``SUPPRESS`` default, so a value given at any level survives.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn, get_args

from ..models import DatabaseEngineName, ProjectRole, ProviderKind, RedisPersistence, Role, TokenScope
from ..version import __version__

ROLES = list(get_args(Role))
PROJECT_ROLES = list(get_args(ProjectRole))
TOKEN_SCOPES = list(get_args(TokenScope))
PROVIDER_KINDS = list(get_args(ProviderKind))
DATABASE_ENGINES = list(get_args(DatabaseEngineName))
REDIS_PERSISTENCE = list(get_args(RedisPersistence))

GLOBAL_DEFAULTS: dict[str, object] = {"host": None, "embedded": False, "data": None, "json": False}

# Commands and sub-commands, in the order help and completions show them.
COMMANDS: dict[str, list[str]] = {
    "setup": [],
    "login": [],
    "logout": [],
    "whoami": [],
    "passwd": [],
    "2fa": ["enable", "disable"],
    "user": ["create", "list", "show", "set-role", "delete"],
    "invite": ["create", "list", "revoke", "accept"],
    "member": ["add", "remove", "list"],
    "session": ["list", "revoke"],
    "token": ["create", "list", "revoke"],
    "project": ["create", "list", "show", "rename", "tag", "delete"],
    "app": ["create", "list", "show", "set", "delete", "deploy-key", "source"],
    "env": ["set", "list", "unset", "import", "export"],
    "db": ["create", "list", "show", "delete", "start", "stop", "restart", "logs", "url", "link", "unlink"],
    "deploy": [],
    "rollback": [],
    "deployments": [],
    "deployment": ["show", "log"],
    "cancel": [],
    "ps": [],
    "logs": [],
    "start": [],
    "stop": [],
    "restart": [],
    "exec": [],
    "describe": [],
    "metrics": [],
    "git": ["provider", "repos", "branches"],
    "webhooks": [],
    "previews": [],
    "domain": ["add", "set", "remove", "list"],
    "cert": ["status", "renew", "upload"],
    "proxy": ["status", "install", "reload"],
    "backup": ["list", "show", "run", "verify", "restore", "delete", "schedule", "destination"],
    "settings": ["list", "get", "set"],
    "users": [],
    "audit": [],
    "secrets": ["rotate-key"],
    "completion": ["bash", "zsh"],
    "daemon": [],
}
# The db commands about a database after it exists.
COMMANDS["db"] += ["shell", "users", "create-user", "drop-user", "update", "upgrade"]

# Commands one level further down: ``mist git provider add``.
ACTIONS: dict[tuple[str, str], list[str]] = {
    ("git", "provider"): ["add", "list", "remove"],
    ("backup", "schedule"): ["list", "add", "remove"],
    ("backup", "destination"): ["list", "add", "remove"],
}

CLEARABLE_FIELDS = (
    "dockerfile",
    "port",
    "publish",
    "start_command",
    "build_command",
    "install_command",
    "memory",
    "cpus",
    "health",
    "volumes",
)


class UsageError(Exception):
    """The command line itself is malformed (unknown option, missing argument...)."""

    def __init__(self, message: str, field: str | None = None, usage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.usage = usage


_ARGUMENT = re.compile(r"^argument ([^:]+): ")
_REQUIRED = re.compile(r"^the following arguments are required: (.+)$")


class MistArgumentParser(argparse.ArgumentParser):
    """Raises instead of exiting, so ``--json`` can report a usage error as a JSON document too."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", field=self._field_of(message), usage=self.format_usage())

    def _field_of(self, message: str) -> str | None:
        """The API field name of the argument a message is about: ``--git`` -> ``git_url``."""
        if match := _ARGUMENT.match(message):
            text = match.group(1)
        elif match := _REQUIRED.match(message):
            text = match.group(1).split(",")[0].strip()
        else:
            return None
        # A metavar may hold a slash itself (PROJECT/APP, OWNER/NAME): match it whole first.
        for action in self._actions:
            if action.metavar == text:
                return action.dest
        names = text.split("/")
        for action in self._actions:
            if set(names) & set(action.option_strings) or (action.metavar in names or action.dest in names):
                return action.dest
        return names[-1].lstrip("-").replace("-", "_")


def _global_options() -> argparse.ArgumentParser:
    common = MistArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "--host",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="daemon to talk to: unix:///path/mist.sock or https://host:port (env MIST_HOST)",
    )
    group.add_argument(
        "--embedded",
        action="store_true",
        default=argparse.SUPPRESS,
        help="run the core in this process instead of talking to a daemon",
    )
    group.add_argument(
        "--data",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="data directory of the embedded core (env MIST_DATA_DIR)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine output: one JSON document on stdout",
    )
    return common


def _app_spec_options(p: argparse.ArgumentParser, *, create: bool) -> None:
    """The options shared by ``app create`` and ``app set``; ``set`` only changes what is given."""
    src = p.add_argument_group("source")
    if create:
        where = src.add_mutually_exclusive_group()
        where.add_argument("--git", dest="git_url", metavar="URL", help="git repository URL")
        where.add_argument(
            "--provider", metavar="P", help="or a repository of git provider P (see mist git provider list)"
        )
        src.add_argument(
            "--repo", metavar="OWNER/NAME", help="the repository at --provider (see mist git repos P)"
        )
        p.set_defaults(_check=lambda args: _check_app_create(p, args))
    else:
        src.add_argument("--git", dest="git_url", metavar="URL", help="git repository URL")
    src.add_argument("--branch", metavar="B", help="branch deployed by default (default: main)")
    src.add_argument("--dockerfile", metavar="PATH", help="Dockerfile inside the repository")
    src.add_argument("--context", metavar="DIR", help="build context inside the repository (default: .)")
    build = p.add_argument_group("build and run")
    build.add_argument("--port", type=int, metavar="N", help="port the app listens on in the container")
    build.add_argument(
        "--publish",
        action="append",
        metavar="SPEC",
        help="publish a port on the host: 127.0.0.1:18080:8080, 18080:8080 or 8080 (repeatable)",
    )
    build.add_argument("--memory", metavar="M", help="memory limit: 512m, 1g...")
    build.add_argument("--cpus", type=float, metavar="C", help="CPU limit in cores: 0.5, 2...")
    build.add_argument(
        "--restart", metavar="POLICY", help="no, on-failure[:N], always, unless-stopped (default)"
    )
    build.add_argument(
        "--volume",
        dest="volumes",
        action="append",
        metavar="NAME:/path",
        help="mount a named volume (repeatable)",
    )
    build.add_argument("--start-command", metavar="CMD", help="command that starts the app (replaces CMD)")
    build.add_argument("--build-command", metavar="CMD", help="build step of a generated Dockerfile")
    build.add_argument("--install-command", metavar="CMD", help="install step of a generated Dockerfile")
    health = p.add_argument_group("health check")
    kind = health.add_mutually_exclusive_group()
    kind.add_argument("--health-path", metavar="P", help="HTTP check: GET this path must answer 2xx/3xx")
    kind.add_argument("--health-tcp", action="store_true", default=None, help="TCP check on the app port")
    kind.add_argument(
        "--health-docker", action="store_true", default=None, help="use the image's own HEALTHCHECK"
    )
    if not create:
        kind.add_argument(
            "--health-none", action="store_true", default=None, help="no check: running is enough"
        )
    health.add_argument("--health-interval", type=float, metavar="S", help="seconds between checks")
    health.add_argument("--health-retries", type=int, metavar="N", help="failed checks before giving up")
    health.add_argument(
        "--health-start-period", type=float, metavar="S", help="seconds before failures start to count"
    )
    if not create:
        p.add_argument(
            "--clear",
            action="append",
            choices=CLEARABLE_FIELDS,
            metavar="FIELD",
            help=f"reset a field to its default (repeatable): {', '.join(CLEARABLE_FIELDS)}",
        )


def _check_app_create(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``app create`` needs a repository: ``--git URL``, or ``--provider`` with ``--repo``."""
    if args.provider is not None and args.repo is None:
        p.error("argument --repo: --provider needs the repository as well: --repo OWNER/NAME")
    if args.repo is not None and args.provider is None:
        p.error("argument --provider: --repo needs the git provider it is at: --provider P")
    if args.git_url is None and args.provider is None:
        p.error("argument --git: give the repository: --git URL, or --provider P --repo OWNER/NAME")


WWW_CHOICES = {"redirect-to-apex": "to-apex", "redirect-to-www": "to-www", "none": ""}


def _domain_options(p: argparse.ArgumentParser, *, add: bool) -> None:
    """The options shared by ``domain add`` and ``domain set``; ``set`` only changes what is given, so every
    default is None (not given)."""
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("domain", metavar="DOMAIN")
    https = p.add_mutually_exclusive_group()
    if not add:
        https.add_argument(
            "--https", dest="https", action="store_const", const=True, help="redirect HTTP to HTTPS again"
        )
    https.add_argument(
        "--no-https",
        dest="https",
        action="store_const",
        const=False,
        help="serve plain HTTP too, and ask for no certificate",
    )
    p.set_defaults(https=None, security_headers=None)
    p.add_argument(
        "--hsts",
        type=int,
        metavar="MAX_AGE",
        help="send Strict-Transport-Security with this max-age (0: off)",
    )
    www = [c for c in WWW_CHOICES if add is False or c != "none"]
    p.add_argument(
        "--www",
        choices=www,
        metavar="MODE",
        help="redirect-to-apex (www.DOMAIN sends here), redirect-to-www (DOMAIN must start with www.)"
        + ("" if add else ", or none"),
    )
    p.add_argument("--path-prefix", metavar="/P", help="route only this path prefix of the domain to the app")
    p.add_argument(
        "--header",
        dest="headers",
        action="append",
        metavar="'NAME: VALUE'",
        help="add a response header (repeatable)",
    )
    security = p.add_mutually_exclusive_group()
    if not add:
        security.add_argument(
            "--security-headers",
            dest="security_headers",
            action="store_const",
            const=True,
            help="send nosniff, frame options and referrer policy again",
        )
        p.add_argument(
            "--remove-header", action="append", metavar="NAME", help="drop a response header (repeatable)"
        )
        p.add_argument("--clear-headers", action="store_true", help="drop every custom response header")
    security.add_argument(
        "--no-security-headers",
        dest="security_headers",
        action="store_const",
        const=False,
        help="do not add nosniff, frame options and referrer policy",
    )


def _password_stdin(
    p: argparse.ArgumentParser, text: str = "read the password from stdin (first line)"
) -> None:
    p.add_argument("--password-stdin", action="store_true", help=text)


def _fingerprint(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fingerprint",
        metavar="SHA256:...",
        help="trust the daemon's self-signed certificate if it has this fingerprint (for scripts)",
    )


def _account_commands(commands: argparse._SubParsersAction, command: Any, subcommands: Any) -> None:
    """Logins, accounts, invitations, memberships, sessions, API tokens and two-factor authentication."""
    p = command(commands, "setup", "create the first (owner) account")
    p.add_argument("--username", "-u", metavar="U")
    _password_stdin(p)
    _fingerprint(p)
    p = command(commands, "login", "log in and keep the session")
    p.add_argument("--username", "-u", metavar="U")
    _password_stdin(p)
    p.add_argument(
        "--totp", metavar="CODE", help="code of the authenticator app (or a recovery code), if 2FA is on"
    )
    _fingerprint(p)
    command(commands, "logout", "end the session and forget its token")
    command(commands, "whoami", "show the logged-in user")
    p = command(commands, "passwd", "change your password (your other sessions end)")
    _password_stdin(p, "read the current password, then the new one, from stdin (one per line)")
    p.add_argument(
        "--revoke-tokens",
        action="store_true",
        help="also revoke all your API tokens (they outlive a password)",
    )

    twofa = subcommands(
        command(commands, "2fa", "two-factor authentication (TOTP) of your account"), "subcommand"
    )
    command(
        twofa,
        "enable",
        "turn 2FA on: shows a secret for your authenticator app, asks for a code, prints recovery codes",
    )
    p = command(twofa, "disable", "turn 2FA off (asks for your password)")
    _password_stdin(p)

    user = subcommands(command(commands, "user", "manage accounts"), "subcommand")
    p = command(user, "create", "create an account")
    p.add_argument("username")
    p.add_argument("--role", choices=ROLES, default="developer", help="instance role (default developer)")
    p.add_argument("--email", metavar="E")
    _password_stdin(p)
    command(user, "list", "list accounts")
    p = command(user, "show", "show an account")
    p.add_argument("username")
    p = command(user, "set-role", "change an account's instance role")
    p.add_argument("username")
    p.add_argument("role", choices=ROLES)
    p = command(user, "delete", "delete an account; the projects it owns pass to another")
    p.add_argument("username")
    p.add_argument("--reassign-to", metavar="U", help="who gets the projects it owns (default: you)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    invite = subcommands(command(commands, "invite", "invite people to create their account"), "subcommand")
    p = command(invite, "create", "create a one-time invitation for a username or an email")
    p.add_argument("--username", "-u", metavar="U", help="the username the new account must take")
    p.add_argument("--email", metavar="E", help="the email the new account must give")
    p.add_argument("--role", choices=ROLES, default="developer", help="instance role (default developer)")
    p.add_argument("--project", "-p", metavar="P", help="also make the new account a member of P")
    p.add_argument("--project-role", choices=PROJECT_ROLES, help="role in --project (default developer)")
    p.add_argument(
        "--expires-hours", type=int, default=72, metavar="N", help="valid for N hours (default 72)"
    )
    command(invite, "list", "list invitations")
    p = command(invite, "revoke", "revoke an invitation")
    p.add_argument("id", type=int, metavar="ID")
    p = command(invite, "accept", "create your account from an invitation and log in")
    p.add_argument("token", metavar="TOKEN")
    p.add_argument("--username", "-u", required=True, metavar="U")
    p.add_argument("--email", metavar="E")
    _password_stdin(p)
    _fingerprint(p)

    member = subcommands(command(commands, "member", "manage who belongs to a project"), "subcommand")
    p = command(member, "add", "add a member to a project, or change their role there")
    p.add_argument("project")
    p.add_argument("username")
    p.add_argument("role", choices=PROJECT_ROLES)
    p = command(member, "remove", "remove a member from a project")
    p.add_argument("project")
    p.add_argument("username")
    p = command(member, "list", "list a project's members")
    p.add_argument("project")

    session = subcommands(command(commands, "session", "list or end login sessions"), "subcommand")
    p = command(session, "list", "your open sessions (admins: anyone's)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--user", metavar="U", help="this user's sessions")
    who.add_argument("--all", action="store_true", help="everyone's sessions")
    p = command(session, "revoke", "end a session")
    p.add_argument("id", type=int, metavar="ID")

    token = subcommands(command(commands, "token", "API tokens for scripts and CI"), "subcommand")
    p = command(token, "create", "create an API token (its secret is shown once)")
    p.add_argument("name")
    p.add_argument(
        "--scope",
        choices=TOKEN_SCOPES,
        default="read",
        help="read: look only; deploy: also deploy, roll back, start, stop; admin: all you may do",
    )
    p.add_argument("--project", "-p", metavar="P", help="the token reaches only this project")
    expiry = p.add_mutually_exclusive_group()
    expiry.add_argument("--expires-days", type=int, default=90, metavar="N", help="valid N days (default 90)")
    expiry.add_argument("--no-expiry", action="store_true", help="never expires")
    p = command(token, "list", "list your API tokens")
    p.add_argument("--all", action="store_true", help="everyone's tokens (admins)")
    p = command(token, "revoke", "revoke an API token")
    p.add_argument("id", type=int, metavar="ID")


def _git_commands(commands: argparse._SubParsersAction, command: Any, subcommands: Any) -> None:
    """Git providers and what they hold, webhook deliveries and preview environments."""
    git = subcommands(command(commands, "git", "git providers: GitHub Apps, GitLab, Gitea"), "subcommand")
    provider = command(git, "provider", "add, list or remove git providers")
    actions = provider.add_subparsers(
        dest="subaction", metavar="ACTION", required=True, parser_class=MistArgumentParser
    )
    p = command(
        actions,
        "add",
        "add a GitLab or Gitea account by token, a GitHub App by id and key, or create a GitHub App",
    )
    p.add_argument("name", metavar="NAME", help="the name apps and commands use for it")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--kind", choices=PROVIDER_KINDS, help="github (an existing App), gitlab or gitea")
    how.add_argument(
        "--github-manifest",
        action="store_true",
        help="create a new GitHub App from Mist's manifest, in your browser",
    )
    p.add_argument(
        "--url", metavar="URL", help="web address of the host (default for GitHub: https://github.com)"
    )
    p.add_argument("--api-url", metavar="URL", help="API address, when it is not derived from --url")
    p.add_argument(
        "--token-stdin",
        action="store_true",
        help="gitlab, gitea: read the access token from stdin (first line); else it is asked for",
    )
    p.add_argument("--app-id", type=int, metavar="N", help="github: the App's id")
    p.add_argument("--private-key-file", metavar="PEM", help="github: the App's private key (PEM file)")
    p.add_argument(
        "--webhook-secret-stdin",
        action="store_true",
        help="github: read the App's webhook secret from stdin (first line); else it is asked for",
    )
    p.add_argument(
        "--installation-id", type=int, metavar="N", help="github: which installation (default: the first)"
    )
    p.add_argument(
        "--organization", metavar="ORG", help="--github-manifest: create the App in this organization"
    )
    command(actions, "list", "list git providers")
    p = command(actions, "remove", "forget a git provider (refused while apps use it)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p = command(git, "repos", "list the repositories a provider gives Mist access to")
    p.add_argument("provider", metavar="PROVIDER")
    p = command(git, "branches", "list a repository's branches")
    p.add_argument("provider", metavar="PROVIDER")
    p.add_argument("repo", metavar="OWNER/NAME")

    p = command(commands, "webhooks", "list an app's webhook deliveries and what Mist did with each")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("--limit", "-n", type=int, default=20, metavar="N", help="the latest N (default 20)")
    p = command(commands, "previews", "list an app's preview environments (one per pull request)")
    p.add_argument("app", metavar="PROJECT/APP")


def _app_source_commands(app: argparse._SubParsersAction, command: Any) -> None:
    """``app deploy-key`` and ``app source``: how Mist reaches an app's repository and hears its pushes."""
    p = command(
        app, "deploy-key", "show the app's ssh deploy key (made on first use) to add to the repository"
    )
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("--regenerate", action="store_true", help="replace the key with a new one")

    p = command(app, "source", "show or change how Mist reaches the app's repository and hears its pushes")
    p.add_argument("app", metavar="PROJECT/APP")
    auth = p.add_argument_group("credentials")
    token = auth.add_mutually_exclusive_group()
    token.add_argument(
        "--token-stdin", action="store_true", help="read an https access token from stdin (first line)"
    )
    token.add_argument("--no-token", action="store_true", help="remove the https access token")
    link = auth.add_mutually_exclusive_group()
    link.add_argument("--provider", metavar="P", help="fetch through git provider P (with --repo)")
    link.add_argument("--unlink", action="store_true", help="stop using the git provider")
    auth.add_argument("--repo", metavar="OWNER/NAME", help="the repository at --provider")
    auth.add_argument(
        "--forget-host-keys", action="store_true", help="trust the ssh host key again on the next fetch"
    )
    hooks = p.add_argument_group("webhooks")
    hooks.add_argument(
        "--webhook-kind", choices=PROVIDER_KINDS, help="how deliveries to the app's webhook are signed"
    )
    hooks.add_argument("--new-webhook-secret", action="store_true", help="replace the webhook secret")
    _switch(hooks, "deploy-on-push", "deploy_on_push", "deploy a push to the app's branch", "ignore pushes")
    _switch(hooks, "deploy-tags", "deploy_tags", "also deploy pushed tags", "ignore pushed tags")
    previews = p.add_argument_group("preview environments")
    _switch(previews, "previews", "previews", "deploy each pull request as a preview", "no previews")
    previews.add_argument("--preview-limit", type=int, metavar="N", help="live previews at once (1-50)")
    previews.add_argument(
        "--preview-domain", metavar="PATTERN", help="domain of a preview: pr-{number}.{app_domain}"
    )
    previews.add_argument(
        "--preview-env",
        action="append",
        metavar="KEY=VALUE",
        help="a variable previews get instead of the app's (repeatable)",
    )
    previews.add_argument(
        "--preview-env-unset", action="append", metavar="KEY", help="drop a preview variable (repeatable)"
    )
    _switch(
        previews,
        "preview-secrets",
        "preview_secrets",
        "give previews of the repository's own pull requests the app's secrets (never a fork's)",
        "previews get no secret of the app (the default)",
    )
    p.add_argument("--reveal", action="store_true", help="show the webhook secret")
    p.set_defaults(_check=lambda args: _check_app_source(p, args))


def _switch(group: Any, name: str, dest: str, on: str, off: str) -> None:
    """``--NAME`` / ``--no-NAME``, None when neither is given."""
    both = group.add_mutually_exclusive_group()
    both.add_argument(f"--{name}", dest=dest, action="store_const", const=True, help=on)
    both.add_argument(f"--no-{name}", dest=dest, action="store_const", const=False, help=off)


def _check_app_source(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.provider is not None and args.repo is None:
        p.error("argument --repo: --provider needs the repository as well: --repo OWNER/NAME")
    if args.repo is not None and args.provider is None:
        p.error("argument --provider: --repo needs the git provider it is at: --provider P")


_EXEC_TTY = {"--tty": True, "-t": True, "--no-tty": False, "-T": False}


def _check_exec(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The command after PROJECT/APP is taken as it is; exec's own options may still come first there
    (``mist exec shop/web -T -- ls``): they are exec's, up to ``--`` or the command's first word."""
    argv = list(args.argv or [])
    while argv and argv[0] in _EXEC_TTY:
        tty = _EXEC_TTY[argv.pop(0)]
        if args.tty is not None and args.tty != tty:
            p.error("argument --tty/-t: not allowed with argument --no-tty/-T")
        args.tty = tty
    if argv and argv[0] == "--":
        argv.pop(0)
    args.argv = argv


def build_parser() -> MistArgumentParser:
    common = _global_options()
    parser = MistArgumentParser(
        prog="mist",
        description="Mist: git repository in, running app out. Without a command, opens the terminal UI.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"mist {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=MistArgumentParser)

    def command(group: argparse._SubParsersAction, name: str, help: str, **kw: Any) -> MistArgumentParser:
        return group.add_parser(name, help=help, description=help, parents=[common], **kw)  # type: ignore[no-any-return]

    def subcommands(p: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction:
        return p.add_subparsers(
            dest=dest, metavar="SUBCOMMAND", required=True, parser_class=MistArgumentParser
        )

    # ------------------------------------------------------------------ accounts
    _account_commands(commands, command, subcommands)

    # ------------------------------------------------------------------ projects
    project = subcommands(command(commands, "project", "manage projects"), "subcommand")
    p = command(project, "create", "create a project")
    p.add_argument("name")
    p.add_argument("--description", "-d", default="", metavar="D")
    p.add_argument("--tag", "-t", dest="tags", action="append", default=[], metavar="T", help="(repeatable)")
    p = command(project, "list", "list projects")
    p.add_argument("--filter", dest="query", metavar="TEXT", help="only projects whose name contains TEXT")
    p = command(project, "show", "show a project")
    p.add_argument("name")
    p = command(project, "rename", "rename a project")
    p.add_argument("old")
    p.add_argument("new")
    p = command(project, "tag", "add or remove tags")
    p.add_argument("name")
    p.add_argument("--add", action="append", default=[], metavar="T", help="(repeatable)")
    p.add_argument("--remove", action="append", default=[], metavar="T", help="(repeatable)")
    p = command(project, "delete", "delete a project (it must have no apps)")
    p.add_argument("name")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    # ------------------------------------------------------------------ apps
    app = subcommands(command(commands, "app", "manage apps"), "subcommand")
    p = command(app, "create", "create an app from a git repository")
    p.add_argument("app", metavar="PROJECT/APP")
    _app_spec_options(p, create=True)
    p = command(app, "list", "list apps")
    p.add_argument("--project", "-p", metavar="P")
    p.add_argument("--filter", dest="query", metavar="TEXT", help="only apps whose name contains TEXT")
    p = command(app, "show", "show an app and its settings")
    p.add_argument("app", metavar="PROJECT/APP")
    p = command(app, "set", "change an app's settings (used by the next deployment)")
    p.add_argument("app", metavar="PROJECT/APP")
    _app_spec_options(p, create=False)
    p = command(app, "delete", "stop and remove an app")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    _app_source_commands(app, command)

    # ------------------------------------------------------------------ env
    env = subcommands(command(commands, "env", "manage an app's environment variables"), "subcommand")
    p = command(env, "set", "set variables")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    p.add_argument("--secret", action="store_true", help="store encrypted and mask in output")
    p.add_argument("--build", action="store_true", help="available at build time instead of run time")
    p = command(env, "list", "list variables (secrets masked)")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("--reveal", action="store_true", help="show secret values")
    p = command(env, "unset", "remove variables")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("keys", nargs="+", metavar="KEY")
    p = command(env, "import", "set every KEY=VALUE of a .env file")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("file", metavar="FILE|-", help="path of a .env file, or - for stdin")
    p.add_argument("--secret", action="store_true")
    p.add_argument("--build", action="store_true")
    p = command(env, "export", "print the variables as a .env file")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("--reveal", action="store_true", help="show secret values")

    # ------------------------------------------------------------------ databases
    _database_commands(commands, command, subcommands)

    # ------------------------------------------------------------------ deployments
    p = command(commands, "deploy", "deploy an app")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("--ref", metavar="REF", help="branch, tag or commit (default: the app's branch)")
    p.add_argument(
        "--wait", "-w", action="store_true", help="follow the log; exit 0 only if the deployment goes live"
    )
    p = command(commands, "rollback", "deploy an earlier deployment's image and config again")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument(
        "--to", type=int, metavar="DEPLOYMENT", help="which deployment (default: the one before the live one)"
    )
    p.add_argument(
        "--wait", "-w", action="store_true", help="follow the log; exit 0 only if the deployment goes live"
    )
    p = command(commands, "deployments", "list an app's deployments")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("--limit", "-n", type=int, default=20, metavar="N")
    deployment = subcommands(command(commands, "deployment", "inspect one deployment"), "subcommand")
    p = command(deployment, "show", "show a deployment and its steps")
    p.add_argument("id", type=int, metavar="ID")
    p = command(deployment, "log", "print a deployment's log")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the deployment ends")
    p = command(commands, "cancel", "cancel a queued or running deployment")
    p.add_argument("id", type=int, metavar="ID")

    # ------------------------------------------------------------------ runtime
    p = command(commands, "ps", "list Mist's running containers")
    p.add_argument("--all", "-a", action="store_true", help="stopped containers too")
    p = command(commands, "logs", "print an app's output")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--tail", type=int, default=200, metavar="N", help="last N lines (default 200)")
    p.add_argument("--since", metavar="T", help="10m, 2h, 1d or an ISO 8601 time")
    p.add_argument("--timestamps", "-t", action="store_true", help="prefix each line with its time")
    for name, text in (("start", "start an app"), ("stop", "stop an app"), ("restart", "restart an app")):
        p = command(commands, name, text)
        p.add_argument("app", metavar="PROJECT/APP")
    p = command(commands, "exec", "run a shell (or CMD) in an app's live container")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD", help="what to run (default /bin/sh)")
    tty = p.add_mutually_exclusive_group()
    tty.add_argument(
        "--tty",
        "-t",
        dest="tty",
        action="store_const",
        const=True,
        default=None,
        help="attach a terminal (default: when stdin and stdout are terminals)",
    )
    tty.add_argument("--no-tty", "-T", dest="tty", action="store_const", const=False, help="plain pipes")
    p.set_defaults(_check=lambda args, p=p: _check_exec(p, args))
    p = command(
        commands, "describe", "show an app's live container: image, command, env, mounts, ports, health"
    )
    p.add_argument("app", metavar="PROJECT/APP")
    p = command(commands, "metrics", "show server and container usage")
    p.add_argument("--follow", "-f", action="store_true", help="print a sample at every tick")

    # ------------------------------------------------------------------ git providers, webhooks, previews
    _git_commands(commands, command, subcommands)

    # ------------------------------------------------------------------ domains, certificates, proxy
    domain = subcommands(command(commands, "domain", "manage the domains an app answers to"), "subcommand")
    _domain_options(command(domain, "add", "route a domain to an app (with HTTPS by default)"), add=True)
    _domain_options(
        command(domain, "set", "change how a domain is served (only the options given)"), add=False
    )
    p = command(domain, "remove", "stop routing a domain to an app")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument("domain", metavar="DOMAIN")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p = command(domain, "list", "list an app's domains with their certificates")
    p.add_argument("app", metavar="PROJECT/APP")
    cert = subcommands(command(commands, "cert", "show, renew or upload TLS certificates"), "subcommand")
    p = command(cert, "status", "show certificates and where their issuance stands")
    p.add_argument("app", nargs="?", metavar="PROJECT/APP", help="only this app's domains")
    p = command(cert, "renew", "ask the ACME server for a new certificate now")
    p.add_argument("domain", metavar="DOMAIN")
    p = command(cert, "upload", "use a certificate of your own for a domain")
    p.add_argument("domain", metavar="DOMAIN")
    p.add_argument(
        "--cert", required=True, metavar="FILE", help="PEM file: the certificate first, then its chain"
    )
    p.add_argument("--key", required=True, metavar="FILE", help="PEM file: the certificate's private key")
    proxy = subcommands(command(commands, "proxy", "show or reload the proxy"), "subcommand")
    command(proxy, "status", "show the proxy's backend, state and routes")
    command(proxy, "install", "start (or replace) the Traefik container Mist supervises")
    command(proxy, "reload", "compute the routes again and hand them to the proxy")

    # ------------------------------------------------------------------ backups
    _backup_commands(commands, command, subcommands)

    # ------------------------------------------------------------------ admin
    settings = subcommands(command(commands, "settings", "show or change instance settings"), "subcommand")
    command(settings, "list", "list settings")
    p = command(settings, "get", "show one setting")
    p.add_argument("key")
    p = command(settings, "set", "change a setting")
    p.add_argument("key")
    p.add_argument("value")
    command(commands, "users", "list users (same as mist user list)")
    p = command(commands, "audit", "show the audit log, newest first, or export it")
    p.add_argument("--user", metavar="U", help="only what this user did")
    p.add_argument("--project", metavar="P", help="only what touched this project")
    p.add_argument("--action", metavar="PREFIX", help="action prefix: app., env.set...")
    p.add_argument("--since", metavar="WHEN", help="from this time: 1h, 2d (ago) or an ISO 8601 time or date")
    p.add_argument(
        "--until", metavar="WHEN", help="up to this time: 1h, 2d (ago) or an ISO 8601 time or date"
    )
    p.add_argument(
        "--limit", "-n", type=int, metavar="N", help="at most N entries (default 50; with --jsonl, all)"
    )
    p.add_argument(
        "--jsonl", action="store_true", help="export: every matching entry, one JSON object per line"
    )
    secrets = subcommands(
        command(commands, "secrets", "manage the master key of stored secrets"), "subcommand"
    )
    command(secrets, "rotate-key", "re-encrypt every stored secret under a new master key")
    p = command(commands, "completion", "print a shell completion script")
    p.add_argument("shell", choices=["bash", "zsh"])
    # Only for help: ``mist daemon ...`` is handed to the daemon before this parser runs.
    command(commands, "daemon", "run the Mist daemon (mistd); see mist daemon --help")
    return parser


def _backup_commands(commands: Any, command: Any, subcommands: Any) -> None:
    backup = subcommands(
        command(commands, "backup", "back up, verify and restore volumes and databases"), "subcommand"
    )
    wait = {"action": "store_false", "dest": "wait", "help": "return at once instead of waiting for the end"}
    database = {
        "action": "store_const",
        "const": "database",
        "default": "volume",
        "dest": "kind",
        "help": "NAME is one of the project's databases (mist db), not a volume",
    }
    p = command(backup, "list", "list a project's backups, newest first")
    p.add_argument("subject", metavar="PROJECT[/NAME]", help="a project, or one of its volumes or databases")
    p.add_argument("--database", **{**database, "default": None})
    p.add_argument("--limit", "-n", type=int, default=50, metavar="N", help="at most N backups (default 50)")
    p = command(backup, "show", "show one backup: its run, verification and last restore")
    p.add_argument("backup_id", type=int, metavar="ID")
    p = command(backup, "run", "back up a project's volume, or with --database one of its databases, now")
    p.add_argument("subject", metavar="PROJECT/NAME")
    p.add_argument("--database", **database)
    p.add_argument("--to", dest="destination", required=True, metavar="DEST", help="the destination's name")
    p.add_argument("--no-wait", **wait)
    p = command(
        backup,
        "verify",
        "restore a backup into a throw-away volume or database and check it holds what the backup did",
    )
    p.add_argument("backup_id", type=int, metavar="ID")
    p.add_argument("--no-wait", **wait)
    p = command(
        backup,
        "restore",
        "restore a backup into a new volume or database, or over the one it was taken of",
    )
    p.add_argument("backup_id", type=int, metavar="ID")
    p.add_argument(
        "--into",
        dest="target",
        metavar="NAME",
        help="a new volume of the project, or for a database's backup a new database, to restore into",
    )
    p.add_argument(
        "--confirm",
        metavar="NAME",
        help="restore over the volume or database itself: its name, to confirm (data is replaced)",
    )
    p.add_argument("--no-wait", **wait)
    p = command(backup, "delete", "delete a backup (its data at the destination too)")
    p.add_argument("backup_id", type=int, metavar="ID")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    schedule = subcommands(
        command(backup, "schedule", "back up a volume or a database on a cron schedule"), "subaction"
    )
    p = command(schedule, "list", "list a project's backup schedules")
    p.add_argument("project", metavar="PROJECT")
    p = command(
        schedule,
        "add",
        "schedule backups of a volume or (--database) a database (the same one and destination: replaced)",
    )
    p.add_argument("subject", metavar="PROJECT/NAME")
    p.add_argument("--database", **database)
    p.add_argument("--to", dest="destination", required=True, metavar="DEST", help="the destination's name")
    p.add_argument("--cron", required=True, metavar="EXPR", help="five cron fields, e.g. '0 3 * * *'")
    p.add_argument("--timezone", default="UTC", metavar="TZ", help="the cron's timezone (default UTC)")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="do not verify each new backup")
    for rule, what in (
        ("last", "the last N backups"),
        ("days", "the backups of the last N days"),
        ("daily", "the newest backup of each of the last N days"),
        ("weekly", "the newest backup of each of the last N weeks"),
        ("monthly", "the newest backup of each of the last N months"),
    ):
        p.add_argument(f"--keep-{rule}", type=int, metavar="N", help=f"keep {what}")
    p = command(schedule, "remove", "remove a backup schedule (its backups stay)")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("schedule_id", type=int, metavar="ID")
    dest = subcommands(command(backup, "destination", "manage where backups go"), "subaction")
    command(dest, "list", "list backup destinations")
    p = command(
        dest,
        "add",
        "add a local directory (--path) or an S3 bucket (--bucket; keys from MIST_S3_ACCESS_KEY and "
        "MIST_S3_SECRET_KEY, or asked for)",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--path", metavar="DIR", help="a directory on the server")
    p.add_argument("--bucket", metavar="BUCKET", help="an S3 bucket")
    p.add_argument("--endpoint", metavar="URL", help="the S3 service's URL (all but AWS itself)")
    p.add_argument("--region", metavar="REGION", help="the bucket's region (default us-east-1)")
    p.add_argument("--prefix", default="", metavar="PREFIX", help="where in the bucket (default: its top)")
    p.add_argument("--encrypt", action="store_true", help="encrypt backups with the instance's backup key")
    p = command(dest, "remove", "forget a backup destination (refused while backups use it)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse a command line, with the connection options filled in wherever they were given."""
    args = build_parser().parse_args(argv)
    check = vars(args).pop("_check", None)
    if check is not None:
        check(args)
    for key, default in GLOBAL_DEFAULTS.items():
        if not hasattr(args, key):
            setattr(args, key, default)
    return args


_VALUE_OPTIONS = {"--host", "--data"}
_FLAG_OPTIONS = {"--embedded", "--json"}


def first_command(argv: list[str]) -> int | None:
    """Index of the command word in ``argv`` (skipping leading connection options), or None if there is
    none, so ``mist daemon ...`` and ``mist`` alone can be dispatched before argparse sees them."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _VALUE_OPTIONS:
            i += 2
        elif arg in _FLAG_OPTIONS or any(arg.startswith(o + "=") for o in _VALUE_OPTIONS):
            i += 1
        elif arg.startswith("-"):
            return i  # -h/--help or an unknown option: argparse's business
        else:
            return i
    return None


def _database_commands(commands: Any, command: Any, subcommands: Any) -> None:
    db = subcommands(
        command(commands, "db", "manage databases (PostgreSQL, MySQL, MariaDB, Redis, MongoDB)"), "subcommand"
    )
    p = command(db, "create", "create a database in a project, with generated credentials")
    p.add_argument("database", metavar="PROJECT/NAME")
    p.add_argument(
        "--engine",
        "-e",
        required=True,
        choices=DATABASE_ENGINES,
        metavar="ENGINE",
        help=f"one of {', '.join(DATABASE_ENGINES)}",
    )
    p.add_argument(
        "--version", dest="db_version", metavar="V", help="the engine's version (default: its default)"
    )
    p.add_argument(
        "--persistence",
        choices=REDIS_PERSISTENCE,
        metavar="MODE",
        help="Redis only: rdb (snapshots, the default), aof (append-only file) or none",
    )
    p.add_argument("--memory", metavar="SIZE", help="memory limit, e.g. 512m")
    p.add_argument("--cpus", type=float, metavar="N")
    p.add_argument("--restart", metavar="POLICY", help="restart policy (default unless-stopped)")
    p.add_argument(
        "--public-port",
        type=int,
        metavar="PORT",
        help="publish on this host port on every interface (off by default)",
    )
    p = command(db, "list", "list databases")
    p.add_argument("--project", metavar="PROJECT")
    p = command(db, "show", "show a database: engine, version, state, host, linked apps")
    p.add_argument("database", metavar="PROJECT/NAME")
    p = command(db, "delete", "delete a database and its data")
    p.add_argument("database", metavar="PROJECT/NAME")
    p.add_argument("--keep-volume", action="store_true", help="keep the Docker volume with the data")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    for name, text in (
        ("start", "start a database"),
        ("stop", "stop a database"),
        ("restart", "restart a database"),
    ):
        p = command(db, name, text)
        p.add_argument("database", metavar="PROJECT/NAME")
    p = command(db, "logs", "print a database server's output")
    p.add_argument("database", metavar="PROJECT/NAME")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--tail", type=int, default=200, metavar="N", help="last N lines (default 200)")
    p.add_argument("--since", metavar="T", help="10m, 2h, 1d or an ISO 8601 time")
    p.add_argument("--timestamps", "-t", action="store_true", help="prefix each line with its time")
    p = command(db, "url", "print the connection URL, password included (recorded in the audit log)")
    p.add_argument("database", metavar="PROJECT/NAME")
    p = command(
        db,
        "link",
        "give an app of the project the database's connection as secret variables, and redeploy it",
    )
    p.add_argument("database", metavar="PROJECT/NAME")
    p.add_argument("app", metavar="PROJECT/APP")
    p.add_argument(
        "--as",
        dest="prefix",
        metavar="PREFIX",
        help="variable prefix: PREFIX_URL, PREFIX_HOST... (default DATABASE, REDIS or MONGO)",
    )
    p = command(db, "unlink", "remove the variables of a link from the app, and redeploy it")
    p.add_argument("database", metavar="PROJECT/NAME")
    p.add_argument("app", metavar="PROJECT/APP")
    _database_after_creation(db, command)


def _check_db_shell(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """As for exec: the client's arguments come after ``--``; -t/-T before them are the shell's own."""
    _check_exec(p, args)


def _database_after_creation(db: Any, command: Any) -> None:
    p = command(db, "shell", "open the engine's client (psql, mariadb, redis-cli...) in the database")
    p.add_argument("database", metavar="PROJECT/NAME")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- ARGS", help="arguments for the client")
    tty = p.add_mutually_exclusive_group()
    tty.add_argument(
        "--tty",
        "-t",
        dest="tty",
        action="store_const",
        const=True,
        default=None,
        help="attach a terminal (default: when stdin and stdout are terminals)",
    )
    tty.add_argument("--no-tty", "-T", dest="tty", action="store_const", const=False, help="plain pipes")
    p.set_defaults(_check=lambda args, p=p: _check_db_shell(p, args))
    p = command(db, "users", "list the users of a database's server")
    p.add_argument("database", metavar="PROJECT/NAME")
    p = command(db, "create-user", "make a user with the rights of the database's own on its data")
    p.add_argument("database", metavar="PROJECT/NAME")
    p.add_argument("user", metavar="USER")
    _password_stdin(p, "read the new user's password from stdin (first line; default: one is generated)")
    p = command(db, "drop-user", "remove a user (what it owns goes to the database's own user)")
    p.add_argument("database", metavar="PROJECT/NAME")
    p.add_argument("user", metavar="USER")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p = command(db, "update", "change a database's limits, restart policy or public port (data kept)")
    p.add_argument("database", metavar="PROJECT/NAME")
    p.add_argument("--memory", metavar="SIZE", help="memory limit, e.g. 512m")
    p.add_argument("--cpus", type=float, metavar="N")
    p.add_argument("--restart", metavar="POLICY", help="restart policy")
    public = p.add_mutually_exclusive_group()
    public.add_argument(
        "--public-port", type=int, metavar="PORT", help="publish on this host port on every interface"
    )
    public.add_argument("--no-public-port", action="store_true", help="stop publishing it on a host port")
    p = command(db, "upgrade", "move a database to a minor release of its version (data kept)")
    p.add_argument("database", metavar="PROJECT/NAME")
    p.add_argument("--version", dest="db_version", required=True, metavar="V", help="e.g. 15.6 for 15")
