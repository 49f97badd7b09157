"""Issue 15 item 7: help texts read as flowing paragraphs (docstrings are hard-wrapped at 100
columns), no word is eaten by rich markup, the exit codes of `conveyor --help` read as a
table."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from conveyor.cli import app
from conveyor.cli.app import flowing
from conveyor.errors import EXIT_CODES


def help_of(*words: str, width: int = 200) -> str:
    r = CliRunner().invoke(app, [*words, "--help"], prog_name="conveyor",
                           env={"COLUMNS": str(width)})
    assert r.exit_code == 0, r.output
    return r.output


def commands() -> list[tuple[str, ...]]:
    root = typer.main.get_command(app)
    out: list[tuple[str, ...]] = []

    def walk(cmd, path: tuple[str, ...]) -> None:
        if getattr(cmd, "commands", None):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
        elif path != ("migrate",):
            out.append(path)

    walk(root, ())
    return out


def test_flowing_joins_a_paragraphs_lines_and_escapes_brackets():
    assert flowing("Go back (pull, stop, [revert],\n    start).\n\n    Second\n    one.") == (
        "Go back (pull, stop, \\[revert], start).\n\nSecond one.")
    assert flowing("Items:\n- one\n- two") == "Items:\n- one\n- two"


def test_rollback_keeps_the_word_in_brackets():
    out = help_of("rollback")
    assert "pull, stop, [revert], start, health, validate" in out
    assert ", , " not in out


def test_the_command_list_has_no_ragged_descriptions():
    out = help_of()
    # each description is one line at this width (a hard-wrapped docstring broke after "found")
    assert re.search(r"│ init +Write a commented conveyor.toml \(from the Dockerfile, compose file "
                     r"and migrations found here\) and, with --ci", out), out
    assert re.search(r"│ up +Bring the local stack up: build the app image if its inputs changed, "
                     r"compose up, wait for Postgres", out), out


@pytest.mark.parametrize("path", commands(), ids=" ".join)
def test_each_commands_description_flows(path):
    out = help_of(*path)
    cmd = typer.main.get_command(app)
    for word in path:
        cmd = cmd.commands[word]  # type: ignore[attr-defined]
    doc = cmd.callback.__doc__ or ""
    for para in [p for p in re.split(r"\n\s*\n", doc) if p.strip()]:
        words = " ".join(para.split())
        flat = " ".join(out.split())
        assert words in flat.replace("│", " ").replace("  ", " ") or words in " ".join(
            re.sub(r"[│╭╮╰╯─]", " ", out).split()), (path, words)
        # a paragraph printed on one line at this width: no line ends inside it
        first = " ".join(para.split()[:6])
        line = next((ln for ln in out.splitlines() if first in " ".join(ln.split())), None)
        if line is not None and len(words) < 180:
            assert words in " ".join(line.split()), (path, line)


def test_the_exit_codes_read_as_a_table():
    out = help_of(width=100)
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "Exit codes:")
    rows = [ln for ln in lines[start + 1:] if ln.strip()]
    codes = [int(m.group(1)) for ln in rows if (m := re.match(r"^\s*(\d+) \S", ln))]
    assert codes == sorted(EXIT_CODES)
    assert lines[start + 1].split() == ["0", "success"]  # no blank line between rows
    assert lines[start + 2].split() == ["1", "any", "other", "failure"]
    # a wrapped meaning continues in its column, not under the code
    narrow = help_of(width=70).splitlines()
    i = next(i for i, ln in enumerate(narrow) if re.match(r"^\s+2 conveyor.toml", ln))
    column = narrow[i].index("conveyor.toml")
    assert narrow[i + 1][:column].strip() == "" and narrow[i + 1][column:].strip()


def test_migrate_help_in_the_same_style():
    out = help_of("migrate")
    assert "╭─ Options" in out and "╭─ Commands" in out
    assert re.search(r"│ --database-url +URL +PostgreSQL URL or libpq conninfo", out), out
    assert re.search(r"│ status +Applied and pending migrations, and problems\.", out), out
    assert "Exit codes: 0 ok;" in out
    sub = help_of("migrate", "status")
    assert "Usage: conveyor migrate status" in sub and "╭─ Options" in sub


def test_a_command_that_runs_does_not_import_rich_for_its_help():
    """The help is tidied when it is shown, not when the command is looked up (rich costs a
    deploy 0.05 to 0.1 s before it reaches the host)."""
    import subprocess
    import sys

    code = ("import sys, click, typer.main\n"
            "from conveyor.cli.app import app\n"
            "root = typer.main.get_command(app)\n"
            "ctx = click.Context(root)\n"
            "for name in ('deploy', 'status', 'migrate'):\n"
            "    root.get_command(ctx, name)\n"
            "print('rich' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, check=True)
    assert r.stdout.strip() == "False"
    assert "[revert]" in help_of("rollback")  # and tidied when shown
