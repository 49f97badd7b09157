"""The zero-downtime strategy's steps: the environment's reverse proxy (nginx in a container,
`<app>-<env>-proxy`, publishing address:port), the new app container started beside the
serving one (no published port, a per-deployment alias on the environment's network), its
health at its own address, the proxy's switch, the drain, and the old container retired.

Names as in `steps/app.py`: `-app` serves, `-next` is the new one until it takes the name,
`-previous` the version before (stopped), `-failed` a new one that did not pass.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from conveyor import host
from conveyor.commands import docker
from conveyor.errors import ConveyorError, HealthCheckFailed, NotSetUp
from conveyor.http import Poll, wait_for_http
from conveyor.imageref import ImageRef
from conveyor.plan import Step, StepIO
from conveyor.state.deploy import DeployState
from conveyor.steps.app import app_run_argv, create_argv
from conveyor.steps.health import container_state
from conveyor.targets.remote import Remote, env_file, tail
from conveyor.transport import sh

CONF_IN_CONTAINER = "/etc/conveyor-proxy"
UPSTREAM_LABEL = "conveyor.upstream"
WORKERS = ('for d in /proc/[0-9]*; do c=$(tr "\\0" " " < "$d/cmdline" 2>/dev/null) || continue; '
           'case "$c" in "nginx: worker process is shutting down"*) echo "${d#/proc/}";; esac; '
           'done')


def proxy_container(remote: Remote) -> str:
    return remote.app_container.removesuffix("-app") + "-proxy"


def proxy_dir(remote: Remote) -> str:
    return f"{remote.state_dir}/proxy"


def network(remote: Remote) -> str:
    return remote.network or remote.cfg.network_name(remote.name)


def alias(remote: Remote, deployment_id: str) -> str:
    return remote.container_name("v", deployment_id)


def render(remote: Remote, upstream: str | None) -> str:
    """nginx.conf for `upstream` (host:port on the network; None: nothing deployed, 503)."""
    text = resources.files("conveyor.templates").joinpath("proxy-nginx.conf").read_text()
    if upstream:
        location = (f'            set $conveyor_upstream "{upstream}";\n'
                    "            proxy_pass http://$conveyor_upstream;")
    else:
        location = '            return 503 "no version of this app is deployed yet\\n";'
    drain = max(1, int(remote.env.proxy.drain_timeout))
    return (text.replace("@@{app}", remote.app.name).replace("@@{env}", remote.name)
            .replace("@@{drain}", str(drain)).replace("@@{location}", location))


def upstream_of(remote: Remote, inspect: dict[str, Any] | None) -> str | None:
    """Where the proxy reaches a container (its alias label, else its name), or None."""
    if not inspect:
        return None
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    name = labels.get(UPSTREAM_LABEL) or (inspect.get("Name") or "").lstrip("/")
    return f"{name}:{remote.app.port}" if name else None


# --------------------------------------------------------------------------- setup


def proxy_run_argv(remote: Remote) -> tuple[str, ...]:
    publish = f"{remote.env.address}:{remote.env.port or remote.app.port}:80"
    return docker.run(remote.env.proxy.image, name=proxy_container(remote), detach=True,
                      network=network(remote), restart="always", stop_timeout=10,
                      publish=[publish], volumes=[f"{proxy_dir(remote)}:{CONF_IN_CONTAINER}:ro"],
                      labels=remote.labels("proxy"),
                      command=["nginx", "-c", f"{CONF_IN_CONTAINER}/nginx.conf", "-g",
                               "daemon off;"])


def proxy_setup_argv(remote: Remote) -> tuple[str, ...]:
    """Config from stdin unless one is there (it names the serving app); the proxy container
    created once (restart policy `always`: it comes back with the Docker engine); started."""
    d, c = proxy_dir(remote), proxy_container(remote)
    return sh(("mkdir", "-p", d), "&&", "{", ("test", "-f", f"{d}/nginx.conf"), "||",
              ("cat",), ">", (f"{d}/nginx.conf",), ";", "}", "&&",
              "{", docker.inspect(c, "{{.Id}}"), ">/dev/null", "2>&1", "||",
              proxy_run_argv(remote), ">/dev/null", ";", "}", "&&",
              docker.start(c), ">/dev/null", "&&",
              docker.inspect(c, "{{.Config.Image}} {{.State.Status}}"))


def proxy_setup_step(remote: Remote) -> Step[DeployState]:
    argv = proxy_setup_argv(remote)

    def action(st: DeployState, io: StepIO) -> None:
        r = io.run(argv, input=render(remote, None), timeout=300)
        io.note(f"{proxy_container(remote)} ({r.stdout.strip()}) publishes "
                f"{remote.env.address}:{remote.env.port or remote.app.port}")

    return Step("proxy", action, describe=[argv, ("stdin: the proxy's nginx.conf (only when "
                                                 "none is there: nothing deployed, 503)")])


# --------------------------------------------------------------------------- deploy


def beside_argv(remote: Remote, image: ImageRef, deployment_id: str,
                revision: str | None) -> tuple[str, ...]:
    """`docker create` of the new app container as `-next`: no published port, on the
    network under its deployment's alias (the name the proxy uses)."""
    argv = list(create_argv(app_run_argv(remote, image, deployment_id, revision),
                            remote.next_container))
    while "--publish" in argv:
        i = argv.index("--publish")
        del argv[i:i + 2]
    if "--network" in argv:
        i = argv.index("--network")
        del argv[i:i + 2]
    a = alias(remote, deployment_id)
    i = argv.index("--name") + 2
    argv[i:i] = ["--network", network(remote), "--network-alias", a,
                 "--label", f"{UPSTREAM_LABEL}={a}"]
    return tuple(argv)


