"""The Git tab, the git providers screen and creating an app from a provider's repository, driven with Pilot
on the seeded real core whose team set up git hosting (``new_world(git=True)``: its providers' APIs are the
forge stand-in): what the user sees, and what the core then holds."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from mist_core.errors import InvalidInput
from mist_tui.screens.git import parse_env_lines, parse_limit, ref_text
from mist_tui.screens.providers import provider_spec

from .scenarios import SIZE, git_app, git_tab, make_app, on_dashboard, screen_name, until
from .world import NOW, PASSWORD, forge, new_world, record_calls


def facts(pilot) -> str:
    """The source panel as the user reads it (a grid: rendered to text at the pane's width)."""
    console = Console(width=116, record=True, file=io.StringIO())
    console.print(pilot.app.screen.query_one("#git-source").content)
    return console.export_text()


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


def recording(*operations: str):
    """The TUI on the git world, and the calls it makes to ``operations``."""
    world = new_world(git=True)
    calls = record_calls(world, *operations)
    return make_app(world), calls


# ---------------------------------------------------------------------------------------------- pure logic


def test_preview_variables_are_read_one_per_line_and_a_line_without_equals_is_named():
    assert parse_env_lines("STRIPE_KEY=sk_test\n\nDEBUG=1=yes\n") == {
        "STRIPE_KEY": "sk_test",
        "DEBUG": "1=yes",
    }
    with pytest.raises(InvalidInput) as caught:
        parse_env_lines("STRIPE_KEY=sk\nDEBUG")
    assert caught.value.field == "env" and "line 2" in caught.value.message


def test_preview_limit_must_be_a_number_from_1_to_50():
    assert parse_limit(" 7 ") == 7
    for bad in ("0", "51", "three", ""):
        with pytest.raises(InvalidInput):
            parse_limit(bad)


def test_a_pull_request_delivery_reads_as_pr_number_and_branch():
    from mist_core.models import WebhookDelivery

    d = WebhookDelivery(
        id=1, event="pull_request", received_at=NOW, outcome="preview", reason="", ref="fix/x", pr_number=4
    )
    assert ref_text(d) == "PR #4 (fix/x)"
    assert ref_text(d.model_copy(update={"pr_number": None, "ref": "refs/tags/v1.2"})) == "v1.2"


def test_a_github_app_needs_its_id_and_the_other_kinds_need_a_url_and_token(tmp_path):
    base = {
        "name": "gh",
        "kind": "github",
        "url": "",
        "token": "",
        "app_id": "",
        "private_key_file": "",
        "webhook_secret": "",
        "installation_id": "",
    }
    with pytest.raises(InvalidInput) as caught:
        provider_spec(base)
    assert caught.value.field == "app_id"
    key = tmp_path / "app.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n")
    spec = provider_spec({**base, "app_id": "42", "private_key_file": str(key), "webhook_secret": "s"})
    assert spec.app_id == 42 and "PRIVATE KEY" in (spec.private_key or "") and spec.token is None
    with pytest.raises(InvalidInput) as caught:
        provider_spec({**base, "kind": "gitea", "app_id": "42"})
    assert caught.value.field == "url"


# ---------------------------------------------------------------------------------------------- the Git tab


async def test_git_tab_shows_the_key_host_keys_webhook_and_previews_with_the_secret_masked():
    app = git_app()
    async with app.run_test(size=SIZE) as pilot:
        await git_tab(pilot)
        source = await app.api.apps.source("shop/web", reveal=True)
        text = facts(pilot)
        assert "ssh deploy key" in text and source.deploy_key_fingerprint in text
        assert "git.example.com  ssh-ed25519  SHA256:" in text
        assert f"{source.webhook_url}   signed as gitea" in text
        assert source.webhook_url.startswith("https://mist.example.com/hooks/")
        assert source.webhook_secret not in text and "••••••" in text
        assert "up to 3 at once" in text
        deliveries = app.screen.query_one("#deliveries")
        assert deliveries.row_count == 8 and "2 refused" in str(deliveries.border_title)
        assert app.screen.query_one("#previews").row_count == 2


