"""`conveyor init` and `conveyor ci`: set a repository up for conveyor, and run its CI job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.app import ProjectDir, app

CiChoice = Annotated[
    str | None,
    typer.Option("--ci", help="Also write the CI file for: github, gitlab or cloudbuild.",
                 show_default=False),
]


@app.command("init")
def init(
    project_dir: ProjectDir = Path("."),
    ci: CiChoice = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
    ci_only: Annotated[bool, typer.Option(
        "--ci-only", help="Keep the existing conveyor.toml; write only the CI file, derived "
        "from it.")] = False,
    package: Annotated[str | None, typer.Option(
        "--package", help="How the CI job installs conveyor (a pip requirement: wheel URL, "
        "git+https://...@TAG, or a name on your index). Default: conveyor==<this version>.",
        show_default=False)] = None,
) -> None:
    """Write a commented conveyor.toml (from the Dockerfile, compose file and migrations found
    here) and, with --ci, the CI pipeline file. Never overwrites a file without --force."""
    from rich.console import Console

    from conveyor.errors import InitRefused
    from conveyor.init import CI_SYSTEMS, init_project

    if ci is not None and ci not in CI_SYSTEMS:
        raise InitRefused(f"--ci {ci!r}: expected one of {', '.join(CI_SYSTEMS)}")
    result = init_project(project_dir, ci=ci, force=force, ci_only=ci_only, package=package)
    console = Console(highlight=False)
    root = result.facts.root
    for path in result.written:
        console.print(f"[green]wrote[/green] {path.relative_to(root)}")
    if result.config_reused:
        console.print("kept conveyor.toml (the CI file is derived from it)")
    f = result.facts
    found = []
    if f.dockerfile:
        found.append(f"Dockerfile ({f.dockerfile}" + (f", port {f.port}" if f.port else "") + ")")
    if f.compose_file:
        found.append(f"compose file {f.compose_file}" +
                     (f" (app: {f.app_service}" if f.app_service else " (") +
                     (f", database: {f.db.service}" if f.db else "") + ")")
    if f.migrations_dir:
        found.append(f"{f.migrations_count} migration(s) in {f.migrations_dir}/")
    if f.test_command:
        found.append("tests: " + " ".join(f.test_command))
    if found:
        console.print("found: " + "; ".join(found))
    for note in f.notes:
        console.print(f"[yellow]check:[/yellow] {note}")
    if not result.config_reused:
        # the generated file must load; a failure here is a bug in `init`, said loudly
        from conveyor.config import load_config
        from conveyor.errors import ConfigError

        try:
            load_config(root)
        except ConfigError as exc:
            console.print(f"[red]warning:[/red] the written conveyor.toml does not load: {exc}")
    if result.needs is not None:
        n = result.needs
        secrets = ["CONVEYOR_SSH_KEY", "CONVEYOR_KNOWN_HOSTS", *n.secrets, *n.prod_secrets]
        console.print("next: create these secrets in the CI's secret store (never in the "
                      "repository): " + ", ".join(secrets))
        variables = [name for name, _ in n.variables + n.prod_variables]
        if variables:
            console.print("      and these variables (optional where conveyor.toml has a "
                          "default): " + ", ".join(variables))
        console.print("      see the comments at the top of the CI file, and docs/ci.md")
    console.print("then: conveyor config check" + (f" -C {project_dir}"
                                                   if str(project_dir) != "." else ""))


# --------------------------------------------------------------------------- conveyor ci

_STREAMED = {"build", "push", "migrate", "test"}


@app.command("ci")
def ci(
    ctx: typer.Context,
    project_dir: ProjectDir = Path("."),
    promote: Annotated[bool, typer.Option(
        "--promote", help="After dev passed, promote the same image digest to prod (default "
        "branch only).")] = False,
    junit: Annotated[Path | None, typer.Option(
        "--junit", help="Write a JUnit XML report here (the stages and the app's tests).",
        show_default=False)] = None,
    summary: Annotated[Path | None, typer.Option(
        "--summary", help="Write a Markdown summary here (also appended to "
        "$GITHUB_STEP_SUMMARY when that is set).", show_default=False)] = None,
    env: Annotated[str, typer.Option("--env", help="The environment to deploy to and "
                                     "test.")] = "dev",
    prod_env: Annotated[str, typer.Option("--prod-env", help="The environment --promote "
                                          "deploys to.")] = "prod",
    wait_timeout: Annotated[float, typer.Option(
        "--wait-timeout", help="Seconds to wait for another pipeline's deploy lock.")] = 1800.0,
    no_setup: Annotated[bool, typer.Option(
        "--no-setup", help="Skip the (idempotent) setup of the environment's database "
        "container.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON "
                                          "lines).")] = False,
) -> None:
    """The CI job: build, push, deploy dev, test, report (JUnit + Markdown summary); with
    --promote on the default branch, then promote the tested digest to prod. Exits non-zero
    when any stage fails."""
    from rich.markup import escape

    from conveyor import ci_env
    from conveyor.ci_pipeline import CiOptions, run_ci, write_reports
    from conveyor.config import load_config
    from conveyor.render import Redactor, Renderer

    cfg = load_config(project_dir)
    where = ci_env.detect(cwd=cfg.root_dir)
    verbose = bool(ctx.obj is not None and getattr(ctx.obj, "verbose", False))
    redactor = Redactor()
    r = Renderer(json_mode=as_json, verbose=verbose, redactor=redactor)

    def emit(event: dict) -> None:
        if (not r.json_mode and not r.verbose and event.get("event") == "output"
                and event.get("step") in _STREAMED):
            r.console.print(f"    [dim]{escape(r.redact(event['line']))}[/dim]")
            return
        r(event)

    opts = CiOptions(promote=promote, dev_env=env, prod_env=prod_env,
                     wait_timeout=wait_timeout, setup=not no_setup)
    r.message(f"conveyor ci: {cfg.app.name} on {where.label}, branch {where.branch or '-'}, "
              f"commit {where.short_commit or '-'}" + (f" ({where.run_url})" if where.run_url
                                                       else ""))
    report = run_ci(cfg, where, opts, emit, redactor=redactor)

    def resolve(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else Path.cwd() / p)

    written = write_reports(report, junit=resolve(junit), summary=resolve(summary),
                            step_summary=where.summary_file)
    for w in report.warnings:
        r.message(f"warning: {w}")
    failed = report.failed_stage
    data = {"ok": report.ok, "exit_code": report.exit_code, "image": report.image,
            "deployment": report.deployment_id,
            "failed_stage": failed.name if failed else None,
            "failed_tests": [t.name for t in report.failed_tests],
            "stages": [{"name": s.name, "status": s.status, "duration": round(s.duration, 3)}
                       for s in report.stages],
            "reports": [str(p) for p in written]}
    if failed is None:
        r.result(data, f"[green]conveyor ci passed[/green] in {report.duration:.1f}s: "
                       f"{report.image}")
    else:
        r.result(data)
    if written and not as_json:
        r.message("reports: " + ", ".join(str(p) for p in written))
    if failed is not None:
        # raised, not typer.Exit: `conveyor.cli.run` turns a ConveyorError into its exit code
        # (click returns, rather than raises, a typer.Exit in non-standalone mode)
        from conveyor.ci_pipeline import CiFailed

        tests = report.failed_tests
        raise CiFailed(
            f"conveyor ci failed at stage {failed.name}"
            + (f": {len(tests)} failed test(s): " + ", ".join(t.name for t in tests[:5])
               + (", ..." if len(tests) > 5 else "") if tests else "")
            + (f"\n{failed.error}" if failed.error else ""),
            exit_code=report.exit_code, hint=failed.hint)