def _park_failed(remote: Remote) -> tuple[str, ...]:
    return sh("{", docker.rm(remote.failed_container, force=True), ">/dev/null", "2>&1", ";", "}",
              ";", docker.stop(remote.next_container, remote.app.stop_timeout), ">/dev/null",
              "&&", docker.rename(remote.next_container, remote.failed_container))


def start_beside_step(remote: Remote, image: ImageRef, deployment_id: str) -> Step[DeployState]:
    """Create and start the new version as `-next` beside the serving one. Undo: stopped and
    kept as `-failed` (its log)."""
    nxt = remote.next_container

    def argv(st: DeployState | None) -> tuple[str, ...]:
        rev = (st.image_revision if st else None) or image.revision
        return sh("{", docker.rm(nxt, force=True), ">/dev/null", "2>&1", ";",
                  docker.rm(remote.previous_container, force=True), ">/dev/null", "2>&1", ";",
                  "}", "&&", ("umask", "077"), "&&", ("mkdir", "-p", remote.state_dir), "&&",
                  ("cat",), ">", (remote.app_env_file,), "&&",
                  beside_argv(remote, image, deployment_id, rev), ">/dev/null", "&&",
                  docker.start(nxt), ">/dev/null", "&&",
                  docker.inspect(nxt, "{{.Id}}"))

    def action(st: DeployState, io: StepIO) -> None:
        contents = env_file(remote.app_env(), f"environments.{remote.name}.env")
        r = io.run(argv(st), input=contents, timeout=300)
        st.next_id = r.stdout.strip()[:12]
        io.note(f"started {nxt} ({st.next_id}) beside {remote.app_container}, as "
                f"{alias(remote, deployment_id)} on {network(remote)}; no published port")

    def undo(st: DeployState, io: StepIO) -> None:
        r = io.run(_park_failed(remote), check=False, timeout=300)
        io.log(f"the new container is kept stopped as {remote.failed_container}" if r.ok
               else f"could not park {nxt}: {tail(r.stderr)}")

    return Step("start", action, describe=[argv(None), (f"stdin: the app's env file (0600 at "
                                           f"{remote.app_env_file})")],
                undo=undo, undo_describe=[_park_failed(remote)],
                reads=("image_revision",), writes=("next_id",))


def container_url(remote: Remote, name: str, io: StepIO) -> str:
    fmt = f'{{{{(index .NetworkSettings.Networks "{network(remote)}").IPAddress}}}}'
    ip = io.run(docker.inspect(name, fmt), timeout=60).stdout.strip()
    if not ip:
        raise ConveyorError(f"{name} has no address on {network(remote)}")
    return f"http://{ip}:{remote.app.port}{remote.app.health.path}"


def wait_container(remote: Remote, name: str, url: str, timeout: float) -> Poll:
    def alive() -> str | None:
        s = container_state(remote, name)
        if s is None:
            return "the container is gone"
        if s.get("Status") in ("exited", "dead") or s.get("RestartCount", 0) > 0:
            return (f"the container is {s.get('Status')} (exit code {s.get('ExitCode')}, "
                    f"restarted {s.get('RestartCount', 0)} times)")
        return None

    hc = remote.app.health
    return wait_for_http(url, expect=hc.expect_status, timeout=timeout, interval=hc.interval,
                         alive=alive)


