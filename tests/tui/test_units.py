"""Pure logic of the TUI: formatting, the log buffer, config and credentials files."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from mist_core.models import ProxyStatus
from mist_tui.config import Config, Credentials
from mist_tui.format import human_age, human_bytes, human_duration, parse_size, short_sha
from mist_tui.widgets.log_view import LogBuffer, LogEntry, clean
from mist_tui.widgets.server_strip import proxy_text
from tests.tui.world import NOW


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (7200, "2h"),
        (86400 * 5, "5d"),
        (86400 * 90, "3mo"),
        (86400 * 800, "2y"),
    ],
)
def test_ages_use_their_largest_whole_unit(seconds, shown):
    assert human_age(NOW - timedelta(seconds=seconds), NOW) == shown


def test_sizes_are_binary_with_one_decimal():
    assert human_bytes(512) == "512 B"
    assert human_bytes(512 * 1024**2) == "512.0 MiB"
    assert human_bytes(1.5 * 1024**3) == "1.5 GiB"
    assert human_bytes(None) == "—"


def test_durations_read_naturally():
    assert human_duration(0.42) == "0.4s"
    assert human_duration(38.5) == "38s" or human_duration(38.5) == "39s"
    assert human_duration(125) == "2m05s"
    assert human_duration(3720) == "1h02m"


def test_short_sha_and_size_parsing():
    assert short_sha("9f2c1ab4e5d6") == "9f2c1ab"
    assert short_sha(None) == "—"
    assert parse_size("") is None
    assert parse_size("1048576") == 1048576
    assert parse_size("512m") == "512m"


def test_log_buffer_keeps_the_newest_entries_with_absolute_indexes():
    buffer = LogBuffer(3)
    buffer.extend([LogEntry(ts=NOW, text=str(i)) for i in range(5)])
    assert len(buffer) == 3
    assert (buffer.first, buffer.end) == (2, 5)
    assert [e.text for _, e in buffer.items()] == ["2", "3", "4"]
    assert buffer[4].text == "4"


def test_log_text_loses_colour_codes_and_control_characters():
    assert clean("\x1b[31mred\x1b[0m\tend\r\n") == "red end"


def test_config_reads_theme_host_keymap_and_rejects_broken_toml(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        'theme = "gruvbox"\ndefault_host = "https://mist.example.com:7070"\n[keymap]\n"app.quit" = "ctrl+q"\n'
    )
    config = Config.load(path)
    assert (config.theme, config.default_host, config.keymap) == (
        "gruvbox",
        "https://mist.example.com:7070",
        {"app.quit": "ctrl+q"},
    )
    path.write_text("theme = ")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        Config.load(path)


def test_saving_the_theme_keeps_the_rest_of_the_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('# mine\n[keymap]\n"dashboard.filter" = "f"\n')
    Config.load(path).save_theme("nord")
    config = Config.load(path)
    assert config.theme == "nord" and config.keymap == {"dashboard.filter": "f"}
    assert "# mine" in path.read_text()


def test_credentials_are_per_host_and_private(tmp_path):
    creds = Credentials(tmp_path / "mist" / "credentials.json")
    creds.save("unix:///a.sock", "tok-a", "ada")
    creds.save("https://b:7070", "tok-b", "grace")
    assert creds.get("unix:///a.sock") == ("tok-a", "ada")
    assert creds.path.stat().st_mode & 0o777 == 0o600
    creds.forget("unix:///a.sock")
    assert creds.get("unix:///a.sock") == (None, None)
    assert creds.get("https://b:7070") == ("tok-b", "grace")


def test_table_cells_are_padded_to_their_column_or_cut_with_an_ellipsis():
    from mist_tui.widgets.line_table import fit

    assert fit("web", 6) == "web   "
    assert fit("3.4%", 6, "right") == "  3.4%"
    assert fit("a-very-long-app-name", 8) == "a-very-…"
    assert fit("● live", 8) == "● live  "
    assert fit("日本語のアプリ", 6) == "日本… "  # wide characters take two cells
    assert fit("anything", 0) == ""


def test_the_proxy_line_says_what_is_wrong_and_that_routes_wait_when_the_proxy_does_not_serve():
    down = ProxyStatus(
        backend="traefik",
        reachable=False,
        detail="Traefik is not running (there is no container mist-proxy): start it with `mist proxy install`",
        routes=2,
        domains=3,
        http_address=":80",
        https_address=":443",
    )
    shown = proxy_text(down).plain
    assert "Traefik is not running" in shown and "mist proxy install" in shown
    assert "2 apps waiting for the proxy" in shown and "reachable" not in shown and "routed" not in shown
    up = proxy_text(down.model_copy(update={"reachable": True, "detail": "Traefik runs"})).plain
    assert "● reachable" in up and "2 apps routed" in up
