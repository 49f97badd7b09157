"""The state of the local plan (`conveyor up`): what each step found and did, as typed fields.

Every step reads `target` (the environment resolved from the config) and the options; the
other fields are facts written by one step and read by later ones and by the summary
(`conveyor.reports.local.up_summary`). Each field names the step that writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor.commands.compose import Compose
from conveyor.targets.local import LocalStack

DB_READY_TIMEOUT = 60.0


@dataclass
class LocalState:
    target: LocalStack
    refresh: bool = False  # always run `compose up`, even when nothing changed
    db_timeout: float = DB_READY_TIMEOUT

    # docker
    docker_version: str | None = None
    compose: Compose | None = None
    # compose file
    services: dict[str, str | None] = field(default_factory=dict)  # service -> image
    services_cached: bool = False
    app_image: str | None = None  # the image reference of the app service
    # image
    inputs: str | None = None  # the inputs hash (label conveyor.inputs)
    image_id: str | None = None
    built: bool = False
    # containers
    containers: dict[str, str] = field(default_factory=dict)  # service -> container id
    containers_changed: list[str] = field(default_factory=list)
    # migrations
    migrations_applied: list[str] = field(default_factory=list)
    migrations_total: int | None = None

    def need_compose(self) -> Compose:
        """The Compose found by the docker step (a step after it may rely on it)."""
        assert self.compose is not None, "the docker step runs first"
        return self.compose

    def need_app_image(self) -> str:
        assert self.app_image, "the compose file step runs first"
        return self.app_image
