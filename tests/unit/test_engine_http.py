"""The engine's own HTTP/1.1 client and stream decoders, on bytes: status lines, chunked bodies, Docker's
multiplexed log frames, events split across reads, request bodies and engine addresses."""

from __future__ import annotations

import asyncio
import json
import struct
from datetime import UTC, datetime

import pytest

from mist_core.engine import ContainerSpec
from mist_core.engine.docker import LABEL_MANAGED, create_body
from mist_core.engine.streams import JsonLinesDecoder, LogDecoder, parse_log_line
from mist_core.engine.transport import (
    DockerAPIError,
    DockerTransport,
    ProtocolError,
    build_request,
    encode_query,
    iter_body,
    parse_engine_address,
    parse_head,
    read_head,
)
from mist_core.errors import InvalidInput
from mist_core.models import Volume


def reader_of(*pieces: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for piece in pieces:
        reader.feed_data(piece)
    reader.feed_eof()
    return reader


async def body_of(reader: asyncio.StreamReader, headers: dict[str, str], status: int = 200) -> bytes:
    return b"".join([piece async for piece in iter_body(reader, status, headers, "GET")])


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", kind, len(payload)) + payload


STAMP = b"2024-05-01T10:00:00.123456789Z "


# ---------------------------------------------------------------------------------------------- heads


def test_status_line_and_headers_are_parsed_with_lowercase_names() -> None:
    status, headers = parse_head(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nX-A: 1\r\nX-A: 2"
    )
    assert status == 404
    assert headers == {"content-type": "application/json", "x-a": "1, 2"}


def test_status_line_without_reason_phrase_is_accepted() -> None:
    assert parse_head(b"HTTP/1.0 204")[0] == 204


@pytest.mark.parametrize(
    "head",
    [b"SSH-2.0-OpenSSH_9.2", b"HTTP/2 200 OK", b"HTTP/1.1 20 OK", b"HTTP/1.1 OK", b"HTTP/1.1 200 OK\r\nbad"],
)
def test_what_is_not_http_1_is_a_protocol_error(head: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_head(head)


async def test_interim_1xx_answers_are_skipped() -> None:
    reader = reader_of(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
    assert await read_head(reader) == (201, {"content-length": "2"})


# ---------------------------------------------------------------------------------------------- bodies


async def test_chunked_body_is_decoded_whatever_the_read_boundaries() -> None:
    raw = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    for cut in range(1, len(raw)):
        reader = reader_of(raw[:cut], raw[cut:])
        assert await body_of(reader, {"transfer-encoding": "chunked"}) == b"hello world"


async def test_chunk_larger_than_a_read_comes_in_bounded_pieces() -> None:
    data = b"x" * 200_000
    reader = reader_of(f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n")
    pieces = [p async for p in iter_body(reader, 200, {"transfer-encoding": "chunked"}, "GET")]
    assert b"".join(pieces) == data
    assert max(len(p) for p in pieces) <= 64 * 1024


async def test_a_truncated_chunked_body_is_an_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        await body_of(reader_of(b"10\r\nonly-part"), {"transfer-encoding": "chunked"})


async def test_a_malformed_chunk_size_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        await body_of(reader_of(b"zz\r\nabc\r\n0\r\n\r\n"), {"transfer-encoding": "chunked"})


async def test_content_length_body_is_read_exactly_and_the_rest_ignored() -> None:
    assert await body_of(reader_of(b"abcdefgh"), {"content-length": "3"}) == b"abc"
    with pytest.raises(asyncio.IncompleteReadError):
        await body_of(reader_of(b"ab"), {"content-length": "3"})


async def test_body_without_length_is_read_to_the_end_and_204_has_none() -> None:
    assert await body_of(reader_of(b"to the end"), {}) == b"to the end"
    assert await body_of(reader_of(b"ignored"), {}, status=204) == b""


# ---------------------------------------------------------------------------------------------- requests


def test_request_carries_host_close_and_a_json_body_with_its_length() -> None:
    body = json.dumps({"Image": "x"}).encode()
    raw = build_request("POST", "/v1.41/containers/create?name=a", "docker", body)
    head, _, sent = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"POST /v1.41/containers/create?name=a HTTP/1.1",
        b"Host: docker",
        b"Connection: close",
        b"Content-Type: application/json",
        f"Content-Length: {len(body)}".encode(),
    ]
    assert sent == body
    assert b"Content-Length: 0" in build_request("POST", "/v1.41/containers/x/start", "docker")


def test_query_encodes_booleans_as_digits_and_filters_as_json() -> None:
    query = encode_query({"all": True, "stream": False, "since": None, "filters": {"label": ["a=b"]}})
    assert query == "all=1&stream=0&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"


def test_engine_addresses_in_the_forms_mist_docker_host_accepts() -> None:
    assert parse_engine_address("unix:///var/run/docker.sock").path == "/var/run/docker.sock"
    tcp = parse_engine_address("tcp://127.0.0.1:2375")
    assert (tcp.host, tcp.port, tcp.tls, tcp.host_header) == ("127.0.0.1", 2375, False, "127.0.0.1:2375")
    assert parse_engine_address("https://[::1]:2376").tls
    for bad in ("ssh://user@host", "unix://relative.sock", "tcp://:2375", "tcp://host:port", "docker.sock"):
        with pytest.raises(ValueError):
            parse_engine_address(bad)


async def test_a_bad_engine_address_is_invalid_input_naming_the_setting() -> None:
    transport = DockerTransport("ssh://root@server")
    with pytest.raises(InvalidInput) as caught:
        await transport.request("GET", "/_ping")
    assert caught.value.field == "MIST_DOCKER_HOST"
    assert "'ssh://root@server' is not a Docker Engine address" in caught.value.message


def test_a_404_naming_a_missing_image_is_told_apart_from_other_404s() -> None:
    assert DockerAPIError(404, "No such image: mist/web:3").image_missing
    assert not DockerAPIError(404, "network mist-x not found").image_missing
    assert not DockerAPIError(409, "No such image: x").image_missing


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
