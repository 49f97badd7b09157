"""The rehearse step: the pending migrations run first on a scratch restore of the fresh
pre-deploy backup, on the same PostgreSQL server, while prod keeps serving untouched. Two
commands on the host, whatever the number of tables and migrations:

    rehearse.sh restore   ONE `docker exec` of the database's container: free disk >= twice
                          the dump, CREATE DATABASE <db>_rehearse_<id>, pg_restore the backup
                          step's dump into it, count its rows (checked here against the counts
                          the backup step took in the dump); dropped there if that fails
    the driver            ONE temporary container of the runner image on the database's
                          network (`conveyor.steps.rehearse_driver`): a lock sampler (pg_locks,
                          its own connection), conveyor's engine as the migrate step runs it
                          (DATABASE_URL = the scratch database), then the drop of the scratch
                          database, whatever the migrations did; each migration's duration and
                          the locks it waited for / held are recorded
    rehearse.sh drop      only when the driver did not say it dropped it (it failed or did not
                          run: a bad restore, a killed container), and as the step's undo (a
                          killed runner's recovery drops it)

With `migrations.command` (a project's own tool, in the app image) the tool runs instead, a
psql beside it samples the locks (`LockSampler`), and `rehearse.sh drop` drops.

A failure (the restore, the counts, a migration on prod's data) stops the deploy before the app
is stopped: the error names the migration, the statement and the data problem, row contents
masked. The rehearsal's migration time, plus the stop/start/health of the last deployment,
predicts the downtime of a `recreate` deploy (`--max-downtime` refuses more).

`rehearse = "auto"` (the default) rehearses a database below `rehearse_max_size`
(pg_database_size); `"always"`, `"never"`; a skipped rehearsal says why.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Self
from urllib.parse import quote, urlsplit, urlunsplit

from conveyor import host
from conveyor.commands import docker
from conveyor.errors import BackupFailed, ConfigError, ConveyorError, MigrationStepFailed
from conveyor.imageref import ImageRef
from conveyor.masking import mask_row_data
from conveyor.plan import Step, StepIO
from conveyor.records import actor
from conveyor.state.deploy import DeployState, ProdOptions
from conveyor.steps import foreign_remote
from conveyor.steps import migrate_engine as engine
from conveyor.steps import rehearse_driver as rd
from conveyor.steps.backup import human_size
from conveyor.steps.migrate import copy_out
from conveyor.targets.remote import Remote, tail

NO_SPACE, RESTORE_FAILED, COUNT_FAILED = 30, 33, 34
SAMPLE_EVERY = 0.05  # the lock sampler's period (s)
SAMPLER = "conveyor-rehearse-locks"  # its application_name


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def scratch_name(remote: Remote, deployment_id: str) -> str:
    db = remote.managed_database("rehearsals")
    return f"{db.name[:30]}_rehearse_{deployment_id.lower().replace('-', '_')}"


def scratch_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


def count_sql(rows: dict[str, int]) -> str:
    """One `COUNT|TABLE` row per table the dump held (names as pg_dump wrote them)."""
    return "".join(f"SELECT count(*), {literal(t)} FROM ONLY {t};\n" for t in sorted(rows))


def rehearse_argv(remote: Remote, mode: str, scratch: str, dump: str = "") -> tuple[str, ...]:
    db = remote.managed_database("rehearsals")
    create = (f"CREATE DATABASE {ident(scratch)} OWNER {ident(db.user)} TEMPLATE template0"
              if mode == "restore" else "")
    end = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
           f"{literal(scratch)} AND pid <> pg_backend_pid()")
    return host.argv("rehearse", mode, remote.db_container or "", db.user, scratch, dump, create,
                     end, f"DROP DATABASE IF EXISTS {ident(scratch)}")


def size_argv(remote: Remote) -> tuple[str, ...]:
    db = remote.managed_database("rehearsals")
    return docker.exec_(remote.db_container or "", [
        "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", db.user, "-d", db.name, "-c",
        "SELECT pg_database_size(current_database())"])


def sampler_argv(remote: Remote, scratch: str) -> tuple[str, ...]:
    db = remote.managed_database("rehearsals")
    return docker.exec_(remote.db_container or "", [  # in it: pg_class names its tables
        "psql", "-XAtq", "-U", db.user, "-d", scratch], interactive=True,
        env={"PGAPPNAME": SAMPLER})


def sampler_sql(scratch: str) -> str:
    """pg_locks of the scratch database's sessions every SAMPLE_EVERY s (psql's \\watch), until
    the sampler's session is ended: `epoch|pid|mode|relation|granted`."""
    return ("SELECT extract(epoch FROM clock_timestamp()), l.pid, l.mode, c.relname, l.granted "
            "FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            f"LEFT JOIN pg_class c ON c.oid = l.relation WHERE d.datname = {literal(scratch)} "
            "AND l.locktype = 'relation' AND l.pid <> pg_backend_pid() "
            f"AND coalesce(a.application_name, '') <> {literal(SAMPLER)}\n"
            f"\\watch {SAMPLE_EVERY}\n")


