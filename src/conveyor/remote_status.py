"""`conveyor status ENV` and `conveyor logs ENV migrate` for a remote environment: what runs on
the host, its health, its migrations and its last deployment, read-only.

`gather_status` asks the host once (host/status.sh: the containers, the lock, the last
deployment, the runner's journal, the applied migrations and the migration files of the app's
image), while the app's health check runs beside it."""

from __future__ import annotations

import base64
import binascii
import json
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from conveyor import host
from conveyor.commands import docker
from conveyor.config import Config, ContainerDatabase
from conveyor.errors import ConveyorError
from conveyor.http import http_get
from conveyor.imageref import REVISION_LABEL
from conveyor.migrations import queries
from conveyor.reports.status import DB_DOWN_REMOTE, DRIFT, UNHEALTHY, blocking, worst_code
from conveyor.targets.remote import Remote, ssh_target, tail
from conveyor.transport import SshTransport, Transport

_MARKER = re.compile(r"::([a-z-]+)::(?: (.*))?")


def parse_sections(text: str) -> dict[str, tuple[str, list[str]]]:
    """status.sh's output: each section's name -> (the words after its marker, its non-empty
    lines)."""
    out: dict[str, tuple[str, list[str]]] = {}
    lines: list[str] | None = None
    for line in text.splitlines():
        m = _MARKER.fullmatch(line)
        if m:
            lines = []
            out[m.group(1)] = (m.group(2) or "", lines)
        elif lines is not None and line.strip():
            lines.append(line)
    return out


def _json_line(section: tuple[str, list[str]] | None) -> Any:
    """A section of one line of JSON (null, or missing: None)."""
    if not section or not section[1]:
        return None
    try:
        return json.loads(section[1][-1])
    except ValueError:
        return None


def _b64(lines: list[str]) -> str:
    try:
        return base64.b64decode("".join(lines)).decode(errors="replace")
    except (binascii.Error, ValueError):
        return ""


def _containers(section: tuple[str, list[str]] | None) -> dict[str, dict[str, Any]]:
    """The `containers` section: each container's inspect JSON by its name."""
    out: dict[str, dict[str, Any]] = {}
    for line in (section or ("", []))[1]:
        try:
            c = json.loads(line)
        except ValueError:
            continue
        if isinstance(c, dict):
            out[(c.get("Name") or "").lstrip("/")] = c
    return out


def runner_name(remote: Remote) -> str:
    return f"{remote.app.name}-{remote.name}-runner"


def proxy_name(remote: Remote) -> str | None:
    if remote.env.strategy != "zero-downtime":
        return None
    return remote.app_container.removesuffix("-app") + "-proxy"


def status_argv(remote: Remote, *, migrations: bool = True) -> tuple[str, ...]:
    """status.sh for `remote`: with `migrations`, also the applied-migrations query (a managed
    database) and the migration files of the app's image (conveyor's own engine)."""
    db = remote.env.database
    q = db if migrations and isinstance(db, ContainerDatabase) and remote.db_container else None
    files = migrations and not remote.cfg.migrations.command
    labels = [a for k, v in remote.labels("inspect").items() for a in ("--label", f"{k}={v}")]
    return host.argv("status", remote.state_dir, remote.app_container,
                     remote.previous_container, remote.db_container or "", runner_name(remote),
                     proxy_name(remote) or "", q.user if q else "", q.name if q else "",
                     queries.APPLIED_SQL if q else "",
                     remote.cfg.migrations.container_dir if files else "",
                     *(labels if files else ()))


def runner_summary(runner: dict[str, Any] | None,
                   last: dict[str, Any] | None) -> dict[str, Any] | None:
    """The environment's runner: a deployment in progress, or one interrupted (its runner
    stopped before the journal's end: the next command recovers it)."""
    if not runner:
        return None
    state, labels = runner.get("state") or {}, runner.get("labels") or {}
    finished = last is not None and last.get("event") == "run_finished"
    return {"deployment": labels.get("conveyor.deployment"), "who": labels.get("conveyor.who"),
            "what": labels.get("conveyor.what"), "since": labels.get("conveyor.since"),
            "running": bool(state.get("Running")), "finished": finished,
            "interrupted": not state.get("Running") and not finished,
            "step": (last or {}).get("step"), "last_event": (last or {}).get("event")}


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


def _unknown(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error, "applied": [], "pending": [], "drift": []}


