"""`conveyor status ENV` and `conveyor logs ENV migrate` for a remote environment: what runs on
the host, its health, its migrations and its last deployment, read-only."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from conveyor import host
from conveyor.commands import docker
from conveyor.config import ContainerDatabase
from conveyor.errors import ConveyorError
from conveyor.http import http_get
from conveyor.imageref import REVISION_LABEL
from conveyor.migrations import queries
from conveyor.records import actor
from conveyor.reports.status import DB_DOWN_REMOTE, DRIFT, UNHEALTHY, blocking, worst_code
from conveyor.steps import migrate_engine as engine
from conveyor.steps.image import fetch_image_migrations
from conveyor.steps.record import read_history, read_record
from conveyor.targets.remote import Remote, tail


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


def status_argv(remote: Remote) -> tuple[str, ...]:
    return host.argv("status", remote.state_dir, remote.app_container,
                     remote.previous_container, remote.db_container or "",
                     f"{remote.app.name}-{remote.name}-runner",
                     *([remote.app_container.removesuffix("-app") + "-proxy"]
                       if remote.env.strategy == "zero-downtime" else []))


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


def applied_rows(remote: Remote) -> list[str] | None:
    """The applied-migrations query's rows, read by psql in the database container."""
    db = remote.env.database
    if not isinstance(db, ContainerDatabase) or not remote.db_container:
        return None
    r = remote.transport.run(docker.exec_(remote.db_container, [
        "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", db.user, "-d", db.name, "-c",
        queries.APPLIED_SQL]), check=False, timeout=60)
    if r.returncode != 0:
        # no table yet is "nothing applied"; anything else is unknown
        return [] if '"__diesel_schema_migrations" does not exist' in r.stderr else None
    return r.stdout.splitlines()


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
    with tempfile.TemporaryDirectory(prefix="conveyor-status-") as tmp:
        try:
            migrations = fetch_image_migrations(remote, image_ref, Path(tmp))
        except ConveyorError as exc:
            return _unknown(str(exc))
    rows = applied_rows(remote)
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
    out["runner"] = runner_summary(sections.get("runner"), sections.get("journal"))
    if remote.env.strategy == "zero-downtime":  # the reverse proxy (steps/proxy.py)
        out["proxy"] = _container_summary(sections.get("proxy")) or {"state": "missing"}
    status, body = http_get(remote.health_url, timeout=5.0)
    out["health"] = {"url": remote.health_url, "ok": status == remote.app.health.expect_status,
                     "status": status, "error": None if status else body}
    if migrations and app and app.get("image") and app.get("state") == "running" and (
            not remote.managed_db or (out["db"].get("state") == "running")):
        out["migrations"] = migration_status(remote, app["image"])
    else:
        out["migrations"] = {"ok": False, "error": "no running app (or database) to ask",
                             "applied": [], "pending": [], "drift": []}
    out["problems"] = status_problems(out)
    out["exit_code"] = worst_code(out["problems"])
    return remote.redactor(out)


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
