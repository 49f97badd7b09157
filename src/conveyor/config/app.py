"""The project-wide tables: [app] (with its health check), [migrations], [registry]."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from conveyor.config.secret import Model, SecretRef, reject_literal_secret, reject_literal_secrets


class HealthCheck(Model):
    path: str = "/health"
    timeout: float = Field(default=60.0, gt=0, description="seconds to wait for health")
    interval: float = Field(default=0.25, gt=0)
    expect_status: int = 200

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"expected a URL path starting with '/', found {v!r}")
        return v


class AppConfig(Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    image: str = Field(description="image repository, without registry or tag")
    dockerfile: str = "Dockerfile"
    context: str = "."
    port: int = Field(ge=1, le=65535, description="port the app listens on in its container")
    build_args: dict[str, str] = Field(default={})
    health: HealthCheck = HealthCheck()
    env: dict[str, str] = Field(default={})
    secrets: dict[str, SecretRef] = Field(default={})
    stop_timeout: int = Field(default=10, ge=0)

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
    lock_timeout: float = Field(default=60.0, gt=0)
    container_dir: str = Field(default="/app/migrations",
                               description="where the image holds the migrations")


class RegistryConfig(Model):
    address: str
    username: SecretRef | None = None
    password: SecretRef | None = None

    @field_validator("username", "password", mode="before")
    @classmethod
    def _no_literal_secret(cls, v: Any) -> Any:
        return reject_literal_secret(v)
