"""The prod stage: promote the exact image that passed the environment it is promoted from,
and never lose the version that serves now.

    lock -> pull (by digest, before anything stops) -> plan (pending migrations of the NEW image
    against the prod database, linted) -> backup (verified) -> prepare (the new container is
    created, not started) -> stop (the old container is stopped, kept) -> migrate (a temporary
    container of the new image) -> start -> health -> validate  ;  always: report, record+unlock

On any failure the completed steps are undone in reverse: the new container is stopped and
kept as `<app>-failed`, the old one is started again and conveyor waits until it answers its
health check. The report then says exactly what the database holds (schema unchanged, or which
migrations stay applied) and which commands go further back (`conveyor rollback`,
`conveyor restore`).

`rollback_plans` reuses the same steps with the previous image (optionally reverting the
migrations that image does not have, through a temporary container of the image that applied
them); `restore_plans` restores a backup (see `conveyor.stages.backup`).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import shlex
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.commands import docker
from conveyor.config import Config
from conveyor.errors import ConfigError, ConveyorError
from conveyor.pipeline import Plan, PlanResult, Step, StepContext
from conveyor.records import DeploymentRecord, actor, new_id
from conveyor.stages import backup as bk
from conveyor.stages import remote_migrate
from conveyor.stages.remote import (
    acquire_steps,
    SCRIPT_NAMES,
    Deployment,
    ImageRef,
    Remote,
    RemoteMigrationFailed,
    _tail,
    app_run_argv,
    env_file,
    health_step,
    http_status,
    is_pytest,
    lock_info,
    lock_step,
    migrate_step,
    migration_status,
    nothing_to_migrate,
    pull_argv,
    read_history,
    record_step,
    restore_argv,
    shown,
)
from conveyor.transport import LocalTransport, sh

# --------------------------------------------------------------------------- errors


class ValidationFailed(ConveyorError):
    exit_code = 10


class NotPromotable(ConveyorError):
    exit_code = 11


class LintBlocked(ConveyorError):
    exit_code = 12


class DatabaseAhead(ConveyorError):
    exit_code = 16


class NoRollbackTarget(ConveyorError):
    exit_code = 15


# --------------------------------------------------------------------------- record


@dataclass
class ProdRecord(DeploymentRecord):
    """A deployment record with the prod stage's details: where the image comes from, the
    migration plan and its lint, the backup, what was reverted, and the outcome (what serves,
    what the database holds, the commands that go further back)."""

    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "details": self.details}

    def summary(self) -> dict[str, Any]:
        d = super().summary()
        details = dict(self.details)
        lint = details.get("lint")
        if isinstance(lint, dict):  # the history line keeps the counts, not the findings
            details["lint"] = lint.get("summary")
        d["details"] = details
        return d


# --------------------------------------------------------------------------- which image


def passed_images(cfg: Config, source: str, limit: int = 1000) -> list[dict[str, Any]]:
    """The successful deployments of `source` (from its host's history), oldest first."""
    src = Remote(cfg, source)
    try:
        entries = read_history(src, limit)
    finally:
        src.close()
    return [e for e in entries if e.get("result") == "ok" and e.get("image")
            and e.get("kind", "deploy") in ("deploy", "promote")]


def choose_image(cfg: Config, env_name: str, image: str | None, *, force: bool = False,
                 source: str | None = None) -> tuple[ImageRef, dict[str, Any]]:
    """The image to deploy to a promoted environment and where it comes from.

    Default: the newest image a successful deployment of `promote_from` recorded. `--image`:
    allowed when that digest passed `promote_from` too; otherwise only with `force`."""
    from conveyor.stages.remote_build import resolve_image

    env = cfg.environment(env_name)
    source = source or env.promote_from
    if image is None:
        if not source:
            raise ConfigError(f"environment {env_name!r} has no `promote_from`: there is no "
                              "environment whose tested images it takes",
                              file=cfg.file, key=f"environments.{env_name}.promote_from",
                              hint="set promote_from = \"dev\", or pass --image REF --force")
        newest = passed_images(cfg, source)
        if not newest:
            raise NotPromotable(
                f"no successful deployment of {source} is recorded on its host: nothing has "
                f"passed {source} yet",
                hint=f"deploy to {source} first (`conveyor deploy {source}`)")
        e = newest[-1]
        ref = ImageRef.parse(e["image"], revision=e.get("revision"))
        return ref, {"source": source, "source_deployment": e["id"],
                     "source_at": e.get("started_at"), "forced": False}
    ref = resolve_image(cfg, image)
    passed: list[dict[str, Any]] = []
    error = None
    if source:
        try:
            passed = passed_images(cfg, source)
        except ConveyorError as exc:
            if not force:
                raise
            error = str(exc)
    match = [e for e in passed if e["image"].split("@", 1)[-1] == ref.digest]
    if match:
        e = match[-1]
        return ref, {"source": source, "source_deployment": e["id"],
                     "source_at": e.get("started_at"), "forced": False}
    if not force:
        where = source or "any environment"
        raise NotPromotable(
            f"{ref.ref} has not passed {where}: no successful deployment of this digest is "
            f"recorded{f' on {source}' if source else ''}",
            hint=(f"deploy it to {source} first; to put it in {env_name} anyway, add --force "
                  "(the record says so)") if source else "add --force (the record says so)")
    return ref, {"source": source, "source_deployment": None, "forced": True,
                 "warning": f"FORCED: {ref.ref} did not pass {source or 'any environment'}"
                 + (f" ({error})" if error else "")}


# --------------------------------------------------------------------------- image contents

# Copies a directory out of an image without running it (no tar or shell needed in the image):
# a created, never started container; the tar stream is gzipped and base64-encoded for SSH.
IMAGE_FILES_SCRIPT = """\
img=$1; dir=$2; shift 2
t=$(mktemp) || exit 1
if ! c=$(docker create "$@" "$img" true); then rm -f "$t"; exit 1; fi
docker cp "$c:$dir/." - > "$t"; rc=$?
docker rm -f "$c" >/dev/null 2>&1
if [ "$rc" -eq 0 ]; then gzip -c < "$t" | base64; fi
rm -f "$t"
exit "$rc"
"""
SCRIPT_NAMES[IMAGE_FILES_SCRIPT] = ("<image files script: docker create $1 (never started), "
                                    "docker cp its $2 as a tar (gzip | base64), docker rm>")


def image_files_argv(remote: Remote, image_ref: str, directory: str) -> tuple[str, ...]:
    labels = [a for k, v in remote.labels("inspect").items() for a in ("--label", f"{k}={v}")]
    return ("sh", "-c", IMAGE_FILES_SCRIPT, "conveyor-image-files", image_ref, directory, *labels)


def _extract(data: bytes, dest: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, filter="data")
            return
        for member in tf.getmembers():  # pragma: no cover - Python < 3.11.4
            name = Path(member.name)
            if name.is_absolute() or ".." in name.parts or not (member.isfile()
                                                                 or member.isdir()):
                raise ConveyorError(f"unexpected entry in the image's migrations: {member.name}")
        tf.extractall(dest)


def fetch_image_migrations(remote: Remote, image_ref: str, dest: Path) -> list:
    """The migrations inside an image (present on the host), discovered from a local copy."""
    from conveyor.migrations import discover
    from conveyor.migrations.errors import MigrationError

    directory = remote.cfg.migrations.container_dir
    r = remote.transport.run(image_files_argv(remote, image_ref, directory), check=False,
                             timeout=300)
    if r.returncode != 0:
        raise ConveyorError(
            f"cannot read the migrations of {image_ref} at {directory}: {_tail(r.stderr)}",
            hint="migrations.container_dir must be where the image holds its migrations")
    try:
        _extract(gzip.decompress(base64.b64decode(r.stdout)), dest)
        return discover(dest)
    except MigrationError as exc:
        raise ConveyorError(f"the migrations in {image_ref} ({directory}) are not valid: {exc}")
    except (OSError, ValueError, tarfile.TarError) as exc:
        raise ConveyorError(f"cannot unpack the migrations of {image_ref}: {exc}")


APPLIED_QUERY_NOTE = "(the applied migrations, read in the lock step's round trip)"


def applied_now(remote: Remote) -> list[str] | None:
    """The versions the database has applied (Diesel's table), read now; None if unknown."""
    db = remote.env.database
    if not remote.managed_db or not remote.db_container:
        return None
    r = remote.transport.run(docker.exec_(remote.db_container, [
        "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", db.user, "-d", db.name, "-c",
        remote_migrate.APPLIED_SQL]), check=False, timeout=60)
    if r.returncode != 0:
        return None
    return bk.applied_versions_from_rows(r.stdout.splitlines())


def db_applied(remote: Remote, values: dict[str, Any], image_ref: str) -> list[str]:
    """Applied versions: from the lock step's read, else by the engine in a temporary
    container of `image_ref` (a database reached by URL, or Diesel's table not there yet)."""
    versions = bk.applied_versions_from_rows(values.get("db_applied"))
    if versions is not None:
        return versions
    st = migration_status(remote, image_ref)
    if not st["ok"]:
        raise ConveyorError(f"cannot read the applied migrations of {remote.name}: "
                            f"{st['error']}")
    return sorted(a["version"] for a in st["applied"])


# --------------------------------------------------------------------------- options


@dataclass
class ProdOptions:
    project_dir: Path
    allow_destructive: bool = False
    validate: bool = True
    wait: bool = False
    wait_timeout: float = 900.0
    junit: Path | None = None
    migrations: bool = False  # rollback: revert the migrations the target image does not have


def next_container(remote: Remote) -> str:
    return f"{remote.app_container}-next"


# --------------------------------------------------------------------------- plan + lint


def plan_step(remote: Remote, image: ImageRef, opts: ProdOptions) -> Step:
    """The pending migrations (in the new image, not applied in the database), shown and
    linted; destructive (or failing) findings stop here, before anything stops."""

    def action(ctx: StepContext) -> None:
        from conveyor.migrations.errors import MigrationError
        from conveyor.migrations.lint import lint_migrations

        record = ctx.values.get("record")
        skip = nothing_to_migrate(remote, ctx.values)
        if skip:
            ctx.values["pending"] = []
            ctx.note(skip)
            return
        with tempfile.TemporaryDirectory(prefix="conveyor-plan-") as tmp:
            migrations = fetch_image_migrations(remote, image.ref, Path(tmp))
            applied = db_applied(remote, ctx.values, image.ref)
            versions = {m.version for m in migrations}
            ahead = [v for v in applied if v not in versions]
            if ahead and not remote.cfg.migrations.command:
                raise DatabaseAhead(
                    f"the {remote.name} database has applied {len(ahead)} migration(s) that "
                    f"{image.ref} does not have: {', '.join(ahead)}",
                    hint="deploy an image that has them, or revert them first (`conveyor "
                    f"rollback {remote.name} --migrations`)")
            pending = [m for m in migrations if m.version not in set(applied)]
            ctx.values["pending"] = [m.name for m in pending]
            if record is not None:
                record.details["pending"] = [m.name for m in pending]
            if not pending:
                ctx.note(f"nothing pending ({len(applied)} applied)")
                return
            ctx.log(f"{len(pending)} pending migration(s), in the order they will run:")
            for m in pending:
                ctx.log(f"  {m.name}" + ("" if m.run_in_transaction else
                                         "  (run_in_transaction = false)"))
                for line in m.up_sql.strip().splitlines():
                    ctx.log(f"    | {line}")
            try:
                report = lint_migrations(pending)
            except MigrationError as exc:
                raise ConveyorError(f"the migration lint could not run: {exc}",
                                    hint="squawk ships with conveyor (squawk-cli); check the "
                                    "installation") from None
            if record is not None:
                record.details["lint"] = report.to_dict()
            for line in report.render_text(relative_to=Path(tmp)).splitlines():
                ctx.log(line)
        counts = ", ".join(f"{report.count(s)} {s}" + ("s" if s != "destructive"
                                                        and report.count(s) > 1 else "")
                           for s in ("error", "destructive", "warning")
                           if report.count(s)) or "clean"
        blocked = report.has_destructive or report.has_errors
        if blocked and not opts.allow_destructive:
            raise LintBlocked(
                f"the lint of the pending migrations found {counts}: "
                + "; ".join(f"{f.migration}/up.sql:{f.line}: {f.severity} [{f.rule}] "
                            f"{f.message}" for f in report.findings
                            if f.severity in ("destructive", "error")),
                hint="nothing was stopped or changed. Make the migration safe (see the hints "
                "above), or, after a review, deploy with --allow-destructive (the backup "
                "step still runs first)")
        if blocked:
            ctx.log(f"WARNING: {counts} allowed by --allow-destructive")
        ctx.note(f"{len(pending)} pending: {', '.join(m.name for m in pending)}; lint: {counts}"
                 + (" (allowed by --allow-destructive)" if blocked else ""))

    return Step("plan", action, describe=[
        shown(image_files_argv(remote, image.ref, remote.cfg.migrations.container_dir)),
        "pending = the image's migrations not applied in the database "
        + APPLIED_QUERY_NOTE + "; lint them (squawk + conveyor's checks); destructive "
        "findings stop here" + ("" if not opts.allow_destructive else
                                " (allowed: --allow-destructive)")])


# --------------------------------------------------------------------------- containers


def create_argv(run_argv: tuple[str, ...], name: str) -> tuple[str, ...]:
    """`docker create` with the options of a `docker run --detach` argv, under `name`."""
    argv = list(run_argv)
    if argv[:3] != ["docker", "run", "--detach"] or "--name" not in argv:
        raise ValueError(f"not a detached docker run argv: {argv[:4]}")
    i = argv.index("--name")
    argv[i + 1] = name
    return ("docker", "create", *argv[3:])


def prepare_argv(remote: Remote, create: tuple[str, ...]) -> tuple[str, ...]:
    """Env file (stdin, 0600), drop leftovers (`-next`, the older `-previous`), create."""
    return sh(("umask", "077"), "&&", ("mkdir", "-p", remote.state_dir), "&&", ("cat",), ">",
              (remote.app_env_file,), "&&",
              "{", docker.rm(next_container(remote), force=True), ">/dev/null", "2>&1", ";",
              docker.rm(remote.previous_container, force=True), ">/dev/null", "2>&1", ";", "}",
              "&&", create)


def prepare_step(remote: Remote, image: ImageRef, deployment_id: str) -> Step:
    """Create (not start) the new app container while the old one still serves."""
    nxt = next_container(remote)

    def argv(ctx: StepContext | None) -> tuple[str, ...]:
        revision = (ctx.values.get("image_revision") if ctx else None) or image.revision
        return prepare_argv(remote, create_argv(
            app_run_argv(remote, image, deployment_id, revision), nxt))

    def action(ctx: StepContext) -> None:
        contents = env_file(remote.app_env(), f"environments.{remote.name}.env")
        r = remote.transport.run(argv(ctx), input=contents, timeout=300)
        ctx.values["next_id"] = r.stdout.strip().splitlines()[-1][:12] if r.stdout.strip() else ""
        ctx.note(f"created {nxt} ({ctx.values['next_id']}), not started")

    def undo(ctx: StepContext) -> None:
        remote.transport.run(docker.rm(nxt, force=True), check=False, timeout=120)

    return Step("prepare", action,
                describe=[argv(None), f"stdin: the app's env file (0600 at {remote.app_env_file})"],
                undo=undo, undo_describe=[docker.rm(nxt, force=True)])


def wait_serving(remote: Remote, timeout: float | None = None) -> dict[str, Any]:
    """Poll the health URL until it answers the expected status (bounded)."""
    hc = remote.app.health
    t0 = time.monotonic()
    deadline = t0 + (timeout if timeout is not None else hc.timeout)
    last = "no attempt"
    while True:
        status, body = http_status(remote.health_url,
                                   timeout=max(0.5, min(5.0, deadline - time.monotonic())))
        if status == hc.expect_status:
            return {"ok": True, "status": status, "seconds": round(time.monotonic() - t0, 2),
                    "url": remote.health_url}
        last = f"HTTP {status}" if status else body
        if time.monotonic() >= deadline:
            return {"ok": False, "status": status, "error": last, "url": remote.health_url,
                    "seconds": round(time.monotonic() - t0, 2)}
        time.sleep(min(hc.interval, max(0.0, deadline - time.monotonic())))


def stop_step(remote: Remote) -> Step:
    """Stop the serving container; keep it (and Postgres) as it is. Undo: start it again and
    wait until it answers its health check."""
    argv = docker.stop(remote.app_container, remote.app.stop_timeout)
    start = docker.start(remote.app_container)

    def action(ctx: StepContext) -> None:
        current = ctx.values.get("current")
        running = bool(current and (current.get("State") or {}).get("Running"))
        ctx.values["stopped_old"] = running
        if not current:
            ctx.note("no app container yet: first deployment")
            return
        if not running:
            ctx.note(f"{remote.app_container} was not running")
            return
        remote.transport.run(argv, timeout=remote.app.stop_timeout + 120)
        ctx.note(f"stopped {remote.app_container} (kept; the database keeps running)")

    def undo(ctx: StepContext) -> None:
        if not ctx.values.get("stopped_old"):
            return
        # after the start step's undo `app` is the old container again; else it never moved
        remote.transport.run(start, timeout=300)
        ctx.log(f"started {remote.app_container} (the previous version) again")
        fb = wait_serving(remote)
        ctx.values["fallback"] = fb
        if not fb["ok"]:
            raise ConveyorError(
                f"the previous version did not answer {remote.health_url} after the fallback "
                f"({fb.get('error')})")
        ctx.log(f"the previous version answers {fb['url']} with HTTP {fb['status']} "
                f"({fb['seconds']}s after starting it)")

    return Step("stop", action, describe=[argv], undo=undo,
                undo_describe=[start, f"GET {remote.health_url} until HTTP "
                               f"{remote.app.health.expect_status}"])


def start_argv(remote: Remote, *, has_current: bool) -> tuple[str, ...]:
    parts: list = []
    if has_current:
        parts += [docker.rename(remote.app_container, remote.previous_container), "&&"]
    parts += [docker.rename(next_container(remote), remote.app_container), "&&",
              docker.start(remote.app_container)]
    return sh(*parts)


def park_failed_argv(remote: Remote) -> tuple[str, ...]:
    """No previous container (first deployment): stop the new one, keep it as `-failed`."""
    return sh("{", docker.rm(remote.failed_container, force=True), ">/dev/null", "2>&1", ";", "}",
              ";", docker.stop(remote.app_container, remote.app.stop_timeout), ">/dev/null",
              "&&", docker.rename(remote.app_container, remote.failed_container))


def start_step(remote: Remote) -> Step:
    """The old container becomes `-previous` (stopped), the new one takes the name and starts.
    Undo: the new one is stopped and kept as `-failed`, the old one gets its name back."""

    def action(ctx: StepContext) -> None:
        has_current = bool(ctx.values.get("current"))
        try:
            remote.transport.run(start_argv(remote, has_current=has_current), timeout=300)
        except ConveyorError:
            ctx.log("starting the new container failed: putting the previous one back")
            remote.transport.run(restore_argv(remote) if has_current else park_failed_argv(remote),
                                 check=False, timeout=300)
            raise
        ctx.note(f"started {remote.app_container} ({ctx.values.get('next_id', '')})"
                 + (f"; the previous one is kept stopped as {remote.previous_container}"
                    if has_current else ""))

    def undo(ctx: StepContext) -> None:
        argv = restore_argv(remote) if ctx.values.get("current") else park_failed_argv(remote)
        r = remote.transport.run(argv, timeout=300)
        ctx.log((r.stdout.strip() + " ").lstrip() + f"the new container is kept stopped as "
                f"{remote.failed_container}")

    return Step("start", action, describe=[start_argv(remote, has_current=True)], undo=undo,
                undo_describe=[restore_argv(remote)])


# --------------------------------------------------------------------------- migrate


def prod_migrate_step(remote: Remote, image: ImageRef, deployment_id: str) -> Step:
    """The dev stage's migrate step (temporary container of the new image, engine on stdin),
    with the prod stage's message on failure."""
    base = migrate_step(remote, image, deployment_id)

    def action(ctx: StepContext) -> None:
        try:
            base.action(ctx)
        except RemoteMigrationFailed as exc:
            # the dev stage's hint says the app was not touched: in prod it was stopped
            exc.hint = ("the previous version is started again; what serves and what the "
                        "database holds: above")
            raise

    return Step("migrate", action, describe=base.describe)


# --------------------------------------------------------------------------- validate


def validate_step(remote: Remote, opts: ProdOptions, deployment_id: str, image: ImageRef) -> Step:
    checks = list(remote.env.checks)
    command = list(remote.env.validate_command) if opts.validate else []
    if command and opts.junit is not None and is_pytest(command):
        command.append(f"--junitxml={opts.junit}")
    env = {"APP_URL": remote.url, "CONVEYOR_ENV": remote.name,
           "CONVEYOR_DEPLOYMENT": deployment_id, "CONVEYOR_IMAGE": image.ref}

    def action(ctx: StepContext) -> None:
        failures = []
        for c in checks:
            url = remote.url + c.path
            status, body = http_status(url, timeout=10.0)
            ok = status == c.status and (c.contains is None or c.contains in body)
            ctx.log(f"GET {url} -> {status if status else body}"
                    + (f" (expected {c.status}" + (f" containing {c.contains!r}" if c.contains
                                                    else "") + ")" if not ok else " ok"))
            if not ok:
                failures.append(f"GET {c.path} answered {status or body}"
                                + (f", expected {c.status}" if status != c.status else
                                   f" without {c.contains!r}"))
        rc = None
        if command and not failures:
            try:
                r = LocalTransport(cwd=opts.project_dir).run(
                    command, env=env, check=False, stream=ctx.log,
                    timeout=remote.env.test_timeout)
                rc = r.returncode
            except ConveyorError as exc:
                ctx.log(str(exc))
                rc = 127
            if rc != 0:
                failures.append(f"`{shlex.join(command)}` exited {rc}: "
                                f"{_tail(chr(10).join(ctx.output), 3)}")
        ctx.values["validation"] = {"ok": not failures, "checks": len(checks),
                                    "command": shlex.join(command) if command else None,
                                    "exit_code": rc}
        if failures:
            raise ValidationFailed(
                f"the validation of {remote.name} failed: " + "; ".join(failures),
                hint="the previous version is started again; what serves and what the database "
                "holds: above")
        parts = [f"{len(checks)} HTTP check(s) passed"] if checks else []
        if command:
            parts.append(f"`{shlex.join(command)}` passed")
        ctx.note("; ".join(parts) or "nothing to validate (no checks, no validate_command)")

    describe = [f"GET {remote.url}{c.path} -> HTTP {c.status}"
                + (f" containing {c.contains!r}" if c.contains else "") for c in checks]
    if command:
        describe.append(f"APP_URL={remote.url} {shlex.join(command)}   (locally, in "
                        f"{opts.project_dir})")
    return Step("validate", action, describe=describe or ["(nothing configured)"])


# --------------------------------------------------------------------------- report


def _current_deployment(values: dict[str, Any]) -> str | None:
    current = values.get("current") or {}
    return ((current.get("Config") or {}).get("Labels") or {}).get("conveyor.deployment")


def outcome(remote: Remote, values: dict[str, Any], result: PlanResult,
            applied_after: Callable[[], list[str] | None] | None = None,
            further_back: Callable[[], bool] | None = None) -> dict[str, Any]:
    """What serves and what the database holds after a prod plan, in words, plus the commands
    that go further back."""
    env = remote.name
    out: dict[str, Any] = {"ok": result.ok, "lines": [], "commands": []}
    lines: list[str] = out["lines"]
    if result.ok:
        return out
    failed = next((s.name for s in result.steps if s.status == "failed"), None)
    out["failed_step"] = failed
    names = [s.name for s in result.steps]
    stopped = values.get("stopped_old")
    fb = values.get("fallback")
    prev_image = bk.serving_image(values)
    prev_dep = _current_deployment(values)
    backup = values.get("backup") or {}
    applied = list(values.get("migrations_applied") or [])
    reverted = list(values.get("migrations_reverted") or [])

    if failed == "stop":
        lines.append(f"Stopping {remote.app_container} failed: check `conveyor status {env}`. "
                     "The database was not changed.")
        return out
    if "stop" not in names:
        lines.append("Nothing was stopped: the previous version kept serving throughout, and "
                     "the database was not changed" + (" (a backup was taken)" if backup else "")
                     + ".")
        return out

    # what serves now
    if fb and fb.get("ok"):
        lines.append(f"The previous version is serving again: {fb['url']} answers HTTP "
                     f"{fb['status']} ({prev_image or remote.app_container}).")
    elif stopped:
        lines.append(f"WARNING: the previous version did NOT come back: "
                     f"{(fb or {}).get('error') or 'its container could not be started'}. "
                     f"Check `conveyor status {env}` and `conveyor logs {env} app`.")
    elif not values.get("current"):
        lines.append("There was no previous version to go back to (first deployment): nothing "
                     "serves.")
    if failed in ("start", "health", "validate") and "start" in names:
        lines.append(f"The new container is kept (stopped) as {remote.failed_container}: "
                     f"`docker logs {remote.failed_container}` on {remote.host} shows its log.")

    # what the database holds
    changed: list[str] = []
    if failed in ("migrate", "revert"):
        before = set(bk.applied_versions_from_rows(values.get("db_applied")) or [])
        after = applied_after() if applied_after else None
        res = values.get("migrate_result") or {}
        if after is None:
            lines.append("The state of the migrations could not be read after the failure: run "
                         f"`conveyor status {env}`.")
        else:
            committed = sorted(set(after) - before)
            undone = sorted(before - set(after))
            if failed == "migrate":
                if committed:
                    changed = committed
                    lines.append("Migrations committed before the failure stay applied: "
                                 f"{', '.join(committed)}. The previous version runs on that "
                                 "schema and must cope with it.")
                if res.get("rolled_back") is False:
                    lines.append(f"{res.get('name')} has run_in_transaction = false: statements "
                                 "before the failing one may have been committed. Check the "
                                 "schema before deploying again.")
                elif not committed:
                    lines.append("The database schema is unchanged: the failing migration ran in "
                                 "a transaction, which was rolled back "
                                 f"({len(after)} migrations applied, as before).")
            else:
                if undone:
                    lines.append(f"Reverted before the failure (stay reverted): "
                                 f"{', '.join(undone)}.")
                else:
                    lines.append("The database schema is unchanged: the failing down migration "
                                 "was rolled back.")
    elif applied:
        changed = applied
        lines.append(f"The migrations this deployment applied stay applied: {', '.join(applied)}."
                     " The previous version now runs on the new schema and must cope with it "
                     "(additive changes usually are fine).")
    elif reverted:
        lines.append(f"The migrations this rollback reverted stay reverted: {', '.join(reverted)}."
                     " The previous version runs on the older schema.")
    elif failed not in ("migrate", "revert"):
        lines.append("This deployment changed no migrations: the database schema is as it was.")

    # further back
    cmds: list[str] = out["commands"]
    if not changed and failed not in ("start", "health", "validate"):
        return out
    if changed and prev_dep:
        cmds.append(f"conveyor rollback {env} --to {prev_dep} --migrations"
                    f"    # revert {', '.join(changed)} (down.sql), keep the previous version")
    if further_back is None or further_back():
        cmds.append(f"conveyor rollback {env} [--migrations]"
                    "    # the version before the previous one (and its schema)")
    if backup.get("id"):
        cmds.append(f"conveyor restore {env} {backup['id']}"
                    f"    # the database as it was before this deployment ({backup.get('file')})")
    return out


def report_step(remote: Remote) -> Step:
    """Finalize: work out what serves and what the database holds; keep it in the record."""

    def action(ctx: StepContext) -> None:
        result = result_from_record(ctx.values["record"], ctx.values)

        def further_back() -> bool:
            try:
                rollback_target(remote, None)
                return True
            except ConveyorError:
                return False

        out = outcome(remote, ctx.values, result, applied_after=lambda: applied_now(remote),
                      further_back=further_back)
        ctx.values["outcome"] = out
        record = ctx.values.get("record")
        if record is not None and hasattr(record, "details"):
            record.details["outcome"] = out
            if ctx.values.get("migrations_reverted"):
                record.details["migrations_reverted"] = ctx.values["migrations_reverted"]
            if ctx.values.get("validation"):
                record.details["validation"] = ctx.values["validation"]
        for line in out["lines"]:
            ctx.log(line)
        ctx.note("ok" if out["ok"] else f"failed at {out.get('failed_step')}")

    return Step("report", action, describe=["what serves and what the database holds, in the "
                                            "record and on the terminal"])


def _finalize(remote: Remote, name: str) -> Plan:
    return Plan(f"{name}: finalize", [report_step(remote), record_step(remote)])


# --------------------------------------------------------------------------- deploy / promote


def prod_plans(remote: Remote, image: ImageRef, opts: ProdOptions, *,
               provenance: dict[str, Any] | None = None, kind: str = "promote",
               deployment_id: str | None = None) -> Deployment:
    did = deployment_id or new_id()
    record = ProdRecord(id=did, app=remote.app.name, env=remote.name, kind=kind, who=actor(),
                        started_at=time.time(), image=image.ref, revision=image.revision,
                        url=remote.url,
                        options={"allow_destructive": opts.allow_destructive,
                                 "validate": opts.validate})
    record.details["provenance"] = provenance or {}
    info = lock_info(did, image, f"{kind} {remote.name} {image.ref}")
    steps = acquire_steps(remote, image, info, wait=opts.wait, wait_timeout=opts.wait_timeout)
    steps += [
        plan_step(remote, image, opts),
        bk.backup_step(remote, did, bk.BackupOptions(
            reason=f"before {kind} {did} of {image.ref}", deployment=did)),
        prepare_step(remote, image, did),
        stop_step(remote),
        prod_migrate_step(remote, image, did),
        start_step(remote),
        health_step(remote),
        validate_step(remote, opts, did, image),
    ]
    return Deployment(remote, image, record, Plan(f"{kind} {remote.name}", steps),
                      _finalize(remote, f"{kind} {remote.name}"))


def run_prod(dep: Deployment, emit) -> PlanResult:
    """Execute a prod plan: the main plan, then (always) report, record and unlock."""
    from conveyor.stages.remote import run_deployment

    return run_deployment(dep, emit)


@dataclass
class Promotion:
    """A planned promotion: the target environment, the image chosen for it and where that
    image comes from, and the deployment (`prod_plans`) that puts it there."""

    remote: Remote
    image: ImageRef
    provenance: dict[str, Any]
    kind: str  # "promote"; "deploy" when --force put in an image that did not pass `source`
    source: str | None
    dep: Deployment

    @property
    def forced(self) -> bool:
        return bool(self.provenance.get("forced"))

    @property
    def origin(self) -> str:
        p = self.provenance
        if p.get("source_deployment"):
            return f"passed {p['source']} in deployment {p['source_deployment']}"
        return "forced"

    @property
    def warning(self) -> str | None:
        if not self.forced:
            return None
        return (f"WARNING: {self.image.ref} has NOT passed {self.source or 'any environment'}; "
                f"deploying it to {self.remote.name} because of --force (the record says so)")


def plan_promotion(cfg: Config, env_name: str, image: str | ImageRef | None, opts: ProdOptions,
                   *, force: bool = False, source: str | None = None) -> Promotion:
    """`conveyor deploy ENV` / `conveyor promote SOURCE ENV` / `conveyor ci --promote`, planned:
    the image (`choose_image`: one that passed `source`, default the environment's
    `promote_from`; anything else only with `force`) and the prod plans for it. Nothing runs."""
    remote = Remote(cfg, env_name)
    src = source or remote.env.promote_from
    try:
        wanted = image.ref if isinstance(image, ImageRef) else image
        img, provenance = choose_image(cfg, env_name, wanted, force=force, source=src)
    except BaseException:
        remote.close()
        raise
    if isinstance(image, ImageRef) and img.digest == image.digest:
        # what the caller knows about the image it just pushed (its revision, its tag)
        img = ImageRef(img.repository, img.digest, img.revision or image.revision,
                       img.tag or image.tag)
    kind = "deploy" if provenance.get("forced") else "promote"
    dep = prod_plans(remote, img, opts, provenance=provenance, kind=kind)
    return Promotion(remote, img, provenance, kind, src, dep)


def outcome_text(dep: Deployment) -> list[str]:
    """After a failed prod plan, in plain lines (redacted): what serves, what the database holds
    and the commands that go further back (indented under "To go further back:")."""
    out = dep.values.get("outcome") or {}
    lines = list(out.get("lines", []))
    if out.get("commands"):
        lines.append("To go further back:")
        lines += ["  " + cmd for cmd in out["commands"]]
    return [dep.remote.redactor(line) for line in lines]


CI_OUTPUT_TAIL = 40


def promote_for_ci(cfg: Config, env_name: str, image: ImageRef, *, emit: Callable[[dict], None],
                   stage: Any, source: str | None = None,
                   wait_timeout: float = 1800.0) -> Deployment:
    """`conveyor ci --promote`: promote to `env_name` exactly the digest that passed `source`
    (default: the environment's `promote_from`) earlier in this job; never forced, destructive
    migrations are refused.

    Fills `stage` (a `conveyor.ci_pipeline.StageReport`: status, steps with their durations,
    the output's tail, error + hint, and after a failure what serves, what the database holds
    and the commands that go further back). On failure raises the failing step's error (its
    exit code: 6 migration, 7 health, 10 validation, 11 not promotable, 12 lint, ...); errors
    before the plan runs (the image did not pass, a config error) are raised unfilled.
    """
    opts = ProdOptions(project_dir=cfg.root_dir, wait=True, wait_timeout=wait_timeout)
    promo = plan_promotion(cfg, env_name, image, opts, source=source)
    remote, dep = promo.remote, promo.dep
    red = remote.redactor

    def redacted(event: dict) -> None:  # the prod secrets join the redactor as steps need them
        emit(red(event))

    redacted({"event": "message", "text": f"{promo.kind} {promo.image.ref} ({promo.origin}) to "
              f"{remote.name} ({remote.host}), deployment {dep.record.id}"})
    try:
        result = run_prod(dep, redacted)
    finally:
        remote.close()
    _fill_ci_stage(stage, promo, result)
    for fin in dep.values.get("finalize_results", []):
        if not fin.ok:  # e.g. the record or the unlock failed: the job must say so
            redacted({"event": "message", "text": f"warning: {fin.plan}: {fin.error}"})
    if result.error is not None:
        raise result.error
    return dep


def _fill_ci_stage(stage: Any, promo: Promotion, result: PlanResult) -> None:
    dep, remote = promo.dep, promo.remote
    red = remote.redactor

    def tail(lines: list[str]) -> list[str]:
        return [ln.rstrip("\n") for ln in lines[-CI_OUTPUT_TAIL:]]

    stage.steps = [{"name": s.name, "status": s.status, "duration": s.duration,
                    "error": s.error, "notes": s.notes} for s in result.steps]
    stage.duration = sum(s.duration for s in result.steps)
    output: list[str] = []
    for s in result.steps:
        output += s.output
    notes = [f"{s.name}: {'; '.join(s.notes)}" for s in result.steps
             if s.notes and s.name in ("plan", "migrate", "validate")]
    stage.detail = (f"deployment {dep.record.id} ({promo.origin}): {remote.url}"
                    + (" — " + "; ".join(notes) if notes else ""))
    failed = next((s for s in result.steps if s.status == "failed"), None)
    if result.error is None:
        stage.status = "ok"
        stage.output = tail(output)
    else:
        exc = result.error
        state = outcome_text(dep)
        stage.status = "failed"
        stage.error = "\n".join([str(exc), "", *state]) if state else str(exc)
        stage.hint = getattr(exc, "hint", None)
        stage.exit_code = getattr(exc, "exit_code", None) or 1
        stage.output = tail(failed.output if failed is not None and failed.output else output)
    for fin in dep.values.get("finalize_results", []):
        if not fin.ok:
            stage.output.append(f"warning: {fin.plan}: {fin.error}")
    stage.detail = red(stage.detail)
    stage.error = red(stage.error) if stage.error else stage.error
    stage.hint = red(stage.hint) if stage.hint else stage.hint
    stage.output = red(stage.output)
    stage.steps = red(stage.steps)


def result_from_record(record: DeploymentRecord, values: dict[str, Any]) -> PlanResult:
    """The main plan's result as run_deployment left it in the record (before finalize)."""
    from conveyor.pipeline import StepResult

    steps = [StepResult(s["name"], s["status"], s["duration"], s.get("notes") or [],
                        s.get("output") or [], s.get("error")) for s in record.steps]
    return PlanResult(record.kind, record.result != "failed", steps, record.duration or 0.0,
                      None, values)


# --------------------------------------------------------------------------- rollback


REVERT_BOOTSTRAP = (
    "import sys,json,tempfile\n"
    "i=sys.stdin.buffer\n"
    "h=json.loads(i.readline())\n"
    "z=i.read(h['zip'])\n"
    "f=tempfile.NamedTemporaryFile(prefix='conveyor-engine-',suffix='.zip',delete=False)\n"
    "f.write(z);f.close()\n"
    "sys.path.insert(0,f.name)\n"
    "g={'__name__':'conveyor_revert'}\n"
    "exec(h['code'],g)\n"
    "sys.exit(g['main'](h))\n"
)

# Runs in the temporary container (standard library + the shipped engine): revert exactly the
# given versions, which must be the newest applied ones, newest first.
REVERT_CODE = '''
def main(h):
    import json, sys
    from conveyor.migrations import Migrator, MigrationError
    from conveyor_migrate_driver import RESULT_MARK

    def on_event(event, **data):
        if event == "start":
            print(f"reverting {data.get('name')} ...", flush=True)
        elif event == "done" and data.get("step") is not None:
            s = data["step"]
            ms = f" ({s.duration_ms:.0f} ms)" if s.duration_ms is not None else ""
            print(f"reverted {s.name}{ms}", flush=True)

    m = Migrator(h["database_url"], h["migration_dir"], lock_timeout=float(h["lock_timeout"]),
                 applied_by=h.get("applied_by"), on_event=on_event)
    want = list(h["versions"])
    try:
        newest = [a.version for a in reversed(m.status().applied)][:len(want)]
        if newest != want:
            out = {"ok": False, "error": "NotNewest",
                   "message": f"the newest applied migrations are {newest}, expected {want}: "
                              "nothing was reverted"}
        else:
            out = {"ok": True, **m.revert(len(want)).to_dict()}
    except MigrationError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        out = {"ok": False, **exc.to_dict()}
    print(RESULT_MARK + json.dumps(out, default=str), flush=True)
    return 0 if out["ok"] else 1
'''


def revert_argv(remote: Remote, image_ref: str, deployment_id: str) -> tuple[str, ...]:
    name = f"{remote.app_container.removesuffix('-app')}-revert-{deployment_id}".lower()
    return docker.run(image_ref, name=name, rm=True, interactive=True, network=remote.network,
                      labels=remote.labels("revert", **{"conveyor.deployment": deployment_id}),
                      entrypoint="python3", command=("-c", REVERT_BOOTSTRAP))


def revert_stdin(database_url: str, migration_dir: str, versions: list[str], *,
                 lock_timeout: float, applied_by: str) -> bytes:
    z = remote_migrate.engine_zip()
    header = {"command": "revert", "database_url": database_url,
              "migration_dir": migration_dir, "versions": versions,
              "lock_timeout": lock_timeout, "applied_by": applied_by, "code": REVERT_CODE,
              "zip": len(z)}
    return json.dumps(header).encode() + b"\n" + z


def current_app(remote: Remote) -> dict[str, Any] | None:
    r = remote.transport.run(docker.inspect(remote.app_container, "{{json .Config.Labels}}"),
                             check=False, timeout=60)
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout) or {}
    except ValueError:
        return None


