"""A remote environment resolved: a VM reached over SSH that runs the app container and
(optionally) a conveyor-managed PostgreSQL container.

Layout on the host (`<state_dir>/<app>/<env>/`, see `Config.host_state_dir`):

    lock/holder.json           the environment's deploy lock (atomic mkdir): who, when, what
    app.env, db.env            env files of the app and database containers (0600)
    deployments/<id>.json      one record per deployment (steps, timings, output, result)
    history.jsonl              one summary line per deployment, oldest first
"""

from __future__ import annotations

from collections.abc import Callable

from conveyor import host
from conveyor.commands import docker
from conveyor.config import Config, ContainerDatabase, SecretRef
from conveyor.errors import ConfigError, NotSetUp
from conveyor.masking import Redactor
from conveyor.transport import SshTarget, SshTransport, Transport


def ssh_target(cfg: Config, env_name: str) -> SshTarget:
    env = cfg.environment(env_name)
    assert env.host is not None, "remote"
    return SshTarget.of_environment(env.host, env.known_hosts, env.ssh_key, cfg.root_dir,
                                    env_name)


def env_file(values: dict[str, str], where: str) -> str:
    """docker's --env-file format: KEY=value per line, taken literally (no quoting)."""
    lines = []
    for k, v in values.items():
        if "\n" in v or "\r" in v:
            raise ConfigError(f"the value of {k} contains a line break, which an env file "
                              "cannot hold", key=where)
        lines.append(f"{k}={v}")
    return "\n".join(lines) + "\n"


def tail(text: str, n: int = 5) -> str:
    """The last non-empty lines of a command's output, on one line."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) or "(no output)"


class Remote:
    """One remote environment, resolved: names, paths and the (lazily opened) transport."""

    def __init__(self, cfg: Config, env_name: str, *,
                 transport_factory: Callable[[Remote], Transport] | None = None) -> None:
        self.cfg = cfg
        self.name = env_name
        self.env = cfg.environment(env_name)
        if not self.env.is_remote:
            raise ConfigError(f"environment {env_name!r} has no `host`: it is not remote",
                              file=cfg.file, key=f"environments.{env_name}.host",
                              hint="remote stages need host, known_hosts (and ssh_key)")
        self.app = cfg.app
        self.state_dir = cfg.host_state_dir(env_name)
        self.app_container = cfg.app_container_name(env_name)
        self.previous_container = f"{self.app_container}-previous"
        self.failed_container = f"{self.app_container}-failed"
        self.next_container = f"{self.app_container}-next"
        db = self.env.database
        self.managed_db = isinstance(db, ContainerDatabase)
        self.db_container = cfg.db_container_name(env_name) if self.managed_db else None
        self.db_volume = cfg.db_volume_name(env_name) if self.managed_db else None
        self.network = cfg.network_name(env_name) if self.managed_db else None
        self._factory = transport_factory
        self._transport: Transport | None = None
        self.redactor = Redactor()

    # paths on the host
    @property
    def lock_dir(self) -> str:
        return f"{self.state_dir}/lock"

    @property
    def app_env_file(self) -> str:
        return f"{self.state_dir}/app.env"

    @property
    def db_env_file(self) -> str:
        return f"{self.state_dir}/db.env"

    @property
    def history_file(self) -> str:
        return f"{self.state_dir}/history.jsonl"

    def record_file(self, deployment_id: str) -> str:
        return f"{self.state_dir}/deployments/{deployment_id}.json"

    @property
    def url(self) -> str:
        return self.env.app_url(self.app)

    @property
    def health_url(self) -> str:
        return self.url + self.app.health.path

    @property
    def publish(self) -> str:
        return f"{self.env.address}:{self.env.port or self.app.port}:{self.app.port}"

    def labels(self, role: str, **extra: str) -> dict[str, str]:
        return {docker.LABEL: self.app.name, "conveyor.env": self.name, "conveyor.role": role,
                **self.env.labels, **extra}

    def container_name(self, role: str, deployment_id: str) -> str:
        """A temporary container of a deployment (`<app>-<env>-migrate-<id>`, ...)."""
        return f"{self.app_container.removesuffix('-app')}-{role}-{deployment_id}".lower()

    # transport
    @property
    def transport(self) -> Transport:
        if self._transport is None:
            if self._factory is not None:
                self._transport = self._factory(self)
            else:
                self._transport = SshTransport(ssh_target(self.cfg, self.name))
        return self._transport

    @property
    def opened_transport(self) -> Transport | None:
        """The transport if a step opened it (for connection counts), else None."""
        return self._transport

    @property
    def host(self) -> str:
        return self.env.host or "local"

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # secrets (resolved only when a step needs them; every value joins the redactor)
    def secret(self, ref: SecretRef, key: str) -> str:
        value = self.cfg.secret(ref, key)
        self.redactor.add(value)
        return value

    @property
    def password_file(self) -> str:
        return f"{self.state_dir}/db.password"

    def db_password(self, *, create: bool = False) -> str:
        """The managed database's password: its reference, else the one conveyor generated
        at setup and keeps on the host (`create`: generate it when missing)."""
        db = self.managed_database("a database password")
        key = f"environments.{self.name}.database.password"
        if db.password is not None:
            return self.secret(db.password, key)
        if key not in self.cfg.secret_values:
            r = self.transport.run(host.argv("db_password", self.password_file,
                                             "create" if create else ""),
                                   check=False, timeout=60)
            if r.returncode != 0 or not r.stdout.strip():
                raise NotSetUp(f"{self.name}'s database password is generated at setup and kept "
                               f"on {self.host} ({self.password_file}); it is not there",
                               hint=f"`conveyor setup {self.name}` (or a deploy) creates it")
            self.cfg.secret_values[key] = r.stdout.strip()
        value = self.cfg.secret_values[key]
        self.redactor.add(value)
        return value

    def database_url(self) -> str:
        if self.managed_db:
            self.db_password()
        url = self.cfg.database_url(self.name, from_host=False)
        self.redactor.add(url)
        return url

    def app_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        env.update(self.app.env)
        env.update(self.env.env)
        for k, ref in self.app.secrets.items():
            env[k] = self.secret(ref, f"app.secrets.{k}")
        for k, ref in self.env.secrets.items():
            env[k] = self.secret(ref, f"environments.{self.name}.secrets.{k}")
        env.setdefault("DATABASE_URL", self.database_url())
        return env

    def db_env(self) -> dict[str, str]:
        db = self.managed_database()
        pw = self.db_password(create=True)
        return {"POSTGRES_USER": db.user, "POSTGRES_PASSWORD": pw, "POSTGRES_DB": db.name}

    def managed_database(self, what: str = "backups") -> ContainerDatabase:
        db = self.env.database
        if not isinstance(db, ContainerDatabase) or self.db_container is None:
            raise ConfigError(
                f"{what} need a conveyor-managed database (kind = \"container\"); {self.name}'s "
                "database is reached by URL",
                file=self.cfg.file, key=f"environments.{self.name}.database.kind",
                hint="back up a database reached by URL with its provider's tools")
        return db
