"""strategy = "zero-downtime": the plans' steps in order, the new container's argv (no published
port, the deployment's alias), the proxy's configuration and container, the dispatch (CLI and
runner), and the recreate path left as it is."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conveyor.config import load_config
from conveyor.errors import ConfigError
from conveyor.imageref import ImageRef
from conveyor.plans.rollback import rollback_plans
from conveyor.plans.setup import setup_plan
from conveyor.plans.zero_downtime import plans_for, zero_downtime_plans
from conveyor.runner.job import build, job_for
from conveyor.state.deploy import ProdOptions
from conveyor.steps import proxy
from conveyor.targets.remote import Remote

IMAGE = ImageRef("127.0.0.1:5000/notes", "sha256:" + "ab" * 32, "rev")
DID = "20270101T000000Z-abcd"


@pytest.fixture(autouse=True)
def secrets_env(monkeypatch):
    monkeypatch.setenv("PW", "s3cret-pw")
    monkeypatch.setenv("CONVEYOR_ACTOR", "alice")


def remote(tmp_path: Path, strategy: str | None = "zero-downtime") -> Remote:
    (tmp_path / "known_hosts").write_text("")
    line = f'strategy = "{strategy}"' if strategy else ""
    (tmp_path / "conveyor.toml").write_text(textwrap.dedent(f"""
        [app]
        name = "notes"
        image = "notes"
        port = 8000
        [registry]
        address = "127.0.0.1:5000"
        [environments.dev]
        host = "root@10.0.0.5:22"
        known_hosts = "known_hosts"
        [environments.dev.database]
        kind = "container"
        password = {{ env = "PW" }}
        [environments.prod]
        host = "root@10.0.0.6:22"
        known_hosts = "known_hosts"
        address = "127.0.2.1"
        port = 8080
        promote_from = "dev"
        state_dir = "/srv/conveyor"
        {line}
        [environments.prod.proxy]
        image = "nginx:test"
        drain_timeout = 7
        [environments.prod.database]
        kind = "container"
        password = {{ env = "PW" }}
    """))
    return Remote(load_config(tmp_path), "prod")


def names(dep) -> list[str]:
    return [s.name for s in dep.main.steps]


def test_the_default_strategy_is_recreate_and_keeps_the_prod_plan(tmp_path):
    r = remote(tmp_path, None)
    assert r.env.strategy == "recreate"
    dep = plans_for(r, IMAGE, ProdOptions(project_dir=tmp_path), strategy=None,
                    deployment_id=DID)
    assert "stop" in names(dep) and "switch" not in names(dep)
    assert "proxy" not in [s.name for s in setup_plan(r).steps]
    with pytest.raises(ConfigError, match="no proxy"):
        plans_for(r, IMAGE, ProdOptions(project_dir=tmp_path), strategy="zero-downtime")


def test_zero_downtime_never_stops_the_old_version_before_the_switch(tmp_path):
    dep = plans_for(remote(tmp_path), IMAGE, ProdOptions(project_dir=tmp_path), strategy=None,
                    deployment_id=DID)
    n = names(dep)
    assert n[n.index("pull"):] == ["pull", "proxy", "classify", "plan", "backup", "migrate",
                                   "start", "health", "switch", "validate", "drain", "retire"]
    assert "stop" not in n
    assert dep.record.details["strategy"] == "zero-downtime"
    dep.describe()  # printable without secrets or a host


def test_recreate_for_one_deploy_stops_migrates_and_starts_behind_the_proxy(tmp_path):
    dep = plans_for(remote(tmp_path), IMAGE, ProdOptions(project_dir=tmp_path),
                    strategy="recreate", deployment_id=DID)
    n = names(dep)
    assert n[n.index("backup"):] == ["backup", "stop", "takeover", "migrate", "start", "health",
                                     "switch", "validate", "drain", "retire"]
    assert dep.record.details["strategy"] == "recreate"


def test_rollback_behind_the_proxy(tmp_path):
    r = remote(tmp_path)
    dep = rollback_plans(r, IMAGE, ProdOptions(project_dir=tmp_path), deployment_id=DID)
    assert names(dep)[-6:] == ["start", "health", "switch", "validate", "drain", "retire"]
    dep = rollback_plans(r, IMAGE, ProdOptions(project_dir=tmp_path, migrations=True))
    assert "revert" in names(dep) and "stop" in names(dep)


def test_the_new_container_publishes_nothing_and_has_the_deployments_alias(tmp_path):
    r = remote(tmp_path)
    argv = proxy.beside_argv(r, IMAGE, DID, "rev")
    assert argv[:2] == ("docker", "create")
    assert "--publish" not in argv
    i = argv.index("--name")
    assert argv[i + 1] == "notes-prod-app-next"
    assert argv[i + 2:i + 6] == ("--network", "notes-prod", "--network-alias",
                                 f"notes-prod-v-{DID.lower()}")
    assert f"conveyor.upstream=notes-prod-v-{DID.lower()}" in argv
    assert argv.count("--network") == 1


def test_the_proxy_container_and_its_configuration(tmp_path):
    r = remote(tmp_path)
    argv = proxy.proxy_run_argv(r)
    assert ("--publish", "127.0.2.1:8080:80") == argv[argv.index("--publish"):][:2]
    assert ("--restart", "always") == argv[argv.index("--restart"):][:2]
    assert "nginx:test" in argv and "/srv/conveyor/notes/prod/proxy:/etc/conveyor-proxy:ro" in argv
    conf = proxy.render(r, "notes-prod-v-x:8000")
    assert 'set $conveyor_upstream "notes-prod-v-x:8000";' in conf
    assert "worker_shutdown_timeout 7s;" in conf and "resolver 127.0.0.11" in conf
    assert "return 503" in proxy.render(r, None)
    assert "@@{" not in conf
    assert [s.name for s in setup_plan(r).steps][-1] == "proxy"


def test_upstream_of_the_serving_container(tmp_path):
    r = remote(tmp_path)
    assert proxy.upstream_of(r, None) is None
    assert proxy.upstream_of(r, {"Name": "/notes-prod-app", "Config": {"Labels": {}}}) \
        == "notes-prod-app:8000"
    assert proxy.upstream_of(r, {"Name": "/notes-prod-app", "Config": {"Labels": {
        proxy.UPSTREAM_LABEL: "notes-prod-v-1"}}}) == "notes-prod-v-1:8000"


def test_the_runner_rebuilds_the_same_plan_with_the_strategy(tmp_path):
    r = remote(tmp_path)
    opts = ProdOptions(project_dir=tmp_path, strategy="recreate")
    dep = zero_downtime_plans(r, IMAGE, opts, deployment_id=DID, recreate=True)
    job = job_for("prod", dep, opts, provenance={}, record_kind="promote")
    again = build(type(job).from_json(job.to_json()), Remote(job.config(tmp_path / "c.toml"),
                                                             "prod"), None)
    assert names(again) == names(dep)
