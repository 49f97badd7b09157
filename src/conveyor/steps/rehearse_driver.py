"""Runs inside the rehearsal's temporary container of conveyor's runner image (`python -m
conveyor.steps.rehearse_driver`, on the database's network), against the scratch database the
rehearse step restored. In ONE process, no round trip of the step's own:

    the lock sampler   a second connection to the scratch database reads pg_locks every
                       `sample_every` s while the migrations run; what each migration held and
                       waited for is printed as `LOCKS_MARK` + JSON ({"migrations": {name:
                       {lock_wait_ms, lock_waits, locks}}, "error": ...}) once they end
    the migrations     conveyor's engine, exactly as the migrate step runs it
                       (`migrate_driver.main`: its progress lines, then its result line)
    the drop           whatever the migrations did: a connection to the server's maintenance
                       database ends the scratch database's sessions and drops it, then
                       `DROPPED_MARK` (or `DROP_FAILED_MARK` + why: the step drops it then)

The header (one JSON line on stdin) is the migrate driver's, plus `scratch` (the database to
drop: its name must hold `_rehearse_`), `maintenance_db` and `sample_every`. The step drops
the scratch database itself whenever `DROPPED_MARK` is missing (this process failed, its
container was removed, ...).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

LOCKS_MARK = "::conveyor-rehearse-locks::"
DROPPED_MARK = "::conveyor-rehearse-dropped::"
DROP_FAILED_MARK = "::conveyor-rehearse-drop-failed::"
SAMPLER = "conveyor-rehearse-locks"  # the sampler's application_name

LOCKS_SQL = ("SELECT l.pid, l.mode, c.relname, l.granted FROM pg_locks l "
             "JOIN pg_database d ON d.oid = l.database "
             "LEFT JOIN pg_class c ON c.oid = l.relation "
             "WHERE d.datname = %s AND l.locktype = 'relation' AND l.pid <> pg_backend_pid()")


class Sampler(threading.Thread):
    """pg_locks of the scratch database every `every` s, on its own connection."""

    def __init__(self, url: str, scratch: str, every: float, maintenance_url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.scratch, self.every = url, scratch, every
        self.maintenance_url = maintenance_url
        self.maintenance: Any = None  # the drop's connection, opened while the migrations run
        self.samples: list[tuple[float, str, str, bool]] = []  # (time, mode, relation, granted)
        self.error: str | None = None
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True, application_name=SAMPLER,
                                 prepare_threshold=None) as conn:
                try:
                    self.maintenance = psycopg.connect(self.maintenance_url, autocommit=True,
                                                       prepare_threshold=None)
                except (psycopg.Error, OSError):
                    pass  # drop() connects (and reports) again
                while not self.done.is_set():
                    t = time.time()
                    for _pid, mode, rel, granted in conn.execute(LOCKS_SQL, (self.scratch,)):
                        if rel and not rel.startswith("pg_"):
                            self.samples.append((t, str(mode), str(rel), bool(granted)))
                    self.done.wait(self.every)
        except (psycopg.Error, OSError) as exc:  # a report: it never fails the rehearsal
            from conveyor.masking import mask_secrets

            self.error = mask_secrets(" ".join(str(exc).split()))

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)

    def between(self, t0: float, t1: float) -> dict[str, Any]:
        """Lock waits (not granted) and the locks held per table in [t0, t1]."""
        waits: dict[str, float] = {}
        held: dict[str, set[str]] = {}
        for t, mode, rel, granted in list(self.samples):
            if not t0 <= t <= t1:
                continue
            if granted:
                held.setdefault(rel, set()).add(mode)
            else:
                waits[rel] = waits.get(rel, 0.0) + self.every
        return {"lock_wait_ms": round(sum(waits.values()) * 1000),
                "lock_waits": {k: round(v * 1000) for k, v in waits.items()},
                "locks": {k: sorted(v) for k, v in held.items()}}


class Marks:
    """stdout, passed through, noting when each `applying NAME ...` line was printed."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.pending = out, ""
        self.marks: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            if line.startswith("applying ") and line.endswith(" ..."):
                self.marks.append((time.time(), line[len("applying "):-4]))
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


def with_database(url: str, name: str) -> str:
    from urllib.parse import quote, urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path="/" + quote(name, safe="")))


def drop(url: str, scratch: str, conn: Any = None) -> None:
    """End the scratch database's sessions and drop it (on `conn` when the sampler opened it)."""
    import psycopg
    from psycopg import sql

    if conn is None or conn.closed:
        conn = psycopg.connect(url, autocommit=True, prepare_threshold=None)
    with conn:
        conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (scratch,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(scratch)))


def main(header: dict[str, Any]) -> int:
    import psycopg

    from conveyor.masking import mask_secrets
    from conveyor.steps import migrate_driver

    scratch = str(header["scratch"])
    if "_rehearse_" not in scratch:
        raise SystemExit(f"not a scratch database: {scratch!r}")
    maintenance_url = with_database(header["database_url"],
                                    header.get("maintenance_db") or "postgres")
    sampler = Sampler(header["database_url"], scratch, float(header.get("sample_every", 0.05)),
                      maintenance_url)
    sampler.start()
    real, marks = sys.stdout, Marks(sys.stdout)
    sys.stdout = marks
    try:
        rc = migrate_driver.main(header)
    finally:
        sys.stdout = real
        end = time.time()
        sampler.stop()
        windows = [(t, name, marks.marks[i + 1][0] if i + 1 < len(marks.marks) else end)
                   for i, (t, name) in enumerate(marks.marks)]
        locks = {name: sampler.between(t0, t1) for t0, name, t1 in windows}
        print(LOCKS_MARK + json.dumps({"migrations": locks, "error": sampler.error}),
              flush=True)
        try:
            drop(maintenance_url, scratch, sampler.maintenance)
        except (psycopg.Error, OSError) as exc:
            print(DROP_FAILED_MARK + mask_secrets(" ".join(str(exc).split())), flush=True)
        else:
            print(DROPPED_MARK, flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.stdin.readline())))
