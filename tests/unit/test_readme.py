"""The README's two set-up commands stay true: CI runs the README's test command verbatim."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)[:2]


def test_ci_runs_the_readme_test_command():
    main_job, test_command = readme_commands()
    assert "uv run conveyor" in main_job
    assert "pytest" in test_command
    assert test_command in (REPO / ".ci" / "run").read_text().splitlines()


def test_scripts_exist_and_are_executable():
    for name in ("scripts/setup", "scripts/testbed", ".ci/run"):
        path = REPO / name
        assert path.exists(), name
        assert path.stat().st_mode & 0o111, f"{name} is not executable"