async def test_revealing_the_webhook_secret_shows_it_and_a_viewer_is_told_why_not():
    app = git_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await git_tab(pilot)
        secret = (await app.api.apps.source("shop/web", reveal=True)).webhook_secret
        await pilot.press("r")
        await until(pilot, lambda: secret in facts(pilot))
        await pilot.press("r")
        await until(pilot, lambda: secret not in facts(pilot))

    app = make_app(new_world(git=True), user=None)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "LoginScreen")
        await pilot.press(*"ken", "enter", *PASSWORD, "enter")  # a viewer of shop
        await git_tab(pilot)
        await pilot.press("r")
        await until(
            pilot,
            lambda: (
                "secret values are shown only to developers and admins of project 'shop'" in messages(app)
            ),
        )
        assert any(n.title == "Permission denied" for n in app._notifications)
        assert "••••••" in facts(pilot)
        assert app.screen.query_one("GitPane").reveal is False


async def test_setting_a_token_sends_it_once_and_never_shows_it_back():
    app, calls = recording("apps.set_source")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await git_tab(pilot, ref="blog/site")
        await pilot.press("a")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        token_input = app.screen.query_one("#field-token")
        assert token_input.password  # typed into a password field
        await pilot.press("enter")  # empty: refused in place
        await until(pilot, lambda: str(app.screen.query_one("#error-token").render()).strip())
        await pilot.press(*"glpat-s3cr3t", "enter")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        assert [(c[1], c[2].token) for c in calls] == [("blog/site", "glpat-s3cr3t")]
        assert (await app.api.apps.source("blog/site")).auth == "token"
        await until(pilot, lambda: any("never shown again" in m for m in messages(app)))
        assert "glpat-s3cr3t" not in facts(pilot)
        assert not any("glpat-s3cr3t" in m for m in messages(app))

        # Removing it: the box, not an empty field.
        await pilot.press("a")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        app.screen.query_one("#field-remove").value = True
        app.screen._submitted()
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        assert calls[-1][2].token == ""
        assert (await app.api.apps.source("blog/site")).auth == "none"


async def test_p_turns_deploy_on_push_off_and_on_again():
    app = git_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await git_tab(pilot)
        assert "yes, pushes to main" in facts(pilot)
        await pilot.press("p")
        await until(pilot, lambda: "deploy on push  no" in facts(pilot))
        assert (await app.api.apps.source("shop/web")).deploy_on_push is False
        await pilot.press("p")
        await until(pilot, lambda: "yes, pushes to main" in facts(pilot))
        assert (await app.api.apps.source("shop/web")).deploy_on_push is True
        await pilot.press("t")
        await until(pilot, lambda: "tags deployed" in facts(pilot))
        assert (await app.api.apps.source("shop/web")).deploy_tags is True


async def test_regenerating_the_deploy_key_asks_first_then_shows_the_new_public_key():
    app, calls = recording("apps.deploy_key")
    async with app.run_test(size=SIZE) as pilot:
        await git_tab(pilot)
        old = await app.api.apps.source("shop/web")
        await pilot.press("K")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        assert old.deploy_key_fingerprint in str(app.screen.query_one(".dialog-message").render())
        await pilot.press("n")  # no: nothing happens
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        assert calls == []

        await pilot.press("K")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        await pilot.press("y")
        await until(pilot, lambda: screen_name(pilot) == "CopyDialog")
        new = await app.api.apps.source("shop/web")
        assert new.deploy_key != old.deploy_key
        assert new.deploy_key in str(app.screen.query_one("#secret-value").render())
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        assert new.deploy_key_fingerprint in facts(pilot) and old.deploy_key_fingerprint not in facts(pilot)


async def test_an_app_without_a_key_gets_one_at_once_and_c_copies_it():
    app, calls = recording("apps.deploy_key")
    async with app.run_test(size=SIZE) as pilot:
        await git_tab(pilot, ref="blog/site")
        assert "none (K makes one)" in facts(pilot)
        await pilot.press("K")
        await until(pilot, lambda: screen_name(pilot) == "CopyDialog")
        assert calls == [("apps.deploy_key", "blog/site", False)]
        # blog/site fetches over https: the dialog says the key needs the ssh address.
        assert "ssh address" in str(app.screen.query_one(".dialog-message").render())
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        copied: list[str] = []
        app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
        await pilot.press("c")
        key = (await app.api.apps.source("blog/site")).deploy_key
        assert key and copied and copied[0].startswith(key)


