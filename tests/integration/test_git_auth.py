"""Fetching private repositories with ``mist_core.sources.git.fetch``: https with a token (``git http-backend``
behind Basic auth, plain and TLS) and ssh with a deploy key (an ``sshd`` of the test's own), on 127.0.0.1."""

from __future__ import annotations

import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitserver import GitHTTPServer, SshGitServer, bare_repo, git_http_server, ssh_git_server, sshd_missing

from mist_core.errors import InvalidInput
from mist_core.sources.git import FetchFailed, fetch
from mist_core.sources.keys import DeployKey, fingerprint_of, generate_deploy_key, known_host_keys

TOKEN = "ghs_s3cr3tT0kenForTheTest0123"
FILES = {"Dockerfile": "FROM scratch\n", "app.txt": "private\n"}


class Lines(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where fetch makes its temporary home during the test, so the test can look inside and see it gone."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def _processes_holding(secret: str) -> list[str]:
    """Processes whose command line or environment contains ``secret``."""
    found = []
    needle = secret.encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                data = (proc / part).read_bytes()
            except OSError:  # gone, or not ours to read
                continue
            if needle in data:
                found.append(f"{proc.name}/{part}: {data[:200]!r}")
    return found


# -------------------------------------------------------------------------------------------------- https


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "srv"
    root.mkdir()
    sha = bare_repo(root / "app.git", FILES)
    return root, sha


@pytest.fixture(params=["https", "http"])
def server(
    request: pytest.FixtureRequest, repos: tuple[Path, str], tmp_path: Path
) -> Iterator[GitHTTPServer]:
    tls_dir = None
    if request.param == "https":
        tls_dir = tmp_path / "tls"
        tls_dir.mkdir()
    with git_http_server(repos[0], token=TOKEN, tls_dir=tls_dir) as running:
        yield running


async def test_the_right_token_fetches_the_private_repository(server, repos, tmp_path):
    checkout = await fetch(
        server.url("app.git"), "main", tmp_path / "w", allowed_roots=[], token=TOKEN, ca_file=server.ca_file
    )
    assert checkout.commit_sha == repos[1]
    assert (tmp_path / "w" / "app.txt").read_text() == "private\n"
    assert checkout.known_hosts is None
    assert server.seen_users[-1] == "x-access-token"


async def test_the_token_goes_with_the_user_name_the_host_expects(repos, tmp_path):
    with git_http_server(repos[0], token=TOKEN, username="oauth2") as server:
        checkout = await fetch(
            server.url("app.git"),
            "main",
            tmp_path / "w",
            allowed_roots=[],
            token=TOKEN,
            token_username="oauth2",
        )
    assert checkout.commit_sha == repos[1]


async def test_a_user_name_in_the_url_is_kept_and_the_token_is_its_password(repos, tmp_path):
    with git_http_server(repos[0], token=TOKEN, username="deploy") as server:
        url = server.url("app.git").replace("http://", "http://deploy@")
        checkout = await fetch(url, "main", tmp_path / "w", allowed_roots=[], token=TOKEN)
    assert checkout.commit_sha == repos[1]


async def test_a_wrong_token_is_refused_with_a_message_that_does_not_show_it(server, tmp_path):
    wrong = "ghs_wrongWrongWrong987654"
    lines = Lines()
    with pytest.raises(FetchFailed) as caught:
        await fetch(
            server.url("app.git"),
            "main",
            tmp_path / "w",
            allowed_roots=[],
            token=wrong,
            ca_file=server.ca_file,
            on_line=lines,
        )
    message = caught.value.message
    assert f"the git server refused the token for {server.url('app.git')}" in message
    assert "check that it is valid" in message
    assert wrong not in str(caught.value.to_problem())
    assert wrong not in str(caught.value.extra)
    assert not any(wrong in line for line in lines)


async def test_a_private_repository_without_a_token_asks_for_one(server, tmp_path):
    with pytest.raises(FetchFailed) as caught:
        await fetch(server.url("app.git"), "main", tmp_path / "w", allowed_roots=[], ca_file=server.ca_file)
    assert "repository is private" in caught.value.message
    assert "give a token" in caught.value.message


async def test_an_unknown_repository_with_a_token_says_not_found(server, tmp_path):
    with pytest.raises(FetchFailed) as caught:
        await fetch(
            server.url("nope.git"),
            "main",
            tmp_path / "w",
            allowed_roots=[],
            token=TOKEN,
            ca_file=server.ca_file,
        )
    assert "not found" in caught.value.message


async def test_the_token_is_never_in_output_argv_environment_or_left_on_disk(
    server, repos, tmp_path, private_tmp
):
    seen_during: list[list[str]] = []
    homes: list[Path] = []

    def on_line(line: str) -> None:
        lines.append(line)
        # git is running now: look at every process and at the temporary home while they exist.
        seen_during.append(_processes_holding(TOKEN))
        for home in private_tmp.glob("mist-git-home-*"):
            homes.append(home)
            assert stat.S_IMODE(home.stat().st_mode) == 0o700
            assert stat.S_IMODE((home / "git-token").stat().st_mode) == 0o600
            assert TOKEN not in (home / "git-askpass").read_text()

    lines: list[str] = []
    checkout = await fetch(
        server.url("app.git"),
        "main",
        tmp_path / "w",
        allowed_roots=[],
        token=TOKEN,
        ca_file=server.ca_file,
        on_line=on_line,
    )
    assert checkout.commit_sha == repos[1]
    assert lines and homes
    assert seen_during and not any(seen_during)
    assert not any(TOKEN in line for line in lines)
    assert list(private_tmp.iterdir()) == []  # the home, with the token file, is gone
    # Nothing of the token went into the checkout's git config either.
    config = (tmp_path / "w" / ".git" / "config").read_text()
    assert TOKEN not in config


async def test_a_redirect_to_another_host_does_not_get_the_token(repos, tmp_path):
    # "localhost" is another host than "127.0.0.1" for git, as another domain would be.
    with git_http_server(repos[0], token="other-servers-token") as elsewhere:
        target = f"http://localhost:{elsewhere.port}"
        with git_http_server(repos[0], token=TOKEN, redirect_to=target) as server:
            lines = Lines()
            with pytest.raises(FetchFailed) as caught:
                await fetch(
                    server.url("app.git"),
                    "main",
                    tmp_path / "w",
                    allowed_roots=[],
                    token=TOKEN,
                    on_line=lines,
                )
    assert elsewhere.seen_passwords or any("no token for" in line for line in lines)  # git followed it
    assert TOKEN not in elsewhere.seen_passwords
    assert "redirected git to another host" in caught.value.message


async def test_a_token_with_a_line_break_is_refused_before_git_runs(tmp_path):
    with pytest.raises(InvalidInput) as caught:
        await fetch(
            "https://git.example.com/app.git", "main", tmp_path / "w", allowed_roots=[], token="abc\ndef"
        )
    assert caught.value.field == "token"
    assert not (tmp_path / "w").exists()


async def test_a_token_in_the_url_and_as_an_argument_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="not both"):
        await fetch(
            "https://user:one@git.example.com/app.git",
            "main",
            tmp_path / "w",
            allowed_roots=[],
            token="two-22",
        )


