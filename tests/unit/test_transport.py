"""Transport: argv quoting, one-round-trip scripts, SSH options and errors, known_hosts edits.

No network here: the SSH transport is exercised against the test bed's VMs in
tests/e2e/test_dev.py; these tests pin what it sends to OpenSSH."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest

from conveyor.errors import CommandFailed
from conveyor.transport import (
    HostKeyError,
    HostUnreachable,
    LocalTransport,
    SshTarget,
    SshTransport,
    key_of,
    known_host_lines,
    known_hosts_name,
    sh,
    trust_host_keys,
)


def test_sh_quotes_every_value_and_allows_only_fixed_glue():
    argv = sh(("test", "a b; rm -rf /", "=", "x"), ">/dev/null", "2>&1", "||",
              ("echo", "$(whoami)"))
    assert argv[:2] == ("sh", "-c")
    assert argv[2] == "test 'a b; rm -rf /' = x >/dev/null 2>&1 || echo '$(whoami)'"
    out = subprocess.run(list(argv), capture_output=True, text=True)
    assert out.stdout == "$(whoami)\n"  # the value arrived as one literal argument
    with pytest.raises(ValueError):
        sh(("true",), "; rm -rf /")


def test_local_transport_runs_argv_without_a_shell_and_keeps_output(tmp_path):
    t = LocalTransport(cwd=tmp_path)
    r = t.run(["printf", "%s|", "a b", "$HOME", "*"])
    assert r.stdout == "a b|$HOME|*|"
    lines: list[str] = []
    r = t.run(["sh", "-c", "echo one; echo two >&2; echo three"], stream=lines.append)
    assert sorted(lines) == ["one", "three", "two"]
    with pytest.raises(CommandFailed) as info:
        t.run(["sh", "-c", "echo boom >&2; exit 3"])
    assert info.value.returncode == 3 and "boom" in str(info.value)


def test_local_transport_never_hands_its_stdin_to_the_command(tmp_path):
    # without input=..., the child reads /dev/null (an ssh client must never eat our terminal)
    r = LocalTransport().run(["sh", "-c", "cat; echo end"], timeout=10)
    assert r.stdout == "end\n"


def test_put_creates_the_file_0600_and_get_reads_it(tmp_path):
    t = LocalTransport()
    path = tmp_path / "sub dir" / "app.env"
    t.put("SECRET=x\n", str(path))
    assert path.read_text() == "SECRET=x\n"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert t.get(str(path)) == b"SECRET=x\n"


def _transport(tmp_path) -> SshTransport:
    return SshTransport(SshTarget(host="10.0.0.5", user="deploy", port=2222,
                                  known_hosts=str(tmp_path / "known_hosts"),
                                  identity=str(tmp_path / "id")))


def test_ssh_argv_always_verifies_the_host_key_and_multiplexes(tmp_path):
    t = _transport(tmp_path)
    try:
        argv = t.base_argv()
        joined = " ".join(argv)
        assert "StrictHostKeyChecking=yes" in joined
        assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in joined
        assert "GlobalKnownHostsFile=/dev/null" in joined
        assert "BatchMode=yes" in joined
        assert "ControlPath=" in joined
        assert "StrictHostKeyChecking=no" not in joined and "accept-new" not in joined
        assert argv[argv.index("-p") + 1] == "2222"
        assert argv[argv.index("-l") + 1] == "deploy"
    finally:
        t.close()


def test_ssh_without_known_hosts_is_refused():
    with pytest.raises(Exception) as info:
        SshTransport(SshTarget(host="h", known_hosts=None))
    assert "known_hosts" in str(info.value)


def test_remote_command_quotes_each_argument_once(tmp_path):
    t = _transport(tmp_path)
    try:
        cmd = t.remote_command(["docker", "run", "--label", "a=b c", "img", "sh", "-c", "x; y"],
                               env={"K": "v w"})
        assert shlex.split(cmd) == ["env", "K=v w", "docker", "run", "--label", "a=b c", "img",
                                    "sh", "-c", "x; y"]
    finally:
        t.close()


def test_connect_errors_are_classified_with_a_hint(tmp_path):
    t = _transport(tmp_path)
    try:
        changed = t._connect_error(
            "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\n"
            "Host key verification failed.\n")
        assert isinstance(changed, HostKeyError)
        assert "does NOT match" in str(changed) and "conveyor hosts trust" in changed.hint
        unknown = t._connect_error("No ED25519 host key is known for 10.0.0.5 and you have "
                                   "requested strict checking.\nHost key verification failed.")
        assert isinstance(unknown, HostKeyError) and "is not in" in str(unknown)
        refused = t._connect_error("ssh: connect to host 10.0.0.5 port 2222: Connection refused")
        assert isinstance(refused, HostUnreachable)
        assert HostKeyError.exit_code == 4
    finally:
        t.close()


def test_close_removes_the_control_directory(tmp_path):
    t = _transport(tmp_path)
    d = t._dir
    assert os.path.isdir(d)
    t.close()
    assert not os.path.exists(d)


def _keyline(tmp_path, name: str, host: str) -> str:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, b64 = (key.with_suffix(".pub")).read_text().split()[:2]
    return f"{host} {kind} {b64}"


def test_trust_replaces_only_that_hosts_keys(tmp_path):
    kh = tmp_path / "known_hosts"
    other = _keyline(tmp_path, "k_other", "10.9.9.9")
    old = _keyline(tmp_path, "k_old", "[10.0.0.5]:2222")
    kh.write_text(other + "\n" + old + "\n")
    assert known_hosts_name("10.0.0.5", 2222) == "[10.0.0.5]:2222"
    assert known_hosts_name("10.0.0.5", 22) == "10.0.0.5"
    assert [key_of(x) for x in known_host_lines(str(kh), "10.0.0.5", 2222)] == [key_of(old)]
    new = _keyline(tmp_path, "k_new", "[10.0.0.5]:2222")
    trust_host_keys(str(kh), "10.0.0.5", 2222, [new])
    lines = kh.read_text().split("\n")
    assert other in lines and new in lines and old not in lines
    assert not (tmp_path / "known_hosts.old").exists()


# --------------------------------------------------------------------------- command session


@pytest.fixture
def session():
    """The session protocol against a local shell (what ssh would run on the host)."""
    from conveyor.transport import _Session

    s = _Session(["sh", "-c", 'eval "$2"', "conveyor-test"])
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
    rc, out, _ = session.run("for i in 1 2 3; do echo $i; done; printf '::conveyor-x:: 9\\n'",
                             None, 10, lines.append)
    assert rc == 0 and lines == ["1", "2", "3", "::conveyor-x:: 9"]


def test_session_timeout_kills_it(session):
    with pytest.raises(TimeoutError):
        session.run("sleep 5", None, 0.3, None)
    assert session.dead