async def test_forgetting_host_keys_asks_first_naming_them():
    app = git_app()
    async with app.run_test(size=SIZE) as pilot:
        await git_tab(pilot)
        await pilot.press("f")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        assert "git.example.com" in str(app.screen.query_one(".dialog-message").render())
        await pilot.press("y")
        await until(pilot, lambda: "none pinned yet" in facts(pilot))
        assert (await app.api.apps.source("shop/web")).known_hosts is None


async def test_enter_on_a_delivery_opens_its_deployment_and_a_refused_one_says_why():
    app = git_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await git_tab(pilot)
        await pilot.press("down", "down", "down")  # the refused one: a bad signature
        detail = str(app.screen.query_one("#delivery-detail").render())
        assert "refused: the X-Gitea-Signature signature does not match" in detail
        await pilot.press("enter")
        await until(pilot, lambda: any("queued no deployment" in m for m in messages(app)))
        assert screen_name(pilot) == "AppScreen"

        await pilot.press("g", "enter")  # the newest: a push to main, deployed
        await until(pilot, lambda: screen_name(pilot) == "DeploymentScreen")
        assert app.screen.deployment_id == app.world.ids["pushed"]


async def test_enter_on_a_preview_opens_the_preview_app():
    app = git_app()
    async with app.run_test(size=SIZE) as pilot:
        await git_tab(pilot)
        await pilot.press("tab")  # from the deliveries to the previews
        assert app.focused is app.screen.query_one("#previews")
        await pilot.press("down", "enter")
        await until(
            pilot,
            lambda: screen_name(pilot) == "AppScreen" and app.screen.app_ref == "shop/web-pr-14",
        )


async def test_preview_settings_are_saved_from_the_dialog_and_a_bad_pattern_is_shown_in_place():
    app = git_app()
    async with app.run_test(size=SIZE) as pilot:
        await git_tab(pilot)
        await pilot.press("e")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        dialog = app.screen
        dialog.query_one("#field-domain_pattern").value = "pr-{id}.{app_domain}"
        dialog._submitted()
        await until(pilot, lambda: str(dialog.query_one("#error-domain_pattern").render()).strip())
        assert "is not a domain pattern: use {number} and {app_domain}" in str(
            dialog.query_one("#error-domain_pattern").render()
        )

        dialog.query_one("#field-domain_pattern").value = "pr{number}-{app_domain}"
        dialog.query_one("#field-limit").value = "5"
        dialog.query_one("#field-env").text = "STRIPE_KEY=sk_test_new\nFEATURE_FLAGS=all"
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        previews = (await app.api.apps.source("shop/web")).previews
        assert previews.limit == 5 and previews.domain_pattern == "pr{number}-{app_domain}"
        assert previews.env == {"STRIPE_KEY": "sk_test_new", "FEATURE_FLAGS": "all"}
        await until(pilot, lambda: "up to 5 at once" in facts(pilot))


async def test_linking_to_a_provider_repository_lists_its_repositories_then_shows_the_link():
    app, calls = recording("apps.set_source")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await git_tab(pilot)
        assert "provider" not in facts(pilot).split("fetches with")[1].splitlines()[1]
        ids = {b.binding.id for b in app.screen.active_bindings.values()}
        assert "git.link" in ids and "git.unlink" not in ids  # nothing to unlink yet
        await pilot.press("L")
        await until(pilot, lambda: screen_name(pilot) == "LinkDialog")
        dialog = app.screen
        repo = dialog.query_one("#field-repo")
        dialog.query_one("#field-provider").value = "gitea"
        await until(pilot, lambda: "shop/web" in [value for _, value in repo._options])
        dialog._submitted()  # no repository chosen yet: said in place
        await until(pilot, lambda: str(dialog.query_one("#error-repo").render()).strip())
        assert calls == []
        repo.value = "shop/web"
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        assert [(c[1], c[2].provider, c[2].repo) for c in calls] == [("shop/web", "gitea", "shop/web")]
        await until(pilot, lambda: "gitea · shop/web" in facts(pilot))
        assert "git provider" in facts(pilot)
        assert (await app.api.apps.get("shop/web")).spec.git_url == "https://gitea.example.com/shop/web.git"
        await until(
            pilot, lambda: any("is linked to shop/web at git provider gitea" in m for m in messages(app))
        )
        ids = {b.binding.id for b in app.screen.active_bindings.values()}
        assert "git.unlink" in ids


