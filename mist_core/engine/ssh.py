"""Reaching a Docker Engine at ``ssh://[user@]host[:port]`` the way the Docker CLI does: each connection is
the system's ``ssh`` client running ``docker system dial-stdio`` on the server, its standard input and output
joined to one end of a socket pair, so docker-py reads and writes a real socket (timeouts, shutdown and all).

The ssh client gets an argument list (host and user after ``--`` and ``-l``, checked first) and a fixed,
minimal environment; keys come from ssh-agent or the ssh configuration (``MIST_DOCKER_SSH_CONFIG``), never
from Mist's arguments.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool

from ..procs import host_process_env
from .address import EngineAddress

if TYPE_CHECKING:
    import docker


SSH_BINARY = "ssh"


def ssh_command(address: EngineAddress, config: str | None = None) -> list[str]:
    """The argument list that opens one connection to the engine behind ``address``."""
    command = [SSH_BINARY, "-o", "BatchMode=yes"]
    if config:
        command += ["-F", config]
    if address.ssh_user:
        command += ["-l", address.ssh_user]
    if address.ssh_port:
        command += ["-p", str(address.ssh_port)]
    return [*command, "--", str(address.ssh_host).strip("[]"), "docker", "system", "dial-stdio"]


class SSHConnection(urllib3.connection.HTTPConnection):
    def __init__(self, command: list[str], timeout: Any) -> None:
        super().__init__("localhost", timeout=timeout)
        self._command = command
        self._process: subprocess.Popen[bytes] | None = None

    def connect(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(  # noqa: S603 - an argument list of checked parts
                self._command,
                stdin=theirs.fileno(),
                stdout=theirs.fileno(),
                stderr=subprocess.DEVNULL,
                # ssh reads keys and its configuration from the passwd home, whatever HOME says; the agent
                # (SSH_AUTH_SOCK) is among the operator's variables host_process_env keeps.
                env=host_process_env(Path.home()),
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(self.timeout if isinstance(self.timeout, int | float) else None)
        self.sock = ours

    def close(self) -> None:
        super().close()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            if process.poll() is None:
                process.kill()
                process.wait()


class SSHConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, command: list[str], timeout: float, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self._command = command
        self._timeout = timeout

    def _new_conn(self) -> SSHConnection:
        return SSHConnection(self._command, self._timeout)


class SSHAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, command: list[str], timeout: float, max_pool_size: int) -> None:
        self._pool = SSHConnectionPool(command, timeout, max_pool_size)
        super().__init__()

    def get_connection(self, url: Any, proxies: Any = None) -> SSHConnectionPool:
        return self._pool

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> SSHConnectionPool:
        return self._pool

    def request_url(self, request: Any, proxies: Any) -> str:
        return str(request.path_url)

    def close(self) -> None:
        super().close()
        self._pool.close()


def mount_ssh(
    api: docker.APIClient, address: EngineAddress, *, config: str | None, timeout: float, max_pool_size: int
) -> None:
    """Make ``api`` (a client for a Unix socket, whose base URL is ``http+docker://...``) dial over ssh."""
    api.mount("http+docker://", SSHAdapter(ssh_command(address, config), timeout, max_pool_size))
