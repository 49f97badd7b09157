"""An environment's database: `kind = "compose"`, `"container"` or `"url"`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from conveyor.config.secret import Model, SecretRef, reject_literal_secret
from conveyor.config.values import Address, NonEmpty, Port


class _DatabaseBase(Model):
    name: NonEmpty = "app"
    user: NonEmpty = "app"
    password: SecretRef | None = None

    @field_validator("password", mode="before")
    @classmethod
    def _no_literal_secret(cls, v: Any) -> Any:
        return reject_literal_secret(v)


class ComposeDatabase(_DatabaseBase):
    """The database is a service of the project's compose file (local stage)."""

    kind: Literal["compose"]
    service: NonEmpty = "db"
    host: Address = "127.0.0.1"
    port: Port = Field(default=5432, description="port published on the host")


class ContainerDatabase(_DatabaseBase):
    """A Postgres container managed by conveyor on the environment's host."""

    kind: Literal["container"]
    image: NonEmpty = "postgres:15"
    container: str | None = None
    volume: str | None = None
    network: str | None = None


class UrlDatabase(Model):
    """An existing server, reached by URL (the URL holds a password, so it is a secret)."""

    kind: Literal["url"]
    url: SecretRef

    @field_validator("url", mode="before")
    @classmethod
    def _no_literal_secret(cls, v: Any) -> Any:
        return reject_literal_secret(v)


Database = Annotated[ComposeDatabase | ContainerDatabase | UrlDatabase,
                     Field(discriminator="kind")]
