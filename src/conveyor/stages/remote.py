"""Remote environments: a VM reached over SSH that runs the app container and (optionally) a
conveyor-managed PostgreSQL container.

Everything here is a *step builder*: a function that returns a `pipeline.Step` (its action, the
argv it runs for `--dry-run`, its undo). Stages are lists of these steps: `deploy_plans` (the dev
stage) and `setup_plan`; the prod stage orders the same steps differently (stop the app before
migrating, back up first). Building a plan touches nothing; the transport is opened lazily by
the first step that needs the host.

Layout on the host (`<state_dir>/<app>/<env>/`, see `Config.host_state_dir`):

    lock/holder.json           the environment's deploy lock (atomic mkdir): who, when, what
    app.env, db.env            env files of the app and database containers (0600)
    deployments/<id>.json      one record per deployment (steps, timings, output, result)
    history.jsonl              one summary line per deployment, oldest first
"""

from __future__ import annotations

import json
import os
import shlex
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from conveyor.commands import docker
from conveyor.config import Config, ContainerDatabase, EnvironmentConfig, UrlDatabase
from conveyor.errors import CommandFailed, ConfigError, ConveyorError
from conveyor.pipeline import Plan, Step, StepContext
from conveyor.records import DeploymentRecord, actor
from conveyor.render import Redactor
from conveyor.stages import remote_migrate
from conveyor.transport import SshTarget, SshTransport, Transport, sh

REVISION_LABEL = "org.opencontainers.image.revision"


# --------------------------------------------------------------------------- errors