def stop_sampler_argv(remote: Remote, scratch: str) -> tuple[str, ...]:
    db = remote.managed_database("rehearsals")
    return docker.exec_(remote.db_container or "", [
        "psql", "-XAtq", "-U", db.user, "-d", "postgres", "-c",
        ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
         f"application_name = {literal(SAMPLER)} AND datname = {literal(scratch)} "
         "AND pid <> pg_backend_pid()")])


# --------------------------------------------------------------------------- decisions


def skip_reason(remote: Remote, st: DeployState, io: StepIO,
                always: bool = False) -> str | None:
    """Why this deploy is not rehearsed (None: rehearse). `always`: on demand."""
    env = remote.env
    mode = "always" if always else env.rehearse
    if mode == "never":
        return f'rehearse = "never" for {remote.name}'
    if not remote.managed_db:
        if mode == "always":
            raise ConfigError(f'rehearse = "always", but {remote.name}\'s database is reached '
                              "by URL: a rehearsal restores into a scratch database of a "
                              "conveyor-managed one", file=remote.cfg.file,
                              key=f"environments.{remote.name}.rehearse")
        return "the database is reached by URL (a rehearsal needs a conveyor-managed one)"
    if st.pending == [] and not remote.cfg.migrations.command:
        return "nothing pending: nothing to rehearse"
    if mode == "auto":
        r = io.run(size_argv(remote), check=False, timeout=60)
        out = r.stdout.strip()
        if r.returncode != 0 or not out.isdigit():
            return f"the database's size cannot be read ({tail(r.stderr + r.stdout)})"
        size, limit = int(out), int(env.rehearse_max_size)
        if size > limit:
            return (f"the database is {human_size(size)}, above rehearse_max_size "
                    f"{human_size(limit)} (rehearse = \"always\" rehearses it anyway)")
    return None


def stop_start_basis(remote: Remote, io: StepIO) -> dict[str, Any] | None:
    """stop + start + health of the last successful deployment that stopped the app."""
    r = io.run(("tail", "-n", "50", remote.history_file), check=False, timeout=60)
    for line in reversed(r.stdout.splitlines()):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        steps = {s.get("name"): s for s in rec.get("steps") or []}
        if rec.get("result") == "ok" and {"stop", "start", "health"} <= set(steps):
            seconds = sum(float(steps[n].get("duration") or 0) for n in ("stop", "start",
                                                                          "health"))
            return {"deployment": rec.get("id"), "seconds": round(seconds, 3)}
    return None


# --------------------------------------------------------------------------- lock sampling


