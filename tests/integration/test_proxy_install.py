"""`mist proxy install` on a server that lacks the Traefik image, and with the Caddy backend."""

from __future__ import annotations

import pytest

from mist_core.errors import Conflict, NotFound

# The one `mist-proxy` container of the engine is created here: one xdist worker runs all such tests.
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("mist-proxy")]


async def test_installing_traefik_without_its_image_says_how_to_get_it(mist):
    with pytest.raises(NotFound, match=r"docker pull traefik:v3"):
        await mist.proxy.install()
    status = await mist.proxy.status()
    assert status.backend == "traefik" and not status.reachable
    assert "Traefik is not running" in status.detail and "`mist proxy install`" in status.detail


async def test_installing_with_the_caddy_backend_explains_that_caddy_is_run_by_the_admin(mist):
    await mist.settings.set("proxy_backend", "caddy")
    with pytest.raises(Conflict, match="Traefik only"):
        await mist.proxy.install()
