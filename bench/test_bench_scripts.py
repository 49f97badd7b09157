"""Every bench script runs as its docs say from a fresh clone (issue 15, item 18): as
`uv run bench/NAME` and as `bench/NAME`, which re-runs itself under `uv run` when conveyor is not
importable (or says how to get uv). Run with `uv run pytest bench/test_bench_scripts.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SCRIPTS = ["downtime", "deploy_dev", "local_up", "rehearsal", "status"]
README = (BENCH / "README.md").read_text()

FAKE_UV = """#!/bin/sh
exec python3 -c 'import json, os, sys; print(json.dumps({"argv": sys.argv[1:],
    "flag": os.environ.get("CONVEYOR_BENCH_UV_RUN")}))' "$@"
"""


def run(argv: list[str], path: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_BENCH_UV_RUN"} | {"PATH": path}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", timeout=60,
                          check=False)


@pytest.mark.parametrize("name", SCRIPTS)
def test_called_directly_without_conveyor_it_reruns_under_uv_run(name, tmp_path):
    uv = tmp_path / "uv"
    uv.write_text(FAKE_UV)
    uv.chmod(0o755)
    # -S: no site-packages, so conveyor is not importable (as for a fresh clone's python3)
    r = run([sys.executable, "-S", str(BENCH / name), "--runs", "1"],
            f"{tmp_path}:/usr/bin:/bin")
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen == {"argv": ["run", "--project", str(REPO), "python", str(BENCH / name),
                             "--runs", "1"], "flag": "1"}


@pytest.mark.parametrize("name", SCRIPTS)
def test_without_uv_it_says_what_to_do(name, tmp_path):
    r = run([sys.executable, "-S", str(BENCH / name)], str(tmp_path))
    assert r.returncode == 1
    assert f"bench/{name}: conveyor is not importable by" in r.stderr
    assert f"install uv, then run `uv run bench/{name}`" in r.stderr


@pytest.mark.parametrize("name", SCRIPTS)
def test_under_uv_run_it_runs_itself(name, tmp_path):
    if not (REPO / ".venv" / "bin" / "conveyor").exists():
        pytest.skip("no .venv: run under `uv run`")
    r = run([sys.executable, str(BENCH / name), "--help"], f"{tmp_path}:/usr/bin:/bin")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: {name}")


@pytest.mark.parametrize("name", [*SCRIPTS, "migrations"])
def test_the_readme_documents_each_script_with_uv_run(name):
    assert f"## `bench/{name}`" in README
    assert f"uv run bench/{name}" in README or f"uv run --all-groups bench/{name}" in README
