"""transport.process: LocalTransport runs argv without a shell, streams, times out."""

from __future__ import annotations

import os

import pytest

from conveyor.errors import CommandFailed, ConveyorError
from conveyor.transport import LocalTransport, local_path


def test_local_transport_runs_argv_without_a_shell_and_keeps_output(tmp_path):
    t = LocalTransport(cwd=tmp_path)
    r = t.run(["printf", "%s|", "a b", "$HOME", "*"])
    assert r.stdout == "a b|$HOME|*|"
    assert (r.argv, r.returncode, r.stderr, r.host, r.ok) == (
        ("printf", "%s|", "a b", "$HOME", "*"), 0, "", None, True)
    lines: list[str] = []
    r = t.run(["sh", "-c", "echo one; echo two >&2; echo three"], stream=lines.append)
    assert sorted(lines) == ["one", "three", "two"]
    assert (r.stdout, r.stderr) == ("one\nthree\n", "two\n")
    with pytest.raises(CommandFailed) as info:
        t.run(["sh", "-c", "echo boom >&2; exit 3"])
    assert info.value.returncode == 3 and "boom" in str(info.value)


def test_check_false_returns_the_failure(tmp_path):
    r = LocalTransport().run(["sh", "-c", "exit 4"], check=False)
    assert (r.returncode, r.ok) == (4, False)


def test_local_transport_never_hands_its_stdin_to_the_command():
    # without input=..., the child reads /dev/null (an ssh client must never eat our terminal)
    r = LocalTransport().run(["sh", "-c", "cat; echo end"], timeout=10)
    assert r.stdout == "end\n"


def test_input_env_and_streamed_input():
    t = LocalTransport()
    assert t.run(["sh", "-c", 'cat; echo "$X"'], input="in\n", env={"X": "y"}).stdout == "in\ny\n"
    lines: list[str] = []
    t.run(["cat"], input=b"a\nb\n", stream=lines.append)
    assert lines == ["a", "b"]


@pytest.mark.parametrize("stream", [None, print])
def test_timeout_is_an_error_naming_the_command(stream):
    with pytest.raises(ConveyorError, match=r"timed out after 0.2 s: sleep 5"):
        LocalTransport().run(["sleep", "5"], timeout=0.2, stream=stream)


def test_unknown_command_has_a_hint():
    with pytest.raises(ConveyorError, match="command not found: no-such-cmd-xyz") as info:
        LocalTransport().run(["no-such-cmd-xyz"])
    assert info.value.hint == "install no-such-cmd-xyz or put it on PATH"


def test_put_creates_the_file_0600_and_get_reads_it(tmp_path):
    t = LocalTransport()
    path = tmp_path / "sub dir" / "app.env"
    t.put("SECRET=x\n", str(path))
    assert path.read_text() == "SECRET=x\n"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert t.get(str(path)) == b"SECRET=x\n"


def test_local_path_expands_the_home_directory():
    assert local_path("~/x") == local_path(os.path.expanduser("~") + "/x")
