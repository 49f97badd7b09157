"""Runs inside a temporary container of conveyor's runner image (`python -m
conveyor.steps.migrate_driver`, see `conveyor.steps.migrate_engine`): applies the pending
migrations, reverts exactly the given ones, or reports their status, with conveyor's engine,
and ends with one machine-readable result line. The header comes as one JSON line on stdin.

Progress lines go to stdout as they happen; the last line is `RESULT_MARK` followed by a
JSON object.
"""

from __future__ import annotations

import json
import sys

RESULT_MARK = "::conveyor-result::"


def _pending_names(pending) -> str:
    return ", ".join(m.name for m in pending) or "none"


class NotNewest(Exception):
    pass


def _revert_exactly(migrator, want: list) -> dict:
    """Revert exactly `want` (newest first), which must be the newest applied migrations."""
    newest = [a.version for a in reversed(migrator.status().applied)][:len(want)]
    if newest != want:
        raise NotNewest(f"the newest applied migrations are {newest}, expected {want}: "
                        "nothing was reverted")
    return migrator.revert(len(want)).to_dict()


def main(header: dict) -> int:
    from conveyor.migrations import MigrationError, Migrator

    # the engine announces every migration of a batch before the first one ends: the
    # announcements are held so that the output reads in order (applying X, applied X, ...)
    held: list[str] = []
    in_flight: list[str] = []

    def announce(name: str) -> None:
        verb = "reverting" if command == "revert" else "applying"
        print(f"{verb} {name} ...", flush=True)
        in_flight.append(name)

    def on_event(event: str, **data) -> None:
        if event == "plan" and "pending" in data:
            pending = data["pending"]
            print(f"{len(pending)} pending migration(s): {_pending_names(pending)}", flush=True)
            for problem in data.get("problems") or []:
                print(f"note: {problem}", flush=True)
        elif event == "start":
            if in_flight:
                held.append(str(data.get("name")))
            else:
                announce(str(data.get("name")))
        elif event == "done":
            step = data.get("step")
            if step is not None:
                ms = f" ({step.duration_ms:.0f} ms)" if step.duration_ms is not None else ""
                done = "reverted" if command == "revert" else "applied"
                print(f"{done} {step.name}{ms}", flush=True)
                in_flight.clear()
                if held:
                    announce(held.pop(0))

    command = header.get("command", "run")
    migrator = Migrator(header["database_url"], header["migration_dir"],
                        lock_timeout=float(header.get("lock_timeout", 60)),
                        applied_by=header.get("applied_by"), on_event=on_event)
    try:
        if command == "run":
            result = migrator.run(allow_drift=bool(header.get("allow_drift"))).to_dict()
            if not result["applied"]:
                print("nothing to migrate", flush=True)
        elif command == "discover":
            from conveyor.migrations import discover

            result = {"migrations": [{"version": m.version, "name": m.name,
                                      "checksum": m.checksum}
                                     for m in discover(header["migration_dir"])]}
        elif command == "revert":
            result = _revert_exactly(migrator, list(header["versions"]))
        elif command == "status":
            result = migrator.status().to_dict()
            for p in result["pending"]:
                p.pop("up_sql", None)
        else:
            raise SystemExit(f"unknown command {command!r}")
        out = {"ok": True, **result}
    except NotNewest as exc:
        out = {"ok": False, "error": "NotNewest", "message": str(exc)}
    except MigrationError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        out = {"ok": False, **exc.to_dict(), "text": str(exc)}
    print(RESULT_MARK + json.dumps(out, default=str), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.stdin.readline())))
