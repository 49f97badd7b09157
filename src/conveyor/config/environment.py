"""An [environments.NAME] table: where it runs (local or a host over SSH), its database, checks,
backups and state directory on the host."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ByteSize, Field, field_validator, model_validator

from conveyor.config.app import AppConfig
from conveyor.config.database import Database
from conveyor.config.secret import Model, SecretRef, reject_literal_secrets
from conveyor.config.values import (
    Address,
    EnvTable,
    EnvVarName,
    HttpUrl,
    Int,
    NonEmpty,
    Port,
    Seconds,
    echo,
)
from conveyor.transport.ssh import HOST_SPEC, split_host


class HttpCheck(Model):
    path: str
    status: Int = Field(default=200, ge=100, le=599)
    contains: str | None = None


class BackupConfig(Model):
    dir: str = "/var/lib/conveyor/backups"
    keep: Int = Field(default=10, ge=1)


class ProxyConfig(Model):
    """strategy = "zero-downtime": the environment's reverse proxy (nginx) on the host."""

    image: NonEmpty = Field(default="nginx:1.27", description="the proxy's image (nginx)")
    drain_timeout: Seconds = Field(default=30.0, description="seconds in-flight requests to the "
                                   "old version may take after the switch")


class EnvironmentConfig(Model):
    host: str | None = Field(default=None, description="SSH target user@host[:port]")
    known_hosts: str | None = None
    ssh_key: str | None = None
    address: Address = "127.0.0.1"
    port: Port | None = Field(default=None, description="host port the app is published on")
    url: HttpUrl | None = None
    compose_file: str | None = None
    compose_project: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="compose project name (local stage); default: $COMPOSE_PROJECT_NAME, else "
        "the app's name",
    )
    app_service: str = Field(default="app", description="the compose service that runs the app")
    test_command: list[str] = Field(default=[])
    validate_command: list[str] = Field(default=[])
    checks: list[HttpCheck] = Field(default=[])
    env: EnvTable = Field(default={})
    secrets: dict[EnvVarName, SecretRef] = Field(default={})
    database: Database
    backup: BackupConfig = BackupConfig()
    promote_from: NonEmpty | None = None
    state_dir: str = Field(
        default="/var/lib/conveyor",
        description="directory on the host for conveyor's lock, env files and deployment "
        "records (<state_dir>/<app>/<env>/...)",
    )
    labels: dict[str, str] = Field(
        default={}, description="extra labels on every container, network and volume conveyor "
        "creates for this environment")
    restart: str = Field(default="unless-stopped",
                         pattern=r"^(no|always|unless-stopped|on-failure(:[0-9]+)?)$",
                         description="restart policy of the app container")
    test_timeout: Seconds = Field(default=600.0, description="seconds the test command may run")
    strategy: Literal["recreate", "zero-downtime"] = Field(
        default="recreate", description="recreate: stop, migrate, start; zero-downtime: a "
        "proxy on the host switches to the new version once healthy (expand migrations only)")
    proxy: ProxyConfig = ProxyConfig()
    rehearse: Literal["always", "auto", "never"] = Field(
        default="auto", description="rehearse the pending migrations on a scratch restore of "
        "the fresh pre-deploy backup before prod is touched: always, never, or auto (when the "
        "database is smaller than rehearse_max_size)")
    rehearse_max_size: ByteSize = Field(
        default=ByteSize(5 * 1024**3), ge=0, description="auto: the largest pg_database_size "
        "that is rehearsed (bytes, or a string such as \"5GiB\", \"500MB\")")

    @field_validator("secrets", mode="before")
    @classmethod
    def _no_literal_secrets(cls, v: Any) -> Any:
        return reject_literal_secrets(v)

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is None:
            return v
        m = HOST_SPEC.match(v)
        if not m or (m.group("port") and not 0 < int(m.group("port")) < 65536):
            raise ValueError("HOST: expected user@host[:port] (e.g. deploy@10.0.0.5:22), "
                             f"found {echo(v)}")
        return v

    @field_validator("state_dir")
    @classmethod
    def _state_dir(cls, v: str) -> str:
        if not v.startswith("/") or ".." in v.split("/"):
            raise ValueError(f"expected an absolute path on the host, found {echo(v)}")
        return v.rstrip("/") or "/"

    @model_validator(mode="after")
    def _remote_needs_known_hosts(self) -> EnvironmentConfig:
        if self.host is not None and not self.known_hosts:
            raise ValueError(
                "KNOWN_HOSTS: an environment with `host` needs `known_hosts` (the file that "
                "verifies the host key; conveyor never turns host key checking off)"
            )
        if self.host is None and self.database.kind == "container":
            raise ValueError("a `container` database needs the environment's `host`")
        return self

    @property
    def is_remote(self) -> bool:
        return self.host is not None

    def ssh_parts(self) -> tuple[str | None, str, int]:
        assert self.host is not None, "remote"
        return split_host(self.host)

    def app_url(self, app: AppConfig) -> str:
        if self.url:
            return self.url.rstrip("/")
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port or app.port}"
