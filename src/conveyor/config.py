"""Typed model of `conveyor.toml`.

Loading is in three stages, each with errors that name the file and the key path:

1. TOML parsing (tomllib; syntax errors carry line and column);
2. `${VAR}` / `${VAR:-default}` interpolation of string values from the process environment
   (`$$` is a literal `$`). Global sections are interpolated strictly. An environment section
   that references unset variables is kept *deferred*: it only becomes an error when that
   environment is used, so `conveyor up` works on a laptop without the CI's dev/prod variables;
3. validation with pydantic (unknown keys are errors, so a typo never passes silently).

Secrets are never literal: a key that holds a secret takes `{ env = "VAR" }` or
`{ file = "path" }` and is only read when needed (`SecretRef.resolve`).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from conveyor.errors import ConfigError

CONFIG_FILE = "conveyor.toml"
_VAR = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")
_ENV_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_HOST = re.compile(
    r"^(?:(?P<user>[A-Za-z_][A-Za-z0-9_.-]*)@)?(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    r"|\[[0-9A-Fa-f:]+\])(?::(?P<port>[0-9]{1,5}))?$"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- secrets


class SecretRef(_Model):
    """A reference to a secret: an environment variable or a file, never the value itself."""

    env: str | None = None
    file: str | None = None
    default: str | None = Field(
        default=None,
        description="Fallback for an unset variable; meant for local development only.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> "SecretRef":
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret reference needs exactly one of `env` or `file`")
        if self.file is not None and self.default is not None:
            raise ValueError("`default` is only allowed with `env`")
        return self

    def describe(self) -> str:
        if self.env is not None:
            state = "set" if self.env in os.environ else ("default" if self.default is not None
                                                          else "NOT SET")
            return f"env:{self.env} ({state})"
        return f"file:{self.file}"

    def resolve(self, root: Path, key: str, config_file: str | None = None) -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                if self.default is not None:
                    return self.default
                raise ConfigError(
                    f"the secret references environment variable {self.env}, which is not set",
                    file=config_file, key=key,
                    hint=f"export {self.env}=... (in CI: from the CI's secret store)",
                )
            return value
        path = Path(os.path.expanduser(self.file or ""))
        if not path.is_absolute():
            path = root / path
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"the secret references file {path}, which cannot be read ({exc.strerror})",
                file=config_file, key=key,
            ) from None


def _reject_literal_secret(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            "LITERAL_SECRET: found a literal string; a secret must be a reference: "
            '{ env = "VAR" } or { file = "path" }'
        )
    return value


SecretField = Annotated[SecretRef, Field(description="secret reference")]


# --------------------------------------------------------------------------- sections


class HealthCheck(_Model):
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


class AppConfig(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    image: str = Field(description="image repository, without registry or tag")
    dockerfile: str = "Dockerfile"
    context: str = "."
    port: int = Field(ge=1, le=65535, description="port the app listens on in its container")
    build_args: dict[str, str] = {}
    health: HealthCheck = HealthCheck()
    env: dict[str, str] = {}
    secrets: dict[str, SecretRef] = {}
    stop_timeout: int = Field(default=10, ge=0)

    _lit = field_validator("secrets", mode="before")(
        classmethod(lambda cls, v: {k: _reject_literal_secret(x) for k, x in v.items()}
                    if isinstance(v, dict) else v)
    )


class MigrationsConfig(_Model):
    dir: str = "migrations"
    command: list[str] = Field(
        default=[],
        description="argv that runs the migrations inside a temporary container of the app "
        "image; empty = conveyor's built-in engine",
    )
    lock_timeout: float = Field(default=60.0, gt=0)
    container_dir: str = Field(default="/app/migrations",
                               description="where the image holds the migrations")


class RegistryConfig(_Model):
    address: str
    username: SecretRef | None = None
    password: SecretRef | None = None

    _lit = field_validator("username", "password", mode="before")(
        classmethod(lambda cls, v: _reject_literal_secret(v))
    )


class _DatabaseBase(_Model):
    name: str = "app"
    user: str = "app"
    password: SecretRef | None = None

    _lit = field_validator("password", mode="before")(
        classmethod(lambda cls, v: _reject_literal_secret(v))
    )


class ComposeDatabase(_DatabaseBase):
    """The database is a service of the project's compose file (local stage)."""

    kind: Literal["compose"]
    service: str = "db"
    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535, description="port published on the host")


