"""Who may do what: one table from every operation of the Mist API to the least role it needs.

Each operation is named ``"<part>.<method>"`` after ``MistAPI`` (``"apps.deploy"``), the name of its row in the
operation table too (``mist_core.operations``: how it travels over HTTP). ``LocalMist`` checks this table before
doing anything, whatever the caller (CLI, TUI, HTTP, a script), and the operation table refuses to load when an
operation of the interface has no row here or a row here names no operation. The HTTP layer and ``RemoteMist``
read it too, for one thing only: which operations answer without a token (``public``); every other route
authenticates its caller before it reads the request.

``on`` says which role counts:

- ``public``: no login needed (how one gets a login);
- ``self``: any logged-in user, acting on their own account;
- ``instance``: the user's instance role (owner > admin > developer > viewer);
- ``project``: the user's role in the project the call names. Instance owners and admins are admins of
  every project; an instance viewer is at most a viewer anywhere; someone who is not a member does not see
  the project at all (``NotFound``, never a hint that it exists).

Lists (projects, apps, containers, events...) need only a login and show what the caller may see.

An API token acts as its user, further limited by its scope: ``read`` allows the operations a viewer may
call, ``deploy`` adds those in ``DEPLOY_OPERATIONS``, ``admin`` allows whatever the user may do. Tokens never
manage accounts, sessions or other tokens, except ``admin``-scoped ones.

A token bound to a project (``mist token create --project P``) reaches that project and nothing else, whatever
its scope and whoever its user (an instance owner's too). ``bound`` in each rule says whether such a token may
call the operation at all:

- operations on a project (``on="project"``): yes, on its own project only; any other project does not exist
  for it (``NotFound``), and something of no project (a certificate no app serves) is refused;
- the lists every login may call (``LIST``: projects, apps, containers, metrics, events, audit,
  certificates): yes, and they show only the bound project's things (metrics keep the server's own figures,
  which name no project; the audit log shows only entries about the project, not what the token's user did
  elsewhere);
- ``auth.whoami``: yes, a token may read whose it is;
- everything else, which is about the instance rather than one project (users, invitations, settings,
  secrets, the proxy, git providers, creating projects, the user's own account, sessions and tokens): no,
  refused with ``PermissionDenied`` naming the project the token is bound to.

The ``public`` operations need no token, so a binding changes nothing there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import PermissionDenied

INSTANCE_RANK = {"viewer": 1, "developer": 2, "admin": 3, "owner": 4}
PROJECT_RANK = {"viewer": 1, "developer": 2, "admin": 3}
SCOPE_RANK = {"read": 1, "deploy": 2, "admin": 3}

On = Literal["public", "self", "instance", "project"]


@dataclass(frozen=True)
class Rule:
    on: On
    role: str = "viewer"  # the least role (instance or project, after ``on``)
    bound: bool = False  # whether a token bound to one project may call it (see the module's docstring)

    @property
    def scope(self) -> str:
        """The least API-token scope that may call the operation."""
        return "read" if self.role == "viewer" and self.on != "self" else "admin"


def _r(on: On, role: str = "viewer", *, bound: bool | None = None) -> Rule:
    # A bound token reaches the operations on its project; anything else is said explicitly.
    return Rule(on, role, on == "project" if bound is None else bound)


PUBLIC, SELF = _r("public"), _r("self")
VIEW, DEVELOP, ADMINISTER = _r("project"), _r("project", "developer"), _r("project", "admin")
LIST = _r("instance", bound=True)  # any login; shows only what the caller sees (a bound token: its project)
SIGNED_IN = _r("instance")  # any login; about the instance, so not for a token bound to a project

PERMISSIONS: dict[str, Rule] = {
    "auth.status": PUBLIC,
    "auth.setup": PUBLIC,
    "auth.login": PUBLIC,
    "auth.refresh": PUBLIC,
    "auth.whoami": _r("self", "viewer", bound=True),
    "auth.logout": SELF,
    "auth.change_password": SELF,
    "auth.totp_setup": SELF,
    "auth.totp_enable": SELF,
    "auth.totp_disable": SELF,
    "projects.create": _r("instance", "developer"),
    "projects.list": LIST,
    "projects.get": VIEW,
    "projects.update": ADMINISTER,
    "projects.delete": ADMINISTER,
    "apps.create": DEVELOP,
    "apps.list": LIST,
    "apps.get": VIEW,
    "apps.update": DEVELOP,
    "apps.delete": ADMINISTER,
    "apps.deploy": DEVELOP,
    "apps.rollback": DEVELOP,
    "apps.start": DEVELOP,
    "apps.stop": DEVELOP,
    "apps.restart": DEVELOP,
    "apps.logs": VIEW,
    "apps.source": VIEW,  # the webhook secret only for developers (``reveal``)
    "apps.set_source": DEVELOP,
    "apps.deploy_key": DEVELOP,
    "databases.create": DEVELOP,
    "databases.list": LIST,
    "databases.get": VIEW,  # never a password
    "databases.delete": ADMINISTER,  # removes the data with it
    "databases.start": DEVELOP,
    "databases.stop": DEVELOP,
    "databases.restart": DEVELOP,
    "databases.logs": VIEW,
    "databases.url": DEVELOP,  # the password: developers and admin-scoped tokens, audited
    "databases.link": DEVELOP,
    "databases.unlink": DEVELOP,
    # databases after they exist
    "databases.shell": DEVELOP,  # a client logged in with the database's password: like exec
    "databases.users": VIEW,  # names only
    "databases.create_user": DEVELOP,  # a new login: like revealing the URL
    "databases.drop_user": DEVELOP,
    "databases.update": DEVELOP,
    "databases.upgrade": DEVELOP,
    "env.list": VIEW,  # secret values only for developers (``env.reveal``)
    "env.set": DEVELOP,
    "env.unset": DEVELOP,
    "env.import_dotenv": DEVELOP,
    "env.export_dotenv": VIEW,
    "deployments.list": VIEW,
    "deployments.get": VIEW,
    "deployments.log": VIEW,
    "deployments.cancel": DEVELOP,
    "containers.list": LIST,
    "containers.describe": VIEW,  # secret values masked for everyone
    "containers.exec": DEVELOP,  # a shell in the container reads its secrets: developers and up
    "metrics.current": LIST,
    "metrics.history": LIST,
    "metrics.stream": LIST,
    "events.stream": LIST,
    "users.list": SIGNED_IN,
    "users.get": SIGNED_IN,  # oneself, or anyone for an admin
    "users.create": _r("instance", "admin"),
    "users.update": SELF,  # oneself, or anyone for an admin
    "users.set_role": _r("instance", "admin"),
    "users.delete": _r("instance", "admin"),
    "members.list": VIEW,
    "members.add": ADMINISTER,
    "members.remove": ADMINISTER,
    "invites.create": _r("instance", "admin"),
    "invites.list": _r("instance", "admin"),
    "invites.revoke": _r("instance", "admin"),
    "invites.accept": PUBLIC,
    "sessions.list": SELF,
    "sessions.revoke": SELF,
    "tokens.create": SELF,
    "tokens.list": SELF,
    "tokens.revoke": SELF,
    "secrets.rotate_key": _r("instance", "owner"),
    "git.providers": SIGNED_IN,
    "git.add_provider": _r("instance", "admin"),
    "git.github_manifest": _r("instance", "admin"),
    "git.remove_provider": _r("instance", "admin"),
    "git.repos": _r("instance", "developer"),
    "git.branches": _r("instance", "developer"),
    "webhooks.list": VIEW,
    "previews.list": VIEW,
    "audit.list": LIST,  # admins: everything; project admins: their projects; everyone: what they did
    "settings.list": SIGNED_IN,
    "settings.get": SIGNED_IN,
    "settings.set": _r("instance", "admin"),
    "domains.list": VIEW,
    "domains.add": DEVELOP,
    "domains.update": DEVELOP,
    "domains.remove": DEVELOP,
    "certificates.list": LIST,  # the certificates of the apps the caller sees
    "certificates.renew": DEVELOP,
    "certificates.upload": ADMINISTER,
    "proxy.status": SIGNED_IN,
    "proxy.reload": _r("instance", "admin"),
    "proxy.install": _r("instance", "admin"),
    # backups: a project's volumes are its members'; destinations hold credentials, so the instance admins'
    "backups.list": VIEW,
    "backups.get": VIEW,
    "backups.run": DEVELOP,
    "backups.verify": DEVELOP,
    "backups.restore": ADMINISTER,  # overwrites a volume's data
    "backups.delete": ADMINISTER,
    "backups.schedules": VIEW,
    "backups.schedule": ADMINISTER,
    "backups.unschedule": ADMINISTER,
    "backups.destinations": SIGNED_IN,
    "backups.add_destination": _r("instance", "admin"),
    "backups.remove_destination": _r("instance", "admin"),
}

# Reading secret values needs more than viewing the app.
ENV_REVEAL_ROLE = "developer"

# What a ``deploy``-scoped token may do beyond reading.
DEPLOY_OPERATIONS = frozenset(
    {
        "apps.deploy",
        "apps.rollback",
        "apps.start",
        "apps.stop",
        "apps.restart",
        "databases.start",
        "databases.stop",
        "databases.restart",
        "deployments.cancel",
    }
)


def rule(operation: str) -> Rule:
    try:
        return PERMISSIONS[operation]
    except KeyError:
        # An operation without a row is refused, never allowed by default.
        raise PermissionDenied(f"the operation {operation!r} is not in the permission table") from None


def token_allows(scope: str, operation: str) -> bool:
    """Whether an API token of ``scope`` may call ``operation`` at all (the user's role is checked too)."""
    if scope == "admin":
        return True
    if operation in DEPLOY_OPERATIONS:
        return scope == "deploy"
    needed = rule(operation)
    if operation in ("auth.whoami", "auth.status"):
        return True
    return needed.scope == "read"


def project_role(instance_role: str, member_role: str | None) -> str | None:
    """The role a user holds in a project: admin for instance owners and admins, the membership's role
    otherwise (at most viewer for an instance viewer), None for a non-member."""
    if INSTANCE_RANK[instance_role] >= INSTANCE_RANK["admin"]:
        return "admin"
    if member_role is None:
        return None
    if instance_role == "viewer":
        return "viewer"
    return member_role


def at_least(have: str | None, need: str, ranks: dict[str, int]) -> bool:
    return have is not None and ranks[have] >= ranks[need]