class LockSampler:
    """pg_locks of the scratch database, sampled while the migrations run (a thread around one
    psql session that `\\watch`es; ended by terminating that session)."""

    def __init__(self, remote: Remote, io: StepIO, scratch: str) -> None:
        self.remote, self.io, self.scratch = remote, io, scratch
        self.samples: list[tuple[float, int, str, str, bool]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _line(self, line: str) -> None:
        parts = line.split("|")
        if len(parts) == 5:
            try:
                self.samples.append((float(parts[0]), int(parts[1]), parts[2], parts[3],
                                     parts[4] == "t"))
            except ValueError:
                pass

    def _run(self) -> None:
        assert self.io.transport is not None
        self.io.transport.run(sampler_argv(self.remote, self.scratch),
                              input=sampler_sql(self.scratch), stream=self._line, check=False,
                              timeout=3600)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for _ in range(3):
            assert self.io.transport is not None
            self.io.transport.run(stop_sampler_argv(self.remote, self.scratch), check=False,
                                  timeout=60)
            self.thread.join(timeout=5)
            if not self.thread.is_alive():
                return

    def between(self, t0: float, t1: float) -> dict[str, Any]:
        """Lock waits (not granted) and the strongest lock held per table in [t0, t1]."""
        waits: dict[str, float] = {}
        held: dict[str, set[str]] = {}
        for t, _pid, mode, rel, granted in self.samples:
            if not (t0 <= t <= t1) or not rel or rel.startswith("pg_"):
                continue
            if granted:
                held.setdefault(rel, set()).add(mode)
            else:
                waits[rel] = waits.get(rel, 0.0) + SAMPLE_EVERY
        return {"lock_wait_ms": round(sum(waits.values()) * 1000),
                "lock_waits": {k: round(v * 1000) for k, v in waits.items()},
                "locks": {k: sorted(v) for k, v in held.items()}}


# --------------------------------------------------------------------------- the step


def _counts_problem(expected: dict[str, int], got: dict[str, int]) -> str | None:
    wrong = [f"{t}: {got.get(t, 'missing')} rows restored, {n} in the dump"
             for t, n in sorted(expected.items()) if got.get(t) != n]
    return "; ".join(wrong[:10]) + (f" (and {len(wrong) - 10} more)" if len(wrong) > 10
                                     else "") if wrong else None


def _failure_text(res: dict[str, Any], fallback: str) -> str:
    if res.get("error") == "MigrationFailed":
        stmt = " ".join(str(res.get("statement") or "").split())
        stmt = stmt if len(stmt) <= 200 else stmt[:197] + "..."
        where = (f" ({res.get('file')}:{res.get('line')})" if res.get("file") and
                 res.get("line") else "")
        text = (f"migration {res.get('name') or res.get('version')}{where}: "
                f"{str(res.get('message') or '').strip()}"
                + (f" Detail: {str(res['detail']).rstrip('.')}." if res.get("detail") else "")
                + (f" Statement: {stmt}" if stmt else ""))
    else:
        text = str(res.get("text") or res.get("message") or fallback)
    return mask_row_data(text)


class Background:
    """A command of the step run while the restore runs (the copy-out of the migrations):
    `wait()` joins it, re-raises its error, and gives how long it took."""

    def __init__(self, fn: Any) -> None:
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Any) -> None:
        t0 = time.monotonic()
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised by wait(), in the step's thread
            self.error = exc
        self.seconds = time.monotonic() - t0

    def wait(self) -> float:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.seconds


def driver_files(remote: Remote, image: ImageRef, did: str, io: StepIO) -> None:
    """The image's migrations, copied out for the driver's container (as the migrate step)."""
    copy_out(remote, io, image.ref, engine.migrations_dir(remote, did))


def driver(remote: Remote, image: ImageRef, did: str, url: str, scratch: str,
           allow_drift: bool = False) -> tuple[tuple[str, ...], bytes]:
    """The rehearsal driver (`conveyor.steps.rehearse_driver`: the lock sampler, conveyor's
    engine, the drop of the scratch database, in one process) in a temporary container of the
    runner image: its argv and its header (the URL only on stdin, never in an argv)."""
    mcfg = remote.cfg.migrations
    argv = docker.run(engine.engine_image(remote), name=remote.container_name("rehearse", did),
                      rm=True, interactive=True, network=remote.network,
                      labels=remote.labels("rehearse", **{"conveyor.deployment": did}),
                      volumes=[f"{engine.migrations_dir(remote, did)}:{engine.ENGINE_DIR}:ro"],
                      entrypoint="python", command=("-m", "conveyor.steps.rehearse_driver"))
    header = json.loads(engine.engine_stdin(
        "run", url, lock_timeout=mcfg.lock_timeout,
        applied_by=f"{actor()} via conveyor rehearse {remote.name}"))
    header.update(scratch=scratch, maintenance_db="postgres", sample_every=SAMPLE_EVERY)
    if allow_drift:
        header["allow_drift"] = True
    return argv, json.dumps(header).encode() + b"\n"


def _entries(marks: list[tuple[float, str]], wall1: float, res: dict[str, Any],
             locks: Any) -> list[dict[str, Any]]:
    """One entry per migration the engine started: its duration, and its locks (`locks`:
    the driver's per-name figures, or a LockSampler)."""
    done = {s.get("name"): s for s in res.get("applied") or []}
    migrations = []
    for i, (t, mname) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else wall1
        step = done.get(mname)
        entry: dict[str, Any] = {"name": mname, "ok": step is not None,
                                 "duration_ms": (step or {}).get("duration_ms")
                                 or round((end - t) * 1000, 1)}
        if isinstance(locks, LockSampler):
            entry.update(locks.between(t, end))
        else:
            entry.update(locks.get(mname) or {"lock_wait_ms": 0, "lock_waits": {},
                                              "locks": {}})
        migrations.append(entry)
    return migrations