class LockHeld(ConveyorError):
    exit_code = 5

    def __init__(self, message: str, holder: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.holder = holder or {}


class RemoteMigrationFailed(ConveyorError):
    exit_code = 6


class HealthCheckFailed(ConveyorError):
    exit_code = 7


class TestsFailed(ConveyorError):
    exit_code = 8


class NotSetUp(ConveyorError):
    exit_code = 9


# --------------------------------------------------------------------------- image references


@dataclass(frozen=True)
class ImageRef:
    """An image pinned by digest (what deploys use), with what is known about it."""

    repository: str
    digest: str
    revision: str | None = None
    tag: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"

    @classmethod
    def parse(cls, ref: str, revision: str | None = None) -> "ImageRef":
        repo, sep, digest = ref.partition("@")
        if not sep or not digest.startswith("sha256:") or len(digest) != 71:
            raise ConveyorError(f"not an image reference by digest: {ref!r}",
                                hint="expected REPOSITORY@sha256:<64 hex digits>")
        tag = None
        last = repo.rsplit("/", 1)[-1]
        if ":" in last:
            repo, tag = repo.rsplit(":", 1)
        return cls(repo, digest, revision, tag)


# --------------------------------------------------------------------------- the environment


def ssh_target(cfg: Config, env: EnvironmentConfig) -> SshTarget:
    user, host, port = env.ssh_parts()

    def path(p: str | None) -> str | None:
        if p is None:
            return None
        p = os.path.expanduser(p)
        return p if os.path.isabs(p) else str(cfg.root_dir / p)

    return SshTarget(host=host, user=user, port=port, known_hosts=path(env.known_hosts),
                     identity=path(env.ssh_key))


class Remote:
    """One remote environment, resolved: names, paths and the (lazily opened) transport."""

    def __init__(self, cfg: Config, env_name: str, *,
                 transport_factory: Callable[["Remote"], Transport] | None = None) -> None:
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
        self.managed_db = isinstance(self.env.database, ContainerDatabase)
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

    # transport
    @property
    def transport(self) -> Transport:
        if self._transport is None:
            if self._factory is not None:
                self._transport = self._factory(self)
            else:
                self._transport = SshTransport(ssh_target(self.cfg, self.env))
        return self._transport

    @property
    def host(self) -> str:
        return self.env.host or "local"

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # secrets (resolved only when a step needs them; every value joins the redactor)
    def _secret(self, ref, key: str) -> str:
        value = self.cfg.secret(ref, key)
        self.redactor.add(value)
        return value

    def database_url(self) -> str:
        url = self.cfg.database_url(self.name, from_host=False)
        self.redactor.add(url)
        db = self.env.database
        if isinstance(db, ContainerDatabase) and db.password is not None:
            self._secret(db.password, f"environments.{self.name}.database.password")
        return url

    def app_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        env.update(self.app.env)
        env.update(self.env.env)
        for k, ref in self.app.secrets.items():
            env[k] = self._secret(ref, f"app.secrets.{k}")
        for k, ref in self.env.secrets.items():
            env[k] = self._secret(ref, f"environments.{self.name}.secrets.{k}")
        env.setdefault("DATABASE_URL", self.database_url())
        return env

    def db_env(self) -> dict[str, str]:
        db = self.env.database
        assert isinstance(db, ContainerDatabase)
        if db.password is None:
            raise ConfigError("a conveyor-managed database needs a password reference",
                              file=self.cfg.file, key=f"environments.{self.name}.database.password",
                              hint='password = { env = "VAR" } (or { file = "path" })')
        pw = self._secret(db.password, f"environments.{self.name}.database.password")
        return {"POSTGRES_USER": db.user, "POSTGRES_PASSWORD": pw, "POSTGRES_DB": db.name}


def env_file(values: dict[str, str], where: str) -> str:
    """docker's --env-file format: KEY=value per line, taken literally (no quoting)."""
    lines = []
    for k, v in values.items():
        if "\n" in v or "\r" in v:
            raise ConfigError(f"the value of {k} contains a line break, which an env file "
                              "cannot hold", key=where)
        lines.append(f"{k}={v}")
    return "\n".join(lines) + "\n"


def _run(remote: Remote, ctx: StepContext | None, argv, **kw):
    """Run on the host; a failure says which step and host it was."""
    stream = kw.pop("stream", None)
    if stream is True and ctx is not None:
        stream = ctx.log
    return remote.transport.run(argv, stream=stream, **kw)


# --------------------------------------------------------------------------- scripts

# Fixed shell text; every value is a positional argument ("$1"...), quoted by shlex.join.
LOCK_SCRIPT = """\
d=$1
umask 077
mkdir -p "$d/deployments" || exit 1
if mkdir "$d/lock" 2>/dev/null; then
  cat > "$d/lock/holder.json"
else
  cat "$d/lock/holder.json" 2>/dev/null || echo '{}'
  exit 75
fi
echo '::containers::'
docker container inspect --format '{{json .}}' "$2" ${3:+"$3"} 2>/dev/null
if [ -n "$4" ]; then
  echo '::applied::'
  docker exec "$3" psql -XAtq -v ON_ERROR_STOP=1 -U "$4" -d "$5" -c "$6" 2>/dev/null \\
    || echo '::unknown::'
fi
if [ -n "$7" ]; then
  echo '::image::'
  docker image inspect --format '{{json .Config.Labels}}' "$7" 2>/dev/null || echo '::missing::'
fi
"""

UNLOCK_SCRIPT = """\
if grep -qF "\\"$2\\"" "$1/lock/holder.json" 2>/dev/null; then
  rm -rf "$1/lock"
else
  echo "the lock is not held by $2 (any more)"
  exit 3
fi
"""

# writes the record (stdin: the history line, then the record), then releases the lock ($3 =
# the lock holder's id; empty: not held) whatever happened to the write
RECORD_SCRIPT = """\
umask 077
written=1
if mkdir -p "$1/deployments" && IFS= read -r line \\
    && cat > "$1/deployments/$2.json.tmp" \\
    && mv "$1/deployments/$2.json.tmp" "$1/deployments/$2.json" \\
    && printf '%s\\n' "$line" >> "$1/history.jsonl"; then
  written=0
fi
if [ -n "$3" ]; then
  if grep -qF "\\"$3\\"" "$1/lock/holder.json" 2>/dev/null; then
    rm -rf "$1/lock"
  else
    echo "the lock is not held by $3 (any more)" >&2
    exit 3
  fi
fi
exit $written
"""


def lock_argv(remote: Remote, image: ImageRef | None = None) -> tuple[str, ...]:
    db = remote.env.database
    query = remote.managed_db and not remote.cfg.migrations.command
    return ("sh", "-c", LOCK_SCRIPT, "conveyor-lock", remote.state_dir, remote.app_container,
            remote.db_container or "", db.user if query else "", db.name if query else "",
            remote_migrate.APPLIED_SQL if query else "", image.ref if image else "")


def unlock_argv(remote: Remote, lock_id: str) -> tuple[str, ...]:
    return ("sh", "-c", UNLOCK_SCRIPT, "conveyor-unlock", remote.state_dir, lock_id)


def record_argv(remote: Remote, deployment_id: str, lock_id: str = "") -> tuple[str, ...]:
    return ("sh", "-c", RECORD_SCRIPT, "conveyor-record", remote.state_dir, deployment_id,
            lock_id)


SCRIPT_NAMES = {LOCK_SCRIPT: "<lock script: mkdir $1/lock atomically, write holder.json from "
                "stdin (else print the holder, exit 75); inspect the app ($2) and db ($3) "
                "containers; the applied migrations: psql -U $4 -d $5 -c $6 in $3; whether the "
                "image $7 is present (and its labels)>",
                UNLOCK_SCRIPT: "<unlock script: rm -r $1/lock if holder.json names $2>",
                RECORD_SCRIPT: "<record script: stdin -> $1/history.jsonl (first line) and "
                "$1/deployments/$2.json; then unlock as above if $3 holds the lock>"}


def shown(argv) -> list[str]:
    """argv for --dry-run: conveyor's fixed scripts named instead of printed in full."""
    return [SCRIPT_NAMES.get(a, a) for a in argv]


def put_argv(path: str) -> tuple[str, ...]:
    """Write stdin to `path`, created 0600 (its directory 0700 if new)."""
    return sh(("umask", "077"), "&&", ("mkdir", "-p", os.path.dirname(path)), "&&",
              ("cat",), ">", (path,))


# --------------------------------------------------------------------------- lock


def lock_info(deployment_id: str, image: ImageRef | None, what: str) -> dict[str, Any]:
    return {"id": deployment_id, "who": actor(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ",
            time.gmtime()), "what": what, "image": image.ref if image else None,
            "pid": os.getpid()}


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "an unknown holder (the lock is being taken, or its holder file is missing)"
    parts = [str(holder.get("who") or "someone")]
    if holder.get("what"):
        parts.append(f"for `{holder['what']}`")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    if holder.get("id"):
        parts.append(f"(deployment {holder['id']})")
    return " ".join(parts)


def _parse_sections(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("::") and line.endswith("::"):
            key = line.strip(":")
            continue
        if key and line.strip():
            try:
                out[key] = json.loads(line)
            except ValueError:
                out[key] = None
    return out


def _lock_output(remote: Remote, text: str) -> dict[str, Any]:
    sections: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if line in ("::containers::", "::applied::", "::image::"):
            key = line.strip(":")
            sections[key] = []
        elif key is not None and line.strip():
            sections[key].append(line)
    out: dict[str, Any] = {"app": None, "db": None, "applied": None}
    for line in sections.get("containers", []):
        try:
            c = json.loads(line)
        except ValueError:
            continue
        name = (c.get("Name") or "").lstrip("/")
        if name == remote.app_container:
            out["app"] = c
        elif name == remote.db_container:
            out["db"] = c.get("State")
    applied = sections.get("applied")
    if applied is not None and "::unknown::" not in applied:
        out["applied"] = applied
    image = sections.get("image")
    out["image_labels"] = None
    if image and "::missing::" not in image:
        try:
            out["image_labels"] = json.loads(image[0]) or {}
        except ValueError:
            pass
    return out


def try_lock(remote: Remote, info: dict[str, Any],
             image: ImageRef | None = None) -> tuple[bool, dict[str, Any]]:
    """(acquired, holder-or-state). On success the second item has the host's current app
    container (`app`), the database container's state (`db`) and the rows of the applied
    migrations (`applied`, None when they cannot be read)."""
    r = remote.transport.run(lock_argv(remote, image), input=json.dumps(info) + "\n",
                             check=False, timeout=60)
    if r.returncode == 75:
        try:
            holder = json.loads(r.stdout.strip() or "{}")
        except ValueError:
            holder = {"raw": r.stdout.strip()[:200]}
        return False, holder
    if r.returncode != 0:
        raise CommandFailed(r.argv, r.returncode, r.stderr or r.stdout, host=remote.host)
    return True, _lock_output(remote, r.stdout)


def lock_step(remote: Remote, info: dict[str, Any], *, wait: bool = False,
              wait_timeout: float = 900.0, require_db: bool = True,
              image: ImageRef | None = None) -> Step:
    """Take the environment's lock and, in the same round trip, read the host's state: the app
    and database containers, the applied migrations, whether `image` is already there."""

    def action(ctx: StepContext) -> None:
        deadline = time.monotonic() + wait_timeout
        delay = 0.5
        announced = False
        while True:
            acquired, data = try_lock(remote, info, image)
            if acquired:
                break
            holder = describe_holder(data)
            if not wait or time.monotonic() >= deadline:
                raise LockHeld(
                    f"{remote.name} is locked by {holder}"
                    + (f"; waited {wait_timeout:g} s" if wait else ""),
                    holder=data,
                    hint=("wait for it with --wait, or if that deployment is dead: "
                          f"`conveyor lock release {remote.name}`"),
                )
            if not announced:
                ctx.log(f"waiting for the lock held by {holder}")
                announced = True
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 5.0)
        ctx.values["lock_id"] = info["id"]
        ctx.values["current"] = data.get("app")
        ctx.values["db_applied"] = data.get("applied")
        if data.get("image_labels") is not None:
            ctx.values["image_present_labels"] = data["image_labels"]
        ctx.note(f"locked by {info['who']}")
        if remote.managed_db and require_db:
            state = data.get("db")
            if not state or not state.get("Running"):
                raise NotSetUp(
                    f"the database container {remote.db_container} on {remote.host} is "
                    + ("not running" if state else "missing"),
                    hint=f"run `conveyor setup {remote.name}` (creates the network, volume and "
                    "database container once; deploys never recreate them)")

    return Step("lock", action, describe=[shown(lock_argv(remote, image))])


def unlock_step(remote: Remote) -> Step:
    def action(ctx: StepContext) -> None:
        lock_id = ctx.values.get("lock_id")
        if not lock_id:
            ctx.note("not held")
            return
        r = remote.transport.run(unlock_argv(remote, lock_id), check=False, timeout=60)
        if r.returncode != 0:
            raise ConveyorError(f"could not release the lock of {remote.name}: "
                                f"{(r.stdout + r.stderr).strip()}",
                                hint=f"check with `conveyor lock status {remote.name}`")
        ctx.values["lock_id"] = None
        ctx.note("released")

    return Step("unlock", action, describe=[shown(unlock_argv(remote, "<deployment id>"))])


def lock_status(remote: Remote) -> dict[str, Any] | None:
    r = remote.transport.run(["cat", f"{remote.lock_dir}/holder.json"], check=False, timeout=60)
    if r.returncode != 0:
        probe = remote.transport.run(["test", "-d", remote.lock_dir], check=False, timeout=60)
        return {} if probe.returncode == 0 else None
    try:
        return json.loads(r.stdout or "{}")
    except ValueError:
        return {"raw": r.stdout[:200]}


def force_unlock(remote: Remote) -> None:
    remote.transport.run(["rm", "-rf", remote.lock_dir], timeout=60)


# --------------------------------------------------------------------------- pull


def login_step(remote: Remote) -> Step | None:
    reg = remote.cfg.registry
    if reg is None or reg.username is None or reg.password is None:
        return None
    argv = docker.login(reg.address, "<username>")

    def action(ctx: StepContext) -> None:
        user = remote._secret(reg.username, "registry.username")
        pw = remote._secret(reg.password, "registry.password")
        _run(remote, ctx, docker.login(reg.address, user), input=pw + "\n", timeout=120)

    return Step("login", action, describe=[argv, "stdin: the registry password"])


def pull_argv(image: ImageRef) -> tuple[str, ...]:
    """Pull by digest unless the image is there already; print its labels either way."""
    labels = docker.image_inspect(image.ref, "{{json .Config.Labels}}")
    return sh(labels, "2>/dev/null", "||", "{", docker.pull(image.ref), "&&", labels, ";", "}")


def pull_step(remote: Remote, image: ImageRef) -> Step:
    def action(ctx: StepContext) -> None:
        present = ctx.values.get("image_present_labels")
        if present is not None:  # seen by the lock step's round trip
            _image_labels(ctx, image, present)
            ctx.note(f"already present: {image.ref}")
            return
        r = _run(remote, ctx, pull_argv(image), timeout=1800,
                 stream=lambda line: None if line.startswith("{") else ctx.log(line))
        labels_line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "null"
        try:
            labels = json.loads(labels_line) or {}
        except ValueError:
            labels = {}
        _image_labels(ctx, image, labels)
        pulled = "Digest:" in r.stdout or "Status:" in r.stdout
        ctx.note(("pulled " if pulled else "already present: ") + image.ref)

    return Step("pull", action, describe=[
        pull_argv(image), "(nothing to do when the lock step found the image on the host)"])


def _image_labels(ctx: StepContext, image: ImageRef, labels: dict[str, str]) -> None:
    ctx.values["image_labels"] = labels
    ctx.values["image_revision"] = labels.get(REVISION_LABEL) or image.revision


# --------------------------------------------------------------------------- migrate


def migrate_container_name(remote: Remote, deployment_id: str) -> str:
    return f"{remote.app_container.removesuffix('-app')}-migrate-{deployment_id}".lower()


def migrate_step(remote: Remote, image: ImageRef, deployment_id: str) -> Step:
    mcfg = remote.cfg.migrations
    name = migrate_container_name(remote, deployment_id)
    labels = remote.labels("migrate", **{"conveyor.deployment": deployment_id})
    if mcfg.command:
        env_path = f"{remote.state_dir}/migrate-{deployment_id}.env"
        run_argv = remote_migrate.user_command_argv(image.ref, mcfg.command, name=name,
                                                    network=remote.network, env_file=env_path,
                                                    labels=labels)
        argv = _with_temp_env_file(env_path, run_argv)
        describe = [argv, f"stdin: env file with DATABASE_URL (0600, removed afterwards)"]
    else:
        argv = remote_migrate.engine_argv(image.ref, name=name, network=remote.network,
                                          labels=labels)
        describe = [remote_migrate.describe_engine_argv(argv),
                    "stdin: a JSON header with DATABASE_URL (never in argv) + conveyor's "
                    f"migration engine ({len(remote_migrate.engine_zip())} bytes zip)"]

    def action(ctx: StepContext) -> None:
        skip = nothing_to_migrate(remote, ctx.values)
        if skip:
            ctx.values["migrations_applied"] = []
            ctx.note(skip)
            return
        url = remote.database_url()

        def sink(line: str) -> None:
            if not line.startswith(remote_migrate.RESULT_MARK):
                ctx.log(line)

        if mcfg.command:
            stdin = env_file({"DATABASE_URL": url}, "DATABASE_URL").encode()
        else:
            stdin = remote_migrate.engine_stdin(
                "run", url, mcfg.container_dir, lock_timeout=mcfg.lock_timeout,
                applied_by=f"{actor()} via conveyor deploy {remote.name}")
        r = remote.transport.run(argv, input=stdin, stream=sink, check=False, timeout=None)
        parsed = remote_migrate.parse_output(r.stdout)
        ctx.values["migrate_result"] = parsed.result
        if r.returncode != 0:
            res = parsed.result or {}
            message = res.get("text") or res.get("message") or _tail(r.stderr or r.stdout)
            raise RemoteMigrationFailed(
                f"migration failed on {remote.name}: {message}",
                hint="the app was not touched: the previous version keeps serving. Fix the "
                "migration (a new one, if the failing one was applied elsewhere) and deploy again")
        ctx.values["migrations_applied"] = parsed.applied
        ctx.note(f"applied {len(parsed.applied)}: {', '.join(parsed.applied)}"
                 if parsed.applied else ("nothing to migrate" if parsed.result else "done"))

    if not mcfg.command and remote.managed_db:
        describe.append(f"(not started when the image's label {remote_migrate.FINGERPRINT_LABEL}"
                        " equals the fingerprint of the migrations the database has applied, "
                        "read in the lock step: nothing to migrate)")
    return Step("migrate", action, describe=describe)


def nothing_to_migrate(remote: Remote, values: dict[str, Any]) -> str | None:
    """A note when the database provably holds exactly the image's migrations, else None."""
    if remote.cfg.migrations.command or not remote.managed_db:
        return None
    image_fp = (values.get("image_labels") or {}).get(remote_migrate.FINGERPRINT_LABEL)
    rows = values.get("db_applied")
    if not image_fp or rows is None:
        return None
    if remote_migrate.applied_fingerprint(rows) != image_fp:
        return None
    count = image_fp.split(":", 1)[0]
    return (f"nothing to migrate: the database has applied exactly the image's {count} "
            "migrations (versions and checksums)")


def _with_temp_env_file(path: str, argv) -> tuple[str, ...]:
    """Write stdin to a 0600 env file, run argv, remove the file whatever happens."""
    script = ('umask 077; f=$1; shift; trap \'rm -f "$f"\' EXIT; mkdir -p "$(dirname "$f")" '
              '&& cat > "$f" && "$@"')
    return ("sh", "-c", script, "conveyor-env", path, *argv)


def _tail(text: str, n: int = 5) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) or "(no output)"


