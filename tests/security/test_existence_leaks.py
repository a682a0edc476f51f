"""Nothing a caller is refused tells them about projects they cannot see: a domain taken in another project
is "taken", never whose; a certificate of another project's domain is answered as one of no app at all."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from gitutil import init_repo

from .conftest import Daemon, describe, self_signed, strong_password

pytestmark = pytest.mark.docker


@dataclass
class TwoProjects:
    """Project ``hidden`` (with app ``secret-shop``, domain ``taken``) that ``outsider`` is no member of, and
    project ``mine`` (app ``web``) where ``outsider`` is a developer. ``both`` is a developer in both."""

    d: Daemon
    hidden: str
    mine: str
    taken: str
    outsider: str
    both: str

    @property
    def my_app(self) -> str:
        return f"/projects/{self.mine}/apps/web"


@pytest.fixture(scope="module")
def two(daemon: Daemon) -> TwoProjects:
    d, s = daemon, uuid.uuid4().hex[:8]
    owner = d.owner_token
    hidden, mine = f"hidden-{s}", f"mine-{s}"
    taken = f"shop-{s}.example.com"
    repo = init_repo(d.repos / f"leaks-{s}", {"README.md": "nothing to build\n"})
    for project, app in ((hidden, "secret-shop"), (mine, "web")):
        d.ok("POST", "/projects", token=owner, json={"name": project})
        d.ok("POST", f"/projects/{project}/apps", token=owner, json={"name": app, "git_url": str(repo)})
    d.ok(
        "POST",
        f"/projects/{hidden}/apps/secret-shop/domains",
        token=owner,
        json={"name": taken, "https": False, "www_redirect": "to-apex"},
    )
    tokens = {}
    for who, projects in (("outsider", [mine]), ("both", [mine, hidden])):
        username, password = f"{who}-{s}", strong_password()
        d.create_user(username, "developer", password)
        for project in projects:
            d.ok("PUT", f"/projects/{project}/members/{username}", token=owner, json={"role": "developer"})
        tokens[who] = d.login(username, password)["token"]
    return TwoProjects(d, hidden, mine, taken, tokens["outsider"], tokens["both"])


def _leaks(two: TwoProjects, text: str) -> list[str]:
    return [word for word in (two.hidden, "secret-shop") if word in text]


@pytest.mark.parametrize("name", ["taken", "www of taken"])
def test_a_domain_taken_in_an_unseen_project_is_only_said_to_be_taken(two: TwoProjects, name: str) -> None:
    d = two.d
    domain = two.taken if name == "taken" else f"www.{two.taken}"
    for token in (two.outsider, d.create_token(two.outsider, "admin", project=two.mine)["token"]):
        response = d.call("POST", two.my_app + "/domains", token=token, json={"name": domain, "https": False})
        assert response.status_code == 409, describe(response)
        assert "another project" in response.json()["detail"], describe(response)
        assert not _leaks(two, response.text), (
            f"the refusal names the other project's app: {describe(response)}"
        )


def test_changing_a_domains_redirect_onto_a_name_taken_in_an_unseen_project_is_only_said_to_be_taken(
    two: TwoProjects,
) -> None:
    d = two.d
    # www.<name> is free (the taken name redirects from www.shop-..., so use another apex of the hidden app).
    apex = f"apex-{uuid.uuid4().hex[:8]}.example.com"
    d.ok("POST", f"/projects/{two.hidden}/apps/secret-shop/domains", token=d.owner_token, json={"name": apex})
    d.ok("POST", two.my_app + "/domains", token=two.outsider, json={"name": f"www.{apex}", "https": False})

    response = d.call(
        "PUT",
        f"{two.my_app}/domains/www.{apex}",
        token=two.outsider,
        json={"https": False, "www_redirect": "to-www"},
    )

    assert response.status_code == 409, describe(response)
    assert not _leaks(two, response.text), f"the refusal names the other project's app: {describe(response)}"


def test_a_caller_who_sees_both_projects_is_told_which_app_has_the_domain(two: TwoProjects) -> None:
    response = two.d.call(
        "POST", two.my_app + "/domains", token=two.both, json={"name": two.taken, "https": False}
    )
    assert response.status_code == 409, describe(response)
    assert f"{two.hidden}/secret-shop" in response.json()["detail"], describe(response)


@pytest.mark.parametrize("operation", ["upload", "renew"])
def test_a_certificate_of_an_unseen_projects_domain_is_answered_as_one_of_no_app(
    two: TwoProjects, operation: str
) -> None:
    d = two.d
    nobodys = f"nobody-{uuid.uuid4().hex[:8]}.example.com"
    answers = {}
    for domain in (two.taken, nobodys):
        if operation == "upload":
            cert, key = self_signed(domain)
            response = d.call(
                "PUT", f"/certificates/{domain}", token=two.outsider, json={"cert_pem": cert, "key_pem": key}
            )
        else:
            response = d.call("POST", f"/certificates/{domain}/renew", token=two.outsider)
        assert not _leaks(two, response.text), describe(response)
        answers[domain] = (response.status_code, response.json()["detail"].replace(domain, "NAME"))
    assert answers[two.taken] == answers[nobodys], (
        f"another project's domain is answered differently from a domain of no app: {answers}"
    )
