"""conveyor.main as the console script: the process ends right after the command (os._exit),
with its exit code, all of its output (also through a pipe) and its exit handlers run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_WITH_HANDLER = """
import atexit, sys
from pathlib import Path
mark = Path(sys.argv[1])
atexit.register(lambda: mark.write_text("ran"))
sys.argv = ["conveyor", *sys.argv[2:]]
from conveyor.main import main
main()
"""


def conveyor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conveyor.main", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120, check=False)


def test_all_the_output_and_the_exit_code_through_a_pipe():
    p = conveyor("--help")
    assert p.returncode == 0, p.stderr
    assert "Usage: conveyor" in p.stdout and "build" in p.stdout
    whole = conveyor("deploy", "--help")
    assert whole.returncode == 0 and whole.stdout.rstrip().endswith("╯")  # its last line


def test_an_error_keeps_its_exit_code(tmp_path):
    p = conveyor("status", "dev", "-C", str(tmp_path))  # no conveyor.toml there
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "no conveyor.toml" in p.stderr + p.stdout


def test_exit_handlers_run_before_the_process_ends(tmp_path):
    mark = tmp_path / "mark"
    p = subprocess.run([sys.executable, "-c", _WITH_HANDLER, str(mark), "--version"],
                       capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip(), "the version is printed"
    assert mark.read_text() == "ran"