def applied_argv(remote: Remote) -> tuple[str, ...] | None:
    """psql in the database container running the applied-migrations query (None: the
    database is reached by URL). status.sh runs the same."""
    db = remote.env.database
    if not isinstance(db, ContainerDatabase) or not remote.db_container:
        return None
    return docker.exec_(remote.db_container, [
        "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", db.user, "-d", db.name, "-c",
        queries.APPLIED_SQL])


def rows_from(returncode: int, stdout: str, stderr: str) -> list[str] | None:
    """The applied-migrations query's rows from psql's answer; no table yet is "nothing
    applied" ([]); any other failure is unknown (None)."""
    if returncode != 0:
        return [] if '"__diesel_schema_migrations" does not exist' in stderr else None
    return stdout.splitlines()


def applied_rows(remote: Remote) -> list[str] | None:
    """The applied-migrations query's rows, read now by psql in the database container; None
    when unknown (or the database is reached by URL). The one reader of them besides the lock
    step's and status's round trips (`steps.pending.applied_now` gives their versions)."""
    argv = applied_argv(remote)
    if argv is None:
        return None
    r = remote.transport.run(argv, check=False, timeout=60)
    return rows_from(r.returncode, r.stdout, r.stderr)


def status_from(rows: list[str], migrations: list[Any]) -> dict[str, Any]:
    """Applied, pending and drift from the database's rows and the image's migration files."""
    parsed = queries.parse_applied(rows)
    if parsed is None:
        return _unknown("cannot read the database's applied migrations")
    files = {m.version: m for m in migrations}
    applied, drift = [], []
    for row in parsed:
        if not row.in_diesel:
            continue
        m = files.get(row.version)
        applied.append({"version": row.version, "name": m.name if m else row.name or "",
                        "state": "applied" if m else "missing",
                        "applied_at": row.applied_at or row.run_on})
        if m is None:
            drift.append({"kind": "missing", "version": row.version,
                          "message": f"{row.version} is applied but not in the image"})
        elif row.checksum and row.checksum != m.checksum:
            drift.append({"kind": "edited", "version": row.version,
                          "message": f"{m.name} was edited after it was applied"})
    done = {a["version"] for a in applied}
    pending = [{"version": m.version, "name": m.name} for m in migrations if m.version not in done]
    return {"ok": True, "applied": applied, "pending": pending, "drift": drift}


def migration_status(remote: Remote, image_ref: str) -> dict[str, Any]:
    """Applied/pending migrations and drift against the serving image's migrations. Read-only:
    the rows by psql in the database container, the files copied out of the image (no
    temporary container runs); a database reached by URL: the engine in conveyor's runner
    image."""
    mcfg = remote.cfg.migrations
    if mcfg.command:  # the project's own tool: its status output, never the engine's view
        from conveyor.steps.foreign_remote import tool_status

        return tool_status(remote, image_ref)
    from conveyor.steps.image import fetch_image_migrations

    with tempfile.TemporaryDirectory(prefix="conveyor-status-") as tmp:
        try:
            migrations = fetch_image_migrations(remote, image_ref, Path(tmp))
        except ConveyorError as exc:
            return _unknown(str(exc))
    return _status_of(remote, image_ref, migrations, applied_rows(remote))


def _status_of(remote: Remote, image_ref: str, migrations: list[Any],
               rows: list[str] | None) -> dict[str, Any]:
    """Applied/pending/drift from the image's migrations and the database's rows; a database
    reached by URL: the engine in conveyor's runner image."""
    from conveyor.records import actor
    from conveyor.steps import migrate_engine as engine

    mcfg = remote.cfg.migrations
    if rows is not None:
        return status_from(rows, migrations)
    if remote.managed_db:
        return _unknown("cannot read the applied migrations in the database container")
    files = f"{remote.state_dir}/status/migrations"
    remote.transport.run(engine.copy_out_argv(remote, image_ref, files), check=False,
                         timeout=300)
    argv = engine.engine_argv(engine.engine_image(remote), files, name=None,
                              network=remote.network, labels=remote.labels("migrate-status"))
    stdin = engine.engine_stdin("status", remote.database_url(), lock_timeout=mcfg.lock_timeout,
                                applied_by=actor())
    r = remote.transport.run(argv, input=stdin, check=False, timeout=120)
    res = engine.parse_output(r.stdout).result
    if not res or not res.get("ok"):
        res = res or {}
        return _unknown(res.get("text") or res.get("message") or tail(r.stderr or r.stdout))
    return {"ok": True,
            "applied": [{"version": a["version"], "name": a["name"], "state": a["state"],
                         "applied_at": a.get("applied_at") or a.get("run_on")}
                        for a in res.get("applied", [])],
            "pending": [{"version": p["version"], "name": p["name"]}
                        for p in res.get("pending", [])],
            "drift": res.get("problems", [])}