class ContainerDatabase(_DatabaseBase):
    """A Postgres container managed by conveyor on the environment's host."""

    kind: Literal["container"]
    image: str = "postgres:15"
    container: str | None = None
    volume: str | None = None
    network: str | None = None


class UrlDatabase(_Model):
    """An existing server, reached by URL (the URL holds a password, so it is a secret)."""

    kind: Literal["url"]
    url: SecretRef

    _lit = field_validator("url", mode="before")(
        classmethod(lambda cls, v: _reject_literal_secret(v))
    )


Database = Annotated[Union[ComposeDatabase, ContainerDatabase, UrlDatabase],
                     Field(discriminator="kind")]


class HttpCheck(_Model):
    path: str
    status: int = 200
    contains: str | None = None


class BackupConfig(_Model):
    dir: str = "/var/lib/conveyor/backups"
    keep: int = Field(default=10, ge=1)


class EnvironmentConfig(_Model):
    host: str | None = Field(default=None, description="SSH target user@host[:port]")
    known_hosts: str | None = None
    ssh_key: str | None = None
    address: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535,
                             description="host port the app is published on")
    url: str | None = None
    compose_file: str | None = None
    compose_project: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="compose project name (local stage); default: $COMPOSE_PROJECT_NAME, else "
        "the app's name",
    )
    app_service: str = Field(default="app", description="the compose service that runs the app")
    test_command: list[str] = []
    validate_command: list[str] = []
    checks: list[HttpCheck] = []
    env: dict[str, str] = {}
    secrets: dict[str, SecretRef] = {}
    database: Database
    backup: BackupConfig = BackupConfig()
    promote_from: str | None = None
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
    test_timeout: float = Field(default=600.0, gt=0,
                                description="seconds the test command may run")

    _lit = field_validator("secrets", mode="before")(
        classmethod(lambda cls, v: {k: _reject_literal_secret(x) for k, x in v.items()}
                    if isinstance(v, dict) else v)
    )

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is None:
            return v
        m = _HOST.match(v)
        if not m or (m.group("port") and not 0 < int(m.group("port")) < 65536):
            raise ValueError(f"HOST: expected user@host[:port] (e.g. deploy@10.0.0.5:22), found {v!r}")
        return v

    @field_validator("state_dir")
    @classmethod
    def _state_dir(cls, v: str) -> str:
        if not v.startswith("/") or ".." in v.split("/"):
            raise ValueError(f"expected an absolute path on the host, found {v!r}")
        return v.rstrip("/") or "/"

    @model_validator(mode="after")
    def _remote_needs_known_hosts(self) -> "EnvironmentConfig":
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
        m = _HOST.match(self.host or "")
        assert m, "validated"
        return m.group("user"), m.group("host").strip("[]"), int(m.group("port") or 22)

    def app_url(self, app: AppConfig) -> str:
        if self.url:
            return self.url.rstrip("/")
        return f"http://{self.address}:{self.port or app.port}"


class _Root(_Model):
    app: AppConfig
    migrations: MigrationsConfig = MigrationsConfig()
    registry: RegistryConfig | None = None
    environments: dict[str, Any] = {}

    @field_validator("environments")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not _ENV_NAME.match(name):
                raise ValueError(f"environment name {name!r} must match {_ENV_NAME.pattern}")
        return v


# --------------------------------------------------------------------------- loaded config


class Config:
    """A loaded project configuration. Environments are validated when first used."""

    def __init__(self, path: Path, root: _Root, env_raw: dict[str, Any]) -> None:
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
            raw = _interpolate(self._env_raw[name], f"environments.{name}", self.file)
            try:
                self._envs[name] = EnvironmentConfig.model_validate(raw)
            except ValidationError as exc:
                raise _validation_error(exc, self.file, prefix=("environments", name)) from None
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
        from urllib.parse import quote

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


# --------------------------------------------------------------------------- loading


