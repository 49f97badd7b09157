"""Helpers for end-to-end tests on the test bed: a copy of examples/notes in a git repository
of its own, the `conveyor` CLI run against it, and the VMs' engines and databases for the
assertions.

    project = Project.create(tmp_dir, testbed, app="notes-x", envs=("dev", "prod"))
    project.ok("build"); image = project.build_and_push()
    project.vm("prod").psql(project.db("prod"), "SELECT 1")
    http("GET", project.url("prod") + "/health")

Isolation: each Project has its own app name (containers `<app>-<env>-*`, network, volume,
image repository), a free port on each VM's address, state and backup directories under the
test's tmp dir, random database passwords, and the test bed's labels (conveyor.test=1 and the
owner PID) on everything conveyor creates. `cleanup()` removes it all from the VMs and the main
engine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.testbed import OWNER_LABEL, TEST_LABEL, main_docker_env, testbed_env, vm_docker_env

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"
ORIGINAL_MIGRATIONS = sorted(p.name for p in (EXAMPLE / "migrations").iterdir() if p.is_dir())
TIMEOUT = 600


def version_of(name: str) -> str:
    return name.split("_")[0].replace("-", "")


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: dict | None = None,
         timeout: float = 10) -> tuple[int | None, dict | str]:
    """(status, JSON body or text); status None when nothing answers. 127.x addresses only."""
    assert url.startswith("http://127."), url
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return None, str(exc)
    try:
        return r.status, (json.loads(raw) if raw else "")
    except ValueError:
        return r.status, raw


def label_compose_file(path: Path, labels: dict[str, str]) -> None:
    """Label a copied example's compose containers, default network and volume (test hygiene)."""
    lines = "".join(f'      {k}: "{v}"\n' for k, v in labels.items())
    text = path.read_text()
    for service in ("db", "app"):
        needle = f"\n  {service}:\n"
        assert needle in text, f"service {service} not found in {path}"
        text = text.replace(needle, f"{needle}    labels:\n{lines}", 1)
    assert text.rstrip().endswith("volumes:\n  pgdata:"), "the example's volumes section moved"
    text = text.rstrip() + "\n    labels:\n" + lines
    text += "\nnetworks:\n  default:\n    labels:\n" + lines
    path.write_text(text)


class ExampleCopy:
    """What the e2e copies of the other examples (memos, ledger) share: their own git
    repository, the CLI's `ok`/`result`, docker on a VM's engine or the main one, names, and the
    clean-up of both VMs and the main engine. A subclass sets `app`, `dir`, `addresses`,
    `ports`, `registry`, `local_image`, `vm_envs` and defines `run`."""

    ENVS: tuple[str, ...] = ("dev", "prod")
    app: str
    dir: Path
    addresses: dict[str, str]
    ports: dict[str, int]
    registry: str
    local_image: str
    vm_envs: dict[str, dict[str, str]]

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        raise NotImplementedError

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        p = self.run(*args, **kw)
        assert p.returncode == 0, (f"conveyor {' '.join(args)} exited {p.returncode}:\n"
                                   f"{p.stdout[-6000:]}\n{p.stderr[-4000:]}")
        return p

    @staticmethod
    def result(p: subprocess.CompletedProcess) -> dict:
        """The final `result` event of a --json run."""
        return json.loads(p.stdout.strip().splitlines()[-1])

    # the repository
    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.dir), "-c", "user.name=e2e",
                               "-c", "user.email=e2e@localhost", *args], check=True,
                              capture_output=True, text=True, timeout=60).stdout.strip()

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    # the engines
    def docker(self, env: str | None, *argv: str, check: bool = True
               ) -> subprocess.CompletedProcess:
        """docker on a VM's engine (env "dev"/"prod") or on the main engine (None)."""
        p = subprocess.run(["docker", *argv], capture_output=True, text=True,
                           env=self.vm_envs[env] if env else main_docker_env(), timeout=180,
                           check=False)
        if check:
            assert p.returncode == 0, f"docker {' '.join(argv)} on {env or 'main'}: {p.stderr}"
        return p

    def url(self, env: str) -> str:
        return f"http://{self.addresses[env]}:{self.ports[env]}"

    def container(self, env: str, suffix: str = "app") -> str:
        return f"{self.app}-{env}-{suffix}"

    def app_label(self, env: str, label: str) -> str:
        return self.docker(env, "inspect", "--format",
                           f'{{{{index .Config.Labels "{label}"}}}}',
                           self.container(env)).stdout.strip()

    def cleanup(self) -> None:
        if self.dir.exists():
            self.run("down", "--volumes", timeout=300)
        for e in self.ENVS:
            names = [self.container(e, s) for s in ("app", "app-previous", "app-failed",
                                                     "app-next", "db", "runner")]
            self.docker(e, "rm", "--force", "--volumes", *names, check=False)
            for c in self.docker(e, "ps", "-aq", "--filter", f"label=conveyor.app={self.app}",
                                 check=False).stdout.split():
                self.docker(e, "rm", "--force", "--volumes", c, check=False)
            self.docker(e, "network", "rm", f"{self.app}-{e}", check=False)
            self.docker(e, "volume", "rm", f"{self.app}-{e}-pgdata", check=False)
            ids = self.docker(e, "image", "ls", "-q", f"{self.registry}/{self.app}",
                              check=False).stdout.split()
            if ids:
                self.docker(e, "image", "rm", "--force", *set(ids), check=False)
        tags = self.docker(None, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                           f"{self.registry}/{self.app}", check=False).stdout.split()
        for tag in [*tags, self.local_image]:
            self.docker(None, "image", "rm", "--force", tag, check=False)


