"""`conveyor ci` end to end on the test bed: a real git repository (a copy of examples/notes on
a feature branch), the real CLI, the registry on 127.0.0.1:5000, the dev "VM" on 127.0.1.1 and,
for `--promote` on the default branch, the prod "VM" on 127.0.2.1.

Each module run uses its own app name, image repository and dev and prod ports, so it neither
meets a concurrent session's deployment of the example nor leaves anything behind (the VMs'
objects carry the test bed's labels and are removed at the end).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.testbed import OWNER_LABEL, TEST_LABEL, ssh_argv, testbed_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "notes"
SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_AUTHOR_NAME": "ci-e2e",
           "GIT_AUTHOR_EMAIL": "ci-e2e@example.invalid", "GIT_COMMITTER_NAME": "ci-e2e",
           "GIT_COMMITTER_EMAIL": "ci-e2e@example.invalid"}
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _replace(text: str, old: str, new: str, count: int) -> str:
    assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times, expected {count}"
    return text.replace(old, new)


@pytest.fixture(scope="module")
def bed(testbed) -> dict:
    env = testbed_env()
    for name in ("CONVEYOR_DEV_HOST", "CONVEYOR_DEV_ADDRESS", "CONVEYOR_PROD_HOST",
                 "CONVEYOR_PROD_ADDRESS", "CONVEYOR_REGISTRY", "CONVEYOR_KNOWN_HOSTS",
                 "CONVEYOR_SSH_KEY", "BASE_PYTHON_IMAGE"):
        assert env.get(name), f"scripts/testbed env does not export {name}"
    return env


@pytest.fixture(scope="module")
def app(bed):
    """A unique app on the dev and prod VMs; its containers, network, volume, images, state and
    backups are removed after."""
    name = f"cinotes{secrets.token_hex(3)}"
    port = _free_port(bed["CONVEYOR_DEV_ADDRESS"])
    prod_port = _free_port(bed["CONVEYOR_PROD_ADDRESS"])
    yield {"name": name, "port": port, "password": secrets.token_urlsafe(12),
           "prod_port": prod_port, "prod_password": secrets.token_urlsafe(12)}
    for vm in ("dev", "prod"):
        script = (f"docker rm -f {name}-{vm}-app {name}-{vm}-app-previous "
                  f"{name}-{vm}-app-failed {name}-{vm}-app-next {name}-{vm}-db >/dev/null 2>&1; "
                  f"docker ps -aq --filter label=conveyor.app={name} | xargs -r docker rm -f "
                  f">/dev/null 2>&1; docker network rm {name}-{vm} >/dev/null 2>&1; "
                  f"docker volume rm {name}-{vm}-pgdata >/dev/null 2>&1; "
                  f"docker image ls -q {bed['CONVEYOR_REGISTRY']}/{name} | sort -u | "
                  f"xargs -r docker image rm -f >/dev/null 2>&1; "
                  f"rm -rf /var/lib/conveyor/{name}; true")
        subprocess.run(ssh_argv(vm, "sh", "-c", script), capture_output=True, timeout=120, check=False)
    subprocess.run(["sh", "-c", (f"docker image ls -q --filter label=conveyor.app={name} | "
                    "xargs -r docker image rm -f")], capture_output=True, timeout=120, check=False)


@pytest.fixture
def repo(tmp_path: Path, app) -> Path:
    """A copy of examples/notes as its own git repository, on a feature branch."""
    dest = tmp_path / "notes"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache",
                                                                 ".conveyor"))
    cfg = (dest / "conveyor.toml").read_text()
    cfg = re.sub(r'(?m)^name = "notes"$', f'name = "{app["name"]}"', cfg, count=1)
    cfg = _replace(cfg, 'image = "notes"', f'image = "{app["name"]}"', 1)
    # dev's port, then prod's (in this order in the file)
    assert cfg.count("\nport = 8080\n") == 2
    cfg = cfg.replace("\nport = 8080\n", f"\nport = {app['port']}\n", 1)
    cfg = cfg.replace("\nport = 8080\n", f"\nport = {app['prod_port']}\n", 1)
    # prod's backups live in the app's state directory (removed with it)
    cfg = _replace(cfg, 'dir = "/var/lib/conveyor/backups/notes"',
                   f'dir = "/var/lib/conveyor/{app["name"]}/backups"', 1)
    # everything conveyor creates on the VMs carries the test bed's labels
    for env in ("dev", "prod"):
        cfg = _replace(cfg, f"[environments.{env}.env]",
                       f'[environments.{env}.labels]\n"{TEST_LABEL}" = "1"\n'
                       f'"{OWNER_LABEL}" = "{os.getpid()}"\n\n[environments.{env}.env]', 1)
    (dest / "conveyor.toml").write_text(cfg)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "notes")
    git(dest, "checkout", "-q", "-b", "feature/ci-e2e")
    return dest


def run_conveyor(repo: Path, bed: dict, app: dict, command: str, *args: str,
                 extra_env: dict | None = None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "GITLAB_", "CI_", "CONVEYOR_", "NOTES_"))
           and k not in ("CI", "BUILD_ID", "PROJECT_ID", "BRANCH_NAME", "COMMIT_SHA")}
    env.update(bed)
    env["NOTES_DEV_DB_PASSWORD"] = app["password"]
    env["NOTES_PROD_DB_PASSWORD"] = app["prod_password"]
    env.update(extra_env or {})
    env = {k: v for k, v in env.items() if v is not None}
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH"
    return subprocess.run([uv, "run", "--project", str(ROOT), "conveyor", command, "-C",
                           str(repo), *args], cwd=repo.parent, env=env, capture_output=True,
                          text=True, timeout=900, stdin=subprocess.DEVNULL, check=False)


def run_ci(repo: Path, bed: dict, app: dict, *args: str, extra_env: dict | None = None):
    return run_conveyor(repo, bed, app, "ci", *args, extra_env=extra_env)


def vm_container(vm: str, name: str) -> dict:
    r = subprocess.run(ssh_argv(vm, "docker", "container", "inspect", name),
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def dev_container(app: dict) -> dict:
    return vm_container("dev", f"{app['name']}-dev-app")


def registry_has(image: str) -> bool:
    """HEAD the manifest of REPO@DIGEST on the test bed's registry (127.0.0.1:5000)."""
    repo, digest = image.split("@")
    registry, path = repo.split("/", 1)
    assert registry.startswith("127."), registry
    req = urllib.request.Request(f"http://{registry}/v2/{path}/manifests/{digest}", method="HEAD",
                                 headers={"Accept": "application/vnd.docker.distribution."
                                          "manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status == 200


def junit_cases(path: Path) -> dict[str, dict[str, ET.Element]]:
    root = ET.parse(path).getroot()
    return {s.get("name"): {c.get("name"): c for c in s.iter("testcase")}
            for s in root.iter("testsuite")}


def test_ci_on_a_feature_branch_builds_pushes_deploys_tests_and_reports(repo, bed, app,
                                                                        tmp_path):
    """Under (simulated) GitHub Actions: the job summary goes to $GITHUB_STEP_SUMMARY too."""
    head = git(repo, "rev-parse", "HEAD")
    step_summary = tmp_path / "github_step_summary.md"
    step_summary.write_text("earlier step\n")
    gh = {"GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_REF_NAME": "feature/ci-e2e",
          "GITHUB_REF_TYPE": "branch", "GITHUB_SHA": head,
          "GITHUB_SERVER_URL": "https://github.com",
          "GITHUB_REPOSITORY": "acme/notes", "GITHUB_RUN_ID": "4242",
          "GITHUB_STEP_SUMMARY": str(step_summary), "GITHUB_ACTOR": "ci-e2e"}
    junit, summary = tmp_path / "reports" / "junit.xml", tmp_path / "reports" / "summary.md"
    r = run_ci(repo, bed, app, "--junit", str(junit), "--summary", str(summary), extra_env=gh)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]

    # built and pushed: the local image log knows the digest, the registry has it
    images = json.loads((repo / ".conveyor" / "images.json").read_text())
    pushed = images["pushed"][-1]
    assert pushed["commit"] == head
    image = pushed["image"]
    assert image.startswith(f"{bed['CONVEYOR_REGISTRY']}/{app['name']}@sha256:")
    assert registry_has(image)

    # deployed: the dev VM's own engine runs exactly that digest, and the app answers
    c = dev_container(app)
    assert c["State"]["Running"]
    assert c["Config"]["Labels"]["conveyor.image"] == image
    assert c["Config"]["Labels"]["org.opencontainers.image.revision"] == head
    url = f"http://{bed['CONVEYOR_DEV_ADDRESS']}:{app['port']}/health"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200 and json.loads(resp.read())["database"] == "ok"

    # tests ran and are in the JUnit file, with the pipeline's stages
    suites = junit_cases(junit)
    stages = suites["conveyor"]
    for name in ("build", "push", "setup dev", "deploy dev: lock", "deploy dev: pull",
                 "deploy dev: migrate", "deploy dev: replace", "deploy dev: health", "test"):
        assert name in stages, (name, list(stages))
        assert stages[name].find("failure") is None, name
    app_tests = suites["dev: pytest"]
    assert "test_health_is_ok" in app_tests and len(app_tests) >= 20
    assert not any(c.find("failure") is not None for c in app_tests.values())

    # the summary, in the file and appended to the job summary
    text = summary.read_text()
    assert text.startswith(f"## ✅ conveyor ci: {app['name']} passed")
    assert ("`feature/ci-e2e` on GitHub Actions "
            "([run](https://github.com/acme/notes/actions/runs/4242))") in text
    assert image in text and "tests | passed" in text
    assert "2026-11-01-000001_create_notes" in text  # first deploy: all migrations applied
    assert step_summary.read_text() == "earlier step\n" + text
    assert app["password"] not in text and app["password"] not in junit.read_text()
    assert app["password"] not in r.stdout + r.stderr


def test_a_failing_test_fails_the_job_and_the_summary_names_it(repo, bed, app, tmp_path):
    (repo / "tests" / "test_zz_ci_fails.py").write_text(
        "def test_ci_must_fail():\n    assert 1 + 1 == 3, 'deliberately failing'\n")
    git(repo, "add", "tests/test_zz_ci_fails.py")
    git(repo, "commit", "-q", "-m", "a failing test")
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    r = run_ci(repo, bed, app, "--junit", str(junit), "--summary", str(summary))
    assert r.returncode == 19, r.stdout[-4000:] + r.stderr[-4000:]  # TestsFailed
    assert "conveyor ci failed at stage test" in r.stderr
    assert "test_ci_must_fail" in r.stderr

    text = summary.read_text()
    assert text.startswith(f"## ❌ conveyor ci: {app['name']} failed at stage **test** "
                           "(1 failed test)")
    assert "`feature/ci-e2e` on local (git)" in text
    assert "### Failed tests" in text
    assert "- `tests.test_zz_ci_fails::test_ci_must_fail`: AssertionError: deliberately failing" \
        in text
    assert re.search(r"\| test \| ❌ failed \|", text)
    assert re.search(r"\| deploy dev \| ✅ ok \|", text)

    suites = junit_cases(junit)
    assert suites["conveyor"]["test"].find("failure") is not None
    failing = suites["dev: pytest"]["test_ci_must_fail"].find("failure")
    assert failing is not None and "deliberately failing" in failing.get("message", "")
    assert suites["dev: pytest"]["test_health_is_ok"].find("failure") is None

    # the new image was deployed (the tests ran against it) and serves
    head = git(repo, "rev-parse", "HEAD")
    assert dev_container(app)["Config"]["Labels"]["org.opencontainers.image.revision"] == head


def test_promote_is_refused_on_a_feature_branch(repo, bed, app, tmp_path):
    summary = tmp_path / "summary.md"
    r = run_ci(repo, bed, app, "--promote", "--summary", str(summary))
    assert r.returncode == 25, r.stdout + r.stderr  # CiRefused
    assert "--promote is only for the default branch (main)" in r.stderr
    assert "feature/ci-e2e" in r.stderr
    assert not (repo / ".conveyor").exists(), "something was built"
    assert not summary.exists()


def test_a_failing_migration_fails_at_deploy_and_the_app_keeps_serving(repo, bed, app,
                                                                        tmp_path):
    # the module's earlier tests deployed the app; make sure something serves first
    first = run_ci(repo, bed, app, "--summary", str(tmp_path / "first.md"))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    serving = dev_container(app)["Config"]["Labels"]["conveyor.image"]

    broken = repo / "migrations" / "2026-12-01-000001_broken"
    broken.mkdir()
    (broken / "up.sql").write_text("CREATE TABL broken (id int);\n")
    (broken / "down.sql").write_text("DROP TABLE broken;\n")
    git(repo, "add", "migrations")
    git(repo, "commit", "-q", "-m", "a broken migration")
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    r = run_ci(repo, bed, app, "--junit", str(junit), "--summary", str(summary))
    assert r.returncode == 8, r.stdout[-4000:] + r.stderr[-4000:]  # MigrationStepFailed
    text = summary.read_text()
    assert text.startswith(f"## ❌ conveyor ci: {app['name']} failed at stage **deploy dev**")
    assert "Step: `migrate` (failed)" in text
    assert "2026-12-01-000001_broken" in text
    assert re.search(r"\| test \| ⏭️ not run \|", text)
    cases = junit_cases(junit)["conveyor"]
    assert cases["deploy dev: migrate"].find("failure") is not None
    assert cases["test"].find("skipped") is not None
    # the app was not touched
    assert dev_container(app)["Config"]["Labels"]["conveyor.image"] == serving


def test_a_missing_secret_fails_the_job_naming_it(repo, bed, app, tmp_path):
    """The example's database passwords are generated on the hosts; an app secret of dev that
    the CI does not provide stops the job before anything is deployed, naming the variable."""
    cfg = repo / "conveyor.toml"
    cfg.write_text(cfg.read_text() + '\n[environments.dev.secrets]\n'
                   'SESSION_KEY = { env = "NOTES_DEV_SESSION_KEY" }\n')
    git(repo, "commit", "-q", "-am", "a dev secret")
    summary, junit = tmp_path / "summary.md", tmp_path / "junit.xml"
    r = run_ci(repo, bed, app, "--summary", str(summary), "--junit", str(junit),
               extra_env={"NOTES_DEV_SESSION_KEY": None})
    assert r.returncode != 0, r.stdout[-3000:]
    text = summary.read_text()
    assert text.startswith(f"## ❌ conveyor ci: {app['name']} failed at stage **deploy dev**")
    assert "NOTES_DEV_SESSION_KEY" in text and "not set" in text
    assert re.search(r"\| test \| ⏭️ not run \|", text)
    assert junit_cases(junit)["conveyor"]["deploy dev"].find("failure") is not None


def test_promote_on_the_default_branch_puts_the_digest_that_passed_dev_in_prod(repo, bed, app,
                                                                             tmp_path):
    """`conveyor ci --promote` on main: build, push, deploy dev, test, then the prod stage with
    exactly the digest that passed dev in this job (no --force needed), validated on prod."""
    git(repo, "checkout", "-q", "main")
    head = git(repo, "rev-parse", "HEAD")
    # prod's database container is created once, by hand (the CI job sets up dev only)
    setup = run_conveyor(repo, bed, app, "setup", "prod")
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]

    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    r = run_ci(repo, bed, app, "--promote", "--junit", str(junit), "--summary", str(summary))
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]

    pushed = json.loads((repo / ".conveyor" / "images.json").read_text())["pushed"][-1]
    assert pushed["commit"] == head
    image = pushed["image"]
    # the same digest on dev and on prod, each VM's own engine says so
    assert dev_container(app)["Config"]["Labels"]["conveyor.image"] == image
    prod = vm_container("prod", f"{app['name']}-prod-app")
    assert prod["State"]["Running"]
    assert prod["Config"]["Labels"]["conveyor.image"] == image
    assert prod["Config"]["Labels"]["org.opencontainers.image.revision"] == head
    assert prod["Config"]["Labels"]["conveyor.env"] == "prod"
    url = f"http://{bed['CONVEYOR_PROD_ADDRESS']}:{app['prod_port']}/health"
    assert url.startswith("http://127.")
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200 and json.loads(resp.read())["database"] == "ok"

    # the summary lists the promote stage, promoted from this job's dev deployment
    text = summary.read_text()
    assert text.startswith(f"## ✅ conveyor ci: {app['name']} passed"), text
    assert "`main` on local (git)" in text
    assert re.search(r"\| promote prod \| ✅ ok \|", text), text
    dev_deployment = re.search(r"\(deployment `([^`]+)`\)", text).group(1)
    assert f"passed dev in deployment {dev_deployment}" in text
    assert f":{app['prod_port']}" in text
    # ... and so does the JUnit file, step by step
    stages = junit_cases(junit)["conveyor"]
    for name in ("build", "push", "setup dev", "deploy dev: migrate", "test",
                 "promote prod: lock", "promote prod: pull", "promote prod: plan",
                 "promote prod: backup", "promote prod: stop", "promote prod: migrate",
                 "promote prod: start", "promote prod: health", "promote prod: validate"):
        assert name in stages, (name, list(stages))
        assert stages[name].find("failure") is None and stages[name].find("skipped") is None, \
            name
    everything = r.stdout + r.stderr + text + junit.read_text()
    assert app["password"] not in everything and app["prod_password"] not in everything
