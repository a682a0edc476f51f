"""The commands about where code lives: git providers and their repositories, how each app reaches its
repository (token, deploy key or provider), its webhook and the deliveries it received, and its previews."""

from __future__ import annotations

import getpass
from pathlib import Path

from ..errors import InvalidInput
from ..models import (
    App,
    AppSource,
    GitProvider,
    GitProviderSpec,
    Preview,
    PreviewSettings,
    SourceChanges,
    WebhookDelivery,
)
from .context import CommandTable, Context, app_ref, confirm_deletion
from .format import format_pairs, format_table, human_age, human_time, parse_assignment
from .output import EXIT_FAILURE, EXIT_OK, Text

command = CommandTable()

# ---------------------------------------------------------------------------------------------- input


def read_secret(ctx: Context, *, from_stdin: bool, what: str, option: str, field: str) -> str:
    """A token or webhook secret: the first line of stdin with ``--...-stdin``, else asked at the terminal
    with no echo. Never an argument, which ``ps`` and the shell history would keep."""
    if from_stdin:
        value = ctx.stdin.readline().strip()
    elif ctx.stdin.isatty():
        value = getpass.getpass(f"{what[0].upper()}{what[1:]}: ").strip()
    else:
        raise InvalidInput(
            f"no {what} given: pipe it in with {option}, or run the command in a terminal", field=field
        )
    if not value:
        raise InvalidInput(f"the {what} is empty: give the {what}", field=field)
    return value


def _read_key_file(path: str) -> str:
    try:
        text = Path(path).expanduser().read_text()
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{path} is not a PEM text file: give the App's private key as GitHub downloads it (.pem)",
            field="private_key_file",
        ) from None
    except OSError as err:
        raise InvalidInput(f"cannot read {path}: {err.strerror or err}", field="private_key_file") from None
    if "PRIVATE KEY-----" not in text:
        raise InvalidInput(
            f"{path} holds no private key: give the .pem file GitHub made for the App (Generate a private key)",
            field="private_key_file",
        )
    return text


# ---------------------------------------------------------------------------------------------- providers

GITHUB_ONLY = ("app_id", "private_key_file", "webhook_secret_stdin", "installation_id")


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def _refuse_options(ctx: Context, fields: tuple[str, ...], why: str) -> None:
    """Options that mean nothing for the kind of provider being added are refused, not silently dropped."""
    given = [f for f in fields if getattr(ctx.args, f) not in (None, False)]
    if given:
        raise InvalidInput(f"{_option(given[0])} {why}", field=given[0])


def provider_spec(ctx: Context) -> GitProviderSpec:
    """What ``git provider add --kind ...`` asks the core to register, with its secrets read from stdin or
    the terminal and the App key from its file."""
    a = ctx.args
    if a.kind == "github":
        _refuse_options(ctx, ("token_stdin",), "is for gitlab and gitea: a GitHub App signs in with its key")
        if a.app_id is None:
            raise InvalidInput(
                "a GitHub App needs its id: --app-id N (or create a new App with --github-manifest)",
                field="app_id",
            )
        if a.private_key_file is None:
            raise InvalidInput(
                "a GitHub App needs its private key: --private-key-file app.pem", field="private_key_file"
            )
        key = _read_key_file(a.private_key_file)
        secret = read_secret(
            ctx,
            from_stdin=a.webhook_secret_stdin,
            what="webhook secret of the App",
            option="--webhook-secret-stdin",
            field="webhook_secret",
        )
        return GitProviderSpec(
            name=a.name,
            kind="github",
            url=a.url,
            api_url=a.api_url,
            app_id=a.app_id,
            private_key=key,
            webhook_secret=secret,
            installation_id=a.installation_id,
        )
    _refuse_options(ctx, GITHUB_ONLY, f"is for a GitHub App, not {a.kind}")
    if not a.url:
        raise InvalidInput(
            f"a {a.kind} provider needs the address of its host: --url https://{a.kind}.example.com",
            field="url",
        )
    token = read_secret(
        ctx,
        from_stdin=a.token_stdin,
        what=f"{a.kind} access token",
        option="--token-stdin",
        field="token",
    )
    return GitProviderSpec(name=a.name, kind=a.kind, url=a.url, api_url=a.api_url, token=token)


