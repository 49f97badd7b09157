"""What `conveyor init` found in an application repository (filled by `detect`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.init.tools import Tool

COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
POSTGRES_PORT = 5432


@dataclass
class PortMapping:
    container: int
    host: int | None
    host_ip: str | None
    raw_host: str | None  # the published port as written (may hold ${VAR:-default})


@dataclass
class DbFacts:
    service: str
    image_raw: str
    image: str
    user: str
    name: str
    password_var: str | None
    password_default: str | None
    password_literal: bool
    host_ip: str
    host_port: int | None
    host_port_raw: str | None = None


@dataclass
class Facts:
    root: Path
    name: str
    dockerfile: str | None = None
    context: str = "."
    port: int | None = None
    port_source: str | None = None
    health_path: str | None = None
    health_source: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    compose_file: str | None = None
    compose_error: str | None = None
    app_service: str | None = None
    app_host_ip: str = "127.0.0.1"
    app_host_port: int | None = None
    app_host_port_raw: str | None = None
    app_env_names: list[str] = field(default_factory=list)
    db: DbFacts | None = None
    migrations_dir: str | None = None
    migrations_count: int = 0
    migrations_source: str | None = None
    migrations_container_dir: str | None = None
    tool: Tool | None = None  # the project's own migration tool (init/tools.py)
    test_command: list[str] = field(default_factory=list)
    test_setup: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the Dockerfile's COPY/ADD instructions: (sources, destination, WORKDIR at that point)
    copies: list[tuple[list[str], str, str]] = field(default_factory=list, repr=False)

    @property
    def env_prefix(self) -> str:
        return re.sub(r"[^A-Z0-9]+", "_", self.name.upper()).strip("_") or "APP"


def app_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-._")
    return name if name and re.match(r"^[a-z0-9]", name) else "app"
