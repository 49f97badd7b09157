"""The runner image reaches a host without the registry (none configured, or down): `docker
save` on this machine's engine piped over one SSH session into `docker load` on the test bed's
dev VM (a small image made here; removed from both engines afterwards)."""

from __future__ import annotations

import io
import secrets
import subprocess
import tarfile
from types import SimpleNamespace

import pytest

from conveyor.errors import ConveyorError
from conveyor.runner.image import load_over_ssh
from conveyor.transport import SshTarget, SshTransport
from tests.testbed import TEST_LABEL, main_docker_env, vm_docker_env

pytestmark = pytest.mark.integration


def _tiny_image(ref: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = secrets.token_bytes(64 * 1024)
        info = tarfile.TarInfo("payload")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    subprocess.run(["docker", "import", "--change", f"LABEL {TEST_LABEL}=1", "-", ref],
                   input=buf.getvalue(), env=main_docker_env(), check=True,
                   capture_output=True, timeout=120)


def test_the_runner_image_is_streamed_over_ssh_into_the_hosts_engine(testbed, monkeypatch):
    ref = f"conveyor-test/tiny-runner:{secrets.token_hex(4)}"
    vm = testbed["vms"]["dev"]
    target = SshTarget(host=vm["address"], user=vm["ssh_user"], port=vm["ssh_port"],
                       known_hosts=testbed["known_hosts"], identity=testbed["ssh_key"])
    for k, v in main_docker_env().items():
        monkeypatch.setenv(k, v)
    _tiny_image(ref)
    try:
        with SshTransport(target) as t:
            load_over_ssh(SimpleNamespace(transport=t, host=vm["address"]), ref)  # type: ignore[arg-type]
            r = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref],
                               env=vm_docker_env("dev"), capture_output=True, text=True,
                               timeout=60, check=False)
            assert r.returncode == 0, r.stderr
            local = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref],
                                   env=main_docker_env(), capture_output=True, text=True,
                                   timeout=60, check=False)
            assert r.stdout == local.stdout  # the same image, byte for byte

            with pytest.raises(ConveyorError, match="docker save failed"):
                load_over_ssh(SimpleNamespace(transport=t, host=vm["address"]),  # type: ignore[arg-type]
                              ref + "-missing")
    finally:
        for env in (main_docker_env(), vm_docker_env("dev")):
            subprocess.run(["docker", "image", "rm", "--force", ref], env=env,
                           capture_output=True, timeout=60, check=False)