def health_beside_step(remote: Remote) -> Step[DeployState]:
    """The new container answers its health URL at its own address (the runner is on the
    host's network); the old one keeps serving meanwhile."""
    hc = remote.app.health
    nxt = remote.next_container

    def action(st: DeployState, io: StepIO) -> None:
        url = container_url(remote, nxt, io)
        poll = wait_container(remote, nxt, url, hc.timeout)
        if poll.ok:
            io.note(poll.detail)
            return
        logs = io.run(docker.logs(nxt, tail=40), check=False, timeout=60)
        for line in (logs.stdout + logs.stderr).splitlines():
            io.log(f"[{nxt}] {line}")
        raise HealthCheckFailed(poll.detail, hint="the old version kept serving (the proxy never "
                                f"switched); the new one is kept as {remote.failed_container}")

    return Step("health", action, describe=[
        (f"GET http://<{nxt}'s address on {network(remote)}>:{remote.app.port}{hc.path} until "
        f"HTTP {hc.expect_status} (every {hc.interval:g} s, at most {hc.timeout:g} s)")])


def switch_argv(remote: Remote) -> tuple[str, ...]:
    return host.argv("proxy_switch", proxy_dir(remote), proxy_container(remote), "15")


def switch_step(remote: Remote, deployment_id: str) -> Step[DeployState]:
    """The proxy sends new requests to the new version (config renamed into place, SIGHUP);
    undo: back to the version the lock step saw."""
    new = f"{alias(remote, deployment_id)}:{remote.app.port}"
    argv = switch_argv(remote)

    def action(st: DeployState, io: StepIO) -> None:
        st.proxy_upstream = upstream_of(remote, st.current) or ""
        io.run(argv, input=render(remote, new), timeout=120)
        io.note(f"{proxy_container(remote)} now forwards to {new}"
                + (f" (was {st.proxy_upstream})" if st.proxy_upstream else ""))

    def undo(st: DeployState, io: StepIO) -> None:
        old = upstream_of(remote, st.current)
        io.run(argv, input=render(remote, old), timeout=120)
        io.log(f"{proxy_container(remote)} forwards to {old or 'nothing (503)'} again")

    return Step("switch", action, describe=[host.shown(argv), (f"stdin: nginx.conf forwarding "
                                            f"to {new}")],
                undo=undo, undo_describe=[host.shown(argv), ("stdin: nginx.conf forwarding to "
                                          "the serving container")],
                reads=("current",), writes=("proxy_upstream",))


def drain_step(remote: Remote) -> Step[DeployState]:
    """Wait until the proxy's old workers have finished the requests in flight (bounded by
    proxy.drain_timeout; nginx ends them at worker_shutdown_timeout anyway)."""
    timeout = remote.env.proxy.drain_timeout
    argv = docker.exec_(proxy_container(remote), ["sh", "-c", WORKERS])

    def action(st: DeployState, io: StepIO) -> None:
        t0 = time.monotonic()
        while True:
            r = io.run(argv, check=False, timeout=60)
            left = r.stdout.split()
            if not left:
                io.note(f"drained in {time.monotonic() - t0:.2f} s")
                return
            if time.monotonic() - t0 > timeout + 2:
                io.note(f"{len(left)} old worker(s) still busy after {timeout:g} s: going on")
                return
            time.sleep(0.1)

    return Step("drain", action, describe=[argv, (f"(until no old worker is left, at most "
                                           f"{timeout:g} s)")])


def retire_argv(remote: Remote, *, has_current: bool) -> tuple[str, ...]:
    parts: list[Any] = []
    if has_current:
        parts += [docker.stop(remote.app_container, remote.app.stop_timeout), ">/dev/null", "&&",
                  docker.rename(remote.app_container, remote.previous_container), "&&"]
    return sh(*parts, docker.rename(remote.next_container, remote.app_container))


def unretire_argv(remote: Remote) -> tuple[str, ...]:
    app, prev, nxt = remote.app_container, remote.previous_container, remote.next_container
    return sh("if", docker.inspect(prev, "{{.Id}}"), ">/dev/null", "2>&1", ";", "then",
              "{", docker.inspect(nxt, "{{.Id}}"), ">/dev/null", "2>&1", "||",
              docker.rename(app, nxt), ";", "}", "&&", docker.rename(prev, app), ";", "fi", ";",
              docker.start(app), ">/dev/null")


def retire_step(remote: Remote) -> Step[DeployState]:
    """The old container is stopped and kept as `-previous`; the new one takes the name.
    Undo: the old one is started again under its name and answers before the proxy is switched
    back."""

    def action(st: DeployState, io: StepIO) -> None:
        io.run(retire_argv(remote, has_current=bool(st.current)),
               timeout=remote.app.stop_timeout + 120)
        st.stopped_old = bool(st.current)
        io.note(f"{remote.app_container} is the new version"
                + (f"; the old one is kept stopped as {remote.previous_container}"
                   if st.current else ""))

    def undo(st: DeployState, io: StepIO) -> None:
        if not st.current:
            io.run(docker.rename(remote.app_container, remote.next_container), check=False,
                   timeout=60)
            return
        io.run(unretire_argv(remote), timeout=300)
        poll = wait_container(remote, remote.app_container,
                              container_url(remote, remote.app_container, io),
                              remote.app.health.timeout)
        io.log(f"the previous version runs again: {poll.detail}")

    return Step("retire", action, describe=[retire_argv(remote, has_current=True)], undo=undo,
                undo_describe=[unretire_argv(remote)], reads=("current",),
                writes=("stopped_old",))