def find_config(project_dir: Path | str | None = None) -> Path:
    base = Path(project_dir or ".").expanduser()
    if base.is_file():
        return base
    path = base / CONFIG_FILE
    if not path.exists():
        raise ConfigError(
            f"no {CONFIG_FILE} in {base.resolve()}",
            hint="run in the application's root directory, pass -C DIR, or create one with "
            "`conveyor init`",
        )
    return path


def load_config(project_dir: Path | str | None = None) -> Config:
    path = find_config(project_dir)
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=file,
                          hint="fix the syntax at the line and column shown") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", file=file) from None

    envs = raw.get("environments", {})
    glob = {k: v for k, v in raw.items() if k != "environments"}
    glob = _interpolate(glob, "", file)
    if not isinstance(envs, dict):
        raise ConfigError(f"found {_kind(envs)}, expected a table of environments",
                          file=file, key="environments")
    for name, section in envs.items():
        if not isinstance(section, dict):
            raise ConfigError(f"found {_kind(section)}, expected a table",
                              file=file, key=f"environments.{name}")
    try:
        root = _Root.model_validate(glob | {"environments": envs})
    except ValidationError as exc:
        raise _validation_error(exc, file) from None
    config = Config(path.resolve(), root, envs)
    # validate every environment whose variables are all set now: typos surface early
    for name in envs:
        if not _unset_vars(envs[name]):
            config.environment(name)
    return config


def _unset_vars(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for v in value.values():
            found += _unset_vars(v)
    elif isinstance(value, list):
        for v in value:
            found += _unset_vars(v)
    elif isinstance(value, str):
        for m in _VAR.finditer(value):
            if m.group(1) != "$" and m.group(3) is None and m.group(2) not in os.environ:
                found.append(m.group(2))
    return found


def _interpolate(value: Any, key: str, file: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{key}.{k}" if key else k, file) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{key}[{i}]", file) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name, default = m.group(2), m.group(3)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"uses ${{{name}}}, but environment variable {name} is not set",
            file=file, key=key,
            hint=f"export {name}=..., or write ${{{name}:-default}} to give a default",
        )

    return _VAR.sub(sub, value)


def _kind(v: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


_EXPECTED = {
    "int_parsing": "an integer", "int_type": "an integer", "float_parsing": "a number",
    "float_type": "a number", "string_type": "a string", "bool_type": "true or false",
    "bool_parsing": "true or false", "list_type": "an array", "dict_type": "a table",
    "model_type": "a table", "model_attributes_type": "a table",
}


def _validation_error(exc: ValidationError, file: str,
                      prefix: tuple[str, ...] = ()) -> ConfigError:
    msgs = []
    first_key = None
    for err in exc.errors():
        loc: list[str] = []
        parts = [str(p) for p in (*prefix, *err["loc"])]
        for i, part in enumerate(parts):
            # pydantic inserts the union tag (database.url.port) or a validator's name
            if (i and parts[i - 1] == "database" and part in ("compose", "container", "url")) \
                    or part.startswith("function-"):
                continue
            loc.append(part)
        key = ".".join(loc)
        first_key = first_key or key
        typ = err["type"]
        found = err.get("input")
        if typ == "missing":
            text = "missing required key"
        elif typ == "extra_forbidden":
            text = "unknown key; check its spelling (see docs/config.md for the keys of this table)"
        elif typ == "union_tag_invalid" or typ == "union_tag_not_found":
            text = (f"found kind = {found.get('kind')!r}" if isinstance(found, dict) else
                    f"found {_kind(found)}") + ", expected kind = 'compose', 'container' or 'url'"
        elif typ in _EXPECTED:
            text = f"found {_kind(found)} {found!r}, expected {_EXPECTED[typ]}"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            for tag in ("LITERAL_SECRET: ", "HOST: ", "KNOWN_HOSTS: "):
                msg = msg.replace(tag, "")
            text = msg if "found" in msg else f"{msg} (found {found!r})"
            if isinstance(found, (dict, list)):
                text = msg
        msgs.append(f"key `{key}`: {text}" if key else text)
    message = "; ".join(msgs)
    return ConfigError(message, file=file, hint="see docs/config.md for every key")
