"""A loaded project configuration (`Config`): the file's global tables, its environments
(validated when first used), and the names and URLs derived from them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import Field, ValidationError, field_validator

from conveyor.config.app import AppConfig, MigrationsConfig, RegistryConfig
from conveyor.config.database import ComposeDatabase, UrlDatabase
from conveyor.config.environment import EnvironmentConfig
from conveyor.config.secret import Model, SecretRef
from conveyor.config.validation import validation_error
from conveyor.config.values import database_url_problem, echo
from conveyor.errors import ConfigError
from conveyor.interpolation import interpolate

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
                raise ValueError(f"environment name {echo(name)} must match {ENV_NAME.pattern}")
        return v


@dataclass(frozen=True)
class UnsetSecret:
    """A secret reference that cannot be resolved now: its key path and what it names."""

    key: str
    source: str  # "env:VAR" or "file:PATH"
    reason: str  # "not set", "cannot be read (...)"

    def __str__(self) -> str:
        return f"{self.key}: {self.source} {self.reason}"


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
        #: secrets resolved elsewhere (the controller), by key path: what a host-side runner uses
        #: instead of reading environment variables or files it does not have
        self.secret_values: dict[str, str] = {}

    @classmethod
    def from_resolved(cls, path: Path, root: RootConfig,
                      envs: dict[str, EnvironmentConfig],
                      secret_values: dict[str, str]) -> Config:
        """A configuration rebuilt from already validated parts (the runner's job file)."""
        cfg = cls(path, root, {name: env.model_dump(mode="json") for name, env in envs.items()})
        cfg._envs.update(envs)
        cfg.secret_values.update(secret_values)
        return cfg

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
                f"unknown environment {echo(name)}; this file defines: {known}",
                file=self.file, key=f"environments.{name}",
                hint=f"add an [environments.{name}] table or pick one of: {known}",
            )
        if name not in self._envs:
            raw = interpolate(self._env_raw[name], f"environments.{name}", self.file)
            try:
                env = EnvironmentConfig.model_validate(raw)
            except ValidationError as exc:
                raise validation_error(exc, self.file, prefix=("environments", name)) from None
            self._check_promote_from(name, env)
            self._envs[name] = env
        return self._envs[name]

    def _check_promote_from(self, name: str, env: EnvironmentConfig) -> None:
        source = env.promote_from
        if source is None:
            return
        others = [n for n in self._env_raw if n != name]
        if source == name or source not in self._env_raw:
            what = "names the environment itself" if source == name else "names no environment"
            raise ConfigError(
                f"found {echo(source)}, which {what}; expected one of this file's other "
                f"environments: {', '.join(others) or 'none'}",
                file=self.file, key=f"environments.{name}.promote_from",
                hint="set `promote_from` to the environment whose successful deployments "
                "this one takes (e.g. \"dev\"), or remove it",
            )

    def secret_refs(self, env_name: str) -> list[tuple[str, SecretRef]]:
        """Every secret reference the environment uses, with its key path."""
        env = self.environment(env_name)
        refs: list[tuple[str, SecretRef]] = [
            (f"app.secrets.{k}", ref) for k, ref in self.app.secrets.items()]
        if self.registry is not None and env.is_remote:
            refs += [(f"registry.{k}", ref) for k, ref in
                     (("username", self.registry.username), ("password", self.registry.password))
                     if ref is not None]
        prefix = f"environments.{env_name}"
        refs += [(f"{prefix}.secrets.{k}", ref) for k, ref in env.secrets.items()]
        db = env.database
        if isinstance(db, UrlDatabase):
            refs.append((f"{prefix}.database.url", db.url))
        elif db.password is not None:
            refs.append((f"{prefix}.database.password", db.password))
        return refs

    def unset_secrets(self, env_names: list[str] | None = None) -> list[UnsetSecret]:
        """The secret references of these environments (default: all) that cannot be resolved
        now: a variable that is not set (and has no default), a file that cannot be read."""
        out: list[UnsetSecret] = []
        seen: set[str] = set()
        for name in env_names if env_names is not None else self.environment_names:
            for key, ref in self.secret_refs(name):
                reason = ref.unset_reason(self.root_dir)
                if reason is not None and key not in seen:
                    seen.add(key)
                    out.append(UnsetSecret(key, ref.source, reason))
        return out

    def check_secrets(self, env_name: str) -> None:
        """A ConfigError listing every secret the environment needs that cannot be resolved
        now (`conveyor config check --env ENV`); nothing when all can."""
        unset = self.unset_secrets([env_name])
        if not unset:
            return
        sources = [u.source.split(":", 1) for u in unset]
        exports = " ".join(f"{v}=..." for kind, v in sources if kind == "env")
        raise ConfigError(
            f"environment {env_name!r} needs {len(unset)} secret(s) that cannot be resolved "
            "now: " + "; ".join(f"key `{u.key}`: {u.source} {u.reason}" for u in unset),
            file=self.file,
            hint=(f"export {exports} (in CI: from the CI's secret store)" if exports else
                  "create the secret files") + "; `--allow-unset` checks the file's syntax only",
        )

    @property
    def migrations_dir(self) -> Path:
        return (self.root_dir / self.migrations.dir).resolve()

    def image_repository(self) -> str:
        if self.registry is not None:
            return f"{self.registry.address.rstrip('/')}/{self.app.image}"
        return self.app.image

    def secret(self, ref: SecretRef, key: str) -> str:
        if key in self.secret_values:
            return self.secret_values[key]
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
            url = self.secret(db.url, key + ".url")
            problem = database_url_problem(url)
            if problem is not None:
                raise ConfigError(
                    f"the value of the secret ({db.url.source}) {problem}",
                    file=self.file, key=key + ".url",
                    hint=f"set {db.url.source.split(':', 1)[1]} to the database's URL, "
                    "e.g. postgresql://user:password@db.example.com:5432/app",
                )
            return url
        # no reference: the password conveyor generated at setup (read from the host first)
        password = (self.secret(db.password, key + ".password") if db.password
                    else self.secret_values.get(key + ".password", ""))
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