async def test_a_provider_without_repositories_says_so_in_the_link_dialog():
    app = git_app()
    async with app.run_test(size=SIZE) as pilot:
        await git_tab(pilot)
        await pilot.press("L")
        await until(pilot, lambda: screen_name(pilot) == "LinkDialog")
        app.screen.query_one("#field-provider").value = "gitlab"
        await until(pilot, lambda: "no repository" in str(app.screen.query_one("#error-repo").render()))


async def test_unlinking_asks_first_naming_the_provider_and_repository():
    app, calls = recording("apps.set_source")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await git_tab(pilot, ref="shop/api")
        assert "gitea · shop/api" in facts(pilot)
        await pilot.press("U")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        message = str(app.screen.query_one(".dialog-message").render())
        assert "git provider gitea" in message and "repository shop/api" in message
        await pilot.press("n")  # no: still linked
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        assert calls == []

        await pilot.press("U")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        await pilot.press("y")
        await until(pilot, lambda: "gitea · shop/api" not in facts(pilot))
        assert (await app.api.apps.source("shop/api")).provider is None
        await until(pilot, lambda: any("no longer linked to git provider gitea" in m for m in messages(app)))
        ids = {b.binding.id for b in app.screen.active_bindings.values()}
        assert "git.unlink" not in ids


async def test_webhook_signing_is_chosen_for_an_unlinked_app_and_a_linked_one_is_told_the_provider_decides():
    app = git_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await git_tab(pilot, ref="blog/site")
        flat = " ".join(facts(pilot).split())  # the line wraps at the pane's width
        assert "deliveries are refused until w says which git host signs them" in flat
        await pilot.press("w")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        app.screen.query_one("#field-kind").value = "gitlab"
        app.screen._submitted()
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        await until(pilot, lambda: "signed as gitlab" in facts(pilot))
        assert (await app.api.apps.source("blog/site")).webhook_kind == "gitlab"

    app, calls = recording("apps.set_source")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await git_tab(pilot, ref="shop/api")
        await pilot.press("w")
        await until(pilot, lambda: any("which decides how its webhook" in m for m in messages(app)))
        assert screen_name(pilot) == "AppScreen"
        assert calls == []


async def test_git_actions_are_in_the_palette_and_the_help():
    app = git_app()
    async with app.run_test(size=SIZE) as pilot:
        await git_tab(pilot)
        descriptions = {b.binding.description for b in app.screen.active_bindings.values()}
        assert {
            "Deploy key",
            "Access token",
            "Deploy on push",
            "Previews",
            "Forget host keys",
        } <= descriptions
        ids = {b.binding.id for b in app.screen.active_bindings.values()}
        assert {"git.deploy_key", "git.token", "git.reveal", "git.new_secret", "git.link"} <= ids
        assert "git.webhook_kind" in ids and "Webhook signing" in descriptions
        await pilot.press("colon")
        await until(pilot, lambda: screen_name(pilot) == "CommandPalette")
        await pilot.press(*"forget host")
        await until(
            pilot,
            lambda: (
                "Forget host keys"
                in str(app.screen.query("CommandList").first().get_option_at_index(0).prompt)
            ),
        )


# ---------------------------------------------------------------------------------------------- providers


async def test_adding_a_gitea_provider_checks_the_token_then_lists_it():
    app = git_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await on_dashboard(pilot)
        app.action_goto("providers")
        await until(
            pilot, lambda: screen_name(pilot) == "GitProvidersScreen" and app.screen.table.row_count == 3
        )
        await pilot.press("n")
        await until(pilot, lambda: screen_name(pilot) == "AddProviderDialog")
        dialog = app.screen
        assert not dialog.query_one("#field-app_id").display  # GitHub-only fields hidden for Gitea
        await pilot.press(*"forgejo", "tab", "tab", *"https://code.example.org", "tab", *"bad", "enter")
        await until(pilot, lambda: str(dialog.query_one("#error-form").render()).strip())
        assert "Gitea answered GET /user/repos with 401 Unauthorized" in str(
            dialog.query_one("#error-form").render()
        )
        assert "forgejo" not in [p.name for p in await app.api.git.providers()]
        dialog.query_one("#field-token").value = forge().gitea_token
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "GitProvidersScreen")
        await until(pilot, lambda: "forgejo" in [str(k.value) for k in app.screen.table.rows])
        added = next(p for p in await app.api.git.providers() if p.name == "forgejo")
        assert (added.kind, added.url) == ("gitea", "https://code.example.org")