def _section_migrations(remote: Remote, image_ref: str,
                        sections: dict[str, tuple[str, list[str]]]) -> dict[str, Any]:
    """migration_status from status.sh's `files` and `applied` sections (no further round
    trip for a managed database); without them (the project's own tool): migration_status."""
    files = sections.get("files")
    if remote.cfg.migrations.command or files is None:
        return migration_status(remote, image_ref)
    # imported once the host has answered: `start_early` begins the round trip first
    from conveyor.steps.image import unpack_image_migrations

    err = sections.get("files-err", ("", []))[1]
    with tempfile.TemporaryDirectory(prefix="conveyor-status-") as tmp:
        try:
            migrations = unpack_image_migrations(
                image_ref, remote.cfg.migrations.container_dir, _code(files[0]),
                "".join(files[1]), _b64(err), Path(tmp))
        except ConveyorError as exc:
            return _unknown(str(exc))
    applied = sections.get("applied")
    rows = None
    if applied is not None:
        rows = rows_from(_code(applied[0]), _b64(applied[1]),
                         _b64(sections.get("applied-err", ("", []))[1]))
    return _status_of(remote, image_ref, migrations, rows)


def _code(word: str) -> int:
    try:
        return int(word)
    except ValueError:
        return 1


def gather_status(remote: Remote, *, migrations: bool = True) -> dict[str, Any]:
    """Everything `conveyor status ENV` shows, as plain data (redacted): one round trip to the
    host (status.sh), the health check beside it."""
    out: dict[str, Any] = {"environment": remote.name, "host": remote.host, "url": remote.url,
                           "kind": "remote"}
    answer: list[tuple[int | None, str]] = []
    probe = threading.Thread(target=lambda: answer.append(http_get(remote.health_url,
                                                                   timeout=5.0)), daemon=True)
    probe.start()
    try:
        r = remote.transport.run(status_argv(remote, migrations=migrations), check=False,
                                 timeout=60)
    finally:
        probe.join()
    sections = parse_sections(r.stdout)
    containers = _containers(sections.get("containers"))
    app = _container_summary(containers.get(remote.app_container))
    out["app"] = app or {"name": remote.app_container, "state": "missing"}
    prev = (containers.get(remote.previous_container) or {}).get("State")
    out["previous"] = ({"name": remote.previous_container, "state": prev.get("Status")}
                       if prev else None)
    if remote.managed_db:
        db = _container_summary(containers.get(remote.db_container or ""))
        out["db"] = db or {"name": remote.db_container, "state": "missing"}
    else:
        out["db"] = {"kind": "url"}
    out["lock"] = _json_line(sections.get("lock"))
    out["last_deployment"] = _json_line(sections.get("last"))
    runner = containers.get(runner_name(remote))
    out["runner"] = runner_summary(
        {"state": runner.get("State"), "labels": (runner.get("Config") or {}).get("Labels")}
        if runner else None, _json_line(sections.get("journal")))
    proxy = proxy_name(remote)
    if proxy:  # the reverse proxy (steps/proxy.py)
        out["proxy"] = _container_summary(containers.get(proxy)) or {"state": "missing"}
    status, body = answer[0] if answer else (None, "no answer")
    out["health"] = {"url": remote.health_url, "ok": status == remote.app.health.expect_status,
                     "status": status, "error": None if status else body}
    if migrations and app and app.get("image") and app.get("state") == "running" and (
            not remote.managed_db or (out["db"].get("state") == "running")):
        out["migrations"] = _section_migrations(remote, app["image"], sections)
    else:
        out["migrations"] = {"ok": False, "error": "no running app (or database) to ask",
                             "applied": [], "pending": [], "drift": []}
    out["problems"] = status_problems(out)
    out["exit_code"] = worst_code(out["problems"])
    return remote.redactor(out)


# --------------------------------------------------------------------------- one environment


def _one_round_trip(remote: Remote) -> Transport:
    """status asks each host once: one SSH connection of its own, no master, no session."""
    return SshTransport(ssh_target(remote.cfg, remote.name), direct_first=True)


def status_data(cfg: Config, env_name: str) -> dict[str, Any]:
    """One remote environment's status as data (`gather_status`), the answer of the round
    trip `start_early` began if there is one. An error that keeps the status from being read
    is kept as data: its message, hint, kind (`unreachable` only for a host that cannot be
    reached) and exit code."""
    early = _EARLY.pop((str(cfg.root_dir), env_name), None)
    return early.result() if early is not None else _status_data(cfg, env_name)


