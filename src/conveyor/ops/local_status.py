"""`conveyor status` of the local environment: containers and their health, one probe of the
app's health URL, applied and pending migrations, drift between the files and the database."""

from __future__ import annotations

from typing import Any

from conveyor.migrations import MigrationError, Migrator
from conveyor.reports.status import DB_DOWN_LOCAL, DRIFT, UNHEALTHY, blocking, worst_code
from conveyor.steps.compose_file import resolve_services
from conveyor.steps.docker_engine import check_docker
from conveyor.steps.local_containers import project_containers
from conveyor.steps.local_db import with_connect_timeout
from conveyor.steps.local_health import probe
from conveyor.targets.local import LocalStack
from conveyor.transport import Transport


def gather_status(stack: LocalStack, transport: Transport) -> dict[str, Any]:
    """The local environment's status as data (the `conveyor status --json` object)."""
    _, compose = check_docker(transport.run)
    services, _ = resolve_services(stack, compose, transport.run)
    out: dict[str, Any] = {"environment": stack.env_name, "project": stack.project,
                           "url": stack.app_url, "compose": compose.display}
    containers = project_containers(stack, transport.run)
    rows = []
    for svc, image in services.items():
        mine = [c for c in containers if c.service == svc]
        if not mine:
            rows.append({"service": svc, "state": "absent", "health": None, "image": image,
                         "status": "", "ports": ""})
        for c in mine:
            rows.append({"service": svc, "state": c.state, "health": c.health, "image": c.image,
                         "status": c.status, "ports": c.ports, "id": c.id[:12]})
    out["containers"] = rows
    out["health"] = probe(stack.health_url, stack.cfg.app.health.expect_status)
    if stack.cfg.migrations.command:  # the project's own tool: its status, not the engine's
        from conveyor.steps.local_migrate import tool_status

        db = next((c.id for c in containers if c.service == stack.db_service), None)
        out["migrations"] = tool_status(stack, transport.run, services.get(stack.app_service),
                                        db)
    else:
        out["migrations"] = migration_status(stack)
    out["problems"] = status_problems(out, stack.app_service, stack.db_service)
    out["exit_code"] = worst_code(out["problems"])
    return out


def status_problems(d: dict[str, Any], app_service: str, db_service: str | None
                    ) -> list[dict[str, Any]]:
    """What makes the local status fail, each with its exit code (`conveyor.reports.status`)."""
    out: list[dict[str, Any]] = []
    for row in d["containers"]:
        if row["state"] == "running" and row.get("health") != "unhealthy":
            continue
        state = row["state"] if row.get("health") != "unhealthy" else "unhealthy"
        if db_service and row["service"] == db_service:
            out.append({"code": DB_DOWN_LOCAL,
                        "text": f"the {db_service} service is {state}"})
        elif row["service"] == app_service:
            out.append({"code": UNHEALTHY,
                        "text": f"the {app_service} service is {state}"})
    h = d["health"]
    if not h["ok"]:
        out.append({"code": UNHEALTHY,
                    "text": f"GET {h['url']} -> {h.get('error') or h.get('status')}"})
    for p in d["migrations"].get("drift") or []:
        if blocking(p):
            out.append({"code": DRIFT, "text": p.get("message", str(p))})
    return out


def migration_status(stack: LocalStack) -> dict[str, Any]:
    try:
        st = Migrator(with_connect_timeout(stack.database_url(), 3),
                      stack.cfg.migrations_dir).status()
    except MigrationError as exc:
        return {"ok": False, "error": str(exc)}
    return {
        "ok": True,
        "applied": [{"version": a.version, "name": a.migration.name if a.migration else a.name,
                     "state": a.state, "run_on": a.run_on} for a in st.applied],
        "pending": [{"version": m.version, "name": m.name} for m in st.pending],
        "drift": [p.to_dict() for p in st.problems],
    }