def rollback_target(remote: Remote, to: str | None) -> tuple[ImageRef, dict[str, Any]]:
    """The image to go back to: `--to DEPLOYMENT`'s image, else the image that served before
    the deployment that put the serving image in place."""
    entries = read_history(remote, 5000)
    ok = [e for e in entries if e.get("result") == "ok" and e.get("image")]
    if to:
        match = [e for e in entries if e.get("id") == to]
        if not match:
            raise NoRollbackTarget(f"no deployment {to} on {remote.name}",
                                   hint=f"`conveyor history {remote.name}` lists them")
        e = match[-1]
        if e.get("result") != "ok":
            raise NoRollbackTarget(f"deployment {to} did not succeed ({e.get('result')}): its "
                                   "image never passed validation here",
                                   hint=f"pick a successful one from `conveyor history "
                                   f"{remote.name}`")
        return ImageRef.parse(e["image"], revision=e.get("revision")), {"to": to}
    labels = current_app(remote)
    current = (labels or {}).get("conveyor.image")
    if not current:
        raise NoRollbackTarget(f"no app container of {remote.name} on {remote.host} (or it "
                               "was not deployed by conveyor): nothing to roll back from",
                               hint="pass --to DEPLOYMENT")
    deps = [e for e in ok if e.get("kind", "deploy") in ("deploy", "promote")
            and e["image"] == current]
    if not deps:
        raise NoRollbackTarget(f"no successful deployment of the serving image {current} is "
                               f"recorded on {remote.name}",
                               hint="pass --to DEPLOYMENT (`conveyor history` lists them)")
    d = deps[-1]
    prev = d.get("previous_image")
    if not prev:
        raise NoRollbackTarget(f"deployment {d['id']} was the first one: there is no "
                               "previous version to roll back to")
    before = [e for e in ok if e["image"] == prev and e["id"] < d["id"]]
    return (ImageRef.parse(prev, revision=d.get("previous_revision")),
            {"from_deployment": d["id"], "to": before[-1]["id"] if before else None})


