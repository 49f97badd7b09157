"""proxy_switch.sh: the new nginx.conf renamed into place, checked by `nginx -t` (the previous
one put back if refused), SIGHUP, and done when a worker of the new configuration runs."""

from __future__ import annotations


def test_no_worker_of_the_new_configuration_exits_70(docker, tmp_path):
    conf = tmp_path / "proxy"
    conf.mkdir()
    (conf / "nginx.conf").write_text("old\n")
    docker.answer("EXEC_SH", out="11\n12\n")
    docker.answer("EXEC_NGINX", out="")
    # the loop's calls see the same PIDs: no new worker -> 70 after $3 s
    r = docker.run("proxy_switch", str(conf), "p", "1", input="new\n")
    assert r.returncode == 70, r.stderr
    assert (conf / "nginx.conf").read_text() == "new\n"
    assert (conf / "nginx.conf.prev").read_text() == "old\n"
    calls = docker.calls()
    assert ["kill", "--signal", "HUP", "p"] in calls
    assert ["exec", "p", "nginx", "-t", "-q", "-c", "/etc/conveyor-proxy/nginx.conf"] \
        in calls


def test_a_refused_configuration_is_put_back_and_nothing_reloads(docker, tmp_path):
    conf = tmp_path / "proxy"
    conf.mkdir()
    (conf / "nginx.conf").write_text("old\n")
    docker.answer("EXEC_SH", out="11\n")
    docker.answer("EXEC_NGINX", rc=1)
    r = docker.run("proxy_switch", str(conf), "p", "5", input="broken\n")
    assert r.returncode == 65
    assert (conf / "nginx.conf").read_text() == "old\n"
    assert not any(c[:1] == ["kill"] for c in docker.calls())


def test_a_proxy_that_does_not_run_exits_69_and_keeps_the_file(docker, tmp_path):
    conf = tmp_path / "proxy"
    conf.mkdir()
    (conf / "nginx.conf").write_text("old\n")
    docker.answer("EXEC_SH", rc=1)
    r = docker.run("proxy_switch", str(conf), "p", "5", input="new\n")
    assert r.returncode == 69
    assert (conf / "nginx.conf").read_text() == "old\n"


def test_new_worker_pid_means_switched(docker, tmp_path):
    conf = tmp_path / "proxy"
    docker.answer("EXEC_SH", out="11\n", rc="0")
    # before: 11; afterwards the fake's answer changes: a wrapper docker first on PATH
    wrapper = tmp_path / "bin2"
    wrapper.mkdir()
    real = docker.root / "bin" / "docker"
    (wrapper / "docker").write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{tmp_path}/n" 2>/dev/null || echo 0)\n'
        'if [ "$1 $3" = "exec sh" ]; then n=$((n + 1)); echo "$n" > "' + str(tmp_path) + '/n"; '
        'if [ "$n" -gt 1 ]; then echo 12; exit 0; fi; fi\n'
        f'exec "{real}" "$@"\n')
    (wrapper / "docker").chmod(0o755)
    docker.env["PATH"] = f"{wrapper}:{docker.env['PATH']}"
    r = docker.run("proxy_switch", str(conf), "p", "5", input="new\n")
    assert (r.returncode, r.stdout) == (0, "switched\n"), r.stderr
    assert (conf / "nginx.conf").read_text() == "new\n"


def test_switched_only_once_no_old_worker_accepts(docker, tmp_path):
    """New worker 12 next to old worker 11 (not yet shutting down: it may still take a new
    connection to the old upstream): not switched until 11 is gone from the list."""
    conf = tmp_path / "proxy"
    docker.answer("EXEC_SH", out="11\n", rc="0")
    wrapper = tmp_path / "bin2"
    wrapper.mkdir()
    real = docker.root / "bin" / "docker"
    count = tmp_path / "n"
    (wrapper / "docker").write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{count}" 2>/dev/null || echo 0)\n'
        'if [ "$1 $3" = "exec sh" ]; then n=$((n + 1)); echo "$n" > "' + str(count) + '"; '
        'if [ "$n" -ge 2 ] && [ "$n" -le 4 ]; then printf "11\\n12\\n"; exit 0; fi; '
        'if [ "$n" -gt 4 ]; then echo 12; exit 0; fi; fi\n'
        f'exec "{real}" "$@"\n')
    (wrapper / "docker").chmod(0o755)
    docker.env["PATH"] = f"{wrapper}:{docker.env['PATH']}"
    r = docker.run("proxy_switch", str(conf), "p", "5", input="new\n")
    assert (r.returncode, r.stdout) == (0, "switched\n"), r.stderr
    assert int(count.read_text()) == 5  # 1 before the HUP, 3 with the old worker, then done