@command("git", "provider add")
async def cmd_git_provider_add(ctx: Context) -> int:
    a = ctx.args
    if a.github_manifest:
        return await _github_manifest(ctx)
    _refuse_options(ctx, ("organization",), "is for --github-manifest")
    provider = await ctx.api.git.add_provider(provider_spec(ctx))
    text = Text(f"Added {provider.kind} provider {provider.name} ({provider.url})")
    if provider.kind == "github":
        if provider.installation_id is None:
            text.note(
                "The App is not installed anywhere yet: install it on the account or organization whose "
                "repositories Mist should deploy, then add the provider again (or give --installation-id)."
            )
        text.note(_github_webhook_note(provider))
    text.note(f"Its repositories: mist git repos {provider.name}")
    ctx.out.result(provider, text)
    return EXIT_OK


def _github_webhook_note(provider: GitProvider) -> str:
    if provider.webhook_url:
        return f"The App's webhook URL must be {provider.webhook_url}"
    return (
        "Mist has no public address yet, so GitHub cannot deliver pushes: set it with "
        "`mist settings set public_url https://mist.example.com`"
    )


async def _github_manifest(ctx: Context) -> int:
    a = ctx.args
    _refuse_options(
        ctx,
        ("api_url", "token_stdin", *GITHUB_ONLY),
        "does not go with --github-manifest: GitHub makes the App's id, key and secret",
    )
    started = await ctx.api.git.github_manifest(
        a.name, url=a.url or "https://github.com", organization=a.organization
    )
    ctx.out.result(
        started,
        Text()
        .note("Open this address in a browser signed in to GitHub:")
        .line(started.url)
        .note(
            "It asks GitHub to create an App with the name, permissions and webhook Mist needs. Once you "
            f"confirm, GitHub brings the browser back to Mist, which keeps the App as provider {started.name}: "
            "it then appears in `mist git provider list`. Install the App on the repositories to deploy from "
            "there."
        ),
    )
    return EXIT_OK


def providers_table(providers: list[GitProvider]) -> str:
    rows = [
        (
            p.name,
            p.kind,
            p.url,
            p.app_slug or p.app_id,
            p.installation_id,
            p.webhook_url,
            human_age(p.created_at),
        )
        for p in providers
    ]
    return format_table(["NAME", "KIND", "URL", "APP", "INSTALLATION", "WEBHOOK", "AGE"], rows)


@command("git", "provider list")
async def cmd_git_provider_list(ctx: Context) -> int:
    providers = await ctx.api.git.providers()
    ctx.out.result(providers, lambda: providers_table(providers))
    return EXIT_OK


@command("git", "provider remove")
async def cmd_git_provider_remove(ctx: Context) -> int:
    name = ctx.args.name
    if not confirm_deletion(ctx, "git provider", name):
        return EXIT_FAILURE
    await ctx.api.git.remove_provider(name)
    ctx.out.result({"removed": name}, f"Removed git provider {name}")
    return EXIT_OK


@command("git", "repos")
async def cmd_git_repos(ctx: Context) -> int:
    repos = await ctx.api.git.repos(ctx.args.provider)
    ctx.out.table(
        repos,
        ["REPO", "DEFAULT BRANCH", "PRIVATE", "CLONE URL"],
        lambda r: (r.full_name, r.default_branch, r.private, r.clone_url),
    )
    return EXIT_OK


@command("git", "branches")
async def cmd_git_branches(ctx: Context) -> int:
    branches = await ctx.api.git.branches(ctx.args.provider, ctx.args.repo)
    ctx.out.table(branches, ["BRANCH", "COMMIT"], lambda b: (b.name, b.sha[:12]))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- apps


def deploy_key_help(source: AppSource, app: App | None) -> list[str]:
    """What to do with a deploy key, and why it may not be used yet."""
    lines = [
        "Add it to the repository as a deploy key with read access only (GitHub: Settings > Deploy keys; "
        "GitLab: Settings > Repository > Deploy keys; Gitea: Settings > Deploy Keys), leaving write access off."
    ]
    if source.auth == "provider":
        lines.append(
            f"While the app is linked to git provider {source.provider}, fetches use the provider's "
            f"credentials instead (mist app source {app.ref if app else 'PROJECT/APP'} --unlink to use the key)."
        )
    elif app is not None and not _is_ssh_url(app.spec.git_url):
        lines.append(
            f"The key is used over ssh, and {app.ref} fetches from {app.spec.git_url}: give it the "
            f"repository's ssh address with `mist app set {app.ref} --git git@HOST:OWNER/NAME.git`."
        )
    return lines


def _is_ssh_url(url: str) -> bool:
    if url.startswith("ssh://"):
        return True
    head = url.split("/", 1)[0]
    return "://" not in url and "@" in head and ":" in head