async def test_a_server_signed_by_an_unknown_ca_is_refused_with_a_hint_about_the_ca_file(repos, tmp_path):
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    with git_http_server(repos[0], token=TOKEN, tls_dir=tls_dir) as server:
        with pytest.raises(FetchFailed) as caught:
            await fetch(server.url("app.git"), "main", tmp_path / "w", allowed_roots=[], token=TOKEN)
    assert "TLS certificate" in caught.value.message
    assert "CA file" in caught.value.message


async def test_a_missing_ca_file_is_refused_before_git_runs(tmp_path):
    with pytest.raises(InvalidInput) as caught:
        await fetch(
            "https://git.example.com/app.git",
            "main",
            tmp_path / "w",
            allowed_roots=[],
            ca_file=tmp_path / "no-such-ca.pem",
        )
    assert caught.value.field == "ca_file"


# ---------------------------------------------------------------------------------------------------- ssh


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SshGitServer, Path, str, DeployKey]]:
    reason = sshd_missing()
    if reason is not None:
        pytest.fail(reason)  # `make test` installs sshd: its absence is a broken machine, not a pass
    directory = tmp_path_factory.mktemp("sshd")
    sha = bare_repo(directory / "repos" / "app.git", FILES)
    key = generate_deploy_key("mist:test/app")
    with ssh_git_server(directory / "server") as server:
        server.authorize(key.public_openssh)
        yield server, directory / "repos" / "app.git", sha, key