def _migrate(remote: Remote, image: ImageRef, did: str, url: str, scratch: str, io: StepIO,
             files: Background | None, allow_drift: bool = False) -> dict[str, Any]:
    """The pending migrations on the scratch database. Conveyor's engine: ONE container (the
    driver samples the locks and drops the scratch database itself: `dropped`). A project's
    own tool (`migrations.command`, the app image): the LockSampler's psql beside it; the
    step drops the scratch database."""
    mcfg = remote.cfg.migrations
    marks: list[tuple[float, str]] = []
    found: dict[str, Any] = {"dropped": False, "locks": {}}

    def sink(line: str) -> None:
        if line.startswith(engine.RESULT_MARK):  # the migrations ended (the drop follows)
            found["ended"] = time.monotonic()
            return
        if line.startswith(rd.LOCKS_MARK):
            try:
                found["locks"] = json.loads(line[len(rd.LOCKS_MARK):])
            except ValueError:
                pass
            return
        if line.startswith(rd.DROPPED_MARK):
            found["dropped"] = True
            io.log(f"dropped the scratch database {scratch}")
            return
        if line.startswith(rd.DROP_FAILED_MARK):
            io.log(f"the driver could not drop {scratch}: {line[len(rd.DROP_FAILED_MARK):]}")
            return
        if line.startswith("applying ") and line.endswith(" ..."):
            marks.append((time.time(), line[len("applying "):-4]))
        io.log(line)

    assert io.transport is not None
    t_copy = time.monotonic()
    sampler: LockSampler | None = None
    if mcfg.command:
        name = remote.container_name("rehearse", did)
        env_path = f"{remote.state_dir}/rehearse-{did}.env"
        run = host.argv("with_env_file", env_path, *engine.user_command_argv(
            image.ref, mcfg.command, name=name, network=remote.network, env_file=env_path,
            labels=remote.labels("rehearse", **{"conveyor.deployment": did})))
        # the app's environment (its settings, secrets), on the scratch database
        stdin = foreign_remote.env_stdin(remote, url)
        sampler = LockSampler(remote, io, scratch)
    else:
        # the copy-out ran beside the restore: its own duration counts (the migrate step's
        # copy-out comes after the app stopped)
        copy_s = files.wait() if files is not None else 0.0
        run, stdin = driver(remote, image, did, url, scratch, allow_drift)
        t_copy = time.monotonic() - copy_s
    t0 = time.monotonic()
    wall0 = time.time()
    if sampler is not None:
        with sampler:
            r = io.transport.run(run, input=stdin, stream=sink, check=False, timeout=None)
    else:
        r = io.transport.run(run, input=stdin, stream=sink, check=False, timeout=None)
    wall1 = time.time()
    res = engine.parse_output(r.stdout).result or {}
    if not marks and mcfg.command:  # a foreign tool: one entry for the whole command
        marks.append((wall0, "migrations.command"))
    lock_info = found["locks"] if isinstance(found["locks"], dict) else {}
    if lock_info.get("error"):
        io.log(f"the lock sampler stopped: {lock_info['error']}")
    migrations = _entries(marks, wall1, res, sampler if sampler is not None
                          else lock_info.get("migrations") or {})
    return {"returncode": r.returncode, "result": res, "migrations": migrations,
            "copy_s": round(t0 - t_copy, 3),
            "migrate_s": round(found.get("ended", time.monotonic()) - t0, 3),
            "wall": (wall0, wall1), "output": tail(r.stderr + r.stdout),
            "dropped": found["dropped"]}


