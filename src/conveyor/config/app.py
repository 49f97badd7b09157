"""The project-wide tables: [app] (with its health check), [migrations], [registry]."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from conveyor.config.secret import Model, SecretRef, reject_literal_secret, reject_literal_secrets
from conveyor.config.values import (
    EnvTable,
    EnvVarName,
    ImageRepository,
    Int,
    Port,
    RegistryAddress,
    Seconds,
    echo,
)


class HealthCheck(Model):
    path: str = "/health"
    timeout: Seconds = Field(default=60.0, description="seconds to wait for health")
    interval: Seconds = 0.25
    expect_status: Int = Field(default=200, ge=100, le=599)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"expected a URL path starting with '/', found {echo(v)}")
        return v


class AppConfig(Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    image: ImageRepository = Field(description="image repository, without registry or tag")
    dockerfile: str = "Dockerfile"
    context: str = "."
    port: Port = Field(description="port the app listens on in its container")
    build_args: dict[EnvVarName, str] = Field(default={})
    health: HealthCheck = HealthCheck()
    env: EnvTable = Field(default={})
    secrets: dict[EnvVarName, SecretRef] = Field(default={})
    stop_timeout: Int = Field(default=10, ge=0)

    @field_validator("secrets", mode="before")
    @classmethod
    def _no_literal_secrets(cls, v: Any) -> Any:
        return reject_literal_secrets(v)


class MigrationsConfig(Model):
    dir: str = "migrations"
    command: list[str] = Field(
        default=[],
        description="argv that runs the migrations inside a temporary container of the app "
        "image; empty = conveyor's built-in engine",
    )
    lock_timeout: Seconds = 60.0
    container_dir: str = Field(default="/app/migrations",
                               description="where the image holds the migrations")
    # a project's own migration tool (`migrations.command` set): see docs/migration-tools.md
    timeout: Seconds = Field(default=3600.0, description="seconds `command` may run")
    status_command: list[str] = Field(
        default=[], description="argv printing the tool's own migration status (read-only)")
    sql_command: list[str] = Field(
        default=[], description="argv printing the SQL `command` would run (prod's lint)")
    revert_command: list[str] = Field(
        default=[], description="argv reverting the newest migration (rollback --migrations)")

    @field_validator("status_command", "sql_command", "revert_command")
    @classmethod
    def _needs_command(cls, v: list[str], info: ValidationInfo) -> list[str]:
        """The tool's other commands mean nothing without the tool: with `command` empty,
        conveyor's built-in engine migrates (and has its own status, SQL and revert)."""
        if v and not info.data.get("command"):
            raise ValueError(
                f"is set but `migrations.command` is empty, so conveyor's built-in engine "
                f"migrates this project and `{info.field_name}` would never run; set "
                "`migrations.command` to the tool's own migrate command (e.g. [\"alembic\", "
                f"\"upgrade\", \"head\"]) or remove `{info.field_name}` "
                "(see docs/migration-tools.md)")
        return v


class RegistryConfig(Model):
    address: RegistryAddress
    username: SecretRef | None = None
    password: SecretRef | None = None

    @field_validator("username", "password", mode="before")
    @classmethod
    def _no_literal_secret(cls, v: Any) -> Any:
        return reject_literal_secret(v)