def rollback_plan_step(remote: Remote, target: ImageRef, opts: ProdOptions) -> Step:
    """What the rollback does to the schema: the applied migrations the target image does not
    have are reverted (--migrations) through an image that has their down.sql, or stay."""
    from conveyor.migrations import version_from_name

    def action(ctx: StepContext) -> None:
        record = ctx.values.get("record")
        serving = bk.serving_image(ctx.values)
        ctx.log(f"serving now: {serving or '(nothing)'}")
        ctx.log(f"rolling back to: {target.ref}")
        with tempfile.TemporaryDirectory(prefix="conveyor-rollback-") as tmp:
            target_migs = fetch_image_migrations(remote, target.ref, Path(tmp) / "target")
        known = {m.version for m in target_migs}
        applied = db_applied(remote, ctx.values, target.ref)
        extra = [v for v in applied if v not in known]
        missing = [m.name for m in target_migs if m.version not in set(applied)]
        if missing:
            ctx.log(f"note: the target image has migrations the database has not applied: "
                    f"{', '.join(missing)} (a rollback applies none)")
        if not extra:
            ctx.values["revert"] = None
            ctx.note("schema: the database has no migration the target image lacks")
            return
        if not opts.migrations:
            ctx.values["revert"] = None
            ctx.log(f"WARNING: {len(extra)} applied migration(s) are not in the target image and "
                    f"stay applied: {', '.join(extra)}. The target version must cope with them; "
                    "--migrations reverts them.")
            ctx.note(f"{len(extra)} migration(s) stay applied (no --migrations)")
            return
        tail = applied[-len(extra):]
        if sorted(tail) != sorted(extra):
            raise ConveyorError(
                f"cannot revert {', '.join(extra)}: they are not the newest applied migrations "
                f"(newest: {', '.join(tail)})", hint="revert by hand with `conveyor migrate "
                "revert`, or roll back without --migrations")
        # the image with their down.sql: the serving one, else one that applied them
        history = read_history(remote, 5000)
        candidates: list[str] = [serving] if serving else []
        for e in reversed(history):
            vs = {version_from_name(n) for n in e.get("migrations_applied") or []}
            if vs & set(extra) and e.get("image") and e["image"] not in candidates:
                candidates.append(e["image"])
        chosen = None
        for cand in candidates:
            ref = ImageRef.parse(cand)
            r = remote.transport.run(pull_argv(ref), check=False, timeout=1800)
            if r.returncode != 0:
                ctx.log(f"{cand}: not available ({_tail(r.stderr)})")
                continue
            with tempfile.TemporaryDirectory(prefix="conveyor-rollback-") as tmp:
                migs = {m.version: m for m in fetch_image_migrations(remote, cand, Path(tmp))}
                if all(v in migs and migs[v].down_sql is not None for v in extra):
                    chosen = (cand, [migs[v] for v in reversed(extra)])
                    break
            ctx.log(f"{cand} lacks the down.sql of some of them")
        if chosen is None:
            raise ConveyorError(f"no image with the down.sql of {', '.join(extra)} is available",
                                hint="revert them by hand (`conveyor migrate revert`)")
        image_ref, migs_newest_first = chosen
        ctx.values["revert"] = {"versions": list(reversed(extra)), "image": image_ref,
                                "names": [m.name for m in migs_newest_first]}
        if record is not None:
            record.details["revert_plan"] = ctx.values["revert"]
        ctx.log(f"will revert, newest first, with the down.sql in {image_ref}:")
        for m in migs_newest_first:
            ctx.log(f"  {m.name}")
            for line in (m.down_sql or "").strip().splitlines():
                ctx.log(f"    | {line}")
        ctx.note(f"revert {len(extra)}: {', '.join(m.name for m in migs_newest_first)}")

    return Step("plan", action, describe=[
        shown(image_files_argv(remote, target.ref, remote.cfg.migrations.container_dir)),
        "applied migrations the target image lacks: "
        + ("reverted (newest first) by an image that has their down.sql" if opts.migrations
           else "stay applied (no --migrations)")])