# --------------------------------------------------------------------------- app container


def app_run_argv(remote: Remote, image: ImageRef, deployment_id: str,
                 revision: str | None) -> tuple[str, ...]:
    extra = {"conveyor.deployment": deployment_id, "conveyor.image": image.ref}
    if revision:
        extra[REVISION_LABEL] = revision
    return docker.run(image.ref, name=remote.app_container, detach=True,
                      network=remote.network, restart=remote.env.restart,
                      stop_timeout=remote.app.stop_timeout, env_file=remote.app_env_file,
                      publish=[remote.publish], labels=remote.labels("app", **extra))


def replace_argv(remote: Remote, run_argv, *, has_current: bool) -> tuple[str, ...]:
    """One round trip: write the env file (stdin), keep the running container as `-previous`
    (stopped), start the new one."""
    parts: list = [("umask", "077"), "&&", ("mkdir", "-p", remote.state_dir), "&&", ("cat",),
                   ">", (remote.app_env_file,), "&&",
                   "{", docker.rm(remote.previous_container, force=True), ">/dev/null", "2>&1",
                   ";", "}"]
    if has_current:
        parts += ["&&", docker.stop(remote.app_container, remote.app.stop_timeout), ">/dev/null",
                  "&&", docker.rename(remote.app_container, remote.previous_container)]
    parts += ["&&", run_argv]
    return sh(*parts)


