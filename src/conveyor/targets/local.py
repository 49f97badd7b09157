"""The local environment resolved: the app and its PostgreSQL on this machine, run by Compose.

`open_stack(cfg, env_name)` checks the environment is local with a compose database, finds the
compose file and the compose project name, and collects the secrets to mask. No I/O besides
reading the config's files; what Docker says (the Compose flavour, the services) is found by
the steps and kept on the plan's state (`conveyor.state.local.LocalState`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conveyor.config import ComposeDatabase, Config, EnvironmentConfig, SecretRef
from conveyor.errors import ConfigError, ConveyorError
from conveyor.masking import Redactor

COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


@dataclass(frozen=True)
class LocalStack:
    """Everything the local commands need, resolved once from the config (no I/O here)."""

    cfg: Config
    env_name: str
    env: EnvironmentConfig
    db: ComposeDatabase
    project: str
    compose_files: tuple[str, ...]
    redactor: Redactor
    cache_dir: Path | None = None

    @property
    def project_dir(self) -> Path:
        return self.cfg.root_dir

    @property
    def app_service(self) -> str:
        return self.env.app_service

    @property
    def db_service(self) -> str:
        return self.db.service

    @property
    def app_url(self) -> str:
        return self.env.app_url(self.cfg.app)

    @property
    def health_url(self) -> str:
        return self.app_url + self.cfg.app.health.path

    @property
    def key(self) -> str:
        """The config key of this environment (`environments.local`)."""
        return f"environments.{self.env_name}"

    @property
    def context_dir(self) -> Path:
        return (self.cfg.root_dir / self.cfg.app.context).resolve()

    @property
    def dockerfile(self) -> Path:
        return (self.cfg.root_dir / self.cfg.app.dockerfile).resolve()

    def database_url(self) -> str:
        return self.cfg.database_url(self.env_name)

    def state_file(self) -> Path | None:
        """Where `up` records the containers it started (to skip an unneeded `compose up`)."""
        if self.cache_dir is None:
            return None
        where = hashlib.sha256(str(self.cfg.path).encode()).hexdigest()[:12]
        return self.cache_dir / "local" / f"{self.project}-{where}.json"


def normalize_project_name(name: str) -> str:
    """What Compose itself does to a project name: lower case, [a-z0-9_-] only."""
    out = re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")
    return out or "app"


def default_cache_dir() -> Path:
    if os.environ.get("CONVEYOR_CACHE_DIR"):
        return Path(os.environ["CONVEYOR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "conveyor"


def open_stack(cfg: Config, env_name: str = "local") -> LocalStack:
    env = cfg.environment(env_name)
    key = f"environments.{env_name}"
    if env.is_remote:
        raise ConfigError(
            f"environment {env_name!r} runs on {env.host}, not on this machine; the local "
            "commands need an environment without `host`",
            file=cfg.file, key=f"{key}.host",
            hint=f"for a remote environment use `conveyor deploy {env_name}`",
        )
    db = env.database
    if not isinstance(db, ComposeDatabase):
        raise ConfigError(
            f"found kind = {db.kind!r}, expected kind = 'compose' for the local stage "
            "(the database is a service of the compose file)",
            file=cfg.file, key=f"{key}.database.kind",
        )
    if env.compose_file:
        files = [cfg.root_dir / env.compose_file]
        if not files[0].is_file():
            raise ConfigError(f"the compose file {files[0]} does not exist", file=cfg.file,
                              key=f"{key}.compose_file")
    else:
        files = [p for p in (cfg.root_dir / n for n in COMPOSE_FILE_NAMES) if p.is_file()][:1]
        if not files:
            raise ConfigError(
                f"no compose file in {cfg.root_dir} (looked for {', '.join(COMPOSE_FILE_NAMES)})",
                file=cfg.file, key=f"{key}.compose_file",
                hint="set compose_file to the file that runs the app and its database",
            )
    project = env.compose_project or normalize_project_name(
        os.environ.get("COMPOSE_PROJECT_NAME") or cfg.app.name)
    redactor = Redactor()
    for ref, secret_key in _secret_refs(cfg, env, db, key):
        try:
            redactor.add(cfg.secret(ref, secret_key))
        except ConveyorError:
            pass
    return LocalStack(cfg=cfg, env_name=env_name, env=env, db=db, project=project,
                      compose_files=tuple(str(f) for f in files), redactor=redactor,
                      cache_dir=default_cache_dir())


def _secret_refs(cfg: Config, env: EnvironmentConfig, db: ComposeDatabase,
                 key: str) -> Iterator[tuple[SecretRef, str]]:
    if db.password is not None:
        yield db.password, f"{key}.database.password"
    for name, ref in env.secrets.items():
        yield ref, f"{key}.secrets.{name}"
    for name, ref in cfg.app.secrets.items():
        yield ref, f"app.secrets.{name}"
