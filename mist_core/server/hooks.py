"""The public routes under ``/hooks``: webhook deliveries from git hosts, and the two browser pages of the GitHub
App manifest flow. They take no token: a delivery proves itself by its signature (the core checks it), the
manifest pages by their one-time state. The daemon serves them beside ``/v1`` and, with ``--hooks-listen``,
alone on a plain HTTP listener for the proxy to route ``<public_url>/hooks/`` to."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.responses import HTMLResponse, JSONResponse, Response

from .. import webhooks
from ..errors import MistError
from .security import PROBLEM, problem_body

# A hook id is a short random token; anything much longer is not one and is refused before any lookup.
MAX_HOOK_ID = 100
DELIVERY_PROBLEMS = {
    400: "webhook_malformed",
    401: "webhook_refused",
    404: "not_found",
    409: "webhook_replayed",
    413: "webhook_too_large",
}

_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_FORM_ACTION = re.compile(r"<form\b[^>]*\baction=\"([^\"]*)\"", re.IGNORECASE)


async def read_bounded(request: Request, limit: int) -> bytes:
    """At most ``limit`` bytes of the request body: reading stops there, whatever the client still sends."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunk = chunk[: limit - size]
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)


def delivery_answer(status: int, message: str) -> Response:
    """What the git host gets back: a small JSON body, problem+json for a refusal."""
    if status < 400:
        return JSONResponse({"status": status, "detail": message}, status_code=status)
    body = problem_body(DELIVERY_PROBLEMS.get(status, "webhook_refused"), status, message)
    # An oversized body was not read to its end: the connection cannot carry another request.
    headers = {"connection": "close"} if status == 413 else None
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def manifest_policy(page: str) -> str:
    """The Content-Security-Policy of the manifest page: its inline scripts by hash, its form's target origin,
    and nothing else (no styles, images, frames or connections)."""
    scripts = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _SCRIPT.findall(page)
    ]
    targets = []
    for action in _FORM_ACTION.findall(page):
        parts = urlsplit(html.unescape(action))
        if parts.scheme in ("http", "https") and parts.netloc:
            targets.append(f"{parts.scheme}://{parts.netloc}")
    directives = ["default-src 'none'"]
    if scripts:
        directives.append("script-src " + " ".join(sorted(set(scripts))))
    directives.append("form-action " + (" ".join(sorted(set(targets))) if targets else "'none'"))
    directives += ["base-uri 'none'", "frame-ancestors 'none'"]
    return "; ".join(directives)


def page(status: int, title: str, *paragraphs: str) -> HTMLResponse:
    """A minimal HTML page; every paragraph is HTML already escaped by the caller."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    text = (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>\n'
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    return HTMLResponse(text, status_code=status)


def error_page(err: MistError) -> HTMLResponse:
    return page(err.status, "Mist could not finish this", html.escape(err.message))


def installation_url(provider_url: str, slug: str) -> str:
    """Where the App is installed on repositories: github.com names Apps under /apps, GitHub Enterprise
    Server under /github-apps."""
    base = provider_url.rstrip("/")
    section = "apps" if urlsplit(base).hostname == "github.com" else "github-apps"
    return f"{base}/{section}/{quote(slug, safe='')}/installations/new"


def build_hooks_router() -> APIRouter:
    # Not in the OpenAPI document: these are for git hosts and browsers, not for API clients.
    router = APIRouter(prefix="/hooks", include_in_schema=False)

    @router.get("/github/manifest/{state}")
    async def github_manifest_page(request: Request, state: str) -> Response:
        try:
            text = await request.app.state.core.gitops.manifest_page(state)
        except MistError as err:
            return error_page(err)
        return HTMLResponse(text, headers={"content-security-policy": manifest_policy(text)})

    @router.get("/github/callback")
    async def github_callback(
        request: Request, code: str | None = None, state: str | None = None
    ) -> Response:
        if not code or not state:
            return page(
                400,
                "Mist could not finish this",
                "GitHub's answer lacks its code or state: start the App creation again with "
                "<code>mist git provider add NAME --github-manifest</code>.",
            )
        try:
            provider = await request.app.state.core.gitops.finish_manifest(state, code)
        except MistError as err:
            return error_page(err)
        return _stored_page(provider)

    @router.post("/{hook_id}")
    async def delivery(request: Request, hook_id: str) -> Response:
        if len(hook_id) > MAX_HOOK_ID:
            return delivery_answer(404, "no such webhook")
        try:
            body = await read_bounded(request, webhooks.MAX_BODY + 1)
        except ClientDisconnect:
            return Response(status_code=400)
        status, message = await request.app.state.core.gitops.receive(hook_id, request.headers, body)
        return delivery_answer(status, message)

    return router


def _stored_page(provider: Any) -> HTMLResponse:
    e = html.escape
    name, slug = provider.name, provider.app_slug or ""
    stored = (
        f"Mist stored the GitHub App <strong>{e(slug)}</strong> (id {e(str(provider.app_id))}) as the git "
        f"provider <strong>{e(name)}</strong>."
    )
    install = e(installation_url(provider.url, slug), quote=True) if slug else None
    if provider.installation_id:
        where = f"It is installed (installation {e(str(provider.installation_id))}); " + (
            f'<a href="{install}">choose the repositories it may see</a>.' if install else ""
        )
    else:
        where = (
            f'Now <a href="{install}">install it on the repositories Mist should see</a>.'
            if install
            else "Now install it on the repositories Mist should see."
        )
    then = f"Then list them with <code>mist git repos {e(name)}</code>. You can close this page."
    return page(200, "GitHub App stored", stored, where, then)
