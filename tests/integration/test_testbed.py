"""The test bed is real: SSH host keys are checked, and an image built on the main engine travels
through the registry to the prod VM's own engine, where it serves on the VM's address."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.testbed import REPO_ROOT, label_args, main_docker_env, ssh_argv

pytestmark = pytest.mark.integration

NOTES = REPO_ROOT / "examples" / "notes"


def _run(argv: list[str], *, timeout: float = 120, env=None, check: bool = True):
    proc = subprocess.run(
        argv,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(argv)}` exited {proc.returncode}\n--- stdout ---\n"
            f"{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return proc


def _ssh(vm: str, *argv: str, timeout: float = 120, check: bool = True):
    return _run(ssh_argv(vm, *argv), timeout=timeout, check=check)


def _with_known_hosts(argv: list[str], path) -> list[str]:
    """ssh argv with another known_hosts file (and no global one to fall back on)."""
    out = [f"UserKnownHostsFile={path}" if a.startswith("UserKnownHostsFile=") else a for a in argv]
    assert out != argv, "ssh_argv() must name a UserKnownHostsFile"
    return [out[0], "-o", "GlobalKnownHostsFile=/dev/null", *out[1:]]


def test_ssh_refuses_a_wrong_or_unknown_host_key(testbed, tmp_path):
    prod = testbed["vms"]["prod"]
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
        check=True,
        capture_output=True,
    )
    keytype, key = (tmp_path / "other.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"{prod['address']} {keytype} {key}\n")

    refused = _run(_with_known_hosts(ssh_argv("prod", "true"), wrong), check=False, timeout=60)
    assert refused.returncode == 255, refused
    assert (
        "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr
        or "Host key verification failed" in refused.stderr
    ), refused.stderr

    unknown = tmp_path / "known_hosts_empty"
    unknown.write_text("")
    refused = _run(_with_known_hosts(ssh_argv("prod", "true"), unknown), check=False, timeout=60)
    assert refused.returncode == 255, refused
    assert "Host key verification failed" in refused.stderr, refused.stderr

    # the same command with the test bed's known_hosts gets through
    ok = _ssh("prod", "sh", "-c", 'echo "$DOCKER_HOST"', timeout=60)
    assert ok.stdout.strip() == prod["docker_host"]


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 3) -> tuple[int | None, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as e:
        return None, str(e)


def _delete_from_registry(registry: str, repo: str, tag: str) -> None:
    """Best effort: drop the test tag's manifest from the registry (deletion is enabled)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    accept = (
        "application/vnd.docker.distribution.manifest.v2+json, "
        "application/vnd.oci.image.manifest.v1+json"
    )
    try:
        head = urllib.request.Request(
            f"http://{registry}/v2/{repo}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": accept},
        )
        with opener.open(head, timeout=10) as r:
            digest = r.headers["Docker-Content-Digest"]
        delete = urllib.request.Request(
            f"http://{registry}/v2/{repo}/manifests/{digest}", method="DELETE"
        )
        opener.open(delete, timeout=10).close()
    except (OSError, urllib.error.URLError, KeyError, TypeError):
        pass


def test_image_from_registry_runs_on_prod_vm_only(testbed):
    assert (NOTES / "Dockerfile").is_file(), f"the example app is missing: {NOTES}/Dockerfile"
    uid = uuid.uuid4().hex[:12]
    repo = "conveyor-test/notes"
    tag = f"{testbed['registry']}/{repo}:{uid}"
    prod = testbed["vms"]["prod"]
    address = prod["address"]
    net, db, app = f"cvtest-net-{uid}", f"cvtest-db-{uid}", f"cvtest-app-{uid}"
    password = uuid.uuid4().hex
    main_env = main_docker_env()
    labels = label_args()
    try:
        _run(
            [
                "docker",
                "build",
                "--build-arg",
                f"BASE_IMAGE={testbed['images']['python']}",
                *labels,
                "-t",
                tag,
                str(NOTES),
            ],
            env=main_env,
            timeout=1200,
        )
        _run(["docker", "push", tag], env=main_env, timeout=600)
        built_id = _run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", tag], env=main_env
        ).stdout.strip()

        # the prod VM's engine is its own, not the main one
        main_info = json.loads(
            _run(["docker", "info", "--format", "{{json .}}"], env=main_env).stdout
        )
        prod_info = json.loads(_ssh("prod", "docker", "info", "--format", "{{json .}}").stdout)
        assert prod_info["DockerRootDir"] != main_info["DockerRootDir"]
        assert prod_info["DockerRootDir"] == prod.get("data_root", prod_info["DockerRootDir"])
        assert "conveyor.testbed.engine=prod" in (prod_info.get("Labels") or [])
        assert "conveyor.testbed.engine=prod" not in (main_info.get("Labels") or [])
        assert _ssh("prod", "docker", "image", "inspect", tag, check=False).returncode != 0, (
            "the image is on the prod VM before it was pulled there"
        )

        _ssh("prod", "docker", "network", "create", *labels, net)
        _ssh(
            "prod",
            "docker",
            "run",
            "-d",
            "--name",
            db,
            "--network",
            net,
            *labels,
            "-e",
            f"POSTGRES_PASSWORD={password}",
            "-e",
            "POSTGRES_USER=notes",
            "-e",
            "POSTGRES_DB=notes",
            testbed["images"]["postgres"],
        )
        _ssh("prod", "docker", "pull", tag, timeout=600)
        pulled_id = _ssh(
            "prod", "docker", "image", "inspect", "--format", "{{.Id}}", tag
        ).stdout.strip()
        assert pulled_id == built_id

        port = _free_port(address)
        _ssh(
            "prod",
            "docker",
            "run",
            "-d",
            "--name",
            app,
            "--network",
            net,
            *labels,
            "-e",
            f"DATABASE_URL=postgresql://notes:{password}@{db}:5432/notes",
            "-p",
            f"{address}:{port}:8000",
            tag,
        )

        url = f"http://{address}:{port}/health"
        deadline = time.monotonic() + 180
        status, body = None, ""
        while time.monotonic() < deadline:
            status, body = _get(url)
            if status == 200:
                break
            time.sleep(0.5)
        if status != 200:
            logs = {
                c: _ssh("prod", "docker", "logs", "--tail", "40", c, check=False) for c in (db, app)
            }
            pytest.fail(
                f"{url} did not answer 200 within 180 s (last: {status} {body})\n"
                + "\n".join(
                    f"--- docker logs {c} ---\n{p.stdout}{p.stderr}" for c, p in logs.items()
                ),
                pytrace=False,
            )
        assert json.loads(body).get("database") == "ok", body

        # only the prod VM has the image; the dev VM never saw it
        dev = _ssh("dev", "docker", "image", "inspect", tag, check=False)
        assert dev.returncode != 0 and "No such image" in dev.stderr, dev
        assert (
            _ssh("dev", "docker", "images", "-q", f"{testbed['registry']}/{repo}").stdout.strip()
            == ""
        )
    finally:
        _ssh("prod", "docker", "rm", "-f", "-v", app, db, check=False)
        _ssh("prod", "docker", "network", "rm", net, check=False)
        _ssh("prod", "docker", "image", "rm", "-f", tag, check=False)
        _run(["docker", "image", "rm", "-f", tag], env=main_env, check=False)
        _delete_from_registry(testbed["registry"], repo, uid)
