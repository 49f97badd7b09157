"""A loaded project configuration (`Config`): the file's global tables, its environments
(validated when first used), and the names and URLs derived from them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import Field, ValidationError, field_validator

from conveyor.config.app import AppConfig, MigrationsConfig, RegistryConfig
from conveyor.config.database import ComposeDatabase, UrlDatabase
from conveyor.config.environment import EnvironmentConfig
from conveyor.config.interpolate import interpolate
from conveyor.config.secret import Model, SecretRef
from conveyor.config.validation import validation_error
from conveyor.errors import ConfigError

ENV_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class RootConfig(Model):
    """The whole file; environments stay raw tables until used (see `Config.environment`)."""

    app: AppConfig
    migrations: MigrationsConfig = MigrationsConfig()
    registry: RegistryConfig | None = None
    environments: dict[str, Any] = Field(default={})

    @field_validator("environments")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not ENV_NAME.match(name):
                raise ValueError(f"environment name {name!r} must match {ENV_NAME.pattern}")
        return v


class Config:
    """A loaded project configuration. Environments are validated when first used."""

    def __init__(self, path: Path, root: RootConfig, env_raw: dict[str, Any]) -> None:
        self.path = path
        self.root_dir = path.parent
        self.app = root.app
        self.migrations = root.migrations
        self.registry = root.registry
        self._env_raw = env_raw
        self._envs: dict[str, EnvironmentConfig] = {}

    @property
    def file(self) -> str:
        return str(self.path)

    @property
    def environment_names(self) -> list[str]:
        return list(self._env_raw)

    def environment(self, name: str) -> EnvironmentConfig:
        if name not in self._env_raw:
            known = ", ".join(self._env_raw) or "none"
            raise ConfigError(
                f"unknown environment {name!r}; this file defines: {known}",
                file=self.file, key=f"environments.{name}",
                hint=f"add an [environments.{name}] table or pick one of: {known}",
            )
        if name not in self._envs:
            raw = interpolate(self._env_raw[name], f"environments.{name}", self.file)
            try:
                self._envs[name] = EnvironmentConfig.model_validate(raw)
            except ValidationError as exc:
                raise validation_error(exc, self.file, prefix=("environments", name)) from None
        return self._envs[name]

    @property
    def migrations_dir(self) -> Path:
        return (self.root_dir / self.migrations.dir).resolve()

    def image_repository(self) -> str:
        if self.registry is not None:
            return f"{self.registry.address.rstrip('/')}/{self.app.image}"
        return self.app.image

    def secret(self, ref: SecretRef, key: str) -> str:
        return ref.resolve(self.root_dir, key, self.file)

    def database_url(self, env_name: str, *, from_host: bool = True) -> str:
        """The URL of the environment's database.

        `from_host=True`: as reached from this machine (local stage) or from the VM itself;
        `from_host=False`: as reached from a container on the database's network.
        """
        env = self.environment(env_name)
        db = env.database
        key = f"environments.{env_name}.database"
        if isinstance(db, UrlDatabase):
            return self.secret(db.url, key + ".url")
        password = self.secret(db.password, key + ".password") if db.password else ""
        auth = quote(db.user, safe="") + (f":{quote(password, safe='')}" if password else "")
        if isinstance(db, ComposeDatabase):
            host, port = (db.host, db.port) if from_host else (db.service, 5432)
        else:
            host, port = self.db_container_name(env_name), 5432
        return f"postgresql://{auth}@{host}:{port}/{quote(db.name, safe='')}"

    def db_container_name(self, env_name: str) -> str:
        db = self.environment(env_name).database
        return getattr(db, "container", None) or f"{self.app.name}-{env_name}-db"

    def db_volume_name(self, env_name: str) -> str:
        db = self.environment(env_name).database
        return getattr(db, "volume", None) or f"{self.app.name}-{env_name}-pgdata"

    def network_name(self, env_name: str) -> str:
        db = self.environment(env_name).database
        return getattr(db, "network", None) or f"{self.app.name}-{env_name}"

    def app_container_name(self, env_name: str) -> str:
        return f"{self.app.name}-{env_name}-app"

    def host_state_dir(self, env_name: str) -> str:
        """Where conveyor keeps this environment's lock, env files and records on its host."""
        env = self.environment(env_name)
        return f"{env.state_dir.rstrip('/')}/{self.app.name}/{env_name}"

    def masked(self, env_names: list[str] | None = None) -> dict[str, Any]:
        """The resolved configuration as plain data, with every secret shown as a reference."""
        out: dict[str, Any] = {
            "file": self.file,
            "app": _mask(self.app.model_dump()),
            "migrations": self.migrations.model_dump() | {"dir": str(self.migrations_dir)},
            "registry": _mask(self.registry.model_dump()) if self.registry else None,
            "environments": {},
        }
        for name in env_names if env_names is not None else self.environment_names:
            env = self.environment(name)
            data = _mask(env.model_dump())
            data["url"] = env.app_url(self.app)
            try:
                data["database"]["url"] = _mask_url(self.database_url(name))
            except ConfigError as exc:
                data["database"]["url"] = f"<unresolved: {exc}>"
            out["environments"][name] = data
        return out


def _mask(data: Any) -> Any:
    if isinstance(data, dict):
        if set(data) <= {"env", "file", "default"} and (data.get("env") or data.get("file")):
            return "***secret " + SecretRef(**data).describe() + "***"
        return {k: _mask(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask(v) for v in data]
    return data


def _mask_url(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