def revert_step(remote: Remote, deployment_id: str) -> Step:
    argv_shown = remote_migrate.describe_engine_argv(
        revert_argv(remote, "<image with the down.sql>", deployment_id))
    argv_shown = ["<revert bootstrap>" if a == REVERT_BOOTSTRAP else a for a in argv_shown]

    def action(ctx: StepContext) -> None:
        rv = ctx.values.get("revert")
        if not rv:
            ctx.note("nothing to revert")
            return
        mcfg = remote.cfg.migrations
        stdin = revert_stdin(remote.database_url(), mcfg.container_dir, rv["versions"],
                             lock_timeout=mcfg.lock_timeout,
                             applied_by=f"{actor()} via conveyor rollback {remote.name}")

        def sink(line: str) -> None:
            if not line.startswith(remote_migrate.RESULT_MARK):
                ctx.log(line)

        r = remote.transport.run(revert_argv(remote, rv["image"], deployment_id), input=stdin,
                                 stream=sink, check=False, timeout=None)
        parsed = remote_migrate.parse_output(r.stdout)
        ctx.values["migrate_result"] = parsed.result
        res = parsed.result or {}
        if r.returncode != 0 or not res.get("ok"):
            raise RemoteMigrationFailed(
                f"reverting migrations on {remote.name} failed: "
                f"{res.get('text') or res.get('message') or _tail(r.stderr or r.stdout)}",
                hint="the previous version is started again; what serves and what the database "
                "holds: above")
        done = [s.get("name") or s.get("version") for s in res.get("reverted", [])]
        ctx.values["migrations_reverted"] = done
        ctx.note(f"reverted {len(done)}: {', '.join(done)}")

    return Step("revert", action, describe=[
        argv_shown, "stdin: a JSON header (DATABASE_URL, the versions, the revert code) + "
        "conveyor's migration engine (zip)"])


