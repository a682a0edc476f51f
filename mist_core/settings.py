"""The instance settings an admin can change at run time (``mist settings set KEY VALUE``): each with a
default, a description and a parser that says what a good value looks like."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import InvalidInput


@dataclass(frozen=True)
class SettingDef:
    key: str
    default: str
    description: str
    parse: Callable[[str], object]


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise InvalidInput(f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise InvalidInput(f"{number} is out of range: use {low} to {high}")
        return number

    return parse


DEFINITIONS: dict[str, SettingDef] = {
    d.key: d
    for d in (
        SettingDef(
            "images_per_app",
            "3",
            "How many of an app's images to keep (the live one included).",
            _int_between(1, 100),
        ),
        SettingDef(
            "deploy_timeout",
            "1800",
            "Seconds a deployment may take before it fails.",
            _int_between(10, 86400),
        ),
        SettingDef(
            "deploy_attempts",
            "3",
            "Attempts for a deployment when the Docker Engine fails transiently.",
            _int_between(1, 10),
        ),
        SettingDef(
            "stop_grace_period",
            "10",
            "Seconds an old container gets after SIGTERM before SIGKILL.",
            _int_between(0, 3600),
        ),
        SettingDef(
            "log_retention_deployments",
            "50",
            "Deployments per app whose logs are kept.",
            _int_between(1, 10000),
        ),
    )
}


def parse(key: str, value: str) -> object:
    definition = DEFINITIONS.get(key)
    if definition is None:
        known = ", ".join(sorted(DEFINITIONS))
        raise InvalidInput(f"there is no setting {key!r}; the settings are: {known}", field="key")
    try:
        return definition.parse(value)
    except InvalidInput as err:
        raise InvalidInput(f"setting {key}: {err.message}", field="value") from None
