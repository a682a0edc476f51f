"""The pure parts of the daemon's listener hardening: how the connection bounds are fitted into the open-file
limit, how the daemon's options are read, and how the log filter lets a flood of one kind of line through.
The listeners themselves are tested against a real daemon in ``tests/security/test_slow_clients.py``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mist_core.daemon import (
    DEFAULT_PUBLIC_CONNECTIONS,
    DEFAULT_SOCKET_CONNECTIONS,
    FILES_PER_CONNECTION,
    RESERVED_FILES,
    DaemonError,
    DaemonOptions,
    build_parser,
    connection_bounds,
    options_from_args,
)
from mist_core.server.listeners import ClientTimeouts, LogFloodFilter


def options(**kwargs: object) -> DaemonOptions:
    return DaemonOptions(data_dir=Path("/nonexistent"), socket_path=Path("/nonexistent.sock"), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- bounds


def test_default_bounds_are_kept_when_the_limit_has_room() -> None:
    bounds = connection_bounds(20_000, socket_listener=True, public_listeners=2, options=options())
    assert (bounds.socket, bounds.public) == (DEFAULT_SOCKET_CONNECTIONS, DEFAULT_PUBLIC_CONNECTIONS)


def test_default_bounds_shrink_to_leave_the_core_its_files_under_a_low_limit() -> None:
    bounds = connection_bounds(1024, socket_listener=True, public_listeners=2, options=options())
    used = (bounds.socket + 2 * bounds.public) * FILES_PER_CONNECTION
    assert used + RESERVED_FILES <= 1024
    assert bounds.socket > bounds.public > 0


def test_bounds_given_by_the_operator_are_kept_and_the_defaults_fit_around_them() -> None:
    bounds = connection_bounds(
        1024, socket_listener=True, public_listeners=2, options=options(max_connections=64)
    )
    assert bounds.public == 64
    assert (bounds.socket + 2 * 64) * FILES_PER_CONNECTION + RESERVED_FILES <= 1024


def test_bounds_that_cannot_fit_stop_the_daemon_with_what_to_do() -> None:
    with pytest.raises(DaemonError, match=r"open-file limit is 1024.*ulimit -n.*--max-socket-connections"):
        connection_bounds(
            1024, socket_listener=True, public_listeners=0, options=options(max_socket_connections=5000)
        )
    with pytest.raises(DaemonError, match="open-file limit is 300"):
        connection_bounds(300, socket_listener=True, public_listeners=2, options=options())


def test_timeouts_and_bounds_come_from_flags_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIST_HEADER_TIMEOUT", "2.5")
    monkeypatch.setenv("MIST_MAX_CONNECTIONS", "40")
    args = build_parser().parse_args(
        ["--data", "/tmp/x", "--idle-timeout", "7", "--max-socket-connections", "9"]
    )
    parsed = options_from_args(args)
    assert parsed.timeouts == ClientTimeouts(header=2.5, idle=7.0, body=ClientTimeouts().body)
    assert (parsed.max_connections, parsed.max_socket_connections) == (40, 9)


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        (
            "--body-timeout",
            "0",
            "--body-timeout (or MIST_BODY_TIMEOUT) '0': give a number of seconds above 0",
        ),
        ("--header-timeout", "soon", "--header-timeout (or MIST_HEADER_TIMEOUT) 'soon'"),
        ("--max-connections", "-3", "--max-connections (or MIST_MAX_CONNECTIONS) '-3': give a whole number"),
    ],
)
def test_a_bad_timeout_or_bound_says_which_and_what_to_give(flag: str, value: str, words: str) -> None:
    args = build_parser().parse_args(["--data", "/tmp/x", flag, value])
    with pytest.raises(DaemonError) as caught:
        options_from_args(args)
    assert str(caught.value).startswith(words)


# ---------------------------------------------------------------------------------------------- log flood


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


def flood_logger(name: str) -> tuple[logging.Logger, Lines, LogFloodFilter, Clock]:
    handler, clock = Lines(), Clock()
    [flood] = LogFloodFilter.install([handler], burst=3, interval=10.0, clock=clock)
    # A logger of that name outside logging's registry: the process's own loggers stay as they are.
    logger = logging.Logger(name, logging.DEBUG)
    logger.addHandler(handler)
    return logger, handler, flood, clock


def test_a_flood_of_one_kind_of_line_is_cut_to_a_few_and_a_count() -> None:
    logger, handler, flood, clock = flood_logger("uvicorn.error")
    for _ in range(1000):
        logger.warning("Invalid HTTP request received.")
    for n in range(50):
        logger.info("refused a connection to %s: %d connections are open", "x", n)
    assert len(handler.lines) == 6
    clock.now += 10
    flood.flush()
    assert handler.lines[6:] == [
        "uvicorn.error: 997 more lines like 'Invalid HTTP request received.' were left out of the log (at most "
        "3 of a kind every 10 s)",
        "uvicorn.error: 47 more lines like 'refused a connection to %s: %d connections are open' were left out "
        "of the log (at most 3 of a kind every 10 s)",
    ]
    logger.warning("Invalid HTTP request received.")
    assert handler.lines[-1] == "uvicorn.error: Invalid HTTP request received."


def test_the_count_comes_with_the_next_line_of_its_kind_after_the_interval() -> None:
    logger, handler, _, clock = flood_logger("mist.listeners")
    for _ in range(5):
        logger.info("closed a connection")
    clock.now += 11
    logger.info("closed a connection")
    assert handler.lines[-2:] == [
        "mist.listeners: 2 more lines like 'closed a connection' were left out of the log (at most 3 of a kind "
        "every 10 s)",
        "mist.listeners: closed a connection",
    ]


def test_lines_no_client_can_cause_are_never_left_out() -> None:
    logger, handler, flood, _ = flood_logger("mist.deploys")
    for n in range(100):
        logger.info("deployment %d is live", n)
    flood.flush(all_kinds=True)
    assert len(handler.lines) == 100