async def test_a_deploy_key_fetches_and_the_host_key_learned_on_first_use_is_returned(sshd, tmp_path):
    server, repo, sha, key = sshd
    lines = Lines()
    checkout = await fetch(
        server.url(repo),
        "main",
        tmp_path / "w",
        allowed_roots=[],
        ssh_private_key=key.private_openssh,
        on_line=lines,
    )
    assert checkout.commit_sha == sha
    assert checkout.known_hosts is not None
    assert server.known_hosts_line in checkout.known_hosts.splitlines()
    learned = known_host_keys(checkout.known_hosts)
    assert [(k.hosts, k.fingerprint) for k in learned] == [
        (server.host, fingerprint_of(server.host_public_key))
    ]
    assert not any("PRIVATE KEY" in line for line in lines)


async def test_a_second_fetch_against_the_pinned_host_key_works(sshd, tmp_path):
    server, repo, sha, key = sshd
    first = await fetch(
        server.url(repo), "main", tmp_path / "w1", allowed_roots=[], ssh_private_key=key.private_openssh
    )
    assert first.known_hosts is not None
    second = await fetch(
        server.url(repo),
        "main",
        tmp_path / "w2",
        allowed_roots=[],
        ssh_private_key=key.private_openssh,
        known_hosts=first.known_hosts,
    )
    assert second.commit_sha == sha
    assert second.known_hosts is None  # nothing new was learned: the pinned keys were used as they are


async def test_a_key_the_server_does_not_know_is_refused_with_a_deploy_key_message(sshd, tmp_path):
    server, repo, _, _ = sshd
    stranger = generate_deploy_key("mist:test/other")
    with pytest.raises(FetchFailed) as caught:
        await fetch(
            server.url(repo),
            "main",
            tmp_path / "w",
            allowed_roots=[],
            ssh_private_key=stranger.private_openssh,
            known_hosts=server.known_hosts_line,
        )
    assert "the git server refused the deploy key" in caught.value.message
    assert "add its public key to the repository's deploy keys" in caught.value.message


async def test_a_changed_host_key_is_refused_with_a_changed_key_message(sshd, tmp_path):
    server, repo, _, key = sshd
    impostor = generate_deploy_key("").public_openssh  # any other ed25519 key stands for the old pinned one
    with pytest.raises(FetchFailed) as caught:
        await fetch(
            server.url(repo),
            "main",
            tmp_path / "w",
            allowed_roots=[],
            ssh_private_key=key.private_openssh,
            known_hosts=f"{server.host} {impostor}\n",
        )
    assert f"the ssh host key of 127.0.0.1:{server.port} changed since it was pinned" in caught.value.message


async def test_a_host_missing_from_the_pinned_keys_is_refused(sshd, tmp_path):
    server, repo, _, key = sshd
    with pytest.raises(FetchFailed) as caught:
        await fetch(
            server.url(repo),
            "main",
            tmp_path / "w",
            allowed_roots=[],
            ssh_private_key=key.private_openssh,
            known_hosts=f"git.example.com {server.host_public_key}\n",
        )
    assert (
        f"the ssh host key of 127.0.0.1:{server.port} is not among the pinned host keys"
        in caught.value.message
    )


async def test_the_deploy_key_file_is_private_while_used_and_removed_after(sshd, tmp_path, private_tmp):
    server, repo, sha, key = sshd
    modes: list[int] = []

    def on_line(line: str) -> None:
        for home in private_tmp.glob("mist-git-home-*"):
            modes.append(stat.S_IMODE((home / "deploy-key").stat().st_mode))

    checkout = await fetch(
        server.url(repo),
        "main",
        tmp_path / "w",
        allowed_roots=[],
        ssh_private_key=key.private_openssh,
        on_line=on_line,
    )
    assert checkout.commit_sha == sha
    assert modes and set(modes) == {0o600}
    assert list(private_tmp.iterdir()) == []


async def test_a_passphrase_protected_key_is_refused_before_git_runs(tmp_path):
    path = tmp_path / "locked"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(InvalidInput, match="passphrase"):
        await fetch(
            "ssh://git@git.example.com/app.git",
            "main",
            tmp_path / "w",
            allowed_roots=[],
            ssh_private_key=path.read_text(),
        )