def rollback_plans(remote: Remote, target: ImageRef, opts: ProdOptions, *,
                   info: dict[str, Any] | None = None,
                   deployment_id: str | None = None) -> Deployment:
    did = deployment_id or new_id()
    record = ProdRecord(id=did, app=remote.app.name, env=remote.name, kind="rollback",
                        who=actor(), started_at=time.time(), image=target.ref,
                        revision=target.revision, url=remote.url,
                        options={"migrations": opts.migrations, "validate": opts.validate})
    record.details["rollback"] = info or {}
    lock = lock_info(did, target, f"rollback {remote.name} to {target.ref}")
    steps = acquire_steps(remote, target, lock, wait=opts.wait, wait_timeout=opts.wait_timeout)
    steps.append(rollback_plan_step(remote, target, opts))
    if opts.migrations:
        steps.append(bk.backup_step(remote, did, bk.BackupOptions(
            reason=f"before rollback {did} (--migrations) to {target.ref}", deployment=did)))
    steps += [prepare_step(remote, target, did), stop_step(remote)]
    if opts.migrations:
        steps.append(revert_step(remote, did))
    steps += [start_step(remote), health_step(remote),
              validate_step(remote, opts, did, target)]
    return Deployment(remote, target, record, Plan(f"rollback {remote.name}", steps),
                      _finalize(remote, f"rollback {remote.name}"))