async def test_choosing_github_app_shows_its_fields_and_hides_the_token():
    app = git_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        app.action_goto("providers")
        await until(pilot, lambda: screen_name(pilot) == "GitProvidersScreen")
        await pilot.press("n")
        await until(pilot, lambda: screen_name(pilot) == "AddProviderDialog")
        dialog = app.screen
        dialog.query_one("#field-kind").value = "github"
        await until(pilot, lambda: dialog.query_one("#field-app_id").display)
        assert not dialog.query_one("#field-token").display
        assert dialog.query_one("#field-webhook_secret").password


async def test_removing_a_provider_names_it_and_a_provider_in_use_is_refused_with_the_apps():
    app = git_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await on_dashboard(pilot)
        app.action_goto("providers")
        await until(
            pilot, lambda: screen_name(pilot) == "GitProvidersScreen" and app.screen.table.row_count == 3
        )
        await pilot.press("down", "X")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        assert "gitea" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("y")
        await until(pilot, lambda: any("still use provider 'gitea' (shop/api)" in m for m in messages(app)))
        providers = app.screen
        await pilot.press("down", "X")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        assert "gitlab" in str(app.screen.query_one(".dialog-message").render())
        await pilot.press("y")
        await until(pilot, lambda: "gitlab" not in [str(k.value) for k in providers.table.rows])
        assert [p.name for p in await app.api.git.providers()] == ["gh", "gitea"]


async def test_create_github_app_shows_the_address_to_open():
    app, calls = recording("git.github_manifest")
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        app.action_goto("providers")
        await until(pilot, lambda: screen_name(pilot) == "GitProvidersScreen")
        await pilot.press("M")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        app.screen.query_one("#field-name").value = "gh2"
        app.screen.query_one("#field-organization").value = "acme"
        app.screen._submitted()
        await until(pilot, lambda: screen_name(pilot) == "CopyDialog")
        shown = str(app.screen.query_one("#secret-value").render())
        assert shown.startswith("https://mist.example.com/hooks/github/manifest/")
        assert calls == [("git.github_manifest", "gh2", "https://github.com", "acme")]


async def test_enter_on_a_provider_lists_its_repositories_and_enter_on_one_its_branches():
    app = git_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        app.action_goto("providers")
        await until(
            pilot, lambda: screen_name(pilot) == "GitProvidersScreen" and app.screen.table.row_count == 3
        )
        await pilot.press("down", "enter")
        await until(
            pilot, lambda: screen_name(pilot) == "RepositoriesScreen" and app.screen.table.row_count == 5
        )
        await pilot.press("enter")
        branches = app.screen.query_one("#branches")
        await until(pilot, lambda: branches.row_count == 3)
        assert [str(k.value) for k in branches.rows] == ["main", "feature/gift-cards", "fix/rounding"]


async def test_new_app_from_a_provider_repository_is_created_from_its_clone_url_and_linked():
    app = git_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await on_dashboard(pilot)
        await pilot.press("c")
        await until(pilot, lambda: screen_name(pilot) == "AppForm")
        dialog = app.screen
        provider = dialog.query_one("#field-provider")
        await until(pilot, lambda: provider.display)
        dialog.query_one("#field-name").value = "www"
        provider.value = "gitea"
        await until(pilot, lambda: dialog.query_one("#field-repo").display)
        assert not dialog.query_one("#field-git_url").display
        repo = dialog.query_one("#field-repo")
        await until(pilot, lambda: len(repo._options) > 1)
        dialog._submitted()  # no repository chosen yet
        await until(pilot, lambda: str(dialog.query_one("#error-repo").render()).strip())
        repo.value = "blog/site"
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")
        created = await app.api.apps.get("blog/www")
        assert created.spec.git_url == "https://gitea.example.com/blog/site.git"
        assert created.spec.branch == "master"  # the repository's default branch
        source = await app.api.apps.source("blog/www")
        assert (source.provider, source.repo) == ("gitea", "blog/site")
