"""with_env_file.sh: stdin -> a 0600 env file, the command run, the file removed whatever."""

import pytest

ENV = "DATABASE_URL=postgresql://app:secret@db/app\n"


def test_the_command_reads_the_file_and_it_is_removed_afterwards(docker, tmp_path):
    f = tmp_path / "state" / "new" / "migrate.env"

    r = docker.run("with_env_file", str(f), "sh", "-c",
                   'cat "$1"; stat -c "%a" "$1" "$(dirname "$1")"', "-", str(f), input=ENV)

    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == ENV + "600\n700\n"
    assert not f.exists()
    assert f.parent.is_dir()


@pytest.mark.parametrize("code", [1, 7, 125])
def test_the_commands_exit_code_is_passed_on_and_the_file_removed(docker, tmp_path, code):
    f = tmp_path / "migrate.env"

    r = docker.run("with_env_file", str(f), "sh", "-c", f"test -s {f} && exit {code}",
                   input=ENV)

    assert r.returncode == code
    assert not f.exists()


def test_a_missing_command_exits_127_and_the_file_is_removed(docker, tmp_path):
    f = tmp_path / "migrate.env"

    r = docker.run("with_env_file", str(f), "no-such-command-here", input=ENV)

    assert r.returncode == 127
    assert not f.exists()


def test_the_command_gets_the_arguments_as_they_are(docker, tmp_path):
    f = tmp_path / "migrate.env"

    r = docker.run("with_env_file", str(f), "docker", "run", "--env-file", str(f),
                   "img@sha256:ab", "sh", "-c", "echo 'a  b' $X", input=ENV)

    assert r.returncode == 0
    assert docker.calls() == [["run", "--env-file", str(f), "img@sha256:ab", "sh", "-c",
                               "echo 'a  b' $X"]]
    assert not f.exists()