def rehearse(remote: Remote, image: ImageRef, did: str, opts: ProdOptions | None,
             st: DeployState, io: StepIO, always: bool = False) -> None:
    details = getattr(st.record, "details", None)
    reason = skip_reason(remote, st, io, always)
    info: dict[str, Any] = {"rehearsed": reason is None}
    if reason is not None:
        info["skipped"] = reason
        if st.pending == [] and not remote.cfg.migrations.command:
            info["migrate_s"] = 0.0
    else:
        t0 = time.monotonic()
        info.update(run_rehearsal(remote, image, did, st, io))
        info["total_s"] = round(time.monotonic() - t0, 3)
    if "migrate_s" in info:
        basis = stop_start_basis(remote, io)
        stop_start = basis["seconds"] if basis else 0.0
        info["predicted_downtime"] = round(info["migrate_s"] + info.get("copy_s", 0.0)
                                           + stop_start, 2)
        info["basis"] = (f"migrations {info['migrate_s']:.2f} s in the rehearsal + stop/start/"
                         f"health {stop_start:.2f} s of deployment {basis['deployment']}"
                         if basis else f"migrations {info['migrate_s']:.2f} s in the rehearsal "
                         "(no earlier deployment to measure stop/start/health)")
    st.rehearsal = info
    if details is not None:
        details["rehearsal"] = info
    limit = opts.max_downtime if opts is not None else None
    if "predicted_downtime" in info:
        io.log(f"predicted downtime of a recreate deploy: {info['predicted_downtime']:.2f} s "
               f"({info['basis']})")
    if limit is not None:
        if "predicted_downtime" not in info:
            raise ConveyorError(f"--max-downtime {limit:g} s cannot be checked: the rehearsal "
                                f"was skipped ({reason})", hint="nothing was stopped; set "
                                f'rehearse = "always" for {remote.name}, or deploy without '
                                "--max-downtime")
        if info["predicted_downtime"] > limit:
            raise ConveyorError(
                f"the predicted downtime of this deploy is {info['predicted_downtime']:.2f} s "
                f"({info['basis']}), more than --max-downtime {limit:g} s",
                hint="nothing was stopped: the previous version keeps serving. Make the "
                "migrations faster (batches, CONCURRENTLY), deploy in a quieter hour with a "
                "larger --max-downtime, or use strategy = \"zero-downtime\"")
    if reason is not None:
        io.note(f"skipped: {reason}" + (f"; predicted downtime {info['predicted_downtime']:.2f} s"
                                        if "predicted_downtime" in info else ""))
    else:
        io.note(f"{len(info['migrations'])} migration(s) passed on a restored copy "
                f"({info['rows']} rows in {info['tables']} tables) in {info['migrate_s']:.2f} s;"
                f" predicted downtime {info['predicted_downtime']:.2f} s")


def run_rehearsal(remote: Remote, image: ImageRef, did: str, st: DeployState,
                  io: StepIO) -> dict[str, Any]:
    backup = st.backup or {}
    if not backup.get("file"):
        raise ConveyorError("no fresh backup to rehearse on (the backup step did not run)")
    scratch = scratch_name(remote, did)
    expected: dict[str, int] = backup.get("rows") or {}
    t0 = time.monotonic()
    dropped = False  # by the driver, when it ran
    # the image's migrations are copied out for the driver while the restore runs
    files = None if remote.cfg.migrations.command else \
        Background(lambda: driver_files(remote, image, did, io))
    try:
        r = io.run(rehearse_argv(remote, "restore", scratch, backup["file"]),
                   input=count_sql(expected), check=False, timeout=None)
        restored = time.monotonic()
        got: dict[str, int] = {}
        for line in r.stdout.splitlines():
            if line.startswith("::space:: "):
                free, needed = (int(x) for x in line.split()[1:3])
                io.log(f"free disk {human_size(free * 1024)}, needed {human_size(needed * 1024)}"
                       " (twice the dump)")
            elif "|" in line and not line.startswith("::"):
                count, table = line.split("|", 1)
                got[table] = int(count)
        if r.returncode == NO_SPACE:
            raise ConveyorError(f"not enough free disk on {remote.host} to rehearse: "
                                f"{tail(r.stderr)}", hint="nothing was stopped. Free space "
                                "where the database keeps its data, or set rehearse = "
                                f'"never" for {remote.name}')
        if r.returncode in (RESTORE_FAILED, COUNT_FAILED):
            what = "does not restore" if r.returncode == RESTORE_FAILED else \
                "restored without all of its tables"
            raise BackupFailed(f"the fresh backup {backup.get('id')} {what} into a scratch "
                               f"database: {mask_row_data(tail(r.stderr + r.stdout))}",
                               hint="nothing was stopped; the rehearsal was not run")
        if r.returncode != 0:
            raise ConveyorError(f"the rehearsal's scratch restore failed (exit {r.returncode}):"
                                f" {tail(r.stderr + r.stdout)}", hint="nothing was stopped")
        problem = _counts_problem(expected, got)
        if problem:
            raise BackupFailed(f"the fresh backup {backup.get('id')} restored with other row "
                               f"counts than it was dumped with: {problem}",
                               hint="nothing was stopped; the rehearsal was not run")
        rows = sum(got.values())
        io.log(f"restored {backup.get('id')} into {scratch}: {len(got)} tables, {rows} rows, "
               "as counted in the dump" if expected else
               f"restored {backup.get('id')} into {scratch} (the dump's row counts unknown)")
        url = scratch_url(remote.database_url(), scratch)
        m = _migrate(remote, image, did, url, scratch, io, files,
                     allow_drift=bool(st.record.options.get("allow_drift")))
        dropped = m["dropped"]
        info = {"database": scratch, "backup": backup.get("id"), "tables": len(got),
                "rows": rows, "restore_s": round(restored - t0, 3), "copy_s": m["copy_s"],
                "migrate_s": m["migrate_s"], "migrations": m["migrations"]}
        if m["returncode"] != 0:
            text = _failure_text(m["result"], m["output"])
            info["failed"] = text
            st.rehearsal = info
            details = getattr(st.record, "details", None)
            if details is not None:
                details["rehearsal"] = info
            raise MigrationStepFailed(
                f"the rehearsal on a restored copy of {remote.name}'s fresh backup "
                f"({rows} rows) refused the deploy: {text}",
                hint=f"nothing on {remote.name} was stopped or changed: the previous version "
                "keeps serving. Fix the data or the migration (e.g. a migration that cleans the "
                f"data first) and deploy again; `conveyor rehearse {remote.name}` tries it "
                "without deploying")
    except BaseException:
        if files is not None:
            files.thread.join()  # nothing of the step's own keeps running after it
        if not dropped:
            try:
                drop_scratch(remote, io, scratch)
            except ConveyorError as exc:  # the first error is the one to report
                io.log(str(exc))
        raise
    if not dropped:
        drop_scratch(remote, io, scratch)
    return info