def host_key_lines(known_hosts: str | None) -> list[str]:
    """The pinned host keys as ``host  type  SHA256:...``, the way ssh-keygen -l shows them."""
    if not known_hosts:
        return []
    from ..sources.keys import known_host_keys

    keys = known_host_keys(known_hosts)
    if not keys:  # nothing ssh would read as a key: show the text as it is
        return [line.strip() for line in known_hosts.splitlines() if line.strip()]
    return [f"{k.hosts}  {k.key_type}  {k.fingerprint}" for k in keys]


@command("app", "deploy-key")
async def cmd_app_deploy_key(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    source = await ctx.api.apps.deploy_key(ref, regenerate=ctx.args.regenerate)
    app = await ctx.api.apps.get(ref)
    verb = "New deploy key" if ctx.args.regenerate else "Deploy key"
    # The key alone on stdout, so `mist app deploy-key shop/web > key.pub` keeps just the key.
    text = Text().note(f"{verb} of {ref} ({source.deploy_key_fingerprint}):").line(source.deploy_key or "")
    for line in deploy_key_help(source, app):
        text.note(line)
    hosts = host_key_lines(source.known_hosts)
    if hosts:
        text.note("Pinned host keys (fetches accept only these; --forget-host-keys on `mist app source`):")
        for line in hosts:
            text.note(f"  {line}")
    else:
        text.note("No host key pinned yet: the first fetch over ssh pins the one the server shows.")
    ctx.out.result(source, text)
    return EXIT_OK


AUTH_NAMES = {
    "none": "none (a public repository, or a local path)",
    "token": "https access token",
    "deploy_key": "ssh deploy key",
    "provider": "git provider",
}


def source_pairs(source: AppSource, app: App | None = None) -> list[tuple[str, object]]:
    s = source
    previews = s.previews
    if previews.enabled:
        preview_text = f"on, up to {previews.limit} at once, at {previews.domain_pattern}"
    else:
        preview_text = "off"
    if s.webhook_url is None:
        webhook = "none: set Mist's public address first (mist settings set public_url https://...)"
    else:
        webhook = s.webhook_url
    if s.webhook_secret is not None:
        secret = s.webhook_secret
    elif s.auth == "provider" and s.webhook_kind == "github":
        secret = "the GitHub App's"
    else:
        secret = "hidden (--reveal shows it)"
    branch = f" (branch {app.spec.branch})" if app is not None else ""
    pairs: list[tuple[str, object]] = [
        ("App", app.ref if app else None),
        ("Repository", app.spec.git_url if app else None),
        ("Auth", AUTH_NAMES.get(s.auth, s.auth)),
        ("Provider", s.provider),
        ("Provider repo", s.repo),
        ("Deploy key", s.deploy_key_fingerprint),
    ]
    hosts = host_key_lines(s.known_hosts)
    pairs += [("Host keys", hosts[0] if hosts else None)] + [("", line) for line in hosts[1:]]
    pairs += [
        ("Webhook URL", webhook),
        ("Webhook kind", s.webhook_kind),
        ("Webhook secret", secret),
        ("Deploy on push", f"{'yes' if s.deploy_on_push else 'no'}{branch}"),
        ("Deploy tags", s.deploy_tags),
        ("Previews", preview_text),
        ("Preview env", ", ".join(f"{k}={v}" for k, v in previews.env.items()) or None),
        (
            "Preview secrets",
            "the app's, for pull requests from the repository itself (never from a fork)"
            if previews.share_secrets
            else "none of the app's (--preview-secrets shares them)",
        ),
    ]
    return [(label, value) for label, value in pairs if not (label == "App" and value is None)]


def _preview_changes(ctx: Context, current: PreviewSettings) -> PreviewSettings | None:
    a = ctx.args
    fields: dict[str, object] = {}
    if a.previews is not None:
        fields["enabled"] = a.previews
    if a.preview_limit is not None:
        if not 1 <= a.preview_limit <= 50:
            raise InvalidInput("--preview-limit must be between 1 and 50", field="preview_limit")
        fields["limit"] = a.preview_limit
    if a.preview_domain is not None:
        fields["domain_pattern"] = a.preview_domain
    if a.preview_secrets is not None:
        fields["share_secrets"] = a.preview_secrets
    added = [parse_assignment(text) for text in a.preview_env or []]
    removed = list(a.preview_env_unset or [])
    if added or removed:
        env = {k: v for k, v in current.env.items() if k not in removed}
        env.update(added)
        fields["env"] = env
    if not fields:
        return None
    return PreviewSettings(**{**current.model_dump(), **fields})


def source_changes(ctx: Context, current: AppSource | None) -> SourceChanges | None:
    """The changes the options ask for, or None when none was given (then the source is only shown).
    ``current`` is needed only for preview changes, which are merged into the current settings."""
    a = ctx.args
    fields: dict[str, object] = {}
    if a.token_stdin:
        fields["token"] = read_secret(
            ctx, from_stdin=True, what="access token", option="--token-stdin", field="token"
        )
    if a.no_token:
        fields["token"] = ""
    if a.provider is not None:
        fields.update(provider=a.provider, repo=a.repo)
    if a.unlink:
        fields["provider"] = ""
    if a.webhook_kind is not None:
        fields["webhook_kind"] = a.webhook_kind
    if a.deploy_on_push is not None:
        fields["deploy_on_push"] = a.deploy_on_push
    if a.deploy_tags is not None:
        fields["deploy_tags"] = a.deploy_tags
    if current is not None:
        previews = _preview_changes(ctx, current.previews)
        if previews is not None:
            fields["previews"] = previews
    if a.forget_host_keys:
        fields["forget_known_hosts"] = True
    if a.new_webhook_secret:
        fields["new_webhook_secret"] = True
    return SourceChanges(**fields) if fields else None  # type: ignore[arg-type]


PREVIEW_OPTIONS = (
    "previews",
    "preview_limit",
    "preview_domain",
    "preview_env",
    "preview_env_unset",
    "preview_secrets",
)


@command("app", "source")
async def cmd_app_source(ctx: Context) -> int:
    a = ctx.args
    ref = app_ref(a.app)
    current = None
    if any(getattr(a, name) is not None for name in PREVIEW_OPTIONS):
        current = await ctx.api.apps.source(ref)
    changes = source_changes(ctx, current)
    if changes is not None:
        await ctx.api.apps.set_source(ref, changes)
    source = await ctx.api.apps.source(ref, reveal=a.reveal)
    app = await ctx.api.apps.get(ref)
    text = Text()
    if changes is not None:
        text.note(f"Updated the source of {ref}")
    text.line(format_pairs(source_pairs(source, app)))
    if changes is not None and changes.new_webhook_secret and not a.reveal:
        text.note(
            f"Paste the new webhook secret into the git host's webhook: `mist app source {ref} --reveal` shows it"
        )
    ctx.out.result(source, text)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- deliveries


def _ref_cell(d: WebhookDelivery) -> str | None:
    ref = (d.ref or "").removeprefix("refs/heads/") or None
    if d.pr_number is not None:
        return f"PR #{d.pr_number}" + (f" ({ref})" if ref else "")
    return ref


def deliveries_table(deliveries: list[WebhookDelivery]) -> str:
    rows = [
        (
            human_time(d.received_at),
            d.event,
            d.outcome,
            _ref_cell(d),
            (d.sha or "")[:8] or None,
            d.deployment_id,
            d.reason,
        )
        for d in deliveries
    ]
    return format_table(["TIME", "EVENT", "OUTCOME", "REF", "COMMIT", "DEPLOYMENT", "REASON"], rows)


@command("webhooks")
async def cmd_webhooks(ctx: Context) -> int:
    if not 1 <= ctx.args.limit <= 1000:
        raise InvalidInput("--limit must be between 1 and 1000", field="limit")
    ref = app_ref(ctx.args.app)
    deliveries = await ctx.api.webhooks.list(ref, limit=ctx.args.limit)
    text = Text(deliveries_table(deliveries))
    if not deliveries:
        text.note(f"No delivery yet: the git host sends them to the URL `mist app source {ref}` shows.")
    ctx.out.result(deliveries, text)
    return EXIT_OK


def previews_table(previews: list[Preview]) -> str:
    rows = [
        (
            p.number,
            p.app,
            " ".join(x for x in (p.head_ref, (p.head_sha or "")[:8]) if x) or None,
            p.url,
            human_age(p.updated_at),
        )
        for p in previews
    ]
    return format_table(["PR", "APP", "HEAD", "URL", "UPDATED"], rows)


@command("previews")
async def cmd_previews(ctx: Context) -> int:
    previews = await ctx.api.previews.list(app_ref(ctx.args.app))
    ctx.out.result(previews, lambda: previews_table(previews))
    return EXIT_OK
