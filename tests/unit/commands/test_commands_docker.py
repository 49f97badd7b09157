"""commands.docker: every builder's whole argv (no slices), for its plain and its full form."""

from __future__ import annotations

from conveyor.commands import docker


def test_build():
    assert docker.build("app:1", ".") == ("docker", "build", "--tag", "app:1", ".")
    assert docker.build("app:1", "ctx", "Dockerfile.prod", {"A": "1 2"}, {"conveyor.app": "app"},
                        extra_tags=["app:latest"]) == (
        "docker", "build", "--tag", "app:1", "--tag", "app:latest", "--file", "Dockerfile.prod",
        "--build-arg", "A=1 2", "--label", "conveyor.app=app", "ctx")


def test_images_and_registry():
    assert docker.image_inspect("app:1") == ("docker", "image", "inspect", "app:1")
    assert docker.image_inspect("app:1", "{{.Id}}") == (
        "docker", "image", "inspect", "--format", "{{.Id}}", "app:1")
    assert docker.tag("a", "b") == ("docker", "tag", "a", "b")
    assert docker.push("r/a:1") == ("docker", "push", "r/a:1")
    assert docker.pull("r/a@sha256:x") == ("docker", "pull", "r/a@sha256:x")
    assert docker.rmi("r/a:1") == ("docker", "rmi", "r/a:1")
    assert docker.image_repo_digests("a") == (
        "docker", "image", "inspect", "--format", "{{json .RepoDigests}}", "a")
    assert docker.image_present_or_pull("r/a:1") == (
        ("docker", "image", "inspect", "--format", "{{.Id}}", "r/a:1"),
        ("docker", "pull", "r/a:1"))
    assert docker.login("reg:5000", "ci") == (
        "docker", "login", "--username", "ci", "--password-stdin", "reg:5000")


def test_run_plain_and_with_every_option():
    assert docker.run("img") == ("docker", "run", "img")
    assert docker.run(
        "img", name="app", detach=True, rm=True, network="net", env_file="/s/app.env",
        env={"A": "1"}, env_names=["SECRET"], publish=["127.0.0.1:8000:8000"],
        volumes=["v:/data"], labels={"conveyor.app": "shop"}, restart="unless-stopped",
        interactive=True, stop_timeout=10, entrypoint="", command=["migrate", "run"],
        extra=["--init"],
    ) == (
        "docker", "run", "--detach", "--rm", "--interactive", "--name", "app",
        "--network", "net", "--restart", "unless-stopped", "--stop-timeout", "10",
        "--env-file", "/s/app.env", "--env", "A=1", "--env", "SECRET",
        "--publish", "127.0.0.1:8000:8000", "--volume", "v:/data",
        "--label", "conveyor.app=shop", "--entrypoint", "", "--init", "img", "migrate", "run")


def test_containers():
    assert docker.inspect("c") == ("docker", "inspect", "c")
    assert docker.container_state("c") == ("docker", "inspect", "--format", "{{json .}}", "c")
    assert docker.start("c") == ("docker", "start", "c")
    assert docker.stop("c") == ("docker", "stop", "c")
    assert docker.stop("c", 0) == ("docker", "stop", "--time", "0", "c")
    assert docker.rm("c") == ("docker", "rm", "c")
    assert docker.rm("c", force=True) == ("docker", "rm", "--force", "c")
    assert docker.rename("a", "b") == ("docker", "rename", "a", "b")
    assert docker.logs("c") == ("docker", "logs", "c")
    assert docker.logs("c", follow=True, since="10m", tail=40, timestamps=True) == (
        "docker", "logs", "--follow", "--since", "10m", "--tail", "40", "--timestamps", "c")


def test_exec():
    assert docker.exec_("db", ["psql", "-c", "select 1"]) == (
        "docker", "exec", "db", "psql", "-c", "select 1")
    assert docker.exec_("db", ["sh"], interactive=True, env={"PGPASSWORD": "x"},
                        user="postgres") == (
        "docker", "exec", "--interactive", "--user", "postgres", "--env", "PGPASSWORD=x",
        "db", "sh")
    assert docker.exec_env_names("db", ["pg_dump"], ["PGPASSWORD"]) == (
        "docker", "exec", "--env", "PGPASSWORD", "db", "pg_dump")


def test_networks_volumes_and_listing():
    assert docker.network_create("n") == ("docker", "network", "create", "n")
    assert docker.network_create("n", {"a": "b"}) == (
        "docker", "network", "create", "--label", "a=b", "n")
    assert docker.network_inspect("n") == (
        "docker", "network", "inspect", "--format", "{{.Name}}", "n")
    assert docker.volume_create("v", {"a": "b"}) == (
        "docker", "volume", "create", "--label", "a=b", "v")
    assert docker.volume_inspect("v") == (
        "docker", "volume", "inspect", "--format", "{{.Name}}", "v")
    assert docker.ps() == ("docker", "ps", "--all", "--no-trunc", "--format", "{{json .}}")
    assert docker.ps({"label": "conveyor.app=shop"}, all=False, fmt="{{.ID}}") == (
        "docker", "ps", "--filter", "label=conveyor.app=shop", "--no-trunc", "--format",
        "{{.ID}}")
    assert docker.info() == ("docker", "info", "--format", "{{.ServerVersion}}")