# --------------------------------------------------------------------------- backup / restore


def backup_plan(remote: Remote) -> tuple[Plan, str]:
    """`conveyor backup ENV`: lock (the backup is consistent with no deployment running), dump,
    verify, keep; unlock."""
    bid = bk.new_backup_id()
    info = lock_info(bid, None, f"backup {remote.name}")
    from conveyor.stages.remote import unlock_step

    plan = Plan(f"backup {remote.name}", [
        lock_step(remote, info),
        bk.backup_step(remote, bid, bk.BackupOptions(reason="manual (conveyor backup)")),
        unlock_step(remote),
    ])
    return plan, bid


def restore_plans(remote: Remote, backup_id: str, opts: ProdOptions, *,
                  deployment_id: str | None = None) -> Deployment:
    """Stop the app, restore the backup into a new database, swap it in, start the app, check
    its health; then drop the old database (a safety backup of it is taken first)."""
    bk.require_managed_db(remote, "restores")
    did = deployment_id or new_id()
    record = ProdRecord(id=did, app=remote.app.name, env=remote.name, kind="restore",
                        who=actor(), started_at=time.time(), image="", url=remote.url,
                        options={"backup": backup_id})
    record.details["restore"] = {"backup": backup_id, "file": bk.backup_path(remote, backup_id)}
    info = lock_info(did, None, f"restore {remote.name} from {backup_id}")
    restore, swap = bk.restore_steps(remote, backup_id, did)
    start = docker.start(remote.app_container)
    stop_app = docker.stop(remote.app_container, remote.app.stop_timeout)

    def start_app(ctx: StepContext) -> None:
        if not ctx.values.get("stopped_old"):
            ctx.note("the app was not running: not started")
            return
        remote.transport.run(start, timeout=300)
        ctx.values["restarted"] = True
        ctx.note(f"started {remote.app_container}")

    def start_undo(ctx: StepContext) -> None:
        if ctx.values.get("restarted"):
            remote.transport.run(stop_app, check=False, timeout=300)

    def health(ctx: StepContext) -> None:
        if not ctx.values.get("restarted"):
            ctx.note("skipped (the app was not running)")
            return
        health_step(remote).action(ctx)

    def image_of(ctx: StepContext) -> None:
        record.image = bk.serving_image(ctx.values) or ""

    steps = [
        lock_step(remote, info),
        Step("inspect", image_of, describe=["(the serving image, for the record)"]),
        bk.verify_step(remote, backup_id),
        bk.backup_step(remote, did, bk.BackupOptions(
            reason=f"before restore {did} of {backup_id}", deployment=did, protect=backup_id)),
        stop_step(remote),
        restore,
        swap,
        Step("start", start_app, describe=[start], undo=start_undo, undo_describe=[stop_app]),
        Step("health", health, describe=[f"GET {remote.health_url}"]),
        bk.cleanup_step(remote, did),
    ]
    main = Plan(f"restore {remote.name}", steps)
    finalize = Plan(f"restore {remote.name}: finalize", [record_step(remote)])
    return Deployment(remote, None, record, main, finalize)  # type: ignore[arg-type]