class Vm:
    """A test-bed VM's own Docker engine, used from this machine for the assertions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.env = vm_docker_env(name)

    def docker(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(["docker", *argv], capture_output=True, text=True, env=self.env,
                           timeout=120, check=False)
        if check:
            assert p.returncode == 0, f"docker {' '.join(argv)} on the {self.name} VM: {p.stderr}"
        return p

    def psql(self, container: str, user: str, db: str, sql: str) -> list[str]:
        out = self.docker("exec", container, "psql", "-XAtq", "-v", "ON_ERROR_STOP=1",
                          "-U", user, "-d", db, "-c", sql).stdout
        return [line for line in out.splitlines() if line]

    def inspect(self, name: str) -> dict | None:
        p = self.docker("container", "inspect", name, check=False)
        return json.loads(p.stdout)[0] if p.returncode == 0 else None


class Project:
    """A copy of examples/notes (own git repository) and the CLI run against it."""

    def __init__(self, root: Path, app: str, envs: tuple[str, ...], testbed: dict) -> None:
        self.root = root
        self.dir = root / app
        self.app = app
        self.envs = envs
        self.testbed = testbed
        self.addresses = {e: testbed["vms"][e]["address"] for e in envs}
        self.ports = {e: free_port(a) for e, a in self.addresses.items()}
        self.passwords = {e: f"e2e-{e}-" + uuid.uuid4().hex[:16] for e in envs}
        bed = testbed_env()
        self.registry = bed["CONVEYOR_REGISTRY"]
        self.env = {**os.environ, **bed, "CONVEYOR_ACTOR": "e2e-test",
                    **{f"NOTES_{e.upper()}_DB_PASSWORD": pw for e, pw in self.passwords.items()}}
        self.env.pop("DOCKER_HOST", None)
        self.vms = {e: Vm(e) for e in envs}
        self.images: list[str] = []

    @classmethod
    def create(cls, root: Path, testbed: dict, *, app: str,
               envs: tuple[str, ...] = ("dev", "prod"), health_timeout: float | None = None,
               version: str = "v1") -> Project:
        p = cls(root, app, envs, testbed)
        shutil.copytree(EXAMPLE, p.dir, ignore=shutil.ignore_patterns(
            "__pycache__", ".pytest_cache", ".conveyor"))
        toml = (p.dir / "conveyor.toml").read_text()
        toml = re.sub(r'(?m)^name = "notes"$', f'name = "{app}"', toml, count=1)
        toml = re.sub(r'(?m)^image = "notes"', f'image = "{app}"', toml, count=1)
        # the image says which version it is (GET /health -> "version")
        toml = toml.replace("[app.build_args]\n", f'[app.build_args]\nAPP_VERSION = "{version}"\n',
                            1)
        if health_timeout is not None:
            toml, n = re.subn(r"(?ms)(\[app\.health\].*?^timeout = )\d+",
                              rf"\g<1>{health_timeout:g}", toml, count=1)
            assert n == 1, "the example's health timeout moved"
        for e in envs:
            state = root / "state" / e
            extra = (f'state_dir = "{state}"\n'
                     f'labels = {{ "{TEST_LABEL}" = "1", "{OWNER_LABEL}" = "{os.getpid()}" }}\n')
            toml = toml.replace(f"[environments.{e}]\n", f"[environments.{e}]\n" + extra, 1)
            toml, n = re.subn(rf"(?ms)(\[environments\.{e}\].*?^port = )8080",
                              rf"\g<1>{p.ports[e]}", toml, count=1)
            assert n == 1, f"the example's {e} port moved"
        toml, n = re.subn(r'(?m)^dir = "/var/lib/conveyor/backups/notes"$',
                          f'dir = "{root / "backups"}"', toml)
        assert n == 1, "the example's prod backup dir moved"
        (p.dir / "conveyor.toml").write_text(toml)
        (p.dir / ".gitignore").write_text("__pycache__/\n")  # the tests run in this tree
        subprocess.run(["git", "init", "-q", "-b", "main", str(p.dir)], check=True)
        p.commit("a copy of examples/notes")
        p.cleanup()
        return p

    # the CLI
    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "conveyor.main", *args, "-C", str(self.dir)]

    def run(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        p = self.run(*args, **kw)
        assert p.returncode == 0, (f"conveyor {' '.join(args)} exited {p.returncode}:\n"
                                   f"{p.stdout[-5000:]}\n{p.stderr[-3000:]}")
        return p

    def fails(self, code: int, *args: str, **kw) -> subprocess.CompletedProcess:
        p = self.run(*args, **kw)
        assert p.returncode == code, (f"conveyor {' '.join(args)} exited {p.returncode}, "
                                      f"expected {code}:\n{p.stdout[-5000:]}\n{p.stderr[-3000:]}")
        return p

    @staticmethod
    def result(p: subprocess.CompletedProcess) -> dict:
        """The final `result` event of a --json run."""
        return json.loads(p.stdout.strip().splitlines()[-1])

    def history(self, env: str) -> list[dict]:
        return json.loads(self.ok("history", env, "--json").stdout)

    # the repository
    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.dir), "-c", "user.name=e2e",
                               "-c", "user.email=e2e@localhost", *args], check=True,
                              capture_output=True, text=True, timeout=60).stdout.strip()

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    def add_migration(self, name: str, up: str, down: str) -> str:
        d = self.dir / "migrations" / name
        d.mkdir()
        (d / "up.sql").write_text(up)
        (d / "down.sql").write_text(down)
        return name

    def set_version(self, version: str) -> None:
        path = self.dir / "conveyor.toml"
        text, n = re.subn(r'(?m)^APP_VERSION = ".*"$', f'APP_VERSION = "{version}"',
                          path.read_text())
        assert n == 1
        path.write_text(text)

    def build_and_push(self) -> str:
        self.ok("build")
        image = self.result(self.ok("push", "--json"))["image"]
        self.images.append(image)
        return image

    # the environments
    def url(self, env: str) -> str:
        return f"http://{self.addresses[env]}:{self.ports[env]}"

    def container(self, env: str, suffix: str = "app") -> str:
        return f"{self.app}-{env}-{suffix}"

    def psql(self, env: str, sql: str) -> list[str]:
        return self.vms[env].psql(self.container(env, "db"), "notes", "notes", sql)

    def migrations(self, env: str) -> list[str]:
        return self.psql(env, "SELECT version FROM __diesel_schema_migrations ORDER BY 1")

    def columns(self, env: str, table: str = "notes") -> list[str]:
        return self.psql(env, "SELECT column_name FROM information_schema.columns WHERE "
                              f"table_name = '{table}' ORDER BY ordinal_position")

    def count(self, env: str, table: str = "notes") -> int:
        return int(self.psql(env, f"SELECT count(*) FROM {table}")[0])

    def cleanup(self) -> None:
        for e, vm in self.vms.items():
            names = [self.container(e, s) for s in ("app", "app-previous", "app-failed",
                                                     "app-next", "db")]
            vm.docker("rm", "--force", "--volumes", *names, check=False)
            for c in vm.docker("ps", "-aq", "--filter", f"label=conveyor.app={self.app}",
                               check=False).stdout.split():
                vm.docker("rm", "--force", c, check=False)
            vm.docker("network", "rm", f"{self.app}-{e}", check=False)
            vm.docker("volume", "rm", f"{self.app}-{e}-pgdata", check=False)
            images = vm.docker("image", "ls", "-q", f"{self.registry}/{self.app}",
                               check=False).stdout.split()
            if images:
                vm.docker("image", "rm", "--force", *set(images), check=False)
        main = main_docker_env()
        tags = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                               f"{self.registry}/{self.app}"], capture_output=True, text=True,
                              env=main, timeout=60, check=False).stdout.split()
        if tags:
            subprocess.run(["docker", "rmi", "--force", *tags], capture_output=True, env=main,
                           timeout=120, check=False)
