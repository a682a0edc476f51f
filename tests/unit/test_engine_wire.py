"""The engine's own HTTP/1.1 client and stream decoders, on bytes: status lines, chunked bodies, Docker's
multiplexed log frames, events split across reads, request bodies and engine addresses."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime

import pytest

from mist_core.engine import ContainerSpec, Engine
from mist_core.engine.client import DockerAPIError, negotiate_version, parse_engine_address
from mist_core.engine.docker import LABEL_MANAGED, create_body
from mist_core.engine.ssh import ssh_command
from mist_core.engine.streams import JsonLinesDecoder, LogDecoder, parse_log_line
from mist_core.errors import EngineUnavailable, InvalidInput
from mist_core.models import Volume


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", kind, len(payload)) + payload


STAMP = b"2024-05-01T10:00:00.123456789Z "


# ---------------------------------------------------------------------------------------------- addresses


def test_engine_addresses_in_the_forms_mist_docker_host_accepts() -> None:
    assert parse_engine_address("unix:///var/run/docker.sock").kind == "unix"
    assert parse_engine_address("tcp://127.0.0.1:2375").kind == "tcp"
    assert parse_engine_address("https://[::1]:2376").kind == "tcp"
    ssh = parse_engine_address("ssh://deploy@build-1.example:2222")
    assert (ssh.kind, ssh.ssh_user, ssh.ssh_host, ssh.ssh_port) == ("ssh", "deploy", "build-1.example", 2222)
    for bad in (
        "ftp://host",
        "unix://relative.sock",
        "tcp://:2375",
        "tcp://host:port",
        "docker.sock",
        "ssh://-oProxyCommand=x",
        "ssh://user:pw@host",
        "tcp://host:2375/path",
    ):
        with pytest.raises(ValueError):
            parse_engine_address(bad)


def test_the_ssh_command_is_an_argument_list_with_the_host_after_a_double_dash() -> None:
    address = parse_engine_address("ssh://deploy@build-1.example:2222")
    assert ssh_command(address, "/etc/mist/ssh_config") == [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-F",
        "/etc/mist/ssh_config",
        "-l",
        "deploy",
        "-p",
        "2222",
        "--",
        "build-1.example",
        "docker",
        "system",
        "dial-stdio",
    ]


async def test_a_bad_engine_address_is_invalid_input_naming_the_setting() -> None:
    engine = Engine("ftp://root@server")
    try:
        with pytest.raises(InvalidInput) as caught:
            await engine.ping()
    finally:
        engine.close()
    assert caught.value.field == "MIST_DOCKER_HOST"
    assert "'ftp://root@server' is not a Docker Engine address" in caught.value.message


def test_a_404_naming_a_missing_image_is_told_apart_from_other_404s() -> None:
    assert DockerAPIError(404, "No such image: mist/web:3").image_missing
    assert not DockerAPIError(404, "network mist-x not found").image_missing
    assert not DockerAPIError(409, "No such image: x").image_missing


# ---------------------------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("server", "newest", "chosen"),
    [
        ({"ApiVersion": "1.41", "MinAPIVersion": "1.12"}, "1.45", "1.41"),  # Docker 20.10
        ({"ApiVersion": "1.52", "MinAPIVersion": "1.44"}, "1.45", "1.45"),  # Docker 29
        ({"ApiVersion": "1.60", "MinAPIVersion": "1.50"}, "1.45", "1.50"),  # one newer than Mist knows
        ({"ApiVersion": "1.44"}, "1.45", "1.44"),
    ],
)
def test_the_version_spoken_is_the_highest_both_know_never_below_the_engines_minimum(
    server: dict, newest: str, chosen: str
) -> None:
    assert negotiate_version("unix:///x", server, newest) == chosen


def test_an_engine_below_mists_minimum_is_refused_with_its_version() -> None:
    with pytest.raises(EngineUnavailable, match="Docker 17.06.2-ce speaks API 1.30"):
        negotiate_version("unix:///x", {"ApiVersion": "1.30", "Version": "17.06.2-ce"}, "1.45")


# ---------------------------------------------------------------------------------------------- create body


def test_create_body_matches_what_docker_expects_for_a_full_spec() -> None:
    spec = ContainerSpec(
        name="shop-web-7",
        image="mist/shop-web:7",
        env={"A": "1", "EMPTY": ""},
        labels={"dev.mist.app": "web"},
        command=["sh", "-c", "serve"],
        publish=["127.0.0.1:18080:8080", "9000", "53:53/udp"],
        memory=64 * 1024 * 1024,
        cpus=0.5,
        restart="on-failure:3",
        volumes=[Volume(name="shop-data", path="/data")],
        network="mist",
        aliases=["web.shop"],
        host_dirs={"/var/lib/mist/proxy": ("/etc/traefik", True)},
        extra_hosts={"z": "10.0.0.2", "a": "host-gateway"},
    )
    body = create_body(spec, {"dev.mist.app": "web", LABEL_MANAGED: "true"})
    assert body["Env"] == ["A=1", "EMPTY="]
    assert body["Cmd"] == ["sh", "-c", "serve"]
    assert body["ExposedPorts"] == {"8080/tcp": {}, "9000/tcp": {}, "53/udp": {}}
    host = body["HostConfig"]
    assert host["PortBindings"] == {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}],
        "9000/tcp": [{"HostIp": "", "HostPort": ""}],
        "53/udp": [{"HostIp": "", "HostPort": "53"}],
    }
    assert host["Binds"] == ["shop-data:/data:rw", "/var/lib/mist/proxy:/etc/traefik:ro"]
    assert host["ExtraHosts"] == ["a:host-gateway", "z:10.0.0.2"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (64 * 1024 * 1024,) * 2 + (500_000_000,)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"mist": {"Aliases": ["web.shop"]}}}
    json.dumps(body)  # what is sent


def test_create_body_leaves_unset_limits_to_docker() -> None:
    body = create_body(ContainerSpec(name="a", image="i"), {})
    assert "Cmd" not in body and "ExposedPorts" not in body
    assert set(body["HostConfig"]) == {"NetworkMode", "RestartPolicy", "LogConfig"}
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"mist": {}}}


# ---------------------------------------------------------------------------------------------- logs


def test_log_frames_split_anywhere_give_whole_lines_per_stream() -> None:
    raw = frame(1, STAMP + b"out one\n") + frame(2, STAMP + b"err one\n") + frame(1, STAMP + b"out two\n")
    for cut in range(1, len(raw)):
        decoder = LogDecoder("web", tty=False)
        lines = decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) + decoder.end()
        assert [(line.stream, line.text) for line in lines] == [
            ("stdout", "out one"),
            ("stderr", "err one"),
            ("stdout", "out two"),
        ]
        assert lines[0].ts == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
        assert {line.source for line in lines} == {"web"}


def test_a_long_line_in_several_frames_keeps_its_first_timestamp() -> None:
    decoder = LogDecoder("web", tty=False)
    later = b"2024-05-01T10:00:05Z "
    lines = decoder.feed(frame(1, STAMP + b"x" * 16384) + frame(1, later + b"y" * 10 + b"\n"))
    assert [len(line.text) for line in lines] == [16394]
    assert lines[0].ts.second == 0


def test_an_unfinished_line_is_given_at_the_end_and_crlf_is_trimmed() -> None:
    decoder = LogDecoder("web", tty=False)
    assert decoder.feed(frame(1, STAMP + b"done\r\n") + frame(2, STAMP + b"no newline")) != []
    assert [(line.stream, line.text) for line in decoder.end()] == [("stderr", "no newline")]


def test_tty_logs_are_plain_lines_on_stdout() -> None:
    decoder = LogDecoder("web", tty=True)
    lines = (
        decoder.feed(STAMP + b"first\n" + STAMP[:10]) + decoder.feed(STAMP[10:] + b"second") + decoder.end()
    )
    assert [(line.stream, line.text) for line in lines] == [("stdout", "first"), ("stdout", "second")]


def test_log_line_timestamp_parsing() -> None:
    stamp, text = parse_log_line(b"2024-05-01T12:00:00.5+02:00 hello")
    assert (stamp, text) == (datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC), b"hello")
    assert parse_log_line(b"no stamp here") == (None, b"no stamp here")


# ---------------------------------------------------------------------------------------------- events


def test_events_split_across_pieces_come_out_whole() -> None:
    raw = b'{"Action":"start","id":"a"}\n{"Action":"die","Actor":{"Attributes":{"exitCode":"3"}}}\n'
    for cut in range(1, len(raw)):
        decoder = JsonLinesDecoder()
        events = decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) + decoder.end()
        assert [e["Action"] for e in events] == ["start", "die"]


def test_an_event_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError):
        JsonLinesDecoder().feed(b"[1, 2]\n")