def proxy_network_step(remote: Remote) -> Step[DeployState]:
    """A database reached by URL has no network of conveyor's: the proxy's is created here."""
    argv = sh(docker.network_inspect(network(remote)), ">/dev/null", "2>&1", "||",
              docker.network_create(network(remote), remote.labels("network")))

    def action(st: DeployState, io: StepIO) -> None:
        io.run(argv, timeout=120)
        io.note(network(remote))

    return Step("network", action, describe=[argv])


# --------------------------------------------------------------------------- the proxy missing


def published(inspect: dict[str, Any] | None) -> list[str]:
    """The host ports a container publishes itself ("address:port"), from `docker inspect`."""
    bindings = ((inspect or {}).get("HostConfig") or {}).get("PortBindings") or {}
    return [f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}"
            for spec in bindings.values() for b in (spec or []) if b.get("HostPort")]


def proxy_check_step(remote: Remote, *, recreate: bool) -> Step[DeployState]:
    """A zero-downtime deploy needs the proxy. Missing (`conveyor setup` not run since the
    environment got strategy = "zero-downtime"): created here when nothing publishes its port;
    when the serving container publishes it itself (deployed with strategy = "recreate"), the
    move behind the proxy needs one deploy with a short downtime (`--strategy recreate`: the
    proxy is created after the stop, `proxy_takeover_step`); without it, refused before
    anything changes."""
    c = proxy_container(remote)

    def action(st: DeployState, io: StepIO) -> None:
        r = io.run(docker.inspect(c, "{{.State.Running}}"), check=False, timeout=60)
        if r.ok and r.stdout.strip() == "true":
            io.note(f"{c} is running")
            return
        if r.ok:
            io.run(docker.start(c), timeout=120)
            io.note(f"{c} was stopped: started it")
            return
        ports = published(st.current) if st.current else []
        if not ports:
            io.run(proxy_setup_argv(remote), input=render(remote, upstream_of(remote, st.current)),
                   timeout=300)
            io.note(f"{c} was missing: created it (publishes {remote.env.address}:"
                    f"{remote.env.port or remote.app.port})")
            return
        if not recreate:
            raise NotSetUp(
                f"{remote.name} has strategy = \"zero-downtime\" but no proxy yet, and "
                f"{remote.app_container} publishes {', '.join(ports)} itself (it was deployed "
                "with strategy = \"recreate\"); nothing was changed",
                hint=f"move it behind the proxy with one deploy that has a short downtime: "
                f"`conveyor deploy {remote.name} --strategy recreate` (stop, migrate, start "
                "behind the new proxy); the deploys after it have none")
        st.proxy_takeover = True
        io.note(f"{c} is missing and {remote.app_container} publishes {', '.join(ports)}: the "
                "proxy takes the port over after the stop")

    return Step("proxy", action, describe=[
        docker.inspect(c, "{{.State.Running}}"),
        ("(missing: created when nothing publishes the port; when the old container does: "
         + ("created after the stop)" if recreate else "refused, --strategy recreate moves it)"))],
        reads=("current",), writes=("proxy_takeover",))


def proxy_takeover_step(remote: Remote) -> Step[DeployState]:
    """After the stop (the old container no longer holds the port): the proxy is created, 503
    until the switch. Undo: removed again, so that the old container gets its port back."""
    c = proxy_container(remote)
    argv = proxy_setup_argv(remote)
    remove = docker.rm(c, force=True)

    def action(st: DeployState, io: StepIO) -> None:
        if not st.proxy_takeover:
            io.note("the proxy was in place")
            return
        io.run(argv, input=render(remote, None), timeout=300)
        io.note(f"{c} created: it publishes {remote.env.address}:"
                f"{remote.env.port or remote.app.port} from now on")

    def undo(st: DeployState, io: StepIO) -> None:
        if st.proxy_takeover:
            io.run(remove, check=False, timeout=120)
            io.log(f"{c} removed again: the previous version publishes its port itself")

    return Step("takeover", action, describe=[argv], undo=undo, undo_describe=[remove],
                reads=("proxy_takeover",))
