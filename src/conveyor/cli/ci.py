"""`conveyor init` and `conveyor ci`: set a repository up for conveyor, and run its CI job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from conveyor.cli import ProjectDir, app

CiChoice = Annotated[
    Optional[str],
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
) -> None:
    """Write a commented conveyor.toml (from the Dockerfile, compose file and migrations found
    here) and, with --ci, the CI pipeline file. Never overwrites a file without --force."""
    from rich.console import Console

    from conveyor.initgen import CI_SYSTEMS, InitError, init_project

    if ci is not None and ci not in CI_SYSTEMS:
        raise InitError(f"--ci {ci!r}: expected one of {', '.join(CI_SYSTEMS)}")
    result = init_project(project_dir, ci=ci, force=force, ci_only=ci_only)
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
