"""The Docker engine layer: running, watching and cleaning up the containers and images Mist manages."""

from .docker import (
    LABEL_APP,
    LABEL_DATABASE,
    LABEL_DEPLOYMENT,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
    LABEL_VOLUME,
    NETWORK,
    ContainerSpec,
    Engine,
    RunningContainer,
    project_network,
    project_volume,
)

__all__ = [
    "LABEL_APP",
    "LABEL_DATABASE",
    "LABEL_DEPLOYMENT",
    "LABEL_INSTANCE",
    "LABEL_MANAGED",
    "LABEL_PROJECT",
    "LABEL_PROJECT_UID",
    "LABEL_VOLUME",
    "NETWORK",
    "ContainerSpec",
    "Engine",
    "RunningContainer",
    "project_network",
    "project_volume",
]