def restore_argv(remote: Remote) -> tuple[str, ...]:
    """Put the `-previous` container back (the failed new one is kept as `-failed`)."""
    return sh(
        "if", docker.inspect(remote.previous_container, "{{.Id}}"), ">/dev/null", "2>&1", ";",
        "then",
        "{", docker.rm(remote.failed_container, force=True), ">/dev/null", "2>&1", ";", "}", ";",
        "{", docker.stop(remote.app_container, remote.app.stop_timeout), ">/dev/null", "2>&1",
        "&&", docker.rename(remote.app_container, remote.failed_container), ";", "}", ";",
        docker.rename(remote.previous_container, remote.app_container), "&&",
        docker.start(remote.app_container), ";",
        "else", ("echo", "no previous container to restore"), ";", "fi")


def replace_step(remote: Remote, image: ImageRef, deployment_id: str) -> Step:
    def run_argv(ctx: StepContext | None) -> tuple[str, ...]:
        revision = (ctx.values.get("image_revision") if ctx else None) or image.revision
        return app_run_argv(remote, image, deployment_id, revision)

    def action(ctx: StepContext) -> None:
        current = ctx.values.get("current")
        contents = env_file(remote.app_env(), f"environments.{remote.name}.env")
        argv = replace_argv(remote, run_argv(ctx), has_current=bool(current))
        try:
            r = _run(remote, ctx, argv, input=contents, timeout=300)
        except ConveyorError:
            if current:
                ctx.log("starting the new container failed: restoring the previous one")
                _run(remote, ctx, restore_argv(remote), check=False, timeout=300)
            raise
        ctx.values["app_container_id"] = r.stdout.strip().splitlines()[-1][:12]
        ctx.note(f"started {remote.app_container} ({ctx.values['app_container_id']})"
                 + (f"; previous kept stopped as {remote.previous_container}" if current else ""))

    def undo(ctx: StepContext) -> None:
        if not ctx.values.get("current"):
            ctx.log("no previous app container: the new one is left as it is for inspection")
            return
        r = _run(remote, ctx, restore_argv(remote), timeout=300)
        ctx.log(r.stdout.strip() or f"restored the previous {remote.app_container}")
        # the undo is done when the previous app serves again (or says why not)
        ok, detail = wait_healthy(remote, remote.app.health.timeout)
        ctx.log(f"previous app: {detail}")
        if not ok:
            raise HealthCheckFailed(f"the previous app was put back but does not answer: {detail}")

    return Step("replace", action,
                describe=[replace_argv(remote, run_argv(None), has_current=True),
                          f"stdin: the app's env file (0600 at {remote.app_env_file})"],
                undo=undo, undo_describe=[restore_argv(remote)])


