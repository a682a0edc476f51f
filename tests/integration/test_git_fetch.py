"""``mist_core.sources.git.fetch`` against real git repositories built in a temporary directory, served as
local paths and over ``git http-backend`` on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mist_core.errors import Conflict, InvalidInput
from mist_core.sources.git import Checkout, FetchCancelled, FetchFailed, fetch

try:
    from tests.unit import injection_corpus as corpus
except ImportError:  # tests/ is not a package: load the corpus by path
    import importlib.util

    _spec = importlib.util.spec_from_file_location(
        "injection_corpus", Path(__file__).parents[1] / "unit" / "injection_corpus.py"
    )
    assert _spec is not None and _spec.loader is not None
    corpus = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(corpus)

AUTHOR = "Ada Lovelace <ada@example.com>"

# ---------------------------------------------------------------------------------------------- helpers


class SourceRepo:
    """A small repository made with the real git: three commits on main, tags, a feature branch."""

    def __init__(self, path: Path, home: Path) -> None:
        self.path = path
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Ada Lovelace",
            "GIT_AUTHOR_EMAIL": "ada@example.com",
            "GIT_COMMITTER_NAME": "Ada Lovelace",
            "GIT_COMMITTER_EMAIL": "ada@example.com",
        }
        path.mkdir(parents=True)
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=self.path, env=self.env, capture_output=True, text=True, check=True
        )
        return result.stdout.strip()

    def commit(self, message: str, files: dict[str, str]) -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "--all")
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD")

    def sha(self, rev: str) -> str:
        return self.git("rev-parse", f"{rev}^{{commit}}")


@pytest.fixture
def roots(tmp_path: Path) -> list[Path]:
    root = tmp_path / "repos"
    root.mkdir()
    return [root]


@pytest.fixture
def repo(tmp_path: Path, roots: list[Path]) -> SourceRepo:
    home = tmp_path / "author-home"
    home.mkdir()
    source = SourceRepo(roots[0] / "app", home)
    source.first = source.commit("First commit", {"Dockerfile": "FROM scratch\n", "app.txt": "one\n"})
    source.git("tag", "v1")
    source.second = source.commit("Second commit", {"app.txt": "two\n"})
    source.git("tag", "-a", "v2", "-m", "release two")
    source.git("checkout", "--quiet", "-b", "feature")
    source.feature = source.commit("Feature work", {"feature.txt": "new\n"})
    source.git("checkout", "--quiet", "main")
    source.third = source.commit("Third commit\n\nwith a body", {"app.txt": "three\n"})
    return source


class Lines(list[str]):
    async def __call__(self, line: str) -> None:
        self.append(line)


# ---------------------------------------------------------------------------------------------- fetching


async def test_fetch_branch_checks_out_its_tip_and_records_the_commit(repo, roots, tmp_path):
    lines = Lines()
    dest = tmp_path / "work" / "1"
    checkout = await fetch(str(repo.path), "main", dest, allowed_roots=roots, on_line=lines)
    assert checkout == Checkout(path=dest, commit_sha=repo.third, message="Third commit", author=AUTHOR)
    assert (dest / "app.txt").read_text() == "three\n"
    assert any("main" in line for line in lines)


async def test_fetch_other_branch(repo, roots, tmp_path):
    checkout = await fetch(f"file://{repo.path}", "feature", tmp_path / "w", allowed_roots=roots)
    assert checkout.commit_sha == repo.feature
    assert (tmp_path / "w" / "feature.txt").exists()


@pytest.mark.parametrize(("tag", "commit"), [("v1", "first"), ("v2", "second")])
async def test_fetch_lightweight_and_annotated_tags(repo, roots, tmp_path, tag, commit):
    checkout = await fetch(str(repo.path), tag, tmp_path / "w", allowed_roots=roots)
    assert checkout.commit_sha == getattr(repo, commit)


async def test_fetch_full_sha_of_an_older_commit(repo, roots, tmp_path):
    checkout = await fetch(str(repo.path), repo.first, tmp_path / "w", allowed_roots=roots)
    assert checkout.commit_sha == repo.first
    assert checkout.message == "First commit"
    assert (tmp_path / "w" / "app.txt").read_text() == "one\n"


async def test_fetch_abbreviated_sha_resolves_it_after_a_full_fetch(repo, roots, tmp_path):
    lines = Lines()
    checkout = await fetch(
        str(repo.path), repo.second[:9], tmp_path / "w", allowed_roots=roots, on_line=lines
    )
    assert checkout.commit_sha == repo.second
    assert (tmp_path / "w" / "app.txt").read_text() == "two\n"


async def test_missing_branch_says_it_is_not_found(repo, roots, tmp_path):
    with pytest.raises(FetchFailed) as caught:
        await fetch(str(repo.path), "no-such-branch", tmp_path / "w", allowed_roots=roots)
    assert "'no-such-branch' not found in file://" in caught.value.message
    assert caught.value.code == "fetch_failed"


async def test_missing_sha_says_commit_not_found(repo, roots, tmp_path):
    with pytest.raises(FetchFailed) as caught:
        await fetch(str(repo.path), "0123456789abcdef", tmp_path / "w", allowed_roots=roots)
    assert "commit '0123456789abcdef' not found" in caught.value.message


async def test_missing_repository_says_not_found(roots, tmp_path):
    (roots[0] / "empty-dir").mkdir()
    with pytest.raises(FetchFailed) as caught:
        await fetch(str(roots[0] / "empty-dir"), "main", tmp_path / "w", allowed_roots=roots)
    assert "not found" in caught.value.message


async def test_refuses_a_destination_that_is_not_empty(repo, roots, tmp_path):
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "file").write_text("x")
    with pytest.raises(Conflict):
        await fetch(str(repo.path), "main", dest, allowed_roots=roots)


async def test_commit_subject_with_terminal_escapes_is_made_harmless(repo, roots, tmp_path):
    sha = repo.commit("Deploy \x1b[2J\x1b[31mnow\u202e", {"x.txt": "x"})
    checkout = await fetch(str(repo.path), "main", tmp_path / "w", allowed_roots=roots)
    assert checkout.commit_sha == sha
    assert "\x1b" not in checkout.message and "\u202e" not in checkout.message
    assert checkout.message.startswith("Deploy ")


# ---------------------------------------------------------------------------------------------- refusals


async def test_path_outside_allowed_roots_is_refused_before_anything_runs(repo, roots, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "w"
    with pytest.raises(InvalidInput) as caught:
        await fetch(str(outside), "main", dest, allowed_roots=roots)
    assert caught.value.field == "git_url"
    assert not dest.exists()


async def test_option_like_url_is_refused_and_runs_nothing(roots, tmp_path):
    canary = tmp_path / "canary"
    dest = tmp_path / "w"
    with pytest.raises(InvalidInput):
        await fetch(f"--upload-pack=touch {canary}", "main", dest, allowed_roots=roots)
    assert not canary.exists()
    assert not dest.exists()


@pytest.mark.parametrize("url", corpus.GIT_URLS[:40])
async def test_hostile_urls_from_the_corpus_run_nothing(url, roots, tmp_path):
    dest = tmp_path / "w"
    with pytest.raises(InvalidInput):
        await fetch(url, "main", dest, allowed_roots=roots)
    assert not Path(corpus.CANARY).exists()
    assert not dest.exists()


@pytest.mark.parametrize("ref", corpus.REFS)
async def test_hostile_refs_from_the_corpus_run_nothing(ref, repo, roots, tmp_path):
    dest = tmp_path / "w"
    with pytest.raises(InvalidInput):
        await fetch(str(repo.path), ref, dest, allowed_roots=roots)
    assert not Path(corpus.CANARY).exists()
    assert not dest.exists()


HOOK_NAMES = (
    "post-checkout",
    "reference-transaction",
    "post-merge",
    "post-index-change",
    "pre-auto-gc",
    "fsmonitor",
)


def write_hooks(directory: Path, canary: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for hook in HOOK_NAMES:
        script = directory / hook
        script.write_text(f"#!/bin/sh\necho {hook} >> {canary}\n")
        script.chmod(0o755)


async def test_hooks_of_the_source_repository_never_run(repo, roots, tmp_path):
    canary = tmp_path / "hook-ran"
    write_hooks(repo.path / ".git" / "hooks", canary)
    write_hooks(tmp_path / "source-hooks", canary)
    repo.git("config", "core.hooksPath", str(tmp_path / "source-hooks"))
    repo.git("config", "core.fsmonitor", str(tmp_path / "source-hooks" / "fsmonitor"))
    canary.unlink(missing_ok=True)  # configuring the repo may itself have run one
    await fetch(str(repo.path), "main", tmp_path / "w", allowed_roots=roots)
    await fetch(str(repo.path), repo.second[:8], tmp_path / "w2", allowed_roots=roots)
    assert not canary.exists()


async def test_user_git_config_and_hooks_do_not_apply(repo, roots, tmp_path, monkeypatch):
    canary = tmp_path / "hook-ran"
    hooks = tmp_path / "user-hooks"
    write_hooks(hooks, canary)
    home = tmp_path / "user-home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        f"[core]\n\thooksPath = {hooks}\n\tfsmonitor = {hooks / 'fsmonitor'}\n"
        f'[url "file:///nonexistent/"]\n\tinsteadOf = file://{repo.path}\n'
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))

    # The same fetch and checkout by plain git, with this HOME, does run the user's hooks.
    control = tmp_path / "control"
    subprocess.run(["git", "init", "--quiet", str(control)], check=True)
    subprocess.run(["git", "-C", str(control), "fetch", "--quiet", str(repo.path), "main"], check=True)
    subprocess.run(["git", "-C", str(control), "checkout", "--quiet", "--detach", "FETCH_HEAD"], check=True)
    assert canary.exists()
    canary.unlink()

    checkout = await fetch(str(repo.path), "main", tmp_path / "w", allowed_roots=roots)
    assert checkout.commit_sha == repo.third
    assert not canary.exists()


# ---------------------------------------------------------------------------------------------- over HTTP


class GitHTTPBackend(BaseHTTPRequestHandler):
    """``git http-backend`` behind a minimal CGI bridge, optionally asking for a basic-auth token."""

    project_root: Path
    token: str | None = None

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.serve()

    def do_POST(self) -> None:
        self.serve()

    def serve(self) -> None:
        if self.token is not None:
            expected = "Basic " + base64.b64encode(f"deploy:{self.token}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.project_root),
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": "127.0.0.1",
        }
        if self.headers.get("Content-Encoding") == "gzip":
            env["HTTP_CONTENT_ENCODING"] = "gzip"
        result = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for raw in head.decode("latin-1").split("\r\n"):
            key, _, value = raw.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def http_server(repo) -> Iterator[tuple[str, type[GitHTTPBackend]]]:
    handler = type("Handler", (GitHTTPBackend,), {"project_root": repo.path.parent, "token": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


async def test_fetch_over_http_from_loopback(repo, http_server, tmp_path):
    address, _ = http_server
    checkout = await fetch(f"http://{address}/app", "v2", tmp_path / "w", allowed_roots=[])
    assert checkout.commit_sha == repo.second


async def test_fetch_over_http_with_a_token_never_shows_the_token(repo, http_server, tmp_path):
    address, handler = http_server
    handler.token = "s3cr3t-t0ken"
    lines = Lines()
    checkout = await fetch(
        f"http://deploy:s3cr3t-t0ken@{address}/app", "main", tmp_path / "w", allowed_roots=[], on_line=lines
    )
    assert checkout.commit_sha == repo.third
    assert lines
    assert not any("s3cr3t-t0ken" in line for line in lines)


async def test_wrong_token_says_authentication_failed_without_showing_it(repo, http_server, tmp_path):
    address, handler = http_server
    handler.token = "right-token"
    lines = Lines()
    with pytest.raises(FetchFailed) as caught:
        await fetch(
            f"http://deploy:wrong-token@{address}/app",
            "main",
            tmp_path / "w",
            allowed_roots=[],
            on_line=lines,
        )
    assert "authentication failed" in caught.value.message
    assert "wrong-token" not in str(caught.value.to_problem())
    assert not any("wrong-token" in line for line in lines)


async def test_unknown_repository_over_http_says_not_found(http_server, tmp_path):
    address, _ = http_server
    with pytest.raises(FetchFailed) as caught:
        await fetch(f"http://{address}/nope", "main", tmp_path / "w", allowed_roots=[])
    assert "not found" in caught.value.message


async def test_unreachable_server_says_not_reachable(tmp_path):
    # A port that was just free: nothing listens on it.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchFailed) as caught:
        await fetch(f"http://127.0.0.1:{port}/app", "main", tmp_path / "w", allowed_roots=[])
    assert "not reachable" in caught.value.message


# ---------------------------------------------------------------------------------------------- stopping


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """Accepts connections and never answers, so a fetch hangs until it is stopped."""
    connected = asyncio.Event()
    writers = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", connected
    finally:
        for writer in writers:
            writer.close()
        server.close()


async def test_timeout_stops_a_hanging_fetch(silent_server, tmp_path):
    address, connected = silent_server
    with pytest.raises(FetchFailed) as caught:
        await fetch(f"http://{address}/app", "main", tmp_path / "w", allowed_roots=[], timeout=1)
    assert connected.is_set()
    assert "longer than 1 s" in caught.value.message


async def test_cancel_event_stops_a_hanging_fetch(silent_server, tmp_path):
    address, connected = silent_server
    cancel = asyncio.Event()

    async def cancel_once_connected() -> None:
        await connected.wait()
        cancel.set()

    helper = asyncio.create_task(cancel_once_connected())
    with pytest.raises(FetchCancelled):
        await fetch(
            f"http://{address}/app", "main", tmp_path / "w", allowed_roots=[], cancel=cancel, timeout=60
        )
    await helper


async def test_cancelling_the_task_kills_git(silent_server, tmp_path):
    address, connected = silent_server
    task = asyncio.create_task(
        fetch(f"http://{address}/app", "main", tmp_path / "w", allowed_roots=[], timeout=60)
    )
    await connected.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"http://{address}/app" not in ps
