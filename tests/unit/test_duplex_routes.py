"""Every duplex operation (an exec session) is a route whose body the security middleware hands through as it
streams, instead of reading it whole first."""

from __future__ import annotations

import re

from mist_core.operations import OPERATIONS
from mist_core.server.security import STREAMED_BODY


def test_every_duplex_route_streams_its_body_and_no_other_does() -> None:
    for operation in OPERATIONS.values():
        path = "/v1" + re.sub(r"\{[^}]+\}", "x", operation.path)
        streamed = operation.method == "POST" and STREAMED_BODY.fullmatch(path) is not None
        assert streamed == operation.duplex, operation.name