def _status_data(cfg: Config, env_name: str) -> dict[str, Any]:
    remote = None
    try:
        remote = Remote(cfg, env_name, transport_factory=_one_round_trip)
        data = gather_status(remote)
    except ConveyorError as exc:
        env = cfg.environment(env_name)
        data = {"environment": env_name, "host": getattr(remote, "host", None) or env.host,
                "url": _url(remote, cfg, env_name), "kind": "remote",
                "error": str(exc), "error_kind": error_kind(exc), "hint": exc.hint,
                "problems": [{"code": exc.exit_code, "text": str(exc)}],
                "exit_code": exc.exit_code}
    finally:
        if remote is not None:
            remote.close()
    return data


def _url(remote: Remote | None, cfg: Config, env_name: str) -> str | None:
    try:
        return remote.url if remote is not None else cfg.environment(env_name).app_url(cfg.app)
    except Exception:  # noqa: BLE001 - the URL is a courtesy in an error line
        return None


def error_kind(exc: Exception) -> str:
    """How `conveyor status` names an error that kept it from reading an environment."""
    from conveyor.errors import ConfigError, HostKeyError, HostUnreachable

    if isinstance(exc, HostUnreachable):
        return "unreachable"
    if isinstance(exc, HostKeyError):
        return "host key refused"
    if isinstance(exc, ConfigError):
        return "configuration"
    return "error"


# --------------------------------------------------------------------------- early start


class _Early:
    """One environment's status, gathered in a thread of its own."""

    def __init__(self, cfg: Config, env_name: str) -> None:
        self._done = threading.Event()
        self._data: dict[str, Any] | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(cfg, env_name), daemon=True).start()

    def _run(self, cfg: Config, env_name: str) -> None:
        try:
            self._data = _status_data(cfg, env_name)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of result()
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> dict[str, Any]:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._data is not None
        return self._data


_EARLY: dict[tuple[str, str], _Early] = {}


def start_early(argv: list[str]) -> None:
    """`conveyor status ENV...` (argv: the whole command line): start each remote
    environment's round trip now, before the rest of the CLI (Typer, rich, every command's
    module) is imported, so the SSH connection is made meanwhile; `status_data` takes the
    answer. Best effort: a word it does not know (`--help`, a typo), no config, an unknown
    environment, and nothing starts: the command itself then does what it always does."""
    from conveyor.transport.prewarm import environments

    project, names = environments(argv)
    if not names:
        return
    try:
        from conveyor.config import load_config

        cfg = load_config(Path(project))
        remote = [n for n in dict.fromkeys(names) if cfg.environment(n).is_remote]
    except Exception:  # noqa: BLE001 - the command itself reports it
        return
    # what the threads import lazily, imported here: never a module half-imported by the
    # CLI's import in the main thread meanwhile
    from conveyor.migrations import discovery, errors  # noqa: F401
    for name in remote:
        _EARLY[(str(cfg.root_dir), name)] = _Early(cfg, name)


# --------------------------------------------------------------------------- exit status

def status_problems(d: dict[str, Any]) -> list[dict[str, Any]]:
    """What makes a remote environment's status fail, each with its exit code and one line."""
    out: list[dict[str, Any]] = []
    db = d.get("db") or {}
    if db.get("kind") != "url" and db.get("state") != "running":
        out.append({"code": DB_DOWN_REMOTE, "text": f"the database container {db.get('name')} is "
                    f"{db.get('state') or 'missing'}"})
    app = d.get("app") or {}
    if app.get("state") != "running":
        out.append({"code": UNHEALTHY, "text": f"the app container {app.get('name')} is "
                    f"{app.get('state') or 'missing'}"})
    elif app.get("health") == "unhealthy":
        out.append({"code": UNHEALTHY, "text": f"the app container {app.get('name')} is "
                    "unhealthy (its HEALTHCHECK)"})
    h = d.get("health") or {}
    if not h.get("ok"):
        out.append({"code": UNHEALTHY, "text": f"GET {h.get('url')} -> "
                    f"{h.get('status') or h.get('error')}"})
    m = d.get("migrations") or {}
    for p in m.get("drift") or []:
        if blocking(p):
            out.append({"code": DRIFT, "text": p.get("message") or str(p)})
    return out


def last_migrate_output(remote: Remote) -> tuple[dict[str, Any] | None, list[str]]:
    """The kept output of the newest recorded deployment that ran a migrate step."""
    from conveyor.steps.record import read_history, read_record

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