def drop_scratch(remote: Remote, io: StepIO, scratch: str) -> None:
    r = io.run(rehearse_argv(remote, "drop", scratch), check=False, timeout=600)
    if r.returncode != 0:
        raise ConveyorError(f"could not drop the scratch database {scratch}: {tail(r.stderr)}",
                            hint=f"drop it by hand: DROP DATABASE {ident(scratch)}")
    io.log(f"dropped the scratch database {scratch}")


def rehearse_step(remote: Remote, image: ImageRef, did: str, opts: ProdOptions | None = None,
                  *, always: bool = False) -> Step[DeployState]:
    scratch = scratch_name(remote, did) if remote.managed_db else "<scratch database>"
    rm = docker.rm(remote.container_name("rehearse", did), force=True)

    def undo(st: DeployState, io: StepIO) -> None:
        if st.rehearsal is not None:  # it ended (passed or skipped): the scratch is gone
            return
        io.run(rm, check=False, timeout=120)
        io.run(("rm", "-f", f"{remote.state_dir}/rehearse-{did}.env"), check=False, timeout=60)
        if remote.managed_db:
            drop_scratch(remote, io, scratch)

    describe: list[Any] = [
        "on demand: always" if always else
        (f"rehearse = {remote.env.rehearse!r} (auto: when pg_database_size <= "
        f"{human_size(int(remote.env.rehearse_max_size))})"),
        "the pending migrations, run first on a scratch restore of the backup; a failure stops "
        "here, before anything stops; prints the predicted downtime"
        + (f" (refused above --max-downtime {opts.max_downtime:g} s)"
           if opts is not None and opts.max_downtime is not None else "")]
    if remote.managed_db:
        describe[1:1] = [host.shown(rehearse_argv(remote, "restore", scratch, "<the backup>")),
                         (f"migrations.command in a temporary container "
                          f"{remote.container_name('rehearse', did)} of the app image against "
                          f"{scratch} (a psql beside it samples pg_locks)"
                          if remote.cfg.migrations.command else
                          f"in ONE temporary container {remote.container_name('rehearse', did)}"
                          f" of the runner image: the lock sampler, conveyor's engine against "
                          f"{scratch}, then the drop of {scratch}"),
                         host.shown(rehearse_argv(remote, "drop", scratch))
                         + ["(when it is not dropped yet)"]]
    return Step("rehearse", lambda st, io: rehearse(remote, image, did, opts, st, io, always),
                describe=describe, undo=undo,
                undo_describe=[rm, "drop the scratch database (if it is there)"],
                reads=("backup", "pending"), writes=("rehearsal",))