# --------------------------------------------------------------------------- health


def http_status(url: str, timeout: float) -> tuple[int | None, str]:
    req = urllib.request.Request(url, headers={"User-Agent": "conveyor"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - our URL
            return resp.status, resp.read(2048).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2048).decode(errors="replace") if exc.fp else ""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{type(reason).__name__}: {reason}"


def container_state(remote: Remote, name: str) -> dict[str, Any] | None:
    r = remote.transport.run(docker.inspect(name, "{{json .State}} {{.RestartCount}}"),
                             check=False, timeout=60)
    if r.returncode != 0:
        return None
    state_json, _, restarts = r.stdout.strip().rpartition(" ")
    try:
        state = json.loads(state_json)
    except ValueError:
        return None
    state["RestartCount"] = int(restarts) if restarts.isdigit() else 0
    return state


def wait_healthy(remote: Remote, timeout: float) -> tuple[bool, str]:
    """Poll the health URL from this machine until it answers the expected status (bounded).
    Every few seconds the container's state is read too: one that exited or restarts ends the
    wait early. (ok, what happened)."""
    hc = remote.app.health
    url = remote.health_url
    t0 = time.monotonic()
    deadline = t0 + timeout
    next_state_check = t0 + 2.0
    last = "no attempt"
    attempts = 0
    while True:
        attempts += 1
        status, body = http_status(url, timeout=max(0.5, min(5.0, deadline - time.monotonic())))
        if status == hc.expect_status:
            return True, f"{url} answered {status} after {time.monotonic() - t0:.2f}s"
        last = f"HTTP {status}: {body.strip()[:200]}" if status else body
        now = time.monotonic()
        if now >= deadline:
            break
        if now >= next_state_check:
            next_state_check = now + 3.0
            state = container_state(remote, remote.app_container)
            if state is None or state.get("Status") in ("exited", "dead") or \
                    state.get("RestartCount", 0) > 0:
                what = ("is gone" if state is None else
                        f"is {state.get('Status')} (exit code {state.get('ExitCode')}, "
                        f"restarted {state.get('RestartCount', 0)} times)")
                return False, (f"{url} did not answer {hc.expect_status}: the container "
                               f"{what}; last answer: {last}")
        time.sleep(min(hc.interval, max(0.0, deadline - time.monotonic())))
    return False, (f"{url} did not answer {hc.expect_status} within {timeout:g} s "
                   f"({attempts} attempts): {last}")


def health_step(remote: Remote) -> Step:
    hc = remote.app.health
    url = remote.health_url

    def action(ctx: StepContext) -> None:
        ok, detail = wait_healthy(remote, hc.timeout)
        if ok:
            ctx.note(detail)
            return
        logs = remote.transport.run(docker.logs(remote.app_container, tail=40), check=False,
                                    timeout=60)
        for line in (logs.stdout + logs.stderr).splitlines():
            ctx.log(f"[{remote.app_container}] {line}")
        raise HealthCheckFailed(
            detail,
            hint="the previous app container is put back; the new one is kept as "
            f"{remote.failed_container} (`conveyor logs {remote.name} app` shows its log)")

    return Step("health", action, describe=[f"GET {url} until HTTP {hc.expect_status} "
                                            f"(every {hc.interval:g} s, at most {hc.timeout:g} s)"])


# --------------------------------------------------------------------------- tests


def is_pytest(argv: list[str]) -> bool:
    if not argv:
        return False
    first = os.path.basename(argv[0])
    return first in ("pytest", "py.test") or (
        first.startswith("python") and len(argv) > 2 and argv[1] == "-m" and argv[2] == "pytest")


def test_command(remote: Remote, junit: Path | None) -> list[str]:
    argv = list(remote.env.test_command)
    if junit is not None and is_pytest(argv):
        argv.append(f"--junitxml={junit}")
    return argv


def test_step(remote: Remote, project_dir: Path, *, junit: Path | None,
              deployment_id: str, image: ImageRef) -> Step:
    from conveyor.transport import LocalTransport

    argv = test_command(remote, junit)
    env = {"APP_URL": remote.url, "CONVEYOR_ENV": remote.name,
           "CONVEYOR_DEPLOYMENT": deployment_id, "CONVEYOR_IMAGE": image.ref}

    def action(ctx: StepContext) -> None:
        t0 = time.monotonic()
        try:
            r = LocalTransport(cwd=project_dir).run(argv, env=env, check=False, stream=ctx.log,
                                                    timeout=remote.env.test_timeout)
            rc = r.returncode
        except ConveyorError as exc:  # not found, timed out
            ctx.log(str(exc))
            rc = 127
        duration = time.monotonic() - t0
        summary = junit_summary(junit) if junit is not None and junit.exists() else None
        if junit is not None and not is_pytest(argv):
            write_command_junit(junit, argv, rc, ctx.output, duration, suite=f"{remote.name}")
            summary = junit_summary(junit)
        tests = {"ok": rc == 0, "exit_code": rc, "command": shlex.join(argv),
                 **(summary or {})}
        ctx.values["tests"] = tests
        counts = ", ".join(f"{tests[k]} {k}" for k in ("passed", "failed", "errors", "skipped")
                           if tests.get(k))
        if rc != 0:
            ctx.values["tests_failed"] = True
            ctx.note(f"FAILED (exit {rc}{'; ' + counts if counts else ''})")
        else:
            ctx.note(counts or "passed")

    return Step("test", action, describe=[
        f"APP_URL={remote.url} " + shlex.join(argv) + f"   (locally, in {project_dir})"])


def junit_summary(path: Path) -> dict[str, Any] | None:
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = failures = errors = skipped = 0
    cases = []
    for s in suites:
        total += int(s.get("tests", 0))
        failures += int(s.get("failures", 0))
        errors += int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
        cases += [f"{c.get('classname')}.{c.get('name')}" for c in s.iter("testcase")]
    return {"tests": total, "passed": total - failures - errors - skipped, "failed": failures,
            "errors": errors, "skipped": skipped, "cases": cases}


def write_command_junit(path: Path, argv: list[str], rc: int, output: list[str],
                        duration: float, suite: str) -> None:
    """A JUnit file for a test command that is not pytest: one case, the command itself."""
    import xml.etree.ElementTree as ET

    ts = ET.Element("testsuite", name=f"conveyor {suite}", tests="1",
                    failures="0" if rc == 0 else "1", errors="0", skipped="0",
                    time=f"{duration:.3f}")
    case = ET.SubElement(ts, "testcase", classname=f"conveyor.{suite}", name=shlex.join(argv),
                         time=f"{duration:.3f}")
    text = "\n".join(output[-200:])
    if rc != 0:
        ET.SubElement(case, "failure", message=f"exit code {rc}").text = text
    ET.SubElement(case, "system-out").text = text
    path.parent.mkdir(parents=True, exist_ok=True)
    root = ET.Element("testsuites")
    root.append(ts)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


# --------------------------------------------------------------------------- record


def record_step(remote: Remote) -> Step:
    """Write the deployment record and release the lock, in one round trip (the lock is
    released even when the record cannot be written)."""

    def action(ctx: StepContext) -> None:
        record: DeploymentRecord = ctx.values["record"]
        lock_id = ctx.values.get("lock_id") or ""
        full = remote.redactor(record.as_dict())
        line = json.dumps(remote.redactor(record.summary()), default=str)
        data = line + "\n" + json.dumps(full, indent=1, default=str) + "\n"
        r = remote.transport.run(record_argv(remote, record.id, lock_id), input=data,
                                 timeout=120, check=False)
        if lock_id and r.returncode != 3:
            ctx.values["lock_id"] = None
        if r.returncode != 0:
            raise ConveyorError(
                f"could not write the deployment record on {remote.host}"
                + (" (the lock was not ours any more)" if r.returncode == 3 else "")
                + f": {_tail(r.stderr + r.stdout)}",
                hint=f"check with `conveyor lock status {remote.name}`")
        ctx.note(remote.record_file(record.id) + ("; lock released" if lock_id else ""))

    return Step("record", action, describe=[
        shown(record_argv(remote, "<deployment id>", "<deployment id>")),
        "stdin: the deployment record (JSON, redacted)"])


def read_history(remote: Remote, limit: int = 20) -> list[dict[str, Any]]:
    r = remote.transport.run(["tail", "-n", str(limit), remote.history_file], check=False,
                             timeout=60)
    out = []
    for line in r.stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def read_record(remote: Remote, deployment_id: str) -> dict[str, Any]:
    if deployment_id in ("last", "latest"):
        entries = read_history(remote, 1)
        if not entries:
            raise ConveyorError(f"{remote.name} has no deployments recorded yet")
        deployment_id = entries[-1]["id"]
    if not all(c.isalnum() or c in "-_" for c in deployment_id):
        raise ConveyorError(f"not a deployment id: {deployment_id!r}")
    r = remote.transport.run(["cat", remote.record_file(deployment_id)], check=False, timeout=60)
    if r.returncode != 0:
        raise ConveyorError(f"no deployment {deployment_id} on {remote.name}",
                            hint=f"`conveyor history {remote.name}` lists them")
    return json.loads(r.stdout)


# --------------------------------------------------------------------------- plans


@dataclass
class DeployOptions:
    project_dir: Path
    wait: bool = False
    wait_timeout: float = 900.0
    run_tests: bool = True
    junit: Path | None = None


@dataclass
class Deployment:
    """A planned deployment: the main plan, the plan that always runs after it, its record."""

    remote: Remote
    image: ImageRef
    record: DeploymentRecord
    main: Plan
    finalize: Plan
    values: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> list[dict[str, Any]]:
        return self.main.describe() + [
            {**d, "step": d["step"] + " (always)"} for d in self.finalize.describe()]


def acquire_steps(remote: Remote, image: ImageRef, lock: dict[str, Any], *, wait: bool,
                  wait_timeout: float) -> list[Step]:
    """The opening of every deployment plan: take the host lock, log in to the registry when
    credentials are configured, pull the image by digest (before anything stops)."""
    steps = [lock_step(remote, lock, wait=wait, wait_timeout=wait_timeout, image=image)]
    login = login_step(remote)
    if login:
        steps.append(login)
    steps.append(pull_step(remote, image))
    return steps


def deploy_plans(remote: Remote, image: ImageRef, opts: DeployOptions, *,
                 deployment_id: str | None = None, kind: str = "deploy") -> Deployment:
    """The dev stage: lock, pull by digest, migrate in a temporary container of the new image,
    replace the app container, wait for health, run the tests; then (always) record + unlock."""
    from conveyor.records import new_id

    did = deployment_id or new_id()
    record = DeploymentRecord(id=did, app=remote.app.name, env=remote.name, kind=kind,
                              who=actor(), started_at=time.time(), image=image.ref,
                              revision=image.revision, url=remote.url,
                              options={"wait": opts.wait, "tests": opts.run_tests})
    info = lock_info(did, image, f"{kind} {remote.name} {image.ref}")
    steps = acquire_steps(remote, image, info, wait=opts.wait, wait_timeout=opts.wait_timeout)
    steps += [migrate_step(remote, image, did), replace_step(remote, image, did),
              health_step(remote)]
    if opts.run_tests and remote.env.test_command:
        steps.append(test_step(remote, opts.project_dir, junit=opts.junit, deployment_id=did,
                               image=image))
    main = Plan(f"{kind} {remote.name}", steps)
    finalize = Plan(f"{kind} {remote.name}: finalize", [record_step(remote)])
    return Deployment(remote, image, record, main, finalize)


def run_deployment(dep: Deployment, emit) -> Any:
    """Execute the main plan, then always the finalize plan (record + unlock).

    Returns the main plan's PlanResult; its `error` (if any) is for the caller to raise after
    reporting. A failing test command is not an error of the plan: `values["tests_failed"]`.
    """
    from conveyor.pipeline import execute
    from conveyor.records import step_entries

    values = dep.values
    values["record"] = dep.record
    result = execute(dep.main, emit, values, raise_on_failure=False)
    rec = dep.record
    rec.finished_at = time.time()
    rec.steps = step_entries(result.steps)
    current = values.get("current") or {}
    cur_labels = ((current.get("Config") or {}).get("Labels") or {}) if current else {}
    rec.previous_image = cur_labels.get("conveyor.image") or (
        (current.get("Config") or {}).get("Image") if current else None)
    rec.previous_revision = cur_labels.get(REVISION_LABEL)
    rec.revision = values.get("image_revision") or rec.revision
    rec.migrations_applied = values.get("migrations_applied", [])
    rec.tests = values.get("tests")
    if result.error is not None:
        rec.result = "failed"
        rec.error = dep.remote.redactor(str(result.error))
    elif values.get("tests_failed"):
        rec.result = "tests-failed"
        rec.error = "the tests failed against the deployed app"
        for s in rec.steps:
            if s["name"] == "test":
                s["status"] = "failed"
    else:
        rec.result = "ok"
    if not values.get("lock_id"):
        # the lock was not taken (held by another deployment, host unreachable): nothing was
        # done on the host, and there is no record to write under someone else's lock
        return result
    # each finalize step runs whatever happened to the one before it
    values["finalize_results"] = [
        execute(Plan(dep.finalize.name, [step]), emit, values, raise_on_failure=False)
        for step in dep.finalize.steps]
    if values.get("lock_id"):  # the record step could not release it: try once more
        execute(Plan(dep.finalize.name, [unlock_step(remote=dep.remote)]), emit, values,
                raise_on_failure=False)
    return result


# --------------------------------------------------------------------------- setup


def setup_plan(remote: Remote) -> Plan:
    steps: list[Step] = []
    labels_net = remote.labels("network")
    labels_vol = remote.labels("db-volume")

    if remote.managed_db:
        db = remote.env.database
        assert isinstance(db, ContainerDatabase) and remote.network and remote.db_volume
        net_argv = sh(docker.network_inspect(remote.network), ">/dev/null", "2>&1", "||",
                      docker.network_create(remote.network, labels_net))
        vol_argv = sh(docker.volume_inspect(remote.db_volume), ">/dev/null", "2>&1", "||",
                      docker.volume_create(remote.db_volume, labels_vol))
        run_db = docker.run(db.image, name=remote.db_container, detach=True,
                            network=remote.network, restart="unless-stopped",
                            env_file=remote.db_env_file,
                            volumes=[f"{remote.db_volume}:/var/lib/postgresql/data"],
                            labels=remote.labels("db"))
        db_argv = sh(("umask", "077"), "&&", ("mkdir", "-p", remote.state_dir), "&&", ("cat",),
                     ">", (remote.db_env_file,), "&&",
                     "{", docker.inspect(remote.db_container, "{{.Id}}"), ">/dev/null", "2>&1",
                     "||", run_db, ">/dev/null", ";", "}", "&&",
                     docker.start(remote.db_container), ">/dev/null", "&&",
                     docker.inspect(remote.db_container, "{{.Config.Image}} {{.State.Status}}"))

        def network(ctx: StepContext) -> None:
            _run(remote, ctx, net_argv, timeout=120)
            ctx.note(remote.network)

        def volume(ctx: StepContext) -> None:
            _run(remote, ctx, vol_argv, timeout=120)
            ctx.note(remote.db_volume)

        def database(ctx: StepContext) -> None:
            contents = env_file(remote.db_env(), f"environments.{remote.name}.database")
            r = _run(remote, ctx, db_argv, input=contents, timeout=600)
            image_now, _, status = r.stdout.strip().rpartition(" ")
            if image_now != db.image:
                ctx.note(f"kept the existing container (image {image_now}; setup never "
                         f"recreates the database)")
            else:
                ctx.note(f"{remote.db_container} {status}")

        ready_argv = docker.exec_(remote.db_container, ["pg_isready", "-h", "127.0.0.1",
                                                        "-p", "5432", "-U", db.user,
                                                        "-d", db.name])

        def ready(ctx: StepContext) -> None:
            deadline = time.monotonic() + 120
            while True:
                r = remote.transport.run(ready_argv, check=False, timeout=60)
                if r.returncode == 0:
                    ctx.note("accepting connections")
                    return
                if time.monotonic() > deadline:
                    raise ConveyorError(
                        f"the database container {remote.db_container} did not become ready "
                        f"in 120 s: {_tail(r.stdout + r.stderr)}",
                        hint=f"`conveyor logs {remote.name} db` shows its log")
                time.sleep(0.5)

        steps += [
            Step("network", network, describe=[net_argv]),
            Step("volume", volume, describe=[vol_argv]),
            Step("database", database, describe=[
                db_argv, f"stdin: the database env file (0600 at {remote.db_env_file})"]),
            Step("ready", ready, describe=[ready_argv]),
        ]
    else:
        assert isinstance(remote.env.database, UrlDatabase)
        argv = ("mkdir", "-p", remote.state_dir)

        def state(ctx: StepContext) -> None:
            _run(remote, ctx, argv, timeout=60)
            ctx.note("database reached by URL: nothing to create")

        steps.append(Step("state dir", state, describe=[argv]))
    return Plan(f"setup {remote.name}", steps)


# --------------------------------------------------------------------------- status / logs

STATUS_SCRIPT = """\
echo '::app::'
docker container inspect --format '{{json .}}' "$2" 2>/dev/null || echo null
echo '::previous::'
docker container inspect --format '{{json .State}}' "$3" 2>/dev/null || echo null
if [ -n "$4" ]; then
  echo '::db::'
  docker container inspect --format '{{json .}}' "$4" 2>/dev/null || echo null
fi
echo '::lock::'
cat "$1/lock/holder.json" 2>/dev/null || { [ -d "$1/lock" ] && echo '{}'; } || echo null
echo '::last::'
tail -n 1 "$1/history.jsonl" 2>/dev/null || echo null
echo
"""
SCRIPT_NAMES[STATUS_SCRIPT] = "<status script: inspect the app, previous and db containers; " \
    "the lock holder; the last history line>"


def status_argv(remote: Remote) -> tuple[str, ...]:
    return ("sh", "-c", STATUS_SCRIPT, "conveyor-status", remote.state_dir, remote.app_container,
            remote.previous_container, remote.db_container or "")


def _container_summary(c: dict[str, Any] | None) -> dict[str, Any] | None:
    if not c:
        return None
    state = c.get("State") or {}
    config = c.get("Config") or {}
    labels = config.get("Labels") or {}
    image = labels.get("conveyor.image") or config.get("Image")
    return {
        "name": (c.get("Name") or "").lstrip("/"),
        "id": (c.get("Id") or "")[:12],
        "state": state.get("Status"),
        "health": (state.get("Health") or {}).get("Status"),
        "started_at": state.get("StartedAt"),
        "restarts": c.get("RestartCount", 0),
        "image": image,
        "digest": image.split("@", 1)[1] if image and "@" in image else None,
        "image_id": c.get("Image"),
        "revision": labels.get(REVISION_LABEL),
        "deployment": labels.get("conveyor.deployment"),
    }


def migration_status(remote: Remote, image_ref: str) -> dict[str, Any]:
    """Applied/pending migrations and drift, by the engine in a temporary container of the
    running image (its migrations are the ones deployed). Read-only."""
    mcfg = remote.cfg.migrations
    if mcfg.command:
        return {"ok": False, "error": "migrations.command is set: conveyor's engine does not "
                "know this project's migration tool", "applied": [], "pending": [], "drift": []}
    argv = remote_migrate.engine_argv(image_ref, name=None, network=remote.network,
                                      labels=remote.labels("migrate-status"))
    stdin = remote_migrate.engine_stdin("status", remote.database_url(), mcfg.container_dir,
                                        lock_timeout=mcfg.lock_timeout, applied_by=actor())
    r = remote.transport.run(argv, input=stdin, check=False, timeout=120)
    parsed = remote_migrate.parse_output(r.stdout)
    res = parsed.result
    if not res or not res.get("ok"):
        res = res or {}
        return {"ok": False, "error": res.get("text") or res.get("message")
                or _tail(r.stderr or r.stdout), "applied": [], "pending": [], "drift": []}
    return {"ok": True,
            "applied": [{"version": a["version"], "name": a["name"], "state": a["state"],
                         "applied_at": a.get("applied_at") or a.get("run_on")}
                        for a in res.get("applied", [])],
            "pending": [{"version": p["version"], "name": p["name"]}
                        for p in res.get("pending", [])],
            "drift": res.get("problems", [])}


def gather_status(remote: Remote, *, migrations: bool = True) -> dict[str, Any]:
    """Everything `conveyor status ENV` shows, as plain data (redacted)."""
    out: dict[str, Any] = {"environment": remote.name, "host": remote.host, "url": remote.url,
                           "kind": "remote"}
    r = remote.transport.run(status_argv(remote), check=False, timeout=60)
    sections = _parse_sections(r.stdout)
    app = _container_summary(sections.get("app"))
    out["app"] = app or {"name": remote.app_container, "state": "missing"}
    prev = sections.get("previous")
    out["previous"] = ({"name": remote.previous_container, "state": prev.get("Status")}
                       if prev else None)
    if remote.managed_db:
        db = _container_summary(sections.get("db"))
        out["db"] = db or {"name": remote.db_container, "state": "missing"}
    else:
        out["db"] = {"kind": "url"}
    out["lock"] = sections.get("lock")
    out["last_deployment"] = sections.get("last")
    status, body = http_status(remote.health_url, timeout=5.0)
    out["health"] = {"url": remote.health_url, "ok": status == remote.app.health.expect_status,
                     "status": status, "error": None if status else body}
    if migrations and app and app.get("image") and app.get("state") == "running" and (
            not remote.managed_db or (out["db"].get("state") == "running")):
        out["migrations"] = migration_status(remote, app["image"])
    else:
        out["migrations"] = {"ok": False, "error": "no running app (or database) to ask",
                             "applied": [], "pending": [], "drift": []}
    return remote.redactor(out)


def last_migrate_output(remote: Remote) -> tuple[dict[str, Any] | None, list[str]]:
    """The kept output of the newest recorded deployment that ran a migrate step."""
    for entry in reversed(read_history(remote, 200)):
        # the newest deployment whose migrate step has output (it ran the container, or failed)
        if any(s.get("name") == "migrate" and (s.get("lines") or s.get("status") != "ok")
               for s in entry.get("steps", [])):
            rec = read_record(remote, entry["id"])
            step = next(s for s in rec["steps"] if s["name"] == "migrate")
            lines = list(step.get("output") or [])
            if step.get("error"):
                lines.append(step["error"])
            return rec, lines
    return None, []
