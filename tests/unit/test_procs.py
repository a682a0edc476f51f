"""The environment of host processes: whatever the daemon's own environment holds, a child gets a fixed PATH,
locale and home, the operator's engine and network settings, and what Mist sets itself, nothing more."""

from __future__ import annotations

import os
import re
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mist_core.procs import HOST_PATH, MIST_SET_ENV, OPERATOR_ENV, host_process_env

FIXED = {"PATH", "LANG", "LC_ALL", "HOME"}

# What a hostile or careless environment could hold: loader and interpreter hooks, another engine or config,
# git and ssh redirections, and Mist's own keys.
HOSTILE_ENVIRON = {
    "LD_PRELOAD": "/tmp/evil.so",
    "LD_LIBRARY_PATH": "/tmp",
    "LD_AUDIT": "/tmp/audit.so",
    "PATH": "/tmp/bin:/usr/bin",
    "HOME": "/root",
    "XDG_CONFIG_HOME": "/root/.config",
    "TMPDIR": "/tmp/elsewhere",
    "PYTHONPATH": "/tmp/py",
    "BASH_ENV": "/tmp/rc",
    "ENV": "/tmp/rc",
    "IFS": ":",
    "BUILDKIT_HOST": "tcp://127.0.0.1:9",
    "BUILDX_BUILDER": "elsewhere",
    "DOCKER_BUILDKIT": "0",
    "DOCKER_CONTEXT": "elsewhere",
    "GIT_DIR": "/tmp/repo",
    "GIT_EXEC_PATH": "/tmp/git-core",
    "GIT_CONFIG_PARAMETERS": "'core.sshCommand'='touch /tmp/pwned'",
    "GIT_SSH_COMMAND": "touch /tmp/pwned",
    "GIT_ASKPASS": "/tmp/askpass",
    "SSH_ASKPASS": "/tmp/askpass",
    "MIST_MASTER_KEY": "c2VjcmV0",
    "MIST_SIGNING_KEY": "c2VjcmV0",
    "MIST_TOKEN": "mist_t_secret",
}
OPERATOR_VALUES = {
    "DOCKER_HOST": "tcp://engine.internal:2376",
    "DOCKER_TLS_VERIFY": "1",
    "DOCKER_CERT_PATH": "/etc/mist/docker-tls",
    "https_proxy": "http://proxy.internal:3128",
    "NO_PROXY": "localhost,127.0.0.1",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The daemon's environment for one test: the hostile set plus the operator's settings."""
    values = {**HOSTILE_ENVIRON, **OPERATOR_VALUES}
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_nothing_outside_the_allow_list_survives_a_hostile_daemon_environment(
    environ: dict[str, str], tmp_path: Path
) -> None:
    env = host_process_env(tmp_path)
    assert set(env) == FIXED | set(OPERATOR_VALUES)
    assert env["PATH"] == HOST_PATH
    assert env["HOME"] == str(tmp_path)
    assert (env["LANG"], env["LC_ALL"]) == ("C", "C")
    for name, value in OPERATOR_VALUES.items():
        assert env[name] == value
    for name, value in HOSTILE_ENVIRON.items():
        assert name in FIXED or name not in env, name
        assert value not in env.values(), name


def test_what_mist_sets_is_added_and_wins_over_the_operators_engine(
    environ: dict[str, str], tmp_path: Path
) -> None:
    env = host_process_env(tmp_path, {"DOCKER_BUILDKIT": "1", "DOCKER_HOST": "unix:///run/mist-engine.sock"})
    assert env["DOCKER_BUILDKIT"] == "1"
    assert env["DOCKER_HOST"] == "unix:///run/mist-engine.sock"


@pytest.mark.parametrize(
    "name", ["LD_PRELOAD", "PATH", "HOME", "LANG", "BUILDKIT_HOST", "GIT_DIR", "GIT_CONFIG_PARAMETERS", "APP"]
)
def test_a_variable_mist_does_not_set_for_host_processes_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=name):
        host_process_env(tmp_path, {name: "x"})


def test_a_nul_in_a_value_mist_sets_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NUL"):
        host_process_env(tmp_path, {"GIT_ASKPASS": "/tmp/a\0b"})


def test_the_allow_lists_name_nothing_a_loader_shell_or_interpreter_reads() -> None:
    hook = re.compile(r"^(LD_.*|PATH|HOME|ENV|BASH_ENV|IFS|PYTHON.*|PERL.*|RUBY.*|NODE_OPTIONS|MIST_.*)$")
    assert not [name for name in OPERATOR_ENV | MIST_SET_ENV if hook.match(name)]


_NAMES = st.text(
    alphabet=st.sampled_from("ABCDEGHIKLMNOPRSTXY_abcdehilnoprstx0123456789"), min_size=1, max_size=24
)


@given(
    environment=st.dictionaries(
        _NAMES | st.sampled_from(sorted(HOSTILE_ENVIRON)) | st.sampled_from(sorted(OPERATOR_ENV)),
        st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40),
        max_size=30,
    )
)
def test_any_daemon_environment_leaves_only_allowed_names(environment: dict[str, str]) -> None:
    with mock.patch.dict(os.environ, environment, clear=True):
        env = host_process_env(Path("/nonexistent/home"))
    assert set(env) <= FIXED | OPERATOR_ENV
    assert env["PATH"] == HOST_PATH
    assert env["HOME"] == "/nonexistent/home"
    for name in set(env) - FIXED:
        assert env[name] == environment[name]
