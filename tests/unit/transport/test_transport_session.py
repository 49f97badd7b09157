"""transport.session and its remote side, host/session.sh.

The script is run with `sh` here, the way ssh runs it on the host; then the Session protocol is
driven against a local shell."""

from __future__ import annotations

import subprocess

import pytest

from conveyor import host
from conveyor.transport import Session

MARK = "::conveyor-test::"


def _frame(script: str, data: bytes = b"") -> bytes:
    return f"{len(script.encode())} {len(data)}\n".encode() + script.encode() + data


def test_session_script_runs_framed_commands_and_marks_their_exit_codes():
    stdin = _frame("echo one; echo err >&2; exit 3") + _frame("wc -c; echo two", b"12345")
    p = subprocess.run(["sh", "-c", host.script("session"), "conveyor-session", MARK],
                       input=stdin, capture_output=True, timeout=10, check=False)
    assert p.returncode == 0
    assert p.stdout.decode() == f"one\n\n{MARK} 3\n5\ntwo\n\n{MARK} 0\n"
    assert p.stderr.decode() == f"err\n\n{MARK}\n\n{MARK}\n"


def test_session_script_drains_unread_input_and_gives_no_input_dev_null():
    stdin = (_frame("head -c 2; echo", b"abcdef") + _frame("cat; echo end")
             + _frame("printf %s \"$0\"", b"x"))
    p = subprocess.run(["sh", "-c", host.script("session"), "conveyor-session", MARK],
                       input=stdin, capture_output=True, timeout=10, check=False)
    assert p.stdout.decode() == f"ab\n\n{MARK} 0\nend\n\n{MARK} 0\nsh\n{MARK} 0\n"


def test_session_argv_is_the_host_script():
    assert host.argv("session", MARK) == ("sh", "-c", host.script("session"),
                                          "conveyor-session", MARK)


@pytest.fixture
def session():
    """The session protocol against a local shell (what ssh would run on the host)."""
    s = Session(["sh", "-c", 'eval "$2"', "conveyor-test"])
    s.lock.acquire()
    yield s
    s.close()


def test_session_runs_commands_one_after_another_with_exit_codes_and_both_streams(session):
    assert session.run("echo hi", None, 10, None) == (0, "hi\n", "")
    assert session.run("printf 'no newline'", None, 10, None) == (0, "no newline", "")
    rc, out, err = session.run("echo out; echo err >&2; printf 'x\\n\\n'; exit 3", None, 10,
                               None)
    assert (rc, out, err) == (3, "out\nx\n\n", "err\n")
    assert session.run("exit 0", None, 10, None) == (0, "", "")


def test_session_input_is_framed_even_when_the_command_reads_part_of_it(session):
    data = b"abcdefgh" + bytes(range(256)) * 400  # binary, 100 kB
    assert session.run("head -c 3; echo", data, 10, None) == (0, "abc\n", "")
    assert session.run("wc -c", data, 10, None)[1].strip() == str(len(data))
    assert session.run("true", data, 10, None) == (0, "", "")
    assert session.run("cat", None, 10, None) == (0, "", "")  # no input: /dev/null
    assert session.run("echo still in sync", None, 10, None) == (0, "still in sync\n", "")


def test_session_streams_lines_and_a_marker_in_the_output_is_not_confused(session):
    lines: list[str] = []
    rc, _, _ = session.run("for i in 1 2 3; do echo $i; done; printf '::conveyor-x:: 9\\n'",
                           None, 10, lines.append)
    assert rc == 0 and lines == ["1", "2", "3", "::conveyor-x:: 9"]


def test_session_timeout_kills_it(session):
    with pytest.raises(TimeoutError):
        session.run("sleep 5", None, 0.3, None)
    assert session.dead
