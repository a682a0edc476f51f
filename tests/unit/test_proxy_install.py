"""The Traefik container Mist supervises: what it publishes, mounts and runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mist_core.errors import InvalidInput
from mist_core.proxy.install import PROXY_CONTAINER, TRAEFIK_IMAGE, publish_spec, traefik_spec


def test_the_traefik_container_publishes_the_proxy_addresses_and_reads_mists_files_read_only():
    spec = traefik_spec(
        traefik_dir=Path("/var/lib/mist/proxy/traefik"), http_address=":80", https_address="127.0.0.1:8443"
    )
    assert (spec.name, spec.image, spec.restart) == (PROXY_CONTAINER, TRAEFIK_IMAGE, "unless-stopped")
    assert spec.publish == ["80:80", "127.0.0.1:8443:443"]
    assert spec.host_dirs == {"/var/lib/mist/proxy/traefik": ("/etc/traefik/mist", True)}
    assert "--providers.file.directory=/etc/traefik/mist/dynamic" in (spec.command or [])
    assert "--api.dashboard=false" in (spec.command or []) and "--api.insecure=false" in (spec.command or [])
    assert spec.extra_hosts == {"host.docker.internal": "host-gateway"}


def test_a_proxy_address_without_a_port_is_refused():
    with pytest.raises(InvalidInput):
        publish_spec("127.0.0.1", 80)
