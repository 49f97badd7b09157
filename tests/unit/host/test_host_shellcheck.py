"""The host scripts as package data: each named in SUMMARIES, headed, shellcheck-clean."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conveyor import host

HOST_DIR = Path(host.__file__).parent
FILES = sorted(HOST_DIR.glob("*.sh"))


def test_shellcheck_reports_nothing_as_posix_sh():
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is not installed: the host scripts cannot be checked (Debian: "
                    "apt-get install shellcheck, which scripts/setup does)", pytrace=False)
    assert FILES
    r = subprocess.run([exe, "-s", "sh", *map(str, FILES)], capture_output=True, text=True,
                       check=False, timeout=120)
    assert r.returncode == 0, f"shellcheck -s sh:\n{r.stdout}{r.stderr}"


#: the scripts with the structured header (what, arguments, stdin, exit codes)
HEADED = ["backup", "image_files", "list_backups", "lock", "record", "rehearse", "restore",
          "runner_finish", "runner_start", "status", "swap", "unlock", "verify_backup",
          "with_env_file"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_script_is_named_and_loaded_as_it_is(path):
    name = path.stem
    assert name in host.SUMMARIES
    text = host.script(name)
    assert text == path.read_text()
    assert text.startswith("#"), f"{path.name} starts with no comment header"
    argv = host.argv(name, "a", "b")
    assert argv == ("sh", "-c", text, f"conveyor-{name.replace('_', '-')}", "a", "b")


@pytest.mark.parametrize("name", HEADED)
def test_the_header_says_what_the_arguments_stdin_and_exit_codes_are(name):
    header = re.match(r"(#[^\n]*\n)+", host.script(name))
    assert header, f"{name}.sh has no header"
    text = header.group()
    assert text.startswith(f"# {name}.sh: ")
    for part in ("# shellcheck shell=sh\n", "# Stdin:", "# Exit:"):
        assert part in text, f"{name}.sh's header has no {part!r}"
    if "$1" in host.script(name):
        assert "#   $1  " in text, f"{name}.sh's header does not list its arguments"
